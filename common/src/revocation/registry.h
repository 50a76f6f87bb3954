// The process's revocation checkers: one per cache directory, opened on first
// use in each process, so nginx and Apache workers open LMDB after fork.
#pragma once

#include <certgate/clock.h>
#include <certgate/policy.h>
#include <certgate/revocation.h>
#include <openssl/x509.h>

#include <chrono>
#include <string>

namespace certgate {

// The checker for `policy`'s cache. Its certgate_crl files are preloaded in
// the background the first time (verified against `trust`), so no request
// thread or event loop waits for a large ingest. Null with `error` set when the
// cache cannot be opened. Checkers live until the process exits.
RevocationChecker *RevocationFor(const Policy &policy, X509_STORE *trust, const Clock &clock,
                                 std::string *error);

// Whether a certgate_crl preload is still running in this process.
bool PreloadInProgress();

// Blocks up to `wait` until this process's preloads are done (threaded servers).
void WaitForPreloads(std::chrono::milliseconds wait);

}  // namespace certgate
