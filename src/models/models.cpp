#include "mmfusion/models/models.hpp"

#include <nlohmann/json.hpp>

#include "mmfusion/models/dropout.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/models/intense.hpp"

namespace mmfusion {

torch::Tensor activate(Activation activation, const torch::Tensor& x) {
  switch (activation) {
    case Activation::ReLU: return torch::relu(x);
    case Activation::Tanh: return torch::tanh(x);
  }
  TORCH_CHECK(false, "unknown activation");
}

MLPEncoderImpl::MLPEncoderImpl(int64_t input_dim, const std::vector<int64_t>& hidden,
                               double dropout, Activation activation, bool batch_norm)
    : input_dim_(input_dim), dropout_(dropout), activation_(activation), output_dim_(input_dim) {
  if (batch_norm) input_norm_ = register_module("input_norm", torch::nn::BatchNorm1d(input_dim));
  for (size_t i = 0; i < hidden.size(); ++i) {
    layers_.push_back(
        register_module("fc" + std::to_string(i), torch::nn::Linear(output_dim_, hidden[i])));
    output_dim_ = hidden[i];
  }
}

torch::Tensor MLPEncoderImpl::forward(torch::Tensor x) {
  if (input_norm_) {
    // A batch of one row has no batch statistics: it is normalised with the running ones,
    // as in evaluation (a training split's last batch can be one row).
    const bool batch_stats = is_training() && x.size(0) > 1;
    x = torch::batch_norm(x, input_norm_->weight, input_norm_->bias, input_norm_->running_mean,
                          input_norm_->running_var, batch_stats,
                          input_norm_->options.momentum().value(), input_norm_->options.eps(),
                          false);
    if (batch_stats) input_norm_->num_batches_tracked += 1;
  }
  for (auto& layer : layers_)
    x = fast_dropout(activate(activation_, layer(x)), dropout_, is_training());
  return x;
}

EncoderDescription MLPEncoderImpl::describe() const {
  EncoderDescription d;
  d.input_dim = input_dim_;
  d.activation = activation_;
  d.dropout = dropout_;
  d.batch_norm = !input_norm_.is_empty();
  for (const auto& layer : layers_) {
    d.hidden.push_back(layer->weight.size(0));
    d.layers.push_back({layer->weight, layer->bias});
  }
  return d;
}

ModalityEncodersImpl::ModalityEncodersImpl(const std::vector<ModalityConfig>& modalities,
                                           const ModelConfig& model) {
  for (const auto& m : modalities) {
    const EncoderConfig e = encoder_for(model, m.name);
    encoders_.push_back(register_module(
        m.name, MLPEncoder(m.dim, e.hidden, model.dropout, model.activation, e.batch_norm)));
  }
}

std::vector<torch::Tensor> ModalityEncodersImpl::forward(const std::vector<torch::Tensor>& inputs) {
  TORCH_CHECK(inputs.size() == encoders_.size(), "expected ", encoders_.size(),
              " modality inputs, got ", inputs.size());
  std::vector<torch::Tensor> h;
  h.reserve(inputs.size());
  for (size_t m = 0; m < inputs.size(); ++m) h.push_back(encoders_[m]->forward(inputs[m]));
  return h;
}

std::vector<int64_t> ModalityEncodersImpl::output_dims() const {
  std::vector<int64_t> dims;
  for (const auto& e : encoders_) dims.push_back(e->output_dim());
  return dims;
}

torch::Tensor FactorLayout::flatten(const torch::Tensor& w) const {
  return w.permute({1, 0, 2}).reshape({rows, rank * out});
}

void FactorLayout::flatten_into(const float* w, float* v) const {
  for (int64_t r = 0; r < rank; ++r)
    for (int64_t i = 0; i < rows; ++i)
      std::copy(w + (r * rows + i) * out, w + (r * rows + i + 1) * out, v + (i * rank + r) * out);
}

void FactorLayout::add_unflattened(const float* v, float* w) const {
  for (int64_t r = 0; r < rank; ++r)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < out; ++j) w[(r * rows + i) * out + j] += v[(i * rank + r) * out + j];
}

LowRankFusionImpl::LowRankFusionImpl(LowRankFusionOptions opts) : options(std::move(opts)) {
  const auto& names = options.names();
  const auto& dims = options.input_dims();
  TORCH_CHECK(names.size() == dims.size() && names.size() >= 1, "one input dim per modality");
  for (size_t m = 0; m < names.size(); ++m)
    factors.push_back(register_parameter(
        "factor_" + names[m], torch::empty({options.rank(), dims[m] + 1, options.fused_dim()})));
  rank_weights = options.learned_rank_weights()
                     ? register_parameter("rank_weights", torch::empty({1, options.rank()}))
                     : register_buffer("rank_weights", torch::ones({1, options.rank()}));
  bias = register_parameter("bias", torch::empty({1, options.fused_dim()}));
  reset_parameters();
}

void LowRankFusionImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto& f : factors) torch::nn::init::xavier_normal_(f);
  if (options.learned_rank_weights()) torch::nn::init::xavier_normal_(rank_weights);
  bias.zero_();
}

FactorLayout LowRankFusionImpl::factor_layout(size_t m) const {
  return {options.rank(), factors[m].size(1), options.fused_dim()};
}

torch::Tensor LowRankFusionImpl::forward(const std::vector<torch::Tensor>& h) {
  TORCH_CHECK(h.size() == factors.size(), "expected ", factors.size(), " inputs, got ", h.size());
  const int64_t rank = options.rank();
  const int64_t out = options.fused_dim();
  // [1; h] . W[r] for all r at once: the constant 1 picks row 0 of every factor, so it is
  // a bias row of one addmm over the (d_m, rank * out) matrix of the other rows.
  torch::Tensor product;
  for (size_t m = 0; m < h.size(); ++m) {
    const auto flat = factor_layout(m).flatten(factors[m]);  // (d+1, rank*out)
    auto f = torch::addmm(flat[0], h[m], flat.slice(0, 1));  // (B, rank*out)
    product = m == 0 ? f : product * f;
  }
  // sum_r w_r * product[:, r, :] + b as one addmm: product (B, rank*out) times the
  // (rank*out, out) matrix w (x) I_out, whose row r*out + j holds w_r in column j.
  if (!identity_.defined() || identity_.device() != product.device())
    identity_ = torch::eye(out, product.options().requires_grad(false));
  const auto rank_sum = (rank_weights.view({rank, 1, 1}) * identity_).view({rank * out, out});
  return torch::addmm(bias, product, rank_sum);
}

LMFImpl::LMFImpl(LMFOptions opts) : options(std::move(opts)) {
  const auto& model = options.model();
  encoders = register_module("encoders", ModalityEncoders(options.modalities(), model));
  std::vector<std::string> names;
  for (const auto& m : options.modalities()) names.push_back(m.name);
  fusion = register_module(
      "fusion",
      LowRankFusion(LowRankFusionOptions(names, encoders->output_dims())
                        .rank(model.rank)
                        .fused_dim(model.fused_dim)
                        .learned_rank_weights(model.rank_weighting == RankWeighting::Learned)));
  if (model.fused_dim != options.output_dim())
    head = register_module("head", torch::nn::Linear(model.fused_dim, options.output_dim()));
}

torch::Tensor LMFImpl::forward(const std::vector<torch::Tensor>& inputs) {
  auto y = fusion->forward(encoders->forward(inputs));
  return head ? head(y) : y;
}

double MultimodalModelImpl::forward_flops() const {
  double flops = 0;
  for (const auto& module : modules(/*include_self=*/false))
    if (const auto* linear = module->as<torch::nn::LinearImpl>())
      flops +=
          2.0 * double(linear->options.in_features()) * double(linear->options.out_features()) +
          (linear->options.bias() ? double(linear->options.out_features()) : 0.0);
  return flops;
}

double LMFImpl::forward_flops() const {
  const LMFDescription d = describe();
  const double ro = double(d.rank * d.fused_dim);
  double flops = MultimodalModelImpl::forward_flops();
  for (const auto& layout : d.factor_layouts)
    flops += 2.0 * double(layout.rows - 1) * ro + ro;  // addmm, bias row
  flops += double(d.factor_layouts.size() - 1) * ro;   // product over modalities
  flops += 2.0 * ro + double(d.fused_dim);             // rank sum and bias
  return flops;
}

LMFDescription LMFImpl::describe() const {
  LMFDescription d;
  for (const auto& e : encoders->encoders()) d.encoders.push_back(e->describe());
  d.rank = fusion->options.rank();
  d.fused_dim = fusion->options.fused_dim();
  d.output_dim = options.output_dim();
  d.rank_weighting =
      fusion->options.learned_rank_weights() ? RankWeighting::Learned : RankWeighting::Sum;
  d.factors = fusion->factors;
  for (size_t m = 0; m < fusion->factors.size(); ++m)
    d.factor_layouts.push_back(fusion->factor_layout(m));
  d.rank_weights = fusion->rank_weights;
  d.bias = fusion->bias;
  if (head) d.head_weight = head->weight, d.head_bias = head->bias;
  std::vector<torch::Tensor> named{d.bias};
  if (d.rank_weighting == RankWeighting::Learned) named.push_back(d.rank_weights);
  if (d.has_head()) named.push_back(d.head_weight), named.push_back(d.head_bias);
  named.insert(named.end(), d.factors.begin(), d.factors.end());
  for (const auto& e : d.encoders)
    for (const auto& layer : e.layers) named.push_back(layer.weight), named.push_back(layer.bias);
  for (const auto& t : named) d.described_parameters += t.numel();
  for (const auto& p : parameters()) d.module_parameters += p.numel();
  return d;
}

PostFusionImpl::PostFusionImpl(int64_t input_dim, const std::vector<int64_t>& hidden,
                               int64_t output_dim, double p, Activation activation)
    : dropout(p) {
  post = register_module("post", MLPEncoder(input_dim, hidden, p, activation));
  out = register_module("out", torch::nn::Linear(post->output_dim(), output_dim));
}

torch::Tensor PostFusionImpl::forward(torch::Tensor x) {
  return out(post(fast_dropout(x, dropout, is_training())));
}

namespace {
int64_t sum_dims(const std::vector<int64_t>& dims) {
  int64_t total = 0;
  for (int64_t d : dims) total += d;
  return total;
}
}  // namespace

TFNImpl::TFNImpl(const std::vector<ModalityConfig>& modalities, const ModelConfig& model,
                 int64_t output_dim) {
  encoders = register_module("encoders", ModalityEncoders(modalities, model));
  fused_size_ = static_cast<int64_t>(tfn_fused_size(encoders->output_dims()));
  post = register_module("post", PostFusion(fused_size_, model.post_hidden, output_dim,
                                            model.dropout, model.activation));
}

torch::Tensor TFNImpl::fuse(const std::vector<torch::Tensor>& h) const {
  // Built one modality at a time into a (B, prod so far) matrix: the only buffers are
  // the running product, never a (B, d1+1, d2+1, ...) tensor of temporaries.
  const int64_t batch = h.front().size(0);
  torch::Tensor z;
  for (const auto& hm : h) {
    const auto zm =
        torch::nn::functional::pad(hm, torch::nn::functional::PadFuncOptions({1, 0}).value(1.0));
    z = z.defined() ? (z.unsqueeze(2) * zm.unsqueeze(1)).view({batch, -1}) : zm;
  }
  return z;
}

double TFNImpl::forward_flops() const {
  double flops = MultimodalModelImpl::forward_flops(), partial = 1;
  for (int64_t d : encoders->output_dims()) {
    if (partial > 1) flops += partial * double(d + 1);  // one multiply per new entry
    partial *= double(d + 1);
  }
  return flops;
}

torch::Tensor TFNImpl::forward(const std::vector<torch::Tensor>& inputs) {
  return post(fuse(encoders->forward(inputs)));
}

ConcatFusionImpl::ConcatFusionImpl(const std::vector<ModalityConfig>& modalities,
                                   const ModelConfig& model, int64_t output_dim) {
  encoders = register_module("encoders", ModalityEncoders(modalities, model));
  post = register_module("post", PostFusion(sum_dims(encoders->output_dims()), model.post_hidden,
                                            output_dim, model.dropout, model.activation));
}

torch::Tensor ConcatFusionImpl::forward(const std::vector<torch::Tensor>& inputs) {
  return post(torch::cat(encoders->forward(inputs), 1));
}

LateFusionImpl::LateFusionImpl(const std::vector<ModalityConfig>& modalities,
                               const ModelConfig& model, int64_t output_dim)
    : combine_(model.late_combine) {
  encoders = register_module("encoders", ModalityEncoders(modalities, model));
  auto holder = register_module("heads", std::make_shared<torch::nn::Module>());
  const auto dims = encoders->output_dims();
  for (size_t m = 0; m < modalities.size(); ++m)
    heads.push_back(
        holder->register_module(modalities[m].name, torch::nn::Linear(dims[m], output_dim)));
}

torch::Tensor LateFusionImpl::forward(const std::vector<torch::Tensor>& inputs) {
  const auto h = encoders->forward(inputs);
  torch::Tensor y = heads[0](h[0]);
  for (size_t m = 1; m < h.size(); ++m) y = y + heads[m](h[m]);
  switch (combine_) {
    case LateCombine::Sum: return y;
    case LateCombine::Mean: return y / static_cast<double>(h.size());
  }
  return y;
}

BlockNormImpl::BlockNormImpl(int64_t dim, bool one_variance_) : one_variance(one_variance_) {
  running_mean = register_buffer("running_mean", torch::zeros({dim}));
  // Start at what unit-variance features give: 1 per feature, dim for the whole block.
  running_var = register_buffer("running_var",
                                one_variance ? torch::full({}, double(dim)) : torch::ones({dim}));
}

torch::Tensor BlockNormImpl::forward(const torch::Tensor& x) {
  constexpr double kMomentum = 0.1, kEps = 1e-5;  // BatchNorm1d's defaults
  const int64_t n = x.size(0);
  if (!is_training() || n < 2) return (x - running_mean) * (running_var + kEps).rsqrt();
  const torch::Tensor mean = x.mean(0);
  const torch::Tensor centred = x - mean;
  torch::Tensor var = centred.pow(2).mean(0);  // biased, as batch norm normalises
  if (one_variance) var = var.sum();
  {
    torch::NoGradGuard no_grad;  // the running estimates: unbiased, as batch norm keeps them
    running_mean.mul_(1 - kMomentum).add_(mean.detach(), kMomentum);
    running_var.mul_(1 - kMomentum).add_(var.detach(), kMomentum * double(n) / double(n - 1));
  }
  return centred * (var + kEps).rsqrt();
}

IntenseImpl::IntenseImpl(const std::vector<ModalityConfig>& modalities, const ModelConfig& model,
                         int64_t output_dim)
    : config_(model.intense) {
  encoders = register_module("encoders", ModalityEncoders(modalities, model));
  const auto dims = encoders->output_dims();
  auto index_of = [&](const std::string& name) {
    for (size_t m = 0; m < modalities.size(); ++m)
      if (modalities[m].name == name) return m;
    throw ConfigError("model.intense.interactions: no modality named \"" + name + "\"");
  };
  int64_t columns = 0;
  auto add_block = [&](std::vector<size_t> members, int64_t size) {
    std::vector<std::string> names;
    for (size_t m : members) names.push_back(modalities[m].name);
    layout_.push_back({subset_name(names), std::move(members), columns, columns + size});
    columns += size;
  };
  for (size_t m = 0; m < modalities.size(); ++m) add_block({m}, dims[m]);
  projections.resize(modalities.size(), torch::nn::Linear(nullptr));
  projection_norms.resize(modalities.size(), BlockNorm(nullptr));
  auto project = register_module("project", std::make_shared<torch::nn::Module>());
  auto project_norm = register_module("project_norm", std::make_shared<torch::nn::Module>());
  const int64_t latent = config_.latent_dim;
  for (const auto& set : config_.interactions) {
    std::vector<size_t> members;
    int64_t size = 1;
    for (const auto& name : set) {
      const size_t m = index_of(name);
      members.push_back(m);
      size *= latent;
      if (projections[m]) continue;
      // No bias: the batch normalisation after it would remove it.
      projections[m] = project->register_module(
          name, torch::nn::Linear(torch::nn::LinearOptions(dims[m], latent).bias(false)));
      projection_norms[m] =
          project_norm->register_module(name, BlockNorm(latent, /*one_variance=*/false));
    }
    add_block(std::move(members), size);
  }
  auto norms = register_module("block_norm", std::make_shared<torch::nn::Module>());
  for (size_t b = 0; b < layout_.size(); ++b)
    block_norms.push_back(norms->register_module(
        std::to_string(b), BlockNorm(layout_[b].end - layout_[b].begin, /*one_variance=*/true)));
  fusion = register_module("fusion", torch::nn::Linear(columns, output_dim));
}

std::vector<torch::Tensor> IntenseImpl::blocks(const std::vector<torch::Tensor>& inputs) {
  const auto z = encoders->forward(inputs);
  std::vector<torch::Tensor> u(z.size());
  for (size_t m = 0; m < z.size(); ++m)
    if (projections[m]) u[m] = projection_norms[m](projections[m](z[m]));
  std::vector<torch::Tensor> out;
  for (size_t b = 0; b < layout_.size(); ++b) {
    const auto& members = layout_[b].members;
    torch::Tensor raw;
    if (members.size() == 1) {
      raw = z[members[0]];
    } else {
      std::vector<torch::Tensor> factors;
      for (size_t m : members) factors.push_back(u[m]);
      raw = interaction_block(factors);  // the projections are centred already
    }
    out.push_back(block_norms[b](raw));
  }
  return out;
}

double IntenseImpl::forward_flops() const {
  double flops = MultimodalModelImpl::forward_flops();
  for (size_t m = 0; m < projections.size(); ++m)
    if (projections[m])
      flops += 2.0 * double(projections[m]->options.out_features());  // projection_norms
  for (const auto& b : layout_) {
    if (b.members.size() > 1) {  // the outer product of the members' projections
      double partial = double(projections[b.members[0]]->options.out_features());
      for (size_t i = 1; i < b.members.size(); ++i) {
        partial *= double(projections[b.members[i]]->options.out_features());
        flops += partial;
      }
    }
    flops += 2.0 * double(b.end - b.begin);  // block_norms
  }
  return flops;
}

torch::Tensor IntenseImpl::forward(const std::vector<torch::Tensor>& inputs) {
  return fusion(torch::cat(blocks(inputs), 1));
}

std::vector<std::pair<int64_t, int64_t>> IntenseImpl::columns() const {
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (const auto& b : layout_) ranges.emplace_back(b.begin, b.end);
  return ranges;
}

torch::Tensor IntenseImpl::penalty() {
  if (config_.reg == 0) return {};
  return config_.reg * block_regularizer(fusion->weight, columns(), config_.p);
}

std::vector<std::pair<std::string, double>> IntenseImpl::relevance() const {
  const torch::Tensor w = fusion->weight.detach().to(torch::kCPU, torch::kFloat64);
  std::vector<double> norms;
  for (const auto& b : layout_) norms.push_back(w.slice(1, b.begin, b.end).norm().item<double>());
  const auto scores = relevance_scores(norms, config_.p);
  std::vector<std::pair<std::string, double>> out;
  for (size_t b = 0; b < layout_.size(); ++b) out.emplace_back(layout_[b].name, scores[b]);
  return out;
}

nlohmann::json relevance_json(const MultimodalModelImpl& model) {
  nlohmann::json scores = nlohmann::json::object();
  for (const auto& [block, score] : model.relevance()) scores[block] = score;
  return scores;
}

ModelPtr make_model(const ModelConfig& model, const std::vector<ModalityConfig>& modalities,
                    int64_t output_dim) {
  if (output_dim < 1)
    throw ConfigError("model.output_dim: expected an integer >= 1, got " +
                      std::to_string(output_dim));
  switch (model.type) {
    case ModelType::LMF: return LMF(LMFOptions(modalities, output_dim).model(model)).ptr();
    case ModelType::TFN: return TFN(modalities, model, output_dim).ptr();
    case ModelType::Concat: return ConcatFusion(modalities, model, output_dim).ptr();
    case ModelType::Late: return LateFusion(modalities, model, output_dim).ptr();
    case ModelType::Intense: return Intense(modalities, model, output_dim).ptr();
  }
  throw ConfigError("model.type: unknown model type");
}

std::vector<std::pair<std::string, int64_t>> parameter_counts(torch::nn::Module& module) {
  std::vector<std::pair<std::string, int64_t>> counts{{"total", 0}};
  for (const auto& p : module.named_parameters()) counts[0].second += p.value().numel();
  for (const auto& child : module.named_children()) {
    int64_t n = 0;
    for (const auto& p : child.value()->parameters()) n += p.numel();
    counts.emplace_back(child.key(), n);
  }
  return counts;
}

}  // namespace mmfusion
