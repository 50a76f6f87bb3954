// Name constraints (issue 15): what OpenSSL 3.0 lets pass or words wrongly.
// One named vector per case, judged under certgate_strict on and off.
#include "name_constraints.h"

#include <certgate/evaluator.h>
#include <chain_evidence_for.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pki_builder.h>

#include <chrono>
#include <string>
#include <vector>

namespace certgate {
namespace {

using pki::CertSpec;
using pki::Issued;
using pki::PkiBuilder;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kNow = 1800000000;
constexpr const char *kCa = "the CA 'CN=Constrained CA,O=Example' at depth 1";

class NameConstraintsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new PkiBuilder(kNow);
    root_ = new Issued(pki_->SelfSigned(PkiBuilder::CaSpec("CN=NC Root,O=Example")));
  }

  // The CA with `constraints` (OpenSSL config syntax; empty: none).
  static Issued ConstrainedCa(const std::string &constraints,
                              const std::string &subject = "CN=Constrained CA,O=Example") {
    CertSpec spec = PkiBuilder::CaSpec(subject);
    if (!constraints.empty()) spec.extra_extensions = {{"nameConstraints", constraints}};
    Issued ca = pki_->Issue(*root_, spec);
    EXPECT_TRUE(ca) << pki_->last_error();
    return ca;
  }

  static Issued Leaf(const Issued &ca, std::vector<std::string> san,
                     const std::string &subject = "CN=alice,O=Example") {
    CertSpec spec = PkiBuilder::LeafSpec(subject);
    spec.san = std::move(san);
    Issued leaf = pki_->Issue(ca, spec);
    EXPECT_TRUE(leaf) << pki_->last_error();
    return leaf;
  }

  static ChainEvidence Evidence(const Issued &leaf, const std::vector<Issued> &sent) {
    return pki::EvidenceFor(leaf, sent, {*root_}, kNow);
  }

  static Decision Judge(const ChainEvidence &evidence, bool strict) {
    Policy policy;
    EXPECT_TRUE(policy.Set("certgate", {"require"}).ok());
    EXPECT_TRUE(policy.Set("certgate_strict", {strict ? "on" : "off"}).ok());
    return Evaluate(policy, &evidence, FixedClock(kNow));
  }

  static PkiBuilder *pki_;
  static Issued *root_;
};

PkiBuilder *NameConstraintsTest::pki_;
Issued *NameConstraintsTest::root_;

struct Vector {
  const char *name;
  std::string constraints;  // the issuing CA's nameConstraints
  std::vector<std::string> san;
  Reason strict_on;
  Reason strict_off;
  std::string detail;   // in the strict-on detail (empty: not checked)
  std::string warning;  // the strict-off warning when allowed ("" none)
};

void PrintTo(const Vector &vector, std::ostream *out) { *out << vector.name; }

// DER of a nameConstraints as hex for OpenSSL's "DER:" syntax.
const std::string kEmptySequence = "critical,DER:30:00";
const std::string kEmptyPermitted = "critical,DER:30:02:a0:00";
const std::string kBothEmpty = "critical,DER:30:04:a0:00:a1:00";
// permitted DNS:example.com, excluded an empty list.
const std::string kExcludedEmpty =
    "critical,DER:30:13:a0:0f:30:0d:82:0b:65:78:61:6d:70:6c:65:2e:63:6f:6d:a1:00";

const Vector kVectors[] = {
    // Email names under email subtrees (issue 15 §1).
    {"email_good",
     "critical,permitted;email:example.com",
     {"email:alice@example.com"},
     CG_REASON_NONE,
     CG_REASON_NONE,
     "",
     ""},
    {"email_empty_local_part",
     "critical,permitted;email:example.com",
     {"email:@example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     std::string("has email:@example.com, which is not a mailbox (local-part@domain, RFC 5280 "
                 "section 4.2.1.6), under the email name constraints of ") +
         kCa,
     "strict_off:nc_invalid_email_san"},
    {"email_two_ats",
     "critical,permitted;email:example.com",
     {"email:a@b@example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "has email:a@b@example.com, which is not a mailbox",
     "strict_off:nc_invalid_email_san"},
    {"email_double_at_excluded",
     "critical,excluded;email:evil.example",
     {"email:a@@b"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "has email:a@@b",
     "strict_off:nc_invalid_email_san"},
    // No '@' at all: OpenSSL refuses it itself (unsupported name syntax).
    {"email_no_at",
     "critical,excluded;email:evil.example",
     {"email:not-an-email"},
     CG_REASON_MALFORMED,
     CG_REASON_INVALID_CA,
     "has email:not-an-email",
     ""},
    {"email_several_bad",
     "critical,permitted;email:example.com",
     {"email:@example.com", "email:x@@example.com", "email:ok@example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "(and 1 more such names)",
     "strict_off:nc_invalid_email_san"},
    {"email_quoted_local_part",
     "critical,permitted;email:example.com",
     {"email:\"a b\"@example.com"},
     CG_REASON_NONE,
     CG_REASON_NONE,
     "",
     ""},
    // Only when a subtree of the type applies, as Go does: legacy certificates stay accepted.
    {"email_unconstrained", "", {"email:not-an-email"}, CG_REASON_NONE, CG_REASON_NONE, "", ""},
    {"email_under_dns_only",
     "critical,permitted;DNS:example.com",
     {"email:@@", "DNS:a.example.com"},
     CG_REASON_NONE,
     CG_REASON_NONE,
     "",
     ""},

    // DNS names under DNS subtrees (§2).
    {"dns_good",
     "critical,permitted;DNS:example.com",
     {"DNS:alice.example.com"},
     CG_REASON_NONE,
     CG_REASON_NONE,
     "",
     ""},
    {"dns_wildcard_good",
     "critical,permitted;DNS:example.com",
     {"DNS:*.example.com"},
     CG_REASON_NONE,
     CG_REASON_NONE,
     "",
     ""},
    {"dns_space",
     "critical,permitted;DNS:example.com",
     {"DNS:exa mple.example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     std::string("has DNS:exa mple.example.com, which is not a hostname"),
     "strict_off:nc_invalid_dns_san"},
    {"dns_empty_label",
     "critical,permitted;DNS:example.com",
     {"DNS:-a..b.example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "has DNS:-a..b.example.com",
     "strict_off:nc_invalid_dns_san"},
    // A trailing dot slips past an excluded subtree in OpenSSL's text comparison.
    {"dns_trailing_dot_excluded",
     "critical,excluded;DNS:evil.example",
     {"DNS:x.evil.example."},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "has DNS:x.evil.example.",
     "strict_off:nc_invalid_dns_san"},
    {"dns_partial_wildcard",
     "critical,permitted;DNS:example.com",
     {"DNS:f*o.example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "has DNS:f*o.example.com",
     "strict_off:nc_invalid_dns_san"},
    {"dns_inner_wildcard",
     "critical,permitted;DNS:example.com",
     {"DNS:a.*.example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "has DNS:a.*.example.com",
     "strict_off:nc_invalid_dns_san"},
    {"dns_unconstrained", "", {"DNS:exa mple.com"}, CG_REASON_NONE, CG_REASON_NONE, "", ""},
    {"dns_under_email_only",
     "critical,permitted;email:example.com",
     {"DNS:exa mple.com", "email:a@example.com"},
     CG_REASON_NONE,
     CG_REASON_NONE,
     "",
     ""},

    // nameConstraints without subtrees (§3).
    {"nc_empty_sequence",
     kEmptySequence,
     {"DNS:alice.example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "has a nameConstraints with neither permittedSubtrees nor excludedSubtrees",
     "strict_off:nc_empty"},
    {"nc_empty_permitted",
     kEmptyPermitted,
     {"DNS:alice.example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "has a nameConstraints with an empty list of subtrees",
     "strict_off:nc_empty"},
    {"nc_both_empty",
     kBothEmpty,
     {"DNS:alice.example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "has a nameConstraints with an empty list of subtrees",
     "strict_off:nc_empty"},
    {"nc_excluded_empty",
     kExcludedEmpty,
     {"DNS:alice.example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "an empty list of subtrees",
     "strict_off:nc_empty"},

    // A wildcard against an excluded subtree (§4): a violation, whatever strict says.
    {"wildcard_covers_excluded",
     "critical,permitted;DNS:example.com,excluded;DNS:foo.example.com",
     {"DNS:*.example.com"},
     CG_REASON_INVALID_CA,
     CG_REASON_INVALID_CA,
     std::string("has DNS:*.example.com, a wildcard that stands for foo.example.com, inside the "
                 "excluded DNS subtree foo.example.com of ") +
         kCa,
     ""},
    {"wildcard_covers_excluded_case",
     "critical,excluded;DNS:Foo.Example.com",
     {"DNS:*.EXAMPLE.COM"},
     CG_REASON_INVALID_CA,
     CG_REASON_INVALID_CA,
     "a wildcard that stands for",
     ""},
    // A partial wildcard is malformed under strict, and still a violation under off.
    {"partial_wildcard_covers_excluded",
     "critical,excluded;DNS:foo.example.com",
     {"DNS:f*.example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_INVALID_CA,
     "has DNS:f*.example.com",
     ""},
    {"wildcard_other_domain",
     "critical,excluded;DNS:foo.example.com",
     {"DNS:*.other.example.com"},
     CG_REASON_NONE,
     CG_REASON_NONE,
     "",
     ""},
    {"wildcard_two_labels_short",
     "critical,excluded;DNS:a.b.example.com",
     {"DNS:*.example.com"},
     CG_REASON_NONE,
     CG_REASON_NONE,
     "",
     ""},
    {"wildcard_partial_no_match",
     "critical,excluded;DNS:foo.example.com",
     {"DNS:b*.example.com"},
     CG_REASON_MALFORMED,
     CG_REASON_NONE,
     "has DNS:b*.example.com",
     "strict_off:nc_invalid_dns_san"},
    // OpenSSL already matches a wildcard under an excluded domain.
    {"wildcard_under_excluded_domain",
     "critical,excluded;DNS:example.com",
     {"DNS:*.example.com"},
     CG_REASON_INVALID_CA,
     CG_REASON_INVALID_CA,
     std::string("has DNS:*.example.com, inside the excluded DNS subtree example.com of ") + kCa,
     ""},

    // OpenSSL's violations, worded for a leaf (§5).
    {"permitted_email_violation",
     "critical,permitted;email:example.com",
     {"email:bob@evil.example"},
     CG_REASON_INVALID_CA,
     CG_REASON_INVALID_CA,
     std::string("the client certificate 'CN=alice,O=Example' has email:bob@evil.example, outside "
                 "the permitted email subtree (example.com) of ") +
         kCa,
     ""},
    {"permitted_two_subtrees",
     "critical,permitted;email:example.com,permitted;email:.example.org",
     {"email:alice@example.com", "email:bob@evil.example"},
     CG_REASON_INVALID_CA,
     CG_REASON_INVALID_CA,
     "has email:bob@evil.example, outside the permitted email subtrees (example.com, .example.org)",
     ""},
    {"excluded_dns_violation",
     "critical,excluded;DNS:evil.example,excluded;DNS:secret.example.com",
     {"DNS:alice.example.com", "DNS:db.secret.example.com"},
     CG_REASON_INVALID_CA,
     CG_REASON_INVALID_CA,
     std::string("has DNS:db.secret.example.com, inside the excluded DNS subtree "
                 "secret.example.com of ") +
         kCa,
     ""},
    {"permitted_ip_violation",
     "critical,permitted;IP:10.0.0.0/255.0.0.0",
     {"IP:192.0.2.1"},
     CG_REASON_INVALID_CA,
     CG_REASON_INVALID_CA,
     "has IP:192.0.2.1, outside the permitted IP subtree (10.0.0.0/255.0.0.0)",
     ""},
    {"permitted_uri_violation",
     "critical,permitted;URI:.example.com",
     {"URI:spiffe://evil.example/alice"},
     CG_REASON_INVALID_CA,
     CG_REASON_INVALID_CA,
     "has URI:spiffe://evil.example/alice, outside the permitted URI subtree (.example.com)",
     ""},
};

class NameConstraintVectors : public NameConstraintsTest,
                              public ::testing::WithParamInterface<Vector> {};

TEST_P(NameConstraintVectors, VerdictAndReasonUnderStrictOnAndOff) {
  const Vector &v = GetParam();
  const Issued ca = ConstrainedCa(v.constraints);
  const Issued leaf = Leaf(ca, v.san);
  ASSERT_TRUE(ca && leaf);
  const ChainEvidence evidence = Evidence(leaf, {ca});

  const Decision on = Judge(evidence, true);
  EXPECT_EQ(Info(on.reason()).code, Info(v.strict_on).code) << on.detail();
  EXPECT_EQ(on.verdict(), v.strict_on == CG_REASON_NONE ? CG_VERDICT_ALLOW : CG_VERDICT_DENY);
  if (!v.detail.empty()) EXPECT_THAT(on.detail(), HasSubstr(v.detail));
  if (v.strict_on != CG_REASON_NONE) {
    EXPECT_FALSE(on.hint().empty());
    EXPECT_THAT(on.detail(), Not(HasSubstr("cannot issue certificates")));
  }

  const Decision off = Judge(evidence, false);
  EXPECT_EQ(Info(off.reason()).code, Info(v.strict_off).code) << off.detail();
  EXPECT_EQ(off.verdict(), v.strict_off == CG_REASON_NONE ? CG_VERDICT_ALLOW : CG_VERDICT_DENY);
  if (v.strict_off == CG_REASON_NONE) EXPECT_EQ(off.warning(), v.warning);
}

INSTANTIATE_TEST_SUITE_P(Issue15, NameConstraintVectors, ::testing::ValuesIn(kVectors),
                         [](const ::testing::TestParamInfo<Vector> &info) {
                           return std::string(info.param.name);
                         });

TEST_F(NameConstraintsTest, SubjectEmailAddressIsAnEmailName) {
  const Issued ca = ConstrainedCa("critical,permitted;email:example.com");
  const Decision bad =
      Judge(Evidence(Leaf(ca, {}, "CN=alice,emailAddress=bob@evil.example"), {ca}), true);
  EXPECT_EQ(bad.reason(), CG_REASON_INVALID_CA);
  EXPECT_THAT(bad.detail(), HasSubstr("has an emailAddress in its subject, outside the permitted "
                                      "email subtree (example.com)"));
  const Decision malformed =
      Judge(Evidence(Leaf(ca, {}, "CN=alice,emailAddress=@example.com"), {ca}), true);
  EXPECT_EQ(malformed.reason(), CG_REASON_MALFORMED) << malformed.detail();
  EXPECT_THAT(malformed.detail(), HasSubstr("emailAddress=@example.com in its subject"));
}

TEST_F(NameConstraintsTest, CommonNameReadAsDnsNameIsNamed) {
  const Issued ca = ConstrainedCa("critical,permitted;DNS:example.com");
  const Decision decision = Judge(
      Evidence(Leaf(ca, {"email:a@example.com"}, "CN=host.evil.example,O=Example"), {ca}), true);
  EXPECT_EQ(decision.reason(), CG_REASON_INVALID_CA);
  EXPECT_THAT(decision.detail(), HasSubstr("has a commonName that reads as a DNS name"));
  EXPECT_THAT(decision.detail(), HasSubstr("outside the permitted DNS subtree (example.com)"));
}

TEST_F(NameConstraintsTest, TwoConstrainingCasAreNamedOnce) {
  // root -> outer (permitted DNS:example.com) -> inner (permitted DNS:a.example.com) -> leaf
  CertSpec outer_spec = PkiBuilder::CaSpec("CN=Outer CA,O=Example");
  outer_spec.extra_extensions = {{"nameConstraints", "critical,permitted;DNS:example.com"}};
  const Issued outer = pki_->Issue(*root_, outer_spec);
  CertSpec inner_spec = PkiBuilder::CaSpec("CN=Inner CA,O=Example");
  inner_spec.extra_extensions = {{"nameConstraints", "critical,permitted;DNS:a.example.com"}};
  const Issued inner = pki_->Issue(outer, inner_spec);
  const Decision decision =
      Judge(Evidence(Leaf(inner, {"DNS:x.evil.example"}), {inner, outer}), true);
  EXPECT_EQ(decision.reason(), CG_REASON_INVALID_CA);
  // OpenSSL checks from the top down: the outer CA is named.
  EXPECT_THAT(decision.detail(), HasSubstr("of the CA 'CN=Outer CA,O=Example' at depth 2"));
  int at_leaf = 0;
  for (const Finding &finding : decision.findings()) at_leaf += finding.depth == 0;
  EXPECT_EQ(at_leaf, 1);
}

// 1024 names x 1100 subtrees: past OpenSSL's bound, which answers
// X509_V_ERR_UNSPECIFIED (internal_error, HTTP 500, before).
TEST_F(NameConstraintsTest, PathologicalChainIsTooComplexQuickly) {
  std::string constraints = "critical,permitted;DNS:example.com";
  for (int i = 0; i < 1099; ++i)
    constraints += ",excluded;DNS:x" + std::to_string(i) + ".example.com";
  const Issued ca = ConstrainedCa(constraints);
  std::vector<std::string> many, fewer;
  for (int i = 0; i < 1024; ++i) many.push_back("DNS:n" + std::to_string(i) + ".example.com");
  fewer.assign(many.begin(), many.begin() + 100);
  const Issued hostile = Leaf(ca, many);
  const Issued busy = Leaf(ca, fewer);
  ASSERT_TRUE(ca && hostile && busy);

  for (bool strict : {true, false}) {
    const auto start = std::chrono::steady_clock::now();
    const Decision decision = Judge(Evidence(hostile, {ca}), strict);
    const auto elapsed = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(decision.reason(), CG_REASON_CHAIN_TOO_COMPLEX) << decision.detail();
    EXPECT_EQ(decision.verdict(), CG_VERDICT_DENY);
    EXPECT_EQ(Info(decision.reason()).http_status, 403);
    EXPECT_EQ(Info(decision.reason()).substatus, "403.16");
    EXPECT_THAT(decision.detail(),
                HasSubstr("has 1026 names and " + std::string(kCa) +
                          " has 1100 name constraints: 1128600 comparisons, more than the "
                          "1048576"));
    for (const Finding &finding : decision.findings()) {
      EXPECT_NE(finding.reason, CG_REASON_INTERNAL_ERROR) << finding.detail;
    }
    EXPECT_LT(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count(), 1000);
  }
  // Within the bound, the chain is checked and allowed.
  const Decision within = Judge(Evidence(busy, {ca}), true);
  EXPECT_EQ(within.reason(), CG_REASON_NONE) << within.detail();
}

// certgate's own comparisons (wildcards x excluded subtrees) have a budget for
// the whole chain, though each pair stays within OpenSSL's bound.
TEST_F(NameConstraintsTest, WildcardComparisonsPastTheChainBudgetAreTooComplex) {
  auto excluded = [](const std::string &prefix) {
    std::string constraints = "critical";
    for (int i = 0; i < 700; ++i)
      constraints += ",excluded;DNS:" + prefix + std::to_string(i) + ".test";
    return constraints;
  };
  CertSpec outer_spec = PkiBuilder::CaSpec("CN=Outer CA,O=Example");
  outer_spec.extra_extensions = {{"nameConstraints", excluded("o")}};
  const Issued outer = pki_->Issue(*root_, outer_spec);
  CertSpec inner_spec = PkiBuilder::CaSpec("CN=Inner CA,O=Example");
  inner_spec.extra_extensions = {{"nameConstraints", excluded("i")}};
  const Issued inner = pki_->Issue(outer, inner_spec);
  std::vector<std::string> wildcards;
  for (int i = 0; i < 1000; ++i)
    wildcards.push_back("DNS:*.w" + std::to_string(i) + ".example.com");
  const Issued leaf = Leaf(inner, wildcards);
  ASSERT_TRUE(outer && inner && leaf);
  const Decision decision = Judge(Evidence(leaf, {inner, outer}), true);
  EXPECT_EQ(decision.reason(), CG_REASON_CHAIN_TOO_COMPLEX) << decision.detail();
  EXPECT_THAT(decision.detail(), HasSubstr("more wildcard DNS names than certgate compares"));
}

// Thousands of malformed names: one defect per certificate, found in linear time.
TEST_F(NameConstraintsTest, ManyInvalidNamesAreOneDefect) {
  const Issued ca = ConstrainedCa("critical,excluded;email:evil.example,excluded;DNS:evil.example");
  std::vector<std::string> names;
  for (int i = 0; i < 2000; ++i) {
    names.push_back("email:@" + std::to_string(i) + ".example.com");
    names.push_back("DNS:-" + std::to_string(i) + ".example.com");
  }
  const ChainEvidence evidence = Evidence(Leaf(ca, names), {ca});
  ASSERT_EQ(evidence.strict_defects.size(), 2u);
  EXPECT_THAT(evidence.strict_defects[0].fact, HasSubstr("(and 1999 more such names)"));
  EXPECT_EQ(Judge(evidence, true).reason(), CG_REASON_MALFORMED);
}

TEST(NameSyntaxTest, Mailboxes) {
  for (const char *good : {"a@example.com", "a.b+c@example.com", "\"a b\"@example.com",
                           "\"a\\\"b\"@example.com", "x@xn--bcher-kva.example", "_@a-b.c_d"}) {
    EXPECT_TRUE(IsMailbox(good)) << good;
  }
  for (const char *bad :
       {"not-an-email", "@example.com", "a@@b", "a@b@example.com", "a@", ".a@example.com",
        "a.@example.com", "a..b@example.com", "a b@example.com", "a@exa mple.com", "a@example.com.",
        "a@[192.0.2.1]", "\"\"@example.com", "\"a@example.com", "a@*.example.com"}) {
    EXPECT_FALSE(IsMailbox(bad)) << bad;
  }
  EXPECT_FALSE(IsMailbox(std::string(65, 'a') + "@example.com"));
  EXPECT_TRUE(IsMailbox(std::string(64, 'a') + "@example.com"));
}

TEST(NameSyntaxTest, Hostnames) {
  for (const char *good : {"example.com", "a-b.example.com", "localhost", "xn--bcher-kva.example",
                           "_service.example.com", "EXAMPLE.COM"}) {
    EXPECT_TRUE(IsHostname(good, false)) << good;
    EXPECT_TRUE(IsHostname(good, true)) << good;
  }
  for (const char *bad :
       {"", ".", "exa mple.com", "-a.example.com", "a-.example.com", "a..b.example.com",
        ".example.com", "example.com.", "a/b.example.com", "caf\xc3\xa9.example"}) {
    EXPECT_FALSE(IsHostname(bad, true)) << bad;
  }
  EXPECT_TRUE(IsHostname("*.example.com", true));
  EXPECT_FALSE(IsHostname("*.example.com", false));
  for (const char *bad :
       {"*", "f*o.example.com", "*foo.example.com", "a.*.example.com", "**.a.b"}) {
    EXPECT_FALSE(IsHostname(bad, true)) << bad;
  }
  EXPECT_TRUE(IsHostname(std::string(63, 'a') + ".example", false));
  EXPECT_FALSE(IsHostname(std::string(64, 'a') + ".example", false));
  std::string long_name;
  while (long_name.size() < 254) long_name += "abcdefghi.";
  long_name.resize(254);
  if (long_name.back() == '.') long_name.back() = 'x';
  EXPECT_FALSE(IsHostname(long_name, false));
}

}  // namespace
}  // namespace certgate
