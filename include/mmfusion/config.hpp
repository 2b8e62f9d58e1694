#pragma once
// The experiment configuration: parsed once from JSON into these typed structs and
// validated once. The rest of mmfusion never sees raw JSON. Every field's default is
// written here and documented (with its range) in docs/config.md.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace mmfusion {

struct ModalityConfig {
  std::string name;  // an identifier: letters, digits, '_' (used in parameter names)
  int64_t dim = 0;   // feature size
};

// Synthetic data with known structure (docs/data.md has the formula).
struct SyntheticConfig {
  int64_t latent_dim = 4;         // latents unique to each modality
  int64_t shared_latent_dim = 2;  // latents shared by every modality
  double feature_noise = 0.1;     // std of the noise added to each feature
  double target_noise = 0.1;      // std of the noise added to the target
  double weight_unimodal = 1.0;   // weight of the unit-variance unimodal part
  double weight_bimodal = 1.0;    // weight of the unit-variance bimodal part
  double weight_trimodal = 1.0;   // weight of the unit-variance trimodal part (M >= 3)
};

struct DataConfig {
  std::string source = "synthetic";  // "synthetic" | "file"
  std::vector<ModalityConfig> modalities = {{"visual", 128}, {"audio", 64}, {"text", 300}};
  // synthetic source
  int64_t train_size = 8192;
  int64_t val_size = 1024;
  int64_t test_size = 1024;
  SyntheticConfig synthetic;
  // file source
  std::string path;       // training data (or all data, split by the fractions)
  std::string val_path;   // optional; else val_fraction of `path`
  std::string test_path;  // optional; else test_fraction of `path`
  double val_fraction = 0.1;
  double test_fraction = 0.1;
};

struct ModelConfig {
  std::string type = "lmf";        // "lmf" | "tfn" | "concat" | "late"
  int64_t rank = 4;                // lmf
  std::string rank_weighting = "learned";  // lmf: "learned" (1, rank) weights | "sum"
  double dropout = 0.1;
  int64_t fused_dim = 32;    // LMF's d_out: size of the fused vector
  int64_t output_dim = 0;    // 0: the target's number of columns
  std::vector<int64_t> encoder_hidden = {32};                // every modality's MLP
  std::map<std::string, std::vector<int64_t>> encoders;    // per-modality override
  std::vector<int64_t> post_hidden = {64, 64};  // tfn, concat: post-fusion MLP hidden sizes
  std::string late_combine = "sum";             // late: "sum" | "mean" of per-modality heads
  int64_t max_fused_size = 1 << 22;             // tfn: refuse larger outer products
};

struct TrainConfig {
  int64_t epochs = 20;
  int64_t batch_size = 64;
  int64_t eval_batch_size = 1024;
  std::string optimizer = "adam";  // "adam" | "adamw" | "sgd"
  double lr = 1e-3;
  double factor_lr = 0.0;          // 0: same as lr; else the LMF factors' own lr
  double weight_decay = 0.0;
  double momentum = 0.9;           // sgd only
  std::string loss = "mse";        // "mse" | "l1" | "huber" | "cross_entropy" (classification)
  double huber_delta = 1.0;
  double grad_clip = 0.0;          // max global gradient norm; 0: off
  int64_t patience = 0;            // early stopping on val loss; 0: off
  bool fused_optimizer = true;     // adam/adamw over one flat buffer (flat_adam.hpp)
  bool fused_step = true;          // LMF on the CPU: hand-written forward/backward (train_step.hpp)
};

// One modality's kernel for multiple kernel learning (docs/mkl.md).
struct KernelConfig {
  std::string type = "rbf";             // "linear" | "polynomial" | "rbf"
  double gamma = 0;                     // rbf: exp(-gamma |x - z|^2); 0 = median heuristic
  int64_t degree = 2;                   // polynomial: (x.z / dim + coef0)^degree
  double coef0 = 1;                     // polynomial
  std::string normalize = "unit_diagonal";  // "none" | "unit_diagonal" | "unit_trace"
};

struct MKLConfig {
  std::string solver = "simple";  // "average" | "lp" | "simple" (SimpleMKL)
  double p = 1.0;                 // lp: the norm of the weight constraint, >= 1
  double lambda = 0.1;            // kernel ridge regularisation
  int64_t max_iter = 200;
  double tol = 1e-6;              // relative objective change / KKT gap to stop at
  int64_t train_size = 2000;      // training points used (the first ones); 0 = all
  double max_memory_gb = 8;       // refuse problems whose kernel matrices need more
  KernelConfig default_kernel;    // for every modality without its own entry
  std::map<std::string, KernelConfig> kernels;
};

// Multi-process training (docs/distributed.md); used only when WORLD_SIZE > 1.
struct DistributedConfig {
  std::string backend = "auto";  // "auto" (nccl on CUDA when built in, else gloo) | "gloo" | "nccl"
  double timeout_s = 300;        // a peer that stops answering fails the others after this
};

struct ExperimentConfig {
  std::string name = "default";
  std::string task = "regression";  // "regression" | "classification"
  int64_t num_classes = 0;          // classification: >= 2
  uint64_t seed = 42;
  std::string device = "auto";  // "auto" | "cpu" | "cuda" | "cuda:N"
  int64_t threads = 0;          // 0: all hardware threads
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  MKLConfig mkl;
  DistributedConfig distributed;
};

// Parses and validates a JSON document. Throws ConfigError naming the JSON path.
ExperimentConfig parse_config(const nlohmann::json& doc);
// The resolved config (every default filled). parse_config(to_json(c)) == c.
nlohmann::json to_json(const ExperimentConfig& config);

// Reads a JSON file; malformed JSON is a ConfigError with line and column.
nlohmann::json read_json_file(const std::string& path);
// Applies one "a.b.c=VALUE" override: VALUE is JSON when it parses, else a string.
void apply_override(nlohmann::json& doc, const std::string& assignment);
// read_json_file + every override + parse_config.
ExperimentConfig load_config(const std::string& path, const std::vector<std::string>& overrides);

// The hidden sizes of one modality's encoder (per-modality override or the default).
const KernelConfig& kernel_for(const MKLConfig& mkl, const std::string& modality);
const std::vector<int64_t>& encoder_hidden_for(const ModelConfig& model,
                                               const std::string& modality);

bool operator==(const ExperimentConfig& a, const ExperimentConfig& b);

}  // namespace mmfusion
