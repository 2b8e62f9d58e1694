// libFuzzer target: the data-file reader (data.hpp), as train, eval and predict run it.
// Built by scripts/fuzz.sh with clang's -fsanitize=fuzzer,address.
#include <cstdint>
#include <vector>

#include "mmfusion/data.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<mmfusion::ModalityConfig> modalities = {{"visual", 16}, {"audio", 8}, {"text", 24}};
  const std::vector<char> bytes(data, data + size);
  try {  // regression: float targets, optional
    mmfusion::parse_data_file(bytes, "fuzz.pt", modalities, mmfusion::TargetRule{false});
  } catch (const std::exception&) {
  }
  try {  // classification: integer labels in [0, 3)
    mmfusion::parse_data_file(bytes, "fuzz.pt", modalities, mmfusion::TargetRule{true, true, 3});
  } catch (const std::exception&) {
  }
  return 0;
}
