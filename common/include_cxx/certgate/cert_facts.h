// CertFacts: what a certificate says, as text an operator can read.
#pragma once

#include <openssl/x509.h>

#include <cstdint>
#include <string>
#include <vector>

namespace certgate {

struct CertFacts {
  std::string subject;      // RFC 2253
  std::string issuer;       // RFC 2253
  std::string serial;       // uppercase hex
  std::string fingerprint;  // "sha256:" + uppercase hex of the DER
  int64_t not_before = 0;
  int64_t not_after = 0;
  std::vector<std::string> extended_key_usage;  // short names; empty with has_eku = no extension
  bool has_eku = false;
  std::vector<std::string> key_usage;  // names of the bits set
  bool has_key_usage = false;
  std::string key;                // "EC P-256", "RSA 2048"
  std::string signature;          // "ecdsa-with-SHA256"
  std::vector<std::string> sans;  // "DNS:x", "email:x", "URI:x", "IP:x"
  std::vector<std::string> crl_urls;
  std::vector<std::string> ocsp_urls;
  std::vector<std::string> ca_issuer_urls;
  bool is_ca = false;
  bool self_signed = false;
};

CertFacts ExtractFacts(X509 *cert);

// A distinguished name as certgate writes it everywhere (RFC 2253).
std::string NameToString(const X509_NAME *name);

// 2027-03-01T00:00:00Z
std::string FormatTime(int64_t unix_seconds);

}  // namespace certgate
