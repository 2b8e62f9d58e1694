#include "mmfusion/dropout.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

namespace mmfusion {
namespace {

constexpr int64_t kGrain = 16384;  // elements per parallel task

inline uint64_t splitmix64(uint64_t z) {
  z += 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

uint64_t draw_seed() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  return gen.get<at::CPUGeneratorImpl>()->random64();
}

// The mask, already scaled: 1 / (1 - p) where kept, 0 where dropped.
torch::Tensor scaled_mask(const torch::Tensor& like, double p) {
  auto mask = torch::empty(like.sizes(), like.options().requires_grad(false));
  const uint64_t seed = draw_seed();
  // Keep when the top 32 bits of the hash are >= p * 2^32.
  const uint64_t threshold = static_cast<uint64_t>(p * 4294967296.0);
  const float scale = static_cast<float>(1.0 / (1.0 - p));
  float* out = mask.data_ptr<float>();
  at::parallel_for(0, mask.numel(), kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i)
      out[i] = (splitmix64(seed + static_cast<uint64_t>(i)) >> 32) >= threshold ? scale : 0.0f;
  });
  return mask;
}

struct DropoutFunction : public torch::autograd::Function<DropoutFunction> {
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, double p) {
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

torch::Tensor fast_dropout(const torch::Tensor& x, double p, bool training) {
  if (!training || p <= 0) return x;
  if (!x.device().is_cpu() || x.scalar_type() != torch::kFloat32) return torch::dropout(x, p, true);
  if (p >= 1) return torch::zeros_like(x);
  return DropoutFunction::apply(x.contiguous(), p);
}

}  // namespace mmfusion
