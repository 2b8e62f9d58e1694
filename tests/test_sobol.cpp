// The variance-decomposition estimator (sobol.hpp) against closed forms: Moebius
// inversion and Shapley values on a hand-computed 3-player game, and the sampled indices
// of functions of independent inputs whose Sobol indices are known.
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "mmfusion/explain/sobol.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

namespace {

// Evaluations of f on N row pairs for every mask: group m from A when bit m is set.
template <typename F>
std::vector<torch::Tensor> pick_freeze(F f, int groups, int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  const auto a = torch::randn({n, groups}, torch::kFloat64),
             b = torch::randn({n, groups}, torch::kFloat64);
  std::vector<torch::Tensor> out;
  for (uint32_t mask = 0; mask < (1u << groups); ++mask) {
    auto x = b.clone();
    for (int m = 0; m < groups; ++m)
      if (mask & (1u << m)) x.select(1, m).copy_(a.select(1, m));
    out.push_back(f(x));
  }
  return out;
}

}  // namespace

TEST(Sobol, MoebiusAndShapleyMatchAHandComputedGame) {
  // Closed shares of a 3-player game (masks: 1 = {0}, 2 = {1}, 4 = {2}, ...).
  const std::vector<double> closed = {0, 0.2, 0.1, 0.4, 0.1, 0.3, 0.25, 1.0};
  const auto pure = mobius_inversion(closed);
  // By hand: {0,1}: 0.4 - 0.2 - 0.1; {0,2}: 0.3 - 0.2 - 0.1; {1,2}: 0.25 - 0.1 - 0.1;
  // {0,1,2}: 1 - 0.4 - 0.3 - 0.25 + 0.2 + 0.1 + 0.1.
  const std::vector<double> want = {0, 0.2, 0.1, 0.1, 0.1, 0.0, 0.05, 0.45};
  for (size_t s = 0; s < want.size(); ++s) EXPECT_NEAR(pure[s], want[s], 1e-12) << "mask " << s;
  // phi_0 = 0.2 + 0.1/2 + 0/2 + 0.45/3, phi_1 = 0.1 + 0.1/2 + 0.05/2 + 0.15, phi_2 = 0.1 + 0 +
  // 0.025 + 0.15.
  const auto phi = shapley_values(pure, 3);
  EXPECT_NEAR(phi[0], 0.40, 1e-12);
  EXPECT_NEAR(phi[1], 0.325, 1e-12);
  EXPECT_NEAR(phi[2], 0.275, 1e-12);
}

TEST(Sobol, SampledIndicesOfAKnownFunctionFallWithinTheirBootstrapIntervals) {
  // f = x0 + 2 x1 x2 with independent standard normal inputs: Var f = 1 + 4 = 5, pure
  // shares {0}: 0.2 and {1,2}: 0.8, every other 0; total effects 0.2, 0.8, 0.8;
  // Shapley 0.2, 0.4, 0.4.
  const int64_t n = 1 << 16;
  const auto outputs = pick_freeze(
      [](const torch::Tensor& x) { return x.select(1, 0) + 2 * x.select(1, 1) * x.select(1, 2); },
      3, n, 11);
  const SobolIndices r = sobol_indices(outputs, 3);
  const std::vector<double> pure = {0, 0.2, 0, 0, 0, 0, 0.8, 0};
  EXPECT_NEAR(r.variance, 5.0, 0.15);
  // 200 bootstrap resamples of the pairs: the 2.5-97.5% interval of each pure share must
  // hold the truth, and be narrow (the estimator is useful at this N).
  const int B = 200;
  std::vector<std::vector<double>> boot(8);
  torch::manual_seed(5);
  for (int b = 0; b < B; ++b) {
    const auto rows = torch::randint(n, {n}, torch::kInt64);
    const SobolIndices rb = sobol_indices(outputs, 3, rows);
    for (int s = 1; s < 8; ++s) boot[s].push_back(rb.pure[s]);
  }
  for (int s = 1; s < 8; ++s) {
    std::sort(boot[s].begin(), boot[s].end());
    const double lo = boot[s][B * 25 / 1000], hi = boot[s][B * 975 / 1000 - 1];
    EXPECT_LE(lo - 0.01, pure[s]) << "mask " << s;  // 0.01: the interval's own resolution
    EXPECT_GE(hi + 0.01, pure[s]) << "mask " << s;
    EXPECT_LT(hi - lo, 0.05) << "mask " << s;
    EXPECT_NEAR(r.pure[s], pure[s], 0.03) << "mask " << s;
  }
  EXPECT_NEAR(r.orders[0], 0.2, 0.03);
  EXPECT_NEAR(r.orders[1], 0.8, 0.03);
  EXPECT_NEAR(r.orders[2], 0.0, 0.03);
  const std::vector<double> total = {0.2, 0.8, 0.8}, shapley = {0.2, 0.4, 0.4};
  for (int m = 0; m < 3; ++m) {
    EXPECT_NEAR(r.total[m], total[m], 0.03) << m;
    EXPECT_NEAR(r.shapley[m], shapley[m], 0.03) << m;
  }
  double sum = 0;
  for (double phi : r.shapley) sum += phi;
  EXPECT_NEAR(sum, 1.0, 1e-9);  // Shapley values always sum to the closed share of all
}

TEST(Sobol, AnAdditiveFunctionHasNoInteractionAndANoiseGroupNothing) {
  // f = x0 + x1 over 3 groups, one column per output and two outputs (the second 3 x0):
  // group 2 is pure noise; the decomposition is additive (pure shares on singletons).
  const auto outputs = pick_freeze(
      [](const torch::Tensor& x) {
        return torch::stack({x.select(1, 0) + x.select(1, 1), 3 * x.select(1, 0)}, 1);
      },
      3, 1 << 15, 3);
  const SobolIndices r = sobol_indices(outputs, 3);
  // Var = 2 + 9 = 11 over both columns; x0 carries 1 + 9, x1 carries 1.
  EXPECT_NEAR(r.pure[1], 10.0 / 11, 0.02);
  EXPECT_NEAR(r.pure[2], 1.0 / 11, 0.02);
  for (uint32_t s : {3u, 5u, 6u, 7u}) EXPECT_NEAR(r.pure[s], 0.0, 0.02) << "mask " << s;
  for (uint32_t s = 1; s < 8; ++s)
    if (s & 4u) EXPECT_LT(std::abs(r.pure[s]), 0.02) << "mask " << s;
  EXPECT_LT(r.total[2], 0.02);
  expect_error([&] { sobol_indices(outputs, 2); }, "expected 4 evaluations, got 8");
  expect_error([&] { sobol_indices(outputs, 9); }, "1 to 8 are supported");
}
