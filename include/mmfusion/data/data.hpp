#pragma once
// Datasets: the synthetic generator with known structure (docs/data.md) and data files
// in the format Python's torch.save writes (a dict of float tensors).
#include <string>
#include <vector>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "mmfusion/config/config.hpp"

namespace mmfusion {

enum class Split { Train, Val, Test };
const char* split_name(Split split);
Split parse_split(const std::string& name);  // "train" | "val" | "test"

struct Dataset {
  std::string origin;                   // where the rows came from, for messages: a file, a split
  std::vector<std::string> names;       // modality order, as in the config
  std::vector<torch::Tensor> features;  // one [N, dim] float32 tensor per modality
  // Regression: [N, K] float32. Classification: int64 class labels [N].
  // Undefined when a file has none.
  torch::Tensor target;

  // The target's three parts before weighting (synthetic data only, [N] each): kept so
  // that the documented structure can be checked.
  torch::Tensor unimodal, bimodal, trimodal;

  int64_t size() const { return features.empty() ? 0 : features.front().size(0); }
  // Columns of a regression target (1 for class labels, 0 when there is none).
  int64_t target_dim() const {
    return !target.defined() ? 0 : target.dim() == 2 ? target.size(1) : 1;
  }
  Dataset to(const torch::Device& device) const;
  Dataset rows(const torch::Tensor& index) const;  // index: int64 [n] on the same device
};

struct DataSplits {
  Dataset train, val, test;
};

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
// What load_splits gives as a streaming config's training split: its first rows of epoch
// 1, at most this many (for scaling statistics and shapes, not for training).
inline constexpr int64_t kStreamSampleRows = 8192;

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
};
SyntheticTruth synthetic_truth(const DataConfig& data, uint64_t seed);
// {"exact", "why_not", "signal_variance", "noise_variance", "noise_share_of_target",
//  "best_r2", "subsets": [{"name": "a:b", "modalities": [...], "share": x}]}
nlohmann::json to_json(const SyntheticTruth& truth);

// Classification on synthetic data: the continuous target cut into num_classes equally
// likely classes, at quantiles estimated on a fixed calibration draw of the same task
// (independent of the split sizes). Returns the num_classes - 1 thresholds.
torch::Tensor class_thresholds(const ExperimentConfig& config);

// The three splits of a config (synthetic, or read from files), on the CPU.
DataSplits load_splits(const ExperimentConfig& config);
// One split only (eval/predict need no training set in memory).
Dataset load_split(const ExperimentConfig& config, Split split);

// What a data file's "target" entry must be.
struct TargetRule {
  bool required = true;     // a missing "target" is an error (training, evaluation)
  bool labels = false;      // integer class labels (classification), else float values
  int64_t num_classes = 0;  // labels lie in [0, num_classes); 0: not known yet, [0, kMaxClasses)
};
// The rule of a config's task.
TargetRule target_rule(const ExperimentConfig& config, bool required);

// Reads a data file and checks it against the modalities: names, dims, row counts,
// float dtype, finite values, and the target by `target`. The format follows the name:
// *.npz is NumPy's (npz.hpp), anything else what torch.save writes for a dict of tensors.
// Entries that are neither a modality nor "target" are ignored.
Dataset read_data_file(const std::string& path, const std::vector<ModalityConfig>& modalities,
                       const TargetRule& target);
// The same from the file's bytes; `path` names it in errors (and picks the format).
// Every tensor's view is checked to lie inside its storage (file_safety.hpp), and every
// shape, before any value is read.
Dataset parse_data_file(const std::vector<char>& bytes, const std::string& path,
                        const std::vector<ModalityConfig>& modalities, const TargetRule& target);
// Error naming `origin` and the first row whose label is outside [0, num_classes).
void check_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& origin);
// Classification: config.num_classes when the config gives it, else the training split's
// largest label + 1, written into the config; every split's labels are checked against
// it. Returns it (0 for regression).
int64_t resolve_num_classes(ExperimentConfig& config, const DataSplits& data);
// Writes a data file, atomically: *.npz as np.savez does, anything else as torch.save
// does (a [N] target when it has one column or holds labels).
void write_data_file(const Dataset& data, const std::string& path);

}  // namespace mmfusion
