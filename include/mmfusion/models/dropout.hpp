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

// The mask itself, for code that applies dropout without autograd (lmf_pass.cpp):
// mask[i] for the elements i in [begin, end) of one dropout call: scale where kept, 0
// where dropped. Element i is decided by 32 bits of splitmix64(seed + i / 2) (the high
// half for even i, the low half for odd i): kept when they are >= p * 2^32. The call's
// seed is draw_dropout_seed(); fast_dropout draws one per call, so the same generator
// state gives the same masks on both paths, whatever the split into parallel chunks.
uint64_t draw_dropout_seed();
inline uint64_t dropout_threshold(double p) { return static_cast<uint64_t>(p * 4294967296.0); }
void fill_dropout_mask(float* mask, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold,
                       float scale);

}  // namespace mmfusion
