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

// One pickle (protocols 0 to 5): every opcode known, every length inside the bytes, a STOP.
void check_pickle(const char* data, size_t size, const std::string& where);

// check_pickle on every record of a PyTorch zip archive whose name ends in ".pkl" (or
// "debug_pkl"). Error "WHERE: UNREADABLE" when the zip itself cannot be read.
void check_archive_pickles(const char* data, size_t size, const std::string& where, const std::string& unreadable);

}  // namespace mmfusion
