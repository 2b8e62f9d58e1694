// MulT (models/mult.hpp; issue 46): correct under padding (and MMSA's compat switch is
// not), any number of modalities from 2, and its config's checks.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/data/sequence.hpp"
#include "mmfusion/models/models.hpp"
#include "mmfusion/models/mult.hpp"
#include "mmfusion/training/run.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;

namespace {

const std::vector<ModalityConfig> kModalities = {
    {"text", 5, true, 7, Padding::Back}, {"audio", 3, true, 6, Padding::Back}, {"visual", 4, false, 0, Padding::Back}};

// Rows of each modality, sequences with lengths from 1 to T (some shorter than T).
std::vector<torch::Tensor> rows_for(const std::vector<ModalityConfig>& mods, int64_t batch) {
  std::vector<torch::Tensor> x;
  for (const auto& m : mods) {
    if (!m.sequence) {
      x.push_back(torch::randn({batch, m.dim}));
      continue;
    }
    const auto lengths = torch::randint(1, m.max_len + 1, {batch}, torch::kInt64);
    x.push_back(sequence::pack(torch::randn({batch, m.max_len, m.dim}), lengths));
  }
  return x;
}

ModelConfig mult_config(bool compat) {
  ModelConfig model;
  model.type = ModelType::MulT;
  model.mult.width = 8;
  model.mult.heads = 2;
  model.mult.layers = 2;
  model.mult.memory_layers = 2;
  model.mult.kernel = {{"text", 3}, {"audio", 2}, {"visual", 1}};
  model.mult.mmsa_compat = compat;
  return model;
}

}  // namespace

// Five more zero steps on every sequence, lengths unchanged: with the key masks no
// prediction moves by more than 1e-5; MMSA's compat switch (no masks, the padded last
// step) moves them.
TEST(Mult, PaddingChangesNoPredictionAndTheCompatSwitchDoes) {
  for (const bool compat : {false, true}) {
    SCOPED_TRACE(compat ? "mmsa_compat" : "masked");
    torch::manual_seed(3);
    auto model = make_model(mult_config(compat), kModalities, 1);
    model->eval();
    torch::NoGradGuard no_grad;
    const auto x = rows_for(kModalities, 16);
    std::vector<torch::Tensor> padded;
    for (size_t m = 0; m < kModalities.size(); ++m)
      padded.push_back(kModalities[m].sequence
                           ? sequence::with_steps(x[m], kModalities[m].dim, kModalities[m].max_len + 5)
                           : x[m]);
    const double moved = (model->forward(x) - model->forward(padded)).abs().max().item<double>();
    if (compat)
      EXPECT_GT(moved, 1e-3);
    else
      EXPECT_LT(moved, 1e-5);
    // Padding of the input's own: a row's values past its length never matter either.
    if (!compat) {
      auto noisy = x;
      for (size_t m = 0; m < kModalities.size(); ++m)
        if (kModalities[m].sequence) {
          auto v = sequence::values(noisy[m], kModalities[m].dim).clone();
          const auto pad = sequence::mask(noisy[m], kModalities[m].dim) == 0;
          v.masked_fill_(pad.unsqueeze(2), 7.0);
          noisy[m] = torch::cat({noisy[m].slice(1, 0, 1), v.flatten(1)}, 1);
        }
      EXPECT_LT((model->forward(x) - model->forward(noisy)).abs().max().item<double>(), 1e-5);
    }
  }
}

// 2, 3 and 4 modalities train (the loss falls); 1 modality, heads that do not divide the
// width and the compat switch on anything but 3 modalities are one-line config errors.
TEST(Mult, TwoToFourModalitiesTrainAndTheConfigIsChecked) {
  const std::vector<std::string> sets[] = {
      {"data.modalities=[{\"name\":\"visual\",\"dim\":6},{\"name\":\"audio\",\"dim\":4,\"sequence\":true,\"max_len\":5}]"},
      {"data.modalities=[{\"name\":\"visual\",\"dim\":6},{\"name\":\"audio\",\"dim\":4,\"sequence\":true,\"max_len\":5},"
       "{\"name\":\"text\",\"dim\":5,\"sequence\":true,\"max_len\":4}]"},
      {"data.modalities=[{\"name\":\"visual\",\"dim\":6},{\"name\":\"audio\",\"dim\":4,\"sequence\":true,\"max_len\":5},"
       "{\"name\":\"text\",\"dim\":5,\"sequence\":true,\"max_len\":4},{\"name\":\"extra\",\"dim\":3}]",
       "data.synthetic.weights.trimodal=0"},
  };
  for (const auto& modalities : sets) {
    TempDir dir;
    TrainArgs args;
    args.config = source_path("configs/tiny.json");
    args.overrides = modalities;
    for (const char* s : {"model.type=mult", "model.mult.width=8", "model.mult.heads=2",
                          "model.mult.layers=1", "model.mult.memory_layers=1", "train.epochs=4",
                          "train.lr=0.003", "data.synthetic.min_len=2"})
      args.overrides.push_back(s);
    args.out = dir.file("run");
    const TrainOutcome r = run_train(args);
    SCOPED_TRACE(modalities.front());
    std::ifstream metrics(dir.file("run/metrics.jsonl"));
    std::vector<double> losses;
    for (std::string line; std::getline(metrics, line);)
      losses.push_back(json::parse(line)["train_loss"].get<double>());
    ASSERT_EQ(losses.size(), 4u);
    EXPECT_LT(losses.back(), losses.front());
    EXPECT_TRUE(std::isfinite(r.results["test"]["mse"].get<double>()));
  }
  expect_error<ConfigError>(
      [] {
        tiny_config({"model.type=mult", "data.source=file", "data.path=x.pt",
                     "data.modalities=[{\"name\":\"visual\",\"dim\":6}]"});
      },
      "model.type: \"mult\" attends across modalities and needs at least 2; data.modalities has 1 "
      "(model.mult.unimodal: true trains its unimodal ablation");
  expect_error<ConfigError>([] { tiny_config({"model.type=mult", "model.mult.width=10",
                                              "model.mult.heads=4"}); },
                            "model.mult.heads: 4 heads do not divide width 10");
  expect_error<ConfigError>(
      [] {
        tiny_config({"model.type=mult", "model.mult.mmsa_compat=true",
                     "data.modalities=[{\"name\":\"visual\",\"dim\":6},{\"name\":\"audio\",\"dim\":4}]"});
      },
      "model.mult.mmsa_compat: MMSA's MulT takes exactly 3 modalities");
  expect_error<ConfigError>([] { tiny_config({"model.type=mult", "model.mult.kernel={\"speech\":3}"}); },
                            "model.mult.kernel.speech: not a modality of data.modalities");
  expect_error<ConfigError>([] { tiny_config({"model.type=mult", "model.mult.kernel=0"}); },
                            "model.mult.kernel");
  // A per-modality value resolves for every modality, the others keeping the default.
  const ExperimentConfig c = tiny_config({"model.type=mult", "model.mult.dropout.attention={\"text\":0.3}"});
  EXPECT_EQ(c.model.mult.attention_dropout,
            (std::map<std::string, double>{{"audio", 0.1}, {"text", 0.3}, {"visual", 0.1}}));
  EXPECT_EQ(c.model.mult.kernel, (std::map<std::string, int64_t>{{"audio", 1}, {"text", 1}, {"visual", 1}}));
}

// causal: the mask's closed form (j / Tk <= i / Tq), and a stack under it: a query step's
// output does not move when later source steps change, and does when earlier ones do.
TEST(Mult, TheCausalMaskHidesLaterSourceSteps) {
  const auto mask = mult_causal_mask(3, 6, torch::TensorOptions().dtype(torch::kFloat32));
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 6; ++j)
      EXPECT_EQ(std::isinf(mask[i][j].item<float>()), j * 3 > i * 6) << i << "," << j;
  torch::manual_seed(5);
  MultConfig c;
  c.embedding_dropout = c.relu_dropout = c.residual_dropout = 0;
  MultStack stack(8, 2, 2, 0.0, c);
  stack->eval();
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({4, 3, 8}), kv = torch::randn({4, 3, 8});
  const auto causal = mult_causal_mask(4, 4, x.options());
  const auto y = stack->forward(x, kv, {}, causal);
  auto later = kv.clone();
  later[3] += torch::randn({3, 8});  // source step 3: after query steps 0 to 2 (not a constant:
                                     // LayerNorm removes a shift)
  const auto y_later = stack->forward(x, later, {}, causal);
  EXPECT_LT((y.slice(0, 0, 3) - y_later.slice(0, 0, 3)).abs().max().item<double>(), 1e-6);
  EXPECT_GT((y[3] - y_later[3]).abs().max().item<double>(), 1e-4);
  auto earlier = kv.clone();
  earlier[0] += torch::randn({3, 8});
  EXPECT_GT((y[0] - stack->forward(x, earlier, {}, causal)[0]).abs().max().item<double>(), 1e-4);
  // Without the mask a later step reaches every query.
  EXPECT_GT((stack->forward(x, kv, {}, {})[0] - stack->forward(x, later, {}, {})[0]).abs().max().item<double>(),
            1e-4);
}

// One modality with model.mult.unimodal (the paper's unimodal ablation; what attribute
// trains for its single-modality subsets): one self-attention stack of `layers` in place
// of the cross-modal ones, a memory transformer d wide, and the head; correct under
// padding, as the cross-modal form is; without the switch, a config error.
TEST(Mult, OneModalityIsTheUnimodalAblationWhenAsked) {
  const std::vector<ModalityConfig> one = {kModalities[0]};
  ModelConfig model = mult_config(false);
  EXPECT_THROW(make_model(model, one, 1), ConfigError);
  model.mult.unimodal = true;
  torch::manual_seed(4);
  auto m = make_model(model, one, 1);
  const auto params = m->named_parameters();
  ASSERT_TRUE(params.contains("cross.text_from_text.layers.1.attention.in_proj_weight"));
  EXPECT_EQ(params["cross.text_from_text.layers.1.attention.in_proj_weight"].sizes(),
            (std::vector<int64_t>{24, 8}));
  EXPECT_FALSE(params.contains("cross.text_from_text.layers.2.fc1.weight"));
  EXPECT_EQ(params["memory.text.norm.weight"].sizes(), (std::vector<int64_t>{8}));
  EXPECT_EQ(params["proj1.weight"].sizes(), (std::vector<int64_t>{8, 8}));
  m->eval();
  {
    torch::NoGradGuard no_grad;
    const auto x = rows_for(one, 16);
    const auto padded = sequence::with_steps(x[0], one[0].dim, one[0].max_len + 5);
    const auto y = m->forward(x);
    EXPECT_LT((y - m->forward({padded})).abs().max().item<double>(), 1e-5);
    // The self-attention sees the whole row: a change at its first step moves the
    // prediction of a row whose last step is pooled.
    auto v = sequence::values(x[0], one[0].dim).clone();
    v.select(1, 0) += torch::randn({16, one[0].dim});
    const auto changed = sequence::pack(v, sequence::lengths(x[0]));
    const auto moved = (y - m->forward({changed})).abs().squeeze(1);
    const auto longer = sequence::lengths(x[0]) > 2;  // the Conv1d (kernel 3) alone reaches step 1
    ASSERT_GT(longer.sum().item<int64_t>(), 0);
    EXPECT_GT(moved.masked_select(longer).min().item<double>(), 1e-6);
  }

  // Configs: one modality trains with the switch, and it is a one-line error without.
  TempDir dir;
  TrainArgs args;
  args.config = source_path("configs/tiny.json");
  args.overrides = {
      "data.modalities=[{\"name\":\"audio\",\"dim\":4,\"sequence\":true,\"max_len\":5}]",
      "data.synthetic.modalities=[{\"name\":\"visual\",\"dim\":6},{\"name\":\"audio\","
      "\"dim\":4,\"sequence\":true,\"max_len\":5}]",
      "model.type=mult",
      "model.mult.unimodal=true",
      "model.mult.width=8",
      "model.mult.heads=2",
      "model.mult.layers=1",
      "model.mult.memory_layers=1",
      "train.epochs=4",
      "train.lr=0.003",
      "data.synthetic.min_len=2"};
  args.out = dir.file("run");
  const TrainOutcome r = run_train(args);
  EXPECT_TRUE(std::isfinite(r.results["test"]["mse"].get<double>()));
  EXPECT_EQ(json::parse(read_text(dir.file("run/config.json")))["model"]["mult"]["unimodal"], true);
}
