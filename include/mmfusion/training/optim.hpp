#pragma once
// Optimizers: the factory for train.optimizer, and Adam / AdamW over one flat buffer.
//
// FlatAdam: Adam / AdamW over one flat buffer. Every parameter becomes a view into a single
// contiguous tensor, and every gradient a view into a second one, so an update is one
// loop over the whole model on the CPU (simd.hpp), or a handful of element-wise
// operations on other devices, per learning-rate group, instead of about ten per
// parameter tensor; clearing the gradients is one fill.
// The arithmetic is torch::optim::Adam's / AdamW's. Off the CPU-float32 loop (on CUDA, or
// for float64), the step count and the bias corrections live in a tensor on the
// parameters' device, as in PyTorch's capturable Adam, so that the update reads nothing
// from the host and can be captured in a CUDA graph (graph_step.hpp).
#include <memory>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/config/config.hpp"
#include "mmfusion/models/models.hpp"

namespace mmfusion {

class FlatAdam : public torch::optim::Optimizer {
 public:
  struct Group {
    std::vector<torch::Tensor> params;
    double lr;
  };
  // decoupled: AdamW's weight decay (p *= 1 - lr wd) instead of Adam's L2 term.
  FlatAdam(const std::vector<Group>& groups, double weight_decay, bool decoupled,
           double beta1 = 0.9, double beta2 = 0.999, double eps = 1e-8);

  torch::Tensor step(LossClosure closure = nullptr) override;
  void zero_flat_grad() { grad_.zero_(); }
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;
  // Steps taken (reads the device's count back where it lives there).
  int64_t steps() const;
  torch::Tensor flat_parameters() const { return flat_; }
  torch::Tensor flat_gradients() const { return grad_; }

 private:
  struct Segment {
    int64_t begin, end;
    double lr;
  };
  torch::Tensor flat_, grad_, exp_avg_, exp_avg_sq_;
  std::vector<Segment> segments_;
  double weight_decay_, beta1_, beta2_, eps_;
  bool decoupled_;
  bool host_loop_;             // CPU float32: simd loop, host step count
  int64_t step_ = 0;           // the count when host_loop_
  torch::Tensor device_step_;  // the count otherwise: float64 scalar on the device
};

// Builds the optimizer named by train.optimizer (FlatAdam for adam/adamw when
// train.flat_optimizer), with the model's factor parameters in their own group when
// train.factor_lr > 0. Build it before anything that holds views of the parameters
// (step.hpp): FlatAdam moves them into its buffer.
std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainConfig& train,
                                                        MultimodalModelImpl& model);

// Clears the gradients the way the optimizer needs: one fill for FlatAdam (its
// gradients are views that must stay), the optimizer's own zero_grad otherwise.
void clear_gradients(torch::optim::Optimizer& optimizer);

}  // namespace mmfusion
