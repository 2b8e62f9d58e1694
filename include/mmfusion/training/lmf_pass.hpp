#pragma once
// LMF's forward and backward written out by hand, for CPU float32 parameters
// (derivation in docs/performance.md). Every matrix product is one BLAS call into buffers
// kept between calls; everything else (biases, ReLU, dropout, the product over
// modalities, the rank-weighted sum, the loss and their derivatives) is a plain loop
// (simd.hpp) that writes its result once, with no autograd graph. It works from the
// model's description (LMFDescription), not from the module, and implements exactly one
// structure: encoders of Linear -> ReLU -> dropout layers, the low-rank fusion with
// learned or summed rank weights, and an optional linear head. unsupported() says when a
// description is anything else; step.hpp then runs autograd instead.
// tests/test_lmf_pass.cpp compares it with autograd of LMFImpl::forward.
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/training/losses.hpp"
#include "mmfusion/models/models.hpp"

namespace mmfusion {

class LMFPass {
 public:
  // "" when the pass implements this description exactly (structure, and contiguous CPU
  // float32 tensors); otherwise what it does not implement.
  static std::string unsupported(const LMFDescription& description);
  // Inputs it can read directly: CPU float32, contiguous.
  static bool accepts(const std::vector<torch::Tensor>& inputs);

  // Holds the description's tensor handles (it follows them if their storage is
  // replaced); the model must outlive it. `loss` is the training loss.
  LMFPass(LMFDescription description, const LossSpec& loss);
  ~LMFPass();

  // Adds the gradients of weight * loss(model(inputs), target) to the parameters' .grad
  // and returns that weighted loss. Dropout is applied when `training`.
  double train_step(const std::vector<torch::Tensor>& inputs, const torch::Tensor& target,
                    double weight, bool training);

  // The model's output without dropout, as a new tensor. Thread-safe.
  torch::Tensor infer(const std::vector<torch::Tensor>& inputs);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mmfusion
