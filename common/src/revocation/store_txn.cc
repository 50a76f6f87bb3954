// RevocationStore::ReadTxn and WriteTxn (store.h).
#include <certgate/ossl_ptr.h>
#include <errno.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "store_lmdb.h"

namespace certgate {

using namespace store_detail;

namespace {

// A walk of a large generation maps every page of it into this process: the
// whole CRL (46 MB for a million serials) in each worker's PSS, while its
// lookups need a few pages. The walk runs in a read transaction, whose keys and
// values all point into LMDB's map (one shared, read-only file mapping), so the
// span between the lowest and highest of them lies inside it. Unmapping that
// span leaves the pages in the page cache: a later read faults them back in,
// with the same content.
constexpr uint64_t kReleaseAfterWalk = 16384;  // serials, about 150 pages

struct MappedSpan {
  uintptr_t low = UINTPTR_MAX;
  uintptr_t high = 0;
  void Add(const MDB_val &val) {
    const auto at = reinterpret_cast<uintptr_t>(val.mv_data);
    low = std::min(low, at);
    high = std::max(high, at + val.mv_size);
  }
};

void ReleaseMappedPages(MDB_env *env, const MappedSpan &span) {
  MDB_envinfo info{};
  const auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  if (env == nullptr || mdb_env_info(env, &info) != 0 || span.low >= span.high || page == 0 ||
      span.high - span.low > info.me_mapsize) {
    return;
  }
  const uintptr_t first = (span.low + page - 1) / page * page;  // whole pages only
  const uintptr_t end = span.high / page * page;
  if (first < end) (void)madvise(reinterpret_cast<void *>(first), end - first, MADV_DONTNEED);
}

// Walks generation `gen`'s serials in key order: count and SHA-256 over each
// key suffix (without the generation) and value. Sizes are checked before
// anything is read; keys must strictly ascend.
// `txn` is a read transaction (see ReleaseMappedPages).
Status WalkGeneration(MDB_txn *txn, MDB_dbi dbi, uint64_t gen, uint64_t *count,
                      std::string *digest) {
  MappedSpan span;
  *count = 0;
  MDB_cursor *cursor = nullptr;
  int rc = mdb_cursor_open(txn, dbi, &cursor);
  if (rc != 0) return LmdbError("cannot open a cursor", rc);
  ossl::UniquePtr<EVP_MD_CTX> owned_ctx(EVP_MD_CTX_new());
  EVP_MD_CTX *ctx = owned_ctx.get();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
    mdb_cursor_close(cursor);
    return Status::Error("revocation cache: cannot start a SHA-256");
  }
  const std::string prefix = GenPrefix(gen);
  std::string buffer, last;
  buffer.reserve(1 << 16);
  std::string problem;
  MDB_val k = Val(prefix), v;
  for (rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
    if (k.mv_size < 8 || memcmp(k.mv_data, prefix.data(), 8) != 0) break;
    if (k.mv_size > kSerialKeyMax || v.mv_size != kSerialValueSize) {
      problem = "a serial entry of an impossible size";
      break;
    }
    const std::string_view key = View(k);
    if (!last.empty() && key <= last) {
      problem = "serial keys out of order";
      break;
    }
    last.assign(key.data(), key.size());
    buffer.push_back(static_cast<char>(key.size() - 8));
    buffer.append(key.data() + 8, key.size() - 8);
    buffer.append(static_cast<const char *>(v.mv_data), v.mv_size);
    if (buffer.size() > (1 << 16) - 512) {
      EVP_DigestUpdate(ctx, buffer.data(), buffer.size());
      buffer.clear();
    }
    span.Add(k);
    span.Add(v);
    ++*count;
  }
  mdb_cursor_close(cursor);
  if (*count >= kReleaseAfterWalk) ReleaseMappedPages(mdb_txn_env(txn), span);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_DigestUpdate(ctx, buffer.data(), buffer.size());
  EVP_DigestFinal_ex(ctx, md, &md_len);
  if (!problem.empty()) return Status::Error(problem);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cannot read the serials", rc);
  digest->assign(reinterpret_cast<char *>(md), md_len);
  return Status::Ok();
}

// A record, or nullopt when absent; a record that does not decode, or an LMDB
// answer that means damage, is reported.
template <typename T, typename Decode>
std::optional<T> GetDecoded(RevocationStore *store, uint64_t epoch, MDB_txn *txn, MDB_dbi dbi,
                            std::string_view key, Decode decode, const char *what) {
  int rc = 0;
  std::optional<std::string_view> v = RawGet(txn, dbi, key, &rc);
  if (!v) {
    if (IsDamage(rc))
      store->ReportDamage(std::string("reading a ") + what + ": " + mdb_strerror(rc), epoch);
    return std::nullopt;
  }
  std::optional<T> decoded = decode(*v);
  if (!decoded) store->ReportDamage(std::string("a ") + what + " fails its checksum", epoch);
  return decoded;
}

// Every record whose key starts with `issuer_id` (an issuer's CRLs); a
// record that does not decode is reported, and left out.
std::vector<std::pair<std::string, CrlMeta>> IssuerCrls(RevocationStore *store, uint64_t epoch,
                                                        MDB_txn *txn, MDB_dbi dbi,
                                                        std::string_view issuer_id) {
  std::vector<std::pair<std::string, CrlMeta>> out;
  if (issuer_id.empty()) return out;
  MDB_cursor *cursor = nullptr;
  int rc = mdb_cursor_open(txn, dbi, &cursor);
  if (rc != 0) {
    if (IsDamage(rc))
      store->ReportDamage(std::string("reading CRL records: ") + mdb_strerror(rc), epoch);
    return out;
  }
  MDB_val k = Val(issuer_id), v;
  for (rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
    const std::string_view key = View(k);
    if (key.substr(0, issuer_id.size()) != issuer_id) break;
    std::optional<CrlMeta> decoded = DecodeCrl(View(v));
    if (!decoded) {
      store->ReportDamage("a CRL record fails its checksum", epoch);
      continue;
    }
    out.emplace_back(std::string(key), std::move(*decoded));
  }
  mdb_cursor_close(cursor);
  if (IsDamage(rc))
    store->ReportDamage(std::string("reading CRL records: ") + mdb_strerror(rc), epoch);
  return out;
}

}  // namespace

// ---- ReadTxn

RevocationStore::ReadTxn::ReadTxn(ReadTxn &&other) noexcept
    : store_(other.store_), env_(std::move(other.env_)), txn_(other.txn_), cursor_(other.cursor_) {
  other.txn_ = nullptr;
  other.cursor_ = nullptr;
}
RevocationStore::ReadTxn::~ReadTxn() {
  if (txn_ != nullptr) {
    ReturnReader(*env_, txn_, cursor_);
  } else if (cursor_ != nullptr) {
    mdb_cursor_close(cursor_);
  }
}
std::optional<CrlMeta> RevocationStore::ReadTxn::GetCrl(std::string_view issuer_id) const {
  return GetDecoded<CrlMeta>(store_, env_->epoch, txn_, env_->crl, issuer_id, DecodeCrl,
                             "CRL record");
}
std::vector<std::pair<std::string, CrlMeta>> RevocationStore::ReadTxn::GetIssuerCrls(
    std::string_view issuer_id) const {
  return IssuerCrls(store_, env_->epoch, txn_, env_->crl, issuer_id);
}
std::optional<CrlHead> RevocationStore::ReadTxn::GetCrlHead(std::string_view issuer_id) const {
  int rc = 0;
  std::optional<std::string_view> v = RawGet(txn_, env_->crl, issuer_id, &rc);
  if (!v) {
    if (IsDamage(rc))
      store_->ReportDamage(std::string("reading a CRL record: ") + mdb_strerror(rc), env_->epoch);
    return std::nullopt;
  }
  Reader r(*v);
  CrlHead head;
  head.gen = static_cast<uint64_t>(r.Int());
  head.this_update = r.Int();
  head.next_update = r.Int();
  if (!r.good()) {
    store_->ReportDamage("a CRL record fails its checksum", env_->epoch);
    return std::nullopt;
  }
  return head;
}

SerialLookup RevocationStore::ReadTxn::FindRevoked(uint64_t gen, std::string_view magnitude,
                                                   bool negative) const {
  SerialLookup out;
  // The key of SerialKey(), on the stack: no allocation on the lookup path.
  while (!magnitude.empty() && magnitude.front() == '\0') magnitude.remove_prefix(1);
  if (magnitude.size() > 255) return out;
  char buf[kSerialKeyMax];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((gen >> (8 * (7 - i))) & 0xff);
  buf[8] = static_cast<char>(negative ? 0 : 1);
  buf[9] = static_cast<char>(magnitude.size());
  memcpy(buf + 10, magnitude.data(), magnitude.size());
  const std::string_view key(buf, 10 + magnitude.size());
  auto damaged = [&](const std::string &why) {
    store_->ReportDamage("the serial table: " + why, env_->epoch);
    out.kind = SerialLookup::kDamaged;
    return out;
  };
  int rc = cursor_ != nullptr ? 0 : mdb_cursor_open(txn_, env_->serial, &cursor_);
  if (rc != 0) return damaged(mdb_strerror(rc));
  MDB_val k = Val(key), v;
  rc = mdb_cursor_get(cursor_, &k, &v, MDB_SET_RANGE);
  if (rc != 0 && rc != MDB_NOTFOUND) return damaged(mdb_strerror(rc));
  if (rc == 0 && View(k) == key) {
    if (v.mv_size != kSerialValueSize) return damaged("an entry of an impossible size");
    const unsigned char *value = static_cast<const unsigned char *>(v.mv_data);
    uint64_t when = 0;
    for (int i = 0; i < 8; ++i) when |= static_cast<uint64_t>(value[i]) << (8 * i);
    out.kind = SerialLookup::kRevoked;
    out.entry.revoked_at = static_cast<int64_t>(when);
    out.entry.reason = value[8] == 0xff ? -1 : value[8];
    return out;
  }
  // Absent only if its neighbours bracket it: a damaged branch page sends a
  // lookup to the wrong leaf, where it would "miss".
  if (rc == 0 && View(k) < key) return damaged("a lookup landed before its key");
  rc = mdb_cursor_get(cursor_, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
  if (rc != 0 && rc != MDB_NOTFOUND) return damaged(mdb_strerror(rc));
  if (rc == 0 && !(View(k) < key)) return damaged("a lookup landed past its key");
  return out;
}

std::optional<RevokedEntry> RevocationStore::ReadTxn::GetRevoked(uint64_t gen,
                                                                 std::string_view magnitude,
                                                                 bool negative) const {
  SerialLookup found = FindRevoked(gen, magnitude, negative);
  if (found.kind != SerialLookup::kRevoked) return std::nullopt;
  return found.entry;
}

Status RevocationStore::ReadTxn::VerifySerials(const CrlMeta &meta) const {
  if (env_->Hinted(meta.gen)) return Status::Ok();
  auto verified = [&] {
    std::lock_guard<std::mutex> lock(env_->mutex);
    return env_->verified.count(meta.gen) != 0;
  };
  if (verified()) {
    env_->Hint(meta.gen);
    return Status::Ok();
  }
  std::lock_guard<std::mutex> walking(env_->verify_mutex);
  if (verified()) return Status::Ok();
  uint64_t count = 0;
  std::string digest;
  Status walked = WalkGeneration(txn_, env_->serial, meta.gen, &count, &digest);
  std::string problem;
  if (!walked.ok()) {
    problem = walked.message();
  } else if (count != meta.stored) {
    problem = Hex(count) + " serials where its record says " + Hex(meta.stored);
  } else if (digest != meta.serial_digest) {
    problem = "its serials do not match their digest";
  }
  if (!problem.empty()) {
    const std::string why = "the CRL of " + meta.issuer + ": " + problem;
    store_->ReportDamage(why, env_->epoch);
    return Status::Error("revocation cache " + store_->dir() + " is damaged: " + why);
  }
  std::lock_guard<std::mutex> lock(env_->mutex);
  env_->verified.insert(meta.gen);
  env_->Hint(meta.gen);
  return Status::Ok();
}

Status RevocationStore::ReadTxn::DigestSerials(uint64_t gen, uint64_t *count,
                                               std::string *digest) const {
  Status walked = WalkGeneration(txn_, env_->serial, gen, count, digest);
  if (walked.ok()) {
    std::lock_guard<std::mutex> lock(env_->mutex);
    env_->verified.insert(gen);
  }
  return walked;
}

uint64_t RevocationStore::ReadTxn::epoch() const { return env_->epoch; }
uint64_t RevocationStore::WriteTxn::epoch() const { return env_->epoch; }

std::optional<OcspRecord> RevocationStore::ReadTxn::GetOcsp(std::string_view cert_id) const {
  return GetDecoded<OcspRecord>(store_, env_->epoch, txn_, env_->ocsp, cert_id, DecodeOcsp,
                                "OCSP record");
}
std::optional<UrlState> RevocationStore::ReadTxn::GetUrl(std::string_view url) const {
  return GetDecoded<UrlState>(store_, env_->epoch, txn_, env_->url, url, DecodeUrl, "URL record");
}
std::optional<FetchedIssuers> RevocationStore::ReadTxn::GetFetchedIssuers(
    std::string_view url) const {
  return GetDecoded<FetchedIssuers>(store_, env_->epoch, txn_, env_->meta,
                                    std::string(kFetchedIssuersPrefix) + std::string(url),
                                    DecodeFetchedIssuers, "fetched issuers record");
}
std::optional<FileState> RevocationStore::ReadTxn::GetFile(std::string_view path) const {
  return GetDecoded<FileState>(store_, env_->epoch, txn_, env_->file, path, DecodeFile,
                               "file record");
}

// ---- WriteTxn

RevocationStore::WriteTxn::WriteTxn(WriteTxn &&other) noexcept
    : store_(other.store_),
      env_(std::move(other.env_)),
      txn_(other.txn_),
      last_serial_key_(std::move(other.last_serial_key_)) {
  other.txn_ = nullptr;
}
RevocationStore::WriteTxn::~WriteTxn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}
std::optional<CrlMeta> RevocationStore::WriteTxn::GetCrl(std::string_view issuer_id) const {
  return GetDecoded<CrlMeta>(store_, env_->epoch, txn_, env_->crl, issuer_id, DecodeCrl,
                             "CRL record");
}
std::optional<UrlState> RevocationStore::WriteTxn::GetUrl(std::string_view url) const {
  return GetDecoded<UrlState>(store_, env_->epoch, txn_, env_->url, url, DecodeUrl, "URL record");
}
std::optional<OcspRecord> RevocationStore::WriteTxn::GetOcsp(std::string_view cert_id) const {
  return GetDecoded<OcspRecord>(store_, env_->epoch, txn_, env_->ocsp, cert_id, DecodeOcsp,
                                "OCSP record");
}
std::optional<FileState> RevocationStore::WriteTxn::GetFile(std::string_view path) const {
  return GetDecoded<FileState>(store_, env_->epoch, txn_, env_->file, path, DecodeFile,
                               "file record");
}

namespace {
Status Put(MDB_txn *txn, MDB_dbi dbi, std::string_view key, std::string_view value,
           const char *what, unsigned flags = 0) {
  MDB_val k = Val(key), v = Val(value);
  int rc = mdb_put(txn, dbi, &k, &v, flags);
  if (rc != 0) return LmdbError(std::string("cannot store ") + what, rc);
  return Status::Ok();
}
}  // namespace

std::vector<std::pair<std::string, CrlMeta>> RevocationStore::WriteTxn::GetIssuerCrls(
    std::string_view issuer_id) const {
  return IssuerCrls(store_, env_->epoch, txn_, env_->crl, issuer_id);
}
Status RevocationStore::WriteTxn::PutCrl(std::string_view issuer_id, const CrlMeta &meta) {
  return Put(txn_, env_->crl, issuer_id, Encode(meta), "a CRL record");
}
Status RevocationStore::WriteTxn::PutOcsp(std::string_view cert_id, const OcspRecord &record) {
  return Put(txn_, env_->ocsp, cert_id, Encode(record), "an OCSP answer");
}
Status RevocationStore::WriteTxn::PutUrl(std::string_view url, const UrlState &state) {
  return Put(txn_, env_->url, url, Encode(state), "a URL state");
}
Status RevocationStore::WriteTxn::PutFile(std::string_view path, const FileState &state) {
  return Put(txn_, env_->file, path, Encode(state), "a file record");
}

std::optional<FetchStats> RevocationStore::WriteTxn::GetFetchStats(std::string_view url) const {
  return GetDecoded<FetchStats>(store_, env_->epoch, txn_, env_->meta,
                                std::string(kFetchStatsPrefix) + std::string(url), DecodeFetchStats,
                                "fetch statistics record");
}
Status RevocationStore::WriteTxn::PutFetchStats(std::string_view url, const FetchStats &stats) {
  return Put(txn_, env_->meta, std::string(kFetchStatsPrefix) + std::string(url), Encode(stats),
             "fetch statistics");
}

Status RevocationStore::WriteTxn::PutFetchedIssuers(std::string_view url,
                                                    const FetchedIssuers &issuers) {
  const std::string key = std::string(kFetchedIssuersPrefix) + std::string(url);
  // Bounded: count the URLs kept and find the one fetched longest ago.
  size_t kept = 0;
  bool replacing = false;
  std::string oldest_key;
  int64_t oldest = INT64_MAX;
  MDB_cursor *cursor = nullptr;
  if (mdb_cursor_open(txn_, env_->meta, &cursor) == 0) {
    MDB_val k = Val(kFetchedIssuersPrefix), v;
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
      const std::string_view at = View(k);
      if (at.substr(0, kFetchedIssuersPrefix.size()) != kFetchedIssuersPrefix) break;
      ++kept;
      if (at == key) replacing = true;
      std::optional<FetchedIssuers> record = DecodeFetchedIssuers(View(v));
      const int64_t fetched_at = record ? record->fetched_at : INT64_MIN;  // damaged: first out
      if (fetched_at < oldest) {
        oldest = fetched_at;
        oldest_key.assign(at.data(), at.size());
      }
    }
    mdb_cursor_close(cursor);
  }
  if (!replacing && kept >= kMaxFetchedIssuerUrls && !oldest_key.empty()) {
    MDB_val k = Val(oldest_key);
    const int rc = mdb_del(txn_, env_->meta, &k, nullptr);
    if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cannot drop fetched issuers", rc);
  }
  return Put(txn_, env_->meta, key, Encode(issuers), "fetched issuers");
}

Status RevocationStore::WriteTxn::DeleteGeneration(uint64_t gen, size_t max_entries, bool *done) {
  *done = false;
  MDB_cursor *cursor = nullptr;
  int rc = mdb_cursor_open(txn_, env_->serial, &cursor);
  if (rc != 0) return LmdbError("cannot open a cursor", rc);
  const std::string prefix = GenPrefix(gen);
  MDB_val k = Val(prefix), v;
  rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  for (size_t deleted = 0; rc == 0 && deleted < max_entries; ++deleted) {
    if (k.mv_size < prefix.size() || memcmp(k.mv_data, prefix.data(), prefix.size()) != 0) break;
    rc = mdb_cursor_del(cursor, 0);
    if (rc != 0) break;
    // The cursor now rests on the next key, or nowhere past the last one.
    rc = mdb_cursor_get(cursor, &k, &v, MDB_GET_CURRENT);
    if (rc == EINVAL || rc == MDB_NOTFOUND) {
      k = Val(prefix);
      rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
    }
  }
  mdb_cursor_close(cursor);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cannot delete an old CRL", rc);
  *done = rc == MDB_NOTFOUND || k.mv_size < prefix.size() ||
          memcmp(k.mv_data, prefix.data(), prefix.size()) != 0;
  return Status::Ok();
}

namespace {
constexpr std::string_view kStagingPrefix = "staging:";
}  // namespace

Status RevocationStore::WriteTxn::MarkStaging(uint64_t gen, int64_t pid) {
  return Put(txn_, env_->meta, std::string(kStagingPrefix) + GenPrefix(gen),
             std::string_view(reinterpret_cast<const char *>(&pid), sizeof pid), "a staging mark");
}

Status RevocationStore::WriteTxn::ClearStaging(uint64_t gen) {
  const std::string key = std::string(kStagingPrefix) + GenPrefix(gen);
  MDB_val k = Val(key);
  const int rc = mdb_del(txn_, env_->meta, &k, nullptr);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cannot clear a staging mark", rc);
  return Status::Ok();
}

std::vector<uint64_t> RevocationStore::WriteTxn::AbandonedGenerations() const {
  std::set<uint64_t> in_use;
  MDB_cursor *cursor = nullptr;
  MDB_val k, v;
  if (mdb_cursor_open(txn_, env_->crl, &cursor) == 0) {
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
      if (std::optional<CrlMeta> meta = DecodeCrl(View(v))) in_use.insert(meta->gen);
    }
    mdb_cursor_close(cursor);
  }
  if (mdb_cursor_open(txn_, env_->meta, &cursor) == 0) {
    k = Val(kStagingPrefix);
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
      const std::string_view key = View(k);
      if (key.substr(0, kStagingPrefix.size()) != kStagingPrefix) break;
      int64_t pid = 0;
      if (key.size() != kStagingPrefix.size() + 8 || v.mv_size != sizeof pid) continue;
      memcpy(&pid, v.mv_data, sizeof pid);
      // Alive (EPERM: alive, another user's); a pid that was reused only
      // delays the cleanup.
      const bool alive = pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
      if (!alive) continue;
      in_use.insert(GenOf(key.substr(kStagingPrefix.size())));
    }
    mdb_cursor_close(cursor);
  }
  std::vector<uint64_t> abandoned;
  if (mdb_cursor_open(txn_, env_->serial, &cursor) != 0) return abandoned;
  std::string seek = GenPrefix(0);
  k = Val(seek);
  for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE); rc == 0 && k.mv_size >= 8;) {
    const uint64_t gen = GenOf(View(k));
    if (in_use.count(gen) == 0) abandoned.push_back(gen);
    if (gen == UINT64_MAX) break;
    seek = GenPrefix(gen + 1);  // one seek per generation, not a walk of its serials
    k = Val(seek);
    rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  }
  mdb_cursor_close(cursor);
  return abandoned;
}

Result<uint64_t> RevocationStore::WriteTxn::NewGeneration() {
  uint64_t next = 1;
  int rc = 0;
  if (std::optional<std::string_view> v = RawGet(txn_, env_->meta, "next_gen", &rc);
      v && v->size() == 8) {
    memcpy(&next, v->data(), 8);
  }
  // Never one in use, whatever the counter says: a new CRL's serials written
  // into a live generation would be deleted with it.
  MDB_cursor *cursor = nullptr;
  MDB_val k, val;
  if (mdb_cursor_open(txn_, env_->serial, &cursor) == 0) {
    if (mdb_cursor_get(cursor, &k, &val, MDB_LAST) == 0 && k.mv_size >= 8)
      next = std::max(next, GenOf(View(k)) + 1);
    mdb_cursor_close(cursor);
  }
  if (mdb_cursor_open(txn_, env_->crl, &cursor) == 0) {
    for (rc = mdb_cursor_get(cursor, &k, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &val, MDB_NEXT)) {
      if (std::optional<CrlMeta> meta = DecodeCrl(View(val))) next = std::max(next, meta->gen + 1);
    }
    mdb_cursor_close(cursor);
  }
  if (mdb_cursor_open(txn_, env_->meta, &cursor) == 0) {
    k = Val(kStagingPrefix);
    for (rc = mdb_cursor_get(cursor, &k, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &val, MDB_NEXT)) {
      const std::string_view key = View(k);
      if (key.substr(0, kStagingPrefix.size()) != kStagingPrefix) break;
      next = std::max(next, GenOf(key.substr(kStagingPrefix.size())) + 1);
    }
    mdb_cursor_close(cursor);
  }
  uint64_t after = next + 1;
  Status put = Put(txn_, env_->meta, "next_gen",
                   std::string_view(reinterpret_cast<const char *>(&after), 8), "the generation");
  if (!put.ok()) return put;
  return next;
}

Status RevocationStore::WriteTxn::PutRevoked(uint64_t gen, std::string_view magnitude,
                                             bool negative, const RevokedEntry &entry) {
  std::string key = SerialKey(gen, magnitude, negative);
  std::string value = EncodeEntry(entry);
  MDB_val k = Val(key), v = Val(value);
  // Generations only grow, so a sorted CRL's keys are all past every stored key.
  unsigned flags = (last_serial_key_.empty() || key > last_serial_key_) ? MDB_APPEND : 0;
  int rc = mdb_put(txn_, env_->serial, &k, &v, flags);
  if (rc == MDB_KEYEXIST && flags == MDB_APPEND) rc = mdb_put(txn_, env_->serial, &k, &v, 0);
  if (rc != 0) return LmdbError("cannot store a revoked serial", rc);
  if (flags == MDB_APPEND) last_serial_key_ = std::move(key);
  return Status::Ok();
}

Status RevocationStore::WriteTxn::Commit() {
  int rc = mdb_txn_commit(txn_);
  txn_ = nullptr;
  if (rc != 0) {
    if (IsDamage(rc))
      store_->ReportDamage(std::string("a commit: ") + mdb_strerror(rc), env_->epoch);
    // LMDB turns a short write (a full disk) into EIO: say how full it is.
    struct statvfs fs {};
    if ((rc == EIO || rc == ENOSPC) && statvfs(store_->dir().c_str(), &fs) == 0) {
      const unsigned long long free_kib =
          static_cast<unsigned long long>(fs.f_bavail) * fs.f_frsize / 1024;
      return Status::Error("revocation cache " + store_->dir() + ": cannot commit: " +
                           mdb_strerror(rc) + " (" + std::to_string(free_kib) +
                           " KiB free on its file system; nothing of this write was kept)");
    }
    return LmdbError("cannot commit", rc);
  }
  return Status::Ok();
}

}  // namespace certgate
