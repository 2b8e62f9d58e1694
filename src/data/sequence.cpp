#include "mmfusion/data/sequence.hpp"

#include <algorithm>
#include <cstring>

#include "mmfusion/base/parallel.hpp"

namespace mmfusion::sequence {
namespace {
// Index [N, T] of the step that lands at each position when every row is rotated by its
// shift (int64 [N]): position t takes step (t + shift) mod T.
torch::Tensor rotated(const torch::Tensor& steps, const torch::Tensor& shift) {
  const int64_t T = steps.size(1);
  if (T == 0) return steps;
  const auto t = torch::arange(T, shift.options()).unsqueeze(0);
  const auto index = (t + shift.unsqueeze(1)).remainder(T);
  return steps.gather(1, index.unsqueeze(2).expand({-1, -1, steps.size(2)}));
}
}  // namespace

torch::Tensor pack(const torch::Tensor& steps, const torch::Tensor& lengths) {
  TORCH_CHECK(steps.dim() == 3, "sequence::pack: steps [N, T, D]");
  auto out = torch::empty({steps.size(0), 1 + steps.size(1) * steps.size(2)},
                          steps.options().dtype(torch::kFloat32));
  pack_into(out, steps, lengths);
  return out;
}

void pack_into(const torch::Tensor& out, const torch::Tensor& steps, const torch::Tensor& lengths) {
  TORCH_CHECK(steps.dim() == 3 && lengths.dim() == 1 && lengths.size(0) == steps.size(0),
              "sequence::pack: steps [N, T, D] and lengths [N]");
  const int64_t N = steps.size(0), T = steps.size(1), D = steps.size(2);
  TORCH_CHECK(out.dim() == 2 && out.size(0) == N && out.size(1) == 1 + T * D &&
                  out.scalar_type() == torch::kFloat32 && out.stride(1) == 1,
              "sequence::pack: out [N, 1 + T * D], float32 rows");
  const auto len = lengths.to(torch::kInt64).to(steps.device());
  if (!steps.device().is_cpu()) {
    const auto valid = (torch::arange(T, len.options()).unsqueeze(0) < len.unsqueeze(1))
                           .to(torch::kFloat32)
                           .unsqueeze(2);
    out.select(1, 0).copy_(len);
    out.slice(1, 1).view({N, T, D}).copy_(steps.to(torch::kFloat32) * valid);
    return;
  }
  // One pass: each row's length, its valid steps copied, its padding zeroed.
  const torch::Tensor src = steps.to(torch::kFloat32).contiguous();
  const torch::Tensor l = len.contiguous();
  const float* in = src.data_ptr<float>();
  const int64_t* n_valid = l.data_ptr<int64_t>();
  float* dst = out.data_ptr<float>();
  const int64_t stride = out.stride(0), row = T * D;
  parallel_chunks(N, std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(1, row)),
                  at::get_num_threads(), [&](int64_t begin, int64_t end) {
                    for (int64_t i = begin; i < end; ++i) {
                      const int64_t valid = std::clamp<int64_t>(n_valid[i], 0, T) * D;
                      float* o = dst + i * stride;
                      o[0] = float(n_valid[i]);
                      std::memcpy(o + 1, in + i * row, size_t(valid) * sizeof(float));
                      std::memset(o + 1 + valid, 0, size_t(row - valid) * sizeof(float));
                    }
                  });
}

int64_t steps(const torch::Tensor& rows, int64_t dim) {
  TORCH_CHECK(rows.dim() == 2 && rows.size(1) >= 1 && (rows.size(1) - 1) % dim == 0,
              "sequence rows of ", dim, " features per step expected, got ", rows.sizes());
  return (rows.size(1) - 1) / dim;
}

torch::Tensor lengths(const torch::Tensor& rows) { return rows.select(1, 0).to(torch::kInt64); }

torch::Tensor values(const torch::Tensor& rows, int64_t dim) {
  return rows.slice(1, 1).view({rows.size(0), steps(rows, dim), dim});
}

torch::Tensor mask(const torch::Tensor& rows, int64_t dim) {
  const int64_t T = steps(rows, dim);
  return (torch::arange(T, rows.options()).unsqueeze(0) < rows.select(1, 0).unsqueeze(1))
      .to(rows.scalar_type());
}

torch::Tensor masked_mean(const torch::Tensor& rows, int64_t dim) {
  return values(rows, dim).sum(1) / rows.select(1, 0).clamp_min(1).unsqueeze(1);
}

torch::Tensor front_to_back(const torch::Tensor& steps, const torch::Tensor& lengths) {
  // A row of length L keeps its steps at T - L .. T - 1: rotate left by T - L.
  return rotated(steps, steps.size(1) - lengths);
}

torch::Tensor back_to_front(const torch::Tensor& steps, const torch::Tensor& lengths) {
  // Rotate right by T - L, i.e. left by L.
  return rotated(steps, lengths.clone());
}

torch::Tensor with_steps(const torch::Tensor& rows, int64_t dim, int64_t T) {
  const int64_t now = steps(rows, dim);
  if (now == T) return rows;
  const int64_t N = rows.size(0);
  auto out = torch::zeros({N, 1 + T * dim}, rows.options());
  const int64_t kept = std::min(now, T);
  out.select(1, 0).copy_(rows.select(1, 0).clamp_max(double(T)));
  out.slice(1, 1).view({N, T, dim}).slice(1, 0, kept).copy_(values(rows, dim).slice(1, 0, kept));
  return out;
}

}  // namespace mmfusion::sequence
