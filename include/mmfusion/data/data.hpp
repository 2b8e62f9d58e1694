#pragma once
// A config's data: its three splits, synthetic or read from files, and the classes of a
// classification task. Includes what the splits are made with (dataset.hpp,
// synthetic.hpp, data_file.hpp).
#include <cstdint>

#include "mmfusion/config/config.hpp"
#include "mmfusion/data/data_file.hpp"
#include "mmfusion/data/dataset.hpp"
#include "mmfusion/data/synthetic.hpp"

namespace mmfusion {

// The three splits of a config (synthetic, or read from files), on the CPU.
DataSplits load_splits(const ExperimentConfig& config);
// One split only (eval/predict need no training set in memory).
Dataset load_split(const ExperimentConfig& config, Split split);

// What load_splits gives as a streaming config's training split: its first rows of epoch
// 1, at most this many (for scaling statistics and shapes, not for training).
inline constexpr int64_t kStreamSampleRows = 8192;

// Classification: config.num_classes when the config gives it, else the training split's
// largest label + 1, written into the config; every split's labels are checked against
// it. Returns it (0 for regression).
int64_t resolve_num_classes(ExperimentConfig& config, const DataSplits& data);

}  // namespace mmfusion
