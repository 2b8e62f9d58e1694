#include "mmfusion/data/synthetic.hpp"

#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <set>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/parallel.hpp"
#include "mmfusion/base/random.hpp"
#include "mmfusion/data/sequence.hpp"

namespace mmfusion {
namespace {

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
  // per data.synthetic.terms entry, per modality in it: [latent]
  std::vector<std::vector<torch::Tensor>> terms;
};

SyntheticStructure make_structure(const DataConfig& d, uint64_t seed) {
  const auto& s = d.synthetic;
  at::Generator gen = at::detail::createCPUGenerator(stream_seed(seed, streams::kStructure));
  const int64_t z = s.shared_latent_dim + s.latent_dim;
  const size_t M = d.modalities.size();
  SyntheticStructure st;
  for (const auto& m : d.modalities)
    st.mixing.push_back(torch::randn({m.dim, z}, gen, torch::kFloat64) / std::sqrt(double(z)));
  // A modality outside shared_by does not see the shared latents (its draws stay the
  // same, so that shared_by changes nothing else).
  if (!s.shared_by.empty())
    for (size_t m = 0; m < d.modalities.size(); ++m)
      if (std::find(s.shared_by.begin(), s.shared_by.end(), d.modalities[m].name) ==
          s.shared_by.end())
        st.mixing[m].slice(1, 0, s.shared_latent_dim).zero_();
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

}  // namespace

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
  at::Generator gen = at::detail::createCPUGenerator(stream_seed(seed, stream));
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
    if (s.shared_weight > 0) y += s.shared_weight * torch::mv(shared, st.shared);
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
          if (s.shared_weight > 0) {
            double linear = 0;
            for (int64_t k = 0; k < S; ++k) linear += shared[k] * shared_[k];
            target += s.shared_weight * linear;
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

// The config as the generator sees it: every modality it draws.
DataConfig generator_view(const DataConfig& d) {
  DataConfig g = d;
  g.modalities = generator_modalities(d);
  g.synthetic.modalities.clear();
  return g;
}

// The modalities of data.modalities, in its order, out of all the generator drew.
Dataset keep_modalities(const DataConfig& d, Dataset all) {
  bool same = all.names.size() == d.modalities.size();
  for (size_t m = 0; same && m < all.names.size(); ++m) same = all.names[m] == d.modalities[m].name;
  if (same) return all;
  Dataset out = all;
  out.names.clear(), out.features.clear();
  for (const auto& m : d.modalities) {
    const auto it = std::find(all.names.begin(), all.names.end(), m.name);
    out.names.push_back(m.name);
    out.features.push_back(all.features[it - all.names.begin()]);
  }
  return out;
}

// The random stream of the lengths of stream `stream`'s sequence rows: apart from every
// stream a generator draws its rows from, so that vector modalities keep their rows.
constexpr uint64_t kLengthsStreams = uint64_t(1) << 32;

// A sequence modality's rows (sequence.hpp) from the vectors x [n, D] drawn for rows
// [r0, r0 + n): row i's length L_i is uniform in [min_len, max_len], from its own
// counter-based generator; step t < L_i holds the first D - round(temporal * D) features
// as drawn and the others times sqrt(2) cos(2 pi t / L_i). The pattern sums to zero over
// the L_i >= 2 valid steps, so a mean over them cancels the temporal features; step 0 holds
// them times sqrt(2), so the sequence keeps everything x holds (the truth stays x's).
// The fewest steps of a synthetic sequence row, and a row's length from its generator.
int64_t min_steps(const ModalityConfig& m, const SyntheticConfig& s) {
  return s.min_len > 0 ? s.min_len : std::max<int64_t>(2, m.max_len / 2);
}
int64_t draw_length(RowRandom& g, int64_t lo, int64_t T) {
  return std::min(T, lo + static_cast<int64_t>(g.uniform() * double(T - lo + 1)));
}

torch::Tensor sequence_rows(const ModalityConfig& m, const SyntheticConfig& s,
                            const torch::Tensor& x, uint64_t seed, uint64_t stream, int64_t r0) {
  const int64_t n = x.size(0), D = m.dim, T = m.max_len;
  const int64_t lo = min_steps(m, s);
  const int64_t temporal = std::llround(s.temporal * double(D));
  const uint64_t key = stream_key(seed, stream + kLengthsStreams);
  auto lengths = torch::empty({n}, torch::kInt64);
  auto pattern = torch::zeros({n, T}, torch::kFloat32);
  auto* len = lengths.data_ptr<int64_t>();
  auto* p = pattern.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    RowRandom g(key, static_cast<uint64_t>(r0 + i));
    len[i] = draw_length(g, lo, T);
    for (int64_t t = 0; t < len[i]; ++t)
      p[i * T + t] = static_cast<float>(std::sqrt(2.0) * std::cos(2 * M_PI * double(t) / double(len[i])));
  }
  auto steps = x.unsqueeze(1).expand({n, T, D}).clone();
  if (temporal > 0)
    steps.slice(2, D - temporal).mul_(pattern.unsqueeze(2));
  return sequence::pack(steps, lengths);
}

// data.synthetic.moment's rows (docs/data.md): apart from every other stream.
constexpr uint64_t kMomentStreams = uint64_t(2) << 32;

// Moment rows [r0, r0 + n) of stream `stream`: the marker's and the content's rows
// (sequence.hpp; undefined without features) and the target [n, 1]. Row i's length L is
// the one sequence_rows draws for both (they have the same max_len); its moment t* is
// uniform over the L steps. The marker's steps are feature noise, and step t* adds
// sqrt(D_marker) u; the content's steps are b_t ~ N(0, I) plus feature noise; the target
// is sqrt(L / (L - 1)) (c . b_t* - mean_t c . b_t) plus the target's noise (u, c fixed
// unit vectors). Given L, c . b_t* - the mean has variance (L - 1) / L, so the first part
// has unit variance; it has mean 0 given the marker (the content is independent of it)
// and given the content (t* is uniform over its steps): neither alone tells anything.
struct MomentRows {
  torch::Tensor marker, content, target;
};
MomentRows moment_rows(const DataConfig& d, uint64_t seed, uint64_t stream, int64_t r0, int64_t n,
                       bool with_features) {
  const auto& s = d.synthetic;
  const ModalityConfig& a = d.modalities[modality_index(d, s.moment.marker)];
  const ModalityConfig& b = d.modalities[modality_index(d, s.moment.content)];
  at::Generator structure = at::detail::createCPUGenerator(stream_seed(seed, kMomentStreams));
  const auto u_t = (unit_vector(a.dim, structure) * std::sqrt(double(a.dim))).to(torch::kFloat32);
  const auto c_t = unit_vector(b.dim, structure);
  const float* u = u_t.data_ptr<float>();
  const double* c = c_t.data_ptr<double>();
  const int64_t T = a.max_len, lo = min_steps(a, s), Da = a.dim, Db = b.dim;
  const uint64_t length_key = stream_key(seed, stream + kLengthsStreams);
  const uint64_t key = stream_key(seed, stream + kMomentStreams);
  MomentRows out;
  out.target = torch::empty({n, 1}, torch::kFloat32);
  auto lengths = torch::empty({n}, torch::kInt64);
  torch::Tensor marker, content;
  if (with_features) {
    marker = torch::zeros({n, T, Da}, torch::kFloat32);
    content = torch::zeros({n, T, Db}, torch::kFloat32);
  }
  float* y = out.target.data_ptr<float>();
  int64_t* len = lengths.data_ptr<int64_t>();
  const float noise = static_cast<float>(s.feature_noise);
  parallel_chunks(n, 64, at::get_num_threads(), [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(with_features ? 0 : T * Db), step_noise(Db);
    std::vector<double> projection(T);
    for (int64_t i = begin; i < end; ++i) {
      RowRandom lg(length_key, static_cast<uint64_t>(r0 + i));
      const int64_t L = draw_length(lg, lo, T);
      len[i] = L;
      RowRandom g(key, static_cast<uint64_t>(r0 + i));
      const int64_t moment = std::min(L - 1, static_cast<int64_t>(g.uniform() * double(L)));
      const double target_noise = s.target_noise * g.normal();
      float* steps = with_features ? content.data_ptr<float>() + i * T * Db : scratch.data();
      double mean = 0;
      for (int64_t t = 0; t < L; ++t) {
        g.normals(steps + t * Db, Db, 1.0f);
        double p = 0;
        for (int64_t k = 0; k < Db; ++k) p += c[k] * double(steps[t * Db + k]);
        projection[t] = p;
        mean += p / double(L);
      }
      y[i] = static_cast<float>(std::sqrt(double(L) / double(L - 1)) * (projection[moment] - mean) +
                                target_noise);
      if (!with_features) continue;
      for (int64_t t = 0; t < L; ++t) {
        g.normals(step_noise.data(), Db, noise);
        for (int64_t k = 0; k < Db; ++k) steps[t * Db + k] += step_noise[k];
      }
      float* m = marker.data_ptr<float>() + i * T * Da;
      g.normals(m, L * Da, noise);
      for (int64_t k = 0; k < Da; ++k) m[moment * Da + k] += u[k];
    }
  });
  if (with_features) {
    out.marker = sequence::pack(marker, lengths);
    out.content = sequence::pack(content, lengths);
  }
  return out;
}

// The moment's rows in place of the marker's, the content's and the target (the weights'
// parts have no meaning then).
void put_moment(const DataConfig& d, Dataset& all, uint64_t seed, uint64_t stream, int64_t r0,
                int64_t n, bool with_features) {
  MomentRows rows = moment_rows(d, seed, stream, r0, n, with_features);
  all.target = rows.target;
  all.unimodal = all.bimodal = all.trimodal = torch::Tensor();
  if (!with_features) return;
  all.features[modality_index(d, d.synthetic.moment.marker)] = rows.marker;
  all.features[modality_index(d, d.synthetic.moment.content)] = rows.content;
}

// n samples of stream `stream` by the config's generator, with data.modalities' features.
Dataset generate_stream(const DataConfig& d, uint64_t seed, uint64_t stream, int64_t n,
                        bool with_features) {
  const DataConfig g = generator_view(d);
  Dataset all = g.synthetic.generator == 1
                    ? generate_stream_v1(g, seed, stream, n, with_features)
                    : RowMaker(g, seed).rows(seed, stream, 0, n, with_features);
  for (size_t m = 0; m < all.features.size() && with_features; ++m)
    if (g.modalities[m].sequence)
      all.features[m] = sequence_rows(g.modalities[m], g.synthetic, all.features[m], seed, stream, 0);
  if (g.synthetic.moment.enabled()) put_moment(g, all, seed, stream, 0, n, with_features);
  return with_features ? keep_modalities(d, std::move(all)) : all;
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
          Impl{config, RowMaker(generator_view(config.data), config.seed),
               config.task == Task::Classification ? class_thresholds(config) : torch::Tensor()})) {
  if (config.data.synthetic.generator < 2)  // parse_config refuses such a config
    throw std::logic_error("TrainingStream: generator 1 cannot stream");
}

TrainingStream::~TrainingStream() = default;

int64_t TrainingStream::rows_per_epoch() const { return impl_->config.data.train_size; }

Dataset TrainingStream::rows(int64_t epoch, int64_t r0, int64_t r1) const {
  const uint64_t stream = streams::kFirstEpoch + static_cast<uint64_t>(epoch);
  Dataset all = impl_->maker.rows(impl_->config.seed, stream, r0, r1 - r0, true);
  const auto g = generator_modalities(impl_->config.data);
  for (size_t m = 0; m < all.features.size(); ++m)
    if (g[m].sequence)
      all.features[m] = sequence_rows(g[m], impl_->config.data.synthetic, all.features[m],
                                      impl_->config.seed, stream, r0);
  if (impl_->config.data.synthetic.moment.enabled())
    put_moment(generator_view(impl_->config.data), all, impl_->config.seed, stream, r0, r1 - r0,
               true);
  Dataset out = keep_modalities(impl_->config.data, std::move(all));
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

namespace {
constexpr size_t kMaxTruthModalities = 12;  // 4095 subsets

// Var E[b . z | features of the modalities in `members`] for z = [s; u_1; ...; u_M] ~
// N(0, I), by Gaussian conditioning: x_m = B_m z + noise e_m, so the posterior precision
// is I + sum_m B_m' B_m / noise^2 and the explained variance b'b - b' precision^-1 b;
// without noise, b' P b with P the projection onto the rows of the stacked B_m.
double linear_explained(const std::vector<torch::Tensor>& blocks,
                        const std::vector<size_t>& members, const torch::Tensor& b, double noise) {
  const int64_t Z = b.size(0);
  if (members.empty()) return 0.0;
  if (noise > 0) {
    auto precision = torch::eye(Z, torch::kFloat64);
    for (size_t m : members) precision += blocks[m].t().matmul(blocks[m]) / (noise * noise);
    const auto solved = torch::linalg_solve(precision, b.unsqueeze(1)).squeeze(1);
    return b.dot(b).item<double>() - b.dot(solved).item<double>();
  }
  std::vector<torch::Tensor> rows;
  for (size_t m : members) rows.push_back(blocks[m]);
  const auto stacked = torch::cat(rows, 0);
  const auto projected = torch::linalg_pinv(stacked).matmul(stacked.matmul(b));
  return b.dot(projected).item<double>();
}
}  // namespace

namespace {
// data.synthetic.moment's truth. With the marked step found (its sqrt(D) against feature
// noise s per feature), E[target | marker, content] is sqrt(L / (L - 1)) times c . x_t* /
// (1 + s^2) less its mean over the steps, of variance 1 / (1 + s^2) against the target's
// 1 + target_noise^2; given either alone it is 0 (moment_rows), so the pair holds all of
// it and a subset reaches the best R^2 exactly when it holds both. The two share the
// row's length, which tells nothing about the target.
SyntheticTruth moment_truth(const DataConfig& kept) {
  const auto& s = kept.synthetic;
  SyntheticTruth truth;
  truth.signal_variance = 1;
  truth.noise_variance = s.target_noise * s.target_noise;
  truth.exact = true;
  const double explained = 1 / (1 + s.feature_noise * s.feature_noise);
  const double variance = truth.signal_variance + truth.noise_variance;
  const size_t M = kept.modalities.size();
  uint32_t pair = 0;
  std::vector<std::string> members;
  for (size_t m = 0; m < M; ++m)
    if (kept.modalities[m].name == s.moment.marker || kept.modalities[m].name == s.moment.content) {
      if (m < kMaxTruthModalities) pair |= 1u << m;
      members.push_back(kept.modalities[m].name);
    }
  const bool both = members.size() == 2;
  if (both) truth.subsets.push_back({members, 1.0});
  truth.best_r2 = both ? explained / variance : 0.0;
  if (M > kMaxTruthModalities) {
    truth.r2_why_not = "more than " + std::to_string(kMaxTruthModalities) + " modalities";
    return truth;
  }
  truth.r2_exact = true;
  for (uint32_t mask = 1; mask < (1u << M); ++mask) {
    SyntheticTruth::SubsetR2 entry;
    for (size_t m = 0; m < M; ++m)
      if (mask & (1u << m)) entry.modalities.push_back(kept.modalities[m].name);
    entry.r2 = both && (mask & pair) == pair ? truth.best_r2 : 0.0;
    truth.r2.push_back(entry);
  }
  return truth;
}
}  // namespace

SyntheticTruth synthetic_truth(const DataConfig& kept, uint64_t seed) {
  if (kept.synthetic.moment.enabled()) return moment_truth(kept);
  const DataConfig d = generator_view(kept);
  const auto& s = d.synthetic;
  const SyntheticStructure st = make_structure(d, seed);
  const size_t G = d.modalities.size();
  auto is_kept = [&](const std::string& name) {
    return std::any_of(kept.modalities.begin(), kept.modalities.end(),
                       [&](const ModalityConfig& m) { return m.name == name; });
  };
  SyntheticTruth truth;
  const bool too_many = kept.modalities.size() > kMaxTruthModalities;
  // A term's part of E[target | features]: the product over its modalities of
  // E[c . u_m | x_m], still a pure interaction, with variance w^2 times the recovered shares.
  // Only the terms within the kept modalities are seen.
  std::vector<double> explained;
  std::vector<uint32_t> term_masks;  // over the kept modalities
  double total = 0;
  bool linear = true;
  const std::vector<Term> terms = effective_terms(d, st);
  for (const auto& t : terms) {
    double v = t.term.weight * t.term.weight;
    truth.signal_variance += v;
    linear = linear && t.term.modalities.size() == 1;
    if (!std::all_of(t.term.modalities.begin(), t.term.modalities.end(), is_kept)) continue;
    uint32_t mask = 0;
    for (size_t k = 0; k < t.term.modalities.size(); ++k) {
      v *= recovered(st.mixing[modality_index(d, t.term.modalities[k])], s.shared_latent_dim,
                     t.coefficients[k], s.feature_noise);
      for (size_t m = 0; m < kept.modalities.size() && !too_many; ++m)
        if (kept.modalities[m].name == t.term.modalities[k]) mask |= 1u << m;
    }
    explained.push_back(v);
    term_masks.push_back(mask);
    total += v;
    truth.subsets.push_back({t.term.modalities, 0.0});
  }
  for (size_t i = 0; i < explained.size(); ++i)
    truth.subsets[i].share = total > 0 ? explained[i] / total : 0.0;
  // The shared latents' linear term: the weights' unimodal part's, or shared_weight's.
  double shared_weight = 0;
  if (s.shared_latent_dim > 0)
    shared_weight =
        s.terms.empty() ? s.weight_unimodal / std::sqrt(double(G) + 1) : s.shared_weight;
  truth.signal_variance += shared_weight * shared_weight;
  truth.noise_variance = s.target_noise * s.target_noise;
  const double variance = truth.signal_variance + truth.noise_variance;
  truth.best_r2 = total / variance;
  truth.exact = s.shared_latent_dim == 0;
  if (!truth.exact) {
    // Who sees the shared latents: every modality, or the ones shared_by names.
    std::string who = "every modality make the modalities";
    if (!s.shared_by.empty() && s.shared_by.size() < G) {
      who.clear();
      for (size_t i = 0; i < s.shared_by.size(); ++i)
        who += (i == 0 ? "" : i + 1 == s.shared_by.size() ? " and " : ", ") + s.shared_by[i];
      who += " (data.synthetic.shared_by) make " +
             std::string(s.shared_by.size() == 1 ? "it" : "them");
    }
    truth.why_not = "data.synthetic.shared_latent_dim is " + std::to_string(s.shared_latent_dim) +
                    ": latents shared by " + who +
                    " dependent, and no split of the target over modality subsets exists";
  }

  // R^2 of E[target | X_S] for every subset S of the kept modalities.
  const size_t M = kept.modalities.size();
  if (too_many) {
    truth.r2_why_not = "more than " + std::to_string(kMaxTruthModalities) + " modalities";
    return truth;
  }
  std::vector<size_t> generator_index;
  for (const auto& m : kept.modalities) generator_index.push_back(modality_index(d, m.name));
  auto members_of = [&](uint32_t mask) {
    std::vector<size_t> out;
    for (size_t m = 0; m < M; ++m)
      if (mask & (1u << m)) out.push_back(m);
    return out;
  };
  std::vector<double> r2(size_t(1) << M, 0.0);
  if (s.shared_latent_dim == 0) {
    // Independent modalities: E[target | X_S] is the sum of the terms within S.
    for (uint32_t mask = 1; mask < r2.size(); ++mask)
      for (size_t t = 0; t < term_masks.size(); ++t)
        if ((term_masks[t] & mask) == term_masks[t]) r2[mask] += explained[t] / variance;
  } else if (linear) {
    // A linear target of Gaussian latents: Gaussian conditioning, at any dependence.
    const int64_t S = s.shared_latent_dim, L = s.latent_dim, Z = S + int64_t(G) * L;
    std::vector<torch::Tensor> blocks;
    for (size_t m = 0; m < G; ++m) {
      auto block = torch::zeros({d.modalities[m].dim, Z}, torch::kFloat64);
      block.slice(1, 0, S).copy_(st.mixing[m].slice(1, 0, S));
      block.slice(1, S + int64_t(m) * L, S + int64_t(m + 1) * L).copy_(st.mixing[m].slice(1, S));
      blocks.push_back(block);
    }
    auto b = torch::zeros({Z}, torch::kFloat64);
    for (const auto& t : terms) {
      const int64_t m = int64_t(modality_index(d, t.term.modalities.front()));
      b.slice(0, S + m * L, S + (m + 1) * L) += t.term.weight * t.coefficients.front();
    }
    if (shared_weight > 0) b.slice(0, 0, S) += shared_weight * st.shared;
    for (uint32_t mask = 1; mask < r2.size(); ++mask) {
      std::vector<size_t> members;
      for (size_t m : members_of(mask)) members.push_back(generator_index[m]);
      r2[mask] = linear_explained(blocks, members, b, s.feature_noise) / variance;
    }
  } else {
    truth.r2_why_not =
        "the modalities share latents (data.synthetic.shared_latent_dim " +
        std::to_string(s.shared_latent_dim) +
        ") and the target has interaction terms: E[target | X_S] has no closed form here (it has "
        "for a linear target, or for independent modalities)";
    return truth;
  }
  truth.r2_exact = true;
  for (uint32_t mask = 1; mask < r2.size(); ++mask) {
    SyntheticTruth::SubsetR2 entry;
    for (size_t m : members_of(mask)) entry.modalities.push_back(kept.modalities[m].name);
    entry.r2 = r2[mask];
    truth.r2.push_back(entry);
  }
  truth.best_r2 = r2.back();
  return truth;
}

nlohmann::json to_json(const SyntheticTruth& t) {
  nlohmann::json subsets = nlohmann::json::array();
  for (const auto& s : t.subsets)
    subsets.push_back(
        {{"name", subset_name(s.modalities)}, {"modalities", s.modalities}, {"share", s.share}});
  const double total = t.signal_variance + t.noise_variance;
  nlohmann::json r2 = nlohmann::json::array();
  for (const auto& s : t.r2)
    r2.push_back({{"name", subset_name(s.modalities)}, {"modalities", s.modalities}, {"r2", s.r2}});
  return {{"exact", t.exact},
          {"why_not", t.exact ? nlohmann::json(nullptr) : nlohmann::json(t.why_not)},
          {"signal_variance", t.signal_variance},
          {"noise_variance", t.noise_variance},
          {"noise_share_of_target", total > 0 ? t.noise_variance / total : 0.0},
          {"best_r2", t.best_r2},
          {"subsets", subsets},
          {"r2", t.r2_exact ? r2 : nlohmann::json(nullptr)},
          {"r2_why_not", t.r2_exact ? nlohmann::json(nullptr) : nlohmann::json(t.r2_why_not)}};
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

}  // namespace mmfusion
