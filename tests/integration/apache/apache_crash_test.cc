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
// The process and store helpers are those of nginx_crash_test.cc.
// CERTGATE_KEEP_TMP=1 keeps the directory.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <lmdb.h>
#include <openssl/pem.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <future>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "large_crl.h"

namespace certgate {
namespace {

namespace h = harness;
using Clock = std::chrono::steady_clock;

// The virtual hosts, one per scenario, each with its own cache.
constexpr int kSolePort = 18580;
constexpr int kSharedPort = 18581;
constexpr int kCommitPort = 18582;
// Generated serials are 16 bytes (first byte 0x10..0x7f); the demo PKI's are 2
// bytes, so `good` is never among them.
constexpr size_t kCrlEntries = 1000000;
const std::string kRevokedBody = "403.13 client certificate refused: revoked\n";

int MsSince(Clock::time_point start) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

// ---- processes and the store, seen from outside (server-agnostic: these
// could move to the harness) ----

// Thread ids of a process (/proc/PID/task).
std::vector<std::string> Tasks(pid_t pid) {
  std::vector<std::string> out;
  DIR *dir = opendir(("/proc/" + std::to_string(pid) + "/task").c_str());
  if (dir == nullptr) return out;
  while (const dirent *entry = readdir(dir)) {
    if (entry->d_name[0] != '.') out.push_back(entry->d_name);
  }
  closedir(dir);
  return out;
}

// Fields of /proc/PID[/task/TID]/stat after the command name: [0] is the state.
std::vector<std::string> StatFields(const std::string &stat_path) {
  const std::string stat = h::ReadFile(stat_path);
  const size_t paren = stat.rfind(')');
  std::vector<std::string> fields;
  if (paren == std::string::npos) return fields;
  std::istringstream words(stat.substr(paren + 1));
  std::string word;
  while (words >> word) fields.push_back(word);
  return fields;
}

// Live children of `parent` (from /proc/PID/task/*/children), zombies excluded.
std::vector<pid_t> ChildPids(pid_t parent) {
  std::vector<pid_t> out;
  const std::string base = "/proc/" + std::to_string(parent) + "/task/";
  for (const std::string &tid : Tasks(parent)) {
    std::istringstream words(h::ReadFile(base + tid + "/children"));
    pid_t pid = 0;
    while (words >> pid) {
      std::vector<std::string> f = StatFields("/proc/" + std::to_string(pid) + "/stat");
      if (!f.empty() && f[0] != "Z") out.push_back(pid);
    }
  }
  return out;
}

// Waits until `parent` has exactly one live child other than `not_this`.
pid_t WaitForSoleChild(pid_t parent, pid_t not_this, int timeout_ms) {
  const auto start = Clock::now();
  do {
    std::vector<pid_t> children = ChildPids(parent);
    if (children.size() == 1 && children[0] != not_this) return children[0];
    SleepMs(20);
  } while (MsSince(start) < timeout_ms);
  return -1;
}

// CPU time (user + system, every thread) the process has used, ms; -1 if gone.
int64_t CpuMillis(pid_t pid) {
  std::vector<std::string> f = StatFields("/proc/" + std::to_string(pid) + "/stat");
  if (f.size() < 13) return -1;
  return (std::stoll(f[11]) + std::stoll(f[12])) * 1000 / sysconf(_SC_CLK_TCK);
}

// SIGSTOP, then waits until every thread of the process is stopped.
bool StopAndWait(pid_t pid, int timeout_ms) {
  if (kill(pid, SIGSTOP) != 0) return false;
  const std::string base = "/proc/" + std::to_string(pid) + "/task/";
  const auto start = Clock::now();
  do {
    const std::vector<std::string> tids = Tasks(pid);
    bool all = !tids.empty();
    for (const std::string &tid : tids) {
      std::vector<std::string> f = StatFields(base + tid + "/stat");
      all = all && !f.empty() && (f[0] == "T" || f[0] == "t");
    }
    if (all) return true;
    SleepMs(1);
  } while (MsSince(start) < timeout_ms);
  return false;
}

// What a StoreProbe finds in a revocation store (an LMDB environment).
enum class StoreState {
  kNoCrl,       // no CRL committed; the writer lock, if tried, was free
  kWriterBusy,  // no CRL committed, and another process holds the writer lock
  kHasCrl,      // a CRL is committed
  kFailed,      // the probe process failed or did not answer
};

const char *Name(StoreState state) {
  switch (state) {
    case StoreState::kNoCrl:
      return "no CRL, writer lock free";
    case StoreState::kWriterBusy:
      return "no CRL, writer lock held";
    case StoreState::kHasCrl:
      return "a CRL committed";
    case StoreState::kFailed:
      break;
  }
  return "the probe failed";
}

// Looks into a store from a child process (LMDB wants one environment per
// process, and mdb_txn_begin has no timeout), opened once so that a probe
// costs well under a millisecond: per Probe(), a read transaction counts the
// records of the store's "crl" table; then, with try_writer, a write
// transaction is begun and aborted at once. When the child does not get the
// writer lock within writer_wait_ms, another process holds it; the child is
// then blocked and must be Kill()ed (it holds nothing: killing it is
// harmless) before that holder is.
// Open it only while the server's process has the store open (else this open
// would reset LMDB's lock file) and after the server created the store (else
// this, as root, would create it for the worker user).
class StoreProbe {
 public:
  StoreProbe() = default;
  ~StoreProbe() { Kill(); }
  StoreProbe(const StoreProbe &) = delete;
  StoreProbe &operator=(const StoreProbe &) = delete;

  bool Open(const std::string &dir) {
    int ask[2], answer[2];
    if (pipe2(ask, O_CLOEXEC) != 0) return false;
    if (pipe2(answer, O_CLOEXEC) != 0) {
      close(ask[0]);
      close(ask[1]);
      return false;
    }
    pid_ = fork();
    if (pid_ == 0) {
      close(ask[1]);
      close(answer[0]);
      Serve(dir, ask[0], answer[1]);
    }
    close(ask[0]);
    close(answer[1]);
    ask_ = ask[1];
    answer_ = answer[0];
    if (pid_ < 0 || Read(10000) != 'o') {
      Kill();
      return false;
    }
    return true;
  }

  StoreState Probe(bool try_writer, int writer_wait_ms = 300) {
    const char command = try_writer ? 'w' : 'r';
    if (pid_ <= 0 || write(ask_, &command, 1) != 1) return StoreState::kFailed;
    const char crl = Read(5000);
    if (crl == 'c') return StoreState::kHasCrl;
    if (crl != 'n') return StoreState::kFailed;
    if (!try_writer) return StoreState::kNoCrl;
    const char writer = Read(writer_wait_ms);
    if (writer == 'f') return StoreState::kNoCrl;
    return writer == 0 ? StoreState::kWriterBusy : StoreState::kFailed;
  }

  void Kill() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    pid_ = -1;
    for (int *fd : {&ask_, &answer_}) {
      if (*fd >= 0) close(*fd);
      *fd = -1;
    }
  }

 private:
  // The child: 'o' once open (else exits); per command, 'c' (a CRL) or 'n'
  // (none), then for 'w' 'f' once the writer lock was free.
  [[noreturn]] static void Serve(const std::string &dir, int ask, int answer) {
    MDB_env *env = nullptr;
    if (mdb_env_create(&env) != 0 || mdb_env_set_maxdbs(env, 8) != 0 ||
        mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0600) != 0 || write(answer, "o", 1) != 1) {
      _exit(1);
    }
    char command = 0;
    while (read(ask, &command, 1) == 1) {
      MDB_txn *txn = nullptr;
      MDB_dbi crl = 0;
      MDB_stat stat{};
      if (mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) != 0) _exit(1);
      const int opened = mdb_dbi_open(txn, "crl", 0, &crl);
      const bool has_crl = opened == 0 && mdb_stat(txn, crl, &stat) == 0 && stat.ms_entries > 0;
      mdb_txn_abort(txn);
      if (write(answer, has_crl ? "c" : "n", 1) != 1) _exit(1);
      if (command == 'w' && !has_crl) {
        if (mdb_txn_begin(env, nullptr, 0, &txn) != 0) _exit(1);
        mdb_txn_abort(txn);
        if (write(answer, "f", 1) != 1) _exit(1);
      }
    }
    _exit(0);
  }

  // One byte from the child; 0 when none came within timeout_ms, 'x' at EOF.
  char Read(int timeout_ms) {
    pollfd fd{answer_, POLLIN, 0};
    if (poll(&fd, 1, timeout_ms) != 1) return 0;
    char byte = 'x';
    return read(answer_, &byte, 1) == 1 ? byte : 'x';
  }

  pid_t pid_ = -1;
  int ask_ = -1;
  int answer_ = -1;
};

// Another user of a store, as another worker of the same server would be: a
// child process that opens the LMDB environment and keeps it open, without a
// transaction, until Release().
class StoreHolder {
 public:
  StoreHolder() = default;
  ~StoreHolder() { Release(); }
  StoreHolder(const StoreHolder &) = delete;
  StoreHolder &operator=(const StoreHolder &) = delete;

  bool Hold(const std::string &dir) {
    int ready[2], release[2];
    if (pipe2(ready, O_CLOEXEC) != 0) return false;
    if (pipe2(release, O_CLOEXEC) != 0) {
      close(ready[0]);
      close(ready[1]);
      return false;
    }
    pid_ = fork();
    if (pid_ == 0) {
      MDB_env *env = nullptr;
      const bool opened = mdb_env_create(&env) == 0 && mdb_env_set_maxdbs(env, 8) == 0 &&
                          mdb_env_open(env, dir.c_str(), MDB_NOTLS, 0600) == 0;
      char byte = opened ? 'y' : 'n';
      if (write(ready[1], &byte, 1) != 1 || !opened) _exit(1);
      close(release[1]);
      (void)!read(release[0], &byte, 1);  // EOF once the parent releases (or dies)
      mdb_env_close(env);
      _exit(0);
    }
    close(ready[1]);
    close(release[0]);
    char byte = 'n';
    const bool opened = pid_ > 0 && read(ready[0], &byte, 1) == 1 && byte == 'y';
    close(ready[0]);
    release_ = release[1];
    if (!opened) Release();
    return opened;
  }

  void Release() {
    if (release_ >= 0) close(release_);
    release_ = -1;
    if (pid_ > 0) waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }
  bool holding() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
  int release_ = -1;
};

// Sends SIGCONT to a stopped process when it goes out of scope, unless it was
// killed meanwhile, so a failed assertion never leaves a server frozen.
class ResumeUnlessKilled {
 public:
  explicit ResumeUnlessKilled(pid_t pid) : pid_(pid) {}
  ~ResumeUnlessKilled() {
    if (!killed_) kill(pid_, SIGCONT);
  }
  void Killed() { killed_ = true; }

 private:
  pid_t pid_;
  bool killed_ = false;
};

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

// The demo PKI's Example Issuing CA (certificate and key).
pki::Issued LoadIssuingCa(const std::string &pki_dir) {
  pki::Issued ca;
  const std::string cert_pem = h::ReadFile(pki_dir + "/ca/intermediate.pem");
  const std::string key_pem = h::ReadFile(pki_dir + "/ca/intermediate.key");
  BIO *bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  ca.cert.reset(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr), X509_free);
  BIO_free(bio);
  bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  ca.key.reset(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr), EVP_PKEY_free);
  BIO_free(bio);
  return ca;
}

// Writes the large CRL of the demo PKI's Issuing CA (kCrlEntries generated
// serials + `revoked`'s) to `path`. Returns "" or what went wrong.
std::string WriteLargeCrl(const std::string &pki_dir, const std::string &path) {
  const pki::Issued ca = LoadIssuingCa(pki_dir);
  if (!ca) return "cannot load the Issuing CA from " + pki_dir;
  const std::string revoked = h::DemoSerial(pki_dir, "revoked");
  if (revoked.empty()) return "no serial for `revoked` in " + pki_dir;
  const int64_t now = time(nullptr);
  bench::LargeCrlSpec spec;
  spec.entries = kCrlEntries;
  spec.extra_serials_hex = {revoked};
  spec.number = 1;
  spec.this_update = now - 3600;
  spec.next_update = now + 7 * 86400;
  const std::string der = bench::MakeLargeCrl(ca, spec);
  if (der.empty()) return "cannot make the CRL";
  return h::WriteFile(path, der) ? "" : "cannot write " + path;
}

// Where in an ingest KillInTheIngest kills.
enum class KillPoint {
  // The write transaction is open: adding the entries, or (when the probes
  // first catch it late) already committing.
  kInTheTransaction,
  // The commit is writing the new pages into data.mdb (grown, not yet in use).
  kInTheCommit,
};

// Kills `worker` (SIGKILL) at `point` of the ingest of a large CRL into the
// store `cache` that a request has just started; `cpu_before` is the
// worker's CPU time before that request. With `holder`, that holds the store
// open from before the kill.
//
// How the point is known: the worker is frozen with SIGSTOP, a probe process
// (StoreProbe) finds LMDB's writer lock held and no CRL committed, and the
// SIGKILL hits the frozen worker in that very state. Probing starts once the
// worker has used kParsingCpuMs of CPU since the request: the store's own
// opening (a short write transaction on the request path) is long over by
// then and the preload thread is reading and parsing the CRL (~0.5 s); its
// next write transaction is the CRL's (~0.25 s), the only long one. For
// kInTheCommit, the frozen worker is then let run in ~1 ms steps until
// data.mdb has grown (LMDB writes a transaction's pages at commit and makes
// them current last, by its meta page), and probed again. A probe that finds
// the CRL committed fails the test rather than kill something else.
void KillInTheIngest(pid_t worker, int64_t cpu_before, const std::string &cache, KillPoint point,
                     StoreHolder *holder) {
  constexpr int64_t kParsingCpuMs = 100;
  constexpr int64_t kCpuBetweenProbesMs = 10;
  const std::string data = cache + "/data.mdb";
  const auto start = Clock::now();
  StoreProbe probe;
  ResumeUnlessKilled resume(worker);
  int probes = 0;
  int64_t cpu = 0, cpu_at_last_probe = 0;
  StoreState state = StoreState::kNoCrl;
  while (state != StoreState::kWriterBusy) {
    ASSERT_LT(MsSince(start), 30000)
        << "never caught the ingest's write transaction in " << probes << " probes";
    cpu = CpuMillis(worker);
    ASSERT_GE(cpu, 0) << "the worker is gone";
    // Probes are spaced by the worker's CPU, not by wall time, so the worker
    // progresses between them however loaded the machine is.
    if (cpu - cpu_before < kParsingCpuMs || cpu - cpu_at_last_probe < kCpuBetweenProbesMs ||
        h::FileSize(cache + "/lock.mdb") < 0) {
      SleepMs(2);
      continue;
    }
    cpu_at_last_probe = cpu;
    if (holder != nullptr && !holder->holding()) {
      ASSERT_TRUE(holder->Hold(cache)) << "cannot open " << cache << " in another process";
    }
    ASSERT_TRUE(StopAndWait(worker, 5000));
    if (probes == 0) {
      ASSERT_TRUE(probe.Open(cache)) << "cannot open " << cache << " in a probe process";
    }
    state = probe.Probe(/*try_writer=*/true);
    ++probes;
    ASSERT_TRUE(state == StoreState::kWriterBusy || state == StoreState::kNoCrl)
        << Name(state) << " after " << MsSince(start) << " ms, " << cpu - cpu_before
        << " ms of worker CPU: the ingest was not caught (a larger CRL is needed here?)";
    if (state != StoreState::kWriterBusy) {
      ASSERT_EQ(kill(worker, SIGCONT), 0);
    }
  }
  probe.Kill();  // blocked on the writer lock: it must not be the one to take it over
  const int64_t size_in_transaction = h::FileSize(data);
  int steps = 0;
  if (point == KillPoint::kInTheCommit) {
    while (h::FileSize(data) <= size_in_transaction) {
      ASSERT_LT(MsSince(start), 60000) << "data.mdb never grew in " << steps << " steps";
      ASSERT_EQ(kill(worker, SIGCONT), 0);
      SleepMs(1);
      ASSERT_TRUE(StopAndWait(worker, 5000));
      ++steps;
    }
    ASSERT_TRUE(probe.Open(cache)) << "cannot open " << cache << " in a probe process";
    state = probe.Probe(/*try_writer=*/true);
    probe.Kill();
    ASSERT_EQ(state, StoreState::kWriterBusy)
        << Name(state) << ": the commit ended within one step of the worker";
  }
  const int64_t size_at_kill = h::FileSize(data);
  ASSERT_EQ(kill(worker, SIGKILL), 0);
  resume.Killed();
  std::cerr << "[ info ] worker " << worker << " killed "
            << (point == KillPoint::kInTheCommit ? "in the commit " : "in the write transaction ")
            << MsSince(start) << " ms after the request (" << cpu - cpu_before << " ms of its CPU; "
            << probes << " probes, " << steps << " steps); data.mdb: " << size_in_transaction
            << " bytes in the transaction, " << size_at_kill << " at the kill\n";
}

// ---- the server ----

struct Response {
  int curl_exit = -1;
  int status = 0;  // 0: no HTTP answer
  std::string body;
  std::string err;
  int ms = 0;
};

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
    error = WriteLargeCrl(pki(), crl());
    if (!error.empty()) return error;
    std::cerr << "[ info ] " << kCrlEntries + 1 << "-entry CRL (" << h::FileSize(crl())
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

  Response Curl(int port, const std::string &path, const std::string &client,
                int max_time_s = 60) const {
    const std::vector<std::string> argv = {"curl",
                                           "-sSk",
                                           "--http1.1",
                                           "--max-time",
                                           std::to_string(max_time_s),
                                           "-o",
                                           "-",
                                           "-w",
                                           "\n%{http_code}",
                                           "--cert",
                                           pki() + "/clients/" + client + ".chain.pem",
                                           "--key",
                                           pki() + "/clients/" + client + ".key",
                                           "https://127.0.0.1:" + std::to_string(port) + path};
    const auto start = Clock::now();
    h::RunResult r = h::Run(argv, {}, {}, (max_time_s + 5) * 1000);
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

std::string WaitLine(const std::string &file, const std::vector<std::string> &needles,
                     int timeout_ms = 3000) {
  const auto start = Clock::now();
  do {
    auto lines = h::GrepLines(h::ReadFile(file), needles);
    if (!lines.empty()) return lines.back();
    SleepMs(20);
  } while (MsSince(start) < timeout_ms);
  return "";
}

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
  void KillChildInTheIngest(int port, const std::string &name, KillPoint point, StoreHolder *holder,
                            pid_t *killed) {
    const pid_t child = WaitForSoleChild(s().parent(), -1, 10000);
    ASSERT_GT(child, 0) << "no single apache2 child";
    const int64_t cpu_before = CpuMillis(child);
    auto request = std::async(std::launch::async,
                              [this, port] { return s().Curl(port, "/?case=killed", "revoked"); });
    KillInTheIngest(child, cpu_before, s().cache(name), point, holder);
    *killed = child;
    const Response r = request.get();
    EXPECT_EQ(r.status, 0) << "the killed child answered: " << r.body;
    EXPECT_NE(r.curl_exit, 0) << r.err;
  }

  // The parent replaces the killed child.
  void WaitForNewChild(pid_t killed) {
    const auto start = Clock::now();
    const pid_t next = WaitForSoleChild(s().parent(), killed, 15000);
    ASSERT_GT(next, 0) << "the parent started no new child";
    std::cerr << "[ info ] new child " << next << " after " << MsSince(start) << " ms\n";
  }

  // Right after the kill (the StoreHolder keeping the lock file as it was),
  // the store holds no CRL: the killed ingest committed nothing.
  void ExpectNothingCommitted(const std::string &name) {
    StoreProbe probe;
    ASSERT_TRUE(probe.Open(s().cache(name)));
    EXPECT_EQ(probe.Probe(/*try_writer=*/false), StoreState::kNoCrl)
        << "the killed ingest committed something";
  }

  // The new child answers from the store: `revoked` refused as revoked by the
  // large CRL (which it ingests again, the killed ingest having left nothing),
  // `good` allowed by it.
  void ExpectCorrectVerdicts(int port, const std::string &tag) {
    h::LogTail errors(s().error_log());
    const std::string revoked_path = "/?case=" + tag + "-revoked";
    const Response revoked = s().Curl(port, revoked_path, "revoked");
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
    const Response good = s().Curl(port, good_path, "good");
    EXPECT_EQ(good.curl_exit, 0) << good.err;
    EXPECT_EQ(good.status, 200) << good.body;
    const std::string access = WaitLine(s().access_log(), {good_path + " "});
    EXPECT_NE(access.find("revocation=\"good crl " + s().crl()), std::string::npos) << access;
  }

  // `certgate cache list` reads the store and shows the CRL once: one CRL
  // record with every entry, and no more serials than that.
  void ExpectCrlStoredOnce(const std::string &name) {
    const std::string cli = CertgateCli();
    ASSERT_FALSE(cli.empty()) << "certgate CLI not found next to " << h::MkpkiPath();
    h::RunResult list = h::Run({cli, "cache", "list", "--cache", s().cache(name)}, {}, {}, 10000);
    ASSERT_EQ(list.exit_code, 0) << list.out << list.err;
    const std::string entries = std::to_string(kCrlEntries + 1);
    const std::vector<std::string> crls = h::GrepLines(list.out, {"crl issuer="});
    ASSERT_EQ(crls.size(), 1u) << list.out;
    EXPECT_NE(crls[0].find("issuer=\"CN=Example Issuing CA,O=Example\""), std::string::npos)
        << crls[0];
    EXPECT_NE(crls[0].find(" crl_number=1 entries=" + entries + " "), std::string::npos) << crls[0];
    EXPECT_NE(crls[0].find(" source=file:" + s().crl() + " "), std::string::npos) << crls[0];
    EXPECT_EQ(h::GrepLines(list.out,
                           {"file " + s().crl() + " ", " stored crl_number=1 entries=" + entries})
                  .size(),
              1u)
        << list.out;
    EXPECT_EQ(h::GrepLines(list.out, {"serials " + entries + " in "}).size(), 1u) << list.out;
    EXPECT_TRUE(h::GrepLines(list.out, {"error"}).empty()) << list.out;
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
      KillChildInTheIngest(kSolePort, "sole", KillPoint::kInTheTransaction, nullptr, &killed));
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
  StoreHolder holder;
  pid_t killed = -1;
  ASSERT_NO_FATAL_FAILURE(
      KillChildInTheIngest(kSharedPort, "shared", KillPoint::kInTheTransaction, &holder, &killed));
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
  StoreHolder holder;
  pid_t killed = -1;
  ASSERT_NO_FATAL_FAILURE(
      KillChildInTheIngest(kCommitPort, "commit", KillPoint::kInTheCommit, &holder, &killed));
  ExpectNothingCommitted("commit");
  ASSERT_NO_FATAL_FAILURE(WaitForNewChild(killed));
  ExpectCorrectVerdicts(kCommitPort, "after-kill");
  holder.Release();
  ExpectCrlStoredOnce("commit");
  ExpectNoSignOfDamage(errors);
}

}  // namespace
}  // namespace certgate
