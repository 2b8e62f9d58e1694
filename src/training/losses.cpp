#include "mmfusion/training/losses.hpp"

#include <algorithm>
#include <cmath>

namespace mmfusion {
namespace {

// sum_i value(o_i - t_i) over n elements, with grad_i = scale * dvalue/dd.
template <typename F>
double elementwise(const float* o, const float* t, int64_t n, float scale, float* g,
                   const F& value_and_slope) {
  double total = 0;
  for (int64_t i = 0; i < n; ++i) {
    float slope = 0;
    total += value_and_slope(o[i] - t[i], slope);
    g[i] = slope * scale;
  }
  return total;
}

}  // namespace

torch::Tensor loss_value(const LossSpec& loss, const torch::Tensor& prediction,
                         const torch::Tensor& target) {
  namespace F = torch::nn::functional;
  switch (loss.kind) {
    case Loss::MSE: return F::mse_loss(prediction, target);
    case Loss::L1: return F::l1_loss(prediction, target);
    case Loss::Huber:
      return F::huber_loss(prediction, target, F::HuberLossFuncOptions().delta(loss.huber_delta));
    case Loss::CrossEntropy: return F::cross_entropy(prediction, target);
  }
  TORCH_CHECK(false, "unknown loss");
}

double loss_and_gradient(const LossSpec& loss, const float* o, int64_t batch, int64_t k,
                         const torch::Tensor& target, double weight, float* g) {
  if (loss.kind == Loss::CrossEntropy) {
    // -log softmax(o)[label], mean over rows; gradient softmax(o) - onehot(label).
    const auto labels = target.to(torch::kInt64).contiguous();
    TORCH_CHECK(labels.numel() == batch, "expected ", batch, " class labels, got ", labels.numel());
    const int64_t* t = labels.data_ptr<int64_t>();
    for (int64_t b = 0; b < batch; ++b)
      TORCH_CHECK(t[b] >= 0 && t[b] < k, "class label ", t[b], " is out of range [0, ", k, ")");
    const float scale = static_cast<float>(weight / batch);
    double total = 0;
    for (int64_t b = 0; b < batch; ++b) {
      const float* row = o + b * k;
      float* grow = g + b * k;
      const float top = *std::max_element(row, row + k);
      double sum = 0;
      for (int64_t j = 0; j < k; ++j) sum += std::exp(double(row[j]) - top);
      total += std::log(sum) + top - row[t[b]];
      for (int64_t j = 0; j < k; ++j)
        grow[j] = static_cast<float>(std::exp(double(row[j]) - top) / sum) * scale;
      grow[t[b]] -= scale;
    }
    return weight * total / batch;
  }
  const auto y = target.to(torch::kFloat32).contiguous();
  const int64_t n = batch * k;
  TORCH_CHECK(y.numel() == n, "expected a target of ", batch, " x ", k, " values, got ", y.sizes());
  const float* t = y.data_ptr<float>();
  const float scale = static_cast<float>(weight / n);
  double total = 0;
  switch (loss.kind) {
    case Loss::MSE:  // d^2, slope 2d
      total = elementwise(o, t, n, scale, g, [](float d, float& slope) {
        slope = 2 * d;
        return double(d) * d;
      });
      break;
    case Loss::L1:  // |d|, slope sign(d)
      total = elementwise(o, t, n, scale, g, [](float d, float& slope) {
        slope = d > 0 ? 1.0f : d < 0 ? -1.0f : 0.0f;
        return double(std::abs(d));
      });
      break;
    case Loss::Huber: {  // d^2 / 2 inside delta, delta (|d| - delta / 2) outside; slope clamp(d)
      const double delta = loss.huber_delta;
      total = elementwise(o, t, n, scale, g, [delta](float d, float& slope) {
        slope = std::clamp(d, static_cast<float>(-delta), static_cast<float>(delta));
        const double ad = std::abs(d);
        return ad < delta ? 0.5 * ad * ad : delta * (ad - 0.5 * delta);
      });
      break;
    }
    case Loss::CrossEntropy: break;  // handled above
  }
  return weight * total / n;
}

}  // namespace mmfusion
