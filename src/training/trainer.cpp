#include "mmfusion/training/trainer.hpp"

#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <spdlog/spdlog.h>

#include "mmfusion/runtime/distributed.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/training/charts.hpp"
#include "mmfusion/training/graph_step.hpp"
#include "mmfusion/training/losses.hpp"
#include "mmfusion/training/metrics.hpp"
#include "mmfusion/training/optim.hpp"
#include "mmfusion/runtime/runtime.hpp"
#include "mmfusion/training/evaluation.hpp"
#include "mmfusion/training/step.hpp"
#include "mmfusion/base/version.hpp"
#include "mmfusion/config/config_io.hpp"

namespace mmfusion {

// The epoch shuffles' generator is seeded with the run's seed xor this constant, so that
// it draws other numbers than the generators seeded with the seed itself.
constexpr uint64_t kShuffleStream = 0x5851F42D4C957F2DULL;

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

json to_json(const EpochRecord& r) {
  json out = {{"epoch", r.epoch},
              {"train_loss", r.train_loss},
              {"val_loss", r.val_loss},
              {"lr", r.lr},
              {"seconds", r.seconds},
              {"samples_per_s", r.samples_per_s},
              {"global_step", r.global_step},
              {"rss_mb", r.rss_mb},
              {"peak_rss_mb", r.peak_rss_mb}};
  for (const auto& item : r.val.items())
    if (item.key() != metric::kCount) out[metric::kValPrefix + item.key()] = item.value();
  if (!r.penalty.is_null()) out["penalty"] = r.penalty;
  if (!r.relevance.empty()) out["relevance"] = r.relevance;
  return out;
}

Trainer::Trainer(ExperimentConfig config, const DataSplits& data, torch::Device device,
                 RunPaths paths, std::shared_ptr<spdlog::logger> logger, Scaling scaling)
    : config_(std::move(config)),
      device_(device),
      paths_(std::move(paths)),
      log_(std::move(logger)),
      scaling_(std::move(scaling)),
      shuffle_gen_(at::detail::createCPUGenerator(config_.train.seed ^ kShuffleStream)) {
  // Scaled once: training sees scaled features and targets; validation and test keep
  // their targets in their own units (score() compares there).
  // Streaming: no training split is held, only one batch of it at a time.
  if (config_.data.source == DataSource::Synthetic && config_.data.synthetic.stream)
    stream_ = std::make_unique<TrainingStream>(config_);
  else
    train_ = scaling_.features(data.train).to(device_);
  val_ = scaling_.features(data.val).to(device_);
  test_ = scaling_.features(data.test).to(device_);
  // A window of whole batches: the epoch's order is gathered (or, streaming, generated)
  // a window at a time, so the training split is held once, not twice as with a whole
  // shuffled copy, while a gather per batch would cost a fifth of the speed at batch 32.
  const int64_t batch = config_.train.batch_size;
  const int64_t buffer_rows = std::min(train_rows(), (kWindowRows + batch - 1) / batch * batch);
  const Dataset& shapes = stream_ ? data.train : train_;
  for (const auto& f : shapes.features)
    shuffled_.push_back(torch::empty({buffer_rows, f.size(1)}, f.options().device(device_)));
  auto target_shape = shapes.target.sizes().vec();
  target_shape[0] = buffer_rows;
  shuffled_target_ = torch::empty(target_shape, shapes.target.options().device(device_));
  if (!stream_) train_.target = scaling_.target(train_.target);
  model_ = make_model(model_config(config_), config_.data.modalities, config_.model.output_dim);
  model_->to(device_);
  build_steps();
}

Trainer::~Trainer() = default;

void Trainer::build_steps() {
  graph_.reset();
  optimizer_ = make_optimizer(config_.train, *model_);
  step_ = std::make_unique<StepRunner>(model_, config_.train);
  if (comm_)
    why_eager_ = "distributed training exchanges gradients between steps";
  else
    graph_ = GraphedTrainStep::make(config_.train, *step_, *optimizer_, device_, &why_eager_);
}

void Trainer::restore(Checkpoint& checkpoint) {
  checkpoint.load_model(*model_);
  model_->to(device_);
  // Loading replaced the parameters' storage: build the optimizer (a flat one views them
  // in its own buffer) and the steps again over the loaded values, then restore its state.
  build_steps();
  checkpoint.load_optimizer(*optimizer_);
  progress_ = checkpoint.progress;
  const RngStates rng = checkpoint.rng();
  if (rng.shuffle.defined()) {
    std::lock_guard<std::mutex> lock(shuffle_gen_.mutex());
    shuffle_gen_.set_state(rng.shuffle);
  }
  restore_default_rng(rng, device_);
}

void Trainer::save(const std::string& path) {
  if (!is_leader()) return;  // rank 0 alone writes the run folder
  save_checkpoint(path, config_, progress_, *model_, optimizer_.get(),
                  capture_default_rng(device_, shuffle_epoch_start_), scaling_);
  if (path == paths_.last) saved_epoch_ = progress_.epoch;
}

void Trainer::stop_after_failed_write(const std::string& what) const {
  const std::string kept =
      saved_epoch_ >= 0
          ? fmt::format(
                "{} holds epoch {} (continue with: mmfusion train --resume {} once there "
                "is space)",
                paths_.last, saved_epoch_, paths_.last)
          : "no checkpoint of this run was saved (remove " + paths_.dir +
                " and run the same command again once there is space)";
  throw WriteError(what + "; the run stopped: " + kept);
}

void Trainer::train_epoch(const std::atomic<int>* stop) {
  const auto& t = config_.train;
  const int64_t n = train_rows();
  const int64_t steps = (n + t.batch_size - 1) / t.batch_size;
  {
    std::lock_guard<std::mutex> lock(shuffle_gen_.mutex());
    shuffle_epoch_start_ = shuffle_gen_.get_state();
  }
  // One permutation per epoch (a stream's rows are fresh and independent: nothing to shuffle).
  if (!stream_) perm_ = torch::randperm(n, shuffle_gen_, torch::kInt64).to(device_);
  window_ = window_end_ = 0;

  const bool show_progress = ::isatty(STDERR_FILENO) && steps > 1;
  auto last_draw = Clock::now();
  model_->train();
  // The CUDA graph keeps the loss on the device; it is read back only to be shown, saved
  // or checked at the end of the epoch.
  if (graph_) graph_->set_loss_sum(progress_.epoch_loss_sum);
  auto read_loss_sum = [&] {
    if (graph_) progress_.epoch_loss_sum = graph_->loss_sum();
  };
  // Before anything is saved: the graph checks nothing per step, so a non-finite loss
  // or parameter is found here, and the last good checkpoint stays.
  auto check_graph = [&] {
    if (!graph_) return;
    read_loss_sum();
    const std::string where = "in epoch " + std::to_string(progress_.epoch + 1) +
                              " (the CUDA graph step checks its loss and parameters once an epoch)";
    if (!std::isfinite(progress_.epoch_loss_sum)) diverged(where, "loss");
    if (!torch::isfinite(dynamic_cast<FlatAdam&>(*optimizer_).flat_parameters()).all().item<bool>())
      diverged(where, "a parameter");
  };
  for (int64_t step = progress_.epoch_step; step < steps; ++step) {
    const int64_t b0 = step * t.batch_size, b1 = std::min(n, b0 + t.batch_size);
    bool stop_now = stop && stop->load() != 0;
    load_batch(b0, b1);
    if (graph_) {
      graph_->run(shuffled_rows(b0, b1), shuffled_targets(b0, b1));
    } else {
      progress_.epoch_loss_sum += eager_step(step, b0, b1, stop_now) * static_cast<double>(b1 - b0);
    }
    progress_.epoch_samples += b1 - b0;
    progress_.epoch_step = step + 1;
    if (const auto change = threads_.poll())
      log_->info("threads {} -> {}: other processes keep {:.1f} of the {} cores busy", change->from,
                 change->to, change->others, available_cores());
    progress_.global_step += 1;

    if (stop_now && step + 1 < steps) {
      if (show_progress) std::fputs("\r\033[K", stderr);
      check_graph();
      save(paths_.last);
      throw Interrupted("interrupted at epoch " + std::to_string(progress_.epoch + 1) + ", step " +
                        std::to_string(step + 1) + "; saved " + paths_.last +
                        " (continue with: mmfusion train --resume " + paths_.last + ")");
    }
    if (show_progress && Clock::now() - last_draw > std::chrono::milliseconds(200)) {
      last_draw = Clock::now();
      read_loss_sum();
      std::fprintf(stderr, "\r\033[Kepoch %lld: step %lld/%lld  loss %.5g",
                   static_cast<long long>(progress_.epoch + 1), static_cast<long long>(step + 1),
                   static_cast<long long>(steps),
                   progress_.epoch_loss_sum / progress_.epoch_samples);
      std::fflush(stderr);
    }
  }
  if (show_progress) std::fputs("\r\033[K", stderr);
  check_graph();
}

std::vector<torch::Tensor> Trainer::shuffled_rows(int64_t r0, int64_t r1) const {
  std::vector<torch::Tensor> rows;
  rows.reserve(shuffled_.size());
  for (const auto& f : shuffled_) rows.push_back(f.slice(0, r0 - window_, r1 - window_));
  return rows;
}

torch::Tensor Trainer::shuffled_targets(int64_t r0, int64_t r1) const {
  return shuffled_target_.slice(0, r0 - window_, r1 - window_);
}

int64_t Trainer::train_rows() const { return stream_ ? stream_->rows_per_epoch() : train_.size(); }

void Trainer::load_batch(int64_t b0, int64_t b1) {
  if (b0 >= window_ && b1 <= window_end_) return;
  // The next window, from the batch on (a resumed run starts one mid-epoch).
  const int64_t w1 = std::min(train_rows(), b0 + shuffled_target_.size(0));
  window_ = b0, window_end_ = w1;
  if (!stream_) {
    const auto rows = perm_.slice(0, b0, w1);
    for (size_t m = 0; m < shuffled_.size(); ++m) {
      auto out = shuffled_[m].slice(0, 0, w1 - b0);
      torch::index_select_out(out, train_.features[m], 0, rows);
    }
    auto target = shuffled_target_.slice(0, 0, w1 - b0);
    torch::index_select_out(target, train_.target, 0, rows);
    return;
  }
  // Made from (seed, epoch, rows) alone: a resumed run gets the same rows, and every
  // rank of a data-parallel run the same global batch (each trains its shard of it).
  Dataset rows = scaling_.features(stream_->rows(progress_.epoch, b0, w1));
  for (size_t m = 0; m < shuffled_.size(); ++m)
    shuffled_[m].slice(0, 0, w1 - b0).copy_(rows.features[m]);
  shuffled_target_.slice(0, 0, w1 - b0).copy_(scaling_.target(rows.target));
}

double Trainer::eager_step(int64_t step, int64_t b0, int64_t b1, bool& stop_now) {
  // Data parallel: this rank's contiguous shard of the global batch; its mean loss is
  // weighted by its share, and the summed gradients are those of the global mean (except
  // through batch norms, which see their rank's shard: there is no synchronised batch norm).
  const int rank = comm_ ? comm_->rank() : 0, world = comm_ ? comm_->world_size() : 1;
  const auto [s0, s1] = shard_of(b0, b1, rank, world);
  clear_gradients(*optimizer_);
  double value = 0;
  // The model's penalty is counted once: on the last rank, whose shard is never empty.
  if (s1 > s0)
    value = step_->forward_backward(shuffled_rows(s0, s1), shuffled_targets(s0, s1),
                                    comm_ ? double(s1 - s0) / double(b1 - b0) : 1.0,
                                    rank == world - 1 ? 1.0 : 0.0);
  if (comm_) {
    all_reduce_gradients();
    // The global loss and any rank's stop request, so that every rank decides alike.
    auto shared = torch::tensor({value, stop_now ? 1.0 : 0.0}, torch::kFloat64);
    comm_->allreduce_sum(shared);
    value = shared[0].item<double>();
    stop_now = shared[1].item<double>() > 0;
  }
  double grad_norm = 0;
  if (config_.train.grad_clip > 0)
    grad_norm = torch::nn::utils::clip_grad_norm_(model_->parameters(), config_.train.grad_clip);
  if (!std::isfinite(value) || !std::isfinite(grad_norm))
    diverged("at epoch " + std::to_string(progress_.epoch + 1) + ", step " +
                 std::to_string(step + 1) + " (global step " +
                 std::to_string(progress_.global_step + 1) + ")",
             std::isfinite(value) ? "gradient norm" : "loss");
  optimizer_->step();
  return value;
}

void Trainer::diverged(const std::string& where, const std::string& what) const {
  if (::isatty(STDERR_FILENO)) std::fputs("\r\033[K", stderr);
  throw Error("training diverged " + where + ": " + what + " is not finite; " +
              (fs::exists(paths_.last) ? "the last good checkpoint is " + paths_.last
                                       : std::string("no checkpoint was written yet")) +
              " (try a lower train.lr or train.grad_clip)");
}

EpochRecord Trainer::finish_epoch(double seconds) {
  EpochRecord r;
  r.epoch = progress_.epoch + 1;
  r.train_loss = progress_.epoch_loss_sum / std::max<int64_t>(1, progress_.epoch_samples);
  if (comm_) broadcast_buffers();  // every rank evaluates the model rank 0 saves
  {
    torch::NoGradGuard no_grad;
    if (const torch::Tensor penalty = model_->penalty(); penalty.defined())
      r.penalty = penalty.item<double>();
  }
  r.relevance = relevance_json(*model_);
  r.val = score(step_->loss(), config_.task, scaling_, predict_sharded(val_), val_.target,
                config_.metrics.set);
  r.val_loss = r.val[metric::kLoss].get<double>();
  r.val.erase(metric::kLoss);
  r.lr = config_.train.lr;
  r.seconds = seconds;
  r.samples_per_s = seconds > 0 ? progress_.epoch_samples / seconds : 0;
  r.global_step = progress_.global_step;
  const MemoryUsage memory = memory_usage();
  r.rss_mb = memory.rss_mb;
  r.peak_rss_mb = memory.peak_rss_mb;

  progress_.epoch = r.epoch;
  progress_.epoch_step = 0;
  progress_.epoch_loss_sum = 0;
  progress_.epoch_samples = 0;
  progress_.train_seconds += seconds;
  const bool improved = r.val_loss < progress_.best_val_loss;
  if (improved) {
    progress_.best_val_loss = r.val_loss;
    progress_.best_epoch = r.epoch;
    progress_.bad_epochs = 0;
  } else {
    progress_.bad_epochs += 1;
  }
  const int64_t patience = config_.train.patience;
  progress_.stopped_early = patience > 0 && progress_.bad_epochs >= patience;
  {
    std::lock_guard<std::mutex> lock(shuffle_gen_.mutex());
    shuffle_epoch_start_ = shuffle_gen_.get_state();  // where the next epoch starts
  }
  // The metrics line, then the checkpoint, then best.pt. A line past the checkpoint's epoch
  // (its save failed) is dropped when the run resumes in place, and a best.pt whose copy
  // failed is copied again then (run.cpp, repair_after_failed_write): a resumed run's
  // metrics and best.pt match its checkpoints.
  if (is_leader()) append_text(paths_.metrics, to_json(r).dump() + "\n");
  save(paths_.last);
  if (!is_leader()) return r;
  if (improved) atomic_copy(paths_.last, paths_.best);
  write_charts(paths_, config_.name);
  return r;
}

void Trainer::set_communicator(std::shared_ptr<Communicator> comm) {
  comm_ = std::move(comm);
  if (comm_ && graph_) {
    graph_.reset();
    why_eager_ = "distributed training exchanges gradients between steps";
  }
}

bool Trainer::is_leader() const { return !comm_ || comm_->rank() == 0; }

bool Trainer::stop_requested(const std::atomic<int>* stop) {
  bool local = stop && stop->load() != 0;
  if (!comm_) return local;
  auto flag = torch::tensor({local ? 1.0 : 0.0}, torch::kFloat64);
  comm_->allreduce_sum(flag);
  return flag.item<double>() > 0;
}

void Trainer::all_reduce_gradients() {
  // FlatAdam's gradients already live in one buffer: one all-reduce for the whole model.
  if (auto* flat = dynamic_cast<FlatAdam*>(optimizer_.get())) {
    auto grad = flat->flat_gradients();
    comm_->allreduce_sum(grad);
    return;
  }
  std::vector<torch::Tensor> grads;
  for (auto& p : model_->parameters()) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    grads.push_back(p.grad().reshape({-1}));
  }
  auto bucket = torch::cat(grads);
  comm_->allreduce_sum(bucket);
  int64_t offset = 0;
  for (auto& p : model_->parameters()) {
    const int64_t k = p.numel();
    p.mutable_grad().copy_(bucket.slice(0, offset, offset + k).view(p.sizes()));
    offset += k;
  }
}

namespace {
void broadcast_each(Communicator& comm, const std::vector<torch::Tensor>& tensors) {
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    auto data = t.detach();
    comm.broadcast(data, 0);
  }
}
}  // namespace

void Trainer::broadcast_parameters() {
  if (auto* flat = dynamic_cast<FlatAdam*>(optimizer_.get())) {
    auto params = flat->flat_parameters();
    comm_->broadcast(params, 0);
    return;
  }
  broadcast_each(*comm_, model_->parameters());
}

void Trainer::broadcast_buffers() { broadcast_each(*comm_, model_->buffers()); }

torch::Tensor Trainer::predict_sharded(const Dataset& data) {
  if (!comm_) return predict(*step_, data, config_.train.eval_batch_size, device_);
  // Each rank predicts its shard; a sum of zero-padded copies gives every rank all rows.
  const auto [s0, s1] = shard_of(0, data.size(), comm_->rank(), comm_->world_size());
  torch::Tensor all;
  {
    const auto part = predict(
        *step_,
        data.rows(torch::arange(s0, s1, torch::TensorOptions(torch::kInt64).device(device_))),
        config_.train.eval_batch_size, device_);
    all = torch::zeros({data.size(), part.size(1)}, part.options());
    all.slice(0, s0, s1).copy_(part);
  }
  comm_->allreduce_sum(all);
  return all;
}

void Trainer::fit(const std::atomic<int>* stop) {
  const auto& t = config_.train;
  if (comm_) broadcast_parameters();  // identical starting point on every rank
  if (progress_.epoch >= t.epochs || progress_.stopped_early) {
    log_->info("nothing to train: {} of {} epochs done{}", progress_.epoch, t.epochs,
               progress_.stopped_early ? " (stopped early)" : "");
    return;
  }
  log_->info("training {} on {}: {} train{} / {} val / {} test samples, {} parameters, {} threads",
             to_string(config_.model.type), device_.str(), train_rows(),
             stream_ ? " (streamed, per epoch)" : "", val_.size(), test_.size(),
             parameter_counts(*model_)[0].second, torch::get_num_threads());
  // Which step runs, when LMF on the CPU could have taken the hand-written pass and does
  // not (docs/performance.md).
  if (config_.model.type == ModelType::LMF && device_.is_cpu() && config_.train.handwritten_step &&
      !step_->why_autograd().empty())
    log_->info("training step: autograd, not the hand-written LMF pass: {}", step_->why_autograd());
  // Several processes share the cores by a fixed split (run.cpp); one process alone adapts.
  threads_ = ThreadGovernor(config_.threads == 0 && !comm_, available_cores());
  if (threads_.adaptive() && torch::get_num_threads() < available_cores())
    log_->info(
        "other processes keep {} of the {} cores busy; threads: 0 adapts to that, a "
        "fixed threads count does not",
        available_cores() - torch::get_num_threads(), available_cores());
  if (comm_ && t.batch_size < 2 * comm_->world_size()) {
    const auto buffers = model_->named_buffers();
    const bool batch_statistics = std::any_of(buffers.begin(), buffers.end(), [](const auto& b) {
      return b.key().find("running_") != std::string::npos;
    });
    if (batch_statistics)
      log_->warn(
          "train.batch_size {} over {} ranks leaves shards of one row, which normalise with the running "
          "estimates instead of batch statistics; use a batch of at least {}",
          t.batch_size, comm_->world_size(), 2 * comm_->world_size());
  }
  if (device_.is_cuda())
    log_->info("training step: {}", graph_ ? std::string("one CUDA graph per batch size")
                                           : "eager (" + why_eager_ + ")");
  while (progress_.epoch < t.epochs) {
    const auto start = Clock::now();
    train_epoch(stop);
    if (device_.is_cuda()) torch::cuda::synchronize();
    const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    EpochRecord r;
    try {
      r = finish_epoch(seconds);
    } catch (const WriteError& e) { stop_after_failed_write(e.what()); }
    if (const std::string failed = log_write_failure(*log_); !failed.empty())
      stop_after_failed_write(failed);
    history_.push_back(r);
    const bool classification = config_.task == Task::Classification;
    log_->info(
        "epoch {:>3}/{}  train_loss {:.6f}  val_loss {:.6f}  {} {:.4f}  {} {:.4f}  "
        "lr {:.3g}  {:.2f}s  {:.0f} samples/s{}",
        r.epoch, t.epochs, r.train_loss, r.val_loss, classification ? "val_acc" : "val_mae",
        r.val[classification ? metric::kAccuracy : metric::kMAE].get<double>(),
        classification ? "val_f1" : "val_r",
        r.val[classification ? metric::kMacroF1 : metric::kPearson].get<double>(), r.lr, r.seconds,
        r.samples_per_s, r.epoch == progress_.best_epoch ? "  *best" : "");
    if (!r.relevance.empty()) {
      std::string scores;
      for (const auto& [block, score] : r.relevance.items())
        scores += fmt::format("  {} {:.3f}", block, score.get<double>());
      log_->info("relevance{}", scores);
    }
    if (on_epoch) on_epoch(r);
    if (progress_.stopped_early) {
      log_->info(
          "early stopping: val_loss has not improved for {} epochs (best {:.6f} at epoch {})",
          progress_.bad_epochs, progress_.best_val_loss, progress_.best_epoch);
      break;
    }
    if (stop_requested(stop) && progress_.epoch < t.epochs)
      throw Interrupted("interrupted after epoch " + std::to_string(progress_.epoch) + "; saved " +
                        paths_.last + " (continue with: mmfusion train --resume " + paths_.last +
                        ")");
  }
}

json Trainer::write_results() {
  // best.pt exists once an epoch improved on the best validation loss known; a branched
  // run starts with the one it branched from. Without one (no epoch improved and none was
  // known), the last checkpoint is what there is, and results.json says so.
  const bool have_best = fs::exists(paths_.best);
  if (!have_best)
    log_->warn(
        "no epoch improved on the best validation loss known ({:.6f}) and no best.pt exists; "
        "evaluating {} instead",
        progress_.best_val_loss, paths_.last);
  const std::string evaluated = have_best ? paths_.best : paths_.last;
  Checkpoint best = open_checkpoint(evaluated, device_);
  ModelPtr model = best.build_model(device_);
  StepRunner runner(model, config_.train);
  auto evaluate_on = [&](const Dataset& d) {  // d's features are scaled already
    return score(runner.loss(), config_.task, best.scaling,
                 predict(runner, d, config_.train.eval_batch_size, device_), d.target,
                 config_.metrics.set);
  };
  json params = json::object();
  for (const auto& [name, count] : parameter_counts(*model)) params[name] = count;
  auto machine_json = [](const MachineInfo& m) {
    return json{{"cpu", m.cpu}, {"cores", m.cores}, {"blas", m.blas}, {"torch", m.torch}};
  };
  json results = {{"mmfusion_version", kVersion},
                  {"checkpoint", evaluated},
                  {"best_epoch", best.progress.best_epoch},
                  {"epochs", progress_.epoch},
                  {"stopped_early", progress_.stopped_early},
                  {"train_seconds", progress_.train_seconds},
                  {"samples_per_s",
                   progress_.train_seconds > 0
                       ? double(progress_.epoch) * double(train_rows()) / progress_.train_seconds
                       : 0.0},
                  {"parameters", params},
                  {"machine", machine_json(machine_info())},
                  {"val", evaluate_on(val_)},
                  {"test", evaluate_on(test_)}};
  if (const json scores = relevance_json(*model); !scores.empty()) results["relevance"] = scores;
  try {
    atomic_write_text(paths_.results, results.dump(2) + "\n");
  } catch (const WriteError& e) {
    // The training is done and saved: a resume of it only evaluates and writes this file.
    throw WriteError(std::string(e.what()) + "; the training is complete in " + paths_.last +
                     " (write results.json with: mmfusion train --resume " + paths_.last +
                     " once there is space)");
  }
  return results;
}

}  // namespace mmfusion
