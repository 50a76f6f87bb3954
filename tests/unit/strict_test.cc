// certgate_strict: one named vector per strict check, judged strict on and off.
//
// Each vector is a chain OpenSSL 3.0's X509_verify_cert accepts (the "lenient"
// assertion below proves it) but RFC 5280 forbids. Under the default it must be
// refused with the check's reason; under `certgate_strict off` it is allowed
// and the decision warns strict_off:<check>.
#include <certgate/evaluator.h>
#include <certgate/strict_checks.h>
#include <chain_evidence_for.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pki_builder.h>
#include <strict_vectors.h>

#include <functional>

namespace certgate {
namespace {

using pki::CertSpec;
using pki::Issued;
using pki::KeySpec;
using pki::PkiBuilder;
using pki::StrictChain;
using pki::StrictVector;
using pki::StrictVectors;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1800000000;

class StrictTest : public ::testing::TestWithParam<StrictVector> {
 protected:
  Decision Judge(const StrictChain &chain, bool strict) {
    Policy policy;
    EXPECT_TRUE(policy.Set("certgate", {"require"}).ok());
    EXPECT_TRUE(policy.Set("strict", {strict ? "on" : "off"}).ok());
    for (const auto &[key, args] : GetParam().lenient_keys) {
      const Status status = policy.Set(key, args);
      EXPECT_TRUE(status.ok()) << status.message();
    }
    evidence_ = pki::EvidenceFor(chain.leaf, chain.sent, chain.anchors, kNow);
    return Evaluate(policy, &evidence_, FixedClock(kNow));
  }

  ChainEvidence evidence_;
};

TEST_P(StrictTest, RefusedUnderStrictAndWarnedOfWhenOff) {
  const StrictVector &vector = GetParam();
  PkiBuilder pki(kNow);
  const StrictChain chain = vector.build(pki);
  ASSERT_TRUE(chain.leaf) << pki.last_error();

  const StrictCheck &check = StrictCheckNamed(vector.check);
  const Decision strict = Judge(chain, true);
  // OpenSSL itself found nothing wrong: the check is what refuses.
  EXPECT_TRUE(evidence_.anchored);
  EXPECT_TRUE(evidence_.errors.empty()) << evidence_.errors.front().code;
  EXPECT_EQ(strict.verdict(), CG_VERDICT_DENY);
  const auto found =
      std::find_if(strict.findings().begin(), strict.findings().end(), [&](const Finding &finding) {
        return finding.reason == check.reason && !finding.hint.empty() &&
               finding.detail.find("'CN=") != std::string::npos;
      });
  EXPECT_NE(found, strict.findings().end()) << "reported: " << strict.detail();
  EXPECT_EQ(strict.reason(), check.reason) << strict.detail();

  const Decision off = Judge(chain, false);
  EXPECT_EQ(off.verdict(), CG_VERDICT_ALLOW) << Info(off.reason()).code << ": " << off.detail();
  EXPECT_THAT(off.warning(), HasSubstr("strict_off:"));
  EXPECT_THAT(off.warning(), HasSubstr(vector.check));
  EXPECT_THAT(off.detail(), HasSubstr("accepted because certgate_strict is off"));
}

std::string VectorName(const ::testing::TestParamInfo<StrictVector> &info) {
  return std::string(info.param.check) + "_" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(EveryCheck, StrictTest, ::testing::ValuesIn(StrictVectors()), VectorName);

TEST(StrictChecksTest, EveryChainCheckHasAVector) {
  for (const StrictCheck &check : StrictChecks()) {
    // CRL checks: revocation_strict_test.cc; name constraints: name_constraints_test.cc.
    if (check.reason == CG_REASON_REVOCATION_UNAVAILABLE || check.name.substr(0, 3) == "nc_") {
      continue;
    }
    const bool covered = std::any_of(StrictVectors().begin(), StrictVectors().end(),
                                     [&](const StrictVector &v) { return check.name == v.check; });
    EXPECT_TRUE(covered) << check.name;
  }
}

TEST(StrictChecksTest, EveryNameIsInTheTableOnce) {
  for (const StrictCheck &check : StrictChecks()) {
    EXPECT_EQ(&StrictCheckNamed(check.name), &check) << check.name;
  }
  EXPECT_EQ(StrictCheckNamed("no_such_check").reason, CG_REASON_MALFORMED);
}

TEST(StrictChecksTest, AGoodChainHasNoDefect) {
  PkiBuilder pki(kNow);
  const Issued root = pki.SelfSigned(PkiBuilder::CaSpec("CN=Good Root"));
  const Issued ca = pki.Issue(root, PkiBuilder::CaSpec("CN=Good CA"));
  const StrictChain chain{pki.Issue(ca, PkiBuilder::LeafSpec("CN=good")), {ca}, {root}};
  const ChainEvidence evidence = pki::EvidenceFor(chain.leaf, chain.sent, chain.anchors, kNow);
  EXPECT_TRUE(evidence.strict_defects.empty()) << evidence.strict_defects.front().check->name;
}

}  // namespace
}  // namespace certgate
