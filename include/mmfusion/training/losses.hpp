#pragma once
// Every training loss, written once for each of the two ways a step runs: as a LibTorch
// expression (autograd differentiates it) and as a plain loop that also writes the
// gradient (the hand-written LMF pass). Both sit side by side in losses.cpp, in switches
// over Loss with no default. Each is the mean over the batch (cross-entropy: over rows;
// the others: over every element).
#include <cstdint>

#include <torch/torch.h>

#include "mmfusion/config/config.hpp"

namespace mmfusion {

struct LossSpec {
  Loss kind = TrainConfig{}.loss;  // the config's defaults
  double huber_delta = TrainConfig{}.huber_delta;
  static LossSpec of(const TrainConfig& train) { return {train.loss, train.huber_delta}; }
};

// The loss of `prediction` against `target` (cross-entropy: logits [B, K] and int64
// labels [B]; the others: tensors of the same shape), as a differentiable scalar.
torch::Tensor loss_value(const LossSpec& loss, const torch::Tensor& prediction,
                         const torch::Tensor& target);

// The same loss of a contiguous float32 [batch, k] output against `target` (CPU), with
// weight * dloss/doutput written into `grad` ([batch, k]). Returns weight * loss. Checks
// the target's size and, for class labels, their range, before reading it.
double loss_and_gradient(const LossSpec& loss, const float* output, int64_t batch, int64_t k,
                         const torch::Tensor& target, double weight, float* grad);

}  // namespace mmfusion
