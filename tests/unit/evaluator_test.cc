// Every reason has a case that produces it and a near miss that does not.
#include <certgate/evaluator.h>
#include <chain_evidence_for.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <pki_builder.h>

#include <algorithm>
#include <cstdio>
#include <functional>

#include "cert_fields.h"

namespace certgate {
namespace {

using pki::CertSpec;
using pki::Issued;
using pki::KeySpec;
using pki::PkiBuilder;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kNow = 1800000000;  // 2027-01-15T08:00:00Z
constexpr int64_t kDay = 86400;

// Test Config: "Test Root" (trusted) -> "Test Issuing CA" -> leaves; "Other Root"
// (trusted) -> "Other Issuing CA"; "Rogue Root" (not trusted).
class EvaluatorTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new PkiBuilder(kNow);
    root_ = new Issued(pki_->SelfSigned(PkiBuilder::CaSpec("CN=Test Root,O=Example")));
    issuing_ = new Issued(pki_->Issue(*root_, PkiBuilder::CaSpec("CN=Test Issuing CA,O=Example")));
    other_root_ = new Issued(pki_->SelfSigned(PkiBuilder::CaSpec("CN=Other Root,O=Example")));
    other_issuing_ =
        new Issued(pki_->Issue(*other_root_, PkiBuilder::CaSpec("CN=Other Issuing CA,O=Example")));
  }

  static CertSpec Alice() {
    CertSpec spec = PkiBuilder::LeafSpec("CN=alice,OU=People,O=Example");
    spec.san = {"email:alice@example.com", "URI:spiffe://prod/alice", "DNS:alice.example.com"};
    spec.ca_issuer_urls = {"http://pki.example/issuing.crt"};
    return spec;
  }

  static CertSpec With(std::function<void(CertSpec &)> change) {
    CertSpec spec = Alice();
    change(spec);
    return spec;
  }

  void SetUp() override { ASSERT_TRUE(policy_.Set("certgate", {"require"}).ok()); }

  void Set(const std::string &key, const std::vector<std::string> &args) {
    const Status status = policy_.Set(key, args);
    ASSERT_TRUE(status.ok()) << status.message();
  }

  // Judges `leaf` sent with `sent` against trust anchors `anchors` (default: both
  // trusted roots).
  Decision Judge(const Issued &leaf, const std::vector<Issued> &sent,
                 std::vector<Issued> anchors = {}) {
    if (anchors.empty()) anchors = {*root_, *other_root_};
    const ChainEvidence evidence = pki::EvidenceFor(leaf, sent, anchors, kNow);
    return Evaluate(policy_, &evidence, FixedClock(kNow));
  }

  Decision JudgeIssued(const CertSpec &spec) {
    return Judge(pki_->Issue(*issuing_, spec), {*issuing_});
  }

  static PkiBuilder *pki_;
  static Issued *root_, *issuing_, *other_root_, *other_issuing_;
  Policy policy_;
};

PkiBuilder *EvaluatorTest::pki_;
Issued *EvaluatorTest::root_;
Issued *EvaluatorTest::issuing_;
Issued *EvaluatorTest::other_root_;
Issued *EvaluatorTest::other_issuing_;

#define EXPECT_REASON(decision, expected)                                                       \
  do {                                                                                          \
    const Decision &d_ = (decision);                                                            \
    EXPECT_EQ(Info(d_.reason()).code, Info(expected).code) << "detail: " << d_.detail();        \
    EXPECT_EQ(d_.verdict(), (expected) == CG_REASON_NONE ? CG_VERDICT_ALLOW : CG_VERDICT_DENY); \
  } while (0)

TEST_F(EvaluatorTest, AllowsAGoodChain) {
  const Decision decision = JudgeIssued(Alice());
  EXPECT_REASON(decision, CG_REASON_NONE);
  EXPECT_EQ(decision.Field(CG_FIELD_SUBJECT), "CN=alice,OU=People,O=Example");
  EXPECT_EQ(decision.Field(CG_FIELD_ISSUER), "CN=Test Issuing CA,O=Example");
  EXPECT_THAT(decision.Field(CG_FIELD_FINGERPRINT), HasSubstr("sha256:"));
  EXPECT_FALSE(decision.expiry_warning());
}

TEST_F(EvaluatorTest, NoCertificateIsRefusedWhenRequired) {
  const Decision decision = Evaluate(policy_, nullptr, FixedClock(kNow));
  EXPECT_REASON(decision, CG_REASON_NO_CERT);
  EXPECT_EQ(Info(decision.reason()).substatus, "403.7");
}

TEST_F(EvaluatorTest, NoCertificateIsAllowedWhenOptional) {
  Set("certgate", {"optional"});
  EXPECT_REASON(Evaluate(policy_, nullptr, FixedClock(kNow)), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, OptionalStillRefusesABadCertificate) {
  Set("certgate", {"optional"});
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) { s.not_after = kNow - kDay; })),
                CG_REASON_EXPIRED);
}

TEST_F(EvaluatorTest, InvalidExtensionIsMalformed) {
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) { s.invalid_extension = true; })),
                CG_REASON_MALFORMED);
}

TEST_F(EvaluatorTest, SelfSignedLeafIsUntrustedIssuer) {
  const Decision decision = Judge(pki_->SelfSigned(Alice()), {});
  EXPECT_REASON(decision, CG_REASON_UNTRUSTED_ISSUER);
  EXPECT_EQ(decision.depth(), 0);
  EXPECT_THAT(decision.detail(), HasSubstr("is self-signed and not trusted"));
}

TEST_F(EvaluatorTest, ChainToUnknownRootIsUntrustedIssuer) {
  const Issued rogue = pki_->SelfSigned(PkiBuilder::CaSpec("CN=Rogue Root"));
  const Decision decision = Judge(pki_->Issue(rogue, Alice()), {rogue});
  EXPECT_REASON(decision, CG_REASON_UNTRUSTED_ISSUER);
  EXPECT_EQ(decision.depth(), 1);
  EXPECT_THAT(decision.detail(), HasSubstr("'CN=Rogue Root'"));
}

TEST_F(EvaluatorTest, UnknownRootIsAcceptedOnceTrusted) {
  const Issued rogue = pki_->SelfSigned(PkiBuilder::CaSpec("CN=Rogue Root"));
  EXPECT_REASON(Judge(pki_->Issue(rogue, Alice()), {}, {rogue}), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, MissingIntermediateIsChainIncompleteAndNamed) {
  const Decision decision = Judge(pki_->Issue(*issuing_, Alice()), {});
  EXPECT_REASON(decision, CG_REASON_CHAIN_INCOMPLETE);
  EXPECT_EQ(decision.depth(), 0);
  EXPECT_THAT(decision.detail(), HasSubstr("'CN=Test Issuing CA,O=Example'"));
  EXPECT_THAT(decision.detail(), HasSubstr("http://pki.example/issuing.crt"));
}

TEST_F(EvaluatorTest, IntermediateKnownLocallyCompletesTheChain) {
  EXPECT_REASON(Judge(pki_->Issue(*issuing_, Alice()), {}, {*root_, *issuing_}), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, CorruptSignatureIsBadSignature) {
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) { s.corrupt_signature = true; })),
                CG_REASON_BAD_SIGNATURE);
}

TEST_F(EvaluatorTest, LeafAsIssuerIsInvalidCa) {
  const Issued not_ca = pki_->Issue(*issuing_, PkiBuilder::LeafSpec("CN=not a ca"));
  const Decision decision = Judge(pki_->Issue(not_ca, Alice()), {not_ca, *issuing_});
  EXPECT_REASON(decision, CG_REASON_INVALID_CA);
  EXPECT_EQ(decision.depth(), 1);
}

TEST_F(EvaluatorTest, PathLengthExceededIsInvalidCa) {
  CertSpec limited = PkiBuilder::CaSpec("CN=Limited CA");
  limited.path_len = 0;
  const Issued limited_ca = pki_->Issue(*root_, limited);
  const Issued sub = pki_->Issue(limited_ca, PkiBuilder::CaSpec("CN=Sub CA"));
  EXPECT_REASON(Judge(pki_->Issue(sub, Alice()), {sub, limited_ca}), CG_REASON_INVALID_CA);
}

TEST_F(EvaluatorTest, ChainDeeperThanMaxDepthIsTooLong) {
  Issued parent = *issuing_;
  std::vector<Issued> sent = {*issuing_};
  for (int i = 0; i < 5; ++i) {
    parent = pki_->Issue(parent, PkiBuilder::CaSpec("CN=Sub CA " + std::to_string(i)));
    sent.insert(sent.begin(), parent);
  }
  const Issued leaf = pki_->Issue(parent, Alice());
  const Decision decision = Judge(leaf, sent);
  EXPECT_REASON(decision, CG_REASON_CHAIN_TOO_LONG);
  EXPECT_EQ(decision.depth(), 7);
  Set("max_depth", {"7"});
  EXPECT_REASON(Judge(leaf, sent), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, ChainDepthIgnoresServerVerifyDepth) {
  // Depth 2 (leaf, issuing, root) is fine with certgate's default of 5.
  Set("max_depth", {"2"});
  EXPECT_REASON(JudgeIssued(Alice()), CG_REASON_NONE);
  Set("max_depth", {"1"});
  EXPECT_REASON(JudgeIssued(Alice()), CG_REASON_CHAIN_TOO_LONG);
}

TEST_F(EvaluatorTest, IssuerOutsideTrustedIssuersIsNotAllowed) {
  policy_.trusted_issuers = CertList{"issuers.pem", {issuing_->cert}};
  const Decision decision = Judge(pki_->Issue(*other_issuing_, Alice()), {*other_issuing_});
  EXPECT_REASON(decision, CG_REASON_ISSUER_NOT_ALLOWED);
  EXPECT_THAT(decision.detail(), HasSubstr("Other Issuing CA"));
  EXPECT_THAT(decision.detail(), HasSubstr("issuers.pem"));
}

TEST_F(EvaluatorTest, IssuerInTrustedIssuersIsAllowed) {
  policy_.trusted_issuers = CertList{"issuers.pem", {issuing_->cert}};
  EXPECT_REASON(JudgeIssued(Alice()), CG_REASON_NONE);
  policy_.trusted_issuers = CertList{"roots.pem", {root_->cert}};  // a root allows its subtree
  EXPECT_REASON(JudgeIssued(Alice()), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, ExpiredLeaf) {
  const Decision decision = JudgeIssued(With([](CertSpec &s) { s.not_after = kNow - kDay; }));
  EXPECT_REASON(decision, CG_REASON_EXPIRED);
  EXPECT_EQ(decision.depth(), 0);
  EXPECT_EQ(Info(decision.reason()).substatus, "403.17");
  EXPECT_THAT(decision.detail(), HasSubstr("expired 2027-01-14T08:00:00Z"));
}

TEST_F(EvaluatorTest, ExpiredWithinClockSkewIsAllowed) {
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) { s.not_after = kNow - 30; })), CG_REASON_NONE);
  Set("clock_skew", {"10s"});
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) { s.not_after = kNow - 30; })), CG_REASON_EXPIRED);
}

TEST_F(EvaluatorTest, ExpiredWithinClockSkewSaysSoInTheWarning) {
  const Decision decision = JudgeIssued(With([](CertSpec &s) { s.not_after = kNow - 30; }));
  EXPECT_REASON(decision, CG_REASON_NONE);
  EXPECT_EQ(decision.warning(), "expiry");
  EXPECT_THAT(decision.detail(), HasSubstr("expired 2027-01-15T07:59:30Z and is accepted only "
                                           "within certgate_clock_skew (60s)"));
}

TEST_F(EvaluatorTest, ExpiredIntermediateIsReportedAtItsDepth) {
  CertSpec spec = PkiBuilder::CaSpec("CN=Expired CA");
  spec.not_after = kNow - kDay;
  const Issued expired_ca = pki_->Issue(*root_, spec);
  const Decision decision = Judge(pki_->Issue(expired_ca, Alice()), {expired_ca});
  EXPECT_REASON(decision, CG_REASON_EXPIRED);
  EXPECT_EQ(decision.depth(), 1);
}

TEST_F(EvaluatorTest, NotYetValid) {
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) { s.not_before = kNow + kDay; })),
                CG_REASON_NOT_YET_VALID);
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) { s.not_before = kNow + 30; })), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, ServerAuthOnlyIsWrongPurpose) {
  const Decision decision = JudgeIssued(With([](CertSpec &s) { s.eku = {"serverAuth"}; }));
  EXPECT_REASON(decision, CG_REASON_WRONG_PURPOSE);
  EXPECT_THAT(decision.detail(), HasSubstr("serverAuth but not clientAuth"));
}

TEST_F(EvaluatorTest, MissingEkuIsWrongPurposeUnlessAny) {
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) { s.eku.clear(); })), CG_REASON_WRONG_PURPOSE);
  Set("require_eku", {"any"});
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) { s.eku.clear(); })), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, EmptyEkuIsMalformedNotWrongPurpose) {
  const Decision decision = JudgeIssued(With([](CertSpec &s) {
    s.extra_extensions = {{"extendedKeyUsage", "DER:30:00"}};
  }));
  // OpenSSL 3.0 marks the extension invalid itself; the evaluator's own wording
  // ("has an empty extendedKeyUsage extension") covers a library that does not.
  EXPECT_REASON(decision, CG_REASON_MALFORMED);
  EXPECT_THAT(decision.detail(), Not(HasSubstr("but not clientAuth")));
}

// RFC 5280 §4.2.1.12: anyExtendedKeyUsage stands for every purpose, clientAuth
// included; `clientAuth strict` asks for the OID itself.
TEST_F(EvaluatorTest, AnyEkuPassesClientAuthUnlessStrict) {
  const CertSpec spec = With([](CertSpec &s) { s.eku = {"serverAuth", "anyExtendedKeyUsage"}; });
  EXPECT_REASON(JudgeIssued(spec), CG_REASON_NONE);
  Set("require_eku", {"clientAuth", "strict"});
  const Decision decision = JudgeIssued(spec);
  EXPECT_REASON(decision, CG_REASON_WRONG_PURPOSE);
  EXPECT_THAT(decision.detail(), HasSubstr("anyExtendedKeyUsage does not count"));
  EXPECT_REASON(JudgeIssued(Alice()), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, Ed25519KeysAreAcceptedAndDsaOnlyWhenNamed) {
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) { s.key = KeySpec{KeySpec::Type::kEd25519}; })),
                CG_REASON_NONE);
  Set("strict", {"off"});
  const CertSpec dsa = With([](CertSpec &s) { s.key = KeySpec{KeySpec::Type::kDsa, 2048}; });
  const Decision refused = JudgeIssued(dsa);
  EXPECT_REASON(refused, CG_REASON_WEAK_KEY);
  EXPECT_THAT(refused.detail(), HasSubstr("a type certgate_min_key does not accept"));
  Set("min_key", {"dsa=2048"});
  EXPECT_REASON(JudgeIssued(dsa), CG_REASON_NONE);
  Set("min_key", {"dsa=3072"});
  EXPECT_REASON(JudgeIssued(dsa), CG_REASON_WEAK_KEY);
}

TEST_F(EvaluatorTest, CaRestrictingEkuIsWrongPurposeAtItsDepth) {
  CertSpec spec = PkiBuilder::CaSpec("CN=Server-only CA");
  spec.eku = {"serverAuth"};
  const Issued server_ca = pki_->Issue(*root_, spec);
  const Decision decision = Judge(pki_->Issue(server_ca, Alice()), {server_ca});
  EXPECT_REASON(decision, CG_REASON_WRONG_PURPOSE);
  EXPECT_EQ(decision.depth(), 1);
  spec.eku = {"serverAuth", "clientAuth"};
  const Issued both_ca = pki_->Issue(*root_, spec);
  EXPECT_REASON(Judge(pki_->Issue(both_ca, Alice()), {both_ca}), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, KeyEnciphermentOnlyFailsKeyUsage) {
  const auto spec = With([](CertSpec &s) { s.key_usage = KU_KEY_ENCIPHERMENT; });
  const Decision decision = JudgeIssued(spec);
  EXPECT_REASON(decision, CG_REASON_KEY_USAGE);
  EXPECT_THAT(decision.detail(), HasSubstr("keyEncipherment"));
  Set("require_key_usage", {"off"});
  EXPECT_REASON(JudgeIssued(spec), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, AbsentKeyUsageIsUnrestricted) {
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) { s.key_usage.reset(); })), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, SmallRsaKeyIsWeak) {
  const auto spec = With([](CertSpec &s) { s.key = KeySpec{KeySpec::Type::kRsa, 1024}; });
  const Decision decision = JudgeIssued(spec);
  EXPECT_REASON(decision, CG_REASON_WEAK_KEY);
  EXPECT_THAT(decision.detail(), HasSubstr("RSA 1024"));
  Set("min_key", {"rsa=1024"});
  EXPECT_REASON(JudgeIssued(spec), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, SmallEcKeyIsWeak) {
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) {
                  s.key = KeySpec{KeySpec::Type::kEc, 224};
                })),
                CG_REASON_WEAK_KEY);
  EXPECT_REASON(JudgeIssued(With([](CertSpec &s) {
                  s.key = KeySpec{KeySpec::Type::kEc, 384};
                })),
                CG_REASON_NONE);
}

TEST_F(EvaluatorTest, Sha1SignatureIsWeak) {
  const auto spec = With([](CertSpec &s) { s.digest = "sha1"; });
  const Decision decision = JudgeIssued(spec);
  EXPECT_REASON(decision, CG_REASON_WEAK_SIGNATURE);
  EXPECT_THAT(decision.detail(), HasSubstr("SHA1"));
  Set("deny_signature", {"md5"});
  EXPECT_REASON(JudgeIssued(spec), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, SubjectMissingOuIsIdentityMismatchNamingIt) {
  Set("subject", {"OU=People"});
  const Decision decision = JudgeIssued(With([](CertSpec &s) { s.subject = "CN=bob,O=Example"; }));
  EXPECT_REASON(decision, CG_REASON_IDENTITY_MISMATCH);
  EXPECT_EQ(Info(decision.reason()).substatus, "403.12");
  EXPECT_THAT(decision.detail(), HasSubstr("lacks OU=People"));
  EXPECT_REASON(JudgeIssued(Alice()), CG_REASON_NONE);
}

TEST_F(EvaluatorTest, SubjectRulesMustAllMatch) {
  Set("subject", {"OU=People", "O=Elsewhere"});
  const Decision decision = JudgeIssued(Alice());
  EXPECT_REASON(decision, CG_REASON_IDENTITY_MISMATCH);
  EXPECT_THAT(decision.detail(), HasSubstr("lacks O=Elsewhere"));
}

TEST_F(EvaluatorTest, SubjectRegex) {
  Set("subject", {"~^CN=alice,"});
  EXPECT_REASON(JudgeIssued(Alice()), CG_REASON_NONE);
  Set("subject", {"~^CN=bob,"});
  EXPECT_REASON(JudgeIssued(Alice()), CG_REASON_IDENTITY_MISMATCH);
}

// A 60,000-character CN (a 60 KB certificate, issue 9 §2): std::regex recursed
// once per character and overflowed the stack; RE2 runs in linear time.
TEST_F(EvaluatorTest, SubjectRegexOnAHugeSubject) {
  const std::string subject = "CN=" + std::string(60000, 'a') + ",OU=People,O=Example";
  const Issued leaf = pki_->Issue(*issuing_, PkiBuilder::LeafSpec(subject));
  ASSERT_TRUE(leaf) << pki_->last_error();
  Set("subject", {"~^CN=[^,]+,OU=People"});
  EXPECT_REASON(Judge(leaf, {*issuing_}), CG_REASON_NONE);
  Set("subject", {"~^CN=[^,]+,OU=Staff"});
  const Decision mismatch = Judge(leaf, {*issuing_});
  EXPECT_REASON(mismatch, CG_REASON_IDENTITY_MISMATCH);
  EXPECT_THAT(mismatch.detail(), HasSubstr("does not match ~^CN=[^,]+,OU=Staff"));
  Set("subject", {"~(a|aa)+$", "~^(a*)*b"});  // catastrophic for a backtracking engine
  EXPECT_REASON(Judge(leaf, {*issuing_}), CG_REASON_IDENTITY_MISMATCH);

  const Issued rogue = pki_->SelfSigned(PkiBuilder::CaSpec("CN=Rogue Root"));
  Set("subject", {"~^CN=[^,]+,OU=People"});
  EXPECT_REASON(Judge(pki_->Issue(rogue, PkiBuilder::LeafSpec(subject)), {rogue}),
                CG_REASON_UNTRUSTED_ISSUER);
}

TEST_F(EvaluatorTest, SanPatterns) {
  Set("san", {"uri:spiffe://prod/*"});
  EXPECT_REASON(JudgeIssued(Alice()), CG_REASON_NONE);
  Set("san", {"uri:spiffe://staging/*", "dns:*.EXAMPLE.com"});
  EXPECT_REASON(JudgeIssued(Alice()), CG_REASON_NONE);
  Set("san", {"uri:spiffe://staging/*", "email:bob@example.com"});
  const Decision decision = JudgeIssued(Alice());
  EXPECT_REASON(decision, CG_REASON_IDENTITY_MISMATCH);
  EXPECT_THAT(decision.detail(), HasSubstr("URI:spiffe://prod/alice"));
}

TEST_F(EvaluatorTest, PinsAndDenies) {
  const Issued leaf = pki_->Issue(*issuing_, Alice());
  const std::string fingerprint = Sha256Hex(leaf.cert.get());
  Set("pin", {"sha256:" + std::string(64, '0')});
  EXPECT_REASON(Judge(leaf, {*issuing_}), CG_REASON_PIN_MISMATCH);
  Set("pin", {"sha256:" + fingerprint});
  EXPECT_REASON(Judge(leaf, {*issuing_}), CG_REASON_NONE);
  Set("pin", {"spki:" + SpkiSha256Hex(leaf.cert.get())});
  EXPECT_REASON(Judge(leaf, {*issuing_}), CG_REASON_NONE);
  Set("deny", {"sha256:" + fingerprint});
  const Decision denied = Judge(leaf, {*issuing_});
  EXPECT_REASON(denied, CG_REASON_PIN_MISMATCH);
  EXPECT_THAT(denied.detail(), HasSubstr("certgate_deny"));
}

bool HasFinding(const Decision &decision, Reason reason) {
  return std::any_of(decision.findings().begin(), decision.findings().end(),
                     [reason](const Finding &f) { return f.reason == reason; });
}

// Identity rules run only on a chain a trusted CA vouches for: an untrusted or
// broken chain is refused for its chain reason, and its subject never reaches
// an operator's pattern (issue 9 §2).
TEST_F(EvaluatorTest, IdentityIsJudgedOnlyOnVerifiedChains) {
  Set("subject", {"~^CN=[^,]+,OU=Staff"});
  Set("san", {"dns:nowhere.example"});
  Set("pin", {"sha256:" + std::string(64, '0')});
  const Issued rogue = pki_->SelfSigned(PkiBuilder::CaSpec("CN=Rogue Root"));
  const Decision untrusted = Judge(pki_->Issue(rogue, Alice()), {rogue});
  EXPECT_REASON(untrusted, CG_REASON_UNTRUSTED_ISSUER);
  EXPECT_EQ(untrusted.findings().size(), 1u) << untrusted.findings().back().detail;
  const Decision self_signed = Judge(pki_->SelfSigned(Alice()), {});
  EXPECT_REASON(self_signed, CG_REASON_UNTRUSTED_ISSUER);
  EXPECT_EQ(self_signed.findings().size(), 1u) << self_signed.findings().back().detail;
  const Decision incomplete = Judge(pki_->Issue(*issuing_, Alice()), {});
  EXPECT_REASON(incomplete, CG_REASON_CHAIN_INCOMPLETE);
  EXPECT_FALSE(HasFinding(incomplete, CG_REASON_IDENTITY_MISMATCH));
  const Decision forged = JudgeIssued(With([](CertSpec &s) { s.corrupt_signature = true; }));
  EXPECT_REASON(forged, CG_REASON_BAD_SIGNATURE);
  EXPECT_FALSE(HasFinding(forged, CG_REASON_IDENTITY_MISMATCH));
  EXPECT_FALSE(HasFinding(forged, CG_REASON_PIN_MISMATCH));
  const Decision malformed = JudgeIssued(With([](CertSpec &s) { s.invalid_extension = true; }));
  EXPECT_REASON(malformed, CG_REASON_MALFORMED);
  EXPECT_FALSE(HasFinding(malformed, CG_REASON_IDENTITY_MISMATCH));

  // A genuine chain is judged by every identity rule, also when it is expired.
  const Decision verified = JudgeIssued(Alice());
  EXPECT_REASON(verified, CG_REASON_PIN_MISMATCH);
  EXPECT_TRUE(HasFinding(verified, CG_REASON_IDENTITY_MISMATCH));
  const Decision expired = JudgeIssued(With([](CertSpec &s) { s.not_after = kNow - kDay; }));
  EXPECT_REASON(expired, CG_REASON_EXPIRED);
  EXPECT_TRUE(HasFinding(expired, CG_REASON_IDENTITY_MISMATCH));
  EXPECT_TRUE(HasFinding(expired, CG_REASON_PIN_MISMATCH));
}

// spki: is SHA-256 over the DER SubjectPublicKeyInfo (RFC 7469), as `openssl
// pkey -pubin -outform der | sha256sum` computes it, for EC and RSA keys.
TEST_F(EvaluatorTest, SpkiPinIsSha256OfTheDerSubjectPublicKeyInfo) {
  for (const KeySpec key : {KeySpec{KeySpec::Type::kEc, 256}, KeySpec{KeySpec::Type::kRsa, 2048}}) {
    const Issued leaf = pki_->Issue(*issuing_, With([&](CertSpec &s) { s.key = key; }));
    unsigned char *der = nullptr;
    const int der_len = i2d_PUBKEY(X509_get0_pubkey(leaf.cert.get()), &der);
    ASSERT_GT(der_len, 0);
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    ASSERT_TRUE(EVP_Digest(der, static_cast<size_t>(der_len), md, &md_len, EVP_sha256(), nullptr));
    OPENSSL_free(der);
    std::string hex;
    for (unsigned int i = 0; i < md_len; ++i) {
      char byte[3];
      std::snprintf(byte, sizeof byte, "%02x", md[i]);
      hex += byte;
    }
    Set("pin", {"spki:" + hex});
    EXPECT_REASON(Judge(leaf, {*issuing_}), CG_REASON_NONE);
    EXPECT_STRCASEEQ(SpkiSha256Hex(leaf.cert.get()).c_str(), hex.c_str());
  }
}

TEST_F(EvaluatorTest, InternalErrorNeverAllows) {
  ChainEvidence evidence;
  evidence.chain.push_back(issuing_->cert);
  evidence.internal_error = "simulated";
  const Decision decision = Evaluate(policy_, &evidence, FixedClock(kNow));
  EXPECT_REASON(decision, CG_REASON_INTERNAL_ERROR);
  EXPECT_EQ(Info(decision.reason()).http_status, 500);
}

TEST_F(EvaluatorTest, ExpiringSoonIsAllowedButFlagged) {
  const Decision decision = JudgeIssued(With([](CertSpec &s) { s.not_after = kNow + 3 * kDay; }));
  EXPECT_REASON(decision, CG_REASON_NONE);
  EXPECT_TRUE(decision.expiry_warning());
  EXPECT_THAT(decision.detail(), HasSubstr("expires"));
  Set("expiry_warning", {"1d"});
  EXPECT_FALSE(
      JudgeIssued(With([](CertSpec &s) { s.not_after = kNow + 3 * kDay; })).expiry_warning());
}

// Precedence: several defects in one chain always give the same reason.
TEST_F(EvaluatorTest, UntrustedBeatsExpired) {
  const Decision decision =
      Judge(pki_->SelfSigned(With([](CertSpec &s) { s.not_after = kNow - kDay; })), {});
  EXPECT_REASON(decision, CG_REASON_UNTRUSTED_ISSUER);
  EXPECT_EQ(decision.findings().size(), 2u);
}

TEST_F(EvaluatorTest, MalformedBeatsBadSignatureBeatsExpiredBeatsWrongPurpose) {
  auto spec = With([](CertSpec &s) {
    s.not_after = kNow - kDay;
    s.eku = {"serverAuth"};
  });
  EXPECT_REASON(JudgeIssued(spec), CG_REASON_EXPIRED);
  spec.corrupt_signature = true;
  EXPECT_REASON(JudgeIssued(spec), CG_REASON_BAD_SIGNATURE);
  spec.invalid_extension = true;
  EXPECT_REASON(JudgeIssued(spec), CG_REASON_MALFORMED);
}

TEST_F(EvaluatorTest, SameReasonAtTwoDepthsReportsTheLeaf) {
  CertSpec spec = PkiBuilder::CaSpec("CN=Expired CA");
  spec.not_after = kNow - kDay;
  const Issued expired_ca = pki_->Issue(*root_, spec);
  CertSpec leaf = Alice();
  leaf.not_after = kNow - kDay;
  EXPECT_EQ(Judge(pki_->Issue(expired_ca, leaf), {expired_ca}).depth(), 0);
}

TEST(GlobMatchTest, Wildcards) {
  EXPECT_TRUE(GlobMatch("spiffe://prod/*", "spiffe://prod/a/b", false));
  EXPECT_FALSE(GlobMatch("spiffe://prod/*", "spiffe://production/a", false));
  EXPECT_TRUE(GlobMatch("*.example.com", "A.EXAMPLE.COM", true));
  EXPECT_FALSE(GlobMatch("*.example.com", "A.EXAMPLE.COM", false));
  EXPECT_TRUE(GlobMatch("a*b*c", "aXXbYYc", false));
  EXPECT_FALSE(GlobMatch("a*b*c", "aXXbYY", false));
  EXPECT_TRUE(GlobMatch("*", "", false));
}

}  // namespace
}  // namespace certgate
