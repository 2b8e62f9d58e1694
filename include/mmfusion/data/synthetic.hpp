#pragma once
// The synthetic generators with known structure (docs/data.md): fixed splits, training
// streams, the truth about their target, and the classes cut from it.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "mmfusion/config/config.hpp"
#include "mmfusion/data/dataset.hpp"

namespace mmfusion {

// Synthetic split, generated on the CPU by a generator seeded from (seed, split) alone:
// the same config gives bit-identical data whatever the batch size, device or the sizes
// of the other splits. data.synthetic.generator picks the generator: 2 keys each row's
// randomness by its index (the same data on any number of threads), 1 is the first one.
Dataset generate_synthetic(const DataConfig& data, uint64_t seed, Split split);

// Streaming training data (data.synthetic.stream, generator 2): the rows of each epoch
// made on demand from (seed, epoch, row) alone, data.train_size of them per epoch, so that
// no training set is ever held. Validation and test stay fixed splits.
class TrainingStream {
 public:
  explicit TrainingStream(const ExperimentConfig& config);
  ~TrainingStream();
  int64_t rows_per_epoch() const;
  // Rows [r0, r1) of epoch `epoch` (from 0), on the CPU; class labels for classification.
  Dataset rows(int64_t epoch, int64_t r0, int64_t r1) const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// What the synthetic generator knows about its target: a sum of weighted pure
// interaction terms over modality subsets (data.synthetic.terms, or the terms the
// unimodal/bimodal/trimodal weights stand for) plus independent noise, seen through
// noisy features. The split is that of E[target | features], what an ideal model
// predicts: a term's part of it is the product over its modalities of what each
// modality's features recover of its factor, so its variance is w_S^2 times the
// recovered fractions (1 without feature noise; closed form, Gaussian latents).
struct SyntheticTruth {
  struct Subset {
    std::vector<std::string> modalities;  // config order
    double share = 0;                     // of Var E[target | features]
  };
  std::vector<Subset> subsets;  // every subset with a term
  double signal_variance = 0;   // sum of w_S^2: Var of the target without its noise
  double noise_variance = 0;    // target_noise^2
  double best_r2 = 0;           // Var E[target | features] / Var target: the best test R^2
  // Whether the shares are the pure Sobol shares of E[target | modalities]: only when
  // the modalities are independent (no shared latents). Else why not.
  bool exact = false;
  std::string why_not;
  // R^2 of E[target | X_S], the best test R^2 of a model of the modalities in S, for every
  // non-empty subset S of data.modalities (subsets in mask order: bit m = modality m), when
  // it has a closed form: independent modalities (the sum of the terms within S), or a
  // linear target at any dependence (Gaussian conditioning). Else r2_why_not says why.
  struct SubsetR2 {
    std::vector<std::string> modalities;  // config order
    double r2 = 0;
  };
  std::vector<SubsetR2> r2;
  bool r2_exact = false;
  std::string r2_why_not;
};
SyntheticTruth synthetic_truth(const DataConfig& data, uint64_t seed);
// {"exact", "why_not", "signal_variance", "noise_variance", "noise_share_of_target",
//  "best_r2", "subsets": [{"name": "a:b", "modalities": [...], "share": x}],
//  "r2": [{"name", "modalities", "r2"}] or null, "r2_why_not"}
nlohmann::json to_json(const SyntheticTruth& truth);

// Classification on synthetic data: the continuous target cut into num_classes equally
// likely classes, at quantiles estimated on a fixed calibration draw of the same task
// (independent of the split sizes). Returns the num_classes - 1 thresholds.
torch::Tensor class_thresholds(const ExperimentConfig& config);

}  // namespace mmfusion
