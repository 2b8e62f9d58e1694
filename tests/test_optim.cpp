// The optimised paths against the plain ones: FlatAdam against torch::optim::Adam/AdamW,
// fast_dropout against its definition.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/dropout.hpp"
#include "mmfusion/flat_adam.hpp"
#include "mmfusion/trainer.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

namespace {

// Two identical models, one trained by the fused optimizer and one by LibTorch's.
void expect_same_training(const std::vector<std::string>& overrides) {
  auto config = tiny_config(overrides);
  torch::manual_seed(0);
  ModelPtr fused = make_model(config.model, config.data.modalities, 1);
  ModelPtr plain = make_model(config.model, config.data.modalities, 1);
  {
    torch::NoGradGuard g;
    auto src = fused->named_parameters();
    for (auto& p : plain->named_parameters()) p.value().copy_(src[p.key()]);
  }
  auto t = config.train;
  t.fused_optimizer = true;
  auto fused_opt = make_optimizer(t, *fused);
  ASSERT_NE(dynamic_cast<FlatAdam*>(fused_opt.get()), nullptr);
  t.fused_optimizer = false;
  auto plain_opt = make_optimizer(t, *plain);
  ASSERT_EQ(dynamic_cast<FlatAdam*>(plain_opt.get()), nullptr);
  fused->eval(), plain->eval();  // no dropout: the same function on both sides
  for (int step = 0; step < 6; ++step) {
    const auto x = random_inputs(config.data.modalities, 16);
    const auto y = torch::randn({16, 1});
    for (auto* pair : {&fused, &plain}) {
      auto& opt = pair == &fused ? fused_opt : plain_opt;
      clear_gradients(*opt);
      torch::nn::functional::mse_loss((*pair)->forward(x), y).backward();
      opt->step();
    }
  }
  auto plain_params = plain->named_parameters();
  for (const auto& p : fused->named_parameters())
    EXPECT_TRUE(torch::allclose(p.value(), plain_params[p.key()], 1e-6, 1e-7)) << p.key();
}

}  // namespace

TEST(FlatAdam, MatchesTorchAdam) { expect_same_training({}); }

TEST(FlatAdam, MatchesTorchAdamWithWeightDecayAndAFactorGroup) {
  expect_same_training({"train.weight_decay=0.01", "train.factor_lr=0.01"});
}

TEST(FlatAdam, MatchesTorchAdamW) { expect_same_training({"train.optimizer=adamw", "train.weight_decay=0.05"}); }

TEST(FlatAdam, ParametersAndGradientsAreViewsOfOneBuffer) {
  auto config = tiny_config();
  ModelPtr model = make_model(config.model, config.data.modalities, 1);
  auto opt = make_optimizer(config.train, *model);
  const auto params = model->parameters();
  for (size_t i = 1; i < params.size(); ++i) {
    EXPECT_TRUE(params[i].storage().is_alias_of(params[0].storage()));
    EXPECT_TRUE(params[i].grad().storage().is_alias_of(params[0].grad().storage()));
  }
  model->forward(random_inputs(config.data.modalities, 4)).sum().backward();
  clear_gradients(*opt);
  for (const auto& p : params) EXPECT_EQ(p.grad().abs().sum().item<double>(), 0.0);
}

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
}
