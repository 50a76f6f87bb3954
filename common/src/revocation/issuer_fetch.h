// Missing intermediates fetched from AIA caIssuers URLs (certgate_fetch_issuers,
// issue 11 §3): parsing what CAs publish there, the background fetch into the
// shared store, and completing a chain with what the store holds.
//
// A fetched certificate is untrusted data named by a certificate not yet
// verified: only CA certificates are kept, they are only ever offered to chain
// building as untrusted intermediates, and the chain must still reach one of
// the server's anchors and pass every check a client-sent chain does.
#pragma once

#include <certgate/chain_evidence.h>
#include <certgate/policy.h>
#include <certgate/result.h>
#include <certgate/revocation.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "revocation/fetch_scheduler.h"

namespace certgate {

// The CA certificates of a caIssuers response: one DER certificate, PEM
// certificates, or a PKCS#7 certs-only bundle (.p7c, DER or PEM). Certificates
// that are not CAs (basicConstraints CA:TRUE) are dropped; an error when none is
// left, naming what was there.
Result<std::vector<std::shared_ptr<X509>>> ParseIssuerResponse(std::string_view body);

// The scheduler's pending key of a caIssuers URL's fetch.
std::string IssuerFetchKey(const std::string &url);

// Fetches `url` in the background unless pending, in backoff, or fetched by
// another process meanwhile; stores the CA certificates (or records the error in
// the URL's state). True when a fetch is now pending.
bool ScheduleIssuerFetch(FetchScheduler &scheduler, const std::string &url,
                         const FetchLimits &limits);

// RevocationChecker::CompleteChain.
IssuerCompletion CompleteChainFromAia(FetchScheduler &scheduler, const ChainEvidence &evidence,
                                      X509_STORE *trust, const Policy &policy, int64_t now);

}  // namespace certgate
