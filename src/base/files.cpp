#include "mmfusion/base/files.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
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
void sync_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) throw Error(path + ": cannot reopen to flush: " + std::strerror(errno));
  const int rc = ::fsync(fd);
  ::close(fd);
  if (rc != 0) throw Error(path + ": cannot flush to disk: " + std::strerror(errno));
}
}  // namespace

void atomic_write(const std::string& path, const std::function<void(const std::string&)>& writer) {
  const fs::path target(path);
  const fs::path tmp = target.parent_path() /
                       ("." + target.filename().string() + ".tmp" + std::to_string(::getpid()));
  try {
    writer(tmp.string());
    sync_file(tmp.string());
    std::error_code ec;
    fs::rename(tmp, target, ec);
    if (ec) throw Error(path + ": cannot move the new file into place: " + ec.message());
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

void atomic_write_text(const std::string& path, const std::string& text) {
  atomic_write(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) throw Error(path + ": cannot write: " + std::strerror(errno));
  });
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

std::vector<char> read_bytes(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(path + ": no such file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open: " + std::strerror(errno));
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw Error(path + ": read failed");
  return bytes;
}

}  // namespace mmfusion
