// Standardisation: the statistics against a hand computation, fitted on the training
// split only, kept in the checkpoint, applied by every later command, and metrics in
// the target's own units.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cmath>
#include <sstream>

#include "helpers.hpp"
#include "mmfusion/training/checkpoint.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/data/scaling.hpp"
#include "mmfusion/config/config_io.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;

namespace {

// Mean and population standard deviation of column j, by plain loops in double.
std::pair<double, double> column_moments(const torch::Tensor& x, int64_t j) {
  const auto c = x.to(torch::kFloat64).contiguous();
  const int64_t n = c.size(0), k = c.size(1);
  const double* p = c.data_ptr<double>();
  double sum = 0, sq = 0;
  for (int64_t i = 0; i < n; ++i) sum += p[i * k + j];
  const double mean = sum / double(n);
  for (int64_t i = 0; i < n; ++i) sq += (p[i * k + j] - mean) * (p[i * k + j] - mean);
  return {mean, std::sqrt(sq / double(n))};
}

ExperimentConfig file_config(const TempDir& dir, const std::string& extra = "") {
  write_text(dir.file("c.json"), R"({"name": "s", "threads": 1, "device": "cpu",
    "data": {"source": "file", "path": ")" +
                                     dir.file("train.pt") + R"(", "val_path": ")" +
                                     dir.file("val.pt") + R"(", "test_path": ")" +
                                     dir.file("test.pt") + R"(",
             "modalities": [{"name": "a", "dim": 3}, {"name": "b", "dim": 2}]},
    "model": {"encoder_hidden": [8], "fused_dim": 4, "rank": 2, "dropout": 0},
    "train": {"epochs": 3, "batch_size": 16}})" +
                                     extra);
  return load_config(dir.file("c.json"), {});
}

// Features of very different scales and offsets; one feature of `a` constant. The
// target is a linear function of them, in units of thousands.
Dataset make_split(int64_t n, uint64_t seed, double offset) {
  torch::manual_seed(seed);
  Dataset d;
  d.names = {"a", "b"};
  auto a = torch::randn({n, 3}) * torch::tensor({1e-3f, 50.f, 1.f}) +
           torch::tensor({0.f, 1000.f, 0.f}) + offset;
  a.select(1, 2).fill_(7.0f);
  const auto b = torch::rand({n, 2}) * 1e-4;
  d.features = {a, b};
  d.target = (a.select(1, 1) * 20 + b.select(1, 0) * 1e7 + 5000).unsqueeze(1);
  return d;
}

int run_cli(const std::string& args, const TempDir& dir) {
  const int status = std::system((std::string(MMFUSION_BINARY) + " " + args + " > " +
                                  dir.file("out.txt") + " 2> " + dir.file("err.txt"))
                                     .c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(Scaling, StatisticsMatchAHandComputationAndConstantFeaturesStayFinite) {
  const Dataset train = make_split(200, 1, 0);
  DataConfig data;
  data.standardize = Standardize::ZScore;
  data.standardize_target = true;
  const Scaling s = Scaling::fit(data, train);
  ASSERT_TRUE(s.scales_features() && s.scales_target());
  const auto named = s.named_tensors();
  std::map<std::string, torch::Tensor> by_name(named.begin(), named.end());
  for (size_t m = 0; m < train.names.size(); ++m) {
    const auto& x = train.features[m];
    for (int64_t j = 0; j < x.size(1); ++j) {
      const auto [mean, sd] = column_moments(x, j);
      EXPECT_NEAR(by_name["mean_" + train.names[m]][j].item<double>(), mean,
                  1e-6 * (1 + std::abs(mean)));
      const double want = (train.names[m] == "a" && j == 2) ? 1.0 : sd;  // the constant feature
      EXPECT_NEAR(by_name["scale_" + train.names[m]][j].item<double>(), want, 1e-5 * want);
    }
  }
  const auto [tmean, tsd] = column_moments(train.target, 0);
  EXPECT_NEAR(by_name["target_mean"][0].item<double>(), tmean, 1e-6 * std::abs(tmean));
  EXPECT_NEAR(by_name["target_scale"][0].item<double>(), tsd, 1e-5 * tsd);

  // Scaled training features have mean 0 and std 1 (the constant one is 0 everywhere).
  const Dataset z = s.features(train);
  EXPECT_TRUE(torch::isfinite(z.features[0]).all().item<bool>());
  EXPECT_TRUE(torch::equal(z.features[0].select(1, 2), torch::zeros({200})));
  for (int64_t j : {0, 1}) {
    const auto [mean, sd] = column_moments(z.features[0], j);
    EXPECT_NEAR(mean, 0, 1e-4);
    EXPECT_NEAR(sd, 1, 1e-4);
  }
  // The target there and back.
  EXPECT_TRUE(torch::allclose(s.original_units(s.target(train.target)), train.target, 1e-5, 1e-2));
  // A column spread only by float32 rounding counts as constant too: dividing by its
  // std would blow the rounding up to order 1.
  Dataset rounding;
  rounding.names = {"a"};
  rounding.features = {
      torch::tensor({1000.0f, std::nextafter(1000.0f, 2000.0f), 1000.0f, 1000.0f}).unsqueeze(1)};
  DataConfig zscore;
  zscore.standardize = Standardize::ZScore;
  EXPECT_EQ(Scaling::fit(zscore, rounding).named_tensors()[1].second.item<float>(), 1.0f);
  // "none": the identity.
  const Scaling none = Scaling::fit(DataConfig{}, train);
  EXPECT_FALSE(none.scales_features() || none.scales_target());
  EXPECT_TRUE(torch::equal(none.features(train).features[1], train.features[1]));
}

TEST(Scaling, FileDataIsZScoredByDefaultAndTheCheckpointKeepsTheTrainingStatistics) {
  TempDir dir;
  // Validation and test data far from the training data: statistics fitted on them
  // would differ visibly.
  for (const auto& [file, seed, offset] : {std::tuple<const char*, int, double>{"train.pt", 1, 0},
                                           {"val.pt", 2, 300},
                                           {"test.pt", 3, -300}})
    write_data_file(make_split(file == std::string("train.pt") ? 256 : 64, seed, offset),
                    dir.file(file));
  const ExperimentConfig config = file_config(dir);
  EXPECT_EQ(config.data.standardize, Standardize::ZScore);
  EXPECT_TRUE(config.data.standardize_target);
  ASSERT_EQ(run_cli("train --config " + dir.file("c.json") + " --out " + dir.file("run"), dir), 0)
      << read_text(dir.file("err.txt"));

  Checkpoint ckpt = open_checkpoint(dir.file("run/checkpoints/best.pt"));
  const Dataset train =
      read_data_file(dir.file("train.pt"), config.data.modalities, ReadRule{true});
  const auto named = ckpt.scaling.named_tensors();
  std::map<std::string, torch::Tensor> by_name(named.begin(), named.end());
  ASSERT_EQ(by_name.size(), 6u);
  const auto [mean_a1, sd_a1] = column_moments(train.features[0], 1);
  EXPECT_NEAR(by_name["mean_a"][1].item<double>(), mean_a1, 1e-6 * std::abs(mean_a1));
  EXPECT_NEAR(by_name["scale_a"][1].item<double>(), sd_a1, 1e-5 * sd_a1);
  const auto [tmean, tsd] = column_moments(train.target, 0);
  EXPECT_NEAR(by_name["target_mean"][0].item<double>(), tmean, 1e-6 * std::abs(tmean));

  // eval on the test file: metrics in the target's units, loss in the scaled units the
  // model trains on. For MSE the two differ by exactly target_scale^2.
  ASSERT_EQ(run_cli("eval --checkpoint " + dir.file("run/checkpoints/best.pt") + " --data " +
                        dir.file("test.pt"),
                    dir),
            0)
      << read_text(dir.file("err.txt"));
  const json ev = json::parse(read_text(dir.file("out.txt")));
  const double scale = by_name["target_scale"][0].item<double>();
  EXPECT_NEAR(ev["mse"].get<double>(), ev["loss"].get<double>() * scale * scale,
              1e-3 * ev["mse"].get<double>());

  // The test file is the config's test_path: eval of the checkpoint on it gives what
  // training reported (both apply the checkpoint's statistics to raw features).
  const json results = json::parse(read_text(dir.file("run/results.json")));
  EXPECT_NEAR(ev["mse"].get<double>(), results["test"]["mse"].get<double>(),
              1e-6 * ev["mse"].get<double>());
  EXPECT_NEAR(ev["loss"].get<double>(), results["test"]["loss"].get<double>(),
              1e-6 * ev["loss"].get<double>());

  // predict writes predictions in the target's units: their MSE against the file's
  // target, computed here from the CSV, is eval's.
  ASSERT_EQ(run_cli("predict --checkpoint " + dir.file("run/checkpoints/best.pt") + " --data " +
                        dir.file("test.pt") + " --output " + dir.file("p.csv"),
                    dir),
            0);
  std::istringstream csv(read_text(dir.file("p.csv")));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "index,prediction,target");
  double sq = 0;
  int rows = 0;
  while (std::getline(csv, line)) {
    double index, p, t;
    char comma;
    std::istringstream(line) >> index >> comma >> p >> comma >> t;
    sq += (p - t) * (p - t), ++rows;
  }
  ASSERT_EQ(rows, 64);
  EXPECT_NEAR(sq / rows, ev["mse"].get<double>(), 1e-4 * ev["mse"].get<double>());

  // inspect says what is scaled.
  ASSERT_EQ(run_cli("inspect --checkpoint " + dir.file("run/checkpoints/best.pt"), dir), 0);
  const json info = json::parse(read_text(dir.file("out.txt")));
  EXPECT_EQ(info["scaling"], json({{"features", "zscore"}, {"target", true}}));
  EXPECT_EQ(info["config"]["data"]["standardize"], "zscore");
}

TEST(Scaling, ACheckpointWhoseStatisticsAreDamagedOrMissingIsRefused) {
  TempDir dir;
  for (const auto& [file, seed] :
       {std::pair<const char*, int>{"train.pt", 1}, {"val.pt", 2}, {"test.pt", 3}})
    write_data_file(make_split(64, seed, 0), dir.file(file));
  ExperimentConfig config = file_config(dir);
  config.model.output_dim = 1;
  const DataSplits splits = load_splits(config);
  Scaling s = Scaling::fit(config.data, splits.train);
  ModelPtr model = make_model(config.model, config.data.modalities, 1);
  save_checkpoint(dir.file("ok.pt"), config, TrainProgress{}, *model, nullptr, RngStates{}, s);
  Checkpoint ok = open_checkpoint(dir.file("ok.pt"));
  EXPECT_TRUE(ok.scaling.scales_features() && ok.scaling.scales_target());
  ok.build_model(torch::kCPU);  // the digest covers the statistics and matches

  // A zero scale (a division by zero later) and a statistic of the wrong size.
  auto named = s.named_tensors();
  named[1].second[0] = 0.0f;  // scale_a
  expect_error([&] { Scaling::from_named(named, config, "x"); },
               "x: scale_a holds values that are not finite and > 0");
  named[1].second = torch::ones({5});
  expect_error([&] { Scaling::from_named(named, config, "x"); },
               "x: scale_a is [5] Float, expected [3] Float");
  named[1].second = torch::ones({3});
  named.pop_back();
  expect_error([&] { Scaling::from_named(named, config, "x"); }, "x: no target_scale");

  // Statistics that are not the ones saved: the checksum says so.
  Checkpoint swapped = open_checkpoint(dir.file("ok.pt"));
  swapped.scaling = Scaling::fit(config.data, splits.val);
  expect_error([&] { swapped.build_model(torch::kCPU); }, "checksum does not match");
  // Statistics that disagree with the config are never written.
  expect_error(
      [&] {
        save_checkpoint(dir.file("bad.pt"), config, TrainProgress{}, *model, nullptr, RngStates{},
                        Scaling());
      },
      "do not match data.standardize");
  EXPECT_FALSE(std::filesystem::exists(dir.file("bad.pt")));

  // Statistics changed after saving: the checksum says so.
  Scaling other = Scaling::fit(config.data, splits.val);
  save_checkpoint(dir.file("other.pt"), config, TrainProgress{}, *model, nullptr, RngStates{},
                  other);
  json meta_ok = open_checkpoint(dir.file("ok.pt")).meta,
       meta_other = open_checkpoint(dir.file("other.pt")).meta;
  EXPECT_NE(meta_ok["model_digest"], meta_other["model_digest"]);
}

TEST(Scaling, DefaultsFollowTheSourceAndTheReadRuleTheTask) {
  const ExperimentConfig synthetic = tiny_config();
  EXPECT_EQ(synthetic.data.standardize, Standardize::None);
  EXPECT_FALSE(synthetic.data.standardize_target);
  const ExperimentConfig file = tiny_config({"data.source=file", "data.path=x.pt"});
  EXPECT_EQ(file.data.standardize, Standardize::ZScore);
  EXPECT_TRUE(file.data.standardize_target);
  const ExperimentConfig labels =
      tiny_config({"data.source=file", "data.path=x.pt", "task=classification"});
  EXPECT_FALSE(labels.data.standardize_target);
  EXPECT_EQ(labels.num_classes, 0);  // inferred at training
  expect_error<ConfigError>(
      [] {
        tiny_config({"task=classification", "num_classes=3", "data.standardize_target=true"});
      },
      "data.standardize_target: only for regression");
  expect_error<ConfigError>([] { tiny_config({"task=classification"}); },
                            "num_classes: expected an integer >= 2");
}

TEST(Scaling, ClassesAreInferredFromTheTrainingLabelsWhenTheConfigLeavesThemOut) {
  TempDir dir;
  for (const auto& [file, seed] :
       {std::pair<const char*, int>{"train.pt", 1}, {"val.pt", 2}, {"test.pt", 3}}) {
    Dataset d = make_split(60, seed, 0);
    d.target = torch::arange(60, torch::kInt64) % 4;  // labels 0..3
    write_data_file(d, dir.file(file));
  }
  file_config(dir);
  auto doc = json::parse(read_text(dir.file("c.json")));
  doc["task"] = "classification";
  write_text(dir.file("c.json"), doc.dump());
  ASSERT_EQ(run_cli("train --config " + dir.file("c.json") + " --out " + dir.file("run"), dir), 0)
      << read_text(dir.file("err.txt"));
  const json resolved = json::parse(read_text(dir.file("run/config.json")));
  EXPECT_EQ(resolved["num_classes"], 4);
  EXPECT_FALSE(resolved["data"].contains("standardize_target"));  // labels are not scaled

  // A validation label the training split never has: one line naming the file and row.
  Dataset val = make_split(60, 2, 0);
  val.target = torch::arange(60, torch::kInt64) % 4;
  val.target[7] = 9;
  write_data_file(val, dir.file("val.pt"));
  EXPECT_EQ(run_cli("train --config " + dir.file("c.json") + " --out " + dir.file("run2"), dir), 1);
  const std::string err = read_text(dir.file("err.txt"));
  EXPECT_NE(err.find("val.pt: entry \"target\" holds label 9 in row 7, outside [0, 4)"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("set num_classes"), std::string::npos) << err;
  EXPECT_FALSE(std::filesystem::exists(dir.file("run2")));  // nothing created
}
