#pragma once
// Feature (and regression target) standardisation, fitted on the training split only:
//   x' = (x - mean) / scale   per feature, scale = the training split's standard deviation
//                             (population, ddof 0), or 1 for a feature that is constant there;
//   y' = (y - target_mean) / target_scale   per target column, the same way.
// A sequence modality is scaled per feature of a step, its statistics taken over the valid
// steps of every training row; its padding stays zero.
// Models train on x' (and y'); predictions go back to y's units. The statistics belong to
// the trained model: checkpoints hold them (checkpoint.hpp) and eval, predict and every
// later command apply them to whatever data they are given.
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "mmfusion/config/config.hpp"
#include "mmfusion/data/data.hpp"

namespace mmfusion {

class Scaling {
 public:
  Scaling() = default;  // the identity: nothing scaled
  // Fits what data.standardize and data.standardize_target ask for on `train` (CPU).
  static Scaling fit(const DataConfig& data, const Dataset& train);

  // What a config asks to be scaled: features (data.standardize) and the target
  // (data.standardize_target, regression only). Saving and loading check against it.
  struct Plan {
    bool features = false, target = false;
  };
  static Plan plan(const ExperimentConfig& config);
  bool follows(const Plan& plan) const {
    return scales_features() == plan.features && scales_target() == plan.target;
  }

  bool scales_features() const { return !mean_.empty(); }
  bool scales_target() const { return target_mean_.defined(); }

  // The dataset with standardised features; its target is left as it is.
  Dataset features(const Dataset& data) const;
  // A target in the units the model trains on, and a model output back in the target's
  // own units (both the identity when the target is not scaled, or holds class labels).
  torch::Tensor target(const torch::Tensor& y) const;
  torch::Tensor original_units(const torch::Tensor& output) const;

  // Every statistic under its checkpoint name: mean_<modality>, scale_<modality>
  // ([dim] float32 each), target_mean, target_scale ([K] float32). The tensors share
  // memory with this object (a broadcast into them changes it).
  std::vector<std::pair<std::string, torch::Tensor>> named_tensors() const;
  // Rebuilds it from named_tensors() as a config says it was fitted; `where` names the
  // source in errors (missing, misshapen, non-finite or non-positive statistics).
  static Scaling from_named(const std::vector<std::pair<std::string, torch::Tensor>>& named,
                            const ExperimentConfig& config, const std::string& where);
  // For `inspect`: what is scaled.
  nlohmann::json summary() const;

 private:
  std::vector<std::string> names_;
  std::vector<int64_t> step_dims_;  // per modality: D for a sequence, 0 for a vector
  std::vector<torch::Tensor> mean_, scale_;
  torch::Tensor target_mean_, target_scale_;
};

}  // namespace mmfusion
