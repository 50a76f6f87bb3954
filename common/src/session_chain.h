// The CA certificates of a verified client chain, carried in the TLS session.
//
// A resumed session brings only the client's leaf. The process-wide
// IntermediateCache rebuilds the chain in the worker that saw it, but tickets and
// nginx's shared session cache resume in any worker, and a worker that never saw
// the client's intermediate would refuse the chain as untrusted. The session
// (encrypted in its ticket, or kept server-side) carries the intermediates, so
// every worker can rebuild it. They are offered only as untrusted candidates:
// the chain must still end at one of the server's anchors.
#pragma once

#include <certgate/chain_evidence.h>
#include <openssl/ssl.h>

namespace certgate {

// Stores the CAs between leaf and anchor of an anchored chain in `session`;
// false when there was nothing to store or OpenSSL refused it (error cleared).
bool RememberChainInSession(SSL_SESSION *session, const ChainEvidence &evidence);

// Appends the CAs stored in `session` (if any) to `candidates`.
void AddChainFromSession(const SSL_SESSION *session, STACK_OF(X509) * candidates);

}  // namespace certgate
