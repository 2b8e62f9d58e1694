// Device-aware tests: they run where LibTorch sees a CUDA device and skip elsewhere.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/commands.hpp"
#include "mmfusion/errors.hpp"
#include "mmfusion/runtime.hpp"
#include "mmfusion/step.hpp"
#include "mmfusion/trainer.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
namespace fs = std::filesystem;

#define REQUIRE_CUDA()                                                        \
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
