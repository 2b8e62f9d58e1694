// mmfusion robustness (explain/robustness.hpp): a modality the target ignores moves the
// metric by nothing at any level while an informative one lowers it; the clean level is
// eval's own figure; removing every step equals the model on empty rows; the same seed
// gives the same file byte for byte; MultiBench's effective robustness by its formula.
#include <gtest/gtest.h>

#include <cmath>

#include "helpers.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/cli/commands.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/data/data_file.hpp"
#include "mmfusion/data/sequence.hpp"
#include "mmfusion/explain/robustness.hpp"
#include "mmfusion/training/checkpoint.hpp"
#include "mmfusion/training/evaluation.hpp"
#include "mmfusion/training/run.hpp"
#include "mmfusion/training/step.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;

namespace {

const json& curve(const json& r, const std::string& modality, const std::string& kind) {
  for (const auto& c : r["curves"])
    if (c["modality"] == modality && c["kind"] == kind) return c;
  throw std::runtime_error("no curve " + modality + "/" + kind);
}

// An LMF on visual and audio terms; text is in no term (pure noise to the target).
std::string train_additive(const TempDir& dir) {
  TrainArgs train;
  train.config = source_path("configs/tiny.json");
  train.overrides = {"threads=2", "data.train_size=4096", "data.test_size=1024",
                     "data.synthetic.shared_latent_dim=0", "data.synthetic.target_noise=0.05",
                     "data.synthetic.terms=[{\"modalities\":[\"visual\"],\"weight\":1},"
                     "{\"modalities\":[\"audio\"],\"weight\":0.7}]",
                     "model.rank=4", "model.fused_dim=8", "model.encoder_hidden=[16]",
                     "train.epochs=25", "train.lr=0.003"};
  train.out = dir.file("run");
  run_train(train);
  return dir.file("run/checkpoints/best.pt");
}

}  // namespace

TEST(Robustness, APureNoiseModalityMovesNothingAndAnInformativeOneLowersTheMetric) {
  TempDir dir;
  const std::string checkpoint = train_additive(dir);
  RobustnessArgs args;
  args.checkpoint = checkpoint;
  args.options.levels = 5;
  args.options.repeats = 3;
  args.options.metric = "r2";
  const json r = run_robustness(args);
  EXPECT_EQ(r["out"], dir.file("run/robustness"));
  const double clean = r["clean"].get<double>();
  ASSERT_GT(clean, 0.9) << r.dump();

  // Level 0 is eval's own figure.
  EvalArgs eval;
  eval.checkpoint = checkpoint;
  EXPECT_DOUBLE_EQ(run_eval(eval)["r2"].get<double>(), clean);

  for (const char* kind : {"noise", "drop"}) {
    SCOPED_TRACE(kind);
    const json& text = curve(r, "text", kind);
    for (const auto& v : text["values"]) EXPECT_LT(std::abs(v.get<double>() - clean), 0.01);
    const json& visual = curve(r, "visual", kind);
    EXPECT_EQ(visual["values"][0].get<double>(), clean);
    for (size_t i = 1; i < visual["values"].size(); ++i)  // non-increasing, within the draws' spread
      EXPECT_LE(visual["values"][i].get<double>(),
                visual["values"][i - 1].get<double>() + 0.01) << i;
    EXPECT_LT(visual["values"].back().get<double>(), clean - 0.1);
    // All modalities at once hurt at least as much as visual alone.
    EXPECT_LE(curve(r, "all", kind)["values"].back().get<double>(),
              visual["values"].back().get<double>() + 0.01);
  }
  // The area under a flat curve is its value; the informative one's is smaller.
  EXPECT_NEAR(r["relative_robustness"]["text/noise"].get<double>(), clean, 0.01);
  EXPECT_LT(r["relative_robustness"]["visual/noise"].get<double>(), clean - 0.05);
  EXPECT_TRUE(r["effective_robustness"]["visual/noise"].is_null());  // no baseline given

  // The same seed: the same file, byte for byte; another seed, other draws.
  args.out = dir.file("again");
  run_robustness(args);
  EXPECT_EQ(read_text(dir.file("again/robustness.json")), read_text(dir.file("run/robustness/robustness.json")));
  args.out = dir.file("other");
  args.options.seed = 2;
  run_robustness(args);
  EXPECT_NE(read_text(dir.file("other/robustness.json")), read_text(dir.file("run/robustness/robustness.json")));
  // An earlier robustness.json is kept unless --force.
  expect_error<UsageError>([&] { run_robustness(args); }, "robustness.json: the file exists");
  args.force = true;
  EXPECT_NO_THROW(run_robustness(args));
  // A metric the model does not report is named with those it does.
  args.options.metric = "accuracy";
  expect_error<ConfigError>([&] { run_robustness(args); }, "--metric accuracy: not one of this model's metrics");
  EXPECT_EQ(read_text(dir.file("run/robustness/robustness.csv")).rfind("modality,kind,level,value,ci_low,ci_high\n", 0), 0u);
}

// Every step removed is the model on rows of length 0, computed here without robustness.
TEST(Robustness, RemovingEveryStepIsTheModelOnEmptyRows) {
  TempDir dir;
  TrainArgs train;
  train.config = source_path("configs/tiny.json");
  train.overrides = {"threads=1", "data.train_size=512", "data.test_size=128",
                     "data.modalities=[{\"name\":\"visual\",\"dim\":16},{\"name\":\"audio\",\"dim\":8},"
                     "{\"name\":\"text\",\"dim\":6,\"sequence\":true,\"max_len\":5}]",
                     "model.encoders={\"text\":{\"type\":\"mean\",\"hidden\":[8]}}", "train.epochs=3"};
  train.out = dir.file("run");
  run_train(train);
  RobustnessArgs args;
  args.checkpoint = dir.file("run/checkpoints/best.pt");
  args.options.levels = 2;
  args.options.repeats = 2;
  const json r = run_robustness(args);
  const json& steps = curve(r, "text", "step_drop");
  ASSERT_EQ(steps["values"].size(), 3u);
  EXPECT_EQ(curve(r, "all", "step_drop")["values"].size(), 3u);

  Checkpoint c = open_checkpoint(args.checkpoint);
  StepRunner runner(c.build_model(torch::kCPU), c.config.train);
  Dataset empty = load_split(c.config, Split::Test);
  empty.features[2] = sequence::pack(sequence::values(empty.features[2], 6) * 0,
                                     torch::zeros({empty.size()}, torch::kInt64));
  const json want = evaluate(runner, c.config.task, c.scaling, empty, 4096, torch::kCPU);
  EXPECT_NEAR(steps["values"][2].get<double>(), want["mse"].get<double>(), 1e-9);
  EXPECT_DOUBLE_EQ(steps["ci"][2][0].get<double>(), steps["ci"][2][1].get<double>());  // no draw left
}

// MultiBench's effective robustness: sum_l f(l) - (b(l) + f(0) - b(0)).
TEST(Robustness, EffectiveRobustnessFollowsItsFormula) {
  json mine = {{"metric", "accuracy"},
               {"curves", {{{"modality", "audio"}, {"kind", "noise"}, {"levels", {0, 0.5, 1}},
                            {"values", {0.9, 0.8, 0.7}}, {"ci", {{0.9, 0.9}, {0.8, 0.8}, {0.7, 0.7}}}},
                           {{"modality", "text"}, {"kind", "drop"}, {"levels", {0, 0.5, 1}},
                            {"values", {0.9, 0.9, 0.9}}, {"ci", {{0.9, 0.9}, {0.9, 0.9}, {0.9, 0.9}}}}}},
               {"effective_robustness", {{"audio/noise", nullptr}, {"text/drop", nullptr}}}};
  const json base = {{"metric", "accuracy"},
                     {"curves", {{{"modality", "audio"}, {"kind", "noise"}, {"levels", {0, 0.5, 1}},
                                  {"values", {0.8, 0.6, 0.4}}}}}};
  attach_baseline(mine, base, "base.json");
  // (0.9 - 0.9) + (0.8 - 0.7) + (0.7 - 0.5) = 0.3; text has no baseline curve.
  EXPECT_NEAR(mine["effective_robustness"]["audio/noise"].get<double>(), 0.3, 1e-12);
  EXPECT_TRUE(mine["effective_robustness"]["text/drop"].is_null());
  EXPECT_EQ(mine["baseline"], "base.json");
  json other = base;
  other["metric"] = "macro_f1";
  expect_error([&] { attach_baseline(mine, other, "f1.json"); }, "f1.json: its metric is \"macro_f1\"");
  expect_error([&] { attach_baseline(mine, json::array(), "x.json"); }, "x.json: not a robustness.json");
}

namespace {
json train_on(const TempDir& dir, const std::string& name, const std::vector<std::string>& extra) {
  TrainArgs train;
  train.config = source_path("configs/tiny.json");
  train.overrides = {"threads=2", "data.train_size=4096", "data.val_size=512", "data.test_size=1024",
                     "data.synthetic.shared_latent_dim=0", "model.encoder_hidden=[16]",
                     "train.epochs=20", "train.lr=0.003"};
  train.overrides.insert(train.overrides.end(), extra.begin(), extra.end());
  train.out = dir.file(name);
  run_train(train);
  ExplainArgs args;
  args.checkpoint = dir.file(name + "/checkpoints/best.pt");
  args.options.samples = 4096;
  args.options.bootstrap = 0;
  return run_explain(args);
}
}  // namespace

// Late fusion is additive in its output: its additive projection is itself, exactly up to
// float rounding (the background's means cancel), so EMAP equals the model's metric.
TEST(Emap, LateFusionEqualsItsAdditiveProjection) {
  TempDir dir;
  const json r = train_on(dir, "late", {"model.type=late", "train.epochs=5"});
  ASSERT_TRUE(r["emap"].is_object()) << r.dump();
  EXPECT_EQ(r["emap"]["metric"], "mse");
  EXPECT_EQ(r["emap"]["background"], 64);
  EXPECT_NEAR(r["emap"]["additive"].get<double>(), r["emap"]["model"].get<double>(), 1e-4);
  EXPECT_GT(r["emap"]["model"].get<double>(), 0.0);
  // And the model's figure is eval's.
  EvalArgs eval;
  eval.checkpoint = dir.file("late/checkpoints/best.pt");
  EXPECT_NEAR(run_eval(eval)["mse"].get<double>(), r["emap"]["model"].get<double>(), 1e-6);
}

// An XOR-like label (the sign of a visual:audio product): the model is right, its additive
// projection at chance.
TEST(Emap, AnXorModelIsAtChanceWithoutItsInteraction) {
  TempDir dir;
  const json r = train_on(dir, "xor",
                          {"model.type=intense", "model.intense.p=1", "task=classification",
                           "num_classes=2", "data.synthetic.target_noise=0.01",
                           "data.synthetic.terms=[{\"modalities\":[\"visual\",\"audio\"],\"weight\":1}]"});
  EXPECT_EQ(r["emap"]["metric"], "accuracy");
  EXPECT_GE(r["emap"]["model"].get<double>(), 0.95) << r["emap"].dump();
  EXPECT_LE(r["emap"]["additive"].get<double>(), 0.55) << r["emap"].dump();
}

// train.modality_dropout: with p = 0.3 the model with an informative modality gone (its
// learned missing encoding) reaches what is left to reach: on these independent additive
// terms, r² 0.5 is the most any model can have without visual ((0.8² + 0.6²) / (1 + 0.8² +
// 0.6²)), and the model trained without dropout, the training mean in visual's place,
// reaches it too (measured 0.506 and 0.500; the issue's +0.1 is not there to gain on
// such data). The missing encoding is what eval uses on a file without the modality,
// which the model without dropout refuses, naming the option.
TEST(ModalityDropout, AMissingEncodingKeepsTheMetricWhenAModalityIsGone) {
  TempDir dir;
  auto train = [&](const std::string& name, double p) {
    TrainArgs t;
    t.config = source_path("configs/tiny.json");
    t.overrides = {"threads=2", "data.train_size=4096", "data.test_size=1024",
                   "data.synthetic.shared_latent_dim=0", "data.synthetic.target_noise=0.05",
                   "data.synthetic.terms=[{\"modalities\":[\"visual\"],\"weight\":1},"
                   "{\"modalities\":[\"audio\"],\"weight\":0.8},{\"modalities\":[\"text\"],\"weight\":0.6}]",
                   "model.rank=4", "model.fused_dim=8", "model.encoder_hidden=[16]",
                   "train.epochs=25", "train.lr=0.003",
                   "train.modality_dropout=" + std::to_string(p)};
    t.out = dir.file(name);
    run_train(t);
    return dir.file(name + "/checkpoints/best.pt");
  };
  const std::string plain = train("plain", 0.0), dropout = train("dropout", 0.3);
  auto gone = [&](const std::string& checkpoint, const std::string& out) {
    RobustnessArgs args;
    args.checkpoint = checkpoint;
    args.options.levels = 1;
    args.options.repeats = 1;
    args.options.metric = "r2";
    args.out = dir.file(out);
    return run_robustness(args);
  };
  const json a = gone(plain, "a"), b = gone(dropout, "b");
  const double without = curve(a, "visual", "drop")["values"][1].get<double>();
  const double with = curve(b, "visual", "drop")["values"][1].get<double>();
  RecordProperty("r2_visual_gone_without_dropout", std::to_string(without));
  RecordProperty("r2_visual_gone_with_dropout", std::to_string(with));
  std::printf("visual gone: r2 %.4f without modality dropout, %.4f with p = 0.3 (clean %.4f, %.4f)\n",
              without, with, a["clean"].get<double>(), b["clean"].get<double>());
  EXPECT_GT(with, 0.45);  // the ceiling is 0.5
  EXPECT_GT(without, 0.45);
  EXPECT_LT(with, 0.52);
  EXPECT_LT(without, 0.52);
  EXPECT_EQ(b["replacement"], "the model's learned missing encoding (train.modality_dropout)");

  // A test file without visual: the model with missing encodings reads it as missing, to
  // the figure robustness gave with every row dropped.
  Checkpoint c = open_checkpoint(dropout);
  Dataset test = load_split(c.config, Split::Test);
  test.names.erase(test.names.begin());
  test.features.erase(test.features.begin());
  std::vector<ModalityConfig> rest(c.config.data.modalities.begin() + 1, c.config.data.modalities.end());
  write_data_file(test, dir.file("no-visual.pt"), rest);
  EvalArgs eval;
  eval.checkpoint = dropout;
  eval.data = dir.file("no-visual.pt");
  EXPECT_NEAR(run_eval(eval)["r2"].get<double>(), with, 1e-9);
  eval.checkpoint = plain;
  expect_error([&] { run_eval(eval); },
               "missing entry \"visual\" (the file has: audio, text, target); a model trained with "
               "train.modality_dropout > 0 reads a file without it");
  // The checkpoint holds one missing encoding per modality; the other model none.
  bool found = false;
  for (const auto& p : c.build_model(torch::kCPU)->named_parameters())
    found = found || p.key() == "encoders.missing_visual";
  EXPECT_TRUE(found);
  for (const auto& p : open_checkpoint(plain).build_model(torch::kCPU)->named_parameters())
    EXPECT_EQ(p.key().find("missing_"), std::string::npos) << p.key();
}

// The check on real, dependent data (leaves100: margin, shape and texture each
// carry much of the others): with p = 0.3, LMF with a modality missing from every test
// row keeps far more of its accuracy than without modality dropout (the training mean in
// that modality's place). Measured at 30 epochs, threads 1; docs/experiments.md has the
// four models at 150 epochs.
TEST(ModalityDropout, OnLeaves100AMissingModalityCostsFarLessWithIt) {
  TempDir dir;
  auto gone = [&](const std::string& name, double p) {
    TrainArgs t;
    t.config = source_path("configs/leaves100.json");
    t.overrides = {"threads=1", "train.epochs=30", "train.modality_dropout=" + std::to_string(p),
                   "data.path=" + source_path("data/leaves100/leaves-train.pt"),
                   "data.val_path=" + source_path("data/leaves100/leaves-val.pt"),
                   "data.test_path=" + source_path("data/leaves100/leaves-test.pt")};
    t.out = dir.file(name);
    run_train(t);
    RobustnessArgs args;
    args.checkpoint = dir.file(name + "/checkpoints/best.pt");
    args.options.levels = 1;
    args.options.repeats = 1;
    return run_robustness(args);
  };
  const json without = gone("plain", 0.0), with = gone("dropout", 0.3);
  EXPECT_EQ(without["metric"], "accuracy");
  for (const char* m : {"margin", "shape", "texture"}) {
    const double a = curve(without, m, "drop")["values"][1].get<double>();
    const double b = curve(with, m, "drop")["values"][1].get<double>();
    std::printf("leaves100, %s missing: accuracy %.3f without modality dropout, %.3f with p = 0.3\n", m, a, b);
    RecordProperty(std::string(m) + "_missing", std::to_string(a) + " -> " + std::to_string(b));
    EXPECT_GE(b, a + 0.1) << m;
  }
  EXPECT_GT(with["clean"].get<double>(), 0.95);
}
