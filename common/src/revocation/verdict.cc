#include "revocation/verdict.h"

#include <certgate/cert_facts.h>

namespace certgate {
namespace {

std::string Describe(const RevocationAnswer &answer) {
  std::string text = RevocationStatusName(answer.status);
  if (answer.status == RevocationStatus::kRevoked) {
    text += " " + FormatTime(answer.revoked_at);
    if (!answer.reason.empty()) text += " " + answer.reason;
  }
  if (!answer.source.empty()) text += " " + answer.source;
  if (answer.depth > 0) text += " depth=" + std::to_string(answer.depth);
  return text;
}

const RevocationAnswer *First(const std::vector<RevocationAnswer> &answers,
                              RevocationStatus status) {
  for (const RevocationAnswer &answer : answers) {
    if (answer.status == status) return &answer;
  }
  return nullptr;
}

std::string CertAtDepth(int depth) {
  return depth == 0 ? std::string("the client certificate")
                    : "the CA certificate at depth " + std::to_string(depth);
}

// Good answers from CRLs that break RFC 5280 §5.2.3, accepted because
// certgate_strict is off: warning=strict_off:<names>, after the chain's own
// strict_off names; a more urgent warning (expiry) is kept.
void WarnStrictOff(const std::vector<RevocationAnswer> &answers, Decision *decision) {
  std::string names, detail;
  for (const RevocationAnswer &answer : answers) {
    if (answer.crl_defects.empty()) continue;
    if (("," + names + ",").find("," + answer.crl_defects + ",") == std::string::npos) {
      names += (names.empty() ? "" : ",") + answer.crl_defects;
    }
    if (detail.empty()) {
      detail = answer.crl_defects_detail + ", yet it vouches for " + CertAtDepth(answer.depth) +
               "; accepted because certgate_strict is off";
    }
  }
  if (names.empty()) return;
  const std::string &warning = decision->warning();
  if (warning.empty()) {
    decision->SetWarning("strict_off:" + names, detail);
  } else if (warning.rfind("strict_off:", 0) == 0) {
    decision->SetWarning(warning + "," + names, decision->detail() + "; " + detail);
  }
}

}  // namespace

void ApplyRevocation(const Policy &policy, const std::vector<RevocationAnswer> &answers,
                     Decision *decision) {
  if (answers.empty()) return;
  const RevocationMode mode = policy.EffectiveRevocation();
  if (const RevocationAnswer *revoked = First(answers, RevocationStatus::kRevoked)) {
    decision->SetRevocation(Describe(*revoked));
    decision->SetFindings(
        {{CG_REASON_REVOKED,
          revoked->depth,
          CertAtDepth(revoked->depth) + " was revoked " + FormatTime(revoked->revoked_at) +
              (revoked->reason.empty() ? "" : " (" + revoked->reason + ")") + " according to " +
              revoked->source,
          {}}});
    return;
  }
  const RevocationAnswer *stale = First(answers, RevocationStatus::kStale);
  const RevocationAnswer *unknown = First(answers, RevocationStatus::kUnknown);
  const RevocationAnswer *doubtful = unknown != nullptr ? unknown : stale;
  if (doubtful == nullptr) {
    decision->SetRevocation(Describe(answers.front()));
    // Good by data past its nextUpdate (within certgate_max_stale): allowed,
    // but the operator hears of the failing refresh before max_stale runs out.
    for (const RevocationAnswer &answer : answers) {
      if (answer.detail.empty()) continue;
      decision->SetWarning(
          "revocation_past_next_update",
          CertAtDepth(answer.depth) + " is good by " + answer.source + "; " + answer.detail);
      return;
    }
    WarnStrictOff(answers, decision);
    return;
  }
  const bool is_stale = doubtful == stale;
  std::string detail = std::string("mode ") + RevocationModeName(mode) + ": " +
                       CertAtDepth(doubtful->depth) +
                       (is_stale ? " has only revocation data older than nextUpdate + max_stale"
                                 : " has no known revocation status") +
                       (doubtful->detail.empty() ? "" : "; " + doubtful->detail);
  decision->SetRevocation(Describe(*doubtful) + " (" + RevocationModeName(mode) + ")");
  if (mode == RevocationMode::kSoftFail) {
    decision->SetWarning(is_stale ? "revocation_stale" : "revocation_unknown", detail);
    return;
  }
  const std::string hint =
      is_stale ? "make the CRL distribution point reachable, or raise certgate_max_stale"
      : !doubtful->crl_defects.empty() ? "have the CA publish CRLs with a non-critical crlNumber "
                                         "(RFC 5280 section 5.2.3), or set "
                                         "certgate_strict off to accept them with a warning"
      : mode == RevocationMode::kCacheOnly
          ? "preload the issuer's CRL with certgate_crl, or choose certgate_revocation "
            "soft_fail/hard_fail so certgate fetches it"
          : "make the URLs in the detail reachable (certgate_fetch_allow, certgate_fetch_proxy, "
            "certgate_fetch_timeout), preload a CRL with certgate_crl, or choose "
            "certgate_revocation soft_fail";
  decision->SetFindings({{is_stale ? CG_REASON_REVOCATION_STALE : CG_REASON_REVOCATION_UNAVAILABLE,
                          doubtful->depth, detail, hint}});
}

std::vector<RevocationAnswer> UnavailableAnswers(const std::string &why) {
  RevocationAnswer answer;
  answer.status = RevocationStatus::kUnknown;
  answer.detail = "the revocation cache cannot be used: " + why;
  return {answer};
}

std::string OutcomeKey(const std::vector<RevocationAnswer> &answers) {
  std::string key;
  for (const RevocationAnswer &answer : answers) {
    // Not the detail: it changes with every retry, and the decisions a
    // connection keeps must stay few.
    key += Describe(answer) + " " + answer.crl_defects + "\n";
  }
  return key;
}

}  // namespace certgate
