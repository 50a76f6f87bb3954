#include "intermediate_cache.h"

#include "cert_fields.h"

namespace certgate {
namespace {

constexpr int kMaxCandidateDepth = 32;

}  // namespace

void IntermediateCache::Learn(const ChainEvidence &evidence) {
  if (!evidence.anchored || !evidence.errors.empty() || evidence.chain.size() < 3) return;
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 1; i + 1 < evidence.chain.size(); ++i) {
    const std::shared_ptr<X509> &cert = evidence.chain[i];
    const std::string key = NameDer(X509_get_subject_name(cert.get()));
    auto [first, last] = by_subject_.equal_range(key);
    bool known = false;
    for (auto it = first; it != last && !known; ++it)
      known = X509_cmp(it->second.get(), cert.get()) == 0;
    if (known) continue;
    if (by_subject_.size() >= capacity_) return;  // bounded: a full cache learns nothing new
    by_subject_.emplace(key, cert);
  }
}

ossl::UniquePtr<STACK_OF(X509)> IntermediateCache::CandidatesFor(X509 *leaf,
                                                                 STACK_OF(X509) * sent) const {
  ossl::UniquePtr<STACK_OF(X509)> candidates(sk_X509_new_null());
  if (!candidates) return candidates;
  for (int i = 0; sent != nullptr && i < sk_X509_num(sent); ++i) {
    X509 *cert = sk_X509_value(sent, i);
    if (X509_up_ref(cert) && !sk_X509_push(candidates.get(), cert)) X509_free(cert);
  }
  std::lock_guard<std::mutex> lock(mutex_);
  if (by_subject_.empty()) return candidates;
  X509 *current = leaf;
  for (int depth = 0; current != nullptr && depth < kMaxCandidateDepth; ++depth) {
    auto [first, last] = by_subject_.equal_range(NameDer(X509_get_issuer_name(current)));
    X509 *next = nullptr;
    for (auto it = first; it != last; ++it) {
      X509 *cert = it->second.get();
      if (cert == current) continue;
      if (X509_up_ref(cert) && !sk_X509_push(candidates.get(), cert)) X509_free(cert);
      if (next == nullptr) next = cert;
    }
    current = next;
  }
  return candidates;
}

void IntermediateCache::Clear() {
  std::lock_guard<std::mutex> lock(mutex_);
  by_subject_.clear();
}

size_t IntermediateCache::size() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return by_subject_.size();
}

IntermediateCache &IntermediateCache::Process() {
  static IntermediateCache cache;
  return cache;
}

}  // namespace certgate
