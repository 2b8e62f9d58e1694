#include "mmfusion/experiments/search.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/base/random.hpp"
#include "mmfusion/experiments/sweep_report.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "mmfusion/training/metrics.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr uint64_t kSearchStream = 0x5EA2C4;  // the draws' stream of the search's seed
constexpr int64_t kMaxTrials = 100000;
constexpr int kRedraws = 1000;  // draws of one trial before the space counts as used up

const char* kind_name(SearchDimension::Kind k) {
  switch (k) {
    case SearchDimension::Kind::LogUniform: return "log_uniform";
    case SearchDimension::Kind::Uniform: return "uniform";
    case SearchDimension::Kind::IntUniform: return "int_uniform";
    case SearchDimension::Kind::Choice: return "choice";
  }
  return "?";
}

[[noreturn]] void fail(const std::string& at, const std::string& what) {
  throw ConfigError(at + ": " + what);
}

SearchDimension parse_dimension(const std::string& key, const json& v, const std::string& at) {
  const std::string known = "log_uniform, uniform, int_uniform or choice";
  if (!v.is_object() || v.size() != 1)
    fail(at, "expected one of {\"" + std::string("log_uniform\": [low, high]}, {\"uniform\": [low, high]}, "
                                                 "{\"int_uniform\": [low, high]} or {\"choice\": [values]}"));
  SearchDimension d;
  d.key = key;
  const std::string& kind = v.begin().key();
  const json& arg = v.begin().value();
  if (kind == "choice") {
    d.kind = SearchDimension::Kind::Choice;
    if (!arg.is_array() || arg.empty())
      fail(at + ".choice", "expected a non-empty list of values");
    d.choices.assign(arg.begin(), arg.end());
    return d;
  }
  if (kind == "log_uniform")
    d.kind = SearchDimension::Kind::LogUniform;
  else if (kind == "uniform")
    d.kind = SearchDimension::Kind::Uniform;
  else if (kind == "int_uniform")
    d.kind = SearchDimension::Kind::IntUniform;
  else
    fail(at + "." + kind, "unknown draw (known: " + known + ")");
  const std::string where = at + "." + kind;
  if (!arg.is_array() || arg.size() != 2 || !arg[0].is_number() || !arg[1].is_number())
    fail(where, "expected [low, high], two numbers");
  d.low = arg[0].get<double>(), d.high = arg[1].get<double>();
  if (!std::isfinite(d.low) || !std::isfinite(d.high) || !(d.low <= d.high))
    fail(where, "expected finite low <= high");
  if (d.kind == SearchDimension::Kind::LogUniform && !(d.low > 0))
    fail(where, "expected low > 0 (a log-uniform draw)");
  if (d.kind == SearchDimension::Kind::IntUniform &&
      (!arg[0].is_number_integer() || !arg[1].is_number_integer()))
    fail(where, "expected two integers");
  return d;
}

// One value of `d` from a uniform u in [0, 1).
json draw(const SearchDimension& d, double u) {
  switch (d.kind) {
    case SearchDimension::Kind::LogUniform:
      return std::exp(std::log(d.low) + u * (std::log(d.high) - std::log(d.low)));
    case SearchDimension::Kind::Uniform: return d.low + u * (d.high - d.low);
    case SearchDimension::Kind::IntUniform: {
      const auto low = static_cast<int64_t>(d.low), span = static_cast<int64_t>(d.high) - low + 1;
      return low + std::min(span - 1, static_cast<int64_t>(u * double(span)));
    }
    case SearchDimension::Kind::Choice: {
      const auto n = static_cast<int64_t>(d.choices.size());
      return d.choices[std::min(n - 1, static_cast<int64_t>(u * double(n)))];
    }
  }
  return json();
}

// The distinct settings of a space with no continuous draw (0: unbounded).
double distinct_settings(const SearchSpec& spec) {
  double n = 1;
  for (const auto& d : spec.space) {
    if (d.kind == SearchDimension::Kind::Choice)
      n *= double(d.choices.size());
    else if (d.kind == SearchDimension::Kind::IntUniform)
      n *= d.high - d.low + 1;
    else if (d.low < d.high)
      return 0;
  }
  return n;
}

std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string value_cell(const json& v) {
  return v.is_number_float() ? number_text(v.get<double>()) : value_text(v);
}

// A run folder's results.json, or null (absent or unreadable); `failed` when error.txt is
// there instead.
json read_results(const std::string& dir, const std::string& name, bool* failed = nullptr) {
  const RunPaths files((fs::path(dir) / name).string());
  if (failed) *failed = !fs::exists(files.results) && fs::exists(files.error);
  std::ifstream in(files.results);
  if (!in) return json();
  json r = json::parse(in, nullptr, false);
  return r.is_object() ? r : json();
}

double val_metric(const json& results, const std::string& metric) {
  const json v = results.value("val", json::object()).value(metric, json());
  return v.is_number() ? v.get<double>() : NAN;
}


}  // namespace

SearchSpec parse_search(const json& doc, const std::string& at) {
  if (!doc.is_object()) fail(at, "expected an object {\"trials\", \"space\", ...}");
  SearchSpec spec;
  bool have_trials = false, have_space = false;
  for (const auto& item : doc.items()) {
    const std::string where = at + "." + item.key();
    const json& v = item.value();
    if (item.key() == "trials") {
      if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > kMaxTrials)
        fail(where, "expected an integer from 1 to " + std::to_string(kMaxTrials));
      spec.trials = v.get<int64_t>(), have_trials = true;
    } else if (item.key() == "seed") {
      if (!v.is_number_integer() || v.get<int64_t>() < 0) fail(where, "expected an integer >= 0");
      spec.seed = v.get<uint64_t>();
    } else if (item.key() == "select") {
      if (!v.is_string() || v.get<std::string>().empty())
        fail(where, "expected a validation metric's name (e.g. \"loss\", \"mae\", \"accuracy\")");
      spec.select = v.get<std::string>();
    } else if (item.key() == "seeds") {
      if (!v.is_array() || v.empty() || v.size() > 1000)
        fail(where, "expected a list of 1 to 1000 seeds");
      spec.seeds.clear();
      for (const auto& s : v) {
        if (!s.is_number_integer() || s.get<int64_t>() < 0) fail(where, "expected integers >= 0");
        if (std::find(spec.seeds.begin(), spec.seeds.end(), s.get<int64_t>()) != spec.seeds.end())
          fail(where, "seed " + s.dump() + " is given twice");
        spec.seeds.push_back(s.get<int64_t>());
      }
    } else if (item.key() == "space") {
      if (!v.is_object() || v.empty()) fail(where, "expected an object {key: draw}, not empty");
      for (const auto& k : v.items()) {
        if (k.key() == "seed" || k.key() == "name")
          fail(where + "." + k.key(), "not a searchable key (the search sets it)");
        spec.space.push_back(parse_dimension(k.key(), k.value(), where + "." + k.key()));
      }
      have_space = true;
    } else {
      fail(where, "unknown key (known: trials, space, seed, select, seeds)");
    }
  }
  if (!have_trials) fail(at, "needs \"trials\"");
  if (!have_space) fail(at, "needs \"space\"");
  const double distinct = distinct_settings(spec);
  if (distinct > 0 && distinct < double(spec.trials))
    fail(at + ".trials", std::to_string(spec.trials) + " trials, but the space holds " +
                             number_text(distinct) + " distinct settings");
  return spec;
}

json search_json(const SearchSpec& spec) {
  json space = json::object();
  for (const auto& d : spec.space)
    space[d.key] = d.kind == SearchDimension::Kind::Choice
                       ? json{{"choice", d.choices}}
                   : d.kind == SearchDimension::Kind::IntUniform
                       ? json{{kind_name(d.kind), {int64_t(d.low), int64_t(d.high)}}}
                       : json{{kind_name(d.kind), {d.low, d.high}}};
  return {{"trials", spec.trials}, {"seed", spec.seed}, {"select", spec.select},
          {"seeds", spec.seeds},   {"space", space}};
}

std::vector<Combination> draw_trials(const SearchSpec& spec) {
  const uint64_t key = stream_key(spec.seed, kSearchStream);
  std::vector<Combination> out;
  std::set<std::string> seen;
  for (int64_t i = 0; i < spec.trials; ++i) {
    bool fresh = false;
    for (int attempt = 0; attempt < kRedraws && !fresh; ++attempt) {
      RowRandom r(key, uint64_t(i) + (uint64_t(attempt) << 32));
      Combination c;
      for (const auto& d : spec.space) c.emplace_back(d.key, draw(d, r.uniform()));
      std::string text;
      for (const auto& kv : c) text += kv.second.dump() + ";";
      if (seen.insert(text).second) out.push_back(std::move(c)), fresh = true;
    }
    if (!fresh)
      throw ConfigError("search: trial " + std::to_string(i + 1) + " drew " +
                        std::to_string(kRedraws) +
                        " settings that earlier trials have; the space is too small for " +
                        std::to_string(spec.trials) + " trials");
  }
  return out;
}

std::string trial_name(size_t i, size_t trials) {
  const size_t width = std::max<size_t>(3, std::to_string(trials).size());
  std::string n = std::to_string(i + 1);
  return "trial-" + std::string(width - std::min(width, n.size()), '0') + n;
}

std::string rerun_name(int64_t seed) { return "best-seed-" + std::to_string(seed); }

std::optional<size_t> best_trial(const std::string& dir, const SearchSpec& spec) {
  const bool lower = lower_is_better(spec.select);
  std::optional<size_t> best;
  double best_value = NAN;
  std::set<std::string> available;
  size_t succeeded = 0;
  for (size_t i = 0; i < size_t(spec.trials); ++i) {
    bool failed = false;
    const json r = read_results(dir, trial_name(i, spec.trials), &failed);
    if (r.is_null()) {
      if (failed) continue;
      return std::nullopt;  // not finished
    }
    ++succeeded;
    for (const auto& item : r.value("val", json::object()).items()) available.insert(item.key());
    const double v = val_metric(r, spec.select);
    if (!std::isfinite(v)) continue;
    if (!best || (lower ? v < best_value : v > best_value)) best = i, best_value = v;
  }
  if (succeeded == 0)
    throw ConfigError("search: every one of the " + std::to_string(spec.trials) +
                      " trials failed (their error.txt say why); nothing to choose from");
  if (!best) {
    std::string names;
    for (const auto& a : available)
      if (a != metric::kCount) names += (names.empty() ? "" : ", ") + a;
    throw ConfigError("search.select: \"" + spec.select +
                      "\" is not among the trials' validation metrics (" + names + ")");
  }
  return best;
}

void write_search_reports(const std::string& dir, const std::string& name, const SearchSpec& spec,
                          Task task) {
  const std::vector<Combination> trials = draw_trials(spec);
  std::optional<size_t> best;
  std::string choice_error;
  try {
    best = best_trial(dir, spec);
  } catch (const ConfigError& e) { choice_error = e.what(); }

  // results.csv: the trials with validation only, then the reruns with test.
  std::set<std::string> test_keys;
  std::vector<json> reruns;
  for (int64_t s : spec.seeds) {
    reruns.push_back(best ? read_results(dir, rerun_name(s)) : json());
    if (reruns.back().is_object())
      for (const auto& item : reruns.back()["test"].items())
        if (item.key() != metric::kCount) test_keys.insert(item.key());
  }
  std::ostringstream csv;
  csv << "run,phase";
  for (const auto& d : spec.space) csv << ',' << csv_field(d.key);
  csv << ",seed,status,val_" << csv_field(spec.select);
  for (const auto& k : test_keys) csv << ",test_" << csv_field(k);
  csv << '\n';
  auto status_of = [&](const std::string& run, const json& r) {
    bool failed = false;
    read_results(dir, run, &failed);
    return r.is_object() ? "ok" : failed ? "failed" : fs::exists(fs::path(dir) / run) ? "incomplete" : "missing";
  };
  for (size_t i = 0; i < trials.size(); ++i) {
    const std::string run = trial_name(i, trials.size());
    const json r = read_results(dir, run);
    csv << run << ",trial";
    for (const auto& kv : trials[i]) csv << ',' << csv_field(value_text(kv.second));
    csv << ",," << status_of(run, r) << ',';
    if (r.is_object() && std::isfinite(val_metric(r, spec.select)))
      csv << json(val_metric(r, spec.select)).dump();
    for (size_t k = 0; k < test_keys.size(); ++k) csv << ',';  // the test split chose nothing
    csv << '\n';
  }
  for (size_t j = 0; j < spec.seeds.size() && best; ++j) {
    const std::string run = rerun_name(spec.seeds[j]);
    const json& r = reruns[j];
    csv << run << ",rerun";
    for (const auto& kv : trials[*best]) csv << ',' << csv_field(value_text(kv.second));
    csv << ',' << spec.seeds[j] << ',' << status_of(run, r) << ',';
    if (r.is_object() && std::isfinite(val_metric(r, spec.select)))
      csv << json(val_metric(r, spec.select)).dump();
    for (const auto& k : test_keys)
      csv << ',' << (r.is_object() && r["test"].contains(k) ? r["test"][k].dump() : "");
    csv << '\n';
  }
  atomic_write_text((fs::path(dir) / "results.csv").string(), csv.str());

  // summary.md
  std::ostringstream md;
  const std::string arrow = lower_is_better(spec.select) ? "lowest" : "highest";
  md << "# Random search: " << name << "\n\n"
     << spec.trials << " trials drawn from the space below (search seed " << spec.seed
     << "), each trained once; the trial with the " << arrow << " validation `" << spec.select
     << "` is chosen and trained again with seeds ";
  for (size_t j = 0; j < spec.seeds.size(); ++j) md << (j ? ", " : "") << spec.seeds[j];
  md << ". **The test split was not used to choose:** the trials' table shows validation "
        "only, and test figures come from the reruns of the chosen trial alone.\n\n"
     << "## Space\n\n| key | draw |\n| --- | --- |\n";
  for (const auto& d : spec.space) {
    md << "| " << d.key << " | " << kind_name(d.kind) << ' ';
    if (d.kind == SearchDimension::Kind::Choice) {
      md << '{';
      for (size_t k = 0; k < d.choices.size(); ++k) md << (k ? ", " : "") << value_text(d.choices[k]);
      md << '}';
    } else {
      md << '[' << number_text(d.low) << ", " << number_text(d.high) << ']';
    }
    md << " |\n";
  }
  md << "\n## Trials (validation)\n\n| trial |";
  for (const auto& d : spec.space) md << ' ' << last_segment(d.key) << " |";
  md << " val " << spec.select << " |\n|";
  for (size_t k = 0; k < spec.space.size() + 2; ++k) md << " --- |";
  md << '\n';
  for (size_t i = 0; i < trials.size(); ++i) {
    const std::string run = trial_name(i, trials.size());
    const json r = read_results(dir, run);
    const bool chosen = best && *best == i;
    md << "| " << (chosen ? "**" + run + "**" : run) << " |";
    for (const auto& kv : trials[i]) md << ' ' << value_cell(kv.second) << " |";
    const double v = r.is_object() ? val_metric(r, spec.select) : NAN;
    md << ' ' << (std::isfinite(v) ? number_text(v) : status_of(run, r)) << " |\n";
  }
  md << "\n## The chosen trial on test\n\n";
  if (!best) {
    md << (choice_error.empty() ? "Not chosen yet: some trials have not finished."
                                : "No trial chosen: " + choice_error)
       << "\n";
  } else {
    md << "`" << trial_name(*best, trials.size()) << "`:";
    for (const auto& kv : trials[*best]) md << " " << kv.first << " = " << value_cell(kv.second) << ";";
    md << " trained with seeds";
    for (size_t j = 0; j < spec.seeds.size(); ++j) md << (j ? ", " : " ") << spec.seeds[j];
    md << ". Mean ± sample standard deviation over the reruns that finished.\n\n"
       << "| metric | test | runs |\n| --- | --- | --- |\n";
    std::vector<std::string> shown = headline_metrics(task);
    for (const auto& k : test_keys)
      if (std::find(shown.begin(), shown.end(), k) == shown.end()) shown.push_back(k);
    for (const auto& k : shown) {
      std::vector<double> v;
      for (const auto& r : reruns)
        if (r.is_object() && r["test"].contains(k) && r["test"][k].is_number())
          v.push_back(r["test"][k].get<double>());
      if (v.empty()) continue;
      const Stats s = stats(v);
      md << "| " << k << " | " << number_text(s.mean) << " ± " << number_text(s.std) << " | "
         << s.n << " |\n";
    }
  }
  atomic_write_text((fs::path(dir) / "summary.md").string(), md.str());
}

}  // namespace mmfusion
