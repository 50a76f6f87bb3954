// The findings about the chain as built, whatever the policy's rules say:
// OpenSSL's errors worded with the facts (and the other same-named issuers
// tried), extensions that do not decode, and name-constraint findings.
#pragma once

#include <certgate/chain_evidence.h>
#include <certgate/decision.h>

#include <string>
#include <vector>

namespace certgate {

void AddChainErrorFindings(const ChainEvidence &evidence, std::vector<Finding> *findings);

// "; another certificate named 'X' could issue ... and was tried too": when
// other same-named issuers of chain[depth] were tried; empty otherwise.
std::string IssuersTriedNote(const ChainEvidence &evidence, size_t depth);

}  // namespace certgate
