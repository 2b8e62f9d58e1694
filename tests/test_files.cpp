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
