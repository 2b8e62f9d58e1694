// libFuzzer target: the checkpoint reader (checkpoint.hpp), as resume runs it: the
// metadata, the model built from the saved config and loaded, the optimizer state and
// the generator states. Built by scripts/fuzz.sh with clang's -fsanitize=fuzzer,address.
#include <cstdint>

#include "mmfusion/training/checkpoint.hpp"
#include "mmfusion/training/optim.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    mmfusion::Checkpoint c =
        mmfusion::parse_checkpoint(reinterpret_cast<const char*>(data), size, "fuzz.pt");
    mmfusion::ModelPtr model = c.build_model(torch::kCPU);
    auto optimizer = mmfusion::make_optimizer(c.config.train, *model);
    if (c.has_optimizer()) c.load_optimizer(*optimizer);
    c.rng();
  } catch (const std::exception&) {}
  return 0;
}
