#include "mmfusion/cli/commands.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>

#include <spdlog/spdlog.h>

#include "mmfusion/training/checkpoint.hpp"
#include "mmfusion/config/config.hpp"
#include "mmfusion/config/config_io.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/data/sequence.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/models/models.hpp"
#include "mmfusion/io/pickle.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "mmfusion/runtime/runtime.hpp"
#include "mmfusion/training/evaluation.hpp"
#include "mmfusion/training/step.hpp"
#include "mmfusion/training/trainer.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
// The rows a command evaluates: the checkpoint config's split, or a data file read as that
// config reads its files (`targets`: whether the file must hold the target).
Dataset rows_to_evaluate(const ExperimentConfig& config, const std::string& data_file,
                         const std::string& split, bool targets) {
  if (data_file.empty()) return load_split(config, parse_split(split));
  return read_data_file(data_file, config.data.modalities,
                        read_rule(config, /*required=*/targets, /*evaluating=*/true));
}
}  // namespace

json run_eval(const EvalArgs& args) {
  const torch::Device device = resolve_device(args.device);
  Checkpoint checkpoint = open_checkpoint(args.checkpoint, device);
  const auto& config = checkpoint.config;
  apply_threads(config.threads);
  StepRunner runner(checkpoint.build_model(device), config.train);
  const bool classification = config.task == Task::Classification;
  const Dataset data = rows_to_evaluate(config, args.data, args.split, /*targets=*/true);
  if (!classification && data.target_dim() != config.model.output_dim)
    throw Error((args.data.empty() ? std::string("data") : args.data) + ": the target has " +
                std::to_string(data.target_dim()) + " column(s), the model predicts " +
                std::to_string(config.model.output_dim));
  json out =
      evaluate(runner, config.task, checkpoint.scaling, data, config.train.eval_batch_size, device,
               config.metrics.set);
  out["loss_name"] = to_string(config.train.loss);
  out["data"] = args.data.empty() ? json(args.split) : json(args.data);
  out["checkpoint"] = args.checkpoint;
  out["epoch"] = checkpoint.progress.epoch;
  return out;
}

namespace {
// --out, or the folder `name` in the checkpoint's run folder (explain/, robustness/).
fs::path output_folder(const std::string& checkpoint, const std::string& out, const char* name) {
  if (!out.empty()) return out;
  const fs::path dir = fs::path(checkpoint).parent_path();
  return (dir.filename() == RunPaths::kCheckpoints ? dir.parent_path() : dir) / name;
}
}  // namespace

json run_robustness(const RobustnessArgs& args) {
  const torch::Device device = resolve_device(args.device);
  Checkpoint checkpoint = open_checkpoint(args.checkpoint, device);
  const auto& config = checkpoint.config;
  const fs::path out = output_folder(args.checkpoint, args.out, "robustness");
  refuse_overwrite((out / "robustness.json").string(), args.force, args.out.empty() ? "" : "--out");
  json baseline;
  if (!args.baseline.empty()) {  // read first: a bad one is refused before any work
    const auto bytes = read_bytes(args.baseline);
    baseline = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
  }
  apply_threads(config.threads);
  StepRunner runner(checkpoint.build_model(device), config.train);
  const Dataset data = rows_to_evaluate(config, args.data, args.split, /*targets=*/true);
  RobustnessOptions options = args.options;
  options.batch_size = config.train.eval_batch_size;
  options.missing_encodings = config.train.modality_dropout > 0;
  json result = robustness_curves(runner, config.task, checkpoint.scaling, data, options, device,
                                  config.data.modalities, config.metrics.set);
  if (!args.baseline.empty()) attach_baseline(result, baseline, args.baseline);
  result["model"] = to_string(config.model.type);
  result["checkpoint"] = args.checkpoint;
  result["data"] = args.data.empty() ? json(args.split) : json(args.data);
  fs::create_directories(out);
  atomic_write_text((out / "robustness.json").string(), result.dump(2) + "\n");
  atomic_write_text((out / "robustness.csv").string(), robustness_csv(result));
  atomic_write_text((out / "robustness.svg").string(), robustness_svg(result));
  result["out"] = out.string();
  return result;
}

json run_explain(const ExplainArgs& args) {
  const torch::Device device = resolve_device(args.device);
  Checkpoint checkpoint = open_checkpoint(args.checkpoint, device);
  const auto& config = checkpoint.config;
  // The folder first: a run that would be refused is refused before any work.
  const fs::path out = output_folder(args.checkpoint, args.out, "explain");
  refuse_overwrite((out / "explain.json").string(), args.force, args.out.empty() ? "" : "--out");
  apply_threads(config.threads);
  StepRunner runner(checkpoint.build_model(device), config.train);
  const Dataset data = rows_to_evaluate(config, args.data, args.split, /*targets=*/false);
  ExplainOptions options = args.options;
  options.batch_size = config.train.eval_batch_size;
  json result = explain_model(runner, config.task, checkpoint.scaling, data, options, device,
                              config.data.modalities);
  result["model"] = to_string(config.model.type);
  result["checkpoint"] = args.checkpoint;
  result["data"] = args.data.empty() ? json(args.split) : json(args.data);

  // The truth: the config's generator for its own splits, the file synth wrote beside a
  // data file.
  json truth;
  if (args.data.empty() && config.data.source == DataSource::Synthetic) {
    truth = to_json(synthetic_truth(config.data, config.seed));
  } else if (!args.data.empty() && fs::exists(truth_path(args.data))) {
    const auto bytes = read_bytes(truth_path(args.data));
    truth = json::parse(bytes.begin(), bytes.end(), nullptr, /*allow_exceptions=*/false);
    auto well_formed = [](const json& t) {
      if (!t.is_object() || !t.contains("exact") || !t["exact"].is_boolean() ||
          !t.contains("subsets") || !t["subsets"].is_array())
        return false;
      return std::all_of(t["subsets"].begin(), t["subsets"].end(), [](const json& s) {
        return s.is_object() && s.contains("name") && s["name"].is_string() &&
               s.contains("share") && s["share"].is_number();
      });
    };
    if (truth.is_discarded() || !well_formed(truth))
      throw Error(truth_path(args.data) +
                  ": not a truth file written by mmfusion synth (expected \"exact\" and "
                  "\"subsets\" of {\"name\", \"share\"})");
  }
  if (!truth.is_null()) {
    if (config.task == Task::Classification)
      truth["note"] =
          "the truth decomposes the continuous score the classes are cut from, not the probabilities";
    attach_truth(result, truth);
  }
  fs::create_directories(out);
  result["out"] = out.string();
  atomic_write_text((out / "explain.json").string(), result.dump(2) + "\n");
  atomic_write_text((out / "explain.csv").string(), explain_csv(result));
  atomic_write_text((out / "explain.svg").string(), explain_svg(result));
  return result;
}

int64_t run_predict(const PredictArgs& args) {
  refuse_overwrite(args.output, args.force);
  const torch::Device device = resolve_device(args.device);
  Checkpoint checkpoint = open_checkpoint(args.checkpoint, device);
  const auto& config = checkpoint.config;
  apply_threads(config.threads);
  StepRunner runner(checkpoint.build_model(device), config.train);
  const Dataset data =
      read_data_file(args.data, config.data.modalities, read_rule(config, /*required=*/false, /*evaluating=*/true));
  const Scaling& scaling = checkpoint.scaling;
  const auto prediction = scaling
                              .original_units(predict(runner, scaling.features(data),
                                                      config.train.eval_batch_size, device))
                              .cpu();
  const bool with_target = data.target.defined();
  std::ostringstream csv;
  if (config.task == Task::Classification) {
    // index, predicted class, [target,] one probability per class.
    const auto probs = torch::softmax(prediction.to(torch::kFloat64), 1).contiguous();
    const auto labels = prediction.argmax(1);
    const int64_t k = probs.size(1);
    csv << "index,prediction" << (with_target ? ",target" : "");
    for (int64_t j = 0; j < k; ++j) csv << ",p_" << j;
    csv << "\n";
    for (int64_t i = 0; i < data.size(); ++i) {
      csv << i << ',' << labels[i].item<int64_t>();
      if (with_target) csv << ',' << data.target[i].item<int64_t>();
      for (int64_t j = 0; j < k; ++j) csv << ',' << format_number(probs[i][j].item<double>());
      csv << "\n";
    }
    atomic_write_text(args.output, csv.str());
    return data.size();
  }
  const int64_t k = prediction.size(1);

  csv << "index";
  for (int64_t j = 0; j < k; ++j)
    csv << (k == 1 ? ",prediction" : ",prediction_" + std::to_string(j));
  if (with_target)
    for (int64_t j = 0; j < data.target_dim(); ++j)
      csv << (data.target_dim() == 1 ? ",target" : ",target_" + std::to_string(j));
  csv << "\n";
  const auto p = prediction.to(torch::kFloat64).contiguous();
  const auto t = with_target ? data.target.to(torch::kFloat64).contiguous() : torch::Tensor();
  const double* pp = p.data_ptr<double>();
  const double* tp = with_target ? t.data_ptr<double>() : nullptr;
  for (int64_t i = 0; i < data.size(); ++i) {
    csv << i;
    for (int64_t j = 0; j < k; ++j) csv << ',' << format_number(pp[i * k + j]);
    if (with_target)
      for (int64_t j = 0; j < data.target_dim(); ++j)
        csv << ',' << format_number(tp[i * data.target_dim() + j]);
    csv << "\n";
  }
  atomic_write_text(args.output, csv.str());
  return data.size();
}

std::string run_inspect_data(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(path + ": no such file");
  const auto start = std::chrono::steady_clock::now();
  const MappedFile file(path);
  const pickle::ValuePtr root = pickle::parse(file.data(), file.size(), path);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  char line[160];
  std::snprintf(line, sizeof line, "read %.1f MB in %.2f s (%.0f MB/s)\n", double(file.size()) / 1e6,
                seconds, seconds > 0 ? double(file.size()) / 1e6 / seconds : 0.0);
  return pickle::describe(root) + line;
}

std::string run_inspect_config_data(const std::string& config_path,
                                    const std::vector<std::string>& overrides) {
  const ExperimentConfig config = load_config(config_path, overrides);
  apply_threads(config.threads);  // as train reads its data
  const double before_mb = memory_usage().rss_mb;
  const auto start = std::chrono::steady_clock::now();
  const DataSplits data = load_splits(config);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double peak_mb = memory_usage().peak_rss_mb;
  std::ostringstream out;
  double kept = 0;
  for (const auto& [name, split] :
       {std::pair<const char*, const Dataset*>{"train", &data.train}, {"val", &data.val},
        {"test", &data.test}}) {
    out << name << ": " << split->size() << " rows (" << split->origin << ")\n";
    for (size_t m = 0; m < split->names.size(); ++m) {
      const ModalityConfig& mc = config.data.modalities[m];
      const torch::Tensor& f = split->features[m];
      kept += double(f.nbytes());
      out << "  " << split->names[m] << ": ";
      if (mc.sequence)
        out << "sequence of " << sequence::steps(f, mc.dim) << " steps x " << mc.dim;
      else
        out << mc.dim << " features";
      if (m < split->nonfinite.size() && split->nonfinite[m].defined())
        out << ", " << split->nonfinite[m].sum().item<int64_t>() << " NaN/Inf values put to 0";
      out << "\n";
    }
    if (split->target.defined()) {
      kept += double(split->target.nbytes());
      out << "  target: " << c10::str(split->target.sizes()) << " "
          << c10::toString(split->target.scalar_type()) << "\n";
    }
  }
  std::error_code ec;
  const double file_mb = config.data.source == DataSource::File
                             ? double(fs::file_size(config.data.path, ec)) / 1e6
                             : 0.0;
  char line[256];
  std::snprintf(line, sizeof line, "kept %.1f MB of arrays; read in %.2f s", kept / 1e6, seconds);
  out << line;
  if (file_mb > 0 && !ec) {
    std::snprintf(line, sizeof line, " from a %.1f MB file (%.0f MB/s)", file_mb,
                  seconds > 0 ? file_mb / seconds : 0.0);
    out << line;
  }
  std::snprintf(line, sizeof line,
                "\npeak memory %.1f MB above the %.1f MB the process held before reading: %.2fx the "
                "arrays kept\n",
                (peak_mb - before_mb) * 1.048576, before_mb * 1.048576,
                kept > 0 ? (peak_mb - before_mb) * 1048576.0 / kept : 0.0);
  out << line;
  return out.str();
}

json run_inspect(const std::string& path) {
  Checkpoint checkpoint = open_checkpoint(path);
  const auto& config = checkpoint.config;
  ModelPtr model = checkpoint.build_model(torch::kCPU);
  json params = json::object();
  for (const auto& [name, count] : parameter_counts(*model)) params[name] = count;
  json shapes = json::object();
  for (const auto& p : model->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  const auto& p = checkpoint.progress;
  json inspected = {
      {"file", path},
      {"format", checkpoint.meta["format"]},
      {"format_version", checkpoint.meta["format_version"]},
      {"mmfusion_version", checkpoint.meta["mmfusion_version"]},
      {"epoch", p.epoch},
      {"epoch_step", p.epoch_step},
      {"global_step", p.global_step},
      {"best_val_loss", std::isfinite(p.best_val_loss) ? json(p.best_val_loss) : json(nullptr)},
      {"best_epoch", p.best_epoch},
      {"has_optimizer_state", checkpoint.has_optimizer()},
      {"scaling", checkpoint.scaling.summary()},
      {"parameters", params},
      {"parameter_shapes", shapes},
      {"config", to_json(config)}};
  if (const json scores = relevance_json(*model); !scores.empty()) inspected["relevance"] = scores;
  return inspected;
}

std::string truth_path(const std::string& data_file) {
  return fs::path(data_file).replace_extension(".truth.json").string();
}

int64_t run_synth(const SynthArgs& args) {
  refuse_overwrite(args.output, args.force);
  refuse_overwrite(truth_path(args.output), args.force);
  const ExperimentConfig config = load_config(args.config, args.overrides);
  if (config.data.source != DataSource::Synthetic)
    throw ConfigError("data.source: synth needs \"synthetic\", got \"" +
                      std::string(to_string(config.data.source)) + "\"");
  const Dataset data = load_split(config, parse_split(args.split));  // labels for classification
  json truth = to_json(synthetic_truth(config.data, config.seed));   // before any file is written
  truth["data"] = fs::path(args.output).filename().string();
  write_data_file(data, args.output, config.data.modalities);
  atomic_write_text(truth_path(args.output), truth.dump(2) + "\n");
  return data.size();
}

json run_validate(const std::string& config, const std::vector<std::string>& overrides) {
  return to_json(load_config(config, overrides));
}

}  // namespace mmfusion
