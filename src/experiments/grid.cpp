#include "mmfusion/experiments/grid.hpp"

#include <cctype>
#include <map>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/config/config_io.hpp"

namespace mmfusion {
using nlohmann::json;

std::string value_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string last_segment(const std::string& key) {
  const auto dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

GridAxis parse_grid_axis(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw UsageError("--grid " + text + ": expected KEY=V1,V2,... (e.g. model.rank=1,4,16)");
  GridAxis axis{text.substr(0, eq), {}};
  const std::string values = text.substr(eq + 1);
  int depth = 0;
  bool quoted = false;
  std::string current;
  for (size_t i = 0; i <= values.size(); ++i) {
    const char c = i < values.size() ? values[i] : ',';
    if (c == '"' && (i == 0 || values[i - 1] != '\\')) quoted = !quoted;
    if (!quoted && (c == '[' || c == '{')) ++depth;
    if (!quoted && (c == ']' || c == '}')) --depth;
    if (c == ',' && depth == 0 && !quoted) {
      if (current.empty()) throw UsageError("--grid " + text + ": empty value");
      axis.values.push_back(parse_value(current));
      current.clear();
    } else {
      current += c;
    }
  }
  return axis;
}

std::vector<Combination> grid_combinations(const std::vector<GridAxis>& axes) {
  std::vector<Combination> out{{}};
  for (const auto& axis : axes) {
    std::vector<Combination> next;
    for (const auto& partial : out)
      for (const auto& v : axis.values) {
        Combination c = partial;
        c.emplace_back(axis.key, v);
        next.push_back(std::move(c));
      }
    out = std::move(next);
  }
  return out;
}

std::string combination_name(const Combination& combination) {
  std::map<std::string, int> seen;
  for (const auto& [key, v] : combination) seen[last_segment(key)]++;
  std::string name;
  for (const auto& [key, v] : combination) {
    std::string label = seen[last_segment(key)] > 1 ? key : last_segment(key);
    std::string text = label + "-" + value_text(v);
    for (char& c : text)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '-';
    name += (name.empty() ? "" : "_") + text;
  }
  return name;
}

Shard parse_shard(const std::string& text) {
  Shard shard;
  if (text.empty()) return shard;
  const auto slash = text.find('/');
  try {
    size_t used_k = 0, used_n = 0;
    if (slash == std::string::npos) throw std::invalid_argument("no slash");
    shard.index = std::stoll(text.substr(0, slash), &used_k);
    shard.count = std::stoll(text.substr(slash + 1), &used_n);
    if (used_k != slash || used_n != text.size() - slash - 1)
      throw std::invalid_argument("trailing");
  } catch (const std::exception&) {
    throw UsageError("--shard " + text + ": expected K/N, e.g. 0/4 (K from 0 to N-1)");
  }
  if (shard.count < 1 || shard.index < 0 || shard.index >= shard.count)
    throw UsageError("--shard " + text + ": K must lie in 0.." + std::to_string(shard.count - 1) +
                      " for N = " + std::to_string(shard.count) + " (N >= 1)");
  return shard;
}

}  // namespace mmfusion
