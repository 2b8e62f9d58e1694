#pragma once
// Data-parallel training on PyTorch's c10d (docs/distributed.md): the process group is
// joined through a TCPStore from the variables torchrun sets (RANK, WORLD_SIZE,
// LOCAL_RANK, MASTER_ADDR, MASTER_PORT). Without them, or with WORLD_SIZE=1, training
// is single-process and none of this is used.
#include <chrono>
#include <memory>
#include <string>
#include <utility>

#include <torch/torch.h>

#include "mmfusion/config/config.hpp"

namespace mmfusion {

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  virtual std::string backend() const = 0;
  virtual void allreduce_sum(torch::Tensor& t) = 0;  // in place
  virtual void allreduce_max(torch::Tensor& t) = 0;  // in place
  virtual void broadcast(torch::Tensor& t, int root = 0) = 0;
  // Rank 0 publishes a string; every rank returns it.
  virtual std::string share(const std::string& key, const std::string& value_on_rank0) = 0;
};

// nullptr when the environment asks for one process. Throws ConfigError for malformed
// variables and Error when the group cannot be joined within the timeout.
std::shared_ptr<Communicator> join_process_group(const DistributedConfig& settings,
                                                 const torch::Device& device);

// Rows [begin, end) of a global batch [b0, b1) that `rank` of `world` handles:
// contiguous, disjoint shards that together cover the batch.
std::pair<int64_t, int64_t> shard_of(int64_t b0, int64_t b1, int rank, int world);

// Whether this build has c10d's Gloo backend: a build against PyTorch's wheels has no
// Gloo headers, and (NCCL not being wired yet) no distributed backend at all.
bool gloo_available();

}  // namespace mmfusion
