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
#include "mmfusion/data/sequence.hpp"
#include "mmfusion/runtime/runtime.hpp"
#include "mmfusion/base/svg.hpp"
#include "mmfusion/base/version.hpp"

namespace mmfusion {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Targets as KRR sees them: regression, the centred target columns; classification,
// one-vs-rest +-1 columns.
torch::Tensor krr_targets(const ExperimentConfig& c, const torch::Tensor& target,
                          const torch::Tensor& mean) {
  if (c.task == Task::Classification) {
    auto y = -torch::ones({target.size(0), c.num_classes},
                          torch::TensorOptions(torch::kFloat64).device(target.device()));
    y.scatter_(1, target.unsqueeze(1), 1.0);
    return y;
  }
  return target.to(torch::kFloat64) - mean;
}

std::string kernel_label(const std::vector<std::string>& names, size_t which) {
  return which < names.size() ? names[which] : which == names.size() ? "uniform" : "learned";
}

// The kernel matrices of one experiment: train x train, val x train and test x train, one
// per modality and then one per interaction set.
struct KernelSet {
  std::vector<std::string> names;
  std::vector<std::vector<std::string>> members;  // each kernel's modalities
  std::vector<torch::Tensor> train, val, test;
  json description = json::object();  // mkl.json's "kernels"
};

// One fitted kernel per modality, ANOVA-centred on the training points when mkl.centre;
// then one product kernel per interaction set (one elementwise product per extra modality).
// A product of RBF kernels adds their gammas, exp(-g_a d_a) exp(-g_b d_b), so with
// mkl.split_gamma each RBF member of a product over |S| modalities is built again at
// gamma / |S|: the product is then as wide as one modality's kernel, where the base
// gammas would make it |S| times narrower (docs/mkl.md).
KernelSet build_kernels(const ExperimentConfig& config, const Dataset& train, const Dataset& val,
                        const Dataset& test) {
  const MKLConfig& mc = config.mkl;
  const size_t M = config.data.modalities.size();
  KernelSet ks;
  std::vector<FittedKernel> fitted;
  // A kernel's train, val and test matrices (against the training points), centred when asked.
  auto matrices = [&](const FittedKernel& kernel, size_t m) {
    std::vector<torch::Tensor> k{kernel(train.features[m], train.features[m]),
                                 kernel(val.features[m], train.features[m]),
                                 kernel(test.features[m], train.features[m])};
    if (mc.centre) k = anova_centre(k[0], {k[1], k[2]});
    return k;
  };
  for (size_t m = 0; m < M; ++m) {
    const std::string& name = config.data.modalities[m].name;
    fitted.emplace_back(kernel_for(mc, name), train.features[m]);
    const FittedKernel& kernel = fitted.back();
    ks.names.push_back(name);
    ks.members.push_back({name});
    const auto k = matrices(kernel, m);
    ks.train.push_back(k[0]), ks.val.push_back(k[1]), ks.test.push_back(k[2]);
    const auto& kc = kernel.config();
    json& d = ks.description[name];
    d = {{"type", to_string(kc.type)}, {"normalize", to_string(kc.normalize)}};
    if (kc.type == KernelType::RBF) d["gamma"] = kernel.gamma();
    if (kc.type == KernelType::Polynomial) d["degree"] = kc.degree, d["coef0"] = kc.coef0;
  }
  for (const auto& set : mc.interactions) {
    json description = {{"type", "product"}, {"of", set}};
    std::vector<torch::Tensor> product;
    for (const auto& name : set) {
      const size_t m = std::find(ks.names.begin(), ks.names.begin() + M, name) - ks.names.begin();
      std::vector<torch::Tensor> k{ks.train[m], ks.val[m], ks.test[m]};
      if (mc.split_gamma && fitted[m].config().type == KernelType::RBF) {
        KernelConfig wider = fitted[m].config();
        wider.gamma = fitted[m].gamma() / double(set.size());
        k = matrices(FittedKernel(wider, train.features[m]), m);
        description["gamma"][name] = wider.gamma;
      }
      if (product.empty()) {
        for (const auto& x : k) product.push_back(x.clone());
      } else {
        for (size_t i = 0; i < 3; ++i) product[i].mul_(k[i]);
      }
    }
    ks.train.push_back(product[0]), ks.val.push_back(product[1]), ks.test.push_back(product[2]);
    ks.names.push_back(subset_name(set));
    ks.members.push_back(set);
    ks.description[ks.names.back()] = description;
  }
  return ks;
}

// Refuses a problem whose kernel matrices would need more than mkl.max_memory_gb.
void check_mkl_memory(const MKLConfig& mc, int64_t n, int64_t kernel_count, int64_t other_rows) {
  const double need = mkl_memory_bytes(n, kernel_count, other_rows),
               limit = mc.max_memory_gb * double(1ULL << 30);
  if (need > limit)
    throw ConfigError(fmt::format(
        "mkl.train_size: {} training points need {:.1f} GiB of kernel matrices ({} kernels over them and {} "
        "validation and test points, n x n doubles each for training), above mkl.max_memory_gb = {}; use fewer "
        "training points (mkl.train_size) or fewer mkl.interactions",
        n, need / double(1ULL << 30), kernel_count, other_rows, mc.max_memory_gb));
}

// The splits MKL works on: the first mkl.train_size training points, features scaled by
// their statistics (data.standardize). The target is centred later and not scaled: at
// fixed kernel weights kernel ridge predictions are linear in it.
DataSplits mkl_splits(ExperimentConfig& config) {
  const MKLConfig& mc = config.mkl;
  const int64_t kernel_count =
      static_cast<int64_t>(config.data.modalities.size() + mc.interactions.size());
  auto points = [&](int64_t available) {
    return mc.train_size > 0 ? std::min(mc.train_size, available) : available;
  };
  if (config.data.source == DataSource::Synthetic)  // before generating
    check_mkl_memory(mc, points(config.data.train_size), kernel_count,
                     config.data.val_size + config.data.test_size);
  DataSplits data = load_splits(config);
  resolve_num_classes(config, data);
  const int64_t n = points(data.train.size());
  check_mkl_memory(mc, n, kernel_count, data.val.size() + data.test.size());
  data.train = data.train.rows(torch::arange(n));
  const Scaling scaling = Scaling::fit(config.data, data.train);
  for (Dataset* d : {&data.train, &data.val, &data.test}) *d = scaling.features(*d);
  // A sequence's kernels compare the means over its valid steps (docs/sequences.md).
  for (size_t m = 0; m < config.data.modalities.size(); ++m)
    if (config.data.modalities[m].sequence)
      for (Dataset* d : {&data.train, &data.val, &data.test})
        d->features[m] = sequence::masked_mean(d->features[m], config.data.modalities[m].dim);
  return data;
}

// What every weighting (each single kernel, uniform, learned) scores, with the kernel PCA
// pictures of all but the uniform one.
struct WeightingResults {
  json metrics = json::object(), separability = json::object();
  std::vector<ScatterPanel> panels;
  std::string kpca_csv;
  torch::Tensor learned_test_scores;
  std::vector<double> shares;  // of the learned combination's components on the test points
};

// The scores of KRR targets y (centred by `offset`, when defined) at weights theta.
WeightingResults evaluate_weightings(const ExperimentConfig& config, const KernelSet& ks,
                                     const MKLResult& learned, const torch::Tensor& Y,
                                     const torch::Tensor& offset, const Dataset& train,
                                     const Dataset& val, const Dataset& test, spdlog::logger& log) {
  const bool classification = config.task == Task::Classification;
  const std::string headline = headline_metrics(config.task).front();  // mse or accuracy
  const size_t K_count = ks.names.size();
  std::vector<std::vector<double>> weightings;
  for (size_t m = 0; m < K_count; ++m) {
    std::vector<double> e(K_count, 0.0);
    e[m] = 1.0;
    weightings.push_back(e);
  }
  weightings.push_back(std::vector<double>(K_count, 1.0 / double(K_count)));
  weightings.push_back(learned.theta);
  WeightingResults r;
  std::ostringstream kpca_csv;
  kpca_csv << "kernel,index,pc1,pc2,target\n";
  for (size_t w = 0; w < weightings.size(); ++w) {
    const auto& theta = weightings[w];
    const std::string label = kernel_label(ks.names, w);
    const auto K = combine(ks.train, theta);
    // The learner's own solution at its final weights, where this is that combination.
    const auto alpha =
        theta == learned.theta ? learned.alpha : krr_solve(K, Y, config.mkl.lambda).alpha;
    auto scores_for = [&](const torch::Tensor& Kx) {
      auto s = Kx.mm(alpha);
      return offset.defined() ? s + offset : s;
    };
    const auto test_scores = scores_for(combine(ks.test, theta));
    r.metrics[label] = {
        {"train", task_metrics(config.task, scores_for(K), train.target, config.metrics.set)},
        {"val", task_metrics(config.task, scores_for(combine(ks.val, theta)), val.target,
                             config.metrics.set)},
        {"test", task_metrics(config.task, test_scores, test.target, config.metrics.set)}};
    if (label == "uniform") continue;
    if (label == "learned") {
      r.learned_test_scores = test_scores;
      r.shares = component_shares(ks.test, theta, alpha);
    }
    // Kernel PCA pictures: the training eigenvectors, test points projected.
    const KernelPCA pca = fit_kernel_pca(K, 2);
    const auto train_xy = pca.train_coordinates(), test_xy = pca.project(combine(ks.test, theta));
    const double score = separability(config.task, train_xy, train.target, test_xy, test.target);
    r.separability[label] = score;
    const auto xy = test_xy.cpu().contiguous();
    const auto t =
        test.target.cpu().to(torch::kFloat64).reshape({test.size(), -1}).select(1, 0).contiguous();
    ScatterPanel panel{label + (classification ? ": NCM accuracy " : ": linear R2 ") +
                           format_number(std::round(score * 1000) / 1000),
                       {},
                       {},
                       {}};
    for (int64_t i = 0; i < xy.size(0); ++i) {
      const double x0 = xy[i][0].item<double>(),
                   x1 = xy.size(1) > 1 ? xy[i][1].item<double>() : 0.0;
      const double v = t[i].item<double>();
      panel.x.push_back(x0), panel.y.push_back(x1), panel.value.push_back(v);
      kpca_csv << label << ',' << i << ',' << format_number(x0) << ',' << format_number(x1) << ','
               << format_number(v) << "\n";
    }
    r.panels.push_back(std::move(panel));
    log.info("{:>8}: test {} {:.4f}, kPCA separability {:.3f}", label, headline,
             r.metrics[label]["test"][headline].get<double>(), score);
  }
  log.info("{:>8}: test {} {:.4f}", "uniform", headline,
           r.metrics["uniform"]["test"][headline].get<double>());
  r.kpca_csv = kpca_csv.str();
  return r;
}

// Each kernel's component of the learned prediction, with the generator's truth where it
// has one (docs/mkl.md: the shares are Sobol shares only with centred kernels); and the
// note on the truth (null when it is known and comparable).
std::pair<json, json> component_table(const ExperimentConfig& config, const KernelSet& ks,
                                      const MKLResult& learned, const std::vector<double>& shares,
                                      spdlog::logger& log) {
  const bool synthetic = config.data.source == DataSource::Synthetic;
  const SyntheticTruth truth =
      synthetic ? synthetic_truth(config.data, config.seed) : SyntheticTruth{};
  std::string note;
  if (!synthetic)
    note = "file data: the truth is not known";
  else if (!truth.exact)
    note = truth.why_not;
  else if (config.task == Task::Classification)
    note =
        "classification: the truth splits the continuous target the classes are cut from, the shares "
        "split the class scores";
  json components = json::array();
  log.info("{:<24} {:>8} {:>8} {:>8}", "component", "weight", "share", "truth");
  for (size_t k = 0; k < ks.names.size(); ++k) {
    json t = nullptr;
    if (truth.exact) {
      t = 0.0;
      for (const auto& s : truth.subsets)
        if (s.modalities == ks.members[k]) t = s.share;
    }
    components.push_back({{"name", ks.names[k]},
                          {"modalities", ks.members[k]},
                          {"weight", learned.theta[k]},
                          {"share", shares[k]},
                          {"truth", t}});
    log.info("{:<24} {:>8.4f} {:>8.4f} {:>8}", ks.names[k], learned.theta[k], shares[k],
             t.is_number() ? fmt::format("{:.4f}", t.get<double>()) : "-");
  }
  if (!note.empty()) log.info("on the truth: {}", note);
  return {components, note.empty() ? json(nullptr) : json(note)};
}

// predictions.csv: the learned combination's predictions on the test split.
std::string predictions_csv(bool classification, const torch::Tensor& test_scores,
                            const torch::Tensor& test_target) {
  std::ostringstream csv;
  const auto scores = test_scores.cpu().contiguous();
  const auto target = test_target.cpu();
  csv << "index,prediction,target\n";
  for (int64_t i = 0; i < scores.size(0); ++i) {
    if (classification)
      csv << i << ',' << scores[i].argmax().item<int64_t>() << ',' << target[i].item<int64_t>()
          << "\n";
    else
      csv << i << ',' << format_number(scores[i][0].item<double>()) << ','
          << format_number(target[i][0].item<double>()) << "\n";
  }
  return csv.str();
}

}  // namespace

json run_mkl(const MKLArgs& args) {
  ExperimentConfig config = load_config(args.config, args.overrides);
  const MKLConfig& mc = config.mkl;
  const torch::Device device = resolve_device(config.device);
  apply_threads(config.threads);
  const DataSplits data = mkl_splits(config);
  const int64_t n = data.train.size();
  const std::string dir = fresh_run_dir(args.out, config.name + "-mkl");
  const RunPaths paths(dir);
  create_run_dir(paths, /*with_checkpoints=*/false);  // MKL writes no checkpoint
  atomic_write_text(paths.config, to_json(config).dump(2) + "\n");
  auto log = make_logger(paths.log);
  log->info(
      "mmfusion {}: MKL ({}) on {} training points, {} kernels ({} of them products){}, into {}",
      kVersion, to_string(mc.solver), n, config.data.modalities.size() + mc.interactions.size(),
      mc.interactions.size(), mc.centre ? ", ANOVA-centred" : "", dir);

  const auto start = std::chrono::steady_clock::now();
  const bool classification = config.task == Task::Classification;
  const Dataset train = data.train.to(device), val = data.val.to(device),
                test = data.test.to(device);
  const auto y_mean =
      classification ? torch::Tensor() : train.target.to(torch::kFloat64).mean(0, true);
  auto Y = krr_targets(config, train.target, y_mean);
  // Centred kernels have no constant function: every score has mean zero over the training
  // points. Classification's +-1 targets are centred too then, their means added back.
  torch::Tensor offset = y_mean;
  if (classification && mc.centre) {
    offset = Y.mean(0, true);
    Y = Y - offset;
  }
  const KernelSet ks = build_kernels(config, train, val, test);
  log->info("{} kernels built in {:.2f} s", ks.names.size(),
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());

  const MKLResult learned = learn_weights(mc, ks.train, Y);
  log->info("{}: {} iterations, objective {:.6g} -> {:.6g} ({})", to_string(mc.solver),
            learned.iterations, learned.objective.front(), learned.objective.back(),
            learned.stop_reason);
  const WeightingResults scored =
      evaluate_weightings(config, ks, learned, Y, offset, train, val, test, *log);
  json weights = json::object(), gradient = json::object();
  for (size_t m = 0; m < ks.names.size(); ++m)
    weights[ks.names[m]] = learned.theta[m], gradient[ks.names[m]] = learned.gradient[m];
  const auto [components, truth_note] = component_table(config, ks, learned, scored.shares, *log);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  json out = {{"mmfusion_version", kVersion},
              {"task", to_string(config.task)},
              {"solver", to_string(mc.solver)},
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
              {"kernels", ks.description},
              {"centred", mc.centre},
              {"components", components},
              {"truth_note", truth_note},
              {"metrics", scored.metrics},
              {"separability", scored.separability},
              {"seconds", seconds}};
  atomic_write_text((fs::path(dir) / "mkl.json").string(), out.dump(2) + "\n");
  atomic_write_text((fs::path(dir) / "kpca.csv").string(), scored.kpca_csv);
  atomic_write_text(
      (fs::path(dir) / "kpca.svg").string(),
      scatter_panels("Kernel PCA of the test points (training eigenvectors)", scored.panels,
                     classification, classification ? "class" : "target"));
  atomic_write_text((fs::path(dir) / "predictions.csv").string(),
                    predictions_csv(classification, scored.learned_test_scores, test.target));
  log->info("weights {} in {:.1f} s -> {}/mkl.json", weights.dump(), seconds, dir);
  out["run_dir"] = dir;
  return out;
}

}  // namespace mmfusion
