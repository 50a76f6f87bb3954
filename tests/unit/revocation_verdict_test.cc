// How revocation answers turn into a decision, per mode.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "revocation/verdict.h"

namespace certgate {
namespace {

using ::testing::HasSubstr;

RevocationAnswer Answer(RevocationStatus status, int depth = 0) {
  RevocationAnswer answer;
  answer.status = status;
  answer.depth = depth;
  answer.source = "crl http://pki.example/ca.crl crl_number=7";
  if (status == RevocationStatus::kRevoked) {
    answer.revoked_at = 1800000000;
    answer.reason = "keyCompromise";
  }
  if (status == RevocationStatus::kUnknown) {
    answer.source.clear();
    answer.detail = "http://pki.example/ca.crl: connection refused after 2 ms";
  }
  return answer;
}

Decision Judge(const char *mode, std::vector<RevocationAnswer> answers) {
  Policy policy;
  EXPECT_TRUE(policy.Set("revocation", {mode}).ok());
  Decision decision = Decision::Allow(nullptr);
  ApplyRevocation(policy, answers, &decision);
  return decision;
}

TEST(RevocationVerdictTest, RevokedAtAnyDepthIsRefusedWithItsSource) {
  for (const char *mode : {"cache_only", "soft_fail", "hard_fail"}) {
    const Decision decision =
        Judge(mode, {Answer(RevocationStatus::kGood), Answer(RevocationStatus::kRevoked, 1)});
    EXPECT_EQ(decision.reason(), CG_REASON_REVOKED) << mode;
    EXPECT_EQ(decision.depth(), 1);
    EXPECT_THAT(decision.detail(), HasSubstr("revoked 2027-01-15T08:00:00Z (keyCompromise)"));
    EXPECT_THAT(decision.detail(), HasSubstr("crl http://pki.example/ca.crl crl_number=7"));
    EXPECT_THAT(decision.revocation(), HasSubstr("revoked 2027-01-15T08:00:00Z keyCompromise"));
  }
}

TEST(RevocationVerdictTest, AllGoodIsAllowedAndSaysWhere) {
  const Decision decision = Judge("hard_fail", {Answer(RevocationStatus::kGood)});
  EXPECT_EQ(decision.verdict(), CG_VERDICT_ALLOW);
  EXPECT_EQ(decision.revocation(), "good crl http://pki.example/ca.crl crl_number=7");
  EXPECT_TRUE(decision.warning().empty());
}

TEST(RevocationVerdictTest, GoodPastNextUpdateIsAllowedWithAWarningNamingTheRefresh) {
  RevocationAnswer past = Answer(RevocationStatus::kGood);
  past.detail =
      "the CRL's nextUpdate 2027-01-15T07:00:00Z has passed; used within certgate_max_stale; "
      "crl http://pki.example/ca.crl: failed: HTTP 500 (3 ms, at 2027-01-15T08:00:00Z)";
  for (const char *mode : {"cache_only", "soft_fail", "hard_fail"}) {
    const Decision decision = Judge(mode, {Answer(RevocationStatus::kGood), past});
    EXPECT_EQ(decision.verdict(), CG_VERDICT_ALLOW) << mode;
    EXPECT_EQ(decision.warning(), "revocation_past_next_update") << mode;
    EXPECT_THAT(decision.detail(), HasSubstr("the client certificate is good by crl "
                                             "http://pki.example/ca.crl crl_number=7"));
    EXPECT_THAT(decision.detail(), HasSubstr("failed: HTTP 500"));
  }
}

TEST(RevocationVerdictTest, UnknownFailsClosedUnlessSoftFail) {
  const Decision hard = Judge("hard_fail", {Answer(RevocationStatus::kUnknown)});
  EXPECT_EQ(hard.reason(), CG_REASON_REVOCATION_UNAVAILABLE);
  EXPECT_THAT(hard.detail(), HasSubstr("connection refused"));
  EXPECT_THAT(hard.hint(), HasSubstr("soft_fail"));

  const Decision cache_only = Judge("cache_only", {Answer(RevocationStatus::kUnknown)});
  EXPECT_EQ(cache_only.reason(), CG_REASON_REVOCATION_UNAVAILABLE);
  EXPECT_THAT(cache_only.hint(), HasSubstr("certgate_crl"));

  const Decision soft = Judge("soft_fail", {Answer(RevocationStatus::kUnknown)});
  EXPECT_EQ(soft.verdict(), CG_VERDICT_ALLOW);
  EXPECT_EQ(soft.warning(), "revocation_unknown");
  EXPECT_THAT(soft.detail(), HasSubstr("connection refused"));  // the warning line explains
  EXPECT_THAT(soft.revocation(), HasSubstr("unknown (soft_fail)"));
}

TEST(RevocationVerdictTest, StaleIsItsOwnReason) {
  const Decision decision = Judge("hard_fail", {Answer(RevocationStatus::kStale)});
  EXPECT_EQ(decision.reason(), CG_REASON_REVOCATION_STALE);
  EXPECT_THAT(decision.hint(), HasSubstr("max_stale"));
  EXPECT_EQ(Judge("soft_fail", {Answer(RevocationStatus::kStale)}).warning(), "revocation_stale");
}

TEST(RevocationVerdictTest, NoAnswersLeaveTheDecisionUnchecked) {
  const Decision decision = Judge("hard_fail", {});
  EXPECT_EQ(decision.verdict(), CG_VERDICT_ALLOW);
  EXPECT_EQ(decision.revocation(), "unchecked");
}

TEST(RevocationVerdictTest, AnUnusableCacheIsUnavailable) {
  const Decision decision = Judge("cache_only", UnavailableAnswers("cannot create \"/x\""));
  EXPECT_EQ(decision.reason(), CG_REASON_REVOCATION_UNAVAILABLE);
  EXPECT_THAT(decision.detail(), HasSubstr("cannot create"));
}

TEST(RevocationVerdictTest, OutcomeKeyIgnoresRetryDetails) {
  RevocationAnswer a = Answer(RevocationStatus::kUnknown);
  RevocationAnswer b = a;
  b.detail = "another attempt";
  EXPECT_EQ(OutcomeKey({a}), OutcomeKey({b}));
  EXPECT_NE(OutcomeKey({a}), OutcomeKey({Answer(RevocationStatus::kGood)}));
}

// certgate_strict off: a good answer from a CRL that breaks RFC 5280 §5.2.3.
RevocationAnswer GoodFromCrlWithoutNumber(int depth = 0) {
  RevocationAnswer answer = Answer(RevocationStatus::kGood, depth);
  answer.source = "crl http://pki.example/ca.crl";
  answer.crl_defects = "crl_without_crl_number";
  answer.crl_defects_detail =
      "the CRL from http://pki.example/ca.crl has no crlNumber (RFC 5280 section 5.2.3)";
  return answer;
}

Decision JudgeAfter(Decision decision, std::vector<RevocationAnswer> answers) {
  Policy policy;
  EXPECT_TRUE(policy.Set("revocation", {"hard_fail"}).ok());
  ApplyRevocation(policy, answers, &decision);
  return decision;
}

TEST(RevocationVerdictTest, GoodFromADefectiveCrlUnderStrictOffWarnsNamingTheCheck) {
  const Decision decision = Judge("hard_fail", {GoodFromCrlWithoutNumber()});
  EXPECT_EQ(decision.verdict(), CG_VERDICT_ALLOW);
  EXPECT_EQ(decision.warning(), "strict_off:crl_without_crl_number");
  EXPECT_THAT(decision.detail(), HasSubstr("the CRL from http://pki.example/ca.crl has no "
                                           "crlNumber (RFC 5280 section 5.2.3), yet it vouches for "
                                           "the client certificate"));
  EXPECT_THAT(decision.detail(), HasSubstr("accepted because certgate_strict is off"));
  // Named once for two certificates of the chain.
  EXPECT_EQ(
      Judge("hard_fail", {GoodFromCrlWithoutNumber(0), GoodFromCrlWithoutNumber(1)}).warning(),
      "strict_off:crl_without_crl_number");
}

TEST(RevocationVerdictTest, AMoreUrgentWarningIsKeptAndTheChainsStrictOffNamesExtended) {
  Decision expiring = Decision::Allow(nullptr);
  expiring.SetExpiryWarning("the client certificate expires soon");
  EXPECT_EQ(JudgeAfter(expiring, {GoodFromCrlWithoutNumber()}).warning(), "expiry");

  Decision chain_defect = Decision::Allow(nullptr);
  chain_defect.SetWarning("strict_off:missing_aki", "no authorityKeyIdentifier");
  const Decision both = JudgeAfter(chain_defect, {GoodFromCrlWithoutNumber()});
  EXPECT_EQ(both.warning(), "strict_off:missing_aki,crl_without_crl_number");
  EXPECT_THAT(both.detail(), HasSubstr("no authorityKeyIdentifier"));
  EXPECT_THAT(both.detail(), HasSubstr("has no crlNumber"));

  RevocationAnswer past = GoodFromCrlWithoutNumber();
  past.detail = "the CRL's nextUpdate 2027-01-15T07:00:00Z has passed";
  EXPECT_EQ(Judge("hard_fail", {past}).warning(), "revocation_past_next_update");
}

TEST(RevocationVerdictTest, UnknownForADefectiveCrlUnderStrictSaysHowToFixIt) {
  RevocationAnswer answer = Answer(RevocationStatus::kUnknown);
  answer.crl_defects = "crl_number_critical";
  for (const char *mode : {"hard_fail", "cache_only"}) {
    const Decision decision = Judge(mode, {answer});
    EXPECT_EQ(decision.reason(), CG_REASON_REVOCATION_UNAVAILABLE) << mode;
    EXPECT_THAT(decision.hint(), HasSubstr("non-critical crlNumber (RFC 5280 section 5.2.3)"));
    EXPECT_THAT(decision.hint(), HasSubstr("certgate_strict off"));
  }
  EXPECT_NE(OutcomeKey({answer}), OutcomeKey({Answer(RevocationStatus::kUnknown)}));
}

}  // namespace
}  // namespace certgate
