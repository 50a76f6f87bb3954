// How revocation answers change a decision, per certgate_revocation's mode:
// ApplyRevocation (<certgate/revocation.h>) and the helpers of the adapters' path.
#pragma once

#include <certgate/decision.h>
#include <certgate/policy.h>
#include <certgate/revocation.h>

#include <string>
#include <vector>

namespace certgate {

// Answers for a chain whose revocation could not be looked up at all.
std::vector<RevocationAnswer> UnavailableAnswers(const std::string &why);

// A short key that is equal for answers that lead to the same decision.
std::string OutcomeKey(const std::vector<RevocationAnswer> &answers);

}  // namespace certgate
