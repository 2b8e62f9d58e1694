// The hand-written LMF training step (train_step.hpp) against LibTorch's autograd of the
// same model: same loss, same gradients, same dropout masks, on random inputs, across
// the shapes and losses the config allows.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/flat_adam.hpp"
#include "mmfusion/train_step.hpp"
#include "mmfusion/trainer.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

namespace {

struct Side {
  ModelPtr model;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::unique_ptr<TrainStep> step;
};

Side make_side(const ExperimentConfig& config, int64_t output_dim, bool fused_step, bool fused_optimizer) {
  Side s;
  s.model = make_model(config.model, config.data.modalities, output_dim);
  auto t = config.train;
  t.fused_step = fused_step;
  t.fused_optimizer = fused_optimizer;
  s.optimizer = make_optimizer(t, *s.model);
  s.step = std::make_unique<TrainStep>(s.model, t);
  return s;
}

void copy_parameters(torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard g;
  auto src = from.named_parameters();
  for (auto& p : to.named_parameters()) p.value().copy_(src[p.key()]);
}

// One step on both paths from the same parameters, inputs and generator state; the
// losses and every parameter's gradient must agree to float32 rounding.
void expect_same_step(const std::vector<std::string>& overrides, int64_t batch, double weight = 1.0,
                      bool training = true, bool fused_optimizer = true) {
  SCOPED_TRACE("batch " + std::to_string(batch));
  auto config = tiny_config(overrides);
  const bool classification = config.task == "classification";
  const int64_t out = classification ? config.num_classes : 2;
  torch::manual_seed(1);
  Side fused = make_side(config, out, true, fused_optimizer);
  Side plain = make_side(config, out, false, fused_optimizer);
  ASSERT_TRUE(fused.step->fused());
  ASSERT_FALSE(plain.step->fused());
  copy_parameters(*fused.model, *plain.model);
  fused.model->train(training), plain.model->train(training);
  const auto x = random_inputs(config.data.modalities, batch);
  const auto y = classification ? torch::randint(out, {batch}, torch::kInt64) : torch::randn({batch, out});
  for (auto* side : {&fused, &plain}) clear_gradients(*side->optimizer);
  torch::manual_seed(99);  // the dropout seeds
  const double fused_loss = fused.step->forward_backward(x, y, weight);
  torch::manual_seed(99);
  const double plain_loss = plain.step->forward_backward(x, y, weight);
  EXPECT_NEAR(fused_loss, plain_loss, 1e-5 * std::abs(plain_loss) + 1e-7);
  auto plain_params = plain.model->named_parameters();
  for (const auto& p : fused.model->named_parameters()) {
    const auto& expected = plain_params[p.key()].grad();
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    ASSERT_TRUE(expected.defined()) << p.key();
    EXPECT_GT(expected.abs().max().item<double>(), 0) << p.key() << ": a gradient that is all zeros proves nothing";
    EXPECT_TRUE(torch::allclose(p.value().grad(), expected, 1e-4, 1e-6))
        << p.key() << ": max difference " << (p.value().grad() - expected).abs().max().item<double>();
  }
}

}  // namespace

TEST(FusedLMFStep, UsedForLMFOnTheCPUOnlyAndWhenEnabled) {
  auto config = tiny_config();
  EXPECT_TRUE(make_side(config, 1, true, true).step->fused());
  EXPECT_FALSE(make_side(config, 1, false, true).step->fused());
  EXPECT_FALSE(make_side(tiny_config({"model.type=concat"}), 1, true, true).step->fused());
  EXPECT_FALSE(make_side(tiny_config({"model.type=tfn"}), 1, true, true).step->fused());
}

TEST(FusedLMFStep, MatchesAutogradForMSEAtSeveralBatchSizes) {
  for (int64_t batch : {1, 7, 32, 1500}) expect_same_step({}, batch);
}

TEST(FusedLMFStep, MatchesAutogradWithDropoutInTraining) {
  // Same generator state: the same masks on both paths.
  expect_same_step({"model.dropout=0.3"}, 64);
  expect_same_step({"model.dropout=0.5", "model.encoder_hidden=[512]"}, 300);  // parallel chunks
}

TEST(FusedLMFStep, MatchesAutogradInEvalModeWithoutDropout) {
  expect_same_step({"model.dropout=0.3"}, 16, 1.0, /*training=*/false);
}

TEST(FusedLMFStep, MatchesAutogradForDeepShallowAndHeadlessModels) {
  expect_same_step({"model.encoder_hidden=[8,6,5]"}, 20);
  expect_same_step({"model.encoders={\"audio\":[]}", "model.dropout=0.2"}, 20);  // identity encoder
  expect_same_step({"model.fused_dim=2"}, 20);                                     // no head
  expect_same_step({"model.rank_weighting=sum", "model.rank=5"}, 20);              // fixed rank weights
  expect_same_step({"train.factor_lr=0.01"}, 20);
}

TEST(FusedLMFStep, MatchesAutogradForEveryLoss) {
  expect_same_step({"train.loss=l1"}, 33);
  expect_same_step({"train.loss=huber", "train.huber_delta=0.5"}, 33);
  expect_same_step({"task=classification", "num_classes=4"}, 33);
}

TEST(FusedLMFStep, ScalesLossAndGradientsByTheWeight) {
  expect_same_step({}, 24, 0.375);  // a data-parallel rank's share of the global batch
}

TEST(FusedLMFStep, CreatesMissingGradientsWithTorchOptimizers) {
  expect_same_step({"train.optimizer=sgd"}, 12, 1.0, true, /*fused_optimizer=*/false);
}

TEST(FusedLMFStep, AccumulatesIntoExistingGradientsLikeBackward) {
  auto config = tiny_config();
  torch::manual_seed(3);
  Side side = make_side(config, 1, true, true);
  const auto x = random_inputs(config.data.modalities, 10);
  const auto y = torch::randn({10, 1});
  clear_gradients(*side.optimizer);
  side.step->forward_backward(x, y);
  std::vector<torch::Tensor> once;
  for (const auto& p : side.model->parameters()) once.push_back(p.grad().clone());
  side.step->forward_backward(x, y);
  const auto params = side.model->parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(torch::allclose(params[i].grad(), 2 * once[i], 1e-5, 1e-7));
}

TEST(FusedLMFStep, TrainsTheSameParametersAsAutogradOverManySteps) {
  // Forty optimizer steps with the fused optimizer on both sides: the paths stay together.
  auto config = tiny_config({"model.dropout=0.1"});
  torch::manual_seed(5);
  Side fused = make_side(config, 1, true, true);
  Side plain = make_side(config, 1, false, true);
  copy_parameters(*fused.model, *plain.model);
  for (int step = 0; step < 40; ++step) {
    const auto x = random_inputs(config.data.modalities, 32);
    const auto y = x[0].narrow(1, 0, 1) * x[1].narrow(1, 0, 1);
    for (auto* side : {&fused, &plain}) {
      torch::manual_seed(1000 + step);
      clear_gradients(*side->optimizer);
      side->step->forward_backward(x, y);
      side->optimizer->step();
    }
  }
  auto plain_params = plain.model->named_parameters();
  for (const auto& p : fused.model->named_parameters())
    EXPECT_TRUE(torch::allclose(p.value(), plain_params[p.key()], 1e-4, 1e-5)) << p.key();
}

TEST(FusedLMFStep, RejectsInputsAndTargetsOfTheWrongShapeOrRange) {
  auto config = tiny_config();
  Side side = make_side(config, 2, true, true);
  auto x = random_inputs(config.data.modalities, 8);
  auto expect_rejected = [&](const std::vector<torch::Tensor>& inputs, const torch::Tensor& y,
                             const std::string& words) {
    expect_error<c10::Error>([&] { side.step->forward_backward(inputs, y); }, words);
  };
  expect_rejected({x[0], x[1]}, torch::randn({8, 2}), "expected 3 modality inputs, got 2");
  expect_rejected({x[0], x[1], torch::randn({7, 24})}, torch::randn({8, 2}), "modality input 2");
  expect_rejected(x, torch::randn({8, 3}), "expected a target of 8 x 2 values");
  auto classes = make_side(tiny_config({"task=classification", "num_classes=3"}), 3, true, true);
  expect_error<c10::Error>([&] { classes.step->forward_backward(x, torch::tensor({0, 1, 2, 3, 0, 1, 2, 0})); },
                           "class label 3 is out of range [0, 3)");
}

namespace {

// LMF's forward in eval mode under InferenceMode (the hand-written pass) against the
// same forward with gradients enabled (the module graph).
void expect_same_inference(const std::vector<std::string>& overrides, int64_t batch) {
  SCOPED_TRACE("batch " + std::to_string(batch));
  auto config = tiny_config(overrides);
  torch::manual_seed(2);
  ModelPtr model = make_model(config.model, config.data.modalities, 3);
  model->eval();
  const auto x = random_inputs(config.data.modalities, batch);
  const auto plain = model->forward(x).detach();
  ASSERT_TRUE(plain.requires_grad() == false);
  torch::Tensor fast;
  {
    torch::InferenceMode guard;
    fast = model->forward(x);
  }
  ASSERT_EQ(fast.sizes(), plain.sizes());
  EXPECT_TRUE(torch::allclose(fast, plain, 1e-5, 1e-6)) << (fast - plain).abs().max().item<double>();
}

}  // namespace

TEST(FusedLMFInference, MatchesTheModuleGraphInEvalMode) {
  for (int64_t batch : {1, 5, 1200}) expect_same_inference({"model.dropout=0.4"}, batch);
  expect_same_inference({"model.encoder_hidden=[8,6]", "model.encoders={\"audio\":[]}"}, 9);
  expect_same_inference({"model.fused_dim=3"}, 9);  // no head
  expect_same_inference({"model.rank_weighting=sum"}, 9);
}

TEST(FusedLMFInference, ReturnsANewTensorEachCallAndFollowsParameterUpdates) {
  auto config = tiny_config();
  ModelPtr model = make_model(config.model, config.data.modalities, 1);
  model->eval();
  const auto x = random_inputs(config.data.modalities, 6);
  torch::InferenceMode guard;
  const auto first = model->forward(x);
  const auto again = model->forward(x);
  EXPECT_NE(first.data_ptr(), again.data_ptr());  // not a view of a reused buffer
  EXPECT_TRUE(torch::equal(first, again));
  for (auto& p : model->parameters()) p.add_(0.01);  // the pass reads the current values
  const auto moved = model->forward(x);
  EXPECT_FALSE(torch::allclose(first, moved));
  {
    // Under NoGradGuard (not InferenceMode) the pass is used as well.
    torch::InferenceMode off(false);
    torch::Tensor no_grad;
    {
      torch::NoGradGuard guard;
      no_grad = model->forward(x);
    }
    const auto graph = model->forward(x);  // gradients enabled: the module graph
    EXPECT_TRUE(graph.requires_grad());
    EXPECT_TRUE(torch::allclose(no_grad, graph.detach(), 1e-5, 1e-6));
  }
}
