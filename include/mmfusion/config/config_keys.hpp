#pragma once
// The table of config keys: every key of an experiment config once, with its type, range
// or allowed values, default, description and the commands that read it. The parser
// (parse_config), its range checks and messages, the nearest-key suggestions, to_json and
// `mmfusion validate` work from it, and so do the JSON Schema and docs/config.md's key
// tables (`mmfusion schema`, `mmfusion schema --markdown`).
//
// Rules between keys (a loss that must fit the task, a stream that needs generator 2,
// TFN's size limit, modality names that must exist) are a group's `check`, or
// parse_config's once every key is read; a schema cannot express them.
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mmfusion/config/config.hpp"

namespace mmfusion {

enum class KeyKind {
  Object,   // a group of keys (its own keys are the rows below it)
  Integer,  // within [minimum, maximum]
  Number,   // within the range; exclusive_minimum / exclusive_maximum where open
  Boolean,
  String,   // matching `pattern` where one is given
  Choice,   // one of `choices`
  Sizes,    // a list of integers >= 1 (may be empty)
  Special,  // a structured value (modality lists, term lists, modality sets, maps)
  Ignored,  // a string accepted and ignored ("$schema"), left out of unknown-key hints
};

// Where a key sits: map keys such as model.encoders.<modality> and mkl.kernels.<kernel>
// are written with their placeholder; `slot` is the actual name when reading or writing.
struct ConfigKey {
  std::string path;  // dotted, e.g. "train.epochs", "mkl.kernels.<kernel>.gamma"
  KeyKind kind = KeyKind::Integer;
  double minimum = -std::numeric_limits<double>::infinity();
  double maximum = std::numeric_limits<double>::infinity();
  bool exclusive_minimum = false;
  bool exclusive_maximum = false;
  std::vector<std::string> choices;
  std::string pattern;            // String: ECMAScript regex for the whole value
  std::string pattern_message;    // String: the error's "expected ..." when it does not match
  std::string description;        // one line
  std::string commands;           // the commands that read it, e.g. "train, eval, bench"
  std::string default_rule;       // where the default depends on other keys: how
  std::string old_name;           // a deprecated spelling that still works
  std::string type_text;          // Special: the type in words (docs)
  std::string range_text;         // String, Special: the allowed values in words (docs)
  nlohmann::json special_schema;  // Special: the value's JSON Schema (without description/default)
  bool nullable = false;          // Object: null reads as absent
  bool per_modality = false;      // Special: one value for all, or {modality: value}
  // May change on `train --resume`: it alters neither the model, the data nor the
  // optimizer (the only keys a resume accepts in --set; docs/config.md lists them).
  bool resumable = false;

  // Reads and writes the key in a config (slot: the map key, or "").
  std::function<nlohmann::json(const ExperimentConfig&, const std::string& slot)> get;
  std::function<void(ExperimentConfig&, const std::string& slot, const nlohmann::json& value)> set;
  // Special: parses a present value (null when absent) into the config, with its own
  // checks and messages; `at` is the value's path, `siblings` the object holding it (or
  // null).
  std::function<void(ExperimentConfig&, const nlohmann::json* value, const std::string& at,
                     const nlohmann::json* siblings)>
      parse;
  // Rules between this key (an Object: its keys) and earlier ones, checked as soon as it
  // is read (`doc`: the whole document).
  std::function<void(const ExperimentConfig&, const nlohmann::json& doc)> check;
  // The default where it depends on other keys (read after those, in table order).
  std::function<nlohmann::json(const ExperimentConfig&, const std::string& slot)> dynamic_default;
  // Whether the resolved config (to_json) holds the key; null: always.
  std::function<bool(const ExperimentConfig&)> written;

  std::string name() const;    // the last segment of the path
  std::string parent() const;  // the path without its last segment ("" at the top level)
};

// A modality as the resolved config writes it: {name, dim}, and a sequence's own keys.
nlohmann::json modality_json(const ModalityConfig& modality);

// Every key, parents before their keys, each key after the keys its default depends on.
const std::vector<ConfigKey>& config_keys();
// The keys directly inside the group at `parent` ("" for the top level), in table order.
std::vector<const ConfigKey*> keys_under(const std::string& parent);
// The key at a path, placeholders included; null when there is none.
const ConfigKey* find_key(const std::string& path);

// The default as docs and the schema show it: the built-in config's value.
nlohmann::json key_default(const ConfigKey& key);

// JSON Schema (draft 2020-12) of a config, from the table.
nlohmann::json config_schema();
// docs/config.md's key tables, from the table (Markdown, one section per group).
std::string config_keys_markdown();

}  // namespace mmfusion
