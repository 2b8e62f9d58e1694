#include "mmfusion/base/random.hpp"

#include <array>
#include <cmath>

namespace mmfusion {

uint64_t stream_key(uint64_t seed, uint64_t stream) {
  return mix64(splitmix64(seed) ^ (stream * 0xD1B54A32D192ED03ULL + 0x2545F4914F6CDD1DULL));
}

namespace {

constexpr int kLayers = 128;
constexpr double kR = 3.442619855899;       // where the tail begins
constexpr double kV = 9.91256303526217e-3;  // the area of each layer
constexpr double kScale = 2147483648.0;     // 2^31: the draws are signed 32-bit values

// The ziggurat's tables: k (acceptance bounds), w (value per unit draw), f (the density
// at each layer's edge), from the recursion x_{i-1} = sqrt(-2 log(v / x_i + f(x_i))).
struct Ziggurat {
  std::array<uint32_t, kLayers> k;
  std::array<double, kLayers> w, f;
  Ziggurat() {
    double x = kR, previous = kR;
    const double q = kV / std::exp(-0.5 * x * x);
    k[0] = static_cast<uint32_t>((x / q) * kScale);
    k[1] = 0;
    w[0] = q / kScale;
    w[kLayers - 1] = x / kScale;
    f[0] = 1.0;
    f[kLayers - 1] = std::exp(-0.5 * x * x);
    for (int i = kLayers - 2; i >= 1; --i) {
      x = std::sqrt(-2.0 * std::log(kV / x + std::exp(-0.5 * x * x)));
      k[i + 1] = static_cast<uint32_t>((x / previous) * kScale);
      previous = x;
      f[i] = std::exp(-0.5 * x * x);
      w[i] = x / kScale;
    }
  }
};
const Ziggurat& ziggurat() {
  static const Ziggurat z;
  return z;
}

}  // namespace

RowRandom::RowRandom(uint64_t key, uint64_t row) {
  const uint64_t z = key ^ mix64(row + 0x632BE59BD9B4E019ULL);
  for (uint64_t i = 0; i < 4; ++i) s_[i] = splitmix64(z, i + 1);
}

double RowRandom::uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

// The layer comes from the low 7 bits of a draw, the signed value from its high 32 bits.
double RowRandom::normal() {
  const auto& z = ziggurat();
  const uint64_t draw = next();
  const auto value = static_cast<int32_t>(draw >> 32);
  const int layer = static_cast<int>(draw & (kLayers - 1));
  const uint32_t magnitude =
      value < 0 ? 0u - static_cast<uint32_t>(value) : static_cast<uint32_t>(value);
  if (magnitude < z.k[layer]) return value * z.w[layer];
  return normal_tail_or_wedge(draw);
}

double RowRandom::normal_tail_or_wedge(uint64_t draw) {
  const auto& z = ziggurat();
  for (;;) {
    const auto value = static_cast<int32_t>(draw >> 32);
    const int layer = static_cast<int>(draw & (kLayers - 1));
    const double x = value * z.w[layer];
    if (layer == 0) {  // the tail beyond kR, by Marsaglia's method
      double t, y;
      do {
        t = -std::log1p(-uniform()) / kR;
        y = -std::log1p(-uniform());
      } while (y + y < t * t);
      return value > 0 ? kR + t : -kR - t;
    }
    if (z.f[layer] + uniform() * (z.f[layer - 1] - z.f[layer]) < std::exp(-0.5 * x * x)) return x;
    draw = next();
    const auto v = static_cast<int32_t>(draw >> 32);
    const int l = static_cast<int>(draw & (kLayers - 1));
    const uint32_t magnitude = v < 0 ? 0u - static_cast<uint32_t>(v) : static_cast<uint32_t>(v);
    if (magnitude < z.k[l]) return v * z.w[l];
  }
}

void RowRandom::normals(float* out, int64_t n, float scale) {
  const auto& z = ziggurat();
  for (int64_t i = 0; i < n; ++i) {  // normal(), with the tables looked up once
    const uint64_t draw = next();
    const auto value = static_cast<int32_t>(draw >> 32);
    const int layer = static_cast<int>(draw & (kLayers - 1));
    const uint32_t magnitude =
        value < 0 ? 0u - static_cast<uint32_t>(value) : static_cast<uint32_t>(value);
    const double x = magnitude < z.k[layer] ? value * z.w[layer] : normal_tail_or_wedge(draw);
    out[i] = static_cast<float>(x) * scale;
  }
}

}  // namespace mmfusion
