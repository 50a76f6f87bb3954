// Name constraints (RFC 5280 §4.2.1.10) where OpenSSL 3.0's check falls short.
//
// X509_verify_cert compares every name of a certificate with the subtrees of
// the CAs above it, but
//   - takes any IA5String as an email or DNS name, so a name that is no mailbox
//     or hostname ("@example.com", "a@b@example.com", "exa mple.com") slips
//     past the subtrees meant to confine it (strict checks nc_invalid_email_san,
//     nc_invalid_dns_san);
//   - accepts a nameConstraints with no subtree at all (strict check nc_empty);
//   - compares a wildcard DNS name as text, so "*.example.com" is not inside
//     the excluded subtree "foo.example.com" although it stands for that name
//     (a violation, refused whatever certgate_strict says);
//   - gives up with X509_V_ERR_UNSPECIFIED past its bound on names x subtrees,
//     which certgate reports as chain_too_complex, not as its own failure;
//   - says only "permitted subtree violation", never which name or which CA.
//
// Everything here is bounded: syntax checks are linear in the names, and every
// name-by-subtree comparison counts against kNameConstraintBudget.
#pragma once

#include <certgate/reason.h>
#include <certgate/strict_checks.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
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

// Strict defects nc_empty, nc_invalid_email_san, nc_invalid_dns_san, appended
// to `out`. `chain` is leaf first, as built.
void FindNameConstraintDefects(const std::vector<std::shared_ptr<X509>> &chain,
                               std::vector<StrictDefect> *out);

// Wildcard DNS names inside an excluded subtree, and pairs of a certificate and
// a CA above it past kNameConstraintBudget.
std::vector<NameConstraintFinding> FindNameConstraintViolations(
    const std::vector<std::shared_ptr<X509>> &chain);

// For a refusal only: says which name of the certificate at `depth` breaks
// which CA's constraint, for X509_V_ERR_PERMITTED_VIOLATION or
// X509_V_ERR_EXCLUDED_VIOLATION. Empty when it cannot tell (the caller then
// words it generically).
struct NameConstraintExplanation {
  std::string fact;  // "has email:bob@evil.example, outside the permitted ..."
  std::string hint;
};
NameConstraintExplanation ExplainNameConstraintViolation(
    const std::vector<std::shared_ptr<X509>> &chain, int depth, int x509_error);

// Syntax, exposed for tests: an RFC 5321 Mailbox (local@domain, the domain a
// hostname), and a hostname (LDH labels of 1..63 octets, at most 253 in all,
// no empty label or trailing dot; `*` only as the whole leftmost label when
// `allow_wildcard`). Underscores pass in labels, as Go and OpenSSL's own CN
// check let them: common in internal names, and no way around a subtree.
bool IsMailbox(std::string_view name);
bool IsHostname(std::string_view name, bool allow_wildcard);

}  // namespace certgate
