#pragma once
// A sweep's random search (docs/experiments.md, "Random search"): trials drawn from a
// space of config keys, deterministically from the search's seed; the best trial chosen
// on the validation split alone, then trained again with several seeds, whose test
// results are the search's answer. The test split never takes part in the choice.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mmfusion/config/config.hpp"  // Task
#include "mmfusion/experiments/grid.hpp"

namespace mmfusion {

// One key's draw: log-uniform or uniform in [low, high], a uniform integer in [low, high],
// or one of `choices` with equal chances.
struct SearchDimension {
  enum class Kind { LogUniform, Uniform, IntUniform, Choice };
  std::string key;
  Kind kind = Kind::Choice;
  double low = 0, high = 0;
  std::vector<nlohmann::json> choices;
};

struct SearchSpec {
  int64_t trials = 0;
  uint64_t seed = 1;                  // the draws'
  std::string select = "loss";        // the validation metric that picks the best trial
  std::vector<int64_t> seeds{1, 2, 3};  // the best trial's reruns (config key `seed`)
  std::vector<SearchDimension> space;   // in the keys' alphabetical order
};

// The sweep file's "search" object: {"trials", "space": {key: {"log_uniform": [a, b]} |
// {"uniform": [a, b]} | {"int_uniform": [a, b]} | {"choice": [v, ...]}}, "seed",
// "select", "seeds"}. ConfigError naming `at` and the member otherwise.
SearchSpec parse_search(const nlohmann::json& doc, const std::string& at);
nlohmann::json search_json(const SearchSpec& spec);

// The trials' settings, trial i's values drawn from its own stream of spec.seed (so a
// longer search begins with the same trials); a setting drawn before is drawn again.
// ConfigError when the space holds fewer distinct settings than trials.
std::vector<Combination> draw_trials(const SearchSpec& spec);

// The folder names: trial-001, ... and best-seed-<s>.
std::string trial_name(size_t i, size_t trials);
std::string rerun_name(int64_t seed);

// The index of the trial with the best validation `select` among the trials' folders in
// DIR (ties: the first), once every trial has finished (results.json or error.txt);
// nullopt while one has not. ConfigError when none succeeded, or when the metric is not
// among their validation results.
std::optional<size_t> best_trial(const std::string& dir, const SearchSpec& spec);

// DIR/results.csv and DIR/summary.md of a search, from its folder alone: every trial with
// its values and validation metric (no test figure), the choice, and the reruns' test
// mean ± std.
void write_search_reports(const std::string& dir, const std::string& name, const SearchSpec& spec,
                          Task task);

}  // namespace mmfusion
