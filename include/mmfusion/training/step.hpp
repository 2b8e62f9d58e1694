#pragma once
// One training or inference step of any model (evaluation.hpp runs them over a whole
// dataset).
// The trainer, the evaluator and the benchmark all run steps through StepRunner, so that
// what `mmfusion bench` times is what training runs.
//
// StepRunner chooses the path of each step: the hand-written LMF pass (lmf_pass.hpp) when
// the model is an LMF whose description the pass implements, the tensors are CPU float32
// and train.handwritten_step is on; LibTorch's autograd otherwise. It records which path
// each step took, so that tests and `bench` can say which one ran.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/config/config.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/training/losses.hpp"
#include "mmfusion/models/models.hpp"
#include "mmfusion/data/scaling.hpp"

namespace mmfusion {

class LMFPass;

enum class StepPath { HandWritten, Autograd };
const char* to_string(StepPath path);

class StepRunner {
 public:
  // Build it after the optimizer: a flat optimizer moves the parameters into its buffer.
  StepRunner(ModelPtr model, const TrainConfig& train);
  ~StepRunner();
  StepRunner(const StepRunner&) = delete;
  StepRunner& operator=(const StepRunner&) = delete;

  // Adds the gradients of the objective weight * loss(model(inputs), target) +
  // penalty_weight * model.penalty() to the parameters' .grad (as backward() would) and
  // returns the weighted loss without the penalty (the penalty does not depend on the
  // data; data-parallel training counts it on one rank). Dropout follows the model's
  // train/eval mode and draws from LibTorch's default generator.
  double forward_backward(const std::vector<torch::Tensor>& inputs, const torch::Tensor& target,
                          double weight = 1.0, double penalty_weight = 1.0);

  // That objective as a differentiable scalar, its loss part in *loss (autograd only).
  torch::Tensor objective(const std::vector<torch::Tensor>& inputs, const torch::Tensor& target,
                          double weight, double penalty_weight, torch::Tensor* loss);

  // The model's output without gradients, in the model's current mode (callers put it in
  // eval mode). Thread-safe.
  torch::Tensor infer(const std::vector<torch::Tensor>& inputs);

  // Whether the hand-written pass can run for this model at all, and if not, why.
  bool handwritten_available() const { return pass_ != nullptr; }
  const std::string& why_autograd() const { return why_autograd_; }

  // How many steps took each path so far.
  struct Counts {
    int64_t handwritten = 0, autograd = 0;
  };
  Counts train_counts() const;
  Counts infer_counts() const;

  MultimodalModelImpl& model() { return *model_; }
  const LossSpec& loss() const { return loss_; }

 private:
  ModelPtr model_;
  LossSpec loss_;
  std::unique_ptr<LMFPass> pass_;
  std::string why_autograd_;
  mutable std::mutex counts_mutex_;
  Counts train_counts_, infer_counts_;
};

}  // namespace mmfusion
