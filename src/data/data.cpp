#include "mmfusion/data/data.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/data/benchmark_file.hpp"

namespace mmfusion {

int64_t resolve_num_classes(ExperimentConfig& config, const DataSplits& data) {
  if (config.task != Task::Classification) return 0;
  const bool inferred = config.num_classes == 0;
  if (inferred) {
    const int64_t largest = data.train.target.max().item<int64_t>();
    if (largest < 1)
      throw Error(data.train.origin + ": the training labels are all " + std::to_string(largest) +
                  "; classification needs at least 2 classes");
    config.num_classes = largest + 1;
  }
  for (const Dataset* d : {&data.train, &data.val, &data.test}) {
    try {
      check_labels(d->target, config.num_classes, d->origin);
    } catch (const Error& e) {
      if (!inferred) throw;
      throw Error(std::string(e.what()) + " (num_classes " + std::to_string(config.num_classes) +
                  " is the training split's largest label + 1; set num_classes to allow more)");
    }
  }
  return config.num_classes;
}

namespace {
// Rows of `all` for one split, when val/test are fractions of one file: a permutation
// seeded from the config's seed, val first, then test, the rest for training.
Dataset fraction_split(const ExperimentConfig& config, const Dataset& all, Split split) {
  const DataConfig& d = config.data;
  const int64_t n = all.size();
  const int64_t n_val =
      d.val_path.empty() ? static_cast<int64_t>(std::llround(n * d.val_fraction)) : 0;
  const int64_t n_test =
      d.test_path.empty() ? static_cast<int64_t>(std::llround(n * d.test_fraction)) : 0;
  if ((d.val_path.empty() && n_val < 1) || (d.test_path.empty() && n_test < 1) ||
      n - n_val - n_test < 1)
    throw Error(d.path + ": " + std::to_string(n) +
                " rows are too few to split into train/val/test by the configured fractions");
  at::Generator gen = at::detail::createCPUGenerator(stream_seed(config.seed, streams::kFileSplit));
  const auto perm = torch::randperm(n, gen, torch::kInt64);
  Dataset out;
  switch (split) {
    case Split::Val: out = all.rows(perm.slice(0, 0, n_val)); break;
    case Split::Test: out = all.rows(perm.slice(0, n_val, n_val + n_test)); break;
    default: out = all.rows(perm.slice(0, n_val + n_test, n));
  }
  out.origin = all.origin + " (" + split_name(split) + " split)";
  return out;
}

Dataset file_split(const ExperimentConfig& config, Split split, const Dataset* all) {
  const DataConfig& d = config.data;
  if (reads_pickle(d)) {  // one pickle holds the three splits
    DataSplits s = read_benchmark_file(config);
    return split == Split::Train ? std::move(s.train)
           : split == Split::Val ? std::move(s.val)
                                 : std::move(s.test);
  }
  const std::string& own = split == Split::Val    ? d.val_path
                           : split == Split::Test ? d.test_path
                                                  : "";
  if (!own.empty()) return read_data_file(own, d.modalities, read_rule(config, true));
  if (all) return fraction_split(config, *all, split);
  return fraction_split(config, read_data_file(d.path, d.modalities, read_rule(config, true)),
                        split);
}
}  // namespace

namespace {
// What a streaming config shows as its training split: the stream's first rows.
Dataset stream_sample(const ExperimentConfig& config) {
  return TrainingStream(config).rows(0, 0, std::min(config.data.train_size, kStreamSampleRows));
}

Dataset synthetic_split(const ExperimentConfig& config, Split split,
                        const torch::Tensor& thresholds) {
  Dataset d = generate_synthetic(config.data, config.seed, split);
  if (thresholds.defined())
    d.target = torch::bucketize(d.target.squeeze(1), thresholds).to(torch::kInt64);
  return d;
}
}  // namespace

Dataset load_split(const ExperimentConfig& config, Split split) {
  if (config.data.source == DataSource::Synthetic && config.data.synthetic.stream &&
      split == Split::Train)
    return stream_sample(config);
  if (config.data.source == DataSource::Synthetic)
    return synthetic_split(
        config, split,
        config.task == Task::Classification ? class_thresholds(config) : torch::Tensor());
  return file_split(config, split, nullptr);
}

DataSplits load_splits(const ExperimentConfig& config) {
  if (config.data.source == DataSource::Synthetic) {
    const auto thresholds =
        config.task == Task::Classification ? class_thresholds(config) : torch::Tensor();
    Dataset train = config.data.synthetic.stream
                        ? stream_sample(config)
                        : synthetic_split(config, Split::Train, thresholds);
    return {std::move(train), synthetic_split(config, Split::Val, thresholds),
            synthetic_split(config, Split::Test, thresholds)};
  }
  if (reads_pickle(config.data)) return read_benchmark_file(config);
  const Dataset all =
      read_data_file(config.data.path, config.data.modalities, read_rule(config, true));
  return {file_split(config, Split::Train, &all), file_split(config, Split::Val, &all),
          file_split(config, Split::Test, &all)};
}

}  // namespace mmfusion
