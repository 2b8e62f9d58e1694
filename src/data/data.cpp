#include "mmfusion/data/data.hpp"

#include <filesystem>

#include <ATen/CPUGeneratorImpl.h>
#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/serialization/pickler.h>

#include <cmath>
#include <fstream>
#include <set>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/io/file_safety.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/io/npz.hpp"
#include "mmfusion/base/parallel.hpp"
#include "mmfusion/base/random.hpp"
#include "mmfusion/config/config_io.hpp"

namespace mmfusion {
namespace {

// The random streams of one seed. Every number is part of what a seed means: changing one
// changes every data set made from that seed.
namespace streams {
constexpr uint64_t kStructure = 0;      // the task: mixing matrices, effect directions
constexpr uint64_t kFirstSplit = 1;     // + Split: the train, val and test rows
constexpr uint64_t kCalibration = 50;   // rows whose target quantiles are the class thresholds
constexpr uint64_t kFileSplit = 100;    // the permutation that splits a data file by fractions
constexpr uint64_t kFirstEpoch = 1000;  // + epoch: the rows of a training stream's epoch
}  // namespace streams

// Generator 1's seed for stream `stream` of `seed`: output stream + 1 of splitmix64.
uint64_t mix_seed(uint64_t seed, uint64_t stream) { return splitmix64(seed, stream + 1); }

torch::Tensor unit_vector(int64_t n, at::Generator& gen) {
  auto v = torch::randn({n}, gen, torch::kFloat64);
  return v / v.norm();
}

// The fixed random structure of a synthetic task: depends on the seed alone.
struct SyntheticStructure {
  std::vector<torch::Tensor> mixing;                  // per modality [dim, shared + latent]
  std::vector<torch::Tensor> unimodal;                // per modality [latent]
  torch::Tensor shared;                               // [shared] (undefined when shared = 0)
  std::vector<std::array<torch::Tensor, 2>> bimodal;  // per pair m<n: ([latent], [latent])
  std::vector<torch::Tensor> trimodal;                // per modality [latent]
  std::vector<std::vector<torch::Tensor>>
      terms;  // per data.synthetic.terms entry, per modality in it: [latent]
};

SyntheticStructure make_structure(const DataConfig& d, uint64_t seed) {
  const auto& s = d.synthetic;
  at::Generator gen = at::detail::createCPUGenerator(mix_seed(seed, streams::kStructure));
  const int64_t z = s.shared_latent_dim + s.latent_dim;
  const size_t M = d.modalities.size();
  SyntheticStructure st;
  for (const auto& m : d.modalities)
    st.mixing.push_back(torch::randn({m.dim, z}, gen, torch::kFloat64) / std::sqrt(double(z)));
  for (size_t m = 0; m < M; ++m) st.unimodal.push_back(unit_vector(s.latent_dim, gen));
  if (s.shared_latent_dim > 0) st.shared = unit_vector(s.shared_latent_dim, gen);
  for (size_t m = 0; m < M; ++m)
    for (size_t n = m + 1; n < M; ++n)
      st.bimodal.push_back({unit_vector(s.latent_dim, gen), unit_vector(s.latent_dim, gen)});
  for (size_t m = 0; m < M; ++m) st.trimodal.push_back(unit_vector(s.latent_dim, gen));
  // Drawn after everything the weights' terms use, so that configs without terms keep
  // their structure bit for bit.
  for (const auto& term : s.terms) {
    st.terms.emplace_back();
    for (size_t k = 0; k < term.modalities.size(); ++k)
      st.terms.back().push_back(unit_vector(s.latent_dim, gen));
  }
  return st;
}

int64_t split_size(const DataConfig& d, Split split) {
  switch (split) {
    case Split::Train: return d.train_size;
    case Split::Val: return d.val_size;
    default: return d.test_size;
  }
}

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

// A float tensor entry, converted to contiguous float32. Only its metadata is looked at:
// the caller checks its shape before require_finite reads the values.
torch::Tensor float_entry(const std::string& path, const std::string& key, const torch::Tensor& t) {
  if (!t.is_floating_point())
    throw Error(path + ": entry \"" + key + "\" has dtype " +
                std::string(c10::toString(t.scalar_type())) + ", expected a float tensor");
  return t;
}

torch::Tensor require_finite(const std::string& path, const std::string& key, torch::Tensor t) {
  t = t.to(torch::kFloat32).contiguous();
  const auto bad = torch::logical_not(torch::isfinite(t));
  if (bad.any().item<bool>()) {
    const int64_t row =
        bad.dim() == 0 ? 0 : bad.reshape({t.size(0), -1}).any(1).nonzero()[0][0].item<int64_t>();
    throw Error(path + ": entry \"" + key + "\" has NaN or Inf values (first in row " +
                std::to_string(row) + ")");
  }
  return t;
}

}  // namespace

const char* split_name(Split split) {
  switch (split) {
    case Split::Train: return "train";
    case Split::Val: return "val";
    default: return "test";
  }
}

Split parse_split(const std::string& name) {
  if (name == "train") return Split::Train;
  if (name == "val") return Split::Val;
  if (name == "test") return Split::Test;
  throw ConfigError("split: expected train, val or test, got \"" + name + "\"");
}

Dataset Dataset::to(const torch::Device& device) const {
  Dataset out = *this;
  for (auto& f : out.features) f = f.to(device);
  if (target.defined()) out.target = target.to(device);
  return out;
}

Dataset Dataset::rows(const torch::Tensor& index) const {
  Dataset out;
  out.names = names;
  out.origin = origin;
  for (const auto& f : features) out.features.push_back(f.index_select(0, index));
  if (target.defined()) out.target = target.index_select(0, index);
  for (torch::Tensor Dataset::*part : {&Dataset::unimodal, &Dataset::bimodal, &Dataset::trimodal})
    if ((this->*part).defined()) out.*part = (this->*part).index_select(0, index);
  return out;
}

namespace {
size_t modality_index(const DataConfig& d, const std::string& name) {
  for (size_t m = 0; m < d.modalities.size(); ++m)
    if (d.modalities[m].name == name) return m;
  throw std::logic_error("no modality " + name);  // the config parser checked the names
}

// Generator 1: n samples from generator stream `stream`, drawn in float64 by one
// sequential LibTorch generator; without features when only the target's distribution
// is wanted.
Dataset generate_stream_v1(const DataConfig& d, uint64_t seed, uint64_t stream, int64_t n,
                           bool with_features) {
  const auto& s = d.synthetic;
  const SyntheticStructure st = make_structure(d, seed);
  at::Generator gen = at::detail::createCPUGenerator(mix_seed(seed, stream));
  const size_t M = d.modalities.size();
  const auto f64 = torch::kFloat64;

  torch::Tensor shared = torch::randn({n, s.shared_latent_dim}, gen, f64);
  std::vector<torch::Tensor> unique;
  for (size_t m = 0; m < M; ++m) unique.push_back(torch::randn({n, s.latent_dim}, gen, f64));

  Dataset out;
  for (size_t m = 0; m < M && with_features; ++m) {
    const auto latent = torch::cat({shared, unique[m]}, 1);
    auto x = torch::matmul(latent, st.mixing[m].t());
    x += s.feature_noise * torch::randn({n, d.modalities[m].dim}, gen, f64);
    out.names.push_back(d.modalities[m].name);
    out.features.push_back(x.to(torch::kFloat32));
  }

  if (!s.terms.empty()) {
    // sum over terms of w_S * prod over m in S of (u_m . c_{S,m}): each factor N(0, 1),
    // independent across modalities, so each product has mean 0 and variance 1.
    torch::Tensor y = torch::zeros({n}, f64);
    for (size_t t = 0; t < s.terms.size(); ++t) {
      torch::Tensor product = torch::ones({n}, f64);
      for (size_t k = 0; k < s.terms[t].modalities.size(); ++k)
        product *= torch::mv(unique[modality_index(d, s.terms[t].modalities[k])], st.terms[t][k]);
      y += s.terms[t].weight * product;
    }
    y += s.target_noise * torch::randn({n}, gen, f64);
    out.target = y.to(torch::kFloat32).unsqueeze(1);
    return out;
  }

  // Each part is a sum of independent zero-mean unit-variance terms (unit coefficient
  // vectors on independent N(0, I) latents), divided by sqrt(#terms): variance exactly 1.
  torch::Tensor uni = torch::zeros({n}, f64);
  for (size_t m = 0; m < M; ++m) uni += torch::mv(unique[m], st.unimodal[m]);
  double uni_terms = double(M);
  if (st.shared.defined()) uni += torch::mv(shared, st.shared), uni_terms += 1;
  uni /= std::sqrt(uni_terms);

  torch::Tensor bi = torch::zeros({n}, f64);
  size_t pair = 0;
  for (size_t m = 0; m < M; ++m)
    for (size_t k = m + 1; k < M; ++k, ++pair)
      bi += torch::mv(unique[m], st.bimodal[pair][0]) * torch::mv(unique[k], st.bimodal[pair][1]);
  bi /= std::sqrt(double(pair));

  torch::Tensor tri = torch::zeros({n}, f64);
  if (M >= 3) {
    tri = torch::ones({n}, f64);
    for (size_t m = 0; m < M; ++m) tri *= torch::mv(unique[m], st.trimodal[m]);
  }

  auto y = s.weight_unimodal * uni + s.weight_bimodal * bi + s.weight_trimodal * tri;
  y += s.target_noise * torch::randn({n}, gen, f64);
  out.target = y.to(torch::kFloat32).unsqueeze(1);
  out.unimodal = uni.to(torch::kFloat32);
  out.bimodal = bi.to(torch::kFloat32);
  out.trimodal = tri.to(torch::kFloat32);
  return out;
}

// Generator 2: the same distribution, each row made by its own counter-based generator
// (random.hpp) keyed by (seed, stream, row), straight into float32 tensors, rows split
// among threads. Per row: the shared latents, each modality's latents, the target's
// noise, then each modality's feature noise.
class RowMaker {
 public:
  RowMaker(const DataConfig& d, uint64_t seed) : d_(d), st_(make_structure(d, seed)) {
    const auto& s = d.synthetic;
    z_ = s.shared_latent_dim + s.latent_dim;
    for (const auto& m : st_.mixing) {
      // [z, dim], float32: a row's features are then z contiguous multiply-adds.
      const auto t = m.t().contiguous().to(torch::kFloat32);
      mixing_t_.emplace_back(t.data_ptr<float>(), t.data_ptr<float>() + t.numel());
    }
    auto to_vector = [](const torch::Tensor& v) {
      const auto c = v.contiguous();
      return std::vector<double>(c.data_ptr<double>(), c.data_ptr<double>() + c.numel());
    };
    for (const auto& v : st_.unimodal) unimodal_.push_back(to_vector(v));
    if (st_.shared.defined()) shared_ = to_vector(st_.shared);
    for (const auto& p : st_.bimodal) bimodal_.push_back({to_vector(p[0]), to_vector(p[1])});
    for (const auto& v : st_.trimodal) trimodal_.push_back(to_vector(v));
    for (size_t t = 0; t < s.terms.size(); ++t) {
      terms_.emplace_back();
      for (size_t k = 0; k < s.terms[t].modalities.size(); ++k)
        terms_.back().push_back(
            {modality_index(d, s.terms[t].modalities[k]), to_vector(st_.terms[t][k])});
    }
  }

  // Rows [r0, r0 + n) of stream `stream`.
  Dataset rows(uint64_t seed, uint64_t stream, int64_t r0, int64_t n, bool with_features) const {
    const auto& s = d_.synthetic;
    const size_t M = d_.modalities.size();
    const bool parts = s.terms.empty();
    Dataset out;
    std::vector<float*> x;
    for (size_t m = 0; m < M && with_features; ++m) {
      out.names.push_back(d_.modalities[m].name);
      out.features.push_back(torch::empty({n, d_.modalities[m].dim}, torch::kFloat32));
      x.push_back(out.features.back().data_ptr<float>());
    }
    out.target = torch::empty({n, 1}, torch::kFloat32);
    if (parts)
      for (auto* t : {&out.unimodal, &out.bimodal, &out.trimodal})
        *t = torch::empty({n}, torch::kFloat32);
    float* y = out.target.data_ptr<float>();
    float* uni_out = parts ? out.unimodal.data_ptr<float>() : nullptr;
    float* bi_out = parts ? out.bimodal.data_ptr<float>() : nullptr;
    float* tri_out = parts ? out.trimodal.data_ptr<float>() : nullptr;
    const uint64_t key = stream_key(seed, stream);
    const int64_t S = s.shared_latent_dim, L = s.latent_dim;

    parallel_chunks(n, 256, at::get_num_threads(), [&](int64_t begin, int64_t end) {
      std::vector<double> latent(S + M * L);
      std::vector<float> row_latent(z_);
      for (int64_t i = begin; i < end; ++i) {
        RowRandom g(key, static_cast<uint64_t>(r0 + i));
        for (auto& v : latent) v = g.normal();
        const double* shared = latent.data();
        auto unique = [&](size_t m) { return latent.data() + S + m * L; };
        auto dot = [&](const double* u, const std::vector<double>& c) {
          double sum = 0;
          for (int64_t k = 0; k < L; ++k) sum += u[k] * c[k];
          return sum;
        };
        const double noise = s.target_noise * g.normal();
        double target = 0;
        if (!parts) {
          for (size_t t = 0; t < terms_.size(); ++t) {
            double product = 1;
            for (const auto& [m, c] : terms_[t]) product *= dot(unique(m), c);
            target += s.terms[t].weight * product;
          }
        } else {
          // As generator 1: each part a sum of unit-variance terms over sqrt(#terms).
          double uni = 0, uni_terms = double(M);
          for (size_t m = 0; m < M; ++m) uni += dot(unique(m), unimodal_[m]);
          if (!shared_.empty()) {
            for (int64_t k = 0; k < S; ++k) uni += shared[k] * shared_[k];
            uni_terms += 1;
          }
          uni /= std::sqrt(uni_terms);
          double bi = 0;
          size_t pair = 0;
          for (size_t m = 0; m < M; ++m)
            for (size_t k = m + 1; k < M; ++k, ++pair)
              bi += dot(unique(m), bimodal_[pair][0]) * dot(unique(k), bimodal_[pair][1]);
          bi /= std::sqrt(double(pair));
          double tri = 0;
          if (M >= 3) {
            tri = 1;
            for (size_t m = 0; m < M; ++m) tri *= dot(unique(m), trimodal_[m]);
          }
          target = s.weight_unimodal * uni + s.weight_bimodal * bi + s.weight_trimodal * tri;
          uni_out[i] = static_cast<float>(uni), bi_out[i] = static_cast<float>(bi),
          tri_out[i] = static_cast<float>(tri);
        }
        y[i] = static_cast<float>(target + noise);
        for (size_t m = 0; m < x.size(); ++m) {
          const int64_t dim = d_.modalities[m].dim;
          float* row = x[m] + i * dim;
          g.normals(row, dim, static_cast<float>(s.feature_noise));
          for (int64_t k = 0; k < S; ++k) row_latent[k] = static_cast<float>(shared[k]);
          for (int64_t k = 0; k < L; ++k) row_latent[S + k] = static_cast<float>(unique(m)[k]);
          const float* a = mixing_t_[m].data();
          for (int64_t k = 0; k < z_; ++k) {
            const float v = row_latent[k];
            const float* column = a + k * dim;
            for (int64_t j = 0; j < dim; ++j) row[j] += v * column[j];
          }
        }
      }
    });
    return out;
  }

 private:
  const DataConfig d_;
  SyntheticStructure st_;
  int64_t z_ = 0;
  std::vector<std::vector<float>> mixing_t_;
  std::vector<std::vector<double>> unimodal_, trimodal_;
  std::vector<double> shared_;
  std::vector<std::array<std::vector<double>, 2>> bimodal_;
  std::vector<std::vector<std::pair<size_t, std::vector<double>>>> terms_;
};

// n samples of stream `stream` by the config's generator.
Dataset generate_stream(const DataConfig& d, uint64_t seed, uint64_t stream, int64_t n,
                        bool with_features) {
  if (d.synthetic.generator == 1) return generate_stream_v1(d, seed, stream, n, with_features);
  return RowMaker(d, seed).rows(seed, stream, 0, n, with_features);
}

// The terms the generator sums: data.synthetic.terms, or the ones the weights stand for
// (each part's terms share its weight, divided by sqrt(#terms) so that the part has unit
// variance; the shared latents' unimodal term belongs to no modality subset and is left
// out), each with its coefficient vector per member modality.
struct Term {
  TargetTerm term;
  std::vector<torch::Tensor> coefficients;  // per member modality, [latent]
};

std::vector<Term> effective_terms(const DataConfig& d, const SyntheticStructure& st) {
  const auto& s = d.synthetic;
  std::vector<Term> out;
  if (!s.terms.empty()) {
    for (size_t t = 0; t < s.terms.size(); ++t) out.push_back({s.terms[t], st.terms[t]});
    return out;
  }
  const size_t M = d.modalities.size();
  const double uni_terms = double(M) + (s.shared_latent_dim > 0 ? 1 : 0);
  for (size_t m = 0; m < M && s.weight_unimodal > 0; ++m)
    out.push_back(
        {{{d.modalities[m].name}, s.weight_unimodal / std::sqrt(uni_terms)}, {st.unimodal[m]}});
  const double pairs = double(M * (M - 1) / 2);
  size_t pair = 0;
  for (size_t m = 0; m < M; ++m)
    for (size_t k = m + 1; k < M; ++k, ++pair)
      if (s.weight_bimodal > 0)
        out.push_back(
            {{{d.modalities[m].name, d.modalities[k].name}, s.weight_bimodal / std::sqrt(pairs)},
             {st.bimodal[pair][0], st.bimodal[pair][1]}});
  if (M >= 3 && s.weight_trimodal > 0) {
    Term all{{{}, s.weight_trimodal}, st.trimodal};
    for (const auto& m : d.modalities) all.term.modalities.push_back(m.name);
    out.push_back(all);
  }
  return out;
}

// How much of c . u_m the features of modality m recover: Var E[c . u_m | x_m] for
// x_m = A u_m + noise (A: the mixing columns of m's own latents; u_m ~ N(0, I); noise
// N(0, s^2 I)), which is c' G (G + s^2 I)^-1 c with G = A'A; without noise, c' P c with P
// the projection onto what A does not lose (1 when A has full column rank).
double recovered(const torch::Tensor& mixing, int64_t shared, const torch::Tensor& c,
                 double noise) {
  const auto a = mixing.slice(1, shared);
  const auto g = a.t().matmul(a);
  const auto p =
      noise > 0 ? torch::linalg_solve(g + noise * noise * torch::eye(g.size(0), torch::kFloat64), g)
                : torch::linalg_pinv(a).matmul(a);
  return c.dot(p.matmul(c)).item<double>();
}

constexpr int64_t kCalibrationSize = 1 << 16;
}  // namespace

struct TrainingStream::Impl {
  ExperimentConfig config;
  RowMaker maker;
  torch::Tensor thresholds;  // classification
};

TrainingStream::TrainingStream(const ExperimentConfig& config)
    : impl_(std::make_shared<const Impl>(
          Impl{config, RowMaker(config.data, config.seed),
               config.task == Task::Classification ? class_thresholds(config) : torch::Tensor()})) {
  if (config.data.synthetic.generator < 2)  // parse_config refuses such a config
    throw std::logic_error("TrainingStream: generator 1 cannot stream");
}

TrainingStream::~TrainingStream() = default;

int64_t TrainingStream::rows_per_epoch() const { return impl_->config.data.train_size; }

Dataset TrainingStream::rows(int64_t epoch, int64_t r0, int64_t r1) const {
  Dataset out = impl_->maker.rows(
      impl_->config.seed, streams::kFirstEpoch + static_cast<uint64_t>(epoch), r0, r1 - r0, true);
  if (impl_->thresholds.defined())
    out.target = torch::bucketize(out.target.squeeze(1), impl_->thresholds).to(torch::kInt64);
  out.origin = "synthetic training stream, epoch " + std::to_string(epoch + 1);
  return out;
}

Dataset generate_synthetic(const DataConfig& d, uint64_t seed, Split split) {
  Dataset out = generate_stream(d, seed, streams::kFirstSplit + static_cast<uint64_t>(split),
                                split_size(d, split), true);
  out.origin = std::string("synthetic ") + split_name(split) + " split";
  return out;
}

SyntheticTruth synthetic_truth(const DataConfig& d, uint64_t seed) {
  const auto& s = d.synthetic;
  const SyntheticStructure st = make_structure(d, seed);
  SyntheticTruth truth;
  // A term's part of E[target | features]: the product over its modalities of
  // E[c . u_m | x_m], still a pure interaction, with variance w^2 times the recovered shares.
  std::vector<double> explained;
  double total = 0;
  for (const auto& t : effective_terms(d, st)) {
    double v = t.term.weight * t.term.weight;
    truth.signal_variance += v;
    for (size_t k = 0; k < t.term.modalities.size(); ++k)
      v *= recovered(st.mixing[modality_index(d, t.term.modalities[k])], s.shared_latent_dim,
                     t.coefficients[k], s.feature_noise);
    explained.push_back(v);
    total += v;
    truth.subsets.push_back({t.term.modalities, 0.0});
  }
  for (size_t i = 0; i < explained.size(); ++i)
    truth.subsets[i].share = total > 0 ? explained[i] / total : 0.0;
  if (s.terms.empty() && s.shared_latent_dim > 0)
    truth.signal_variance +=
        s.weight_unimodal * s.weight_unimodal / (double(d.modalities.size()) + 1);
  truth.noise_variance = s.target_noise * s.target_noise;
  truth.best_r2 = total / (truth.signal_variance + truth.noise_variance);
  truth.exact = s.shared_latent_dim == 0;
  if (!truth.exact)
    truth.why_not =
        "data.synthetic.shared_latent_dim is " + std::to_string(s.shared_latent_dim) +
        ": latents shared by every modality make the modalities dependent, and no split of "
        "the target over modality subsets exists";
  return truth;
}

nlohmann::json to_json(const SyntheticTruth& t) {
  nlohmann::json subsets = nlohmann::json::array();
  for (const auto& s : t.subsets)
    subsets.push_back(
        {{"name", subset_name(s.modalities)}, {"modalities", s.modalities}, {"share", s.share}});
  const double total = t.signal_variance + t.noise_variance;
  return {{"exact", t.exact},
          {"why_not", t.exact ? nlohmann::json(nullptr) : nlohmann::json(t.why_not)},
          {"signal_variance", t.signal_variance},
          {"noise_variance", t.noise_variance},
          {"noise_share_of_target", total > 0 ? t.noise_variance / total : 0.0},
          {"best_r2", t.best_r2},
          {"subsets", subsets}};
}

torch::Tensor class_thresholds(const ExperimentConfig& config) {
  const auto y =
      generate_stream(config.data, config.seed, streams::kCalibration, kCalibrationSize, false)
          .target.squeeze(1)
          .to(torch::kFloat64);
  const int64_t k = config.num_classes;
  const auto q = torch::arange(1, k, torch::kFloat64) / static_cast<double>(k);
  return torch::quantile(y, q).to(torch::kFloat32);
}

TargetRule target_rule(const ExperimentConfig& config, bool required) {
  TargetRule rule;
  rule.required = required;
  rule.labels = config.task == Task::Classification;
  rule.num_classes = rule.labels ? config.num_classes : 0;
  return rule;
}

Dataset read_data_file(const std::string& path, const std::vector<ModalityConfig>& modalities,
                       const TargetRule& target) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(path +
                ": no such data file (write one with `mmfusion synth --config CONFIG --split train "
                "--output " +
                path + "`; data/README.md describes the format)");
  return parse_data_file(read_bytes(path), path, modalities, target);
}

namespace {

bool is_npz(const std::string& path) {
  const std::string ext = std::filesystem::path(path).extension().string();
  return ext == ".npz" || ext == ".NPZ";
}

// The named tensors of a torch.save'd dict, each checked to lie inside its storage.
std::map<std::string, torch::Tensor> torch_entries(const std::vector<char>& bytes,
                                                   const std::string& path,
                                                   const std::set<std::string>& wanted,
                                                   std::vector<std::string>& names) {
  const std::string unreadable =
      "not a readable data file (expected what torch.save writes for a dict of tensors, or an .npz archive "
      "named *.npz; the file is truncated, corrupt or of another kind)";
  check_archive_pickles(bytes.data(), bytes.size(), path,
                        unreadable);  // before the unpickler trusts a length
  c10::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) { throw Error(path + ": " + unreadable); }
  if (!value.isGenericDict())
    throw Error(path + ": expected a dict of tensors, found " + value.tagKind());
  // Every tensor's view must lie inside its storage before anything reads a value.
  std::map<std::string, torch::Tensor> entries;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString()) throw Error(path + ": dict keys must be strings");
    const std::string& key = item.key().toStringRef();
    names.push_back(key);
    check_file_tensors(item.value(), path + ": entry \"" + key + "\"");
    if (!wanted.count(key)) continue;  // an entry the config does not use
    if (!item.value().isTensor()) throw Error(path + ": entry \"" + key + "\" is not a tensor");
    entries[key] = item.value().toTensor();
  }
  return entries;
}

std::map<std::string, torch::Tensor> npz_entries(const std::vector<char>& bytes,
                                                 const std::string& path,
                                                 const std::set<std::string>& wanted,
                                                 std::vector<std::string>& names) {
  std::map<std::string, torch::Tensor> entries;
  for (auto& [name, values] : parse_npz(bytes.data(), bytes.size(), path, &wanted, &names))
    entries[name] = values;
  return entries;
}

}  // namespace

// The target entry's name as messages quote it.
const std::string kTarget = std::string("\"") + kTargetEntry + "\"";

Dataset parse_data_file(const std::vector<char>& bytes, const std::string& path,
                        const std::vector<ModalityConfig>& modalities, const TargetRule& rule) {
  std::set<std::string> wanted{kTargetEntry};
  for (const auto& m : modalities) wanted.insert(m.name);
  std::vector<std::string> names;  // every entry of the file, for messages
  const std::map<std::string, torch::Tensor> entries =
      is_npz(path) ? npz_entries(bytes, path, wanted, names)
                   : torch_entries(bytes, path, wanted, names);

  Dataset out;
  out.origin = path;
  int64_t rows = -1;
  std::string rows_from;
  auto check_rows = [&](const std::string& key, int64_t n) {
    if (rows < 0)
      rows = n, rows_from = key;
    else if (n != rows)
      throw Error(path + ": entry \"" + key + "\" has " + std::to_string(n) + " rows but \"" +
                  rows_from + "\" has " + std::to_string(rows));
  };
  // Entries that are neither a configured modality nor the target are left alone: one file
  // can serve configs that use some of its modalities.
  for (const auto& m : modalities) {
    auto it = entries.find(m.name);
    if (it == entries.end())
      throw Error(path + ": missing entry \"" + m.name + "\" (the file has: " + join(names) + ")");
    torch::Tensor t = float_entry(path, m.name, it->second);
    if (t.dim() != 2 || t.size(1) != m.dim)
      throw Error(path + ": entry \"" + m.name + "\" has shape " + c10::str(t.sizes()) +
                  ", expected [N, " + std::to_string(m.dim) + "]");
    check_rows(m.name, t.size(0));
    t = require_finite(path, m.name, t);
    out.names.push_back(m.name);
    out.features.push_back(t);
  }
  auto target = entries.find(kTargetEntry);
  if (target != entries.end() && rule.labels) {
    torch::Tensor t = target->second;
    if (t.is_floating_point() || t.is_complex() || t.scalar_type() == torch::kBool)
      throw Error(path + ": entry " + kTarget + " has dtype " +
                  std::string(c10::toString(t.scalar_type())) +
                  ", expected integer class labels for classification");
    if (t.dim() == 2 && t.size(1) == 1) t = t.squeeze(1);
    if (t.dim() != 1)
      throw Error(path + ": entry " + kTarget + " has shape " + c10::str(t.sizes()) +
                  ", expected [N] class labels");
    check_rows(kTargetEntry, t.size(0));
    t = t.to(torch::kInt64).contiguous();
    check_labels(t, rule.num_classes > 0 ? rule.num_classes : kMaxClasses, path);
    out.target = t;
  } else if (target != entries.end()) {
    torch::Tensor t = float_entry(path, kTargetEntry, target->second);
    if (t.dim() == 1) t = t.unsqueeze(1);
    if (t.dim() != 2 || t.size(1) < 1)
      throw Error(path + ": entry " + kTarget + " has shape " + c10::str(t.sizes()) +
                  ", expected [N] or [N, K]");
    check_rows(kTargetEntry, t.size(0));
    t = require_finite(path, kTargetEntry, t);
    out.target = t;
  } else if (rule.required) {
    throw Error(path + ": missing entry " + kTarget + " (needed for training and evaluation)");
  }
  if (rows == 0) throw Error(path + ": the file holds no rows");
  return out;
}

void check_labels(const torch::Tensor& labels, int64_t num_classes, const std::string& origin) {
  const auto bad = (labels < 0) | (labels >= num_classes);
  if (labels.numel() == 0 || !bad.any().item<bool>()) return;
  const int64_t row = bad.nonzero()[0][0].item<int64_t>();
  throw Error(origin + ": entry " + kTarget + " holds label " +
              std::to_string(labels[row].item<int64_t>()) + " in row " + std::to_string(row) +
              ", outside [0, " + std::to_string(num_classes) + ")");
}

int64_t resolve_num_classes(ExperimentConfig& config, const DataSplits& data) {
  if (config.task != Task::Classification) return 0;
  const bool inferred = config.num_classes == 0;
  if (inferred) {
    const int64_t largest = data.train.target.max().item<int64_t>();
    if (largest < 1)
      throw Error(data.train.origin + ": the training labels are all " + std::to_string(largest) +
                  "; classification needs at least 2 classes");
    config.num_classes = largest + 1;
  }
  for (const Dataset* d : {&data.train, &data.val, &data.test}) {
    try {
      check_labels(d->target, config.num_classes, d->origin);
    } catch (const Error& e) {
      if (!inferred) throw;
      throw Error(std::string(e.what()) + " (num_classes " + std::to_string(config.num_classes) +
                  " is the training split's largest label + 1; set num_classes to allow more)");
    }
  }
  return config.num_classes;
}

namespace {
// torch::pickle_save tags dicts with their TorchScript type (a restore_type_tag global),
// which Python's torch.load refuses under weights_only=True, the default since PyTorch
// 2.6. This writes the same zip layout as torch.save (data.pkl plus one data/<key>
// record per storage) with an untagged dict, so a plain torch.load(path) reads it.
std::vector<char> torch_save_bytes(const c10::IValue& value) {
  std::vector<char> pickled;
  torch::jit::Pickler pickler(
      [&](const char* bytes, size_t n) { pickled.insert(pickled.end(), bytes, bytes + n); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();

  std::vector<char> out;
  caffe2::serialize::PyTorchStreamWriter writer([&](const void* bytes, size_t n) {
    out.insert(out.end(), static_cast<const char*>(bytes), static_cast<const char*>(bytes) + n);
    return n;
  });
  writer.writeRecord("data.pkl", pickled.data(), pickled.size());
  const auto& tensors = pickler.tensorData();
  for (size_t i = 0; i < tensors.size(); ++i) {
    const auto data = torch::jit::getWriteableTensorData(tensors[i]);
    writer.writeRecord("data/" + std::to_string(i), data.data(), data.sizeInBytes());
  }
  writer.writeEndOfFile();
  return out;
}
}  // namespace

void write_data_file(const Dataset& data, const std::string& path) {
  if (is_npz(path)) {
    NamedArrays arrays;
    for (size_t m = 0; m < data.names.size(); ++m)
      arrays.emplace_back(data.names[m], data.features[m].cpu().contiguous());
    if (data.target.defined()) {
      auto t = data.target.cpu().contiguous();
      arrays.emplace_back(kTargetEntry,
                          t.dim() == 2 && t.size(1) == 1 ? t.squeeze(1).contiguous() : t);
    }
    write_npz(path, arrays);
    return;
  }
  c10::impl::GenericDict dict(c10::StringType::get(), c10::TensorType::get());
  for (size_t m = 0; m < data.names.size(); ++m)
    dict.insert(data.names[m], data.features[m].cpu().contiguous());
  if (data.target.defined()) {
    auto t = data.target.cpu().contiguous();
    dict.insert(kTargetEntry, t.dim() == 2 && t.size(1) == 1 ? t.squeeze(1).contiguous() : t);
  }
  const std::vector<char> bytes = torch_save_bytes(c10::IValue(dict));
  atomic_write(path, [&](const std::string& tmp) {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.flush();
    if (!out) throw Error(path + ": cannot write the data file");
  });
}

namespace {
// Rows of `all` for one split, when val/test are fractions of one file: a permutation
// seeded from the config's seed, val first, then test, the rest for training.
Dataset fraction_split(const ExperimentConfig& config, const Dataset& all, Split split) {
  const DataConfig& d = config.data;
  const int64_t n = all.size();
  const int64_t n_val =
      d.val_path.empty() ? static_cast<int64_t>(std::llround(n * d.val_fraction)) : 0;
  const int64_t n_test =
      d.test_path.empty() ? static_cast<int64_t>(std::llround(n * d.test_fraction)) : 0;
  if ((d.val_path.empty() && n_val < 1) || (d.test_path.empty() && n_test < 1) ||
      n - n_val - n_test < 1)
    throw Error(d.path + ": " + std::to_string(n) +
                " rows are too few to split into train/val/test by the configured fractions");
  at::Generator gen = at::detail::createCPUGenerator(mix_seed(config.seed, streams::kFileSplit));
  const auto perm = torch::randperm(n, gen, torch::kInt64);
  Dataset out;
  switch (split) {
    case Split::Val: out = all.rows(perm.slice(0, 0, n_val)); break;
    case Split::Test: out = all.rows(perm.slice(0, n_val, n_val + n_test)); break;
    default: out = all.rows(perm.slice(0, n_val + n_test, n));
  }
  out.origin = all.origin + " (" + split_name(split) + " split)";
  return out;
}

Dataset file_split(const ExperimentConfig& config, Split split, const Dataset* all) {
  const DataConfig& d = config.data;
  const std::string& own = split == Split::Val    ? d.val_path
                           : split == Split::Test ? d.test_path
                                                  : "";
  if (!own.empty()) return read_data_file(own, d.modalities, target_rule(config, true));
  if (all) return fraction_split(config, *all, split);
  return fraction_split(config, read_data_file(d.path, d.modalities, target_rule(config, true)),
                        split);
}
}  // namespace

namespace {
// What a streaming config shows as its training split: the stream's first rows.
Dataset stream_sample(const ExperimentConfig& config) {
  return TrainingStream(config).rows(0, 0, std::min(config.data.train_size, kStreamSampleRows));
}

Dataset synthetic_split(const ExperimentConfig& config, Split split,
                        const torch::Tensor& thresholds) {
  Dataset d = generate_synthetic(config.data, config.seed, split);
  if (thresholds.defined())
    d.target = torch::bucketize(d.target.squeeze(1), thresholds).to(torch::kInt64);
  return d;
}
}  // namespace

Dataset load_split(const ExperimentConfig& config, Split split) {
  if (config.data.source == DataSource::Synthetic && config.data.synthetic.stream &&
      split == Split::Train)
    return stream_sample(config);
  if (config.data.source == DataSource::Synthetic)
    return synthetic_split(
        config, split,
        config.task == Task::Classification ? class_thresholds(config) : torch::Tensor());
  return file_split(config, split, nullptr);
}

DataSplits load_splits(const ExperimentConfig& config) {
  if (config.data.source == DataSource::Synthetic) {
    const auto thresholds =
        config.task == Task::Classification ? class_thresholds(config) : torch::Tensor();
    Dataset train = config.data.synthetic.stream
                        ? stream_sample(config)
                        : synthetic_split(config, Split::Train, thresholds);
    return {std::move(train), synthetic_split(config, Split::Val, thresholds),
            synthetic_split(config, Split::Test, thresholds)};
  }
  const Dataset all =
      read_data_file(config.data.path, config.data.modalities, target_rule(config, true));
  return {file_split(config, Split::Train, &all), file_split(config, Split::Val, &all),
          file_split(config, Split::Test, &all)};
}

}  // namespace mmfusion
