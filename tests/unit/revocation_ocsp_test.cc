// OCSP from the AIA responder, served by the in-test HTTP server with answers made
// by PkiBuilder::Ocsp: good / revoked / unknown, delegated responders, refused signers.
#include <gmock/gmock.h>

#include "revocation/ocsp.h"
#include "revocation_test_pki.h"
#include "revocation_test_server.h"

namespace certgate {
namespace {

using ::testing::HasSubstr;
using testing::kRevDay;
using testing::kRevNow;
using testing::TestHttpServer;
using Reply = TestHttpServer::Reply;

class RevocationOcspTest : public testing::RevocationFixture {
 protected:
  void SetUp() override {
    RevocationFixture::SetUp();
    SetPolicy("revocation", {"hard_fail"});
    SetPolicy("revocation_sources", {"ocsp"});
  }

  pki::Issued Responder(const pki::Issued &issuer, std::vector<std::string> eku = {"OCSPSigning"}) {
    pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=OCSP Responder,O=Example");
    spec.eku = std::move(eku);
    return pki_->Issue(issuer, spec);
  }

  std::string Answer(const pki::Issued &leaf, const pki::Issued &signer, int status,
                     int64_t revoked_at = 0, int reason = -1) {
    auto response = pki_->Ocsp(leaf, issuing_, signer, status, kRevNow - 600, kRevNow + 3 * 3600,
                               revoked_at, reason);
    EXPECT_TRUE(response) << pki_->last_error();
    return pki::ToDer(response.get());
  }

  RevocationAnswer CheckAfterFetch(const pki::Issued &leaf) {
    CheckLeaf(leaf);
    EXPECT_TRUE(checker_->WaitForFetches(Evidence(leaf), std::chrono::seconds(10)));
    return CheckLeaf(leaf);
  }

  TestHttpServer server_;
};

TEST_F(RevocationOcspTest, GoodSignedByTheIssuerOverGet) {
  pki::Issued alice = Leaf("alice", {}, {server_.Url("/ocsp")});
  server_.Set("/ocsp", Reply{200, Answer(alice, issuing_, V_OCSP_CERTSTATUS_GOOD)});
  RevocationAnswer first = CheckLeaf(alice);
  EXPECT_EQ(first.status, RevocationStatus::kUnknown);
  EXPECT_TRUE(first.fetch_pending);
  ASSERT_TRUE(checker_->WaitForFetches(Evidence(alice), std::chrono::seconds(10)));
  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kGood);
  EXPECT_EQ(answer.source, "ocsp " + server_.Url("/ocsp"));
  std::vector<TestHttpServer::Request> requests = server_.Requests();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "GET");
  EXPECT_EQ(requests[0].path.rfind("/ocsp/", 0), 0u);
}

TEST_F(RevocationOcspTest, RevokedWithDateAndReason) {
  pki::Issued alice = Leaf("alice", {}, {server_.Url("/ocsp")});
  server_.Set("/ocsp", Reply{200, Answer(alice, issuing_, V_OCSP_CERTSTATUS_REVOKED, kRevNow - 5000,
                                         OCSP_REVOKED_STATUS_KEYCOMPROMISE)});
  RevocationAnswer answer = CheckAfterFetch(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_EQ(answer.revoked_at, kRevNow - 5000);
  EXPECT_EQ(answer.reason, "keyCompromise");
  EXPECT_THAT(answer.source, HasSubstr("ocsp "));
}

TEST_F(RevocationOcspTest, UnknownToTheResponderIsUnknown) {
  pki::Issued alice = Leaf("alice", {}, {server_.Url("/ocsp")});
  server_.Set("/ocsp", Reply{200, Answer(alice, issuing_, V_OCSP_CERTSTATUS_UNKNOWN)});
  RevocationAnswer answer = CheckAfterFetch(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kUnknown);
  EXPECT_THAT(answer.detail, HasSubstr("does not know this certificate"));
  EXPECT_THAT(answer.detail, HasSubstr("mode=hard_fail"));
}

TEST_F(RevocationOcspTest, DelegatedResponderWithOcspSigningIsAccepted) {
  pki::Issued alice = Leaf("alice", {}, {server_.Url("/ocsp")});
  pki::Issued responder = Responder(issuing_);
  server_.Set("/ocsp", Reply{200, Answer(alice, responder, V_OCSP_CERTSTATUS_GOOD)});
  EXPECT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
}

TEST_F(RevocationOcspTest, WrongSignersAreRefused) {
  pki::Issued alice = Leaf("alice", {}, {server_.Url("/ocsp")});
  const std::string url = server_.Url("/ocsp");
  pki::Issued other_root = pki_->SelfSigned(pki::PkiBuilder::CaSpec("CN=Other Root,O=Example"));
  struct Case {
    const char *name;
    pki::Issued signer;
  } cases[] = {
      {"another CA", other_root},
      {"a responder of another CA", Responder(other_root)},
      {"a cert of the issuer without OCSPSigning", Responder(issuing_, {"clientAuth"})},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    auto response = pki_->Ocsp(alice, issuing_, c.signer, V_OCSP_CERTSTATUS_REVOKED, kRevNow - 600,
                               kRevNow + 3600, kRevNow - 700, 1);
    ASSERT_TRUE(response) << pki_->last_error();
    Result<OcspRecord> record = VerifyOcspResponse(pki::ToDer(response.get()), alice.cert.get(),
                                                   issuing_.cert.get(), url, kRevNow);
    ASSERT_FALSE(record.ok());
    EXPECT_THAT(record.status().message(), HasSubstr("not signed by the issuer"));
  }
  server_.Set("/ocsp", Reply{200, pki::ToDer(pki_->Ocsp(alice, issuing_, other_root,
                                                        V_OCSP_CERTSTATUS_REVOKED, kRevNow - 600,
                                                        kRevNow + 3600, kRevNow - 700, 1)
                                                 .get())});
  RevocationAnswer answer = CheckAfterFetch(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kUnknown);
  EXPECT_THAT(answer.detail, HasSubstr("not signed by the issuer"));
}

TEST_F(RevocationOcspTest, AnswerForAnotherCertOrFromTheFutureIsRefused) {
  pki::Issued alice = Leaf("alice"), bob = Leaf("bob");
  auto for_bob =
      pki_->Ocsp(bob, issuing_, issuing_, V_OCSP_CERTSTATUS_GOOD, kRevNow - 60, kRevNow + 3600);
  Result<OcspRecord> wrong = VerifyOcspResponse(pki::ToDer(for_bob.get()), alice.cert.get(),
                                                issuing_.cert.get(), "u", kRevNow);
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("no answer for this certificate"));

  auto future =
      pki_->Ocsp(alice, issuing_, issuing_, V_OCSP_CERTSTATUS_GOOD, kRevNow + 3600, kRevNow + 7200);
  Result<OcspRecord> early = VerifyOcspResponse(pki::ToDer(future.get()), alice.cert.get(),
                                                issuing_.cert.get(), "u", kRevNow);
  ASSERT_FALSE(early.ok());
  EXPECT_THAT(early.status().message(), HasSubstr("in the future"));

  Result<OcspRecord> garbage =
      VerifyOcspResponse("<html>", alice.cert.get(), issuing_.cert.get(), "u", kRevNow);
  ASSERT_FALSE(garbage.ok());
}

TEST_F(RevocationOcspTest, OlderAnswerDoesNotReplaceANewerOne) {
  pki::Issued alice = Leaf("alice");
  const std::string id = OcspCertIdKey(alice.cert.get(), issuing_.cert.get());
  OcspRecord newer;
  newer.status = V_OCSP_CERTSTATUS_REVOKED;
  newer.this_update = kRevNow - 10;
  newer.next_update = kRevNow + 3600;
  ASSERT_TRUE(StoreOcsp(checker_->store(), id, newer).ok());
  OcspRecord older = newer;
  older.status = V_OCSP_CERTSTATUS_GOOD;
  older.this_update = kRevNow - 1000;
  EXPECT_FALSE(StoreOcsp(checker_->store(), id, older).ok());
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);
}

TEST_F(RevocationOcspTest, StaleAnswerBeyondMaxStale) {
  SetPolicy("max_stale", {"10m"});
  pki::Issued alice = Leaf("alice", {}, {server_.Url("/ocsp")});
  server_.Set("/ocsp", Reply{200, Answer(alice, issuing_, V_OCSP_CERTSTATUS_GOOD)});
  ASSERT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  server_.Set("/ocsp", Reply{500, ""});
  clock_.Set(kRevNow + 3 * 3600 + 300);  // past nextUpdate, within max_stale
  EXPECT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  clock_.Set(kRevNow + 3 * 3600 + 1200);
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kStale);
}

TEST_F(RevocationOcspTest, LargeRequestsArePosted) {
  EXPECT_NE(OcspGetUrl("http://ocsp.example", std::string(100, 'x')), "");
  EXPECT_EQ(OcspGetUrl("http://ocsp.example", std::string(200, 'x')), "");
  std::string get = OcspGetUrl("http://ocsp.example/", std::string("\xfb\xff\xbf", 3));
  EXPECT_EQ(get, "http://ocsp.example/%2B%2F%2B%2F");
}

TEST_F(RevocationOcspTest, CrlThenOcspByPolicyOrder) {
  SetPolicy("revocation_sources", {"crl", "ocsp"});
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")}, {server_.Url("/ocsp")});
  server_.Set("/issuing.crl", Reply{503, ""});
  server_.Set("/ocsp", Reply{200, Answer(alice, issuing_, V_OCSP_CERTSTATUS_GOOD)});
  RevocationAnswer answer = CheckAfterFetch(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kGood);
  EXPECT_THAT(answer.source, HasSubstr("ocsp"));
  EXPECT_EQ(server_.Hits("/issuing.crl"), 1);  // both were tried in parallel
}

}  // namespace
}  // namespace certgate
