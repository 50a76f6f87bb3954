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
#include <ctime>
#include <functional>
#include <future>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"

namespace certgate {
namespace {

namespace h = harness;
using Clock = std::chrono::steady_clock;

constexpr int kPort = 18410;      // the server under test
constexpr int kCdpPort = 18080;   // fixed in the demo certificates (CDP, caIssuers)
constexpr int kOcspPort = 18081;  // fixed in the demo certificates (AIA OCSP)

int MsSince(Clock::time_point start) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

struct Response {
  int curl_exit = -1;
  int status = 0;
  std::string body;
  std::string err;
  int ms = 0;
};

class Instance {
 public:
  std::string Start() {
    nginx_ = h::FindProgram(CERTGATE_NGINX_BINARY);
    if (nginx_.empty()) return std::string(CERTGATE_NGINX_BINARY) + " is missing";
    dir_ = std::make_unique<h::TempDir>("certgate-nginx-rev");
    if (!dir_->ok()) return "cannot create a temp dir";
    const std::string d = dir_->path();
    h::MakeDirs(d + "/logs");
    h::MakeDirs(d + "/tmp");
    // Root-owned and 0755, as a test would leave it: the module must hand each
    // cache to the worker user (nobody) itself.
    h::MakeDirs(d + "/cache");
    std::string error = h::GeneratePki(pki());
    if (!error.empty()) return error;
    if (!h::WriteFile(conf(), Config())) return "cannot write nginx.conf";
    h::RunResult test = h::Run({nginx_, "-t", "-p", d, "-c", conf()});
    if (test.exit_code != 0) return "nginx -t failed:\n" + test.err;
    error = cdp_.Start(d + "/cdp", pki() + "/www", kCdpPort);
    if (!error.empty()) return error;
    error = ocsp_.Start(pki(), kOcspPort, d + "/logs/ocsp.log");
    if (!error.empty()) return error;
    if (!process_.Start({nginx_, "-p", d, "-c", conf()}, d + "/logs/stdout.log",
                        d + "/logs/stderr.log")) {
      return "cannot start nginx: " + process_.error();
    }
    if (!h::WaitForPort(kPort, 10000)) {
      return "nginx does not listen:\n" + h::ReadFile(d + "/logs/stderr.log") +
             h::ReadFile(error_log());
    }
    return "";
  }

  void Stop() {
    // SIGTERM: a request still waiting must not hold the test.
    if (process_.pid() > 0) process_.Stop(SIGTERM, 10000);
    cdp_.Stop();
    ocsp_.Stop();
  }

  std::string Location(const std::string &name, const std::string &directives) const {
    return "    location = /" + name + " {\n      certgate_cache " + cache(name) + ";\n" +
           directives + "      return 200 \"ok\\n\";\n    }\n";
  }

  std::string Config() const {
    const std::string d = dir_->path();
    const std::string p = pki();
    const std::string crl_only = "      certgate_revocation_sources crl;\n";
    return "load_module " CERTGATE_NGINX_MODULE_PATH ";\n" +
           h::NginxConfigHead(d, 1, {error_log(), notice_log() + " notice"}) +
           "  log_format cg '$request_uri status=$status reason=$certgate_reason "
           "revocation=\"$certgate_revocation\"';\n"
           "  access_log " +
           access_log() +
           " cg;\n"
           "  ssl_protocols TLSv1.2 TLSv1.3;\n"
           "  ssl_session_cache shared:SSL:1m;\n"
           "  ssl_session_tickets on;\n"
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
           "    location = /norev { certgate_revocation off; return 200 \"norev\\n\"; }\n" +
           Location("crl", crl_only) +
           Location("down", crl_only + "      certgate_revocation_wait 1s;\n") +
           Location("hang", crl_only +
                                "      certgate_revocation_wait 1s;\n"
                                "      certgate_fetch_timeout 2s;\n") +
           Location("soft", crl_only + "      certgate_revocation soft_fail;\n") +
           Location("cacheonly", "      certgate_revocation cache_only;\n      certgate_crl " + p +
                                     "/crl/intermediate.crl " + p + "/crl/root.crl;\n") +
           Location("update", crl_only) + Location("h2", crl_only) +
           Location("longwait", crl_only +
                                    "      certgate_revocation_wait 3s;\n"
                                    "      certgate_fetch_timeout 30s;\n") +
           Location("ocsp",
                    "      certgate_revocation_sources ocsp;\n"
                    "      certgate_revocation_scope leaf;\n") +
           FaultLocations() +
           "  }\n"
           "}\n";
  }

  // EveryCdpFaultKeepsTheCachedCrl: one location (and cache, so one backoff
  // state) per fault, all hard_fail with CRLs only, leaf only (no root.crl).
  std::string FaultLocations() const {
    const std::string base =
        "      certgate_revocation_sources crl;\n      certgate_revocation_scope leaf;\n";
    return Location("fx-500", base) + Location("fx-html", base) + Location("fx-truncated", base) +
           Location("fx-oversized", base + "      certgate_fetch_max_size 1k;\n") +
           Location("fx-forged", base) + Location("fx-rollback", base) +
           Location("fx-timeout", base + "      certgate_fetch_timeout 1s;\n") +
           Location("fx-refused", base) +
           Location("fx-stale", base + "      certgate_max_stale 2s;\n");
  }

  Response Curl(const std::string &path, const std::string &client,
                const std::string &max_time = "10",
                const std::vector<std::string> &extra = {}) const {
    std::vector<std::string> argv = {"curl", "-sSk", "--max-time", max_time,
                                     "-o",   "-",    "-w",         "\n%{http_code}"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    if (!client.empty()) {
      argv.insert(argv.end(), {"--cert", pki() + "/clients/" + client + ".chain.pem", "--key",
                               pki() + "/clients/" + client + ".key"});
    }
    argv.push_back("https://127.0.0.1:" + std::to_string(kPort) + path);
    const auto start = Clock::now();
    h::RunResult r = h::Run(argv);
    Response out;
    out.ms = MsSince(start);
    out.curl_exit = r.exit_code;
    out.err = r.err;
    const size_t nl = r.out.rfind('\n');
    if (nl != std::string::npos) {
      out.body = r.out.substr(0, nl);
      out.status = std::atoi(r.out.c_str() + nl + 1);
    }
    return out;
  }

  // openssl s_client: one HTTP/1.1 request, saving or reusing a session.
  h::RunResult SClient(const std::string &client, const std::string &path,
                       const std::vector<std::string> &extra) const {
    std::vector<std::string> argv = {
        "openssl",     "s_client",  "-connect", "127.0.0.1:" + std::to_string(kPort),
        "-servername", "localhost", "-ign_eof", "-tls1_3"};
    if (!client.empty()) {
      argv.insert(argv.end(), {"-cert", pki() + "/clients/" + client + ".crt", "-key",
                               pki() + "/clients/" + client + ".key", "-cert_chain",
                               pki() + "/ca/intermediate.pem"});
    }
    argv.insert(argv.end(), extra.begin(), extra.end());
    return h::Run(argv, {},
                  "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
                  15000);
  }

  std::string pki() const { return dir_->path() + "/pki"; }
  std::string dir() const { return dir_->path(); }
  std::string cache(const std::string &name) const { return dir_->path() + "/cache/" + name; }
  std::string conf() const { return dir_->path() + "/nginx.conf"; }
  std::string error_log() const { return dir_->path() + "/logs/error.log"; }
  std::string notice_log() const { return dir_->path() + "/logs/notice.log"; }
  std::string access_log() const { return dir_->path() + "/logs/access.log"; }
  h::CrlServer &cdp() { return cdp_; }
  h::Process &process() { return process_; }
  h::OcspResponder &ocsp() { return ocsp_; }

 private:
  std::string nginx_;
  std::unique_ptr<h::TempDir> dir_;
  h::Process process_;
  h::CrlServer cdp_;
  h::OcspResponder ocsp_;
};

Instance *g_instance = nullptr;
std::string g_start_error;

class NginxRevocation : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_instance = new Instance();
    g_start_error = g_instance->Start();
  }
  static void TearDownTestSuite() {
    g_instance->Stop();
    delete g_instance;
    g_instance = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(g_start_error.empty()) << g_start_error; }
  void TearDown() override {
    // Every test leaves the CDP up, healthy and with the demo CRLs.
    Instance &n = *g_instance;
    n.cdp().SetFault(h::CrlServer::Fault::kNone);
    if (!n.cdp().Running()) {
      EXPECT_EQ(n.cdp().Start(n.dir() + "/cdp", n.pki() + "/www", kCdpPort), "");
    }
    n.cdp().PublishFile("intermediate.crl", n.pki() + "/crl/intermediate.crl");
  }
  Instance &n() { return *g_instance; }
};

std::string WaitLine(const std::string &file, const std::vector<std::string> &needles,
                     int timeout_ms = 3000) {
  const auto start = Clock::now();
  do {
    auto lines = h::GrepLines(h::ReadFile(file), needles);
    if (!lines.empty()) return lines.back();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  } while (MsSince(start) < timeout_ms);
  return "";
}

std::string AccessLine(const std::string &uri) {
  return WaitLine(g_instance->access_log(), {uri + " "});
}

TEST_F(NginxRevocation, CacheDirectoryIsHandedToTheWorkerUser) {
  struct stat st;
  ASSERT_EQ(stat(n().cache("crl").c_str(), &st), 0);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0700u);
  if (geteuid() == 0) {
    EXPECT_NE(st.st_uid, 0u) << "not chowned to the worker user";
  }
}

TEST_F(NginxRevocation, RevokedByCrlFromTheCdp) {
  Response r = n().Curl("/crl?case=revoked", "revoked");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "403.13 client certificate refused: revoked\n");
  const std::string line = WaitLine(n().error_log(), {"GET /crl?case=revoked "});
  EXPECT_NE(line.find("[error]"), std::string::npos) << line;
  EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
  EXPECT_NE(line.find("http://127.0.0.1:18080/intermediate.crl"), std::string::npos) << line;
  EXPECT_NE(line.find("crl_number=1"), std::string::npos) << line;
  EXPECT_NE(line.find("keyCompromise"), std::string::npos) << line;
  EXPECT_TRUE(std::regex_search(line, std::regex("revoked 20\\d\\d-\\d\\d-\\d\\d"))) << line;
  EXPECT_FALSE(n().cdp().Requests("/intermediate.crl").empty());
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
  const std::string line = WaitLine(n().error_log(), {"GET /down?case=refused "});
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
  const std::string line = WaitLine(n().notice_log(), {"GET /soft?case=down "});
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
  const std::string line = WaitLine(n().error_log(), {"GET /cacheonly?case=revoked "});
  EXPECT_NE(line.find("intermediate.crl"), std::string::npos) << line;
  Response good = n().Curl("/cacheonly?case=good", "good");
  EXPECT_EQ(good.status, 200) << good.body;
  const std::string access = AccessLine("/cacheonly?case=good");
  EXPECT_NE(access.find("revocation=\"good crl"), std::string::npos) << access;
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
      WaitLine(n().error_log(), {"GET /update?case=poll-" + std::to_string(i - 1) + " "});
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
  const std::string line = WaitLine(n().error_log(), {"GET /hang?case=hang "});
  EXPECT_NE(line.find("reason=revocation_unavailable"), std::string::npos) << line;
  EXPECT_NE(line.find("intermediate.crl"), std::string::npos) << line;
}

TEST_F(NginxRevocation, ClientGoneWhileWaitingIsHarmless) {
  n().cdp().SetFault(h::CrlServer::Fault::kHang);
  // curl gives up after 0.3 s, while the request waits on its timer.
  Response gone = n().Curl("/hang?case=gone", "good", "0.3");
  EXPECT_NE(gone.curl_exit, 0) << "the request should still be waiting";
  std::vector<std::future<Response>> many;
  for (int k = 0; k < 5; ++k) {
    many.push_back(std::async(std::launch::async, [&, k] {
      return n().Curl("/hang?case=gone-" + std::to_string(k), "good", "0.2");
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
  const std::string line = WaitLine(n().error_log(), {"GET /ocsp?case=revoked "});
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
  Response revoked = n().Curl("/h2?case=revoked", "revoked", "10", {"--http2"});
  ASSERT_EQ(revoked.curl_exit, 0) << revoked.err;
  EXPECT_EQ(revoked.status, 403);
  EXPECT_EQ(revoked.body, "403.13 client certificate refused: revoked\n");
  Response good = n().Curl("/h2?case=good", "good", "10", {"--http2"});
  EXPECT_EQ(good.status, 200);
  const std::string line = WaitLine(n().error_log(), {"GET /h2?case=revoked HTTP/2.0"});
  EXPECT_NE(line.find("crl_number=1"), std::string::npos) << line;
  // A stream whose client goes away while it waits.
  n().cdp().SetFault(h::CrlServer::Fault::kHang);
  Response gone = n().Curl("/longwait?case=h2-gone", "good", "0.3", {"--http2"});
  EXPECT_NE(gone.curl_exit, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));
  EXPECT_EQ(n().Curl("/norev?case=after-h2-gone", "good", "10", {"--http2"}).status, 200);
  EXPECT_TRUE(h::GrepLines(h::ReadFile(n().error_log()), {"[alert]"}).empty());
}

// nginx -t: an unusable certgate_cache fails the test with the path named.
TEST_F(NginxRevocation, UnusableCacheDirectoryFailsConfigTest) {
  const std::string file = n().dir() + "/not-a-dir";
  h::WriteFile(file, "x");
  for (const std::string &cache : {file, file + "/sub"}) {
    const std::string conf = n().dir() + "/bad-cache.conf";
    h::WriteFile(conf, "load_module " CERTGATE_NGINX_MODULE_PATH
                       ";\n"
                       "pid " +
                           n().dir() +
                           "/t.pid;\n"
                           "error_log " +
                           n().dir() +
                           "/logs/t.log;\n"
                           "events {}\n"
                           "http {\n  server {\n    listen 127.0.0.1:18429;\n"
                           "    location / {\n      certgate require;\n"
                           "      certgate_revocation soft_fail;\n"
                           "      certgate_cache " +
                           cache + ";\n    }\n  }\n}\n");
    h::RunResult r = h::Run({CERTGATE_NGINX_BINARY, "-t", "-p", n().dir(), "-c", conf});
    EXPECT_NE(r.exit_code, 0) << cache;
    EXPECT_NE(r.err.find("[emerg]"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("\"" + cache + "\""), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("certgate"), std::string::npos) << r.err;
  }
}

// ---- every CDP fault survived with the cached CRL kept (issue 5 item 7) ----

// "YYMMDDHHMMSSZ" (an `openssl ca` index date) for now + offset.
std::string IndexTime(int64_t offset_seconds) {
  const time_t when = time(nullptr) + offset_seconds;
  struct tm tm;
  gmtime_r(&when, &tm);
  char text[32];
  strftime(text, sizeof(text), "%y%m%d%H%M%SZ", &tm);
  return text;
}

// Signs a CRL with `openssl ca -gencrl` (files under `workdir`) from an index
// text, as `ca_cert` with `ca_key`: crlNumber `number`, nextUpdate now +
// `valid_seconds`. Like h::SignDemoCrl, with any index and any signer.
std::string SignCrl(const std::string &workdir, const std::string &index_text,
                    const std::string &ca_cert, const std::string &ca_key, int number,
                    int valid_seconds, std::string *der) {
  if (!h::MakeDirs(workdir, 0755)) return "cannot create " + workdir;
  const std::string index = workdir + "/index.txt";
  char hex[32];
  snprintf(hex, sizeof(hex), "%04X\n", number);
  const std::string cnf = workdir + "/ca.cnf";
  if (!h::WriteFile(index, index_text) || !h::WriteFile(index + ".attr", "unique_subject = no\n") ||
      !h::WriteFile(workdir + "/crlnumber", hex) ||
      !h::WriteFile(cnf, "[ca]\ndefault_ca = cg\n[cg]\ndatabase = " + index +
                             "\ncrlnumber = " + workdir +
                             "/crlnumber\ndefault_md = sha256\ncrl_extensions = crl_ext\n"
                             "[crl_ext]\nauthorityKeyIdentifier = keyid:always\n")) {
    return "cannot write under " + workdir;
  }
  const std::string pem = workdir + "/crl.pem";
  h::RunResult r =
      h::Run({"openssl", "ca", "-batch", "-gencrl", "-config", cnf, "-keyfile", ca_key, "-cert",
              ca_cert, "-crlsec", std::to_string(valid_seconds), "-out", pem});
  if (r.exit_code != 0) return "openssl ca -gencrl failed: " + r.err;
  r = h::Run({"openssl", "crl", "-in", pem, "-outform", "DER", "-out", workdir + "/crl.der"});
  if (r.exit_code != 0) return "openssl crl failed: " + r.err;
  *der = h::ReadFile(workdir + "/crl.der");
  return der->empty() ? "empty CRL" : "";
}

// An `openssl ca` index with every revoked (R) line made valid (V) again.
std::string UnrevokeAll(const std::string &index_text) {
  std::istringstream in(index_text);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("R\t", 0) == 0) {
      // R \t expiry \t revocation \t serial ... -> V \t expiry \t \t serial ...
      const size_t expiry_end = line.find('\t', 2);
      const size_t revocation_end = line.find('\t', expiry_end + 1);
      line = "V" + line.substr(1, expiry_end) + line.substr(revocation_end);
    }
    out += line + "\n";
  }
  return out;
}

// certgate (the CLI) of this build, next to certgate-mkpki's build tree; "" if
// it cannot be found.
std::string CertgateCli() {
  const std::string mkpki = h::MkpkiPath();
  const std::string tail = "/tests/pki/certgate-mkpki";
  if (mkpki.size() <= tail.size() || mkpki.compare(mkpki.size() - tail.size(), tail.size(), tail))
    return "";
  const std::string cli = mkpki.substr(0, mkpki.size() - tail.size()) + "/cli/certgate";
  return access(cli.c_str(), X_OK) == 0 ? cli : "";
}

// The `certgate cache list` line of `url` in the cache `dir` ("" if none).
std::string CachedUrlState(const std::string &cli, const std::string &dir, const std::string &url) {
  h::RunResult r = h::Run({cli, "cache", "list", "--cache", dir}, {}, {}, 5000);
  std::vector<std::string> lines = h::GrepLines(r.out, {"url " + url + " "});
  return lines.empty() ? "" : lines.front();
}

// Every fault of the CDP leaves the cached CRL in force: a location (its own
// cache, hence its own backoff) per fault first caches a good CRL (crlNumber
// 20, nextUpdate 6 s ahead, so the checker refreshes it once that passes); then
// the fault is put at the CDP, a request triggers the refresh, and once the
// refresh has failed (seen in the store through `certgate cache list`, which
// names the error) good is still allowed and revoked still refused by crlNumber
// 20. Last, with the CDP down and certgate_max_stale 2s, the CRL becomes
// revocation_stale once nextUpdate + 2 s has passed.
TEST_F(NginxRevocation, EveryCdpFaultKeepsTheCachedCrl) {
  constexpr int kValid = 6;  // nextUpdate of the cached CRL, seconds ahead
  const std::string url = "http://127.0.0.1:18080/intermediate.crl";
  const std::string path = "/intermediate.crl";
  const std::string pki = n().pki();
  const std::string work = n().dir() + "/faults";
  const std::string cli = CertgateCli();
  if (cli.empty()) {
    ADD_FAILURE() << "certgate CLI not found next to " << h::MkpkiPath()
                  << ": refresh attempts can only be seen in the CDP's log";
  }
  const std::string revoked_body = "403.13 client certificate refused: revoked\n";

  // The bad bodies, prepared first (signing takes a moment). Each "newer" one
  // (crlNumber 21) also revokes `good`: were it taken, good would be refused.
  const std::string demo_index = h::ReadFile(pki + "/ocsp/index.txt");
  ASSERT_FALSE(demo_index.empty());
  const std::string good_serial = h::DemoSerial(pki, "good");
  ASSERT_FALSE(good_serial.empty());
  ASSERT_TRUE(h::MakeDirs(work));
  const std::string index_revoking_good = work + "/index-revoking-good.txt";
  ASSERT_TRUE(h::WriteFile(index_revoking_good, demo_index));
  ASSERT_TRUE(h::RevokeInIndex(index_revoking_good, good_serial, IndexTime(-60)));
  const std::string newer_index = h::ReadFile(index_revoking_good);

  std::string newer;  // valid, crlNumber 21, revokes good
  ASSERT_EQ(SignCrl(work + "/newer", newer_index, pki + "/ca/intermediate.pem",
                    pki + "/ca/intermediate.key", 21, 3600, &newer),
            "");
  const std::string truncated = newer.substr(0, newer.size() / 2);

  // Oversized: the same, padded with 60 more entries past 1k (the location's
  // certgate_fetch_max_size); the cached CRL is well under it.
  std::string padded_index = newer_index;
  for (int i = 0; i < 60; ++i) {
    char serial[16];
    snprintf(serial, sizeof(serial), "%04X", 0x7000 + i);
    padded_index += "R\t491231235959Z\t" + IndexTime(-120) + ",keyCompromise\t" + serial +
                    "\tunknown\t/O=Example/CN=pad-" + std::to_string(i) + "\n";
  }
  std::string oversized;
  ASSERT_EQ(SignCrl(work + "/oversized", padded_index, pki + "/ca/intermediate.pem",
                    pki + "/ca/intermediate.key", 21, 3600, &oversized),
            "");
  ASSERT_GT(oversized.size(), 1024u);

  // Forged: the Issuing CA's name and key identifier (its certificate re-signed
  // with the Other Issuing CA's key, so `openssl ca` accepts that key), signed
  // with a key that is not the Issuing CA's.
  const std::string fake_ca = work + "/fake-intermediate.pem";
  h::RunResult fake = h::Run({"openssl", "x509", "-in", pki + "/ca/intermediate.pem", "-signkey",
                              pki + "/ca/other-intermediate.key", "-days", "1", "-out", fake_ca});
  ASSERT_EQ(fake.exit_code, 0) << fake.err;
  std::string forged;
  ASSERT_EQ(SignCrl(work + "/forged", newer_index, fake_ca, pki + "/ca/other-intermediate.key", 21,
                    3600, &forged),
            "");

  // Rolled back: validly signed, crlNumber 19 < 20, and `revoked` is not in it.
  std::string rolled_back;
  ASSERT_EQ(SignCrl(work + "/rolled-back", UnrevokeAll(demo_index), pki + "/ca/intermediate.pem",
                    pki + "/ca/intermediate.key", 19, 3600, &rolled_back),
            "");

  // The good CRL every fault location caches: crlNumber 20, nextUpdate in 6 s.
  std::string cached;
  ASSERT_EQ(SignCrl(work + "/cached", demo_index, pki + "/ca/intermediate.pem",
                    pki + "/ca/intermediate.key", 20, kValid, &cached),
            "");
  ASSERT_LT(cached.size(), 1024u);
  ASSERT_TRUE(n().cdp().Publish("intermediate.crl", cached));
  const auto published = Clock::now();

  int seq = 0;
  auto tag = [&](const std::string &what) { return what + "-" + std::to_string(seq++); };
  // good → 200 with crlNumber 20 in $certgate_revocation; revoked → 403 revoked
  // by crlNumber 20.
  auto expect_cached_verdicts = [&](const std::string &location, const std::string &when) {
    const std::string g = "/" + location + "?case=" + tag(when + "-good");
    Response good = n().Curl(g, "good");
    EXPECT_EQ(good.curl_exit, 0) << good.err;
    EXPECT_EQ(good.status, 200) << g << ": " << good.body;
    const std::string access = AccessLine(g);
    EXPECT_NE(access.find("revocation=\"good crl " + url + " crl_number=20"), std::string::npos)
        << access;
    const std::string r = "/" + location + "?case=" + tag(when + "-revoked");
    Response revoked = n().Curl(r, "revoked");
    EXPECT_EQ(revoked.curl_exit, 0) << revoked.err;
    EXPECT_EQ(revoked.status, 403) << r;
    EXPECT_EQ(revoked.body, revoked_body) << r;
    const std::string line = WaitLine(n().error_log(), {"GET " + r + " "});
    EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
    EXPECT_NE(line.find("crl_number=20"), std::string::npos) << line;
  };

  const std::vector<std::string> locations = {"fx-500",       "fx-html",    "fx-truncated",
                                              "fx-oversized", "fx-forged",  "fx-rollback",
                                              "fx-timeout",   "fx-refused", "fx-stale"};
  for (const std::string &location : locations) {
    SCOPED_TRACE(location);
    expect_cached_verdicts(location, "cold");
    if (!cli.empty()) {
      const std::string state = CachedUrlState(cli, n().cache(location), url);
      EXPECT_NE(state.find(" ok: stored crl_number=20"), std::string::npos) << state;
    }
  }
  ASSERT_FALSE(HasFailure()) << "no good data to start from";
  // (Should establishing run past nextUpdate on a slow machine, the refreshes
  // it triggers only confirm crlNumber 20, still at the CDP.)

  // Puts a fault at the CDP, asks `location` until the checker has tried to
  // refresh (it is due once nextUpdate has passed) and that try has failed,
  // then checks the verdicts are those of the cached CRL.
  auto survive = [&](const std::string &location, const std::function<void()> &inject,
                     const std::string &error, const std::string &cdp_status) {
    SCOPED_TRACE(location);
    const size_t before = n().cdp().Requests(path).size();
    inject();
    const auto start = Clock::now();
    bool attempted = false;
    std::string state;
    while (!attempted && MsSince(start) < (kValid + 8) * 1000) {
      const std::string g = "/" + location + "?case=" + tag("poll");
      Response good = n().Curl(g, "good");
      EXPECT_EQ(good.status, 200) << g << ": " << good.body;
      if (!cli.empty()) {
        state = CachedUrlState(cli, n().cache(location), url);
        attempted = state.find(" failed: ") != std::string::npos;
      } else {
        attempted = n().cdp().Requests(path).size() > before;
        if (attempted) std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
      if (!attempted) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    ASSERT_TRUE(attempted) << "no refresh attempt seen; " << state;
    if (!cli.empty()) {
      EXPECT_NE(state.find(error), std::string::npos) << state;
      EXPECT_NE(state.find(" failures=1 "), std::string::npos) << state;
      EXPECT_NE(state.find(" backoff_until="), std::string::npos) << state;
    }
    if (!cdp_status.empty()) {
      const std::vector<std::string> after = n().cdp().Requests(path);
      ASSERT_GT(after.size(), before);
      EXPECT_EQ(after[before].rfind(path + " " + cdp_status + " ", 0), 0u) << after[before];
    }
    expect_cached_verdicts(location, "after");
  };

  using Fault = h::CrlServer::Fault;
  h::CrlServer &cdp = n().cdp();
  survive(
      "fx-500", [&] { cdp.SetFault(Fault::k500, path); }, "failed: HTTP 500", "500");
  survive(
      "fx-html", [&] { cdp.SetFault(Fault::kHtml, path); }, "not a CRL: the body is text", "200");
  cdp.SetFault(Fault::kNone, path);
  survive(
      "fx-truncated", [&] { cdp.Publish("intermediate.crl", truncated); }, "truncated CRL", "200");
  survive(
      "fx-oversized", [&] { cdp.Publish("intermediate.crl", oversized); },
      "larger than certgate_fetch_max_size (1024 bytes)", "");
  survive(
      "fx-forged", [&] { cdp.Publish("intermediate.crl", forged); }, "signature does not verify",
      "200");
  survive(
      "fx-rollback", [&] { cdp.Publish("intermediate.crl", rolled_back); },
      "rolled back: crlNumber 19 < cached 20", "200");
  // Timeout: the CDP accepts and never answers; certgate_fetch_timeout 1s. (The
  // CDP logs a hung request only when it ends, so no status check.)
  cdp.Publish("intermediate.crl", cached);
  survive(
      "fx-timeout", [&] { cdp.SetFault(Fault::kHang, path); }, "timed out", "");
  cdp.SetFault(Fault::kNone, path);
  survive(
      "fx-refused", [&] { cdp.Stop(); }, "onnect", "");

  // Past nextUpdate + certgate_max_stale (2 s), with the CDP still down: good
  // is allowed until then, revocation_stale after.
  ASSERT_FALSE(cdp.Running());
  const std::string stale_body = "403.13 client certificate refused: revocation_stale\n";
  std::string stale_path;
  int first_stale_ms = -1;
  while (MsSince(published) < (kValid + 2 + 6) * 1000) {
    const std::string g = "/fx-stale?case=" + tag("stale-poll");
    Response good = n().Curl(g, "good");
    if (good.status == 403) {
      EXPECT_EQ(good.body, stale_body) << g;
      first_stale_ms = MsSince(published);
      stale_path = g;
      break;
    }
    EXPECT_EQ(good.status, 200) << g << ": " << good.body;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(first_stale_ms, 0) << "never revocation_stale";
  // nextUpdate is whole seconds after signing, which came before `published`.
  EXPECT_GE(first_stale_ms, (kValid + 2 - 1) * 1000) << "stale before nextUpdate + max_stale";
  const std::string line = WaitLine(n().error_log(), {"GET " + stale_path + " "});
  EXPECT_NE(line.find("reason=revocation_stale"), std::string::npos) << line;
  EXPECT_NE(line.find("certgate_max_stale 2 s"), std::string::npos) << line;
  EXPECT_NE(line.find("crl_number=20"), std::string::npos) << line;
  EXPECT_NE(line.find(url + ": failed: "), std::string::npos) << line;
  // ($certgate_revocation is "stale (hard_fail)": the core names no source for
  // a stale answer; the error-log line above names the expired CRL.)
  const std::string access = AccessLine(stale_path);
  EXPECT_NE(access.find("revocation=\"stale"), std::string::npos) << access;
  // A serial in the expired CRL is still refused (revoked wins).
  Response revoked = n().Curl("/fx-stale?case=" + tag("stale-revoked"), "revoked");
  EXPECT_EQ(revoked.status, 403) << revoked.body;
}

// Last (it stops nginx): a graceful shutdown waits for a request that waits
// for a fetch at most certgate_revocation_wait (3 s here), and that request
// gets its answer; the worker exits cleanly although the fetch still hangs.
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
}  // namespace certgate
