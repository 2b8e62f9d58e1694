#include <gtest/gtest.h>

#include <thread>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/errors.hpp"
#include "mmfusion/metrics.hpp"
#include "mmfusion/trainer.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
namespace fs = std::filesystem;

namespace {

std::unique_ptr<Trainer> make_trainer(ExperimentConfig config, const DataSplits& data,
                                      const RunPaths& paths) {
  config.model.output_dim = 1;
  fs::create_directories(paths.checkpoints);
  torch::manual_seed(config.seed);
  return std::make_unique<Trainer>(config, data, torch::kCPU, paths, quiet_logger());
}

}  // namespace

TEST(Learning, LMFFitsANoiselessTaskWithInteractions) {
  // The target holds unimodal, bimodal and trimodal terms of the latents; a correct LMF
  // reaches the noise floor (here 0). A broken product, init or optimizer does not.
  TempDir dir;
  const auto config = tiny_config(
      {"threads=2", "data.train_size=4096", "data.val_size=512", "data.test_size=512",
       "data.synthetic.feature_noise=0", "data.synthetic.target_noise=0", "model.rank=4",
       "model.fused_dim=16", "model.encoder_hidden=[32]", "train.epochs=25", "train.lr=0.003"});
  const DataSplits data = load_splits(config);
  auto trainer = make_trainer(config, data, RunPaths(dir.file("run")));
  trainer->fit();
  const auto results = trainer->write_results();
  EXPECT_GE(results["test"]["r2"].get<double>(), 0.9) << results.dump(2);
  EXPECT_LT(trainer->history().back().train_loss, trainer->history().front().train_loss / 5);
}

TEST(Training, DivergenceStopsWithEpochAndStepAndKeepsTheLastGoodCheckpoint) {
  TempDir dir;
  const auto config = tiny_config({"train.epochs=3"});
  DataSplits data = load_splits(config);
  const RunPaths paths(dir.file("run"));
  auto trainer = make_trainer(config, data, paths);
  // After epoch 1, a NaN appears in the training features (the trainer holds the same
  // CPU tensors), so epoch 2 produces a NaN loss.
  trainer->on_epoch = [&](const EpochRecord& r) {
    if (r.epoch == 1) data.train.features[1][7][2] = std::numeric_limits<float>::quiet_NaN();
  };
  try {
    trainer->fit();
    FAIL() << "no divergence error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("training diverged at epoch 2, step "), std::string::npos)
        << e.what();
  }
  const Checkpoint last = open_checkpoint(paths.last);
  EXPECT_EQ(last.progress.epoch, 1);
  EXPECT_EQ(read_text(paths.metrics).find("\"epoch\":2"), std::string::npos);
}

TEST(Training, EarlyStoppingStopsPatienceEpochsAfterTheBest) {
  TempDir dir;
  // A tiny training set and a large learning rate: validation loss soon stops improving.
  const auto config = tiny_config({"train.epochs=60", "train.patience=3", "train.lr=0.03",
                                   "data.train_size=64", "model.encoder_hidden=[32]"});
  auto trainer = make_trainer(config, load_splits(config), RunPaths(dir.file("run")));
  trainer->fit();
  const auto& h = trainer->history();
  const auto& p = trainer->progress();
  ASSERT_TRUE(p.stopped_early) << "validation loss kept improving for 60 epochs";
  EXPECT_EQ(static_cast<int64_t>(h.size()), p.best_epoch + 3);
  const auto best = std::min_element(h.begin(), h.end(),
                                     [](const auto& a, const auto& b) { return a.val_loss < b.val_loss; });
  EXPECT_EQ(best->epoch, p.best_epoch);
  for (const auto& r : h)
    if (r.epoch > p.best_epoch) EXPECT_GE(r.val_loss, best->val_loss);
}

TEST(Training, FactorLearningRateGetsItsOwnParameterGroup) {
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
  for (const char* name : {"adam", "adamw", "sgd"}) {
    config.train.optimizer = name;
    EXPECT_NO_THROW(make_optimizer(config.train, *model)) << name;
  }
}

TEST(Training, LossesMatchTheirDefinitions) {
  TrainConfig t;
  const auto p = torch::tensor({{0.0f}, {1.0f}, {4.0f}});
  const auto y = torch::tensor({{0.5f}, {1.0f}, {1.0f}});  // errors 0.5, 0, 3
  t.loss = "mse";
  EXPECT_NEAR(compute_loss(t, p, y).item<double>(), (0.25 + 0 + 9) / 3, 1e-6);
  t.loss = "l1";
  EXPECT_NEAR(compute_loss(t, p, y).item<double>(), (0.5 + 0 + 3) / 3, 1e-6);
  t.loss = "huber";
  t.huber_delta = 1.0;  // 0.5 e^2 inside delta, delta (|e| - delta / 2) outside
  EXPECT_NEAR(compute_loss(t, p, y).item<double>(), (0.125 + 0 + 2.5) / 3, 1e-6);
}

TEST(Metrics, MatchClosedForms) {
  const auto y = torch::tensor({{1.0}, {2.0}, {3.0}, {4.0}});
  auto m = regression_metrics(y, y);
  EXPECT_DOUBLE_EQ(m.mse, 0);
  EXPECT_NEAR(m.pearson, 1, 1e-12);
  EXPECT_NEAR(m.r2, 1, 1e-12);
  m = regression_metrics(torch::full({4, 1}, 2.5), y);  // the mean: R^2 = 0
  EXPECT_NEAR(m.r2, 0, 1e-12);
  EXPECT_NEAR(m.mse, 1.25, 1e-12);
  EXPECT_NEAR(m.mae, 1.0, 1e-12);
  EXPECT_EQ(m.pearson, 0);  // no variance in the prediction
  m = regression_metrics(torch::tensor({{4.0}, {3.0}, {2.0}, {1.0}}), y);
  EXPECT_NEAR(m.pearson, -1, 1e-12);
  EXPECT_NEAR(m.r2, 1 - 20.0 / 5.0, 1e-12);
  EXPECT_EQ(m.count, 4);
}

TEST(Devices, CpuAndThreadsResolve) {
  EXPECT_EQ(resolve_device("cpu"), torch::Device(torch::kCPU));
  EXPECT_EQ(apply_threads(1), 1);
  EXPECT_EQ(torch::get_num_threads(), 1);
  const int64_t all = apply_threads(0);
  EXPECT_EQ(all, std::max<int64_t>(1, std::thread::hardware_concurrency()));
  EXPECT_EQ(torch::get_num_threads(), all);
}

TEST(Devices, MissingCudaDeviceIsAConfigError) {
  const int64_t count = torch::cuda::is_available() ? torch::cuda::device_count() : 0;
  const std::string beyond = "cuda:" + std::to_string(count);
  try {
    resolve_device(beyond);
    FAIL() << "no error for " << beyond;
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("device: \"" + beyond + "\" requested but", 0), 0u) << e.what();
  }
  if (count == 0) {
    EXPECT_THROW(resolve_device("cuda"), ConfigError);
    EXPECT_EQ(resolve_device("auto"), torch::Device(torch::kCPU));
  }
}
