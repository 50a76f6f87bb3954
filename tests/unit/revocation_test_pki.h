// Shared fixture of the revocation tests: a PKI ("Rev Root" -> "Rev Issuing CA"
// -> leaves), a fixed clock, a temporary LMDB directory and a checker on it.
#pragma once

#include <certgate/chain_evidence.h>
#include <certgate/clock.h>
#include <certgate/ossl_ptr.h>
#include <certgate/policy.h>
#include <certgate/revocation.h>
#include <gtest/gtest.h>
#include <pki_builder.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "revocation/crl.h"

namespace certgate::testing {

constexpr int64_t kRevNow = 1800000000;  // 2027-01-15T08:00:00Z
constexpr int64_t kRevDay = 86400;

class RevocationFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = TempRoot() + "/certgate-rev-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    pki_ = std::make_unique<pki::PkiBuilder>(kRevNow);
    root_ = pki_->SelfSigned(pki::PkiBuilder::CaSpec("CN=Rev Root,O=Example"));
    issuing_ = pki_->Issue(root_, pki::PkiBuilder::CaSpec("CN=Rev Issuing CA,O=Example"));
    ASSERT_TRUE(root_ && issuing_) << pki_->last_error();
    Reopen();
    SetPolicy("revocation", {"cache_only"});
    SetPolicy("revocation_scope", {"leaf"});
  }

  // Where the test's directory goes (a test of many small commits may want tmpfs).
  virtual std::string TempRoot() const { return "/tmp"; }

  void TearDown() override {
    checker_.reset();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  void Reopen() {
    checker_.reset();
    auto opened = RevocationChecker::Open(dir_ + "/cache", clock_);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    checker_ = std::move(opened).value();
  }

  void SetPolicy(const std::string &key, const std::vector<std::string> &args) {
    Status status = policy_.Set(key, args);
    ASSERT_TRUE(status.ok()) << status.message();
  }

  pki::Issued Leaf(const std::string &cn, std::vector<std::string> crl_urls = {},
                   std::vector<std::string> ocsp_urls = {}) {
    pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=" + cn + ",O=Example");
    spec.crl_urls = std::move(crl_urls);
    spec.ocsp_urls = std::move(ocsp_urls);
    return pki_->Issue(issuing_, spec);
  }

  static uint64_t Serial(const pki::Issued &cert) {
    return ASN1_INTEGER_get(X509_get0_serialNumber(cert.cert.get()));
  }

  // An anchored chain leaf -> issuing -> root (root trusted).
  ChainEvidence Evidence(const pki::Issued &leaf) {
    ossl::UniquePtr<X509_STORE> store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), root_.cert.get());
    ossl::UniquePtr<STACK_OF(X509)> sent(sk_X509_new_null());
    X509_up_ref(issuing_.cert.get());
    sk_X509_push(sent.get(), issuing_.cert.get());
    return BuildChainEvidence(leaf.cert.get(), sent.get(), store.get(), pki_->now());
  }

  // A trust store holding the root and, when asked, the issuing CA.
  ossl::UniquePtr<X509_STORE> Trust(bool with_issuing) {
    ossl::UniquePtr<X509_STORE> store(X509_STORE_new());
    X509_STORE_add_cert(store.get(), root_.cert.get());
    if (with_issuing) X509_STORE_add_cert(store.get(), issuing_.cert.get());
    return store;
  }

  std::string WriteCrl(const std::string &name, X509_CRL *crl, bool pem = false) {
    std::string path = dir_ + "/crls/" + name;
    EXPECT_TRUE(pki::WriteFile(path, pem ? pki::ToPem(crl) : pki::ToDer(crl)));
    return path;
  }

  std::shared_ptr<X509_CRL> IssuingCrl(std::vector<pki::PkiBuilder::Revoked> revoked,
                                       int64_t number, int64_t next_update = kRevNow + kRevDay) {
    auto crl = pki_->Crl(issuing_, revoked, number, kRevNow - 3600, next_update);
    EXPECT_TRUE(crl) << pki_->last_error();
    return crl;
  }

  // Ingests `crl` straight into the store, as a fetch or preload would.
  Result<IngestResult> Ingest(X509_CRL *crl, X509 *issuer, const std::string &source = "test") {
    Result<ParsedCrl> parsed = ParseCrl(pki::ToDer(crl));
    if (!parsed.ok()) return parsed.status();
    return IngestCrl(checker_->store(), parsed.value(), issuer, source, clock_.Now());
  }

  RevocationAnswer CheckLeaf(const pki::Issued &leaf) {
    std::vector<RevocationAnswer> answers = checker_->Check(Evidence(leaf), policy_);
    EXPECT_FALSE(answers.empty());
    return answers.empty() ? RevocationAnswer{} : answers[0];
  }

  std::string dir_;
  FixedClock clock_{kRevNow};
  std::unique_ptr<pki::PkiBuilder> pki_;
  pki::Issued root_, issuing_;
  std::unique_ptr<RevocationChecker> checker_;
  Policy policy_;
};

}  // namespace certgate::testing
