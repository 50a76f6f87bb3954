// Integration tests of LDAP CDPs in ngx_http_certgate_module (issue 11 §2):
// Debian's nginx with the module on 127.0.0.1:18480, hard_fail, trusting the
// AD CS-shaped PKI whose CA publishes only through ldap:/// URLs
// (pki/adcs/ldap/), a real slapd on 18389 holding its base and delta CRLs at
// DNs with spaces and parentheses, and an LDAP server that hangs (18390, a
// listener that never answers). Each location has its own cache, so its own
// fetch results and backoff. CERTGATE_KEEP_TMP=1 keeps the directory.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <string>

#include "nginx_test_fixture.h"

namespace certgate::nginx_test {
namespace {

constexpr int kPort = 18480;
constexpr int kSlapdPort = 18389;
constexpr int kHangPort = 18390;
constexpr int kClosedPort = 18391;  // nothing listens: connection refused

class LdapServer : public Nginx {
 public:
  std::string Start() {
    std::string error = Prepare("certgate-nginx-ldap");
    if (!error.empty()) return error;
    h::MakeDirs(dir() + "/cache");
    error = slapd_.Start(dir() + "/slapd", pki() + "/adcs/ldap/directory.ldif", kSlapdPort);
    if (!error.empty()) return error;
    if (!hang_.Listen(kHangPort)) return "cannot listen on " + std::to_string(kHangPort);
    return Launch(Config(), {kPort});
  }

  void Stop() {
    StopNginx(SIGTERM);
    slapd_.Stop();
    hang_.Close();
  }

  std::string Location(const std::string &name, const std::string &directives) const {
    return "    location = /" + name + " {\n      certgate_cache " + dir() + "/cache/" + name +
           ";\n" + directives + "      return 200 \"ok\\n\";\n    }\n";
  }

  std::string Config() const {
    const std::string p = pki();
    const std::string slapd = "127.0.0.1:" + std::to_string(kSlapdPort);
    const std::string leaf = "      certgate_revocation_scope leaf;\n";
    return ConfigHead(1) +
           "  log_format cg '$request_uri status=$status reason=$certgate_reason "
           "revocation=\"$certgate_revocation\"';\n"
           "  access_log " +
           access_log() +
           " cg;\n"
           // The server level's default: never the system's /var/cache/certgate.
           "  certgate_cache " +
           dir() +
           "/cache/http;\n"
           "  server {\n"
           "    listen 127.0.0.1:" +
           std::to_string(kPort) +
           " ssl;\n"
           "    server_name localhost;\n"
           "    ssl_certificate " +
           p + "/server/server-chain.pem;\n    ssl_certificate_key " + p +
           "/server/server.key;\n    ssl_trusted_certificate " + p +
           "/adcs/root.pem;\n"
           "    certgate require;\n"
           "    certgate_revocation hard_fail;\n"
           "    certgate_revocation_sources crl;\n"
           "    certgate_revocation_wait 5s;\n" +
           // The whole chain from slapd: base, its delta, the root's CRL.
           Location("ldap", "      certgate_ldap_server " + slapd +
                                ";\n      certgate_fetch_allow 127.0.0.1;\n") +
           Location("noserver", leaf) +
           // The first server refuses connections: the next one is asked.
           Location("order", leaf + "      certgate_ldap_server 127.0.0.1:" +
                                 std::to_string(kClosedPort) + " " + slapd + ";\n") +
           Location("hang", leaf +
                                "      certgate_fetch_timeout 2s;\n"
                                "      certgate_ldap_server 127.0.0.1:" +
                                std::to_string(kHangPort) + ";\n") +
           Location("missing", leaf + "      certgate_ldap_server " + slapd + ";\n") +
           "  }\n"
           "}\n";
  }

  h::CurlAnswer Get(const std::string &path, const std::string &client, double max_s = 15) const {
    return h::CurlAsClient("https://127.0.0.1:" + std::to_string(kPort) + path, pki(),
                           "../adcs/ldap/clients/" + client, max_s);
  }

 private:
  h::Slapd slapd_;
  h::Blackhole hang_;
};

class NginxLdap : public SharedServerTest<LdapServer> {
 protected:
  LdapServer &n() { return server(); }
  std::string RefusalLine(const std::string &request) {
    return h::WaitForLine(n().error_log(), {"GET " + request + " "});
  }
};

const char kCdpDn[] =
    "CN=Corp%20Directory%20CA%203(1)%2CCN=CRL%2CCN=CDP%2CCN=Public%20Key%20Services%2C"
    "CN=Services%2CCN=Configuration%2CDC=corp%2CDC=example%2CDC=com";

// The ldap:/// CDP with certgate_ldap_server set is fetched: good allowed,
// base-revoked and delta-only-revoked refused, the delta named.
TEST_F(NginxLdap, LdapCdpIsFetchedFromTheConfiguredServer) {
  h::CurlAnswer r = n().Get("/ldap?case=good", "good");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 200) << r.body;
  const std::string access = h::WaitForLine(n().access_log(), {"/ldap?case=good "});
  EXPECT_NE(access.find(std::string("good crl ldap:///") + kCdpDn +
                        "?certificateRevocationList?base?objectClass=cRLDistributionPoint "
                        "crl_number=8192 delta=8193"),
            std::string::npos)
      << access;

  r = n().Get("/ldap?case=base-revoked", "base-revoked");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "403.13 client certificate refused: revoked\n");
  std::string line = RefusalLine("/ldap?case=base-revoked");
  EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
  EXPECT_NE(line.find("keyCompromise"), std::string::npos) << line;

  r = n().Get("/ldap?case=delta-revoked", "delta-revoked");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "403.13 client certificate refused: revoked\n");
  line = RefusalLine("/ldap?case=delta-revoked");
  EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
  EXPECT_NE(line.find(std::string("crl ldap:///") + kCdpDn +
                      "?deltaRevocationList?base?objectClass=cRLDistributionPoint "
                      "crl_number=8192 delta=8193"),
            std::string::npos)
      << line;
}

TEST_F(NginxLdap, WithoutLdapServerTheUrlIsNamedNotSkipped) {
  h::CurlAnswer r = n().Get("/noserver?case=good", "good");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("revocation_unavailable"), std::string::npos) << r.body;
  const std::string line = RefusalLine("/noserver?case=good");
  EXPECT_NE(line.find("reason=revocation_unavailable"), std::string::npos) << line;
  EXPECT_NE(line.find(std::string("crl ldap:///") + kCdpDn), std::string::npos) << line;
  EXPECT_NE(line.find("no LDAP server configured"), std::string::npos) << line;
}

TEST_F(NginxLdap, ServersAreTriedInOrder) {
  h::CurlAnswer r = n().Get("/order?case=good", "good");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 200) << r.body;
  r = n().Get("/order?case=delta-revoked", "delta-revoked");
  EXPECT_EQ(r.status, 403) << r.body;
}

TEST_F(NginxLdap, HangingLdapServerTimesOutWithinFetchTimeout) {
  const auto start = std::chrono::steady_clock::now();
  h::CurlAnswer r = n().Get("/hang?case=good", "good");
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  EXPECT_GE(ms, 1900);
  EXPECT_LT(ms, 4500);  // fetch_timeout 2s, well before revocation_wait 5s
  const std::string line = RefusalLine("/hang?case=good");
  EXPECT_NE(line.find("reason=revocation_unavailable"), std::string::npos) << line;
  EXPECT_NE(line.find("timed out after 2000 ms (certgate_fetch_timeout) (LDAP server "
                      "127.0.0.1:" +
                      std::to_string(kHangPort) + ")"),
            std::string::npos)
      << line;
}

TEST_F(NginxLdap, NoSuchObjectIsAClearError) {
  h::CurlAnswer r = n().Get("/missing?case=missing", "missing");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  const std::string line = RefusalLine("/missing?case=missing");
  EXPECT_NE(line.find("reason=revocation_unavailable"), std::string::npos) << line;
  EXPECT_NE(line.find("CN=Corp%20Directory%20CA%203(9)"), std::string::npos) << line;
  EXPECT_NE(line.find("failed: the LDAP search failed: \\\"No such object\\\" (LDAP server "
                      "127.0.0.1:" +
                      std::to_string(kSlapdPort) + ")"),
            std::string::npos)
      << line;
}

}  // namespace
}  // namespace certgate::nginx_test
