#include "chain_evidence_for.h"

#include <certgate/ossl_ptr.h>

namespace certgate::pki {

ChainEvidence EvidenceFor(const Issued &leaf, const std::vector<Issued> &sent,
                          const std::vector<Issued> &anchors, int64_t now) {
  ossl::UniquePtr<X509_STORE> store(X509_STORE_new());
  for (const Issued &anchor : anchors) X509_STORE_add_cert(store.get(), anchor.cert.get());
  ossl::UniquePtr<STACK_OF(X509)> chain(sk_X509_new_null());
  for (const Issued &cert : sent) {
    X509_up_ref(cert.cert.get());
    if (!sk_X509_push(chain.get(), cert.cert.get())) X509_free(cert.cert.get());
  }
  return BuildChainEvidence(leaf.cert.get(), chain.get(), store.get(), now);
}

}  // namespace certgate::pki
