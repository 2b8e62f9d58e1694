// LMF (models/models.hpp): shapes, the checkpoint's parameter schema, initialisation,
// gradients, equality with the explicit full-tensor fusion, and its description.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/models/models.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

TEST(LMF, OutputShapesIncludingBatchOfOne) {
  torch::manual_seed(0);
  const auto c = tiny_config();
  for (int64_t out : {1, 3}) {
    ModelPtr model = make_model(c.model, c.data.modalities, out);
    for (int64_t batch : {1, 2, 17}) {
      const auto y = model->forward(random_inputs(c.data.modalities, batch));
      EXPECT_EQ(y.sizes(), (std::vector<int64_t>{batch, out}));
    }
  }
}

TEST(LMF, ParameterNamesAndShapesFormTheCheckpointSchema) {
  const auto c =
      tiny_config({"model.rank=3", "model.fused_dim=5", "model.encoders={\"text\":[6,7]}"});
  ModelPtr model = make_model(c.model, c.data.modalities, 1);
  const auto params = model->named_parameters();
  EXPECT_EQ(params["fusion.factor_visual"].sizes(), (std::vector<int64_t>{3, 8 + 1, 5}));
  EXPECT_EQ(params["fusion.factor_text"].sizes(), (std::vector<int64_t>{3, 7 + 1, 5}));
  EXPECT_EQ(params["fusion.rank_weights"].sizes(), (std::vector<int64_t>{1, 3}));
  EXPECT_EQ(params["fusion.bias"].sizes(), (std::vector<int64_t>{1, 5}));
  EXPECT_EQ(params["encoders.text.fc1.weight"].sizes(), (std::vector<int64_t>{7, 6}));
  EXPECT_EQ(params["encoders.audio.fc0.weight"].sizes(), (std::vector<int64_t>{8, 8}));
  EXPECT_EQ(params["head.weight"].sizes(), (std::vector<int64_t>{1, 5}));
  // No head when the fused size already is the output size.
  const auto same = tiny_config({"model.fused_dim=1"});
  EXPECT_EQ(make_model(same.model, same.data.modalities, 1)->named_parameters().find("head.weight"),
            nullptr);
}

TEST(LMF, InitialisationIsXavierNormalWithZeroBias) {
  torch::manual_seed(1);
  const auto c = tiny_config({"model.rank=64", "model.fused_dim=64", "model.encoder_hidden=[63]"});
  LMF model(LMFOptions(c.data.modalities, 1).model(c.model));
  // xavier_normal std = sqrt(2 / (fan_in + fan_out)); for a (r, d+1, o) tensor
  // fan_in = (d+1) * o and fan_out = r * o.
  const auto& f = model->fusion->factors[0];
  const double expected = std::sqrt(2.0 / (64.0 * 64 + 64.0 * 64));
  EXPECT_NEAR(f.std().item<double>(), expected, 0.03 * expected);
  EXPECT_NEAR(f.mean().item<double>(), 0.0, 0.05 * expected);
  EXPECT_TRUE(torch::equal(model->fusion->bias, torch::zeros({1, 64})));
  const double w_expected = std::sqrt(2.0 / (1 + 64));
  EXPECT_NEAR(model->fusion->rank_weights.std().item<double>(), w_expected, 0.4 * w_expected);
}

TEST(LMF, EveryParameterReceivesAGradient) {
  torch::manual_seed(2);
  const auto c = tiny_config();
  ModelPtr model = make_model(c.model, c.data.modalities, 2);
  const auto y = model->forward(random_inputs(c.data.modalities, 8));
  y.pow(2).sum().backward();
  for (const auto& p : model->named_parameters()) {
    SCOPED_TRACE(p.key());
    ASSERT_TRUE(p.value().grad().defined());
    EXPECT_TRUE(torch::isfinite(p.value().grad()).all().item<bool>());
    EXPECT_GT(p.value().grad().abs().sum().item<double>(), 0.0);
  }
}

TEST(LMF, EqualsTheExplicitFullTensorFusion) {
  // With identity encoders (no hidden layers) h_m = x_m, and LMF must equal TFN whose
  // weight is W = sum_r w_r W_1[r] (x) W_2[r] (x) W_3[r]  (docs/methods.md, LMF):
  //   y[b, o] = sum_{ijk} z1[b,i] z2[b,j] z3[b,k] W[i,j,k,o] + bias[o].
  torch::manual_seed(3);
  auto c = tiny_config({"model.encoder_hidden=[]", "model.rank=3", "model.fused_dim=2",
                        "data.modalities=[{\"name\":\"a\",\"dim\":2},{\"name\":\"b\",\"dim\":3},"
                        "{\"name\":\"c\",\"dim\":2}]"});
  LMF model(LMFOptions(c.data.modalities, 2).model(c.model));
  {
    torch::NoGradGuard g;
    model->fusion->bias.normal_();  // a non-zero bias is part of the check
  }
  const auto x = random_inputs(c.data.modalities, 5);
  const auto y = model->forward(x).to(torch::kFloat64);

  const auto& F = model->fusion->factors;
  const auto w = model->fusion->rank_weights.to(torch::kFloat64);
  auto W = torch::zeros({3, 4, 3, 2}, torch::kFloat64);
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t k = 0; k < 3; ++k)
          for (int64_t o = 0; o < 2; ++o)
            W[i][j][k][o] += w[0][r].item<double>() * F[0][r][i][o].item<double>() *
                             F[1][r][j][o].item<double>() * F[2][r][k][o].item<double>();
  auto augment = [](const torch::Tensor& h) {
    return torch::cat({torch::ones({h.size(0), 1}), h}, 1).to(torch::kFloat64);
  };
  const auto z1 = augment(x[0]), z2 = augment(x[1]), z3 = augment(x[2]);
  auto expected = torch::zeros({5, 2}, torch::kFloat64);
  for (int64_t b = 0; b < 5; ++b)
    for (int64_t i = 0; i < 3; ++i)
      for (int64_t j = 0; j < 4; ++j)
        for (int64_t k = 0; k < 3; ++k) expected[b] += z1[b][i] * z2[b][j] * z3[b][k] * W[i][j][k];
  expected += model->fusion->bias.to(torch::kFloat64);
  EXPECT_TRUE(torch::allclose(y, expected, 1e-5, 1e-5)) << y << "\n" << expected;
}

TEST(LMF, EvalModeIsDeterministicAndDropoutActsInTraining) {
  torch::manual_seed(4);
  const auto c = tiny_config({"model.dropout=0.5"});
  ModelPtr model = make_model(c.model, c.data.modalities, 1);
  const auto x = random_inputs(c.data.modalities, 16);
  model->eval();
  EXPECT_TRUE(torch::equal(model->forward(x), model->forward(x)));
  model->train();
  EXPECT_FALSE(torch::equal(model->forward(x), model->forward(x)));
}

TEST(Models, FactoryRejectsWhatItCannotBuild) {
  const auto c = tiny_config();
  EXPECT_THROW(make_model(c.model, c.data.modalities, 0), ConfigError);
}

TEST(Models, ParameterCountsAddUp) {
  const auto c = tiny_config();
  ModelPtr model = make_model(c.model, c.data.modalities, 1);
  const auto counts = parameter_counts(*model);
  // encoders: (16*8+8) + (8*8+8) + (24*8+8); fusion: 3 factors (2, 9, 4), rank weights, bias;
  // head: 4 + 1.
  const int64_t encoders = 136 + 72 + 200, fusion = 3 * 2 * 9 * 4 + 2 + 4, head = 5;
  ASSERT_EQ(counts.size(), 4u);
  EXPECT_EQ(counts[0], (std::pair<std::string, int64_t>{"total", encoders + fusion + head}));
  EXPECT_EQ(counts[1], (std::pair<std::string, int64_t>{"encoders", encoders}));
  EXPECT_EQ(counts[2], (std::pair<std::string, int64_t>{"fusion", fusion}));
  EXPECT_EQ(counts[3], (std::pair<std::string, int64_t>{"head", head}));
}

TEST(LMF, DescriptionNamesEveryParameterAndTheStructure) {
  const auto c = tiny_config({"model.rank=3", "model.fused_dim=5",
                              "model.encoders={\"text\":[6,7]}", "model.dropout=0.25"});
  auto model = LMF(LMFOptions(c.data.modalities, 2).model(c.model));
  const LMFDescription d = model->describe();
  EXPECT_TRUE(d.complete());
  int64_t total = 0;
  for (const auto& p : model->parameters()) total += p.numel();
  EXPECT_EQ(d.module_parameters, total);
  ASSERT_EQ(d.encoders.size(), 3u);
  EXPECT_EQ(d.encoders[2].hidden, (std::vector<int64_t>{6, 7}));
  EXPECT_EQ(d.encoders[2].output_dim(), 7);
  EXPECT_EQ(d.encoders[0].input_dim, 16);
  EXPECT_EQ(d.encoders[0].activation, Activation::ReLU);
  EXPECT_DOUBLE_EQ(d.encoders[1].dropout, 0.25);
  EXPECT_EQ(d.rank, 3);
  EXPECT_EQ(d.fused_dim, 5);
  EXPECT_EQ(d.output_dim, 2);
  EXPECT_TRUE(d.has_head());
  // The description holds the module's own tensors, not copies.
  EXPECT_TRUE(d.factors[2].is_same(model->fusion->factors[2]));
  EXPECT_TRUE(d.head_weight.is_same(model->head->weight));
  EXPECT_EQ(d.factor_layouts[2].rows, 8);  // d + 1 with d = 7
  // Summed rank weights are a buffer, not a parameter; no head when fused_dim == output.
  const auto s = tiny_config({"model.rank_weighting=sum", "model.fused_dim=2"});
  const auto plain = LMF(LMFOptions(s.data.modalities, 2).model(s.model))->describe();
  EXPECT_TRUE(plain.complete());
  EXPECT_EQ(plain.rank_weighting, RankWeighting::Sum);
  EXPECT_FALSE(plain.has_head());
}

TEST(LMF, FactorLayoutsFlatViewIsTheSameInEveryForm) {
  // V[i, r * out + j] = W[r, i, j], written out by hand, against the layout's three forms.
  const FactorLayout layout{3, 4, 2};
  const auto w = torch::randn({3, 4, 2});
  auto expected = torch::empty({4, 6});
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t j = 0; j < 2; ++j) expected[i][r * 2 + j] = w[r][i][j];
  EXPECT_TRUE(torch::equal(layout.flatten(w), expected));
  auto v = torch::empty({4, 6});
  layout.flatten_into(w.data_ptr<float>(), v.data_ptr<float>());
  EXPECT_TRUE(torch::equal(v, expected));
  auto back = torch::ones({3, 4, 2});
  layout.add_unflattened(expected.data_ptr<float>(), back.data_ptr<float>());
  EXPECT_TRUE(torch::equal(back, w + 1));
}

TEST(LMF, TanhEncodersComputeTanh) {
  const auto c = tiny_config({"model.activation=tanh", "model.encoder_hidden=[3]"});
  auto encoder = MLPEncoder(16, std::vector<int64_t>{3}, 0.0, Activation::Tanh);
  const auto x = torch::randn({4, 16});
  const auto description = encoder->describe();
  const auto& layer = description.layers[0];
  EXPECT_TRUE(
      torch::allclose(encoder->forward(x), torch::tanh(x.mm(layer.weight.t()) + layer.bias)));
  EXPECT_EQ(
      make_model(c.model, c.data.modalities, 1)->as<LMFImpl>()->describe().encoders[0].activation,
      Activation::Tanh);
}
