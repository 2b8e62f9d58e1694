#pragma once
// A sweep's grid: its axes (KEY=V1,V2,...), their combinations and the folder name of
// each, and the share of them one machine takes (--shard K/N).
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmfusion {

using Combination = std::vector<std::pair<std::string, nlohmann::json>>;

// "K/N": combinations i (in grid order, from 0) with i % N == K, for 0 <= K < N.
struct Shard {
  int64_t index = 0, count = 1;
  bool contains(size_t i) const { return static_cast<int64_t>(i % count) == index; }
};
Shard parse_shard(const std::string& text);  // "" = the whole sweep; ConfigError otherwise

struct GridAxis {
  std::string key;
  std::vector<nlohmann::json> values;
};

// "KEY=V1,V2,..." -> values, split at top-level commas (JSON arrays and objects stay
// whole); each value is JSON when it parses, else a string.
GridAxis parse_grid_axis(const std::string& text);

// Every combination of the axes (the last axis varies fastest), as (key, value) lists.
std::vector<Combination> grid_combinations(const std::vector<GridAxis>& axes);

// A readable folder name for a combination, e.g. "type-lmf_rank-4_seed-1".
std::string combination_name(const Combination& combination);

// A grid value as folder names and reports show it: a string bare, anything else as JSON.
std::string value_text(const nlohmann::json& v);

// A key's last dotted segment: "model.rank" -> "rank".
std::string last_segment(const std::string& key);

}  // namespace mmfusion
