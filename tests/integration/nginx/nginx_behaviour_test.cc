// NginxBehaviour: the behaviours of issues 3 and 9 through the main server
// (nginx_test_fixture.h): what a refused client can never reach, proxying and
// variables, HTTP/2, SNI, resumption, reject_at handshake, the status page,
// long bodies, reloads.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "nginx_test_fixture.h"

namespace certgate::nginx_test {
namespace {

class NginxBehaviour : public NginxTest {
 protected:
  // The counters page: "name{labels}" -> value.
  std::map<std::string, uint64_t> CountersPage() {
    std::map<std::string, uint64_t> out;
    const Response page = nginx().Curl(kMainPort, "/metrics", "");
    std::istringstream lines(page.body);
    std::string line;
    while (std::getline(lines, line)) {
      const size_t space = line.rfind(' ');
      if (line.rfind("# ", 0) == 0 || space == std::string::npos) continue;
      out[line.substr(0, space)] = std::stoull(line.substr(space + 1));
    }
    return out;
  }
};

TEST_F(NginxBehaviour, GoodCertificateIsAllowed) {
  Response r = nginx().Curl(kMainPort, "/req?case=good", "good");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "ok\n");
  const std::string access = AccessLine("/req?case=good");
  EXPECT_NE(access.find("status=200 verdict=allow"), std::string::npos) << access;
  EXPECT_NE(access.find("subject=\"CN=alice,OU=People,O=Example\""), std::string::npos) << access;
}

TEST_F(NginxBehaviour, OtherAcceptedCertificates) {
  for (const char *client : {"rsa_good", "expiring_soon"}) {
    Response r = nginx().Curl(kMainPort, std::string("/req?case=accept-") + client, client);
    EXPECT_EQ(r.status, 200) << client << ": " << r.body << r.err;
  }
  for (const char *client : {"good", "expiring_soon"}) {
    Response r = nginx().Curl(kMainPort, std::string("/people?case=") + client, client);
    EXPECT_EQ(r.status, 200) << client;
  }
  Response pinned = nginx().Curl(kMainPort, "/pinned?case=good", "good");
  EXPECT_EQ(pinned.status, 200);
  Response other = nginx().Curl(kMainPort, "/req?case=other-root", "other_issuer");
  EXPECT_EQ(other.status, 200) << "Other Root CA is in trust.pem";
}

TEST_F(NginxBehaviour, RejectDetailOnShowsDetailAndHint) {
  for (const ReasonCase &c : kReasonCases) {
    if (std::string(c.location) != "/req") continue;  // the others need their own rules
    SCOPED_TRACE(c.name);
    const std::string uri = std::string("/detail?case=") + c.name;
    Response r = c.s_client ? nginx().SClientRequest(kMainPort, c.client, uri)
                            : nginx().Curl(kMainPort, uri, c.client);
    ASSERT_EQ(r.curl_exit, 0) << r.err;
    EXPECT_EQ(r.status, 403);
    EXPECT_EQ(r.body.rfind(
                  std::string(c.substatus) + " client certificate refused: " + c.reason + "\n", 0),
              0u)
        << r.body;
    EXPECT_NE(r.body.find("\ndetail: "), std::string::npos) << r.body;
    EXPECT_NE(r.body.find("\nhint: "), std::string::npos) << r.body;
  }
}

TEST_F(NginxBehaviour, PlainHttpHasNoCertificate) {
  h::RunResult r = h::Run({"curl", "-sS", "--max-time", "10", "-w", "\n%{http_code}",
                           "http://127.0.0.1:" + std::to_string(kBackendPort) + "/plain"});
  EXPECT_EQ(r.out, "403.7 client certificate refused: no_cert\n\n403") << r.err;
}

TEST_F(NginxBehaviour, ExpiryWarningIsLoggedAtWarn) {
  Response r = nginx().Curl(kMainPort, "/req?case=expiring", "expiring_soon");
  EXPECT_EQ(r.status, 200);
  const std::string line =
      h::WaitForLine(nginx().notice_log(), {"request: \"GET /req?case=expiring HTTP/"});
  EXPECT_NE(line.find("[warn]"), std::string::npos) << line;
  EXPECT_NE(line.find("certgate: verdict=allow"), std::string::npos) << line;
  EXPECT_TRUE(h::GrepLines(h::ReadFile(nginx().error_log()), {"case=expiring"}).empty())
      << "a warning is not an error";
}

// certgate_strict: a v1 client certificate and a CA certificate used as one are
// refused by default and let in, with a warning naming the defect, under off.
TEST_F(NginxBehaviour, StrictRefusesV1AndCaAsLeafAndOffWarns) {
  const struct {
    const char *client, *strict_uri, *reason, *fact, *defect;
  } kCases[] = {
      {"v1", "/v3-rules?case=strict-v1", "malformed", "X.509 version 1", "v1"},
      {"ca_as_leaf", "/req?case=strict-ca-as-leaf", "wrong_purpose", "CA:TRUE", "ca_as_leaf"}};
  for (const auto &c : kCases) {
    SCOPED_TRACE(c.client);
    Response refused = nginx().Curl(kMainPort, c.strict_uri, c.client);
    EXPECT_EQ(refused.status, 403) << refused.body << refused.err;
    const std::string denied = h::WaitForLine(
        nginx().error_log(), {std::string("request: \"GET ") + c.strict_uri + " HTTP/"});
    EXPECT_NE(denied.find(std::string("verdict=deny reason=") + c.reason), std::string::npos)
        << denied;
    EXPECT_NE(denied.find(c.fact), std::string::npos) << denied;

    const std::string lenient = std::string("/lenient?case=strict-off-") + c.client;
    Response allowed = nginx().Curl(kMainPort, lenient, c.client);
    EXPECT_EQ(allowed.status, 200) << allowed.body << allowed.err;
    const std::string warned =
        h::WaitForLine(nginx().notice_log(), {"request: \"GET " + lenient + " HTTP/"});
    EXPECT_NE(warned.find("[warn]"), std::string::npos) << warned;
    EXPECT_NE(warned.find(std::string("strict_off:") + c.defect), std::string::npos) << warned;
  }
}

TEST_F(NginxBehaviour, AcceptsAreLoggedWithLogAccepts) {
  Response r = nginx().Curl(kMainPort, "/accepts?case=accepts", "good");
  EXPECT_EQ(r.status, 200);
  const std::string line =
      h::WaitForLine(nginx().notice_log(), {"request: \"GET /accepts?case=accepts HTTP/"});
  EXPECT_NE(line.find("[notice]"), std::string::npos) << line;
  EXPECT_NE(line.find("certgate: verdict=allow"), std::string::npos) << line;
  EXPECT_TRUE(h::GrepLines(h::ReadFile(nginx().notice_log()),
                           {"verdict=allow", "request: \"GET /req?case=good "})
                  .empty())
      << "accepts are not logged without `certgate_log ... accepts`";
}

TEST_F(NginxBehaviour, NoCertOnOptionalLocation) {
  Response r = nginx().Curl(kMainPort, "/optional?case=none", "");
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "optional verdict=allow\n");
  Response bad = nginx().Curl(kMainPort, "/optional?case=expired", "expired");
  EXPECT_EQ(bad.status, 403) << "optional still refuses a bad certificate";
}

TEST_F(NginxBehaviour, ReturnCannotBypass) {
  // Every location above uses `return 200`: the refusals prove the rewrite-phase
  // handler runs before ngx_http_rewrite_module's. Check it explicitly too.
  Response r = nginx().Curl(kMainPort, "/req?case=return-bypass", "");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body.find("ok"), std::string::npos);
}

TEST_F(NginxBehaviour, ServerLevelReturnCannotBypass) {
  Response none = nginx().Curl(kServerReturnPort, "/x", "");
  ASSERT_EQ(none.curl_exit, 0) << none.err;
  EXPECT_EQ(none.status, 403);
  EXPECT_EQ(none.body, "403.7 client certificate refused: no_cert\n") << "certgate's own body";
  EXPECT_NE(h::WaitForLine(nginx().error_log(), {"reason=no_cert", "host: \"127.0.0.1:18402\""}),
            "")
      << "the backstop logs its refusal too";
  Response good = nginx().Curl(kServerReturnPort, "/x", "good");
  EXPECT_EQ(good.status, 200);
  EXPECT_EQ(good.body, "server-level return\n");
}

// Issue 9 §3: no response for a refused client but the refusal, whatever the
// path: a server-level `return` reading a certgate variable (the variable
// handler used to create the module context, which the header-filter backstop
// took for "the phase handler ran"), `set` + `return`, a server-level
// redirect, an error_page answered by a server-level `return`, a location
// `return`, and the application behind proxy_pass reached through an
// error_page (URI or named location), a rewrite ... last or an SSI include.
TEST_F(NginxBehaviour, NoFormOfServerLevelReturnAnswersARefusedClient) {
  struct Form {
    int port;
    const char *path;
    const char *forbidden;  // what the answer must not contain
    bool certgate_body;     // certgate's body (else nginx's page: reject_body off)
  };
  const Form forms[] = {
      {kServerVariablePort, "/", "verdict=", true},
      {kServerSetPort, "/", "subject=", false},
      {kServerSetPort, "/moved", "elsewhere", false},
      {kMainPort, "/var", "verdict=", true},
  };
  for (const Form &form : forms) {
    for (const char *client : {"", "expired"}) {
      SCOPED_TRACE(std::to_string(form.port) + form.path + " as " +
                   (*client ? client : std::string("no certificate")));
      Response r = nginx().Curl(form.port, form.path, client);
      ASSERT_EQ(r.curl_exit, 0) << r.err;
      EXPECT_EQ(r.status, 403) << r.body;
      EXPECT_EQ(r.body.find(form.forbidden), std::string::npos) << r.body;
      EXPECT_EQ(r.body.find("server-level answer"), std::string::npos) << r.body;
      if (form.certgate_body) {
        EXPECT_EQ(r.body, *client ? "403.17 client certificate refused: expired\n"
                                  : "403.7 client certificate refused: no_cert\n");
      }
    }
  }
  // HEAD, and two requests on one keep-alive connection: the backstop's
  // answer replaces the whole response, and the connection goes on.
  Response head = nginx().Curl(kServerVariablePort, "/", "", {"-I"});
  EXPECT_NE(head.body.find(" 403"), std::string::npos) << head.body;
  EXPECT_EQ(head.body.find("verdict="), std::string::npos) << head.body;
  Response two = nginx().Curl(kServerVariablePort, "/a", "",
                              {"https://127.0.0.1:" + std::to_string(kServerVariablePort) + "/b"});
  EXPECT_EQ(two.status, 403);
  const std::string refused = "403.7 client certificate refused: no_cert\n";
  const size_t first = two.body.find(refused);
  EXPECT_NE(first, std::string::npos) << two.body;
  EXPECT_NE(two.body.find(refused, first + 1), std::string::npos) << two.body;
  EXPECT_EQ(two.body.find("verdict="), std::string::npos) << two.body;
  const std::string refusal =
      h::WaitForLine(nginx().error_log(), {"reason=expired", "host: \"127.0.0.1:18407\""});
  EXPECT_NE(refusal, "") << "the refusal is logged";
  // The variables still work for an allowed client.
  Response good = nginx().Curl(kServerVariablePort, "/", "good");
  EXPECT_EQ(good.status, 200);
  EXPECT_EQ(good.body, "verdict=allow\n");
  good = nginx().Curl(kServerSetPort, "/", "good");
  EXPECT_EQ(good.status, 200);
  EXPECT_EQ(good.body, "subject=CN=alice,OU=People,O=Example\n");
  EXPECT_EQ(nginx().Curl(kServerSetPort, "/moved", "good").status, 302);
  EXPECT_EQ(nginx().Curl(kMainPort, "/var", "good").body, "verdict=allow\n");
}

TEST_F(NginxBehaviour, ARefusedClientNeverReachesTheProxiedApplication) {
  // Each refused request carries its own tag, which the backend would log.
  struct Form {
    const char *path;  // "?tag=..." is appended
    int status;        // the refusal's status
  };
  const Form forms[] = {
      {"/app/app.txt", 403},  // the proxied location itself
      // error_page 403 =200 /app/app.txt: the application's location refuses
      // again, and `=200` is the operator's status for that refusal.
      {"/front", 200},
      {"/named", 403},    // error_page 403 = @app
      {"/rewrite", 403},  // rewrite ^ /app/app.txt last
  };
  std::vector<std::string> tags;
  for (const Form &form : forms) {
    for (const char *client : {"", "expired"}) {
      const std::string tag =
          std::string("refused-") + (form.path + 1) + "-" + (*client ? client : "none");
      SCOPED_TRACE(tag);
      Response r = nginx().Curl(kMainPort, std::string(form.path) + "?tag=" + tag, client);
      ASSERT_EQ(r.curl_exit, 0) << r.err;
      EXPECT_EQ(r.status, form.status) << r.body;
      EXPECT_EQ(r.body.find("application answer"), std::string::npos) << r.body;
      EXPECT_NE(r.body.find(" client certificate refused: "), std::string::npos) << r.body;
      tags.push_back(tag);
    }
  }
  // One refusal line per request, also when an error page is refused again.
  for (const std::string &tag : tags) {
    EXPECT_NE(h::WaitForLine(nginx().error_log(), {"tag=" + tag + " HTTP/"}), "") << tag;
    EXPECT_EQ(h::GrepLines(h::ReadFile(nginx().error_log()),
                           {"tag=" + tag + " HTTP/", "certgate: verdict=deny"})
                  .size(),
              1u)
        << tag;
  }
  // An SSI page without certgate includes the application: the include is
  // refused (a subrequest is judged like any request), the page is not.
  for (const char *client : {"", "expired"}) {
    Response r = nginx().Curl(kMainPort, "/ssi/page.html", client);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_NE(r.body.find("before"), std::string::npos) << r.body;
    EXPECT_EQ(r.body.find("application answer"), std::string::npos) << r.body;
  }
  tags.push_back("ssi-include");
  // The server-level error_page of 18408 answered by a server-level return.
  Response r = nginx().Curl(kServerSetPort, "/?tag=server-error-page", "");
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.body.find("server-level answer"), std::string::npos) << r.body;

  // An allowed client reaches it, and the backend logs that: the log is read.
  Response good = nginx().Curl(kMainPort, "/app/app.txt?tag=allowed-good", "good");
  EXPECT_EQ(good.status, 200);
  EXPECT_EQ(good.body, "application answer\n");
  EXPECT_NE(h::WaitForLine(nginx().backend().access_log(), {"tag=allowed-good"}), "")
      << h::ReadFile(nginx().backend().access_log());
  const std::string backend_log = h::ReadFile(nginx().backend().access_log());
  for (const std::string &tag : tags) {
    EXPECT_TRUE(h::GrepLines(backend_log, {tag}).empty())
        << "a refused request reached the application: " << tag << "\n"
        << backend_log;
  }
}

TEST_F(NginxBehaviour, SatisfyAnyAndInternalRedirectCannotBypass) {
  // /static/ has `satisfy any; allow all;` and is served through the index
  // module's internal redirect to /static/index.html.
  Response none = nginx().Curl(kMainPort, "/static/", "");
  EXPECT_EQ(none.status, 403);
  EXPECT_EQ(none.body, "403.7 client certificate refused: no_cert\n");
  Response bad = nginx().Curl(kMainPort, "/static/index.html", "expired");
  EXPECT_EQ(bad.status, 403);
  Response good = nginx().Curl(kMainPort, "/static/", "good");
  EXPECT_EQ(good.status, 200);
  EXPECT_EQ(good.body, "static index\n");
}

TEST_F(NginxBehaviour, Http2) {
  Response good = nginx().Curl(kMainPort, "/req?case=h2-good", "good", {"--http2"});
  ASSERT_EQ(good.curl_exit, 0) << good.err;
  EXPECT_EQ(good.http_version, "2");
  EXPECT_EQ(good.status, 200);
  Response bad = nginx().Curl(kMainPort, "/req?case=h2-expired", "expired", {"--http2"});
  EXPECT_EQ(bad.http_version, "2");
  EXPECT_EQ(bad.status, 403);
  EXPECT_EQ(bad.body, "403.17 client certificate refused: expired\n");
  Response none = nginx().Curl(kMainPort, "/req?case=h2-none", "", {"--http2"});
  EXPECT_EQ(none.http_version, "2");
  EXPECT_EQ(none.status, 403);
  const std::string line =
      h::WaitForLine(nginx().error_log(), {"request: \"GET /req?case=h2-expired HTTP/2.0\""});
  EXPECT_NE(line.find("reason=expired"), std::string::npos) << line;
  // Several streams on one connection, each decided.
  Response two = nginx().Curl(kMainPort, "/req?case=h2-a", "good",
                              {"--http2", "https://127.0.0.1:18401/optional?case=h2-b"});
  EXPECT_EQ(two.status, 200);
  EXPECT_NE(two.body.find("ok\n"), std::string::npos) << two.body;
}

TEST_F(NginxBehaviour, SniServersWithDifferentTrustLists) {
  EXPECT_EQ(nginx().Curl(kSniPort, "/", "good", {}, "a.test").status, 200);
  EXPECT_EQ(nginx().Curl(kSniPort, "/", "other_issuer", {}, "b.test").status, 200);
  Response ra = nginx().Curl(kSniPort, "/", "other_issuer", {}, "a.test");
  EXPECT_EQ(ra.status, 403);
  EXPECT_EQ(ra.body, "403.16 client certificate refused: issuer_not_allowed\n");
  Response rb = nginx().Curl(kSniPort, "/", "good", {}, "b.test");
  EXPECT_EQ(rb.status, 403);
  EXPECT_EQ(rb.body, "403.16 client certificate refused: issuer_not_allowed\n");
}

TEST_F(NginxBehaviour, ResumedSessionWithBadCertificateIsStillRefused) {
  for (const char *version : {"-tls1_2", "-tls1_3"}) {
    SCOPED_TRACE(version);
    const std::string sess = nginx().dir() + "/session" + version + ".pem";
    h::RunResult first = nginx().SClient(kMainPort, "expired", "/req?case=resume-first",
                                         {version, "-sess_out", sess});
    ASSERT_NE(first.out.find("HTTP/1.1 403"), std::string::npos) << first.out << first.err;
    ASSERT_GT(h::FileSize(sess), 0) << "no session saved";
    // The second connection resumes: no certificate is sent and no verify
    // callback runs; certgate rebuilds the decision from the stored leaf.
    h::RunResult second = nginx().SClient(kMainPort, "", std::string("/req?case=resume") + version,
                                          {version, "-sess_in", sess});
    EXPECT_NE(second.out.find("Reused, "), std::string::npos) << second.out;
    EXPECT_NE(second.out.find("HTTP/1.1 403"), std::string::npos) << second.out;
    EXPECT_NE(second.out.find("403.17 client certificate refused: expired"), std::string::npos);
    const std::string line = h::WaitForLine(
        nginx().error_log(), {std::string("request: \"GET /req?case=resume") + version + " "});
    EXPECT_NE(line.find("reason=expired"), std::string::npos) << line;
  }
  // And a resumed good session stays allowed.
  const std::string sess = nginx().dir() + "/session-good.pem";
  h::RunResult first =
      nginx().SClient(kMainPort, "good", "/req?case=resume-good1", {"-sess_out", sess});
  EXPECT_NE(first.out.find("HTTP/1.1 200"), std::string::npos) << first.out;
  h::RunResult second =
      nginx().SClient(kMainPort, "", "/req?case=resume-good2", {"-sess_in", sess});
  EXPECT_NE(second.out.find("Reused, "), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("HTTP/1.1 200"), std::string::npos) << second.out;
}

TEST_F(NginxBehaviour, RejectAtHandshakeAbortsWithAnAlert) {
  Response r = nginx().Curl(kHandshakePort, "/hs", "expired");
  EXPECT_NE(r.curl_exit, 0) << "handshake must fail";
  EXPECT_EQ(r.status, 0);
  EXPECT_NE(r.err.find("alert"), std::string::npos) << r.err;
  const std::string line = h::WaitForLine(nginx().error_log(), {"reason=expired", "18404"});
  EXPECT_NE(line.find("certgate: verdict=deny reason=expired"), std::string::npos)
      << h::ReadFile(nginx().error_log());
  h::RunResult s = nginx().SClient(kHandshakePort, "expired", "/hs", {"-tls1_2"});
  EXPECT_EQ(s.out.find("HTTP/1.1"), std::string::npos) << s.out;
  EXPECT_NE((s.out + s.err).find("certificate expired"), std::string::npos) << s.out << s.err;
  Response good = nginx().Curl(kHandshakePort, "/hs", "good");
  EXPECT_EQ(good.status, 200);
  EXPECT_EQ(good.body, "handshake ok\n");
  // A missing certificate cannot be judged in the handshake (no callback runs),
  // so it is refused at request time, where it is explained and logged.
  Response none = nginx().Curl(kHandshakePort, "/hs", "");
  EXPECT_EQ(none.status, 403);
  EXPECT_EQ(none.body, "403.7 client certificate refused: no_cert\n");
}

// Issue 12 §4: a certgate refusal at the handshake leaves certgate's line
// only; nginx files OpenSSL's "callback failed" as a client's failure (info),
// never as "[crit] ... certificate verify failed".
TEST_F(NginxBehaviour, RejectAtHandshakeLeavesNoCritLine) {
  Response r = nginx().Curl(kHandshakePort, "/hs?case=nocrit", "expired");
  EXPECT_NE(r.curl_exit, 0);
  h::RunResult s = nginx().SClient(kHandshakePort, "expired", "/hs?case=nocrit12", {"-tls1_2"});
  EXPECT_EQ(s.out.find("HTTP/1.1"), std::string::npos) << s.out;
  Response good = nginx().Curl(kHandshakePort, "/hs?case=nocrit-after", "good");  // a request after
  EXPECT_EQ(good.status, 200);
  const std::string log = h::ReadFile(nginx().error_log());
  EXPECT_EQ(log.find("[crit]"), std::string::npos) << log;
  EXPECT_EQ(log.find("certificate verify failed"), std::string::npos) << log;
  EXPECT_EQ(log.find("SSL_do_handshake() failed"), std::string::npos) << log;
}

// Issue 12 §4: a failed handshake is one certgate line, counted.
TEST_F(NginxBehaviour, FailedHandshakesGetOneLineEach) {
  const std::string counter = "certgate_decisions_total{verdict=\"deny\",reason=\"tls_handshake\"}";
  const std::map<std::string, uint64_t> before = CountersPage();
  ASSERT_EQ(before.count(counter), 1u);
  // A client that offers only TLS 1.1.
  h::RunResult old =
      nginx().SClient(kMainPort, "", "/", {"-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"});
  EXPECT_EQ(old.out.find("HTTP/1.1"), std::string::npos) << old.out;
  const std::string line = h::WaitForLine(nginx().error_log(), {"reason=tls_handshake", "0x0302"});
  EXPECT_NE(line.find("certgate: verdict=deny reason=tls_handshake substatus=403.16 "
                      "detail=\"the client offered TLS 1.1 (0x0302) at most; this server accepts "
                      "TLS 1.2-1.3\""),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("stage=client_hello"), std::string::npos) << line;
  // A client that does not trust the server's chain and aborts with unknown_ca.
  h::RunResult picky = nginx().SClient(
      kMainPort, "good", "/",
      {"-tls1_2", "-verify_return_error", "-CAfile", nginx().pki() + "/clients/self_signed.crt"});
  EXPECT_EQ(picky.out.find("HTTP/1.1"), std::string::npos) << picky.out;
  const std::string alert =
      h::WaitForLine(nginx().error_log(), {"reason=tls_handshake", "unknown_ca"});
  EXPECT_NE(alert.find("the client aborted the handshake with alert unknown_ca (48) after the "
                       "server asked for its certificate"),
            std::string::npos)
      << alert;
  EXPECT_NE(alert.find("stage=certificate_request alert=unknown_ca sni=localhost"),
            std::string::npos)
      << alert;
  const std::string log = h::ReadFile(nginx().error_log());
  EXPECT_EQ(h::GrepLines(log, {"reason=tls_handshake", "0x0302"}).size(), 1u) << log;
  EXPECT_EQ(h::GrepLines(log, {"reason=tls_handshake", "unknown_ca"}).size(), 1u) << log;
  EXPECT_EQ(CountersPage()[counter], before.at(counter) + 2);
}

// Issue 12 §4: the line names the versions and ALPN protocols the ClientHello
// offered (curl: TLS 1.3 down to its minimum, h2 and http/1.1).
TEST_F(NginxBehaviour, FailedHandshakeLineNamesOfferedVersionsAndAlpn) {
  h::RunResult picky = h::Run({"curl", "-sS", "--max-time", "10", "--interface", "127.0.0.11",
                               "--cacert", nginx().pki() + "/ca/untrusted-root.pem",
                               "https://127.0.0.1:" + std::to_string(kMainPort) + "/"},
                              {}, "", 20000);
  EXPECT_NE(picky.exit_code, 0) << picky.out;
  const std::string line = h::WaitForLine(
      nginx().error_log(), {"reason=tls_handshake", "unknown_ca", "client: 127.0.0.11"});
  EXPECT_NE(line.find("client_versions=\"TLS1.3,TLS1.2"), std::string::npos) << line;
  EXPECT_NE(line.find("alpn=\"h2,http/1.1\""), std::string::npos) << line;
}

// Issue 12 §4: a scanner cannot flood the log; every failure is still counted.
TEST_F(NginxBehaviour, FailedHandshakeLinesAreRateLimitedPerClient) {
  const std::string counter = "certgate_decisions_total{verdict=\"deny\",reason=\"tls_handshake\"}";
  const uint64_t before = CountersPage()[counter];
  const int attempts = 16;
  for (int i = 0; i < attempts; ++i) {
    Response r = nginx().Curl(kMainPort, "/", "",
                              {"--interface", "127.0.0.9", "--tlsv1.1", "--tls-max", "1.1",
                               "--ciphers", "DEFAULT@SECLEVEL=0"});
    EXPECT_NE(r.curl_exit, 0);
  }
  EXPECT_EQ(CountersPage()[counter], before + attempts);
  const std::vector<std::string> lines =
      h::GrepLines(h::ReadFile(nginx().error_log()), {"reason=tls_handshake", "client: 127.0.0.9"});
  EXPECT_GE(lines.size(), 5u);
  EXPECT_LE(lines.size(), 10u);  // five a minute per address, in each of the two workers
}

// Issue 12 §5: no_cert names the CA names nginx sent (ssl_client_certificate).
TEST_F(NginxBehaviour, NoCertNamesTheCasAskedFor) {
  EXPECT_EQ(nginx().Curl(kVerifyOptionalPort, "/?case=asked-names", "").status, 403);
  const std::string line = h::WaitForLine(nginx().error_log(), {"case=asked-names"});
  EXPECT_NE(line.find("reason=no_cert"), std::string::npos) << line;
  EXPECT_NE(line.find("the client sent no certificate although asked for one issued by one of "),
            std::string::npos)
      << line;
  EXPECT_NE(line.find(" CAs (first: "), std::string::npos) << line;
}

// Issue 12 §5: through a TLS-terminating proxy the no_cert hint names it;
// a direct client without a certificate gets the usual hint.
TEST_F(NginxBehaviour, NoCertThroughAProxyNamesTheProxy) {
  h::RunResult proxied =
      h::Run({"curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
              "http://127.0.0.1:" + std::to_string(kBackendPort) + "/via-proxy"},
             {}, "", 15000);
  EXPECT_EQ(proxied.out, "403") << proxied.err;
  const std::string line = h::WaitForLine(nginx().error_log(), {"case=via-proxy"});
  EXPECT_NE(line.find("reason=no_cert"), std::string::npos) << line;
  EXPECT_NE(line.find("hint=\"the request came through a proxy (X-Forwarded-For, Forwarded or a "
                      "trusted proxy's address): a TLS-terminating proxy"),
            std::string::npos)
      << line;
  // A proxy that adds no header, from an address in certgate_trusted_proxies.
  proxied = h::Run({"curl", "-sS", "--max-time", "10", "-o", "/dev/null", "-w", "%{http_code}",
                    "http://127.0.0.1:" + std::to_string(kBackendPort) + "/via-trusted-proxy"},
                   {}, "", 15000);
  EXPECT_EQ(proxied.out, "403") << proxied.err;
  const std::string trusted = h::WaitForLine(nginx().error_log(), {"case=via-trusted-proxy"});
  EXPECT_NE(trusted.find("a TLS-terminating proxy"), std::string::npos) << trusted;
  EXPECT_EQ(nginx().Curl(kVerifyOptionalPort, "/?case=direct-no-cert", "").status, 403);
  const std::string direct = h::WaitForLine(nginx().error_log(), {"case=direct-no-cert"});
  EXPECT_NE(direct.find("reason=no_cert"), std::string::npos) << direct;
  EXPECT_EQ(direct.find("proxy"), std::string::npos) << direct;
}

TEST_F(NginxBehaviour, VerifyClientOptionalDoesNotPreemptCertgate) {
  // nginx itself would answer 400 "The SSL certificate error" here.
  Response r = nginx().Curl(kVerifyOptionalPort, "/", "self_signed");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, "403.16 client certificate refused: untrusted_issuer\n");
  EXPECT_EQ(nginx().Curl(kVerifyOptionalPort, "/", "good").status, 200);
  // chain_too_long: depth 7, far above nginx's ssl_verify_depth (1).
  EXPECT_EQ(nginx().Curl(kVerifyOptionalPort, "/", "chain_too_long").body,
            "403.16 client certificate refused: chain_too_long\n");
}

TEST_F(NginxBehaviour, RejectStatusAndBodies) {
  Response s = nginx().Curl(kMainPort, "/status451", "expired");
  EXPECT_EQ(s.status, 451);
  EXPECT_EQ(s.body, "403.17 client certificate refused: expired\n");

  Response j = nginx().Curl(kMainPort, "/json", "expired");
  EXPECT_EQ(j.status, 403);
  EXPECT_EQ(j.content_type.rfind("application/json", 0), 0u) << j.content_type;
  EXPECT_EQ(j.body, "{\"verdict\":\"deny\",\"reason\":\"expired\",\"substatus\":\"403.17\"}\n");

  Response html = nginx().Curl(kMainPort, "/html", "");
  EXPECT_EQ(html.status, 403);
  EXPECT_EQ(html.content_type.rfind("text/html", 0), 0u) << html.content_type;
  EXPECT_NE(html.body.find("<code>no_cert</code>"), std::string::npos) << html.body;
  EXPECT_NE(html.body.find("403.7"), std::string::npos) << html.body;

  // reject_body off: nginx's own answer, so error_page applies.
  Response off = nginx().Curl(kMainPort, "/nobody", "expired");
  EXPECT_EQ(off.status, 403);
  EXPECT_EQ(off.body, "custom denied page\n");
}

TEST_F(NginxBehaviour, VariablesInProxySetHeaderAndMap) {
  Response p = nginx().Curl(kMainPort, "/proxy", "good");
  EXPECT_EQ(p.status, 200);
  EXPECT_EQ(p.body, "subject=CN=alice,OU=People,O=Example\n");
  EXPECT_EQ(nginx().Curl(kMainPort, "/map", "good").body, "tag=yes\n");
  EXPECT_EQ(nginx().Curl(kMainPort, "/map", "").body, "tag=yes\n") << "optional, no cert: allow";
  EXPECT_EQ(nginx().Curl(kMainPort, "/map", "expired").status, 403);
}

TEST_F(NginxBehaviour, StatusPage) {
  nginx().Curl(kMainPort, "/req?case=metrics", "expired");
  Response m = nginx().Curl(kMainPort, "/metrics", "");
  EXPECT_EQ(m.status, 200);
  EXPECT_NE(m.body.find("# TYPE certgate_decisions_total counter"), std::string::npos) << m.body;
  std::smatch match;
  ASSERT_TRUE(std::regex_search(
      m.body, match,
      std::regex("certgate_decisions_total\\{verdict=\"deny\",reason=\"expired\"\\} (\\d+)")))
      << m.body;
  EXPECT_GE(std::stoi(match[1]), 1);
  EXPECT_NE(m.body.find("certgate_decisions_total{verdict=\"allow\",reason=\"none\"}"),
            std::string::npos);
}

// Issue 9 §5: one decision per client request (the core's rule, as in httpd):
// the judgements after an error_page redirect or named location, after the
// index module's internal redirect, and of an SSI include are not counted.
TEST_F(NginxBehaviour, StatusPageCountsARequestOnce) {
  const std::string deny_no_cert = "certgate_decisions_total{verdict=\"deny\",reason=\"no_cert\"}";
  const std::string allow = "certgate_decisions_total{verdict=\"allow\",reason=\"none\"}";
  const std::map<std::string, uint64_t> before = CountersPage();
  ASSERT_EQ(before.count(deny_no_cert), 1u);
  // Refused, then refused again by the error page's location.
  EXPECT_EQ(nginx().Curl(kMainPort, "/named?tag=count", "").status, 403);
  EXPECT_EQ(nginx().Curl(kMainPort, "/front?tag=count", "").status, 200);
  // Allowed, then judged again after the index module's internal redirect.
  EXPECT_EQ(nginx().Curl(kMainPort, "/static/", "good").body, "static index\n");
  // Allowed, with an SSI include judged as a subrequest.
  EXPECT_EQ(nginx().Curl(kMainPort, "/ssi-req/page.html", "good").body, "before ok\n after\n");
  std::map<std::string, uint64_t> after = CountersPage();
  EXPECT_EQ(after[deny_no_cert], before.at(deny_no_cert) + 2);
  EXPECT_EQ(after[allow], before.at(allow) + 2);
}

// Issue 9 §5: a refusal body is never cut (the module used a 4 KiB buffer and
// could not tell a cut body): a long subject named by the detail.
TEST_F(NginxBehaviour, LongRefusalBodiesAreComplete) {
  ASSERT_EQ(h::IssueLongSubjectClient(nginx().pki()), "");
  Response json = nginx().Curl(kMainPort, "/longjson", "long_subject");
  ASSERT_EQ(json.curl_exit, 0) << json.err;
  EXPECT_EQ(json.status, 403);
  EXPECT_EQ(json.content_type.rfind("application/json", 0), 0u) << json.content_type;
  EXPECT_EQ(h::JsonRefusalProblem(json.body, "identity_mismatch"), "");
  Response html = nginx().Curl(kMainPort, "/longhtml", "long_subject");
  EXPECT_EQ(html.status, 403);
  EXPECT_GT(html.body.size(), 8192u);
  EXPECT_NE(html.body.find("OU=lastmarker"), std::string::npos) << html.body.size();
  EXPECT_EQ(html.body.size() > 15 ? html.body.substr(html.body.size() - 15) : "",
            "</body></html>\n");
}

TEST_F(NginxBehaviour, ReloadKeepsWorking) {
  ASSERT_EQ(nginx().Curl(kMainPort, "/reload", "expired").status, 403);
  // A session in the shared session cache (TLS 1.2, no ticket) of a client
  // that sent its intermediate, which the server does not trust by itself.
  const std::string sess = nginx().dir() + "/session-before-reload.pem";
  h::RunResult before = nginx().SClient(kMainPort, "good", "/req?case=before-reload",
                                        {"-tls1_2", "-no_ticket", "-sess_out", sess});
  ASSERT_NE(before.out.find("HTTP/1.1 200"), std::string::npos) << before.out;
  ASSERT_TRUE(h::WriteFile(nginx().conf(), nginx().Config(452)));
  const pid_t master = nginx().process().pid();
  ASSERT_TRUE(nginx().process().Signal(SIGHUP));
  int status = 0;
  for (int i = 0; i < 250 && status != 452; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    status = nginx().Curl(kMainPort, "/reload", "expired").status;
  }
  EXPECT_EQ(status, 452) << "the new configuration was not applied";
  EXPECT_TRUE(nginx().process().Running());
  EXPECT_EQ(nginx().process().pid(), master);
  EXPECT_EQ(nginx().Curl(kMainPort, "/req", "good").status, 200);
  Response bad = nginx().Curl(kMainPort, "/req?case=after-reload", "expired");
  EXPECT_EQ(bad.status, 403);
  EXPECT_EQ(bad.body, "403.17 client certificate refused: expired\n");
  EXPECT_NE(h::WaitForLine(nginx().error_log(), {"case=after-reload", "reason=expired"}), "");
  // A second reload, back to the first configuration, polled without a client
  // certificate: the new workers see no chain before the resumption below.
  ASSERT_TRUE(h::WriteFile(nginx().conf(), nginx().Config(403)));
  ASSERT_TRUE(nginx().process().Signal(SIGHUP));
  for (int i = 0; i < 250 && status != 403; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    status = nginx().Curl(kMainPort, "/reload", "").status;
  }
  EXPECT_EQ(status, 403);
  // The new workers never saw that intermediate: the resumed session brings it.
  h::RunResult resumed = nginx().SClient(kMainPort, "", "/req?case=resumed-after-reload",
                                         {"-tls1_2", "-no_ticket", "-sess_in", sess});
  EXPECT_NE(resumed.out.find("Reused, "), std::string::npos) << resumed.out;
  EXPECT_NE(resumed.out.find("HTTP/1.1 200"), std::string::npos)
      << resumed.out << h::WaitForLine(nginx().error_log(), {"case=resumed-after-reload"});
}

// Issue 9 §2: a 60 KB certificate (a 60,000-character CN, O=Example,
// OU=People) at a location with a subject regex. An untrusted one is refused
// for its chain and never reaches the regex; a trusted one is judged by it
// (std::regex overflowed the worker's stack on it: "exited on signal 11").
TEST_F(NginxBehaviour, HugeSubjectUnderASubjectRegexNeverCrashesAWorker) {
  struct Case {
    const char *client;
    const char *uri;
    const char *body;    // of the request to `uri`
    const char *access;  // its access-log line
    int next_status;     // of /req, asked next on the same connection
  };
  const Case cases[] = {
      {"long_cn_untrusted", "/people-regex?case=long-untrusted",
       "403.16 client certificate refused: untrusted_issuer\n",
       "status=403 verdict=deny reason=untrusted_issuer substatus=403.16", 403},
      {"long_cn_untrusted", "/staff-regex?case=long-untrusted",
       "403.16 client certificate refused: untrusted_issuer\n",
       "status=403 verdict=deny reason=untrusted_issuer substatus=403.16", 403},
      {"long_cn", "/staff-regex?case=long-trusted",
       "403.12 client certificate refused: identity_mismatch\n",
       "status=403 verdict=deny reason=identity_mismatch substatus=403.12", 200},
      {"long_cn", "/people-regex?case=long-trusted", "ok\n", "status=200 verdict=allow", 200},
  };
  const std::string subject = "subject=\"CN=" + std::string(60000, 'a') + ",OU=People,O=Example\"";
  for (const Case &c : cases) {
    for (const char *version : {"--http1.1", "--http2"}) {
      SCOPED_TRACE(std::string(c.client) + " " + c.uri + " " + version);
      const std::string uri = std::string(c.uri) + version;
      // curl asks the URL of the extra arguments first, then /req.
      Response r = nginx().Curl(kMainPort, "/req?case=after-long", c.client,
                                {version, "https://127.0.0.1:18401" + uri});
      ASSERT_EQ(r.curl_exit, 0) << "the 60 KB certificate must pass the handshake: " << r.err;
      EXPECT_EQ(r.body.rfind(c.body, 0), 0u) << r.body;
      EXPECT_EQ(r.status, c.next_status) << "the worker answers the next request";
      const std::string access = AccessLine(uri);
      EXPECT_NE(access.find(c.access), std::string::npos) << access.substr(0, 300);
      EXPECT_NE(access.find(subject), std::string::npos);
    }
  }
  EXPECT_EQ(nginx().Curl(kMainPort, "/people-regex?case=after-long", "good").status, 200);
  const std::string errors = h::ReadFile(nginx().error_log()) + h::ReadFile(nginx().notice_log());
  EXPECT_EQ(errors.find("exited on signal"), std::string::npos) << errors.substr(0, 2000);
}

}  // namespace
}  // namespace certgate::nginx_test
