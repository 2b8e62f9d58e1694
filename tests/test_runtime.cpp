// The runtime (runtime.hpp): devices, threads, memory, environment variables.
#include <gtest/gtest.h>

#include <mutex>

#include <cstdlib>
#include <thread>

#include "helpers.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/parallel.hpp"
#include "mmfusion/runtime/runtime.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

TEST(Devices, CpuAndThreadsResolve) {
  EXPECT_EQ(resolve_device("cpu"), torch::Device(torch::kCPU));
  EXPECT_EQ(apply_threads(1), 1);
  EXPECT_EQ(torch::get_num_threads(), 1);
  const int64_t all = apply_threads(0);
  EXPECT_EQ(all, available_cores());
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
