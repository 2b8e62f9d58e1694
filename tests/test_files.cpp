// File and text helpers (files.hpp).
#include <gtest/gtest.h>

#include <filesystem>

#include "helpers.hpp"
#include "mmfusion/base/errors.hpp"
#include "mmfusion/base/files.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;

TEST(Files, AtomicWriteLeavesTheOldFileWhenWritingFails) {
  TempDir dir;
  const std::string path = dir.file("state.txt");
  atomic_write_text(path, "old contents");
  EXPECT_THROW(atomic_write(path,
                            [](const std::string& tmp) {
                              write_text(tmp, "half of the new");
                              throw Error("disk full (simulated)");
                            }),
               Error);
  EXPECT_EQ(read_text(path), "old contents");
  int files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir.path())) ++files;
  EXPECT_EQ(files, 1) << "the temporary file was not removed";
  atomic_write_text(path, "new contents");
  EXPECT_EQ(read_text(path), "new contents");
}

TEST(Files, NumbersAndCsvFieldsAreWrittenReadably) {
  EXPECT_EQ(format_number(0.5), "0.5");
  EXPECT_EQ(format_number(1.0 / 3), "0.333333333");
  EXPECT_EQ(format_number(-2e-10), "-2e-10");
  EXPECT_EQ(csv_field("plain"), "plain");
  EXPECT_EQ(csv_field("a,b"), "\"a,b\"");
  EXPECT_EQ(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
}

TEST(Files, AnExistingOutputIsRefusedUnlessForced) {
  TempDir dir;
  const std::string path = dir.file("out.csv");
  EXPECT_NO_THROW(refuse_overwrite(path, false));
  write_text(path, "x");
  expect_error<ConfigError>([&] { refuse_overwrite(path, false); },
                            "--output " + path + ": the file exists");
  EXPECT_NO_THROW(refuse_overwrite(path, true));
}

namespace {
int entries(const std::string& dir) {
  int n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}
}  // namespace

TEST(Writer, EveryFaultPointKeepsTheOldFileAndNamesTheNewOne) {
  // A first write, a middle one (8-byte chunks), the fsync and the rename: each fails as a
  // full disk does, and each leaves the old version, no temporary file and a message
  // naming the file with the system's reason.
  struct Case {
    WriteOp op;
    int k;
    const char* reason;
  };
  for (const Case c : {Case{WriteOp::Write, 1, "No space left on device"},
                       Case{WriteOp::Write, 3, "No space left on device"},
                       Case{WriteOp::Fsync, 1, "No space left on device"},
                       Case{WriteOp::Rename, 1, "Input/output error"}}) {
    TempDir dir;
    const std::string path = dir.file("results.json");
    atomic_write_text(path, "the earlier version");
    inject_write_fault(c.op, c.k, 8);
    try {
      atomic_write_text(path, "a new version of forty-odd bytes, in six chunks");
      ADD_FAILURE() << "no error";
    } catch (const WriteError& e) {
      const std::string what = e.what();
      EXPECT_EQ(what.rfind(path + ": cannot ", 0), 0u) << what;
      EXPECT_NE(what.find(c.reason), std::string::npos) << what;
    }
    inject_write_fault(WriteOp::Write, 0);
    EXPECT_EQ(read_text(path), "the earlier version");
    EXPECT_EQ(entries(dir.path()), 1) << "a temporary file was left";
  }
  // The seam counts from where it was set, and clears itself after one failure.
  TempDir dir;
  inject_write_fault(WriteOp::Write, 2);
  EXPECT_NO_THROW(atomic_write_text(dir.file("a"), "first"));
  EXPECT_THROW(atomic_write_text(dir.file("b"), "second"), WriteError);
  EXPECT_NO_THROW(atomic_write_text(dir.file("c"), "third"));
  EXPECT_FALSE(std::filesystem::exists(dir.file("b")));
}

TEST(Writer, AFailedAppendCutsTheFileBackToItsLastWholeRecord) {
  TempDir dir;
  const std::string path = dir.file("metrics.jsonl");
  append_text(path, "{\"epoch\":1}\n");
  inject_write_fault(WriteOp::Write, 2, 4);  // the second 4-byte chunk of the record
  EXPECT_THROW(append_text(path, "{\"epoch\":2}\n"), WriteError);
  inject_write_fault(WriteOp::Write, 0);
  EXPECT_EQ(read_text(path), "{\"epoch\":1}\n");
  append_text(path, "{\"epoch\":2}\n");
  EXPECT_EQ(read_text(path), "{\"epoch\":1}\n{\"epoch\":2}\n");
  // A folder that cannot be written is refused with the system's reason.
  expect_error<WriteError>([&] { append_text(dir.file("no/such/folder/log"), "x"); },
                           "no/such/folder/log: cannot write: No such file or directory");
  expect_error<WriteError>([&] { atomic_copy(path, dir.file("gone/copy")); },
                           "gone/copy: cannot write: No such file or directory");
}
