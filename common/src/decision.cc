#include <certgate/decision.h>

#include <algorithm>

#include "cert_fields.h"
#include "directive_names.h"

namespace certgate {

Decision Decision::Allow(std::shared_ptr<X509> leaf) {
  Decision decision;
  decision.verdict_ = CG_VERDICT_ALLOW;
  decision.reason_ = CG_REASON_NONE;
  decision.SetLeaf(std::move(leaf));
  decision.RenderStateFields();
  return decision;
}

Decision Decision::Deny(Finding finding, std::shared_ptr<X509> leaf) {
  Decision decision;
  decision.SetLeaf(std::move(leaf));
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
  } else {
    const Finding &first = findings_.front();
    verdict_ = CG_VERDICT_DENY;
    reason_ = first.reason;
    depth_ = first.depth;
    detail_ = first.detail;
    hint_ = first.hint.empty() ? std::string(Info(first.reason).hint) : first.hint;
  }
  RenderStateFields();
}

void Decision::SetExpiryWarning(std::string detail) { SetWarning("expiry", std::move(detail)); }

void Decision::SetWarning(std::string warning, std::string detail) {
  warning_ = std::move(warning);
  if (verdict_ == CG_VERDICT_ALLOW) detail_ = std::move(detail);
  RenderStateFields();
}

void Decision::SetRevocation(std::string revocation) {
  revocation_ = std::move(revocation);
  RenderStateFields();
}

void Decision::SetLeaf(std::shared_ptr<X509> leaf) {
  leaf_ = std::move(leaf);
  leaf_fields_ = leaf_ ? std::make_shared<const LeafFields>(leaf_) : nullptr;
}

const std::string &Decision::LeafFields::Get(cg_field field) const {
  std::call_once(rendered_, [this] {
    X509 *leaf = leaf_.get();
    fields_[CG_FIELD_SUBJECT] = NameToString(X509_get_subject_name(leaf));
    fields_[CG_FIELD_ISSUER] = NameToString(X509_get_issuer_name(leaf));
    fields_[CG_FIELD_SERIAL] = SerialHex(leaf);
    fields_[CG_FIELD_FINGERPRINT] = "sha256:" + Sha256Hex(leaf);
    fields_[CG_FIELD_NOT_BEFORE] = FormatTime(Asn1TimeToUnix(X509_get0_notBefore(leaf)));
    fields_[CG_FIELD_NOT_AFTER] = FormatTime(Asn1TimeToUnix(X509_get0_notAfter(leaf)));
  });
  return fields_[field];
}

void Decision::RenderStateFields() {
  const bool allowed = verdict_ == CG_VERDICT_ALLOW;
  fields_[CG_FIELD_VERDICT] = allowed ? "allow" : "deny";
  fields_[CG_FIELD_REASON] = allowed ? "" : std::string(Info(reason_).code);
  fields_[CG_FIELD_SUBSTATUS] = allowed ? "" : std::string(Info(reason_).substatus);
  fields_[CG_FIELD_DETAIL] = SpellDirectives(detail_, CurrentDirectiveStyle());
  fields_[CG_FIELD_HINT] = SpellDirectives(hint_, CurrentDirectiveStyle());
  fields_[CG_FIELD_REVOCATION] = leaf_ ? revocation_ : "";
  fields_[CG_FIELD_DEPTH] = depth_ >= 0 ? std::to_string(depth_) : "";
}

const std::string &Decision::Field(cg_field field) const {
  static const std::string kEmpty;
  switch (field) {
    case CG_FIELD_SUBJECT:
    case CG_FIELD_ISSUER:
    case CG_FIELD_SERIAL:
    case CG_FIELD_FINGERPRINT:
    case CG_FIELD_NOT_BEFORE:
    case CG_FIELD_NOT_AFTER:
      return leaf_fields_ ? leaf_fields_->Get(field) : kEmpty;
    default:
      return field >= 0 && field < CG_FIELD_COUNT ? fields_[field] : kEmpty;
  }
}

}  // namespace certgate
