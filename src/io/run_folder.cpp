#include "mmfusion/io/run_folder.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <vector>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"

namespace mmfusion {
namespace fs = std::filesystem;

RunPaths::RunPaths(std::string d) : dir(std::move(d)) {
  const fs::path p(dir);
  config = (p / kConfig).string();
  log = (p / kLog).string();
  metrics = (p / kMetrics).string();
  results = (p / kResults).string();
  loss_svg = (p / kLossSvg).string();
  relevance_svg = (p / kRelevanceSvg).string();
  error = (p / kError).string();
  nonfinite = (p / kNonFinite).string();
  checkpoints = (p / kCheckpoints).string();
  last = (p / kCheckpoints / kLast).string();
  best = (p / kCheckpoints / kBest).string();
}

bool is_empty_run_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;
  if (!fs::is_directory(dir, ec)) return false;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().filename() != RunLock::kFileName) return false;
  return !ec;
}

namespace {

// The locks this process holds, by folder: flock conflicts between two descriptors of
// one process too, so a second holder in the process shares the first's.
struct HeldLock {
  pid_t owner = 0;  // a forked child inherits the table, not the locks' ownership
  bool exclusive = true;
  int fd = -1;
  int holders = 0;
  fs::path created;  // the topmost folder the lock created, to remove if left empty
};
std::mutex g_locks_mutex;
std::map<std::string, HeldLock> g_locks;

// The first line of a lock file: the process that last took it.
std::string lock_owner(int fd) {
  char buffer[32] = {};
  const ssize_t n = pread(fd, buffer, sizeof buffer - 1, 0);
  std::string owner(buffer, n > 0 ? size_t(n) : 0);
  owner = owner.substr(0, owner.find('\n'));
  const bool digits = !owner.empty() && std::all_of(owner.begin(), owner.end(), ::isdigit);
  return digits ? "process " + owner : "another process";
}

}  // namespace

RunLock::RunLock(const std::string& dir, Mode mode) {
  const std::string key = fs::absolute(dir).lexically_normal().string();
  std::lock_guard<std::mutex> guard(g_locks_mutex);
  auto it = g_locks.find(key);
  if (it != g_locks.end() && it->second.owner != ::getpid()) {
    ::close(it->second.fd);  // the parent's; its lock stays the parent's
    g_locks.erase(it);
    it = g_locks.end();
  }
  if (it != g_locks.end()) {
    ++it->second.holders;
    key_ = key;
    return;
  }
  HeldLock held;
  fs::path missing;  // the topmost ancestor that does not exist yet
  for (fs::path p = key; !p.empty() && !fs::exists(p); p = p.parent_path()) {
    missing = p;
    if (p == p.parent_path()) break;
  }
  std::error_code ec;
  fs::create_directories(key, ec);
  if (ec) throw Error(dir + ": cannot create the run folder: " + ec.message());
  held.created = missing;
  const std::string file = (fs::path(key) / kFileName).string();
  // A holder that created the folder removes it with its lock file when it leaves nothing
  // else there; a process that opened the file just before then holds a lock on a file no
  // longer in the folder. So the lock counts only on the file the path still names.
  for (;;) {
    held.fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (held.fd < 0)
      throw Error(file + ": cannot open the run folder's lock file: " + std::strerror(errno));
    if (::flock(held.fd, (mode == Mode::Shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0) {
      const int error = errno;
      const std::string owner = lock_owner(held.fd);
      ::close(held.fd);
      if (error == EWOULDBLOCK)
        throw RunFolderInUse(dir + ": run folder in use by " + owner +
                             " (one writer per folder: wait for it to finish, or stop it)");
      throw Error(dir + ": cannot lock the run folder: " + std::strerror(error));
    }
    struct stat locked {
    }, named{};
    if (::fstat(held.fd, &locked) == 0 && ::stat(file.c_str(), &named) == 0 &&
        locked.st_ino == named.st_ino && locked.st_dev == named.st_dev)
      break;
    ::close(held.fd);  // removed under us: lock the folder's file of now
    fs::create_directories(key, ec);
  }
  held.exclusive = mode == Mode::Exclusive;
  // The holder's process id, for the message another process gets. Shared holders
  // overwrite each other: the file names one of them.
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(held.fd, 0) != 0 || ::pwrite(held.fd, pid.data(), pid.size(), 0) < 0) {
    // The lock holds all the same; only the name in another process's message is lost.
  }
  held.holders = 1;
  held.owner = ::getpid();
  g_locks.emplace(key, held);
  key_ = key;
}

RunLock::RunLock(RunLock&& other) noexcept : key_(std::move(other.key_)) { other.key_.clear(); }

RunLock& RunLock::operator=(RunLock&& other) noexcept {
  if (this != &other) {
    release();
    key_ = std::move(other.key_);
    other.key_.clear();
  }
  return *this;
}

RunLock::~RunLock() { release(); }

void RunLock::release() {
  if (key_.empty()) return;
  std::lock_guard<std::mutex> guard(g_locks_mutex);
  auto it = g_locks.find(key_);
  if (it != g_locks.end() && it->second.owner != ::getpid()) {  // a forked child's copy
    ::close(it->second.fd);
    g_locks.erase(it);
  } else if (it != g_locks.end() && --it->second.holders == 0) {
    const HeldLock held = it->second;
    g_locks.erase(it);
    // A folder made only for the lock (a run that failed before writing anything) goes
    // again, with the parents the lock created, while the lock is still held (exclusively:
    // shared holders may still use the file).
    std::error_code ec;
    if (held.exclusive && !held.created.empty() && is_empty_run_dir(key_)) {
      fs::remove(fs::path(key_) / kFileName, ec);
      for (fs::path p = key_; !ec && fs::is_empty(p, ec); p = p.parent_path()) {
        fs::remove(p, ec);
        if (p == held.created) break;
      }
    }
    ::close(held.fd);
  }
  key_.clear();
}

std::string fresh_run_dir(const std::string& out, const std::string& name) {
  if (!out.empty()) {
    if (!is_empty_run_dir(out)) {
      // The way on is to resume only where there is something to resume from.
      std::error_code ec;
      const std::string last = RunPaths(out).last;
      throw UsageError(
          "--out " + out +
          ": the folder exists and is not empty; an earlier run is never "
          "overwritten (choose another folder" +
          (fs::exists(last, ec) ? ", or continue that run with --resume " + last : "") + ")");
    }
    return out;
  }
  const std::string base = (fs::path("runs") / (name + "-" + timestamp())).string();
  std::string dir = base;
  for (int i = 2; !is_empty_run_dir(dir); ++i) dir = base + "-" + std::to_string(i);
  return dir;
}

std::string resume_run_dir(const std::string& checkpoint) {
  const fs::path parent = fs::absolute(checkpoint).parent_path();
  if (parent.filename() == RunPaths::kCheckpoints &&
      fs::exists(parent.parent_path() / RunPaths::kConfig))
    // The folder as the user named the checkpoint: absolute stays absolute.
    return fs::path(checkpoint).is_absolute()
               ? parent.parent_path().lexically_normal().string()
               : parent.parent_path().lexically_relative(fs::current_path()).string();
  throw UsageError("--resume " + checkpoint +
                   ": cannot find its run folder (expected "
                   "DIR/checkpoints/NAME.pt beside DIR/config.json); pass --out DIR to "
                   "continue in a new folder");
}

void create_run_dir(const RunPaths& paths, bool with_checkpoints) {
  std::error_code ec;
  fs::create_directories(with_checkpoints ? paths.checkpoints : paths.dir, ec);
  if (ec) throw Error(paths.dir + ": cannot create the run folder: " + ec.message());
}

namespace {

// A log file written line by line through append_text (checked, never half a line). A
// failure is never thrown from a log call (those happen in destructors and error paths
// too): the sink records it, stops writing, and log_write_failure() reports it.
class CheckedFileSink : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit CheckedFileSink(std::string path) : path_(std::move(path)) {
    append_text(path_, "");  // created now, or refused now
  }

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    if (broken_) return;
    spdlog::memory_buf_t formatted;
    formatter_->format(msg, formatted);
    try {
      append_text(path_, std::string_view(formatted.data(), formatted.size()));
    } catch (const std::exception& e) {
      broken_ = true;
      failure_ = e.what();
    }
  }
  void flush_() override {}

 public:
  std::string failure() {
    std::lock_guard<std::mutex> lock(mutex_);
    return failure_;
  }

 private:
  std::string path_;
  bool broken_ = false;
  std::string failure_;  // the first failure, under the sink's mutex
};

}  // namespace

std::string log_write_failure(const spdlog::logger& logger) {
  for (const auto& sink : logger.sinks())
    if (auto* file = dynamic_cast<CheckedFileSink*>(sink.get()))
      if (std::string failed = file->failure(); !failed.empty()) return failed;
  return "";
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& log_file,
                                            const std::string& prefix) {
  std::vector<spdlog::sink_ptr> sinks{std::make_shared<spdlog::sinks::stderr_color_sink_mt>()};
  if (!log_file.empty()) sinks.push_back(std::make_shared<CheckedFileSink>(log_file));
  auto logger = std::make_shared<spdlog::logger>("mmfusion", sinks.begin(), sinks.end());
  logger->set_pattern("[%Y-%m-%d %H:%M:%S] [%^%l%$] " + prefix + "%v");
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return logger;
}

}  // namespace mmfusion
