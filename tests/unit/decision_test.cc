// Decision: fields are rendered when the decision is made, so a published
// decision can be read from several threads at once (issue 9 §5: HTTP/2
// streams of one connection read one decision under mod_http2).
#include <certgate/decision.h>
#include <gtest/gtest.h>
#include <pki_builder.h>

#include <array>
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "cert_fields.h"

namespace certgate {
namespace {

constexpr int64_t kNow = 1800000000;

std::array<std::string, CG_FIELD_COUNT> AllFields(const Decision &decision) {
  std::array<std::string, CG_FIELD_COUNT> out;
  for (int field = 0; field < CG_FIELD_COUNT; ++field) {
    out[field] = decision.Field(static_cast<cg_field>(field));
  }
  return out;
}

TEST(DecisionTest, FieldsAreRenderedWhenTheDecisionIsMade) {
  pki::PkiBuilder pki(kNow);
  const pki::Issued root = pki.SelfSigned(pki::PkiBuilder::CaSpec("CN=Root,O=Example"));
  const pki::Issued leaf = pki.Issue(root, pki::PkiBuilder::LeafSpec("CN=alice,O=Example"));
  ASSERT_TRUE(leaf) << pki.last_error();
  Decision decision = Decision::Allow(leaf.cert);
  EXPECT_EQ(decision.Field(CG_FIELD_VERDICT), "allow");
  EXPECT_EQ(decision.Field(CG_FIELD_SUBJECT), "CN=alice,O=Example");
  EXPECT_EQ(decision.Field(CG_FIELD_FINGERPRINT), "sha256:" + Sha256Hex(leaf.cert.get()));
  EXPECT_EQ(decision.Field(CG_FIELD_REVOCATION), "unchecked");
  decision.SetRevocation("good crl");
  EXPECT_EQ(decision.Field(CG_FIELD_REVOCATION), "good crl");
  decision.SetFindings({{CG_REASON_REVOKED, 0, "revoked", {}}});
  EXPECT_EQ(decision.Field(CG_FIELD_VERDICT), "deny");
  EXPECT_EQ(decision.Field(CG_FIELD_REASON), "revoked");
  EXPECT_EQ(decision.Field(CG_FIELD_DEPTH), "0");
  EXPECT_EQ(decision.Field(CG_FIELD_DETAIL), "revoked");
  EXPECT_EQ(decision.Field(CG_FIELD_SUBJECT), "CN=alice,O=Example");
  const Decision copy = decision;  // as ssl_hook copies the chain decision
  EXPECT_EQ(AllFields(copy), AllFields(decision));
  EXPECT_EQ(Decision::InternalError("x").Field(CG_FIELD_REASON), "internal_error");
  EXPECT_EQ(Decision::InternalError("x").Field(CG_FIELD_SUBJECT), "");
}

// Many threads read every field of a fresh decision at the same moment, many
// times over. With fields filled on first read this raced (ThreadSanitizer
// reports it; without it, torn strings or a crash).
TEST(DecisionTest, OneDecisionIsReadFromManyThreadsAtOnce) {
  pki::PkiBuilder pki(kNow);
  const pki::Issued root = pki.SelfSigned(pki::PkiBuilder::CaSpec("CN=Root,O=Example"));
  const pki::Issued leaf =
      pki.Issue(root, pki::PkiBuilder::LeafSpec("CN=" + std::string(2000, 'b') + ",O=Example"));
  ASSERT_TRUE(leaf) << pki.last_error();
  const std::array<std::string, CG_FIELD_COUNT> expected = [&] {
    Decision decision =
        Decision::Deny({CG_REASON_EXPIRED, 0, "expired certgate_clock_skew", {}}, leaf.cert);
    decision.SetRevocation("unchecked");
    return AllFields(decision);
  }();
  constexpr int kThreads = 8;
  constexpr int kRounds = 300;
  std::atomic<int> mismatches{0};
  for (int round = 0; round < kRounds; ++round) {
    Decision decision =
        Decision::Deny({CG_REASON_EXPIRED, 0, "expired certgate_clock_skew", {}}, leaf.cert);
    decision.SetRevocation("unchecked");
    const Decision &shared = decision;  // published: read-only from here on
    std::atomic<int> ready{0};
    std::vector<std::thread> readers;
    for (int t = 0; t < kThreads; ++t) {
      readers.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        for (int i = 0; i < CG_FIELD_COUNT; ++i) {
          const int field = (i + t) % CG_FIELD_COUNT;  // threads start on different fields
          if (shared.Field(static_cast<cg_field>(field)) != expected[field]) mismatches++;
        }
      });
    }
    for (std::thread &reader : readers) reader.join();
  }
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace
}  // namespace certgate
