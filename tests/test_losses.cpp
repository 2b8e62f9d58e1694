// Losses (losses.hpp): values against their definitions, and the hand-written gradients
// against autograd of LibTorch's own loss functions.
#include <gtest/gtest.h>

#include "helpers.hpp"
#include "mmfusion/training/losses.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

TEST(Losses, ValuesMatchTheirDefinitions) {
  LossSpec t;
  const auto p = torch::tensor({{0.0f}, {1.0f}, {4.0f}});
  const auto y = torch::tensor({{0.5f}, {1.0f}, {1.0f}});  // errors 0.5, 0, 3
  t.kind = Loss::MSE;
  EXPECT_NEAR(loss_value(t, p, y).item<double>(), (0.25 + 0 + 9) / 3, 1e-6);
  t.kind = Loss::L1;
  EXPECT_NEAR(loss_value(t, p, y).item<double>(), (0.5 + 0 + 3) / 3, 1e-6);
  t.kind = Loss::Huber;
  t.huber_delta = 1.0;  // 0.5 e^2 inside delta, delta (|e| - delta / 2) outside
  EXPECT_NEAR(loss_value(t, p, y).item<double>(), (0.125 + 0 + 2.5) / 3, 1e-6);
}

TEST(Losses, CrossEntropyValueMatchesItsDefinition) {
  const auto logits = torch::tensor({{0.0, 0.0}, {2.0, 0.0}});
  const auto labels = torch::tensor({0, 1}, torch::kInt64);
  // -log(1/2) and -log(1 / (1 + e^2)), averaged over rows.
  const double expected = (std::log(2.0) + std::log(1.0 + std::exp(2.0))) / 2;
  EXPECT_NEAR(loss_value({Loss::CrossEntropy, 1.0}, logits, labels).item<double>(), expected, 1e-6);
}

namespace {

// The hand-written loss and gradient against autograd of LibTorch's loss (losses.cpp has
// both; the reference here is torch::nn::functional's own).
void expect_gradient_like_autograd(const LossSpec& loss, int64_t batch, int64_t k, double weight) {
  SCOPED_TRACE(to_string(loss.kind));
  torch::manual_seed(4);
  const auto out = (torch::randn({batch, k}) * 2).contiguous();
  const auto target = loss.kind == Loss::CrossEntropy ? torch::randint(k, {batch}, torch::kInt64)
                                                      : torch::randn({batch, k});
  auto x = out.clone().requires_grad_(true);
  namespace F = torch::nn::functional;
  torch::Tensor reference;
  switch (loss.kind) {
    case Loss::MSE: reference = F::mse_loss(x, target); break;
    case Loss::L1: reference = F::l1_loss(x, target); break;
    case Loss::Huber:
      reference = F::huber_loss(x, target, F::HuberLossFuncOptions().delta(loss.huber_delta));
      break;
    case Loss::CrossEntropy: reference = F::cross_entropy(x, target); break;
  }
  (reference * weight).backward();
  auto grad = torch::empty({batch, k});
  const double value = loss_and_gradient(loss, out.data_ptr<float>(), batch, k, target, weight,
                                         grad.data_ptr<float>());
  EXPECT_NEAR(value, weight * reference.item<double>(),
              1e-5 * std::abs(reference.item<double>()) + 1e-7);
  EXPECT_TRUE(torch::allclose(grad, x.grad(), 1e-5, 1e-7))
      << (grad - x.grad()).abs().max().item<double>();
}

}  // namespace

TEST(Losses, HandWrittenGradientsMatchAutogradForEveryLoss) {
  for (Loss kind : all_values<Loss>()) expect_gradient_like_autograd({kind, 0.7}, 9, 3, 0.25);
}

TEST(Losses, HandWrittenLossChecksTheTargetBeforeReadingIt) {
  float out[6] = {0}, grad[6];
  expect_error<c10::Error>(
      [&] {
        loss_and_gradient({Loss::MSE, 1}, out, 2, 3, torch::zeros({5}), 1, grad);
      },
      "expected a target of 2 x 3 values");
  expect_error<c10::Error>(
      [&] {
        loss_and_gradient({Loss::CrossEntropy, 1}, out, 2, 3, torch::tensor({0, 3}), 1, grad);
      },
      "class label 3 is out of range [0, 3)");
}
