#pragma once
// Sweeps: a base config, a grid of overrides, one ordinary run per combination, run one
// after another in DIR/<combination>/. Completed combinations are skipped when the sweep
// runs again; a failing one is reported and the sweep goes on.
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mmfusion/config.hpp"

namespace mmfusion {

struct SweepArgs {
  std::string config;                  // base config file (or given by the sweep file)
  std::string sweep_file;              // JSON: {"name", "base", "set": [...], "grid": {key: [values]}}
  std::vector<std::string> grid;       // --grid KEY=V1,V2,...
  std::vector<std::string> overrides;  // --set KEY=VALUE, applied to the base
  std::string out;                     // default runs/sweep-<name>
  bool dry_run = false;                // validate every combination, train nothing
  std::string x;                       // --x KEY: the chart's x axis (a grid key); "" = the rule below
};

struct GridAxis {
  std::string key;
  std::vector<nlohmann::json> values;
};

// "KEY=V1,V2,..." -> values, split at top-level commas (JSON arrays and objects stay
// whole); each value is JSON when it parses, else a string.
GridAxis parse_grid_axis(const std::string& text);

// Every combination of the axes (the last axis varies fastest), as (key, value) lists.
std::vector<std::vector<std::pair<std::string, nlohmann::json>>> grid_combinations(
    const std::vector<GridAxis>& axes);

// A readable folder name for a combination, e.g. "type-lmf_rank-4_seed-1".
std::string combination_name(const std::vector<std::pair<std::string, nlohmann::json>>& combination);

struct SweepOutcome {
  std::string dir;
  int completed = 0, skipped = 0, failed = 0;
  std::vector<std::string> runs;  // combination names, in order
};
SweepOutcome run_sweep(const SweepArgs& args);

// The chart's x axis: `x` when given (a grid key other than seed; ConfigError otherwise),
// else the numeric grid key with the most values (the first of equals), else the first
// grid key with more than one value; nullptr when there is none.
const GridAxis* chart_x_axis(const std::vector<GridAxis>& axes, const std::string& x);

// Writes DIR/results.csv, DIR/summary.md (titled with the sweep's name) and DIR/chart.svg
// (against chart_x_axis(axes, x)) from the runs' results.json.
void write_sweep_reports(const std::string& dir, const std::string& name, const std::vector<GridAxis>& axes,
                         Task task, const std::string& x = "");

}  // namespace mmfusion
