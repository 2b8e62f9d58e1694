// libFuzzer target: the restricted pickle reader (io/pickle.hpp) and the benchmark
// layouts on top of it (data/benchmark_file.hpp), as train reads an MMSA, MultiBench or
// LMF-reference pickle: the tree, its description (inspect-data), and the three splits
// checked against small sequence and vector modalities. Built by scripts/fuzz.sh with
// clang's -fsanitize=fuzzer,address.
#include <cstdint>
#include <string>
#include <vector>

#include "mmfusion/config/config.hpp"
#include "mmfusion/data/benchmark_file.hpp"
#include "mmfusion/io/pickle.hpp"

namespace {

mmfusion::ExperimentConfig layout_config(mmfusion::Layout layout) {
  mmfusion::ExperimentConfig c;
  c.data.source = mmfusion::DataSource::File;
  c.data.layout = layout;
  c.data.path = "fuzz.pkl";
  c.data.nonfinite = mmfusion::NonFinite::Zero;
  if (layout == mmfusion::Layout::LMF)
    c.data.modalities = {{"covarep", 4}, {"facet", 3}, {"glove", 3, true, 5}};
  else
    c.data.modalities = {{"text", 3, true}, {"audio", 2, true, 7}};
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<mmfusion::ExperimentConfig> configs = {
      layout_config(mmfusion::Layout::MMSA), layout_config(mmfusion::Layout::MultiBench),
      layout_config(mmfusion::Layout::LMF)};
  const char* bytes = reinterpret_cast<const char*>(data);
  try {
    const mmfusion::pickle::ValuePtr root = mmfusion::pickle::parse(bytes, size, "fuzz.pkl");
    (void)mmfusion::pickle::describe(root, 50);
  } catch (const std::exception&) {
    return 0;  // the layouts parse the same bytes first
  }
  for (const auto& c : configs) {
    try {
      (void)mmfusion::parse_benchmark_file(bytes, size, c);
    } catch (const std::exception&) {}
  }
  return 0;
}
