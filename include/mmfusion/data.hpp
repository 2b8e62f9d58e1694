#pragma once
// Datasets: the synthetic generator with known structure (docs/data.md) and data files
// in the format Python's torch.save writes (a dict of float tensors).
#include <string>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/config.hpp"

namespace mmfusion {

enum class Split { Train, Val, Test };
const char* split_name(Split split);
Split parse_split(const std::string& name);  // "train" | "val" | "test"

struct Dataset {
  std::vector<std::string> names;      // modality order, as in the config
  std::vector<torch::Tensor> features; // one [N, dim] float32 tensor per modality
  // Regression: [N, K] float32. Classification: int64 class labels [N].
  // Undefined when a file has none.
  torch::Tensor target;

  // The target's three parts before weighting (synthetic data only, [N] each): kept so
  // that the documented structure can be checked.
  torch::Tensor unimodal, bimodal, trimodal;

  int64_t size() const { return features.empty() ? 0 : features.front().size(0); }
  // Columns of a regression target (1 for class labels, 0 when there is none).
  int64_t target_dim() const { return !target.defined() ? 0 : target.dim() == 2 ? target.size(1) : 1; }
  Dataset to(const torch::Device& device) const;
  Dataset rows(const torch::Tensor& index) const;  // index: int64 [n] on the same device
};

struct DataSplits {
  Dataset train, val, test;
};

// Synthetic split, generated on the CPU by a generator seeded from (seed, split) alone:
// the same config gives bit-identical data whatever the batch size, device or the sizes
// of the other splits.
Dataset generate_synthetic(const DataConfig& data, uint64_t seed, Split split);

// Classification on synthetic data: the continuous target cut into num_classes equally
// likely classes, at quantiles estimated on a fixed calibration draw of the same task
// (independent of the split sizes). Returns the num_classes - 1 thresholds.
torch::Tensor class_thresholds(const ExperimentConfig& config);

// The three splits of a config (synthetic, or read from files), on the CPU.
DataSplits load_splits(const ExperimentConfig& config);
// One split only (eval/predict need no training set in memory).
Dataset load_split(const ExperimentConfig& config, Split split);

// Reads a data file and checks it against the modalities: names, dims, row counts,
// float dtype, finite values. A missing "target" is an error when require_target.
// num_classes > 0: "target" holds integer class labels in [0, num_classes).
Dataset read_data_file(const std::string& path, const std::vector<ModalityConfig>& modalities,
                       bool require_target, int64_t num_classes = 0);
// The same from the file's bytes; `path` names it in errors. Every tensor's view is
// checked to lie inside its storage (file_safety.hpp), and every shape, before any value
// is read.
Dataset parse_data_file(const std::vector<char>& bytes, const std::string& path,
                        const std::vector<ModalityConfig>& modalities, bool require_target,
                        int64_t num_classes = 0);
// Writes the file format (a [N] target when it has one column or holds labels), atomically.
void write_data_file(const Dataset& data, const std::string& path);

}  // namespace mmfusion
