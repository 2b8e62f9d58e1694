#include "mmfusion/explain/attribution.hpp"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <string>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/random.hpp"
#include "mmfusion/explain/sobol.hpp"

namespace mmfusion {
namespace {

// The statistics of one value table (mean v per mask), in a fixed layout: values, pure
// terms, Shapley values, leave-one-out drops (each only where it is defined).
struct Statistics {
  std::map<uint32_t, double> values, mobius;
  std::vector<double> shapley, leave_one_out, orders;
};

Statistics statistics(int players, double empty, const std::map<uint32_t, double>& v,
                      const std::vector<std::vector<int>>& permutations,
                      const std::vector<size_t>& permutation_draw) {
  Statistics s;
  s.values = v;
  const uint32_t all = (1u << players) - 1;
  auto value = [&](uint32_t mask) { return mask == 0 ? empty : v.at(mask); };
  const bool complete = v.size() == all;
  if (complete) {
    std::vector<double> shifted(size_t(all) + 1, 0.0);
    for (uint32_t mask = 1; mask <= all; ++mask) shifted[mask] = value(mask) - empty;
    const std::vector<double> pure = mobius_inversion(shifted);
    for (uint32_t mask = 1; mask <= all; ++mask) s.mobius[mask] = pure[mask];
    s.orders = order_sums(pure, players);
    if (permutations.empty()) s.shapley = shapley_values(pure, players);
  } else {
    for (int i = 0; i < players; ++i)
      if (v.count(1u << i)) s.mobius[1u << i] = value(1u << i) - empty;
  }
  if (!permutations.empty()) {
    s.shapley.assign(players, 0.0);
    for (size_t p : permutation_draw) {
      uint32_t prefix = 0;
      for (int player : permutations[p]) {
        const uint32_t next = prefix | (1u << player);
        s.shapley[player] += value(next) - value(prefix);
        prefix = next;
      }
    }
    for (auto& x : s.shapley) x /= double(permutation_draw.size());
  }
  bool loo = v.count(all) > 0;
  for (int i = 0; i < players && loo; ++i) loo = players == 1 || v.count(all & ~(1u << i)) > 0;
  if (loo)
    for (int i = 0; i < players; ++i)
      s.leave_one_out.push_back(value(all) - value(all & ~(1u << i)));
  return s;
}

double quantile(std::vector<double> x, double q) {
  std::sort(x.begin(), x.end());
  const double at = q * double(x.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(at));
  const size_t hi = std::min(lo + 1, x.size() - 1);
  return x[lo] + (at - double(lo)) * (x[hi] - x[lo]);
}

}  // namespace

std::vector<std::vector<int>> sample_permutations(int players, int count, uint64_t seed) {
  std::vector<std::vector<int>> out;
  uint64_t draw = 0;
  for (int p = 0; p < count; ++p) {
    std::vector<int> perm(players);
    std::iota(perm.begin(), perm.end(), 0);
    for (int i = players - 1; i > 0; --i)  // Fisher-Yates
      std::swap(perm[i], perm[splitmix64(seed, ++draw) % uint64_t(i + 1)]);
    out.push_back(perm);
  }
  return out;
}

std::vector<uint32_t> permutation_subsets(const std::vector<std::vector<int>>& permutations) {
  std::set<uint32_t> masks;
  for (const auto& perm : permutations) {
    uint32_t prefix = 0;
    for (int player : perm) masks.insert(prefix |= 1u << player);
  }
  return {masks.begin(), masks.end()};
}

Attribution attribute_values(int players, double empty,
                             const std::map<uint32_t, std::vector<double>>& runs,
                             const AttributionOptions& options) {
  if (players < 1 || players > kMaxAttributionPlayers)
    throw Error("attribution: " + std::to_string(players) + " modalities; 1 to " +
                std::to_string(kMaxAttributionPlayers) + " are supported");
  if (runs.empty()) throw Error("attribution: no subset has a value");
  const uint32_t all = (1u << players) - 1;
  for (const auto& [mask, r] : runs)
    if (mask == 0 || mask > all)
      throw Error("attribution: subset " + std::to_string(mask) + " is not a non-empty subset of " +
                  std::to_string(players) + " modalities");
  const size_t K = runs.begin()->second.size();
  for (const auto& [mask, r] : runs)
    if (r.size() != K || K == 0)
      throw Error("attribution: every subset needs the same number of runs (" + std::to_string(K) +
                  "), subset " + std::to_string(mask) + " has " + std::to_string(r.size()));
  for (const auto& perm : options.permutations) {
    uint32_t prefix = 0;
    for (int player : perm)
      if (!runs.count(prefix |= 1u << player))
        throw Error("attribution: a permutation's prefix (subset " + std::to_string(prefix) +
                    ") has no value");
  }

  auto mean_table = [&](const std::vector<size_t>& draw) {
    std::map<uint32_t, double> v;
    for (const auto& [mask, r] : runs) {
      double sum = 0;
      for (size_t k : draw) sum += r[k];
      v[mask] = sum / double(draw.size());
    }
    return v;
  };
  std::vector<size_t> every_seed(K), every_permutation(options.permutations.size());
  std::iota(every_seed.begin(), every_seed.end(), 0);
  std::iota(every_permutation.begin(), every_permutation.end(), 0);
  const Statistics point =
      statistics(players, empty, mean_table(every_seed), options.permutations, every_permutation);

  std::vector<Statistics> resamples;
  uint64_t draw = 0;
  for (int b = 0; b < options.bootstrap; ++b) {
    std::vector<size_t> seeds(K), perms(options.permutations.size());
    for (auto& k : seeds) k = splitmix64(options.seed, ++draw) % K;
    for (auto& p : perms) p = splitmix64(options.seed, ++draw) % perms.size();
    resamples.push_back(statistics(players, empty, mean_table(seeds), options.permutations, perms));
  }
  const double tail = (1.0 - options.level) / 2.0;
  auto estimate = [&](double value, auto pick) {
    Estimate e{value, value, value};
    if (resamples.empty()) return e;
    std::vector<double> x;
    for (const auto& r : resamples) x.push_back(pick(r));
    e.low = quantile(x, tail), e.high = quantile(x, 1.0 - tail);
    return e;
  };

  Attribution out;
  out.players = players;
  for (const auto& [mask, value] : point.values)
    out.values[mask] = estimate(value, [m = mask](const Statistics& r) { return r.values.at(m); });
  for (const auto& [mask, value] : point.mobius)
    out.mobius[mask] = estimate(value, [m = mask](const Statistics& r) { return r.mobius.at(m); });
  for (size_t i = 0; i < point.shapley.size(); ++i)
    out.shapley.push_back(
        estimate(point.shapley[i], [i](const Statistics& r) { return r.shapley[i]; }));
  for (size_t i = 0; i < point.leave_one_out.size(); ++i)
    out.leave_one_out.push_back(
        estimate(point.leave_one_out[i], [i](const Statistics& r) { return r.leave_one_out[i]; }));
  for (size_t k = 0; k < point.orders.size(); ++k)
    out.orders.push_back(estimate(point.orders[k], [k](const Statistics& r) { return r.orders[k]; }));
  return out;
}

}  // namespace mmfusion
