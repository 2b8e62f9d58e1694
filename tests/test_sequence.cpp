// Sequence modalities (data/sequence.hpp, sequence files, scaling, and the sequence
// encoders of models/models.hpp): rows keep their steps and lengths together, files in
// either padding read to the same rows, padding never changes an encoding, and each
// encoder matches an independent computation (hand-made pooling, one row at a time
// through the same LibTorch module without any padding).
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/data/data_file.hpp"
#include "mmfusion/data/scaling.hpp"
#include "mmfusion/data/sequence.hpp"
#include "mmfusion/data/synthetic.hpp"
#include "mmfusion/cli/commands.hpp"
#include "mmfusion/mkl/mkl_experiment.hpp"
#include "mmfusion/models/lstm.hpp"
#include "mmfusion/models/models.hpp"
#include "mmfusion/training/run.hpp"
#include "mmfusion/training/step.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

namespace {

// Steps [N, T, D] with each row's valid steps first and random values in the padding too
// (pack must zero them), and lengths [N] that include 0 and T.
struct Raw {
  torch::Tensor steps, lengths;
};
Raw raw(int64_t N, int64_t T, int64_t D, uint64_t seed = 1) {
  torch::manual_seed(seed);
  Raw r{torch::randn({N, T, D}), torch::randint(0, T + 1, {N}, torch::kInt64)};
  r.lengths[0] = 0;
  r.lengths[1] = T;
  if (N > 2) r.lengths[2] = 1;
  return r;
}

// A modality list with one sequence, text, of D features per step.
std::vector<ModalityConfig> one_sequence(int64_t D, Padding padding = Padding::Back) {
  ModalityConfig audio{"audio", 3};
  ModalityConfig text{"text", D};
  text.sequence = true;
  text.padding = padding;
  return {audio, text};
}

}  // namespace

TEST(Sequence, PackHoldsLengthsAndValidStepsAndZeroPadding) {
  const Raw r = raw(6, 5, 3);
  const auto rows = sequence::pack(r.steps, r.lengths);
  ASSERT_EQ(rows.sizes(), (std::vector<int64_t>{6, 1 + 5 * 3}));
  EXPECT_TRUE(torch::equal(sequence::lengths(rows), r.lengths));
  const auto values = sequence::values(rows, 3);
  for (int64_t i = 0; i < 6; ++i) {
    const int64_t L = r.lengths[i].item<int64_t>();
    EXPECT_TRUE(torch::equal(values[i].slice(0, 0, L), r.steps[i].slice(0, 0, L))) << i;
    EXPECT_EQ(values[i].slice(0, L).abs().sum().item<float>(), 0.0f) << i;
    const auto mask = sequence::mask(rows, 3)[i];
    EXPECT_EQ(mask.sum().item<float>(), float(L));
  }
  // Row operations keep a row's steps with its length (what gathers and swaps rely on).
  const auto picked = rows.index({torch::tensor({4, 0})});
  EXPECT_EQ(sequence::lengths(picked)[0].item<int64_t>(), r.lengths[4].item<int64_t>());
  EXPECT_EQ(sequence::steps(rows, 3), 5);
  expect_error<c10::Error>([&] { sequence::steps(rows, 4); }, "4 features per step");
}

TEST(Sequence, FrontPaddingMovesEachRowsStepsToTheEndAndBack) {
  // By hand: T = 4, one feature, row lengths 2 and 0 and 4.
  const auto back = torch::tensor({1.f, 2.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 5.f, 6.f, 7.f, 8.f})
                        .view({3, 4, 1});
  const auto lengths = torch::tensor({2, 0, 4}, torch::kInt64);
  const auto front = sequence::back_to_front(back, lengths);
  EXPECT_TRUE(torch::equal(
      front.view({3, 4}),
      torch::tensor({0.f, 0.f, 1.f, 2.f, 0.f, 0.f, 0.f, 0.f, 5.f, 6.f, 7.f, 8.f}).view({3, 4})));
  EXPECT_TRUE(torch::equal(sequence::front_to_back(front, lengths), back));
}

TEST(Sequence, WithStepsPadsOrKeepsTheFirstSteps) {
  const Raw r = raw(5, 6, 2);
  const auto rows = sequence::pack(r.steps, r.lengths);
  const auto longer = sequence::with_steps(rows, 2, 13);
  EXPECT_EQ(sequence::steps(longer, 2), 13);
  EXPECT_TRUE(torch::equal(sequence::values(longer, 2).slice(1, 0, 6), sequence::values(rows, 2)));
  EXPECT_EQ(sequence::values(longer, 2).slice(1, 6).abs().sum().item<float>(), 0.0f);
  const auto shorter = sequence::with_steps(rows, 2, 3);
  EXPECT_TRUE(torch::equal(sequence::lengths(shorter), r.lengths.clamp_max(3)));
  EXPECT_TRUE(torch::equal(sequence::values(shorter, 2), sequence::values(rows, 2).slice(1, 0, 3)));
}

// A [N, T, D] entry with <name>_lengths, in either padding and either format, reads to the
// same rows, writes back to the same entries, and bad lengths name the file, entry and row.
TEST(SequenceFiles, EitherPaddingAndFormatReadToTheSameRows) {
  TempDir dir;
  const Raw r = raw(7, 5, 4);
  const auto rows = sequence::pack(r.steps, r.lengths);
  Dataset d;
  d.names = {"audio", "text"};
  d.features = {torch::randn({7, 3}), rows};
  d.target = torch::randn({7, 1});
  ReadRule rule;
  for (const char* name : {"a.pt", "a.npz"}) {
    for (Padding p : {Padding::Back, Padding::Front}) {
      const auto mods = one_sequence(4, p);
      const std::string path = dir.file(std::string(to_string(p)) + name);
      write_data_file(d, path, mods);
      const Dataset back = read_data_file(path, mods, rule);
      EXPECT_TRUE(torch::equal(back.features[1], rows)) << path;
      EXPECT_TRUE(torch::equal(back.features[0], d.features[0])) << path;
      // The same file read as the other padding is other rows (the entry really differs).
      if (p == Padding::Front)
        EXPECT_FALSE(torch::equal(read_data_file(path, one_sequence(4), rule).features[1], rows));
    }
  }
  // Without a lengths entry every row has all T steps; max_len keeps the first steps.
  Dataset full = d;
  full.features[1] = sequence::pack(r.steps, torch::full({7}, 5, torch::kInt64));
  const std::string plain = dir.file("plain.pt");
  write_data_file(full, plain);  // no sequence named: [N, 1 + T * D] rows as they are
  {
    Dataset as_steps = full;
    as_steps.features[1] = r.steps;
    write_data_file(as_steps, plain);
  }
  EXPECT_TRUE(torch::equal(read_data_file(plain, one_sequence(4), rule).features[1],
                           full.features[1]));
  auto capped = one_sequence(4);
  capped[1].max_len = 2;
  EXPECT_TRUE(torch::equal(read_data_file(plain, capped, rule).features[1],
                           sequence::with_steps(full.features[1], 4, 2)));
}

TEST(SequenceFiles, BadEntriesAreOneLineErrorsNamingFileEntryAndRow) {
  TempDir dir;
  ReadRule rule;
  rule.required = false;
  auto write = [&](const std::string& name, const torch::Tensor& steps,
                   const torch::Tensor& lengths) {
    Dataset d;
    d.names = {"audio", "text"};
    d.features = {torch::randn({steps.size(0), 3}), steps};
    if (lengths.defined()) {
      d.names.push_back("text_lengths");
      d.features.push_back(lengths);
    }
    const std::string path = dir.file(name);
    write_data_file(d, path);
    return path;
  };
  const auto steps = torch::randn({4, 5, 2});
  const auto mods = one_sequence(2);
  std::string p = write("long.pt", steps, torch::tensor({1, 2, 6, 0}, torch::kInt64));
  expect_error([&] { read_data_file(p, mods, rule); },
               p + ": entry \"text_lengths\" holds length 6 in row 2, outside [0, 5]");
  p = write("neg.npz", steps, torch::tensor({1, -1, 2, 0}, torch::kInt32));
  expect_error([&] { read_data_file(p, mods, rule); }, "holds length -1 in row 1");
  p = write("float.pt", steps, torch::tensor({1.f, 2.f, 3.f, 4.f}));
  expect_error([&] { read_data_file(p, mods, rule); },
               "entry \"text_lengths\" has dtype Float, expected integer lengths");
  p = write("count.pt", steps, torch::tensor({1, 2}, torch::kInt64));
  expect_error([&] { read_data_file(p, mods, rule); }, "expected [4] (one length per row");
  p = write("flat.pt", torch::randn({4, 10}), torch::Tensor());
  expect_error([&] { read_data_file(p, mods, rule); },
               "entry \"text\" has shape [4, 10], expected [N, T, 2] (a sequence)");
  auto nan = steps.clone();
  nan[3][4][1] = std::numeric_limits<float>::quiet_NaN();
  p = write("nan.pt", nan, torch::Tensor());
  expect_error([&] { read_data_file(p, mods, rule); }, "text");
}

// Scaling of a sequence: per feature of a step, over the valid steps of the training rows
// (closed form here: the statistics of the stacked valid steps); padding stays zero.
TEST(SequenceScaling, StatisticsOverValidStepsAndPaddingStaysZero) {
  const Raw r = raw(9, 6, 3);
  const auto rows = sequence::pack(r.steps * 3 + 2, r.lengths);
  ExperimentConfig c = tiny_config();
  c.data.modalities = one_sequence(3);
  c.data.standardize = Standardize::ZScore;
  Dataset train;
  train.names = {"audio", "text"};
  train.features = {torch::randn({9, 3}), rows};
  train.target = torch::randn({9, 1});
  const Scaling s = Scaling::fit(c.data, train);
  const Dataset scaled = s.features(train);
  std::vector<torch::Tensor> valid;
  for (int64_t i = 0; i < 9; ++i)
    valid.push_back((r.steps[i] * 3 + 2).slice(0, 0, r.lengths[i].item<int64_t>()));
  const auto stacked = torch::cat(valid).to(torch::kFloat64);
  const auto mean = stacked.mean(0), sd = stacked.std(0, /*unbiased=*/false);
  const auto got = sequence::values(scaled.features[1], 3);
  for (int64_t i = 0; i < 9; ++i) {
    const int64_t L = r.lengths[i].item<int64_t>();
    const auto expected = ((valid[i].to(torch::kFloat64) - mean) / sd).to(torch::kFloat32);
    EXPECT_TRUE(torch::allclose(got[i].slice(0, 0, L), expected, 1e-4, 1e-5)) << i;
    EXPECT_EQ(got[i].slice(0, L).abs().sum().item<float>(), 0.0f) << i;
  }
  EXPECT_TRUE(torch::equal(sequence::lengths(scaled.features[1]), r.lengths));
}

// --- Encoders ---------------------------------------------------------------------------

namespace {

ModelConfig model_with(const std::string& text_encoder, const std::string& extra = "") {
  ExperimentConfig c = tiny_config({"data.source=file", "data.path=x.pt",
                                    "data.modalities=[{\"name\":\"audio\",\"dim\":3},"
                                    "{\"name\":\"text\",\"dim\":4,\"sequence\":true,"
                                    "\"max_len\":12}]",
                                    "model.encoders={\"text\":" + text_encoder + "}" + extra});
  return c.model;
}

EncoderPtr text_encoder(const std::string& json, uint64_t seed = 5) {
  torch::manual_seed(seed);
  auto mods = one_sequence(4);
  mods[1].max_len = 12;
  auto e = make_encoder(mods[1], model_with(json));
  e->eval();
  return e;
}

}  // namespace

TEST(SequenceEncoders, PoolingMatchesAHandComputation) {
  const Raw r = raw(6, 5, 4);
  const auto rows = sequence::pack(r.steps, r.lengths);
  const auto mean = pool_sequence(EncoderType::Mean, rows, 4);
  const auto padded = pool_sequence(EncoderType::MeanPadded, rows, 4);
  const auto last = pool_sequence(EncoderType::Last, rows, 4);
  for (int64_t i = 0; i < 6; ++i) {
    const int64_t L = r.lengths[i].item<int64_t>();
    const auto valid = r.steps[i].slice(0, 0, L);
    const auto zeros = torch::zeros({4});
    EXPECT_TRUE(torch::allclose(mean[i], L ? valid.mean(0) : zeros, 1e-5, 1e-6)) << i;
    EXPECT_TRUE(torch::allclose(padded[i], valid.sum(0) / 5.0, 1e-5, 1e-6)) << i;
    EXPECT_TRUE(torch::equal(last[i], L ? r.steps[i][L - 1] : zeros)) << i;
  }
  // mean with an MLP: the MLP of the masked mean.
  auto e = text_encoder(R"({"type":"mean","hidden":[3]})");
  auto params = e->named_parameters();
  EXPECT_TRUE(torch::allclose(
      e->forward(rows),
      torch::relu(torch::addmm(params["fc0.bias"], mean, params["fc0.weight"].t())), 1e-5,
      1e-6));
  EXPECT_EQ(e->output_dim(), 3);
}

// The recurrent encoders against the same module run on one row at a time, cut to its
// own length (no padding at all): final hidden state or the mean of the outputs.
TEST(SequenceEncoders, RecurrentEncodersEqualTheModuleOnEachUnpaddedRow) {
  const Raw r = raw(7, 6, 4);
  const auto rows = sequence::pack(r.steps, r.lengths);
  for (const std::string json :
       {R"({"type":"lstm","hidden":5})", R"({"type":"gru","hidden":5,"layers":2})",
        R"({"type":"lstm","hidden":3,"bidirectional":true,"pooling":"mean"})",
        R"({"type":"gru","hidden":4,"bidirectional":true,"out":2})"}) {
    auto e = text_encoder(json);
    const auto got = e->forward(rows);
    auto modules = e->named_children();
    std::shared_ptr<torch::nn::Module> rnn;
    for (const auto& item : e->named_children())
      if (item.key() == "rnn") rnn = item.value();
    ASSERT_TRUE(rnn) << json;
    const auto parsed = nlohmann::json::parse(json);
    const bool bi = parsed.value("bidirectional", false);
    const bool mean = parsed.value("pooling", "last") == "mean";
    const int64_t H = parsed["hidden"].get<int64_t>();
    for (int64_t i = 0; i < 7; ++i) {
      const int64_t L = r.lengths[i].item<int64_t>();
      torch::Tensor expected = torch::zeros({H * (bi ? 2 : 1)});
      if (L > 0) {
        const auto x = r.steps[i].slice(0, 0, L).unsqueeze(0);  // [1, L, D]
        torch::Tensor outputs, final_h;
        if (auto* lstm = rnn->as<torch::nn::LSTMImpl>()) {
          auto out = lstm->forward(x);
          outputs = std::get<0>(out);
          final_h = std::get<0>(std::get<1>(out));
        } else {
          auto out = rnn->as<torch::nn::GRUImpl>()->forward(x);
          outputs = std::get<0>(out);
          final_h = std::get<1>(out);
        }
        if (mean) {
          expected = outputs[0].mean(0);
        } else {
          const int64_t dirs = bi ? 2 : 1;
          expected = final_h.slice(0, final_h.size(0) - dirs).reshape({-1});
        }
      }
      if (parsed.contains("out")) {
        const auto p = e->named_parameters();
        expected = torch::addmm(p["out.bias"].unsqueeze(0), expected.unsqueeze(0),
                                p["out.weight"].t())
                       .squeeze(0);
      }
      EXPECT_TRUE(torch::allclose(got[i], expected, 1e-5, 1e-6)) << json << " row " << i;
    }
  }
}

// Adding 7 steps of padding changes no encoding by more than 1e-5, for every type but
// mean_padded (which divides by the padded length on purpose, as MMSA does).
TEST(SequenceEncoders, PaddingChangesNoEncoding) {
  const Raw r = raw(8, 5, 4);
  const auto rows = sequence::pack(r.steps, r.lengths);
  const auto padded = sequence::with_steps(rows, 4, 12);
  for (const std::string json :
       {R"({"type":"mean","hidden":[3]})", R"({"type":"last","hidden":[3]})",
        R"({"type":"lstm","hidden":5})", R"({"type":"lstm","hidden":5,"pooling":"mean"})",
        R"({"type":"gru","hidden":4,"bidirectional":true})",
        R"({"type":"transformer","width":8,"heads":2,"ff":16})",
        R"({"type":"transformer","width":8,"heads":2,"ff":16,"pooling":"token","layers":2})",
        R"({"type":"transformer","width":8,"heads":4,"ff":16,"positions":"learned"})"}) {
    auto e = text_encoder(json);
    const auto a = e->forward(rows), b = e->forward(padded);
    EXPECT_TRUE(torch::isfinite(a).all().item<bool>()) << json;
    EXPECT_LE((a - b).abs().max().item<float>(), 1e-5) << json;
    // And the steps matter: changing a valid step changes its row's encoding.
    auto changed = rows.clone();
    sequence::values(changed, 4)[1] += 1.0;  // row 1 has every step valid
    EXPECT_GT((e->forward(changed)[1] - a[1]).abs().max().item<float>(), 1e-6) << json;
  }
  auto e = text_encoder(R"({"type":"mean_padded","hidden":[]})");
  EXPECT_TRUE(torch::allclose(e->forward(padded) * 12.0, e->forward(rows) * 5.0, 1e-5, 1e-5));
}

TEST(SequenceEncoders, TransformerIsPermutationFreeOnlyWithoutPositions) {
  // The masked mean of a transformer's outputs over valid steps, computed by hand from
  // LibTorch's layer on one unpadded row (sinusoidal positions added to the projection).
  auto e = text_encoder(R"({"type":"transformer","width":8,"heads":2,"ff":16})");
  const Raw r = raw(3, 5, 4);
  const auto rows = sequence::pack(r.steps, torch::tensor({3, 5, 2}, torch::kInt64));
  const auto got = e->forward(rows);
  std::shared_ptr<torch::nn::Module> project, layers;
  for (const auto& item : e->named_children()) {
    if (item.key() == "project") project = item.value();
    if (item.key() == "layers") layers = item.value();
  }
  ASSERT_TRUE(project && layers);
  for (int64_t i = 0; i < 3; ++i) {
    const int64_t L = sequence::lengths(rows)[i].item<int64_t>();
    auto h = project->as<torch::nn::LinearImpl>()->forward(r.steps[i].slice(0, 0, L));
    auto pe = torch::zeros({L, 8});
    for (int64_t t = 0; t < L; ++t)
      for (int64_t k = 0; k < 4; ++k) {
        const double angle = double(t) / std::pow(10000.0, 2.0 * k / 8.0);
        pe[t][2 * k] = std::sin(angle);
        pe[t][2 * k + 1] = std::cos(angle);
      }
    auto y = (h + pe).unsqueeze(1);  // [L, 1, W]
    for (const auto& layer : *layers->as<torch::nn::ModuleListImpl>())
      y = layer->as<torch::nn::TransformerEncoderLayerImpl>()->forward(y);
    EXPECT_TRUE(torch::allclose(got[i], y.squeeze(1).mean(0), 1e-4, 1e-5)) << i;
  }
}

TEST(SequenceEncoders, ConfigsAreCheckedAgainstTheirModality) {
  const std::string mods =
      "data.modalities=[{\"name\":\"audio\",\"dim\":3},{\"name\":\"text\",\"dim\":4,"
      "\"sequence\":true}]";
  auto with = [&](const std::vector<std::string>& more) {
    std::vector<std::string> all = {"data.source=file", "data.path=x.pt", mods};
    all.insert(all.end(), more.begin(), more.end());
    return tiny_config(all);
  };
  expect_error<ConfigError>([&] { with({"model.encoders={\"audio\":{\"type\":\"lstm\"}}"}); },
                            "a lstm encoder takes a sequence, and \"audio\" is a vector");
  expect_error<ConfigError>([&] { with({"model.encoders={\"text\":[4]}"}); },
                            "\"text\" is a sequence: an mlp takes a vector");
  expect_error<ConfigError>(
      [&] { with({"model.encoders={\"text\":{\"type\":\"lstm\",\"width\":3}}"}); },
      "model.encoders.text.width: a lstm encoder has no \"width\"");
  expect_error<ConfigError>(
      [&] { with({"model.encoders={\"text\":{\"type\":\"transformer\",\"width\":6,\"heads\":4}}"}); },
      "4 heads do not divide width 6");
  expect_error<ConfigError>(
      [&] { with({"model.encoders={\"text\":{\"type\":\"transformer\",\"positions\":\"learned\"}}"}); },
      "learned positions need the modality's max_len");
  expect_error<ConfigError>(
      [&] { with({"model.encoders={\"text\":{\"type\":\"gru\",\"pooling\":\"token\"}}"}); },
      "model.encoders.text.pooling");
  expect_error<ConfigError>(
      [&] {
        tiny_config({"data.source=file", "data.path=x.pt",
                     "data.modalities=[{\"name\":\"a\",\"dim\":3,\"max_len\":4}]"});
      },
      "only a sequence has one");
  // A sequence without an encoder entry is the masked mean of encoder_hidden's MLP; every
  // form writes itself back and reads to the same config.
  const auto c = with({"model.encoders={\"text\":{\"type\":\"gru\",\"hidden\":6,"
                       "\"bidirectional\":true,\"dropout\":0.1,\"out\":3}}"});
  EXPECT_EQ(encoder_for(c.model, c.data.modalities[1]).type, EncoderType::GRU);
  EXPECT_EQ(encoder_output_dims(c.model, c.data.modalities), (std::vector<int64_t>{8, 3}));
  EXPECT_EQ(parse_config(to_json(c)).model.encoders, c.model.encoders);
  EXPECT_EQ(parse_config(to_json(c)).data.modalities, c.data.modalities);
  const auto d = with({});
  EXPECT_EQ(encoder_for(d.model, d.data.modalities[1]).type, EncoderType::Mean);
  EXPECT_EQ(to_json(d)["data"]["modalities"][1]["padding"], "back");
}

// --- Models and training on sequence files -------------------------------------------

namespace {

// A regression file whose target needs the text's steps: the last valid step's first
// feature plus audio's first, text of 4 features and up to 6 steps, some rows empty.
std::string sequence_file(const TempDir& dir, int64_t N = 160) {
  torch::manual_seed(11);
  auto steps = torch::randn({N, 6, 4});
  auto lengths = torch::randint(0, 7, {N}, torch::kInt64);
  const auto rows = sequence::pack(steps, lengths);
  const auto last = pool_sequence(EncoderType::Last, rows, 4);
  Dataset d;
  d.names = {"audio", "text"};
  d.features = {torch::randn({N, 3}), rows};
  d.target = (last.select(1, 0) + d.features[0].select(1, 0)).unsqueeze(1);
  const std::string path = dir.file("seq.pt");
  write_data_file(d, path, one_sequence(4));
  return path;
}

std::vector<std::string> sequence_run(const std::string& path, const std::string& text) {
  return {"data.source=file", "data.path=" + path,
          "data.modalities=[{\"name\":\"audio\",\"dim\":3},{\"name\":\"text\",\"dim\":4,"
          "\"sequence\":true}]",
          "model.encoders={\"text\":" + text + "}", "train.batch_size=16"};
}

}  // namespace

TEST(SequenceModels, EveryModelTypeTakesASequenceThroughItsEncoder) {
  TempDir dir;
  const std::string path = sequence_file(dir, 40);
  for (const char* type : {"lmf", "tfn", "concat", "late", "intense"}) {
    auto sets = sequence_run(path, R"({"type":"gru","hidden":5})");
    sets.push_back(std::string("model.type=") + type);
    const ExperimentConfig c = tiny_config(sets);
    const DataSplits data = load_splits(c);
    torch::manual_seed(1);
    ModelPtr model = make_model(c.model, c.data.modalities, 1);
    const auto y = model->forward(data.train.features);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{data.train.size(), 1})) << type;
    EXPECT_TRUE(torch::isfinite(y).all().item<bool>()) << type;
    y.sum().backward();
    const auto grad = model->named_parameters()["encoders.text.rnn.weight_ih_l0"].grad();
    ASSERT_TRUE(grad.defined()) << type;
    EXPECT_GT(grad.abs().sum().item<float>(), 0.0f) << type;
  }
}

// An LSTM-LMF trained on a sequence file: autograd, and says why; its checkpoint
// evaluates to its results; a run stopped after 2 epochs and resumed to 4 ends where a
// straight run of 4 does, exactly.
TEST(SequenceModels, AnLstmLmfEvaluatesToItsResultsAndResumesExactly) {
  TempDir dir;
  const std::string path = sequence_file(dir);
  auto sets = sequence_run(path, R"({"type":"lstm","hidden":8,"out":6})");
  const ExperimentConfig c = tiny_config(sets);
  ModelPtr model = make_model(c.model, c.data.modalities, 1);
  StepRunner runner(model, c.train);
  EXPECT_EQ(runner.why_autograd(),
            "an encoder reads a sequence (type lstm; the hand-written pass computes MLPs of vectors)");

  auto train = [&](const std::string& out, int epochs, const std::string& resume = "") {
    TrainArgs args;
    if (resume.empty()) args.config = source_path("configs/tiny.json");
    args.resume = resume;
    args.overrides = resume.empty() ? sets : std::vector<std::string>{};
    args.overrides.push_back("train.epochs=" + std::to_string(epochs));
    args.out = dir.file(out);
    return run_train(args).results;
  };
  const auto straight = train("straight", 4);
  train("half", 2);
  const auto resumed = train("resumed", 4, dir.file("half/checkpoints/last.pt"));
  EXPECT_EQ(resumed["test"]["loss"].get<double>(), straight["test"]["loss"].get<double>());
  EvalArgs eval;
  eval.checkpoint = dir.file("straight/checkpoints/best.pt");
  eval.device = "cpu";
  const nlohmann::json now = run_eval(eval);
  EXPECT_NEAR(now["mse"].get<double>(), straight["test"]["mse"].get<double>(), 1e-9);
}

// --- The synthetic generator's sequences ---------------------------------------------

namespace {
std::vector<std::string> synthetic_sequences(const std::string& temporal,
                                             const std::string& text_sequence = "true") {
  return {"data.modalities=[{\"name\":\"visual\",\"dim\":5},{\"name\":\"audio\",\"dim\":4},"
          "{\"name\":\"text\",\"dim\":6,\"sequence\":" +
              text_sequence + (text_sequence == "true" ? ",\"max_len\":9" : "") + "}]",
          "data.synthetic.temporal=" + temporal};
}
}  // namespace

// Each row's length lies in [min_len, max_len]; its static features are the vector the
// same config draws without sequences, at every valid step; its temporal features are
// that vector times sqrt(2) cos(2 pi t / L), so step 0 holds them and their mean over the
// valid steps is zero; the vector modalities are untouched.
TEST(SyntheticSequences, StaticFeaturesRepeatAndTemporalOnesCancelInTheMean) {
  for (const char* generator : {"1", "2"}) {
    auto sets = synthetic_sequences("0.5");
    sets.push_back(std::string("data.synthetic.generator=") + generator);
    auto plain_sets = synthetic_sequences("0.5", "false");
    plain_sets.push_back(sets.back());
    const auto c = tiny_config(sets), plain = tiny_config(plain_sets);
    const Dataset seq = generate_synthetic(c.data, c.seed, Split::Train);
    const Dataset vec = generate_synthetic(plain.data, plain.seed, Split::Train);
    EXPECT_TRUE(torch::equal(seq.features[0], vec.features[0]));
    EXPECT_TRUE(torch::equal(seq.target, vec.target));
    const auto lengths = sequence::lengths(seq.features[2]);
    EXPECT_GE(lengths.min().item<int64_t>(), 4);  // half of max_len 9
    EXPECT_LE(lengths.max().item<int64_t>(), 9);
    EXPECT_GT(lengths.max().item<int64_t>() - lengths.min().item<int64_t>(), 2);  // they vary
    const auto steps = sequence::values(seq.features[2], 6);
    const auto x = vec.features[2];
    for (int64_t i = 0; i < seq.size(); i += 37) {
      const int64_t L = lengths[i].item<int64_t>();
      for (int64_t t = 0; t < L; ++t) {
        EXPECT_TRUE(torch::equal(steps[i][t].slice(0, 0, 3), x[i].slice(0, 0, 3))) << i << " " << t;
        const double p = std::sqrt(2.0) * std::cos(2 * M_PI * double(t) / double(L));
        EXPECT_TRUE(torch::allclose(steps[i][t].slice(0, 3), x[i].slice(0, 3) * p, 1e-5, 1e-6));
      }
    }
    const auto mean = sequence::masked_mean(seq.features[2], 6);
    EXPECT_LT(mean.slice(1, 3).abs().max().item<float>(), 1e-5);
    EXPECT_TRUE(torch::allclose(mean.slice(1, 0, 3), x.slice(1, 0, 3), 1e-5, 1e-6));
  }
}

namespace {
// data.synthetic.moment: marker a (4 features), content b (6), up to 12 steps each, and a
// vector modality c the target ignores.
std::vector<std::string> moment_sets(int64_t rows) {
  return {"data.modalities=[{\"name\":\"a\",\"dim\":4,\"sequence\":true,\"max_len\":12},"
          "{\"name\":\"b\",\"dim\":6,\"sequence\":true,\"max_len\":12},{\"name\":\"c\",\"dim\":3}]",
          "data.synthetic.weights=null", "data.synthetic.moment={\"marker\":\"a\",\"content\":\"b\"}",
          "data.synthetic.min_len=3", "data.train_size=" + std::to_string(rows),
          "data.test_size=" + std::to_string(rows)};
}

// Test R^2 of least squares fitted on the training rows: y ~ x (x [N, k], with an intercept).
double least_squares_r2(const torch::Tensor& x_train, const torch::Tensor& y_train,
                        const torch::Tensor& x_test, const torch::Tensor& y_test) {
  auto with_one = [](const torch::Tensor& x) {
    return torch::cat({x.to(torch::kFloat64), torch::ones({x.size(0), 1}, torch::kFloat64)}, 1);
  };
  const auto a = with_one(x_train), b = y_train.to(torch::kFloat64);
  const auto w = torch::linalg_solve(a.t().matmul(a) + 1e-9 * torch::eye(a.size(1), torch::kFloat64),
                                     a.t().matmul(b));
  const auto y = y_test.to(torch::kFloat64);
  const auto residual = (y - with_one(x_test).matmul(w)).pow(2).sum();
  return 1 - (residual / (y - y.mean()).pow(2).sum()).item<double>();
}

// What the marker tells: its marked step (the one step far above the noise) and the
// row's length, as one-hot columns [N, 2 T]; and the oracle's feature: the content at that
// step less its mean, times sqrt(L / (L - 1)) [N, D].
struct MomentView {
  torch::Tensor marker_onehot, oracle, moments;
};
MomentView moment_view(const Dataset& d) {
  const auto lengths = sequence::lengths(d.features[0]);
  const auto a = sequence::values(d.features[0], 4), b = sequence::values(d.features[1], 6);
  const int64_t N = d.size(), T = a.size(1);
  const auto moments = a.norm(2, 2).argmax(1);
  MomentView v;
  v.moments = moments;
  v.marker_onehot = torch::cat({torch::one_hot(moments, T), torch::one_hot(lengths - 1, T)}, 1)
                        .to(torch::kFloat64);
  const auto at = b.index({torch::arange(N), moments});
  const auto L = lengths.to(torch::kFloat32).unsqueeze(1);
  v.oracle = (at - sequence::masked_mean(d.features[1], 6)) * (L / (L - 1)).sqrt();
  return v;
}
}  // namespace

// data.synthetic.moment: the marker and the content share each row's length; the marker
// has one step far above its noise; least squares on the content at that step (less its
// mean) reaches the truth's best R^2, while the marker alone (its moment and length) and the
// content alone (its mean, first and last steps) reach nothing, as the truth says.
TEST(SyntheticMoment, OnlyTheContentAtTheMarkedStepTellsTheTargetAsTheTruthSays) {
  const auto c = tiny_config(moment_sets(20000));
  const Dataset train = generate_synthetic(c.data, c.seed, Split::Train);
  const Dataset test = generate_synthetic(c.data, c.seed, Split::Test);
  ASSERT_EQ(train.features.size(), 3u);
  for (const Dataset* d : {&train, &test}) {
    const auto la = sequence::lengths(d->features[0]);
    EXPECT_TRUE(torch::equal(la, sequence::lengths(d->features[1])));
    EXPECT_EQ(la.min().item<int64_t>(), 3);
    EXPECT_EQ(la.max().item<int64_t>(), 12);
    // One step stands out (norm 2 against noise of about 0.2), and it is a valid one.
    const auto norms = sequence::values(d->features[0], 4).norm(2, 2);
    EXPECT_EQ((norms > 1).sum(1).eq(1).all().item<bool>(), true);
    EXPECT_TRUE(moment_view(*d).moments.lt(la).all().item<bool>());
  }
  const auto truth = synthetic_truth(c.data, c.seed);
  ASSERT_TRUE(truth.r2_exact);
  ASSERT_EQ(truth.subsets.size(), 1u);
  EXPECT_EQ(truth.subsets[0].modalities, (std::vector<std::string>{"a", "b"}));
  const double best = 1 / ((1 + 0.01) * (1 + 0.01));  // feature and target noise 0.1
  EXPECT_NEAR(truth.best_r2, best, 1e-12);
  for (const auto& r : truth.r2) {
    const bool both = r.modalities.size() >= 2 && r.modalities[0] == "a" && r.modalities[1] == "b";
    EXPECT_DOUBLE_EQ(r.r2, both ? best : 0.0) << subset_name(r.modalities);
  }
  const MomentView tr = moment_view(train), te = moment_view(test);
  EXPECT_NEAR(least_squares_r2(tr.oracle, train.target, te.oracle, test.target), best, 0.01);
  EXPECT_LT(least_squares_r2(tr.marker_onehot, train.target, te.marker_onehot, test.target), 0.01);
  auto content_alone = [](const Dataset& d) {
    const auto b = sequence::values(d.features[1], 6);
    const auto last = b.index({torch::arange(d.size()), sequence::lengths(d.features[1]) - 1});
    return torch::cat({sequence::masked_mean(d.features[1], 6), b.select(1, 0), last}, 1);
  };
  EXPECT_LT(least_squares_r2(content_alone(train), train.target, content_alone(test), test.target),
            0.01);
  EXPECT_LT(least_squares_r2(train.features[2], train.target, test.features[2], test.target), 0.01);
  // Without the target noise and the feature noise, the oracle is exact.
  auto clean_sets = moment_sets(64);
  clean_sets.push_back("data.synthetic.target_noise=0");
  clean_sets.push_back("data.synthetic.feature_noise=0");
  const auto clean = tiny_config(clean_sets);
  const Dataset d = generate_synthetic(clean.data, clean.seed, Split::Train);
  const auto projection = least_squares_r2(moment_view(d).oracle, d.target, moment_view(d).oracle,
                                           d.target);
  EXPECT_NEAR(projection, 1.0, 1e-9);
}

// A training stream's moment rows are keyed by their index, like every synthetic row, and
// the class thresholds come from the same target.
TEST(SyntheticMoment, StreamRowsAreKeyedByIndexAndClassesCutTheTarget) {
  auto sets = moment_sets(256);
  sets.push_back("data.synthetic.stream=true");
  const auto c = tiny_config(sets);
  const TrainingStream stream(c);
  const Dataset whole = stream.rows(2, 0, 100), part = stream.rows(2, 30, 70);
  for (size_t m = 0; m < 3; ++m)
    EXPECT_TRUE(torch::equal(part.features[m], whole.features[m].slice(0, 30, 70)));
  EXPECT_TRUE(torch::equal(part.target, whole.target.slice(0, 30, 70)));
  auto classes = moment_sets(4000);
  for (const char* set : {"task=classification", "num_classes=3"}) classes.push_back(set);
  const auto cc = tiny_config(classes);
  const auto counts = torch::bincount(load_split(cc, Split::Train).target.view(-1));
  EXPECT_EQ(counts.size(0), 3);
  EXPECT_GT(counts.min().item<int64_t>(), 1200);  // equally likely: 1333 each
}

// Its rules: two distinct sequence modalities of the generator with the same max_len, not
// together with terms or weights; the resolved config keeps it.
TEST(SyntheticMoment, ConfigRulesNameTheKeyAndTheResolvedConfigKeepsIt) {
  const auto c = tiny_config(moment_sets(64));
  EXPECT_EQ(c.data.synthetic.moment.marker, "a");
  const auto again = parse_config(to_json(c));
  EXPECT_EQ(again.data.synthetic.moment.content, "b");
  EXPECT_FALSE(to_json(c)["data"]["synthetic"].contains("weights"));
  auto with = [](const std::string& moment, const std::string& extra = "") {
    auto s = moment_sets(64);
    s[2] = "data.synthetic.moment=" + moment;
    if (!extra.empty()) s.push_back(extra);
    return s;
  };
  expect_error<ConfigError>([&] { tiny_config(with("{\"marker\":\"c\",\"content\":\"b\"}")); },
                            "data.synthetic.moment.marker: \"c\" is not a sequence");
  expect_error<ConfigError>([&] { tiny_config(with("{\"marker\":\"a\",\"content\":\"a\"}")); },
                            "data.synthetic.moment.content: the same modality as the marker");
  expect_error<ConfigError>([&] { tiny_config(with("{\"marker\":\"a\",\"content\":\"z\"}")); },
                            "data.synthetic.moment.content: no modality named \"z\"");
  expect_error<ConfigError>([&] { tiny_config(with("{\"marker\":\"a\"}")); },
                            "data.synthetic.moment.content: required");
  expect_error<ConfigError>([&] { tiny_config(with("{\"marker\":\"a\",\"content\":\"b\",\"at\":1}")); },
                            "data.synthetic.moment.at: unknown key");
  auto longer = moment_sets(64);
  longer[0] = "data.modalities=[{\"name\":\"a\",\"dim\":4,\"sequence\":true,\"max_len\":12},"
              "{\"name\":\"b\",\"dim\":6,\"sequence\":true,\"max_len\":10}]";
  expect_error<ConfigError>([&] { tiny_config(longer); },
                            "data.synthetic.moment: \"a\" has max_len 12 and \"b\" 10");
  auto terms = moment_sets(64);
  terms[1] = "data.synthetic.terms=[{\"modalities\":[\"c\"]}]";
  expect_error<ConfigError>([&] { tiny_config(terms); },
                            "data.synthetic.moment: give either moment or terms, not both");
  auto weights = moment_sets(64);
  weights[1] = "data.synthetic.weights.bimodal=1";
  expect_error<ConfigError>([&] { tiny_config(weights); },
                            "data.synthetic.moment: give either moment or weights, not both");
}

TEST(SyntheticSequences, StreamsKeyEachRowsLengthByItsIndex) {
  auto sets = synthetic_sequences("1");
  sets.push_back("data.synthetic.stream=true");
  sets.push_back("data.synthetic.min_len=2");
  const auto c = tiny_config(sets);
  const TrainingStream stream(c);
  const Dataset whole = stream.rows(3, 0, 100);
  const Dataset part = stream.rows(3, 40, 70);
  EXPECT_TRUE(torch::equal(part.features[2], whole.features[2].slice(0, 40, 70)));
  EXPECT_FALSE(torch::equal(stream.rows(4, 0, 100).features[2], whole.features[2]));
  EXPECT_EQ(sequence::lengths(whole.features[2]).min().item<int64_t>(), 2);

  expect_error<ConfigError>(
      [] {
        tiny_config({"data.modalities=[{\"name\":\"a\",\"dim\":5},{\"name\":\"b\",\"dim\":3,"
                     "\"sequence\":true}]",
                     "data.synthetic.weights.trimodal=0"});
      },
      "\"b\" is a synthetic sequence: it needs \"max_len\" >= 2");
  auto bad = synthetic_sequences("1");
  bad.push_back("data.synthetic.min_len=10");
  expect_error<ConfigError>([&] { tiny_config(bad); }, "10 is more than \"text\"'s max_len 9");
}

// --- Against the generator's truth (slow) ---------------------------------------------

namespace {

// Two sequence modalities of 6 features and up to 10 steps, their factors' unimodal and
// bimodal terms, and `temporal` of each one's features written as a pattern over time.
std::vector<std::string> truth_run(const std::string& temporal, const std::string& encoder) {
  return {"threads=2",
          "data.modalities=[{\"name\":\"a\",\"dim\":6,\"sequence\":true,\"max_len\":10},"
          "{\"name\":\"b\",\"dim\":6,\"sequence\":true,\"max_len\":10}]",
          "data.train_size=4096", "data.val_size=512", "data.test_size=1024",
          "data.synthetic.latent_dim=2", "data.synthetic.shared_latent_dim=0",
          "data.synthetic.weights.trimodal=0", "data.synthetic.temporal=" + temporal,
          "model.encoders={\"a\":" + encoder + ",\"b\":" + encoder + "}", "model.rank=4",
          "model.fused_dim=8", "train.epochs=25", "train.lr=0.003", "train.batch_size=64"};
}

double test_r2(const TempDir& dir, const std::string& name, const std::vector<std::string>& sets) {
  TrainArgs args;
  args.config = source_path("configs/tiny.json");
  args.overrides = sets;
  args.out = dir.file(name);
  return run_train(args).results["test"]["r2"].get<double>();
}

}  // namespace

// All structure temporal: the LSTM and the transformer reach the best R^2 within 0.05;
// the mean over the steps sees none of it and stays below half of theirs.
TEST(SequenceTruth, TemporalStructureNeedsASequenceEncoder) {
  TempDir dir;
  const auto c = tiny_config(truth_run("1", R"({"type":"mean"})"));
  const double best = synthetic_truth(c.data, c.seed).best_r2;
  const double lstm = test_r2(dir, "lstm", truth_run("1", R"({"type":"lstm","hidden":16})"));
  const double transformer = test_r2(
      dir, "transformer",
      truth_run("1", R"({"type":"transformer","width":16,"heads":2,"ff":32,"dropout":0})"));
  const double mean = test_r2(dir, "mean", truth_run("1", R"({"type":"mean","hidden":[16]})"));
  std::printf("temporal-only: best %.3f, lstm %.3f, transformer %.3f, mean %.3f\n", best, lstm,
              transformer, mean);
  EXPECT_GE(lstm, best - 0.05);
  EXPECT_GE(transformer, best - 0.05);
  EXPECT_LE(mean, lstm / 2);
}

// All structure static: the mean over the steps is enough.
TEST(SequenceTruth, StaticStructureIsFoundByTheMean) {
  TempDir dir;
  const auto c = tiny_config(truth_run("0", R"({"type":"mean"})"));
  const double best = synthetic_truth(c.data, c.seed).best_r2;
  const double mean = test_r2(dir, "mean", truth_run("0", R"({"type":"mean","hidden":[16]})"));
  std::printf("static-only: best %.3f, mean %.3f\n", best, mean);
  EXPECT_GE(mean, best - 0.05);
}

// The written-out LSTM (lstm.hpp) against LibTorch's module on packed sequences, both
// inside the same encoder: outputs and every parameter's gradient, for last and mean
// pooling, with rows of length 0 and T.
TEST(SequenceEncoders, TheWrittenOutLstmMatchesLibTorchsInValueAndGradient) {
  const Raw r = raw(9, 7, 4);
  const auto rows = sequence::pack(r.steps, r.lengths);
  for (const std::string json :
       {R"({"type":"lstm","hidden":6})", R"({"type":"lstm","hidden":6,"pooling":"mean","out":3})"}) {
    auto e = text_encoder(json);
    auto* rec = dynamic_cast<RecurrentEncoderImpl*>(e.get());
    ASSERT_NE(rec, nullptr);
    ASSERT_TRUE(rec->fast_path());
    e->train();  // dropout is model.dropout, 0 in tiny.json
    auto run = [&](bool fast) {
      rec->use_fast_path(fast);
      e->zero_grad();
      const auto y = e->forward(rows);
      (y * torch::linspace(-1, 2, y.numel()).view(y.sizes())).sum().backward();
      std::map<std::string, torch::Tensor> grads;
      for (const auto& p : e->named_parameters()) grads[p.key()] = p.value().grad().clone();
      return std::make_pair(y.detach(), grads);
    };
    const auto [fast_y, fast_grads] = run(true);
    const auto [ref_y, ref_grads] = run(false);
    EXPECT_TRUE(torch::allclose(fast_y, ref_y, 1e-5, 1e-6)) << json;
    ASSERT_EQ(fast_grads.size(), ref_grads.size());
    for (const auto& [name, g] : ref_grads) {
      EXPECT_GT(g.abs().sum().item<float>(), 0.0f) << json << " " << name;
      EXPECT_TRUE(torch::allclose(fast_grads.at(name), g, 1e-4, 1e-6)) << json << " " << name;
    }
  }
  // Two layers or two directions take LibTorch's module.
  EXPECT_FALSE(dynamic_cast<RecurrentEncoderImpl*>(
                   text_encoder(R"({"type":"lstm","hidden":6,"layers":2})").get())
                   ->fast_path());
  EXPECT_FALSE(dynamic_cast<RecurrentEncoderImpl*>(
                   text_encoder(R"({"type":"lstm","hidden":6,"bidirectional":true})").get())
                   ->fast_path());
}

TEST(SequenceEncoders, TheWrittenOutLstmsInputGradientIsLibTorchs) {
  torch::manual_seed(4);
  torch::nn::LSTM lstm(torch::nn::LSTMOptions(3, 4).batch_first(true));
  auto p = lstm->named_parameters();
  const auto x0 = torch::randn({5, 6, 3});
  auto x1 = x0.clone().requires_grad_(true), x2 = x0.clone().requires_grad_(true);
  const auto [out, last] = lstm_forward(x1, torch::full({5}, 6, torch::kInt64), p["weight_ih_l0"],
                                        p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]);
  (out.sum() + 2 * last.sum()).backward();
  const auto ref = lstm->forward(x2);
  (std::get<0>(ref).sum() + 2 * std::get<0>(std::get<1>(ref))[0].sum()).backward();
  EXPECT_TRUE(torch::allclose(out, std::get<0>(ref), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(x1.grad(), x2.grad(), 1e-5, 1e-6));
}

// explain on an LSTM-LMF with independent modalities, one of them a sequence half of whose
// features are temporal: every subset's share is the generator's truth within 0.05.
TEST(SequenceTruth, ExplainRecoversTheTruthOfAnLstmLmf) {
  TempDir dir;
  TrainArgs train;
  train.config = source_path("configs/tiny.json");
  train.overrides = {"threads=2",
                     "data.modalities=[{\"name\":\"visual\",\"dim\":16},{\"name\":\"audio\","
                     "\"dim\":8,\"sequence\":true,\"max_len\":8},{\"name\":\"text\",\"dim\":24}]",
                     "data.train_size=8192",
                     "data.val_size=1024",
                     "data.test_size=2048",
                     "data.synthetic.shared_latent_dim=0",
                     "data.synthetic.target_noise=0.05",
                     "data.synthetic.temporal=0.5",
                     "data.synthetic.terms=[{\"modalities\":[\"visual\"],\"weight\":1},"
                     "{\"modalities\":[\"audio\"],\"weight\":0.7},"
                     "{\"modalities\":[\"visual\",\"audio\"],\"weight\":1}]",
                     "model.rank=4",
                     "model.fused_dim=16",
                     "model.encoder_hidden=[32]",
                     "model.encoders={\"audio\":{\"type\":\"lstm\",\"hidden\":32}}",
                     "train.epochs=30",
                     "train.batch_size=64",
                     "train.lr=0.003"};
  train.out = dir.file("run");
  const auto results = run_train(train).results;
  ASSERT_GE(results["test"]["r2"].get<double>(), 0.95) << results.dump(2);
  ExplainArgs args;
  args.checkpoint = dir.file("run/checkpoints/best.pt");
  args.options.samples = 32768;
  args.options.bootstrap = 0;
  const nlohmann::json r = run_explain(args);
  ASSERT_TRUE(r["truth"]["exact"].get<bool>());
  for (const auto& s : r["subsets"]) {
    ASSERT_TRUE(s["truth"].is_number()) << s["name"];
    std::printf("%s: share %.3f, truth %.3f\n", s["name"].get<std::string>().c_str(),
                s["share"].get<double>(), s["truth"].get<double>());
    EXPECT_NEAR(s["share"].get<double>(), s["truth"].get<double>(), 0.05) << s["name"];
  }
  EXPECT_LT(r["dependence"]["r2"]["audio"].get<double>(), 0.1);  // read from the step means
}

// MKL's kernels read a sequence's mean over its valid steps: with every feature static
// that mean is the vector the generator drew, so MKL finds what it finds on the vectors.
TEST(SequenceModels, MklOnStaticSequencesIsMklOnTheirVectors) {
  TempDir dir;
  auto mkl = [&](const std::string& sequence, const std::string& out) {
    MKLArgs args;
    args.config = source_path("configs/tiny.json");
    args.overrides = synthetic_sequences("0", sequence);
    args.out = dir.file(out);
    return run_mkl(args);
  };
  const auto seq = mkl("true", "seq"), vec = mkl("false", "vec");
  for (const auto& item : vec["weights"].items())
    EXPECT_NEAR(seq["weights"][item.key()].get<double>(), item.value().get<double>(), 1e-5)
        << item.key();
  EXPECT_NEAR(seq["metrics"]["learned"]["test"]["r2"].get<double>(),
              vec["metrics"]["learned"]["test"]["r2"].get<double>(), 1e-5);
  EXPECT_GT(vec["metrics"]["learned"]["test"]["r2"].get<double>(), 0.0);  // it learned something
}
