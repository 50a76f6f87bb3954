// The shared revocation tier (certgate_shared_cache, issue 14): what the fetch
// thread does around one URL's fetch so that a fleet fetches each CRL version
// and OCSP answer once.
//
//  before: Redis holds data newer than ours (or the same, checked at the CDP
//          after we last did, before its nextUpdate): ingest it through
//          Process(), exactly as a fetched response, and do not fetch. Else
//          take the fleet-wide lease and fetch; while another host holds it,
//          poll for its publication up to our own fetch_timeout, then fetch.
//  after:  publish what verified (TTL nextUpdate + max_stale), or mark the
//          blob checked on a 304; release the lease if still ours.
// Redis down, slow or lying never blocks and never fails closed: every Redis
// error or refused blob means "fetch directly", counted and logged once per
// interval. The request path never gets here.
#include <algorithm>
#include <cstdio>

#include "fetch_scheduler.h"
#include "revocation/crl.h"
#include "revocation/issuer_keys.h"
#include "text.h"

namespace certgate {

namespace {

using SteadyClock = std::chrono::steady_clock;

// A blob claiming to be checked further ahead than this is not believed.
constexpr int64_t kCheckedSkewSeconds = 300;
constexpr int64_t kOcspDefaultValidity = 3600;  // as lookup.cc: answers without nextUpdate
constexpr int64_t kNoNextUpdateTtl = 86400;     // a CRL without nextUpdate

// What this host holds of the data a URL delivers.
struct LocalVersion {
  bool present = false;
  int64_t this_update = 0, next_update = 0;
  int64_t checked = 0;  // when it last came from, or was confirmed by, its source
};

LocalVersion LocalVersionOf(RevocationStore &store, const FetchScheduler::Job &job, bool ocsp) {
  LocalVersion local;
  Result<RevocationStore::ReadTxn> txn = store.Read();
  if (!txn.ok()) return local;
  if (ocsp) {
    if (std::optional<OcspRecord> record = txn->GetOcsp(job.cert_id)) {
      local.present = true;
      local.this_update = record->this_update;
      local.next_update = record->next_update;
      local.checked = record->fetched_at;
    }
    return local;
  }
  const std::string id = IssuerId(job.issuer.get());
  const bool delta = job.key.rfind("delta:", 0) == 0;
  if (std::optional<CrlMeta> meta = txn->GetCrl(delta ? DeltaKey(id) : id)) {
    local.present = true;
    local.this_update = meta->this_update;
    local.next_update = meta->next_update;
    local.checked = std::max(meta->checked_at, meta->ingested_at);
  }
  return local;
}

// Whether a blob is worth ingesting instead of fetching. Only a hint: what
// it holds is verified as any fetched response.
bool Worth(const SharedBlob &blob, const LocalVersion &local, int64_t now) {
  if (blob.der_size == 0) return false;
  if (!local.present || blob.this_update > local.this_update) return true;
  // The same version, confirmed at the source since we last asked it. Not
  // past nextUpdate: then a blob that keeps claiming "checked" could hold a
  // new version back; each host asks the source itself.
  return blob.this_update == local.this_update && blob.checked_at > local.checked &&
         blob.checked_at <= now + kCheckedSkewSeconds &&
         (local.next_update == 0 || now < local.next_update);
}

std::string ConfigKey(const SharedCacheSettings &s, std::chrono::milliseconds timeout) {
  return s.Display() + "\n" + s.user + "\n" + s.password + "\n" + s.prefix + "\n" +
         std::to_string(timeout.count());
}

}  // namespace

SharedCache &FetchScheduler::SharedFor(const FetchLimits &limits) {
  const std::chrono::milliseconds timeout = SharedCacheTimeout(limits.timeout);
  std::unique_ptr<SharedCache> &shared = shared_[ConfigKey(limits.shared_cache, timeout)];
  if (!shared) shared = std::make_unique<SharedCache>(limits.shared_cache, timeout);
  return *shared;
}

// Kept with the URLs' fetch statistics, under the shared cache's redis:// name,
// so that every process of the host adds to the same numbers (the status page
// and `certgate cache list` show them).
void FetchScheduler::CountShared(const SharedCache &shared, const char *event, bool error) {
  Result<RevocationStore::WriteTxn> txn = store_.Write();
  if (!txn.ok()) return;
  const std::string name = shared.settings().Display();
  FetchStats stats = txn->GetFetchStats(name).value_or(FetchStats{});
  if (error) stats.last_error = clock_.Now();
  auto at =
      std::lower_bound(stats.errors.begin(), stats.errors.end(), std::string(event),
                       [](const auto &entry, const std::string &key) { return entry.first < key; });
  if (at == stats.errors.end() || at->first != event) at = stats.errors.insert(at, {event, 0});
  at->second += 1;
  if (txn->PutFetchStats(name, stats).ok()) (void)txn->Commit();
}

void FetchScheduler::LogShared(SharedCache &shared, const std::string &message) {
  if (!shared.TakeLogTurn()) return;
  // stderr: both servers send it to their error log.
  fprintf(stderr, "certgate: shared cache %s: %s (logged once per %lld s)\n",
          shared.settings().Display().c_str(), message.c_str(),
          static_cast<long long>(SharedCache::kLogInterval.count()));
}

FetchScheduler::SharedStep FetchScheduler::SharedBefore(Job &job, size_t index, bool ocsp) {
  if (!job.limits.shared_cache.enabled()) return SharedStep::kFetch;
  if (job.shared_index != index) {  // a new URL of the job
    job.shared_index = index;
    job.shared_lease.clear();
    job.shared_wait_until = {};
    job.shared_settled = job.shared_refused = job.shared_want_body = false;
  }
  if (job.shared_settled) return SharedStep::kFetch;
  auto settle = [&job] {
    job.shared_settled = true;
    return SharedStep::kFetch;
  };
  SharedCache &shared = SharedFor(job.limits);
  if (!shared.MayTry()) return settle();  // failed moments ago: not again yet
  auto redis_failed = [&](const Status &status) {
    CountShared(shared, "redis_error", true);
    LogShared(shared, status.message() + "; fetching from the CRL/OCSP URLs directly");
    return settle();
  };
  const std::string &url = job.urls[index];
  const std::string key = ocsp ? shared.OcspKey(job.cert_id) : shared.CrlKey(url);
  const int64_t now = clock_.Now();
  const auto started = SteadyClock::now();
  Result<std::optional<SharedBlob>> meta = shared.ReadMeta(key);
  if (!meta.ok()) return redis_failed(meta.status());
  const LocalVersion local = LocalVersionOf(store_, job, ocsp);
  if (meta.value() && Worth(*meta.value(), local, now)) {
    const SharedBlob &blob = *meta.value();
    Result<std::string> der = shared.ReadDer(key, job.limits.max_size);
    if (!der.ok() && !shared.MayTry()) return redis_failed(der.status());
    std::string result;
    bool ok = false;
    HttpResponse response;
    if (der.ok()) {
      response.completed = true;
      response.status = 200;
      response.body = std::move(der).value();
      response.etag = blob.etag;
      response.last_modified = blob.last_modified;
      response.url = url;
      response.duration_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - started)
              .count();
      // Exactly what a response from the URL goes through.
      result = Process(job, url, ocsp, response, &ok);
    } else {
      result = der.status().message();
    }
    if (ok) {
      RecordUrl(url, true,
                "from the shared cache " + shared.settings().Display() + " (published by " +
                    blob.host + "): " + result,
                response);
      CountShared(shared, "hit");
      if (response.body.size() > kTrimAfterBytes) Post([] { ReturnFreedMemory(); });
      return SharedStep::kDone;
    }
    // Forged, rolled back, for another scope, too large: the data we hold
    // stays, and the URL itself is asked; what it gives replaces the blob.
    CountShared(shared, "refused", true);
    LogShared(shared, "refused its blob for " + url + " (published by " + blob.host +
                          "): " + result + "; fetching directly");
    job.shared_refused = true;
    return settle();
  }
  job.shared_want_body =
      !meta.value() || meta.value()->this_update < local.this_update || meta.value()->der_size == 0;
  const std::string lease = shared.LeaseKey(ocsp ? url + "\n" + job.cert_id : url);
  const int64_t lease_ms = job.limits.timeout.count() + 10000;  // the fetch, then the ingest
  Result<bool> taken = shared.TakeLease(lease, lease_ms);
  if (!taken.ok()) return redis_failed(taken.status());
  if (taken.value()) {
    job.shared_lease = lease;
    return settle();
  }
  // Another host fetches it: wait for its publication, as long as we would
  // wait for the URL itself.
  const auto steady_now = SteadyClock::now();
  if (job.shared_wait_until == SteadyClock::time_point()) {
    job.shared_wait_until = steady_now + job.limits.timeout;
    CountShared(shared, "lease_wait");
  }
  if (steady_now < job.shared_wait_until) return SharedStep::kWait;
  CountShared(shared, "lease_timeout");
  return settle();
}

void FetchScheduler::SharedAfter(Job &job, const std::string &url, bool ocsp,
                                 const HttpResponse &response, bool ok) {
  if (!job.limits.shared_cache.enabled()) return;
  SharedCache &shared = SharedFor(job.limits);
  const std::string lease = std::move(job.shared_lease);
  job.shared_lease.clear();
  if (!shared.MayTry()) return;  // (a lease left behind expires)
  auto redis_failed = [&](const Status &status) {
    CountShared(shared, "redis_error", true);
    LogShared(shared, status.message());
  };
  if (ok && response.completed && (response.status == 200 || response.status == 304)) {
    const LocalVersion local = LocalVersionOf(store_, job, ocsp);
    const std::string key = ocsp ? shared.OcspKey(job.cert_id) : shared.CrlKey(url);
    const int64_t now = clock_.Now();
    if (local.present && response.status == 200) {
      const int64_t expires =
          local.next_update != 0
              ? local.next_update
              : (ocsp ? local.this_update + kOcspDefaultValidity : now + kNoNextUpdateTtl);
      const int64_t ttl_ms = (expires + job.limits.max_stale - now) * 1000;
      if (ttl_ms > 0) {
        SharedBlob blob;
        blob.der = response.body;
        blob.this_update = local.this_update;
        blob.checked_at = now;
        blob.etag = response.etag;
        blob.last_modified = response.last_modified;
        blob.url = url;
        Result<bool> published = shared.Publish(key, blob, ttl_ms, job.shared_refused);
        if (!published.ok()) {
          redis_failed(published.status());
        } else if (published.value()) {
          CountShared(shared, "published");
        }
      }
    } else if (local.present && response.status == 304) {
      Result<bool> confirmed = shared.Confirm(key, local.this_update, now);
      if (!confirmed.ok()) redis_failed(confirmed.status());
    }
  }
  if (!lease.empty() && shared.MayTry()) {
    if (Status released = shared.ReleaseLease(lease); !released.ok()) redis_failed(released);
  }
}

}  // namespace certgate
