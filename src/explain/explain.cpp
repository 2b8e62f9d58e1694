#include "mmfusion/explain/explain.hpp"

#include <algorithm>
#include <map>
#include <array>
#include <cstdio>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "mmfusion/data/sequence.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/progress.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/explain/sobol.hpp"
#include "mmfusion/training/evaluation.hpp"
#include "mmfusion/training/metrics.hpp"
#include "mmfusion/training/step.hpp"
#include "mmfusion/base/svg.hpp"

namespace mmfusion {
namespace {

using nlohmann::json;
using torch::Tensor;

// Non-empty subsets by size, then by the order of their members in the config.
std::vector<uint32_t> subsets_in_order(int groups) {
  std::vector<uint32_t> out;
  for (uint32_t s = 1; s < (1u << groups); ++s) out.push_back(s);
  std::stable_sort(out.begin(), out.end(), [](uint32_t a, uint32_t b) {
    if (a == b) return false;
    if (subset_size(a) != subset_size(b)) return subset_size(a) < subset_size(b);
    for (uint32_t bit = 1;; bit <<= 1)  // the lowest differing member decides
      if ((a & bit) != (b & bit)) return (a & bit) != 0;
  });
  return out;
}

std::vector<std::string> members(uint32_t mask, const std::vector<std::string>& names) {
  std::vector<std::string> out;
  for (size_t m = 0; m < names.size(); ++m)
    if (mask & (1u << m)) out.push_back(names[m]);
  return out;
}

// The model's output on the mixed rows whose modality m is a[m]'s where `mask` has bit m
// and b[m]'s elsewhere, as the quantity decomposed (original units, or class
// probabilities). a, b: [M, pairs] row indices.
Tensor evaluate_mixed(StepRunner& runner, Task task, const Scaling& scaling, const Dataset& data,
                      const Tensor& a, const Tensor& b, uint32_t mask, int64_t batch_size,
                      const torch::Device& device) {
  Dataset mixed;
  for (size_t m = 0; m < data.features.size(); ++m)
    mixed.features.push_back(
        data.features[m].index_select(0, ((mask & (1u << m)) ? a : b)[static_cast<int64_t>(m)]));
  const Tensor out = predict(runner, mixed, batch_size, device);
  return (task == Task::Classification ? torch::softmax(out, 1) : scaling.original_units(out))
      .to(torch::kCPU, torch::kFloat64);
}

// {"share": x, "ci": [lo, hi] or null} from a point estimate and its bootstrap draws.
json with_interval(double share, std::vector<double> draws) {
  if (draws.empty()) return {{"share", share}, {"ci", nullptr}};
  std::sort(draws.begin(), draws.end());
  auto quantile = [&](double q) {
    const double at = q * double(draws.size() - 1);
    const size_t i = static_cast<size_t>(at);
    const double f = at - double(i);
    return i + 1 < draws.size() ? draws[i] * (1 - f) + draws[i + 1] * f : draws[i];
  };
  return {{"share", share}, {"ci", {quantile(0.025), quantile(0.975)}}};
}

std::string format_share(const json& v) {
  return v.is_number() ? fmt::format("{:.3f}", v.get<double>()) : "-";
}
std::string format_ci(const json& ci) {
  return ci.is_array() ? fmt::format("[{:.3f}, {:.3f}]", ci[0].get<double>(), ci[1].get<double>())
                       : "";
}

// LMF's own decomposition (docs/explain.md): per rank r, modality m contributes the
// factor b_{m,r} + g_{m,r}(h_m) (bias row, and h_m times the other rows). Centred at the
// rows' mean mu, the product over modalities expands into one term per subset,
// T_S = sum_r w_r prod_{m in S} (g - mu)_{m,r} prod_{m not in S} (b + mu)_{m,r}, mutually
// orthogonal when the modalities are independent. Returns Var(head(T_S)) / Var f over the
// rows, per subset mask (index 0 unused), in the model's own output units.
std::vector<double> lmf_exact_shares(LMFImpl& lmf, const Dataset& data,
                                     const torch::Device& device) {
  torch::InferenceMode guard;
  std::vector<Tensor> x;
  for (const auto& f : data.features) x.push_back(f.to(device));
  const std::vector<Tensor> h = lmf.encoders->forward(x);
  const LMFDescription d = lmf.describe();
  const size_t M = h.size();
  std::vector<Tensor> g_hat, b_hat;
  for (size_t m = 0; m < M; ++m) {
    const Tensor& w = d.factors[m];  // (rank, d_m + 1, fused)
    const Tensor g = torch::einsum("nd,rdo->nro", {h[m], w.slice(1, 1)});
    const Tensor mu = g.mean(0);
    g_hat.push_back(g - mu);
    b_hat.push_back((w.select(1, 0) + mu).unsqueeze(0));
  }
  const Tensor rank_weights = d.rank_weights.reshape({1, d.rank, 1});
  const double variance = lmf.forward(x).to(torch::kFloat64).var(0, false).sum().item<double>();
  std::vector<double> shares(1u << M, 0.0);
  for (uint32_t s = 1; s < shares.size(); ++s) {
    Tensor t = (s & 1u) ? g_hat[0] : b_hat[0];
    for (size_t m = 1; m < M; ++m) t = t * ((s & (1u << m)) ? g_hat[m] : b_hat[m]);
    Tensor term = (t * rank_weights).sum(1);  // (N, fused)
    if (d.has_head()) term = term.matmul(d.head_weight.t());
    shares[s] =
        variance > 0 ? term.to(torch::kFloat64).var(0, false).sum().item<double>() / variance : 0.0;
  }
  return shares;
}

}  // namespace

namespace {

// The decomposition as explain's JSON: every subset's pure share with its bootstrap
// interval (and LMF's exact share, the model's relevance score where it has them), the
// shares by order, the total effects and the Shapley values, each with its interval.
json decomposition_json(const SobolIndices& point, const std::vector<SobolIndices>& draws,
                        const std::vector<std::string>& names, const std::vector<double>& exact,
                        const json& relevance) {
  const int groups = static_cast<int>(names.size());
  auto collect = [&](auto pick) {
    std::vector<double> v;
    for (const auto& d : draws) v.push_back(pick(d));
    return v;
  };
  json subsets = json::array();
  for (uint32_t s : subsets_in_order(groups)) {
    json entry =
        with_interval(point.pure[s], collect([&](const SobolIndices& d) { return d.pure[s]; }));
    const auto mods = members(s, names);
    subsets.push_back({{"name", subset_name(mods)},
                       {"modalities", mods},
                       {"share", entry["share"]},
                       {"ci", entry["ci"]},
                       {"closed", point.closed[s]},
                       {"truth", nullptr}});
    if (!exact.empty()) subsets.back()["lmf_exact"] = exact[s];
    if (!relevance.empty())
      subsets.back()["relevance"] =
          relevance.value(subsets.back()["name"].get<std::string>(), json());
  }
  // Summaries as {key: share} (the format), their intervals beside as {key: ci}.
  json orders, orders_ci, total, total_ci, shapley, shapley_ci;
  auto put = [](json& values, json& intervals, const std::string& key, const json& entry) {
    values[key] = entry["share"];
    intervals[key] = entry["ci"];
  };
  for (int k = 0; k < groups; ++k)
    put(orders, orders_ci, std::to_string(k + 1),
        with_interval(point.orders[k],
                      collect([&](const SobolIndices& d) { return d.orders[k]; })));
  for (int m = 0; m < groups; ++m) {
    put(total, total_ci, names[m],
        with_interval(point.total[m], collect([&](const SobolIndices& d) { return d.total[m]; })));
    put(shapley, shapley_ci, names[m],
        with_interval(point.shapley[m],
                      collect([&](const SobolIndices& d) { return d.shapley[m]; })));
  }
  return {{"subsets", subsets},          {"orders", orders},
          {"orders_ci", orders_ci},      {"total_effect", total},
          {"total_effect_ci", total_ci}, {"shapley", shapley},
          {"shapley_ci", shapley_ci}};
}

}  // namespace

json explain_model(StepRunner& runner, Task task, const Scaling& scaling, const Dataset& raw,
                   const ExplainOptions& options, const torch::Device& device,
                   const std::vector<ModalityConfig>& modalities) {
  const int groups = static_cast<int>(raw.features.size());
  if (groups > kMaxSobolGroups)
    throw ConfigError("explain: " + std::to_string(groups) + " modalities; at most " +
                      std::to_string(kMaxSobolGroups) +
                      " are supported (the decomposition has 2^M subsets)");
  if (options.samples < 2) throw UsageError("--samples: expected at least 2 row pairs");
  if (options.bootstrap < 0) throw UsageError("--bootstrap: expected 0 or more resamples");
  const int64_t n = raw.size();
  if (n < 2) throw Error(raw.origin + ": explain needs at least 2 rows, got " + std::to_string(n));
  const Dataset data = scaling.features(raw);

  // The pairs (A, B) are drawn from the product of the modalities' marginals: every
  // modality of A comes from its own random row, and the same modality of B from another
  // row. Drawing A as one real row instead would mix the data's dependence between the
  // modalities into the estimate (an additive model would show interactions).
  at::Generator gen = at::detail::createCPUGenerator(options.seed);
  const Tensor a = torch::randint(n, {groups, options.samples}, gen, torch::kInt64);
  const Tensor b =
      (a + 1 + torch::randint(n - 1, {groups, options.samples}, gen, torch::kInt64)) % n;

  std::vector<Tensor> outputs(1u << groups);
  {
    TerminalProgress progress("explain: evaluating the model on subsets", int64_t(outputs.size()));
    for (uint32_t mask = 0; mask < outputs.size(); ++mask) {
      outputs[mask] =
          evaluate_mixed(runner, task, scaling, data, a, b, mask, options.batch_size, device);
      progress.update(int64_t(mask) + 1);
    }
  }
  std::vector<double> exact;
  auto& model = runner.model();
  if (auto* lmf = dynamic_cast<LMFImpl*>(&model)) {
    const bool was_training = model.is_training();
    model.eval();
    exact = lmf_exact_shares(*lmf, data, device);
    model.train(was_training);
  }

  const SobolIndices point = sobol_indices(outputs, groups);
  std::vector<SobolIndices> draws;
  {
    TerminalProgress progress("explain: bootstrap resamples", options.bootstrap);
    for (int64_t r = 0; r < options.bootstrap; ++r) {
      draws.push_back(sobol_indices(
          outputs, groups, torch::randint(options.samples, {options.samples}, gen, torch::kInt64)));
      progress.update(r + 1);
    }
  }

  const json parts = decomposition_json(point, draws, raw.names, exact, relevance_json(model));
  Dataset pooled = data;  // sequences by their means over the valid steps
  for (const auto& m : modalities)
    for (size_t k = 0; k < pooled.names.size(); ++k)
      if (m.sequence && pooled.names[k] == m.name)
        pooled.features[k] = sequence::masked_mean(pooled.features[k], m.dim);
  const json dependence = dependence_json(pooled, options.seed);
  const json emap = raw.target.defined() && options.emap_background > 0
                        ? emap_json(runner, task, scaling, data, raw.target, options.emap_background,
                                    options.seed, options.batch_size, device)
                        : json();
  return {
      {"emap", emap},
      {"output", task == Task::Classification ? "predicted class probabilities" : "prediction"},
      {"samples", options.samples},
      {"rows", n},
      {"bootstrap", options.bootstrap},
      {"output_variance", point.variance},
      {"assumption",
       "pick-freeze over the product of the modalities' marginals: every modality of every evaluated "
       "row drawn from its own random row, as if the modalities were independent"},
      {"subsets", parts["subsets"]},
      {"orders", parts["orders"]},
      {"orders_ci", parts["orders_ci"]},
      {"total_effect", parts["total_effect"]},
      {"total_effect_ci", parts["total_effect_ci"]},
      {"shapley", parts["shapley"]},
      {"shapley_ci", parts["shapley_ci"]},
      {"dependence", dependence}};
}

json emap_json(StepRunner& runner, Task task, const Scaling& scaling, const Dataset& data,
               const Tensor& target, int64_t background, uint64_t seed, int64_t batch_size,
               const torch::Device& device) {
  const int64_t n = data.size(), groups = int64_t(data.features.size());
  const int64_t s_count = std::min(background, n);
  at::Generator gen = at::detail::createCPUGenerator(seed + 2);
  std::vector<Tensor> rows;  // the background rows, drawn per modality
  for (int64_t k = 0; k < groups; ++k) rows.push_back(torch::randint(n, {s_count}, gen, torch::kInt64));
  Dataset bg = data;
  for (int64_t k = 0; k < groups; ++k)
    bg.features[k] = data.features[k].index_select(0, rows[k].to(data.features[k].device()));
  const Tensor mean_output = predict(runner, bg, batch_size, device).to(torch::kFloat64).mean(0);
  const Tensor model = predict(runner, data, batch_size, device);
  Tensor additive = torch::zeros(model.sizes(), torch::kFloat64);
  for (int64_t m = 0; m < groups; ++m) {
    Tensor sum = torch::zeros(model.sizes(), torch::kFloat64);
    for (int64_t s = 0; s < s_count; ++s) {
      Dataset d = data;  // modality m as it is, every other one background row s
      for (int64_t k = 0; k < groups; ++k) {
        if (k == m) continue;
        const auto& f = data.features[k];
        d.features[k] = f.index_select(0, rows[k].slice(0, s, s + 1).to(f.device())).expand({n, f.size(1)});
      }
      sum += predict(runner, d, batch_size, device).to(torch::kFloat64);
    }
    additive += sum / double(s_count);
  }
  additive -= double(groups - 1) * mean_output;
  const std::string metric = headline_metrics(task).front();
  const json model_metrics = score(runner.loss(), task, scaling, model, target);
  const json additive_metrics =
      score(runner.loss(), task, scaling, additive.to(torch::kFloat32), target);
  return {{"metric", metric},
          {"model", model_metrics[metric]},
          {"additive", additive_metrics[metric]},
          {"background", s_count}};
}

json dependence_json(const Dataset& data, uint64_t seed) {
  const int64_t groups = static_cast<int64_t>(data.features.size());
  if (groups < 2 || data.size() < 10) return nullptr;
  for (const auto& f : data.features)  // a modality missing (modality dropout): no regression
    if (torch::isnan(f).any().item<bool>()) return nullptr;
  constexpr int64_t kRows = 2000, kFolds = 5, kComponents = 3;
  const int64_t n = std::min<int64_t>(data.size(), kRows);
  at::Generator gen = at::detail::createCPUGenerator(seed + 1);
  // A random subset of rows in a random order: folds of a sorted file would be classes.
  const Tensor rows = torch::randperm(data.size(), gen, torch::kInt64).slice(0, 0, n);
  std::vector<Tensor> x;
  for (const auto& f : data.features) {
    const Tensor m = f.index_select(0, rows.to(f.device())).to(torch::kCPU, torch::kFloat64);
    x.push_back(m - m.mean(0, true));
  }
  json r2 = json::object(), dependent = json::array();
  for (int64_t m = 0; m < groups; ++m) {
    // The modality's first principal components (of these rows), the regression's target.
    const auto svd = torch::linalg::svd(x[m], /*full_matrices=*/false, c10::nullopt);
    const int64_t k = std::min<int64_t>({kComponents, x[m].size(1), n - 1});
    const Tensor target = x[m].mm(std::get<2>(svd).slice(0, 0, k).t());
    std::vector<Tensor> others;
    for (int64_t o = 0; o < groups; ++o)
      if (o != m) others.push_back(x[o]);
    const Tensor z = torch::cat(others, 1);
    // The ridge's strength, chosen on the same folds from 1e-2 to 1e2 times the mean feature
    // variance (scale-free; the best of five is a slightly optimistic reading). Each fold's
    // Gram matrix is formed once for all five.
    constexpr std::array<double, 5> kStrengths{1e-2, 1e-1, 1.0, 1e1, 1e2};
    std::array<double, kStrengths.size()> sse{};
    double sst = 0;
    for (int64_t fold = 0; fold < kFolds; ++fold) {
      const int64_t f0 = n * fold / kFolds, f1 = n * (fold + 1) / kFolds;
      const Tensor test_mask = torch::zeros({n}, torch::kBool)
                                   .index_fill_(0, torch::arange(f0, f1, torch::kInt64), true);
      const Tensor zt = z.index({~test_mask}), tt = target.index({~test_mask});
      const Tensor zv = z.index({test_mask}), tv = target.index({test_mask});
      const Tensor zm = zt.mean(0, true), tm = tt.mean(0, true);
      const Tensor zc = zt - zm;
      const Tensor gram = zc.t().mm(zc), rhs = zc.t().mm(tt - tm);
      const double scale = std::max(1e-12, gram.diagonal().mean().item<double>());
      for (size_t i = 0; i < kStrengths.size(); ++i) {
        Tensor ridged = gram.clone();
        ridged.diagonal().add_(kStrengths[i] * scale);
        const Tensor beta = torch::linalg::solve(ridged, rhs, /*left=*/true);
        sse[i] += (tv - ((zv - zm).mm(beta) + tm)).pow(2).sum().item<double>();
      }
      sst += (tv - tm).pow(2).sum().item<double>();
    }
    double value = 0;
    if (sst > 0) value = 1.0 - *std::min_element(sse.begin(), sse.end()) / sst;
    r2[data.names[m]] = value;
    if (value > kDependenceThreshold) dependent.push_back(data.names[m]);
  }
  return {{"method",
           "5-fold cross-validated R² of a ridge regression from the other modalities' features "
           "to the modality's first principal components (up to 3, variance-weighted); the "
           "ridge strength the best of 1e-2 to 1e2 times the mean feature variance"},
          {"rows", n},
          {"threshold", kDependenceThreshold},
          {"r2", r2},
          {"dependent", dependent}};
}

void attach_truth(json& result, const json& truth) {
  const bool exact = truth.value("exact", false);
  for (auto& subset : result["subsets"]) {
    subset["truth"] = exact ? json(0.0) : json(nullptr);
    for (const auto& t : truth["subsets"])
      if (exact && t["name"] == subset["name"]) subset["truth"] = t["share"];
  }
  result["truth"] = truth;
}

std::string explain_table(const json& r) {
  std::ostringstream out;
  out << fmt::format("{} of {}: {} row pairs from {} rows, output variance {:.4g}\n",
                     r.value("output", std::string("prediction")),
                     r.value("model", std::string("the model")), r["samples"].get<int64_t>(),
                     r["rows"].get<int64_t>(), r["output_variance"].get<double>());
  // The model's own view beside the shares, when it has one: LMF's exact split, or
  // InTense's relevance scores (not shares of variance: docs/intense.md).
  const bool scores = !r["subsets"].empty() && r["subsets"][0].contains("relevance");
  const std::string own = scores ? "relevance" : "lmf_exact";
  out << fmt::format("{:<28} {:>7} {:>18} {:>7} {:>9} {:>7}\n", "subset", "share", "95% interval",
                     "closed", scores ? "relevance" : "LMF exact", "truth");
  for (const auto& s : r["subsets"])
    out << fmt::format("{:<28} {:>7} {:>18} {:>7.3f} {:>9} {:>7}\n", s["name"].get<std::string>(),
                       format_share(s["share"]), format_ci(s["ci"]), s["closed"].get<double>(),
                       format_share(s.value(own, json())), format_share(s["truth"]));
  for (const auto& [k, v] : r["orders"].items())
    out << fmt::format("order {:<22} {:>7} {:>18}\n", k, format_share(v),
                       format_ci(r["orders_ci"][k]));
  for (const auto& s : r["subsets"]) {  // the modalities in the config's order
    if (s["modalities"].size() != 1) continue;
    const std::string m = s["name"].get<std::string>();
    out << fmt::format("total effect {:<15} {:>7} {:>18}   Shapley {} {}\n", m,
                       format_share(r["total_effect"][m]), format_ci(r["total_effect_ci"][m]),
                       format_share(r["shapley"][m]), format_ci(r["shapley_ci"][m]));
  }
  if (r.contains("truth") && !r["truth"].value("exact", false) && r["truth"]["why_not"].is_string())
    out << "no truth: " << r["truth"]["why_not"].get<std::string>() << "\n";
  out << "assumption: " << r["assumption"].get<std::string>() << "\n";
  const json emap = r.value("emap", json());
  if (emap.is_object())
    out << fmt::format("EMAP: {} {:.4f} of the model, {:.4f} of its additive projection ({} background "
                       "rows; equal: the model uses no interaction)\n",
                       emap["metric"].get<std::string>(), emap["model"].get<double>(),
                       emap["additive"].get<double>(), emap["background"].get<int64_t>());
  const json dependence = r.value("dependence", json());
  if (dependence.is_object()) {
    std::string values;
    for (const auto& s : r["subsets"]) {  // the modalities in the config's order
      if (s["modalities"].size() != 1) continue;
      const std::string m = s["name"].get<std::string>();
      values += fmt::format("{}{} {:.2f}", values.empty() ? "" : ", ", m,
                            dependence["r2"][m].get<double>());
    }
    out << "predictable from the other modalities (cross-validated R²): " << values << "\n";
    if (!dependence["dependent"].empty()) {
      std::string names;
      for (const auto& m : dependence["dependent"])
        names += (names.empty() ? "" : ", ") + m.get<std::string>();
      out << fmt::format(
          "warning: {} {} predictable from the others (R² above {}): the modalities are "
          "dependent, and these shares describe the model on recombined rows that do not occur "
          "in the data, not the data; `mmfusion attribute` retrains on each subset of the "
          "modalities and answers for the data (docs/attribute.md)\n",
          names, dependence["dependent"].size() == 1 ? "is" : "are",
          dependence["threshold"].get<double>());
    }
  }
  return out.str();
}

std::string explain_csv(const json& r) {
  std::ostringstream out;
  // truth stays the sixth column (as before); closed and lmf_exact follow it.
  out << "kind,name,share,ci_low,ci_high,truth,closed,lmf_exact\n";
  auto number = [](const json& v) {
    return v.is_number() ? fmt::format("{:.6g}", v.get<double>()) : std::string();
  };
  auto row = [&](const std::string& kind, const std::string& name, const json& share,
                 const json& ci, const json& truth, const json& closed, const json& exact) {
    out << kind << "," << csv_field(name) << "," << number(share) << ","
        << (ci.is_array() ? number(ci[0]) + "," + number(ci[1]) : ",") << "," << number(truth)
        << "," << number(closed) << "," << number(exact) << "\n";
  };
  for (const auto& s : r["subsets"])
    row("subset", s["name"].get<std::string>(), s["share"], s["ci"], s["truth"],
        s.value("closed", json()), s.value("lmf_exact", json()));
  for (const auto& s : r["subsets"])
    if (s.value("relevance", json()).is_number())
      row("relevance", s["name"].get<std::string>(), s["relevance"], nullptr, nullptr, nullptr,
          nullptr);
  for (const char* kind : {"orders", "total_effect", "shapley"})
    for (const auto& [key, share] : r[kind].items())
      row(kind, key, share, r[std::string(kind) + "_ci"][key], nullptr, nullptr, nullptr);
  return out.str();
}

std::string explain_svg(const json& r) {
  ContributionFigure f;
  const std::string output = r.value("output", std::string("prediction"));
  const json data = r.value("data", json("test"));
  f.title = "Share of the " + output + "'s variance, by modality: explain of one trained " +
            r.value("model", std::string("")) + " model on the " +
            (data.is_string() ? data.get<std::string>() : std::string("test")) + " split";
  f.subtitle = fmt::format(
      "pick-freeze over {} rows, modalities as independent; 95% intervals from {} bootstrap "
      "resamples of the rows; 1 seed (the checkpoint's)",
      r.value("samples", int64_t(0)), r.value("bootstrap", int64_t(0)));
  f.unit = "share of output variance";
  std::map<std::string, size_t> index;
  for (const auto& s : r["subsets"])
    if (s["modalities"].size() == 1) {
      index[s["name"].get<std::string>()] = f.modalities.size();
      f.modalities.push_back(s["name"].get<std::string>());
    }
  const size_t m = f.modalities.size();
  auto number = [](const json& v) { return v.is_number() ? v.get<double>() : NAN; };
  // The truth's pure shares give the truth of every summary (Shapley values, total
  // effects: the terms a modality is in, order sums).
  bool exact = false;
  for (const auto& s : r["subsets"]) exact = exact || s["truth"].is_number();
  std::vector<double> truth_pure(size_t(1) << m, 0.0), truth_total(m, exact ? 0.0 : NAN);
  FigureSeries strip{"explain's share (95% interval)", {}, {}, {}, {}};
  FigureSeries relevance{"the model's relevance score", {}, {}, {}, {}};
  f.pairs.assign(m * m, NAN);
  for (const auto& s : r["subsets"]) {
    f.subsets.push_back(s["name"].get<std::string>());
    strip.value.push_back(number(s["share"]));
    strip.low.push_back(s["ci"].is_array() ? number(s["ci"][0]) : NAN);
    strip.high.push_back(s["ci"].is_array() ? number(s["ci"][1]) : NAN);
    strip.truth.push_back(number(s["truth"]));
    relevance.value.push_back(number(s.value("relevance", json())));
    const size_t size = s["modalities"].size();
    if (size == 2) {
      const size_t a = index.at(s["modalities"][0]), b = index.at(s["modalities"][1]);
      f.pairs[a * m + b] = f.pairs[b * m + a] = number(s["share"]);
    }
    if (!exact) continue;
    uint32_t mask = 0;
    for (const auto& name : s["modalities"]) mask |= 1u << index.at(name);
    truth_pure[mask] = number(s["truth"]);
    for (const auto& name : s["modalities"]) truth_total[index.at(name)] += truth_pure[mask];
  }
  const int groups = static_cast<int>(m);
  const std::vector<double> truth_shapley =
      exact ? shapley_values(truth_pure, groups) : std::vector<double>(m, NAN);
  const std::vector<double> truth_order =
      exact ? order_sums(truth_pure, groups) : std::vector<double>(m, NAN);
  auto per = [&](const std::string& name, const char* key, const std::vector<double>& truth,
                 const std::vector<std::string>& keys) {
    FigureSeries series{name, {}, {}, {}, truth};
    for (const auto& k : keys) {
      series.value.push_back(number(r[key].value(k, json())));
      const json ci = r[std::string(key) + "_ci"].value(k, json());
      series.low.push_back(ci.is_array() ? number(ci[0]) : NAN);
      series.high.push_back(ci.is_array() ? number(ci[1]) : NAN);
    }
    return series;
  };
  f.per_modality = {per("Shapley value", "shapley", truth_shapley, f.modalities),
                    per("total effect", "total_effect", truth_total, f.modalities)};
  std::vector<std::string> orders;
  for (size_t k = 1; k <= m; ++k) orders.push_back(std::to_string(k));
  f.orders = {per("sum of pure shares", "orders", truth_order, orders)};
  f.strip = {strip};
  if (std::any_of(relevance.value.begin(), relevance.value.end(),
                  [](double v) { return std::isfinite(v); }))
    f.strip.push_back(relevance);
  f.strip_note = fmt::format(
      "{} modalities: the {} subsets' pure shares, each with its interval, are in explain.csv "
      "and explain.json (drawn here for up to {} modalities).",
      m, f.subsets.size(), f.strip_limit);
  return contribution_figure(f);
}

}  // namespace mmfusion
