// Multiple kernel learning (mkl/mkl.hpp, mkl/mkl_experiment.hpp): kernels, KRR and the
// solvers against their definitions and optimality conditions, kernel PCA, ANOVA kernels.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/mkl/mkl_experiment.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/mkl/mkl.hpp"
#include "mmfusion/config/config_io.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

const auto f64 = torch::kFloat64;

// Three kernels on n points: the target depends on the first modality only; the other
// two are noise.
struct Problem {
  std::vector<torch::Tensor> kernels;
  torch::Tensor y;
};
Problem one_informative_modality(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  const auto a = torch::randn({n, 3}, f64), b = torch::randn({n, 3}, f64),
             c = torch::randn({n, 3}, f64);
  Problem p;
  KernelConfig rbf;
  for (const auto& x : {a, b, c}) p.kernels.push_back(FittedKernel(rbf, x)(x, x));
  p.y = (torch::sin(a.select(1, 0)) + 0.5 * a.select(1, 1)).unsqueeze(1);
  p.y -= p.y.mean();
  return p;
}

}  // namespace

TEST(Kernels, MatchTheirDefinitions) {
  torch::manual_seed(0);
  const auto x = torch::randn({6, 4}, f64), z = torch::randn({5, 4}, f64);
  KernelConfig rbf;
  rbf.gamma = 0.3;
  const auto k = FittedKernel(rbf, x)(x, z);
  EXPECT_NEAR(k[2][3].item<double>(), std::exp(-0.3 * (x[2] - z[3]).pow(2).sum().item<double>()),
              1e-12);
  // The median heuristic: gamma = 1 / median of the pairwise squared distances.
  KernelConfig median;
  std::vector<double> d;
  for (int i = 0; i < 6; ++i)
    for (int j = i + 1; j < 6; ++j) d.push_back((x[i] - x[j]).pow(2).sum().item<double>());
  std::sort(d.begin(), d.end());
  EXPECT_NEAR(FittedKernel(median, x).gamma(), 1.0 / d[(d.size() - 1) / 2],
              1e-12);  // torch: lower median
  // Polynomial, normalised to a unit diagonal.
  KernelConfig poly;
  poly.type = KernelType::Polynomial;
  poly.degree = 3;
  poly.coef0 = 1;
  const auto kp = FittedKernel(poly, x)(x, z);
  auto raw = [&](const torch::Tensor& u, const torch::Tensor& v) {
    return std::pow(u.dot(v).item<double>() / 4 + 1, 3);
  };
  EXPECT_NEAR(kp[1][2].item<double>(),
              raw(x[1], z[2]) / std::sqrt(raw(x[1], x[1]) * raw(z[2], z[2])), 1e-12);
  // unit_trace: the training kernel's mean diagonal is 1.
  KernelConfig linear;
  linear.type = KernelType::Linear;
  linear.normalize = KernelNormalize::UnitTrace;
  EXPECT_NEAR(FittedKernel(linear, x)(x, x).diagonal().mean().item<double>(), 1.0, 1e-12);
}

TEST(KernelRidge, DualSolutionEqualsThePrimalRidgeSolution) {
  // Linear kernel: K_t (K + lambda I)^-1 y = X_t (X'X + lambda I)^-1 X' y.
  torch::manual_seed(1);
  const auto X = torch::randn({30, 5}, f64), Xt = torch::randn({7, 5}, f64),
             y = torch::randn({30, 2}, f64);
  const double lambda = 0.7;
  const auto alpha = krr_solve(X.mm(X.t()), y, lambda).alpha;
  const auto dual = Xt.mm(X.t()).mm(alpha);
  const auto w = torch::linalg_solve(X.t().mm(X) + lambda * torch::eye(5, f64), X.t().mm(y));
  EXPECT_TRUE(torch::allclose(dual, Xt.mm(w), 1e-9, 1e-9));
  // The objective is lambda y' alpha, and its gradient is -lambda a' K a (finite differences).
  Problem p = one_informative_modality(40, 2);
  const std::vector<double> theta{0.5, 0.3, 0.2};
  const auto s = krr_solve(combine(p.kernels, theta), p.y, 0.1);
  const auto g = krr_gradient(p.kernels, s.alpha, 0.1);
  for (size_t m = 0; m < 3; ++m) {
    auto up = theta;
    up[m] += 1e-6;
    const double numeric =
        (krr_solve(combine(p.kernels, up), p.y, 0.1).objective - s.objective) / 1e-6;
    EXPECT_NEAR(g[m], numeric, 1e-4 * std::abs(numeric) + 1e-8) << m;
  }
}

TEST(LpMKL, WeightsHaveUnitPNormAndTheObjectiveNeverIncreases) {
  Problem p = one_informative_modality(80, 3);
  for (double norm : {1.0, 2.0, 4.0}) {
    SCOPED_TRACE("p = " + std::to_string(norm));
    const MKLResult r = lp_mkl(p.kernels, p.y, 0.1, norm, 200, 1e-12);
    double pnorm = 0;
    for (double t : r.theta) {
      EXPECT_GE(t, 0.0);
      pnorm += std::pow(t, norm);
    }
    EXPECT_NEAR(std::pow(pnorm, 1.0 / norm), 1.0, 1e-9);
    for (size_t i = 1; i < r.objective.size(); ++i)
      EXPECT_LE(r.objective[i], r.objective[i - 1] * (1 + 1e-12)) << "iteration " << i;
  }
}

TEST(LpMKL, StopsAtTheOptimumWhereTheGradientFollowsTheWeightsPowerPMinusOne) {
  // The optimality condition of min J(theta) subject to ||theta||_p = 1, theta > 0 (its
  // Lagrangian): dJ/dtheta_m = -mu p theta_m^(p-1), the same mu for every m. It holds
  // whatever steps (plain or extrapolated) reached the weights.
  Problem p = one_informative_modality(80, 3);
  p.kernels[1] = 0.5 * p.kernels[0] + 0.5 * p.kernels[1];
  for (double norm : {1.5, 2.0, 4.0}) {
    SCOPED_TRACE("p = " + std::to_string(norm));
    const MKLResult r = lp_mkl(p.kernels, p.y, 0.1, norm, 500, 1e-13);
    EXPECT_TRUE(r.converged) << r.stop_reason;
    const double mu0 = r.gradient[0] / std::pow(r.theta[0], norm - 1);
    for (size_t m = 1; m < 3; ++m)
      EXPECT_NEAR(r.gradient[m] / std::pow(r.theta[m], norm - 1), mu0, 1e-5 * std::abs(mu0)) << m;
  }
}

TEST(SimpleMKL, ReachesTheSameOptimumAsLpMKLWithPOneAndSatisfiesKKT) {
  Problem p = one_informative_modality(60, 4);
  // A less lopsided problem, so that more than one weight stays positive.
  p.kernels[1] = 0.5 * p.kernels[0] + 0.5 * p.kernels[1];
  const MKLResult simple = simple_mkl(p.kernels, p.y, 0.05, 500, 1e-8);
  const MKLResult lp = lp_mkl(p.kernels, p.y, 0.05, 1.0, 20000, 1e-14);
  EXPECT_TRUE(simple.converged) << simple.stop_reason;
  EXPECT_NEAR(simple.objective.back(), lp.objective.back(), 1e-6 * lp.objective.back());
  for (size_t m = 0; m < 3; ++m) EXPECT_NEAR(simple.theta[m], lp.theta[m], 2e-3) << m;
  double sum = 0;
  for (double t : simple.theta) sum += t;
  EXPECT_NEAR(sum, 1.0, 1e-12);
  for (size_t i = 1; i < simple.objective.size(); ++i)
    EXPECT_LE(simple.objective[i], simple.objective[i - 1]);
  // KKT: equal gradients on the support, no smaller gradient off it.
  double g_support = NAN;
  for (size_t m = 0; m < 3; ++m)
    if (simple.theta[m] > 0) {
      if (std::isnan(g_support)) g_support = simple.gradient[m];
      EXPECT_NEAR(simple.gradient[m], g_support, 1e-5 * std::abs(g_support));
    }
  for (size_t m = 0; m < 3; ++m)
    if (simple.theta[m] == 0) EXPECT_GE(simple.gradient[m], g_support * (1 + 1e-5));
}

TEST(SimpleMKL, TheHessianIsTheGradientsDerivative) {
  // Central differences of the closed-form gradient along each weight: the Newton steps'
  // second derivatives, checked independently of their formula.
  Problem p = one_informative_modality(60, 4);
  const std::vector<double> theta = {0.5, 0.3, 0.2};
  const double lambda = 0.05, h = 1e-5;
  const KRRSolution s = krr_solve(combine(p.kernels, theta), p.y, lambda);
  const auto hessian = krr_hessian(p.kernels, s, lambda);
  for (size_t n = 0; n < 3; ++n) {
    auto up = theta, down = theta;
    up[n] += h, down[n] -= h;
    const auto g_up =
        krr_gradient(p.kernels, krr_solve(combine(p.kernels, up), p.y, lambda).alpha, lambda);
    const auto g_down =
        krr_gradient(p.kernels, krr_solve(combine(p.kernels, down), p.y, lambda).alpha, lambda);
    for (size_t m = 0; m < 3; ++m) {
      const double numeric = (g_up[m] - g_down[m]) / (2 * h);
      EXPECT_NEAR(hessian[m][n].item<double>(), numeric, 1e-5 * std::abs(numeric) + 1e-8)
          << m << "," << n;
    }
  }
  EXPECT_GE(torch::linalg_eigvalsh(hessian).min().item<double>(), -1e-9);  // convex
}

TEST(SimpleMKL, ConvergedMeansTheKKTGapIsWithinTolWhateverStoppedIt) {
  Problem p = one_informative_modality(60, 4);
  p.kernels[1] = 0.5 * p.kernels[0] + 0.5 * p.kernels[1];
  // The gap by hand: gradients (-3, -2, -1) with weights (0.5, 0.5, 0): spread 1 on the
  // support, the zero weight's gradient above it; largest |gradient| 3.
  EXPECT_DOUBLE_EQ(simple_mkl_kkt_gap({0.5, 0.5, 0.0}, {-3, -2, -1}), 1.0 / 3);
  EXPECT_DOUBLE_EQ(simple_mkl_kkt_gap({0.5, 0.5, 0.0}, {-2, -2, -4}),
                   2.0 / 4);  // a zero weight below
  EXPECT_DOUBLE_EQ(simple_mkl_kkt_gap({1, 0}, {-2, -1}), 0.0);
  // One iteration cannot reach the optimum: not converged, whatever the objective did.
  const MKLResult short_run = simple_mkl(p.kernels, p.y, 0.05, 1, 1e-6);
  EXPECT_EQ(short_run.stop_reason, "max_iter");
  EXPECT_FALSE(short_run.converged);
  EXPECT_GT(short_run.kkt_gap, 1e-6);
  // A tol below what double precision can reach stops on a stall or the line search:
  // converged must then be false, and it must agree with the reported gap.
  for (double tol : {1e-3, 1e-8, 1e-15}) {
    SCOPED_TRACE(tol);
    const MKLResult r = simple_mkl(p.kernels, p.y, 0.05, 500, tol);
    EXPECT_EQ(r.converged, r.kkt_gap <= tol) << r.stop_reason;
    EXPECT_DOUBLE_EQ(r.kkt_gap, simple_mkl_kkt_gap(r.theta, r.gradient));
    if (r.stop_reason == "KKT conditions hold") EXPECT_TRUE(r.converged);
  }
  EXPECT_TRUE(std::isnan(lp_mkl(p.kernels, p.y, 0.05, 1.0, 50, 1e-8).kkt_gap));
}

TEST(SimpleMKL, WeightConcentratesOnTheOnlyInformativeModality) {
  Problem p = one_informative_modality(150, 5);
  const MKLResult r = simple_mkl(p.kernels, p.y, 0.1, 500, 1e-8);
  EXPECT_GT(r.theta[0], 0.9);
  EXPECT_LT(r.theta[1], 0.05);
  EXPECT_LT(r.theta[2], 0.05);
  const MKLResult lp = lp_mkl(p.kernels, p.y, 0.1, 1.0, 2000, 1e-12);
  EXPECT_GT(lp.theta[0], 0.9);
}

TEST(KernelPCA, LinearKernelGivesThePrincipalComponentScores) {
  torch::manual_seed(6);
  const auto X = torch::randn({50, 4}, f64) * torch::tensor({3.0, 2.0, 1.0, 0.5}, f64);
  const auto pca = fit_kernel_pca(X.mm(X.t()), 2);
  const auto Xc = X - X.mean(0, true);
  const auto [U, S, Vh] = torch::linalg_svd(Xc, false);
  const auto scores = Xc.mm(Vh.slice(0, 0, 2).t());  // ordinary PCA, independent of kPCA
  const auto coords = pca.train_coordinates();
  for (int k = 0; k < 2; ++k) {
    const double sign =
        (coords.select(1, k) * scores.select(1, k)).sum().item<double>() > 0 ? 1 : -1;
    EXPECT_TRUE(torch::allclose(coords.select(1, k), sign * scores.select(1, k), 1e-8, 1e-8)) << k;
  }
  // Projecting the training points as if they were new gives the same coordinates.
  EXPECT_TRUE(torch::allclose(pca.project(X.mm(X.t())), coords, 1e-8, 1e-8));
}

TEST(KernelPCA, TestKernelCentringComputedByHand) {
  // Training kernel K (2x2) and one test row k_t = [1, 3]:
  // 1'K column means = [2, 3]; row mean of k_t = 2; mean of K = 2.5.
  // centred = k_t - [2, 3] - 2 + 2.5 = [-0.5, 0.5].
  const auto K = torch::tensor({{1.0, 2.0}, {3.0, 4.0}}, f64);
  const auto centred = centre_test_kernel(torch::tensor({{1.0, 3.0}}, f64), K);
  EXPECT_TRUE(torch::allclose(centred, torch::tensor({{-0.5, 0.5}}, f64)));
}

TEST(KernelPCA, SubspaceIterationMatchesTheFullEigendecomposition) {
  // Above 1500 points the leading pairs come from subspace iteration.
  torch::manual_seed(7);
  const auto X = torch::randn({1600, 3}, f64) * torch::tensor({4.0, 2.0, 1.0}, f64);
  KernelConfig rbf;
  const auto K = FittedKernel(rbf, X)(X, X);
  const auto fast = fit_kernel_pca(K, 2);
  const auto H = torch::eye(1600, f64) - 1.0 / 1600;
  const auto [values, vectors] = torch::linalg_eigh(H.mm(K).mm(H));
  EXPECT_NEAR(fast.eigenvalues[0].item<double>(), values[-1].item<double>(),
              1e-6 * values[-1].item<double>());
  EXPECT_NEAR(fast.eigenvalues[1].item<double>(), values[-2].item<double>(),
              1e-6 * values[-2].item<double>());
  EXPECT_NEAR(std::abs(fast.eigenvectors.select(1, 0).dot(vectors.select(1, -1)).item<double>()),
              1.0, 1e-6);
}

TEST(KernelPCA, SeparabilityScoresWhatIsSeparable) {
  const auto xy = torch::tensor({{0.0, 0.0}, {0.1, 0.0}, {5.0, 5.0}, {5.1, 5.0}}, f64);
  const auto labels = torch::tensor({0, 0, 1, 1}, torch::kInt64);
  EXPECT_DOUBLE_EQ(separability(Task::Classification, xy, labels, xy, labels), 1.0);
  const auto target = torch::tensor({{1.0}, {1.2}, {11.0}, {11.2}}, f64);  // = 2 x + 1
  EXPECT_NEAR(separability(Task::Regression, xy, target, xy, target), 1.0, 1e-9);
}

TEST(MKLCommand, WritesEveryOutputAndRefusesWhatWouldNotFit) {
  TempDir dir;
  MKLArgs args;
  args.config = source_path("configs/tiny.json");
  args.overrides = {"task=classification", "num_classes=2", "train.loss=cross_entropy"};
  args.out = dir.file("mkl");
  const json out = run_mkl(args);
  for (const char* f : {"mkl.json", "kpca.csv", "kpca.svg", "predictions.csv", "config.json"})
    EXPECT_TRUE(fs::exists(dir.file(std::string("mkl/") + f))) << f;
  EXPECT_FALSE(fs::exists(dir.file("mkl/checkpoints")))
      << "MKL writes no checkpoint; no empty folder either";
  EXPECT_EQ(out["converged"].get<bool>(), out["kkt_gap"].get<double>() <= 1e-6);  // the default tol
  double sum = 0;
  for (const auto& item : out["weights"].items()) sum += item.value().get<double>();
  EXPECT_NEAR(sum, 1.0, 1e-9);
  for (const char* k : {"visual", "audio", "text", "uniform", "learned"})
    EXPECT_TRUE(out["metrics"].contains(k)) << k;
  EXPECT_GT(out["kernels"]["visual"]["gamma"].get<double>(), 0.0);  // resolved by the heuristic
  // 64 test points for each of 3 single kernels and the learned one.
  const std::string csv = read_text(dir.file("mkl/kpca.csv"));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 1 + 4 * 64);

  args.overrides = {"mkl.train_size=100000", "data.train_size=100000", "mkl.max_memory_gb=1"};
  args.out = dir.file("too-big");
  // 8 bytes x n x (n x (3 kernels + 3) + 128 validation and test rows x 3 kernels).
  expect_error<ConfigError>([&] { run_mkl(args); }, "100000 training points need 447.3 GiB");
  // Product kernels count: 7 kernels, n x (n x 10 + 128 x 7) doubles.
  args.overrides.push_back("mkl.interactions=all");
  expect_error<ConfigError>(
      [&] { run_mkl(args); },
      "need 745.7 GiB of kernel matrices (7 kernels over them and 128 validation and test points");
}

TEST(MKLCommand, LearnedWeightsDoNoWorseThanUniformOnTheDefaultData) {
  TempDir dir;
  MKLArgs args;
  args.config = source_path("configs/default.json");
  args.overrides = {"mkl.train_size=1500"};
  args.out = dir.file("mkl");
  const json out = run_mkl(args);
  EXPECT_LE(out["metrics"]["learned"]["test"]["mse"].get<double>(),
            out["metrics"]["uniform"]["test"]["mse"].get<double>() * (1 + 1e-3));
  const auto& objective = out["objective"];
  for (size_t i = 1; i < objective.size(); ++i)
    EXPECT_LE(objective[i].get<double>(), objective[i - 1].get<double>());
}

// ---------------------------------------------------------------------------------------
// Interaction kernels (products of ANOVA-centred kernels) and their component shares.

TEST(AnovaKernels, ConfigResolvesAllUpToMaxOrderAndCentresByDefaultWithInteractions) {
  using Sets = std::vector<std::vector<std::string>>;
  EXPECT_TRUE(tiny_config().mkl.interactions.empty());  // additive, as before
  EXPECT_FALSE(tiny_config().mkl.centre);
  const auto all = tiny_config({"mkl.interactions=all"});
  EXPECT_EQ(all.mkl.interactions, (Sets{{"visual", "audio"},
                                        {"visual", "text"},
                                        {"audio", "text"},
                                        {"visual", "audio", "text"}}));
  EXPECT_TRUE(all.mkl.centre);
  EXPECT_EQ(tiny_config({"mkl.interactions=all", "mkl.max_order=2"}).mkl.interactions.size(), 3u);
  EXPECT_FALSE(
      tiny_config({"mkl.interactions=[[\"text\",\"audio\"]]", "mkl.centre=false"}).mkl.centre);
  EXPECT_EQ(tiny_config({"mkl.interactions=[[\"text\",\"audio\"]]"}).mkl.interactions,
            (Sets{{"audio", "text"}}));
  EXPECT_TRUE(parse_config(to_json(all)) == all);
  expect_error<ConfigError>([] { tiny_config({"mkl.interactions=some"}); },
                            "mkl.interactions: expected \"all\" or a list of modality-name lists");
  expect_error<ConfigError>([] { tiny_config({"mkl.interactions=[[\"audio\"]]"}); },
                            "mkl.interactions[0]");
  expect_error<ConfigError>([] { tiny_config({"mkl.max_order=1"}); }, "mkl.max_order");
}

// Centred on the training points, every function sum_j k~(., x_j) a_j has mean zero
// over them, and the centred kernel stays symmetric.
TEST(AnovaKernels, CentredKernelFunctionsHaveMeanZeroOverTheTrainingPoints) {
  torch::manual_seed(4);
  const auto x = torch::randn({300, 3}, f64) + 2;
  const auto K = FittedKernel(KernelConfig{}, x)(x, x);
  const auto centred = centre_test_kernel(K, K);
  const auto f = centred.mm(torch::randn({300, 4}, f64));
  EXPECT_LT(f.mean(0).abs().max().item<double>(), 1e-12 * f.abs().max().item<double>() * 300);
  EXPECT_GT(K.mm(torch::ones({300, 1}, f64)).abs().min().item<double>(),
            1.0);  // uncentred: far from zero
  EXPECT_TRUE(torch::allclose(centred, centred.t(), 0, 1e-12));
}

// For independent modalities, the components of products over different subsets are
// orthogonal: with the same coefficients, a pair's component is uncorrelated with each of
// its members' and with the other subsets'. Evaluated on fresh points of the training
// distribution (rows centred with the training statistics, as test rows are); at the
// training points themselves every component also holds alpha_i k(x_i, x_i), the same
// diagonal term, which ties them together. Uncentred, the pair's carries its members.
TEST(AnovaKernels, ProductsOfCentredKernelsGiveOrthogonalComponents) {
  torch::manual_seed(5);
  const int64_t n = 800, fresh = 4000;
  std::vector<torch::Tensor> centred, raw;
  for (int m = 0; m < 3; ++m) {
    const auto x = torch::randn({n, 2}, f64), z = torch::randn({fresh, 2}, f64);
    const FittedKernel kernel(KernelConfig{}, x);
    const auto K = kernel(x, x);
    raw.push_back(kernel(z, x));
    centred.push_back(centre_test_kernel(raw.back(), K));
  }
  const auto alpha = torch::randn({n, 1}, f64);
  auto component = [&](const std::vector<torch::Tensor>& k, std::vector<size_t> of) {
    return product_kernel(k, of).mm(alpha).squeeze(1);
  };
  auto correlation = [](const torch::Tensor& a, const torch::Tensor& b) {
    return torch::corrcoef(torch::stack({a, b}))[0][1].item<double>();
  };
  const std::vector<std::vector<size_t>> subsets{{0}, {1}, {2}, {0, 1}, {0, 2}, {1, 2}, {0, 1, 2}};
  for (size_t s = 0; s < subsets.size(); ++s)
    for (size_t t = s + 1; t < subsets.size(); ++t)
      EXPECT_LT(
          std::abs(correlation(component(centred, subsets[s]), component(centred, subsets[t]))),
          0.1)
          << s << " vs " << t;
  EXPECT_GT(correlation(component(raw, {0, 1}), component(raw, {0})), 0.3);
}

// The experiment's helpers: a product is the elementwise product and leaves its factors
// alone; rows are centred against the uncentred training kernel, so the training points
// as rows come out as the centred training kernel itself.
TEST(AnovaKernels, ProductsAndCentringOfRowsAreConsistent) {
  torch::manual_seed(6);
  const auto a = torch::rand({5, 4}, f64), b = torch::rand({5, 4}, f64),
             c = torch::rand({5, 4}, f64);
  const auto a0 = a.clone();
  EXPECT_TRUE(torch::allclose(product_kernel({a, b, c}, {0, 2}), a * c));
  EXPECT_TRUE(torch::allclose(product_kernel({a, b, c}, {2, 1, 0}), a * b * c));
  EXPECT_TRUE(torch::equal(a, a0));
  const auto x = torch::randn({50, 3}, f64), z = torch::randn({20, 3}, f64);
  const FittedKernel kernel(KernelConfig{}, x);
  const auto centred = anova_centre(kernel(x, x), {kernel(z, x), kernel(x, x)});
  ASSERT_EQ(centred.size(), 3u);
  EXPECT_TRUE(torch::allclose(centred[2], centred[0], 0, 1e-12));
  // A row by the definition: k(z, x_j) - mean_u k(z, u) - mean_u k(u, x_j) + mean_uv k(u, v).
  const auto K = kernel(x, x), kz = kernel(z, x);
  const double expected =
      (kz[3][7] - kz[3].mean() - K.select(1, 7).mean() + K.mean()).item<double>();
  EXPECT_NEAR(centred[1][3][7].item<double>(), expected, 1e-12);
}

// Components with known variances: f_1 = (1, -1, 1, -1) and f_2 = 2 (1, 1, -1, -1) in the
// first column (orthogonal, variances 1 and 4), twice that in the second: shares 0.2, 0.8.
TEST(AnovaKernels, ComponentSharesOfKnownComponents) {
  const auto k1 = torch::tensor({{1.0}, {-1.0}, {1.0}, {-1.0}}, f64),
             k2 = torch::tensor({{1.0}, {1.0}, {-1.0}, {-1.0}}, f64);
  const auto alpha = torch::tensor({{1.0, 2.0}}, f64);  // [n = 1, 2 columns]
  const auto shares = component_shares({k1, k2}, {1.0, 2.0}, alpha);
  ASSERT_EQ(shares.size(), 2u);
  EXPECT_NEAR(shares[0], 0.2, 1e-12);
  EXPECT_NEAR(shares[1], 0.8, 1e-12);
  EXPECT_EQ(component_shares({k1}, {0.0}, alpha),
            (std::vector<double>{0.0}));  // a constant prediction
}

namespace {

json mkl_on_terms(const TempDir& dir, const std::string& name, const std::string& terms,
                  const std::vector<std::string>& more = {}) {
  MKLArgs args;
  args.config = source_path("configs/tiny.json");
  // One thread (ctest runs two tests at once) and at most 30 SimpleMKL iterations: the
  // shares settle long before the KKT conditions hold to 1e-6.
  args.overrides = {"threads=1",
                    "mkl.max_iter=30",
                    "data.train_size=800",
                    "data.test_size=1000",
                    "data.synthetic.shared_latent_dim=0",
                    "data.synthetic.weights=null",
                    "data.synthetic.terms=" + terms,
                    "mkl.interactions=all",
                    "mkl.train_size=0"};
  args.overrides.insert(args.overrides.end(), more.begin(), more.end());
  args.out = dir.file(name);
  return run_mkl(args);
}

double interaction_share(const json& out) {
  double sum = 0;
  for (const auto& c : out["components"])
    if (c["modalities"].size() > 1) sum += c["share"].get<double>();
  return sum;
}

}  // namespace

TEST(AnovaKernels, AdditiveDataLeavesTheInteractionComponentsLittle) {
  TempDir dir;
  const json out = mkl_on_terms(
      dir, "additive",
      R"([{"modalities":["visual"]},{"modalities":["audio"]},{"modalities":["text"]}])");
  ASSERT_EQ(out["components"].size(), 7u);
  EXPECT_LT(interaction_share(out), 0.1) << out["components"].dump();
  for (const auto& c : out["components"])
    EXPECT_TRUE(c["truth"].is_number()) << c["name"];  // exact truth here
  EXPECT_TRUE(fs::exists(dir.file("additive/kpca.svg")));
  EXPECT_NE(read_text(dir.file("additive/kpca.svg")).find("visual:audio:text"), std::string::npos);
}

TEST(AnovaKernels, PairsOnlyDataPutsMostOfThePredictionOnThePairs) {
  TempDir dir;
  const json out =
      mkl_on_terms(dir, "pairs",
                   R"([{"modalities":["visual","audio"]},{"modalities":["visual","text"]},)"
                   R"({"modalities":["audio","text"]}])");
  double pairs = 0;
  for (const auto& c : out["components"])
    if (c["modalities"].size() == 2) pairs += c["share"].get<double>();
  EXPECT_GT(pairs, 0.7) << out["components"].dump();
}

// The issue's measure: on the default data (independent modalities, n = 2000) the
// additive MKL as it was stays below R^2 0.3, and the one with every interaction (RBF
// kernels at half the median heuristic's gamma, as products add their gammas) reaches
// 0.85. (The additive one at half gamma reaches 0.31.)
TEST(AnovaKernels, InteractionKernelsFitTheDefaultDataWhereTheSumCannot) {
  TempDir dir;
  MKLArgs args;
  args.config = source_path("configs/default.json");
  args.overrides = {"threads=1", "data.synthetic.shared_latent_dim=0", "mkl.train_size=2000"};
  args.out = dir.file("additive");
  const double additive = run_mkl(args)["metrics"]["learned"]["test"]["r2"].get<double>();
  args.overrides.push_back("mkl.interactions=all");
  args.out = dir.file("all");
  const json all = run_mkl(args);
  // The products' members at gamma / |S| (the default): no gamma to tune by hand. Each
  // member's own gamma makes the products narrower and the fit worse (measured 0.855
  // against 0.755; docs/mkl.md).
  EXPECT_EQ(all["kernels"]["visual:audio"]["gamma"]["visual"].get<double>(),
            all["kernels"]["visual"]["gamma"].get<double>() / 2);
  EXPECT_EQ(all["kernels"]["visual:audio:text"]["gamma"]["text"].get<double>(),
            all["kernels"]["text"]["gamma"].get<double>() / 3);
  args.overrides.push_back("mkl.split_gamma=false");
  args.out = dir.file("own-gamma");
  const json own = run_mkl(args);
  EXPECT_FALSE(own["kernels"]["visual:audio"].contains("gamma"));
  EXPECT_LT(additive, 0.3);
  const double r2 = all["metrics"]["learned"]["test"]["r2"].get<double>();
  EXPECT_GE(r2, 0.83) << all["components"].dump();
  EXPECT_GT(r2, own["metrics"]["learned"]["test"]["r2"].get<double>() + 0.05);
}
