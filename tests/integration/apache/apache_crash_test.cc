// Issue 5: "kill -9 of a worker in the middle of a large ingest leaves the store
// usable", in Debian's apache2 (mpm_event, one child) with mod_ssl and
// mod_certgate on 127.0.0.1:18580..18582.
//
// Each virtual host preloads (CertGateCrl) a CRL of the demo PKI's Example
// Issuing CA with a million entries plus the demo `revoked` certificate,
// cache_only, into its own CertGateCache. The first request there makes the
// child ingest it in a background thread (~1 s) while the request thread
// waits (CertGateRevocationWait 30s). The test kills the child with SIGKILL
// inside the ingest's LMDB write transaction (KillInTheIngest says how that is
// known), the parent starts a new child, and that one must answer correctly
// from the same store: `revoked` refused as revoked by the CRL, `good`
// allowed, `certgate cache list` showing the CRL stored once, nothing in the
// error log that suggests damage.
//
// The ways a dead writer is met by the next one:
//   - nobody else has the store open: the new child's open re-initialises
//     LMDB's lock file;
//   - another process keeps it open across the kill (as the other children of
//     a multi-process httpd would): the new child must take over the dead
//     writer's lock (a robust mutex) instead;
//   - killed in the commit: data.mdb has grown by pages not in use yet.
// The CRL, the store probes and the kill are the harness's (ingest_crash.h).
// CERTGATE_KEEP_TMP=1 keeps the directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "harness.h"
#include "ingest_crash.h"

namespace certgate {
namespace {

namespace h = harness;
using Clock = std::chrono::steady_clock;

// The virtual hosts, one per scenario, each with its own cache.
constexpr int kSolePort = 18580;
constexpr int kSharedPort = 18581;
constexpr int kCommitPort = 18582;
const std::string kRevokedBody = "403.13 client certificate refused: revoked\n";

int MsSince(Clock::time_point start) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

// ---- the server ----

class Server {
 public:
  std::string Start() {
    if (access(CERTGATE_APACHE_BINARY, X_OK) != 0) {
      return std::string(CERTGATE_APACHE_BINARY) + " is missing";
    }
    dir_ = std::make_unique<h::TempDir>("certgate-apache-crash");
    if (!dir_->ok()) return "cannot create a temp dir";
    const std::string d = dir_->path();
    for (const char *sub : {"/run", "/logs", "/htdocs", "/crl"}) h::MakeDirs(d + sub);
    h::WriteFile(d + "/htdocs/index.html", "hello\n");
    std::string error = h::GeneratePki(pki());
    if (!error.empty()) return error;
    const auto start = Clock::now();
    error = h::WriteLargeCrl(pki(), crl());
    if (!error.empty()) return error;
    std::cerr << "[ info ] " << h::kLargeCrlEntries + 1 << "-entry CRL (" << h::FileSize(crl())
              << " bytes) made in " << MsSince(start) << " ms\n";
    if (!h::WriteFile(conf(), Config())) return "cannot write httpd.conf";
    h::MakeWorldReadable(d);
    for (int port : {kSolePort, kSharedPort, kCommitPort}) {
      // Another server there would answer in place of this one.
      if (h::PortOpen(port)) return "port " + std::to_string(port) + " is in use";
    }
    h::LogTail log(error_log());
    if (!process_.Start({"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/bin",
                         CERTGATE_APACHE_BINARY, "-DFOREGROUND", "-f", conf()},
                        d + "/logs/stdout.log", d + "/logs/stderr.log")) {
      return "cannot start apache2: " + process_.error();
    }
    bool ready = false;
    log.WaitFor("resuming normal operations", 15000, &ready);
    for (int port : {kSolePort, kSharedPort, kCommitPort}) {
      ready = ready && h::WaitForPort(port, 10000);
    }
    if (!ready) {
      return "apache2 did not come up:\n" + h::ReadFile(d + "/logs/stderr.log") +
             h::ReadFile(error_log());
    }
    return "";
  }

  void Stop() {
    if (process_.pid() > 0 && process_.Running()) process_.Stop(SIGTERM, 15000);
  }

  std::string Config() const {
    const std::string d = dir_->path();
    const std::string m = CERTGATE_APACHE_MODULES_DIR;
    std::string conf = "ServerRoot \"" + d + "\"\nServerName localhost\nDefaultRuntimeDir \"" + d +
                       "/run\"\nPidFile \"" + d + "/run/httpd.pid\"\nErrorLog \"" + error_log() +
                       "\"\n"
                       // notice: the parent's line about the killed child (AH00052).
                       "LogLevel notice\nMutex file:" +
                       d + "/run default\n" + "LoadModule mpm_event_module " + m +
                       "/mod_mpm_event.so\n" + "LoadModule authz_core_module " + m +
                       "/mod_authz_core.so\n" + "LoadModule mime_module " + m + "/mod_mime.so\n" +
                       "LoadModule dir_module " + m + "/mod_dir.so\n" +
                       "LoadModule socache_shmcb_module " + m + "/mod_socache_shmcb.so\n" +
                       "LoadModule ssl_module " + m + "/mod_ssl.so\n" +
                       "LoadModule certgate_module " CERTGATE_APACHE_MODULE_PATH "\n" +
                       (geteuid() == 0 ? "User nobody\nGroup nogroup\n" : "") +
                       // One child process, which the parent replaces when it dies.
                       "StartServers 1\nServerLimit 1\nThreadsPerChild 4\nMaxRequestWorkers 4\n"
                       "MinSpareThreads 1\nMaxSpareThreads 4\n"
                       "TypesConfig /etc/mime.types\nDocumentRoot \"" +
                       d +
                       "/htdocs\"\nDirectoryIndex index.html\n"
                       "LogFormat \"%h \\\"%r\\\" %>s reason=%{CERTGATE_REASON}e "
                       "revocation=\\\"%{CERTGATE_REVOCATION}e\\\"\" certgate\n"
                       "CustomLog \"" +
                       access_log() +
                       "\" certgate\n"
                       "<Directory />\n  Require all granted\n</Directory>\n"
                       "SSLSessionCache \"shmcb:" +
                       d + "/run/ssl_scache(512000)\"\nSSLProtocol -all +TLSv1.2 +TLSv1.3\n";
    for (const auto &[port, name] : {std::pair<int, const char *>{kSolePort, "sole"},
                                     {kSharedPort, "shared"},
                                     {kCommitPort, "commit"}}) {
      conf += "Listen 127.0.0.1:" + std::to_string(port) +
              "\n<VirtualHost 127.0.0.1:" + std::to_string(port) +
              ">\n  SSLEngine on\n  SSLCertificateFile " + pki() +
              "/server/server-chain.pem\n  SSLCertificateKeyFile " + pki() +
              "/server/server.key\n"
              // The Issuing CA is a trust anchor here, so the preload ingests
              // its CRL at once (with only the root trusted, it would parse the
              // file, wait for a chain bringing the CA, and parse it again).
              "  SSLCACertificateFile " +
              pki() +
              "/ca/trust-with-intermediate.pem\n"
              "  SSLVerifyClient optional_no_ca\n  SSLVerifyDepth 10\n"
              "  CertGate require\n  CertGateRevocation cache_only\n"
              "  CertGateRevocationScope leaf\n  CertGateRevocationWait 30s\n"
              "  CertGateCrl " +
              crl() + "\n  CertGateCache " + cache(name) + "\n</VirtualHost>\n";
    }
    return conf;
  }

  h::CurlAnswer Curl(int port, const std::string &path, const std::string &client) const {
    return h::CurlAsClient("https://127.0.0.1:" + std::to_string(port) + path, pki(), client, 60,
                           {"--http1.1"});
  }

  pid_t parent() const { return process_.pid(); }
  std::string pki() const { return dir_->path() + "/pki"; }
  std::string crl() const { return dir_->path() + "/crl/large.crl"; }
  std::string cache(const std::string &name) const { return dir_->path() + "/cache-" + name; }
  std::string conf() const { return dir_->path() + "/httpd.conf"; }
  std::string error_log() const { return dir_->path() + "/logs/error.log"; }
  std::string access_log() const { return dir_->path() + "/logs/access.log"; }

 private:
  std::unique_ptr<h::TempDir> dir_;
  h::Process process_;
};

Server *g_server = nullptr;
std::string g_start_error;

class ApacheCrash : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_server = new Server();
    g_start_error = g_server->Start();
  }
  static void TearDownTestSuite() {
    g_server->Stop();
    delete g_server;
    g_server = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(g_start_error.empty()) << g_start_error; }
  Server &s() { return *g_server; }

  // Asks the virtual host on `port` with `revoked` (the first request there,
  // so the child starts ingesting the large CRL into the host's cache while
  // the request waits) and kill -9s the child at `point` of the ingest
  // (KillInTheIngest). The request must get no answer. Sets *killed to the
  // child's pid.
  void KillChildInTheIngest(int port, const std::string &name, h::KillPoint point,
                            h::StoreHolder *holder, pid_t *killed) {
    const h::IngestKill kill = h::KillInTheIngest(
        s().parent(), [&] { return s().Curl(port, "/?case=killed", "revoked"); }, s().cache(name),
        point, holder);
    ASSERT_TRUE(kill.error.empty()) << kill.error;
    std::cerr << "[ info ] " << kill.report << "\n";
    *killed = kill.killed;
    EXPECT_EQ(kill.answer.status, 0) << "the killed child answered: " << kill.answer.body;
    EXPECT_NE(kill.answer.curl_exit, 0) << kill.answer.err;
  }

  // The parent replaces the killed child.
  void WaitForNewChild(pid_t killed) {
    const auto start = Clock::now();
    const pid_t next = h::WaitForSoleChild(s().parent(), killed, 15000);
    ASSERT_GT(next, 0) << "the parent started no new child";
    std::cerr << "[ info ] new child " << next << " after " << MsSince(start) << " ms\n";
  }

  // Right after the kill (the StoreHolder keeping the lock file as it was),
  // the store holds no CRL: the killed ingest committed nothing.
  void ExpectNothingCommitted(const std::string &name) {
    h::StoreProbe probe;
    ASSERT_TRUE(probe.Open(s().cache(name)));
    EXPECT_EQ(probe.Probe(/*try_writer=*/false), h::StoreState::kNoCrl)
        << "the killed ingest committed something";
  }

  // The new child answers from the store: `revoked` refused as revoked by the
  // large CRL (which it ingests again, the killed ingest having left nothing),
  // `good` allowed by it.
  void ExpectCorrectVerdicts(int port, const std::string &tag) {
    h::LogTail errors(s().error_log());
    const std::string revoked_path = "/?case=" + tag + "-revoked";
    const h::CurlAnswer revoked = s().Curl(port, revoked_path, "revoked");
    EXPECT_EQ(revoked.curl_exit, 0) << revoked.err;
    EXPECT_EQ(revoked.status, 403) << revoked.body;
    EXPECT_EQ(revoked.body, kRevokedBody);
    bool found = false;
    const std::string logged = errors.WaitFor("reason=revoked", 3000, &found);
    const std::vector<std::string> lines = h::GrepLines(logged, {"reason=revoked"});
    ASSERT_EQ(lines.size(), 1u) << logged;
    EXPECT_NE(lines[0].find("crl " + s().crl() + " crl_number=1"), std::string::npos) << lines[0];
    std::cerr << "[ info ] " << port << revoked_path << " answered in " << revoked.ms << " ms\n";

    const std::string good_path = "/?case=" + tag + "-good";
    const h::CurlAnswer good = s().Curl(port, good_path, "good");
    EXPECT_EQ(good.curl_exit, 0) << good.err;
    EXPECT_EQ(good.status, 200) << good.body;
    const std::string access = h::WaitForLine(s().access_log(), {good_path + " "});
    EXPECT_NE(access.find("revocation=\"good crl " + s().crl()), std::string::npos) << access;
  }

  // `certgate cache list` reads the store and shows the CRL once: one CRL
  // record with every entry, and no more serials than that.
  void ExpectCrlStoredOnce(const std::string &name) {
    for (const std::string &problem : h::CrlStoredOnceProblems(s().cache(name), s().crl())) {
      ADD_FAILURE() << problem;
    }
  }

  // Nothing in the error log written since `errors` was marked suggests a
  // damaged store, and no other child died.
  void ExpectNoSignOfDamage(h::LogTail &errors) {
    const std::string text = errors.ReadNew();
    for (const char *sign : {"MDB_", "corrupt", "revocation cache", "revocation_unavailable",
                             ":emerg]", ":alert]", ":crit]"}) {
      EXPECT_TRUE(h::GrepLines(text, {sign}).empty()) << sign << " in:\n" << text;
    }
    for (const std::string &line : h::GrepLines(text, {"[certgate:"})) {
      EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
    }
    // (httpd does not log a child's death by SIGKILL; other signals: AH00052.)
    EXPECT_TRUE(h::GrepLines(text, {"exit signal"}).empty()) << text;
  }
};

// The child is the store's only user: after the kill, the new child's open
// finds LMDB's lock file with a dead writer and nobody else, and resets it.
TEST_F(ApacheCrash, ChildKilledInTheIngestLeavesTheStoreUsable) {
  h::LogTail errors(s().error_log());
  pid_t killed = -1;
  ASSERT_NO_FATAL_FAILURE(
      KillChildInTheIngest(kSolePort, "sole", h::KillPoint::kInTheTransaction, nullptr, &killed));
  ASSERT_NO_FATAL_FAILURE(WaitForNewChild(killed));
  ExpectCorrectVerdicts(kSolePort, "after-kill");
  ExpectCrlStoredOnce("sole");
  ExpectNoSignOfDamage(errors);
}

// Another process has the store open across the kill (as the other children
// of a multi-process httpd would): the lock file is not reset, and the new
// child must take over the writer lock of the dead one. A read right after the
// kill shows the killed ingest left nothing committed.
TEST_F(ApacheCrash, ChildKilledInTheIngestLeavesTheStoreUsableForTheOtherUsers) {
  h::LogTail errors(s().error_log());
  h::StoreHolder holder;
  pid_t killed = -1;
  ASSERT_NO_FATAL_FAILURE(KillChildInTheIngest(kSharedPort, "shared",
                                               h::KillPoint::kInTheTransaction, &holder, &killed));
  ASSERT_TRUE(holder.holding());
  ExpectNothingCommitted("shared");
  ASSERT_NO_FATAL_FAILURE(WaitForNewChild(killed));
  ExpectCorrectVerdicts(kSharedPort, "after-kill");
  holder.Release();
  ExpectCrlStoredOnce("shared");
  // The first test's store, which the killed child had open too, still
  // answers.
  ExpectCorrectVerdicts(kSolePort, "after-second-kill");
  ExpectCrlStoredOnce("sole");
  ExpectNoSignOfDamage(errors);
}

// Killed while the commit writes the CRL's pages into data.mdb: the file has
// grown by pages the store does not use yet. They must stay unused (nothing
// committed) and the next ingest must write over them safely.
TEST_F(ApacheCrash, ChildKilledInTheCommitLeavesTheStoreUsable) {
  h::LogTail errors(s().error_log());
  h::StoreHolder holder;
  pid_t killed = -1;
  ASSERT_NO_FATAL_FAILURE(
      KillChildInTheIngest(kCommitPort, "commit", h::KillPoint::kInTheCommit, &holder, &killed));
  ExpectNothingCommitted("commit");
  ASSERT_NO_FATAL_FAILURE(WaitForNewChild(killed));
  ExpectCorrectVerdicts(kCommitPort, "after-kill");
  holder.Release();
  ExpectCrlStoredOnce("commit");
  ExpectNoSignOfDamage(errors);
}

}  // namespace
}  // namespace certgate
