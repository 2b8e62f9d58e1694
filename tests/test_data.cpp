#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/data.hpp"
#include "mmfusion/errors.hpp"
#include "mmfusion/files.hpp"

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
  EXPECT_TRUE(same(generate_synthetic(c.data, 11, Split::Train), generate_synthetic(c.data, 11, Split::Train)));
  EXPECT_FALSE(same(generate_synthetic(c.data, 11, Split::Train), generate_synthetic(c.data, 12, Split::Train)));
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
  auto c = tiny_config({"data.train_size=40000", "data.synthetic.target_noise=0",
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
  const Dataset back = read_data_file(dir.file("test.pt"), c.data.modalities, TargetRule{true});
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
  expect_error([&] { read_data_file(write_dict("nan.pt", nan), mods, TargetRule{true}); },
               "entry \"text\" has NaN or Inf values (first in row 5)");

  auto dim = base();
  dim.insert_or_assign("audio", torch::zeros({64, 9}));
  expect_error([&] { read_data_file(write_dict("dim.pt", dim), mods, TargetRule{true}); },
               "entry \"audio\" has shape [64, 9], expected [N, 8]");

  auto rows = base();
  rows.insert_or_assign("audio", torch::zeros({63, 8}));
  expect_error([&] { read_data_file(write_dict("rows.pt", rows), mods, TargetRule{true}); }, "has 63 rows");

  auto missing = base();
  (void)missing.erase("visual");
  expect_error([&] { read_data_file(write_dict("missing.pt", missing), mods, TargetRule{true}); },
               "missing entry \"visual\"");

  auto extra = base();
  extra.insert("depth", torch::zeros({64, 2}));
  // An entry no modality names is left alone (one file can serve configs that use some
  // of its modalities).
  const Dataset with_extra = read_data_file(write_dict("extra.pt", extra), mods, TargetRule{true});
  EXPECT_EQ(with_extra.names, good.names);

  auto ints = base();
  ints.insert_or_assign("visual", torch::zeros({64, 16}, torch::kInt64));
  expect_error([&] { read_data_file(write_dict("ints.pt", ints), mods, TargetRule{true}); },
               "expected a float tensor");

  auto no_target = base();
  (void)no_target.erase("target");
  const std::string no_target_path = write_dict("no_target.pt", no_target);
  expect_error([&] { read_data_file(no_target_path, mods, TargetRule{true}); }, "missing entry \"target\"");
  EXPECT_FALSE(read_data_file(no_target_path, mods, TargetRule{false}).target.defined());

  const std::string whole = read_text(dir.file("extra.pt"));
  write_text(dir.file("truncated.pt"), whole.substr(0, whole.size() / 2));
  expect_error([&] { read_data_file(dir.file("truncated.pt"), mods, TargetRule{true}); }, "not a readable data file");
  expect_error([&] { read_data_file(dir.file("absent.pt"), mods, TargetRule{true}); }, "absent.pt: no such data file (write one with `mmfusion synth");
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
  const auto all = torch::cat({s.train.features[0], s.val.features[0], s.test.features[0]}).select(1, 0);
  const auto original = read_data_file(dir.file("all.pt"), f.data.modalities, TargetRule{true}).features[0].select(1, 0);
  EXPECT_TRUE(torch::equal(std::get<0>(all.sort()), std::get<0>(original.sort())));
  EXPECT_TRUE(same(load_split(f, Split::Test), s.test));
}

