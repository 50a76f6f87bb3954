// Self-checks (self_checks.h): each check found when its condition holds and
// silent when it does not, with certificates from the test PKI builder.
#include <certgate/cert_facts.h>
#include <certgate/certgate.h>
#include <certgate/self_checks.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <pki_builder.h>
#include <unistd.h>

#include <cstdio>
#include <set>

#include "cert_fields.h"
#include "directive_names.h"

namespace certgate {
namespace {

using pki::Issued;
using pki::PkiBuilder;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1800000000;

class SelfChecksTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = pki_.SelfSigned(PkiBuilder::CaSpec("CN=Root,O=T"));
    inter_ = pki_.Issue(root_, PkiBuilder::CaSpec("CN=Issuing,O=T"));
    ASSERT_TRUE(root_ && inter_) << pki_.last_error();
    ASSERT_TRUE(policy_.Set("certgate", {"require"}).ok());
  }

  // The server trusts `anchors` and sends their names.
  std::vector<SelfCheckFinding> Run(const std::vector<Issued> &anchors) {
    ServerTrust trust;
    trust.store.reset(X509_STORE_new());
    for (const Issued &a : anchors) {
      trust.anchors.push_back(a.cert);
      X509_STORE_add_cert(trust.store.get(), a.cert.get());
      trust.ca_names_der.push_back(NameDer(X509_get_subject_name(a.cert.get())));
      trust.ca_names_text.push_back(NameToString(X509_get_subject_name(a.cert.get())));
    }
    trust.now = kNow;
    trust.verify_client_on = verify_client_on_;
    return RunSelfChecks(policy_, trust);
  }

  static std::vector<std::string> Named(const std::vector<SelfCheckFinding> &findings,
                                        const std::string &name) {
    std::vector<std::string> messages;
    for (const auto &f : findings) {
      if (f.name == name) messages.push_back(f.message);
    }
    return messages;
  }

  void TrustedIssuers(const std::vector<Issued> &cas) {
    CertList list{"/etc/ssl/issuers.pem", {}};
    for (const Issued &c : cas) list.certs.push_back(c.cert);
    policy_.trusted_issuers = list;
  }

  PkiBuilder pki_{kNow};
  Issued root_, inter_;
  Policy policy_;
  bool verify_client_on_ = false;
};

TEST_F(SelfChecksTest, ASoundServerHasNoFinding) {
  TrustedIssuers({inter_});
  EXPECT_TRUE(Run({root_}).empty());
}

TEST_F(SelfChecksTest, CaNamesOver16KiBAreCountedWithTheLargest) {
  std::vector<Issued> cas;
  for (int i = 0; i < 200; ++i) {
    auto spec = PkiBuilder::CaSpec("CN=Example Client Authority number " + std::to_string(i) +
                                   " with a long name,OU=Certificate Services,O=Example");
    cas.push_back(pki_.Issue(root_, spec));
  }
  const auto found = Named(Run(cas), "ca_names_size");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_THAT(found[0], HasSubstr("certgate: check=ca_names_size the server sends 200 CA names, "));
  EXPECT_THAT(found[0], HasSubstr("TLS 1.3 cannot send more than about 64 KiB"));
  EXPECT_THAT(found[0], HasSubstr("largest: 'CN=Example Client Authority number 100"));
  EXPECT_THAT(found[0], HasSubstr("ssl_trusted_certificate"));
  // 100 such names stay under 16 KiB.
  cas.resize(100);
  EXPECT_TRUE(Named(Run(cas), "ca_names_size").empty());
}

TEST_F(SelfChecksTest, ExpiredAndExpiringCas) {
  auto expired_spec = PkiBuilder::CaSpec("CN=Old,O=T");
  expired_spec.not_after = kNow - 10;
  auto soon_spec = PkiBuilder::CaSpec("CN=Soon,O=T");
  soon_spec.not_after = kNow + 3 * 86400;
  Issued expired = pki_.SelfSigned(expired_spec), soon = pki_.SelfSigned(soon_spec);
  const auto found = Named(Run({root_, expired, soon}), "ca_expiring");
  ASSERT_EQ(found.size(), 2u);
  EXPECT_THAT(found[0], HasSubstr("'CN=Old,O=T' expired on"));
  EXPECT_THAT(found[1], HasSubstr("'CN=Soon,O=T' expires on"));
  ASSERT_TRUE(policy_.Set("expiry_warning", {"1d"}).ok());
  EXPECT_EQ(Named(Run({root_, expired, soon}), "ca_expiring").size(), 1u);
}

TEST_F(SelfChecksTest, IssuerNoAnchorReachesIsFatal) {
  Issued stranger = pki_.SelfSigned(PkiBuilder::CaSpec("CN=Stranger,O=X"));
  TrustedIssuers({inter_, stranger});
  const auto findings = Run({root_});
  ASSERT_EQ(Named(findings, "issuer_not_trusted").size(), 1u);
  EXPECT_TRUE(findings[0].fatal);
  EXPECT_THAT(findings[0].message, HasSubstr("'CN=Stranger,O=X' in certgate_trusted_issuers "
                                             "\"/etc/ssl/issuers.pem\" reaches no trust anchor"));
  // An expired anchor still reaches (time is ca_expiring's business).
  auto old_root_spec = PkiBuilder::CaSpec("CN=Old Root,O=T");
  old_root_spec.not_after = kNow - 10;
  Issued old_root = pki_.SelfSigned(old_root_spec);
  TrustedIssuers({pki_.Issue(old_root, PkiBuilder::CaSpec("CN=Under Old,O=T"))});
  EXPECT_TRUE(Named(Run({old_root}), "issuer_not_trusted").empty());
}

TEST_F(SelfChecksTest, CaWhoseEkuExcludesClientAuth) {
  auto spec = PkiBuilder::CaSpec("CN=Servers Only,O=T");
  spec.eku = {"serverAuth"};
  Issued servers = pki_.Issue(root_, spec);
  TrustedIssuers({servers});
  const auto found = Named(Run({root_}), "ca_no_client_auth");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_THAT(found[0], HasSubstr("'CN=Servers Only,O=T'"));
  EXPECT_THAT(found[0], HasSubstr("wrong_purpose"));
  spec.subject = "CN=Both,O=T";
  spec.eku = {"serverAuth,clientAuth"};
  TrustedIssuers({pki_.Issue(root_, spec)});
  EXPECT_TRUE(Named(Run({root_}), "ca_no_client_auth").empty());
}

TEST_F(SelfChecksTest, VerifyClientOn) {
  EXPECT_TRUE(Named(Run({root_}), "verify_client_on").empty());
  verify_client_on_ = true;
  const auto found = Named(Run({root_}), "verify_client_on");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_THAT(found[0], HasSubstr("optional_no_ca"));
}

TEST_F(SelfChecksTest, HardFailWithoutAnyRevocationSource) {
  TrustedIssuers({inter_});
  EXPECT_TRUE(Named(Run({root_}), "revocation_no_source").empty());  // revocation off
  ASSERT_TRUE(policy_.Set("revocation", {"hard_fail"}).ok());
  const auto found = Named(Run({root_}), "revocation_no_source");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_THAT(found[0], HasSubstr("'CN=Issuing,O=T'"));
  EXPECT_THAT(found[0], HasSubstr("revocation_unavailable"));

  // A CDP on the issuing CA's own certificate is a source.
  auto spec = PkiBuilder::CaSpec("CN=Published,O=T");
  spec.crl_urls = {"http://pki.example.com/root.crl"};
  TrustedIssuers({pki_.Issue(root_, spec)});
  EXPECT_TRUE(Named(Run({root_}), "revocation_no_source").empty());

  // So is a preloaded CRL of the CA.
  TrustedIssuers({inter_});
  auto crl = pki_.Crl(inter_, {}, 1, kNow - 60, kNow + 86400);
  char path[] = "/tmp/certgate-selfcheck-crl-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  FILE *f = fdopen(fd, "w");
  PEM_write_X509_CRL(f, crl.get());
  fclose(f);
  policy_.crl = std::vector<std::string>{path};
  EXPECT_TRUE(Named(Run({root_}), "revocation_no_source").empty());
  unlink(path);
}

TEST_F(SelfChecksTest, FetchAllowExcludingACaHost) {
  auto spec = PkiBuilder::CaSpec("CN=Published,O=T");
  spec.crl_urls = {"http://crl.example.com/root.crl"};
  spec.ocsp_urls = {"http://ocsp.example.com/"};
  TrustedIssuers({pki_.Issue(root_, spec)});
  ASSERT_TRUE(policy_.Set("revocation", {"soft_fail"}).ok());
  ASSERT_TRUE(policy_.Set("fetch_allow", {"crl.example.com"}).ok());
  const auto found = Named(Run({root_}), "fetch_allow");
  ASSERT_EQ(found.size(), 1u);
  EXPECT_THAT(found[0], HasSubstr("http://ocsp.example.com/"));
  EXPECT_THAT(found[0], HasSubstr("excludes its host ocsp.example.com"));
}

TEST_F(SelfChecksTest, CacheDirNotWritableByTheWorker) {
  char dir[] = "/tmp/certgate-selfcheck-cache-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  ASSERT_TRUE(policy_.Set("revocation", {"soft_fail"}).ok());
  ASSERT_TRUE(policy_.Set("cache", {dir}).ok());
  ServerTrust trust;
  trust.now = kNow;
  trust.worker_uid = 65534;  // nobody: the directory (0700) is not theirs
  trust.worker_gid = 65534;
  auto findings = RunSelfChecks(policy_, trust);
  if (geteuid() != 65534) {
    ASSERT_EQ(Named(findings, "cache_dir").size(), 1u);
    EXPECT_THAT(Named(findings, "cache_dir")[0], HasSubstr("not writable by the worker user"));
  }
  trust.worker_uid = static_cast<long>(geteuid());
  trust.worker_gid = static_cast<long>(getegid());
  EXPECT_TRUE(Named(RunSelfChecks(policy_, trust), "cache_dir").empty());
  rmdir(dir);
}

TEST_F(SelfChecksTest, MessagesUseTheServersSpelling) {
  verify_client_on_ = false;
  Issued stranger = pki_.SelfSigned(PkiBuilder::CaSpec("CN=Stranger,O=X"));
  TrustedIssuers({stranger});
  SetDirectiveStyle(DirectiveStyle::kHttpd);
  const auto found = Named(Run({root_}), "issuer_not_trusted");
  SetDirectiveStyle(DirectiveStyle::kNginx);
  ASSERT_EQ(found.size(), 1u);
  EXPECT_THAT(found[0], HasSubstr("in CertGateTrustedIssuers"));
}

TEST(SelfCheckTable, EveryCheckIsListedOnceAndOnlyIssuerNotTrustedIsFatal) {
  std::set<std::string_view> names;
  for (const SelfCheck &c : SelfChecks()) {
    EXPECT_TRUE(names.insert(c.name).second) << c.name;
    EXPECT_EQ(c.fatal, c.name == "issuer_not_trusted" || c.name == "fetch_issuers_allow") << c.name;
  }
  EXPECT_EQ(names.size(), 9u);
}

}  // namespace
}  // namespace certgate

// ---- the C API: httpd's directives, the sections registry ----

namespace certgate {
namespace {

class SelfCheckCApi : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(mkdtemp(dir_), nullptr);
    pki::PkiBuilder pki(kNow);
    Issued root = pki.SelfSigned(PkiBuilder::CaSpec("CN=Root,O=T"));
    stranger_ = pki.SelfSigned(PkiBuilder::CaSpec("CN=Stranger,O=X"));
    std::FILE *f = std::fopen((std::string(dir_) + "/ca.pem").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(root.Pem().c_str(), f);
    std::fclose(f);
    f = std::fopen((std::string(dir_) + "/issuers.pem").c_str(), "w");
    ASSERT_NE(f, nullptr);
    std::fputs(stranger_.Pem().c_str(), f);
    std::fclose(f);
    policy_ = cg_policy_new();
    cg_error error;
    cg_str on = {"require", 7};
    ASSERT_EQ(cg_policy_set(policy_, "certgate", &on, 1, &error), CG_OK);
  }
  void TearDown() override {
    cg_policy_free(policy_);
    std::remove((std::string(dir_) + "/ca.pem").c_str());
    std::remove((std::string(dir_) + "/issuers.pem").c_str());
    rmdir(dir_);
  }
  char dir_[40] = "/tmp/certgate-selfcheck-capi-XXXXXX";
  Issued stranger_;
  cg_policy *policy_ = nullptr;
};

TEST_F(SelfCheckCApi, HttpdDirectivesRelativeToServerRootAndOnlyWithSslEngineOn) {
  const std::string issuers = std::string(dir_) + "/issuers.pem";
  cg_str arg = {issuers.c_str(), issuers.size()};
  cg_error error;
  ASSERT_EQ(cg_policy_set(policy_, "CertGateTrustedIssuers", &arg, 1, &error), CG_OK);
  // Main server: SSLEngine on, a CA file that is not there; the virtual host's
  // own (quoted, relative to ServerRoot) comes last and wins.
  const char *directives[] = {"SSLEngine",  "on", "SSLCACertificateFile", "/nonexistent.pem",
                              "ServerName", "x",  "SSLCACertificateFile", "\"ca.pem\""};
  cg_selfcheck_server server = {};
  server.httpd_directives = directives;
  server.httpd_directive_count = 4;
  server.server_root = dir_;
  server.worker_uid = server.worker_gid = -1;
  cg_findings *found = cg_selfcheck(policy_, &server);
  ASSERT_NE(found, nullptr);
  ASSERT_EQ(cg_findings_count(found), 1u);
  EXPECT_STREQ(cg_finding_name(found, 0), "issuer_not_trusted");
  EXPECT_EQ(cg_finding_fatal(found, 0), 1);
  EXPECT_THAT(cg_finding_message(found, 0), HasSubstr("'CN=Stranger,O=X'"));
  cg_findings_free(found);
  // Without SSLEngine on there is no TLS to check.
  directives[1] = "off";
  found = cg_selfcheck(policy_, &server);
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(cg_findings_count(found), 0u);
  cg_findings_free(found);
}

TEST(SectionsCApi, RevocationInASectionOfTheServerOrTheMainServer) {
  cg_sections *sections = cg_sections_new();
  cg_policy *section = cg_policy_new();
  cg_error error;
  cg_str soft = {"soft_fail", 9};
  ASSERT_EQ(cg_policy_set(section, "revocation", &soft, 1, &error), CG_OK);
  int server_a = 0, server_b = 0, main_server = 0;
  EXPECT_EQ(cg_sections_revocation_enabled(sections, &server_a, &main_server, nullptr), 0);
  ASSERT_EQ(cg_sections_add(sections, &server_b, section), CG_OK);
  EXPECT_EQ(cg_sections_revocation_enabled(sections, &server_a, &main_server, nullptr), 0);
  EXPECT_EQ(cg_sections_revocation_enabled(sections, &server_b, &main_server, nullptr), 1);
  ASSERT_EQ(cg_sections_add(sections, &main_server, section), CG_OK);
  EXPECT_EQ(cg_sections_revocation_enabled(sections, &server_a, &main_server, nullptr), 1);
  cg_sections_free(sections);
  cg_policy_free(section);
}

}  // namespace
}  // namespace certgate
