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
inline constexpr const char* kWeightedF1 = "weighted_f1";
// metrics.set "msa" (docs/metrics.md)
inline constexpr const char* kAcc2Has0 = "acc2_has0";
inline constexpr const char* kF1Has0 = "f1_has0";
inline constexpr const char* kAcc2Non0 = "acc2_non0";
inline constexpr const char* kF1Non0 = "f1_non0";
inline constexpr const char* kAcc7 = "acc7";
inline constexpr const char* kAcc5 = "acc5";
inline constexpr const char* kCorr = "corr";
// metrics.set "sims"
inline constexpr const char* kSimsAcc2 = "sims_acc2";
inline constexpr const char* kSimsAcc3 = "sims_acc3";
inline constexpr const char* kSimsAcc5 = "sims_acc5";
inline constexpr const char* kSimsF1 = "sims_f1";
inline constexpr const char* kSimsMAE = "sims_mae";
inline constexpr const char* kSimsCorr = "sims_corr";
inline constexpr const char* kLoss = "loss";    // the training loss on the split
inline constexpr const char* kCount = "count";  // samples
inline constexpr const char* kValPrefix = "val_";
}  // namespace metric

// Whether a smaller value of a metric (as results.json names it) is better: the losses
// and errors (loss, mse, mae, sims_mae); every other metric is better larger.
bool lower_is_better(const std::string& metric);

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

// Weighted F1 of integer labels (scikit-learn's average="weighted"): each label's F1 (0
// when it is never predicted or never true), weighted by its count among the true labels,
// over every label that occurs in either.
double weighted_f1(const std::vector<int64_t>& truth, const std::vector<int64_t>& predicted);

// The sentiment benchmarks' metrics on the first column, as MMSA's metricsTop computes
// them (docs/metrics.md): Acc-2 and weighted F1 of (x >= 0) over all rows (has0) and of
// (x > 0) over the rows whose truth is not 0 (non0); Acc-7 and Acc-5 after clipping both
// sides to [-3, 3] and [-2, 2] and rounding half to even; Pearson's corr.
nlohmann::json msa_metrics(const torch::Tensor& prediction, const torch::Tensor& target);
// CH-SIMS's (MMSA): both sides clipped to [-1, 1], then Acc-2/3/5 over the bins with edges
// (-1.01, 0, 1.01], (-1.01, -0.1, 0.1, 1.01] and (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]
// (right-closed), weighted F1 over the 2 bins, and MAE and corr of the clipped values.
nlohmann::json sims_metrics(const torch::Tensor& prediction, const torch::Tensor& target);

// The metrics of a task as JSON, with `set`'s beside the default ones.
nlohmann::json task_metrics(Task task, const torch::Tensor& prediction, const torch::Tensor& target,
                            MetricSet set = MetricSet::Default);

}  // namespace mmfusion
