// Checkpoints written before the restructure keep loading, evaluating and resuming. The
// fixture files (tests/fixtures/README.md) were written by mmfusion 0.1.0 at commit
// 4789137, with the figures that version printed for them.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "mmfusion/checkpoint.hpp"
#include "mmfusion/commands.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {
const std::string kOld = "tests/fixtures/tiny-format1-v0.1.0";
}

TEST(Compat, ACheckpointFromVersion010OpensWithItsConfig) {
  Checkpoint c = open_checkpoint(source_path(kOld + ".pt"));
  EXPECT_EQ(c.meta["mmfusion_version"], "0.1.0");
  EXPECT_EQ(c.progress.epoch, 2);
  // Its config spells the keys that were renamed since: they still mean the same.
  EXPECT_TRUE(c.meta["config"]["train"].contains("fused_step"));
  EXPECT_TRUE(c.config.train.handwritten_step);
  EXPECT_TRUE(c.config.train.flat_optimizer);
  EXPECT_EQ(c.config.model.type, ModelType::LMF);
  EXPECT_NO_THROW(c.build_model(torch::kCPU));
}

TEST(Compat, ACheckpointFromVersion010EvaluatesToTheSameFigures) {
  EvalArgs args;
  args.checkpoint = source_path(kOld + ".pt");
  args.split = "test";
  args.device = "cpu";
  const json now = run_eval(args);
  const json then = json::parse(read_text(source_path(kOld + ".eval-test.json")));
  for (const char* k : {"loss", "mae", "mse", "pearson", "r2", "sign_accuracy", "sign_f1"})
    EXPECT_NEAR(now[k].get<double>(), then[k].get<double>(), 1e-6 * std::abs(then[k].get<double>()) + 1e-9) << k;
  EXPECT_EQ(now["count"], then["count"]);
  EXPECT_EQ(now["loss_name"], then["loss_name"]);
}

TEST(Compat, ACheckpointFromVersion010ResumesToTheSameNextEpoch) {
  TempDir dir;
  fs::copy_file(source_path(kOld + ".pt"), dir.file("old.pt"));
  TrainArgs args;
  args.resume = dir.file("old.pt");
  args.overrides = {"train.epochs=3"};
  args.out = dir.file("resumed");
  const TrainOutcome outcome = run_train(args);
  const std::string metrics = read_text(dir.file("resumed/metrics.jsonl"));
  const json last = json::parse(metrics.substr(metrics.rfind('{')));
  const json then = json::parse(read_text(source_path(kOld + ".resumed-epoch3.json")));
  EXPECT_EQ(last["epoch"], then["epoch"]);
  EXPECT_EQ(last["global_step"], then["global_step"]);
  EXPECT_NEAR(last["train_loss"].get<double>(), then["train_loss"].get<double>(), 1e-6);
  EXPECT_NEAR(last["val_loss"].get<double>(), then["val_loss"].get<double>(), 1e-6);
  EXPECT_EQ(outcome.results["epochs"], 3);
}
