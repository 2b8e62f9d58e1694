// Reading configs (config/config_io.hpp): defaults, the shipped configs, round trips,
// every bad config failing with its key path, overrides, renamed keys.
#include <gtest/gtest.h>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "bad_configs.hpp"
#include "helpers.hpp"
#include "mmfusion/config/config.hpp"
#include "mmfusion/config/config_io.hpp"
#include "mmfusion/base/errors.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
using nlohmann::json;

namespace {

std::string config_error(const json& doc) {
  try {
    parse_config(doc);
  } catch (const ConfigError& e) { return e.what(); }
  return "(no error)";
}

json with(const std::string& assignment) {
  json doc = json::object();
  apply_override(doc, assignment);
  return doc;
}

}  // namespace

TEST(Config, DefaultsMatchTheDocumentedValues) {
  const ExperimentConfig c = parse_config(json::object());
  EXPECT_EQ(c.name, "default");
  EXPECT_EQ(c.seed, 42u);
  EXPECT_EQ(c.device, "auto");
  ASSERT_EQ(c.data.modalities.size(), 3u);
  EXPECT_EQ(c.data.modalities[0].name, "visual");
  EXPECT_EQ(c.data.modalities[0].dim, 128);
  EXPECT_EQ(c.data.modalities[1].dim, 64);
  EXPECT_EQ(c.data.modalities[2].dim, 300);
  EXPECT_EQ(c.model.type, ModelType::LMF);
  EXPECT_EQ(c.model.rank, 4);
  EXPECT_EQ(c.train.epochs, 20);
  EXPECT_EQ(c.train.batch_size, 64);
  EXPECT_EQ(c.train.optimizer, OptimizerType::Adam);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_EQ(c.train.loss, Loss::MSE);
  EXPECT_EQ(c.task, Task::Regression);
  EXPECT_EQ(c.model.activation, Activation::ReLU);
  EXPECT_TRUE(c.train.handwritten_step);
  EXPECT_TRUE(c.train.flat_optimizer);
}

TEST(Config, EveryShippedConfigValidates) {
  int count = 0;
  for (const char* folder : {"configs", "configs/benchmarks"})
    for (const auto& entry : std::filesystem::directory_iterator(source_path(folder))) {
      if (entry.path().extension() != ".json" || entry.path().filename() == "mmfusion.schema.json")
        continue;
      SCOPED_TRACE(entry.path().string());
      EXPECT_NO_THROW(load_config(entry.path().string(), {}));
      ++count;
    }
  EXPECT_GE(count, 11);  // 7 presets under benchmarks/
}

TEST(Config, ResolvedConfigRoundTrips) {
  const ExperimentConfig c = load_config(source_path("configs/default.json"), {"model.rank=8"});
  const json resolved = to_json(c);
  const ExperimentConfig again = parse_config(resolved);
  EXPECT_TRUE(again == c);
  EXPECT_EQ(again.model.rank, 8);
  EXPECT_EQ(resolved["model"]["encoders"]["text"], json({64}));
}

class BadConfigs : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigs, FailWithTheirPath) {
  const BadConfig& bad = GetParam();
  const std::string message = config_error(with(bad.assignment));
  EXPECT_EQ(message.rfind(std::string(bad.path) + ": ", 0), 0u) << message;
  EXPECT_NE(message.find(bad.words), std::string::npos) << message;
}

INSTANTIATE_TEST_SUITE_P(Config, BadConfigs, ::testing::ValuesIn(bad_configs()),
                         [](const ::testing::TestParamInfo<BadConfig>& info) {
                           std::string name = std::to_string(info.index) + "_" + info.param.path;
                           for (char& c : name)
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           return name;
                         });

TEST(Config, InconsistentCombinationsAreErrors) {
  json two = with("data.modalities=[{\"name\":\"a\",\"dim\":3},{\"name\":\"b\",\"dim\":4}]");
  EXPECT_NO_THROW(parse_config(two));  // trimodal weight defaults to 0 with two modalities
  EXPECT_EQ(parse_config(two).data.synthetic.weight_trimodal, 0.0);
  apply_override(two, "data.synthetic.weights.trimodal=1");
  EXPECT_NE(config_error(two).find("data.synthetic.weights.trimodal: needs at least 3 modalities"),
            std::string::npos);

  json zero = with("data.synthetic.weights={\"unimodal\":0,\"bimodal\":0,\"trimodal\":0}");
  EXPECT_EQ(config_error(zero).rfind("data.synthetic.weights: ", 0), 0u);

  json fractions = with("data.source=file");
  apply_override(fractions, "data.path=x.pt");
  apply_override(fractions, "data.val_fraction=0.5");
  apply_override(fractions, "data.test_fraction=0.45");
  EXPECT_EQ(config_error(fractions).rfind("data.val_fraction: ", 0), 0u);
}

TEST(Config, MalformedJsonReportsLineAndColumn) {
  TempDir dir;
  write_text(dir.file("bad.json"), "{\n  \"name\": \"x\",\n  \"seed\": ,\n}\n");
  try {
    read_json_file(dir.file("bad.json"));
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("bad.json: malformed JSON at line 3, column 11"), std::string::npos) << m;
  }
  EXPECT_THROW(read_json_file(dir.file("missing.json")), ConfigError);
}

TEST(Config, SetParsesJsonValuesElseStrings) {
  json doc = json::object();
  apply_override(doc, "model.rank=8");
  apply_override(doc, "device=cpu");
  apply_override(doc, "train.lr=3e-4");
  apply_override(doc, "name=\"quoted\"");
  apply_override(doc, "data.modalities=[{\"name\":\"a\",\"dim\":2},{\"name\":\"b\",\"dim\":3}]");
  apply_override(doc, "model.encoders.a=[4,4]");
  EXPECT_EQ(doc["model"]["rank"], 8);
  EXPECT_EQ(doc["device"], "cpu");
  EXPECT_DOUBLE_EQ(doc["train"]["lr"].get<double>(), 3e-4);
  EXPECT_EQ(doc["name"], "quoted");
  const ExperimentConfig c = parse_config(doc);
  EXPECT_EQ(c.data.modalities.size(), 2u);
  EXPECT_EQ(encoder_hidden_for(c.model, "a"), (std::vector<int64_t>{4, 4}));
  EXPECT_EQ(encoder_hidden_for(c.model, "b"), c.model.encoder_hidden);

  EXPECT_THROW(apply_override(doc, "model.rank"), ConfigError);      // no '='
  EXPECT_THROW(apply_override(doc, "=3"), ConfigError);              // no key
  EXPECT_THROW(apply_override(doc, "model..rank=3"), ConfigError);   // empty segment
  EXPECT_THROW(apply_override(doc, "model.rank.x=3"), ConfigError);  // through a number
}

TEST(Config, OverridesAreValidatedLikeTheFile) {
  EXPECT_THROW(load_config(source_path("configs/default.json"), {"model.rank=0"}), ConfigError);
  EXPECT_THROW(load_config(source_path("configs/default.json"), {"model.rnak=3"}), ConfigError);
  EXPECT_EQ(load_config(source_path("configs/default.json"), {"train.epochs=3"}).train.epochs, 3);
}

TEST(Config, EveryEnumValueRoundTripsThroughItsName) {
  auto round_trip = [](auto values, const std::string& key) {
    for (auto v : values) {
      SCOPED_TRACE(key + "=" + to_string(v));
      json doc = json::object();
      if (key == "train.loss" && std::string(to_string(v)) == "cross_entropy")
        doc = with("task=classification"), apply_override(doc, "num_classes=2");
      if (key == "task" && std::string(to_string(v)) == "classification")
        apply_override(doc, "num_classes=2");
      if (key == "data.source" && std::string(to_string(v)) == "file")
        apply_override(doc, "data.path=x.pt");
      apply_override(doc, key + "=\"" + to_string(v) + "\"");
      const ExperimentConfig c = parse_config(doc);
      EXPECT_TRUE(parse_config(to_json(c)) == c);
    }
  };
  round_trip(all_values<Task>(), "task");
  round_trip(all_values<Loss>(), "train.loss");
  round_trip(all_values<ModelType>(), "model.type");
  round_trip(all_values<OptimizerType>(), "train.optimizer");
  round_trip(all_values<Activation>(), "model.activation");
  round_trip(all_values<RankWeighting>(), "model.rank_weighting");
  round_trip(all_values<LateCombine>(), "model.late_combine");
  round_trip(all_values<DataSource>(), "data.source");
  EXPECT_EQ(parse_config(with("train.loss=huber")).train.loss, Loss::Huber);
  EXPECT_EQ(parse_config(with("model.type=tfn")).model.type, ModelType::TFN);
}

TEST(Config, RenamedKeysStillWorkWithADeprecationNote) {
  json old_names = with("train.fused_step=false");
  apply_override(old_names, "train.fused_optimizer=false");
  std::vector<std::string> notes;
  const ExperimentConfig c = parse_config(old_names, &notes);
  EXPECT_FALSE(c.train.handwritten_step);
  EXPECT_FALSE(c.train.flat_optimizer);
  ASSERT_EQ(notes.size(), 2u);
  EXPECT_EQ(notes[0], "train.fused_optimizer is deprecated; it is now train.flat_optimizer");
  EXPECT_EQ(notes[1], "train.fused_step is deprecated; it is now train.handwritten_step");
  // The resolved config uses the new names only.
  const json resolved = to_json(c);
  EXPECT_FALSE(resolved["train"].contains("fused_step"));
  EXPECT_EQ(resolved["train"]["handwritten_step"], false);
  // Both names at once is ambiguous.
  apply_override(old_names, "train.handwritten_step=true");
  EXPECT_NE(
      config_error(old_names).find("train.fused_step: is the old name of train.handwritten_step"),
      std::string::npos);
}

TEST(Config, OutputSizeFollowsTheTaskAndTheTarget) {
  auto c = parse_config(json::object());
  EXPECT_EQ(resolve_output_dim(c, 3), 3);
  c.model.output_dim = 2;
  EXPECT_EQ(resolve_output_dim(c, 2), 2);
  expect_error<ConfigError>([&] { resolve_output_dim(c, 1); },
                            "model.output_dim: 2 but the target has 1 column(s)");
  json classes = with("task=classification");
  apply_override(classes, "num_classes=4");
  const auto k = parse_config(classes);
  EXPECT_EQ(resolve_output_dim(k, 1), 4);
  EXPECT_DOUBLE_EQ(tfn_fused_size({2, 3}), 12.0);
  EXPECT_EQ(encoder_output_dims(c.model, c.data.modalities), (std::vector<int64_t>{32, 32, 32}));
}
