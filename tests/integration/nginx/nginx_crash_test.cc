// Issue 5: "kill -9 of a worker in the middle of a large ingest leaves the store
// usable", in Debian's nginx with ngx_http_certgate_module on 127.0.0.1:18470.
//
// nginx runs one worker. Each location preloads (certgate_crl) a CRL of the
// demo PKI's Example Issuing CA with a million entries plus the demo `revoked`
// certificate, cache_only, into its own certgate_cache. The first request there
// makes the worker ingest it in a background thread (~1 s) while the request
// waits (certgate_revocation_wait 30s). The test kills the worker with SIGKILL
// inside the ingest's LMDB write transaction (KillInTheIngest says how that is
// known), the master starts a new worker, and that one must answer correctly
// from the same store: `revoked` refused as revoked by the CRL, `good`
// allowed, `certgate cache list` showing the CRL stored once, nothing in the
// logs that suggests damage.
//
// The ways a dead writer is met by the next one:
//   - nobody else has the store open: the new worker's open re-initialises
//     LMDB's lock file;
//   - another process keeps it open across the kill (as the other workers of a
//     multi-worker nginx would): the new worker must take over the dead
//     writer's lock (a robust mutex) instead;
//   - killed in the commit: data.mdb has grown by pages not in use yet.
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

constexpr int kPort = 18470;
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
    nginx_ = h::FindProgram(CERTGATE_NGINX_BINARY);
    if (nginx_.empty()) return std::string(CERTGATE_NGINX_BINARY) + " is missing";
    dir_ = std::make_unique<h::TempDir>("certgate-nginx-crash");
    if (!dir_->ok()) return "cannot create a temp dir";
    const std::string d = dir_->path();
    for (const char *sub : {"/logs", "/tmp", "/cache", "/crl"}) h::MakeDirs(d + sub);
    std::string error = h::GeneratePki(pki());
    if (!error.empty()) return error;
    const auto start = Clock::now();
    error = WriteLargeCrl(pki(), crl());
    if (!error.empty()) return error;
    std::cerr << "[ info ] " << kCrlEntries + 1 << "-entry CRL (" << h::FileSize(crl())
              << " bytes) made in " << MsSince(start) << " ms\n";
    h::MakeWorldReadable(d + "/crl");
    if (!h::WriteFile(conf(), Config())) return "cannot write nginx.conf";
    // Another server there would answer in place of this one.
    if (h::PortOpen(kPort)) return "port " + std::to_string(kPort) + " is in use";
    h::RunResult test = h::Run({nginx_, "-t", "-p", d, "-c", conf()});
    if (test.exit_code != 0) return "nginx -t failed:\n" + test.err;
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
    if (process_.pid() > 0) process_.Stop(SIGQUIT, 10000);
  }

  std::string Config() const {
    const std::string d = dir_->path();
    const std::string p = pki();
    auto location = [&](const std::string &name) {
      return "    location = /" + name + " {\n      certgate_cache " + cache(name) +
             ";\n      certgate_crl " + crl() + ";\n      return 200 \"ok\\n\";\n    }\n";
    };
    return "load_module " CERTGATE_NGINX_MODULE_PATH ";\n" +
           h::NginxConfigHead(d, 1, {error_log(), notice_log() + " notice"}) +
           "  log_format cg '$request_uri status=$status reason=$certgate_reason "
           "revocation=\"$certgate_revocation\"';\n"
           "  access_log " +
           access_log() +
           " cg;\n"
           "  server {\n"
           "    listen 127.0.0.1:" +
           std::to_string(kPort) +
           " ssl;\n"
           "    server_name localhost;\n"
           "    ssl_certificate " +
           p + "/server/server-chain.pem;\n    ssl_certificate_key " + p +
           "/server/server.key;\n"
           // The Issuing CA is a trust anchor here, so the preload ingests its
           // CRL at once (with only the root trusted, it would parse the file,
           // wait for a chain bringing the CA, and parse it again).
           "    ssl_trusted_certificate " +
           p +
           "/ca/trust-with-intermediate.pem;\n"
           "    certgate require;\n"
           "    certgate_revocation cache_only;\n"
           "    certgate_revocation_scope leaf;\n"
           "    certgate_revocation_wait 30s;\n" +
           location("sole") + location("shared") + location("commit") +
           "  }\n"
           "}\n";
  }

  Response Curl(const std::string &path, const std::string &client, int max_time_s = 60) const {
    const std::vector<std::string> argv = {"curl",
                                           "-sSk",
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
                                           "https://127.0.0.1:" + std::to_string(kPort) + path};
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

  pid_t master() const { return process_.pid(); }
  std::string pki() const { return dir_->path() + "/pki"; }
  std::string crl() const { return dir_->path() + "/crl/large.crl"; }
  std::string cache(const std::string &name) const { return dir_->path() + "/cache/" + name; }
  std::string conf() const { return dir_->path() + "/nginx.conf"; }
  std::string error_log() const { return dir_->path() + "/logs/error.log"; }
  std::string notice_log() const { return dir_->path() + "/logs/notice.log"; }
  std::string access_log() const { return dir_->path() + "/logs/access.log"; }

 private:
  std::string nginx_;
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

class NginxCrash : public ::testing::Test {
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

  // Asks `location` with `revoked` (the first request there, so the worker
  // starts ingesting the large CRL into the location's cache while the request
  // waits) and kill -9s the worker at `point` of the ingest (KillInTheIngest).
  // The request must get no answer. Sets *killed to the worker's pid.
  void KillWorkerInTheIngest(const std::string &location, KillPoint point, StoreHolder *holder,
                             pid_t *killed) {
    const pid_t worker = WaitForSoleChild(s().master(), -1, 10000);
    ASSERT_GT(worker, 0) << "no single nginx worker";
    const int64_t cpu_before = CpuMillis(worker);
    auto request = std::async(std::launch::async, [this, &location] {
      return s().Curl("/" + location + "?case=killed", "revoked");
    });
    KillInTheIngest(worker, cpu_before, s().cache(location), point, holder);
    *killed = worker;
    const Response r = request.get();
    EXPECT_EQ(r.status, 0) << "the killed worker answered: " << r.body;
    EXPECT_NE(r.curl_exit, 0) << r.err;
  }

  // The new worker answers from the store: `revoked` refused as revoked by the
  // large CRL (which it ingests again, the killed ingest having left nothing),
  // `good` allowed by it.
  void ExpectCorrectVerdicts(const std::string &location, const std::string &tag) {
    const std::string revoked_path = "/" + location + "?case=" + tag + "-revoked";
    const Response revoked = s().Curl(revoked_path, "revoked");
    EXPECT_EQ(revoked.curl_exit, 0) << revoked.err;
    EXPECT_EQ(revoked.status, 403) << revoked.body;
    EXPECT_EQ(revoked.body, kRevokedBody);
    const std::string line = WaitLine(s().error_log(), {"GET " + revoked_path + " "});
    EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
    EXPECT_NE(line.find("crl " + s().crl() + " crl_number=1"), std::string::npos) << line;
    std::cerr << "[ info ] " << revoked_path << " answered in " << revoked.ms << " ms\n";

    const std::string good_path = "/" + location + "?case=" + tag + "-good";
    const Response good = s().Curl(good_path, "good");
    EXPECT_EQ(good.curl_exit, 0) << good.err;
    EXPECT_EQ(good.status, 200) << good.body;
    const std::string access = WaitLine(s().access_log(), {good_path + " "});
    EXPECT_NE(access.find("revocation=\"good crl " + s().crl()), std::string::npos) << access;
  }

  // Right after the kill (the StoreHolder keeping the lock file as it was),
  // the store holds no CRL: the killed ingest committed nothing.
  void ExpectNothingCommitted(const std::string &location) {
    StoreProbe probe;
    ASSERT_TRUE(probe.Open(s().cache(location)));
    EXPECT_EQ(probe.Probe(/*try_writer=*/false), StoreState::kNoCrl)
        << "the killed ingest committed something";
  }

  // `certgate cache list` reads the store and shows the CRL once: one CRL
  // record with every entry, and no more serials than that.
  void ExpectCrlStoredOnce(const std::string &location) {
    const std::string cli = CertgateCli();
    ASSERT_FALSE(cli.empty()) << "certgate CLI not found next to " << h::MkpkiPath();
    h::RunResult list =
        h::Run({cli, "cache", "list", "--cache", s().cache(location)}, {}, {}, 10000);
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

  // Nothing in the logs written since `errors`/`notices` were marked suggests
  // a damaged store; the only alert is the kill.
  void ExpectNoSignOfDamage(h::LogTail &errors, h::LogTail &notices, pid_t killed) {
    const std::string error_text = errors.ReadNew();
    const std::string notice_text = notices.ReadNew();
    for (const char *sign :
         {"MDB_", "corrupt", "revocation cache", "revocation_unavailable", "[emerg]", "[crit]"}) {
      EXPECT_TRUE(h::GrepLines(notice_text, {sign}).empty()) << sign << " in:\n" << notice_text;
    }
    for (const std::string &line : h::GrepLines(error_text, {"certgate"})) {
      EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
    }
    const std::vector<std::string> alerts = h::GrepLines(notice_text, {"[alert]"});
    ASSERT_EQ(alerts.size(), 1u) << notice_text;
    EXPECT_NE(alerts[0].find("worker process " + std::to_string(killed) + " exited on signal 9"),
              std::string::npos)
        << alerts[0];
  }
};

// The worker is the store's only user: after the kill, the new worker's open
// finds LMDB's lock file with a dead writer and nobody else, and resets it.
TEST_F(NginxCrash, WorkerKilledInTheIngestLeavesTheStoreUsable) {
  h::LogTail errors(s().error_log());
  h::LogTail notices(s().notice_log());
  pid_t killed = -1;
  ASSERT_NO_FATAL_FAILURE(
      KillWorkerInTheIngest("sole", KillPoint::kInTheTransaction, nullptr, &killed));
  const auto start = Clock::now();
  const pid_t next = WaitForSoleChild(s().master(), killed, 10000);
  ASSERT_GT(next, 0) << "the master started no new worker";
  std::cerr << "[ info ] new worker " << next << " after " << MsSince(start) << " ms\n";
  ExpectCorrectVerdicts("sole", "after-kill");
  ExpectCrlStoredOnce("sole");
  ExpectNoSignOfDamage(errors, notices, killed);
}

// Another process has the store open across the kill (as the other workers of
// a multi-worker nginx would): the lock file is not reset, and the new worker
// must take over the writer lock of the dead one. A read right after the kill
// shows the killed ingest left nothing committed.
TEST_F(NginxCrash, WorkerKilledInTheIngestLeavesTheStoreUsableForTheOtherUsers) {
  h::LogTail errors(s().error_log());
  h::LogTail notices(s().notice_log());
  StoreHolder holder;
  pid_t killed = -1;
  ASSERT_NO_FATAL_FAILURE(
      KillWorkerInTheIngest("shared", KillPoint::kInTheTransaction, &holder, &killed));
  ASSERT_TRUE(holder.holding());
  ExpectNothingCommitted("shared");
  ASSERT_GT(WaitForSoleChild(s().master(), killed, 10000), 0) << "no new worker";
  ExpectCorrectVerdicts("shared", "after-kill");
  holder.Release();
  ExpectCrlStoredOnce("shared");
  // The first test's store, which the killed worker had open too, still
  // answers.
  ExpectCorrectVerdicts("sole", "after-second-kill");
  ExpectCrlStoredOnce("sole");
  ExpectNoSignOfDamage(errors, notices, killed);
}

// Killed while the commit writes the CRL's pages into data.mdb: the file has
// grown by pages the store does not use yet. They must stay unused (nothing
// committed) and the next ingest must write over them safely.
TEST_F(NginxCrash, WorkerKilledInTheCommitLeavesTheStoreUsable) {
  h::LogTail errors(s().error_log());
  h::LogTail notices(s().notice_log());
  StoreHolder holder;
  pid_t killed = -1;
  ASSERT_NO_FATAL_FAILURE(
      KillWorkerInTheIngest("commit", KillPoint::kInTheCommit, &holder, &killed));
  ExpectNothingCommitted("commit");
  ASSERT_GT(WaitForSoleChild(s().master(), killed, 10000), 0) << "no new worker";
  ExpectCorrectVerdicts("commit", "after-kill");
  holder.Release();
  ExpectCrlStoredOnce("commit");
  ExpectNoSignOfDamage(errors, notices, killed);
}

}  // namespace
}  // namespace certgate
