#pragma once
// The training loop. It knows MultimodalModel only, never which model it trains.
#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "mmfusion/training/checkpoint.hpp"
#include "mmfusion/config/config.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/training/metrics.hpp"
#include "mmfusion/models/models.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "mmfusion/runtime/cpu_load.hpp"
#include "mmfusion/data/scaling.hpp"

namespace spdlog {
class logger;
}

namespace mmfusion {

class Communicator;      // distributed.hpp
class GraphedTrainStep;  // graph_step.hpp
class StepRunner;        // step.hpp

struct EpochRecord {
  int64_t epoch = 0;
  double train_loss = 0;
  double val_loss = 0;
  nlohmann::json val;  // the task's metrics (task_metrics)
  double lr = 0;
  double seconds = 0;
  double samples_per_s = 0;
  int64_t global_step = 0;
  double rss_mb = 0, peak_rss_mb = 0;  // resident memory after the epoch, now and at peak
  // Models with a penalty and relevance scores (InTense): the penalty's value and
  // {block: score} after the epoch; null and {} otherwise.
  nlohmann::json penalty, relevance = nlohmann::json::object();
};
nlohmann::json to_json(const EpochRecord& r);

class Trainer {
 public:
  // config.model.output_dim must be resolved (>= 1). `data` is on the CPU, in its own
  // units; the trainer scales it by `scaling` (saved in every checkpoint) and moves it to
  // `device` once.
  Trainer(ExperimentConfig config, const DataSplits& data, torch::Device device, RunPaths paths,
          std::shared_ptr<spdlog::logger> logger, Scaling scaling = Scaling());
  ~Trainer();

  // Data-parallel training with these peers (nullptr: single process). Rank 0 alone
  // writes checkpoints, metrics and charts.
  void set_communicator(std::shared_ptr<Communicator> comm);
  bool is_leader() const;

  // Continue from a checkpoint of the same config (model, optimizer, generators, progress).
  void restore(Checkpoint& checkpoint);

  // Trains up to config.train.epochs, writing checkpoints and metrics. Stops cleanly
  // (last.pt saved, Interrupted thrown) when *stop becomes non-zero between steps;
  // throws Error on divergence without touching the checkpoints.
  void fit(const std::atomic<int>* stop = nullptr);

  // Evaluates best.pt on val and test; writes results.json and returns it.
  nlohmann::json write_results();

  // The runner of the training steps (which path they took: step.hpp).
  const StepRunner& steps() const { return *step_; }
  // The CUDA graph of the training step (graph_step.hpp), or null when steps run eagerly.
  const GraphedTrainStep* graph() const { return graph_.get(); }

  const TrainProgress& progress() const { return progress_; }
  MultimodalModelImpl& model() { return *model_; }
  // Per-epoch records of this process (also appended to metrics.jsonl).
  const std::vector<EpochRecord>& history() const { return history_; }
  // Called after every epoch (tests use it to stop a run in the middle).
  std::function<void(const EpochRecord&)> on_epoch;

 private:
  void train_epoch(const std::atomic<int>* stop);
  // Forward, backward, gradient exchange and clipping, divergence check and update for
  // rows [b0, b1) of the shuffled split; returns the step's loss.
  double eager_step(int64_t step, int64_t b0, int64_t b1, bool& stop_now);
  void build_steps();  // optimizer_, step_ and graph_ over the model's current parameters
  std::vector<torch::Tensor> shuffled_rows(int64_t r0,
                                           int64_t r1) const;  // rows [r0, r1) of the epoch's order
  torch::Tensor shuffled_targets(int64_t r0, int64_t r1) const;  // their targets
  void load_batch(int64_t b0, int64_t b1);  // makes rows [b0, b1) of the epoch's order available
  static constexpr int64_t kWindowRows =
      16384;                   // rows gathered at a time (rounded up to whole batches)
  int64_t train_rows() const;  // training rows per epoch
  [[noreturn]] void diverged(const std::string& where, const std::string& what) const;
  EpochRecord finish_epoch(double seconds);
  void save(const std::string& path);
  bool stop_requested(const std::atomic<int>* stop);
  void all_reduce_gradients();
  void broadcast_parameters();
  void broadcast_buffers();  // rank 0's running statistics to every rank
  torch::Tensor predict_sharded(const Dataset& data);

  std::shared_ptr<Communicator> comm_;

  ExperimentConfig config_;
  int64_t saved_epoch_ = -1;  // the epoch last.pt holds, once this run has saved it
  // Throws WriteError: `what`, then what is kept on disk to resume from.
  [[noreturn]] void stop_after_failed_write(const std::string& what) const;
  ThreadGovernor threads_;  // threads: 0 follows the machine's load between steps
  torch::Device device_;
  RunPaths paths_;
  std::shared_ptr<spdlog::logger> log_;
  Scaling scaling_;
  Dataset train_, val_, test_;  // scaled features; train_'s target scaled, val_'s and test_'s not
  std::vector<torch::Tensor> shuffled_;  // a window of the epoch's order (kWindowRows)
  torch::Tensor shuffled_target_;
  torch::Tensor perm_;                      // the epoch's order of the training rows
  int64_t window_ = 0, window_end_ = 0;     // the epoch rows the window holds
  std::unique_ptr<TrainingStream> stream_;  // streaming: where the batches come from
  ModelPtr model_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;
  std::unique_ptr<StepRunner> step_;  // forward and backward; after optimizer_, which it follows
  std::unique_ptr<GraphedTrainStep> graph_;  // the whole step on CUDA; after step_
  std::string why_eager_;                    // why graph_ is null
  at::Generator shuffle_gen_;
  torch::Tensor shuffle_epoch_start_;
  TrainProgress progress_;
  std::vector<EpochRecord> history_;
};

}  // namespace mmfusion
