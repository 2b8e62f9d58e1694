#pragma once
// `mmfusion attribute`: how much each modality and each combination of modalities
// contributes, measured by retraining (docs/attribute.md). One model per subset S of the
// modalities (the same config with the others removed from the model and the data) and
// per seed (train.seed; the data and splits stay the same), each an ordinary run folder
// DIR/<a+b>_seed-<k>/ trained by the run pool (run_pool.hpp: --jobs, --shard, resumable,
// locked). v(S) is the test R^2 (regression) or the information gain over the class
// frequencies in bits (classification); v(empty) is the best constant predictor,
// computed. From v: Moebius terms, Shapley values, leave-one-out drops, with intervals
// from a bootstrap over seeds paired by seed (attribution.hpp). DIR/attribute.json, .csv
// and .svg are rebuilt from the folder alone (--report DIR).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mmfusion/experiments/run_pool.hpp"

namespace mmfusion {

// --subsets all: every subset up to this many modalities.
inline constexpr int kMaxAllSubsetsModalities = 6;

struct AttributeArgs {
  std::string config;                  // --config FILE
  std::vector<std::string> overrides;  // --set KEY=VALUE
  // all (2^M - 1 subsets), singles-and-leave-one-out (the singles, the full set and each
  // set of all but one), or sampled (the prefixes of --permutations random orders).
  std::string subsets = "all";
  int seeds = 3;         // --seeds K: runs per subset, train.seed = the config's + 0..K-1
  int permutations = 0;  // sampled: random orders (0: 2 M)
  int bootstrap = 2000;  // resamples for the intervals
  int jobs = 1;
  std::string shard;  // K/N
  std::string out;    // default runs/attribute-<name>
  bool dry_run = false;
  std::string report;          // --report DIR: rebuild DIR's report, train nothing
  std::string worker;          // --worker NAME: train that run of --out's plan (what --jobs starts)
  int64_t worker_threads = 0;  // --worker-threads T
  std::string executable;      // the mmfusion executable --jobs starts workers with
};

struct AttributeOutcome {
  RunsOutcome runs;
  // attribute.json's content (with "folder"), or null when runs are missing (then
  // `missing` names them).
  nlohmann::json result;
  std::vector<std::string> missing;
};

AttributeOutcome run_attribute(const AttributeArgs& args);

// The console table of an attribute.json.
std::string attribute_table(const nlohmann::json& result);

}  // namespace mmfusion
