#include "mmfusion/io/pickle.hpp"

#include <algorithm>
#include <cstring>

#include <sys/mman.h>
#include <set>
#include <sstream>
#include <unordered_map>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"

namespace mmfusion::pickle {
namespace {

using Kind = Value::Kind;

constexpr size_t kMaxStack = 1 << 20;  // values on the stack at once
constexpr size_t kMaxMemo = 1 << 24;   // memo entries
constexpr int kMaxDims = 32;           // NumPy's own limit on array dimensions
// Bytes payloads larger than this are not copied: they are read where they lie in the
// file while it is parsed (an array's data is copied once, into its tensor) and dropped
// after (Value::text stays empty, Value::dropped says so).
constexpr uint64_t kViewBytes = 1 << 16;

ValuePtr make(Kind kind) {
  auto v = std::make_shared<Value>();
  v->kind = kind;
  return v;
}

// The NumPy constructors a pickle may name (module.name), by what they build.
enum class Callable { Reconstruct, NdArray, Dtype, Scalar, FromBuffer, CodecsEncode };
const std::unordered_map<std::string, Callable>& allowed_globals() {
  static const std::unordered_map<std::string, Callable> g{
      {"numpy.core.multiarray._reconstruct", Callable::Reconstruct},
      {"numpy._core.multiarray._reconstruct", Callable::Reconstruct},
      {"numpy.ndarray", Callable::NdArray},
      {"numpy.dtype", Callable::Dtype},
      {"numpy.core.multiarray.scalar", Callable::Scalar},
      {"numpy._core.multiarray.scalar", Callable::Scalar},
      {"numpy.core.numeric._frombuffer", Callable::FromBuffer},
      {"numpy._core.numeric._frombuffer", Callable::FromBuffer},
      {"_codecs.encode", Callable::CodecsEncode},
  };
  return g;
}

// A NumPy dtype code ("<f4", "|u1", "f8", ...) as a LibTorch type; false for the ones
// that hold no numbers (strings, objects, records) or a byte order other than this
// machine's (little-endian).
bool torch_type(const std::string& code, c10::ScalarType& type, int64_t& size) {
  if (code.size() < 2) return false;
  const char order = code[0];
  const std::string body = (order == '<' || order == '|' || order == '=' || order == '>')
                               ? code.substr(1)
                               : code;
  if (order == '>' && body != "u1" && body != "i1" && body != "b1") return false;
  static const std::unordered_map<std::string, std::pair<c10::ScalarType, int64_t>> types{
      {"f2", {torch::kFloat16, 2}}, {"f4", {torch::kFloat32, 4}}, {"f8", {torch::kFloat64, 8}},
      {"i1", {torch::kInt8, 1}},    {"i2", {torch::kInt16, 2}},   {"i4", {torch::kInt32, 4}},
      {"i8", {torch::kInt64, 8}},   {"u1", {torch::kUInt8, 1}},   {"b1", {torch::kBool, 1}}};
  const auto it = types.find(body);
  if (it == types.end()) return false;
  type = it->second.first, size = it->second.second;
  return true;
}

// An uninitialised tensor; a large one on pages mapped in one call (MAP_POPULATE), which
// on this machine's VM is several times faster than taking a page fault per page as the
// copy first touches them.
torch::Tensor populated(const std::vector<int64_t>& shape, c10::ScalarType type, size_t bytes) {
  void* p = bytes < (size_t(1) << 20) ? nullptr : populated_pages(bytes);
  if (!p) return torch::empty(shape, torch::TensorOptions().dtype(type));
  return torch::from_blob(
      p, shape, [bytes](void* q) { free_populated(q, bytes); }, torch::TensorOptions().dtype(type));
}

// UTF-8 to code points (for _codecs.encode(str, "latin1")); false on malformed input.
bool latin1_bytes(const std::string& utf8, std::string& out) {
  out.clear();
  for (size_t i = 0; i < utf8.size();) {
    const auto c = static_cast<unsigned char>(utf8[i]);
    uint32_t cp;
    if (c < 0x80) {
      cp = c, i += 1;
    } else if ((c & 0xE0) == 0xC0 && i + 1 < utf8.size()) {
      cp = ((c & 0x1F) << 6) | (static_cast<unsigned char>(utf8[i + 1]) & 0x3F), i += 2;
    } else {
      return false;  // code points past U+07FF are past latin-1's 255 anyway
    }
    if (cp > 0xFF) return false;
    out.push_back(static_cast<char>(cp));
  }
  return true;
}

class Parser {
 public:
  Parser(const char* data, size_t size, const std::string& origin, bool views = false)
      : p_(reinterpret_cast<const unsigned char*>(data)), n_(size), origin_(origin), views_in_file_(views) {}

  ValuePtr run() {
    while (true) {
      const size_t at = pos_;
      const unsigned char op = byte();
      switch (op) {
        case 0x80: byte(); break;                 // PROTO
        case 0x95: take(8); break;                // FRAME: a length hint
        case '(': marks_.push_back(stack_.size()); break;  // MARK
        case ')': push(make(Kind::Tuple)); break;
        case ']': push(make(Kind::List)); break;
        case '}': push(make(Kind::Dict)); break;
        case 'N': push(make(Kind::None)); break;
        case 0x88: push_bool(true); break;
        case 0x89: push_bool(false); break;
        case 'J': push_int(static_cast<int32_t>(le(4))); break;
        case 'K': push_int(static_cast<int64_t>(le(1))); break;
        case 'M': push_int(static_cast<int64_t>(le(2))); break;
        case 0x8a: long1(); break;
        case 'G': binfloat(); break;
        case 0x8c: push_text(Kind::Str, le(1)); break;     // SHORT_BINUNICODE
        case 'X': push_text(Kind::Str, le(4)); break;      // BINUNICODE
        case 0x8d: push_text(Kind::Str, le(8)); break;     // BINUNICODE8
        case 'C': push_text(Kind::Bytes, le(1)); break;    // SHORT_BINBYTES
        case 'B': push_text(Kind::Bytes, le(4)); break;    // BINBYTES
        case 0x8e: push_text(Kind::Bytes, le(8)); break;   // BINBYTES8
        case 0x96: push_text(Kind::Bytes, le(8)); break;   // BYTEARRAY8
        case 'U': push_text(Kind::Bytes, le(1)); break;    // SHORT_BINSTRING (Python 2 str)
        case 'T': push_text(Kind::Bytes, le(4)); break;    // BINSTRING (Python 2 str)
        case 'c': global_line(); break;
        case 0x93: stack_global(); break;
        case 'R': reduce(); break;
        case 'b': build(); break;
        case 't': push_sequence(Kind::Tuple, pop_mark()); break;
        case 'l': push_sequence(Kind::List, pop_mark()); break;
        case 'd': dict_from_mark(); break;
        case 0x85: tuple_of(1); break;
        case 0x86: tuple_of(2); break;
        case 0x87: tuple_of(3); break;
        case 'a': append(); break;
        case 'e': appends(); break;
        case 's': setitems(2); break;
        case 'u': setitems(0); break;
        case 'q': memo_put(le(1)); break;
        case 'r': memo_put(le(4)); break;
        case 0x94: memo_put(memo_.size()); break;
        case 'h': memo_get(le(1)); break;
        case 'j': memo_get(le(4)); break;
        case '0': pop(); break;  // POP
        case '2': push(top()); break;  // DUP
        case '.':
          if (stack_.size() != 1) fail(at, "STOP with " + std::to_string(stack_.size()) + " values on the stack");
          for (const auto& v : big_) v->dropped = true;  // the file is not kept
          return stack_.back();
        case 0x97:
        case 0x98: fail(at, "out-of-band buffers are refused (pickle it without buffer_callback)");
        case 'P':
        case 'Q': fail(at, "persistent ids are refused");
        case 0x81:
        case 0x92:
        case 'i':
        case 'o': fail(at, "building objects of a class is refused (only NumPy arrays are rebuilt)");
        default: {
          char hex[8];
          std::snprintf(hex, sizeof hex, "0x%02x", op);
          fail(at, std::string("opcode ") + hex +
                       " is not read (protocols 2 to 5 and Python 2's binary pickles are)");
        }
      }
    }
  }

 private:
  [[noreturn]] void fail(size_t at, const std::string& what) const {
    throw Error(origin_ + ": pickle: " + what + " (at byte " + std::to_string(at) + ")");
  }

  unsigned char byte() {
    if (pos_ >= n_) fail(pos_, "the file ends before STOP");
    return p_[pos_++];
  }
  const unsigned char* take(uint64_t count) {
    if (count > n_ - pos_)
      fail(pos_, "a length of " + std::to_string(count) + " runs past the end of the file (" +
                     std::to_string(n_ - pos_) + " bytes left)");
    const unsigned char* at = p_ + pos_;
    pos_ += count;
    return at;
  }
  uint64_t le(int width) {
    const unsigned char* b = take(width);
    uint64_t v = 0;
    for (int i = width - 1; i >= 0; --i) v = (v << 8) | b[i];
    return v;
  }

  void push(ValuePtr v) {
    if (stack_.size() >= kMaxStack) fail(pos_, "more than 2^20 values on the stack");
    stack_.push_back(std::move(v));
  }
  ValuePtr pop() {
    if (stack_.size() <= (marks_.empty() ? 0 : marks_.back())) fail(pos_, "pop from an empty stack");
    ValuePtr v = std::move(stack_.back());
    stack_.pop_back();
    return v;
  }
  ValuePtr& top() {
    if (stack_.empty()) fail(pos_, "the stack is empty");
    return stack_.back();
  }
  std::vector<ValuePtr> pop_mark() {
    if (marks_.empty()) fail(pos_, "no MARK to pop to");
    const size_t from = marks_.back();
    marks_.pop_back();
    std::vector<ValuePtr> out(std::make_move_iterator(stack_.begin() + from),
                              std::make_move_iterator(stack_.end()));
    stack_.resize(from);
    return out;
  }

  void push_bool(bool b) {
    auto v = make(Kind::Bool);
    v->boolean = b;
    push(v);
  }
  void push_int(int64_t i) {
    auto v = make(Kind::Int);
    v->integer = i;
    push(v);
  }
  void long1() {
    const uint64_t count = le(1);
    if (count > 8) fail(pos_, "an integer of " + std::to_string(count) + " bytes (at most 8 are read)");
    const unsigned char* b = take(count);
    uint64_t v = 0;
    for (int64_t i = int64_t(count) - 1; i >= 0; --i) v = (v << 8) | b[i];
    if (count > 0 && count < 8 && (b[count - 1] & 0x80)) v |= ~uint64_t(0) << (8 * count);
    push_int(static_cast<int64_t>(v));
  }
  void binfloat() {
    const unsigned char* b = take(8);
    uint64_t bits = 0;
    for (int i = 0; i < 8; ++i) bits = (bits << 8) | b[i];  // big-endian
    double d;
    std::memcpy(&d, &bits, 8);
    auto v = make(Kind::Float);
    v->number = d;
    push(v);
  }
  void push_text(Kind kind, uint64_t count) {
    const unsigned char* b = take(count);
    auto v = make(kind);
    if (kind == Kind::Bytes && count > kViewBytes) {
      views_[v.get()] = {reinterpret_cast<const char*>(b), count};
      big_.push_back(v);
    } else {
      v->text.assign(reinterpret_cast<const char*>(b), count);
    }
    push(v);
  }
  // A Bytes value's payload: its text, or where it lies in the file.
  std::pair<const char*, size_t> payload(const Value& v) const {
    const auto it = views_.find(&v);
    return it != views_.end() ? it->second : std::make_pair(v.text.data(), v.text.size());
  }
  void push_sequence(Kind kind, std::vector<ValuePtr> items) {
    auto v = make(kind);
    v->items = std::move(items);
    push(v);
  }
  void tuple_of(size_t count) {
    std::vector<ValuePtr> items(count);
    for (size_t i = count; i-- > 0;) items[i] = pop();
    push_sequence(Kind::Tuple, std::move(items));
  }
  void dict_from_mark() {
    auto items = pop_mark();
    if (items.size() % 2) fail(pos_, "DICT with an odd number of items");
    auto d = make(Kind::Dict);
    for (size_t i = 0; i < items.size(); i += 2) d->entries.emplace_back(items[i], items[i + 1]);
    push(d);
  }
  void append() {
    ValuePtr item = pop();
    ValuePtr& list = top();
    if (list->kind != Kind::List) fail(pos_, "APPEND to a " + list->kind_name());
    list->items.push_back(std::move(item));
  }
  void appends() {
    auto items = pop_mark();
    ValuePtr& list = top();
    if (list->kind != Kind::List) fail(pos_, "APPENDS to a " + list->kind_name());
    for (auto& i : items) list->items.push_back(std::move(i));
  }
  void setitems(size_t fixed) {  // SETITEM (2 values) or SETITEMS (to the mark)
    std::vector<ValuePtr> items;
    if (fixed) {
      ValuePtr value = pop(), key = pop();
      items = {key, value};
    } else {
      items = pop_mark();
    }
    if (items.size() % 2) fail(pos_, "SETITEMS with an odd number of items");
    ValuePtr& dict = top();
    if (dict->kind != Kind::Dict) fail(pos_, "SETITEM on a " + dict->kind_name());
    for (size_t i = 0; i < items.size(); i += 2) dict->entries.emplace_back(items[i], items[i + 1]);
  }
  void memo_put(uint64_t index) {
    if (index >= kMaxMemo) fail(pos_, "memo index " + std::to_string(index) + " (at most 2^24)");
    memo_[index] = top();
  }
  void memo_get(uint64_t index) {
    const auto it = memo_.find(index);
    if (it == memo_.end()) fail(pos_, "memo index " + std::to_string(index) + " was never stored");
    push(it->second);
  }

  void global(const std::string& module, const std::string& name, size_t at) {
    const std::string full = module + "." + name;
    if (!allowed_globals().count(full))
      fail(at, "refused global '" + full +
                   "' (only NumPy arrays, dtypes and scalars are rebuilt; nothing a file names is called)");
    auto v = make(Kind::Global);
    v->text = full;
    push(v);
  }
  void global_line() {
    const size_t at = pos_ - 1;
    auto line = [&] {
      std::string s;
      while (true) {
        const char c = static_cast<char>(byte());
        if (c == '\n') return s;
        if (s.size() > 256) fail(at, "a GLOBAL name longer than 256 characters");
        s.push_back(c);
      }
    };
    const std::string module = line();
    const std::string name = line();
    global(module, name, at);
  }
  void stack_global() {
    const size_t at = pos_ - 1;
    ValuePtr name = pop(), module = pop();
    if (module->kind != Kind::Str || name->kind != Kind::Str)
      fail(at, "STACK_GLOBAL of a " + module->kind_name() + " and a " + name->kind_name());
    global(module->text, name->text, at);
  }

  // The constructors, rebuilt here from their names.
  void reduce() {
    const size_t at = pos_ - 1;
    ValuePtr args = pop(), callable = pop();
    if (callable->kind != Kind::Global) fail(at, "REDUCE calls a " + callable->kind_name());
    if (args->kind != Kind::Tuple) fail(at, "REDUCE with arguments that are not a tuple");
    const auto& a = args->items;
    switch (allowed_globals().at(callable->text)) {
      case Callable::Reconstruct: {  // _reconstruct(ndarray, (0,), b"b"): an empty array
        if (a.empty() || a[0]->kind != Kind::Global || a[0]->text != "numpy.ndarray")
          fail(at, "_reconstruct of something other than numpy.ndarray");
        push(make(Kind::Array));
        return;
      }
      case Callable::Dtype: {  // dtype("f4", align, copy)
        if (a.empty() || (a[0]->kind != Kind::Str && a[0]->kind != Kind::Bytes))
          fail(at, "numpy.dtype without a type code");
        auto v = make(Kind::Dtype);
        v->dtype = a[0]->text;
        push(v);
        return;
      }
      case Callable::Scalar: {  // scalar(dtype, bytes)
        if (a.size() < 2 || a[0]->kind != Kind::Dtype || a[1]->kind != Kind::Bytes)
          fail(at, "numpy scalar without a dtype and its bytes");
        auto v = make(Kind::Array);
        fill(*v, a[0]->dtype, {}, payload(*a[1]), false, at);
        push(v);
        return;
      }
      case Callable::FromBuffer: {  // _frombuffer(buffer, dtype, shape, order)
        if (a.size() < 4 || a[0]->kind != Kind::Bytes || a[1]->kind != Kind::Dtype ||
            a[2]->kind != Kind::Tuple || (a[3]->kind != Kind::Str && a[3]->kind != Kind::Bytes))
          fail(at, "_frombuffer without its buffer, dtype, shape and order");
        auto v = make(Kind::Array);
        fill(*v, a[1]->dtype, shape_of(*a[2], at), payload(*a[0]), a[3]->text == "F", at);
        push(v);
        return;
      }
      case Callable::CodecsEncode: {  // _codecs.encode(str, "latin1"): Python 3's bytes in protocol 2
        if (a.size() != 2 || a[0]->kind != Kind::Str || a[1]->kind != Kind::Str ||
            (a[1]->text != "latin1" && a[1]->text != "latin-1"))
          fail(at, "_codecs.encode is read only as encode(str, \"latin1\")");
        auto v = make(Kind::Bytes);
        if (!latin1_bytes(a[0]->text, v->text)) fail(at, "_codecs.encode of text outside latin-1");
        push(v);
        return;
      }
      case Callable::NdArray: fail(at, "numpy.ndarray called directly");
    }
  }

  void build() {
    const size_t at = pos_ - 1;
    ValuePtr state = pop();
    ValuePtr& target = top();
    if (target->kind == Kind::Dtype) {  // (version, byte order, ...)
      if (state->kind == Kind::Tuple && state->items.size() >= 2 &&
          (state->items[1]->kind == Kind::Str || state->items[1]->kind == Kind::Bytes) &&
          state->items[1]->text.size() == 1) {
        const std::string order = state->items[1]->text;
        const std::string& code = target->dtype;
        target->dtype = (code.empty() || code[0] == '<' || code[0] == '>' || code[0] == '|' ||
                         code[0] == '=')
                            ? order + code.substr(code.empty() ? 0 : 1)
                            : order + code;
      }
      return;
    }
    if (target->kind != Kind::Array) fail(at, "BUILD on a " + target->kind_name());
    // (version, shape, dtype, is_fortran, data)
    const auto& s = state->items;
    if (state->kind != Kind::Tuple || s.size() != 5 || s[1]->kind != Kind::Tuple ||
        s[2]->kind != Kind::Dtype)
      fail(at, "an ndarray's state is not (version, shape, dtype, fortran, data)");
    const bool fortran = s[3]->kind == Kind::Bool ? s[3]->boolean : s[3]->integer != 0;
    const auto shape = shape_of(*s[1], at);
    if (s[4]->kind == Kind::List) {  // an object array: its items, kept for describe()
      target->dtype = s[2]->dtype;
      target->shape = shape;
      target->items = s[4]->items;
      target->unsupported = "an array of Python objects (dtype " + s[2]->dtype + ")";
      return;
    }
    if (s[4]->kind != Kind::Bytes && s[4]->kind != Kind::Str)
      fail(at, "an ndarray's data is a " + s[4]->kind_name());
    if (s[4]->kind == Kind::Bytes) {
      fill(*target, s[2]->dtype, shape, payload(*s[4]), fortran, at);
      return;
    }
    std::string data;
    if (!latin1_bytes(s[4]->text, data)) fail(at, "an ndarray's data as text outside latin-1");
    fill(*target, s[2]->dtype, shape, {data.data(), data.size()}, fortran, at);
  }

  std::vector<int64_t> shape_of(const Value& t, size_t at) const {
    if (t.items.size() > size_t(kMaxDims)) fail(at, "an array of more than 32 dimensions");
    std::vector<int64_t> shape;
    for (const auto& d : t.items) {
      if (d->kind != Kind::Int || d->integer < 0) fail(at, "an array dimension that is not a size");
      shape.push_back(d->integer);
    }
    return shape;
  }

  // An array of `shape` from `data`, checked: its size is the product of the shape times
  // the item size, without overflow.
  void fill(Value& v, const std::string& dtype, const std::vector<int64_t>& shape,
            std::pair<const char*, size_t> data, bool fortran, size_t at) const {
    v.dtype = dtype;
    v.shape = shape;
    c10::ScalarType type;
    int64_t item = 0;
    if (!torch_type(dtype, type, item)) {
      v.unsupported = "dtype " + dtype + " holds no numbers mmfusion reads";
      return;
    }
    uint64_t count = 1;
    for (int64_t d : shape) {
      if (d != 0 && count > (uint64_t(1) << 62) / uint64_t(d)) fail(at, "an array too large to hold");
      count *= uint64_t(d);
    }
    if (count * uint64_t(item) != data.second)
      fail(at, "an array of shape " + c10::str(c10::IntArrayRef(shape)) + " and dtype " + dtype +
                   " needs " + std::to_string(count * uint64_t(item)) + " bytes, its data has " +
                   std::to_string(data.second));
    std::vector<int64_t> stored = shape;
    if (fortran) std::reverse(stored.begin(), stored.end());
    const auto* first = reinterpret_cast<const unsigned char*>(data.first);
    if (views_in_file_ && !fortran && data.second >= kViewBytes && first >= p_ &&
        data.second <= n_ - size_t(first - p_)) {
      // Read where it lies: valid while the caller's bytes are (parse_views).
      v.array = torch::from_blob(const_cast<char*>(data.first), stored,
                                 torch::TensorOptions().dtype(type));
      v.in_file = true;
      return;
    }
    torch::Tensor t = populated(stored, type, data.second);
    if (data.second > 0) std::memcpy(t.data_ptr(), data.first, data.second);
    if (fortran && shape.size() > 1) {
      std::vector<int64_t> order(shape.size());
      for (size_t i = 0; i < order.size(); ++i) order[i] = int64_t(order.size() - 1 - i);
      t = t.permute(order).contiguous();
    }
    v.array = t;
  }

  const unsigned char* p_;
  size_t n_;
  bool views_in_file_ = false;
  size_t pos_ = 0;
  std::string origin_;
  std::vector<ValuePtr> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, ValuePtr> memo_;
  std::unordered_map<const Value*, std::pair<const char*, size_t>> views_;  // large Bytes
  std::vector<ValuePtr> big_;
};

void describe_into(const ValuePtr& v, const std::string& path, std::vector<std::string>& lines,
                   size_t max_lines, int depth) {
  if (lines.size() >= max_lines || depth > 16) return;
  std::ostringstream line;
  line << (path.empty() ? "(root)" : path) << ": " << v->kind_name();
  if (v->kind == Kind::Array) {
    line << " " << c10::IntArrayRef(v->shape) << " " << v->dtype;
    if (!v->unsupported.empty()) line << " (" << v->unsupported << ")";
  } else if (v->kind == Kind::Str || v->kind == Kind::Bytes) {
    line << (v->dropped ? " (large, not kept)" : " of " + std::to_string(v->text.size()));
  } else if (v->kind == Kind::List || v->kind == Kind::Tuple) {
    line << " of " << v->items.size();
  } else if (v->kind == Kind::Int) {
    line << " " << v->integer;
  }
  lines.push_back(line.str());
  if (v->kind == Kind::Dict) {
    for (const auto& [k, value] : v->entries) {
      std::string name = k->kind == Kind::Bytes ? "b'" + k->text + "'"
                         : k->kind == Kind::Str ? k->text
                         : k->kind == Kind::Int ? std::to_string(k->integer)
                                                : "<" + k->kind_name() + ">";
      describe_into(value, path.empty() ? name : path + "/" + name, lines, max_lines, depth + 1);
    }
  } else if (v->kind == Kind::List || v->kind == Kind::Tuple) {
    for (size_t i = 0; i < v->items.size() && i < 3; ++i)
      describe_into(v->items[i], path + "[" + std::to_string(i) + "]", lines, max_lines, depth + 1);
  }
}

}  // namespace

ValuePtr Value::get(const std::string& key) const {
  if (kind != Kind::Dict) return nullptr;
  for (const auto& [k, v] : entries)
    if ((k->kind == Kind::Str || k->kind == Kind::Bytes) && k->text == key) return v;
  return nullptr;
}

std::string Value::kind_name() const {
  switch (kind) {
    case Kind::None: return "None";
    case Kind::Bool: return "bool";
    case Kind::Int: return "int";
    case Kind::Float: return "float";
    case Kind::Str: return "str";
    case Kind::Bytes: return "bytes";
    case Kind::List: return "list";
    case Kind::Tuple: return "tuple";
    case Kind::Dict: return "dict";
    case Kind::Array: return "ndarray";
    case Kind::Dtype: return "dtype";
    case Kind::Global: return "global " + text;
  }
  return "?";
}

ValuePtr parse(const std::vector<char>& bytes, const std::string& origin) {
  return Parser(bytes.data(), bytes.size(), origin).run();
}

ValuePtr parse(const char* data, size_t size, const std::string& origin) {
  return Parser(data, size, origin).run();
}

ValuePtr parse_views(const char* data, size_t size, const std::string& origin) {
  return Parser(data, size, origin, /*views=*/true).run();
}

std::string describe(const ValuePtr& root, size_t max_lines) {
  std::vector<std::string> lines;
  describe_into(root, "", lines, max_lines, 0);
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

}  // namespace mmfusion::pickle
