#pragma once
// The process's runtime: which device, how many threads, how the allocator keeps freed
// memory, how much memory is resident, and the environment variables a launcher sets.
// Nothing here knows of models or training.
#include <atomic>
#include <cstdint>
#include <string>

#include <torch/torch.h>

#include "mmfusion/runtime/cpu_load.hpp"  // available_cores, free_cores

namespace mmfusion {

// "auto" | "cpu" | "cuda" | "cuda:N" -> a device that exists; ConfigError otherwise.
torch::Device resolve_device(const std::string& spec);

// threads: 0 = the available cores that other processes leave free (at least 1, measured
// over 50 ms: cpu_load.hpp). Returns the count in force.
int64_t apply_threads(int64_t threads);

// Whether float32 matrix products on CUDA may use TF32 tensor cores (cuBLAS and cuDNN);
// LibTorch's default is not to. No effect on the CPU.
void apply_tf32(bool allow);

// glibc returns every freed block above 128 KiB (then a self-adjusting size) to the
// system, so a step whose temporaries are a few MiB page-faults them in again each time
// (measured: evaluation at batch 2048 ran at half speed after the hand-written training
// step). Keeps blocks below 256 MiB in the heap instead. Called once by the executable.
void keep_freed_memory();

// Resident memory of this process, now and at its peak, in MiB (Linux).
struct MemoryUsage {
  double rss_mb = 0;
  double peak_rss_mb = 0;
};
MemoryUsage memory_usage();

// The machine a figure was measured on, as results name it: the CPU model
// (/proc/cpuinfo), the cores this process may use, the BLAS library the dynamic loader
// resolved (the file behind libblas.so.3, with OpenBLAS's own configuration line, which
// names the kernel it chose for this CPU), and LibTorch's version. Another CPU or BLAS
// gives other bits (docs/experiments.md).
struct MachineInfo {
  std::string cpu, blas, torch;
  int64_t cores = 0;
};
MachineInfo machine_info();

// An environment variable; `fallback` when it is unset or empty.
std::string env_string(const char* name, const std::string& fallback = "");
// A non-negative integer variable; `fallback` when unset or empty; ConfigError naming the
// variable when it holds anything else.
int env_int(const char* name, int fallback);

// SIGINT and SIGTERM ask long work to stop at its next safe point: while a StopSignals
// object lives, the first such signal is recorded in stop_signal() (cleared when the object
// is made) and a second one takes the default action (immediate exit).
class StopSignals {
 public:
  StopSignals();
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

 private:
  void (*previous_int_)(int);
  void (*previous_term_)(int);
};
// The signal received (0: none).
std::atomic<int>& stop_signal();

// torchrun's LOCAL_RANK (0 without it), and how many processes share this machine
// (LOCAL_WORLD_SIZE, else WORLD_SIZE, else 1).
int local_rank();
int processes_on_this_machine();

}  // namespace mmfusion
