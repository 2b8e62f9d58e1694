// The restricted pickle reader (io/pickle.hpp): files that Python's own pickle writes at
// test time (protocols 2, 4 and 5), and a Python-2-style one made byte by byte, read to
// the arrays Python reads (expected.npz, through our independent .npz reader); hostile
// pickles are refused by name and nothing they name runs.
#include <gtest/gtest.h>

#include <filesystem>

#include "helpers.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/io/npz.hpp"
#include "mmfusion/io/pickle.hpp"
#include "mmfusion/cli/commands.hpp"
#include "mmfusion/config/config_io.hpp"
#include "mmfusion/data/benchmark_file.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/data/sequence.hpp"
#include "mmfusion/training/run.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

namespace {

// The fixtures, written once per test by tests/pickle_fixtures.py; false without NumPy.
bool write_fixtures(const TempDir& dir) {
  const std::string cmd = std::string(MMFUSION_PYTHON) + " " +
                          source_path("tests/pickle_fixtures.py") + " " + dir.path().string() +
                          " > " + dir.file("py.txt") + " 2>&1";
  return std::system(cmd.c_str()) == 0;
}

std::map<std::string, torch::Tensor> expected(const TempDir& dir) {
  const auto bytes = read_bytes(dir.file("expected.npz"));
  std::map<std::string, torch::Tensor> out;
  for (auto& [name, t] : parse_npz(bytes.data(), bytes.size(), dir.file("expected.npz")))
    out[name] = t;
  return out;
}

pickle::ValuePtr read(const TempDir& dir, const std::string& name) {
  return pickle::parse(read_bytes(dir.file(name)), name);
}

pickle::ValuePtr key_of(const pickle::ValuePtr& v, const std::string& key) {
  auto r = v ? v->get(key) : nullptr;
  if (!r) throw std::runtime_error("no key " + key);
  return r;
}

}  // namespace

TEST(Pickle, EveryProtocolReadsToThePythonArrays) {
  TempDir dir;
  if (!write_fixtures(dir)) GTEST_SKIP() << "no Python with NumPy: " << read_text(dir.file("py.txt"));
  const auto want = expected(dir);
  for (int protocol : {2, 4, 5}) {
    SCOPED_TRACE("protocol " + std::to_string(protocol));
    const auto root = read(dir, "mmsa-p" + std::to_string(protocol) + ".pkl");
    for (const char* split : {"train", "valid", "test"})
      for (const char* key : {"text", "audio", "audio_lengths", "regression_labels"}) {
        const auto v = key_of(key_of(root, split), key);
        ASSERT_EQ(v->kind, pickle::Value::Kind::Array) << split << "." << key;
        EXPECT_TRUE(torch::equal(v->array, want.at(std::string(split) + "." + key)))
            << split << "." << key;
      }
    // Strings stay strings: an object array's items and a list of ids, walked and kept.
    const auto raw = key_of(key_of(root, "train"), "raw_text");
    EXPECT_FALSE(raw->array.defined());
    EXPECT_NE(raw->unsupported.find("Python objects"), std::string::npos);
    ASSERT_EQ(raw->items.size(), 4u);
    EXPECT_EQ(raw->items[2]->text, "word 2");
    EXPECT_EQ(key_of(key_of(root, "test"), "id")->items[1]->text, "clip_1");

    const auto others = read(dir, "others-p" + std::to_string(protocol) + ".pkl");
    for (const char* key : {"f64", "fortran", "bools", "i32"}) {  // bools stored as int64
      const auto& w = want.at(key);
      EXPECT_TRUE(torch::equal(key_of(others, key)->array.to(w.scalar_type()), w)) << key;
    }
    EXPECT_EQ(key_of(others, "bools")->array.scalar_type(), torch::kBool);
    EXPECT_EQ(key_of(others, "fortran")->shape, (std::vector<int64_t>{3, 4}));
    EXPECT_FALSE(key_of(others, "unicode")->array.defined());  // <U2: no numbers to read
    EXPECT_EQ(key_of(others, "unicode")->dtype, "<U2");
    EXPECT_EQ(key_of(others, "scalar")->array.item<float>(), 3.5f);
    EXPECT_TRUE(torch::equal(key_of(key_of(key_of(others, "nested"), "happy"), "label")->array, want.at("nested")));
    const auto small = key_of(others, "small")->items;
    ASSERT_EQ(small.size(), 9u);
    EXPECT_EQ(small[0]->integer, 1);
    EXPECT_EQ(small[1]->integer, -2);
    EXPECT_EQ(small[2]->integer, 300);
    EXPECT_EQ(small[3]->integer, 70000);
    EXPECT_EQ(small[4]->integer, -(int64_t(1) << 40));
    EXPECT_EQ(small[5]->number, 2.5);
    EXPECT_EQ(small[6]->kind, pickle::Value::Kind::None);
    EXPECT_TRUE(small[7]->boolean);
    EXPECT_EQ(small[8]->text, "\xc3\xbc");  // UTF-8
  }
  // Python 2's str payloads and byte-string keys.
  EXPECT_TRUE(torch::equal(key_of(key_of(read(dir, "py2.pkl"), "train"), "covarep")->array, want.at("py2")));
  // The tree a user writes a mapping from (mmfusion inspect-data --file FILE).
  const std::string tree = run_inspect_data(dir.file("mmsa-p4.pkl"));
  EXPECT_NE(tree.find(" MB/s)\n"), std::string::npos) << tree;
  EXPECT_NE(tree.find("train/audio: ndarray [4, 7, 2] <f4"), std::string::npos) << tree;
  EXPECT_NE(tree.find("train/audio_lengths: ndarray [4] <i8"), std::string::npos) << tree;
}

TEST(Pickle, HostilePicklesAreRefusedByNameAndNothingRuns) {
  TempDir dir;
  if (!write_fixtures(dir)) GTEST_SKIP() << "no Python with NumPy: " << read_text(dir.file("py.txt"));
  const std::vector<std::pair<std::string, std::string>> cases{
      {"os-system.pkl", "os-system.pkl: pickle: refused global 'os.system'"},
      {"subprocess.pkl", "refused global 'subprocess.Popen'"},
      {"eval.pkl", "refused global '__builtin__.eval'"},
      {"builtins-eval.pkl", "refused global 'builtins.eval'"},
      {"masked.pkl", "refused global 'numpy.ma.core._mareconstruct'"},
      {"out-of-band.pkl", "out-of-band buffers are refused"},
      {"truncated.pkl", "truncated.pkl: pickle: "},
  };
  for (const auto& [file, words] : cases) {
    expect_error([&] { read(dir, file); }, words);
    try {
      read(dir, file);
    } catch (const Error& e) {
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << e.what();  // one line
    }
  }
  EXPECT_FALSE(std::filesystem::exists(dir.file("MARKER")));
}

TEST(Pickle, LengthsPastTheEndAndBadArraysAreErrorsNotReads) {
  auto parse = [](const std::string& bytes) {
    return pickle::parse(std::vector<char>(bytes.begin(), bytes.end()), "x.pkl");
  };
  // BINUNICODE claiming 2^32 - 1 bytes in a 10-byte file.
  expect_error([&] { parse(std::string("\x80\x04X\xff\xff\xff\xff", 8)); },
               "x.pkl: pickle: a length of 4294967295 runs past the end of the file");
  expect_error([&] { parse("\x80\x02h\x05."); }, "memo index 5 was never stored");
  expect_error([&] { parse("\x80\x02."); }, "STOP with 0 values on the stack");
  expect_error([&] { parse("\x80\x02N"); }, "the file ends before STOP");
  // An array whose data is shorter than its shape says: _reconstruct, then BUILD.
  const std::string bad =
      std::string("\x80\x02") + "cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\n" +
      std::string("K\x00\x85", 3) + "C\x01" "b\x87R" + "(K\x01K\x02K\x03\x86" +
      "cnumpy\ndtype\n\x8c\x02" "f4" + std::string("K\x00K\x01\x87R", 6) + "\x89" +
      "C\x04" "abcd" + "tb.";
  expect_error([&] { parse(bad); }, "needs 24 bytes, its data has 4");
}

// data.layout "mmsa": the pickle's three splits train a model as they are, with no
// conversion step; each split is checked as a data file is, named in the messages.
TEST(BenchmarkFile, AnMmsaPickleTrainsAsItIs) {
  TempDir dir;
  if (!write_fixtures(dir)) GTEST_SKIP() << "no Python with NumPy: " << read_text(dir.file("py.txt"));
  const std::vector<std::string> sets = {
      "data.source=file", "data.layout=mmsa", "data.path=" + dir.file("mmsa-p5.pkl"),
      "data.modalities=[{\"name\":\"text\",\"dim\":3,\"sequence\":true},"
      "{\"name\":\"audio\",\"dim\":2,\"sequence\":true}]",
      "model.encoders={\"text\":{\"type\":\"lstm\",\"hidden\":4},\"audio\":{\"type\":\"mean\"}}",
      "train.batch_size=2"};
  const ExperimentConfig c = tiny_config(sets);
  const DataSplits s = load_splits(c);
  EXPECT_EQ(s.train.size(), 4);
  EXPECT_EQ(s.val.size(), 3);
  EXPECT_EQ(s.test.size(), 2);
  const auto want = expected(dir);
  // The audio rows hold the file's lengths; text has none, so every step is valid.
  EXPECT_TRUE(torch::equal(sequence::lengths(s.train.features[1]), want.at("train.audio_lengths")));
  EXPECT_TRUE(torch::equal(s.test.target.squeeze(1), want.at("test.regression_labels")));
  TrainArgs args;
  args.config = source_path("configs/tiny.json");
  args.overrides = sets;
  args.out = dir.file("run");
  const auto results = run_train(args).results;
  EXPECT_TRUE(results["test"]["mse"].is_number());

  auto bad = sets;
  bad.push_back("data.modalities=[{\"name\":\"text\",\"dim\":3,\"sequence\":true},"
                "{\"name\":\"vision\",\"dim\":3}]");
  bad.push_back("model.encoders={}");
  expect_error([&] { load_splits(tiny_config(bad)); },
               dir.file("mmsa-p5.pkl") + "[train]: missing entry \"vision\"");
  bad = sets;
  bad.push_back("data.val_path=v.pt");
  expect_error<ConfigError>([&] { tiny_config(bad); }, "holds all three splits in data.path");
  bad = sets;
  bad[1] = "data.layout=lmf";  // no b'label' beside the arrays: the target is missing
  expect_error([&] { load_splits(tiny_config(bad)); }, "[train]: missing entry \"target\"");
}

namespace {
// IEMOCAP in the LMF reference's layout, reached through data.keys: the emotion level
// first, byte-string keys, COVAREP (with NaN and Inf) read as "audio".
std::vector<std::string> iemocap_sets(const TempDir& dir, const std::string& emotion,
                                      int protocol = 2) {
  const std::string e = "\"b'" + emotion + "'\"";
  return {"data.source=file", "data.layout=lmf",
          "data.path=" + dir.file("iemocap-p" + std::to_string(protocol) + ".pkl"),
          "task=classification", "num_classes=2", "train.loss=cross_entropy",
          "data.modalities=[{\"name\":\"audio\",\"dim\":4},{\"name\":\"visual\",\"dim\":3},"
          "{\"name\":\"text\",\"dim\":3,\"sequence\":true}]",
          "data.keys={\"splits\":[[" + e + ",\"train\"],[" + e + ",\"valid\"],[" + e +
              ",\"test\"]],\"modalities\":{\"audio\":\"covarep\",\"visual\":\"b'facet'\","
              "\"text\":\"glove\"}}",
          "train.batch_size=2"};
}
}  // namespace

// data.keys: the splits under IEMOCAP's emotion level, modalities under other names, byte
// keys matched by their text or spelled b'...'; the arrays are Python's.
TEST(BenchmarkFile, KeysReachNestedByteKeys) {
  TempDir dir;
  if (!write_fixtures(dir)) GTEST_SKIP() << "no Python with NumPy: " << read_text(dir.file("py.txt"));
  const auto want = expected(dir);
  for (int protocol : {2, 4, 5}) {
    SCOPED_TRACE("protocol " + std::to_string(protocol));
    auto sets = iemocap_sets(dir, "sad", protocol);
    sets.push_back("data.nonfinite=zero");
    const DataSplits s = load_splits(tiny_config(sets));
    ASSERT_EQ(s.train.size(), 6);
    EXPECT_EQ(s.val.size(), 4);
    EXPECT_EQ(s.test.size(), 3);
    EXPECT_EQ(s.train.names, (std::vector<std::string>{"audio", "visual", "text"}));
    EXPECT_TRUE(torch::equal(s.train.features[0], want.at("iemocap.sad.train.covarep")));
    EXPECT_TRUE(torch::equal(sequence::values(s.test.features[2], 3),
                             want.at("iemocap.sad.test.glove")));
    EXPECT_TRUE(torch::equal(s.val.target, want.at("iemocap.sad.valid.label")));
  }
  auto sets = iemocap_sets(dir, "sad");
  sets.push_back("data.nonfinite=zero");

  // A bytes-only key does not match a str key: the MMSA file's splits are str.
  auto bad = sets;
  bad[2] = "data.path=" + dir.file("mmsa-p4.pkl");
  bad[7] = "data.keys={\"splits\":[\"b'train'\",\"valid\",\"test\"]}";
  bad[6] = "data.modalities=[{\"name\":\"text\",\"dim\":3,\"sequence\":true}]";
  expect_error([&] { load_splits(tiny_config(bad)); },
               "mmsa-p4.pkl: no key \"b'train'\" (a split, by data.layout \"lmf\"; it has: train, "
               "valid, test)");
  // An emotion the file lacks is named with the keys it has.
  bad = iemocap_sets(dir, "angry");
  expect_error([&] { load_splits(tiny_config(bad)); },
               "iemocap-p2.pkl: no key \"b'angry'\" (a split, by data.layout \"lmf\"; it has: "
               "b'happy', b'sad')");
  // A modality key the split lacks names the split's path and its keys.
  bad = iemocap_sets(dir, "happy");
  bad[7] = "data.keys={\"splits\":[[\"happy\",\"train\"],[\"happy\",\"valid\"],[\"happy\","
           "\"test\"]],\"modalities\":{\"audio\":\"opensmile\"}}";
  expect_error([&] { load_splits(tiny_config(bad)); },
               "iemocap-p2.pkl[happy][train]: no key \"opensmile\" (entry \"audio\"; it has: "
               "b'covarep', b'facet', b'glove', b'label')");
}

// data.nonfinite: the default refuses COVAREP's NaN and names the option; "zero" puts 0
// in place, and the counts in the log and nonfinite.json are Python's, per split.
TEST(BenchmarkFile, NonFiniteValuesAreAnErrorOrZeroedAndCounted) {
  TempDir dir;
  if (!write_fixtures(dir)) GTEST_SKIP() << "no Python with NumPy: " << read_text(dir.file("py.txt"));
  const auto want = expected(dir);
  const auto sets = iemocap_sets(dir, "happy");
  expect_error([&] { load_splits(tiny_config(sets)); },
               "iemocap-p2.pkl[b'happy'][train]: entry \"audio\" has NaN or Inf values (first in "
               "row 0; data.nonfinite \"zero\" puts 0 in their place)");

  auto zero = sets;
  zero.push_back("data.nonfinite=zero");
  const DataSplits s = load_splits(tiny_config(zero));
  ASSERT_EQ(s.train.nonfinite.size(), 3u);
  EXPECT_TRUE(torch::equal(s.train.nonfinite[0], want.at("iemocap.happy.train.covarep_nonfinite")));
  EXPECT_FALSE(s.train.nonfinite[1].defined());  // facet has none
  EXPECT_TRUE(torch::equal(s.train.features[0], want.at("iemocap.happy.train.covarep")));

  TrainArgs args;
  args.config = source_path("configs/tiny.json");
  args.overrides = zero;
  args.out = dir.file("run");
  run_train(args);
  const auto counts = nlohmann::json::parse(read_text(dir.file("run/nonfinite.json")));
  for (const auto& [split, file_split] :
       std::vector<std::pair<std::string, std::string>>{{"train", "train"}, {"val", "valid"},
                                                        {"test", "test"}}) {
    const auto per_row = want.at("iemocap.happy." + file_split + ".covarep_nonfinite");
    EXPECT_EQ(counts[split]["audio"]["values"].get<int64_t>(), per_row.sum().item<int64_t>())
        << split;
    EXPECT_EQ(counts[split]["audio"]["rows"].get<int64_t>(), (per_row > 0).sum().item<int64_t>())
        << split;
    EXPECT_EQ(counts[split]["visual"]["values"].get<int64_t>(), 0);
  }
  const std::string log = read_text(dir.file("run/train.log"));
  const int64_t train_values = want.at("iemocap.happy.train.covarep_nonfinite").sum().item<int64_t>();
  EXPECT_NE(log.find("nonfinite: train: audio " + std::to_string(train_values) + " in "),
            std::string::npos)
      << log;
}

// data.layout "multibench": [N, 1, 1] labels as one target column, front-padded text kept
// as it is (no lengths: every step counts), and its -inf refused by name.
TEST(BenchmarkFile, AMultiBenchPickleReadsAsPythonReadsIt) {
  TempDir dir;
  if (!write_fixtures(dir)) GTEST_SKIP() << "no Python with NumPy: " << read_text(dir.file("py.txt"));
  const auto want = expected(dir);
  std::vector<std::string> sets;
  for (int protocol : {2, 4, 5}) {
    SCOPED_TRACE("protocol " + std::to_string(protocol));
    sets = {"data.source=file", "data.layout=multibench",
            "data.path=" + dir.file("multibench-p" + std::to_string(protocol) + ".pkl"),
            "data.modalities=[{\"name\":\"text\",\"dim\":3,\"sequence\":true,\"padding\":\"front\"},"
            "{\"name\":\"vision\",\"dim\":2,\"sequence\":true}]"};
    const DataSplits s = load_splits(tiny_config(sets));
    EXPECT_EQ(s.train.size(), 5);
    EXPECT_TRUE(torch::equal(s.test.target, want.at("multibench.test.labels")));
    EXPECT_TRUE(torch::equal(sequence::values(s.train.features[0], 3), want.at("multibench.train.text")));
  }
  sets[3] = "data.modalities=[{\"name\":\"audio\",\"dim\":2,\"sequence\":true}]";
  expect_error([&] { load_splits(tiny_config(sets)); },
               "multibench-p5.pkl[train]: entry \"audio\" has NaN or Inf values (first in row 0");
}

// A .pkl data.path that names no layout is read as the layout its keys show (the training
// split's target key), to the same arrays as with the layout named; data.source follows
// data.path when the config does not say. A pickle of no known layout is a one-line error
// naming what it has.
TEST(BenchmarkFile, APickleThatNamesNoLayoutIsReadAsItsKeysShow) {
  TempDir dir;
  if (!write_fixtures(dir)) GTEST_SKIP() << "no Python with NumPy: " << read_text(dir.file("py.txt"));
  const auto want = expected(dir);
  struct Case {
    std::string file, layout, modalities;
  };
  const std::vector<Case> cases = {
      {"mmsa-p4.pkl", "mmsa",
       "[{\"name\":\"text\",\"dim\":3,\"sequence\":true},{\"name\":\"audio\",\"dim\":2,"
       "\"sequence\":true}]"},
      {"multibench-p2.pkl", "multibench",
       "[{\"name\":\"text\",\"dim\":3,\"sequence\":true,\"padding\":\"front\"},"
       "{\"name\":\"vision\",\"dim\":2,\"sequence\":true}]"},
      {"lmf-happy-p2.pkl", "lmf",
       "[{\"name\":\"facet\",\"dim\":3},{\"name\":\"glove\",\"dim\":3,\"sequence\":true}]"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file);
    std::vector<std::string> sets = {"data.path=" + dir.file(c.file),
                                     "data.modalities=" + c.modalities};
    if (c.layout == "lmf")  // IEMOCAP's labels are classes
      for (const char* set : {"task=classification", "num_classes=2", "train.loss=cross_entropy"})
        sets.push_back(set);
    const ExperimentConfig found = tiny_config(sets);
    EXPECT_EQ(found.data.source, DataSource::File);
    EXPECT_EQ(found.data.layout, Layout::None);
    EXPECT_TRUE(reads_pickle(found.data));
    auto named = sets;
    named.push_back("data.layout=" + c.layout);
    const DataSplits a = load_splits(found), b = load_splits(tiny_config(named));
    for (const auto& [x, y] : {std::pair(&a.train, &b.train), {&a.val, &b.val}, {&a.test, &b.test}}) {
      ASSERT_EQ(x->features.size(), y->features.size());
      for (size_t m = 0; m < x->features.size(); ++m)
        EXPECT_TRUE(torch::equal(x->features[m], y->features[m]));
      EXPECT_TRUE(torch::equal(x->target, y->target));
    }
    if (c.layout == "mmsa")
      EXPECT_TRUE(torch::equal(a.test.target.squeeze(1), want.at("test.regression_labels")));
    if (c.layout == "multibench")
      EXPECT_TRUE(torch::equal(a.test.target, want.at("multibench.test.labels")));
    if (c.layout == "lmf") EXPECT_TRUE(torch::equal(a.val.target, want.at("iemocap.happy.valid.label")));
  }
  // Said in the config, synthetic stays synthetic whatever data.path holds.
  EXPECT_EQ(tiny_config({"data.source=synthetic", "data.path=x.pkl"}).data.source,
            DataSource::Synthetic);
  const std::string mods = "data.modalities=[{\"name\":\"audio\",\"dim\":4}]";
  expect_error([&] { load_splits(tiny_config({"data.path=" + dir.file("iemocap-p2.pkl"), mods})); },
               "iemocap-p2.pkl: no split \"train\", so no layout is known for it (it has: b'happy', "
               "b'sad') (set data.layout to mmsa, multibench or lmf, or name its parts in data.keys");
  expect_error([&] { load_splits(tiny_config({"data.path=" + dir.file("others-p4.pkl"), mods})); },
               "others-p4.pkl: no split \"train\"");
}

// data.keys is checked when the config is read, and round-trips through config.json.
TEST(BenchmarkFile, DataKeysAreCheckedAndRoundTrip) {
  const std::vector<std::string> base = {
      "data.source=file", "data.path=f.pkl",
      "data.modalities=[{\"name\":\"audio\",\"dim\":4},{\"name\":\"text\",\"dim\":3,\"sequence\":true}]"};
  auto with = [&](const std::string& keys) {
    auto s = base;
    s.push_back("data.keys=" + keys);
    return s;
  };
  const ExperimentConfig c = tiny_config(with(
      "{\"splits\":[[\"b'happy'\",\"train\"],\"valid\",\"test\"],\"modalities\":{\"audio\":\"covarep\"},"
      "\"lengths\":{\"text\":[\"meta\",\"text_len\"]},\"target\":\"y\"}"));
  EXPECT_TRUE(reads_pickle(c.data));
  EXPECT_EQ(c.data.keys.splits[0], (KeyPath{"b'happy'", "train"}));
  EXPECT_EQ(c.data.keys.lengths.at("text"), (KeyPath{"meta", "text_len"}));
  EXPECT_EQ(c.data.keys.target, KeyPath{"y"});
  EXPECT_EQ(parse_config(to_json(c)).data.keys, c.data.keys);

  expect_error<ConfigError>([&] { tiny_config(with("{\"split\":[]}")); },
                            "data.keys.split: unknown key (known: splits, modalities, lengths, target)");
  expect_error<ConfigError>([&] { tiny_config(with("{\"splits\":[\"a\",\"b\"]}")); },
                            "data.keys.splits: expected 3 paths");
  expect_error<ConfigError>([&] { tiny_config(with("{\"splits\":[\"a\",\"b\",[]]}")); },
                            "data.keys.splits[2]: expected a key or a list of 1 to 16 keys");
  expect_error<ConfigError>([&] { tiny_config(with("{\"splits\":[\"a\",\"b\",\"\"]}")); },
                            "data.keys.splits[2]: a key is an empty string");
  expect_error<ConfigError>([&] { tiny_config(with("{\"modalities\":{\"video\":\"x\"}}")); },
                            "data.keys.modalities.video: no modality named \"video\" (modalities: audio, text)");
  expect_error<ConfigError>([&] { tiny_config(with("{\"lengths\":{\"audio\":\"x\"}}")); },
                            "data.keys.lengths.audio: \"audio\" is not a sequence");
  expect_error<ConfigError>([&] { tiny_config(with("{\"target\":\"y\"}")); },
                            "data.keys: names no \"splits\"");
  auto synthetic = with("{\"target\":\"y\"}");
  synthetic[0] = "data.source=synthetic";
  synthetic[2] = "data.modalities=[{\"name\":\"audio\",\"dim\":4},{\"name\":\"text\",\"dim\":3}]";
  expect_error<ConfigError>([&] { tiny_config(synthetic); }, "data.keys: only for file data");
  auto val = with("{\"splits\":[\"a\",\"b\",\"c\"]}");
  val.push_back("data.val_path=v.pt");
  expect_error<ConfigError>([&] { tiny_config(val); },
                            "data.val_path: a \"data.keys\" file holds all three splits");
}

// The preset end to end: a CMU-MOSI-shaped unaligned MMSA pickle (2,199 rows, 426 MB;
// scripts/mosi-shaped.py) trains configs/benchmarks/mosi-lmf.json as it is, no
// conversion step, and reports MMSA's metrics on its 686 test rows. The label follows the
// text and vision features, so a model that reads them correlates with it.
TEST(BenchmarkPreset, AMosiShapedFileTrainsThroughTheMmsaPreset) {
  TempDir dir;
  const std::string file = dir.file("unaligned_50.pkl");
  const std::string cmd = std::string(MMFUSION_PYTHON) + " " +
                          source_path("scripts/mosi-shaped.py") + " " + file + " > " +
                          dir.file("py.txt") + " 2>&1";
  if (std::system(cmd.c_str()) != 0)
    GTEST_SKIP() << "no Python with NumPy: " << read_text(dir.file("py.txt"));
  TrainArgs args;
  args.config = source_path("configs/benchmarks/mosi-lmf.json");
  args.overrides = {"data.path=" + file, "train.epochs=4", "threads=2"};
  args.out = dir.file("run");
  const auto results = run_train(args).results;
  EXPECT_EQ(results["test"]["count"].get<int64_t>(), 686);
  for (const char* m : {"acc2_has0", "f1_has0", "acc2_non0", "f1_non0", "acc5", "acc7", "mae", "corr"})
    EXPECT_TRUE(results["test"][m].is_number()) << m;
  EXPECT_GT(results["test"]["corr"].get<double>(), 0.3) << results.dump();
}

// configs/mult-mosi.json and its unaligned variant run on synthetic data as shipped and
// take an MMSA pickle (here CMU-MOSI-shaped, a tenth of its rows) by changing data.path
// alone: the source follows the path and the layout the file's keys (issue 46, item 5).
// The aligned preset trains (the unaligned one's 500 audio steps take minutes an epoch).
TEST(BenchmarkPreset, TheMultPresetsTakeAnMmsaPickleByItsPathAlone) {
  TempDir dir;
  const std::string file = dir.file("unaligned_50.pkl");
  const std::string cmd = std::string(MMFUSION_PYTHON) + " " +
                          source_path("scripts/mosi-shaped.py") + " " + file + " 0.1 > " +
                          dir.file("py.txt") + " 2>&1";
  if (std::system(cmd.c_str()) != 0)
    GTEST_SKIP() << "no Python with NumPy: " << read_text(dir.file("py.txt"));
  for (const char* preset : {"configs/mult-mosi.json", "configs/mult-mosi-unaligned.json"}) {
    SCOPED_TRACE(preset);
    EXPECT_EQ(load_config(source_path(preset), {}).data.source, DataSource::Synthetic);
    const ExperimentConfig c = load_config(source_path(preset), {"data.path=" + file});
    EXPECT_EQ(c.data.source, DataSource::File);
    EXPECT_TRUE(reads_pickle(c.data));
    const DataSplits s = load_splits(c);
    EXPECT_EQ(s.test.size(), 69);  // round(686 * 0.1)
    EXPECT_EQ(s.train.names, (std::vector<std::string>{"text", "audio", "vision"}));
  }
  TrainArgs args;
  args.config = source_path("configs/mult-mosi.json");
  args.overrides = {"data.path=" + file, "train.epochs=1", "threads=2"};
  args.out = dir.file("run");
  const auto results = run_train(args).results;
  EXPECT_EQ(results["test"]["count"].get<int64_t>(), 69);
  const auto written = read_json_file(dir.file("run/config.json"));
  EXPECT_EQ(written["data"]["source"], "file");
  EXPECT_EQ(written["model"]["type"], "mult");
  for (const char* m : {"acc2_has0", "acc7", "mae", "corr"})
    EXPECT_TRUE(results["test"][m].is_number()) << m;
}

// Large arrays are read where they lie in the mapped file (parse_views) and copied a
// chunk of rows at a time into the data kept: the result equals the arrays the copying
// parser reads, NaN and Inf put to 0 in the copy (the file's pages are read-only: a write
// to them would crash), counted as Python counts them.
TEST(BenchmarkFile, LargeArraysAreReadInPlaceAndCopiedByChunks) {
  TempDir dir;
  const std::string file = dir.file("mosi.pkl");
  const std::string cmd = std::string(MMFUSION_PYTHON) + " " +
                          source_path("scripts/mosi-shaped.py") + " " + file + " 0.2 --nonfinite > " +
                          dir.file("py.txt") + " 2>&1";
  if (std::system(cmd.c_str()) != 0)
    GTEST_SKIP() << "no Python with NumPy: " << read_text(dir.file("py.txt"));
  const auto bytes = read_bytes(file);
  const auto views = pickle::parse_views(bytes.data(), bytes.size(), file);
  const auto train = key_of(views, "train");
  EXPECT_TRUE(key_of(train, "text")->in_file);  // 257 x 50 x 768 floats
  EXPECT_FALSE(key_of(train, "regression_labels")->in_file);  // 1 KB: copied
  const auto copied = pickle::parse(bytes, file);
  EXPECT_FALSE(key_of(key_of(copied, "train"), "text")->in_file);

  const ExperimentConfig c = tiny_config(
      {"data.source=file", "data.layout=mmsa", "data.path=" + file, "data.nonfinite=zero",
       "data.modalities=[{\"name\":\"text\",\"dim\":768,\"sequence\":true},"
       "{\"name\":\"audio\",\"dim\":5,\"sequence\":true},{\"name\":\"vision\",\"dim\":20,\"sequence\":true}]"});
  const DataSplits s = load_splits(c);
  const auto want_train = key_of(copied, "train");
  ASSERT_EQ(s.train.size(), 257);  // text: 39 MB, two chunks
  EXPECT_TRUE(torch::equal(sequence::values(s.train.features[0], 768), key_of(want_train, "text")->array));
  const auto counts = [&] {
    const auto npz = read_bytes(file + ".nonfinite.npz");
    std::map<std::string, torch::Tensor> out;
    for (auto& [name, t] : parse_npz(npz.data(), npz.size(), file)) out[name] = t;
    return out;
  }();
  for (const auto& [m, name] : std::vector<std::pair<int, std::string>>{{1, "audio"}, {2, "vision"}}) {
    SCOPED_TRACE(name);
    const torch::Tensor raw = key_of(want_train, name)->array;
    // The file's lengths (a list, as MMSA keeps them); padding reads as 0.
    std::vector<int64_t> lengths;
    for (const auto& l : key_of(want_train, name + "_lengths")->items) lengths.push_back(l->integer);
    const auto valid = torch::arange(raw.size(1)).unsqueeze(0) <
                       torch::tensor(lengths, torch::kInt64).unsqueeze(1);
    torch::Tensor clean = torch::where(torch::isfinite(raw), raw, torch::zeros_like(raw));
    clean = clean * valid.unsqueeze(2).to(torch::kFloat32);
    EXPECT_TRUE(torch::equal(sequence::lengths(s.train.features[m]), torch::tensor(lengths, torch::kInt64)));
    EXPECT_TRUE(torch::equal(sequence::values(s.train.features[m], raw.size(2)), clean));
    EXPECT_TRUE(torch::equal(s.train.nonfinite[m], counts.at(name)));
    EXPECT_GT(counts.at(name).sum().item<int64_t>(), 0);
  }
  EXPECT_TRUE(torch::equal(s.test.target.squeeze(1),
                           key_of(key_of(copied, "test"), "regression_labels")->array));
}

// inspect-data --config: the config's data as train reads them, split by split.
TEST(BenchmarkFile, InspectDataWithAConfigPrintsEachSplitAndWhatItCost) {
  TempDir dir;
  if (!write_fixtures(dir)) GTEST_SKIP() << "no Python with NumPy: " << read_text(dir.file("py.txt"));
  write_text(dir.file("c.json"), read_text(source_path("configs/tiny.json")));
  const std::string out = run_inspect_config_data(
      dir.file("c.json"),
      {"data.source=file", "data.layout=lmf", "data.path=" + dir.file("iemocap-p4.pkl"),
       "task=classification", "num_classes=2", "data.nonfinite=zero",
       "data.modalities=[{\"name\":\"audio\",\"dim\":4},{\"name\":\"text\",\"dim\":3,\"sequence\":true}]",
       "data.keys={\"splits\":[[\"happy\",\"train\"],[\"happy\",\"valid\"],[\"happy\",\"test\"]],"
       "\"modalities\":{\"audio\":\"covarep\",\"text\":\"glove\"}}"});
  const auto want = expected(dir);
  const int64_t zeroed = want.at("iemocap.happy.train.covarep_nonfinite").sum().item<int64_t>();
  EXPECT_NE(out.find("train: 6 rows"), std::string::npos) << out;
  EXPECT_NE(out.find("val: 4 rows"), std::string::npos) << out;
  EXPECT_NE(out.find("  audio: 4 features, " + std::to_string(zeroed) + " NaN/Inf values put to 0"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("  text: sequence of 5 steps x 3"), std::string::npos) << out;
  EXPECT_NE(out.find("peak memory"), std::string::npos) << out;
}

// The fuzzer's corpus (tests/fixtures/fuzz/pickle-corpus/, scripts/fuzz.sh): every input
// reads to a tree or ends in mmfusion's one-line error, through the reader and each
// layout (the fuzz target's configs), on every build.
TEST(Pickle, EveryFuzzCorpusInputEndsInATreeOrAOneLineError) {
  auto config = [](Layout layout) {
    ExperimentConfig c;
    c.data.source = DataSource::File;
    c.data.layout = layout;
    c.data.path = "fuzz.pkl";
    c.data.nonfinite = NonFinite::Zero;
    c.data.modalities = layout == Layout::LMF
                            ? std::vector<ModalityConfig>{{"covarep", 4}, {"facet", 3}, {"glove", 3, true, 5}}
                            : std::vector<ModalityConfig>{{"text", 3, true}, {"audio", 2, true, 7}};
    return c;
  };
  const std::vector<ExperimentConfig> configs = {config(Layout::MMSA), config(Layout::MultiBench),
                                                 config(Layout::LMF)};
  int files = 0, trees = 0, splits = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(source_path("tests/fixtures/fuzz/pickle-corpus"))) {
    const auto bytes = read_bytes(entry.path().string());
    const std::string name = entry.path().filename().string();
    ++files;
    try {
      (void)pickle::describe(pickle::parse(bytes, name), 50);
      ++trees;
    } catch (const Error&) {
      continue;
    } catch (const std::exception& e) {
      ADD_FAILURE() << name << ": " << e.what();
      continue;
    }
    for (const auto& c : configs) {
      try {
        (void)parse_benchmark_file(bytes.data(), bytes.size(), c);
        ++splits;
      } catch (const Error&) {
      } catch (const std::exception& e) {
        ADD_FAILURE() << name << " (" << to_string(c.data.layout) << "): " << e.what();
      }
    }
  }
  EXPECT_GE(files, 500);
  EXPECT_GT(trees, 100);  // the corpus is mostly well-formed pickles the fuzzer varied
  RecordProperty("trees", trees), RecordProperty("splits", splits);
}
