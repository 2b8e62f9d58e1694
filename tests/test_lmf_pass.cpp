// The hand-written LMF pass (lmf_pass.hpp), run through StepRunner (step.hpp), against
// LibTorch's autograd of the same model: same loss, same gradients, same dropout masks,
// same inference outputs, on random inputs, across the shapes and losses the config
// allows. Every comparison also checks, from the runner's counts, that the hand-written
// path really ran (the two paths give the same numbers, so only the counts can tell).
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/training/lmf_pass.hpp"
#include "mmfusion/training/optim.hpp"
#include "mmfusion/training/step.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

namespace {

struct Side {
  ModelPtr model;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::unique_ptr<StepRunner> step;
};

Side make_side(const ExperimentConfig& config, int64_t output_dim, bool handwritten,
               bool flat_optimizer) {
  Side s;
  s.model = make_model(config.model, config.data.modalities, output_dim);
  auto t = config.train;
  t.handwritten_step = handwritten;
  t.flat_optimizer = flat_optimizer;
  s.optimizer = make_optimizer(t, *s.model);
  s.step = std::make_unique<StepRunner>(s.model, t);
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
                      bool training = true, bool flat_optimizer = true) {
  SCOPED_TRACE("batch " + std::to_string(batch));
  auto config = tiny_config(overrides);
  const bool classification = config.task == Task::Classification;
  const int64_t out = classification ? config.num_classes : 2;
  torch::manual_seed(1);
  Side fused = make_side(config, out, true, flat_optimizer);
  Side plain = make_side(config, out, false, flat_optimizer);
  ASSERT_TRUE(fused.step->handwritten_available()) << fused.step->why_autograd();
  ASSERT_FALSE(plain.step->handwritten_available());
  copy_parameters(*fused.model, *plain.model);
  fused.model->train(training), plain.model->train(training);
  const auto x = random_inputs(config.data.modalities, batch);
  const auto y =
      classification ? torch::randint(out, {batch}, torch::kInt64) : torch::randn({batch, out});
  for (auto* side : {&fused, &plain}) clear_gradients(*side->optimizer);
  torch::manual_seed(99);  // the dropout seeds
  const double fused_loss = fused.step->forward_backward(x, y, weight);
  torch::manual_seed(99);
  const double plain_loss = plain.step->forward_backward(x, y, weight);
  EXPECT_EQ(fused.step->train_counts().handwritten, 1);
  EXPECT_EQ(fused.step->train_counts().autograd, 0);
  EXPECT_EQ(plain.step->train_counts().autograd, 1);
  EXPECT_NEAR(fused_loss, plain_loss, 1e-5 * std::abs(plain_loss) + 1e-7);
  auto plain_params = plain.model->named_parameters();
  for (const auto& p : fused.model->named_parameters()) {
    const auto& expected = plain_params[p.key()].grad();
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    ASSERT_TRUE(expected.defined()) << p.key();
    EXPECT_GT(expected.abs().max().item<double>(), 0)
        << p.key() << ": a gradient that is all zeros proves nothing";
    EXPECT_TRUE(torch::allclose(p.value().grad(), expected, 1e-4, 1e-6))
        << p.key() << ": max difference "
        << (p.value().grad() - expected).abs().max().item<double>();
  }
}

}  // namespace

TEST(LMFPass, UsedForLMFOnTheCPUOnlyAndWhenEnabled) {
  auto config = tiny_config();
  EXPECT_TRUE(make_side(config, 1, true, true).step->handwritten_available());
  EXPECT_FALSE(make_side(config, 1, false, true).step->handwritten_available());
  EXPECT_FALSE(
      make_side(tiny_config({"model.type=concat"}), 1, true, true).step->handwritten_available());
  EXPECT_FALSE(
      make_side(tiny_config({"model.type=tfn"}), 1, true, true).step->handwritten_available());
  auto doubles = make_model(config.model, config.data.modalities, 1);
  doubles->to(torch::kFloat64);
  EXPECT_EQ(StepRunner(doubles, config.train).why_autograd(),
            "tensors that are not contiguous CPU float32");
}

TEST(LMFPass, AStructureItDoesNotImplementRunsOnAutograd) {
  // Tanh encoders: the pass implements ReLU only, so the runner must not choose it, and
  // the steps must still compute the model's own function (autograd's).
  auto config = tiny_config({"model.activation=tanh"});
  Side side = make_side(config, 2, true, true);
  EXPECT_FALSE(side.step->handwritten_available());
  EXPECT_EQ(side.step->why_autograd(), "encoder activation \"tanh\"");
  const auto x = random_inputs(config.data.modalities, 8);
  const auto y = torch::randn({8, 2});
  clear_gradients(*side.optimizer);
  const double loss = side.step->forward_backward(x, y);
  EXPECT_EQ(side.step->train_counts().autograd, 1);
  EXPECT_EQ(side.step->train_counts().handwritten, 0);
  side.model->train();
  EXPECT_NEAR(loss, torch::nn::functional::mse_loss(side.model->forward(x), y).item<double>(),
              1e-6);
  side.model->eval();
  const auto out = side.step->infer(x);
  EXPECT_EQ(side.step->infer_counts().autograd, 1);
  EXPECT_TRUE(torch::allclose(out, side.model->forward(x).detach()));

  // A module the description does not account for (a new layer someone registered): the
  // description is incomplete, so the pass is refused rather than computing the old function.
  ModelPtr extended = make_model(tiny_config().model, config.data.modalities, 2);
  extended->register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({2})));
  const auto description = dynamic_cast<LMFImpl&>(*extended).describe();
  EXPECT_FALSE(description.complete());
  const std::string why = StepRunner(extended, config.train).why_autograd();
  EXPECT_NE(why.find("parameters its description does not name"), std::string::npos) << why;
}

TEST(LMFPass, MatchesAutogradForMSEAtSeveralBatchSizes) {
  for (int64_t batch : {1, 7, 32, 1500}) expect_same_step({}, batch);
}

TEST(LMFPass, MatchesAutogradWithDropoutInTraining) {
  // Same generator state: the same masks on both paths.
  expect_same_step({"model.dropout=0.3"}, 64);
  expect_same_step({"model.dropout=0.5", "model.encoder_hidden=[512]"}, 300);  // parallel chunks
}

TEST(LMFPass, MatchesAutogradInEvalModeWithoutDropout) {
  expect_same_step({"model.dropout=0.3"}, 16, 1.0, /*training=*/false);
}

TEST(LMFPass, MatchesAutogradForDeepShallowAndHeadlessModels) {
  expect_same_step({"model.encoder_hidden=[8,6,5]"}, 20);
  expect_same_step({"model.encoders={\"audio\":[]}", "model.dropout=0.2"}, 20);  // identity encoder
  expect_same_step({"model.fused_dim=2"}, 20);                                   // no head
  expect_same_step({"model.rank_weighting=sum", "model.rank=5"}, 20);  // fixed rank weights
  expect_same_step({"train.factor_lr=0.01"}, 20);
  // One modality (file data allows it): the product over modalities has one factor.
  expect_same_step({"data.source=file", "data.path=unused.pt",
                    "data.modalities=[{\"name\":\"visual\",\"dim\":16}]", "model.dropout=0.2"},
                   20);
}

TEST(LMFPass, MatchesAutogradForEveryLoss) {
  expect_same_step({"train.loss=l1"}, 33);
  expect_same_step({"train.loss=huber", "train.huber_delta=0.5"}, 33);
  expect_same_step({"task=classification", "num_classes=4"}, 33);
}

TEST(LMFPass, ScalesLossAndGradientsByTheWeight) {
  expect_same_step({}, 24, 0.375);  // a data-parallel rank's share of the global batch
}

TEST(LMFPass, CreatesMissingGradientsWithTorchOptimizers) {
  expect_same_step({"train.optimizer=sgd"}, 12, 1.0, true, /*flat_optimizer=*/false);
}

TEST(LMFPass, AccumulatesIntoExistingGradientsLikeBackward) {
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

TEST(LMFPass, TrainsTheSameParametersAsAutogradOverManySteps) {
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

TEST(LMFPass, RejectsInputsAndTargetsOfTheWrongShapeOrRange) {
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
  expect_error<c10::Error>(
      [&] {
        classes.step->forward_backward(x, torch::tensor({0, 1, 2, 3, 0, 1, 2, 0}));
      },
      "class label 3 is out of range [0, 3)");
}

namespace {

// Inference through the runner (the hand-written pass) against the module graph with
// gradients enabled; the runner's counts prove which path each side took.
void expect_same_inference(const std::vector<std::string>& overrides, int64_t batch) {
  SCOPED_TRACE("batch " + std::to_string(batch));
  auto config = tiny_config(overrides);
  torch::manual_seed(2);
  ModelPtr model = make_model(config.model, config.data.modalities, 3);
  StepRunner runner(model, config.train);
  model->eval();
  const auto x = random_inputs(config.data.modalities, batch);
  const auto graph = model->forward(x);
  ASSERT_TRUE(graph.requires_grad());
  const auto fast = runner.infer(x);
  EXPECT_EQ(runner.infer_counts().handwritten, 1) << runner.why_autograd();
  EXPECT_EQ(runner.infer_counts().autograd, 0);
  ASSERT_EQ(fast.sizes(), graph.sizes());
  EXPECT_TRUE(torch::allclose(fast, graph.detach(), 1e-5, 1e-6))
      << (fast - graph).abs().max().item<double>();
}

}  // namespace

TEST(LMFPassInference, MatchesTheModuleGraphInEvalMode) {
  for (int64_t batch : {1, 5, 1200}) expect_same_inference({"model.dropout=0.4"}, batch);
  expect_same_inference({"model.encoder_hidden=[8,6]", "model.encoders={\"audio\":[]}"}, 9);
  expect_same_inference({"model.fused_dim=3"}, 9);  // no head
  expect_same_inference({"model.rank_weighting=sum"}, 9);
}

TEST(LMFPassInference, ReturnsANewTensorEachCallAndFollowsParameterUpdates) {
  auto config = tiny_config();
  ModelPtr model = make_model(config.model, config.data.modalities, 1);
  StepRunner runner(model, config.train);
  model->eval();
  const auto x = random_inputs(config.data.modalities, 6);
  const auto first = runner.infer(x);
  const auto again = runner.infer(x);
  EXPECT_NE(first.data_ptr(), again.data_ptr());  // not a view of a reused buffer
  EXPECT_TRUE(torch::equal(first, again));
  {
    torch::NoGradGuard guard;
    for (auto& p : model->parameters()) p.add_(0.01);  // the pass reads the current values
  }
  const auto moved = runner.infer(x);
  EXPECT_FALSE(torch::allclose(first, moved));
  EXPECT_TRUE(torch::allclose(moved, model->forward(x).detach(), 1e-5, 1e-6));
  EXPECT_EQ(runner.infer_counts().handwritten, 3);
}

TEST(LMFPassInference, TrainingModeAndAnOffSwitchUseTheModuleGraph) {
  auto config = tiny_config({"model.dropout=0.5"});
  ModelPtr model = make_model(config.model, config.data.modalities, 1);
  StepRunner runner(model, config.train);
  const auto x = random_inputs(config.data.modalities, 6);
  model->train();  // dropout: the pass's inference has none, so it must not be used
  runner.infer(x);
  EXPECT_EQ(runner.infer_counts().autograd, 1);
  EXPECT_EQ(runner.infer_counts().handwritten, 0);
  config.train.handwritten_step = false;
  StepRunner off(model, config.train);
  model->eval();
  off.infer(x);
  EXPECT_EQ(off.infer_counts().autograd, 1);
  EXPECT_EQ(off.why_autograd(), "train.handwritten_step is off");
}

TEST(LMFPass, ItsOwnSumsGiveTheSameBitsOnOneThreadAndOnTwo) {
  // The pass's reductions over the batch (bias gradients, dV's constant row, the rank
  // weights) split the rows into blocks fixed by the sizes, so the thread count cannot
  // change a bit of them. The shapes keep every matrix product at or below OpenBLAS's
  // threading threshold (m*n*k <= 262144), whose results do depend on the thread count
  // (docs/performance.md), while the 512 x 128 rank pass spans two blocks: summed by
  // thread, one thread and two would round differently.
  auto config = tiny_config({"model.encoder_hidden=[]", "model.rank=4", "model.fused_dim=32",
                             "model.rank_weighting=learned"});
  for (auto& m : config.data.modalities) m.dim = 2;
  torch::manual_seed(3);
  Side side = make_side(config, 2, true, true);
  const auto x = random_inputs(config.data.modalities, 512);
  const auto y = torch::randn({512, 2});
  std::vector<std::vector<torch::Tensor>> grads;
  for (int threads : {1, 2}) {
    torch::set_num_threads(threads);
    clear_gradients(*side.optimizer);
    side.step->forward_backward(x, y);
    std::vector<torch::Tensor> g;
    for (const auto& p : side.model->parameters()) g.push_back(p.grad().clone());
    grads.push_back(g);
  }
  torch::set_num_threads(1);
  EXPECT_EQ(side.step->train_counts().handwritten, 2);
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i) {
    EXPECT_GT(grads[0][i].abs().max().item<double>(), 0);
    EXPECT_TRUE(torch::equal(grads[0][i], grads[1][i]))
        << "parameter " << i << ": max difference "
        << (grads[0][i] - grads[1][i]).abs().max().item<double>();
  }
}
