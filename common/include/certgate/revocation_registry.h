// The process's revocation checkers: one per cache directory, opened on first
// use in each process, so nginx and Apache workers open LMDB after fork.
#pragma once

#include <certgate/clock.h>
#include <certgate/policy.h>
#include <certgate/revocation.h>
#include <openssl/x509.h>

#include <string>

namespace certgate {

// Where the shared cache lives when certgate_cache is not set.
constexpr const char *kDefaultCacheDir = "/var/cache/certgate";

// The checker for `policy`'s cache, with its certgate_crl files preloaded
// (verified against `trust`). Null with `error` set when the cache cannot be
// opened. Checkers live until the process exits.
RevocationChecker *RevocationFor(const Policy &policy, X509_STORE *trust, const Clock &clock,
                                 std::string *error);

}  // namespace certgate
