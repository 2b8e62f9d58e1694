#pragma once
// How much each modality, and each combination of modalities, contributes to what a
// trained model predicts (docs/explain.md): the Sobol decomposition (sobol.hpp) of the
// model's output variance over modality subsets, by pick-freeze on pairs of rows of a
// dataset, with bootstrap intervals. Works for any model: it only evaluates it.
//
// Pick-freeze mixes the modalities of two rows, so it treats the modalities as
// independent; on dependent modalities the model is evaluated on combinations the data
// never holds, and the shares describe the model there (docs/explain.md says more).
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "mmfusion/config/config.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/data/scaling.hpp"

namespace mmfusion {

class StepRunner;

struct ExplainOptions {
  int64_t samples = 65536;  // row pairs (A, B), drawn with replacement, A != B
  int64_t bootstrap = 100;  // resamples of the pairs for the intervals; 0: none
  uint64_t seed = 0;        // the pairs and the resamples
  int64_t batch_size = 4096;
  int64_t emap_background = 64;  // EMAP: background rows per modality (emap_json); 0: none
};

// The decomposition of the runner's model on `data` (features in their own units;
// `scaling` as the model was trained). What is decomposed: the prediction in the
// target's own units (regression; several columns: summed variances), or the predicted
// class probabilities (classification; the variances of the K probabilities summed).
// Returns explain.json's object without "truth" values (see attach_truth):
//   {"model", "output", "samples", "bootstrap", "output_variance", "assumption",
//    "subsets": [{"name", "modalities", "share", "closed", "ci", "truth"}],
//    "orders": {"1": x, "2": x, ...}, "total_effect": {m: x}, "shapley": {m: x},
//    "orders_ci", "total_effect_ci", "shapley_ci": the same keys, each [lo, hi] or null}
// Subsets are listed by size, then in the config's modality order; interval: the
// bootstrap's 2.5% and 97.5% quantiles (null without a bootstrap). For an LMF each subset
// also has "lmf_exact": the share of its term in the model's own expansion of the
// product over modalities (centred factors; docs/explain.md), computed on the rows
// themselves, in the model's output units (logits for classification). For a model with
// relevance scores (InTense) each subset has "relevance": its block's score, or null when
// the model has no block for it. The caller adds "model" and "data".
// `modalities` names the sequences among the data's modalities: the swaps move a row's whole
// sequence with its length, and the dependence check reads each sequence's mean over its
// valid steps.
nlohmann::json explain_model(StepRunner& runner, Task task, const Scaling& scaling,
                             const Dataset& data, const ExplainOptions& options,
                             const torch::Device& device,
                             const std::vector<ModalityConfig>& modalities = {});

// EMAP (Hessel and Lee, EMNLP 2020): the model's metric when its output is replaced by
// its additive projection, the first-order functional-ANOVA part under the product of
// the modalities' marginals: for row i, sum over modalities m of the mean output with m
// at row i and every other modality from `background` random rows (drawn per modality),
// minus (M - 1) times the mean output on the background rows. Computed in the model's
// own output units (logits for classification), scored as evaluation scores: for a model
// that is additive in its output (late fusion) it equals the model exactly. `data` has
// the model's scaled features; `target` its own units. {"metric", "model", "additive",
// "background"}.
nlohmann::json emap_json(StepRunner& runner, Task task, const Scaling& scaling,
                         const Dataset& data, const torch::Tensor& target, int64_t background,
                         uint64_t seed, int64_t batch_size, const torch::Device& device);

// How far each modality is predictable from the others, on (up to 2000 of) the rows: the
// 5-fold cross-validated R² of a ridge regression from the other modalities' features to
// the modality's first (up to 3) principal components, variance-weighted over them.
// {"method", "rows", "threshold", "r2": {modality: x}, "dependent": [modalities above the
// threshold]}; null for one modality. explain_model puts it under "dependence".
// Above 0.1: measured 0.00 on independent synthetic modalities, 0.20 to 0.39 with the
// default shared latent, 0.12 to 0.29 on leaves100 (docs/explain.md).
constexpr double kDependenceThreshold = 0.1;
nlohmann::json dependence_json(const Dataset& data, uint64_t seed);

// Puts the generator's truth beside each subset ("truth": share or null) and a "truth"
// summary in `result`; where the truth is not exact (dependent modalities) every subset's
// truth is null and the summary says why.
void attach_truth(nlohmann::json& result, const nlohmann::json& truth);

// The console table of an explain.json object.
std::string explain_table(const nlohmann::json& result);
// explain.csv: one row per subset, order, total effect, Shapley value and relevance score.
std::string explain_csv(const nlohmann::json& result);
// explain.svg: each subset's share with its interval, the truth as a second series.
std::string explain_svg(const nlohmann::json& result);

}  // namespace mmfusion
