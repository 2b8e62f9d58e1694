#include "mmfusion/models.hpp"

#include "mmfusion/dropout.hpp"
#include "mmfusion/errors.hpp"
#include "mmfusion/lmf_pass.hpp"

namespace mmfusion {

MLPEncoderImpl::MLPEncoderImpl(int64_t input_dim, const std::vector<int64_t>& hidden, double dropout)
    : dropout_(dropout), output_dim_(input_dim) {
  for (size_t i = 0; i < hidden.size(); ++i) {
    layers_.push_back(register_module("fc" + std::to_string(i),
                                      torch::nn::Linear(output_dim_, hidden[i])));
    output_dim_ = hidden[i];
  }
}

torch::Tensor MLPEncoderImpl::forward(torch::Tensor x) {
  for (auto& layer : layers_) x = fast_dropout(torch::relu(layer(x)), dropout_, is_training());
  return x;
}

ModalityEncodersImpl::ModalityEncodersImpl(const std::vector<ModalityConfig>& modalities,
                                           const ModelConfig& model) {
  for (const auto& m : modalities)
    encoders_.push_back(register_module(
        m.name, MLPEncoder(m.dim, encoder_hidden_for(model, m.name), model.dropout)));
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

LowRankFusionImpl::LowRankFusionImpl(LowRankFusionOptions opts) : options(std::move(opts)) {
  const auto& names = options.names();
  const auto& dims = options.input_dims();
  TORCH_CHECK(names.size() == dims.size() && names.size() >= 1, "one input dim per modality");
  for (size_t m = 0; m < names.size(); ++m)
    factors.push_back(register_parameter(
        "factor_" + names[m], torch::empty({options.rank(), dims[m] + 1, options.output_dim()})));
  rank_weights = options.learned_rank_weights()
                     ? register_parameter("rank_weights", torch::empty({1, options.rank()}))
                     : register_buffer("rank_weights", torch::ones({1, options.rank()}));
  bias = register_parameter("bias", torch::empty({1, options.output_dim()}));
  reset_parameters();
}

void LowRankFusionImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  for (auto& f : factors) torch::nn::init::xavier_normal_(f);
  if (options.learned_rank_weights()) torch::nn::init::xavier_normal_(rank_weights);
  bias.zero_();
}

torch::Tensor LowRankFusionImpl::forward(const std::vector<torch::Tensor>& h) {
  TORCH_CHECK(h.size() == factors.size(), "expected ", factors.size(), " inputs, got ", h.size());
  const int64_t rank = options.rank();
  const int64_t out = options.output_dim();
  // [1; h] . W[r] for all r at once: the constant 1 picks row 0 of every factor, so it is
  // a bias row of one addmm over the (d_m, rank * out) matrix of the other rows.
  torch::Tensor product;
  for (size_t m = 0; m < h.size(); ++m) {
    const auto& w = factors[m];                                      // (rank, d+1, out)
    const auto flat = w.permute({1, 0, 2}).reshape({w.size(1), rank * out});  // (d+1, rank*out)
    auto f = torch::addmm(flat[0], h[m], flat.slice(0, 1));           // (B, rank*out)
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
      "fusion", LowRankFusion(LowRankFusionOptions(names, encoders->output_dims())
                                  .rank(model.rank)
                                  .output_dim(model.fused_dim)
                                  .learned_rank_weights(model.rank_weighting == "learned")));
  if (model.fused_dim != options.output_dim())
    head = register_module("head", torch::nn::Linear(model.fused_dim, options.output_dim()));
}

torch::Tensor LMFImpl::forward(const std::vector<torch::Tensor>& inputs) {
  const auto& b = fusion->bias;
  if (!is_training() && !torch::GradMode::is_enabled() && b.device().is_cpu() &&
      b.scalar_type() == torch::kFloat32 && LMFPass::accepts(inputs)) {
    std::shared_ptr<LMFPass> pass;
    {
      std::lock_guard<std::mutex> lock(inference_mutex_);
      if (!inference_ && LMFPass::supports(*this)) inference_ = std::make_shared<LMFPass>(*this, TrainConfig{});
      pass = inference_;
    }
    if (pass) return pass->infer(inputs);
  }
  auto y = fusion->forward(encoders->forward(inputs));
  return head ? head(y) : y;
}

PostFusionImpl::PostFusionImpl(int64_t input_dim, const std::vector<int64_t>& hidden,
                               int64_t output_dim, double p)
    : dropout(p) {
  post = register_module("post", MLPEncoder(input_dim, hidden, p));
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
  for (int64_t d : encoders->output_dims()) fused_size_ *= d + 1;
  post = register_module("post", PostFusion(fused_size_, model.post_hidden, output_dim, model.dropout));
}

torch::Tensor TFNImpl::fuse(const std::vector<torch::Tensor>& h) const {
  // Built one modality at a time into a (B, prod so far) matrix: the only buffers are
  // the running product, never a (B, d1+1, d2+1, ...) tensor of temporaries.
  const int64_t batch = h.front().size(0);
  torch::Tensor z;
  for (const auto& hm : h) {
    const auto zm = torch::nn::functional::pad(hm, torch::nn::functional::PadFuncOptions({1, 0}).value(1.0));
    z = z.defined() ? (z.unsqueeze(2) * zm.unsqueeze(1)).view({batch, -1}) : zm;
  }
  return z;
}

torch::Tensor TFNImpl::forward(const std::vector<torch::Tensor>& inputs) {
  return post(fuse(encoders->forward(inputs)));
}

ConcatFusionImpl::ConcatFusionImpl(const std::vector<ModalityConfig>& modalities,
                                   const ModelConfig& model, int64_t output_dim) {
  encoders = register_module("encoders", ModalityEncoders(modalities, model));
  post = register_module(
      "post", PostFusion(sum_dims(encoders->output_dims()), model.post_hidden, output_dim, model.dropout));
}

torch::Tensor ConcatFusionImpl::forward(const std::vector<torch::Tensor>& inputs) {
  return post(torch::cat(encoders->forward(inputs), 1));
}

LateFusionImpl::LateFusionImpl(const std::vector<ModalityConfig>& modalities,
                               const ModelConfig& model, int64_t output_dim)
    : mean_(model.late_combine == "mean") {
  encoders = register_module("encoders", ModalityEncoders(modalities, model));
  auto holder = register_module("heads", std::make_shared<torch::nn::Module>());
  const auto dims = encoders->output_dims();
  for (size_t m = 0; m < modalities.size(); ++m)
    heads.push_back(holder->register_module(modalities[m].name, torch::nn::Linear(dims[m], output_dim)));
}

torch::Tensor LateFusionImpl::forward(const std::vector<torch::Tensor>& inputs) {
  const auto h = encoders->forward(inputs);
  torch::Tensor y = heads[0](h[0]);
  for (size_t m = 1; m < h.size(); ++m) y = y + heads[m](h[m]);
  return mean_ ? y / static_cast<double>(h.size()) : y;
}

ModelPtr make_model(const ModelConfig& model, const std::vector<ModalityConfig>& modalities,
                    int64_t output_dim) {
  if (output_dim < 1) throw ConfigError("model.output_dim: expected an integer >= 1, got " +
                                        std::to_string(output_dim));
  if (model.type == "lmf") return LMF(LMFOptions(modalities, output_dim).model(model)).ptr();
  if (model.type == "tfn") return TFN(modalities, model, output_dim).ptr();
  if (model.type == "concat") return ConcatFusion(modalities, model, output_dim).ptr();
  if (model.type == "late") return LateFusion(modalities, model, output_dim).ptr();
  throw ConfigError("model.type: unknown model type \"" + model.type + "\"");
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
