// certgate_strict and CRLs (RFC 5280 §5.2.3): a CRL without a crlNumber, or
// with a critical one, is no proof of "good" under strict on (the status is
// unknown), a revocation it lists stands, and under strict off it counts with
// warning=strict_off:<check>. The store is shared by policies of both
// settings: the defect is recorded with the CRL and judged per policy.
#include <certgate/evaluator.h>
#include <certgate/strict_checks.h>
#include <gmock/gmock.h>

#include "revocation/store.h"
#include "revocation/verdict.h"
#include "revocation_test_pki.h"
#include "revocation_test_server.h"

namespace certgate {
namespace {

using ::testing::HasSubstr;
using testing::kRevDay;
using testing::kRevNow;
using ::testing::Not;
using testing::TestHttpServer;
using CrlNumberExtension = pki::PkiBuilder::CrlNumberExtension;
using Reply = TestHttpServer::Reply;

constexpr auto kWait = std::chrono::seconds(10);  // only bounds a failure

struct Defect {
  CrlNumberExtension extension;
  const char *check;  // the StrictChecks() name
  const char *words;  // what the detail says of the CRL
};

const Defect kDefects[] = {
    {CrlNumberExtension::kOmitted, "crl_without_crl_number",
     "has no crlNumber (RFC 5280 section 5.2.3)"},
    {CrlNumberExtension::kCritical, "crl_number_critical",
     "marks its crlNumber critical; RFC 5280 section 5.2.3 requires it non-critical"},
};

class RevocationStrictTest : public testing::RevocationFixture {
 protected:
  std::shared_ptr<X509_CRL> DefectiveCrl(const Defect &defect,
                                         std::vector<pki::PkiBuilder::Revoked> revoked = {},
                                         int64_t number = 7) {
    auto crl = pki_->Crl(issuing_, revoked, number, kRevNow - 3600, kRevNow + kRevDay, "sha256", {},
                         defect.extension);
    EXPECT_TRUE(crl) << pki_->last_error();
    return crl;
  }

  // Preloads `crl` as certgate_crl does; returns the file's path.
  std::string PreloadCrl(X509_CRL *crl, const std::string &name = "issuing.crl") {
    const std::string path = WriteCrl(name, crl);
    ossl::UniquePtr<X509_STORE> trust = Trust(/*with_issuing=*/true);
    Status loaded = checker_->Preload({path}, trust.get());
    EXPECT_TRUE(loaded.ok()) << loaded.message();
    return path;
  }

  // The whole decision a server makes: the chain, then revocation.
  Decision Decide(const pki::Issued &leaf) {
    ChainEvidence evidence = Evidence(leaf);
    Decision decision = Evaluate(policy_, &evidence, clock_);
    EXPECT_EQ(decision.verdict(), CG_VERDICT_ALLOW) << decision.detail();
    ApplyRevocation(policy_, checker_->Check(evidence, policy_), &decision);
    return decision;
  }

  std::string Listing() {
    std::string all;
    for (const std::string &line : checker_->List()) all += line + "\n";
    return all;
  }

  // Makes the issuer's CRL record look as a certgate from before
  // certgate_strict wrote it: without the defects it records now.
  void MakeRecordLegacy() {
    Result<RevocationStore::WriteTxn> txn = checker_->store().Write();
    ASSERT_TRUE(txn.ok()) << txn.status().message();
    const std::string id = IssuerId(issuing_.cert.get());
    std::optional<CrlMeta> meta = txn->GetCrl(id);
    ASSERT_TRUE(meta);
    meta->flags &= ~(kCrlNumberCritical | kCrlDefectsRecorded);
    ASSERT_TRUE(txn->PutCrl(id, *meta).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
};

TEST_F(RevocationStrictTest, TheTableNamesTheCrlChecksForTheDocs) {
  for (const Defect &defect : kDefects) {
    const StrictCheck &check = StrictCheckNamed(defect.check);
    EXPECT_EQ(check.reason, CG_REASON_REVOCATION_UNAVAILABLE);
    EXPECT_EQ(check.source, "RFC 5280 §5.2.3");
  }
}

TEST_F(RevocationStrictTest, ParsingRecordsTheDefects) {
  for (const Defect &defect : kDefects) {
    SCOPED_TRACE(defect.check);
    Result<ParsedCrl> parsed = ParseCrl(pki::ToDer(DefectiveCrl(defect).get()));
    ASSERT_TRUE(parsed.ok()) << parsed.status().message();
    EXPECT_NE(parsed->flags & kCrlDefectsRecorded, 0u);
    EXPECT_EQ((parsed->flags & kCrlNumberCritical) != 0,
              defect.extension == CrlNumberExtension::kCritical);
    EXPECT_EQ(parsed->crl_number_dec.empty(), defect.extension == CrlNumberExtension::kOmitted);
  }
  Result<ParsedCrl> sound = ParseCrl(pki::ToDer(IssuingCrl({}, 3).get()));
  ASSERT_TRUE(sound.ok());
  EXPECT_EQ(sound->flags & kCrlNumberCritical, 0u);
  EXPECT_NE(sound->flags & kCrlDefectsRecorded, 0u);
}

TEST_F(RevocationStrictTest, PreloadedDefectiveCrlIsNoProofOfGoodUnderStrict) {
  for (const Defect &defect : kDefects) {
    SCOPED_TRACE(defect.check);
    Reopen();
    ASSERT_TRUE(checker_->Purge().ok());
    const std::string path = PreloadCrl(DefectiveCrl(defect).get());
    pki::Issued alice = Leaf("alice");

    SetPolicy("revocation", {"hard_fail"});
    RevocationAnswer answer = CheckLeaf(alice);
    EXPECT_EQ(answer.status, RevocationStatus::kUnknown);
    EXPECT_EQ(answer.crl_defects, defect.check);
    EXPECT_THAT(answer.detail, HasSubstr("the CRL from " + path + " " + defect.words));
    Decision refused = Decide(alice);
    EXPECT_EQ(refused.verdict(), CG_VERDICT_DENY);
    EXPECT_EQ(refused.reason(), CG_REASON_REVOCATION_UNAVAILABLE);
    EXPECT_THAT(refused.detail(), HasSubstr("the CRL from " + path + " " + defect.words));
    EXPECT_THAT(refused.hint(), HasSubstr("certgate_strict off"));

    SetPolicy("revocation", {"cache_only"});
    EXPECT_EQ(Decide(alice).reason(), CG_REASON_REVOCATION_UNAVAILABLE);

    SetPolicy("revocation", {"soft_fail"});
    Decision warned = Decide(alice);
    EXPECT_EQ(warned.verdict(), CG_VERDICT_ALLOW);
    EXPECT_EQ(warned.warning(), "revocation_unknown");
    EXPECT_THAT(warned.detail(), HasSubstr(defect.words));
    EXPECT_THAT(Listing(), HasSubstr("strict_defects=" + std::string(defect.check)));
  }
}

TEST_F(RevocationStrictTest, PreloadedDefectiveCrlCountsWithAWarningUnderStrictOff) {
  for (const Defect &defect : kDefects) {
    SCOPED_TRACE(defect.check);
    Reopen();
    ASSERT_TRUE(checker_->Purge().ok());
    const std::string path = PreloadCrl(DefectiveCrl(defect).get());
    pki::Issued alice = Leaf("alice");
    SetPolicy("strict", {"off"});
    for (const char *mode : {"hard_fail", "cache_only", "soft_fail"}) {
      SCOPED_TRACE(mode);
      SetPolicy("revocation", {mode});
      RevocationAnswer answer = CheckLeaf(alice);
      EXPECT_EQ(answer.status, RevocationStatus::kGood);
      EXPECT_EQ(answer.crl_defects, defect.check);
      Decision decision = Decide(alice);
      EXPECT_EQ(decision.verdict(), CG_VERDICT_ALLOW);
      EXPECT_EQ(decision.warning(), "strict_off:" + std::string(defect.check));
      EXPECT_THAT(decision.detail(), HasSubstr("the CRL from " + path + " " + defect.words));
      EXPECT_THAT(decision.detail(), HasSubstr("accepted because certgate_strict is off"));
      EXPECT_THAT(decision.revocation(), HasSubstr("good crl " + path));
    }
  }
}

TEST_F(RevocationStrictTest, ARevocationInADefectiveCrlStandsUnderEitherSetting) {
  pki::Issued mallory = Leaf("mallory");
  for (const Defect &defect : kDefects) {
    SCOPED_TRACE(defect.check);
    Reopen();
    ASSERT_TRUE(checker_->Purge().ok());
    PreloadCrl(DefectiveCrl(defect, {{Serial(mallory), kRevNow - 60, 1}}).get());
    for (const char *strict : {"on", "off"}) {
      SCOPED_TRACE(strict);
      SetPolicy("strict", {strict});
      SetPolicy("revocation", {"soft_fail"});
      RevocationAnswer answer = CheckLeaf(mallory);
      EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
      EXPECT_EQ(answer.reason, "keyCompromise");
      Decision decision = Decide(mallory);
      EXPECT_EQ(decision.reason(), CG_REASON_REVOKED);
    }
  }
}

// One store, two locations: each judges the same CRL by its own setting.
TEST_F(RevocationStrictTest, PoliciesSharingTheStoreJudgeByTheirOwnSetting) {
  PreloadCrl(DefectiveCrl(kDefects[0]).get());
  pki::Issued alice = Leaf("alice");
  Policy strict_on, strict_off;
  ASSERT_TRUE(strict_on.Set("revocation", {"hard_fail"}).ok());
  ASSERT_TRUE(strict_off.Set("revocation", {"hard_fail"}).ok());
  ASSERT_TRUE(strict_off.Set("strict", {"off"}).ok());
  EXPECT_EQ(checker_->Check(Evidence(alice), strict_on)[0].status, RevocationStatus::kUnknown);
  EXPECT_EQ(checker_->Check(Evidence(alice), strict_off)[0].status, RevocationStatus::kGood);
  EXPECT_EQ(checker_->Check(Evidence(alice), strict_on)[0].status, RevocationStatus::kUnknown);
}

TEST_F(RevocationStrictTest, ASoundCrlCarriesNoStrictWord) {
  PreloadCrl(IssuingCrl({}, 3).get());
  pki::Issued alice = Leaf("alice");
  SetPolicy("revocation", {"hard_fail"});
  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kGood);
  EXPECT_TRUE(answer.crl_defects.empty());
  EXPECT_TRUE(Decide(alice).warning().empty());
  EXPECT_THAT(Listing(), Not(HasSubstr("strict_defects")));
}

// A store written before certgate_strict does not say whether a crlNumber is
// critical: such a record is judged as before until the file is read again,
// which the next preload does (the warm start does not skip it).
TEST_F(RevocationStrictTest, APreloadedRecordFromBeforeStrictIsReadAgain) {
  for (const bool critical : {false, true}) {
    SCOPED_TRACE(critical ? "critical crlNumber" : "sound crlNumber");
    Reopen();
    ASSERT_TRUE(checker_->Purge().ok());
    auto crl = critical ? DefectiveCrl(kDefects[1]) : IssuingCrl({}, 7);
    const std::string path = PreloadCrl(crl.get());
    MakeRecordLegacy();
    pki::Issued alice = Leaf("alice");
    SetPolicy("strict", {"on"});
    SetPolicy("revocation", {"hard_fail"});
    // Judged as the earlier certgate judged it until the file is read again:
    // a module upgrade must not turn every cached CRL into "unknown".
    RevocationAnswer legacy = CheckLeaf(alice);
    EXPECT_EQ(legacy.status, RevocationStatus::kGood);
    EXPECT_THAT(Listing(), HasSubstr("strict_defects=unrecorded"));
    SetPolicy("strict", {"off"});
    EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kGood);  // as before

    Reopen();
    ossl::UniquePtr<X509_STORE> trust = Trust(true);
    ASSERT_TRUE(checker_->Preload({path}, trust.get()).ok());
    SetPolicy("strict", {"on"});
    RevocationAnswer again = CheckLeaf(alice);
    EXPECT_EQ(again.status, critical ? RevocationStatus::kUnknown : RevocationStatus::kGood);
    EXPECT_EQ(again.crl_defects, critical ? "crl_number_critical" : "");
    EXPECT_THAT(Listing(), Not(HasSubstr("strict_defects=unrecorded")));
  }
}

// ---- fetched from a CDP

class RevocationStrictFetchTest : public RevocationStrictTest {
 protected:
  RevocationAnswer CheckAfterFetch(const pki::Issued &leaf) {
    CheckLeaf(leaf);
    EXPECT_TRUE(checker_->WaitForFetches(Evidence(leaf), kWait));
    return CheckLeaf(leaf);
  }

  TestHttpServer server_;
};

TEST_F(RevocationStrictFetchTest, FetchedDefectiveCrlIsNoProofOfGoodUnderStrict) {
  for (const Defect &defect : kDefects) {
    SCOPED_TRACE(defect.check);
    Reopen();
    ASSERT_TRUE(checker_->Purge().ok());
    const std::string url = server_.Url(std::string("/") + defect.check + ".crl");
    server_.Set(std::string("/") + defect.check + ".crl",
                Reply{200, pki::ToDer(DefectiveCrl(defect).get())});
    pki::Issued alice = Leaf("alice", {url});
    SetPolicy("strict", {"on"});
    SetPolicy("revocation", {"hard_fail"});
    RevocationAnswer answer = CheckAfterFetch(alice);
    EXPECT_EQ(answer.status, RevocationStatus::kUnknown);
    EXPECT_FALSE(answer.fetch_pending);  // fetched: nothing to wait for
    EXPECT_EQ(answer.crl_defects, defect.check);
    EXPECT_THAT(answer.detail, HasSubstr("the CRL from " + url + " " + defect.words));
    Decision refused = Decide(alice);
    EXPECT_EQ(refused.reason(), CG_REASON_REVOCATION_UNAVAILABLE);
    EXPECT_THAT(refused.detail(), HasSubstr("the CRL from " + url + " " + defect.words));

    // Not fetched again on every request: the CRL is refreshed as any other.
    const int hits = server_.Hits(std::string("/") + defect.check + ".crl");
    EXPECT_EQ(hits, 1);
    for (int i = 0; i < 5; ++i) EXPECT_FALSE(CheckLeaf(alice).fetch_pending);
    EXPECT_EQ(server_.Hits(std::string("/") + defect.check + ".crl"), hits);

    SetPolicy("revocation", {"soft_fail"});
    Decision warned = Decide(alice);
    EXPECT_EQ(warned.verdict(), CG_VERDICT_ALLOW);
    EXPECT_EQ(warned.warning(), "revocation_unknown");
    EXPECT_THAT(warned.detail(), HasSubstr(defect.words));

    SetPolicy("strict", {"off"});
    SetPolicy("revocation", {"hard_fail"});
    Decision allowed = Decide(alice);
    EXPECT_EQ(allowed.verdict(), CG_VERDICT_ALLOW);
    EXPECT_EQ(allowed.warning(), "strict_off:" + std::string(defect.check));
    EXPECT_THAT(allowed.detail(), HasSubstr("the CRL from " + url + " " + defect.words));
  }
}

TEST_F(RevocationStrictFetchTest, FetchedDefectiveCrlStillRevokes) {
  const std::string url = server_.Url("/issuing.crl");
  pki::Issued mallory = Leaf("mallory", {url});
  server_.Set(
      "/issuing.crl",
      Reply{200,
            pki::ToDer(DefectiveCrl(kDefects[0], {{Serial(mallory), kRevNow - 60, 1}}).get())});
  SetPolicy("revocation", {"hard_fail"});
  RevocationAnswer answer = CheckAfterFetch(mallory);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_EQ(answer.source, "crl " + url);
  EXPECT_EQ(Decide(mallory).reason(), CG_REASON_REVOKED);
  EXPECT_THAT(Listing(), HasSubstr("stored crl_number=none entries=1"));
}

// A fetched record from before certgate_strict is fetched again at once, and
// without the conditional GET's validators (a 304 would not tell whether the
// crlNumber is critical).
TEST_F(RevocationStrictFetchTest, AFetchedRecordFromBeforeStrictIsFetchedAgainWhole) {
  const std::string der = pki::ToDer(DefectiveCrl(kDefects[1]).get());
  server_.Handle("/issuing.crl", [der](const TestHttpServer::Request &request) {
    if (request.Header("If-None-Match") == "\"v1\"") return Reply{304, ""};
    return Reply{200, der, {"ETag: \"v1\""}};
  });
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  SetPolicy("strict", {"off"});
  SetPolicy("revocation", {"hard_fail"});
  ASSERT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  MakeRecordLegacy();
  EXPECT_EQ(CheckLeaf(alice).crl_defects, "");  // what an earlier certgate knew

  SetPolicy("strict", {"on"});
  clock_.Advance(5);  // past the pause after an unchanged answer
  RevocationAnswer first = CheckLeaf(alice);
  EXPECT_EQ(first.status, RevocationStatus::kGood);  // as before, while it is read again
  ASSERT_TRUE(checker_->WaitForFetches(Evidence(alice), kWait));
  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kUnknown);
  EXPECT_EQ(answer.crl_defects, "crl_number_critical");
  std::vector<TestHttpServer::Request> requests = server_.Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("If-None-Match"), "");
  SetPolicy("strict", {"off"});
  EXPECT_EQ(CheckLeaf(alice).crl_defects, "crl_number_critical");
}

}  // namespace
}  // namespace certgate
