#pragma once
// Shared test fixtures: temporary folders, small configs, quiet loggers.
#include <gtest/gtest.h>
#include <ftw.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>
#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>

#include <torch/torch.h>

#include "mmfusion/config/config.hpp"
#include "mmfusion/config/config_io.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/svg.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "schema_validator.hpp"

namespace mmfusion::testing {

// A fresh folder under the system temp dir, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string pattern = std::string(base && *base ? base : "/tmp") + "/mmfusion-test-XXXXXX";
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed for " + pattern);
    path_ = pattern;
  }
  // Removed with nftw, not std::filesystem::remove_all: PyTorch 2.11's libtorch.so
  // exports a copy of remove_all that crashes when it wins symbol resolution.
  ~TempDir() {
    audit_charts();
    ::nftw(
        path_.c_str(),
        [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); }, 16,
        FTW_DEPTH | FTW_PHYS);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  const std::filesystem::path& path() const { return path_; }

 private:
  // Every chart a test leaves here passes the layout check (no labels overlap, none leaves
  // the canvas), so each SVG the suite writes is checked (issue 45).
  void audit_charts() const {
    std::error_code ec;
    for (std::filesystem::recursive_directory_iterator it(path_, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (it->path().extension() != ".svg" || !it->is_regular_file(ec)) continue;
      std::ifstream in(it->path());
      const std::string svg((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      for (const auto& problem : svg_layout_problems(svg))
        ADD_FAILURE() << "chart layout: " << it->path().lexically_relative(path_).string() << ": "
                      << problem;
    }
  }

  std::filesystem::path path_;
};

// Another process holding a run folder's lock (RunLock), as a second mmfusion would:
// a forked child that takes it, says so through a pipe and waits to be killed.
class LockHolder {
 public:
  explicit LockHolder(const std::string& dir, RunLock::Mode mode = RunLock::Mode::Exclusive) {
    int fds[2];
    if (::pipe(fds) != 0) throw std::runtime_error("pipe failed");
    pid_ = ::fork();
    if (pid_ == 0) {
      ::close(fds[0]);
      char ok = 'n';
      try {
        RunLock lock(dir, mode);
        ok = 'y';
        (void)!::write(fds[1], &ok, 1);
        for (;;) ::pause();
      } catch (...) { (void)!::write(fds[1], &ok, 1); }
      ::_exit(1);
    }
    ::close(fds[1]);
    char ok = 'n';
    const bool told = ::read(fds[0], &ok, 1) == 1;
    ::close(fds[0]);
    if (!told || ok != 'y') {
      kill();
      throw std::runtime_error("the lock holder could not lock " + dir);
    }
  }
  ~LockHolder() { kill(); }
  // Ends the holder as a crash would (SIGKILL): no clean-up of its own runs.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
};

inline std::string source_path(const std::string& relative) {
  return std::string(MMFUSION_SOURCE_DIR) + "/" + relative;
}

// configs/tiny.json (three small modalities, CPU, one thread) plus overrides.
// configs/tiny.json with overrides; every resolved config made here is checked against
// the shipped JSON Schema on the way (ConfigKeys tests).
inline ExperimentConfig tiny_config(const std::vector<std::string>& overrides = {}) {
  ExperimentConfig config = load_config(source_path("configs/tiny.json"), overrides);
  static const nlohmann::json schema = read_json_file(source_path("configs/mmfusion.schema.json"));
  const std::string violation = schema_violation(schema, to_json(config));
  EXPECT_EQ(violation, "") << "the resolved config breaks configs/mmfusion.schema.json";
  return config;
}

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Runs f and expects an exception of type E (mmfusion::Error by default) whose message
// contains `words`.
template <typename E = Error, typename F>
void expect_error(F&& f, const std::string& words) {
  try {
    f();
    ADD_FAILURE() << "no error; expected one containing: " << words;
  } catch (const E& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

// One random [batch, dim] input per modality.
inline std::vector<torch::Tensor> random_inputs(const std::vector<ModalityConfig>& mods,
                                                int64_t batch) {
  std::vector<torch::Tensor> x;
  for (const auto& m : mods) x.push_back(torch::randn({batch, m.dim}));
  return x;
}

// Well-formed XML, checked by Python's standard-library parser (independent of ours).
inline bool well_formed_xml(const std::string& path) {
  const std::string cmd = std::string(MMFUSION_PYTHON) +
                          " -c 'import sys, xml.dom.minidom; "
                          "xml.dom.minidom.parse(sys.argv[1])' " +
                          path + " 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

inline std::shared_ptr<spdlog::logger> quiet_logger() {
  return std::make_shared<spdlog::logger>("test", std::make_shared<spdlog::sinks::null_sink_mt>());
}

}  // namespace mmfusion::testing
