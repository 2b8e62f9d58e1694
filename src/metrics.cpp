#include "mmfusion/metrics.hpp"

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
  return m;
}

nlohmann::json to_json(const RegressionMetrics& m) {
  return {{"mse", m.mse}, {"mae", m.mae}, {"pearson", m.pearson}, {"r2", m.r2}, {"count", m.count}};
}

}  // namespace mmfusion
