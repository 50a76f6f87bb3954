// kill -9 of a process in the middle of a large CRL ingest leaves the shared
// store usable and consistent: readers see the old CRL or the new one, never a mix.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "revocation_test_pki.h"

namespace certgate::testing {
namespace {

class RevocationCrashTest : public RevocationFixture {};

TEST_F(RevocationCrashTest, KillNineDuringIngestKeepsTheStoreConsistent) {
  const pki::Issued first = Leaf("first");
  const pki::Issued second = Leaf("second");
  auto trust = Trust(/*with_issuing=*/true);
  const std::string old_crl =
      WriteCrl("old.crl", IssuingCrl({{Serial(first), kRevNow - 60, 1}}, 1).get());
  ASSERT_TRUE(checker_->Preload({old_crl}, trust.get()).ok());
  ASSERT_EQ(CheckLeaf(first).status, RevocationStatus::kRevoked);

  // A large replacement that revokes `second` instead of `first`.
  std::vector<pki::PkiBuilder::Revoked> revoked;
  for (uint64_t i = 0; i < 300000; ++i) revoked.push_back({0x7000000000ull + i, kRevNow - 60, -1});
  revoked.push_back({Serial(second), kRevNow - 60, 1});
  const std::string big_crl = WriteCrl("big.crl", IssuingCrl(revoked, 2).get());

  // Kill the ingesting process at several moments; each time the store must be
  // readable and hold exactly one of the two CRLs.
  for (int delay_ms : {5, 40, 120}) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      auto own = RevocationChecker::Open(dir_ + "/cache", clock_);  // after fork, as workers do
      if (own.ok()) (void)own.value()->Preload({big_crl}, trust.get());
      _exit(0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);

    Reopen();
    const RevocationStatus a = CheckLeaf(first).status;
    const RevocationStatus b = CheckLeaf(second).status;
    const bool old_whole = a == RevocationStatus::kRevoked && b == RevocationStatus::kGood;
    const bool new_whole = a == RevocationStatus::kGood && b == RevocationStatus::kRevoked;
    EXPECT_TRUE(old_whole || new_whole)
        << "killed after " << delay_ms << " ms: first " << RevocationStatusName(a) << ", second "
        << RevocationStatusName(b);
  }

  // And the store still takes writes: the replacement goes in whole.
  ASSERT_TRUE(checker_->Preload({big_crl}, trust.get()).ok());
  EXPECT_EQ(CheckLeaf(first).status, RevocationStatus::kGood);
  EXPECT_EQ(CheckLeaf(second).status, RevocationStatus::kRevoked);
  // Nothing the killed ingests had staged is left: exactly the new CRL's serials.
  auto listing = checker_->store().List();
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->serials, revoked.size());
}

// What a killed ingest staged (its process is gone) is deleted by the next
// ingest; what a live process is staging is left alone.
TEST_F(RevocationCrashTest, AbandonedStagingIsSweptAndALiveOneKept) {
  const pid_t dead = fork();
  ASSERT_GE(dead, 0);
  if (dead == 0) _exit(0);
  ASSERT_EQ(waitpid(dead, nullptr, 0), dead);
  uint64_t dead_gen = 0, live_gen = 0;
  {
    auto txn = checker_->store().Write();
    ASSERT_TRUE(txn.ok());
    dead_gen = txn->NewGeneration().value();
    ASSERT_TRUE(txn->MarkStaging(dead_gen, dead).ok());
    ASSERT_TRUE(txn->PutRevoked(dead_gen, "\x05", false, RevokedEntry{kRevNow, 1}).ok());
    live_gen = txn->NewGeneration().value();
    ASSERT_TRUE(txn->MarkStaging(live_gen, getpid()).ok());
    ASSERT_TRUE(txn->PutRevoked(live_gen, "\x06", false, RevokedEntry{kRevNow, 1}).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  {
    auto txn = checker_->store().Write();
    ASSERT_TRUE(txn.ok());
    EXPECT_EQ(txn->AbandonedGenerations(), std::vector<uint64_t>{dead_gen});
  }
  ASSERT_TRUE(
      Ingest(IssuingCrl({{7, kRevNow - 60, 1}, {8, kRevNow - 60, 1}}, 1).get(), issuing_.cert.get())
          .ok());
  auto read = checker_->store().Read();
  ASSERT_TRUE(read.ok());
  EXPECT_FALSE(read->GetRevoked(dead_gen, "\x05").has_value());
  EXPECT_TRUE(read->GetRevoked(live_gen, "\x06").has_value());
  auto listing = checker_->store().List();
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->serials, 3u);  // the new CRL's two and the live staging's one
}

}  // namespace
}  // namespace certgate::testing
