#pragma once
// A one-layer LSTM over rows of different lengths, with its backward pass written out
// (docs/sequences.md, "Speed"): LibTorch's LSTM on packed sequences runs one small input
// projection and about ten autograd nodes per step; this one projects every step's input
// in one matrix product, runs each step's gates in one loop, and records one autograd node
// for the whole sequence. Same equations and gate order (i, f, g, o) as torch::nn::LSTM,
// whose parameters it takes, so checkpoints are the same; results agree to rounding.
#include <cstdint>
#include <utility>

#include <torch/torch.h>

namespace mmfusion {

// x [B, T, D] float32 on the CPU with each row's valid steps first; lengths int64 [B] in
// [0, T]. Returns the outputs [B, T, H] (h_t at valid steps, zero in the padding) and
// each row's final state h [B, H] at its own length (zero for an empty row). Gradients
// flow to x and the four parameters.
std::pair<torch::Tensor, torch::Tensor> lstm_forward(const torch::Tensor& x,
                                                     const torch::Tensor& lengths,
                                                     const torch::Tensor& w_ih,
                                                     const torch::Tensor& w_hh,
                                                     const torch::Tensor& b_ih,
                                                     const torch::Tensor& b_hh);

}  // namespace mmfusion
