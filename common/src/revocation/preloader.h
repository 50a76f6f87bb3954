// certgate_crl files and directories (DESIGN §5): loaded into the store at
// start, each CRL verified against its issuer in the trust store; a CRL whose
// issuer is not there (an intermediate CA's) waits until a chain brings that
// issuer; files are re-examined periodically and re-ingested when they change;
// a damaged store is moved aside and the files ingested again. Background work
// runs on the scheduler's thread. Private to certgate_core.
#pragma once

#include <certgate/clock.h>
#include <certgate/ossl_ptr.h>
#include <certgate/result.h>
#include <openssl/x509.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "fetch_scheduler.h"
#include "revocation/crl.h"
#include "revocation/store.h"

namespace certgate {

class CrlPreloader {
 public:
  CrlPreloader(RevocationStore &store, const Clock &clock, FetchScheduler &scheduler)
      : store_(store), clock_(clock), scheduler_(scheduler) {}
  CrlPreloader(const CrlPreloader &) = delete;
  CrlPreloader &operator=(const CrlPreloader &) = delete;

  // RevocationChecker::Preload (revocation.h).
  Status Preload(const std::vector<std::string> &paths, X509_STORE *trust);

  // Rescans the preloaded files in the background when RescanInterval passed.
  void MaybeRescan();
  void SetRescanInterval(std::chrono::seconds interval);

  // A chain brought `issuer`: ingests the files whose CRLs wait for it, in the
  // background, with `key` pending meanwhile.
  void MaybeIngestPendingFile(X509 *issuer, const std::string &key);

  // Repairs a damaged store in the background (once at a time), then rescans.
  void ScheduleRepair();

 private:
  static Status ListFiles(const std::string &path, std::vector<std::string> *files);
  std::vector<ossl::UniquePtr<X509>> IssuerCandidates(const ParsedCrl &crl);
  X509 *FindIssuerInTrust(const ParsedCrl &crl);
  Status IngestFile(const std::string &path, X509 *chain_issuer, bool force);
  Status IngestFileOnce(const std::string &path, X509 *chain_issuer, bool force);
  bool StoredCrlsIntact(const RevocationStore::ReadTxn &txn, const FileState &file);
  void RepairStore();
  std::pair<const void *, int> TrustFingerprint();
  Status IngestOne(const std::string &path, const ParsedCrl &crl, X509 *issuer, bool verified,
                   std::string *result);
  void Rescan();

  RevocationStore &store_;
  const Clock &clock_;
  FetchScheduler &scheduler_;

  std::mutex mutex_;
  ossl::UniquePtr<X509_STORE> trust_;  // mutex_
  std::vector<std::string> preload_paths_;
  std::chrono::steady_clock::duration rescan_interval_ = std::chrono::seconds(10);
  std::chrono::steady_clock::time_point last_rescan_;
  std::map<std::string, std::set<std::string>> pending_files_;  // issuer name DER -> paths
  std::atomic<bool> has_pending_files_{false};
  struct WaitingFile {
    uint64_t dev = 0, ino = 0;
    int64_t mtime_ns = 0, size = 0;
    std::pair<const void *, int> trust;
    bool operator==(const WaitingFile &o) const {
      return dev == o.dev && ino == o.ino && mtime_ns == o.mtime_ns && size == o.size &&
             trust == o.trust;
    }
  };
  std::map<std::string, WaitingFile> waiting_files_;  // path -> as parsed (mutex_)
  std::mutex repair_mutex_;
  std::chrono::steady_clock::time_point next_repair_;  // repair_mutex_
  std::atomic<bool> repair_scheduled_{false};
};

}  // namespace certgate
