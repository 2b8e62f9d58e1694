// Device-aware tests: they run where LibTorch sees a CUDA device and skip elsewhere.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/experiments/bench.hpp"
#include "mmfusion/cli/commands.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/training/graph_step.hpp"
#include "mmfusion/training/optim.hpp"
#include "mmfusion/runtime/runtime.hpp"
#include "mmfusion/training/step.hpp"
#include "mmfusion/training/trainer.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
namespace fs = std::filesystem;

#define REQUIRE_CUDA() \
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device here"

namespace {

// Trains tiny for 2 epochs on `device` into dir and returns the best checkpoint path.
std::string train_tiny(const TempDir& dir, const std::string& device, const std::string& name) {
  TrainArgs args;
  args.config = source_path("configs/tiny.json");
  args.overrides = {"device=" + device};
  args.out = dir.file(name);
  run_train(args);
  return dir.file(name) + "/checkpoints/best.pt";
}

}  // namespace

TEST(Cuda, LMFForwardAndBackwardMatchTheCpu) {
  REQUIRE_CUDA();
  torch::manual_seed(0);
  const auto c = tiny_config({"model.dropout=0"});
  ModelPtr cpu = make_model(c.model, c.data.modalities, 2);
  ModelPtr gpu = make_model(c.model, c.data.modalities, 2);
  {
    torch::NoGradGuard g;
    auto src = cpu->named_parameters();
    for (auto& p : gpu->named_parameters()) p.value().copy_(src[p.key()]);
  }
  gpu->to(torch::kCUDA);
  std::vector<torch::Tensor> x, xg;
  for (const auto& m : c.data.modalities) {
    x.push_back(torch::randn({33, m.dim}));
    xg.push_back(x.back().cuda());
  }
  const auto y = cpu->forward(x);
  const auto yg = gpu->forward(xg);
  EXPECT_TRUE(torch::allclose(y, yg.cpu(), 1e-4, 1e-5));
  y.pow(2).sum().backward();
  yg.pow(2).sum().backward();
  auto gpu_params = gpu->named_parameters();
  for (const auto& p : cpu->named_parameters())
    EXPECT_TRUE(torch::allclose(p.value().grad(), gpu_params[p.key()].grad().cpu(), 1e-3, 1e-5))
        << p.key();
}

TEST(Cuda, DataIsIdenticalOnBothDevices) {
  REQUIRE_CUDA();
  const auto c = tiny_config();
  const Dataset cpu = load_split(c, Split::Train);
  const Dataset gpu = cpu.to(torch::kCUDA);
  for (size_t m = 0; m < cpu.features.size(); ++m) {
    EXPECT_TRUE(gpu.features[m].is_cuda());
    EXPECT_TRUE(torch::equal(cpu.features[m], gpu.features[m].cpu()));
  }
}

TEST(Cuda, TrainingEndToEndAndCheckpointsCrossDevices) {
  REQUIRE_CUDA();
  TempDir dir;
  const std::string gpu_ckpt = train_tiny(dir, "cuda", "gpu");
  const std::string cpu_ckpt = train_tiny(dir, "cpu", "cpu");
  for (const auto& ckpt : {gpu_ckpt, cpu_ckpt}) {
    SCOPED_TRACE(ckpt);
    EvalArgs on_cpu{ckpt, "test", "", "cpu"};
    EvalArgs on_gpu{ckpt, "test", "", "cuda"};
    const auto a = run_eval(on_cpu), b = run_eval(on_gpu);
    EXPECT_NEAR(a["mse"].get<double>(), b["mse"].get<double>(), 1e-4 * a["mse"].get<double>());
    EXPECT_TRUE(std::isfinite(a["mse"].get<double>()));
  }
  // A CUDA checkpoint resumes on the CPU.
  TrainArgs resume;
  resume.resume = dir.file("gpu") + "/checkpoints/last.pt";
  resume.overrides = {"device=cpu", "train.epochs=3"};
  resume.out = dir.file("gpu-then-cpu");
  EXPECT_NO_THROW(run_train(resume));
}

TEST(Cuda, ADeviceIndexBeyondTheMachineIsAConfigError) {
  REQUIRE_CUDA();
  const std::string beyond = "cuda:" + std::to_string(torch::cuda::device_count());
  EXPECT_THROW(resolve_device(beyond), ConfigError);
  EXPECT_EQ(resolve_device("auto"), torch::Device(torch::kCUDA, 0));
}

namespace {

// A model, its optimizer and its step runner on CUDA, from the same seed every time.
struct CudaRun {
  ModelPtr model;
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::unique_ptr<StepRunner> runner;
};

CudaRun cuda_run(const ExperimentConfig& c) {
  torch::manual_seed(1);
  CudaRun r;
  r.model = make_model(c.model, c.data.modalities, 1);
  r.model->to(torch::kCUDA);
  r.model->train();
  r.optimizer = make_optimizer(c.train, *r.model);
  r.runner = std::make_unique<StepRunner>(r.model, c.train);
  return r;
}

void expect_same_parameters(MultimodalModelImpl& a, MultimodalModelImpl& b, double tolerance) {
  auto b_params = b.named_parameters();
  for (const auto& p : a.named_parameters())
    EXPECT_TRUE(torch::allclose(p.value(), b_params[p.key()], tolerance, tolerance / 10))
        << p.key();
}

std::unique_ptr<Trainer> cuda_trainer(ExperimentConfig config, const DataSplits& data,
                                      const std::string& dir) {
  config.model.output_dim = 1;
  RunPaths paths(dir);
  fs::create_directories(paths.checkpoints);
  torch::manual_seed(config.seed);
  return std::make_unique<Trainer>(config, data, torch::Device(torch::kCUDA), paths,
                                   quiet_logger());
}

}  // namespace

// 20 steps, every fourth on a shorter batch (a second graph), with and without dropout,
// for LMF and for InTense (running statistics, a penalty in the loss): the graph replays
// the eager step, loss for loss, parameter for parameter and buffer for buffer.
TEST(Cuda, GraphStepGivesTheEagerLossesAndParameters) {
  REQUIRE_CUDA();
  for (const std::string model : {"lmf", "intense"})
    for (const std::string dropout : {"0", "0.3"}) {
      SCOPED_TRACE(model + ", dropout " + dropout);
      const auto c = tiny_config({"model.type=" + model, "model.dropout=" + dropout});
      torch::manual_seed(2);
      std::vector<std::vector<torch::Tensor>> xs;
      std::vector<torch::Tensor> ys;
      for (int s = 0; s < 20; ++s) {
        const int64_t rows = s % 4 == 3 ? 7 : 32;
        xs.push_back(random_inputs(c.data.modalities, rows));
        for (auto& x : xs.back()) x = x.cuda();
        ys.push_back(torch::randn({rows, 1}).cuda());
      }
      CudaRun eager = cuda_run(c);
      torch::manual_seed(3);
      std::vector<double> eager_losses;
      for (int s = 0; s < 20; ++s) {
        clear_gradients(*eager.optimizer);
        eager_losses.push_back(eager.runner->forward_backward(xs[s], ys[s]));
        eager.optimizer->step();
      }
      CudaRun graphed = cuda_run(c);
      torch::manual_seed(3);
      ASSERT_EQ(GraphedTrainStep::unsupported(c.train, *graphed.optimizer, torch::kCUDA), "");
      GraphedTrainStep graph(*graphed.runner, dynamic_cast<FlatAdam&>(*graphed.optimizer), 0.0);
      for (int s = 0; s < 20; ++s) {
        graph.set_loss_sum(0);
        graph.run(xs[s], ys[s]);
        EXPECT_NEAR(graph.loss_sum() / double(ys[s].size(0)), eager_losses[s],
                    1e-6 * eager_losses[s])
            << "step " << s;
      }
      EXPECT_EQ(graph.captures(), 2);
      EXPECT_EQ(graph.replays(), 20);
      EXPECT_EQ(dynamic_cast<FlatAdam&>(*graphed.optimizer).steps(), 20);
      expect_same_parameters(*graphed.model, *eager.model, 1e-6);
      auto eager_buffers = eager.model->named_buffers();
      for (const auto& b : graphed.model->named_buffers())
        EXPECT_TRUE(torch::allclose(b.value(), eager_buffers[b.key()], 1e-6, 1e-7)) << b.key();
    }
}

// The trainer takes the graph on CUDA by default (flat Adam, one process), gives the
// eager trainer's epochs (with gradient clipping too, whose norm the graph takes over
// the flat buffer), and resumes a graphed run exactly.
TEST(Cuda, TrainerOnCudaGraphsMatchesTheEagerTrainerAndResumesExactly) {
  REQUIRE_CUDA();
  TempDir dir;
  for (const std::string clip : {"0", "0.5"}) {
    SCOPED_TRACE("grad_clip " + clip);
    // 256 training rows in batches of 48: five full batches and a tail of 16.
    const auto config = tiny_config({"device=cuda", "train.batch_size=48", "model.dropout=0.2",
                                     "train.epochs=3", "train.grad_clip=" + clip});
    const DataSplits data = load_splits(config);
    auto graphed = cuda_trainer(config, data, dir.file("graph" + clip));
    auto eager_config = config;
    eager_config.train.cuda_graphs = false;
    auto eager = cuda_trainer(eager_config, data, dir.file("eager" + clip));
    ASSERT_NE(graphed->graph(), nullptr);
    ASSERT_EQ(eager->graph(), nullptr);
    // Each run from the same CUDA generator state: the same dropout masks.
    torch::manual_seed(config.seed);
    graphed->fit();
    torch::manual_seed(config.seed);
    eager->fit();
    EXPECT_EQ(graphed->graph()->captures(), 2);
    const double tolerance = clip == "0" ? 1e-6 : 1e-4;
    for (size_t e = 0; e < 3; ++e) {
      const auto &g = graphed->history()[e], &x = eager->history()[e];
      EXPECT_NEAR(g.train_loss, x.train_loss, tolerance * x.train_loss) << "epoch " << e + 1;
      EXPECT_NEAR(g.val_loss, x.val_loss, tolerance * x.val_loss) << "epoch " << e + 1;
    }
    expect_same_parameters(graphed->model(), eager->model(), tolerance);

    // Two epochs, then a resumed third from last.pt: the three-epoch run's parameters.
    auto two = config;
    two.train.epochs = 2;
    auto first = cuda_trainer(two, data, dir.file("resume" + clip));
    torch::manual_seed(config.seed);
    first->fit();
    auto second = cuda_trainer(config, data, dir.file("resume" + clip));
    Checkpoint last =
        open_checkpoint(dir.file("resume" + clip) + "/checkpoints/last.pt", torch::kCUDA);
    second->restore(last);
    second->fit();
    EXPECT_EQ(second->history().size(), 1u);
    expect_same_parameters(second->model(), graphed->model(), 1e-6);
  }
}

TEST(Cuda, BenchTimesTheGraphedStep) {
  REQUIRE_CUDA();
  BenchArgs args;
  args.config = source_path("configs/tiny.json");
  args.overrides = {"device=cuda"};
  args.batch_sizes = {32, 100};
  args.steps = 5, args.warmup = 2, args.repeats = 2;
  const auto r = run_bench(args);
  EXPECT_EQ(r["train_path"], "cuda-graph");
  EXPECT_GT(r["matmul_gflops"].get<double>(), 1000.0);  // any CUDA card beats a TFLOP/s
  args.overrides.push_back("train.cuda_graphs=false");
  EXPECT_EQ(run_bench(args)["train_path"], "autograd");
}
