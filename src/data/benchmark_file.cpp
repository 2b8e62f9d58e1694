#include "mmfusion/data/benchmark_file.hpp"

#include <filesystem>
#include <map>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/io/pickle.hpp"

namespace mmfusion {

namespace {

using pickle::Value;
using pickle::ValuePtr;

// A key as data.keys spells it: "b'x'" matches a bytes key only, anything else a str key
// or a bytes key of the same text (how Python 2 and latin-1 pickles write keys).
ValuePtr lookup(const Value& dict, const std::string& key) {
  if (dict.kind != Value::Kind::Dict) return nullptr;
  const bool bytes_only = key.size() >= 3 && key.compare(0, 2, "b'") == 0 && key.back() == '\'';
  const std::string text = bytes_only ? key.substr(2, key.size() - 3) : key;
  for (const auto& [k, v] : dict.entries)
    if ((k->kind == Value::Kind::Bytes || (!bytes_only && k->kind == Value::Kind::Str)) &&
        k->text == text)
      return v;
  return nullptr;
}

std::string path_text(const KeyPath& path) {
  std::string out;
  for (const auto& k : path) out += "[" + k + "]";
  return out;
}

// The keys a dict has, for messages (at most 20).
std::string keys_of(const Value& dict) {
  std::string out;
  size_t shown = 0;
  for (const auto& [k, v] : dict.entries) {
    if (k->kind != Value::Kind::Str && k->kind != Value::Kind::Bytes) continue;
    if (++shown > 20) return out + ", ...";
    out += (out.empty() ? "" : ", ") + (k->kind == Value::Kind::Bytes ? "b'" + k->text + "'" : k->text);
  }
  return out.empty() ? "no string keys" : out;
}

// Follows `path` from `from`; nullptr when a key is absent and `required` is false.
ValuePtr follow(const ValuePtr& from, const KeyPath& path, const std::string& origin,
                const std::string& what, bool required) {
  ValuePtr at = from;
  std::string walked;
  for (const auto& key : path) {
    if (at->kind != Value::Kind::Dict)
      throw Error(origin + walked + ": a " + at->kind_name() + ", expected a dict holding \"" + key +
                  "\" (" + what + ")");
    ValuePtr next = lookup(*at, key);
    if (!next) {
      if (!required) return nullptr;
      throw Error(origin + walked + ": no key \"" + key + "\" (" + what + "; it has: " +
                  keys_of(*at) + ")");
    }
    walked += "[" + key + "]";
    at = next;
  }
  return at;
}

// A list of numbers as a 1-D tensor (MMSA keeps some lengths as lists): int64 when every
// item is an int or a bool, else float64; anything else in it is an error.
torch::Tensor list_tensor(const Value& list, const std::string& where) {
  const auto n = static_cast<int64_t>(list.items.size());
  bool integers = true;
  for (const auto& item : list.items) {
    if (item->kind == Value::Kind::Float)
      integers = false;
    else if (item->kind != Value::Kind::Int && item->kind != Value::Kind::Bool)
      throw Error(where + ": a list holding a " + item->kind_name() + ", expected numbers");
  }
  torch::Tensor out = torch::empty({n}, integers ? torch::kInt64 : torch::kFloat64);
  for (int64_t i = 0; i < n; ++i) {
    const Value& item = *list.items[i];
    if (integers)
      out.data_ptr<int64_t>()[i] = item.kind == Value::Kind::Bool ? item.boolean : item.integer;
    else
      out.data_ptr<double>()[i] = item.kind == Value::Kind::Float ? item.number
                                  : item.kind == Value::Kind::Bool ? double(item.boolean)
                                                                   : double(item.integer);
  }
  return out;
}

// One split's entries as a data file's: the modalities, their lengths, and the target,
// each an array of numbers; other entries are walked by the parser but not kept.
Dataset split_dataset(const ValuePtr& split, const std::string& origin,
                      const ExperimentConfig& config, const LayoutNames& names,
                      const EntryPages* pages) {
  if (split->kind != Value::Kind::Dict)
    throw Error(origin + ": a " + split->kind_name() + ", expected a dict of arrays");
  std::vector<std::string> present;  // every key, for messages
  for (const auto& [k, v] : split->entries)
    if (k->kind == Value::Kind::Str || k->kind == Value::Kind::Bytes) present.push_back(k->text);
  const DataKeys& keys = config.data.keys;
  std::map<std::string, torch::Tensor> entries;
  // A modality's entry is required (a missing one is named with the split's keys), its
  // lengths and the target are checked by dataset_from_entries.
  auto take = [&](const KeyPath& path, const std::string& as, bool required) {
    const ValuePtr v = follow(split, path, origin, "entry \"" + as + "\"", required);
    if (!v) return;
    const std::string where = origin + path_text(path);
    if (v->kind == Value::Kind::List || v->kind == Value::Kind::Tuple) {
      entries[as] = list_tensor(*v, where + " (entry \"" + as + "\")");
      return;
    }
    if (v->kind != Value::Kind::Array)
      throw Error(where + ": a " + v->kind_name() + ", expected an array (entry \"" + as + "\")");
    if (!v->array.defined()) throw Error(where + ": " + v->unsupported + " (entry \"" + as + "\")");
    entries[as] = v->array;
  };
  for (const auto& m : config.data.modalities) {
    const auto own = keys.modalities.find(m.name);
    if (own != keys.modalities.end())
      take(own->second, m.name, true);
    else
      take({m.name}, m.name, false);
    if (!m.sequence) continue;
    const auto lengths = keys.lengths.find(m.name);
    if (lengths != keys.lengths.end())
      take(lengths->second, m.name + kLengthsSuffix, true);
    else
      take({m.name + kLengthsSuffix}, m.name + kLengthsSuffix, false);
  }
  take(names.target, kTargetEntry, false);
  auto target = entries.find(kTargetEntry);
  if (target != entries.end() && target->second.dim() == 3 && target->second.size(1) == 1 &&
      target->second.size(2) == 1)
    target->second = target->second.reshape({target->second.size(0), 1});  // MultiBench's [N, 1, 1]
  return dataset_from_entries(entries, present, origin, config.data.modalities,
                              read_rule(config, /*required=*/true), pages);
}

// What names the file's parts, for messages: the layout, or data.keys.
std::string named_by(const ExperimentConfig& config) {
  if (config.data.layout != Layout::None)
    return "data.layout \"" + std::string(to_string(config.data.layout)) + "\"";
  return config.data.keys.splits.empty() ? "a .pkl data.path" : "data.keys";
}

DataSplits parse_splits(const ValuePtr& root, const ExperimentConfig& config,
                        const EntryPages* pages);

// The layout of a pickle that names none (data.layout "none", no data.keys splits): its
// splits train, valid and test, and the target key in its training split tells which
// framework wrote it (benchmark_file.hpp's table). Else an error naming what it has.
Layout detect_layout(const Value& root, const std::string& path) {
  const std::string how =
      " (set data.layout to mmsa, multibench or lmf, or name its parts in data.keys; "
      "docs/benchmarks.md)";
  if (root.kind != Value::Kind::Dict)
    throw Error(path + ": the pickle holds a " + root.kind_name() +
                ", expected a dict of splits [train], [valid], [test]" + how);
  for (const char* s : {"train", "valid", "test"})
    if (!lookup(root, s))
      throw Error(path + ": no split \"" + s + "\", so no layout is known for it (it has: " +
                  keys_of(root) + ")" + how);
  const ValuePtr train = lookup(root, "train");
  const std::pair<const char*, Layout> targets[] = {
      {"regression_labels", Layout::MMSA}, {"labels", Layout::MultiBench}, {"label", Layout::LMF}};
  for (const auto& [key, layout] : targets)
    if (lookup(*train, key)) return layout;
  throw Error(path + "[train]: no target (\"regression_labels\" of MMSA, \"labels\" of "
              "MultiBench or \"label\" of LMF's files), so no layout is known for it (it has: " +
              (train->kind == Value::Kind::Dict ? keys_of(*train) : "a " + train->kind_name()) +
              ")" + how);
}

}  // namespace

LayoutNames layout_names(const DataConfig& data) {
  LayoutNames names;
  switch (data.layout) {
    case Layout::MMSA: names = {{{"train"}, {"valid"}, {"test"}}, {"regression_labels"}}; break;
    case Layout::MultiBench: names = {{{"train"}, {"valid"}, {"test"}}, {"labels"}}; break;
    case Layout::LMF: names = {{{"train"}, {"valid"}, {"test"}}, {"label"}}; break;
    case Layout::None: names = {{}, {kTargetEntry}}; break;
  }
  if (!data.keys.splits.empty()) names.splits = data.keys.splits;
  if (!data.keys.target.empty()) names.target = data.keys.target;
  if (names.splits.size() != 3) throw std::logic_error("layout_names: no splits");
  return names;
}

DataSplits read_benchmark_file(const ExperimentConfig& config) {
  const std::string& path = config.data.path;
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(path + ": no such data file (" + named_by(config) +
                " reads one pickle; docs/benchmarks.md says where to get the field's files)");
  // Mapped with its pages at once (the fastest way in), each chunk of the arrays kept
  // given back once it is copied (data_file.hpp's EntryPages), while the data kept grow
  // a chunk at a time: the process holds about the file's size, not the file and the data.
  const MappedFile file(path);
  const EntryPages pages{
      [&file](const torch::Tensor& t) { file.prefetch(t.data_ptr(), t.nbytes()); },
      [&file](const torch::Tensor& t) { file.release(t.data_ptr(), t.nbytes()); }};
  return parse_benchmark_file(file.data(), file.size(), config, &pages);
}

DataSplits parse_benchmark_file(const char* data, size_t size, const ExperimentConfig& config,
                                const EntryPages* pages) {
  const std::string& path = config.data.path;
  // Large arrays are read where they lie: only what the modalities take is copied.
  const ValuePtr root = pickle::parse_views(data, size, path);
  EntryPages in_place;  // the arrays are the caller's bytes: copied, never kept
  if (!pages) pages = &in_place;
  if (config.data.layout == Layout::None && config.data.keys.splits.empty()) {
    ExperimentConfig found = config;
    found.data.layout = detect_layout(*root, path);
    return parse_splits(root, found, pages);
  }
  return parse_splits(root, config, pages);
}

namespace {
DataSplits parse_splits(const ValuePtr& root, const ExperimentConfig& config,
                        const EntryPages* pages) {
  const std::string& path = config.data.path;
  const LayoutNames names = layout_names(config.data);
  if (root->kind != Value::Kind::Dict)
    throw Error(path + ": the pickle holds a " + root->kind_name() +
                ", expected a dict of splits (" + path_text(names.splits[0]) + ", " +
                path_text(names.splits[1]) + ", " + path_text(names.splits[2]) + ")");
  std::vector<Dataset> out;
  for (const auto& s : names.splits) {
    const ValuePtr split = follow(root, s, path, "a split, by " + named_by(config), true);
    out.push_back(split_dataset(split, path + path_text(s), config, names, pages));
  }
  return {std::move(out[0]), std::move(out[1]), std::move(out[2])};
}
}  // namespace

}  // namespace mmfusion
