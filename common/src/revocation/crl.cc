#include <certgate/cert_facts.h>
#include <certgate/ossl_ptr.h>
#include <certgate/revocation_crl.h>
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

namespace certgate {
namespace {

using ossl::UniquePtr;

// One DER TLV (low tag numbers, definite lengths).
struct Tlv {
  uint8_t tag = 0;
  std::string_view all;
  std::string_view content;
};

enum class TlvError { kNone, kTruncated, kBad };

TlvError Next(std::string_view &in, Tlv *out) {
  if (in.empty()) return TlvError::kTruncated;
  if (in.size() < 2) return TlvError::kTruncated;
  const uint8_t tag = static_cast<uint8_t>(in[0]);
  if ((tag & 0x1f) == 0x1f) return TlvError::kBad;
  const uint8_t first = static_cast<uint8_t>(in[1]);
  size_t header = 2, length = first;
  if (first & 0x80) {
    const size_t n = first & 0x7f;
    if (n == 0 || n > 4) return TlvError::kBad;  // indefinite or absurd
    if (in.size() < 2 + n) return TlvError::kTruncated;
    length = 0;
    for (size_t i = 0; i < n; ++i) length = (length << 8) | static_cast<uint8_t>(in[2 + i]);
    header = 2 + n;
  }
  if (in.size() - header < length) return TlvError::kTruncated;
  out->tag = tag;
  out->all = in.substr(0, header + length);
  out->content = in.substr(header, length);
  in.remove_prefix(header + length);
  return TlvError::kNone;
}

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// UTCTime "YYMMDDHHMMSSZ" / GeneralizedTime "YYYYMMDDHHMMSSZ" (DER forms).
bool ParseTime(const Tlv &tlv, int64_t *out) {
  std::string_view s = tlv.content;
  size_t year_digits = tlv.tag == 0x17 ? 2 : tlv.tag == 0x18 ? 4 : 0;
  if (year_digits == 0 || s.size() != year_digits + 11 || s.back() != 'Z') return false;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (!isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  auto num = [&](size_t pos, size_t len) {
    int v = 0;
    for (size_t i = 0; i < len; ++i) v = v * 10 + (s[pos + i] - '0');
    return v;
  };
  int year = num(0, year_digits);
  if (year_digits == 2) year += year >= 50 ? 1900 : 2000;
  size_t p = year_digits;
  int mon = num(p, 2), day = num(p + 2, 2), hour = num(p + 4, 2), min = num(p + 6, 2),
      sec = num(p + 8, 2);
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return false;
  *out = DaysFromCivil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
  return true;
}

// Magnitude bytes (no leading zeros) of a DER INTEGER's content.
std::string Magnitude(std::string_view content, bool *negative) {
  *negative = !content.empty() && (static_cast<uint8_t>(content[0]) & 0x80);
  std::string out(content);
  if (*negative) {  // two's complement -> magnitude
    bool carry = true;
    for (size_t i = out.size(); i-- > 0;) {
      uint8_t b = static_cast<uint8_t>(~static_cast<uint8_t>(out[i]));
      if (carry) {
        b = static_cast<uint8_t>(b + 1);
        carry = b == 0;
      }
      out[i] = static_cast<char>(b);
    }
  }
  size_t skip = 0;
  while (skip < out.size() && out[skip] == '\0') ++skip;
  return out.substr(skip);
}

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

const std::string_view kOidReason("\x55\x1d\x15", 3);
const std::string_view kOidCertIssuer("\x55\x1d\x1d", 3);

// Calls fn(magnitude, negative, revoked_at, reason) for each revokedCertificates
// entry; stops at the first malformed one or fn error.
template <typename Fn>
Status ForEachEntry(std::string_view entries, Fn fn) {
  uint64_t index = 0;
  while (!entries.empty()) {
    Tlv entry, serial, date;
    auto bad = [&](const std::string &what) {
      return Status::Error("revoked entry #" + std::to_string(index) + ": " + what);
    };
    if (Next(entries, &entry) != TlvError::kNone || entry.tag != 0x30) return bad("not DER");
    std::string_view body = entry.content;
    if (Next(body, &serial) != TlvError::kNone || serial.tag != 0x02 || serial.content.empty()) {
      return bad("bad serial number");
    }
    int64_t when = 0;
    if (Next(body, &date) != TlvError::kNone || !ParseTime(date, &when)) {
      return bad("bad revocation date");
    }
    int reason = -1;
    if (!body.empty()) {
      Tlv exts;
      if (Next(body, &exts) != TlvError::kNone || exts.tag != 0x30 || !body.empty()) {
        return bad("bad entry extensions");
      }
      std::string_view list = exts.content;
      while (!list.empty()) {
        Tlv ext, oid, field;
        if (Next(list, &ext) != TlvError::kNone || ext.tag != 0x30) return bad("bad extension");
        std::string_view e = ext.content;
        if (Next(e, &oid) != TlvError::kNone || oid.tag != 0x06) return bad("bad extension");
        bool critical = false;
        if (Next(e, &field) != TlvError::kNone) return bad("bad extension");
        if (field.tag == 0x01) {
          critical = field.content.size() == 1 && field.content[0] != 0;
          if (Next(e, &field) != TlvError::kNone) return bad("bad extension");
        }
        if (field.tag != 0x04 || !e.empty()) return bad("bad extension");
        if (oid.content == kOidReason) {
          std::string_view v = field.content;
          Tlv code;
          if (Next(v, &code) != TlvError::kNone || code.tag != 0x0a || code.content.size() != 1) {
            return bad("bad CRLReason");
          }
          reason = static_cast<uint8_t>(code.content[0]);
        } else if (oid.content == kOidCertIssuer) {
          return bad("certificateIssuer (indirect CRL) is not supported");
        } else if (critical) {
          return bad("unknown critical extension");
        }
      }
    }
    bool negative = false;
    std::string magnitude = Magnitude(serial.content, &negative);
    ++index;
    if (reason == 8) continue;  // removeFromCRL: only meaningful in delta CRLs
    Status status = fn(magnitude, negative, when, reason);
    if (!status.ok()) return status;
  }
  return Status::Ok();
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
      return Status::Error("a delta CRL (deltaCRLIndicator) is not supported");
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
  struct FreeAlg {
    void operator()(X509_ALGOR *x) const { X509_ALGOR_free(x); }
  };
  std::unique_ptr<X509_ALGOR, FreeAlg> alg(
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

namespace {

// Serials written per write transaction. LMDB keeps the pages a transaction
// dirtied on its free list until the environment closes, so one transaction
// for a million entries left ~47 MB in every process that ingested; it also
// held the single writer lock (every other process's writes) for a second.
constexpr size_t kEntriesPerTxn = 50000;

// <0 older than the cached CRL, 0 the same, >0 newer: by crlNumber when both
// have one, else by thisUpdate.
int CompareToCached(const ParsedCrl &crl, const CrlMeta &cached) {
  if (!crl.crl_number.empty() && !cached.crl_number.empty())
    return CompareMagnitudes(crl.crl_number, cached.crl_number);
  return crl.this_update < cached.this_update ? -1 : crl.this_update > cached.this_update ? 1 : 0;
}

Status RolledBack(const ParsedCrl &crl, const CrlMeta &cached) {
  std::string what = (!crl.crl_number.empty() && !cached.crl_number.empty())
                         ? "crlNumber " + crl.crl_number_dec + " < cached " + cached.crl_number_dec
                         : "thisUpdate " + FormatTime(crl.this_update) + " < cached " +
                               FormatTime(cached.this_update);
  return Status::Error("rolled back: " + what + " (kept the cached CRL from " + cached.source +
                       ")");
}

bool IsUnchanged(const ParsedCrl &crl, const CrlMeta &cached) {
  return CompareToCached(crl, cached) == 0 && crl.this_update <= cached.this_update;
}

// Deletes generation `gen` a transaction at a time, from the store of `epoch`
// only: a replacement store's generation of that number is someone else's.
Status DropGeneration(RevocationStore &store, uint64_t gen, uint64_t epoch) {
  for (bool done = false; !done;) {
    Result<RevocationStore::WriteTxn> txn = store.Write();
    if (!txn.ok()) return txn.status();
    if (txn->epoch() != epoch) return Status::Ok();
    Status deleted = txn->DeleteGeneration(gen, kEntriesPerTxn, &done);
    if (deleted.ok() && done) deleted = txn->ClearStaging(gen);
    if (!deleted.ok()) return deleted;
    Status commit = txn->Commit();
    if (!commit.ok()) return commit;
  }
  return Status::Ok();
}

void DropAbandonedGenerations(RevocationStore &store) {
  std::vector<uint64_t> abandoned;
  uint64_t epoch = 0;
  {
    Result<RevocationStore::WriteTxn> txn = store.Write();
    if (!txn.ok()) return;
    abandoned = txn->AbandonedGenerations();
    epoch = txn->epoch();
  }
  for (uint64_t gen : abandoned) (void)DropGeneration(store, gen, epoch);
}

// Writes the CRL's entries under a new generation, in transactions of
// kEntriesPerTxn; readers see none of them until the generation is referenced.
// A damaged store replaced by a new one (Repair) in the middle of an ingest:
// what was staged is in the old one, so the ingest must not go on in the new.
Status SameStore(uint64_t epoch, uint64_t now) {
  if (epoch == now) return Status::Ok();
  return Status::Error("the revocation cache was replaced during the ingest (it was damaged)");
}

Status StageEntries(RevocationStore &store, const ParsedCrl &crl, uint64_t gen, uint64_t epoch,
                    uint64_t *count) {
  Result<RevocationStore::WriteTxn> first = store.Write();
  if (!first.ok()) return first.status();
  if (Status same = SameStore(epoch, first->epoch()); !same.ok()) return same;
  std::optional<RevocationStore::WriteTxn> txn(std::move(first).value());
  size_t in_txn = 0;
  Status entries = ForEachEntry(
      crl.entries, [&](const std::string &mag, bool negative, int64_t when, int reason) {
        if (in_txn == kEntriesPerTxn) {
          Status commit = txn->Commit();
          if (!commit.ok()) return commit;
          txn.reset();
          Result<RevocationStore::WriteTxn> next = store.Write();
          if (!next.ok()) return next.status();
          if (Status same = SameStore(epoch, next->epoch()); !same.ok()) return same;
          txn.emplace(std::move(next).value());
          in_txn = 0;
        }
        ++in_txn;
        ++*count;
        return txn->PutRevoked(gen, mag, negative, RevokedEntry{when, reason});
      });
  if (!entries.ok()) return entries;
  return txn->Commit();
}

// Cheap, so checked before the signature is.
Status CheckCrlTimes(const ParsedCrl &crl, int64_t now, int64_t skew) {
  if (crl.this_update > now + skew) {
    return Status::Error("the CRL's thisUpdate " + FormatTime(crl.this_update) +
                         " is in the future");
  }
  if (crl.next_update != 0 && crl.next_update < crl.this_update) {
    return Status::Error("the CRL's nextUpdate is before its thisUpdate");
  }
  return Status::Ok();
}

}  // namespace

Result<IngestResult> IngestCrl(RevocationStore &store, const ParsedCrl &crl, X509 *issuer,
                               const std::string &source, int64_t now, int64_t skew) {
  Status checked = CheckCrlTimes(crl, now, skew);
  if (checked.ok()) checked = VerifyCrl(crl, issuer);
  if (!checked.ok()) return checked;
  return IngestVerifiedCrl(store, crl, issuer, source, now, skew);
}

Result<IngestResult> IngestVerifiedCrl(RevocationStore &store, const ParsedCrl &crl, X509 *issuer,
                                       const std::string &source, int64_t now, int64_t skew) {
  const Status times = CheckCrlTimes(crl, now, skew);
  if (!times.ok()) return times;
  const std::string id = IssuerId(issuer);
  if (id.empty()) return Status::Error("cannot hash the issuer");
  DropAbandonedGenerations(store);

  // 1. Against the cached CRL: refuse a rollback, confirm an unchanged one, or
  //    reserve a generation for the new entries.
  CrlMeta meta;
  uint64_t epoch = 0;
  {
    Result<RevocationStore::WriteTxn> txn = store.Write();
    if (!txn.ok()) return txn.status();
    std::optional<CrlMeta> old = txn->GetCrl(id);
    // The store holds one CRL per issuer, so numbers are compared per issuer,
    // across scopes: an older CRL of another partition must not replace a
    // newer one (its certificates would lose the newer revocations). One of
    // the same number but another scope does take the issuer's place.
    if (old) {
      if (CompareToCached(crl, *old) < 0) return RolledBack(crl, *old);
      if (old->scope == crl.scope_urls && IsUnchanged(crl, *old)) {
        old->checked_at = now;
        // A record from before certgate_strict learns its crlNumber's criticality.
        if ((old->flags & kCrlDefectsRecorded) == 0)
          old->flags |= crl.flags & (kCrlNumberCritical | kCrlDefectsRecorded);
        Status put = txn->PutCrl(id, *old);
        if (put.ok()) put = txn->Commit();
        if (!put.ok()) return put;
        IngestResult result;
        result.outcome = IngestResult::Outcome::kUnchanged;
        result.meta = *old;
        return result;
      }
    }
    Result<uint64_t> gen = txn->NewGeneration();
    if (!gen.ok()) return gen.status();
    meta.gen = gen.value();
    epoch = txn->epoch();
    Status marked = txn->MarkStaging(meta.gen, getpid());
    if (marked.ok()) marked = txn->Commit();
    if (!marked.ok()) return marked;
  }
  meta.this_update = crl.this_update;
  meta.next_update = crl.next_update;
  meta.crl_number = crl.crl_number;
  meta.crl_number_dec = crl.crl_number_dec;
  meta.source = source;
  meta.ingested_at = now;
  meta.checked_at = now;
  meta.flags = crl.flags;
  meta.issuer = crl.issuer;
  meta.scope = crl.scope_urls;

  // 2. The entries, out of readers' sight.
  Status staged = StageEntries(store, crl, meta.gen, epoch, &meta.count);
  if (!staged.ok()) {
    (void)DropGeneration(store, meta.gen, epoch);
    return staged;
  }

  // What was stored, as a count and digest the readers check it against.
  {
    Result<RevocationStore::ReadTxn> read = store.Read();
    Status digested = !read.ok() ? read.status() : SameStore(epoch, read->epoch());
    if (digested.ok()) digested = read->DigestSerials(meta.gen, &meta.stored, &meta.serial_digest);
    if (!digested.ok()) {
      (void)DropGeneration(store, meta.gen, epoch);
      return digested;
    }
  }

  // 3. The switch, in one transaction: readers see the old CRL or the new one.
  //    Another process may have stored a CRL meanwhile: compare again.
  std::optional<CrlMeta> replaced;
  Status switched = Status::Ok();
  IngestResult result;
  {
    Result<RevocationStore::WriteTxn> txn = store.Write();
    if (!txn.ok()) {
      switched = txn.status();
    } else if (Status same = SameStore(epoch, txn->epoch()); !same.ok()) {
      switched = same;
    } else {
      replaced = txn->GetCrl(id);
      const bool same_scope = replaced && replaced->scope == crl.scope_urls;
      if (replaced && CompareToCached(crl, *replaced) < 0) {
        switched = RolledBack(crl, *replaced);
      } else if (same_scope && IsUnchanged(crl, *replaced)) {
        result.outcome = IngestResult::Outcome::kUnchanged;
        result.meta = *replaced;
        replaced.reset();
      } else {
        switched = txn->PutCrl(id, meta);
        if (switched.ok()) switched = txn->ClearStaging(meta.gen);
        if (switched.ok()) switched = txn->Commit();
        if (switched.ok()) result.meta = meta;
      }
    }
  }
  if (!switched.ok() || result.outcome == IngestResult::Outcome::kUnchanged) {
    (void)DropGeneration(store, meta.gen, epoch);
    if (!switched.ok()) return switched;
    return result;
  }
  // 4. The replaced CRL's entries (left to the next ingest's sweep if this fails).
  if (replaced) (void)DropGeneration(store, replaced->gen, epoch);
  return result;
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
