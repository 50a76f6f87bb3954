#include "large_crl.h"

#include <certgate/ossl_ptr.h>
#include <openssl/bn.h>

namespace certgate::bench {

std::string LargeCrlSerial(uint64_t i) {
  uint64_t a = (i + 1) * 0x9E3779B97F4A7C15ull, b = i ^ 0x5bd1e9955bd1e995ull;
  std::string s(16, '\0');
  for (int k = 0; k < 8; ++k) {
    s[k] = static_cast<char>(a >> (56 - 8 * k));
    s[8 + k] = static_cast<char>(b >> (56 - 8 * k));
  }
  s[0] = static_cast<char>((static_cast<uint8_t>(s[0]) & 0x7f) | 0x10);  // positive, 16 bytes
  return s;
}

namespace {

bool AddEntry(X509_CRL *crl, BIGNUM *serial_bn, const ASN1_TIME *when) {
  ossl::UniquePtr<ASN1_INTEGER> serial(BN_to_ASN1_INTEGER(serial_bn, nullptr));
  X509_REVOKED *rev = X509_REVOKED_new();
  if (!serial || rev == nullptr || !X509_REVOKED_set_serialNumber(rev, serial.get()) ||
      !X509_REVOKED_set_revocationDate(rev, const_cast<ASN1_TIME *>(when)) ||
      !X509_CRL_add0_revoked(crl, rev)) {
    X509_REVOKED_free(rev);
    return false;
  }
  return true;
}

}  // namespace

std::string MakeLargeCrl(const pki::Issued &ca, const LargeCrlSpec &spec) {
  ossl::UniquePtr<X509_CRL> crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ca.cert.get()));
  ossl::UniquePtr<ASN1_TIME> last(ASN1_TIME_set(nullptr, spec.this_update));
  ossl::UniquePtr<ASN1_TIME> next(ASN1_TIME_set(nullptr, spec.next_update));
  X509_CRL_set1_lastUpdate(crl.get(), last.get());
  X509_CRL_set1_nextUpdate(crl.get(), next.get());
  for (size_t i = 0; i < spec.entries; ++i) {
    std::string bytes = LargeCrlSerial(spec.first + i);
    ossl::UniquePtr<BIGNUM> bn(
        BN_bin2bn(reinterpret_cast<const unsigned char *>(bytes.data()), 16, nullptr));
    if (!bn || !AddEntry(crl.get(), bn.get(), last.get())) return "";
  }
  for (const std::string &hex : spec.extra_serials_hex) {
    BIGNUM *parsed = nullptr;
    if (BN_hex2bn(&parsed, hex.c_str()) == 0) return "";
    ossl::UniquePtr<BIGNUM> bn(parsed);
    if (!AddEntry(crl.get(), bn.get(), last.get())) return "";
  }
  X509_CRL_sort(crl.get());
  ossl::UniquePtr<ASN1_INTEGER> n(ASN1_INTEGER_new());
  ASN1_INTEGER_set(n.get(), static_cast<long>(spec.number));
  X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, n.get(), 0, 0);
  if (spec.delta_base >= 0) {
    ossl::UniquePtr<ASN1_INTEGER> base(ASN1_INTEGER_new());
    ASN1_INTEGER_set(base.get(), static_cast<long>(spec.delta_base));
    X509_CRL_add1_ext_i2d(crl.get(), NID_delta_crl, base.get(), 1, 0);
  }
  if (X509_CRL_sign(crl.get(), ca.key.get(), EVP_sha256()) <= 0) return "";
  return pki::ToDer(crl.get());
}

}  // namespace certgate::bench
