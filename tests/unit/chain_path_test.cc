// Chain building beyond OpenSSL's first choice (issue 15): a trusted
// intermediate as the anchor, several issuers with one name, and self-issued
// CA certificates under certgate_max_depth.
#include <certgate/chain_evidence.h>
#include <certgate/evaluator.h>
#include <chain_evidence_for.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/x509v3.h>
#include <pki_builder.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "cert_fields.h"

namespace certgate {
namespace {

using pki::CertSpec;
using pki::Issued;
using pki::PkiBuilder;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kNow = 1800000000;  // 2027-01-15T08:00:00Z
constexpr int64_t kDay = 86400;

// "Path Root" (trusted unless a test says otherwise) -> "Path Issuing CA" -> leaves.
class ChainPathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new PkiBuilder(kNow);
    root_ = new Issued(pki_->SelfSigned(PkiBuilder::CaSpec("CN=Path Root,O=Example")));
    issuing_ = new Issued(pki_->Issue(*root_, PkiBuilder::CaSpec("CN=Path Issuing CA,O=Example")));
  }

  void SetUp() override {
    ASSERT_TRUE(*root_ && *issuing_) << pki_->last_error();
    ASSERT_TRUE(policy_.Set("certgate", {"require"}).ok());
  }

  static CertSpec Leaf(bool with_akid = true) {
    CertSpec spec = PkiBuilder::LeafSpec("CN=carol,OU=People,O=Example");
    spec.skid_akid = with_akid;
    return spec;
  }

  static std::string Hex(const ASN1_OCTET_STRING *id) {
    std::string out;
    char byte[4];
    for (int i = 0; id != nullptr && i < ASN1_STRING_length(id); ++i) {
      std::snprintf(byte, sizeof(byte), i == 0 ? "%02X" : ":%02X", ASN1_STRING_get0_data(id)[i]);
      out += byte;
    }
    return out;
  }

  // A self-signed CA a client made up: `genuine`'s name and subjectKeyIdentifier,
  // its own key. OpenSSL's name/AKID match cannot tell it from the genuine one.
  static Issued Imposter(const Issued &genuine) {
    CertSpec spec = PkiBuilder::CaSpec(NameToString(X509_get_subject_name(genuine.cert.get())));
    spec.skid_akid = false;
    spec.extra_extensions = {
        {"subjectKeyIdentifier", Hex(X509_get0_subject_key_id(genuine.cert.get()))}};
    return pki_->SelfSigned(spec);
  }

  // `cert` again (same name, key and SKID) with other dates, signed by `issuer`:
  // a CA certificate renewed with its key, or an expired copy of it.
  static Issued WithDates(const Issued &cert, const Issued &issuer, int64_t not_before,
                          int64_t not_after) {
    X509 *copy = X509_dup(cert.cert.get());
    ASN1_TIME_set(X509_getm_notBefore(copy), static_cast<time_t>(not_before));
    ASN1_TIME_set(X509_getm_notAfter(copy), static_cast<time_t>(not_after));
    X509_sign(copy, issuer.key.get(), EVP_sha256());
    return {std::shared_ptr<X509>(copy, X509_free), cert.key};
  }

  // `cert` with the last byte of its signature flipped.
  static Issued Tampered(const Issued &cert) {
    std::string der = cert.Der();
    der.back() ^= 0x01;
    const unsigned char *p = reinterpret_cast<const unsigned char *>(der.data());
    return {std::shared_ptr<X509>(d2i_X509(nullptr, &p, static_cast<long>(der.size())), X509_free),
            cert.key};
  }

  static ChainEvidence Build(const Issued &leaf, const std::vector<Issued> &sent,
                             const std::vector<Issued> &anchors) {
    return pki::EvidenceFor(leaf, sent, anchors, kNow);
  }

  Decision Judge(const ChainEvidence &evidence) {
    return Evaluate(policy_, &evidence, FixedClock(kNow));
  }

  void Set(const std::string &key, const std::vector<std::string> &args) {
    const Status status = policy_.Set(key, args);
    ASSERT_TRUE(status.ok()) << status.message();
  }

  static bool Is(const std::shared_ptr<X509> &cert, const Issued &expected) {
    return X509_cmp(cert.get(), expected.cert.get()) == 0;
  }

  static PkiBuilder *pki_;
  static Issued *root_, *issuing_;
  Policy policy_;
};

PkiBuilder *ChainPathTest::pki_;
Issued *ChainPathTest::root_;
Issued *ChainPathTest::issuing_;

#define EXPECT_ALLOWED(decision)                                                                \
  do {                                                                                          \
    const Decision &d_ = (decision);                                                            \
    EXPECT_EQ(d_.verdict(), CG_VERDICT_ALLOW) << Info(d_.reason()).code << ": " << d_.detail(); \
  } while (0)

#define EXPECT_REFUSED(decision, expected)                                               \
  do {                                                                                   \
    const Decision &d_ = (decision);                                                     \
    EXPECT_EQ(d_.verdict(), CG_VERDICT_DENY);                                            \
    EXPECT_EQ(Info(d_.reason()).code, Info(expected).code) << "detail: " << d_.detail(); \
  } while (0)

// ---- 1. a trust anchor that is not self-signed ----

TEST_F(ChainPathTest, TrustedIntermediateWithoutItsRootIsAnAnchor) {
  const Issued leaf = pki_->Issue(*issuing_, Leaf());
  for (const std::vector<Issued> &sent : {std::vector<Issued>{}, std::vector<Issued>{*issuing_}}) {
    const ChainEvidence evidence = Build(leaf, sent, {*issuing_});
    EXPECT_TRUE(evidence.anchored);
    EXPECT_TRUE(evidence.errors.empty());
    ASSERT_EQ(evidence.chain.size(), 2u);
    EXPECT_TRUE(Is(evidence.chain[1], *issuing_));
    EXPECT_ALLOWED(Judge(evidence));
  }
}

TEST_F(ChainPathTest, WithItsRootTrustedTooTheChainStillReachesTheRoot) {
  const Issued leaf = pki_->Issue(*issuing_, Leaf());
  for (const std::vector<Issued> &sent : {std::vector<Issued>{}, std::vector<Issued>{*issuing_}}) {
    const ChainEvidence evidence = Build(leaf, sent, {*issuing_, *root_});
    ASSERT_EQ(evidence.chain.size(), 3u);
    EXPECT_TRUE(Is(evidence.chain[2], *root_));
    EXPECT_ALLOWED(Judge(evidence));
  }
}

TEST_F(ChainPathTest, TrustedIntermediateAnchorsNothingItDidNotIssue) {
  const Issued other_root = pki_->SelfSigned(PkiBuilder::CaSpec("CN=Elsewhere Root,O=Else"));
  const Issued other_ca =
      pki_->Issue(other_root, PkiBuilder::CaSpec("CN=Elsewhere Issuing CA,O=Else"));
  const ChainEvidence evidence =
      Build(pki_->Issue(other_ca, Leaf()), {other_ca, other_root}, {*issuing_});
  EXPECT_FALSE(evidence.anchored);
  EXPECT_REFUSED(Judge(evidence), CG_REASON_UNTRUSTED_ISSUER);
}

// The operator's explicit "reject" on the root (trust settings of a TRUSTED
// CERTIFICATE) is not undone by anchoring at the trusted intermediate below it.
TEST_F(ChainPathTest, RejectedRootIsNotBypassedThroughATrustedIntermediate) {
  X509 *rejected = X509_dup(root_->cert.get());
  ASSERT_TRUE(X509_add1_reject_object(rejected, OBJ_nid2obj(NID_anyExtendedKeyUsage)));
  const Issued rejected_root{std::shared_ptr<X509>(rejected, X509_free), root_->key};
  const Issued leaf = pki_->Issue(*issuing_, Leaf());
  for (const std::vector<Issued> &sent : {std::vector<Issued>{}, std::vector<Issued>{*issuing_}}) {
    const ChainEvidence evidence = Build(leaf, sent, {rejected_root, *issuing_});
    EXPECT_EQ(Judge(evidence).verdict(), CG_VERDICT_DENY);
    EXPECT_EQ(evidence.chain.size(), 3u);
  }
  EXPECT_EQ(Judge(Build(leaf, {*issuing_}, {rejected_root})).verdict(), CG_VERDICT_DENY);
}

// Likewise an expired root above a trusted intermediate: refused for the root,
// also when a forged issuer sent first sends the search looking further.
TEST_F(ChainPathTest, ExpiredRootAboveATrustedIntermediateIsNotBypassed) {
  Set("strict", {"off"});  // the leaf has no authorityKeyIdentifier, to make the search work
  const Issued expired_root = WithDates(*root_, *root_, kNow - 4000 * kDay, kNow - kDay);
  const Issued imposter = Imposter(*issuing_);
  const Issued leaf = pki_->Issue(*issuing_, Leaf(/*with_akid=*/false));
  for (const std::vector<Issued> &sent :
       {std::vector<Issued>{}, std::vector<Issued>{imposter, *issuing_}}) {
    const Decision decision = Judge(Build(leaf, sent, {expired_root, *issuing_}));
    EXPECT_REFUSED(decision, CG_REASON_EXPIRED);
    EXPECT_EQ(decision.depth(), 2);
  }
}

// A client's own CA with the trusted intermediate's name and SKID gains nothing
// from the trusted intermediate being an anchor.
TEST_F(ChainPathTest, ImposterOfATrustedIntermediateIsRefused) {
  const Issued imposter = Imposter(*issuing_);
  ASSERT_TRUE(imposter) << pki_->last_error();
  for (bool with_akid : {true, false}) {
    const Issued leaf = pki_->Issue(imposter, Leaf(with_akid));
    const ChainEvidence evidence = Build(leaf, {imposter}, {*issuing_});
    EXPECT_FALSE(evidence.anchored && evidence.errors.empty());
    EXPECT_EQ(Judge(evidence).verdict(), CG_VERDICT_DENY);
    const ChainEvidence unsent = Build(leaf, {}, {*issuing_});
    EXPECT_FALSE(unsent.anchored && unsent.errors.empty());
    EXPECT_EQ(Judge(unsent).verdict(), CG_VERDICT_DENY);
  }
}

TEST_F(ChainPathTest, KnownIssuerThatCannotIssueIsNotCalledUnknown) {
  // Another CA's key under the trusted intermediate's name: the leaf's AKID
  // names that key, so the trusted certificate cannot be its issuer.
  const Issued rekeyed = pki_->Issue(*root_, PkiBuilder::CaSpec("CN=Path Issuing CA,O=Example"));
  const Decision decision = Judge(Build(pki_->Issue(rekeyed, Leaf()), {}, {*issuing_}));
  EXPECT_REFUSED(decision, CG_REASON_CHAIN_INCOMPLETE);
  EXPECT_THAT(decision.detail(), Not(HasSubstr("neither sent by the client nor is known locally")));
  EXPECT_THAT(decision.detail(),
              HasSubstr("1 certificate with that name is in the trust store, but it cannot have "
                        "issued it (authority and subject key identifier mismatch)"));
}

TEST_F(ChainPathTest, UnknownIssuerIsStillCalledUnknown) {
  const Issued hidden = pki_->Issue(*root_, PkiBuilder::CaSpec("CN=Path Hidden CA,O=Example"));
  const Decision decision = Judge(Build(pki_->Issue(hidden, Leaf()), {}, {*root_}));
  EXPECT_REFUSED(decision, CG_REASON_CHAIN_INCOMPLETE);
  EXPECT_THAT(decision.detail(), HasSubstr("was neither sent by the client nor is known locally"));
}

// ---- 2. several issuers with one name ----

TEST_F(ChainPathTest, SameNameDifferentKeyFindsTheIssuerThatSigned) {
  // A re-keyed CA (same name, both under the root) and a leaf without AKID:
  // only the signature tells them apart. (certgate_strict refuses such a leaf
  // for its missing AKID; path building must still be right under off.)
  Set("strict", {"off"});
  const Issued old_key = pki_->Issue(*root_, PkiBuilder::CaSpec("CN=Path Issuing CA,O=Example"));
  const Issued leaf = pki_->Issue(*issuing_, Leaf(/*with_akid=*/false));
  for (const std::vector<Issued> &sent :
       {std::vector<Issued>{old_key, *issuing_}, std::vector<Issued>{*issuing_, old_key}}) {
    const ChainEvidence evidence = Build(leaf, sent, {*root_});
    ASSERT_EQ(evidence.chain.size(), 3u);
    EXPECT_TRUE(Is(evidence.chain[1], *issuing_));
    EXPECT_ALLOWED(Judge(evidence));
  }
}

// Two copies of the root in the store, one with a defect certgate_strict
// refuses (basicConstraints not critical): the chain is built through the
// sound one, in either order; with only the legacy copy it is refused.
TEST_F(ChainPathTest, AStrictDefectInOneOfTwoSameNamedRootsIsPassedOver) {
  X509 *copy = X509_dup(root_->cert.get());
  X509_EXTENSION_set_critical(
      X509_get_ext(copy, X509_get_ext_by_NID(copy, NID_basic_constraints, -1)), 0);
  X509_sign(copy, root_->key.get(), EVP_sha256());
  const Issued legacy_root{std::shared_ptr<X509>(copy, X509_free), root_->key};
  const Issued leaf = pki_->Issue(*issuing_, Leaf());
  for (const std::vector<Issued> &anchors :
       {std::vector<Issued>{legacy_root, *root_}, std::vector<Issued>{*root_, legacy_root}}) {
    const ChainEvidence evidence = Build(leaf, {*issuing_}, anchors);
    EXPECT_TRUE(evidence.strict_defects.empty());
    EXPECT_ALLOWED(Judge(evidence));
  }
  EXPECT_REFUSED(Judge(Build(leaf, {*issuing_}, {legacy_root})), CG_REASON_INVALID_CA);
}

TEST_F(ChainPathTest, ForgedNameAndKeyIdentifierSentFirstIsPassedOver) {
  const Issued imposter = Imposter(*issuing_);
  ASSERT_TRUE(imposter) << pki_->last_error();
  const ChainEvidence evidence =
      Build(pki_->Issue(*issuing_, Leaf()), {imposter, *issuing_}, {*root_});
  ASSERT_EQ(evidence.chain.size(), 3u);
  EXPECT_TRUE(Is(evidence.chain[1], *issuing_));
  EXPECT_ALLOWED(Judge(evidence));
}

TEST_F(ChainPathTest, ExpiredCopyOfTheIntermediateSentFirstIsPassedOver) {
  const Issued expired = WithDates(*issuing_, *root_, kNow - 400 * kDay, kNow - kDay);
  const Issued leaf = pki_->Issue(*issuing_, Leaf());
  const ChainEvidence evidence = Build(leaf, {expired, *issuing_}, {*root_});
  ASSERT_EQ(evidence.chain.size(), 3u);
  EXPECT_TRUE(Is(evidence.chain[1], *issuing_));
  EXPECT_ALLOWED(Judge(evidence));

  // Only the expired copy: refused as expired, naming the copy that was there.
  const Decision alone = Judge(Build(leaf, {expired}, {*root_}));
  EXPECT_REFUSED(alone, CG_REASON_EXPIRED);
  EXPECT_EQ(alone.depth(), 1);
}

TEST_F(ChainPathTest, RenewedRootIsPreferredOverItsExpiredCopyInTheStore) {
  const Issued expired_root = WithDates(*root_, *root_, kNow - 4000 * kDay, kNow - kDay);
  const Issued leaf = pki_->Issue(*issuing_, Leaf());
  for (const std::vector<Issued> &anchors :
       {std::vector<Issued>{expired_root, *root_}, std::vector<Issued>{*root_, expired_root}}) {
    const ChainEvidence evidence = Build(leaf, {*issuing_}, anchors);
    ASSERT_EQ(evidence.chain.size(), 3u);
    EXPECT_TRUE(Is(evidence.chain[2], *root_));
    EXPECT_ALLOWED(Judge(evidence));
  }
  // With the expired root alone the chain is refused for it.
  EXPECT_REFUSED(Judge(Build(leaf, {*issuing_}, {expired_root})), CG_REASON_EXPIRED);
}

TEST_F(ChainPathTest, CopyWithABrokenSignatureSentFirstIsPassedOver) {
  const Issued tampered = Tampered(*issuing_);
  ASSERT_TRUE(tampered.cert);
  const Issued leaf = pki_->Issue(*issuing_, Leaf());
  const ChainEvidence evidence = Build(leaf, {tampered, *issuing_}, {*root_});
  ASSERT_EQ(evidence.chain.size(), 3u);
  EXPECT_TRUE(Is(evidence.chain[1], *issuing_));
  EXPECT_ALLOWED(Judge(evidence));

  EXPECT_REFUSED(Judge(Build(leaf, {tampered}, {*root_})), CG_REASON_BAD_SIGNATURE);
}

TEST_F(ChainPathTest, WithoutACleanAlternativeTheFirstChainStaysAndTheDetailSaysWhatWasTried) {
  const Issued imposter = Imposter(*issuing_);
  const Issued expired = WithDates(*issuing_, *root_, kNow - 400 * kDay, kNow - kDay);
  const ChainEvidence evidence =
      Build(pki_->Issue(*issuing_, Leaf()), {imposter, expired}, {*root_});
  ASSERT_GE(evidence.chain.size(), 2u);
  EXPECT_TRUE(Is(evidence.chain[1], imposter));  // OpenSSL's first choice
  const Decision decision = Judge(evidence);
  EXPECT_EQ(decision.verdict(), CG_VERDICT_DENY);
  EXPECT_THAT(decision.detail(),
              HasSubstr("; another certificate named 'CN=Path Issuing CA,O=Example' could issue "
                        "the client certificate and was tried too, without a clean chain"));
  EXPECT_FALSE(evidence.path_search_stopped);
}

// ---- hostile input: many certificates with one name ----

TEST_F(ChainPathTest, FiftyForgedIssuersBeforeTheGenuineOneAreBoundedAndRefused) {
  std::vector<Issued> sent;
  for (int i = 0; i < 50; ++i) {
    sent.push_back(Imposter(*issuing_));
    ASSERT_TRUE(sent.back()) << pki_->last_error();
  }
  const Issued leaf = pki_->Issue(*issuing_, Leaf());
  std::vector<Issued> genuine_last = sent;
  genuine_last.push_back(*issuing_);

  const auto start = std::chrono::steady_clock::now();
  const ChainEvidence evidence = Build(leaf, genuine_last, {*root_});
  const auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_LT(elapsed, std::chrono::seconds(2));
  EXPECT_TRUE(evidence.path_search_stopped);
  const Decision decision = Judge(evidence);
  EXPECT_EQ(decision.verdict(), CG_VERDICT_DENY);
  EXPECT_THAT(decision.detail(), HasSubstr("50 other certificates named"));
  EXPECT_THAT(decision.detail(),
              HasSubstr("(the search stopped at its bound: 32 signature checks, 3 alternative "
                        "paths)"));

  // The genuine one first: OpenSSL's own choice, allowed at once.
  std::vector<Issued> genuine_first = {*issuing_};
  genuine_first.insert(genuine_first.end(), sent.begin(), sent.end());
  EXPECT_ALLOWED(Judge(Build(leaf, genuine_first, {*root_})));

  // A few forged ones before it: within the bound, found.
  std::vector<Issued> few(sent.begin(), sent.begin() + 5);
  few.push_back(*issuing_);
  const ChainEvidence found = Build(leaf, few, {*root_});
  ASSERT_EQ(found.chain.size(), 3u);
  EXPECT_TRUE(Is(found.chain[1], *issuing_));
  EXPECT_ALLOWED(Judge(found));
}

// Same-named CAs that all issue one another (each a valid signature): the
// search goes deep, and stops at its bound.
TEST_F(ChainPathTest, SameNamedCasIssuingOneAnotherAreBoundedAndRefused) {
  CertSpec spec = PkiBuilder::CaSpec("CN=Path Issuing CA,O=Example");
  spec.skid_akid = false;
  std::vector<Issued> ring{pki_->SelfSigned(spec)};
  for (int i = 1; i < 50; ++i) ring.push_back(pki_->Issue(ring.back(), spec));
  CertSpec leaf_spec = Leaf(/*with_akid=*/false);
  const Issued leaf = pki_->Issue(ring.back(), leaf_spec);
  std::vector<Issued> sent(ring.rbegin(), ring.rend());
  sent.push_back(*issuing_);

  const auto start = std::chrono::steady_clock::now();
  const ChainEvidence evidence = Build(leaf, sent, {*root_});
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_TRUE(evidence.path_search_stopped);
  EXPECT_EQ(Judge(evidence).verdict(), CG_VERDICT_DENY);
}

// ---- 3. self-issued CA certificates and certgate_max_depth ----

TEST_F(ChainPathTest, SelfIssuedRolloverCertificateDoesNotCountTowardMaxDepth) {
  // The CA's old key is certified by the root; its new key by the old key
  // (subject == issuer: self-issued); the leaf by the new key.
  const Issued old_key = pki_->Issue(*root_, PkiBuilder::CaSpec("CN=Rollover CA,O=Example"));
  const Issued new_key = pki_->Issue(old_key, PkiBuilder::CaSpec("CN=Rollover CA,O=Example"));
  const ChainEvidence evidence = Build(pki_->Issue(new_key, Leaf()), {new_key, old_key}, {*root_});
  ASSERT_EQ(evidence.chain.size(), 4u);  // the root at depth 3
  EXPECT_TRUE(evidence.summaries[1].self_issued);

  Set("max_depth", {"2"});
  EXPECT_ALLOWED(Judge(evidence));
  Set("max_depth", {"1"});
  const Decision decision = Judge(evidence);
  EXPECT_REFUSED(decision, CG_REASON_CHAIN_TOO_LONG);
  EXPECT_THAT(decision.detail(),
              HasSubstr("the chain reaches depth 2 (not counting 1 self-issued CA certificate) "
                        "but certgate_max_depth is 1"));
}

TEST_F(ChainPathTest, OrdinaryIntermediatesStillCountTowardMaxDepth) {
  const Issued sub = pki_->Issue(*issuing_, PkiBuilder::CaSpec("CN=Path Sub CA,O=Example"));
  const ChainEvidence evidence = Build(pki_->Issue(sub, Leaf()), {sub, *issuing_}, {*root_});
  Set("max_depth", {"2"});
  const Decision decision = Judge(evidence);
  EXPECT_REFUSED(decision, CG_REASON_CHAIN_TOO_LONG);
  EXPECT_THAT(decision.detail(),
              HasSubstr("the chain reaches depth 3 but certgate_max_depth is 2"));
  Set("max_depth", {"3"});
  EXPECT_ALLOWED(Judge(evidence));
}

}  // namespace
}  // namespace certgate
