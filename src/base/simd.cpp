#include "mmfusion/base/simd.hpp"

#include <cmath>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define MMFUSION_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define MMFUSION_CLONES
#endif

namespace mmfusion::simd {

MMFUSION_CLONES
void add_to(float* __restrict dst, const float* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += src[i];
}

MMFUSION_CLONES
void add_scaled(float* __restrict dst, float a, const float* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] += a * src[i];
}

MMFUSION_CLONES
void mul_by(float* __restrict dst, const float* __restrict src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] *= src[i];
}

MMFUSION_CLONES
void bias_relu_mask(float* __restrict h, float* __restrict mask, const float* __restrict bias,
                    int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    const float z = h[j] + bias[j];
    const float on = z > 0.0f ? 1.0f : 0.0f;
    h[j] = z * on * mask[j];
    mask[j] *= on;
  }
}

MMFUSION_CLONES
void adam_update(float* __restrict p, const float* __restrict g, float* __restrict m,
                 float* __restrict v, int64_t n, float b1, float c1, float b2, float c2,
                 float sqrt_bc2, float eps, float step_size, float l2, float shrink) {
  for (int64_t i = 0; i < n; ++i) {
    const float pi = p[i] * shrink;
    const float gi = g[i] + l2 * pi;
    const float mi = m[i] * b1 + c1 * gi;
    const float vi = v[i] * b2 + c2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = pi + step_size * (mi / (std::sqrt(vi) / sqrt_bc2 + eps));
  }
}

}  // namespace mmfusion::simd
