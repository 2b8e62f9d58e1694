#include "mmfusion/experiments/attribute.hpp"

#include <signal.h>
#include <sys/prctl.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include <fmt/format.h>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/base/svg.hpp"
#include "mmfusion/config/config.hpp"
#include "mmfusion/config/config_io.hpp"
#include "mmfusion/config/config_keys.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/data/synthetic.hpp"
#include "mmfusion/experiments/grid.hpp"
#include "mmfusion/explain/attribution.hpp"
#include "mmfusion/explain/sobol.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "mmfusion/runtime/runtime.hpp"
#include "mmfusion/training/metrics.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kPlanFile = "attribute-plan.json";
constexpr const char* kModeAll = "all";
constexpr const char* kModeSinglesAndLoo = "singles-and-leave-one-out";
constexpr const char* kModeSampled = "sampled";
// Bounds on what a command line or a plan file may ask for (each run is a training).
constexpr int kMaxSeeds = 1000, kMaxPermutations = 10000, kMaxBootstrap = 100000;

// An attribution as DIR/attribute-plan.json records it, and the runs that follow from it.
struct AttributionPlan {
  std::string dir, name;
  json base = json::object();  // the config, --set applied
  std::vector<std::string> sets;
  std::string mode = kModeAll;
  int seeds = 3, permutations = 0, bootstrap = 2000;
  // derived
  ExperimentConfig config;
  std::vector<std::string> names;                  // the modalities, config order
  std::vector<std::vector<int>> orders;            // sampled: the permutations
  std::vector<uint32_t> masks;                     // the subsets trained, increasing
  std::vector<std::pair<std::string, json>> runs;  // per mask, per seed
  std::vector<std::pair<uint32_t, int>> run_keys;  // (mask, seed index) of each run
};

std::vector<std::string> members(const std::vector<std::string>& names, uint32_t mask) {
  std::vector<std::string> out;
  for (size_t m = 0; m < names.size(); ++m)
    if (mask & (1u << m)) out.push_back(names[m]);
  return out;
}

std::string folder_of(const std::vector<std::string>& names, uint32_t mask, int k) {
  std::string out;
  for (const auto& n : members(names, mask)) out += (out.empty() ? "" : "+") + n;
  return out + "_seed-" + std::to_string(k + 1);
}

// The listed modality sets (InTense's blocks, MKL's product kernels) that lie inside the
// kept modalities: [] when none does (unimodal blocks only; no product kernels), so that
// a subset never gains a set the full model lacks. Anything but a list stays as it is
// (for the parser to judge).
template <typename Kept>
json sets_within(const json& sets, Kept is_kept) {
  if (!sets.is_array()) return sets;
  json within = json::array();
  for (const auto& set : sets)
    if (!set.is_array() || std::all_of(set.begin(), set.end(), [&](const json& n) {
          return !n.is_string() || is_kept(n.get<std::string>());
        }))
      within.push_back(set);
  return within;
}

// The config of subset `mask`, seed index k: the other modalities removed from the data
// and the model (synthetic data keep drawing every modality, so the kept rows are the
// same), and what names a removed modality dropped with it.
json subset_doc(const AttributionPlan& plan, uint32_t mask, int k) {
  json doc = plan.base;
  const auto kept = members(plan.names, mask);
  auto is_kept = [&](const std::string& n) {
    return std::find(kept.begin(), kept.end(), n) != kept.end();
  };
  json modalities = json::array(), all = json::array();
  for (const auto& m : plan.config.data.modalities) {
    all.push_back(modality_json(m));
    if (is_kept(m.name)) modalities.push_back(all.back());
  }
  doc["data"]["modalities"] = modalities;
  if (plan.config.data.source == DataSource::Synthetic) {
    json generator = json::array();
    for (const auto& m : generator_modalities(plan.config.data))
      generator.push_back(modality_json(m));
    doc["data"]["synthetic"]["modalities"] = generator;
  }
  if (doc.contains("model") && doc["model"].is_object()) {
    json& model = doc["model"];
    if (model.contains("encoders") && model["encoders"].is_object())
      for (const auto& m : plan.names)
        if (!is_kept(m)) model["encoders"].erase(m);
    if (model.contains("intense") && model["intense"].is_object() &&
        model["intense"].contains("interactions"))
      model["intense"]["interactions"] = sets_within(model["intense"]["interactions"], is_kept);
    // MulT on one modality: its unimodal ablation (self-attention; mult.md).
    if (plan.config.model.type == ModelType::MulT && kept.size() == 1 &&
        (!model.contains("mult") || model["mult"].is_object()))
      model["mult"]["unimodal"] = true;
  }
  // A per-modality value given as {modality: value} keeps the kept modalities' entries.
  for (const ConfigKey& key : config_keys()) {
    if (!key.per_modality) continue;
    std::string pointer = "/" + key.path;
    std::replace(pointer.begin(), pointer.end(), '.', '/');
    const json::json_pointer at(pointer);
    if (doc.contains(at) && doc[at].is_object())
      for (const auto& m : plan.names)
        if (!is_kept(m)) doc[at].erase(m);
  }
  if (doc.contains("mkl") && doc["mkl"].is_object()) {
    json& mkl = doc["mkl"];
    if (mkl.contains("kernels") && mkl["kernels"].is_object())
      for (const auto& m : plan.names)
        if (!is_kept(m)) mkl["kernels"].erase(m);
    if (mkl.contains("interactions") && mkl["interactions"].is_array())  // "all" stays
      mkl["interactions"] = sets_within(mkl["interactions"], is_kept);
  }
  doc["train"]["seed"] = plan.config.train.seed + uint64_t(k);
  doc["name"] = plan.name + "-" + folder_of(plan.names, mask, k);
  return doc;
}

// The subsets, runs and their configs of a plan whose recorded fields are set.
void resolve(AttributionPlan& plan) {
  plan.config = parse_config(plan.base);
  plan.names.clear();
  for (const auto& m : plan.config.data.modalities) plan.names.push_back(m.name);
  const int M = static_cast<int>(plan.names.size());
  if (plan.seeds < 1 || plan.seeds > kMaxSeeds)
    throw UsageError("--seeds " + std::to_string(plan.seeds) + ": expected 1 to " +
                     std::to_string(kMaxSeeds));
  if (plan.bootstrap < 0 || plan.bootstrap > kMaxBootstrap)
    throw UsageError("--bootstrap " + std::to_string(plan.bootstrap) + ": expected 0 to " +
                     std::to_string(kMaxBootstrap));
  if (M > kMaxAttributionPlayers)
    throw ConfigError("attribute: " + std::to_string(M) + " modalities; at most " +
                      std::to_string(kMaxAttributionPlayers) + " are supported");
  const uint32_t all = (1u << M) - 1;
  plan.masks.clear(), plan.orders.clear();
  if (plan.mode == kModeAll) {
    if (M > kMaxAllSubsetsModalities)
      throw UsageError(fmt::format(
          "--subsets all: {} modalities make {} subsets to train (all is for up to {} "
          "modalities); use --subsets {} ({} subsets, no pure terms beyond single modalities) "
          "or --subsets {} --permutations P (Shapley values from P random orders)",
          M, all, kMaxAllSubsetsModalities, kModeSinglesAndLoo, 2 * M + 1, kModeSampled));
    for (uint32_t mask = 1; mask <= all; ++mask) plan.masks.push_back(mask);
  } else if (plan.mode == kModeSinglesAndLoo) {
    std::set<uint32_t> masks{all};
    for (int i = 0; i < M; ++i) masks.insert(1u << i), masks.insert(all & ~(1u << i));
    masks.erase(0);
    plan.masks.assign(masks.begin(), masks.end());
  } else if (plan.mode == kModeSampled) {
    if (plan.permutations < 0 || plan.permutations > kMaxPermutations)
      throw UsageError("--permutations " + std::to_string(plan.permutations) + ": expected 1 to " +
                       std::to_string(kMaxPermutations) + " (0: 2M)");
    const int count = plan.permutations > 0 ? plan.permutations : 2 * M;
    plan.orders = sample_permutations(M, count, splitmix64(plan.config.seed, 0xA77));
    plan.masks = permutation_subsets(plan.orders);
  } else {
    throw UsageError("--subsets " + plan.mode + ": expected " + kModeAll + ", " +
                     kModeSinglesAndLoo + " or " + kModeSampled);
  }
  plan.runs.clear(), plan.run_keys.clear();
  for (uint32_t mask : plan.masks)
    for (int k = 0; k < plan.seeds; ++k) {
      json doc = subset_doc(plan, mask, k);
      const std::string folder = folder_of(plan.names, mask, k);
      try {
        parse_config(doc);
      } catch (const ConfigError& e) {
        throw ConfigError("attribute run " + folder + ": " + e.what());
      }
      plan.runs.emplace_back(folder, doc);
      plan.run_keys.emplace_back(mask, k);
    }
}

json record_of(const AttributionPlan& plan) {
  return {{"name", plan.name},          {"base", plan.base},   {"set", plan.sets},
          {"subsets", plan.mode},       {"seeds", plan.seeds}, {"permutations", plan.permutations},
          {"bootstrap", plan.bootstrap}};
}

AttributionPlan attribution_from_args(const AttributeArgs& args) {
  AttributionPlan plan;
  plan.base = read_json_file(args.config);
  for (const auto& s : args.overrides) apply_override(plan.base, s);
  plan.sets = args.overrides;
  plan.mode = args.subsets, plan.seeds = args.seeds, plan.permutations = args.permutations;
  plan.bootstrap = args.bootstrap;
  if (args.permutations != 0 && args.subsets != kModeSampled)
    throw UsageError("--permutations: only with --subsets sampled");
  plan.name = parse_config(plan.base).name;
  plan.dir = args.out.empty() ? (fs::path("runs") / ("attribute-" + plan.name)).string() : args.out;
  resolve(plan);
  return plan;
}

AttributionPlan attribution_from_folder(const std::string& dir) {
  const std::string file = (fs::path(dir) / kPlanFile).string();
  if (!fs::exists(file)) throw UsageError(dir + ": no " + kPlanFile + " (not an attribute folder)");
  AttributionPlan plan;
  try {
    const json doc = read_json_file(file);
    plan.dir = dir;
    plan.name = doc.at("name").get<std::string>();
    plan.base = doc.at("base");
    plan.sets = doc.at("set").get<std::vector<std::string>>();
    plan.mode = doc.at("subsets").get<std::string>();
    auto count = [&](const char* key) {
      const json& v = doc.at(key);
      if (!v.is_number_integer() || v.get<int64_t>() < -1 || v.get<int64_t>() > 1000000)
        throw ConfigError(file + ": " + key + ": expected a whole number, got " + v.dump());
      return static_cast<int>(v.get<int64_t>());
    };
    plan.seeds = count("seeds");
    plan.permutations = count("permutations");
    plan.bootstrap = count("bootstrap");
  } catch (const nlohmann::json::exception& e) {
    throw ConfigError(file + ": not an attribute record: " + e.what());
  }
  try {
    resolve(plan);
  } catch (const ConfigError& e) { throw ConfigError(file + ": " + e.what()); }
  return plan;
}

RunSet attribution_runs(const AttributionPlan& plan, const std::string& executable,
                        int64_t threads) {
  return {plan.dir, plan.runs, threads, {executable, "attribute", "--out", plan.dir}};
}

// ---- the report ----------------------------------------------------------------------

// The best constant predictor's values on the test split: the training mean (regression),
// the training class frequencies with half a count added to each class, so that a class
// the training split lacks costs a finite amount (classification; cross-entropy in nats).
json constant_values(const ExperimentConfig& config) {
  ExperimentConfig c = config;
  const DataSplits data = load_splits(c);
  resolve_num_classes(c, data);
  if (c.task == Task::Regression) {
    const auto y = data.train.target.to(torch::kFloat64);
    const auto mean = y.mean(0, true);
    const auto test = data.test.target.to(torch::kFloat64);
    const auto prediction = mean.expand_as(test);
    const json m = task_metrics(Task::Regression, prediction.to(torch::kFloat32), data.test.target);
    return {{"r2", m.at(metric::kR2)}, {"mse", m.at(metric::kMSE)}};
  }
  const int64_t K = c.num_classes;
  const auto counts = torch::bincount(data.train.target, {}, K).to(torch::kFloat64) + 0.5;
  const auto log_p = (counts / counts.sum()).log();
  const auto test = data.test.target;
  const double ce = -log_p.index_select(0, test).mean().item<double>();
  const int64_t top = counts.argmax().item<int64_t>();
  const double accuracy = test.eq(top).to(torch::kFloat64).mean().item<double>();
  return {{"accuracy", accuracy}, {"cross_entropy", ce}};
}

// One run's values from its results.json.
// One run's values from its results.json (`constant`: null to check the entries alone).
json run_values(Task task, const json& results, const json& constant) {
  const json& test = results.at("test");
  auto number = [&](const char* key) {
    const json& v = test.at(key);
    if (!v.is_number())
      throw Error(std::string("test.") + key + " is " + v.dump() + ", not a number");
    return v.get<double>();
  };
  if (task == Task::Regression) return {{"r2", number(metric::kR2)}, {"mse", number(metric::kMSE)}};
  const double loss = number(metric::kLoss), accuracy = number(metric::kAccuracy);
  if (constant.is_null()) return nullptr;
  return {{"information", (constant.at("cross_entropy").get<double>() - loss) / std::log(2.0)},
          {"accuracy", accuracy},
          {"cross_entropy", loss / std::log(2.0)}};
}

json interval(const Estimate& e) { return json::array({e.low, e.high}); }

std::vector<std::string> metrics_of(Task task) {
  if (task == Task::Regression) return {"r2", "mse"};
  return {"information", "accuracy", "cross_entropy"};
}

// attribute.json from the runs' results; null with `missing` filled when some have none.
json build_report(const AttributionPlan& plan, std::vector<std::string>& missing) {
  const Task task = plan.config.task;
  const std::string headline = task == Task::Regression ? "r2" : "information";
  std::map<uint32_t, std::vector<json>> runs;
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    const RunPaths paths((fs::path(plan.dir) / plan.runs[i].first).string());
    if (!fs::exists(paths.results)) {
      std::string why;
      if (fs::exists(paths.error)) {
        const auto bytes = read_bytes(paths.error);
        why.assign(bytes.begin(), bytes.end());
        while (!why.empty() && (why.back() == '\n' || why.back() == '\r')) why.pop_back();
      }
      missing.push_back(plan.runs[i].first + (why.empty() ? "" : " (failed: " + why + ")"));
      continue;
    }
    json entry;
    try {
      entry = read_json_file(paths.results);
      entry["folder"] = plan.runs[i].first;
      run_values(plan.config.task, entry, nullptr);  // every value there and a number
    } catch (const std::exception& e) {
      throw Error(paths.results + ": not a run's results: " + e.what());
    }
    runs[plan.run_keys[i].first].push_back(entry);
  }
  if (!missing.empty()) return nullptr;

  const json constant_raw = constant_values(plan.config);
  json constant =
      task == Task::Regression
          ? json{{"r2", constant_raw["r2"]}, {"mse", constant_raw["mse"]}}
          : json{{"information", 0.0},
                 {"accuracy", constant_raw["accuracy"]},
                 {"cross_entropy", constant_raw["cross_entropy"].get<double>() / std::log(2.0)}};
  const int M = static_cast<int>(plan.names.size());
  AttributionOptions options;
  options.bootstrap = plan.bootstrap;
  options.seed = splitmix64(plan.config.seed, 0xB007);
  options.permutations = plan.orders;

  std::map<std::string, Attribution> by_metric;
  std::map<uint32_t, std::vector<json>> values;  // per mask, per seed
  for (const auto& [mask, entries] : runs)
    for (const auto& e : entries) values[mask].push_back(run_values(task, e, constant_raw));
  for (const auto& metric : metrics_of(task)) {
    std::map<uint32_t, std::vector<double>> table;
    for (const auto& [mask, list] : values)
      for (const auto& v : list) table[mask].push_back(v.at(metric).get<double>());
    AttributionOptions o = options;
    if (metric != headline) o.permutations.clear();
    by_metric[metric] = attribute_values(M, constant[metric].get<double>(), table, o);
  }
  const Attribution& a = by_metric.at(headline);

  // The truth: R^2 of E[target | X_S] where the generator knows it.
  json truth = nullptr, truth_why_not = nullptr;
  std::map<uint32_t, double> truth_r2;
  if (plan.config.data.source != DataSource::Synthetic) {
    truth_why_not = "file data: the truth is not known";
  } else if (task != Task::Regression) {
    truth_why_not =
        "classification: the generator's truth is the R^2 of its continuous target, which the "
        "classes cut from it do not have";
  } else {
    const SyntheticTruth t = synthetic_truth(plan.config.data, plan.config.seed);
    truth = to_json(t);
    if (!t.r2_exact) truth_why_not = t.r2_why_not;
    for (uint32_t mask = 1; t.r2_exact && mask < (1u << M); ++mask)
      truth_r2[mask] = t.r2[mask - 1].r2;
  }
  const bool have_truth = !truth_r2.empty();
  std::vector<double> truth_pure, truth_shapley;
  if (have_truth) {
    std::vector<double> closed(size_t(1) << M, 0.0);
    for (const auto& [mask, r2] : truth_r2) closed[mask] = r2;
    truth_pure = mobius_inversion(closed);
    truth_shapley = shapley_values(truth_pure, M);
  }
  auto truth_of = [&](uint32_t mask) { return have_truth ? json(truth_r2.at(mask)) : json(); };

  json result = {{"task", task == Task::Regression ? "regression" : "classification"},
                 {"metric", headline},
                 {"model", to_string(plan.config.model.type)},
                 {"modalities", plan.names},
                 {"subsets_mode", plan.mode},
                 {"seeds", plan.seeds},
                 {"bootstrap", plan.bootstrap},
                 {"constant", constant}};
  json train_seeds = json::array();
  for (int k = 0; k < plan.seeds; ++k) train_seeds.push_back(plan.config.train.seed + uint64_t(k));
  result["train_seeds"] = train_seeds;
  json subsets = json::array();
  for (const auto& [mask, entries] : runs) {
    json v = json::object(), ci = json::object(), list = json::array();
    for (const auto& metric : metrics_of(task)) {
      const Estimate& e = by_metric.at(metric).values.at(mask);
      v[metric] = e.value, ci[metric] = interval(e);
    }
    for (size_t k = 0; k < entries.size(); ++k) {
      json r = values[mask][k];
      r["seed"] = plan.config.train.seed + k;
      r["folder"] = entries[k]["folder"];
      list.push_back(r);
    }
    const auto mods = members(plan.names, mask);
    subsets.push_back({{"name", subset_name(mods)},
                       {"modalities", mods},
                       {"values", v},
                       {"ci", ci},
                       {"runs", list},
                       {"truth", headline == "r2" ? truth_of(mask) : json()}});
  }
  result["subsets"] = subsets;
  json mobius = json::array();
  for (const auto& [mask, e] : a.mobius) {
    const auto mods = members(plan.names, mask);
    mobius.push_back({{"name", subset_name(mods)},
                      {"modalities", mods},
                      {"value", e.value},
                      {"ci", interval(e)},
                      {"truth", have_truth ? json(truth_pure[mask]) : json()}});
  }
  result["mobius"] = mobius;
  auto per_modality = [&](const std::vector<Estimate>& list, const char* key,
                          const std::vector<double>* truth_values) {
    if (list.empty()) {
      result[key] = nullptr, result[std::string(key) + "_ci"] = nullptr;
      result[std::string(key) + "_truth"] = nullptr;
      return;
    }
    json v = json::object(), ci = json::object(), t = json::object();
    for (int i = 0; i < M; ++i) {
      v[plan.names[i]] = list[i].value, ci[plan.names[i]] = interval(list[i]);
      if (truth_values) t[plan.names[i]] = (*truth_values)[i];
    }
    result[key] = v, result[std::string(key) + "_ci"] = ci;
    result[std::string(key) + "_truth"] = truth_values ? t : json();
  };
  per_modality(a.shapley, "shapley", have_truth ? &truth_shapley : nullptr);
  std::vector<double> truth_loo;
  if (have_truth) {
    const uint32_t all = (1u << M) - 1;
    for (int i = 0; i < M; ++i)
      truth_loo.push_back(truth_r2.at(all) - (M == 1 ? 0.0 : truth_r2.at(all & ~(1u << i))));
  }
  per_modality(a.leave_one_out, "leave_one_out", have_truth ? &truth_loo : nullptr);
  // The sums of the pure terms by order ("1" .. "M"), as explain gives them.
  json orders = nullptr, orders_ci = nullptr, orders_truth = nullptr;
  if (!a.orders.empty()) {
    orders = json::object(), orders_ci = json::object();
    if (have_truth) orders_truth = json::object();
    const std::vector<double> truth_orders = have_truth ? order_sums(truth_pure, M) : std::vector<double>();
    for (int k = 0; k < M; ++k) {
      const std::string key = std::to_string(k + 1);
      orders[key] = a.orders[k].value, orders_ci[key] = interval(a.orders[k]);
      if (have_truth) orders_truth[key] = truth_orders[k];
    }
  }
  result["orders"] = orders, result["orders_ci"] = orders_ci, result["orders_truth"] = orders_truth;
  result["truth"] = truth;
  result["truth_why_not"] = truth_why_not;
  result["budget"] = {{"subsets", plan.masks.size()},
                      {"runs", plan.runs.size()},
                      {"permutations", plan.orders.empty() ? json() : json(plan.orders.size())}};
  result["folder"] = plan.dir;
  return result;
}

std::string number_or_empty(const json& v) {
  return v.is_number() ? format_number(v.get<double>()) : "";
}

std::string attribute_csv(const json& r) {
  std::ostringstream out;
  out << "kind,name,metric,value,ci_low,ci_high,truth\n";
  auto row = [&](const std::string& kind, const std::string& name, const std::string& metric,
                 const json& value, const json& ci, const json& truth) {
    out << kind << "," << csv_field(name) << "," << metric << "," << number_or_empty(value) << ","
        << (ci.is_array() ? number_or_empty(ci[0]) : "") << ","
        << (ci.is_array() ? number_or_empty(ci[1]) : "") << "," << number_or_empty(truth) << "\n";
  };
  const std::string headline = r["metric"];
  for (const auto& s : r["subsets"])
    for (const auto& [metric, value] : s["values"].items())
      row("subset", s["name"], metric, value, s["ci"][metric],
          metric == headline ? s["truth"] : json());
  for (const auto& m : r["mobius"])
    row("mobius", m["name"], headline, m["value"], m["ci"], m["truth"]);
  for (const char* kind : {"shapley", "leave_one_out"})
    if (r[kind].is_object())
      for (const auto& name : r["modalities"])  // config order
        row(kind, name, headline, r[kind][name.get<std::string>()],
            r[std::string(kind) + "_ci"][name.get<std::string>()],
            r[std::string(kind) + "_truth"].is_object()
                ? r[std::string(kind) + "_truth"][name.get<std::string>()]
                : json());
  return out.str();
}

std::string attribute_svg(const json& r) {
  ContributionFigure f;
  const bool info = r["metric"] == "information";
  f.unit = info ? "information (bits)" : "R\u00b2";
  const int seeds = r["seeds"].get<int>();
  f.title = std::string("What each modality subset adds to the test ") +
            (info ? "information (bits)" : "R\u00b2") + ", by retraining the " +
            r["model"].get<std::string>() + " model on every subset";
  f.subtitle = fmt::format("{} seed{} per subset; 95% intervals from {} bootstrap resamples of "
                           "the seeds; pure terms by M\u00f6bius inversion",
                           seeds, seeds == 1 ? "" : "s", r.value("bootstrap", 0));
  for (const auto& name : r["modalities"]) f.modalities.push_back(name.get<std::string>());
  const size_t m = f.modalities.size();
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < m; ++i) index[f.modalities[i]] = i;
  auto number = [](const json& v) { return v.is_number() ? v.get<double>() : NAN; };
  auto per = [&](const std::string& name, const char* key) {
    FigureSeries s{name, {}, {}, {}, {}};
    const json& values = r[key];
    const json& ci = r[std::string(key) + "_ci"];
    const json& truth = r[std::string(key) + "_truth"];
    for (const auto& modality : f.modalities) {
      s.value.push_back(values.is_object() ? number(values[modality]) : NAN);
      s.low.push_back(ci.is_object() ? number(ci[modality][0]) : NAN);
      s.high.push_back(ci.is_object() ? number(ci[modality][1]) : NAN);
      s.truth.push_back(truth.is_object() ? number(truth[modality]) : NAN);
    }
    return s;
  };
  f.per_modality = {per("Shapley value", "shapley"),
                    per("leave-one-out drop (total effect)", "leave_one_out")};
  f.pairs.assign(m * m, NAN);
  FigureSeries strip{"pure term (95% interval)", {}, {}, {}, {}};
  for (const auto& t : r["mobius"]) {
    f.subsets.push_back(t["name"].get<std::string>());
    strip.value.push_back(number(t["value"]));
    strip.low.push_back(number(t["ci"][0]));
    strip.high.push_back(number(t["ci"][1]));
    strip.truth.push_back(number(t["truth"]));
    if (t["modalities"].size() == 2) {
      const size_t a = index.at(t["modalities"][0]), b = index.at(t["modalities"][1]);
      f.pairs[a * m + b] = f.pairs[b * m + a] = number(t["value"]);
    }
  }
  f.strip = {strip};
  FigureSeries orders{"sum of pure terms", {}, {}, {}, {}};
  const json& by_order = r.value("orders", json());
  for (size_t k = 1; k <= m && by_order.is_object(); ++k) {
    const std::string key = std::to_string(k);
    orders.value.push_back(number(by_order[key]));
    orders.low.push_back(number(r["orders_ci"][key][0]));
    orders.high.push_back(number(r["orders_ci"][key][1]));
    orders.truth.push_back(r["orders_truth"].is_object() ? number(r["orders_truth"][key]) : NAN);
  }
  f.orders = {orders};
  f.strip_note = fmt::format(
      "{} modalities: every subset's value and pure term, each with its interval, are in "
      "attribute.csv and attribute.json (the strip is drawn for up to {} modalities).",
      m, f.strip_limit);
  if (r["truth_why_not"].is_string())
    f.strip_note += " No truth: " + r["truth_why_not"].get<std::string>() + ".";
  return contribution_figure(f);
}

void write_report(const json& result, const std::string& dir) {
  atomic_write_text((fs::path(dir) / "attribute.json").string(), result.dump(2) + "\n");
  atomic_write_text((fs::path(dir) / "attribute.csv").string(), attribute_csv(result));
  atomic_write_text((fs::path(dir) / "attribute.svg").string(), attribute_svg(result));
}

AttributeOutcome report(const AttributionPlan& plan, RunsOutcome runs) {
  AttributeOutcome outcome;
  outcome.runs = std::move(runs);
  outcome.runs.dir = plan.dir;
  outcome.result = build_report(plan, outcome.missing);
  if (!outcome.result.is_null()) write_report(outcome.result, plan.dir);
  return outcome;
}

}  // namespace

AttributeOutcome run_attribute(const AttributeArgs& args) {
  if (!args.report.empty()) {
    const AttributionPlan plan = attribution_from_folder(args.report);
    RunsOutcome runs;
    for (const auto& r : plan.runs) runs.runs.push_back(r.first);
    return report(plan, runs);
  }
  if (!args.worker.empty()) {  // one run, for a parent with --jobs
    if (args.out.empty()) throw UsageError("--worker needs --out DIR (the attribute folder)");
    const AttributionPlan plan = attribution_from_folder(args.out);
    const auto it = std::find_if(plan.runs.begin(), plan.runs.end(),
                                 [&](const auto& r) { return r.first == args.worker; });
    if (it == plan.runs.end())
      throw UsageError("--worker " + args.worker + ": not a run of " + plan.dir);
    AttributeOutcome outcome;
    outcome.runs.dir = plan.dir;
    outcome.runs.runs = {args.worker};
    ::prctl(PR_SET_PDEATHSIG, SIGTERM);  // its parent gone (even killed), it saves and stops
    auto log = make_logger((fs::path(plan.dir) / "attribute.log").string(), "attribute: ");
    train_in_process(attribution_runs(plan, "", args.worker_threads), it - plan.runs.begin(), *log,
                     outcome.runs);
    return outcome;
  }
  if (args.jobs < 1)
    throw UsageError("--jobs " + std::to_string(args.jobs) + ": expected 1 or more");
  const Shard shard = parse_shard(args.shard);
  const AttributionPlan plan = attribution_from_args(args);
  int64_t threads = 0;
  if (args.jobs > 1 && plan.config.threads == 0)
    threads = std::max<int64_t>(1, available_cores() / args.jobs);

  RunsOutcome runs;
  runs.dir = plan.dir;
  std::vector<size_t> indices;
  for (size_t i = 0; i < plan.runs.size(); ++i)
    if (shard.contains(i)) indices.push_back(i), runs.runs.push_back(plan.runs[i].first);
  if (args.dry_run) {
    AttributeOutcome outcome;
    outcome.runs = runs;
    return outcome;
  }
  const bool sharded = !args.shard.empty();
  RunLock lock(plan.dir, sharded ? RunLock::Mode::Shared : RunLock::Mode::Exclusive);
  // Runs of another config would be skipped as complete and mixed into this report: a
  // folder holds one config's attribution (its seeds and subsets may grow).
  const std::string record = (fs::path(plan.dir) / kPlanFile).string();
  if (!sharded && fs::exists(record)) {
    const AttributionPlan earlier = attribution_from_folder(plan.dir);
    if (earlier.base != plan.base)
      throw UsageError(plan.dir + " holds the attribution of another config (its " + kPlanFile +
                       " differs); give another --out");
  }
  write_run_record(
      plan.dir, kPlanFile, record_of(plan).dump(2) + "\n", sharded,
      [&] {
        const AttributionPlan other = attribution_from_folder(plan.dir);
        return other.base == plan.base && other.mode == plan.mode && other.seeds == plan.seeds &&
               other.permutations == plan.permutations;
      },
      "--shard " + args.shard + ": " + plan.dir + " holds another attribution (its " + kPlanFile +
          " gives another config, subsets or seeds); shards must run the same one");
  auto log = make_logger((fs::path(plan.dir) / "attribute.log").string(), "attribute: ");
  log->info(
      "{} of {} runs ({} subsets x {} seeds) in {}{}{}", indices.size(), plan.runs.size(),
      plan.masks.size(), plan.seeds, plan.dir,
      sharded ? fmt::format(" (shard {}/{})", shard.index, shard.count) : "",
      args.jobs > 1 ? fmt::format(", {} at once with {} threads each", args.jobs, threads) : "");
  const RunSet set = attribution_runs(plan, args.executable, threads);
  if (args.jobs > 1)
    train_in_workers(set, indices, args.jobs, *log, runs);
  else
    train_all_in_process(set, indices, *log, runs);
  AttributeOutcome outcome = report(plan, runs);
  if (outcome.result.is_null())
    log->info("{} of {} runs have no results yet{}", outcome.missing.size(), plan.runs.size(),
              sharded ? " (other shards' among them); rerun with --report when they are done" : "");
  else
    log->info("done: {} trained, {} skipped, {} failed; {}/attribute.json, .csv, .svg",
              runs.completed, runs.skipped, runs.failed, plan.dir);
  if (const std::string failed = log_write_failure(*log); !failed.empty()) throw WriteError(failed);
  return outcome;
}

std::string attribute_table(const json& r) {
  std::ostringstream out;
  const bool info = r["metric"] == "information";
  const std::string unit = info ? "information (bits)" : "R^2";
  out << fmt::format(
      "attribute: {} model, {} seed(s) per subset, test {}; 95% intervals over seeds\n",
      r["model"].get<std::string>(), r["seeds"].get<int>(), unit);
  auto cell = [](const json& v, const json& ci) {
    if (!v.is_number()) return std::string("-");
    return fmt::format("{:+.3f} [{:+.3f}, {:+.3f}]", v.get<double>(), ci[0].get<double>(),
                       ci[1].get<double>());
  };
  auto truth_cell = [](const json& t) {
    return t.is_number() ? fmt::format("{:+.3f}", t.get<double>()) : std::string("");
  };
  size_t width = 8;
  for (const auto& s : r["subsets"]) width = std::max(width, s["name"].get<std::string>().size());
  const std::string second = info ? "accuracy" : "mse";
  out << fmt::format("  {:<{}}  {:<27}  {:<27}  {}\n", "subset", width, unit, second, "truth");
  for (const auto& s : r["subsets"])
    out << fmt::format(
        "  {:<{}}  {:<27}  {:<27}  {}\n", s["name"].get<std::string>(), width,
        cell(s["values"][r["metric"].get<std::string>()], s["ci"][r["metric"].get<std::string>()]),
        cell(s["values"][second], s["ci"][second]), truth_cell(s["truth"]));
  out << fmt::format("  pure terms (Moebius; negative: redundancy, positive: synergy)\n");
  for (const auto& m : r["mobius"])
    out << fmt::format("  {:<{}}  {:<27}  {:<27}  {}\n", m["name"].get<std::string>(), width,
                       cell(m["value"], m["ci"]), "", truth_cell(m["truth"]));
  for (const char* kind : {"shapley", "leave_one_out"}) {
    if (!r[kind].is_object()) continue;
    out << "  " << (std::string(kind) == "shapley" ? "Shapley values" : "leave-one-out drops")
        << "\n";
    for (const auto& item : r["modalities"]) {
      const std::string name = item.get<std::string>();
      const json& value = r[kind][name];
      const json& t = r[std::string(kind) + "_truth"];
      out << fmt::format("  {:<{}}  {:<27}  {:<27}  {}\n", name, width,
                         cell(value, r[std::string(kind) + "_ci"][name]), "",
                         truth_cell(t.is_object() ? t[name] : json()));
    }
  }
  if (r["truth_why_not"].is_string())
    out << "  no truth: " << r["truth_why_not"].get<std::string>() << "\n";
  return out.str();
}

}  // namespace mmfusion
