#pragma once
// A small JSON Schema validator for the tests, written from the draft 2020-12 spec for
// the keywords mmfusion's schema uses. It knows nothing of the key table: it reads only
// the schema, and it refuses a keyword it does not implement, so that a schema cannot
// pass by using one it would skip. (tests/schema_check.py validates with Python's
// jsonschema as well.)
#include <cmath>
#include <regex>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

namespace mmfusion::testing {

// The first way `value` breaks `schema`, as "PATH: what"; empty when it validates.
inline std::string schema_violation(const nlohmann::json& schema, const nlohmann::json& value,
                                    const std::string& path = "") {
  using nlohmann::json;
  static const std::set<std::string> annotations{"$schema", "title", "description", "default",
                                                 "deprecated"};
  static const std::set<std::string> known{"type",
                                           "properties",
                                           "additionalProperties",
                                           "required",
                                           "enum",
                                           "const",
                                           "minimum",
                                           "maximum",
                                           "exclusiveMinimum",
                                           "exclusiveMaximum",
                                           "items",
                                           "minItems",
                                           "uniqueItems",
                                           "pattern",
                                           "anyOf"};
  const std::string at = path.empty() ? "(root)" : path;
  for (const auto& item : schema.items())
    if (!annotations.count(item.key()) && !known.count(item.key()))
      return at + ": the test validator does not implement the keyword " + item.key();

  auto is_type = [&](const std::string& type) {
    if (type == "object") return value.is_object();
    if (type == "array") return value.is_array();
    if (type == "string") return value.is_string();
    if (type == "boolean") return value.is_boolean();
    if (type == "null") return value.is_null();
    if (type == "number") return value.is_number();
    if (type == "integer")
      return value.is_number_integer() ||
             (value.is_number_float() && std::floor(value.get<double>()) == value.get<double>());
    return false;
  };
  if (schema.contains("type")) {
    const json& t = schema["type"];
    bool ok = false;
    if (t.is_string()) ok = is_type(t.get<std::string>());
    for (const auto& one : t.is_array() ? t : json::array())
      ok = ok || is_type(one.get<std::string>());
    if (!ok) return at + ": not of type " + t.dump();
  }
  if (schema.contains("enum")) {
    bool found = false;
    for (const auto& e : schema["enum"]) found = found || e == value;
    if (!found) return at + ": not one of " + schema["enum"].dump();
  }
  if (schema.contains("const") && schema["const"] != value)
    return at + ": not " + schema["const"].dump();
  if (value.is_number()) {
    const double x = value.get<double>();
    if (schema.contains("minimum") && x < schema["minimum"].get<double>())
      return at + ": below the minimum";
    if (schema.contains("maximum") && x > schema["maximum"].get<double>())
      return at + ": above the maximum";
    if (schema.contains("exclusiveMinimum") && x <= schema["exclusiveMinimum"].get<double>())
      return at + ": not above the exclusive minimum";
    if (schema.contains("exclusiveMaximum") && x >= schema["exclusiveMaximum"].get<double>())
      return at + ": not below the exclusive maximum";
  }
  if (value.is_string() && schema.contains("pattern") &&
      !std::regex_search(value.get<std::string>(),
                         std::regex(schema["pattern"].get<std::string>())))
    return at + ": does not match " + schema["pattern"].get<std::string>();
  if (value.is_array()) {
    if (schema.contains("minItems") && value.size() < schema["minItems"].get<size_t>())
      return at + ": too few items";
    if (schema.value("uniqueItems", false))
      for (size_t i = 0; i < value.size(); ++i)
        for (size_t j = i + 1; j < value.size(); ++j)
          if (value[i] == value[j])
            return at + ": items " + std::to_string(i) + " and " + std::to_string(j) + " are equal";
    if (schema.contains("items"))
      for (size_t i = 0; i < value.size(); ++i) {
        const std::string why =
            schema_violation(schema["items"], value[i], path + "[" + std::to_string(i) + "]");
        if (!why.empty()) return why;
      }
  }
  if (value.is_object()) {
    for (const auto& name : schema.value("required", json::array()))
      if (!value.contains(name.get<std::string>()))
        return at + ": lacks " + name.get<std::string>();
    const json properties = schema.value("properties", json::object());
    for (const auto& item : value.items()) {
      const std::string child = path.empty() ? item.key() : path + "." + item.key();
      const json* sub = nullptr;
      if (properties.contains(item.key()))
        sub = &properties[item.key()];
      else if (schema.contains("additionalProperties")) {
        const json& extra = schema["additionalProperties"];
        if (extra.is_boolean()) {
          if (!extra.get<bool>()) return child + ": not allowed here";
        } else {
          sub = &extra;
        }
      }
      if (sub) {
        const std::string why = schema_violation(*sub, item.value(), child);
        if (!why.empty()) return why;
      }
    }
  }
  if (schema.contains("anyOf")) {
    std::string reasons;
    for (const auto& option : schema["anyOf"]) {
      const std::string why = schema_violation(option, value, path);
      if (why.empty()) return "";
      reasons += (reasons.empty() ? "" : "; ") + why;
    }
    return at + ": matches none of anyOf (" + reasons + ")";
  }
  return "";
}

}  // namespace mmfusion::testing
