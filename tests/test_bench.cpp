// bench (experiments/bench.hpp): FLOP counts against the layer sizes, and the command's JSON.
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "mmfusion/experiments/bench.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;

TEST(Bench, FlopCountsFollowTheLayerSizes) {
  // tiny: visual 16, audio 8, text 24 -> MLP [8] each; LMF rank 2, fused 4, head 4 -> 1.
  const auto c = tiny_config();
  ModelPtr lmf = make_model(c.model, c.data.modalities, 1);
  const double encoders = (2.0 * 16 * 8 + 8) + (2.0 * 8 * 8 + 8) + (2.0 * 24 * 8 + 8);
  const double ro = 2 * 4;                       // rank * fused
  const double fusion = 3 * (2.0 * 8 * ro + ro)  // one addmm per modality
                        + 2 * ro                 // product of three
                        + 2 * ro + 4;            // rank sum and bias
  const double head = 2.0 * 4 * 1 + 1;
  EXPECT_DOUBLE_EQ(lmf->forward_flops(), encoders + fusion + head);

  const auto t = tiny_config({"model.type=tfn", "model.post_hidden=[5]"});
  ModelPtr tfn = make_model(t.model, t.data.modalities, 1);
  const double outer = 9.0 * 9 + 9.0 * 9 * 9;  // (9 x 9) then (81 x 9) products
  const double post = (2.0 * 729 * 5 + 5) + (2.0 * 5 * 1 + 1);
  EXPECT_DOUBLE_EQ(tfn->forward_flops(), encoders + outer + post);

  // InTense over the three and the pair (visual, audio), latent 3: one projection (no bias:
  // its normalisation centres it) and that normalisation per member of the pair, the
  // pair's 3 x 3 outer product, every block's normalisation, and one Linear layer from all
  // blocks (8 + 8 + 8 + 9 columns) to 1.
  const auto i =
      tiny_config({"model.type=intense", "model.intense.interactions=[[\"visual\",\"audio\"]]",
                   "model.intense.latent_dim=3"});
  ModelPtr intense = make_model(i.model, i.data.modalities, 1);
  const double projections = 2 * (2.0 * 8 * 3) + 2 * (2.0 * 3);
  const double pair = 3.0 * 3;
  const double norms = 2.0 * (8 + 8 + 8 + 9);
  const double fusion_layer = 2.0 * 33 * 1 + 1;
  EXPECT_DOUBLE_EQ(intense->forward_flops(), encoders + projections + pair + norms + fusion_layer);
}

TEST(Bench, CommandPrintsWellFormedJsonWithEveryField) {
  TempDir dir;
  const std::string cmd = std::string(MMFUSION_BINARY) + " bench --config " +
                          source_path("configs/tiny.json") +
                          " --batch-sizes 4,8 --steps 2 --warmup 1 --repeats 2 --json > " +
                          dir.file("out.json") + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const json r = json::parse(read_text(dir.file("out.json")));
  for (const char* k : {"model", "device", "threads", "train_path", "eval_path", "parameters",
                        "forward_flops_per_sample", "train_flops_per_sample", "matmul_gflops",
                        "peak_rss_mb", "results"})
    EXPECT_TRUE(r.contains(k)) << k;
  ASSERT_EQ(r["results"].size(), 2u);
  EXPECT_EQ(r["results"][1]["batch_size"], 8);
  for (const char* phase : {"train", "eval"})
    for (const char* k :
         {"samples_per_s", "samples_per_s_min", "samples_per_s_max", "ms_per_step", "gflops"}) {
      const auto& v = r["results"][0][phase][k];
      ASSERT_TRUE(v.is_number()) << phase << "." << k;
      EXPECT_GT(v.get<double>(), 0.0) << phase << "." << k;
    }
  EXPECT_LE(r["results"][0]["train"]["samples_per_s_min"].get<double>(),
            r["results"][0]["train"]["samples_per_s"].get<double>());
  EXPECT_GT(r["matmul_gflops"].get<double>(), 0.0);
  // tiny is an LMF on the CPU: both phases ran the hand-written pass.
  EXPECT_EQ(r["train_path"], "hand-written");
  EXPECT_EQ(r["eval_path"], "hand-written");
}
