// How revocation answers change a decision, per certgate_revocation's mode.
#pragma once

#include <certgate/decision.h>
#include <certgate/policy.h>
#include <certgate/revocation.h>

#include <string>
#include <vector>

namespace certgate {

// Folds the answers for an otherwise accepted chain into `decision`:
//  - revoked (any source, any depth)           -> revoked
//  - stale / unknown under hard_fail, cache_only -> revocation_stale / _unavailable
//  - stale / unknown under soft_fail           -> allowed, with a warning
//  - all good                                  -> allowed, revocation "good <source>"
// The decision's revocation field says what was found and where.
void ApplyRevocation(const Policy &policy, const std::vector<RevocationAnswer> &answers,
                     Decision *decision);

// Answers for a chain whose revocation could not be looked up at all.
std::vector<RevocationAnswer> UnavailableAnswers(const std::string &why);

// A short key that is equal for answers that lead to the same decision.
std::string OutcomeKey(const std::vector<RevocationAnswer> &answers);

}  // namespace certgate
