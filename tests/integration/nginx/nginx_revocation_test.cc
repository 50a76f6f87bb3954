// Integration tests of revocation in ngx_http_certgate_module (issue 5 item 7):
// Debian's nginx with the module on 127.0.0.1:18410, a real CDP (another
// Debian nginx serving the demo PKI's www/ on 127.0.0.1:18080, as the demo
// certificates name it) and a real OCSP responder (`openssl ocsp` on 18081).
//
// One nginx with worker_processes 1, so a request waiting for a fetch and the
// requests that must not be delayed by it share one event loop. Locations that
// need a clean slate have their own certgate_cache (a URL's backoff after a
// failure lives in the cache). CERTGATE_KEEP_TMP=1 keeps the directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "nginx_test_fixture.h"

namespace certgate::nginx_test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kPort = 18410;           // the server under test
constexpr int kAdcsPort = 18411;       // the same, trusting the AD CS-shaped PKI (pki/adcs/)
constexpr int kHandshakePort = 18412;  // certgate_reject_at handshake, certgate_fetch_issuers on
constexpr int kDeepPort = 18413;       // the same, trusting the 4-level PKI (pki/deep/)
constexpr int kCdpPort = 18080;        // fixed in the demo certificates (CDP, caIssuers)
constexpr int kOcspPort = 18081;       // fixed in the demo certificates (AIA OCSP)

int MsSince(Clock::time_point start) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

using Response = h::CurlAnswer;

class RevocationServer : public Nginx {
 public:
  std::string Start() {
    std::string error = Prepare("certgate-nginx-rev");
    if (!error.empty()) return error;
    // Root-owned and 0755, as a test would leave it: the module must hand each
    // cache to the worker user (nobody) itself.
    h::MakeDirs(dir() + "/cache");
    // And the "crl" location's cache files made by a root-run CLI, as an
    // operator warming the cache by hand would: the master must re-own them.
    const std::string cli = h::CertgateCliPath();
    if (cli.empty()) return "the certgate CLI is not built";
    h::RunResult made = h::Run({cli, "cache", "list", "--cache", cache("crl")});
    if (made.exit_code != 0) return "certgate cache list failed: " + made.err;
    error = cdp_.Start(dir() + "/cdp", pki() + "/www", kCdpPort);
    if (!error.empty()) return error;
    error = ocsp_.Start(pki(), kOcspPort, dir() + "/logs/ocsp.log");
    if (!error.empty()) return error;
    return Launch(Config(), {kPort, kAdcsPort, kHandshakePort, kDeepPort});
  }

  // nginx alone stopped and started again (new workers), the CDP left as is.
  std::string RestartNginx() { return Relaunch(SIGTERM, {kPort}); }

  void Stop() {
    // SIGTERM: a request still waiting must not hold the test.
    StopNginx(SIGTERM);
    cdp_.Stop();
    ocsp_.Stop();
  }

  std::string Location(const std::string &name, const std::string &directives) const {
    return "    location = /" + name + " {\n      certgate_cache " + cache(name) + ";\n" +
           directives + "      return 200 \"ok\\n\";\n    }\n";
  }

  std::string Config() const {
    const std::string p = pki();
    const std::string crl_only = "      certgate_revocation_sources crl;\n";
    return ConfigHead(1) +
           "  log_format cg '$request_uri status=$status reason=$certgate_reason "
           "revocation=\"$certgate_revocation\"';\n"
           "  access_log " +
           access_log() +
           " cg;\n"
           "  ssl_protocols TLSv1.2 TLSv1.3;\n"
           "  ssl_session_cache shared:SSL:1m;\n"
           "  ssl_session_tickets on;\n"
           // Every server's default: never the system's /var/cache/certgate.
           "  certgate_cache " +
           cache("http") +
           ";\n"
           "  server {\n"
           "    listen 127.0.0.1:" +
           std::to_string(kPort) +
           " ssl http2;\n"
           "    server_name localhost;\n"
           "    ssl_certificate " +
           p +
           "/server/server-chain.pem;\n"
           "    ssl_certificate_key " +
           p +
           "/server/server.key;\n"
           "    ssl_trusted_certificate " +
           p +
           "/ca/trust.pem;\n"
           "    certgate require;\n"
           "    certgate_revocation hard_fail;\n"
           // Never the system's default cache: a test stays in its prefix.
           "    certgate_cache " +
           cache("server") + ";\n" +
           "    location = /norev { certgate_revocation off; return 200 \"norev\\n\"; }\n" +
           Location("crl", crl_only) +
           Location("down", crl_only + "      certgate_revocation_wait 1s;\n") +
           Location("hang", crl_only +
                                "      certgate_revocation_wait 1s;\n"
                                "      certgate_fetch_timeout 2s;\n") +
           Location("soft", crl_only + "      certgate_revocation soft_fail;\n") +
           Location("cacheonly", "      certgate_revocation cache_only;\n      certgate_crl " + p +
                                     "/crl/intermediate.crl " + p + "/crl/root.crl;\n") +
           // Issue 15: the issuing CA's CRL without a crlNumber (RFC 5280 5.2.3).
           Location("strictcrl",
                    "      certgate_revocation cache_only;\n"
                    "      certgate_revocation_scope leaf;\n      certgate_crl " +
                        p + "/crl-strict/intermediate-no-crl-number.crl;\n") +
           Location("strictcrloff",
                    "      certgate_strict off;\n"
                    "      certgate_revocation cache_only;\n"
                    "      certgate_revocation_scope leaf;\n      certgate_crl " +
                        p + "/crl-strict/intermediate-no-crl-number.crl;\n") +
           Location("update", crl_only) + Location("h2", crl_only) +
           Location("longwait", crl_only +
                                    "      certgate_revocation_wait 3s;\n"
                                    "      certgate_fetch_timeout 30s;\n") +
           Location("ocsp",
                    "      certgate_revocation_sources ocsp;\n"
                    "      certgate_revocation_scope leaf;\n") +
           // Issue 13 §3: the revocation gauges of every cache above.
           Location("gauges", crl_only + "      certgate_max_stale 2h;\n") +
           // Issue 11 §3: the leaf sent alone, its issuer fetched from its AIA URL.
           Location("aia", AiaDirectives()) +
           Location("aiaoff", "      certgate_revocation off;\n") +
           Location("aia404", AiaDirectives()) + Location("aiahang", AiaDirectives()) +
           Location("aianonca", AiaDirectives()) + Location("aiaunrelated", AiaDirectives()) +
           "    location = /status { certgate off; certgate_status on; }\n" + FaultLocations() +
           "  }\n"
           // Issue 11: an AD CS-shaped PKI whose base CRL names a delta CRL.
           "  server {\n"
           "    listen 127.0.0.1:" +
           std::to_string(kAdcsPort) +
           " ssl;\n"
           "    server_name localhost;\n"
           "    ssl_certificate " +
           p + "/server/server-chain.pem;\n    ssl_certificate_key " + p +
           "/server/server.key;\n    ssl_trusted_certificate " + p +
           "/adcs/root.pem;\n"
           "    certgate require;\n"
           "    certgate_revocation hard_fail;\n" +
           Location("adcs", crl_only + "      certgate_fetch_allow 127.0.0.1;\n") +
           "  }\n"
           // Issue 11 §3: the handshake cannot wait for an issuer's fetch.
           "  server {\n"
           "    listen 127.0.0.1:" +
           std::to_string(kHandshakePort) +
           " ssl;\n"
           "    server_name localhost;\n"
           "    ssl_certificate " +
           p + "/server/server-chain.pem;\n    ssl_certificate_key " + p +
           "/server/server.key;\n    ssl_trusted_certificate " + p +
           "/ca/trust.pem;\n"
           "    certgate require;\n"
           "    certgate_reject_at handshake;\n" +
           AiaDirectives() + "    certgate_cache " + cache("handshake") +
           ";\n    location = /aiahandshake { return 200 \"ok\\n\"; }\n" +
           "  }\n"
           // Issue 11 §4: Deep Root CA -> Sub CA1 -> Sub CA2 -> Sub CA3 -> client.
           "  server {\n"
           "    listen 127.0.0.1:" +
           std::to_string(kDeepPort) +
           " ssl;\n"
           "    server_name localhost;\n"
           "    ssl_certificate " +
           p + "/server/server-chain.pem;\n    ssl_certificate_key " + p +
           "/server/server.key;\n    ssl_trusted_certificate " + p +
           "/deep/root.pem;\n"
           "    ssl_verify_depth 5;\n"
           "    certgate require;\n"
           "    certgate_revocation hard_fail;\n" +
           Location("deep", crl_only +
                                "      certgate_revocation_scope chain;\n"
                                "      certgate_revocation_wait 3s;\n"
                                "      certgate_fetch_timeout 2s;\n") +
           "  }\n"
           "}\n";
  }

  static std::string AiaDirectives() {
    return "      certgate_revocation off;\n      certgate_fetch_issuers on;\n"
           "      certgate_fetch_allow 127.0.0.1;\n      certgate_revocation_wait 1s;\n"
           "      certgate_fetch_timeout 5s;\n";
  }

  // EveryCdpFaultKeepsTheCachedCrl: a location /fx-<fault> (with its own
  // cache, so its own backoff state) per place of the drill, all hard_fail with
  // CRLs only, leaf only (no root.crl).
  std::string FaultLocations() const {
    const std::string base =
        "      certgate_revocation_sources crl;\n      certgate_revocation_scope leaf;\n";
    std::string out;
    for (const h::CdpFaultPlace &place : h::CdpFaultPlaces()) {
      const std::string extra =
          place.key.empty() ? "" : "      certgate_" + place.key + " " + place.value + ";\n";
      out += Location("fx-" + place.name, base + extra);
    }
    return out;
  }

  Response Curl(const std::string &path, const std::string &client, double max_time_s = 10,
                const std::vector<std::string> &extra = {}) const {
    return h::CurlAsClient("https://127.0.0.1:" + std::to_string(kPort) + path, pki(), client,
                           max_time_s, extra);
  }

  // openssl s_client: one HTTP/1.1 request over TLS 1.3, saving or reusing a
  // session.
  h::RunResult SClient(const std::string &client, const std::string &path,
                       std::vector<std::string> extra) const {
    extra.insert(extra.begin(), "-tls1_3");
    return Nginx::SClient(kPort, client, path, extra);
  }

  std::string cache(const std::string &name) const { return dir() + "/cache/" + name; }
  h::CrlServer &cdp() { return cdp_; }
  h::OcspResponder &ocsp() { return ocsp_; }

 private:
  h::CrlServer cdp_;
  h::OcspResponder ocsp_;
};

class NginxRevocation : public SharedServerTest<RevocationServer> {
 protected:
  void TearDown() override {
    // Every test leaves the CDP up, healthy and with the demo CRLs.
    RevocationServer &n = server();
    n.cdp().SetFault(h::CrlServer::Fault::kNone);
    if (!n.cdp().Running()) {
      EXPECT_EQ(n.cdp().Start(n.dir() + "/cdp", n.pki() + "/www", kCdpPort), "");
    }
    n.cdp().PublishFile("intermediate.crl", n.pki() + "/crl/intermediate.crl");
    n.cdp().PublishFile("hidden.crt",
                        n.pki() + "/ca/hidden.pem");  // PEM: served as the CA publishes it
  }
  RevocationServer &n() { return server(); }
};

std::string AccessLine(const std::string &uri) {
  return h::WaitForLine(NginxRevocation::server().access_log(), {uri + " "});
}

TEST_F(NginxRevocation, CacheDirectoryIsHandedToTheWorkerUser) {
  struct stat st;
  ASSERT_EQ(stat(n().cache("crl").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  if (geteuid() == 0) {
    EXPECT_NE(st.st_uid, 0u) << "not chowned to the worker user";
    // The files a root-run CLI left there too; RevokedByCrlFromTheCdp shows
    // the workers can write them.
    for (const char *file : {"/data.mdb", "/lock.mdb"}) {
      struct stat fst;
      ASSERT_EQ(stat((n().cache("crl") + file).c_str(), &fst), 0) << file;
      EXPECT_EQ(fst.st_uid, st.st_uid) << file << " not given to the worker user";
    }
  }
}

TEST_F(NginxRevocation, RevokedByCrlFromTheCdp) {
  Response r = n().Curl("/crl?case=revoked", "revoked");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "403.13 client certificate refused: revoked\n");
  const std::string line = h::WaitForLine(n().error_log(), {"GET /crl?case=revoked "});
  EXPECT_NE(line.find("[error]"), std::string::npos) << line;
  EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
  EXPECT_NE(line.find("http://127.0.0.1:18080/intermediate.crl"), std::string::npos) << line;
  EXPECT_NE(line.find("crl_number=1"), std::string::npos) << line;
  EXPECT_NE(line.find("keyCompromise"), std::string::npos) << line;
  EXPECT_TRUE(std::regex_search(line, std::regex("revoked 20\\d\\d-\\d\\d-\\d\\d"))) << line;
  EXPECT_FALSE(n().cdp().Requests("/intermediate.crl").empty());
}

// Issue 11 §1: a certificate revoked only in the delta CRL that the base CRL
// names in freshestCRL ("...(4)+.crl", AD CS style) is refused, naming the
// delta; the base's hold lifted by the delta (removeFromCRL) is allowed.
TEST_F(NginxRevocation, DeltaOnlyRevocationIsRefusedNamingTheDelta) {
  const std::string url = "https://127.0.0.1:" + std::to_string(kAdcsPort);
  Response r = h::CurlAsClient(url + "/adcs?case=delta-revoked", n().pki(),
                               "../adcs/clients/delta-revoked", 10);
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "403.13 client certificate refused: revoked\n");
  const std::string line = h::WaitForLine(n().error_log(), {"GET /adcs?case=delta-revoked "});
  EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
  EXPECT_NE(line.find("http://127.0.0.1:18080/adcs/Corp%20Enterprise%20CA%202(4)+.crl"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("crl_number=4096 delta=4097"), std::string::npos) << line;
  EXPECT_EQ(n().cdp().Requests("/adcs/Corp%20Enterprise%20CA%202(4)+.crl").size(), 1u);

  r = h::CurlAsClient(url + "/adcs?case=unheld", n().pki(), "../adcs/clients/unheld", 10);
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 200) << r.body;
  const std::string access = AccessLine("/adcs?case=unheld");
  EXPECT_NE(access.find("crl_number=4096 delta=4097"), std::string::npos) << access;
  r = h::CurlAsClient(url + "/adcs?case=held", n().pki(), "../adcs/clients/held", 10);
  EXPECT_EQ(r.status, 403) << r.body;
}

// Issue 11 §3: certgate_fetch_issuers on. The chain_incomplete client sends
// its leaf alone; its AIA caIssuers URL (http://127.0.0.1:18080/hidden.crt)
// serves the Example Hidden CA, which the root the server trusts issued.
TEST_F(NginxRevocation, FetchIssuersCompletesALeafSentAlone) {
  const size_t before = n().cdp().Requests("/hidden.crt").size();
  Response r = n().Curl("/aia?case=first", "chain_incomplete");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 200) << r.body;
  r = n().Curl("/aia?case=second", "chain_incomplete");
  EXPECT_EQ(r.status, 200) << r.body;
  // Fetched once, kept in the shared cache.
  EXPECT_EQ(n().cdp().Requests("/hidden.crt").size(), before + 1);

  r = n().Curl("/aiaoff?case=off", "chain_incomplete");
  EXPECT_EQ(r.status, 403);
  const std::string line = h::WaitForLine(n().error_log(), {"GET /aiaoff?case=off "});
  EXPECT_NE(line.find("reason=chain_incomplete"), std::string::npos) << line;
  EXPECT_NE(line.find("published at http://127.0.0.1:18080/hidden.crt"), std::string::npos) << line;
  EXPECT_EQ(n().cdp().Requests("/hidden.crt").size(), before + 1);
}

// certgate_reject_at handshake: the first handshake is refused (it cannot
// wait) while the issuer is fetched; the next one is completed from the cache.
TEST_F(NginxRevocation, FetchIssuersAtTheHandshakeServesTheNextConnection) {
  const std::string url =
      "https://127.0.0.1:" + std::to_string(kHandshakePort) + "/aiahandshake?case=";
  Response first = h::CurlAsClient(url + "first", n().pki(), "chain_incomplete", 10);
  EXPECT_NE(first.status, 200) << first.body;
  const std::string line =
      h::WaitForLine(n().error_log(), {"reason=chain_incomplete", "the handshake does not wait"});
  EXPECT_NE(line.find("being fetched from http://127.0.0.1:18080/hidden.crt"), std::string::npos)
      << line;
  Response next;
  for (int attempt = 0; attempt < 20; ++attempt) {
    next = h::CurlAsClient(url + "next", n().pki(), "chain_incomplete", 10);
    if (next.status == 200) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(next.status, 200) << next.body << next.err;
}

TEST_F(NginxRevocation, FetchIssuersDeadUrlIsChainIncompleteNamingTheError) {
  n().cdp().SetFault(h::CrlServer::Fault::k404, "/hidden.crt");
  Response r = n().Curl("/aia404?case=404", "chain_incomplete");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  std::string line = h::WaitForLine(n().error_log(), {"GET /aia404?case=404 "});
  EXPECT_NE(line.find("reason=chain_incomplete"), std::string::npos) << line;
  EXPECT_NE(line.find("fetching http://127.0.0.1:18080/hidden.crt failed: HTTP 404"),
            std::string::npos)
      << line;

  // A hung URL: refused once certgate_revocation_wait (1s) is over.
  n().cdp().SetFault(h::CrlServer::Fault::kHang, "/hidden.crt");
  const auto start = Clock::now();
  r = n().Curl("/aiahang?case=hang", "chain_incomplete");
  EXPECT_EQ(r.status, 403);
  EXPECT_LT(MsSince(start), 3000);
  line = h::WaitForLine(n().error_log(), {"GET /aiahang?case=hang "});
  EXPECT_NE(line.find("reason=chain_incomplete"), std::string::npos) << line;
  EXPECT_NE(line.find("did not finish within certgate_revocation_wait"), std::string::npos) << line;
}

TEST_F(NginxRevocation, FetchIssuersRefusesANonCaAndAnUnrelatedCa) {
  // A leaf certificate where the CA should be.
  ASSERT_TRUE(n().cdp().PublishFile("hidden.crt", n().pki() + "/clients/good.crt"));
  Response r = n().Curl("/aianonca?case=nonca", "chain_incomplete");
  EXPECT_EQ(r.status, 403);
  std::string line = h::WaitForLine(n().error_log(), {"GET /aianonca?case=nonca "});
  EXPECT_NE(line.find("reason=chain_incomplete"), std::string::npos) << line;
  EXPECT_NE(line.find("is not a CA certificate"), std::string::npos) << line;

  // A real CA of the server's PKI, but not the leaf's issuer.
  ASSERT_TRUE(n().cdp().PublishFile("hidden.crt", n().pki() + "/www/intermediate.crt"));
  r = n().Curl("/aiaunrelated?case=unrelated", "chain_incomplete");
  EXPECT_EQ(r.status, 403);
  line = h::WaitForLine(n().error_log(), {"GET /aiaunrelated?case=unrelated "});
  EXPECT_NE(line.find("reason=chain_incomplete"), std::string::npos) << line;
  EXPECT_NE(line.find("cannot have issued"), std::string::npos) << line;
}

// Issue 11 §4: in a 4-level chain, the CA whose status is unknown (the CRL
// covering Sub CA3, issued by Sub CA2, is unreachable) or revoked is named
// (ca_subject, and in the detail) with the URL, not only its depth.
TEST_F(NginxRevocation, DeepChainNamesSubCa3WhenItsCrlIsUnreachableOrItIsRevoked) {
  const std::string url = "https://127.0.0.1:" + std::to_string(kDeepPort);
  Response r = h::CurlAsClient(url + "/deep?case=ca-crl-unreachable", n().pki(),
                               "../deep/clients/ca-crl-unreachable", 10);
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "403.13 client certificate refused: revocation_unavailable\n");
  std::string line = h::WaitForLine(n().error_log(), {"GET /deep?case=ca-crl-unreachable "});
  EXPECT_NE(line.find("reason=revocation_unavailable"), std::string::npos) << line;
  EXPECT_NE(line.find(" depth=1 ca_subject=\"CN=Sub CA3,O=Example\""), std::string::npos) << line;
  const size_t detail = line.find(" detail=\"");
  ASSERT_NE(detail, std::string::npos) << line;
  EXPECT_NE(line.find("CN=Sub CA3,O=Example", detail), std::string::npos) << line;
  EXPECT_NE(line.find("http://127.0.0.1:18089/deep/subca2.crl", detail), std::string::npos) << line;

  r = h::CurlAsClient(url + "/deep?case=ca-revoked", n().pki(), "../deep/clients/ca-revoked", 10);
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "403.13 client certificate refused: revoked\n");
  line = h::WaitForLine(n().error_log(), {"GET /deep?case=ca-revoked "});
  EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
  EXPECT_NE(line.find(" depth=1 ca_subject=\"CN=Sub CA3,OU=Revoked,O=Example\""), std::string::npos)
      << line;
  EXPECT_NE(line.find("CN=Sub CA3,OU=Revoked,O=Example", line.find(" detail=\"")),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("http://127.0.0.1:18080/deep/subca2.crl"), std::string::npos) << line;
  EXPECT_NE(line.find("cACompromise"), std::string::npos) << line;

  r = h::CurlAsClient(url + "/deep?case=good", n().pki(), "../deep/clients/good", 10);
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 200) << r.body;
}

TEST_F(NginxRevocation, GoodIsAllowedWithTheSourceInTheAccessLog) {
  Response r = n().Curl("/crl?case=good", "good");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  const std::string access = AccessLine("/crl?case=good");
  EXPECT_NE(access.find("revocation=\"good crl http://127.0.0.1:18080/intermediate.crl"),
            std::string::npos)
      << access;
}

TEST_F(NginxRevocation, CdpDownHardFailIsRevocationUnavailable) {
  n().cdp().Stop();  // connection refused
  Response r = n().Curl("/down?case=refused", "good");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "403.13 client certificate refused: revocation_unavailable\n");
  EXPECT_LT(r.ms, 1000 + 1500) << "answered within certgate_revocation_wait";
  const std::string line = h::WaitForLine(n().error_log(), {"GET /down?case=refused "});
  EXPECT_NE(line.find("reason=revocation_unavailable"), std::string::npos) << line;
  EXPECT_NE(line.find("http://127.0.0.1:18080/intermediate.crl"), std::string::npos) << line;
  EXPECT_NE(line.find("hard_fail"), std::string::npos) << line;
  EXPECT_TRUE(std::regex_search(line, std::regex("[Cc]onnect|refused"))) << line;
}

TEST_F(NginxRevocation, SoftFailWithCdpDownIsAllowedAndWarned) {
  n().cdp().Stop();
  Response r = n().Curl("/soft?case=down", "good");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 200);
  const std::string line = h::WaitForLine(n().notice_log(), {"GET /soft?case=down "});
  EXPECT_NE(line.find("[warn]"), std::string::npos) << line;
  EXPECT_NE(line.find("verdict=allow"), std::string::npos) << line;
  EXPECT_NE(line.find("soft_fail"), std::string::npos) << line;
  EXPECT_TRUE(h::GrepLines(h::ReadFile(n().error_log()), {"case=down"}).empty())
      << "a warning is not an error";
  const std::string access = AccessLine("/soft?case=down");
  EXPECT_NE(access.find("status=200"), std::string::npos) << access;
}

TEST_F(NginxRevocation, CacheOnlyWithPreloadedCrlAndNoNetwork) {
  n().cdp().Stop();
  Response revoked = n().Curl("/cacheonly?case=revoked", "revoked");
  ASSERT_EQ(revoked.curl_exit, 0) << revoked.err;
  EXPECT_EQ(revoked.status, 403);
  EXPECT_EQ(revoked.body, "403.13 client certificate refused: revoked\n");
  const std::string line = h::WaitForLine(n().error_log(), {"GET /cacheonly?case=revoked "});
  EXPECT_NE(line.find("intermediate.crl"), std::string::npos) << line;
  Response good = n().Curl("/cacheonly?case=good", "good");
  EXPECT_EQ(good.status, 200) << good.body;
  const std::string access = AccessLine("/cacheonly?case=good");
  EXPECT_NE(access.find("revocation=\"good crl"), std::string::npos) << access;
}

// certgate_strict and CRLs, end to end: a CRL without a crlNumber is no proof
// of "good" by default (cache_only: refused, the defect named); under
// certgate_strict off it counts, and the allow is logged with the warning.
TEST_F(NginxRevocation, CrlWithoutCrlNumberIsNoProofOfGoodUnlessStrictIsOff) {
  Response refused = n().Curl("/strictcrl?case=no-crl-number", "good");
  ASSERT_EQ(refused.curl_exit, 0) << refused.err;
  EXPECT_EQ(refused.status, 403);
  EXPECT_EQ(refused.body, "403.13 client certificate refused: revocation_unavailable\n");
  const std::string line = h::WaitForLine(n().error_log(), {"GET /strictcrl?case=no-crl-number "});
  EXPECT_NE(line.find("has no crlNumber"), std::string::npos) << line;

  Response allowed = n().Curl("/strictcrloff?case=no-crl-number", "good");
  EXPECT_EQ(allowed.status, 200) << allowed.body;
  const std::string warned =
      h::WaitForLine(n().notice_log(), {"GET /strictcrloff?case=no-crl-number ", "[warn]"});
  EXPECT_NE(warned.find("strict_off:crl_without_crl_number"), std::string::npos) << warned;
  Response revoked = n().Curl("/strictcrloff?case=revoked", "revoked");
  EXPECT_EQ(revoked.status, 403) << "its revocations stand under either setting";
}

TEST_F(NginxRevocation, UpdatedCrlAtTheCdpRevokesWithoutReloadAlsoResumedSessions) {
  // The CDP serves a short-lived CRL (nextUpdate in 4 s): the checker refreshes
  // it ahead of nextUpdate (there is no policy key for the refresh interval;
  // its default is 1 h, so a short nextUpdate is what makes it refresh here).
  std::string der;
  ASSERT_EQ(h::SignDemoCrl(n().pki(), n().dir() + "/crl-v5", {}, 5, 4, &der), "");
  ASSERT_TRUE(n().cdp().Publish("intermediate.crl", der));
  const auto published = Clock::now();
  const std::string sess = n().dir() + "/session-good.pem";
  h::RunResult first = n().SClient("good", "/update?case=session-1", {"-sess_out", sess});
  ASSERT_NE(first.out.find("HTTP/1.1 200"), std::string::npos) << first.out << first.err;
  ASSERT_GT(h::FileSize(sess), 0);
  EXPECT_NE(AccessLine("/update?case=session-1").find("crl_number=5"), std::string::npos);

  // A newer CRL (crlNumber 6) now also revokes `good`.
  ASSERT_EQ(h::SignDemoCrl(n().pki(), n().dir() + "/crl-v6", {"good"}, 6, 3600, &der), "");
  ASSERT_TRUE(n().cdp().Publish("intermediate.crl", der));
  int status = 0;
  int i = 0;
  while (MsSince(published) < 12000) {
    status = n().Curl("/update?case=poll-" + std::to_string(i++), "good").status;
    if (status == 403) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  ASSERT_EQ(status, 403) << "the CRL at the CDP was not picked up";
  const std::string line =
      h::WaitForLine(n().error_log(), {"GET /update?case=poll-" + std::to_string(i - 1) + " "});
  EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
  EXPECT_NE(line.find("crl_number=6"), std::string::npos) << line;

  // The session resumed from before the revocation is refused too.
  h::RunResult second = n().SClient("", "/update?case=session-2", {"-sess_in", sess});
  EXPECT_NE(second.out.find("Reused, "), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("HTTP/1.1 403"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("403.13 client certificate refused: revoked"), std::string::npos);
}

TEST_F(NginxRevocation, HangingCdpDelaysOnlyTheWaitingRequest) {
  n().cdp().SetFault(h::CrlServer::Fault::kHang);
  auto waiting =
      std::async(std::launch::async, [&] { return n().Curl("/hang?case=hang", "good"); });
  // While that request waits, other locations answer at once.
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  int slowest = 0;
  for (int k = 0; k < 5; ++k) {
    Response other = n().Curl("/norev?case=during-hang-" + std::to_string(k), "good");
    EXPECT_EQ(other.status, 200);
    slowest = std::max(slowest, other.ms);
  }
  Response r = waiting.get();
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "403.13 client certificate refused: revocation_unavailable\n");
  EXPECT_GE(r.ms, 900) << "it waited for the fetch";
  EXPECT_LT(r.ms, 1000 + 1000) << "answered within certgate_revocation_wait";
  EXPECT_LT(slowest, 300) << "a request elsewhere waited for the hanging CDP";
  const std::string line = h::WaitForLine(n().error_log(), {"GET /hang?case=hang "});
  EXPECT_NE(line.find("reason=revocation_unavailable"), std::string::npos) << line;
  EXPECT_NE(line.find("intermediate.crl"), std::string::npos) << line;
}

TEST_F(NginxRevocation, ClientGoneWhileWaitingIsHarmless) {
  n().cdp().SetFault(h::CrlServer::Fault::kHang);
  // curl gives up after 0.3 s, while the request waits on its timer.
  Response gone = n().Curl("/hang?case=gone", "good", 0.3);
  EXPECT_NE(gone.curl_exit, 0) << "the request should still be waiting";
  std::vector<std::future<Response>> many;
  for (int k = 0; k < 5; ++k) {
    many.push_back(std::async(std::launch::async, [&, k] {
      return n().Curl("/hang?case=gone-" + std::to_string(k), "good", 0.2);
    }));
  }
  for (auto &f : many) f.get();
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(n().Curl("/norev?case=after-gone", "good").status, 200);
  const std::string log = h::ReadFile(n().error_log());
  EXPECT_TRUE(h::GrepLines(log, {"[alert]"}).empty()) << log;
  EXPECT_TRUE(h::GrepLines(log, {"signal"}).empty()) << log;
}

TEST_F(NginxRevocation, OcspRevokedAndGood) {
  Response revoked = n().Curl("/ocsp?case=revoked", "revoked");
  ASSERT_EQ(revoked.curl_exit, 0) << revoked.err;
  EXPECT_EQ(revoked.status, 403);
  EXPECT_EQ(revoked.body, "403.13 client certificate refused: revoked\n");
  const std::string line = h::WaitForLine(n().error_log(), {"GET /ocsp?case=revoked "});
  EXPECT_NE(line.find("ocsp http://127.0.0.1:18081"), std::string::npos) << line;
  EXPECT_NE(line.find("keyCompromise"), std::string::npos) << line;

  Response good = n().Curl("/ocsp?case=good", "good");
  EXPECT_EQ(good.status, 200) << good.body;
  const std::string access = AccessLine("/ocsp?case=good");
  EXPECT_NE(access.find("revocation=\"good ocsp http://127.0.0.1:18081"), std::string::npos)
      << access;
}

TEST_F(NginxRevocation, Http2StreamWaitsForTheFetch) {
  // A cold cache: the stream is suspended until the CRL is fetched.
  Response revoked = n().Curl("/h2?case=revoked", "revoked", 10, {"--http2"});
  ASSERT_EQ(revoked.curl_exit, 0) << revoked.err;
  EXPECT_EQ(revoked.status, 403);
  EXPECT_EQ(revoked.body, "403.13 client certificate refused: revoked\n");
  Response good = n().Curl("/h2?case=good", "good", 10, {"--http2"});
  EXPECT_EQ(good.status, 200);
  const std::string line = h::WaitForLine(n().error_log(), {"GET /h2?case=revoked HTTP/2.0"});
  EXPECT_NE(line.find("crl_number=1"), std::string::npos) << line;
  // A stream whose client goes away while it waits.
  n().cdp().SetFault(h::CrlServer::Fault::kHang);
  Response gone = n().Curl("/longwait?case=h2-gone", "good", 0.3, {"--http2"});
  EXPECT_NE(gone.curl_exit, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(n().Curl("/norev?case=after-h2-gone", "good", 10, {"--http2"}).status, 200);
  EXPECT_TRUE(h::GrepLines(h::ReadFile(n().error_log()), {"[alert]"}).empty());
}

// `nginx -t` of a configuration whose one location uses `cache` as its
// certgate_cache; `top` goes before the events block ("user ...;").
h::RunResult ConfigTestWithCache(const std::string &cache, const std::string &top = "") {
  return NginxRevocation::server().TestLocationConfig("cache-test.conf",
                                                      "      certgate require;\n"
                                                      "      certgate_revocation soft_fail;\n"
                                                      "      certgate_cache " +
                                                          cache + ";\n",
                                                      top);
}

// nginx -t: an unusable certgate_cache fails the test with the path named.
TEST_F(NginxRevocation, UnusableCacheDirectoryFailsConfigTest) {
  const std::string file = n().dir() + "/not-a-dir";
  h::WriteFile(file, "x");
  for (const std::string &cache : {file, file + "/sub"}) {
    h::RunResult r = ConfigTestWithCache(cache);
    EXPECT_NE(r.exit_code, 0) << cache;
    EXPECT_NE(r.err.find("[emerg]"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("\"" + cache + "\""), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("certgate"), std::string::npos) << r.err;
  }
}

// Issue 9 §4: a cache directory others may write is refused at -t, naming it.
TEST_F(NginxRevocation, CacheDirectoryOthersMayWriteFailsConfigTest) {
  const std::string cache = n().dir() + "/loose-cache";
  h::MakeDirs(cache);
  ASSERT_EQ(chmod(cache.c_str(), 0777), 0);
  h::RunResult r = ConfigTestWithCache(cache);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(
      r.err.find("[emerg] certgate: " + cache + " is writable by group or others (mode 0777)"),
      std::string::npos)
      << r.err;
}

// Issue 9 §4: a certgate_cache that is a symlink is refused at -t, and nothing
// on the way follows it: nginx's own path setup (ngx_create_paths) used to
// chown the link's target to the worker user before certgate's check ran.
TEST_F(NginxRevocation, CacheDirectorySymlinkIsRefusedAndItsTargetUntouched) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root: the chown is what is checked";
  const std::string target = n().dir() + "/symlink-target";
  const std::string link = n().dir() + "/symlink-cache";
  h::MakeDirs(target, 0755);
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  h::RunResult r = ConfigTestWithCache(link, "user nobody nogroup;\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("certgate: " + link + " is a symbolic link"), std::string::npos) << r.err;
  struct stat st {};
  ASSERT_EQ(stat(target.c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u) << "the symlink's target was given away";
}

// ---- every CDP fault survived with the cached CRL kept (issue 5 item 7) ----

// h::RunCdpFaultDrill at the locations /fx-<fault>: every fault of the CDP
// (HTTP 500, HTML, truncated, oversized, forged, rolled back, timeout,
// connection refused) leaves the cached CRL in force, and past nextUpdate +
// certgate_max_stale it is revocation_stale.
TEST_F(NginxRevocation, EveryCdpFaultKeepsTheCachedCrl) {
  h::CdpFaultServer server;
  server.get = [](const std::string &place, const std::string &client, const std::string &tag) {
    Response r = NginxRevocation::server().Curl("/fx-" + place + "?case=" + tag, client);
    return h::CdpFaultServer::Answer{r.status, r.body};
  };
  server.cache_dir = [](const std::string &place) {
    return NginxRevocation::server().cache("fx-" + place);
  };
  server.access_line = [](const std::string &tag) {
    return h::WaitForLine(NginxRevocation::server().access_log(), {"?case=" + tag + " "});
  };
  // nginx ends the line with the request ("GET /fx-...?case=TAG HTTP/1.1");
  // the notice log has the warnings as well as the refusals.
  server.refusal_line = [](const std::string &tag) {
    return h::WaitForLine(NginxRevocation::server().notice_log(), {"?case=" + tag + " "});
  };
  server.max_stale_name = "certgate_max_stale";
  server.fail = [](const std::string &problem) { ADD_FAILURE() << problem; };
  h::RunCdpFaultDrill(n().cdp(), n().pki(), n().dir() + "/faults", server);
}

// Issue 9 §4, h::RunDamagedCacheDrill at /cacheonly: the preloaded store
// damaged while nginx was down (meta page 1, which killed mdb_env_open with
// SIGBUS) is moved aside once and rebuilt from certgate_crl; the revoked
// client is refused throughout.
TEST_F(NginxRevocation, DamagedCacheIsMovedAsideOnceAndTheRevokedStaysRefused) {
  n().cdp().Stop();  // cache_only: nothing is fetched anyway
  h::DamagedCacheServer server;
  server.get = [&](const std::string &client, const std::string &tag) {
    Response r = n().Curl("/cacheonly?case=" + tag, client);
    return h::DamagedCacheServer::Answer{r.status, r.body};
  };
  server.cache_dir = n().cache("cacheonly");
  server.stop = [&] { n().process().Stop(SIGTERM, 10000); };
  server.start = [&] { return n().RestartNginx(); };
  // The line goes to the workers' stderr, which nginx points at its first
  // error log (by level: notice.log here).
  server.logs = [&] {
    return h::ReadFile(n().error_log()) + h::ReadFile(n().notice_log()) +
           h::ReadFile(n().dir() + "/logs/stderr.log");
  };
  server.fail = [](const std::string &problem) { ADD_FAILURE() << problem; };
  h::RunDamagedCacheDrill(server);
}

// Last (it stops nginx): a graceful shutdown waits for a request that waits
// for a fetch at most certgate_revocation_wait (3 s here), and that request
// gets its answer; the worker exits cleanly although the fetch still hangs.
// Issue 13 §3: the status page's revocation gauges, read by prometheus_client's
// parser: a CRL fetched from the CDP, a preloaded one, an OCSP responder, a
// URL that fails, and the accepted client certificate's expiry.
TEST_F(NginxRevocation, StatusPageGaugesParseAndTellTheCachedFacts) {
  ASSERT_EQ(n().Curl("/gauges?case=gauges", "good").status, 200);
  ASSERT_EQ(n().Curl("/cacheonly?case=gauges", "good").status, 200);
  ASSERT_EQ(n().Curl("/ocsp?case=gauges", "good").status, 200);
  n().cdp().Stop();  // connection refused
  EXPECT_EQ(n().Curl("/down?case=gauges", "good").status, 403);

  const Response page = n().Curl("/status", "");
  ASSERT_EQ(page.status, 200) << page.body;
  h::ExpectRevocationGauges(
      page.body, n().pki(),
      {n().cache("gauges"), n().cache("cacheonly"), n().cache("ocsp"), n().cache("down")}, 7200);
  // Issue 13 §4: every metric the example alerts and dashboard name is here.
  EXPECT_EQ(h::CheckConfExamples(page.body), "");
}

TEST_F(NginxRevocation, ZzGracefulShutdownWaitsAtMostTheRevocationWait) {
  n().cdp().SetFault(h::CrlServer::Fault::kHang);
  auto waiting =
      std::async(std::launch::async, [&] { return n().Curl("/longwait?case=quit", "good"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const auto start = Clock::now();
  ASSERT_TRUE(n().process().Signal(SIGQUIT));
  const int code = n().process().Wait(15000);
  EXPECT_EQ(code, 0);
  EXPECT_LT(MsSince(start), 3000 + 1500) << "the shutdown waited longer than the wait";
  Response r = waiting.get();
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "403.13 client certificate refused: revocation_unavailable\n");
  const std::string log = h::ReadFile(n().notice_log());
  EXPECT_TRUE(h::GrepLines(log, {"[alert]"}).empty()) << log;
  EXPECT_TRUE(h::GrepLines(log, {"exited on signal"}).empty()) << log;
}

}  // namespace
}  // namespace certgate::nginx_test
