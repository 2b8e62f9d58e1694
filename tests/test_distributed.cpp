// Multi-process training on the loopback interface, launched by the test itself with the
// variables torchrun would set.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include <nlohmann/json.hpp>

#include "helpers.hpp"
#include "mmfusion/training/checkpoint.hpp"
#include "mmfusion/runtime/distributed.hpp"
#include "mmfusion/models/models.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

std::string rank_env(int rank, int world, int port) {
  return "WORLD_SIZE=" + std::to_string(world) + " RANK=" + std::to_string(rank) +
         " LOCAL_RANK=" + std::to_string(rank) +
         " MASTER_ADDR=127.0.0.1 MASTER_PORT=" + std::to_string(port) + " ";
}

std::vector<json> metrics(const std::string& run) {
  std::vector<json> rows;
  std::istringstream in(read_text(run + "/metrics.jsonl"));
  std::string line;
  while (std::getline(in, line)) rows.push_back(json::parse(line));
  return rows;
}

std::map<std::string, torch::Tensor> parameters(const std::string& checkpoint) {
  Checkpoint c = open_checkpoint(checkpoint);
  ModelPtr model = make_model(c.config.model, c.config.data.modalities, c.config.model.output_dim);
  c.load_model(*model);
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : model->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

const std::string kArgs = " train --config " + source_path("configs/tiny.json") +
                          " --set model.dropout=0 --set train.epochs=3 --set train.batch_size=48"
                          // scaled data: every rank must use rank 0's statistics
                          " --set data.standardize=zscore --set data.standardize_target=true";

}  // namespace

TEST(Distributed, ShardsAreDisjointAndCoverTheBatch) {
  for (int world : {1, 2, 3, 5})
    for (auto [b0, b1] : std::vector<std::pair<int64_t, int64_t>>{{0, 48}, {96, 100}, {10, 12}}) {
      int64_t next = b0;
      for (int r = 0; r < world; ++r) {
        const auto [s0, s1] = shard_of(b0, b1, r, world);
        EXPECT_EQ(s0, next);  // contiguous, in rank order, no overlap
        EXPECT_LE(s0, s1);
        EXPECT_LE(s1 - s0, (b1 - b0 + world - 1) / world);
        next = s1;
      }
      EXPECT_EQ(next, b1);  // together they cover the batch
    }
}

TEST(Distributed, TwoProcessesMatchOneProcessWithTheSameGlobalBatch) {
  if (!gloo_available()) GTEST_SKIP() << "this build has no Gloo (CPU) backend";
  TempDir dir;
  const std::string bin = MMFUSION_BINARY;
  ASSERT_EQ(std::system((bin + kArgs + " --set threads=1 --out " + dir.file("single") +
                         " 2>/dev/null >/dev/null")
                            .c_str()),
            0);
  const int port = free_port();
  const std::string two = "(" + rank_env(0, 2, port) + bin + kArgs + " --out " + dir.file("multi") +
                          " 2>" + dir.file("r0.txt") + " >" + dir.file("o0.txt") + " & " +
                          rank_env(1, 2, port) + bin + kArgs + " --out " + dir.file("multi") +
                          " 2>" + dir.file("r1.txt") + " >" + dir.file("o1.txt") +
                          "; r1=$?; wait $!; r0=$?; exit $((r0 + r1)))";
  ASSERT_EQ(std::system(two.c_str()), 0)
      << read_text(dir.file("r0.txt")) << read_text(dir.file("r1.txt"));
  // One run folder, written by rank 0; rank 1 logs warnings only.
  EXPECT_TRUE(fs::exists(dir.file("multi/results.json")));
  EXPECT_EQ(read_text(dir.file("r1.txt")), "");
  // Only rank 0 prints the run folder, as a single process does.
  EXPECT_EQ(read_text(dir.file("o0.txt")), dir.file("multi") + "\n");
  EXPECT_EQ(read_text(dir.file("o1.txt")), "");
  const auto a = metrics(dir.file("single")), b = metrics(dir.file("multi"));
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const double x = a[i]["train_loss"], y = b[i]["train_loss"];
    EXPECT_NEAR(x, y, 1e-5 * std::abs(x)) << "epoch " << i + 1;
    EXPECT_NEAR(a[i]["val_loss"].get<double>(), b[i]["val_loss"].get<double>(),
                1e-5 * a[i]["val_loss"].get<double>());
  }
  const auto pa = parameters(dir.file("single/checkpoints/last.pt"));
  const auto pb = parameters(dir.file("multi/checkpoints/last.pt"));
  for (const auto& [name, t] : pa) EXPECT_TRUE(torch::allclose(t, pb.at(name), 1e-5, 1e-5)) << name;
}

TEST(Distributed, ARankThatDiesMakesTheOtherFailWithinTheTimeout) {
  if (!gloo_available()) GTEST_SKIP() << "this build has no Gloo (CPU) backend";
  TempDir dir;
  const std::string bin = MMFUSION_BINARY;
  const int port = free_port();
  const std::string args = " train --config " + source_path("configs/tiny.json") +
                           " --set train.epochs=100000 --set distributed.timeout_s=5 --out " +
                           dir.file("run");
  // Rank 1 is killed once rank 0 has logged its first epoch; rank 0 must then stop with
  // an error naming the failure, well within the timeout, and keep its checkpoint.
  const std::string cmd = "(" + rank_env(0, 2, port) + bin + args + " 2>" + dir.file("r0.txt") +
                          " >/dev/null & p0=$!; " + rank_env(1, 2, port) + bin + args +
                          " 2>/dev/null >/dev/null & p1=$!; " + "for i in $(seq 300); do [ -s " +
                          dir.file("run/metrics.jsonl") + " ] && break; sleep 0.1; done; " +
                          "kill -9 $p1; wait $p0; echo $? > " + dir.file("rc.txt") + ")";
  const auto start = std::chrono::steady_clock::now();
  std::system(cmd.c_str());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(read_text(dir.file("rc.txt")), "1\n") << read_text(dir.file("r0.txt"));
  EXPECT_LT(seconds, 60.0);
  const std::string err = read_text(dir.file("r0.txt"));
  EXPECT_NE(err.find("rank 0: "), std::string::npos) << err;
  EXPECT_NO_THROW(open_checkpoint(dir.file("run/checkpoints/last.pt")));
}

TEST(Distributed, APeerThatNeverJoinsIsReportedAsSuchWithTheTimeWaited) {
  if (!gloo_available()) GTEST_SKIP() << "this build has no Gloo (CPU) backend";
  // Rank 0 of two, alone: rank 1 never starts (or died before joining). The error must say
  // that the group did not form, why, and after how long, not just quote the limit.
  TempDir dir;
  const std::string cmd = rank_env(0, 2, free_port()) + MMFUSION_BINARY + " train --config " +
                          source_path("configs/tiny.json") +
                          " --set distributed.timeout_s=3 --out " + dir.file("run") + " 2>" +
                          dir.file("err.txt") + " >/dev/null";
  const auto start = std::chrono::steady_clock::now();
  const int status = std::system(cmd.c_str());
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);
  EXPECT_LT(seconds, 60.0);
  const std::string err = read_text(dir.file("err.txt"));
  EXPECT_NE(err.find("rank 0: "), std::string::npos) << err;
  EXPECT_NE(err.find("a peer never joined or died while joining"), std::string::npos) << err;
  EXPECT_NE(err.find("distributed.timeout_s = 3"), std::string::npos) << err;
  EXPECT_NE(err.find("gave up after "), std::string::npos) << err;
}
