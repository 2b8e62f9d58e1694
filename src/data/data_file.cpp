#include "mmfusion/data/data_file.hpp"

#include <atomic>
#include <functional>
#include <limits>

#include <filesystem>

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/data/sequence.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/base/parallel.hpp"
#include "mmfusion/io/file_safety.hpp"
#include "mmfusion/io/npz.hpp"

namespace mmfusion {
namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// A float tensor entry, converted to contiguous float32. Only its metadata is looked at:
// the caller checks its shape before require_finite reads the values.
torch::Tensor float_entry(const std::string& path, const std::string& key, const torch::Tensor& t) {
  if (!t.is_floating_point())
    throw Error(path + ": entry \"" + key + "\" has dtype " +
                std::string(c10::toString(t.scalar_type())) + ", expected a float tensor");
  return t;
}

// The target's values: never made up, so a NaN or Inf is always an error.
torch::Tensor require_finite(const std::string& path, const std::string& key, torch::Tensor t) {
  t = t.to(torch::kFloat32).contiguous();
  const auto bad = torch::logical_not(torch::isfinite(t));
  if (bad.any().item<bool>()) {
    const int64_t row =
        bad.dim() == 0 ? 0 : bad.reshape({t.size(0), -1}).any(1).nonzero()[0][0].item<int64_t>();
    throw Error(path + ": entry \"" + key + "\" has NaN or Inf values (first in row " +
                std::to_string(row) + ")");
  }
  return t;
}

// A modality's values (rows row0... of the entry), float32: a NaN or Inf is an error
// naming the first row, or, under data.nonfinite "zero", replaced by 0 and counted per row
// in `replaced` ([rows] int64, undefined when none). The input is never written to (it may
// be a file's bytes read in place).
// Whether every value of a contiguous float32 CPU tensor is finite: one pass over its bits
// (exponent all ones: Inf or NaN), on the configured threads.
bool all_finite(const torch::Tensor& t) {
  const auto* bits = reinterpret_cast<const uint32_t*>(t.data_ptr<float>());
  std::atomic<bool> finite{true};
  parallel_chunks(t.numel(), int64_t(1) << 16, at::get_num_threads(), [&](int64_t b, int64_t e) {
    uint32_t any = 0;
    for (int64_t i = b; i < e; ++i) any |= uint32_t((bits[i] & 0x7f800000u) == 0x7f800000u);
    if (any) finite = false;
  });
  return finite;
}

torch::Tensor finite_features(const std::string& path, const std::string& key,
                              const torch::Tensor& in, const ReadRule& rule,
                              torch::Tensor& replaced, int64_t row0 = 0) {
  torch::Tensor t = in.to(torch::kFloat32).contiguous();
  if (t.device().is_cpu() && all_finite(t)) return t;
  const auto bad = torch::logical_not(torch::isfinite(t));
  if (!bad.any().item<bool>()) return t;
  if (rule.nonfinite == NonFinite::Error) {
    const int64_t row = bad.reshape({t.size(0), -1}).any(1).nonzero()[0][0].item<int64_t>();
    throw Error(path + ": entry \"" + key + "\" has NaN or Inf values (first in row " +
                std::to_string(row0 + row) + "; data.nonfinite \"zero\" puts 0 in their place)");
  }
  replaced = bad.reshape({t.size(0), -1}).sum(1).to(torch::kInt64);
  if (t.data_ptr() == in.data_ptr()) t = t.clone();
  return t.masked_fill_(bad, 0.0);
}

// The same check on rows this reader owns (float32, contiguous, written in place).
void finite_in_place(const std::string& path, const std::string& key, torch::Tensor& rows,
                     const ReadRule& rule, torch::Tensor& replaced, int64_t row0) {
  if (!rows.device().is_cpu() || all_finite(rows)) return;
  const auto bad = torch::logical_not(torch::isfinite(rows));
  if (rule.nonfinite == NonFinite::Error) {
    const int64_t row = bad.any(1).nonzero()[0][0].item<int64_t>();
    throw Error(path + ": entry \"" + key + "\" has NaN or Inf values (first in row " +
                std::to_string(row0 + row) + "; data.nonfinite \"zero\" puts 0 in their place)");
  }
  replaced = bad.sum(1).to(torch::kInt64);
  rows.masked_fill_(bad, 0.0);
}

// Rows of a modality converted by `convert(rows, first row, counts, dest)`, which writes
// them into `dest` when it is defined and sets it otherwise: all at once, or, for values
// read in place (`pages`), a chunk of about kChunkBytes at a time into one tensor of
// `columns`, each chunk's pages fetched before and given back after, so that memory
// holds what is kept and one chunk. `replaced` gathers the chunks' counts.
constexpr int64_t kChunkBytes = int64_t(8) << 20;
using Convert = std::function<void(const torch::Tensor&, int64_t, torch::Tensor&, torch::Tensor&)>;
torch::Tensor by_chunks(const torch::Tensor& t, int64_t columns, const EntryPages* pages,
                        torch::Tensor& replaced, const Convert& convert) {
  if (!pages) {
    torch::Tensor all;
    convert(t, 0, replaced, all);
    return all;
  }
  const int64_t n = t.size(0);
  const int64_t row_bytes = std::max<int64_t>(1, (n > 0 ? t.numel() / n : 0) * int64_t(t.element_size()));
  const int64_t step = std::max<int64_t>(1, kChunkBytes / row_bytes);
  // The data kept: its pages mapped a chunk at a time, each in one call just before it is
  // written (base/files.hpp), as the copy would fault them in one by one.
  const size_t bytes = size_t(n) * size_t(columns) * sizeof(float);
  void* memory = bytes >= (size_t(1) << 20) ? reserved_pages(bytes) : nullptr;
  torch::Tensor out =
      memory ? torch::from_blob(memory, {n, columns},
                                [bytes](void* p) { free_populated(p, bytes); }, torch::kFloat32)
             : torch::empty({n, columns}, torch::kFloat32);
  std::vector<torch::Tensor> counts;
  bool any = false;
  for (int64_t a = 0; a < n; a += step) {
    const int64_t b = std::min(n, a + step);
    const torch::Tensor chunk = t.slice(0, a, b);
    if (pages->fetch) pages->fetch(chunk);
    torch::Tensor part, dest = out.slice(0, a, b);
    if (memory) populate_for_write(dest.data_ptr(), size_t(dest.nbytes()));
    convert(chunk, a, part, dest);
    if (pages->release) pages->release(chunk);
    any = any || part.defined();
    counts.push_back(part.defined() ? part : torch::zeros({b - a}, torch::kInt64));
  }
  if (any) replaced = torch::cat(counts);
  return out;
}

// A sequence entry [N, T, D] and its optional lengths entry, checked and held as rows in
// memory (sequence.hpp): back padding, max_len steps when the modality gives one.
torch::Tensor sequence_rows(const std::string& path, const ModalityConfig& m, torch::Tensor t,
                            const torch::Tensor* stored_lengths, const ReadRule& rule,
                            torch::Tensor& replaced, const EntryPages* pages) {
  if (t.dim() != 3 || t.size(2) != m.dim)
    throw Error(path + ": entry \"" + m.name + "\" has shape " + c10::str(t.sizes()) +
                ", expected [N, T, " + std::to_string(m.dim) + "] (a sequence)");
  const int64_t N = t.size(0), T = t.size(1);
  if (T > kMaxSequenceSteps)
    throw Error(path + ": entry \"" + m.name + "\" has " + std::to_string(T) +
                " steps, more than " + std::to_string(kMaxSequenceSteps));
  const std::string key = m.name + kLengthsSuffix;
  torch::Tensor lengths = torch::full({N}, T, torch::kInt64);
  if (stored_lengths) {
    torch::Tensor l = *stored_lengths;
    if (l.is_floating_point() || l.is_complex() || l.scalar_type() == torch::kBool)
      throw Error(path + ": entry \"" + key + "\" has dtype " +
                  std::string(c10::toString(l.scalar_type())) + ", expected integer lengths");
    if (l.dim() == 2 && l.size(1) == 1) l = l.squeeze(1);
    if (l.dim() != 1 || l.size(0) != N)
      throw Error(path + ": entry \"" + key + "\" has shape " + c10::str(l.sizes()) +
                  ", expected [" + std::to_string(N) + "] (one length per row of \"" + m.name +
                  "\")");
    l = l.to(torch::kInt64).contiguous();
    const auto bad = (l < 0) | (l > T);
    if (bad.any().item<bool>()) {
      const int64_t row = bad.nonzero()[0][0].item<int64_t>();
      throw Error(path + ": entry \"" + key + "\" holds length " +
                  std::to_string(l[row].item<int64_t>()) + " in row " + std::to_string(row) +
                  ", outside [0, " + std::to_string(T) + "] (the steps of \"" + m.name + "\")");
    }
    lengths = l;
  }
  const int64_t steps = m.max_len > 0 ? m.max_len : T;
  // Packed first (padding zeroed), then checked: a row's NaN or Inf past its length is
  // padding, dropped like any padding, and the check reads rows just written.
  return by_chunks(t, 1 + steps * m.dim, pages, replaced,
                   [&](const torch::Tensor& chunk, int64_t row0, torch::Tensor& part,
                       torch::Tensor& dest) {
                     const torch::Tensor l = lengths.slice(0, row0, row0 + chunk.size(0));
                     torch::Tensor x = chunk;
                     if (m.padding == Padding::Front)
                       x = sequence::front_to_back(x.to(torch::kFloat32).contiguous(), l);
                     torch::Tensor rows;
                     if (dest.defined() && m.max_len == 0) {
                       sequence::pack_into(dest, x, l);
                       rows = dest;
                     } else {
                       rows = sequence::pack(x, l);
                       if (m.max_len > 0) rows = sequence::with_steps(rows, m.dim, m.max_len);
                     }
                     finite_in_place(path, m.name, rows, rule, part, row0);
                     if (!dest.defined())
                       dest = rows;
                     else if (!rows.is_same(dest))
                       dest.copy_(rows);
                   });
}

}  // namespace

ReadRule read_rule(const ExperimentConfig& config, bool required, bool evaluating) {
  ReadRule rule;
  if (evaluating)
    rule.absent = config.train.modality_dropout > 0 ? ReadRule::Absent::Missing
                                                    : ReadRule::Absent::RefuseNamingDropout;
  rule.required = required;
  rule.labels = config.task == Task::Classification;
  rule.num_classes = rule.labels ? config.num_classes : 0;
  rule.nonfinite = config.data.nonfinite;
  return rule;
}

Dataset read_data_file(const std::string& path, const std::vector<ModalityConfig>& modalities,
                       const ReadRule& target) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(path +
                ": no such data file (write one with `mmfusion synth --config CONFIG --split train "
                "--output " +
                path + "`; data/README.md describes the format)");
  return parse_data_file(read_bytes(path), path, modalities, target);
}

namespace {

bool is_npz(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  return ext == ".npz" || ext == ".NPZ";
}

// The named tensors of a torch.save'd dict, each checked to lie inside its storage.
std::map<std::string, torch::Tensor> torch_entries(const std::vector<char>& bytes,
                                                   const std::string& path,
                                                   const std::set<std::string>& wanted,
                                                   std::vector<std::string>& names) {
  const std::string unreadable =
      "not a readable data file (expected what torch.save writes for a dict of tensors, or an .npz archive "
      "named *.npz; the file is truncated, corrupt or of another kind)";
  // Before the unpickler trusts a length.
  check_archive_pickles(bytes.data(), bytes.size(), path, unreadable);
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) { throw Error(path + ": " + unreadable); }
  if (!value.isGenericDict())
    throw Error(path + ": expected a dict of tensors, found " + value.tagKind());
  // Every tensor's view must lie inside its storage before anything reads a value.
  std::map<std::string, torch::Tensor> entries;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString()) throw Error(path + ": dict keys must be strings");
    const std::string& key = item.key().toStringRef();
    names.push_back(key);
    check_file_tensors(item.value(), path + ": entry \"" + key + "\"");
    if (!wanted.count(key)) continue;  // an entry the config does not use
    if (!item.value().isTensor()) throw Error(path + ": entry \"" + key + "\" is not a tensor");
    entries[key] = item.value().toTensor();
  }
  return entries;
}

std::map<std::string, torch::Tensor> npz_entries(const std::vector<char>& bytes,
                                                 const std::string& path,
                                                 const std::set<std::string>& wanted,
                                                 std::vector<std::string>& names) {
  std::map<std::string, torch::Tensor> entries;
  for (auto& [name, values] : parse_npz(bytes.data(), bytes.size(), path, &wanted, &names))
    entries[name] = values;
  return entries;
}

}  // namespace

// The target entry's name as messages quote it.
const std::string kTarget = std::string("\"") + kTargetEntry + "\"";

Dataset parse_data_file(const std::vector<char>& bytes, const std::string& path,
                        const std::vector<ModalityConfig>& modalities, const ReadRule& rule) {
  std::set<std::string> wanted{kTargetEntry};
  for (const auto& m : modalities) {
    wanted.insert(m.name);
    if (m.sequence) wanted.insert(m.name + kLengthsSuffix);
  }
  std::vector<std::string> names;  // every entry of the file, for messages
  const std::map<std::string, torch::Tensor> entries =
      is_npz(path) ? npz_entries(bytes, path, wanted, names)
                   : torch_entries(bytes, path, wanted, names);
  return dataset_from_entries(entries, names, path, modalities, rule);
}

Dataset dataset_from_entries(const std::map<std::string, torch::Tensor>& entries,
                             const std::vector<std::string>& names, const std::string& path,
                             const std::vector<ModalityConfig>& modalities, const ReadRule& rule,
                             const EntryPages* pages) {
  Dataset out;
  out.origin = path;
  int64_t rows = -1;
  std::string rows_from;
  auto check_rows = [&](const std::string& key, int64_t n) {
    if (rows < 0)
      rows = n, rows_from = key;
    else if (n != rows)
      throw Error(path + ": entry \"" + key + "\" has " + std::to_string(n) + " rows but \"" +
                  rows_from + "\" has " + std::to_string(rows));
  };
  // Entries that are neither a configured modality nor the target are left alone: one file
  // can serve configs that use some of its modalities.
  std::vector<size_t> absent;  // modalities the file lacks, read as missing
  for (const auto& m : modalities) {
    auto it = entries.find(m.name);
    if (it == entries.end() && rule.absent == ReadRule::Absent::Missing) {
      absent.push_back(out.features.size());
      out.names.push_back(m.name);
      out.features.emplace_back();
      out.nonfinite.emplace_back();
      continue;
    }
    if (it == entries.end())
      throw Error(path + ": missing entry \"" + m.name + "\" (the file has: " + join(names) + ")" +
                  (rule.absent == ReadRule::Absent::RefuseNamingDropout
                       ? "; a model trained with train.modality_dropout > 0 reads a file without it"
                       : ""));
    torch::Tensor t = float_entry(path, m.name, it->second);
    torch::Tensor replaced;  // non-finite values put to 0, per row
    if (m.sequence) {
      const auto lengths = entries.find(m.name + kLengthsSuffix);
      check_rows(m.name, t.size(0));
      t = sequence_rows(path, m, t, lengths == entries.end() ? nullptr : &lengths->second, rule,
                        replaced, pages);
    } else {
      if (t.dim() != 2 || t.size(1) != m.dim)
        throw Error(path + ": entry \"" + m.name + "\" has shape " + c10::str(t.sizes()) +
                    ", expected [N, " + std::to_string(m.dim) + "]");
      check_rows(m.name, t.size(0));
      t = by_chunks(t, m.dim, pages, replaced,
                    [&](const torch::Tensor& chunk, int64_t row0, torch::Tensor& part,
                        torch::Tensor& dest) {
                      torch::Tensor x = finite_features(path, m.name, chunk, rule, part, row0);
                      if (dest.defined())
                        dest.copy_(x);
                      else
                        dest = x;
                    });
    }
    out.names.push_back(m.name);
    out.features.push_back(t);
    out.nonfinite.push_back(replaced);
  }
  // Undefined throughout when nothing was replaced: the data look as they always did.
  if (std::none_of(out.nonfinite.begin(), out.nonfinite.end(),
                   [](const torch::Tensor& r) { return r.defined(); }))
    out.nonfinite.clear();
  auto target = entries.find(kTargetEntry);
  if (target != entries.end() && rule.labels) {
    torch::Tensor t = target->second;
    if (t.is_floating_point() || t.is_complex() || t.scalar_type() == torch::kBool)
      throw Error(path + ": entry " + kTarget + " has dtype " +
                  std::string(c10::toString(t.scalar_type())) +
                  ", expected integer class labels for classification");
    if (t.dim() == 2 && t.size(1) == 1) t = t.squeeze(1);
    if (t.dim() != 1)
      throw Error(path + ": entry " + kTarget + " has shape " + c10::str(t.sizes()) +
                  ", expected [N] class labels");
    check_rows(kTargetEntry, t.size(0));
    t = t.to(torch::kInt64).contiguous();
    check_labels(t, rule.num_classes > 0 ? rule.num_classes : kMaxClasses, path);
    out.target = t;
  } else if (target != entries.end()) {
    torch::Tensor t = float_entry(path, kTargetEntry, target->second);
    if (t.dim() == 1) t = t.unsqueeze(1);
    if (t.dim() != 2 || t.size(1) < 1)
      throw Error(path + ": entry " + kTarget + " has shape " + c10::str(t.sizes()) +
                  ", expected [N] or [N, K]");
    check_rows(kTargetEntry, t.size(0));
    t = require_finite(path, kTargetEntry, t);
    out.target = t;
  } else if (rule.required) {
    throw Error(path + ": missing entry " + kTarget + " (needed for training and evaluation)");
  }
  if (!absent.empty() && rows < 0)
    throw Error(path + ": none of the model's modalities is in the file (the file has: " +
                join(names) + ")");
  for (const size_t a : absent) {  // every row missing, as the model's encoders read it
    const ModalityConfig& m = modalities[a];
    out.features[a] = m.sequence ? torch::zeros({rows, 1 + std::max<int64_t>(1, m.max_len) * m.dim})
                                 : torch::full({rows, m.dim}, std::numeric_limits<float>::quiet_NaN());
  }
  if (rows == 0) throw Error(path + ": the file holds no rows");
  if (pages && out.target.defined()) out.target = out.target.clone();  // not the file's bytes
  return out;
}

void check_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& origin) {
  const auto bad = (labels < 0) | (labels >= num_classes);
  if (labels.numel() == 0 || !bad.any().item<bool>()) return;
  const int64_t row = bad.nonzero()[0][0].item<int64_t>();
  throw Error(origin + ": entry " + kTarget + " holds label " +
              std::to_string(labels[row].item<int64_t>()) + " in row " + std::to_string(row) +
              ", outside [0, " + std::to_string(num_classes) + ")");
}

namespace {
// torch::pickle_save tags dicts with their TorchScript type (a restore_type_tag global),
// which Python's torch.load refuses under weights_only=True, the default since PyTorch
// 2.6. This writes the same zip layout as torch.save (data.pkl plus one data/<key>
// record per storage) with an untagged dict, so a plain torch.load(path) reads it.
std::vector<char> torch_save_bytes(const c10::IValue& value) {
  std::vector<char> pickled;
  torch::jit::Pickler pickler(
      [&](const char* bytes, size_t n) { pickled.insert(pickled.end(), bytes, bytes + n); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();

  std::vector<char> out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t n) {
    out.insert(out.end(), static_cast<const char*>(bytes), static_cast<const char*>(bytes) + n);
    return n;
  });
  writer.writeRecord("data.pkl", pickled.data(), pickled.size());
  const auto& tensors = pickler.tensorData();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto data = torch::jit::getWriteableTensorData(tensors[i]);
    writer.writeRecord("data/" + std::to_string(i), data.data(), data.sizeInBytes());
  }
  writer.writeEndOfFile();
  return out;
}
}  // namespace

void write_data_file(const Dataset& data, const std::string& path,
                     const std::vector<ModalityConfig>& modalities) {
  // Every entry, in order: sequences as [N, T, D] in their modality's padding and lengths.
  NamedArrays entries;
  for (size_t m = 0; m < data.names.size(); ++m) {
    const torch::Tensor rows = data.features[m].cpu().contiguous();
    const auto mc = std::find_if(modalities.begin(), modalities.end(), [&](const auto& c) {
      return c.name == data.names[m] && c.sequence;
    });
    if (mc == modalities.end()) {
      entries.emplace_back(data.names[m], rows);
      continue;
    }
    const auto lengths = sequence::lengths(rows);
    torch::Tensor steps = sequence::values(rows, mc->dim);
    if (mc->padding == Padding::Front) steps = sequence::back_to_front(steps, lengths);
    entries.emplace_back(data.names[m], steps.contiguous());
    entries.emplace_back(data.names[m] + kLengthsSuffix, lengths.contiguous());
  }
  if (is_npz(path)) {
    NamedArrays arrays = entries;
    if (data.target.defined()) {
      auto t = data.target.cpu().contiguous();
      arrays.emplace_back(kTargetEntry,
                          t.dim() == 2 && t.size(1) == 1 ? t.squeeze(1).contiguous() : t);
    }
    write_npz(path, arrays);
    return;
  }
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (const auto& [name, values] : entries) dict.insert(name, values);
  if (data.target.defined()) {
    auto t = data.target.cpu().contiguous();
    dict.insert(kTargetEntry, t.dim() == 2 && t.size(1) == 1 ? t.squeeze(1).contiguous() : t);
  }
  const std::vector<char> bytes = torch_save_bytes(c10::IValue(dict));
  atomic_write_text(path, std::string_view(bytes.data(), bytes.size()));
}

}  // namespace mmfusion
