#include "revocation/crl.h"

#include <certgate/ossl_ptr.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/sha.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstring>
#include <ctime>
#include <optional>

#include "cert_fields.h"
#include "crl_der.h"

namespace certgate {

using namespace crl_der;

namespace {

using ossl::UniquePtr;

std::string Printable(std::string_view data) {
  std::string out;
  for (char c : data.substr(0, 40)) {
    out.push_back(isprint(static_cast<unsigned char>(c)) ? c : '.');
  }
  return out;
}

bool LooksLikeText(std::string_view data) {
  size_t n = std::min<size_t>(data.size(), 64);
  if (n == 0) return false;
  for (size_t i = 0; i < n; ++i) {
    unsigned char c = static_cast<unsigned char>(data[i]);
    if (!isprint(c) && !isspace(c)) return false;
  }
  return true;
}

// The URIs naming an issuingDistributionPoint, sorted and unique.
Status ReadScope(const DIST_POINT_NAME *name, std::vector<std::string> *urls) {
  if (name->type != 0) {
    return Status::Error(
        "a CRL whose issuingDistributionPoint is a name relative to the issuer is not supported");
  }
  for (int i = 0; i < sk_GENERAL_NAME_num(name->name.fullname); ++i) {
    const GENERAL_NAME *general = sk_GENERAL_NAME_value(name->name.fullname, i);
    if (general->type != GEN_URI) continue;
    const ASN1_IA5STRING *uri = general->d.uniformResourceIdentifier;
    urls->emplace_back(reinterpret_cast<const char *>(ASN1_STRING_get0_data(uri)),
                       static_cast<size_t>(ASN1_STRING_length(uri)));
  }
  if (urls->empty()) {
    return Status::Error("a CRL whose issuingDistributionPoint names no URI is not supported");
  }
  std::sort(urls->begin(), urls->end());
  urls->erase(std::unique(urls->begin(), urls->end()), urls->end());
  return Status::Ok();
}

Status ParseExtensions(std::string_view der, ParsedCrl *crl) {
  const unsigned char *p = reinterpret_cast<const unsigned char *>(der.data());
  STACK_OF(X509_EXTENSION) *raw = d2i_X509_EXTENSIONS(nullptr, &p, static_cast<long>(der.size()));
  if (raw == nullptr) return Status::Error("bad CRL extensions");
  struct Free {
    void operator()(STACK_OF(X509_EXTENSION) * s) const {
      sk_X509_EXTENSION_pop_free(s, X509_EXTENSION_free);
    }
  };
  std::unique_ptr<STACK_OF(X509_EXTENSION), Free> exts(raw);
  for (int i = 0; i < sk_X509_EXTENSION_num(raw); ++i) {
    X509_EXTENSION *ext = sk_X509_EXTENSION_value(raw, i);
    const int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
    if (nid == NID_crl_number) {
      UniquePtr<ASN1_INTEGER> number(static_cast<ASN1_INTEGER *>(X509V3_EXT_d2i(ext)));
      if (!number) return Status::Error("bad crlNumber");
      // ASN1_INTEGER holds the magnitude already; strip leading zeros only.
      std::string mag(reinterpret_cast<const char *>(ASN1_STRING_get0_data(number.get())),
                      static_cast<size_t>(ASN1_STRING_length(number.get())));
      size_t skip = 0;
      while (skip < mag.size() && mag[skip] == '\0') ++skip;
      crl->crl_number = mag.substr(skip);
      UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(number.get(), nullptr));
      char *dec = bn ? BN_bn2dec(bn.get()) : nullptr;
      crl->crl_number_dec = dec != nullptr ? dec : "?";
      OPENSSL_free(dec);
      if (X509_EXTENSION_get_critical(ext)) crl->flags |= kCrlNumberCritical;
    } else if (nid == NID_delta_crl) {
      // RFC 5280 §5.2.4: always critical, so that a client unaware of deltas
      // never takes one for a complete CRL.
      if (!X509_EXTENSION_get_critical(ext))
        return Status::Error("a delta CRL whose deltaCRLIndicator is not critical");
      UniquePtr<ASN1_INTEGER> base(static_cast<ASN1_INTEGER *>(X509V3_EXT_d2i(ext)));
      if (!base || ASN1_STRING_type(base.get()) == V_ASN1_NEG_INTEGER)
        return Status::Error("bad deltaCRLIndicator");
      std::string mag(reinterpret_cast<const char *>(ASN1_STRING_get0_data(base.get())),
                      static_cast<size_t>(ASN1_STRING_length(base.get())));
      size_t skip = 0;
      while (skip < mag.size() && mag[skip] == '\0') ++skip;
      crl->is_delta = true;
      crl->delta_base = mag.substr(skip);
      UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(base.get(), nullptr));
      char *dec = bn ? BN_bn2dec(bn.get()) : nullptr;
      crl->delta_base_dec = dec != nullptr ? dec : "?";
      OPENSSL_free(dec);
    } else if (nid == NID_freshest_crl) {
      UniquePtr<CRL_DIST_POINTS> points(static_cast<CRL_DIST_POINTS *>(X509V3_EXT_d2i(ext)));
      if (!points) return Status::Error("bad freshestCRL");
      crl->freshest_urls = DistributionPointUrls(points.get());
    } else if (nid == NID_issuing_distribution_point) {
      UniquePtr<ISSUING_DIST_POINT> idp(static_cast<ISSUING_DIST_POINT *>(X509V3_EXT_d2i(ext)));
      if (!idp) return Status::Error("bad issuingDistributionPoint");
      if (idp->indirectCRL) return Status::Error("an indirect CRL is not supported");
      if (idp->onlysomereasons != nullptr) {
        return Status::Error("a CRL partitioned by reason (onlySomeReasons) is not supported");
      }
      if (idp->onlyattr)
        return Status::Error("an attribute-certificate CRL is not for certificates");
      if (idp->onlyuser) crl->flags |= kCrlOnlyUserCerts;
      if (idp->onlyCA) crl->flags |= kCrlOnlyCaCerts;
      if (idp->distpoint != nullptr) {
        Status scoped = ReadScope(idp->distpoint, &crl->scope_urls);
        if (!scoped.ok()) return scoped;
      }
    } else if (X509_EXTENSION_get_critical(ext) && nid != NID_authority_key_identifier) {
      char oid[80];
      OBJ_obj2txt(oid, sizeof(oid), X509_EXTENSION_get_object(ext), 1);
      return Status::Error(std::string("unknown critical CRL extension ") + oid);
    }
  }
  return Status::Ok();
}

bool IsPem(const std::string &data) {
  size_t start = 0;
  while (start < data.size() && isspace(static_cast<unsigned char>(data[start]))) ++start;
  return data.compare(start, 10, "-----BEGIN") == 0;
}

// The DER of every PEM block in `data`, each of which must be an "X509 CRL".
Result<std::vector<std::string>> CrlsFromPem(const std::string &data) {
  UniquePtr<BIO> bio(BIO_new_mem_buf(data.data(), static_cast<int>(data.size())));
  if (!bio) return Status::Error("out of memory");
  std::vector<std::string> ders;
  for (;;) {
    char *name = nullptr, *header = nullptr;
    unsigned char *der = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &der, &len) != 1) {
      const bool at_end = ERR_GET_REASON(ERR_peek_last_error()) == PEM_R_NO_START_LINE;
      ERR_clear_error();
      if (at_end && !ders.empty()) return ders;
      if (ders.empty()) return Status::Error("not a PEM CRL (bad base64 or no END line)");
      return Status::Error("PEM block " + std::to_string(ders.size() + 1) +
                           " is not valid PEM (bad base64 or no END line)");
    }
    const std::string label = name;
    ders.emplace_back(reinterpret_cast<char *>(der), static_cast<size_t>(len));
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(der);
    if (label != "X509 CRL") {
      return Status::Error("PEM block " + std::to_string(ders.size()) + " is \"" + label +
                           "\", not \"X509 CRL\"");
    }
  }
}

}  // namespace

std::string CrlKey(std::string_view issuer_id, const std::vector<std::string> &scope,
                   uint32_t flags) {
  constexpr uint32_t kKinds = kCrlOnlyUserCerts | kCrlOnlyCaCerts;
  if (scope.empty() && (flags & kKinds) == 0) return std::string(issuer_id);
  // Length-prefixed, so that no two scopes hash the same input.
  std::string input(1, static_cast<char>('0' + (flags & kKinds)));
  for (const std::string &url : scope) input += std::to_string(url.size()) + ":" + url;
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char *>(input.data()), input.size(), md);
  return std::string(issuer_id) + "#" + std::string(reinterpret_cast<char *>(md), 20);
}

std::string DeltaKey(std::string_view base_key) {
  return std::string(base_key) + "+";  // the AD CS spelling of a delta
}

std::string RecordKey(std::string_view issuer_id, const ParsedCrl &crl) {
  const std::string base = CrlKey(issuer_id, crl.scope_urls, crl.flags);
  return crl.is_delta ? DeltaKey(base) : base;
}

const std::pair<std::string, CrlMeta> *CoveringCrl(
    const std::vector<std::pair<std::string, CrlMeta>> &records,
    const std::vector<std::string> &cert_crl_urls, bool is_ca) {
  const std::pair<std::string, CrlMeta> *best = nullptr;
  int best_rank = -1;
  for (const auto &record : records) {
    const CrlMeta &m = record.second;
    // (A delta says so in its record: a bare issuer id may end in '+' too.)
    if (!m.delta_base_dec.empty()) continue;
    if (((m.flags & kCrlOnlyUserCerts) && is_ca) || ((m.flags & kCrlOnlyCaCerts) && !is_ca))
      continue;
    if (!CrlScopeCovers(m.scope, cert_crl_urls)) continue;
    // The certificate's own partition, then a CRL for its kind, then a full CRL.
    const int rank = !m.scope.empty()                                    ? 2
                     : (m.flags & (kCrlOnlyUserCerts | kCrlOnlyCaCerts)) ? 1
                                                                         : 0;
    if (rank > best_rank || (rank == best_rank && m.this_update > best->second.this_update)) {
      best = &record;
      best_rank = rank;
    }
  }
  return best;
}

namespace {
std::string PendingSuffix(std::string_view issuer_id, const std::vector<std::string> &urls) {
  std::string out = LowerHex(issuer_id);
  for (const std::string &url : urls) out += " " + url;
  return out;
}
}  // namespace

std::string CrlPendingKey(std::string_view issuer_id,
                          const std::vector<std::string> &cert_crl_urls) {
  return "crl:" + PendingSuffix(issuer_id, cert_crl_urls);
}

std::string DeltaPendingKey(std::string_view issuer_id,
                            const std::vector<std::string> &cert_crl_urls) {
  return "delta:" + PendingSuffix(issuer_id, cert_crl_urls);
}

bool DeltaApplies(const CrlMeta &base, const CrlMeta &delta) {
  return !base.crl_number_dec.empty() &&
         CompareMagnitudes(delta.delta_base, base.crl_number) <= 0 &&
         CompareMagnitudes(base.crl_number, delta.crl_number) < 0;
}

int CompareMagnitudes(const std::string &a, const std::string &b) {
  if (a.size() != b.size()) return a.size() < b.size() ? -1 : 1;
  const int c = a.compare(b);
  return c < 0 ? -1 : c > 0 ? 1 : 0;
}

bool CrlScopeCovers(const std::vector<std::string> &crl_scope,
                    const std::vector<std::string> &cert_crl_urls) {
  if (crl_scope.empty()) return true;
  return std::any_of(cert_crl_urls.begin(), cert_crl_urls.end(), [&](const std::string &url) {
    return std::binary_search(crl_scope.begin(), crl_scope.end(), url);
  });
}

std::vector<std::string_view> CrlStrictDefects(const CrlMeta &meta) {
  std::vector<std::string_view> defects;
  if (meta.crl_number_dec.empty()) defects.push_back("crl_without_crl_number");
  if (meta.flags & kCrlNumberCritical) defects.push_back("crl_number_critical");
  return defects;
}

std::string DescribeCrlStrictDefects(const CrlMeta &meta) {
  const bool from_file = meta.source.rfind("file:", 0) == 0;
  const std::string crl = "the CRL from " + (from_file ? meta.source.substr(5) : meta.source);
  std::string out;
  for (std::string_view name : CrlStrictDefects(meta)) {
    out += out.empty() ? crl : "; it";
    out += name == "crl_without_crl_number"
               ? " has no crlNumber (RFC 5280 section 5.2.3)"
               : " marks its crlNumber critical; RFC 5280 section 5.2.3 requires it non-critical";
  }
  return out;
}

std::string SerialMagnitude(X509 *cert, bool *negative) {
  const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
  *negative = ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER;
  std::string mag(reinterpret_cast<const char *>(ASN1_STRING_get0_data(serial)),
                  static_cast<size_t>(ASN1_STRING_length(serial)));
  size_t skip = 0;
  while (skip < mag.size() && mag[skip] == '\0') ++skip;
  return mag.substr(skip);
}

std::string CrlReasonName(int code) {
  switch (code) {
    case -1:
      return "";
    case 0:
      return "unspecified";
    case 1:
      return "keyCompromise";
    case 2:
      return "cACompromise";
    case 3:
      return "affiliationChanged";
    case 4:
      return "superseded";
    case 5:
      return "cessationOfOperation";
    case 6:
      return "certificateHold";
    case 8:
      return "removeFromCRL";
    case 9:
      return "privilegeWithdrawn";
    case 10:
      return "aACompromise";
    default:
      return "reason" + std::to_string(code);
  }
}

Result<ParsedCrl> ParseCrl(std::string data) {
  ParsedCrl crl;
  if (IsPem(data)) {
    Result<std::vector<std::string>> ders = CrlsFromPem(data);
    if (!ders.ok()) return ders.status();
    if (ders->size() != 1) {
      return Status::Error("a PEM file of " + std::to_string(ders->size()) +
                           " CRLs where one was expected");
    }
    crl.der = std::move(ders->front());
  } else {
    crl.der = std::move(data);
  }
  std::string_view in = crl.der;
  if (in.empty()) return Status::Error("empty body, not a CRL");
  if (static_cast<uint8_t>(in[0]) != 0x30) {
    if (LooksLikeText(in)) {
      return Status::Error("not a CRL: the body is text (\"" + Printable(in) +
                           "...\"), e.g. an HTML page");
    }
    return Status::Error("not a DER CRL (starts with byte 0x" + LowerHex(in.substr(0, 1)) + ")");
  }
  Tlv outer;
  TlvError e = Next(in, &outer);
  if (e == TlvError::kTruncated) {
    return Status::Error("truncated CRL (" + std::to_string(crl.der.size()) +
                         " bytes, DER says more)");
  }
  if (e != TlvError::kNone) return Status::Error("not a DER CRL");
  if (!in.empty()) return Status::Error("trailing bytes after the CRL");
  std::string_view body = outer.content;
  Tlv tbs, alg, sig;
  if (Next(body, &tbs) != TlvError::kNone || tbs.tag != 0x30 ||
      Next(body, &alg) != TlvError::kNone || alg.tag != 0x30 ||
      Next(body, &sig) != TlvError::kNone || sig.tag != 0x03 || !body.empty() ||
      sig.content.empty() || sig.content[0] != 0) {
    return Status::Error("not a CRL (bad CertificateList structure)");
  }
  crl.tbs = tbs.all;
  crl.sig_alg = alg.all;
  crl.signature = sig.content.substr(1);

  std::string_view t = tbs.content;
  Tlv field;
  auto next = [&](Tlv *out) { return Next(t, out) == TlvError::kNone; };
  if (!next(&field)) return Status::Error("not a CRL (empty tbsCertList)");
  if (field.tag == 0x02) {  // version: v2 (1); v1 CRLs omit it
    if (field.content.size() != 1 || field.content[0] != 1)
      return Status::Error("unsupported CRL version");
    if (!next(&field)) return Status::Error("not a CRL (truncated tbsCertList)");
  }
  if (field.tag != 0x30) return Status::Error("not a CRL (no signature algorithm)");
  crl.inner_sig_alg = field.all;
  Tlv issuer;
  if (!next(&issuer) || issuer.tag != 0x30) return Status::Error("not a CRL (no issuer)");
  crl.issuer_der = issuer.all;
  {
    const unsigned char *p = reinterpret_cast<const unsigned char *>(issuer.all.data());
    UniquePtr<X509_NAME> name(d2i_X509_NAME(nullptr, &p, static_cast<long>(issuer.all.size())));
    if (!name) return Status::Error("not a CRL (bad issuer name)");
    crl.issuer = NameToString(name.get());
  }
  Tlv this_update;
  if (!next(&this_update) || !ParseTime(this_update, &crl.this_update)) {
    return Status::Error("not a CRL (bad thisUpdate)");
  }
  bool more = next(&field);
  if (more && (field.tag == 0x17 || field.tag == 0x18)) {
    if (!ParseTime(field, &crl.next_update)) return Status::Error("bad nextUpdate");
    more = next(&field);
  }
  if (more && field.tag == 0x30) {
    crl.entries = field.content;
    more = next(&field);
  }
  if (more && field.tag == 0xa0) {
    Status status = ParseExtensions(field.content, &crl);
    if (!status.ok()) return status;
    more = next(&field);
  }
  if (more || !t.empty()) return Status::Error("not a CRL (unexpected field in tbsCertList)");
  if (crl.is_delta && crl.crl_number.empty()) {
    return Status::Error("a delta CRL without a crlNumber (RFC 5280 section 5.2.4)");
  }
  if (crl.is_delta) crl.freshest_urls.clear();  // a delta names no delta of its own
  crl.flags |= kCrlDefectsRecorded;
  return crl;
}

Status VerifyCrl(const ParsedCrl &crl, X509 *issuer) {
  const unsigned char *p = reinterpret_cast<const unsigned char *>(crl.issuer_der.data());
  UniquePtr<X509_NAME> name(d2i_X509_NAME(nullptr, &p, static_cast<long>(crl.issuer_der.size())));
  if (!name || X509_NAME_cmp(name.get(), X509_get_subject_name(issuer)) != 0) {
    return Status::Error("the CRL is issued by " + crl.issuer + ", not by " +
                         NameToString(X509_get_subject_name(issuer)));
  }
  if ((X509_get_extension_flags(issuer) & EXFLAG_KUSAGE) &&
      !(X509_get_key_usage(issuer) & KU_CRL_SIGN)) {
    return Status::Error("the issuer " + crl.issuer + " may not sign CRLs (no cRLSign key usage)");
  }
  if (crl.sig_alg != crl.inner_sig_alg) {
    return Status::Error("the CRL's two signature algorithms differ");
  }
  EVP_PKEY *key = X509_get0_pubkey(issuer);
  if (key == nullptr) return Status::Error("the issuer's public key cannot be decoded");
  const unsigned char *a = reinterpret_cast<const unsigned char *>(crl.sig_alg.data());
  ossl::UniquePtr<X509_ALGOR> alg(
      d2i_X509_ALGOR(nullptr, &a, static_cast<long>(crl.sig_alg.size())));
  if (!alg) return Status::Error("bad CRL signature algorithm");
  const int sig_nid = OBJ_obj2nid(alg->algorithm);
  int md_nid = NID_undef, pk_nid = NID_undef;
  if (!OBJ_find_sigid_algs(sig_nid, &md_nid, &pk_nid)) {
    return Status::Error("unknown CRL signature algorithm");
  }
  bool verified = false;
  const bool eddsa = pk_nid == NID_ED25519 || pk_nid == NID_ED448;
  if (sig_nid == NID_rsassaPss || (md_nid == NID_undef && !eddsa)) {
    // Parameterized algorithms: let OpenSSL decode the whole CRL (rare).
    const unsigned char *d = reinterpret_cast<const unsigned char *>(crl.der.data());
    UniquePtr<X509_CRL> full(d2i_X509_CRL(nullptr, &d, static_cast<long>(crl.der.size())));
    verified = full && X509_CRL_verify(full.get(), key) == 1;
  } else if (EVP_PKEY_get_base_id(key) == pk_nid) {
    const EVP_MD *md = eddsa ? nullptr : EVP_get_digestbynid(md_nid);
    UniquePtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
    verified = ctx && (eddsa || md != nullptr) &&
               EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) == 1 &&
               EVP_DigestVerify(
                   ctx.get(), reinterpret_cast<const unsigned char *>(crl.signature.data()),
                   crl.signature.size(), reinterpret_cast<const unsigned char *>(crl.tbs.data()),
                   crl.tbs.size()) == 1;
  }
  ERR_clear_error();
  if (!verified) {
    return Status::Error("the CRL's signature does not verify with the key of " +
                         NameToString(X509_get_subject_name(issuer)));
  }
  return Status::Ok();
}

Result<std::vector<ParsedCrl>> ParseCrlFile(std::string data) {
  std::vector<ParsedCrl> crls;
  if (!IsPem(data)) {
    Result<ParsedCrl> crl = ParseCrl(std::move(data));
    if (!crl.ok()) return crl.status();
    crls.push_back(std::move(crl).value());
    return crls;
  }
  Result<std::vector<std::string>> ders = CrlsFromPem(data);
  if (!ders.ok()) return ders.status();
  data.clear();
  data.shrink_to_fit();  // a bundle of big CRLs: hold the DER once, not also the base64
  for (size_t i = 0; i < ders->size(); ++i) {
    Result<ParsedCrl> crl = ParseCrl(std::move(ders.value()[i]));
    if (!crl.ok()) {
      if (ders->size() == 1) return crl.status();
      return Status::Error("CRL " + std::to_string(i + 1) + " of " + std::to_string(ders->size()) +
                           ": " + crl.status().message());
    }
    crls.push_back(std::move(crl).value());
  }
  return crls;
}

}  // namespace certgate
