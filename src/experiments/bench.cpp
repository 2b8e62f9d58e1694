#include "mmfusion/experiments/bench.hpp"

#include <algorithm>
#include <chrono>
#include <sstream>

#include "mmfusion/config/config.hpp"
#include "mmfusion/config/config_io.hpp"
#include "mmfusion/data/sequence.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/training/graph_step.hpp"
#include "mmfusion/training/optim.hpp"
#include "mmfusion/runtime/runtime.hpp"
#include "mmfusion/training/step.hpp"

namespace mmfusion {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

constexpr int64_t kGenerationRows = 1 << 17;  // rows per timed generation of a split
constexpr int64_t kGenerationValues = int64_t(1) << 26;  // at most 256 MB of float32 per split

void sync(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

json summarise(std::vector<double> samples_per_s, int64_t batch, double flops_per_sample) {
  std::sort(samples_per_s.begin(), samples_per_s.end());
  const double median = samples_per_s[samples_per_s.size() / 2];
  return {{"samples_per_s", median},
          {"samples_per_s_min", samples_per_s.front()},
          {"samples_per_s_max", samples_per_s.back()},
          {"ms_per_step", 1000.0 * batch / median},
          {"gflops", median * flops_per_sample / 1e9}};
}

}  // namespace

double matmul_gflops(const torch::Device& device, int repeats) {
  const int64_t n = device.is_cpu() ? 1024 : 8192;
  const auto a = torch::randn({n, n}).to(device), b = torch::randn({n, n}).to(device);
  auto c = torch::mm(a, b);  // warm-up
  sync(device);
  const auto start = Clock::now();
  for (int i = 0; i < repeats; ++i) torch::mm_out(c, a, b);
  sync(device);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  return 2.0 * double(n) * n * n * repeats / seconds / 1e9;
}

namespace {

// Samples per second of args.steps calls of `step` per repeat, after args.warmup untimed
// calls; each repeat's clock stops once the device has finished.
template <typename Step>
std::vector<double> timed_rates(const BenchArgs& args, int64_t batch, const torch::Device& device,
                                Step&& step) {
  for (int64_t i = 0; i < args.warmup; ++i) step();
  sync(device);
  std::vector<double> rates;
  for (int64_t r = 0; r < args.repeats; ++r) {
    const auto start = Clock::now();
    for (int64_t i = 0; i < args.steps; ++i) step();
    sync(device);
    rates.push_back(double(batch * args.steps) /
                    std::chrono::duration<double>(Clock::now() - start).count());
  }
  return rates;
}

// Synthetic data: how fast the generator makes a split (kGenerationRows rows at once, all
// threads, or fewer when they would hold more than kGenerationValues values: sequences);
// null for file data.
json time_generation(const ExperimentConfig& config, const BenchArgs& args) {
  if (config.data.source != DataSource::Synthetic) return nullptr;
  DataConfig d = config.data;
  int64_t per_row = 0;
  for (const auto& m : generator_modalities(d)) per_row += m.sequence ? 1 + m.max_len * m.dim : m.dim;
  const int64_t rows = std::clamp<int64_t>(kGenerationValues / std::max<int64_t>(1, per_row), 1024,
                                           kGenerationRows);
  d.train_size = rows;
  std::vector<double> rates;
  for (int64_t r = 0; r < args.repeats; ++r) {
    const auto start = Clock::now();
    generate_synthetic(d, config.seed + r, Split::Train);
    rates.push_back(double(rows) /
                    std::chrono::duration<double>(Clock::now() - start).count());
  }
  json generation = summarise(rates, rows, 0);
  generation.erase("gflops");
  generation.erase("ms_per_step");
  generation["rows"] = rows;
  generation["generator"] = config.data.synthetic.generator;
  return generation;
}

// What every batch size shares: the model's size and FLOPs, and the paths the steps took.
struct BenchFacts {
  double forward_flops = 0;
  int64_t parameters = 0;
  std::string train_path, eval_path;
};

// The steps of a benched sequence without max_len (MultiBench's and MMSA's aligned length).
constexpr int64_t kBenchSteps = 50;

// Random rows of one modality: a vector's [batch, dim], a sequence's rows of every step
// valid (its max_len steps, else kBenchSteps).
int64_t bench_steps(const ModalityConfig& m) { return m.max_len > 0 ? m.max_len : kBenchSteps; }

torch::Tensor bench_input(const ModalityConfig& m, int64_t batch) {
  if (!m.sequence) return torch::randn({batch, m.dim});
  const int64_t T = bench_steps(m);
  return sequence::pack(torch::randn({batch, T, m.dim}), torch::full({batch}, T, torch::kInt64));
}

// One batch size: training steps as the trainer runs them (the eager step reads its loss
// back, the CUDA graph keeps it on the device), inference steps, and with a training
// stream how fast it makes one batch of this size.
json bench_batch(const ExperimentConfig& config, const BenchArgs& args, const torch::Device& device,
                 int64_t out, int64_t batch, const TrainingStream* stream, BenchFacts& facts) {
  if (batch < 1)
    throw UsageError("--batch-sizes: expected integers >= 1, got " + std::to_string(batch));
  torch::manual_seed(config.train.seed);
  ModelPtr model = make_model(model_config(config), config.data.modalities, out);
  model->to(device);
  auto optimizer = make_optimizer(config.train, *model);
  facts.forward_flops = model->forward_flops();
  // A sequence encoder's recurrence or attention over the benched steps, beyond the Linear
  // layers forward_flops counts once per row.
  for (const auto& item : model->named_modules())
    for (const auto& m : config.data.modalities)
      if (const auto* e = dynamic_cast<const EncoderImpl*>(item.value().get());
          e && m.sequence && item.key() == "encoders." + m.name)
        facts.forward_flops += e->extra_flops(bench_steps(m));
  facts.parameters = parameter_counts(*model)[0].second;
  std::vector<torch::Tensor> x;
  for (const auto& m : config.data.modalities) x.push_back(bench_input(m, batch).to(device));
  const auto y = config.task == Task::Classification
                     ? torch::randint(out, {batch}, torch::kInt64).to(device)
                     : torch::randn({batch, out}).to(device);
  model->train();
  StepRunner step(model, config.train);
  const auto graph = GraphedTrainStep::make(config.train, step, *optimizer, device);
  const auto train_rates = timed_rates(args, batch, device, [&] {
    if (graph) return graph->run(x, y);
    clear_gradients(*optimizer);
    step.forward_backward(x, y);
    optimizer->step();
  });
  model->eval();
  std::vector<double> eval_rates;
  {
    torch::InferenceMode guard;
    eval_rates = timed_rates(args, batch, device, [&] { step.infer(x); });
  }
  // Which path the timed steps took (all of them, or "mixed").
  auto path_of = [](const StepRunner::Counts& c) {
    return c.autograd == 0      ? to_string(StepPath::HandWritten)
           : c.handwritten == 0 ? to_string(StepPath::Autograd)
                                : "mixed";
  };
  facts.train_path = graph ? "cuda-graph" : path_of(step.train_counts());
  facts.eval_path = path_of(step.infer_counts());
  json result = {{"batch_size", batch},
                 {"train", summarise(train_rates, batch, 3 * facts.forward_flops)},
                 {"eval", summarise(eval_rates, batch, facts.forward_flops)}};
  if (stream) {  // streaming makes each batch as it trains
    std::vector<double> rates;
    for (int64_t r = 0; r < args.repeats; ++r) {
      const auto start = Clock::now();
      for (int64_t i = 0; i < args.steps; ++i) stream->rows(r, i * batch, (i + 1) * batch);
      rates.push_back(double(batch * args.steps) /
                      std::chrono::duration<double>(Clock::now() - start).count());
    }
    result["stream"] = summarise(rates, batch, 0);
    result["stream"].erase("gflops");
  }
  return result;
}

}  // namespace

json run_bench(const BenchArgs& args) {
  ExperimentConfig config = load_config(args.config, args.overrides);
  const torch::Device device = resolve_device(config.device);
  apply_tf32(config.train.tf32);
  const int64_t threads = apply_threads(config.threads);
  if (args.steps < 1 || args.repeats < 1 || args.warmup < 0)
    throw ConfigError("bench: --steps and --repeats must be >= 1, --warmup >= 0");
  // File data may leave num_classes to training.
  if (config.task == Task::Classification && config.num_classes == 0)
    throw ConfigError("num_classes: bench draws random labels and needs it (--set num_classes=N)");
  // Random targets stand in for data: model.output_dim columns when given, else one.
  const int64_t out =
      resolve_output_dim(config, config.model.output_dim > 0 ? config.model.output_dim : 1);
  config.model.output_dim = out;
  const json generation = time_generation(config, args);
  // Generator 2 makes one batch at a time, as streaming does.
  std::unique_ptr<TrainingStream> stream;
  if (config.data.source == DataSource::Synthetic && config.data.synthetic.generator >= 2)
    stream = std::make_unique<TrainingStream>(config);

  json results = json::array();
  BenchFacts facts;
  for (int64_t batch : args.batch_sizes)
    results.push_back(bench_batch(config, args, device, out, batch, stream.get(), facts));
  return {{"config", args.config},
          {"model", to_string(config.model.type)},
          {"device", device.str()},
          {"threads", threads},
          {"train_path", facts.train_path},
          {"eval_path", facts.eval_path},
          {"parameters", facts.parameters},
          {"forward_flops_per_sample", facts.forward_flops},
          {"train_flops_per_sample", 3 * facts.forward_flops},
          {"tf32", config.train.tf32},
          {"matmul_gflops", matmul_gflops(device)},
          {"steps", args.steps},
          {"warmup", args.warmup},
          {"repeats", args.repeats},
          {"peak_rss_mb", memory_usage().peak_rss_mb},
          {"generation", generation},
          {"results", results}};
}

std::string bench_table(const json& r) {
  std::ostringstream out;
  char line[256];
  std::snprintf(
      line, sizeof line,
      "%s (train %s, eval %s) on %s, %lld threads, %lld parameters, %.0f train FLOPs/sample, "
      "matmul ceiling %.1f GFLOP/s, peak RSS %.0f MiB\n",
      r["model"].get<std::string>().c_str(), r["train_path"].get<std::string>().c_str(),
      r["eval_path"].get<std::string>().c_str(), r["device"].get<std::string>().c_str(),
      static_cast<long long>(r["threads"].get<int64_t>()),
      static_cast<long long>(r["parameters"].get<int64_t>()),
      r["train_flops_per_sample"].get<double>(), r["matmul_gflops"].get<double>(),
      r["peak_rss_mb"].get<double>());
  out << line;
  const json& generation = r["generation"];
  if (!generation.is_null()) {
    std::snprintf(line, sizeof line,
                  "synthetic data (generator %lld): %.0f samples/s for a split of %lld rows\n",
                  static_cast<long long>(generation["generator"].get<int64_t>()),
                  generation["samples_per_s"].get<double>(),
                  static_cast<long long>(generation["rows"].get<int64_t>()));
    out << line;
  }
  std::snprintf(line, sizeof line, "%8s %16s %10s %10s %10s %16s %10s %18s\n", "batch",
                "train samples/s", "ms/step", "GFLOP/s", "% ceiling", "eval samples/s", "GFLOP/s",
                "stream samples/s");
  out << line;
  const double ceiling = r["matmul_gflops"].get<double>();
  for (const auto& b : r["results"]) {
    const double gflops = b["train"]["gflops"].get<double>();
    const std::string stream_rate =
        b.contains("stream")
            ? std::to_string(static_cast<long long>(b["stream"]["samples_per_s"].get<double>()))
            : "-";
    std::snprintf(
        line, sizeof line, "%8lld %16.0f %10.3f %10.2f %9.1f%% %16.0f %10.2f %18s\n",
        static_cast<long long>(b["batch_size"].get<int64_t>()),
        b["train"]["samples_per_s"].get<double>(), b["train"]["ms_per_step"].get<double>(), gflops,
        ceiling > 0 ? 100 * gflops / ceiling : 0.0, b["eval"]["samples_per_s"].get<double>(),
        b["eval"]["gflops"].get<double>(), stream_rate.c_str());
    out << line;
  }
  return out.str();
}

}  // namespace mmfusion
