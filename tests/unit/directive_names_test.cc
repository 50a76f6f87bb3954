#include "directive_names.h"

#include <certgate/decision.h>
#include <gtest/gtest.h>

namespace certgate {
namespace {

TEST(DirectiveNamesTest, HttpdSpellingOfEveryDirectiveName) {
  const DirectiveStyle httpd = DirectiveStyle::kHttpd;
  EXPECT_EQ(SpellDirectives("raise certgate_max_stale", httpd), "raise CertGateMaxStale");
  EXPECT_EQ(SpellDirectives("certgate_crl, or certgate_revocation soft_fail", httpd),
            "CertGateCrl, or CertGateRevocation soft_fail");
  EXPECT_EQ(SpellDirectives("larger than certgate_fetch_max_size (1024 bytes)", httpd),
            "larger than CertGateFetchMaxSize (1024 bytes)");
  EXPECT_EQ(SpellDirectives("no certificate; certgate require is set here", httpd),
            "no certificate; CertGate require is set here");
}

TEST(DirectiveNamesTest, OtherWordsAndNginxStyleAreLeftAlone) {
  const DirectiveStyle httpd = DirectiveStyle::kHttpd;
  for (const char *text :
       {"certgate could not judge this connection", "so certgate fetches it",
        "http://certgate_crl.example/x.crl names no_certgate_key", "mycertgate_crl", ""}) {
    EXPECT_EQ(SpellDirectives(text, httpd), text);
  }
  EXPECT_EQ(SpellDirectives("raise certgate_max_stale", DirectiveStyle::kNginx),
            "raise certgate_max_stale");
}

// The style is the process's (httpd sets it when the module loads): a decision
// spells its detail and hint in the style of the moment it is made.
TEST(DirectiveNamesTest, DecisionsRenderDetailAndHintInTheProcessStyle) {
  SetDirectiveStyle(DirectiveStyle::kHttpd);
  Decision decision =
      Decision::Deny({CG_REASON_REVOCATION_STALE, 0, "past nextUpdate + certgate_max_stale 2 s",
                      "raise certgate_max_stale"},
                     nullptr);
  const std::string detail = decision.Field(CG_FIELD_DETAIL);
  const std::string hint = decision.Field(CG_FIELD_HINT);
  SetDirectiveStyle(DirectiveStyle::kNginx);
  EXPECT_EQ(detail, "past nextUpdate + CertGateMaxStale 2 s");
  EXPECT_EQ(hint, "raise CertGateMaxStale");
}

}  // namespace
}  // namespace certgate
