#pragma once
// Dropout whose CPU mask comes from a counter-based generator (splitmix64 of a seed drawn
// from LibTorch's default CPU generator, plus the element index): one cheap hash per
// element, computed in parallel, the same mask whatever the thread count. LibTorch's CPU
// dropout draws from a serial Mersenne twister and cost about a quarter of a training
// step at batch 2048. On other devices it is torch::dropout.
#include <torch/torch.h>

namespace mmfusion {

// Inverted dropout: in training, each element is kept with probability 1 - p and scaled
// by 1 / (1 - p); outside training (or p = 0) the input is returned unchanged.
torch::Tensor fast_dropout(const torch::Tensor& x, double p, bool training);

}  // namespace mmfusion
