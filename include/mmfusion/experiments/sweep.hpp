#pragma once
// Sweeps: a base config, a grid of overrides, one ordinary run per combination in
// DIR/<combination>/: one after another, or several at once (--jobs, one process each),
// or a share of them per machine (--shard K/N over a shared folder). Every combination
// trains under its folder's lock (run_folder.hpp), so shards and reruns never train one
// twice. Completed combinations are skipped when the sweep runs again; a failing one is
// reported and the sweep goes on. DIR/sweep.json records the sweep, so that its reports
// can be rebuilt from the folder alone.
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "mmfusion/config/config.hpp"

namespace mmfusion {

struct SweepArgs {
  std::string config;                  // base config file (or given by the sweep file)
  std::string sweep_file;              // JSON: {"name", "base", "set": [...], "grid": {key: [values]}}
  std::vector<std::string> grid;       // --grid KEY=V1,V2,...
  std::vector<std::string> overrides;  // --set KEY=VALUE, applied to the base
  std::string out;                     // default runs/sweep-<name>
  bool dry_run = false;                // validate every combination, train nothing
  std::string x;                       // --x KEY: the chart's x axis (a grid key); "" = the rule below
  int jobs = 1;                        // --jobs J: combinations at once, one process each
  std::string shard;                   // --shard K/N: this process's share ("" = all)
  std::string report;                  // --report DIR: rebuild DIR's reports, train nothing
  std::string worker;                  // --worker NAME (what --jobs starts): train that combination of --out's sweep.json
  int64_t worker_threads = 0;          // --worker-threads T: its threads (0: as configured)
  std::string executable;              // the mmfusion executable --jobs starts workers with
};

// The exit codes of a worker whose combination another process holds, or that found it
// complete.
inline constexpr int kSweepWorkerBusy = 75;
inline constexpr int kSweepWorkerSkipped = 76;

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
std::vector<std::vector<std::pair<std::string, nlohmann::json>>> grid_combinations(
    const std::vector<GridAxis>& axes);

// A readable folder name for a combination, e.g. "type-lmf_rank-4_seed-1".
std::string combination_name(const std::vector<std::pair<std::string, nlohmann::json>>& combination);

struct SweepOutcome {
  std::string dir;
  int completed = 0, skipped = 0, failed = 0;
  int busy = 0;                   // held by another process (another shard, a rerun): left to it
  std::vector<std::string> runs;  // this process's combination names, in order
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
