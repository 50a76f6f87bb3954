// Integration tests of mod_certgate in Debian's apache2 (mod_ssl), under
// mpm_event and mpm_prefork, driven with curl and openssl s_client.
//
// Each suite starts its own self-contained apache2 (-DFOREGROUND -f, nothing of
// /etc/apache2 is read) in a temporary directory, per MPM, on 127.0.0.1:
//   ApacheReasons    18500 (event) / 18520 (prefork): every reason that can
//                    arise without revocation: status, body, CERTGATE_REASON in
//                    the access log, the error-log line.
//   ApacheBehaviour  18540.. (event) / 18560.. (prefork), the application
//                    backend on 18546 / 18566: optional, per-<Location>
//                    rules, Satisfy Any, ErrorDocument, JSON body, the
//                    SSLVerifyClient modes, resumption, reject_at handshake,
//                    a vhost without certgate, the CertGateStatus page,
//                    graceful restart.
//   ApacheConfig     18590..: `apache2 -t` errors.
//   ApacheRevocation 18530.. (event) / 18540 (prefork), 18570-18578 (event,
//                    one virtual host per CDP fault of the fault drill): CRLs
//                    from the CDP (h::CrlServer on 18080), OCSP
//                    (h::OcspResponder on 18081), preloaded CRLs, faults,
//                    refresh, resumption, the cache dir.
// apache_crash_test.cc (ApacheCrash) uses 18580-18582.
#include <gtest/gtest.h>
#include <harness.h>
#include <openssl/x509.h>
#include <pki_builder.h>
#include <signal.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <future>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace h = certgate::harness;

namespace {

const char *const kApache = CERTGATE_APACHE_BINARY;
const char *const kModules = CERTGATE_APACHE_MODULES_DIR;
const char *const kModule = CERTGATE_APACHE_MODULE_PATH;

// ---- the demo PKI, generated once per process ----

struct Pki {
  std::unique_ptr<h::TempDir> dir;
  std::string path;  // DIR/pki
  std::string weak_openssl_conf;
  std::map<std::string, std::string> sha256;  // client name -> "sha256:<hex>"
  std::string error;
};

Pki &SharedPki() {
  static Pki pki = [] {
    Pki p;
    p.dir = std::make_unique<h::TempDir>("certgate-apache-pki");
    if (!p.dir->ok()) {
      p.error = "cannot create a temporary directory";
      return p;
    }
    p.path = p.dir->path() + "/pki";
    p.error = h::GeneratePki(p.path);
    p.weak_openssl_conf = h::WriteWeakClientOpensslConf(p.dir->path());
    h::MakeWorldReadable(p.dir->path());
    std::istringstream lines(h::ReadFile(p.path + "/clients/fingerprints.txt"));
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream words(line);
      std::string name, word;
      words >> name;
      while (words >> word) {
        if (word.rfind("sha256:", 0) == 0) p.sha256[name] = word;
      }
    }
    return p;
  }();
  return pki;
}

// ---- talking to the server ----

struct Reply {
  int exit_code = -1;  // of the client
  int status = 0;      // HTTP status, 0 when there was no HTTP answer
  std::string content_type;
  std::string body;
  std::string raw;  // client stdout + stderr, for messages
};

// Splits "HTTP/1.1 403 Forbidden\r\nHeaders...\r\n\r\nbody" found anywhere in `out`.
void ParseHttp(const std::string &out, Reply *reply) {
  const size_t start = out.find("HTTP/1.");
  if (start == std::string::npos) return;
  reply->status = std::atoi(out.c_str() + start + 9);
  const size_t end = out.find("\r\n\r\n", start);
  const std::string head =
      out.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (end != std::string::npos) reply->body = out.substr(end + 4);
  std::istringstream lines(head);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() > 13 && strncasecmp(line.c_str(), "Content-Type:", 13) == 0) {
      reply->content_type = line.substr(line.find_first_not_of(' ', 13));
    }
  }
}

enum class Client { kCurl, kCurlWeak, kSClient };

// GET https://127.0.0.1:port/path with client certificate `cert` ("" = none).
Reply Get(int port, const std::string &path, const std::string &cert,
          Client client = Client::kCurl) {
  const Pki &pki = SharedPki();
  const std::string url = "https://127.0.0.1:" + std::to_string(port) + path;
  Reply reply;
  h::RunResult run;
  if (client == Client::kSClient) {
    // openssl s_client loads certificates curl refuses (invalid extensions) and
    // sends the chain named by -cert_chain.
    std::vector<std::string> argv = {
        "openssl",           "s_client",  "-connect", "127.0.0.1:" + std::to_string(port),
        "-servername",       "localhost", "-quiet",   "-cipher",
        "DEFAULT@SECLEVEL=0"};
    if (!cert.empty()) {
      const std::string base = pki.path + "/clients/" + cert;
      argv.insert(argv.end(), {"-cert", base + ".crt", "-cert_chain", base + ".chain.pem", "-key",
                               base + ".key"});
    }
    run =
        h::Run(argv, {},
               "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 20000);
  } else {
    std::vector<std::string> argv = {"curl", "-sk", "--http1.1", "--max-time",
                                     "15",   "-D",  "-",         url};
    if (!cert.empty()) {
      const std::string base = pki.path + "/clients/" + cert;
      argv.insert(argv.end() - 1, {"--cert", base + ".chain.pem", "--key", base + ".key"});
    }
    std::vector<std::string> env;
    // RSA-1024 and SHA-1 certificates are refused by the client's own OpenSSL
    // at the default security level 2 before anything is sent.
    if (client == Client::kCurlWeak) env.push_back("OPENSSL_CONF=" + pki.weak_openssl_conf);
    run = h::Run(argv, env, {}, 20000);
  }
  reply.exit_code = run.exit_code;
  reply.raw = run.out + run.err;
  ParseHttp(run.out, &reply);
  return reply;
}

// `method` (POST, HEAD, ...) on https://127.0.0.1:port/path, without a client
// certificate.
Reply Request(int port, const std::string &path, const std::string &method) {
  std::vector<std::string> argv = {"curl", "-sk", "--http1.1", "--max-time", "15"};
  if (method == "HEAD") {
    argv.push_back("-I");  // the head on stdout, once
  } else {
    argv.insert(argv.end(), {"-D", "-", "-X", method, "--data", "x=1"});
  }
  argv.push_back("https://127.0.0.1:" + std::to_string(port) + path);
  const h::RunResult run = h::Run(argv, {}, {}, 20000);
  Reply reply;
  reply.exit_code = run.exit_code;
  reply.raw = run.out + run.err;
  ParseHttp(run.out, &reply);
  return reply;
}

// The CertGateStatus page's samples: "name{labels}" -> value. Empty when the
// page does not parse (a line that is neither a comment nor "sample value").
std::map<std::string, uint64_t> Counters(const std::string &page) {
  std::map<std::string, uint64_t> out;
  std::istringstream lines(page);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# ", 0) == 0) continue;
    const size_t space = line.rfind(' ');
    if (space == std::string::npos || space + 1 == line.size() ||
        line.find_first_not_of("0123456789", space + 1) != std::string::npos) {
      return {};
    }
    out[line.substr(0, space)] = std::stoull(line.substr(space + 1));
  }
  return out;
}

std::string Decisions(const std::string &verdict, const std::string &reason) {
  return "certgate_decisions_total{verdict=\"" + verdict + "\",reason=\"" + reason + "\"}";
}

std::string TextBody(const std::string &reason, const std::string &substatus) {
  return substatus + " client certificate refused: " + reason + "\n";
}

// ---- one apache2 instance ----

std::string MpmBlock(const std::string &mpm) {
  if (mpm == "prefork") {
    return "StartServers 2\nMinSpareServers 1\nMaxSpareServers 4\nServerLimit 8\n"
           "MaxRequestWorkers 8\n";
  }
  return "StartServers 1\nServerLimit 2\nThreadsPerChild 8\nMaxRequestWorkers 16\n"
         "MinSpareThreads 1\nMaxSpareThreads 16\n";
}

// `SSLVerifyClient` is left out when verify_client is empty.
std::string VirtualHost(int port, const std::string &verify_client, const std::string &body) {
  const std::string pki = SharedPki().path;
  std::string out = "Listen 127.0.0.1:" + std::to_string(port) +
                    "\n<VirtualHost 127.0.0.1:" + std::to_string(port) +
                    ">\n"
                    "  SSLEngine on\n"
                    "  SSLCertificateFile " +
                    pki +
                    "/server/server-chain.pem\n"
                    "  SSLCertificateKeyFile " +
                    pki +
                    "/server/server.key\n"
                    "  SSLCACertificateFile " +
                    pki + "/ca/trust.pem\n";
  if (!verify_client.empty()) out += "  SSLVerifyClient " + verify_client + "\n";
  out += "  SSLVerifyDepth 10\n" + body + "</VirtualHost>\n";
  return out;
}

class Apache {
 public:
  explicit Apache(std::string mpm) : mpm_(std::move(mpm)), dir_("certgate-apache") {}
  ~Apache() { Stop(); }

  const std::string &root() const { return dir_.path(); }
  std::string conf() const { return root() + "/httpd.conf"; }
  std::string error_log() const { return root() + "/logs/error.log"; }
  std::string access_log() const { return root() + "/logs/access.log"; }

  // The whole httpd.conf: common part, then `vhosts`.
  std::string Config(const std::string &vhosts) const {
    const std::string r = root();
    const std::string m = kModules;
    return "ServerRoot \"" + r + "\"\nServerName localhost\n" + "DefaultRuntimeDir \"" + r +
           "/run\"\nPidFile \"" + r + "/run/httpd.pid\"\n" + "ErrorLog \"" + r +
           "/logs/error.log\"\nLogLevel warn\n" + "Mutex file:" + r + "/run default\n" +
           "LoadModule mpm_" + mpm_ + "_module " + m + "/mod_mpm_" + mpm_ + ".so\n" +
           "LoadModule authz_core_module " + m + "/mod_authz_core.so\n" +
           "LoadModule access_compat_module " + m + "/mod_access_compat.so\n" +
           "LoadModule mime_module " + m + "/mod_mime.so\n" + "LoadModule dir_module " + m +
           "/mod_dir.so\n" + "LoadModule socache_shmcb_module " + m + "/mod_socache_shmcb.so\n" +
           "LoadModule ssl_module " + m + "/mod_ssl.so\n" + "LoadModule proxy_module " + m +
           "/mod_proxy.so\n" + "LoadModule proxy_http_module " + m + "/mod_proxy_http.so\n" +
           (mpm_ == "prefork" ? "LoadModule cgi_module " + m + "/mod_cgi.so\n"
                              : "LoadModule cgid_module " + m + "/mod_cgid.so\n") +
           "LoadModule certgate_module " + kModule + "\n" +
           (geteuid() == 0 ? "User nobody\nGroup nogroup\n" : "") + MpmBlock(mpm_) +
           "TypesConfig /etc/mime.types\n" + "DocumentRoot \"" + r +
           "/htdocs\"\nDirectoryIndex index.html\n" +
           "LogFormat \"%h \\\"%r\\\" %>s reason=%{CERTGATE_REASON}e "
           "substatus=%{CERTGATE_SUBSTATUS}e verdict=%{CERTGATE_VERDICT}e "
           "revocation=\\\"%{CERTGATE_REVOCATION}e\\\"\" certgate\n" +
           "CustomLog \"" + r + "/logs/access.log\" certgate\n" +
           "<Directory />\n  Require all granted\n</Directory>\n" + "SSLSessionCache \"shmcb:" + r +
           "/run/ssl_scache(512000)\"\n" + "SSLProtocol -all +TLSv1.2 +TLSv1.3\n" + vhosts;
  }

  // Writes the config and the docroot. Returns "" or what went wrong.
  std::string Write(const std::string &vhosts) {
    if (!dir_.ok()) return "no temporary directory";
    if (!SharedPki().error.empty()) return "PKI generation failed: " + SharedPki().error;
    for (const char *sub : {"/run", "/logs", "/htdocs"}) h::MakeDirs(root() + sub);
    for (const char *loc :
         {"", "/opt", "/off", "/issuers", "/identity", "/pinned", "/satisfy", "/errdoc", "/json",
          "/norev", "/soft", "/slow", "/people-regex", "/staff-regex", "/v3-rules", "/lenient"}) {
      h::MakeDirs(root() + "/htdocs" + loc);
      h::WriteFile(root() + "/htdocs" + loc + "/index.html", "hello\n");
    }
    h::WriteFile(root() + "/htdocs/denied.html", "certgate said no\n");
    // A CGI that records every run (the children run it as nobody).
    h::MakeDirs(root() + "/htdocs/cgi");
    h::MakeDirs(root() + "/cgi-runs", 0777);
    h::WriteFile(root() + "/cgi-runs/runs.log", "");
    h::WriteFile(root() + "/htdocs/cgi/app.cgi",
                 "#!/bin/sh\necho \"ran uri=$REQUEST_URI\" >> " + root() +
                     "/cgi-runs/runs.log\nprintf 'Content-Type: text/plain\\n\\ncgi answer\\n'\n");
    h::WriteFile(conf(), Config(vhosts));
    h::MakeWorldReadable(root());
    chmod((root() + "/htdocs/cgi/app.cgi").c_str(), 0755);
    chmod((root() + "/cgi-runs").c_str(), 0777);
    chmod((root() + "/cgi-runs/runs.log").c_str(), 0666);
    return "";
  }

  // Starts apache2 and waits until it serves `port`. Returns "" or an error.
  std::string Start(const std::string &vhosts, int port) {
    if (access(kApache, X_OK) != 0) {
      return std::string(kApache) +
             " is missing: install Debian's apache2 (apt-get install apache2 apache2-dev)";
    }
    std::string error = Write(vhosts);
    if (!error.empty()) return error;
    h::LogTail log(error_log());
    if (!process_.Start({"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/bin", kApache,
                         "-DFOREGROUND", "-f", conf()},
                        root() + "/stdout.log", root() + "/stderr.log")) {
      return "cannot start apache2: " + process_.error();
    }
    bool ready = false;
    log.WaitFor("resuming normal operations", 15000, &ready);
    if (!ready || !h::WaitForPort(port, 10000)) {
      return "apache2 did not come up:\n" + h::ReadFile(root() + "/stderr.log") +
             h::ReadFile(error_log());
    }
    return "";
  }

  void Stop() {
    if (process_.pid() > 0 && process_.Running()) process_.Stop(SIGTERM, 15000);
  }
  bool Signal(int sig) { return process_.Signal(sig); }
  bool Running() { return process_.Running(); }

 private:
  std::string mpm_;
  h::TempDir dir_;
  h::Process process_;
};

int BasePort(const std::string &mpm, int event_port, int prefork_port) {
  return mpm == "prefork" ? prefork_port : event_port;
}

// ---- ApacheReasons: every reason that arises without revocation ----

struct ReasonCase {
  const char *cert;  // client name in the demo PKI; "" = no certificate
  const char *path;
  const char *reason;
  const char *substatus;
  Client client;
};

std::ostream &operator<<(std::ostream &os, const ReasonCase &c) {
  return os << (*c.cert ? c.cert : "none") << "@" << c.path;
}

const ReasonCase kReasonCases[] = {
    {"", "/", "no_cert", "403.7", Client::kCurl},
    {"self_signed", "/", "untrusted_issuer", "403.16", Client::kCurl},
    {"untrusted", "/", "untrusted_issuer", "403.16", Client::kCurl},
    {"chain_incomplete", "/", "chain_incomplete", "403.16", Client::kCurl},
    {"other_issuer", "/issuers/", "issuer_not_allowed", "403.16", Client::kCurl},
    {"expired", "/", "expired", "403.17", Client::kCurl},
    {"not_yet_valid", "/", "not_yet_valid", "403.17", Client::kCurl},
    {"bad_signature", "/", "bad_signature", "403.16", Client::kCurl},
    // curl refuses to load a certificate with an invalid extension.
    {"malformed", "/", "malformed", "403.16", Client::kSClient},
    {"unknown_critical", "/", "malformed", "403.16", Client::kCurl},
    {"invalid_ca", "/", "invalid_ca", "403.16", Client::kCurl},
    {"wrong_eku", "/", "wrong_purpose", "403.16", Client::kCurl},
    {"no_eku", "/", "wrong_purpose", "403.16", Client::kCurl},
    {"key_usage", "/", "key_usage", "403.16", Client::kCurl},
    {"weak_key", "/", "weak_key", "403.16", Client::kCurlWeak},
    {"weak_signature", "/", "weak_signature", "403.16", Client::kCurlWeak},
    {"chain_too_long", "/", "chain_too_long", "403.16", Client::kCurl},
    {"ou_missing", "/identity/", "identity_mismatch", "403.12", Client::kCurl},
    {"good", "/pinned/", "pin_mismatch", "403.12", Client::kCurl},
};

class ApacheReasons : public ::testing::TestWithParam<std::tuple<std::string, ReasonCase>> {
 protected:
  static std::map<std::string, std::unique_ptr<Apache>> &Servers() {
    static std::map<std::string, std::unique_ptr<Apache>> servers;
    return servers;
  }
  static void TearDownTestSuite() { Servers().clear(); }

  static std::string Vhosts(int port) {
    const Pki &pki = SharedPki();
    auto it = pki.sha256.find("rsa_good");
    const std::string pin = it != pki.sha256.end() ? it->second : "sha256:00";
    return VirtualHost(port, "optional_no_ca",
                       "  CertGate require\n"
                       "  <Location /issuers>\n    CertGateTrustedIssuers " +
                           pki.path +
                           "/ca/intermediate.pem\n  </Location>\n"
                           "  <Location /identity>\n    CertGateSubject OU=People\n  </Location>\n"
                           "  <Location /pinned>\n    CertGatePin " +
                           pin + "\n  </Location>\n");
  }

  // The server for this MPM, started on first use.
  Apache *Server(const std::string &mpm, int port) {
    auto &slot = Servers()[mpm];
    if (!slot) {
      slot = std::make_unique<Apache>(mpm);
      start_error_[mpm] = slot->Start(Vhosts(port), port);
    }
    return start_error_[mpm].empty() ? slot.get() : nullptr;
  }
  static inline std::map<std::string, std::string> start_error_;
};

TEST_P(ApacheReasons, RefusedWithStatusBodyVariableAndLogLine) {
  const std::string mpm = std::get<0>(GetParam());
  const ReasonCase &c = std::get<1>(GetParam());
  const int port = BasePort(mpm, 18500, 18520);
  Apache *server = Server(mpm, port);
  ASSERT_NE(server, nullptr) << start_error_[mpm];

  h::LogTail errors(server->error_log());
  h::LogTail access(server->access_log());
  const std::string tag = std::string("case=") + (*c.cert ? c.cert : "none");
  const Reply reply = Get(port, std::string(c.path) + "?" + tag, c.cert, c.client);

  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody(c.reason, c.substatus));
  EXPECT_EQ(reply.content_type.rfind("text/plain", 0), 0u) << reply.content_type;

  bool found = false;
  const std::string needle = " \"GET " + std::string(c.path) + "?" + tag +
                             " HTTP/1.1\" 403 reason=" + c.reason + " substatus=" + c.substatus +
                             " verdict=deny";
  const std::string logged = access.WaitFor(needle, 5000, &found);
  EXPECT_TRUE(found) << "access log lacks [" << needle << "]:\n" << logged;

  const std::string line =
      std::string("certgate: verdict=deny reason=") + c.reason + " substatus=" + c.substatus;
  const std::string error_text = errors.WaitFor(line, 5000, &found);
  EXPECT_TRUE(found) << "error log lacks [" << line << "]:\n" << error_text;
  EXPECT_EQ(h::GrepLines(error_text, {"[certgate:error]", line}).size(), 1u) << error_text;
}

INSTANTIATE_TEST_SUITE_P(
    Mpm, ApacheReasons,
    ::testing::Combine(::testing::Values("event", "prefork"), ::testing::ValuesIn(kReasonCases)),
    [](const auto &info) {
      std::string name = std::get<0>(info.param) + "_" +
                         (*std::get<1>(info.param).cert ? std::get<1>(info.param).cert : "none") +
                         "_" + std::get<1>(info.param).reason;
      return name;
    });

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
           VirtualHost(base + kWithoutCertgate, "require", "");
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
  // curl sees a failed connection, no HTTP status
  const Reply reply = Get(Port(kHandshake), "/", "untrusted");
  EXPECT_EQ(reply.status, 0) << reply.raw;
  EXPECT_NE(reply.exit_code, 0);
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
  // allow/none, 21 refusals (chain_too_complex since issue 15), handshakes
  ASSERT_EQ(before.size(), 23u) << first.body;
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

// ---- ApacheConfig: apache2 -t ----

class ApacheConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kApache, X_OK), 0)
        << kApache << " is missing: install Debian's apache2 (apt-get install apache2 apache2-dev)";
    ASSERT_TRUE(SharedPki().error.empty()) << SharedPki().error;
  }
  // `apache2 -t` on a config whose main vhost holds `body`; *line is the line
  // number of body's first line in the file.
  h::RunResult ConfigTest(const std::string &body, int *line = nullptr) {
    Apache apache("event");
    EXPECT_EQ(apache.Write(VirtualHost(18590, "optional_no_ca", body)), "");
    const std::string text = h::ReadFile(apache.conf());
    if (line != nullptr) {
      const size_t at = text.find(body.substr(0, body.find('\n')));
      *line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
    }
    conf_ = apache.conf();
    return h::Run(
        {"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/bin", kApache, "-t", "-f", apache.conf()});
  }
  std::string conf_;
};

TEST_F(ApacheConfig, GoodConfigPassesAndValuesAreCaseInsensitive) {
  h::RunResult r = ConfigTest(
      "  CertGate REQUIRE\n  certgaterejectbody JSON\n  CertGateMinKey rsa=3072 ec=384\n"
      "  CertGateSubject \"O=Example\" OU=People\n  CertGateLog json accepts\n"
      "  CertGateMaxDepth 3\n  CertGateClockSkew 5m\n"
      "  <Location /x>\n    CertGate optional\n    CertGateSan uri:spiffe://prod/*\n  "
      "</Location>\n");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("Syntax OK"), std::string::npos) << r.out << r.err;
}

TEST_F(ApacheConfig, BadValueNamesFileAndLine) {
  int line = 0;
  h::RunResult r = ConfigTest("  CertGateMaxDepth banana\n", &line);
  EXPECT_NE(r.exit_code, 0);
  const std::string where = "line " + std::to_string(line) + " of " + conf_;
  EXPECT_NE(r.err.find(where), std::string::npos) << "want [" << where << "] in:\n" << r.err;
  EXPECT_NE(r.err.find("banana"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CertGateMaxDepth: \"banana\""), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, BadKeywordInLocationNamesFileAndLine) {
  int line = 0;
  h::RunResult r = ConfigTest("  <Location /x>\n    CertGate sometimes\n  </Location>\n", &line);
  EXPECT_NE(r.exit_code, 0);
  const std::string where = "line " + std::to_string(line + 1) + " of " + conf_;
  EXPECT_NE(r.err.find(where), std::string::npos) << "want [" << where << "] in:\n" << r.err;
  EXPECT_NE(r.err.find("sometimes"), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, MissingFileNamesTheFile) {
  h::RunResult r = ConfigTest("  CertGateTrustedIssuers /nonexistent/issuers.pem\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent/issuers.pem"), std::string::npos) << r.err;
}

// Relative paths are httpd's: every value of a path key is taken from
// ServerRoot (quoted or not), never from the working directory.
TEST_F(ApacheConfig, RelativePathsAreUnderServerRoot) {
  // logs/ and run/ exist under ServerRoot only; a relative cache would be refused.
  h::RunResult r = ConfigTest("  CertGateCrl \"logs\" 'run'\n  CertGateCache relative-cache\n");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = ConfigTest("  CertGateTrustedIssuers \"ca/missing issuers.pem\"\n");
  EXPECT_NE(r.exit_code, 0);
  const std::string root = conf_.substr(0, conf_.rfind('/'));
  EXPECT_NE(r.err.find(root + "/ca/missing issuers.pem"), std::string::npos) << r.err;
}

// Every value is read, however many: httpd's own TAKE_ARGV splitting stops
// at 64 and drops the rest of the line, which would lose deny pins silently.
TEST_F(ApacheConfig, EveryValueOfALongLineIsRead) {
  std::string hosts;
  for (int i = 0; i < 70; ++i) hosts += " host" + std::to_string(i) + ".example";
  h::RunResult r = ConfigTest("  CertGateFetchAllow" + hosts + "\n");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = ConfigTest("  CertGateFetchAllow" + hosts + " bad/host\n");
  EXPECT_NE(r.exit_code, 0) << "the 71st value was not read";
  EXPECT_NE(r.err.find("bad/host"), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, ServerOnlyKeyRefusedInLocation) {
  h::RunResult r = ConfigTest("  <Location /x>\n    CertGateCache /tmp/cg\n  </Location>\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("CertGateCache"), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, RejectAtIsPerVirtualHost) {
  h::RunResult r = ConfigTest("  <Location /x>\n    CertGateRejectAt handshake\n  </Location>\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("CertGateRejectAt"), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, StatusOnAndOffPass) {
  h::RunResult r = ConfigTest(
      "  <Location /certgate-status>\n    CertGateStatus ON\n  </Location>\n"
      "  <Location /other>\n    CertGateStatus off\n  </Location>\n");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST_F(ApacheConfig, StatusBadValueNamesDirectiveAndValue) {
  int line = 0;
  h::RunResult r =
      ConfigTest("  <Location /certgate-status>\n    CertGateStatus maybe\n  </Location>\n", &line);
  EXPECT_NE(r.exit_code, 0);
  const std::string where = "line " + std::to_string(line + 1) + " of " + conf_;
  EXPECT_NE(r.err.find(where), std::string::npos) << "want [" << where << "] in:\n" << r.err;
  EXPECT_NE(r.err.find("CertGateStatus: \"maybe\""), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, StatusIsPerLocation) {
  h::RunResult r = ConfigTest("  CertGateStatus on\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("CertGateStatus"), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, BadSubjectRegexNamesFileAndLine) {
  int line = 0;
  h::RunResult r = ConfigTest("  CertGateSubject \"~a{77777777777777777777}\"\n", &line);
  EXPECT_NE(r.exit_code, 0);
  const std::string where = "line " + std::to_string(line) + " of " + conf_;
  EXPECT_NE(r.err.find(where), std::string::npos) << "want [" << where << "] in:\n" << r.err;
  EXPECT_NE(r.err.find("CertGateSubject: \"~a{77777777777777777777}\" is not a valid regular "
                       "expression: invalid repetition size: {77777777777777777777}"),
            std::string::npos)
      << r.err;
  r = ConfigTest("  <Location /x>\n    CertGateSubject \"~(a)\\1\"\n  </Location>\n", &line);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("line " + std::to_string(line + 1) + " of " + conf_), std::string::npos)
      << r.err;
  // (httpd's log doubles the backslash)
  EXPECT_NE(r.err.find("is not a valid regular expression: invalid escape sequence: \\"),
            std::string::npos)
      << r.err;
}

TEST_F(ApacheConfig, WrongArgumentCount) {
  h::RunResult r = ConfigTest("  CertGate\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Syntax error"), std::string::npos) << r.err;
}

// ---- ApacheRevocation: CRLs, OCSP, the shared cache ----
//
// One mpm_event apache2 with a virtual host per scenario, each with its own
// CertGateCache (created by mod_certgate in the parent and given to the child
// user), so one scenario's cached data never answers another's. The CDP is a
// real HTTP server (Debian's nginx via h::CrlServer) serving a copy of the demo
// PKI's www/; the OCSP responder is `openssl ocsp` (h::OcspResponder). Tests
// run in definition order; the CRL refresh test comes last because it publishes
// a CRL that revokes `good`.

enum : int {
  kRevCrl = 0,    // hard_fail, CRLs, scope chain; /norev without revocation
  kRevDown,       // hard_fail (wait 1500ms), CRLs; /soft soft_fail
  kRevHang,       // no revocation at /, hard_fail (wait 2s) at /slow
  kRevCacheOnly,  // cache_only with CertGateCrl crl/intermediate.crl
  kRevOcsp,       // hard_fail, OCSP only
  kRevUpdate,     // hard_fail, CRLs: refresh and resumption
  kRevPrefork = 10,
};
constexpr int kRevBase = 18530;
// EveryCdpFaultKeepsTheCachedCrl: one virtual host per place of the drill, in
// the order of h::CdpFaultPlaces().
constexpr int kRevFaultBase = 18570;
constexpr int kCdpPort = 18080;
constexpr int kOcspPort = 18081;

// The Example Issuing CA of the demo PKI, to sign newer CRLs.
// A DER CRL of the Example Issuing CA revoking the named demo clients
// (keyCompromise, an hour ago). "" on failure.
std::string IntermediateCrl(const std::string &pki, const std::vector<std::string> &names,
                            int64_t number, int64_t this_update, int64_t next_update) {
  const int64_t now = time(nullptr);
  certgate::pki::Issued ca = h::LoadDemoIssuingCa(pki);
  if (!ca) return "";
  std::vector<certgate::pki::PkiBuilder::Revoked> revoked;
  for (const std::string &name : names) {
    const std::string serial = h::DemoSerial(pki, name);
    if (serial.empty()) return "";
    revoked.push_back({std::stoull(serial, nullptr, 16), now - 3600, CRL_REASON_KEY_COMPROMISE});
  }
  certgate::pki::PkiBuilder builder(now);
  std::shared_ptr<X509_CRL> crl = builder.Crl(ca, revoked, number, this_update, next_update);
  if (!crl) return "";
  unsigned char *der = nullptr;
  const int len = i2d_X509_CRL(crl.get(), &der);
  if (len <= 0) return "";
  std::string out(reinterpret_cast<char *>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

int64_t MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

class ApacheRevocation : public ::testing::Test {
 protected:
  struct Shared {
    std::unique_ptr<h::TempDir> dir;  // CDP workdir, its docroot, the OCSP log
    std::unique_ptr<h::CrlServer> cdp;
    std::unique_ptr<Apache> server;
    std::string error;
  };
  static Shared &S() {
    static Shared shared;
    return shared;
  }

  static std::string Vhosts(const std::string &root) {
    const std::string pki = SharedPki().path;
    auto cache = [&root](const char *name) {
      return "  CertGateCache " + root + "/cache-" + name + "\n";
    };
    const std::string crl =
        "  CertGate require\n  CertGateRevocation hard_fail\n"
        "  CertGateRevocationSources crl\n";
    return VirtualHost(kRevBase + kRevCrl, "optional_no_ca",
                       crl + cache("crl") +
                           "  <Location /norev>\n    CertGateRevocation off\n  </Location>\n") +
           VirtualHost(
               kRevBase + kRevDown, "optional_no_ca",
               crl + cache("down") +
                   "  CertGateRevocationScope leaf\n  CertGateRevocationWait 1500ms\n"
                   "  CertGateFetchTimeout 1s\n"
                   "  <Location /soft>\n    CertGateRevocation soft_fail\n  </Location>\n") +
           VirtualHost(kRevBase + kRevHang, "optional_no_ca",
                       "  CertGate require\n" + cache("hang") +
                           "  <Location /slow>\n    CertGateRevocation hard_fail\n"
                           "    CertGateRevocationSources crl\n    CertGateRevocationScope leaf\n"
                           "    CertGateRevocationWait 2s\n    CertGateFetchTimeout 8s\n"
                           "  </Location>\n") +
           VirtualHost(kRevBase + kRevCacheOnly, "optional_no_ca",
                       "  CertGate require\n  CertGateRevocation cache_only\n"
                       "  CertGateRevocationScope leaf\n  CertGateCrl " +
                           pki + "/crl/intermediate.crl\n" + cache("cacheonly")) +
           VirtualHost(kRevBase + kRevOcsp, "optional_no_ca",
                       "  CertGate require\n  CertGateRevocation hard_fail\n"
                       "  CertGateRevocationSources ocsp\n  CertGateRevocationScope leaf\n"
                       "  CertGateRevocationWait 3s\n" +
                           cache("ocsp")) +
           VirtualHost(kRevBase + kRevUpdate, "optional_no_ca",
                       crl + "  CertGateRevocationScope leaf\n" + cache("update")) +
           FaultVhosts(root);
  }

  // A virtual host per place of the CDP fault drill, each with its own cache
  // (a URL's backoff lives in the cache): hard_fail, CRLs only, leaf only.
  static std::string FaultVhosts(const std::string &root) {
    std::string out;
    for (const h::CdpFaultPlace &place : h::CdpFaultPlaces()) {
      const std::string extra =
          place.key.empty() ? "" : "  " + ApacheDirective(place.key) + " " + place.value + "\n";
      out += VirtualHost(FaultPort(place.name), "optional_no_ca",
                         "  CertGate require\n  CertGateRevocation hard_fail\n"
                         "  CertGateRevocationSources crl\n  CertGateRevocationScope leaf\n" +
                             extra + "  CertGateCache " + FaultCache(root, place.name) + "\n");
    }
    return out;
  }
  static int FaultPort(const std::string &place) {
    const std::vector<h::CdpFaultPlace> &places = h::CdpFaultPlaces();
    for (size_t i = 0; i < places.size(); ++i) {
      if (places[i].name == place) return kRevFaultBase + static_cast<int>(i);
    }
    return 0;
  }
  static std::string FaultCache(const std::string &root, const std::string &place) {
    return root + "/cache-fault-" + place;
  }
  // "fetch_max_size" -> "CertGateFetchMaxSize".
  static std::string ApacheDirective(const std::string &key) {
    std::string out = "CertGate";
    bool word_start = true;
    for (char c : key) {
      if (c == '_') {
        word_start = true;
        continue;
      }
      out += word_start ? static_cast<char>(toupper(static_cast<unsigned char>(c))) : c;
      word_start = false;
    }
    return out;
  }

  static void SetUpTestSuite() {
    Shared &s = S();
    if (!SharedPki().error.empty()) {
      s.error = "PKI generation failed: " + SharedPki().error;
      return;
    }
    // The CDP and OCSP ports are fixed by the certificates: another suite (the
    // nginx revocation tests) must not be using them.
    if (h::PortOpen(kCdpPort) || h::PortOpen(kOcspPort)) {
      s.error = "ports 18080/18081 are in use (another revocation suite running?)";
      return;
    }
    s.dir = std::make_unique<h::TempDir>("certgate-apache-rev");
    const std::string www = s.dir->path() + "/www";
    h::MakeDirs(www);
    for (const char *file : {"intermediate.crl", "root.crl", "intermediate.crt", "root.crt"}) {
      h::WriteFile(www + "/" + file, h::ReadFile(SharedPki().path + "/www/" + file));
    }
    s.cdp = std::make_unique<h::CrlServer>();
    s.error = s.cdp->Start(s.dir->path() + "/cdp", www, kCdpPort);
    if (!s.error.empty()) return;
    s.server = std::make_unique<Apache>("event");
    s.error = s.server->Start(Vhosts(s.server->root()), kRevBase + kRevUpdate);
  }
  static void TearDownTestSuite() {
    S().server.reset();
    S().cdp.reset();
    S().dir.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(S().error.empty()) << S().error;
    server_ = S().server.get();
    cdp_ = S().cdp.get();
  }

  static int Port(int which) { return kRevBase + which; }

  // The access-log line of the request tagged `tag` (as "?tag" in its path).
  static std::string AccessLine(h::LogTail &access, const std::string &tag) {
    const std::string needle = "?" + tag + " ";
    bool found = false;
    const std::string text = access.WaitFor(needle, 5000, &found);
    auto lines = h::GrepLines(text, {needle});
    return lines.empty() ? "(no line with " + needle + " in:\n" + text + ")" : lines.back();
  }
  // The certgate error-log line that contains every needle.
  static std::string ErrorLine(h::LogTail &errors, const std::vector<std::string> &needles) {
    bool found = false;
    const std::string text = errors.WaitFor(needles.front(), 5000, &found);
    auto lines = h::GrepLines(text, needles);
    return lines.empty() ? "" : lines.back();
  }

  Apache *server_ = nullptr;
  h::CrlServer *cdp_ = nullptr;
};

const char *const kCdpUrl = "http://127.0.0.1:18080/intermediate.crl";

TEST_F(ApacheRevocation, CacheDirectoryCreatedForTheChildUser) {
  // The first request of a virtual host opens its cache in the child.
  EXPECT_EQ(Get(Port(kRevCrl), "/norev/", "good").status, 200);
  for (const char *name : {"crl", "down", "hang", "cacheonly", "ocsp", "update"}) {
    SCOPED_TRACE(name);
    const std::string dir = server_->root() + "/cache-" + name;
    struct stat st {};
    ASSERT_EQ(stat(dir.c_str(), &st), 0) << dir;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    if (geteuid() == 0) {
      EXPECT_NE(st.st_uid, 0u) << "the cache must belong to the child user (nobody)";
    }
  }
}

TEST_F(ApacheRevocation, RevokedByCdpCrlIsRefusedNamingTheCrl) {
  h::LogTail errors(server_->error_log());
  h::LogTail access(server_->access_log());
  const Reply reply = Get(Port(kRevCrl), "/?crl-revoked", "revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  const std::string line = ErrorLine(errors, {"reason=revoked"});
  EXPECT_NE(line.find("[certgate:error]"), std::string::npos) << line;
  EXPECT_NE(line.find(kCdpUrl), std::string::npos) << line;
  EXPECT_NE(line.find("crl_number=1"), std::string::npos) << line;
  EXPECT_NE(line.find("keyCompromise"), std::string::npos) << line;
  EXPECT_NE(line.find("revoked 20"), std::string::npos) << "revocation date: " << line;
  EXPECT_NE(AccessLine(access, "crl-revoked").find("403 reason=revoked substatus=403.13"),
            std::string::npos)
      << AccessLine(access, "crl-revoked");
}

TEST_F(ApacheRevocation, GoodByCdpCrlIsAllowedWithRevocationVariable) {
  h::LogTail access(server_->access_log());
  const Reply reply = Get(Port(kRevCrl), "/?crl-good", "good");
  EXPECT_EQ(reply.status, 200) << reply.raw;
  const std::string line = AccessLine(access, "crl-good");
  EXPECT_NE(
      line.find("verdict=allow revocation=\"good crl " + std::string(kCdpUrl) + " crl_number=1"),
      std::string::npos)
      << line;
  // Scope chain: the intermediate was checked against root.crl as well.
  EXPECT_FALSE(cdp_->Requests("/root.crl").empty());
}

TEST_F(ApacheRevocation, CdpDownHardFailIsUnavailableWithinTheWait) {
  cdp_->Stop();  // connection refused
  h::LogTail errors(server_->error_log());
  const auto start = std::chrono::steady_clock::now();
  const Reply reply = Get(Port(kRevDown), "/?down-hard", "good");
  const int64_t elapsed = MillisSince(start);
  const std::string restart = cdp_->Start(S().dir->path() + "/cdp", cdp_->docroot(), kCdpPort);
  EXPECT_EQ(restart, "");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revocation_unavailable", "403.13"));
  EXPECT_LT(elapsed, 1500 + 1500) << "CertGateRevocationWait 1500ms + slack";
  const std::string line = ErrorLine(errors, {"reason=revocation_unavailable"});
  EXPECT_NE(line.find("[certgate:error]"), std::string::npos) << line;
  EXPECT_NE(line.find(kCdpUrl), std::string::npos) << line;
  EXPECT_NE(line.find("hard_fail"), std::string::npos) << line;
  EXPECT_TRUE(line.find("refused") != std::string::npos ||
              line.find("connect") != std::string::npos)
      << "the error of the URL: " << line;
  std::cerr << "[ info ] hard_fail with the CDP down answered in " << elapsed << " ms\n";
}

TEST_F(ApacheRevocation, CdpDownSoftFailIsAllowedWithWarning) {
  cdp_->SetFault(h::CrlServer::Fault::k500, "/intermediate.crl");
  h::LogTail errors(server_->error_log());
  h::LogTail access(server_->access_log());
  const Reply reply = Get(Port(kRevDown), "/soft/?down-soft", "good");
  cdp_->SetFault(h::CrlServer::Fault::kNone);
  EXPECT_EQ(reply.status, 200) << reply.raw;
  const std::string line = ErrorLine(errors, {"[certgate:warn]", "verdict=allow"});
  EXPECT_NE(line.find("soft_fail"), std::string::npos) << line;
  EXPECT_NE(AccessLine(access, "down-soft").find("verdict=allow revocation=\"unknown"),
            std::string::npos)
      << AccessLine(access, "down-soft");
}

TEST_F(ApacheRevocation, HangingCdpDelaysOnlyTheWaitingRequest) {
  cdp_->SetFault(h::CrlServer::Fault::kHang, "/intermediate.crl");
  h::LogTail errors(server_->error_log());
  const auto start = std::chrono::steady_clock::now();
  auto slow = std::async(std::launch::async, [] {
    const auto begin = std::chrono::steady_clock::now();
    Reply reply = Get(Port(kRevHang), "/slow/?hang-slow", "good");
    return std::make_pair(reply, MillisSince(begin));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int64_t worst = 0;
  int answered = 0;
  while (MillisSince(start) < 1800) {
    const auto begin = std::chrono::steady_clock::now();
    if (Get(Port(kRevHang), "/?hang-fast", "good").status == 200) ++answered;
    worst = std::max(worst, MillisSince(begin));
  }
  const auto [reply, elapsed] = slow.get();
  cdp_->SetFault(h::CrlServer::Fault::kNone);
  EXPECT_GE(answered, 3);
  EXPECT_LT(worst, 500) << "a request without revocation waited for the hung CDP";
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revocation_unavailable", "403.13"));
  EXPECT_GE(elapsed, 1900);
  EXPECT_LT(elapsed, 2000 + 1500) << "CertGateRevocationWait 2s + slack";
  const std::string line = ErrorLine(errors, {"reason=revocation_unavailable"});
  EXPECT_NE(line.find(kCdpUrl), std::string::npos) << line;
  std::cerr << "[ info ] hung CDP: " << answered << " other requests, slowest " << worst
            << " ms; the waiting request answered in " << elapsed << " ms\n";
}

TEST_F(ApacheRevocation, CacheOnlyWithPreloadedCrlNeverFetches) {
  const size_t before = cdp_->Requests().size();
  h::LogTail errors(server_->error_log());
  h::LogTail access(server_->access_log());
  Reply reply = Get(Port(kRevCacheOnly), "/?cacheonly-revoked", "revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  const std::string line = ErrorLine(errors, {"reason=revoked"});
  EXPECT_NE(line.find("crl/intermediate.crl"), std::string::npos) << line;
  reply = Get(Port(kRevCacheOnly), "/?cacheonly-good", "good");
  EXPECT_EQ(reply.status, 200) << reply.raw;
  EXPECT_NE(AccessLine(access, "cacheonly-good").find("revocation=\"good crl "), std::string::npos)
      << AccessLine(access, "cacheonly-good");
  EXPECT_EQ(cdp_->Requests().size(), before) << "cache_only must not fetch";
}

TEST_F(ApacheRevocation, OcspResponderRevokedAndGood) {
  h::OcspResponder ocsp;
  ASSERT_EQ(ocsp.Start(SharedPki().path, kOcspPort, S().dir->path() + "/ocsp.log"), "");
  // (No WaitForPort: a connection without a request stalls openssl ocsp.)
  h::LogTail errors(server_->error_log());
  h::LogTail access(server_->access_log());
  Reply reply = Get(Port(kRevOcsp), "/?ocsp-revoked", "revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw << h::ReadFile(S().dir->path() + "/ocsp.log");
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  const std::string line = ErrorLine(errors, {"reason=revoked"});
  EXPECT_NE(line.find("ocsp http://127.0.0.1:18081"), std::string::npos) << line;
  reply = Get(Port(kRevOcsp), "/?ocsp-good", "good");
  EXPECT_EQ(reply.status, 200) << reply.raw;
  EXPECT_NE(AccessLine(access, "ocsp-good").find("revocation=\"good ocsp http://127.0.0.1:18081"),
            std::string::npos)
      << AccessLine(access, "ocsp-good");
}

TEST_F(ApacheRevocation, PreforkRevokedByCdpCrl) {
  Apache prefork("prefork");
  const int port = kRevBase + kRevPrefork;
  ASSERT_EQ(prefork.Start(VirtualHost(port, "optional_no_ca",
                                      "  CertGate require\n  CertGateRevocation hard_fail\n"
                                      "  CertGateRevocationSources crl\n  CertGateCache " +
                                          prefork.root() + "/cache\n"),
                          port),
            "");
  h::LogTail errors(prefork.error_log());
  const Reply reply = Get(port, "/", "revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  EXPECT_NE(ErrorLine(errors, {"reason=revoked"}).find(kCdpUrl), std::string::npos);
  EXPECT_EQ(Get(port, "/", "good").status, 200);
}

TEST_F(ApacheRevocation, UnusableCacheDirectoryFailsConfigTest) {
  Apache apache("event");
  ASSERT_EQ(apache.Write(VirtualHost(18549, "optional_no_ca",
                                     "  CertGate require\n  CertGateCache /proc/certgate-cache\n"
                                     "  <Location /x>\n    CertGateRevocation hard_fail\n"
                                     "  </Location>\n")),
            "");
  h::RunResult r = h::Run(
      {"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/bin", kApache, "-t", "-f", apache.conf()});
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("/proc/certgate-cache"), std::string::npos) << r.err;
  // Without revocation the directory is not needed, so not checked.
  ASSERT_EQ(apache.Write(VirtualHost(18549, "optional_no_ca",
                                     "  CertGate require\n  CertGateCache /proc/certgate-cache\n")),
            "");
  r = h::Run(
      {"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/bin", kApache, "-t", "-f", apache.conf()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

// h::RunCdpFaultDrill at the virtual hosts 18570..: every fault of the CDP
// (HTTP 500, HTML, truncated, oversized, forged, rolled back, timeout,
// connection refused) leaves the cached CRL in force, and past nextUpdate +
// CertGateMaxStale it is revocation_stale. mpm_event with up to two children:
// the fetch state the drill polls is in each virtual host's shared store.
TEST_F(ApacheRevocation, EveryCdpFaultKeepsTheCachedCrl) {
  const std::string root = server_->root();
  h::LogTail access(server_->access_log());
  // httpd's error-log lines do not name the request: a refusal's (or a
  // warning's) line is the first certgate decision logged after its request
  // began (they run one at a time, and the line is written before the answer).
  std::map<std::string, h::LogTail> errors_since;
  h::CdpFaultServer drill;
  drill.get = [&](const std::string &place, const std::string &client, const std::string &tag) {
    errors_since.emplace(tag, h::LogTail(server_->error_log()));
    const Reply reply = Get(FaultPort(place), "/?" + tag, client);
    return h::CdpFaultServer::Answer{reply.status, reply.body};
  };
  drill.cache_dir = [&](const std::string &place) { return FaultCache(root, place); };
  drill.access_line = [&](const std::string &tag) { return AccessLine(access, tag); };
  drill.refusal_line = [&](const std::string &tag) -> std::string {
    auto it = errors_since.find(tag);
    if (it == errors_since.end()) return "";
    const std::vector<std::string> lines =
        h::GrepLines(it->second.WaitFor("verdict=", 3000), {"[certgate:", "verdict="});
    return lines.empty() ? "" : lines.front();
  };
  drill.max_stale_name = "CertGateMaxStale";
  drill.fail = [](const std::string &problem) { ADD_FAILURE() << problem; };
  h::RunCdpFaultDrill(*cdp_, SharedPki().path, S().dir->path() + "/faults", drill);

  // The drill leaves the CDP down with its own CRL: back to the demo CRL.
  cdp_->SetFault(h::CrlServer::Fault::kNone);
  if (!cdp_->Running()) {
    EXPECT_EQ(cdp_->Start(S().dir->path() + "/cdp", cdp_->docroot(), kCdpPort), "");
  }
  EXPECT_TRUE(cdp_->PublishFile("intermediate.crl", SharedPki().path + "/www/intermediate.crl"));
}

// Last: publishes CRLs revoking `good` at the CDP.
TEST_F(ApacheRevocation, ZZNewerCrlAtCdpRevokesWithoutRestartAlsoForResumedSessions) {
  const std::string pki = SharedPki().path;
  const int64_t now = time(nullptr);
  // crlNumber 2, nextUpdate in 5 minutes: inside the refresh-ahead window
  // (10% of the validity before nextUpdate), so every lookup schedules a
  // background conditional GET of the CDP.
  const std::string second = IntermediateCrl(pki, {"revoked"}, 2, now - 3600, now + 300);
  ASSERT_FALSE(second.empty());
  ASSERT_TRUE(cdp_->Publish("intermediate.crl", second));

  // Sessions of `good` made while it is still good.
  const std::string base = pki + "/clients/good";
  const std::string connect = "127.0.0.1:" + std::to_string(Port(kRevUpdate));
  const std::string request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  for (const char *version : {"-tls1_2", "-tls1_3"}) {
    SCOPED_TRACE(version);
    h::RunResult first =
        h::Run({"openssl", "s_client", version, "-connect", connect, "-servername", "localhost",
                "-cert", base + ".crt", "-cert_chain", base + ".chain.pem", "-key", base + ".key",
                "-sess_out", server_->root() + "/session" + version + ".pem", "-ign_eof"},
               {}, request, 20000);
    Reply reply;
    ParseHttp(first.out, &reply);
    EXPECT_EQ(reply.status, 200) << first.out << first.err;
  }
  h::LogTail access(server_->access_log());
  EXPECT_EQ(Get(Port(kRevUpdate), "/?update-before", "good").status, 200);
  EXPECT_NE(AccessLine(access, "update-before").find("crl_number=2"), std::string::npos)
      << AccessLine(access, "update-before");

  // crlNumber 3 revokes `good`; apache2 is not touched.
  const std::string third = IntermediateCrl(pki, {"revoked", "good"}, 3, now - 60, now + 7 * 86400);
  ASSERT_FALSE(third.empty());
  ASSERT_TRUE(cdp_->Publish("intermediate.crl", third));
  const auto start = std::chrono::steady_clock::now();
  Reply reply;
  int tries = 0;
  while (MillisSince(start) < 10000) {
    ++tries;
    reply = Get(Port(kRevUpdate), "/?update-after", "good");
    if (reply.status == 403) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  std::cerr << "[ info ] the newer CRL revoked `good` after " << MillisSince(start) << " ms, "
            << tries << " requests\n";
  h::LogTail errors(server_->error_log());
  // A resumed session of `good` (handshake made before the revocation).
  for (const char *version : {"-tls1_2", "-tls1_3"}) {
    SCOPED_TRACE(version);
    h::RunResult second_run =
        h::Run({"openssl", "s_client", version, "-connect", connect, "-servername", "localhost",
                "-sess_in", server_->root() + "/session" + version + ".pem", "-ign_eof"},
               {}, request, 20000);
    EXPECT_NE(second_run.out.find("\nReused, "), std::string::npos)
        << second_run.out << second_run.err;
    Reply resumed;
    ParseHttp(second_run.out, &resumed);
    EXPECT_EQ(resumed.status, 403) << second_run.out;
    // s_client prints its session details after the body.
    EXPECT_EQ(resumed.body.rfind(TextBody("revoked", "403.13"), 0), 0u) << resumed.body;
  }
  const std::string line = ErrorLine(errors, {"reason=revoked", "CN=alice"});
  EXPECT_NE(line.find("crl_number=3"), std::string::npos) << line;
}

// Last (it restarts httpd). Issue 9 §4, h::RunDamagedCacheDrill at the
// cache_only virtual host: several children find the damaged store at once;
// one moves it aside, the others open the new one.
TEST_F(ApacheRevocation, ZZZDamagedCacheIsMovedAsideOnceAndTheRevokedStaysRefused) {
  h::DamagedCacheServer server;
  server.get = [&](const std::string &client, const std::string &tag) {
    Reply r = Get(Port(kRevCacheOnly), "/?" + tag, client);
    return h::DamagedCacheServer::Answer{r.status, r.body};
  };
  server.cache_dir = server_->root() + "/cache-cacheonly";
  server.stop = [&] { server_->Stop(); };
  server.start = [&] { return server_->Start(Vhosts(server_->root()), kRevBase + kRevUpdate); };
  server.logs = [&] {
    return h::ReadFile(server_->error_log()) + h::ReadFile(server_->root() + "/stderr.log");
  };
  server.fail = [](const std::string &problem) { ADD_FAILURE() << problem; };
  h::RunDamagedCacheDrill(server);
}

}  // namespace
