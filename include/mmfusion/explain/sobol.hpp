#pragma once
// Variance decomposition of a function of M independent input groups (modalities) over
// group subsets: the functional-ANOVA (Hoeffding-Sobol) split, estimated by pick-freeze
// (docs/methods.md, "How much each modality contributes"). Subsets are bit masks over
// the groups (bit m = group m, config order); mask 0 is the empty set, 2^M - 1 all.
//
//   closed share of S   Var E[f | X_S] / Var f = sum of the pure shares of S's subsets
//   pure share of S     by Moebius inversion of the closed shares
//   total effect of m   E Var(f | X_{-m}) / Var f (Jansen 1999)
//   Shapley value of m  sum over S containing m of pure(S) / |S| (Owen 2014); they sum to 1
//
// A module that knows the estimator only: who evaluates the model on mixed rows (the
// `explain` command, for a fusion model) is not its concern.
#include <cstdint>
#include <vector>

#include <torch/torch.h>

namespace mmfusion {

inline constexpr int kMaxSobolGroups = 8;  // 2^8 subsets

// The number of groups in a subset (its bits).
inline int subset_size(uint32_t mask) { return __builtin_popcount(mask); }

// pure[S] = sum over T subset of S of (-1)^(|S| - |T|) closed[T], with closed[0] = 0.
std::vector<double> mobius_inversion(const std::vector<double>& closed);
// phi_m = sum over S containing m of pure[S] / |S|.
std::vector<double> shapley_values(const std::vector<double>& pure, int groups);
// orders[k - 1] = sum over S of size k of pure[S], k = 1..groups.
std::vector<double> order_sums(const std::vector<double>& pure, int groups);

struct SobolIndices {
  int groups = 0;
  double variance = 0;         // Var f, summed over the output's columns
  std::vector<double> closed;  // [2^M] closed shares (closed[0] = 0, closed[all] = 1)
  std::vector<double> pure;    // [2^M] pure shares, by Moebius inversion
  std::vector<double>
      orders;                 // [M] orders[k - 1] = sum of the pure shares of the subsets of size k
  std::vector<double> total;  // [M] total-effect shares
  std::vector<double> shapley;  // [M]
};

// From evaluations on N row pairs (A, B drawn independently): outputs[mask] is f with the
// groups in `mask` taken from A and the others from B, [N] or [N, K] each, for every mask
// (outputs[all] = f(A), outputs[0] = f(B)). Closed shares use the estimator of Janon et
// al. (2014); with K columns, numerators and denominators are summed over columns.
// `rows` (int64 indices into the N pairs, repeats allowed) restricts the estimate to
// those pairs, which is how a bootstrap resamples; undefined: all pairs.
SobolIndices sobol_indices(const std::vector<torch::Tensor>& outputs, int groups,
                           const torch::Tensor& rows = torch::Tensor());

}  // namespace mmfusion
