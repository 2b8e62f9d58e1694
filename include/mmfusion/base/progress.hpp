#pragma once
// A progress line for a long loop, drawn on a terminal only, as training's step counter is:
// "explain: evaluating subsets 12/63, about 40 s left", redrawn at most every 200 ms and
// cleared when the loop ends. Where stderr is not a terminal nothing is drawn; the
// command's own log lines say what happened.
#include <chrono>
#include <cstdint>
#include <string>

namespace mmfusion {

class TerminalProgress {
 public:
  // `draw`: whether to draw at all (default: stderr is a terminal).
  TerminalProgress(std::string what, int64_t total, bool draw = stderr_is_terminal());
  ~TerminalProgress();
  TerminalProgress(const TerminalProgress&) = delete;
  TerminalProgress& operator=(const TerminalProgress&) = delete;

  void update(int64_t done);  // `done` of `total`
  // The line as drawn: "WHAT D/T" and, once something is done, ", about X left".
  std::string line(int64_t done) const;

  static bool stderr_is_terminal();

 private:
  std::string what_;
  int64_t total_;
  bool draw_;
  std::chrono::steady_clock::time_point start_, last_;
};

// "41 s", "3 min", "2 h 5 min".
std::string duration_text(double seconds);

}  // namespace mmfusion
