#pragma once
// MulT, the Multimodal Transformer (Tsai et al., ACL 2019; docs/mult.md), for any number
// M >= 2 of modalities, vector or sequence (a vector is a sequence of one step):
//   x_m -> input dropout -> Conv1d to width d (no bias) -> [T_m, B, d]
//   for each target t and source s != t: a cross-modal transformer (`layers` pre-norm
//     layers: queries from t, keys and values from s, one LayerNorm shared by all three;
//     a ReLU feed-forward of 4 d; residuals; a final LayerNorm); inputs scaled by sqrt(d),
//     with sinusoidal positions and embedding dropout
//   per target: its sources' outputs concatenated ((M - 1) d) through a self-attention
//     transformer of `memory_layers` layers
//   per target: the last valid step (or the masked mean); all targets concatenated (D)
//   head: z + proj2(dropout(relu(proj1(z)))) -> out
// With one modality and model.mult.unimodal (the paper's unimodal ablation), its one stack
// is self-attention, cross.<m>_from_<m>, and the memory transformer is d wide.
// Keys are masked by each row's length (a row without valid steps attends to its first
// step), so padding changes nothing; mmsa_compat drops the masks and takes the padded last
// step, as MMSA does. Parameter names (the checkpoint schema):
//   project.<m>.weight                                   (d, dim_m, kernel_m)
//   cross.<t>_from_<s>.layers.<i>.{norm0,attention,norm1,fc1,fc2}.*, cross.<t>_from_<s>.norm.*
//   memory.<t>.layers.<i>.*, memory.<t>.norm.*            (absent with memory_layers 0)
//   proj1.*, proj2.*, out.*
#include <string>
#include <vector>

#include <torch/torch.h>

#include "mmfusion/config/config.hpp"
#include "mmfusion/models/models.hpp"

namespace mmfusion {

// One pre-norm layer: attention (cross-modal when kv is given, else self) and a ReLU
// feed-forward, each with dropout and a residual.
struct MultLayerImpl : torch::nn::Module {
  MultLayerImpl(int64_t width, int64_t heads, double attention_dropout, double relu_dropout,
                double residual_dropout);
  // x [T, B, W]; kv [S, B, W] or undefined (self-attention); key_padding [B, S] bool (true:
  // ignored) or undefined; attention_mask [T, S] float (-inf: ignored) or undefined.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& kv,
                        const torch::Tensor& key_padding, const torch::Tensor& attention_mask);
  torch::nn::LayerNorm norm0{nullptr}, norm1{nullptr};
  torch::nn::MultiheadAttention attention{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  double relu_dropout, residual_dropout;
};
TORCH_MODULE(MultLayer);

// A stack of MultLayers with the input scaling, positions, embedding dropout and a final
// LayerNorm.
struct MultStackImpl : torch::nn::Module {
  MultStackImpl(int64_t width, int64_t heads, int64_t layers, double attention_dropout,
                const MultConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& kv,
                        const torch::Tensor& key_padding, const torch::Tensor& attention_mask);
  torch::nn::ModuleList layers{nullptr};
  torch::nn::LayerNorm norm{nullptr};
  int64_t width;
  double embedding_dropout;
};
TORCH_MODULE(MultStack);

// model.mult.causal's mask [Tq, Tk]: 0 where query step i may see key step j (j / Tk <=
// i / Tq, by position over the padded lengths), -inf elsewhere.
torch::Tensor mult_causal_mask(int64_t Tq, int64_t Tk, const torch::TensorOptions& options);

class MultImpl : public MultimodalModelImpl {
 public:
  MultImpl(const std::vector<ModalityConfig>& modalities, const ModelConfig& model,
           int64_t output_dim);
  torch::Tensor forward(const std::vector<torch::Tensor>& inputs) override;
  double forward_flops() const override;

  std::vector<torch::nn::Conv1d> project;     // per modality
  std::vector<std::vector<MultStack>> cross;  // [target][source] (null where equal, M > 1)
  std::vector<MultStack> memory;              // per target (null with memory_layers 0)
  torch::nn::Linear proj1{nullptr}, proj2{nullptr}, out{nullptr};

 private:
  std::vector<ModalityConfig> modalities_;
  MultConfig config_;
};
TORCH_MODULE(Mult);

}  // namespace mmfusion
