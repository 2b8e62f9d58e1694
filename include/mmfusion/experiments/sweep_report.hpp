#pragma once
// A sweep's reports, rebuilt from its folder alone: results.csv (one row per
// combination), summary.md (mean ± std over seeds per group) and chart.svg.
#include <string>
#include <vector>

#include "mmfusion/config/config.hpp"  // Task
#include "mmfusion/experiments/grid.hpp"

namespace mmfusion {

// The chart's x axis: `x` when given (a grid key other than seed; ConfigError otherwise),
// else the numeric grid key with the most values (the first of equals), else the first
// grid key with more than one value; nullptr when there is none.
const GridAxis* chart_x_axis(const std::vector<GridAxis>& axes, const std::string& x);

// Writes DIR/results.csv, DIR/summary.md (titled with the sweep's name) and DIR/chart.svg
// (against chart_x_axis(axes, x)) from the runs' results.json.
void write_sweep_reports(const std::string& dir, const std::string& name,
                         const std::vector<GridAxis>& axes, Task task, const std::string& x = "");

}  // namespace mmfusion
