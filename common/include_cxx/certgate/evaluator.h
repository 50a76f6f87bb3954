// Evaluate: a location's policy applied to a chain's evidence at a given time.
#pragma once

#include <certgate/chain_evidence.h>
#include <certgate/clock.h>
#include <certgate/decision.h>
#include <certgate/policy.h>

namespace certgate {

// `evidence` is null when the client presented no certificate. Every rule runs,
// every defect becomes a Finding, and the decision reports the one that takes
// precedence. Never allows when it cannot decide.
Decision Evaluate(const Policy &policy, const ChainEvidence *evidence, const Clock &clock);

// Glob match where `*` matches any run of characters (SAN and host patterns).
bool GlobMatch(std::string_view pattern, std::string_view text, bool ignore_case);

}  // namespace certgate
