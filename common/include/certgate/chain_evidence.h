// ChainEvidence: what OpenSSL's own chain building found, every error kept.
//
// Built once per TLS connection and independent of any location's policy, so a
// connection judged under several policies verifies its chain only once. Time
// and depth are left to the evaluator (they depend on the policy).
#pragma once

#include <certgate/ossl_ptr.h>
#include <openssl/x509.h>

#include <string>
#include <vector>

namespace certgate {

struct ChainError {
  int depth;
  int code;  // X509_V_ERR_*
};

struct ChainEvidence {
  // The chain as OpenSSL built it, leaf first; it ends at a trust anchor when
  // `anchored`, else at the last certificate whose issuer was found.
  std::vector<std::shared_ptr<X509>> chain;
  std::vector<ChainError> errors;
  bool anchored = false;
  // Set when the chain could not be examined at all (allocation failure).
  std::string internal_error;

  X509 *leaf() const { return chain.empty() ? nullptr : chain.front().get(); }
};

// Runs X509_verify_cert over `leaf` + `untrusted` against `trust` and records
// every error with its depth. Validity dates are not checked here.
ChainEvidence BuildChainEvidence(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *trust);

}  // namespace certgate
