#pragma once
// Files from others (data files, checkpoints) are checked before LibTorch's readers
// trust them, and their tensors before any value is read:
// - every pickle in the zip is walked opcode by opcode first: an unknown opcode, or a
//   length that runs past the pickle's end (which LibTorch's unpickler would allocate
//   before noticing: a 4 GB string from four changed bytes), is refused;
// - every tensor's view (offset, sizes, strides) must lie inside its storage: a crafted
//   file can describe one that reaches past it, and reading it would read memory outside
//   the file's own tensors.
// Every failure is an Error "WHERE: ..." naming the file and the entry or record.
#include <map>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace mmfusion {

// A dense (strided) tensor of a real numeric dtype (floating, integer or bool; not
// complex, quantized or sparse) whose storage offset and strides are >= 0 and whose last
// element, offset + sum_i (size_i - 1) * stride_i, lies inside its storage.
void check_file_tensor(const torch::Tensor& tensor, const std::string& where);

// check_file_tensor on every tensor inside a value read from a file: in lists, tuples,
// dicts and objects (a checkpoint's nested archives), to a nesting depth of 64.
void check_file_tensors(const c10::IValue& value, const std::string& where);

// The records of an archive that a pickle's storages refer to: "<folder><key>".
struct StorageRecords {
  std::string folder;                   // e.g. "data/"
  std::map<std::string, size_t> sizes;  // every record of the archive, by name
};

// One pickle (protocols 0 to 5): every opcode known, every length inside the bytes, memo
// indexes no larger than the pickle, a STOP. With `records`, every tensor storage it
// refers to, ("storage", torch.<Type>Storage, key, location, numel), must have its record,
// holding at least numel elements (LibTorch 1.13 trusts numel for the storage's size).
void check_pickle(const char* data, size_t size, const std::string& where,
                  const StorageRecords* records = nullptr);

// The zip's directory first (every record's stated size one the file can hold: LibTorch
// allocates it before reading), then check_pickle on every record of a PyTorch zip archive whose
// name ends in ".pkl" (or "debug_pkl"), and nothing but attribute declarations in its code/ records
// (LibTorch parses and compiles them on load: a __setstate__ would run, and damaged source crashed
// its type parser). Error "WHERE: UNREADABLE" when the zip itself
// cannot be read.
void check_archive_pickles(const char* data, size_t size, const std::string& where,
                           const std::string& unreadable);

}  // namespace mmfusion
