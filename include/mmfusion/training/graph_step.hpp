#pragma once
// A whole training step captured once as a CUDA graph and replayed: clearing the
// gradients, forward, loss, backward, gradient clipping and the flat Adam's update
// (optim.hpp), about a hundred kernels that a replay launches as one.
//
// - The batch is copied into the graph's own input tensors before each replay.
// - A batch of a size not seen yet (the last batch of an epoch) is captured once more;
//   each size keeps its graph.
// - The loss stays on the device: each replay adds loss * rows to a float64 sum, which
//   the caller reads back only when it reports it. Nothing in a step reads the host.
// - Before capturing, one forward and backward pass runs eagerly on a side stream (lazy
//   initialisation of cuBLAS and the autograd engine cannot be captured); the default
//   CUDA generator is then put back where it was, so that the dropout masks of the graph
//   are the eager step's, draw for draw.
//
// Only a LibTorch built with CUDA has graphs; elsewhere unsupported() says so.
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/config/config.hpp"

namespace mmfusion {

class FlatAdam;
class StepRunner;

class GraphedTrainStep {
 public:
  // Why a training step of this config cannot be a CUDA graph on `device` with this
  // optimizer; empty when it can.
  static std::string unsupported(const TrainConfig& train, const torch::optim::Optimizer& optimizer,
                                 const torch::Device& device);

  // The graph step for this config, runner, optimizer and device, or null when
  // unsupported() says why not (into *why_not when given).
  static std::unique_ptr<GraphedTrainStep> make(const TrainConfig& train, StepRunner& runner,
                                                torch::optim::Optimizer& optimizer,
                                                const torch::Device& device,
                                                std::string* why_not = nullptr);

  // `runner` gives the model and the loss; `optimizer` owns the parameters and their
  // gradients (flat buffers). Both must outlive this object. grad_clip as train.grad_clip.
  GraphedTrainStep(StepRunner& runner, FlatAdam& optimizer, double grad_clip);
  ~GraphedTrainStep();
  GraphedTrainStep(const GraphedTrainStep&) = delete;
  GraphedTrainStep& operator=(const GraphedTrainStep&) = delete;

  // One training step on this batch (tensors on the graph's device).
  void run(const std::vector<torch::Tensor>& inputs, const torch::Tensor& target);

  // The sum of loss * rows over the steps since set_loss_sum (reads the device).
  double loss_sum() const;
  void set_loss_sum(double value);

  int64_t captures() const;  // graphs captured (one per batch size seen)
  int64_t replays() const;   // steps run

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace mmfusion
