#include "mmfusion/base/progress.hpp"

#include <unistd.h>

#include <cmath>
#include <cstdio>

namespace mmfusion {

std::string duration_text(double seconds) {
  char buf[48];
  if (seconds < 90)
    std::snprintf(buf, sizeof buf, "%.0f s", seconds);
  else if (seconds < 90 * 60)
    std::snprintf(buf, sizeof buf, "%.0f min", seconds / 60);
  else
    std::snprintf(buf, sizeof buf, "%.0f h %.0f min", std::floor(seconds / 3600),
                  std::floor(std::fmod(seconds, 3600) / 60));
  return buf;
}

bool TerminalProgress::stderr_is_terminal() { return ::isatty(STDERR_FILENO) == 1; }

TerminalProgress::TerminalProgress(std::string what, int64_t total, bool draw)
    : what_(std::move(what)),
      total_(total),
      draw_(draw && total > 0),
      start_(std::chrono::steady_clock::now()),
      last_(start_) {
  if (draw_) {  // at once, so that even a short loop shows what it is doing
    std::fprintf(stderr, "\r\033[K%s", line(0).c_str());
    std::fflush(stderr);
  }
}

TerminalProgress::~TerminalProgress() {
  if (!draw_) return;
  std::fputs("\r\033[K", stderr);
  std::fflush(stderr);
}

std::string TerminalProgress::line(int64_t done) const {
  std::string out = what_ + " " + std::to_string(done) + "/" + std::to_string(total_);
  if (done > 0 && done < total_) {
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    out += ", about " + duration_text(elapsed / double(done) * double(total_ - done)) + " left";
  }
  return out;
}

void TerminalProgress::update(int64_t done) {
  if (!draw_) return;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_ < std::chrono::milliseconds(200) && done < total_) return;
  last_ = now;
  std::fprintf(stderr, "\r\033[K%s", line(done).c_str());
  std::fflush(stderr);
}

}  // namespace mmfusion
