#pragma once
// Small file and text helpers shared by checkpoints, data files, run folders and reports.
#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace mmfusion {

// Every file mmfusion writes goes through these (docs/checkpoints.md, "Full disks and
// failed writes"). Each write, fsync, close and rename is checked; a failure throws Error
// "PATH: cannot write: REASON" (REASON the system's, e.g. "No space left on device"),
// leaves the earlier version of PATH as it was and no temporary file behind.
//
// atomic_write_text: the bytes into a temporary file in the same folder, flushed to disk,
// then renamed over `path`.
void atomic_write_text(const std::string& path, std::string_view bytes);
// The same for a writer that needs a path of its own to write to (libzip): `writer` fills
// the temporary file, which is then flushed and renamed the same way.
void atomic_write(const std::string& path, const std::function<void(const std::string&)>& writer);
// `to` replaced atomically by a copy of `from`.
void atomic_copy(const std::string& from, const std::string& to);
// Appends to `path` (created if new); if any of it cannot be written, the file is cut
// back to its earlier length, so that it never ends in half a record.
void append_text(const std::string& path, std::string_view bytes);

// A test seam: the k-th (1-based) write, fsync or rename from now on, through the functions
// above, fails as a full disk does (ENOSPC; EIO for a rename). k = 0 clears it. `chunk`
// bounds the bytes of one write call (0 keeps the default), so that a test can fail a
// middle write of a small file. The environment variable MMFUSION_TEST_FAULT=OP:K[:CHUNK]
// (OP write, fsync or rename) sets the same for a whole process.
enum class WriteOp { Write, Fsync, Rename };
void inject_write_fault(WriteOp op, int k, size_t chunk = 0);

// Local time as YYYYmmdd-HHMMSS, for run and folder names.
std::string timestamp();

// A number as CSV and logs write it: up to 9 significant digits, no trailing zeros.
std::string format_number(double x);
// A CSV field, quoted when it holds a comma, a quote or a newline.
std::string csv_field(const std::string& s);

// UsageError "OPTION PATH: the file exists (pass --force ...)" unless `force` or the
// file is new: an output file is never overwritten by surprise. An empty `option` for a
// path the user did not give (a default output) leaves the option out.
void refuse_overwrite(const std::string& path, bool force, const std::string& option = "--output");

// Whole-file read; Error naming the path when it cannot be read.
std::vector<char> read_bytes(const std::string& path);

// Zeroed memory for a large buffer, its pages mapped in one call (MAP_POPULATE), which on
// this machine's VM is several times faster than a page fault per page as a copy first
// touches them; nullptr when it cannot be had. Freed with free_populated(p, bytes).
void* populated_pages(size_t bytes);
void free_populated(void* p, size_t bytes);
// The same memory reserved without its pages (nullptr when it cannot be had), for a
// buffer filled a part at a time: populate_for_write(p, n) maps the pages of [p, p + n)
// in one call just before they are written, so that memory grows as the buffer fills.
// Freed with free_populated.
void* reserved_pages(size_t bytes);
void populate_for_write(void* p, size_t n);

// A whole file mapped read-only, its pages populated in one call unless `populate` is
// false (a large file is read several times faster than through a buffer that takes a
// page fault per page); unmapped when it goes.
class MappedFile {
 public:
  explicit MappedFile(const std::string& path, bool populate = true);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  const char* data() const { return data_; }
  size_t size() const { return size_; }
  // Whether [p, p + n) lies in the mapping.
  bool contains(const void* p, size_t n) const;
  // The pages of [p, p + n) mapped in one call before they are read (a range outside the
  // mapping is ignored), and given back after: the file's pages stay in the page cache,
  // but no longer count in this process's memory.
  void prefetch(const void* p, size_t n) const;
  void release(const void* p, size_t n) const;

 private:
  const char* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace mmfusion
