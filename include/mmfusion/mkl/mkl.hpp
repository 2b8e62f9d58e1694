#pragma once
// Multiple kernel learning (docs/mkl.md): one kernel per modality (and products of them
// for interactions), kernel ridge regression on their weighted sum, and learners for the
// weights (uniform, lp-norm MKL, SimpleMKL), plus kernel PCA for pictures of separability. All in
// double precision, on the device of the inputs.
#include <string>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/config/config.hpp"

namespace mmfusion {

// A kernel fitted to training points: the gamma the median heuristic chose and the
// normalisation statistics, so train and test kernels are computed consistently.
class FittedKernel {
 public:
  FittedKernel(const KernelConfig& config, const torch::Tensor& train);
  // K(a, b) with the configured normalisation; a, b: [n, dim].
  torch::Tensor operator()(const torch::Tensor& a, const torch::Tensor& b) const;
  double gamma() const { return gamma_; }
  const KernelConfig& config() const { return config_; }

 private:
  torch::Tensor raw(const torch::Tensor& a, const torch::Tensor& b) const;
  torch::Tensor self_similarity(const torch::Tensor& a) const;  // raw K(x, x) per row
  KernelConfig config_;
  double gamma_ = 0;
  double trace_scale_ = 1;  // unit_trace: mean of the training diagonal
};

// Kernel ridge regression with a Cholesky factorisation:
//   alpha = (K + lambda I)^-1 Y,  J = lambda * sum_c y_c' alpha_c.
struct KRRSolution {
  torch::Tensor alpha;  // [n, C]
  double objective = 0;
  torch::Tensor factor;  // the Cholesky factor of K + lambda I (lower)
};
KRRSolution krr_solve(const torch::Tensor& K, const torch::Tensor& Y, double lambda);
// d2J/dtheta_m dtheta_n = 2 lambda sum_c (K_m alpha_c)' (K + lambda I)^-1 (K_n alpha_c), from
// the solve's Cholesky factor: [M, M], positive semi-definite (J is convex in theta).
torch::Tensor krr_hessian(const std::vector<torch::Tensor>& kernels, const KRRSolution& s,
                          double lambda);
// dJ/dtheta_m = -lambda * sum_c alpha_c' K_m alpha_c
std::vector<double> krr_gradient(const std::vector<torch::Tensor>& kernels,
                                 const torch::Tensor& alpha, double lambda);
torch::Tensor combine(const std::vector<torch::Tensor>& kernels, const std::vector<double>& theta);

struct MKLResult {
  std::vector<double> theta;
  std::vector<double> objective;  // per accepted weighting (the first is at the starting weights)
  std::vector<double> gradient;   // at the final weights
  // SimpleMKL: iterations; lp: kernel ridge solves after the first, rejected
  // extrapolations included (max_iter bounds the same count).
  int64_t iterations = 0;
  // SimpleMKL: true exactly when the KKT conditions hold to tol at the final weights
  // (kkt_gap <= tol); lp: when the relative objective change fell below tol.
  bool converged = false;
  std::string stop_reason;
  // SimpleMKL: how far the final weights are from the KKT conditions, relative to the
  // largest |gradient| (simple_mkl_kkt_gap); NaN for the other solvers.
  double kkt_gap = NAN;
  torch::Tensor alpha;  // the kernel ridge solution at the final weights
};
// The KKT gap of weights on the simplex: the spread of the gradients over the support,
// or how far a zero weight's gradient lies below the support's smallest, whichever is
// larger, divided by the largest |gradient| (0 when all gradients are 0).
double simple_mkl_kkt_gap(const std::vector<double>& theta, const std::vector<double>& gradient);
// Learns the weights on training kernels (n x n each) for targets Y [n, C].
MKLResult learn_weights(const MKLConfig& config, const std::vector<torch::Tensor>& kernels,
                        const torch::Tensor& Y);
MKLResult lp_mkl(const std::vector<torch::Tensor>& kernels, const torch::Tensor& Y, double lambda,
                 double p, int64_t max_iter, double tol);
MKLResult simple_mkl(const std::vector<torch::Tensor>& kernels, const torch::Tensor& Y,
                     double lambda, int64_t max_iter, double tol);

// Kernel PCA fitted on a training kernel.
struct KernelPCA {
  torch::Tensor train_kernel_col_mean;  // 1'K: [n]
  double train_kernel_mean = 0;         // 1'K1
  torch::Tensor eigenvectors;           // [n, k], columns V[:, j]
  torch::Tensor eigenvalues;            // [k], of the centred kernel
  // Coordinates of the training points: sqrt(lambda_j) V[i, j].
  torch::Tensor train_coordinates() const;
  // Coordinates of new points from their kernel rows against the training set [m, n]:
  // centred as K_t - 1'K - K_t 1 + 1'K1, projected with V[:, j] / sqrt(lambda_j).
  torch::Tensor project(const torch::Tensor& test_kernel) const;
};
KernelPCA fit_kernel_pca(const torch::Tensor& K, int64_t components = 2);
// The centring of kernel rows against the training points (kernel PCA's, and the ANOVA
// centring of Durrande et al. 2013): K_t - 1 r' - (row means of K_t) 1' + mean(K), r the
// column means of the training kernel K. centre_test_kernel(K, K) centres K itself; every
// function sum_j k~(., x_j) a_j then has mean zero over the training points.
torch::Tensor centre_test_kernel(const torch::Tensor& test_kernel,
                                 const torch::Tensor& train_kernel);

// ANOVA centring of one kernel's matrices on the training points: `rows` (val x train,
// test x train, ...) are centred against the uncentred training kernel, then the training
// kernel itself; returns {centred train, centred rows...}.
std::vector<torch::Tensor> anova_centre(const torch::Tensor& train,
                                        const std::vector<torch::Tensor>& rows);

// The elementwise product of the kernels base[of[0]], base[of[1]], ... (a new tensor).
torch::Tensor product_kernel(const std::vector<torch::Tensor>& base, const std::vector<size_t>& of);

// Each component's share of a combined prediction's variance: f_k = theta_k K_k alpha over
// the rows of the kernels (rows x train, e.g. test points), Var(f_k) / Var(sum_k f_k),
// variances summed over alpha's columns. With centred base kernels and their products
// the components are the prediction's functional-ANOVA terms, and these are their Sobol
// shares (docs/mkl.md). All zeros when the prediction is constant.
std::vector<double> component_shares(const std::vector<torch::Tensor>& kernels,
                                     const std::vector<double>& theta, const torch::Tensor& alpha);

// Separability of 2-D coordinates: classification, accuracy of the nearest class mean
// (means from the training coordinates); regression, R^2 of a least-squares linear fit
// (fitted on the training coordinates). Scored on the test coordinates.
double separability(Task task, const torch::Tensor& train_xy, const torch::Tensor& train_y,
                    const torch::Tensor& test_xy, const torch::Tensor& test_y);

// Bytes the kernel matrices of an MKL problem take, for n training points, `kernels`
// kernels (every modality's and every product kernel) and `other_rows` validation and
// test points: per kernel an n x n training matrix and an other_rows x n one, plus three
// n x n (the combination, its regularised copy and its factor); doubles.
double mkl_memory_bytes(int64_t n, int64_t kernels, int64_t other_rows = 0);

}  // namespace mmfusion
