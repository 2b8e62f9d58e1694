#include "mmfusion/runtime/runtime.hpp"

#include <csignal>

#include <sys/resource.h>
#if defined(__GLIBC__)
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#endif
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <thread>

#include "mmfusion/base/errors.hpp"

namespace mmfusion {

torch::Device resolve_device(const std::string& spec) {
  if (spec == "cpu") return torch::kCPU;
  const bool have_cuda = torch::cuda::is_available();
  if (spec == "auto")
    return have_cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (!have_cuda)
    throw ConfigError("device: \"" + spec +
                      "\" requested but no CUDA device is available (this LibTorch build or "
                      "machine has none); use \"cpu\" or \"auto\"");
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  const int64_t index = spec == "cuda" ? 0 : std::stoll(spec.substr(5));
  if (index >= count)
    throw ConfigError("device: \"" + spec + "\" requested but this machine has " +
                      std::to_string(count) +
                      " CUDA device(s) (cuda:0 to cuda:" + std::to_string(count - 1) + ")");
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

void apply_tf32(bool allow) {
  at::globalContext().setAllowTF32CuBLAS(allow);
  at::globalContext().setAllowTF32CuDNN(allow);
}

int64_t apply_threads(int64_t threads) {
  // LibTorch counts physical cores and may start below what the machine offers; 0 takes
  // the cores that other processes leave free now (cpu_load.hpp).
  const int64_t n = threads > 0 ? threads : free_cores(available_cores());
  torch::set_num_threads(static_cast<int>(n));
  return n;
}

void keep_freed_memory() {
#if defined(__GLIBC__)
  mallopt(M_MMAP_THRESHOLD, 256 << 20);
  mallopt(M_TRIM_THRESHOLD, 512 << 20);
#endif
}

MemoryUsage memory_usage() {
  MemoryUsage m;
  if (std::FILE* f = std::fopen("/proc/self/statm", "r")) {
    long pages = 0, resident = 0;
    if (std::fscanf(f, "%ld %ld", &pages, &resident) == 2)
      m.rss_mb = resident * (sysconf(_SC_PAGESIZE) / 1048576.0);
    std::fclose(f);
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  m.peak_rss_mb = usage.ru_maxrss / 1024.0;  // Linux reports KiB
  return m;
}

MachineInfo machine_info() {
  MachineInfo m;
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; m.cpu.empty() && std::getline(cpuinfo, line);)
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      m.cpu = line.substr(line.find(':') + 1);
      m.cpu.erase(0, m.cpu.find_first_not_of(" \t"));
    }
  if (m.cpu.empty()) m.cpu = "unknown";
  m.cores = available_cores();
  // The loaded libraries whose file name says BLAS, resolved through their links.
  std::string blas;
  dl_iterate_phdr(
      [](struct dl_phdr_info* info, size_t, void* data) {
        const std::string name = info->dlpi_name ? info->dlpi_name : "";
        const std::string file = name.substr(name.rfind('/') + 1);
        if (file.find("blas") == std::string::npos) return 0;
        char resolved[4096];
        std::string& out = *static_cast<std::string*>(data);
        out += (out.empty() ? "" : ", ") +
               std::string(::realpath(name.c_str(), resolved) ? resolved : name.c_str());
        return 0;
      },
      &blas);
  using Config = char* (*)();
  if (auto* config = reinterpret_cast<Config>(::dlsym(RTLD_DEFAULT, "openblas_get_config")))
    if (const char* text = config()) blas += std::string(blas.empty() ? "" : " (") + text + (blas.empty() ? "" : ")");
  m.blas = blas.empty() ? "none loaded (LibTorch's own kernels)" : blas;
  m.torch = std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
            std::to_string(TORCH_VERSION_PATCH);
  return m;
}

std::string env_string(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? std::string(v) : fallback;
}

int env_int(const char* name, int fallback) {
  const std::string v = env_string(name);
  if (v.empty()) return fallback;
  try {
    size_t used = 0;
    const int x = std::stoi(v, &used);
    if (used != v.size() || x < 0) throw std::invalid_argument(v);
    return x;
  } catch (const std::exception&) {
    throw ConfigError(std::string(name) + ": expected a non-negative integer, got \"" + v + "\"");
  }
}

int local_rank() { return env_int("LOCAL_RANK", 0); }

int processes_on_this_machine() {
  return std::max(1, env_int("LOCAL_WORLD_SIZE", env_int("WORLD_SIZE", 1)));
}

namespace {
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int signal) {
  g_stop_signal.store(signal);
  std::signal(signal, SIG_DFL);
}
}  // namespace

std::atomic<int>& stop_signal() { return g_stop_signal; }

StopSignals::StopSignals() {
  g_stop_signal.store(0);
  previous_int_ = std::signal(SIGINT, on_stop_signal);
  previous_term_ = std::signal(SIGTERM, on_stop_signal);
}

StopSignals::~StopSignals() {
  std::signal(SIGINT, previous_int_);
  std::signal(SIGTERM, previous_term_);
}

}  // namespace mmfusion
