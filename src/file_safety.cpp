#include "mmfusion/file_safety.hpp"

#include <caffe2/serialize/inline_container.h>

#include <cstring>
#include <memory>
#include <sstream>

#include "mmfusion/errors.hpp"

namespace mmfusion {

namespace {
constexpr int kMaxDepth = 64;

bool allowed_dtype(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Float:
    case c10::ScalarType::Double:
    case c10::ScalarType::Half:
    case c10::ScalarType::BFloat16:
    case c10::ScalarType::Long:
    case c10::ScalarType::Int:
    case c10::ScalarType::Short:
    case c10::ScalarType::Char:
    case c10::ScalarType::Byte:
    case c10::ScalarType::Bool: return true;
    default: return false;
  }
}

void walk(const c10::IValue& v, const std::string& where, int depth) {
  if (depth > kMaxDepth) throw Error(where + ": nested more than " + std::to_string(kMaxDepth) + " levels deep");
  if (v.isTensor()) return check_file_tensor(v.toTensor(), where);
  if (v.isTensorList()) {
    for (const auto& t : v.toTensorVector()) check_file_tensor(t, where);
  } else if (v.isList()) {
    for (const auto& item : v.toListRef()) walk(item, where, depth + 1);
  } else if (v.isTuple()) {
    for (const auto& item : v.toTupleRef().elements()) walk(item, where, depth + 1);
  } else if (v.isGenericDict()) {
    for (const auto& item : v.toGenericDict()) {
      walk(item.key(), where, depth + 1);
      const std::string name = item.key().isString() ? where + "." + item.key().toStringRef() : where;
      walk(item.value(), name, depth + 1);
    }
  } else if (v.isObject()) {
    const auto object = v.toObject();
    const auto type = object->type();
    for (size_t i = 0; i < object->slots().size(); ++i) {
      const std::string name = i < type->numAttributes() ? type->getAttributeName(i) : std::to_string(i);
      walk(object->getSlot(i), where + "." + name, depth + 1);
    }
  }
}
}  // namespace

void check_file_tensor(const torch::Tensor& t, const std::string& where) {
  if (!t.defined()) return;
  if (t.layout() != c10::kStrided || t.is_quantized())
    throw Error(where + ": not a dense tensor (layout " + c10::str(t.layout()) + ")");
  if (!allowed_dtype(t.scalar_type()))
    throw Error(where + ": dtype " + std::string(c10::toString(t.scalar_type())) + " is not allowed in a file");
  const int64_t offset = t.storage_offset();
  if (offset < 0) throw Error(where + ": negative storage offset " + std::to_string(offset));
  // The last element's index, offset + sum (size_i - 1) stride_i, without overflow.
  bool empty = false;
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (t.size(i) < 0 || t.stride(i) < 0)
      throw Error(where + ": negative size or stride in dimension " + std::to_string(i) + " (sizes " +
                  c10::str(t.sizes()) + ", strides " + c10::str(t.strides()) + ")");
    if (t.size(i) == 0) empty = true;
  }
  if (empty) return;
  __int128 last = offset;
  const __int128 beyond_any_storage = static_cast<__int128>(1) << 100;  // no overflow below 2^127
  for (int64_t i = 0; i < t.dim() && last < beyond_any_storage; ++i)
    last += static_cast<__int128>(t.size(i) - 1) * t.stride(i);
  const int64_t item = static_cast<int64_t>(t.element_size());
  const __int128 available = item > 0 ? static_cast<__int128>(t.storage().nbytes()) / item : 0;
  if (!t.storage().data() && available > 0)
    throw Error(where + ": its storage holds no data");
  if (last >= available)
    throw Error(where + ": shape " + c10::str(t.sizes()) + " with strides " + c10::str(t.strides()) + " and offset " +
                std::to_string(offset) + " reaches element " + std::to_string(static_cast<long long>(last)) +
                ", but its storage holds " + std::to_string(static_cast<long long>(available)) +
                " (a damaged or crafted file)");
}

void check_file_tensors(const c10::IValue& value, const std::string& where) { walk(value, where, 0); }

}  // namespace mmfusion

namespace mmfusion {

void check_pickle(const char* data, size_t size, const std::string& where) {
  const auto* b = reinterpret_cast<const unsigned char*>(data);
  size_t i = 0;
  auto fail = [&](const std::string& what) { throw Error(where + ": " + what + " at byte " + std::to_string(i)); };
  auto need = [&](uint64_t n) {
    if (n > size - i) fail("a length of " + std::to_string(n) + " bytes runs past the end of the pickle");
  };
  auto little = [&](int bytes) {
    need(bytes);
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | b[i + k];
    i += bytes;
    return v;
  };
  auto line = [&] {
    const void* nl = std::memchr(b + i, '\n', size - i);
    if (!nl) fail("an unterminated text argument");
    i = static_cast<const unsigned char*>(nl) - b + 1;
  };
  while (i < size) {
    const unsigned char op = b[i++];
    switch (op) {
      case '.': return;  // STOP
      // No argument.
      case '(': case ')': case ']': case '}': case 'N': case 0x88: case 0x89: case 't': case 0x85: case 0x86:
      case 0x87: case 'l': case 'd': case 'a': case 'e': case 's': case 'u': case 'R': case 'b': case 0x81:
      case 0x92: case 'Q': case '0': case '1': case '2': case 0x94: case 0x8f: case 0x90: case 0x91: case 0x93:
      case 0x97: case 0x98: case 'o':
        break;
      // Fixed-size arguments.
      case 0x80: case 'K': case 'h': case 'q': case 0x82: little(1); break;
      case 'M': case 0x83: little(2); break;
      case 'J': case 'j': case 'r': case 0x84: little(4); break;
      case 'G': case 0x95: little(8); break;
      // Length-prefixed arguments.
      case 0x8c: case 'C': case 'U': case 0x8a: { const uint64_t n = little(1); need(n); i += n; break; }
      case 'X': case 'B': case 'T': case 0x8b: { const uint64_t n = little(4); need(n); i += n; break; }
      case 0x8d: case 0x8e: case 0x96: { const uint64_t n = little(8); need(n); i += n; break; }
      // Newline-terminated text arguments.
      case 'c': case 'i': line(); line(); break;
      case 'I': case 'L': case 'F': case 'S': case 'V': case 'P': case 'g': case 'p': line(); break;
      default: --i; fail("unknown pickle opcode " + std::to_string(op));
    }
  }
  fail("no STOP opcode: the pickle is truncated");
}

void check_archive_pickles(const char* data, size_t size, const std::string& where, const std::string& unreadable) {
  std::vector<std::string> names;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  std::istringstream in(std::string(data, size));
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(&in);
    names = reader->getAllRecords();
  } catch (const std::exception&) {
    throw Error(where + ": " + unreadable);
  }
  for (const auto& name : names) {
    const bool pickle = name.size() >= 4 && (name.compare(name.size() - 4, 4, ".pkl") == 0 ||
                                             name.compare(name.size() - 4, 4, "_pkl") == 0);
    if (!pickle) continue;
    at::DataPtr record;
    size_t record_size = 0;
    try {
      std::tie(record, record_size) = reader->getRecord(name);
    } catch (const std::exception&) {
      throw Error(where + ": " + unreadable + " (record " + name + ")");
    }
    check_pickle(static_cast<const char*>(record.get()), record_size, where + ": " + name);
  }
}

}  // namespace mmfusion
