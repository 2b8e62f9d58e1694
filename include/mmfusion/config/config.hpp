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

// The choices a config makes, as enums: each is parsed once from its string here, and code
// that acts on one uses a switch with no default, so the compiler names every switch a
// new value must be handled in. to_string gives the config's spelling.
enum class Task { Regression, Classification };
enum class Loss { MSE, L1, Huber, CrossEntropy };
enum class ModelType { LMF, TFN, Concat, Late, Intense, MulT };
enum class OptimizerType { Adam, AdamW, SGD };
enum class Activation { ReLU, Tanh };       // after each encoder Linear layer
enum class RankWeighting { Learned, Sum };  // LMF: learned (1, rank) weights or a plain sum
enum class LateCombine { Sum, Mean };       // late fusion: how the heads' outputs combine
enum class DataSource { Synthetic, File };
// Where a data file keeps its splits and entries (docs/benchmarks.md): mmfusion's own
// .pt/.npz, or one pickle in the layout of MMSA, MultiBench or the LMF reference code.
enum class Layout { None, MMSA, MultiBench, LMF };
// What reading a data file does with a NaN or Inf feature value: refuse the file, or put
// 0 in its place and count it (data.nonfinite; the target is never made up).
enum class NonFinite { Error, Zero };
enum class Standardize { None, ZScore };  // feature scaling fitted on the training split
enum class KernelType { Linear, Polynomial, RBF };
enum class KernelNormalize { None, UnitDiagonal, UnitTrace };
enum class MKLSolver { Average, LP, Simple };  // uniform weights, lp-norm MKL, SimpleMKL
enum class Backend { Auto, Gloo, NCCL };       // c10d process group (distributed training)
enum class Padding { Back, Front };            // where a sequence file's rows keep their padding
// A modality's encoder (model.encoders.<m>.type): mlp takes a vector; the others a sequence.
enum class EncoderType { MLP, Mean, MeanPadded, Last, LSTM, GRU, Transformer };
// How a recurrent or transformer encoder turns its outputs into one vector.
enum class Pooling { Last, Mean, Token };
enum class Positions { Sinusoidal, Learned };  // a transformer encoder's position encoding
// The metrics reported beside the default ones (docs/metrics.md): none, the sentiment
// benchmarks' (CMU-MOSI/MOSEI, as MMSA computes them), or CH-SIMS's fixed bins.
enum class MetricSet { Default, MSA, SIMS };

const char* to_string(Task v);
const char* to_string(Loss v);
const char* to_string(ModelType v);
const char* to_string(OptimizerType v);
const char* to_string(Activation v);
const char* to_string(RankWeighting v);
const char* to_string(LateCombine v);
const char* to_string(DataSource v);
const char* to_string(Standardize v);
const char* to_string(KernelType v);
const char* to_string(KernelNormalize v);
const char* to_string(MKLSolver v);
const char* to_string(Backend v);
const char* to_string(Padding v);
const char* to_string(EncoderType v);
const char* to_string(Pooling v);
const char* to_string(Positions v);
const char* to_string(MetricSet v);
const char* to_string(Layout v);
const char* to_string(NonFinite v);

// Every value of an enum above, in declaration order (parsing and the docs use them).
template <typename E>
const std::vector<E>& all_values();
template <>
const std::vector<Task>& all_values<Task>();
template <>
const std::vector<Loss>& all_values<Loss>();
template <>
const std::vector<ModelType>& all_values<ModelType>();
template <>
const std::vector<OptimizerType>& all_values<OptimizerType>();
template <>
const std::vector<Activation>& all_values<Activation>();
template <>
const std::vector<RankWeighting>& all_values<RankWeighting>();
template <>
const std::vector<LateCombine>& all_values<LateCombine>();
template <>
const std::vector<DataSource>& all_values<DataSource>();
template <>
const std::vector<Standardize>& all_values<Standardize>();
template <>
const std::vector<KernelType>& all_values<KernelType>();
template <>
const std::vector<KernelNormalize>& all_values<KernelNormalize>();
template <>
const std::vector<MKLSolver>& all_values<MKLSolver>();
template <>
const std::vector<Backend>& all_values<Backend>();
template <>
const std::vector<Padding>& all_values<Padding>();
template <>
const std::vector<EncoderType>& all_values<EncoderType>();
template <>
const std::vector<Pooling>& all_values<Pooling>();
template <>
const std::vector<Positions>& all_values<Positions>();
template <>
const std::vector<MetricSet>& all_values<MetricSet>();
template <>
const std::vector<Layout>& all_values<Layout>();
template <>
const std::vector<NonFinite>& all_values<NonFinite>();

// The entry of a data file that holds the target (every other entry is named for its
// modality, so no modality may take this name).
inline constexpr const char* kTargetEntry = "target";
// A sequence modality's lengths entry in a data file: <name> + this suffix.
inline constexpr const char* kLengthsSuffix = "_lengths";
// The most steps a sequence may have (max_len, files, the synthetic generator).
inline constexpr int64_t kMaxSequenceSteps = 1 << 16;

struct ModalityConfig {
  std::string name;  // an identifier: letters, digits, '_' (used in parameter names)
  int64_t dim = 0;   // feature size (of each step, for a sequence)
  // A sequence of steps of `dim` features each (docs/sequences.md): [N, T, dim] in data
  // files, with an optional integer entry <name>_lengths [N] of valid steps.
  bool sequence = false;
  int64_t max_len = 0;              // sequences: the steps kept per row (0: all the file has)
  Padding padding = Padding::Back;  // sequences: where files hold the padding of short rows
  bool operator==(const ModalityConfig& o) const {
    return name == o.name && dim == o.dim && sequence == o.sequence && max_len == o.max_len &&
           padding == o.padding;
  }
};

// Synthetic data with known structure (docs/data.md has the formula).
// One term of a synthetic target (data.synthetic.terms): the product over the modalities
// m in the set of (c_m . u_m), u_m the modality's unique latents and c_m a fixed random
// unit vector: zero mean, unit variance, a pure |set|-way interaction.
struct TargetTerm {
  std::vector<std::string> modalities;  // a set, in the config's modality order
  double weight = 1.0;
};

// data.synthetic.moment: the target is the content modality's value at the one step the
// marker modality marks (synthetic.hpp), so that neither modality alone tells anything
// about it; both sequences of the same max_len. Empty names: none.
struct MomentConfig {
  std::string marker, content;
  bool enabled() const { return !marker.empty(); }
};

struct SyntheticConfig {
  // The modalities the generator draws, of which the data keeps data.modalities (a
  // subset, e.g. one of `attribute`'s): the kept ones' rows are the same whatever the
  // others. Empty: data.modalities.
  std::vector<ModalityConfig> modalities;
  int64_t latent_dim = 4;         // latents unique to each modality
  int64_t shared_latent_dim = 2;  // latents shared by the modalities in shared_by
  // The modalities whose features see the shared latents; empty: all of them.
  std::vector<std::string> shared_by;
  // With `terms`: the weight of a unit-variance linear term of the shared latents in the
  // target (a factor every modality in shared_by observes); 0: none.
  double shared_weight = 0;
  double feature_noise = 0.1;    // std of the noise added to each feature
  double target_noise = 0.1;     // std of the noise added to the target
  double weight_unimodal = 1.0;  // weight of the unit-variance unimodal part
  double weight_bimodal = 1.0;   // weight of the unit-variance bimodal part
  double weight_trimodal = 1.0;  // weight of the unit-variance trimodal part (M >= 3)
  // The target as a sum of weighted terms instead of the three weights above (which are
  // shorthand for their own fixed set of terms; synthetic_truth in data.hpp).
  std::vector<TargetTerm> terms;
  // Which generator draws the samples (data.hpp): 2, row-keyed, float32 and threaded; 1,
  // the first one, which configs and checkpoints written before generator 2 used.
  int64_t generator = 2;
  // Training batches made on the fly from (seed, epoch, step) instead of a stored
  // training split (generator 2); data.train_size is then the samples per epoch.
  bool stream = false;
  // Sequence modalities (docs/sequences.md): the fraction of each one's features written as
  // a pattern over time, which a mean over the steps cancels (the rest stays the same at
  // every step), and the fewest steps of a row (0: half the modality's max_len, at least 2;
  // lengths are uniform from there to max_len).
  double temporal = 0.5;
  int64_t min_len = 0;
  // The target as the content at the marked moment instead of `terms` or the weights.
  MomentConfig moment;
};

// The generator a config that names none was written for (data.synthetic.generator).
inline constexpr int64_t kFirstGenerator = 1;

// data.keys: where a pickle keeps each thing (docs/benchmarks.md), overriding its layout's
// names. A path is the keys to follow from the file's root (a split) or from a split (the
// rest); a key matches a str key, or a bytes key of the same text, and "b'x'" a bytes key
// only. Empty members keep the layout's names.
using KeyPath = std::vector<std::string>;
struct DataKeys {
  std::vector<KeyPath> splits;                     // train, validation, test (3, or none)
  std::map<std::string, KeyPath> modalities;       // by modality name
  std::map<std::string, KeyPath> lengths;          // a sequence modality's lengths
  KeyPath target;
  bool empty() const {
    return splits.empty() && modalities.empty() && lengths.empty() && target.empty();
  }
  bool operator==(const DataKeys& o) const {
    return splits == o.splits && modalities == o.modalities && lengths == o.lengths &&
           target == o.target;
  }
};

struct DataConfig {
  DataSource source = DataSource::Synthetic;
  std::vector<ModalityConfig> modalities = {{"visual", 128}, {"audio", 64}, {"text", 300}};

  // synthetic source
  int64_t train_size = 8192;
  int64_t val_size = 1024;
  int64_t test_size = 1024;
  SyntheticConfig synthetic;
  // file source
  std::string path;       // training data (or all data, split by the fractions)
  // The field's pickles: `path` holds all three splits, its modalities named as the
  // layout names them (benchmark_file.hpp).
  Layout layout = Layout::None;
  DataKeys keys;  // a pickle's own names (with layout none: a pickle named by keys alone)
  NonFinite nonfinite = NonFinite::Error;
  std::string val_path;   // optional; else val_fraction of `path`
  std::string test_path;  // optional; else test_fraction of `path`
  double val_fraction = 0.1;
  double test_fraction = 0.1;
  // Per-feature scaling fitted on the training split (scaling.hpp). When the config does
  // not say, file data is z-scored and synthetic data (unit scale by construction) is not.
  Standardize standardize = Standardize::None;
  // Regression: train on the z-scored target, report in its own units. Same default rule.
  bool standardize_target = false;
};

// Whether data.path names a pickle by its name (.pkl, .pickle).
inline bool pickle_name(const std::string& path) {
  auto ends = [&](const std::string& suffix) {
    return path.size() >= suffix.size() &&
           path.compare(path.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  return ends(".pkl") || ends(".pickle");
}

// Whether data.path is one pickle holding all three splits: a layout's, named by keys, or
// a .pkl file whose layout its keys tell (benchmark_file.hpp).
inline bool reads_pickle(const DataConfig& d) {
  return d.source == DataSource::File &&
         (d.layout != Layout::None || !d.keys.splits.empty() || pickle_name(d.path));
}

// The modalities the synthetic generator draws: data.synthetic.modalities, or
// data.modalities when it names none.
inline const std::vector<ModalityConfig>& generator_modalities(const DataConfig& d) {
  return d.synthetic.modalities.empty() ? d.modalities : d.synthetic.modalities;
}

// InTense (docs/intense.md): which interaction blocks it has, the size of the projections
// they are built from, and the block regulariser of its fusion layer.
struct IntenseConfig {
  // Modality sets (at least 2 each) with an interaction block, each set in the config's
  // modality order. Resolved when parsed; default: every pair, and the full set when there
  // are exactly 3 modalities.
  std::vector<std::vector<std::string>> interactions;
  int64_t latent_dim = 4;  // every modality's projection for the interaction blocks
  double p = 1.0;          // the l_p norm of the relevance scores (>= 1); q = 2p/(p+1)
  double reg = 0.05;       // weight of the l_{2,q} block regulariser in the loss
};

// The Multimodal Transformer (MulT; Tsai et al., 2019; docs/mult.md): a Conv1d per
// modality to `width`, cross-modal transformers (each target modality's queries, each
// other modality's keys and values; `layers` each), a self-attention transformer over
// each target's concatenated outputs (`memory_layers`), the last valid step (or the
// masked mean) of each, and a residual head. Per-modality values are stored resolved,
// one per modality.
struct MultConfig {
  // The per-modality values' defaults, for a modality the config leaves out.
  static constexpr int64_t kKernel = 1;
  static constexpr double kAttentionDropout = 0.1, kInputDropout = 0.0;
  int64_t width = 32;          // d: every modality's projection
  int64_t heads = 4;           // attention heads (divides width)
  int64_t layers = 2;          // layers of each cross-modal transformer
  int64_t memory_layers = 3;   // layers of each target's self-attention transformer
  std::map<std::string, int64_t> kernel;  // the Conv1d's kernel per modality
  bool causal = false;         // a query step attends to source steps at or before its time
  std::string pool = "last";   // last: the last valid step; mean: the masked mean
  std::map<std::string, double> attention_dropout;  // per modality
  double relu_dropout = 0.1, embedding_dropout = 0.1, residual_dropout = 0.1,
         output_dropout = 0.1;
  std::map<std::string, double> input_dropout;  // per modality
  // MMSA's behaviour: no key masks, the padded last step, 3 modalities in MMSA's order
  // (text, audio, vision), Conv1d without padding, MMSA's causal mask.
  bool mmsa_compat = false;
  // With one modality: the paper's unimodal ablation (self-attention in place of the
  // cross-modal stack); false makes one modality a config error. attribute sets it for
  // its single-modality runs.
  bool unimodal = false;
};

// One modality's encoder (model.encoders.<name>; docs/sequences.md). mlp: an MLP of
// `hidden` sizes, with an optional batch norm of its input (the LMF paper's audio and
// visual subnets); a list of hidden sizes alone is shorthand for {"type": "mlp",
// "hidden": [...]}. mean, mean_padded, last: a sequence pooled over time (the masked mean,
// MMSA's mean over the padded length, the last valid step), then that MLP. lstm, gru,
// transformer: LibTorch's modules over the valid steps, pooled, then an optional Linear
// layer to `out` features.
struct EncoderConfig {
  EncoderType type = EncoderType::MLP;
  std::vector<int64_t> hidden;  // mlp, mean, mean_padded, last
  bool batch_norm = false;      // mlp, mean, mean_padded, last
  int64_t state = 64;           // lstm, gru: hidden state size (JSON "hidden")
  int64_t layers = 1;           // lstm, gru, transformer
  bool bidirectional = false;   // lstm, gru
  Pooling pooling = Pooling::Last;  // lstm, gru: last | mean; transformer: mean | token
  int64_t width = 64;               // transformer: model width (the steps are projected to it)
  int64_t heads = 4;                // transformer
  int64_t ff = 128;                 // transformer: feed-forward width
  Positions positions = Positions::Sinusoidal;  // transformer
  double dropout = -1;  // lstm, gru, transformer: < 0 means model.dropout
  int64_t out = 0;      // lstm, gru, transformer: a final Linear layer's size (0: none)
  bool operator==(const EncoderConfig& o) const {
    return type == o.type && hidden == o.hidden && batch_norm == o.batch_norm &&
           state == o.state && layers == o.layers && bidirectional == o.bidirectional &&
           pooling == o.pooling && width == o.width && heads == o.heads && ff == o.ff &&
           positions == o.positions && dropout == o.dropout && out == o.out;
  }
};
// Whether an encoder of this type takes a sequence (every type but mlp).
bool takes_sequence(EncoderType type);
// An encoder's output size given its modality's input size.
int64_t encoder_output_dim(const EncoderConfig& e, int64_t input_dim);

struct ModelConfig {
  ModelType type = ModelType::LMF;
  int64_t rank = 4;                                       // lmf
  RankWeighting rank_weighting = RankWeighting::Learned;  // lmf
  double dropout = 0.1;
  // Not a key of its own: train.modality_dropout, which the model needs to hold its
  // learned missing encodings (model_config gives the model its copy).
  double modality_dropout = 0.0;
  Activation activation = Activation::ReLU;       // every encoder and post-fusion layer
  int64_t fused_dim = 32;                         // LMF's d_out: size of the fused vector
  int64_t output_dim = 0;                         // 0: the target's number of columns
  std::vector<int64_t> encoder_hidden = {32};     // every modality's MLP
  std::map<std::string, EncoderConfig> encoders;  // per-modality override
  std::vector<int64_t> post_hidden = {64, 64};    // tfn, concat: post-fusion MLP hidden sizes
  LateCombine late_combine = LateCombine::Sum;    // late: sum or mean of per-modality heads
  int64_t max_fused_size = 1 << 22;               // tfn, intense: refuse larger outer products
  IntenseConfig intense;                          // intense
  MultConfig mult;                                // mult
};

struct TrainConfig {
  // Model initialisation, dropout and the epochs' shuffles (the data's draws and splits
  // follow the top-level seed); when not given, the top-level seed.
  uint64_t seed = 42;
  int64_t epochs = 20;
  int64_t batch_size = 64;
  int64_t eval_batch_size = 1024;
  OptimizerType optimizer = OptimizerType::Adam;
  double lr = 1e-3;
  double factor_lr = 0.0;  // 0: same as lr; else the LMF factors' own lr
  double weight_decay = 0.0;
  double momentum = 0.9;  // sgd only
  Loss loss = Loss::MSE;  // classification: cross_entropy (the default there)
  double huber_delta = 1.0;
  double grad_clip = 0.0;  // max global gradient norm; 0: off
  int64_t patience = 0;    // early stopping on val loss; 0: off
  // adam/adamw over one flat buffer (optim.hpp). Was train.fused_optimizer.
  bool flat_optimizer = true;
  // LMF on the CPU: the hand-written forward/backward (lmf_pass.hpp) wherever it applies,
  // in training and evaluation. Was train.fused_step.
  bool handwritten_step = true;
  // Each modality of each training row dropped with this probability and replaced by a
  // learned "missing" encoding (docs/robustness.md); 0: off, and no missing encodings.
  double modality_dropout = 0.0;
  // CUDA: the whole training step captured once as a CUDA graph and replayed
  // (graph_step.hpp), where the optimizer is the flat Adam and training is not distributed.
  bool cuda_graphs = true;
  // CUDA: float32 matrix products may run on TF32 tensor cores (10-bit mantissa inputs).
  bool tf32 = false;
};

// One modality's kernel for multiple kernel learning (docs/mkl.md).
struct KernelConfig {
  KernelType type = KernelType::RBF;
  double gamma = 0;        // rbf: exp(-gamma |x - z|^2); 0 = median heuristic
  double gamma_scale = 1;  // rbf, median heuristic: gamma = gamma_scale / median
  int64_t degree = 2;      // polynomial: (x.z / dim + coef0)^degree
  double coef0 = 1;        // polynomial
  KernelNormalize normalize = KernelNormalize::UnitDiagonal;
};

struct MKLConfig {
  MKLSolver solver = MKLSolver::Simple;
  double p = 1.0;       // lp: the norm of the weight constraint, >= 1
  double lambda = 0.1;  // kernel ridge regularisation
  int64_t max_iter = 200;
  double tol = 1e-6;            // relative objective change / KKT gap to stop at
  int64_t train_size = 2000;    // training points used (the first ones); 0 = all
  double max_memory_gb = 8;     // refuse problems whose kernel matrices need more
  KernelConfig default_kernel;  // for every modality without its own entry
  std::map<std::string, KernelConfig> kernels;
  // Product kernels over these modality sets (each in the config's modality order), beside
  // the one kernel per modality; resolved when parsed ("all" in JSON: every set of 2 to
  // max_order modalities). Default: none, an additive model.
  std::vector<std::vector<std::string>> interactions;
  int64_t max_order = 3;  // the largest set "all" stands for
  // ANOVA centring of every base kernel on the training points. Default: on exactly when
  // there are interactions (it makes each product kernel's functions pure interactions).
  bool centre = false;
  // RBF members of a product kernel over |S| modalities at gamma / |S| (a product of RBF
  // kernels adds their gammas), so that a product is as wide as one modality's kernel.
  bool split_gamma = true;
};

// Multi-process training (docs/distributed.md); used only when WORLD_SIZE > 1.
struct DistributedConfig {
  Backend backend = Backend::Auto;  // auto: nccl on CUDA when built in, else gloo
  double timeout_s = 300;           // a peer that stops answering fails the others after this
};

// The largest num_classes (and output width) a config may ask for.
inline constexpr int64_t kMaxClasses = 1 << 20;

// What results.json and metrics.jsonl report (metrics.*).
struct MetricsConfig {
  MetricSet set = MetricSet::Default;
};

struct ExperimentConfig {
  std::string name = "default";
  Task task = Task::Regression;
  // classification: >= 2. File data may leave it out (0) until training infers it from
  // the training split's largest label (resolve_num_classes in data.hpp).
  int64_t num_classes = 0;
  uint64_t seed = 42;
  std::string device = "auto";  // "auto" | "cpu" | "cuda" | "cuda:N"
  int64_t threads = 0;          // 0: all hardware threads
  DataConfig data;
  ModelConfig model;
  TrainConfig train;
  MKLConfig mkl;
  DistributedConfig distributed;
  MetricsConfig metrics;
};

// One modality's MKL kernel (its own entry, or the default).
const KernelConfig& kernel_for(const MKLConfig& mkl, const std::string& modality);
// The hidden sizes of one modality's encoder (per-modality override or the default).
const std::vector<int64_t>& encoder_hidden_for(const ModelConfig& model,
                                               const std::string& modality);
// One modality's whole encoder: its own entry, or encoder_hidden's MLP (for a sequence,
// after the masked mean over its valid steps).
EncoderConfig encoder_for(const ModelConfig& model, const ModalityConfig& modality);
// A set of modalities named in R's notation: its names joined by ':' ("visual:audio").
std::string subset_name(const std::vector<std::string>& modalities);
// Every modality's encoding size (encoder_output_dim of encoder_for).
std::vector<int64_t> encoder_output_dims(const ModelConfig& model,
                                         const std::vector<ModalityConfig>& modalities);
// TFN's fused size prod_m (d_m + 1), as a double (it may not fit an integer).
double tfn_fused_size(const std::vector<int64_t>& encoder_output_dims);
// The model's output width for a target of `target_columns` columns: num_classes for
// classification, else model.output_dim or (when 0) the target's columns. ConfigError
// when model.output_dim disagrees with the target.
int64_t resolve_output_dim(const ExperimentConfig& config, int64_t target_columns);

// The model a config builds: its `model` keys, with train.modality_dropout, which decides
// whether the model has missing encodings.
inline ModelConfig model_config(const ExperimentConfig& config) {
  ModelConfig m = config.model;
  m.modality_dropout = config.train.modality_dropout;
  return m;
}

}  // namespace mmfusion
