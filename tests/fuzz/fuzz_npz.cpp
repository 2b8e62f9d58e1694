// libFuzzer target: the .npz data-file reader (npz.hpp through data.hpp), as train, eval
// and predict run it on a file named *.npz. Built by scripts/fuzz.sh.
#include <cstdint>
#include <vector>

#include "mmfusion/data.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<mmfusion::ModalityConfig> modalities = {{"visual", 16}, {"audio", 8}, {"text", 24}};
  const std::vector<char> bytes(data, data + size);
  try {  // regression: float targets, optional
    mmfusion::parse_data_file(bytes, "fuzz.npz", modalities, mmfusion::TargetRule{false});
  } catch (const std::exception&) {
  }
  try {  // classification: integer labels, classes not known yet
    mmfusion::parse_data_file(bytes, "fuzz.npz", modalities, mmfusion::TargetRule{true, true, 0});
  } catch (const std::exception&) {
  }
  return 0;
}
