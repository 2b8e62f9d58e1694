// explain (explain.hpp, and run_explain): the decomposition of real models against what
// is known of them: an additive model's exact shares, and the generator's truth for a
// trained LMF. The estimator itself is tested on closed forms in test_sobol.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/cli/commands.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/explain/explain.hpp"
#include "mmfusion/training/step.hpp"
#include "mmfusion/training/trainer.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The model's output on rows whose modalities other than `m` are those of row 0.
torch::Tensor with_others_fixed(MultimodalModelImpl& model, const Dataset& data, size_t m) {
  std::vector<torch::Tensor> inputs;
  for (size_t k = 0; k < data.features.size(); ++k)
    inputs.push_back(k == m ? data.features[k]
                            : data.features[k].slice(0, 0, 1).expand_as(data.features[k]));
  torch::NoGradGuard guard;
  return model.forward(inputs).squeeze(1).to(torch::kFloat64);
}

}  // namespace

// Late fusion sums one head per modality: f = g_1(x_1) + g_2(x_2) + g_3(x_3), whatever its
// weights. Its interactions are zero, and the share of modality m is Var g_m / sum Var g_k
// over the rows the pairs are drawn from, computed here directly from the model.
TEST(Explain, LateFusionIsAdditiveWithTheSharesOfItsHeads) {
  const auto c = tiny_config({"model.type=\"late\"", "data.test_size=256"});
  torch::manual_seed(0);
  ModelPtr model = make_model(c.model, c.data.modalities, 1);
  model->eval();
  StepRunner runner(model, c.train);
  const Dataset data = load_split(c, Split::Test);
  ExplainOptions options;
  options.samples = 65536;
  options.bootstrap = 50;
  const json r = explain_model(runner, Task::Regression, Scaling(), data, options, torch::kCPU);

  std::vector<double> head_variance;
  double sum = 0;
  for (size_t m = 0; m < 3; ++m) {
    head_variance.push_back(with_others_fixed(*model, data, m).var(0, false).item<double>());
    sum += head_variance.back();
  }
  ASSERT_EQ(r["subsets"].size(), 7u);
  for (const auto& s : r["subsets"]) {
    const double share = s["share"].get<double>();
    if (s["modalities"].size() > 1) {
      EXPECT_LT(std::abs(share), 0.02) << s["name"];
      continue;
    }
    const size_t m = s["name"] == "visual" ? 0 : s["name"] == "audio" ? 1 : 2;
    EXPECT_NEAR(share, head_variance[m] / sum, 0.02) << s["name"];
    EXPECT_NEAR(r["total_effect"][s["name"].get<std::string>()].get<double>(),
                head_variance[m] / sum, 0.02);
    EXPECT_NEAR(r["shapley"][s["name"].get<std::string>()].get<double>(), head_variance[m] / sum,
                0.02);
    const auto ci = s["ci"];
    EXPECT_LE(ci[0].get<double>(), share);
    EXPECT_GE(ci[1].get<double>(), share);
  }
  EXPECT_NEAR(r["orders"]["1"].get<double>(), 1.0, 0.03);  // three estimates' errors add
  EXPECT_LE(r["orders_ci"]["1"][0].get<double>(), r["orders"]["1"].get<double>());
  EXPECT_GE(r["orders_ci"]["1"][1].get<double>(), r["orders"]["1"].get<double>());
  // Subsets by size, then in the config's order, named in R's a:b notation.
  EXPECT_EQ(r["subsets"][0]["name"], "visual");
  EXPECT_EQ(r["subsets"][3]["name"], "visual:audio");
  EXPECT_EQ(r["subsets"][5]["name"], "audio:text");
  EXPECT_EQ(r["subsets"][6]["name"], "visual:audio:text");
}

// The proof: an LMF trained to test R^2 >= 0.97 on data with independent modalities
// recovers the generator's truth within 0.05 in every subset, and gives the modality in
// no term (text) nothing.
TEST(Explain, ATrainedLMFRecoversTheGeneratorsTruth) {
  TempDir dir;
  TrainArgs train;
  train.config = source_path("configs/tiny.json");
  train.overrides = {"threads=2",
                     "data.train_size=8192",
                     "data.val_size=1024",
                     "data.test_size=2048",
                     "data.synthetic.shared_latent_dim=0",
                     "data.synthetic.target_noise=0.05",
                     "data.synthetic.terms=[{\"modalities\":[\"visual\"],\"weight\":1},"
                     "{\"modalities\":[\"audio\"],\"weight\":0.7},"
                     "{\"modalities\":[\"visual\",\"audio\"],\"weight\":1}]",
                     "model.rank=4",
                     "model.fused_dim=16",
                     "model.encoder_hidden=[32]",
                     "train.epochs=30",
                     "train.lr=0.003"};
  train.out = dir.file("run");
  run_train(train);
  const json results = json::parse(read_text(dir.file("run/results.json")));
  ASSERT_GE(results["test"]["r2"].get<double>(), 0.97) << results.dump(2);

  ExplainArgs args;
  args.checkpoint = dir.file("run/checkpoints/best.pt");
  args.options.samples = 32768;
  args.options.bootstrap = 20;
  const json r = run_explain(args);
  EXPECT_EQ(r["out"], dir.file("run/explain"));
  ASSERT_TRUE(r["truth"]["exact"].get<bool>());
  double exact_sum = 0;
  for (const auto& s : r["subsets"]) {
    ASSERT_TRUE(s["truth"].is_number()) << s["name"];
    EXPECT_NEAR(s["share"].get<double>(), s["truth"].get<double>(), 0.05) << s["name"];
    // The model's own expansion agrees with the sampled split, and its terms add up to
    // the output's variance (they are orthogonal for independent modalities).
    EXPECT_NEAR(s["lmf_exact"].get<double>(), s["share"].get<double>(), 0.05) << s["name"];
    exact_sum += s["lmf_exact"].get<double>();
    const auto& mods = s["modalities"];
    if (std::find(mods.begin(), mods.end(), "text") != mods.end())
      EXPECT_LT(std::abs(s["share"].get<double>()), 0.02) << s["name"];
  }
  EXPECT_NEAR(exact_sum, 1.0, 0.05);
}

// The command's files, its refusal to replace them, and the truth of a data file.
TEST(Explain, TheCommandWritesItsFilesAndKeepsEarlierOnes) {
  TempDir dir;
  TrainArgs train;
  train.config = source_path("configs/tiny.json");
  train.out = dir.file("run");
  run_train(train);
  ExplainArgs args;
  args.checkpoint = dir.file("run/checkpoints/best.pt");
  args.options.samples = 2000;
  args.options.bootstrap = 5;
  const json r = run_explain(args);
  for (const char* key :
       {"model", "samples", "output_variance", "subsets", "orders", "total_effect", "shapley"})
    EXPECT_TRUE(r.contains(key)) << key;
  EXPECT_EQ(r["model"], "lmf");
  EXPECT_FALSE(r["truth"]["exact"].get<bool>());  // tiny has a shared latent: no truth
  for (const auto& s : r["subsets"]) EXPECT_TRUE(s["truth"].is_null());
  EXPECT_EQ(json::parse(read_text(dir.file("run/explain/explain.json"))), r);
  // The CSV holds the JSON's numbers: each subset row's share, closed and LMF-exact
  // values, to its six significant digits.
  std::istringstream csv(read_text(dir.file("run/explain/explain.csv")));
  std::string line;
  std::getline(csv, line);
  EXPECT_EQ(line, "kind,name,share,ci_low,ci_high,truth,closed,lmf_exact");
  size_t subset_rows = 0;
  while (std::getline(csv, line)) {
    std::vector<std::string> f;
    std::stringstream fields(line);
    for (std::string x; std::getline(fields, x, ',');) f.push_back(x);
    if (line.back() == ',') f.push_back("");
    ASSERT_EQ(f.size(), 8u) << line;
    if (f[0] != "subset") continue;
    const json& s = r["subsets"][subset_rows++];
    EXPECT_EQ(f[1], s["name"].get<std::string>());
    for (auto [column, key] : {std::pair{2, "share"}, {6, "closed"}, {7, "lmf_exact"}}) {
      ASSERT_FALSE(f[column].empty()) << key << " in " << line;
      EXPECT_NEAR(std::stod(f[column]), s[key].get<double>(),
                  1e-5 * std::abs(s[key].get<double>()) + 1e-12)
          << key << " in " << line;
    }
    EXPECT_TRUE(f[5].empty()) << "no truth for tiny: " << line;
  }
  EXPECT_EQ(subset_rows, r["subsets"].size());
  EXPECT_TRUE(well_formed_xml(dir.file("run/explain/explain.svg")));
  expect_error<UsageError>([&] { run_explain(args); }, "the file exists");
  args.force = true;
  EXPECT_NO_THROW(run_explain(args));

  // A data file written by synth carries its truth beside it.
  SynthArgs synth;
  synth.config = source_path("configs/tiny.json");
  synth.overrides = {"data.synthetic.shared_latent_dim=0"};
  synth.split = "test";
  synth.output = dir.file("independent.pt");
  run_synth(synth);
  ASSERT_TRUE(fs::exists(dir.file("independent.truth.json")));
  args.data = synth.output;
  args.out = dir.file("on-file");
  const json on_file = run_explain(args);
  EXPECT_TRUE(on_file["truth"]["exact"].get<bool>());
  EXPECT_NEAR(on_file["subsets"][6]["truth"].get<double>(),
              on_file["truth"]["subsets"][6]["share"].get<double>(),
              1e-12);  // visual:audio:text
  // A damaged truth file is a one-line error that names it.
  write_text(dir.file("independent.truth.json"),
             "{\"exact\": true, \"subsets\": [{\"name\": \"visual\"}]}");
  args.out = dir.file("damaged");
  expect_error([&] { run_explain(args); }, "independent.truth.json: not a truth file");
}

TEST(ExplainDependence, FindsAModalityTheOthersPredictAndNoneInIndependentOnes) {
  torch::manual_seed(11);
  const int64_t n = 1500;
  Dataset d;
  d.origin = "test";
  d.names = {"a", "b", "c"};
  const auto a = torch::randn({n, 6});
  d.features = {a, a.mm(torch::randn({6, 8})) + 0.1 * torch::randn({n, 8}), torch::randn({n, 4})};
  const json r = dependence_json(d, 1);
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r["rows"], n);
  // b is a full-rank linear image of a (plus a little noise), so each predicts the other's main
  // directions; c is independent noise.
  EXPECT_GT(r["r2"]["a"].get<double>(), 0.9) << r.dump();
  EXPECT_GT(r["r2"]["b"].get<double>(), 0.9) << r.dump();
  EXPECT_LT(r["r2"]["c"].get<double>(), 0.05) << r.dump();
  EXPECT_EQ(r["dependent"], json::array({"a", "b"}));
  // Three independent modalities: nothing to predict.
  d.features = {torch::randn({n, 6}), torch::randn({n, 5}), torch::randn({n, 4})};
  const json none = dependence_json(d, 1);
  for (const auto& [m, v] : none["r2"].items()) EXPECT_LT(v.get<double>(), 0.05) << m;
  EXPECT_TRUE(none["dependent"].empty());
  // One modality: no others.
  d.names = {"a"};
  d.features = {a};
  EXPECT_TRUE(dependence_json(d, 1).is_null());
}

TEST(ExplainDependence, TheTableWarnsOnlyWhenAModalityIsPredictable) {
  TempDir dir;
  TrainArgs train;
  train.config = source_path("configs/tiny.json");
  train.out = dir.file("run");
  train.overrides = {"data.synthetic.shared_latent_dim=0"};
  run_train(train);
  ExplainArgs args;
  args.checkpoint = dir.file("run/checkpoints/best.pt");
  args.options.samples = 500;
  args.options.bootstrap = 2;
  json r = run_explain(args);
  ASSERT_TRUE(r["dependence"].is_object());
  EXPECT_TRUE(r["dependence"]["dependent"].empty()) << r["dependence"].dump();
  std::string table = explain_table(r);
  EXPECT_NE(table.find("predictable from the other modalities (cross-validated R²): visual "),
            std::string::npos)
      << table;
  EXPECT_EQ(table.find("warning:"), std::string::npos) << table;
  r["dependence"]["dependent"] = json::array({"audio"});
  table = explain_table(r);
  EXPECT_NE(table.find("warning: audio is predictable from the others (R² above 0.1)"),
            std::string::npos)
      << table;
}
