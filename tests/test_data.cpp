// Data (data/data.hpp): the synthetic generators against their documented variances and
// truth, data files both ways, splits, and training streams.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/base/random.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

namespace {

bool same(const Dataset& a, const Dataset& b) {
  if (a.names != b.names || a.features.size() != b.features.size()) return false;
  for (size_t m = 0; m < a.features.size(); ++m)
    if (!torch::equal(a.features[m], b.features[m])) return false;
  return torch::equal(a.target, b.target);
}

}  // namespace

TEST(SyntheticData, SameSeedGivesIdenticalTensors) {
  const auto c = tiny_config();
  EXPECT_TRUE(same(generate_synthetic(c.data, 11, Split::Train),
                   generate_synthetic(c.data, 11, Split::Train)));
  EXPECT_FALSE(same(generate_synthetic(c.data, 11, Split::Train),
                    generate_synthetic(c.data, 12, Split::Train)));
}

TEST(SyntheticData, ShapesFollowTheConfig) {
  const auto c = tiny_config();
  const Dataset d = generate_synthetic(c.data, c.seed, Split::Val);
  ASSERT_EQ(d.features.size(), 3u);
  EXPECT_EQ(d.names, (std::vector<std::string>{"visual", "audio", "text"}));
  EXPECT_EQ(d.features[0].sizes(), (std::vector<int64_t>{64, 16}));
  EXPECT_EQ(d.features[2].sizes(), (std::vector<int64_t>{64, 24}));
  EXPECT_EQ(d.target.sizes(), (std::vector<int64_t>{64, 1}));
  EXPECT_EQ(d.features[1].dtype(), torch::kFloat32);
}

TEST(SyntheticData, SplitsAreDisjointAndIndependentOfOtherSplitSizes) {
  const auto c = tiny_config();
  const DataSplits s = load_splits(c);
  // No row of one split appears in another (compare whole visual feature rows).
  auto rows_shared = [](const torch::Tensor& a, const torch::Tensor& b) {
    const auto d = torch::cdist(a.to(torch::kFloat64), b.to(torch::kFloat64));
    return (d < 1e-9).any().item<bool>();
  };
  EXPECT_FALSE(rows_shared(s.train.features[0], s.val.features[0]));
  EXPECT_FALSE(rows_shared(s.train.features[0], s.test.features[0]));
  EXPECT_FALSE(rows_shared(s.val.features[0], s.test.features[0]));
  // Changing the training size leaves validation data untouched.
  const auto bigger = tiny_config({"data.train_size=512"});
  EXPECT_TRUE(same(load_split(bigger, Split::Val), s.val));
  EXPECT_EQ(load_split(bigger, Split::Train).size(), 512);
}

TEST(SyntheticData, TargetPartsHaveTheDocumentedVariances) {
  // Noise-free target: y = wu * U + wb * B + wt * T with Var(U) = Var(B) = Var(T) = 1,
  // zero means and no correlation between the parts (docs/data.md).
  auto c =
      tiny_config({"data.train_size=40000", "data.synthetic.target_noise=0",
                   "data.synthetic.weights={\"unimodal\":0.5,\"bimodal\":1.5,\"trimodal\":2.0}"});
  const Dataset d = generate_synthetic(c.data, 3, Split::Train);
  for (const auto* part : {&d.unimodal, &d.bimodal, &d.trimodal}) {
    const auto x = part->to(torch::kFloat64);
    EXPECT_NEAR(x.mean().item<double>(), 0.0, 0.03);
    EXPECT_NEAR(x.var().item<double>(), 1.0, 0.06);
  }
  const auto y = d.target.squeeze(1).to(torch::kFloat64);
  const auto expected = 0.5 * d.unimodal + 1.5 * d.bimodal + 2.0 * d.trimodal;
  EXPECT_LT((y - expected.to(torch::kFloat64)).abs().max().item<double>(), 1e-4);
  EXPECT_NEAR(y.var().item<double>(), 0.25 + 2.25 + 4.0, 0.4);
}

TEST(SyntheticData, TargetNoiseHasTheConfiguredStd) {
  auto c = tiny_config({"data.train_size=40000", "data.synthetic.target_noise=0.5"});
  const Dataset d = generate_synthetic(c.data, 5, Split::Train);
  const auto& w = c.data.synthetic;
  const auto clean = w.weight_unimodal * d.unimodal + w.weight_bimodal * d.bimodal +
                     w.weight_trimodal * d.trimodal;
  const auto noise = d.target.squeeze(1) - clean;
  EXPECT_NEAR(noise.std().item<double>(), 0.5, 0.01);
}

TEST(SyntheticData, NoiselessFeaturesAreALinearMapOfTheLatents) {
  // shared (1) + unique (2) latents: a noise-free modality's features span 3 dimensions.
  auto c = tiny_config({"data.synthetic.feature_noise=0"});
  const Dataset d = generate_synthetic(c.data, 9, Split::Train);
  for (const auto& x : d.features) {
    const auto s = torch::linalg_svdvals(x.to(torch::kFloat64));
    EXPECT_GT(s[2].item<double>(), 1e-3 * s[0].item<double>());
    EXPECT_LT(s[3].item<double>(), 1e-5 * s[0].item<double>());
  }
}

TEST(DataFile, RoundTripKeepsEveryTensor) {
  TempDir dir;
  const auto c = tiny_config();
  const Dataset d = generate_synthetic(c.data, c.seed, Split::Test);
  write_data_file(d, dir.file("test.pt"));
  const Dataset back = read_data_file(dir.file("test.pt"), c.data.modalities, ReadRule{true});
  EXPECT_TRUE(same(d, back));
}

TEST(DataFile, BadFilesAreClearErrors) {
  TempDir dir;
  const auto c = tiny_config();
  const Dataset good = generate_synthetic(c.data, c.seed, Split::Test);
  auto write_dict = [&](const std::string& name, c10::Dict<std::string, torch::Tensor> dict) {
    const auto bytes = torch::pickle_save(c10::IValue(dict));
    write_text(dir.file(name), std::string(bytes.begin(), bytes.end()));
    return dir.file(name);
  };
  auto base = [&]() {
    c10::Dict<std::string, torch::Tensor> dict;
    for (size_t m = 0; m < good.names.size(); ++m) dict.insert(good.names[m], good.features[m]);
    dict.insert("target", good.target.squeeze(1));
    return dict;
  };
  const auto& mods = c.data.modalities;

  auto nan = base();
  auto text = good.features[2].clone();
  text[5][3] = std::numeric_limits<float>::quiet_NaN();
  nan.insert_or_assign("text", text);
  expect_error([&] { read_data_file(write_dict("nan.pt", nan), mods, ReadRule{true}); },
               "entry \"text\" has NaN or Inf values (first in row 5; data.nonfinite \"zero\" puts 0 "
               "in their place)");
  {  // data.nonfinite "zero": put to 0 and counted for the row, the rest as written
    text[7][0] = std::numeric_limits<float>::infinity();
    text[7][1] = -std::numeric_limits<float>::infinity();
    nan.insert_or_assign("text", text);
    ReadRule zero{true};
    zero.nonfinite = NonFinite::Zero;
    const Dataset d = read_data_file(write_dict("nan.pt", nan), mods, zero);
    ASSERT_EQ(d.nonfinite.size(), 3u);
    EXPECT_FALSE(d.nonfinite[0].defined());
    auto want = torch::zeros({text.size(0)}, torch::kInt64);
    want[5] = 1, want[7] = 2;
    EXPECT_TRUE(torch::equal(d.nonfinite[2], want));
    auto clean = text.clone();
    clean[5][3] = 0, clean[7][0] = 0, clean[7][1] = 0;
    EXPECT_TRUE(torch::equal(d.features[2], clean));
    // A fraction split keeps each row's count with the row.
    const auto index = torch::tensor({7, 5, 0}, torch::kInt64);
    EXPECT_TRUE(torch::equal(d.rows(index).nonfinite[2], torch::tensor({2, 1, 0}, torch::kInt64)));
  }

  auto dim = base();
  dim.insert_or_assign("audio", torch::zeros({64, 9}));
  expect_error([&] { read_data_file(write_dict("dim.pt", dim), mods, ReadRule{true}); },
               "entry \"audio\" has shape [64, 9], expected [N, 8]");

  auto rows = base();
  rows.insert_or_assign("audio", torch::zeros({63, 8}));
  expect_error([&] { read_data_file(write_dict("rows.pt", rows), mods, ReadRule{true}); },
               "has 63 rows");

  auto missing = base();
  (void)missing.erase("visual");
  expect_error([&] { read_data_file(write_dict("missing.pt", missing), mods, ReadRule{true}); },
               "missing entry \"visual\"");

  auto extra = base();
  extra.insert("depth", torch::zeros({64, 2}));
  // An entry no modality names is left alone (one file can serve configs that use some
  // of its modalities).
  const Dataset with_extra = read_data_file(write_dict("extra.pt", extra), mods, ReadRule{true});
  EXPECT_EQ(with_extra.names, good.names);

  auto ints = base();
  ints.insert_or_assign("visual", torch::zeros({64, 16}, torch::kInt64));
  expect_error([&] { read_data_file(write_dict("ints.pt", ints), mods, ReadRule{true}); },
               "expected a float tensor");

  auto no_target = base();
  (void)no_target.erase("target");
  const std::string no_target_path = write_dict("no_target.pt", no_target);
  expect_error([&] { read_data_file(no_target_path, mods, ReadRule{true}); },
               "missing entry \"target\"");
  EXPECT_FALSE(read_data_file(no_target_path, mods, ReadRule{false}).target.defined());

  const std::string whole = read_text(dir.file("extra.pt"));
  write_text(dir.file("truncated.pt"), whole.substr(0, whole.size() / 2));
  expect_error([&] { read_data_file(dir.file("truncated.pt"), mods, ReadRule{true}); },
               "not a readable data file");
  expect_error([&] { read_data_file(dir.file("absent.pt"), mods, ReadRule{true}); },
               "absent.pt: no such data file (write one with `mmfusion synth");
}

TEST(DataFile, FileSourceSplitsByFractionsWithoutOverlap) {
  TempDir dir;
  auto c = tiny_config({"data.train_size=200"});
  write_data_file(generate_synthetic(c.data, c.seed, Split::Train), dir.file("all.pt"));
  auto f = tiny_config({"data.source=file", "data.path=" + dir.file("all.pt"),
                        "data.val_fraction=0.1", "data.test_fraction=0.2"});
  const DataSplits s = load_splits(f);
  EXPECT_EQ(s.val.size(), 20);
  EXPECT_EQ(s.test.size(), 40);
  EXPECT_EQ(s.train.size(), 140);
  // Together the splits hold every row once: compare sorted first columns.
  const auto all =
      torch::cat({s.train.features[0], s.val.features[0], s.test.features[0]}).select(1, 0);
  const auto original = read_data_file(dir.file("all.pt"), f.data.modalities, ReadRule{true})
                            .features[0]
                            .select(1, 0);
  EXPECT_TRUE(torch::equal(std::get<0>(all.sort()), std::get<0>(original.sort())));
  EXPECT_TRUE(same(load_split(f, Split::Test), s.test));
}

// The weights are shorthand: configs without data.synthetic.terms generate what they did
// before terms existed (fixtures written by that code, tests/fixtures/README.md), with
// the generator of that time.
TEST(SyntheticTerms, ShorthandConfigsKeepTheirData) {
  const auto regression = tiny_config({"data.synthetic.generator=1"});
  EXPECT_TRUE(same(load_split(regression, Split::Train),
                   read_data_file(source_path("tests/fixtures/synth-tiny-train.pt"),
                                  regression.data.modalities, read_rule(regression, true))));
  const auto classes =
      tiny_config({"data.synthetic.generator=1", "data.synthetic.shared_latent_dim=0",
                   "data.synthetic.weights={\"unimodal\":0.5,\"bimodal\":1.5,\"trimodal\":2.0}",
                   "task=\"classification\"", "num_classes=3"});
  EXPECT_TRUE(same(load_split(classes, Split::Val),
                   read_data_file(source_path("tests/fixtures/synth-tiny-val-classes.pt"),
                                  classes.data.modalities, read_rule(classes, true))));
}

namespace {

// R^2 of the least-squares fit of y on the columns of x (with an intercept).
double fit_r2(const torch::Tensor& x, const torch::Tensor& y) {
  const auto design =
      torch::cat({torch::ones({x.size(0), 1}, torch::kFloat64), x.to(torch::kFloat64)}, 1);
  const auto target = y.to(torch::kFloat64).reshape({-1, 1});
  const auto beta = std::get<0>(torch::linalg_lstsq(design, target));
  const auto residual = target - design.matmul(beta);
  return 1 - residual.pow(2).mean().item<double>() / target.var(0, false).item<double>();
}

// Every product of a visual and an audio feature: the space a bilinear target lies in.
torch::Tensor pairwise_products(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.unsqueeze(2) * b.unsqueeze(1)).reshape({a.size(0), -1});
}

}  // namespace

// A pair-only term is a pure interaction: no linear function of the features predicts it,
// a bilinear one of the pair's features does; a modality in no term predicts nothing.
TEST(SyntheticTerms, APairTermIsAPureInteraction) {
  const auto c =
      tiny_config({"data.train_size=20000", "data.synthetic.shared_latent_dim=0",
                   "data.synthetic.target_noise=0", "data.synthetic.feature_noise=0.01",
                   "data.synthetic.terms=[{\"modalities\":[\"audio\",\"visual\"],\"weight\":2}]"});
  EXPECT_EQ(c.data.synthetic.terms[0].modalities,
            (std::vector<std::string>{"visual", "audio"}));  // config order
  const Dataset d = generate_synthetic(c.data, 11, Split::Train);
  const auto y = d.target.squeeze(1);
  EXPECT_NEAR(y.mean().item<double>(), 0.0, 0.06);
  EXPECT_NEAR(y.var().item<double>(), 4.0, 0.25);  // weight^2 times a unit-variance product
  EXPECT_LT(fit_r2(torch::cat(d.features, 1), y), 0.01);
  EXPECT_GT(fit_r2(pairwise_products(d.features[0], d.features[1]), y), 0.99);
  // text is noise: only the chance fit of 384 columns to 20000 rows (about 0.02)
  EXPECT_LT(fit_r2(pairwise_products(d.features[0], d.features[2]), y), 0.05);
}

TEST(SyntheticTerms, VariancesAddUpOverTerms) {
  const auto c = tiny_config({"data.train_size=40000", "data.synthetic.shared_latent_dim=0",
                              "data.synthetic.target_noise=0.5",
                              "data.synthetic.terms=[{\"modalities\":[\"visual\"],\"weight\":1},"
                              "{\"modalities\":[\"visual\",\"audio\",\"text\"],\"weight\":1.5}]"});
  const auto y = generate_synthetic(c.data, 2, Split::Train).target.to(torch::kFloat64);
  EXPECT_NEAR(y.var().item<double>(), 1 + 2.25 + 0.25, 0.2);
}

// The truth without feature noise: w_S^2 / sum of w^2, exact only without shared latents.
TEST(SyntheticTerms, TheTruthIsEachTermsShareOfTheSignal) {
  const auto terms =
      tiny_config({"data.synthetic.shared_latent_dim=0", "data.synthetic.feature_noise=0",
                   "data.synthetic.terms=[{\"modalities\":[\"visual\"],\"weight\":1},"
                   "{\"modalities\":[\"visual\",\"audio\"],\"weight\":2},"
                   "{\"modalities\":[\"text\",\"visual\",\"audio\"],\"weight\":0.5}]"});
  const SyntheticTruth t = synthetic_truth(terms.data, terms.seed);
  ASSERT_TRUE(t.exact);
  ASSERT_EQ(t.subsets.size(), 3u);
  EXPECT_NEAR(t.subsets[0].share, 1 / 5.25, 1e-9);
  EXPECT_NEAR(t.subsets[1].share, 4 / 5.25, 1e-9);
  EXPECT_EQ(subset_name(t.subsets[2].modalities), "visual:audio:text");
  EXPECT_NEAR(t.subsets[2].share, 0.25 / 5.25, 1e-9);
  EXPECT_NEAR(t.noise_variance, 0.01, 1e-15);  // tiny's target_noise 0.1
  EXPECT_NEAR(t.best_r2, 5.25 / 5.26, 1e-9);

  // The shorthand 1/1/1 over three modalities: 1/9 per modality and per pair, 1/3 for all three.
  const auto shorthand =
      tiny_config({"data.synthetic.shared_latent_dim=0", "data.synthetic.feature_noise=0",
                   "data.synthetic.target_noise=0", "data.train_size=40000"});
  const SyntheticTruth s = synthetic_truth(shorthand.data, shorthand.seed);
  ASSERT_EQ(s.subsets.size(), 7u);
  for (const auto& subset : s.subsets)
    EXPECT_NEAR(subset.share, subset.modalities.size() == 3 ? 1.0 / 3 : 1.0 / 9, 1e-9)
        << subset_name(subset.modalities);
  // ... and the generator's target has the variance the truth's terms add up to.
  const auto y = generate_synthetic(shorthand.data, 4, Split::Train).target.to(torch::kFloat64);
  EXPECT_NEAR(y.var().item<double>() / s.signal_variance, 1.0, 0.05);

  const auto shared = tiny_config();  // shared_latent_dim 1
  const SyntheticTruth dependent = synthetic_truth(shared.data, shared.seed);
  EXPECT_FALSE(dependent.exact);
  EXPECT_NE(dependent.why_not.find("shared_latent_dim is 1: latents shared by every modality make "
                                   "the modalities dependent"),
            std::string::npos)
      << dependent.why_not;
  // When only some modalities see them, the reason names those.
  const auto some = tiny_config({"data.synthetic.shared_by=[\"visual\",\"audio\"]"});
  const SyntheticTruth named = synthetic_truth(some.data, some.seed);
  EXPECT_NE(named.why_not.find("latents shared by visual and audio (data.synthetic.shared_by) make "
                               "them dependent"),
            std::string::npos)
      << named.why_not;
}

// With noisy features, a term's share is what the features recover of it: for a
// unimodal term the best predictor is linear, so a least-squares fit on the features
// reaches the truth's best R^2.
TEST(SyntheticTerms, TheTruthAccountsForWhatNoisyFeaturesRecover) {
  const auto c = tiny_config({"data.train_size=40000", "data.synthetic.shared_latent_dim=0",
                              "data.synthetic.target_noise=0", "data.synthetic.feature_noise=1.5",
                              "data.synthetic.terms=[{\"modalities\":[\"audio\"],\"weight\":1}]"});
  const SyntheticTruth t = synthetic_truth(c.data, c.seed);
  ASSERT_LT(t.best_r2, 0.9);  // the noise hides a noticeable part
  const Dataset d = generate_synthetic(c.data, c.seed, Split::Train);
  EXPECT_NEAR(fit_r2(d.features[1], d.target.squeeze(1)), t.best_r2, 0.01);
}

TEST(SyntheticTerms, BadTermsAreConfigErrors) {
  const std::string prefix = "data.synthetic.terms=";
  expect_error<ConfigError>(
      [&] { tiny_config({prefix + "[{\"modalities\":[\"smell\"],\"weight\":1}]"}); },
      "no modality named \"smell\"");
  expect_error<ConfigError>(
      [&] { tiny_config({prefix + "[{\"modalities\":[\"audio\",\"audio\"]}]"}); }, "appears twice");
  expect_error<ConfigError>(
      [&] {
        tiny_config(
            {prefix +
             "[{\"modalities\":[\"audio\",\"text\"]},{\"modalities\":[\"text\",\"audio\"]}]"});
      },
      "the same set of modalities");
  expect_error<ConfigError>(
      [&] { tiny_config({prefix + "[{\"modalities\":[\"text\"],\"weight\":0}]"}); }, "weight");
  expect_error<ConfigError>([&] { tiny_config({prefix + "[]"}); }, "non-empty list");
  expect_error<ConfigError>(
      [&] {
        tiny_config(
            {prefix + "[{\"modalities\":[\"text\"]}]", "data.synthetic.weights={\"unimodal\":1}"});
      },
      "either terms or weights");
  // weights: null drops a config's weights, so that --set can switch it to terms.
  EXPECT_EQ(tiny_config({"data.synthetic.weights=null", prefix + "[{\"modalities\":[\"text\"]}]"})
                .data.synthetic.terms.size(),
            1u);
}

// Generator 2: every row from its own counter-based generator (random.hpp).

TEST(CounterRandom, NormalsFollowTheStandardNormal) {
  // Kolmogorov-Smirnov distance to the normal CDF, and the first four moments, over
  // 200000 draws from 2000 rows: the tails (the ziggurat's slow paths) included.
  std::vector<double> x;
  for (uint64_t row = 0; row < 2000; ++row) {
    RowRandom g(stream_key(5, 1), row);
    for (int i = 0; i < 100; ++i) x.push_back(g.normal());
  }
  std::sort(x.begin(), x.end());
  const double n = double(x.size());
  double d = 0, m1 = 0, m2 = 0, m4 = 0, beyond3 = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double cdf = 0.5 * std::erfc(-x[i] / std::sqrt(2.0));
    d = std::max({d, std::abs(cdf - i / n), std::abs(cdf - (i + 1) / n)});
    m1 += x[i], m2 += x[i] * x[i], m4 += x[i] * x[i] * x[i] * x[i];
    beyond3 += std::abs(x[i]) > 3;
  }
  EXPECT_LT(d, 1.63 / std::sqrt(n));  // the 1% critical value
  EXPECT_NEAR(m1 / n, 0.0, 4 / std::sqrt(n));
  EXPECT_NEAR(m2 / n, 1.0, 4 * std::sqrt(2 / n));
  EXPECT_NEAR(m4 / n, 3.0, 4 * std::sqrt(96 / n));
  EXPECT_NEAR(beyond3 / n, 0.0026998, 4 * std::sqrt(0.0027 / n));  // 2 (1 - Phi(3))
  // Rows are independent of one another and of the order they are made in.
  RowRandom a(stream_key(5, 1), 7), b(stream_key(5, 1), 7), c(stream_key(5, 1), 8),
      e(stream_key(5, 2), 7);
  const uint64_t first = a.next();
  EXPECT_EQ(first, b.next());
  EXPECT_NE(first, c.next());
  EXPECT_NE(first, e.next());
}

TEST(SyntheticData, Generator2GivesTheSameRowsWhateverTheThreadCount) {
  const auto c = tiny_config({"data.train_size=5000", "data.synthetic.generator=2"});
  const int before = torch::get_num_threads();
  torch::set_num_threads(1);
  const Dataset one = generate_synthetic(c.data, c.seed, Split::Train);
  torch::set_num_threads(3);  // more threads than cores: other chunk boundaries
  const Dataset three = generate_synthetic(c.data, c.seed, Split::Train);
  torch::set_num_threads(before);
  EXPECT_TRUE(same(one, three));
  EXPECT_TRUE(torch::equal(one.unimodal, three.unimodal));
  // Not generator 1's data: the numbers for a seed changed once, with the version.
  EXPECT_FALSE(same(
      one,
      generate_synthetic(tiny_config({"data.train_size=5000", "data.synthetic.generator=1"}).data,
                         c.seed, Split::Train)));
}

TEST(SyntheticData, AStreamMakesEachEpochsRowsInAnyPieces) {
  const auto c = tiny_config({"data.synthetic.stream=true", "data.train_size=3000"});
  const TrainingStream stream(c);
  EXPECT_EQ(stream.rows_per_epoch(), 3000);
  const Dataset whole = stream.rows(0, 0, 3000);
  Dataset pieces;
  pieces.names = whole.names;
  std::vector<Dataset> parts = {stream.rows(0, 0, 1000), stream.rows(0, 1000, 1777),
                                stream.rows(0, 1777, 3000)};
  for (size_t m = 0; m < whole.features.size(); ++m)
    pieces.features.push_back(
        torch::cat({parts[0].features[m], parts[1].features[m], parts[2].features[m]}));
  pieces.target = torch::cat({parts[0].target, parts[1].target, parts[2].target});
  EXPECT_TRUE(same(whole, pieces));
  EXPECT_TRUE(same(whole, TrainingStream(c).rows(0, 0, 3000)));  // from (seed, epoch, row) alone
  EXPECT_FALSE(
      torch::equal(whole.target, stream.rows(1, 0, 3000).target));  // each epoch fresh rows
  // load_splits holds a sample of the stream, no training split; val and test as usual.
  const DataSplits splits = load_splits(c);
  EXPECT_EQ(splits.train.size(), std::min<int64_t>(3000, kStreamSampleRows));
  EXPECT_TRUE(same(splits.val, generate_synthetic(c.data, c.seed, Split::Val)));
  // Classification: the stream's labels cut its targets at the split's thresholds.
  const auto k =
      tiny_config({"data.synthetic.stream=true", "task=\"classification\"", "num_classes=3"});
  const Dataset labels = TrainingStream(k).rows(0, 0, 3000);
  EXPECT_EQ(labels.target.scalar_type(), torch::kInt64);
  EXPECT_TRUE(
      torch::equal(labels.target, torch::bucketize(whole.target.squeeze(1), class_thresholds(k))));
}

TEST(SyntheticData, StreamingNeedsGenerator2AndSyntheticData) {
  expect_error<ConfigError>(
      [] {
        tiny_config({"data.synthetic.stream=true", "data.synthetic.generator=1"});
      },
      "data.synthetic.stream: needs data.synthetic.generator 2");
  expect_error<ConfigError>([] { tiny_config({"data.synthetic.generator=3"}); },
                            "data.synthetic.generator");
}
