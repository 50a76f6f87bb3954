// The background side of revocation checking (DESIGN §5): which fetches are
// pending in this process, the per-URL leases that keep processes from
// fetching the same URL at once, backoff after failures, and the HTTP
// exchange itself (request building, response handling, ingest). One thread
// per process (RevocationFetcher) runs every task. Private to certgate_core.
#pragma once

#include <certgate/chain_evidence.h>
#include <certgate/clock.h>
#include <openssl/x509.h>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "revocation/fetcher.h"
#include "revocation/shared_cache.h"
#include "revocation/store.h"

namespace certgate {

// The class of a failed fetch, one of a fixed few (the status page's
// certgate_fetch_errors_total{error}): "timeout", "connection", "refused"
// (certgate_fetch_allow, a refused redirect), "too_large", "http_4xx",
// "http_5xx", "http_other", "invalid" (a response that did not verify or parse).
const char *FetchErrorClass(const HttpResponse &response);

class FetchScheduler {
 public:
  FetchScheduler(RevocationStore &store, const Clock &clock) : store_(store), clock_(clock) {}
  ~FetchScheduler() { Stop(); }
  FetchScheduler(const FetchScheduler &) = delete;
  FetchScheduler &operator=(const FetchScheduler &) = delete;

  // Joins the thread: its tasks use the store and whoever posted them, so the
  // checker stops it before anything goes away. Later posts are dropped.
  void Stop();

  // Runs `task` on the background thread (started on first use) after `delay`.
  void Post(std::function<void()> task,
            std::chrono::milliseconds delay = std::chrono::milliseconds(0));

  RevocationStore &store() { return store_; }

  // Pending keys ("crl:<issuer id hex>", "ocsp:<cert id hex>"): work for them is
  // scheduled or in flight in this process.
  bool IsPending(const std::string &key);
  bool MarkPending(const std::string &key);  // false when already pending
  void Done(const std::string &key);         // and wakes WaitForFetches

  // Schedules fetching `urls` in order (the first that delivers wins), unless
  // `key` is already pending.
  void ScheduleCrl(const std::string &key, X509 *cert, X509 *issuer, std::vector<std::string> urls,
                   const FetchLimits &limits);
  void ScheduleOcsp(const std::string &key, const std::string &cert_id, X509 *cert, X509 *issuer,
                    std::vector<std::string> urls, const FetchLimits &limits);

  bool WaitForFetches(const ChainEvidence &evidence, std::chrono::milliseconds wait);
  bool FetchPending(const ChainEvidence &evidence);

  // What one fetch is about.
  struct Job {
    std::string key;
    std::shared_ptr<X509> cert, issuer;
    std::string cert_id;
    std::vector<std::string> urls;
    FetchLimits limits;
    std::string request;  // OCSP request DER
    int64_t created = 0;
    std::chrono::steady_clock::time_point lease_wait_until;
    // The shared tier's state for urls[shared_index] (fetch_shared.cc).
    size_t shared_index = SIZE_MAX;
    std::string shared_lease;  // the Redis lease this job holds ("" none)
    std::chrono::steady_clock::time_point shared_wait_until;
    bool shared_settled = false;    // decided: fetch from the URL itself now
    bool shared_refused = false;    // Redis's blob was refused: publish over it
    bool shared_want_body = false;  // Redis lacks this version: no conditional GET
  };

  // The pieces of one URL's fetch, also used by FetchNow (admin.cc).
  enum class Lease { kTaken, kHeld, kBackoff };
  Lease TakeLease(const std::string &url, const FetchLimits &limits, int64_t now,
                  bool ignore_backoff);
  HttpRequest BuildRequest(const Job &job, const std::string &url, bool ocsp);
  // Interprets a response: ingests a CRL / stores an OCSP answer. Returns the
  // result text; *ok when the URL delivered usable data.
  std::string Process(const Job &job, const std::string &url, bool ocsp,
                      const HttpResponse &response, bool *ok);
  // Records a URL's result, sets or clears its backoff, releases the lease.
  void RecordUrl(const std::string &url, bool ok, const std::string &result,
                 const HttpResponse &response);

  // The shared tier (certgate_shared_cache, fetch_shared.cc), around the
  // fetch of job->urls[index], on the fetch thread only.
  enum class SharedStep {
    kFetch,  // fetch from the URL (no shared cache, Redis failed, lease ours, wait over)
    kWait,   // another host holds the lease: poll again shortly
    kDone,   // ingested from Redis: the URL delivered
  };
  SharedStep SharedBefore(Job &job, size_t index, bool ocsp);
  // After the fetch: publishes what verified (or confirms a 304) and releases the lease.
  void SharedAfter(Job &job, const std::string &url, bool ocsp, const HttpResponse &response,
                   bool ok);

 private:
  RevocationFetcher &Fetcher();
  void RunUrl(std::shared_ptr<Job> job, size_t index, bool ocsp);
  void RecordUrlLeaseRelease(const std::string &url);
  void ScheduleDeltaAfterBase(const Job &job);
  static std::vector<std::string> ChainKeys(const ChainEvidence &evidence);
  bool AnyPending(const std::vector<std::string> &keys);  // mutex_ held

  SharedCache &SharedFor(const FetchLimits &limits);  // fetch thread only
  void CountShared(const SharedCache &shared, const char *event, bool error = false);
  void LogShared(SharedCache &shared, const std::string &message);

  RevocationStore &store_;
  const Clock &clock_;
  // One connection per shared cache configuration, made and used by the fetch
  // thread (or the one CLI thread): never across fork, as the thread.
  std::map<std::string, std::unique_ptr<SharedCache>> shared_;
  std::once_flag fetcher_once_;
  std::unique_ptr<RevocationFetcher> fetcher_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::set<std::string> pending_;  // mutex_
};

}  // namespace certgate
