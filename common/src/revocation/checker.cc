// RevocationChecker (revocation.h): wires the pieces of revocation checking.
//   lookup.h          the pure lookup: store transaction + time -> answers, wanted work
//   fetch_scheduler.h pending set, leases, backoff, the HTTP exchange
//   preloader.h       certgate_crl files, rescans, store repair
//   admin.h           FetchNow and List, for the CLI
#include <certgate/revocation.h>

#include <atomic>

#include "admin.h"
#include "fetch_scheduler.h"
#include "issuer_fetch.h"
#include "lookup.h"
#include "preloader.h"
#include "revocation/store.h"

namespace certgate {

class RevocationChecker::Impl {
 public:
  Impl(std::unique_ptr<RevocationStore> store, const Clock &clock)
      : store_(std::move(store)),
        clock_(clock),
        scheduler_(*store_, clock),
        preloader_(*store_, clock, scheduler_) {}

  // The background thread's tasks use the preloader, the scheduler and the
  // store: it is joined before any of them goes away.
  ~Impl() { scheduler_.Stop(); }

  std::vector<RevocationAnswer> Check(const ChainEvidence &evidence, const Policy &policy) {
    const RevocationSettings settings =
        RevocationSettings::From(policy, refresh_interval_.load(std::memory_order_relaxed));
    if (settings.mode == RevocationMode::kOff || evidence.chain.empty()) return {};
    preloader_.MaybeRescan();
    const int64_t now = clock_.Now();
    const Result<RevocationStore::ReadTxn> txn =
        store_->damaged() ? Result<RevocationStore::ReadTxn>(Status::Error("damaged"))
                          : store_->Read();
    std::vector<CertLookup> lookups = LookUpChain(txn, evidence, settings, now);
    std::vector<RevocationAnswer> answers;
    answers.reserve(lookups.size());
    for (CertLookup &lookup : lookups) {
      Schedule(lookup, settings);
      RevocationAnswer &answer = lookup.answer;
      answer.fetch_pending =
          (!lookup.crl_key.empty() && scheduler_.IsPending(lookup.crl_key)) ||
          (!lookup.delta_key.empty() && scheduler_.IsPending(lookup.delta_key)) ||
          (!lookup.ocsp_key.empty() && scheduler_.IsPending(lookup.ocsp_key));
      if (lookup.notes_in_flight && answer.fetch_pending) {
        answer.detail += "; a fetch is in flight";
      }
      answers.push_back(std::move(answer));
    }
    if (store_->damaged()) {
      // Only what the store can no longer vouch for: a revocation stays one.
      const std::string why = std::string("mode=") + RevocationModeName(settings.mode) +
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
      preloader_.ScheduleRepair();
    }
    return answers;
  }

  // Starts what the lookup asked for, in its order, unless already pending.
  void Schedule(const CertLookup &lookup, const RevocationSettings &settings) {
    for (const WantedWork &work : lookup.wanted) {
      switch (work.kind) {
        case WantedWork::Kind::kIngestWaitingFile:
          preloader_.MaybeIngestPendingFile(lookup.issuer, work.key);
          break;
        case WantedWork::Kind::kFetchCrl:
          if (scheduler_.IsPending(work.key)) break;
          scheduler_.ScheduleCrl(work.key, lookup.cert, lookup.issuer, work.urls, settings.limits);
          break;
        case WantedWork::Kind::kFetchOcsp:
          if (scheduler_.IsPending(work.key)) break;
          scheduler_.ScheduleOcsp(work.key, work.cert_id, lookup.cert, lookup.issuer, work.urls,
                                  settings.limits);
          break;
      }
    }
  }

  std::unique_ptr<RevocationStore> store_;
  const Clock &clock_;
  std::atomic<int64_t> refresh_interval_{3600};
  FetchScheduler scheduler_;
  CrlPreloader preloader_;
};

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
  return impl_->preloader_.Preload(paths, trust);
}
std::vector<RevocationAnswer> RevocationChecker::Check(const ChainEvidence &evidence,
                                                       const Policy &policy) {
  return impl_->Check(evidence, policy);
}
bool RevocationChecker::WaitForFetches(const ChainEvidence &evidence,
                                       std::chrono::milliseconds wait) {
  return impl_->scheduler_.WaitForFetches(evidence, wait);
}
bool RevocationChecker::FetchPending(const ChainEvidence &evidence) {
  return impl_->scheduler_.FetchPending(evidence);
}
std::vector<std::string> RevocationChecker::FetchNow(const ChainEvidence &evidence,
                                                     const Policy &policy) {
  return certgate::FetchNow(impl_->scheduler_, impl_->clock_, evidence, policy);
}
IssuerCompletion RevocationChecker::CompleteChain(const ChainEvidence &evidence, X509_STORE *trust,
                                                  const Policy &policy, int64_t now) {
  return CompleteChainFromAia(impl_->scheduler_, evidence, trust, policy, now);
}
std::vector<UrlFetch> RevocationChecker::FetchUrls(const ChainEvidence &evidence,
                                                   const Policy &policy) {
  return certgate::FetchUrls(impl_->scheduler_, impl_->clock_, evidence, policy);
}
std::vector<std::string> RevocationChecker::List() {
  return ListStore(*impl_->store_, impl_->clock_);
}
Status RevocationChecker::Purge() { return impl_->store_->Purge(); }
void RevocationChecker::SetRefreshInterval(std::chrono::seconds interval) {
  impl_->refresh_interval_.store(interval.count(), std::memory_order_relaxed);
}
void RevocationChecker::SetRescanInterval(std::chrono::seconds interval) {
  impl_->preloader_.SetRescanInterval(interval);
}
const std::string &RevocationChecker::dir() const { return impl_->store_->dir(); }
RevocationStore &RevocationChecker::store() { return *impl_->store_; }

}  // namespace certgate
