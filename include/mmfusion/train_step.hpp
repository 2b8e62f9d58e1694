#pragma once
// The forward and backward pass of one training step, shared by the trainer and the
// benchmark so that what `mmfusion bench` times is what training runs.
//
// For LMF on the CPU in float32 (and train.fused_step, the default) the whole model's
// forward and backward are written out by hand (src/train_step.cpp, derivation in
// docs/performance.md): every matrix product is one BLAS call into buffers reused from
// step to step, and everything else (biases, ReLU, dropout, the product over modalities,
// the rank-weighted sum, the loss and their derivatives) is a plain loop that writes its
// result once, with no autograd graph. It computes the same function and the same
// gradients as the autograd path; the tests compare the two. Any other model, device or
// dtype uses LibTorch's autograd.
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/config.hpp"
#include "mmfusion/models.hpp"

namespace mmfusion {

class FusedLMFStep;

class TrainStep {
 public:
  // Build it after the optimizer: a fused optimizer moves the parameters into its buffer.
  TrainStep(ModelPtr model, const TrainConfig& train);
  ~TrainStep();
  TrainStep(const TrainStep&) = delete;
  TrainStep& operator=(const TrainStep&) = delete;

  // Adds the gradients of weight * loss(model(inputs), target) to the parameters' .grad
  // (as loss.backward() would) and returns that weighted loss. Dropout follows the
  // model's train/eval mode and draws from LibTorch's default generator.
  double forward_backward(const std::vector<torch::Tensor>& inputs, const torch::Tensor& target,
                          double weight = 1.0);

  // Whether the hand-written LMF pass is in use (it may still fall back to autograd for
  // inputs that are not CPU float32).
  bool fused() const { return fused_ != nullptr; }

 private:
  ModelPtr model_;
  TrainConfig train_;
  std::unique_ptr<FusedLMFStep> fused_;
};

}  // namespace mmfusion
