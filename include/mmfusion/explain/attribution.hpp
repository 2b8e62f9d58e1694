#pragma once
// Contributions of players (modalities) to a value function v over their subsets, v(S)
// measured by training one model per subset S with several seeds (docs/attribute.md):
//
//   Moebius (pure) term of S   m(S) = sum over T subset of S of (-1)^(|S|-|T|) v(T)
//   Shapley value of i         phi_i = sum over S containing i of m(S) / |S|
//                              (they sum to v(all) - v(empty))
//   leave-one-out drop of i    v(all) - v(all without i)
//
// Every estimate comes with a percentile interval from a bootstrap over the seeds, paired:
// one resample draws seed indices with replacement and takes the same draws in every
// subset (run k of every subset was trained with the same seed). With sampled
// permutations (Castro, Gomez and Tejada, 2009) the Shapley values are the mean marginal
// contributions along the permutations, and a resample draws the permutations too.
//
// The math alone: who trains the models (`attribute`) is not its concern.
#include <cstdint>
#include <map>
#include <vector>

namespace mmfusion {

inline constexpr int kMaxAttributionPlayers = 16;

struct Estimate {
  double value = 0, low = 0, high = 0;  // the estimate and its interval
};

struct AttributionOptions {
  int bootstrap = 2000;  // resamples (0: no intervals; low = high = value)
  double level = 0.95;   // the intervals' coverage
  uint64_t seed = 0;     // of the resamples
  // Non-empty: the Shapley values by these permutations of the players (each a list of
  // every player once), whose prefixes must all be among the subsets.
  std::vector<std::vector<int>> permutations;
};

struct Attribution {
  int players = 0;
  std::map<uint32_t, Estimate> values;  // every subset given: the mean over its runs
  // Pure terms: of every non-empty subset when every subset is given, else of the single
  // players whose subset is given (m({i}) = v({i}) - v(empty)).
  std::map<uint32_t, Estimate> mobius;
  std::vector<Estimate> shapley;        // [players]; empty without every subset or permutations
  std::vector<Estimate> leave_one_out;  // [players]; empty without the full set and each N\{i}
  std::vector<Estimate> orders;  // [players]: the sum of the pure terms of each size; empty
                                 // without every subset
};

// `runs[mask]`: v(mask) per seed, the same number of runs for every mask, run k of every
// mask trained with the same seed; `empty`: v(empty), a constant. Error when the runs are
// uneven or a permutation's prefix is missing.
Attribution attribute_values(int players, double empty,
                             const std::map<uint32_t, std::vector<double>>& runs,
                             const AttributionOptions& options);

// `count` random permutations of 0..players-1, from `seed` alone.
std::vector<std::vector<int>> sample_permutations(int players, int count, uint64_t seed);

// The non-empty prefixes of the permutations (as masks), each once, in increasing order.
std::vector<uint32_t> permutation_subsets(const std::vector<std::vector<int>>& permutations);

}  // namespace mmfusion
