#include "mmfusion/experiments/sweep_report.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/base/svg.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "mmfusion/training/metrics.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

Stats stats(const std::vector<double>& v) {
  Stats s;
  s.n = v.size();
  if (v.empty()) return s;
  double sum = 0;
  for (double x : v) sum += x;
  s.mean = sum / double(v.size());
  double sq = 0;
  for (double x : v) sq += (x - s.mean) * (x - s.mean);
  s.std = v.size() > 1 ? std::sqrt(sq / double(v.size() - 1)) : 0.0;
  return s;
}

namespace {

// A run's relevance score of one block (InTense), NaN when it has none.
double relevance_score(const json& results, const std::string& block) {
  const json score = results.value("relevance", json::object()).value(block, json());
  return score.is_number() ? score.get<double>() : NAN;
}

std::string format_stat(const Stats& s) {
  if (s.n == 0) return "-";
  char buf[64];
  if (s.n == 1)
    std::snprintf(buf, sizeof buf, "%.4g", s.mean);  // one run has no spread
  else
    std::snprintf(buf, sizeof buf, "%.4g ± %.2g", s.mean, s.std);
  return buf;
}

}  // namespace

double student_t975(int64_t df) {
  static const double table[] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                                 2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
                                 2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                                 2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
  if (df < 1) return NAN;
  if (df <= 30) return table[df - 1];
  const double z = 1.959964, n = double(df);
  return z + (z * z * z + z) / (4 * n) + (5 * std::pow(z, 5) + 16 * z * z * z + 3 * z) / (96 * n * n);
}

Paired paired_difference(const std::vector<double>& a, const std::vector<double>& reference,
                         bool lower_is_better) {
  Paired p;
  std::vector<double> d;
  for (size_t i = 0; i < a.size() && i < reference.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(reference[i])) continue;
    d.push_back(a[i] - reference[i]);
    p.wins += lower_is_better ? a[i] < reference[i] : a[i] > reference[i];
  }
  p.n = int64_t(d.size());
  if (d.empty()) return p;
  for (double x : d) p.mean += x;
  p.mean /= double(d.size());
  if (p.n < 3) return p;
  double sq = 0;
  for (double x : d) sq += (x - p.mean) * (x - p.mean);
  const double half = student_t975(p.n - 1) * std::sqrt(sq / double(p.n - 1)) / std::sqrt(double(p.n));
  p.interval = true, p.low = p.mean - half, p.high = p.mean + half;
  p.resolved = p.low > 0 || p.high < 0;
  return p;
}

const GridAxis* chart_x_axis(const std::vector<GridAxis>& axes, const std::string& x) {
  if (!x.empty()) {
    for (const auto& a : axes)
      if (a.key == x && a.key != "seed") return &a;
    std::string keys;
    for (const auto& a : axes)
      if (a.key != "seed") keys += (keys.empty() ? "" : ", ") + a.key;
    throw UsageError("--x " + x + ": not a grid key of this sweep (grid keys: " + keys + ")");
  }
  const GridAxis* x_axis = nullptr;
  for (const auto& a : axes)  // the numeric axis with the most values
    if (a.key != "seed" && a.values.size() > 1 &&
        std::all_of(a.values.begin(), a.values.end(),
                    [](const json& v) { return v.is_number(); }) &&
        (!x_axis || a.values.size() > x_axis->values.size()))
      x_axis = &a;
  for (const auto& a : axes)
    if (!x_axis && a.key != "seed" && a.values.size() > 1) x_axis = &a;
  return x_axis;
}

namespace {

// What one combination's folder holds.
struct RunRow {
  Combination combination;
  std::string name, status, error;  // status: ok, failed, incomplete, missing or unreadable
  json results;
  json config;
  bool ok() const { return status == "ok"; }
};

struct SweepRuns {
  std::vector<RunRow> rows;  // grid order
  std::set<std::string> metric_keys;
  std::vector<std::string> blocks;  // relevance scores' blocks (InTense), first seen first
  bool seed_in_grid = false;
};

SweepRuns read_runs(const std::string& dir, const std::vector<GridAxis>& axes) {
  SweepRuns runs;
  runs.seed_in_grid =
      std::any_of(axes.begin(), axes.end(), [](const GridAxis& a) { return a.key == "seed"; });
  for (const auto& c : grid_combinations(axes)) {
    RunRow row{c, combination_name(c), "missing", "", json(), json()};
    const fs::path run = fs::path(dir) / row.name;
    const RunPaths files(run.string());
    std::ifstream results(files.results), config(files.config), error(files.error);
    if (config) row.config = json::parse(config, nullptr, false);
    if (results) {
      row.results = json::parse(results, nullptr, false);
      row.status = row.results.is_object() ? "ok" : "unreadable";
      if (row.ok()) {
        for (const auto& item : row.results["test"].items())
          if (item.key() != metric::kCount) runs.metric_keys.insert(item.key());
        const json relevance = row.results.value("relevance", json::object());
        for (const auto& item : relevance.items())
          if (std::find(runs.blocks.begin(), runs.blocks.end(), item.key()) == runs.blocks.end())
            runs.blocks.push_back(item.key());
      }
    } else if (error) {
      std::getline(error, row.error);
      row.status = "failed";
    } else if (fs::exists(run)) {
      row.status = "incomplete";
    }
    runs.rows.push_back(std::move(row));
  }
  return runs;
}

// results.csv: one row per run.
std::string results_csv(const SweepRuns& runs, const std::vector<GridAxis>& axes) {
  std::ostringstream csv;
  csv << "run";
  for (const auto& a : axes) csv << ',' << csv_field(a.key);
  if (!runs.seed_in_grid) csv << ",seed";
  csv << ",status,best_epoch,epochs";
  for (const auto& k : runs.metric_keys) csv << ",test_" << k;
  for (const auto& b : runs.blocks) csv << ',' << csv_field("relevance_" + b);
  csv << ",parameters,train_seconds,samples_per_s,error\n";
  for (const auto& r : runs.rows) {
    csv << csv_field(r.name);
    for (const auto& [key, value] : r.combination) csv << ',' << csv_field(value_text(value));
    if (!runs.seed_in_grid)
      csv << ',' << (r.config.is_object() ? r.config.value("seed", json()).dump() : "");
    csv << ',' << r.status;
    const bool ok = r.ok();
    csv << ',' << (ok ? r.results["best_epoch"].dump() : "") << ','
        << (ok ? r.results["epochs"].dump() : "");
    for (const auto& k : runs.metric_keys)
      csv << ',' << (ok && r.results["test"].contains(k) ? r.results["test"][k].dump() : "");
    for (const auto& b : runs.blocks) {
      const double score = ok ? relevance_score(r.results, b) : NAN;
      csv << ',' << (std::isfinite(score) ? json(score).dump() : "");
    }
    csv << ',' << (ok ? r.results["parameters"]["total"].dump() : "") << ','
        << (ok ? r.results["train_seconds"].dump() : "") << ','
        << (ok ? r.results.value("samples_per_s", json()).dump() : "") << ',' << csv_field(r.error)
        << "\n";
  }
  return csv.str();
}

// The combinations without their seed: the groups that summary.md and the chart average
// over, in first-seen order.
struct SeedGroups {
  explicit SeedGroups(const SweepRuns& runs) : runs(runs) {
    for (const auto& r : runs.rows) {
      const auto g = of(r.combination);
      if (std::find(list.begin(), list.end(), g) == list.end()) list.push_back(g);
    }
  }
  static Combination of(const Combination& c) {
    Combination g;
    for (const auto& kv : c)
      if (kv.first != "seed") g.push_back(kv);
    return g;
  }
  // `get` of every completed run of group g.
  std::vector<double> collect(const Combination& g,
                              const std::function<double(const json&)>& get) const {
    std::vector<double> v;
    for (const auto& r : runs.rows)
      if (r.ok() && of(r.combination) == g) v.push_back(get(r.results));
    return v;
  }
  const SweepRuns& runs;
  std::vector<Combination> list;
};

// summary.md: mean +- std over seeds for every other combination.
std::string summary_md(const SweepRuns& runs, const SeedGroups& groups,
                       const std::vector<GridAxis>& axes, const std::string& name, Task task) {
  const std::vector<std::string>& main_metrics = headline_metrics(task);
  std::vector<std::string> group_keys;
  for (const auto& a : axes)
    if (a.key != "seed") group_keys.push_back(a.key);
  auto summary = [&](const Combination& g, const std::function<double(const json&)>& get) {
    return format_stat(stats(groups.collect(g, get)));
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
  for (const auto& g : groups.list) {
    md << '|';
    for (const auto& kv : g) md << ' ' << value_text(kv.second) << " |";
    md << ' ' << groups.collect(g, [](const json&) { return 1.0; }).size() << " |";
    for (const auto& m : main_metrics)
      md << ' ' << summary(g, [&](const json& r) { return r["test"].value(m, NAN); }) << " |";
    const auto params =
        groups.collect(g, [](const json& r) { return r["parameters"]["total"].get<double>(); });
    md << ' '
       << (params.empty() ? std::string("-") : std::to_string(static_cast<int64_t>(params.front())))
       << " |" << ' ' << summary(g, [](const json& r) { return r["train_seconds"].get<double>(); })
       << " |" << ' ' << summary(g, [](const json& r) { return r.value("samples_per_s", NAN); })
       << " |\n";
  }
  if (!runs.blocks.empty()) {  // the relevance scores (InTense), mean +- std over seeds per block
    md << "\n## Relevance scores\n\n|";
    for (const auto& k : group_keys) md << ' ' << k << " |";
    for (const auto& b : runs.blocks) md << ' ' << b << " |";
    md << "\n|";
    for (size_t i = 0; i < group_keys.size() + runs.blocks.size(); ++i) md << " --- |";
    md << "\n";
    for (const auto& g : groups.list) {
      md << '|';
      for (const auto& kv : g) md << ' ' << value_text(kv.second) << " |";
      for (const auto& b : runs.blocks)
        md << ' ' << summary(g, [&](const json& r) { return relevance_score(r, b); }) << " |";
      md << "\n";
    }
  }
  return md.str();
}

// Each group's paired comparison with the best group (by the headline metric's mean), by
// seed, for every headline metric: summary.md's section and summary.json.
struct Comparisons {
  std::string markdown;
  json doc;
};
Comparisons paired_comparisons(const SweepRuns& runs, const SeedGroups& groups, Task task,
                               const Combination& baseline) {
  const std::vector<std::string>& metrics = headline_metrics(task);
  auto label = [](const Combination& g) {
    std::string s;
    for (const auto& [k, v] : g) s += (s.empty() ? "" : ", ") + last_segment(k) + "=" + value_text(v);
    return s.empty() ? std::string("(all runs)") : s;
  };
  // A run's seed: the grid's, else its config's.
  auto seed_of = [](const RunRow& r) -> std::string {
    for (const auto& [k, v] : r.combination)
      if (k == "seed") return v.dump();
    return r.config.is_object() ? r.config.value("seed", json()).dump() : "";
  };
  json doc = {{"selected_by", "validation loss (each run's best epoch)"},
              {"reported", "test"},
              {"interval", "95%, Student's t with n - 1 degrees of freedom over the seeds both have"},
              {"reference", nullptr},
              {"comparisons", json::array()}};
  std::ostringstream md;
  md << "\n## Paired comparisons\n\nEach run's epoch was chosen on the validation split; the "
        "figures are the test split's. Runs of one seed share their data, so each combination "
        "is compared with "
     << (baseline.empty() ? "the best one (by mean test " + metrics.front() + ")"
                          : std::string("the baseline named by --baseline"))
     << " seed by seed: the mean paired difference, its 95% interval (Student's t, n - 1 "
        "degrees of freedom; none with fewer than 3 shared seeds), and the seeds it wins. An "
        "interval that holds 0 is \"not resolved\".\n\n";
  if (groups.list.size() < 2) {
    md << "One combination: nothing to compare.\n";
    return {md.str(), doc};
  }
  const std::string& main = metrics.front();
  const bool lower = lower_is_better(main);
  size_t best = 0;
  double best_mean = NAN;
  for (size_t g = 0; g < groups.list.size(); ++g) {
    const Stats s = stats(groups.collect(groups.list[g], [&](const json& r) { return r["test"].value(main, NAN); }));
    if (s.n > 0 && (std::isnan(best_mean) || (lower ? s.mean < best_mean : s.mean > best_mean)))
      best = g, best_mean = s.mean;
  }
  if (!baseline.empty()) {
    const auto it = std::find(groups.list.begin(), groups.list.end(), baseline);
    if (it == groups.list.end())
      throw UsageError("--baseline " + label(baseline) + ": no completed run of that combination");
    best = size_t(it - groups.list.begin());
  }
  doc["reference"] = label(groups.list[best]);
  doc["reference_is"] = baseline.empty() ? "the best by mean test " + main : "--baseline";
  md << "Reference: **" << label(groups.list[best]) << "**.\n\n| combination | metric | mean difference | "
        "95% interval | seeds won | |\n| --- | --- | --- | --- | --- | --- |\n";
  // Per group: metric value by seed.
  auto by_seed = [&](size_t g, const std::string& m) {
    std::map<std::string, double> out;
    for (const auto& r : runs.rows)
      if (r.ok() && SeedGroups::of(r.combination) == groups.list[g])
        out[seed_of(r)] = r.results["test"].value(m, NAN);
    return out;
  };
  for (size_t g = 0; g < groups.list.size(); ++g) {
    if (g == best) continue;
    for (const auto& m : metrics) {
      const auto mine = by_seed(g, m), ref = by_seed(best, m);
      std::vector<double> a, b;
      for (const auto& [seed, v] : mine)
        if (ref.count(seed)) a.push_back(v), b.push_back(ref.at(seed));
      const Paired p = paired_difference(a, b, lower_is_better(m));
      char diff[64], ci[96];
      std::snprintf(diff, sizeof diff, "%+.4g", p.mean);
      if (p.interval)
        std::snprintf(ci, sizeof ci, "[%+.4g, %+.4g]", p.low, p.high);
      else
        std::snprintf(ci, sizeof ci, "none (%lld shared seeds)", static_cast<long long>(p.n));
      md << "| " << label(groups.list[g]) << " | " << m << " | " << (p.n ? diff : "-") << " | " << ci
         << " | " << p.wins << " of " << p.n << " | "
         << (!p.interval ? "" : p.resolved ? "resolved" : "not resolved") << " |\n";
      doc["comparisons"].push_back({{"combination", label(groups.list[g])},
                                    {"metric", m},
                                    {"seeds", p.n},
                                    {"mean_difference", p.n ? json(p.mean) : json()},
                                    {"ci", p.interval ? json{p.low, p.high} : json()},
                                    {"wins", p.wins},
                                    {"resolved", p.interval ? json(p.resolved) : json()}});
    }
  }
  return {md.str(), doc};
}

// chart.svg: the main metric against one axis, one line per other combination.
std::string chart_svg(const SeedGroups& groups, const std::vector<GridAxis>& axes, Task task,
                      const std::string& x) {
  const std::string metric = headline_metrics(task).front();
  const GridAxis* x_axis = chart_x_axis(axes, x);
  ChartOptions options;
  options.title = "test " + metric + " (mean ± std over seeds)";
  options.y_label = "test " + metric;
  options.x_label = x_axis ? x_axis->key : "run";
  options.legend_title = "combination of the other keys";
  const bool numeric_x = x_axis && x_axis->values.front().is_number();
  if (x_axis && !numeric_x)
    for (const auto& v : x_axis->values) options.x_categories.push_back(value_text(v));
  std::map<std::string, ChartSeries> lines;
  std::vector<std::string> order;
  for (const auto& g : groups.list) {
    std::string label;
    double at = 0;
    for (const auto& [key, value] : g) {
      if (x_axis && key == x_axis->key) {
        at = numeric_x ? value.get<double>()
                       : double(std::find(x_axis->values.begin(), x_axis->values.end(), value) -
                                x_axis->values.begin());
        continue;
      }
      label += (label.empty() ? "" : ", ") + last_segment(key) + "=" + value_text(value);
    }
    if (label.empty()) label = metric;
    const Stats s =
        stats(groups.collect(g, [&](const json& r) { return r["test"].value(metric, NAN); }));
    if (!lines.count(label)) order.push_back(label), lines[label].name = label;
    auto& line = lines[label];
    line.x.push_back(at), line.y.push_back(s.mean), line.error.push_back(s.std);
  }
  std::vector<ChartSeries> series;
  for (const auto& label : order) series.push_back(lines[label]);
  return line_chart(options, series);
}

}  // namespace

Combination baseline_combination(const std::vector<GridAxis>& axes,
                                 const std::vector<std::string>& baseline) {
  if (baseline.empty()) return {};
  std::map<std::string, json> named;
  std::string keys;
  for (const auto& a : axes)
    if (a.key != "seed") keys += (keys.empty() ? "" : ", ") + a.key;
  for (const auto& item : baseline) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      throw UsageError("--baseline " + item + ": expected KEY=VALUE, a grid key and one of its values");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    const auto axis = std::find_if(axes.begin(), axes.end(),
                                   [&](const GridAxis& a) { return a.key == key && key != "seed"; });
    if (axis == axes.end())
      throw UsageError("--baseline " + item + ": " + key + " is not a key of this sweep's grid" +
                       (keys.empty() ? "" : " (its keys: " + keys + ")"));
    const auto v = std::find_if(axis->values.begin(), axis->values.end(), [&](const json& x) {
      return value_text(x) == value || x.dump() == value;
    });
    if (v == axis->values.end()) {
      std::string values;
      for (const auto& x : axis->values) values += (values.empty() ? "" : ", ") + value_text(x);
      throw UsageError("--baseline " + item + ": " + key + " takes " + values + " in this sweep");
    }
    named[key] = *v;
  }
  Combination out;
  std::string missing;
  for (const auto& a : axes) {
    if (a.key == "seed") continue;
    if (named.count(a.key))
      out.emplace_back(a.key, named[a.key]);
    else
      missing += (missing.empty() ? "" : ", ") + a.key;
  }
  if (!missing.empty())
    throw UsageError("--baseline names one combination: give a value for every grid key but "
                     "seed (missing: " + missing + ")");
  return out;
}

void write_sweep_reports(const std::string& dir, const std::string& name,
                         const std::vector<GridAxis>& axes, Task task, const std::string& x,
                         const std::vector<std::string>& baseline) {
  const SweepRuns runs = read_runs(dir, axes);
  const SeedGroups groups(runs);
  atomic_write_text((fs::path(dir) / "results.csv").string(), results_csv(runs, axes));
  Comparisons paired =
      paired_comparisons(runs, groups, task, baseline_combination(axes, baseline));
  // The machines the runs were measured on, each once (results.json's "machine").
  json machines = json::array();
  for (const auto& r : runs.rows)
    if (r.ok() && r.results.contains("machine") &&
        std::find(machines.begin(), machines.end(), r.results["machine"]) == machines.end())
      machines.push_back(r.results["machine"]);
  std::string machine_md = "\n## Machine\n\n";
  for (const auto& m : machines)
    machine_md += "- CPU " + m.value("cpu", std::string("unknown")) + " (" +
                  std::to_string(m.value("cores", int64_t(0))) + " cores), BLAS " +
                  m.value("blas", std::string("unknown")) + ", LibTorch " +
                  m.value("torch", std::string("unknown")) + "\n";
  if (machines.empty()) machine_md += "Not recorded (runs written before results.json named their machine).\n";
  if (machines.size() > 1)
    machine_md += "\nThe runs come from " + std::to_string(machines.size()) +
                  " machines: another CPU or BLAS gives other bits, so seeds of different machines "
                  "are not exact repeats of each other.\n";
  paired.doc["machines"] = machines;
  atomic_write_text((fs::path(dir) / "summary.md").string(),
                    summary_md(runs, groups, axes, name, task) + paired.markdown + machine_md);
  atomic_write_text((fs::path(dir) / "summary.json").string(), paired.doc.dump(2) + "\n");
  atomic_write_text((fs::path(dir) / "chart.svg").string(), chart_svg(groups, axes, task, x));
}

}  // namespace mmfusion
