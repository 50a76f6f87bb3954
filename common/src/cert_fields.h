// The individual facts of a certificate that CertFacts gathers, each cheap
// enough for the decision path (implemented in cert_facts.cc).
#pragma once

#include <certgate/cert_facts.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace certgate {

std::string NameDer(const X509_NAME *name);  // as encoded (a lookup key)
std::string SerialHex(X509 *cert);
std::string Sha256Hex(X509 *cert);  // certificate DER
// SHA-256 of the DER SubjectPublicKeyInfo, the `spki:` pin: what RFC 7469,
// curl --pinnedpubkey and Envoy hash (`openssl x509 -pubkey -noout | openssl
// pkey -pubin -outform der | sha256sum`), not X509_pubkey_digest's hash of the
// bare key bits. Empty on failure.
std::vector<uint8_t> SpkiSha256(X509 *cert);
std::string SpkiSha256Hex(X509 *cert);
std::string KeyDescription(X509 *cert);  // "RSA 2048", "EC P-256"
std::vector<std::string> AiaUrls(X509 *cert, int method_nid);
std::vector<std::string> CrlUrls(X509 *cert);
std::vector<std::string> SubjectAltNames(X509 *cert);
// "DNS:x", "email:x", "URI:x", "IP:x", "DirName:x", "othername:<unsupported>".
std::string GeneralNameToString(const GENERAL_NAME *name);

// Lowercase hex of raw bytes (cache keys, digests in the store's listings).
std::string LowerHex(std::string_view bytes);

int64_t Asn1TimeToUnix(const ASN1_TIME *time);

}  // namespace certgate
