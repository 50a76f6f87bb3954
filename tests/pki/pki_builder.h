// PkiBuilder: a test PKI generated at test time with OpenSSL 3 (DESIGN §6).
//
// Roots, intermediates and leaves with every defect of the reason table, CRLs and
// OCSP responses, all relative to an injected "now", so nothing checked in can
// expire. Used by the unit tests (certgate::pki) and by certgate-mkpki, which
// writes the demo PKI of demo_pki.h for the integration tests.
//
// Errors: no exceptions. A call that fails returns an empty handle (null cert /
// CRL / response) and last_error() says why.
#pragma once

#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace certgate::pki {

struct KeySpec {
  enum class Type { kRsa, kEc, kDsa, kEd25519 } type = Type::kEc;
  // EC: 256 -> P-256, 384 -> P-384, 521 -> P-521, 224 -> P-224 (weak). RSA and DSA:
  // modulus (p) bits. Ed25519: ignored.
  int bits = 256;
};

struct CertSpec {
  // RFC 2253 order, most specific RDN first: "CN=alice,OU=People,O=Example" is
  // encoded O, OU, CN, so X509_NAME_print_ex(..., XN_FLAG_RFC2253) prints the same
  // string back. `\,` escapes a comma inside a value.
  std::string subject;
  // basicConstraints (critical): CA:TRUE when is_ca, CA:FALSE otherwise, unless omitted.
  bool is_ca = false;
  bool omit_basic_constraints = false;
  bool basic_constraints_critical = true;
  // 3: X.509 v3. 1: a v1 certificate, which has no extensions (the fields below
  // that would add one are ignored).
  int version = 3;
  std::optional<int> path_len;
  KeySpec key;
  // Absolute Unix seconds; 0 = default relative to PkiBuilder::now(): not_before =
  // now - 1 day, not_after = now + 365 days.
  int64_t not_before = 0, not_after = 0;
  // Short names: "clientAuth", "serverAuth", "OCSPSigning", "emailProtection", ...
  // Empty = no extendedKeyUsage extension.
  std::vector<std::string> eku;
  // OpenSSL KU_* bits (critical keyUsage). nullopt = no keyUsage extension, except
  // for a CA, which then gets keyCertSign|cRLSign. 0 = a keyUsage with no bit set.
  std::optional<uint32_t> key_usage;
  // "DNS:a.example", "email:a@x", "URI:spiffe://prod/a", "IP:127.0.0.1".
  std::vector<std::string> san;
  std::vector<std::string> crl_urls;        // CRL distribution points
  std::vector<std::string> ocsp_urls;       // AIA OCSP
  std::vector<std::string> ca_issuer_urls;  // AIA caIssuers
  // "sha256", "sha384", "sha512", "sha1", "md5" (md5 with RSA keys only; with an EC
  // key "sha1" gives ecdsa-with-SHA1).
  std::string digest = "sha256";
  uint64_t serial = 0;  // 0 = next from the builder's counter
  // When set, the serial as hex (BN_hex2bn: "0", "-1F", 42 hex digits): for the
  // zero, negative and over-long serials RFC 5280 forbids.
  std::string serial_hex;
  // Flips a bit in the signature after signing; the cert still parses.
  bool corrupt_signature = false;
  // Replaces basicConstraints by a critical basicConstraints extension whose value
  // is not DER of a BasicConstraints (an OCTET STRING). The cert parses (d2i),
  // but OpenSSL marks it invalid (EXFLAG_INVALID) and X509_verify_cert rejects it.
  bool invalid_extension = false;
  bool skid_akid = true;  // subjectKeyIdentifier, and authorityKeyIdentifier (keyid)
  // Any other extension in OpenSSL config syntax: {"noCheck", "ignored"},
  // {"nameConstraints", "critical,permitted;DNS:.example"}, ...
  std::vector<std::pair<std::string, std::string>> extra_extensions;
};

// A cert and its private key. Copyable handle: shared ownership.
struct Issued {
  std::shared_ptr<X509> cert;
  std::shared_ptr<EVP_PKEY> key;

  explicit operator bool() const { return cert != nullptr && key != nullptr; }
  std::string Pem() const;     // cert PEM
  std::string KeyPem() const;  // PKCS#8 PEM, unencrypted
  std::string Der() const;     // cert DER
};

class PkiBuilder {
 public:
  // `now` is the test's current time (Unix seconds); spec defaults are relative to it.
  explicit PkiBuilder(int64_t now);

  int64_t now() const { return now_; }

  // A root (or a self-signed leaf when !is_ca).
  Issued SelfSigned(CertSpec spec);
  // Signed by issuer.key; issuer name and authorityKeyIdentifier from issuer.cert.
  Issued Issue(const Issued &issuer, CertSpec spec);

  // CA: EC P-256, CA:TRUE, keyCertSign|cRLSign.
  static CertSpec CaSpec(std::string subject);
  // Client leaf: EC P-256, EKU clientAuth, keyUsage digitalSignature, CA:FALSE.
  static CertSpec LeafSpec(std::string subject);

  struct Revoked {
    uint64_t serial;
    int64_t when;
    int reason = -1;  // CRLReason code (OCSP_REVOKED_STATUS_* / CRL_REASON_*), -1 = none
  };
  // How a CRL carries its crlNumber: as RFC 5280 §5.2.3 asks (non-critical), or
  // with one of the defects certgate_strict refuses.
  enum class CrlNumberExtension { kNonCritical, kCritical, kOmitted };

  // A v2 CRL signed by `issuer`: crlNumber, authorityKeyIdentifier (when the issuer
  // has a subjectKeyIdentifier), thisUpdate/nextUpdate absolute (next_update 0 =
  // no nextUpdate). `scope_urls`: a critical issuingDistributionPoint naming
  // these URIs (a partitioned CRL); empty: none. `crl_number_extension`: kOmitted
  // ignores `crl_number`.
  std::shared_ptr<X509_CRL> Crl(
      const Issued &issuer, const std::vector<Revoked> &revoked, int64_t crl_number,
      int64_t this_update, int64_t next_update, const std::string &digest = "sha256",
      const std::vector<std::string> &scope_urls = {},
      CrlNumberExtension crl_number_extension = CrlNumberExtension::kNonCritical);

  // Delta CRLs (RFC 5280 §5.2.4): adds to `crl` a deltaCRLIndicator naming
  // base crlNumber `delta_base` (>= 0; critical unless `indicator_critical` is
  // false, a defect) and/or a freshestCRL naming `freshest_urls` (a base CRL
  // saying where its deltas are), then signs it again with `issuer`.
  bool AddDeltaExtensions(X509_CRL *crl, const Issued &issuer, int64_t delta_base,
                          const std::vector<std::string> &freshest_urls,
                          bool indicator_critical = true, const std::string &digest = "sha256");

  // A successful OCSP response with one SingleResponse (CertID with SHA-1) for
  // `cert` issued by `issuer`, signed by `signer` (the issuer itself, or a delegated
  // responder with EKU OCSPSigning; its cert is included in the response when it is
  // not the issuer). status: V_OCSP_CERTSTATUS_GOOD / _REVOKED / _UNKNOWN.
  // next_update 0 = no nextUpdate. revoked_at/reason apply to REVOKED only
  // (reason -1 = no reason). producedAt is the wall clock (OpenSSL sets it while
  // signing).
  std::shared_ptr<OCSP_RESPONSE> Ocsp(const Issued &cert, const Issued &issuer,
                                      const Issued &signer, int status, int64_t this_update,
                                      int64_t next_update, int64_t revoked_at = 0, int reason = -1);

  // Why the last failed call failed (empty when none has).
  const std::string &last_error() const { return last_error_; }

  // RSA key generation is slow, so RSA keys come from a pool of up to
  // kRsaPoolSize keys per modulus size, reused round-robin across the certs of
  // this builder (never the issuer's own key). Certs beyond the pool size share
  // keys with earlier ones (same SPKI pin). EC keys are fresh for every cert.
  static constexpr size_t kRsaPoolSize = 3;

 private:
  Issued Build(const Issued *issuer, CertSpec spec);
  std::shared_ptr<EVP_PKEY> AcquireKey(const KeySpec &spec, const EVP_PKEY *avoid);
  bool Fail(std::string message);

  int64_t now_;
  uint64_t next_serial_ = 0x1000;
  std::map<int, std::vector<std::shared_ptr<EVP_PKEY>>> rsa_pool_;
  std::map<int, size_t> rsa_next_;
  std::string last_error_;
};

std::string ToPem(X509 *cert);
std::string ToPem(X509_CRL *crl);
std::string ToDer(X509 *cert);
std::string ToDer(X509_CRL *crl);
std::string ToDer(OCSP_RESPONSE *response);
// Private key as unencrypted PKCS#8 PEM.
std::string KeyToPem(EVP_PKEY *key);

// Writes `data` to `path` (binary), creating parent directories. False on error.
bool WriteFile(const std::string &path, const std::string &data);

}  // namespace certgate::pki
