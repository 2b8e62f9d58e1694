#include "mmfusion/explain/sobol.hpp"

#include "mmfusion/base/errors.hpp"

namespace mmfusion {
std::vector<double> mobius_inversion(const std::vector<double>& closed) {
  const uint32_t subsets = static_cast<uint32_t>(closed.size());
  std::vector<double> pure(subsets, 0.0);
  for (uint32_t s = 1; s < subsets; ++s) {
    // Every non-empty T subset of S: the standard walk t = (t - 1) & s.
    for (uint32_t t = s; t != 0; t = (t - 1) & s)
      pure[s] += ((subset_size(s) - subset_size(t)) % 2 ? -1.0 : 1.0) * closed[t];
  }
  return pure;
}

std::vector<double> shapley_values(const std::vector<double>& pure, int groups) {
  std::vector<double> phi(groups, 0.0);
  for (uint32_t s = 1; s < pure.size(); ++s)
    for (int m = 0; m < groups; ++m)
      if (s & (1u << m)) phi[m] += pure[s] / subset_size(s);
  return phi;
}

std::vector<double> order_sums(const std::vector<double>& pure, int groups) {
  std::vector<double> orders(groups, 0.0);
  for (uint32_t s = 1; s < pure.size(); ++s) orders[subset_size(s) - 1] += pure[s];
  return orders;
}

SobolIndices sobol_indices(const std::vector<torch::Tensor>& outputs, int groups,
                           const torch::Tensor& rows) {
  if (groups < 1 || groups > kMaxSobolGroups)
    throw Error("variance decomposition: " + std::to_string(groups) + " groups; 1 to " +
                std::to_string(kMaxSobolGroups) + " are supported (2^M subsets)");
  const uint32_t subsets = 1u << groups, all = subsets - 1;
  if (outputs.size() != subsets)
    throw Error("variance decomposition: expected " + std::to_string(subsets) +
                " evaluations, got " + std::to_string(outputs.size()));
  auto column = [&](uint32_t mask) {
    auto y = outputs[mask].to(torch::kFloat64);
    if (y.dim() == 1) y = y.unsqueeze(1);
    return rows.defined() ? y.index_select(0, rows.to(y.device())) : y;
  };
  const torch::Tensor ya = column(all);
  SobolIndices r;
  r.groups = groups;
  r.variance = ya.var(0, /*unbiased=*/false).sum().item<double>();
  r.closed.assign(subsets, 0.0);
  r.closed[all] = 1.0;
  if (r.variance > 0) {
    for (uint32_t s = 1; s < all; ++s) {
      const torch::Tensor ys = column(s);
      const auto mean = ((ya + ys) / 2).mean(0);
      const double covariance = ((ya * ys).mean(0) - mean * mean).sum().item<double>();
      const double variance =
          (((ya * ya + ys * ys) / 2).mean(0) - mean * mean).sum().item<double>();
      r.closed[s] = variance > 0 ? covariance / variance : 0.0;
    }
  }
  r.pure = mobius_inversion(r.closed);
  r.orders = order_sums(r.pure, groups);
  r.total.assign(groups, 0.0);
  for (int m = 0; m < groups && r.variance > 0; ++m) {
    const auto d = ya - column(all ^ (1u << m));
    r.total[m] = (d * d).mean(0).sum().item<double>() / (2 * r.variance);
  }
  r.shapley = shapley_values(r.pure, groups);
  return r;
}

}  // namespace mmfusion
