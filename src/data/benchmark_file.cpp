#include "mmfusion/data/benchmark_file.hpp"

#include <filesystem>
#include <map>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/io/pickle.hpp"

namespace mmfusion {

LayoutNames layout_names(Layout layout) {
  switch (layout) {
    case Layout::MMSA: return {{"train", "valid", "test"}, "regression_labels"};
    case Layout::MultiBench: return {{"train", "valid", "test"}, "labels"};
    case Layout::LMF: return {{"train", "valid", "test"}, "label"};
    case Layout::None: break;
  }
  throw std::logic_error("layout_names: no layout");
}

namespace {

// One split's entries as a data file's: the modalities, their lengths, and the target,
// each an array of numbers; other entries are walked by the parser but not kept.
Dataset split_dataset(const pickle::Value& split, const std::string& origin,
                      const ExperimentConfig& config, const LayoutNames& names) {
  if (split.kind != pickle::Value::Kind::Dict)
    throw Error(origin + ": a " + split.kind_name() + ", expected a dict of arrays");
  std::vector<std::string> present;  // every key, for messages
  for (const auto& [k, v] : split.entries)
    if (k->kind == pickle::Value::Kind::Str || k->kind == pickle::Value::Kind::Bytes)
      present.push_back(k->text);
  std::map<std::string, torch::Tensor> entries;
  auto take = [&](const std::string& key, const std::string& as) {
    const pickle::ValuePtr v = split.get(key);
    if (!v) return;
    if (v->kind != pickle::Value::Kind::Array)
      throw Error(origin + ": entry \"" + key + "\" is a " + v->kind_name() + ", expected an array");
    if (!v->array.defined())
      throw Error(origin + ": entry \"" + key + "\" is " + v->unsupported);
    entries[as] = v->array;
  };
  for (const auto& m : config.data.modalities) {
    take(m.name, m.name);
    if (m.sequence) take(m.name + kLengthsSuffix, m.name + kLengthsSuffix);
  }
  take(names.target, kTargetEntry);
  auto target = entries.find(kTargetEntry);
  if (target != entries.end() && target->second.dim() == 3 && target->second.size(1) == 1 &&
      target->second.size(2) == 1)
    target->second = target->second.reshape({target->second.size(0), 1});  // MultiBench's [N, 1, 1]
  return dataset_from_entries(entries, present, origin, config.data.modalities,
                              target_rule(config, /*required=*/true));
}

}  // namespace

DataSplits read_benchmark_file(const ExperimentConfig& config) {
  const std::string& path = config.data.path;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(path + ": no such data file (data.layout \"" + to_string(config.data.layout) +
                "\" reads the framework's pickle; docs/benchmarks.md says where to get it)");
  pickle::ValuePtr root;
  {
    const MappedFile file(path);  // unmapped once parsed: the arrays are copies
    root = pickle::parse(file.data(), file.size(), path);
  }
  const LayoutNames names = layout_names(config.data.layout);
  if (root->kind != pickle::Value::Kind::Dict)
    throw Error(path + ": the pickle holds a " + root->kind_name() +
                ", expected a dict of splits (" + names.splits[0] + ", " + names.splits[1] + ", " +
                names.splits[2] + ")");
  std::vector<Dataset> out;
  for (const auto& s : names.splits) {
    const pickle::ValuePtr split = root->get(s);
    if (!split) throw Error(path + ": no split \"" + s + "\" (data.layout \"" +
                            to_string(config.data.layout) + "\")");
    out.push_back(split_dataset(*split, path + "[" + s + "]", config, names));
  }
  return {std::move(out[0]), std::move(out[1]), std::move(out[2])};
}

}  // namespace mmfusion
