// Decision: verdict + reason + depth + detail + hint + the facts, as a value.
#pragma once

#include <certgate/certgate.h>
#include <certgate/reason.h>
#include <openssl/x509.h>

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace certgate {

// One defect found in a chain; a decision keeps all of them, best first.
struct Finding {
  Reason reason;
  int depth;           // -1 when no single certificate is at fault
  std::string detail;  // the facts of this case
  std::string hint;    // empty: the reason's generic hint
};

class Decision {
 public:
  static Decision Allow(std::shared_ptr<X509> leaf);
  static Decision Deny(Finding finding, std::shared_ptr<X509> leaf);
  static Decision InternalError(std::string detail);

  cg_verdict verdict() const { return verdict_; }
  Reason reason() const { return reason_; }
  int depth() const { return depth_; }
  const std::string &detail() const { return detail_; }
  const std::string &hint() const { return hint_; }
  X509 *leaf() const { return leaf_.get(); }
  const std::vector<Finding> &findings() const { return findings_; }
  bool expiry_warning() const { return warning_ == "expiry"; }
  // Why an allowed certificate deserves a warning line: "expiry",
  // "revocation_unknown" or "revocation_stale" (soft_fail),
  // "revocation_past_next_update" (good by data past nextUpdate, within
  // certgate_max_stale: its refresh is failing), "strict_off:<defects>" (a
  // chain certgate_strict would refuse, accepted because it is off); empty: none.
  const std::string &warning() const { return warning_; }
  const std::string &revocation() const { return revocation_; }
  // A revocation fetch is in flight and the policy waits for it (hard_fail):
  // not a final decision; ask again after waiting.
  bool pending() const { return pending_; }

  // Picks the reported finding by precedence (then depth) and keeps the rest.
  void SetFindings(std::vector<Finding> findings);
  void SetExpiryWarning(std::string detail);
  // An allowed certificate that deserves a warning line, and why.
  void SetWarning(std::string warning, std::string detail);
  void SetRevocation(std::string revocation);
  void SetPending(bool pending) { pending_ = pending; }

  // Text of a field (subject, fingerprint, ...). The decision's own fields are
  // rendered when it is made or changed, never on read: a published decision
  // is read by several threads at once (HTTP/2 streams of one connection).
  // The leaf's (subject ... not_after, with a SHA-256 of the certificate) are
  // rendered once, on the first read, under a std::call_once, and shared by
  // the decisions made from this one. Detail and hint are spelled in the
  // process's directive style of that moment.
  const std::string &Field(cg_field field) const;

 private:
  // The leaf's text fields: most connections never read them.
  class LeafFields {
   public:
    explicit LeafFields(std::shared_ptr<X509> leaf) : leaf_(std::move(leaf)) {}
    const std::string &Get(cg_field field) const;

   private:
    const std::shared_ptr<X509> leaf_;
    mutable std::once_flag rendered_;
    mutable std::array<std::string, CG_FIELD_COUNT> fields_;
  };

  Decision() = default;  // only the factories above make one, with its fields rendered

  cg_verdict verdict_ = CG_VERDICT_DENY;
  Reason reason_ = CG_REASON_INTERNAL_ERROR;
  int depth_ = -1;
  std::string detail_;
  std::string hint_;
  std::shared_ptr<X509> leaf_;
  std::vector<Finding> findings_;
  std::string warning_;
  bool pending_ = false;
  std::string revocation_ = "unchecked";
  std::shared_ptr<const LeafFields> leaf_fields_;   // null without a leaf
  std::array<std::string, CG_FIELD_COUNT> fields_;  // the decision's own

  void SetLeaf(std::shared_ptr<X509> leaf);
  void RenderStateFields();  // verdict, reason, detail, ...: after every change
};

}  // namespace certgate
