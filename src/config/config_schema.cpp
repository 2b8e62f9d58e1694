// The table of config keys rendered for people and editors: a JSON Schema (draft
// 2020-12) and docs/config.md's key tables.
#include <cmath>
#include <sstream>

#include "mmfusion/config/config_keys.hpp"

namespace mmfusion {

using nlohmann::json;

namespace {

// The group a map's entries share (mkl.kernels.<kernel>), or null.
const ConfigKey* entry_group(const ConfigKey& k) {
  for (const ConfigKey* child : keys_under(k.path))
    if (child->kind == KeyKind::Object && child->name().front() == '<') return child;
  return nullptr;
}

json group_schema(const std::string& path);

json key_schema(const ConfigKey& k) {
  json s = json::object();
  switch (k.kind) {
    case KeyKind::Object:
      s = group_schema(k.path);
      if (k.nullable) s["type"] = {"object", "null"};
      break;
    case KeyKind::Integer:
      s["type"] = "integer";
      if (std::isfinite(k.minimum)) s["minimum"] = static_cast<int64_t>(k.minimum);
      // The parser's integers are int64: the schema says so where the key has no maximum.
      s["maximum"] = std::isfinite(k.maximum) ? static_cast<int64_t>(k.maximum) : INT64_MAX;
      break;
    case KeyKind::Number:
      s["type"] = "number";
      if (std::isfinite(k.minimum))
        s[k.exclusive_minimum ? "exclusiveMinimum" : "minimum"] = k.minimum;
      if (std::isfinite(k.maximum))
        s[k.exclusive_maximum ? "exclusiveMaximum" : "maximum"] = k.maximum;
      break;
    case KeyKind::Boolean: s["type"] = "boolean"; break;
    case KeyKind::String:
      s["type"] = "string";
      if (!k.pattern.empty()) s["pattern"] = "^(?:" + k.pattern + ")$";
      break;
    case KeyKind::Choice:
      s["type"] = "string";
      s["enum"] = k.choices;
      break;
    case KeyKind::Sizes:
      s = {{"type", "array"}, {"items", {{"type", "integer"}, {"minimum", 1}}}};
      break;
    case KeyKind::Special:
      if (!k.special_schema.is_null())
        s = k.special_schema;
      else if (const ConfigKey* entries = entry_group(k))
        s = {{"type", "object"}, {"additionalProperties", group_schema(entries->path)}};
      break;
    case KeyKind::Ignored: s["type"] = "string"; break;
  }
  std::string text = k.description;
  if (!k.default_rule.empty()) text += ". Default: " + k.default_rule;
  if (!k.commands.empty()) text += ". Used by: " + k.commands;
  s["description"] = text + ".";
  const json def = key_default(k);
  if (!def.is_null() && k.kind != KeyKind::Object) s["default"] = def;
  return s;
}

json group_schema(const std::string& path) {
  json properties = json::object();
  for (const ConfigKey* k : keys_under(path)) {
    if (k->name().front() == '<') continue;
    properties[k->name()] = key_schema(*k);
    if (!k->old_name.empty()) {  // still read, with a warning
      json old = key_schema(*k);
      old["deprecated"] = true;
      old["description"] =
          "the old name of " + k->name() + ", which mmfusion still reads with a warning.";
      properties[k->old_name] = old;
    }
  }
  return {{"type", "object"}, {"properties", properties}, {"additionalProperties", false}};
}

std::string number_text(double x) {
  if (x == std::floor(x) && std::abs(x) < 1e15) return std::to_string(static_cast<int64_t>(x));
  std::ostringstream out;
  out << x;
  return out.str();
}

std::string cell(std::string text) {
  for (size_t at = text.find('|'); at != std::string::npos; at = text.find('|', at + 2))
    text.replace(at, 1, "\\|");
  return text;
}

std::string type_text(const ConfigKey& k) {
  switch (k.kind) {
    case KeyKind::Integer: return "integer";
    case KeyKind::Number: return "number";
    case KeyKind::Boolean: return "boolean";
    case KeyKind::String:
    case KeyKind::Choice:
    case KeyKind::Ignored: return "string";
    case KeyKind::Sizes: return "list of integers";
    case KeyKind::Special: return k.type_text;
    case KeyKind::Object: return "object";
  }
  return "";
}

std::string values_text(const ConfigKey& k) {
  switch (k.kind) {
    case KeyKind::Integer:
      return std::isfinite(k.maximum) ? number_text(k.minimum) + " to " + number_text(k.maximum)
                                      : ">= " + number_text(k.minimum);
    case KeyKind::Number:
      if (k.exclusive_minimum) return "> " + number_text(k.minimum);
      if (!std::isfinite(k.maximum)) return ">= " + number_text(k.minimum);
      return "[" + number_text(k.minimum) + ", " + number_text(k.maximum) +
             (k.exclusive_maximum ? ")" : "]");
    case KeyKind::Boolean: return "`true`, `false`";
    case KeyKind::Choice: {
      std::string out;
      for (const auto& c : k.choices) out += (out.empty() ? "`" : ", `") + c + "`";
      return out;
    }
    case KeyKind::Sizes: return "each >= 1, may be empty";
    case KeyKind::String:
    case KeyKind::Special:
    case KeyKind::Ignored:
    case KeyKind::Object: return k.range_text;
  }
  return "";
}

std::string default_text(const ConfigKey& k) {
  if (entry_group(k)) return "(below)";
  if (k.kind == KeyKind::Ignored) return "";
  const json value = key_default(k);
  if (value.is_null()) return k.default_rule;
  std::string text = "`" + value.dump() + "`";
  if (!k.default_rule.empty()) text += "; " + k.default_rule;
  return text;
}

// Every key at or below `root` that holds a value, its path shown relative to `root`.
void table_rows(const std::string& root, const std::string& group, std::ostringstream& out) {
  for (const ConfigKey* k : keys_under(group)) {
    if (k->kind == KeyKind::Object) {
      if (!root.empty()) table_rows(root, k->path, out);
      continue;
    }
    const std::string shown = root.empty() ? k->path : k->path.substr(root.size() + 1);
    std::string meaning = k->description;
    if (!k->old_name.empty())
      meaning += ". Was `" + k->old_name + "`, which still works with a deprecation warning";
    out << "| `" << shown << "` | " << cell(type_text(*k)) << " | " << cell(default_text(*k))
        << " | " << cell(values_text(*k)) << " | " << cell(meaning) << " | " << cell(k->commands)
        << " |\n";
    if (const ConfigKey* entries = entry_group(*k)) table_rows(root, entries->path, out);
  }
}

void table(const std::string& root, const std::string& title, std::ostringstream& out) {
  out << "<!-- generated by `mmfusion schema --markdown`: " << title << " -->\n"
      << "| key | type | default | values | meaning | used by |\n"
      << "| --- | --- | --- | --- | --- | --- |\n";
  table_rows(root, root, out);
  out << "<!-- end of the generated table -->\n";
}

}  // namespace

json config_schema() {
  json schema = {
      {"$schema", "https://json-schema.org/draft/2020-12/schema"},
      {"title", "mmfusion experiment config"},
      {"description",
       "An mmfusion experiment config (docs/config.md). Generated by `mmfusion schema` from the key "
       "table in src/config/config_keys.cpp; rules between keys are checked by mmfusion itself."}};
  schema.update(group_schema(""));
  return schema;
}

std::string config_keys_markdown() {
  std::ostringstream out;
  out << "<!-- generated by `mmfusion schema --markdown`: keys a resume may change -->\n";
  std::string names;
  for (const ConfigKey& k : config_keys())
    if (k.resumable) names += (names.empty() ? "`" : ", `") + k.path + "`";
  out << "When resuming (`train --resume`), only " << names
      << " may change (`--set` refuses any other key, and its error names these); anything else would "
         "change the model, data or optimizer.\n"
      << "<!-- end of the generated table -->\n\n";
  table("", "top level", out);
  for (const ConfigKey* k : keys_under(""))
    if (k->kind == KeyKind::Object) {
      out << "\n";
      table(k->path, k->path, out);
    }
  return out.str();
}

}  // namespace mmfusion
