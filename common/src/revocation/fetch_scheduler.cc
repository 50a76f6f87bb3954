#include "fetch_scheduler.h"

#include <certgate/ossl_ptr.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "cert_fields.h"
#include "revocation/crl.h"
#include "revocation/issuer_keys.h"
#include "revocation/ocsp.h"
#include "text.h"

namespace certgate {

namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr int64_t kBackoffFirst = 30;
constexpr int64_t kBackoffMax = 3600;
constexpr auto kLeasePoll = std::chrono::milliseconds(200);

bool LeaseHeldByOther(const UrlState &state, int64_t now) {
  if (state.lease_pid == 0 || state.lease_pid == getpid() || state.lease_expiry <= now)
    return false;
  return kill(static_cast<pid_t>(state.lease_pid), 0) == 0 || errno == EPERM;
}

std::shared_ptr<X509> Held(X509 *cert) { return ossl::Share(cert); }

}  // namespace

void FetchScheduler::Stop() {
  if (fetcher_) fetcher_->Stop();
}

RevocationFetcher &FetchScheduler::Fetcher() {  // created once, with or without mutex_
  std::call_once(fetcher_once_, [this] { fetcher_ = std::make_unique<RevocationFetcher>(); });
  return *fetcher_;
}

void FetchScheduler::Post(std::function<void()> task, std::chrono::milliseconds delay) {
  Fetcher().Post(std::move(task), delay);
}

bool FetchScheduler::IsPending(const std::string &key) {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_.count(key) != 0;
}

bool FetchScheduler::MarkPending(const std::string &key) {
  std::lock_guard<std::mutex> lock(mutex_);
  return pending_.insert(key).second;
}

void FetchScheduler::Done(const std::string &key) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.erase(key);
  }
  cv_.notify_all();
}

void FetchScheduler::ScheduleCrl(const std::string &key, X509 *cert, X509 *issuer,
                                 std::vector<std::string> urls, const FetchLimits &limits) {
  if (!MarkPending(key)) return;
  auto job = std::make_shared<Job>();
  job->key = key;
  job->cert = Held(cert);
  job->issuer = Held(issuer);
  job->urls = std::move(urls);
  job->limits = limits;
  job->created = clock_.Now();
  Fetcher().Post([this, job] { RunUrl(job, 0, /*ocsp=*/false); });
}

void FetchScheduler::ScheduleOcsp(const std::string &key, const std::string &cert_id, X509 *cert,
                                  X509 *issuer, std::vector<std::string> urls,
                                  const FetchLimits &limits) {
  Result<std::string> request = OcspRequestDer(cert, issuer);
  if (!request.ok() || !MarkPending(key)) return;
  auto job = std::make_shared<Job>();
  job->key = key;
  job->cert = Held(cert);
  job->issuer = Held(issuer);
  job->cert_id = cert_id;
  job->urls = std::move(urls);
  job->limits = limits;
  job->request = std::move(request).value();
  job->created = clock_.Now();
  Fetcher().Post([this, job] { RunUrl(job, 0, /*ocsp=*/true); });
}

FetchScheduler::Lease FetchScheduler::TakeLease(const std::string &url, const FetchLimits &limits,
                                                int64_t now, bool ignore_backoff) {
  Result<RevocationStore::WriteTxn> txn = store_.Write();
  if (!txn.ok()) return Lease::kTaken;  // fetch anyway; the result write will report
  UrlState state = txn->GetUrl(url).value_or(UrlState{});
  if (LeaseHeldByOther(state, now)) return Lease::kHeld;
  if (!ignore_backoff && state.backoff_until > now) return Lease::kBackoff;
  state.lease_pid = getpid();
  state.lease_expiry = now + limits.timeout.count() / 1000 + 10;
  if (txn->PutUrl(url, state).ok()) (void)txn->Commit();
  return Lease::kTaken;
}

const char *FetchErrorClass(const HttpResponse &response) {
  if (response.completed) {
    if (response.status == 200 || response.status == 304) return "invalid";
    if (response.status >= 400 && response.status < 500) return "http_4xx";
    if (response.status >= 500 && response.status < 600) return "http_5xx";
    return "http_other";
  }
  const std::string &error = response.error;
  if (error.rfind("timed out", 0) == 0) return "timeout";
  if (error.rfind("larger than", 0) == 0) return "too_large";
  if (error.rfind("redirect to", 0) == 0 ||
      error.find("not in certgate_fetch_allow") != std::string::npos)
    return "refused";
  return "connection";
}

namespace {

// Counts one failed fetch of `url` into its FetchStats (in `txn`).
Status CountFetchError(RevocationStore::WriteTxn &txn, const std::string &url,
                       const UrlState &state, const HttpResponse &response, int64_t now) {
  FetchStats stats = txn.GetFetchStats(url).value_or(FetchStats{});
  stats.last_error = now;
  if (state.failures <= 1 || stats.failing_since == 0) stats.failing_since = now;
  const std::string error_class = FetchErrorClass(response);
  auto at =
      std::lower_bound(stats.errors.begin(), stats.errors.end(), error_class,
                       [](const auto &entry, const std::string &key) { return entry.first < key; });
  if (at == stats.errors.end() || at->first != error_class) {
    at = stats.errors.insert(at, {error_class, 0});
  }
  at->second += 1;
  return txn.PutFetchStats(url, stats);
}

}  // namespace

void FetchScheduler::RecordUrl(const std::string &url, bool ok, const std::string &result,
                               const HttpResponse &response) {
  Result<RevocationStore::WriteTxn> txn = store_.Write();
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
    if (!CountFetchError(txn.value(), url, state, response, now).ok()) return;
  }
  if (state.lease_pid == getpid()) {
    state.lease_pid = 0;
    state.lease_expiry = 0;
  }
  if (txn->PutUrl(url, state).ok()) (void)txn->Commit();
}

HttpRequest FetchScheduler::BuildRequest(const Job &job, const std::string &url, bool ocsp) {
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
  Result<RevocationStore::ReadTxn> txn = store_.Read();
  if (txn.ok()) {
    const std::string id = IssuerId(job.issuer.get());
    std::optional<CrlMeta> meta = txn->GetCrl(id);
    if (meta && meta->source != url) meta = txn->GetCrl(DeltaKey(id));  // a delta's URL
    std::optional<UrlState> state = txn->GetUrl(url);
    // (Not for a record from before certgate_strict: its CRL is to be read again.)
    // (Nor when the fleet's Redis lacks this version: the body is to be published.)
    if (meta && state && meta->source == url && (meta->flags & kCrlDefectsRecorded) != 0 &&
        !job.shared_want_body) {
      request.if_none_match = state->etag;
      request.if_modified_since = state->last_modified;
    }
  }
  return request;
}

std::string FetchScheduler::Process(const Job &job, const std::string &url, bool ocsp,
                                    const HttpResponse &response, bool *ok) {
  *ok = false;
  if (!response.completed) return response.error;
  const int64_t now = clock_.Now();
  if (!ocsp && response.status == 304) {
    Result<RevocationStore::WriteTxn> txn = store_.Write();
    const std::string id = IssuerId(job.issuer.get());
    if (txn.ok()) {
      // The record that came from this URL: the base, or its delta.
      std::string key = id;
      std::optional<CrlMeta> meta = txn->GetCrl(id);
      if (meta && meta->source != url) {
        if (std::optional<CrlMeta> delta = txn->GetCrl(DeltaKey(id));
            delta && delta->source == url) {
          key = DeltaKey(id);
          meta = delta;
        }
      }
      if (meta) {
        meta->checked_at = now;
        Status confirmed = txn->PutCrl(key, *meta);
        if (confirmed.ok()) confirmed = txn->Commit();
        if (!confirmed.ok()) return "not modified (HTTP 304), not recorded: " + confirmed.message();
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
    Status stored = StoreOcsp(store_, job.cert_id, record.value());
    if (!stored.ok()) return stored.message();
    *ok = true;
    static const char *kStatus[] = {"good", "revoked", "unknown"};
    return std::string("ok ") + kStatus[std::clamp(record->status, 0, 2)] +
           " thisUpdate=" + FormatTime(record->this_update) +
           (record->next_update != 0 ? " nextUpdate=" + FormatTime(record->next_update) : "");
  }
  Result<ParsedCrl> crl = ParseCrl(response.body);
  if (!crl.ok()) return crl.status().message();
  // (A delta's scope is its base's, which names the base's URL: checked at ingest.)
  if (!crl->is_delta && !CrlScopeCovers(crl->scope_urls, {url})) {
    return "a CRL for another distribution point (its issuingDistributionPoint names " +
           crl->scope_urls.front() + ")";
  }
  Result<IngestResult> ingested = IngestCrl(store_, crl.value(), job.issuer.get(), url, now);
  if (!ingested.ok()) return ingested.status().message();
  *ok = true;
  const CrlMeta &meta = ingested->meta;
  return std::string(ingested->outcome == IngestResult::Outcome::kStored ? "stored" : "unchanged") +
         (meta.delta_base_dec.empty() ? "" : " delta") +
         " crl_number=" + CrlNumberText(meta.crl_number_dec) +
         (meta.delta_base_dec.empty() ? "" : " base=" + meta.delta_base_dec) +
         " entries=" + std::to_string(meta.count) +
         (meta.next_update != 0 ? " nextUpdate=" + FormatTime(meta.next_update) : "");
}

// Tries job->urls[index..] in order; the first URL that delivers wins.
void FetchScheduler::RunUrl(std::shared_ptr<Job> job, size_t index, bool ocsp) {
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
        job->lease_wait_until = SteadyClock::now() + job->limits.timeout + std::chrono::seconds(5);
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
    Result<RevocationStore::ReadTxn> txn = store_.Read();
    std::optional<UrlState> state = txn.ok() ? txn->GetUrl(url) : std::nullopt;
    if (state && state->last_attempt >= job->created && state->last_ok) {
      RecordUrlLeaseRelease(url);
      Done(job->key);
      return;
    }
  }
  switch (SharedBefore(*job, index, ocsp)) {
    case SharedStep::kDone:  // from the fleet's Redis, verified as a fetch
      if (!ocsp) ScheduleDeltaAfterBase(*job);
      Done(job->key);
      return;
    case SharedStep::kWait:
      Fetcher().Post([this, job, index, ocsp] { RunUrl(job, index, ocsp); }, kLeasePoll);
      return;
    case SharedStep::kFetch:
      break;
  }
  Fetcher().Submit(BuildRequest(*job, url, ocsp),
                   [this, job, index, ocsp, url](HttpResponse response) {
                     bool ok = false;
                     std::string result = Process(*job, url, ocsp, response, &ok);
                     RecordUrl(url, ok, result, response);
                     SharedAfter(*job, url, ocsp, response, ok);
                     // Once this callback has released the body.
                     if (response.body.size() > kTrimAfterBytes) {
                       Fetcher().Post([] { ReturnFreedMemory(); });
                     }
                     if (ok) {
                       if (!ocsp) ScheduleDeltaAfterBase(*job);
                       Done(job->key);
                     } else {
                       RunUrl(job, index + 1, ocsp);
                     }
                   });
}

// A base CRL just stored that names a delta CRL the store lacks: the delta
// is fetched at once, so that a request waiting for the base (hard_fail)
// waits for both instead of being answered "unknown" in between. Marked
// pending before the base's key is done.
void FetchScheduler::ScheduleDeltaAfterBase(const Job &job) {
  if (job.key.rfind("crl:", 0) != 0) return;
  const std::string id = IssuerId(job.issuer.get());
  std::vector<std::string> urls = FreshestCrlUrls(job.cert.get());
  {
    Result<RevocationStore::ReadTxn> txn = store_.Read();
    if (!txn.ok()) return;
    std::optional<CrlMeta> base = txn->GetCrl(id);
    if (!base) return;
    std::optional<CrlMeta> delta = txn->GetCrl(DeltaKey(id));
    if (delta && DeltaApplies(*base, *delta)) return;
    for (const std::string &url : base->delta_urls) {
      if (std::find(urls.begin(), urls.end(), url) == urls.end()) urls.push_back(url);
    }
    const int64_t now = clock_.Now();
    urls.erase(std::remove_if(urls.begin(), urls.end(),
                              [&](const std::string &url) {
                                if (!UrlRefusal(url, job.limits.allow).empty()) return true;
                                std::optional<UrlState> state = txn->GetUrl(url);
                                return state && state->backoff_until > now;
                              }),
               urls.end());
  }
  if (urls.empty()) return;
  ScheduleCrl("delta:" + LowerHex(id), job.cert.get(), job.issuer.get(), std::move(urls),
              job.limits);
}

void FetchScheduler::RecordUrlLeaseRelease(const std::string &url) {
  Result<RevocationStore::WriteTxn> txn = store_.Write();
  if (!txn.ok()) return;
  std::optional<UrlState> state = txn->GetUrl(url);
  if (state && state->lease_pid == getpid()) {
    state->lease_pid = 0;
    state->lease_expiry = 0;
    if (txn->PutUrl(url, *state).ok()) (void)txn->Commit();
  }
}

std::vector<std::string> FetchScheduler::ChainKeys(const ChainEvidence &evidence) {
  std::vector<std::string> keys;
  for (size_t d = 0; d + 1 < evidence.chain.size(); ++d) {
    X509 *cert = evidence.chain[d].get();
    X509 *issuer = evidence.chain[d + 1].get();
    keys.push_back("crl:" + LowerHex(IssuerId(issuer)));
    keys.push_back("delta:" + LowerHex(IssuerId(issuer)));
    keys.push_back("ocsp:" + LowerHex(OcspCertIdKey(cert, issuer)));
  }
  return keys;
}

bool FetchScheduler::AnyPending(const std::vector<std::string> &keys) {
  for (const std::string &key : keys) {
    if (pending_.count(key) != 0) return true;
  }
  return false;
}

bool FetchScheduler::WaitForFetches(const ChainEvidence &evidence, std::chrono::milliseconds wait) {
  const std::vector<std::string> keys = ChainKeys(evidence);
  std::unique_lock<std::mutex> lock(mutex_);
  return cv_.wait_for(lock, wait, [&] { return !AnyPending(keys); });
}

bool FetchScheduler::FetchPending(const ChainEvidence &evidence) {
  const std::vector<std::string> keys = ChainKeys(evidence);
  std::lock_guard<std::mutex> lock(mutex_);
  return AnyPending(keys);
}

}  // namespace certgate
