// Metrics (metrics.hpp) against closed forms.
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "mmfusion/training/metrics.hpp"

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
