#include "mmfusion/training/metrics.hpp"

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

const std::vector<std::string>& headline_metrics(Task task) {
  static const std::vector<std::string> regression{metric::kMSE, metric::kR2, metric::kPearson,
                                                   metric::kMAE};
  static const std::vector<std::string> classification{metric::kAccuracy, metric::kMacroF1,
                                                       metric::kLoss};
  return task == Task::Classification ? classification : regression;
}

nlohmann::json task_metrics(Task task, const torch::Tensor& prediction,
                            const torch::Tensor& target) {
  switch (task) {
    case Task::Classification: return to_json(classification_metrics(prediction, target));
    case Task::Regression: return to_json(regression_metrics(prediction, target));
  }
  return nullptr;
}

}  // namespace mmfusion
