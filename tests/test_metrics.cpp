// Metrics (metrics.hpp) against closed forms.
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "mmfusion/training/metrics.hpp"
#include "mmfusion/training/run.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

TEST(Metrics, MatchClosedForms) {
  const auto y = torch::tensor({{1.0}, {2.0}, {3.0}, {4.0}});
  auto m = regression_metrics(y, y);
  EXPECT_DOUBLE_EQ(m.mse, 0);
  EXPECT_NEAR(m.pearson, 1, 1e-12);
  EXPECT_NEAR(m.r2, 1, 1e-12);
  m = regression_metrics(torch::full({4, 1}, 2.5), y);  // the mean: R^2 = 0
  EXPECT_NEAR(m.r2, 0, 1e-12);
  EXPECT_NEAR(m.mse, 1.25, 1e-12);
  EXPECT_NEAR(m.mae, 1.0, 1e-12);
  EXPECT_EQ(m.pearson, 0);  // no variance in the prediction
  m = regression_metrics(torch::tensor({{4.0}, {3.0}, {2.0}, {1.0}}), y);
  EXPECT_NEAR(m.pearson, -1, 1e-12);
  EXPECT_NEAR(m.r2, 1 - 20.0 / 5.0, 1e-12);
  EXPECT_EQ(m.count, 4);
}

TEST(Metrics, ClassificationAndSignMetricsMatchClosedForms) {
  // Predictions 0,1,1,2 for labels 0,1,2,2: accuracy 3/4; F1: class0 1, class1 2/3, class2 2/3.
  const auto logits =
      torch::tensor({{5.0, 0.0, 0.0}, {0.0, 5.0, 0.0}, {0.0, 5.0, 0.0}, {0.0, 0.0, 5.0}});
  const auto m = classification_metrics(logits, torch::tensor({0, 1, 2, 2}, torch::kInt64));
  EXPECT_DOUBLE_EQ(m.accuracy, 0.75);
  EXPECT_NEAR(m.macro_f1, (1.0 + 2.0 / 3 + 2.0 / 3) / 3, 1e-12);
  // Signs: predicted + + - -, truth + - - +: accuracy 1/2; positive-class F1 = 2*1/(2+2).
  const auto r = regression_metrics(torch::tensor({{1.0}, {2.0}, {-1.0}, {-2.0}}),
                                    torch::tensor({{3.0}, {-1.0}, {-2.0}, {0.5}}));
  EXPECT_DOUBLE_EQ(r.sign_accuracy, 0.5);
  EXPECT_DOUBLE_EQ(r.sign_f1, 0.5);
}

TEST(Metrics, TaskMetricsPickTheTasksSet) {
  const auto y = torch::tensor({{1.0}, {2.0}});
  EXPECT_TRUE(task_metrics(Task::Regression, y, y).contains("r2"));
  const auto logits = torch::tensor({{2.0, 0.0}, {0.0, 2.0}});
  const auto labels = torch::tensor({0, 1}, torch::kInt64);
  const auto m = task_metrics(Task::Classification, logits, labels);
  EXPECT_DOUBLE_EQ(m["accuracy"].get<double>(), 1.0);
  EXPECT_FALSE(m.contains("r2"));
}

// metrics.set "msa" and "sims" (docs/metrics.md) against hand computations on fixed
// arrays: ties at 0, halves that round to even, values past the clip edges, values at
// the SIMS bin edges in float32.
TEST(BenchmarkMetrics, WeightedF1CountsEachLabelBySupport) {
  // Label 0: F1 2*2/(2+4); labels 1 and 2 never predicted: F1 0; weights 2, 1, 1.
  EXPECT_NEAR(weighted_f1({0, 0, 1, 2}, {0, 0, 0, 0}), (2 * (4.0 / 6)) / 4, 1e-12);
  EXPECT_NEAR(weighted_f1({1, 1, 0}, {1, 0, 0}), (2 * (2.0 / 3) + 1 * (2.0 / 3)) / 3, 1e-12);
}

TEST(BenchmarkMetrics, MsaMetricsMatchAHandComputation) {
  const auto p = torch::tensor({2.5, -0.5, 0.0, 3.7, -3.2, 1.4, -1.5, -0.2}, torch::kFloat32)
                     .unsqueeze(1);
  const auto t = torch::tensor({3.0, 0.3, 0.0, 2.6, -2.5, 0.0, -1.5, 0.5}, torch::kFloat32)
                     .unsqueeze(1);
  const auto m = task_metrics(Task::Regression, p, t, MetricSet::MSA);
  EXPECT_NEAR(m["acc2_has0"].get<double>(), 6.0 / 8, 1e-12);
  EXPECT_NEAR(m["f1_has0"].get<double>(), (2 * (4.0 / 6) + 6 * 0.8) / 8, 1e-12);
  EXPECT_NEAR(m["acc2_non0"].get<double>(), 4.0 / 6, 1e-12);  // the two true zeros left out
  EXPECT_NEAR(m["f1_non0"].get<double>(), 2.0 / 3, 1e-12);
  // Clipped to [-3, 3], rounded half to even: 2.5 -> 2 (not 3), -1.5 -> -2, -3.2 -> -3.
  EXPECT_NEAR(m["acc7"].get<double>(), 5.0 / 8, 1e-12);
  EXPECT_NEAR(m["acc5"].get<double>(), 7.0 / 8, 1e-12);  // 2.5 and 3.0 both clip to 2
  EXPECT_NEAR(m["corr"].get<double>(), m["pearson"].get<double>(), 1e-12);
  EXPECT_TRUE(m.contains("mse"));  // beside the default metrics
  EXPECT_FALSE(task_metrics(Task::Regression, p, t).contains("acc7"));
}

TEST(BenchmarkMetrics, SimsMetricsMatchAHandComputation) {
  const auto p = torch::tensor({-1.2, -0.75, -0.7, -0.1, 0.0, 0.05, 0.1, 0.7, 0.71, 1.5},
                               torch::kFloat32)
                     .unsqueeze(1);
  const auto t = torch::tensor({-0.9, -0.7, -0.69, -0.11, 0.1, -0.05, 0.2, 0.69, 0.8, 1.0},
                               torch::kFloat32)
                     .unsqueeze(1);
  const auto m = task_metrics(Task::Regression, p, t, MetricSet::SIMS);
  EXPECT_NEAR(m["sims_acc2"].get<double>(), 0.8, 1e-12);
  EXPECT_NEAR(m["sims_acc3"].get<double>(), 0.9, 1e-12);  // 0.1f and -0.1f in their right-closed bins
  EXPECT_NEAR(m["sims_acc5"].get<double>(), 0.8, 1e-12);
  EXPECT_NEAR(m["sims_f1"].get<double>(), 0.8, 1e-12);
  EXPECT_NEAR(m["sims_mae"].get<double>(), 0.057, 1e-6);  // of the clipped values
  EXPECT_GT(m["sims_corr"].get<double>(), 0.9);
}

TEST(BenchmarkMetrics, ClassificationAddsWeightedF1) {
  const auto logits = torch::tensor({{2.0, 0.0, 0.0}, {2.0, 0.0, 0.0}, {2.0, 0.0, 0.0},
                                     {0.0, 0.0, 2.0}});
  const auto labels = torch::tensor({0, 0, 1, 2}, torch::kInt64);
  const auto m = task_metrics(Task::Classification, logits, labels, MetricSet::MSA);
  // Label 0: 2*2/(2+3); label 1: 0; label 2: 1; weights 2, 1, 1.
  EXPECT_NEAR(m["weighted_f1"].get<double>(), (2 * 0.8 + 0 + 1) / 4, 1e-12);
  EXPECT_NEAR(m["macro_f1"].get<double>(), (0.8 + 0 + 1) / 3, 1e-12);
}

TEST(BenchmarkMetrics, ARunReportsItsSetInResultsAndEveryEpoch) {
  TempDir dir;
  TrainArgs args;
  args.config = source_path("configs/tiny.json");
  args.overrides = {"metrics.set=msa"};
  args.out = dir.file("run");
  const auto results = run_train(args).results;
  for (const char* k : {"acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc7", "acc5", "corr"})
    EXPECT_TRUE(results["test"].contains(k)) << k;
  const std::string line = read_text(dir.file("run/metrics.jsonl"));
  const auto first = nlohmann::json::parse(line.substr(0, line.find('\n')));
  EXPECT_TRUE(first.contains("val_acc7")) << first.dump();
  EXPECT_EQ(to_json(tiny_config())["metrics"]["set"], "default");
  expect_error<ConfigError>([] { tiny_config({"metrics.set=mosi"}); }, "metrics.set");
}
