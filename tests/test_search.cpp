// A sweep's random search (experiments/search.hpp): draws that are deterministic, in
// range and a prefix of a longer search's; the choice made on validation alone, checked
// against the trials' own results.json; the reruns of the chosen trial and their report.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <map>
#include <sstream>

#include "helpers.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/config/config_io.hpp"
#include "mmfusion/experiments/search.hpp"
#include "mmfusion/experiments/sweep.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

SearchSpec spec_of(const std::string& text) { return parse_search(json::parse(text), "search"); }

const char* kSpace = R"({"trials": 200, "seed": 4,
  "space": {"train.lr": {"log_uniform": [1e-4, 1e-2]}, "model.rank": {"choice": [1, 4, 8, 16]},
            "model.fused_dim": {"int_uniform": [2, 5]}, "model.dropout": {"uniform": [0, 0.5]}}})";

}  // namespace

TEST(Search, DrawsAreDeterministicInRangeAndAShorterSearchIsAPrefix) {
  const SearchSpec spec = spec_of(kSpace);
  const auto trials = draw_trials(spec);
  ASSERT_EQ(trials.size(), 200u);
  EXPECT_EQ(draw_trials(spec), trials);
  SearchSpec shorter = spec;
  shorter.trials = 10;
  const auto first = draw_trials(shorter);
  EXPECT_TRUE(std::equal(first.begin(), first.end(), trials.begin()));
  SearchSpec other = spec;
  other.seed = 5;
  EXPECT_NE(draw_trials(other), trials);

  // Every value in range; a log-uniform draw falls below the geometric mean of its ends
  // half the time (a uniform draw would do so about 10% of the time here).
  int below = 0;
  std::map<int64_t, int> ranks, fused;
  for (const auto& t : trials) {
    std::map<std::string, json> v(t.begin(), t.end());
    const double lr = v.at("train.lr").get<double>();
    EXPECT_GE(lr, 1e-4);
    EXPECT_LE(lr, 1e-2);
    below += lr < 1e-3;
    const double dropout = v.at("model.dropout").get<double>();
    EXPECT_TRUE(dropout >= 0 && dropout <= 0.5) << dropout;
    ++ranks[v.at("model.rank").get<int64_t>()];
    ++fused[v.at("model.fused_dim").get<int64_t>()];
  }
  EXPECT_GT(below, 70);
  EXPECT_LT(below, 130);
  EXPECT_EQ(ranks.size(), 4u);
  for (const auto& [rank, n] : ranks) EXPECT_GT(n, 25) << rank;  // 50 expected each
  EXPECT_EQ(fused.size(), 4u);
  EXPECT_EQ(fused.begin()->first, 2);
  EXPECT_EQ(fused.rbegin()->first, 5);
  // The spec reads back as written.
  EXPECT_EQ(parse_search(search_json(spec), "search").trials, 200);
  EXPECT_EQ(search_json(parse_search(search_json(spec), "search")), search_json(spec));
}

TEST(Search, BadSpecsAreOneLineErrors) {
  auto error = [](const std::string& text, const std::string& words) {
    expect_error<ConfigError>([&] { spec_of(text); }, words);
  };
  error(R"({"space": {"train.lr": {"choice": [1]}}})", "search: needs \"trials\"");
  error(R"({"trials": 2})", "search: needs \"space\"");
  error(R"({"trials": 3, "space": {"model.rank": {"choice": [1, 2]}}})",
        "search.trials: 3 trials, but the space holds 2 distinct settings");
  error(R"({"trials": 2, "space": {"train.lr": {"log_uniform": [0, 1]}}})",
        "search.space.train.lr.log_uniform: expected low > 0");
  error(R"({"trials": 2, "space": {"train.lr": {"normal": [0, 1]}}})",
        "search.space.train.lr.normal: unknown draw");
  error(R"({"trials": 2, "space": {"seed": {"choice": [1, 2]}}})",
        "search.space.seed: not a searchable key");
  error(R"({"trials": 2, "trails": 3, "space": {"train.lr": {"uniform": [0, 1]}}})",
        "search.trails: unknown key (known: trials, space, seed, select, seeds)");
  error(R"({"trials": 2, "seeds": [1, 1], "space": {"train.lr": {"uniform": [0, 1]}}})",
        "search.seeds: seed 1 is given twice");
}

// The whole search on the tiny config: the chosen trial is the one whose own results.json
// has the lowest validation loss; its reruns carry its values and the seeds; the summary
// gives their test mean and shows no trial's test figure.
TEST(Search, ChoosesOnValidationAloneAndRerunsTheChoiceWithEachSeed) {
  TempDir dir;
  const json sweep = {{"name", "lr-search"},
                      {"base", source_path("configs/tiny.json")},
                      {"set", {{"train.epochs", 2}}},
                      {"search",
                       {{"trials", 4},
                        {"seed", 3},
                        {"seeds", {11, 12}},
                        {"space", {{"train.lr", {{"log_uniform", {1e-4, 0.3}}}}}}}}};
  write_text(dir.file("search.json"), sweep.dump());
  SweepArgs args;
  args.sweep_file = dir.file("search.json");
  args.out = dir.file("out");
  const SweepOutcome outcome = run_sweep(args);
  EXPECT_EQ(outcome.completed, 6);
  EXPECT_EQ(outcome.failed, 0);

  const auto trials = draw_trials(parse_search(sweep["search"], "search"));
  size_t best = 0;
  double best_loss = INFINITY;
  for (size_t i = 0; i < trials.size(); ++i) {
    const json r = json::parse(read_text(dir.file("out/" + trial_name(i, 4) + "/results.json")));
    const json c = json::parse(read_text(dir.file("out/" + trial_name(i, 4) + "/config.json")));
    EXPECT_EQ(c["train"]["lr"], trials[i][0].second);
    if (r["val"]["loss"].get<double>() < best_loss) best = i, best_loss = r["val"]["loss"];
  }
  std::vector<double> test_mse;
  for (int seed : {11, 12}) {
    const std::string run = dir.file("out/best-seed-" + std::to_string(seed));
    const json c = json::parse(read_text(run + "/config.json"));
    EXPECT_EQ(c["seed"], seed);
    EXPECT_EQ(c["train"]["lr"], trials[best][0].second);
    test_mse.push_back(json::parse(read_text(run + "/results.json"))["test"]["mse"].get<double>());
  }
  const std::string summary = read_text(dir.file("out/summary.md"));
  EXPECT_NE(summary.find("**" + trial_name(best, 4) + "**"), std::string::npos) << summary;
  EXPECT_NE(summary.find("The test split was not used to choose"), std::string::npos);
  char mean[32];
  std::snprintf(mean, sizeof mean, "| mse | %.4g ± ", (test_mse[0] + test_mse[1]) / 2);
  EXPECT_NE(summary.find(mean), std::string::npos) << summary;

  // results.csv: trials without test figures, reruns with them.
  auto cells = [](const std::string& line) {
    std::vector<std::string> out;
    std::string cell;
    std::istringstream in(line);
    while (std::getline(in, cell, ',')) out.push_back(cell);
    if (!line.empty() && line.back() == ',') out.push_back("");
    return out;
  };
  std::istringstream csv(read_text(dir.file("out/results.csv")));
  std::string line;
  std::getline(csv, line);
  const auto header = cells(line);
  EXPECT_EQ(line.rfind("run,phase,train.lr,seed,status,val_loss,test_", 0), 0u) << line;
  const size_t first_test = 6;
  int trial_rows = 0, rerun_rows = 0;
  while (std::getline(csv, line)) {
    const auto row = cells(line);
    ASSERT_EQ(row.size(), header.size()) << line;
    const bool trial = row[1] == "trial";
    trial_rows += trial, rerun_rows += row[1] == "rerun";
    EXPECT_FALSE(row[5].empty()) << line;  // every run has its validation loss
    for (size_t k = first_test; k < row.size(); ++k)
      EXPECT_EQ(row[k].empty(), trial) << header[k] << " in " << line;
  }
  EXPECT_EQ(trial_rows, 4);
  EXPECT_EQ(rerun_rows, 2);

  // Run again: everything is complete; --report rebuilds the same summary.
  EXPECT_EQ(run_sweep(args).skipped, 6);
  fs::remove(dir.file("out/summary.md"));
  SweepArgs report;
  report.report = dir.file("out");
  run_sweep(report);
  EXPECT_EQ(read_text(dir.file("out/summary.md")), summary);

  // A search takes no grid, and no shard.
  args.grid = {"seed=1,2"};
  expect_error<ConfigError>([&] { run_sweep(args); }, "a sweep has a grid or a search, not both");
  args.grid.clear();
  args.shard = "0/2";
  expect_error<ConfigError>([&] { run_sweep(args); }, "--shard: a search's reruns wait");
}
