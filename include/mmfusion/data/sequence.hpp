#pragma once
// A sequence modality's rows in memory: in every Dataset and every batch a model sees,
// one float32 tensor [N, 1 + T * D] whose row i is [len_i, step_1 (D values), ...,
// step_T], its len_i valid steps first and zeros after them. Every operation on rows
// (gathers, splits, shuffles, explain's swaps, data-parallel shards, copies to a device)
// so keeps a row's steps and its length together; only this module and the encoders that
// read sequences (models.hpp) look inside a row. Files hold [N, T, D] and <name>_lengths
// (data_file.hpp), padded at the back or the front (ModalityConfig::padding).
#include <cstdint>

#include <torch/torch.h>

namespace mmfusion::sequence {

// Rows from steps [N, T, D] whose valid steps come first (back padding) and int64
// lengths [N] in [0, T]: the steps past a row's length are set to zero.
torch::Tensor pack(const torch::Tensor& steps, const torch::Tensor& lengths);
// The same into `out` [N, 1 + T * D] (float32, rows contiguous; a slice of a larger tensor
// of such rows will do).
void pack_into(const torch::Tensor& out, const torch::Tensor& steps, const torch::Tensor& lengths);
// The number of steps T of rows of D features per step.
int64_t steps(const torch::Tensor& rows, int64_t dim);
// Each row's valid steps, int64 [N].
torch::Tensor lengths(const torch::Tensor& rows);
// The steps [N, T, D], a view of the rows.
torch::Tensor values(const torch::Tensor& rows, int64_t dim);
// 1 at each row's valid steps, 0 at its padding: float [N, T] on the rows' device.
torch::Tensor mask(const torch::Tensor& rows, int64_t dim);

// Each row's mean over its valid steps [N, D] (zeros for an empty row): the padding is
// zero, so this is the sum over all steps divided by the length.
torch::Tensor masked_mean(const torch::Tensor& rows, int64_t dim);

// Front padding (a row's valid steps last, as MultiBench stores text) to back padding and
// back again: steps [N, T, D], lengths int64 [N].
torch::Tensor front_to_back(const torch::Tensor& steps, const torch::Tensor& lengths);
torch::Tensor back_to_front(const torch::Tensor& steps, const torch::Tensor& lengths);

// The rows with T steps: longer rows keep their first `steps` valid steps, shorter ones
// gain padding (zeros).
torch::Tensor with_steps(const torch::Tensor& rows, int64_t dim, int64_t steps);

}  // namespace mmfusion::sequence
