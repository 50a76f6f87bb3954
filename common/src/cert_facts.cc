#include <arpa/inet.h>
#include <certgate/ossl_ptr.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <ctime>

#include "cert_fields.h"

namespace certgate {
namespace {

std::string Hex(const unsigned char *data, size_t len) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 0xf]);
  }
  return out;
}

std::string Asn1StringToUtf8(const ASN1_STRING *value) {
  unsigned char *utf8 = nullptr;
  const int len = ASN1_STRING_to_UTF8(&utf8, value);
  if (len < 0) return {};
  std::string out(reinterpret_cast<char *>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

struct KeyUsageName {
  uint32_t bit;
  const char *name;
};
constexpr KeyUsageName kKeyUsageNames[] = {
    {KU_DIGITAL_SIGNATURE, "digitalSignature"},
    {KU_NON_REPUDIATION, "nonRepudiation"},
    {KU_KEY_ENCIPHERMENT, "keyEncipherment"},
    {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
    {KU_KEY_AGREEMENT, "keyAgreement"},
    {KU_KEY_CERT_SIGN, "keyCertSign"},
    {KU_CRL_SIGN, "cRLSign"},
    {KU_ENCIPHER_ONLY, "encipherOnly"},
    {KU_DECIPHER_ONLY, "decipherOnly"},
};

}  // namespace

std::string NameToString(const X509_NAME *name) {
  ossl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || X509_NAME_print_ex(bio.get(), name, 0, XN_FLAG_RFC2253) < 0) return {};
  char *data = nullptr;
  const long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len > 0 ? len : 0));
}

std::string SerialHex(X509 *cert) {
  ossl::UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (!bn) return {};
  char *hex = BN_bn2hex(bn.get());
  std::string out = hex != nullptr ? hex : "";
  OPENSSL_free(hex);
  return out;
}

std::string Sha256Hex(X509 *cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (!X509_digest(cert, EVP_sha256(), md, &len)) return {};
  return Hex(md, len);
}

std::vector<uint8_t> SpkiSha256(X509 *cert) {
  unsigned char *der = nullptr;
  const int der_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &der);
  if (der_len <= 0) return {};
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  const bool ok = EVP_Digest(der, static_cast<size_t>(der_len), md, &len, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  return ok ? std::vector<uint8_t>(md, md + len) : std::vector<uint8_t>();
}

std::string SpkiSha256Hex(X509 *cert) {
  const std::vector<uint8_t> md = SpkiSha256(cert);
  return md.empty() ? std::string() : Hex(md.data(), md.size());
}

std::string KeyDescription(X509 *cert) {
  EVP_PKEY *key = X509_get0_pubkey(cert);
  if (key == nullptr) return "unknown";
  const int bits = EVP_PKEY_get_bits(key);
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[80] = {};
    size_t len = 0;
    if (EVP_PKEY_get_utf8_string_param(key, "group", group, sizeof group, &len)) {
      const int nid = OBJ_sn2nid(group);
      const char *nist = nid != NID_undef ? EC_curve_nid2nist(nid) : nullptr;
      return std::string("EC ") + (nist != nullptr ? nist : group);
    }
    return "EC " + std::to_string(bits);
  }
  const char *type = EVP_PKEY_get0_type_name(key);
  return std::string(type != nullptr ? type : "unknown") + " " + std::to_string(bits);
}

std::vector<std::string> AiaUrls(X509 *cert, int method_nid) {
  std::vector<std::string> urls;
  ossl::UniquePtr<AUTHORITY_INFO_ACCESS> aia(static_cast<AUTHORITY_INFO_ACCESS *>(
      X509_get_ext_d2i(cert, NID_info_access, nullptr, nullptr)));
  if (!aia) return urls;
  for (int i = 0; i < sk_ACCESS_DESCRIPTION_num(aia.get()); ++i) {
    const ACCESS_DESCRIPTION *ad = sk_ACCESS_DESCRIPTION_value(aia.get(), i);
    if (OBJ_obj2nid(ad->method) == method_nid && ad->location->type == GEN_URI) {
      urls.push_back(Asn1StringToUtf8(ad->location->d.uniformResourceIdentifier));
    }
  }
  return urls;
}

std::vector<std::string> CrlUrls(X509 *cert) {
  std::vector<std::string> urls;
  ossl::UniquePtr<CRL_DIST_POINTS> points(static_cast<CRL_DIST_POINTS *>(
      X509_get_ext_d2i(cert, NID_crl_distribution_points, nullptr, nullptr)));
  if (!points) return urls;
  for (int i = 0; i < sk_DIST_POINT_num(points.get()); ++i) {
    const DIST_POINT *point = sk_DIST_POINT_value(points.get(), i);
    if (point->distpoint == nullptr || point->distpoint->type != 0) continue;
    const GENERAL_NAMES *names = point->distpoint->name.fullname;
    for (int j = 0; j < sk_GENERAL_NAME_num(names); ++j) {
      const GENERAL_NAME *name = sk_GENERAL_NAME_value(names, j);
      if (name->type == GEN_URI)
        urls.push_back(Asn1StringToUtf8(name->d.uniformResourceIdentifier));
    }
  }
  return urls;
}

std::string GeneralNameToString(const GENERAL_NAME *name) {
  switch (name->type) {
    case GEN_DNS:
      return "DNS:" + Asn1StringToUtf8(name->d.dNSName);
    case GEN_EMAIL:
      return "email:" + Asn1StringToUtf8(name->d.rfc822Name);
    case GEN_URI:
      return "URI:" + Asn1StringToUtf8(name->d.uniformResourceIdentifier);
    case GEN_IPADD: {
      const ASN1_OCTET_STRING *ip = name->d.iPAddress;
      char text[INET6_ADDRSTRLEN] = {};
      const int family = ip->length == 4 ? AF_INET : ip->length == 16 ? AF_INET6 : -1;
      if (family < 0 || inet_ntop(family, ip->data, text, sizeof text) == nullptr) return "IP:?";
      return std::string("IP:") + text;
    }
    case GEN_DIRNAME:
      return "DirName:" + NameToString(name->d.directoryName);
    default:
      return "othername:<unsupported>";
  }
}

std::vector<std::string> SubjectAltNames(X509 *cert) {
  std::vector<std::string> out;
  ossl::UniquePtr<GENERAL_NAMES> names(
      static_cast<GENERAL_NAMES *>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
  if (!names) return out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names.get()); ++i) {
    out.push_back(GeneralNameToString(sk_GENERAL_NAME_value(names.get(), i)));
  }
  return out;
}

int64_t Asn1TimeToUnix(const ASN1_TIME *time) {
  struct tm tm = {};
  if (time == nullptr || !ASN1_TIME_to_tm(time, &tm)) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

std::string NameDer(const X509_NAME *name) {
  const unsigned char *der = nullptr;
  size_t len = 0;
  if (name == nullptr || X509_NAME_get0_der(name, &der, &len) != 1) return "";
  return std::string(reinterpret_cast<const char *>(der), len);
}

std::string LowerHex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

std::string FormatTime(int64_t unix_seconds) {
  const time_t t = static_cast<time_t>(unix_seconds);
  struct tm tm = {};
  gmtime_r(&t, &tm);
  char text[32];
  strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

CertFacts ExtractFacts(X509 *cert) {
  CertFacts facts;
  facts.subject = NameToString(X509_get_subject_name(cert));
  facts.issuer = NameToString(X509_get_issuer_name(cert));
  facts.serial = SerialHex(cert);
  facts.fingerprint = "sha256:" + Sha256Hex(cert);
  facts.not_before = Asn1TimeToUnix(X509_get0_notBefore(cert));
  facts.not_after = Asn1TimeToUnix(X509_get0_notAfter(cert));

  ossl::UniquePtr<EXTENDED_KEY_USAGE> eku(static_cast<EXTENDED_KEY_USAGE *>(
      X509_get_ext_d2i(cert, NID_ext_key_usage, nullptr, nullptr)));
  facts.has_eku = eku != nullptr;
  for (int i = 0; eku && i < sk_ASN1_OBJECT_num(eku.get()); ++i) {
    const int nid = OBJ_obj2nid(sk_ASN1_OBJECT_value(eku.get(), i));
    char oid[80];
    OBJ_obj2txt(oid, sizeof oid, sk_ASN1_OBJECT_value(eku.get(), i), 0);
    facts.extended_key_usage.push_back(nid != NID_undef ? OBJ_nid2sn(nid) : oid);
  }

  const uint32_t ku = X509_get_key_usage(cert);
  facts.has_key_usage = ku != UINT32_MAX;
  for (const auto &bit : kKeyUsageNames) {
    if (facts.has_key_usage && (ku & bit.bit)) facts.key_usage.push_back(bit.name);
  }

  facts.key = KeyDescription(cert);
  const int sig_nid = X509_get_signature_nid(cert);
  facts.signature = sig_nid != NID_undef ? OBJ_nid2ln(sig_nid) : "unknown";
  facts.sans = SubjectAltNames(cert);
  facts.crl_urls = CrlUrls(cert);
  facts.ocsp_urls = AiaUrls(cert, NID_ad_OCSP);
  facts.ca_issuer_urls = AiaUrls(cert, NID_ad_ca_issuers);
  facts.is_ca = X509_check_ca(cert) != 0;
  facts.self_signed = X509_self_signed(cert, 0) == 1;
  return facts;
}

}  // namespace certgate
