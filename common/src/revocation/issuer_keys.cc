#include "revocation/issuer_keys.h"

#include <certgate/ossl_ptr.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string_view>

#include "cert_fields.h"

namespace certgate {
namespace {

using ossl::UniquePtr;

constexpr size_t kMaxIssuers = 64;  // a host's issuing CAs, with room to spare

// DER of the CertID's hashAlgorithm: SEQUENCE { OID sha1 (1.3.14.3.2.26), NULL },
// with the NULL parameter that OCSP_cert_id_new writes.
constexpr std::string_view kSha1AlgorithmDer("\x30\x09\x06\x05\x2b\x0e\x03\x02\x1a\x05\x00", 11);

struct Derived {
  std::string issuer_id;
  std::string subject_der;    // the issuer's subject, as encoded in the issuer
  std::string name_hash_der;  // OCTET STRING: SHA-1 of subject_der
  std::string key_hash_der;   // OCTET STRING: SHA-1 of the public key bits
};

std::string Digest(const EVP_MD *md, std::string_view data) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1) return "";
  return std::string(reinterpret_cast<char *>(out), len);
}

// A DER tag-length-value; lengths in the long form past 127 bytes.
std::string Tlv(unsigned char tag, std::string_view value) {
  std::string out(1, static_cast<char>(tag));
  const size_t len = value.size();
  if (len < 0x80) {
    out.push_back(static_cast<char>(len));
  } else {
    std::string bytes;
    for (size_t rest = len; rest != 0; rest >>= 8) bytes.insert(bytes.begin(), char(rest & 0xff));
    out.push_back(static_cast<char>(0x80 | bytes.size()));
    out += bytes;
  }
  out.append(value.data(), value.size());
  return out;
}

Derived Derive(X509 *issuer) {
  Derived d;
  d.subject_der = NameDer(X509_get_subject_name(issuer));
  unsigned char *spki = nullptr;
  const int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(issuer), &spki);
  if (!d.subject_der.empty() && spki_len > 0) {
    const std::string id_input =
        d.subject_der + std::string(reinterpret_cast<char *>(spki), static_cast<size_t>(spki_len));
    d.issuer_id = Digest(EVP_sha256(), id_input).substr(0, 20);
  }
  OPENSSL_free(spki);
  const ASN1_BIT_STRING *key = X509_get0_pubkey_bitstr(issuer);
  if (!d.subject_der.empty() && key != nullptr) {
    const std::string_view key_bits(reinterpret_cast<const char *>(ASN1_STRING_get0_data(key)),
                                    static_cast<size_t>(ASN1_STRING_length(key)));
    const std::string name_hash = Digest(EVP_sha1(), d.subject_der);
    const std::string key_hash = Digest(EVP_sha1(), key_bits);
    if (!name_hash.empty() && !key_hash.empty()) {
      d.name_hash_der = Tlv(V_ASN1_OCTET_STRING, name_hash);
      d.key_hash_der = Tlv(V_ASN1_OCTET_STRING, key_hash);
    }
  }
  return d;
}

// Derived keys by issuer certificate. Entries hold a reference to their
// certificate, and X509_cmp compares the encoded certificates, so a match is the
// same issuer, never a reused pointer.
class IssuerMemo {
 public:
  std::shared_ptr<const Derived> Get(X509 *issuer) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      for (const Entry &entry : entries_) {
        if (X509_cmp(entry.cert.get(), issuer) == 0) return entry.derived;
      }
    }
    auto derived = std::make_shared<const Derived>(Derive(issuer));
    if (derived->issuer_id.empty()) return derived;  // not worth remembering a failure
    X509_up_ref(issuer);
    std::lock_guard<std::mutex> lock(mutex_);
    if (entries_.size() == kMaxIssuers) entries_.pop_front();
    entries_.push_back(Entry{UniquePtr<X509>(issuer), derived});
    return derived;
  }

 private:
  struct Entry {
    UniquePtr<X509> cert;
    std::shared_ptr<const Derived> derived;
  };
  std::mutex mutex_;
  std::deque<Entry> entries_;
};

IssuerMemo &Memo() {
  static IssuerMemo *memo = new IssuerMemo();  // never destroyed: used until exit
  return *memo;
}

std::string CertIdFromLibrary(X509 *cert, X509 *issuer) {
  UniquePtr<OCSP_CERTID> id(OCSP_cert_to_id(EVP_sha1(), cert, issuer));
  if (!id) return "";
  unsigned char *der = nullptr;
  const int len = i2d_OCSP_CERTID(id.get(), &der);
  std::string out;
  if (len > 0) out.assign(reinterpret_cast<char *>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

}  // namespace

std::string IssuerId(X509 *issuer) { return Memo().Get(issuer)->issuer_id; }

std::string OcspCertIdKey(X509 *cert, X509 *issuer) {
  const std::shared_ptr<const Derived> derived = Memo().Get(issuer);
  // The CertID hashes the name as the certificate names its issuer; when that
  // encoding differs from the issuer's own (e.g. PrintableString vs UTF8String),
  // let OpenSSL hash it.
  if (derived->name_hash_der.empty() || NameDer(X509_get_issuer_name(cert)) != derived->subject_der)
    return CertIdFromLibrary(cert, issuer);
  unsigned char *serial = nullptr;
  const int serial_len = i2d_ASN1_INTEGER(X509_get0_serialNumber(cert), &serial);
  if (serial_len <= 0) return "";
  const std::string body =
      std::string(kSha1AlgorithmDer) + derived->name_hash_der + derived->key_hash_der +
      std::string(reinterpret_cast<char *>(serial), static_cast<size_t>(serial_len));
  OPENSSL_free(serial);
  return Tlv(V_ASN1_SEQUENCE | V_ASN1_CONSTRUCTED, body);
}

}  // namespace certgate
