#include "ingest_crash.h"

#include <dirent.h>
#include <fcntl.h>
#include <lmdb.h>
#include <pki_builder.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <ctime>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "large_crl.h"

namespace certgate::harness {
namespace {

using Clock = std::chrono::steady_clock;

int MsSince(Clock::time_point start) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

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
  const std::string stat = ReadFile(stat_path);
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
    std::istringstream words(ReadFile(base + tid + "/children"));
    pid_t pid = 0;
    while (words >> pid) {
      std::vector<std::string> f = StatFields("/proc/" + std::to_string(pid) + "/stat");
      if (!f.empty() && f[0] != "Z") out.push_back(pid);
    }
  }
  return out;
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

// Sends SIGCONT to a stopped process when it goes out of scope, unless it was
// killed meanwhile, so a failed kill never leaves a server frozen.
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

// The demo PKI's Example Issuing CA (certificate and key).
}  // namespace

// ---- the large CRL ----

std::string WriteLargeCrl(const std::string &pki_dir, const std::string &path) {
  const pki::Issued ca = LoadDemoIssuingCa(pki_dir);
  if (!ca) return "cannot load the Issuing CA from " + pki_dir;
  const std::string revoked = DemoSerial(pki_dir, "revoked");
  if (revoked.empty()) return "no serial for `revoked` in " + pki_dir;
  const int64_t now = time(nullptr);
  bench::LargeCrlSpec spec;
  spec.entries = kLargeCrlEntries;
  spec.extra_serials_hex = {revoked};
  spec.number = 1;
  spec.this_update = now - 3600;
  spec.next_update = now + 7 * 86400;
  const std::string der = bench::MakeLargeCrl(ca, spec);
  if (der.empty()) return "cannot make the CRL";
  return WriteFile(path, der) ? "" : "cannot write " + path;
}

std::vector<std::string> CrlStoredOnceProblems(const std::string &cache_dir,
                                               const std::string &crl_path) {
  const std::string cli = CertgateCliPath();
  if (cli.empty()) return {"certgate CLI not found next to " + MkpkiPath()};
  const RunResult list = Run({cli, "cache", "list", "--cache", cache_dir}, {}, {}, 10000);
  if (list.exit_code != 0) {
    return {"certgate cache list exited " + std::to_string(list.exit_code) + ":\n" + list.out +
            list.err};
  }
  const std::string entries = std::to_string(kLargeCrlEntries + 1);
  const std::vector<std::string> crls = GrepLines(list.out, {"crl issuer="});
  if (crls.size() != 1) {
    return {std::to_string(crls.size()) + " CRL records, not 1:\n" + list.out};
  }
  std::vector<std::string> problems;
  auto expect = [&problems](bool holds, const std::string &what, const std::string &text) {
    if (!holds) problems.push_back(what + ":\n" + text);
  };
  const std::string &crl = crls[0];
  expect(crl.find("issuer=\"CN=Example Issuing CA,O=Example\"") != std::string::npos,
         "not the Issuing CA's CRL", crl);
  expect(crl.find(" crl_number=1 entries=" + entries + " ") != std::string::npos,
         "not crl_number=1 with " + entries + " entries", crl);
  expect(crl.find(" source=file:" + crl_path + " ") != std::string::npos, "not from " + crl_path,
         crl);
  expect(GrepLines(list.out, {"file " + crl_path + " ", " stored crl_number=1 entries=" + entries})
                 .size() == 1,
         "not one line of the file storing crl_number=1", list.out);
  expect(GrepLines(list.out, {"serials " + entries + " in "}).size() == 1,
         "not one line of " + entries + " serials", list.out);
  expect(GrepLines(list.out, {"error"}).empty(), "an error", list.out);
  return problems;
}

// ---- processes ----

pid_t WaitForSoleChild(pid_t parent, pid_t not_this, int timeout_ms) {
  const auto start = Clock::now();
  do {
    std::vector<pid_t> children = ChildPids(parent);
    if (children.size() == 1 && children[0] != not_this) return children[0];
    SleepMs(20);
  } while (MsSince(start) < timeout_ms);
  return -1;
}

// ---- the revocation store ----

const char *StoreStateName(StoreState state) {
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

bool StoreProbe::Open(const std::string &dir) {
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

StoreState StoreProbe::Probe(bool try_writer, int writer_wait_ms) {
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

void StoreProbe::Kill() {
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

// The child: 'o' once open (else exits); per command, 'c' (a CRL) or 'n'
// (none), then for 'w' 'f' once the writer lock was free.
void StoreProbe::Serve(const std::string &dir, int ask, int answer) {
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
char StoreProbe::Read(int timeout_ms) {
  pollfd fd{answer_, POLLIN, 0};
  if (poll(&fd, 1, timeout_ms) != 1) return 0;
  char byte = 'x';
  return read(answer_, &byte, 1) == 1 ? byte : 'x';
}

bool StoreHolder::Hold(const std::string &dir) {
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

void StoreHolder::Release() {
  if (release_ >= 0) close(release_);
  release_ = -1;
  if (pid_ > 0) waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

// ---- the kill ----

namespace {

// Kills `worker` at `point` of the ingest into `cache` that a request has just
// started; `cpu_before` is its CPU time before that request. Returns "" or
// why not.
std::string KillAtPoint(pid_t worker, int64_t cpu_before, const std::string &cache, KillPoint point,
                        StoreHolder *holder, std::string *report) {
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
    if (MsSince(start) >= 30000) {
      return "never caught the ingest's write transaction in " + std::to_string(probes) + " probes";
    }
    cpu = CpuMillis(worker);
    if (cpu < 0) return "the worker is gone";
    // Probes are spaced by the worker's CPU, not by wall time, so the worker
    // progresses between them however loaded the machine is.
    if (cpu - cpu_before < kParsingCpuMs || cpu - cpu_at_last_probe < kCpuBetweenProbesMs ||
        FileSize(cache + "/lock.mdb") < 0) {
      SleepMs(2);
      continue;
    }
    cpu_at_last_probe = cpu;
    if (holder != nullptr && !holder->holding() && !holder->Hold(cache)) {
      return "cannot open " + cache + " in another process";
    }
    if (!StopAndWait(worker, 5000)) return "cannot stop the worker";
    if (probes == 0 && !probe.Open(cache)) return "cannot open " + cache + " in a probe process";
    state = probe.Probe(/*try_writer=*/true);
    ++probes;
    if (state != StoreState::kWriterBusy && state != StoreState::kNoCrl) {
      return std::string(StoreStateName(state)) + " after " + std::to_string(MsSince(start)) +
             " ms, " + std::to_string(cpu - cpu_before) +
             " ms of worker CPU: the ingest was not caught (a larger CRL is needed here?)";
    }
    if (state != StoreState::kWriterBusy && kill(worker, SIGCONT) != 0) {
      return "cannot resume the worker";
    }
  }
  probe.Kill();  // blocked on the writer lock: it must not be the one to take it over
  const int64_t size_in_transaction = FileSize(data);
  int steps = 0;
  if (point == KillPoint::kInTheCommit) {
    while (FileSize(data) <= size_in_transaction) {
      if (MsSince(start) >= 60000) {
        return "data.mdb never grew in " + std::to_string(steps) + " steps";
      }
      if (kill(worker, SIGCONT) != 0) return "cannot resume the worker";
      SleepMs(1);
      if (!StopAndWait(worker, 5000)) return "cannot stop the worker";
      ++steps;
    }
    if (!probe.Open(cache)) return "cannot open " + cache + " in a probe process";
    state = probe.Probe(/*try_writer=*/true);
    probe.Kill();
    if (state != StoreState::kWriterBusy) {
      return std::string(StoreStateName(state)) +
             ": the commit ended within one step of the worker";
    }
  }
  const int64_t size_at_kill = FileSize(data);
  if (kill(worker, SIGKILL) != 0) return "cannot kill the worker";
  resume.Killed();
  *report = "worker " + std::to_string(worker) + " killed " +
            (point == KillPoint::kInTheCommit ? "in the commit " : "in the write transaction ") +
            std::to_string(MsSince(start)) + " ms after the request (" +
            std::to_string(cpu - cpu_before) + " ms of its CPU; " + std::to_string(probes) +
            " probes, " + std::to_string(steps) +
            " steps); data.mdb: " + std::to_string(size_in_transaction) +
            " bytes in the transaction, " + std::to_string(size_at_kill) + " at the kill";
  return "";
}

}  // namespace

IngestKill KillInTheIngest(pid_t parent, const std::function<CurlAnswer()> &request,
                           const std::string &cache, KillPoint point, StoreHolder *holder) {
  IngestKill out;
  const pid_t worker = WaitForSoleChild(parent, -1, 10000);
  if (worker <= 0) {
    out.error = "no single child of " + std::to_string(parent);
    return out;
  }
  const int64_t cpu_before = CpuMillis(worker);
  std::future<CurlAnswer> pending = std::async(std::launch::async, request);
  out.error = KillAtPoint(worker, cpu_before, cache, point, holder, &out.report);
  if (out.error.empty()) out.killed = worker;
  out.answer = pending.get();  // after a failed kill too: the request must end first
  return out;
}

}  // namespace certgate::harness
