#pragma once
// Counter-based random numbers: a generator per (key, row), seeded from the pair alone,
// so that rows can be made in any order, on any number of threads, or one batch at a time,
// and come out bit for bit the same. xoshiro256** (Blackman and Vigna) seeded through
// splitmix64; normals by the ziggurat method (Marsaglia and Tsang, 2000, 128 layers), with
// the layer and the value taken from separate bits of one draw.
#include <cstdint>

namespace mmfusion {

// splitmix64 (Steele, Lea and Flood, 2014), the one implementation: mix64 is its output
// function, a well-mixed 64-bit value of `x`; splitmix64(state, n) is the n-th output of
// the generator started at `state` (its state advances by the golden gamma per output).
inline constexpr uint64_t kGoldenGamma = 0x9E3779B97F4A7C15ULL;
inline uint64_t mix64(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}
inline uint64_t splitmix64(uint64_t state, uint64_t n = 1) {
  return mix64(state + kGoldenGamma * n);
}

// The key of stream `stream` of `seed` (e.g. a split, or an epoch of a training stream).
uint64_t stream_key(uint64_t seed, uint64_t stream);

class RowRandom {
 public:
  RowRandom(uint64_t key, uint64_t row);
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  double uniform();  // in [0, 1), 53 bits
  double normal();   // standard normal
  // n standard normals times `scale`, written to out (float32).
  void normals(float* out, int64_t n, float scale);

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  double normal_tail_or_wedge(uint64_t draw);
  uint64_t s_[4];
};

}  // namespace mmfusion
