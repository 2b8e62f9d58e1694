#pragma once
// NumPy's file formats, read and written without Python:
//   .npy  one array: a magic string, a version, a header (a Python dict literal giving
//         'descr', 'fortran_order' and 'shape'), then the raw values
//         (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html);
//   .npz  a zip archive of .npy files, one per array (np.savez stores them,
//         np.savez_compressed deflates them); the zip container is read with libzip.
// Read: float32, float64, int32 and int64, little-endian, C order. Everything else
// (big-endian, Fortran order, object arrays, which are pickles, structured or other
// dtypes, a header that is not exactly such a dict, a payload of the wrong length) is an
// Error naming the file and the entry.
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace mmfusion {

using NamedArrays = std::vector<std::pair<std::string, torch::Tensor>>;

// One .npy file's bytes; `where` names it in errors.
torch::Tensor parse_npy(const char* data, size_t size, const std::string& where);
// The .npy bytes of a contiguous CPU float32/float64/int32/int64 tensor (format 1.0).
std::vector<char> npy_bytes(const torch::Tensor& values);

// The arrays of an .npz archive, in archive order, named without the ".npy" suffix: all
// of them, or those in `wanted` (the others are never inflated or parsed). Needs libzip
// at build time (MMFUSION_HAVE_LIBZIP); without it, an Error that says so.
// `names`, when given, receives every entry's name.
NamedArrays parse_npz(const char* data, size_t size, const std::string& path,
                      const std::set<std::string>* wanted = nullptr,
                      std::vector<std::string>* names = nullptr);
// Writes an .npz archive (stored, as np.savez does), atomically.
void write_npz(const std::string& path, const NamedArrays& arrays);

}  // namespace mmfusion
