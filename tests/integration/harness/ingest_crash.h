// certgate integration-test harness: kill -9 of a server's process in the
// middle of a large CRL ingest (issue 5's crash tests, nginx and Apache).
//
// The server's processes and its revocation store (an LMDB environment), seen
// from outside, and the kill itself. Nothing here knows about a particular
// server: the test brings the server, the request that starts the ingest and
// the assertions.
//
//   h::WriteLargeCrl(pki, crl);  // kLargeCrlEntries + `revoked`
//   ... a server preloads `crl` into the store `cache`, cache_only ...
//   // Its one worker, killed mid-ingest; the request got no answer.
//   h::IngestKill kill = h::KillInTheIngest(
//       master, [&] { return Get("/?first", "revoked"); }, cache,
//       h::KillPoint::kInTheCommit, &holder);
//   h::StoreProbe probe;  // nothing committed?
//   probe.Open(cache) && probe.Probe(false) == h::StoreState::kNoCrl
//   h::WaitForSoleChild(master, kill.killed, 10000);  // the next worker
//   ... it answers from the store ...
//   h::CrlStoredOnceProblems(cache, crl)  // `certgate cache list` agrees
//
// Problems come back as strings ("" = none), as in harness.h.
#ifndef CERTGATE_TESTS_INTEGRATION_INGEST_CRASH_H
#define CERTGATE_TESTS_INTEGRATION_INGEST_CRASH_H

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "harness.h"

namespace certgate::harness {

// ---- the large CRL ----

// Entries WriteLargeCrl generates: enough for an ingest that lasts about a
// second, so that a kill lands inside it. Generated serials are 16 bytes
// (first byte 0x10..0x7f); the demo PKI's are 2 bytes, so `good` is never
// among them.
inline constexpr size_t kLargeCrlEntries = 1000000;

// Writes a CRL of the demo PKI (in `pki_dir`) Example Issuing CA to `path`
// (DER): kLargeCrlEntries generated serials + `revoked`'s, crlNumber 1,
// thisUpdate an hour ago, nextUpdate in a week. Returns "" or what went wrong.
std::string WriteLargeCrl(const std::string &pki_dir, const std::string &path);

// `certgate cache list` of the store `cache_dir` shows the CRL written to
// `crl_path` stored once: one CRL record of the Issuing CA with every entry,
// its file's line, no more serials than that, no error. Returns what differs
// (empty when nothing does).
std::vector<std::string> CrlStoredOnceProblems(const std::string &cache_dir,
                                               const std::string &crl_path);

// ---- processes, from /proc ----

// Waits until `parent` has exactly one live child (zombies excluded) other
// than `not_this`; returns it, or -1 after timeout_ms.
pid_t WaitForSoleChild(pid_t parent, pid_t not_this, int timeout_ms);

// ---- the revocation store, from other processes ----

// What a StoreProbe finds in a revocation store.
enum class StoreState {
  kNoCrl,       // no CRL committed; the writer lock, if tried, was free
  kWriterBusy,  // no CRL committed, and another process holds the writer lock
  kHasCrl,      // a CRL is committed
  kFailed,      // the probe process failed or did not answer
};
const char *StoreStateName(StoreState state);

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

  bool Open(const std::string &dir);
  StoreState Probe(bool try_writer, int writer_wait_ms = 300);
  void Kill();

 private:
  [[noreturn]] static void Serve(const std::string &dir, int ask, int answer);
  char Read(int timeout_ms);

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

  bool Hold(const std::string &dir);
  void Release();
  bool holding() const { return pid_ > 0; }

 private:
  pid_t pid_ = -1;
  int release_ = -1;
};

// ---- the kill ----

// Where in an ingest KillInTheIngest kills.
enum class KillPoint {
  // The write transaction is open: adding the entries, or (when the probes
  // first catch it late) already committing.
  kInTheTransaction,
  // The commit is writing the new pages into data.mdb (grown, not yet in use).
  kInTheCommit,
};

// What KillInTheIngest did.
struct IngestKill {
  std::string error;   // "" once the process was killed at the point; else why not
  pid_t killed = -1;   // that process
  CurlAnswer answer;   // what the request that started the ingest got
  std::string report;  // how the kill went, for the test's log
};

// Has the sole child of `parent` (a server's one worker) ingest a large CRL
// into the store `cache` by `request`, sent from another thread (it waits for
// the ingest), kills that child (SIGKILL) at `point` of the ingest, and waits
// for the request to end. With `holder`, that holds the store open from before
// the kill. On an error the child is resumed if it was stopped, not killed.
//
// How the point is known: the child is frozen with SIGSTOP, a probe process
// (StoreProbe) finds LMDB's writer lock held and no CRL committed, and the
// SIGKILL hits the frozen child in that very state. Probing starts once the
// child has used 100 ms of CPU since the request: the store's own opening (a
// short write transaction on the request path) is long over by then and the
// preload thread is reading and parsing the CRL (~0.5 s); its next write
// transaction is the CRL's (~0.25 s), the only long one. For kInTheCommit,
// the frozen child is then let run in ~1 ms steps until data.mdb has grown
// (LMDB writes a transaction's pages at commit and makes them current last,
// by its meta page), and probed again. A probe that finds the CRL committed
// is an error rather than a reason to kill something else.
IngestKill KillInTheIngest(pid_t parent, const std::function<CurlAnswer()> &request,
                           const std::string &cache, KillPoint point, StoreHolder *holder);

}  // namespace certgate::harness

#endif  // CERTGATE_TESTS_INTEGRATION_INGEST_CRASH_H
