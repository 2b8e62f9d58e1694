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
// A .pkl file with data.layout "none" and no data.keys splits is read as the layout its
// keys show: splits train, valid and test, and the training split's target key above.
// data.keys names them where a file keeps them elsewhere (IEMOCAP's [happy][train], a
// modality under another name). Each split's modalities, lengths and target are then
// checked as a data file's entries are (data_file.hpp), with the split's path named in
// every message ("FILE[train]: ...").
#include <string>
#include <vector>

#include "mmfusion/config/config.hpp"
#include "mmfusion/data/data_file.hpp"
#include "mmfusion/data/dataset.hpp"

namespace mmfusion {

// The three splits of config.data.path, found by config.data.layout and config.data.keys.
DataSplits read_benchmark_file(const ExperimentConfig& config);
// The same from a pickle's bytes (config.data.path names them in errors); `pages` as
// dataset_from_entries takes them (nothing returned refers to `data`).
DataSplits parse_benchmark_file(const char* data, size_t size, const ExperimentConfig& config,
                                const EntryPages* pages = nullptr);

// The key paths of a file's splits (from its root) and of a split's target, by the layout,
// with data.keys' own paths in their place.
struct LayoutNames {
  std::vector<KeyPath> splits;  // train, validation, test
  KeyPath target;
};
LayoutNames layout_names(const DataConfig& data);

}  // namespace mmfusion
