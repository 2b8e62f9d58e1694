// End to end: the built binary, as a user runs it.
#include <gtest/gtest.h>

#include <pty.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "helpers.hpp"

using namespace mmfusion::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

struct Result {
  int code;
  std::string out, err;
};

// `env`: VAR=VALUE assignments for the command, or "".
Result run(const std::string& args, const TempDir& dir, const std::string& env = "") {
  const std::string err_file = dir.file("stderr.txt");
  const std::string cmd = (env.empty() ? "" : "env " + env + " ") + std::string(MMFUSION_BINARY) +
                          " " + args + " 2>" + err_file;
  Result r{-1, "", ""};
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0) r.out.append(buffer, n);
  const int status = pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.err = read_text(err_file);
  return r;
}

int count_lines(const std::string& text) {
  return static_cast<int>(std::count(text.begin(), text.end(), '\n'));
}

std::string tiny() { return source_path("configs/tiny.json"); }

bool python_has_torch() {
  const std::string py = MMFUSION_PYTHON;
  return !py.empty() && std::system((py + " -c 'import torch' >/dev/null 2>&1").c_str()) == 0;
}

}  // namespace

TEST(Cli, TrainEvalPredictInspectOnATinyConfig) {
  TempDir dir;
  const std::string out = dir.file("run");
  Result r = run("train --config " + tiny() + " --out " + out, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  for (const char* f : {"config.json", "train.log", "metrics.jsonl", "results.json",
                        "checkpoints/last.pt", "checkpoints/best.pt"})
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
  EXPECT_EQ(count_lines(read_text(out + "/metrics.jsonl")), 2);
  EXPECT_NE(r.err.find("epoch   2/2"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\033'), std::string::npos) << "control characters on a non-terminal";
  const json results = json::parse(read_text(out + "/results.json"));
  for (const char* k : {"mse", "mae", "pearson", "r2"})
    EXPECT_TRUE(results["test"].contains(k)) << k;
  const json config = json::parse(read_text(out + "/config.json"));
  EXPECT_EQ(config["model"]["output_dim"], 1);  // resolved from the data

  r = run("eval --checkpoint " + out + "/checkpoints/best.pt --split test", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const json metrics = json::parse(r.out);
  EXPECT_NEAR(metrics["mse"].get<double>(), results["test"]["mse"].get<double>(),
              1e-6 * metrics["mse"].get<double>());

  r = run("synth --config " + tiny() + " --split test --output " + dir.file("test.pt"), dir);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("eval --checkpoint " + out + "/checkpoints/best.pt --data " + dir.file("test.pt"), dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(json::parse(r.out)["mse"].get<double>(), metrics["mse"].get<double>(),
              1e-6 * metrics["mse"].get<double>());

  r = run("predict --checkpoint " + out + "/checkpoints/best.pt --data " + dir.file("test.pt") +
              " --output " + dir.file("pred.csv"),
          dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string csv = read_text(dir.file("pred.csv"));
  EXPECT_EQ(csv.substr(0, csv.find('\n')), "index,prediction,target");
  EXPECT_EQ(count_lines(csv), 1 + 64);
  // The CSV's squared errors give the same MSE as eval.
  std::istringstream lines(csv.substr(csv.find('\n') + 1));
  std::string line;
  double sse = 0;
  while (std::getline(lines, line)) {
    double idx, p, t;
    char c1, c2;
    std::istringstream(line) >> idx >> c1 >> p >> c2 >> t;
    sse += (p - t) * (p - t);
  }
  EXPECT_NEAR(sse / 64, metrics["mse"].get<double>(), 1e-5);
  // An existing output is not overwritten by surprise.
  r = run("predict --checkpoint " + out + "/checkpoints/best.pt --data " + dir.file("test.pt") +
              " --output " + dir.file("pred.csv"),
          dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--force"), std::string::npos);

  r = run("inspect --checkpoint " + out + "/checkpoints/last.pt", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const json info = json::parse(r.out);
  EXPECT_EQ(info["epoch"], 2);
  EXPECT_EQ(info["global_step"], 16);
  EXPECT_EQ(info["format_version"], 3);
  EXPECT_EQ(info["config"]["name"], "tiny");
  EXPECT_EQ(info["parameters"]["total"].get<int64_t>(),
            info["parameters"]["encoders"].get<int64_t>() +
                info["parameters"]["fusion"].get<int64_t>() +
                info["parameters"]["head"].get<int64_t>());

  r = run("validate --config " + tiny() + " --set model.rank=3", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(r.out)["model"]["rank"], 3);
  EXPECT_EQ(json::parse(r.out)["train"]["optimizer"], "adam");  // a default, filled in
}

TEST(Cli, ResumeRaisesEpochsAndAppendsToTheRun) {
  TempDir dir;
  const std::string out = dir.file("run");
  ASSERT_EQ(run("train --config " + tiny() + " --out " + out, dir).code, 0);
  Result r = run("train --resume " + out + "/checkpoints/last.pt --set train.epochs=3", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(read_text(out + "/metrics.jsonl")), 3);
  EXPECT_NE(read_text(out + "/train.log").find("resuming"), std::string::npos);
  // An absolute checkpoint path names its folder absolutely (not as ../../tmp/...).
  EXPECT_NE(read_text(out + "/train.log").find("into " + out + "\n"), std::string::npos)
      << read_text(out + "/train.log");
  // Changing the model on resume is refused.
  r = run("train --resume " + out + "/checkpoints/last.pt --set model.rank=8", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("--set model.rank: cannot be changed when resuming"), std::string::npos)
      << r.err;
}

TEST(Cli, BadInputGetsOneLineAndTheRightExitCode) {
  TempDir dir;
  write_text(dir.file("bad.json"), R"({"model": {"rank": 0}})");
  Result r = run("train --config " + dir.file("bad.json") + " --out " + dir.file("r"), dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "mmfusion: config error: model.rank: expected an integer >= 1, got 0\n");
  EXPECT_FALSE(fs::exists(dir.file("r"))) << "a failed start must not leave a run folder";

  r = run("validate --config " + tiny() + " --set model.rnak=2", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("did you mean model.rank?"), std::string::npos) << r.err;

  r = run("train --config " + tiny() + " --set device=cuda:7 --out " + dir.file("r"), dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("device: \"cuda:7\" requested but"), std::string::npos) << r.err;

  r = run("train --config " + tiny() + " --bogus", dir);
  EXPECT_EQ(r.code, 2);
  r = run("train", dir);
  EXPECT_EQ(r.code, 2);

  // attribute: bad options and a damaged record are one line, exit 2.
  for (const std::string& args :
       std::vector<std::string>{"attribute --config " + tiny() + " --seeds 0",
                                "attribute --config " + tiny() + " --subsets some", "attribute",
                                "attribute --report " + dir.file("nowhere")}) {
    r = run(args, dir);
    EXPECT_EQ(r.code, 2) << args;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << args << ": " << r.err;
    EXPECT_EQ(r.err.rfind("mmfusion: usage error: ", 0), 0u) << r.err;
  }
  fs::create_directories(dir.file("damaged"));
  write_text(dir.file("damaged/attribute-plan.json"), R"({"name": 3})");
  r = run("attribute --report " + dir.file("damaged"), dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("attribute-plan.json: not an attribute record"), std::string::npos) << r.err;

  // A non-empty --out is refused: an earlier run is never overwritten.
  fs::create_directories(dir.file("taken"));
  write_text(dir.file("taken/metrics.jsonl"), "precious\n");
  r = run("train --config " + tiny() + " --out " + dir.file("taken"), dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(read_text(dir.file("taken/metrics.jsonl")), "precious\n");

  write_text(dir.file("junk.pt"), "this is not a checkpoint");
  r = run("eval --checkpoint " + dir.file("junk.pt"), dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("junk.pt: not a readable checkpoint"), std::string::npos) << r.err;
  r = run("inspect --checkpoint " + dir.file("missing.pt"), dir);
  EXPECT_EQ(r.code, 1);

  // inspect-data needs one of its two sources, not both.
  r = run("inspect-data", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("inspect-data: give --file PICKLE or --config CONFIG"), std::string::npos)
      << r.err;
  r = run("inspect-data --file " + dir.file("junk.pt") + " --config " + tiny(), dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
}

TEST(Cli, InterruptSavesLastAndExits130) {
  TempDir dir;
  const std::string out = dir.file("run");
  // A run far too long to finish; SIGINT once its first epoch is logged.
  const std::string cmd = std::string(MMFUSION_BINARY) + " train --config " + tiny() +
                          " --set train.epochs=100000 --set train.batch_size=4 --out " + out +
                          " 2>" + dir.file("err.txt") + " & pid=$!; for i in $(seq 300); do [ -s " +
                          out +
                          "/metrics.jsonl ] && break; sleep 0.1; done; kill -INT $pid; wait $pid";
  const int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130) << read_text(dir.file("err.txt"));
  EXPECT_TRUE(fs::exists(out + "/checkpoints/last.pt"));
  EXPECT_NE(read_text(dir.file("err.txt")).find("--resume"), std::string::npos);
  // The saved state resumes.
  Result r = run("inspect --checkpoint " + out + "/checkpoints/last.pt", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_GT(json::parse(r.out)["global_step"].get<int64_t>(), 0);
}

namespace {
// Trains on tiny.json with `sets`, then Python reads the checkpoint and a synth file,
// recomputes the forward pass from the state dict, and writes a data file of its own for
// mmfusion to read.
void python_round_trip(const std::string& sets) {
  TempDir dir;
  const std::string out = dir.file("run");
  Result r = run("train --config " + tiny() + " " + sets + " --out " + out, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  r = run("synth --config " + tiny() + " " + sets + " --split val --output " + dir.file("val.pt"),
          dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string script = source_path("tests/python_interop.py");
  const std::string cmd = std::string(MMFUSION_PYTHON) + " " + script + " " + out +
                          "/checkpoints/best.pt " + dir.file("val.pt") + " " + dir.file("py.pt") +
                          " > " + dir.file("py.txt") + " 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << read_text(dir.file("py.txt"));
  // Python's own LMF forward pass on the checkpoint's weights agrees with mmfusion's eval.
  const json py = json::parse(read_text(dir.file("py.txt")));
  r = run("eval --checkpoint " + out + "/checkpoints/best.pt --data " + dir.file("val.pt"), dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NEAR(py["mse"].get<double>(), json::parse(r.out)["mse"].get<double>(),
              1e-5 * py["mse"].get<double>());
  r = run("predict --checkpoint " + out + "/checkpoints/best.pt --data " + dir.file("py.pt") +
              " --output " + dir.file("py.csv"),
          dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(count_lines(read_text(dir.file("py.csv"))), 1 + 10);
  EXPECT_EQ(read_text(dir.file("py.csv")).substr(0, 17), "index,prediction\n");
}
}  // namespace

TEST(PythonInterop, CheckpointsAndDataFilesCrossTheBoundary) {
  if (!python_has_torch()) GTEST_SKIP() << "no Python with torch at " << MMFUSION_PYTHON;
  // Standardised inputs and target: Python finds the statistics in the checkpoint too.
  python_round_trip("--set data.standardize=zscore --set data.standardize_target=true");
}

// An LSTM encoder of a sequence modality (scaled per step feature): Python runs the
// recurrence by hand over each row's own steps, from the state dict.
TEST(PythonInterop, AnLstmEncodersForwardPassIsRecomputedInPython) {
  if (!python_has_torch()) GTEST_SKIP() << "no Python with torch at " << MMFUSION_PYTHON;
  python_round_trip(
      "--set 'data.modalities=[{\"name\":\"visual\",\"dim\":16},{\"name\":\"audio\",\"dim\":8},"
      "{\"name\":\"text\",\"dim\":24,\"sequence\":true,\"max_len\":6}]' "
      "--set 'model.encoders={\"text\":{\"type\":\"lstm\",\"hidden\":5,\"out\":4}}' "
      "--set data.standardize=zscore");
}

// MulT (issue 46): Python recomputes its forward pass from the state dict, attention by
// hand, on a vector modality and two sequences (one with a Conv1d kernel of 3, whose
// padding must be zeros), with key masks by length.
TEST(PythonInterop, AMulTForwardPassIsRecomputedInPython) {
  if (!python_has_torch()) GTEST_SKIP() << "no Python with torch at " << MMFUSION_PYTHON;
  python_round_trip(
      "--set 'data.modalities=[{\"name\":\"visual\",\"dim\":16},{\"name\":\"audio\",\"dim\":8,"
      "\"sequence\":true,\"max_len\":5},{\"name\":\"text\",\"dim\":24,\"sequence\":true,\"max_len\":6}]' "
      "--set model.type=mult --set model.mult.width=8 --set model.mult.heads=2 "
      "--set model.mult.layers=2 --set model.mult.memory_layers=1 "
      "--set 'model.mult.kernel={\"text\":3,\"audio\":2}' --set data.synthetic.min_len=2 "
      "--set data.standardize=zscore --set data.standardize_target=true");
}

// MulT's unimodal ablation (one modality, model.mult.unimodal): its one stack is
// self-attention, recomputed in Python as the cross-modal ones are.
TEST(PythonInterop, AUnimodalMulTForwardPassIsRecomputedInPython) {
  if (!python_has_torch()) GTEST_SKIP() << "no Python with torch at " << MMFUSION_PYTHON;
  python_round_trip(
      "--set 'data.modalities=[{\"name\":\"text\",\"dim\":24,\"sequence\":true,\"max_len\":6}]' "
      "--set 'data.synthetic.modalities=[{\"name\":\"visual\",\"dim\":16},"
      "{\"name\":\"text\",\"dim\":24,\"sequence\":true,\"max_len\":6}]' "
      "--set model.type=mult --set model.mult.unimodal=true --set model.mult.width=8 "
      "--set model.mult.heads=2 --set model.mult.layers=2 --set model.mult.memory_layers=1 "
      "--set model.mult.kernel=3 --set data.synthetic.min_len=2 --set data.standardize=zscore");
}

TEST(Cli, EveryRunWritesAWellFormedLossChart) {
  TempDir dir;
  const std::string cmd = std::string(MMFUSION_BINARY) + " train --config " +
                          source_path("configs/tiny.json") + " --out " + dir.file("run") +
                          " 2>/dev/null >/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  ASSERT_TRUE(fs::exists(dir.file("run/loss.svg")));
  EXPECT_TRUE(well_formed_xml(dir.file("run/loss.svg")));
  EXPECT_NE(read_text(dir.file("run/loss.svg")).find("validation loss"), std::string::npos);
}

TEST(Cli, ARunFolderInUseIsRefusedAndLeftAsItWas) {
  TempDir dir;
  const std::string out = dir.file("run");
  ASSERT_EQ(run("train --config " + tiny() + " --out " + out, dir).code, 0);
  const std::string metrics = read_text(out + "/metrics.jsonl");
  {
    mmfusion::testing::LockHolder other(out);
    // The folder as resume finds it (relative to the working directory), then the holder.
    const std::string in_use = "run: run folder in use by process " + std::to_string(other.pid());
    Result r = run("train --resume " + out + "/checkpoints/last.pt --set train.epochs=3", dir);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find(in_use), std::string::npos) << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << r.err;
    EXPECT_EQ(read_text(out + "/metrics.jsonl"), metrics);

    const std::string fresh = dir.file("fresh");
    mmfusion::testing::LockHolder fresh_holder(fresh);
    r = run("train --config " + tiny() + " --out " + fresh, dir);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find(fresh + ": run folder in use by process"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(fresh + "/config.json"));

    const std::string sweep = dir.file("sweep");
    mmfusion::testing::LockHolder sweep_holder(sweep);
    r = run("sweep --config " + tiny() + " --grid seed=1 --out " + sweep, dir);
    EXPECT_EQ(r.code, 1);
    EXPECT_NE(r.err.find(sweep + ": run folder in use by process"), std::string::npos) << r.err;
  }
  // Its holder killed, the run resumes.
  EXPECT_EQ(run("train --resume " + out + "/checkpoints/last.pt --set train.epochs=3", dir).code,
            0);
  EXPECT_EQ(count_lines(read_text(out + "/metrics.jsonl")), 3);
}

TEST(Cli, ShardsAndARerunAtOnceTrainEachCombinationOnce) {
  TempDir dir;
  const std::string sweep = dir.file("sweep");
  const std::string bin = MMFUSION_BINARY;
  const std::string common = " sweep --config " + tiny() + " --grid seed=1,2,3,4,5 --out " + sweep;
  // Shard 0 twice (a rerun while the first still runs) and shard 1, all at once.
  const std::string cmd = "(" + bin + common + " --shard 0/2 & " + bin + common +
                          " --shard 1/2 & " + bin + common + " --shard 0/2 & wait) >/dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  for (int seed = 1; seed <= 5; ++seed) {
    const std::string run_dir = sweep + "/seed-" + std::to_string(seed);
    SCOPED_TRACE(run_dir);
    EXPECT_TRUE(fs::exists(run_dir + "/results.json"));
    const std::string log = read_text(run_dir + "/train.log");
    size_t starts = 0;
    for (size_t at = log.find(": run seed-"); at != std::string::npos;
         at = log.find(": run seed-", at + 1))
      ++starts;
    EXPECT_EQ(starts, 1u) << log;
    EXPECT_EQ(log.find("resuming"), std::string::npos) << log;
  }
  // The reports hold every run, whichever shard finished last.
  Result r = run("sweep --report " + sweep, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string csv = read_text(sweep + "/results.csv");
  EXPECT_EQ(count_lines(csv), 6);
  EXPECT_EQ(csv.find(",missing,"), std::string::npos) << csv;
  EXPECT_EQ(csv.find(",incomplete,"), std::string::npos) << csv;
}

TEST(Cli, AnUnknownCommandIsNamedWithTheNearestOne) {
  TempDir dir;
  Result r = run("trian --config x.json", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "mmfusion: usage error: unknown command 'trian' (did you mean 'train'?)\n");
  r = run("frobnicate", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("unknown command 'frobnicate' (commands: train, eval, predict, explain"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(run("--version", dir).code, 0);  // options before a command stay CLI11's
}

TEST(Cli, RefusalsToOverwriteAreUsageErrorsThatSuggestOnlyWhatExists) {
  TempDir dir;
  const std::string out = dir.file("run");
  ASSERT_EQ(run("train --config " + tiny() + " --out " + out, dir).code, 0);
  // A finished run's folder: the way on is --resume with the checkpoint that is there.
  Result r = run("train --config " + tiny() + " --out " + out, dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "mmfusion: usage error: --out " + out +
                       ": the folder exists and is not empty; an earlier run is never overwritten "
                       "(choose another folder, or continue that run with --resume " +
                       out + "/checkpoints/last.pt)\n");
  // A folder with something else in it: no --resume to suggest.
  const std::string other = dir.file("other");
  fs::create_directories(other);
  write_text(other + "/notes.txt", "mine");
  r = run("train --config " + tiny() + " --out " + other, dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "mmfusion: usage error: --out " + other +
                       ": the folder exists and is not empty; an earlier run is never overwritten "
                       "(choose another folder)\n");
  EXPECT_EQ(read_text(other + "/notes.txt"), "mine");
  // explain's default folder: the message names the file, not an --out nobody gave.
  ASSERT_EQ(
      run("explain --checkpoint " + out + "/checkpoints/best.pt --samples 64 --bootstrap 2", dir)
          .code,
      0);
  r = run("explain --checkpoint " + out + "/checkpoints/best.pt --samples 64 --bootstrap 2", dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.err, "mmfusion: usage error: " + out +
                       "/explain/explain.json: the file exists (pass --force to overwrite it)\n");
  r = run("explain --checkpoint " + out + "/checkpoints/best.pt --out " + out +
              "/explain --samples 64 --bootstrap 2",
          dir);
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("usage error: --out " + out + "/explain/explain.json: the file exists"),
            std::string::npos)
      << r.err;
}

namespace {
// Every temporary file under `dir` (the writer's ".NAME.tmpPID").
std::vector<std::string> temporaries(const std::string& dir) {
  std::vector<std::string> found;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().find(".tmp") != std::string::npos)
      found.push_back(e.path().string());
  return found;
}
}  // namespace

TEST(Cli, AFullDiskAtAnyWriteOfTrainingStopsCleanlyAndResumes) {
  // Every write, fsync and rename of a two-epoch run fails in turn (MMFUSION_TEST_FAULT).
  // Each time: exit 1, one line naming a file of the run and the system's reason, no
  // temporary file, whole lines in metrics.jsonl, a last.pt that holds the epoch the
  // message names, and a resume that finishes the run.
  TempDir dir;
  int failures = 0;
  for (const char* op : {"write", "fsync", "rename"}) {
    for (int k = 1;; ++k) {
      SCOPED_TRACE(std::string(op) + ":" + std::to_string(k));
      const std::string out = dir.file(std::string(op) + std::to_string(k));
      const Result r = run("train --config " + tiny() + " --out " + out, dir,
                           "MMFUSION_TEST_FAULT=" + std::string(op) + ":" + std::to_string(k));
      if (r.code == 0) break;  // past the last write of the run
      ++failures;
      ASSERT_EQ(r.code, 1) << r.err;
      // The log's lines, then one error line, last.
      const auto error_at = r.err.find("mmfusion: error: ");
      ASSERT_NE(error_at, std::string::npos) << r.err;
      EXPECT_EQ(r.err.find('\n', error_at), r.err.size() - 1) << r.err;
      EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
      EXPECT_EQ(r.err.find("mmfusion: error: " + out + "/"), error_at) << r.err;
      EXPECT_TRUE(r.err.find("No space left on device") != std::string::npos ||
                  r.err.find("Input/output error") != std::string::npos)
          << r.err;
      if (fs::exists(out)) EXPECT_EQ(temporaries(out), std::vector<std::string>{});
      if (fs::exists(out + "/metrics.jsonl")) {
        std::istringstream lines(read_text(out + "/metrics.jsonl"));
        for (std::string line; std::getline(lines, line);)
          EXPECT_NO_THROW((void)json::parse(line)) << line;
      }
      // What to do next is in the message: resume from last.pt (an epoch is saved, or the
      // training is complete and only results.json is missing), or, before the first
      // checkpoint, remove the folder and run the same command again; each works.
      const auto held = r.err.find("checkpoints/last.pt holds epoch ");
      const bool complete =
          r.err.find("the training is complete in " + out + "/checkpoints/last.pt (write "
                     "results.json with: mmfusion train --resume") != std::string::npos;
      if (fs::exists(out + "/results.json")) {  // the log failed, the run finished
        EXPECT_NE(r.err.find("the command finished and wrote its other files, but its log lacks"),
                  std::string::npos)
            << r.err;
        continue;
      }
      if (held == std::string::npos && !complete) {
        EXPECT_NE(r.err.find("remove " + out + " and run the same command again"),
                  std::string::npos)
            << r.err;
        if (k % 4 == 1) {  // the advice, followed (for every fourth such fault: each trains)
          ::nftw(out.c_str(),
                 [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); },
                 16, FTW_DEPTH | FTW_PHYS);
          EXPECT_EQ(run("train --config " + tiny() + " --out " + out, dir).code, 0);
        }
        continue;
      }
      const int epoch = complete ? 2 : std::stoi(r.err.substr(held + 32));
      const Result resumed = run("train --resume " + out + "/checkpoints/last.pt", dir);
      ASSERT_EQ(resumed.code, 0) << resumed.err;
      EXPECT_NE(read_text(out + "/train.log").find("at epoch " + std::to_string(epoch)),
                std::string::npos);
      const json results = json::parse(read_text(out + "/results.json"));
      EXPECT_EQ(results["epochs"], 2);
      // Nothing lost or doubled: each epoch's metrics line once, in order, and best.pt the
      // epoch the results name.
      std::istringstream lines(read_text(out + "/metrics.jsonl"));
      std::vector<int> epochs;
      for (std::string line; std::getline(lines, line);)
        epochs.push_back(json::parse(line)["epoch"].get<int>());
      EXPECT_EQ(epochs, (std::vector<int>{1, 2}));
      const Result best = run("inspect --checkpoint " + out + "/checkpoints/best.pt", dir);
      ASSERT_EQ(best.code, 0) << best.err;
      EXPECT_EQ(json::parse(best.out)["epoch"], results["best_epoch"]);
    }
  }
  EXPECT_GT(failures, 20) << "the seam should have failed every write of the run";
}

TEST(Cli, AFullDiskInEveryOtherCommandIsAnErrorThatKeepsTheEarlierOutput) {
  // synth, predict, explain and mkl with each of their writes failing in turn: exit 1, the
  // last line names the file, no temporary file, and an earlier output (replaced with
  // --force) is as it was.
  TempDir dir;
  const std::string run_dir = dir.file("run");
  ASSERT_EQ(run("train --config " + tiny() + " --out " + run_dir, dir).code, 0);
  const std::string best = run_dir + "/checkpoints/best.pt";
  struct Case {
    std::string command, out, kept;  // kept: a file whose earlier version must survive
  };
  const std::vector<Case> cases{
      {"synth --config " + tiny() + " --split test --force --output " + dir.file("syn/test.pt"),
       dir.file("syn"), dir.file("syn/test.pt")},
      {"predict --checkpoint " + best + " --data " + dir.file("syn/test.pt") +
           " --force --output " + dir.file("pred/p.csv"),
       dir.file("pred"), dir.file("pred/p.csv")},
      {"explain --checkpoint " + best + " --samples 64 --bootstrap 2 --force --out " +
           dir.file("ex"),
       dir.file("ex"), dir.file("ex/explain.json")},
      {"mkl --config " + tiny() + " --out " + dir.file("mkl"), dir.file("mkl"), ""}};
  fs::create_directories(dir.file("syn"));
  fs::create_directories(dir.file("pred"));
  for (const auto& c : cases) {
    if (!c.kept.empty()) ASSERT_EQ(run(c.command, dir).code, 0) << c.command;  // the earlier one
    const std::string earlier = c.kept.empty() ? "" : read_text(c.kept);
    for (const std::string op : {"write", "fsync", "rename"}) {
      int failures = 0;
      for (int k = 1; k < 40; ++k) {
        SCOPED_TRACE(c.command + " with " + op + " " + std::to_string(k) + " failing");
        if (c.kept.empty()) fs::remove_all(c.out);
        const Result r = run(c.command, dir, "MMFUSION_TEST_FAULT=" + op + ":" + std::to_string(k));
        if (r.code == 0) break;
        ++failures;
        EXPECT_EQ(r.code, 1) << r.err;
        EXPECT_NE(r.err.find("mmfusion: error: " + c.out + "/"), std::string::npos) << r.err;
        EXPECT_TRUE(r.err.find(": cannot write") != std::string::npos ||
                    r.err.find(": cannot move the new file into place") != std::string::npos)
            << r.err;
        EXPECT_EQ(temporaries(c.out), std::vector<std::string>{});
        if (!c.kept.empty()) EXPECT_EQ(read_text(c.kept), earlier);
      }
      EXPECT_GE(failures, 1) << c.command << " " << op;
    }
  }
}

TEST(Cli, ASweepWhoseDiskFillsEndsWithExit1AndARerunFinishesIt) {
  TempDir dir;
  const std::string out = dir.file("sweep");
  const std::string sweep = "sweep --config " + tiny() + " --grid seed=1,2 --out " + out;
  // The 12th write falls in the first combination's training (its folder, not the sweep's).
  Result r = run(sweep, dir, "MMFUSION_TEST_FAULT=write:12");
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_EQ(temporaries(out), std::vector<std::string>{});
  // Its reports list what finished: the second combination, beside the failed first.
  const std::string partial = read_text(out + "/results.csv");
  EXPECT_EQ(std::count(partial.begin(), partial.end(), '\n'), 3) << partial;
  EXPECT_NE(partial.find(",ok"), std::string::npos) << partial;
  r = run(sweep, dir);
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string csv = read_text(out + "/results.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3) << csv;  // a header and two runs
  EXPECT_EQ(csv.find(",failed"), std::string::npos) << csv;
}

TEST(Cli, TrainingOnARealFullTmpfsStopsCleanlyAndResumesOnceThereIsSpace) {
  // Not the seam: a real filesystem that fills (root only, as CI runs; the mount needs it).
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  TempDir dir;
  const std::string mnt = dir.file("small");
  fs::create_directories(mnt);
  if (std::system(("mount -t tmpfs -o size=96k tmpfs " + mnt + " 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "mount -t tmpfs is not allowed here";
  struct Unmount {
    std::string at;
    ~Unmount() { (void)!std::system(("umount " + at).c_str()); }
  } unmount{mnt};
  const std::string out = mnt + "/run";
  Result r = run("train --config " + tiny() + " --set train.epochs=6 --out " + out, dir);
  ASSERT_EQ(r.code, 1) << "96 KiB should not hold six epochs of checkpoints: " << r.err;
  EXPECT_NE(r.err.find("No space left on device"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("terminate"), std::string::npos) << r.err;
  EXPECT_EQ(temporaries(out), std::vector<std::string>{});
  ASSERT_NE(r.err.find("checkpoints/last.pt holds epoch"), std::string::npos) << r.err;
  ASSERT_EQ(std::system(("mount -o remount,size=8m " + mnt).c_str()), 0);
  r = run("train --resume " + out + "/checkpoints/last.pt", dir);
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(json::parse(read_text(out + "/results.json"))["epochs"], 6);
  // Read-only: refused before any training, and the finished run is left as it was.
  ASSERT_EQ(std::system(("mount -o remount,ro " + mnt).c_str()), 0);
  const std::string results = read_text(out + "/results.json");
  r = run("train --config " + tiny() + " --out " + mnt + "/second", dir);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(r.err, "mmfusion: error: " + mnt +
                       "/second: cannot create the run folder: "
                       "Read-only file system\n");
  EXPECT_EQ(read_text(out + "/results.json"), results);
}

// An attribute shard that did its own runs exits 0 and says what other shards owe; the
// shard that completes the set prints the report.
TEST(Cli, AnAttributeShardThatDidItsPartExitsZero) {
  TempDir dir;
  const std::string common = "attribute --config " + tiny() + " --seeds 1 --set train.epochs=1 --out " +
                             dir.file("attr");
  Result r = run(common + " --shard 0/2", dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("shard 0/2: its 4 run(s) are done; 3 run(s) of other shards have no results yet"),
            std::string::npos)
      << r.out;
  r = run(common + " --shard 1/2", dir);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("attribute: "), std::string::npos) << r.out;  // the table: every run is in
}

// Issue 45: on a terminal, explain draws its progress (the subsets, then the bootstrap)
// before its table; where stderr is not a terminal, no progress line is drawn.
TEST(Cli, ExplainDrawsProgressOnATerminalBeforeItsTable) {
  TempDir dir;
  ASSERT_EQ(run("train --config " + tiny() + " --out " + dir.file("run"), dir).code, 0);
  const std::string checkpoint = dir.file("run/checkpoints/best.pt");
  int master = -1;
  const pid_t pid = ::forkpty(&master, nullptr, nullptr, nullptr);
  ASSERT_GE(pid, 0) << "forkpty failed";
  if (pid == 0) {
    ::execl(MMFUSION_BINARY, MMFUSION_BINARY, "explain", "--checkpoint", checkpoint.c_str(),
            "--samples", "2000", "--bootstrap", "20", "--out", dir.file("on-terminal").c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  std::string seen;
  char buffer[4096];
  for (ssize_t n; (n = ::read(master, buffer, sizeof buffer)) > 0;) seen.append(buffer, size_t(n));
  ::close(master);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << seen;
  const size_t subsets = seen.find("explain: evaluating the model on subsets 0/8");
  const size_t bootstrap = seen.find("explain: bootstrap resamples");
  const size_t table = seen.find("prediction of lmf: 2000 row pairs");
  ASSERT_NE(subsets, std::string::npos) << seen;
  ASSERT_NE(bootstrap, std::string::npos) << seen;
  ASSERT_NE(table, std::string::npos) << seen;
  EXPECT_LT(subsets, bootstrap);
  EXPECT_LT(bootstrap, table);
  EXPECT_NE(seen.find("\r\033[K"), std::string::npos);  // drawn in place, then cleared
  // Not a terminal: the same command draws nothing.
  const Result piped = run("explain --checkpoint " + checkpoint +
                               " --samples 2000 --bootstrap 20 --out " + dir.file("piped"),
                           dir);
  ASSERT_EQ(piped.code, 0) << piped.err;
  EXPECT_EQ(piped.err.find("evaluating the model"), std::string::npos) << piped.err;
  EXPECT_EQ(piped.err.find('\r'), std::string::npos) << piped.err;
}

// Issue 45: every error about an option is a usage error that names the option as typed.
TEST(Cli, OptionErrorsAreUsageErrorsThatNameTheOptionAsTyped) {
  TempDir dir;
  ASSERT_EQ(run("train --config " + tiny() + " --out " + dir.file("run"), dir).code, 0);
  const std::string checkpoint = dir.file("run/checkpoints/best.pt");
  const std::pair<std::string, std::string> cases[] = {
      {"sweep --config " + tiny() + " --grid model.rank=1,2 --shard 2/2 --out " + dir.file("s"),
       "usage error: --shard 2/2: "},
      {"sweep --config " + tiny() + " --grid model.rank=1,2 --jobs 0 --out " + dir.file("s"),
       "usage error: --jobs 0: "},
      {"sweep --config " + tiny() + " --grid model.rank --out " + dir.file("s"),
       "usage error: --grid model.rank: "},
      {"explain --checkpoint " + checkpoint + " --samples 1", "usage error: --samples: "},
      {"robustness --checkpoint " + checkpoint + " --levels 0", "usage error: --levels: "},
      {"train --config " + tiny() + " --set model.rank --out " + dir.file("t"),
       "usage error: --set model.rank: "},
      {"attribute --config " + tiny() + " --jobs 0 --out " + dir.file("a"), "usage error: --jobs 0: "},
      {"attribute --config " + tiny() + " --seeds 0 --dry-run --out " + dir.file("a"),
       "usage error: --seeds 0: "},
      {"attribute --config " + tiny() + " --bootstrap -1 --dry-run --out " + dir.file("a"),
       "usage error: --bootstrap -1: "},
  };
  for (const auto& [args, words] : cases) {
    const Result r = run(args, dir);
    EXPECT_EQ(r.code, 2) << args << "\n" << r.err;
    EXPECT_NE(r.err.find("mmfusion: " + words), std::string::npos) << args << "\n" << r.err;
    EXPECT_EQ(count_lines(r.err), 1) << args << "\n" << r.err;
  }
}
