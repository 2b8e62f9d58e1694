#include "mmfusion/mkl/mkl_experiment.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <sstream>

#include <spdlog/spdlog.h>

#include "mmfusion/config/config.hpp"
#include "mmfusion/config/config_io.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/training/metrics.hpp"
#include "mmfusion/mkl/mkl.hpp"
#include "mmfusion/io/run_folder.hpp"
#include "mmfusion/data/scaling.hpp"
#include "mmfusion/runtime/runtime.hpp"
#include "mmfusion/base/svg.hpp"
#include "mmfusion/base/version.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Targets as KRR sees them: regression, the centred target columns; classification,
// one-vs-rest +-1 columns.
torch::Tensor krr_targets(const ExperimentConfig& c, const torch::Tensor& target, const torch::Tensor& mean) {
  if (c.task == Task::Classification) {
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
  ExperimentConfig config = load_config(args.config, args.overrides);
  const MKLConfig& mc = config.mkl;
  const torch::Device device = resolve_device(config.device);
  apply_threads(config.threads);
  const int64_t M = static_cast<int64_t>(config.data.modalities.size());
  const int64_t kernel_count = M + static_cast<int64_t>(mc.interactions.size());
  auto check_memory = [&](int64_t n, int64_t other_rows) {
    const double need = mkl_memory_bytes(n, kernel_count, other_rows), limit = mc.max_memory_gb * double(1ULL << 30);
    if (need > limit)
      throw ConfigError(fmt::format(
          "mkl.train_size: {} training points need {:.1f} GiB of kernel matrices ({} kernels over them and {} "
          "validation and test points, n x n doubles each for training), above mkl.max_memory_gb = {}; use fewer "
          "training points (mkl.train_size) or fewer mkl.interactions",
          n, need / double(1ULL << 30), kernel_count, other_rows, mc.max_memory_gb));
  };
  auto points = [&](int64_t available) { return mc.train_size > 0 ? std::min(mc.train_size, available) : available; };
  if (config.data.source == DataSource::Synthetic)  // before generating
    check_memory(points(config.data.train_size), config.data.val_size + config.data.test_size);
  DataSplits data = load_splits(config);
  resolve_num_classes(config, data);
  const int64_t n = points(data.train.size());
  check_memory(n, data.val.size() + data.test.size());
  data.train = data.train.rows(torch::arange(n));
  // data.standardize: features scaled by the statistics of the points used. The target is
  // centred as before and not scaled: at fixed kernel weights kernel ridge predictions
  // are linear in it (with several target columns, their units weigh in the learned weights).
  const Scaling scaling = Scaling::fit(config.data, data.train);
  for (Dataset* d : {&data.train, &data.val, &data.test}) *d = scaling.features(*d);
  const std::string dir = fresh_run_dir(args.out, config.name + "-mkl");
  const RunPaths paths(dir);
  create_run_dir(paths, /*with_checkpoints=*/false);  // MKL writes no checkpoint
  atomic_write_text(paths.config, to_json(config).dump(2) + "\n");
  auto log = make_logger(paths.log);
  log->info("mmfusion {}: MKL ({}) on {} training points, {} kernels ({} of them products){}, into {}", kVersion,
            mc.solver, n, kernel_count, mc.interactions.size(), mc.centre ? ", ANOVA-centred" : "", dir);

  const auto start = std::chrono::steady_clock::now();
  const bool classification = config.task == Task::Classification;
  const Dataset train = data.train.to(device), val = data.val.to(device), test = data.test.to(device);
  const auto y_mean = classification ? torch::Tensor() : train.target.to(torch::kFloat64).mean(0, true);
  auto Y = krr_targets(config, train.target, y_mean);
  // Centred kernels have no constant function: every score has mean zero over the training
  // points. Classification's +-1 targets are centred too then, their means added back.
  torch::Tensor offset = y_mean;
  if (classification && mc.centre) {
    offset = Y.mean(0, true);
    Y = Y - offset;
  }

  // One fitted kernel per modality; train x train, val x train and test x train matrices,
  // ANOVA-centred on the training points when mkl.centre; then one product kernel per
  // interaction set (one elementwise product per extra modality).
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> members;  // each kernel's modalities
  std::vector<torch::Tensor> k_train, k_val, k_test;
  json kernels = json::object();
  for (int64_t m = 0; m < M; ++m) {
    const std::string& name = config.data.modalities[m].name;
    const FittedKernel kernel(kernel_for(mc, name), train.features[m]);
    names.push_back(name);
    members.push_back({name});
    std::vector<torch::Tensor> k{kernel(train.features[m], train.features[m]), kernel(val.features[m], train.features[m]),
                                 kernel(test.features[m], train.features[m])};
    if (mc.centre) k = anova_centre(k[0], {k[1], k[2]});
    k_train.push_back(k[0]), k_val.push_back(k[1]), k_test.push_back(k[2]);
    const auto& kc = kernel.config();
    kernels[name] = {{"type", kc.type}, {"normalize", kc.normalize}};
    if (kc.type == "rbf") kernels[name]["gamma"] = kernel.gamma();
    if (kc.type == "polynomial") kernels[name]["degree"] = kc.degree, kernels[name]["coef0"] = kc.coef0;
  }
  for (const auto& set : mc.interactions) {
    std::vector<size_t> of;
    for (const auto& name : set) of.push_back(std::find(names.begin(), names.begin() + M, name) - names.begin());
    k_train.push_back(product_kernel(k_train, of)), k_val.push_back(product_kernel(k_val, of));
    k_test.push_back(product_kernel(k_test, of));
    names.push_back(subset_name(set));
    members.push_back(set);
    kernels[names.back()] = {{"type", "product"}, {"of", set}};
  }
  const int64_t K_count = static_cast<int64_t>(names.size());
  log->info("{} kernels built in {:.2f} s", K_count,
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());

  const MKLResult learned = learn_weights(mc, k_train, Y);
  log->info("{}: {} iterations, objective {:.6g} -> {:.6g} ({})", mc.solver, learned.iterations,
            learned.objective.front(), learned.objective.back(), learned.stop_reason);

  // Every single kernel, the uniform combination and the learned one.
  std::vector<std::vector<double>> weightings;
  for (int64_t m = 0; m < K_count; ++m) {
    std::vector<double> e(K_count, 0.0);
    e[m] = 1.0;
    weightings.push_back(e);
  }
  weightings.push_back(std::vector<double>(K_count, 1.0 / double(K_count)));
  weightings.push_back(learned.theta);
  json metrics = json::object(), separability_scores = json::object();
  std::vector<ScatterPanel> panels;
  std::ostringstream kpca_csv;
  kpca_csv << "kernel,index,pc1,pc2,target\n";
  torch::Tensor learned_test_scores;
  std::vector<double> shares;  // of the learned combination's components on the test points
  for (size_t w = 0; w < weightings.size(); ++w) {
    const auto& theta = weightings[w];
    const std::string label = kernel_label(names, w);
    const auto K = combine(k_train, theta);
    // The learner's own solution at its final weights, where this is that combination.
    const auto alpha = theta == learned.theta ? learned.alpha : krr_solve(K, Y, mc.lambda).alpha;
    auto scores_for = [&](const torch::Tensor& Kx) {
      auto s = Kx.mm(alpha);
      return offset.defined() ? s + offset : s;
    };
    const auto test_scores = scores_for(combine(k_test, theta));
    metrics[label] = {{"train", task_metrics(config.task, scores_for(K), train.target)},
                      {"val", task_metrics(config.task, scores_for(combine(k_val, theta)), val.target)},
                      {"test", task_metrics(config.task, test_scores, test.target)}};
    if (label == "uniform") continue;
    if (label == "learned") {
      learned_test_scores = test_scores;
      shares = component_shares(k_test, theta, alpha);
    }
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

  std::string truth_note;
  json weights = json::object(), gradient = json::object();
  for (int64_t m = 0; m < K_count; ++m) weights[names[m]] = learned.theta[m], gradient[names[m]] = learned.gradient[m];
  // Each kernel's component of the learned prediction, with the generator's truth where
  // it has one (docs/mkl.md: the shares are Sobol shares only with centred kernels).
  const SyntheticTruth truth =
      config.data.source == DataSource::Synthetic ? synthetic_truth(config.data, config.seed) : SyntheticTruth{};
  if (config.data.source != DataSource::Synthetic) truth_note = "file data: the truth is not known";
  else if (!truth.exact) truth_note = truth.why_not;
  else if (classification)
    truth_note = "classification: the truth splits the continuous target the classes are cut from, the shares "
                 "split the class scores";
  json components = json::array();
  log->info("{:<24} {:>8} {:>8} {:>8}", "component", "weight", "share", "truth");
  for (int64_t k = 0; k < K_count; ++k) {
    json t = nullptr;
    if (truth.exact) {
      t = 0.0;
      for (const auto& s : truth.subsets)
        if (s.modalities == members[k]) t = s.share;
    }
    components.push_back({{"name", names[k]}, {"modalities", members[k]}, {"weight", learned.theta[k]},
                          {"share", shares[k]}, {"truth", t}});
    log->info("{:<24} {:>8.4f} {:>8.4f} {:>8}", names[k], learned.theta[k], shares[k],
              t.is_number() ? fmt::format("{:.4f}", t.get<double>()) : "-");
  }
  if (!truth_note.empty()) log->info("on the truth: {}", truth_note);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  json out = {{"mmfusion_version", kVersion},
              {"task", to_string(config.task)},
              {"solver", mc.solver},
              {"p", mc.p},
              {"lambda", mc.lambda},
              {"train_size", n},
              {"weights", weights},
              {"objective", learned.objective},
              {"iterations", learned.iterations},
              {"converged", learned.converged},
              {"kkt_gap", std::isfinite(learned.kkt_gap) ? json(learned.kkt_gap) : json(nullptr)},
              {"stop_reason", learned.stop_reason},
              {"final_gradient", gradient},
              {"kernels", kernels},
              {"centred", mc.centre},
              {"components", components},
              {"truth_note", truth_note.empty() ? json(nullptr) : json(truth_note)},
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

}  // namespace mmfusion
