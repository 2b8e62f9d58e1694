#include "mmfusion/models/intense.hpp"

#include <cmath>
#include <stdexcept>

namespace mmfusion {

torch::Tensor interaction_block(const std::vector<torch::Tensor>& u,
                                const std::vector<torch::Tensor>& means) {
  if (u.empty() || (!means.empty() && u.size() != means.size()))
    throw std::invalid_argument(
        "interaction_block: one mean per factor (or none), at least one factor");
  auto centred = [&](size_t m) { return means.empty() ? u[m] : u[m] - means[m]; };
  const int64_t n = u.front().size(0);
  torch::Tensor block = centred(0).reshape({n, -1});
  for (size_t m = 1; m < u.size(); ++m) {
    const torch::Tensor factor = centred(m);  // [N, d_m]
    // Row-major outer product: the new factor's index varies fastest.
    block = (block.unsqueeze(2) * factor.unsqueeze(1)).reshape({n, -1});
  }
  return block;
}

torch::Tensor block_regularizer(const torch::Tensor& weight,
                                const std::vector<std::pair<int64_t, int64_t>>& blocks, double p) {
  if (!(p >= 1)) throw std::invalid_argument("block_regularizer: p must be >= 1");
  const double q = 2 * p / (p + 1);
  torch::Tensor sum = torch::zeros({}, weight.options());
  for (const auto& [begin, end] : blocks) sum = sum + weight.slice(1, begin, end).norm().pow(q);
  return sum.pow(2 / q);
}

std::vector<double> relevance_scores(const std::vector<double>& block_norms, double p) {
  if (!(p >= 1)) throw std::invalid_argument("relevance_scores: p must be >= 1");
  double denominator = 0;
  for (double n : block_norms) denominator += std::pow(n, 2 * p / (p + 1));
  denominator = std::pow(denominator, 1 / p);
  std::vector<double> scores;
  for (double n : block_norms)
    scores.push_back(denominator > 0 ? std::pow(n, 2 / (p + 1)) / denominator : 0.0);
  return scores;
}

}  // namespace mmfusion
