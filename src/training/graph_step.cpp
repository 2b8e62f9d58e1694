#include "mmfusion/training/graph_step.hpp"

#include <map>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/training/optim.hpp"
#include "mmfusion/training/step.hpp"

#ifdef MMFUSION_CUDA
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGeneratorImpl.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#endif

namespace mmfusion {

using torch::Tensor;

std::string GraphedTrainStep::unsupported(const TrainConfig& train,
                                          const torch::optim::Optimizer& optimizer,
                                          const torch::Device& device) {
  if (!train.cuda_graphs) return "train.cuda_graphs is off";
  if (!device.is_cuda()) return "CUDA graphs are for CUDA devices";
#ifndef MMFUSION_CUDA
  return "this build's LibTorch has no CUDA";
#endif
  if (!dynamic_cast<const FlatAdam*>(&optimizer))
    return "CUDA graphs need the flat Adam (train.optimizer adam or adamw, train.flat_optimizer true)";
  return "";
}

std::unique_ptr<GraphedTrainStep> GraphedTrainStep::make(const TrainConfig& train,
                                                         StepRunner& runner,
                                                         torch::optim::Optimizer& optimizer,
                                                         const torch::Device& device,
                                                         std::string* why_not) {
  std::string why = unsupported(train, optimizer, device);
  // A recurrent encoder packs its rows by their lengths, which it reads on the host: a
  // step that synchronises cannot be captured.
  for (const auto& module : runner.model().modules()) {
    if (why.empty() && module->as<RecurrentEncoderImpl>())
      why = "a recurrent encoder packs its rows by lengths read on the host";
    if (const auto* e = module->as<ModalityEncodersImpl>(); why.empty() && e && e->has_missing_encodings())
      why = "train.modality_dropout draws its dropped rows in the step";
  }
  if (why_not) *why_not = why;
  if (!why.empty()) return nullptr;
  return std::make_unique<GraphedTrainStep>(runner, dynamic_cast<FlatAdam&>(optimizer),
                                            train.grad_clip);
}

#ifdef MMFUSION_CUDA

namespace {

// One captured step for one batch size, with the tensors it reads its batch from.
struct Graph {
  std::vector<Tensor> inputs;
  Tensor target;
  at::cuda::CUDAGraph graph;
};

}  // namespace

struct GraphedTrainStep::Impl {
  StepRunner& runner;
  FlatAdam& optimizer;
  double grad_clip;
  Tensor loss_sum;  // float64 scalar on the device
  std::map<int64_t, std::unique_ptr<Graph>> graphs;
  int64_t replays = 0;

  // What the graph holds: the trainer's eager step, with the loss kept on the device.
  void step(const Graph& g) {
    optimizer.zero_flat_grad();
    Tensor loss;
    runner.objective(g.inputs, g.target, 1.0, 1.0, &loss).backward();
    torch::NoGradGuard no_grad;
    if (grad_clip > 0) {  // torch::nn::utils::clip_grad_norm_'s arithmetic over the flat buffer
      Tensor grad = optimizer.flat_gradients();
      grad.mul_((grad_clip / (grad.norm() + 1e-6)).clamp_max_(1.0));
    }
    optimizer.step();
    loss_sum.add_(loss.detach().to(torch::kFloat64), static_cast<double>(g.target.size(0)));
  }

  std::unique_ptr<Graph> capture(const std::vector<Tensor>& inputs, const Tensor& target) {
    auto g = std::make_unique<Graph>();
    for (const auto& x : inputs) g->inputs.push_back(x.clone(at::MemoryFormat::Contiguous));
    g->target = target.clone(at::MemoryFormat::Contiguous);
    const auto index = target.device().index();
    at::Generator generator = at::cuda::detail::getDefaultCUDAGenerator(index);
    Tensor rng_state;
    {
      std::lock_guard<std::mutex> lock(generator.mutex());
      rng_state = generator.get_state();
    }
    const c10::cuda::CUDAStream ambient = c10::cuda::getCurrentCUDAStream(index);
    const c10::cuda::CUDAStream side =
        c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index);
    at::cuda::CUDAEvent ready;
    ready.record(ambient);
    ready.block(side);
    {
      c10::cuda::CUDAStreamGuard on_side(side);
      // Warm-up: its gradients are cleared by the graph's first kernel, and the model's
      // buffers (running statistics) are put back, so that it leaves no trace.
      std::vector<Tensor> buffers;
      for (const auto& b : runner.model().buffers()) buffers.push_back(b.clone());
      runner.objective(g->inputs, g->target, 1.0, 1.0, nullptr).backward();
      {
        torch::NoGradGuard no_grad;
        auto now = runner.model().buffers();
        for (size_t i = 0; i < now.size(); ++i) now[i].copy_(buffers[i]);
      }
      {
        std::lock_guard<std::mutex> lock(generator.mutex());
        generator.set_state(rng_state);
      }
      g->graph.capture_begin();
      try {
        step(*g);
      } catch (...) {
        // End the stream's capture, so that what follows is not refused for it; the
        // capture's own error is the one to report. (Where the capture was invalidated,
        // capture_end throws before it ends the allocator's routing to the graph's pool;
        // training then stops with the error below anyway.)
        try {
          g->graph.capture_end();
        } catch (...) {}
        throw;
      }
      g->graph.capture_end();
    }
    at::cuda::CUDAEvent captured;
    captured.record(side);
    captured.block(ambient);
    return g;
  }
};

GraphedTrainStep::GraphedTrainStep(StepRunner& runner, FlatAdam& optimizer, double grad_clip)
    : impl_(new Impl{runner,
                     optimizer,
                     grad_clip,
                     torch::zeros({}, optimizer.flat_parameters().options().dtype(torch::kFloat64)),
                     {}}) {}

void GraphedTrainStep::run(const std::vector<Tensor>& inputs, const Tensor& target) {
  auto& graphs = impl_->graphs;
  const int64_t rows = target.size(0);
  auto found = graphs.find(rows);
  if (found == graphs.end()) {
    auto failed = [](const std::string& what) {
      return Error("capturing the training step as a CUDA graph failed (" +
                   what.substr(0, what.find('\n')) + "); train with --set train.cuda_graphs=false");
    };
    try {
      found = graphs.emplace(rows, impl_->capture(inputs, target)).first;
    } catch (const c10::Error& e) {
      throw failed(e.what_without_backtrace());
    } catch (const std::exception& e) { throw failed(e.what()); }
  } else {
    Graph& g = *found->second;
    for (size_t m = 0; m < inputs.size(); ++m) g.inputs[m].copy_(inputs[m]);
    g.target.copy_(target);
  }
  found->second->graph.replay();
  ++impl_->replays;
}

double GraphedTrainStep::loss_sum() const { return impl_->loss_sum.item<double>(); }
void GraphedTrainStep::set_loss_sum(double value) { impl_->loss_sum.fill_(value); }
int64_t GraphedTrainStep::captures() const { return static_cast<int64_t>(impl_->graphs.size()); }
int64_t GraphedTrainStep::replays() const { return impl_->replays; }

#else  // a LibTorch without CUDA: unsupported() says so and nothing builds one

struct GraphedTrainStep::Impl {};

GraphedTrainStep::GraphedTrainStep(StepRunner&, FlatAdam&, double) {
  throw std::logic_error("GraphedTrainStep: this build's LibTorch has no CUDA");
}
void GraphedTrainStep::run(const std::vector<Tensor>&, const Tensor&) {}
double GraphedTrainStep::loss_sum() const { return 0; }
void GraphedTrainStep::set_loss_sum(double) {}
int64_t GraphedTrainStep::captures() const { return 0; }
int64_t GraphedTrainStep::replays() const { return 0; }

#endif

GraphedTrainStep::~GraphedTrainStep() = default;

}  // namespace mmfusion
