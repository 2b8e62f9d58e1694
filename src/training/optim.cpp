#include "mmfusion/training/optim.hpp"

#include <cmath>

#include <ATen/Parallel.h>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/simd.hpp"

namespace mmfusion {
namespace {

std::vector<torch::optim::OptimizerParamGroup> base_groups(
    const std::vector<FlatAdam::Group>& groups, double weight_decay) {
  std::vector<torch::optim::OptimizerParamGroup> out;
  for (const auto& g : groups)
    out.emplace_back(g.params, std::make_unique<torch::optim::AdamOptions>(
                                   torch::optim::AdamOptions(g.lr).weight_decay(weight_decay)));
  return out;
}

}  // namespace

FlatAdam::FlatAdam(const std::vector<Group>& groups, double weight_decay, bool decoupled,
                   double beta1, double beta2, double eps)
    : Optimizer(base_groups(groups, weight_decay),
                std::make_unique<torch::optim::AdamOptions>(
                    torch::optim::AdamOptions().weight_decay(weight_decay))),
      weight_decay_(weight_decay),
      beta1_(beta1),
      beta2_(beta2),
      eps_(eps),
      decoupled_(decoupled) {
  int64_t total = 0;
  torch::TensorOptions options;
  for (const auto& g : groups)
    for (const auto& p : g.params) total += p.numel(), options = p.options();
  TORCH_CHECK(total > 0, "FlatAdam needs parameters");
  flat_ = torch::empty({total}, options.requires_grad(false));
  grad_ = torch::zeros({total}, options.requires_grad(false));
  torch::NoGradGuard no_grad;
  int64_t offset = 0;
  for (const auto& g : groups) {
    const int64_t begin = offset;
    for (auto p : g.params) {
      const int64_t n = p.numel();
      auto slot = flat_.slice(0, offset, offset + n);
      slot.copy_(p.detach().reshape({-1}));
      p.set_data(slot.view(p.sizes()));
      p.mutable_grad() = grad_.slice(0, offset, offset + n).view(p.sizes());
      offset += n;
    }
    if (offset > begin) segments_.push_back({begin, offset, g.lr});
  }
  exp_avg_ = torch::zeros_like(flat_);
  exp_avg_sq_ = torch::zeros_like(flat_);
  host_loop_ = flat_.device().is_cpu() && flat_.scalar_type() == torch::kFloat32;
  device_step_ = torch::zeros({}, options.dtype(torch::kFloat64).requires_grad(false));
}

int64_t FlatAdam::steps() const {
  return host_loop_ ? step_ : static_cast<int64_t>(std::llround(device_step_.item<double>()));
}

torch::Tensor FlatAdam::step(LossClosure closure) {
  torch::NoGradGuard no_grad;
  torch::Tensor loss;
  if (closure) {
    at::AutoGradMode enable_grad(true);
    loss = closure();
  }
  if (host_loop_) {
    // The same arithmetic in one pass over memory instead of six.
    ++step_;
    const double bias_correction1 = 1 - std::pow(beta1_, double(step_));
    const double bias_correction2 = 1 - std::pow(beta2_, double(step_));
    const float b1 = static_cast<float>(beta1_), b2 = static_cast<float>(beta2_);
    const float c1 = static_cast<float>(1 - beta1_), c2 = static_cast<float>(1 - beta2_);
    const float sqrt_bc2 = static_cast<float>(std::sqrt(bias_correction2)),
                eps = static_cast<float>(eps_);
    float* p = flat_.data_ptr<float>();
    const float* g = grad_.data_ptr<float>();
    float* m = exp_avg_.data_ptr<float>();
    float* v = exp_avg_sq_.data_ptr<float>();
    for (const auto& s : segments_) {
      const float step_size = static_cast<float>(-s.lr / bias_correction1);
      const float l2 = decoupled_ ? 0.0f : static_cast<float>(weight_decay_);
      const float shrink = decoupled_ ? static_cast<float>(1 - s.lr * weight_decay_) : 1.0f;
      at::parallel_for(s.begin, s.end, 16384, [&](int64_t i0, int64_t i1) {
        simd::adam_update(p + i0, g + i0, m + i0, v + i0, i1 - i0, b1, c1, b2, c2, sqrt_bc2, eps,
                          step_size, l2, shrink);
      });
    }
    return loss;
  }
  // Device tensors throughout: p -= lr / bc1 * m / (sqrt(v) / sqrt(bc2) + eps), written
  // as one addcdiv whose divisor carries the scalars (PyTorch's capturable Adam).
  device_step_.add_(1);
  const auto bias_correction1 = 1 - torch::pow(beta1_, device_step_);
  const auto sqrt_bias_correction2 = (1 - torch::pow(beta2_, device_step_)).sqrt_();
  for (const auto& s : segments_) {
    auto p = flat_.slice(0, s.begin, s.end);
    auto g = grad_.slice(0, s.begin, s.end);
    auto m = exp_avg_.slice(0, s.begin, s.end);
    auto v = exp_avg_sq_.slice(0, s.begin, s.end);
    if (weight_decay_ != 0) {
      if (decoupled_)
        p.mul_(1 - s.lr * weight_decay_);
      else
        g = g.add(p, weight_decay_);
    }
    m.mul_(beta1_).add_(g, 1 - beta1_);
    v.mul_(beta2_).addcmul_(g, g, 1 - beta2_);
    const auto neg_step_size = bias_correction1.reciprocal() * -s.lr;
    const auto denom =
        (v.sqrt() / (sqrt_bias_correction2 * neg_step_size)).add_(eps_ / neg_step_size);
    p.addcdiv_(m, denom);
  }
  return loss;
}

void FlatAdam::save(torch::serialize::OutputArchive& archive) const {
  archive.write("flat_adam_step", torch::tensor(steps(), torch::kInt64), /*is_buffer=*/true);
  archive.write("flat_adam_exp_avg", exp_avg_, /*is_buffer=*/true);
  archive.write("flat_adam_exp_avg_sq", exp_avg_sq_, /*is_buffer=*/true);
}

void FlatAdam::load(torch::serialize::InputArchive& archive) {
  torch::Tensor step, m, v;
  if (!archive.try_read("flat_adam_step", step, true) ||
      !archive.try_read("flat_adam_exp_avg", m, true) ||
      !archive.try_read("flat_adam_exp_avg_sq", v, true))
    throw Error(
        "the optimizer state is not a fused Adam state (was the run trained with "
        "train.flat_optimizer false?)");
  if (m.numel() != exp_avg_.numel() || v.numel() != exp_avg_sq_.numel())
    throw Error("the optimizer state holds " + std::to_string(m.numel()) + " values, the model " +
                std::to_string(exp_avg_.numel()));
  torch::NoGradGuard no_grad;
  exp_avg_.copy_(m);
  exp_avg_sq_.copy_(v);
  step_ = step.item<int64_t>();
  device_step_.fill_(static_cast<double>(step_));
}

void clear_gradients(torch::optim::Optimizer& optimizer) {
  if (auto* flat = dynamic_cast<FlatAdam*>(&optimizer))
    flat->zero_flat_grad();
  else
    optimizer.zero_grad();
}

std::unique_ptr<torch::optim::Optimizer> make_optimizer(const TrainConfig& t,
                                                        MultimodalModelImpl& model) {
  // Split the parameters into the factor group (own lr) and the rest.
  std::vector<torch::Tensor> factors =
      t.factor_lr > 0 ? model.factor_parameters() : std::vector<torch::Tensor>{};
  std::vector<torch::Tensor> others;
  for (const auto& p : model.parameters()) {
    const bool is_factor = std::any_of(factors.begin(), factors.end(), [&](const torch::Tensor& f) {
      return f.unsafeGetTensorImpl() == p.unsafeGetTensorImpl();
    });
    if (!is_factor) others.push_back(p);
  }
  auto groups_for = [&](auto make_options) {
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(others, make_options(t.lr));
    if (!factors.empty()) groups.emplace_back(factors, make_options(t.factor_lr));
    return groups;
  };
  auto flat = [&](bool decoupled) {
    std::vector<FlatAdam::Group> groups{{others, t.lr}};
    if (!factors.empty()) groups.push_back({factors, t.factor_lr});
    return std::make_unique<FlatAdam>(groups, t.weight_decay, decoupled);
  };
  switch (t.optimizer) {
    case OptimizerType::Adam: {
      if (t.flat_optimizer) return flat(/*decoupled=*/false);
      auto opts = [&](double lr) {
        return std::make_unique<torch::optim::AdamOptions>(
            torch::optim::AdamOptions(lr).weight_decay(t.weight_decay));
      };
      return std::make_unique<torch::optim::Adam>(groups_for(opts), *opts(t.lr));
    }
    case OptimizerType::AdamW: {
      if (t.flat_optimizer) return flat(/*decoupled=*/true);
      auto opts = [&](double lr) {
        return std::make_unique<torch::optim::AdamWOptions>(
            torch::optim::AdamWOptions(lr).weight_decay(t.weight_decay));
      };
      return std::make_unique<torch::optim::AdamW>(groups_for(opts), *opts(t.lr));
    }
    case OptimizerType::SGD: {
      auto opts = [&](double lr) {
        return std::make_unique<torch::optim::SGDOptions>(
            torch::optim::SGDOptions(lr).momentum(t.momentum).weight_decay(t.weight_decay));
      };
      return std::make_unique<torch::optim::SGD>(groups_for(opts), *opts(t.lr));
    }
  }
  throw std::logic_error("unknown optimizer");
}

}  // namespace mmfusion
