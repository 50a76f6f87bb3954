// The process's checkers (revocation/registry.h): one per cache directory,
// found again without a lock, and opened afresh in a forked child (an LMDB
// environment must not be used across fork).
#include <certgate/clock.h>
#include <certgate/policy.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "revocation/registry.h"

namespace certgate {
namespace {

class RevocationRegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/certgate-registry-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  Policy CachePolicy(const std::string &name) {
    Policy policy;
    EXPECT_TRUE(policy.Set("revocation", {"cache_only"}).ok());
    EXPECT_TRUE(policy.Set("cache", {dir_ + "/" + name}).ok());
    return policy;
  }
  std::string dir_;
  FixedClock clock_{1800000000};
};

TEST_F(RevocationRegistryTest, OneCheckerPerCacheDirectory) {
  std::string error;
  const Policy a = CachePolicy("a"), b = CachePolicy("b");
  RevocationChecker *first = RevocationFor(a, nullptr, clock_, &error);
  ASSERT_NE(first, nullptr) << error;
  EXPECT_EQ(RevocationFor(a, nullptr, clock_, &error), first);
  EXPECT_EQ(RevocationFor(CachePolicy("a"), nullptr, clock_, &error), first);
  RevocationChecker *other = RevocationFor(b, nullptr, clock_, &error);
  ASSERT_NE(other, nullptr) << error;
  EXPECT_NE(other, first);
  EXPECT_EQ(first->dir(), dir_ + "/a");
  EXPECT_EQ(RevocationFor(a, nullptr, clock_, &error), first);
}

TEST_F(RevocationRegistryTest, AnUnopenableCacheIsAnErrorEveryTime) {
  ASSERT_TRUE(std::filesystem::create_directories(dir_ + "/file-parent"));
  {
    FILE *file = fopen((dir_ + "/file-parent/plain").c_str(), "w");
    ASSERT_NE(file, nullptr);
    fclose(file);
  }
  const Policy policy = CachePolicy("file-parent/plain/cache");
  for (int i = 0; i < 2; ++i) {
    std::string error;
    EXPECT_EQ(RevocationFor(policy, nullptr, clock_, &error), nullptr);
    EXPECT_NE(error.find("file-parent/plain"), std::string::npos) << error;
  }
}

// Threads of a threaded server meeting on a first use: one checker, one
// preload, and every thread gets that checker.
TEST_F(RevocationRegistryTest, ThreadsMeetingOnFirstUseShareOneChecker) {
  Policy policy = CachePolicy("threads");
  {
    FILE *file = fopen((dir_ + "/threads.crl").c_str(), "w");
    ASSERT_NE(file, nullptr);
    fclose(file);
  }
  ASSERT_TRUE(policy.Set("crl", {dir_ + "/threads.crl"}).ok());
  constexpr int kThreads = 4;
  std::vector<RevocationChecker *> first(kThreads, nullptr);
  std::vector<int> changed(kThreads, 0);  // calls that returned another checker
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::string error;
      for (int i = 0; i < 200; ++i) {
        RevocationChecker *checker = RevocationFor(policy, nullptr, clock_, &error);
        if (i == 0) first[t] = checker;
        changed[t] += checker != first[t];
        (void)PreloadInProgress();
      }
    });
  }
  for (std::thread &thread : threads) thread.join();
  ASSERT_NE(first[0], nullptr);
  for (int t = 0; t < kThreads; ++t) {
    EXPECT_EQ(first[t], first[0]) << "thread " << t;
    EXPECT_EQ(changed[t], 0) << "thread " << t;
  }
  WaitForPreloads(std::chrono::seconds(5));
  EXPECT_FALSE(PreloadInProgress());
}

// A forked child (an nginx worker, an Apache child) gets its own checker and
// sees no preload of its parent as running.
TEST_F(RevocationRegistryTest, AForkedChildOpensItsOwnChecker) {
  std::string error;
  Policy policy = CachePolicy("shared");
  {
    FILE *file = fopen((dir_ + "/empty.crl").c_str(), "w");  // no CRL in it: the preload fails
    ASSERT_NE(file, nullptr);
    fclose(file);
  }
  ASSERT_TRUE(policy.Set("crl", {dir_ + "/empty.crl"}).ok());
  RevocationChecker *parent = RevocationFor(policy, nullptr, clock_, &error);
  ASSERT_NE(parent, nullptr) << error;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    std::string child_error;
    RevocationChecker *own = RevocationFor(policy, nullptr, clock_, &child_error);
    const bool fresh = own != nullptr && own != parent && own->dir() == dir_ + "/shared";
    const bool same_again = RevocationFor(policy, nullptr, clock_, &child_error) == own;
    WaitForPreloads(std::chrono::seconds(5));
    const bool done = !PreloadInProgress();
    _exit(fresh ? (same_again ? (done ? 0 : 3) : 2) : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: no fresh checker, 2: not found again, 3: preloading";
  EXPECT_EQ(RevocationFor(policy, nullptr, clock_, &error), parent);
  WaitForPreloads(std::chrono::seconds(5));
  EXPECT_FALSE(PreloadInProgress());
}

}  // namespace
}  // namespace certgate
