#include "mmfusion/training/step.hpp"

#include "mmfusion/training/lmf_pass.hpp"

namespace mmfusion {

using torch::Tensor;

const char* to_string(StepPath path) {
  switch (path) {
    case StepPath::HandWritten: return "hand-written";
    case StepPath::Autograd: return "autograd";
  }
  return "?";
}

StepRunner::StepRunner(ModelPtr model, const TrainConfig& train)
    : model_(std::move(model)), loss_(LossSpec::of(train)) {
  const auto* lmf = dynamic_cast<const LMFImpl*>(model_.get());
  if (!train.handwritten_step) {
    why_autograd_ = "train.handwritten_step is off";
  } else if (!lmf) {
    why_autograd_ = "the hand-written pass is for LMF only";
  } else {
    LMFDescription description = lmf->describe();
    why_autograd_ = LMFPass::unsupported(description);
    if (why_autograd_.empty()) pass_ = std::make_unique<LMFPass>(std::move(description), loss_);
  }
}

StepRunner::~StepRunner() = default;

Tensor StepRunner::objective(const std::vector<Tensor>& inputs, const Tensor& target, double weight,
                             double penalty_weight, Tensor* loss) {
  Tensor value = loss_value(loss_, model_->forward(inputs), target);
  if (weight != 1.0) value = value * weight;
  if (loss) *loss = value;
  if (penalty_weight != 0)
    if (const Tensor penalty = model_->penalty(); penalty.defined())
      value = value + penalty_weight * penalty;
  return value;
}

double StepRunner::forward_backward(const std::vector<Tensor>& inputs, const Tensor& target,
                                    double weight, double penalty_weight) {
  // The pass is LMF's, and an LMF has no penalty.
  if (pass_ && LMFPass::accepts(inputs) && target.device().is_cpu()) {
    const double loss = pass_->train_step(inputs, target, weight, model_->is_training());
    std::lock_guard<std::mutex> lock(counts_mutex_);
    ++train_counts_.handwritten;
    return loss;
  }
  Tensor loss;
  objective(inputs, target, weight, penalty_weight, &loss).backward();
  {
    std::lock_guard<std::mutex> lock(counts_mutex_);
    ++train_counts_.autograd;
  }
  return loss.item<double>();
}

Tensor StepRunner::infer(const std::vector<Tensor>& inputs) {
  const bool handwritten = pass_ && !model_->is_training() && LMFPass::accepts(inputs);
  {
    std::lock_guard<std::mutex> lock(counts_mutex_);
    ++(handwritten ? infer_counts_.handwritten : infer_counts_.autograd);
  }
  if (handwritten) return pass_->infer(inputs);
  torch::InferenceMode guard;
  return model_->forward(inputs);
}

StepRunner::Counts StepRunner::train_counts() const {
  std::lock_guard<std::mutex> lock(counts_mutex_);
  return train_counts_;
}

StepRunner::Counts StepRunner::infer_counts() const {
  std::lock_guard<std::mutex> lock(counts_mutex_);
  return infer_counts_;
}

}  // namespace mmfusion
