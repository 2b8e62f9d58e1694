// Every model type (models/models.hpp): each one's basics, the comparison models (TFN,
// concat, late) against hand computations, LMF's rank weighting, and classification.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/training/checkpoint.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/training/metrics.hpp"
#include "mmfusion/training/trainer.hpp"
#include "mmfusion/training/run.hpp"
#include "mmfusion/training/step.hpp"
#include "mmfusion/cli/commands.hpp"
#include "mmfusion/models/models.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
namespace fs = std::filesystem;

namespace {

const char* kSmall =
    "data.modalities=[{\"name\":\"a\",\"dim\":2},{\"name\":\"b\",\"dim\":3},{\"name\":\"c\",\"dim\":2}]";

}  // namespace

class EveryModel : public ::testing::TestWithParam<std::string> {};

TEST_P(EveryModel, ShapesGradientsAndBatchOfOne) {
  torch::manual_seed(0);
  const auto c = tiny_config({"model.type=" + GetParam(), "model.post_hidden=[8]"});
  ModelPtr model = make_model(c.model, c.data.modalities, 3);
  for (int64_t batch : {1, 5})
    EXPECT_EQ(model->forward(random_inputs(c.data.modalities, batch)).sizes(),
              (std::vector<int64_t>{batch, 3}));
  model->forward(random_inputs(c.data.modalities, 6)).pow(2).sum().backward();
  for (const auto& p : model->named_parameters()) {
    ASSERT_TRUE(p.value().grad().defined()) << p.key();
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0) << p.key();
  }
}

TEST_P(EveryModel, CheckpointRoundTripGivesIdenticalOutputs) {
  TempDir dir;
  torch::manual_seed(1);
  auto c = tiny_config({"model.type=" + GetParam(), "model.output_dim=1"});
  ModelPtr model = make_model(c.model, c.data.modalities, 1);
  {
    torch::NoGradGuard no_grad;  // running statistics (InTense) away from their initial values
    model->forward(random_inputs(c.data.modalities, 16));
  }
  save_checkpoint(dir.file("m.pt"), c, TrainProgress{}, *model, nullptr, RngStates{});
  Checkpoint ckpt = open_checkpoint(dir.file("m.pt"));
  ModelPtr loaded = make_model(ckpt.config.model, ckpt.config.data.modalities, 1);
  ckpt.load_model(*loaded);
  model->eval(), loaded->eval();
  const auto x = random_inputs(c.data.modalities, 9);
  EXPECT_TRUE(torch::equal(model->forward(x), loaded->forward(x)));
}

std::vector<std::string> every_model_type() {
  std::vector<std::string> names;
  for (ModelType type : all_values<ModelType>()) names.push_back(to_string(type));
  return names;
}

INSTANTIATE_TEST_SUITE_P(Fusion, EveryModel, ::testing::ValuesIn(every_model_type()),
                         [](const auto& info) { return info.param; });

TEST(TFN, FusedVectorIsTheOuterProductComputedByHand) {
  torch::manual_seed(2);
  const auto c =
      tiny_config({kSmall, "model.type=tfn", "model.encoder_hidden=[]", "model.dropout=0"});
  TFN model(c.data.modalities, c.model, 1);
  EXPECT_EQ(model->fused_size(), 3 * 4 * 3);
  const auto x = random_inputs(c.data.modalities, 4);
  const auto z = model->fuse(x);
  ASSERT_EQ(z.sizes(), (std::vector<int64_t>{4, 36}));
  for (int64_t b = 0; b < 4; ++b) {
    const std::vector<double> z1{1, x[0][b][0].item<double>(), x[0][b][1].item<double>()};
    const std::vector<double> z2{1, x[1][b][0].item<double>(), x[1][b][1].item<double>(),
                                 x[1][b][2].item<double>()};
    const std::vector<double> z3{1, x[2][b][0].item<double>(), x[2][b][1].item<double>()};
    int64_t k = 0;
    for (double v1 : z1)
      for (double v2 : z2)
        for (double v3 : z3) EXPECT_NEAR(z[b][k++].item<double>(), v1 * v2 * v3, 1e-5);
  }
}

TEST(TFN, RefusesAnOuterProductTooLargeToHold) {
  expect_error<ConfigError>(
      [] {
        tiny_config(
            {"model.type=tfn", "model.encoders={\"visual\":[512],\"audio\":[512],\"text\":[512]}"});
      },
      "TFN's fused size prod(d_m + 1) would be 135005697");
}

TEST(LateFusion, IsExactlyAdditiveOverModalities) {
  // f(x_a, x_b) - f(x_a', x_b) - f(x_a, x_b') + f(x_a', x_b') = 0 for an additive f.
  torch::manual_seed(3);
  const auto c = tiny_config({"model.type=late", "model.dropout=0"});
  ModelPtr model = make_model(c.model, c.data.modalities, 1);
  const auto x = random_inputs(c.data.modalities, 16), y = random_inputs(c.data.modalities, 16);
  auto mix = [&](bool first_from_y, bool second_from_y) {
    return model->forward({first_from_y ? y[0] : x[0], second_from_y ? y[1] : x[1], x[2]});
  };
  const auto interaction =
      mix(false, false) - mix(true, false) - mix(false, true) + mix(true, true);
  EXPECT_LT(interaction.abs().max().item<double>(), 1e-5);
  // LMF is not additive: the same contrast is far from zero.
  ModelPtr lmf = make_model(tiny_config({"model.dropout=0"}).model, c.data.modalities, 1);
  auto lmf_mix = [&](bool a, bool b) {
    return lmf->forward({a ? y[0] : x[0], b ? y[1] : x[1], x[2]});
  };
  EXPECT_GT(
      (lmf_mix(false, false) - lmf_mix(true, false) - lmf_mix(false, true) + lmf_mix(true, true))
          .abs()
          .max()
          .item<double>(),
      1e-3);
}

TEST(LateFusion, CannotFitAPureProductWhileLMFCan) {
  // Target: the product of the two modalities' first features. Late fusion's best is the
  // mean (R^2 ~ 0); LMF represents it exactly.
  TempDir dir;
  auto c = tiny_config({"data.modalities=[{\"name\":\"a\",\"dim\":2},{\"name\":\"b\",\"dim\":2}]",
                        "model.dropout=0", "model.encoder_hidden=[16]", "train.epochs=40",
                        "train.lr=0.01", "model.output_dim=1"});
  torch::manual_seed(4);
  DataSplits data;
  for (auto* d : {&data.train, &data.val, &data.test}) {
    const int64_t n = d == &data.train ? 2048 : 512;
    d->names = {"a", "b"};
    d->features = {torch::randn({n, 2}), torch::randn({n, 2})};
    d->target = (d->features[0].select(1, 0) * d->features[1].select(1, 0)).unsqueeze(1);
  }
  double r2[2];
  int i = 0;
  for (const ModelType type : {ModelType::Late, ModelType::LMF}) {
    c.model.type = type;
    RunPaths paths(dir.file(to_string(type)));
    fs::create_directories(paths.checkpoints);
    Trainer trainer(c, data, torch::kCPU, paths, quiet_logger());
    trainer.fit();
    r2[i++] = trainer.write_results()["test"]["r2"].get<double>();
  }
  EXPECT_LT(r2[0], 0.05) << "late fusion fitted a product";
  EXPECT_GT(r2[1], 0.9) << "LMF failed to fit a product";
}

TEST(LMF, SumRankWeightingIsThePapersPlainSum) {
  torch::manual_seed(5);
  const auto c = tiny_config({"model.rank_weighting=sum"});
  LMF model(LMFOptions(c.data.modalities, 1).model(c.model));
  EXPECT_EQ(model->named_parameters().find("fusion.rank_weights"), nullptr);
  ASSERT_NE(model->named_buffers().find("fusion.rank_weights"), nullptr);
  EXPECT_TRUE(torch::equal(model->fusion->rank_weights, torch::ones({1, c.model.rank})));
  // Equal to the learned variant with its weights set to one.
  const auto learned = tiny_config();
  LMF other(LMFOptions(c.data.modalities, 1).model(learned.model));
  {
    torch::NoGradGuard g;
    auto src = model->named_parameters();
    for (auto& p : other->named_parameters())
      p.value().copy_(p.key() == "fusion.rank_weights" ? torch::ones_like(p.value())
                                                       : src[p.key()]);
  }
  model->eval(), other->eval();
  const auto x = random_inputs(c.data.modalities, 7);
  EXPECT_TRUE(torch::allclose(model->forward(x), other->forward(x), 1e-6, 1e-6));
}

TEST(Classification, SyntheticClassesAreEquallyLikely) {
  auto c = tiny_config({"task=classification", "num_classes=4", "data.train_size=20000"});
  const Dataset d = load_split(c, Split::Train);
  ASSERT_EQ(d.target.dtype(), torch::kInt64);
  ASSERT_EQ(d.target.dim(), 1);
  const auto counts = torch::bincount(d.target, {}, 4).to(torch::kFloat64) / 20000.0;
  for (int k = 0; k < 4; ++k) EXPECT_NEAR(counts[k].item<double>(), 0.25, 0.02) << "class " << k;
  // The classes order the continuous target: class means increase.
  const Dataset r = generate_synthetic(c.data, c.seed, Split::Train);
  double previous = -1e9;
  for (int k = 0; k < 4; ++k) {
    const double mean = r.target.squeeze(1).index({d.target == k}).mean().item<double>();
    EXPECT_GT(mean, previous);
    previous = mean;
  }
}

TEST(Classification, TrainsEndToEndAndReportsAccuracyAndF1) {
  TempDir dir;
  auto c = tiny_config({"task=classification", "num_classes=3", "data.train_size=2048",
                        "train.epochs=15", "train.lr=0.005", "data.synthetic.target_noise=0"});
  c.model.output_dim = 3;
  RunPaths paths(dir.file("run"));
  fs::create_directories(paths.checkpoints);
  torch::manual_seed(c.seed);
  Trainer trainer(c, load_splits(c), torch::kCPU, paths, quiet_logger());
  trainer.fit();
  const auto results = trainer.write_results();
  EXPECT_GT(results["test"]["accuracy"].get<double>(), 0.5) << results.dump(2);  // chance: 1/3
  EXPECT_TRUE(results["test"].contains("macro_f1"));
  EXPECT_NE(read_text(paths.metrics).find("val_accuracy"), std::string::npos);
}

TEST(Classification, LabelFilesAreChecked) {
  TempDir dir;
  auto c = tiny_config({"task=classification", "num_classes=3"});
  Dataset d = load_split(c, Split::Val);
  write_data_file(d, dir.file("ok.pt"));
  EXPECT_TRUE(torch::equal(
      read_data_file(dir.file("ok.pt"), c.data.modalities, ReadRule{true, true, 3}).target,
      d.target));
  d.target[3] = 7;
  write_data_file(d, dir.file("bad.pt"));
  expect_error(
      [&] {
        read_data_file(dir.file("bad.pt"), c.data.modalities, ReadRule{true, true, 3});
      },
      "holds label 7 in row 3, outside [0, 3)");
  d.target = d.target.to(torch::kFloat32);
  write_data_file(d, dir.file("float.pt"));
  EXPECT_THROW(read_data_file(dir.file("float.pt"), c.data.modalities, ReadRule{true, true, 3}),
               Error);
  EXPECT_THROW(tiny_config({"task=classification"}), ConfigError);  // no num_classes
  EXPECT_THROW(tiny_config({"task=classification", "num_classes=3", "train.loss=mse"}),
               ConfigError);
  EXPECT_THROW(tiny_config({"num_classes=3"}), ConfigError);  // regression
}

// model.encoders.<m> as an object: the LMF paper's subnet puts a batch norm on the input.
// The list stays shorthand (and is what the resolved config writes for it); the batch norm
// is trained and saved with the model, and LMF then takes autograd, saying why.
TEST(Encoders, AnObjectEncoderWithABatchNormOfItsInput) {
  const std::vector<std::string> sets = {
      "model.encoders={\"audio\":{\"type\":\"mlp\",\"hidden\":[8],\"batch_norm\":true},"
      "\"text\":[6],\"visual\":{\"batch_norm\":false}}",
      "model.dropout=0"};
  const ExperimentConfig c = tiny_config(sets);
  auto mlp = [](std::vector<int64_t> hidden, bool batch_norm) {
    EncoderConfig e;
    e.hidden = std::move(hidden);
    e.batch_norm = batch_norm;
    return e;
  };
  EXPECT_EQ(c.model.encoders.at("audio"), mlp({8}, true));
  EXPECT_EQ(c.model.encoders.at("text"), mlp({6}, false));
  EXPECT_EQ(c.model.encoders.at("visual"), mlp(c.model.encoder_hidden, false));
  const nlohmann::json written = to_json(c)["model"]["encoders"];
  EXPECT_EQ(written["audio"],
            nlohmann::json::parse(R"({"type":"mlp","hidden":[8],"batch_norm":true})"));
  EXPECT_EQ(written["text"], nlohmann::json::array({6}));
  EXPECT_EQ(parse_config(to_json(c)).model.encoders, c.model.encoders);

  expect_error<ConfigError>([] { tiny_config({"model.encoders={\"audio\":{\"type\":\"lstm\"}}"}); },
                            "model.encoders.audio.type: a lstm encoder takes a sequence, and "
                            "\"audio\" is a vector");
  expect_error<ConfigError>([] { tiny_config({"model.encoders={\"audio\":{\"type\":\"lsmt\"}}"}); },
                            "model.encoders.audio.type");
  expect_error<ConfigError>([] { tiny_config({"model.encoders={\"audio\":{\"hiden\":[3]}}"}); },
                            "model.encoders.audio.hiden: unknown key");
  // A missing `hidden` is model.encoder_hidden, as given (it is read first).
  EXPECT_EQ(tiny_config(
                {"model.encoder_hidden=[5,3]", "model.encoders={\"audio\":{\"batch_norm\":true}}"})
                .model.encoders.at("audio")
                .hidden,
            (std::vector<int64_t>{5, 3}));

  // In training mode the audio encoder is Linear(relu) of the batch-normalised input.
  torch::manual_seed(3);
  ModelPtr model = make_model(c.model, c.data.modalities, 1);
  const auto params = model->named_parameters();
  ASSERT_TRUE(params.contains("encoders.audio.input_norm.weight"));
  EXPECT_FALSE(params.contains("encoders.text.input_norm.weight"));
  auto* lmf = dynamic_cast<LMFImpl*>(model.get());
  ASSERT_NE(lmf, nullptr);
  const auto x = random_inputs(c.data.modalities, 16);
  model->train();
  const auto h = lmf->encoders->forward(x);
  const auto mean = x[1].mean(0, true), var = x[1].var(0, false, true);
  const auto normed = (x[1] - mean) / torch::sqrt(var + 1e-5);
  const auto expected = torch::relu(torch::addmm(params["encoders.audio.fc0.bias"], normed,
                                                 params["encoders.audio.fc0.weight"].t()));
  EXPECT_TRUE(torch::allclose(h[1], expected, 1e-4, 1e-5));
  // Its running statistics moved by momentum 0.1 towards the batch's, once; they are
  // buffers, which a checkpoint keeps.
  auto buffers = model->named_buffers();
  EXPECT_TRUE(torch::allclose(buffers["encoders.audio.input_norm.running_mean"],
                              0.1 * mean.squeeze(0), 1e-5, 1e-6));
  EXPECT_EQ(buffers["encoders.audio.input_norm.num_batches_tracked"].item<int64_t>(), 1);

  // A one-row batch in training is normalised with the running statistics (no error).
  model->train();
  const auto one =
      lmf->encoders->forward({x[0].slice(0, 0, 1), x[1].slice(0, 0, 1), x[2].slice(0, 0, 1)});
  const auto& norm = params["encoders.audio.input_norm.weight"];
  const auto rm = model->named_buffers()["encoders.audio.input_norm.running_mean"];
  const auto rv = model->named_buffers()["encoders.audio.input_norm.running_var"];
  const auto by_running = (x[1].slice(0, 0, 1) - rm) / torch::sqrt(rv + 1e-5) * norm +
                          params["encoders.audio.input_norm.bias"];
  EXPECT_TRUE(
      torch::allclose(one[1],
                      torch::relu(torch::addmm(params["encoders.audio.fc0.bias"], by_running,
                                               params["encoders.audio.fc0.weight"].t())),
                      1e-4, 1e-5));

  // The one-row batch did not count as a batch; evaluation uses the running statistics.
  EXPECT_EQ(buffers["encoders.audio.input_norm.num_batches_tracked"].item<int64_t>(), 1);
  model->eval();
  const auto eval_h = lmf->encoders->forward(x);
  const auto by_running_all =
      (x[1] - rm) / torch::sqrt(rv + 1e-5) * norm + params["encoders.audio.input_norm.bias"];
  EXPECT_TRUE(
      torch::allclose(eval_h[1],
                      torch::relu(torch::addmm(params["encoders.audio.fc0.bias"], by_running_all,
                                               params["encoders.audio.fc0.weight"].t())),
                      1e-4, 1e-5));

  StepRunner runner(model, c.train);
  EXPECT_EQ(runner.why_autograd(), "an encoder normalises its input (batch_norm)");
}

TEST(Encoders, ABatchNormEncodersCheckpointEvaluatesToItsResults) {
  TempDir dir;
  TrainArgs train;
  train.config = source_path("configs/tiny.json");
  train.overrides = {"model.encoders={\"audio\":{\"hidden\":[8],\"batch_norm\":true}}",
                     "train.epochs=3", "data.train_size=65"};  // a last batch of one row
  train.out = dir.file("run");
  const auto outcome = run_train(train);
  EvalArgs eval;
  eval.checkpoint = dir.file("run/checkpoints/best.pt");
  eval.device = "cpu";
  const nlohmann::json now = run_eval(eval);
  ASSERT_TRUE(now["mse"].is_number()) << now.dump();  // a NaN running variance would be null
  EXPECT_TRUE(std::isfinite(now["mse"].get<double>()));
  EXPECT_NEAR(now["mse"].get<double>(), outcome.results["test"]["mse"].get<double>(), 1e-9);
}
