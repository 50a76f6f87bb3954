// The chain evidence certgate builds in a handshake, for a test chain: `leaf`
// as sent with `sent`, judged against a trust store holding `anchors`.
#pragma once

#include <certgate/chain_evidence.h>

#include <cstdint>
#include <vector>

#include "pki_builder.h"

namespace certgate::pki {

ChainEvidence EvidenceFor(const Issued &leaf, const std::vector<Issued> &sent,
                          const std::vector<Issued> &anchors, int64_t now);

}  // namespace certgate::pki
