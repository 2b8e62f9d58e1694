#include "mmfusion/run_folder.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "mmfusion/errors.hpp"
#include "mmfusion/files.hpp"
#include "mmfusion/svg.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

RunPaths::RunPaths(std::string d) : dir(std::move(d)) {
  const fs::path p(dir);
  config = (p / "config.json").string();
  log = (p / "train.log").string();
  metrics = (p / "metrics.jsonl").string();
  results = (p / "results.json").string();
  loss_svg = (p / "loss.svg").string();
  relevance_svg = (p / "relevance.svg").string();
  checkpoints = (p / "checkpoints").string();
  last = (p / "checkpoints" / "last.pt").string();
  best = (p / "checkpoints" / "best.pt").string();
}

namespace {
bool is_empty_or_missing(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;
  return fs::is_directory(dir, ec) && fs::is_empty(dir, ec);
}
}  // namespace

std::string fresh_run_dir(const std::string& out, const std::string& name) {
  if (!out.empty()) {
    if (!is_empty_or_missing(out))
      throw ConfigError("--out " + out + ": the folder exists and is not empty; an earlier run "
                        "is never overwritten (choose another folder, or continue that run with "
                        "--resume " + (fs::path(out) / "checkpoints" / "last.pt").string() + ")");
    return out;
  }
  const std::string base = (fs::path("runs") / (name + "-" + timestamp())).string();
  std::string dir = base;
  for (int i = 2; !is_empty_or_missing(dir); ++i) dir = base + "-" + std::to_string(i);
  return dir;
}

std::string resume_run_dir(const std::string& checkpoint) {
  const fs::path parent = fs::absolute(checkpoint).parent_path();
  if (parent.filename() == "checkpoints" && fs::exists(parent.parent_path() / "config.json"))
    return parent.parent_path().lexically_relative(fs::current_path()).string();
  throw ConfigError("--resume " + checkpoint + ": cannot find its run folder (expected "
                    "DIR/checkpoints/NAME.pt beside DIR/config.json); pass --out DIR to "
                    "continue in a new folder");
}

void create_run_dir(const RunPaths& paths, bool with_checkpoints) {
  std::error_code ec;
  fs::create_directories(with_checkpoints ? paths.checkpoints : paths.dir, ec);
  if (ec) throw Error(paths.dir + ": cannot create the run folder: " + ec.message());
}

std::shared_ptr<spdlog::logger> make_logger(const std::string& log_file, const std::string& prefix) {
  std::vector<spdlog::sink_ptr> sinks{std::make_shared<spdlog::sinks::stderr_color_sink_mt>()};
  if (!log_file.empty())
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file, /*truncate=*/false));
  auto logger = std::make_shared<spdlog::logger>("mmfusion", sinks.begin(), sinks.end());
  logger->set_pattern("[%Y-%m-%d %H:%M:%S] [%^%l%$] " + prefix + "%v");
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return logger;
}

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
      auto it = std::find_if(relevance.begin(), relevance.end(), [&](const ChartSeries& s) { return s.name == block; });
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
  options.y_label = "loss";
  atomic_write_text(paths.loss_svg, line_chart(options, {train, val}));
  if (relevance.empty()) return;
  options.title = "Relevance score per block: " + run_name;
  options.y_label = "relevance score";
  atomic_write_text(paths.relevance_svg, line_chart(options, relevance));
}

}  // namespace mmfusion
