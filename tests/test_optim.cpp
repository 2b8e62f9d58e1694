// Optimizers (optim.hpp): the factory builds what the config names, with the factor
// group; FlatAdam against torch::optim::Adam/AdamW.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/training/optim.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

namespace {

// Two identical models, one trained by the fused optimizer and one by LibTorch's.
// float32 takes FlatAdam's CPU loop; float64 its tensor path, the one CUDA runs.
void expect_same_training(const std::vector<std::string>& overrides,
                          torch::Dtype dtype = torch::kFloat32) {
  auto config = tiny_config(overrides);
  torch::manual_seed(0);
  ModelPtr fused = make_model(config.model, config.data.modalities, 1);
  ModelPtr plain = make_model(config.model, config.data.modalities, 1);
  fused->to(dtype), plain->to(dtype);
  {
    torch::NoGradGuard g;
    auto src = fused->named_parameters();
    for (auto& p : plain->named_parameters()) p.value().copy_(src[p.key()]);
  }
  auto t = config.train;
  t.flat_optimizer = true;
  auto fused_opt = make_optimizer(t, *fused);
  ASSERT_NE(dynamic_cast<FlatAdam*>(fused_opt.get()), nullptr);
  t.flat_optimizer = false;
  auto plain_opt = make_optimizer(t, *plain);
  ASSERT_EQ(dynamic_cast<FlatAdam*>(plain_opt.get()), nullptr);
  fused->eval(), plain->eval();  // no dropout: the same function on both sides
  for (int step = 0; step < 6; ++step) {
    auto x = random_inputs(config.data.modalities, 16);
    for (auto& xi : x) xi = xi.to(dtype);
    const auto y = torch::randn({16, 1}, dtype);
    for (auto* pair : {&fused, &plain}) {
      auto& opt = pair == &fused ? fused_opt : plain_opt;
      clear_gradients(*opt);
      torch::nn::functional::mse_loss((*pair)->forward(x), y).backward();
      opt->step();
    }
  }
  EXPECT_EQ(dynamic_cast<FlatAdam&>(*fused_opt).steps(), 6);
  const double tolerance = dtype == torch::kFloat64 ? 1e-12 : 1e-6;
  auto plain_params = plain->named_parameters();
  for (const auto& p : fused->named_parameters())
    EXPECT_TRUE(torch::allclose(p.value(), plain_params[p.key()], tolerance, tolerance / 10))
        << p.key();
}

}  // namespace

TEST(FlatAdam, MatchesTorchAdam) { expect_same_training({}); }

TEST(FlatAdam, MatchesTorchAdamWithWeightDecayAndAFactorGroup) {
  expect_same_training({"train.weight_decay=0.01", "train.factor_lr=0.01"});
}

TEST(FlatAdam, MatchesTorchAdamW) {
  expect_same_training({"train.optimizer=adamw", "train.weight_decay=0.05"});
}

// The tensor path (step count and bias corrections on the device, for CUDA graphs),
// exercised on the CPU through float64.
TEST(FlatAdam, DeviceTensorPathMatchesTorchAdam) {
  expect_same_training({"train.weight_decay=0.01", "train.factor_lr=0.003"}, torch::kFloat64);
  expect_same_training({"train.optimizer=adamw", "train.weight_decay=0.05"}, torch::kFloat64);
}

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

TEST(Optimizers, FactorLearningRateGetsItsOwnParameterGroup) {
  auto config = tiny_config({"train.factor_lr=0.01", "train.lr=0.002"});
  ModelPtr model = make_model(config.model, config.data.modalities, 1);
  auto optimizer = make_optimizer(config.train, *model);
  const auto& groups = optimizer->param_groups();
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_DOUBLE_EQ(groups[0].options().get_lr(), 0.002);
  EXPECT_DOUBLE_EQ(groups[1].options().get_lr(), 0.01);
  EXPECT_EQ(groups[1].params().size(), 3u);  // one factor per modality
  EXPECT_EQ(groups[0].params().size() + groups[1].params().size(), model->parameters().size());
  // Without factor_lr: one group holding everything.
  config.train.factor_lr = 0;
  EXPECT_EQ(make_optimizer(config.train, *model)->param_groups().size(), 1u);
}

TEST(Optimizers, TheFactoryBuildsTheOptimizerTheConfigNames) {
  auto config = tiny_config();
  ModelPtr model = make_model(config.model, config.data.modalities, 1);
  auto built = [&](const std::vector<std::string>& overrides) {
    return make_optimizer(tiny_config(overrides).train, *model);
  };
  EXPECT_NE(dynamic_cast<FlatAdam*>(built({}).get()), nullptr);
  EXPECT_NE(dynamic_cast<FlatAdam*>(built({"train.optimizer=adamw"}).get()), nullptr);
  EXPECT_NE(dynamic_cast<torch::optim::Adam*>(built({"train.flat_optimizer=false"}).get()),
            nullptr);
  EXPECT_NE(dynamic_cast<torch::optim::AdamW*>(
                built({"train.optimizer=adamw", "train.flat_optimizer=false"}).get()),
            nullptr);
  auto sgd = built({"train.optimizer=sgd", "train.momentum=0.5", "train.lr=0.2"});
  auto* as_sgd = dynamic_cast<torch::optim::SGD*>(sgd.get());
  ASSERT_NE(as_sgd, nullptr);
  const auto& options =
      static_cast<const torch::optim::SGDOptions&>(as_sgd->param_groups()[0].options());
  EXPECT_DOUBLE_EQ(options.momentum(), 0.5);
  EXPECT_DOUBLE_EQ(options.lr(), 0.2);
  // AdamW's decoupled decay differs from Adam's L2 term: one step from the same state.
  auto step_with = [&](const std::vector<std::string>& overrides) {
    auto c = tiny_config(overrides);
    torch::manual_seed(0);
    ModelPtr m = make_model(c.model, c.data.modalities, 1);
    auto opt = make_optimizer(c.train, *m);
    clear_gradients(*opt);
    m->forward(random_inputs(c.data.modalities, 4)).sum().backward();
    opt->step();
    return m->parameters()[0].detach().clone();
  };
  EXPECT_FALSE(torch::allclose(step_with({"train.weight_decay=0.5"}),
                               step_with({"train.optimizer=adamw", "train.weight_decay=0.5"})));
}
