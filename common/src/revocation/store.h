// RevocationStore: the shared LMDB revocation cache of DESIGN §5.
//
// One environment per host, shared by every process (nginx/Apache workers, the
// CLI). Readers never block (LMDB MVCC); writes are serialized by LMDB's single
// writer lock and a CRL is replaced in one write transaction, so a reader sees
// the old or the new CRL, never a mix, and a kill -9 in the middle loses nothing.
//
// Open in each process after fork, never before (see revocation.h). MDB_NOTLS:
// read transactions may move between threads.
//
// Sub-databases:
//   crl     issuer id (20 bytes)           -> CrlMeta (the issuer's full CRL)
//           issuer id + "#" + scope hash   -> CrlMeta (a partition's CRL: CrlKey, crl.h)
//           either + "+" (DeltaKey)        -> CrlMeta (its delta CRL, RFC 5280 §5.2.4)
//           (one issuer's records are adjacent: GetIssuerCrls reads them with a cursor)
//   serial  generation (8, BE) + serial    -> RevokedEntry
//   ocsp    CertID DER (SHA-1)             -> OcspRecord
//   url     URL                            -> UrlState (validators, backoff, lease)
//   file    preloaded file path            -> FileState
//   meta    "next_gen"                     -> uint64
//           "fetch:" + URL                 -> FetchStats (errors by class, for the status page)
//           "format"                       -> kStoreFormat (magic and version)
//           "issuer:" + URL                -> FetchedIssuers (AIA caIssuers, issue 11 §3)
// Serial keys are grouped by the CRL's generation (a counter bumped per ingest)
// rather than by issuer id, so a new CRL's (sorted) entries are appended
// (MDB_APPEND: full pages, fast) and the old generation is deleted in the same
// transaction. A lookup is a short cursor walk over the issuer's CRL records
// (crl[issuer id...]), then serial[gen, serial].
//
// Damage (DESIGN §5, issue 9 §4): the store fails closed. Before mapping, the
// files must belong to the caller (or root), be writable by nobody else, and
// data.mdb's meta pages must be sane for its size (a damaged map would raise
// SIGBUS). Every record carries a checksum; each CRL record carries a digest
// of its serial set, checked the first time a process uses that CRL; a lookup
// that misses checks that its neighbours bracket the serial (a damaged branch
// page would route it to the wrong leaf). Anything that does not add up marks
// the store damaged: lookups then answer "damaged", never "not revoked", and
// Repair() moves data.mdb aside (data.mdb.corrupt-<time>, exactly one process
// does) and opens a fresh one, which every other process picks up.
#pragma once

#include <certgate/result.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

typedef struct MDB_env MDB_env;
typedef struct MDB_txn MDB_txn;
typedef struct MDB_cursor MDB_cursor;
typedef unsigned int MDB_dbi;

namespace certgate {

// CRL flags (from issuingDistributionPoint).
constexpr uint32_t kCrlOnlyUserCerts = 1;
constexpr uint32_t kCrlOnlyCaCerts = 2;
// RFC 5280 §5.2.3 defects, recorded with the CRL so that each policy decides
// (certgate_strict) at lookup. A CRL without crlNumber has an empty
// crl_number_dec (records of every version say so). kCrlDefectsRecorded: the
// record says whether its crlNumber is critical; records written before
// certgate_strict lack it, and are ingested again before they count as "good"
// under strict on. Older versions of certgate ignore these bits.
constexpr uint32_t kCrlNumberCritical = 1u << 2;
constexpr uint32_t kCrlDefectsRecorded = 1u << 3;
// A base CRL a delta CRL found too old (its deltaCRLIndicator names a newer
// base): due for refresh. Cleared by the next ingest of the base.
constexpr uint32_t kCrlBaseRefreshWanted = 1u << 4;

struct CrlMeta {
  uint64_t gen = 0;  // key prefix of this CRL's serials
  int64_t this_update = 0;
  int64_t next_update = 0;         // 0: none
  std::string crl_number;          // big-endian magnitude bytes; empty: no crlNumber
  std::string crl_number_dec;      // decimal, for messages
  std::string source;              // URL or "file:/path"
  int64_t ingested_at = 0;         // when this CRL was stored
  int64_t checked_at = 0;          // last time its source confirmed it (304, same number)
  uint64_t count = 0;              // revoked entries stored
  uint32_t flags = 0;              // kCrlOnly*, kCrlNumberCritical, kCrlDefectsRecorded
  std::string issuer;              // issuer name, RFC 2253, for messages
  std::vector<std::string> scope;  // ParsedCrl::scope_urls; empty: the whole issuer
  uint64_t stored = 0;             // serials in the table under `gen` (duplicates once)
  std::string serial_digest;       // SHA-256 over those serials' keys and values, in order
  // Delta CRLs. Stored after the fields above only when set, so that a base
  // CRL without freshestCRL keeps the record format of older versions.
  std::vector<std::string> delta_urls;  // a base CRL's freshestCRL URIs
  std::string delta_base;               // a delta CRL's base crlNumber (magnitude)
  std::string delta_base_dec;           // decimal; non-empty: this record is a delta
};

// The fixed part of a CrlMeta, read without allocating (the lookup fast path).
struct CrlHead {
  uint64_t gen = 0;
  int64_t this_update = 0, next_update = 0;
};

struct RevokedEntry {
  int64_t revoked_at = 0;
  int reason = -1;  // CRLReason code, -1 = none
};

struct OcspRecord {
  int status = 2;  // V_OCSP_CERTSTATUS_GOOD 0 / REVOKED 1 / UNKNOWN 2
  int64_t this_update = 0;
  int64_t next_update = 0;  // 0: none
  int64_t revoked_at = 0;
  int reason = -1;
  std::string source;  // responder URL
  int64_t fetched_at = 0;
  std::string subject;  // cert subject and serial, for messages
};

struct UrlState {
  std::string etag, last_modified;  // conditional GET validators
  bool last_ok = false;
  std::string last_result;  // "ok crl_number=5", "HTTP 500", "connection refused", ...
  int64_t last_attempt = 0, last_success = 0, duration_ms = 0;
  int64_t failures = 0;       // consecutive
  int64_t backoff_until = 0;  // no attempt before (unless forced)
  int64_t lease_pid = 0, lease_expiry = 0;
};

struct FileState {
  int64_t mtime_ns = 0, size = 0;
  std::string issuer_id;  // empty: not ingested (issuer unknown or error)
  std::string result;
  // Per CRL of the file that was stored: its record key (CrlKey or DeltaKey,
  // named issuer_id from before partitions), then its crlNumber and
  // thisUpdate, so that a warm start can check the store still holds it.
  struct Stored {
    std::string issuer_id, crl_number;
    int64_t this_update = 0;
  };
  std::vector<Stored> stored;
};

// What the status page reports of one URL's fetches beyond its UrlState:
// errors since the record was made, by class (FetchErrorClass), and when the
// last one happened. Kept in the meta sub-database, so that older versions of
// certgate (which never read these keys) share the store unchanged.
struct FetchStats {
  int64_t last_error = 0;
  int64_t failing_since = 0;  // the first failure after a success (or ever)
  std::vector<std::pair<std::string, int64_t>> errors;  // class -> count, sorted by class
};

// CA certificates fetched from one AIA caIssuers URL (issue 11 §3): kept so
// that each is fetched once per host and survives restarts. Untrusted data:
// only ever offered to chain building as candidate intermediates.
struct FetchedIssuers {
  int64_t fetched_at = 0;
  std::vector<std::string> certs_der;  // the CA certificates of the response
};

// At most this many URLs' fetched issuers are kept; the oldest make room.
constexpr size_t kMaxFetchedIssuerUrls = 256;

// The answer of a serial lookup: damaged is never "not revoked".
struct SerialLookup {
  enum Kind { kAbsent, kRevoked, kDamaged } kind = kAbsent;
  RevokedEntry entry;
};

// Encodes serial magnitude bytes (big-endian, no leading zeros) as a key suffix
// that sorts numerically: length byte, then the bytes. `negative` sorts apart.
std::string SerialKey(uint64_t gen, std::string_view magnitude, bool negative = false);

class RevocationStore {
 public:
  struct Env;  // one opened data.mdb (opaque; Repair replaces it)
  static constexpr size_t kDefaultMapSize = size_t{4} << 30;
  // Creates `dir` (0700) and the environment when missing. Map size 4 GiB (sparse:
  // the file grows with use; a 1,000,000-entry CRL takes ~60 MB); tests pass a
  // small one to fill it. A damaged data.mdb is moved aside and a fresh one
  // made (logged on stderr, which both servers send to their error log); a
  // directory or file another user may write is refused.
  static Result<std::unique_ptr<RevocationStore>> Open(const std::string &dir,
                                                       size_t map_size = kDefaultMapSize);
  ~RevocationStore();

  const std::string &dir() const { return dir_; }

  // Damage: what found it calls ReportDamage (the first reason is kept);
  // damage() is empty while the store is sound.
  // `epoch`: of the transaction that found it; damage of a store already
  // replaced is not the current one's.
  void ReportDamage(const std::string &reason, uint64_t epoch = 0);
  std::string damage() const;
  bool damaged() const { return damaged_.load(std::memory_order_acquire); }
  // Moves the damaged data.mdb aside unless another process already did, logs
  // one line when this process did, and opens the fresh store. Transactions
  // begun before keep the old one until they end.
  Status Repair();
  // How many times this process moved a store aside (tests).
  int moved_aside() const { return moved_aside_; }

  class ReadTxn {
   public:
    ~ReadTxn();
    ReadTxn(ReadTxn &&other) noexcept;
    ReadTxn &operator=(ReadTxn &&) = delete;
    std::optional<CrlMeta> GetCrl(std::string_view key) const;
    std::optional<CrlHead> GetCrlHead(std::string_view key) const;
    // Every CRL record of one issuer (full, partitions, their deltas), by key.
    std::vector<std::pair<std::string, CrlMeta>> GetIssuerCrls(std::string_view issuer_id) const;
    // Absent, revoked, or damaged (and then reported).
    SerialLookup FindRevoked(uint64_t gen, std::string_view magnitude, bool negative = false) const;
    // FindRevoked's entry; nullopt when absent or damaged.
    std::optional<RevokedEntry> GetRevoked(uint64_t gen, std::string_view magnitude,
                                           bool negative = false) const;
    // Checks `meta`'s serials against its count and digest, once per process
    // and generation; a mismatch is reported as damage.
    Status VerifySerials(const CrlMeta &meta) const;
    // The count and digest of generation `gen`'s serials as stored, for its
    // CRL record (which then needs no verification in this process).
    Status DigestSerials(uint64_t gen, uint64_t *count, std::string *digest) const;
    // Which opening of the store this reads (Repair opens a new one).
    uint64_t epoch() const;
    std::optional<OcspRecord> GetOcsp(std::string_view cert_id) const;
    std::optional<UrlState> GetUrl(std::string_view url) const;
    std::optional<FileState> GetFile(std::string_view path) const;
    std::optional<FetchedIssuers> GetFetchedIssuers(std::string_view url) const;

   private:
    friend class RevocationStore;
    ReadTxn(RevocationStore *store, std::shared_ptr<Env> env, MDB_txn *txn)
        : store_(store), env_(std::move(env)), txn_(txn) {}
    RevocationStore *store_;
    std::shared_ptr<Env> env_;
    MDB_txn *txn_;
    mutable MDB_cursor *cursor_ = nullptr;
  };

  class WriteTxn {
   public:
    ~WriteTxn();  // aborts unless committed
    WriteTxn(WriteTxn &&other) noexcept;
    WriteTxn &operator=(WriteTxn &&) = delete;
    std::optional<CrlMeta> GetCrl(std::string_view key) const;
    std::vector<std::pair<std::string, CrlMeta>> GetIssuerCrls(std::string_view issuer_id) const;
    std::optional<UrlState> GetUrl(std::string_view url) const;
    std::optional<OcspRecord> GetOcsp(std::string_view cert_id) const;
    std::optional<FileState> GetFile(std::string_view path) const;
    Status PutCrl(std::string_view key, const CrlMeta &meta);
    Status PutOcsp(std::string_view cert_id, const OcspRecord &record);
    Status PutUrl(std::string_view url, const UrlState &state);
    Status PutFile(std::string_view path, const FileState &state);
    std::optional<FetchStats> GetFetchStats(std::string_view url) const;
    Status PutFetchStats(std::string_view url, const FetchStats &stats);
    // Stores `issuers` for `url`; when kMaxFetchedIssuerUrls URLs are kept
    // already, the one fetched longest ago is dropped first.
    Status PutFetchedIssuers(std::string_view url, const FetchedIssuers &issuers);
    // Deletes up to `max_entries` serials of generation `gen` (an old or
    // abandoned CRL); `*done` tells whether none are left.
    Status DeleteGeneration(uint64_t gen, size_t max_entries, bool *done);
    // Marks generation `gen` as being written by process `pid` and not yet
    // referenced by a CRL record, so that no other process takes it for
    // abandoned; ClearStaging once it is referenced or dropped.
    Status MarkStaging(uint64_t gen, int64_t pid);
    Status ClearStaging(uint64_t gen);
    // Generations with serials that no CRL record references and no live
    // process is writing: what a process killed in the middle of an ingest, or
    // before dropping a replaced CRL, left behind.
    std::vector<uint64_t> AbandonedGenerations() const;
    // A fresh generation number for a new CRL.
    Result<uint64_t> NewGeneration();
    // Adds one revoked serial; appends (fast) while serials come in order.
    Status PutRevoked(uint64_t gen, std::string_view magnitude, bool negative,
                      const RevokedEntry &entry);
    Status Commit();
    uint64_t epoch() const;

   private:
    friend class RevocationStore;
    WriteTxn(RevocationStore *store, std::shared_ptr<Env> env, MDB_txn *txn)
        : store_(store), env_(std::move(env)), txn_(txn) {}
    RevocationStore *store_;
    std::shared_ptr<Env> env_;
    MDB_txn *txn_;
    std::string last_serial_key_;
  };

  Result<ReadTxn> Read();
  // Blocks while another process/thread writes (background threads and the CLI
  // only, never a request path).
  Result<WriteTxn> Write();

  // Every record, for `certgate cache list`.
  struct Listing {
    std::vector<std::pair<std::string, CrlMeta>> crls;
    std::vector<std::pair<std::string, OcspRecord>> ocsp;
    std::vector<std::pair<std::string, UrlState>> urls;
    std::vector<std::pair<std::string, FileState>> files;
    std::vector<std::pair<std::string, FetchStats>> fetch_stats;          // by URL
    std::vector<std::pair<std::string, FetchedIssuers>> fetched_issuers;  // by URL
    uint64_t serials = 0;
  };
  Result<Listing> List();
  Status Purge();

  // Clears reader slots of dead processes (a kill -9 during a read).
  void CheckStaleReaders();

 private:
  RevocationStore() = default;
  std::shared_ptr<Env> CurrentEnv();
  static void ReturnReader(Env &env, MDB_txn *txn, MDB_cursor *cursor);
  Status Reopen();
  void FollowReplacement();

  std::string dir_;
  size_t map_size_ = kDefaultMapSize;
  mutable std::mutex mutex_;  // env_, damage_
  std::shared_ptr<Env> env_;
  std::atomic<bool> damaged_{false};
  std::string damage_;
  std::atomic<int64_t> next_identity_check_{0};  // steady ms: when to stat data.mdb again
  std::atomic<int> moved_aside_{0};
};

}  // namespace certgate
