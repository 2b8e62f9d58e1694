#pragma once
// A model over a whole dataset, through StepRunner: its predictions batch by batch, and
// the task's metrics and loss of them.
#include <cstdint>

#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "mmfusion/config/config.hpp"
#include "mmfusion/data/dataset.hpp"
#include "mmfusion/data/scaling.hpp"
#include "mmfusion/training/losses.hpp"
#include "mmfusion/training/step.hpp"

namespace mmfusion {

// Predictions for a whole dataset in evaluation mode, batch by batch: [N, output_dim].
torch::Tensor predict(StepRunner& runner, const Dataset& data, int64_t batch_size,
                      const torch::Device& device);

// The task's metrics (metrics.hpp) of a model's output against the target in its own
// units, plus "loss": the training objective, in the units the model trains on (the
// scaled target when `scaling` scales it). `output` is what the model computed.
nlohmann::json score(const LossSpec& loss, Task task, const Scaling& scaling,
                     const torch::Tensor& output, const torch::Tensor& target,
                     MetricSet set = MetricSet::Default);

// score() of the runner's model on a dataset in its own units (`scaling` is applied to
// its features here).
nlohmann::json evaluate(StepRunner& runner, Task task, const Scaling& scaling, const Dataset& data,
                        int64_t batch_size, const torch::Device& device,
                        MetricSet set = MetricSet::Default);

}  // namespace mmfusion
