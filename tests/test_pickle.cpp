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
