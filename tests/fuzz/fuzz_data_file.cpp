// libFuzzer target: the data-file reader (data.hpp), as train, eval and predict run it.
// Built twice by scripts/fuzz.sh with clang's -fsanitize=fuzzer,address: FUZZ_FILE_NAME
// picks the format (fuzz.pt: torch.save's zip of pickles; fuzz.npz: NumPy's archive).
#include <cstdint>
#include <vector>

#include "mmfusion/data/data.hpp"

#ifndef FUZZ_FILE_NAME
#define FUZZ_FILE_NAME "fuzz.pt"
#endif

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::vector<mmfusion::ModalityConfig> modalities = {
      {"visual", 16}, {"audio", 8}, {"text", 24}};
  const std::vector<char> bytes(data, data + size);
  try {  // regression: float targets, optional
    mmfusion::parse_data_file(bytes, FUZZ_FILE_NAME, modalities, mmfusion::ReadRule{false});
  } catch (const std::exception&) {}
  try {  // classification: integer labels in [0, 3)
    mmfusion::parse_data_file(bytes, FUZZ_FILE_NAME, modalities,
                              mmfusion::ReadRule{true, true, 3});
  } catch (const std::exception&) {}
  return 0;
}
