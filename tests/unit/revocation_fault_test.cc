// Fault drills (issue 9 §6): the disk fills up, or the LMDB map does, while a
// CRL is ingested. Expected: an error naming it, the old CRL kept and served,
// the store not taken for damaged, no crash.
#include <gmock/gmock.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "revocation/crl.h"
#include "revocation/store.h"
#include "revocation_test_pki.h"

namespace certgate {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;
using testing::kRevNow;
using Revoked = pki::PkiBuilder::Revoked;

class RevocationFaultTest : public testing::RevocationFixture {
 protected:
  void TearDown() override {
    checker_.reset();
    if (!mounted_.empty()) umount2(mounted_.c_str(), MNT_DETACH);
    RevocationFixture::TearDown();
  }

  std::vector<Revoked> Many(size_t n, const pki::Issued &also) {
    std::vector<Revoked> revoked;
    for (uint64_t s = 1; s <= n; ++s) revoked.push_back({s * 104729 + 11, kRevNow - 60, -1});
    revoked.push_back({Serial(also), kRevNow - 7200, 1});
    return revoked;
  }

  std::string mounted_;
};

TEST_F(RevocationFaultTest, AFullMapFailsTheIngestAndKeepsServingTheOldCrl) {
  pki::Issued alice = Leaf("alice"), bob = Leaf("bob");
  auto small = RevocationStore::Open(dir_ + "/small-map", size_t{1} << 20);  // 1 MiB
  ASSERT_TRUE(small.ok()) << small.status().message();
  RevocationStore &store = *small.value();
  auto ingest = [&](X509_CRL *crl) {
    Result<ParsedCrl> parsed = ParseCrl(pki::ToDer(crl));
    EXPECT_TRUE(parsed.ok());
    return IngestCrl(store, parsed.value(), issuing_.cert.get(), "test", clock_.Now());
  };
  Result<IngestResult> first = ingest(IssuingCrl({{Serial(alice), kRevNow - 60, 1}}, 1).get());
  ASSERT_TRUE(first.ok()) << first.status().message();

  // 60,000 serials need ~3 MB of pages.
  Result<IngestResult> big = ingest(IssuingCrl(Many(60000, bob), 2).get());
  ASSERT_FALSE(big.ok());
  EXPECT_THAT(big.status().message(), HasSubstr("MDB_MAP_FULL"));
  EXPECT_FALSE(store.damaged()) << store.damage();

  auto read = store.Read();
  ASSERT_TRUE(read.ok());
  std::optional<CrlMeta> kept = read->GetCrl(IssuerId(issuing_.cert.get()));
  ASSERT_TRUE(kept.has_value());
  EXPECT_EQ(kept->crl_number_dec, "1");
  EXPECT_TRUE(read->VerifySerials(*kept).ok());
  bool negative = false;
  EXPECT_EQ(read->FindRevoked(kept->gen, SerialMagnitude(alice.cert.get(), &negative)).kind,
            SerialLookup::kRevoked);
  EXPECT_EQ(read->FindRevoked(kept->gen, SerialMagnitude(bob.cert.get(), &negative)).kind,
            SerialLookup::kAbsent);
}

// The cache on a 4 MiB tmpfs; a preloaded file replaced by a CRL too big for
// what is left. (Needs root to mount; CI runs as root.)
TEST_F(RevocationFaultTest, AFullDiskFailsTheIngestAndKeepsServingTheOldCrl) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to mount a small tmpfs";
  const std::string small = dir_ + "/small-disk";
  ASSERT_EQ(mkdir(small.c_str(), 0700), 0);
  if (mount("tmpfs", small.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=4m,mode=0700") != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs: " << strerror(errno);
  }
  mounted_ = small;
  checker_.reset();
  auto opened = RevocationChecker::Open(small + "/cache", clock_);
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  checker_ = std::move(opened).value();

  pki::Issued alice = Leaf("alice"), bob = Leaf("bob");
  const std::string path =
      WriteCrl("issuing.crl", IssuingCrl({{Serial(alice), kRevNow, 1}}, 1).get());
  auto trust = Trust(true);
  ASSERT_TRUE(checker_->Preload({path}, trust.get()).ok());
  ASSERT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);

  WriteCrl("issuing.crl", IssuingCrl(Many(150000, bob), 2).get());  // ~7 MB of pages
  Status status = checker_->Preload({path}, trust.get());
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(),
              AnyOf(HasSubstr("KiB free on its file system"), HasSubstr("No space left")));
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_FALSE(checker_->store().damaged()) << checker_->store().damage();
  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_THAT(answer.source, HasSubstr("crl_number=1"));
  EXPECT_EQ(CheckLeaf(bob).status, RevocationStatus::kGood);  // by the old CRL, still in force

  // A process started now (a worker after a restart) opens the full store fine.
  Reopen();
  checker_.reset();
  auto again = RevocationChecker::Open(small + "/cache", clock_);
  ASSERT_TRUE(again.ok()) << again.status().message();
  checker_ = std::move(again).value();
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);
}

}  // namespace
}  // namespace certgate
