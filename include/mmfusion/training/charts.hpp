#pragma once
// A run folder's charts, drawn from its metrics.jsonl.
#include <string>

#include "mmfusion/io/run_folder.hpp"

namespace mmfusion {

// Redraws RUN/loss.svg (train and validation loss per epoch) from metrics.jsonl, and
// RUN/relevance.svg (each block's relevance score per epoch) when its lines have scores.
void write_charts(const RunPaths& paths, const std::string& run_name);

}  // namespace mmfusion
