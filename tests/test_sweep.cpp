// Sweeps (experiments/grid.hpp, sweep.hpp, sweep_report.hpp): grids and names, reruns,
// failures, shards, locks, workers, and the reports rebuilt from a folder.
#include <gtest/gtest.h>

#include <map>
#include <sstream>
#include <thread>

#include "helpers.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/runtime/runtime.hpp"
#include "mmfusion/experiments/sweep.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::vector<std::vector<std::string>> read_csv(const std::string& path) {
  std::vector<std::vector<std::string>> rows;
  std::istringstream in(read_text(path));
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> row;
    std::string cell;
    std::istringstream cells(line);
    while (std::getline(cells, cell, ',')) row.push_back(cell);
    if (!line.empty() && line.back() == ',') row.push_back("");
    rows.push_back(row);
  }
  return rows;
}

size_t column(const std::vector<std::string>& header, const std::string& name) {
  return std::find(header.begin(), header.end(), name) - header.begin();
}

}  // namespace

TEST(Sweep, GridValuesSplitAtTopLevelCommas) {
  const GridAxis a = parse_grid_axis("model.encoder_hidden=[8,8],[16],[]");
  ASSERT_EQ(a.key, "model.encoder_hidden");
  ASSERT_EQ(a.values.size(), 3u);
  EXPECT_EQ(a.values[0], json({8, 8}));
  EXPECT_EQ(a.values[2], json::array());
  const GridAxis b = parse_grid_axis("model.type=lmf,tfn,\"late\"");
  EXPECT_EQ(b.values, (std::vector<json>{"lmf", "tfn", "late"}));
  EXPECT_EQ(parse_grid_axis("train.lr=0.1,1e-3").values[1], json(1e-3));
  EXPECT_THROW(parse_grid_axis("model.rank"), ConfigError);
  EXPECT_THROW(parse_grid_axis("model.rank=1,,2"), ConfigError);
}

TEST(Sweep, CombinationsAndNames) {
  const auto combos =
      grid_combinations({parse_grid_axis("model.type=lmf,late"), parse_grid_axis("seed=1,2,3")});
  ASSERT_EQ(combos.size(), 6u);
  EXPECT_EQ(combination_name(combos[0]), "type-lmf_seed-1");
  EXPECT_EQ(combination_name(combos[5]), "type-late_seed-3");
  // Keys with the same last segment keep their full path.
  EXPECT_EQ(combination_name({{"model.dropout", 0.1}, {"other.dropout", 0.2}}),
            "model.dropout-0.1_other.dropout-0.2");
}

TEST(Sweep, RunsEveryCombinationThenSkipsCompleteOnesAndRetriesFailures) {
  TempDir dir;
  SweepArgs args;
  args.config = source_path("configs/tiny.json");
  args.grid = {"model.type=lmf,late", "seed=1,2"};
  args.out = dir.file("sweep");
  SweepOutcome first = run_sweep(args);
  EXPECT_EQ(first.completed, 4);
  EXPECT_EQ(first.failed, 0);

  const auto rows = read_csv(dir.file("sweep/results.csv"));
  ASSERT_EQ(rows.size(), 5u);
  const auto& h = rows[0];
  for (const char* col : {"run", "model.type", "seed", "status", "test_mse", "test_r2",
                          "parameters", "train_seconds", "samples_per_s"})
    EXPECT_LT(column(h, col), h.size()) << col;
  for (size_t i = 1; i < rows.size(); ++i) {
    EXPECT_EQ(rows[i][column(h, "status")], "ok");
    // Each row's metrics are those of its own run's results.json.
    const json results = json::parse(read_text(dir.file("sweep/" + rows[i][0] + "/results.json")));
    EXPECT_NEAR(std::stod(rows[i][column(h, "test_mse")]), results["test"]["mse"].get<double>(),
                1e-12);
    EXPECT_EQ(std::stoll(rows[i][column(h, "parameters")]),
              results["parameters"]["total"].get<int64_t>());
  }
  EXPECT_EQ(rows[1][column(h, "model.type")], "lmf");
  EXPECT_EQ(rows[4][column(h, "seed")], "2");

  // Summary: one line per model type with the mean of its two seeds.
  const std::string summary = read_text(dir.file("sweep/summary.md"));
  EXPECT_NE(summary.find("| lmf | 2 |"), std::string::npos) << summary;
  EXPECT_NE(summary.find("| late | 2 |"), std::string::npos) << summary;
  EXPECT_TRUE(well_formed_xml(dir.file("sweep/chart.svg")));

  // Again: everything is skipped. Remove one run's results: only it is trained again
  // (resumed from its last checkpoint).
  SweepOutcome second = run_sweep(args);
  EXPECT_EQ(second.skipped, 4);
  EXPECT_EQ(second.completed, 0);
  fs::remove(dir.file("sweep/type-late_seed-1/results.json"));
  SweepOutcome third = run_sweep(args);
  EXPECT_EQ(third.skipped, 3);
  EXPECT_EQ(third.completed, 1);
}

TEST(Sweep, AFailingCombinationIsReportedAndTheSweepGoesOn) {
  TempDir dir;
  SweepArgs args;
  args.config = source_path("configs/tiny.json");
  // The file source names a file that does not exist: that combination fails when it
  // loads its data, the synthetic one trains.
  args.overrides = {"data.path=" + dir.file("missing.pt")};
  args.grid = {"data.source=synthetic,file"};
  args.out = dir.file("sweep");
  const SweepOutcome outcome = run_sweep(args);
  EXPECT_EQ(outcome.completed, 1);
  EXPECT_EQ(outcome.failed, 1);
  const auto rows = read_csv(dir.file("sweep/results.csv"));
  const auto& h = rows[0];
  EXPECT_EQ(rows[1][column(h, "status")], "ok");
  EXPECT_EQ(rows[2][column(h, "status")], "failed");
  EXPECT_NE(rows[2].back().find("missing.pt: no such data file"), std::string::npos);
}

TEST(Sweep, BadCombinationsStopBeforeAnythingRuns) {
  TempDir dir;
  SweepArgs args;
  args.config = source_path("configs/tiny.json");
  args.grid = {"model.rank=2,0"};
  args.out = dir.file("sweep");
  expect_error<ConfigError>([&] { run_sweep(args); }, "sweep combination rank-0: model.rank:");
  EXPECT_FALSE(fs::exists(dir.file("sweep/rank-2")));
}

TEST(Sweep, EveryCombinationOfEveryShippedSweepValidatesInADryRun) {
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(source_path("configs/sweeps"))) {
    SCOPED_TRACE(entry.path().string());
    SweepArgs args;
    args.sweep_file = entry.path().string();
    args.dry_run = true;
    SweepOutcome outcome;
    EXPECT_NO_THROW(outcome = run_sweep(args));
    EXPECT_GE(outcome.runs.size(), 2u);
    ++count;
  }
  EXPECT_GE(count, 4);
}

TEST(Sweep, SummaryIsTitledWithTheSweepsNameAndSingleRunsShowNoSpread) {
  TempDir dir;
  write_text(dir.file("s.json"),
             "{\"name\": \"my-ranks\", \"base\": \"" + source_path("configs/tiny.json") +
                 "\", \"grid\": {\"model.rank\": [1, 2], \"model.type\": [\"lmf\", \"late\"]}}");
  SweepArgs args;
  args.sweep_file = dir.file("s.json");
  args.out = dir.file("elsewhere");
  args.x = "model.type";
  run_sweep(args);
  const std::string summary = read_text(dir.file("elsewhere/summary.md"));
  EXPECT_EQ(summary.rfind("# Sweep summary: my-ranks\n", 0), 0u) << summary;
  const std::string table = summary.substr(summary.find("| --- |"));
  EXPECT_EQ(table.find("±"), std::string::npos) << "one run per row has no spread: " << table;
  // The chart's x axis is the key asked for, not the numeric one.
  const std::string chart = read_text(dir.file("elsewhere/chart.svg"));
  EXPECT_NE(chart.find(">model.type<"), std::string::npos);
  EXPECT_NE(chart.find("rank=2"), std::string::npos);  // the other key labels the lines
}

TEST(Sweep, ChartXAxisFollowsTheDocumentedRule) {
  const std::vector<GridAxis> axes{
      parse_grid_axis("model.type=lmf,tfn,late"), parse_grid_axis("train.lr=0.1,0.01"),
      parse_grid_axis("model.rank=1,2,4"), parse_grid_axis("seed=1,2,3,4")};
  EXPECT_EQ(chart_x_axis(axes, "")->key, "model.rank");  // numeric, most values (seed aside)
  EXPECT_EQ(chart_x_axis(axes, "train.lr")->key, "train.lr");
  expect_error<ConfigError>([&] { chart_x_axis(axes, "seed"); }, "--x seed: not a grid key");
  expect_error<ConfigError>([&] { chart_x_axis(axes, "model.rnak"); },
                            "(grid keys: model.type, train.lr, model.rank)");
  EXPECT_EQ(chart_x_axis({parse_grid_axis("model.type=lmf,tfn")}, "")->key,
            "model.type");  // no numeric key
}

TEST(Sweep, AGridKeyOnTheCommandLineReplacesTheFilesValues) {
  TempDir dir;
  write_text(dir.file("s.json"),
             "{\"base\": \"" + source_path("configs/tiny.json") +
                 "\", \"grid\": {\"model.rank\": [1, 2, 3], \"seed\": [1, 2]}}");
  SweepArgs args;
  args.sweep_file = dir.file("s.json");
  args.grid = {"model.rank=8"};
  args.dry_run = true;
  const SweepOutcome outcome = run_sweep(args);
  EXPECT_EQ(outcome.runs, (std::vector<std::string>{"rank-8_seed-1", "rank-8_seed-2"}));
  args.grid = {"model.rank=8", "model.rank=4"};
  expect_error<ConfigError>([&] { run_sweep(args); },
                            "--grid model.rank: the key is given twice on the command line");
}

// A grid over InTense's p and reg: every run's relevance scores in results.csv, and their
// mean over seeds in summary.md.
TEST(Sweep, InTenseScoresReachTheReports) {
  TempDir dir;
  write_text(dir.file("s.json"),
             "{\"name\": \"p-reg\", \"base\": \"" + source_path("configs/tiny.json") +
                 "\", \"set\": {\"model.type\": \"intense\", \"train.epochs\": 1,"
                 " \"model.intense.interactions\": [[\"visual\", \"audio\"]]},"
                 " \"grid\": {\"model.intense.p\": [1, 2], \"model.intense.reg\": [0, 0.1],"
                 " \"seed\": [1, 2]}}");
  SweepArgs args;
  args.sweep_file = dir.file("s.json");
  args.out = dir.file("sweep");
  const SweepOutcome outcome = run_sweep(args);
  ASSERT_EQ(outcome.completed, 8);
  const auto rows = read_csv(dir.file("sweep/results.csv"));
  ASSERT_EQ(rows.size(), 9u);
  const size_t va = column(rows[0], "relevance_visual:audio"),
               text = column(rows[0], "relevance_text");
  ASSERT_LT(va, rows[0].size());
  ASSERT_LT(text, rows[0].size());
  double mean_first_group = 0;  // p 1, reg 0: seeds 1 and 2 are the first two rows
  for (size_t r = 1; r < rows.size(); ++r) {
    const json results = json::parse(read_text(dir.file("sweep/" + rows[r][0] + "/results.json")));
    EXPECT_DOUBLE_EQ(std::stod(rows[r][va]), results["relevance"]["visual:audio"].get<double>())
        << rows[r][0];
    if (r <= 2) mean_first_group += results["relevance"]["visual:audio"].get<double>() / 2;
  }
  const std::string summary = read_text(dir.file("sweep/summary.md"));
  const auto section = summary.find("## Relevance scores");
  ASSERT_NE(section, std::string::npos) << summary;
  const std::string first_row = summary.substr(summary.find("\n| 1 | 0 |", section) + 1);
  char mean[32];
  std::snprintf(mean, sizeof mean, "%.4g ± ", mean_first_group);
  EXPECT_EQ(first_row.find("| 1 | 0 | "), 0u) << first_row;
  EXPECT_NE(first_row.substr(0, first_row.find('\n')).find(mean), std::string::npos) << first_row;
}

// Scale: shards, workers, locks and reports rebuilt from the folder.

TEST(Sweep, ShardsPartitionTheCombinationsWithoutOverlap) {
  TempDir dir;
  SweepArgs args;
  args.config = source_path("configs/tiny.json");
  args.grid = {"model.rank=1,2,3,4,5,6,7"};
  args.out = dir.file("sweep");
  args.dry_run = true;
  const auto all = run_sweep(args).runs;
  ASSERT_EQ(all.size(), 7u);
  std::vector<std::string> joined;
  for (int k = 0; k < 3; ++k) {
    args.shard = std::to_string(k) + "/3";
    const auto share = run_sweep(args).runs;
    EXPECT_EQ(share, run_sweep(args).runs);  // deterministic
    EXPECT_GE(share.size(), 2u);
    joined.insert(joined.end(), share.begin(), share.end());
  }
  std::sort(joined.begin(), joined.end());
  auto sorted = all;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(joined, sorted);  // every combination once
  EXPECT_EQ(parse_shard("1/3").index, 1);
  EXPECT_TRUE(parse_shard("").contains(5));
  for (const char* bad : {"3/3", "-1/2", "1", "a/b", "1/0", "1/2x"})
    expect_error<ConfigError>([&] { parse_shard(bad); }, std::string("--shard ") + bad);
}

TEST(Sweep, ACombinationHeldByAnotherProcessIsLeftToIt) {
  TempDir dir;
  SweepArgs args;
  args.config = source_path("configs/tiny.json");
  args.grid = {"seed=1,2"};
  args.out = dir.file("sweep");
  LockHolder other(dir.file("sweep/seed-2"));
  const SweepOutcome outcome = run_sweep(args);
  EXPECT_EQ(outcome.completed, 1);
  EXPECT_EQ(outcome.busy, 1);
  EXPECT_EQ(outcome.failed, 0);
  EXPECT_FALSE(fs::exists(dir.file("sweep/seed-2/error.txt")));
  EXPECT_FALSE(fs::exists(dir.file("sweep/seed-2/config.json")));
  other.kill();
  const SweepOutcome again = run_sweep(args);  // its holder gone, a rerun trains it
  EXPECT_EQ(again.completed, 1);
  EXPECT_EQ(again.skipped, 1);
}

TEST(Sweep, ASweepFolderHasOneSweepAtATimeButShardsShareIt) {
  TempDir dir;
  SweepArgs args;
  args.config = source_path("configs/tiny.json");
  args.grid = {"seed=1"};
  args.out = dir.file("sweep");
  {
    LockHolder other(args.out);
    expect_error<RunFolderInUse>([&] { run_sweep(args); },
                                 "run folder in use by process " + std::to_string(other.pid()));
    args.shard = "0/2";
    expect_error<RunFolderInUse>([&] { run_sweep(args); }, "run folder in use");
  }
  LockHolder shard(args.out, RunLock::Mode::Shared);
  args.shard = "0/2";
  EXPECT_EQ(run_sweep(args).completed, 1);
  // One shard of one (a whole sweep as an array job of one task) shares the folder too.
  args.shard = "0/1";
  EXPECT_EQ(run_sweep(args).skipped, 1);
  args.shard = "";
  expect_error<RunFolderInUse>([&] { run_sweep(args); }, "run folder in use");
}

TEST(Sweep, ReportsAreRebuiltFromTheFolderAlone) {
  TempDir dir;
  // A grid order that is not alphabetical: the folder names follow it, and the record
  // keeps it.
  SweepArgs args;
  args.config = source_path("configs/tiny.json");
  args.grid = {"seed=1,2", "model.rank=1,2"};
  args.out = dir.file("sweep");
  args.x = "model.rank";
  run_sweep(args);
  ASSERT_TRUE(fs::exists(dir.file("sweep/seed-1_rank-2/results.json")));
  std::map<std::string, std::string> before;
  for (const char* f : {"results.csv", "summary.md", "chart.svg"}) {
    before[f] = read_text(dir.file(std::string("sweep/") + f));
    fs::remove(dir.file(std::string("sweep/") + f));
  }
  SweepArgs report;
  report.report = dir.file("sweep");
  const SweepOutcome outcome = run_sweep(report);
  EXPECT_EQ(outcome.runs.size(), 4u);
  for (const auto& [f, text] : before) EXPECT_EQ(read_text(dir.file("sweep/" + f)), text) << f;
  EXPECT_NE(before["results.csv"].find("seed-2_rank-1,2,1,ok"), std::string::npos)
      << before["results.csv"];
  report.report = dir.file("nothing");
  expect_error<ConfigError>([&] { run_sweep(report); }, "no sweep.json (not a sweep folder)");
}

TEST(Sweep, JobsTrainCombinationsInWorkerProcessesToTheSameResults) {
  TempDir dir;
  SweepArgs args;
  args.config = source_path("configs/tiny.json");
  args.grid = {"seed=1,2,3"};
  args.overrides = {"threads=0"};  // all cores: shared out among the workers
  args.out = dir.file("parallel");
  args.jobs = 2;
  args.executable = MMFUSION_BINARY;
  const SweepOutcome parallel = run_sweep(args);
  EXPECT_EQ(parallel.completed, 3);
  EXPECT_EQ(parallel.failed, 0);
  const int64_t threads = std::max<int64_t>(1, available_cores() / 2);

  args.jobs = 1;
  args.overrides = {"threads=" + std::to_string(threads)};
  args.out = dir.file("serial");
  EXPECT_EQ(run_sweep(args).completed, 3);
  for (const char* run : {"seed-1", "seed-2", "seed-3"}) {
    SCOPED_TRACE(run);
    EXPECT_TRUE(fs::exists(dir.file(std::string("parallel/logs/") + run + ".log")));
    const json config =
        json::parse(read_text(dir.file(std::string("parallel/") + run + "/config.json")));
    EXPECT_EQ(config["threads"], threads);
    const json a =
        json::parse(read_text(dir.file(std::string("parallel/") + run + "/results.json")));
    const json b = json::parse(read_text(dir.file(std::string("serial/") + run + "/results.json")));
    EXPECT_NEAR(a["test"]["mse"].get<double>(), b["test"]["mse"].get<double>(), 1e-6);
  }
  // A rerun skips them all without starting a worker.
  args.out = dir.file("parallel");
  args.jobs = 2;
  EXPECT_EQ(run_sweep(args).skipped, 3);
}

TEST(Sweep, AShardOfAnotherSweepIsRefused) {
  TempDir dir;
  SweepArgs args;
  args.config = source_path("configs/tiny.json");
  args.grid = {"seed=1,2"};
  args.out = dir.file("sweep");
  args.shard = "0/2";
  EXPECT_EQ(run_sweep(args).completed, 1);
  args.shard = "1/2";
  args.grid = {"seed=1,2,3"};  // not the sweep shard 0 ran
  expect_error<ConfigError>([&] { run_sweep(args); },
                            "--shard 1/2: " + dir.file("sweep") + " holds another sweep");
  args.grid = {"seed=1,2"};
  args.overrides = {"train.epochs=3"};
  expect_error<ConfigError>([&] { run_sweep(args); }, "holds another sweep");
  args.overrides.clear();
  EXPECT_EQ(run_sweep(args).completed, 1);
}

// The paired interval by hand: d = a - reference = {0.2, 0.2, 0.05, 0.2}, mean 0.1625,
// sample sd 0.075, se 0.0375, t(0.975, 3) = 3.182: [0.043175, 0.281825].
TEST(Sweep, PairedIntervalMatchesAHandComputation) {
  const Paired p = paired_difference({1.0, 1.2, 0.9, 1.1}, {0.8, 1.0, 0.85, 0.9}, false);
  EXPECT_EQ(p.n, 4);
  EXPECT_EQ(p.wins, 4);
  EXPECT_NEAR(p.mean, 0.1625, 1e-12);
  EXPECT_NEAR(p.low, 0.1625 - 3.182 * 0.0375, 1e-9);
  EXPECT_NEAR(p.high, 0.1625 + 3.182 * 0.0375, 1e-9);
  EXPECT_TRUE(p.resolved);
  // Lower is better: the same numbers win nothing.
  EXPECT_EQ(paired_difference({1.0, 1.2, 0.9, 1.1}, {0.8, 1.0, 0.85, 0.9}, true).wins, 0);
  // Two seeds: a mean, no interval.
  const Paired two = paired_difference({1, 2}, {0, 0}, false);
  EXPECT_EQ(two.n, 2);
  EXPECT_FALSE(two.interval);
  EXPECT_NEAR(two.mean, 1.5, 1e-12);
  EXPECT_DOUBLE_EQ(student_t975(1), 12.706);
  EXPECT_DOUBLE_EQ(student_t975(30), 2.042);
  EXPECT_NEAR(student_t975(1000), 1.9623, 1e-3);
}

// A real difference is resolved (lmf against late fusion on a target that is one
// interaction), a key that changes nothing in training is not.
TEST(Sweep, PairedComparisonsResolveARealDifferenceAndNotANullOne) {
  TempDir dir;
  SweepArgs args;
  args.config = source_path("configs/tiny.json");
  args.overrides = {"data.train_size=2048", "train.epochs=10", "train.lr=0.003",
                    "data.synthetic.shared_latent_dim=0",
                    "data.synthetic.terms=[{\"modalities\":[\"visual\",\"audio\"],\"weight\":1}]"};
  args.grid = {"model.type=lmf,late", "seed=1,2,3"};
  args.out = dir.file("methods");
  run_sweep(args);
  const json methods = json::parse(read_text(dir.file("methods/summary.json")));
  EXPECT_EQ(methods["reference"], "type=lmf") << methods.dump(2);
  bool seen = false;
  for (const auto& c : methods["comparisons"])
    if (c["metric"] == "mse") {
      seen = true;
      EXPECT_EQ(c["seeds"], 3);
      EXPECT_TRUE(c["resolved"].get<bool>()) << c.dump();
      EXPECT_GT(c["mean_difference"].get<double>(), 0);  // late's mse is higher
    }
  EXPECT_TRUE(seen);
  EXPECT_NE(read_text(dir.file("methods/summary.md")).find("chosen on the validation split"), std::string::npos);
  // The runs name their machine, and the summary says it once (one machine here).
  const json results = json::parse(read_text(dir.file("methods/" + std::string("type-lmf_seed-1") + "/results.json")));
  EXPECT_EQ(methods["machines"].size(), 1u) << methods.dump(2);
  EXPECT_EQ(methods["machines"][0], results["machine"]);
  EXPECT_FALSE(results["machine"]["cpu"].get<std::string>().empty());
  EXPECT_NE(results["machine"]["blas"].get<std::string>(), "");
  EXPECT_NE(read_text(dir.file("methods/summary.md")).find("## Machine\n\n- CPU "), std::string::npos);

  // --baseline: late is the reference, and the difference has the other sign (the same
  // pairs, the other way round).
  SweepArgs rebuild;
  rebuild.report = dir.file("methods");
  rebuild.baseline = {"model.type=late"};
  run_sweep(rebuild);
  const json against_late = json::parse(read_text(dir.file("methods/summary.json")));
  EXPECT_EQ(against_late["reference"], "type=late");
  EXPECT_EQ(against_late["reference_is"], "--baseline");
  for (const auto& c : against_late["comparisons"])
    for (const auto& d : methods["comparisons"])
      if (c["metric"] == d["metric"]) {
        EXPECT_NEAR(c["mean_difference"].get<double>(), -d["mean_difference"].get<double>(), 1e-12);
        EXPECT_EQ(c["seeds"], d["seeds"]);
      }
  // A wrong --baseline is a usage error that names it, before anything is written.
  rebuild.baseline = {"model.type=tfn"};
  expect_error<UsageError>([&] { run_sweep(rebuild); }, "--baseline model.type=tfn: model.type takes lmf, late");
  rebuild.baseline = {"model.rank=2"};
  expect_error<UsageError>([&] { run_sweep(rebuild); }, "--baseline model.rank=2: model.rank is not a key");
  rebuild.baseline = {"late"};
  expect_error<UsageError>([&] { run_sweep(rebuild); }, "--baseline late: expected KEY=VALUE");

  args.grid = {"train.cuda_graphs=true,false", "seed=1,2,3"};  // nothing on the CPU
  args.out = dir.file("null");
  run_sweep(args);
  const json null = json::parse(read_text(dir.file("null/summary.json")));
  for (const auto& c : null["comparisons"]) {
    EXPECT_FALSE(c["resolved"].get<bool>()) << c.dump();
    EXPECT_NEAR(c["mean_difference"].get<double>(), 0.0, 1e-12);
  }
  EXPECT_NE(read_text(dir.file("null/summary.md")).find("not resolved"), std::string::npos);
}
