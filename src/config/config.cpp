#include "mmfusion/config/config.hpp"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

#include "mmfusion/base/errors.hpp"

namespace mmfusion {

const char* to_string(Task v) {
  switch (v) {
    case Task::Regression: return "regression";
    case Task::Classification: return "classification";
  }
  return "?";
}
const char* to_string(Loss v) {
  switch (v) {
    case Loss::MSE: return "mse";
    case Loss::L1: return "l1";
    case Loss::Huber: return "huber";
    case Loss::CrossEntropy: return "cross_entropy";
  }
  return "?";
}
const char* to_string(ModelType v) {
  switch (v) {
    case ModelType::LMF: return "lmf";
    case ModelType::TFN: return "tfn";
    case ModelType::Concat: return "concat";
    case ModelType::Late: return "late";
    case ModelType::Intense: return "intense";
    case ModelType::MulT: return "mult";
  }
  return "?";
}
const char* to_string(OptimizerType v) {
  switch (v) {
    case OptimizerType::Adam: return "adam";
    case OptimizerType::AdamW: return "adamw";
    case OptimizerType::SGD: return "sgd";
  }
  return "?";
}
const char* to_string(Activation v) {
  switch (v) {
    case Activation::ReLU: return "relu";
    case Activation::Tanh: return "tanh";
  }
  return "?";
}
const char* to_string(RankWeighting v) {
  switch (v) {
    case RankWeighting::Learned: return "learned";
    case RankWeighting::Sum: return "sum";
  }
  return "?";
}
const char* to_string(LateCombine v) {
  switch (v) {
    case LateCombine::Sum: return "sum";
    case LateCombine::Mean: return "mean";
  }
  return "?";
}
const char* to_string(DataSource v) {
  switch (v) {
    case DataSource::Synthetic: return "synthetic";
    case DataSource::File: return "file";
  }
  return "?";
}
const char* to_string(Standardize v) {
  switch (v) {
    case Standardize::None: return "none";
    case Standardize::ZScore: return "zscore";
  }
  return "?";
}
const char* to_string(KernelType v) {
  switch (v) {
    case KernelType::Linear: return "linear";
    case KernelType::Polynomial: return "polynomial";
    case KernelType::RBF: return "rbf";
  }
  return "?";
}
const char* to_string(KernelNormalize v) {
  switch (v) {
    case KernelNormalize::None: return "none";
    case KernelNormalize::UnitDiagonal: return "unit_diagonal";
    case KernelNormalize::UnitTrace: return "unit_trace";
  }
  return "?";
}
const char* to_string(MKLSolver v) {
  switch (v) {
    case MKLSolver::Average: return "average";
    case MKLSolver::LP: return "lp";
    case MKLSolver::Simple: return "simple";
  }
  return "?";
}
const char* to_string(Backend v) {
  switch (v) {
    case Backend::Auto: return "auto";
    case Backend::Gloo: return "gloo";
    case Backend::NCCL: return "nccl";
  }
  return "?";
}
const char* to_string(Padding v) {
  switch (v) {
    case Padding::Back: return "back";
    case Padding::Front: return "front";
  }
  return "?";
}
const char* to_string(EncoderType v) {
  switch (v) {
    case EncoderType::MLP: return "mlp";
    case EncoderType::Mean: return "mean";
    case EncoderType::MeanPadded: return "mean_padded";
    case EncoderType::Last: return "last";
    case EncoderType::LSTM: return "lstm";
    case EncoderType::GRU: return "gru";
    case EncoderType::Transformer: return "transformer";
  }
  return "?";
}
const char* to_string(Pooling v) {
  switch (v) {
    case Pooling::Last: return "last";
    case Pooling::Mean: return "mean";
    case Pooling::Token: return "token";
  }
  return "?";
}
const char* to_string(Layout v) {
  switch (v) {
    case Layout::None: return "none";
    case Layout::MMSA: return "mmsa";
    case Layout::MultiBench: return "multibench";
    case Layout::LMF: return "lmf";
  }
  return "?";
}
const char* to_string(NonFinite v) {
  switch (v) {
    case NonFinite::Error: return "error";
    case NonFinite::Zero: return "zero";
  }
  return "?";
}
const char* to_string(MetricSet v) {
  switch (v) {
    case MetricSet::Default: return "default";
    case MetricSet::MSA: return "msa";
    case MetricSet::SIMS: return "sims";
  }
  return "?";
}
const char* to_string(Positions v) {
  switch (v) {
    case Positions::Sinusoidal: return "sinusoidal";
    case Positions::Learned: return "learned";
  }
  return "?";
}

template <>
const std::vector<Task>& all_values() {
  static const std::vector<Task> v{Task::Regression, Task::Classification};
  return v;
}
template <>
const std::vector<Loss>& all_values() {
  static const std::vector<Loss> v{Loss::MSE, Loss::L1, Loss::Huber, Loss::CrossEntropy};
  return v;
}
template <>
const std::vector<ModelType>& all_values() {
  static const std::vector<ModelType> v{ModelType::LMF, ModelType::TFN, ModelType::Concat,
                                        ModelType::Late, ModelType::Intense, ModelType::MulT};
  return v;
}
template <>
const std::vector<OptimizerType>& all_values() {
  static const std::vector<OptimizerType> v{OptimizerType::Adam, OptimizerType::AdamW,
                                            OptimizerType::SGD};
  return v;
}
template <>
const std::vector<Activation>& all_values() {
  static const std::vector<Activation> v{Activation::ReLU, Activation::Tanh};
  return v;
}
template <>
const std::vector<RankWeighting>& all_values() {
  static const std::vector<RankWeighting> v{RankWeighting::Learned, RankWeighting::Sum};
  return v;
}
template <>
const std::vector<LateCombine>& all_values() {
  static const std::vector<LateCombine> v{LateCombine::Sum, LateCombine::Mean};
  return v;
}
template <>
const std::vector<DataSource>& all_values() {
  static const std::vector<DataSource> v{DataSource::Synthetic, DataSource::File};
  return v;
}
template <>
const std::vector<Standardize>& all_values() {
  static const std::vector<Standardize> v{Standardize::None, Standardize::ZScore};
  return v;
}
template <>
const std::vector<KernelType>& all_values() {
  static const std::vector<KernelType> v{KernelType::Linear, KernelType::Polynomial,
                                         KernelType::RBF};
  return v;
}
template <>
const std::vector<KernelNormalize>& all_values() {
  static const std::vector<KernelNormalize> v{KernelNormalize::None, KernelNormalize::UnitDiagonal,
                                              KernelNormalize::UnitTrace};
  return v;
}
template <>
const std::vector<MKLSolver>& all_values() {
  static const std::vector<MKLSolver> v{MKLSolver::Average, MKLSolver::LP, MKLSolver::Simple};
  return v;
}
template <>
const std::vector<Backend>& all_values() {
  static const std::vector<Backend> v{Backend::Auto, Backend::Gloo, Backend::NCCL};
  return v;
}
template <>
const std::vector<Padding>& all_values() {
  static const std::vector<Padding> v{Padding::Back, Padding::Front};
  return v;
}
template <>
const std::vector<EncoderType>& all_values() {
  static const std::vector<EncoderType> v{EncoderType::MLP,  EncoderType::Mean,
                                          EncoderType::MeanPadded, EncoderType::Last,
                                          EncoderType::LSTM, EncoderType::GRU,
                                          EncoderType::Transformer};
  return v;
}
template <>
const std::vector<Pooling>& all_values() {
  static const std::vector<Pooling> v{Pooling::Last, Pooling::Mean, Pooling::Token};
  return v;
}
template <>
const std::vector<Layout>& all_values() {
  static const std::vector<Layout> v{Layout::None, Layout::MMSA, Layout::MultiBench, Layout::LMF};
  return v;
}
template <>
const std::vector<NonFinite>& all_values() {
  static const std::vector<NonFinite> v{NonFinite::Error, NonFinite::Zero};
  return v;
}
template <>
const std::vector<MetricSet>& all_values() {
  static const std::vector<MetricSet> v{MetricSet::Default, MetricSet::MSA, MetricSet::SIMS};
  return v;
}
template <>
const std::vector<Positions>& all_values() {
  static const std::vector<Positions> v{Positions::Sinusoidal, Positions::Learned};
  return v;
}

const KernelConfig& kernel_for(const MKLConfig& mkl, const std::string& modality) {
  auto it = mkl.kernels.find(modality);
  return it == mkl.kernels.end() ? mkl.default_kernel : it->second;
}

std::vector<int64_t> encoder_output_dims(const ModelConfig& model,
                                         const std::vector<ModalityConfig>& modalities) {
  std::vector<int64_t> dims;
  for (const auto& m : modalities) dims.push_back(encoder_output_dim(encoder_for(model, m), m.dim));
  return dims;
}

double tfn_fused_size(const std::vector<int64_t>& encoder_output_dims) {
  double fused = 1;
  for (int64_t d : encoder_output_dims) fused *= double(d) + 1;
  return fused;
}

int64_t resolve_output_dim(const ExperimentConfig& config, int64_t target_columns) {
  switch (config.task) {
    case Task::Classification:
      // num_classes may have been inferred after parsing: check model.output_dim again.
      if (config.model.output_dim != 0 && config.model.output_dim != config.num_classes)
        throw ConfigError("model.output_dim: " + std::to_string(config.model.output_dim) +
                          " but num_classes is " + std::to_string(config.num_classes));
      return config.num_classes;
    case Task::Regression: break;
  }
  if (config.model.output_dim == 0) return target_columns;
  if (config.model.output_dim != target_columns)
    throw ConfigError("model.output_dim: " + std::to_string(config.model.output_dim) +
                      " but the target has " + std::to_string(target_columns) + " column(s)");
  return config.model.output_dim;
}

std::string subset_name(const std::vector<std::string>& modalities) {
  std::string out;
  for (const auto& m : modalities) out += (out.empty() ? "" : ":") + m;
  return out;
}

const std::vector<int64_t>& encoder_hidden_for(const ModelConfig& model,
                                               const std::string& modality) {
  auto it = model.encoders.find(modality);
  return it == model.encoders.end() ? model.encoder_hidden : it->second.hidden;
}

EncoderConfig encoder_for(const ModelConfig& model, const ModalityConfig& modality) {
  auto it = model.encoders.find(modality.name);
  if (it != model.encoders.end()) return it->second;
  EncoderConfig e;
  e.type = modality.sequence ? EncoderType::Mean : EncoderType::MLP;
  e.hidden = model.encoder_hidden;
  return e;
}

bool takes_sequence(EncoderType type) {
  switch (type) {
    case EncoderType::MLP: return false;
    case EncoderType::Mean:
    case EncoderType::MeanPadded:
    case EncoderType::Last:
    case EncoderType::LSTM:
    case EncoderType::GRU:
    case EncoderType::Transformer: return true;
  }
  return false;
}

int64_t encoder_output_dim(const EncoderConfig& e, int64_t input_dim) {
  switch (e.type) {
    case EncoderType::MLP:
    case EncoderType::Mean:
    case EncoderType::MeanPadded:
    case EncoderType::Last: return e.hidden.empty() ? input_dim : e.hidden.back();
    case EncoderType::LSTM:
    case EncoderType::GRU: return e.out > 0 ? e.out : e.state * (e.bidirectional ? 2 : 1);
    case EncoderType::Transformer: return e.out > 0 ? e.out : e.width;
  }
  return input_dim;
}
}  // namespace mmfusion
