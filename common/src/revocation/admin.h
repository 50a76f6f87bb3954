// What only the CLI asks of the revocation cache: fetch a chain's URLs now
// (certgate fetch), and list what the store holds (certgate cache list).
// Private to certgate_core; RevocationChecker::FetchNow and List call these.
#pragma once

#include <certgate/chain_evidence.h>
#include <certgate/clock.h>
#include <certgate/policy.h>

#include <string>
#include <vector>

#include "fetch_scheduler.h"
#include "revocation/store.h"

namespace certgate {

// RevocationChecker::FetchUrls (revocation.h): one UrlFetch per URL.
std::vector<UrlFetch> FetchUrls(FetchScheduler &scheduler, const Clock &clock,
                                const ChainEvidence &evidence, const Policy &policy);

// RevocationChecker::FetchNow (revocation.h): one line per URL.
std::vector<std::string> FetchNow(FetchScheduler &scheduler, const Clock &clock,
                                  const ChainEvidence &evidence, const Policy &policy);

// RevocationChecker::List (revocation.h): one line per record of the store.
std::vector<std::string> ListStore(RevocationStore &store, const Clock &clock);

}  // namespace certgate
