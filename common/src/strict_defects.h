// Finding the strict defects of a chain (the table is <certgate/strict_checks.h>);
// implemented in strict_checks.cc, called by ChainEvidence::Summarize.
#pragma once

#include <certgate/strict_checks.h>
#include <openssl/x509.h>

#include <memory>
#include <vector>

namespace certgate {

// `chain` is leaf first, as built; `anchored`: its last certificate is a trust
// anchor (checked too: a root is the operator's choice, but RFC 5280 rules for
// roots still say what a sound CA issues).
std::vector<StrictDefect> FindStrictDefects(const std::vector<std::shared_ptr<X509>> &chain,
                                            bool anchored);

}  // namespace certgate
