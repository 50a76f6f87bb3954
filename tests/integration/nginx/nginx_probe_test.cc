// Issue 12 §1: `certgate probe` against Debian's nginx with certgate
// (127.0.0.1:18450-18452) and a plain nginx without it (18455-18456).
//
//   18450  two server blocks: a.example (default; the demo server certificate,
//          CA names Example Root + Other Root) and b.example (its own
//          certificate, CA names Other Root only); certgate require with
//          certgate_reject_header on; /detail with certgate_reject_detail on,
//          /nobody with certgate_reject_body off.
//   18451  a client-CA file of 302 CAs (a CertificateRequest over 16 KiB).
//   18452  TLS 1.3 only.
//   18453  certgate_reject_at handshake.
//   18455  plain nginx, no client certificate asked for.
//   18456  plain nginx, ssl_verify_client on.
// CERTGATE_KEEP_TMP=1 keeps the directory.
#include <gtest/gtest.h>
#include <signal.h>

#include <memory>
#include <string>

#include "harness.h"
#include "probe_support.h"

namespace certgate {
namespace {

namespace h = harness;

constexpr int kSni = 18450, kManyCas = 18451, kTls13 = 18452, kAtHandshake = 18453;
constexpr int kPlain = 18455, kPlainVerify = 18456;

std::string Url(int port, const std::string &path = "/") {
  return "https://127.0.0.1:" + std::to_string(port) + path;
}

class NginxProbe : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new h::TempDir("certgate-nginx-probe");
    const std::string d = dir_->path();
    for (const char *sub : {"/certgate/logs", "/certgate/tmp", "/plain/logs", "/plain/tmp"}) {
      h::MakeDirs(d + sub);
    }
    error_ = h::GeneratePki(pki());
    if (error_.empty()) error_ = h::WriteManyCas(d + "/many-cas.pem", 302);
    if (error_.empty()) error_ = h::WriteServerCert(d + "/b-example", "b.example");
    if (!error_.empty()) return;
    const std::string p = pki();
    auto server = [&](int port, const std::string &name, const std::string &cert,
                      const std::string &key, const std::string &client_cas,
                      const std::string &extra) {
      return "  server {\n    listen 127.0.0.1:" + std::to_string(port) + " ssl http2;\n" +
             "    server_name " + name + ";\n    ssl_certificate " + cert +
             ";\n    ssl_certificate_key " + key + ";\n    ssl_client_certificate " + client_cas +
             ";\n" + extra + "    location / { return 200 \"hello\\n\"; }\n  }\n";
    };
    const std::string demo_cert = p + "/server/server-chain.pem",
                      demo_key = p + "/server/server.key";
    // optional_no_ca: else nginx neither loads ssl_client_certificate nor sends its names.
    const std::string certgate =
        "    ssl_verify_client optional_no_ca;\n    certgate require;\n    certgate_reject_header "
        "on;\n";
    std::string conf =
        "load_module " CERTGATE_NGINX_MODULE_PATH ";\n" +
        h::NginxConfigHead(d + "/certgate", 1, {d + "/certgate/logs/error.log info"}) +
        "  access_log off;\n  ssl_protocols TLSv1.2 TLSv1.3;\n" +
        server(kSni, "a.example", demo_cert, demo_key, p + "/ca/trust.pem",
               certgate +
                   "    location /detail { certgate_reject_detail on; "
                   "certgate_reject_header off; return 200 \"detail\\n\"; }\n"
                   "    location /nobody { certgate_reject_body off; "
                   "return 200 \"nobody\\n\"; }\n") +
        server(kSni, "b.example", d + "/b-example.pem", d + "/b-example.key",
               p + "/ca/other-root.pem", certgate) +
        server(kManyCas, "many", demo_cert, demo_key, d + "/many-cas.pem", certgate) +
        server(kTls13, "tls13", demo_cert, demo_key, p + "/ca/trust.pem",
               certgate + "    ssl_protocols TLSv1.3;\n") +
        server(kAtHandshake, "handshake", demo_cert, demo_key, p + "/ca/trust.pem",
               certgate + "    certgate_reject_at handshake;\n") +
        "}\n";
    h::WriteFile(d + "/certgate/nginx.conf", conf);
    // Debian's nginx as it comes: no certgate.
    conf = h::NginxConfigHead(d + "/plain", 1, {d + "/plain/logs/error.log info"}) +
           "  access_log off;\n  ssl_protocols TLSv1.2 TLSv1.3;\n"
           "  server {\n    listen 127.0.0.1:" +
           std::to_string(kPlain) + " ssl;\n    ssl_certificate " + demo_cert +
           ";\n    ssl_certificate_key " + demo_key +
           ";\n    location / { return 200 \"plain\\n\"; }\n  }\n" +
           server(kPlainVerify, "verify", demo_cert, demo_key, p + "/ca/trust.pem",
                  "    ssl_verify_client on;\n") +
           "}\n";
    h::WriteFile(d + "/plain/nginx.conf", conf);
    h::MakeWorldReadable(d);
    for (const char *which : {"certgate", "plain"}) {
      h::Process *process = new h::Process;
      (std::string(which) == "certgate" ? certgate_ : plain_) = process;
      const std::string prefix = d + "/" + which;
      if (!process->Start({CERTGATE_NGINX_BINARY, "-p", prefix, "-c", prefix + "/nginx.conf"},
                          prefix + "/stdout.log", prefix + "/stderr.log")) {
        error_ = process->error();
        return;
      }
    }
    for (int port : {kSni, kManyCas, kTls13, kAtHandshake, kPlain, kPlainVerify}) {
      if (!h::WaitForPort(port, 10000)) {
        error_ = "nginx is not listening on " + std::to_string(port) + ":\n" +
                 h::ReadFile(d + "/certgate/stderr.log") + h::ReadFile(d + "/plain/stderr.log") +
                 h::ReadFile(d + "/certgate/logs/error.log");
        return;
      }
    }
  }

  static void TearDownTestSuite() {
    for (h::Process *process : {certgate_, plain_}) {
      if (process != nullptr) process->Stop(SIGQUIT, 10000);
      delete process;
    }
    certgate_ = plain_ = nullptr;
    delete dir_;
  }

  void SetUp() override {
    ASSERT_FALSE(h::CertgateCliPath().empty()) << "the certgate CLI is not built";
    ASSERT_TRUE(error_.empty()) << error_;
  }

  static std::string pki() { return dir_->path() + "/pki"; }

  static h::TempDir *dir_;
  static h::Process *certgate_, *plain_;
  static std::string error_;
};

h::TempDir *NginxProbe::dir_ = nullptr;
h::Process *NginxProbe::certgate_ = nullptr;
h::Process *NginxProbe::plain_ = nullptr;
std::string NginxProbe::error_;

TEST_F(NginxProbe, AllowedClientExitsZeroAndItsChainMatchesTheCaNames) {
  const h::RunResult r =
      h::RunProbe(Url(kSni), h::With(h::ProbeClient(pki(), "good"), {"--servername", "a.example"}));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("the server asks for a client certificate"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("acceptable CA names: 2 ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[1] CN=Example Root CA,O=Example"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("client chain: the client's chain matches CA name [1]"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("status: HTTP/1.1 200 OK"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("key: the EC prime256v1 key matches"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Result: allowed (exit 0)"), std::string::npos) << r.out;
}

TEST_F(NginxProbe, RefusedClientExitsTwoWithCertgatesReason) {
  // The reason from certgate_reject_header, from the body with
  // certgate_reject_detail on, and from the header with certgate_reject_body
  // off (nginx's own error page).
  h::ExpectProbeNamesRefusal(pki(), "a.example", Url(kSni), Url(kSni, "/detail"),
                             Url(kSni, "/nobody"));
  h::RunResult r;
  // No certificate at all.
  r = h::RunProbe(Url(kSni), {"--servername", "a.example"});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.out.find("certgate reason: no_cert"), std::string::npos) << r.out;
}

TEST_F(NginxProbe, IssuerNotInTheCaNames) {
  const h::RunResult r =
      h::RunProbe(Url(kSni), h::With(h::ProbeClient(pki(), "good"), {"--servername", "b.example"}));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.out.find("acceptable CA names: 1 ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("client chain: NO MATCH: no certificate of the client's chain was issued "
                       "by one of the 1 CA names (the leaf's issuer is \"CN=Example Issuing "
                       "CA,O=Example\")"),
            std::string::npos)
      << r.out;
  // Its root is not trusted there either: certgate refuses and says why.
  EXPECT_NE(r.out.find("status: HTTP/1.1 403 Forbidden"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("certgate reason: chain_incomplete (from the X-Certgate-Reason header)"),
            std::string::npos)
      << r.out;
}

TEST_F(NginxProbe, KeyMismatchHasItsOwnExitCode) {
  const h::RunResult r = h::RunProbe(
      Url(kSni), h::With(h::ProbeClient(pki(), "good", "rsa_good"), {"--servername", "a.example"}));
  EXPECT_EQ(r.exit_code, 4) << r.out << r.err;
  EXPECT_NE(r.out.find("key: MISMATCH: the key is RSA 2048 but the certificate "
                       "\"CN=alice,OU=People,O=Example\" holds a key of type EC prime256v1"),
            std::string::npos)
      << r.out;
  // Without its key the certificate cannot be sent: the server sees none.
  EXPECT_NE(r.out.find("client certificate sent: no"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Result: key_mismatch (exit 4)"), std::string::npos) << r.out;
}

TEST_F(NginxProbe, SniDifferenceBetweenTwoServerBlocks) {
  const h::RunResult r = h::RunProbe(Url(kSni), {"--servername", "b.example", "--json"});
  const std::string summary = h::JsonQuery(r.out, "d['sni']['summary']");
  EXPECT_NE(summary.find("the server certificate differs without SNI"), std::string::npos)
      << summary;
  EXPECT_NE(summary.find("the certificate request (CA names) differs without SNI"),
            std::string::npos)
      << summary;
  EXPECT_NE(summary.find("the server certificate differs with a wrong name"), std::string::npos)
      << summary;
  EXPECT_EQ(
      h::JsonQuery(r.out, "[t['handshake']['chain'][0]['subject'] for t in d['sni']['tries']]"),
      "['CN=b.example,O=Probe', 'CN=localhost,O=Example', 'CN=localhost,O=Example']");
  EXPECT_EQ(h::JsonQuery(r.out, "[t['handshake']['ca_names'] for t in d['sni']['tries']]"),
            "[1, 2, 2]");
  // One server block alone: the same everywhere.
  const h::RunResult same = h::RunProbe(Url(kManyCas), {});
  EXPECT_NE(same.out.find("=> no name to send (the URL's host is an IP address; give "
                          "--servername); the certificate and the CA names are the same with any "
                          "name"),
            std::string::npos)
      << same.out;
}

TEST_F(NginxProbe, TlsVersionRefused) {
  const h::RunResult r =
      h::RunProbe(Url(kTls13), h::With(h::ProbeClient(pki(), "good"), {"--tls1.2"}));
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("handshake FAILED: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Result: handshake_failed (exit 3)"), std::string::npos) << r.out;
  const h::RunResult j = h::RunProbe(Url(kTls13), {"--json"});
  EXPECT_EQ(h::JsonQuery(j.out, "[(v['version'], v['accepted']) for v in d['versions']]"),
            "[('TLSv1', False), ('TLSv1.1', False), ('TLSv1.2', False), ('TLSv1.3', True)]");
  EXPECT_EQ(h::JsonQuery(j.out, "'protocol version' in d['versions'][2]['detail']"), "True")
      << h::JsonQuery(j.out, "d['versions'][2]");
  // A client library that cannot offer 1.0/1.1 (here: an OpenSSL configuration
  // that turns them off) is said to be the reason, not the server.
  const std::string conf = dir_->path() + "/no-legacy.cnf";
  h::WriteFile(conf,
               "openssl_conf = openssl_init\n[openssl_init]\nssl_conf = ssl_sect\n"
               "[ssl_sect]\nsystem_default = system_default_sect\n"
               "[system_default_sect]\nProtocol = ALL,-TLSv1,-TLSv1.1\n");
  const h::RunResult legacy =
      h::Run({h::CertgateCliPath(), "probe", Url(kTls13), "--json"}, {"OPENSSL_CONF=" + conf});
  EXPECT_EQ(h::JsonQuery(legacy.out, "[v['client_library_cannot_offer'] for v in d['versions']]"),
            "[True, True, False, False]")
      << legacy.out;
  // Where 1.2 is on, it is accepted.
  const h::RunResult both = h::RunProbe(Url(kSni), {"--json"});
  EXPECT_EQ(h::JsonQuery(both.out, "[v['accepted'] for v in d['versions']]"),
            "[False, False, True, True]");
}

// certgate_reject_at handshake: in TLS 1.3 the client's handshake is done before
// the server judges its certificate, so the refusal is the alert instead of an
// answer; in TLS 1.2 the handshake itself fails. Either way: exit 3, alert named.
TEST_F(NginxProbe, RefusalAtTheHandshakeIsAHandshakeFailure) {
  h::RunResult r = h::RunProbe(Url(kAtHandshake), h::ProbeClient(pki(), "expired"));
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("no answer: the server sent the alert \"certificate expired\" instead of "
                       "an answer (in TLS 1.3 a server refuses"),
            std::string::npos)
      << r.out;
  r = h::RunProbe(Url(kAtHandshake), h::With(h::ProbeClient(pki(), "expired"), {"--tls1.2"}));
  EXPECT_EQ(r.exit_code, 3) << r.out << r.err;
  EXPECT_NE(r.out.find("(alert from the server: certificate expired)"), std::string::npos) << r.out;
  EXPECT_EQ(h::RunProbe(Url(kAtHandshake), h::ProbeClient(pki(), "good")).exit_code, 0);
}

TEST_F(NginxProbe, ThreeHundredTwoCaNamesWarnAbove16KiB) {
  const h::RunResult r = h::RunProbe(Url(kManyCas), h::ProbeClient(pki(), "good"));
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;  // the demo root is not among them
  EXPECT_NE(r.out.find("acceptable CA names: 302 ("), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[302] CN=Probe Test Certification Authority 302,"), std::string::npos);
  EXPECT_NE(r.out.find("WARNING: the CA names total "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("above 16 KiB: Windows (Schannel) cuts such a list"), std::string::npos);
  const h::RunResult j = h::RunProbe(Url(kManyCas), {"--json"});
  EXPECT_EQ(h::JsonQuery(j.out, "d['certificate_request']['ca_names_count']"), "302");
  EXPECT_EQ(h::JsonQuery(j.out, "d['certificate_request']['ca_names_bytes'] > 16384"), "True");
  EXPECT_EQ(h::JsonQuery(j.out, "len(d['warnings'])"), "1");
}

TEST_F(NginxProbe, JsonIsParseableAndCarriesTheVerdict) {
  const h::RunResult r = h::RunProbe(
      Url(kSni), h::With(h::ProbeClient(pki(), "good"), {"--servername", "a.example", "--json"}));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(h::Run({"python3", "-m", "json.tool"}, {}, r.out).exit_code, 0) << r.out;
  EXPECT_EQ(h::JsonQuery(r.out, "(d['result'], d['exit'], d['request']['status'])"),
            "('allowed', 0, 200)");
  EXPECT_EQ(h::JsonQuery(r.out, "d['server']['alpn']"), "h2");
  EXPECT_EQ(h::JsonQuery(r.out, "d['certificate_request']['client_chain']['matches']"), "True");
  EXPECT_EQ(h::JsonQuery(r.out,
                         "'ecdsa_secp256r1_sha256' in "
                         "d['certificate_request']['signature_algorithms']"),
            "True");
  const h::RunResult refused = h::RunProbe(
      Url(kSni),
      h::With(h::ProbeClient(pki(), "wrong_eku"), {"--servername", "a.example", "--json"}));
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_EQ(h::JsonQuery(refused.out, "(d['result'], d['request']['reason_header'])"),
            "('refused', 'wrong_purpose')");
  EXPECT_EQ(h::JsonQuery(refused.out, "d['key']['client_auth_problems'][0][:50]"),
            "extendedKeyUsage does not include clientAuth (it h");
}

TEST_F(NginxProbe, PlainNginxWithoutCertgate) {
  // Not asked for a certificate: said so, and the request is allowed.
  h::RunResult r = h::RunProbe(Url(kPlain), h::ProbeClient(pki(), "good"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("the server does NOT ask for a client certificate"), std::string::npos)
      << r.out;
  EXPECT_EQ(h::JsonQuery(h::RunProbe(Url(kPlain), {"--json"}).out,
                         "(d['certificate_request']['asked'], d['result'])"),
            "(False, 'allowed')");
  // ssl_verify_client on: nginx's own 400 without a certificate, no certgate reason.
  r = h::RunProbe(Url(kPlainVerify), {});
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.out.find("status: HTTP/1.1 400 Bad Request"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("no certgate reason in the answer"), std::string::npos) << r.out;
  r = h::RunProbe(Url(kPlainVerify), h::ProbeClient(pki(), "good"));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST_F(NginxProbe, UsageErrorsExitOne) {
  EXPECT_EQ(h::RunProbe("http://127.0.0.1/", {}).exit_code, 1);
  EXPECT_EQ(h::RunProbe(Url(kSni), {"--cert", pki() + "/clients/good.crt"}).exit_code, 1);
  EXPECT_EQ(h::RunProbe(Url(kSni), {"--tls1.2", "--tls1.3"}).exit_code, 1);
  const h::RunResult r = h::RunProbe(Url(kSni), {"--bogus"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("unknown option \"--bogus\""), std::string::npos) << r.err;
}

}  // namespace
}  // namespace certgate
