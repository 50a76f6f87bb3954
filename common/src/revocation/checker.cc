#include <certgate/cert_facts.h>
#include <certgate/ossl_ptr.h>
#include <certgate/revocation.h>
#include <certgate/revocation_crl.h>
#include <certgate/revocation_fetcher.h>
#include <certgate/revocation_ocsp.h>
#include <certgate/revocation_store.h>
#include <dirent.h>
#include <fcntl.h>
#include <malloc.h>
#include <openssl/ocsp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

namespace certgate {

namespace {

using ossl::UniquePtr;
using SteadyClock = std::chrono::steady_clock;

constexpr int64_t kBackoffFirst = 30;
constexpr int64_t kBackoffMax = 3600;
constexpr int64_t kOcspDefaultValidity = 3600;  // answers without nextUpdate
constexpr auto kLeasePoll = std::chrono::milliseconds(200);

bool IsCa(X509 *cert) { return X509_check_ca(cert) != 0; }

bool LeaseHeldByOther(const UrlState &state, int64_t now) {
  if (state.lease_pid == 0 || state.lease_pid == getpid() || state.lease_expiry <= now)
    return false;
  return kill(static_cast<pid_t>(state.lease_pid), 0) == 0 || errno == EPERM;
}

std::string Ago(int64_t then, int64_t now) {
  if (then == 0) return "never";
  return FormatTime(then) + " (" + std::to_string(now - then) + " s ago)";
}

// The whole file in one read of its size: a stream copy took 0.36 s (three
// times the parse) for a 35 MB CRL.
Result<std::string> ReadFile(const std::string &path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error("cannot read " + path + ": " + strerror(errno));
  struct stat st {};
  std::string data;
  // One byte more than the size, so that the read seeing the end needs no growth.
  if (fstat(fd, &st) == 0 && st.st_size > 0) data.resize(static_cast<size_t>(st.st_size) + 1);
  size_t filled = 0;
  for (;;) {
    if (filled == data.size()) data.resize(data.size() + 65536);  // grew, or size unknown
    const ssize_t n = read(fd, &data[filled], data.size() - filled);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      close(fd);
      return Status::Error("cannot read " + path + ": " + strerror(error));
    }
    if (n == 0) break;
    filled += static_cast<size_t>(n);
  }
  close(fd);
  data.resize(filled);
  return data;
}

// A large CRL's text and DER are freed after its ingest, but glibc keeps freed
// memory of a thread's arena for reuse: ~50 MB per worker that preloaded a
// 1,000,000-entry CRL. Returned to the system instead (no-op elsewhere).
constexpr size_t kTrimAfterBytes = 1 << 20;

void ReturnFreedMemory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

// One source's view of one certificate.
struct View {
  enum Kind { kMissing, kGood, kGoodPastNext, kRevoked, kStale, kUnknownAnswer } kind = kMissing;
  std::string source;
  std::string note;
  int64_t revoked_at = 0;
  int reason = -1;
  bool due = true;                              // missing or due for refresh
  std::string crl_defects, crl_defects_detail;  // RevocationAnswer's
};

// A crlNumber for messages: "none" for a CRL without one.
std::string CrlNumberText(const std::string &decimal) { return decimal.empty() ? "none" : decimal; }

std::string Join(const std::vector<std::string_view> &names) {
  std::string out;
  for (std::string_view name : names) out += (out.empty() ? "" : ",") + std::string(name);
  return out;
}

}  // namespace

const char *RevocationModeName(RevocationMode mode) {
  switch (mode) {
    case RevocationMode::kCacheOnly:
      return "cache_only";
    case RevocationMode::kSoftFail:
      return "soft_fail";
    case RevocationMode::kHardFail:
      return "hard_fail";
    case RevocationMode::kOff:
      break;
  }
  return "off";
}

const char *RevocationStatusName(RevocationStatus status) {
  switch (status) {
    case RevocationStatus::kGood:
      return "good";
    case RevocationStatus::kRevoked:
      return "revoked";
    case RevocationStatus::kUnknown:
      return "unknown";
    case RevocationStatus::kStale:
      return "stale";
  }
  return "?";
}

class RevocationChecker::Impl {
 public:
  Impl(std::unique_ptr<RevocationStore> store, const Clock &clock)
      : store_(std::move(store)), clock_(clock) {}

  ~Impl() {
    // Join the thread (its tasks use fetcher_, the store and the pending state)
    // before anything goes away.
    if (fetcher_) fetcher_->Stop();
    fetcher_.reset();
    if (trust_ != nullptr) X509_STORE_free(trust_);
  }

  // ---- preload

  Status Preload(const std::vector<std::string> &paths, X509_STORE *trust) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (trust != nullptr && trust != trust_) {
        X509_STORE_up_ref(trust);
        if (trust_ != nullptr) X509_STORE_free(trust_);
        trust_ = trust;
      }
      for (const std::string &path : paths) {
        if (std::find(preload_paths_.begin(), preload_paths_.end(), path) == preload_paths_.end()) {
          preload_paths_.push_back(path);
        }
      }
      last_rescan_ = SteadyClock::now();
    }
    for (const std::string &path : paths) {
      std::vector<std::string> files;
      Status listed = ListFiles(path, &files);
      if (!listed.ok()) return listed;
      for (const std::string &file : files) {
        Status status = IngestFile(file, nullptr, /*force=*/false);
        if (!status.ok()) return status;
      }
    }
    return Status::Ok();
  }

  static Status ListFiles(const std::string &path, std::vector<std::string> *files) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
      return Status::Error("certgate_crl " + path + ": " + strerror(errno));
    }
    if (!S_ISDIR(st.st_mode)) {
      files->push_back(path);
      return Status::Ok();
    }
    DIR *dir = opendir(path.c_str());
    if (dir == nullptr) return Status::Error("certgate_crl " + path + ": " + strerror(errno));
    std::vector<std::string> found;
    while (struct dirent *entry = readdir(dir)) {
      if (entry->d_name[0] == '.') continue;
      std::string full = path + (path.back() == '/' ? "" : "/") + entry->d_name;
      struct stat fst {};
      if (stat(full.c_str(), &fst) == 0 && S_ISREG(fst.st_mode)) found.push_back(full);
    }
    closedir(dir);
    std::sort(found.begin(), found.end());
    files->insert(files->end(), found.begin(), found.end());
    return Status::Ok();
  }

  // The trust store's certificates named as the CRL's issuer, copied out
  // under the store's lock: the signature checks run outside it (and outside
  // mutex_), so that handshakes' issuer lookups are not stalled by them.
  std::vector<UniquePtr<X509>> IssuerCandidates(const ParsedCrl &crl) {
    UniquePtr<X509_STORE> trust;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (trust_ == nullptr) return {};
      X509_STORE_up_ref(trust_);
      trust.reset(trust_);
    }
    std::vector<UniquePtr<X509>> candidates;
    X509_STORE_lock(trust.get());
    STACK_OF(X509_OBJECT) *objects = X509_STORE_get0_objects(trust.get());
    for (int i = 0; i < sk_X509_OBJECT_num(objects); ++i) {
      X509 *cert = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objects, i));
      if (cert != nullptr && NameDer(X509_get_subject_name(cert)) == crl.issuer_der) {
        candidates.push_back(ossl::UpRef(cert));
      }
    }
    X509_STORE_unlock(trust.get());
    return candidates;
  }

  // The trust store's issuer of `crl`: the candidate whose key verifies its
  // signature (the one check of it; the ingest does not repeat it).
  X509 *FindIssuerInTrust(const ParsedCrl &crl) {
    for (UniquePtr<X509> &candidate : IssuerCandidates(crl)) {
      if (VerifyCrl(crl, candidate.get()).ok()) return candidate.release();
    }
    return nullptr;
  }

  // Ingests every CRL of one preloaded file, each with the chain's `issuer`
  // when that issued it, else with an issuer from the trust store. Unchanged
  // files (same mtime and size as recorded, every CRL stored) are skipped
  // unless forced.
  Status IngestFile(const std::string &path, X509 *chain_issuer, bool force) {
    Status status = IngestFileOnce(path, chain_issuer, force);
    ReturnFreedMemory();  // the file's text and DER, in this thread's malloc arena
    return status;
  }

  Status IngestFileOnce(const std::string &path, X509 *chain_issuer, bool force) {
    struct stat st {};
    if (stat(path.c_str(), &st) != 0)
      return Status::Error("certgate_crl " + path + ": " + strerror(errno));
    const int64_t mtime_ns =
        static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
    const WaitingFile identity{static_cast<uint64_t>(st.st_dev), static_cast<uint64_t>(st.st_ino),
                               mtime_ns, static_cast<int64_t>(st.st_size), TrustFingerprint()};
    if (!force) {
      {
        // Parsed before and waiting for an issuer nobody has brought: the
        // same file and trust store need no second parse (every rescan did
        // parse it, in every worker).
        std::lock_guard<std::mutex> lock(mutex_);
        auto waiting = waiting_files_.find(path);
        if (waiting != waiting_files_.end() && waiting->second == identity) return Status::Ok();
      }
      Result<RevocationStore::ReadTxn> read = store_->Read();
      if (read.ok()) {
        std::optional<FileState> known = read->GetFile(path);
        if (known && known->mtime_ns == mtime_ns && known->size == st.st_size &&
            !known->issuer_id.empty() && StoredCrlsIntact(read.value(), *known)) {
          return Status::Ok();  // warm: nothing to parse
        }
      }
    }
    if (store_->damaged()) RepairStore();
    Result<std::string> data = ReadFile(path);
    if (!data.ok()) return Status::Error("certgate_crl " + data.status().message());
    Result<std::vector<ParsedCrl>> crls = ParseCrlFile(std::move(data).value());
    if (!crls.ok()) return Status::Error("certgate_crl " + path + ": " + crls.status().message());
    FileState state;
    state.mtime_ns = mtime_ns;
    state.size = st.st_size;
    bool all_stored = true;
    for (size_t i = 0; i < crls->size(); ++i) {
      const ParsedCrl &crl = crls.value()[i];
      const std::string which = crls->size() == 1 ? ""
                                                  : "CRL " + std::to_string(i + 1) + " of " +
                                                        std::to_string(crls->size()) + ": ";
      std::string result;
      // (By name: IngestCrl verifies the signature, once, with the issuer.)
      const bool by_chain_issuer =
          chain_issuer != nullptr && NameDer(X509_get_subject_name(chain_issuer)) == crl.issuer_der;
      UniquePtr<X509> issuer(by_chain_issuer ? ossl::UpRef(chain_issuer).release()
                                             : FindIssuerInTrust(crl));
      Status ingested = IngestOne(path, crl, issuer.get(), /*verified=*/!by_chain_issuer, &result);
      if (!ingested.ok()) {
        return Status::Error("certgate_crl " + path + ": " + which + ingested.message());
      }
      if (!issuer) all_stored = false;
      if (state.issuer_id.empty() && issuer) state.issuer_id = IssuerId(issuer.get());
      if (issuer) state.stored.push_back({IssuerId(issuer.get()), crl.crl_number, crl.this_update});
      state.result += (state.result.empty() ? "" : "; ") + which + result;
    }
    // A file with a CRL still waiting for its issuer is parsed again when it
    // or the trust store changes, or a chain brings the issuer (forced).
    if (!all_stored) state.issuer_id.clear();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (all_stored) {
        waiting_files_.erase(path);
      } else {
        waiting_files_[path] = identity;
      }
    }
    Result<RevocationStore::WriteTxn> txn = store_->Write();
    // Without its record the file is parsed again at every rescan: say so.
    Status recorded = txn.ok() ? txn->PutFile(path, state) : txn.status();
    if (recorded.ok()) recorded = txn->Commit();
    if (!recorded.ok()) {
      return Status::Error("certgate_crl " + path +
                           ": ingested, but its file record was not "
                           "written: " +
                           recorded.message());
    }
    return Status::Ok();
  }

  // Whether the store still holds what a preloaded file's record says was
  // stored from it (its CRLs, as new, their serials intact): the record alone
  // is not trusted at a (re)start, the file is ingested again otherwise.
  bool StoredCrlsIntact(const RevocationStore::ReadTxn &txn, const FileState &file) {
    if (file.stored.empty()) return false;
    for (const FileState::Stored &stored : file.stored) {
      std::optional<CrlMeta> meta = txn.GetCrl(stored.issuer_id);
      if (!meta) return false;
      const bool numbered = !meta->crl_number.empty() && !stored.crl_number.empty();
      const int age = numbered ? CompareMagnitudes(meta->crl_number, stored.crl_number)
                               : (meta->this_update > stored.this_update) -
                                     (meta->this_update < stored.this_update);
      if (age < 0 || !txn.VerifySerials(*meta).ok()) return false;
      // The file's own CRL, stored before certgate_strict: read again to record
      // whether its crlNumber is critical.
      if (age == 0 && (meta->flags & kCrlDefectsRecorded) == 0) return false;
    }
    return true;
  }

  // Moves a damaged store aside (once per process at a time) and ingests the
  // preloaded files again; fetched CRLs are fetched again as requests need them.
  void RepairStore() {
    std::lock_guard<std::mutex> repairing(repair_mutex_);
    if (!store_->damaged()) return;
    const auto now = SteadyClock::now();
    if (now < next_repair_) return;
    next_repair_ = now + std::chrono::seconds(10);  // a repair that fails is retried later
    Status repaired = store_->Repair();
    if (!repaired.ok()) {
      const std::string line = "certgate: " + repaired.message() + "\n";
      (void)!write(STDERR_FILENO, line.data(), line.size());
      return;
    }
    next_repair_ = SteadyClock::time_point();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      waiting_files_.clear();                    // their other CRLs are to be stored again
      last_rescan_ = SteadyClock::time_point();  // the next check rescans the files at once
    }
  }

  void ScheduleRepair() {
    if (repair_scheduled_.exchange(true)) return;
    Fetcher().Post([this] {
      RepairStore();
      repair_scheduled_ = false;
      Rescan();
    });
  }

  // Which trust store, and how many certificates it holds: an issuer may be
  // added to it (or another one given to Preload).
  std::pair<const void *, int> TrustFingerprint() {
    UniquePtr<X509_STORE> trust;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (trust_ == nullptr) return {nullptr, 0};
      X509_STORE_up_ref(trust_);
      trust.reset(trust_);
    }
    X509_STORE_lock(trust.get());
    const int count = sk_X509_OBJECT_num(X509_STORE_get0_objects(trust.get()));
    X509_STORE_unlock(trust.get());
    return {trust.get(), count};
  }

  // One CRL of a preloaded file: stored with `issuer`, or, without one (an
  // intermediate's CRL), remembered until a chain brings that issuer.
  Status IngestOne(const std::string &path, const ParsedCrl &crl, X509 *issuer, bool verified,
                   std::string *result) {
    if (issuer == nullptr) {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_files_[std::string(crl.issuer_der)].insert(path);
      has_pending_files_ = true;
      *result = "waiting for a chain with issuer " + crl.issuer;
      return Status::Ok();
    }
    auto ingest = [&] {
      return verified ? IngestVerifiedCrl(*store_, crl, issuer, "file:" + path, clock_.Now())
                      : IngestCrl(*store_, crl, issuer, "file:" + path, clock_.Now());
    };
    Result<IngestResult> ingested = ingest();
    if (!ingested.ok() &&
        ingested.status().message().rfind("the revocation cache was replaced", 0) == 0) {
      ingested = ingest();  // into the new one
    }
    if (!ingested.ok()) {
      const std::string &why = ingested.status().message();
      if (why.rfind("rolled back", 0) != 0) return ingested.status();
      *result = why;  // the store holds a newer CRL: keep it
    } else {
      *result = std::string(ingested->outcome == IngestResult::Outcome::kStored ? "stored"
                                                                                : "unchanged") +
                " crl_number=" + CrlNumberText(ingested->meta.crl_number_dec) +
                " entries=" + std::to_string(ingested->meta.count);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = pending_files_.find(std::string(crl.issuer_der));
    if (it != pending_files_.end()) {
      it->second.erase(path);
      if (it->second.empty()) pending_files_.erase(it);
    }
    return Status::Ok();
  }

  void Rescan() {
    std::vector<std::string> paths;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      paths = preload_paths_;
    }
    for (const std::string &path : paths) {
      std::vector<std::string> files;
      if (!ListFiles(path, &files).ok()) continue;
      for (const std::string &file : files) (void)IngestFile(file, nullptr, false);
    }
    store_->CheckStaleReaders();
  }

  void MaybeRescan() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (preload_paths_.empty() || SteadyClock::now() - last_rescan_ < rescan_interval_) return;
    last_rescan_ = SteadyClock::now();
    Fetcher().Post([this] { Rescan(); });
  }

  // ---- lookups

  // `strict`: the policy's certgate_strict; a CRL that breaks RFC 5280 §5.2.3
  // then vouches for no certificate (its revocations still count).
  View CrlView(const RevocationStore::ReadTxn &txn, X509 *cert, const std::string &issuer_id,
               const std::string &serial, bool negative, int64_t now, int64_t max_stale,
               bool strict) {
    View view;
    std::optional<CrlMeta> meta = txn.GetCrl(issuer_id);
    if (!meta) {
      view.note = "no CRL cached for this issuer";
      return view;
    }
    const bool is_ca = IsCa(cert);
    if (((meta->flags & kCrlOnlyUserCerts) && is_ca) ||
        ((meta->flags & kCrlOnlyCaCerts) && !is_ca)) {
      view.note = "the cached CRL does not cover this kind of certificate";
      return view;
    }
    // A partitioned CRL says nothing of certificates in another partition.
    if (!meta->scope.empty() && !CrlScopeCovers(meta->scope, CrlUrls(cert))) {
      view.note = "the cached CRL covers only the distribution point " + meta->scope.front() +
                  ", which this certificate does not name";
      return view;
    }
    const bool from_url = meta->source.rfind("file:", 0) != 0;
    view.source = "crl " + (from_url ? meta->source : meta->source.substr(5)) +
                  (meta->crl_number_dec.empty() ? "" : " crl_number=" + meta->crl_number_dec);
    const int64_t next = meta->next_update;
    // Damage is never "not revoked": the first use of a CRL in this process
    // checks its serials against their digest, and every lookup its neighbours.
    const SerialLookup found = txn.VerifySerials(*meta).ok()
                                   ? txn.FindRevoked(meta->gen, serial, negative)
                                   : SerialLookup{SerialLookup::kDamaged, {}};
    if (found.kind == SerialLookup::kDamaged) {
      view.note = "the revocation cache is damaged";
      view.due = false;
      return view;
    }
    const std::vector<std::string_view> defects = CrlStrictDefects(*meta);
    // A record from before certgate_strict: whether its crlNumber is critical
    // is unknown until it is ingested again (forced below).
    const bool unrecorded = strict && defects.empty() && (meta->flags & kCrlDefectsRecorded) == 0;
    if (found.kind == SerialLookup::kRevoked) {
      // Still refreshed when due: the CRL serves every cert of this issuer, and a
      // certificateHold may be lifted.
      view.kind = View::kRevoked;
      view.revoked_at = found.entry.revoked_at;
      view.reason = found.entry.reason;
    } else if (strict && !defects.empty()) {
      view.kind = View::kUnknownAnswer;
      view.crl_defects = Join(defects);
      view.note = DescribeCrlStrictDefects(*meta) +
                  ", so it is no proof of \"good\" under certgate_strict on";
    } else if (unrecorded) {
      view.kind = View::kMissing;
      view.note = "the cached CRL (" + view.source +
                  ") was stored by an earlier certgate, which did not record whether its "
                  "crlNumber is critical (certgate_strict): no proof of \"good\" until it is "
                  "read again";
    } else if (next == 0 || now <= next) {
      view.kind = View::kGood;
    } else if (now <= next + max_stale) {
      view.kind = View::kGoodPastNext;
      view.note = "the CRL's nextUpdate " + FormatTime(next) +
                  " has passed; used within certgate_max_stale";
    } else {
      view.kind = View::kStale;
      view.note = "the cached CRL (" + view.source + ") expired: nextUpdate " + FormatTime(next) +
                  " + certgate_max_stale " + std::to_string(max_stale) + " s < now";
    }
    if ((view.kind == View::kGood || view.kind == View::kGoodPastNext) && !defects.empty()) {
      view.crl_defects = Join(defects);  // accepted: certgate_strict is off
      view.crl_defects_detail = DescribeCrlStrictDefects(*meta);
    }
    // Refresh ahead of nextUpdate, and periodically for fetched CRLs.
    int64_t ahead = next != 0 ? std::min<int64_t>((next - meta->this_update) / 10, 3600) : 0;
    view.due =
        unrecorded || (next != 0 && now >= next - ahead) ||
        (from_url && now - std::max(meta->checked_at, meta->ingested_at) >= refresh_interval_);
    return view;
  }

  View OcspView(const RevocationStore::ReadTxn &txn, const std::string &cert_id, int64_t now,
                int64_t max_stale) {
    View view;
    std::optional<OcspRecord> record = txn.GetOcsp(cert_id);
    if (!record) {
      view.note = "no OCSP answer cached";
      return view;
    }
    view.source = "ocsp " + record->source;
    const int64_t next =
        record->next_update != 0 ? record->next_update : record->this_update + kOcspDefaultValidity;
    int64_t ahead = std::min<int64_t>((next - record->this_update) / 10, 3600);
    view.due = now >= next - ahead || now - record->fetched_at >= refresh_interval_;
    if (record->status == V_OCSP_CERTSTATUS_REVOKED) {
      view.kind = View::kRevoked;
      view.revoked_at = record->revoked_at;
      view.reason = record->reason;
      view.due = false;
    } else if (record->status == V_OCSP_CERTSTATUS_UNKNOWN) {
      view.kind = View::kUnknownAnswer;
      view.note = "the OCSP responder " + record->source + " does not know this certificate";
    } else if (now <= next) {
      view.kind = View::kGood;
    } else if (now <= next + max_stale) {
      view.kind = View::kGoodPastNext;
      view.note = "the OCSP answer's nextUpdate " + FormatTime(next) +
                  " has passed; used within certgate_max_stale";
    } else {
      view.kind = View::kStale;
      view.note = "the cached OCSP answer expired: nextUpdate " + FormatTime(next) +
                  " + certgate_max_stale " + std::to_string(max_stale) + " s < now";
    }
    return view;
  }

  // Describes the URLs of a source for an unknown/stale detail.
  std::string DescribeUrls(const RevocationStore::ReadTxn &txn, const char *kind,
                           const std::vector<std::string> &urls, const FetchLimits &limits,
                           int64_t now) {
    if (urls.empty()) return std::string(kind) + ": the certificate names no URL";
    std::string out;
    for (const std::string &url : urls) {
      if (!out.empty()) out += "; ";
      out += std::string(kind) + " " + url + ": ";
      std::string refusal = UrlRefusal(url, limits.allow);
      if (!refusal.empty()) {
        out += "skipped, " + refusal;
        continue;
      }
      std::optional<UrlState> state = txn.GetUrl(url);
      if (!state || state->last_attempt == 0) {
        out += "not fetched yet";
        continue;
      }
      out += (state->last_ok ? "ok " : "failed: ") + state->last_result + " (" +
             std::to_string(state->duration_ms) + " ms, at " + FormatTime(state->last_attempt) +
             ")";
      if (state->backoff_until > now) {
        out += ", next attempt after " + FormatTime(state->backoff_until) + " (backoff)";
      }
    }
    return out;
  }

  // A CDP that keeps serving the same CRL past its nextUpdate (a CA late to
  // publish) answers "unchanged" every time; without a pause every request
  // would ask it again. (OCSP answers are per certificate: never paused here.)
  static bool RecentlyUnchanged(const UrlState &state, int64_t now) {
    const bool unchanged = state.last_result.rfind("unchanged", 0) == 0 ||
                           state.last_result.rfind("not modified", 0) == 0;
    return state.last_ok && unchanged && now - state.last_attempt < kUnchangedPauseSeconds;
  }

  std::vector<std::string> FetchableUrls(const RevocationStore::ReadTxn &txn,
                                         const std::vector<std::string> &urls,
                                         const FetchLimits &limits, int64_t now) {
    std::vector<std::string> out;
    for (const std::string &url : urls) {
      if (!UrlRefusal(url, limits.allow).empty()) continue;
      std::optional<UrlState> state = txn.GetUrl(url);
      if (state && state->backoff_until > now) continue;
      if (state && RecentlyUnchanged(*state, now)) continue;
      out.push_back(url);
    }
    return out;
  }

  std::vector<RevocationAnswer> Check(const ChainEvidence &evidence, const Policy &policy) {
    std::vector<RevocationAnswer> answers;
    const RevocationMode mode = policy.EffectiveRevocation();
    if (mode == RevocationMode::kOff || evidence.chain.empty()) return answers;
    MaybeRescan();
    const size_t n = evidence.chain.size();
    const size_t checkable = evidence.anchored ? n - 1 : n;  // the anchor is never checked
    const bool chain_scope =
        policy.revocation_scope.value_or(RevocationScope::kChain) == RevocationScope::kChain;
    const size_t count = chain_scope ? checkable : std::min<size_t>(checkable, 1);
    const std::vector<RevocationSource> sources = policy.revocation_sources.value_or(
        std::vector<RevocationSource>{RevocationSource::kCrl, RevocationSource::kOcsp});
    const int64_t max_stale = policy.max_stale.value_or(std::chrono::seconds(3600)).count();
    const bool may_fetch = evidence.anchored &&
                           (mode == RevocationMode::kSoftFail || mode == RevocationMode::kHardFail);
    const FetchLimits limits = FetchLimitsFrom(policy);
    const int64_t now = clock_.Now();

    Result<RevocationStore::ReadTxn> txn =
        store_->damaged() ? Result<RevocationStore::ReadTxn>(Status::Error("damaged"))
                          : store_->Read();
    for (size_t depth = 0; depth < count; ++depth) {
      RevocationAnswer answer;
      answer.depth = static_cast<int>(depth);
      X509 *cert = evidence.chain[depth].get();
      X509 *issuer = depth + 1 < n ? evidence.chain[depth + 1].get() : nullptr;
      if (!txn.ok()) {
        answer.detail =
            std::string("mode=") + RevocationModeName(mode) + "; " + txn.status().message();
      } else if (issuer == nullptr) {
        answer.detail = std::string("mode=") + RevocationModeName(mode) + "; the issuer of " +
                        NameToString(X509_get_subject_name(cert)) + " is not in the chain";
      } else {
        CheckOne(txn.value(), cert, issuer, sources, mode, max_stale, may_fetch, limits, now,
                 policy.EffectiveStrict(), &answer);
      }
      answers.push_back(std::move(answer));
    }
    if (store_->damaged()) {
      // Only what the store can no longer vouch for: a revocation stays one.
      const std::string why = std::string("mode=") + RevocationModeName(mode) +
                              "; the revocation cache " + store_->dir() + " is damaged (" +
                              store_->damage() +
                              "); it is being rebuilt, revocation is unavailable meanwhile";
      for (RevocationAnswer &answer : answers) {
        if (answer.status == RevocationStatus::kRevoked) continue;
        answer.status = RevocationStatus::kUnknown;
        answer.source.clear();
        answer.detail = why;
        answer.crl_defects.clear();
        answer.crl_defects_detail.clear();
      }
      ScheduleRepair();
    }
    return answers;
  }

  void CheckOne(const RevocationStore::ReadTxn &txn, X509 *cert, X509 *issuer,
                const std::vector<RevocationSource> &sources, RevocationMode mode,
                int64_t max_stale, bool may_fetch, const FetchLimits &limits, int64_t now,
                bool strict, RevocationAnswer *answer) {
    const std::string issuer_id = IssuerId(issuer);
    bool negative = false;
    const std::string serial = SerialMagnitude(cert, &negative);
    std::string cert_id;
    std::vector<View> views;
    for (RevocationSource source : sources) {
      if (source == RevocationSource::kCrl) {
        views.push_back(CrlView(txn, cert, issuer_id, serial, negative, now, max_stale, strict));
      } else {
        cert_id = OcspCertIdKey(cert, issuer);
        views.push_back(OcspView(txn, cert_id, now, max_stale));
      }
    }
    // Revoked anywhere wins; then the first fresh good; then good past nextUpdate.
    const View *chosen = nullptr;
    for (const View &v : views) {
      if (v.kind == View::kRevoked) {
        chosen = &v;
        break;
      }
    }
    for (View::Kind kind : {View::kGood, View::kGoodPastNext}) {
      for (const View &v : views) {
        if (chosen == nullptr && v.kind == kind) chosen = &v;
      }
    }
    bool any_stale = std::any_of(views.begin(), views.end(),
                                 [](const View &v) { return v.kind == View::kStale; });

    // Schedule what is missing or due (not when a fresh source already answers,
    // except to refresh that very source).
    const std::string crl_key = "crl:" + LowerHex(issuer_id);
    const std::string ocsp_key = cert_id.empty() ? std::string() : "ocsp:" + LowerHex(cert_id);
    for (size_t i = 0; i < sources.size(); ++i) {
      const View &v = views[i];
      const bool answered_elsewhere =
          chosen != nullptr && chosen != &v &&
          (chosen->kind == View::kGood || chosen->kind == View::kRevoked);
      if (!v.due || answered_elsewhere) continue;
      if (sources[i] == RevocationSource::kCrl) {
        if (v.kind == View::kMissing) MaybeIngestPendingFile(issuer, crl_key);
        if (!may_fetch || IsPending(crl_key)) continue;
        std::vector<std::string> urls = FetchableUrls(txn, CrlUrls(cert), limits, now);
        if (!urls.empty()) ScheduleCrl(crl_key, cert, issuer, std::move(urls), limits);
      } else if (may_fetch && !IsPending(ocsp_key)) {
        std::vector<std::string> urls = FetchableUrls(txn, AiaUrls(cert, NID_ad_OCSP), limits, now);
        if (!urls.empty()) ScheduleOcsp(ocsp_key, cert_id, cert, issuer, std::move(urls), limits);
      }
    }
    answer->fetch_pending = IsPending(crl_key) || (!ocsp_key.empty() && IsPending(ocsp_key));

    if (chosen != nullptr) {
      answer->source = chosen->source;
      if (chosen->kind == View::kRevoked) {
        answer->status = RevocationStatus::kRevoked;
        answer->revoked_at = chosen->revoked_at;
        answer->reason = CrlReasonName(chosen->reason);
        return;
      }
      answer->status = RevocationStatus::kGood;
      answer->crl_defects = chosen->crl_defects;
      answer->crl_defects_detail = chosen->crl_defects_detail;
      if (chosen->kind == View::kGoodPastNext) {
        // Past nextUpdate: say how the refresh fares.
        const bool crl =
            sources[static_cast<size_t>(chosen - views.data())] == RevocationSource::kCrl;
        answer->detail = chosen->note + "; " +
                         (crl ? DescribeUrls(txn, "crl", CrlUrls(cert), limits, now)
                              : DescribeUrls(txn, "ocsp", AiaUrls(cert, NID_ad_OCSP), limits, now));
      }
      return;
    }
    answer->status = any_stale ? RevocationStatus::kStale : RevocationStatus::kUnknown;
    for (const View &v : views) {
      // A stale answer still says which data it is (crl URL crl_number=N).
      if (any_stale && v.kind == View::kStale && answer->source.empty()) answer->source = v.source;
      if (!v.crl_defects.empty()) answer->crl_defects = v.crl_defects;
    }
    std::string detail = std::string("mode=") + RevocationModeName(mode);
    for (size_t i = 0; i < sources.size(); ++i) {
      const View &v = views[i];
      detail += "; " + v.note;
      if (sources[i] == RevocationSource::kCrl) {
        detail += "; " + DescribeUrls(txn, "crl", CrlUrls(cert), limits, now);
        for (const std::string &url : CrlUrls(cert)) {
          if (UrlScheme(url) == "ldap") detail += " (ldap CDPs are not supported yet)";
        }
      } else {
        detail += "; " + DescribeUrls(txn, "ocsp", AiaUrls(cert, NID_ad_OCSP), limits, now);
      }
    }
    if (!may_fetch) {
      detail +=
          mode == RevocationMode::kCacheOnly
              ? "; cache_only: nothing is fetched (certgate_revocation soft_fail/hard_fail fetch)"
              : "; the chain is not anchored: nothing is fetched";
    }
    if (answer->fetch_pending) detail += "; a fetch is in flight";
    answer->detail = std::move(detail);
  }

  // ---- background work

  RevocationFetcher &Fetcher() {  // mutex_ held or not: fetcher_ is created once
    std::call_once(fetcher_once_, [this] { fetcher_ = std::make_unique<RevocationFetcher>(); });
    return *fetcher_;
  }

  bool IsPending(const std::string &key) {
    std::lock_guard<std::mutex> lock(mutex_);
    return pending_.count(key) != 0;
  }

  // Returns false when `key` is already pending.
  bool MarkPending(const std::string &key) {
    std::lock_guard<std::mutex> lock(mutex_);
    return pending_.insert(key).second;
  }

  void Done(const std::string &key) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      pending_.erase(key);
    }
    cv_.notify_all();
  }

  void MaybeIngestPendingFile(X509 *issuer, const std::string &key) {
    if (!has_pending_files_.load()) return;
    std::vector<std::string> paths;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto it = pending_files_.find(NameDer(X509_get_subject_name(issuer)));
      if (it == pending_files_.end()) return;
      paths.assign(it->second.begin(), it->second.end());
    }
    if (!MarkPending(key)) return;
    std::shared_ptr<X509> held(ossl::UpRef(issuer).release(), X509_free);
    Fetcher().Post([this, paths, held, key] {
      for (const std::string &path : paths) (void)IngestFile(path, held.get(), true);
      Done(key);
    });
  }

  struct Job {
    std::string key;
    std::shared_ptr<X509> cert, issuer;
    std::string cert_id;
    std::vector<std::string> urls;
    FetchLimits limits;
    std::string request;  // OCSP request DER
    int64_t created = 0;
    std::chrono::steady_clock::time_point lease_wait_until;
  };

  void ScheduleCrl(const std::string &key, X509 *cert, X509 *issuer, std::vector<std::string> urls,
                   const FetchLimits &limits) {
    if (!MarkPending(key)) return;
    auto job = std::make_shared<Job>();
    job->key = key;
    job->cert.reset(ossl::UpRef(cert).release(), X509_free);
    job->issuer.reset(ossl::UpRef(issuer).release(), X509_free);
    job->urls = std::move(urls);
    job->limits = limits;
    job->created = clock_.Now();
    Fetcher().Post([this, job] { RunUrl(job, 0, /*ocsp=*/false); });
  }

  void ScheduleOcsp(const std::string &key, const std::string &cert_id, X509 *cert, X509 *issuer,
                    std::vector<std::string> urls, const FetchLimits &limits) {
    Result<std::string> request = OcspRequestDer(cert, issuer);
    if (!request.ok() || !MarkPending(key)) return;
    auto job = std::make_shared<Job>();
    job->key = key;
    job->cert.reset(ossl::UpRef(cert).release(), X509_free);
    job->issuer.reset(ossl::UpRef(issuer).release(), X509_free);
    job->cert_id = cert_id;
    job->urls = std::move(urls);
    job->limits = limits;
    job->request = std::move(request).value();
    job->created = clock_.Now();
    Fetcher().Post([this, job] { RunUrl(job, 0, /*ocsp=*/true); });
  }

  enum class Lease { kTaken, kHeld, kBackoff };

  Lease TakeLease(const std::string &url, const FetchLimits &limits, int64_t now,
                  bool ignore_backoff) {
    Result<RevocationStore::WriteTxn> txn = store_->Write();
    if (!txn.ok()) return Lease::kTaken;  // fetch anyway; the result write will report
    UrlState state = txn->GetUrl(url).value_or(UrlState{});
    if (LeaseHeldByOther(state, now)) return Lease::kHeld;
    if (!ignore_backoff && state.backoff_until > now) return Lease::kBackoff;
    state.lease_pid = getpid();
    state.lease_expiry = now + limits.timeout.count() / 1000 + 10;
    if (txn->PutUrl(url, state).ok()) (void)txn->Commit();
    return Lease::kTaken;
  }

  // Records a URL's result, sets or clears its backoff, releases the lease.
  void RecordUrl(const std::string &url, bool ok, const std::string &result,
                 const HttpResponse &response) {
    Result<RevocationStore::WriteTxn> txn = store_->Write();
    if (!txn.ok()) return;
    const int64_t now = clock_.Now();
    UrlState state = txn->GetUrl(url).value_or(UrlState{});
    state.last_ok = ok;
    state.last_result = result;
    state.last_attempt = now;
    state.duration_ms = response.duration_ms;
    if (ok) {
      state.last_success = now;
      state.failures = 0;
      state.backoff_until = 0;
      if (response.status == 200) {
        state.etag = response.etag;
        state.last_modified = response.last_modified;
      }
    } else {
      state.failures += 1;
      int64_t backoff = kBackoffFirst;
      for (int64_t i = 1; i < state.failures && backoff < kBackoffMax; ++i) backoff *= 2;
      state.backoff_until = now + std::min(backoff, kBackoffMax);
    }
    if (state.lease_pid == getpid()) {
      state.lease_pid = 0;
      state.lease_expiry = 0;
    }
    if (txn->PutUrl(url, state).ok()) (void)txn->Commit();
  }

  HttpRequest BuildRequest(const Job &job, const std::string &url, bool ocsp) {
    HttpRequest request;
    request.limits = job.limits;
    if (ocsp) {
      std::string get = OcspGetUrl(url, job.request);
      if (!get.empty()) {
        request.url = get;
      } else {
        request.url = url;
        request.post_body = job.request;
        request.content_type = "application/ocsp-request";
      }
      return request;
    }
    request.url = url;
    // Conditional GET only when the cached CRL came from this very URL.
    Result<RevocationStore::ReadTxn> txn = store_->Read();
    if (txn.ok()) {
      std::optional<CrlMeta> meta = txn->GetCrl(IssuerId(job.issuer.get()));
      std::optional<UrlState> state = txn->GetUrl(url);
      // (Not for a record from before certgate_strict: its CRL is to be read again.)
      if (meta && state && meta->source == url && (meta->flags & kCrlDefectsRecorded) != 0) {
        request.if_none_match = state->etag;
        request.if_modified_since = state->last_modified;
      }
    }
    return request;
  }

  // Interprets a response: ingests a CRL / stores an OCSP answer. Returns the
  // result text; *ok when the URL delivered usable data.
  std::string Process(const Job &job, const std::string &url, bool ocsp,
                      const HttpResponse &response, bool *ok) {
    *ok = false;
    if (!response.completed) return response.error;
    const int64_t now = clock_.Now();
    if (!ocsp && response.status == 304) {
      Result<RevocationStore::WriteTxn> txn = store_->Write();
      const std::string id = IssuerId(job.issuer.get());
      if (txn.ok()) {
        if (std::optional<CrlMeta> meta = txn->GetCrl(id)) {
          meta->checked_at = now;
          Status confirmed = txn->PutCrl(id, *meta);
          if (confirmed.ok()) confirmed = txn->Commit();
          if (!confirmed.ok())
            return "not modified (HTTP 304), not recorded: " + confirmed.message();
        }
      }
      *ok = true;
      return "not modified (HTTP 304)";
    }
    if (response.status != 200) return "HTTP " + std::to_string(response.status);
    if (ocsp) {
      Result<OcspRecord> record =
          VerifyOcspResponse(response.body, job.cert.get(), job.issuer.get(), url, now);
      if (!record.ok()) return record.status().message();
      Status stored = StoreOcsp(*store_, job.cert_id, record.value());
      if (!stored.ok()) return stored.message();
      *ok = true;
      static const char *kStatus[] = {"good", "revoked", "unknown"};
      return std::string("ok ") + kStatus[std::clamp(record->status, 0, 2)] +
             " thisUpdate=" + FormatTime(record->this_update) +
             (record->next_update != 0 ? " nextUpdate=" + FormatTime(record->next_update) : "");
    }
    Result<ParsedCrl> crl = ParseCrl(response.body);
    if (!crl.ok()) return crl.status().message();
    if (!CrlScopeCovers(crl->scope_urls, {url})) {
      return "a CRL for another distribution point (its issuingDistributionPoint names " +
             crl->scope_urls.front() + ")";
    }
    Result<IngestResult> ingested = IngestCrl(*store_, crl.value(), job.issuer.get(), url, now);
    if (!ingested.ok()) return ingested.status().message();
    *ok = true;
    const CrlMeta &meta = ingested->meta;
    return std::string(ingested->outcome == IngestResult::Outcome::kStored ? "stored"
                                                                           : "unchanged") +
           " crl_number=" + CrlNumberText(meta.crl_number_dec) +
           " entries=" + std::to_string(meta.count) +
           (meta.next_update != 0 ? " nextUpdate=" + FormatTime(meta.next_update) : "");
  }

  // Tries job->urls[index..] in order; the first URL that delivers wins.
  void RunUrl(std::shared_ptr<Job> job, size_t index, bool ocsp) {
    if (index >= job->urls.size()) {
      Done(job->key);
      return;
    }
    const std::string url = job->urls[index];
    const int64_t now = clock_.Now();
    switch (TakeLease(url, job->limits, now, false)) {
      case Lease::kBackoff:
        RunUrl(job, index + 1, ocsp);
        return;
      case Lease::kHeld: {
        // Another process fetches it: wait for its result in the store.
        if (job->lease_wait_until == SteadyClock::time_point()) {
          job->lease_wait_until =
              SteadyClock::now() + job->limits.timeout + std::chrono::seconds(5);
        }
        if (SteadyClock::now() < job->lease_wait_until) {
          Fetcher().Post([this, job, index, ocsp] { RunUrl(job, index, ocsp); }, kLeasePoll);
        } else {
          Done(job->key);
        }
        return;
      }
      case Lease::kTaken:
        break;
    }
    // If another process finished this URL while we waited, its data is in the store.
    if (job->lease_wait_until != SteadyClock::time_point()) {
      Result<RevocationStore::ReadTxn> txn = store_->Read();
      std::optional<UrlState> state = txn.ok() ? txn->GetUrl(url) : std::nullopt;
      if (state && state->last_attempt >= job->created && state->last_ok) {
        RecordUrlLeaseRelease(url);
        Done(job->key);
        return;
      }
    }
    Fetcher().Submit(BuildRequest(*job, url, ocsp),
                     [this, job, index, ocsp, url](HttpResponse response) {
                       bool ok = false;
                       std::string result = Process(*job, url, ocsp, response, &ok);
                       RecordUrl(url, ok, result, response);
                       // Once this callback has released the body.
                       if (response.body.size() > kTrimAfterBytes) {
                         Fetcher().Post([] { ReturnFreedMemory(); });
                       }
                       if (ok) {
                         Done(job->key);
                       } else {
                         RunUrl(job, index + 1, ocsp);
                       }
                     });
  }

  void RecordUrlLeaseRelease(const std::string &url) {
    Result<RevocationStore::WriteTxn> txn = store_->Write();
    if (!txn.ok()) return;
    std::optional<UrlState> state = txn->GetUrl(url);
    if (state && state->lease_pid == getpid()) {
      state->lease_pid = 0;
      state->lease_expiry = 0;
      if (txn->PutUrl(url, *state).ok()) (void)txn->Commit();
    }
  }

  std::vector<std::string> ChainKeys(const ChainEvidence &evidence) {
    std::vector<std::string> keys;
    for (size_t d = 0; d + 1 < evidence.chain.size(); ++d) {
      X509 *cert = evidence.chain[d].get();
      X509 *issuer = evidence.chain[d + 1].get();
      keys.push_back("crl:" + LowerHex(IssuerId(issuer)));
      keys.push_back("ocsp:" + LowerHex(OcspCertIdKey(cert, issuer)));
    }
    return keys;
  }

  bool AnyPending(const std::vector<std::string> &keys) {  // mutex_ held
    for (const std::string &key : keys) {
      if (pending_.count(key) != 0) return true;
    }
    return false;
  }

  bool WaitForFetches(const ChainEvidence &evidence, std::chrono::milliseconds wait) {
    const std::vector<std::string> keys = ChainKeys(evidence);
    std::unique_lock<std::mutex> lock(mutex_);
    return cv_.wait_for(lock, wait, [&] { return !AnyPending(keys); });
  }

  bool FetchPending(const ChainEvidence &evidence) {
    const std::vector<std::string> keys = ChainKeys(evidence);
    std::lock_guard<std::mutex> lock(mutex_);
    return AnyPending(keys);
  }

  std::vector<std::string> FetchNow(const ChainEvidence &evidence, const Policy &policy) {
    std::vector<std::string> lines;
    if (!evidence.anchored) {
      lines.push_back("the chain does not reach a trust anchor: nothing is fetched");
      return lines;
    }
    const FetchLimits limits = FetchLimitsFrom(policy);
    for (size_t d = 0; d + 1 < evidence.chain.size(); ++d) {
      auto job = std::make_shared<Job>();
      job->cert = evidence.chain[d];
      job->issuer = evidence.chain[d + 1];
      job->limits = limits;
      job->created = clock_.Now();
      const std::string prefix = "depth " + std::to_string(d) + " ";
      auto run = [&](const std::vector<std::string> &urls, bool ocsp) {
        if (urls.empty()) {
          lines.push_back(prefix + (ocsp ? "ocsp" : "crl") + ": no URL in the certificate");
        }
        for (const std::string &url : urls) {
          std::string line = prefix + (ocsp ? "ocsp " : "crl ") + url + ": ";
          std::string refusal = UrlRefusal(url, limits.allow);
          if (!refusal.empty()) {
            lines.push_back(line + "skipped, " + refusal);
            continue;
          }
          TakeLease(url, limits, clock_.Now(), /*ignore_backoff=*/true);
          HttpRequest request = BuildRequest(*job, url, ocsp);
          request.if_none_match.clear();
          request.if_modified_since.clear();
          HttpResponse response = HttpFetch(request);
          bool ok = false;
          std::string result = Process(*job, url, ocsp, response, &ok);
          RecordUrl(url, ok, result, response);
          std::string how = response.completed
                                ? "HTTP " + std::to_string(response.status) + ", " +
                                      std::to_string(response.body.size()) + " bytes, "
                                : std::string();
          lines.push_back(line + how + std::to_string(response.duration_ms) +
                          " ms: " + (ok ? "" : "failed: ") + result);
        }
      };
      run(CrlUrls(job->cert.get()), false);
      Result<std::string> request = OcspRequestDer(job->cert.get(), job->issuer.get());
      if (request.ok()) {
        job->request = request.value();
        job->cert_id = OcspCertIdKey(job->cert.get(), job->issuer.get());
        run(AiaUrls(job->cert.get(), NID_ad_OCSP), true);
      }
    }
    return lines;
  }

  std::vector<std::string> List() {
    std::vector<std::string> lines;
    Result<RevocationStore::Listing> listing = store_->List();
    if (!listing.ok()) {
      lines.push_back("error: " + listing.status().message());
      return lines;
    }
    const int64_t now = clock_.Now();
    for (const auto &[id, m] : listing->crls) {
      const std::vector<std::string_view> defects = CrlStrictDefects(m);
      const std::string strict = !defects.empty() ? " strict_defects=" + Join(defects)
                                 : (m.flags & kCrlDefectsRecorded) == 0
                                     ? " strict_defects=unrecorded"
                                     : "";
      lines.push_back("crl issuer=\"" + m.issuer + "\" id=" + LowerHex(id) + " crl_number=" +
                      CrlNumberText(m.crl_number_dec) + " entries=" + std::to_string(m.count) +
                      strict + " thisUpdate=" + FormatTime(m.this_update) +
                      " nextUpdate=" + (m.next_update != 0 ? FormatTime(m.next_update) : "none") +
                      " source=" + m.source + " stored=" + Ago(m.ingested_at, now) +
                      " checked=" + Ago(m.checked_at, now));
    }
    static const char *kStatus[] = {"good", "revoked", "unknown"};
    for (const auto &[id, o] : listing->ocsp) {
      lines.push_back(
          "ocsp cert=\"" + o.subject + "\" status=" + kStatus[std::clamp(o.status, 0, 2)] +
          " thisUpdate=" + FormatTime(o.this_update) +
          " nextUpdate=" + (o.next_update != 0 ? FormatTime(o.next_update) : "none") +
          (o.status == 1
               ? " revoked_at=" + FormatTime(o.revoked_at) + " reason=" + CrlReasonName(o.reason)
               : "") +
          " source=" + o.source);
    }
    for (const auto &[url, u] : listing->urls) {
      lines.push_back(
          "url " + url + " " +
          (u.last_attempt == 0 ? "never fetched"
                               : (u.last_ok ? "ok: " : "failed: ") + u.last_result) +
          " last_attempt=" + Ago(u.last_attempt, now) + " duration_ms=" +
          std::to_string(u.duration_ms) + " failures=" + std::to_string(u.failures) +
          (u.backoff_until > now ? " backoff_until=" + FormatTime(u.backoff_until) : "") +
          (u.etag.empty() ? "" : " etag=" + u.etag));
    }
    for (const auto &[path, f] : listing->files) {
      lines.push_back("file " + path + " size=" + std::to_string(f.size) + " " + f.result);
    }
    lines.push_back("serials " + std::to_string(listing->serials) + " in " + store_->dir());
    return lines;
  }

  std::unique_ptr<RevocationStore> store_;
  const Clock &clock_;
  static constexpr int64_t kUnchangedPauseSeconds = 2;
  int64_t refresh_interval_ = 3600;
  std::chrono::steady_clock::duration rescan_interval_ = std::chrono::seconds(10);

  std::once_flag fetcher_once_;
  std::unique_ptr<RevocationFetcher> fetcher_;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::set<std::string> pending_;  // job keys: "crl:<issuer id>", "ocsp:<cert id>"
  X509_STORE *trust_ = nullptr;
  std::vector<std::string> preload_paths_;
  SteadyClock::time_point last_rescan_;
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
  SteadyClock::time_point next_repair_;  // repair_mutex_
  std::atomic<bool> repair_scheduled_{false};
};

// ---- RevocationChecker

RevocationChecker::RevocationChecker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RevocationChecker::~RevocationChecker() = default;

Result<std::unique_ptr<RevocationChecker>> RevocationChecker::Open(const std::string &dir,
                                                                   const Clock &clock) {
  Result<std::unique_ptr<RevocationStore>> store = RevocationStore::Open(dir);
  if (!store.ok()) return store.status();
  auto impl = std::make_unique<Impl>(std::move(store).value(), clock);
  return std::unique_ptr<RevocationChecker>(new RevocationChecker(std::move(impl)));
}

Status RevocationChecker::Preload(const std::vector<std::string> &paths, X509_STORE *trust) {
  return impl_->Preload(paths, trust);
}
std::vector<RevocationAnswer> RevocationChecker::Check(const ChainEvidence &evidence,
                                                       const Policy &policy) {
  return impl_->Check(evidence, policy);
}
bool RevocationChecker::WaitForFetches(const ChainEvidence &evidence,
                                       std::chrono::milliseconds wait) {
  return impl_->WaitForFetches(evidence, wait);
}
bool RevocationChecker::FetchPending(const ChainEvidence &evidence) {
  return impl_->FetchPending(evidence);
}
std::vector<std::string> RevocationChecker::FetchNow(const ChainEvidence &evidence,
                                                     const Policy &policy) {
  return impl_->FetchNow(evidence, policy);
}
std::vector<std::string> RevocationChecker::List() { return impl_->List(); }
Status RevocationChecker::Purge() { return impl_->store_->Purge(); }
void RevocationChecker::SetRefreshInterval(std::chrono::seconds interval) {
  impl_->refresh_interval_ = interval.count();
}
void RevocationChecker::SetRescanInterval(std::chrono::seconds interval) {
  std::lock_guard<std::mutex> lock(impl_->mutex_);
  impl_->rescan_interval_ = interval;
}
const std::string &RevocationChecker::dir() const { return impl_->store_->dir(); }
RevocationStore &RevocationChecker::store() { return *impl_->store_; }

}  // namespace certgate
