// The runtime (runtime.hpp, cpu_load.hpp): devices, threads and the machine's load,
// memory, environment variables.
#include <gtest/gtest.h>

#include <mutex>

#include <cstdlib>
#include <thread>

#include "helpers.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/parallel.hpp"
#include "mmfusion/runtime/cpu_load.hpp"
#include "mmfusion/runtime/runtime.hpp"

#include <csignal>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace mmfusion;
using namespace mmfusion::testing;

TEST(Devices, CpuAndThreadsResolve) {
  EXPECT_EQ(resolve_device("cpu"), torch::Device(torch::kCPU));
  EXPECT_EQ(apply_threads(1), 1);
  EXPECT_EQ(torch::get_num_threads(), 1);
  // 0: the cores other processes leave free now (at least one; ctest may run beside us).
  const int64_t all = apply_threads(0);
  EXPECT_GE(all, 1);
  EXPECT_LE(all, available_cores());
  EXPECT_LE(available_cores(), std::max<int64_t>(1, std::thread::hardware_concurrency()));
  EXPECT_EQ(torch::get_num_threads(), all);
}

TEST(Devices, MissingCudaDeviceIsAConfigError) {
  const int64_t count = torch::cuda::is_available() ? torch::cuda::device_count() : 0;
  const std::string beyond = "cuda:" + std::to_string(count);
  try {
    resolve_device(beyond);
    FAIL() << "no error for " << beyond;
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("device: \"" + beyond + "\" requested but", 0), 0u)
        << e.what();
  }
  if (count == 0) {
    EXPECT_THROW(resolve_device("cuda"), ConfigError);
    EXPECT_EQ(resolve_device("auto"), torch::Device(torch::kCPU));
  }
}

TEST(Runtime, EnvironmentIntegersAreCheckedAndNamed) {
  ::setenv("MMFUSION_TEST_INT", "7", 1);
  EXPECT_EQ(env_int("MMFUSION_TEST_INT", 1), 7);
  ::setenv("MMFUSION_TEST_INT", "", 1);
  EXPECT_EQ(env_int("MMFUSION_TEST_INT", 3), 3);
  ::setenv("MMFUSION_TEST_INT", "2x", 1);
  expect_error<ConfigError>([] { env_int("MMFUSION_TEST_INT", 1); },
                            "MMFUSION_TEST_INT: expected a non-negative integer, got \"2x\"");
  ::unsetenv("MMFUSION_TEST_INT");
  EXPECT_EQ(env_string("MMFUSION_TEST_INT", "none"), "none");
}

TEST(Runtime, MemoryUsageSeesAnAllocationTouched) {
  const MemoryUsage before = memory_usage();
  EXPECT_GT(before.rss_mb, 0);
  EXPECT_GE(before.peak_rss_mb, before.rss_mb * 0.99);
  std::vector<char> block(64 << 20, 1);  // 64 MiB, written
  const MemoryUsage after = memory_usage();
  EXPECT_GT(after.rss_mb, before.rss_mb + 48) << "a touched 64 MiB block should be resident";
  EXPECT_GE(after.peak_rss_mb, after.rss_mb * 0.99);
  EXPECT_EQ(block[12345], 1);
}

TEST(Parallel, ChunksCoverTheRangeOncePerThreadAndPassErrorsOn) {
  std::mutex mutex;
  std::vector<std::pair<int64_t, int64_t>> chunks;
  parallel_chunks(1000, 10, 3, [&](int64_t b, int64_t e) {
    std::lock_guard<std::mutex> lock(mutex);
    chunks.emplace_back(b, e);
  });
  std::sort(chunks.begin(), chunks.end());
  ASSERT_EQ(chunks.size(), 3u);  // three threads asked, three chunks
  EXPECT_EQ(chunks.front().first, 0);
  EXPECT_EQ(chunks.back().second, 1000);
  for (size_t i = 1; i < chunks.size(); ++i) EXPECT_EQ(chunks[i].first, chunks[i - 1].second);
  chunks.clear();
  parallel_chunks(25, 10, 8, [&](int64_t b, int64_t e) {  // no chunk below the grain
    std::lock_guard<std::mutex> lock(mutex);
    chunks.emplace_back(b, e);
  });
  EXPECT_EQ(chunks.size(), 2u);
  EXPECT_THROW(parallel_chunks(1000, 1, 2,
                               [](int64_t b, int64_t) {
                                 if (b > 0) throw std::runtime_error("chunk");
                               }),
               std::runtime_error);
}

TEST(CpuLoad, BusySecondsAddTheNonIdleFieldsOfThisProcesssCpusOnly) {
  // user nice system idle iowait irq softirq steal; idle and iowait are not busy.
  const std::string stat =
      "cpu  900 0 0 900 0 0 0 0 0 0\n"
      "cpu0 100 20 30 400 50 6 7 8 0 0\n"
      "cpu1 1000 0 0 0 0 0 0 0 0 0\n"
      "cpu2 1 2 3 4 5 6 7 8\n"
      "intr 12345\n";
  EXPECT_DOUBLE_EQ(*busy_seconds(stat, {0}, 100), (100 + 20 + 30 + 6 + 7 + 8) / 100.0);
  EXPECT_DOUBLE_EQ(*busy_seconds(stat, {0, 2}, 100), (171 + 1 + 2 + 3 + 6 + 7 + 8) / 100.0);
  EXPECT_DOUBLE_EQ(*busy_seconds(stat, {1}, 10), 100.0);
  EXPECT_FALSE(busy_seconds(stat, {5}, 100).has_value());
  EXPECT_FALSE(busy_seconds("garbage\ncpuX 1 2\n", {0}, 100).has_value());
}

TEST(CpuLoad, OthersAreTheBusyTimeThatIsNotOurs) {
  CpuSample a, b;
  a.valid = b.valid = true;
  b.at = a.at + std::chrono::seconds(2);
  b.busy_s = a.busy_s + 3.0;  // 1.5 cores busy over 2 s
  b.own_s = a.own_s + 1.0;    // of which we were 0.5
  EXPECT_DOUBLE_EQ(others_busy_cores(a, b), 1.0);
  b.own_s = a.own_s + 4.0;  // jiffy rounding can make ours exceed the total: never negative
  EXPECT_DOUBLE_EQ(others_busy_cores(a, b), 0.0);
  b.valid = false;
  EXPECT_DOUBLE_EQ(others_busy_cores(a, b), 0.0);
}

TEST(CpuLoad, TheThreadCountFallsAtHalfACoreAndRisesAtAQuarter) {
  // (current, cap, cores, others) -> next
  EXPECT_EQ(next_thread_count(2, 2, 2, 0.0), 2);
  EXPECT_EQ(next_thread_count(2, 2, 2, 0.49), 2);
  EXPECT_EQ(next_thread_count(2, 2, 2, 0.51), 1);
  EXPECT_EQ(next_thread_count(2, 2, 2, 1.0), 1);
  EXPECT_EQ(next_thread_count(2, 2, 2, 3.0), 1);  // never below one
  EXPECT_EQ(next_thread_count(1, 2, 2, 0.3), 1);  // not free enough to come back yet
  EXPECT_EQ(next_thread_count(1, 2, 2, 0.2), 2);
  EXPECT_EQ(next_thread_count(4, 8, 8, 0.1), 8);  // up to the cap of free cores at once
  EXPECT_EQ(next_thread_count(8, 8, 8, 2.6), 5);
  EXPECT_EQ(next_thread_count(2, 2, 8, 0.0), 2);  // the cap holds
}

namespace {
// A child process that keeps one core busy until the object dies.
struct Spinner {
  pid_t pid = fork();
  Spinner() {
    if (pid == 0) prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlives a test killed on timeout
    if (pid == 0)
      for (volatile unsigned long i = 0;; i = i + 1) {}
  }
  ~Spinner() {
    if (pid > 0) kill(pid, SIGKILL), waitpid(pid, nullptr, 0);
  }
};
}  // namespace

TEST(CpuLoad, AnotherProcessSpinningTakesACoreFromThreadsZero) {
  const int64_t cores = available_cores();
  if (cores < 2) GTEST_SKIP() << "one core: nothing to give up";
  Spinner spinner;
  ASSERT_GT(spinner.pid, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_LE(free_cores(cores, std::chrono::milliseconds(300)), cores - 1);
  // The governor, from all the cores, gives one up at its first check.
  torch::set_num_threads(static_cast<int>(cores));
  ThreadGovernor governor(true, cores, std::chrono::milliseconds(300));
  EXPECT_FALSE(governor.poll().has_value());  // before the interval: no reading
  std::this_thread::sleep_for(std::chrono::milliseconds(350));
  const auto change = governor.poll();
  ASSERT_TRUE(change.has_value());
  EXPECT_EQ(change->from, cores);
  EXPECT_LE(change->to, cores - 1);
  EXPECT_GE(change->others, 0.5);
  EXPECT_EQ(torch::get_num_threads(), change->to);
  // A fixed count never moves.
  ThreadGovernor fixed(false, cores, std::chrono::milliseconds(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(5));
  EXPECT_FALSE(fixed.poll().has_value());
  torch::set_num_threads(1);
}
