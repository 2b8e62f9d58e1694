#pragma once
// The config parser's private tools (config.cpp, config_keys.cpp): the reader of one JSON
// object, which checks each value's type and range with the messages users see and
// rejects unknown keys with the nearest known one; and the table-driven walk over a group
// of keys (config_keys.hpp) in both directions.
#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mmfusion/config/config.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/spelling.hpp"

namespace mmfusion::config_detail {

using nlohmann::json;

[[noreturn]] inline void fail(const std::string& path, const std::string& what) {
  throw ConfigError(path + ": " + what);
}

inline std::string describe(const json& j) {
  std::string text = j.dump();
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  switch (j.type()) {
    case json::value_t::string: return "a string " + text;
    case json::value_t::boolean: return "a boolean " + text;
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    default: return text;
  }
}

inline std::string join_path(const std::string& base, const std::string& key) {
  return base.empty() ? key : base + "." + key;
}

// The checks of one value at JSON path `at`, each with the message users see.
inline int64_t check_integer(const json& v, const std::string& at, int64_t min,
                             int64_t max = INT64_MAX) {
  std::string expect = "expected an integer >= " + std::to_string(min);
  if (max != INT64_MAX) expect += " and <= " + std::to_string(max);
  if (!v.is_number_integer()) fail(at, expect + ", got " + describe(v));
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    fail(at, expect + ", got " + v.dump());
  const int64_t x = v.get<int64_t>();
  if (x < min || x > max) fail(at, expect + ", got " + v.dump());
  return x;
}

// A number in [lo, hi] (or [lo, hi) when hi_open; ">= lo" when hi is infinite).
inline double check_number(const json& v, const std::string& at, double lo, double hi,
                           bool hi_open = false) {
  std::ostringstream expect;
  expect << "expected a number";
  if (std::isfinite(hi))
    expect << " in [" << lo << ", " << hi << (hi_open ? ")" : "]");
  else
    expect << " >= " << lo;
  if (!v.is_number()) fail(at, expect.str() + ", got " + describe(v));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (hi_open && x >= hi))
    fail(at, expect.str() + ", got " + v.dump());
  return x;
}

inline double check_positive(const json& v, const std::string& at) {
  if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>()))
    fail(at, "expected a number > 0, got " + describe(v));
  return v.get<double>();
}

inline bool check_boolean(const json& v, const std::string& at) {
  if (!v.is_boolean()) fail(at, "expected true or false, got " + describe(v));
  return v.get<bool>();
}

inline std::string check_string(const json& v, const std::string& at) {
  if (!v.is_string()) fail(at, "expected a string, got " + describe(v));
  return v.get<std::string>();
}

inline std::string check_choice(const json& v, const std::string& at,
                                const std::vector<std::string>& options) {
  std::string allowed;
  for (const auto& o : options) allowed += (allowed.empty() ? "\"" : ", \"") + o + "\"";
  if (!v.is_string() ||
      std::find(options.begin(), options.end(), v.get<std::string>()) == options.end())
    fail(at, "expected one of " + allowed + ", got " + describe(v));
  return v.get<std::string>();
}

// A list of integers >= 1 (may be empty).
inline std::vector<int64_t> check_sizes(const json& v, const std::string& at) {
  if (!v.is_array()) fail(at, "expected a list of integers >= 1, got " + describe(v));
  std::vector<int64_t> out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (!v[i].is_number_integer() || v[i].get<int64_t>() < 1)
      fail(at + "[" + std::to_string(i) + "]", "expected an integer >= 1, got " + describe(v[i]));
    out.push_back(v[i].get<int64_t>());
  }
  return out;
}

// Reads one JSON object: find() records each key asked for as known; finish() rejects
// whatever was not asked for, suggesting the nearest known key.
class ObjectReader {
 public:
  ObjectReader(const json* j, std::string path) : j_(j), path_(std::move(path)) {
    if (j_ && !j_->is_object()) fail(path_, "expected an object, got " + describe(*j_));
  }

  const json* find(const std::string& key) {
    known_.insert(key);
    if (!j_) return nullptr;
    auto it = j_->find(key);
    return it == j_->end() ? nullptr : &*it;
  }

  // A key that is allowed but not suggested: it is left out of unknown-key hints.
  const json* find_unlisted(const std::string& key) {
    unlisted_.insert(key);
    if (!j_) return nullptr;
    auto it = j_->find(key);
    return it == j_->end() ? nullptr : &*it;
  }

  std::string path(const std::string& key) const { return join_path(path_, key); }

  // A key that was renamed: the old spelling still works, noted in *deprecations.
  const json* find_renamed(const std::string& key, const std::string& old_key,
                           std::vector<std::string>* deprecations) {
    const json* now = find(key);
    const json* old = find(old_key);
    if (old && now)
      fail(path(old_key), "is the old name of " + path(key) + "; give only " + path(key));
    if (old && deprecations)
      deprecations->push_back(path(old_key) + " is deprecated; it is now " + path(key));
    return now ? now : old;
  }

  void finish() const {
    if (!j_) return;
    for (const auto& item : j_->items()) {
      if (known_.count(item.key()) || unlisted_.count(item.key())) continue;
      const std::string best = nearest_word(item.key(), {known_.begin(), known_.end()});
      std::string hint;
      if (!best.empty()) {
        hint = " (did you mean " + path(best) + "?)";
      } else {
        for (const auto& k : known_) hint += (hint.empty() ? " (known keys: " : ", ") + k;
        hint += ")";
      }
      fail(path(item.key()), "unknown key" + hint);
    }
  }

 private:
  const json* j_;
  std::string path_;
  std::set<std::string> known_;
  std::set<std::string> unlisted_;
};

// Reads the keys of the group at `group` (a table path, placeholders included) from `j`
// (null: every key absent) into the config, at the JSON path `at`, `slot` naming the map
// entry where the group is one (mkl.kernels.<kernel>); `doc` is the whole document, for
// the groups' checks.
void read_group(const std::string& group, const json* j, const std::string& at,
                const std::string& slot, ExperimentConfig& config,
                std::vector<std::string>* deprecations, const json& doc);
// The group's keys of a config, as the resolved config holds them.
json write_group(const std::string& group, const ExperimentConfig& config, const std::string& slot);

}  // namespace mmfusion::config_detail
