// The revocation cache fails closed and repairs itself (issue 9 §4): a
// damaged, truncated, foreign or other-version data.mdb never turns a revoked
// certificate into "good" and never crashes the process; it is moved aside
// once and rebuilt from the preloaded files.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "revocation/crl.h"
#include "revocation/store.h"
#include "revocation_test_pki.h"

namespace certgate {
namespace {

using ::testing::HasSubstr;
using testing::kRevNow;
using Revoked = pki::PkiBuilder::Revoked;

std::string ReadAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

void WriteAll(const std::string &path, const std::string &data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

int CountAside(const std::string &dir) {
  int n = 0;
  for (const auto &entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().filename().string().rfind("data.mdb.corrupt-", 0) == 0) ++n;
  }
  return n;
}

size_t UsedBytes(const std::string &dir) {
  MDB_envinfo info{};
  MDB_env *env = nullptr;
  if (mdb_env_create(&env) != 0) return 0;
  if (mdb_env_open(env, dir.c_str(), MDB_RDONLY, 0600) == 0) mdb_env_info(env, &info);
  mdb_env_close(env);
  return (info.me_last_pgno + 1) * 4096;
}

// What a fresh process (a worker after a restart) makes of a store.
enum Outcome : int {
  kDeniedBeforePreload = 1 << 0,  // the lookup alone refused to say "good"
  kRevokedAfterPreload = 1 << 1,  // the preload restored the revocation
  kMovedAside = 1 << 2,
  kAllowed = 1 << 6,  // a revoked certificate was "good": the failure
  kOpenFailed = 1 << 7,
};

class RevocationDamageTest : public testing::RevocationFixture {
 protected:
  // Thousands of stores written and synced: on tmpfs when there is one.
  std::string TempRoot() const override {
    struct stat st {};
    return stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0
               ? "/dev/shm"
               : "/tmp";
  }

  void SetUp() override {
    RevocationFixture::SetUp();
    alice_ = Leaf("alice");
    // Enough serials for a serial table of several leaf pages under a branch page.
    std::vector<Revoked> revoked;
    for (uint64_t s = 1000; s < 4000; ++s) revoked.push_back({s * 7919, kRevNow - 60, -1});
    revoked.push_back({Serial(alice_), kRevNow - 7200, 1});
    crl_path_ = WriteCrl("issuing.crl", IssuingCrl(revoked, 5).get());
    trust_ = Trust(true);
    Status loaded = checker_->Preload({crl_path_}, trust_.get());
    ASSERT_TRUE(loaded.ok()) << loaded.message();
    ASSERT_EQ(CheckLeaf(alice_).status, RevocationStatus::kRevoked);
    checker_.reset();
    cache_ = dir_ + "/cache";
    pristine_ = ReadAll(cache_ + "/data.mdb");
    ASSERT_GT(pristine_.size(), 8192u);
  }

  // Replaces the store by `data` as if written while no process had it open.
  void Install(const std::string &data) {
    std::filesystem::remove(cache_ + "/lock.mdb");
    WriteAll(cache_ + "/data.mdb", data);
    chmod((cache_ + "/data.mdb").c_str(), 0600);
  }

  // The same, writing only the first `used` bytes and leaving the rest sparse.
  void InstallUsed(const std::string &data, size_t used) {
    std::filesystem::remove(cache_ + "/lock.mdb");
    WriteAll(cache_ + "/data.mdb", data.substr(0, used));
    ASSERT_EQ(truncate((cache_ + "/data.mdb").c_str(), static_cast<off_t>(data.size())), 0);
    chmod((cache_ + "/data.mdb").c_str(), 0600);
  }

  // Opens the store in a child (a crash is then a failed outcome, not a dead
  // test), checks alice, preloads, checks again; returns Outcome bits, or
  // -signal when the child died.
  int Probe() {
    int fds[2];
    if (pipe(fds) != 0) return kOpenFailed;
    const pid_t pid = fork();
    if (pid == 0) {
      close(fds[0]);
      // Quiet: the moved-aside line is asserted elsewhere.
      const int null = open("/dev/null", O_WRONLY);
      if (null >= 0 && getenv("CERTGATE_FLIP_OFFSETS") == nullptr) dup2(null, STDERR_FILENO);
      int result = 0;
      auto opened = RevocationChecker::Open(cache_, clock_);
      if (!opened.ok()) {
        result = kOpenFailed;
      } else {
        auto &checker = *opened.value();
        auto check = [&] {
          std::vector<RevocationAnswer> answers = checker.Check(Evidence(alice_), policy_);
          if (getenv("CERTGATE_FLIP_OFFSETS") != nullptr && !answers.empty()) {
            fprintf(stderr, "check: %s %s %s\n", RevocationStatusName(answers[0].status),
                    answers[0].source.c_str(), answers[0].detail.c_str());
          }
          return answers.empty() ? RevocationStatus::kGood : answers[0].status;
        };
        const RevocationStatus before = check();
        if (before == RevocationStatus::kGood) result |= kAllowed;
        if (before != RevocationStatus::kGood) result |= kDeniedBeforePreload;
        (void)checker.Preload({crl_path_}, trust_.get());
        const RevocationStatus after = check();
        if (after == RevocationStatus::kGood) result |= kAllowed;
        if (after == RevocationStatus::kRevoked) result |= kRevokedAfterPreload;
        if (checker.store().moved_aside() > 0) result |= kMovedAside;
        opened.value().release();  // _exit below; no joins
      }
      (void)!write(fds[1], &result, sizeof result);
      _exit(0);
    }
    close(fds[1]);
    int result = 0;
    const bool got = read(fds[0], &result, sizeof result) == sizeof result;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) return -WTERMSIG(status);
    return got ? result : kOpenFailed;
  }

  pki::Issued alice_;
  std::string crl_path_, cache_, pristine_;
  ossl::UniquePtr<X509_STORE> trust_;
};

// One changed byte at many offsets of a populated store (both meta pages byte
// by byte, the rest at a stride that walks every position of a page): never
// an allow of the revoked certificate, never a crash, and after the preload
// the revocation is back.
TEST_F(RevocationDamageTest, ByteFlipsNeverAllowARevokedCertificateNorCrash) {
  // Only the pages in use: past them is the sparse tail (zeros LMDB never reads).
  const size_t used = UsedBytes(cache_);
  ASSERT_LE(used, pristine_.size());
  std::vector<size_t> offsets;
  for (size_t off = 0; off < 160; ++off) {
    offsets.push_back(off);
    offsets.push_back(4096 + off);
  }
  // ~900 in CI (about 35 s); CERTGATE_FLIPS=N for a longer run (N=0: every byte).
  const long wanted = getenv("CERTGATE_FLIPS") != nullptr ? atol(getenv("CERTGATE_FLIPS")) : 900;
  const size_t stride =
      wanted <= 0 ? 1 : std::max<size_t>(1, used / static_cast<size_t>(wanted)) | 1;  // odd
  for (size_t off = 8192; off < used; off += stride) offsets.push_back(off);
  if (const char *only = getenv("CERTGATE_FLIP_OFFSETS")) {  // to look at one
    offsets.clear();
    std::istringstream in(only);
    for (size_t off; in >> off;) offsets.push_back(off);
  }

  const auto start = std::chrono::steady_clock::now();
  int denied_before = 0, revoked_after = 0, moved = 0;
  std::vector<std::string> failures;
  for (size_t i = 0; i < offsets.size(); ++i) {
    std::string damaged = pristine_;
    damaged[offsets[i]] =
        static_cast<char>(damaged[offsets[i]] ^ (offsets[i] % 2 == 0 ? 0x01 : 0xA5));
    InstallUsed(damaged, used);
    const int outcome = Probe();
    if (outcome < 0) {
      failures.push_back("offset " + std::to_string(offsets[i]) + ": killed by signal " +
                         std::to_string(-outcome));
    } else if (outcome & (kAllowed | kOpenFailed)) {
      failures.push_back("offset " + std::to_string(offsets[i]) +
                         ((outcome & kAllowed) ? ": the revoked certificate was good"
                                               : ": the cache could not be opened"));
    } else {
      denied_before += (outcome & kDeniedBeforePreload) != 0;
      revoked_after += (outcome & kRevokedAfterPreload) != 0;
      moved += (outcome & kMovedAside) != 0;
    }
    if (failures.size() > 20) break;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::string all;
  for (const std::string &f : failures) all += f + "\n";
  EXPECT_TRUE(failures.empty()) << all;
  EXPECT_EQ(revoked_after, static_cast<int>(offsets.size()));
  RecordProperty("flips", static_cast<int>(offsets.size()));
  std::printf("[ flips    ] %zu offsets of %zu bytes in use in %.1f s: %d moved aside\n",
              offsets.size(), used, seconds, moved);
}

TEST_F(RevocationDamageTest, TruncatedOrEmptyStoresAreDetectedAndRebuilt) {
  const size_t used = UsedBytes(cache_);
  ASSERT_GT(used, 4096u * 8);
  for (size_t size :
       {size_t{0}, size_t{100}, size_t{4096}, size_t{8192}, size_t{12288}, used / 2, used - 4096}) {
    Install(pristine_.substr(0, size));
    const int outcome = Probe();
    ASSERT_GE(outcome, 0) << "truncated to " << size << ": killed by signal " << -outcome;
    EXPECT_FALSE(outcome & (kAllowed | kOpenFailed)) << "truncated to " << size;
    EXPECT_TRUE(outcome & kRevokedAfterPreload) << "truncated to " << size;
    if (size != 0) EXPECT_TRUE(outcome & kMovedAside) << "truncated to " << size;
  }
}

// The reproduction of the issue: one byte in meta page 1 killed mdb_env_open
// with SIGBUS.
TEST_F(RevocationDamageTest, AByteOfMetaPageOneIsDetectedNotSigbus) {
  std::string damaged = pristine_;
  damaged[4138] = static_cast<char>(damaged[4138] ^ 0x40);
  Install(damaged);
  const int outcome = Probe();
  ASSERT_GE(outcome, 0) << "killed by signal " << -outcome;
  EXPECT_TRUE(outcome & kMovedAside);
  EXPECT_TRUE(outcome & kRevokedAfterPreload);
}

// Raw LMDB, as an outside program would: the revoked serial deleted.
void WithRawStore(const std::string &dir, const std::function<void(MDB_txn *, MDB_env *)> &fn) {
  MDB_env *env = nullptr;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  mdb_env_set_mapsize(env, size_t{4} << 30);
  ASSERT_EQ(mdb_env_open(env, dir.c_str(), 0, 0600), 0);
  MDB_txn *txn = nullptr;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  fn(txn, env);
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

TEST_F(RevocationDamageTest, ADeletedSerialIsDetectedAndTheStoreRebuilt) {
  WithRawStore(cache_, [&](MDB_txn *txn, MDB_env *) {
    MDB_dbi serial = 0;
    ASSERT_EQ(mdb_dbi_open(txn, "serial", 0, &serial), 0);
    MDB_cursor *cursor = nullptr;
    ASSERT_EQ(mdb_cursor_open(txn, serial, &cursor), 0);
    bool negative = false;
    const std::string magnitude = SerialMagnitude(alice_.cert.get(), &negative);
    MDB_val k, v;
    int deleted = 0;
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
      std::string_view key(static_cast<char *>(k.mv_data), k.mv_size);
      if (key.size() == 10 + magnitude.size() && key.substr(10) == magnitude) {
        ASSERT_EQ(mdb_cursor_del(cursor, 0), 0);
        ++deleted;
        break;
      }
    }
    mdb_cursor_close(cursor);
    ASSERT_EQ(deleted, 1);
  });
  Reopen();
  RevocationAnswer answer = CheckLeaf(alice_);
  EXPECT_EQ(answer.status, RevocationStatus::kUnknown);
  EXPECT_THAT(answer.detail, HasSubstr("is damaged"));
  EXPECT_THAT(answer.detail, HasSubstr("3000 serials where its record says 3001"));
  // A server's preload (at start, and its rescans) ingests the file again into
  // the new store.
  ASSERT_TRUE(checker_->Preload({crl_path_}, trust_.get()).ok());
  EXPECT_EQ(CheckLeaf(alice_).status, RevocationStatus::kRevoked);
  EXPECT_EQ(CountAside(cache_), 1);
}

// Format 2 kept a partition's CRL under the bare issuer id, where format 3
// keeps the full CRL (issue 11 §5): such a store is rebuilt, never read.
TEST_F(RevocationDamageTest, AFormat2StoreFromBeforePartitionKeysIsRebuilt) {
  WithRawStore(cache_, [&](MDB_txn *txn, MDB_env *) {
    MDB_dbi meta = 0;
    ASSERT_EQ(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    MDB_val k{6, const_cast<char *>("format")},
        v{27, const_cast<char *>("certgate-revocation-cache 2")};
    ASSERT_EQ(mdb_put(txn, meta, &k, &v, 0), 0);
  });
  ::testing::internal::CaptureStderr();
  Reopen();
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, HasSubstr("written by another version of certgate (format "
                             "\"certgate-revocation-cache 2\")"));
  EXPECT_THAT(log, HasSubstr("moved it aside to " + cache_ + "/data.mdb.corrupt-"));
  EXPECT_EQ(CheckLeaf(alice_).status, RevocationStatus::kUnknown);  // empty until preloaded
  ASSERT_TRUE(checker_->Preload({crl_path_}, trust_.get()).ok());
  EXPECT_EQ(CheckLeaf(alice_).status, RevocationStatus::kRevoked);
}

TEST_F(RevocationDamageTest, AStoreOfAnotherVersionOrAForeignOneIsRebuilt) {
  // Another version: its format record says so.
  WithRawStore(cache_, [&](MDB_txn *txn, MDB_env *) {
    MDB_dbi meta = 0;
    ASSERT_EQ(mdb_dbi_open(txn, "meta", 0, &meta), 0);
    MDB_val k{6, const_cast<char *>("format")},
        v{27, const_cast<char *>("certgate-revocation-cache 1")};
    ASSERT_EQ(mdb_put(txn, meta, &k, &v, 0), 0);
  });
  ::testing::internal::CaptureStderr();
  Reopen();
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(log, HasSubstr("written by another version of certgate"));
  EXPECT_THAT(log, HasSubstr("moved it aside to " + cache_ + "/data.mdb.corrupt-"));
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;    // one line
  EXPECT_EQ(CheckLeaf(alice_).status, RevocationStatus::kUnknown);  // empty until preloaded
  ASSERT_TRUE(checker_->Preload({crl_path_}, trust_.get()).ok());
  EXPECT_EQ(CheckLeaf(alice_).status, RevocationStatus::kRevoked);

  // A foreign LMDB file: plain keys in its main table, no format.
  checker_.reset();
  std::filesystem::remove(cache_ + "/data.mdb");
  std::filesystem::remove(cache_ + "/lock.mdb");
  WithRawStore(cache_, [&](MDB_txn *txn, MDB_env *) {
    MDB_dbi main = 0;
    ASSERT_EQ(mdb_dbi_open(txn, nullptr, 0, &main), 0);
    MDB_val k{3, const_cast<char *>("crl")}, v{5, const_cast<char *>("hello")};
    ASSERT_EQ(mdb_put(txn, main, &k, &v, 0), 0);
  });
  ::testing::internal::CaptureStderr();
  Reopen();
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), HasSubstr("is damaged"));
  ASSERT_TRUE(checker_->Preload({crl_path_}, trust_.get()).ok());
  EXPECT_EQ(CheckLeaf(alice_).status, RevocationStatus::kRevoked);
  EXPECT_EQ(CountAside(cache_), 2);
}

// Several processes find the same damage: exactly one moves it aside, the
// others open the new store.
TEST_F(RevocationDamageTest, OfManyProcessesExactlyOneMovesTheStoreAside) {
  std::string damaged = pristine_;
  damaged[4138] = static_cast<char>(damaged[4138] ^ 0x40);
  Install(damaged);
  std::vector<pid_t> children;
  for (int i = 0; i < 6; ++i) {
    const pid_t pid = fork();
    if (pid == 0) {
      const int null = open("/dev/null", O_WRONLY);
      if (null >= 0) dup2(null, STDERR_FILENO);
      auto opened = RevocationChecker::Open(cache_, clock_);
      if (!opened.ok()) _exit(2);
      (void)opened.value()->Preload({crl_path_}, trust_.get());
      auto answers = opened.value()->Check(Evidence(alice_), policy_);
      const bool revoked = !answers.empty() && answers[0].status == RevocationStatus::kRevoked;
      opened.value().release();
      _exit(revoked ? 0 : 1);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "status " << status;
  }
  EXPECT_EQ(CountAside(cache_), 1);
}

// A process that has the store open follows another's repair: it opens the
// new data.mdb instead of serving the one moved aside.
TEST_F(RevocationDamageTest, AnOpenStoreFollowsAnotherProcesssRepair) {
  Reopen();
  ASSERT_EQ(CheckLeaf(alice_).status, RevocationStatus::kRevoked);
  const pid_t pid = fork();
  if (pid == 0) {
    auto store = RevocationStore::Open(cache_);
    if (!store.ok()) _exit(2);
    store.value()->ReportDamage("a drill");
    _exit(store.value()->Repair().ok() ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(CountAside(cache_), 1);
  // Within a second it reads the new, empty store: no longer the old data.
  RevocationStatus status_now = RevocationStatus::kRevoked;
  for (int i = 0; i < 40 && status_now == RevocationStatus::kRevoked; ++i) {
    usleep(50000);
    status_now = CheckLeaf(alice_).status;
  }
  EXPECT_EQ(status_now, RevocationStatus::kUnknown);
}

TEST_F(RevocationDamageTest, AStoreOthersMayWriteIsRefused) {
  chmod((cache_ + "/data.mdb").c_str(), 0666);
  auto opened = RevocationChecker::Open(cache_, clock_);
  ASSERT_FALSE(opened.ok());
  EXPECT_THAT(opened.status().message(), HasSubstr("writable by group or others"));
  chmod((cache_ + "/data.mdb").c_str(), 0600);
  chmod(cache_.c_str(), 0777);
  opened = RevocationChecker::Open(cache_, clock_);
  ASSERT_FALSE(opened.ok());
  EXPECT_THAT(opened.status().message(), HasSubstr("writable by group or others"));
  chmod(cache_.c_str(), 0700);
  std::filesystem::rename(cache_ + "/data.mdb", dir_ + "/elsewhere.mdb");
  std::filesystem::create_symlink(dir_ + "/elsewhere.mdb", cache_ + "/data.mdb");
  opened = RevocationChecker::Open(cache_, clock_);
  ASSERT_FALSE(opened.ok());
  EXPECT_THAT(opened.status().message(), HasSubstr("is a symbolic link"));
}

}  // namespace
}  // namespace certgate
