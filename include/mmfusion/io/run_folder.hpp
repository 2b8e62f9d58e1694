#pragma once
// Run folders: where a run's files are, how a new folder is chosen (never an earlier run's),
// how a resumed run finds its folder, and its logger. Knows nothing of what runs
// inside.
#include <memory>
#include <string>

#include "mmfusion/base/errors.hpp"

namespace spdlog {
class logger;
}

namespace mmfusion {

// Files of a run folder: their names once, here (k...), and their paths in one folder.
struct RunPaths {
  explicit RunPaths(std::string dir);
  std::string dir, config, log, metrics, results, loss_svg, relevance_svg, error, checkpoints, last,
      best, nonfinite;

  static constexpr const char* kConfig = "config.json";
  static constexpr const char* kLog = "train.log";
  static constexpr const char* kMetrics = "metrics.jsonl";
  static constexpr const char* kResults = "results.json";
  static constexpr const char* kLossSvg = "loss.svg";
  static constexpr const char* kRelevanceSvg = "relevance.svg";
  static constexpr const char* kNonFinite = "nonfinite.json";  // data.nonfinite "zero"'s counts
  static constexpr const char* kError = "error.txt";  // why a sweep's combination failed
  static constexpr const char* kCheckpoints = "checkpoints";
  static constexpr const char* kLast = "last.pt";  // in checkpoints/
  static constexpr const char* kBest = "best.pt";  // in checkpoints/
};

// Another process holds a run folder's lock (RunLock).
struct RunFolderInUse : Error {
  using Error::Error;
};

// One writer per run folder: an advisory lock (flock) on DIR/.lock, held until the object
// is destroyed or released. The kernel drops it when the process ends, however it ends,
// so a killed run never blocks the next one. Shared locks coexist with each other, not
// with an exclusive one (sweep shards share their sweep folder). Taken again in the same
// process, a folder's lock is shared with the first holder (a sweep locks a combination's
// folder, then trains it in-process, which locks it too).
class RunLock {
 public:
  enum class Mode { Exclusive, Shared };
  RunLock() = default;
  // Creates DIR when missing (removed again on release if nothing but the lock file was
  // put in it). Throws RunFolderInUse ("DIR: run folder in use by process N") when
  // another process holds it, Error when it cannot be locked at all.
  explicit RunLock(const std::string& dir, Mode mode = Mode::Exclusive);
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&& other) noexcept;
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  ~RunLock();
  void release();

  static constexpr const char* kFileName = ".lock";

 private:
  std::string key_;  // the folder's absolute path; empty when nothing is held
};

// Whether a folder is missing or holds nothing but a lock file.
bool is_empty_run_dir(const std::string& dir);

// A fresh run folder: `out` must be new or empty, but for a lock file (ConfigError
// otherwise, naming how to continue that run); without `out`, runs/<name>-<timestamp>, with a
// suffix rather than reuse a folder.
std::string fresh_run_dir(const std::string& out, const std::string& name);

// The run folder of a checkpoint DIR/checkpoints/NAME.pt beside DIR/config.json
// (ConfigError when it is not in one).
std::string resume_run_dir(const std::string& checkpoint);

// Creates DIR and DIR/checkpoints when `with_checkpoints` (Error naming the folder).
void create_run_dir(const RunPaths& paths, bool with_checkpoints = true);

// A logger that writes to stderr and, when log_file is given, appends to it. `prefix` goes
// before every message (e.g. "sweep: "). It becomes spdlog's default logger.
// The first failure of `logger` (one of make_logger's) to append to its log file ("PATH:
// cannot write: REASON"), or "" when there was none. It stops writing that file after it.
std::string log_write_failure(const spdlog::logger& logger);
std::shared_ptr<spdlog::logger> make_logger(const std::string& log_file,
                                            const std::string& prefix = "");

}  // namespace mmfusion
