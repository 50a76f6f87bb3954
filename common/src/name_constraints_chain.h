// The name constraints of a chain, decoded once, and how a detail quotes the
// names and subtrees it speaks of: shared by the walk over the chain
// (name_constraints.cc) and the explanation of OpenSSL's refusals
// (name_constraints_explain.cc).
#pragma once

#include <certgate/ossl_ptr.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::name_constraints {

// A name quoted in a detail is cut here: the detail names it, the log keeps it short.
constexpr size_t kMaxShownName = 80;
// `text` cut at kMaxShownName, with "..." when it was.
std::string Shown(std::string text);
// The octets of an ASN1_STRING (IA5String names), not copied.
std::string_view View(const ASN1_STRING *value);
// "the CA 'CN=...' at depth 2".
std::string TheCa(const std::vector<std::shared_ptr<X509>> &chain, size_t depth);

// A subtree's base as the CA wrote it: "example.com", "10.0.0.0/255.0.0.0".
std::string BaseText(const GENERAL_NAME *base);

inline int Count(const STACK_OF(GENERAL_SUBTREE) * subtrees) {
  return std::max(sk_GENERAL_SUBTREE_num(subtrees), 0);
}

// Every certificate's nameConstraints, decoded once (null where none).
struct ChainConstraints {
  explicit ChainConstraints(const std::vector<std::shared_ptr<X509>> &chain);

  // Whether the constraints above `depth` have a subtree of `type`.
  bool Constrains(size_t depth, int type) const { return (types_above[depth] >> type) & 1u; }

  // The nearest CA above `depth` with a subtree of `type`.
  size_t NearestWith(size_t depth, int type) const;

  std::vector<ossl::UniquePtr<NAME_CONSTRAINTS>> by_depth;
  std::vector<uint32_t> types_above;  // bit GEN_* set: some CA above has such a subtree
  bool any = false;
};

// Whether OpenSSL holds `cert` to the constraints of the CAs above it: the leaf
// always, a CA certificate unless it is self-issued (RFC 5280 §6.1.4 (b)).
inline bool Constrained(X509 *cert, size_t depth) {
  return depth == 0 || (X509_get_extension_flags(cert) & EXFLAG_SI) == 0;
}

// The certificate's subjectAltName, decoded (null when it has none).
ossl::UniquePtr<GENERAL_NAMES> AltNames(X509 *cert);

}  // namespace certgate::name_constraints
