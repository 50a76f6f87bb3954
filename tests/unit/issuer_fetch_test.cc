// certgate_fetch_issuers (issue 11 §3): what a caIssuers URL may serve (DER,
// PEM, PKCS#7 certs-only; CA certificates only), the fetch into the shared
// store (once), and chains completed with fetched CAs as untrusted
// intermediates only.
#include "revocation/issuer_fetch.h"

#include <certgate/evaluator.h>
#include <certgate/policy.h>
#include <certgate/revocation.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include <fstream>

#include "revocation/store.h"
#include "revocation_test_pki.h"
#include "revocation_test_server.h"

namespace certgate::testing {
namespace {

std::string Pkcs7CertsOnly(const std::vector<pki::Issued> &certs, bool pem) {
  PKCS7 *p7 = PKCS7_new();
  PKCS7_set_type(p7, NID_pkcs7_signed);
  PKCS7_content_new(p7, NID_pkcs7_data);
  for (const pki::Issued &issued : certs) PKCS7_add_certificate(p7, issued.cert.get());
  std::string out;
  if (pem) {
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PKCS7(bio, p7);
    char *data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    out.assign(data, static_cast<size_t>(len));
    BIO_free(bio);
  } else {
    unsigned char *der = nullptr;
    const int len = i2d_PKCS7(p7, &der);
    out.assign(reinterpret_cast<char *>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
  }
  PKCS7_free(p7);
  return out;
}

TEST(IssuerResponse, ParsesDerPemAndPkcs7CertsOnly) {
  pki::PkiBuilder pki(kRevNow);
  pki::Issued root = pki.SelfSigned(pki::PkiBuilder::CaSpec("CN=P Root"));
  pki::Issued ca = pki.Issue(root, pki::PkiBuilder::CaSpec("CN=P Issuing CA"));
  ASSERT_TRUE(root && ca);

  auto der = ParseIssuerResponse(ca.Der());
  ASSERT_TRUE(der.ok()) << der.status().message();
  ASSERT_EQ(der->size(), 1u);
  EXPECT_EQ(X509_cmp(der->front().get(), ca.cert.get()), 0);

  auto pem = ParseIssuerResponse(ca.Pem() + root.Pem());
  ASSERT_TRUE(pem.ok()) << pem.status().message();
  EXPECT_EQ(pem->size(), 2u);

  for (bool as_pem : {false, true}) {
    auto p7 = ParseIssuerResponse(Pkcs7CertsOnly({ca, root}, as_pem));
    ASSERT_TRUE(p7.ok()) << as_pem << ": " << p7.status().message();
    ASSERT_EQ(p7->size(), 2u) << as_pem;
    EXPECT_EQ(X509_cmp(p7->front().get(), ca.cert.get()), 0);
  }
}

TEST(IssuerResponse, RefusesWhatIsNotACaCertificate) {
  pki::PkiBuilder pki(kRevNow);
  pki::Issued root = pki.SelfSigned(pki::PkiBuilder::CaSpec("CN=P Root"));
  pki::Issued leaf = pki.Issue(root, pki::PkiBuilder::LeafSpec("CN=P Leaf"));
  pki::CertSpec no_bc = pki::PkiBuilder::CaSpec("CN=P No Constraints");
  no_bc.omit_basic_constraints = true;
  pki::Issued unconstrained = pki.Issue(root, no_bc);
  ASSERT_TRUE(leaf && unconstrained);

  auto refused = ParseIssuerResponse(leaf.Der());
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("'CN=P Leaf' it serves is not a CA certificate"),
            std::string::npos)
      << refused.status().message();
  EXPECT_FALSE(ParseIssuerResponse(unconstrained.Der()).ok());
  EXPECT_FALSE(ParseIssuerResponse(Pkcs7CertsOnly({leaf}, false)).ok());
  auto garbage = ParseIssuerResponse("<html>maintenance</html>");
  ASSERT_FALSE(garbage.ok());
  EXPECT_NE(garbage.status().message().find("no certificate"), std::string::npos);
  // A leaf among CAs is dropped, the CA kept.
  auto mixed = ParseIssuerResponse(leaf.Pem() + root.Pem());
  ASSERT_TRUE(mixed.ok());
  ASSERT_EQ(mixed->size(), 1u);
  EXPECT_EQ(X509_cmp(mixed->front().get(), root.cert.get()), 0);
}

TEST(IssuerFetchPolicy, NeedsFetchAllow) {
  Policy policy;
  ASSERT_TRUE(policy.Set("certgate_fetch_issuers", {"on"}).ok());
  Status refused = policy.CheckCombination();
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.message().find("certgate_fetch_issuers on needs certgate_fetch_allow"),
            std::string::npos);
  ASSERT_TRUE(policy.Set("fetch_allow", {"pki.example"}).ok());
  EXPECT_TRUE(policy.CheckCombination().ok());
  EXPECT_FALSE(policy.Set("fetch_issuers", {"maybe"}).ok());

  const std::string path = "/tmp/certgate-fetch-issuers-policy.conf";
  std::ofstream(path) << "certgate require;\nfetch_issuers on;\n";
  Policy from_file;
  Status loaded = from_file.LoadFile(path);
  ASSERT_FALSE(loaded.ok());
  EXPECT_NE(loaded.message().find(path + ": certgate_fetch_issuers on needs"), std::string::npos)
      << loaded.message();
  std::ofstream(path) << "fetch_issuers on;\nfetch_allow 127.0.0.1;\n";
  EXPECT_TRUE(from_file.LoadFile(path).ok());
  std::remove(path.c_str());
}

class IssuerFetchTest : public RevocationFixture {
 protected:
  void SetUp() override {
    RevocationFixture::SetUp();
    SetPolicy("revocation", {"off"});
    SetPolicy("fetch_issuers", {"on"});
    SetPolicy("fetch_allow", {"127.0.0.1"});
    SetPolicy("fetch_timeout", {"2s"});
  }

  // The leaf alone, naming `path` of the test server as its caIssuers URL.
  ChainEvidence LeafAlone(const std::string &path) {
    pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=alone,O=Example");
    spec.ca_issuer_urls = {server_.Url(path)};
    leaf_ = pki_->Issue(issuing_, spec);
    EXPECT_TRUE(leaf_) << pki_->last_error();
    trust_ = Trust(/*with_issuing=*/false);
    return BuildChainEvidence(leaf_.cert.get(), nullptr, trust_.get(), pki_->now());
  }

  // CompleteChain until no fetch is pending (each waited for up to 5 s).
  IssuerCompletion Complete(const ChainEvidence &evidence) {
    IssuerCompletion completion;
    for (int round = 0; round < 3; ++round) {
      completion = checker_->CompleteChain(evidence, trust_.get(), policy_, clock_.Now());
      if (!completion.pending) break;
      EXPECT_TRUE(checker_->WaitForFetches(evidence, std::chrono::seconds(5)));
    }
    return completion;
  }

  TestHttpServer server_;
  pki::Issued leaf_;
  ossl::UniquePtr<X509_STORE> trust_;
};

// The URLs come from a certificate not yet verified: one naming ten caIssuers
// URLs starts fetches for the first four only.
TEST_F(IssuerFetchTest, AtMostFourCaIssuersUrlsOfACertificateAreFetched) {
  pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=many-urls,O=Example");
  for (int i = 0; i < 10; ++i)
    spec.ca_issuer_urls.push_back(server_.Url("/many/" + std::to_string(i)));
  leaf_ = pki_->Issue(issuing_, spec);
  ASSERT_TRUE(leaf_) << pki_->last_error();
  trust_ = Trust(/*with_issuing=*/false);
  const ChainEvidence evidence =
      BuildChainEvidence(leaf_.cert.get(), nullptr, trust_.get(), pki_->now());
  Complete(evidence);  // every URL answers 404: nothing completes the chain
  EXPECT_EQ(server_.Hits("/many/"), 4);
}

TEST_F(IssuerFetchTest, CompletesTheChainAndFetchesOnce) {
  server_.Set("/issuing.crt", {200, issuing_.Der()});
  const ChainEvidence evidence = LeafAlone("/issuing.crt");
  ASSERT_FALSE(evidence.anchored);
  ASSERT_TRUE(MissesIssuer(evidence));

  IssuerCompletion first = checker_->CompleteChain(evidence, trust_.get(), policy_, clock_.Now());
  EXPECT_TRUE(first.pending);
  EXPECT_NE(first.detail.find("being fetched from " + server_.Url("/issuing.crt")),
            std::string::npos)
      << first.detail;
  EXPECT_TRUE(checker_->WaitForFetches(evidence, std::chrono::seconds(5)));

  IssuerCompletion done = Complete(evidence);
  ASSERT_TRUE(done.rebuilt.has_value()) << done.detail;
  EXPECT_TRUE(done.rebuilt->anchored);
  EXPECT_TRUE(done.rebuilt->errors.empty());
  ASSERT_EQ(done.rebuilt->chain.size(), 3u);
  EXPECT_EQ(X509_cmp(done.rebuilt->chain[1].get(), issuing_.cert.get()), 0);
  Decision decision = Evaluate(policy_, &*done.rebuilt, clock_);
  EXPECT_EQ(decision.verdict(), CG_VERDICT_ALLOW);

  // Kept in the store: a new checker (another process, a restart) fetches nothing.
  Reopen();
  IssuerCompletion again = checker_->CompleteChain(evidence, trust_.get(), policy_, clock_.Now());
  EXPECT_FALSE(again.pending);
  ASSERT_TRUE(again.rebuilt.has_value());
  EXPECT_TRUE(again.rebuilt->anchored);
  EXPECT_EQ(server_.Hits("/issuing.crt"), 1);
}

TEST_F(IssuerFetchTest, OffFetchesNothing) {
  server_.Set("/issuing.crt", {200, issuing_.Der()});
  const ChainEvidence evidence = LeafAlone("/issuing.crt");
  SetPolicy("fetch_issuers", {"off"});
  IssuerCompletion completion =
      checker_->CompleteChain(evidence, trust_.get(), policy_, clock_.Now());
  EXPECT_FALSE(completion.pending);
  EXPECT_FALSE(completion.rebuilt.has_value());
  EXPECT_EQ(server_.Hits("/"), 0);
}

TEST_F(IssuerFetchTest, RefusesANonCaAndAnUnrelatedCa) {
  pki::Issued other_root = pki_->SelfSigned(pki::PkiBuilder::CaSpec("CN=Other Root,O=Example"));
  pki::Issued unrelated =
      pki_->Issue(other_root, pki::PkiBuilder::CaSpec("CN=Rev Issuing CA,O=Example"));
  pki::Issued not_ca = pki_->Issue(issuing_, pki::PkiBuilder::LeafSpec("CN=not a CA,O=Example"));
  server_.Set("/leaf.crt", {200, not_ca.Der()});
  server_.Set("/unrelated.crt", {200, unrelated.Der()});

  IssuerCompletion refused = Complete(LeafAlone("/leaf.crt"));
  EXPECT_FALSE(refused.rebuilt.has_value());
  EXPECT_FALSE(refused.pending);
  EXPECT_NE(refused.detail.find("fetching " + server_.Url("/leaf.crt") +
                                " failed: the certificate 'CN=not a CA,O=Example' it serves is "
                                "not a CA certificate"),
            std::string::npos)
      << refused.detail;

  // Same name as the real issuer, another key: it cannot have issued the leaf.
  const ChainEvidence evidence = LeafAlone("/unrelated.crt");
  IssuerCompletion unchained = Complete(evidence);
  EXPECT_FALSE(unchained.rebuilt.has_value());
  EXPECT_NE(unchained.detail.find("the CA certificate 'CN=Rev Issuing CA,O=Example' fetched from " +
                                  server_.Url("/unrelated.crt") + " cannot have issued"),
            std::string::npos)
      << unchained.detail;
  Decision decision = Evaluate(policy_, &evidence, clock_);
  NoteIssuerFetch(unchained, false, &decision);
  EXPECT_EQ(decision.reason(), CG_REASON_CHAIN_INCOMPLETE);
  EXPECT_NE(decision.findings().front().detail.find("cannot have issued"), std::string::npos);
}

TEST_F(IssuerFetchTest, AFetchedRootIsNeverAnAnchor) {
  // The leaf's issuer is served, with an untrusted root above it: the chain
  // is built, but ends at a root the server does not trust.
  pki::Issued other_root = pki_->SelfSigned(pki::PkiBuilder::CaSpec("CN=Other Root,O=Example"));
  pki::CertSpec ca_spec = pki::PkiBuilder::CaSpec("CN=Other CA,O=Example");
  ca_spec.ca_issuer_urls = {server_.Url("/other-root.crt")};
  pki::Issued other_ca = pki_->Issue(other_root, ca_spec);
  server_.Set("/other-ca.crt", {200, other_ca.Der()});
  server_.Set("/other-root.crt", {200, other_root.Der()});
  pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=foreign,O=Example");
  spec.ca_issuer_urls = {server_.Url("/other-ca.crt")};
  pki::Issued leaf = pki_->Issue(other_ca, spec);
  trust_ = Trust(false);
  const ChainEvidence evidence =
      BuildChainEvidence(leaf.cert.get(), nullptr, trust_.get(), pki_->now());
  IssuerCompletion completion;
  for (int round = 0; round < 4; ++round) {
    completion = checker_->CompleteChain(evidence, trust_.get(), policy_, clock_.Now());
    if (!completion.pending) break;
    checker_->WaitForFetches(completion.rebuilt ? *completion.rebuilt : evidence,
                             std::chrono::seconds(5));
  }
  ASSERT_TRUE(completion.rebuilt.has_value()) << completion.detail;
  EXPECT_EQ(completion.rebuilt->chain.size(), 3u) << "two levels fetched";
  EXPECT_FALSE(completion.rebuilt->anchored);
  Decision decision = Evaluate(policy_, &*completion.rebuilt, clock_);
  EXPECT_EQ(decision.verdict(), CG_VERDICT_DENY);
  EXPECT_EQ(decision.reason(), CG_REASON_UNTRUSTED_ISSUER);
}

TEST_F(IssuerFetchTest, ADeadUrlIsNamedWithItsError) {
  TestHttpServer dead;
  const std::string url = dead.Url("/gone.crt");
  dead.Set("/gone.crt", {404, "not here"});
  pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=alone,O=Example");
  spec.ca_issuer_urls = {url};
  pki::Issued leaf = pki_->Issue(issuing_, spec);
  trust_ = Trust(false);
  const ChainEvidence evidence =
      BuildChainEvidence(leaf.cert.get(), nullptr, trust_.get(), pki_->now());
  IssuerCompletion completion = Complete(evidence);
  EXPECT_FALSE(completion.pending);
  EXPECT_NE(completion.detail.find("fetching " + url + " failed: HTTP 404"), std::string::npos)
      << completion.detail;
}

TEST_F(IssuerFetchTest, FetchAllowApplies) {
  SetPolicy("fetch_allow", {"pki.example"});
  server_.Set("/issuing.crt", {200, issuing_.Der()});
  IssuerCompletion completion = Complete(LeafAlone("/issuing.crt"));
  EXPECT_FALSE(completion.pending);
  EXPECT_NE(completion.detail.find("host 127.0.0.1 is not in certgate_fetch_allow"),
            std::string::npos)
      << completion.detail;
  EXPECT_EQ(server_.Hits("/"), 0);
}

TEST_F(IssuerFetchTest, TheStoreKeepsABoundedNumberOfUrls) {
  RevocationStore &store = checker_->store();
  for (size_t i = 0; i <= kMaxFetchedIssuerUrls; ++i) {
    auto txn = store.Write();
    ASSERT_TRUE(txn.ok());
    FetchedIssuers record;
    record.fetched_at = 1000 + static_cast<int64_t>(i);
    record.certs_der = {issuing_.Der()};
    ASSERT_TRUE(txn->PutFetchedIssuers("http://pki.example/" + std::to_string(i), record).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  auto listing = store.List();
  ASSERT_TRUE(listing.ok());
  EXPECT_EQ(listing->fetched_issuers.size(), kMaxFetchedIssuerUrls);
  auto read = store.Read();
  ASSERT_TRUE(read.ok());
  EXPECT_FALSE(read->GetFetchedIssuers("http://pki.example/0").has_value());  // the oldest
  EXPECT_TRUE(read->GetFetchedIssuers("http://pki.example/256").has_value());
  ASSERT_TRUE(store.Purge().ok());
  EXPECT_TRUE(store.List()->fetched_issuers.empty());
}

}  // namespace
}  // namespace certgate::testing
