#include "mmfusion/training/evaluation.hpp"

#include "mmfusion/training/metrics.hpp"

namespace mmfusion {

using torch::Tensor;

Tensor predict(StepRunner& runner, const Dataset& data, int64_t batch_size,
               const torch::Device& device) {
  torch::InferenceMode guard;
  auto& model = runner.model();
  const bool was_training = model.is_training();
  model.eval();
  std::vector<Tensor> outputs;
  const int64_t n = data.size();
  for (int64_t b0 = 0; b0 < n; b0 += batch_size) {
    const int64_t b1 = std::min(n, b0 + batch_size);
    std::vector<Tensor> inputs;
    for (const auto& f : data.features) inputs.push_back(f.slice(0, b0, b1).to(device));
    outputs.push_back(runner.infer(inputs));
  }
  model.train(was_training);
  return torch::cat(outputs, 0);
}

nlohmann::json score(const LossSpec& loss, Task task, const Scaling& scaling, const Tensor& output,
                     const Tensor& target, MetricSet set) {
  const auto y = target.to(output.device());
  nlohmann::json m = task_metrics(task, scaling.original_units(output), y, set);
  m[metric::kLoss] = loss_value(loss, output, scaling.target(y)).item<double>();
  return m;
}

nlohmann::json evaluate(StepRunner& runner, Task task, const Scaling& scaling, const Dataset& data,
                        int64_t batch_size, const torch::Device& device, MetricSet set) {
  return score(runner.loss(), task, scaling,
               predict(runner, scaling.features(data), batch_size, device), data.target, set);
}

}  // namespace mmfusion
