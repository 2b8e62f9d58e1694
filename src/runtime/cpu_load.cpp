#include "mmfusion/runtime/cpu_load.hpp"

#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include <torch/torch.h>


namespace mmfusion {

namespace {

std::vector<int> affinity_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) cpus.push_back(c);
  return cpus;
}

double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec * 1e-6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace

int64_t available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max<int64_t>(1, std::thread::hardware_concurrency());
}

std::optional<double> busy_seconds(const std::string& proc_stat, const std::vector<int>& cpus,
                                   double ticks_per_second) {
  std::istringstream in(proc_stat);
  std::string line;
  double ticks = 0;
  bool found = false;
  while (std::getline(in, line)) {
    // "cpuN user nice system idle iowait irq softirq steal ..."; the "cpu " line is the total.
    if (line.size() < 4 || line.compare(0, 3, "cpu") != 0 || line[3] < '0' || line[3] > '9')
      continue;
    std::istringstream fields(line.substr(3));
    int cpu = -1;
    unsigned long long v[8] = {};
    if (!(fields >> cpu)) continue;
    for (auto& x : v)
      if (!(fields >> x)) x = 0;
    if (std::find(cpus.begin(), cpus.end(), cpu) == cpus.end()) continue;
    found = true;
    ticks += double(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);  // not idle (3) nor iowait (4)
  }
  if (!found || ticks_per_second <= 0) return std::nullopt;
  return ticks / ticks_per_second;
}

CpuSample sample_cpu() {
  static const std::vector<int> cpus = affinity_cpus();
  CpuSample s;
  s.at = std::chrono::steady_clock::now();
  s.own_s = own_cpu_seconds();
  std::ifstream f("/proc/stat");
  if (!f) return s;
  std::ostringstream text;
  text << f.rdbuf();
  const auto busy = busy_seconds(text.str(), cpus, double(sysconf(_SC_CLK_TCK)));
  if (!busy) return s;
  s.busy_s = *busy;
  s.valid = true;
  return s;
}

double others_busy_cores(const CpuSample& from, const CpuSample& to) {
  const double wall = std::chrono::duration<double>(to.at - from.at).count();
  if (!from.valid || !to.valid || wall <= 0) return 0;
  return std::max(0.0, ((to.busy_s - from.busy_s) - (to.own_s - from.own_s)) / wall);
}

int64_t next_thread_count(int64_t current, int64_t cap, int64_t cores, double others) {
  const int64_t down = cores - std::llround(others);
  const int64_t up = cores - std::llround(others + 0.25);
  int64_t next = current;
  if (down < current)
    next = down;
  else if (up > current)
    next = up;
  return std::clamp<int64_t>(next, 1, std::max<int64_t>(1, cap));
}

int64_t free_cores(int64_t cores, std::chrono::milliseconds window) {
  if (cores <= 1) return 1;
  const CpuSample a = sample_cpu();
  if (!a.valid) return cores;
  std::this_thread::sleep_for(window);
  return next_thread_count(cores, cores, cores, others_busy_cores(a, sample_cpu()));
}

ThreadGovernor::ThreadGovernor(bool adaptive, int64_t cap, std::chrono::milliseconds interval)
    : adaptive_(adaptive && available_cores() > 1),
      cap_(std::max<int64_t>(1, cap)),
      cores_(available_cores()),
      interval_(interval) {
  if (adaptive_) last_ = sample_cpu();
  if (!last_.valid) adaptive_ = false;
}

std::optional<ThreadGovernor::Change> ThreadGovernor::poll() {
  if (!adaptive_) return std::nullopt;
  const auto now = std::chrono::steady_clock::now();
  if (now - last_.at < interval_) return std::nullopt;
  const CpuSample s = sample_cpu();
  const double others = others_busy_cores(last_, s);
  last_ = s;
  const int64_t current = torch::get_num_threads();
  const int64_t next = next_thread_count(current, cap_, cores_, others);
  if (next == current) return std::nullopt;
  torch::set_num_threads(static_cast<int>(next));
  return Change{current, next, others};
}

}  // namespace mmfusion
