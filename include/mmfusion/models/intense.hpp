#pragma once
// The arithmetic of Interpretable Tensor Fusion (InTense; Varshneya et al., IJCAI 2024;
// docs/intense.md) that the `intense` model type is built on: interaction
// blocks with their lower-order parts removed, the l_{2,q} block regulariser of the fusion layer,
// and the blocks' relevance scores. Tensor maths only: it knows nothing of models, configs or
// training (IntenseImpl in models.hpp uses it).
#include <cstdint>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace mmfusion {

// The interaction block of a modality set S from the projected encodings u_m ([N, d_m]
// each, in the set's order) and their means mu_m ([d_m]): the flattened outer product of
// the centred factors, entry (i, j, k, ...) = prod_m (u_m - mu_m)[i_m], row-major in the
// set's order, [N, prod d_m]. Expanding the product shows what centring removes: every
// lower-order part (prod over T of u) (prod over S \ T of mu), T a strict subset, with
// its inclusion-exclusion sign. With independent modalities the block is uncorrelated
// with every function of a strict subset of S, for any order and any number of
// modalities. No means: the factors are centred already (the model's projections are).
torch::Tensor interaction_block(const std::vector<torch::Tensor>& u,
                                const std::vector<torch::Tensor>& means = {});

// The l_{2,q} block norm regulariser, q = 2p / (p + 1):
// (sum_b ||W_b||_F^q)^(2/q), W_b the columns [begin, end) of `weight` ([out, in]).
// Differentiable in `weight` (nothing is detached: the public code's first release
// detached the block norms, and its regulariser did nothing).
torch::Tensor block_regularizer(const torch::Tensor& weight,
                                const std::vector<std::pair<int64_t, int64_t>>& blocks, double p);

// Relevance of each block from the blocks' Frobenius norms n_b:
// s_b = n_b^(2/(p+1)) / (sum_b' n_b'^(2p/(p+1)))^(1/p), so that ||s||_p = 1 for every
// p >= 1 (for p = 1 the scores sum to 1). The public code does not renormalise for
// p != 1; this one always does. All zero norms give all zero scores.
std::vector<double> relevance_scores(const std::vector<double>& block_norms, double p);

}  // namespace mmfusion
