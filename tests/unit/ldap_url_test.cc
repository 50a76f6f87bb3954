// LDAP CDP/AIA URLs (issue 11 §2): parsing (RFC 4516), the empty host filled
// in from certgate_ldap_server, percent decoding of AD CS DNs, the URL given
// to curl, and the decoding of curl's LDAP output.
#include "revocation/ldap_url.h"

#include <gmock/gmock.h>

#include "revocation/fetcher.h"

namespace certgate {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kAdcsCdp[] =
    "ldap:///CN=Corp%20Enterprise%20CA%202(4),CN=CRL,CN=CDP,CN=Public%20Key%20Services,"
    "CN=Services,CN=Configuration,DC=corp,DC=example,DC=com?certificateRevocationList?base?"
    "objectClass=cRLDistributionPoint";
constexpr char kAdcsDn[] =
    "CN=Corp Enterprise CA 2(4),CN=CRL,CN=CDP,CN=Public Key Services,CN=Services,"
    "CN=Configuration,DC=corp,DC=example,DC=com";

TEST(LdapUrlTest, AdcsCdpIsParsedAndPercentDecoded) {
  Result<LdapUrl> url = ParseLdapUrl(kAdcsCdp);
  ASSERT_TRUE(url.ok()) << url.status().message();
  EXPECT_FALSE(url->tls);
  EXPECT_EQ(url->host, "");
  EXPECT_EQ(url->port, 0);
  EXPECT_EQ(url->dn, kAdcsDn);
  EXPECT_THAT(url->attributes, ElementsAre("certificateRevocationList"));
  EXPECT_EQ(url->scope, "base");
  EXPECT_EQ(url->filter, "objectClass=cRLDistributionPoint");
}

TEST(LdapUrlTest, HostPortScopeFilterAndEscapedCommas) {
  Result<LdapUrl> url = ParseLdapUrl(
      "LDAPS://DC1.Corp.Example:3269/CN=CA%2CCN=AIA%2CDC=corp?cACertificate;binary,"
      "crossCertificatePair?SUB?(%26(objectClass=*)(cn=a%2Bb))");
  ASSERT_TRUE(url.ok()) << url.status().message();
  EXPECT_TRUE(url->tls);
  EXPECT_EQ(url->host, "dc1.corp.example");
  EXPECT_EQ(url->port, 3269);
  EXPECT_EQ(url->dn, "CN=CA,CN=AIA,DC=corp");
  EXPECT_THAT(url->attributes, ElementsAre("cACertificate;binary", "crossCertificatePair"));
  EXPECT_EQ(url->scope, "sub");
  EXPECT_EQ(url->filter, "(&(objectClass=*)(cn=a+b))");

  url = ParseLdapUrl("ldap://[2001:db8::5]:389/DC=corp");
  ASSERT_TRUE(url.ok()) << url.status().message();
  EXPECT_EQ(url->host, "2001:db8::5");
  EXPECT_EQ(url->port, 389);
  EXPECT_TRUE(url->attributes.empty());
  EXPECT_EQ(url->scope, "base");  // RFC 4516's default
}

TEST(LdapUrlTest, BadUrlsAreRefusedSayingWhy) {
  auto error = [](const std::string &url) {
    Result<LdapUrl> parsed = ParseLdapUrl(url);
    return parsed.ok() ? std::string("parsed") : parsed.status().message();
  };
  EXPECT_THAT(error("http://x/"), HasSubstr("not an ldap"));
  EXPECT_THAT(error("ldap:///CN=a%2"), HasSubstr("percent escape in the DN"));
  EXPECT_THAT(error("ldap:///CN=a%zz"), HasSubstr("percent escape in the DN"));
  EXPECT_THAT(error("ldap:///CN=a?cn?tree"), HasSubstr("unknown scope \"tree\""));
  EXPECT_THAT(error("ldap:///CN=a?cn?base?(cn=*)?!x-secret"), HasSubstr("critical extension"));
  EXPECT_EQ(error("ldap:///CN=a?cn?base?(cn=*)?x-ignored"), "parsed");
  EXPECT_THAT(error("ldap://host:0/CN=a"), HasSubstr("bad host or port"));
  EXPECT_THAT(error("ldap://host:99999/CN=a"), HasSubstr("bad host or port"));
  EXPECT_THAT(error("ldap://user@host/CN=a"), HasSubstr("credentials"));
  EXPECT_THAT(error("ldap:///CN=a b"), HasSubstr("space"));
  EXPECT_THAT(error("ldap:///CN=a?a,b c"), HasSubstr("space"));
  EXPECT_THAT(error("ldap:///CN=a?a(b)"), HasSubstr("bad attribute"));
}

TEST(LdapUrlTest, EmptyHostIsFilledInAndTheDnEncodedForCurl) {
  Result<LdapUrl> url = ParseLdapUrl(kAdcsCdp);
  ASSERT_TRUE(url.ok());
  // Parentheses and spaces as %XX (OpenLDAP decodes them), commas and '=' kept.
  EXPECT_EQ(LdapRequestUrl(url.value(), "dc1.corp.example", kLdapCrlAttribute),
            "ldap://dc1.corp.example:389/CN=Corp%20Enterprise%20CA%202%284%29,CN=CRL,CN=CDP,"
            "CN=Public%20Key%20Services,CN=Services,CN=Configuration,DC=corp,DC=example,DC=com?"
            "certificateRevocationList?base?objectClass=cRLDistributionPoint");
  EXPECT_EQ(LdapServerName(url.value(), "192.0.2.5:3268"), "192.0.2.5:3268");
  EXPECT_EQ(LdapServerName(url.value(), "[2001:db8::5]"), "[2001:db8::5]:389");
  // A URL without attribute or filter: what is being fetched decides.
  url = ParseLdapUrl("ldaps://pki.example/CN=Root%2BCA");
  ASSERT_TRUE(url.ok());
  EXPECT_EQ(LdapRequestUrl(url.value(), "", kLdapDeltaCrlAttribute),
            "ldaps://pki.example:636/CN=Root%2BCA?deltaRevocationList%3Bbinary?base?"
            "%28objectClass=%2A%29");
  // Decoding what was encoded gives the DN back.
  Result<LdapUrl> again =
      ParseLdapUrl(LdapRequestUrl(ParseLdapUrl(kAdcsCdp).value(), "h", kLdapCrlAttribute));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->dn, kAdcsDn);
}

TEST(LdapUrlTest, ServerSpellings) {
  for (const char *good : {"dc1", "dc1.corp.example", "dc1:389", "192.0.2.5", "192.0.2.5:636",
                           "[2001:db8::5]", "[2001:db8::5]:389"}) {
    EXPECT_TRUE(IsLdapServerSpec(good)) << good;
  }
  for (const char *bad :
       {"", ":389", "dc1:", "dc1:x", "dc1:70000", "ldap://dc1", "dc 1", "[2001:db8::5", "dc1/x"}) {
    EXPECT_FALSE(IsLdapServerSpec(bad)) << bad;
  }
  EXPECT_EQ(LdapServerHost("DC1.Corp:389"), "dc1.corp");
  EXPECT_EQ(LdapServerHost("[2001:DB8::5]:389"), "2001:db8::5");
}

TEST(LdapUrlTest, RefusalNamesTheMissingLdapServerAndFetchAllow) {
  FetchLimits limits;
  EXPECT_THAT(UrlRefusal(kAdcsCdp, limits), HasSubstr("no LDAP server configured"));
  limits.ldap_servers = {"dc1.corp.example", "127.0.0.1:3389"};
  EXPECT_EQ(UrlRefusal(kAdcsCdp, limits), "");
  limits.allow = {"127.0.0.1"};
  EXPECT_EQ(UrlRefusal(kAdcsCdp, limits), "");  // the second server may be asked
  limits.allow = {"*.other.example"};
  EXPECT_THAT(UrlRefusal(kAdcsCdp, limits),
              HasSubstr("no certgate_ldap_server host is in certgate_fetch_allow"));
  EXPECT_THAT(UrlRefusal("ldap://ldap.corp.example/CN=x", limits),
              HasSubstr("host ldap.corp.example is not in certgate_fetch_allow"));
  EXPECT_EQ(UrlRefusal("ldaps://a.other.example/CN=x", limits), "");
  EXPECT_THAT(UrlRefusal("ldap:///CN=a?cn?tree", limits), HasSubstr("not a usable LDAP URL"));
  EXPECT_THAT(UrlRefusal("ftp://x/y", limits), HasSubstr("ftp is not fetched"));
  // The fetch_allow-only spelling knows no LDAP server.
  EXPECT_THAT(UrlRefusal(kAdcsCdp, std::vector<std::string>{}),
              HasSubstr("no LDAP server configured"));
}

TEST(LdapUrlTest, CurlRepliesAreDecoded) {
  // As libcurl's OpenLDAP backend writes them: base64 for ";binary" values.
  const std::string reply =
      "DN: cn=Corp Enterprise CA 2(4),cn=CDP,dc=corp\n"
      "\tcn: Corp Enterprise CA 2(4)\n"
      "\tcertificateRevocationList;binary:: MIIBAgMEBQ==\n"
      "\tdeltaRevocationList;binary:: AAEC\n"
      "\n";
  Result<std::string> value = LdapValueFromReply(reply, "certificateRevocationList");
  ASSERT_TRUE(value.ok()) << value.status().message();
  EXPECT_EQ(value.value(), std::string("\x30\x82\x01\x02\x03\x04\x05", 7));
  value = LdapValueFromReply(reply, "DeltaRevocationList;binary");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value.value(), std::string("\x00\x01\x02", 3));
  value = LdapValueFromReply(reply, "cn");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value.value(), "Corp Enterprise CA 2(4)");
  value = LdapValueFromReply(reply, "cACertificate;binary");
  ASSERT_FALSE(value.ok());
  EXPECT_THAT(value.status().message(), HasSubstr("has no cACertificate;binary value"));
  value = LdapValueFromReply("", "cACertificate;binary");
  ASSERT_FALSE(value.ok());
  EXPECT_THAT(value.status().message(), HasSubstr("found no entry"));
  value = LdapValueFromReply("DN: x\n\tcACertificate;binary:: AAE\n", "cACertificate");
  EXPECT_FALSE(value.ok());
  // Trailing blanks do not hide the padding (no zero bytes appended).
  value = LdapValueFromReply("DN: x\n\tcACertificate;binary:: AA==    \n", "cACertificate");
  ASSERT_TRUE(value.ok()) << value.status().message();
  EXPECT_EQ(value.value(), std::string("\x00", 1));
}

}  // namespace
}  // namespace certgate
