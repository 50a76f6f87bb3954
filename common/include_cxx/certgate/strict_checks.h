// Strict checks: what RFC 5280 requires of a chain and OpenSSL 3.0 lets pass.
//
// X509_verify_cert accepts a chain whose certificates lack key identifiers, are
// version 1, carry a zero or 21-octet serial, a DSA key, and more. Each such
// defect is found once per chain (it does not depend on the policy); the
// evaluator refuses for it under `certgate_strict on` (the default) and only
// warns (`warning=strict_off:<name>`) under `off`. The table also names the
// checks of a CRL (crl_*, RFC 5280 §5.2.3), made at the revocation lookup
// (revocation/lookup.cc), not by FindStrictDefects (strict_defects.h).
#pragma once

#include <certgate/reason.h>

#include <string>
#include <string_view>
#include <vector>

namespace certgate {

// One rule of the strict set: the table docs/reasons.md lists.
struct StrictCheck {
  std::string_view name;     // stable token: "missing_aki", "v1", "dsa_key", ...
  Reason reason;             // malformed, invalid_ca, wrong_purpose, weak_key;
                             // revocation_unavailable for the crl_* checks (of a CRL)
  std::string_view source;   // "RFC 5280 §4.2.1.1"
  std::string_view applies;  // what the rule asks, for the docs
};

// Every strict check, in the order they are made.
const std::vector<StrictCheck> &StrictChecks();

// The check named `name`; an unlisted name (a bug) gives a row refusing as malformed.
const StrictCheck &StrictCheckNamed(std::string_view name);

struct StrictDefect {
  int depth;
  const StrictCheck *check;
  std::string fact;  // what is wrong, after "the client certificate 'CN=...' "
  std::string hint;  // what the CA must fix
};

}  // namespace certgate
