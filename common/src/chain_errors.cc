#include "chain_errors.h"

#include <certgate/reason.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <string>

#include "cert_fields.h"
#include "chain_wording.h"
#include "name_constraints.h"

namespace certgate {
namespace {

class ChainErrors {
 public:
  ChainErrors(const ChainEvidence &evidence, std::vector<Finding> *findings)
      : evidence_(evidence), findings_(*findings) {}

  void Run() {
    Encoding();
    VerifyErrors();
    NameConstraints();
  }

  std::string TriedAt(size_t depth) const { return TriedNote(Tried(depth)); }

 private:
  X509 *At(size_t depth) const { return evidence_.chain[depth].get(); }
  const CertSummary &Summary(size_t depth) const { return evidence_.summaries[depth]; }
  size_t size() const { return evidence_.chain.size(); }

  void Add(Reason reason, int depth, std::string detail, std::string hint = {}) {
    findings_.push_back({reason, depth, std::move(detail), std::move(hint)});
  }

  // OpenSSL will not chain a certificate whose extensions do not decode, so it
  // reports a missing issuer instead; the real defect is the encoding.
  void Encoding() {
    for (size_t depth = 0; depth < size(); ++depth) {
      if (Summary(depth).invalid_encoding) {
        Add(CG_REASON_MALFORMED, static_cast<int>(depth),
            Describe(static_cast<int>(depth)) + " " + SubjectOf(At(depth)) +
                " has an extension that does not decode (or repeats one)");
      }
    }
  }

  // OpenSSL gives up on a certificate with too many names for the subtrees
  // above it with X509_V_ERR_UNSPECIFIED: that is the client's chain, not
  // certgate failing, and chain_too_complex says so.
  bool TooComplex() const {
    return std::any_of(evidence_.name_constraint_findings.begin(),
                       evidence_.name_constraint_findings.end(),
                       [](const NameConstraintFinding &finding) {
                         return finding.reason == CG_REASON_CHAIN_TOO_COMPLEX;
                       });
  }

  // A name-constraint error, worded for what it is (the certificate's name is
  // outside a CA's subtrees, not the certificate unable to issue). Only on the
  // refusal path: naming the name and the CA re-runs OpenSSL's check per name.
  void NameConstraintError(const ChainError &error, size_t depth,
                           std::vector<size_t> *violations_worded) {
    const std::string at = Describe(static_cast<int>(depth)) + " " + SubjectOf(At(depth));
    const std::string openssl = X509_verify_cert_error_string(error.code);
    if (error.code != X509_V_ERR_PERMITTED_VIOLATION &&
        error.code != X509_V_ERR_EXCLUDED_VIOLATION) {
      Add(CG_REASON_INVALID_CA, static_cast<int>(depth),
          at + " cannot be checked against the name constraints of a CA above it: " + openssl);
      return;
    }
    // OpenSSL reports each CA above a certificate that it breaks; one says it.
    if (std::find(violations_worded->begin(), violations_worded->end(), depth) !=
        violations_worded->end()) {
      return;
    }
    violations_worded->push_back(depth);
    NameConstraintExplanation explained =
        ExplainNameConstraintViolation(evidence_.chain, static_cast<int>(depth), error.code);
    if (!explained.fact.empty()) {
      Add(CG_REASON_INVALID_CA, static_cast<int>(depth), at + " " + explained.fact,
          std::move(explained.hint));
      return;
    }
    Add(CG_REASON_INVALID_CA, static_cast<int>(depth),
        at + " has a name outside the name constraints of a CA above it: " + openssl,
        "issue the certificate only with names its CAs' name constraints allow");
  }

  void VerifyErrors() {
    std::vector<size_t> violations_worded;
    for (const ChainError &error : evidence_.errors) {
      const Reason reason = ReasonForVerifyError(error.code);
      const size_t depth =
          std::min<size_t>(static_cast<size_t>(std::max(error.depth, 0)), size() - 1);
      if (error.code == X509_V_ERR_UNSPECIFIED && TooComplex()) continue;
      if (IsNameConstraintError(error.code)) {
        NameConstraintError(error, depth, &violations_worded);
        continue;
      }
      X509 *cert = At(depth);
      const std::string openssl = X509_verify_cert_error_string(error.code);
      switch (reason) {
        case CG_REASON_UNTRUSTED_ISSUER:
          Add(reason, static_cast<int>(depth),
              (depth == 0 ? "the client certificate " + SubjectOf(cert) +
                                " is self-signed and not trusted here"
                          : "the chain ends in the self-signed certificate " + SubjectOf(cert) +
                                ", which is not a trusted CA here") +
                  OtherIssuersTried(depth));
          break;
        case CG_REASON_CHAIN_INCOMPLETE: {
          const std::vector<std::string> urls = AiaUrls(cert, NID_ad_ca_issuers);
          std::string detail = "the issuer " + Quoted(NameToString(X509_get_issuer_name(cert))) +
                               " of " + Describe(static_cast<int>(depth)) + " " + SubjectOf(cert);
          const UnusedIssuers *known = UnusedAt(depth);
          if (known == nullptr) {
            detail += " was neither sent by the client nor is known locally";
          } else {
            // Found, but OpenSSL could not chain to it: say why, not that it is unknown.
            detail +=
                " is not usable: " + Found(*known) + ", but " +
                (known->usable > 0 ? "no chain through it reaches a trust anchor" + SearchStopped()
                                   : std::string(known->sent + known->trusted > 1
                                                     ? "none of them can have issued it ("
                                                     : "it cannot have issued it (") +
                                         X509_verify_cert_error_string(known->cannot_issue) + ")");
          }
          if (!urls.empty()) detail += "; its certificate is published at " + urls.front();
          Add(reason, static_cast<int>(depth), std::move(detail));
          break;
        }
        case CG_REASON_BAD_SIGNATURE:
          Add(reason, static_cast<int>(depth),
              "the signature on " + Describe(static_cast<int>(depth)) + " " + SubjectOf(cert) +
                  " does not verify with its issuer's key (" + openssl + ")" +
                  OtherIssuersTried(depth));
          break;
        case CG_REASON_INVALID_CA:
          Add(reason, static_cast<int>(depth),
              Describe(static_cast<int>(depth)) + " " + SubjectOf(cert) +
                  " cannot issue certificates: " + openssl + OtherIssuersTried(depth));
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

  // Violations OpenSSL misses (invalid_ca whatever certgate_strict says) and
  // chain_too_complex; found once per chain.
  void NameConstraints() {
    for (const NameConstraintFinding &finding : evidence_.name_constraint_findings) {
      Add(finding.reason, finding.depth,
          Describe(finding.depth) + " " + SubjectOf(At(finding.depth)) + " " + finding.fact,
          finding.hint);
    }
  }

  const UnusedIssuers *UnusedAt(size_t depth) const {
    for (const UnusedIssuers &unused : evidence_.unused_issuers) {
      if (unused.depth == static_cast<int>(depth)) return &unused;
    }
    return nullptr;
  }

  // "1 certificate with that name is in the trust store", "3 certificates ...".
  static std::string Found(const UnusedIssuers &unused) {
    const int count = unused.sent + unused.trusted;
    const bool one = count == 1;
    return std::to_string(count) + (one ? " certificate" : " certificates") + " with that name " +
           (unused.sent > 0 && unused.trusted > 0 ? "were sent by the client or are trusted"
            : unused.sent > 0 ? std::string(one ? "was" : "were") + " sent by the client"
                              : std::string(one ? "is" : "are") + " in the trust store");
  }

  std::string SearchStopped() const {
    return evidence_.path_search_stopped
               ? " (the search stopped at its bound: " + std::to_string(kMaxIssuerSignatureChecks) +
                     " signature checks, " + std::to_string(kMaxAlternativePaths) +
                     " alternative paths)"
               : std::string();
  }

  // Other certificates with the name of chain[depth]'s issuer could issue it
  // and were tried: the refusal says so, as they gave no clean chain either.
  const UnusedIssuers *Tried(size_t depth) const {
    const UnusedIssuers *unused = UnusedAt(depth);
    return unused != nullptr && unused->usable > 0 ? unused : nullptr;
  }

  std::string TriedNote(const UnusedIssuers *tried) const {
    if (tried == nullptr) return {};
    const bool one = tried->usable == 1;
    return "; " +
           (one ? std::string("another certificate")
                : std::to_string(tried->usable) + " other certificates") +
           " named " + Quoted(NameToString(X509_get_issuer_name(At(tried->depth)))) +
           " could issue " + Describe(tried->depth) + (one ? " and was" : " and were") +
           " tried too, without a clean chain" + SearchStopped();
  }

  // For a defect found at chain[depth]: its own issuer choice, or the choice
  // that put it into the chain.
  std::string OtherIssuersTried(size_t depth) const {
    const UnusedIssuers *tried = Tried(depth);
    if (tried == nullptr && depth > 0) tried = Tried(depth - 1);
    return TriedNote(tried);
  }

  const ChainEvidence &evidence_;
  std::vector<Finding> &findings_;
};

}  // namespace

void AddChainErrorFindings(const ChainEvidence &evidence, std::vector<Finding> *findings) {
  ChainErrors(evidence, findings).Run();
}

std::string IssuersTriedNote(const ChainEvidence &evidence, size_t depth) {
  std::vector<Finding> unused;
  return ChainErrors(evidence, &unused).TriedAt(depth);
}

}  // namespace certgate
