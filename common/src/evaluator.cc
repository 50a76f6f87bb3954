#include <certgate/cert_facts.h>
#include <certgate/evaluator.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstring>

namespace certgate {
namespace {

std::string Quoted(const std::string &text) { return "\"" + text + "\""; }

std::string SubjectOf(X509 *cert) { return Quoted(NameToString(X509_get_subject_name(cert))); }

std::string Describe(int depth) {
  return depth == 0 ? std::string("the client certificate")
                    : "the CA certificate at depth " + std::to_string(depth);
}

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

class ChainJudge {
 public:
  ChainJudge(const Policy &policy, const ChainEvidence &evidence, int64_t now)
      : policy_(policy), evidence_(evidence), now_(now) {}

  std::vector<Finding> Run() {
    Encoding();
    VerifyErrors();
    Depth();
    Validity();
    TrustedIssuers();
    ExtendedKeyUsage();
    KeyUsage();
    KeySizes();
    Signatures();
    Pins();
    Subject();
    SubjectAltName();
    return std::move(findings_);
  }

 private:
  X509 *At(size_t depth) const { return evidence_.chain[depth].get(); }
  X509 *leaf() const { return At(0); }
  size_t size() const { return evidence_.chain.size(); }
  // Certificates the client is answerable for: all but a trust anchor.
  size_t IssuedCount() const { return evidence_.anchored && size() > 1 ? size() - 1 : size(); }

  void Add(Reason reason, int depth, std::string detail, std::string hint = {}) {
    findings_.push_back({reason, depth, std::move(detail), std::move(hint)});
  }

  // OpenSSL will not chain a certificate whose extensions do not decode, so it
  // reports a missing issuer instead; the real defect is the encoding.
  void Encoding() {
    for (size_t depth = 0; depth < size(); ++depth) {
      if (X509_get_extension_flags(At(depth)) & EXFLAG_INVALID) {
        Add(CG_REASON_MALFORMED, static_cast<int>(depth),
            Describe(static_cast<int>(depth)) + " " + SubjectOf(At(depth)) +
                " has an extension that does not decode (or repeats one)");
      }
    }
  }

  void VerifyErrors() {
    for (const ChainError &error : evidence_.errors) {
      const Reason reason = ReasonForVerifyError(error.code);
      const size_t depth =
          std::min<size_t>(static_cast<size_t>(std::max(error.depth, 0)), size() - 1);
      X509 *cert = At(depth);
      const std::string openssl = X509_verify_cert_error_string(error.code);
      switch (reason) {
        case CG_REASON_UNTRUSTED_ISSUER:
          Add(reason, static_cast<int>(depth),
              depth == 0 ? "the client certificate " + SubjectOf(cert) +
                               " is self-signed and not trusted here"
                         : "the chain ends in the self-signed certificate " + SubjectOf(cert) +
                               ", which is not a trusted CA here");
          break;
        case CG_REASON_CHAIN_INCOMPLETE: {
          const std::vector<std::string> urls = AiaUrls(cert, NID_ad_ca_issuers);
          std::string detail = "the issuer " + Quoted(NameToString(X509_get_issuer_name(cert))) +
                               " of " + Describe(static_cast<int>(depth)) + " " + SubjectOf(cert) +
                               " was neither sent by the client nor is known locally";
          if (!urls.empty()) detail += "; its certificate is published at " + urls.front();
          Add(reason, static_cast<int>(depth), std::move(detail));
          break;
        }
        case CG_REASON_BAD_SIGNATURE:
          Add(reason, static_cast<int>(depth),
              "the signature on " + Describe(static_cast<int>(depth)) + " " + SubjectOf(cert) +
                  " does not verify with its issuer's key (" + openssl + ")");
          break;
        case CG_REASON_INVALID_CA:
          Add(reason, static_cast<int>(depth),
              Describe(static_cast<int>(depth)) + " " + SubjectOf(cert) +
                  " cannot issue certificates: " + openssl);
          break;
        case CG_REASON_CHAIN_TOO_LONG:
        case CG_REASON_EXPIRED:
        case CG_REASON_NOT_YET_VALID:
          break;  // judged below with certgate's own settings
        default:
          Add(reason, static_cast<int>(depth),
              Describe(static_cast<int>(depth)) + " " + SubjectOf(cert) + ": " + openssl);
          break;
      }
    }
  }

  void Depth() {
    const int deepest = static_cast<int>(size()) - 1;
    if (deepest > policy_.EffectiveMaxDepth()) {
      Add(CG_REASON_CHAIN_TOO_LONG, deepest,
          "the chain reaches depth " + std::to_string(deepest) + " but certgate_max_depth is " +
              std::to_string(policy_.EffectiveMaxDepth()));
    }
  }

  void Validity() {
    const int64_t skew = policy_.EffectiveClockSkew().count();
    for (size_t depth = 0; depth < size(); ++depth) {
      X509 *cert = At(depth);
      const ASN1_TIME *not_after = X509_get0_notAfter(cert);
      const ASN1_TIME *not_before = X509_get0_notBefore(cert);
      if (ASN1_TIME_cmp_time_t(not_after, static_cast<time_t>(now_ - skew)) < 0) {
        Add(CG_REASON_EXPIRED, static_cast<int>(depth),
            Describe(static_cast<int>(depth)) + " " + SubjectOf(cert) + " expired " +
                FormatTime(Asn1TimeToUnix(not_after)) + " (now " + FormatTime(now_) +
                ", clock_skew " + std::to_string(skew) + "s)",
            depth == 0 ? "" : "renew the CA certificate at this depth and reinstall the chain");
      } else if (ASN1_TIME_cmp_time_t(not_before, static_cast<time_t>(now_ + skew)) > 0) {
        Add(CG_REASON_NOT_YET_VALID, static_cast<int>(depth),
            Describe(static_cast<int>(depth)) + " " + SubjectOf(cert) + " is valid only from " +
                FormatTime(Asn1TimeToUnix(not_before)) + " (now " + FormatTime(now_) +
                ", clock_skew " + std::to_string(skew) + "s)");
      }
    }
  }

  void TrustedIssuers() {
    if (!policy_.trusted_issuers || !evidence_.anchored || size() < 2) return;
    const auto &allowed = policy_.trusted_issuers->certs;
    for (size_t depth = 1; depth < size(); ++depth) {
      for (const auto &cert : allowed) {
        if (X509_cmp(At(depth), cert.get()) == 0) return;
      }
    }
    Add(CG_REASON_ISSUER_NOT_ALLOWED, 1,
        "the chain is trusted, but neither its issuer " + SubjectOf(At(1)) +
            " nor any CA above it is in certgate_trusted_issuers (" +
            policy_.trusted_issuers->path + ")");
  }

  void ExtendedKeyUsage() {
    if (policy_.EffectiveEku() != EkuRequirement::kClientAuth) return;
    const uint32_t leaf_eku = X509_get_extended_key_usage(leaf());
    if (leaf_eku == UINT32_MAX) {
      Add(CG_REASON_WRONG_PURPOSE, 0,
          "the client certificate " + SubjectOf(leaf()) +
              " has no extendedKeyUsage extension; clientAuth is required here",
          "issue the certificate with extendedKeyUsage clientAuth, or set certgate_require_eku "
          "any");
    } else if (!(leaf_eku & (XKU_SSL_CLIENT | XKU_ANYEKU))) {
      Add(CG_REASON_WRONG_PURPOSE, 0,
          "the client certificate " + SubjectOf(leaf()) + " has extendedKeyUsage " +
              EkuNames(leaf()) + " but not clientAuth");
    }
    for (size_t depth = 1; depth < size(); ++depth) {
      const uint32_t eku = X509_get_extended_key_usage(At(depth));
      if (eku != UINT32_MAX && !(eku & (XKU_SSL_CLIENT | XKU_ANYEKU))) {
        Add(CG_REASON_WRONG_PURPOSE, static_cast<int>(depth),
            Describe(static_cast<int>(depth)) + " " + SubjectOf(At(depth)) +
                " restricts its certificates to " + EkuNames(At(depth)) +
                ", which excludes clientAuth");
      }
    }
  }

  static std::string EkuNames(X509 *cert) {
    std::string names;
    for (const std::string &name : ExtractFacts(cert).extended_key_usage) {
      names += (names.empty() ? "" : ",") + name;
    }
    return names;
  }

  void KeyUsage() {
    const KeyUsageMask required = policy_.EffectiveKeyUsage();
    const uint32_t usage = X509_get_key_usage(leaf());
    // An absent keyUsage extension leaves the key unrestricted (RFC 5280 4.2.1.3).
    if (required == 0 || usage == UINT32_MAX || (usage & required) == required) return;
    CertFacts facts = ExtractFacts(leaf());
    std::string have;
    for (const std::string &name : facts.key_usage) have += (have.empty() ? "" : ",") + name;
    Add(CG_REASON_KEY_USAGE, 0,
        "the client certificate " + SubjectOf(leaf()) + " has keyUsage " +
            (have.empty() ? "(none)" : have) +
            ", which lacks what certgate_require_key_usage asks");
  }

  void KeySizes() {
    const MinKey min = policy_.EffectiveMinKey();
    for (size_t depth = 0; depth < size(); ++depth) {
      EVP_PKEY *key = X509_get0_pubkey(At(depth));
      if (key == nullptr) continue;
      const int bits = EVP_PKEY_get_bits(key);
      int minimum = 0;
      if (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS") || EVP_PKEY_is_a(key, "DSA")) {
        minimum = min.rsa_bits;
      } else if (EVP_PKEY_is_a(key, "EC")) {
        minimum = min.ec_bits;
      }
      if (bits < minimum) {
        Add(CG_REASON_WEAK_KEY, static_cast<int>(depth),
            Describe(static_cast<int>(depth)) + " " + SubjectOf(At(depth)) + " has a " +
                KeyDescription(At(depth)) + " key; certgate_min_key requires " +
                std::to_string(minimum) + " bits");
      }
    }
  }

  void Signatures() {
    const std::vector<std::string> &denied = policy_.EffectiveDenySignature();
    if (denied.empty()) return;
    for (size_t depth = 0; depth < IssuedCount(); ++depth) {
      int digest_nid = NID_undef;
      int key_nid = NID_undef;
      if (!OBJ_find_sigid_algs(X509_get_signature_nid(At(depth)), &digest_nid, &key_nid) ||
          digest_nid == NID_undef) {
        continue;  // Ed25519 and friends have no separate digest
      }
      const std::string digest = Lower(OBJ_nid2sn(digest_nid));
      if (std::find(denied.begin(), denied.end(), digest) != denied.end()) {
        Add(CG_REASON_WEAK_SIGNATURE, static_cast<int>(depth),
            Describe(static_cast<int>(depth)) + " " + SubjectOf(At(depth)) + " is signed with " +
                OBJ_nid2ln(X509_get_signature_nid(At(depth))) +
                ", which certgate_deny_signature refuses");
      }
    }
  }

  void Pins() {
    if (!policy_.pin && !policy_.deny) return;
    unsigned char cert_digest[EVP_MAX_MD_SIZE];
    unsigned char spki_digest[EVP_MAX_MD_SIZE];
    unsigned int cert_len = 0;
    unsigned int spki_len = 0;
    X509_digest(leaf(), EVP_sha256(), cert_digest, &cert_len);
    X509_pubkey_digest(leaf(), EVP_sha256(), spki_digest, &spki_len);
    auto matches = [&](const Pin &pin) {
      const bool spki = pin.kind == Pin::Kind::kSpkiSha256;
      const unsigned char *digest = spki ? spki_digest : cert_digest;
      const unsigned int len = spki ? spki_len : cert_len;
      return pin.digest.size() == len && std::memcmp(pin.digest.data(), digest, len) == 0;
    };
    if (policy_.deny && std::any_of(policy_.deny->begin(), policy_.deny->end(), matches)) {
      Add(CG_REASON_PIN_MISMATCH, 0,
          "the client certificate " + SubjectOf(leaf()) + " (sha256:" + Sha256Hex(leaf()) +
              ") is listed in certgate_deny");
    } else if (policy_.pin && !std::any_of(policy_.pin->begin(), policy_.pin->end(), matches)) {
      Add(CG_REASON_PIN_MISMATCH, 0,
          "the client certificate " + SubjectOf(leaf()) + " (sha256:" + Sha256Hex(leaf()) +
              ", spki:" + SpkiSha256Hex(leaf()) + ") is not in certgate_pin");
    }
  }

  static bool NameHas(X509_NAME *name, int nid, const std::string &value) {
    for (int i = X509_NAME_get_index_by_NID(name, nid, -1); i >= 0;
         i = X509_NAME_get_index_by_NID(name, nid, i)) {
      const ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i));
      unsigned char *utf8 = nullptr;
      const int len = ASN1_STRING_to_UTF8(&utf8, data);
      if (len < 0) continue;
      const bool equal =
          EqualsIgnoreCase(std::string_view(reinterpret_cast<char *>(utf8), len), value);
      OPENSSL_free(utf8);
      if (equal) return true;
    }
    return false;
  }

  void Subject() {
    if (!policy_.subject) return;
    X509_NAME *name = X509_get_subject_name(leaf());
    std::string text;  // RFC 2253, built only for regex rules
    for (const SubjectRule &rule : *policy_.subject) {
      if (rule.is_regex) {
        if (text.empty()) text = NameToString(name);
        if (!std::regex_search(text, *rule.regex)) {
          Add(CG_REASON_IDENTITY_MISMATCH, 0,
              "the subject " + Quoted(text) + " does not match ~" + rule.pattern);
          return;
        }
      } else if (!NameHas(name, OBJ_sn2nid(rule.attribute.c_str()), rule.value)) {
        Add(CG_REASON_IDENTITY_MISMATCH, 0,
            "the subject " + SubjectOf(leaf()) + " lacks " + rule.attribute + "=" + rule.value,
            "use a certificate whose subject has " + rule.attribute + "=" + rule.value +
                ", or change certgate_subject");
        return;
      }
    }
  }

  void SubjectAltName() {
    if (!policy_.san || policy_.san->empty()) return;
    const std::vector<std::string> sans = SubjectAltNames(leaf());
    for (const SanRule &rule : *policy_.san) {
      const char *prefix = rule.type == SanType::kDns     ? "DNS:"
                           : rule.type == SanType::kEmail ? "email:"
                           : rule.type == SanType::kUri   ? "URI:"
                                                          : "IP:";
      const bool ignore_case = rule.type == SanType::kDns || rule.type == SanType::kEmail;
      for (const std::string &san : sans) {
        const size_t prefix_len = std::strlen(prefix);
        if (san.compare(0, prefix_len, prefix) == 0 &&
            GlobMatch(rule.pattern, std::string_view(san).substr(prefix_len), ignore_case)) {
          return;
        }
      }
    }
    std::string have;
    for (const std::string &san : sans) have += (have.empty() ? "" : ",") + san;
    Add(CG_REASON_IDENTITY_MISMATCH, 0,
        "no subjectAltName of the client certificate " + SubjectOf(leaf()) + " (" +
            (have.empty() ? "none" : have) + ") matches certgate_san");
  }

  const Policy &policy_;
  const ChainEvidence &evidence_;
  const int64_t now_;
  std::vector<Finding> findings_;
};

}  // namespace

bool GlobMatch(std::string_view pattern, std::string_view text, bool ignore_case) {
  auto same = [ignore_case](char a, char b) {
    return ignore_case ? std::tolower(static_cast<unsigned char>(a)) ==
                             std::tolower(static_cast<unsigned char>(b))
                       : a == b;
  };
  // Iterative wildcard match with single backtrack point: linear in practice.
  size_t p = 0, t = 0, star = std::string_view::npos, mark = 0;
  while (t < text.size()) {
    if (p < pattern.size() && pattern[p] == '*') {
      star = p++;
      mark = t;
    } else if (p < pattern.size() && same(pattern[p], text[t])) {
      ++p;
      ++t;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      t = ++mark;
    } else {
      return false;
    }
  }
  while (p < pattern.size() && pattern[p] == '*') ++p;
  return p == pattern.size();
}

Decision Evaluate(const Policy &policy, const ChainEvidence *evidence, const Clock &clock) {
  const Mode mode = policy.EffectiveMode();
  if (evidence == nullptr || evidence->leaf() == nullptr) {
    if (mode == Mode::kRequire) {
      return Decision::Deny({CG_REASON_NO_CERT,
                             -1,
                             "the client presented no certificate; certgate require is set here",
                             {}},
                            nullptr);
    }
    return Decision::Allow(nullptr);
  }
  if (!evidence->internal_error.empty()) return Decision::InternalError(evidence->internal_error);

  const int64_t now = clock.Now();
  Decision decision = Decision::Allow(evidence->chain.front());
  decision.SetFindings(ChainJudge(policy, *evidence, now).Run());
  if (decision.verdict() == CG_VERDICT_ALLOW) {
    const int64_t not_after = Asn1TimeToUnix(X509_get0_notAfter(evidence->leaf()));
    if (not_after - now < policy.EffectiveExpiryWarning().count()) {
      decision.SetExpiryWarning("the client certificate expires " + FormatTime(not_after) +
                                ", within certgate_expiry_warning");
    }
  }
  return decision;
}

}  // namespace certgate
