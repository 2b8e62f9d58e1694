// InTense: its arithmetic (intense.hpp) against closed forms and hand computations, and the
// `intense` model type (models.hpp) against its definition and the generator's truth.
#include <gtest/gtest.h>

#include <cmath>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "helpers.hpp"
#include "mmfusion/cli/commands.hpp"
#include "mmfusion/runtime/distributed.hpp"
#include "mmfusion/models/intense.hpp"
#include "mmfusion/models/models.hpp"
#include "mmfusion/training/step.hpp"
#include "mmfusion/training/trainer.hpp"
#include "mmfusion/config/config_io.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;

namespace {

// Largest |correlation| between any column of a and any column of b.
double max_abs_correlation(const torch::Tensor& a, const torch::Tensor& b) {
  const auto za = (a - a.mean(0)) / a.std(0);
  const auto zb = (b - b.mean(0)) / b.std(0);
  return (za.t().matmul(zb) / double(a.size(0) - 1)).abs().max().item<double>();
}

}  // namespace

// The layout is row-major in the set's order: entry (i, j, k) = u1[i] u2[j] u3[k] (the
// public code mixed an (i, k, j) layout into its 3-way centring).
TEST(InTense, InteractionBlockIsTheRowMajorOuterProductOfCentredFactors) {
  torch::manual_seed(0);
  const std::vector<torch::Tensor> u{torch::randn({5, 2}, torch::kFloat64),
                                     torch::randn({5, 3}, torch::kFloat64),
                                     torch::randn({5, 4}, torch::kFloat64)};
  const std::vector<torch::Tensor> mu{torch::randn({2}, torch::kFloat64),
                                      torch::randn({3}, torch::kFloat64),
                                      torch::randn({4}, torch::kFloat64)};
  const auto block = interaction_block(u, mu);
  ASSERT_EQ(block.sizes(), (std::vector<int64_t>{5, 24}));
  for (int64_t r = 0; r < 5; ++r)
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t j = 0; j < 3; ++j)
        for (int64_t k = 0; k < 4; ++k) {
          const double expected = (u[0][r][i] - mu[0][i]).item<double>() *
                                  (u[1][r][j] - mu[1][j]).item<double>() *
                                  (u[2][r][k] - mu[2][k]).item<double>();
          EXPECT_NEAR(block[r][i * 12 + j * 4 + k].item<double>(), expected, 1e-12);
        }
}

// With independent modalities and non-zero means, the centred 3-way block is uncorrelated
// with the lower-order parts (each modality, each pair's block), for four modalities too;
// the uncentred product is not.
TEST(InTense, CentringRemovesEveryLowerOrderPart) {
  torch::manual_seed(1);
  const int64_t n = 100000;
  std::vector<torch::Tensor> u, mu;
  for (int m = 0; m < 4; ++m) {
    u.push_back(torch::randn({n, 2}, torch::kFloat64) + 1.5);  // means far from zero
    mu.push_back(u.back().mean(0));
  }
  const auto triple = interaction_block({u[0], u[1], u[2]}, {mu[0], mu[1], mu[2]});
  const auto quadruple = interaction_block(u, mu);
  // Sampling noise of the largest of up to 128 correlations between heavy-tailed products
  // (a 4-way product of normals has kurtosis 81): about 0.01 to 0.025 here. The uncentred
  // product's correlation with its factors is above 0.3.
  const double noise = 0.05;
  for (int m = 0; m < 4; ++m) {
    EXPECT_LT(max_abs_correlation(quadruple, u[m]), noise);
    if (m < 3) EXPECT_LT(max_abs_correlation(triple, u[m]), noise);
  }
  EXPECT_LT(max_abs_correlation(triple, interaction_block({u[0], u[1]}, {mu[0], mu[1]})), noise);
  EXPECT_LT(
      max_abs_correlation(quadruple, interaction_block({u[1], u[2], u[3]}, {mu[1], mu[2], mu[3]})),
      noise);
  // Uncentred, the product carries its factors.
  const std::vector<torch::Tensor> zero{torch::zeros({2}, torch::kFloat64),
                                        torch::zeros({2}, torch::kFloat64),
                                        torch::zeros({2}, torch::kFloat64)};
  EXPECT_GT(max_abs_correlation(interaction_block({u[0], u[1], u[2]}, zero), u[0]), 0.3);
}

TEST(InTense, RelevanceScoresHaveUnitPNorm) {
  const std::vector<double> norms{0.5, 2.0, 0.0, 1.25};
  for (double p : {1.0, 1.5, 2.0, 4.0}) {
    const auto s = relevance_scores(norms, p);
    double sum = 0;
    for (double x : s) sum += std::pow(x, p);
    EXPECT_NEAR(sum, 1.0, 1e-12) << "p " << p;
    EXPECT_EQ(s[2], 0.0);
    EXPECT_LT(s[0], s[3]);
    EXPECT_LT(s[3], s[1]);
  }
  // p = 1: the norms' shares.
  const auto s1 = relevance_scores(norms, 1.0);
  EXPECT_NEAR(s1[1], 2.0 / 3.75, 1e-12);
  EXPECT_EQ(relevance_scores({0.0, 0.0}, 2.0), (std::vector<double>{0.0, 0.0}));
  EXPECT_THROW(relevance_scores(norms, 0.5), std::invalid_argument);
}

// (sum_b ||W_b||^q)^(2/q) by hand, and a gradient that reaches the weights (the public
// code's first release detached the norms) and matches finite differences.
TEST(InTense, BlockRegulariserHasItsValueAndItsGradient) {
  torch::manual_seed(2);
  const auto w0 = torch::randn({2, 5}, torch::kFloat64);
  const std::vector<std::pair<int64_t, int64_t>> blocks{{0, 2}, {2, 5}};
  const double p = 2, q = 4.0 / 3;
  const double n1 = w0.slice(1, 0, 2).norm().item<double>(),
               n2 = w0.slice(1, 2, 5).norm().item<double>();
  auto w = w0.clone().requires_grad_(true);
  const auto r = block_regularizer(w, blocks, p);
  EXPECT_NEAR(r.item<double>(), std::pow(std::pow(n1, q) + std::pow(n2, q), 2 / q), 1e-12);
  r.backward();
  ASSERT_TRUE(w.grad().defined());
  const double h = 1e-6;
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 5; ++j) {
      auto plus = w0.clone(), minus = w0.clone();
      plus[i][j] += h, minus[i][j] -= h;
      const double numeric = (block_regularizer(plus, blocks, p).item<double>() -
                              block_regularizer(minus, blocks, p).item<double>()) /
                             (2 * h);
      EXPECT_NEAR(w.grad()[i][j].item<double>(), numeric, 1e-6);
    }
}

// ---------------------------------------------------------------------------------------
// The `intense` model type: config, blocks, penalty, scores, training, truth.

namespace {

const std::vector<std::string> kIntense = {"model.type=intense", "threads=2"};

std::vector<std::string> with(std::vector<std::string> base, const std::vector<std::string>& more) {
  base.insert(base.end(), more.begin(), more.end());
  return base;
}

std::shared_ptr<IntenseImpl> make_intense(const ExperimentConfig& config, int64_t output_dim = 1) {
  return std::dynamic_pointer_cast<IntenseImpl>(
      make_model(config.model, config.data.modalities, output_dim));
}

double p_norm(const std::vector<std::pair<std::string, double>>& scores, double p) {
  double sum = 0;
  for (const auto& [name, s] : scores) sum += std::pow(s, p);
  return std::pow(sum, 1 / p);
}

}  // namespace

TEST(InTenseConfig, DefaultInteractionsArePairsAndTheFullSetOfThree) {
  using Sets = std::vector<std::vector<std::string>>;
  EXPECT_EQ(tiny_config().model.intense.interactions, (Sets{{"visual", "audio"},
                                                            {"visual", "text"},
                                                            {"audio", "text"},
                                                            {"visual", "audio", "text"}}));
  EXPECT_EQ(tiny_config({"data.modalities=[{\"name\":\"a\",\"dim\":2},{\"name\":\"b\",\"dim\":3}]"})
                .model.intense.interactions,
            (Sets{{"a", "b"}}));
  // Four modalities: the six pairs, no higher order unless asked for.
  const auto four =
      tiny_config({"data.modalities=[{\"name\":\"a\",\"dim\":2},{\"name\":\"b\",\"dim\":2},"
                   "{\"name\":\"c\",\"dim\":2},{\"name\":\"d\",\"dim\":2}]"});
  EXPECT_EQ(four.model.intense.interactions.size(), 6u);
  // Given sets are stored in the config's modality order; [] means unimodal blocks only.
  EXPECT_EQ(tiny_config({"model.intense.interactions=[[\"text\",\"visual\"]]"})
                .model.intense.interactions,
            (Sets{{"visual", "text"}}));
  EXPECT_TRUE(tiny_config({"model.intense.interactions=[]"}).model.intense.interactions.empty());
  // The resolved config round-trips.
  const auto c =
      tiny_config({"model.intense.interactions=[[\"audio\",\"visual\"]]", "model.intense.p=2"});
  EXPECT_TRUE(parse_config(to_json(c)) == c);
}

TEST(InTenseConfig, BadInteractionsNameTheirPlace) {
  expect_error<ConfigError>(
      [] { tiny_config({"model.intense.interactions=[[\"visual\"]]"}); },
      "model.intense.interactions[0]: expected a list of at least 2 modality names");
  expect_error<ConfigError>(
      [] { tiny_config({"model.intense.interactions=[[\"visual\",\"smell\"]]"}); },
      "no modality named \"smell\"");
  expect_error<ConfigError>(
      [] {
        tiny_config({"model.intense.interactions=[[\"visual\",\"audio\"],[\"audio\",\"visual\"]]"});
      },
      "model.intense.interactions[1]: the same set of modalities as an earlier interaction");
  expect_error<ConfigError>([] { tiny_config({"model.intense.interactions=\"all\""}); },
                            "model.intense.interactions: expected a list of modality-name lists");
  expect_error<ConfigError>([] { tiny_config({"model.intense.p=0.5"}); }, "model.intense.p");
  expect_error<ConfigError>([] { tiny_config({"model.intense.reg=-1"}); }, "model.intense.reg");
  expect_error<ConfigError>(
      [] {
        tiny_config(
            {"model.type=intense", "model.intense.latent_dim=64", "model.max_fused_size=100000"});
      },
      "model.intense.interactions[3]: the block of 3 modalities has latent_dim^3 = 262144 values per sample, above "
      "model.max_fused_size");
  EXPECT_NO_THROW(
      tiny_config({"model.intense.latent_dim=64", "model.max_fused_size=100000"}));  // not InTense
  expect_error<ConfigError>([] { tiny_config({"model.intense.rank=3"}); },
                            "model.intense.rank: unknown key");
}

TEST(InTenseModel, BlocksAreNamedLaidOutAndNormalised) {
  const auto config = tiny_config(with(kIntense, {"model.intense.latent_dim=3"}));
  torch::manual_seed(0);
  auto model = make_intense(config, 2);
  ASSERT_TRUE(model);
  std::vector<std::string> names;
  std::vector<int64_t> widths;
  for (const auto& b : model->layout()) names.push_back(b.name), widths.push_back(b.end - b.begin);
  EXPECT_EQ(names, (std::vector<std::string>{"visual", "audio", "text", "visual:audio",
                                             "visual:text", "audio:text", "visual:audio:text"}));
  EXPECT_EQ(widths, (std::vector<int64_t>{8, 8, 8, 9, 9, 9, 27}));  // encoders [8]; 3^2, 3^3
  const auto params = model->named_parameters();
  for (const char* key : {"encoders.visual.fc0.weight", "project.visual.weight",
                          "project.text.weight", "fusion.weight"})
    EXPECT_TRUE(params.contains(key)) << key;
  EXPECT_FALSE(params.contains(
      "project.text.bias"));  // batch normalisation follows: a bias would do nothing
  EXPECT_EQ(params["fusion.weight"].sizes(), (std::vector<int64_t>{2, 78}));
  EXPECT_TRUE(model->named_buffers().contains("block_norm.6.running_var"));

  const auto x = random_inputs(config.data.modalities, 512);
  model->train();
  EXPECT_EQ(model->forward(x).sizes(), (std::vector<int64_t>{512, 2}));
  // One variance per block: each block has unit mean squared norm and zero mean on the batch.
  for (const auto& block : model->blocks(x)) {
    EXPECT_NEAR(block.pow(2).sum(1).mean().item<double>(), 1.0, 1e-3);
    EXPECT_LT(block.mean(0).abs().max().item<double>(), 1e-5);
  }
  // A training batch of one row uses the running estimates instead of failing.
  EXPECT_EQ(model->forward(random_inputs(config.data.modalities, 1)).sizes(),
            (std::vector<int64_t>{1, 2}));
}

// The interaction blocks are uncorrelated with every lower-order part (the projections of
// their members, and the blocks of strict subsets) on independent inputs with non-zero
// means, in training and, once the running estimates have settled, in evaluation.
TEST(InTenseModel, InteractionBlocksHoldNoLowerOrderPart) {
  const auto config =
      tiny_config(with(kIntense, {"model.intense.latent_dim=2", "model.encoder_hidden=[6]"}));
  torch::manual_seed(1);
  auto model = make_intense(config);
  auto inputs = [&](int64_t n) {
    auto x = random_inputs(config.data.modalities, n);
    for (auto& t : x) t = t * 2 + 3;  // far from zero mean
    return x;
  };
  auto check = [&](const std::string& mode) {
    torch::NoGradGuard no_grad;
    const auto x = inputs(100000);
    const auto z = model->encoders->forward(x);
    std::vector<torch::Tensor> u;
    for (size_t m = 0; m < z.size(); ++m)
      u.push_back(model->projection_norms[m](model->projections[m](z[m])));
    const auto blocks = model->blocks(x);
    const auto& layout = model->layout();
    // Noise of the largest of up to 48 correlations of 1e5 heavy-tailed products: < 0.03.
    for (size_t b = 3; b < layout.size(); ++b) {
      for (size_t m : layout[b].members) {
        EXPECT_LT(max_abs_correlation(blocks[b], u[m]), 0.03)
            << mode << ": " << layout[b].name << " vs its factor";
        EXPECT_LT(max_abs_correlation(blocks[b], blocks[m]), 0.03)
            << mode << ": " << layout[b].name << " vs " << layout[m].name;
      }
      if (layout[b].members.size() == 3)
        for (size_t pair = 3; pair < 6; ++pair)
          EXPECT_LT(max_abs_correlation(blocks[b], blocks[pair]), 0.03)
              << mode << ": " << layout[pair].name;
    }
  };
  model->train();
  check("training");
  {
    // Without the centring, the product of the (uncentred) projections carries them.
    torch::NoGradGuard no_grad;
    const auto z = model->encoders->forward(inputs(100000));
    const auto raw = model->projections[0](z[0]), raw2 = model->projections[1](z[1]);
    EXPECT_GT(max_abs_correlation(interaction_block({raw, raw2}), raw), 0.3);
  }
  // The running estimates settle (momentum 0.1; batches large enough that their own noise,
  // about sqrt(0.05 / 4096), stays below the test's).
  for (int i = 0; i < 60; ++i) model->forward(inputs(4096));
  model->eval();
  check("evaluation");
}

// reg adds reg * dR/dW to the fusion weights' gradient and nothing to any other
// parameter's (the public code's first release detached it: no change at all).
TEST(InTenseModel, TheRegulariserChangesTheFusionWeightsGradientByItsOwn) {
  const auto base = tiny_config(with(kIntense, {"model.dropout=0", "model.intense.reg=0"}));
  const auto regularised = tiny_config(
      with(kIntense, {"model.dropout=0", "model.intense.reg=0.5", "model.intense.p=1.5"}));
  torch::manual_seed(2);
  auto a = make_intense(base);
  auto b = make_intense(regularised);
  {
    torch::NoGradGuard no_grad;
    auto pb = b->named_parameters();
    for (const auto& p : a->named_parameters()) pb[p.key()].copy_(p.value());
  }
  EXPECT_FALSE(a->penalty().defined());  // reg 0: no penalty at all
  const auto x = random_inputs(base.data.modalities, 64);
  const auto y = torch::randn({64, 1});
  StepRunner ra(a, base.train), rb(b, regularised.train);
  const double la = ra.forward_backward(x, y), lb = rb.forward_backward(x, y);
  EXPECT_DOUBLE_EQ(la, lb);  // the returned loss is the data's, without the penalty

  // The expected difference, from the regulariser alone on a copy of the weights.
  const auto w = b->fusion->weight.detach().to(torch::kFloat64).requires_grad_(true);
  (0.5 * block_regularizer(w, b->columns(), 1.5)).backward();
  const auto ga = a->named_parameters(), gb = b->named_parameters();
  for (const auto& p : ga) {
    const auto difference = (gb[p.key()].grad() - p.value().grad()).to(torch::kFloat64);
    if (p.key() == "fusion.weight") {
      EXPECT_GT(w.grad().abs().max().item<double>(), 1e-3);
      EXPECT_TRUE(torch::allclose(difference, w.grad(), 1e-4, 1e-6))
          << (difference - w.grad()).abs().max();
    } else {
      EXPECT_EQ(difference.abs().max().item<double>(), 0.0) << p.key();
    }
  }
}

TEST(InTenseModel, RelevanceScoresHaveUnitPNormAndTheBlocksNames) {
  for (double p : {1.0, 2.0, 3.0}) {
    torch::manual_seed(3);
    auto model =
        make_intense(tiny_config(with(kIntense, {"model.intense.p=" + std::to_string(p)})), 3);
    const auto scores = model->relevance();
    ASSERT_EQ(scores.size(), model->layout().size());
    for (size_t b = 0; b < scores.size(); ++b) {
      EXPECT_EQ(scores[b].first, model->layout()[b].name);
      EXPECT_GT(scores[b].second, 0.0);
    }
    EXPECT_NEAR(p_norm(scores, p), 1.0, 1e-9) << "p " << p;
    // By hand for the first block: ||W_b||^(2/(p+1)) / (sum ||W_b'||^(2p/(p+1)))^(1/p).
    const auto w = model->fusion->weight.detach().to(torch::kFloat64);
    double denominator = 0;
    for (const auto& block : model->layout())
      denominator +=
          std::pow(w.slice(1, block.begin, block.end).norm().item<double>(), 2 * p / (p + 1));
    const auto& first = model->layout()[0];
    EXPECT_NEAR(scores[0].second,
                std::pow(w.slice(1, first.begin, first.end).norm().item<double>(), 2 / (p + 1)) /
                    std::pow(denominator, 1 / p),
                1e-9);
  }
}

namespace {

// An in-process group of ranks on threads: every collective waits for all ranks, then
// combines their tensors in rank order.
class ThreadGroup {
 public:
  explicit ThreadGroup(int world) : world_(world), slots_(world) {}
  int world() const { return world_; }
  void collective(int rank, torch::Tensor& t,
                  const std::function<void(std::vector<torch::Tensor>&, torch::Tensor&)>& combine) {
    slots_[rank] = t.clone();
    barrier();
    combine(slots_, t);
    barrier();
  }

 private:
  void barrier() {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t generation = generation_;
    if (++arrived_ == world_) {
      arrived_ = 0, ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != generation; });
    }
  }
  int world_;
  std::vector<torch::Tensor> slots_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int64_t generation_ = 0;
};

class ThreadCommunicator : public Communicator {
 public:
  ThreadCommunicator(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int world_size() const override { return group_.world(); }
  std::string backend() const override { return "threads"; }
  void allreduce_sum(torch::Tensor& t) override {
    group_.collective(rank_, t, [](std::vector<torch::Tensor>& all, torch::Tensor& out) {
      torch::Tensor sum = all[0].clone();
      for (size_t r = 1; r < all.size(); ++r) sum += all[r];
      out.copy_(sum);
    });
  }
  void allreduce_max(torch::Tensor& t) override {
    group_.collective(rank_, t, [](std::vector<torch::Tensor>& all, torch::Tensor& out) {
      torch::Tensor max = all[0].clone();
      for (size_t r = 1; r < all.size(); ++r) max = torch::maximum(max, all[r]);
      out.copy_(max);
    });
  }
  void broadcast(torch::Tensor& t, int root) override {
    group_.collective(rank_, t, [root](std::vector<torch::Tensor>& all, torch::Tensor& out) {
      out.copy_(all[root]);
    });
  }
  std::string share(const std::string&, const std::string& value) override { return value; }

 private:
  ThreadGroup& group_;
  int rank_;
};

// The fusion weights after one plain SGD step of data-parallel training on `world` ranks
// (threads), and their initial values.
std::pair<torch::Tensor, torch::Tensor> one_sgd_step(int world, double reg,
                                                     const std::string& dir) {
  auto config =
      tiny_config({"model.type=intense", "threads=1", "model.dropout=0", "data.train_size=48",
                   "train.batch_size=48", "train.epochs=1", "train.optimizer=sgd",
                   "train.momentum=0", "train.lr=0.5", "model.intense.reg=" + std::to_string(reg)});
  config.model.output_dim = 1;
  const DataSplits data = load_splits(config);
  ThreadGroup group(world);
  std::vector<std::unique_ptr<Trainer>> trainers;
  for (int r = 0; r < world; ++r) {
    RunPaths paths(dir + "/rank" + std::to_string(r));
    std::filesystem::create_directories(paths.checkpoints);
    torch::manual_seed(config.seed);
    trainers.push_back(std::make_unique<Trainer>(config, data, torch::kCPU, paths, quiet_logger()));
    trainers.back()->set_communicator(std::make_shared<ThreadCommunicator>(group, r));
  }
  const torch::Tensor initial =
      dynamic_cast<IntenseImpl&>(trainers[0]->model()).fusion->weight.detach().clone();
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) threads.emplace_back([&, r] { trainers[r]->fit(); });
  for (auto& t : threads) t.join();
  // Every rank ends with rank 0's running statistics (broadcast before validation).
  const auto leader = trainers[0]->model().named_buffers();
  for (int r = 1; r < world; ++r)
    for (const auto& b : trainers[r]->model().named_buffers())
      EXPECT_TRUE(torch::equal(b.value(), leader[b.key()])) << "rank " << r << ": " << b.key();
  return {dynamic_cast<IntenseImpl&>(trainers[0]->model()).fusion->weight.detach().clone(),
          initial};
}

}  // namespace

// With plain SGD one step moves W by -lr * gradient: the difference between a run with
// and without the regulariser is -lr * reg * dR/dW, counted once, whether one rank or
// three share the batch.
TEST(InTenseModel, DataParallelTrainingCountsTheRegulariserOnce) {
  TempDir dir;
  const double lr = 0.5, reg = 0.3;
  for (int world : {1, 3}) {
    SCOPED_TRACE("world " + std::to_string(world));
    const auto [with_reg, initial] =
        one_sgd_step(world, reg, dir.file("reg" + std::to_string(world)));
    const auto [without, initial0] =
        one_sgd_step(world, 0.0, dir.file("plain" + std::to_string(world)));
    ASSERT_TRUE(torch::equal(initial, initial0));
    auto model = make_intense(tiny_config({"model.type=intense"}));  // the same block layout
    const auto w = initial.to(torch::kFloat64).requires_grad_(true);
    (reg * block_regularizer(w, model->columns(), 1.0)).backward();
    const auto moved = (with_reg - without).to(torch::kFloat64);
    EXPECT_TRUE(torch::allclose(moved, -lr * w.grad(), 1e-3, 1e-6))
        << (moved + lr * w.grad()).abs().max();
  }
}

namespace {

// Trains an intense (or other) model on synthetic data with the given terms and returns
// results.json; `dir` receives the run folder.
json train_on_terms(const std::string& dir, const std::vector<std::string>& overrides) {
  TrainArgs train;
  train.config = source_path("configs/tiny.json");
  train.overrides = with({"threads=2", "data.train_size=4096", "data.val_size=512",
                          "data.test_size=1024", "data.synthetic.shared_latent_dim=0",
                          "model.encoder_hidden=[16]", "train.epochs=20", "train.lr=0.003"},
                         overrides);
  train.out = dir;
  return run_train(train).results;
}

bool has_text(const std::string& block) { return block.find("text") != std::string::npos; }

}  // namespace

// The XOR-like check: the label is the sign of a visual:audio product alone and
// text is noise. Late fusion (additive) cannot do better than chance; InTense puts its
// top score on visual:audio and almost none on any block with text.
TEST(InTenseTruth, AnXorLabelGoesToTheVisualAudioBlock) {
  TempDir dir;
  const std::vector<std::string> xor_task = {
      "task=classification", "num_classes=2", "data.synthetic.target_noise=0.01",
      "data.synthetic.terms=[{\"modalities\":[\"visual\",\"audio\"],\"weight\":1}]"};
  const json r = train_on_terms(dir.file("intense"),
                                with(xor_task, {"model.type=intense", "model.intense.p=1"}));
  EXPECT_GE(r["test"]["accuracy"].get<double>(), 0.95) << r.dump(2);
  const json& s = r["relevance"];
  ASSERT_EQ(s.size(), 7u) << r.dump(2);
  std::string top;
  for (const auto& [block, score] : s.items()) {
    if (top.empty() || score.get<double>() > s[top].get<double>()) top = block;
    if (has_text(block)) EXPECT_LT(score.get<double>(), 0.05) << block;
  }
  EXPECT_EQ(top, "visual:audio") << s.dump();
  const json late = train_on_terms(dir.file("late"), with(xor_task, {"model.type=late"}));
  EXPECT_LT(late["test"]["accuracy"].get<double>(), 0.6) << late.dump(2);
}

TEST(InTenseTruth, AdditiveDataPutsTheScoreOnUnimodalBlocks) {
  TempDir dir;
  const json r = train_on_terms(
      dir.file("run"),
      {"model.type=intense", "data.synthetic.target_noise=0.05",
       "data.synthetic.terms=[{\"modalities\":[\"visual\"],\"weight\":1},"
       "{\"modalities\":[\"audio\"],\"weight\":1},{\"modalities\":[\"text\"],\"weight\":1}]"});
  double unimodal = 0, total = 0;
  for (const auto& [block, score] : r["relevance"].items()) {
    total += score.get<double>();
    if (block.find(':') == std::string::npos) unimodal += score.get<double>();
  }
  EXPECT_GE(unimodal / total, 0.8) << r["relevance"].dump();
}

// Where the truth's shares of two subsets differ by more than 0.1, the scores order them
// the same way.
TEST(InTenseTruth, MixedDataScoresRankSubsetsAsTheTruthDoes) {
  TempDir dir;
  const std::vector<std::string> terms = {
      "data.synthetic.target_noise=0.05",
      "data.synthetic.terms=[{\"modalities\":[\"visual\"],\"weight\":1.2},{\"modalities\":[\"audio\"],\"weight\":0.5},"
      "{\"modalities\":[\"visual\",\"audio\"],\"weight\":1}]"};
  const json r = train_on_terms(dir.file("run"), with(terms, {"model.type=intense"}));
  const auto config = tiny_config(with({"data.synthetic.shared_latent_dim=0"}, terms));
  const SyntheticTruth truth = synthetic_truth(config.data, config.seed);
  ASSERT_TRUE(truth.exact);
  std::map<std::string, double> share;
  for (const auto& s : truth.subsets) share[subset_name(s.modalities)] = s.share;
  const json& scores = r["relevance"];
  int compared = 0;
  for (const auto& [a, sa] : scores.items())
    for (const auto& [b, sb] : scores.items()) {
      const double ta = share.count(a) ? share[a] : 0.0, tb = share.count(b) ? share[b] : 0.0;
      if (ta - tb <= 0.1) continue;
      ++compared;
      EXPECT_GT(sa.get<double>(), sb.get<double>())
          << a << " (truth " << ta << ") vs " << b << " (truth " << tb << ")";
    }
  EXPECT_GE(compared,
            10);  // visual and visual:audio above every other block, visual above visual:audio
}

// Every place a run reports relevance: metrics.jsonl (every epoch), results.json,
// relevance.svg, inspect and explain.
TEST(InTenseTraining, TheRunFolderReportsTheScores) {
  TempDir dir;
  TrainArgs train;
  train.config = source_path("configs/tiny.json");
  train.overrides = {"model.type=intense", "train.epochs=3", "model.intense.p=2"};
  train.out = dir.file("run");
  const json results = run_train(train).results;
  std::ifstream metrics(dir.file("run/metrics.jsonl"));
  std::string line;
  int epochs = 0;
  while (std::getline(metrics, line)) {
    const json r = json::parse(line);
    ASSERT_EQ(r["relevance"].size(), 7u) << line;
    EXPECT_GT(r["penalty"].get<double>(), 0.0);
    double sum = 0;
    for (const auto& [block, score] : r["relevance"].items())
      sum += std::pow(score.get<double>(), 2.0);
    EXPECT_NEAR(sum, 1.0, 1e-9);  // p = 2
    ++epochs;
  }
  EXPECT_EQ(epochs, 3);
  EXPECT_EQ(results["relevance"].size(), 7u);
  EXPECT_TRUE(well_formed_xml(dir.file("run/relevance.svg")));
  EXPECT_NE(read_text(dir.file("run/relevance.svg")).find("visual:audio:text"), std::string::npos);
  const json inspected = run_inspect(dir.file("run/checkpoints/best.pt"));
  EXPECT_EQ(inspected["relevance"], results["relevance"]);  // results.json evaluates best.pt

  ExplainArgs args;
  args.checkpoint = dir.file("run/checkpoints/best.pt");
  args.options.samples = 2000;
  args.options.bootstrap = 0;
  const json explained = run_explain(args);
  for (const auto& s : explained["subsets"]) {
    const std::string name = s["name"];
    EXPECT_EQ(s["relevance"], results["relevance"][name]) << name;  // every subset has a block here
  }
  EXPECT_NE(explain_table(explained).find("relevance"), std::string::npos);
  EXPECT_NE(read_text(dir.file("run/explain/explain.csv")).find("relevance,visual:audio,"),
            std::string::npos);
  // Models without scores report none.
  train.overrides = {"model.type=concat", "train.epochs=1"};
  train.out = dir.file("concat");
  EXPECT_FALSE(run_train(train).results.contains("relevance"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("concat/relevance.svg")));
}
