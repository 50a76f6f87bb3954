// Integration tests of ngx_http_certgate_module inside Debian's nginx, driven
// with curl and openssl s_client.
//
// Each suite starts one nginx (its own prefix in a temporary directory, with a
// freshly generated demo PKI; CERTGATE_KEEP_TMP=1 keeps it) on 127.0.0.1:
//   NginxReasons     every reason that can arise without revocation: status,
//                    body, $certgate_reason in the access log, the error-log
//                    line.
//   NginxBehaviour   the behaviours of issues 3 and 9: bypasses, proxying,
//                    HTTP/2, SNI, resumption, reject_at handshake, the status
//                    page, reloads.
//   NginxConfig      `nginx -t`: the core's messages with file:line.
//     These three share MainServer (18401-18409).
//   NginxRevocation  18410, a real CDP (18080) and OCSP responder (18081).
// NginxLdap (nginx_ldap_test.cc, 18480) has its own nginx and slapd (18389).
// NginxCrash (nginx_crash_test.cc, 18470) uses the harness too; NginxRestart
// (nginx_restart_test.cc, 18490) runs nginx as a daemon from copies of the
// module, on its own.
//
// nginx_test_fixture.h: the harness (Nginx, one nginx with the module) and the
// main server; nginx_reasons_test.cc, nginx_behaviour_test.cc,
// nginx_config_test.cc and nginx_revocation_test.cc: one suite each.
#ifndef CERTGATE_TESTS_INTEGRATION_NGINX_TEST_FIXTURE_H
#define CERTGATE_TESTS_INTEGRATION_NGINX_TEST_FIXTURE_H

#include <gtest/gtest.h>
#include <harness.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

namespace certgate::nginx_test {

namespace h = harness;

// What a client got, through curl or openssl s_client.
struct Response {
  int curl_exit = -1;
  int status = 0;
  std::string body;
  std::string content_type;
  std::string http_version;
  std::string err;
};

// One nginx with the module: its prefix (a temporary directory) with logs/,
// tmp/ and the demo PKI in pki/, its nginx.conf and its process.
class Nginx {
 public:
  virtual ~Nginx() = default;

  // Makes the prefix (`tag` names the temporary directory) and the PKI.
  // Returns "" or what went wrong.
  std::string Prepare(const std::string &tag);
  // Writes `config` as nginx.conf, checks it with `nginx -t`, starts nginx and
  // waits until it listens on every one of `ports`. Returns "" or what went
  // wrong.
  std::string Launch(const std::string &config, const std::vector<int> &ports);
  // Stops nginx with `sig` (SIGQUIT lets requests finish; SIGTERM does not
  // wait for a request that waits for a fetch) and starts it again with the
  // same nginx.conf: new workers, the same prefix.
  std::string Relaunch(int sig, const std::vector<int> &ports);
  void StopNginx(int sig);

  // The top of every nginx.conf: load_module, then the harness's head with
  // error_log() at error (refusals must be visible there) and notice_log().
  std::string ConfigHead(int workers) const;
  // `nginx -t` of <prefix>/<name>: `top` (lines before "pid"), one server and
  // its `location /` holding `directives`, from line 9 when `top` is empty.
  h::RunResult TestLocationConfig(const std::string &name, const std::string &directives,
                                  const std::string &top = "") const;

  // curl against 127.0.0.1; `client` names a clients/<name> cert ("" = none).
  Response Curl(int port, const std::string &path, const std::string &client,
                const std::vector<std::string> &extra = {}, const std::string &host = "") const;
  // openssl s_client: one HTTP/1.1 request, optionally saving/reusing a session.
  h::RunResult SClient(int port, const std::string &client, const std::string &path,
                       const std::vector<std::string> &extra) const;
  // The same as a Response, through openssl s_client (HTTP/1.1).
  Response SClientRequest(int port, const std::string &client, const std::string &path) const;

  std::string dir() const { return dir_->path(); }
  std::string pki() const { return dir() + "/pki"; }
  std::string conf() const { return dir() + "/nginx.conf"; }
  std::string error_log() const { return dir() + "/logs/error.log"; }
  std::string notice_log() const { return dir() + "/logs/notice.log"; }
  std::string access_log() const { return dir() + "/logs/access.log"; }
  const std::string &nginx() const { return nginx_; }
  h::Process &process() { return process_; }

 private:
  std::string nginx_;
  std::unique_ptr<h::TempDir> dir_;
  std::string weak_conf_;
  h::Process process_;
};

// ---- the main server of NginxReasons, NginxBehaviour and NginxConfig ----

constexpr int kMainPort = 18401;            // most locations; HTTP/1.1 and HTTP/2
constexpr int kServerReturnPort = 18402;    // server-level `return`
constexpr int kSniPort = 18403;             // a.test / b.test with different trust lists
constexpr int kHandshakePort = 18404;       // certgate_reject_at handshake
constexpr int kBackendPort = 18405;         // plain HTTP echo behind proxy_pass
constexpr int kVerifyOptionalPort = 18406;  // ssl_verify_client optional + CA list
constexpr int kServerVariablePort = 18407;  // server-level `return` with $certgate_verdict
constexpr int kServerSetPort = 18408;       // server-level `set $x $certgate_subject` + return
constexpr int kAppBackendPort = 18409;      // the application behind proxy_pass (plain nginx)

class MainServer : public Nginx {
 public:
  // Returns "" or what went wrong.
  std::string Start();
  void Stop();
  // The configuration; `reload_status` is certgate_reject_status of /reload.
  std::string Config(int reload_status) const;
  h::CrlServer &backend() { return backend_; }

 private:
  h::CrlServer backend_;  // the application behind proxy_pass, with its access log
  std::string good_pin_;
};

// Every reason producible without revocation, at the main server.
struct ReasonCase {
  const char *name;    // test name and ?case=
  const char *client;  // clients/<client>; "" = no certificate
  const char *location;
  const char *reason;
  const char *substatus;
  bool s_client;  // curl cannot load the certificate: use openssl s_client
};

inline std::ostream &operator<<(std::ostream &os, const ReasonCase &c) { return os << c.name; }

inline constexpr ReasonCase kReasonCases[] = {
    {"no_cert", "", "/req", "no_cert", "403.7", false},
    {"self_signed", "self_signed", "/req", "untrusted_issuer", "403.16", false},
    {"untrusted_root", "untrusted", "/req", "untrusted_issuer", "403.16", false},
    {"chain_incomplete", "chain_incomplete", "/req", "chain_incomplete", "403.16", false},
    {"issuer_not_allowed", "other_issuer", "/issuers", "issuer_not_allowed", "403.16", false},
    {"expired", "expired", "/req", "expired", "403.17", false},
    {"not_yet_valid", "not_yet_valid", "/req", "not_yet_valid", "403.17", false},
    {"bad_signature", "bad_signature", "/req", "bad_signature", "403.16", false},
    {"malformed", "malformed", "/req", "malformed", "403.16", true},
    {"unknown_critical", "unknown_critical", "/req", "malformed", "403.16", false},
    {"invalid_ca", "invalid_ca", "/req", "invalid_ca", "403.16", false},
    {"wrong_purpose", "wrong_eku", "/req", "wrong_purpose", "403.16", false},
    {"no_eku", "no_eku", "/req", "wrong_purpose", "403.16", false},  // require_eku clientAuth
    {"key_usage", "key_usage", "/req", "key_usage", "403.16", false},
    {"weak_key", "weak_key", "/req", "weak_key", "403.16", false},
    {"weak_signature", "weak_signature", "/req", "weak_signature", "403.16", false},
    {"chain_too_long", "chain_too_long", "/req", "chain_too_long", "403.16", false},
    {"identity_mismatch", "ou_missing", "/people", "identity_mismatch", "403.12", false},
    {"pin_mismatch", "rsa_good", "/pinned", "pin_mismatch", "403.12", false},
};

// One MainServer per test process, started by the first suite that needs it.
class NginxTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite();
  static void TearDownTestSuite();
  void SetUp() override;
  MainServer &nginx();
};

// A suite with one server of its own (type S: Start() returns "" or why not,
// Stop()): started once for the suite; each test fails with the start error
// when it did not come up.
template <class S>
class SharedServerTest : public ::testing::Test {
 public:
  static S &server() { return *server_; }

 protected:
  static void SetUpTestSuite() {
    server_ = new S();
    start_error_ = server_->Start();
  }
  static void TearDownTestSuite() {
    server_->Stop();
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(start_error_.empty()) << start_error_; }

 private:
  static inline S *server_ = nullptr;
  static inline std::string start_error_;
};

// The main server's access-log line of `uri`.
std::string AccessLine(const std::string &uri);

}  // namespace certgate::nginx_test

#endif  // CERTGATE_TESTS_INTEGRATION_NGINX_TEST_FIXTURE_H
