#pragma once
// The `mkl` experiment: a config's data in, a folder of results out (docs/mkl.md). One
// kernel per modality, the weights learned by the configured solver, every single kernel,
// the uniform and the learned combination evaluated, and kernel PCA pictures.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mmfusion {

struct MKLArgs {
  std::string config;
  std::vector<std::string> overrides;
  std::string out;  // "" = runs/<name>-mkl-<timestamp>
};

// Writes config.json, train.log, mkl.json, kpca.csv, kpca.svg and predictions.csv into a
// new run folder. Returns mkl.json's content plus "run_dir".
nlohmann::json run_mkl(const MKLArgs& args);

}  // namespace mmfusion
