#pragma once
// A sweep's reports, rebuilt from its folder alone: results.csv (one row per
// combination), summary.md (mean ± std over seeds per group) and chart.svg.
#include <cmath>
#include <string>
#include <vector>

#include "mmfusion/config/config.hpp"  // Task
#include "mmfusion/experiments/grid.hpp"

namespace mmfusion {

// The chart's x axis: `x` when given (a grid key other than seed; ConfigError otherwise),
// else the numeric grid key with the most values (the first of equals), else the first
// grid key with more than one value; nullptr when there is none.
const GridAxis* chart_x_axis(const std::vector<GridAxis>& axes, const std::string& x);

// The mean and sample standard deviation of runs' figures (0 for one, NaN for none): the
// sweep's summary and the random search's.
struct Stats {
  double mean = NAN, std = NAN;
  size_t n = 0;
};
Stats stats(const std::vector<double>& v);

// The 97.5% quantile of Student's t with `df` degrees of freedom (df >= 1): a table to
// 30, a Cornish-Fisher expansion beyond.
double student_t975(int64_t df);

// A paired comparison of `a` against `reference` over the seeds both have (same order):
// the mean difference a - reference, its 95% interval by Student's t with n - 1 degrees
// of freedom (only for n >= 3), the seeds on which a is better, and whether the interval
// leaves out 0 ("resolved").
struct Paired {
  int64_t n = 0, wins = 0;
  double mean = 0, low = 0, high = 0;
  bool interval = false, resolved = false;
};
Paired paired_difference(const std::vector<double>& a, const std::vector<double>& reference,
                         bool lower_is_better);

// The combination that `baseline` ("KEY=VALUE", one per grid key but seed) names: UsageError
// naming --baseline where a key is not the grid's, a value not among its values, or a key
// is left out. Empty baseline: none.
Combination baseline_combination(const std::vector<GridAxis>& axes,
                                 const std::vector<std::string>& baseline);

// Writes DIR/results.csv, DIR/summary.md (titled with the sweep's name; with each
// combination's paired comparison against the best one, or the baseline's, by seed; and
// the machines the runs were measured on) and DIR/summary.json (the comparisons and the
// machines, for scripts), and DIR/chart.svg (against chart_x_axis(axes, x)) from the runs'
// results.json.
void write_sweep_reports(const std::string& dir, const std::string& name,
                         const std::vector<GridAxis>& axes, Task task, const std::string& x = "",
                         const std::vector<std::string>& baseline = {});

}  // namespace mmfusion
