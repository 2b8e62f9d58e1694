#pragma once
// Training and evaluation throughput of a config's model (docs/performance.md).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mmfusion/models/models.hpp"

namespace mmfusion {

struct BenchArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::vector<int64_t> batch_sizes = {32, 256, 2048};
  int64_t steps = 50;   // timed steps per repeat
  int64_t warmup = 10;  // untimed steps before the first repeat
  int64_t repeats = 5;
};

// Single-precision matrix-multiply GFLOP/s on `device` (the ceiling): on the CPU with the
// current thread count, n = 1024; on CUDA n = 8192, with TF32 where apply_tf32 allowed it.
double matmul_gflops(const torch::Device& device, int repeats = 10);

// Times training steps (forward, loss, backward, optimizer step) and evaluation steps
// (inference forward) on batches already in memory, each as the trainer runs it (on
// CUDA, a CUDA graph where graph_step.hpp applies). Returns one JSON object.
nlohmann::json run_bench(const BenchArgs& args);

// The table printed by `mmfusion bench` without --json.
std::string bench_table(const nlohmann::json& result);

}  // namespace mmfusion
