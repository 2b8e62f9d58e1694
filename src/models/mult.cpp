#include "mmfusion/models/mult.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "mmfusion/base/errors.hpp"
#include "mmfusion/data/sequence.hpp"

namespace mmfusion {
namespace F = torch::nn::functional;

MultLayerImpl::MultLayerImpl(int64_t width, int64_t heads, double attention_dropout,
                             double relu_dropout, double residual_dropout)
    : relu_dropout(relu_dropout), residual_dropout(residual_dropout) {
  norm0 = register_module("norm0", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  attention = register_module(
      "attention",
      torch::nn::MultiheadAttention(
          torch::nn::MultiheadAttentionOptions(width, heads).dropout(attention_dropout)));
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
  fc1 = register_module("fc1", torch::nn::Linear(width, 4 * width));
  fc2 = register_module("fc2", torch::nn::Linear(4 * width, width));
}

torch::Tensor MultLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& kv,
                                     const torch::Tensor& key_padding,
                                     const torch::Tensor& attention_mask) {
  const bool train = is_training();
  auto q = norm0(x);
  const auto k = kv.defined() ? norm0(kv) : q;  // one LayerNorm for queries, keys, values
  auto a = std::get<0>(attention(q, k, k, key_padding, /*need_weights=*/false, attention_mask));
  auto h = x + F::dropout(a, F::DropoutFuncOptions().p(residual_dropout).training(train));
  auto f = torch::relu(fc1(norm1(h)));
  f = F::dropout(f, F::DropoutFuncOptions().p(relu_dropout).training(train));
  f = F::dropout(fc2(f), F::DropoutFuncOptions().p(residual_dropout).training(train));
  return h + f;
}

MultStackImpl::MultStackImpl(int64_t width, int64_t heads, int64_t count, double attention_dropout,
                             const MultConfig& config)
    : width(width), embedding_dropout(config.embedding_dropout) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t l = 0; l < count; ++l)
    layers->push_back(
        MultLayer(width, heads, attention_dropout, config.relu_dropout, config.residual_dropout));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({width})));
}

torch::Tensor MultStackImpl::forward(const torch::Tensor& x, const torch::Tensor& kv,
                                     const torch::Tensor& key_padding,
                                     const torch::Tensor& attention_mask) {
  const double scale = std::sqrt(double(width));
  auto embed = [&](const torch::Tensor& in) {  // [T, B, W]
    auto e = in * scale + sinusoidal_positions(in.size(0), width, in.options()).unsqueeze(1);
    return F::dropout(e, F::DropoutFuncOptions().p(embedding_dropout).training(is_training()));
  };
  auto h = embed(x);
  const auto source = kv.defined() ? embed(kv) : torch::Tensor();
  for (const auto& layer : *layers)
    h = layer->as<MultLayer>()->forward(h, source, key_padding, attention_mask);
  return norm(h);
}

// -inf where query step i may not see key step j, [Tq, Tk]: a key is at or before the
// query's time when j / Tk <= i / Tq, by position over the padded lengths (LibTorch 1.13's
// MultiheadAttention takes one mask for every row); step 0 is always allowed, and with
// sequences of one padded length it is j <= i.
torch::Tensor mult_causal_mask(int64_t Tq, int64_t Tk, const torch::TensorOptions& options) {
  const auto i = torch::arange(Tq, options.dtype(torch::kInt64)).view({Tq, 1});
  const auto j = torch::arange(Tk, options.dtype(torch::kInt64)).view({1, Tk});
  return torch::zeros({Tq, Tk}, options)
      .masked_fill(j * Tq > i * Tk, -std::numeric_limits<float>::infinity());
}

namespace {

std::string stack_name(const std::string& target, const std::string& source) {
  return target + "_from_" + source;
}

// MMSA's causal mask (its buffered_future_mask): step i sees keys up to
// i + |Tk - Tq|.
torch::Tensor mmsa_causal_mask(int64_t Tq, int64_t Tk, const torch::TensorOptions& options) {
  return torch::full({Tq, Tk}, -std::numeric_limits<float>::infinity(), options)
      .triu(1 + std::abs(Tk - Tq));
}

}  // namespace

MultImpl::MultImpl(const std::vector<ModalityConfig>& modalities, const ModelConfig& model,
                   int64_t output_dim)
    : modalities_(modalities), config_(model.mult) {
  const size_t M = modalities.size();
  if (M < 2 && !(M == 1 && config_.unimodal))
    throw ConfigError("model.type: \"mult\" needs at least 2 modalities (or model.mult.unimodal)");
  const int64_t d = config_.width;
  // Holders, so that the parameters read project.<m>.*, cross.<t>_from_<s>.*, memory.<t>.*.
  auto holder = [&](const std::string& name) {
    return register_module(name, std::make_shared<torch::nn::Module>());
  };
  const auto project_holder = holder("project"), cross_holder = holder("cross");
  for (const auto& m : modalities) {
    const int64_t k =
        config_.kernel.count(m.name) ? config_.kernel.at(m.name) : MultConfig::kKernel;
    project.push_back(project_holder->register_module(
        m.name, torch::nn::Conv1d(torch::nn::Conv1dOptions(m.dim, d, k).bias(false))));
  }
  auto attention_dropout = [&](const std::string& name) {
    return config_.attention_dropout.count(name) ? config_.attention_dropout.at(name)
                                                 : MultConfig::kAttentionDropout;
  };
  cross.resize(M);
  for (size_t t = 0; t < M; ++t) {
    cross[t].resize(M, nullptr);
    for (size_t s = 0; s < M; ++s) {
      if (s == t && M > 1) continue;  // one modality: its self-attention stack
      cross[t][s] =
          cross_holder->register_module(stack_name(modalities[t].name, modalities[s].name),
                                        MultStack(d, config_.heads, config_.layers,
                                                  attention_dropout(modalities[s].name), config_));
    }
  }
  const int64_t wide = int64_t(std::max<size_t>(M - 1, 1)) * d;
  memory.resize(M, nullptr);
  if (config_.memory_layers > 0) {
    const auto memory_holder = holder("memory");
    for (size_t t = 0; t < M; ++t)
      memory[t] = memory_holder->register_module(
          modalities[t].name, MultStack(wide, config_.heads, config_.memory_layers,
                                        attention_dropout(modalities[t].name), config_));
  }
  const int64_t D = int64_t(M) * wide;
  proj1 = register_module("proj1", torch::nn::Linear(D, D));
  proj2 = register_module("proj2", torch::nn::Linear(D, D));
  out = register_module("out", torch::nn::Linear(D, output_dim));
}

torch::Tensor MultImpl::forward(const std::vector<torch::Tensor>& inputs) {
  const size_t M = modalities_.size();
  TORCH_CHECK(inputs.size() == M, "mult: expected ", M, " inputs, got ", inputs.size());
  const bool compat = config_.mmsa_compat, train = is_training();
  std::vector<torch::Tensor> h(M), len(M), padding(M);
  for (size_t m = 0; m < M; ++m) {
    const auto& mod = modalities_[m];
    torch::Tensor steps, lengths;
    if (mod.sequence) {
      // [B, T, D]; the steps past each length zeroed here, whatever the rows hold there
      // (the Conv1d reads across a row's end)
      steps =
          sequence::values(inputs[m], mod.dim) * sequence::mask(inputs[m], mod.dim).unsqueeze(2);
      lengths = sequence::lengths(inputs[m]);
    } else {
      steps = inputs[m].unsqueeze(1);
      lengths = torch::ones({inputs[m].size(0)}, inputs[m].options().dtype(torch::kInt64));
    }
    const double p = config_.input_dropout.count(mod.name) ? config_.input_dropout.at(mod.name)
                                                           : MultConfig::kInputDropout;
    steps = F::dropout(steps, F::DropoutFuncOptions().p(p).training(train));
    auto x = steps.transpose(1, 2);  // [B, D, T]
    const int64_t k = project[m]->options.kernel_size()->at(0), T = x.size(2);
    if (compat) {
      TORCH_CHECK(T >= k, "mult: ", mod.name, " has ", T, " steps, fewer than its kernel ", k);
    } else {
      // "Same" padding: the output keeps T steps, step t centred on input step t; a row's
      // padding is zeros, as the padding added here is.
      x = F::pad(x, F::PadFuncOptions({(k - 1) / 2, k - 1 - (k - 1) / 2}));
    }
    h[m] = project[m](x).permute({2, 0, 1});  // [T', B, d]
    const int64_t Tp = h[m].size(0);
    if (compat) {
      len[m] = torch::full({x.size(0)}, Tp, lengths.options());
    } else {
      len[m] = lengths.clamp_max(Tp);
      // Keys past a row's length are ignored; a row without valid steps attends to its
      // first step (all keys ignored would give NaN).
      const auto steps_index = torch::arange(Tp, lengths.options()).unsqueeze(0);
      padding[m] = steps_index >= len[m].clamp_min(1).unsqueeze(1);
    }
  }
  auto mask_for = [&](size_t t, size_t s) -> torch::Tensor {
    if (!config_.causal) return {};
    const auto options = h[t].options();
    if (compat) return mmsa_causal_mask(h[t].size(0), h[s].size(0), options);
    return mult_causal_mask(h[t].size(0), h[s].size(0), options);
  };
  std::vector<torch::Tensor> pooled;
  for (size_t t = 0; t < M; ++t) {
    std::vector<torch::Tensor> parts;
    for (size_t s = 0; s < M; ++s)
      if (cross[t][s])  // s == t only for one modality, which attends to itself
        parts.push_back(cross[t][s]->forward(h[t], s != t ? h[s] : torch::Tensor(), padding[s],
                                             mask_for(t, s)));
    auto c = torch::cat(parts, 2);  // [T_t, B, (M - 1) d]
    if (memory[t]) c = memory[t]->forward(c, {}, padding[t], mask_for(t, t));
    const auto rows = c.transpose(0, 1);  // [B, T_t, W]
    if (config_.pool == "mean" && !compat) {
      const auto valid = (~padding[t]).to(rows.dtype()).unsqueeze(2);  // [B, T, 1]
      pooled.push_back((rows * valid).sum(1) / valid.sum(1));
    } else {
      const auto last = compat ? len[t] - 1 : len[t].clamp_min(1) - 1;  // [B]
      pooled.push_back(
          rows.gather(1, last.view({-1, 1, 1}).expand({-1, 1, rows.size(2)})).squeeze(1));
    }
  }
  const auto z = torch::cat(pooled, 1);
  auto y = F::dropout(torch::relu(proj1(z)),
                      F::DropoutFuncOptions().p(config_.output_dropout).training(train));
  return out(proj2(y) + z);
}

double MultImpl::forward_flops() const {
  // Per sample, at each modality's full length (max_len; a vector is one step): the
  // Conv1d, every layer's projections, attention products and feed-forward, and the head.
  const size_t M = modalities_.size();
  const double d = double(config_.width);
  std::vector<double> T(M);
  for (size_t m = 0; m < M; ++m)
    T[m] = modalities_[m].sequence ? double(std::max<int64_t>(modalities_[m].max_len, 1)) : 1.0;
  auto layer = [](double W, double Tq, double Tk) {
    return 2 * W * W * (2 * Tq + 2 * Tk) + 2 * 2 * Tq * Tk * W + 2 * 2 * W * 4 * W * Tq;
  };
  double flops = 0;
  for (size_t m = 0; m < M; ++m) {
    const double k = double(project[m]->options.kernel_size()->at(0));
    flops += 2 * double(modalities_[m].dim) * d * k * T[m];
  }
  const double wide = double(std::max<size_t>(M - 1, 1)) * d;
  for (size_t t = 0; t < M; ++t) {
    for (size_t s = 0; s < M; ++s)
      if (cross[t][s]) flops += double(config_.layers) * layer(d, T[t], T[s]);
    flops += double(config_.memory_layers) * layer(wide, T[t], T[t]);
  }
  const double D = double(M) * wide;
  return flops + 2 * 2 * D * D + 2 * D * double(out->options.out_features());
}

ModelPtr make_mult(const std::vector<ModalityConfig>& modalities, const ModelConfig& model,
                   int64_t output_dim) {
  return Mult(modalities, model, output_dim).ptr();
}

}  // namespace mmfusion
