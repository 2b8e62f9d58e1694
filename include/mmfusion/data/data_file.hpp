#pragma once
// Data files: what torch.save writes for a dict of tensors (.pt) and NumPy's .npz, read
// as files from others (every length bounded, every view checked) and written atomically.
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/config/config.hpp"
#include "mmfusion/data/dataset.hpp"

namespace mmfusion {

// How a data file's entries are read: what its "target" entry must be, and what a NaN or
// Inf feature value does.
struct ReadRule {
  bool required = true;     // a missing "target" is an error (training, evaluation)
  bool labels = false;      // integer class labels (classification), else float values
  int64_t num_classes = 0;  // labels lie in [0, num_classes); 0: not known yet, [0, kMaxClasses)
  NonFinite nonfinite = NonFinite::Error;  // Zero: put 0 in place, counted in Dataset::nonfinite
  // A modality the file lacks: an error, the same naming train.modality_dropout, or every
  // row missing (a vector's rows NaN, a sequence's of length 0), as a model with missing
  // encodings reads them.
  enum class Absent { Refuse, RefuseNamingDropout, Missing };
  Absent absent = Absent::Refuse;
};
// The rule of a config's task. `evaluating` (eval, predict, explain, robustness): a file
// may lack modalities when the model has missing encodings (train.modality_dropout).
ReadRule read_rule(const ExperimentConfig& config, bool required, bool evaluating = false);

// Reads a data file and checks it against the modalities: names, dims, row counts,
// float dtype, finite values (or replaced, by the rule), and the target by the rule. A sequence modality's entry is
// [N, T, dim] (T <= kMaxSequenceSteps) with an optional integer <name>_lengths [N] in
// [0, T] (default T), held as sequence.hpp's rows. The format follows the name:
// *.npz is NumPy's (npz.hpp), anything else what torch.save writes for a dict of tensors.
// Entries that are neither a modality nor "target" are ignored.
Dataset read_data_file(const std::string& path, const std::vector<ModalityConfig>& modalities,
                       const ReadRule& target);
// The same from the file's bytes; `path` names it in errors (and picks the format).
// Every tensor's view is checked to lie inside its storage (file_safety.hpp), and every
// shape, before any value is read.
Dataset parse_data_file(const std::vector<char>& bytes, const std::string& path,
                        const std::vector<ModalityConfig>& modalities, const ReadRule& target);
// Error naming `origin` and the first row whose label is outside [0, num_classes).
void check_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& origin);

// Entries whose values are a file's bytes read in place (a mapped pickle,
// benchmark_file.hpp): each modality is copied a chunk of rows at a time, the chunk's
// pages fetched before it is read and given back after, so that memory holds the data
// kept and one chunk. Nothing returned refers to the entries' memory.
struct EntryPages {
  std::function<void(const torch::Tensor&)> fetch, release;
};

// A data set from a file's entries, checked as read_data_file checks them (`names`: every
// entry the file has, for messages; `path` names the file, or the file and its split).
Dataset dataset_from_entries(const std::map<std::string, torch::Tensor>& entries,
                             const std::vector<std::string>& names, const std::string& path,
                             const std::vector<ModalityConfig>& modalities, const ReadRule& rule,
                             const EntryPages* pages = nullptr);

// Writes a data file, atomically: *.npz as np.savez does, anything else as torch.save
// does (a [N] target when it has one column or holds labels). A modality that
// `modalities` names as a sequence is written as [N, T, D] in its padding, with its
// <name>_lengths entry (int64 [N]); every other entry as it is held.
void write_data_file(const Dataset& data, const std::string& path,
                     const std::vector<ModalityConfig>& modalities = {});

}  // namespace mmfusion
