// certgate_strict: one named vector per strict check, judged strict on and off.
//
// Each vector is a chain OpenSSL 3.0's X509_verify_cert accepts (the "lenient"
// assertion below proves it) but RFC 5280 forbids. Under the default it must be
// refused with the check's reason; under `certgate_strict off` it is allowed
// and the decision warns strict_off:<check>.
#include <certgate/evaluator.h>
#include <certgate/strict_checks.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pki_builder.h>

#include <functional>

namespace certgate {
namespace {

using pki::CertSpec;
using pki::Issued;
using pki::KeySpec;
using pki::PkiBuilder;
using ::testing::HasSubstr;

constexpr int64_t kNow = 1800000000;

// An authorityKeyIdentifier with a keyIdentifier, for a certificate whose
// issuer has no subjectKeyIdentifier to copy one from.
const std::pair<std::string, std::string> kAnyAkid{"authorityKeyIdentifier",
                                                   "DER:30:06:80:04:01:02:03:04"};

struct Chain {
  Issued leaf;
  std::vector<Issued> sent;
  std::vector<Issued> anchors;
};

struct StrictVector {
  const char *check;  // the StrictChecks() row the chain breaks
  std::function<Chain(PkiBuilder &)> build;
  // Keys that make the chain acceptable apart from the strict check (a v1 leaf
  // has no extendedKeyUsage to require, a DSA key needs min_key dsa=N).
  std::vector<std::pair<std::string, std::vector<std::string>>> lenient_keys = {};
};

CertSpec Leaf() { return PkiBuilder::LeafSpec("CN=client,O=Example"); }
CertSpec Ca(const char *name) { return PkiBuilder::CaSpec(std::string("CN=") + name); }

// root -> issuing CA -> leaf, with `change_*` applied to each spec.
Chain Standard(PkiBuilder &pki, const std::function<void(CertSpec &)> &change_root,
               const std::function<void(CertSpec &)> &change_ca,
               const std::function<void(CertSpec &)> &change_leaf) {
  CertSpec root_spec = Ca("Strict Root");
  change_root(root_spec);
  const Issued root = pki.SelfSigned(root_spec);
  CertSpec ca_spec = Ca("Strict Issuing CA");
  change_ca(ca_spec);
  const Issued ca = pki.Issue(root, ca_spec);
  CertSpec leaf_spec = Leaf();
  change_leaf(leaf_spec);
  return {pki.Issue(ca, leaf_spec), {ca}, {root}};
}

void Same(CertSpec &) {}

Chain LeafWith(PkiBuilder &pki, const std::function<void(CertSpec &)> &change) {
  return Standard(pki, Same, Same, change);
}

const StrictVector kVectors[] = {
    {"v1",
     [](PkiBuilder &pki) { return LeafWith(pki, [](CertSpec &s) { s.version = 1; }); },
     {{"require_eku", {"any"}}, {"require_key_usage", {"off"}}}},
    {"v2",
     [](PkiBuilder &pki) { return LeafWith(pki, [](CertSpec &s) { s.version = 2; }); },
     {{"require_eku", {"any"}}, {"require_key_usage", {"off"}}}},
    {"serial_zero",
     [](PkiBuilder &pki) { return LeafWith(pki, [](CertSpec &s) { s.serial_hex = "0"; }); }},
    {"serial_negative",
     [](PkiBuilder &pki) { return LeafWith(pki, [](CertSpec &s) { s.serial_hex = "-1F"; }); }},
    {"serial_too_long",
     [](PkiBuilder &pki) {
       // 20 octets of magnitude with the top bit set: 21 octets in DER.
       return LeafWith(pki, [](CertSpec &s) { s.serial_hex = std::string(40, 'F'); });
     }},
    {"missing_aki",
     [](PkiBuilder &pki) { return LeafWith(pki, [](CertSpec &s) { s.skid_akid = false; }); }},
    {"missing_aki",  // on the intermediate
     [](PkiBuilder &pki) {
       return Standard(
           pki, Same,
           [](CertSpec &s) {
             s.skid_akid = false;
             s.extra_extensions = {{"subjectKeyIdentifier", "hash"}};
           },
           Same);
     }},
    {"aki_without_keyid",  // on the root
     [](PkiBuilder &pki) {
       return Standard(
           pki,
           [](CertSpec &s) {
             s.skid_akid = false;
             s.extra_extensions = {{"subjectKeyIdentifier", "hash"},
                                   {"authorityKeyIdentifier", "issuer:always"}};
           },
           Same, Same);
     }},
    {"missing_ski",  // on the intermediate
     [](PkiBuilder &pki) {
       return Standard(
           pki, Same,
           [](CertSpec &s) {
             s.skid_akid = false;
             s.extra_extensions = {{"authorityKeyIdentifier", "keyid:always"}};
           },
           [](CertSpec &s) { s.extra_extensions = {kAnyAkid}; });
     }},
    {"missing_ski",  // on the root
     [](PkiBuilder &pki) {
       return Standard(
           pki, [](CertSpec &s) { s.skid_akid = false; },
           [](CertSpec &s) {
             s.skid_akid = false;
             s.extra_extensions = {{"subjectKeyIdentifier", "hash"}, kAnyAkid};
           },
           Same);
     }},
    {"missing_basic_constraints",  // on the root
     [](PkiBuilder &pki) {
       return Standard(
           pki, [](CertSpec &s) { s.omit_basic_constraints = true; }, Same, Same);
     }},
    {"basic_constraints_not_critical",  // on the root
     [](PkiBuilder &pki) {
       return Standard(
           pki, [](CertSpec &s) { s.basic_constraints_critical = false; }, Same, Same);
     }},
    {"ca_as_leaf",
     [](PkiBuilder &pki) {
       return LeafWith(pki, [](CertSpec &s) {
         s.is_ca = true;
         s.key_usage = KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN;
       });
     }},
    {"leaf_key_cert_sign",
     [](PkiBuilder &pki) {
       return LeafWith(pki,
                       [](CertSpec &s) { s.key_usage = KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN; });
     }},
    {"malformed_aia",  // an empty SEQUENCE
     [](PkiBuilder &pki) {
       return LeafWith(pki, [](CertSpec &s) {
         s.extra_extensions = {{"authorityInfoAccess", "DER:30:00"}};
       });
     }},
    {"malformed_aia",  // not a SEQUENCE at all
     [](PkiBuilder &pki) {
       return LeafWith(pki, [](CertSpec &s) {
         s.extra_extensions = {{"authorityInfoAccess", "DER:04:02:de:ad"}};
       });
     }},
    {"policy_constraints_not_critical",
     [](PkiBuilder &pki) {
       return Standard(
           pki, Same,
           [](CertSpec &s) {
             s.extra_extensions = {{"policyConstraints", "inhibitPolicyMapping:0"}};
           },
           Same);
     }},
    {"dsa_key",
     [](PkiBuilder &pki) {
       return LeafWith(pki, [](CertSpec &s) { s.key = KeySpec{KeySpec::Type::kDsa, 2048}; });
     },
     {{"min_key", {"rsa=2048", "ec=256", "dsa=2048"}}}},
    {"rsa_modulus_not_octets",
     [](PkiBuilder &pki) {
       return LeafWith(pki, [](CertSpec &s) { s.key = KeySpec{KeySpec::Type::kRsa, 2052}; });
     }},
};

class StrictTest : public ::testing::TestWithParam<StrictVector> {
 protected:
  Decision Judge(const Chain &chain, bool strict) {
    Policy policy;
    EXPECT_TRUE(policy.Set("certgate", {"require"}).ok());
    EXPECT_TRUE(policy.Set("strict", {strict ? "on" : "off"}).ok());
    for (const auto &[key, args] : GetParam().lenient_keys) {
      const Status status = policy.Set(key, args);
      EXPECT_TRUE(status.ok()) << status.message();
    }
    ossl::UniquePtr<X509_STORE> store(X509_STORE_new());
    for (const Issued &anchor : chain.anchors) X509_STORE_add_cert(store.get(), anchor.cert.get());
    ossl::UniquePtr<STACK_OF(X509)> sent(sk_X509_new_null());
    for (const Issued &cert : chain.sent) {
      X509_up_ref(cert.cert.get());
      sk_X509_push(sent.get(), cert.cert.get());
    }
    evidence_ = BuildChainEvidence(chain.leaf.cert.get(), sent.get(), store.get());
    return Evaluate(policy, &evidence_, FixedClock(kNow));
  }

  ChainEvidence evidence_;
};

TEST_P(StrictTest, RefusedUnderStrictAndWarnedOfWhenOff) {
  const StrictVector &vector = GetParam();
  PkiBuilder pki(kNow);
  const Chain chain = vector.build(pki);
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

INSTANTIATE_TEST_SUITE_P(EveryCheck, StrictTest, ::testing::ValuesIn(kVectors), VectorName);

TEST(StrictChecksTest, EveryChainCheckHasAVector) {
  for (const StrictCheck &check : StrictChecks()) {
    if (check.reason == CG_REASON_REVOCATION_UNAVAILABLE) continue;  // CRL checks: revocation tests
    const bool covered = std::any_of(std::begin(kVectors), std::end(kVectors),
                                     [&](const StrictVector &v) { return check.name == v.check; });
    EXPECT_TRUE(covered) << check.name;
  }
}

TEST(StrictChecksTest, AGoodChainHasNoDefect) {
  PkiBuilder pki(kNow);
  const Chain chain = Standard(pki, Same, Same, Same);
  ossl::UniquePtr<X509_STORE> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), chain.anchors.front().cert.get());
  ossl::UniquePtr<STACK_OF(X509)> sent(sk_X509_new_null());
  X509_up_ref(chain.sent.front().cert.get());
  sk_X509_push(sent.get(), chain.sent.front().cert.get());
  const ChainEvidence evidence = BuildChainEvidence(chain.leaf.cert.get(), sent.get(), store.get());
  EXPECT_TRUE(evidence.strict_defects.empty()) << evidence.strict_defects.front().check->name;
}

}  // namespace
}  // namespace certgate
