#pragma once
// A restricted reader of Python pickles (protocols 2 to 5, and Python 2's), for the field's
// benchmark files (MMSA, MultiBench, the LMF reference code). It builds only dicts, lists,
// tuples, strings, bytes, numbers, None and NumPy arrays, dtypes and scalars; every other
// global a pickle names is refused with a one-line error that names it. Nothing a file
// names is ever called: the few NumPy constructors it accepts are recognised by name and
// rebuilt here. Out-of-band buffers are refused. Every length is checked against what is
// left of the file before it is used (docs/data.md, "Files from others").
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace mmfusion::pickle {

struct Value;
using ValuePtr = std::shared_ptr<Value>;

struct Value {
  enum class Kind { None, Bool, Int, Float, Str, Bytes, List, Tuple, Dict, Array, Dtype, Global };
  Kind kind = Kind::None;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0;
  std::string text;               // Str (UTF-8), Bytes (raw; also Python 2's str), Global's name
  std::vector<ValuePtr> items;    // List, Tuple
  std::vector<std::pair<ValuePtr, ValuePtr>> entries;  // Dict, in the file's order
  // Array: the values (numeric and bool dtypes), or why there are none (strings, objects).
  torch::Tensor array;
  std::vector<int64_t> shape;
  std::string dtype;              // Array and Dtype: NumPy's code, e.g. "<f4", "|b1", "<U5", "|O"
  std::string unsupported;        // Array: why `array` is undefined
  bool dropped = false;           // Bytes over 64 KiB: read while parsing, not kept
  bool in_file = false;           // Array: `array` reads the parsed bytes (parse_views)

  // A dict's value for a string key (Str, or Bytes as Python 2 and latin-1 write keys);
  // nullptr when absent or not a dict.
  ValuePtr get(const std::string& key) const;
  // The kind's name for messages ("dict", "ndarray", ...).
  std::string kind_name() const;
};

// Parses a whole pickle. `origin` names the file in errors ("FILE: pickle: ...").
ValuePtr parse(const std::vector<char>& bytes, const std::string& origin);
ValuePtr parse(const char* data, size_t size, const std::string& origin);
// The same, but a C-order array of 64 KiB or more is a tensor over the bytes themselves
// (Value::in_file), not a copy: no memory is spent on arrays nobody takes, and a taker
// copies what it keeps. Those tensors are read-only and valid only while `data` is.
ValuePtr parse_views(const char* data, size_t size, const std::string& origin);

// The file's tree of keys, kinds, shapes and dtypes, one line per node, for writing a
// mapping by hand (at most `max_lines` lines; lists and tuples show their first items).
std::string describe(const ValuePtr& root, size_t max_lines = 200);

}  // namespace mmfusion::pickle
