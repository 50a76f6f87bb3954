// mod_certgate in apache2 (see apache_test_fixture.h). ApacheBehaviour: optional, per-<Location>
// rules, Satisfy Any, ErrorDocument, the SSLVerifyClient modes, resumption, reject_at handshake,
// the status page.
#include <gtest/gtest.h>
#include <harness.h>
#include <signal.h>
#include <unistd.h>

#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apache_test_fixture.h"

namespace certgate_apache_test {
namespace {

// ---- ApacheBehaviour ----

// Ports, relative to the MPM's base.
enum : int {
  kMain = 0,         // optional_no_ca, require, with the <Location> variants
  kVerifyOptional,   // SSLVerifyClient optional
  kVerifyRequire,    // SSLVerifyClient require
  kVerifyUnset,      // no SSLVerifyClient at all
  kHandshake,        // CertGateRejectAt handshake
  kWithoutCertgate,  // SSLVerifyClient require, no CertGate directive
  kAppBackend,       // plain HTTP: the application behind ProxyPass (Debian's nginx)
  kForwarded,        // CertGateForwardedCert from 127.0.0.2, trust with the intermediate
  kFront,            // a plain nginx terminating TLS in front of kForwarded
};

class ApacheBehaviour : public ::testing::TestWithParam<std::string> {
 protected:
  static std::map<std::string, std::unique_ptr<Apache>> &Servers() {
    static std::map<std::string, std::unique_ptr<Apache>> servers;
    return servers;
  }
  static std::map<std::string, std::unique_ptr<h::CrlServer>> &Backends() {
    static std::map<std::string, std::unique_ptr<h::CrlServer>> backends;
    return backends;
  }
  static void TearDownTestSuite() {
    Backends().clear();
    Servers().clear();
  }

  static std::string Vhosts(int base) {
    const std::string pki = SharedPki().path;
    return VirtualHost(base + kMain, "optional_no_ca",
                       "  CertGate require\n"
                       "  CertGateLog kv accepts\n"
                       "  <Location /opt>\n    CertGate optional\n  </Location>\n"
                       "  <Location /off>\n    CertGate off\n  </Location>\n"
                       "  <Location /v3-rules>\n    CertGateRequireEku any\n"
                       "    CertGateRequireKeyUsage off\n  </Location>\n"
                       "  <Location /lenient>\n    CertGateStrict off\n    CertGateRequireEku any\n"
                       "    CertGateRequireKeyUsage off\n  </Location>\n"
                       "  <Location /issuers>\n    CertGateTrustedIssuers " +
                           pki +
                           "/ca/intermediate.pem\n  </Location>\n"
                           "  <Location /satisfy>\n    Satisfy Any\n    Require all granted\n"
                           "    Allow from all\n  </Location>\n"
                           "  <Location /errdoc>\n    ErrorDocument 403 \"custom refusal page\"\n"
                           "  </Location>\n"
                           "  <Location /errlocal>\n    ErrorDocument 403 /denied.html\n"
                           "  </Location>\n"
                           // An ErrorDocument is judged like any request: this
                           // one is served because certgate is off there.
                           "  <Location /denied.html>\n    CertGate off\n  </Location>\n"
                           // Issue 9 §3: the application behind a reverse proxy,
                           // and a front controller as the ErrorDocument.
                           "  ProxyPass /app/ http://127.0.0.1:" +
                           std::to_string(base + kAppBackend) +
                           "/\n"
                           "  <Location /front>\n    ErrorDocument 403 /app/app.txt\n"
                           "  </Location>\n"
                           "  <Location /notfound>\n    ErrorDocument 404 /index.html\n"
                           "  </Location>\n"
                           "  <Location /cgi>\n    Options +ExecCGI\n    SetHandler cgi-script\n"
                           "  </Location>\n"
                           "  <Location /frontcgi>\n    ErrorDocument 403 /cgi/app.cgi\n"
                           "  </Location>\n"
                           // Issue 9 §5: bodies longer than any fixed buffer.
                           "  <Location /longjson>\n    CertGateSubject OU=People\n"
                           "    CertGateRejectBody json\n    CertGateRejectDetail on\n"
                           "  </Location>\n"
                           "  <Location /longhtml>\n    CertGateSubject OU=People\n"
                           "    CertGateRejectBody html\n    CertGateRejectDetail on\n"
                           "  </Location>\n"
                           "  <Location /json>\n    CertGateRejectBody json\n"
                           "    CertGateRejectStatus 496\n    CertGateRejectDetail on\n"
                           "  </Location>\n"
                           "  <Location /certgate-status>\n    CertGate off\n"
                           "    CertGateStatus on\n  </Location>\n"
                           "  <Location /certgate-status/off>\n    CertGateStatus off\n"
                           "  </Location>\n"
                           "  <Location /people-regex>\n"
                           "    CertGateSubject \"~^CN=[^,]+,OU=People\"\n  </Location>\n"
                           "  <Location /staff-regex>\n"
                           "    CertGateSubject \"~^CN=[^,]+,OU=Staff\"\n  </Location>\n") +
           VirtualHost(base + kVerifyOptional, "optional", "  CertGate require\n") +
           VirtualHost(base + kVerifyRequire, "require", "  CertGate require\n") +
           VirtualHost(base + kVerifyUnset, "", "  CertGate require\n") +
           VirtualHost(base + kHandshake, "optional_no_ca",
                       "  CertGate require\n  CertGateRejectAt handshake\n") +
           VirtualHost(base + kWithoutCertgate, "require", "") +
           VirtualHost(base + kForwarded, "optional_no_ca",
                       "  SSLCACertificateFile " + pki +
                           "/ca/trust-with-intermediate.pem\n"
                           "  CertGate require\n"
                           "  CertGateTrustedProxies 127.0.0.2\n"
                           "  CertGateForwardedCert header=X-SSL-Client-Cert\n"
                           "  <Location /xfcc>\n    CertGateForwardedCert xfcc\n  </Location>\n");
  }

  void SetUp() override {
    mpm_ = GetParam();
    base_ = BasePort(mpm_, 18540, 18560);
    auto &slot = Servers()[mpm_];
    if (!slot) {
      slot = std::make_unique<Apache>(mpm_);
      start_error_[mpm_] = slot->Start(Vhosts(base_), base_ + kWithoutCertgate);
      auto &backend = Backends()[mpm_];
      backend = std::make_unique<h::CrlServer>();
      const std::string www = slot->root() + "/backend-www";
      h::MakeDirs(www);
      h::WriteFile(www + "/app.txt", "application answer\n");
      const std::string error = backend->Start(slot->root() + "/backend", www, base_ + kAppBackend);
      if (!error.empty()) start_error_[mpm_] += "application backend: " + error;
    }
    ASSERT_TRUE(start_error_[mpm_].empty()) << start_error_[mpm_];
    server_ = slot.get();
    backend_ = Backends()[mpm_].get();
  }

  int Port(int which) const { return base_ + which; }
  std::string AccessLine(h::LogTail &access, const std::string &needle) {
    bool found = false;
    const std::string text = access.WaitFor(needle, 5000, &found);
    auto lines = h::GrepLines(text, {needle});
    return lines.empty() ? "(no line with " + needle + " in:\n" + text + ")" : lines.back();
  }

  std::string mpm_;
  int base_ = 0;
  Apache *server_ = nullptr;
  h::CrlServer *backend_ = nullptr;
  static inline std::map<std::string, std::string> start_error_;
};

TEST_P(ApacheBehaviour, GoodCertificateAllowedAndLoggedWithAccepts) {
  h::LogTail errors(server_->error_log());
  h::LogTail access(server_->access_log());
  const Reply reply = Get(Port(kMain), "/?case=good", "good");
  EXPECT_EQ(reply.status, 200) << reply.raw;
  EXPECT_EQ(reply.body, "hello\n");
  EXPECT_NE(AccessLine(access, "case=good ").find("200 reason= substatus= verdict=allow"),
            std::string::npos)
      << AccessLine(access, "case=good ");
  bool found = false;
  const std::string text = errors.WaitFor("certgate: verdict=allow", 5000, &found);
  EXPECT_TRUE(found) << text;
  EXPECT_EQ(h::GrepLines(text, {"[certgate:notice]", "subject=\"CN=alice"}).size(), 1u) << text;
}

TEST_P(ApacheBehaviour, ExpiringSoonAllowedWithWarning) {
  h::LogTail errors(server_->error_log());
  const Reply reply = Get(Port(kMain), "/", "expiring_soon");
  EXPECT_EQ(reply.status, 200) << reply.raw;
  bool found = false;
  const std::string text = errors.WaitFor("CN=expiring_soon", 5000, &found);
  EXPECT_TRUE(found) << text;
  EXPECT_EQ(h::GrepLines(text, {"[certgate:warn]", "verdict=allow"}).size(), 1u) << text;
}

// CertGateStrict: a v1 client certificate and a CA certificate used as one are
// refused by default and let in, with a warning naming the defect, under off.
TEST_P(ApacheBehaviour, StrictRefusesV1AndCaAsLeafAndOffWarns) {
  const struct {
    const char *client, *strict_uri, *reason, *fact, *defect;
  } kCases[] = {
      {"v1", "/v3-rules/?case=strict-v1", "malformed", "X.509 version 1", "v1"},
      {"ca_as_leaf", "/?case=strict-ca-as-leaf", "wrong_purpose", "CA:TRUE", "ca_as_leaf"}};
  for (const auto &c : kCases) {
    SCOPED_TRACE(c.client);
    h::LogTail errors(server_->error_log());
    const Reply refused = Get(Port(kMain), c.strict_uri, c.client);
    EXPECT_EQ(refused.status, 403) << refused.raw;
    bool found = false;
    const std::string text =
        errors.WaitFor(std::string("verdict=deny reason=") + c.reason, 5000, &found);
    EXPECT_TRUE(found) << text;
    EXPECT_EQ(h::GrepLines(text, {"CN=" + std::string(c.client), c.fact}).size(), 1u) << text;

    h::LogTail lenient_errors(server_->error_log());
    const Reply allowed =
        Get(Port(kMain), std::string("/lenient/?case=strict-off-") + c.client, c.client);
    EXPECT_EQ(allowed.status, 200) << allowed.raw;
    const std::string warned =
        lenient_errors.WaitFor(std::string("strict_off:") + c.defect, 5000, &found);
    EXPECT_TRUE(found) << warned;
    EXPECT_EQ(h::GrepLines(warned, {"[certgate:warn]", "verdict=allow",
                                    std::string("strict_off:") + c.defect})
                  .size(),
              1u)
        << warned;
  }
}

TEST_P(ApacheBehaviour, OptionalLocationWithoutCertificate) {
  h::LogTail access(server_->access_log());
  EXPECT_EQ(Get(Port(kMain), "/opt/?case=opt-none", "").status, 200);
  EXPECT_NE(AccessLine(access, "case=opt-none ").find("verdict=allow"), std::string::npos);
  // optional still judges a certificate that is presented
  EXPECT_EQ(Get(Port(kMain), "/opt/", "expired").status, 403);
  EXPECT_EQ(Get(Port(kMain), "/opt/", "good").status, 200);
}

TEST_P(ApacheBehaviour, OffLocationSetsNothing) {
  h::LogTail access(server_->access_log());
  EXPECT_EQ(Get(Port(kMain), "/off/?case=off-none", "").status, 200);
  EXPECT_NE(AccessLine(access, "case=off-none ").find("reason=- substatus=- verdict=-"),
            std::string::npos)
      << AccessLine(access, "case=off-none ");
}

TEST_P(ApacheBehaviour, PerLocationRules) {
  // other_issuer is trusted (Other Root CA is in trust.pem) but not allowed under /issuers
  EXPECT_EQ(Get(Port(kMain), "/", "other_issuer").status, 200);
  const Reply reply = Get(Port(kMain), "/issuers/", "other_issuer");
  EXPECT_EQ(reply.status, 403);
  EXPECT_EQ(reply.body, TextBody("issuer_not_allowed", "403.16"));
  EXPECT_EQ(Get(Port(kMain), "/issuers/", "good").status, 200);
}

TEST_P(ApacheBehaviour, SatisfyAnyAndRequireAllGrantedCannotBypass) {
  Reply reply = Get(Port(kMain), "/satisfy/", "");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("no_cert", "403.7"));
  reply = Get(Port(kMain), "/satisfy/", "expired");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(Get(Port(kMain), "/satisfy/", "good").status, 200);
}

TEST_P(ApacheBehaviour, ErrorDocumentStillWorks) {
  h::LogTail access(server_->access_log());
  const Reply reply = Get(Port(kMain), "/errdoc/?case=errdoc", "");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, "custom refusal page");
  EXPECT_NE(AccessLine(access, "case=errdoc ").find("403 reason=no_cert"), std::string::npos)
      << AccessLine(access, "case=errdoc ");
}

// A local ErrorDocument is an internal redirect into the same protected vhost:
// it is served (not refused again) and the variables follow it.
TEST_P(ApacheBehaviour, LocalErrorDocumentIsServed) {
  h::LogTail access(server_->access_log());
  h::LogTail errors(server_->error_log());
  const Reply reply = Get(Port(kMain), "/errlocal/?case=errlocal", "expired");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, "certgate said no\n");
  EXPECT_NE(AccessLine(access, "case=errlocal ").find("403 reason=expired substatus=403.17"),
            std::string::npos)
      << AccessLine(access, "case=errlocal ");
  bool found = false;
  const std::string text = errors.WaitFor("reason=expired", 5000, &found);
  EXPECT_TRUE(found) << text;
  EXPECT_EQ(h::GrepLines(text, {"certgate:"}).size(), 1u) << text;
}

// Issue 9 §3: the ErrorDocument of a refusal used to be served unjudged, so
// `ErrorDocument 403 /index.php` (a front controller) ran the application for
// a client without a certificate. It is judged like any request now: refused
// again, httpd answers the original request with its status and certgate's
// body (as for a denied ErrorDocument under mod_authz_core), and the
// application behind it (here ProxyPass) is never reached.
TEST_P(ApacheBehaviour, ARefusedClientNeverReachesTheApplication) {
  struct Refused {
    const char *cert;
    const char *reason;
    const char *substatus;
  };
  std::vector<std::string> tags;
  for (const Refused &c :
       {Refused{"", "no_cert", "403.7"}, Refused{"expired", "expired", "403.17"}}) {
    for (const char *path : {"/front/", "/app/app.txt"}) {
      const std::string tag = std::string("refused") + (path[1] == 'f' ? "-front-" : "-app-") +
                              (*c.cert ? c.cert : "none");
      SCOPED_TRACE(tag);
      h::LogTail errors(server_->error_log());
      const Reply reply = Get(Port(kMain), std::string(path) + "?tag=" + tag, c.cert);
      EXPECT_EQ(reply.status, 403) << reply.raw;
      EXPECT_EQ(reply.body, TextBody(c.reason, c.substatus)) << reply.raw;
      EXPECT_EQ(reply.content_type.rfind("text/plain", 0), 0u) << reply.content_type;
      tags.push_back(tag);
      bool found = false;
      const std::string text = errors.WaitFor("certgate: verdict=deny", 5000, &found);
      EXPECT_EQ(h::GrepLines(text, {"[certgate:error]", "reason=" + std::string(c.reason)}).size(),
                1u)
          << "one refusal line per request\n"
          << text;
    }
  }
  // An allowed client reaches it, and the backend logs that: the log is read.
  const Reply good = Get(Port(kMain), "/app/app.txt?tag=allowed-good", "good");
  EXPECT_EQ(good.status, 200) << good.raw;
  EXPECT_EQ(good.body, "application answer\n");
  EXPECT_NE(h::WaitForLine(backend_->access_log(), {"tag=allowed-good"}), "")
      << h::ReadFile(backend_->access_log());
  const std::string backend_log = h::ReadFile(backend_->access_log());
  for (const std::string &tag : tags) {
    EXPECT_TRUE(h::GrepLines(backend_log, {tag}).empty())
        << "a refused request reached the application: " << tag << "\n"
        << backend_log;
  }
}

// The same with a CGI as the ErrorDocument: it never runs for a refused client.
TEST_P(ApacheBehaviour, ARefusedClientNeverRunsTheErrorDocumentsCgi) {
  const std::string runs = server_->root() + "/cgi-runs/runs.log";
  for (const char *cert : {"", "expired"}) {
    SCOPED_TRACE(*cert ? cert : "no certificate");
    const std::string tag = std::string("refused-cgi-") + (*cert ? cert : "none");
    const Reply reply = Get(Port(kMain), "/frontcgi/?tag=" + tag, cert);
    EXPECT_EQ(reply.status, 403) << reply.raw;
    EXPECT_NE(reply.body.find(" client certificate refused: "), std::string::npos) << reply.body;
    EXPECT_EQ(reply.body.find("cgi answer"), std::string::npos) << reply.body;
  }
  // An allowed client runs it, and the run is recorded: the record is read.
  const Reply good = Get(Port(kMain), "/cgi/app.cgi?tag=allowed-cgi", "good");
  EXPECT_EQ(good.status, 200) << good.raw;
  EXPECT_EQ(good.body, "cgi answer\n");
  const std::string log = h::ReadFile(runs);
  EXPECT_NE(log.find("tag=allowed-cgi"), std::string::npos) << log;
  EXPECT_EQ(log.find("refused-cgi"), std::string::npos) << log;
  EXPECT_EQ(h::GrepLines(log, {"ran "}).size(), 1u) << "the CGI ran for a refused client:\n" << log;
}

TEST_P(ApacheBehaviour, JsonBodyCustomStatusAndDetail) {
  const Reply reply = Get(Port(kMain), "/json/", "expired");
  EXPECT_EQ(reply.status, 496) << reply.raw;
  EXPECT_EQ(reply.content_type.rfind("application/json", 0), 0u) << reply.content_type;
  EXPECT_EQ(
      reply.body.rfind("{\"verdict\":\"deny\",\"reason\":\"expired\",\"substatus\":\"403.17\","
                       "\"detail\":",
                       0),
      0u)
      << reply.body;
  EXPECT_NE(reply.body.find("\"hint\":"), std::string::npos) << reply.body;
}

TEST_P(ApacheBehaviour, WithSslVerifyClientOptional) {
  EXPECT_EQ(Get(Port(kVerifyOptional), "/", "good").status, 200);
  Reply reply = Get(Port(kVerifyOptional), "/", "expired");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("expired", "403.17"));
  // mod_ssl alone would abort these handshakes; certgate answers them.
  reply = Get(Port(kVerifyOptional), "/", "self_signed");
  EXPECT_EQ(reply.body, TextBody("untrusted_issuer", "403.16")) << reply.raw;
  reply =
      Get(Port(kVerifyOptional), "/", "chain_too_long");  // deeper than SSLVerifyDepth 10? no: 7
  EXPECT_EQ(reply.body, TextBody("chain_too_long", "403.16")) << reply.raw;
  reply = Get(Port(kVerifyOptional), "/", "");
  EXPECT_EQ(reply.body, TextBody("no_cert", "403.7")) << reply.raw;
}

TEST_P(ApacheBehaviour, WithSslVerifyClientRequire) {
  EXPECT_EQ(Get(Port(kVerifyRequire), "/", "good").status, 200);
  Reply reply = Get(Port(kVerifyRequire), "/", "expired");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("expired", "403.17"));
  reply = Get(Port(kVerifyRequire), "/", "untrusted");
  EXPECT_EQ(reply.body, TextBody("untrusted_issuer", "403.16")) << reply.raw;
  // Without a certificate mod_ssl itself ends the handshake (SSLVerifyClient
  // require means exactly that): no HTTP answer.
  reply = Get(Port(kVerifyRequire), "/", "");
  EXPECT_EQ(reply.status, 0) << reply.raw;
  EXPECT_NE(reply.exit_code, 0);
}

TEST_P(ApacheBehaviour, WithoutSslVerifyClient) {
  // certgate asks for the certificate itself.
  EXPECT_EQ(Get(Port(kVerifyUnset), "/", "good").status, 200);
  EXPECT_EQ(Get(Port(kVerifyUnset), "/", "expired").body, TextBody("expired", "403.17"));
  EXPECT_EQ(Get(Port(kVerifyUnset), "/", "").body, TextBody("no_cert", "403.7"));
}

TEST_P(ApacheBehaviour, VhostWithoutCertgateKeepsModSslVerification) {
  EXPECT_EQ(Get(Port(kWithoutCertgate), "/", "good").status, 200);
  const Reply reply = Get(Port(kWithoutCertgate), "/", "expired");
  EXPECT_EQ(reply.status, 0) << "mod_ssl's own verification must still refuse: " << reply.raw;
}

TEST_P(ApacheBehaviour, ResumedSessionWithBadCertificateStillRefused) {
  const Pki &pki = SharedPki();
  const std::string base = pki.path + "/clients/expired";
  for (const char *version : {"-tls1_2", "-tls1_3"}) {
    SCOPED_TRACE(version);
    const std::string session = server_->root() + "/session" + version + ".pem";
    const std::string request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    const std::string connect = "127.0.0.1:" + std::to_string(Port(kMain));
    h::RunResult first =
        h::Run({"openssl", "s_client", version, "-connect", connect, "-servername", "localhost",
                "-cert", base + ".crt", "-cert_chain", base + ".chain.pem", "-key", base + ".key",
                "-sess_out", session, "-ign_eof"},
               {}, request, 20000);
    Reply reply;
    ParseHttp(first.out, &reply);
    ASSERT_NE(first.out.find("\nNew, "), std::string::npos) << first.out << first.err;
    EXPECT_EQ(reply.status, 403);
    // Resume without presenting any certificate: the session carries the leaf.
    h::RunResult second = h::Run({"openssl", "s_client", version, "-connect", connect,
                                  "-servername", "localhost", "-sess_in", session, "-ign_eof"},
                                 {}, request, 20000);
    EXPECT_NE(second.out.find("\nReused, "), std::string::npos) << second.out << second.err;
    Reply resumed;
    ParseHttp(second.out, &resumed);
    EXPECT_EQ(resumed.status, 403) << second.out;
    EXPECT_NE(resumed.body.find("expired"), std::string::npos) << second.out;
  }
}

TEST_P(ApacheBehaviour, RejectAtHandshakeAbortsWithAlertAndLogs) {
  h::LogTail errors(server_->error_log());
  EXPECT_EQ(Get(Port(kHandshake), "/", "good").status, 200);
  const Pki &pki = SharedPki();
  const std::string base = pki.path + "/clients/expired";
  h::RunResult run =
      h::Run({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(Port(kHandshake)),
              "-servername", "localhost", "-cert", base + ".crt", "-cert_chain",
              base + ".chain.pem", "-key", base + ".key", "-ign_eof"},
             {}, "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 20000);
  EXPECT_EQ(run.out.find("HTTP/1.1"), std::string::npos) << run.out;
  EXPECT_NE((run.out + run.err).find("alert certificate expired"), std::string::npos)
      << run.out << run.err;
  bool found = false;
  const std::string text =
      errors.WaitFor("certgate: verdict=deny reason=expired substatus=403.17", 5000, &found);
  EXPECT_TRUE(found) << text;
  EXPECT_EQ(h::GrepLines(text, {"[certgate:error]", "reason=expired"}).size(), 1u) << text;
  // Issue 12 §4: certgate's line only, no mod_ssl line at a level above info.
  EXPECT_EQ(h::GrepLines(text, {"[ssl:"}).size(), 0u) << text;
  // curl sees a failed connection, no HTTP status
  const Reply reply = Get(Port(kHandshake), "/", "untrusted");
  EXPECT_EQ(reply.status, 0) << reply.raw;
  EXPECT_NE(reply.exit_code, 0);
}

// Issue 12 §4: a failed handshake is one certgate line. Each client from its
// own address: lines are rate-limited per client address.
TEST_P(ApacheBehaviour, FailedHandshakesGetOneLineEach) {
  h::LogTail errors(server_->error_log());
  const Pki &pki = SharedPki();
  const std::string url = "https://127.0.0.1:" + std::to_string(Port(kMain)) + "/";
  h::RunResult old =
      h::Run({"curl", "-sSk", "--max-time", "10", "--interface", "127.0.0.41", "--tlsv1.1",
              "--tls-max", "1.1", "--ciphers", "DEFAULT@SECLEVEL=0", url},
             {}, "", 20000);
  EXPECT_NE(old.exit_code, 0) << old.out;
  bool found = false;
  std::string text = errors.WaitFor("0x0302", 5000, &found);
  EXPECT_TRUE(found) << text;
  EXPECT_EQ(h::GrepLines(text, {"[certgate:error]", "[client 127.0.0.41",
                                "certgate: verdict=deny reason=tls_handshake substatus=403.16 "
                                "detail=\"the client offered TLS 1.1 (0x0302) at most; this "
                                "server accepts TLS 1.2-1.3\""})
                .size(),
            1u)
      << text;
  // A client that does not trust the server's chain aborts with unknown_ca.
  const std::string good = pki.path + "/clients/good";
  h::RunResult picky = h::Run({"curl", "-sS", "--max-time", "10", "--interface", "127.0.0.42",
                               "--cacert", pki.path + "/ca/untrusted-root.pem", "--cert",
                               good + ".chain.pem", "--key", good + ".key", url},
                              {}, "", 20000);
  EXPECT_NE(picky.exit_code, 0) << picky.out;
  text = errors.WaitFor("unknown_ca", 5000, &found);
  EXPECT_TRUE(found) << text;
  EXPECT_EQ(h::GrepLines(text, {"[certgate:error]", "reason=tls_handshake",
                                "alert unknown_ca (48) after the server asked for its certificate",
                                "stage=certificate_request alert=unknown_ca"})
                .size(),
            1u)
      << text;
  EXPECT_EQ(h::GrepLines(text, {"tls_handshake"}).size(), 2u) << text;
  // What the ClientHellos offered: curl's versions and ALPN; TLS 1.1 has no
  // supported_versions extension.
  EXPECT_EQ(
      h::GrepLines(text, {"unknown_ca", "client_versions=\"TLS1.3,TLS1.2", "alpn=\"h2,http/1.1\""})
          .size(),
      1u)
      << text;
  EXPECT_EQ(h::GrepLines(text, {"0x0302", "client_versions="}).size(), 0u) << text;
}

// Issue 12 §4: a scanner cannot flood the log: at most five lines per client
// address a minute in each child (then the next line says suppressed=N); every
// failure is still counted.
TEST_P(ApacheBehaviour, FailedHandshakeLinesAreRateLimitedPerClient) {
  const std::string counter = "certgate_decisions_total{verdict=\"deny\",reason=\"tls_handshake\"}";
  const uint64_t before = Counters(Get(Port(kMain), "/certgate-status", "").body)[counter];
  h::LogTail errors(server_->error_log());
  const std::string url = "https://127.0.0.1:" + std::to_string(Port(kMain)) + "/";
  const int attempts = 48;  // more than five lines in each of prefork's (at most 8) children
  for (int i = 0; i < attempts; ++i) {
    h::RunResult old =
        h::Run({"curl", "-sSk", "--max-time", "10", "--interface", "127.0.0.43", "--tlsv1.1",
                "--tls-max", "1.1", "--ciphers", "DEFAULT@SECLEVEL=0", url},
               {}, "", 20000);
    EXPECT_NE(old.exit_code, 0) << old.out;
  }
  EXPECT_EQ(Counters(Get(Port(kMain), "/certgate-status", "").body)[counter], before + attempts);
  bool found = false;
  const std::string text = errors.WaitFor("127.0.0.43", 5000, &found);
  const auto lines = h::GrepLines(text, {"reason=tls_handshake", "[client 127.0.0.43"});
  const size_t children = mpm_ == "prefork" ? 8 : 2;  // ServerLimit (MpmBlock)
  EXPECT_GE(lines.size(), 5u) << text;
  EXPECT_LE(lines.size(), 5 * children) << text;
  EXPECT_LT(lines.size(), static_cast<size_t>(attempts)) << text;
}

// Issue 12 §5: certgate_forwarded_cert behind a real TLS-terminating nginx
// (its own process, configuration and port) that proxies from 127.0.0.2 with
// X-SSL-Client-Cert: $ssl_client_escaped_cert, leaving the judging to certgate
// (ssl_verify_client optional_no_ca).
TEST_P(ApacheBehaviour, ForwardedCertificateThroughARealFrontProxy) {
  const std::string pki = SharedPki().path;
  const std::string dir = server_->root() + "/front";
  for (const char *sub : {"/logs", "/tmp"}) h::MakeDirs(dir + sub);
  const std::string conf =
      h::NginxConfigHead(dir, 1, {dir + "/logs/error.log"}) +
      "  server {\n    listen 127.0.0.1:" + std::to_string(Port(kFront)) +
      " ssl;\n    ssl_certificate " + pki + "/server/server-chain.pem;\n    ssl_certificate_key " +
      pki + "/server/server.key;\n    ssl_client_certificate " + pki +
      "/ca/trust.pem;\n    ssl_verify_client optional_no_ca;\n    ssl_verify_depth 3;\n"
      "    location / {\n      proxy_pass https://127.0.0.1:" +
      std::to_string(Port(kForwarded)) +
      ";\n      proxy_bind 127.0.0.2;\n"
      "      proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;\n    }\n  }\n}\n";
  ASSERT_TRUE(h::WriteFile(dir + "/nginx.conf", conf));
  h::Process front;
  ASSERT_TRUE(front.Start({"/usr/sbin/nginx", "-p", dir, "-c", dir + "/nginx.conf"},
                          dir + "/logs/stdout.log", dir + "/logs/stderr.log"))
      << front.error();
  ASSERT_TRUE(h::WaitForPort(Port(kFront), 10000)) << h::ReadFile(dir + "/logs/stderr.log");
  h::LogTail errors(server_->error_log());
  const std::string front_url = "https://127.0.0.1:" + std::to_string(Port(kFront));
  const std::string backend_url = "https://127.0.0.1:" + std::to_string(Port(kForwarded));

  EXPECT_EQ(h::CurlAsClient(front_url + "/", pki, "good", 20).status, 200);
  EXPECT_EQ(h::CurlAsClient(front_url + "/", pki, "self_signed", 20).status, 403);
  EXPECT_EQ(h::CurlAsClient(front_url + "/", pki, "", 20).status, 403);
  bool found = false;
  std::string text = errors.WaitFor("forwarded no client certificate", 5000, &found);
  EXPECT_EQ(
      h::GrepLines(text, {"reason=untrusted_issuer", "source=forwarded proxy=127.0.0.2"}).size(),
      1u)
      << text;
  EXPECT_EQ(h::GrepLines(text, {"reason=no_cert", "the trusted proxy 127.0.0.2 forwarded no",
                                "CertGateForwardedCert"})
                .size(),
            1u)
      << text;

  // Straight to the backend: a forged header from an untrusted address, a
  // malformed one and an XFCC one from the trusted address.
  h::LogTail direct(server_->error_log());
  const std::string good = h::ReadFile(pki + "/clients/good.chain.pem");
  std::string escaped;
  for (unsigned char c : good) {
    static const char kHex[] = "0123456789ABCDEF";
    escaped += isalnum(c) ? std::string(1, static_cast<char>(c))
                          : std::string{'%', kHex[c >> 4], kHex[c & 15]};
  }
  EXPECT_EQ(h::CurlAsClient(backend_url + "/", pki, "", 20,
                            {"--interface", "127.0.0.1", "-H", "X-SSL-Client-Cert: " + escaped})
                .status,
            403);
  const int xfcc =
      h::CurlAsClient(backend_url + "/xfcc/", pki, "", 20,
                      {"--interface", "127.0.0.2", "-H",
                       "X-Forwarded-Client-Cert: By=spiffe://front;Chain=\"" + escaped + "\""})
          .status;
  EXPECT_TRUE(xfcc == 200 || xfcc == 404) << xfcc;  // allowed (whether or not a page is there)
  EXPECT_EQ(h::CurlAsClient(backend_url + "/", pki, "", 20,
                            {"--interface", "127.0.0.2", "-H", "X-SSL-Client-Cert: %ZZ"})
                .status,
            403);
  text = direct.WaitFor("has a bad %-escape", 5000, &found);
  EXPECT_EQ(h::GrepLines(text, {"[certgate:warn]", "CG00010", "forwarded_cert=ignored",
                                "header=X-SSL-Client-Cert client=127.0.0.1"})
                .size(),
            1u)
      << text;
  EXPECT_EQ(h::GrepLines(text, {"reason=no_cert", "[client 127.0.0.1:"}).size(), 1u) << text;
  EXPECT_EQ(h::GrepLines(text, {"reason=malformed", "has a bad %-escape"}).size(), 1u) << text;
  EXPECT_EQ(h::GrepLines(text, {"reason="}).size(), 2u) << text;  // the XFCC one was allowed
  front.Stop(SIGQUIT, 10000);
}

// Issue 12 §5: a request that came through a proxy (X-Forwarded-For) without a
// certificate: the no_cert hint names the TLS-terminating proxy.
TEST_P(ApacheBehaviour, NoCertThroughAProxyNamesTheProxy) {
  h::LogTail errors(server_->error_log());
  const std::string url = "https://127.0.0.1:" + std::to_string(Port(kMain)) + "/?case=proxied";
  h::RunResult proxied = h::Run({"curl", "-sk", "--max-time", "10", "-o", "/dev/null", "-w",
                                 "%{http_code}", "-H", "X-Forwarded-For: 192.0.2.1", url},
                                {}, "", 20000);
  EXPECT_EQ(proxied.out, "403") << proxied.err;
  bool found = false;
  const std::string text = errors.WaitFor("a TLS-terminating proxy", 5000, &found);
  EXPECT_TRUE(found) << text;
  EXPECT_EQ(h::GrepLines(text, {"reason=no_cert", "the request came through a proxy"}).size(), 1u)
      << text;
}

// The counters are shared by every child: requests spread over several
// connections at once (prefork: several children) all show up, exactly, on
// the page, whichever child serves it.
TEST_P(ApacheBehaviour, StatusPageCountsEveryChildsDecisions) {
  const Reply first = Get(Port(kMain), "/certgate-status", "");
  ASSERT_EQ(first.status, 200) << first.raw;
  EXPECT_EQ(first.content_type, "text/plain; version=0.0.4");
  EXPECT_EQ(first.body.rfind("# HELP certgate_decisions_total Request decisions by verdict and "
                             "reason.\n# TYPE certgate_decisions_total counter\n",
                             0),
            0u)
      << first.body;
  const std::map<std::string, uint64_t> before = Counters(first.body);
  // allow/none, 22 refusals (chain_too_complex since issue 15, tls_handshake
  // since issue 12), handshakes
  ASSERT_EQ(before.size(), 24u) << first.body;
  ASSERT_EQ(before.count("certgate_handshake_refusals_total"), 1u) << first.body;

  // Eight connections at once, twice.
  for (int round = 0; round < 2; ++round) {
    std::vector<std::future<Reply>> replies;
    for (int i = 0; i < 8; ++i) {
      const char *cert = i % 2 == 0 ? "good" : "expired";
      replies.push_back(std::async(
          std::launch::async, [this, cert] { return Get(Port(kMain), "/?case=status", cert); }));
    }
    for (int i = 0; i < 8; ++i) EXPECT_EQ(replies[i].get().status, i % 2 == 0 ? 200 : 403);
  }
  EXPECT_EQ(Get(Port(kMain), "/", "").status, 403);                         // no_cert
  EXPECT_EQ(Get(Port(kMain), "/issuers/", "other_issuer").status, 403);     // issuer_not_allowed
  EXPECT_EQ(Get(Port(kMain), "/opt/", "").status, 200);                     // allow
  EXPECT_EQ(Get(Port(kMain), "/off/", "expired").status, 200);              // not judged
  EXPECT_EQ(Get(Port(kMain), "/", "self_signed").status, 403);              // untrusted_issuer
  EXPECT_EQ(Get(Port(kVerifyUnset), "/", "expired").status, 403);           // expired
  EXPECT_EQ(Get(Port(kHandshake), "/", "untrusted").status, 0);             // handshake
  EXPECT_EQ(Get(Port(kHandshake), "/", "expired").status, 0);               // handshake
  EXPECT_EQ(Get(Port(kMain), "/certgate-status/off", "good").status, 404);  // off: not judged

  std::map<std::string, uint64_t> want = before;
  want[Decisions("allow", "none")] += 8 + 1;
  want[Decisions("deny", "expired")] += 8 + 1;
  want[Decisions("deny", "no_cert")] += 1;
  want[Decisions("deny", "issuer_not_allowed")] += 1;
  want[Decisions("deny", "untrusted_issuer")] += 1;
  want["certgate_handshake_refusals_total"] += 2;
  // Read it more than once: on more than one connection, so (prefork) most
  // likely from more than one child; every read sees the same.
  for (int read = 0; read < 4; ++read) {
    SCOPED_TRACE(read);
    const Reply page = Get(Port(kMain), "/certgate-status", "");
    ASSERT_EQ(page.status, 200) << page.raw;
    const std::map<std::string, uint64_t> after = Counters(page.body);
    for (const auto &[name, value] : want) {
      EXPECT_EQ(after.count(name) ? after.at(name) : ~0ull, value) << name << "\n" << page.body;
    }
    EXPECT_EQ(after.size(), want.size()) << page.body;
  }
}

// Issue 9 §5: one decision per client request, the core's rule (as in nginx):
// the judgement of an ErrorDocument (refused again, or allowed) and the
// DirectoryIndex subrequest are not counted again.
TEST_P(ApacheBehaviour, StatusPageCountsARequestOnce) {
  const std::map<std::string, uint64_t> before =
      Counters(Get(Port(kMain), "/certgate-status", "").body);
  ASSERT_EQ(before.count(Decisions("deny", "no_cert")), 1u);
  EXPECT_EQ(Get(Port(kMain), "/front/?tag=count", "").status, 403);
  const Reply missing = Get(Port(kMain), "/notfound/x", "good");
  EXPECT_EQ(missing.status, 404) << missing.raw;
  EXPECT_EQ(missing.body, "hello\n") << "the ErrorDocument, judged and allowed";
  EXPECT_EQ(Get(Port(kMain), "/", "good").body, "hello\n");
  std::map<std::string, uint64_t> after = Counters(Get(Port(kMain), "/certgate-status", "").body);
  EXPECT_EQ(after[Decisions("deny", "no_cert")], before.at(Decisions("deny", "no_cert")) + 1);
  EXPECT_EQ(after[Decisions("allow", "none")], before.at(Decisions("allow", "none")) + 2);
}

// Issue 9 §5: a refusal body is never cut (the module used a 2 KiB buffer and
// could not tell a cut body): a long subject named by the detail.
TEST_P(ApacheBehaviour, LongRefusalBodiesAreComplete) {
  ASSERT_EQ(h::IssueLongSubjectClient(SharedPki().path), "");
  const Reply json = Get(Port(kMain), "/longjson/", "long_subject");
  EXPECT_EQ(json.status, 403) << json.raw.substr(0, 2000);
  EXPECT_EQ(json.content_type.rfind("application/json", 0), 0u) << json.content_type;
  EXPECT_EQ(h::JsonRefusalProblem(json.body, "identity_mismatch"), "");
  const Reply html = Get(Port(kMain), "/longhtml/", "long_subject");
  EXPECT_EQ(html.status, 403);
  EXPECT_GT(html.body.size(), 8192u);
  EXPECT_NE(html.body.find("OU=lastmarker"), std::string::npos) << html.body.size();
  EXPECT_EQ(html.body.size() > 15 ? html.body.substr(html.body.size() - 15) : "",
            "</body></html>\n");
}

TEST_P(ApacheBehaviour, StatusPageAnswersGetAndHeadOnly) {
  const Reply head = Request(Port(kMain), "/certgate-status", "HEAD");
  EXPECT_EQ(head.status, 200) << head.raw;
  EXPECT_EQ(head.content_type, "text/plain; version=0.0.4");
  EXPECT_EQ(head.body, "");
  for (const char *method : {"POST", "PUT", "DELETE"}) {
    SCOPED_TRACE(method);
    const Reply reply = Request(Port(kMain), "/certgate-status", method);
    EXPECT_EQ(reply.status, 405) << reply.raw;
    EXPECT_EQ(reply.body.find("certgate_decisions_total"), std::string::npos) << reply.body;
  }
  // `CertGateStatus off` below the page (nothing there: 404), and locations
  // without it: no page.
  const Reply off = Get(Port(kMain), "/certgate-status/off", "good");
  EXPECT_EQ(off.status, 404) << off.raw;
  EXPECT_EQ(off.body.find("certgate_decisions_total"), std::string::npos) << off.body;
  EXPECT_EQ(Get(Port(kMain), "/", "good").body, "hello\n");
}

// Issue 9 §2: a 60 KB certificate (a 60,000-character CN, O=Example,
// OU=People) under a subject regex. An untrusted one is refused for its chain
// and never reaches the regex; a trusted one is judged by it (std::regex
// overflowed the child's stack on it: AH00052 ... Segmentation fault).
TEST_P(ApacheBehaviour, HugeSubjectUnderASubjectRegexNeverCrashesAChild) {
  h::LogTail errors(server_->error_log());
  h::LogTail access(server_->access_log());
  struct Case {
    const char *client;
    const char *path;
    int status;
    std::string body;
    const char *reason;  // in the access log; "" when allowed
    int next_status;     // of /, asked next on the same connection
  };
  const Case cases[] = {
      {"long_cn_untrusted", "/people-regex/", 403, TextBody("untrusted_issuer", "403.16"),
       "untrusted_issuer", 403},
      {"long_cn_untrusted", "/staff-regex/", 403, TextBody("untrusted_issuer", "403.16"),
       "untrusted_issuer", 403},
      {"long_cn", "/staff-regex/", 403, TextBody("identity_mismatch", "403.12"),
       "identity_mismatch", 200},
      {"long_cn", "/people-regex/", 200, "hello\n", "", 200},
  };
  const std::string pki = SharedPki().path;
  for (const Case &c : cases) {
    SCOPED_TRACE(std::string(c.client) + " " + c.path);
    const std::string tag = std::string("case=huge-") + c.client;
    const Reply reply = Get(Port(kMain), c.path + ("?" + tag), c.client);
    ASSERT_EQ(reply.exit_code, 0) << "the 60 KB certificate must pass the handshake: "
                                  << reply.raw.substr(0, 500);
    EXPECT_EQ(reply.status, c.status);
    EXPECT_EQ(reply.body, c.body);
    const std::string line = AccessLine(access, std::string(c.path) + "?" + tag + " ");
    EXPECT_NE(line.find(std::to_string(c.status) + " reason=" + (*c.reason ? c.reason : "") +
                        " substatus="),
              std::string::npos)
        << line;
    // The child that judged it answers the next request on the same connection.
    const std::string base = "https://127.0.0.1:" + std::to_string(Port(kMain));
    const h::RunResult both =
        h::Run({"curl", "-sk", "--http1.1", "--max-time", "15", "--cert",
                pki + "/clients/" + c.client + ".chain.pem", "--key",
                pki + "/clients/" + c.client + ".key", "-o", "/dev/null", "-o", "/dev/null", "-w",
                "%{http_code} %{num_connects}\n", base + c.path + "?case=huge-again",
                base + "/?case=huge-next"},
               {}, {}, 20000);
    EXPECT_EQ(both.out, std::to_string(c.status) + " 1\n" + std::to_string(c.next_status) + " 0\n")
        << both.err;
  }
  EXPECT_EQ(Get(Port(kMain), "/people-regex/?case=huge-good", "good").status, 200);
  const std::string text = errors.ReadNew();
  EXPECT_EQ(text.find("AH00052"), std::string::npos) << text.substr(0, 2000);
  EXPECT_EQ(text.find("exit signal"), std::string::npos) << text.substr(0, 2000);
  EXPECT_TRUE(server_->Running());
}

// Runs last in the suite (gtest keeps definition order): restarts the server.
TEST_P(ApacheBehaviour, ZZGracefulRestartKeepsWorking) {
  const std::string allowed = Decisions("allow", "none");
  ASSERT_EQ(Get(Port(kMain), "/", "good").status, 200);
  uint64_t last_allowed = Counters(Get(Port(kMain), "/certgate-status", "").body)[allowed];
  ASSERT_GT(last_allowed, 0u);
  for (int round = 0; round < 2; ++round) {
    SCOPED_TRACE(round);
    h::LogTail errors(server_->error_log());
    ASSERT_TRUE(server_->Signal(SIGUSR1));
    bool found = false;
    const std::string text = errors.WaitFor("resuming normal operations", 15000, &found);
    ASSERT_TRUE(found) << text;
    EXPECT_TRUE(server_->Running());
    // Children of the new generation answer.
    for (int i = 0; i < 4; ++i) {
      EXPECT_EQ(Get(Port(kMain), "/", "good").status, 200);
      EXPECT_EQ(Get(Port(kMain), "/", "expired").body, TextBody("expired", "403.17"));
      EXPECT_EQ(Get(Port(kHandshake), "/", "good").status, 200);
    }
    // The counters live on across the restart (as nginx's across a reload).
    const uint64_t allowed_now = Counters(Get(Port(kMain), "/certgate-status", "").body)[allowed];
    EXPECT_EQ(allowed_now, last_allowed + 8);
    last_allowed = allowed_now;
  }
}

INSTANTIATE_TEST_SUITE_P(Mpm, ApacheBehaviour, ::testing::Values("event", "prefork"),
                         [](const auto &info) { return info.param; });

}  // namespace
}  // namespace certgate_apache_test
