// InTense's arithmetic (intense.hpp) against closed forms and hand computations.
#include <gtest/gtest.h>

#include <cmath>

#include <torch/torch.h>

#include "mmfusion/intense.hpp"

using namespace mmfusion;

namespace {

// Largest |correlation| between any column of a and any column of b.
double max_abs_correlation(const torch::Tensor& a, const torch::Tensor& b) {
  const auto za = (a - a.mean(0)) / a.std(0);
  const auto zb = (b - b.mean(0)) / b.std(0);
  return (za.t().matmul(zb) / double(a.size(0) - 1)).abs().max().item<double>();
}

}  // namespace

// The layout is row-major in the set's order: entry (i, j, k) = u1[i] u2[j] u3[k] (the
// public code mixed an (i, k, j) layout into its 3-way centring).
TEST(InTense, InteractionBlockIsTheRowMajorOuterProductOfCentredFactors) {
  torch::manual_seed(0);
  const std::vector<torch::Tensor> u{torch::randn({5, 2}, torch::kFloat64), torch::randn({5, 3}, torch::kFloat64),
                                     torch::randn({5, 4}, torch::kFloat64)};
  const std::vector<torch::Tensor> mu{torch::randn({2}, torch::kFloat64), torch::randn({3}, torch::kFloat64),
                                      torch::randn({4}, torch::kFloat64)};
  const auto block = interaction_block(u, mu);
  ASSERT_EQ(block.sizes(), (std::vector<int64_t>{5, 24}));
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t k = 0; k < 4; ++k) {
          const double expected = (u[0][r][i] - mu[0][i]).item<double>() * (u[1][r][j] - mu[1][j]).item<double>() *
                                  (u[2][r][k] - mu[2][k]).item<double>();
          EXPECT_NEAR(block[r][i * 12 + j * 4 + k].item<double>(), expected, 1e-12);
        }
}

// With independent modalities and non-zero means, the centred 3-way block is uncorrelated
// with the lower-order parts (each modality, each pair's block), for four modalities too;
// the uncentred product is not.
TEST(InTense, CentringRemovesEveryLowerOrderPart) {
  torch::manual_seed(1);
  const int64_t n = 100000;
  std::vector<torch::Tensor> u, mu;
  for (int m = 0; m < 4; ++m) {
    u.push_back(torch::randn({n, 2}, torch::kFloat64) + 1.5);  // means far from zero
    mu.push_back(u.back().mean(0));
  }
  const auto triple = interaction_block({u[0], u[1], u[2]}, {mu[0], mu[1], mu[2]});
  const auto quadruple = interaction_block(u, mu);
  // Sampling noise of the largest of up to 128 correlations between heavy-tailed products
  // (a 4-way product of normals has kurtosis 81): about 0.01 to 0.025 here. The uncentred
  // product's correlation with its factors is above 0.3.
  const double noise = 0.05;
  for (int m = 0; m < 4; ++m) {
    EXPECT_LT(max_abs_correlation(quadruple, u[m]), noise);
    if (m < 3) EXPECT_LT(max_abs_correlation(triple, u[m]), noise);
  }
  EXPECT_LT(max_abs_correlation(triple, interaction_block({u[0], u[1]}, {mu[0], mu[1]})), noise);
  EXPECT_LT(max_abs_correlation(quadruple, interaction_block({u[1], u[2], u[3]}, {mu[1], mu[2], mu[3]})), noise);
  // Uncentred, the product carries its factors.
  const std::vector<torch::Tensor> zero{torch::zeros({2}, torch::kFloat64), torch::zeros({2}, torch::kFloat64),
                                        torch::zeros({2}, torch::kFloat64)};
  EXPECT_GT(max_abs_correlation(interaction_block({u[0], u[1], u[2]}, zero), u[0]), 0.3);
}

TEST(InTense, RelevanceScoresHaveUnitPNorm) {
  const std::vector<double> norms{0.5, 2.0, 0.0, 1.25};
  for (double p : {1.0, 1.5, 2.0, 4.0}) {
    const auto s = relevance_scores(norms, p);
    double sum = 0;
    for (double x : s) sum += std::pow(x, p);
    EXPECT_NEAR(sum, 1.0, 1e-12) << "p " << p;
    EXPECT_EQ(s[2], 0.0);
    EXPECT_LT(s[0], s[3]);
    EXPECT_LT(s[3], s[1]);
  }
  // p = 1: the norms' shares.
  const auto s1 = relevance_scores(norms, 1.0);
  EXPECT_NEAR(s1[1], 2.0 / 3.75, 1e-12);
  EXPECT_EQ(relevance_scores({0.0, 0.0}, 2.0), (std::vector<double>{0.0, 0.0}));
  EXPECT_THROW(relevance_scores(norms, 0.5), std::invalid_argument);
}

// (sum_b ||W_b||^q)^(2/q) by hand, and a gradient that reaches the weights (the public
// code's first release detached the norms) and matches finite differences.
TEST(InTense, BlockRegulariserHasItsValueAndItsGradient) {
  torch::manual_seed(2);
  const auto w0 = torch::randn({2, 5}, torch::kFloat64);
  const std::vector<std::pair<int64_t, int64_t>> blocks{{0, 2}, {2, 5}};
  const double p = 2, q = 4.0 / 3;
  const double n1 = w0.slice(1, 0, 2).norm().item<double>(), n2 = w0.slice(1, 2, 5).norm().item<double>();
  auto w = w0.clone().requires_grad_(true);
  const auto r = block_regularizer(w, blocks, p);
  EXPECT_NEAR(r.item<double>(), std::pow(std::pow(n1, q) + std::pow(n2, q), 2 / q), 1e-12);
  r.backward();
  ASSERT_TRUE(w.grad().defined());
  const double h = 1e-6;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      auto plus = w0.clone(), minus = w0.clone();
      plus[i][j] += h, minus[i][j] -= h;
      const double numeric = (block_regularizer(plus, blocks, p).item<double>() -
                              block_regularizer(minus, blocks, p).item<double>()) / (2 * h);
      EXPECT_NEAR(w.grad()[i][j].item<double>(), numeric, 1e-6);
    }
}
