// Checkpoints written by earlier versions keep loading, evaluating and resuming. The
// fixture files (tests/fixtures/README.md) were written by the code of the commits they
// name, with the figures that code printed for them: format 1 before the restructure
// (4789137), format 2 before whole-file checksums and the second data generator (264acec).
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "mmfusion/training/checkpoint.hpp"
#include "mmfusion/cli/commands.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {
const std::string kOld = "tests/fixtures/tiny-format1-v0.1.0";
const std::string kFormat2 = "tests/fixtures/tiny-format2-v0.1.0";

void expect_same_eval(const std::string& fixture) {
  EvalArgs args;
  args.checkpoint = source_path(fixture + ".pt");
  args.split = "test";
  args.device = "cpu";
  const json now = run_eval(args);
  const json then = json::parse(read_text(source_path(fixture + ".eval-test.json")));
  for (const char* k : {"loss", "mae", "mse", "pearson", "r2", "sign_accuracy", "sign_f1"})
    EXPECT_NEAR(now[k].get<double>(), then[k].get<double>(),
                1e-6 * std::abs(then[k].get<double>()) + 1e-9)
        << k;
  EXPECT_EQ(now["count"], then["count"]);
  EXPECT_EQ(now["loss_name"], then["loss_name"]);
}

void expect_same_next_epoch(const std::string& fixture) {
  TempDir dir;
  fs::copy_file(source_path(fixture + ".pt"), dir.file("old.pt"));
  TrainArgs args;
  args.resume = dir.file("old.pt");
  args.overrides = {"train.epochs=3"};
  args.out = dir.file("resumed");
  const TrainOutcome outcome = run_train(args);
  const std::string metrics = read_text(dir.file("resumed/metrics.jsonl"));
  const json last = json::parse(metrics.substr(metrics.rfind('{')));
  const json then = json::parse(read_text(source_path(fixture + ".resumed-epoch3.json")));
  EXPECT_EQ(last["epoch"], then["epoch"]);
  EXPECT_EQ(last["global_step"], then["global_step"]);
  EXPECT_NEAR(last["train_loss"].get<double>(), then["train_loss"].get<double>(), 1e-6);
  EXPECT_NEAR(last["val_loss"].get<double>(), then["val_loss"].get<double>(), 1e-6);
  EXPECT_EQ(outcome.results["epochs"], 3);
}
}  // namespace

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

TEST(Compat, ACheckpointFromVersion010EvaluatesToTheSameFigures) { expect_same_eval(kOld); }

TEST(Compat, ACheckpointFromVersion010ResumesToTheSameNextEpoch) { expect_same_next_epoch(kOld); }

// Format 2: no whole-file checksum yet (its model checksum is still checked), and data
// from the first generator, which a resumed run must keep using.
TEST(Compat, AFormat2CheckpointOpensWithItsModelChecked) {
  Checkpoint c = open_checkpoint(source_path(kFormat2 + ".pt"));
  EXPECT_EQ(c.meta["format_version"], 2);
  EXPECT_TRUE(c.meta.contains("model_digest"));
  EXPECT_EQ(c.progress.epoch, 2);
  EXPECT_NO_THROW(c.build_model(torch::kCPU));
}

TEST(Compat, AFormat2CheckpointEvaluatesToTheSameFigures) { expect_same_eval(kFormat2); }

TEST(Compat, AFormat2CheckpointResumesToTheSameNextEpoch) { expect_same_next_epoch(kFormat2); }
