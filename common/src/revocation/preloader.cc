#include "preloader.h"

#include <certgate/ossl_ptr.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cert_fields.h"
#include "text.h"

namespace certgate {

namespace {

using ossl::UniquePtr;
using SteadyClock = std::chrono::steady_clock;

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

}  // namespace

void CrlPreloader::SetRescanInterval(std::chrono::seconds interval) {
  std::lock_guard<std::mutex> lock(mutex_);
  rescan_interval_ = interval;
}

Status CrlPreloader::Preload(const std::vector<std::string> &paths, X509_STORE *trust) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (trust != nullptr && trust != trust_.get()) {
      X509_STORE_up_ref(trust);
      trust_.reset(trust);
    }
    for (const std::string &path : paths) {
      if (std::find(preload_paths_.begin(), preload_paths_.end(), path) == preload_paths_.end()) {
        preload_paths_.push_back(path);
      }
    }
    last_rescan_ = SteadyClock::now();
  }
  std::vector<std::string> all;
  for (const std::string &path : paths) {
    std::vector<std::string> files;
    Status listed = ListFiles(path, &files);
    if (!listed.ok()) return listed;
    for (const std::string &file : files) all.push_back(file);
  }
  return IngestFiles(all, /*stop_at_error=*/true);
}

// A delta CRL refused for want of its (newer) base, which a later file may hold.
static bool WaitsForBase(const Status &status) {
  return status.message().find("it waits for a newer base CRL") != std::string::npos;
}

// Ingests `files` in order; a file whose delta CRL waits for a base is tried
// again after the others (AD CS names "CA+.crl" before "CA.crl").
Status CrlPreloader::IngestFiles(const std::vector<std::string> &files, bool stop_at_error) {
  std::vector<std::string> again;
  for (const std::string &file : files) {
    Status status = IngestFile(file, nullptr, /*force=*/false);
    if (WaitsForBase(status)) {
      again.push_back(file);
    } else if (!status.ok() && stop_at_error) {
      return status;
    }
  }
  for (const std::string &file : again) {
    Status status = IngestFile(file, nullptr, /*force=*/false);
    if (!status.ok() && stop_at_error) return status;
  }
  return Status::Ok();
}

Status CrlPreloader::ListFiles(const std::string &path, std::vector<std::string> *files) {
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
std::vector<UniquePtr<X509>> CrlPreloader::IssuerCandidates(const ParsedCrl &crl) {
  UniquePtr<X509_STORE> trust;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (trust_ == nullptr) return {};
    X509_STORE_up_ref(trust_.get());
    trust.reset(trust_.get());
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
X509 *CrlPreloader::FindIssuerInTrust(const ParsedCrl &crl) {
  for (UniquePtr<X509> &candidate : IssuerCandidates(crl)) {
    if (VerifyCrl(crl, candidate.get()).ok()) return candidate.release();
  }
  return nullptr;
}

// Ingests every CRL of one preloaded file, each with the chain's `issuer`
// when that issued it, else with an issuer from the trust store. Unchanged
// files (same mtime and size as recorded, every CRL stored) are skipped
// unless forced.
Status CrlPreloader::IngestFile(const std::string &path, X509 *chain_issuer, bool force) {
  Status status = IngestFileOnce(path, chain_issuer, force);
  ReturnFreedMemory();  // the file's text and DER, in this thread's malloc arena
  return status;
}

Status CrlPreloader::IngestFileOnce(const std::string &path, X509 *chain_issuer, bool force) {
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
    Result<RevocationStore::ReadTxn> read = store_.Read();
    if (read.ok()) {
      std::optional<FileState> known = read->GetFile(path);
      if (known && known->mtime_ns == mtime_ns && known->size == st.st_size &&
          !known->issuer_id.empty() && StoredCrlsIntact(read.value(), *known)) {
        return Status::Ok();  // warm: nothing to parse
      }
    }
  }
  if (store_.damaged()) RepairStore();
  Result<std::string> data = ReadFile(path);
  if (!data.ok()) return Status::Error("certgate_crl " + data.status().message());
  Result<std::vector<ParsedCrl>> crls = ParseCrlFile(std::move(data).value());
  if (!crls.ok()) return Status::Error("certgate_crl " + path + ": " + crls.status().message());
  // Bases before deltas: a delta is checked against its cached base.
  std::stable_partition(crls->begin(), crls->end(),
                        [](const ParsedCrl &crl) { return !crl.is_delta; });
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
    if (issuer) {
      const std::string id = IssuerId(issuer.get());
      state.stored.push_back({RecordKey(id, crl), crl.crl_number, crl.this_update});
    }
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
  Result<RevocationStore::WriteTxn> txn = store_.Write();
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
bool CrlPreloader::StoredCrlsIntact(const RevocationStore::ReadTxn &txn, const FileState &file) {
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
void CrlPreloader::RepairStore() {
  std::lock_guard<std::mutex> repairing(repair_mutex_);
  if (!store_.damaged()) return;
  const auto now = SteadyClock::now();
  if (now < next_repair_) return;
  next_repair_ = now + std::chrono::seconds(10);  // a repair that fails is retried later
  Status repaired = store_.Repair();
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

void CrlPreloader::ScheduleRepair() {
  if (repair_scheduled_.exchange(true)) return;
  scheduler_.Post([this] {
    RepairStore();
    repair_scheduled_ = false;
    Rescan();
  });
}

// Which trust store, and how many certificates it holds: an issuer may be
// added to it (or another one given to Preload).
std::pair<const void *, int> CrlPreloader::TrustFingerprint() {
  UniquePtr<X509_STORE> trust;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (trust_ == nullptr) return {nullptr, 0};
    X509_STORE_up_ref(trust_.get());
    trust.reset(trust_.get());
  }
  X509_STORE_lock(trust.get());
  const int count = sk_X509_OBJECT_num(X509_STORE_get0_objects(trust.get()));
  X509_STORE_unlock(trust.get());
  return {trust.get(), count};
}

// One CRL of a preloaded file: stored with `issuer`, or, without one (an
// intermediate's CRL), remembered until a chain brings that issuer.
Status CrlPreloader::IngestOne(const std::string &path, const ParsedCrl &crl, X509 *issuer,
                               bool verified, std::string *result) {
  if (issuer == nullptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_files_[std::string(crl.issuer_der)].insert(path);
    has_pending_files_ = true;
    *result = "waiting for a chain with issuer " + crl.issuer;
    return Status::Ok();
  }
  auto ingest = [&] {
    return verified ? IngestVerifiedCrl(store_, crl, issuer, "file:" + path, clock_.Now())
                    : IngestCrl(store_, crl, issuer, "file:" + path, clock_.Now());
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
    *result =
        std::string(ingested->outcome == IngestResult::Outcome::kStored ? "stored" : "unchanged") +
        (crl.is_delta ? " delta" : "") +
        " crl_number=" + CrlNumberText(ingested->meta.crl_number_dec) +
        (crl.is_delta ? " base=" + crl.delta_base_dec : "") +
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

void CrlPreloader::Rescan() {
  std::vector<std::string> paths;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    paths = preload_paths_;
  }
  std::vector<std::string> all;
  for (const std::string &path : paths) {
    std::vector<std::string> files;
    if (!ListFiles(path, &files).ok()) continue;
    all.insert(all.end(), files.begin(), files.end());
  }
  (void)IngestFiles(all, /*stop_at_error=*/false);
  store_.CheckStaleReaders();
}

void CrlPreloader::MaybeRescan() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (preload_paths_.empty() || SteadyClock::now() - last_rescan_ < rescan_interval_) return;
  last_rescan_ = SteadyClock::now();
  scheduler_.Post([this] { Rescan(); });
}

void CrlPreloader::MaybeIngestPendingFile(X509 *issuer, const std::string &key) {
  if (!has_pending_files_.load()) return;
  std::vector<std::string> paths;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = pending_files_.find(NameDer(X509_get_subject_name(issuer)));
    if (it == pending_files_.end()) return;
    paths.assign(it->second.begin(), it->second.end());
  }
  if (!scheduler_.MarkPending(key)) return;
  std::shared_ptr<X509> held = ossl::Share(issuer);
  scheduler_.Post([this, paths, held, key] {
    // A delta waiting for its base is tried again after the base's file.
    std::vector<std::string> again;
    for (const std::string &path : paths) {
      if (WaitsForBase(IngestFile(path, held.get(), true))) again.push_back(path);
    }
    for (const std::string &path : again) (void)IngestFile(path, held.get(), true);
    scheduler_.Done(key);
  });
}

}  // namespace certgate
