#pragma once
// How busy the cores this process may use are with other processes, and the thread count
// that follows from it. `threads: 0` uses it: at the start (apply_threads) and then
// between training steps (ThreadGovernor), so that a machine shared with a build, another
// run or a browser does not turn OpenMP's spinning threads into a 10x slowdown
// (docs/performance.md, "A busy machine").
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace mmfusion {

// The cores this process may run on (its CPU affinity: what a batch scheduler such as
// SLURM or a container grants), at least 1.
int64_t available_cores();

// Busy seconds (user, nice, system, irq, softirq, steal) summed over the `cpuN` lines of a
// /proc/stat text whose N is in `cpus`; nullopt when none of them is there.
std::optional<double> busy_seconds(const std::string& proc_stat, const std::vector<int>& cpus,
                                   double ticks_per_second);

// One reading: busy seconds of this process's cores, this process's own CPU seconds (every
// thread), and the wall clock.
struct CpuSample {
  double busy_s = 0;
  double own_s = 0;
  std::chrono::steady_clock::time_point at;
  bool valid = false;  // false where /proc/stat cannot be read (the governor then stays put)
};
CpuSample sample_cpu();

// The cores that other processes kept busy between two samples: (their busy time minus
// ours) over the wall time, at least 0.
double others_busy_cores(const CpuSample& from, const CpuSample& to);

// The next thread count for `others` busy cores out of `cores`, from `current`, at most
// `cap`: down as soon as others fill half a core, up only once a core is three quarters
// free, so that a load near a boundary does not flip the count at every check.
int64_t next_thread_count(int64_t current, int64_t cap, int64_t cores, double others);

// The cores not busy with other processes now, from two samples `window` apart; `cores`
// where /proc/stat cannot be read.
int64_t free_cores(int64_t cores, std::chrono::milliseconds window = std::chrono::milliseconds(50));

// Re-checks the load at most once per `interval` and sets LibTorch's thread count to
// next_thread_count(). Fixed (never changes anything) unless made adaptive.
class ThreadGovernor {
 public:
  struct Change {
    int64_t from, to;
    double others;  // busy cores of other processes over the last interval
  };
  ThreadGovernor() = default;
  // cap: the most threads to use (the count apply_threads chose is the start).
  ThreadGovernor(bool adaptive, int64_t cap,
                 std::chrono::milliseconds interval = std::chrono::milliseconds(1000));
  // Called between steps; cheap (one clock read) until an interval has passed.
  std::optional<Change> poll();
  bool adaptive() const { return adaptive_; }

 private:
  bool adaptive_ = false;
  int64_t cap_ = 1, cores_ = 1;
  std::chrono::milliseconds interval_{1000};
  CpuSample last_;
};

}  // namespace mmfusion
