#include "strict_vectors.h"

#include <openssl/x509v3.h>

namespace certgate::pki {
namespace {

// An authorityKeyIdentifier with a keyIdentifier, for a certificate whose
// issuer has no subjectKeyIdentifier to copy one from.
const std::pair<std::string, std::string> kAnyAkid{"authorityKeyIdentifier",
                                                   "DER:30:06:80:04:01:02:03:04"};

CertSpec Leaf() { return PkiBuilder::LeafSpec("CN=client,O=Example"); }
CertSpec Ca(const char *name) { return PkiBuilder::CaSpec(std::string("CN=") + name); }

// root -> issuing CA -> leaf, with `change_*` applied to each spec.
StrictChain Standard(PkiBuilder &pki, const std::function<void(CertSpec &)> &change_root,
                     const std::function<void(CertSpec &)> &change_ca,
                     const std::function<void(CertSpec &)> &change_leaf) {
  CertSpec root_spec = Ca("Strict Root");
  change_root(root_spec);
  const Issued root = pki.SelfSigned(root_spec);
  CertSpec ca_spec = Ca("Strict Issuing CA");
  change_ca(ca_spec);
  const Issued ca = pki.Issue(root, ca_spec);
  CertSpec leaf_spec = Leaf();
  change_leaf(leaf_spec);
  return {pki.Issue(ca, leaf_spec), {ca}, {root}};
}

void Same(CertSpec &) {}

StrictChain LeafWith(PkiBuilder &pki, const std::function<void(CertSpec &)> &change) {
  return Standard(pki, Same, Same, change);
}

}  // namespace

const std::vector<StrictVector> &StrictVectors() {
  static const std::vector<StrictVector> kVectors = {
      {"v1",
       [](PkiBuilder &pki) { return LeafWith(pki, [](CertSpec &s) { s.version = 1; }); },
       {{"require_eku", {"any"}}, {"require_key_usage", {"off"}}}},
      {"v2",
       [](PkiBuilder &pki) { return LeafWith(pki, [](CertSpec &s) { s.version = 2; }); },
       {{"require_eku", {"any"}}, {"require_key_usage", {"off"}}}},
      {"serial_zero",
       [](PkiBuilder &pki) { return LeafWith(pki, [](CertSpec &s) { s.serial_hex = "0"; }); }},
      {"serial_negative",
       [](PkiBuilder &pki) { return LeafWith(pki, [](CertSpec &s) { s.serial_hex = "-1F"; }); }},
      {"serial_too_long",
       [](PkiBuilder &pki) {
         // 20 octets of magnitude with the top bit set: 21 octets in DER.
         return LeafWith(pki, [](CertSpec &s) { s.serial_hex = std::string(40, 'F'); });
       }},
      {"missing_aki",
       [](PkiBuilder &pki) { return LeafWith(pki, [](CertSpec &s) { s.skid_akid = false; }); }},
      {"missing_aki",  // on the intermediate
       [](PkiBuilder &pki) {
         return Standard(
             pki, Same,
             [](CertSpec &s) {
               s.skid_akid = false;
               s.extra_extensions = {{"subjectKeyIdentifier", "hash"}};
             },
             Same);
       }},
      {"aki_without_keyid",  // on the root
       [](PkiBuilder &pki) {
         return Standard(
             pki,
             [](CertSpec &s) {
               s.skid_akid = false;
               s.extra_extensions = {{"subjectKeyIdentifier", "hash"},
                                     {"authorityKeyIdentifier", "issuer:always"}};
             },
             Same, Same);
       }},
      {"missing_ski",  // on the intermediate
       [](PkiBuilder &pki) {
         return Standard(
             pki, Same,
             [](CertSpec &s) {
               s.skid_akid = false;
               s.extra_extensions = {{"authorityKeyIdentifier", "keyid:always"}};
             },
             [](CertSpec &s) { s.extra_extensions = {kAnyAkid}; });
       }},
      {"missing_ski",  // on the root
       [](PkiBuilder &pki) {
         return Standard(
             pki, [](CertSpec &s) { s.skid_akid = false; },
             [](CertSpec &s) {
               s.skid_akid = false;
               s.extra_extensions = {{"subjectKeyIdentifier", "hash"}, kAnyAkid};
             },
             Same);
       }},
      {"missing_basic_constraints",  // on the root
       [](PkiBuilder &pki) {
         return Standard(
             pki, [](CertSpec &s) { s.omit_basic_constraints = true; }, Same, Same);
       }},
      {"basic_constraints_not_critical",  // on the root
       [](PkiBuilder &pki) {
         return Standard(
             pki, [](CertSpec &s) { s.basic_constraints_critical = false; }, Same, Same);
       }},
      {"ca_as_leaf",
       [](PkiBuilder &pki) {
         return LeafWith(pki, [](CertSpec &s) {
           s.is_ca = true;
           s.key_usage = KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN;
         });
       }},
      {"leaf_key_cert_sign",
       [](PkiBuilder &pki) {
         return LeafWith(
             pki, [](CertSpec &s) { s.key_usage = KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN; });
       }},
      {"malformed_aia",  // an empty SEQUENCE
       [](PkiBuilder &pki) {
         return LeafWith(pki, [](CertSpec &s) {
           s.extra_extensions = {{"authorityInfoAccess", "DER:30:00"}};
         });
       }},
      {"malformed_aia",  // not a SEQUENCE at all
       [](PkiBuilder &pki) {
         return LeafWith(pki, [](CertSpec &s) {
           s.extra_extensions = {{"authorityInfoAccess", "DER:04:02:de:ad"}};
         });
       }},
      {"policy_constraints_not_critical",
       [](PkiBuilder &pki) {
         return Standard(
             pki, Same,
             [](CertSpec &s) {
               s.extra_extensions = {{"policyConstraints", "inhibitPolicyMapping:0"}};
             },
             Same);
       }},
      {"dsa_key",
       [](PkiBuilder &pki) {
         return LeafWith(pki, [](CertSpec &s) { s.key = KeySpec{KeySpec::Type::kDsa, 2048}; });
       },
       {{"min_key", {"rsa=2048", "ec=256", "dsa=2048"}}}},
      {"rsa_modulus_not_octets",
       [](PkiBuilder &pki) {
         return LeafWith(pki, [](CertSpec &s) { s.key = KeySpec{KeySpec::Type::kRsa, 2052}; });
       }},
  };
  return kVectors;
}

}  // namespace certgate::pki
