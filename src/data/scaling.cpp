#include "mmfusion/data/scaling.hpp"

#include <map>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/data/sequence.hpp"

namespace mmfusion {
namespace {

// Relative spread below which a float32 column counts as constant: a few units of float32
// rounding (dividing by such a spread would blow rounding noise up to order 1).
constexpr double kConstantSpread = 8 * 1.1920929e-7;

// Per-column mean and scale of x [N, K], in float64, stored as float32. A column that is
// constant (all values equal, or spread only by rounding: std <= kConstantSpread * |mean|)
// gets scale 1: it becomes (about) 0 everywhere rather than NaN or noise.
std::pair<torch::Tensor, torch::Tensor> column_statistics(const torch::Tensor& x) {
  const auto x64 = x.to(torch::kFloat64);
  const auto mean = x64.mean(0);
  const auto std = x64.std(0, /*unbiased=*/false);
  const auto constant = (x.amax(0) == x.amin(0)) | (std <= kConstantSpread * mean.abs()) |
                        (std.to(torch::kFloat32) <= 0);
  const auto scale = torch::where(constant, torch::ones_like(std), std).to(torch::kFloat32);
  return {mean.to(torch::kFloat32), scale};
}

// A modality's statistics: of its columns, or of a sequence's features over valid steps.
std::pair<torch::Tensor, torch::Tensor> modality_statistics(const torch::Tensor& x,
                                                            int64_t step_dim) {
  if (step_dim == 0) return column_statistics(x);
  const auto steps = sequence::values(x, step_dim).reshape({-1, step_dim});
  const auto valid = sequence::mask(x, step_dim).reshape({-1}) > 0;
  const auto kept = steps.index({valid});
  if (kept.size(0) == 0)  // no valid step anywhere: nothing to scale by
    return {torch::zeros({step_dim}), torch::ones({step_dim})};
  return column_statistics(kept);
}

// Per name: the step size of the modality of that name when it is a sequence, else 0.
std::vector<int64_t> step_dims(const std::vector<ModalityConfig>& modalities,
                               const std::vector<std::string>& names) {
  std::vector<int64_t> out;
  for (const auto& name : names) {
    int64_t d = 0;
    for (const auto& m : modalities)
      if (m.name == name && m.sequence) d = m.dim;
    out.push_back(d);
  }
  return out;
}

}  // namespace

Scaling::Plan Scaling::plan(const ExperimentConfig& config) {
  return {config.data.standardize == Standardize::ZScore,
          config.data.standardize_target && config.task == Task::Regression};
}

Scaling Scaling::fit(const DataConfig& data, const Dataset& train) {
  Scaling s;
  if (data.standardize == Standardize::ZScore) {
    s.names_ = train.names;
    s.step_dims_ = step_dims(data.modalities, train.names);
    for (size_t m = 0; m < train.features.size(); ++m) {
      auto [mean, scale] = modality_statistics(train.features[m].cpu(), s.step_dims_[m]);
      s.mean_.push_back(mean);
      s.scale_.push_back(scale);
    }
  }
  if (data.standardize_target && train.target.defined() && train.target.is_floating_point()) {
    auto [mean, scale] = column_statistics(train.target.cpu().reshape({train.size(), -1}));
    s.target_mean_ = mean;
    s.target_scale_ = scale;
  }
  return s;
}

Dataset Scaling::features(const Dataset& data) const {
  if (!scales_features()) return data;
  Dataset out = data;
  for (size_t m = 0; m < out.features.size(); ++m) {
    const auto& x = out.features[m];
    const auto mean = mean_[m].to(x.device()), scale = scale_[m].to(x.device());
    if (step_dims_[m] == 0) {
      out.features[m] = (x - mean) / scale;
      continue;
    }
    const int64_t d = step_dims_[m];
    out.features[m] =
        sequence::pack((sequence::values(x, d) - mean) / scale, sequence::lengths(x));
  }
  return out;
}

torch::Tensor Scaling::target(const torch::Tensor& y) const {
  if (!scales_target() || !y.defined() || !y.is_floating_point()) return y;
  return (y - target_mean_.to(y.device())) / target_scale_.to(y.device());
}

torch::Tensor Scaling::original_units(const torch::Tensor& output) const {
  if (!scales_target()) return output;
  return output * target_scale_.to(output.device()) + target_mean_.to(output.device());
}

std::vector<std::pair<std::string, torch::Tensor>> Scaling::named_tensors() const {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (size_t m = 0; m < mean_.size(); ++m) {
    out.emplace_back("mean_" + names_[m], mean_[m]);
    out.emplace_back("scale_" + names_[m], scale_[m]);
  }
  if (scales_target()) {
    out.emplace_back("target_mean", target_mean_);
    out.emplace_back("target_scale", target_scale_);
  }
  return out;
}

Scaling Scaling::from_named(const std::vector<std::pair<std::string, torch::Tensor>>& named,
                            const ExperimentConfig& config, const std::string& where) {
  std::map<std::string, torch::Tensor> left(named.begin(), named.end());
  auto take = [&](const std::string& name, int64_t size, bool is_scale) {
    auto it = left.find(name);
    if (it == left.end()) throw Error(where + ": no " + name + " (the config says it was fitted)");
    const torch::Tensor t = it->second;
    left.erase(it);
    if (t.scalar_type() != torch::kFloat32 || t.dim() != 1 || t.size(0) != size)
      throw Error(where + ": " + name + " is " + c10::str(t.sizes()) + " " +
                  c10::toString(t.scalar_type()) + ", expected [" + std::to_string(size) +
                  "] Float");
    const auto c = t.cpu();
    if (!torch::isfinite(c).all().item<bool>() || (is_scale && !(c > 0).all().item<bool>()))
      throw Error(where + ": " + name +
                  (is_scale ? " holds values that are not finite and > 0"
                            : " holds values that are not finite"));
    return t;
  };
  const Plan wanted = plan(config);
  Scaling s;
  if (wanted.features) {
    for (const auto& m : config.data.modalities) {
      s.step_dims_.push_back(m.sequence ? m.dim : 0);
      s.names_.push_back(m.name);
      s.mean_.push_back(take("mean_" + m.name, m.dim, false));
      s.scale_.push_back(take("scale_" + m.name, m.dim, true));
    }
  }
  if (wanted.target) {
    s.target_mean_ = take("target_mean", config.model.output_dim, false);
    s.target_scale_ = take("target_scale", config.model.output_dim, true);
  }
  if (!left.empty()) throw Error(where + ": unexpected entry " + left.begin()->first);
  return s;
}

nlohmann::json Scaling::summary() const {
  return {{"features", to_string(scales_features() ? Standardize::ZScore : Standardize::None)},
          {"target", scales_target()}};
}

}  // namespace mmfusion
