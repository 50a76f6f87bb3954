// SharedCache: one connection to the fleet's Redis (certgate_shared_cache,
// issue 14), used by the fetch thread only: the request path never touches it.
//
// Layout under the prefix (default "certgate:"):
//   <prefix>crl:<sha256(url) hex>        hash: the newest CRL (base or delta) from that URL
//   <prefix>ocsp:<sha256(CertID) hex>    hash: the newest OCSP response for that CertID
//   <prefix>lease:<sha256(what) hex>     string: the host fetching it now (SET NX PX)
// A blob's fields: der, this_update, checked_at (when a host last had it from
// the CDP/responder), etag, last_modified, url, host (who published it),
// format ("1"). Its TTL is nextUpdate + certgate_max_stale.
//
// Nothing read here is trusted: the scheduler ingests a blob's DER through
// exactly the checks of a fetched response, and the metadata only decides
// whether trying it is worth it. Every call is bounded by the connect/command
// timeout (a fraction of fetch_timeout); after an error the connection is
// dropped and not tried again for a few seconds, so a Redis that is down
// costs one timeout per interval, not one per fetch. Not thread-safe; the
// connection is made on first use, in the thread (and process) that uses it.
#pragma once

#include <certgate/policy.h>
#include <certgate/result.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

struct redisContext;
struct redisReply;

namespace certgate {

struct SharedBlob {
  std::string der;  // empty until ReadDer
  uint64_t der_size = 0;
  int64_t this_update = 0, checked_at = 0;
  std::string etag, last_modified, url, host;
};

class SharedCache {
 public:
  // `timeout` bounds the connect and each command.
  SharedCache(SharedCacheSettings settings, std::chrono::milliseconds timeout);
  ~SharedCache();
  SharedCache(const SharedCache &) = delete;
  SharedCache &operator=(const SharedCache &) = delete;

  const SharedCacheSettings &settings() const { return settings_; }
  std::string CrlKey(const std::string &url) const;
  std::string OcspKey(const std::string &cert_id) const;
  std::string LeaseKey(const std::string &what) const;
  // "hostname:pid:random": who holds a lease or published a blob.
  const std::string &host_id() const { return host_id_; }

  // False while a recent error holds further attempts back.
  bool MayTry() const;
  // The last error ("" none), for logs. Errors do not repeat the shared
  // cache's name (the caller's log line says it).
  const std::string &last_error() const { return last_error_; }
  // True at most once per kLogInterval: errors are logged once per interval.
  bool TakeLogTurn();
  static constexpr std::chrono::seconds kLogInterval{60};

  // A blob's fields except der (its size is der_size); nullopt when absent.
  Result<std::optional<SharedBlob>> ReadMeta(const std::string &key);
  // Its DER, refused when larger than `max_size`.
  Result<std::string> ReadDer(const std::string &key, uint64_t max_size);
  // Publishes `blob` for `ttl_ms` unless Redis holds a newer one (by
  // this_update), or over anything when `force` (what it held was refused).
  // True when written.
  Result<bool> Publish(const std::string &key, const SharedBlob &blob, int64_t ttl_ms, bool force);
  // A 304 from the CDP: the blob with this this_update was checked now.
  Result<bool> Confirm(const std::string &key, int64_t this_update, int64_t checked_at);
  // SET key host_id NX PX ttl_ms: true when taken.
  Result<bool> TakeLease(const std::string &key, int64_t ttl_ms);
  // Deletes the lease only while it is still ours.
  Status ReleaseLease(const std::string &key);

  // How long after an error no command is tried.
  static constexpr std::chrono::seconds kRetryAfter{5};

 private:
  struct ReplyDeleter {
    void operator()(redisReply *reply) const;
  };
  using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

  Status Connect();
  // Sends every command, then reads every reply (one round trip). A round
  // trip slower than half the timeout counts as a failure too (unless
  // `bulk`: a large blob may take its time), so that a slow Redis costs one
  // slow command per kRetryAfter, not one per fetch.
  Result<std::vector<Reply>> Run(const std::vector<std::vector<std::string>> &commands,
                                 bool bulk = false);
  Status Fail(const std::string &what);

  SharedCacheSettings settings_;
  std::chrono::milliseconds timeout_;
  std::string host_id_;
  redisContext *context_ = nullptr;
  pid_t pid_ = 0;  // of the process that connected
  std::chrono::steady_clock::time_point retry_at_{};
  std::optional<std::chrono::steady_clock::time_point> logged_at_;
  std::string last_error_;
};

// The connect/command timeout for a fetch_timeout: a quarter, within 100 ms-1 s,
// so that Redis down costs far less than a fetch.
std::chrono::milliseconds SharedCacheTimeout(std::chrono::milliseconds fetch_timeout);

}  // namespace certgate
