// Checkpoints (training/checkpoint.hpp): round trips, best and last, exact resumes after
// and within an epoch, and every damaged part named by its digest.
#include <gtest/gtest.h>

#include <csignal>
#include <functional>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/training/checkpoint.hpp"
#include "mmfusion/cli/commands.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/training/evaluation.hpp"
#include "mmfusion/training/step.hpp"
#include "mmfusion/training/trainer.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
namespace fs = std::filesystem;

namespace {

struct TestRun {
  RunPaths paths;
  std::unique_ptr<Trainer> trainer;
};

// A trainer over a fresh run folder, set up the way `mmfusion train` does it.
TestRun make_run(const ExperimentConfig& base, const std::string& dir) {
  ExperimentConfig config = base;
  config.model.output_dim = 1;
  RunPaths paths(dir);
  fs::create_directories(paths.checkpoints);
  torch::manual_seed(config.seed);
  auto trainer =
      std::make_unique<Trainer>(config, load_splits(config), torch::kCPU, paths, quiet_logger());
  return {paths, std::move(trainer)};
}

const std::vector<std::string> kResumable = {"threads=1", "model.dropout=0.2", "train.epochs=4",
                                             "train.batch_size=48"};

void expect_same_history(const std::vector<EpochRecord>& a, const std::vector<EpochRecord>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    SCOPED_TRACE("epoch " + std::to_string(a[i].epoch));
    EXPECT_EQ(a[i].epoch, b[i].epoch);
    EXPECT_NEAR(a[i].train_loss, b[i].train_loss, 1e-6 * std::abs(a[i].train_loss));
    EXPECT_NEAR(a[i].val_loss, b[i].val_loss, 1e-6 * std::abs(a[i].val_loss));
  }
}

}  // namespace

TEST(Checkpoint, RoundTripGivesIdenticalOutputs) {
  TempDir dir;
  TestRun run = make_run(tiny_config(), dir.file("run"));
  run.trainer->fit();
  Checkpoint c = open_checkpoint(run.paths.last);
  EXPECT_EQ(c.progress.epoch, 2);
  EXPECT_EQ(c.progress.global_step, 16);
  EXPECT_EQ(c.meta["format_version"], kCheckpointFormatVersion);
  EXPECT_TRUE(c.config == tiny_config({"model.output_dim=1"}));

  const Dataset test = load_split(c.config, Split::Test);
  StepRunner trained(
      std::dynamic_pointer_cast<MultimodalModelImpl>(run.trainer->model().shared_from_this()),
      c.config.train);
  StepRunner loaded(c.build_model(torch::kCPU), c.config.train);
  const auto a = predict(trained, test, 16, torch::kCPU);
  const auto b = predict(loaded, test, 64, torch::kCPU);
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(Checkpoint, BestIsTheEpochWithTheLowestValidationLoss) {
  TempDir dir;
  TestRun run = make_run(tiny_config({"train.epochs=5", "train.lr=0.01"}), dir.file("run"));
  run.trainer->fit();
  const auto& h = run.trainer->history();
  const auto best = std::min_element(
      h.begin(), h.end(), [](const auto& a, const auto& b) { return a.val_loss < b.val_loss; });
  Checkpoint c = open_checkpoint(run.paths.best);
  EXPECT_EQ(c.progress.epoch, best->epoch);
  EXPECT_DOUBLE_EQ(c.progress.best_val_loss, best->val_loss);
}

TEST(Checkpoint, ResumeAfterAnEpochMatchesAnUninterruptedRun) {
  TempDir dir;
  TestRun straight = make_run(tiny_config(kResumable), dir.file("straight"));
  straight.trainer->fit();

  // Stop after epoch 2 through the stop flag, then continue from last.pt.
  TestRun first = make_run(tiny_config(kResumable), dir.file("resumed"));
  std::atomic<int> stop{0};
  first.trainer->on_epoch = [&](const EpochRecord& r) {
    if (r.epoch == 2) stop = SIGINT;
  };
  EXPECT_THROW(first.trainer->fit(&stop), Interrupted);
  std::vector<EpochRecord> history = first.trainer->history();
  ASSERT_EQ(history.size(), 2u);

  torch::manual_seed(999);  // the resumed run must not depend on the process's generators
  Checkpoint c = open_checkpoint(first.paths.last);
  Trainer second(c.config, load_splits(c.config), torch::kCPU, first.paths, quiet_logger());
  second.restore(c);
  second.fit();
  history.insert(history.end(), second.history().begin(), second.history().end());
  expect_same_history(straight.trainer->history(), history);
}

namespace {

// Stopped after the first step of epoch 1 and resumed from last.pt, a run of `config`
// matches an uninterrupted one: losses, parameters and buffers (running statistics).
void expect_exact_resume_mid_epoch(const ExperimentConfig& config) {
  TempDir dir;
  TestRun straight = make_run(config, dir.file("straight"));
  straight.trainer->fit();

  // A stop flag raised before training stops after the first step of epoch 1.
  TestRun first = make_run(config, dir.file("resumed"));
  std::atomic<int> stop{SIGTERM};
  EXPECT_THROW(first.trainer->fit(&stop), Interrupted);
  Checkpoint c = open_checkpoint(first.paths.last);
  EXPECT_EQ(c.progress.epoch, 0);
  EXPECT_EQ(c.progress.epoch_step, 1);
  EXPECT_EQ(c.progress.global_step, 1);

  Trainer second(c.config, load_splits(c.config), torch::kCPU, first.paths, quiet_logger());
  second.restore(c);
  second.fit();
  expect_same_history(straight.trainer->history(), second.history());

  // And the final parameters and buffers agree.
  auto state = [](torch::nn::Module& m) {
    auto all = m.named_parameters();
    for (const auto& b : m.named_buffers()) all.insert(b.key(), b.value());
    return all;
  };
  const auto resumed = state(second.model());
  for (const auto& p : state(straight.trainer->model()))
    EXPECT_TRUE(torch::allclose(p.value(), resumed[p.key()], 1e-6, 1e-7)) << p.key();
}

}  // namespace

TEST(Checkpoint, ResumeInTheMiddleOfAnEpochMatchesAnUninterruptedRun) {
  expect_exact_resume_mid_epoch(tiny_config(kResumable));
}

// InTense keeps running statistics (its projections' and blocks' normalisation) and adds
// its penalty to the loss: both resume exactly.
TEST(Checkpoint, AnInTenseRunResumesExactly) {
  std::vector<std::string> overrides = kResumable;
  overrides.insert(overrides.end(), {"model.type=intense", "model.intense.reg=0.2"});
  expect_exact_resume_mid_epoch(tiny_config(overrides));
}

// MulT (issue 46): its dropouts (attention, embedding, residual, ReLU, input, output) draw
// from the generators the checkpoint keeps, on sequences with their lengths: a resume in
// the middle of an epoch matches the uninterrupted run.
TEST(Checkpoint, AMulTRunResumesExactly) {
  std::vector<std::string> overrides = kResumable;
  overrides.insert(
      overrides.end(),
      {"data.modalities=[{\"name\":\"visual\",\"dim\":6},{\"name\":\"audio\",\"dim\":4,"
       "\"sequence\":true,\"max_len\":5},{\"name\":\"text\",\"dim\":5,\"sequence\":true,\"max_len\":4}]",
       "model.type=mult", "model.mult.width=8", "model.mult.heads=2", "model.mult.layers=1",
       "model.mult.memory_layers=1", "model.mult.kernel={\"text\":3}",
       "model.mult.dropout.input=0.2", "model.mult.dropout.relu=0.2", "data.synthetic.min_len=2"});
  expect_exact_resume_mid_epoch(tiny_config(overrides));
}

TEST(Checkpoint, DamagedOrForeignFilesAreRejectedCleanly) {
  TempDir dir;
  TestRun run = make_run(tiny_config(), dir.file("run"));
  run.trainer->fit();
  const std::string whole = read_text(run.paths.last);

  for (size_t keep : {whole.size() - 100, whole.size() / 2, size_t(10), size_t(0)}) {
    write_text(dir.file("cut.pt"), whole.substr(0, keep));
    expect_error([&] { open_checkpoint(dir.file("cut.pt")); }, "cut.pt: not a readable checkpoint");
  }
  // Damage inside a parameter's stored bytes: the archive itself reads back fine, the
  // checksum must catch it.
  const auto factor = run.trainer->model().named_parameters()["fusion.factor_audio"].contiguous();
  const std::string needle(static_cast<const char*>(factor.data_ptr()), 32);
  const size_t at = whole.find(needle);
  ASSERT_NE(at, std::string::npos);
  std::string flipped = whole;
  flipped[at + 5] ^= 0x10;
  write_text(dir.file("flipped.pt"), flipped);
  expect_error(
      [&] {
        Checkpoint c = open_checkpoint(dir.file("flipped.pt"));
        ModelPtr m = make_model(c.config.model, c.config.data.modalities, 1);
        c.load_model(*m);
      },
      "flipped.pt: corrupt checkpoint");

  expect_error([&] { open_checkpoint(dir.file("absent.pt")); }, "no such checkpoint file");

  // A LibTorch archive that is not ours.
  torch::serialize::OutputArchive foreign;
  foreign.write("weights", torch::ones({3}));
  foreign.save_to(dir.file("foreign.pt"));
  expect_error([&] { open_checkpoint(dir.file("foreign.pt")); }, "not an mmfusion checkpoint");

  // A checkpoint from a newer mmfusion.
  Checkpoint c = open_checkpoint(run.paths.last);
  auto meta = c.meta;
  meta["format_version"] = kCheckpointFormatVersion + 1;
  torch::serialize::OutputArchive newer;
  newer.write("meta", c10::IValue(meta.dump()));
  newer.save_to(dir.file("newer.pt"));
  expect_error([&] { open_checkpoint(dir.file("newer.pt")); }, "is newer than this mmfusion");
}

// Whole-file checksums (format 3): one byte changed inside any entry of the file is an
// error on open that names the entry. The damage is placed by looking for the entry's
// own bytes in the file (the archive stores tensors and strings as they are).
namespace {

// A trained tiny run whose checkpoint has every kind of entry: model, scaling,
// optimizer, generator states, metadata and the checksum record.
struct DamageCase {
  TempDir dir;
  std::string path, whole;
  DamageCase() {
    ExperimentConfig config = tiny_config({"data.standardize=zscore"});
    config.model.output_dim = 1;
    const RunPaths paths(dir.file("run"));
    fs::create_directories(paths.checkpoints);
    const DataSplits data = load_splits(config);
    Trainer trainer(config, data, torch::kCPU, paths, quiet_logger(),
                    Scaling::fit(config.data, data.train));
    trainer.fit();
    path = paths.last;
    whole = read_text(path);
  }

  // The file with one byte flipped in the middle of `needle`, which must occur once.
  std::string flip_in(const std::string& needle) const {
    const size_t at = whole.find(needle);
    EXPECT_NE(at, std::string::npos) << "needle not found";
    EXPECT_EQ(whole.find(needle, at + 1), std::string::npos) << "needle not unique";
    std::string damaged = whole;
    if (at != std::string::npos) damaged[at + needle.size() / 2] ^= 0x01;
    return damaged;
  }

  // The bytes of the largest tensor inside entry `key`, read with LibTorch's own archive.
  std::string largest_tensor_bytes(const std::string& key) const {
    torch::serialize::InputArchive archive;
    archive.load_from(path);
    c10::IValue value;
    EXPECT_TRUE(archive.try_read(key, value)) << key;
    torch::Tensor largest;
    std::function<void(const c10::IValue&)> visit = [&](const c10::IValue& v) {
      if (v.isTensor() && (!largest.defined() || v.toTensor().nbytes() > largest.nbytes()))
        largest = v.toTensor();
      if (v.isObject())
        for (const auto& slot : v.toObject()->slots()) visit(slot);
      if (v.isList())
        for (const auto& e : v.toListRef()) visit(e);
    };
    visit(value);
    EXPECT_TRUE(largest.defined() && largest.nbytes() >= 16) << key << " has no tensor to damage";
    if (!largest.defined()) return "";
    const auto c = largest.contiguous();
    return std::string(static_cast<const char*>(c.data_ptr()), std::min<size_t>(c.nbytes(), 256));
  }

  void expect_named(const std::string& damaged, const std::string& words) const {
    const std::string file = dir.file("damaged.pt");
    write_text(file, damaged);
    expect_error([&] { open_checkpoint(file); }, "damaged.pt: corrupt checkpoint: " + words);
  }
};

}  // namespace

TEST(CheckpointDigest, AnUndamagedFileOpensAndHasEveryEntry) {
  DamageCase k;
  Checkpoint c = open_checkpoint(k.path);
  EXPECT_EQ(c.meta["format_version"], 3);
  const auto keys = c.archive.keys();
  for (const char* key :
       {"model", "scaling", "optimizer", "rng_shuffle", "rng_cpu", "meta", "digests"})
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
}

TEST(CheckpointDigest, AByteFlippedInTheModelIsNamed) {
  DamageCase k;
  k.expect_named(k.flip_in(k.largest_tensor_bytes("model")),
                 "the model (parameters and buffers) does not match its checksum");
}

TEST(CheckpointDigest, AByteFlippedInTheOptimizerStateIsNamed) {
  DamageCase k;
  k.expect_named(k.flip_in(k.largest_tensor_bytes("optimizer")),
                 "the optimizer state does not match its checksum");
}

TEST(CheckpointDigest, AByteFlippedInTheScalingStatisticsIsNamed) {
  DamageCase k;
  k.expect_named(k.flip_in(k.largest_tensor_bytes("scaling")),
                 "the scaling statistics does not match its checksum");
}

TEST(CheckpointDigest, AByteFlippedInAGeneratorStateIsNamed) {
  DamageCase k;
  k.expect_named(k.flip_in(k.largest_tensor_bytes("rng_cpu")),
                 "the generator state rng_cpu does not match its checksum");
  k.expect_named(k.flip_in(k.largest_tensor_bytes("rng_shuffle")),
                 "the generator state rng_shuffle does not match its checksum");
}

TEST(CheckpointDigest, AByteFlippedInTheMetadataIsNamed) {
  DamageCase k;
  k.expect_named(k.flip_in("\"format\":\"mmfusion-checkpoint\""),
                 "the metadata (progress and config) does not match its checksum");
}

TEST(CheckpointDigest, AByteFlippedInTheChecksumRecordIsNamed) {
  DamageCase k;
  const size_t at = k.whole.find("\"record\":\"");
  ASSERT_NE(at, std::string::npos);
  k.expect_named(k.flip_in(k.whole.substr(at, 26)), "its checksum record is damaged");
}

TEST(CheckpointDigest, ResumingFromADamagedOptimizerStateFailsBeforeTraining) {
  // The case that went unnoticed before: Adam's moments damaged, `train --resume` went on.
  DamageCase k;
  const std::string file = k.dir.file("run/checkpoints/damaged.pt");
  write_text(file, k.flip_in(k.largest_tensor_bytes("optimizer")));
  TrainArgs args;
  args.resume = file;
  args.out = k.dir.file("resumed");
  expect_error([&] { run_train(args); }, "the optimizer state does not match its checksum");
  EXPECT_FALSE(fs::exists(k.dir.file("resumed")));
}

TEST(Checkpoint, AStreamingRunResumesExactly) {
  // Each batch is made from (seed, epoch, rows): stopped after one step and resumed, the
  // run meets the uninterrupted one.
  std::vector<std::string> overrides = kResumable;
  overrides.push_back("data.synthetic.stream=true");
  expect_exact_resume_mid_epoch(tiny_config(overrides));
}
