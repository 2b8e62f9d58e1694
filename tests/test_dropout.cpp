// fast_dropout (dropout.hpp) against its definition.
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "mmfusion/models/dropout.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

TEST(FastDropout, KeepsTheRightFractionScaledAndPassesGradientsThroughTheMask) {
  torch::manual_seed(1);
  const auto x = torch::ones({1000, 1000}, torch::requires_grad());
  const auto y = fast_dropout(x, 0.3, true);
  const double kept = (y > 0).to(torch::kFloat64).mean().item<double>();
  EXPECT_NEAR(kept, 0.7, 0.002);
  EXPECT_NEAR(y.max().item<double>(), 1 / 0.7, 1e-6);
  EXPECT_NEAR(y.to(torch::kFloat64).mean().item<double>(), 1.0, 0.005);  // expectation preserved
  y.sum().backward();
  EXPECT_TRUE(torch::equal(x.grad(), y.detach()));  // d(x * m)/dx = m, here m = y
  // Outside training, and with p = 0, it is the identity.
  EXPECT_TRUE(torch::equal(fast_dropout(x, 0.3, false), x));
  EXPECT_TRUE(torch::equal(fast_dropout(x, 0.0, true), x));
}

TEST(FastDropout, MaskDependsOnTheSeedNotOnTheThreadCount) {
  const auto x = torch::randn({300, 700});
  torch::set_num_threads(1);
  torch::manual_seed(5);
  const auto a = fast_dropout(x, 0.5, true);
  torch::set_num_threads(2);
  torch::manual_seed(5);
  const auto b = fast_dropout(x, 0.5, true);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_FALSE(torch::equal(a, fast_dropout(x, 0.5, true)));  // the generator moved on
  torch::set_num_threads(1);                                  // as the other tests expect
}
