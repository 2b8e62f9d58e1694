#include "mmfusion/models/dropout.hpp"

#include "mmfusion/base/random.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

namespace mmfusion {
namespace {

constexpr int64_t kGrain = 16384;  // elements per parallel task

// The mask, already scaled: 1 / (1 - p) where kept, 0 where dropped.
torch::Tensor scaled_mask(const torch::Tensor& like, double p) {
  auto mask = torch::empty(like.sizes(), like.options().requires_grad(false));
  const uint64_t seed = draw_dropout_seed();
  const uint64_t threshold = dropout_threshold(p);
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  float* out = mask.data_ptr<float>();
  at::parallel_for(0, mask.numel(), kGrain, [&](int64_t begin, int64_t end) {
    fill_dropout_mask(out, begin, end, seed, threshold, scale);
  });
  return mask;
}

struct DropoutFunction : public torch::autograd::Function<DropoutFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               double p) {
    const auto mask = scaled_mask(x, p);
    ctx->save_for_backward({mask});
    return x * mask;
  }
  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grad) {
    return {grad[0] * ctx->get_saved_variables()[0], torch::Tensor()};
  }
};

}  // namespace

void fill_dropout_mask(float* mask, int64_t begin, int64_t end, uint64_t seed, uint64_t threshold,
                       float scale) {
  auto hash = [seed](int64_t i) { return splitmix64(seed + (static_cast<uint64_t>(i) >> 1)); };
  // Branch-free: a kept element costs no more than a dropped one.
  auto decide = [&](uint64_t bits) { return scale * static_cast<float>(bits >= threshold); };
  int64_t i = begin;
  if (i < end && (i & 1)) mask[i] = decide(hash(i) & 0xFFFFFFFFULL), ++i;
  for (; i + 1 < end; i += 2) {
    const uint64_t h = hash(i);
    mask[i] = decide(h >> 32);
    mask[i + 1] = decide(h & 0xFFFFFFFFULL);
  }
  if (i < end) mask[i] = decide(hash(i) >> 32);
}

uint64_t draw_dropout_seed() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

torch::Tensor fast_dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0) return x;
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat32) return torch::dropout(x, p, true);
  if (p >= 1) return torch::zeros_like(x);
  return DropoutFunction::apply(x.contiguous(), p);
}

}  // namespace mmfusion
