// The keys revocation data is stored under, derived from an issuing CA.
//
// Every request with revocation on looks its chain up by these keys, and
// deriving them hashes the issuer's name and key (a few µs with OpenSSL 3's
// digest fetches). A host sees a handful of issuers, so they are computed once
// per issuer certificate and process and remembered.
#pragma once

#include <openssl/x509.h>

#include <string>

namespace certgate {

// The id under which an issuer's CRL is stored: SHA-256 over the issuer's subject
// DER and SubjectPublicKeyInfo DER, first 20 bytes (a re-keyed CA is a new id).
std::string IssuerId(X509 *issuer);

// DER of the SHA-1 CertID of `cert` issued by `issuer` (the ocsp table's key),
// byte for byte what OCSP_cert_to_id(EVP_sha1(), cert, issuer) encodes to.
std::string OcspCertIdKey(X509 *cert, X509 *issuer);

}  // namespace certgate
