// What the opaque handles of certgate.h hold.
#pragma once

#include <certgate/certgate.h>
#include <certgate/decision.h>
#include <certgate/log_format.h>
#include <certgate/policy.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>

struct cg_policy;

// One cached merge of a policy over a base (cg_policy_merged): published once,
// then read without a lock; freed with the policy it is cached in.
struct cg_merge {
  const cg_policy *base = nullptr;
  std::unique_ptr<cg_policy> merged;
  cg_policy *cell = nullptr;  // what cg_policy_merged hands out: &cell
  cg_merge *next = nullptr;
};

struct cg_policy {
  certgate::Policy policy;
  std::atomic<cg_merge *> merges{nullptr};
  std::mutex merging;  // only while a new merge is made

  cg_policy() = default;
  cg_policy(const cg_policy &) = delete;
  cg_policy &operator=(const cg_policy &) = delete;
  ~cg_policy() {
    for (cg_merge *m = merges.load(std::memory_order_acquire); m != nullptr;) {
      cg_merge *next = m->next;
      delete m;
      m = next;
    }
  }
};

struct cg_decision;

namespace certgate {
// A variant of a decision made on first use and owned by it, so it lives
// exactly as long; a copy of the decision starts without one.
struct LazyDecisionVariant {
  LazyDecisionVariant() = default;
  LazyDecisionVariant(const LazyDecisionVariant &) {}
  LazyDecisionVariant &operator=(const LazyDecisionVariant &) { return *this; }
  mutable std::once_flag once;
  mutable std::unique_ptr<cg_decision> value;
};

// The leaf's notAfter and identity key for the expiring-certificates gauge,
// worked out once per decision, not again on every request it answers.
struct LazyLeafExpiry {
  LazyLeafExpiry() = default;
  LazyLeafExpiry(const LazyLeafExpiry &) {}
  LazyLeafExpiry &operator=(const LazyLeafExpiry &) { return *this; }
  mutable std::once_flag once;
  mutable int64_t not_after = 0;
  mutable uint64_t key = 0;
};
}  // namespace certgate

struct cg_decision {
  cg_decision(certgate::Decision made) : decision(std::move(made)) {}  // NOLINT: implicit
  certgate::Decision decision;
  certgate::LazyDecisionVariant via_proxy;  // cg_decision_via_proxy's
  certgate::LazyLeafExpiry leaf_expiry;     // counters.cc's NoteExpiry
  // Fields of the log line the decision does not carry: where a forwarded
  // certificate came from (source=forwarded proxy=...).
  certgate::LogExtras log_extras;
};
