// ChainEvidence: what OpenSSL's own chain building found, every error kept.
//
// Built once per TLS connection and independent of any location's policy, so a
// connection judged under several policies verifies its chain only once. Time
// and depth are left to the evaluator (they depend on the policy).
#pragma once

#include <certgate/name_constraints.h>
#include <certgate/ossl_ptr.h>
#include <certgate/strict_checks.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace certgate {

struct ChainError {
  int depth;
  int code;  // X509_V_ERR_*
};

// The facts of one certificate that policy rules read, decoded once per chain
// so judging a cached chain under a policy is plain comparisons.
struct CertSummary {
  enum class KeyKind { kOther, kRsa, kEc, kEdwards, kDsa };
  int64_t not_before = 0;
  int64_t not_after = 0;
  uint32_t extended_key_usage = UINT32_MAX;  // XKU_* bits; UINT32_MAX: no extension
  uint32_t key_usage = UINT32_MAX;           // KU_* bits; UINT32_MAX: no extension
  KeyKind key_kind = KeyKind::kOther;
  int key_bits = 0;
  std::string signature_digest;   // lowercase OpenSSL short name ("sha256"); empty: none
  bool invalid_encoding = false;  // an extension does not decode
};

// What identity rules read from the leaf.
struct LeafSummary {
  std::string subject;                                       // RFC 2253
  std::vector<std::pair<int, std::string>> subject_entries;  // (nid, UTF-8 value)
  std::vector<std::string> subject_alt_names;                // "DNS:x", "URI:x", ...
  std::vector<uint8_t> cert_sha256;
  std::vector<uint8_t> spki_sha256;
};

CertSummary SummarizeCert(X509 *cert);
LeafSummary SummarizeLeaf(X509 *leaf);

struct ChainEvidence {
  // The chain as OpenSSL built it, leaf first; it ends at a trust anchor when
  // `anchored`, else at the last certificate whose issuer was found.
  std::vector<std::shared_ptr<X509>> chain;
  std::vector<ChainError> errors;
  bool anchored = false;
  // Set when the chain could not be examined at all (allocation failure).
  std::string internal_error;
  // One per certificate of `chain`.
  std::vector<CertSummary> summaries;
  // What RFC 5280 forbids and OpenSSL let pass (strict_checks.h).
  std::vector<StrictDefect> strict_defects;
  // Name-constraint violations OpenSSL misses, and a chain too complex to
  // check (name_constraints.h).
  std::vector<NameConstraintFinding> name_constraint_findings;

  // Fills summaries, strict_defects and name_constraint_findings from chain (BuildChainEvidence
  // does it).
  void Summarize();

  // The leaf's identity facts, decoded on first use: digests, names and SANs
  // cost a handshake several microseconds and only pin, subject and SAN rules
  // read them. Not thread-safe; a connection's evidence is used under its lock.
  const LeafSummary &leaf_summary() const;

  X509 *leaf() const { return chain.empty() ? nullptr : chain.front().get(); }

 private:
  mutable std::shared_ptr<const LeafSummary> leaf_summary_;
};

// Runs X509_verify_cert over `leaf` + `untrusted` against `trust` and records
// every error with its depth. Validity dates are not checked here.
ChainEvidence BuildChainEvidence(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *trust);

}  // namespace certgate
