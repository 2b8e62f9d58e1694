#include "mmfusion/commands.hpp"

#include <chrono>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <optional>
#include <sstream>
#include <thread>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "mmfusion/checkpoint.hpp"
#include "mmfusion/config.hpp"
#include "mmfusion/distributed.hpp"
#include "mmfusion/data.hpp"
#include "mmfusion/errors.hpp"
#include "mmfusion/files.hpp"
#include "mmfusion/mkl.hpp"
#include "mmfusion/svg.hpp"
#include "mmfusion/models.hpp"
#include "mmfusion/trainer.hpp"
#include "mmfusion/version.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr const char* kLogPattern = "[%Y-%m-%d %H:%M:%S] [%^%l%$] %v";

std::shared_ptr<spdlog::logger> make_logger(const std::string& log_file) {
  std::vector<spdlog::sink_ptr> sinks{std::make_shared<spdlog::sinks::stderr_color_sink_mt>()};
  if (!log_file.empty())
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file, /*truncate=*/false));
  auto logger = std::make_shared<spdlog::logger>("mmfusion", sinks.begin(), sinks.end());
  logger->set_pattern(kLogPattern);
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
  return logger;
}

// SIGINT/SIGTERM ask the trainer to stop after the current step; a second signal
// falls back to the default action (immediate exit).
std::atomic<int> g_stop_signal{0};
extern "C" void on_stop_signal(int signal) {
  g_stop_signal.store(signal);
  std::signal(signal, SIG_DFL);
}

struct SignalScope {
  SignalScope() {
    g_stop_signal.store(0);
    previous_int = std::signal(SIGINT, on_stop_signal);
    previous_term = std::signal(SIGTERM, on_stop_signal);
  }
  ~SignalScope() {
    std::signal(SIGINT, previous_int);
    std::signal(SIGTERM, previous_term);
  }
  void (*previous_int)(int);
  void (*previous_term)(int);
};

bool is_empty_or_missing(const fs::path& dir) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) return true;
  return fs::is_directory(dir, ec) && fs::is_empty(dir, ec);
}

// A fresh run folder: --out must be new or empty; the default name gets a suffix
// rather than reuse a folder.
std::string fresh_run_dir(const std::string& out, const std::string& name) {
  if (!out.empty()) {
    if (!is_empty_or_missing(out))
      throw ConfigError("--out " + out + ": the folder exists and is not empty; an earlier run "
                        "is never overwritten (choose another folder, or continue that run with "
                        "--resume " + (fs::path(out) / "checkpoints" / "last.pt").string() + ")");
    return out;
  }
  const std::string base = (fs::path("runs") / (name + "-" + timestamp())).string();
  std::string dir = base;
  for (int i = 2; !is_empty_or_missing(dir); ++i) dir = base + "-" + std::to_string(i);
  return dir;
}

void create_run_dir(const RunPaths& paths) {
  std::error_code ec;
  fs::create_directories(paths.checkpoints, ec);
  if (ec) throw Error(paths.dir + ": cannot create the run folder: " + ec.message());
}

// Resolves model.output_dim against the data and checks the splits agree.
void resolve_output_dim(ExperimentConfig& config, const DataSplits& data) {
  if (config.task == "classification") {
    config.model.output_dim = config.num_classes;  // labels were range-checked on load
    return;
  }
  const int64_t k = data.train.target_dim();
  for (const Dataset* d : {&data.val, &data.test})
    if (d->target_dim() != k)
      throw Error("data: the splits' targets differ in columns (" + std::to_string(k) + " vs " +
                  std::to_string(d->target_dim()) + ")");
  if (config.model.output_dim == 0) config.model.output_dim = k;
  else if (config.model.output_dim != k)
    throw ConfigError("model.output_dim: " + std::to_string(config.model.output_dim) +
                      " but the target has " + std::to_string(k) + " column(s)");
}

// Keys a resumed run may change: they alter neither the model nor the data.
void check_resume_overrides(const std::vector<std::string>& overrides) {
  static const std::vector<std::string> allowed{"train.epochs", "train.patience", "device",
                                                "threads"};
  for (const auto& o : overrides) {
    const std::string key = o.substr(0, o.find('='));
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end())
      throw ConfigError("--set " + key + ": cannot be changed when resuming (it would change the "
                        "model, data or optimizer); allowed: train.epochs, train.patience, device, "
                        "threads");
  }
}

std::string resume_run_dir(const std::string& checkpoint) {
  const fs::path parent = fs::absolute(checkpoint).parent_path();
  if (parent.filename() == "checkpoints" && fs::exists(parent.parent_path() / "config.json"))
    return parent.parent_path().lexically_relative(fs::current_path()).string();
  throw ConfigError("--resume " + checkpoint + ": cannot find its run folder (expected "
                    "DIR/checkpoints/NAME.pt beside DIR/config.json); pass --out DIR to "
                    "continue in a new folder");
}

ModelPtr load_model(Checkpoint& checkpoint, const torch::Device& device) {
  const auto& c = checkpoint.config;
  ModelPtr model = make_model(c.model, c.data.modalities, c.model.output_dim);
  checkpoint.load_model(*model);
  model->to(device);
  model->eval();
  return model;
}

void refuse_existing(const std::string& path, bool force) {
  std::error_code ec;
  if (!force && fs::exists(path, ec))
    throw ConfigError("--output " + path + ": the file exists (pass --force to overwrite it)");
}

std::string format_number(double x) {
  std::ostringstream out;
  out << std::setprecision(9) << x;
  return out.str();
}

}  // namespace

void setup_console_logging() { make_logger(""); }

namespace {
int env_number(const char* name, int fallback) {
  const char* v = std::getenv(name);
  if (!v || !*v) return fallback;
  try {
    return std::max(0, std::stoi(v));
  } catch (const std::exception&) {
    return fallback;
  }
}
}  // namespace

int local_rank() { return env_number("LOCAL_RANK", 0); }
int processes_on_this_machine() {
  return std::max(1, env_number("LOCAL_WORLD_SIZE", env_number("WORLD_SIZE", 1)));
}

TrainOutcome run_train(const TrainArgs& args) {
  SignalScope signals;  // from the start: a signal during setup stops at the first step
  ExperimentConfig config;
  std::optional<Checkpoint> checkpoint;
  if (!args.resume.empty()) {
    check_resume_overrides(args.overrides);
    Checkpoint probe = open_checkpoint(args.resume);
    json doc = to_json(probe.config);
    for (const auto& o : args.overrides) apply_override(doc, o);
    config = parse_config(doc);
  } else if (!args.config_doc.is_null()) {
    json doc = args.config_doc;
    for (const auto& o : args.overrides) apply_override(doc, o);
    config = parse_config(doc);
  } else {
    config = load_config(args.config, args.overrides);
  }
  torch::Device device = resolve_device(config.device);
  // Several processes (torchrun): join the group; rank 0 alone writes the run folder.
  const auto comm = join_process_group(config.distributed, device);
  const bool leader = !comm || comm->rank() == 0;
  if (comm && device.is_cuda() && (config.device == "auto" || config.device == "cuda"))
    device = resolve_device("cuda:" + std::to_string(local_rank()));  // one GPU per process
  // threads 0 = all hardware threads, shared among the processes on this machine.
  apply_threads(config.threads > 0 || !comm ? config.threads
                                            : std::max<int64_t>(1, std::thread::hardware_concurrency() /
                                                                       processes_on_this_machine()));

  std::string dir;
  if (!args.resume.empty()) checkpoint = open_checkpoint(args.resume, device);
  if (leader && !args.resume.empty()) {
    dir = args.out.empty() ? resume_run_dir(args.resume) : fresh_run_dir(args.out, config.name);
    if (args.out.empty()) {
      // Resuming from an older checkpoint in place would overwrite newer ones.
      const RunPaths existing(dir);
      if (fs::exists(existing.last) && !fs::equivalent(existing.last, args.resume) &&
          open_checkpoint(existing.last).progress.global_step > checkpoint->progress.global_step)
        throw ConfigError("--resume " + args.resume + ": " + existing.last +
                          " is newer; resuming in place would overwrite it (resume from it, or "
                          "pass --out DIR to branch into a new folder)");
    }
  } else if (leader) {
    dir = fresh_run_dir(args.out, config.name);
  }
  if (comm) dir = comm->share("run_dir", dir);

  const DataSplits data = load_splits(config);  // before creating anything on disk
  resolve_output_dim(config, data);
  const RunPaths paths(dir);
  std::shared_ptr<spdlog::logger> log;
  if (leader) {
    create_run_dir(paths);
    atomic_write_text(paths.config, to_json(config).dump(2) + "\n");
    log = make_logger(paths.log);
  } else {
    log = make_logger("");  // the other ranks report warnings and errors only
    log->set_level(spdlog::level::warn);
    log->set_pattern(fmt::format("[%Y-%m-%d %H:%M:%S] [%^%l%$] [rank {}] %v", comm->rank()));
  }
  if (comm)
    log->info("distributed: rank {} of {} ({}), {} threads each", comm->rank(), comm->world_size(),
              comm->backend(), torch::get_num_threads());
  if (checkpoint)
    log->info("mmfusion {}: resuming {} at epoch {} (step {}) into {}", kVersion, args.resume,
              checkpoint->progress.epoch, checkpoint->progress.global_step, dir);
  else
    log->info("mmfusion {}: run {} in {}", kVersion, config.name, dir);

  torch::manual_seed(config.seed);  // model initialisation and dropout
  Trainer trainer(config, data, device, paths, log);
  trainer.set_communicator(comm);
  if (checkpoint) trainer.restore(*checkpoint);
  trainer.fit(&g_stop_signal);
  if (!leader) return {dir, json::object()};
  TrainOutcome outcome{dir, trainer.write_results()};
  std::string summary;
  for (const auto& item : outcome.results["test"].items())
    if (item.key() != "count" && item.value().is_number_float())
      summary += fmt::format("  {} {:.4f}", item.key(), item.value().get<double>());
  log->info("best epoch {}: test{} -> {}", outcome.results["best_epoch"].get<int64_t>(), summary,
            paths.results);
  return outcome;
}

json run_eval(const EvalArgs& args) {
  const torch::Device device = resolve_device(args.device);
  Checkpoint checkpoint = open_checkpoint(args.checkpoint, device);
  const auto& config = checkpoint.config;
  apply_threads(config.threads);
  ModelPtr model = load_model(checkpoint, device);
  const bool classification = config.task == "classification";
  const Dataset data = args.data.empty() ? load_split(config, parse_split(args.split))
                                         : read_data_file(args.data, config.data.modalities,
                                                          /*require_target=*/true, config.num_classes);
  if (!classification && data.target_dim() != config.model.output_dim)
    throw Error((args.data.empty() ? std::string("data") : args.data) + ": the target has " +
                std::to_string(data.target_dim()) + " column(s), the model predicts " +
                std::to_string(config.model.output_dim));
  const auto prediction = predict(*model, data, config.train.eval_batch_size, device);
  const auto target = data.target.to(device);
  json out = task_metrics(config.task, prediction, target);
  out["loss"] = compute_loss(config.train, prediction, target).item<double>();
  out["loss_name"] = config.train.loss;
  out["data"] = args.data.empty() ? json(args.split) : json(args.data);
  out["checkpoint"] = args.checkpoint;
  out["epoch"] = checkpoint.progress.epoch;
  return out;
}

int64_t run_predict(const PredictArgs& args) {
  refuse_existing(args.output, args.force);
  const torch::Device device = resolve_device(args.device);
  Checkpoint checkpoint = open_checkpoint(args.checkpoint, device);
  const auto& config = checkpoint.config;
  apply_threads(config.threads);
  ModelPtr model = load_model(checkpoint, device);
  const Dataset data =
      read_data_file(args.data, config.data.modalities, /*require_target=*/false, config.num_classes);
  const auto prediction = predict(*model, data, config.train.eval_batch_size, device).cpu();
  const bool with_target = data.target.defined();
  std::ostringstream csv;
  if (config.task == "classification") {
    // index, predicted class, [target,] one probability per class.
    const auto probs = torch::softmax(prediction.to(torch::kFloat64), 1).contiguous();
    const auto labels = prediction.argmax(1);
    const int64_t k = probs.size(1);
    csv << "index,prediction" << (with_target ? ",target" : "");
    for (int64_t j = 0; j < k; ++j) csv << ",p_" << j;
    csv << "\n";
    for (int64_t i = 0; i < data.size(); ++i) {
      csv << i << ',' << labels[i].item<int64_t>();
      if (with_target) csv << ',' << data.target[i].item<int64_t>();
      for (int64_t j = 0; j < k; ++j) csv << ',' << format_number(probs[i][j].item<double>());
      csv << "\n";
    }
    atomic_write_text(args.output, csv.str());
    return data.size();
  }
  const int64_t k = prediction.size(1);

  csv << "index";
  for (int64_t j = 0; j < k; ++j) csv << (k == 1 ? ",prediction" : ",prediction_" + std::to_string(j));
  if (with_target)
    for (int64_t j = 0; j < data.target_dim(); ++j)
      csv << (data.target_dim() == 1 ? ",target" : ",target_" + std::to_string(j));
  csv << "\n";
  const auto p = prediction.to(torch::kFloat64).contiguous();
  const auto t = with_target ? data.target.to(torch::kFloat64).contiguous() : torch::Tensor();
  const double* pp = p.data_ptr<double>();
  const double* tp = with_target ? t.data_ptr<double>() : nullptr;
  for (int64_t i = 0; i < data.size(); ++i) {
    csv << i;
    for (int64_t j = 0; j < k; ++j) csv << ',' << format_number(pp[i * k + j]);
    if (with_target)
      for (int64_t j = 0; j < data.target_dim(); ++j)
        csv << ',' << format_number(tp[i * data.target_dim() + j]);
    csv << "\n";
  }
  atomic_write_text(args.output, csv.str());
  return data.size();
}

json run_inspect(const std::string& path) {
  Checkpoint checkpoint = open_checkpoint(path);
  const auto& config = checkpoint.config;
  ModelPtr model = make_model(config.model, config.data.modalities, config.model.output_dim);
  checkpoint.load_model(*model);
  json params = json::object();
  for (const auto& [name, count] : parameter_counts(*model)) params[name] = count;
  json shapes = json::object();
  for (const auto& p : model->named_parameters()) shapes[p.key()] = p.value().sizes().vec();
  const auto& p = checkpoint.progress;
  return {{"file", path},
          {"format", checkpoint.meta["format"]},
          {"format_version", checkpoint.meta["format_version"]},
          {"mmfusion_version", checkpoint.meta["mmfusion_version"]},
          {"epoch", p.epoch},
          {"epoch_step", p.epoch_step},
          {"global_step", p.global_step},
          {"best_val_loss", std::isfinite(p.best_val_loss) ? json(p.best_val_loss) : json(nullptr)},
          {"best_epoch", p.best_epoch},
          {"has_optimizer_state", checkpoint.has_optimizer()},
          {"parameters", params},
          {"parameter_shapes", shapes},
          {"config", to_json(config)}};
}

int64_t run_synth(const SynthArgs& args) {
  refuse_existing(args.output, args.force);
  const ExperimentConfig config = load_config(args.config, args.overrides);
  if (config.data.source != "synthetic")
    throw ConfigError("data.source: synth needs \"synthetic\", got \"" + config.data.source + "\"");
  const Dataset data = load_split(config, parse_split(args.split));  // labels for classification
  write_data_file(data, args.output);
  return data.size();
}

namespace {

// Targets as KRR sees them: regression, the centred target columns; classification,
// one-vs-rest +-1 columns.
torch::Tensor krr_targets(const ExperimentConfig& c, const torch::Tensor& target, const torch::Tensor& mean) {
  if (c.task == "classification") {
    auto y = -torch::ones({target.size(0), c.num_classes}, torch::TensorOptions(torch::kFloat64).device(target.device()));
    y.scatter_(1, target.unsqueeze(1), 1.0);
    return y;
  }
  return target.to(torch::kFloat64) - mean;
}

std::string kernel_label(const std::vector<std::string>& names, size_t which) {
  return which < names.size() ? names[which] : which == names.size() ? "uniform" : "learned";
}

}  // namespace

json run_mkl(const MKLArgs& args) {
  const ExperimentConfig config = load_config(args.config, args.overrides);
  const MKLConfig& mc = config.mkl;
  const torch::Device device = resolve_device(config.device);
  apply_threads(config.threads);
  const int64_t M = static_cast<int64_t>(config.data.modalities.size());
  auto check_memory = [&](int64_t n) {
    const double need = mkl_memory_bytes(n, M), limit = mc.max_memory_gb * double(1ULL << 30);
    if (need > limit)
      throw ConfigError(fmt::format(
          "mkl.train_size: {} training points need {:.1f} GiB of kernel matrices ({} n x n doubles), "
          "above mkl.max_memory_gb = {}; use fewer training points (mkl.train_size)",
          n, need / double(1ULL << 30), M + 3, mc.max_memory_gb));
  };
  auto points = [&](int64_t available) { return mc.train_size > 0 ? std::min(mc.train_size, available) : available; };
  if (config.data.source == "synthetic") check_memory(points(config.data.train_size));  // before generating
  DataSplits data = load_splits(config);
  const int64_t n = points(data.train.size());
  check_memory(n);
  data.train = data.train.rows(torch::arange(n));
  const std::string dir = fresh_run_dir(args.out, config.name + "-mkl");
  const RunPaths paths(dir);
  create_run_dir(paths);
  atomic_write_text(paths.config, to_json(config).dump(2) + "\n");
  auto log = make_logger(paths.log);
  log->info("mmfusion {}: MKL ({}) on {} training points, {} kernels, into {}", kVersion, mc.solver, n, M, dir);

  const auto start = std::chrono::steady_clock::now();
  const bool classification = config.task == "classification";
  const Dataset train = data.train.to(device), val = data.val.to(device), test = data.test.to(device);
  const auto y_mean = classification ? torch::Tensor() : train.target.to(torch::kFloat64).mean(0, true);
  const auto Y = krr_targets(config, train.target, y_mean);

  // One fitted kernel per modality; train x train, val x train and test x train matrices.
  std::vector<std::string> names;
  std::vector<torch::Tensor> k_train, k_val, k_test;
  json kernels = json::object();
  for (int64_t m = 0; m < M; ++m) {
    const std::string& name = config.data.modalities[m].name;
    const FittedKernel kernel(kernel_for(mc, name), train.features[m]);
    names.push_back(name);
    k_train.push_back(kernel(train.features[m], train.features[m]));
    k_val.push_back(kernel(val.features[m], train.features[m]));
    k_test.push_back(kernel(test.features[m], train.features[m]));
    const auto& kc = kernel.config();
    kernels[name] = {{"type", kc.type}, {"normalize", kc.normalize}};
    if (kc.type == "rbf") kernels[name]["gamma"] = kernel.gamma();
    if (kc.type == "polynomial") kernels[name]["degree"] = kc.degree, kernels[name]["coef0"] = kc.coef0;
  }

  const MKLResult learned = learn_weights(mc, k_train, Y);
  log->info("{}: {} iterations, objective {:.6g} -> {:.6g} ({})", mc.solver, learned.iterations,
            learned.objective.front(), learned.objective.back(), learned.stop_reason);

  // Every single kernel, the uniform combination and the learned one.
  std::vector<std::vector<double>> weightings;
  for (int64_t m = 0; m < M; ++m) {
    std::vector<double> e(M, 0.0);
    e[m] = 1.0;
    weightings.push_back(e);
  }
  weightings.push_back(std::vector<double>(M, 1.0 / double(M)));
  weightings.push_back(learned.theta);
  json metrics = json::object(), separability_scores = json::object();
  std::vector<ScatterPanel> panels;
  std::ostringstream kpca_csv;
  kpca_csv << "kernel,index,pc1,pc2,target\n";
  torch::Tensor learned_test_scores;
  for (size_t w = 0; w < weightings.size(); ++w) {
    const auto& theta = weightings[w];
    const std::string label = kernel_label(names, w);
    const auto K = combine(k_train, theta);
    const auto alpha = krr_solve(K, Y, mc.lambda).alpha;
    auto scores_for = [&](const torch::Tensor& Kx) {
      auto s = Kx.mm(alpha);
      return classification ? s : s + y_mean;
    };
    const auto test_scores = scores_for(combine(k_test, theta));
    metrics[label] = {{"train", task_metrics(config.task, scores_for(K), train.target)},
                      {"val", task_metrics(config.task, scores_for(combine(k_val, theta)), val.target)},
                      {"test", task_metrics(config.task, test_scores, test.target)}};
    if (label == "uniform") continue;
    if (label == "learned") learned_test_scores = test_scores;
    // Kernel PCA pictures: the training eigenvectors, test points projected.
    const KernelPCA pca = fit_kernel_pca(K, 2);
    const auto train_xy = pca.train_coordinates(), test_xy = pca.project(combine(k_test, theta));
    const double score = separability(config.task, train_xy, train.target, test_xy, test.target);
    separability_scores[label] = score;
    const auto xy = test_xy.cpu().contiguous();
    const auto t = test.target.cpu().to(torch::kFloat64).reshape({test.size(), -1}).select(1, 0).contiguous();
    ScatterPanel panel{label + (classification ? ": NCM accuracy " : ": linear R2 ") + format_number(std::round(score * 1000) / 1000),
                       {}, {}, {}};
    for (int64_t i = 0; i < xy.size(0); ++i) {
      const double x0 = xy[i][0].item<double>(), x1 = xy.size(1) > 1 ? xy[i][1].item<double>() : 0.0;
      const double v = t[i].item<double>();
      panel.x.push_back(x0), panel.y.push_back(x1), panel.value.push_back(v);
      kpca_csv << label << ',' << i << ',' << format_number(x0) << ',' << format_number(x1) << ','
               << format_number(v) << "\n";
    }
    panels.push_back(std::move(panel));
    log->info("{:>8}: test {} {:.4f}, kPCA separability {:.3f}", label, classification ? "accuracy" : "mse",
              metrics[label]["test"][classification ? "accuracy" : "mse"].get<double>(), score);
  }
  log->info("{:>8}: test {} {:.4f}", "uniform", classification ? "accuracy" : "mse",
            metrics["uniform"]["test"][classification ? "accuracy" : "mse"].get<double>());

  json weights = json::object(), gradient = json::object();
  for (int64_t m = 0; m < M; ++m) weights[names[m]] = learned.theta[m], gradient[names[m]] = learned.gradient[m];
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  json out = {{"mmfusion_version", kVersion},
              {"task", config.task},
              {"solver", mc.solver},
              {"p", mc.p},
              {"lambda", mc.lambda},
              {"train_size", n},
              {"weights", weights},
              {"objective", learned.objective},
              {"iterations", learned.iterations},
              {"converged", learned.converged},
              {"stop_reason", learned.stop_reason},
              {"final_gradient", gradient},
              {"kernels", kernels},
              {"metrics", metrics},
              {"separability", separability_scores},
              {"seconds", seconds}};
  atomic_write_text((fs::path(dir) / "mkl.json").string(), out.dump(2) + "\n");
  atomic_write_text((fs::path(dir) / "kpca.csv").string(), kpca_csv.str());
  atomic_write_text((fs::path(dir) / "kpca.svg").string(),
                    scatter_panels("Kernel PCA of the test points (training eigenvectors)", panels,
                                   classification, classification ? "class" : "target"));
  // Predictions of the learned combination on the test split.
  std::ostringstream csv;
  const auto scores = learned_test_scores.cpu().contiguous();
  const auto target = test.target.cpu();
  csv << "index,prediction,target\n";
  for (int64_t i = 0; i < test.size(); ++i) {
    if (classification)
      csv << i << ',' << scores[i].argmax().item<int64_t>() << ',' << target[i].item<int64_t>() << "\n";
    else
      csv << i << ',' << format_number(scores[i][0].item<double>()) << ','
          << format_number(target[i][0].item<double>()) << "\n";
  }
  atomic_write_text((fs::path(dir) / "predictions.csv").string(), csv.str());
  log->info("weights {} in {:.1f} s -> {}/mkl.json", weights.dump(), seconds, dir);
  out["run_dir"] = dir;
  return out;
}

json run_validate(const std::string& config, const std::vector<std::string>& overrides) {
  return to_json(load_config(config, overrides));
}

}  // namespace mmfusion
