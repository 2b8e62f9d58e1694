#pragma once
// Fusion models. Every model maps one [B, dim_m] tensor per modality (config order) to
// a [B, output_dim] prediction. The trainer only sees MultimodalModel; which model it is
// comes from the factory, keyed by model.type.
//
// Parameter names are the checkpoint schema:
//   encoders.<modality>.fc<i>.{weight,bias}   per-modality MLP layers
//   fusion.factor_<modality>                   LMF factor, (rank, d_m + 1, fused_dim)
//   fusion.rank_weights                        (1, rank)
//   fusion.bias                                (1, fused_dim)
//   head.{weight,bias}                         present when fused_dim != output_dim
// TFN and concat: encoders.*, post.fc<i>.{weight,bias}, out.{weight,bias};
// late: encoders.*, heads.<modality>.{weight,bias}.
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/config.hpp"

namespace mmfusion {

// Interface of every fusion model.
class MultimodalModelImpl : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const std::vector<torch::Tensor>& inputs) = 0;
  // Parameters that may get their own learning rate (train.factor_lr); empty by default.
  virtual std::vector<torch::Tensor> factor_parameters() { return {}; }
};
using ModelPtr = std::shared_ptr<MultimodalModelImpl>;

// A modality encoder: (Linear -> ReLU -> Dropout) per hidden size. With no hidden sizes
// it is the identity and h_m = x_m.
struct MLPEncoderImpl : torch::nn::Module {
  MLPEncoderImpl(int64_t input_dim, const std::vector<int64_t>& hidden, double dropout);
  torch::Tensor forward(torch::Tensor x);
  int64_t output_dim() const { return output_dim_; }
  const std::vector<torch::nn::Linear>& layers() const { return layers_; }
  double dropout() const { return dropout_; }

 private:
  std::vector<torch::nn::Linear> layers_;
  double dropout_;
  int64_t output_dim_;
};
TORCH_MODULE(MLPEncoder);

// One encoder per modality, registered under the modality's name.
struct ModalityEncodersImpl : torch::nn::Module {
  ModalityEncodersImpl(const std::vector<ModalityConfig>& modalities, const ModelConfig& model);
  std::vector<torch::Tensor> forward(const std::vector<torch::Tensor>& inputs);
  std::vector<int64_t> output_dims() const;
  const std::vector<MLPEncoder>& encoders() const { return encoders_; }

 private:
  std::vector<MLPEncoder> encoders_;
};
TORCH_MODULE(ModalityEncoders);

// The low-rank fusion layer of Liu et al. (2018), METHODS.md section 1:
//   y = sum_r w_r * prod_m ([1; h_m] . W_m[r]) + b
struct LowRankFusionOptions {
  LowRankFusionOptions(std::vector<std::string> names, std::vector<int64_t> input_dims)
      : names_(std::move(names)), input_dims_(std::move(input_dims)) {}
  TORCH_ARG(std::vector<std::string>, names);
  TORCH_ARG(std::vector<int64_t>, input_dims);  // d_m, without the constant 1
  TORCH_ARG(int64_t, rank) = 4;
  TORCH_ARG(int64_t, output_dim) = 32;
  // false: the paper's plain sum over rank (rank_weights is then a buffer of ones).
  TORCH_ARG(bool, learned_rank_weights) = true;
};

struct LowRankFusionImpl : torch::nn::Module {
  explicit LowRankFusionImpl(LowRankFusionOptions options);
  void reset_parameters();  // xavier-normal factors and rank weights, zero bias
  torch::Tensor forward(const std::vector<torch::Tensor>& h);
  LowRankFusionOptions options;
  std::vector<torch::Tensor> factors;  // (rank, d_m + 1, output_dim) each
  torch::Tensor rank_weights;          // (1, rank)
  torch::Tensor bias;                  // (1, output_dim)

 private:
  torch::Tensor identity_;  // I_out on the inputs' device (not part of the state)
};
TORCH_MODULE(LowRankFusion);

// LMF: encoders -> low-rank fusion -> linear head (when fused_dim != output_dim).
struct LMFOptions {
  LMFOptions(std::vector<ModalityConfig> modalities, int64_t output_dim)
      : modalities_(std::move(modalities)), output_dim_(output_dim) {}
  TORCH_ARG(std::vector<ModalityConfig>, modalities);
  TORCH_ARG(int64_t, output_dim);
  TORCH_ARG(ModelConfig, model);  // rank, dropout, fused_dim, encoder sizes
};

class LMFPass;  // lmf_pass.hpp

class LMFImpl : public MultimodalModelImpl {
 public:
  explicit LMFImpl(LMFOptions options);
  // In eval mode without gradients (InferenceMode, NoGradGuard) on CPU float32 tensors,
  // this runs the hand-written pass of lmf_pass.hpp, which computes the same function
  // with fewer operations; otherwise the module graph below.
  torch::Tensor forward(const std::vector<torch::Tensor>& inputs) override;
  std::vector<torch::Tensor> factor_parameters() override { return fusion->factors; }

  LMFOptions options;
  ModalityEncoders encoders{nullptr};
  LowRankFusion fusion{nullptr};
  torch::nn::Linear head{nullptr};

 private:
  std::shared_ptr<LMFPass> inference_;  // made on the first forward that can use it
  std::mutex inference_mutex_;
};
TORCH_MODULE(LMF);

// Post-fusion network of TFN and concat: dropout on the fused vector, then
// (Linear -> ReLU -> Dropout) per hidden size, then a linear output layer.
struct PostFusionImpl : torch::nn::Module {
  PostFusionImpl(int64_t input_dim, const std::vector<int64_t>& hidden, int64_t output_dim,
                 double dropout);
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
  TFNImpl(const std::vector<ModalityConfig>& modalities, const ModelConfig& model, int64_t output_dim);
  torch::Tensor forward(const std::vector<torch::Tensor>& inputs) override;
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
  bool mean_ = false;
};
TORCH_MODULE(LateFusion);

// Builds the model named by model.type. output_dim: the target's columns.
ModelPtr make_model(const ModelConfig& model, const std::vector<ModalityConfig>& modalities,
                    int64_t output_dim);

// Number of parameters, total and per top-level submodule (encoders, fusion, head).
std::vector<std::pair<std::string, int64_t>> parameter_counts(torch::nn::Module& module);

}  // namespace mmfusion
