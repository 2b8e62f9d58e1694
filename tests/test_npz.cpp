// NumPy files: the .npy format read strictly, .npz archives both ways, and NumPy itself
// (through /usr/bin/python3) on the other side of the boundary.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdlib>
#include <cstring>

#include "helpers.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/io/npz.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

namespace {

bool python_has_numpy() {
  const std::string py = MMFUSION_PYTHON;
  return !py.empty() && std::system((py + " -c 'import numpy' >/dev/null 2>&1").c_str()) == 0;
}

// Runs a Python snippet with numpy as np and the folder as the working directory.
int python(const TempDir& dir, const std::string& code) {
  write_text(dir.file("snippet.py"), "import numpy as np\n" + code);
  const std::string cmd =
      "cd " + dir.path().string() + " && " + MMFUSION_PYTHON + " snippet.py > py.txt 2>&1";
  return std::system(cmd.c_str());
}

// An .npy file from a header dict and a payload, as a reader would meet it.
std::string npy(const std::string& dict, size_t payload_bytes, int version = 1) {
  std::string header = dict + "\n";
  std::string out = "\x93NUMPY";
  out += static_cast<char>(version);
  out += '\0';
  if (version == 1) {
    out += static_cast<char>(header.size() & 0xff);
    out += static_cast<char>(header.size() >> 8);
  } else {
    for (int i = 0; i < 4; ++i) out += static_cast<char>((header.size() >> (8 * i)) & 0xff);
  }
  return out + header + std::string(payload_bytes, '\0');
}

torch::Tensor read_npy(const std::string& bytes) {
  return parse_npy(bytes.data(), bytes.size(), "x.npy");
}

const std::vector<ModalityConfig> kMods = {{"visual", 3}, {"audio", 2}};

}  // namespace

// .npz needs libzip at build time; a build without it says so instead (npz.hpp).
#ifdef MMFUSION_HAVE_LIBZIP
#define REQUIRE_LIBZIP()
#else
#define REQUIRE_LIBZIP() GTEST_SKIP() << "built without libzip"
#endif

TEST(Npy, HeadersAreReadStrictly) {
  // A well-formed header of each version; values are copied as they are.
  for (int version : {1, 2, 3}) {
    const auto t =
        read_npy(npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 3), }", 24, version));
    EXPECT_EQ(t.scalar_type(), torch::kInt32);
    EXPECT_EQ(t.sizes(), torch::IntArrayRef({2, 3}));
  }
  EXPECT_EQ(read_npy(npy("{'descr': '<f8', 'fortran_order': False, 'shape': (5,)}", 40)).sizes(),
            torch::IntArrayRef({5}));
  EXPECT_EQ(read_npy(npy("{'shape': (), 'fortran_order': False, 'descr': '<f4'}", 4)).dim(), 0);

  const std::vector<std::pair<std::string, std::string>> bad = {
      {npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8),
       "big-endian dtype '>f4'"},
      {npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16), "Fortran-order"},
      {npy("{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", 16), "object arrays"},
      {npy("{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", 4),
       "dtype '<f2' is not read"},
      {npy("{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }", 2),
       "dtype '|u1' is not read"},
      {npy("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,), }", 8),
       "structured arrays"},
      {npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 20),
       "needs 24 bytes, the entry holds 20"},
      {npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 28),
       "needs 24 bytes, the entry holds 28"},
      {npy("{'descr': '<f4', 'fortran_order': False}", 4), "the key 'shape' is missing"},
      {npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}", 4),
       "unexpected key 'x'"},
      {npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4),
       "appears twice"},
      {npy("{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}", 4), "True or False"},
      {npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", 4), "non-negative integers"},
      {npy("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999)}", 4),
       "overflows"},
      {npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x", 4), "after the dict"},
      {npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}", 4, 4),
       "version 4 is not read"},
      {std::string("\x93NUMPY\x01\x00\xff\x00{", 11), "truncated .npy header"},
      {std::string("PK\x03\x04", 4), "no NumPy magic string"},
  };
  for (const auto& [bytes, words] : bad) expect_error([&] { read_npy(bytes); }, words);
}

TEST(Npz, ArchivesRoundTripEveryDtype) {
  REQUIRE_LIBZIP();
  TempDir dir;
  const NamedArrays arrays = {
      {"f32", torch::arange(12, torch::kFloat32).reshape({3, 4}) / 7},
      {"f64", torch::arange(5, torch::kFloat64) * 1e300},
      {"i32", torch::tensor({-2147483647 - 1, 0, 2147483647}, torch::kInt32)},
      {"i64", torch::tensor({int64_t(-1) << 62, int64_t(5)}, torch::kInt64)},
      {"empty", torch::zeros({0, 3}, torch::kFloat32)}};
  write_npz(dir.file("a.npz"), arrays);
  const std::string bytes = read_text(dir.file("a.npz"));
  const NamedArrays back = parse_npz(bytes.data(), bytes.size(), "a.npz");
  ASSERT_EQ(back.size(), arrays.size());
  for (size_t i = 0; i < arrays.size(); ++i) {
    EXPECT_EQ(back[i].first, arrays[i].first);
    EXPECT_EQ(back[i].second.scalar_type(), arrays[i].second.scalar_type());
    EXPECT_TRUE(torch::equal(back[i].second, arrays[i].second)) << arrays[i].first;
  }
}

TEST(Npz, DamagedArchivesAreOneLineErrors) {
  REQUIRE_LIBZIP();
  TempDir dir;
  write_npz(dir.file("a.npz"), {{"visual", torch::ones({4, 3})}, {"audio", torch::ones({4, 2})}});
  const std::string good = read_text(dir.file("a.npz"));
  // Cut anywhere, or a byte flipped in a value: an Error, never a crash or a wrong read.
  int errors = 0, reads = 0;
  for (size_t cut = 0; cut < good.size(); cut += 7) {
    try {
      parse_npz(good.data(), cut, "cut.npz");
      ++reads;
    } catch (const Error& e) {
      ++errors;
      EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
    }
  }
  EXPECT_EQ(reads, 0);
  EXPECT_GT(errors, 0);
  std::string flipped = good;
  const size_t value = flipped.find(std::string("\0\0\x80\x3f", 4));  // the first 1.0f
  ASSERT_NE(value, std::string::npos);
  flipped[value] ^= 0x01;
  expect_error([&] { parse_npz(flipped.data(), flipped.size(), "flip.npz"); }, "damaged");
  // A directory record claiming a huge entry (a zip bomb's lie) is refused before any
  // allocation of that size: the uncompressed size of the first central record.
  std::string inflated = good;
  const size_t central = inflated.find("PK\x01\x02");
  ASSERT_NE(central, std::string::npos);
  for (int i = 0; i < 4; ++i) inflated[central + 24 + i] = static_cast<char>(i == 3 ? 0x7f : 0xff);
  expect_error([&] { parse_npz(inflated.data(), inflated.size(), "bomb.npz"); }, "bomb.npz");
  // A zip whose entry is not an array.
  if (!python_has_numpy()) GTEST_SKIP() << "no Python with numpy at " << MMFUSION_PYTHON;
  write_text(dir.file("plain.txt"), "hello");
  ASSERT_EQ(std::system(("cd " + dir.path().string() + " && " + MMFUSION_PYTHON +
                         " -c \"import zipfile; zipfile.ZipFile('x.npz', 'w').write('plain.txt')\"")
                            .c_str()),
            0);
  const std::string other = read_text(dir.file("x.npz"));
  expect_error([&] { parse_npz(other.data(), other.size(), "x.npz"); },
               "x.npz: entry \"plain.txt\" is not a .npy array");
}

TEST(Npz, NumpyWritesWhatMmfusionReadsAndBack) {
  REQUIRE_LIBZIP();
  if (!python_has_numpy()) GTEST_SKIP() << "no Python with numpy at " << MMFUSION_PYTHON;
  TempDir dir;
  // Values from a formula the C++ side computes again: visual[i, j] = i * 3 + j - 0.25,
  // audio as float64 (read as float32), target as int64 labels i % 3.
  ASSERT_EQ(python(dir, R"(
n = 6
visual = (np.arange(n * 3, dtype=np.float32).reshape(n, 3) - 0.25)
audio = np.arange(n * 2, dtype=np.float64).reshape(n, 2) / 8
target = (np.arange(n) % 3).astype(np.int64)
# Entries no modality names, of dtypes mmfusion does not read, are skipped unread.
np.savez('stored.npz', visual=visual, audio=audio, target=target, ids=np.array(['a', 'b']), mask=np.ones(3, bool))
np.savez_compressed('deflated.npz', visual=visual, audio=audio, target=target.astype(np.int32))
np.savez('reals.npz', visual=visual, audio=audio, target=np.arange(n, dtype=np.float64) * 1.5)
)"),
            0)
      << read_text(dir.file("py.txt"));
  const auto visual = torch::arange(18, torch::kFloat32).reshape({6, 3}) - 0.25;
  const auto audio = torch::arange(12, torch::kFloat32).reshape({6, 2}) / 8;
  for (const char* file : {"stored.npz", "deflated.npz"}) {
    const Dataset d = read_data_file(dir.file(file), kMods, ReadRule{true, true, 3});
    EXPECT_TRUE(torch::equal(d.features[0], visual)) << file;
    EXPECT_TRUE(torch::equal(d.features[1], audio)) << file;
    EXPECT_TRUE(torch::equal(d.target, torch::arange(6, torch::kInt64) % 3)) << file;
  }
  const Dataset reals = read_data_file(dir.file("reals.npz"), kMods, ReadRule{true});
  EXPECT_TRUE(torch::equal(reals.target, (torch::arange(6, torch::kFloat32) * 1.5).unsqueeze(1)));
  // Labels beyond num_classes: the first bad row is named.
  expect_error(
      [&] {
        read_data_file(dir.file("stored.npz"), kMods, ReadRule{true, true, 2});
      },
      "stored.npz: entry \"target\" holds label 2 in row 2, outside [0, 2)");

  // What mmfusion writes, NumPy reads with the same values.
  Dataset out = reals;
  write_data_file(out, dir.file("ours.npz"));
  ASSERT_EQ(python(dir, R"(
d = np.load('ours.npz', allow_pickle=False)
assert sorted(d.files) == ['audio', 'target', 'visual'], d.files
assert d['visual'].dtype == np.float32 and d['visual'].shape == (6, 3)
assert (d['visual'] == np.arange(18, dtype=np.float32).reshape(6, 3) - 0.25).all()
assert (d['target'] == np.arange(6) * 1.5).all() and d['target'].shape == (6,)
)"),
            0)
      << read_text(dir.file("py.txt"));
}

TEST(Npz, BadNumpyFilesNameTheFileAndTheEntry) {
  REQUIRE_LIBZIP();
  if (!python_has_numpy()) GTEST_SKIP() << "no Python with numpy at " << MMFUSION_PYTHON;
  TempDir dir;
  ASSERT_EQ(python(dir, R"(
v, a = np.zeros((4, 3), np.float32), np.zeros((4, 2), np.float32)
np.savez('wrong_dtype.npz', visual=v.astype(np.float16), audio=a)
np.savez('object.npz', visual=np.array([None] * 4, dtype=object), audio=a)
np.savez('big_endian.npz', visual=v.astype('>f4'), audio=a)
np.savez('fortran.npz', visual=np.asfortranarray(v), audio=a)
np.savez('rows.npz', visual=v, audio=np.zeros((5, 2), np.float32))
np.savez('int_features.npz', visual=v.astype(np.int32), audio=a)
np.savez_compressed('ok.npz', visual=v, audio=a)
data = open('ok.npz', 'rb').read()
open('truncated.npz', 'wb').write(data[: len(data) // 2])
)"),
            0)
      << read_text(dir.file("py.txt"));
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"wrong_dtype.npz", "entry \"visual.npy\": dtype '<f2' is not read"},
      {"object.npz", "entry \"visual.npy\": object arrays"},
      {"big_endian.npz", "entry \"visual.npy\": big-endian"},
      {"fortran.npz", "entry \"visual.npy\": Fortran-order"},
      {"rows.npz", "entry \"audio\" has 5 rows but \"visual\" has 4"},
      {"int_features.npz", "entry \"visual\" has dtype Int, expected a float tensor"},
      {"truncated.npz", "not a readable .npz archive"},
  };
  for (const auto& [file, words] : cases) {
    try {
      read_data_file(dir.file(file), kMods, ReadRule{false});
      ADD_FAILURE() << file << " was read";
    } catch (const Error& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind(dir.file(file) + ": ", 0), 0u) << what;  // names the file first
      EXPECT_NE(what.find(words), std::string::npos) << what;
    }
  }
  // The command line: exit 1 and one line, for each.
  for (const auto& [file, words] : cases) {
    write_text(
        dir.file("c.json"),
        R"({"data": {"source": "file", "path": ")" + dir.file(file) +
            R"(", "modalities": [{"name": "visual", "dim": 3}, {"name": "audio", "dim": 2}]}})");
    const std::string cmd = std::string(MMFUSION_BINARY) + " train --config " + dir.file("c.json") +
                            " --out " + dir.file("run") + " > /dev/null 2> " + dir.file("err.txt");
    const int status = std::system(cmd.c_str());
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << file;
    const std::string err = read_text(dir.file("err.txt"));
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
    EXPECT_NE(err.find(words), std::string::npos) << err;
  }
}
