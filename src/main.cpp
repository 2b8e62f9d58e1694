// mmfusion command line: parses arguments and hands them to the library.
// Exit codes: 0 success, 2 usage or config error, 1 other failure, 130 interrupted.
#include <algorithm>
#include <filesystem>
#include <iostream>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "mmfusion/bench.hpp"
#include "mmfusion/commands.hpp"
#include "mmfusion/config_keys.hpp"
#include "mmfusion/errors.hpp"
#include "mmfusion/mkl_experiment.hpp"
#include "mmfusion/run_folder.hpp"
#include "mmfusion/runtime.hpp"
#include "mmfusion/sweep.hpp"
#include "mmfusion/version.hpp"

namespace {

// Errors are reported on one line, whatever the exception text holds.
int fail(const std::string& kind, std::string message, int code) {
  std::replace(message.begin(), message.end(), '\n', ' ');
  std::cerr << "mmfusion: " << kind << message << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mmfusion;
  keep_freed_memory();
  CLI::App app{"mmfusion: multimodal fusion experiments (LMF) with LibTorch"};
  app.set_version_flag("--version", std::string("mmfusion ") + kVersion);
  app.require_subcommand(1);

  TrainArgs train;
  auto* train_cmd = app.add_subcommand("train", "Train a model from a JSON config, or resume a run");
  auto* config_opt = train_cmd->add_option("--config", train.config, "Experiment config (JSON)")
                         ->check(CLI::ExistingFile);
  auto* resume_opt = train_cmd->add_option("--resume", train.resume,
                                           "Checkpoint to continue from (its run folder is reused)");
  config_opt->excludes(resume_opt);
  train_cmd->add_option("--set", train.overrides, "Override a config key: KEY=VALUE (repeatable)")
      ->take_all();
  train_cmd->add_option("--out", train.out, "Run folder (default runs/<name>-<timestamp>)");

  EvalArgs eval;
  auto* eval_cmd = app.add_subcommand("eval", "Evaluate a checkpoint; prints metrics as JSON");
  eval_cmd->add_option("--checkpoint", eval.checkpoint, "Checkpoint file")->required();
  eval_cmd->add_option("--split", eval.split, "train, val or test split of the checkpoint's data config (default: test)")
      ->check(CLI::IsMember({"train", "val", "test"}));
  eval_cmd->add_option("--data", eval.data, "Data file to evaluate on instead of a split");
  eval_cmd->add_option("--device", eval.device, "auto, cpu, cuda or cuda:N");

  PredictArgs predict;
  auto* predict_cmd = app.add_subcommand("predict", "Write a checkpoint's predictions on a data file as CSV");
  predict_cmd->add_option("--checkpoint", predict.checkpoint, "Checkpoint file")->required();
  predict_cmd->add_option("--data", predict.data, "Data file (torch.save dict of tensors)")->required();
  predict_cmd->add_option("--output", predict.output, "CSV file to write")->required();
  predict_cmd->add_option("--device", predict.device, "auto, cpu, cuda or cuda:N");
  predict_cmd->add_flag("--force", predict.force, "Overwrite an existing output file");

  ExplainArgs explain;
  auto* explain_cmd = app.add_subcommand(
      "explain", "How much each modality and each combination of modalities contributes to a model's output");
  explain_cmd->add_option("--checkpoint", explain.checkpoint, "Checkpoint file")->required();
  auto* explain_split = explain_cmd->add_option("--split", explain.split, "train, val or test split of the checkpoint's data config (default: test)")
      ->check(CLI::IsMember({"train", "val", "test"}));
  explain_cmd->add_option("--data", explain.data, "Data file to explain on instead of a split (its NAME.truth.json is used when present)")
      ->excludes(explain_split);
  explain_cmd->add_option("--samples", explain.options.samples, "Row pairs (default 65536)");
  explain_cmd->add_option("--bootstrap", explain.options.bootstrap, "Bootstrap resamples for the 95% intervals (default 100; 0: none)");
  explain_cmd->add_option("--seed", explain.options.seed, "Seed of the row pairs and resamples (default 0)");
  explain_cmd->add_option("--out", explain.out, "Folder for explain.json, .csv and .svg (default: the run folder's explain/)");
  explain_cmd->add_option("--device", explain.device, "auto, cpu, cuda or cuda:N");
  explain_cmd->add_flag("--force", explain.force, "Overwrite an earlier explain.json in that folder");

  std::string inspect_path;
  auto* inspect_cmd = app.add_subcommand("inspect", "Print what a checkpoint holds as JSON");
  inspect_cmd->add_option("--checkpoint", inspect_path, "Checkpoint file")->required();

  SynthArgs synth;
  auto* synth_cmd = app.add_subcommand("synth", "Write a config's synthetic split as a data file");
  synth_cmd->add_option("--config", synth.config, "Experiment config (JSON)")->required()->check(CLI::ExistingFile);
  synth_cmd->add_option("--set", synth.overrides, "Override a config key: KEY=VALUE")->take_all();
  synth_cmd->add_option("--split", synth.split, "train, val or test (default: train)")
      ->check(CLI::IsMember({"train", "val", "test"}));
  synth_cmd->add_option("--output", synth.output, "Data file to write (.pt)")->required();
  synth_cmd->add_flag("--force", synth.force, "Overwrite an existing output file");

  std::string validate_path;
  std::vector<std::string> validate_overrides;
  auto* validate_cmd = app.add_subcommand("validate", "Check a config and print it resolved (JSON)");
  validate_cmd->add_option("--config", validate_path, "Experiment config (JSON)")->required()->check(CLI::ExistingFile);
  validate_cmd->add_option("--set", validate_overrides, "Override a config key: KEY=VALUE")->take_all();

  bool schema_markdown = false;
  auto* schema_cmd = app.add_subcommand("schema", "Print the JSON Schema of a config (configs/mmfusion.schema.json)");
  schema_cmd->add_flag("--markdown", schema_markdown, "Print docs/config.md's key tables instead");

  BenchArgs bench;
  bool bench_json = false;
  auto* bench_cmd = app.add_subcommand("bench", "Time training and evaluation steps of a config's model");
  bench_cmd->add_option("--config", bench.config, "Experiment config (JSON)")->required()->check(CLI::ExistingFile);
  bench_cmd->add_option("--set", bench.overrides, "Override a config key: KEY=VALUE")->take_all();
  bench_cmd->add_option("--batch-sizes", bench.batch_sizes, "Comma-separated batch sizes")->delimiter(',');
  bench_cmd->add_option("--steps", bench.steps, "Timed steps per repeat");
  bench_cmd->add_option("--warmup", bench.warmup, "Untimed steps first");
  bench_cmd->add_option("--repeats", bench.repeats, "Repeats (median, min and max are reported)");
  bench_cmd->add_flag("--json", bench_json, "Print one JSON object instead of a table");

  MKLArgs mkl;
  auto* mkl_cmd = app.add_subcommand("mkl", "Multiple kernel learning on a config's data, with kernel PCA pictures");
  mkl_cmd->add_option("--config", mkl.config, "Experiment config (JSON)")->required()->check(CLI::ExistingFile);
  mkl_cmd->add_option("--set", mkl.overrides, "Override a config key: KEY=VALUE")->take_all();
  mkl_cmd->add_option("--out", mkl.out, "Run folder (default runs/<name>-mkl-<timestamp>)");

  SweepArgs sweep;
  auto* sweep_cmd = app.add_subcommand("sweep", "Train one run per combination of a grid; tabulate and chart them");
  auto* sweep_config = sweep_cmd->add_option("--config", sweep.config, "Base experiment config (JSON)")
                           ->check(CLI::ExistingFile);
  auto* sweep_file = sweep_cmd->add_option("--sweep", sweep.sweep_file,
                                           "Sweep file: {\"name\", \"base\", \"set\", \"grid\"}")
                         ->check(CLI::ExistingFile);
  sweep_cmd->add_option("--grid", sweep.grid, "KEY=V1,V2,... (repeatable; values are JSON or strings)")
      ->take_all();
  sweep_cmd->add_option("--set", sweep.overrides, "Override a base config key: KEY=VALUE")->take_all();
  sweep_cmd->add_option("--out", sweep.out, "Sweep folder (default runs/sweep-<name>; rerun to continue)");
  sweep_cmd->add_flag("--dry-run", sweep.dry_run, "Validate every combination and list them; train nothing");
  sweep_cmd->add_option("--x", sweep.x, "Grid key for chart.svg's x axis (default: the numeric key with the most values)");
  sweep_cmd->add_option("--jobs", sweep.jobs, "Combinations at once on this machine, one process each, "
                                              "with cores/J threads each (default 1)");
  sweep_cmd->add_option("--shard", sweep.shard, "K/N: run the combinations i with i % N == K (0 <= K < N), "
                                                "e.g. one SLURM array task or Kubernetes job index each");
  auto* sweep_report = sweep_cmd->add_option("--report", sweep.report,
                                             "Rebuild results.csv, summary.md and chart.svg of sweep folder DIR; train nothing");
  auto* sweep_worker = sweep_cmd->add_option("--worker", sweep.worker, "")->group("");  // what --jobs starts
  sweep_cmd->add_option("--worker-threads", sweep.worker_threads, "")->group("");
  sweep_cmd->callback([&] {
    if (sweep_config->count() == 0 && sweep_file->count() == 0 && sweep_report->count() == 0 &&
        sweep_worker->count() == 0)
      throw CLI::RequiredError("sweep needs --config BASE, --sweep FILE or --report DIR");
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return fail("usage error: ", e.what() + std::string(" (see --help)"), 2);
  }

  try {
    if (*train_cmd) {
      if (train.config.empty() && train.resume.empty())
        return fail("usage error: ", "train needs --config FILE or --resume CHECKPOINT", 2);
      const auto outcome = run_train(train);
      if (outcome.leader) std::cout << outcome.run_dir << "\n";  // once, not per rank
    } else {
      make_logger("");  // console only
      if (*eval_cmd) {
        std::cout << run_eval(eval).dump(2) << "\n";
      } else if (*predict_cmd) {
        const int64_t rows = run_predict(predict);
        spdlog::info("wrote {} predictions to {}", rows, predict.output);
      } else if (*explain_cmd) {
        const auto result = run_explain(explain);
        std::cout << explain_table(result) << result["out"].get<std::string>() << "\n";
      } else if (*inspect_cmd) {
        std::cout << run_inspect(inspect_path).dump(2) << "\n";
      } else if (*synth_cmd) {
        const int64_t rows = run_synth(synth);
        spdlog::info("wrote {} {} samples to {}", rows, synth.split, synth.output);
      } else if (*bench_cmd) {
        const auto result = run_bench(bench);
        std::cout << (bench_json ? result.dump(2) + "\n" : bench_table(result));
      } else if (*mkl_cmd) {
        std::cout << run_mkl(mkl)["run_dir"].get<std::string>() << "\n";
      } else if (*sweep_cmd) {
        std::error_code ec;
        sweep.executable = std::filesystem::read_symlink("/proc/self/exe", ec).string();
        const auto outcome = run_sweep(sweep);
        if (!sweep.worker.empty())
          return outcome.failed > 0 ? 1 : outcome.busy > 0 ? kSweepWorkerBusy : outcome.skipped > 0 ? kSweepWorkerSkipped : 0;
        if (sweep.dry_run)
          for (const auto& run : outcome.runs) std::cout << outcome.dir << "/" << run << "\n";
        else
          std::cout << outcome.dir << "\n";
        if (outcome.failed > 0) return fail("error: ", std::to_string(outcome.failed) + " sweep run(s) failed; see " +
                                                           outcome.dir + "/results.csv", 1);
      } else if (*validate_cmd) {
        std::cout << run_validate(validate_path, validate_overrides).dump(2) << "\n";
      } else if (*schema_cmd) {
        std::cout << (schema_markdown ? config_keys_markdown() : config_schema().dump(2) + "\n");
      }
    }
  } catch (const ConfigError& e) {
    return fail("config error: ", e.what(), 2);
  } catch (const Interrupted& e) {
    spdlog::warn("{}", e.what());
    return 130;
  } catch (const Error& e) {
    return fail("error: ", e.what(), 1);
  } catch (const c10::Error& e) {
    return fail("error: ", e.what_without_backtrace(), 1);
  } catch (const std::exception& e) {
    return fail("error: ", e.what(), 1);
  }
  return 0;
}
