#pragma once
// The field's benchmark pickles (docs/benchmarks.md), read through the restricted pickle
// reader (io/pickle.hpp): one file holds the train, valid and test splits, each a dict of
// arrays named as the framework names them.
//
//   layout      splits                          target               lengths
//   mmsa        train, valid, test              regression_labels    <name>_lengths
//   multibench  train, valid, test              labels ([N, 1, 1])   (none: every step)
//   lmf         b'train', b'valid', b'test'     b'label'             (none)
//
// Each split's modalities, lengths and target are then checked as a data file's entries
// are (data_file.hpp), with the split named in every message ("FILE[train]: ...").
#include <string>
#include <vector>

#include "mmfusion/config/config.hpp"
#include "mmfusion/data/data_file.hpp"
#include "mmfusion/data/dataset.hpp"

namespace mmfusion {

// The three splits of config.data.path in config.data.layout.
DataSplits read_benchmark_file(const ExperimentConfig& config);

// The entry names a layout gives a split and its target.
struct LayoutNames {
  std::vector<std::string> splits;  // train, validation, test
  std::string target;
};
LayoutNames layout_names(Layout layout);

}  // namespace mmfusion
