#include <certgate/evaluator.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <re2/re2.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "cert_fields.h"
#include "chain_errors.h"
#include "chain_wording.h"

namespace certgate {
namespace {

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
    AddChainErrorFindings(evidence_, &findings_);
    Strict();
    Depth();
    Validity();
    TrustedIssuers();
    ExtendedKeyUsage();
    KeyUsage();
    KeySizes();
    Signatures();
    // Identity rules read what the client wrote into its certificate: they run
    // only once a trusted CA vouches for it, as Go's and BoringSSL's verifiers
    // do. An unverified chain is refused for its chain reason alone, and none
    // of its text reaches an operator's pattern. Never skipped for a chain that
    // nothing above refused: skipping them must not turn into an allow.
    if (Verified() || findings_.empty()) {
      Pins();
      Subject();
      SubjectAltName();
    }
    return std::move(findings_);
  }

  // Under `certgate_strict off`: the defects let pass, for warning=strict_off:<names>.
  const std::string &strict_off_names() const { return strict_off_names_; }
  const std::string &strict_off_detail() const { return strict_off_detail_; }

 private:
  X509 *At(size_t depth) const { return evidence_.chain[depth].get(); }
  const CertSummary &Summary(size_t depth) const { return evidence_.summaries[depth]; }
  const LeafSummary &Leaf() const { return evidence_.leaf_summary(); }
  X509 *leaf() const { return At(0); }
  size_t size() const { return evidence_.chain.size(); }
  // Certificates the client is answerable for: all but a trust anchor.
  size_t IssuedCount() const { return evidence_.anchored && size() > 1 ? size() - 1 : size(); }

  // The chain reaches a trust anchor and OpenSSL found no defect on the way
  // (signatures, CA flags, extensions). Validity and depth are certgate's own
  // judgement of a genuine chain, so they do not count here.
  bool Verified() const {
    return evidence_.anchored && evidence_.errors.empty() &&
           std::none_of(evidence_.summaries.begin(), evidence_.summaries.end(),
                        [](const CertSummary &cert) { return cert.invalid_encoding; });
  }

  void Add(Reason reason, int depth, std::string detail, std::string hint = {}) {
    findings_.push_back({reason, depth, std::move(detail), std::move(hint)});
  }

  void Strict() {
    for (const StrictDefect &defect : evidence_.strict_defects) {
      std::string detail =
          Describe(defect.depth) + " " + SubjectOf(At(defect.depth)) + " " + defect.fact;
      const std::string name(defect.check->name);
      if (policy_.EffectiveStrict()) {
        Add(defect.check->reason, defect.depth, std::move(detail), defect.hint);
      } else if (("," + strict_off_names_ + ",").find("," + name + ",") == std::string::npos) {
        strict_off_names_ += (strict_off_names_.empty() ? "" : ",") + name;
        if (strict_off_detail_.empty()) {
          strict_off_detail_ = std::move(detail) + "; accepted because certgate_strict is off";
        }
      }
    }
  }

  // Self-issued CA certificates (subject == issuer: a CA key rollover) do not
  // count toward the path length (RFC 5280 6.1.4 (l)); the leaf and the top
  // of the chain always do.
  void Depth() {
    const int deepest = static_cast<int>(size()) - 1;
    int self_issued = 0;
    for (int depth = 1; depth < deepest; ++depth) self_issued += Summary(depth).self_issued;
    const int counted = deepest - self_issued;
    if (counted > policy_.EffectiveMaxDepth()) {
      Add(CG_REASON_CHAIN_TOO_LONG, deepest,
          "the chain reaches depth " + std::to_string(counted) +
              (self_issued > 0
                   ? " (not counting " + std::to_string(self_issued) +
                         " self-issued CA certificate" + (self_issued > 1 ? "s" : "") + ")"
                   : std::string()) +
              " but certgate_max_depth is " + std::to_string(policy_.EffectiveMaxDepth()));
    }
  }

  void Validity() {
    const int64_t skew = policy_.EffectiveClockSkew().count();
    for (size_t depth = 0; depth < size(); ++depth) {
      const CertSummary &cert = Summary(depth);
      const bool expired = cert.not_after < now_ - skew;
      if (!expired && cert.not_before <= now_ + skew) continue;
      const std::string at = Describe(static_cast<int>(depth)) + " " + SubjectOf(At(depth));
      const std::string now =
          " (now " + FormatTime(now_) + ", clock_skew " + std::to_string(skew) + "s)";
      // An issuer out of its dates may have been picked over another of its name.
      const std::string tried = depth > 0 ? IssuersTriedNote(evidence_, depth - 1) : std::string();
      if (expired) {
        Add(CG_REASON_EXPIRED, static_cast<int>(depth),
            at + " expired " + FormatTime(cert.not_after) + now + tried,
            depth == 0 ? "" : "renew the CA certificate at this depth and reinstall the chain");
      } else {
        Add(CG_REASON_NOT_YET_VALID, static_cast<int>(depth),
            at + " is valid only from " + FormatTime(cert.not_before) + now + tried);
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
    const EkuRequirement requirement = policy_.EffectiveEku();
    if (requirement == EkuRequirement::kAny) return;
    // `clientAuth strict`: anyExtendedKeyUsage does not stand in for clientAuth.
    const uint32_t accepted = requirement == EkuRequirement::kClientAuthListed
                                  ? XKU_SSL_CLIENT
                                  : XKU_SSL_CLIENT | XKU_ANYEKU;
    const uint32_t leaf_eku = Summary(0).extended_key_usage;
    if (leaf_eku == UINT32_MAX) {
      Add(CG_REASON_WRONG_PURPOSE, 0,
          "the client certificate " + SubjectOf(leaf()) +
              " has no extendedKeyUsage extension; clientAuth is required here",
          "issue the certificate with extendedKeyUsage clientAuth, or set certgate_require_eku "
          "any");
    } else if (!(leaf_eku & accepted)) {
      const std::string names = EkuNames(leaf());
      if (names.empty()) {
        Add(CG_REASON_MALFORMED, 0,
            "the client certificate " + SubjectOf(leaf()) +
                " has an empty extendedKeyUsage extension; RFC 5280 section 4.2.1.12 requires at "
                "least one purpose",
            "have the CA re-issue the certificate with extendedKeyUsage clientAuth");
      } else {
        Add(CG_REASON_WRONG_PURPOSE, 0,
            "the client certificate " + SubjectOf(leaf()) + " has extendedKeyUsage " + names +
                " but not clientAuth" +
                (leaf_eku & XKU_ANYEKU ? " (anyExtendedKeyUsage does not count under "
                                         "certgate_require_eku clientAuth strict)"
                                       : ""));
      }
    }
    for (size_t depth = 1; depth < size(); ++depth) {
      const uint32_t eku = Summary(depth).extended_key_usage;
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
    const uint32_t usage = Summary(0).key_usage;
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
      const CertSummary &cert = Summary(depth);
      using Kind = CertSummary::KeyKind;
      if (cert.key_kind == Kind::kEdwards) continue;  // one fixed strength each
      if (cert.key_kind == Kind::kOther || (cert.key_kind == Kind::kDsa && min.dsa_bits == 0)) {
        // A key certgate cannot rank is refused, never waved through.
        Add(CG_REASON_WEAK_KEY, static_cast<int>(depth),
            Describe(static_cast<int>(depth)) + " " + SubjectOf(At(depth)) + " has a " +
                KeyDescription(At(depth)) +
                " key, a type certgate_min_key does not accept (it knows rsa, ec, ed25519, "
                "ed448, and dsa when named)",
            "issue the certificate with an RSA or EC key");
        continue;
      }
      const int minimum = cert.key_kind == Kind::kRsa  ? min.rsa_bits
                          : cert.key_kind == Kind::kEc ? min.ec_bits
                                                       : min.dsa_bits;
      if (cert.key_bits < minimum) {
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
      const std::string &digest = Summary(depth).signature_digest;
      if (!digest.empty() && std::find(denied.begin(), denied.end(), digest) != denied.end()) {
        Add(CG_REASON_WEAK_SIGNATURE, static_cast<int>(depth),
            Describe(static_cast<int>(depth)) + " " + SubjectOf(At(depth)) + " is signed with " +
                OBJ_nid2ln(X509_get_signature_nid(At(depth))) +
                ", which certgate_deny_signature refuses");
      }
    }
  }

  void Pins() {
    if (!policy_.pin && !policy_.deny) return;
    auto matches = [&](const Pin &pin) {
      return pin.digest ==
             (pin.kind == Pin::Kind::kSpkiSha256 ? Leaf().spki_sha256 : Leaf().cert_sha256);
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

  bool SubjectHas(const SubjectRule &rule) const {
    for (const auto &[nid, value] : Leaf().subject_entries) {
      if (nid == rule.nid && EqualsIgnoreCase(value, rule.value)) return true;
    }
    return false;
  }

  void Subject() {
    if (!policy_.subject) return;
    for (const SubjectRule &rule : *policy_.subject) {
      if (rule.is_regex) {
        if (!RE2::PartialMatch(Leaf().subject, *rule.regex)) {
          Add(CG_REASON_IDENTITY_MISMATCH, 0,
              "the subject " + Quoted(Leaf().subject) + " does not match ~" + rule.pattern);
          return;
        }
      } else if (!SubjectHas(rule)) {
        Add(CG_REASON_IDENTITY_MISMATCH, 0,
            "the subject " + Quoted(Leaf().subject) + " lacks " + rule.attribute + "=" + rule.value,
            "use a certificate whose subject has " + rule.attribute + "=" + rule.value +
                ", or change certgate_subject");
        return;
      }
    }
  }

  void SubjectAltName() {
    if (!policy_.san || policy_.san->empty()) return;
    const std::vector<std::string> &sans = Leaf().subject_alt_names;
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
  std::string strict_off_names_;
  std::string strict_off_detail_;
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
  if (evidence->summaries.size() != evidence->chain.size()) {
    ChainEvidence summarized = *evidence;  // built by hand (tests): decode it now
    summarized.Summarize();
    return Evaluate(policy, &summarized, clock);
  }

  const int64_t now = clock.Now();
  Decision decision = Decision::Allow(evidence->chain.front());
  ChainJudge judge(policy, *evidence, now);
  decision.SetFindings(judge.Run());
  if (decision.verdict() != CG_VERDICT_ALLOW) return decision;
  // One warning per line: a certificate about to lock its client out matters
  // more than a defect the operator chose to accept.
  const int64_t not_after = evidence->summaries.front().not_after;
  if (not_after < now) {
    decision.SetExpiryWarning("the client certificate expired " + FormatTime(not_after) +
                              " and is accepted only within certgate_clock_skew (" +
                              std::to_string(policy.EffectiveClockSkew().count()) + "s)");
  } else if (not_after - now < policy.EffectiveExpiryWarning().count()) {
    decision.SetExpiryWarning("the client certificate expires " + FormatTime(not_after) +
                              ", within certgate_expiry_warning");
  } else if (!judge.strict_off_names().empty()) {
    decision.SetWarning("strict_off:" + judge.strict_off_names(), judge.strict_off_detail());
  }
  return decision;
}

}  // namespace certgate
