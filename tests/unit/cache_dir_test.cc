#include "cache_dir.h"

#include <certgate/certgate.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

namespace certgate {
namespace {

using ::testing::HasSubstr;

class CacheDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/certgate-cachedir-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    chmod(root_.c_str(), 0755);
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  std::string root_;
};

TEST_F(CacheDirTest, CreatesParentsAndAPrivateDirectory) {
  const std::string dir = root_ + "/a/b/cache";
  ASSERT_TRUE(PrepareCacheDir(dir, std::nullopt).ok());
  struct stat st = {};
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  ASSERT_EQ(stat((root_ + "/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST_F(CacheDirTest, RefusesRelativePathsAndFilesInTheWay) {
  EXPECT_THAT(PrepareCacheDir("relative/cache", std::nullopt).message(),
              HasSubstr("is not an absolute path"));
  std::ofstream(root_ + "/file") << "x";
  EXPECT_THAT(PrepareCacheDir(root_ + "/file/cache", std::nullopt).message(),
              HasSubstr(root_ + "/file is not a directory"));
}

TEST_F(CacheDirTest, GivesTheDirectoryAndItsFilesToTheWorkerUser) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown (CI runs as root)";
  const std::string dir = root_ + "/cache";
  ASSERT_TRUE(PrepareCacheDir(dir, std::nullopt).ok());
  std::ofstream(dir + "/data.mdb") << "x";  // left by a run as root
  const Owner nobody{65534, 65534};
  ASSERT_TRUE(PrepareCacheDir(dir, nobody).ok());
  struct stat st = {};
  ASSERT_EQ(stat((dir + "/data.mdb").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);
  ASSERT_EQ(stat(dir.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 65534u);

  chmod(root_.c_str(), 0700);  // a parent the worker cannot search
  EXPECT_THAT(PrepareCacheDir(dir, nobody).message(), HasSubstr("is not searchable"));
}

TEST_F(CacheDirTest, RefusesADirectoryOrFileOthersMayWriteOrAForeignOwnerHas) {
  const std::string dir = root_ + "/cache";
  ASSERT_TRUE(PrepareCacheDir(dir, std::nullopt).ok());
  chmod(dir.c_str(), 0777);
  EXPECT_THAT(PrepareCacheDir(dir, std::nullopt).message(),
              HasSubstr(dir + " is writable by group or others (mode 0777)"));
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown (CI runs as root)";
  const Owner nobody{65534, 65534};
  EXPECT_THAT(PrepareCacheDir(dir, nobody).message(), HasSubstr("writable by group or others"));
  chmod(dir.c_str(), 0700);
  ASSERT_EQ(chown(dir.c_str(), 4242, 4242), 0);  // someone else's
  EXPECT_THAT(PrepareCacheDir(dir, nobody).message(),
              HasSubstr(dir + " belongs to uid 4242, neither the worker user"));
  ASSERT_EQ(chown(dir.c_str(), 0, 0), 0);
  std::ofstream(dir + "/data.mdb") << "x";
  chmod((dir + "/data.mdb").c_str(), 0666);
  EXPECT_THAT(PrepareCacheDir(dir, nobody).message(),
              HasSubstr(dir + "/data.mdb is writable by group or others"));
}

// The race of the issue: the directory swapped for a symlink after it was
// created. Root must not follow it and give the target away.
TEST_F(CacheDirTest, NeverFollowsASymlinkInPlaceOfTheDirectoryOrItsFiles) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to chown (CI runs as root)";
  const Owner nobody{65534, 65534};
  const std::string target = root_ + "/precious";
  ASSERT_EQ(mkdir(target.c_str(), 0700), 0);
  const std::string dir = root_ + "/cache";
  ASSERT_EQ(symlink(target.c_str(), dir.c_str()), 0);
  EXPECT_THAT(PrepareCacheDir(dir, nobody).message(), HasSubstr("is a symbolic link"));
  struct stat st = {};
  ASSERT_EQ(stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);  // not given away

  ASSERT_EQ(unlink(dir.c_str()), 0);
  ASSERT_EQ(mkdir(dir.c_str(), 0700), 0);
  const std::string secret = root_ + "/secret";
  std::ofstream(secret) << "x";
  ASSERT_EQ(symlink(secret.c_str(), (dir + "/data.mdb").c_str()), 0);
  EXPECT_THAT(PrepareCacheDir(dir, nobody).message(), HasSubstr("data.mdb is a symbolic link"));
  ASSERT_EQ(stat(secret.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);
}

// The C set an adapter collects its directories in: each prepared once, and
// a failure names the directory and where it was first configured.
TEST_F(CacheDirTest, CacheDirSetPreparesEachOnceAndNamesWhereItWasConfigured) {
  std::unique_ptr<cg_cache_dirs, decltype(&cg_cache_dirs_free)> dirs(cg_cache_dirs_new(),
                                                                     cg_cache_dirs_free);
  ASSERT_NE(dirs, nullptr);
  cg_error error{};
  EXPECT_EQ(cg_cache_dirs_add(dirs.get(), "relative/cache", "a.conf", 3, &error), CG_ERR_INVALID);
  EXPECT_THAT(error.message, HasSubstr("\"relative/cache\" (certgate_cache) must be an absolute"));

  const std::string good = root_ + "/good";
  const std::string blocked = root_ + "/file/cache";
  std::ofstream(root_ + "/file") << "x";
  ASSERT_EQ(cg_cache_dirs_add(dirs.get(), good.c_str(), "a.conf", 1, &error), CG_OK);
  ASSERT_EQ(cg_cache_dirs_add(dirs.get(), blocked.c_str(), "a.conf", 7, &error), CG_OK);
  ASSERT_EQ(cg_cache_dirs_add(dirs.get(), blocked.c_str(), "b.conf", 9, &error), CG_OK);
  EXPECT_EQ(cg_cache_dirs_prepare(dirs.get(), -1, -1, &error), CG_ERR_INVALID);
  EXPECT_THAT(error.message, HasSubstr(root_ + "/file is not a directory (certgate_cache \"" +
                                       blocked + "\" in a.conf:7)"));
  struct stat st = {};
  EXPECT_EQ(stat(good.c_str(), &st), 0) << "the directories before it are prepared";

  std::unique_ptr<cg_cache_dirs, decltype(&cg_cache_dirs_free)> fine(cg_cache_dirs_new(),
                                                                     cg_cache_dirs_free);
  ASSERT_EQ(cg_cache_dirs_add(fine.get(), good.c_str(), "a.conf", 1, &error), CG_OK);
  EXPECT_EQ(cg_cache_dirs_prepare(fine.get(), -1, -1, &error), CG_OK);
  EXPECT_EQ(cg_cache_dirs_prepare(nullptr, -1, -1, &error), CG_OK);
}

}  // namespace
}  // namespace certgate
