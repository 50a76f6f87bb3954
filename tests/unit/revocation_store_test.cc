// The revocation cache without a network: CRL parsing, trust checks, ingest,
// preload of certgate_crl files, cache-only lookups, max_stale, reopen.
#include <fcntl.h>
#include <gmock/gmock.h>
#include <sys/stat.h>

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

// The store keeps one CRL per issuer: crlNumber is compared per issuer, so an
// older CRL of another partition (IDP scope) cannot replace a newer one.
TEST_F(RevocationStoreTest, AnOlderCrlOfAnotherScopeIsRefusedAsARollback) {
  const std::string a = "http://pki.example/a.crl", b = "http://pki.example/b.crl";
  pki::Issued alice = Leaf("alice", {a});
  auto newer = pki_->Crl(issuing_, {{Serial(alice), kRevNow - 60, kKeyCompromise}}, 9,
                         kRevNow - 3600, kRevNow + kRevDay, "sha256", {a});
  auto older = pki_->Crl(issuing_, {}, 4, kRevNow - 7200, kRevNow + kRevDay, "sha256", {b});
  ASSERT_TRUE(newer && older) << pki_->last_error();
  ASSERT_TRUE(Ingest(newer.get(), issuing_.cert.get()).ok());
  Result<IngestResult> rolled = Ingest(older.get(), issuing_.cert.get());
  ASSERT_FALSE(rolled.ok());
  EXPECT_THAT(rolled.status().message(), HasSubstr("rolled back: crlNumber 4 < cached 9"));
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);

  // The same number for another partition does take the issuer's place.
  auto same = pki_->Crl(issuing_, {}, 9, kRevNow - 3600, kRevNow + kRevDay, "sha256", {b});
  Result<IngestResult> switched = Ingest(same.get(), issuing_.cert.get());
  ASSERT_TRUE(switched.ok()) << switched.status().message();
  EXPECT_EQ(switched->outcome, IngestResult::Outcome::kStored);
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
