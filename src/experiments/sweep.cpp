#include "mmfusion/experiments/sweep.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include <spdlog/spdlog.h>

#include "mmfusion/config/config.hpp"
#include "mmfusion/config/config_io.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "mmfusion/experiments/search.hpp"
#include "mmfusion/runtime/runtime.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A sweep as DIR/sweep.json records it, with every combination's config.
struct Plan {
  std::string name, dir, x;
  std::vector<std::string> baseline;  // --baseline KEY=VALUE
  json base = json::object();
  std::vector<std::string> sets;
  std::vector<GridAxis> axes;
  std::optional<SearchSpec> search;  // a random search instead of a grid
  int64_t threads = 0;  // each run's threads when several run at once (0: as configured)
  Task task = Task::Regression;
  std::vector<std::pair<std::string, json>> runs;  // (combination name, config), in grid order
};

constexpr const char* kSweepFile = "sweep.json";

// One run's config: the base, the sweep's --set, then the run's own values.
void add_run(Plan& plan, const std::string& run_name, const Combination& combination) {
  json doc = plan.base;
  for (const auto& s : plan.sets) apply_override(doc, s);
  for (const auto& [key, value] : combination) apply_override(doc, key + "=" + value.dump());
  doc["name"] = run_name;
  try {
    plan.task = parse_config(doc).task;
  } catch (const ConfigError& e) {
    throw ConfigError(std::string(plan.search ? "search run " : "sweep combination ") + run_name +
                      ": " + e.what());
  }
  plan.runs.emplace_back(run_name, doc);
}

// Every combination's config, built and validated before anything runs. A search's runs
// are its trials, then, once every trial has finished, the chosen trial's reruns.
void resolve_runs(Plan& plan) {
  chart_x_axis(plan.axes, plan.x);  // an unknown --x fails before anything runs
  plan.runs.clear();
  if (!plan.search) {
    for (const auto& combination : grid_combinations(plan.axes))
      add_run(plan, combination_name(combination), combination);
    return;
  }
  const std::vector<Combination> trials = draw_trials(*plan.search);
  for (size_t i = 0; i < trials.size(); ++i)
    add_run(plan, trial_name(i, trials.size()), trials[i]);
  std::optional<size_t> best;
  try {
    best = best_trial(plan.dir, *plan.search);
  } catch (const ConfigError&) {
    return;  // no trial to choose (yet): the search says why once its trials have run
  }
  if (best)
    for (const int64_t seed : plan.search->seeds) {
      Combination c = trials[*best];
      c.emplace_back("seed", seed);
      add_run(plan, rerun_name(seed), c);
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
          item.key() != "grid" && item.key() != "search")
        throw ConfigError(args.sweep_file + ": " + item.key() +
                          ": unknown key (known: name, base, set, grid, search)");
    if (file.contains("search")) {
      if (file.contains("grid") || !args.grid.empty())
        throw ConfigError(args.sweep_file +
                          ": a sweep has a grid or a search, not both (the search draws its own "
                          "settings; its reruns set the seed)");
      plan.search = parse_search(file["search"], args.sweep_file + ": search");
    }
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
      throw UsageError("--grid " + axis.key + ": the key is given twice on the command line");
    auto same = std::find_if(plan.axes.begin(), plan.axes.end(),
                             [&](const GridAxis& a) { return a.key == axis.key; });
    if (same != plan.axes.end())
      *same = std::move(axis);
    else
      plan.axes.push_back(std::move(axis));
  }
  if (plan.axes.empty() && !plan.search)
    throw UsageError("--grid: a sweep needs at least one grid axis (or a sweep file's search)");
  plan.x = args.x;
  // (A base that is no object, or whose name is no string, is the parser's to report.)
  if (plan.name.empty() && plan.base.is_object() && plan.base.contains("name") &&
      plan.base["name"].is_string())
    plan.name = plan.base["name"].get<std::string>();
  if (plan.name.empty()) plan.name = "sweep";
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
  if (plan.search) doc["search"] = search_json(*plan.search);
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
    if (doc.contains("search")) plan.search = parse_search(doc["search"], "search");
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
  auto search = [](const Plan& p) { return p.search ? search_json(*p.search) : json(); };
  return a.base == b.base && a.sets == b.sets && values(a) == values(b) && search(a) == search(b);
}

// results.csv and summary.md (and a grid's chart.svg), from the folder alone.
void write_reports(const Plan& plan) {
  if (plan.search)
    write_search_reports(plan.dir, plan.name, *plan.search, plan.task);
  else
    write_sweep_reports(plan.dir, plan.name, plan.axes, plan.task, plan.x, plan.baseline);
}

// The plan's runs as the pool trains them.
RunSet run_set(const Plan& plan, const std::string& executable) {
  return {plan.dir, plan.runs, plan.threads, {executable, "sweep", "--out", plan.dir}};
}

}  // namespace

SweepOutcome run_sweep(const SweepArgs& args) {
  SweepOutcome outcome;
  if (!args.report.empty()) {  // the reports of a sweep folder, from the folder alone
    Plan plan = plan_from_folder(args.report);
    plan.baseline = args.baseline;
    outcome.dir = plan.dir;
    for (const auto& run : plan.runs) outcome.runs.push_back(run.first);
    write_reports(plan);
    return outcome;
  }
  if (!args.worker.empty()) {  // one combination, for a parent sweep with --jobs
    if (args.out.empty()) throw UsageError("--worker needs --out DIR (the sweep folder)");
    Plan plan = plan_from_folder(args.out);
    plan.threads = args.worker_threads;
    const auto it = std::find_if(plan.runs.begin(), plan.runs.end(),
                                 [&](const auto& r) { return r.first == args.worker; });
    if (it == plan.runs.end())
      throw UsageError("--worker " + args.worker + ": not a combination of " + plan.dir);
    outcome.dir = plan.dir;
    outcome.runs = {args.worker};
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // its sweep gone (even killed), it saves and stops
    auto log = make_logger((fs::path(plan.dir) / "sweep.log").string(), "sweep: ");
    train_in_process(run_set(plan, ""), it - plan.runs.begin(), *log, outcome);
    return outcome;
  }
  if (args.jobs < 1)
    throw UsageError("--jobs " + std::to_string(args.jobs) + ": expected 1 or more");
  const Shard shard = parse_shard(args.shard);
  Plan plan = plan_from_args(args);
  plan.baseline = args.baseline;
  if (plan.search && !args.baseline.empty())
    throw UsageError("--baseline: a search compares its chosen trial's reruns with nothing; "
                     "use it with a grid");
  baseline_combination(plan.axes, args.baseline);  // a wrong --baseline before any training
  if (plan.search && !args.shard.empty())
    throw UsageError("--shard: a search's reruns wait for all its trials and its choice; run it "
                      "in one process (--jobs trains several trials at once)");
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
  // Shards must run one sweep: a shard whose base, --set or grid differ from the record
  // is refused, since the report would mix two sweeps. (A whole sweep may change its
  // record: a rerun with more seeds, say.)
  write_run_record(
      plan.dir, kSweepFile, sweep_file_text(plan), sharded,
      [&] { return same_sweep(plan_from_folder(plan.dir), plan); },
      "--shard " + args.shard + ": " + plan.dir + " holds another sweep (its " + kSweepFile +
          " gives another base, --set or grid); shards must run the same sweep");
  auto log = make_logger((fs::path(plan.dir) / "sweep.log").string(), "sweep: ");
  log->info("{} of {} combinations in {}{}{}", indices.size(), plan.runs.size(), plan.dir,
            sharded ? fmt::format(" (shard {}/{})", shard.index, shard.count) : "",
            args.jobs > 1
                ? fmt::format(", {} at once with {} threads each", args.jobs, plan.threads)
                : "");
  auto train = [&](const std::vector<size_t>& which) {
    const RunSet set = run_set(plan, args.executable);
    if (args.jobs > 1) {
      train_in_workers(set, which, args.jobs, *log, outcome);
    } else {
      train_all_in_process(set, which, *log, outcome);
    }
  };
  try {
    train(indices);
    if (plan.search) {  // the trials are done: choose on validation, then the reruns
      const size_t trials = plan.runs.size();
      resolve_runs(plan);
      const auto best = best_trial(plan.dir, *plan.search);  // ConfigError: none to choose
      if (!best)
        log->warn("search: some trials have not finished (another process holds them); the "
                  "chosen trial's reruns wait for the next run of this search");
      else
        log->info("search: {} has the best validation {} of {} trials; training it with {} seeds",
                  trial_name(*best, trials), plan.search->select, trials,
                  plan.search->seeds.size());
      std::vector<size_t> reruns;
      for (size_t i = trials; i < plan.runs.size(); ++i)
        reruns.push_back(i), outcome.runs.push_back(plan.runs[i].first);
      train(reruns);
    }
  } catch (const Interrupted&) {
    write_reports(plan);
    throw;
  }
  write_reports(plan);
  log->info(
      "done: {} trained, {} skipped, {} left to other processes, {} failed; results in {}/results.csv, "
      "summary.md, chart.svg",
      outcome.completed, outcome.skipped, outcome.busy, outcome.failed, plan.dir);
  // The runs' loggers became the default one in turn: the sweep's own log is checked here.
  if (const std::string failed = log_write_failure(*log); !failed.empty()) throw WriteError(failed);
  return outcome;
}

}  // namespace mmfusion
