#pragma once
// Fusion models. Every model maps one [B, dim_m] tensor per modality (config order; a
// sequence's rows as sequence.hpp lays them out) to a [B, output_dim] prediction. The trainer only sees MultimodalModel; which model it is
// comes from the factory, keyed by model.type. Models know nothing of how they are run:
// the hand-written LMF pass (lmf_pass.hpp) works from the description LMF gives of itself,
// and whoever runs a step (step.hpp) chooses it.
//
// Parameter names are the checkpoint schema:
//   encoders.<modality>.fc<i>.{weight,bias}   per-modality MLP layers
//   encoders.<modality>.input_norm.*           its batch norm (batch_norm)
//   encoders.<modality>.{rnn,project,positions,token,layers,out}.*   sequence encoders
//   fusion.factor_<modality>                   LMF factor, (rank, d_m + 1, fused_dim)
//   fusion.rank_weights                        (1, rank)
//   fusion.bias                                (1, fused_dim)
//   head.{weight,bias}                         present when fused_dim != output_dim
// TFN and concat: encoders.*, post.fc<i>.{weight,bias}, out.{weight,bias};
// late: encoders.*, heads.<modality>.{weight,bias};
// intense: encoders.*, project.<modality>.weight (modalities in an interaction),
// project_norm.<modality>.{running_mean,running_var}, block_norm.<i>.{running_mean,
// running_var} (blocks in IntenseImpl::layout() order), fusion.{weight,bias}.
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>
#include <torch/torch.h>

#include "mmfusion/config/config.hpp"

namespace mmfusion {

// Interface of every fusion model.
class MultimodalModelImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const std::vector<torch::Tensor>& inputs) = 0;
  // Parameters that may get their own learning rate (train.factor_lr); empty by default.
  virtual std::vector<torch::Tensor> factor_parameters() { return {}; }
  // A term the model adds to the training objective, differentiable in its parameters
  // (InTense's block regulariser); undefined when it adds none.
  virtual torch::Tensor penalty() { return {}; }
  // Named relevance scores of the model's parts (InTense: one per block, named as in
  // subset_name); empty when the model has none.
  virtual std::vector<std::pair<std::string, double>> relevance() const { return {}; }
  // Floating-point operations of one sample's forward pass (bench's GFLOP/s): every
  // Linear layer (2 in out, + out with a bias), plus what a model computes besides
  // (override and add to this); element-wise activations and dropout are not counted.
  virtual double forward_flops() const;
};
using ModelPtr = std::shared_ptr<MultimodalModelImpl>;

// y = activation(x) element-wise.
torch::Tensor activate(Activation activation, const torch::Tensor& x);

// What a modality encoder computes, with handles to its parameters: per hidden size,
// Linear -> activation -> dropout. No hidden sizes: the identity. A sequence encoder
// (type other than mlp) describes only its type and sizes: the hand-written LMF pass
// computes MLPs of vectors alone.
struct EncoderDescription {
  struct Layer {
    torch::Tensor weight, bias;  // (out, in), (out)
  };
  EncoderType type = EncoderType::MLP;
  int64_t input_dim = 0;
  std::vector<int64_t> hidden;
  Activation activation = Activation::ReLU;
  double dropout = 0;
  bool batch_norm = false;    // an input batch norm (not in `layers`)
  std::vector<Layer> layers;  // one per hidden size (mlp, mean, mean_padded, last)
  int64_t output = 0;         // the encoding's size
  int64_t output_dim() const { return output; }
};

// A modality encoder: the modality's rows in, [B, output_dim()] out. A vector modality's
// rows are [B, dim]; a sequence's are sequence.hpp's [B, 1 + T * dim], whose padding
// changes no encoding (except mean_padded's, which divides by T as MMSA does).
class EncoderImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(torch::Tensor x) = 0;
  virtual int64_t output_dim() const = 0;
  virtual EncoderDescription describe() const = 0;
  // Floating-point operations of one row of T steps beyond the Linear layers that
  // MultimodalModelImpl::forward_flops counts (recurrences, attention); 0 by default.
  virtual double extra_flops(int64_t /*steps*/) const { return 0; }
};
using EncoderPtr = std::shared_ptr<EncoderImpl>;

// An MLP encoder: an optional batch norm of the input (model.encoders.<m>.batch_norm), then
// (Linear -> activation -> Dropout) per hidden size. With neither it is the identity and
// h_m = x_m. With a pooling type (mean, mean_padded, last) its input is a sequence pooled
// over time first (the masked mean over the valid steps, the sum over the padded length
// divided by T, the last valid step; an empty row pools to zeros).
class MLPEncoderImpl : public EncoderImpl {
 public:
  MLPEncoderImpl(int64_t input_dim, const std::vector<int64_t>& hidden, double dropout,
                 Activation activation = Activation::ReLU, bool batch_norm = false,
                 EncoderType pooling = EncoderType::MLP);
  torch::Tensor forward(torch::Tensor x) override;
  int64_t output_dim() const override { return output_dim_; }
  EncoderDescription describe() const override;

 private:
  std::vector<torch::nn::Linear> layers_;
  torch::nn::BatchNorm1d input_norm_{nullptr};
  int64_t input_dim_;
  double dropout_;
  Activation activation_;
  EncoderType pooling_;
  int64_t output_dim_;
};
TORCH_MODULE(MLPEncoder);

// A sequence's pooled vector [B, dim] (type: mean, mean_padded or last; see MLPEncoderImpl).
torch::Tensor pool_sequence(EncoderType type, const torch::Tensor& rows, int64_t dim);

// LSTM or GRU (LibTorch's modules) over each row's valid steps, packed so that padding never
// enters: the last layer's final hidden state at the row's own length (both directions,
// concatenated), or the masked mean of its outputs; then dropout and, with `out`, a Linear
// layer (the LMF paper's text subnet). An empty row encodes as zeros before that layer.
// Parameters: rnn.* (LibTorch's names), out.{weight,bias}.
class RecurrentEncoderImpl : public EncoderImpl {
 public:
  RecurrentEncoderImpl(int64_t input_dim, const EncoderConfig& config, double model_dropout);
  torch::Tensor forward(torch::Tensor x) override;
  int64_t output_dim() const override;
  EncoderDescription describe() const override;
  double extra_flops(int64_t steps) const override;
  // Whether forward takes lstm.hpp's pass (a one-layer, one-direction LSTM on the CPU in
  // float32) rather than LibTorch's module on packed sequences; tests turn it off to
  // compare the two.
  bool fast_path() const;
  void use_fast_path(bool on) { use_fast_path_ = on; }

 private:
  EncoderConfig config_;
  int64_t input_dim_;
  double dropout_;
  bool use_fast_path_ = true;
  torch::nn::LSTM lstm_{nullptr};
  torch::nn::GRU gru_{nullptr};
  torch::nn::Linear out_{nullptr};
};

// A transformer encoder (LibTorch's TransformerEncoderLayer, post-norm): the steps projected
// to `width`, sinusoidal or learned positions added, an optional learned summary token in
// front, key-padding masks so that padding is never attended to; pooled by the masked mean
// of the valid steps' outputs or the token's output, then an optional Linear layer. An
// empty row pools to zeros (mean) or reads the token alone. Parameters: project.*,
// positions (learned), token, layers.<i>.*, out.*.
class TransformerEncoderImpl : public EncoderImpl {
 public:
  TransformerEncoderImpl(int64_t input_dim, int64_t max_len, const EncoderConfig& config,
                         double model_dropout);
  torch::Tensor forward(torch::Tensor x) override;
  int64_t output_dim() const override;
  EncoderDescription describe() const override;
  double extra_flops(int64_t steps) const override;

 private:
  EncoderConfig config_;
  int64_t input_dim_, max_len_;
  double dropout_;
  torch::nn::Linear project_{nullptr};
  torch::Tensor positions_, token_;
  torch::nn::ModuleList layers_{nullptr};  // TransformerEncoderLayer each
  torch::nn::Linear out_{nullptr};
};

// The encoder a config gives a modality (encoder_for), built.
EncoderPtr make_encoder(const ModalityConfig& modality, const ModelConfig& model);

// One encoder per modality, registered under the modality's name. With modality dropout
// (model.modality_dropout > 0, from train.modality_dropout) each modality also has a
// learned missing encoding, missing_<modality> [output_dim]: it takes the encoder's place
// for rows that are missing (a vector row of NaN, a sequence row of length 0) and, while
// training, for each row with probability modality_dropout.
struct ModalityEncodersImpl : torch::nn::Module {
  ModalityEncodersImpl(const std::vector<ModalityConfig>& modalities, const ModelConfig& model);
  std::vector<torch::Tensor> forward(const std::vector<torch::Tensor>& inputs);
  std::vector<int64_t> output_dims() const;
  const std::vector<EncoderPtr>& encoders() const { return encoders_; }
  bool has_missing_encodings() const { return !missing_.empty(); }

 private:
  std::vector<EncoderPtr> encoders_;
  std::vector<bool> sequence_;
  double modality_dropout_ = 0.0;
  std::vector<torch::Tensor> missing_;
};
TORCH_MODULE(ModalityEncoders);

// The layout of one LMF factor: W_m of shape (rank, d+1, out) read as the matrix V_m of
// shape (d+1, rank * out), V_m[i, r * out + j] = W_m[r, i, j], so that [1; h_m] V_m gives
// every rank component at once. Row 0 multiplies the constant 1 (a bias row).
struct FactorLayout {
  int64_t rank = 0, rows = 0, out = 0;  // rows = d + 1
  // V from W, differentiable (a copy: W's memory is rank-major).
  torch::Tensor flatten(const torch::Tensor& w) const;
  // V from W and W += V-shaped values, as plain loops over contiguous float32 memory (the
  // hand-written pass; its gradient of V goes back into W's layout this way).
  void flatten_into(const float* w, float* v) const;
  void add_unflattened(const float* v, float* w) const;
};

// The low-rank fusion layer of Liu et al. (2018), docs/methods.md:
//   y = sum_r w_r * prod_m ([1; h_m] . W_m[r]) + b
struct LowRankFusionOptions {
  LowRankFusionOptions(std::vector<std::string> names, std::vector<int64_t> input_dims)
      : names_(std::move(names)), input_dims_(std::move(input_dims)) {}
  TORCH_ARG(std::vector<std::string>, names);
  TORCH_ARG(std::vector<int64_t>, input_dims);              // d_m, without the constant 1
  TORCH_ARG(int64_t, rank) = ModelConfig{}.rank;            // the config's default
  TORCH_ARG(int64_t, fused_dim) = ModelConfig{}.fused_dim;  // d_out, the width of y
  // false: the paper's plain sum over rank (rank_weights is then a buffer of ones).
  TORCH_ARG(bool, learned_rank_weights) = true;
};

struct LowRankFusionImpl : torch::nn::Module {
  explicit LowRankFusionImpl(LowRankFusionOptions options);
  void reset_parameters();  // xavier-normal factors and rank weights, zero bias
  torch::Tensor forward(const std::vector<torch::Tensor>& h);
  FactorLayout factor_layout(size_t m) const;
  LowRankFusionOptions options;
  std::vector<torch::Tensor> factors;  // (rank, d_m + 1, fused_dim) each
  torch::Tensor rank_weights;          // (1, rank)
  torch::Tensor bias;                  // (1, fused_dim)

 private:
  torch::Tensor identity_;  // I_out on the inputs' device (not part of the state)
};
TORCH_MODULE(LowRankFusion);

// What an LMF computes, with handles to its parameters: everything a second
// implementation of its forward and backward (lmf_pass.hpp) or a FLOP count needs.
//   h_m = encoder_m(x_m); F_m = [1; h_m] V_m (V_m: factor m in FactorLayout);
//   y = sum_r w_r prod_m F_m[:, r] + bias; out = head(y) when there is a head.
struct LMFDescription {
  std::vector<EncoderDescription> encoders;  // one per modality, config order
  int64_t rank = 0, fused_dim = 0, output_dim = 0;
  RankWeighting rank_weighting = RankWeighting::Learned;  // Sum: rank_weights is a buffer of ones
  std::vector<torch::Tensor> factors;                     // (rank, d_m + 1, fused_dim)
  std::vector<FactorLayout> factor_layouts;               // how each is read as V_m
  torch::Tensor rank_weights, bias;                       // (1, rank), (1, fused_dim)
  // (output_dim, fused_dim), (output_dim); undefined without a head
  torch::Tensor head_weight, head_bias;
  // Parameter values this description accounts for, and the module's own count: a module
  // with anything the description does not name (a new layer) has more.
  int64_t described_parameters = 0, module_parameters = 0;
  bool missing_encodings = false;  // modality dropout's (the pass does not compute them)

  bool has_head() const { return head_weight.defined(); }
  bool complete() const { return described_parameters == module_parameters; }
};

// LMF: encoders -> low-rank fusion -> linear head (when fused_dim != output_dim).
struct LMFOptions {
  LMFOptions(std::vector<ModalityConfig> modalities, int64_t output_dim)
      : modalities_(std::move(modalities)), output_dim_(output_dim) {}
  TORCH_ARG(std::vector<ModalityConfig>, modalities);
  TORCH_ARG(int64_t, output_dim);
  TORCH_ARG(ModelConfig, model);  // rank, dropout, activation, fused_dim, encoder sizes
};

class LMFImpl : public MultimodalModelImpl {
 public:
  explicit LMFImpl(LMFOptions options);
  torch::Tensor forward(const std::vector<torch::Tensor>& inputs) override;
  std::vector<torch::Tensor> factor_parameters() override { return fusion->factors; }
  double forward_flops() const override;  // + the factors' products, the rank sum, the bias
  LMFDescription describe() const;

  LMFOptions options;
  ModalityEncoders encoders{nullptr};
  LowRankFusion fusion{nullptr};
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(LMF);

// Post-fusion network of TFN and concat: dropout on the fused vector, then
// (Linear -> ReLU -> Dropout) per hidden size, then a linear output layer.
struct PostFusionImpl : torch::nn::Module {
  PostFusionImpl(int64_t input_dim, const std::vector<int64_t>& hidden, int64_t output_dim,
                 double dropout, Activation activation);
  torch::Tensor forward(torch::Tensor x);
  double dropout;
  MLPEncoder post{nullptr};
  torch::nn::Linear out{nullptr};
};
TORCH_MODULE(PostFusion);

// Tensor Fusion Network (Zadeh et al., 2017): the flattened outer product of the
// [1; h_m] over all modalities, size prod(d_m + 1), then the post-fusion network.
class TFNImpl : public MultimodalModelImpl {
 public:
  TFNImpl(const std::vector<ModalityConfig>& modalities, const ModelConfig& model,
          int64_t output_dim);
  torch::Tensor forward(const std::vector<torch::Tensor>& inputs) override;
  double forward_flops() const override;  // + one multiply per entry of the outer product
  // The fused representation itself, [B, prod(d_m + 1)] (tests check it).
  torch::Tensor fuse(const std::vector<torch::Tensor>& h) const;
  int64_t fused_size() const { return fused_size_; }
  ModalityEncoders encoders{nullptr};
  PostFusion post{nullptr};

 private:
  int64_t fused_size_ = 1;
};
TORCH_MODULE(TFN);

// Early fusion: concatenated encodings, then the post-fusion network.
class ConcatFusionImpl : public MultimodalModelImpl {
 public:
  ConcatFusionImpl(const std::vector<ModalityConfig>& modalities, const ModelConfig& model,
                   int64_t output_dim);
  torch::Tensor forward(const std::vector<torch::Tensor>& inputs) override;
  ModalityEncoders encoders{nullptr};
  PostFusion post{nullptr};
};
TORCH_MODULE(ConcatFusion);

// Late fusion: one linear head per modality, outputs summed (or averaged). It can only
// represent functions additive over modalities, which makes it the control.
class LateFusionImpl : public MultimodalModelImpl {
 public:
  LateFusionImpl(const std::vector<ModalityConfig>& modalities, const ModelConfig& model,
                 int64_t output_dim);
  torch::Tensor forward(const std::vector<torch::Tensor>& inputs) override;
  ModalityEncoders encoders{nullptr};
  std::vector<torch::nn::Linear> heads;

 private:
  LateCombine combine_;
};
TORCH_MODULE(LateFusion);

// Batch normalisation without affine parameters, with one variance per feature or one for
// the whole block: x -> (x - mean) / sqrt(v + eps), mean per feature, v the feature's
// variance or the sum of all features' variances (so that the block has unit expected
// squared norm). Batch statistics in training (their running estimates updated with
// momentum 0.1), the running estimates in evaluation and for a training batch of one row.
struct BlockNormImpl : torch::nn::Module {
  BlockNormImpl(int64_t dim, bool one_variance);
  torch::Tensor forward(const torch::Tensor& x);
  bool one_variance;
  torch::Tensor running_mean;  // [dim]
  torch::Tensor running_var;   // [dim], or [] with one_variance
};
TORCH_MODULE(BlockNorm);

// Interpretable Tensor Fusion (InTense; Varshneya et al., IJCAI 2024; docs/intense.md).
// Blocks: every modality's encoding z_m, then for each set S of model.intense.interactions
// the flattened outer product of the projections u_m = BatchNorm(W_m z_m) of its
// members (model.intense.latent_dim each; one projection per modality, shared by the
// sets it is in). The projections are centred (batch means in training, running means in
// evaluation), so each interaction block holds no lower-order part, at any order.
// Every block is normalised with one variance (BlockNorm), and one Linear layer maps the
// concatenated blocks to the output; its weight's column blocks W_b give the penalty
// reg * (sum_b ||W_b||^q)^(2/q), q = 2p/(p+1), and the relevance scores.
class IntenseImpl : public MultimodalModelImpl {
 public:
  struct Block {
    std::string name;             // subset_name of its modalities
    std::vector<size_t> members;  // indices into the config's modalities
    int64_t begin = 0, end = 0;   // its columns of the fusion weight
  };
  IntenseImpl(const std::vector<ModalityConfig>& modalities, const ModelConfig& model,
              int64_t output_dim);
  torch::Tensor forward(const std::vector<torch::Tensor>& inputs) override;
  torch::Tensor penalty() override;
  std::vector<std::pair<std::string, double>> relevance() const override;
  // + the interaction blocks' outer products and the normalisations (2 per element)
  double forward_flops() const override;
  // The normalised blocks, [B, end - begin] each, in layout() order.
  std::vector<torch::Tensor> blocks(const std::vector<torch::Tensor>& inputs);
  const std::vector<Block>& layout() const { return layout_; }
  std::vector<std::pair<int64_t, int64_t>> columns() const;  // each block's [begin, end)

  ModalityEncoders encoders{nullptr};
  std::vector<torch::nn::Linear> projections;  // per modality; null when in no interaction
  std::vector<BlockNorm> projection_norms;     // per feature, beside each projection
  std::vector<BlockNorm> block_norms;          // one variance each, per block
  torch::nn::Linear fusion{nullptr};

 private:
  IntenseConfig config_;
  std::vector<Block> layout_;
};
TORCH_MODULE(Intense);

// The model's relevance scores as {block: score} ({} when it has none).
nlohmann::json relevance_json(const MultimodalModelImpl& model);

// MulT (mult.hpp), built; defined in mult.cpp, which includes this header (so that this
// module needs not include that one).
ModelPtr make_mult(const std::vector<ModalityConfig>& modalities, const ModelConfig& model,
                   int64_t output_dim);

// Sinusoidal positions [T, W]: sin(t / 10000^(2i/W)) in even columns, cos in odd ones
// (Vaswani et al., 2017), as the transformer encoder and MulT add them.
torch::Tensor sinusoidal_positions(int64_t steps, int64_t width, const torch::TensorOptions& options);

// Builds the model named by model.type. output_dim: the target's columns.
ModelPtr make_model(const ModelConfig& model, const std::vector<ModalityConfig>& modalities,
                    int64_t output_dim);

// Number of parameters, total and per top-level submodule (encoders, fusion, head).
std::vector<std::pair<std::string, int64_t>> parameter_counts(torch::nn::Module& module);

}  // namespace mmfusion
