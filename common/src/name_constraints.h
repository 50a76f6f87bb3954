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

#include <certgate/chain_evidence.h>
#include <certgate/strict_checks.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace certgate {

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
