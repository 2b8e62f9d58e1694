#include "mmfusion/io/file_safety.hpp"

#include <caffe2/serialize/inline_container.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <regex>
#include <memory>

#include "mmfusion/base/errors.hpp"

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
  if (depth > kMaxDepth)
    throw Error(where + ": nested more than " + std::to_string(kMaxDepth) + " levels deep");
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
      const std::string name =
          item.key().isString() ? where + "." + item.key().toStringRef() : where;
      walk(item.value(), name, depth + 1);
    }
  } else if (v.isObject()) {
    const auto object = v.toObject();
    const auto type = object->type();
    for (size_t i = 0; i < object->slots().size(); ++i) {
      const std::string name =
          i < type->numAttributes() ? type->getAttributeName(i) : std::to_string(i);
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
    throw Error(where + ": dtype " + std::string(c10::toString(t.scalar_type())) +
                " is not allowed in a file");
  const int64_t offset = t.storage_offset();
  if (offset < 0) throw Error(where + ": negative storage offset " + std::to_string(offset));
  // The last element's index, offset + sum (size_i - 1) stride_i, without overflow.
  bool empty = false;
  for (int64_t i = 0; i < t.dim(); ++i) {
    if (t.size(i) < 0 || t.stride(i) < 0)
      throw Error(where + ": negative size or stride in dimension " + std::to_string(i) +
                  " (sizes " + c10::str(t.sizes()) + ", strides " + c10::str(t.strides()) + ")");
    if (t.size(i) == 0) empty = true;
  }
  if (empty) return;
  __int128 last = offset;
  const __int128 beyond_any_storage = static_cast<__int128>(1) << 100;  // no overflow below 2^127
  for (int64_t i = 0; i < t.dim() && last < beyond_any_storage; ++i)
    last += static_cast<__int128>(t.size(i) - 1) * t.stride(i);
  const int64_t item = static_cast<int64_t>(t.element_size());
  const __int128 available = item > 0 ? static_cast<__int128>(t.storage().nbytes()) / item : 0;
  if (!t.storage().data() && available > 0) throw Error(where + ": its storage holds no data");
  if (last >= available)
    throw Error(where + ": shape " + c10::str(t.sizes()) + " with strides " +
                c10::str(t.strides()) + " and offset " + std::to_string(offset) +
                " reaches element " + std::to_string(static_cast<long long>(last)) +
                ", but its storage holds " + std::to_string(static_cast<long long>(available)) +
                " (a damaged or crafted file)");
  // Overlapping views (a stride 0, say) would let a few bytes stand for any number of
  // elements, and the first .contiguous() allocate them all; files hold none.
  const int64_t item_size = static_cast<int64_t>(t.element_size());
  if (item_size > 0 &&
      static_cast<__int128>(t.numel()) > static_cast<__int128>(t.storage().nbytes()) / item_size)
    throw Error(where + ": shape " + c10::str(t.sizes()) + " with strides " +
                c10::str(t.strides()) + " has " + std::to_string(t.numel()) +
                " elements over a storage of " + std::to_string(t.storage().nbytes() / item_size) +
                " (an overlapping view; files hold none)");
}

void check_file_tensors(const c10::IValue& value, const std::string& where) {
  walk(value, where, 0);
}

namespace {

// What the pickle walker keeps of each stack value: enough to read the persistent ids of
// tensor storages, ("storage", torch.<Type>Storage, key, location, numel), and nothing of
// anything else.
struct PickleValue {
  enum class Kind { Other, Mark, Text, Int, Global, Tuple } kind = Kind::Other;
  std::string text;  // Text, Global (module.name)
  int64_t number = 0;
  std::vector<std::shared_ptr<const PickleValue>> items;  // Tuple
};
using ValuePtr = std::shared_ptr<const PickleValue>;

ValuePtr make_value(PickleValue::Kind kind, std::string text = "", int64_t number = 0) {
  auto v = std::make_shared<PickleValue>();
  v->kind = kind, v->text = std::move(text), v->number = number;
  return v;
}

int64_t storage_item_size(const std::string& global) {
  static const std::map<std::string, int64_t> sizes = {
      {"torch.FloatStorage", 4},        {"torch.DoubleStorage", 8},
      {"torch.HalfStorage", 2},         {"torch.BFloat16Storage", 2},
      {"torch.LongStorage", 8},         {"torch.IntStorage", 4},
      {"torch.ShortStorage", 2},        {"torch.CharStorage", 1},
      {"torch.ByteStorage", 1},         {"torch.BoolStorage", 1},
      {"torch.ComplexFloatStorage", 8}, {"torch.ComplexDoubleStorage", 16}};
  auto it = sizes.find(global);
  return it == sizes.end() ? 0 : it->second;
}

}  // namespace

namespace {

// The walk over one pickle's opcodes: the reader of their arguments, the value stack and
// the marks (kept apart as LibTorch's unpickler keeps them), and the memo. LibTorch 1.13's
// unpickler reads an empty stack or mark list without checking (a SEGV the fuzzer found),
// so every opcode here must find what it consumes.
class PickleScan {
 public:
  PickleScan(const char* data, size_t size, const std::string& where, const StorageRecords* records)
      : data_(data),
        b_(reinterpret_cast<const unsigned char*>(data)),
        size_(size),
        where_(where),
        records_(records) {}

  void run() {
    while (i_ < size_) {
      const unsigned char op = b_[i_++];
      if (op == '.') {  // STOP: the result is the value on the stack
        if (stack_.empty()) fail("STOP with nothing on the stack");
        return;
      }
      if (!structure(op) && !scalar(op)) {
        --i_;
        fail("unknown pickle opcode " + std::to_string(op));
      }
    }
    fail("no STOP opcode: the pickle is truncated");
  }

 private:
  using Kind = PickleValue::Kind;

  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": " + what + " at byte " + std::to_string(i_));
  }
  void need(uint64_t n) const {
    if (n > size_ - i_)
      fail("a length of " + std::to_string(n) + " bytes runs past the end of the pickle");
  }
  uint64_t little(int bytes) {
    need(bytes);
    uint64_t v = 0;
    for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | b_[i_ + k];
    i_ += bytes;
    return v;
  }
  std::string text_arg(uint64_t n) {
    need(n);
    std::string t(data_ + i_, n);
    i_ += n;
    return t;
  }
  std::string line() {
    const void* nl = std::memchr(b_ + i_, '\n', size_ - i_);
    if (!nl) fail("an unterminated text argument");
    const size_t end = static_cast<const unsigned char*>(nl) - b_;
    std::string t(data_ + i_, end - i_);
    i_ = end + 1;
    return t;
  }

  void push(ValuePtr v) { stack_.push_back(std::move(v)); }
  void other() { push(make_value(Kind::Other)); }
  void require(size_t n) const {
    const size_t floor = marks_.empty() ? 0 : marks_.back();
    if (stack_.size() < floor + n)
      fail("an opcode that needs " + std::to_string(n) + " value(s) on the stack");
  }
  ValuePtr pop() {
    require(1);
    ValuePtr v = stack_.back();
    stack_.pop_back();
    return v;
  }
  // The values above the last mark, removed with the mark; `below`: values the opcode
  // needs under the mark (the list of APPENDS, the dict of SETITEMS).
  std::vector<ValuePtr> pop_to_mark(size_t below = 0) {
    if (marks_.empty() || marks_.back() > stack_.size()) fail("an opcode that needs a mark");
    const size_t mark = marks_.back();
    marks_.pop_back();
    if (mark < below + (marks_.empty() ? 0 : marks_.back()))
      fail("an opcode that needs a value under its mark");
    std::vector<ValuePtr> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  void tuple(std::vector<ValuePtr> items) {
    auto v = std::make_shared<PickleValue>();
    v->kind = Kind::Tuple, v->items = std::move(items);
    push(v);
  }
  // A memo index can be no larger than the pickle: LibTorch reserves memo space for it
  // (a crafted index asked for 30 GB).
  uint64_t memo_id(uint64_t id) const {
    if (id > size_) fail("memo index " + std::to_string(id) + " beyond any this pickle can hold");
    return id;
  }
  void get(uint64_t id) {
    auto it = memo_.find(memo_id(id));
    push(it == memo_.end() ? make_value(Kind::Other) : it->second);
  }
  void put(uint64_t id) {
    if (stack_.empty()) fail("a memo store with nothing on the stack");
    memo_[memo_id(id)] = stack_.back();
  }
  // A tensor storage's persistent id: its record must exist and hold the elements it declares.
  void persistent_id(const ValuePtr& pid) const {
    if (!records_ || pid->kind != Kind::Tuple || pid->items.size() < 5) return;
    const auto& it = pid->items;
    if (it[0]->kind != Kind::Text || it[0]->text != "storage") return;
    if (it[1]->kind != Kind::Global || it[2]->kind != Kind::Text || it[4]->kind != Kind::Int)
      fail("a storage reference of an unexpected form");
    const int64_t item = storage_item_size(it[1]->text);
    if (item == 0) fail("unknown storage type " + it[1]->text);
    const std::string record = records_->folder + it[2]->text;
    auto found = records_->sizes.find(record);
    if (found == records_->sizes.end()) fail("storage " + it[2]->text + " has no record " + record);
    const int64_t numel = it[4]->number;
    if (numel < 0 || static_cast<__int128>(numel) * item > static_cast<__int128>(found->second))
      fail("storage " + it[2]->text + " declares " + std::to_string(numel) + " elements of " +
           std::to_string(item) + " bytes, but its record holds " + std::to_string(found->second) +
           " bytes");
  }

  // Opcodes that build containers, call, or move values about; false for any other.
  bool structure(unsigned char op) {
    switch (op) {
      case '(': marks_.push_back(stack_.size()); break;
      case 't': tuple(pop_to_mark()); break;
      case ')': tuple({}); break;
      case 0x85: {
        auto a = pop();
        tuple({a});
        break;
      }
      case 0x86: {
        auto b = pop(), a = pop();
        tuple({a, b});
        break;
      }
      case 0x87: {
        auto c = pop(), b = pop(), a = pop();
        tuple({a, b, c});
        break;
      }
      case ']':
      case '}':
      case 'N':
      case 0x88:
      case 0x89:
      case 0x8f: other(); break;
      case 'a': require(2), pop(); break;         // APPEND to the list below
      case 's': require(3), pop(), pop(); break;  // SETITEM of the dict below
      case 'e':
      case 'u':
      case 0x90: pop_to_mark(1); break;  // APPENDS, SETITEMS, ADDITEMS
      case 'l':
      case 'd':
      case 0x91:
      case 'o': pop_to_mark(), other(); break;  // LIST, DICT, FROZENSET, OBJ
      case 'R':
      case 0x81: pop(), pop(), other(); break;           // REDUCE, NEWOBJ
      case 0x92: pop(), pop(), pop(), other(); break;    // NEWOBJ_EX
      case 'b': require(2), pop(); break;                // BUILD on the object below
      case '0': pop(); break;                            // POP (a value above the last mark)
      case '1': pop_to_mark(); break;                    // POP_MARK
      case '2': require(1), push(stack_.back()); break;  // DUP
      case 'Q':
        persistent_id(pop());
        other();
        break;                              // BINPERSID
      case 0x94: put(memo_.size()); break;  // MEMOIZE (needs a value, as put checks)
      case 0x97: other(); break;            // NEXT_BUFFER
      case 0x98: break;                     // READONLY_BUFFER
      case 0x80: little(1); break;          // PROTO
      case 0x95: little(8); break;          // FRAME
      case 'h': get(little(1)); break;
      case 'j': get(little(4)); break;
      case 'q': put(little(1)); break;
      case 'r': put(little(4)); break;
      case 'c': {  // GLOBAL module\nname\n
        std::string module = line();
        push(make_value(Kind::Global, module + "." + line()));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        auto name = pop(), module = pop();
        push(make_value(Kind::Global, module->text + "." + name->text));
        break;
      }
      case 'i': line(), line(), pop_to_mark(), other(); break;  // INST
      case 'P': line(), other(); break;                         // PERSID (text)
      case 'g': get(std::strtoull(line().c_str(), nullptr, 10)); break;
      case 'p': put(std::strtoull(line().c_str(), nullptr, 10)); break;
      default: return false;
    }
    return true;
  }

  // Opcodes that push a number or a text; false for any other.
  bool scalar(unsigned char op) {
    switch (op) {
      case 'K': push(make_value(Kind::Int, "", static_cast<int64_t>(little(1)))); break;
      case 'M': push(make_value(Kind::Int, "", static_cast<int64_t>(little(2)))); break;
      case 'J': push(make_value(Kind::Int, "", static_cast<int32_t>(little(4)))); break;
      case 'G': little(8), other(); break;   // BINFLOAT
      case 0x82: little(1), other(); break;  // EXT1
      case 0x83: little(2), other(); break;  // EXT2
      case 0x84: little(4), other(); break;  // EXT4
      case 0x8a:
      case 0x8b: long_integer(text_arg(little(op == 0x8a ? 1 : 4))); break;  // LONG1, LONG4
      case 0x8c:
      case 'C':
      case 'U': push(make_value(Kind::Text, text_arg(little(1)))); break;
      case 'X':
      case 'B':
      case 'T': push(make_value(Kind::Text, text_arg(little(4)))); break;
      case 0x8d:
      case 0x8e:
      case 0x96: push(make_value(Kind::Text, text_arg(little(8)))); break;
      case 'I':
      case 'L': {  // INT, LONG as text
        const std::string t = line();
        char* end = nullptr;
        const long long v = std::strtoll(t.c_str(), &end, 10);
        push(make_value(Kind::Int, "", v));
        break;
      }
      case 'S':
      case 'V': push(make_value(Kind::Text, line())); break;
      case 'F': line(), other(); break;
      default: return false;
    }
    return true;
  }
  // LONG1/LONG4's little-endian two's complement; wider than 64 bits: not a number we use.
  void long_integer(const std::string& bytes) {
    if (bytes.size() > 8) return other();
    uint64_t u = 0;
    for (size_t k = bytes.size(); k-- > 0;) u = (u << 8) | static_cast<unsigned char>(bytes[k]);
    if (!bytes.empty() && bytes.size() < 8 && (static_cast<unsigned char>(bytes.back()) & 0x80))
      u |= ~uint64_t(0) << (8 * bytes.size());
    push(make_value(Kind::Int, "", static_cast<int64_t>(u)));
  }

  const char* data_;
  const unsigned char* b_;
  size_t size_, i_ = 0;
  const std::string& where_;
  const StorageRecords* records_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::map<uint64_t, ValuePtr> memo_;
};

}  // namespace

void check_pickle(const char* data, size_t size, const std::string& where,
                  const StorageRecords* records) {
  PickleScan(data, size, where, records).run();
}

namespace {
// TorchScript code in an archive is parsed and compiled on load: a method such as
// __setstate__ would run, and LibTorch 1.13's type parser crashes on some damaged source
// (found by fuzzing). mmfusion's archives hold nothing but class declarations of
// attributes, so every line must be one of those, before LibTorch parses any of it.
void check_declarations(const std::string& text, const std::string& where) {
  static const std::string type =
      R"((Tensor|str|float|int|bool|Optional\[Tensor\]|Tuple\[float, float\]|__torch__(\.[A-Za-z_][A-Za-z0-9_]*)+))";
  static const std::regex allowed(R"(class [A-Za-z_][A-Za-z0-9_]*\(Module\):|)"
                                  R"(  __(parameters|buffers)__ = \[("[A-Za-z0-9_/]*", )*\]|)"
                                  R"(  __annotations__ = \[\]|)"
                                  R"(  __annotations__\["[A-Za-z0-9_/]*"\] = )" +
                                  type + "|" + R"(  [A-Za-z_][A-Za-z0-9_]* : )" + type + "|");
  size_t start = 0, number = 1;
  while (start <= text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    if (!std::regex_match(line, allowed))
      throw Error(where + ": line " + std::to_string(number) +
                  " is not an attribute declaration (an mmfusion "
                  "file holds data only, and mmfusion runs no code from files): " +
                  line.substr(0, 60));
    start = end + 1;
    ++number;
  }
}
}  // namespace

namespace {

uint64_t read_le(const char* p, int bytes) {
  uint64_t v = 0;
  for (int k = bytes - 1; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(p[k]);
  return v;
}

// LibTorch's zip reader allocates a record by the size the zip's directory states, before
// reading it (a changed byte asked for 2.8 GB). Every directory entry must therefore state
// sizes the file can hold: stored data no larger than the file, deflated data no more than
// deflate's largest ratio (about 1032:1) of its compressed bytes, which must fit the file.
// Returns every record's stated (uncompressed) size by its name inside the archive (the
// name without its first folder, as PyTorchStreamReader names records).
std::map<std::string, size_t> check_zip_directory(const char* data, size_t size,
                                                  const std::string& where,
                                                  const std::string& unreadable) {
  std::map<std::string, size_t> sizes;
  auto bad = [&](const std::string& what) {
    throw Error(where + ": " + unreadable + " (" + what + ")");
  };
  if (size < 22) bad("too short for a zip");
  // The end-of-central-directory record: the last "PK\5\6" in the final 64 KiB + 22 bytes.
  size_t end = std::string::npos;
  for (size_t at = size - 22;; --at) {
    if (std::memcmp(data + at, "PK\x05\x06", 4) == 0) {
      end = at;
      break;
    }
    if (at == 0 || size - at > 65557) break;
  }
  if (end == std::string::npos) bad("no zip directory");
  uint64_t entries = read_le(data + end + 10, 2), offset = read_le(data + end + 16, 4);
  if ((entries == 0xFFFF || offset == 0xFFFFFFFFu) && end >= 20 &&
      std::memcmp(data + end - 20, "PK\x06\x07", 4) == 0) {
    const uint64_t zip64 = read_le(data + end - 20 + 8, 8);  // the zip64 end record
    if (zip64 > size || size - zip64 < 56 || std::memcmp(data + zip64, "PK\x06\x06", 4) != 0)
      bad("a damaged zip64 directory");
    entries = read_le(data + zip64 + 32, 8);
    offset = read_le(data + zip64 + 48, 8);
  }
  if (offset > size) bad("the zip directory starts beyond the file");
  size_t at = offset;
  for (uint64_t e = 0; e < entries; ++e) {
    if (at > size || size - at < 46 || std::memcmp(data + at, "PK\x01\x02", 4) != 0)
      bad("a damaged zip directory");
    const uint64_t method = read_le(data + at + 10, 2);
    uint64_t compressed = read_le(data + at + 20, 4), stored = read_le(data + at + 24, 4);
    const size_t name = read_le(data + at + 28, 2), extra = read_le(data + at + 30, 2),
                 comment = read_le(data + at + 32, 2);
    if (size - at - 46 < name + extra + comment) bad("a damaged zip directory");
    // Zip64: sizes of 0xFFFFFFFF are in the extra field 0x0001 (uncompressed first).
    for (size_t x = at + 46 + name; x + 4 <= at + 46 + name + extra;) {
      const uint64_t id = read_le(data + x, 2), len = read_le(data + x + 2, 2);
      if (x + 4 + len > at + 46 + name + extra) break;
      if (id == 1) {
        size_t y = x + 4;
        if (stored == 0xFFFFFFFFu && y + 8 <= x + 4 + len) stored = read_le(data + y, 8), y += 8;
        if (compressed == 0xFFFFFFFFu && y + 8 <= x + 4 + len) compressed = read_le(data + y, 8);
      }
      x += 4 + len;
    }
    const std::string entry(data + at + 46, name);
    if (compressed > size)
      bad("record " + entry + " states " + std::to_string(compressed) +
          " bytes, more than the file");
    if (method == 0 ? stored > size : stored / 1100 > compressed + 1)
      bad("record " + entry + " states " + std::to_string(stored) +
          " bytes, more than its data can hold");
    const size_t slash = entry.find('/');
    sizes[slash == std::string::npos ? entry : entry.substr(slash + 1)] =
        static_cast<size_t>(stored);
    at += 46 + name + extra + comment;
  }
  return sizes;
}

}  // namespace

void check_archive_pickles(const char* data, size_t size, const std::string& where,
                           const std::string& unreadable) {
  // Reads the caller's bytes in place (no copy of the file).
  struct Bytes : caffe2::serialize::ReadAdapterInterface {
    Bytes(const char* d, size_t n) : data(d), n(n) {}
    size_t size() const override { return n; }
    size_t read(uint64_t pos, void* buf, size_t len, const char*) const override {
      if (pos >= n) return 0;
      const size_t k = std::min<uint64_t>(len, n - pos);
      std::memcpy(buf, data + pos, k);
      return k;
    }
    const char* data;
    size_t n;
  };
  // Every record's size, for checking what the pickles say of their storages.
  const std::map<std::string, size_t> sizes = check_zip_directory(data, size, where, unreadable);
  std::vector<std::string> names;
  std::unique_ptr<caffe2::serialize::PyTorchStreamReader> reader;
  try {
    reader = std::make_unique<caffe2::serialize::PyTorchStreamReader>(
        std::make_shared<Bytes>(data, size));
    names = reader->getAllRecords();
  } catch (const std::exception&) { throw Error(where + ": " + unreadable); }
  auto ends_with = [](const std::string& s, const char* tail) {
    const size_t n = std::strlen(tail);
    return s.size() >= n && s.compare(s.size() - n, n, tail) == 0;
  };
  for (const auto& name : names)
    if (!sizes.count(name))
      throw Error(where + ": " + unreadable + " (record " + name + " is not in the directory)");
  for (const auto& name : names) {
    const bool pickle = ends_with(name, ".pkl") || ends_with(name, "_pkl");
    const bool code = ends_with(name, ".py") && name.find("code/") != std::string::npos;
    if (!pickle && !code) continue;
    at::DataPtr record;
    size_t record_size = 0;
    try {
      std::tie(record, record_size) = reader->getRecord(name);
    } catch (const std::exception&) {
      throw Error(where + ": " + unreadable + " (record " + name + ")");
    }
    const char* bytes = static_cast<const char*>(record.get());
    const std::string text(bytes, record_size);
    if (pickle) {
      // data.pkl's storages are the records data/<key>; constants.pkl's constants/<key>.
      const StorageRecords storages{name.substr(0, name.size() - 4) + "/", sizes};
      check_pickle(bytes, record_size, where + ": " + name,
                   ends_with(name, ".pkl") ? &storages : nullptr);
      // Custom C++ classes (torch.classes.*) run their own __setstate__ while unpickling.
      if (text.find("torch.classes") != std::string::npos)
        throw Error(where + ": " + name +
                    " names a custom C++ class (torch.classes), which mmfusion files never hold");
    }
    if (code) check_declarations(text, where + ": " + name);
  }
}

}  // namespace mmfusion
