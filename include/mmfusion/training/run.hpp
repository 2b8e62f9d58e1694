#pragma once
// One training run from start to end, as `mmfusion train` and every sweep combination run
// it: resolve the config (a file, a document or a checkpoint's), claim the run folder,
// load the data, train, and write the results. Throws ConfigError (exit 2), Error
// (exit 1) or Interrupted (exit 130, after a clean save).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmfusion {

struct TrainArgs {
  std::string config;                  // --config FILE (fresh run)
  nlohmann::json config_doc;           // or the config itself (sweeps); null: use `config`
  std::string resume;                  // --resume CHECKPOINT
  std::vector<std::string> overrides;  // --set KEY=VALUE
  std::string out;                     // --out DIR ("" = runs/<name>-<timestamp>)
};
struct TrainOutcome {
  std::string run_dir;
  nlohmann::json results;  // results.json
  bool leader = true;      // false on the other ranks of a multi-process run
};
TrainOutcome run_train(const TrainArgs& args);

}  // namespace mmfusion
