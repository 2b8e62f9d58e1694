#include "mmfusion/models/models.hpp"

#include <nlohmann/json.hpp>

#include "mmfusion/models/dropout.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/data/sequence.hpp"
#include "mmfusion/models/intense.hpp"
#include "mmfusion/models/lstm.hpp"

namespace mmfusion {

torch::Tensor activate(Activation activation, const torch::Tensor& x) {
  switch (activation) {
    case Activation::ReLU: return torch::relu(x);
    case Activation::Tanh: return torch::tanh(x);
  }
  TORCH_CHECK(false, "unknown activation");
}

torch::Tensor pool_sequence(EncoderType type, const torch::Tensor& rows, int64_t dim) {
  const auto x = sequence::values(rows, dim);  // [B, T, D]
  const auto len = rows.select(1, 0);          // float [B]
  const int64_t T = x.size(1);
  switch (type) {
    case EncoderType::Mean: return sequence::masked_mean(rows, dim);
    case EncoderType::MeanPadded: return T == 0 ? x.sum(1) : x.sum(1) / double(T);
    case EncoderType::Last: {
      if (T == 0) return x.sum(1);
      const auto last = (len.to(torch::kInt64) - 1).clamp_min(0);
      const auto picked = x.gather(1, last.view({-1, 1, 1}).expand({-1, 1, dim})).squeeze(1);
      return picked * (len > 0).to(x.scalar_type()).unsqueeze(1);
    }
    case EncoderType::MLP:
    case EncoderType::LSTM:
    case EncoderType::GRU:
    case EncoderType::Transformer: break;
  }
  TORCH_CHECK(false, "pool_sequence: not a pooling encoder type");
}

MLPEncoderImpl::MLPEncoderImpl(int64_t input_dim, const std::vector<int64_t>& hidden,
                               double dropout, Activation activation, bool batch_norm,
                               EncoderType pooling)
    : input_dim_(input_dim),
      dropout_(dropout),
      activation_(activation),
      pooling_(pooling),
      output_dim_(input_dim) {
  if (batch_norm) input_norm_ = register_module("input_norm", torch::nn::BatchNorm1d(input_dim));
  for (size_t i = 0; i < hidden.size(); ++i) {
    layers_.push_back(
        register_module("fc" + std::to_string(i), torch::nn::Linear(output_dim_, hidden[i])));
    output_dim_ = hidden[i];
  }
}

torch::Tensor MLPEncoderImpl::forward(torch::Tensor x) {
  if (pooling_ != EncoderType::MLP) x = pool_sequence(pooling_, x, input_dim_);
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
  d.type = pooling_;
  d.input_dim = input_dim_;
  d.activation = activation_;
  d.dropout = dropout_;
  d.batch_norm = !input_norm_.is_empty();
  for (const auto& layer : layers_) {
    d.hidden.push_back(layer->weight.size(0));
    d.layers.push_back({layer->weight, layer->bias});
  }
  d.output = output_dim_;
  return d;
}

namespace {
double dropout_of(const EncoderConfig& e, double model_dropout) {
  return e.dropout >= 0 ? e.dropout : model_dropout;
}

// What a sequence encoder describes of itself: its type and sizes (no layers the
// hand-written LMF pass could compute).
EncoderDescription sequence_description(EncoderType type, int64_t input_dim, double dropout,
                                        int64_t output) {
  EncoderDescription d;
  d.type = type;
  d.input_dim = input_dim;
  d.dropout = dropout;
  d.output = output;
  return d;
}

// A float [B, T] mask's masked mean of outputs [B, T, H]; an empty row gives zeros.
torch::Tensor masked_mean(const torch::Tensor& outputs, const torch::Tensor& mask) {
  const auto m = mask.unsqueeze(2);
  return (outputs * m).sum(1) / m.sum(1).clamp_min(1);
}
}  // namespace

RecurrentEncoderImpl::RecurrentEncoderImpl(int64_t input_dim, const EncoderConfig& config,
                                           double model_dropout)
    : config_(config), input_dim_(input_dim), dropout_(dropout_of(config, model_dropout)) {
  // LibTorch's dropout between stacked layers (none with one layer), and ours on the output.
  const double between = config.layers > 1 ? dropout_ : 0.0;
  if (config.type == EncoderType::LSTM)
    lstm_ = register_module(
        "rnn", torch::nn::LSTM(torch::nn::LSTMOptions(input_dim, config.state)
                                   .num_layers(config.layers)
                                   .bidirectional(config.bidirectional)
                                   .batch_first(true)
                                   .dropout(between)));
  else
    gru_ = register_module("rnn", torch::nn::GRU(torch::nn::GRUOptions(input_dim, config.state)
                                                     .num_layers(config.layers)
                                                     .bidirectional(config.bidirectional)
                                                     .batch_first(true)
                                                     .dropout(between)));
  const int64_t width = config.state * (config.bidirectional ? 2 : 1);
  if (config.out > 0) out_ = register_module("out", torch::nn::Linear(width, config.out));
}

torch::Tensor RecurrentEncoderImpl::forward(torch::Tensor x) {
  namespace rnn = torch::nn::utils::rnn;
  const auto steps = sequence::values(x, input_dim_);
  const int64_t B = steps.size(0), T = steps.size(1);
  const int64_t width = config_.state * (config_.bidirectional ? 2 : 1);
  const auto lengths = sequence::lengths(x).cpu();
  const auto present = (lengths > 0).to(x.scalar_type()).to(x.device()).unsqueeze(1);
  torch::Tensor h;
  if (B == 0 || T == 0) {
    h = torch::zeros({B, width}, x.options());
  } else if (fast_path()) {
    // One layer, one direction, on the CPU: lstm.hpp's pass, the same equations and
    // parameters, with one autograd node for the whole sequence.
    const auto p = lstm_->named_parameters(/*recurse=*/false);
    const auto [outputs, last] = lstm_forward(steps, lengths, p["weight_ih_l0"],
                                              p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"]);
    h = config_.pooling == Pooling::Mean ? masked_mean(outputs, sequence::mask(x, input_dim_))
                                         : last;
  } else {
    // An empty row is run as one (zero) step and its encoding zeroed after.
    const auto packed = rnn::pack_padded_sequence(steps, lengths.clamp_min(1), /*batch_first=*/true,
                                                  /*enforce_sorted=*/false);
    torch::Tensor padded;  // [B, T, width] when pooling by mean
    torch::Tensor last;    // [layers * directions, B, state], in the rows' order
    const bool mean = config_.pooling == Pooling::Mean;
    if (lstm_) {
      auto result = lstm_->forward_with_packed_input(packed);
      if (mean)
        padded = std::get<0>(rnn::pad_packed_sequence(std::get<0>(result), true, 0.0, T));
      last = std::get<0>(std::get<1>(result));
    } else {
      auto result = gru_->forward_with_packed_input(packed);
      if (mean)
        padded = std::get<0>(rnn::pad_packed_sequence(std::get<0>(result), true, 0.0, T));
      last = std::get<1>(result);
    }
    if (mean) {
      h = masked_mean(padded, sequence::mask(x, input_dim_));
    } else {
      const int64_t directions = config_.bidirectional ? 2 : 1;
      const auto top = last.slice(0, last.size(0) - directions);  // the last layer's
      h = top.permute({1, 0, 2}).reshape({B, width});
    }
    h = h * present;
  }
  h = fast_dropout(h, dropout_, is_training());
  return out_ ? out_(h) : h;
}

int64_t RecurrentEncoderImpl::output_dim() const { return encoder_output_dim(config_, input_dim_); }

bool RecurrentEncoderImpl::fast_path() const {
  if (!lstm_ || config_.layers != 1 || config_.bidirectional || !use_fast_path_) return false;
  const auto& w = lstm_->named_parameters(/*recurse=*/false)["weight_ih_l0"];
  return w.is_cpu() && w.scalar_type() == torch::kFloat32;
}

EncoderDescription RecurrentEncoderImpl::describe() const {
  return sequence_description(config_.type, input_dim_, dropout_, output_dim());
}

double RecurrentEncoderImpl::extra_flops(int64_t steps) const {
  // Per step, layer and direction: gates x W_ih + h W_hh (2 flops per multiply-add) and
  // the element-wise gate arithmetic, about 4 per gate value.
  const double gates = config_.type == EncoderType::LSTM ? 4 : 3;
  const double H = double(config_.state);
  const double directions = config_.bidirectional ? 2 : 1;
  double flops = 0;
  for (int64_t l = 0; l < config_.layers; ++l) {
    const double in = l == 0 ? double(input_dim_) : H * directions;
    flops += directions * double(steps) * gates * H * (2 * (in + H) + 4);
  }
  return flops;
}

torch::Tensor sinusoidal_positions(int64_t T, int64_t W, const torch::TensorOptions& options) {
  const auto t = torch::arange(T, options).unsqueeze(1);
  const auto i = torch::arange(0, W, 2, options);
  const auto angle = t * torch::exp(i * (-std::log(10000.0) / double(W)));
  auto pe = torch::zeros({T, W}, options);
  pe.slice(1, 0, W, 2).copy_(torch::sin(angle));
  pe.slice(1, 1, W, 2).copy_(torch::cos(angle.slice(1, 0, W / 2)));
  return pe;
}

TransformerEncoderImpl::TransformerEncoderImpl(int64_t input_dim, int64_t max_len,
                                               const EncoderConfig& config, double model_dropout)
    : config_(config),
      input_dim_(input_dim),
      max_len_(max_len),
      dropout_(dropout_of(config, model_dropout)) {
  project_ = register_module("project", torch::nn::Linear(input_dim, config.width));
  if (config.positions == Positions::Learned) {
    positions_ = register_parameter("positions", torch::randn({max_len, config.width}) * 0.02);
  }
  if (config.pooling == Pooling::Token)
    token_ = register_parameter("token", torch::randn({1, 1, config.width}) * 0.02);
  layers_ = register_module("layers", torch::nn::ModuleList());
  for (int64_t l = 0; l < config.layers; ++l)
    layers_->push_back(torch::nn::TransformerEncoderLayer(
        torch::nn::TransformerEncoderLayerOptions(config.width, config.heads)
            .dim_feedforward(config.ff)
            .dropout(dropout_)));
  if (config.out > 0) out_ = register_module("out", torch::nn::Linear(config.width, config.out));
}

torch::Tensor TransformerEncoderImpl::forward(torch::Tensor x) {
  const auto steps = sequence::values(x, input_dim_);
  const int64_t B = steps.size(0), T = steps.size(1), W = config_.width;
  auto mask = sequence::mask(x, input_dim_);  // [B, T], 1 at valid steps
  TORCH_CHECK(config_.positions != Positions::Learned || T <= max_len_, "a sequence of ", T,
              " steps, more than the ", max_len_, " learned positions");
  auto h = project_(steps);  // [B, T, W]
  if (config_.positions == Positions::Learned) {
    h = h + positions_.slice(0, 0, T).unsqueeze(0);
  } else {
    h = h + sinusoidal_positions(T, W, x.options()).unsqueeze(0);
  }
  if (token_.defined()) {
    h = torch::cat({token_.expand({B, 1, W}), h}, 1);
    mask = torch::cat({torch::ones({B, 1}, mask.options()), mask}, 1);
  }
  const int64_t S = h.size(1);
  torch::Tensor pooled;
  if (B == 0 || S == 0) {
    pooled = torch::zeros({B, W}, x.options());
  } else {
    // A row with no valid step would attend to nothing (NaN): it attends to its first
    // position instead, and its mean pool is zeroed below.
    auto attend = mask.clone();
    attend.select(1, 0).fill_(1);
    const auto padding = attend == 0;  // [B, S], true where keys are ignored
    auto y = h.transpose(0, 1);        // [S, B, W]: LibTorch's layers take the steps first
    for (const auto& layer : *layers_)
      y = layer->as<torch::nn::TransformerEncoderLayer>()->forward(y, {}, padding);
    y = y.transpose(0, 1);
    pooled = token_.defined() ? y.select(1, 0) : masked_mean(y, mask);
  }
  return out_ ? out_(pooled) : pooled;
}

int64_t TransformerEncoderImpl::output_dim() const {
  return encoder_output_dim(config_, input_dim_);
}

EncoderDescription TransformerEncoderImpl::describe() const {
  return sequence_description(config_.type, input_dim_, dropout_, output_dim());
}

double TransformerEncoderImpl::extra_flops(int64_t steps) const {
  // Per layer beyond its Linear layers' per-row count: every step's projections and
  // feed-forward (the Linear count is per row, not per step), and attention's two
  // [S, S] products per head.
  const double S = double(steps + (token_.defined() ? 1 : 0)), W = double(config_.width);
  const double per_step = 2 * W * 4 * W + 2 * 2 * W * double(config_.ff);
  return double(config_.layers) * (S * per_step + 2 * 2 * S * S * W) +
         2 * double(input_dim_) * W * S;
}

EncoderPtr make_encoder(const ModalityConfig& m, const ModelConfig& model) {
  const EncoderConfig e = encoder_for(model, m);
  switch (e.type) {
    case EncoderType::MLP:
    case EncoderType::Mean:
    case EncoderType::MeanPadded:
    case EncoderType::Last:
      return std::make_shared<MLPEncoderImpl>(m.dim, e.hidden, model.dropout, model.activation,
                                              e.batch_norm, e.type);
    case EncoderType::LSTM:
    case EncoderType::GRU: return std::make_shared<RecurrentEncoderImpl>(m.dim, e, model.dropout);
    case EncoderType::Transformer:
      return std::make_shared<TransformerEncoderImpl>(m.dim, m.max_len, e, model.dropout);
  }
  TORCH_CHECK(false, "unknown encoder type");
}

ModalityEncodersImpl::ModalityEncodersImpl(const std::vector<ModalityConfig>& modalities,
                                           const ModelConfig& model)
    : modality_dropout_(model.modality_dropout) {
  for (const auto& m : modalities) {
    encoders_.push_back(register_module(m.name, make_encoder(m, model)));
    sequence_.push_back(m.sequence);
  }
  if (model.modality_dropout > 0)
    for (size_t m = 0; m < modalities.size(); ++m)
      missing_.push_back(register_parameter("missing_" + modalities[m].name,
                                            torch::zeros({encoders_[m]->output_dim()})));
}

std::vector<torch::Tensor> ModalityEncodersImpl::forward(const std::vector<torch::Tensor>& inputs) {
  TORCH_CHECK(inputs.size() == encoders_.size(), "expected ", encoders_.size(),
              " modality inputs, got ", inputs.size());
  std::vector<torch::Tensor> h;
  h.reserve(inputs.size());
  for (size_t m = 0; m < inputs.size(); ++m) {
    if (missing_.empty()) {
      h.push_back(encoders_[m]->forward(inputs[m]));
      continue;
    }
    torch::Tensor x = inputs[m];
    // Missing rows: NaN in a vector row, length 0 in a sequence row.
    torch::Tensor absent = sequence_[m] ? x.select(1, 0) <= 0 : torch::isnan(x).any(1);
    if (!sequence_[m]) x = torch::where(absent.unsqueeze(1), torch::zeros_like(x), x);
    if (is_training() && modality_dropout_ > 0)
      absent = absent | (torch::rand({x.size(0)}, x.options()) < modality_dropout_);
    const torch::Tensor encoded = encoders_[m]->forward(x);
    h.push_back(torch::where(absent.unsqueeze(1), missing_[m].unsqueeze(0).expand_as(encoded), encoded));
  }
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
  d.missing_encodings = encoders->has_missing_encodings();
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
    case ModelType::MulT: return make_mult(modalities, model, output_dim);
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
