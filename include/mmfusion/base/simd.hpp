#pragma once
// Element-wise loops (SIMD) of the hand-written LMF pass and the flat Adam optimizer. They
// live in their own file, compiled without LibTorch's headers and with
// -fno-trapping-math -fno-math-errno, so that GCC vectorises their comparisons and square
// roots; on x86-64 each also has an AVX2 copy, chosen when the program loads.
#include <cstdint>

namespace mmfusion::simd {

// dst[i] += src[i]
void add_to(float* dst, const float* src, int64_t n);
// dst[i] += a * src[i]
void add_scaled(float* dst, float a, const float* src, int64_t n);
// dst[i] *= src[i]
void mul_by(float* dst, const float* src, int64_t n);

// One row of an encoder layer: h = relu(z + bias) * mask in place of z, and mask becomes
// dh/dz (the mask where z + bias > 0, else 0).
void bias_relu_mask(float* h, float* mask, const float* bias, int64_t n);

// One Adam/AdamW update over n contiguous values, in torch::optim's order of operations:
// p *= shrink (AdamW's 1 - lr wd, else 1); g' = g + l2 p (Adam's weight decay, else 0);
// m = b1 m + (1 - b1) g'; v = b2 v + (1 - b2) g'^2; p += step_size m / (sqrt(v) / sqrt_bc2 + eps).
// c1 = 1 - b1 and c2 = 1 - b2 are passed rounded from double, as LibTorch rounds them.
void adam_update(float* p, const float* g, float* m, float* v, int64_t n, float b1, float c1,
                 float b2, float c2, float sqrt_bc2, float eps, float step_size, float l2,
                 float shrink);

}  // namespace mmfusion::simd
