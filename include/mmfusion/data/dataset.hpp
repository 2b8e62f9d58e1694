#pragma once
// A data set in memory: one float32 tensor per modality and the target, the three splits,
// and the random streams that every data set made from a seed draws from.
#include <cstdint>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/base/random.hpp"

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
  // Files read under data.nonfinite "zero": per modality, the NaN or Inf values each row
  // had before they were put to 0 ([N] int64, CPU; undefined for a modality with none).
  // Empty when nothing was replaced.
  std::vector<torch::Tensor> nonfinite;

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

// The random streams of one seed. Every number is part of what a seed means: changing one
// changes every data set made from that seed.
namespace streams {
inline constexpr uint64_t kStructure = 0;   // the task: mixing matrices, effect directions
inline constexpr uint64_t kFirstSplit = 1;  // + Split: the train, val and test rows
inline constexpr uint64_t kCalibration =
    50;                                      // rows whose target quantiles are the class thresholds
inline constexpr uint64_t kFileSplit = 100;  // the permutation that splits a data file by fractions
inline constexpr uint64_t kFirstEpoch = 1000;  // + epoch: the rows of a training stream's epoch
}  // namespace streams

// A LibTorch generator's seed for stream `stream` of `seed`: output stream + 1 of
// splitmix64 (generator 1's rows, the synthetic task's structure, file splits).
inline uint64_t stream_seed(uint64_t seed, uint64_t stream) { return splitmix64(seed, stream + 1); }

}  // namespace mmfusion
