#pragma once
// One function per subcommand that reads a model or a config (eval, predict, inspect,
// explain, synth, validate); train is training/run.hpp, and mkl, sweep and bench have
// their own modules. The executable parses the command line into these argument structs
// and calls them; tests call them in-process. They throw ConfigError (exit 2), Error (exit 1) or
// Interrupted (exit 130).
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "mmfusion/explain/explain.hpp"
#include "mmfusion/explain/robustness.hpp"
#include "mmfusion/training/run.hpp"

namespace mmfusion {

struct EvalArgs {
  std::string checkpoint;
  std::string split = "test";  // when no data file is given
  std::string data;            // a data file (with targets)
  std::string device = "auto";
};
nlohmann::json run_eval(const EvalArgs& args);

struct ExplainArgs {
  std::string checkpoint;
  std::string split = "test";  // when no data file is given
  std::string data;            // a data file (targets not needed)
  ExplainOptions options;
  std::string out;  // default: the run folder's explain/
  std::string device = "auto";
  bool force = false;
};
// explain_model (explain.hpp) of a checkpoint on a split or a data file, with the
// generator's truth where it is known (synthetic splits; NAME.truth.json beside a data
// file). Writes explain.json, explain.csv and explain.svg into the out folder (refusing
// to replace an earlier explain.json without force) and returns the JSON, with "out".
nlohmann::json run_explain(const ExplainArgs& args);

struct PredictArgs {
  std::string checkpoint;
  std::string data;
  std::string output;  // CSV
  std::string device = "auto";
  bool force = false;  // overwrite an existing output file
};
// Returns the number of rows written.
int64_t run_predict(const PredictArgs& args);

struct RobustnessArgs {
  std::string checkpoint;
  std::string split = "test";  // when no data file is given
  std::string data;            // a data file with targets
  RobustnessOptions options;
  std::string baseline;  // another model's robustness.json, for effective robustness
  std::string out;       // default: the run folder's robustness/
  std::string device = "auto";
  bool force = false;
};
// robustness_curves (robustness.hpp) of a checkpoint on a split or a data file; writes
// robustness.json, .csv and .svg into the out folder (refusing to replace an earlier
// robustness.json without force) and returns the JSON, with "out".
nlohmann::json run_robustness(const RobustnessArgs& args);

nlohmann::json run_inspect(const std::string& checkpoint);
// inspect-data --file: a pickle's tree of keys, kinds, shapes and dtypes (io/pickle), and
// how long reading it took.
std::string run_inspect_data(const std::string& path);
// inspect-data --config: the config's data read as train reads them (any source and
// layout): each split's rows and modalities, the non-finite values put to 0, the bytes
// kept, the reading speed and the peak memory it took.
std::string run_inspect_config_data(const std::string& config,
                                    const std::vector<std::string>& overrides);

struct SynthArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string split = "train";
  std::string output;
  bool force = false;
};
// Writes the split to args.output and the generator's truth (data.hpp's SyntheticTruth)
// beside it, as NAME.truth.json. Returns the rows written.
int64_t run_synth(const SynthArgs& args);
// Where synth writes the truth of a data file: x.pt -> x.truth.json.
std::string truth_path(const std::string& data_file);

// The resolved config (all defaults filled) of a config file plus overrides.
nlohmann::json run_validate(const std::string& config, const std::vector<std::string>& overrides);

}  // namespace mmfusion
