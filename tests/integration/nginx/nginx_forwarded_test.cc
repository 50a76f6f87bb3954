// Issue 12 §5: certgate_forwarded_cert through a real TLS-terminating proxy.
//
// Two nginx processes, each with its own prefix, configuration and ports:
//   18481  the front: Debian's nginx without certgate, terminating the
//          clients' TLS (ssl_verify_client optional) and proxying over TLS to
//          the backend from 127.0.0.2 (proxy_bind) with
//          X-SSL-Client-Cert: $ssl_client_escaped_cert;
//   18482  the backend: nginx with certgate, trusting only 127.0.0.2
//          (certgate_trusted_proxies), revocation from the demo CRLs;
//          /xfcc reads Envoy's x-forwarded-client-cert instead.
// Requests straight to the backend come from 127.0.0.1 (untrusted) or, with
// curl --interface, from 127.0.0.2 (the trusted proxy's address).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cctype>
#include <string>

#include "nginx_test_fixture.h"

namespace certgate::nginx_test {
namespace {

constexpr int kFrontPort = 18481, kBackendTlsPort = 18482;

std::string Escape(const std::string &text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

class NginxForwarded : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    backend_ = new Nginx();
    front_ = new Nginx();
    std::string error = backend_->Prepare("certgate-fwd-backend");
    if (error.empty()) error = front_->Prepare("certgate-fwd-front");
    const std::string p = backend_->pki();
    const std::string tls = "    ssl_certificate " + p + "/server/server-chain.pem;\n" +
                            "    ssl_certificate_key " + p + "/server/server.key;\n";
    if (error.empty()) {
      error = backend_->Launch(
          backend_->ConfigHead(1) +
              "  server {\n    listen 127.0.0.1:" + std::to_string(kBackendTlsPort) + " ssl;\n" +
              tls + "    ssl_trusted_certificate " + p + "/ca/trust-with-intermediate.pem;\n" +
              "    certgate require;\n"
              "    certgate_trusted_proxies 127.0.0.2;\n"
              "    certgate_forwarded_cert header=X-SSL-Client-Cert;\n"
              "    certgate_revocation cache_only;\n"
              "    certgate_cache " +
              backend_->dir() +
              "/cache;\n"  // never the system's /var/cache/certgate
              "    certgate_crl " +
              p + "/crl/intermediate.crl " + p +
              "/crl/root.crl;\n"
              "    certgate_reject_detail on;\n"
              "    location / { return 200 \"backend ok\\n\"; }\n"
              "    location /xfcc { certgate_forwarded_cert xfcc; return 200 \"xfcc ok\\n\"; }\n"
              "  }\n}\n",
          {kBackendTlsPort});
    }
    if (error.empty()) {
      // The front: no load_module, no certgate directive.
      error = front_->Launch(
          h::NginxConfigHead(front_->dir(), 1, {front_->error_log()}) +
              "  server {\n    listen 127.0.0.1:" + std::to_string(kFrontPort) + " ssl;\n" + tls +
              "    ssl_client_certificate " + p + "/ca/trust.pem;\n" +
              "    ssl_verify_client optional;\n"
              "    ssl_verify_depth 3;\n"
              "    location / {\n"
              "      proxy_pass https://127.0.0.1:" +
              std::to_string(kBackendTlsPort) +
              ";\n"
              "      proxy_bind 127.0.0.2;\n"
              "      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;\n"
              "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
              "    }\n  }\n}\n",
          {kFrontPort});
    }
    setup_error_ = new std::string(error);
  }
  static void TearDownTestSuite() {
    for (Nginx *n : {front_, backend_}) {
      if (n != nullptr) n->StopNginx(SIGQUIT);
      delete n;
    }
    front_ = backend_ = nullptr;
    delete setup_error_;
  }
  void SetUp() override { ASSERT_EQ(*setup_error_, "") << *setup_error_; }

  // Through the front, as the demo client `client` ("" = none).
  static h::CurlAnswer ViaFront(const std::string &path, const std::string &client) {
    return h::CurlAsClient("https://127.0.0.1:" + std::to_string(kFrontPort) + path,
                           backend_->pki(), client, 20);
  }
  // Straight to the backend from `from`, with `header` (no client certificate).
  static h::CurlAnswer Direct(const std::string &path, const std::string &from,
                              const std::string &header) {
    return h::CurlAsClient("https://127.0.0.1:" + std::to_string(kBackendTlsPort) + path,
                           backend_->pki(), "", 20, {"--interface", from, "-H", header});
  }
  static std::string Pem(const std::string &client) {
    return h::ReadFile(backend_->pki() + "/clients/" + client + ".crt");
  }
  static std::string Line(const std::string &marker) {
    return h::WaitForLine(backend_->error_log(), {marker}, 5000);
  }

  static Nginx *backend_, *front_;
  static std::string *setup_error_;
};

Nginx *NginxForwarded::backend_ = nullptr;
Nginx *NginxForwarded::front_ = nullptr;
std::string *NginxForwarded::setup_error_ = nullptr;

TEST_F(NginxForwarded, AGoodCertificateThroughTheProxyIsAllowed) {
  const h::CurlAnswer r = ViaFront("/?case=fwd-good", "good");
  EXPECT_EQ(r.status, 200) << r.body << r.err;
  EXPECT_EQ(r.body, "backend ok\n");
}

TEST_F(NginxForwarded, ARevokedCertificateThroughTheProxyIsRefusedAsRevoked) {
  const h::CurlAnswer r = ViaFront("/?case=fwd-revoked", "revoked");
  EXPECT_EQ(r.status, 403) << r.body << r.err;
  EXPECT_NE(r.body.find("revoked"), std::string::npos) << r.body;
  const std::string line = Line("case=fwd-revoked");
  EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
  EXPECT_NE(line.find("source=forwarded proxy=127.0.0.2 header=X-SSL-Client-Cert"),
            std::string::npos)
      << line;
}

TEST_F(NginxForwarded, NoCertificateThroughTheProxyIsNoCertWithTheProxyHint) {
  const h::CurlAnswer r = ViaFront("/?case=fwd-none", "");
  EXPECT_EQ(r.status, 403) << r.body << r.err;
  const std::string line = Line("case=fwd-none");
  EXPECT_NE(line.find("reason=no_cert"), std::string::npos) << line;
  EXPECT_NE(line.find("the trusted proxy 127.0.0.2 forwarded no client certificate"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("certgate_forwarded_cert"), std::string::npos) << line;
}

TEST_F(NginxForwarded, AHeaderFromAnUntrustedAddressIsIgnoredAndLogged) {
  const h::CurlAnswer r =
      Direct("/?case=fwd-forged", "127.0.0.1", "X-SSL-Client-Cert: " + Escape(Pem("good")));
  EXPECT_EQ(r.status, 403) << r.body << r.err;  // never allowed by the header
  const std::string line = Line("case=fwd-forged");
  EXPECT_NE(line.find("reason=no_cert"), std::string::npos) << line;
  // A warning: in the notice-level log (the error log is at error).
  const std::string notice =
      h::WaitForLine(backend_->notice_log(), {"forwarded_cert=ignored", "case=fwd-forged"}, 5000);
  EXPECT_NE(notice.find("header=X-SSL-Client-Cert client=127.0.0.1"), std::string::npos) << notice;
  EXPECT_NE(notice.find("[warn]"), std::string::npos) << notice;
}

TEST_F(NginxForwarded, AMalformedHeaderIsRefusedWithTheReason) {
  const h::CurlAnswer r = Direct("/?case=fwd-malformed", "127.0.0.2",
                                 "X-SSL-Client-Cert: -----BEGIN%20CERTIFICATE-----%0AQUJD");
  EXPECT_EQ(r.status, 403) << r.body << r.err;
  const std::string line = Line("case=fwd-malformed");
  EXPECT_NE(line.find("reason=malformed"), std::string::npos) << line;
  EXPECT_NE(line.find("the X-SSL-Client-Cert header forwarded by the trusted proxy 127.0.0.2 "
                      "does not decode: certificate 1 is not a valid PEM certificate"),
            std::string::npos)
      << line;
  // Over the size limit: refused, never read.
  const h::CurlAnswer big =
      Direct("/?case=fwd-big", "127.0.0.2", "X-SSL-Client-Cert: " + std::string(70000, 'A'));
  EXPECT_TRUE(big.status == 403 || big.status == 400 || big.status == 494) << big.status;
}

TEST_F(NginxForwarded, AnXfccHeaderFromTheTrustedAddress) {
  const std::string chain = Escape(Pem("good"));
  h::CurlAnswer r = Direct(
      "/xfcc?case=xfcc-good", "127.0.0.2",
      "X-Forwarded-Client-Cert: By=spiffe://front;Cert=\"" + chain + "\";Subject=\"CN=good\";URI=");
  EXPECT_EQ(r.status, 200) << r.body << r.err;
  EXPECT_EQ(r.body, "xfcc ok\n");
  r = Direct("/xfcc?case=xfcc-revoked", "127.0.0.2",
             "X-Forwarded-Client-Cert: Cert=\"" + Escape(Pem("revoked")) + "\"");
  EXPECT_EQ(r.status, 403) << r.body << r.err;
  EXPECT_NE(Line("case=xfcc-revoked").find("reason=revoked"), std::string::npos);
  r = Direct("/xfcc?case=xfcc-two", "127.0.0.2",
             "X-Forwarded-Client-Cert: Cert=\"" + chain + "\",By=x;Cert=\"" + chain + "\"");
  EXPECT_EQ(r.status, 403) << r.body << r.err;
  const std::string line = Line("case=xfcc-two");
  EXPECT_NE(line.find("reason=malformed"), std::string::npos) << line;
  EXPECT_NE(line.find("more than one element"), std::string::npos) << line;
}

}  // namespace
}  // namespace certgate::nginx_test
