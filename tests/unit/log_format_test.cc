#include <certgate/log_format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <pki_builder.h>

namespace certgate {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr int64_t kNow = 1800000000;

Decision DenyWithSubject(const std::string &subject, const std::string &detail) {
  pki::PkiBuilder pki(kNow);
  pki::Issued leaf = pki.SelfSigned(pki::PkiBuilder::LeafSpec(subject));
  return Decision::Deny({CG_REASON_EXPIRED, 0, detail, {}}, leaf.cert);
}

TEST(LogFormatTest, KvLineHasTheDesignFieldsInOrder) {
  const Decision decision = DenyWithSubject("CN=alice,OU=People,O=Example", "expired yesterday");
  const std::string line = FormatLogLine(decision, LogFormat::kKv);
  EXPECT_THAT(line, StartsWith("certgate: verdict=deny reason=expired substatus=403.17 depth=0 "
                               "subject=\"CN=alice,OU=People,O=Example\" issuer="));
  EXPECT_THAT(line, HasSubstr(" serial="));
  EXPECT_THAT(line, HasSubstr(" fingerprint=sha256:"));
  EXPECT_THAT(line, HasSubstr(" not_after=20"));
  EXPECT_THAT(line, HasSubstr(" revocation=unchecked"));
  EXPECT_THAT(line, HasSubstr(" detail=\"expired yesterday\""));
  EXPECT_THAT(line, HasSubstr(" hint=\"renew the certificate named by depth\""));
}

TEST(LogFormatTest, AllowLineOmitsReasonAndHint) {
  pki::PkiBuilder pki(kNow);
  const Decision decision =
      Decision::Allow(pki.SelfSigned(pki::PkiBuilder::LeafSpec("CN=alice")).cert);
  const std::string line = FormatLogLine(decision, LogFormat::kKv);
  EXPECT_THAT(line, StartsWith("certgate: verdict=allow subject=\"CN=alice\""));
  EXPECT_THAT(line, Not(HasSubstr("reason=")));
  EXPECT_THAT(line, Not(HasSubstr("hint=")));
}

TEST(LogFormatTest, ControlCharactersCannotForgeLinesOrFields) {
  const Decision decision =
      DenyWithSubject("CN=x", "evil\n2026 certgate: verdict=allow \"quoted\" back\\slash\r\x01");
  const std::string line = FormatLogLine(decision, LogFormat::kKv);
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_EQ(line.find('\r'), std::string::npos);
  EXPECT_THAT(line, HasSubstr("detail=\"evil\\x0A2026 certgate: verdict=allow \\\"quoted\\\" "
                              "back\\\\slash\\x0D\\x01\""));
}

TEST(LogFormatTest, HostileDnIsEscapedBeforeItReachesTheLine) {
  // OpenSSL's RFC 2253 printer escapes control characters in names itself.
  const Decision decision = DenyWithSubject("CN=a\nb,O=x", "d");
  const std::string line = FormatLogLine(decision, LogFormat::kKv);
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(LogFormatTest, JsonLineIsEscapedJson) {
  const Decision decision = DenyWithSubject("CN=alice", "a \"b\"\n\xff");
  const std::string line = FormatLogLine(decision, LogFormat::kJson);
  EXPECT_THAT(line, StartsWith("certgate: {\"verdict\":\"deny\",\"reason\":\"expired\""));
  EXPECT_THAT(line, HasSubstr("\"detail\":\"a \\\"b\\\"\\u000a\\ufffd\""));
  EXPECT_THAT(line, EndsWith("}"));
}

TEST(LogFormatTest, LineIsBoundedAndStillWellFormed) {
  const Decision decision = DenyWithSubject("CN=alice", std::string(5000, 'x'));
  const std::string line = FormatLogLine(decision, LogFormat::kKv);
  EXPECT_LE(line.size(), kMaxLogLine);
  EXPECT_THAT(line, HasSubstr("xxx...\""));  // the value is cut, its quote closed
  const std::string short_line = FormatLogLine(decision, LogFormat::kKv, 200);
  EXPECT_LE(short_line.size(), 200u);
  EXPECT_THAT(short_line, EndsWith(" truncated=yes"));
  const std::string short_json = FormatLogLine(decision, LogFormat::kJson, 200);
  EXPECT_LE(short_json.size(), 200u);
  EXPECT_THAT(short_json, EndsWith(",\"truncated\":true}"));
}

TEST(RejectBodyTest, ClientSeesReasonOnlyUnlessDetailIsOn) {
  const Decision decision = DenyWithSubject("CN=alice", "secret detail");
  std::string type;
  EXPECT_EQ(FormatRejectBody(decision, RejectBody::kText, false, &type),
            "403.17 client certificate refused: expired\n");
  EXPECT_EQ(type, "text/plain");
  EXPECT_THAT(FormatRejectBody(decision, RejectBody::kText, true, &type),
              HasSubstr("secret detail"));
  EXPECT_EQ(FormatRejectBody(decision, RejectBody::kJson, false, &type),
            "{\"verdict\":\"deny\",\"reason\":\"expired\",\"substatus\":\"403.17\"}\n");
  EXPECT_EQ(type, "application/json");
  const std::string html = FormatRejectBody(decision, RejectBody::kHtml, false, &type);
  EXPECT_THAT(html, HasSubstr("<code>expired</code>"));
  EXPECT_THAT(html, Not(HasSubstr("secret")));
  EXPECT_EQ(FormatRejectBody(decision, RejectBody::kOff, true, &type), "");
}

TEST(RejectBodyTest, HtmlDetailIsEscaped) {
  const Decision decision = DenyWithSubject("CN=alice", "<script>alert(1)</script>");
  std::string type;
  const std::string html = FormatRejectBody(decision, RejectBody::kHtml, true, &type);
  EXPECT_THAT(html, Not(HasSubstr("<script>")));
  EXPECT_THAT(html, HasSubstr("&lt;script&gt;"));
}

}  // namespace
}  // namespace certgate
