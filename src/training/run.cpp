#include "mmfusion/training/run.hpp"

#include <chrono>
#include <filesystem>
#include <optional>
#include <sstream>

#include <spdlog/spdlog.h>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/base/version.hpp"
#include "mmfusion/config/config.hpp"
#include "mmfusion/config/config_io.hpp"
#include "mmfusion/config/config_keys.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "mmfusion/runtime/distributed.hpp"
#include "mmfusion/runtime/runtime.hpp"
#include "mmfusion/training/checkpoint.hpp"
#include "mmfusion/training/trainer.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Keys a resumed run may change (the key table's `resumable` rows): they alter neither
// the model nor the data.
void check_resume_overrides(const std::vector<std::string>& overrides) {
  for (const auto& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    const ConfigKey* row = find_key(key);
    if (row && row->resumable) continue;
    std::string names;
    for (const auto& k : config_keys())
      if (k.resumable) names += (names.empty() ? "" : ", ") + k.path;
    throw UsageError("--set " + key +
                      ": cannot be changed when resuming (it would change the "
                      "model, data or optimizer); allowed: " +
                      names);
  }
}

// A run branched into a new folder (--resume CKPT --out DIR) starts with the best
// checkpoint it knows as its best.pt: the one it branched from when that is its best
// epoch, else the source folder's best.pt when it holds that epoch. Without it, a branch
// in which no epoch beats the known best would have no best.pt to report.
void seed_branch_best(const Checkpoint& from, const RunPaths& branch, spdlog::logger& log) {
  const int64_t best_epoch = from.progress.best_epoch;
  if (best_epoch == 0) return;  // nothing validated yet
  std::vector<std::string> candidates{
      from.path, (fs::path(from.path).parent_path() / RunPaths::kBest).string()};
  for (const auto& candidate : candidates) {
    std::error_code ec;
    if (!fs::is_regular_file(candidate, ec)) continue;
    const TrainProgress p =
        candidate == from.path ? from.progress : open_checkpoint(candidate).progress;
    if (p.epoch != best_epoch || p.best_epoch != best_epoch) continue;
    atomic_copy(candidate, branch.best);
    log.info("branch: best so far is epoch {} (val_loss {:.6f}), copied from {}", best_epoch,
             from.progress.best_val_loss, candidate);
    return;
  }
  log.warn(
      "branch: the best epoch {} is not in {} or beside it; best.pt will be the first epoch that improves",
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

// The run's config: a checkpoint's (with the resumable overrides), a document (sweeps) or
// a file. `probe_step` is where a resumed checkpoint stood when its config was read.
ExperimentConfig resolve_config(const TrainArgs& args, int64_t& probe_step) {
  if (!args.resume.empty()) {
    check_resume_overrides(args.overrides);
    Checkpoint probe = open_checkpoint(args.resume);
    probe_step = probe.progress.global_step;
    json doc = to_json(probe.config);
    for (const auto& o : args.overrides) apply_override(doc, o);
    return parse_config(doc);
  }
  if (!args.config_doc.is_null()) {
    json doc = args.config_doc;
    for (const auto& o : args.overrides) apply_override(doc, o);
    return parse_config_logged(doc);
  }
  return load_config(args.config, args.overrides);
}

// Where the run executes: its device, TF32, its process group (several processes under
// torchrun: rank 0 alone writes the run folder) and its threads.
struct Placement {
  torch::Device device = torch::kCPU;
  std::shared_ptr<Communicator> comm;
  bool leader = true;
};
Placement place(const ExperimentConfig& config) {
  Placement p;
  p.device = resolve_device(config.device);
  apply_tf32(config.train.tf32);
  p.comm = join_process_group(config.distributed, p.device);
  p.leader = !p.comm || p.comm->rank() == 0;
  if (p.comm && p.device.is_cuda() && (config.device == "auto" || config.device == "cuda"))
    p.device = resolve_device("cuda:" + std::to_string(local_rank()));  // one GPU per process
  // threads 0 = all hardware threads, shared among the processes on this machine.
  apply_threads(config.threads > 0 || !p.comm
                    ? config.threads
                    : std::max<int64_t>(1, available_cores() / processes_on_this_machine()));
  return p;
}

// The leader's run folder, locked for this run: a fresh one, the resumed run's own, or a
// new branch (--resume with --out). Other ranks get "" (and the leader's name later).
std::string claim_folder(const TrainArgs& args, const ExperimentConfig& config, int64_t probe_step,
                         bool leader, RunLock& lock) {
  if (!leader) return "";
  if (args.resume.empty() || !args.out.empty()) {
    const std::string dir = fresh_run_dir(args.out, config.name);
    lock = RunLock(dir);
    fresh_run_dir(dir, config.name);  // still empty, now that it is ours
    return dir;
  }
  const std::string dir = resume_run_dir(args.resume);
  lock = RunLock(dir);
  // Resuming from an older checkpoint in place would overwrite newer ones.
  const RunPaths existing(dir);
  if (fs::exists(existing.last) && !fs::equivalent(existing.last, args.resume) &&
      open_checkpoint(existing.last).progress.global_step > probe_step)
    throw UsageError("--resume " + args.resume + ": " + existing.last +
                     " is newer; resuming in place would overwrite it (resume from it, or "
                     "pass --out DIR to branch into a new folder)");
  return dir;
}

// The training split's statistics (a resumed run keeps the ones it was trained with);
// rank 0's are every rank's.
Scaling fit_scaling(const ExperimentConfig& config, const DataSplits& data,
                    const std::optional<Checkpoint>& checkpoint, const Placement& where) {
  Scaling scaling = checkpoint ? checkpoint->scaling : Scaling::fit(config.data, data.train);
  if (where.comm)
    for (auto& [name, t] : scaling.named_tensors()) {  // t shares memory with `scaling`
      auto on_device = t.to(where.device);             // NCCL moves CUDA tensors only
      where.comm->broadcast(on_device, 0);
      t.copy_(on_device);
    }
  return scaling;
}

// The run folder's files and logger: the leader writes config.json and train.log, the
// other ranks log warnings and errors only.
std::shared_ptr<spdlog::logger> open_run(const RunPaths& paths, const ExperimentConfig& config,
                                         const Placement& where) {
  if (!where.leader) {
    auto log = make_logger("", fmt::format("[rank {}] ", where.comm->rank()));
    log->set_level(spdlog::level::warn);
    return log;
  }
  create_run_dir(paths);
  atomic_write_text(paths.config, to_json(config).dump(2) + "\n");
  return make_logger(paths.log);
}

// A run stopped by a failed write (a full disk) resumes in place from a consistent state:
// metrics.jsonl lines past the checkpoint's epoch (appended before a checkpoint that could
// not be saved) go, and a best.pt whose copy failed is taken again from last.pt when that
// is the best epoch (docs/checkpoints.md, "Full disks and failed writes").
void repair_after_failed_write(const Checkpoint& from, const RunPaths& paths, spdlog::logger& log) {
  const int64_t epoch = from.progress.epoch;
  std::error_code ec;
  if (fs::exists(paths.metrics, ec)) {
    const std::vector<char> bytes = read_bytes(paths.metrics);
    std::istringstream in(std::string(bytes.begin(), bytes.end()));
    std::string kept;
    int64_t dropped = 0;
    for (std::string line; std::getline(in, line);) {
      const json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (record.is_object() && record.value("epoch", int64_t(0)) > epoch) {
        ++dropped;
        continue;
      }
      kept += line + "\n";
    }
    if (dropped > 0) {
      atomic_write_text(paths.metrics, kept);
      log.info("{}: dropped {} line(s) past epoch {}, the epoch {} holds", paths.metrics, dropped,
               epoch, from.path);
    }
  }
  const int64_t best = from.progress.best_epoch;
  if (best == epoch && best > 0 && fs::equivalent(from.path, paths.last, ec) &&
      (!fs::exists(paths.best, ec) || open_checkpoint(paths.best).progress.epoch != best)) {
    atomic_copy(paths.last, paths.best);
    log.info("{}: copied again from {} (epoch {}, the best so far)", paths.best, paths.last, best);
  }
}

void log_start(spdlog::logger& log, const TrainArgs& args, const ExperimentConfig& config,
               const std::optional<Checkpoint>& checkpoint, const std::string& dir,
               const Placement& where) {
  if (where.comm)
    log.info("distributed: rank {} of {} ({}), {} threads each", where.comm->rank(),
             where.comm->world_size(), where.comm->backend(), torch::get_num_threads());
  if (checkpoint)
    log.info("mmfusion {}: resuming {} at epoch {} (step {}) into {}", kVersion, args.resume,
             checkpoint->progress.epoch, checkpoint->progress.global_step, dir);
  else
    log.info("mmfusion {}: run {} in {}", kVersion, config.name, dir);
}

void log_data(spdlog::logger& log, const ExperimentConfig& config, const DataSplits& data,
              double seconds, const Scaling& scaling, bool from_checkpoint) {
  const int64_t rows = data.train.size() + data.val.size() + data.test.size();
  if (config.data.source == DataSource::Synthetic)
    log.info("data: {} rows generated in {:.2f} s ({:.0f} samples/s, generator {}{})", rows,
             seconds, rows / std::max(seconds, 1e-9), config.data.synthetic.generator,
             config.data.synthetic.stream
                 ? "; training rows streamed, these are validation, test and a sample"
                 : "");
  else
    log.info("data: {} rows read in {:.2f} s", rows, seconds);
  if (scaling.scales_features() || scaling.scales_target())
    log.info("standardize: {} features, {} target, {}", to_string(config.data.standardize),
             scaling.scales_target() ? "z-scored" : "unscaled",
             from_checkpoint ? "statistics from the checkpoint"
                             : fmt::format("fitted on the {} training rows", data.train.size()));
}

// data.nonfinite "zero": how many NaN or Inf values were put to 0, per split and modality,
// in the log and in nonfinite.json ({"train": {"audio": {"values": n, "rows": r}}, ...}).
void report_nonfinite(spdlog::logger& log, const ExperimentConfig& config, const DataSplits& data,
                      const RunPaths& paths, bool leader) {
  if (config.data.nonfinite != NonFinite::Zero) return;
  json out = json::object();
  int64_t total = 0;
  for (const auto& [name, split] :
       {std::pair<const char*, const Dataset*>{"train", &data.train}, {"val", &data.val},
        {"test", &data.test}}) {
    json counts = json::object();
    std::string line;
    for (size_t m = 0; m < split->names.size(); ++m) {
      const bool any = m < split->nonfinite.size() && split->nonfinite[m].defined();
      const int64_t values = any ? split->nonfinite[m].sum().item<int64_t>() : 0;
      const int64_t rows = any ? (split->nonfinite[m] > 0).sum().item<int64_t>() : 0;
      counts[split->names[m]] = {{"values", values}, {"rows", rows}};
      if (values > 0)
        line += fmt::format("{}{} {} in {} rows", line.empty() ? "" : ", ", split->names[m],
                            values, rows);
      total += values;
    }
    out[name] = counts;
    log.info("nonfinite: {}: {}", name, line.empty() ? "none" : line + " put to 0");
  }
  if (leader) atomic_write_text(paths.nonfinite, out.dump(2) + "\n");
  if (total > 0)
    log.info("nonfinite: {} NaN or Inf feature values put to 0 (data.nonfinite \"zero\") -> {}",
             total, paths.nonfinite);
}

void log_results(spdlog::logger& log, const TrainOutcome& outcome, const RunPaths& paths) {
  std::string summary;
  for (const auto& item : outcome.results["test"].items())
    if (item.key() != "count" && item.value().is_number_float())
      summary += fmt::format("  {} {:.4f}", item.key(), item.value().get<double>());
  log.info("best epoch {}: test{} -> {}", outcome.results["best_epoch"].get<int64_t>(), summary,
           paths.results);
}

// The run in its folder: the log, training, results.
TrainOutcome train_in(const TrainArgs& args, ExperimentConfig& config, const Placement& where,
                      std::optional<Checkpoint>& checkpoint, Scaling& scaling,
                      const DataSplits& data, double data_seconds, const RunPaths& paths,
                      const std::string& dir) {
  const auto log = open_run(paths, config, where);
  log_start(*log, args, config, checkpoint, dir, where);
  if (checkpoint && where.leader && !args.out.empty()) seed_branch_best(*checkpoint, paths, *log);
  if (checkpoint && where.leader && args.out.empty())
    repair_after_failed_write(*checkpoint, paths, *log);
  log_data(*log, config, data, data_seconds, scaling, checkpoint.has_value());
  report_nonfinite(*log, config, data, paths, where.leader);

  torch::manual_seed(config.train.seed);  // model initialisation and dropout
  Trainer trainer(config, data, where.device, paths, log, scaling);
  trainer.set_communicator(where.comm);
  if (checkpoint) trainer.restore(*checkpoint);
  trainer.fit(&stop_signal());
  if (!where.leader) return {dir, json::object(), false};
  TrainOutcome outcome{dir, trainer.write_results(), true};
  log_results(*log, outcome, paths);
  return outcome;
}

}  // namespace

TrainOutcome run_train(const TrainArgs& args) {
  StopSignals signals;  // from the start: a signal during setup stops at the first step
  int64_t probe_step = 0;
  ExperimentConfig config = resolve_config(args, probe_step);
  const Placement where = place(config);
  RunLock lock;  // one writer per run folder, until the run ends
  std::string dir = claim_folder(args, config, probe_step, where.leader, lock);
  // Read under the lock: a run that held the folder until now may have saved since.
  std::optional<Checkpoint> checkpoint;
  if (!args.resume.empty()) {
    checkpoint = open_checkpoint(args.resume, where.device);
    if (where.leader && checkpoint->progress.global_step != probe_step)
      throw Error("--resume " + args.resume +
                  ": the checkpoint changed while this run started (another process "
                  "saved it); run the command again");
  }
  if (where.comm) dir = where.comm->share("run_dir", dir);

  const auto data_start = std::chrono::steady_clock::now();
  const DataSplits data = load_splits(config);  // before creating anything on disk
  const double data_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - data_start).count();
  resolve_num_classes(config, data);
  config.model.output_dim = resolve_output_dim(config, target_columns(data));
  Scaling scaling = fit_scaling(config, data, checkpoint, where);

  const RunPaths paths(dir);
  try {
    return train_in(args, config, where, checkpoint, scaling, data, data_seconds, paths, dir);
  } catch (const WriteError& e) {
    // A fresh run that failed to write before its first checkpoint (its config.json, its
    // first log lines) leaves a folder that --out refuses; say which to remove.
    const std::string what = e.what();
    std::error_code ec;
    if (!where.leader || !args.resume.empty() || fs::exists(paths.last, ec) ||
        what.find("run the same command again") != std::string::npos)
      throw;
    throw WriteError(what + "; no checkpoint of this run was saved (remove " + dir +
                     " and run the same command again once there is space)");
  }
}

}  // namespace mmfusion
