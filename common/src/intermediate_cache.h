// IntermediateCache: CA certificates clients sent in chains that reached a trust
// anchor, kept per process so a resumed TLS session (which carries only the
// leaf) can rebuild the same chain.
//
// Safe because the cached certificates are only offered to chain building as
// untrusted candidates: a chain must still end at one of the server's anchors.
#pragma once

#include <certgate/chain_evidence.h>
#include <certgate/ossl_ptr.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>

namespace certgate {

class IntermediateCache {
 public:
  explicit IntermediateCache(size_t capacity = 1024) : capacity_(capacity) {}

  // Remembers the CAs between leaf and anchor of an anchored chain.
  void Learn(const ChainEvidence &evidence);

  // The cached issuers of `leaf`, transitively, as an untrusted stack (may be
  // empty, never null). `sent` (may be null) is included first.
  ossl::UniquePtr<STACK_OF(X509)> CandidatesFor(X509 *leaf, STACK_OF(X509) * sent) const;

  size_t size() const;
  void Clear();  // forgets everything, as a worker that saw nothing

  static IntermediateCache &Process();

 private:
  const size_t capacity_;
  mutable std::mutex mutex_;
  // DER of the subject name -> certificates with that subject.
  std::multimap<std::string, std::shared_ptr<X509>> by_subject_;
};

}  // namespace certgate
