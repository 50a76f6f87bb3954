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
//   ApacheRevocation 18530-18540 (event) / 18541 (prefork), 18570-18578 (event,
//                    one virtual host per CDP fault of the fault drill): CRLs
//                    from the CDP (h::CrlServer on 18080), OCSP
//                    (h::OcspResponder on 18081), preloaded CRLs, faults,
//                    refresh, resumption, the cache dir.
// apache_crash_test.cc (ApacheCrash) uses 18580-18582; apache_ldap_test.cc
// (ApacheLdap) 18583-18587 and a slapd on 18389.
//
// apache_test_fixture.h: what the suites share (the demo PKI, the clients, one
// apache2 instance); apache_reasons_test.cc, apache_behaviour_test.cc,
// apache_config_test.cc and apache_revocation_test.cc: one suite each.
#ifndef CERTGATE_TESTS_INTEGRATION_APACHE_TEST_FIXTURE_H
#define CERTGATE_TESTS_INTEGRATION_APACHE_TEST_FIXTURE_H

#include <harness.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace certgate_apache_test {

namespace h = certgate::harness;

inline const char *const kApache = CERTGATE_APACHE_BINARY;
inline const char *const kModules = CERTGATE_APACHE_MODULES_DIR;
inline const char *const kModule = CERTGATE_APACHE_MODULE_PATH;

// ---- the demo PKI, generated once per process ----

struct Pki {
  std::unique_ptr<h::TempDir> dir;
  std::string path;  // DIR/pki
  std::string weak_openssl_conf;
  std::map<std::string, std::string> sha256;  // client name -> "sha256:<hex>"
  std::string error;
};

Pki &SharedPki();

// ---- talking to the server ----

struct Reply {
  int exit_code = -1;  // of the client
  int status = 0;      // HTTP status, 0 when there was no HTTP answer
  std::string content_type;
  std::string body;
  std::string raw;  // client stdout + stderr, for messages
};

// Splits "HTTP/1.1 403 Forbidden\r\nHeaders...\r\n\r\nbody" found anywhere in `out`.
void ParseHttp(const std::string &out, Reply *reply);

enum class Client { kCurl, kCurlWeak, kSClient };

// GET https://127.0.0.1:port/path with client certificate `cert` ("" = none).
Reply Get(int port, const std::string &path, const std::string &cert,
          Client client = Client::kCurl);

// `method` (POST, HEAD, ...) on https://127.0.0.1:port/path, without a client
// certificate.
Reply Request(int port, const std::string &path, const std::string &method);

// The CertGateStatus page's samples: "name{labels}" -> value. Empty when the
// page does not parse (a line that is neither a comment nor "sample value").
std::map<std::string, uint64_t> Counters(const std::string &page);

std::string Decisions(const std::string &verdict, const std::string &reason);
std::string TextBody(const std::string &reason, const std::string &substatus);

// ---- one apache2 instance ----

std::string MpmBlock(const std::string &mpm);
// `SSLVerifyClient` is left out when verify_client is empty.
std::string VirtualHost(int port, const std::string &verify_client, const std::string &body);

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

inline int BasePort(const std::string &mpm, int event_port, int prefork_port) {
  return mpm == "prefork" ? prefork_port : event_port;
}

}  // namespace certgate_apache_test

#endif  // CERTGATE_TESTS_INTEGRATION_APACHE_TEST_FIXTURE_H
