// The TLS side: certgate's verification on an SSL_CTX, decisions per connection.
#pragma once

#include <certgate/certgate.h>
#include <certgate/clock.h>
#include <certgate/policy.h>
#include <openssl/ssl.h>

#include <chrono>

namespace certgate {

// Installs certgate's verification on `ctx` (see cg_ssl_ctx_attach).
Status AttachToSslCtx(SSL_CTX *ctx, const Policy *policy, cg_ssl_log_fn log, void *log_data);

// The connection's decision under `policy` (see cg_ssl_decide).
const cg_decision *DecideForConnection(SSL *ssl, const Policy &policy);

// The decision for a request that did not come over TLS (or when certgate
// failed): no certificate, judged by `policy`'s mode. Shared, immutable.
const cg_decision *DecisionWithoutTls(const Policy &policy, bool internal_error = false);

// Blocks up to `wait` while a revocation fetch for the connection's chain is in
// flight (see cg_ssl_wait).
void WaitForRevocation(SSL *ssl, const Policy &policy, std::chrono::milliseconds wait);

// The clock decisions on TLS connections use (SetConnectionClock's, or the system's).
const Clock &ConnectionClock();

// Replaces the process's clock for decisions made on TLS connections (tests).
void SetConnectionClock(const Clock *clock);

}  // namespace certgate
