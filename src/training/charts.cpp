#include "mmfusion/training/charts.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "mmfusion/base/files.hpp"
#include "mmfusion/base/svg.hpp"

namespace mmfusion {

using nlohmann::json;

void write_charts(const RunPaths& paths, const std::string& run_name) {
  ChartSeries train, val;
  train.name = "train loss", val.name = "validation loss";
  std::vector<ChartSeries> relevance;  // one per block, in the order of the first line's scores
  std::ifstream in(paths.metrics);
  std::string line;
  while (std::getline(in, line)) {
    const json r = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (!r.is_object() || !r.contains("epoch")) continue;
    const double epoch = r["epoch"].get<double>();
    train.x.push_back(epoch), train.y.push_back(r.value("train_loss", NAN));
    val.x.push_back(epoch), val.y.push_back(r.value("val_loss", NAN));
    if (!r.contains("relevance") || !r["relevance"].is_object()) continue;
    for (const auto& [block, score] : r["relevance"].items()) {
      auto it = std::find_if(relevance.begin(), relevance.end(),
                             [&](const ChartSeries& s) { return s.name == block; });
      if (it == relevance.end()) {
        it = relevance.insert(relevance.end(), ChartSeries());
        it->name = block;
      }
      it->x.push_back(epoch), it->y.push_back(score.is_number() ? score.get<double>() : NAN);
    }
  }
  ChartOptions options;
  options.title = "Loss per epoch: " + run_name;
  options.x_label = "epoch";
  options.whole_x = true;
  options.y_label = "loss";
  atomic_write_text(paths.loss_svg, line_chart(options, {train, val}));
  if (relevance.empty()) return;
  options.title = "Relevance score per block: " + run_name;
  options.y_label = "relevance score";
  options.legend_title = "block (modality subset)";
  atomic_write_text(paths.relevance_svg, line_chart(options, relevance));
}

}  // namespace mmfusion
