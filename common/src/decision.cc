#include <certgate/cert_facts.h>
#include <certgate/decision.h>
#include <certgate/directive_names.h>

#include <algorithm>

namespace certgate {

Decision Decision::Allow(std::shared_ptr<X509> leaf) {
  Decision decision;
  decision.verdict_ = CG_VERDICT_ALLOW;
  decision.reason_ = CG_REASON_NONE;
  decision.leaf_ = std::move(leaf);
  return decision;
}

Decision Decision::Deny(Finding finding, std::shared_ptr<X509> leaf) {
  Decision decision;
  decision.leaf_ = std::move(leaf);
  decision.SetFindings({std::move(finding)});
  return decision;
}

Decision Decision::InternalError(std::string detail) {
  return Deny({CG_REASON_INTERNAL_ERROR, -1, std::move(detail), {}}, nullptr);
}

void Decision::SetFindings(std::vector<Finding> findings) {
  std::stable_sort(findings.begin(), findings.end(), [](const Finding &a, const Finding &b) {
    if (a.reason != b.reason) return TakesPrecedence(a.reason, b.reason);
    return a.depth < b.depth;
  });
  // OpenSSL may report one defect twice (errors 20 and 21 for one missing issuer).
  findings.erase(std::unique(findings.begin(), findings.end(),
                             [](const Finding &a, const Finding &b) {
                               return a.reason == b.reason && a.depth == b.depth;
                             }),
                 findings.end());
  findings_ = std::move(findings);
  if (findings_.empty()) {
    verdict_ = CG_VERDICT_ALLOW;
    reason_ = CG_REASON_NONE;
    depth_ = -1;
    detail_.clear();
    hint_.clear();
    return;
  }
  const Finding &first = findings_.front();
  verdict_ = CG_VERDICT_DENY;
  reason_ = first.reason;
  depth_ = first.depth;
  detail_ = first.detail;
  hint_ = first.hint.empty() ? std::string(Info(first.reason).hint) : first.hint;
  fields_ = {};
}

void Decision::SetExpiryWarning(std::string detail) { SetWarning("expiry", std::move(detail)); }

void Decision::SetWarning(std::string warning, std::string detail) {
  warning_ = std::move(warning);
  if (verdict_ == CG_VERDICT_ALLOW) detail_ = std::move(detail);
  fields_ = {};
}

const std::string &Decision::Field(cg_field field) const {
  static const std::string kEmpty;
  if (field < 0 || field >= CG_FIELD_COUNT) return kEmpty;
  std::optional<std::string> &slot = fields_[field];
  if (slot) return *slot;
  X509 *leaf = leaf_.get();
  switch (field) {
    case CG_FIELD_VERDICT:
      slot = verdict_ == CG_VERDICT_ALLOW ? "allow" : "deny";
      break;
    case CG_FIELD_REASON:
      slot = std::string(verdict_ == CG_VERDICT_ALLOW ? "" : Info(reason_).code);
      break;
    case CG_FIELD_SUBSTATUS:
      slot = std::string(verdict_ == CG_VERDICT_ALLOW ? "" : Info(reason_).substatus);
      break;
    case CG_FIELD_DETAIL:
      slot = SpellDirectives(detail_, CurrentDirectiveStyle());
      break;
    case CG_FIELD_HINT:
      slot = SpellDirectives(hint_, CurrentDirectiveStyle());
      break;
    case CG_FIELD_SUBJECT:
      slot = leaf ? NameToString(X509_get_subject_name(leaf)) : "";
      break;
    case CG_FIELD_ISSUER:
      slot = leaf ? NameToString(X509_get_issuer_name(leaf)) : "";
      break;
    case CG_FIELD_SERIAL:
      slot = leaf ? SerialHex(leaf) : "";
      break;
    case CG_FIELD_FINGERPRINT:
      slot = leaf ? "sha256:" + Sha256Hex(leaf) : "";
      break;
    case CG_FIELD_NOT_BEFORE:
      slot = leaf ? FormatTime(Asn1TimeToUnix(X509_get0_notBefore(leaf))) : "";
      break;
    case CG_FIELD_NOT_AFTER:
      slot = leaf ? FormatTime(Asn1TimeToUnix(X509_get0_notAfter(leaf))) : "";
      break;
    case CG_FIELD_REVOCATION:
      slot = leaf ? revocation_ : "";
      break;
    case CG_FIELD_DEPTH:
      slot = depth_ >= 0 ? std::to_string(depth_) : "";
      break;
    case CG_FIELD_COUNT:
      break;
  }
  return slot ? *slot : kEmpty;
}

}  // namespace certgate
