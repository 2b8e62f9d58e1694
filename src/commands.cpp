#include "mmfusion/commands.hpp"

#include <chrono>
#include <csignal>
#include <filesystem>
#include <optional>
#include <sstream>
#include <thread>

#include <spdlog/spdlog.h>

#include "mmfusion/checkpoint.hpp"
#include "mmfusion/config.hpp"
#include "mmfusion/data.hpp"
#include "mmfusion/distributed.hpp"
#include "mmfusion/errors.hpp"
#include "mmfusion/files.hpp"
#include "mmfusion/models.hpp"
#include "mmfusion/run_folder.hpp"
#include "mmfusion/runtime.hpp"
#include "mmfusion/step.hpp"
#include "mmfusion/trainer.hpp"
#include "mmfusion/version.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Keys a resumed run may change: they alter neither the model nor the data (cuda_graphs
// and tf32 change how a GPU runs the step; TF32 also rounds the matrix products' inputs).
void check_resume_overrides(const std::vector<std::string>& overrides) {
  static const std::vector<std::string> allowed{"train.epochs", "train.patience", "train.cuda_graphs",
                                                "train.tf32", "device", "threads"};
  for (const auto& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    std::string names;
    for (const auto& a : allowed) names += (names.empty() ? "" : ", ") + a;
    throw ConfigError("--set " + key + ": cannot be changed when resuming (it would change the "
                      "model, data or optimizer); allowed: " + names);
  }
}

// A run branched into a new folder (--resume CKPT --out DIR) starts with the best
// checkpoint it knows as its best.pt: the one it branched from when that is its best
// epoch, else the source folder's best.pt when it holds that epoch. Without it, a branch
// in which no epoch beats the known best would have no best.pt to report.
void seed_branch_best(const Checkpoint& from, const RunPaths& branch, spdlog::logger& log) {
  const int64_t best_epoch = from.progress.best_epoch;
  if (best_epoch == 0) return;  // nothing validated yet
  std::vector<std::string> candidates{from.path,
                                      (fs::path(from.path).parent_path() / "best.pt").string()};
  for (const auto& candidate : candidates) {
    std::error_code ec;
    if (!fs::is_regular_file(candidate, ec)) continue;
    const TrainProgress p = candidate == from.path ? from.progress : open_checkpoint(candidate).progress;
    if (p.epoch != best_epoch || p.best_epoch != best_epoch) continue;
    atomic_write(branch.best, [&](const std::string& tmp) {
      fs::copy_file(candidate, tmp, fs::copy_options::overwrite_existing);
    });
    log.info("branch: best so far is epoch {} (val_loss {:.6f}), copied from {}", best_epoch,
             from.progress.best_val_loss, candidate);
    return;
  }
  log.warn("branch: the best epoch {} is not in {} or beside it; best.pt will be the first epoch that improves",
           best_epoch, from.path);
}

// The regression target's columns, which every split must share.
int64_t target_columns(const DataSplits& data) {
  const int64_t k = data.train.target_dim();
  for (const Dataset* d : {&data.val, &data.test})
    if (d->target_dim() != k)
      throw Error("data: the splits' targets differ in columns (" + std::to_string(k) + " vs " +
                  std::to_string(d->target_dim()) + ")");
  return k;
}

}  // namespace

TrainOutcome run_train(const TrainArgs& args) {
  StopSignals signals;  // from the start: a signal during setup stops at the first step
  ExperimentConfig config;
  std::optional<Checkpoint> checkpoint;
  int64_t probe_step = 0;  // where the checkpoint stood when its config was read
  if (!args.resume.empty()) {
    check_resume_overrides(args.overrides);
    Checkpoint probe = open_checkpoint(args.resume);
    probe_step = probe.progress.global_step;
    json doc = to_json(probe.config);
    for (const auto& o : args.overrides) apply_override(doc, o);
    config = parse_config(doc);
  } else if (!args.config_doc.is_null()) {
    json doc = args.config_doc;
    for (const auto& o : args.overrides) apply_override(doc, o);
    config = parse_config_logged(doc);
  } else {
    config = load_config(args.config, args.overrides);
  }
  torch::Device device = resolve_device(config.device);
  apply_tf32(config.train.tf32);
  // Several processes (torchrun): join the group; rank 0 alone writes the run folder.
  const auto comm = join_process_group(config.distributed, device);
  const bool leader = !comm || comm->rank() == 0;
  if (comm && device.is_cuda() && (config.device == "auto" || config.device == "cuda"))
    device = resolve_device("cuda:" + std::to_string(local_rank()));  // one GPU per process
  // threads 0 = all hardware threads, shared among the processes on this machine.
  apply_threads(config.threads > 0 || !comm ? config.threads
                                            : std::max<int64_t>(1, available_cores() /
                                                                       processes_on_this_machine()));

  std::string dir;
  RunLock lock;  // one writer per run folder, until the run ends
  if (leader && !args.resume.empty()) {
    dir = args.out.empty() ? resume_run_dir(args.resume) : fresh_run_dir(args.out, config.name);
    lock = RunLock(dir);
    if (!args.out.empty()) fresh_run_dir(dir, config.name);  // still empty, now that it is ours
    if (args.out.empty()) {
      // Resuming from an older checkpoint in place would overwrite newer ones.
      const RunPaths existing(dir);
      if (fs::exists(existing.last) && !fs::equivalent(existing.last, args.resume) &&
          open_checkpoint(existing.last).progress.global_step > probe_step)
        throw ConfigError("--resume " + args.resume + ": " + existing.last +
                          " is newer; resuming in place would overwrite it (resume from it, or "
                          "pass --out DIR to branch into a new folder)");
    }
  } else if (leader) {
    dir = fresh_run_dir(args.out, config.name);
    lock = RunLock(dir);
    fresh_run_dir(dir, config.name);  // still empty, now that it is ours
  }
  // Read under the lock: a run that held the folder until now may have saved since.
  if (!args.resume.empty()) {
    checkpoint = open_checkpoint(args.resume, device);
    if (leader && checkpoint->progress.global_step != probe_step)
      throw Error("--resume " + args.resume + ": the checkpoint changed while this run started (another process "
                  "saved it); run the command again");
  }
  if (comm) dir = comm->share("run_dir", dir);

  const auto data_start = std::chrono::steady_clock::now();
  const DataSplits data = load_splits(config);  // before creating anything on disk
  const double data_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - data_start).count();
  resolve_num_classes(config, data);
  config.model.output_dim = resolve_output_dim(config, target_columns(data));
  // Statistics of the training split (a resumed run keeps the ones it was trained with);
  // rank 0's are every rank's.
  Scaling scaling = checkpoint ? checkpoint->scaling : Scaling::fit(config.data, data.train);
  if (comm)
    for (auto& [name, t] : scaling.named_tensors()) {  // t shares memory with `scaling`
      auto on_device = t.to(device);  // NCCL moves CUDA tensors only
      comm->broadcast(on_device, 0);
      t.copy_(on_device);
    }
  const RunPaths paths(dir);
  std::shared_ptr<spdlog::logger> log;
  if (leader) {
    create_run_dir(paths);
    atomic_write_text(paths.config, to_json(config).dump(2) + "\n");
    log = make_logger(paths.log);
  } else {
    log = make_logger("", fmt::format("[rank {}] ", comm->rank()));  // the other ranks: warnings and errors
    log->set_level(spdlog::level::warn);
  }
  if (comm)
    log->info("distributed: rank {} of {} ({}), {} threads each", comm->rank(), comm->world_size(),
              comm->backend(), torch::get_num_threads());
  if (checkpoint) {
    log->info("mmfusion {}: resuming {} at epoch {} (step {}) into {}", kVersion, args.resume,
              checkpoint->progress.epoch, checkpoint->progress.global_step, dir);
    if (leader && !args.out.empty()) seed_branch_best(*checkpoint, paths, *log);
  } else {
    log->info("mmfusion {}: run {} in {}", kVersion, config.name, dir);
  }
  const int64_t rows = data.train.size() + data.val.size() + data.test.size();
  if (config.data.source == DataSource::Synthetic)
    log->info("data: {} rows generated in {:.2f} s ({:.0f} samples/s, generator {}{})", rows, data_seconds,
              rows / std::max(data_seconds, 1e-9), config.data.synthetic.generator,
              config.data.synthetic.stream ? "; training rows streamed, these are validation, test and a sample" : "");
  else
    log->info("data: {} rows read in {:.2f} s", rows, data_seconds);

  torch::manual_seed(config.seed);  // model initialisation and dropout
  if (scaling.scales_features() || scaling.scales_target())
    log->info("standardize: {} features, {} target, {}", to_string(config.data.standardize),
              scaling.scales_target() ? "z-scored" : "unscaled",
              checkpoint ? "statistics from the checkpoint"
                         : fmt::format("fitted on the {} training rows", data.train.size()));
  Trainer trainer(config, data, device, paths, log, scaling);
  trainer.set_communicator(comm);
  if (checkpoint) trainer.restore(*checkpoint);
  trainer.fit(&stop_signal());
  if (!leader) return {dir, json::object(), false};
  TrainOutcome outcome{dir, trainer.write_results(), true};
  std::string summary;
  for (const auto& item : outcome.results["test"].items())
    if (item.key() != "count" && item.value().is_number_float())
      summary += fmt::format("  {} {:.4f}", item.key(), item.value().get<double>());
  log->info("best epoch {}: test{} -> {}", outcome.results["best_epoch"].get<int64_t>(), summary,
            paths.results);
  return outcome;
}

json run_eval(const EvalArgs& args) {
  const torch::Device device = resolve_device(args.device);
  Checkpoint checkpoint = open_checkpoint(args.checkpoint, device);
  const auto& config = checkpoint.config;
  apply_threads(config.threads);
  StepRunner runner(checkpoint.build_model(device), config.train);
  const bool classification = config.task == Task::Classification;
  const Dataset data = args.data.empty() ? load_split(config, parse_split(args.split))
                                         : read_data_file(args.data, config.data.modalities,
                                                          target_rule(config, /*required=*/true));
  if (!classification && data.target_dim() != config.model.output_dim)
    throw Error((args.data.empty() ? std::string("data") : args.data) + ": the target has " +
                std::to_string(data.target_dim()) + " column(s), the model predicts " +
                std::to_string(config.model.output_dim));
  json out = evaluate(runner, config.task, checkpoint.scaling, data, config.train.eval_batch_size, device);
  out["loss_name"] = to_string(config.train.loss);
  out["data"] = args.data.empty() ? json(args.split) : json(args.data);
  out["checkpoint"] = args.checkpoint;
  out["epoch"] = checkpoint.progress.epoch;
  return out;
}

json run_explain(const ExplainArgs& args) {
  const torch::Device device = resolve_device(args.device);
  Checkpoint checkpoint = open_checkpoint(args.checkpoint, device);
  const auto& config = checkpoint.config;
  // The folder first: a run that would be refused is refused before any work.
  fs::path out = args.out;
  if (out.empty()) {
    const fs::path dir = fs::path(args.checkpoint).parent_path();
    out = (dir.filename() == "checkpoints" ? dir.parent_path() : dir) / "explain";
  }
  refuse_overwrite((out / "explain.json").string(), args.force, "--out");
  apply_threads(config.threads);
  StepRunner runner(checkpoint.build_model(device), config.train);
  const Dataset data = args.data.empty()
                           ? load_split(config, parse_split(args.split))
                           : read_data_file(args.data, config.data.modalities, target_rule(config, /*required=*/false));
  ExplainOptions options = args.options;
  options.batch_size = config.train.eval_batch_size;
  json result = explain_model(runner, config.task, checkpoint.scaling, data, options, device);
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
      if (!t.is_object() || !t.contains("exact") || !t["exact"].is_boolean() || !t.contains("subsets") ||
          !t["subsets"].is_array())
        return false;
      return std::all_of(t["subsets"].begin(), t["subsets"].end(), [](const json& s) {
        return s.is_object() && s.contains("name") && s["name"].is_string() && s.contains("share") &&
               s["share"].is_number();
      });
    };
    if (truth.is_discarded() || !well_formed(truth))
      throw Error(truth_path(args.data) + ": not a truth file written by mmfusion synth (expected \"exact\" and "
                  "\"subsets\" of {\"name\", \"share\"})");
  }
  if (!truth.is_null()) {
    if (config.task == Task::Classification)
      truth["note"] = "the truth decomposes the continuous score the classes are cut from, not the probabilities";
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
      read_data_file(args.data, config.data.modalities, target_rule(config, /*required=*/false));
  const Scaling& scaling = checkpoint.scaling;
  const auto prediction =
      scaling.original_units(predict(runner, scaling.features(data), config.train.eval_batch_size, device)).cpu();
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
  for (int64_t j = 0; j < k; ++j) csv << (k == 1 ? ",prediction" : ",prediction_" + std::to_string(j));
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

json run_inspect(const std::string& path) {
  Checkpoint checkpoint = open_checkpoint(path);
  const auto& config = checkpoint.config;
  ModelPtr model = checkpoint.build_model(torch::kCPU);
  json params = json::object();
  for (const auto& [name, count] : parameter_counts(*model)) params[name] = count;
  json shapes = json::object();
  for (const auto& p : model->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  const auto& p = checkpoint.progress;
  json inspected = {{"file", path},
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
    throw ConfigError("data.source: synth needs \"synthetic\", got \"" + std::string(to_string(config.data.source)) +
                      "\"");
  const Dataset data = load_split(config, parse_split(args.split));  // labels for classification
  json truth = to_json(synthetic_truth(config.data, config.seed));  // before any file is written
  truth["data"] = fs::path(args.output).filename().string();
  write_data_file(data, args.output);
  atomic_write_text(truth_path(args.output), truth.dump(2) + "\n");
  return data.size();
}

json run_validate(const std::string& config, const std::vector<std::string>& overrides) {
  return to_json(load_config(config, overrides));
}

}  // namespace mmfusion
