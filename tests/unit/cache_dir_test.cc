#include <certgate/cache_dir.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

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

}  // namespace
}  // namespace certgate
