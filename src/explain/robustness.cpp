#include "mmfusion/explain/robustness.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include <ATen/CPUGeneratorImpl.h>
#include <fmt/format.h>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/progress.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/base/random.hpp"
#include "mmfusion/base/svg.hpp"
#include "mmfusion/data/sequence.hpp"
#include "mmfusion/training/evaluation.hpp"
#include "mmfusion/training/metrics.hpp"
#include "mmfusion/training/step.hpp"

namespace mmfusion {
using nlohmann::json;

namespace {

// A modality's feature statistics in the units the model reads (per feature [D]).
struct FeatureStats {
  torch::Tensor mean, sd;
};

FeatureStats feature_stats(const torch::Tensor& x, const ModalityConfig& m, bool scaled) {
  const int64_t d = m.dim;
  if (scaled)  // z-scored with the training statistics: mean 0, standard deviation 1
    return {torch::zeros({d}), torch::ones({d})};
  torch::Tensor rows = x.to(torch::kCPU);
  if (m.sequence) {
    const auto valid = sequence::mask(rows, d).reshape({-1}) > 0;
    rows = sequence::values(rows, d).reshape({-1, d}).index({valid});
  }
  if (rows.size(0) == 0) return {torch::zeros({d}), torch::ones({d})};
  return {rows.mean(0), rows.std(0, /*unbiased=*/false)};
}

// Gaussian noise of level x sd on every value (a sequence's valid steps only).
torch::Tensor with_noise(const torch::Tensor& x, const ModalityConfig& m, const FeatureStats& s,
                         double level, at::Generator& gen) {
  if (!m.sequence)
    return x + torch::randn(x.sizes(), gen, x.options()) * (s.sd.to(x.device()) * level);
  torch::Tensor out = x.clone();
  auto v = sequence::values(out, m.dim);
  const auto mask = sequence::mask(out, m.dim).unsqueeze(2);
  v.add_(torch::randn(v.sizes(), gen, v.options()) * (s.sd.to(x.device()) * level) * mask);
  return out;
}

// The modality missing in round(level x N) rows, chosen at random: its values replaced by
// the mean (a sequence keeps its length, every valid step the mean).
torch::Tensor with_drop(const torch::Tensor& x, const ModalityConfig& m, const FeatureStats& s,
                        double level, at::Generator& gen, bool missing) {
  const int64_t n = x.size(0), k = std::llround(level * double(n));
  torch::Tensor out = x.clone();
  if (k == 0) return out;
  const auto rows = torch::randperm(n, gen, torch::TensorOptions().dtype(torch::kInt64))
                        .slice(0, 0, k)
                        .to(x.device());
  if (missing) {  // as the model was trained to read a missing modality
    if (!m.sequence)
      out.index_put_({rows}, torch::full({k, m.dim}, std::numeric_limits<float>::quiet_NaN(), out.options()));
    else
      out.index_put_({rows}, torch::zeros({k, out.size(1)}, out.options()));
    return out;
  }
  const auto mean = s.mean.to(x.device());
  if (!m.sequence) {
    out.index_put_({rows}, mean.unsqueeze(0).expand({k, m.dim}));
    return out;
  }
  auto v = sequence::values(out, m.dim);
  const auto mask = sequence::mask(out, m.dim).index({rows}).unsqueeze(2);
  v.index_put_({rows}, mean.view({1, 1, m.dim}) * mask);
  return out;
}

// A sequence with round(level x L) of each row's L valid steps removed, chosen at random;
// the rest keep their order and close up.
torch::Tensor with_step_drop(const torch::Tensor& x, const ModalityConfig& m, double level,
                             at::Generator& gen) {
  const torch::Tensor rows = x.to(torch::kCPU).contiguous();
  const int64_t n = rows.size(0), d = m.dim, t = sequence::steps(rows, d);
  const torch::Tensor lengths = sequence::lengths(rows);
  const torch::Tensor values = sequence::values(rows, d).contiguous();
  torch::Tensor kept = torch::zeros_like(values);
  torch::Tensor new_lengths = torch::zeros({n}, torch::kInt64);
  const float* in = values.data_ptr<float>();
  float* o = kept.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = std::clamp<int64_t>(lengths[i].item<int64_t>(), 0, t);
    const int64_t keep = len - std::llround(level * double(len));
    if (keep <= 0) continue;
    torch::Tensor which = std::get<0>(
        torch::randperm(len, gen, torch::TensorOptions().dtype(torch::kInt64)).slice(0, 0, keep).sort());
    const int64_t* w = which.data_ptr<int64_t>();
    for (int64_t j = 0; j < keep; ++j)
      std::copy(in + (i * t + w[j]) * d, in + (i * t + w[j] + 1) * d, o + (i * t + j) * d);
    new_lengths[i] = keep;
  }
  return sequence::pack(kept, new_lengths).to(x.device());
}

double metric_of(const json& metrics, const std::string& name) {
  const json v = metrics.value(name, json());
  return v.is_number() ? v.get<double>() : NAN;
}

std::string curve_key(const json& c) {
  return c["modality"].get<std::string>() + "/" + c["kind"].get<std::string>();
}

}  // namespace

json robustness_curves(StepRunner& runner, Task task, const Scaling& scaling, const Dataset& data,
                       const RobustnessOptions& o, const torch::Device& device,
                       const std::vector<ModalityConfig>& modalities, MetricSet set) {
  if (o.levels < 1) throw UsageError("--levels: expected 1 or more");
  if (o.repeats < 1) throw UsageError("--repeats: expected 1 or more");
  if (!data.target.defined())
    throw Error(data.origin + ": no target: robustness measures a metric against it");
  if (modalities.size() != data.features.size())
    throw std::logic_error("robustness_curves: one ModalityConfig per modality expected");
  const Dataset scaled = scaling.features(data);
  auto measure = [&](const Dataset& d) {
    const torch::Tensor out = predict(runner, d, o.batch_size, device);
    return score(runner.loss(), task, scaling, out, data.target, set);
  };
  const json clean_metrics = measure(scaled);
  const std::string metric = o.metric.empty() ? headline_metrics(task).front() : o.metric;
  const double clean = metric_of(clean_metrics, metric);
  if (!std::isfinite(clean)) {
    std::string names;
    for (const auto& item : clean_metrics.items())
      if (item.value().is_number_float()) names += (names.empty() ? "" : ", ") + item.key();
    throw UsageError("--metric " + metric + ": not one of this model's metrics (" + names + ")");
  }

  std::vector<FeatureStats> stats;
  for (size_t m = 0; m < modalities.size(); ++m)
    stats.push_back(feature_stats(scaled.features[m], modalities[m], scaling.scales_features()));
  struct Curve {
    std::string modality, kind;
    std::vector<size_t> targets;  // the modalities it perturbs
  };
  std::vector<Curve> curves;
  std::vector<size_t> all, sequences;
  for (size_t m = 0; m < modalities.size(); ++m) {
    all.push_back(m);
    if (modalities[m].sequence) sequences.push_back(m);
  }
  for (size_t m = 0; m < modalities.size(); ++m) {
    curves.push_back({modalities[m].name, "noise", {m}});
    curves.push_back({modalities[m].name, "drop", {m}});
    if (modalities[m].sequence) curves.push_back({modalities[m].name, "step_drop", {m}});
  }
  if (modalities.size() > 1) {
    curves.push_back({"all", "noise", all});
    curves.push_back({"all", "drop", all});
    if (!sequences.empty()) curves.push_back({"all", "step_drop", sequences});
  }

  json out = {{"metric", metric},
              {"higher_is_better", !lower_is_better(metric)},
              {"levels", o.levels},
              {"repeats", o.repeats},
              {"seed", o.seed},
              {"clean", clean},
              {"replacement", o.missing_encodings ? "the model's learned missing encoding (train.modality_dropout)"
                              : scaling.scales_features() ? "the training mean (the model's scaling)"
                                                          : "the evaluated data's mean"},
              {"curves", json::array()},
              {"relative_robustness", json::object()},
              {"effective_robustness", json::object()}};
  TerminalProgress progress("robustness: perturbed evaluations",
                            int64_t(curves.size()) * o.levels * o.repeats);
  int64_t evaluated = 0;
  for (size_t c = 0; c < curves.size(); ++c) {
    const Curve& curve = curves[c];
    json levels = json::array(), values = json::array(), ci = json::array();
    double area = 0, previous = clean, previous_level = 0;
    for (int64_t i = 0; i <= o.levels; ++i) {
      const double level = double(i) / double(o.levels);
      double mean = clean, half = 0;
      if (i > 0) {
        std::vector<double> draws;
        for (int64_t r = 0; r < o.repeats; ++r) {
          // Its own stream per curve, level and draw: any one of them is reproducible alone.
          at::Generator gen = at::detail::createCPUGenerator(
              splitmix64(stream_key(o.seed, c), uint64_t(i) * 1000003ULL + uint64_t(r) + 1));
          Dataset d = scaled;
          for (const size_t m : curve.targets) {
            const torch::Tensor& x = scaled.features[m];
            d.features[m] = curve.kind == "noise"  ? with_noise(x, modalities[m], stats[m], level, gen)
                            : curve.kind == "drop"
                                ? with_drop(x, modalities[m], stats[m], level, gen, o.missing_encodings)
                                                   : with_step_drop(x, modalities[m], level, gen);
          }
          draws.push_back(metric_of(measure(d), metric));
          progress.update(++evaluated);
        }
        double sum = 0;
        for (double v : draws) sum += v;
        mean = sum / double(draws.size());
        if (draws.size() > 1) {
          double sq = 0;
          for (double v : draws) sq += (v - mean) * (v - mean);
          half = 1.96 * std::sqrt(sq / double(draws.size() - 1)) / std::sqrt(double(draws.size()));
        }
        area += (previous + mean) / 2 * (level - previous_level);
      }
      previous = mean, previous_level = level;
      levels.push_back(level);
      values.push_back(mean);
      ci.push_back({mean - half, mean + half});
    }
    json entry = {{"modality", curve.modality}, {"kind", curve.kind}, {"levels", levels},
                  {"values", values},           {"ci", ci}};
    out["relative_robustness"][curve_key(entry)] = area;
    out["effective_robustness"][curve_key(entry)] = nullptr;
    out["curves"].push_back(std::move(entry));
  }
  out["baseline"] = nullptr;
  return out;
}

void attach_baseline(json& result, const json& baseline, const std::string& name) {
  if (!baseline.is_object() || !baseline.contains("curves") || !baseline["curves"].is_array() ||
      !baseline.contains("metric"))
    throw Error(name + ": not a robustness.json (expected \"metric\" and \"curves\")");
  if (baseline["metric"] != result["metric"])
    throw Error(name + ": its metric is " + baseline["metric"].dump() + ", this one's " +
                result["metric"].dump() + " (run both with the same --metric)");
  for (const auto& curve : result["curves"]) {
    const json* match = nullptr;
    for (const auto& b : baseline["curves"])
      if (b.is_object() && b.value("modality", json()) == curve["modality"] &&
          b.value("kind", json()) == curve["kind"] && b.value("levels", json()) == curve["levels"] &&
          b.contains("values") && b["values"].is_array() &&
          b["values"].size() == curve["values"].size())
        match = &b;
    if (!match) continue;
    const auto& f = curve["values"];
    const auto& bv = (*match)["values"];
    bool numbers = true;
    for (const auto& v : bv) numbers = numbers && v.is_number();
    if (!numbers) continue;
    double effective = 0;
    for (size_t i = 0; i < f.size(); ++i)
      effective += f[i].get<double>() -
                   (bv[i].get<double>() + f[0].get<double>() - bv[0].get<double>());
    result["effective_robustness"][curve_key(curve)] = effective;
  }
  result["baseline"] = name;
}

std::string robustness_table(const json& result) {
  const int64_t levels = result["levels"].get<int64_t>();
  const std::vector<int64_t> shown = {0, levels / 2, levels};
  std::ostringstream out;
  out << fmt::format("{} ({} better) under each perturbation; mean of {} draws per level\n",
                     result["metric"].get<std::string>(),
                     result["higher_is_better"].get<bool>() ? "higher" : "lower",
                     result["repeats"].get<int64_t>());
  out << fmt::format("{:<24}", "curve");
  for (int64_t i : shown) out << fmt::format(" {:>10}", fmt::format("level {:.2g}", double(i) / levels));
  out << fmt::format(" {:>10} {:>10}\n", "relative", "effective");
  for (const auto& c : result["curves"]) {
    const std::string key = curve_key(c);
    out << fmt::format("{:<24}", key);
    for (int64_t i : shown) out << fmt::format(" {:>10.4f}", c["values"][size_t(i)].get<double>());
    const json eff = result["effective_robustness"].value(key, json());
    out << fmt::format(" {:>10.4f} {:>10}\n", result["relative_robustness"][key].get<double>(),
                       eff.is_number() ? fmt::format("{:.4f}", eff.get<double>()) : "-");
  }
  return out.str();
}

std::string robustness_csv(const json& result) {
  std::ostringstream csv;
  csv << "modality,kind,level,value,ci_low,ci_high\n";
  for (const auto& c : result["curves"])
    for (size_t i = 0; i < c["levels"].size(); ++i)
      csv << csv_field(c["modality"].get<std::string>()) << ',' << c["kind"].get<std::string>()
          << ',' << c["levels"][i].dump() << ',' << c["values"][i].dump() << ','
          << c["ci"][i][0].dump() << ',' << c["ci"][i][1].dump() << '\n';
  return csv.str();
}

std::string robustness_svg(const json& result) {
  ChartOptions o;
  o.title = "robustness: " + result["metric"].get<std::string>() + " against perturbation level";
  o.x_label = "level (noise: x the feature's sd; drop: share of rows; step_drop: share of steps)";
  o.y_label = result["metric"].get<std::string>();
  o.width = 900;
  o.legend_title = "modality and perturbation";
  std::vector<ChartSeries> series;
  for (const auto& c : result["curves"]) {
    ChartSeries s;
    s.name = c["modality"].get<std::string>() + " " + c["kind"].get<std::string>();
    for (size_t i = 0; i < c["levels"].size(); ++i) {
      s.x.push_back(c["levels"][i].get<double>());
      s.y.push_back(c["values"][i].get<double>());
      s.low.push_back(c["ci"][i][0].get<double>());
      s.high.push_back(c["ci"][i][1].get<double>());
    }
    series.push_back(std::move(s));
  }
  return line_chart(o, series);
}

}  // namespace mmfusion
