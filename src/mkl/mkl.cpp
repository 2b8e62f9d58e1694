#include "mmfusion/mkl/mkl.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/progress.hpp"

namespace mmfusion {
namespace {

constexpr int64_t kMedianSample = 1000;  // rows used by the median heuristic
constexpr double kArmijo = 1e-4;         // sufficient-decrease constant of the line search
constexpr int kMaxHalvings = 40;
constexpr int64_t kDirectEigenSize = 1500;  // kernel PCA: full eigh up to this size
constexpr int64_t kBlock = 12;              // subspace iteration block size
constexpr int kSubspaceIterations = 60;     // at most
constexpr uint64_t kSubspaceStart = 12345;  // seed of the random start block
constexpr int kMinSubspaceIterations = 4;
constexpr double kSubspaceTolerance = 1e-10;  // relative change of the leading Ritz values

torch::Tensor squared_distances(const torch::Tensor& a, const torch::Tensor& b) {
  const auto a2 = a.pow(2).sum(1, true), b2 = b.pow(2).sum(1, true);
  return (a2 + b2.t() - 2 * a.mm(b.t())).clamp_min(0);
}

}  // namespace

FittedKernel::FittedKernel(const KernelConfig& config, const torch::Tensor& train)
    : config_(config) {
  const auto x = train.to(torch::kFloat64);
  if (config_.type == KernelType::RBF) {
    gamma_ = config_.gamma;
    if (gamma_ <= 0) {  // median heuristic: gamma_scale / median of the pairwise squared distances
      const auto s = x.slice(0, 0, std::min<int64_t>(x.size(0), kMedianSample));
      const auto d = squared_distances(s, s);
      const auto upper = d.index({torch::triu(torch::ones_like(d, torch::kBool), 1)});
      const double median = upper.numel() > 0 ? upper.median().item<double>() : 1.0;
      gamma_ = (median > 0 ? 1.0 / median : 1.0) * config_.gamma_scale;
    }
  }
  if (config_.normalize == KernelNormalize::UnitTrace)
    trace_scale_ = std::max(1e-12, self_similarity(x).mean().item<double>());
}

torch::Tensor FittedKernel::raw(const torch::Tensor& a, const torch::Tensor& b) const {
  switch (config_.type) {
    case KernelType::Linear: return a.mm(b.t());
    case KernelType::Polynomial:
      return (a.mm(b.t()) / static_cast<double>(a.size(1)) + config_.coef0).pow(config_.degree);
    case KernelType::RBF: return torch::exp(-gamma_ * squared_distances(a, b));
  }
  throw std::logic_error("FittedKernel: unknown kernel type");
}

torch::Tensor FittedKernel::self_similarity(const torch::Tensor& a) const {
  switch (config_.type) {
    case KernelType::Linear: return a.pow(2).sum(1);
    case KernelType::Polynomial:
      return (a.pow(2).sum(1) / static_cast<double>(a.size(1)) + config_.coef0).pow(config_.degree);
    case KernelType::RBF: return torch::ones({a.size(0)}, a.options());
  }
  throw std::logic_error("FittedKernel: unknown kernel type");
}

torch::Tensor FittedKernel::operator()(const torch::Tensor& a_in, const torch::Tensor& b_in) const {
  const auto a = a_in.to(torch::kFloat64), b = b_in.to(torch::kFloat64);
  auto k = raw(a, b);
  switch (config_.normalize) {
    case KernelNormalize::None: return k;
    case KernelNormalize::UnitDiagonal:  // an RBF kernel's diagonal already is 1
      if (config_.type == KernelType::RBF) return k;
      return k / torch::sqrt(self_similarity(a).clamp_min(1e-12).unsqueeze(1) *
                             self_similarity(b).clamp_min(1e-12).unsqueeze(0));
    case KernelNormalize::UnitTrace: return k / trace_scale_;
  }
  throw std::logic_error("FittedKernel: unknown normalisation");
}

KRRSolution krr_solve(const torch::Tensor& K, const torch::Tensor& Y, double lambda) {
  // K + lambda I without an n x n identity: one pass over K, not three.
  auto A = K.clone();
  A.diagonal().add_(lambda);
  auto [L, info] = torch::linalg_cholesky_ex(A);
  if (info.item<int64_t>() != 0)
    throw Error("kernel ridge: K + lambda I is not positive definite (raise mkl.lambda)");
  KRRSolution s;
  s.factor = L;
  s.alpha = torch::cholesky_solve(Y, L);
  s.objective = lambda * (Y * s.alpha).sum().item<double>();
  return s;
}

std::vector<double> krr_gradient(const std::vector<torch::Tensor>& kernels,
                                 const torch::Tensor& alpha, double lambda) {
  std::vector<double> g;
  for (const auto& K : kernels) g.push_back(-lambda * (alpha * K.mm(alpha)).sum().item<double>());
  return g;
}

torch::Tensor combine(const std::vector<torch::Tensor>& kernels, const std::vector<double>& theta) {
  torch::Tensor K;  // the first weighted kernel written, not added to zeros
  for (size_t m = 0; m < kernels.size(); ++m) {
    if (theta[m] == 0) continue;
    if (K.defined())
      K.add_(kernels[m], theta[m]);
    else
      K = kernels[m] * theta[m];
  }
  return K.defined() ? K : torch::zeros_like(kernels.front());
}

namespace {

// lp-MKL's closed-form weights for the solution at theta (Kloft et al.):
// n_m = theta_m^2 a' K_m a = ||w_m||^2, theta_m = n_m^(1/(p+1)) / (sum_k n_k^(p/(p+1)))^(1/p).
// False when every n_m is zero (no weights to give).
bool lp_update(const std::vector<torch::Tensor>& kernels, const std::vector<double>& theta,
               const KRRSolution& s, double p, std::vector<double>& out) {
  const size_t M = kernels.size();
  std::vector<double> norm2(M);
  for (size_t m = 0; m < M; ++m)
    norm2[m] = theta[m] * theta[m] * (s.alpha * kernels[m].mm(s.alpha)).sum().item<double>();
  double denom = 0;
  for (double n : norm2) denom += std::pow(std::max(n, 0.0), p / (p + 1));
  denom = std::pow(denom, 1.0 / p);
  if (!(denom > 0)) return false;
  out.resize(M);
  for (size_t m = 0; m < M; ++m) out[m] = std::pow(std::max(norm2[m], 0.0), 1.0 / (p + 1)) / denom;
  return true;
}

// An extrapolation is halved towards the plain step at most this often (each rejection
// costs a solve, each negative weight none), then the plain step is taken.
constexpr int kMaxRejectedExtrapolations = 3;
constexpr int kMaxPositivityHalvings = 50;

}  // namespace

MKLResult lp_mkl(const std::vector<torch::Tensor>& kernels, const torch::Tensor& Y, double lambda,
                 double p, int64_t max_iter, double tol) {
  const size_t M = kernels.size();
  MKLResult r;
  r.theta.assign(M, std::pow(double(M), -1.0 / p));
  KRRSolution s = krr_solve(combine(kernels, r.theta), Y, lambda);
  r.objective.push_back(s.objective);
  r.stop_reason = "max_iter";
  // Accepts weights whose solve is s_new: one more point of the objective. After a plain
  // update (F of the last accepted weights), true when it changed the objective by less
  // than tol, relatively: converged means what it meant before the extrapolation.
  auto accept = [&](std::vector<double> theta, KRRSolution s_new, bool plain) {
    const double before = r.objective.back();
    r.theta = std::move(theta), s = std::move(s_new);
    r.objective.push_back(s.objective);
    if (!plain || std::abs(before - s.objective) > tol * std::abs(before)) return false;
    r.converged = true;
    r.stop_reason = "relative objective change below tol";
    return true;
  };
  TerminalProgress progress("mkl (lp): kernel ridge solves, of at most", max_iter);
  auto solve = [&](const std::vector<double>& theta) {
    ++r.iterations;  // one kernel ridge solve each
    progress.update(r.iterations);
    return krr_solve(combine(kernels, theta), Y, lambda);
  };
  // The closed-form step theta -> F(theta) converges linearly; each cycle takes one plain
  // step and then a squared extrapolation (SQUAREM, Varadhan & Roland 2008) along
  // r = F(t0) - t0, v = F(F(t0)) - 2 F(t0) + t0. The extrapolated weights are accepted only
  // when positive (a zero weight never returns) and when their objective is no higher than
  // the plain step's; else the step is halved towards F(F(t0)), the plain point, which
  // never raises the objective (each closed-form step is a block minimisation).
  std::vector<double> t1, t2;
  while (r.iterations < max_iter) {
    const std::vector<double> t0 = r.theta;
    if (!lp_update(kernels, t0, s, p, t1)) {
      r.stop_reason = "zero weights";
      break;
    }
    if (accept(t1, solve(t1), true) || r.iterations >= max_iter) break;
    if (!lp_update(kernels, t1, s, p, t2)) {
      r.stop_reason = "zero weights";
      break;
    }
    double r_norm = 0, v_norm = 0;
    for (size_t m = 0; m < M; ++m) {
      r_norm += std::pow(t1[m] - t0[m], 2);
      v_norm += std::pow(t2[m] - 2 * t1[m] + t0[m], 2);
    }
    double step = v_norm > 0 ? -std::sqrt(r_norm / v_norm) : -1.0;
    step = std::min(step, -1.0);
    const double plain_objective = s.objective;
    for (int rejected = 0, halvings = 0;;) {
      if (rejected >= kMaxRejectedExtrapolations || halvings >= kMaxPositivityHalvings) step = -1.0;
      std::vector<double> t(M);
      bool positive = true;
      double norm = 0;
      for (size_t m = 0; m < M; ++m) {
        const double rm = t1[m] - t0[m], vm = t2[m] - 2 * t1[m] + t0[m];
        t[m] = step == -1.0 ? t2[m] : std::max(0.0, t0[m] - 2 * step * rm + step * step * vm);
        if (t2[m] > 0 && !(t[m] > 0)) positive = false;
        norm += std::pow(t[m], p);
      }
      if (!positive) {
        step = (step - 1) / 2, ++halvings;
        continue;
      }
      for (double& x : t) x /= std::pow(norm, 1.0 / p);  // back onto ||theta||_p = 1
      KRRSolution trial = solve(t);
      if (step == -1.0 || trial.objective <= plain_objective) {
        accept(std::move(t), std::move(trial), step == -1.0);  // step -1 is F(F(t0)): plain
        break;
      }
      if (r.iterations >= max_iter) break;
      step = (step - 1) / 2, ++rejected;
    }
    if (r.converged) break;
  }
  r.gradient = krr_gradient(kernels, s.alpha, lambda);
  r.alpha = s.alpha;
  return r;
}

double simple_mkl_kkt_gap(const std::vector<double>& theta, const std::vector<double>& g) {
  double g_min = INFINITY, g_max = -INFINITY, g_scale = 0;
  for (size_t m = 0; m < theta.size(); ++m) {
    g_scale = std::max(g_scale, std::abs(g[m]));
    if (theta[m] > 0) g_min = std::min(g_min, g[m]), g_max = std::max(g_max, g[m]);
  }
  if (g_scale == 0) return 0.0;
  double gap = g_max - g_min;
  for (size_t m = 0; m < theta.size(); ++m)
    if (theta[m] <= 0) gap = std::max(gap, g_min - g[m]);
  return gap / g_scale;
}

torch::Tensor krr_hessian(const std::vector<torch::Tensor>& kernels, const KRRSolution& s,
                          double lambda) {
  const int64_t M = static_cast<int64_t>(kernels.size());
  std::vector<torch::Tensor> v, w;  // K_m alpha, (K + lambda I)^-1 K_m alpha
  for (const auto& K : kernels) {
    v.push_back(K.mm(s.alpha));
    w.push_back(torch::cholesky_solve(v.back(), s.factor));
  }
  auto h = torch::zeros({M, M}, torch::kFloat64);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = i; j < M; ++j) {
      const double x = 2 * lambda * (v[i] * w[j]).sum().item<double>();
      h[i][j] = x, h[j][i] = x;
    }
  return h;
}

namespace {

// SimpleMKL's reduced gradient (Rakotomamonjy et al. 2008): mu = the largest weight,
// eliminated through the equality constraint; a zero weight whose gradient exceeds mu's
// stays put.
std::vector<double> reduced_gradient_direction(const std::vector<double>& theta,
                                               const std::vector<double>& g) {
  const size_t M = theta.size();
  const size_t mu = std::max_element(theta.begin(), theta.end()) - theta.begin();
  std::vector<double> D(M, 0.0);
  double sum = 0;
  for (size_t m = 0; m < M; ++m) {
    if (m == mu) continue;
    D[m] = (theta[m] <= 0 && g[m] - g[mu] > 0) ? 0.0 : -(g[m] - g[mu]);
    sum += D[m];
  }
  D[mu] = -sum;
  return D;
}

// The Newton step of J on the simplex's face (krr_hessian). Over the free weights (the positive
// ones, and zero ones whose gradient lies below the support's smallest, which would enter) it
// solves [H 1; 1' 0] [d; nu] = [-g; 0]: the minimum of the quadratic model with sum d = 0.
// Empty when that system is singular or d does not descend.
std::vector<double> reduced_newton_direction(const std::vector<torch::Tensor>& kernels,
                                             const KRRSolution& s, double lambda,
                                             const std::vector<double>& theta,
                                             const std::vector<double>& g) {
  const size_t M = theta.size();
  double support_min = INFINITY;
  for (size_t m = 0; m < M; ++m)
    if (theta[m] > 0) support_min = std::min(support_min, g[m]);
  std::vector<size_t> free;
  for (size_t m = 0; m < M; ++m)
    if (theta[m] > 0 || g[m] < support_min) free.push_back(m);
  // A zero weight the step would make negative leaves the free set, and the step is
  // solved again without it.
  const torch::Tensor hessian = krr_hessian(kernels, s, lambda).cpu();
  for (;;) {
    const int64_t F = static_cast<int64_t>(free.size());
    if (F < 2) return {};
    auto system = torch::zeros({F + 1, F + 1}, torch::kFloat64);
    auto rhs = torch::zeros({F + 1}, torch::kFloat64);
    auto sa = system.accessor<double, 2>();
    auto ra = rhs.accessor<double, 1>();
    const auto ha = hessian.accessor<double, 2>();
    for (int64_t i = 0; i < F; ++i) {
      for (int64_t j = 0; j < F; ++j) sa[i][j] = ha[free[i]][free[j]];
      sa[i][F] = sa[F][i] = 1;
      ra[i] = -g[free[i]];
    }
    const auto [solution, info] = torch::linalg_solve_ex(system, rhs);
    if (info.item<int64_t>() != 0 || !torch::isfinite(solution).all().item<bool>()) return {};
    std::vector<double> D(M, 0.0);
    double slope = 0;
    std::vector<size_t> keep;
    for (int64_t i = 0; i < F; ++i) {
      D[free[i]] = solution[i].item<double>(), slope += g[free[i]] * D[free[i]];
      if (theta[free[i]] > 0 || D[free[i]] >= 0) keep.push_back(free[i]);
    }
    if (keep.size() < free.size()) {
      free = keep;
      continue;
    }
    if (!(slope < 0)) return {};
    return D;
  }
}

// SimpleMKL's line search along D from theta (objective `objective`, slope `slope` < 0)
// on [0, gamma_max], Armijo's condition: gamma_max first (hits_zero < M: the weight that
// reaches zero there, set exactly to zero); when it fails, J being convex in theta and so
// in gamma, the zero of the slope's secant between 0 and gamma_max (each solve also gives
// the slope there, J'(gamma) = sum_m D_m g_m), then halving from there. On success, the
// accepted weights, their solution and gradient; false when no decrease was found.
bool line_search(const std::vector<torch::Tensor>& kernels, const torch::Tensor& Y, double lambda,
                 const std::vector<double>& theta, const std::vector<double>& D, double gamma_max,
                 size_t hits_zero, double slope, double objective, std::vector<double>& next,
                 KRRSolution& trial, std::vector<double>& next_g) {
  const size_t M = kernels.size();
  auto weights_at = [&](double gamma, std::vector<double>& out) {
    double total = 0;
    for (size_t m = 0; m < M; ++m) {
      out[m] = std::max(0.0, theta[m] + gamma * D[m]);
      if (gamma == gamma_max && m == hits_zero) out[m] = 0.0;  // exactly on the face
      total += out[m];
    }
    for (auto& t : out) t /= total;
  };
  auto slope_at = [&](const std::vector<double>& gradient) {
    double d = 0;
    for (size_t m = 0; m < M; ++m) d += D[m] * gradient[m];
    return d;
  };
  next.assign(M, 0.0);
  weights_at(gamma_max, next);
  trial = krr_solve(combine(kernels, next), Y, lambda);
  next_g = krr_gradient(kernels, trial.alpha, lambda);
  const double end_slope = slope_at(next_g);
  bool accepted = trial.objective <= objective + kArmijo * gamma_max * slope;
  double gamma = gamma_max;
  if (!accepted)
    gamma = end_slope > 0 ? gamma_max * slope / (slope - end_slope)  // in (0, gamma_max)
                          : 0.5 * gamma_max;
  for (int k = 0; k < kMaxHalvings && !accepted; ++k) {
    weights_at(gamma, next);
    trial = krr_solve(combine(kernels, next), Y, lambda);
    accepted = trial.objective <= objective + kArmijo * gamma * slope;
    if (accepted)
      next_g = krr_gradient(kernels, trial.alpha, lambda);
    else
      gamma *= 0.5;
  }
  return accepted;
}

}  // namespace

MKLResult simple_mkl(const std::vector<torch::Tensor>& kernels, const torch::Tensor& Y,
                     double lambda, int64_t max_iter, double tol) {
  const size_t M = kernels.size();
  MKLResult r;
  r.theta.assign(M, 1.0 / double(M));
  KRRSolution s = krr_solve(combine(kernels, r.theta), Y, lambda);
  std::vector<double> g = krr_gradient(kernels, s.alpha, lambda);
  r.objective.push_back(s.objective);
  r.stop_reason = "max_iter";
  TerminalProgress progress("mkl (simple): iterations, of at most", max_iter);
  for (r.iterations = 0; r.iterations < max_iter; progress.update(r.iterations)) {
    // KKT on the simplex: equal gradients on the support, none smaller off it.
    if (simple_mkl_kkt_gap(r.theta, g) <= tol) {
      r.stop_reason = "KKT conditions hold";
      break;
    }
    // The direction: a reduced Newton step where it descends, else the reduced gradient.
    std::vector<double> D = reduced_newton_direction(kernels, s, lambda, r.theta, g);
    const bool newton_steps = !D.empty();
    if (!newton_steps) D = reduced_gradient_direction(r.theta, g);
    double slope = 0, gamma_max = INFINITY;
    size_t hits_zero = M;
    for (size_t m = 0; m < M; ++m) {
      slope += g[m] * D[m];
      if (D[m] < 0 && -r.theta[m] / D[m] < gamma_max) gamma_max = -r.theta[m] / D[m], hits_zero = m;
    }
    if (!(slope < 0) || !std::isfinite(gamma_max)) {
      r.stop_reason = "no descent direction";
      break;
    }
    // A Newton step is 1 (the quadratic model's minimum) unless a weight reaches zero first.
    if (newton_steps && gamma_max > 1) gamma_max = 1, hits_zero = M;
    std::vector<double> next, next_g;
    KRRSolution trial;
    if (!line_search(kernels, Y, lambda, r.theta, D, gamma_max, hits_zero, slope, s.objective, next,
                     trial, next_g)) {
      r.stop_reason = "line search found no decrease (numerical precision)";
      break;
    }
    r.theta = next;
    s = trial;
    g = next_g;
    r.objective.push_back(s.objective);
    ++r.iterations;
  }
  r.gradient = g;
  r.alpha = s.alpha;
  // Converged means what docs/mkl.md says: the KKT conditions hold to tol. Any other stop
  // (no descent, a failed line search, max_iter) reports its gap, and converged = false
  // unless the gap is within tol all the same.
  r.kkt_gap = simple_mkl_kkt_gap(r.theta, g);
  r.converged = r.kkt_gap <= tol;
  return r;
}

MKLResult learn_weights(const MKLConfig& c, const std::vector<torch::Tensor>& kernels,
                        const torch::Tensor& Y) {
  switch (c.solver) {
    case MKLSolver::LP: return lp_mkl(kernels, Y, c.lambda, c.p, c.max_iter, c.tol);
    case MKLSolver::Simple: return simple_mkl(kernels, Y, c.lambda, c.max_iter, c.tol);
    case MKLSolver::Average: break;
  }
  MKLResult r;  // average: uniform weights on the simplex
  r.theta.assign(kernels.size(), 1.0 / double(kernels.size()));
  const KRRSolution s = krr_solve(combine(kernels, r.theta), Y, c.lambda);
  r.objective.push_back(s.objective);
  r.gradient = krr_gradient(kernels, s.alpha, c.lambda);
  r.alpha = s.alpha;
  r.converged = true;
  r.stop_reason = "uniform weights";
  return r;
}

torch::Tensor centre_test_kernel(const torch::Tensor& test_kernel,
                                 const torch::Tensor& train_kernel) {
  return test_kernel - train_kernel.mean(0).unsqueeze(0) - test_kernel.mean(1, true) +
         train_kernel.mean();
}

KernelPCA fit_kernel_pca(const torch::Tensor& K, int64_t components) {
  KernelPCA pca;
  pca.train_kernel_col_mean = K.mean(0);
  pca.train_kernel_mean = K.mean().item<double>();
  const auto Kc = K - pca.train_kernel_col_mean.unsqueeze(0) -
                  pca.train_kernel_col_mean.unsqueeze(1) + pca.train_kernel_mean;
  const int64_t n = K.size(0);
  const int64_t k = std::min(components, n);
  torch::Tensor values, vectors;  // ascending
  if (n <= kDirectEigenSize) {
    std::tie(values, vectors) = torch::linalg_eigh(Kc);
  } else {
    // Only the leading k pairs are needed: orthogonal (subspace) iteration on a block of
    // kBlock vectors, then Rayleigh-Ritz. O(n^2 kBlock) per iteration instead of the
    // O(n^3) of a full eigendecomposition (minutes at n = 4000 in double).
    // It stops once the leading k Ritz values (from Q'KQ, which each iteration's product
    // gives for a small product more) agree with the previous iteration's to
    // kSubspaceTolerance: the iterations were a fixed 60 before, most of the mkl
    // command's time (a thin product re-packs the whole n x n kernel each time).
    at::Generator gen =
        at::detail::createCPUGenerator(kSubspaceStart);  // a fixed start: same input, same result
    auto Q = std::get<0>(torch::linalg_qr(
        torch::randn({n, std::max(kBlock, k)}, gen, torch::kFloat64).to(Kc.device())));
    torch::Tensor previous;
    for (int it = 0; it < kSubspaceIterations; ++it) {
      const auto KQ = Kc.mm(Q);
      const auto ritz = std::get<0>(torch::linalg_eigh(Q.t().mm(KQ)));  // ascending
      const auto leading = ritz.slice(0, ritz.size(0) - k);
      const bool settled = previous.defined() &&
                           ((leading - previous).abs() <= kSubspaceTolerance * leading.abs().max())
                               .all()
                               .item<bool>();
      previous = leading;
      if (settled && it >= kMinSubspaceIterations) break;
      Q = std::get<0>(torch::linalg_qr(KQ));
    }
    auto [ritz_values, ritz_vectors] = torch::linalg_eigh(Q.t().mm(Kc.mm(Q)));
    values = ritz_values;
    vectors = Q.mm(ritz_vectors);
  }
  const int64_t m = values.size(0);
  pca.eigenvalues = values.slice(0, m - k, m).flip(0).clamp_min(1e-12);
  pca.eigenvectors = vectors.slice(1, m - k, m).flip(1);
  return pca;
}

torch::Tensor KernelPCA::train_coordinates() const {
  return eigenvectors * eigenvalues.sqrt().unsqueeze(0);
}

torch::Tensor KernelPCA::project(const torch::Tensor& Kt) const {
  const auto centred =
      Kt - train_kernel_col_mean.unsqueeze(0) - Kt.mean(1, true) + train_kernel_mean;
  return centred.mm(eigenvectors) / eigenvalues.sqrt().unsqueeze(0);
}

double separability(Task task, const torch::Tensor& train_xy, const torch::Tensor& train_y,
                    const torch::Tensor& test_xy, const torch::Tensor& test_y) {
  if (task == Task::Classification) {
    const int64_t classes =
        std::max(train_y.max().item<int64_t>(), test_y.max().item<int64_t>()) + 1;
    auto means = torch::full({classes, train_xy.size(1)}, INFINITY, train_xy.options());
    for (int64_t c = 0; c < classes; ++c) {
      const auto rows = train_xy.index({train_y == c});
      if (rows.size(0) > 0) means[c] = rows.mean(0);
    }
    const auto predicted = torch::cdist(test_xy, means).nan_to_num(INFINITY).argmin(1);
    return (predicted == test_y).to(torch::kFloat64).mean().item<double>();
  }
  auto design = [](const torch::Tensor& xy) {
    return torch::cat({torch::ones({xy.size(0), 1}, xy.options()), xy}, 1);
  };
  const auto y =
      train_y.reshape({train_y.size(0), -1}).select(1, 0).to(torch::kFloat64).unsqueeze(1);
  const auto coef = std::get<0>(torch::linalg_lstsq(design(train_xy), y));
  const auto t = test_y.reshape({test_y.size(0), -1}).select(1, 0).to(torch::kFloat64);
  const auto pred = design(test_xy).mm(coef).squeeze(1);
  const double ss_tot = (t - t.mean()).pow(2).sum().item<double>();
  return ss_tot > 0 ? 1.0 - (t - pred).pow(2).sum().item<double>() / ss_tot : 0.0;
}

std::vector<double> component_shares(const std::vector<torch::Tensor>& kernels,
                                     const std::vector<double>& theta, const torch::Tensor& alpha) {
  std::vector<torch::Tensor> parts;
  torch::Tensor total = torch::zeros({kernels.front().size(0), alpha.size(1)}, alpha.options());
  for (size_t k = 0; k < kernels.size(); ++k) {
    parts.push_back(theta[k] * kernels[k].mm(alpha));
    total += parts.back();
  }
  const double variance = total.var(0, /*unbiased=*/false).sum().item<double>();
  std::vector<double> shares;
  for (const auto& f : parts)
    shares.push_back(variance > 0 ? f.var(0, /*unbiased=*/false).sum().item<double>() / variance
                                  : 0.0);
  return shares;
}

std::vector<torch::Tensor> anova_centre(const torch::Tensor& train,
                                        const std::vector<torch::Tensor>& rows) {
  std::vector<torch::Tensor> out{torch::Tensor()};
  for (const auto& r : rows) out.push_back(centre_test_kernel(r, train));
  out[0] = centre_test_kernel(train, train);
  return out;
}

torch::Tensor product_kernel(const std::vector<torch::Tensor>& base,
                             const std::vector<size_t>& of) {
  torch::Tensor K = base.at(of.at(0)).clone();
  for (size_t i = 1; i < of.size(); ++i) K.mul_(base.at(of[i]));
  return K;
}

double mkl_memory_bytes(int64_t n, int64_t kernels, int64_t other_rows) {
  return 8.0 * double(n) * (double(n) * double(kernels + 3) + double(other_rows) * double(kernels));
}

}  // namespace mmfusion
