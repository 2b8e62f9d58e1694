#include "mmfusion/training/metrics.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <map>

namespace mmfusion {

RegressionMetrics regression_metrics(const torch::Tensor& prediction, const torch::Tensor& target) {
  TORCH_CHECK(prediction.sizes() == target.sizes(), "prediction ", prediction.sizes(),
              " and target ", target.sizes(), " differ in shape");
  const auto p = prediction.to(torch::kCPU, torch::kFloat64).reshape({prediction.size(0), -1});
  const auto t = target.to(torch::kCPU, torch::kFloat64).reshape({target.size(0), -1});
  RegressionMetrics m;
  m.count = p.size(0);
  if (m.count == 0) return m;
  const auto err = p - t;
  m.mse = err.pow(2).mean().item<double>();
  m.mae = err.abs().mean().item<double>();
  const auto pc = p - p.mean();
  const auto tc = t - t.mean();
  const double denom = std::sqrt(pc.pow(2).sum().item<double>() * tc.pow(2).sum().item<double>());
  m.pearson = denom > 0 ? (pc * tc).sum().item<double>() / denom : 0.0;
  const double ss_tot = (t - t.mean(0, true)).pow(2).sum().item<double>();
  const double ss_res = err.pow(2).sum().item<double>();
  m.r2 = ss_tot > 0 ? 1.0 - ss_res / ss_tot : 0.0;
  const auto pp = p.select(1, 0) >= 0, tp = t.select(1, 0) >= 0;
  m.sign_accuracy = (pp == tp).to(torch::kFloat64).mean().item<double>();
  const double true_pos = (pp & tp).sum().item<double>();
  const double predicted = pp.sum().item<double>(), actual = tp.sum().item<double>();
  m.sign_f1 = predicted + actual > 0 ? 2 * true_pos / (predicted + actual) : 0.0;
  return m;
}

nlohmann::json to_json(const RegressionMetrics& m) {
  return {{metric::kMSE, m.mse},
          {metric::kMAE, m.mae},
          {metric::kPearson, m.pearson},
          {metric::kR2, m.r2},
          {metric::kSignAccuracy, m.sign_accuracy},
          {metric::kSignF1, m.sign_f1},
          {metric::kCount, m.count}};
}

ClassificationMetrics classification_metrics(const torch::Tensor& logits,
                                             const torch::Tensor& labels) {
  TORCH_CHECK(logits.dim() == 2 && labels.dim() == 1 && logits.size(0) == labels.size(0),
              "logits [N, K] and labels [N] expected, got ", logits.sizes(), " and ",
              labels.sizes());
  ClassificationMetrics m;
  m.count = labels.size(0);
  if (m.count == 0) return m;
  const int64_t k = logits.size(1);
  const auto predicted = logits.argmax(1).to(torch::kCPU, torch::kInt64);
  const auto truth = labels.to(torch::kCPU, torch::kInt64);
  m.accuracy = (predicted == truth).to(torch::kFloat64).mean().item<double>();
  double f1_sum = 0;
  int64_t classes = 0;
  for (int64_t c = 0; c < k; ++c) {
    const auto pc = predicted == c, tc = truth == c;
    const double tp = (pc & tc).sum().item<double>();
    const double denom = pc.sum().item<double>() + tc.sum().item<double>();
    if (denom == 0) continue;  // class absent from both: no F1 to average
    f1_sum += 2 * tp / denom;
    ++classes;
  }
  m.macro_f1 = classes > 0 ? f1_sum / classes : 0.0;
  return m;
}

nlohmann::json to_json(const ClassificationMetrics& m) {
  return {
      {metric::kAccuracy, m.accuracy}, {metric::kMacroF1, m.macro_f1}, {metric::kCount, m.count}};
}

bool lower_is_better(const std::string& metric) {
  return metric == metric::kLoss || metric == metric::kMSE || metric == metric::kMAE ||
         metric == metric::kSimsMAE;
}

const std::vector<std::string>& headline_metrics(Task task) {
  static const std::vector<std::string> regression{metric::kMSE, metric::kR2, metric::kPearson,
                                                   metric::kMAE};
  static const std::vector<std::string> classification{metric::kAccuracy, metric::kMacroF1,
                                                       metric::kLoss};
  return task == Task::Classification ? classification : regression;
}

namespace {

// The first column [N, 1], in double precision on the CPU.
torch::Tensor column(const torch::Tensor& x) {
  return x.to(torch::kCPU, torch::kFloat64).reshape({x.size(0), -1}).slice(1, 0, 1).contiguous();
}
std::vector<double> values(const torch::Tensor& column) {
  return std::vector<double>(column.data_ptr<double>(), column.data_ptr<double>() + column.numel());
}

// The share of rows whose labels agree.
double agreement(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  if (a.empty()) return 0;
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  return double(same) / double(a.size());
}

// NumPy's round (half to even) of x clipped to [-limit, limit], as a class.
int64_t clipped_class(double x, double limit) {
  return static_cast<int64_t>(std::nearbyint(std::clamp(x, -limit, limit)));
}

// The index of the right-closed bin (edges[i], edges[i + 1]] that holds x; x outside every
// bin keeps -1 (it cannot happen after clipping to [-1, 1]). Compared in float32, as NumPy
// compares MMSA's float32 arrays with the edges: 0.1f lies in (-0.1, 0.1], where as a
// double (0.10000000149) it would not.
int64_t bin_of(double x, const std::vector<double>& edges) {
  const float v = static_cast<float>(x);
  for (size_t i = 0; i + 1 < edges.size(); ++i)
    if (v > static_cast<float>(edges[i]) && v <= static_cast<float>(edges[i + 1]))
      return static_cast<int64_t>(i);
  return -1;
}

}  // namespace

double weighted_f1(const std::vector<int64_t>& truth, const std::vector<int64_t>& predicted) {
  std::map<int64_t, std::array<double, 3>> counts;  // label -> true, predicted, both
  for (size_t i = 0; i < truth.size(); ++i) {
    counts[truth[i]][0] += 1;
    counts[predicted[i]][1] += 1;
    if (truth[i] == predicted[i]) counts[truth[i]][2] += 1;
  }
  double sum = 0, support = 0;
  for (const auto& [label, c] : counts) {
    const double f1 = c[0] + c[1] > 0 ? 2 * c[2] / (c[0] + c[1]) : 0.0;
    sum += c[0] * f1;
    support += c[0];
  }
  return support > 0 ? sum / support : 0.0;
}

nlohmann::json msa_metrics(const torch::Tensor& prediction, const torch::Tensor& target) {
  const auto p = values(column(prediction)), t = values(column(target));
  std::vector<int64_t> has0_p, has0_t, non0_p, non0_t, a7_p, a7_t, a5_p, a5_t;
  for (size_t i = 0; i < p.size(); ++i) {
    has0_p.push_back(p[i] >= 0), has0_t.push_back(t[i] >= 0);
    if (t[i] != 0) non0_p.push_back(p[i] > 0), non0_t.push_back(t[i] > 0);
    a7_p.push_back(clipped_class(p[i], 3)), a7_t.push_back(clipped_class(t[i], 3));
    a5_p.push_back(clipped_class(p[i], 2)), a5_t.push_back(clipped_class(t[i], 2));
  }
  return {{metric::kAcc2Has0, agreement(has0_p, has0_t)},
          {metric::kF1Has0, weighted_f1(has0_t, has0_p)},
          {metric::kAcc2Non0, agreement(non0_p, non0_t)},
          {metric::kF1Non0, weighted_f1(non0_t, non0_p)},
          {metric::kAcc7, agreement(a7_p, a7_t)},
          {metric::kAcc5, agreement(a5_p, a5_t)},
          {metric::kCorr, regression_metrics(column(prediction), column(target)).pearson}};
}

nlohmann::json sims_metrics(const torch::Tensor& prediction, const torch::Tensor& target) {
  const auto pc = column(prediction).clamp(-1.0, 1.0), tc = column(target).clamp(-1.0, 1.0);
  const auto p = values(pc), t = values(tc);
  static const std::vector<double> e2{-1.01, 0.0, 1.01}, e3{-1.01, -0.1, 0.1, 1.01},
      e5{-1.01, -0.7, -0.1, 0.1, 0.7, 1.01};
  std::vector<int64_t> b2p, b2t, b3p, b3t, b5p, b5t;
  for (size_t i = 0; i < p.size(); ++i) {
    b2p.push_back(bin_of(p[i], e2)), b2t.push_back(bin_of(t[i], e2));
    b3p.push_back(bin_of(p[i], e3)), b3t.push_back(bin_of(t[i], e3));
    b5p.push_back(bin_of(p[i], e5)), b5t.push_back(bin_of(t[i], e5));
  }
  const RegressionMetrics clipped = regression_metrics(pc, tc);
  return {{metric::kSimsAcc2, agreement(b2p, b2t)},
          {metric::kSimsAcc3, agreement(b3p, b3t)},
          {metric::kSimsAcc5, agreement(b5p, b5t)},
          {metric::kSimsF1, weighted_f1(b2t, b2p)},
          {metric::kSimsMAE, clipped.mae},
          {metric::kSimsCorr, clipped.pearson}};
}

nlohmann::json task_metrics(Task task, const torch::Tensor& prediction, const torch::Tensor& target,
                            MetricSet set) {
  nlohmann::json out;
  switch (task) {
    case Task::Classification: {
      out = to_json(classification_metrics(prediction, target));
      if (set != MetricSet::Default && prediction.size(0) > 0) {
        const auto predicted = prediction.argmax(1).to(torch::kCPU, torch::kInt64).contiguous();
        const auto truth = target.to(torch::kCPU, torch::kInt64).contiguous();
        out[metric::kWeightedF1] = weighted_f1(
            std::vector<int64_t>(truth.data_ptr<int64_t>(), truth.data_ptr<int64_t>() + truth.numel()),
            std::vector<int64_t>(predicted.data_ptr<int64_t>(),
                                 predicted.data_ptr<int64_t>() + predicted.numel()));
      }
      return out;
    }
    case Task::Regression: out = to_json(regression_metrics(prediction, target)); break;
  }
  switch (set) {
    case MetricSet::Default: break;
    case MetricSet::MSA: out.update(msa_metrics(prediction, target)); break;
    case MetricSet::SIMS: out.update(sims_metrics(prediction, target)); break;
  }
  return out;
}

}  // namespace mmfusion
