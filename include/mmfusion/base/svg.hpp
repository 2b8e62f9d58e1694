#pragma once
// Self-contained SVG line charts (no runtime dependency): axes with "nice" ticks, axis
// labels, a legend, optional error bars and categorical x positions.
#include <string>
#include <vector>

namespace mmfusion {

struct ChartSeries {
  std::string name;
  std::vector<double> x, y;
  std::vector<double> error;      // optional: +- error bar per point
  std::vector<double> low, high;  // optional: an interval per point (instead of error)
};

struct ChartOptions {
  std::string title, x_label, y_label;
  // Non-empty: x values are indices into these labels (a categorical axis).
  std::vector<std::string> x_categories;
  int width = 640, height = 400;
  bool connect = true;  // false: points (with their bars) only, no line between them
  bool whole_x = false;  // x values are whole numbers (epochs): ticks 1 apart or more
};

std::string line_chart(const ChartOptions& options, const std::vector<ChartSeries>& series);

// Scatter plots side by side. Points are coloured by class (categorical) or by value
// (a blue-to-red scale between the values' min and max).
struct ScatterPanel {
  std::string title;
  std::vector<double> x, y, value;
};
std::string scatter_panels(const std::string& title, const std::vector<ScatterPanel>& panels,
                           bool categorical, const std::string& value_label);

// "Nice" tick positions (steps of 1, 2 or 5 times a power of ten) covering [lo, hi].
// `min_step`: no finer than this (1 for whole numbers such as epochs).
std::vector<double> nice_ticks(double lo, double hi, int target_count = 5, double min_step = 0);

std::string xml_escape(const std::string& text);

}  // namespace mmfusion
