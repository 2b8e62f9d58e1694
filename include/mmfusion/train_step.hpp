#pragma once
// The forward and backward pass of one training step, shared by the trainer and the
// benchmark so that what `mmfusion bench` times is what training runs.
//
// For LMF on the CPU in float32 (and train.fused_step, the default) the pass is the
// hand-written one of lmf_pass.hpp; any other model, device or dtype uses LibTorch's
// autograd.
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/config.hpp"
#include "mmfusion/models.hpp"

namespace mmfusion {

class LMFPass;

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
  std::unique_ptr<LMFPass> fused_;
};

}  // namespace mmfusion
