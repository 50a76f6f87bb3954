// cg_counters_format: the certgate_status page, the same bytes for nginx and
// httpd (the expected text is what nginx's own formatting wrote before it moved
// into the core).
#include <certgate/certgate.h>
#include <gtest/gtest.h>

#include <string>
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

}  // namespace
