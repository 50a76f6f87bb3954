// cg_counters_format: the certgate_status page, the same bytes for nginx and
// httpd (the expected text is what nginx's own formatting wrote before it moved
// into the core).
#include <certgate/certgate.h>
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace {

std::string Format(const cg_counters *counters) {
  const size_t len = cg_counters_format(counters, nullptr, 0);
  std::vector<char> buf(len + 1, 'x');
  EXPECT_EQ(cg_counters_format(counters, buf.data(), buf.size()), len);
  EXPECT_EQ(buf[len], '\0');
  return std::string(buf.data(), len);
}

cg_counters Sample() {
  cg_counters c{};
  c.decisions[CG_VERDICT_ALLOW][CG_REASON_NONE] = 7;
  c.decisions[CG_VERDICT_DENY][CG_REASON_EXPIRED] = 1;
  c.decisions[CG_VERDICT_DENY][CG_REASON_NO_CERT] = 18446744073709551615ull;
  c.decisions[CG_VERDICT_DENY][CG_REASON_IDENTITY_MISMATCH] = 42;
  // Never shown: an allow has no reason, a refusal always has one.
  c.decisions[CG_VERDICT_ALLOW][CG_REASON_EXPIRED] = 5;
  c.decisions[CG_VERDICT_DENY][CG_REASON_NONE] = 6;
  c.handshake_refusals = 3;
  return c;
}

const char kSamplePage[] =
    "# HELP certgate_decisions_total Request decisions by verdict and reason.\n"
    "# TYPE certgate_decisions_total counter\n"
    "certgate_decisions_total{verdict=\"allow\",reason=\"none\"} 7\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"internal_error\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"no_cert\"} 18446744073709551615\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"malformed\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"chain_too_long\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"untrusted_issuer\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"chain_incomplete\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"bad_signature\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"invalid_ca\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"issuer_not_allowed\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"expired\"} 1\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"not_yet_valid\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"revoked\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"revocation_unavailable\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"revocation_stale\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"wrong_purpose\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"key_usage\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"weak_key\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"weak_signature\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"pin_mismatch\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"identity_mismatch\"} 42\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"chain_too_complex\"} 0\n"
    "certgate_decisions_total{verdict=\"deny\",reason=\"tls_handshake\"} 0\n"
    "# HELP certgate_handshake_refusals_total Handshakes aborted (certgate_reject_at "
    "handshake).\n"
    "# TYPE certgate_handshake_refusals_total counter\n"
    "certgate_handshake_refusals_total 3\n";

TEST(CountersTest, PageIsThePrometheusTextNginxServed) {
  const cg_counters c = Sample();
  EXPECT_EQ(Format(&c), kSamplePage);
  EXPECT_STREQ(CG_COUNTERS_CONTENT_TYPE, "text/plain; version=0.0.4");
}

TEST(CountersTest, OneLinePerReasonInTaxonomyOrder) {
  const cg_counters c{};
  const std::string page = Format(&c);
  size_t at = 0;
  for (int reason = 0; reason < CG_REASON_COUNT; ++reason) {
    const std::string line = std::string("{verdict=\"") +
                             (reason == CG_REASON_NONE ? "allow" : "deny") + "\",reason=\"" +
                             cg_reason_code(static_cast<cg_reason>(reason)) + "\"} 0\n";
    const size_t found = page.find(line, at);
    ASSERT_NE(found, std::string::npos) << line;
    at = found + line.size();
  }
}

TEST(CountersTest, NullCountersArePageOfZeros) {
  const cg_counters zero{};
  EXPECT_EQ(Format(nullptr), Format(&zero));
}

TEST(CountersTest, ShortBufferIsCutAndTerminatedLikeSnprintf) {
  const cg_counters c = Sample();
  const size_t full = cg_counters_format(&c, nullptr, 0);
  ASSERT_EQ(full, sizeof kSamplePage - 1);
  char small[40];
  EXPECT_EQ(cg_counters_format(&c, small, sizeof small), full);
  EXPECT_EQ(std::string(small), std::string(kSamplePage, sizeof small - 1));
  char exact[sizeof kSamplePage];
  EXPECT_EQ(cg_counters_format(&c, exact, full), full) << "one byte short of the NUL";
  EXPECT_EQ(std::string(exact), std::string(kSamplePage, full - 1));
  char one[1] = {'x'};
  EXPECT_EQ(cg_counters_format(&c, one, 1), full);
  EXPECT_EQ(one[0], '\0');
}

// One decision per client request, the same rule for every server: the first
// final judgement of the request itself; subrequests, the judgements after an
// internal redirect or error page, and pending decisions are not counted.
TEST(CountersTest, OneDecisionPerClientRequest) {
  cg_policy *policy = cg_policy_new();
  ASSERT_NE(policy, nullptr);
  const cg_str require{"require", 7};
  ASSERT_EQ(cg_policy_set(policy, "certgate", &require, 1, nullptr), CG_OK);
  cg_decision *no_cert = cg_evaluate(policy, nullptr, nullptr, nullptr, 0);
  ASSERT_NE(no_cert, nullptr);
  ASSERT_EQ(cg_decision_reason(no_cert), CG_REASON_NO_CERT);

  cg_counters shared{};
  EXPECT_EQ(cg_counters_add_decision(&shared, no_cert, /*subrequest=*/0, /*judged_before=*/0), 1);
  EXPECT_EQ(cg_counters_add_decision(&shared, no_cert, 0, /*judged_before=*/1), 0);
  EXPECT_EQ(cg_counters_add_decision(&shared, no_cert, /*subrequest=*/1, 0), 0);
  EXPECT_EQ(cg_counters_add_decision(&shared, no_cert, 1, 1), 0);
  EXPECT_EQ(shared.decisions[CG_VERDICT_DENY][CG_REASON_NO_CERT], 1u);
  // certgate could not decide: internal_error, once.
  EXPECT_EQ(cg_counters_add_decision(&shared, nullptr, 0, 0), 1);
  EXPECT_EQ(shared.decisions[CG_VERDICT_DENY][CG_REASON_INTERNAL_ERROR], 1u);
  EXPECT_EQ(cg_counters_add_decision(nullptr, no_cert, 0, 0), 0);
  cg_counters_add_handshake_refusal(&shared);
  cg_counters_add_handshake_refusal(nullptr);

  cg_counters snapshot;
  cg_counters_snapshot(&shared, &snapshot);
  EXPECT_EQ(Format(&snapshot), Format(&shared));
  EXPECT_EQ(snapshot.handshake_refusals, 1u);
  cg_counters_snapshot(nullptr, &snapshot);
  const cg_counters zero{};
  EXPECT_EQ(Format(&snapshot), Format(&zero));

  cg_decision_free(no_cert);
  cg_policy_free(policy);
}

// What a server does with a decision: the same rule for nginx and httpd.
TEST(OutcomeTest, OnlyTheClientsRequestIsCountedAndLoggedAloud) {
  cg_policy *policy = cg_policy_new();
  ASSERT_NE(policy, nullptr);
  const cg_str require{"require", 7};
  const cg_str status{"496", 3};
  ASSERT_EQ(cg_policy_set(policy, "certgate", &require, 1, nullptr), CG_OK);
  ASSERT_EQ(cg_policy_set(policy, "certgate_reject_status", &status, 1, nullptr), CG_OK);
  cg_decision *no_cert = cg_evaluate(policy, nullptr, nullptr, nullptr, 0);
  ASSERT_NE(no_cert, nullptr);

  const cg_outcome first = cg_outcome_of(policy, no_cert, 0, 0);
  EXPECT_EQ(first.status, 496);
  EXPECT_EQ(first.log, CG_LOG_REFUSAL);
  EXPECT_EQ(first.counted, 1);
  EXPECT_EQ(first.verdict, CG_VERDICT_DENY);
  EXPECT_EQ(first.reason, CG_REASON_NO_CERT);
  for (const auto &[sub, before] : {std::pair{1, 0}, std::pair{0, 1}, std::pair{1, 1}}) {
    const cg_outcome again = cg_outcome_of(policy, no_cert, sub, before);
    EXPECT_EQ(again.status, 496);  // refused all the same
    EXPECT_EQ(again.log, CG_LOG_DEBUG);
    EXPECT_EQ(again.counted, 0);
  }
  // Could not decide: a 500, counted as internal_error, never an allow.
  const cg_outcome unknown = cg_outcome_of(policy, nullptr, 0, 0);
  EXPECT_EQ(unknown.status, 500);
  EXPECT_EQ(unknown.reason, CG_REASON_INTERNAL_ERROR);
  EXPECT_EQ(unknown.counted, 1);

  cg_counters shared{};
  cg_counters_add(&shared, &first);
  cg_counters_add(&shared, &unknown);
  const cg_outcome repeat = cg_outcome_of(policy, no_cert, 0, 1);
  cg_counters_add(&shared, &repeat);
  cg_counters_add(nullptr, &first);
  EXPECT_EQ(shared.decisions[CG_VERDICT_DENY][CG_REASON_NO_CERT], 1u);
  EXPECT_EQ(shared.decisions[CG_VERDICT_DENY][CG_REASON_INTERNAL_ERROR], 1u);

  // An optional location lets the client in: nothing to answer, no line.
  const cg_str optional{"optional", 8};
  ASSERT_EQ(cg_policy_set(policy, "certgate", &optional, 1, nullptr), CG_OK);
  cg_decision *allowed = cg_evaluate(policy, nullptr, nullptr, nullptr, 0);
  ASSERT_EQ(cg_decision_verdict(allowed), CG_VERDICT_ALLOW);
  const cg_outcome in = cg_outcome_of(policy, allowed, 0, 0);
  EXPECT_EQ(in.status, 0);
  EXPECT_EQ(in.log, CG_LOG_NONE);
  EXPECT_EQ(in.counted, 1);
  EXPECT_EQ(cg_outcome_of(policy, allowed, 1, 0).log, CG_LOG_DEBUG);
  const cg_str accepts[] = {{"kv", 2}, {"accepts", 7}};
  ASSERT_EQ(cg_policy_set(policy, "certgate_log", accepts, 2, nullptr), CG_OK);
  EXPECT_EQ(cg_outcome_of(policy, allowed, 0, 0).log, CG_LOG_NOTICE);

  cg_decision_free(allowed);
  cg_decision_free(no_cert);
  cg_policy_free(policy);
}

// httpd merges per request; the merge is made once and is the same object
// after, so decisions kept by policy address stay one per section.
TEST(MergedPolicyTest, MadeOnceAndKeptInTheSection) {
  cg_policy *server = cg_policy_new();
  cg_policy *section = cg_policy_new();
  cg_policy *other = cg_policy_new();
  const cg_str require{"require", 7};
  const cg_str status{"495", 3};
  ASSERT_EQ(cg_policy_set(server, "certgate", &require, 1, nullptr), CG_OK);
  ASSERT_EQ(cg_policy_set(section, "CertGateRejectStatus", &status, 1, nullptr), CG_OK);

  cg_policy *const *merged = cg_policy_merged(server, section);
  ASSERT_NE(merged, nullptr);
  EXPECT_EQ(cg_policy_merged(server, section), merged);
  EXPECT_TRUE(cg_policy_enabled(*merged));                              // from the server
  EXPECT_EQ(cg_policy_reject_status(*merged, CG_REASON_NO_CERT), 495);  // the section's own
  EXPECT_FALSE(cg_policy_enabled(section));  // the section itself is unchanged
  cg_policy *const *over_other = cg_policy_merged(other, section);
  ASSERT_NE(over_other, nullptr);
  EXPECT_NE(*over_other, *merged);
  EXPECT_FALSE(cg_policy_enabled(*over_other));
  EXPECT_EQ(cg_policy_merged(nullptr, section), nullptr);

  cg_policy_free(other);
  cg_policy_free(section);
  cg_policy_free(server);
}

}  // namespace
