#include "mmfusion/train_step.hpp"

#include "mmfusion/lmf_pass.hpp"
#include "mmfusion/trainer.hpp"

namespace mmfusion {

using torch::Tensor;

TrainStep::TrainStep(ModelPtr model, const TrainConfig& train) : model_(std::move(model)), train_(train) {
  if (train_.fused_step && LMFPass::supports(*model_))
    fused_ = std::make_unique<LMFPass>(dynamic_cast<LMFImpl&>(*model_), train_);
}

TrainStep::~TrainStep() = default;

double TrainStep::forward_backward(const std::vector<Tensor>& inputs, const Tensor& target, double weight) {
  if (fused_ && LMFPass::accepts(inputs) && target.device().is_cpu())
    return fused_->train_step(inputs, target, weight);
  auto loss = compute_loss(train_, model_->forward(inputs), target);
  if (weight != 1.0) loss = loss * weight;
  loss.backward();
  return loss.item<double>();
}

}  // namespace mmfusion
