#include "mmfusion/base/svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

namespace mmfusion {

std::string xml_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default: out += c;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target_count, double min_step) {
  if (!(hi > lo)) {
    const double pad = lo == 0 ? 1 : std::abs(lo) * 0.1;
    lo -= pad, hi += pad;
  }
  const double raw = (hi - lo) / std::max(1, target_count);
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * power >= raw) {
      step = m * power;
      break;
    }
  step = std::max(step, min_step);
  std::vector<double> ticks;
  for (double t = std::floor(lo / step) * step; t <= hi + step * 1e-9; t += step)
    ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  if (ticks.front() > lo) ticks.insert(ticks.begin(), ticks.front() - step);
  if (ticks.back() < hi) ticks.push_back(ticks.back() + step);
  return ticks;
}

namespace {
std::string fmt_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}
// The bar drawn at point i: its interval, else +- its error, else the point itself.
std::pair<double, double> bar_of(const ChartSeries& s, size_t i) {
  if (i < s.low.size() && i < s.high.size() && std::isfinite(s.low[i]) && std::isfinite(s.high[i]))
    return {std::min(s.low[i], s.y[i]), std::max(s.high[i], s.y[i])};
  const double e = i < s.error.size() && std::isfinite(s.error[i]) ? s.error[i] : 0;
  return {s.y[i] - e, s.y[i] + e};
}
const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
}  // namespace

std::string line_chart(const ChartOptions& o, const std::vector<ChartSeries>& series) {
  const double left = 70, right = 170, top = 40, bottom = 55;
  const double plot_w = o.width - left - right, plot_h = o.height - top - bottom;
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i]) || !std::isfinite(s.x[i])) continue;
      const auto [lo, hi] = bar_of(s, i);
      xmin = std::min(xmin, s.x[i]), xmax = std::max(xmax, s.x[i]);
      ymin = std::min(ymin, lo), ymax = std::max(ymax, hi);
    }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  const bool categorical = !o.x_categories.empty();
  std::vector<double> xticks;
  if (categorical) {
    for (size_t i = 0; i < o.x_categories.size(); ++i) xticks.push_back(double(i));
    xmin = -0.5, xmax = double(o.x_categories.size()) - 0.5;
  } else {
    xticks = nice_ticks(xmin, xmax, 5, o.whole_x ? 1.0 : 0.0);
    xmin = xticks.front(), xmax = xticks.back();
  }
  const auto yticks = nice_ticks(ymin, ymax);
  ymin = yticks.front(), ymax = yticks.back();
  auto px = [&](double x) { return left + (x - xmin) / (xmax - xmin) * plot_w; };
  auto py = [&](double y) { return top + plot_h - (y - ymin) / (ymax - ymin) * plot_h; };

  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << o.width << "\" height=\""
      << o.height << "\" viewBox=\"0 0 " << o.width << " " << o.height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << o.width / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
      << xml_escape(o.title) << "</text>\n";
  // Grid, ticks and tick labels.
  for (size_t i = 0; i < yticks.size(); ++i) {
    const double y = py(yticks[i]);
    svg << "<line x1=\"" << left << "\" y1=\"" << y << "\" x2=\"" << left + plot_w << "\" y2=\""
        << y << "\" stroke=\"#e0e0e0\"/>\n<text x=\"" << left - 6 << "\" y=\"" << y + 4
        << "\" text-anchor=\"end\">" << fmt_number(yticks[i]) << "</text>\n";
  }
  for (size_t i = 0; i < xticks.size(); ++i) {
    const double x = px(xticks[i]);
    const std::string label = categorical ? xml_escape(o.x_categories[i]) : fmt_number(xticks[i]);
    svg << "<line x1=\"" << x << "\" y1=\"" << top + plot_h << "\" x2=\"" << x << "\" y2=\""
        << top + plot_h + 5 << "\" stroke=\"black\"/>\n<text x=\"" << x << "\" y=\""
        << top + plot_h + 18 << "\" text-anchor=\"middle\">" << label << "</text>\n";
  }
  // Axes and their labels.
  svg << "<line x1=\"" << left << "\" y1=\"" << top + plot_h << "\" x2=\"" << left + plot_w
      << "\" y2=\"" << top + plot_h << "\" stroke=\"black\"/>\n"
      << "<line x1=\"" << left << "\" y1=\"" << top << "\" x2=\"" << left << "\" y2=\""
      << top + plot_h << "\" stroke=\"black\"/>\n"
      << "<text x=\"" << left + plot_w / 2 << "\" y=\"" << o.height - 12
      << "\" text-anchor=\"middle\">" << xml_escape(o.x_label) << "</text>\n"
      << "<text x=\"16\" y=\"" << top + plot_h / 2
      << "\" text-anchor=\"middle\" transform=\"rotate(-90 16 " << top + plot_h / 2 << ")\">"
      << xml_escape(o.y_label) << "</text>\n";
  // Series: polyline, points, error bars, legend entry.
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const char* color = kColors[k % (sizeof kColors / sizeof *kColors)];
    std::ostringstream points;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]))
        points << px(s.x[i]) << "," << py(s.y[i]) << " ";
    if (o.connect)
      svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\""
          << points.str() << "\"/>\n";
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      svg << "<circle cx=\"" << px(s.x[i]) << "\" cy=\"" << py(s.y[i]) << "\" r=\"3\" fill=\""
          << color << "\"/>\n";
      const auto [lo, hi] = bar_of(s, i);
      if (hi > lo)
        svg << "<line x1=\"" << px(s.x[i]) << "\" y1=\"" << py(lo) << "\" x2=\"" << px(s.x[i])
            << "\" y2=\"" << py(hi) << "\" stroke=\"" << color << "\"/>\n";
    }
    const double ly = top + 10 + 18.0 * k;
    svg << "<line x1=\"" << left + plot_w + 12 << "\" y1=\"" << ly << "\" x2=\""
        << left + plot_w + 32 << "\" y2=\"" << ly << "\" stroke=\"" << color
        << "\" stroke-width=\"2\"/>\n"
        << "<text x=\"" << left + plot_w + 38 << "\" y=\"" << ly + 4 << "\">" << xml_escape(s.name)
        << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

std::string scatter_panels(const std::string& title, const std::vector<ScatterPanel>& panels,
                           bool categorical, const std::string& value_label) {
  const double size = 260, gap = 30, top = 60, left = 20;
  const double width = left + panels.size() * (size + gap), height = top + size + 60;
  double vmin = INFINITY, vmax = -INFINITY;
  for (const auto& p : panels)
    for (double v : p.value) vmin = std::min(vmin, v), vmax = std::max(vmax, v);
  auto color = [&](double v) {
    if (categorical) return std::string(kColors[static_cast<int64_t>(v) % 10]);
    const double t = vmax > vmin ? (v - vmin) / (vmax - vmin) : 0.5;
    char buf[16];
    std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(40 + 200 * t), 60, int(240 - 200 * t));
    return std::string(buf);
  };
  std::ostringstream svg;
  svg << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height
      << "\" viewBox=\"0 0 " << width << " " << height
      << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
      << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << width / 2 << "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">"
      << xml_escape(title) << "</text>\n";
  for (size_t k = 0; k < panels.size(); ++k) {
    const auto& p = panels[k];
    const double x0 = left + k * (size + gap);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (size_t i = 0; i < p.x.size(); ++i)
      xmin = std::min(xmin, p.x[i]), xmax = std::max(xmax, p.x[i]), ymin = std::min(ymin, p.y[i]),
      ymax = std::max(ymax, p.y[i]);
    if (!(xmax > xmin)) xmin -= 1, xmax += 1;
    if (!(ymax > ymin)) ymin -= 1, ymax += 1;
    svg << "<text x=\"" << x0 + size / 2 << "\" y=\"" << top - 10 << "\" text-anchor=\"middle\">"
        << xml_escape(p.title) << "</text>\n<rect x=\"" << x0 << "\" y=\"" << top << "\" width=\""
        << size << "\" height=\"" << size << "\" fill=\"none\" stroke=\"black\"/>\n";
    for (size_t i = 0; i < p.x.size(); ++i) {
      const double px = x0 + 5 + (p.x[i] - xmin) / (xmax - xmin) * (size - 10);
      const double py = top + size - 5 - (p.y[i] - ymin) / (ymax - ymin) * (size - 10);
      svg << "<circle cx=\"" << px << "\" cy=\"" << py << "\" r=\"2.2\" fill=\""
          << color(i < p.value.size() ? p.value[i] : 0) << "\" fill-opacity=\"0.7\"/>\n";
    }
    svg << "<text x=\"" << x0 + size / 2 << "\" y=\"" << top + size + 18
        << "\" text-anchor=\"middle\">component 1 (vertical: component 2)</text>\n";
  }
  // Legend: classes, or the ends of the colour scale.
  if (categorical && std::isfinite(vmax)) {
    for (int64_t c = 0; c <= static_cast<int64_t>(vmax); ++c)
      svg << "<circle cx=\"" << left + 10 + 90 * c << "\" cy=\"" << height - 18
          << "\" r=\"5\" fill=\"" << color(double(c)) << "\"/>\n<text x=\"" << left + 20 + 90 * c
          << "\" y=\"" << height - 14 << "\">" << xml_escape(value_label) << " " << c
          << "</text>\n";
  } else if (std::isfinite(vmin)) {
    svg << "<circle cx=\"" << left + 10 << "\" cy=\"" << height - 18 << "\" r=\"5\" fill=\""
        << color(vmin) << "\"/>\n<text x=\"" << left + 20 << "\" y=\"" << height - 14 << "\">"
        << xml_escape(value_label) << " " << fmt_number(vmin) << "</text>\n<circle cx=\""
        << left + 170 << "\" cy=\"" << height - 18 << "\" r=\"5\" fill=\"" << color(vmax)
        << "\"/>\n<text x=\"" << left + 180 << "\" y=\"" << height - 14 << "\">"
        << xml_escape(value_label) << " " << fmt_number(vmax) << "</text>\n";
  }
  svg << "</svg>\n";
  return svg.str();
}

}  // namespace mmfusion
