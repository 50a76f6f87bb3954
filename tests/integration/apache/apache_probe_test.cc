// Issue 12 §1: `certgate probe` against Debian's apache2 with mod_certgate
// (mpm_event, 127.0.0.1:18514-18516).
//
//   18514  two name-based virtual hosts: a.example (first: the demo server
//          certificate, CA names Example Root + Other Root) and b.example (its
//          own certificate, CA names Other Root only); CertGate require with
//          CertGateRejectHeader on; /detail with CertGateRejectDetail on,
//          /nobody with CertGateRejectBody off.
//   18515  an SSLCACertificateFile of 302 CAs (a CertificateRequest over 16 KiB).
//   18516  TLS 1.3 only.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "apache_test_fixture.h"
#include "probe_support.h"

namespace certgate_apache_test {
namespace {

constexpr int kSni = 18514, kManyCas = 18515, kTls13 = 18516;

std::string Url(int port, const std::string &path = "/") {
  return "https://127.0.0.1:" + std::to_string(port) + path;
}

class ApacheProbe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new Apache("event");
    const std::string &pki = SharedPki().path;
    const std::string extra = server_->root() + "/probe";
    h::MakeDirs(extra);
    error_ = SharedPki().error;
    if (error_.empty()) error_ = h::WriteManyCas(extra + "/many-cas.pem", 302);
    if (error_.empty()) error_ = h::WriteServerCert(extra + "/b-example", "b.example");
    if (!error_.empty()) return;
    const std::string certgate =
        "  CertGate require\n  CertGateRejectHeader on\n"
        "  <Location /detail>\n    CertGateRejectDetail on\n    CertGateRejectHeader off\n"
        "  </Location>\n  <Location /nobody>\n    CertGateRejectBody off\n  </Location>\n";
    const std::string sni = std::to_string(kSni);
    const std::string vhosts =
        "Listen 127.0.0.1:" + sni + "\n<VirtualHost 127.0.0.1:" + sni +
        ">\n  ServerName a.example\n  SSLEngine on\n  SSLCertificateFile " + pki +
        "/server/server-chain.pem\n  SSLCertificateKeyFile " + pki +
        "/server/server.key\n  SSLCACertificateFile " + pki + "/ca/trust.pem\n" + certgate +
        "</VirtualHost>\n<VirtualHost 127.0.0.1:" + sni +
        ">\n  ServerName b.example\n  SSLEngine on\n  SSLCertificateFile " + extra +
        "/b-example.pem\n  SSLCertificateKeyFile " + extra +
        "/b-example.key\n  SSLCACertificateFile " + pki + "/ca/other-root.pem\n" + certgate +
        "</VirtualHost>\n" +
        VirtualHost(kManyCas, "", certgate)
            .replace(VirtualHost(kManyCas, "", certgate).find(pki + "/ca/trust.pem"),
                     (pki + "/ca/trust.pem").size(), extra + "/many-cas.pem") +
        VirtualHost(kTls13, "", certgate + "  SSLProtocol -all +TLSv1.3\n");
    h::MakeWorldReadable(extra);
    error_ = server_->Start(vhosts, kTls13);
  }

  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

  void SetUp() override {
    ASSERT_FALSE(h::CertgateCliPath().empty()) << "the certgate CLI is not built";
    ASSERT_TRUE(error_.empty()) << error_;
  }

  static std::string pki() { return SharedPki().path; }

  static Apache *server_;
  static std::string error_;
};

Apache *ApacheProbe::server_ = nullptr;
std::string ApacheProbe::error_;

TEST_F(ApacheProbe, AllowedAndRefusedClientsWithTheirExitCodes) {
  h::RunResult r =
      h::RunProbe(Url(kSni), h::With(h::ProbeClient(pki(), "good"), {"--servername", "a.example"}));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("acceptable CA names: 2 ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("client chain: the client's chain matches CA name"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("status: HTTP/1.1 200 OK"), std::string::npos) << r.out;

  // The reason from the header, from the body (CertGateRejectDetail on), and
  // from the header with CertGateRejectBody off (httpd's own error page).
  h::ExpectProbeNamesRefusal(pki(), "a.example", Url(kSni), Url(kSni, "/detail/"),
                             Url(kSni, "/nobody/"));
  r = h::RunProbe(Url(kSni), {"--servername", "a.example", "--json"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_EQ(h::JsonQuery(r.out,
                         "(d['result'], d['exit'], d['request']['status'], "
                         "d['request']['reason_header'])"),
            "('refused', 2, 403, 'no_cert')");
}

TEST_F(ApacheProbe, IssuerNotInTheCaNamesAndTheSniDifference) {
  const h::RunResult r =
      h::RunProbe(Url(kSni), h::With(h::ProbeClient(pki(), "good"), {"--servername", "b.example"}));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.out.find("client chain: NO MATCH: no certificate of the client's chain was issued "
                       "by one of the 1 CA names"),
            std::string::npos)
      << r.out;
  // Its root is not trusted there either: certgate refuses and says why.
  EXPECT_NE(r.out.find("status: HTTP/1.1 403 Forbidden"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("certgate reason: chain_incomplete (from the X-Certgate-Reason header)"),
            std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("the server certificate differs without SNI"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the certificate request (CA names) differs without SNI"), std::string::npos)
      << r.out;
}

TEST_F(ApacheProbe, KeyMismatch) {
  const h::RunResult r = h::RunProbe(
      Url(kSni), h::With(h::ProbeClient(pki(), "good", "expired"), {"--servername", "a.example"}));
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.out.find("key: MISMATCH: the EC prime256v1 key does not match the certificate "
                       "\"CN=alice,OU=People,O=Example\" (same type, another key pair)"),
            std::string::npos)
      << r.out;
}

TEST_F(ApacheProbe, TlsVersionRefusedAnd302CaNames) {
  h::RunResult r = h::RunProbe(Url(kTls13), h::With(h::ProbeClient(pki(), "good"), {"--tls1.2"}));
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  r = h::RunProbe(Url(kTls13), {"--json"});
  EXPECT_EQ(h::JsonQuery(r.out, "[(v['version'], v['accepted']) for v in d['versions']]"),
            "[('TLSv1', False), ('TLSv1.1', False), ('TLSv1.2', False), ('TLSv1.3', True)]");
  r = h::RunProbe(Url(kManyCas), {"--json"});
  EXPECT_EQ(h::JsonQuery(r.out, "d['certificate_request']['ca_names_count']"), "302");
  EXPECT_EQ(h::JsonQuery(r.out, "d['certificate_request']['ca_names_bytes'] > 16384"), "True");
  EXPECT_EQ(h::JsonQuery(r.out, "'above 16 KiB' in d['warnings'][0]"), "True");
}

}  // namespace
}  // namespace certgate_apache_test
