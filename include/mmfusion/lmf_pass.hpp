#pragma once
// LMF's forward and backward written out by hand, for CPU float32 parameters
// (derivation in docs/performance.md). Every matrix product is one BLAS call into buffers
// kept between calls; everything else (biases, ReLU, dropout, the product over
// modalities, the rank-weighted sum, the loss and their derivatives) is a plain loop
// (kernels.hpp) that writes its result once, with no autograd graph. It computes the same
// function and gradients as autograd of LMFImpl::forward; tests/test_train_step.cpp
// compares the two.
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/config.hpp"
#include "mmfusion/models.hpp"

namespace mmfusion {

class LMFPass {
 public:
  // Holds references to the model's parameters (it follows them if their storage is
  // replaced); the model must outlive it. train.loss and train.huber_delta pick the loss.
  LMFPass(LMFImpl& model, const TrainConfig& train);
  ~LMFPass();

  // An LMF whose parameters and buffers are CPU float32.
  static bool supports(const torch::nn::Module& model);
  // Inputs it can read directly: CPU float32, contiguous.
  static bool accepts(const std::vector<torch::Tensor>& inputs);

  // Adds the gradients of weight * loss(model(inputs), target) to the parameters' .grad
  // and returns that weighted loss. Dropout follows the model's train/eval mode.
  double train_step(const std::vector<torch::Tensor>& inputs, const torch::Tensor& target, double weight);

  // The model's output in eval mode (no dropout), as a new tensor. Thread-safe.
  torch::Tensor infer(const std::vector<torch::Tensor>& inputs);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mmfusion
