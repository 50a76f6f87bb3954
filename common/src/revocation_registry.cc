#include <certgate/revocation_registry.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>

namespace certgate {
namespace {

struct Registry {
  std::mutex mutex;
  pid_t pid = 0;
  std::map<std::string, std::unique_ptr<RevocationChecker>> checkers;
  std::set<std::string> preloaded;  // cache dir + CRL paths already loaded
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
  std::lock_guard<std::mutex> lock(registry.mutex);
  if (registry.pid == getpid()) registry.checkers.clear();
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
      // Files that cannot be read now are retried by the checker's rescans; the
      // refusal this causes names the file.
      Status loaded = it->second->Preload(*policy.crl, trust);
      if (!loaded.ok()) *error = loaded.message();
    }
  }
  return it->second.get();
}

}  // namespace certgate
