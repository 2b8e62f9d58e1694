// Run folders: one writer per folder (RunLock), and what counts as an empty folder.
#include <gtest/gtest.h>

#include <filesystem>

#include "helpers.hpp"
#include "mmfusion/io/run_folder.hpp"

using namespace mmfusion;
using namespace mmfusion::testing;
namespace fs = std::filesystem;

TEST(RunLock, ASecondProcessIsRefusedWithTheHoldersProcessId) {
  TempDir dir;
  const std::string run = dir.file("run");
  LockHolder holder(run);
  expect_error<RunFolderInUse>([&] { RunLock lock(run); }, run + ": run folder in use by process " +
                                                               std::to_string(holder.pid()));
  expect_error<RunFolderInUse>([&] { RunLock lock(run, RunLock::Mode::Shared); },
                               "run folder in use by process");
}

TEST(RunLock, ALockLeftByAKilledProcessDoesNotBlock) {
  TempDir dir;
  const std::string run = dir.file("run");
  LockHolder holder(run);
  holder.kill();  // SIGKILL: no destructor ran, the lock file is still there
  ASSERT_TRUE(fs::exists(fs::path(run) / RunLock::kFileName));
  EXPECT_NO_THROW(RunLock lock(run));
}

TEST(RunLock, SharedHoldersCoexistAndKeepAnExclusiveOneOut) {
  TempDir dir;
  const std::string sweep = dir.file("sweep");
  LockHolder shard(sweep, RunLock::Mode::Shared);
  expect_error<RunFolderInUse>([&] { RunLock lock(sweep); }, "run folder in use by process");
  EXPECT_NO_THROW(RunLock lock(sweep, RunLock::Mode::Shared));
}

TEST(RunLock, TheSameProcessSharesItsLockAndReleasesItWithTheLastHolder) {
  TempDir dir;
  const std::string run = dir.file("run");
  fs::create_directories(run);
  {
    RunLock outer(run);
    {
      RunLock inner(run);  // a sweep's run, trained in-process
    }
    // Still held after the inner holder is gone.
    EXPECT_THROW(LockHolder other(run), std::runtime_error);
  }
  EXPECT_NO_THROW(LockHolder other(run));
}

TEST(RunLock, AFolderMadeOnlyForTheLockIsRemovedOnRelease) {
  TempDir dir;
  const std::string run = dir.file("runs/new/run");
  {
    RunLock lock(run);
    EXPECT_TRUE(fs::is_directory(run));
    EXPECT_TRUE(is_empty_run_dir(run));
  }
  EXPECT_FALSE(fs::exists(dir.file("runs")));  // with the parents it made
  // A folder that received files stays, lock file and all.
  {
    RunLock lock(run);
    write_text(run + "/config.json", "{}");
  }
  EXPECT_TRUE(fs::exists(run + "/config.json"));
  EXPECT_FALSE(is_empty_run_dir(run));
  // A folder that existed before stays too.
  const std::string existing = dir.file("existing");
  fs::create_directories(existing);
  { RunLock lock(existing); }
  EXPECT_TRUE(fs::is_directory(existing));
}

TEST(RunLock, FreshRunFoldersIgnoreALockFile) {
  TempDir dir;
  const std::string run = dir.file("run");
  RunLock lock(run);
  EXPECT_EQ(fresh_run_dir(run, "x"), run);
  write_text(run + "/metrics.jsonl", "");
  expect_error<ConfigError>([&] { fresh_run_dir(run, "x"); }, "the folder exists and is not empty");
}
