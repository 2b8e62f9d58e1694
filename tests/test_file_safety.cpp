// Files from others (issue: memory safety of file input). Data files and checkpoints are
// damaged or crafted in the ways that matter: a tensor view reaching past its storage
// (the stride and width cases found by hand), seeded random changes to the pickle inside
// the zip (with the zip's checksums kept right, so the change reaches the unpickler), the
// file cut at every zip structure boundary, and a zip directory pointing outside the
// file. Every case must end in a clean error or a correct read, never a signal: a signal
// kills this test process, which ctest reports as a failure. The corpus is generated here,
// from files written by mmfusion itself, in a few seconds.
#include <gtest/gtest.h>

#include <cstring>
#include <random>

#include "helpers.hpp"
#include "mmfusion/training/checkpoint.hpp"
#include "mmfusion/data/data.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/io/file_safety.hpp"
#include "mmfusion/base/files.hpp"
#include "mmfusion/training/optim.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

namespace {

uint32_t crc32(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char c : bytes) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

uint32_t u32(const std::string& s, size_t at) {
  uint32_t v;
  std::memcpy(&v, s.data() + at, 4);
  return v;
}
uint16_t u16(const std::string& s, size_t at) {
  uint16_t v;
  std::memcpy(&v, s.data() + at, 2);
  return v;
}
void put32(std::string& s, size_t at, uint32_t v) { std::memcpy(&s[at], &v, 4); }

// One stored (uncompressed) record of a zip, as PyTorch writes them: where its local
// header, its data and its central directory entry are.
struct Record {
  std::string name;
  size_t local = 0, data = 0, size = 0, central = 0;
};

std::vector<Record> records(const std::string& zip) {
  std::vector<Record> out;
  for (size_t at = zip.find("PK\x01\x02"); at != std::string::npos;
       at = zip.find("PK\x01\x02", at + 4)) {
    if (at + 46 > zip.size()) break;
    Record r;
    r.central = at;
    r.size = u32(zip, at + 20);
    r.local = u32(zip, at + 42);
    r.name = zip.substr(at + 46, u16(zip, at + 28));
    if (r.local + 30 > zip.size() || u32(zip, r.local) != 0x04034b50u)
      continue;  // a chance match in a payload
    r.data = r.local + 30 + u16(zip, r.local + 26) + u16(zip, r.local + 28);
    out.push_back(r);
  }
  return out;
}

const Record& record_ending(const std::vector<Record>& rs, const std::string& suffix) {
  for (const auto& r : rs)
    if (r.name.size() >= suffix.size() &&
        r.name.compare(r.name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return r;
  throw std::runtime_error("no record ending in " + suffix);
}

// The zip with one record's bytes replaced by others of the same length, its checksum
// fixed wherever the zip keeps one: the central directory entry, and the local header or,
// when the local header defers to one (flag bit 3, as PyTorch writes), the data
// descriptor after the data.
std::string with_record(std::string zip, const Record& r, const std::string& bytes) {
  zip.replace(r.data, r.size, bytes);
  const uint32_t crc = crc32(bytes);
  put32(zip, r.central + 16, crc);
  if (u16(zip, r.local + 6) & 0x8) {
    const size_t descriptor = r.data + r.size;
    put32(zip, descriptor + (u32(zip, descriptor) == 0x08074b50u ? 4 : 0), crc);
  } else {
    put32(zip, r.local + 14, crc);
  }
  return zip;
}

std::string read_file(const std::string& path) {
  const auto bytes = read_bytes(path);
  return std::string(bytes.begin(), bytes.end());
}

struct Tally {
  int clean_errors = 0, reads = 0, other_exceptions = 0;
  std::string first_other;
};

const std::vector<ModalityConfig> kMods = {{"visual", 16}, {"audio", 8}, {"text", 24}};

// Runs one read of a damaged file and counts how it ended: a read, a clean Error, or any
// other exception (which the tests expect none of). The label goes to stderr first, to
// name the case if it ever dies of a signal.
template <typename Read>
void count_read(Tally& tally, const std::string& label, const Read& read) {
  std::fprintf(stderr, "%s\n", label.c_str());
  try {
    read();
    ++tally.reads;
  } catch (const Error&) { ++tally.clean_errors; } catch (const std::exception& e) {
    if (tally.first_other.empty()) tally.first_other = label + ": " + e.what();
    ++tally.other_exceptions;
  }
}

// Reads data-file bytes as predict and train would: the whole reader, values included.
// `expected`: the values a read must give when it succeeds (nullptr: any finite values).
void read_data(const std::string& bytes, Tally& tally, const std::string& label,
               const std::vector<torch::Tensor>* expected = nullptr) {
  count_read(tally, label, [&] {
    const Dataset d = parse_data_file(std::vector<char>(bytes.begin(), bytes.end()), label, kMods,
                                      ReadRule{false});
    for (const auto& f : d.features) EXPECT_TRUE(torch::isfinite(f).all().item<bool>()) << label;
    if (expected)
      for (size_t m = 0; m < expected->size(); ++m)
        EXPECT_TRUE(torch::equal(d.features[m], (*expected)[m])) << label;
  });
}

// Reads checkpoint bytes as resume does: metadata, model, optimizer state, generators.
void read_checkpoint(const std::string& bytes, Tally& tally, const std::string& label,
                     const std::vector<torch::Tensor>* expected = nullptr) {
  count_read(tally, label, [&] {
    Checkpoint c = parse_checkpoint(bytes.data(), bytes.size(), label);
    ModelPtr model = c.build_model(torch::kCPU);
    auto optimizer = make_optimizer(c.config.train, *model);
    if (c.has_optimizer()) c.load_optimizer(*optimizer);
    c.rng();
    const auto params = model->parameters();
    for (size_t i = 0; i < params.size(); ++i) {
      params[i].sum().item<double>();  // every value read
      if (expected) EXPECT_TRUE(torch::equal(params[i], (*expected)[i])) << label;
    }
  });
}

// Either reader, by what the zip is (only a checkpoint has constants.pkl); the label
// gets "data " or "checkpoint " in front.
bool is_checkpoint(const std::string& zip) {
  return zip.find("constants.pkl") != std::string::npos;
}
void read_zip(const std::string& bytes, Tally& tally, bool checkpoint, const std::string& what,
              const std::vector<torch::Tensor>* expected = nullptr) {
  if (checkpoint)
    read_checkpoint(bytes, tally, "checkpoint " + what, expected);
  else
    read_data(bytes, tally, "data " + what, expected);
}

std::string data_file(const TempDir& dir) {
  torch::manual_seed(0);
  Dataset d;
  for (const auto& m : kMods)
    d.names.push_back(m.name), d.features.push_back(torch::randn({16, m.dim}));
  d.target = torch::randn({16, 1});
  write_data_file(d, dir.file("ok.pt"));
  return read_file(dir.file("ok.pt"));
}

std::string checkpoint_file(const TempDir& dir) {
  auto config = tiny_config({"model.output_dim=1"});
  ModelPtr model = make_model(config.model, config.data.modalities, 1);
  auto optimizer = make_optimizer(config.train, *model);
  model->forward(random_inputs(config.data.modalities, 4)).sum().backward();
  optimizer->step();
  save_checkpoint(dir.file("ok.ckpt"), config, TrainProgress{}, *model, optimizer.get(),
                  capture_default_rng(torch::kCPU, torch::Tensor()));
  return read_file(dir.file("ok.ckpt"));
}

// Every offset where a zip structure starts or a record's data starts or ends.
std::vector<size_t> zip_boundaries(const std::string& zip) {
  std::vector<size_t> cuts;
  for (const char* sig : {"PK\x03\x04", "PK\x01\x02", "PK\x05\x06", "PK\x06\x06", "PK\x06\x07"})
    for (size_t at = zip.find(sig); at != std::string::npos; at = zip.find(sig, at + 1))
      cuts.push_back(at);
  for (const auto& r : records(zip)) cuts.push_back(r.data), cuts.push_back(r.data + r.size);
  std::vector<size_t> out;
  for (size_t c : cuts)
    for (size_t d : {c, c + 1, c > 0 ? c - 1 : 0})
      if (d < zip.size()) out.push_back(d);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

}  // namespace

TEST(FileSafety, ATensorThatReachesPastItsStorageIsRefusedBeforeItsValuesAreRead) {
  TempDir dir;
  const std::string zip = data_file(dir);
  const auto rs = records(zip);
  const Record& pkl = record_ending(rs, "data.pkl");
  const std::string pickle = zip.substr(pkl.data, pkl.size);
  // The "text" entry: shape (16, 24) then stride (24, 1), as BININT1 'K' 24 opcodes.
  const size_t text = pickle.find("text");
  ASSERT_NE(text, std::string::npos);
  const size_t shape = pickle.find("K\x18", text), stride = pickle.find("K\x18", shape + 2);
  ASSERT_NE(stride, std::string::npos);
  std::string crafted_stride = pickle, crafted_width = pickle;
  crafted_stride[stride + 1] = '\xff';  // row stride 255: rows reach far past the storage
  crafted_width[shape + 1] = '\xff';    // width 255 over a 16 x 24 storage
  for (const auto& [label, bytes] :
       {std::pair{"stride", crafted_stride}, std::pair{"width", crafted_width}}) {
    SCOPED_TRACE(label);
    const std::string file = with_record(zip, pkl, bytes);
    const std::string path = dir.file(std::string(label) + ".pt");
    write_text(path, file);
    try {
      read_data_file(path, kMods, ReadRule{false});
      ADD_FAILURE() << "read a tensor that reaches past its storage";
    } catch (const Error& e) {
      const std::string m = e.what();
      EXPECT_EQ(m.rfind(path + ": entry \"text\": shape [16, ", 0), 0u) << m;
      EXPECT_NE(m.find("but its storage holds 384"), std::string::npos) << m;  // 16 x 24
    }
  }
}

namespace {
// A view of `storage` with any metadata, as a file's unpickler can make one: ATen's own
// as_strided refuses out-of-bounds views, so the metadata is set on the TensorImpl.
torch::Tensor raw_view(const torch::Tensor& storage, std::vector<int64_t> sizes,
                       std::vector<int64_t> strides, int64_t offset = 0) {
  auto t = storage.view({-1}).detach().clone();
  t.unsafeGetTensorImpl()->set_sizes_and_strides(sizes, strides);
  t.unsafeGetTensorImpl()->set_storage_offset(offset);
  return t;
}
}  // namespace

TEST(FileSafety, TheLayoutCheckFollowsItsDefinition) {
  const auto storage = torch::arange(12, torch::kFloat32);
  EXPECT_NO_THROW(check_file_tensor(raw_view(storage, {3, 4}, {4, 1}), "x"));
  EXPECT_NO_THROW(check_file_tensor(raw_view(storage, {4, 3}, {1, 4}), "x"));     // a transpose
  EXPECT_NO_THROW(check_file_tensor(raw_view(storage, {2, 2}, {4, 1}, 6), "x"));  // last element 11
  expect_error(
      [&] {
        check_file_tensor(raw_view(storage, {2, 2}, {4, 1}, 7), "x");
      },
      "x: shape [2, 2] with strides [4, 1] and offset 7 reaches element 12, but its storage holds 12");
  // (A negative stride cannot be made: TensorImpl turns it into a contiguous one, also in
  // the unpickler; the check refuses one all the same.)
  expect_error([&] { check_file_tensor(raw_view(storage, {2}, {1}, -1), "x"); },
               "negative storage offset");
  expect_error(
      [&] {
        check_file_tensor(raw_view(storage, {2, 2}, {INT64_MAX, INT64_MAX}), "x");
      },
      "reaches element");
  EXPECT_NO_THROW(
      check_file_tensor(raw_view(storage, {0, 5}, {100, 100}), "x"));  // empty: nothing is read
  // A broadcast (stride 0) view: 36 elements over 12 would let a tiny file stand for a
  // huge tensor; files hold none.
  expect_error(
      [&] {
        check_file_tensor(raw_view(storage, {12, 3}, {1, 0}), "x");
      },
      "an overlapping view");
  expect_error([&] { check_file_tensor(torch::zeros({2}, torch::kComplexFloat), "x"); },
               "x: dtype ComplexFloat is not allowed");
  // Nested values: the entry is named.
  c10::impl::GenericList list(c10::TensorType::get());
  list.push_back(raw_view(storage, {3}, {6}));  // elements 0, 6, 12 of 12
  expect_error([&] { check_file_tensors(c10::IValue(list), "f.pt: entry \"a\""); },
               "f.pt: entry \"a\": shape [3]");
}

TEST(FileSafety, UnchangedFilesPassedThroughTheZipPatcherStillRead) {
  // The corpus below changes records and fixes their checksums; without a change the
  // result must read, or the mutants would prove nothing.
  TempDir dir;
  for (const std::string& zip : {data_file(dir), checkpoint_file(dir)}) {
    const Record pkl = record_ending(records(zip), "data.pkl");
    const std::string same = with_record(zip, pkl, zip.substr(pkl.data, pkl.size));
    EXPECT_EQ(same, zip);
    Tally tally;
    read_zip(same, tally, is_checkpoint(zip), "as written");
    EXPECT_EQ(tally.reads, 1) << tally.first_other;
  }
}

namespace {
// `count` seeded mutants of a file's data.pkl, 1 to 8 random bytes each, read by `read`.
template <typename Read>
Tally pickle_mutants(const std::string& zip, uint32_t seed, int count, const std::string& label,
                     const Read& read) {
  const Record pkl = record_ending(records(zip), "data.pkl");
  const std::string pickle = zip.substr(pkl.data, pkl.size);
  std::mt19937 gen(seed);
  Tally tally;
  for (int i = 0; i < count; ++i) {
    std::string mutant = pickle;
    const int changes = 1 + static_cast<int>(gen() % 8);
    for (int k = 0; k < changes; ++k)
      mutant[gen() % mutant.size()] = static_cast<char>(gen() & 0xff);
    read(with_record(zip, pkl, mutant), tally, label + " mutant " + std::to_string(i), nullptr);
  }
  EXPECT_EQ(tally.other_exceptions, 0) << tally.first_other;
  std::cout << label << " mutants: " << tally.clean_errors << " clean errors, " << tally.reads
            << " read\n";
  return tally;
}
}  // namespace

TEST(FileSafety, RandomChangesToADataFilesPickleEndCleanly) {
  TempDir dir;
  const Tally tally = pickle_mutants(data_file(dir), 20261127, 150, "data", read_data);
  EXPECT_GT(tally.clean_errors, 100) << "most random changes must be caught";
}

TEST(FileSafety, RandomChangesToACheckpointsPickleEndCleanly) {
  TempDir dir;
  const Tally tally = pickle_mutants(checkpoint_file(dir), 11, 80, "checkpoint", read_checkpoint);
  EXPECT_GT(tally.clean_errors, 40);
}

TEST(FileSafety, FilesCutAtEveryZipBoundaryEndCleanly) {
  TempDir dir;
  for (const std::string& zip : {data_file(dir), checkpoint_file(dir)}) {
    Tally tally;
    const auto cuts = zip_boundaries(zip);
    ASSERT_GT(cuts.size(), 10u);
    for (size_t cut : cuts) {
      const std::string part = zip.substr(0, cut);
      read_zip(part, tally, is_checkpoint(zip), "cut at " + std::to_string(cut));
    }
    EXPECT_EQ(tally.reads, 0) << "a truncated file was read as whole";
    EXPECT_EQ(tally.other_exceptions, 0) << tally.first_other;
  }
}

TEST(FileSafety, AZipDirectoryPointingOutsideTheFileEndsCleanly) {
  TempDir dir;
  for (const std::string& zip : {data_file(dir), checkpoint_file(dir)}) {
    const bool is_data = !is_checkpoint(zip);
    Tally tally;
    const auto rs = records(zip);
    const Record& pkl = record_ending(rs, "data.pkl");
    const size_t end = zip.rfind("PK\x05\x06");
    ASSERT_NE(end, std::string::npos);
    std::vector<std::string> cases;
    for (uint32_t offset :
         {0x7ffffff0u, static_cast<uint32_t>(zip.size()), static_cast<uint32_t>(zip.size() - 10)}) {
      std::string entry = zip;  // data.pkl's local header beyond (or at the very end of) the file
      put32(entry, pkl.central + 42, offset);
      cases.push_back(entry);
      std::string size = zip;  // data.pkl's size beyond the file
      put32(size, pkl.central + 20, offset), put32(size, pkl.central + 24, offset);
      cases.push_back(size);
      std::string directory = zip;  // the central directory itself beyond the file
      put32(directory, end + 16, offset);
      cases.push_back(directory);
    }
    // What a correct read gives: the file as written.
    std::vector<torch::Tensor> truth;
    if (is_data) {
      truth =
          parse_data_file(std::vector<char>(zip.begin(), zip.end()), "ok", kMods, ReadRule{false})
              .features;
    } else {
      for (const auto& p :
           parse_checkpoint(zip.data(), zip.size(), "ok").build_model(torch::kCPU)->parameters())
        truth.push_back(p.detach().clone());
    }
    for (size_t i = 0; i < cases.size(); ++i) {
      read_zip(cases[i], tally, is_checkpoint(zip), "directory case " + std::to_string(i), &truth);
    }
    // A read is fine when it is correct: the reader may not need the field that was
    // changed (miniz takes sizes from the local header); it then reads the true data.
    EXPECT_EQ(tally.other_exceptions, 0) << tally.first_other;
    std::cout << (is_data ? "data" : "checkpoint") << " directory cases: " << tally.clean_errors
              << " clean errors, " << tally.reads << " correct reads\n";
  }
}

namespace {
// The test checkpoint with its first factor's rank, (2, 9, 4) in the pickle as three
// BININT1s, changed to `rank`.
std::string checkpoint_with_factor_rank(const TempDir& dir, char rank, std::string zip = "") {
  if (zip.empty()) zip = checkpoint_file(dir);
  const Record pkl = record_ending(records(zip), "data.pkl");
  std::string pickle = zip.substr(pkl.data, pkl.size);
  const size_t at = pickle.find(std::string("K\x02K\x09K\x04", 6));
  if (at == std::string::npos)
    throw std::runtime_error("layout of the test checkpoint's pickle changed");
  pickle[at + 1] = rank;
  return with_record(zip, pkl, pickle);
}
}  // namespace

TEST(FileSafety, ACheckpointWhoseParameterReachesPastItsStorageIsRefused) {
  TempDir dir;
  // (127, 9, 4): far past the flat parameter buffer the factor views.
  const std::string crafted = checkpoint_with_factor_rank(dir, '\x7f');
  try {
    parse_checkpoint(crafted.data(), crafted.size(), "crafted.pt");
    ADD_FAILURE() << "opened a checkpoint whose factor reaches past its storage";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("crafted.pt: ", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("reaches element"), std::string::npos) << e.what();
  }
}

TEST(FileSafety, ACheckpointWithTorchScriptMethodsIsRefusedBeforeItIsCompiled) {
  TempDir dir;
  const std::string zip = checkpoint_file(dir);
  // A code/ record gains a method, in place of the same number of bytes of a comment line.
  const auto rs = records(zip);
  const Record* code = nullptr;
  for (const auto& r : rs)
    if (r.name.find("code/") != std::string::npos && r.name.size() > 3 &&
        r.name.compare(r.name.size() - 3, 3, ".py") == 0 &&
        u16(zip, r.central + 10) == 0)  // stored, not deflated
      code = &r;
  ASSERT_NE(code, nullptr);
  std::string source = zip.substr(code->data, code->size);
  const std::string method =
      "\n  def\t__setstate__(self, s: int) -> None:\n    pass\n";  // a tab, too
  ASSERT_GT(source.size(), method.size());
  source.replace(source.size() - method.size(), method.size(), method);
  const std::string crafted = with_record(zip, *code, source);
  expect_error([&] { parse_checkpoint(crafted.data(), crafted.size(), "m.pt"); },
               "is not an attribute declaration");
}

TEST(FileSafety, ACheckpointWhoseTensorsDisagreeWithItsConfigIsRefused) {
  // The tensors are well-formed, but a factor's shape is not the config's: loading must
  // refuse it rather than hand the hand-written pass sizes it would overrun.
  TempDir dir;
  // (1, 9, 4): inside its storage, but rank 1 where the config says 2. Since format 3 the
  // model's checksum refuses it on open; a file without checksums (format 2, as the
  // fixture) reaches the shape check.
  const std::string crafted = checkpoint_with_factor_rank(dir, '\x01');
  expect_error(
      [&] { parse_checkpoint(crafted.data(), crafted.size(), "shape.pt"); },
      "shape.pt: corrupt checkpoint: the model (parameters and buffers) does not match its checksum");
  const std::string old = checkpoint_with_factor_rank(
      dir, '\x01', read_file(source_path("tests/fixtures/tiny-format2-v0.1.0.pt")));
  Checkpoint c = parse_checkpoint(old.data(), old.size(), "shape.pt");
  expect_error([&] { c.build_model(torch::kCPU); }, "shape.pt: model.fusion.factor_");
  expect_error([&] { c.build_model(torch::kCPU); },
               "has shape [1, 9, 4] Float, its config gives [2, 9, 4] Float");
}

TEST(FileSafety, AStorageDeclaringMoreElementsThanItsRecordHoldsIsRefused) {
  // LibTorch 1.13 sizes a storage by the numel its pickle declares, not by its record: a
  // larger numel made a storage whose memory ends long before its size says.
  TempDir dir;
  const std::string zip = data_file(dir);
  const Record pkl = record_ending(records(zip), "data.pkl");
  std::string pickle = zip.substr(pkl.data, pkl.size);
  const size_t text = pickle.find("text");
  const size_t numel =
      pickle.find(std::string("M\x80\x01", 3), text);  // text's storage: 384 elements
  ASSERT_NE(numel, std::string::npos);
  pickle[numel + 2] = '\x7f';  // 0x7f80 elements
  const std::string path = dir.file("numel.pt");
  write_text(path, with_record(zip, pkl, pickle));
  expect_error(
      [&] { read_data_file(path, kMods, ReadRule{false}); },
      path +
          ": data.pkl: storage 2 declares 32640 elements of 4 bytes, but its record holds 1536 bytes");
}

TEST(FileSafety, AHugeMemoIndexIsRefusedBeforeTheUnpicklerReservesIt) {
  const std::string pickle = std::string("\x80\x02}r\xff\xff\xff\x7f.", 9);  // LONG_BINPUT 2^31 - 1
  expect_error([&] { check_pickle(pickle.data(), pickle.size(), "p"); },
               "p: memo index 2147483647 beyond");
  const std::string fine = std::string("\x80\x02}q\x00.", 6);
  EXPECT_NO_THROW(check_pickle(fine.data(), fine.size(), "p"));
  expect_error([&] { check_pickle("\x80\x02\xff.", 4, "p"); },
               "p: unknown pickle opcode 255 at byte 2");
  expect_error([&] { check_pickle("\x80\x02X\xff\xff\xff\x00ab.", 10, "p"); },
               "runs past the end of the pickle");
  expect_error([&] { check_pickle("\x80\x02}", 3, "p"); }, "no STOP opcode");
  // Opcodes that consume what is not there (LibTorch 1.13's unpickler reads past its empty
  // stack: the fuzzer's SEGV).
  expect_error([&] { check_pickle("\x80\x02\x85.", 4, "p"); }, "needs 1 value(s) on the stack");
  expect_error([&] { check_pickle("\x80\x02]e.", 5, "p"); }, "needs a mark");
  expect_error([&] { check_pickle("\x80\x02(a.", 5, "p"); }, "needs 2 value(s)");
  expect_error([&] { check_pickle("\x80\x02.", 3, "p"); }, "STOP with nothing on the stack");
  const std::string list = std::string("\x80\x02](K\x01K\x02e.", 10);  // [1, 2] by APPENDS
  EXPECT_NO_THROW(check_pickle(list.data(), list.size(), "p"));
}

TEST(FileSafety, EveryInputTheFuzzersFoundEndsCleanly) {
  // tests/fixtures/fuzz/: inputs on which scripts/fuzz.sh found a crash or an
  // out-of-memory abort, kept so that every later build is checked against them.
  Tally data, checkpoints;
  int files = 0;
  for (const auto& entry :
       std::filesystem::directory_iterator(source_path("tests/fixtures/fuzz"))) {
    if (!entry.is_regular_file()) continue;  // pickle-corpus/: test_pickle.cpp's
    const std::string bytes = read_file(entry.path().string());
    const std::string name = entry.path().filename().string();
    if (name.rfind("data-", 0) == 0)
      read_data(bytes, data, name);
    else
      read_checkpoint(bytes, checkpoints, name);
    ++files;
  }
  EXPECT_GE(files, 2);
  EXPECT_EQ(data.reads + checkpoints.reads, 0);
  EXPECT_EQ(data.other_exceptions + checkpoints.other_exceptions, 0)
      << data.first_other << checkpoints.first_other;
}

TEST(FileSafety, ARecordWhoseDirectoryStatesAHugeSizeIsRefusedBeforeItIsAllocated) {
  // The fuzzer's 2.8 GB case: LibTorch allocates a record by its directory's size.
  TempDir dir;
  for (const std::string& zip : {data_file(dir), checkpoint_file(dir)}) {
    const Record pkl = record_ending(records(zip), "data.pkl");
    std::string huge = zip;
    put32(huge, pkl.central + 24, 0xAB000000u);  // uncompressed size 2.8 GB, stored
    const bool is_data = !is_checkpoint(zip);
    try {
      if (is_data)
        parse_data_file(std::vector<char>(huge.begin(), huge.end()), "z.pt", kMods,
                        ReadRule{false});
      else
        parse_checkpoint(huge.data(), huge.size(), "z.pt");
      ADD_FAILURE() << "read a zip whose directory states 2.8 GB";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("states 2868903936 bytes, more than"), std::string::npos)
          << e.what();
    }
  }
}
