#include "mmfusion/experiments/run_pool.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/base/progress.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "mmfusion/runtime/runtime.hpp"
#include "mmfusion/training/run.hpp"

extern char** environ;

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

enum class RunStatus { Trained, Skipped, Busy, Failed };

void count(RunsOutcome& outcome, RunStatus status) {
  switch (status) {
    case RunStatus::Trained: ++outcome.completed; break;
    case RunStatus::Skipped: ++outcome.skipped; break;
    case RunStatus::Busy: ++outcome.busy; break;
    case RunStatus::Failed: ++outcome.failed; break;
  }
}

std::string progress(const RunSet& set, size_t i) {
  return fmt::format("[{}/{}] {}", i + 1, set.runs.size(), set.runs[i].first);
}

fs::path run_dir_of(const RunSet& set, size_t i) { return fs::path(set.dir) / set.runs[i].first; }

// How far this invocation's runs are: "; 4 of 21 done in 12 s, about 51 s left". The time
// left is the wall time so far per run trained (skipped ones cost nothing), times the runs
// to go; none before the first run has trained.
class Eta {
 public:
  explicit Eta(size_t total) : total_(total) {}
  std::string text(const RunsOutcome& o) const {
    const size_t done = size_t(o.completed + o.skipped + o.failed + o.busy);
    const size_t trained = size_t(o.completed + o.failed) - before_;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    if (trained == 0 || done - done_before_ >= total_) return "";
    const size_t left = total_ - (done - done_before_);
    return fmt::format("; {} of {} done in {}, about {} left", done - done_before_, total_,
                       duration_text(elapsed), duration_text(elapsed / double(trained) * double(left)));
  }
  void begin(const RunsOutcome& o) {
    before_ = size_t(o.completed + o.failed);
    done_before_ = size_t(o.completed + o.skipped + o.failed + o.busy);
  }

 private:
  size_t total_, before_ = 0, done_before_ = 0;
  std::chrono::steady_clock::time_point start_ = std::chrono::steady_clock::now();
};

void record_failure(const fs::path& run_dir, std::string message) {
  std::replace(message.begin(), message.end(), '\n', ' ');
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  atomic_write_text(RunPaths(run_dir.string()).error, message + "\n");
}

// Trains run i in this process, under its folder's lock: skipped when complete or held
// by another process, resumed from its last checkpoint, else started afresh.
RunStatus train_one(const RunSet& set, size_t i, spdlog::logger& log, const std::string& eta = "") {
  const fs::path run_dir = run_dir_of(set, i);
  if (fs::exists(RunPaths(run_dir.string()).results)) {
    log.info("{}: complete, skipped", progress(set, i));
    return RunStatus::Skipped;
  }
  RunLock lock;
  try {
    lock = RunLock(run_dir.string());
  } catch (const RunFolderInUse& e) {
    log.info("{}: left to its holder: {}", progress(set, i), e.what());
    return RunStatus::Busy;
  }
  if (fs::exists(RunPaths(run_dir.string()).results)) {  // completed while this process waited
    log.info("{}: complete, skipped", progress(set, i));
    return RunStatus::Skipped;
  }
  std::error_code ec;
  TrainArgs train;
  if (fs::exists(RunPaths(run_dir.string()).last)) {
    // An earlier attempt's error; this one writes its own.
    fs::remove(RunPaths(run_dir.string()).error, ec);
    train.resume = RunPaths(run_dir.string()).last;
    if (set.threads > 0) train.overrides.push_back("threads=" + std::to_string(set.threads));
    log.info("{}: resuming{}", progress(set, i), eta);
  } else {
    if (!is_empty_run_dir(run_dir.string())) {
      // A run that failed before its first checkpoint: keep it, aside (all but the lock,
      // which stays with the folder), and start over.
      const fs::path aside = run_dir.string() + ".failed-" + timestamp();
      fs::create_directories(aside, ec);
      for (const auto& entry : fs::directory_iterator(run_dir, ec))
        if (entry.path().filename() != RunLock::kFileName)
          fs::rename(entry.path(), aside / entry.path().filename(), ec);
      log.info("{}: earlier attempt moved to {}", progress(set, i), aside.string());
    }
    train.config_doc = set.runs[i].second;
    if (set.threads > 0) train.config_doc["threads"] = set.threads;
    train.out = run_dir.string();
    log.info("{}: training{}", progress(set, i), eta);
  }
  try {
    run_train(train);
    return RunStatus::Trained;
  } catch (const Interrupted&) { throw; } catch (const std::exception& e) {
    log.error("{}: failed: {}", progress(set, i), e.what());
    record_failure(run_dir, e.what());
    return RunStatus::Failed;
  }
}

// This process's environment with OMP_WAIT_POLICY=passive, as posix_spawn takes it.
std::vector<std::string> worker_environment() {
  std::vector<std::string> environment;
  for (char** e = environ; *e; ++e)
    if (std::string(*e).rfind("OMP_WAIT_POLICY=", 0) != 0) environment.emplace_back(*e);
  environment.emplace_back("OMP_WAIT_POLICY=passive");
  return environment;
}

// Starts the worker command for run i, its output to log_file, in a process group of its
// own (a terminal's ^C reaches the parent alone).
pid_t spawn_worker(const RunSet& set, size_t i, std::vector<std::string> environment,
                   const std::string& log_file) {
  std::vector<std::string> argv_text = set.worker_command;
  argv_text.insert(argv_text.end(), {"--worker", set.runs[i].first});
  const std::string executable = argv_text.front();
  if (set.threads > 0)
    argv_text.insert(argv_text.end(), {"--worker-threads", std::to_string(set.threads)});
  std::vector<char*> argv, envp;
  for (auto& a : argv_text) argv.push_back(a.data());
  argv.push_back(nullptr);
  for (auto& e : environment) envp.push_back(e.data());
  envp.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND,
                                   0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);  // no other file of the parent's (its log)
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attributes, 0);
  pid_t pid = 0;
  const int error =
      posix_spawn(&pid, executable.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0) throw Error(executable + ": cannot start a worker: " + std::strerror(error));
  return pid;
}

}  // namespace

// Spinning OpenMP threads of several processes on the same cores slowed training
// 100-fold (docs/performance.md): hence the passive wait policy.
void train_in_workers(const RunSet& set, const std::vector<size_t>& indices, int jobs,
                      spdlog::logger& log, RunsOutcome& outcome) {
  if (set.worker_command.empty() || set.worker_command.front().empty())
    throw Error("--jobs: no mmfusion executable to start workers with");
  const fs::path logs = fs::path(set.dir) / "logs";
  std::error_code ec;
  fs::create_directories(logs, ec);
  if (ec) throw Error(logs.string() + ": cannot create the workers' log folder: " + ec.message());
  const std::vector<std::string> environment = worker_environment();

  StopSignals signals;
  std::map<pid_t, size_t> running;
  // However this function ends (an error included), no worker outlives it unasked: the
  // ones still running are told to save and stop, and waited for.
  struct Reaper {
    std::map<pid_t, size_t>& running;
    ~Reaper() {
      for (const auto& [pid, i] : running) ::kill(pid, SIGTERM);
      for (const auto& [pid, i] : running) ::waitpid(pid, nullptr, 0);
    }
  } reaper{running};
  Eta eta(indices.size());
  eta.begin(outcome);
  auto start = [&](size_t i) {
    const std::string log_file = (logs / (set.runs[i].first + ".log")).string();
    const pid_t pid = spawn_worker(set, i, environment, log_file);
    running[pid] = i;
    log.info("{}: training in process {} (log: {}){}", progress(set, i), pid, log_file,
             eta.text(outcome));
  };
  auto finish = [&](pid_t pid, int status) {
    const size_t i = running.at(pid);
    running.erase(pid);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 0) return count(outcome, RunStatus::Trained);
    if (code == kWorkerBusy) return count(outcome, RunStatus::Busy);
    if (code == kWorkerSkipped) return count(outcome, RunStatus::Skipped);
    if (code == 130 ||
        (WIFSIGNALED(status) && (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGINT)))
      return log.info("{}: stopped; rerun the same command to continue it", progress(set, i));
    count(outcome, RunStatus::Failed);
    const fs::path run_dir = run_dir_of(set, i);
    const std::string how = WIFSIGNALED(status)
                                ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                : "exited with code " + std::to_string(code);
    log.error("{}: failed: its worker {}", progress(set, i), how);
    // A worker that could not write it itself; under its lock, since another may hold it
    // by now.
    try {
      RunLock lock(run_dir.string());
      if (!fs::exists(RunPaths(run_dir.string()).error))
        record_failure(run_dir, "the worker process " + how + " (see " +
                                    (logs / (set.runs[i].first + ".log")).string() + ")");
    } catch (const RunFolderInUse&) {}
  };

  size_t next = 0;
  bool stopping = false;
  while (running.size() > 0 || (!stopping && next < indices.size())) {
    if (stop_signal() && !stopping) {
      stopping = true;
      log.warn("stop signal: asking {} worker(s) to save and stop", running.size());
      for (const auto& [pid, i] : running) ::kill(pid, SIGTERM);
    }
    if (!stopping && next < indices.size() && static_cast<int>(running.size()) < jobs) {
      const size_t i = indices[next++];
      if (fs::exists(RunPaths(run_dir_of(set, i).string()).results)) {
        log.info("{}: complete, skipped", progress(set, i));
        count(outcome, RunStatus::Skipped);
      } else {
        start(i);
      }
      continue;
    }
    int status = 0;
    const pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid > 0 && running.count(pid))
      finish(pid, status);
    else if (pid == 0 || (pid < 0 && errno == EINTR))
      ::usleep(100 * 1000);
    else if (pid < 0)
      break;  // no children left
  }
  if (stopping) throw Interrupted("stopped by signal; rerun the same command to continue it");
}

int worker_exit_code(const RunsOutcome& outcome) {
  if (outcome.failed > 0) return 1;
  if (outcome.busy > 0) return kWorkerBusy;
  return outcome.skipped > 0 ? kWorkerSkipped : 0;
}

void train_in_process(const RunSet& set, size_t i, spdlog::logger& log, RunsOutcome& outcome) {
  count(outcome, train_one(set, i, log));
}

void train_all_in_process(const RunSet& set, const std::vector<size_t>& indices,
                          spdlog::logger& log, RunsOutcome& outcome) {
  Eta eta(indices.size());
  eta.begin(outcome);
  for (const size_t i : indices) count(outcome, train_one(set, i, log, eta.text(outcome)));
}

void write_run_record(const std::string& dir, const std::string& file, const std::string& text,
                      bool sharded, const std::function<bool()>& same,
                      const std::string& what_differs) {
  const std::string record = (fs::path(dir) / file).string();
  if (!sharded) return atomic_write_text(record, text);
  const std::string mine = record + "." + std::to_string(::getpid());
  atomic_write_text(mine, text);
  if (::link(mine.c_str(), record.c_str()) != 0 && errno != EEXIST)
    throw Error(record + ": cannot write the record: " + std::strerror(errno));
  std::error_code ec;
  fs::remove(mine, ec);
  if (!same()) throw ConfigError(what_differs);
}

}  // namespace mmfusion
