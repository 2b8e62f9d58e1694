#include "mmfusion/io/npz.hpp"

#ifdef MMFUSION_HAVE_LIBZIP
#include <zip.h>
#endif

#include <cctype>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the .npy reader copies little-endian values as they are");

namespace mmfusion {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;

struct Dtype {
  const char* descr;
  torch::ScalarType type;
};
constexpr Dtype kDtypes[] = {{"<f4", torch::kFloat32},
                             {"<f8", torch::kFloat64},
                             {"<i4", torch::kInt32},
                             {"<i8", torch::kInt64}};

// The header dict, read strictly: '{', then exactly the keys 'descr' (a string),
// 'fortran_order' (True/False) and 'shape' (a tuple of integers), each once, an optional
// trailing comma, '}', then spaces and a newline to the end.
class HeaderParser {
 public:
  HeaderParser(std::string text, std::string where)
      : s_(std::move(text)), where_(std::move(where)) {}

  struct Header {
    std::string descr;
    bool fortran_order = false;
    std::vector<int64_t> shape;
  };

  Header parse() {
    Header h;
    std::set<std::string> seen;
    expect('{');
    while (true) {
      skip_space();
      if (peek() == '}') break;
      const std::string key = quoted("a key");
      if (!seen.insert(key).second) fail("the key '" + key + "' appears twice");
      expect(':');
      skip_space();
      if (key == "descr") {
        if (peek() == '[')
          fail("structured arrays (a list of fields) are not read; save one plain array per entry");
        h.descr = quoted("the dtype string");
      } else if (key == "fortran_order") {
        h.fortran_order = boolean();
      } else if (key == "shape") {
        h.shape = shape();
      } else {
        fail("unexpected key '" + key + "'");
      }
      skip_space();
      if (peek() == ',')
        ++i_;
      else if (peek() != '}')
        fail("expected ',' or '}' after '" + key + "'");
    }
    ++i_;
    for (const char* key : {"descr", "fortran_order", "shape"})
      if (!seen.count(key)) fail(std::string("the key '") + key + "' is missing");
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
    if (i_ + 1 != s_.size() || s_[i_] != '\n') fail("unexpected text after the dict");
    return h;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": bad .npy header: " + what);
  }
  char peek() const { return i_ < s_.size() ? s_[i_] : '\0'; }
  void skip_space() {
    while (i_ < s_.size() && s_[i_] == ' ') ++i_;
  }
  void expect(char c) {
    skip_space();
    if (peek() != c) fail(std::string("expected '") + c + "'");
    ++i_;
  }
  std::string quoted(const char* what) {
    const char q = peek();
    if (q != '\'' && q != '"') fail(std::string("expected ") + what + " in quotes");
    const size_t end = s_.find(q, i_ + 1);
    if (end == std::string::npos) fail("unterminated string");
    std::string out = s_.substr(i_ + 1, end - i_ - 1);
    i_ = end + 1;
    return out;
  }
  bool boolean() {
    for (const auto& [word, value] :
         {std::pair<const char*, bool>{"True", true}, {"False", false}}) {
      const size_t n = std::strlen(word);
      if (s_.compare(i_, n, word) == 0) {
        i_ += n;
        return value;
      }
    }
    fail("fortran_order must be True or False");
  }
  std::vector<int64_t> shape() {
    std::vector<int64_t> dims;
    expect('(');
    while (true) {
      skip_space();
      if (peek() == ')') break;
      if (!std::isdigit(static_cast<unsigned char>(peek())))
        fail("shape must be a tuple of non-negative integers");
      int64_t v = 0;
      while (std::isdigit(static_cast<unsigned char>(peek()))) {
        const int digit = s_[i_++] - '0';
        if (v > (std::numeric_limits<int64_t>::max() - digit) / 10)
          fail("a dimension is too large");
        v = v * 10 + digit;
      }
      dims.push_back(v);
      if (dims.size() > 32) fail("more than 32 dimensions");
      skip_space();
      if (peek() == ',')
        ++i_;
      else if (peek() != ')')
        fail("expected ',' or ')' in the shape");
    }
    ++i_;
    return dims;
  }

  std::string s_;
  std::string where_;
  size_t i_ = 0;
};

uint32_t little_endian(const unsigned char* p, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

torch::Tensor parse_npy(const char* data, size_t size, const std::string& where) {
  const auto* u = reinterpret_cast<const unsigned char*>(data);
  if (size < kMagicSize + 2 || std::memcmp(data, kMagic, kMagicSize) != 0)
    throw Error(where + ": not a .npy array (no NumPy magic string)");
  const int major = u[6];
  const int len_bytes = major == 1 ? 2 : (major == 2 || major == 3) ? 4 : 0;
  if (len_bytes == 0)
    throw Error(where + ": .npy format version " + std::to_string(major) +
                " is not read (1 to 3 are)");
  const size_t prefix = kMagicSize + 2 + len_bytes;
  if (size < prefix) throw Error(where + ": truncated .npy header");
  const size_t header_len = little_endian(u + kMagicSize + 2, len_bytes);
  if (header_len > size - prefix) throw Error(where + ": truncated .npy header");
  const auto header = HeaderParser(std::string(data + prefix, header_len), where).parse();

  torch::ScalarType type = torch::kFloat32;
  bool known = false;
  for (const auto& d : kDtypes)
    if (header.descr == d.descr) type = d.type, known = true;
  if (!known) {
    const std::string& d = header.descr;
    if (d.find('O') != std::string::npos)
      throw Error(where +
                  ": object arrays (pickled Python objects) are not read; save numeric arrays");
    if (!d.empty() && d[0] == '>')
      throw Error(where + ": big-endian dtype '" + d + "'; save it little-endian (arr.astype('<" +
                  d.substr(1) + "'))");
    throw Error(where + ": dtype '" + d + "' is not read (float32, float64, int32 and int64 are)");
  }
  if (header.fortran_order)
    throw Error(where + ": Fortran-order array; save it in C order (np.ascontiguousarray)");
  const int64_t item = static_cast<int64_t>(c10::elementSize(type));
  int64_t count = 1, nonzero = 1;  // a zero dimension must not hide an overflowing other
  for (int64_t d : header.shape) {
    if (d != 0 && nonzero > std::numeric_limits<int64_t>::max() / item / d)
      throw Error(where + ": the shape's size overflows");
    if (d != 0) nonzero *= d;
    count *= d;
  }
  const size_t payload = size - prefix - header_len;
  if (static_cast<uint64_t>(count) * static_cast<uint64_t>(item) != payload)
    throw Error(where + ": shape " + c10::str(c10::IntArrayRef(header.shape)) + " of " +
                header.descr + " needs " + std::to_string(count * item) +
                " bytes, the entry holds " + std::to_string(payload));
  torch::Tensor out = torch::empty(header.shape, torch::TensorOptions(type));
  if (payload > 0) std::memcpy(out.data_ptr(), data + prefix + header_len, payload);
  return out;
}

std::vector<char> npy_bytes(const torch::Tensor& values) {
  const char* descr = nullptr;
  for (const auto& d : kDtypes)
    if (values.scalar_type() == d.type) descr = d.descr;
  if (!descr)
    throw Error(std::string("cannot write dtype ") + c10::toString(values.scalar_type()) +
                " to .npy");
  const torch::Tensor t = values.cpu().contiguous();
  std::string shape = "(";
  for (int64_t d : t.sizes()) shape += std::to_string(d) + ",";
  if (t.dim() > 1) shape.pop_back();
  shape += ")";
  std::string header =
      std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Padded with spaces so that the values start at a multiple of 64 bytes, then '\n'.
  const size_t prefix = kMagicSize + 4;
  header.append(63 - (prefix + header.size()) % 64, ' ');
  header += '\n';
  std::vector<char> out(kMagic, kMagic + kMagicSize);
  out.push_back(1), out.push_back(0);
  out.push_back(static_cast<char>(header.size() & 0xff)),
      out.push_back(static_cast<char>(header.size() >> 8));
  out.insert(out.end(), header.begin(), header.end());
  const auto* p = static_cast<const char*>(t.data_ptr());
  out.insert(out.end(), p, p + t.numel() * t.element_size());
  return out;
}

#ifdef MMFUSION_HAVE_LIBZIP
namespace {

// Deflate expands at most about 1032:1; a directory record claiming more is a lie.
constexpr uint64_t kMaxDeflateRatio = 1100;

struct ArchiveCloser {
  void operator()(zip_t* z) const { zip_discard(z); }
};
struct FileCloser {
  void operator()(zip_file_t* f) const { zip_fclose(f); }
};

std::string zip_message(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string text = zip_error_strerror(&error);
  zip_error_fini(&error);
  return text;
}

}  // namespace

NamedArrays parse_npz(const char* data, size_t size, const std::string& path,
                      const std::set<std::string>* wanted, std::vector<std::string>* all_names) {
  const std::string unreadable = ": not a readable .npz archive (";
  if (size == 0) throw Error(path + unreadable + "the file is empty)");
  zip_error_t error;
  zip_error_init(&error);
  zip_source_t* source = zip_source_buffer_create(data, size, 0, &error);
  if (!source) {
    const std::string why = zip_error_strerror(&error);
    zip_error_fini(&error);
    throw Error(path + unreadable + why + ")");
  }
  std::unique_ptr<zip_t, ArchiveCloser> archive(
      zip_open_from_source(source, ZIP_RDONLY | ZIP_CHECKCONS, &error));
  if (!archive) {
    zip_source_free(source);
    const std::string why = zip_error_strerror(&error);
    zip_error_fini(&error);
    throw Error(path + unreadable + why + "; the file is truncated, corrupt or not a zip archive)");
  }
  zip_error_fini(&error);
  const zip_int64_t entries = zip_get_num_entries(archive.get(), 0);
  NamedArrays out;
  std::set<std::string> names;
  std::vector<char> chunk(1 << 16);
  for (zip_int64_t i = 0; i < entries; ++i) {
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(archive.get(), i, 0, &st) != 0 || !(st.valid & ZIP_STAT_NAME) ||
        !(st.valid & ZIP_STAT_SIZE))
      throw Error(path + unreadable + "entry " + std::to_string(i) +
                  " has no readable directory record)");
    std::string name = st.name;
    const std::string suffix = ".npy";
    const std::string where = path + ": entry \"" + name + "\"";
    if (name.size() <= suffix.size() ||
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
      throw Error(where + " is not a .npy array (an .npz archive holds NAME.npy entries only)");
    name.resize(name.size() - suffix.size());
    if (!names.insert(name).second) throw Error(where + " appears twice");
    if (all_names) all_names->push_back(name);
    if (wanted && !wanted->count(name)) continue;  // never inflated
    if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE)
      throw Error(where + " is encrypted");
    if ((st.valid & ZIP_STAT_COMP_METHOD) && st.comp_method != ZIP_CM_STORE &&
        st.comp_method != ZIP_CM_DEFLATE)
      throw Error(where + " uses a compression method other than none or deflate");
    if ((st.valid & ZIP_STAT_COMP_SIZE) &&
        st.size > (st.comp_method == ZIP_CM_STORE ? st.comp_size
                                                  : kMaxDeflateRatio * st.comp_size + 4096))
      throw Error(where + ": its directory record claims " + std::to_string(st.size) +
                  " bytes from " + std::to_string(st.comp_size) + " stored (damaged or crafted)");
    // The directory's size is a claim: read in pieces, never past it, and check that the
    // entry holds exactly that much (libzip checks the CRC at the end).
    std::unique_ptr<zip_file_t, FileCloser> file(zip_fopen_index(archive.get(), i, 0));
    if (!file) throw Error(where + ": cannot open it (" + zip_strerror(archive.get()) + ")");
    std::vector<char> bytes;
    while (true) {
      const zip_int64_t got = zip_fread(file.get(), chunk.data(), chunk.size());
      if (got < 0) {
        const int code = zip_error_code_zip(zip_file_get_error(file.get()));
        throw Error(where + ": damaged (" + zip_message(code) + ")");
      }
      if (got == 0) break;
      if (bytes.size() + static_cast<size_t>(got) > st.size)
        throw Error(where + ": holds more bytes than its directory record says");
      bytes.insert(bytes.end(), chunk.data(), chunk.data() + got);
    }
    if (bytes.size() != st.size)
      throw Error(where + ": damaged (" + std::to_string(bytes.size()) + " of " +
                  std::to_string(st.size) + " bytes)");
    out.emplace_back(name, parse_npy(bytes.data(), bytes.size(), where));
  }
  return out;
}

void write_npz(const std::string& path, const NamedArrays& arrays) {
  std::vector<std::vector<char>> payloads;  // must outlive zip_close
  for (const auto& [name, values] : arrays) payloads.push_back(npy_bytes(values));
  atomic_write(path, [&](const std::string& tmp) {
    int code = 0;
    std::unique_ptr<zip_t, ArchiveCloser> archive(
        zip_open(tmp.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code));
    if (!archive) throw Error(path + ": cannot write the .npz archive (" + zip_message(code) + ")");
    for (size_t i = 0; i < arrays.size(); ++i) {
      zip_source_t* source =
          zip_source_buffer(archive.get(), payloads[i].data(), payloads[i].size(), 0);
      const zip_int64_t index =
          source ? zip_file_add(archive.get(), (arrays[i].first + ".npy").c_str(), source,
                                ZIP_FL_ENC_UTF_8)
                 : -1;
      if (index < 0) {
        if (source) zip_source_free(source);
        throw Error(path + ": cannot write the .npz archive (" + zip_strerror(archive.get()) + ")");
      }
      zip_set_file_compression(archive.get(), static_cast<zip_uint64_t>(index), ZIP_CM_STORE, 0);
    }
    if (zip_close(archive.get()) != 0)
      throw Error(path + ": cannot write the .npz archive (" + zip_strerror(archive.get()) + ")");
    archive.release();  // zip_close freed it
  });
}

#else  // built without libzip

NamedArrays parse_npz(const char*, size_t, const std::string& path, const std::set<std::string>*,
                      std::vector<std::string>*) {
  throw Error(
      path +
      ": this mmfusion was built without libzip, so it reads no .npz files (save a .pt file, or "
      "build with libzip-dev installed)");
}

void write_npz(const std::string& path, const NamedArrays&) {
  throw Error(path + ": this mmfusion was built without libzip, so it writes no .npz files");
}

#endif

}  // namespace mmfusion
