// What the opaque handles of certgate.h hold.
#pragma once

#include <certgate/certgate.h>
#include <certgate/decision.h>
#include <certgate/policy.h>

#include <atomic>
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

struct cg_decision {
  certgate::Decision decision;
};
