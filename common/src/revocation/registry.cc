#include <certgate/revocation_registry.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

namespace certgate {
namespace {

struct Registry {
  std::mutex mutex;
  pid_t pid = 0;
  std::map<std::string, std::unique_ptr<RevocationChecker>> checkers;
  std::set<std::string> preloaded;  // cache dir + CRL paths already loaded
  // Preloads run off the request path: a million-entry CRL takes seconds to
  // ingest the first time, and an event loop must not wait for it.
  int preloads_running = 0;
  std::condition_variable preload_done;
};

// At exit, stop this process's fetch threads before OpenSSL's own atexit cleanup
// (registered earlier, so run later) frees what they use. Checkers inherited
// from a parent are left alone.
void StopCheckersAtExit();

Registry &TheRegistry() {
  static Registry *registry = [] {
    std::atexit(StopCheckersAtExit);
    return new Registry();  // never destroyed: its checkers may outlive static teardown
  }();
  return *registry;
}

void StopCheckersAtExit() {
  Registry &registry = TheRegistry();
  std::unique_lock<std::mutex> lock(registry.mutex);
  if (registry.pid != getpid()) return;
  registry.preload_done.wait_for(lock, std::chrono::seconds(30),
                                 [&] { return registry.preloads_running == 0; });
  if (registry.preloads_running == 0) registry.checkers.clear();
}

void StartPreload(Registry &registry, RevocationChecker *checker, std::vector<std::string> paths,
                  X509_STORE *trust) {
  if (trust != nullptr) X509_STORE_up_ref(trust);
  ++registry.preloads_running;
  std::thread([&registry, checker, paths = std::move(paths), trust] {
    // A file that cannot be read is retried by the checker's rescans; requests
    // meanwhile are refused as revocation_unavailable, naming what is missing.
    (void)checker->Preload(paths, trust);
    if (trust != nullptr) X509_STORE_free(trust);
    std::lock_guard<std::mutex> lock(registry.mutex);
    --registry.preloads_running;
    registry.preload_done.notify_all();
  }).detach();
}

}  // namespace

RevocationChecker *RevocationFor(const Policy &policy, X509_STORE *trust, const Clock &clock,
                                 std::string *error) {
  Registry &registry = TheRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  if (registry.pid != getpid()) {
    // Inherited across fork: an LMDB environment must not be used (nor closed)
    // in the child, so the parent's checkers are abandoned, not destroyed.
    for (auto &entry : registry.checkers) entry.second.release();
    registry.checkers.clear();
    registry.preloaded.clear();
    registry.preloads_running = 0;  // the parent's threads do not exist here
    registry.pid = getpid();
  }
  const std::string dir = policy.cache.value_or(kDefaultCacheDir);
  auto it = registry.checkers.find(dir);
  if (it == registry.checkers.end()) {
    auto opened = RevocationChecker::Open(dir, clock);
    if (!opened.ok()) {
      *error = opened.status().message();
      return nullptr;
    }
    it = registry.checkers.emplace(dir, std::move(opened).value()).first;
  }
  if (policy.crl && !policy.crl->empty()) {
    std::string key = dir;
    for (const std::string &path : *policy.crl) key += "\n" + path;
    if (registry.preloaded.insert(key).second) {
      StartPreload(registry, it->second.get(), *policy.crl, trust);
    }
  }
  return it->second.get();
}

bool PreloadInProgress() {
  Registry &registry = TheRegistry();
  std::lock_guard<std::mutex> lock(registry.mutex);
  return registry.pid == getpid() && registry.preloads_running > 0;
}

void WaitForPreloads(std::chrono::milliseconds wait) {
  Registry &registry = TheRegistry();
  std::unique_lock<std::mutex> lock(registry.mutex);
  if (registry.pid != getpid()) return;
  registry.preload_done.wait_for(lock, wait, [&] { return registry.preloads_running == 0; });
}

}  // namespace certgate
