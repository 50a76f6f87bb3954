// The revocation cache without a network: CRL parsing, trust checks, ingest,
// preload of certgate_crl files, cache-only lookups, max_stale, reopen.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <sys/stat.h>

#include <cctype>
#include <fstream>

#include "revocation/crl.h"
#include "revocation/store.h"
#include "revocation_test_pki.h"

namespace certgate {
namespace {

using ::testing::HasSubstr;
using testing::kRevDay;
using testing::kRevNow;
using Revoked = pki::PkiBuilder::Revoked;

constexpr int kKeyCompromise = 1;

class RevocationStoreTest : public testing::RevocationFixture {};

TEST_F(RevocationStoreTest, PreloadedCrlRevokesWithSourceDateAndReason) {
  pki::Issued alice = Leaf("alice");
  auto crl = IssuingCrl({{Serial(alice), kRevNow - 7200, kKeyCompromise}}, 821);
  std::string path = WriteCrl("issuing.crl", crl.get());
  auto trust = Trust(/*with_issuing=*/true);
  Status status = checker_->Preload({path}, trust.get());
  ASSERT_TRUE(status.ok()) << status.message();

  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_EQ(answer.depth, 0);
  EXPECT_EQ(answer.source, "crl " + path + " crl_number=821");
  EXPECT_EQ(answer.revoked_at, kRevNow - 7200);
  EXPECT_EQ(answer.reason, "keyCompromise");
  EXPECT_FALSE(answer.fetch_pending);
}

TEST_F(RevocationStoreTest, NotListedIsGood) {
  pki::Issued alice = Leaf("alice"), bob = Leaf("bob");
  auto crl = IssuingCrl({{Serial(bob), kRevNow - 7200, -1}}, 3);
  auto trust = Trust(true);
  ASSERT_TRUE(checker_->Preload({WriteCrl("issuing.crl", crl.get())}, trust.get()).ok());
  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kGood);
  EXPECT_THAT(answer.source, HasSubstr("crl_number=3"));
  RevocationAnswer revoked = CheckLeaf(bob);
  EXPECT_EQ(revoked.status, RevocationStatus::kRevoked);
  EXPECT_EQ(revoked.reason, "");  // no CRLReason in the entry
}

TEST_F(RevocationStoreTest, PemCrlsAndDirectoriesArePreloaded) {
  pki::Issued alice = Leaf("alice");
  auto crl = IssuingCrl({{Serial(alice), kRevNow - 60, 4}}, 9);
  WriteCrl("issuing.pem", crl.get(), /*pem=*/true);
  auto trust = Trust(true);
  Status status = checker_->Preload({dir_ + "/crls"}, trust.get());
  ASSERT_TRUE(status.ok()) << status.message();
  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_EQ(answer.reason, "superseded");
}

// A PEM bundle of the root's and the issuing CA's CRLs, as nginx's ssl_crl takes
// it: every CRL is stored, and the file's record names each.
TEST_F(RevocationStoreTest, PemBundleOfSeveralCrlsPreloadsEveryOne) {
  SetPolicy("revocation_scope", {"chain"});
  pki::Issued alice = Leaf("alice");
  auto issuing_crl = IssuingCrl({{Serial(alice), kRevNow - 60, kKeyCompromise}}, 3);
  auto root_crl =
      pki_->Crl(root_, {{Serial(issuing_), kRevNow - 60, 2}}, 8, kRevNow - 60, kRevNow + kRevDay);
  const std::string path = dir_ + "/crls/bundle.pem";
  ASSERT_TRUE(pki::WriteFile(path, pki::ToPem(root_crl.get()) + pki::ToPem(issuing_crl.get())));
  Status status = checker_->Preload({path}, Trust(true).get());
  ASSERT_TRUE(status.ok()) << status.message();
  std::vector<RevocationAnswer> answers = checker_->Check(Evidence(alice), policy_);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].status, RevocationStatus::kRevoked);
  EXPECT_EQ(answers[0].reason, "keyCompromise");
  EXPECT_EQ(answers[1].status, RevocationStatus::kRevoked);
  EXPECT_EQ(answers[1].reason, "cACompromise");
  std::string all;
  for (const std::string &line : checker_->List()) all += line + "\n";
  EXPECT_THAT(all, HasSubstr("CRL 1 of 2: stored crl_number=8 entries=1; "
                             "CRL 2 of 2: stored crl_number=3 entries=1"));
}

// Only the root is trusted: the bundle's root CRL is stored at once, the
// issuing CA's when a chain brings its issuer; the file is then complete.
TEST_F(RevocationStoreTest, BundleWithAnIntermediateCrlCompletesWhenAChainBringsItsIssuer) {
  pki::Issued alice = Leaf("alice");
  auto issuing_crl = IssuingCrl({{Serial(alice), kRevNow - 60, kKeyCompromise}}, 3);
  auto root_crl = pki_->Crl(root_, {}, 8, kRevNow - 60, kRevNow + kRevDay);
  const std::string path = dir_ + "/crls/bundle.pem";
  ASSERT_TRUE(pki::WriteFile(path, pki::ToPem(root_crl.get()) + pki::ToPem(issuing_crl.get())));
  ASSERT_TRUE(checker_->Preload({path}, Trust(false).get()).ok());
  std::string all;
  for (const std::string &line : checker_->List()) all += line + "\n";
  EXPECT_THAT(all, HasSubstr("CRL 1 of 2: stored crl_number=8 entries=0; CRL 2 of 2: waiting for "
                             "a chain with issuer CN=Rev Issuing CA,O=Example"));
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kUnknown);
  ASSERT_TRUE(checker_->WaitForFetches(Evidence(alice), std::chrono::seconds(5)));
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);
}

// One bad CRL in a bundle refuses the file, naming which; nothing of it is taken.
TEST_F(RevocationStoreTest, BundleWithABadCrlOrANonCrlBlockIsRefusedNamingIt) {
  pki::Issued alice = Leaf("alice");
  const std::string good = pki::ToPem(IssuingCrl({{Serial(alice), kRevNow - 60, 1}}, 3).get());
  const std::string path = dir_ + "/crls/bundle.pem";
  std::string garbled = good;
  garbled.replace(garbled.find('\n') + 1, 8, "AAAAAAAA");  // valid base64, not a CRL
  ASSERT_TRUE(pki::WriteFile(path, good + garbled));
  Status status = checker_->Preload({path}, Trust(true).get());
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(path + ": CRL 2 of 2: "));
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kUnknown);

  ASSERT_TRUE(pki::WriteFile(path, good + alice.Pem()));
  status = checker_->Preload({path}, Trust(true).get());
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr("PEM block 2 is \"CERTIFICATE\", not \"X509 CRL\""));
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kUnknown);
}

TEST_F(RevocationStoreTest, IntermediateCrlIsIngestedWhenAChainBringsItsIssuer) {
  pki::Issued alice = Leaf("alice");
  auto crl = IssuingCrl({{Serial(alice), kRevNow - 60, kKeyCompromise}}, 1);
  auto trust = Trust(/*with_issuing=*/false);  // only the root is trusted
  ASSERT_TRUE(checker_->Preload({WriteCrl("issuing.crl", crl.get())}, trust.get()).ok());
  RevocationAnswer first = CheckLeaf(alice);
  EXPECT_EQ(first.status, RevocationStatus::kUnknown);
  EXPECT_TRUE(first.fetch_pending);
  ASSERT_TRUE(checker_->WaitForFetches(Evidence(alice), std::chrono::seconds(5)));
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);
}

TEST_F(RevocationStoreTest, NoDataInCacheOnlyIsUnknownAndSaysWhy) {
  pki::Issued alice = Leaf("alice", {"http://pki.example/issuing.crl"});
  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kUnknown);
  EXPECT_FALSE(answer.fetch_pending);
  EXPECT_THAT(answer.detail, HasSubstr("mode=cache_only"));
  EXPECT_THAT(answer.detail, HasSubstr("no CRL cached"));
  EXPECT_THAT(answer.detail, HasSubstr("http://pki.example/issuing.crl: not fetched yet"));
  EXPECT_THAT(answer.detail, HasSubstr("cache_only: nothing is fetched"));
}

TEST_F(RevocationStoreTest, OffChecksNothing) {
  SetPolicy("revocation", {"off"});
  EXPECT_TRUE(checker_->Check(Evidence(Leaf("alice")), policy_).empty());
}

TEST_F(RevocationStoreTest, ChainScopeChecksEveryCertButTheAnchor) {
  SetPolicy("revocation_scope", {"chain"});
  pki::Issued alice = Leaf("alice");
  auto leaf_crl = IssuingCrl({}, 1);
  auto root_crl =
      pki_->Crl(root_, {{Serial(issuing_), kRevNow - 60, 2}}, 7, kRevNow - 60, kRevNow + kRevDay);
  auto trust = Trust(true);
  ASSERT_TRUE(checker_
                  ->Preload({WriteCrl("a.crl", leaf_crl.get()), WriteCrl("b.crl", root_crl.get())},
                            trust.get())
                  .ok());
  std::vector<RevocationAnswer> answers = checker_->Check(Evidence(alice), policy_);
  ASSERT_EQ(answers.size(), 2u);
  EXPECT_EQ(answers[0].status, RevocationStatus::kGood);
  EXPECT_EQ(answers[1].status, RevocationStatus::kRevoked);
  EXPECT_EQ(answers[1].depth, 1);
  EXPECT_EQ(answers[1].reason, "cACompromise");
}

TEST_F(RevocationStoreTest, CrlFromAnotherCaIsRefusedAndTheOldOneKept) {
  pki::Issued alice = Leaf("alice");
  auto good = IssuingCrl({{Serial(alice), kRevNow - 60, kKeyCompromise}}, 5);
  ASSERT_TRUE(Ingest(good.get(), issuing_.cert.get()).ok());

  // Same issuer name, another key.
  pki::Issued other_root = pki_->SelfSigned(pki::PkiBuilder::CaSpec("CN=Other Root,O=Example"));
  pki::Issued impostor =
      pki_->Issue(other_root, pki::PkiBuilder::CaSpec("CN=Rev Issuing CA,O=Example"));
  auto forged = pki_->Crl(impostor, {}, 99, kRevNow - 60, kRevNow + kRevDay);
  Result<IngestResult> refused = Ingest(forged.get(), issuing_.cert.get());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("signature does not verify"));

  // Another issuer's name altogether.
  auto foreign = pki_->Crl(other_root, {}, 100, kRevNow - 60, kRevNow + kRevDay);
  Result<IngestResult> wrong_name = Ingest(foreign.get(), issuing_.cert.get());
  ASSERT_FALSE(wrong_name.ok());
  EXPECT_THAT(wrong_name.status().message(), HasSubstr("issued by CN=Other Root"));

  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_THAT(answer.source, HasSubstr("crl_number=5"));
}

TEST_F(RevocationStoreTest, RolledBackCrlNumberIsRefusedAndTheNewerKept) {
  pki::Issued alice = Leaf("alice");
  ASSERT_TRUE(Ingest(IssuingCrl({{Serial(alice), kRevNow - 60, kKeyCompromise}}, 5).get(),
                     issuing_.cert.get())
                  .ok());
  Result<IngestResult> old = Ingest(IssuingCrl({}, 3).get(), issuing_.cert.get());
  ASSERT_FALSE(old.ok());
  EXPECT_THAT(old.status().message(), HasSubstr("rolled back: crlNumber 3 < cached 5"));
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);

  // The same number again is "unchanged"; a higher one replaces it.
  Result<IngestResult> same = Ingest(
      IssuingCrl({{Serial(alice), kRevNow - 60, kKeyCompromise}}, 5).get(), issuing_.cert.get());
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->outcome, IngestResult::Outcome::kUnchanged);
  Result<IngestResult> newer = Ingest(IssuingCrl({}, 6).get(), issuing_.cert.get());
  ASSERT_TRUE(newer.ok()) << newer.status().message();
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kGood);
}

// Partitioned CRLs (issue 11 §5): one record per (issuer, IDP scope), so a
// partition's CRL does not evict another's; crlNumbers are compared per scope
// (RFC 5280 §5.2.3), every full CRL of the issuer sharing one sequence.
TEST_F(RevocationStoreTest, PartitionsAreKeptSideBySideWithRollbackPerScope) {
  const std::string a = "http://pki.example/a.crl", b = "http://pki.example/b.crl";
  pki::Issued alice = Leaf("alice", {a});
  pki::Issued bob = Leaf("bob", {b});
  pki::Issued carol = Leaf("carol", {"http://pki.example/full.crl"});
  auto a9 = pki_->Crl(issuing_, {{Serial(alice), kRevNow - 60, kKeyCompromise}}, 9, kRevNow - 3600,
                      kRevNow + kRevDay, "sha256", {a});
  ASSERT_TRUE(a9) << pki_->last_error();
  ASSERT_TRUE(Ingest(a9.get(), issuing_.cert.get()).ok());
  // Partition a's CRL is no word on bob (partition b), which it does not list.
  RevocationAnswer bob_before = CheckLeaf(bob);
  EXPECT_EQ(bob_before.status, RevocationStatus::kUnknown);
  EXPECT_THAT(bob_before.detail, HasSubstr("covers only the distribution point " + a));

  // Partition b numbers its CRLs on its own: a lower number is no rollback.
  auto b4 = pki_->Crl(issuing_, {}, 4, kRevNow - 7200, kRevNow + kRevDay, "sha256", {b});
  ASSERT_TRUE(b4) << pki_->last_error();
  Result<IngestResult> stored_b = Ingest(b4.get(), issuing_.cert.get());
  ASSERT_TRUE(stored_b.ok()) << stored_b.status().message();
  EXPECT_EQ(stored_b->outcome, IngestResult::Outcome::kStored);
  // Both kept: alice's partition was not evicted by bob's.
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);
  RevocationAnswer bob_after = CheckLeaf(bob);
  EXPECT_EQ(bob_after.status, RevocationStatus::kGood);
  EXPECT_EQ(bob_after.source, "crl test crl_number=4");

  // Within one partition, an older CRL is a rollback (a replay of partition
  // a's old CRL lands in a's record, whatever URL brought it).
  auto a8 = pki_->Crl(issuing_, {}, 8, kRevNow - 7200, kRevNow + kRevDay, "sha256", {a});
  Result<IngestResult> rolled = Ingest(a8.get(), issuing_.cert.get());
  ASSERT_FALSE(rolled.ok());
  EXPECT_THAT(rolled.status().message(), HasSubstr("rolled back: crlNumber 8 < cached 9"));
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);

  // Full CRLs (no IDP) share one issuer-wide sequence, apart from the partitions.
  ASSERT_TRUE(Ingest(IssuingCrl({}, 12).get(), issuing_.cert.get()).ok());
  Result<IngestResult> full_rolled = Ingest(IssuingCrl({}, 10).get(), issuing_.cert.get());
  ASSERT_FALSE(full_rolled.ok());
  EXPECT_THAT(full_rolled.status().message(), HasSubstr("rolled back: crlNumber 10 < cached 12"));
  // A full CRL covers every certificate; a partition's own CRL comes first.
  EXPECT_EQ(CheckLeaf(carol).status, RevocationStatus::kGood);
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);

  // Three records, each listed with the distribution point it covers.
  std::string all;
  for (const std::string &line : checker_->List()) all += line + "\n";
  EXPECT_THAT(all, HasSubstr(" dp=" + a + " crl_number=9 "));
  EXPECT_THAT(all, HasSubstr(" dp=" + b + " crl_number=4 "));
  EXPECT_THAT(all, HasSubstr(" dp=all crl_number=12 "));
}

// Delta CRLs of a partitioned CA: each partition's delta beside its own base.
TEST_F(RevocationStoreTest, APartitionsDeltaIsKeptBesideThatPartitionsBase) {
  const std::string a = "http://pki.example/a.crl", b = "http://pki.example/b.crl";
  const std::string a_delta = "http://pki.example/a+.crl";
  pki::Issued alice = Leaf("alice", {a});
  pki::Issued bob = Leaf("bob", {b});
  auto a10 = pki_->Crl(issuing_, {}, 10, kRevNow - 3600, kRevNow + kRevDay, "sha256", {a});
  auto a11 = pki_->Crl(issuing_, {{Serial(alice), kRevNow - 60, kKeyCompromise}}, 11, kRevNow - 600,
                       kRevNow + kRevDay, "sha256", {a});
  auto b20 = pki_->Crl(issuing_, {}, 20, kRevNow - 3600, kRevNow + kRevDay, "sha256", {b});
  ASSERT_TRUE(a10 && a11 && b20) << pki_->last_error();
  ASSERT_TRUE(pki_->AddDeltaExtensions(a10.get(), issuing_, -1, {a_delta}));
  ASSERT_TRUE(pki_->AddDeltaExtensions(a11.get(), issuing_, 10, {}));
  ASSERT_TRUE(Ingest(a10.get(), issuing_.cert.get()).ok());
  ASSERT_TRUE(Ingest(b20.get(), issuing_.cert.get()).ok());
  Result<IngestResult> delta = Ingest(a11.get(), issuing_.cert.get());
  ASSERT_TRUE(delta.ok()) << delta.status().message();
  RevocationAnswer alice_answer = CheckLeaf(alice);
  EXPECT_EQ(alice_answer.status, RevocationStatus::kRevoked);
  EXPECT_EQ(alice_answer.source, "crl test crl_number=10 delta=11");
  RevocationAnswer bob_answer = CheckLeaf(bob);
  EXPECT_EQ(bob_answer.status, RevocationStatus::kGood);
  EXPECT_EQ(bob_answer.source, "crl test crl_number=20");
  std::string all;
  for (const std::string &line : checker_->List()) all += line + "\n";
  EXPECT_THAT(all, HasSubstr(" dp=" + a + " crl_number=11 base=10 "));
}

// A full CRL's key is the bare issuer id, whose last byte may be '+', the
// delta suffix (1 issuer in 256): the record, not its key, says "delta".
TEST_F(RevocationStoreTest, AnIssuerIdEndingInPlusIsNoDelta) {
  for (int i = 0; i < 8192 && IssuerId(issuing_.cert.get()).back() != '+'; ++i) {
    issuing_ = pki_->Issue(root_, pki::PkiBuilder::CaSpec("CN=Rev Issuing CA,O=Example"));
    ASSERT_TRUE(issuing_) << pki_->last_error();
  }
  ASSERT_EQ(IssuerId(issuing_.cert.get()).back(), '+');
  pki::Issued alice = Leaf("alice", {"http://pki.example/full.crl"});
  pki::Issued bob = Leaf("bob", {"http://pki.example/full.crl"});
  ASSERT_TRUE(Ingest(IssuingCrl({{Serial(alice), kRevNow - 60, kKeyCompromise}}, 3).get(),
                     issuing_.cert.get())
                  .ok());
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);
  EXPECT_EQ(CheckLeaf(bob).status, RevocationStatus::kGood);
}

TEST_F(RevocationStoreTest, BadBodiesAreRefusedNamingTheDefect) {
  Result<ParsedCrl> html = ParseCrl("<!DOCTYPE html><html><body>Proxy login</body></html>");
  ASSERT_FALSE(html.ok());
  EXPECT_THAT(html.status().message(), HasSubstr("the body is text (\"<!DOCTYPE html>"));

  std::string der = pki::ToDer(IssuingCrl({{1234, kRevNow, -1}}, 1).get());
  Result<ParsedCrl> truncated = ParseCrl(der.substr(0, der.size() - 10));
  ASSERT_FALSE(truncated.ok());
  EXPECT_THAT(truncated.status().message(), HasSubstr("truncated"));

  Result<ParsedCrl> trailing = ParseCrl(der + "xx");
  ASSERT_FALSE(trailing.ok());

  Result<ParsedCrl> empty = ParseCrl("");
  ASSERT_FALSE(empty.ok());

  // A flipped bit in the signed part: parses, does not verify.
  std::string tampered = der;
  tampered[tampered.size() / 3] ^= 0x01;
  Result<ParsedCrl> parsed = ParseCrl(tampered);
  if (parsed.ok()) EXPECT_FALSE(VerifyCrl(parsed.value(), issuing_.cert.get()).ok());
}

TEST_F(RevocationStoreTest, CorruptPreloadFileFailsWithItsPath) {
  std::string path = dir_ + "/crls/bad.crl";
  ASSERT_TRUE(pki::WriteFile(path, "<html>oops</html>"));
  Status status = checker_->Preload({path}, Trust(true).get());
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(), HasSubstr(path));
  EXPECT_THAT(status.message(), HasSubstr("not a CRL"));
}

TEST_F(RevocationStoreTest, ThisUpdateInTheFutureIsRefused) {
  auto future = pki_->Crl(issuing_, {}, 1, kRevNow + 3600, kRevNow + kRevDay);
  Result<IngestResult> refused = Ingest(future.get(), issuing_.cert.get());
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(refused.status().message(), HasSubstr("in the future"));
}

TEST_F(RevocationStoreTest, PastNextUpdateIsUsedWithinMaxStaleThenStale) {
  SetPolicy("max_stale", {"1h"});
  pki::Issued alice = Leaf("alice"), bob = Leaf("bob");
  ASSERT_TRUE(
      Ingest(IssuingCrl({{Serial(bob), kRevNow - 60, kKeyCompromise}}, 1, kRevNow + kRevDay).get(),
             issuing_.cert.get())
          .ok());
  clock_.Set(kRevNow + kRevDay + 1800);
  RevocationAnswer within = CheckLeaf(alice);
  EXPECT_EQ(within.status, RevocationStatus::kGood);
  EXPECT_THAT(within.detail, HasSubstr("nextUpdate"));
  EXPECT_EQ(CheckLeaf(bob).status, RevocationStatus::kRevoked);

  clock_.Set(kRevNow + kRevDay + 7200);
  RevocationAnswer beyond = CheckLeaf(alice);
  EXPECT_EQ(beyond.status, RevocationStatus::kStale);
  EXPECT_THAT(beyond.detail, HasSubstr("certgate_max_stale"));
  EXPECT_THAT(beyond.source, HasSubstr("crl_number=1"));         // which data went stale
  EXPECT_EQ(CheckLeaf(bob).status, RevocationStatus::kRevoked);  // a revocation does not expire
}

TEST_F(RevocationStoreTest, CacheSurvivesReopenWithoutReparsing) {
  pki::Issued alice = Leaf("alice");
  std::string path =
      WriteCrl("issuing.crl", IssuingCrl({{Serial(alice), kRevNow - 60, 1}}, 2).get());
  auto trust = Trust(true);
  ASSERT_TRUE(checker_->Preload({path}, trust.get()).ok());
  Reopen();
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);  // no preload at all

  // A warm preload (same mtime/size) does not parse: replace the content by garbage
  // of the same size, keeping the mtime, and preload again.
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  ASSERT_TRUE(pki::WriteFile(path, std::string(static_cast<size_t>(st.st_size), 'x')));
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  Status warm = checker_->Preload({path}, trust.get());
  EXPECT_TRUE(warm.ok()) << warm.message();
}

// A preloaded CRL whose issuer is not in the trust store (an intermediate's)
// is parsed once, not at every rescan; again when the trust store changes.
TEST_F(RevocationStoreTest, AFileWaitingForItsIssuerIsNotParsedAgainUntilTheTrustChanges) {
  pki::Issued alice = Leaf("alice");
  std::string path =
      WriteCrl("issuing.crl", IssuingCrl({{Serial(alice), kRevNow - 60, 1}}, 2).get());
  auto roots_only = Trust(false);
  ASSERT_TRUE(checker_->Preload({path}, roots_only.get()).ok());
  std::string crl;
  {
    std::ifstream in(path, std::ios::binary);
    crl.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }

  // Unchanged to a stat() (size, mtime, inode), unparseable if read: a rescan
  // that parses it fails.
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  {
    std::fstream out(path, std::ios::in | std::ios::out | std::ios::binary);
    out.write(std::string(static_cast<size_t>(st.st_size), 'x').data(), st.st_size);
  }
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  Status rescan = checker_->Preload({path}, roots_only.get());
  EXPECT_TRUE(rescan.ok()) << rescan.message();

  // Another trust store (now with the issuing CA): parsed again.
  {
    std::fstream out(path, std::ios::in | std::ios::out | std::ios::binary);
    out.write(crl.data(), static_cast<std::streamsize>(crl.size()));
  }
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
  auto with_issuing = Trust(true);
  ASSERT_TRUE(checker_->Preload({path}, with_issuing.get()).ok());
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);
}

TEST_F(RevocationStoreTest, ChangedPreloadFileIsReingested) {
  pki::Issued alice = Leaf("alice");
  std::string path = WriteCrl("issuing.crl", IssuingCrl({}, 1).get());
  auto trust = Trust(true);
  ASSERT_TRUE(checker_->Preload({path}, trust.get()).ok());
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kGood);
  WriteCrl("issuing.crl", IssuingCrl({{Serial(alice), kRevNow - 60, 1}}, 2).get());
  ASSERT_TRUE(checker_->Preload({path}, trust.get()).ok());
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);
}

TEST_F(RevocationStoreTest, ReplacingACrlDropsTheOldSerials) {
  std::vector<Revoked> first, second;
  for (uint64_t s = 1; s <= 1000; ++s) first.push_back({s, kRevNow - 60, -1});
  for (uint64_t s = 5001; s <= 5500; ++s) second.push_back({s, kRevNow - 60, -1});
  ASSERT_TRUE(Ingest(IssuingCrl(first, 1).get(), issuing_.cert.get()).ok());
  Result<IngestResult> replaced = Ingest(IssuingCrl(second, 2).get(), issuing_.cert.get());
  ASSERT_TRUE(replaced.ok()) << replaced.status().message();
  EXPECT_EQ(replaced->meta.count, 500u);
  auto listing = checker_->store().List();
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->serials, 500u);
  auto read = checker_->store().Read();
  ASSERT_TRUE(read.ok());
  std::string s5001("\x13\x89", 2), s1("\x01", 1);
  EXPECT_TRUE(read->GetRevoked(replaced->meta.gen, s5001).has_value());
  EXPECT_FALSE(read->GetRevoked(replaced->meta.gen, s1).has_value());
}

TEST_F(RevocationStoreTest, ListAndPurge) {
  auto trust = Trust(true);
  ASSERT_TRUE(
      checker_
          ->Preload({WriteCrl("issuing.crl", IssuingCrl({{7, kRevNow, 1}}, 4).get())}, trust.get())
          .ok());
  std::vector<std::string> lines = checker_->List();
  std::string all;
  for (const std::string &line : lines) all += line + "\n";
  EXPECT_THAT(all, HasSubstr("crl issuer=\"CN=Rev Issuing CA,O=Example\""));
  EXPECT_THAT(all, HasSubstr("crl_number=4 entries=1"));
  EXPECT_THAT(all, HasSubstr("file " + dir_ + "/crls/issuing.crl"));
  ASSERT_TRUE(checker_->Purge().ok());
  EXPECT_EQ(CheckLeaf(Leaf("x")).status, RevocationStatus::kUnknown);
}

TEST_F(RevocationStoreTest, UnwritableCacheDirectoryIsAClearError) {
  std::string file = dir_ + "/plain-file";
  ASSERT_TRUE(pki::WriteFile(file, "x"));
  auto opened = RevocationChecker::Open(file + "/cache", clock_);
  ASSERT_FALSE(opened.ok());
  EXPECT_THAT(opened.status().message(), HasSubstr(file));
}

}  // namespace
}  // namespace certgate

namespace certgate {
namespace {

// kB of `path` this process has mapped in memory (Rss in /proc/self/smaps).
long MappedKb(const std::string &path) {
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  bool in_file = false;
  long kb = 0;
  while (std::getline(smaps, line)) {
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        line.find('-') != std::string::npos && line.find(' ') > line.find('-')) {
      in_file = line.size() >= path.size() &&
                line.compare(line.size() - path.size(), path.size(), path) == 0;
    } else if (in_file && line.rfind("Rss:", 0) == 0) {
      kb += std::stol(line.substr(4));
    }
  }
  return kb;
}

// Issue 10 §1: the once-per-process walk of a CRL's serials (their digest)
// went through LMDB's map and left every page of the CRL mapped: 11.5 MB of
// PSS in each nginx worker for a 1M-entry CRL. The walk now unmaps what it
// touched; the data, in the page cache, reads back the same.
TEST_F(RevocationStoreTest, TheWalkOfALargeCrlLeavesItsPagesUnmappedAndReadable) {
  pki::Issued alice = Leaf("alice"), bob = Leaf("bob");
  std::vector<Revoked> revoked;
  for (uint64_t s = 1; s <= 60000; ++s) revoked.push_back({s * 104729 + 11, kRevNow - 60, -1});
  revoked.push_back({Serial(alice), kRevNow - 7200, 1});
  auto opened = RevocationStore::Open(dir_ + "/walk");
  ASSERT_TRUE(opened.ok()) << opened.status().message();
  RevocationStore &store = *opened.value();
  Result<ParsedCrl> parsed = ParseCrl(pki::ToDer(IssuingCrl(revoked, 7).get()));
  ASSERT_TRUE(parsed.ok());
  Result<IngestResult> ingested =
      IngestCrl(store, parsed.value(), issuing_.cert.get(), "test", clock_.Now());
  ASSERT_TRUE(ingested.ok()) << ingested.status().message();

  auto read = store.Read();
  ASSERT_TRUE(read.ok());
  std::optional<CrlMeta> meta = read->GetCrl(IssuerId(issuing_.cert.get()));
  ASSERT_TRUE(meta.has_value());
  uint64_t count = 0;
  std::string digest;
  ASSERT_TRUE(read->DigestSerials(meta->gen, &count, &digest).ok());  // the walk, through the map
  EXPECT_EQ(count, 60001u);
  EXPECT_EQ(digest, meta->serial_digest);

  // 60,001 serials take well over 1 MB of pages (the file is larger still: it
  // keeps a 16 MB tail); a walk that left them mapped shows them all.
  const long mapped = MappedKb(dir_ + "/walk/data.mdb");
  EXPECT_LT(mapped, 256) << "kB of data.mdb still mapped after the walk";

  bool negative = false;
  EXPECT_EQ(read->FindRevoked(meta->gen, SerialMagnitude(alice.cert.get(), &negative)).kind,
            SerialLookup::kRevoked);
  EXPECT_EQ(read->FindRevoked(meta->gen, SerialMagnitude(bob.cert.get(), &negative)).kind,
            SerialLookup::kAbsent);
  ASSERT_TRUE(read->DigestSerials(meta->gen, &count, &digest).ok());  // walked again: same data
  EXPECT_EQ(digest, meta->serial_digest);
}

}  // namespace
}  // namespace certgate
