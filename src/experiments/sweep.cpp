#include "mmfusion/experiments/sweep.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include <spdlog/spdlog.h>

#include "mmfusion/training/run.hpp"
#include "mmfusion/config/config.hpp"
#include "mmfusion/config/config_io.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "mmfusion/runtime/runtime.hpp"

extern char** environ;

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A sweep as DIR/sweep.json records it, with every combination's config.
struct Plan {
  std::string name, dir, x;
  json base = json::object();
  std::vector<std::string> sets;
  std::vector<GridAxis> axes;
  int64_t threads = 0;  // each run's threads when several run at once (0: as configured)
  Task task = Task::Regression;
  std::vector<std::pair<std::string, json>> runs;  // (combination name, config), in grid order
};

constexpr const char* kSweepFile = "sweep.json";

// Every combination's config, built and validated before anything runs.
void resolve_runs(Plan& plan) {
  chart_x_axis(plan.axes, plan.x);  // an unknown --x fails before anything runs
  plan.runs.clear();
  for (const auto& combination : grid_combinations(plan.axes)) {
    json doc = plan.base;
    for (const auto& s : plan.sets) apply_override(doc, s);
    for (const auto& [key, value] : combination) apply_override(doc, key + "=" + value.dump());
    const std::string run_name = combination_name(combination);
    doc["name"] = run_name;
    try {
      plan.task = parse_config(doc).task;
    } catch (const ConfigError& e) {
      throw ConfigError("sweep combination " + run_name + ": " + e.what());
    }
    plan.runs.emplace_back(run_name, doc);
  }
}

// The plan of the command line: a sweep file, a base config, --set and --grid.
Plan plan_from_args(const SweepArgs& args) {
  Plan plan;
  if (!args.sweep_file.empty()) {
    const json file = read_json_file(args.sweep_file);
    if (!file.is_object()) throw ConfigError(args.sweep_file + ": expected a JSON object");
    for (const auto& item : file.items())
      if (item.key() != "name" && item.key() != "base" && item.key() != "set" &&
          item.key() != "grid")
        throw ConfigError(args.sweep_file + ": " + item.key() +
                          ": unknown key (known: name, base, set, grid)");
    plan.name = file.value("name", "");
    if (file.contains("base")) {
      const json& b = file["base"];
      if (b.is_string()) {
        // A relative base path is relative to the sweep file's folder.
        fs::path p(b.get<std::string>());
        if (p.is_relative()) p = fs::path(args.sweep_file).parent_path() / p;
        plan.base = read_json_file(p.string());
      } else if (b.is_object()) {
        plan.base = b;
      } else {
        throw ConfigError(args.sweep_file +
                          ": base: expected a config file path or a config object");
      }
    }
    if (file.contains("set")) {
      if (!file["set"].is_object())
        throw ConfigError(args.sweep_file + ": set: expected an object {key: value}");
      for (const auto& item : file["set"].items())
        plan.sets.push_back(item.key() + "=" + item.value().dump());
    }
    if (file.contains("grid")) {
      // In the keys' alphabetical order (a JSON object's), which names the folders.
      if (!file["grid"].is_object())
        throw ConfigError(args.sweep_file + ": grid: expected an object {key: [values]}");
      for (const auto& item : file["grid"].items()) {
        if (!item.value().is_array() || item.value().empty())
          throw ConfigError(args.sweep_file + ": grid." + item.key() +
                            ": expected a non-empty list of values");
        plan.axes.push_back(
            {item.key(), std::vector<json>(item.value().begin(), item.value().end())});
      }
    }
  }
  if (!args.config.empty()) plan.base = read_json_file(args.config);
  plan.sets.insert(plan.sets.end(), args.overrides.begin(), args.overrides.end());
  // A --grid key that the sweep file grids too replaces the file's values (the command
  // line wins, as --set does over the base); the same key twice on the command line is
  // an error.
  std::set<std::string> command_line_keys;
  for (const auto& g : args.grid) {
    GridAxis axis = parse_grid_axis(g);
    if (!command_line_keys.insert(axis.key).second)
      throw ConfigError("--grid " + axis.key + ": the key is given twice on the command line");
    auto same = std::find_if(plan.axes.begin(), plan.axes.end(),
                             [&](const GridAxis& a) { return a.key == axis.key; });
    if (same != plan.axes.end())
      *same = std::move(axis);
    else
      plan.axes.push_back(std::move(axis));
  }
  if (plan.axes.empty()) throw ConfigError("--grid: a sweep needs at least one grid axis");
  plan.x = args.x;
  if (plan.name.empty()) plan.name = plan.base.value("name", "sweep");
  plan.dir = args.out.empty() ? (fs::path("runs") / ("sweep-" + plan.name)).string() : args.out;
  return plan;
}

// sweep.json: the sweep file's keys, plus "axes" (the grid keys in the order that names
// the folders; a JSON object's keys are sorted) and "x".
std::string sweep_file_text(const Plan& plan) {
  json grid = json::object(), axes = json::array();
  for (const auto& a : plan.axes) grid[a.key] = a.values, axes.push_back(a.key);
  json doc = {
      {"name", plan.name}, {"base", plan.base}, {"set", plan.sets}, {"grid", grid}, {"axes", axes}};
  if (!plan.x.empty()) doc["x"] = plan.x;
  return doc.dump(2) + "\n";
}

// The plan a sweep folder records.
Plan plan_from_folder(const std::string& dir) {
  const std::string file = (fs::path(dir) / kSweepFile).string();
  if (!fs::exists(file)) throw ConfigError(dir + ": no " + kSweepFile + " (not a sweep folder)");
  try {
    const json doc = read_json_file(file);
    Plan plan;
    plan.dir = dir;
    plan.name = doc.at("name").get<std::string>();
    plan.base = doc.at("base");
    plan.sets = doc.at("set").get<std::vector<std::string>>();
    // Records written before "axes" existed: the grid's sorted keys, right for sweep
    // files; a --grid order other than alphabetical shows as missing runs.
    std::vector<std::string> keys;
    for (const auto& item : doc.at("grid").items()) keys.push_back(item.key());
    if (doc.contains("axes")) keys = doc["axes"].get<std::vector<std::string>>();
    for (const auto& key : keys) {
      const json& values = doc["grid"].at(key);
      plan.axes.push_back({key, std::vector<json>(values.begin(), values.end())});
    }
    plan.x = doc.value("x", "");
    resolve_runs(plan);
    return plan;
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(file + ": not a sweep record: " + e.what());
  } catch (const ConfigError& e) { throw ConfigError(file + ": " + e.what()); }
}

// The same base, overrides and grid values per key (the axes' order aside: records
// written before "axes" existed have lost it).
bool same_sweep(const Plan& a, const Plan& b) {
  auto values = [](const Plan& p) {
    std::map<std::string, std::vector<json>> m;
    for (const auto& axis : p.axes) m[axis.key] = axis.values;
    return m;
  };
  return a.base == b.base && a.sets == b.sets && values(a) == values(b);
}

enum class RunStatus { Trained, Skipped, Busy, Failed };

void count(SweepOutcome& outcome, RunStatus status) {
  switch (status) {
    case RunStatus::Trained: ++outcome.completed; break;
    case RunStatus::Skipped: ++outcome.skipped; break;
    case RunStatus::Busy: ++outcome.busy; break;
    case RunStatus::Failed: ++outcome.failed; break;
  }
}

std::string progress(const Plan& plan, size_t i) {
  return fmt::format("[{}/{}] {}", i + 1, plan.runs.size(), plan.runs[i].first);
}

fs::path run_dir_of(const Plan& plan, size_t i) { return fs::path(plan.dir) / plan.runs[i].first; }

void record_failure(const fs::path& run_dir, std::string message) {
  std::replace(message.begin(), message.end(), '\n', ' ');
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  atomic_write_text(RunPaths(run_dir.string()).error, message + "\n");
}

// Trains combination i in this process, under its folder's lock: skipped when complete
// or held by another process, resumed from its last checkpoint, else started afresh.
RunStatus run_combination(const Plan& plan, size_t i, spdlog::logger& log) {
  const fs::path run_dir = run_dir_of(plan, i);
  if (fs::exists(RunPaths(run_dir.string()).results)) {
    log.info("{}: complete, skipped", progress(plan, i));
    return RunStatus::Skipped;
  }
  RunLock lock;
  try {
    lock = RunLock(run_dir.string());
  } catch (const RunFolderInUse& e) {
    log.info("{}: left to its holder: {}", progress(plan, i), e.what());
    return RunStatus::Busy;
  }
  if (fs::exists(RunPaths(run_dir.string()).results)) {  // completed while this process waited
    log.info("{}: complete, skipped", progress(plan, i));
    return RunStatus::Skipped;
  }
  std::error_code ec;
  TrainArgs train;
  if (fs::exists(RunPaths(run_dir.string()).last)) {
    // An earlier attempt's error; this one writes its own.
    fs::remove(RunPaths(run_dir.string()).error, ec);
    train.resume = RunPaths(run_dir.string()).last;
    if (plan.threads > 0) train.overrides.push_back("threads=" + std::to_string(plan.threads));
    log.info("{}: resuming", progress(plan, i));
  } else {
    if (!is_empty_run_dir(run_dir.string())) {
      // A run that failed before its first checkpoint: keep it, aside (all but the lock,
      // which stays with the folder), and start over.
      const fs::path aside = run_dir.string() + ".failed-" + timestamp();
      fs::create_directories(aside, ec);
      for (const auto& entry : fs::directory_iterator(run_dir, ec))
        if (entry.path().filename() != RunLock::kFileName)
          fs::rename(entry.path(), aside / entry.path().filename(), ec);
      log.info("{}: earlier attempt moved to {}", progress(plan, i), aside.string());
    }
    train.config_doc = plan.runs[i].second;
    if (plan.threads > 0) train.config_doc["threads"] = plan.threads;
    train.out = run_dir.string();
    log.info("{}: training", progress(plan, i));
  }
  try {
    run_train(train);
    return RunStatus::Trained;
  } catch (const Interrupted&) { throw; } catch (const std::exception& e) {
    log.error("{}: failed: {}", progress(plan, i), e.what());
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

// Starts `executable sweep --out DIR --worker NAME` for combination i, its output to
// log_file, in a process group of its own (a terminal's ^C reaches the sweep alone).
pid_t spawn_worker(const Plan& plan, size_t i, const std::string& executable,
                   std::vector<std::string> environment, const std::string& log_file) {
  std::vector<std::string> argv_text{executable, "sweep",    "--out",
                                     plan.dir,   "--worker", plan.runs[i].first};
  if (plan.threads > 0)
    argv_text.insert(argv_text.end(), {"--worker-threads", std::to_string(plan.threads)});
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
  posix_spawn_file_actions_addclosefrom_np(&actions, 3);  // no other file of the sweep's (its log)
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETPGROUP);
  posix_spawnattr_setpgroup(&attributes, 0);
  pid_t pid = 0;
  const int error =
      posix_spawn(&pid, executable.c_str(), &actions, &attributes, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  if (error != 0)
    throw Error(executable + ": cannot start a sweep worker: " + std::strerror(error));
  return pid;
}

// Runs the combinations `indices` in up to `jobs` worker processes at once
// (`executable` sweep --out DIR --worker NAME), each in its own process group with
// OpenMP's passive wait policy: spinning OpenMP threads of several processes on the
// same cores slowed training 100-fold (docs/performance.md). A stop signal is passed on
// to the workers, which save and exit; then Interrupted.
void run_workers(const Plan& plan, const std::vector<size_t>& indices, int jobs,
                 const std::string& executable, spdlog::logger& log, SweepOutcome& outcome) {
  if (executable.empty()) throw Error("sweep --jobs: no mmfusion executable to start workers with");
  const fs::path logs = fs::path(plan.dir) / "logs";
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
  auto start = [&](size_t i) {
    const std::string log_file = (logs / (plan.runs[i].first + ".log")).string();
    const pid_t pid = spawn_worker(plan, i, executable, environment, log_file);
    running[pid] = i;
    log.info("{}: training in process {} (log: {})", progress(plan, i), pid, log_file);
  };
  auto finish = [&](pid_t pid, int status) {
    const size_t i = running.at(pid);
    running.erase(pid);
    const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    if (code == 0) return count(outcome, RunStatus::Trained);
    if (code == kSweepWorkerBusy) return count(outcome, RunStatus::Busy);
    if (code == kSweepWorkerSkipped) return count(outcome, RunStatus::Skipped);
    if (code == 130 ||
        (WIFSIGNALED(status) && (WTERMSIG(status) == SIGTERM || WTERMSIG(status) == SIGINT)))
      return log.info("{}: stopped; rerun the sweep to continue it", progress(plan, i));
    count(outcome, RunStatus::Failed);
    const fs::path run_dir = run_dir_of(plan, i);
    const std::string how = WIFSIGNALED(status)
                                ? "was killed by signal " + std::to_string(WTERMSIG(status))
                                : "exited with code " + std::to_string(code);
    log.error("{}: failed: its worker {}", progress(plan, i), how);
    // A worker that could not write it itself; under its lock, since another may hold it
    // by now.
    try {
      RunLock lock(run_dir.string());
      if (!fs::exists(RunPaths(run_dir.string()).error))
        record_failure(run_dir, "the worker process " + how + " (see " +
                                    (logs / (plan.runs[i].first + ".log")).string() + ")");
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
      if (fs::exists(RunPaths(run_dir_of(plan, i).string()).results)) {
        log.info("{}: complete, skipped", progress(plan, i));
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
  if (stopping) throw Interrupted("sweep stopped by signal; rerun the same command to continue it");
}

}  // namespace

SweepOutcome run_sweep(const SweepArgs& args) {
  SweepOutcome outcome;
  if (!args.report.empty()) {  // the reports of a sweep folder, from the folder alone
    const Plan plan = plan_from_folder(args.report);
    outcome.dir = plan.dir;
    for (const auto& run : plan.runs) outcome.runs.push_back(run.first);
    write_sweep_reports(plan.dir, plan.name, plan.axes, plan.task, plan.x);
    return outcome;
  }
  if (!args.worker.empty()) {  // one combination, for a parent sweep with --jobs
    if (args.out.empty()) throw ConfigError("--worker needs --out DIR (the sweep folder)");
    Plan plan = plan_from_folder(args.out);
    plan.threads = args.worker_threads;
    const auto it = std::find_if(plan.runs.begin(), plan.runs.end(),
                                 [&](const auto& r) { return r.first == args.worker; });
    if (it == plan.runs.end())
      throw ConfigError("--worker " + args.worker + ": not a combination of " + plan.dir);
    outcome.dir = plan.dir;
    outcome.runs = {args.worker};
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // its sweep gone (even killed), it saves and stops
    auto log = make_logger((fs::path(plan.dir) / "sweep.log").string(), "sweep: ");
    count(outcome, run_combination(plan, it - plan.runs.begin(), *log));
    return outcome;
  }
  if (args.jobs < 1)
    throw ConfigError("--jobs " + std::to_string(args.jobs) + ": expected 1 or more");
  const Shard shard = parse_shard(args.shard);
  Plan plan = plan_from_args(args);
  resolve_runs(plan);
  if (args.jobs > 1 && parse_config(plan.runs.front().second).threads == 0) {
    // All hardware threads, shared: J runs on cores / J each.
    plan.threads = std::max<int64_t>(1, available_cores() / args.jobs);
  }

  outcome.dir = plan.dir;
  std::vector<size_t> indices;  // this process's share, in grid order
  for (size_t i = 0; i < plan.runs.size(); ++i)
    if (shard.contains(i)) indices.push_back(i), outcome.runs.push_back(plan.runs[i].first);
  if (args.dry_run) return outcome;
  // Shards share the folder (--shard 0/1 too: a shard started twice); any other sweep has
  // it to itself.
  const bool sharded = !args.shard.empty();
  RunLock lock(plan.dir, sharded ? RunLock::Mode::Shared : RunLock::Mode::Exclusive);
  const std::string record = (fs::path(plan.dir) / kSweepFile).string();
  if (sharded) {
    // Shards must run one sweep: the first to start writes the record (never over another
    // shard's), and a shard whose base, --set or grid differ from it is refused, since the
    // report would mix two sweeps. (A whole sweep may change its record: a rerun with more
    // seeds, say.)
    const std::string mine = record + "." + std::to_string(::getpid());
    atomic_write_text(mine, sweep_file_text(plan));
    if (::link(mine.c_str(), record.c_str()) != 0 && errno != EEXIST)
      throw Error(record + ": cannot write the sweep's record: " + std::strerror(errno));
    std::error_code ec;
    fs::remove(mine, ec);
    if (!same_sweep(plan_from_folder(plan.dir), plan))
      throw ConfigError("--shard " + args.shard + ": " + plan.dir + " holds another sweep (its " +
                        kSweepFile +
                        " gives another base, --set or grid); shards must run the same sweep");
  } else {
    atomic_write_text(record, sweep_file_text(plan));
  }
  auto log = make_logger((fs::path(plan.dir) / "sweep.log").string(), "sweep: ");
  log->info("{} of {} combinations in {}{}{}", indices.size(), plan.runs.size(), plan.dir,
            sharded ? fmt::format(" (shard {}/{})", shard.index, shard.count) : "",
            args.jobs > 1
                ? fmt::format(", {} at once with {} threads each", args.jobs, plan.threads)
                : "");
  try {
    if (args.jobs > 1) {
      run_workers(plan, indices, args.jobs, args.executable, *log, outcome);
    } else {
      for (const size_t i : indices) count(outcome, run_combination(plan, i, *log));
    }
  } catch (const Interrupted&) {
    write_sweep_reports(plan.dir, plan.name, plan.axes, plan.task, plan.x);
    throw;
  }
  write_sweep_reports(plan.dir, plan.name, plan.axes, plan.task, plan.x);
  log->info(
      "done: {} trained, {} skipped, {} left to other processes, {} failed; results in {}/results.csv, "
      "summary.md, chart.svg",
      outcome.completed, outcome.skipped, outcome.busy, outcome.failed, plan.dir);
  // The runs' loggers became the default one in turn: the sweep's own log is checked here.
  if (const std::string failed = log_write_failure(*log); !failed.empty()) throw WriteError(failed);
  return outcome;
}

}  // namespace mmfusion
