// ChainEvidence: what OpenSSL's own chain building found, every error kept.
//
// Built once per TLS connection and independent of any location's policy, so a
// connection judged under several policies verifies its chain only once. Time
// and depth are left to the evaluator (they depend on the policy).
#pragma once

#include <certgate/ossl_ptr.h>
#include <certgate/reason.h>
#include <certgate/strict_checks.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace certgate {

// Comparisons of names with subtrees allowed for one certificate against one
// CA, and for certgate's own comparisons over the whole chain: OpenSSL's
// NAME_CHECK_MAX (names x subtrees, past which NAME_CONSTRAINTS_check gives
// up), four times Go's per-chain maxConstraintComparisons (250,000). A sound
// chain needs a few dozen.
constexpr uint64_t kNameConstraintBudget = uint64_t{1} << 20;

// A violation OpenSSL misses (invalid_ca), or a chain whose name constraints
// are too much work to check (chain_too_complex). Found once per chain.
struct NameConstraintFinding {
  Reason reason;
  int depth;         // the certificate whose names are at fault
  std::string fact;  // after "the client certificate 'CN=...' "
  std::string hint;
};

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
  bool self_issued = false;       // subject == issuer (a root, or a CA key rollover)
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

// Certificates named as the issuer of chain[depth] that the built chain does
// not use, so a refusal never calls a sent or trusted issuer unknown, and says
// when another same-named issuer was tried.
struct UnusedIssuers {
  int depth = 0;    // of the certificate they are named as the issuer of
  int sent = 0;     // how many the client sent
  int trusted = 0;  // how many the trust store holds
  // How many of them could issue it (X509_check_issued): the search tried
  // them, unless it stopped at its bound first.
  int usable = 0;
  // When none could: why the first of them cannot (X509_V_ERR_*).
  int cannot_issue = 0;
};

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
  // check (name_constraints.cc).
  std::vector<NameConstraintFinding> name_constraint_findings;
  // Filled only for a chain with a defect; at most one entry per depth.
  std::vector<UnusedIssuers> unused_issuers;
  // The search for another path stopped at its bound (kMaxIssuerSignatureChecks
  // signature checks or kMaxAlternativePaths verifications).
  bool path_search_stopped = false;

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

// Bounds of the search for another path when the first one has a defect: a
// hostile client may send many certificates with one name.
constexpr int kMaxIssuerSignatureChecks = 32;
constexpr int kMaxAlternativePaths = 3;

// Runs X509_verify_cert over `leaf` + `untrusted` against `trust` and records
// every error with its depth. Validity dates are not judged here (the
// evaluator does, with certgate_clock_skew); `now` only steers the choice
// between issuers.
//
// A good chain costs one X509_verify_cert. Otherwise, because OpenSSL never
// backs off from an issuer it picked:
// - a chain that reaches no self-signed anchor is rebuilt with
//   X509_V_FLAG_PARTIAL_CHAIN, so a trusted intermediate ends it;
// - when several certificates carry an issuer's name, other paths are searched
//   depth first (signature checked, valid at `now`), within the bounds above,
//   and the first clean one is used. Without one, the first chain stays and
//   `unused_issuers` says what else was there.
ChainEvidence BuildChainEvidence(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *trust,
                                 int64_t now);

}  // namespace certgate
