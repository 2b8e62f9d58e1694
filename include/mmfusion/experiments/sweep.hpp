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
#include "mmfusion/experiments/grid.hpp"
#include "mmfusion/experiments/run_pool.hpp"
#include "mmfusion/experiments/sweep_report.hpp"

namespace mmfusion {

struct SweepArgs {
  std::string config;             // base config file (or given by the sweep file)
  std::string sweep_file;         // JSON: {"name", "base", "set": [...], "grid": {key: [values]}}
  std::vector<std::string> grid;  // --grid KEY=V1,V2,...
  std::vector<std::string> overrides;  // --set KEY=VALUE, applied to the base
  std::string out;                     // default runs/sweep-<name>
  bool dry_run = false;                // validate every combination, train nothing
  std::string x;       // --x KEY: the chart's x axis (a grid key); "" = the rule below
  int jobs = 1;        // --jobs J: combinations at once, one process each
  std::string shard;   // --shard K/N: this process's share ("" = all)
  std::string report;  // --report DIR: rebuild DIR's reports, train nothing
  // --baseline KEY=VALUE (one per grid key but seed): the combination summary.md's paired
  // comparisons are against, instead of the best one
  std::vector<std::string> baseline;
  // --worker NAME (what --jobs starts): train that combination of --out's sweep.json
  std::string worker;
  int64_t worker_threads = 0;  // --worker-threads T: its threads (0: as configured)
  std::string executable;      // the mmfusion executable --jobs starts workers with
};

using SweepOutcome = RunsOutcome;  // runs: this process's combination names
SweepOutcome run_sweep(const SweepArgs& args);

}  // namespace mmfusion
