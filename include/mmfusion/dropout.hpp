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

// The mask itself, for code that applies dropout without autograd (lmf_step.hpp): element
// i of a dropout call is kept iff dropout_keep(seed, i, dropout_threshold(p)), where the
// call's seed is draw_dropout_seed(). fast_dropout draws one seed per call, so the same
// generator state gives the same masks on both paths.
uint64_t draw_dropout_seed();
inline uint64_t dropout_threshold(double p) { return static_cast<uint64_t>(p * 4294967296.0); }
inline bool dropout_keep(uint64_t seed, uint64_t index, uint64_t threshold) {
  uint64_t z = seed + index + 0x9E3779B97F4A7C15ULL;  // splitmix64(seed + index)
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return ((z ^ (z >> 31)) >> 32) >= threshold;  // keep when the top 32 bits >= p * 2^32
}

}  // namespace mmfusion
