#include "mmfusion/base/svg.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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

// UTF-8 to code points (a malformed byte counts as one character).
std::vector<uint32_t> code_points(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    int extra = b >= 0xF0 ? 3 : b >= 0xE0 ? 2 : b >= 0xC0 ? 1 : 0;
    if (i + extra >= s.size() + (extra ? 0 : 1)) extra = 0;
    uint32_t c = extra == 0 ? b : b & (0x3F >> extra);
    for (int k = 1; k <= extra; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    out.push_back(c);
    i += 1 + extra;
  }
  return out;
}

std::string utf8(const std::vector<uint32_t>& cps, size_t count) {
  std::string out;
  for (size_t i = 0; i < count && i < cps.size(); ++i) {
    const uint32_t c = cps[i];
    if (c < 0x80) {
      out += char(c);
    } else if (c < 0x800) {
      out += char(0xC0 | (c >> 6)), out += char(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
      out += char(0xE0 | (c >> 12)), out += char(0x80 | ((c >> 6) & 0x3F));
      out += char(0x80 | (c & 0x3F));
    } else {
      out += char(0xF0 | (c >> 18)), out += char(0x80 | ((c >> 12) & 0x3F));
      out += char(0x80 | ((c >> 6) & 0x3F)), out += char(0x80 | (c & 0x3F));
    }
  }
  return out;
}

// Advance widths in em, after DejaVu Sans (wider than Arial and Helvetica, so an estimate
// that fits here fits there).
double char_em(uint32_t c) {
  if (c == ' ') return 0.32;
  if (c < 0x80 && std::strchr("il|!'", int(c))) return 0.28;
  if (c < 0x80 && std::strchr(".,:;", int(c))) return 0.34;
  if (c < 0x80 && std::strchr("fjtr()[]{}/\\-", int(c))) return 0.40;
  if (c == 'm') return 0.98;
  if (c == 'w' || c == 'M') return 0.87;
  if (c == 'W') return 0.99;
  if (c >= '0' && c <= '9') return 0.64;
  if (c >= 'A' && c <= 'Z') return 0.74;
  if (c >= 'a' && c <= 'z') return 0.62;
  if (c < 0x80 && std::strchr("+=<>~^#", int(c))) return 0.84;
  if (c == '%') return 0.95;
  if (c == '@') return 1.0;
  if (c == 0x2026) return 1.0;  // …
  return 0.84;  // − ± × and anything else: as wide as a plus
}

std::string fmt_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string fixed(double v, int digits, bool sign = false) {
  char buf[48];
  std::snprintf(buf, sizeof buf, sign ? "%+.*f" : "%.*f", digits, v);
  return buf;
}

// `text` cut at the end (with "…") to fit `max_width`.
std::string truncated(const std::string& text, double max_width, double size) {
  if (text_width(text, size) <= max_width) return text;
  const auto cps = code_points(text);
  for (size_t n = cps.size(); n-- > 0;) {
    const std::string cut = utf8(cps, n) + "\xE2\x80\xA6";
    if (text_width(cut, size) <= max_width) return cut;
  }
  return "";
}

const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
constexpr size_t kColorCount = sizeof kColors / sizeof *kColors;

// An SVG document under construction; every text goes through text(), which escapes it.
class Canvas {
 public:
  Canvas(double width, double height) : width_(width), height_(height) {
    out_ << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
         << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\""
         << height << "\" viewBox=\"0 0 " << width << " " << height
         << "\" font-family=\"sans-serif\" font-size=\"12\">\n"
         << "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  }
  double width() const { return width_; }
  void text(double x, double y, const std::string& s, double size = 12,
            const char* anchor = "start", const std::string& extra = "") {
    if (s.empty()) return;
    out_ << "<text x=\"" << x << "\" y=\"" << y << "\"";
    if (std::strcmp(anchor, "start") != 0) out_ << " text-anchor=\"" << anchor << "\"";
    if (size != 12) out_ << " font-size=\"" << size << "\"";
    if (!extra.empty()) out_ << " " << extra;
    out_ << ">" << xml_escape(s) << "</text>\n";
  }
  // A title centred at x, in `size` or smaller (down to 10), cut to fit `max_width`.
  void fitted(double x, double y, const std::string& s, double max_width, double size,
              const char* anchor = "middle") {
    while (size > 10 && text_width(s, size) > max_width) size -= 1;
    text(x, y, truncated(s, max_width, size), size, anchor);
  }
  void line(double x1, double y1, double x2, double y2, const std::string& stroke,
            double width = 1) {
    out_ << "<line x1=\"" << x1 << "\" y1=\"" << y1 << "\" x2=\"" << x2 << "\" y2=\"" << y2
         << "\" stroke=\"" << stroke << "\"";
    if (width != 1) out_ << " stroke-width=\"" << width << "\"";
    out_ << "/>\n";
  }
  void rect(double x, double y, double w, double h, const std::string& fill,
            const std::string& stroke = "") {
    out_ << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << w << "\" height=\"" << h
         << "\" fill=\"" << fill << "\"";
    if (!stroke.empty()) out_ << " stroke=\"" << stroke << "\"";
    out_ << "/>\n";
  }
  void circle(double x, double y, double r, const std::string& fill,
              const std::string& extra = "") {
    out_ << "<circle cx=\"" << x << "\" cy=\"" << y << "\" r=\"" << r << "\" fill=\"" << fill
         << "\"" << (extra.empty() ? "" : " " + extra) << "/>\n";
  }
  void raw(const std::string& s) { out_ << s; }
  std::string finish() {
    out_ << "</svg>\n";
    return out_.str();
  }

 private:
  double width_, height_;
  std::ostringstream out_;
};

// The bar drawn at point i: its interval, else +- its error, else the point itself.
std::pair<double, double> bar_of(const ChartSeries& s, size_t i) {
  if (i < s.low.size() && i < s.high.size() && std::isfinite(s.low[i]) && std::isfinite(s.high[i]))
    return {std::min(s.low[i], s.y[i]), std::max(s.high[i], s.y[i])};
  const double e = i < s.error.size() && std::isfinite(s.error[i]) ? s.error[i] : 0;
  return {s.y[i] - e, s.y[i] + e};
}

// Words of `text` in lines no wider than `max_width`.
std::vector<std::string> wrapped(const std::string& text, double max_width, double size) {
  std::vector<std::string> lines;
  std::istringstream words(text);
  std::string word, line;
  while (words >> word) {
    const std::string longer = line.empty() ? word : line + " " + word;
    if (!line.empty() && text_width(longer, size) > max_width)
      lines.push_back(line), line = word;
    else
      line = longer;
  }
  if (!line.empty()) lines.push_back(line);
  for (auto& l : lines) l = truncated(l, max_width, size);
  return lines;
}

}  // namespace

double text_width(const std::string& text, double font_size) {
  double em = 0;
  for (uint32_t c : code_points(text)) em += char_em(c);
  return em * font_size;
}

std::vector<std::string> shorten_labels(const std::vector<std::string>& labels, double max_width,
                                        double font_size) {
  // A label that fits stays. The others have each part between separators cut to k
  // characters, one k for all of them (the largest with which each fits), so that cut
  // names read alike ("mar:sha", "mar:sha:tex"); one that does not fit even at k = 1 is
  // cut at the end.
  auto separator = [](uint32_t c) { return c < 0x80 && std::strchr(":+, =/", int(c)); };
  struct Parts {
    std::vector<std::vector<uint32_t>> parts;
    std::vector<bool> is_sep;
    size_t longest = 0;
    std::string cut(size_t k) const {
      std::string out;
      for (size_t p = 0; p < parts.size(); ++p)
        out += utf8(parts[p], is_sep[p] ? parts[p].size() : k);
      return out;
    }
  };
  std::vector<Parts> split(labels.size());
  size_t k = std::numeric_limits<size_t>::max();
  for (size_t i = 0; i < labels.size(); ++i) {
    if (text_width(labels[i], font_size) <= max_width) continue;
    Parts& p = split[i];
    for (uint32_t c : code_points(labels[i])) {
      const bool sep = separator(c);
      if (p.parts.empty() || sep || p.is_sep.back()) p.parts.emplace_back(), p.is_sep.push_back(sep);
      p.parts.back().push_back(c);
      if (!sep) p.longest = std::max(p.longest, p.parts.back().size());
    }
    size_t own = p.longest;
    while (own > 1 && text_width(p.cut(own), font_size) > max_width) --own;
    if (text_width(p.cut(own), font_size) <= max_width) k = std::min(k, own);
  }
  std::vector<std::string> out;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (text_width(labels[i], font_size) <= max_width) {
      out.push_back(labels[i]);
      continue;
    }
    const std::string cut = split[i].cut(std::min(k, split[i].longest));
    out.push_back(text_width(cut, font_size) <= max_width ? cut
                                                          : truncated(labels[i], max_width, font_size));
  }
  return out;
}

std::string line_chart(const ChartOptions& o, const std::vector<ChartSeries>& series) {
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
  const auto yticks = nice_ticks(ymin, ymax);
  ymin = yticks.front(), ymax = yticks.back();
  double widest_tick = 0;
  for (double t : yticks) widest_tick = std::max(widest_tick, text_width(fmt_number(t), 12));

  // The legend: at the right, as wide as its longest name allows (up to 40% of the chart),
  // else, with more series than colours or than rows, one line saying what colour encodes.
  const double top_base = 40, bottom = 55, row = 18;
  double name_width = 0;
  for (const auto& s : series) name_width = std::max(name_width, text_width(s.name, 12));
  const double left = std::max(70.0, widest_tick + 36);
  double right = std::min(name_width + 50, 0.4 * o.width);
  const double plot_h = o.height - top_base - bottom;
  const bool legend = series.size() <= kColorCount && row * double(series.size()) <= plot_h;
  double top = top_base;
  if (!legend) right = 30, top = top_base + 14;
  const double plot_w = o.width - left - right, height = o.height - top - bottom;

  std::vector<double> xticks;
  if (categorical) {
    for (size_t i = 0; i < o.x_categories.size(); ++i) xticks.push_back(double(i));
    xmin = -0.5, xmax = double(o.x_categories.size()) - 0.5;
  } else {
    xticks = nice_ticks(xmin, xmax, 5, o.whole_x ? 1.0 : 0.0);
    xmin = xticks.front(), xmax = xticks.back();
  }
  auto px = [&](double x) { return left + (x - xmin) / (xmax - xmin) * plot_w; };
  auto py = [&](double y) { return top + height - (y - ymin) / (ymax - ymin) * height; };

  Canvas svg(o.width, o.height);
  svg.fitted(o.width / 2.0, 22, o.title, o.width - 20, 15);
  if (!legend)
    svg.fitted(o.width / 2.0, 40,
               "colour: " + o.legend_title + ", " + std::to_string(series.size()) + " series",
               o.width - 20, 11);
  for (double t : yticks) {
    const double y = py(t);
    svg.line(left, y, left + plot_w, y, "#e0e0e0");
    svg.text(left - 6, y + 4, fmt_number(t), 12, "end");
  }
  std::vector<std::string> xlabels;
  if (categorical) {
    const double slot = plot_w / double(o.x_categories.size());
    xlabels = shorten_labels(o.x_categories, slot - 6, 12);
  } else {
    for (double t : xticks) xlabels.push_back(fmt_number(t));
  }
  for (size_t i = 0; i < xticks.size(); ++i) {
    const double x = px(xticks[i]);
    svg.line(x, top + height, x, top + height + 5, "black");
    svg.text(x, top + height + 18, xlabels[i], 12, "middle");
  }
  svg.line(left, top + height, left + plot_w, top + height, "black");
  svg.line(left, top, left, top + height, "black");
  svg.text(left + plot_w / 2, o.height - 12, truncated(o.x_label, o.width - 20, 12), 12, "middle");
  const double mid = top + height / 2;
  svg.text(16, mid, truncated(o.y_label, height, 12), 12, "middle",
           "transform=\"rotate(-90 16 " + std::to_string(mid) + ")\"");
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    const char* color = kColors[k % kColorCount];
    std::ostringstream points;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i]))
        points << px(s.x[i]) << "," << py(s.y[i]) << " ";
    if (o.connect)
      svg.raw("<polyline fill=\"none\" stroke=\"" + std::string(color) +
              "\" stroke-width=\"2\" points=\"" + points.str() + "\"/>\n");
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      svg.circle(px(s.x[i]), py(s.y[i]), 3, color);
      const auto [lo, hi] = bar_of(s, i);
      if (hi > lo) svg.line(px(s.x[i]), py(lo), px(s.x[i]), py(hi), color);
    }
    if (!legend) continue;
    const double ly = top + 10 + row * double(k);
    svg.line(left + plot_w + 12, ly, left + plot_w + 32, ly, color, 2);
    svg.text(left + plot_w + 38, ly + 4, truncated(s.name, right - 44, 12));
  }
  return svg.finish();
}

std::string scatter_panels(const std::string& title, const std::vector<ScatterPanel>& panels,
                           bool categorical, const std::string& value_label) {
  const double size = 260, gap = 30, top = 60, left = 20;
  const double width = std::max(2 * left + size, left + panels.size() * (size + gap));
  const double height = top + size + 60;
  double vmin = INFINITY, vmax = -INFINITY;
  for (const auto& p : panels)
    for (double v : p.value) vmin = std::min(vmin, v), vmax = std::max(vmax, v);
  auto color = [&](double v) {
    if (categorical) return std::string(kColors[static_cast<int64_t>(v) % kColorCount]);
    const double t = vmax > vmin ? (v - vmin) / (vmax - vmin) : 0.5;
    char buf[16];
    std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(40 + 200 * t), 60, int(240 - 200 * t));
    return std::string(buf);
  };
  Canvas svg(width, height);
  svg.fitted(width / 2, 22, title, width - 20, 15);
  for (size_t k = 0; k < panels.size(); ++k) {
    const auto& p = panels[k];
    const double x0 = left + k * (size + gap);
    double xmin = INFINITY, xmax = -INFINITY, ymin = INFINITY, ymax = -INFINITY;
    for (size_t i = 0; i < p.x.size(); ++i)
      xmin = std::min(xmin, p.x[i]), xmax = std::max(xmax, p.x[i]), ymin = std::min(ymin, p.y[i]),
      ymax = std::max(ymax, p.y[i]);
    if (!(xmax > xmin)) xmin -= 1, xmax += 1;
    if (!(ymax > ymin)) ymin -= 1, ymax += 1;
    svg.fitted(x0 + size / 2, top - 10, p.title, size, 12);
    svg.rect(x0, top, size, size, "none", "black");
    for (size_t i = 0; i < p.x.size(); ++i) {
      const double px = x0 + 5 + (p.x[i] - xmin) / (xmax - xmin) * (size - 10);
      const double py = top + size - 5 - (p.y[i] - ymin) / (ymax - ymin) * (size - 10);
      svg.circle(px, py, 2.2, color(i < p.value.size() ? p.value[i] : 0), "fill-opacity=\"0.7\"");
    }
    svg.fitted(x0 + size / 2, top + size + 18, "component 1 (vertical: component 2)", size, 12);
  }
  // Legend: the classes where their colours are distinct and they fit in one row, else a
  // line saying what colour encodes; or the two ends of the colour scale.
  const double ly = height - 18;
  if (categorical && std::isfinite(vmax)) {
    const int64_t classes = static_cast<int64_t>(vmax) + 1;
    double needed = left;
    for (int64_t c = 0; c < classes; ++c)
      needed += 24 + text_width(value_label + " " + std::to_string(c), 12);
    if (classes <= int64_t(kColorCount) && needed <= width - left) {
      double x = left;
      for (int64_t c = 0; c < classes; ++c) {
        const std::string label = value_label + " " + std::to_string(c);
        svg.circle(x + 5, ly, 5, color(double(c)));
        svg.text(x + 14, ly + 4, label);
        x += 24 + text_width(label, 12);
      }
    } else {
      svg.fitted(left, ly + 4,
                 "colour: " + value_label + ", " + std::to_string(classes) + " " + value_label +
                     (classes == 1 ? "" : value_label.back() == 's' ? "es" : "s") + (classes > int64_t(kColorCount)
                                                       ? " (colours repeat every 10)"
                                                       : ""),
                 width - 2 * left, 12, "start");
    }
  } else if (std::isfinite(vmin)) {
    const std::string low = value_label + " " + fmt_number(vmin);
    const std::string high = value_label + " " + fmt_number(vmax);
    svg.circle(left + 5, ly, 5, color(vmin));
    svg.text(left + 14, ly + 4, low);
    const double x = left + 34 + text_width(low, 12);
    svg.circle(x + 5, ly, 5, color(vmax));
    svg.text(x + 14, ly + 4, high);
  }
  return svg.finish();
}

namespace {

struct Box {
  double x, y, w, h;
};

// Value axis range over every value, interval end and truth of the series, with 0 in it.
std::vector<double> value_ticks(const std::vector<FigureSeries>& series) {
  double lo = 0, hi = 0;
  auto take = [&](const std::vector<double>& v) {
    for (double x : v)
      if (std::isfinite(x)) lo = std::min(lo, x), hi = std::max(hi, x);
  };
  for (const auto& s : series) take(s.value), take(s.low), take(s.high), take(s.truth);
  return nice_ticks(lo, hi, 5);
}

double at(const std::vector<double>& v, size_t i) { return i < v.size() ? v[i] : NAN; }

// Estimates with intervals per category, series side by side; truth as black ticks; a
// legend under the axis (wrapped to the panel's width).
void points_panel(Canvas& svg, const Box& b, const std::string& title, const std::string& x_label,
                  const std::string& y_label, const std::vector<std::string>& categories,
                  const std::vector<FigureSeries>& series) {
  svg.fitted(b.x + b.w / 2, b.y + 14, title, b.w - 10, 13);
  const auto ticks = value_ticks(series);
  double widest = 0;
  for (double t : ticks) widest = std::max(widest, text_width(fmt_number(t), 11));
  // Legend entries: a dot with a bar per series, a tick for the truth.
  bool any_truth = false;
  for (const auto& s : series)
    for (double t : s.truth) any_truth = any_truth || std::isfinite(t);
  struct Entry {
    std::string name;
    int color;  // -1: the truth tick
  };
  std::vector<Entry> entries;
  for (size_t k = 0; k < series.size(); ++k) entries.push_back({series[k].name, int(k)});
  if (any_truth) entries.push_back({"truth", -1});
  const double left = b.x + std::max(52.0, widest + 30), right = b.x + b.w - 12;
  std::vector<std::vector<Entry>> rows(1);
  double used = 0;
  for (const auto& e : entries) {
    const double w = 26 + text_width(e.name, 11);
    if (used > 0 && left + used + w > right) rows.emplace_back(), used = 0;
    rows.back().push_back(e), used += w;
  }
  const double legend_h = 16.0 * double(rows.size());
  const double top = b.y + 28, bottom = b.y + b.h - legend_h - (x_label.empty() ? 22 : 38);
  const double lo = ticks.front(), hi = ticks.back();
  auto py = [&](double v) { return bottom - (v - lo) / (hi - lo) * (bottom - top); };
  for (double t : ticks) {
    svg.line(left, py(t), right, py(t), t == 0 ? "#909090" : "#e6e6e6");
    svg.text(left - 5, py(t) + 4, fmt_number(t), 11, "end");
  }
  svg.line(left, top, left, bottom, "black");
  const double mid = (top + bottom) / 2, ylx = b.x + 14;
  svg.text(ylx, mid, truncated(y_label, bottom - top, 11), 11, "middle",
           "transform=\"rotate(-90 " + std::to_string(ylx) + " " + std::to_string(mid) + ")\"");
  const size_t n = categories.size();
  const double slot = (right - left) / double(std::max<size_t>(n, 1));
  const auto labels = shorten_labels(categories, slot - 4, 11);
  const double dodge = std::min(14.0, slot / double(series.size() + 1));
  for (size_t i = 0; i < n; ++i) {
    const double cx = left + slot * (double(i) + 0.5);
    svg.text(cx, bottom + 15, labels[i], 11, "middle");
    for (size_t k = 0; k < series.size(); ++k) {
      const auto& s = series[k];
      const double x = cx + (double(k) - double(series.size() - 1) / 2) * dodge;
      const char* color = kColors[k % kColorCount];
      const double v = at(s.value, i), l = at(s.low, i), h = at(s.high, i), t = at(s.truth, i);
      if (std::isfinite(l) && std::isfinite(h)) svg.line(x, py(l), x, py(h), color, 1.5);
      if (std::isfinite(v)) svg.circle(x, py(v), 3.5, color);
      if (std::isfinite(t)) svg.line(x - 5, py(t), x + 5, py(t), "black", 2);
    }
  }
  if (!x_label.empty())
    svg.text((left + right) / 2, bottom + 31, truncated(x_label, right - left, 11), 11, "middle");
  double ly = b.y + b.h - legend_h + 10;
  for (const auto& r : rows) {
    double x = left;
    for (const auto& e : r) {
      if (e.color < 0) {
        svg.line(x + 2, ly - 4, x + 14, ly - 4, "black", 2);
      } else {
        svg.line(x + 8, ly - 10, x + 8, ly + 2, kColors[e.color % kColorCount], 1.5);
        svg.circle(x + 8, ly - 4, 3.5, kColors[e.color % kColorCount]);
      }
      svg.text(x + 20, ly, truncated(e.name, right - x - 20, 11), 11);
      x += 26 + text_width(e.name, 11);
    }
    ly += 16;
  }
}

// A colour from blue (-1, redundancy) through white (0) to red (+1, synergy).
std::string diverging(double t) {
  t = std::max(-1.0, std::min(1.0, t));
  const double end[2][3] = {{33, 102, 172}, {178, 24, 43}};
  const double* e = end[t >= 0 ? 1 : 0];
  const double a = std::abs(t);
  char buf[16];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(255 + (e[0] - 255) * a),
                int(255 + (e[1] - 255) * a), int(255 + (e[2] - 255) * a));
  return buf;
}

void matrix_panel(Canvas& svg, const Box& b, const std::string& title,
                  const std::vector<std::string>& names, const std::vector<double>& values) {
  svg.fitted(b.x + b.w / 2, b.y + 14, title, b.w - 10, 13);
  const size_t m = names.size();
  double vmax = 0;
  for (double v : values)
    if (std::isfinite(v)) vmax = std::max(vmax, std::abs(v));
  if (m < 2 || std::none_of(values.begin(), values.end(),
                            [](double v) { return std::isfinite(v); })) {
    svg.text(b.x + b.w / 2, b.y + b.h / 2, "no pair terms", 12, "middle");
    return;
  }
  double name_w = 0;
  for (const auto& n : names) name_w = std::max(name_w, text_width(n, 11));
  const double label_w = std::min(110.0, name_w + 8);
  const double avail_w = b.w - label_w - 20, avail_h = b.h - 28 - 20 - 56;
  const double cell = std::min(avail_w, avail_h) / double(m);
  const double x0 = b.x + label_w + 10 + (avail_w - cell * double(m)) / 2, y0 = b.y + 28 + 20;
  const auto rows = shorten_labels(names, label_w - 6, 11);
  const auto cols = shorten_labels(names, cell - 4, 11);
  // The cells' text: 3 decimals where the largest value is at least 0.001, else 2
  // significant figures; the font as large as fits (11 px at most).
  for (size_t i = 0; i < m; ++i) {
    svg.text(x0 - 6, y0 + cell * (double(i) + 0.5) + 4, rows[i], 11, "end");
    svg.text(x0 + cell * (double(i) + 0.5), y0 - 6, cols[i], 11, "middle");
    for (size_t j = 0; j < m; ++j) {
      const double x = x0 + cell * double(j), y = y0 + cell * double(i);
      const double v = i * m + j < values.size() ? values[i * m + j] : NAN;
      if (i == j || !std::isfinite(v)) {
        svg.rect(x, y, cell, cell, "#f0f0f0", "white");
        continue;
      }
      const double t = vmax > 0 ? v / vmax : 0;
      svg.rect(x, y, cell, cell, diverging(t), "white");
      char buf[32];
      std::snprintf(buf, sizeof buf, vmax >= 1e-3 ? "%+.3f" : "%+.2g", v);
      double size = 11;
      while (size > 6 && text_width(buf, size) > cell - 4) size -= 0.5;
      if (text_width(buf, size) <= cell - 4)
        svg.text(x + cell / 2, y + cell / 2 + size * 0.35, buf, size, "middle",
                 std::abs(t) > 0.6 ? "fill=\"white\"" : "");
    }
  }
  // The scale: redundancy (negative) at the blue end, synergy (positive) at the red end.
  const double bar_w = 180, by = y0 + cell * double(m) + 22, bx = b.x + (b.w - bar_w) / 2;
  const int steps = 9;
  for (int k = 0; k < steps; ++k)
    svg.rect(bx + bar_w * k / steps, by - 10, bar_w / steps + 0.5, 12,
             diverging(-1.0 + 2.0 * k / (steps - 1)));
  const std::string scale = vmax >= 1e-3 ? fixed(vmax, 3) : fmt_number(vmax);
  svg.text(bx - 6, by, "redundancy \xE2\x88\x92" + scale, 11, "end");
  svg.text(bx + bar_w + 6, by, "+" + scale + " synergy", 11, "start");
  svg.text(bx + bar_w / 2, by + 16, "0 (white): neither", 11, "middle");
}

}  // namespace

std::string contribution_figure(const ContributionFigure& f) {
  const double width = 1200, half = width / 2, head = 58, row = 360;
  const size_t m = f.modalities.size();
  const bool strip = m <= size_t(f.strip_limit) && !f.subsets.empty();
  // Up to 8 subsets (3 modalities) the strip fits beside the sums by order; more get a row.
  const bool beside = strip && f.subsets.size() <= 8;
  const double height = head + row * (strip && !beside ? 3 : 2) + 8;
  Canvas svg(width, height);
  svg.fitted(half, 24, f.title, width - 20, 15);
  svg.fitted(half, 44, f.subtitle, width - 20, 12);
  points_panel(svg, {0, head, half, row}, "Each modality", "", f.unit, f.modalities,
               f.per_modality);
  matrix_panel(svg, {half, head, half, row}, "Pair terms (pure interaction of two modalities)",
               f.modalities, f.pairs);
  std::vector<std::string> orders;
  for (size_t k = 1; k <= m; ++k) orders.push_back(std::to_string(k));
  points_panel(svg, {0, head + row, half, row}, "Sum of the pure terms by order",
               "order (modalities in the term)", f.unit, orders, f.orders);
  if (strip) {
    const Box box = beside ? Box{half, head + row, half, row} : Box{0, head + 2 * row, width, row};
    points_panel(svg, box, "Each subset's pure term", "", f.unit, f.subsets, f.strip);
  } else {
    double y = head + row + 40;
    for (const auto& line : wrapped(f.strip_note, half - 60, 12))
      svg.text(half + 30, y, line, 12), y += 18;
  }
  return svg.finish();
}

namespace {

std::string attribute(const std::string& tag, const std::string& name) {
  const std::string key = " " + name + "=\"";
  const size_t at = tag.find(key);
  if (at == std::string::npos) return "";
  const size_t start = at + key.size(), end = tag.find('"', start);
  return end == std::string::npos ? "" : tag.substr(start, end - start);
}

double number_attribute(const std::string& tag, const std::string& name, double fallback) {
  const std::string v = attribute(tag, name);
  if (v.empty()) return fallback;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  return end == v.c_str() ? fallback : x;
}

std::string unescaped(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '<') {  // a nested element (tspan): its text stays, its tag goes
      const size_t end = s.find('>', i);
      if (end == std::string::npos) break;
      i = end;
      continue;
    }
    if (s[i] == '&') {
      const size_t end = s.find(';', i);
      if (end != std::string::npos && end - i < 10) {
        const std::string e = s.substr(i + 1, end - i - 1);
        out += e == "lt" ? "<" : e == "gt" ? ">" : e == "quot" ? "\"" : e == "apos" ? "'"
             : e == "amp" ? "&" : "W";
        i = end;
        continue;
      }
    }
    out += s[i];
  }
  return out;
}

}  // namespace

std::vector<std::string> svg_layout_problems(const std::string& svg) {
  std::vector<std::string> problems;
  const size_t root = svg.find("<svg");
  if (root == std::string::npos) return {"no <svg> element"};
  const std::string root_tag = svg.substr(root, svg.find('>', root) - root);
  const double width = number_attribute(root_tag, "width", NAN);
  const double height = number_attribute(root_tag, "height", NAN);
  const double root_size = number_attribute(root_tag, "font-size", 16);
  if (!std::isfinite(width) || !std::isfinite(height)) return {"the <svg> element has no size"};
  struct Text {
    std::string text;
    double x0, y0, x1, y1;
  };
  std::vector<Text> texts;
  for (size_t at = svg.find("<text", root); at != std::string::npos;
       at = svg.find("<text", at + 1)) {
    const size_t tag_end = svg.find('>', at), close = svg.find("</text>", at);
    if (tag_end == std::string::npos || close == std::string::npos) {
      problems.push_back("an unclosed <text> element");
      break;
    }
    const std::string tag = svg.substr(at, tag_end - at);
    const std::string content = unescaped(svg.substr(tag_end + 1, close - tag_end - 1));
    if (content.empty()) continue;
    const double size = number_attribute(tag, "font-size", root_size);
    const double x = number_attribute(tag, "x", 0), y = number_attribute(tag, "y", 0);
    const std::string anchor = attribute(tag, "text-anchor");
    const double w = text_width(content, size);
    const double left = anchor == "middle" ? x - w / 2 : anchor == "end" ? x - w : x;
    // The box from the ascent (0.76 em above the baseline) to the descent (0.24 em below).
    double cx[4] = {left, left + w, left + w, left}, cy[4] = {y - 0.76 * size, y - 0.76 * size,
                                                              y + 0.24 * size, y + 0.24 * size};
    const std::string transform = attribute(tag, "transform");
    if (transform.rfind("rotate(", 0) == 0) {
      double a = 0, ox = 0, oy = 0;
      const int got = std::sscanf(transform.c_str(), "rotate(%lf %lf %lf", &a, &ox, &oy);
      if (got == 1) ox = oy = 0;
      const double r = a * M_PI / 180, c = std::cos(r), s = std::sin(r);
      for (int k = 0; k < 4; ++k) {
        const double dx = cx[k] - ox, dy = cy[k] - oy;
        cx[k] = ox + c * dx - s * dy, cy[k] = oy + s * dx + c * dy;
      }
    }
    texts.push_back({content, *std::min_element(cx, cx + 4), *std::min_element(cy, cy + 4),
                     *std::max_element(cx, cx + 4), *std::max_element(cy, cy + 4)});
  }
  constexpr double kSlack = 0.5;  // px a label may touch
  for (const auto& t : texts)
    if (t.x0 < -kSlack || t.y0 < -kSlack || t.x1 > width + kSlack || t.y1 > height + kSlack)
      problems.push_back("\"" + t.text + "\" leaves the " + fmt_number(width) + " x " +
                         fmt_number(height) + " canvas (it spans x " + fmt_number(t.x0) + " to " +
                         fmt_number(t.x1) + ", y " + fmt_number(t.y0) + " to " +
                         fmt_number(t.y1) + ")");
  for (size_t i = 0; i < texts.size(); ++i)
    for (size_t j = i + 1; j < texts.size(); ++j) {
      const auto &a = texts[i], &b = texts[j];
      const double ox = std::min(a.x1, b.x1) - std::max(a.x0, b.x0);
      const double oy = std::min(a.y1, b.y1) - std::max(a.y0, b.y0);
      if (ox > 1 && oy > 1)
        problems.push_back("\"" + a.text + "\" and \"" + b.text + "\" overlap");
    }
  return problems;
}

}  // namespace mmfusion
