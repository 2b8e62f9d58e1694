// attribute (attribute.hpp) and what it rests on: the value-function arithmetic
// (attribution.hpp) on games whose terms are known, the generator's R^2 of every subset
// (synthetic_truth) against least squares on a large sample, the kept modalities' rows,
// and trained attributions against the truth: independent data, linear dependent data,
// a redundant pair and an XOR label.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/data/synthetic.hpp"
#include "mmfusion/experiments/attribute.hpp"
#include "mmfusion/explain/attribution.hpp"
#include "mmfusion/explain/explain.hpp"
#include "mmfusion/cli/commands.hpp"
#include "mmfusion/training/run.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A game of 3 players with known pure terms: a_i alone, b for {0, 1}, c for all three,
// plus an offset e in v(empty) that no term may see.
constexpr double kA[3] = {0.3, 0.2, 0.1};
constexpr double kB = -0.15, kC = 0.06, kE = -0.02;
double game(uint32_t mask) {
  double v = kE;
  for (int i = 0; i < 3; ++i)
    if (mask & (1u << i)) v += kA[i];
  if ((mask & 3u) == 3u) v += kB;
  if (mask == 7u) v += kC;
  return v;
}

std::map<uint32_t, std::vector<double>> game_runs(const std::vector<double>& seed_effects) {
  std::map<uint32_t, std::vector<double>> runs;
  for (uint32_t mask = 1; mask < 8; ++mask)
    for (double d : seed_effects) runs[mask].push_back(game(mask) + d);
  return runs;
}

// The redundancy setting: visual and audio both see the shared latents, whose term
// drives the target; text adds a small term of its own.
const std::vector<std::string> kRedundancy = {
    "data.synthetic.weights=null",
    "data.synthetic.terms=[{\"modalities\":[\"text\"],\"weight\":0.5}]",
    "data.synthetic.shared_weight=1", "data.synthetic.shared_by=[\"visual\",\"audio\"]",
    "data.synthetic.shared_latent_dim=2"};

// A linear target of dependent modalities: the weights' unimodal part alone (each
// modality's own latents and the shared ones).
const std::vector<std::string> kLinearDependent = {"data.synthetic.weights.bimodal=0",
                                                   "data.synthetic.weights.trimodal=0",
                                                   "data.synthetic.shared_latent_dim=2"};

std::vector<std::string> joined(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Least squares of the target on the features of `names` (and a constant), fitted on one
// sample and scored (R^2) on another.
double least_squares_r2(const Dataset& fit, const Dataset& score,
                        const std::vector<std::string>& names) {
  auto design = [&](const Dataset& d) {
    std::vector<torch::Tensor> cols{torch::ones({d.size(), 1}, torch::kFloat64)};
    for (size_t m = 0; m < d.names.size(); ++m)
      if (std::find(names.begin(), names.end(), d.names[m]) != names.end())
        cols.push_back(d.features[m].to(torch::kFloat64));
    return torch::cat(cols, 1);
  };
  const auto x = design(fit), y = fit.target.to(torch::kFloat64);
  // The pseudo-inverse: without feature noise the features span fewer directions than
  // they have columns.
  const auto beta = torch::linalg_pinv(x, 1e-6).mm(y);
  const auto ys = score.target.to(torch::kFloat64);
  const auto residual = ys - design(score).mm(beta);
  return 1.0 - residual.pow(2).mean().item<double>() / ys.var(0, false).item<double>();
}

std::map<std::string, double> truth_r2(const SyntheticTruth& t) {
  std::map<std::string, double> out;
  for (const auto& s : t.r2) out[subset_name(s.modalities)] = s.r2;
  return out;
}

// configs/leaves100.json's data files, wherever the tests run from.
std::vector<std::string> leaves100_files() {
  return {"data.path=" + source_path("data/leaves100/leaves-train.pt"),
          "data.val_path=" + source_path("data/leaves100/leaves-val.pt"),
          "data.test_path=" + source_path("data/leaves100/leaves-test.pt")};
}

AttributeArgs tiny_attribution(const TempDir& dir, const std::vector<std::string>& overrides) {
  AttributeArgs args;
  args.config = source_path("configs/tiny.json");
  args.overrides = overrides;
  args.out = dir.file("attribute");
  return args;
}

const json& entry(const json& list, const std::string& name) {
  for (const auto& e : list)
    if (e["name"] == name) return e;
  throw std::runtime_error("no entry " + name);
}

}  // namespace

// ---- the arithmetic ----------------------------------------------------------------

TEST(Attribution, MobiusShapleyAndLeaveOneOutOfAKnownGame) {
  const Attribution a = attribute_values(3, kE, game_runs({0.0}), {});
  const std::map<uint32_t, double> pure = {{1, kA[0]}, {2, kA[1]}, {4, kA[2]}, {3, kB},
                                           {5, 0.0},   {6, 0.0},   {7, kC}};
  ASSERT_EQ(a.mobius.size(), 7u);
  for (const auto& [mask, value] : pure) EXPECT_NEAR(a.mobius.at(mask).value, value, 1e-12) << mask;
  // Shapley: each pure term shared evenly among its members.
  const double phi[3] = {kA[0] + kB / 2 + kC / 3, kA[1] + kB / 2 + kC / 3, kA[2] + kC / 3};
  ASSERT_EQ(a.shapley.size(), 3u);
  double sum = 0;
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(a.shapley[i].value, phi[i], 1e-12);
    sum += a.shapley[i].value;
  }
  EXPECT_NEAR(sum, game(7) - game(0), 1e-12);  // efficiency
  // Leave-one-out: v(all) - v(all without i).
  ASSERT_EQ(a.leave_one_out.size(), 3u);
  EXPECT_NEAR(a.leave_one_out[0].value, kA[0] + kB + kC, 1e-12);
  EXPECT_NEAR(a.leave_one_out[2].value, kA[2] + kC, 1e-12);
}

// Run k of every subset shares seed k: a seed effect common to all subsets cancels from a
// difference of subsets (the leave-one-out drop) in every resample, so its interval has
// no width, while a subset's own value varies with the seeds drawn.
TEST(Attribution, TheBootstrapPairsRunsBySeed) {
  AttributionOptions o;
  o.bootstrap = 400;
  const Attribution a = attribute_values(3, kE, game_runs({-0.05, 0.0, 0.08}), o);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(a.leave_one_out[i].high - a.leave_one_out[i].low, 0.0, 1e-12) << i;
    EXPECT_NEAR(a.leave_one_out[i].value, game(7) - game(7 & ~(1u << i)), 1e-12);
  }
  const Estimate& full = a.values.at(7);
  EXPECT_NEAR(full.value, game(7) + 0.01, 1e-12);  // the seeds' mean
  EXPECT_GT(full.high - full.low, 0.05);
  EXPECT_LE(full.low, full.value);
  EXPECT_GE(full.high, full.value);
  // The same options give the same intervals.
  EXPECT_EQ(attribute_values(3, kE, game_runs({-0.05, 0.0, 0.08}), o).values.at(7).low, full.low);
}

TEST(Attribution, EveryPermutationGivesTheExactShapleyValues) {
  AttributionOptions o;
  o.bootstrap = 0;
  o.permutations = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
  const Attribution sampled = attribute_values(3, kE, game_runs({0.0}), o);
  const Attribution exact = attribute_values(3, kE, game_runs({0.0}), {});
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(sampled.shapley[i].value, exact.shapley[i].value, 1e-12);

  const auto perms = sample_permutations(5, 20, 9);
  ASSERT_EQ(perms.size(), 20u);
  for (const auto& p : perms) EXPECT_EQ(std::set<int>(p.begin(), p.end()).size(), 5u);
  EXPECT_EQ(sample_permutations(5, 20, 9), perms);  // from the seed alone
  EXPECT_NE(sample_permutations(5, 20, 10), perms);
  const auto masks = permutation_subsets(perms);
  EXPECT_EQ(masks.back(), 31u);  // every permutation ends at the full set
  EXPECT_TRUE(std::is_sorted(masks.begin(), masks.end()));
  // Every order of 3 players passes through every non-empty subset; one order through 3.
  EXPECT_EQ(permutation_subsets(o.permutations), (std::vector<uint32_t>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(permutation_subsets({{2, 0, 1}}), (std::vector<uint32_t>{4, 5, 7}));
}

TEST(Attribution, UnevenRunsAndMissingPrefixesAreErrors) {
  auto runs = game_runs({0.0, 0.1});
  runs[3].pop_back();
  expect_error([&] { attribute_values(3, 0, runs, {}); }, "the same number of runs");
  auto partial = game_runs({0.0});
  partial.erase(3);
  AttributionOptions o;
  o.permutations = {{0, 1, 2}};
  expect_error([&] { attribute_values(3, 0, partial, o); }, "prefix");
  // Without every subset: single pure terms only, no Shapley values, and no leave-one-out
  // drops without every set of all but one ({0, 1} is missing).
  const Attribution a = attribute_values(3, kE, partial, {});
  EXPECT_TRUE(a.shapley.empty());
  EXPECT_EQ(a.mobius.size(), 3u);
  EXPECT_NEAR(a.mobius.at(4).value, kA[2], 1e-12);
  EXPECT_TRUE(a.leave_one_out.empty());
}

// ---- the truth -------------------------------------------------------------------

// The closed form (Gaussian conditioning) against least squares on 2^16 rows, scored on
// another 2^16: a linear target is what least squares fits, so they agree within its
// sampling error.
TEST(SyntheticTruth, TheR2OfEverySubsetIsWhatLeastSquaresReachesOnDependentData) {
  // Feature noise 0 takes the projection branch of the closed form.
  for (const auto& setting : {joined(kLinearDependent, {"data.synthetic.feature_noise=0.5"}),
                              joined(kLinearDependent, {"data.synthetic.feature_noise=0"}),
                              joined(kRedundancy, {"data.synthetic.feature_noise=0.5"})}) {
    const ExperimentConfig c =
        tiny_config(joined({"data.train_size=65536", "data.test_size=65536"}, setting));
    const SyntheticTruth t = synthetic_truth(c.data, c.seed);
    ASSERT_TRUE(t.r2_exact) << t.r2_why_not;
    ASSERT_EQ(t.r2.size(), 7u);
    const Dataset fit = generate_synthetic(c.data, c.seed, Split::Train);
    const Dataset score = generate_synthetic(c.data, c.seed, Split::Test);
    for (const auto& s : t.r2)
      EXPECT_NEAR(least_squares_r2(fit, score, s.modalities), s.r2, 0.01)
          << subset_name(s.modalities) << " " << setting.front() << " " << setting.back();
    EXPECT_NEAR(t.best_r2, t.r2.back().r2, 1e-12);
  }
}

// Independent modalities: R^2(S) is best_r2 times the closed Sobol share of S, the sum of
// the pure shares of its subsets (what explain compares with).
TEST(SyntheticTruth, IndependentModalitiesGiveTheSobolSharesTimesBestR2) {
  const ExperimentConfig c = tiny_config({"data.synthetic.shared_latent_dim=0"});
  const SyntheticTruth t = synthetic_truth(c.data, c.seed);
  ASSERT_TRUE(t.exact);
  ASSERT_TRUE(t.r2_exact);
  for (const auto& s : t.r2) {
    double closed = 0;
    for (const auto& term : t.subsets)
      if (std::includes(s.modalities.begin(), s.modalities.end(), term.modalities.begin(),
                        term.modalities.end(), [&](const std::string& a, const std::string& b) {
                          auto pos = [&](const std::string& n) {
                            for (size_t i = 0; i < c.data.modalities.size(); ++i)
                              if (c.data.modalities[i].name == n) return i;
                            return size_t(99);
                          };
                          return pos(a) < pos(b);
                        }))
        closed += term.share;
    EXPECT_NEAR(s.r2, t.best_r2 * closed, 1e-9) << subset_name(s.modalities);
  }
  // Shared latents and interaction terms: no closed form, and it says why.
  const SyntheticTruth d = synthetic_truth(tiny_config().data, 7);
  EXPECT_FALSE(d.r2_exact);
  EXPECT_NE(d.r2_why_not.find("shared_latent_dim"), std::string::npos) << d.r2_why_not;
  EXPECT_TRUE(to_json(d)["r2"].is_null());
}

TEST(SyntheticTruth, TheRedundantPairHasANegativePureTerm) {
  const ExperimentConfig c = tiny_config(kRedundancy);
  const auto r2 = truth_r2(synthetic_truth(c.data, c.seed));
  const double pair = r2.at("visual:audio") - r2.at("visual") - r2.at("audio");
  EXPECT_LT(pair, -0.5 * r2.at("visual"));
  // Each alone reaches (almost) what the two reach together.
  EXPECT_GT(r2.at("visual"), 0.98 * r2.at("visual:audio"));
  EXPECT_GT(r2.at("audio"), 0.98 * r2.at("visual:audio"));
}

// data.synthetic.modalities draws every modality; data.modalities keeps some, whose rows
// are bit for bit those of the full data, in fixed splits and in a training stream.
TEST(SyntheticData, AKeptModalitysRowsAreTheSameWhateverTheOthers) {
  const ExperimentConfig full = tiny_config();
  const ExperimentConfig kept = tiny_config(
      {"data.modalities=[{\"name\":\"text\",\"dim\":24},{\"name\":\"visual\",\"dim\":16}]",
       "data.synthetic.modalities=[{\"name\":\"visual\",\"dim\":16},{\"name\":\"audio\","
       "\"dim\":8},{\"name\":\"text\",\"dim\":24}]"});
  const Dataset a = generate_synthetic(full.data, full.seed, Split::Val);
  const Dataset b = generate_synthetic(kept.data, kept.seed, Split::Val);
  ASSERT_EQ(b.names, (std::vector<std::string>{"text", "visual"}));
  EXPECT_TRUE(torch::equal(b.features[0], a.features[2]));
  EXPECT_TRUE(torch::equal(b.features[1], a.features[0]));
  EXPECT_TRUE(torch::equal(b.target, a.target));
  const Dataset sa = TrainingStream(full).rows(3, 10, 20),
                sb = TrainingStream(kept).rows(3, 10, 20);
  EXPECT_TRUE(torch::equal(sb.features[0], sa.features[2]));
  // All of them, in another order: each feature is its own modality's.
  const ExperimentConfig permuted = tiny_config(
      {"data.modalities=[{\"name\":\"text\",\"dim\":24},{\"name\":\"visual\",\"dim\":16},"
       "{\"name\":\"audio\",\"dim\":8}]",
       "data.synthetic.modalities=[{\"name\":\"visual\",\"dim\":16},{\"name\":\"audio\","
       "\"dim\":8},{\"name\":\"text\",\"dim\":24}]"});
  const Dataset p = generate_synthetic(permuted.data, permuted.seed, Split::Val);
  ASSERT_EQ(p.names, (std::vector<std::string>{"text", "visual", "audio"}));
  EXPECT_TRUE(torch::equal(p.features[0], a.features[2]));
  EXPECT_TRUE(torch::equal(p.features[1], a.features[0]));
  EXPECT_TRUE(torch::equal(p.features[2], a.features[1]));
  // The resolved config names the generator's modalities only when they differ.
  EXPECT_FALSE(to_json(full)["data"]["synthetic"].contains("modalities"));
  EXPECT_EQ(to_json(kept)["data"]["synthetic"]["modalities"].size(), 3u);
  // train.seed follows seed unless given.
  EXPECT_EQ(full.train.seed, full.seed);
  EXPECT_EQ(tiny_config({"train.seed=5"}).train.seed, 5u);
}

// ---- the command ------------------------------------------------------------------

// Runs are folders of the pool: shards partition them, a rerun trains nothing twice, a
// run whose results are gone resumes from its checkpoint, and the report is rebuilt from
// the folder alone.
TEST(Attribute, ShardsPartitionTheRunsAndAResumeTrainsNothingTwice) {
  TempDir dir;
  AttributeArgs args = tiny_attribution(dir, {"train.epochs=2"});
  args.seeds = 2;
  args.bootstrap = 50;
  std::set<std::string> seen;
  size_t total = 0;
  for (const char* shard : {"0/2", "1/2"}) {
    args.shard = shard;
    const AttributeOutcome o = run_attribute(args);
    EXPECT_EQ(o.runs.completed, static_cast<int>(o.runs.runs.size()));
    for (const auto& r : o.runs.runs) EXPECT_TRUE(seen.insert(r).second) << r << " twice";
    total += o.runs.runs.size();
    // The first shard cannot report: the other's runs are missing.
    EXPECT_EQ(o.result.is_null(), std::string(shard) == "0/2");
  }
  EXPECT_EQ(total, 14u);  // 7 subsets x 2 seeds
  args.shard = "";
  const AttributeOutcome again = run_attribute(args);
  EXPECT_EQ(again.runs.skipped, 14);
  EXPECT_EQ(again.runs.completed, 0);
  ASSERT_TRUE(again.result.is_object());
  EXPECT_EQ(again.result["subsets"].size(), 7u);
  EXPECT_EQ(again.result["mobius"].size(), 7u);
  EXPECT_EQ(again.result["train_seeds"], json::array({7, 8}));
  const json& visual = entry(again.result["subsets"], "visual");
  ASSERT_EQ(visual["runs"].size(), 2u);
  const json results = json::parse(read_text(dir.file("attribute/visual_seed-2/results.json")));
  EXPECT_EQ(visual["runs"][1]["r2"], results["test"]["r2"]);
  EXPECT_EQ(visual["runs"][1]["seed"], 8);
  const json config = json::parse(read_text(dir.file("attribute/visual_seed-2/config.json")));
  EXPECT_EQ(config["train"]["seed"], 8);
  EXPECT_EQ(config["data"]["modalities"].size(), 1u);
  EXPECT_EQ(config["seed"], 7);  // the data's seed stays

  // An interrupted run (a checkpoint, no results): only it trains, each epoch once.
  fs::remove(dir.file("attribute/audio+text_seed-1/results.json"));
  const AttributeOutcome resumed = run_attribute(args);
  EXPECT_EQ(resumed.runs.completed, 1);
  EXPECT_EQ(resumed.runs.skipped, 13);
  std::ifstream metrics(dir.file("attribute/audio+text_seed-1/metrics.jsonl"));
  std::set<int64_t> epochs;
  int lines = 0;
  for (std::string line; std::getline(metrics, line); ++lines)
    epochs.insert(json::parse(line)["epoch"].get<int64_t>());
  EXPECT_EQ(lines, 2);
  EXPECT_EQ(epochs.size(), 2u);

  // The report from the folder alone is the same.
  const json before = json::parse(read_text(dir.file("attribute/attribute.json")));
  fs::remove(dir.file("attribute/attribute.json"));
  AttributeArgs report;
  report.report = dir.file("attribute");
  const AttributeOutcome rebuilt = run_attribute(report);
  EXPECT_EQ(rebuilt.result, before);
  EXPECT_EQ(json::parse(read_text(dir.file("attribute/attribute.json"))), before);
  EXPECT_TRUE(well_formed_xml(dir.file("attribute/attribute.svg")));
  const std::string csv = read_text(dir.file("attribute/attribute.csv"));
  EXPECT_EQ(csv.rfind("kind,name,metric,value,ci_low,ci_high,truth\n", 0), 0u);
  EXPECT_NE(csv.find("\nmobius,visual:audio,r2,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nshapley,visual,r2,"), std::string::npos) << csv;
  const std::string table = attribute_table(before);
  EXPECT_NE(table.find("Shapley values"), std::string::npos) << table;

  // Another config in the same folder is refused (its runs would be mixed in).
  args.overrides = {"train.epochs=3"};
  expect_error<UsageError>([&] { run_attribute(args); }, "holds the attribution of another config");
}

TEST(Attribute, SubsetModesAndTheirLimits) {
  TempDir dir;
  AttributeArgs args = tiny_attribution(dir, {});
  args.dry_run = true;
  args.seeds = 1;
  args.subsets = "singles-and-leave-one-out";
  EXPECT_EQ(run_attribute(args).runs.runs.size(), 7u);  // 3 singles, 3 pairs, the full set
  args.subsets = "sampled";
  args.permutations = 1;
  EXPECT_EQ(run_attribute(args).runs.runs.size(), 3u);  // one order's 3 prefixes
  // Seven modalities: `all` would be 127 subsets; the error names the other modes.
  std::string seven = "data.modalities=[";
  for (int i = 0; i < 7; ++i)
    seven += std::string(i ? "," : "") + "{\"name\":\"m" + std::to_string(i) + "\",\"dim\":3}";
  args.overrides = {seven + "]", "data.synthetic.weights.trimodal=0"};
  args.subsets = "all";
  args.permutations = 0;
  try {
    run_attribute(args);
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("127 subsets"), std::string::npos) << what;
    EXPECT_NE(what.find("singles-and-leave-one-out"), std::string::npos) << what;
    EXPECT_NE(what.find("sampled"), std::string::npos) << what;
  }
  args.subsets = "singles-and-leave-one-out";
  EXPECT_EQ(run_attribute(args).runs.runs.size(), 15u);  // 2M + 1
  // File data: the subsets keep the file's modalities they name.
  AttributeArgs leaves;
  leaves.config = source_path("configs/leaves100.json");
  leaves.overrides = leaves100_files();
  leaves.out = dir.file("leaves");
  leaves.dry_run = true;
  leaves.seeds = 3;
  EXPECT_EQ(run_attribute(leaves).runs.runs.size(), 21u);
}

const char* kFourModalities =
    "data.modalities=[{\"name\":\"visual\",\"dim\":16},{\"name\":\"audio\",\"dim\":8},"
    "{\"name\":\"text\",\"dim\":24},{\"name\":\"extra\",\"dim\":4}]";

// A subset's config drops what names a removed modality and never gains a set the full
// model lacks; singles-and-leave-one-out reports without Shapley values.
TEST(Attribute, SubsetConfigsKeepOnlyTheirOwnSetsAndTheReportWithoutShapleyValues) {
  TempDir dir;
  AttributeArgs args =
      tiny_attribution(dir, {"train.epochs=1", "model.type=intense", kFourModalities,
                             "model.intense.interactions=[[\"visual\",\"audio\"]]",
                             "mkl.interactions=[[\"visual\",\"text\"]]",
                             "model.encoders={\"audio\":[4],\"text\":[6]}"});
  args.seeds = 1;
  args.bootstrap = 0;
  args.subsets = "singles-and-leave-one-out";
  const json r = run_attribute(args).result;
  ASSERT_TRUE(r.is_object());
  auto config_of = [&](const std::string& run) {
    return json::parse(read_text(dir.file("attribute/" + run + "_seed-1/config.json")));
  };
  EXPECT_EQ(config_of("visual+audio+text")["model"]["intense"]["interactions"],
            json::parse(R"([["visual","audio"]])"));
  EXPECT_EQ(config_of("visual+text+extra")["model"]["intense"]["interactions"], json::array());
  EXPECT_EQ(config_of("visual+text+extra")["mkl"]["interactions"],
            json::parse(R"([["visual","text"]])"));
  EXPECT_EQ(config_of("visual+audio+extra")["mkl"]["interactions"], json::array());
  EXPECT_FALSE(config_of("visual+text+extra")["model"]["encoders"].contains("audio"));
  EXPECT_EQ(config_of("audio+text+extra")["model"]["encoders"]["audio"], json::array({4}));
  // 4 singles, 4 sets of all but one and the full set: pure terms of single modalities,
  // leave-one-out drops, no Shapley values.
  EXPECT_EQ(r["subsets"].size(), 9u);
  EXPECT_EQ(r["mobius"].size(), 4u);
  EXPECT_TRUE(r["shapley"].is_null());
  EXPECT_TRUE(r["leave_one_out"].is_object());
  const std::string csv = read_text(dir.file("attribute/attribute.csv"));
  EXPECT_EQ(csv.find("\nshapley,"), std::string::npos) << csv;
  EXPECT_NE(csv.find("\nleave_one_out,audio,r2,"), std::string::npos) << csv;
  EXPECT_EQ(attribute_table(r).find("Shapley"), std::string::npos);
  EXPECT_TRUE(well_formed_xml(dir.file("attribute/attribute.svg")));
}

// MulT (issue 46): a single-modality subset trains its unimodal ablation (MulT needs 2
// modalities otherwise), the others the cross-modal model; a per-modality value given per
// name keeps the kept modalities' entries in each subset's config.
TEST(Attribute, MulTSinglesAreItsUnimodalAblationAndPerModalityValuesFollowTheSubset) {
  TempDir dir;
  AttributeArgs args = tiny_attribution(
      dir, {"train.epochs=1", "model.type=mult", "model.mult.width=8", "model.mult.heads=2",
            "model.mult.layers=1", "model.mult.memory_layers=1",
            "data.modalities=[{\"name\":\"visual\",\"dim\":6},{\"name\":\"audio\",\"dim\":4,"
            "\"sequence\":true,\"max_len\":5},{\"name\":\"text\",\"dim\":5,\"sequence\":true,"
            "\"max_len\":4}]",
            "data.synthetic.min_len=2", "model.mult.kernel={\"audio\":3,\"text\":2}",
            "model.mult.dropout.attention={\"text\":0.3}", "model.mult.dropout.input=0.2"});
  args.seeds = 1;
  args.bootstrap = 0;
  const json r = run_attribute(args).result;
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r["subsets"].size(), 7u);
  auto config_of = [&](const std::string& run) {
    return json::parse(read_text(dir.file("attribute/" + run + "_seed-1/config.json")));
  };
  for (const char* single : {"visual", "audio", "text"}) {
    const json mult = config_of(single)["model"]["mult"];
    EXPECT_EQ(mult["unimodal"], true) << single;
    EXPECT_EQ(mult["kernel"].size(), 1u) << single;
    EXPECT_EQ(mult["dropout"]["input"], json({{single, 0.2}})) << single;
  }
  EXPECT_EQ(config_of("text")["model"]["mult"]["kernel"], json({{"text", 2}}));
  EXPECT_EQ(config_of("text")["model"]["mult"]["dropout"]["attention"], json({{"text", 0.3}}));
  const json pair = config_of("visual+audio")["model"]["mult"];
  EXPECT_EQ(pair["unimodal"], false);
  EXPECT_EQ(pair["kernel"], json({{"visual", 1}, {"audio", 3}}));
  EXPECT_EQ(pair["dropout"]["attention"], json({{"visual", 0.1}, {"audio", 0.1}}));
  for (const auto& s : r["subsets"])
    EXPECT_TRUE(std::isfinite(s["values"]["r2"].get<double>())) << s["name"];
}

// Classification: v(empty) from the training class frequencies (half a count added),
// computed here by hand; sampled Shapley values add up to v(all) - v(empty) = v(all).
TEST(Attribute, ClassificationsConstantAndASampledOrder) {
  TempDir dir;
  AttributeArgs args = tiny_attribution(
      dir, {"train.epochs=2", "task=classification", "num_classes=3", "data.train_size=300"});
  args.seeds = 1;
  args.bootstrap = 0;
  args.subsets = "sampled";
  args.permutations = 1;
  const json r = run_attribute(args).result;
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r["budget"]["subsets"], 3);
  const ExperimentConfig c =
      parse_config(json::parse(read_text(dir.file("attribute/attribute-plan.json")))["base"]);
  const DataSplits data = load_splits(c);
  std::vector<double> counts(3, 0.5);
  for (int64_t i = 0; i < data.train.size(); ++i) counts[data.train.target[i].item<int64_t>()] += 1;
  const double total = counts[0] + counts[1] + counts[2];
  double ce = 0;
  for (int64_t i = 0; i < data.test.size(); ++i)
    ce -= std::log2(counts[data.test.target[i].item<int64_t>()] / total);
  ce /= double(data.test.size());
  EXPECT_NEAR(r["constant"]["cross_entropy"].get<double>(), ce, 1e-9);
  const size_t top = std::max_element(counts.begin(), counts.end()) - counts.begin();
  EXPECT_NEAR(r["constant"]["accuracy"].get<double>(),
              data.test.target.eq(int64_t(top)).to(torch::kFloat64).mean().item<double>(), 1e-12);
  double sum = 0;
  for (const auto& [m, v] : r["shapley"].items()) sum += v.get<double>();
  EXPECT_NEAR(sum, entry(r["subsets"], "visual:audio:text")["values"]["information"].get<double>(),
              1e-9);
  // A shard of another config in the same folder is refused.
  AttributeArgs other = tiny_attribution(dir, {"train.epochs=3"});
  other.shard = "1/2";
  expect_error<ConfigError>([&] { run_attribute(other); }, "holds another attribution");
}

// ---- trained attributions against the truth (slow) --------------------------------

// Independent modalities with the default structure (unimodal, bimodal and trimodal
// parts): every pure term within 0.03 of the truth, for LMF and for concat. 16384 rows and
// 30 epochs take the full model within 0.02 of the best R^2.
TEST(AttributeTruth, IndependentDataPureTermsMatchTheTruthForLMFAndConcat) {
  for (const char* type : {"lmf", "concat"}) {
    SCOPED_TRACE(type);
    TempDir dir;
    AttributeArgs args = tiny_attribution(
        dir, {std::string("model.type=") + type, "data.synthetic.shared_latent_dim=0",
              "data.synthetic.target_noise=0.05", "data.train_size=16384", "data.val_size=2048",
              "data.test_size=4096", "train.epochs=30", "train.batch_size=128", "train.lr=0.003",
              "model.rank=4", "model.fused_dim=16", "model.encoder_hidden=[64]", "threads=2"});
    args.seeds = 1;
    args.bootstrap = 0;
    const json r = run_attribute(args).result;
    ASSERT_TRUE(r.is_object());
    ASSERT_TRUE(r["truth"].is_object());
    const double best = r["truth"]["best_r2"].get<double>();
    EXPECT_GT(entry(r["subsets"], "visual:audio:text")["values"]["r2"].get<double>(), best - 0.02);
    for (const auto& m : r["mobius"])
      EXPECT_NEAR(m["value"].get<double>(), m["truth"].get<double>(), 0.03) << m["name"];
  }
}

TEST(AttributeTruth, LinearDependentDataReachTheClosedFormInEverySubset) {
  TempDir dir;
  AttributeArgs args =
      tiny_attribution(dir, joined({"model.type=concat", "data.train_size=8192",
                                    "data.test_size=4096", "train.epochs=20", "threads=2"},
                                   kLinearDependent));
  args.seeds = 1;
  args.bootstrap = 0;
  const json r = run_attribute(args).result;
  ASSERT_TRUE(r.is_object());
  for (const auto& s : r["subsets"]) {
    ASSERT_TRUE(s["truth"].is_number()) << s["name"];
    EXPECT_NEAR(s["values"]["r2"].get<double>(), s["truth"].get<double>(), 0.03) << s["name"];
  }
}

TEST(AttributeTruth, TheRedundantPairsTermIsNegativeAndShapleySplitsItEvenly) {
  TempDir dir;
  AttributeArgs args =
      tiny_attribution(dir, joined({"model.type=concat", "data.train_size=4096",
                                    "data.test_size=2048", "train.epochs=20", "threads=2"},
                                   kRedundancy));
  args.seeds = 2;
  args.bootstrap = 200;
  const json r = run_attribute(args).result;
  ASSERT_TRUE(r.is_object());
  const double single = entry(r["subsets"], "visual")["values"]["r2"].get<double>();
  const json& pair = entry(r["mobius"], "visual:audio");
  EXPECT_LT(pair["value"].get<double>(), -0.5 * single) << pair.dump();
  EXPECT_LT(pair["ci"][1].get<double>(), 0.0);
  EXPECT_NEAR(r["shapley"]["visual"].get<double>(), r["shapley"]["audio"].get<double>(), 0.05);
  // Leaving either out costs almost nothing: the other carries the shared factor.
  EXPECT_LT(r["leave_one_out"]["visual"].get<double>(), 0.02);
}

// An XOR-like label (the sign of a product of a visual and an audio factor): the pair
// holds nearly the whole bit, each modality alone nothing.
TEST(AttributeTruth, AnXorLabelIsInformationOfThePairAlone) {
  TempDir dir;
  AttributeArgs args = tiny_attribution(
      dir, {"model.type=lmf", "task=classification", "num_classes=2",
            "data.synthetic.shared_latent_dim=0", "data.synthetic.weights=null",
            "data.synthetic.terms=[{\"modalities\":[\"visual\",\"audio\"]}]",
            "data.synthetic.target_noise=0.01", "data.synthetic.feature_noise=0.01",
            "data.train_size=8192", "data.val_size=1024", "data.test_size=2048", "train.epochs=30",
            "train.lr=0.003", "model.rank=4", "model.fused_dim=16", "model.encoder_hidden=[32]",
            "threads=2"});
  args.seeds = 1;
  args.bootstrap = 0;
  const json r = run_attribute(args).result;
  ASSERT_TRUE(r.is_object());
  EXPECT_EQ(r["metric"], "information");
  EXPECT_TRUE(r["truth"].is_null());
  EXPECT_GT(entry(r["mobius"], "visual:audio")["value"].get<double>(), 0.8);
  for (const char* single : {"visual", "audio", "text"})
    EXPECT_LT(entry(r["mobius"], single)["value"].get<double>(), 0.05) << single;
}

// The moment structure (data.synthetic.moment): the content at the moment the marker marks
// is the target, so the pair holds the whole explained variance and each modality alone
// none. MulT with its causal mask, on 4-step rows, finds the pair's term within 0.1 of the
// truth's (0.980; 0.93 measured in 15 epochs), and its unimodal ablation finds nothing in
// either modality alone.
TEST(AttributeTruth, MulTFindsTheMomentInThePairAlone) {
  TempDir dir;
  AttributeArgs args = tiny_attribution(
      dir,
      {"data.modalities=[{\"name\":\"a\",\"dim\":4,\"sequence\":true,\"max_len\":4},"
       "{\"name\":\"b\",\"dim\":8,\"sequence\":true,\"max_len\":4}]",
       "data.synthetic.weights=null", "data.synthetic.moment={\"marker\":\"a\",\"content\":\"b\"}",
       "data.train_size=4096", "data.synthetic.stream=true", "data.val_size=512",
       "data.test_size=1024", "train.epochs=15", "train.batch_size=64", "train.lr=0.002",
       "model.type=mult", "model.mult.width=16", "model.mult.heads=2", "model.mult.layers=1",
       "model.mult.memory_layers=1", "model.mult.causal=true"});
  args.seeds = 1;
  args.bootstrap = 0;
  const json r = run_attribute(args).result;
  ASSERT_TRUE(r.is_object());
  ASSERT_TRUE(r["truth"].is_object());
  const json& pair = entry(r["mobius"], "a:b");
  EXPECT_NEAR(pair["truth"].get<double>(), 0.980, 0.001);
  EXPECT_GT(pair["value"].get<double>(), pair["truth"].get<double>() - 0.1);
  for (const char* single : {"a", "b"}) {
    EXPECT_EQ(entry(r["subsets"], single)["truth"].get<double>(), 0.0) << single;
    EXPECT_LT(std::abs(entry(r["subsets"], single)["values"]["r2"].get<double>()), 0.03) << single;
  }
}

// Worker processes train the same runs as this process does.
TEST(Attribute, JobsTrainTheRunsInWorkerProcesses) {
  TempDir dir;
  AttributeArgs args = tiny_attribution(dir, {"train.epochs=2", "threads=0"});
  args.seeds = 1;
  args.jobs = 2;
  args.executable = MMFUSION_BINARY;
  const AttributeOutcome o = run_attribute(args);
  EXPECT_EQ(o.runs.completed, 7);
  ASSERT_TRUE(o.result.is_object());
  EXPECT_TRUE(fs::exists(dir.file("attribute/logs/visual_seed-1.log")));
}

// ---- explain's dependence check on dependent data ---------------------------------

TEST(ExplainDependence, HighOnTheRedundantPairAndOnLeaves100WithTheWarning) {
  const ExperimentConfig c = tiny_config(joined({"data.train_size=2048"}, kRedundancy));
  const json r = dependence_json(generate_synthetic(c.data, c.seed, Split::Train), 1);
  EXPECT_GT(r["r2"]["visual"].get<double>(), 0.1) << r.dump();
  EXPECT_GT(r["r2"]["audio"].get<double>(), 0.1) << r.dump();
  EXPECT_LT(r["r2"]["text"].get<double>(), 0.05) << r.dump();

  TempDir dir;
  TrainArgs train;
  train.config = source_path("configs/leaves100.json");
  train.overrides = joined({"train.epochs=2"}, leaves100_files());
  train.out = dir.file("leaves");
  run_train(train);
  ExplainArgs args;
  args.checkpoint = dir.file("leaves/checkpoints/best.pt");
  args.options.samples = 500;
  args.options.bootstrap = 2;
  const json e = run_explain(args);
  ASSERT_FALSE(e["dependence"]["dependent"].empty()) << e["dependence"].dump();
  const std::string table = explain_table(e);
  EXPECT_NE(table.find("warning:"), std::string::npos) << table;
  EXPECT_NE(table.find("mmfusion attribute"), std::string::npos) << table;
}

// Issue 45: on 6 modalities, explain's and attribute's figures are at most 1200 px wide and
// pass the layout check (every subset stays in the CSV and the JSON, not in the figure).
TEST(AttributeFigures, SixModalitiesFitIn1200PxAndPassTheLayoutCheck) {
  TempDir dir;
  std::string six = "data.modalities=[";
  const char* names[] = {"facial", "fourier", "karhunen", "pixels", "zernike", "morphology"};
  for (int i = 0; i < 6; ++i)
    six += std::string(i ? "," : "") + "{\"name\":\"" + names[i] + "\",\"dim\":3}";
  const std::vector<std::string> overrides = {six + "]", "data.synthetic.weights.trimodal=0",
                                              "data.train_size=128", "train.epochs=1"};
  auto check = [](const std::string& path) {
    const std::string svg = read_text(path);
    SCOPED_TRACE(path);
    EXPECT_LE(std::stoi(svg.substr(svg.find("width=\"") + 7)), 1200);
    EXPECT_EQ(svg_layout_problems(svg), std::vector<std::string>{});
    EXPECT_NE(svg.find("Pair terms"), std::string::npos);
    EXPECT_EQ(svg.find("Each subset"), std::string::npos);  // no strip above 4 modalities
  };
  TrainArgs train;
  train.config = source_path("configs/tiny.json");
  train.overrides = overrides;
  train.out = dir.file("run");
  run_train(train);
  ExplainArgs explain;
  explain.checkpoint = dir.file("run/checkpoints/best.pt");
  explain.options.samples = 500;
  explain.options.bootstrap = 5;
  const json e = run_explain(explain);
  EXPECT_EQ(e["subsets"].size(), 63u);
  check(dir.file("run/explain/explain.svg"));

  AttributeArgs args = tiny_attribution(dir, overrides);
  args.seeds = 2;
  args.bootstrap = 50;
  const json a = run_attribute(args).result;
  EXPECT_EQ(a["mobius"].size(), 63u);
  // The sums by order are the pure terms' sums, order by order.
  std::vector<double> sums(6, 0.0);
  for (const auto& t : a["mobius"]) sums[t["modalities"].size() - 1] += t["value"].get<double>();
  for (int k = 1; k <= 6; ++k)
    EXPECT_NEAR(a["orders"][std::to_string(k)].get<double>(), sums[k - 1], 1e-9) << k;
  check(dir.file("attribute/attribute.svg"));
}
