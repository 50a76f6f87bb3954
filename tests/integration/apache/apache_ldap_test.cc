// mod_certgate in apache2 (see apache_test_fixture.h). ApacheLdap (issue 11
// §2): LDAP CDPs. One mpm_event apache2 with a virtual host per scenario
// (18583-18587), each with its own CertGateCache, all hard_fail and trusting
// the AD CS-shaped PKI whose CA publishes only through ldap:/// URLs
// (pki/adcs/ldap/); a real slapd on 18389 holds its base and delta CRLs at DNs
// with spaces and parentheses; an LDAP server that hangs listens on 18390.
#include <gtest/gtest.h>
#include <harness.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "apache_test_fixture.h"

namespace certgate_apache_test {
namespace {

enum : int {
  kLdap = 18583,  // CertGateLdapServer = slapd, the whole chain
  kNoServer,      // no CertGateLdapServer
  kOrder,         // a server refusing connections, then slapd
  kHang,          // a server that never answers, CertGateFetchTimeout 1s
  kMissing,       // slapd, the client whose CDP entry does not exist
};
constexpr int kSlapdPort = 18389;
constexpr int kHangPort = 18390;
constexpr int kClosedPort = 18391;

const char kCdpDn[] =
    "CN=Corp%20Directory%20CA%203(1)%2CCN=CRL%2CCN=CDP%2CCN=Public%20Key%20Services%2C"
    "CN=Services%2CCN=Configuration%2CDC=corp%2CDC=example%2CDC=com";

class ApacheLdap : public ::testing::Test {
 protected:
  struct Shared {
    std::unique_ptr<h::TempDir> dir;
    std::unique_ptr<h::Slapd> slapd;
    std::unique_ptr<h::Blackhole> hang;
    std::unique_ptr<Apache> server;
    std::string error;
  };
  static Shared &S() {
    static Shared shared;
    return shared;
  }

  static std::string Vhost(int port, const std::string &root, const std::string &name,
                           const std::string &directives) {
    std::string vhost = VirtualHost(port, "optional_no_ca",
                                    "  CertGate require\n  CertGateRevocation hard_fail\n"
                                    "  CertGateRevocationSources crl\n"
                                    "  CertGateRevocationWait 5s\n  CertGateCache " +
                                        root + "/cache-" + name + "\n" + directives);
    const std::string trust = "/ca/trust.pem";
    vhost.replace(vhost.find(trust), trust.size(), "/adcs/root.pem");
    return vhost;
  }

  static void SetUpTestSuite() {
    Shared &s = S();
    if (!SharedPki().error.empty()) {
      s.error = "PKI generation failed: " + SharedPki().error;
      return;
    }
    s.dir = std::make_unique<h::TempDir>("certgate-apache-ldap");
    s.slapd = std::make_unique<h::Slapd>();
    s.error = s.slapd->Start(s.dir->path() + "/slapd",
                             SharedPki().path + "/adcs/ldap/directory.ldif", kSlapdPort);
    if (!s.error.empty()) return;
    s.hang = std::make_unique<h::Blackhole>();
    if (!s.hang->Listen(kHangPort)) {
      s.error = "cannot listen on " + std::to_string(kHangPort);
      return;
    }
    s.server = std::make_unique<Apache>("event");
    const std::string root = s.server->root();
    const std::string slapd = "127.0.0.1:" + std::to_string(kSlapdPort);
    const std::string leaf = "  CertGateRevocationScope leaf\n";
    const std::string vhosts =
        Vhost(kLdap, root, "ldap",
              "  CertGateLdapServer " + slapd + "\n  CertGateFetchAllow 127.0.0.1\n") +
        Vhost(kNoServer, root, "noserver", leaf) +
        Vhost(kOrder, root, "order",
              leaf + "  CertGateLdapServer 127.0.0.1:" + std::to_string(kClosedPort) + " " + slapd +
                  "\n") +
        Vhost(kHang, root, "hang",
              leaf + "  CertGateFetchTimeout 1s\n  CertGateLdapServer 127.0.0.1:" +
                  std::to_string(kHangPort) + "\n") +
        Vhost(kMissing, root, "missing", leaf + "  CertGateLdapServer " + slapd + "\n");
    s.error = s.server->Start(vhosts, kMissing);
  }
  static void TearDownTestSuite() {
    S().server.reset();
    S().slapd.reset();
    S().hang.reset();
    S().dir.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(S().error.empty()) << S().error;
    server_ = S().server.get();
  }

  // The certgate error-log line with every needle (its subject names the client).
  static std::string ErrorLine(h::LogTail &errors, const std::vector<std::string> &needles) {
    const std::string text = errors.WaitFor(needles.front(), 5000);
    auto lines = h::GrepLines(text, needles);
    return lines.empty() ? "(no line in:\n" + text + ")" : lines.back();
  }

  static Reply Ask(int port, const std::string &tag, const std::string &client) {
    return Get(port, "/?" + tag, "../adcs/ldap/clients/" + client);
  }

  Apache *server_ = nullptr;
};

TEST_F(ApacheLdap, LdapCdpIsFetchedFromTheConfiguredServer) {
  h::LogTail access(server_->access_log());
  Reply reply = Ask(kLdap, "ldap-good", "good");
  EXPECT_EQ(reply.status, 200) << reply.raw;
  access.WaitFor("?ldap-good ", 5000);
  const std::string line = access.ReadNew();
  EXPECT_NE(line.find(std::string("good crl ldap:///") + kCdpDn +
                      "?certificateRevocationList?base?objectClass=cRLDistributionPoint "
                      "crl_number=8192 delta=8193"),
            std::string::npos)
      << line;

  h::LogTail errors(server_->error_log());
  reply = Ask(kLdap, "ldap-base-revoked", "base-revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  std::string refusal = ErrorLine(errors, {"reason=revoked", "CN=adcs-ldap-base-revoked"});
  EXPECT_NE(refusal.find("reason=revoked"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find("keyCompromise"), std::string::npos) << refusal;

  reply = Ask(kLdap, "ldap-delta-revoked", "delta-revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  refusal = ErrorLine(errors, {"reason=revoked", "CN=adcs-ldap-delta-revoked"});
  EXPECT_NE(refusal.find("reason=revoked"), std::string::npos) << refusal;
  EXPECT_NE(refusal.find(std::string("crl ldap:///") + kCdpDn +
                         "?deltaRevocationList?base?objectClass=cRLDistributionPoint "
                         "crl_number=8192 delta=8193"),
            std::string::npos)
      << refusal;
}

TEST_F(ApacheLdap, WithoutLdapServerTheUrlIsNamedNotSkipped) {
  h::LogTail errors(server_->error_log());
  const Reply reply = Ask(kNoServer, "ldap-noserver", "good");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_NE(reply.body.find("revocation_unavailable"), std::string::npos) << reply.body;
  const std::string line = ErrorLine(errors, {"reason=", "CN=adcs-ldap-good"});
  EXPECT_NE(line.find("reason=revocation_unavailable"), std::string::npos) << line;
  EXPECT_NE(line.find(std::string("crl ldap:///") + kCdpDn), std::string::npos) << line;
  EXPECT_NE(line.find("no LDAP server configured for an ldap:/// URL (CertGateLdapServer)"),
            std::string::npos)
      << line;
}

TEST_F(ApacheLdap, ServersAreTriedInOrder) {
  EXPECT_EQ(Ask(kOrder, "ldap-order-good", "good").status, 200);
  EXPECT_EQ(Ask(kOrder, "ldap-order-delta-revoked", "delta-revoked").status, 403);
}

TEST_F(ApacheLdap, HangingLdapServerTimesOutWithinFetchTimeout) {
  h::LogTail errors(server_->error_log());
  const auto start = std::chrono::steady_clock::now();
  const Reply reply = Ask(kHang, "ldap-hang", "good");
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  EXPECT_EQ(reply.status, 403) << reply.raw;
  // (1 s, not the 2 s of the nginx suite: with 2 s httpd answered at 2 s with
  // a decision kept from before the fetch ended, whose detail still said "not
  // fetched yet"; a connection keeps decisions by outcome, not by detail.)
  EXPECT_GE(ms, 900);
  EXPECT_LT(ms, 3500);  // fetch_timeout 1s, well before CertGateRevocationWait 5s
  const std::string line = ErrorLine(errors, {"reason=", "CN=adcs-ldap-good"});
  EXPECT_NE(line.find("reason=revocation_unavailable"), std::string::npos) << line;
  EXPECT_NE(line.find("timed out after 1000 ms (CertGateFetchTimeout) (LDAP server "
                      "127.0.0.1:" +
                      std::to_string(kHangPort) + ")"),
            std::string::npos)
      << line;
}

TEST_F(ApacheLdap, NoSuchObjectIsAClearError) {
  h::LogTail errors(server_->error_log());
  const Reply reply = Ask(kMissing, "ldap-missing", "missing");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  const std::string line = ErrorLine(errors, {"reason=", "CN=adcs-ldap-missing"});
  EXPECT_NE(line.find("reason=revocation_unavailable"), std::string::npos) << line;
  EXPECT_NE(line.find("CN=Corp%20Directory%20CA%203(9)"), std::string::npos) << line;
  EXPECT_NE(line.find("the LDAP search failed: "), std::string::npos) << line;
  EXPECT_NE(line.find("No such object"), std::string::npos) << line;
  EXPECT_NE(line.find("(LDAP server 127.0.0.1:" + std::to_string(kSlapdPort) + ")"),
            std::string::npos)
      << line;
}

}  // namespace
}  // namespace certgate_apache_test
