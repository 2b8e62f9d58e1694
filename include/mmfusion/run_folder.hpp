#pragma once
// Run folders: where a run's files are, how a new folder is chosen (never an earlier run's),
// how a resumed run finds its folder, its logger, and its charts. Knows nothing of
// what runs inside.
#include <memory>
#include <string>

namespace spdlog {
class logger;
}

namespace mmfusion {

// Files of a run folder.
struct RunPaths {
  explicit RunPaths(std::string dir);
  std::string dir, config, log, metrics, results, loss_svg, relevance_svg, checkpoints, last, best;
};

// A fresh run folder: `out` must be new or empty (ConfigError otherwise, naming how to
// continue that run); without `out`, runs/<name>-<timestamp>, with a suffix rather than
// reuse a folder.
std::string fresh_run_dir(const std::string& out, const std::string& name);

// The run folder of a checkpoint DIR/checkpoints/NAME.pt beside DIR/config.json
// (ConfigError when it is not in one).
std::string resume_run_dir(const std::string& checkpoint);

// Creates DIR and DIR/checkpoints when `with_checkpoints` (Error naming the folder).
void create_run_dir(const RunPaths& paths, bool with_checkpoints = true);

// A logger that writes to stderr and, when log_file is given, appends to it. `prefix` goes
// before every message (e.g. "sweep: "). It becomes spdlog's default logger.
std::shared_ptr<spdlog::logger> make_logger(const std::string& log_file, const std::string& prefix = "");

// Redraws RUN/loss.svg (train and validation loss per epoch) from metrics.jsonl, and
// RUN/relevance.svg (each block's relevance score per epoch) when its lines have scores.
void write_charts(const RunPaths& paths, const std::string& run_name);

}  // namespace mmfusion
