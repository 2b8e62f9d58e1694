#pragma once
// What happens to a trained model's metric when its inputs degrade (docs/robustness.md):
// each modality, and all of them together, perturbed at levels 0, 1/L, ..., 1 (Gaussian
// noise of level x the feature's standard deviation; the modality missing in that
// fraction of rows; for a sequence, that fraction of each row's valid steps removed),
// several seeded draws per level, and MultiBench's two summaries of each curve. Like
// explain, it only evaluates the model.
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "mmfusion/config/config.hpp"
#include "mmfusion/data/dataset.hpp"
#include "mmfusion/data/scaling.hpp"

namespace mmfusion {

class StepRunner;

struct RobustnessOptions {
  int64_t levels = 10;   // L: levels 0, 1/L, ..., 1
  int64_t repeats = 5;   // draws per level (the interval is over them)
  uint64_t seed = 1;     // every draw: the same seed gives the same curves
  std::string metric;    // a name in the task's metrics; "" = its headline metric
  int64_t batch_size = 4096;
  // The model has learned missing encodings (train.modality_dropout): a dropped row is
  // marked missing (a vector row NaN, a sequence row of length 0) instead of the mean.
  bool missing_encodings = false;
};

// The curves of the runner's model on `data` (features in their own units; `scaling` as
// the model was trained; `modalities` the config's, naming the sequences). The features'
// standard deviation and mean are the model's own scaling statistics when it has them,
// else those of `data` (a sequence's over its valid steps). Returns robustness.json's
// object: {"metric", "higher_is_better", "levels", "repeats", "seed", "clean",
//   "curves": [{"modality": name or "all", "kind": "noise" | "drop" | "step_drop",
//               "levels": [...], "values": [...], "ci": [[lo, hi], ...]}],
//   "relative_robustness": {"<modality>/<kind>": area}, "effective_robustness": {... : null}}
// values: the mean over the repeats; ci: mean ± 1.96 standard errors; relative
// robustness: the area under the curve over [0, 1] (trapezoids). Effective robustness
// needs a baseline model's curves: attach_baseline.
nlohmann::json robustness_curves(StepRunner& runner, Task task, const Scaling& scaling,
                                 const Dataset& data, const RobustnessOptions& options,
                                 const torch::Device& device,
                                 const std::vector<ModalityConfig>& modalities,
                                 MetricSet set = MetricSet::Default);

// MultiBench's effective robustness of each curve against the same curve (modality,
// kind, levels) of another model's robustness.json: sum over the levels of
// f(l) - (b(l) + f(0) - b(0)), the curve's gain over the baseline's shape started from
// the same point. Curves the baseline lacks stay null; `name` is recorded as "baseline".
// Error when the metric differs.
void attach_baseline(nlohmann::json& result, const nlohmann::json& baseline, const std::string& name);

std::string robustness_table(const nlohmann::json& result);  // the console's
std::string robustness_csv(const nlohmann::json& result);    // modality,kind,level,value,ci_low,ci_high
std::string robustness_svg(const nlohmann::json& result);    // metric against level, a line per curve

}  // namespace mmfusion
