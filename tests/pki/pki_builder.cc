#include "pki_builder.h"

#include <certgate/ossl_ptr.h>
#include <openssl/bn.h>
#include <openssl/dsa.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace certgate::pki {
namespace {

using ossl::UniquePtr;

constexpr int64_t kDay = 86400;

template <typename T>
std::shared_ptr<T> Share(UniquePtr<T> p) {
  return std::shared_ptr<T>(p.release(), ossl::Deleter<T>());
}

// The OpenSSL error queue as text, emptied.
std::string OpensslErrors() {
  std::string out;
  unsigned long code;
  char buf[256];
  while ((code = ERR_get_error()) != 0) {
    ERR_error_string_n(code, buf, sizeof(buf));
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out;
}

std::string BioContents(BIO *bio) {
  char *data = nullptr;
  long len = BIO_get_mem_data(bio, &data);
  return len > 0 ? std::string(data, static_cast<size_t>(len)) : std::string();
}

template <typename Write>
std::string ToMemory(Write write) {
  UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || write(bio.get()) <= 0) return std::string();
  return BioContents(bio.get());
}

UniquePtr<ASN1_TIME> MakeTime(int64_t when) {
  return UniquePtr<ASN1_TIME>(ASN1_TIME_set(nullptr, static_cast<time_t>(when)));
}

UniquePtr<ASN1_INTEGER> MakeInteger(uint64_t value) {
  UniquePtr<ASN1_INTEGER> out(ASN1_INTEGER_new());
  if (out && ASN1_INTEGER_set_uint64(out.get(), value) != 1) out.reset();
  return out;
}

// BN_hex2bn syntax, so a test can make the serials RFC 5280 forbids.
UniquePtr<ASN1_INTEGER> HexInteger(const std::string &hex) {
  BIGNUM *bn = nullptr;
  if (BN_hex2bn(&bn, hex.c_str()) == 0) return nullptr;
  UniquePtr<BIGNUM> owned(bn);
  return UniquePtr<ASN1_INTEGER>(BN_to_ASN1_INTEGER(owned.get(), nullptr));
}

// DSA parameters and a key of `bits`: only to show DSA is refused.
std::shared_ptr<EVP_PKEY> GenerateDsaKey(int bits) {
  UniquePtr<EVP_PKEY_CTX> param_ctx(EVP_PKEY_CTX_new_from_name(nullptr, "DSA", nullptr));
  EVP_PKEY *params = nullptr;
  if (!param_ctx || EVP_PKEY_paramgen_init(param_ctx.get()) <= 0 ||
      EVP_PKEY_CTX_set_dsa_paramgen_bits(param_ctx.get(), bits) <= 0 ||
      EVP_PKEY_paramgen(param_ctx.get(), &params) <= 0) {
    return nullptr;
  }
  UniquePtr<EVP_PKEY> owned_params(params);
  UniquePtr<EVP_PKEY_CTX> key_ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, params, nullptr));
  EVP_PKEY *key = nullptr;
  if (!key_ctx || EVP_PKEY_keygen_init(key_ctx.get()) <= 0 ||
      EVP_PKEY_keygen(key_ctx.get(), &key) <= 0) {
    return nullptr;
  }
  return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free);
}

// Splits an RFC 2253 string on unescaped commas into (attribute, value) pairs.
bool ParseDn(const std::string &dn, std::vector<std::pair<std::string, std::string>> *out) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < dn.size(); ++i) {
    if (dn[i] == '\\' && i + 1 < dn.size()) {
      parts.back() += dn[++i];
    } else if (dn[i] == ',') {
      parts.emplace_back();
    } else {
      parts.back() += dn[i];
    }
  }
  for (std::string &part : parts) {
    size_t start = part.find_first_not_of(' ');
    if (start == std::string::npos) return false;
    part.erase(0, start);
    size_t eq = part.find('=');
    if (eq == std::string::npos || eq == 0) return false;
    out->emplace_back(part.substr(0, eq), part.substr(eq + 1));
  }
  return true;
}

UniquePtr<X509_NAME> MakeName(const std::string &dn) {
  std::vector<std::pair<std::string, std::string>> rdns;
  if (dn.empty() || !ParseDn(dn, &rdns)) return nullptr;
  UniquePtr<X509_NAME> name(X509_NAME_new());
  if (!name) return nullptr;
  // RFC 2253 lists the most specific RDN first; the encoding starts at the root.
  for (auto it = rdns.rbegin(); it != rdns.rend(); ++it) {
    const auto *value = reinterpret_cast<const unsigned char *>(it->second.data());
    const int len = static_cast<int>(it->second.size());
    if (X509_NAME_add_entry_by_txt(name.get(), it->first.c_str(), MBSTRING_UTF8, value, len, -1,
                                   0) == 1) {
      continue;
    }
    // Beyond the attribute's upper bound (64 for CN): a hostile client's name,
    // encoded as a plain UTF8String, as an attacker's own tools would.
    if (ERR_GET_REASON(ERR_peek_last_error()) != ASN1_R_STRING_TOO_LONG) return nullptr;
    ERR_clear_error();
    if (X509_NAME_add_entry_by_txt(name.get(), it->first.c_str(), V_ASN1_UTF8STRING, value, len, -1,
                                   0) != 1) {
      return nullptr;
    }
  }
  return name;
}

std::string Join(const std::vector<std::string> &items, const std::string &prefix) {
  std::string out;
  for (const std::string &item : items) {
    if (!out.empty()) out += ',';
    out += prefix + item;
  }
  return out;
}

void AppendDerLength(size_t len, std::string *out) {
  if (len < 0x80) {
    *out += static_cast<char>(len);
    return;
  }
  std::string bytes;
  for (; len > 0; len >>= 8) bytes.insert(bytes.begin(), static_cast<char>(len & 0xff));
  *out += static_cast<char>(0x80 | bytes.size());
  *out += bytes;
}

std::string DerTlv(unsigned char tag, const std::string &content) {
  std::string out(1, static_cast<char>(tag));
  AppendDerLength(content.size(), &out);
  return out + content;
}

// An extension built from raw DER: `value` is the content of extnValue, used
// as is (even when it does not decode as the extension's type).
UniquePtr<X509_EXTENSION> RawExtension(int nid, bool critical, const std::string &value) {
  const ASN1_OBJECT *obj = OBJ_nid2obj(nid);
  if (obj == nullptr) return nullptr;
  int oid_len = i2d_ASN1_OBJECT(obj, nullptr);
  if (oid_len <= 0) return nullptr;
  std::string oid(static_cast<size_t>(oid_len), '\0');
  unsigned char *p = reinterpret_cast<unsigned char *>(&oid[0]);
  if (i2d_ASN1_OBJECT(obj, &p) != oid_len) return nullptr;
  std::string body = oid;
  if (critical) body += std::string("\x01\x01\xff", 3);
  body += DerTlv(0x04, value);
  std::string der = DerTlv(0x30, body);
  const unsigned char *in = reinterpret_cast<const unsigned char *>(der.data());
  return UniquePtr<X509_EXTENSION>(d2i_X509_EXTENSION(nullptr, &in, static_cast<long>(der.size())));
}

// keyUsage DER value (a BIT STRING) from KU_* bits.
std::string KeyUsageValue(uint32_t ku) {
  // Named bits: digitalSignature(0) ... decipherOnly(8); KU_* keeps bits 0-7 in the
  // first byte (0x80 = bit 0) and decipherOnly in 0x8000.
  unsigned char bytes[2] = {static_cast<unsigned char>(ku & 0xff),
                            static_cast<unsigned char>((ku >> 8) & 0x80)};
  size_t len = bytes[1] != 0 ? 2 : (bytes[0] != 0 ? 1 : 0);
  int unused = 0;
  if (len > 0) {
    unsigned char last = bytes[len - 1];
    while ((last & 1) == 0) {
      last >>= 1;
      ++unused;
    }
  }
  std::string content(1, static_cast<char>(unused));
  content.append(reinterpret_cast<const char *>(bytes), len);
  return DerTlv(0x03, content);
}

const EVP_MD *Digest(const std::string &name) { return EVP_get_digestbyname(name.c_str()); }

}  // namespace

std::string ToPem(X509 *cert) {
  return ToMemory([cert](BIO *bio) { return PEM_write_bio_X509(bio, cert); });
}

std::string ToPem(X509_CRL *crl) {
  return ToMemory([crl](BIO *bio) { return PEM_write_bio_X509_CRL(bio, crl); });
}

std::string ToDer(X509 *cert) {
  return ToMemory([cert](BIO *bio) { return i2d_X509_bio(bio, cert); });
}

std::string ToDer(X509_CRL *crl) {
  return ToMemory([crl](BIO *bio) { return i2d_X509_CRL_bio(bio, crl); });
}

std::string ToDer(OCSP_RESPONSE *response) {
  return ToMemory([response](BIO *bio) { return i2d_OCSP_RESPONSE_bio(bio, response); });
}

std::string KeyToPem(EVP_PKEY *key) {
  return ToMemory([key](BIO *bio) {
    return PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

bool WriteFile(const std::string &path, const std::string &data) {
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return false;
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return false;
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  out.close();
  return static_cast<bool>(out);
}

std::string Issued::Pem() const { return cert ? ToPem(cert.get()) : std::string(); }
std::string Issued::KeyPem() const { return key ? KeyToPem(key.get()) : std::string(); }
std::string Issued::Der() const { return cert ? ToDer(cert.get()) : std::string(); }

PkiBuilder::PkiBuilder(int64_t now) : now_(now) {}

CertSpec PkiBuilder::CaSpec(std::string subject) {
  CertSpec spec;
  spec.subject = std::move(subject);
  spec.is_ca = true;
  spec.key_usage = KU_KEY_CERT_SIGN | KU_CRL_SIGN;
  return spec;
}

CertSpec PkiBuilder::LeafSpec(std::string subject) {
  CertSpec spec;
  spec.subject = std::move(subject);
  spec.eku = {"clientAuth"};
  spec.key_usage = KU_DIGITAL_SIGNATURE;
  return spec;
}

bool PkiBuilder::Fail(std::string message) {
  std::string ossl = OpensslErrors();
  last_error_ = ossl.empty() ? std::move(message) : message + ": " + ossl;
  return false;
}

std::shared_ptr<EVP_PKEY> PkiBuilder::AcquireKey(const KeySpec &spec, const EVP_PKEY *avoid) {
  if (spec.type == KeySpec::Type::kEc) {
    const char *curve = nullptr;
    switch (spec.bits) {
      case 224:
        curve = "P-224";
        break;
      case 256:
        curve = "P-256";
        break;
      case 384:
        curve = "P-384";
        break;
      case 521:
        curve = "P-521";
        break;
      default:
        return nullptr;
    }
    return Share(UniquePtr<EVP_PKEY>(EVP_EC_gen(curve)));
  }
  if (spec.type == KeySpec::Type::kEd25519) {
    return Share(UniquePtr<EVP_PKEY>(EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519")));
  }
  if (spec.type == KeySpec::Type::kDsa) return GenerateDsaKey(spec.bits);
  if (spec.bits < 512) return nullptr;
  std::vector<std::shared_ptr<EVP_PKEY>> &pool = rsa_pool_[spec.bits];
  size_t &next = rsa_next_[spec.bits];
  for (size_t tries = 0; tries < pool.size() && pool.size() >= kRsaPoolSize; ++tries) {
    std::shared_ptr<EVP_PKEY> key = pool[next];
    next = (next + 1) % pool.size();
    if (key.get() != avoid) return key;
  }
  std::shared_ptr<EVP_PKEY> key =
      Share(UniquePtr<EVP_PKEY>(EVP_RSA_gen(static_cast<unsigned int>(spec.bits))));
  if (key) pool.push_back(key);
  return key;
}

Issued PkiBuilder::SelfSigned(CertSpec spec) { return Build(nullptr, std::move(spec)); }

Issued PkiBuilder::Issue(const Issued &issuer, CertSpec spec) {
  if (!issuer) {
    Fail("Issue(" + spec.subject + "): the issuer has no cert or key");
    return Issued();
  }
  return Build(&issuer, std::move(spec));
}

Issued PkiBuilder::Build(const Issued *issuer, CertSpec spec) {
  const std::string what = "cert " + spec.subject + ": ";
  ERR_clear_error();
  std::shared_ptr<EVP_PKEY> key =
      AcquireKey(spec.key, issuer != nullptr ? issuer->key.get() : nullptr);
  if (!key) {
    Fail(what + "cannot generate key (type " + std::to_string(static_cast<int>(spec.key.type)) +
         ", " + std::to_string(spec.key.bits) + " bits)");
    return Issued();
  }
  EVP_PKEY *signing_key = issuer != nullptr ? issuer->key.get() : key.get();
  const EVP_MD *md = Digest(spec.digest);
  if (md == nullptr) {
    Fail(what + "unknown digest " + spec.digest);
    return Issued();
  }
  UniquePtr<X509_NAME> subject = MakeName(spec.subject);
  if (!subject) {
    Fail(what + "bad subject (want RFC 2253, e.g. CN=alice,OU=People,O=Example)");
    return Issued();
  }

  UniquePtr<X509> cert(X509_new());
  uint64_t serial = spec.serial != 0 ? spec.serial : next_serial_++;
  UniquePtr<ASN1_INTEGER> serial_int =
      spec.serial_hex.empty() ? MakeInteger(serial) : HexInteger(spec.serial_hex);
  UniquePtr<ASN1_TIME> not_before = MakeTime(spec.not_before != 0 ? spec.not_before : now_ - kDay);
  UniquePtr<ASN1_TIME> not_after =
      MakeTime(spec.not_after != 0 ? spec.not_after : now_ + 365 * kDay);
  X509_NAME *issuer_name =
      issuer != nullptr ? X509_get_subject_name(issuer->cert.get()) : subject.get();
  if (!cert || !serial_int || !not_before || !not_after ||
      X509_set_version(cert.get(), spec.version - 1) != 1 ||
      X509_set_serialNumber(cert.get(), serial_int.get()) != 1 ||
      X509_set_subject_name(cert.get(), subject.get()) != 1 ||
      X509_set_issuer_name(cert.get(), issuer_name) != 1 ||
      X509_set1_notBefore(cert.get(), not_before.get()) != 1 ||
      X509_set1_notAfter(cert.get(), not_after.get()) != 1 ||
      X509_set_pubkey(cert.get(), key.get()) != 1) {
    Fail(what + "cannot fill in the certificate");
    return Issued();
  }

  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509 *issuer_cert = issuer != nullptr ? issuer->cert.get() : cert.get();
  X509V3_set_ctx(&ctx, issuer_cert, cert.get(), nullptr, nullptr, 0);
  if (issuer == nullptr) X509V3_set_issuer_pkey(&ctx, key.get());

  const bool has_extensions = spec.version >= 3;  // v1 and v2 have none
  auto add_conf = [&](const char *name, const std::string &value) {
    if (!has_extensions) return true;
    UniquePtr<X509_EXTENSION> ext(X509V3_EXT_nconf(nullptr, &ctx, name, value.c_str()));
    if (!ext || X509_add_ext(cert.get(), ext.get(), -1) != 1) {
      return Fail(what + "cannot add extension " + name + "=" + value);
    }
    return true;
  };
  auto add_raw = [&](int nid, bool critical, const std::string &value) {
    if (!has_extensions) return true;
    UniquePtr<X509_EXTENSION> ext = RawExtension(nid, critical, value);
    if (!ext || X509_add_ext(cert.get(), ext.get(), -1) != 1) {
      return Fail(what + "cannot add raw extension " + OBJ_nid2sn(nid));
    }
    return true;
  };

  bool ok = true;
  if (spec.invalid_extension) {
    // extnValue must be a BasicConstraints SEQUENCE; an OCTET STRING is not one.
    ok = add_raw(NID_basic_constraints, true, std::string("\x04\x02\xde\xad", 4));
  } else if (!spec.omit_basic_constraints) {
    std::string bc = spec.is_ca ? "CA:TRUE" : "CA:FALSE";
    if (spec.basic_constraints_critical) bc = "critical," + bc;
    if (spec.is_ca && spec.path_len) bc += ",pathlen:" + std::to_string(*spec.path_len);
    ok = add_conf("basicConstraints", bc);
  }
  std::optional<uint32_t> ku = spec.key_usage;
  if (!ku && spec.is_ca) ku = KU_KEY_CERT_SIGN | KU_CRL_SIGN;
  if (ok && ku) ok = add_raw(NID_key_usage, true, KeyUsageValue(*ku));
  if (ok && !spec.eku.empty()) ok = add_conf("extendedKeyUsage", Join(spec.eku, ""));
  if (ok && spec.skid_akid) {
    ok = add_conf("subjectKeyIdentifier", "hash");
    bool issuer_has_skid =
        X509_get_ext_by_NID(issuer_cert, NID_subject_key_identifier, -1) >= 0 || issuer == nullptr;
    if (ok && issuer_has_skid) ok = add_conf("authorityKeyIdentifier", "keyid:always");
  }
  if (ok && !spec.san.empty()) ok = add_conf("subjectAltName", Join(spec.san, ""));
  if (ok && !spec.crl_urls.empty())
    ok = add_conf("crlDistributionPoints", Join(spec.crl_urls, "URI:"));
  if (ok && (!spec.ocsp_urls.empty() || !spec.ca_issuer_urls.empty())) {
    std::string aia = Join(spec.ocsp_urls, "OCSP;URI:");
    std::string ca_issuers = Join(spec.ca_issuer_urls, "caIssuers;URI:");
    if (!aia.empty() && !ca_issuers.empty()) aia += ',';
    ok = add_conf("authorityInfoAccess", aia + ca_issuers);
  }
  for (const auto &[name, value] : spec.extra_extensions) {
    if (ok) ok = add_conf(name.c_str(), value);
  }
  if (!ok) return Issued();

  if (X509_sign(cert.get(), signing_key, md) <= 0) {
    Fail(what + "cannot sign with " + spec.digest);
    return Issued();
  }

  if (spec.corrupt_signature) {
    // The signature BIT STRING ends the DER, so its last byte is the signature's last
    // byte (for ECDSA the low byte of s; the DER of Ecdsa-Sig-Value stays valid).
    std::string der = ToDer(cert.get());
    if (der.empty()) {
      Fail(what + "cannot encode");
      return Issued();
    }
    der.back() = static_cast<char>(der.back() ^ 0x01);
    const unsigned char *in = reinterpret_cast<const unsigned char *>(der.data());
    cert.reset(d2i_X509(nullptr, &in, static_cast<long>(der.size())));
    if (!cert) {
      Fail(what + "corrupted signature no longer parses");
      return Issued();
    }
  }

  Issued out;
  out.cert = Share(std::move(cert));
  out.key = std::move(key);
  return out;
}

std::shared_ptr<X509_CRL> PkiBuilder::Crl(const Issued &issuer, const std::vector<Revoked> &revoked,
                                          int64_t crl_number, int64_t this_update,
                                          int64_t next_update, const std::string &digest,
                                          const std::vector<std::string> &scope_urls,
                                          CrlNumberExtension crl_number_extension) {
  ERR_clear_error();
  if (!issuer) {
    Fail("CRL: the issuer has no cert or key");
    return nullptr;
  }
  const EVP_MD *md = Digest(digest);
  if (md == nullptr) {
    Fail("CRL: unknown digest " + digest);
    return nullptr;
  }
  UniquePtr<X509_CRL> crl(X509_CRL_new());
  UniquePtr<ASN1_TIME> last = MakeTime(this_update);
  UniquePtr<ASN1_TIME> next = next_update != 0 ? MakeTime(next_update) : nullptr;
  if (!crl || !last || (next_update != 0 && !next) || X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer.cert.get())) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1 ||
      (next && X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1)) {
    Fail("CRL: cannot fill in the CRL");
    return nullptr;
  }
  for (const Revoked &entry : revoked) {
    UniquePtr<X509_REVOKED> rev(X509_REVOKED_new());
    UniquePtr<ASN1_INTEGER> serial = MakeInteger(entry.serial);
    UniquePtr<ASN1_TIME> when = MakeTime(entry.when);
    if (!rev || !serial || !when || X509_REVOKED_set_serialNumber(rev.get(), serial.get()) != 1 ||
        X509_REVOKED_set_revocationDate(rev.get(), when.get()) != 1) {
      Fail("CRL: cannot make a revoked entry");
      return nullptr;
    }
    if (entry.reason >= 0) {
      // CRLReason ::= ENUMERATED
      std::string value = DerTlv(0x0a, std::string(1, static_cast<char>(entry.reason)));
      UniquePtr<X509_EXTENSION> ext = RawExtension(NID_crl_reason, false, value);
      if (!ext || X509_REVOKED_add_ext(rev.get(), ext.get(), -1) != 1) {
        Fail("CRL: cannot add CRLReason");
        return nullptr;
      }
    }
    if (X509_CRL_add0_revoked(crl.get(), rev.get()) != 1) {
      Fail("CRL: cannot add a revoked entry");
      return nullptr;
    }
    rev.release();  // owned by the CRL now
  }
  X509_CRL_sort(crl.get());

  if (crl_number_extension != CrlNumberExtension::kOmitted) {
    const int critical = crl_number_extension == CrlNumberExtension::kCritical ? 1 : 0;
    UniquePtr<ASN1_INTEGER> number = MakeInteger(static_cast<uint64_t>(crl_number));
    if (!number ||
        X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), critical, 0) != 1) {
      Fail("CRL: cannot add crlNumber");
      return nullptr;
    }
  }
  if (X509_get_ext_by_NID(issuer.cert.get(), NID_subject_key_identifier, -1) >= 0) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer.cert.get(), nullptr, nullptr, crl.get(), 0);
    UniquePtr<X509_EXTENSION> akid(
        X509V3_EXT_nconf(nullptr, &ctx, "authorityKeyIdentifier", "keyid:always"));
    if (!akid || X509_CRL_add_ext(crl.get(), akid.get(), -1) != 1) {
      Fail("CRL: cannot add authorityKeyIdentifier");
      return nullptr;
    }
  }
  if (!scope_urls.empty()) {
    UniquePtr<ISSUING_DIST_POINT> idp(ISSUING_DIST_POINT_new());
    idp->distpoint = DIST_POINT_NAME_new();
    idp->distpoint->type = 0;
    idp->distpoint->name.fullname = GENERAL_NAMES_new();
    for (const std::string &url : scope_urls) {
      GENERAL_NAME *name = GENERAL_NAME_new();
      ASN1_IA5STRING *uri = ASN1_IA5STRING_new();
      ASN1_STRING_set(uri, url.data(), static_cast<int>(url.size()));
      GENERAL_NAME_set0_value(name, GEN_URI, uri);
      sk_GENERAL_NAME_push(idp->distpoint->name.fullname, name);
    }
    if (X509_CRL_add1_ext_i2d(crl.get(), NID_issuing_distribution_point, idp.get(), 1, 0) != 1) {
      Fail("CRL: cannot add issuingDistributionPoint");
      return nullptr;
    }
  }
  if (X509_CRL_sign(crl.get(), issuer.key.get(), md) <= 0) {
    Fail("CRL: cannot sign with " + digest);
    return nullptr;
  }
  return Share(std::move(crl));
}

bool PkiBuilder::AddDeltaExtensions(X509_CRL *crl, const Issued &issuer, int64_t delta_base,
                                    const std::vector<std::string> &freshest_urls,
                                    bool indicator_critical, const std::string &digest) {
  ERR_clear_error();
  const EVP_MD *md = Digest(digest);
  if (crl == nullptr || !issuer || md == nullptr) return Fail("delta: no CRL, issuer or digest");
  if (delta_base >= 0) {
    UniquePtr<ASN1_INTEGER> base = MakeInteger(static_cast<uint64_t>(delta_base));
    if (!base ||
        X509_CRL_add1_ext_i2d(crl, NID_delta_crl, base.get(), indicator_critical ? 1 : 0, 0) != 1) {
      return Fail("delta: cannot add deltaCRLIndicator");
    }
  }
  if (!freshest_urls.empty()) {
    UniquePtr<CRL_DIST_POINTS> points(CRL_DIST_POINTS_new());
    DIST_POINT *point = DIST_POINT_new();
    point->distpoint = DIST_POINT_NAME_new();
    point->distpoint->type = 0;
    point->distpoint->name.fullname = GENERAL_NAMES_new();
    for (const std::string &url : freshest_urls) {
      GENERAL_NAME *name = GENERAL_NAME_new();
      ASN1_IA5STRING *uri = ASN1_IA5STRING_new();
      ASN1_STRING_set(uri, url.data(), static_cast<int>(url.size()));
      GENERAL_NAME_set0_value(name, GEN_URI, uri);
      sk_GENERAL_NAME_push(point->distpoint->name.fullname, name);
    }
    sk_DIST_POINT_push(points.get(), point);
    if (X509_CRL_add1_ext_i2d(crl, NID_freshest_crl, points.get(), 0, 0) != 1) {
      return Fail("delta: cannot add freshestCRL");
    }
  }
  if (X509_CRL_sign(crl, issuer.key.get(), md) <= 0) return Fail("delta: cannot sign");
  return true;
}

std::shared_ptr<OCSP_RESPONSE> PkiBuilder::Ocsp(const Issued &cert, const Issued &issuer,
                                                const Issued &signer, int status,
                                                int64_t this_update, int64_t next_update,
                                                int64_t revoked_at, int reason) {
  ERR_clear_error();
  if (!cert.cert || !issuer.cert || !signer) {
    Fail("OCSP: cert, issuer and signer (with key) are required");
    return nullptr;
  }
  UniquePtr<OCSP_CERTID> id(OCSP_cert_to_id(EVP_sha1(), cert.cert.get(), issuer.cert.get()));
  UniquePtr<OCSP_BASICRESP> basic(OCSP_BASICRESP_new());
  UniquePtr<ASN1_TIME> this_time = MakeTime(this_update);
  UniquePtr<ASN1_TIME> next_time = next_update != 0 ? MakeTime(next_update) : nullptr;
  UniquePtr<ASN1_TIME> revoked_time =
      status == V_OCSP_CERTSTATUS_REVOKED ? MakeTime(revoked_at) : nullptr;
  if (!id || !basic || !this_time || (next_update != 0 && !next_time) ||
      (status == V_OCSP_CERTSTATUS_REVOKED && !revoked_time)) {
    Fail("OCSP: out of memory");
    return nullptr;
  }
  if (OCSP_basic_add1_status(basic.get(), id.get(), status, reason, revoked_time.get(),
                             this_time.get(), next_time.get()) == nullptr) {
    Fail("OCSP: cannot add the single response");
    return nullptr;
  }
  bool delegated = X509_cmp(signer.cert.get(), issuer.cert.get()) != 0;
  unsigned long flags = delegated ? 0 : OCSP_NOCERTS;
  if (OCSP_basic_sign(basic.get(), signer.cert.get(), signer.key.get(), EVP_sha256(), nullptr,
                      flags) != 1) {
    Fail("OCSP: cannot sign");
    return nullptr;
  }
  UniquePtr<OCSP_RESPONSE> response(
      OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic.get()));
  if (!response) {
    Fail("OCSP: cannot create the response");
    return nullptr;
  }
  return Share(std::move(response));
}

}  // namespace certgate::pki
