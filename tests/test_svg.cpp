// Charts (svg.hpp): well-formed, escaped, with round axis ticks.
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/base/svg.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

TEST(Svg, ChartsAreWellFormedAndEscapeText) {
  TempDir dir;
  ChartOptions o;
  o.title = "a <title> & \"quotes\"";
  o.x_label = "rank";
  o.y_label = "mse";
  ChartSeries s{"lmf & co", {1, 2, 4}, {0.5, 0.25, 0.2}, {0.1, 0.0, 0.05}};
  atomic_write_text(dir.file("c.svg"), line_chart(o, {s, {"empty", {}, {}, {}}}));
  EXPECT_TRUE(well_formed_xml(dir.file("c.svg")));
  const std::string text = read_text(dir.file("c.svg"));
  EXPECT_NE(text.find("a &lt;title&gt; &amp; &quot;quotes&quot;"), std::string::npos);
  EXPECT_NE(text.find("<polyline"), std::string::npos);
  // The checker itself rejects broken XML.
  write_text(dir.file("bad.xml"), "<svg><g></svg>");
  EXPECT_FALSE(well_formed_xml(dir.file("bad.xml")));
}

TEST(Svg, NiceTicksCoverTheRangeInRoundSteps) {
  const auto t = nice_ticks(0.13, 0.87);
  EXPECT_LE(t.front(), 0.13);
  EXPECT_GE(t.back(), 0.87);
  const double step = t[1] - t[0];
  EXPECT_NEAR(step, 0.2, 1e-12);
  for (size_t i = 1; i < t.size(); ++i) EXPECT_NEAR(t[i] - t[i - 1], step, 1e-12);
  EXPECT_GE(nice_ticks(3, 3).size(), 2u);  // a flat range still gets an axis
  // Whole numbers (epochs): a 2-epoch run gets ticks 1 and 2, not 1.2, 1.4, ...
  EXPECT_EQ(nice_ticks(1, 2, 5, 1.0), (std::vector<double>{1, 2}));
  ChartOptions epochs;
  epochs.whole_x = true;
  const std::string svg = line_chart(epochs, {ChartSeries{"loss", {1, 2}, {0.5, 0.4}, {}, {}, {}}});
  EXPECT_EQ(svg.find(">1.2<"), std::string::npos) << svg;
  EXPECT_NE(svg.find(">2<"), std::string::npos) << svg;
}

// ---- the layout check ------------------------------------------------------------------

namespace {
std::string document(int width, int height, const std::string& body) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) +
         "\" height=\"" + std::to_string(height) + "\" font-size=\"12\">\n" + body + "</svg>\n";
}
size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}
int svg_width(const std::string& svg) {
  const size_t at = svg.find("width=\"");
  return std::stoi(svg.substr(at + 7));
}
}  // namespace

TEST(SvgLayout, TextWidthFollowsTheCharactersAndTheFontSize) {
  EXPECT_LT(text_width("iiii", 12), text_width("mmmm", 12));
  EXPECT_NEAR(text_width("abc", 24), 2 * text_width("abc", 12), 1e-9);
  // A multi-byte character is one character: "−" (3 bytes) is as wide as "+".
  EXPECT_NEAR(text_width("\xE2\x88\x92", 12), text_width("+", 12), 1e-9);
  // Within 10% of DejaVu Sans' own advance widths for a typical label: "margin:shape" is
  // 6.90 em there (m .974, a .613, r .411, g .635, i .278, n .634, : .337, s .521, h .634,
  // a .613, p .635, e .615), 82.8 px at 12 px.
  EXPECT_NEAR(text_width("margin:shape", 12), 82.8, 0.1 * 82.8);
}

TEST(SvgLayout, FindsOverlappingLabelsAndALegendPastTheEdge) {
  EXPECT_TRUE(svg_layout_problems(document(
                  300, 100, "<text x=\"10\" y=\"20\">apples</text>\n"
                            "<text x=\"10\" y=\"40\">pears</text>\n"
                            "<text x=\"290\" y=\"60\" text-anchor=\"end\">plums</text>\n"))
                  .empty());
  // Two labels set on top of each other.
  const auto overlap = svg_layout_problems(document(
      300, 100, "<text x=\"10\" y=\"20\">margin:shape:texture</text>\n"
                "<text x=\"100\" y=\"24\">Shapley margin</text>\n"));
  ASSERT_EQ(overlap.size(), 1u);
  EXPECT_NE(overlap[0].find("overlap"), std::string::npos) << overlap[0];
  EXPECT_NE(overlap[0].find("Shapley margin"), std::string::npos) << overlap[0];
  // A legend entry that runs past the right edge, and one centred on the left edge.
  const auto past = svg_layout_problems(document(
      300, 100, "<text x=\"220\" y=\"20\">attribute (95% interval)</text>\n"
                "<text x=\"0\" y=\"60\" text-anchor=\"middle\">left</text>\n"));
  ASSERT_EQ(past.size(), 2u);
  EXPECT_NE(past[0].find("leaves the 300 x 100 canvas"), std::string::npos) << past[0];
  // Entities count as one character; nested tspans keep their text.
  EXPECT_FALSE(svg_layout_problems(document(
                   60, 100, "<text x=\"0\" y=\"20\">a &amp; <tspan>b</tspan> &amp; c &amp; d</text>\n"))
                   .empty());
  EXPECT_TRUE(svg_layout_problems(document(60, 100, "<text x=\"0\" y=\"20\">a &amp; b</text>\n"))
                  .empty());
  // A rotated axis label: vertical, so it fits a tall canvas it would overflow lying flat,
  // and it overlaps a label at its side.
  const std::string rotated =
      "<text x=\"16\" y=\"150\" text-anchor=\"middle\" transform=\"rotate(-90 16 150)\">"
      "share of output variance</text>\n";
  EXPECT_TRUE(svg_layout_problems(document(100, 300, rotated)).empty());
  EXPECT_EQ(svg_layout_problems(document(100, 300, rotated + "<text x=\"10\" y=\"150\">x</text>\n"))
                .size(),
            1u);
}

TEST(SvgLayout, LongLabelsAreShortenedPartByPart) {
  const std::vector<std::string> names{"facial:fourier:karhunen", "facial:fourier", "pixels"};
  const double room = text_width("fac:fou:kar", 12) + 0.5;
  const auto short_names = shorten_labels(names, room, 12);
  // Cut names read alike: every part of every cut label to the same length.
  EXPECT_EQ(short_names, (std::vector<std::string>{"fac:fou:kar", "fac:fou", "pixels"}));
  for (const auto& s : short_names) EXPECT_LE(text_width(s, 12), room) << s;
  EXPECT_EQ(shorten_labels(names, 1000, 12), names);  // what fits stays as it is
  for (const auto& s : shorten_labels({"averyveryverylongname"}, 40, 12))
    EXPECT_LE(text_width(s, 12), 40) << s;
}

TEST(SvgLayout, ALegendThatCannotFitOrWouldRepeatColoursSaysWhatColourEncodes) {
  // 100 classes: no legend entry "class 12", one line instead.
  ScatterPanel panel{"zscore", {}, {}, {}};
  for (int i = 0; i < 300; ++i)
    panel.x.push_back(std::sin(i)), panel.y.push_back(std::cos(3 * i)), panel.value.push_back(i % 100);
  const std::string many = scatter_panels("Kernel PCA", {panel, panel}, true, "class");
  EXPECT_EQ(many.find(">class 12<"), std::string::npos);
  EXPECT_NE(many.find("colour: class, 100 classes (colours repeat every 10)"), std::string::npos);
  EXPECT_EQ(svg_layout_problems(many), std::vector<std::string>{});
  for (auto& v : panel.value) v = std::fmod(v, 3);
  const std::string three = scatter_panels("Kernel PCA", {panel}, true, "class");
  EXPECT_NE(three.find(">class 2<"), std::string::npos);
  EXPECT_EQ(svg_layout_problems(three), std::vector<std::string>{});
  // 14 lines: colours would repeat, so the legend is a line; long names stay on the canvas.
  ChartOptions o;
  o.title = "test r2 (mean ± std over seeds)";
  o.legend_title = "combination";
  std::vector<ChartSeries> lines;
  for (int k = 0; k < 14; ++k)
    lines.push_back({"model.type=lmf, train.learning_rate=0.00" + std::to_string(k),
                     {1, 2, 3}, {0.1 * k, 0.2, 0.3}, {}, {}, {}});
  const std::string crowded = line_chart(o, lines);
  EXPECT_NE(crowded.find("colour: combination, 14 series"), std::string::npos);
  EXPECT_EQ(svg_layout_problems(crowded), std::vector<std::string>{});
  lines.resize(3);
  const std::string few = line_chart(o, lines);
  EXPECT_EQ(few.find("colour: combination"), std::string::npos);
  EXPECT_EQ(svg_layout_problems(few), std::vector<std::string>{});
  // Categorical labels wider than their slot are shortened, never left to collide.
  ChartOptions cats;
  for (const char* a : {"margin", "shape", "texture"})
    for (const char* b : {"margin", "shape", "texture"})
      cats.x_categories.push_back(std::string(a) + ":" + b + ":" + a);
  ChartSeries points{"explain (95% interval)", {}, {}, {}, {}, {}};
  for (size_t i = 0; i < cats.x_categories.size(); ++i)
    points.x.push_back(double(i)), points.y.push_back(0.1 * double(i));
  EXPECT_EQ(svg_layout_problems(line_chart(cats, {points})), std::vector<std::string>{});
}

// For 2 to 8 modalities: at most 1200 px wide, no layout problem, the pair matrix's values
// written in their cells, its colours told apart in the legend, and the per-subset strip
// only up to 4 modalities.
TEST(SvgLayout, TheContributionFigureFitsFrom2To8Modalities) {
  const std::vector<std::string> names{"facial_landmarks", "fourier_shape", "karhunen_loeve",
                                       "pixels", "zernike_moments", "morphology",
                                       "texture_histogram", "margin"};
  for (size_t m = 2; m <= 8; ++m) {
    ContributionFigure f;
    f.title = "Share of the prediction's variance, by modality: explain of one trained lmf model "
              "on the test split";
    f.subtitle = "95% intervals from 200 bootstrap resamples; 1 seed";
    f.unit = "share of output variance";
    f.modalities.assign(names.begin(), names.begin() + long(m));
    FigureSeries shapley{"Shapley value", {}, {}, {}, {}}, total{"total effect", {}, {}, {}, {}};
    for (size_t i = 0; i < m; ++i) {
      const double v = 0.1 + 0.05 * double(i);
      shapley.value.push_back(v), shapley.low.push_back(v - 0.02), shapley.high.push_back(v + 0.02);
      shapley.truth.push_back(v + 0.01);
      total.value.push_back(v + 0.03), total.low.push_back(v), total.high.push_back(v + 0.05);
    }
    f.per_modality = {shapley, total};
    f.pairs.assign(m * m, NAN);
    f.pairs[0 * m + 1] = f.pairs[1 * m + 0] = -0.123;  // redundancy
    if (m > 2) f.pairs[0 * m + 2] = f.pairs[2 * m + 0] = 0.045;  // synergy
    FigureSeries orders{"sum of pure shares", {}, {}, {}, {}};
    for (size_t k = 0; k < m; ++k) orders.value.push_back(0.5 / double(k + 1));
    f.orders = {orders};
    FigureSeries strip{"explain's share (95% interval)", {}, {}, {}, {}};
    for (uint32_t mask = 1; mask < (1u << m); ++mask) {
      std::string name;
      for (size_t i = 0; i < m; ++i)
        if (mask & (1u << i)) name += (name.empty() ? "" : ":") + names[i];
      f.subsets.push_back(name);
      strip.value.push_back(0.01 * double(mask % 7));
    }
    f.strip = {strip};
    f.strip_note = "every subset's share is in explain.csv and explain.json";
    const std::string svg = contribution_figure(f);
    SCOPED_TRACE(std::to_string(m) + " modalities");
    EXPECT_LE(svg_width(svg), 1200);
    EXPECT_EQ(svg_layout_problems(svg), std::vector<std::string>{});
    EXPECT_EQ(count(svg, ">-0.123<"), 2u);  // both halves of the symmetric matrix
    EXPECT_EQ(count(svg, ">+0.045<"), m > 2 ? 2u : 0u);
    EXPECT_NE(svg.find("redundancy \xE2\x88\x92" "0.123"), std::string::npos);
    EXPECT_NE(svg.find("+0.123 synergy"), std::string::npos);
    EXPECT_EQ(svg.find("Each subset&apos;s pure term") != std::string::npos, m <= 4);
    EXPECT_EQ(svg.find("explain.csv") != std::string::npos, m > 4);
    EXPECT_NE(svg.find(">truth<"), std::string::npos);  // the truth's legend entry
  }
}

// The figures the docs show (docs/report) pass the same check as the charts the suite writes.
TEST(SvgLayout, EveryFigureInTheDocsPasses) {
  size_t checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(source_path("docs/report"))) {
    if (entry.path().extension() != ".svg") continue;
    ++checked;
    const std::string svg = read_text(entry.path().string());
    EXPECT_EQ(svg_layout_problems(svg), std::vector<std::string>{}) << entry.path();
  }
  EXPECT_GE(checked, 10u);
}
