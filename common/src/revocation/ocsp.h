// OCSP: requests for the AIA responder and verification of its answers (DESIGN §5).
//
// Requests carry one SHA-1 CertID and no nonce (so responders and caches may
// serve pre-signed answers). An answer is used only when it is a successful
// basic response signed by the issuing CA itself or by a delegated responder
// whose certificate carries id-kp-OCSPSigning and is issued by that CA
// (OCSP_basic_verify against a store holding only the issuer, at the injected
// time), has a SingleResponse for our CertID, and thisUpdate/nextUpdate are sane.
#pragma once

#include <certgate/result.h>
#include <openssl/x509.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "revocation/issuer_keys.h"  // OcspCertIdKey
#include "revocation/store.h"

namespace certgate {

// DER of an OCSPRequest for `cert`.
Result<std::string> OcspRequestDer(X509 *cert, X509 *issuer);

// The GET URL (responder + "/" + URL-encoded base64 of the request) when the
// encoded request is shorter than 255 bytes (RFC 5019), else "" (use POST).
std::string OcspGetUrl(const std::string &responder, const std::string &request_der);

// Verifies a DER OCSPResponse for `cert`; the record's source is `responder`.
Result<OcspRecord> VerifyOcspResponse(std::string_view der, X509 *cert, X509 *issuer,
                                      const std::string &responder, int64_t now,
                                      int64_t skew = 300);

// Stores `record` unless the cached answer is newer (a bad or replayed answer
// never replaces good data). False (and a reason) when refused.
Status StoreOcsp(RevocationStore &store, const std::string &cert_id, const OcspRecord &record);

}  // namespace certgate
