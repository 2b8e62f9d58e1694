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
  write_text(dir.file("bad.svg"), "<svg><g></svg>");
  EXPECT_FALSE(well_formed_xml(dir.file("bad.svg")));
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
