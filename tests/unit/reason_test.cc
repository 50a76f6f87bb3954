#include <certgate/reason.h>
#include <gtest/gtest.h>
#include <openssl/x509_vfy.h>

#include <set>
#include <string>

namespace certgate {
namespace {

TEST(ReasonTest, CodesAreUniqueLowercaseAndComplete) {
  std::set<std::string_view> codes;
  for (int i = 0; i < CG_REASON_COUNT; ++i) {
    const ReasonInfo &info = Info(static_cast<Reason>(i));
    EXPECT_EQ(info.reason, static_cast<Reason>(i));
    EXPECT_TRUE(codes.insert(info.code).second) << info.code;
    for (char c : info.code) EXPECT_TRUE(c == '_' || (c >= 'a' && c <= 'z')) << info.code;
    EXPECT_FALSE(info.meaning.empty());
    if (i != CG_REASON_NONE) {
      EXPECT_FALSE(info.hint.empty()) << info.code;
      EXPECT_FALSE(info.substatus.empty()) << info.code;
    }
  }
  // DESIGN §3: 20 reasons, chain_too_complex (issue 15), tls_handshake (issue 12), plus "none"
  EXPECT_EQ(codes.size(), 23u);
}

TEST(ReasonTest, SubstatusesFollowIis) {
  EXPECT_EQ(Info(CG_REASON_NO_CERT).substatus, "403.7");
  EXPECT_EQ(Info(CG_REASON_REVOKED).substatus, "403.13");
  EXPECT_EQ(Info(CG_REASON_REVOCATION_UNAVAILABLE).substatus, "403.13");
  EXPECT_EQ(Info(CG_REASON_REVOCATION_STALE).substatus, "403.13");
  EXPECT_EQ(Info(CG_REASON_UNTRUSTED_ISSUER).substatus, "403.16");
  EXPECT_EQ(Info(CG_REASON_EXPIRED).substatus, "403.17");
  EXPECT_EQ(Info(CG_REASON_IDENTITY_MISMATCH).substatus, "403.12");
  EXPECT_EQ(Info(CG_REASON_INTERNAL_ERROR).http_status, 500);
  EXPECT_EQ(Info(CG_REASON_CHAIN_TOO_COMPLEX).substatus, "403.16");
  EXPECT_EQ(Info(CG_REASON_CHAIN_TOO_COMPLEX).http_status, 403);
}

// New reasons are appended: the enum values are ABI (adapters, counters).
TEST(ReasonTest, ChainTooComplexIsAppended) {
  EXPECT_EQ(CG_REASON_IDENTITY_MISMATCH, 20);
  EXPECT_EQ(CG_REASON_CHAIN_TOO_COMPLEX, 21);
  EXPECT_EQ(CG_REASON_TLS_HANDSHAKE, 22);
  EXPECT_EQ(CG_REASON_COUNT, 23);
  EXPECT_EQ(Info(CG_REASON_CHAIN_TOO_COMPLEX).code, "chain_too_complex");
  EXPECT_EQ(Info(CG_REASON_TLS_HANDSHAKE).code, "tls_handshake");
}

TEST(ReasonTest, OutOfRangeIsInternalError) {
  EXPECT_EQ(Info(static_cast<Reason>(999)).code, "internal_error");
}

TEST(ReasonTest, PrecedenceIsTheTableOrder) {
  EXPECT_TRUE(TakesPrecedence(CG_REASON_MALFORMED, CG_REASON_UNTRUSTED_ISSUER));
  EXPECT_TRUE(TakesPrecedence(CG_REASON_UNTRUSTED_ISSUER, CG_REASON_BAD_SIGNATURE));
  EXPECT_TRUE(TakesPrecedence(CG_REASON_BAD_SIGNATURE, CG_REASON_EXPIRED));
  EXPECT_TRUE(TakesPrecedence(CG_REASON_EXPIRED, CG_REASON_WRONG_PURPOSE));
  EXPECT_FALSE(TakesPrecedence(CG_REASON_IDENTITY_MISMATCH, CG_REASON_PIN_MISMATCH));
}

TEST(ReasonTest, VerifyErrorsMapToReasons) {
  EXPECT_EQ(ReasonForVerifyError(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
            CG_REASON_UNTRUSTED_ISSUER);
  EXPECT_EQ(ReasonForVerifyError(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
            CG_REASON_CHAIN_INCOMPLETE);
  EXPECT_EQ(ReasonForVerifyError(X509_V_ERR_CERT_SIGNATURE_FAILURE), CG_REASON_BAD_SIGNATURE);
  EXPECT_EQ(ReasonForVerifyError(X509_V_ERR_INVALID_CA), CG_REASON_INVALID_CA);
  EXPECT_EQ(ReasonForVerifyError(X509_V_ERR_CERT_HAS_EXPIRED), CG_REASON_EXPIRED);
  EXPECT_EQ(ReasonForVerifyError(X509_V_ERR_INVALID_EXTENSION), CG_REASON_MALFORMED);
  EXPECT_EQ(ReasonForVerifyError(X509_V_ERR_OUT_OF_MEM), CG_REASON_INTERNAL_ERROR);
}

}  // namespace
}  // namespace certgate
