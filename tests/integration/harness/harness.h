// certgate integration-test harness: processes, ports, TLS clients, files.
//
// Shared by tests/integration/nginx and tests/integration/apache. Everything is
// synchronous and POSIX; nothing here knows about a particular server.
//
//   certgate::harness::TempDir dir("nginx");            // mkdtemp, removed at exit
//   std::string pki = certgate::harness::GeneratePki(dir.path() + "/pki");
//   certgate::harness::Process server;
//   server.Start({"/usr/sbin/nginx", "-p", dir.path(), "-c", conf},
//                dir.path() + "/stdout.log", dir.path() + "/stderr.log");
//   ASSERT_TRUE(certgate::harness::WaitForPort(18401, 10000));
//   auto r = certgate::harness::Run({"curl", "-sk", "https://127.0.0.1:18401/"});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
//   certgate::harness::LogTail log(dir.path() + "/error.log");   // from the end
//   ... log.WaitFor("reason=expired", 2000) ...
//   server.Stop(SIGQUIT, 10000);                         // SIGKILL fallback
//
// Paths of build products come from compile definitions set by CMake (see
// CMakeLists.txt): CERTGATE_MKPKI_PATH (certgate-mkpki); a server's test adds
// its own module path.
#ifndef CERTGATE_TESTS_INTEGRATION_HARNESS_H
#define CERTGATE_TESTS_INTEGRATION_HARNESS_H

#include <pki_builder.h>
#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::harness {

// ---- processes ----

// The outcome of a finished command. exit_code is the exit status, 128 + N when
// killed by signal N, -1 when it could not be started (`err` says why), and
// -2 when it ran past its timeout (it is killed).
struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv[0] (searched in PATH) with `env` ("NAME=value") added to this
// process's environment, `input` written to its stdin, and collects stdout and
// stderr. Never throws.
RunResult Run(const std::vector<std::string> &argv, const std::vector<std::string> &env = {},
              std::string_view input = {}, int timeout_ms = 30000);

// Sanitizer builds (scripts/sanitize.sh): nginx and httpd are not instrumented,
// so a module built with ASan needs the runtime preloaded. When
// CERTGATE_TEST_SERVER_PRELOAD names it (e.g. /usr/lib/x86_64-linux-gnu/libasan.so.8),
// Run() and Process::Start() run nginx/apache2 (also behind `env -i`) with
// LD_PRELOAD, ASAN_OPTIONS and UBSAN_OPTIONS (CERTGATE_TEST_SERVER_ASAN_OPTIONS /
// _UBSAN_OPTIONS, or defaults that abort on the first report and write it to
// CERTGATE_TEST_SANITIZER_LOG_DIR). Any report file written there while a test
// program runs fails that program. Unset: argv unchanged.
std::vector<std::string> WithServerSanitizer(const std::vector<std::string> &argv);

// A child process (a server under test). Not copyable; the destructor kills
// (SIGKILL) and reaps a child that is still running.
class Process {
 public:
  Process() = default;
  ~Process();
  Process(const Process &) = delete;
  Process &operator=(const Process &) = delete;

  // Starts argv with stdout/stderr appended to the given files ("" = /dev/null).
  // Returns false (and sets error()) when fork/exec fails.
  bool Start(const std::vector<std::string> &argv, const std::string &stdout_path = "",
             const std::string &stderr_path = "", const std::vector<std::string> &env = {});
  pid_t pid() const { return pid_; }
  bool Running();              // reaps it if it has exited
  bool Signal(int sig) const;  // kill(pid, sig)
  // Waits up to timeout_ms for the child to exit; returns its exit code as in
  // RunResult, or -2 on timeout (the child is left running).
  int Wait(int timeout_ms);
  // Sends `sig`, waits up to timeout_ms, then SIGKILL. Returns the exit code.
  int Stop(int sig, int timeout_ms);
  const std::string &error() const { return error_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string error_;
};

// The pids of `pid`'s descendants (children, their children, ...), from /proc.
std::vector<pid_t> Descendants(pid_t pid);
// Sends `sig` to `pid` and every descendant it has now, e.g. SIGKILL to
// an nginx master and its workers, as if the host had died mid-fetch.
void SignalTree(pid_t pid, int sig);

// ---- network ----

// Polls until something accepts TCP connections on 127.0.0.1:port.
bool WaitForPort(int port, int timeout_ms);
// Whether a TCP connect to 127.0.0.1:port succeeds now.
bool PortOpen(int port);

// What curl got for one HTTPS request.
struct CurlAnswer {
  int curl_exit = -1;  // as RunResult::exit_code
  int status = 0;      // 0: no HTTP answer
  std::string body;
  std::string err;  // curl's stderr
  int ms = 0;       // how long curl took
};
// GETs `url` with curl as the demo PKI's client `client` (pki/clients/CLIENT
// .chain.pem and .key; "" = no certificate), without checking the server's
// certificate, giving up after max_time_s. `curl_args` are added (e.g.
// "--http1.1").
CurlAnswer CurlAsClient(const std::string &url, const std::string &pki, const std::string &client,
                        double max_time_s = 60, const std::vector<std::string> &curl_args = {});

// "" when `body` is a JSON refusal body (parsed by python3's json) whose
// reason is `reason`; else what is wrong with it.
std::string JsonRefusalProblem(const std::string &body, const std::string &reason);

// ---- files ----

std::string ReadFile(const std::string &path);  // "" when it cannot be read
bool WriteFile(const std::string &path, std::string_view content);
bool MakeDirs(const std::string &path, mode_t mode = 0755);
// chmod -R a+rX: servers drop privileges (nobody) and must read certs, docroots.
bool MakeWorldReadable(const std::string &path);
int64_t FileSize(const std::string &path);  // -1 when missing

// Reads what was appended to a file (an error or access log) since a mark.
class LogTail {
 public:
  // Starts at the current end of the file (0 if it does not exist yet).
  explicit LogTail(std::string path);
  // Moves the mark to the current end.
  void Skip();
  // Everything appended since the mark; moves the mark.
  std::string ReadNew();
  // Polls (every 20 ms) until the text appended since the mark contains `needle`
  // (does not move the mark). Returns the new text seen so far either way;
  // *found says whether it appeared.
  std::string WaitFor(std::string_view needle, int timeout_ms, bool *found = nullptr);

 private:
  std::string path_;
  int64_t offset_ = 0;
};

// Lines of `text` that contain every one of `needles`.
std::vector<std::string> GrepLines(const std::string &text,
                                   const std::vector<std::string> &needles);
// The last line of the file at `path` that contains every one of `needles`,
// polling (every 20 ms) until there is one; "" after timeout_ms. For a log line
// a request writes a moment after its response.
std::string WaitForLine(const std::string &path, const std::vector<std::string> &needles,
                        int timeout_ms = 3000);

// A fresh directory under $TMPDIR (or /tmp), mode 0755. Removed (rm -rf) by the
// destructor unless CERTGATE_KEEP_TMP is set in the environment.
class TempDir {
 public:
  explicit TempDir(const std::string &prefix = "certgate");
  ~TempDir();
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }
  bool ok() const { return !path_.empty(); }

 private:
  std::string path_;
};

// ---- build products and tools ----

// certgate-mkpki from this build (compile definition CERTGATE_MKPKI_PATH).
std::string MkpkiPath();
// Runs `certgate-mkpki --out dir [--now now]` and makes the result world
// readable. Returns "" on success, else the tool's error output.
std::string GeneratePki(const std::string &dir, int64_t now = 0);
// Full path of an executable found in PATH, /usr/sbin or /sbin; "" if none.
std::string FindProgram(const std::string &name);

// Writes an OpenSSL config that lowers the client's security level to 0, so
// curl/openssl can load and send deliberately weak certificates (RSA-1024,
// SHA-1). Use it as OPENSSL_CONF=<path> in Run()'s env. Returns the path.
std::string WriteWeakClientOpensslConf(const std::string &dir);

// The top of an nginx.conf for a test instance living in `dir`: foreground,
// pid and temp paths in `dir`, the given `error_log` lines ("PATH [LEVEL]"),
// and the opening "http {" line.
std::string NginxConfigHead(const std::string &dir, int workers,
                            const std::vector<std::string> &error_logs,
                            int worker_connections = 256);

// ---- revocation servers (CDP / OCSP) ----
//
// Shared by the revocation suites of every server. The demo PKI's certificates
// name http://127.0.0.1:18080/ (CDP + caIssuers: serve DIR/www) and
// http://127.0.0.1:18081/ (OCSP), so those are the ports to use with it; the
// suites using them must be RUN_SERIAL.
//
//   h::CrlServer cdp;                                    // Debian's nginx, plain HTTP
//   ASSERT_EQ(cdp.Start(dir + "/cdp", pki + "/www", 18080), "");
//   cdp.Publish("intermediate.crl", der);                // atomic swap, no reload
//   cdp.SetFault(h::CrlServer::Fault::kHang);            // every path hangs ...
//   cdp.SetFault(h::CrlServer::Fault::k500, "/intermediate.crl");  // ... or one path
//   cdp.SetFault(h::CrlServer::Fault::kNone);            // clears every fault
//   cdp.Requests("/intermediate.crl");                   // access-log lines for it
//   cdp.Stop();                                          // connection refused from now
//
//   h::OcspResponder ocsp;                               // `openssl ocsp -port`
//   ASSERT_EQ(ocsp.Start(pki, 18081, dir + "/ocsp.log"), "");
//
//   h::Blackhole hole;                                   // accepts TCP, never answers
//   ASSERT_TRUE(hole.Listen(18081));                     // e.g. a hung OCSP responder

// A plain-HTTP file server on 127.0.0.1:port: Debian's /usr/sbin/nginx (no
// certgate module) serving `docroot` with its own prefix under `workdir`.
// Static files get ETag/Last-Modified and answer conditional GETs with 304.
// Faults are switched by flag files the server stats on every request, so they
// take effect at once, without a reload. Stop() (SIGTERM) also cuts hung
// requests; the destructor stops it.
class CrlServer {
 public:
  enum class Fault {
    kNone,  // serve the file (404 when missing)
    k500,   // "500 Internal Server Error" (nginx's HTML page)
    kHtml,  // 200 text/html "<html>...maintenance...</html>" instead of the file
    kHang,  // accepts the request and never answers (proxied to a Blackhole)
    k404,   // 404, even when the file exists
  };

  CrlServer() = default;
  ~CrlServer();
  CrlServer(const CrlServer &) = delete;
  CrlServer &operator=(const CrlServer &) = delete;

  // Creates workdir (config, logs, fault flags), makes docroot world-readable
  // (nginx workers run as nobody), starts nginx and waits for the port.
  // Returns "" on success, else what went wrong (with nginx's stderr).
  std::string Start(const std::string &workdir, const std::string &docroot, int port);
  void Stop();
  bool Running();

  // Writes docroot/name atomically (temp file + rename, mode 0644), so a
  // concurrent GET sees the old or the new file, never a mix.
  bool Publish(const std::string &name, std::string_view content);
  // Copies a file into docroot/name (atomically, as Publish).
  bool PublishFile(const std::string &name, const std::string &source);
  bool Remove(const std::string &name);

  // `path` "" = every path; else one URL path such as "/intermediate.crl".
  // kNone with "" clears every fault; with a path, that path's faults only. A
  // path fault wins over a global one; among faults, hang > 500 > html > 404.
  bool SetFault(Fault fault, const std::string &path = "");

  // Access-log lines ("<uri> <status> ims=<If-Modified-Since> inm=<If-None-Match>")
  // for requests whose URI is `path` ("" = all), in order. A hung request is
  // logged only when it ends.
  std::vector<std::string> Requests(const std::string &path = "") const;

  int port() const { return port_; }
  const std::string &docroot() const { return docroot_; }
  std::string url(const std::string &path) const;  // "http://127.0.0.1:PORT" + path
  std::string error_log() const { return workdir_ + "/error.log"; }
  std::string access_log() const { return workdir_ + "/access.log"; }

 private:
  std::string workdir_, docroot_;
  int port_ = 0;
  int hang_fd_ = -1;  // the Blackhole behind kHang
  int hang_port_ = 0;
  Process process_;
};

// A TCP listener on 127.0.0.1:port (0 = any free port) that never accepts:
// connects succeed (the kernel's backlog) and nothing is ever answered, until
// Close(). For hung CDP/OCSP servers.
class Blackhole {
 public:
  Blackhole() = default;
  ~Blackhole() { Close(); }
  Blackhole(const Blackhole &) = delete;
  Blackhole &operator=(const Blackhole &) = delete;
  bool Listen(int port);  // false when the port is taken
  void Close();
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// The demo PKI's OCSP responder: `openssl ocsp -index pki/ocsp/index.txt -port
// PORT -rsigner pki/ocsp/signer.pem -rkey pki/ocsp/signer.key -CA
// pki/ca/intermediate.pem -nmin 60 -ignore_err` (answers for the Example Issuing
// CA; OpenSSL 3.0 binds the wildcard address; one request at a time).
// stdout/stderr go to `log_path`. It re-reads index.txt only before waiting
// for the next connection, so after an edit (RevokeInIndex) the first answer
// is still the old one: call Restart() to apply an edit at once.
// Never probe its port with a bare connect (WaitForPort, PortOpen): OpenSSL
// 3.0's responder then blocks forever on that connection and answers nobody
// (also with -timeout). Start() waits for its "waiting for OCSP client
// connections" line instead. Any client that connects and gives up without
// sending a request wedges it the same way.
class OcspResponder {
 public:
  OcspResponder() = default;
  ~OcspResponder() { Stop(); }
  OcspResponder(const OcspResponder &) = delete;
  OcspResponder &operator=(const OcspResponder &) = delete;
  // `extra` is appended to the command line (e.g. {"-ndays", "1"}).
  std::string Start(const std::string &pki, int port, const std::string &log_path,
                    const std::vector<std::string> &extra = {});
  void Stop();
  // Stop + Start with the same arguments (applies an edited index.txt).
  std::string Restart();
  bool Running() { return process_.Running(); }

 private:
  Process process_;
  int port_ = 0;
  std::string pki_, log_path_;
  std::vector<std::string> extra_;
};

// A throwaway LDAP directory (issue 11 §2): Debian's /usr/sbin/slapd in the
// foreground on 127.0.0.1:port, its slapd.conf and mdb database under
// `workdir` (core.schema, suffix DC=corp,DC=example,DC=com, anonymous read),
// loaded with slapadd from `ldif` (a demo PKI's adcs/ldap/directory.ldif: the
// CDP entries of AD CS with base and delta CRLs, and the AIA entry). Never the
// system's slapd (which the package leaves stopped) or /etc/ldap/slapd.d.
class Slapd {
 public:
  Slapd() = default;
  ~Slapd() { Stop(); }
  Slapd(const Slapd &) = delete;
  Slapd &operator=(const Slapd &) = delete;
  // "" on success, else what went wrong (with slapadd's or slapd's output).
  std::string Start(const std::string &workdir, const std::string &ldif, int port);
  void Stop();
  int port() const { return port_; }

 private:
  Process process_;
  int port_ = 0;
};

// Marks the certificate with serial `serial_hex` (as in fingerprints.txt) `R`
// in an `openssl ca` index.txt, revoked at `when` (UTC, "YYMMDDHHMMSSZ") with
// `reason` ("keyCompromise", ...). Written atomically. Returns false when the
// serial is not in the file.
bool RevokeInIndex(const std::string &index_path, const std::string &serial_hex,
                   const std::string &when, const std::string &reason = "keyCompromise");

// The serial (hex, as in fingerprints.txt) of clients/<name> of a demo PKI; ""
// if missing.
std::string DemoSerial(const std::string &pki, const std::string &name);

// The demo PKI's Issuing CA (ca/intermediate.pem and .key), to sign CRLs with;
// empty on failure.
pki::Issued LoadDemoIssuingCa(const std::string &pki_dir);

// Issues pki/clients/NAME.crt, .key and .chain.pem (the leaf, then the Issuing
// CA) from the demo PKI's Issuing CA: subject `dn` (RFC 2253, most specific
// first, "\\," for a comma in a value), clientAuth, digitalSignature, valid
// from a day ago for a year. World readable. Returns "" or what went wrong.
std::string IssueDemoClient(const std::string &pki_dir, const std::string &name,
                            const std::string &dn);

// The subject of the demo client "long_subject" (IssueLongSubjectClient): "CN=long
// subject", 100 OUs of 60 double quotes (each escaped in every rendering, so
// bodies and log lines grow), then "OU=lastmarker".
std::string LongSubjectDn();
// Issues clients/long_subject.* with LongSubjectDn() unless it is there.
std::string IssueLongSubjectClient(const std::string &pki_dir);

// Signs a fresh CRL of the demo PKI's Example Issuing CA with `openssl ca
// -gencrl` (working files under `workdir`): the entries are those of
// pki/ocsp/index.txt (so `revoked` is in it) plus the demo clients named in
// `also_revoke` (keyCompromise, revoked now); crlNumber `crl_number`;
// thisUpdate now, nextUpdate now + `valid_seconds`. Writes the DER to *der.
// Returns "" on success, else openssl's error output.
std::string SignDemoCrl(const std::string &pki, const std::string &workdir,
                        const std::vector<std::string> &also_revoke, int crl_number,
                        int valid_seconds, std::string *der);

// "YYMMDDHHMMSSZ" (UTC, a date of an `openssl ca` index) for now + offset.
std::string IndexTime(int64_t offset_seconds);

// Signs a CRL with `openssl ca -gencrl` (working files under `workdir`) from
// the text of an `openssl ca` index, as `ca_cert` with `ca_key`: crlNumber
// `crl_number`, thisUpdate now, nextUpdate now + `valid_seconds`. Like
// SignDemoCrl, with any index and any signer. Returns "" or openssl's error.
std::string SignCrl(const std::string &workdir, const std::string &index_text,
                    const std::string &ca_cert, const std::string &ca_key, int crl_number,
                    int valid_seconds, std::string *der);

// An `openssl ca` index text with every revoked (R) line made valid (V) again.
std::string UnrevokeAll(const std::string &index_text);

// The certgate CLI of this build (cli/certgate, found next to certgate-mkpki's
// build tree); "" when it is not there.
std::string CertgateCliPath();

// The `certgate cache list` line of `url` in the cache directory `cache_dir`
// ("" if none), e.g. "url http://... ok: stored crl_number=20 ..." or, after a
// failed fetch, "... failed: HTTP 500 ... failures=1 backoff_until=...".
std::string CachedUrlState(const std::string &cli, const std::string &cache_dir,
                           const std::string &url);

// ---- the CDP fault drill (issue 5: every CDP fault keeps the cached CRL) ----
//
// Drives one server through every fault a CDP can have and checks that the CRL
// it cached before stays in force. Each fault needs its own place at the server
// (an nginx location, an httpd virtual host) with its own revocation cache,
// since a URL's backoff after a failure lives in the cache; every place is
// hard_fail, CRLs only, scope leaf, with the CDP of the demo PKI at `cdp`.
//
// Every place first caches a good CRL of the demo PKI (crlNumber 20, nextUpdate
// 6 s ahead, so a refresh is due once that has passed): `good` is allowed and
// `revoked` refused by it. Then, per fault, the fault is put on the CDP, `good`
// is asked until `certgate cache list` shows the refresh failed with the
// fault's error, and the verdicts are still those of crlNumber 20 (a wrongly
// taken CRL of the faults revokes `good` too, or lacks `revoked`). Last, with
// the CDP down, the "stale" place (max_stale 2s) refuses `good` as
// revocation_stale once nextUpdate + 2 s has passed.
//
// It leaves the CDP stopped, with a path fault cleared and its own CRL
// published: the caller restores the CDP.

// A place the server under test configures for the drill, in addition to the
// settings above.
struct CdpFaultPlace {
  std::string name;   // "500", "html", ..., "stale"
  std::string key;    // a policy key it sets too, bare ("fetch_max_size"); "" = none
  std::string value;  // that key's value ("1k")
};
const std::vector<CdpFaultPlace> &CdpFaultPlaces();

// What the server's test supplies to the drill. Tags are unique per request
// and safe in a URL query; put the tag there to find the request's log lines.
struct CdpFaultServer {
  struct Answer {
    int status = 0;  // 0 when there was no HTTP answer
    std::string body;
  };
  // One GET as the demo client `client` ("good", "revoked") at `place`.
  std::function<Answer(const std::string &place, const std::string &client, const std::string &tag)>
      get;
  // The revocation cache directory of `place`.
  std::function<std::string(const std::string &place)> cache_dir;
  // The access-log line of request `tag` (with its revocation variable as
  // revocation="..."), waiting a moment for it; "" if none.
  std::function<std::string(const std::string &tag)> access_line;
  // The certgate error-log line of request `tag`: its refusal ("reason=..."),
  // or the warning an allowed request logged.
  std::function<std::string(const std::string &tag)> refusal_line;
  // How a revocation_stale refusal names the max_stale limit in this server's
  // log ("certgate_max_stale").
  std::string max_stale_name;
  // Records a problem (a test failure); the drill goes on where that makes sense.
  std::function<void(const std::string &problem)> fail;
};

// Runs the drill (about 10 s). `work` is a scratch directory for the CRLs.
void RunCdpFaultDrill(CrlServer &cdp, const std::string &pki, const std::string &work,
                      const CdpFaultServer &server);

// ---- the damaged-cache drill (issue 9 §4) ----
//
// A cache_only place whose certgate_crl holds the demo intermediate CRL (the
// "revoked" client revoked). The drill asks once (refused: revoked), stops the
// server, changes one byte of meta page 1 of the place's data.mdb (which made
// mdb_env_open die of SIGBUS), starts the server, and asks as "revoked" until
// refused as revoked again (up to 5 s). Every answer must be a refusal; "good"
// is then allowed; the logs name the damage exactly once; exactly one
// data.mdb.corrupt-* is left; no process died of a signal.
struct DamagedCacheServer {
  struct Answer {
    int status = 0;
    std::string body;
  };
  std::function<Answer(const std::string &client, const std::string &tag)> get;
  std::string cache_dir;
  std::function<void()> stop;
  std::function<std::string()> start;  // "" or why not
  std::function<std::string()> logs;   // everything the server logged (error logs, stderr)
  std::function<void(const std::string &problem)> fail;
};
void RunDamagedCacheDrill(const DamagedCacheServer &server);

// ---- the status page, parsed by prometheus_client (prometheus.cc) ----

struct PromSample {
  std::string name;  // as on the page: a counter's with its _total
  double value = 0;
  std::string type;  // of its family: counter, gauge, ...
  std::map<std::string, std::string> labels;
};

// Every sample of `page` as python3-prometheus-client's parser reads it; empty
// with `error` set when the page does not parse.
std::vector<PromSample> ParsePrometheus(const std::string &page, std::string *error);

// The samples named `name` whose labels include `labels`.
std::vector<PromSample> FindSamples(const std::vector<PromSample> &samples, const std::string &name,
                                    const std::map<std::string, std::string> &labels = {});

// `openssl ... -noout -<field>` output as field -> value ("crlNumber",
// "nextUpdate", "notAfter", "serial").
std::map<std::string, std::string> OpensslFields(const std::vector<std::string> &argv);
// openssl's printed time ("Jan  1 00:00:00 2027 GMT") as epoch seconds; -1: not one.
int64_t OpensslTime(const std::string &text);

// The caches of a server under test whose gauges ExpectRevocationGauges checks.
struct GaugeCaches {
  std::string fetched;    // the issuing CA's CRL fetched from the CDP
  std::string preloaded;  // <pki>/crl/intermediate.crl preloaded (certgate_crl)
  std::string ocsp;       // an OCSP answer from the demo responder
  std::string failing;    // the CDP refused a connection
};

// Issue 13 §3: `page` parses (prometheus_client), and its revocation gauges
// say what the CRL files, the responder and the demo client `good` say.
void ExpectRevocationGauges(const std::string &page, const std::string &pki,
                            const GaugeCaches &caches, int64_t max_stale);

// Issue 13 §4: conf-examples' rules and dashboard check, and every metric
// they name is on `page` (tests/conf-examples/check_conf_examples.py). "" when so.
std::string CheckConfExamples(const std::string &page);

}  // namespace certgate::harness

#endif  // CERTGATE_TESTS_INTEGRATION_HARNESS_H
