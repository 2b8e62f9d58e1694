// mmfusion command line: parses arguments and hands them to the library. Each subcommand
// is registered by a function of its own, which wires its options into an argument
// struct and returns what runs it.
// Exit codes: 0 success, 2 usage or config error, 1 other failure, 130 interrupted.
#include <algorithm>
#include <filesystem>
#include <functional>
#include <iostream>
#include <memory>

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/spelling.hpp"
#include "mmfusion/base/version.hpp"
#include "mmfusion/cli/commands.hpp"
#include "mmfusion/config/config_keys.hpp"
#include "mmfusion/experiments/bench.hpp"
#include "mmfusion/experiments/attribute.hpp"
#include "mmfusion/experiments/sweep.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "mmfusion/mkl/mkl_experiment.hpp"
#include "mmfusion/runtime/runtime.hpp"

namespace {

using namespace mmfusion;

// A registered subcommand: its CLI11 app, and what runs it once it is chosen (the exit
// code). `console` commands log to the console only (train opens its run's log itself).
struct Command {
  CLI::App* app;
  std::function<int()> run;
  bool console = true;
};

// Errors are reported on one line, whatever the exception text holds.
int fail(const std::string& kind, std::string message, int code) {
  std::replace(message.begin(), message.end(), '\n', ' ');
  std::cerr << "mmfusion: " << kind << message << "\n";
  return code;
}

const std::vector<std::string> kSplits{"train", "val", "test"};

void add_overrides(CLI::App* cmd, std::vector<std::string>& overrides,
                   const char* what = "a config key") {
  cmd->add_option("--set", overrides, std::string("Override ") + what + ": KEY=VALUE (repeatable)")
      ->take_all();
}

// --config FILE, which must exist.
CLI::Option* add_config(CLI::App* cmd, std::string& config,
                        const char* what = "Experiment config (JSON)") {
  return cmd->add_option("--config", config, what)->check(CLI::ExistingFile);
}

Command add_train(CLI::App& app) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a model from a JSON config, or resume a run");
  auto* config = add_config(cmd, args->config);
  auto* resume = cmd->add_option("--resume", args->resume,
                                 "Checkpoint to continue from (its run folder is reused)");
  config->excludes(resume);
  add_overrides(cmd, args->overrides);
  cmd->add_option("--out", args->out, "Run folder (default runs/<name>-<timestamp>)");
  return {cmd,
          [args] {
            if (args->config.empty() && args->resume.empty())
              return fail("usage error: ", "train needs --config FILE or --resume CHECKPOINT", 2);
            const auto outcome = run_train(*args);
            if (outcome.leader) std::cout << outcome.run_dir << "\n";  // once, not per rank
            return 0;
          },
          false};
}

Command add_eval(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a checkpoint; prints metrics as JSON");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint file")->required();
  cmd->add_option("--split", args->split,
                  "train, val or test split of the checkpoint's data config")
      ->check(CLI::IsMember(kSplits))
      ->capture_default_str();
  cmd->add_option("--data", args->data, "Data file to evaluate on instead of a split");
  cmd->add_option("--device", args->device, "auto, cpu, cuda or cuda:N");
  return {cmd, [args] {
            std::cout << run_eval(*args).dump(2) << "\n";
            return 0;
          }};
}

Command add_predict(CLI::App& app) {
  auto args = std::make_shared<PredictArgs>();
  auto* cmd =
      app.add_subcommand("predict", "Write a checkpoint's predictions on a data file as CSV");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint file")->required();
  cmd->add_option("--data", args->data, "Data file (torch.save dict of tensors)")->required();
  cmd->add_option("--output", args->output, "CSV file to write")->required();
  cmd->add_option("--device", args->device, "auto, cpu, cuda or cuda:N");
  cmd->add_flag("--force", args->force, "Overwrite an existing output file");
  return {cmd, [args] {
            const int64_t rows = run_predict(*args);
            spdlog::info("wrote {} predictions to {}", rows, args->output);
            return 0;
          }};
}

Command add_explain(CLI::App& app) {
  auto args = std::make_shared<ExplainArgs>();
  auto* cmd = app.add_subcommand(
      "explain",
      "How much each modality and each combination of modalities contributes to a model's output");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint file")->required();
  auto* split = cmd->add_option("--split", args->split,
                                "train, val or test split of the checkpoint's data config")
                    ->check(CLI::IsMember(kSplits))
                    ->capture_default_str();
  cmd->add_option(
         "--data", args->data,
         "Data file to explain on instead of a split (its NAME.truth.json is used when present)")
      ->excludes(split);
  cmd->add_option("--samples", args->options.samples, "Row pairs")->capture_default_str();
  cmd->add_option("--bootstrap", args->options.bootstrap,
                  "Bootstrap resamples for the 95% intervals (0: none)")
      ->capture_default_str();
  cmd->add_option("--seed", args->options.seed, "Seed of the row pairs and resamples")
      ->capture_default_str();
  cmd->add_option("--emap-background", args->options.emap_background,
                  "EMAP's background rows per modality (0: no EMAP)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--out", args->out,
                  "Folder for explain.json, .csv and .svg (default: the run folder's explain/)");
  cmd->add_option("--device", args->device, "auto, cpu, cuda or cuda:N");
  cmd->add_flag("--force", args->force, "Overwrite an earlier explain.json in that folder");
  return {cmd, [args] {
            const auto result = run_explain(*args);
            std::cout << explain_table(result) << result["out"].get<std::string>() << "\n";
            return 0;
          }};
}

Command add_robustness(CLI::App& app) {
  auto args = std::make_shared<RobustnessArgs>();
  auto* cmd = app.add_subcommand(
      "robustness", "A model's metric as each modality degrades: noise, missing rows, missing steps");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint file")->required();
  auto* split = cmd->add_option("--split", args->split,
                                "train, val or test split of the checkpoint's data config")
                    ->check(CLI::IsMember(kSplits))
                    ->capture_default_str();
  cmd->add_option("--data", args->data, "Data file (with targets) instead of a split")->excludes(split);
  cmd->add_option("--levels", args->options.levels, "Levels 1/N, 2/N, ..., 1 beside 0")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--repeats", args->options.repeats, "Seeded draws per level (the 95% interval)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--seed", args->options.seed, "Seed of every draw")->capture_default_str();
  cmd->add_option("--metric", args->options.metric,
                  "Metric of the curves (default: the task's headline metric)");
  cmd->add_option("--baseline", args->baseline,
                  "Another model's robustness.json: effective robustness against its curves")
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", args->out,
                  "Folder for robustness.json, .csv and .svg (default: the run folder's robustness/)");
  cmd->add_option("--device", args->device, "auto, cpu, cuda or cuda:N");
  cmd->add_flag("--force", args->force, "Overwrite an earlier robustness.json in that folder");
  return {cmd, [args] {
            const auto result = run_robustness(*args);
            std::cout << robustness_table(result) << result["out"].get<std::string>() << "\n";
            return 0;
          }};
}

Command add_inspect(CLI::App& app) {
  auto path = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand("inspect", "Print what a checkpoint holds as JSON");
  cmd->add_option("--checkpoint", *path, "Checkpoint file")->required();
  return {cmd, [path] {
            std::cout << run_inspect(*path).dump(2) << "\n";
            return 0;
          }};
}

Command add_inspect_data(CLI::App& app) {
  struct Args {
    std::string file, config;
    std::vector<std::string> overrides;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "inspect-data",
      "Print a benchmark pickle's keys, shapes and dtypes (--file), or a config's data as train "
      "reads them, with the speed and memory (--config; docs/benchmarks.md)");
  auto* file = cmd->add_option("--file", args->file, "Pickle file");
  auto* config = add_config(cmd, args->config, "Experiment config (JSON) whose data to read");
  file->excludes(config);
  add_overrides(cmd, args->overrides);
  return {cmd, [args, file, config] {
            if (file->count() == 0 && config->count() == 0)
              throw UsageError("inspect-data: give --file PICKLE or --config CONFIG");
            std::cout << (args->config.empty() ? run_inspect_data(args->file)
                                               : run_inspect_config_data(args->config, args->overrides));
            return 0;
          }};
}

Command add_synth(CLI::App& app) {
  auto args = std::make_shared<SynthArgs>();
  auto* cmd = app.add_subcommand("synth", "Write a config's synthetic split as a data file");
  add_config(cmd, args->config)->required();
  add_overrides(cmd, args->overrides);
  cmd->add_option("--split", args->split, "train, val or test")
      ->check(CLI::IsMember(kSplits))
      ->capture_default_str();
  cmd->add_option("--output", args->output, "Data file to write (.pt or .npz)")->required();
  cmd->add_flag("--force", args->force, "Overwrite an existing output file");
  return {cmd, [args] {
            const int64_t rows = run_synth(*args);
            spdlog::info("wrote {} {} samples to {}", rows, args->split, args->output);
            return 0;
          }};
}

Command add_validate(CLI::App& app) {
  struct Args {
    std::string config;
    std::vector<std::string> overrides;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("validate", "Check a config and print it resolved (JSON)");
  add_config(cmd, args->config)->required();
  add_overrides(cmd, args->overrides);
  return {cmd, [args] {
            std::cout << run_validate(args->config, args->overrides).dump(2) << "\n";
            return 0;
          }};
}

Command add_schema(CLI::App& app) {
  auto markdown = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand(
      "schema", "Print the JSON Schema of a config (configs/mmfusion.schema.json)");
  cmd->add_flag("--markdown", *markdown, "Print docs/config.md's key tables instead");
  return {cmd, [markdown] {
            std::cout << (*markdown ? config_keys_markdown() : config_schema().dump(2) + "\n");
            return 0;
          }};
}

Command add_bench(CLI::App& app) {
  auto args = std::make_shared<BenchArgs>();
  auto json = std::make_shared<bool>(false);
  auto* cmd = app.add_subcommand("bench", "Time training and evaluation steps of a config's model");
  add_config(cmd, args->config)->required();
  add_overrides(cmd, args->overrides);
  cmd->add_option("--batch-sizes", args->batch_sizes, "Comma-separated batch sizes")
      ->delimiter(',');
  cmd->add_option("--steps", args->steps, "Timed steps per repeat")->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "Untimed steps first")->capture_default_str();
  cmd->add_option("--repeats", args->repeats, "Repeats (median, min and max are reported)")
      ->capture_default_str();
  cmd->add_flag("--json", *json, "Print one JSON object instead of a table");
  return {cmd, [args, json] {
            const auto result = run_bench(*args);
            std::cout << (*json ? result.dump(2) + "\n" : bench_table(result));
            return 0;
          }};
}

Command add_mkl(CLI::App& app) {
  auto args = std::make_shared<MKLArgs>();
  auto* cmd = app.add_subcommand(
      "mkl", "Multiple kernel learning on a config's data, with kernel PCA pictures");
  add_config(cmd, args->config)->required();
  add_overrides(cmd, args->overrides);
  cmd->add_option("--out", args->out, "Run folder (default runs/<name>-mkl-<timestamp>)");
  return {cmd, [args] {
            std::cout << run_mkl(*args)["run_dir"].get<std::string>() << "\n";
            return 0;
          }};
}

Command add_sweep(CLI::App& app) {
  auto args = std::make_shared<SweepArgs>();
  auto* cmd = app.add_subcommand(
      "sweep", "Train one run per combination of a grid; tabulate and chart them");
  auto* config = add_config(cmd, args->config, "Base experiment config (JSON)");
  auto* file = cmd->add_option("--sweep", args->sweep_file,
                               "Sweep file: {\"name\", \"base\", \"set\", \"grid\"}")
                   ->check(CLI::ExistingFile);
  cmd->add_option("--grid", args->grid, "KEY=V1,V2,... (repeatable; values are JSON or strings)")
      ->take_all();
  add_overrides(cmd, args->overrides, "a base config key");
  cmd->add_option("--out", args->out,
                  "Sweep folder (default runs/sweep-<name>; rerun to continue)");
  cmd->add_flag("--dry-run", args->dry_run,
                "Validate every combination and list them; train nothing");
  cmd->add_option(
      "--x", args->x,
      "Grid key for chart.svg's x axis (default: the numeric key with the most values)");
  cmd->add_option("--jobs", args->jobs,
                  "Combinations at once on this machine, one process each, "
                  "with cores/J threads each")
      ->capture_default_str();
  cmd->add_option("--shard", args->shard,
                  "K/N: run the combinations i with i % N == K (0 <= K < N), "
                  "e.g. one SLURM array task or Kubernetes job index each");
  auto* report = cmd->add_option(
      "--report", args->report,
      "Rebuild results.csv, summary.md and chart.svg of sweep folder DIR; train nothing");
  cmd->add_option("--baseline", args->baseline,
                  "KEY=VALUE (one per grid key but seed): compare every combination with this "
                  "one in summary.md, instead of with the best");
  auto* worker = cmd->add_option("--worker", args->worker, "")->group("");  // what --jobs starts
  cmd->add_option("--worker-threads", args->worker_threads, "")->group("");
  cmd->callback([=] {
    if (config->count() == 0 && file->count() == 0 && report->count() == 0 && worker->count() == 0)
      throw CLI::ValidationError("sweep needs --config BASE, --sweep FILE or --report DIR");
  });
  return {cmd, [args] {
            std::error_code ec;
            args->executable = std::filesystem::read_symlink("/proc/self/exe", ec).string();
            const auto outcome = run_sweep(*args);
            if (!args->worker.empty()) return worker_exit_code(outcome);
            if (args->dry_run)
              for (const auto& run : outcome.runs) std::cout << outcome.dir << "/" << run << "\n";
            else
              std::cout << outcome.dir << "\n";
            if (outcome.failed > 0)
              return fail("error: ",
                          std::to_string(outcome.failed) + " sweep run(s) failed; see " +
                              outcome.dir + "/results.csv",
                          1);
            return 0;
          }};
}

Command add_attribute(CLI::App& app) {
  auto args = std::make_shared<AttributeArgs>();
  auto* cmd = app.add_subcommand(
      "attribute",
      "How much each modality and each combination contributes, by retraining on every subset");
  auto* config = add_config(cmd, args->config);
  add_overrides(cmd, args->overrides);
  cmd->add_option("--subsets", args->subsets,
                  "all (2^M - 1 subsets, up to 6 modalities), singles-and-leave-one-out, or "
                  "sampled (the prefixes of --permutations random orders)")
      ->check(CLI::IsMember({"all", "singles-and-leave-one-out", "sampled"}))
      ->capture_default_str();
  cmd->add_option("--seeds", args->seeds, "Runs per subset (train.seed = the config's + 0..K-1)")
      ->capture_default_str();
  cmd->add_option("--permutations", args->permutations,
                  "sampled: random orders of the modalities (default 2M)");
  cmd->add_option("--bootstrap", args->bootstrap,
                  "Resamples of the seeds for the 95% intervals (0: none)")
      ->capture_default_str();
  cmd->add_option("--jobs", args->jobs,
                  "Runs at once on this machine, one process each, with cores/J threads each")
      ->capture_default_str();
  cmd->add_option("--shard", args->shard, "K/N: run the runs i with i % N == K (0 <= K < N)");
  cmd->add_option("--out", args->out,
                  "Attribute folder (default runs/attribute-<name>; rerun to continue)");
  cmd->add_flag("--dry-run", args->dry_run,
                "Validate every run's config and list them; train nothing");
  auto* report = cmd->add_option(
      "--report", args->report,
      "Rebuild attribute.json, .csv and .svg of attribute folder DIR; train nothing");
  report->excludes(config);
  auto* worker = cmd->add_option("--worker", args->worker, "")->group("");  // what --jobs starts
  cmd->add_option("--worker-threads", args->worker_threads, "")->group("");
  cmd->callback([=] {
    if (config->count() == 0 && report->count() == 0 && worker->count() == 0)
      throw CLI::ValidationError("attribute needs --config FILE or --report DIR");
  });
  return {cmd, [args] {
            std::error_code ec;
            args->executable = std::filesystem::read_symlink("/proc/self/exe", ec).string();
            const auto outcome = run_attribute(*args);
            if (!args->worker.empty()) return worker_exit_code(outcome.runs);
            if (args->dry_run) {
              for (const auto& run : outcome.runs.runs)
                std::cout << outcome.runs.dir << "/" << run << "\n";
              return 0;
            }
            if (!outcome.result.is_null()) {
              std::cout << attribute_table(outcome.result) << outcome.runs.dir << "\n";
              return 0;
            }
            // A shard that did its own part succeeded: the runs left are other shards'.
            const auto& mine = outcome.runs.runs;
            const bool others_only =
                !args->shard.empty() && outcome.runs.failed == 0 &&
                std::none_of(outcome.missing.begin(), outcome.missing.end(), [&](const std::string& m) {
                  return std::find(mine.begin(), mine.end(), m) != mine.end();
                });
            if (others_only) {
              std::cout << "shard " << args->shard << ": its " << mine.size() << " run(s) are done; "
                        << outcome.missing.size()
                        << " run(s) of other shards have no results yet; when every shard is done, "
                           "rerun with --report "
                        << outcome.runs.dir << "\n";
              return 0;
            }
            std::string first = outcome.missing.front();
            return fail(
                "error: ",
                std::to_string(outcome.missing.size()) + " run(s) have no results, e.g. " + first +
                    (args->shard.empty() && args->report.empty()
                         ? "; rerun the same command to retry them"
                         : "; when every shard is done, rerun with --report " + outcome.runs.dir),
                1);
          }};
}

// "unknown command 'trian' (did you mean 'train'?)", before CLI11 would take the word
// for a stray argument; -h, --version and the like are CLI11's.
bool unknown_command(int argc, char** argv, const std::vector<Command>& commands) {
  if (argc < 2 || argv[1][0] == '-') return false;
  const std::string word = argv[1];
  std::vector<std::string> names;
  for (const auto& c : commands) {
    if (c.app->check_name(word)) return false;
    names.push_back(c.app->get_name());
  }
  const std::string near = nearest_word(word, names);
  std::string known;
  for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
  fail("usage error: ",
       "unknown command '" + word + "' " +
           (near.empty() ? "(commands: " + known + ")" : "(did you mean '" + near + "'?)"),
       2);
  return true;
}

int run_chosen(const std::vector<Command>& commands) {
  try {
    for (const auto& c : commands) {
      if (!*c.app) continue;
      if (c.console) make_logger("");  // console only
      const int code = c.run();
      // A log file that could not be written fails the command too (the sink never throws).
      if (const std::string failed = log_write_failure(*spdlog::default_logger());
          !failed.empty() && code == 0)
        return fail("error: ",
                    failed + "; the command finished and wrote its other files, but its log "
                             "lacks the lines from then on",
                    1);
      return code;
    }
  } catch (const UsageError& e) {
    return fail("usage error: ", e.what(), 2);
  } catch (const ConfigError& e) {
    return fail("config error: ", e.what(), 2);
  } catch (const Interrupted& e) {
    spdlog::warn("{}", e.what());
    return 130;
  } catch (const Error& e) { return fail("error: ", e.what(), 1); } catch (const c10::Error& e) {
    return fail("error: ", e.what_without_backtrace(), 1);
  } catch (const std::exception& e) { return fail("error: ", e.what(), 1); }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  keep_freed_memory();
  CLI::App app{"mmfusion: multimodal fusion experiments (LMF) with LibTorch"};
  app.set_version_flag("--version", std::string("mmfusion ") + kVersion);
  app.require_subcommand(1);
  const std::vector<Command> commands{add_train(app),    add_eval(app),    add_predict(app),
                                      add_explain(app),  add_inspect(app), add_synth(app),
                                      add_validate(app), add_schema(app),  add_bench(app),
                                      add_mkl(app),      add_sweep(app),   add_attribute(app),
                                      add_inspect_data(app), add_robustness(app)};
  if (unknown_command(argc, argv, commands)) return 2;
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    return fail("usage error: ", e.what() + std::string(" (see --help)"), 2);
  }
  return run_chosen(commands);
}
