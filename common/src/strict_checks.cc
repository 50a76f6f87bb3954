#include <certgate/ossl_ptr.h>
#include <certgate/strict_checks.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "name_constraints.h"
#include "strict_defects.h"

namespace certgate {
namespace {

constexpr const char *kReissue = "have the CA re-issue the certificate ";

const std::vector<StrictCheck> kChecks = {
    {"v1", CG_REASON_MALFORMED, "RFC 5280 §4.1.2.1",
     "every certificate is X.509 v3 (v1 and v2 cannot say what a certificate is for)"},
    {"v2", CG_REASON_MALFORMED, "RFC 5280 §4.1.2.1", "as v1"},
    {"serial_zero", CG_REASON_MALFORMED, "RFC 5280 §4.1.2.2", "the serial number is positive"},
    {"serial_negative", CG_REASON_MALFORMED, "RFC 5280 §4.1.2.2", "as serial_zero"},
    {"serial_too_long", CG_REASON_MALFORMED, "RFC 5280 §4.1.2.2",
     "the serial number is at most 20 octets"},
    {"missing_aki", CG_REASON_MALFORMED, "RFC 5280 §4.2.1.1",
     "every certificate but a self-signed one has an authorityKeyIdentifier"},
    {"aki_without_keyid", CG_REASON_MALFORMED, "RFC 5280 §4.2.1.1",
     "an authorityKeyIdentifier has keyIdentifier (roots included)"},
    {"missing_ski", CG_REASON_INVALID_CA, "RFC 5280 §4.2.1.2",
     "every CA certificate (roots included) has a subjectKeyIdentifier"},
    {"missing_basic_constraints", CG_REASON_INVALID_CA, "RFC 5280 §4.2.1.9",
     "every CA certificate (roots included) has basicConstraints CA:TRUE"},
    {"basic_constraints_not_critical", CG_REASON_INVALID_CA, "RFC 5280 §4.2.1.9",
     "a CA's basicConstraints is critical"},
    {"ca_as_leaf", CG_REASON_WRONG_PURPOSE, "RFC 5280 §4.2.1.9, CA/B BR §7.1.2.7",
     "the client certificate is an end-entity certificate, not a CA (CA:TRUE)"},
    {"leaf_key_cert_sign", CG_REASON_MALFORMED, "RFC 5280 §4.2.1.3",
     "keyCertSign appears only in a CA certificate"},
    {"malformed_aia", CG_REASON_MALFORMED, "RFC 5280 §4.2.2.1",
     "authorityInfoAccess decodes, is non-empty and non-critical"},
    {"policy_constraints_not_critical", CG_REASON_MALFORMED, "RFC 5280 §4.2.1.11",
     "policyConstraints is critical"},
    {"dsa_key", CG_REASON_WEAK_KEY, "FIPS 186-5, CA/B BR §6.1.5",
     "no certificate of the chain has a DSA key"},
    {"rsa_modulus_not_octets", CG_REASON_WEAK_KEY, "CA/B BR §6.1.5",
     "an RSA modulus is a whole number of octets (2048, not 2052 bits)"},
    {"nc_empty", CG_REASON_MALFORMED, "RFC 5280 §4.2.1.10",
     "a nameConstraints has permittedSubtrees or excludedSubtrees, and neither is an empty "
     "list"},
    {"nc_invalid_email_san", CG_REASON_MALFORMED, "RFC 5280 §4.2.1.10, §4.2.1.6",
     "under a CA with email name constraints, every email name (subjectAltName rfc822Name, "
     "subject emailAddress) is a mailbox local-part@domain"},
    {"nc_invalid_dns_san", CG_REASON_MALFORMED, "RFC 5280 §4.2.1.10, §4.2.1.6",
     "under a CA with DNS name constraints, every DNS subjectAltName is a hostname: "
     "letter-digit-hyphen labels, no empty label or trailing dot, a wildcard only as the whole "
     "leftmost label"},
    // Of a CRL, not of the chain: checked at the revocation lookup (revocation/lookup.cc).
    {"crl_without_crl_number", CG_REASON_REVOCATION_UNAVAILABLE, "RFC 5280 §5.2.3",
     "a CRL that vouches for a certificate has a crlNumber"},
    {"crl_number_critical", CG_REASON_REVOCATION_UNAVAILABLE, "RFC 5280 §5.2.3",
     "a CRL's crlNumber is non-critical"},
};

class CertChecker {
 public:
  CertChecker(X509 *cert, int depth, bool is_ca, bool is_end_entity, std::vector<StrictDefect> *out)
      : cert_(cert),
        depth_(depth),
        is_ca_(is_ca),
        is_end_entity_(is_end_entity),
        flags_(X509_get_extension_flags(cert)),
        out_(out) {}

  void Run() {
    IndexExtensions();
    Version();
    Serial();
    AuthorityKeyId();
    SubjectKeyId();
    BasicConstraints();
    KeyCertSignOnEndEntity();
    AuthorityInfoAccess();
    PolicyConstraints();
    Key();
  }

 private:
  void Add(std::string_view name, std::string fact, std::string hint) {
    out_->push_back({depth_, &StrictCheckNamed(name), std::move(fact), std::move(hint)});
  }

  // The extensions these checks read, found in one pass (a lookup by NID per
  // check would scan the list again each time).
  struct Extension {
    X509_EXTENSION *ext = nullptr;
    bool critical = false;
  };
  enum Watched { kAki, kSki, kBasicConstraints, kInfoAccess, kPolicyConstraints, kWatched };

  void IndexExtensions() {
    for (int i = 0; i < X509_get_ext_count(cert_); ++i) {
      X509_EXTENSION *ext = X509_get_ext(cert_, i);
      Watched which = kWatched;
      switch (OBJ_obj2nid(X509_EXTENSION_get_object(ext))) {
        case NID_authority_key_identifier:
          which = kAki;
          break;
        case NID_subject_key_identifier:
          which = kSki;
          break;
        case NID_basic_constraints:
          which = kBasicConstraints;
          break;
        case NID_info_access:
          which = kInfoAccess;
          break;
        case NID_policy_constraints:
          which = kPolicyConstraints;
          break;
        default:
          continue;
      }
      // A repeated extension already marks the certificate invalid (malformed).
      if (extensions_[which].ext == nullptr) {
        extensions_[which] = {ext, X509_EXTENSION_get_critical(ext) != 0};
      }
    }
  }

  bool Has(Watched which) const { return extensions_[which].ext != nullptr; }
  bool Critical(Watched which) const { return extensions_[which].critical; }

  void Version() {
    const long version = X509_get_version(cert_);
    if (version == X509_VERSION_3) return;
    Add(version == X509_VERSION_1 ? "v1" : "v2",
        "is an X.509 version " + std::to_string(version + 1) +
            " certificate, which has no extensions to say what it is for (RFC 5280 section "
            "4.1.2.1)",
        kReissue + std::string("as an X.509 v3 certificate"));
  }

  void Serial() {
    const ASN1_INTEGER *serial = X509_get0_serialNumber(cert_);
    const unsigned char *bytes = ASN1_STRING_get0_data(serial);
    const int length = ASN1_STRING_length(serial);
    bool zero = true;
    for (int i = 0; i < length && zero; ++i) zero = bytes[i] == 0;
    // DER adds a leading zero octet to a magnitude whose top bit is set.
    const int der_octets = length + (length > 0 && (bytes[0] & 0x80) != 0 ? 1 : 0);
    const std::string hint = kReissue + std::string("with a positive serial of at most 20 octets");
    if (zero) {
      Add("serial_zero", "has serial number 0; RFC 5280 section 4.1.2.2 requires a positive serial",
          hint);
    } else if (ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER) {
      Add("serial_negative",
          "has a negative serial number; RFC 5280 section 4.1.2.2 requires a positive serial",
          hint);
    } else if (der_octets > 20) {
      Add("serial_too_long",
          "has a serial number of " + std::to_string(der_octets) +
              " octets; RFC 5280 section 4.1.2.2 allows at most 20",
          hint);
    }
  }

  // A critical AKI or SKI OpenSSL refuses itself (an unhandled critical extension).
  void AuthorityKeyId() {
    if (!Has(kAki)) {
      // Only a self-signed certificate may omit it: nothing issued it but itself.
      if ((flags_ & EXFLAG_SS) == 0) {
        Add("missing_aki",
            "has no authorityKeyIdentifier; RFC 5280 section 4.2.1.1 requires one in every "
            "certificate but a self-signed one",
            kReissue + std::string("with an authorityKeyIdentifier naming the issuer's key"));
      }
      return;
    }
    if (X509_get0_authority_key_id(cert_) == nullptr) {
      Add("aki_without_keyid",
          "has an authorityKeyIdentifier without keyIdentifier (RFC 5280 section 4.2.1.1)",
          kReissue + std::string("with the keyIdentifier in its authorityKeyIdentifier"));
    }
  }

  void SubjectKeyId() {
    if (is_ca_ && !Has(kSki)) {
      Add("missing_ski",
          "is a CA without a subjectKeyIdentifier; RFC 5280 section 4.2.1.2 requires one in every "
          "CA "
          "certificate",
          "have the CA certificate re-issued with a subjectKeyIdentifier");
    }
  }

  void BasicConstraints() {
    if (is_ca_ && !Has(kBasicConstraints)) {
      Add("missing_basic_constraints",
          "issues certificates but has no basicConstraints; RFC 5280 section 4.2.1.9 requires a "
          "critical basicConstraints CA:TRUE in a CA certificate",
          "have the CA certificate re-issued with critical basicConstraints CA:TRUE");
    } else if (is_ca_ && !Critical(kBasicConstraints)) {
      Add("basic_constraints_not_critical",
          "issues certificates but its basicConstraints is not critical (RFC 5280 section 4.2.1.9)",
          "have the CA certificate re-issued with critical basicConstraints CA:TRUE");
    } else if (is_end_entity_ && (flags_ & EXFLAG_CA) != 0) {
      Add("ca_as_leaf",
          "is a CA certificate (basicConstraints CA:TRUE) presented as a client certificate; "
          "a client must present an end-entity certificate",
          "issue the client an end-entity certificate (CA:FALSE) from this CA");
    }
  }

  void KeyCertSignOnEndEntity() {
    if (!is_end_entity_ || (flags_ & EXFLAG_CA) != 0 || (flags_ & EXFLAG_KUSAGE) == 0) return;
    if ((X509_get_key_usage(cert_) & KU_KEY_CERT_SIGN) == 0) return;
    Add("leaf_key_cert_sign",
        "asserts keyUsage keyCertSign without being a CA; RFC 5280 section 4.2.1.3 allows "
        "keyCertSign only with basicConstraints CA:TRUE",
        kReissue + std::string("without keyCertSign"));
  }

  void AuthorityInfoAccess() {
    if (!Has(kInfoAccess)) return;
    const bool critical = Critical(kInfoAccess);
    ossl::UniquePtr<AUTHORITY_INFO_ACCESS> aia(
        static_cast<AUTHORITY_INFO_ACCESS *>(X509V3_EXT_d2i(extensions_[kInfoAccess].ext)));
    if (aia && sk_ACCESS_DESCRIPTION_num(aia.get()) > 0 && !critical) return;
    Add("malformed_aia",
        aia ? (critical
                   ? "marks authorityInfoAccess critical; RFC 5280 section 4.2.2.1 requires it "
                     "non-critical"
                   : "has an empty authorityInfoAccess (RFC 5280 section 4.2.2.1)")
            : "has an authorityInfoAccess extension that does not decode (RFC 5280 section "
              "4.2.2.1)",
        kReissue + std::string("with a well-formed authorityInfoAccess"));
  }

  void PolicyConstraints() {
    if (!Has(kPolicyConstraints) || Critical(kPolicyConstraints)) return;
    Add("policy_constraints_not_critical",
        "has a non-critical policyConstraints; RFC 5280 section 4.2.1.11 requires it critical",
        kReissue + std::string("with policyConstraints marked critical"));
  }

  void Key() {
    EVP_PKEY *key = X509_get0_pubkey(cert_);
    if (key == nullptr) return;  // OpenSSL refuses the chain for it
    // Base ids, not EVP_PKEY_is_a: a name lookup per call costs more than all
    // the other checks together.
    const int type = EVP_PKEY_get_base_id(key);
    if (type == EVP_PKEY_DSA) {
      Add("dsa_key", "has a DSA key; DSA is withdrawn (FIPS 186-5) and no TLS client needs it",
          kReissue + std::string("with an RSA or EC key"));
    } else if ((type == EVP_PKEY_RSA || type == EVP_PKEY_RSA_PSS) &&
               EVP_PKEY_get_bits(key) % 8 != 0) {
      Add("rsa_modulus_not_octets",
          "has an RSA modulus of " + std::to_string(EVP_PKEY_get_bits(key)) +
              " bits, not a whole number of octets, which no sound key generator makes",
          kReissue + std::string("with a freshly generated RSA key of 2048, 3072 or 4096 bits"));
    }
  }

  X509 *const cert_;
  const int depth_;
  const bool is_ca_;
  const bool is_end_entity_;
  const uint32_t flags_;
  std::vector<StrictDefect> *const out_;
  Extension extensions_[kWatched];
};

}  // namespace

const std::vector<StrictCheck> &StrictChecks() { return kChecks; }

const StrictCheck &StrictCheckNamed(std::string_view name) {
  for (const StrictCheck &check : kChecks) {
    if (check.name == name) return check;
  }
  // A name missing from the table is a bug the vectors catch; in a server it
  // still refuses (malformed), never crashes.
  static const StrictCheck kUnlisted{"unlisted", CG_REASON_MALFORMED, "", ""};
  return kUnlisted;
}

std::vector<StrictDefect> FindStrictDefects(const std::vector<std::shared_ptr<X509>> &chain,
                                            bool anchored) {
  std::vector<StrictDefect> defects;
  const size_t size = chain.size();
  for (size_t depth = 0; depth < size; ++depth) {
    // A certificate that issued the one below it, or a trust anchor above a leaf.
    const bool is_ca = depth > 0;
    // A lone certificate that is its own anchor (trusted directly) is no leaf of a CA.
    const bool is_end_entity = depth == 0 && !(anchored && size == 1);
    CertChecker(chain[depth].get(), static_cast<int>(depth), is_ca, is_end_entity, &defects).Run();
  }
  FindNameConstraintDefects(chain, &defects);
  return defects;
}

}  // namespace certgate
