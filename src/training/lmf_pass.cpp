#include "mmfusion/training/lmf_pass.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>

#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>

#include "mmfusion/models/dropout.hpp"
#include "mmfusion/base/simd.hpp"

namespace mmfusion {

using torch::Tensor;

namespace {

// Rows [0, rows) of a [rows, cols] pass, in parallel chunks of at least ~32k elements:
// small batches run on the calling thread, with no task overhead.
constexpr int64_t kChunkElements = 32768;

int64_t rows_per_chunk(int64_t cols) {
  return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, cols));
}

template <typename F>
void for_rows(int64_t rows, int64_t cols, const F& f) {
  at::parallel_for(0, rows, rows_per_chunk(cols), f);
}

// A reduction over rows splits them into blocks fixed by the sizes alone, never by the
// thread count, and adds the blocks' sums in block order: the result is then the same
// bits on any number of threads (docs/performance.md, "Thread counts and results").
struct RowBlocks {
  int64_t rows, size, count;
  RowBlocks(int64_t rows_, int64_t cols)
      : rows(rows_), size(rows_per_chunk(cols)), count((rows_ + size - 1) / size) {}
  int64_t begin(int64_t k) const { return k * size; }
  int64_t end(int64_t k) const { return std::min(rows, (k + 1) * size); }
};

// out[j] += sum_b g[b, j] over a contiguous [rows, cols] matrix (a bias gradient); large
// ones in parallel, a block's sum per slot, then the slots in order.
void add_column_sums(const float* g, int64_t rows, int64_t cols, float* out) {
  auto sum_rows = [&](int64_t b0, int64_t b1, float* dst) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* row = g + b * cols;
      simd::add_to(dst, row, cols);
    }
  };
  const RowBlocks blocks(rows, cols);
  if (blocks.count <= 1) return sum_rows(0, rows, out);
  std::vector<float> partial(blocks.count * cols, 0.0f);
  at::parallel_for(0, blocks.count, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) sum_rows(blocks.begin(k), blocks.end(k), &partial[k * cols]);
  });
  for (int64_t k = 0; k < blocks.count; ++k) simd::add_to(out, &partial[k * cols], cols);
}

// The gradient slot of a parameter, created as zeros if the optimizer left it empty.
Tensor& grad_of(Tensor& param) {
  auto& g = param.mutable_grad();
  if (!g.defined()) g = torch::zeros_like(param);
  return g;
}

}  // namespace

// The hand-written LMF step. Notation (docs/performance.md): per modality m an encoder
// of layers z = x W^T + b, h = relu(z) * mask; the factor as a (d+1, R*O) matrix
// V_m[i, r*O + j] = W_m[r, i, j]; F_m = h_m V_m[1:] + V_m[0]; P = prod_m F_m;
// y[:, j] = sum_r w_r P[:, r*O + j] + bias[j]; out = y Wh^T + bh; then the loss.
class LMFPass::Impl {
  struct Buffers;

 public:
  Impl(LMFDescription description, const LossSpec& loss)
      : desc_(std::move(description)), loss_(loss) {
    rank_ = desc_.rank;
    fused_ = desc_.fused_dim;
    for (size_t m = 0; m < desc_.encoders.size(); ++m) {
      const auto& encoder = desc_.encoders[m];
      Modality mod;
      mod.dropout = encoder.dropout;
      for (const auto& layer : encoder.layers)
        mod.layers.push_back(
            {layer.weight, layer.bias, {}, layer.weight.size(1), layer.weight.size(0)});
      mod.factor = desc_.factors[m];
      mod.layout = desc_.factor_layouts[m];
      mod.d = mod.factor.size(1) - 1;
      mod.flat = torch::empty({mod.d + 1, rank_ * fused_});
      mod.dflat = torch::empty({mod.d + 1, rank_ * fused_});
      mod.flat_rows = mod.flat.slice(0, 1);
      mod.flat_rows_t = mod.flat_rows.t();
      mod.dflat_rows = mod.dflat.slice(0, 1);
      modalities_.push_back(std::move(mod));
    }
    output_ = desc_.output_dim;
  }

  double train_step(const std::vector<Tensor>& inputs, const Tensor& target, double weight,
                    bool training) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;  // plain kernels, no graph
    Buffers& buf = prepare(inputs);
    forward(inputs, buf, training);
    const double loss = loss_and_gradient(buf, target, weight);
    backward(inputs, buf);
    return loss;
  }

  Tensor infer(const std::vector<Tensor>& inputs) {
    std::lock_guard<std::mutex> lock(mutex_);
    Tensor out;
    {
      at::AutoDispatchBelowADInplaceOrView below_autograd;
      Buffers& buf = prepare(inputs);
      forward(inputs, buf, /*training=*/false);
      out = buf.out;
    }
    return out.clone();
  }

 private:
  // Checks the inputs, follows the parameters, and returns the buffers for the batch.
  Buffers& prepare(const std::vector<Tensor>& inputs) {
    TORCH_CHECK(inputs.size() == modalities_.size(), "expected ", modalities_.size(),
                " modality inputs, got ", inputs.size());
    const int64_t batch = inputs.front().size(0);
    for (size_t m = 0; m < inputs.size(); ++m)
      TORCH_CHECK(inputs[m].dim() == 2 && inputs[m].size(0) == batch, "modality input ", m,
                  ": expected [", batch, ", dim], got ", inputs[m].sizes());
    refresh_views();
    return buffers_for(batch);
  }

  struct Layer {
    Tensor weight, bias;  // parameters, (out, in) and (out)
    Tensor weight_t;      // weight.t(), a view made once
    int64_t in, out;
  };
  struct Modality {
    std::vector<Layer> layers;
    double dropout = 0;
    Tensor factor;        // parameter (R, d+1, O)
    FactorLayout layout;  // how it is read as V_m
    int64_t d = 0;
    Tensor flat, flat_rows, flat_rows_t;  // V_m (d+1, R*O), V_m[1:], V_m[1:]^T
    Tensor dflat, dflat_rows;             // dL/dV_m and its rows 1..d
  };
  // Activations and gradients for one batch size, kept between steps.
  struct Buffers {
    int64_t batch = 0;
    std::vector<std::vector<Tensor>> h, mult, grad;  // per modality, per layer: (B, out)
    std::vector<std::vector<Tensor>> grad_t, h_t;    // their transposes (views)
    std::vector<Tensor> f, gf;                       // F_m and dL/dF_m, (B, R*O)
    Tensor product, y, gy, out, gout, gout_t;
  };

  // Views of parameters must follow the parameters if their storage is replaced.
  void refresh_views() {
    for (auto& mod : modalities_)
      for (auto& layer : mod.layers)
        if (!layer.weight_t.defined() || layer.weight_t.data_ptr() != layer.weight.data_ptr())
          layer.weight_t = layer.weight.t();
    if (desc_.has_head() &&
        (!head_t_.defined() || head_t_.data_ptr() != desc_.head_weight.data_ptr()))
      head_t_ = desc_.head_weight.t();
  }

  Buffers& buffers_for(int64_t batch) {
    for (auto& b : cache_)
      if (b->batch == batch) return *b;
    if (cache_.size() >= 4)
      cache_.erase(cache_.begin());  // a full and a last partial batch, typically
    auto buf = std::make_unique<Buffers>();
    buf->batch = batch;
    const int64_t ro = rank_ * fused_;
    for (const auto& mod : modalities_) {
      std::vector<Tensor> h, mult, grad, grad_t, h_t;
      for (const auto& layer : mod.layers) {
        h.push_back(torch::empty({batch, layer.out}));
        mult.push_back(torch::empty({batch, layer.out}));
        grad.push_back(torch::empty({batch, layer.out}));
        grad_t.push_back(grad.back().t());
        h_t.push_back(h.back().t());
      }
      buf->h.push_back(h), buf->mult.push_back(mult), buf->grad.push_back(grad);
      buf->grad_t.push_back(grad_t), buf->h_t.push_back(h_t);
      buf->f.push_back(torch::empty({batch, ro}));
      buf->gf.push_back(torch::empty({batch, ro}));
    }
    buf->product = torch::empty({batch, ro});
    buf->y = torch::empty({batch, fused_});
    buf->gy = torch::empty({batch, fused_});
    buf->out = desc_.has_head() ? torch::empty({batch, output_}) : buf->y;
    buf->gout = desc_.has_head() ? torch::empty({batch, output_}) : buf->gy;
    buf->gout_t = buf->gout.t();
    cache_.push_back(std::move(buf));
    return *cache_.back();
  }

  void forward(const std::vector<Tensor>& inputs, Buffers& buf, bool training) {
    const int64_t batch = buf.batch, ro = rank_ * fused_;
    for (size_t m = 0; m < modalities_.size(); ++m) {
      auto& mod = modalities_[m];
      Tensor in = inputs[m];
      for (size_t l = 0; l < mod.layers.size(); ++l) {
        const auto& layer = mod.layers[l];
        Tensor& h = buf.h[m][l];
        at::mm_out(h, in, layer.weight_t);
        // h = relu(z + b) * mask, and mult = dh/dz: mask where z + b > 0, else 0.
        const bool drop = training && mod.dropout > 0;
        const uint64_t seed = drop ? draw_dropout_seed() : 0;
        const uint64_t threshold = drop ? dropout_threshold(mod.dropout) : 0;
        const float scale =
            drop && mod.dropout < 1 ? static_cast<float>(1.0 / (1.0 - mod.dropout)) : 0.0f;
        float* hp = h.data_ptr<float>();
        float* mp = buf.mult[m][l].data_ptr<float>();
        const float* bp = layer.bias.data_ptr<float>();
        const int64_t n = layer.out;
        for_rows(batch, n, [&](int64_t b0, int64_t b1) {
          if (drop) {
            fill_dropout_mask(mp, b0 * n, b1 * n, seed, threshold, scale);
          } else {
            std::fill(mp + b0 * n, mp + b1 * n, 1.0f);
          }
          for (int64_t b = b0; b < b1; ++b) simd::bias_relu_mask(hp + b * n, mp + b * n, bp, n);
        });
        in = h;
      }
      // V_m from the (R, d+1, O) factor, then F_m = h_m V_m[1:] (+ V_m[0] in the product pass).
      mod.layout.flatten_into(mod.factor.data_ptr<float>(), mod.flat.data_ptr<float>());
      at::mm_out(buf.f[m], in, mod.flat_rows);
    }
    // P = prod_m (F_m + V_m[0]), storing each F_m with its bias row for the backward.
    std::vector<float*> fp;
    std::vector<const float*> v0;
    for (size_t m = 0; m < modalities_.size(); ++m) {
      fp.push_back(buf.f[m].data_ptr<float>());
      v0.push_back(modalities_[m].flat.data_ptr<float>());
    }
    float* pp = buf.product.data_ptr<float>();
    for_rows(batch, ro, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        float* prow = pp + b * ro;
        for (size_t m = 0; m < fp.size(); ++m) {
          float* frow = fp[m] + b * ro;
          const float* row0 = v0[m];
          simd::add_to(frow, row0, ro);
          if (m == 0)
            std::copy(frow, frow + ro, prow);
          else
            simd::mul_by(prow, frow, ro);
        }
      }
    });
    // y = sum_r w_r P[:, r] + bias.
    const float* wr = desc_.rank_weights.data_ptr<float>();
    const float* bias = desc_.bias.data_ptr<float>();
    float* yp = buf.y.data_ptr<float>();
    const int64_t rank = rank_, out = fused_;
    for_rows(batch, ro, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        float* yrow = yp + b * out;
        std::copy(bias, bias + out, yrow);
        for (int64_t r = 0; r < rank; ++r) {
          const float* prow = pp + b * ro + r * out;
          simd::add_scaled(yrow, wr[r], prow, out);
        }
      }
    });
    if (desc_.has_head()) {
      at::mm_out(buf.out, buf.y, head_t_);
      float* op = buf.out.data_ptr<float>();
      const float* hb = desc_.head_bias.data_ptr<float>();
      for (int64_t b = 0; b < batch; ++b) simd::add_to(op + b * output_, hb, output_);
    }
  }

  // The loss of buf.out against target, and weight * dloss/dout into buf.gout.
  double loss_and_gradient(Buffers& buf, const Tensor& target, double weight) {
    return mmfusion::loss_and_gradient(loss_, buf.out.data_ptr<float>(), buf.batch, output_, target,
                                       weight, buf.gout.data_ptr<float>());
  }

  void backward(const std::vector<Tensor>& inputs, Buffers& buf) {
    const int64_t batch = buf.batch, ro = rank_ * fused_, rank = rank_, out = fused_;
    if (desc_.has_head()) {
      grad_of(desc_.head_weight).addmm_(buf.gout_t, buf.y);
      add_column_sums(buf.gout.data_ptr<float>(), batch, output_,
                      grad_of(desc_.head_bias).data_ptr<float>());
      at::mm_out(buf.gy, buf.gout, desc_.head_weight);
    }
    // Rank-weighted sum: dbias = sum_b gy, dP[:, r] = w_r gy and dw_r = sum_b gy . P[:, r];
    // then dF_m = dP * prod_{n != m} F_n. One pass over the rows, in parallel; dP lives in
    // a row-sized scratch, and dw's per-column partial sums in one slot per block of rows.
    const float* gy = buf.gy.data_ptr<float>();
    const float* pp = buf.product.data_ptr<float>();
    const float* wr = desc_.rank_weights.data_ptr<float>();
    add_column_sums(gy, batch, out, grad_of(desc_.bias).data_ptr<float>());
    const bool learned = desc_.rank_weighting == RankWeighting::Learned;
    std::vector<const float*> fp;
    std::vector<float*> gfp;
    for (size_t m = 0; m < modalities_.size(); ++m) {
      fp.push_back(buf.f[m].data_ptr<float>());
      gfp.push_back(buf.gf[m].data_ptr<float>());
    }
    const RowBlocks blocks(batch, ro);
    std::vector<float>& partial = rank_partial_;
    partial.assign(static_cast<size_t>(blocks.count) * ro, 0.0f);  // reuses its capacity
    at::parallel_for(0, blocks.count, 1, [&](int64_t k0, int64_t k1) {
      std::vector<float> gp(ro);
      for (int64_t k = k0; k < k1; ++k) {
        float* acc = partial.data() + k * ro;
        for (int64_t b = blocks.begin(k); b < blocks.end(k); ++b) {
          const float* gyrow = gy + b * out;
          const float* prow = pp + b * ro;
          for (int64_t r = 0; r < rank; ++r)
            for (int64_t j = 0; j < out; ++j) {
              gp[r * out + j] = wr[r] * gyrow[j];
              acc[r * out + j] += gyrow[j] * prow[r * out + j];
            }
          for (size_t m = 0; m < fp.size(); ++m) {
            float* grow = gfp[m] + b * ro;
            std::copy(gp.begin(), gp.end(), grow);
            for (size_t n = 0; n < fp.size(); ++n) {
              if (n == m) continue;
              const float* frow = fp[n] + b * ro;
              simd::mul_by(grow, frow, ro);
            }
          }
        }
      }
    });
    if (learned) {
      float* gw = grad_of(desc_.rank_weights).data_ptr<float>();
      for (int64_t r = 0; r < rank; ++r) {
        double sum = 0;
        for (int64_t k = 0; k < blocks.count; ++k)
          for (int64_t j = 0; j < out; ++j) sum += partial[k * ro + r * out + j];
        gw[r] += static_cast<float>(sum);
      }
    }
    for (size_t m = 0; m < modalities_.size(); ++m) {
      auto& mod = modalities_[m];
      const size_t layers = mod.layers.size();
      // dV_m = [1; h_m]^T dF_m, then back to the (R, d+1, O) layout of the factor.
      float* dv = mod.dflat.data_ptr<float>();
      std::fill(dv, dv + ro, 0.0f);
      add_column_sums(gfp[m], batch, ro, dv);
      at::mm_out(mod.dflat_rows, layers ? buf.h_t[m].back() : inputs[m].t(), buf.gf[m]);
      mod.layout.add_unflattened(dv, grad_of(mod.factor).data_ptr<float>());
      if (!layers) continue;
      // dh_m = dF_m V_m[1:]^T, then the encoder from its last layer down.
      at::mm_out(buf.grad[m].back(), buf.gf[m], mod.flat_rows_t);
      for (size_t l = layers; l-- > 0;) {
        auto& layer = mod.layers[l];
        float* gz = buf.grad[m][l].data_ptr<float>();
        const float* mult = buf.mult[m][l].data_ptr<float>();
        const int64_t n = layer.out;
        for_rows(batch, n, [&](int64_t b0, int64_t b1) {
          simd::mul_by(gz + b0 * n, mult + b0 * n, (b1 - b0) * n);
        });
        grad_of(layer.weight).addmm_(buf.grad_t[m][l], l ? buf.h[m][l - 1] : inputs[m]);
        add_column_sums(gz, batch, n, grad_of(layer.bias).data_ptr<float>());
        if (l) at::mm_out(buf.grad[m][l - 1], buf.grad[m][l], layer.weight);
      }
    }
  }

  LMFDescription desc_;
  LossSpec loss_;
  int64_t rank_ = 0, fused_ = 0, output_ = 0;
  std::vector<Modality> modalities_;
  Tensor head_t_;
  std::vector<std::unique_ptr<Buffers>> cache_;
  std::vector<float> rank_partial_;  // backward's per-block sums for dw, kept between steps
  std::mutex mutex_;  // infer() may be called from several threads, like a module's forward
};

LMFPass::LMFPass(LMFDescription description, const LossSpec& loss)
    : impl_(std::make_unique<Impl>(std::move(description), loss)) {}

LMFPass::~LMFPass() = default;

namespace {
bool cpu_float(const torch::Tensor& t) {
  return t.device().is_cpu() && t.scalar_type() == torch::kFloat32;
}
}  // namespace

std::string LMFPass::unsupported(const LMFDescription& d) {
  if (d.missing_encodings)
    return "train.modality_dropout replaces encodings by learned missing ones, which the hand-written "
           "pass does not compute";
  for (const auto& e : d.encoders) {
    if (e.type != EncoderType::MLP)
      return std::string("an encoder reads a sequence (type ") + to_string(e.type) +
             "; the hand-written pass computes MLPs of vectors)";
    if (e.batch_norm) return "an encoder normalises its input (batch_norm)";
  }
  if (!d.complete())
    return "the model has parameters its description does not name (" +
           std::to_string(d.module_parameters) + " values, " +
           std::to_string(d.described_parameters) + " described)";
  if (d.encoders.size() != d.factors.size() || d.factors.size() != d.factor_layouts.size())
    return "one encoder, factor and layout per modality expected";
  std::vector<torch::Tensor> tensors{d.rank_weights, d.bias};
  if (d.has_head()) tensors.push_back(d.head_weight), tensors.push_back(d.head_bias);
  for (size_t m = 0; m < d.encoders.size(); ++m) {
    const auto& e = d.encoders[m];
    switch (e.activation) {
      case Activation::ReLU: break;
      case Activation::Tanh:
        return std::string("encoder activation \"") + to_string(e.activation) + "\"";
    }
    if (e.layers.size() != e.hidden.size()) return "encoder layers and hidden sizes differ";
    for (const auto& layer : e.layers)
      tensors.push_back(layer.weight), tensors.push_back(layer.bias);
    tensors.push_back(d.factors[m]);
  }
  for (const auto& t : tensors)
    if (!t.defined() || !cpu_float(t) || !t.is_contiguous())
      return "tensors that are not contiguous CPU float32";
  return "";
}

bool LMFPass::accepts(const std::vector<torch::Tensor>& inputs) {
  return std::all_of(inputs.begin(), inputs.end(),
                     [](const torch::Tensor& t) { return cpu_float(t) && t.is_contiguous(); });
}

double LMFPass::train_step(const std::vector<torch::Tensor>& inputs, const torch::Tensor& target,
                           double weight, bool training) {
  return impl_->train_step(inputs, target, weight, training);
}

torch::Tensor LMFPass::infer(const std::vector<torch::Tensor>& inputs) {
  return impl_->infer(inputs);
}

}  // namespace mmfusion
