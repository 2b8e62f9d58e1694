#include "mmfusion/lmf_pass.hpp"

#include <algorithm>
#include <cmath>
#include <mutex>

#include <ATen/Parallel.h>
#include <ATen/core/LegacyTypeDispatch.h>

#include "mmfusion/dropout.hpp"
#include "mmfusion/kernels.hpp"

namespace mmfusion {

using torch::Tensor;

namespace {

// Rows [0, rows) of a [rows, cols] pass, in parallel chunks of at least ~32k elements:
// small batches run on the calling thread, with no task overhead.
template <typename F>
void for_rows(int64_t rows, int64_t cols, const F& f) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 32768 / std::max<int64_t>(1, cols)), f);
}

// out[j] += sum_b g[b, j] over a contiguous [rows, cols] matrix (a bias gradient); large
// ones in parallel, one block of rows per thread, then the blocks' sums.
void add_column_sums(const float* g, int64_t rows, int64_t cols, float* out) {
  auto sum_rows = [&](int64_t b0, int64_t b1, float* dst) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* row = g + b * cols;
      kernels::add_to(dst, row, cols);
    }
  };
  const int64_t blocks = rows * cols >= 65536 ? std::min<int64_t>(at::get_num_threads(), rows) : 1;
  if (blocks <= 1) return sum_rows(0, rows, out);
  std::vector<float> partial(blocks * cols, 0.0f);
  at::parallel_for(0, blocks, 1, [&](int64_t k0, int64_t k1) {
    for (int64_t k = k0; k < k1; ++k) sum_rows(rows * k / blocks, rows * (k + 1) / blocks, &partial[k * cols]);
  });
  for (int64_t k = 0; k < blocks; ++k) kernels::add_to(out, &partial[k * cols], cols);
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
  Impl(LMFImpl& model, const TrainConfig& train) : model_(model), train_(train) {
    rank_ = model.fusion->options.rank();
    fused_ = model.fusion->options.output_dim();
    const auto& encoders = model.encoders->encoders();
    for (size_t m = 0; m < encoders.size(); ++m) {
      Modality mod;
      mod.dropout = encoders[m]->dropout();
      for (const auto& layer : encoders[m]->layers())
        mod.layers.push_back({layer->weight, layer->bias, {}, layer->weight.size(1), layer->weight.size(0)});
      mod.factor = model.fusion->factors[m];
      mod.d = mod.factor.size(1) - 1;
      mod.flat = torch::empty({mod.d + 1, rank_ * fused_});
      mod.dflat = torch::empty({mod.d + 1, rank_ * fused_});
      mod.flat_rows = mod.flat.slice(0, 1);
      mod.flat_rows_t = mod.flat_rows.t();
      mod.dflat_rows = mod.dflat.slice(0, 1);
      modalities_.push_back(std::move(mod));
    }
    output_ = model.head ? model.head->weight.size(0) : fused_;
  }

  double train_step(const std::vector<Tensor>& inputs, const Tensor& target, double weight) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;  // plain kernels, no graph
    Buffers& buf = prepare(inputs);
    forward(inputs, buf, model_.is_training());
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
    TORCH_CHECK(inputs.size() == modalities_.size(), "expected ", modalities_.size(), " modality inputs, got ",
                inputs.size());
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
    Tensor factor;                     // parameter (R, d+1, O)
    int64_t d = 0;
    Tensor flat, flat_rows, flat_rows_t;  // V_m (d+1, R*O), V_m[1:], V_m[1:]^T
    Tensor dflat, dflat_rows;          // dL/dV_m and its rows 1..d
  };
  // Activations and gradients for one batch size, kept between steps.
  struct Buffers {
    int64_t batch = 0;
    std::vector<std::vector<Tensor>> h, mult, grad;  // per modality, per layer: (B, out)
    std::vector<std::vector<Tensor>> grad_t, h_t;     // their transposes (views)
    std::vector<Tensor> f, gf;                        // F_m and dL/dF_m, (B, R*O)
    Tensor product, y, gy, out, gout, gout_t;
  };

  // Views of parameters must follow the parameters if their storage is replaced.
  void refresh_views() {
    for (auto& mod : modalities_)
      for (auto& layer : mod.layers)
        if (!layer.weight_t.defined() || layer.weight_t.data_ptr() != layer.weight.data_ptr())
          layer.weight_t = layer.weight.t();
    if (model_.head && (!head_t_.defined() || head_t_.data_ptr() != model_.head->weight.data_ptr()))
      head_t_ = model_.head->weight.t();
  }

  Buffers& buffers_for(int64_t batch) {
    for (auto& b : cache_)
      if (b->batch == batch) return *b;
    if (cache_.size() >= 4) cache_.erase(cache_.begin());  // a full and a last partial batch, typically
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
    buf->out = model_.head ? torch::empty({batch, output_}) : buf->y;
    buf->gout = model_.head ? torch::empty({batch, output_}) : buf->gy;
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
        const float scale = drop && mod.dropout < 1 ? static_cast<float>(1.0 / (1.0 - mod.dropout)) : 0.0f;
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
          for (int64_t b = b0; b < b1; ++b) kernels::bias_relu_mask(hp + b * n, mp + b * n, bp, n);
        });
        in = h;
      }
      // V_m from the (R, d+1, O) factor, then F_m = h_m V_m[1:] (+ V_m[0] in the product pass).
      const float* w = mod.factor.data_ptr<float>();
      float* v = mod.flat.data_ptr<float>();
      for (int64_t r = 0; r < rank_; ++r)
        for (int64_t i = 0; i <= mod.d; ++i)
          std::copy(w + (r * (mod.d + 1) + i) * fused_, w + (r * (mod.d + 1) + i + 1) * fused_,
                    v + i * ro + r * fused_);
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
          kernels::add_to(frow, row0, ro);
          if (m == 0) std::copy(frow, frow + ro, prow);
          else
            kernels::mul_by(prow, frow, ro);
        }
      }
    });
    // y = sum_r w_r P[:, r] + bias.
    const float* wr = model_.fusion->rank_weights.data_ptr<float>();
    const float* bias = model_.fusion->bias.data_ptr<float>();
    float* yp = buf.y.data_ptr<float>();
    const int64_t rank = rank_, out = fused_;
    for_rows(batch, ro, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b) {
        float* yrow = yp + b * out;
        std::copy(bias, bias + out, yrow);
        for (int64_t r = 0; r < rank; ++r) {
          const float* prow = pp + b * ro + r * out;
          kernels::add_scaled(yrow, wr[r], prow, out);
        }
      }
    });
    if (model_.head) {
      at::mm_out(buf.out, buf.y, head_t_);
      float* op = buf.out.data_ptr<float>();
      const float* hb = model_.head->bias.data_ptr<float>();
      for (int64_t b = 0; b < batch; ++b) kernels::add_to(op + b * output_, hb, output_);
    }
  }

  // The loss of buf.out against target, and weight * dloss/dout into buf.gout.
  double loss_and_gradient(Buffers& buf, const Tensor& target, double weight) {
    const int64_t batch = buf.batch, k = output_;
    const float* o = buf.out.data_ptr<float>();
    float* g = buf.gout.data_ptr<float>();
    double total = 0;
    if (train_.loss == "cross_entropy") {
      const auto labels = target.to(torch::kInt64).contiguous();
      TORCH_CHECK(labels.numel() == batch, "expected ", batch, " class labels, got ", labels.numel());
      const int64_t* t = labels.data_ptr<int64_t>();
      for (int64_t b = 0; b < batch; ++b)
        TORCH_CHECK(t[b] >= 0 && t[b] < k, "class label ", t[b], " is out of range [0, ", k, ")");
      const float scale = static_cast<float>(weight / batch);
      for (int64_t b = 0; b < batch; ++b) {
        const float* row = o + b * k;
        float* grow = g + b * k;
        const float top = *std::max_element(row, row + k);
        double sum = 0;
        for (int64_t j = 0; j < k; ++j) sum += std::exp(double(row[j]) - top);
        total += std::log(sum) + top - row[t[b]];
        for (int64_t j = 0; j < k; ++j)
          grow[j] = static_cast<float>(std::exp(double(row[j]) - top) / sum) * scale;
        grow[t[b]] -= scale;
      }
      return weight * total / batch;
    }
    const auto y = target.to(torch::kFloat32).contiguous();
    const int64_t n = batch * k;
    TORCH_CHECK(y.numel() == n, "expected a target of ", batch, " x ", k, " values, got ", y.sizes());
    const float* t = y.data_ptr<float>();
    const double delta = train_.huber_delta;
    const float scale = static_cast<float>(weight / n);
    for (int64_t i = 0; i < n; ++i) {
      const float d = o[i] - t[i];
      if (train_.loss == "l1") {
        total += std::abs(d);
        g[i] = d > 0 ? scale : d < 0 ? -scale : 0.0f;
      } else if (train_.loss == "huber") {
        const double ad = std::abs(d);
        total += ad < delta ? 0.5 * ad * ad : delta * (ad - 0.5 * delta);
        g[i] = std::clamp(d, static_cast<float>(-delta), static_cast<float>(delta)) * scale;
      } else {
        total += double(d) * d;
        g[i] = 2 * d * scale;
      }
    }
    return weight * total / n;
  }

  void backward(const std::vector<Tensor>& inputs, Buffers& buf) {
    const int64_t batch = buf.batch, ro = rank_ * fused_, rank = rank_, out = fused_;
    auto& fusion = *model_.fusion;
    if (model_.head) {
      grad_of(model_.head->weight).addmm_(buf.gout_t, buf.y);
      add_column_sums(buf.gout.data_ptr<float>(), batch, output_,
                      grad_of(model_.head->bias).data_ptr<float>());
      at::mm_out(buf.gy, buf.gout, model_.head->weight);
    }
    // Rank-weighted sum: dbias = sum_b gy, dP[:, r] = w_r gy and dw_r = sum_b gy . P[:, r];
    // then dF_m = dP * prod_{n != m} F_n. One pass over the rows, in parallel; dP lives in
    // a row-sized scratch, and dw's per-column partial sums in one slot per thread.
    const float* gy = buf.gy.data_ptr<float>();
    const float* pp = buf.product.data_ptr<float>();
    const float* wr = fusion.rank_weights.data_ptr<float>();
    add_column_sums(gy, batch, out, grad_of(fusion.bias).data_ptr<float>());
    const bool learned = fusion.rank_weights.requires_grad();
    std::vector<const float*> fp;
    std::vector<float*> gfp;
    for (size_t m = 0; m < modalities_.size(); ++m) {
      fp.push_back(buf.f[m].data_ptr<float>());
      gfp.push_back(buf.gf[m].data_ptr<float>());
    }
    const int threads = at::get_num_threads();
    std::vector<float>& partial = rank_partial_;
    partial.assign(static_cast<size_t>(threads) * ro, 0.0f);  // reuses its capacity
    for_rows(batch, ro, [&](int64_t b0, int64_t b1) {
      std::vector<float> gp(ro);
      float* acc = partial.data() + std::min(at::get_thread_num(), threads - 1) * ro;
      for (int64_t b = b0; b < b1; ++b) {
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
            kernels::mul_by(grow, frow, ro);
          }
        }
      }
    });
    if (learned) {
      float* gw = grad_of(fusion.rank_weights).data_ptr<float>();
      for (int64_t r = 0; r < rank; ++r) {
        double sum = 0;
        for (int t = 0; t < threads; ++t)
          for (int64_t j = 0; j < out; ++j) sum += partial[t * ro + r * out + j];
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
      float* gw = grad_of(mod.factor).data_ptr<float>();
      for (int64_t r = 0; r < rank; ++r)
        for (int64_t i = 0; i <= mod.d; ++i)
          for (int64_t j = 0; j < out; ++j) gw[(r * (mod.d + 1) + i) * out + j] += dv[i * ro + r * out + j];
      if (!layers) continue;
      // dh_m = dF_m V_m[1:]^T, then the encoder from its last layer down.
      at::mm_out(buf.grad[m].back(), buf.gf[m], mod.flat_rows_t);
      for (size_t l = layers; l-- > 0;) {
        auto& layer = mod.layers[l];
        float* gz = buf.grad[m][l].data_ptr<float>();
        const float* mult = buf.mult[m][l].data_ptr<float>();
        const int64_t n = layer.out;
        for_rows(batch, n, [&](int64_t b0, int64_t b1) {
          kernels::mul_by(gz + b0 * n, mult + b0 * n, (b1 - b0) * n);
        });
        grad_of(layer.weight).addmm_(buf.grad_t[m][l], l ? buf.h[m][l - 1] : inputs[m]);
        add_column_sums(gz, batch, n, grad_of(layer.bias).data_ptr<float>());
        if (l) at::mm_out(buf.grad[m][l - 1], buf.grad[m][l], layer.weight);
      }
    }
  }

  LMFImpl& model_;
  TrainConfig train_;
  int64_t rank_ = 0, fused_ = 0, output_ = 0;
  std::vector<Modality> modalities_;
  Tensor head_t_;
  std::vector<std::unique_ptr<Buffers>> cache_;
  std::vector<float> rank_partial_;  // backward's per-thread sums for dw, kept between steps
  std::mutex mutex_;  // infer() may be called from several threads, like a module's forward
};

LMFPass::LMFPass(LMFImpl& model, const TrainConfig& train) : impl_(std::make_unique<Impl>(model, train)) {}

LMFPass::~LMFPass() = default;

namespace {
bool cpu_float(const torch::Tensor& t) { return t.device().is_cpu() && t.scalar_type() == torch::kFloat32; }
}  // namespace

bool LMFPass::supports(const torch::nn::Module& model) {
  if (!dynamic_cast<const LMFImpl*>(&model)) return false;
  const auto params = model.parameters(), buffers = model.buffers();
  return std::all_of(params.begin(), params.end(), cpu_float) && std::all_of(buffers.begin(), buffers.end(), cpu_float);
}

bool LMFPass::accepts(const std::vector<torch::Tensor>& inputs) {
  return std::all_of(inputs.begin(), inputs.end(),
                     [](const torch::Tensor& t) { return cpu_float(t) && t.is_contiguous(); });
}

double LMFPass::train_step(const std::vector<torch::Tensor>& inputs, const torch::Tensor& target, double weight) {
  return impl_->train_step(inputs, target, weight);
}

torch::Tensor LMFPass::infer(const std::vector<torch::Tensor>& inputs) { return impl_->infer(inputs); }

}  // namespace mmfusion
