#include "revocation/registry.h"

#include <certgate/ossl_ptr.h>
#include <pthread.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>
#include <thread>
#include <vector>

namespace certgate {
namespace {

// Bumped in every forked child (pthread_atfork), so the request path knows
// whether the state it sees was made in this process with one atomic read,
// instead of a getpid() call under a lock.
std::atomic<uint64_t> fork_generation{0};

// What a request reads: the checkers of this process by cache directory, and
// which certgate_crl lists each has preloaded. Never changed once published:
// a new one replaces it, and the old ones are kept (a few per configuration
// or fork) because a reader may still hold one.
struct Snapshot {
  struct Entry {
    std::string dir;
    RevocationChecker *checker = nullptr;
    std::vector<std::vector<std::string>> preloaded;  // certgate_crl lists started

    bool HasPreloaded(const std::vector<std::string> &paths) const {
      for (const auto &list : preloaded) {
        if (list == paths) return true;
      }
      return false;
    }
  };
  uint64_t generation = 0;
  std::vector<Entry> entries;

  const Entry *Find(std::string_view dir) const {
    for (const Entry &entry : entries) {
      if (entry.dir == dir) return &entry;
    }
    return nullptr;
  }
};

struct Registry {
  // Writers only: opening a checker, starting a preload, the reset after fork.
  std::mutex mutex;
  std::condition_variable preload_done;
  uint64_t generation = 0;  // of the state below (mutex)
  std::map<std::string, std::unique_ptr<RevocationChecker>, std::less<>> checkers;
  std::atomic<const Snapshot *> snapshot{nullptr};
  std::vector<std::unique_ptr<Snapshot>> snapshots;  // every one published, kept
  // Preloads run off the request path: a million-entry CRL takes seconds to
  // ingest the first time, and an event loop must not wait for it. Zeroed in a
  // forked child: the parent's threads do not exist there.
  std::atomic<int> preloads_running{0};
};

Registry &TheRegistry();

// The mutex is held across fork, so that a child never inherits it locked by a
// thread that does not exist in the child.
void LockBeforeFork() { TheRegistry().mutex.lock(); }
void UnlockInParent() { TheRegistry().mutex.unlock(); }
void ResetInChild() {
  Registry &registry = TheRegistry();
  fork_generation.fetch_add(1, std::memory_order_relaxed);
  registry.preloads_running.store(0, std::memory_order_relaxed);
  registry.mutex.unlock();
}

// At exit, stop this process's fetch threads before OpenSSL's own atexit cleanup
// (registered earlier, so run later) frees what they use. Checkers inherited
// from a parent are left alone.
void StopCheckersAtExit();

Registry &TheRegistry() {
  static Registry *registry = [] {
    std::atexit(StopCheckersAtExit);
    auto *made = new Registry();  // never destroyed: its checkers may outlive static teardown
    pthread_atfork(LockBeforeFork, UnlockInParent, ResetInChild);
    return made;
  }();
  return *registry;
}

void StopCheckersAtExit() {
  Registry &registry = TheRegistry();
  std::unique_lock<std::mutex> lock(registry.mutex);
  if (registry.generation != fork_generation.load(std::memory_order_relaxed)) return;
  registry.preload_done.wait_for(lock, std::chrono::seconds(30),
                                 [&] { return registry.preloads_running.load() == 0; });
  if (registry.preloads_running.load() == 0) registry.checkers.clear();
}

// Publishes `next` (mutex held).
void Publish(Registry &registry, std::unique_ptr<Snapshot> next) {
  registry.snapshot.store(next.get(), std::memory_order_release);
  registry.snapshots.push_back(std::move(next));
}

// Inherited across fork: an LMDB environment must not be used (nor closed) in
// the child, so the parent's checkers are abandoned, not destroyed (mutex held).
void AdoptAfterFork(Registry &registry) {
  const uint64_t generation = fork_generation.load(std::memory_order_relaxed);
  if (registry.generation == generation) return;
  for (auto &entry : registry.checkers) entry.second.release();
  registry.checkers.clear();
  registry.generation = generation;
  auto empty = std::make_unique<Snapshot>();
  empty->generation = generation;
  Publish(registry, std::move(empty));
}

void StartPreload(Registry &registry, RevocationChecker *checker, std::vector<std::string> paths,
                  X509_STORE *trust) {
  if (trust != nullptr) X509_STORE_up_ref(trust);
  ossl::UniquePtr<X509_STORE> held(trust);
  registry.preloads_running.fetch_add(1);
  std::thread([&registry, checker, paths = std::move(paths), held = std::move(held)] {
    // A file that cannot be read is retried by the checker's rescans; requests
    // meanwhile are refused as revocation_unavailable, naming what is missing.
    (void)checker->Preload(paths, held.get());
    std::lock_guard<std::mutex> lock(registry.mutex);
    registry.preloads_running.fetch_sub(1);
    registry.preload_done.notify_all();
  }).detach();
}

std::string_view CacheDirOf(const Policy &policy) { return policy.EffectiveCacheDir(); }

bool WantsPreload(const Policy &policy) { return policy.crl && !policy.crl->empty(); }

}  // namespace

RevocationChecker *RevocationFor(const Policy &policy, X509_STORE *trust, const Clock &clock,
                                 std::string *error) {
  Registry &registry = TheRegistry();
  const std::string_view dir = CacheDirOf(policy);
  // Every request after the first of its configuration: no lock, no allocation.
  const Snapshot *seen = registry.snapshot.load(std::memory_order_acquire);
  if (seen != nullptr && seen->generation == fork_generation.load(std::memory_order_relaxed)) {
    const Snapshot::Entry *entry = seen->Find(dir);
    if (entry != nullptr && (!WantsPreload(policy) || entry->HasPreloaded(*policy.crl))) {
      return entry->checker;
    }
  }

  std::lock_guard<std::mutex> lock(registry.mutex);
  AdoptAfterFork(registry);
  auto it = registry.checkers.find(dir);
  if (it == registry.checkers.end()) {
    auto opened = RevocationChecker::Open(std::string(dir), clock);
    if (!opened.ok()) {
      *error = opened.status().message();
      return nullptr;
    }
    it = registry.checkers.emplace(std::string(dir), std::move(opened).value()).first;
  }
  const Snapshot *current = registry.snapshot.load(std::memory_order_relaxed);
  auto next =
      current != nullptr ? std::make_unique<Snapshot>(*current) : std::make_unique<Snapshot>();
  next->generation = registry.generation;
  Snapshot::Entry *entry = nullptr;
  for (Snapshot::Entry &candidate : next->entries) {
    if (candidate.dir == dir) entry = &candidate;
  }
  if (entry == nullptr) {
    next->entries.push_back({std::string(dir), it->second.get(), {}});
    entry = &next->entries.back();
  }
  if (WantsPreload(policy) && !entry->HasPreloaded(*policy.crl)) {
    entry->preloaded.push_back(*policy.crl);
    StartPreload(registry, it->second.get(), *policy.crl, trust);
  }
  Publish(registry, std::move(next));
  return it->second.get();
}

bool PreloadInProgress() {
  // Zeroed by the fork handler in a child, so no generation check is needed.
  return TheRegistry().preloads_running.load(std::memory_order_acquire) > 0;
}

void WaitForPreloads(std::chrono::milliseconds wait) {
  Registry &registry = TheRegistry();
  std::unique_lock<std::mutex> lock(registry.mutex);
  if (registry.generation != fork_generation.load(std::memory_order_relaxed)) return;
  registry.preload_done.wait_for(lock, wait, [&] { return registry.preloads_running.load() == 0; });
}

}  // namespace certgate
