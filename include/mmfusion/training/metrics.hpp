#pragma once
// Metrics over whole splits (computed in double precision).
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "mmfusion/config/config.hpp"  // Task

namespace mmfusion {

// The metrics' names, as results.json, metrics.jsonl (with "val_" before them) and the
// sweep reports spell them.
namespace metric {
inline constexpr const char* kMSE = "mse";
inline constexpr const char* kMAE = "mae";
inline constexpr const char* kPearson = "pearson";
inline constexpr const char* kR2 = "r2";
inline constexpr const char* kSignAccuracy = "sign_accuracy";
inline constexpr const char* kSignF1 = "sign_f1";
inline constexpr const char* kAccuracy = "accuracy";
inline constexpr const char* kMacroF1 = "macro_f1";
inline constexpr const char* kLoss = "loss";    // the training loss on the split
inline constexpr const char* kCount = "count";  // samples
inline constexpr const char* kValPrefix = "val_";
}  // namespace metric

// A task's headline metrics, first the one it is judged by (mse, accuracy), in the order
// reports show them.
const std::vector<std::string>& headline_metrics(Task task);

struct RegressionMetrics {
  double mse = 0;
  double mae = 0;
  double pearson = 0;  // over all elements; 0 when either side has no variance
  double r2 = 0;       // 1 - SS_res / SS_tot, SS_tot around each column's mean
  // The sentiment benchmarks' convention (CMU-MOSI): the sign as a binary label,
  // positive = (x >= 0). First column only.
  double sign_accuracy = 0;
  double sign_f1 = 0;  // F1 of the positive class
  int64_t count = 0;   // samples
};

struct ClassificationMetrics {
  double accuracy = 0;
  double macro_f1 = 0;  // unweighted mean of per-class F1 over the classes present
  int64_t count = 0;
};

// prediction and target: [N, K] on any device.
RegressionMetrics regression_metrics(const torch::Tensor& prediction, const torch::Tensor& target);
nlohmann::json to_json(const RegressionMetrics& m);

// logits: [N, K]; labels: int64 [N].
ClassificationMetrics classification_metrics(const torch::Tensor& logits,
                                             const torch::Tensor& labels);
nlohmann::json to_json(const ClassificationMetrics& m);

// The metrics of a task as JSON.
nlohmann::json task_metrics(Task task, const torch::Tensor& prediction,
                            const torch::Tensor& target);

}  // namespace mmfusion
