#pragma once
// Checkpoints: one file per save, written atomically with LibTorch's OutputArchive:
//   model      nested archive: parameters and buffers (Python: state_dict "model.<name>")
//   scaling    nested archive, when the config standardises: the statistics (scaling.hpp)
//   optimizer  nested archive: the optimizer's state
//   rng_shuffle, rng_cpu[, rng_cuda]  generator states, so a resumed run continues exactly
//   meta       JSON string: format, format_version, mmfusion_version, progress, config
//   digests    JSON string: a checksum of every other entry (format 3), checked on every
//              open, so that a damaged byte anywhere is an error naming the entry
// Python opens it with torch.jit.load(path) (docs/checkpoints.md).
#include <limits>
#include <string>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "mmfusion/config/config.hpp"
#include "mmfusion/models/models.hpp"
#include "mmfusion/data/scaling.hpp"

namespace mmfusion {

// 2: the scaling entry and data.standardize (version 1 files read as unscaled).
// 3: the digests entry (versions 1 and 2 have only the model's checksum, in meta).
inline constexpr int kCheckpointFormatVersion = 3;
inline constexpr const char* kCheckpointFormat = "mmfusion-checkpoint";

// Where training stands. Saved at every epoch end and on interruption.
struct TrainProgress {
  int64_t epoch = 0;        // completed epochs
  int64_t epoch_step = 0;   // steps done in the epoch in progress (0 at an epoch boundary)
  int64_t global_step = 0;  // optimizer steps since the start
  double best_val_loss = std::numeric_limits<double>::infinity();
  int64_t best_epoch = 0;
  int64_t bad_epochs = 0;     // epochs since the last improvement (early stopping)
  double epoch_loss_sum = 0;  // sum of per-sample losses in the epoch in progress
  int64_t epoch_samples = 0;  // samples seen in the epoch in progress
  double train_seconds = 0;   // time spent training so far
  bool stopped_early = false;
};

nlohmann::json to_json(const TrainProgress& p);
TrainProgress progress_from_json(const nlohmann::json& j);

struct RngStates {
  torch::Tensor shuffle;  // the shuffle generator at the start of the epoch in progress
  torch::Tensor cpu;      // LibTorch's default CPU generator (dropout, init)
  torch::Tensor cuda;     // the default CUDA generator of the training device, if any
};

// Captures the default generators (CPU, and CUDA when device is CUDA).
RngStates capture_default_rng(const torch::Device& device, torch::Tensor shuffle_state);
void restore_default_rng(const RngStates& states, const torch::Device& device);

void save_checkpoint(const std::string& path, const ExperimentConfig& config,
                     const TrainProgress& progress, torch::nn::Module& model,
                     const torch::optim::Optimizer* optimizer, const RngStates& rng,
                     const Scaling& scaling = Scaling());

// An opened checkpoint whose metadata has been checked. Tensors are mapped to `device`.
struct Checkpoint {
  std::string path;
  nlohmann::json meta;
  ExperimentConfig config;
  TrainProgress progress;
  Scaling scaling;  // what the model's inputs (and regression target) were scaled by
  torch::serialize::InputArchive archive;

  void load_model(torch::nn::Module& model);
  // The model of the checkpoint's config with its saved parameters, on `device`, in eval mode.
  ModelPtr build_model(const torch::Device& device);
  bool has_optimizer();
  void load_optimizer(torch::optim::Optimizer& optimizer);
  RngStates rng();
};

// Throws Error with a one-line reason for a missing, truncated, corrupt or foreign
// file, one whose entries do not match their checksums (naming the damaged one), or one
// written by a newer format version. Every tensor in it is checked to lie
// inside its storage (file_safety.hpp) before any value is read.
Checkpoint open_checkpoint(const std::string& path, const torch::Device& device = torch::kCPU);
// The same from the file's bytes; `path` names it in errors.
Checkpoint parse_checkpoint(const char* data, size_t size, const std::string& path,
                            const torch::Device& device = torch::kCPU);

}  // namespace mmfusion
