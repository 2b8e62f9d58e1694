#pragma once
// Self-contained SVG charts (no runtime dependency): line charts with "nice" ticks, scatter
// panels, and a panelled contribution figure; and a layout check that estimates every text
// element's extent and finds labels that overlap or leave the canvas.
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
  // Non-empty: x values are indices into these labels (a categorical axis). Labels wider
  // than their slot are shortened (shorten_labels).
  std::vector<std::string> x_categories;
  int width = 640, height = 400;
  bool connect = true;  // false: points (with their bars) only, no line between them
  bool whole_x = false;  // x values are whole numbers (epochs): ticks 1 apart or more
  // What a series' colour stands for; said in one line in place of a legend that cannot
  // fit or whose colours would repeat ("colour: combination, 14 series").
  std::string legend_title = "series";
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

// A figure of what each modality, pair and order of modalities contributes, at most
// 1200 px wide for any number of modalities: per-modality estimates with intervals (and
// truth ticks), a modality x modality matrix of the pair terms in diverging colours with
// the value in each cell, the sums by order, and the per-subset strip only where there
// are at most `strip_limit` modalities.
struct FigureSeries {
  std::string name;
  std::vector<double> value, low, high;  // per category; NaN: absent
  std::vector<double> truth;             // per category; empty or NaN: no truth tick
};
struct ContributionFigure {
  std::string title, subtitle;  // what was measured; how (intervals, seeds)
  std::string unit;             // the value axis
  std::vector<std::string> modalities;
  std::vector<FigureSeries> per_modality;        // categories: the modalities
  std::vector<double> pairs;                     // M x M, row-major; NaN: none
  std::vector<FigureSeries> orders;              // categories: order 1..M
  std::vector<std::string> subsets;              // the strip's categories
  std::vector<FigureSeries> strip;
  std::string strip_note;  // said in place of the strip above the limit
  int strip_limit = 4;
};
std::string contribution_figure(const ContributionFigure& figure);

// "Nice" tick positions (steps of 1, 2 or 5 times a power of ten) covering [lo, hi].
// `min_step`: no finer than this (1 for whole numbers such as epochs).
std::vector<double> nice_ticks(double lo, double hi, int target_count = 5, double min_step = 0);

std::string xml_escape(const std::string& text);

// The width in px of `text` (UTF-8) set in a sans-serif face at `font_size`, estimated
// from its characters (DejaVu Sans' advance widths, the wider of the common faces).
double text_width(const std::string& text, double font_size);

// Labels that fit `max_width` px at `font_size`: a label that fits stays as it is; the
// others have each part between separators (":", "+", ",", " ", "=", "/") cut to one number
// of characters, the most with which all of them fit ("fac+fou+kar", "fac+fou"); one that
// does not fit even so is cut at the end with "…".
std::vector<std::string> shorten_labels(const std::vector<std::string>& labels, double max_width,
                                        double font_size);

// Layout problems of an SVG document: each text element's extent is estimated from its
// characters, font size (inherited from the root), anchor and rotation; a problem is two
// texts that overlap or a text that leaves the canvas. One line per problem; none: {}.
std::vector<std::string> svg_layout_problems(const std::string& svg);

}  // namespace mmfusion
