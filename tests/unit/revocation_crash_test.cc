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
}

}  // namespace
}  // namespace certgate::testing
