#include "mmfusion/base/files.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <mutex>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <sstream>

#include "mmfusion/base/errors.hpp"

namespace mmfusion {
namespace fs = std::filesystem;

namespace {

constexpr size_t kDefaultChunk = size_t(1) << 20;

// The test seam's state: which operation fails, after how many more, and the chunk size.
struct FaultState {
  std::mutex mutex;
  WriteOp op = WriteOp::Write;
  int countdown = 0;
  size_t chunk = kDefaultChunk;
};
FaultState& faults() {
  static FaultState state;
  static std::once_flag env;
  std::call_once(env, [] {
    const char* v = std::getenv("MMFUSION_TEST_FAULT");
    if (!v || !*v) return;
    const std::string text(v);
    const auto colon = text.find(':');
    const std::string op = text.substr(0, colon);
    std::lock_guard<std::mutex> lock(state.mutex);
    state.op = op == "fsync" ? WriteOp::Fsync : op == "rename" ? WriteOp::Rename : WriteOp::Write;
    if (colon == std::string::npos) return;
    const std::string rest = text.substr(colon + 1);
    state.countdown = std::atoi(rest.c_str());
    const auto second = rest.find(':');
    if (second != std::string::npos) {
      const long chunk = std::atol(rest.c_str() + second + 1);
      if (chunk > 0) state.chunk = static_cast<size_t>(chunk);
    }
  });
  return state;
}

// Whether this operation is the one the seam fails.
bool fault_now(WriteOp op) {
  FaultState& f = faults();
  std::lock_guard<std::mutex> lock(f.mutex);
  if (f.countdown <= 0 || f.op != op) return false;
  return --f.countdown == 0;
}

size_t chunk_size() {
  FaultState& f = faults();
  std::lock_guard<std::mutex> lock(f.mutex);
  return f.chunk;
}

std::string reason(int error) { return std::strerror(error); }

// `error` is the errno of the failed call, taken before any string is built.
[[noreturn]] void throw_write_error(const std::string& path, const char* what, int error) {
  throw WriteError(path + what + reason(error));
}

// All of `bytes` to `fd`, in chunks; false with errno set on the first failure.
bool write_all(int fd, std::string_view bytes) {
  const size_t chunk = chunk_size();
  size_t done = 0;
  while (done < bytes.size()) {
    if (fault_now(WriteOp::Write)) {
      errno = ENOSPC;
      return false;
    }
    const ssize_t n = ::write(fd, bytes.data() + done, std::min(chunk, bytes.size() - done));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = ENOSPC;
      return false;
    }
    done += static_cast<size_t>(n);
  }
  return true;
}

bool sync_fd(int fd) {
  if (fault_now(WriteOp::Fsync)) {
    errno = ENOSPC;
    return false;
  }
  return ::fsync(fd) == 0;
}

fs::path temporary_for(const std::string& path) {
  const fs::path target(path);
  return target.parent_path() /
         ("." + target.filename().string() + ".tmp" + std::to_string(::getpid()));
}

// tmp flushed to disk and renamed over path; Error naming path otherwise.
void sync_and_rename(const fs::path& tmp, const std::string& path) {
  const int fd = ::open(tmp.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_write_error(path, ": cannot write: ", errno);
  const bool synced = sync_fd(fd);
  const int error = errno;
  ::close(fd);
  if (!synced) throw WriteError(path + ": cannot write (flushing it to disk): " + reason(error));
  if (fault_now(WriteOp::Rename))
    throw WriteError(path + ": cannot move the new file into place: " + reason(EIO));
  if (::rename(tmp.c_str(), path.c_str()) != 0)
    throw_write_error(path, ": cannot move the new file into place: ", errno);
}

}  // namespace

void inject_write_fault(WriteOp op, int k, size_t chunk) {
  FaultState& f = faults();
  std::lock_guard<std::mutex> lock(f.mutex);
  f.op = op;
  f.countdown = std::max(0, k);
  f.chunk = chunk > 0 ? chunk : kDefaultChunk;
}

void atomic_write(const std::string& path, const std::function<void(const std::string&)>& writer) {
  const fs::path tmp = temporary_for(path);
  try {
    writer(tmp.string());
    sync_and_rename(tmp, path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

void atomic_write_text(const std::string& path, std::string_view bytes) {
  const fs::path tmp = temporary_for(path);
  try {
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw_write_error(path, ": cannot write: ", errno);
    const bool written = write_all(fd, bytes);
    const int error = errno;
    const bool closed = ::close(fd) == 0;
    const int close_error = errno;
    if (!written) throw_write_error(path, ": cannot write: ", error);
    if (!closed) throw_write_error(path, ": cannot write: ", close_error);
    sync_and_rename(tmp, path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

void atomic_copy(const std::string& from, const std::string& to) {
  const std::vector<char> bytes = read_bytes(from);
  atomic_write_text(to, std::string_view(bytes.data(), bytes.size()));
}

void append_text(const std::string& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) throw_write_error(path, ": cannot write: ", errno);
  // Several processes append to one log (a sweep and its workers): the length read and the
  // cut-back belong to this append alone.
  (void)::flock(fd, LOCK_EX);
  struct stat before {};
  const bool sized = ::fstat(fd, &before) == 0;
  const bool written = write_all(fd, bytes);
  const int error = errno;
  // Half a record would end the file: cut it back (best effort; the error names the file).
  if (!written && sized) (void)!::ftruncate(fd, before.st_size);
  (void)::flock(fd, LOCK_UN);
  const bool closed = ::close(fd) == 0;
  const int close_error = errno;
  if (!written) throw_write_error(path, ": cannot write: ", error);
  if (!closed) throw_write_error(path, ": cannot write: ", close_error);
}

std::string timestamp() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  localtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y%m%d-%H%M%S", &tm);
  return buf;
}

std::string format_number(double x) {
  std::ostringstream out;
  out << std::setprecision(9) << x;
  return out.str();
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

void refuse_overwrite(const std::string& path, bool force, const std::string& option) {
  std::error_code ec;
  if (!force && fs::exists(path, ec))
    throw UsageError((option.empty() ? "" : option + " ") + path +
                     ": the file exists (pass --force to overwrite it)");
}

MappedFile::MappedFile(const std::string& path, bool populate) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(path + ": no such file");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    throw Error(path + ": cannot stat: " + std::strerror(e));
  }
  size_ = static_cast<size_t>(st.st_size);
  if (size_ > 0) {
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE | (populate ? MAP_POPULATE : 0), fd, 0);
    const int e = errno;
    ::close(fd);
    if (p == MAP_FAILED) throw Error(path + ": cannot map: " + std::strerror(e));
    data_ = static_cast<const char*>(p);
  } else {
    ::close(fd);
  }
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<char*>(data_), size_);
}

void* populated_pages(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE,
                   -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void free_populated(void* p, size_t bytes) {
  if (p) ::munmap(p, bytes);
}

void* reserved_pages(size_t bytes) {
  if (bytes == 0) return nullptr;
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void populate_for_write(void* p, size_t n) {
#ifdef MADV_POPULATE_WRITE
  if (n == 0) return;
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto a = reinterpret_cast<uintptr_t>(p) / page * page;
  const auto b = (reinterpret_cast<uintptr_t>(p) + n + page - 1) / page * page;
  ::madvise(reinterpret_cast<void*>(a), b - a, MADV_POPULATE_WRITE);  // else: faults as written
#else
  (void)p, (void)n;
#endif
}

bool MappedFile::contains(const void* p, size_t n) const {
  const auto* c = static_cast<const char*>(p);
  return data_ && c >= data_ && n <= size_ && size_t(c - data_) <= size_ - n;
}

namespace {
// The whole pages of [p, p + n), widened (`outward`) or narrowed to page boundaries.
std::pair<char*, size_t> page_range(const void* p, size_t n, bool outward) {
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  const auto a = reinterpret_cast<uintptr_t>(p), b = a + n;
  const uintptr_t lo = outward ? a / page * page : (a + page - 1) / page * page;
  const uintptr_t hi = outward ? (b + page - 1) / page * page : b / page * page;
  return {reinterpret_cast<char*>(lo), hi > lo ? hi - lo : 0};
}
}  // namespace

void MappedFile::prefetch(const void* p, size_t n) const {
  if (!contains(p, n) || n == 0) return;
  auto [lo, len] = page_range(p, n, /*outward=*/true);
  const uintptr_t end = reinterpret_cast<uintptr_t>(data_) + size_;  // the mapping's last page
  const auto page = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  len = std::min<size_t>(len, (end + page - 1) / page * page - reinterpret_cast<uintptr_t>(lo));
#ifdef MADV_POPULATE_READ
  if (::madvise(lo, len, MADV_POPULATE_READ) == 0) return;
#endif
  ::madvise(lo, len, MADV_WILLNEED);  // older kernels: read ahead, fault later
}

void MappedFile::release(const void* p, size_t n) const {
  if (!contains(p, n)) return;
  // Only pages wholly inside the range: a neighbour's bytes may still be wanted (they
  // would be read again from the page cache, but need not be).
  const auto [lo, len] = page_range(p, n, /*outward=*/false);
  if (len > 0) ::madvise(lo, len, MADV_DONTNEED);
}

std::vector<char> read_bytes(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(path + ": no such file");
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  // One allocation of the file's size and one read (a byte-by-byte read into a growing
  // vector ran at about 90 MB/s and held twice the file while it grew).
  const std::streamoff size = in.tellg();
  if (size < 0) throw Error(path + ": cannot tell its size");
  std::vector<char> bytes(static_cast<size_t>(size));
  in.seekg(0);
  if (size > 0 && !in.read(bytes.data(), size)) throw Error(path + ": read failed");
  return bytes;
}

}  // namespace mmfusion
