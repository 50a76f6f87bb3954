// A private key against a certificate, and a leaf against client
// authentication: the first steps of any "the client sends no certificate"
// investigation (certgate check --key, certgate probe).
#pragma once

#include <certgate/ossl_ptr.h>
#include <certgate/result.h>

#include <string>
#include <vector>

namespace certgate::cli {

// The private key of a PEM (or DER) file, unencrypted.
Result<ossl::UniquePtr<EVP_PKEY>> ReadPrivateKey(const std::string &path);

struct KeyMatch {
  bool matches = false;
  std::string key;      // "RSA 2048", "EC prime256v1", "ED25519"
  std::string message;  // one sentence either way
};
// Whether `key` is the private half of `cert`'s public key.
KeyMatch MatchKey(X509 *cert, EVP_PKEY *key);

// What the leaf's extendedKeyUsage and keyUsage say about client
// authentication: problems (empty when it may authenticate a TLS client).
std::vector<std::string> ClientAuthProblems(X509 *leaf);

}  // namespace certgate::cli
