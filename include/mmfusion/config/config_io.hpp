#pragma once
// Reading configs: a JSON document parsed and validated into an ExperimentConfig through
// the key table (config_keys.hpp), and the resolved config written back.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mmfusion/config/config.hpp"

namespace mmfusion {

// Parses and validates a JSON document. Throws ConfigError naming the JSON path. Keys that
// still work under an old name add a line to *deprecations (when given).
ExperimentConfig parse_config(const nlohmann::json& doc,
                              std::vector<std::string>* deprecations = nullptr);
// The resolved config (every default filled). parse_config(to_json(c)) == c.
nlohmann::json to_json(const ExperimentConfig& config);

// Reads a JSON file; malformed JSON is a ConfigError with line and column.
nlohmann::json read_json_file(const std::string& path);
// A value typed on the command line: JSON when it parses, else the text as a string (so
// --set device=cpu works unquoted).
nlohmann::json parse_value(const std::string& text);
// Applies one "a.b.c=VALUE" override (VALUE as parse_value reads it).
void apply_override(nlohmann::json& doc, const std::string& assignment);
// parse_config of a document, with its deprecation notes logged as warnings.
ExperimentConfig parse_config_logged(const nlohmann::json& doc);
// read_json_file + every override + parse_config_logged.
ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides);

// Equal when their resolved configs are.
bool operator==(const ExperimentConfig& a, const ExperimentConfig& b);

}  // namespace mmfusion
