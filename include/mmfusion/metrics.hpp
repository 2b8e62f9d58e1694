#pragma once
// Regression metrics over whole splits (computed in double precision).
#include <torch/torch.h>

#include <nlohmann/json.hpp>

namespace mmfusion {

struct RegressionMetrics {
  double mse = 0;
  double mae = 0;
  double pearson = 0;  // over all elements; 0 when either side has no variance
  double r2 = 0;       // 1 - SS_res / SS_tot, SS_tot around each column's mean
  int64_t count = 0;   // samples
};

// prediction and target: [N, K] on any device.
RegressionMetrics regression_metrics(const torch::Tensor& prediction, const torch::Tensor& target);
nlohmann::json to_json(const RegressionMetrics& m);

}  // namespace mmfusion
