#include "mmfusion/sweep.hpp"

#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <spdlog/spdlog.h>

#include "mmfusion/commands.hpp"
#include "mmfusion/config.hpp"
#include "mmfusion/errors.hpp"
#include "mmfusion/files.hpp"
#include "mmfusion/run_folder.hpp"
#include "mmfusion/svg.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;
using Combination = std::vector<std::pair<std::string, json>>;

namespace {

std::string value_text(const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); }

std::string last_segment(const std::string& key) {
  const auto dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

struct Stats {
  double mean = NAN, std = NAN;
  size_t n = 0;
};
Stats stats(const std::vector<double>& v) {
  Stats s;
  s.n = v.size();
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / v.size();
  double sq = 0;
  for (double x : v) sq += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(sq / (v.size() - 1)) : 0.0;
  return s;
}

// A run's relevance score of one block (InTense), NaN when it has none.
double relevance_score(const json& results, const std::string& block) {
  const json score = results.value("relevance", json::object()).value(block, json());
  return score.is_number() ? score.get<double>() : NAN;
}

std::string format_stat(const Stats& s) {
  if (s.n == 0) return "-";
  char buf[64];
  if (s.n == 1) std::snprintf(buf, sizeof buf, "%.4g", s.mean);  // one run has no spread
  else std::snprintf(buf, sizeof buf, "%.4g ± %.2g", s.mean, s.std);
  return buf;
}

}  // namespace

GridAxis parse_grid_axis(const std::string& text) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw ConfigError("--grid " + text + ": expected KEY=V1,V2,... (e.g. model.rank=1,4,16)");
  GridAxis axis{text.substr(0, eq), {}};
  const std::string values = text.substr(eq + 1);
  int depth = 0;
  bool quoted = false;
  std::string current;
  for (size_t i = 0; i <= values.size(); ++i) {
    const char c = i < values.size() ? values[i] : ',';
    if (c == '"' && (i == 0 || values[i - 1] != '\\')) quoted = !quoted;
    if (!quoted && (c == '[' || c == '{')) ++depth;
    if (!quoted && (c == ']' || c == '}')) --depth;
    if (c == ',' && depth == 0 && !quoted) {
      if (current.empty()) throw ConfigError("--grid " + text + ": empty value");
      axis.values.push_back(parse_value(current));
      current.clear();
    } else {
      current += c;
    }
  }
  return axis;
}

std::vector<Combination> grid_combinations(const std::vector<GridAxis>& axes) {
  std::vector<Combination> out{{}};
  for (const auto& axis : axes) {
    std::vector<Combination> next;
    for (const auto& partial : out)
      for (const auto& v : axis.values) {
        Combination c = partial;
        c.emplace_back(axis.key, v);
        next.push_back(std::move(c));
      }
    out = std::move(next);
  }
  return out;
}

std::string combination_name(const Combination& combination) {
  std::map<std::string, int> seen;
  for (const auto& [key, v] : combination) seen[last_segment(key)]++;
  std::string name;
  for (const auto& [key, v] : combination) {
    std::string label = seen[last_segment(key)] > 1 ? key : last_segment(key);
    std::string text = label + "-" + value_text(v);
    for (char& c : text)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '-') c = '-';
    name += (name.empty() ? "" : "_") + text;
  }
  return name;
}

SweepOutcome run_sweep(const SweepArgs& args) {
  json base = json::object();
  std::vector<std::string> sets;
  std::vector<GridAxis> axes;
  std::string name;
  if (!args.sweep_file.empty()) {
    const json file = read_json_file(args.sweep_file);
    if (!file.is_object()) throw ConfigError(args.sweep_file + ": expected a JSON object");
    for (const auto& item : file.items())
      if (item.key() != "name" && item.key() != "base" && item.key() != "set" && item.key() != "grid")
        throw ConfigError(args.sweep_file + ": " + item.key() + ": unknown key (known: name, base, set, grid)");
    name = file.value("name", "");
    if (file.contains("base")) {
      const json& b = file["base"];
      if (b.is_string()) {
        // A relative base path is relative to the sweep file's folder.
        fs::path p(b.get<std::string>());
        if (p.is_relative()) p = fs::path(args.sweep_file).parent_path() / p;
        base = read_json_file(p.string());
      } else if (b.is_object()) {
        base = b;
      } else {
        throw ConfigError(args.sweep_file + ": base: expected a config file path or a config object");
      }
    }
    if (file.contains("set")) {
      if (!file["set"].is_object()) throw ConfigError(args.sweep_file + ": set: expected an object {key: value}");
      for (const auto& item : file["set"].items()) sets.push_back(item.key() + "=" + item.value().dump());
    }
    if (file.contains("grid")) {
      if (!file["grid"].is_object()) throw ConfigError(args.sweep_file + ": grid: expected an object {key: [values]}");
      for (const auto& item : file["grid"].items()) {
        if (!item.value().is_array() || item.value().empty())
          throw ConfigError(args.sweep_file + ": grid." + item.key() + ": expected a non-empty list of values");
        axes.push_back({item.key(), std::vector<json>(item.value().begin(), item.value().end())});
      }
    }
  }
  if (!args.config.empty()) base = read_json_file(args.config);
  sets.insert(sets.end(), args.overrides.begin(), args.overrides.end());
  // A --grid key that the sweep file grids too replaces the file's values (the command
  // line wins, as --set does over the base); the same key twice on the command line is
  // an error.
  std::set<std::string> command_line_keys;
  for (const auto& g : args.grid) {
    GridAxis axis = parse_grid_axis(g);
    if (!command_line_keys.insert(axis.key).second)
      throw ConfigError("--grid " + axis.key + ": the key is given twice on the command line");
    auto same = std::find_if(axes.begin(), axes.end(), [&](const GridAxis& a) { return a.key == axis.key; });
    if (same != axes.end()) *same = std::move(axis);
    else axes.push_back(std::move(axis));
  }
  if (axes.empty()) throw ConfigError("--grid: a sweep needs at least one grid axis");
  chart_x_axis(axes, args.x);  // an unknown --x fails before anything runs
  if (name.empty()) name = base.value("name", "sweep");
  const std::string dir = args.out.empty() ? (fs::path("runs") / ("sweep-" + name)).string() : args.out;

  // Every combination's config is built and validated before anything runs.
  const auto combinations = grid_combinations(axes);
  std::vector<std::pair<std::string, json>> runs;
  Task task = Task::Regression;
  for (const auto& combination : combinations) {
    json doc = base;
    for (const auto& s : sets) apply_override(doc, s);
    for (const auto& [key, value] : combination) apply_override(doc, key + "=" + value.dump());
    const std::string run_name = combination_name(combination);
    doc["name"] = run_name;
    try {
      task = parse_config(doc).task;
    } catch (const ConfigError& e) {
      throw ConfigError("sweep combination " + run_name + ": " + e.what());
    }
    runs.emplace_back(run_name, doc);
  }

  SweepOutcome outcome;
  outcome.dir = dir;
  for (const auto& run : runs) outcome.runs.push_back(run.first);
  if (args.dry_run) return outcome;
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the sweep folder: " + ec.message());
  json grid = json::object();
  for (const auto& a : axes) grid[a.key] = a.values;
  atomic_write_text((fs::path(dir) / "sweep.json").string(),
                    json{{"name", name}, {"base", base}, {"set", sets}, {"grid", grid}}.dump(2) + "\n");
  auto log = make_logger((fs::path(dir) / "sweep.log").string(), "sweep: ");
  log->info("{} combinations in {}", runs.size(), dir);

  for (size_t i = 0; i < runs.size(); ++i) {
    const auto& [run_name, doc] = runs[i];
    const fs::path run_dir = fs::path(dir) / run_name;
    if (fs::exists(run_dir / "results.json")) {
      log->info("[{}/{}] {}: complete, skipped", i + 1, runs.size(), run_name);
      ++outcome.skipped;
      continue;
    }
    TrainArgs train;
    if (fs::exists(run_dir / "checkpoints" / "last.pt")) {
      train.resume = (run_dir / "checkpoints" / "last.pt").string();
      log->info("[{}/{}] {}: resuming", i + 1, runs.size(), run_name);
    } else {
      if (fs::exists(run_dir) && !fs::is_empty(run_dir)) {
        // A run that failed before its first checkpoint: keep it, aside, and start over.
        const fs::path aside = run_dir.string() + ".failed-" + timestamp();
        fs::rename(run_dir, aside, ec);
        log->info("[{}/{}] {}: earlier attempt moved to {}", i + 1, runs.size(), run_name, aside.string());
      }
      train.config_doc = doc;
      train.out = run_dir.string();
      log->info("[{}/{}] {}: training", i + 1, runs.size(), run_name);
    }
    try {
      run_train(train);
      ++outcome.completed;
    } catch (const Interrupted&) {
      write_sweep_reports(dir, name, axes, task, args.x);
      throw;
    } catch (const std::exception& e) {
      ++outcome.failed;
      std::string message = e.what();
      std::replace(message.begin(), message.end(), '\n', ' ');
      log->error("[{}/{}] {}: failed: {}", i + 1, runs.size(), run_name, message);
      fs::create_directories(run_dir, ec);
      atomic_write_text((run_dir / "error.txt").string(), message + "\n");
    }
  }
  write_sweep_reports(dir, name, axes, task, args.x);
  log->info("done: {} trained, {} skipped, {} failed; results in {}/results.csv, summary.md, chart.svg",
            outcome.completed, outcome.skipped, outcome.failed, dir);
  return outcome;
}

const GridAxis* chart_x_axis(const std::vector<GridAxis>& axes, const std::string& x) {
  if (!x.empty()) {
    for (const auto& a : axes)
      if (a.key == x && a.key != "seed") return &a;
    std::string keys;
    for (const auto& a : axes)
      if (a.key != "seed") keys += (keys.empty() ? "" : ", ") + a.key;
    throw ConfigError("--x " + x + ": not a grid key of this sweep (grid keys: " + keys + ")");
  }
  const GridAxis* x_axis = nullptr;
  for (const auto& a : axes)  // the numeric axis with the most values
    if (a.key != "seed" && a.values.size() > 1 &&
        std::all_of(a.values.begin(), a.values.end(), [](const json& v) { return v.is_number(); }) &&
        (!x_axis || a.values.size() > x_axis->values.size()))
      x_axis = &a;
  for (const auto& a : axes)
    if (!x_axis && a.key != "seed" && a.values.size() > 1) x_axis = &a;
  return x_axis;
}

void write_sweep_reports(const std::string& dir, const std::string& name, const std::vector<GridAxis>& axes,
                         Task task, const std::string& x) {
  const bool classification = task == Task::Classification;
  const std::vector<std::string> main_metrics =
      classification ? std::vector<std::string>{"accuracy", "macro_f1", "loss"}
                     : std::vector<std::string>{"mse", "r2", "pearson", "mae"};
  const auto combinations = grid_combinations(axes);
  const bool seed_in_grid = std::any_of(axes.begin(), axes.end(), [](const GridAxis& a) { return a.key == "seed"; });

  struct Row {
    Combination combination;
    std::string name, status, error;
    json results;
    json config;
  };
  std::vector<Row> rows;
  std::set<std::string> metric_keys;
  std::vector<std::string> blocks;  // relevance scores' blocks (InTense), first seen first
  for (const auto& c : combinations) {
    Row row{c, combination_name(c), "missing", "", json(), json()};
    const fs::path run = fs::path(dir) / row.name;
    std::ifstream results(run / "results.json"), config(run / "config.json"), error(run / "error.txt");
    if (config) row.config = json::parse(config, nullptr, false);
    if (results) {
      row.results = json::parse(results, nullptr, false);
      row.status = row.results.is_object() ? "ok" : "unreadable";
      if (row.status == "ok") {
        for (const auto& item : row.results["test"].items())
          if (item.key() != "count") metric_keys.insert(item.key());
        const json relevance = row.results.value("relevance", json::object());
        for (const auto& item : relevance.items())
          if (std::find(blocks.begin(), blocks.end(), item.key()) == blocks.end()) blocks.push_back(item.key());
      }
    } else if (error) {
      std::getline(error, row.error);
      row.status = "failed";
    } else if (fs::exists(run)) {
      row.status = "incomplete";
    }
    rows.push_back(std::move(row));
  }

  // results.csv: one row per run.
  std::ostringstream csv;
  csv << "run";
  for (const auto& a : axes) csv << ',' << csv_field(a.key);
  if (!seed_in_grid) csv << ",seed";
  csv << ",status,best_epoch,epochs";
  for (const auto& k : metric_keys) csv << ",test_" << k;
  for (const auto& b : blocks) csv << ',' << csv_field("relevance_" + b);
  csv << ",parameters,train_seconds,samples_per_s,error\n";
  for (const auto& r : rows) {
    csv << csv_field(r.name);
    for (const auto& [key, value] : r.combination) csv << ',' << csv_field(value_text(value));
    if (!seed_in_grid) csv << ',' << (r.config.is_object() ? r.config.value("seed", json()).dump() : "");
    csv << ',' << r.status;
    const bool ok = r.status == "ok";
    csv << ',' << (ok ? r.results["best_epoch"].dump() : "") << ',' << (ok ? r.results["epochs"].dump() : "");
    for (const auto& k : metric_keys) csv << ',' << (ok && r.results["test"].contains(k) ? r.results["test"][k].dump() : "");
    for (const auto& b : blocks) {
      const double score = ok ? relevance_score(r.results, b) : NAN;
      csv << ',' << (std::isfinite(score) ? json(score).dump() : "");
    }
    csv << ',' << (ok ? r.results["parameters"]["total"].dump() : "") << ','
        << (ok ? r.results["train_seconds"].dump() : "") << ','
        << (ok ? r.results.value("samples_per_s", json()).dump() : "") << ',' << csv_field(r.error) << "\n";
  }
  atomic_write_text((fs::path(dir) / "results.csv").string(), csv.str());

  // summary.md: mean +- std over seeds for every other combination.
  std::vector<std::string> group_keys;
  for (const auto& a : axes)
    if (a.key != "seed") group_keys.push_back(a.key);
  auto group_of = [&](const Combination& c) {
    Combination g;
    for (const auto& kv : c)
      if (kv.first != "seed") g.push_back(kv);
    return g;
  };
  std::vector<Combination> groups;
  for (const auto& r : rows) {
    const auto g = group_of(r.combination);
    if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
  }
  auto collect = [&](const Combination& g, const std::function<double(const json&)>& get) {
    std::vector<double> v;
    for (const auto& r : rows)
      if (r.status == "ok" && group_of(r.combination) == g) v.push_back(get(r.results));
    return v;
  };
  std::ostringstream md;
  md << "# Sweep summary: " << name << "\n\n"
     << "Mean ± sample standard deviation over seeds of each run's best checkpoint on the test split "
        "(a single run: its value alone).\n\n|";
  for (const auto& k : group_keys) md << ' ' << k << " |";
  md << " runs |";
  for (const auto& m : main_metrics) md << " test " << m << " |";
  md << " parameters | train s | samples/s |\n|";
  for (size_t i = 0; i < group_keys.size() + main_metrics.size() + 4; ++i) md << " --- |";
  md << "\n";
  for (const auto& g : groups) {
    md << '|';
    for (const auto& kv : g) md << ' ' << value_text(kv.second) << " |";
    const auto n = collect(g, [](const json&) { return 1.0; }).size();
    md << ' ' << n << " |";
    for (const auto& m : main_metrics)
      md << ' ' << format_stat(stats(collect(g, [&](const json& r) { return r["test"].value(m, NAN); }))) << " |";
    const auto params = collect(g, [](const json& r) { return r["parameters"]["total"].get<double>(); });
    md << ' ' << (params.empty() ? std::string("-") : std::to_string(static_cast<int64_t>(params.front()))) << " |"
       << ' ' << format_stat(stats(collect(g, [](const json& r) { return r["train_seconds"].get<double>(); }))) << " |"
       << ' ' << format_stat(stats(collect(g, [](const json& r) { return r.value("samples_per_s", NAN); }))) << " |\n";
  }
  if (!blocks.empty()) {  // the relevance scores (InTense), mean +- std over seeds per block
    md << "\n## Relevance scores\n\n|";
    for (const auto& k : group_keys) md << ' ' << k << " |";
    for (const auto& b : blocks) md << ' ' << b << " |";
    md << "\n|";
    for (size_t i = 0; i < group_keys.size() + blocks.size(); ++i) md << " --- |";
    md << "\n";
    for (const auto& g : groups) {
      md << '|';
      for (const auto& kv : g) md << ' ' << value_text(kv.second) << " |";
      for (const auto& b : blocks)
        md << ' ' << format_stat(stats(collect(g, [&](const json& r) { return relevance_score(r, b); }))) << " |";
      md << "\n";
    }
  }
  atomic_write_text((fs::path(dir) / "summary.md").string(), md.str());

  // chart.svg: the main metric against one axis, one line per other combination.
  const std::string metric = main_metrics.front();
  const GridAxis* x_axis = chart_x_axis(axes, x);
  ChartOptions options;
  options.title = "test " + metric + " (mean ± std over seeds)";
  options.y_label = "test " + metric;
  options.x_label = x_axis ? x_axis->key : "run";
  const bool numeric_x = x_axis && x_axis->values.front().is_number();
  if (x_axis && !numeric_x)
    for (const auto& v : x_axis->values) options.x_categories.push_back(value_text(v));
  std::map<std::string, ChartSeries> lines;
  std::vector<std::string> order;
  for (const auto& g : groups) {
    std::string label;
    double x = 0;
    for (const auto& [key, value] : g) {
      if (x_axis && key == x_axis->key) {
        x = numeric_x ? value.get<double>()
                      : double(std::find(x_axis->values.begin(), x_axis->values.end(), value) - x_axis->values.begin());
        continue;
      }
      label += (label.empty() ? "" : ", ") + last_segment(key) + "=" + value_text(value);
    }
    if (label.empty()) label = metric;
    const Stats s = stats(collect(g, [&](const json& r) { return r["test"].value(metric, NAN); }));
    if (!lines.count(label)) order.push_back(label), lines[label].name = label;
    auto& line = lines[label];
    line.x.push_back(x), line.y.push_back(s.mean), line.error.push_back(s.std);
  }
  std::vector<ChartSeries> series;
  for (const auto& label : order) series.push_back(lines[label]);
  atomic_write_text((fs::path(dir) / "chart.svg").string(), line_chart(options, series));
}

}  // namespace mmfusion
