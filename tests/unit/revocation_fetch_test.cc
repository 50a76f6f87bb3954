// The background fetcher against a real HTTP server on 127.0.0.1: CDP fetches,
// every fault kept out of the cache, backoff, conditional GET, limits.
#include <gmock/gmock.h>
#include <sys/socket.h>

#include "revocation/fetcher.h"
#include "revocation_test_pki.h"
#include "revocation_test_server.h"

namespace certgate {
namespace {

using ::testing::HasSubstr;
using testing::kRevDay;
using testing::kRevNow;
using testing::TestHttpServer;
using Reply = TestHttpServer::Reply;

constexpr auto kWait = std::chrono::seconds(10);  // generous: only bounds a failure

class RevocationFetchTest : public testing::RevocationFixture {
 protected:
  void SetUp() override {
    RevocationFixture::SetUp();
    SetPolicy("revocation", {"soft_fail"});
  }

  std::string CrlDer(std::vector<pki::PkiBuilder::Revoked> revoked, int64_t number,
                     int64_t next_update = kRevNow + kRevDay) {
    return pki::ToDer(IssuingCrl(std::move(revoked), number, next_update).get());
  }

  // A CRL partitioned to the distribution points `scope`.
  std::string ScopedCrlDer(std::vector<pki::PkiBuilder::Revoked> revoked, int64_t number,
                           std::vector<std::string> scope) {
    auto crl =
        pki_->Crl(issuing_, revoked, number, kRevNow - 3600, kRevNow + kRevDay, "sha256", scope);
    EXPECT_TRUE(crl) << pki_->last_error();
    return pki::ToDer(crl.get());
  }

  // Check, wait for the fetch it scheduled, check again.
  RevocationAnswer CheckAfterFetch(const pki::Issued &leaf) {
    RevocationAnswer first = CheckLeaf(leaf);
    EXPECT_TRUE(checker_->WaitForFetches(Evidence(leaf), kWait));
    return CheckLeaf(leaf);
  }

  // A port with nothing listening.
  static int ClosedPort() {
    TestHttpServer probe;
    return probe.port();  // closed when probe goes away
  }

  TestHttpServer server_;
};

TEST_F(RevocationFetchTest, RevokedFromTheCdp) {
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  server_.Set("/issuing.crl", Reply{200, CrlDer({{Serial(alice), kRevNow - 60, 1}}, 821)});
  RevocationAnswer first = CheckLeaf(alice);
  EXPECT_EQ(first.status, RevocationStatus::kUnknown);
  EXPECT_TRUE(first.fetch_pending);
  EXPECT_THAT(first.detail, HasSubstr("mode=soft_fail"));
  ASSERT_TRUE(checker_->WaitForFetches(Evidence(alice), kWait));
  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_EQ(answer.source, "crl " + server_.Url("/issuing.crl") + " crl_number=821");
  EXPECT_EQ(answer.reason, "keyCompromise");
  EXPECT_EQ(answer.revoked_at, kRevNow - 60);
  EXPECT_FALSE(answer.fetch_pending);
}

TEST_F(RevocationFetchTest, GoodFromTheCdpAndNoRefetchWhileFresh) {
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  server_.Set("/issuing.crl", Reply{200, CrlDer({}, 1)});
  EXPECT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kGood);
  EXPECT_EQ(server_.Hits("/issuing.crl"), 1);
}

TEST_F(RevocationFetchTest, FirstReachableUrlWins) {
  std::string dead = "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/dead.crl";
  pki::Issued alice = Leaf("alice", {"ldap://ldap.example/cn=CA?certificateRevocationList", dead,
                                     server_.Url("/issuing.crl")});
  server_.Set("/issuing.crl", Reply{200, CrlDer({}, 1)});
  RevocationAnswer answer = CheckAfterFetch(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kGood);
  EXPECT_THAT(answer.source, HasSubstr("/issuing.crl"));
}

TEST_F(RevocationFetchTest, CdpDownIsUnknownNamingUrlAndError) {
  std::string dead = "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/issuing.crl";
  pki::Issued alice = Leaf("alice", {dead, "ldap://ldap.example/cn=CA"});
  RevocationAnswer answer = CheckAfterFetch(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kUnknown);
  EXPECT_FALSE(answer.fetch_pending);
  EXPECT_THAT(answer.detail, HasSubstr("crl " + dead + ": failed: "));
  EXPECT_THAT(answer.detail, HasSubstr("onnect"));  // curl's "Couldn't connect ..."
  EXPECT_THAT(answer.detail, HasSubstr(" ms, at "));
  EXPECT_THAT(answer.detail, HasSubstr("backoff"));
  // An LDAP CDP is fetched too, and its failure named (ldap.example does not resolve).
  EXPECT_THAT(answer.detail, HasSubstr("crl ldap://ldap.example/cn=CA: failed: "));
  EXPECT_THAT(answer.detail, HasSubstr("(LDAP server ldap.example:389)"));
}

TEST_F(RevocationFetchTest, EveryFaultKeepsTheOldData) {
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  SetPolicy("fetch_max_size", {"4k"});
  SetPolicy("fetch_timeout", {"300ms"});
  checker_->SetRefreshInterval(std::chrono::seconds(60));
  server_.Set("/issuing.crl", Reply{200, CrlDer({{Serial(alice), kRevNow - 60, 1}}, 5)});
  ASSERT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kRevoked);

  pki::Issued other_root = pki_->SelfSigned(pki::PkiBuilder::CaSpec("CN=Other Root,O=Example"));
  pki::Issued impostor =
      pki_->Issue(other_root, pki::PkiBuilder::CaSpec("CN=Rev Issuing CA,O=Example"));
  std::string good_der = CrlDer({}, 4);
  std::vector<std::pair<std::string, Reply>> faults = {
      {"HTTP 500", Reply{500, "oops"}},
      {"the body is text", Reply{200, "<html><body>captive portal</body></html>"}},
      {"truncated", Reply{200, good_der.substr(0, good_der.size() / 2)}},
      {"larger than certgate_fetch_max_size", Reply{200, std::string(64 * 1024, '\x30')}},
      {"signature does not verify",
       Reply{200, pki::ToDer(pki_->Crl(impostor, {}, 9, kRevNow - 60, kRevNow + kRevDay).get())}},
      {"rolled back: crlNumber 4 < cached 5", Reply{200, good_der}},
      {"timed out", Reply{200, "", {}, 2000}},
  };
  int64_t now = kRevNow;
  for (const auto &[expected, reply] : faults) {
    SCOPED_TRACE(expected);
    server_.Set("/issuing.crl", reply);
    now += 4000;  // past the refresh interval and any backoff
    clock_.Set(now);
    RevocationAnswer during = CheckLeaf(alice);
    EXPECT_EQ(during.status, RevocationStatus::kRevoked);  // served from the cache
    ASSERT_TRUE(checker_->WaitForFetches(Evidence(alice), kWait));
    RevocationAnswer after = CheckLeaf(alice);
    EXPECT_EQ(after.status, RevocationStatus::kRevoked);
    EXPECT_THAT(after.source, HasSubstr("crl_number=5"));
    std::string listing;
    for (const std::string &line : checker_->List()) listing += line + "\n";
    EXPECT_THAT(listing, HasSubstr(expected));
  }
}

TEST_F(RevocationFetchTest, BackoffStopsHammeringADeadCdp) {
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  server_.Set("/issuing.crl", Reply{503, "down"});
  RevocationAnswer answer = CheckAfterFetch(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kUnknown);
  EXPECT_THAT(answer.detail, HasSubstr("HTTP 503"));
  EXPECT_EQ(server_.Hits("/issuing.crl"), 1);
  for (int i = 0; i < 5; ++i) {
    RevocationAnswer again = CheckLeaf(alice);
    EXPECT_FALSE(again.fetch_pending);
  }
  clock_.Advance(20);  // first backoff is 30 s
  EXPECT_FALSE(CheckLeaf(alice).fetch_pending);
  EXPECT_EQ(server_.Hits("/issuing.crl"), 1);
  clock_.Advance(11);
  CheckAfterFetch(alice);
  EXPECT_EQ(server_.Hits("/issuing.crl"), 2);
  clock_.Advance(31);  // second backoff is 60 s
  EXPECT_FALSE(CheckLeaf(alice).fetch_pending);
  EXPECT_EQ(server_.Hits("/issuing.crl"), 2);
  server_.Set("/issuing.crl", Reply{200, CrlDer({}, 1)});
  clock_.Advance(30);
  EXPECT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  EXPECT_EQ(server_.Hits("/issuing.crl"), 3);
}

TEST_F(RevocationFetchTest, AnUnchangedCrlPastNextUpdateIsNotAskedForOnEveryRequest) {
  // A CA late to publish: the CDP keeps serving a CRL whose nextUpdate passed.
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  server_.Set("/issuing.crl", Reply{200, CrlDer({}, 1, kRevNow + 60)});
  ASSERT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  clock_.Advance(120);  // past nextUpdate, within max_stale: due for refresh
  CheckAfterFetch(alice);
  const int after_refresh = server_.Hits("/issuing.crl");
  EXPECT_EQ(after_refresh, 2);
  for (int i = 0; i < 20; ++i) CheckLeaf(alice);  // requests in the same second
  EXPECT_EQ(server_.Hits("/issuing.crl"), after_refresh);
  clock_.Advance(3);  // after the pause, asked again
  CheckAfterFetch(alice);
  EXPECT_EQ(server_.Hits("/issuing.crl"), after_refresh + 1);
}

TEST_F(RevocationFetchTest, GoodPastNextUpdateSaysTheRefreshFails) {
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  server_.Set("/issuing.crl", Reply{200, CrlDer({}, 1, kRevNow + 60)});
  ASSERT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  server_.Set("/issuing.crl", Reply{500, "down"});
  clock_.Advance(120);  // past nextUpdate, within max_stale
  RevocationAnswer answer = CheckAfterFetch(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kGood);
  EXPECT_THAT(answer.detail, HasSubstr("nextUpdate 2027-01-15T08:01:00Z has passed"));
  EXPECT_THAT(answer.detail, HasSubstr(server_.Url("/issuing.crl") + ": failed: HTTP 500"));
}

// Sharded CRLs (issuingDistributionPoint): a shard is never taken as the word
// on a certificate of another shard, which would call every cert it does not
// list good.
TEST_F(RevocationFetchTest, PartitionedCrlsJudgeOnlyTheirOwnCertificates) {
  const std::string shard1 = server_.Url("/shard1.crl"), shard2 = server_.Url("/shard2.crl");
  pki::Issued alice = Leaf("alice", {shard1});
  pki::Issued bob = Leaf("bob", {shard2});
  server_.Set("/shard1.crl", Reply{200, ScopedCrlDer({}, 5, {shard1})});
  server_.Set("/shard2.crl",
              Reply{200, ScopedCrlDer({{Serial(bob), kRevNow - 60, 1}}, 5, {shard2})});
  ASSERT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  RevocationAnswer before = CheckLeaf(bob);  // shard 1 is cached: no word on bob
  EXPECT_NE(before.status, RevocationStatus::kGood);
  EXPECT_THAT(before.detail, HasSubstr("covers only the distribution point " + shard1));
  ASSERT_TRUE(checker_->WaitForFetches(Evidence(bob), kWait));
  EXPECT_EQ(CheckLeaf(bob).status, RevocationStatus::kRevoked);
  EXPECT_NE(CheckLeaf(alice).status, RevocationStatus::kRevoked);
  EXPECT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
}

// Issue 11 §5: the store keeps one CRL per (issuer, distribution point), so
// requests alternating between two partitions of one CA are answered from the
// cache, each partition's CRL fetched once (it used to evict the other's).
TEST_F(RevocationFetchTest, TwoPartitionsAlternatingStayCached) {
  const std::string shard1 = server_.Url("/shard1.crl"), shard2 = server_.Url("/shard2.crl");
  pki::Issued alice = Leaf("alice", {shard1});
  pki::Issued bob = Leaf("bob", {shard2});
  server_.Set("/shard1.crl", Reply{200, ScopedCrlDer({}, 7, {shard1})});
  server_.Set("/shard2.crl",
              Reply{200, ScopedCrlDer({{Serial(bob), kRevNow - 60, 1}}, 3, {shard2})});
  ASSERT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  ASSERT_EQ(CheckAfterFetch(bob).status, RevocationStatus::kRevoked);
  for (int i = 0; i < 5; ++i) {
    RevocationAnswer a = CheckLeaf(alice), b = CheckLeaf(bob);
    EXPECT_EQ(a.status, RevocationStatus::kGood);
    EXPECT_EQ(a.source, "crl " + shard1 + " crl_number=7");
    EXPECT_FALSE(a.fetch_pending);
    EXPECT_EQ(b.status, RevocationStatus::kRevoked);
    EXPECT_EQ(b.source, "crl " + shard2 + " crl_number=3");
    EXPECT_FALSE(b.fetch_pending);
  }
  EXPECT_EQ(server_.Hits("/shard1.crl"), 1);
  EXPECT_EQ(server_.Hits("/shard2.crl"), 1);
  // Partition 1's CRL at partition 2's URL (a replay) is refused, and bob's
  // revocation stands.
  server_.Set("/shard2.crl", Reply{200, ScopedCrlDer({}, 9, {shard1})});
  clock_.Advance(3601);  // due for refresh
  EXPECT_EQ(CheckAfterFetch(bob).status, RevocationStatus::kRevoked);
  EXPECT_EQ(server_.Hits("/shard2.crl"), 2);
  std::optional<UrlState> state = checker_->store().Read()->GetUrl(shard2);
  ASSERT_TRUE(state);
  EXPECT_THAT(state->last_result, HasSubstr("a CRL for another distribution point"));
}

// A CDP answering with another shard's CRL is a failed fetch, not data.
TEST_F(RevocationFetchTest, CrlForAnotherDistributionPointIsRefused) {
  const std::string mine = server_.Url("/mine.crl");
  pki::Issued alice = Leaf("alice", {mine});
  server_.Set("/mine.crl", Reply{200, ScopedCrlDer({}, 5, {server_.Url("/other.crl")})});
  RevocationAnswer answer = CheckAfterFetch(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kUnknown);
  EXPECT_THAT(answer.detail, HasSubstr(mine + ": failed: a CRL for another distribution point"));
}

// The common case of an issuingDistributionPoint (AD CS writes one): it names the
// URL every certificate carries, and is simply the issuer's CRL.
TEST_F(RevocationFetchTest, CrlNamingTheCertificatesOwnDistributionPointIsUsed) {
  const std::string url = server_.Url("/issuing.crl");
  pki::Issued alice =
      Leaf("alice", {"ldap://ldap.example/cn=Rev%20Issuing%20CA?certificateRevocationList", url});
  pki::Issued bob = Leaf("bob", {url});
  server_.Set("/issuing.crl",
              Reply{200, ScopedCrlDer(
                             {{Serial(bob), kRevNow - 60, 1}}, 5,
                             {"ldap://ldap.example/cn=Rev%20Issuing%20CA?certificateRevocationList",
                              url})});
  EXPECT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  EXPECT_EQ(CheckLeaf(bob).status, RevocationStatus::kRevoked);
}

TEST_F(RevocationFetchTest, UpdatedCrlAtTheCdpRevokesOnRefresh) {
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  checker_->SetRefreshInterval(std::chrono::seconds(300));
  server_.Set("/issuing.crl", Reply{200, CrlDer({}, 1)});
  ASSERT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  server_.Set("/issuing.crl", Reply{200, CrlDer({{Serial(alice), kRevNow, 1}}, 2)});
  clock_.Advance(301);
  RevocationAnswer answer = CheckAfterFetch(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_THAT(answer.source, HasSubstr("crl_number=2"));
}

TEST_F(RevocationFetchTest, ConditionalGetUsesTheValidators) {
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  checker_->SetRefreshInterval(std::chrono::seconds(300));
  const std::string der = CrlDer({}, 1);
  server_.Handle("/issuing.crl", [der](const TestHttpServer::Request &request) {
    if (request.Header("If-None-Match") == "\"v1\"") return Reply{304, ""};
    return Reply{200, der, {"ETag: \"v1\"", "Last-Modified: Fri, 15 Jan 2027 07:00:00 GMT"}};
  });
  ASSERT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  clock_.Advance(301);
  ASSERT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);
  std::vector<TestHttpServer::Request> requests = server_.Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[0].Header("If-None-Match"), "");
  EXPECT_EQ(requests[1].Header("If-None-Match"), "\"v1\"");
  EXPECT_EQ(requests[1].Header("If-Modified-Since"), "Fri, 15 Jan 2027 07:00:00 GMT");
  clock_.Advance(10);
  EXPECT_FALSE(CheckLeaf(alice).fetch_pending);  // the 304 counts as a refresh
}

TEST_F(RevocationFetchTest, CacheOnlyAndUnanchoredChainsNeverFetch) {
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  server_.Set("/issuing.crl", Reply{200, CrlDer({}, 1)});
  SetPolicy("revocation", {"cache_only"});
  EXPECT_FALSE(CheckLeaf(alice).fetch_pending);
  SetPolicy("revocation", {"hard_fail"});
  ChainEvidence unanchored = Evidence(alice);
  unanchored.anchored = false;
  std::vector<RevocationAnswer> answers = checker_->Check(unanchored, policy_);
  ASSERT_FALSE(answers.empty());
  EXPECT_FALSE(answers[0].fetch_pending);
  EXPECT_THAT(answers[0].detail, HasSubstr("not anchored"));
  EXPECT_EQ(server_.Hits("/"), 0);
}

TEST_F(RevocationFetchTest, FetchAllowLimitsHosts) {
  SetPolicy("fetch_allow", {"pki.example"});
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  server_.Set("/issuing.crl", Reply{200, CrlDer({}, 1)});
  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_FALSE(answer.fetch_pending);
  EXPECT_THAT(answer.detail, HasSubstr("host 127.0.0.1 is not in certgate_fetch_allow"));
  EXPECT_EQ(server_.Hits("/"), 0);
}

TEST_F(RevocationFetchTest, RedirectsOnlyToAllowedHttp) {
  pki::Issued alice = Leaf("alice", {server_.Url("/moved.crl")});
  server_.Set("/moved.crl", Reply{302, "", {"Location: " + server_.Url("/issuing.crl")}});
  server_.Set("/issuing.crl", Reply{200, CrlDer({}, 1)});
  EXPECT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kGood);

  pki::Issued bob = Leaf("bob", {server_.Url("/to-file.crl")});
  server_.Set("/to-file.crl", Reply{302, "", {"Location: file:///etc/passwd"}});
  HttpRequest request;
  request.url = server_.Url("/to-file.crl");
  HttpResponse response = HttpFetch(request);
  EXPECT_FALSE(response.completed);
  EXPECT_THAT(response.error, HasSubstr("redirect to file:///etc/passwd refused"));
}

TEST_F(RevocationFetchTest, HangingCdpDoesNotDelayAnotherIssuer) {
  SetPolicy("fetch_timeout", {"3s"});
  pki::Issued other_ca = pki_->Issue(root_, pki::PkiBuilder::CaSpec("CN=Rev Other CA,O=Example"));
  pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=bob,O=Example");
  spec.crl_urls = {server_.Url("/fast.crl")};
  pki::Issued bob = pki_->Issue(other_ca, spec);
  pki::Issued alice = Leaf("alice", {server_.Url("/slow.crl")});
  server_.Set("/slow.crl", Reply{200, CrlDer({}, 1), {}, 2500});
  server_.Set(
      "/fast.crl",
      Reply{200, pki::ToDer(pki_->Crl(other_ca, {}, 1, kRevNow - 60, kRevNow + kRevDay).get())});

  CheckLeaf(alice);  // starts the slow fetch
  ossl::UniquePtr<X509_STORE> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root_.cert.get());
  ossl::UniquePtr<STACK_OF(X509)> sent(sk_X509_new_null());
  X509_up_ref(other_ca.cert.get());
  sk_X509_push(sent.get(), other_ca.cert.get());
  ChainEvidence bob_chain =
      BuildChainEvidence(bob.cert.get(), sent.get(), store.get(), pki_->now());
  checker_->Check(bob_chain, policy_);
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(checker_->WaitForFetches(bob_chain, kWait));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1500));
  EXPECT_EQ(checker_->Check(bob_chain, policy_)[0].status, RevocationStatus::kGood);
  EXPECT_FALSE(checker_->WaitForFetches(Evidence(alice), std::chrono::milliseconds(10)));
}

TEST_F(RevocationFetchTest, CacheIsSharedWithASecondCheckerOnTheSameDirectory) {
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl")});
  server_.Set("/issuing.crl", Reply{200, CrlDer({{Serial(alice), kRevNow - 60, 1}}, 3)});
  ASSERT_EQ(CheckAfterFetch(alice).status, RevocationStatus::kRevoked);
  Reopen();  // like a restart: a warm cache, no refetch
  RevocationAnswer answer = CheckLeaf(alice);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_FALSE(answer.fetch_pending);
  EXPECT_EQ(server_.Hits("/issuing.crl"), 1);
}

TEST_F(RevocationFetchTest, FetchNowReportsEveryUrl) {
  std::string dead = "http://127.0.0.1:" + std::to_string(ClosedPort()) + "/dead.crl";
  pki::Issued alice = Leaf("alice", {server_.Url("/issuing.crl"), dead, "ldap://x/cn=y"});
  server_.Set("/issuing.crl", Reply{200, CrlDer({}, 12)});
  std::vector<std::string> lines = checker_->FetchNow(Evidence(alice), policy_);
  std::string all;
  for (const std::string &line : lines) all += line + "\n";
  EXPECT_THAT(all, HasSubstr("depth 0 CDP " + server_.Url("/issuing.crl") + ": Verified ("));
  EXPECT_THAT(all, HasSubstr("ms): crl_number=12 thisUpdate="));
  EXPECT_THAT(all, HasSubstr("depth 0 CDP " + dead + ": Unavailable: "));
  EXPECT_THAT(all, HasSubstr("depth 0 CDP ldap://x/cn=y: Unavailable: "));
  EXPECT_THAT(all, HasSubstr("(LDAP server x:389)"));
  EXPECT_THAT(all, HasSubstr("depth 0 OCSP: No URL"));
  // The structured form (certgate check --fetch, --json).
  std::vector<UrlFetch> fetches = checker_->FetchUrls(Evidence(alice), policy_);
  ASSERT_GE(fetches.size(), 4u);
  EXPECT_EQ(fetches[0].url, server_.Url("/issuing.crl"));
  EXPECT_EQ(fetches[0].outcome, UrlFetch::Outcome::kVerified);
  EXPECT_EQ(fetches[0].http_status, 200);
  EXPECT_EQ(fetches[0].crl_number, "12");
  EXPECT_NE(fetches[0].this_update, 0);
  EXPECT_GE(fetches[0].elapsed_ms, 0);
  EXPECT_EQ(fetches[1].url, dead);
  EXPECT_EQ(fetches[1].outcome, UrlFetch::Outcome::kUnavailable);
  EXPECT_EQ(fetches[2].url, "ldap://x/cn=y");
  EXPECT_EQ(fetches[2].outcome, UrlFetch::Outcome::kUnavailable);
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kGood);
}

}  // namespace
}  // namespace certgate
