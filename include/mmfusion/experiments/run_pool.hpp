#pragma once
// A set of ordinary training runs in one folder, DIR/<name>/ each, as a sweep's
// combinations and attribute's subsets are: trained one after another in this process,
// or several at once in worker processes (--jobs), or a share of them per machine
// (--shard K/N over a shared folder). Every run trains under its folder's lock
// (run_folder.hpp), so shards and reruns never train one twice; a complete run is
// skipped, an interrupted one resumed from its last checkpoint, a failing one recorded
// (DIR/<name>/error.txt) and the rest go on. Who plans the runs and reads their results
// is not this module's concern.
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

namespace mmfusion {

struct RunSet {
  std::string dir;
  std::vector<std::pair<std::string, nlohmann::json>> runs;  // (folder name, config), in order
  int64_t threads = 0;  // each run's threads when several run at once (0: as configured)
  // The command a worker for run NAME is started with: these arguments, then
  // `--worker NAME` (and `--worker-threads T` when threads > 0), e.g.
  // {"/path/mmfusion", "sweep", "--out", DIR}.
  std::vector<std::string> worker_command;
};

struct RunsOutcome {
  std::string dir;
  int completed = 0, skipped = 0, failed = 0;
  int busy = 0;                   // held by another process (another shard, a rerun): left to it
  std::vector<std::string> runs;  // this process's run names, in order
};

// The exit codes of a worker whose run another process holds, or that found it complete.
inline constexpr int kWorkerBusy = 75;
inline constexpr int kWorkerSkipped = 76;
// The exit code a worker returns for its outcome (0, 1, kWorkerBusy or kWorkerSkipped).
int worker_exit_code(const RunsOutcome& outcome);

// Trains run i of `set` in this process; counts it in `outcome`.
void train_in_process(const RunSet& set, size_t i, spdlog::logger& log, RunsOutcome& outcome);

// Trains the runs `indices` one after another in this process; each run's log line says
// how many are done and, once one has trained, about how long the rest will take (as
// train_in_workers' lines do).
void train_all_in_process(const RunSet& set, const std::vector<size_t>& indices,
                          spdlog::logger& log, RunsOutcome& outcome);

// Trains the runs `indices` in up to `jobs` worker processes at once, each in its own
// process group with OpenMP's passive wait policy (docs/performance.md); their output goes
// to DIR/logs/<name>.log. A stop signal is passed on to the workers, which save and exit;
// then Interrupted.
void train_in_workers(const RunSet& set, const std::vector<size_t>& indices, int jobs,
                      spdlog::logger& log, RunsOutcome& outcome);

// DIR/<file>, the record from which a folder's runs (and reports) are rebuilt. Alone, the
// record is replaced; shards share it: the first to start writes it (never over another
// shard's), and a shard for which `same(record on disk)` is false is refused with
// ConfigError naming `what_differs`.
void write_run_record(const std::string& dir, const std::string& file, const std::string& text,
                      bool sharded, const std::function<bool()>& same,
                      const std::string& what_differs);

}  // namespace mmfusion
