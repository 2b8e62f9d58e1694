#include "mmfusion/runtime/distributed.hpp"

#include <cstdlib>
#include <thread>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>
#ifdef MMFUSION_HAVE_GLOO
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#endif
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
// NCCL: LibTorch 2.x made ProcessGroupNCCL a c10d::Backend behind a ProcessGroup; until
// that is wired here (MMFUSION_HAVE_NCCL), builds offer Gloo alone.
#ifdef MMFUSION_HAVE_NCCL
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>
#endif

#include "mmfusion/base/errors.hpp"
#include "mmfusion/runtime/runtime.hpp"

namespace mmfusion {
namespace {

class C10dCommunicator : public Communicator {
 public:
  C10dCommunicator(c10::intrusive_ptr<c10d::Store> store,
                   c10::intrusive_ptr<c10d::ProcessGroup> group, int rank, int world,
                   std::string backend, std::chrono::milliseconds timeout)
      : store_(std::move(store)),
        group_(std::move(group)),
        rank_(rank),
        world_(world),
        backend_(std::move(backend)),
        timeout_(timeout) {}

  int rank() const override { return rank_; }
  int world_size() const override { return world_; }
  std::string backend() const override { return backend_; }

  void allreduce_sum(torch::Tensor& t) override { allreduce(t, c10d::ReduceOp::SUM); }
  void allreduce_max(torch::Tensor& t) override { allreduce(t, c10d::ReduceOp::MAX); }

  void broadcast(torch::Tensor& t, int root) override {
    std::vector<torch::Tensor> tensors{t};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    wait(group_->broadcast(tensors, options), "broadcast");
  }

  std::string share(const std::string& key, const std::string& value) override {
    const std::string full = "mmfusion/" + key;
    if (rank_ == 0) store_->set(full, std::vector<uint8_t>(value.begin(), value.end()));
    const auto bytes = store_->get(full);  // waits for rank 0, up to the store's timeout
    return std::string(bytes.begin(), bytes.end());
  }

 private:
  void allreduce(torch::Tensor& t, c10d::ReduceOp op) {
    std::vector<torch::Tensor> tensors{t};
    c10d::AllreduceOptions options;
    options.reduceOp = op;
    wait(group_->allreduce(tensors, options), "all-reduce");
  }

  void wait(const c10::intrusive_ptr<c10d::Work>& work, const char* what) {
    try {
      work->wait(timeout_);
    } catch (const std::exception& e) {
      std::string reason = e.what();
      reason = reason.substr(0, reason.find('\n'));
      throw Error("rank " + std::to_string(rank_) + ": " + what +
                  " with the other ranks failed (a peer " +
                  "exited or stopped answering within distributed.timeout_s = " +
                  std::to_string(timeout_.count() / 1000) + " s): " + reason);
    }
  }

  c10::intrusive_ptr<c10d::Store> store_;
  c10::intrusive_ptr<c10d::ProcessGroup> group_;
  int rank_, world_;
  std::string backend_;
  std::chrono::milliseconds timeout_;
};

}  // namespace

std::pair<int64_t, int64_t> shard_of(int64_t b0, int64_t b1, int rank, int world) {
  const int64_t n = b1 - b0;
  return {b0 + n * rank / world, b0 + n * (rank + 1) / world};
}

// A build against PyTorch's wheels: no Gloo headers, and NCCL not wired.
constexpr const char* kNoBackend =
    "distributed: this build has no backend (Gloo's headers, libgloo-dev, were missing when it was built, and "
    "NCCL is not wired for LibTorch 2.x yet; docs/distributed.md)";

bool gloo_available() {
#ifdef MMFUSION_HAVE_GLOO
  return true;
#else
  return false;
#endif
}

namespace {

// The backend distributed.backend asks for on `device`, refused where this build has none.
Backend choose_backend(Backend configured, const torch::Device& device) {
  Backend backend = configured;
  if (backend == Backend::Auto) backend = device.is_cuda() ? Backend::NCCL : Backend::Gloo;
#ifndef MMFUSION_HAVE_NCCL
  if (backend == Backend::NCCL) {
    if (configured == Backend::NCCL)
      throw ConfigError(gloo_available()
                            ? "distributed.backend: \"nccl\" is not wired for LibTorch 2.x yet "
                              "(docs/distributed.md); use gloo"
                            : kNoBackend);
    backend = Backend::Gloo;
  }
#endif
  if (backend == Backend::Gloo && !gloo_available()) throw ConfigError(kNoBackend);
  return backend;
}

// The TCP store the ranks meet at (rank 0 serves it, unless torchrun's agent does).
c10::intrusive_ptr<c10d::Store> rendezvous_store(const std::string& addr, int port, int rank,
                                                 int world, std::chrono::milliseconds timeout) {
  try {
    c10d::TCPStoreOptions options;
    options.port = static_cast<uint16_t>(port);
    // Under torchrun the launcher already serves the store: every rank is a client.
    options.isServer = rank == 0 && env_string("TORCHELASTIC_USE_AGENT_STORE") != "True";
    options.numWorkers = world;
    options.waitWorkers = false;
    options.timeout = timeout;
    return c10::make_intrusive<c10d::TCPStore>(addr, options);
  } catch (const std::exception& e) {
    std::string reason = e.what();
    throw Error("rank " + std::to_string(rank) + ": cannot reach the rendezvous store at " + addr +
                ":" + std::to_string(port) + ": " + reason.substr(0, reason.find('\n')));
  }
}

}  // namespace

std::shared_ptr<Communicator> join_process_group(const DistributedConfig& settings,
                                                 const torch::Device& device) {
  const int world = env_int("WORLD_SIZE", 1);
  if (world <= 1) return nullptr;
  const int rank = env_int("RANK", -1);
  if (rank < 0 || rank >= world)
    throw ConfigError("RANK: expected an integer in [0, " + std::to_string(world) +
                      ") with WORLD_SIZE=" + std::to_string(world) + ", got \"" +
                      env_string("RANK") + "\"");
  const std::string addr = env_string("MASTER_ADDR", "127.0.0.1");
  const int port = env_int("MASTER_PORT", 29500);
  if (port == 0 || port > 65535)
    throw ConfigError("MASTER_PORT: expected a port number, got " + std::to_string(port));
  const auto timeout = std::chrono::milliseconds(static_cast<int64_t>(settings.timeout_s * 1000));

  const Backend backend = choose_backend(settings.backend, device);
  const c10::intrusive_ptr<c10d::Store> store = rendezvous_store(addr, port, rank, world, timeout);

  c10::intrusive_ptr<c10d::ProcessGroup> group;
  const auto joining = std::chrono::steady_clock::now();
  try {
#ifdef MMFUSION_HAVE_NCCL
    if (backend == Backend::NCCL) {
      auto options = c10d::ProcessGroupNCCL::Options::create();
      options->timeout = timeout;
      group = c10::make_intrusive<c10d::ProcessGroupNCCL>(store, rank, world, options);
    }
#endif
#ifdef MMFUSION_HAVE_GLOO
    if (!group) {
      auto options = c10d::ProcessGroupGloo::Options::create(timeout);
      const std::string iface = env_string("GLOO_SOCKET_IFNAME");
      if (!iface.empty())
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForInterface(iface));
      else if (addr == "127.0.0.1" || addr == "localhost")
        options->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname("127.0.0.1"));
      else
        options->devices.push_back(c10d::ProcessGroupGloo::createDefaultDevice());
      options->threads = 2;
      group = c10::make_intrusive<c10d::ProcessGroupGloo>(store, rank, world, options);
    }
#endif
  } catch (const std::exception& e) {
    // Say what happened and when: Gloo's own connect timeouts can end the wait before
    // distributed.timeout_s, so the configured limit alone would mislead.
    std::string reason = e.what();
    const double waited =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - joining).count();
    char when[64];
    std::snprintf(when, sizeof when, "%.0f s", waited);
    throw Error("rank " + std::to_string(rank) + ": the " + to_string(backend) +
                " process group of " + std::to_string(world) + " did not form: gave up after " +
                when + " (distributed.timeout_s = " + std::to_string(timeout.count() / 1000) +
                ") because a peer never joined or died while joining (" +
                reason.substr(0, reason.find('\n')) + ")");
  }
  return std::make_shared<C10dCommunicator>(store, group, rank, world, to_string(backend), timeout);
}

}  // namespace mmfusion
