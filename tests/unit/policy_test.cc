// Tests of the directive vocabulary: every key's accepted and rejected values with
// the exact error text the three front ends will show, spellings, merging, files.
#include <certgate/certgate.h>
#include <certgate/policy.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <re2/re2.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "directive_names.h"

namespace certgate {
namespace {

using ::testing::StartsWith;

// A fresh directory per test, removed afterwards.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/certgate_policy_test.XXXXXX";
    char *made = mkdtemp(tmpl);
    path_ = made != nullptr ? made : "";
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;

  const std::string &path() const { return path_; }
  std::string Write(const std::string &name, const std::string &content) const {
    std::string file = path_ + "/" + name;
    std::ofstream(file, std::ios::binary) << content;
    return file;
  }

 private:
  std::string path_;
};

// A self-signed P-256 certificate in PEM, made now so nothing checked in expires.
std::string MakeSelfSignedPem(const std::string &common_name) {
  ossl::UniquePtr<EVP_PKEY> key(EVP_EC_gen("P-256"));
  ossl::UniquePtr<X509> cert(X509_new());
  if (!key || !cert) return "";
  X509_set_version(cert.get(), X509_VERSION_3);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
  X509_NAME *name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char *>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), name);
  X509_set_pubkey(cert.get(), key.get());
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) return "";
  ossl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert.get());
  char *data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

std::string SubjectCn(const std::shared_ptr<X509> &cert) {
  char buf[256] = {0};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert.get()), NID_commonName, buf, sizeof(buf));
  return buf;
}

const char kHex64[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

// ---- key spellings ----

struct SpellingCase {
  const char *spelling;
  const char *canonical;
};
void PrintTo(const SpellingCase &c, std::ostream *out) { *out << '"' << c.spelling << '"'; }

class PolicyCanonicalKeyTest : public ::testing::TestWithParam<SpellingCase> {};

TEST_P(PolicyCanonicalKeyTest, MapsToCanonical) {
  EXPECT_EQ(CanonicalKey(GetParam().spelling), GetParam().canonical);
}

INSTANTIATE_TEST_SUITE_P(
    Spellings, PolicyCanonicalKeyTest,
    ::testing::Values(
        SpellingCase{"certgate_subject", "subject"}, SpellingCase{"subject", "subject"},
        SpellingCase{"CertGateSubject", "subject"}, SpellingCase{"CERTGATE_SUBJECT", "subject"},
        SpellingCase{"certgate", "certgate"}, SpellingCase{"CertGate", "certgate"},
        SpellingCase{"CERTGATE", "certgate"},
        SpellingCase{"CertGateRequireKeyUsage", "require_key_usage"},
        SpellingCase{"CertGateMaxStale", "max_stale"},
        SpellingCase{"CertGateFetchMaxSize", "fetch_max_size"}, SpellingCase{"CertGateCrl", "crl"},
        SpellingCase{"CertGateSan", "san"}, SpellingCase{"certgate_Reject_At", "reject_at"},
        SpellingCase{"require_key_usage", "require_key_usage"}, SpellingCase{"foo", ""},
        SpellingCase{"certgate_foo", ""}, SpellingCase{"", ""}));

TEST(PolicyKeysTest, ListsEveryKeyInDesignOrder) {
  const std::vector<std::string_view> expected = {"certgate",
                                                  "trusted_issuers",
                                                  "require_eku",
                                                  "require_key_usage",
                                                  "subject",
                                                  "san",
                                                  "pin",
                                                  "deny",
                                                  "min_key",
                                                  "deny_signature",
                                                  "max_depth",
                                                  "clock_skew",
                                                  "strict",
                                                  "expiry_warning",
                                                  "revocation",
                                                  "revocation_scope",
                                                  "revocation_sources",
                                                  "crl",
                                                  "revocation_wait",
                                                  "max_stale",
                                                  "fetch_timeout",
                                                  "fetch_max_size",
                                                  "fetch_proxy",
                                                  "fetch_allow",
                                                  "cache",
                                                  "reject_status",
                                                  "reject_body",
                                                  "reject_detail",
                                                  "reject_header",
                                                  "reject_at",
                                                  "log",
                                                  "status",
                                                  "trusted_proxies",
                                                  "shared_cache"};
  EXPECT_EQ(PolicyKeys(), expected);
}

// Every key reached through all three front-end spellings.
TEST(PolicyKeysTest, EveryKeyHasNginxApacheAndBareSpellings) {
  for (std::string_view key : PolicyKeys()) {
    std::string nginx = key == "certgate" ? "certgate" : "certgate_" + std::string(key);
    std::string apache = "CertGate";
    bool upper = key != "certgate";
    for (char c : key) {
      if (c == '_') {
        upper = true;
      } else if (key != "certgate") {
        apache += upper ? static_cast<char>(toupper(c)) : c;
        upper = false;
      }
    }
    EXPECT_EQ(CanonicalKey(nginx), key) << nginx;
    EXPECT_EQ(CanonicalKey(apache), key) << apache;
    EXPECT_EQ(CanonicalKey(key), key) << key;
  }
}

// CERTGATE_KEYS: the spellings both adapters register are the ones the core
// reads, and the ones its messages use (SpellDirectives), in the core's order.
TEST(PolicyKeysTest, KeyTableSpellingsAreTheCoresOwn) {
  struct Row {
    const char *key, *nginx, *httpd;
  };
  const Row rows[] = {
#define CG_KEY_TEST_ROW(id, key, nginx, httpd, field, contexts, min_args, max_args, path, help) \
  {key, nginx, httpd},
      CERTGATE_KEYS(CG_KEY_TEST_ROW)
#undef CG_KEY_TEST_ROW
  };
  ASSERT_EQ(std::size(rows), PolicyKeys().size());
  for (size_t i = 0; i < std::size(rows); ++i) {
    const Row &row = rows[i];
    EXPECT_EQ(PolicyKeys()[i], row.key);
    EXPECT_EQ(CanonicalKey(row.nginx), row.key) << row.nginx;
    EXPECT_EQ(CanonicalKey(row.httpd), row.key) << row.httpd;
    if (std::string_view(row.key) != "certgate") {
      EXPECT_EQ(SpellDirectives(row.nginx, DirectiveStyle::kHttpd), row.httpd) << row.nginx;
    }
  }
}

// Path keys: files read (resolved from a policy file's directory) and the
// cache directory (a server's prefix); nothing else is a path.
TEST(PolicyKeysTest, PathKinds) {
  for (std::string_view key : PolicyKeys()) {
    const int want = key == "trusted_issuers" || key == "crl" ? CG_KEY_PATH_CONF
                     : key == "cache"                         ? CG_KEY_PATH_PREFIX
                                                              : CG_KEY_PATH_NONE;
    EXPECT_EQ(KeyPathKind(key), want) << key;
  }
  EXPECT_EQ(KeyPathKind("nonsense"), CG_KEY_PATH_NONE);
}

// Each default is written once, in Policy; the C API and the revocation
// settings read it from there.
TEST(PolicyDefaultsTest, OnePlaceForEachDefault) {
  const Policy unset;
  EXPECT_EQ(unset.EffectiveRevocationWait(), std::chrono::milliseconds(2000));
  EXPECT_EQ(unset.EffectiveMaxStale(), std::chrono::seconds(3600));
  EXPECT_EQ(unset.EffectiveRevocationScope(), RevocationScope::kChain);
  EXPECT_EQ(unset.EffectiveRevocationSources(),
            (std::vector<RevocationSource>{RevocationSource::kCrl, RevocationSource::kOcsp}));
  EXPECT_EQ(unset.EffectiveRejectStatus(), 403);
  EXPECT_STREQ(unset.EffectiveCacheDir(), "/var/cache/certgate");
  EXPECT_EQ(cg_policy_revocation_wait_ms(nullptr), 2000);
  EXPECT_STREQ(cg_policy_cache_dir(nullptr), "/var/cache/certgate");
  EXPECT_EQ(cg_policy_reject_status(nullptr, CG_REASON_EXPIRED), 403);
  EXPECT_EQ(cg_policy_reject_status(nullptr, CG_REASON_INTERNAL_ERROR), 500);

  Policy set;
  ASSERT_TRUE(set.Set("revocation_wait", {"750ms"}).ok());
  ASSERT_TRUE(set.Set("max_stale", {"2h"}).ok());
  ASSERT_TRUE(set.Set("revocation_scope", {"leaf"}).ok());
  ASSERT_TRUE(set.Set("revocation_sources", {"ocsp"}).ok());
  ASSERT_TRUE(set.Set("cache", {"/srv/cg"}).ok());
  EXPECT_EQ(set.EffectiveRevocationWait(), std::chrono::milliseconds(750));
  EXPECT_EQ(set.EffectiveMaxStale(), std::chrono::seconds(7200));
  EXPECT_EQ(set.EffectiveRevocationScope(), RevocationScope::kLeaf);
  EXPECT_EQ(set.EffectiveRevocationSources(),
            std::vector<RevocationSource>{RevocationSource::kOcsp});
  EXPECT_STREQ(set.EffectiveCacheDir(), "/srv/cg");
}

// ---- accepted values ----

struct SetCase {
  const char *key;
  std::vector<std::string> args;
  const char *error;  // "" when accepted
};

void PrintTo(const SetCase &c, std::ostream *os) {
  *os << c.key;
  for (const std::string &arg : c.args) *os << " " << arg;
}

class PolicySetAcceptsTest : public ::testing::TestWithParam<SetCase> {};

TEST_P(PolicySetAcceptsTest, Accepts) {
  ERR_clear_error();
  Policy policy;
  Status status = policy.Set(GetParam().key, GetParam().args);
  EXPECT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(ERR_peek_error(), 0u);  // certgate.h: the OpenSSL error queue is left as found
}

INSTANTIATE_TEST_SUITE_P(
    EveryKey, PolicySetAcceptsTest,
    ::testing::Values(
        SetCase{"certgate", {"require"}, ""}, SetCase{"certgate", {"OPTIONAL"}, ""},
        SetCase{"require_eku", {"clientAuth"}, ""}, SetCase{"require_eku", {"ANY"}, ""},
        SetCase{"require_key_usage", {"digitalSignature", "keyAgreement"}, ""},
        SetCase{"require_key_usage", {"off"}, ""},
        SetCase{"subject", {"CN=alice", "OU=People"}, ""},
        SetCase{"subject", {"~^CN=[a-z]+,OU=People"}, ""},
        SetCase{"subject", {"emailAddress=a@example.com", "DC=com", "serialNumber=7"}, ""},
        SetCase{"san", {"dns:*.example.com", "email:*@example.com", "uri:spiffe://prod/*"}, ""},
        SetCase{"san", {"ip:192.0.2.1", "IP:2001:db8::1", "ip:*"}, ""},
        SetCase{"pin", {std::string("sha256:") + kHex64}, ""},
        SetCase{"deny", {std::string("SPKI:") + kHex64}, ""},
        SetCase{"min_key", {"rsa=3072", "ec=384"}, ""}, SetCase{"min_key", {"EC=256"}, ""},
        SetCase{"deny_signature", {"md5", "sha1", "sha224"}, ""},
        SetCase{"deny_signature", {"off"}, ""}, SetCase{"max_depth", {"1"}, ""},
        SetCase{"max_depth", {"32"}, ""}, SetCase{"clock_skew", {"0"}, ""},
        SetCase{"expiry_warning", {"14d"}, ""}, SetCase{"revocation", {"hard_fail"}, ""},
        SetCase{"revocation", {"Cache_Only"}, ""}, SetCase{"revocation_scope", {"leaf"}, ""},
        SetCase{"revocation_sources", {"ocsp", "crl"}, ""},
        SetCase{"revocation_wait", {"500ms"}, ""}, SetCase{"max_stale", {"1h30m"}, ""},
        SetCase{"fetch_timeout", {"5s"}, ""}, SetCase{"fetch_max_size", {"512k"}, ""},
        SetCase{"fetch_proxy", {"http://proxy.example:3128"}, ""},
        SetCase{"fetch_proxy", {"off"}, ""},
        SetCase{"fetch_allow", {"*.example.com", "127.0.0.1", "pki.example", "::1"}, ""},
        SetCase{"cache", {"/var/cache/certgate"}, ""}, SetCase{"reject_status", {"400"}, ""},
        SetCase{"reject_status", {"599"}, ""}, SetCase{"reject_body", {"JSON"}, ""},
        SetCase{"reject_detail", {"on"}, ""}, SetCase{"reject_header", {"ON"}, ""},
        SetCase{"reject_at", {"handshake"}, ""}, SetCase{"log", {"json", "accepts"}, ""},
        SetCase{"log", {"accepts", "kv"}, ""}, SetCase{"status", {"on"}, ""}));

// ---- rejected values, with the exact message ----

class PolicySetRejectsTest : public ::testing::TestWithParam<SetCase> {};

TEST_P(PolicySetRejectsTest, RejectsWithMessage) {
  ERR_clear_error();
  Policy policy;
  Status status = policy.Set(GetParam().key, GetParam().args);
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.message(), GetParam().error);
  EXPECT_EQ(ERR_peek_error(), 0u);
}

INSTANTIATE_TEST_SUITE_P(
    EveryKey, PolicySetRejectsTest,
    ::testing::Values(
        SetCase{"foo", {"on"}, "unknown key \"foo\""},
        SetCase{"certgate", {"maybe"}, "certgate: \"maybe\" is not one of off, optional, require"},
        SetCase{"certgate", {"on"}, "certgate: \"on\" is not one of off, optional, require"},
        SetCase{"certgate", {}, "certgate: takes one value, got 0"},
        SetCase{"certgate", {"off", "require"}, "certgate: takes one value, got 2"},
        SetCase{"require_eku",
                {"serverAuth"},
                "certgate_require_eku: \"serverAuth\" is not one of clientAuth, any"},
        SetCase{"require_key_usage",
                {"signing"},
                "certgate_require_key_usage: \"signing\" is not one of digitalSignature, "
                "nonRepudiation, contentCommitment, keyEncipherment, dataEncipherment, "
                "keyAgreement, keyCertSign, cRLSign, encipherOnly, decipherOnly, off"},
        SetCase{"require_key_usage",
                {"digitalSignature", "off"},
                "certgate_require_key_usage: \"off\" cannot be combined with other values"},
        SetCase{"subject", {}, "certgate_subject: takes at least one value, got 0"},
        SetCase{"subject", {"alice"}, "certgate_subject: \"alice\" is not ATTR=value or ~regex"},
        SetCase{"subject", {"CN="}, "certgate_subject: \"CN=\" is not ATTR=value or ~regex"},
        SetCase{"subject", {"~"}, "certgate_subject: \"~\" is not ATTR=value or ~regex"},
        SetCase{"subject",
                {"XX=a"},
                "certgate_subject: \"XX=a\" is not a known DN attribute (CN, OU, O, ...)"},
        SetCase{"san",
                {"dns:"},
                "certgate_san: \"dns:\" is not dns:, email:, uri: or ip: followed by a pattern"},
        SetCase{"san",
                {"host:a"},
                "certgate_san: \"host:a\" is not dns:, email:, uri: or ip: followed by a "
                "pattern"},
        SetCase{"san",
                {"ip:10.0.0"},
                "certgate_san: \"ip:10.0.0\" is not ip: followed by an IPv4 or IPv6 address or *"},
        SetCase{"pin",
                {"sha256:abcd"},
                "certgate_pin: \"sha256:abcd\" is not sha256:<64 hex digits> or spki:<64 hex "
                "digits>"},
        SetCase{"deny",
                {std::string("md5:") + kHex64},
                "certgate_deny: \"md5:0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
                "abcdef\" is not sha256:<64 hex digits> or spki:<64 hex digits>"},
        SetCase{"min_key", {"rsa=abc"}, "certgate_min_key: \"rsa=abc\" is not a number"},
        SetCase{"min_key", {"rsa=0"}, "certgate_min_key: \"rsa=0\" is not a positive number"},
        SetCase{"min_key",
                {"ed25519=1"},
                "certgate_min_key: \"ed25519=1\" is not rsa=N, ec=N or dsa=N"},
        SetCase{"min_key", {"rsa=2048", "rsa=4096"}, "certgate_min_key: \"rsa=4096\" repeats rsa"},
        SetCase{"min_key",
                {"rsa=2048", "ec=256", "dsa=2048", "rsa=1"},
                "certgate_min_key: takes 1 to 3 values, got 4"},
        SetCase{"deny_signature",
                {"sha3"},
                "certgate_deny_signature: \"sha3\" is not one of md5, sha1, sha224, sha256, "
                "sha384, sha512 (or off alone)"},
        SetCase{"max_depth", {"0"}, "certgate_max_depth: \"0\" is not between 1 and 32"},
        SetCase{"max_depth", {"33"}, "certgate_max_depth: \"33\" is not between 1 and 32"},
        SetCase{"max_depth", {"-1"}, "certgate_max_depth: \"-1\" is not a number"},
        SetCase{"clock_skew",
                {"60x"},
                "certgate_clock_skew: \"60x\" is not a time (like 60s, 5m, 2h, 14d)"},
        SetCase{"expiry_warning",
                {"1500ms"},
                "certgate_expiry_warning: \"1500ms\" is not a whole number of seconds"},
        SetCase{"max_stale",
                {"30m1h"},
                "certgate_max_stale: \"30m1h\" is not a time (like 60s, 5m, 2h, 14d)"},
        SetCase{"revocation_wait",
                {"soon"},
                "certgate_revocation_wait: \"soon\" is not a time (like 500ms, 2s, 1m)"},
        SetCase{"fetch_timeout",
                {""},
                "certgate_fetch_timeout: \"\" is not a time (like 500ms, 2s, 1m)"},
        SetCase{"revocation",
                {"on"},
                "certgate_revocation: \"on\" is not one of off, cache_only, soft_fail, hard_fail"},
        SetCase{"revocation_scope",
                {"all"},
                "certgate_revocation_scope: \"all\" is not one of leaf, chain"},
        SetCase{"revocation_sources",
                {"crl", "CRL"},
                "certgate_revocation_sources: \"CRL\" is given twice"},
        SetCase{"revocation_sources",
                {"ldap"},
                "certgate_revocation_sources: \"ldap\" is not one of crl, ocsp"},
        SetCase{"crl",
                {"/nonexistent/certgate.crl"},
                "certgate_crl: cannot read \"/nonexistent/certgate.crl\": No such file or "
                "directory"},
        SetCase{"fetch_max_size",
                {"32q"},
                "certgate_fetch_max_size: \"32q\" is not a size (like 512k, 32m, 1g)"},
        SetCase{"fetch_max_size", {"0"}, "certgate_fetch_max_size: \"0\" is not a positive size"},
        SetCase{"fetch_proxy",
                {"proxy:3128"},
                "certgate_fetch_proxy: \"proxy:3128\" is not an http:// or https:// URL, or off"},
        SetCase{"fetch_proxy",
                {"http://"},
                "certgate_fetch_proxy: \"http://\" is not an http:// or https:// URL, or off"},
        SetCase{"fetch_allow",
                {"http://pki.example"},
                "certgate_fetch_allow: \"http://pki.example\" is not a host pattern (like "
                "*.example.com, pki.example, 192.0.2.1)"},
        SetCase{"fetch_allow",
                {""},
                "certgate_fetch_allow: \"\" is not a host pattern (like *.example.com, "
                "pki.example, 192.0.2.1)"},
        SetCase{"cache", {"cache/dir"}, "certgate_cache: \"cache/dir\" is not an absolute path"},
        SetCase{
            "reject_status", {"302"}, "certgate_reject_status: \"302\" is not between 400 and 599"},
        SetCase{"reject_status", {"4o3"}, "certgate_reject_status: \"4o3\" is not a number"},
        SetCase{"reject_body",
                {"xml"},
                "certgate_reject_body: \"xml\" is not one of text, json, html, off"},
        SetCase{"reject_detail", {"yes"}, "certgate_reject_detail: \"yes\" is not one of on, off"},
        SetCase{"reject_header", {"1"}, "certgate_reject_header: \"1\" is not one of on, off"},
        SetCase{"reject_at",
                {"connect"},
                "certgate_reject_at: \"connect\" is not one of request, handshake"},
        SetCase{"log", {"syslog"}, "certgate_log: \"syslog\" is not one of kv, json, accepts"},
        SetCase{"log", {"kv", "json"}, "certgate_log: \"json\": only one of kv, json may be given"},
        SetCase{"status", {"enabled"}, "certgate_status: \"enabled\" is not one of on, off"}));

// ---- values as stored ----

TEST(PolicySetTest, KeywordsAreCaseInsensitive) {
  for (const char *word : {"require", "Require", "REQUIRE"}) {
    Policy policy;
    ASSERT_TRUE(policy.Set("certgate", {word}).ok()) << word;
    EXPECT_EQ(policy.EffectiveMode(), Mode::kRequire) << word;
  }
}

TEST(PolicySetTest, AnySpellingOfTheKeySetsTheSameField) {
  Policy policy;
  ASSERT_TRUE(policy.Set("CertGateMaxDepth", {"3"}).ok());
  EXPECT_EQ(policy.max_depth, 3);
  ASSERT_TRUE(policy.Set("CERTGATE_MAX_DEPTH", {"4"}).ok());
  EXPECT_EQ(policy.max_depth, 4);
  ASSERT_TRUE(policy.Set("max_depth", {"7"}).ok());
  EXPECT_EQ(policy.max_depth, 7);  // setting twice: last wins
}

TEST(PolicySetTest, ErrorNamesTheNginxSpellingWhateverWasUsed) {
  Policy policy;
  Status status = policy.Set("CertGateMinKey", {"rsa=abc"});
  EXPECT_EQ(status.message(), "certgate_min_key: \"rsa=abc\" is not a number");
}

TEST(PolicySetTest, FailedSetLeavesFieldUnset) {
  Policy policy;
  ASSERT_FALSE(policy.Set("max_depth", {"99"}).ok());
  EXPECT_FALSE(policy.max_depth.has_value());
}

TEST(PolicySetTest, KeyUsageBitsAreOred) {
  Policy policy;
  ASSERT_TRUE(
      policy.Set("require_key_usage", {"digitalSignature", "contentCommitment", "KEYAGREEMENT"})
          .ok());
  EXPECT_EQ(policy.EffectiveKeyUsage(),
            KeyUsageMask{KU_DIGITAL_SIGNATURE | KU_NON_REPUDIATION | KU_KEY_AGREEMENT});
  ASSERT_TRUE(policy.Set("require_key_usage", {"off"}).ok());
  EXPECT_EQ(policy.EffectiveKeyUsage(), 0u);
}

TEST(PolicySetTest, SubjectAttributesNormalizeToShortNames) {
  Policy policy;
  ASSERT_TRUE(
      policy.Set("subject", {"cn=alice", "organizationalUnitName=People", "EMAILADDRESS=a@b"})
          .ok());
  ASSERT_EQ(policy.subject->size(), 3u);
  EXPECT_EQ((*policy.subject)[0].attribute, "CN");
  EXPECT_EQ((*policy.subject)[0].value, "alice");
  EXPECT_FALSE((*policy.subject)[0].is_regex);
  EXPECT_EQ((*policy.subject)[1].attribute, "OU");
  EXPECT_EQ((*policy.subject)[2].attribute, "emailAddress");
}

TEST(PolicySetTest, SubjectValueMayContainEquals) {
  Policy policy;
  ASSERT_TRUE(policy.Set("subject", {"CN=a=b"}).ok());
  EXPECT_EQ((*policy.subject)[0].value, "a=b");
}

TEST(PolicySetTest, SubjectRegexIsCompiled) {
  Policy policy;
  ASSERT_TRUE(policy.Set("subject", {"~^CN=[a-z]+,OU=People$"}).ok());
  const SubjectRule &rule = (*policy.subject)[0];
  EXPECT_TRUE(rule.is_regex);
  EXPECT_EQ(rule.pattern, "^CN=[a-z]+,OU=People$");
  ASSERT_NE(rule.regex, nullptr);
  EXPECT_TRUE(RE2::PartialMatch("CN=alice,OU=People", *rule.regex));
  EXPECT_FALSE(RE2::PartialMatch("CN=Alice,OU=People", *rule.regex));
}

TEST(PolicySetTest, SubjectBadRegexIsReportedNotThrown) {
  Policy policy;
  Status status = policy.Set("subject", {"~["});
  ASSERT_FALSE(status.ok());
  EXPECT_THAT(status.message(),
              StartsWith("certgate_subject: \"~[\" is not a valid regular expression: "));
}

// The semantics std::regex_search (ECMAScript) had, kept with RE2: a search
// anywhere in the subject unless anchored, case-sensitive, ^ and $ at the
// ends of the whole subject.
TEST(PolicySetTest, SubjectRegexSearchesCaseSensitively) {
  Policy policy;
  ASSERT_TRUE(policy.Set("subject", {"~OU=People", "~^CN=a\\d+,", "~O=Example$"}).ok());
  const std::vector<SubjectRule> &rules = *policy.subject;
  EXPECT_TRUE(RE2::PartialMatch("CN=a1,OU=People,O=Example", *rules[0].regex));
  EXPECT_FALSE(RE2::PartialMatch("CN=a1,OU=people,O=Example", *rules[0].regex));
  EXPECT_TRUE(RE2::PartialMatch("CN=a12,OU=People", *rules[1].regex));
  EXPECT_FALSE(RE2::PartialMatch("OU=x,CN=a12,OU=People", *rules[1].regex));
  EXPECT_TRUE(RE2::PartialMatch("CN=a,O=Example", *rules[2].regex));
  EXPECT_FALSE(RE2::PartialMatch("CN=a,O=Examples", *rules[2].regex));
  EXPECT_FALSE(RE2::PartialMatch("CN=a,O=Example\nx", *rules[2].regex)) << "no multiline $";
}

// Patterns std::regex could not survive (issue 9 §2) fail when set, with the
// value named and the message short enough for a log line.
TEST(PolicySetTest, SubjectHostileRegexFailsWhenSet) {
  struct Case {
    std::string pattern;
    std::string error;
  };
  const std::string nested = std::string(20000, '(') + "a" + std::string(20000, ')');
  std::string huge;  // compiles to more than kSubjectRegexMaxMem
  for (int i = 0; i < 200; ++i) huge += "[a-z]{1000}";
  const Case cases[] = {
      {"~a{77777777777777777777}", "invalid repetition size: {77777777777777777777}"},
      {"~a{1001}", "invalid repetition size: {1001}"},
      {"~a{2,99999999999}", "invalid repetition size: {2,99999999999}"},
      {"~" + huge, "pattern too large"},
      {"~(a)\\1", "invalid escape sequence"},    // ECMAScript backreferences are not RE2
      {"~(?=a)", "invalid perl operator: (?="},  // nor lookahead
      {"~(a", "missing ): (a"},
      {"~\xff", "invalid UTF-8"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.pattern.substr(0, 40));
    Policy policy;
    const Status status = policy.Set("subject", {c.pattern});
    ASSERT_FALSE(status.ok());
    EXPECT_THAT(status.message(), StartsWith("certgate_subject: \"" + c.pattern.substr(0, 20)));
    EXPECT_THAT(status.message(), ::testing::HasSubstr("is not a valid regular expression: "));
    EXPECT_THAT(status.message(), ::testing::HasSubstr(c.error));
    EXPECT_LT(status.message().size(), 600u) << status.message();
    EXPECT_FALSE(policy.subject.has_value());
  }
  // Deep nesting overflowed std::regex's compiler; RE2 parses it without recursion.
  Policy policy;
  ASSERT_TRUE(policy.Set("subject", {"~" + nested}).ok());
  EXPECT_TRUE(RE2::PartialMatch("CN=a", *(*policy.subject)[0].regex));
  // Braces that are no repeat stay literal text, as before.
  ASSERT_TRUE(policy.Set("subject", {"~CN=\\{123456},[{]1234567}"}).ok());
  EXPECT_TRUE(RE2::PartialMatch("CN={123456},{1234567}", *(*policy.subject)[0].regex));
}

TEST(PolicySetTest, SanRulesKeepTypeAndPattern) {
  Policy policy;
  ASSERT_TRUE(policy.Set("san", {"DNS:*.example.com", "uri:spiffe://prod/*", "ip:::1"}).ok());
  ASSERT_EQ(policy.san->size(), 3u);
  EXPECT_EQ((*policy.san)[0].type, SanType::kDns);
  EXPECT_EQ((*policy.san)[0].pattern, "*.example.com");
  EXPECT_EQ((*policy.san)[1].type, SanType::kUri);
  EXPECT_EQ((*policy.san)[1].pattern, "spiffe://prod/*");
  EXPECT_EQ((*policy.san)[2].type, SanType::kIp);
  EXPECT_EQ((*policy.san)[2].pattern, "::1");
}

TEST(PolicySetTest, PinAcceptsColonsAndAnyCase) {
  std::string with_colons;
  for (int i = 0; i < 32; ++i) with_colons += std::string(i ? ":" : "") + "A5";
  Policy policy;
  ASSERT_TRUE(policy.Set("pin", {"SHA256:" + with_colons, std::string("spki:") + kHex64}).ok());
  ASSERT_EQ(policy.pin->size(), 2u);
  EXPECT_EQ((*policy.pin)[0].kind, Pin::Kind::kCertSha256);
  EXPECT_EQ((*policy.pin)[0].digest, std::vector<uint8_t>(32, 0xa5));
  EXPECT_EQ((*policy.pin)[1].kind, Pin::Kind::kSpkiSha256);
  EXPECT_EQ((*policy.pin)[1].digest[0], 0x01);
  EXPECT_EQ((*policy.pin)[1].digest[31], 0xef);
}

TEST(PolicySetTest, PinRejectsMisplacedColons) {
  Policy policy;
  std::string hex(kHex64);
  EXPECT_FALSE(policy.Set("pin", {"sha256:0" + std::string(":") + hex.substr(1)}).ok());
  EXPECT_FALSE(policy.Set("pin", {"sha256:" + hex + ":"}).ok());
  EXPECT_FALSE(policy.Set("pin", {"sha256:" + hex + "00"}).ok());  // 33 bytes
}

TEST(PolicySetTest, MinKeyEitherOrBoth) {
  Policy policy;
  ASSERT_TRUE(policy.Set("min_key", {"ec=384"}).ok());
  EXPECT_EQ(policy.EffectiveMinKey().rsa_bits, 2048);
  EXPECT_EQ(policy.EffectiveMinKey().ec_bits, 384);
  ASSERT_TRUE(policy.Set("min_key", {"ec=521", "RSA=4096"}).ok());
  EXPECT_EQ(policy.EffectiveMinKey().rsa_bits, 4096);
  EXPECT_EQ(policy.EffectiveMinKey().ec_bits, 521);
}

TEST(PolicySetTest, DenySignatureNormalizesAndOffEmpties) {
  Policy policy;
  ASSERT_TRUE(policy.Set("deny_signature", {"SHA1", "md5", "sha1"}).ok());
  EXPECT_EQ(policy.EffectiveDenySignature(), (std::vector<std::string>{"sha1", "md5"}));
  ASSERT_TRUE(policy.Set("deny_signature", {"OFF"}).ok());
  EXPECT_TRUE(policy.EffectiveDenySignature().empty());
  EXPECT_FALSE(policy.Set("deny_signature", {"off", "md5"}).ok());
}

struct DurationCase {
  const char *text;
  int64_t ms;
};
void PrintTo(const DurationCase &c, std::ostream *out) { *out << '"' << c.text << '"'; }

class PolicyDurationTest : public ::testing::TestWithParam<DurationCase> {};

// Parsed by a milliseconds key and a seconds key, where their ranges allow.
TEST_P(PolicyDurationTest, ParsesNginxTimes) {
  Policy policy;
  const bool in_fetch_timeout_range = GetParam().ms >= 100 && GetParam().ms <= 300000;
  ASSERT_TRUE(in_fetch_timeout_range || GetParam().ms % 1000 == 0) << "not parsed at all";
  if (in_fetch_timeout_range) {
    ASSERT_TRUE(policy.Set("fetch_timeout", {GetParam().text}).ok()) << GetParam().text;
    EXPECT_EQ(policy.fetch_timeout->count(), GetParam().ms) << GetParam().text;
  }
  if (GetParam().ms % 1000 == 0) {
    ASSERT_TRUE(policy.Set("max_stale", {GetParam().text}).ok()) << GetParam().text;
    EXPECT_EQ(policy.max_stale->count(), GetParam().ms / 1000) << GetParam().text;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Times, PolicyDurationTest,
    ::testing::Values(DurationCase{"0", 0}, DurationCase{"90", 90000}, DurationCase{"60s", 60000},
                      DurationCase{"5m", 300000}, DurationCase{"2h", 7200000},
                      DurationCase{"14d", 14 * 86400000LL}, DurationCase{"1w", 7 * 86400000LL},
                      DurationCase{"1h30m", 5400000}, DurationCase{"500ms", 500},
                      DurationCase{"1s500ms", 1500}));

// Every time key has a range; -t refuses the rest, naming value and range.
TEST(PolicySetTest, TimeKeysAreBounded) {
  struct Bound {
    const char *key;
    const char *highest;   // accepted
    const char *too_high;  // refused
    const char *too_low;   // refused ("" = 0 is accepted)
    const char *range;
  };
  const Bound bounds[] = {
      {"clock_skew", "1d", "1d1s", "", "between 0s and 1d"},
      {"expiry_warning", "365d", "366d", "", "between 0s and 365d"},
      {"max_stale", "30d", "31d", "", "between 0s and 30d"},
      {"revocation_wait", "60s", "60s1ms", "", "between 0s and 60s"},
      {"fetch_timeout", "5m", "5m1ms", "99ms", "between 100ms and 5m"},
  };
  for (const Bound &b : bounds) {
    SCOPED_TRACE(b.key);
    Policy policy;
    EXPECT_TRUE(policy.Set(b.key, {b.highest}).ok());
    const std::string directive = std::string("certgate_") + b.key;
    Status status = policy.Set(b.key, {b.too_high});
    EXPECT_EQ(status.message(), directive + ": \"" + b.too_high + "\" is not " + b.range);
    if (*b.too_low != '\0') {
      status = policy.Set(b.key, {b.too_low});
      EXPECT_EQ(status.message(), directive + ": \"" + b.too_low + "\" is not " + b.range);
      EXPECT_FALSE(policy.Set(b.key, {"0"}).ok()) << "no timeout at all";
    } else {
      EXPECT_TRUE(policy.Set(b.key, {"0"}).ok());
    }
    EXPECT_FALSE(policy.Set(b.key, {"100y"}).ok());
  }
  // What overflowed Apache's int (2 * revocation_wait in ms).
  EXPECT_EQ(Policy().Set("revocation_wait", {"13d"}).message(),
            "certgate_revocation_wait: \"13d\" is not between 0s and 60s");
}

TEST(PolicySetTest, DurationsRejectMalformed) {
  Policy policy;
  for (const char *bad : {"", "s", "1h30", "5s1h", "1m1m", "-5s", "1.5s", "5 s", "99999999999y"}) {
    EXPECT_FALSE(policy.Set("clock_skew", {bad}).ok()) << bad;
  }
}

TEST(PolicySetTest, SizesInBytes) {
  Policy policy;
  ASSERT_TRUE(policy.Set("fetch_max_size", {"32m"}).ok());
  EXPECT_EQ(policy.fetch_max_size, 32u << 20);
  ASSERT_TRUE(policy.Set("fetch_max_size", {"512K"}).ok());
  EXPECT_EQ(policy.fetch_max_size, 512u << 10);
  ASSERT_TRUE(policy.Set("fetch_max_size", {"1g"}).ok());
  EXPECT_EQ(policy.fetch_max_size, uint64_t{1} << 30);
  ASSERT_TRUE(policy.Set("fetch_max_size", {"1000"}).ok());
  EXPECT_EQ(policy.fetch_max_size, 1000u);
  EXPECT_FALSE(policy.Set("fetch_max_size", {"m"}).ok());
  EXPECT_FALSE(policy.Set("fetch_max_size", {"99999999999999999999"}).ok());
}

TEST(PolicySetTest, RevocationSourcesKeepOrder) {
  Policy policy;
  ASSERT_TRUE(policy.Set("revocation_sources", {"OCSP", "crl"}).ok());
  EXPECT_EQ(*policy.revocation_sources,
            (std::vector<RevocationSource>{RevocationSource::kOcsp, RevocationSource::kCrl}));
}

TEST(PolicySetTest, LogFormatAndAccepts) {
  Policy policy;
  ASSERT_TRUE(policy.Set("log", {"accepts"}).ok());
  EXPECT_EQ(policy.EffectiveLogFormat(), LogFormat::kKv);
  EXPECT_TRUE(policy.EffectiveLogAccepts());
  ASSERT_TRUE(policy.Set("log", {"JSON"}).ok());
  EXPECT_EQ(policy.EffectiveLogFormat(), LogFormat::kJson);
  EXPECT_FALSE(policy.EffectiveLogAccepts());
  ASSERT_TRUE(policy.Set("log", {"accepts", "json"}).ok());
  EXPECT_EQ(policy.EffectiveLogFormat(), LogFormat::kJson);
  EXPECT_TRUE(policy.EffectiveLogAccepts());
  EXPECT_FALSE(policy.Set("log", {"accepts", "accepts"}).ok());
}

TEST(PolicySetTest, FetchProxyOffIsSetButEmpty) {
  Policy policy;
  ASSERT_TRUE(policy.Set("fetch_proxy", {"Off"}).ok());
  ASSERT_TRUE(policy.fetch_proxy.has_value());
  EXPECT_EQ(*policy.fetch_proxy, "");
  ASSERT_TRUE(policy.Set("fetch_proxy", {"HTTPS://proxy.example:8443"}).ok());
  EXPECT_EQ(*policy.fetch_proxy, "HTTPS://proxy.example:8443");
}

TEST(PolicySetTest, FetchAllowLowercasesHostsAndRejectsPorts) {
  Policy policy;
  ASSERT_TRUE(policy.Set("fetch_allow", {"*.PKI.Example", "2001:db8::1"}).ok());
  EXPECT_EQ(*policy.fetch_allow, (std::vector<std::string>{"*.pki.example", "2001:db8::1"}));
  EXPECT_FALSE(policy.Set("fetch_allow", {"pki.example:80"}).ok());
  EXPECT_FALSE(policy.Set("fetch_allow", {"pki.example/crl"}).ok());
}

TEST(PolicySetTest, CrlAcceptsFileAndDirectory) {
  TempDir dir;
  std::string file = dir.Write("ca.crl", "not parsed here");
  Policy policy;
  ASSERT_TRUE(policy.Set("crl", {file, dir.path()}).ok());
  EXPECT_EQ(*policy.crl, (std::vector<std::string>{file, dir.path()}));
}

TEST(PolicySetTest, SimpleKeywordsStored) {
  Policy policy;
  ASSERT_TRUE(policy.Set("require_eku", {"any"}).ok());
  ASSERT_TRUE(policy.Set("revocation", {"SOFT_FAIL"}).ok());
  ASSERT_TRUE(policy.Set("revocation_scope", {"Leaf"}).ok());
  ASSERT_TRUE(policy.Set("reject_body", {"html"}).ok());
  ASSERT_TRUE(policy.Set("reject_detail", {"ON"}).ok());
  ASSERT_TRUE(policy.Set("reject_at", {"handshake"}).ok());
  ASSERT_TRUE(policy.Set("reject_status", {"495"}).ok());
  ASSERT_TRUE(policy.Set("status", {"on"}).ok());
  ASSERT_TRUE(policy.Set("cache", {"/var/cache/certgate"}).ok());
  EXPECT_EQ(policy.EffectiveEku(), EkuRequirement::kAny);
  EXPECT_EQ(policy.EffectiveRevocation(), RevocationMode::kSoftFail);
  EXPECT_EQ(policy.revocation_scope, RevocationScope::kLeaf);
  EXPECT_EQ(policy.EffectiveRejectBody(), RejectBody::kHtml);
  EXPECT_TRUE(policy.EffectiveRejectDetail());
  EXPECT_EQ(policy.EffectiveRejectAt(), RejectAt::kHandshake);
  EXPECT_EQ(policy.EffectiveRejectStatus(), 495);
  EXPECT_EQ(policy.status, true);
  EXPECT_EQ(policy.cache, "/var/cache/certgate");
}

// ---- trusted_issuers ----

TEST(PolicyTrustedIssuersTest, LoadsEveryCertificate) {
  TempDir dir;
  std::string pem =
      MakeSelfSignedPem("Root A") + "# comment between\n" + MakeSelfSignedPem("Root B");
  std::string file = dir.Write("issuers.pem", pem);
  Policy policy;
  Status status = policy.Set("trusted_issuers", {file});
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(policy.trusted_issuers->path, file);
  ASSERT_EQ(policy.trusted_issuers->certs.size(), 2u);
  EXPECT_EQ(SubjectCn(policy.trusted_issuers->certs[0]), "Root A");
  EXPECT_EQ(SubjectCn(policy.trusted_issuers->certs[1]), "Root B");
  EXPECT_EQ(ERR_peek_error(), 0u);  // the end-of-file "error" is not left behind
}

TEST(PolicyTrustedIssuersTest, MissingFile) {
  Policy policy;
  Status status = policy.Set("trusted_issuers", {"/nonexistent/x.pem"});
  EXPECT_EQ(status.message(),
            "certgate_trusted_issuers: cannot read \"/nonexistent/x.pem\": No such file or "
            "directory");
}

TEST(PolicyTrustedIssuersTest, DirectoryIsNotReadable) {
  TempDir dir;
  Policy policy;
  Status status = policy.Set("trusted_issuers", {dir.path()});
  EXPECT_EQ(status.message(),
            "certgate_trusted_issuers: cannot read \"" + dir.path() + "\": " + strerror(EISDIR));
}

TEST(PolicyTrustedIssuersTest, FileWithoutCertificate) {
  TempDir dir;
  std::string file = dir.Write("empty.pem", "just text\n");
  Policy policy;
  Status status = policy.Set("trusted_issuers", {file});
  EXPECT_EQ(status.message(),
            "certgate_trusted_issuers: \"" + file + "\" holds no PEM certificate");
  EXPECT_EQ(ERR_peek_error(), 0u);
}

TEST(PolicyTrustedIssuersTest, CorruptCertificate) {
  TempDir dir;
  std::string file = dir.Write("bad.pem", MakeSelfSignedPem("Good") +
                                              "-----BEGIN CERTIFICATE-----\nAAAA\n"
                                              "-----END CERTIFICATE-----\n");
  Policy policy;
  Status status = policy.Set("trusted_issuers", {file});
  EXPECT_THAT(status.message(), StartsWith("certgate_trusted_issuers: \"" + file +
                                           "\" holds a bad PEM certificate: "));
  EXPECT_FALSE(policy.trusted_issuers.has_value());
  EXPECT_EQ(ERR_peek_error(), 0u);
}

// ---- defaults and inheritance ----

TEST(PolicyDefaultsTest, EffectiveValuesOfAnEmptyPolicy) {
  Policy policy;
  EXPECT_EQ(policy.EffectiveMode(), Mode::kOff);
  EXPECT_EQ(policy.EffectiveEku(), EkuRequirement::kClientAuth);
  EXPECT_EQ(policy.EffectiveKeyUsage(), KeyUsageMask{KU_DIGITAL_SIGNATURE});
  EXPECT_EQ(policy.EffectiveMinKey().rsa_bits, 2048);
  EXPECT_EQ(policy.EffectiveMinKey().ec_bits, 256);
  EXPECT_EQ(policy.EffectiveDenySignature(), (std::vector<std::string>{"md5", "sha1"}));
  EXPECT_EQ(policy.EffectiveMaxDepth(), 5);
  EXPECT_EQ(policy.EffectiveClockSkew(), std::chrono::seconds(60));
  EXPECT_EQ(policy.EffectiveExpiryWarning(), std::chrono::hours(14 * 24));
  EXPECT_EQ(policy.EffectiveRevocation(), RevocationMode::kOff);
  EXPECT_EQ(policy.EffectiveRejectStatus(), 403);
  EXPECT_EQ(policy.EffectiveRejectBody(), RejectBody::kText);
  EXPECT_FALSE(policy.EffectiveRejectDetail());
  EXPECT_FALSE(policy.EffectiveRejectHeader());  // off: it tells the client why
  EXPECT_EQ(policy.EffectiveRejectAt(), RejectAt::kRequest);
  EXPECT_EQ(policy.EffectiveLogFormat(), LogFormat::kKv);
  EXPECT_FALSE(policy.EffectiveLogAccepts());
}

TEST(PolicyInheritTest, UnsetTakesParentSetKeepsOwn) {
  Policy parent;
  ASSERT_TRUE(parent.Set("certgate", {"require"}).ok());
  ASSERT_TRUE(parent.Set("max_depth", {"3"}).ok());
  ASSERT_TRUE(parent.Set("subject", {"OU=People"}).ok());
  Policy child;
  ASSERT_TRUE(child.Set("max_depth", {"9"}).ok());
  child.InheritFrom(parent);
  EXPECT_EQ(child.EffectiveMode(), Mode::kRequire);
  EXPECT_EQ(child.EffectiveMaxDepth(), 9);
  ASSERT_TRUE(child.subject.has_value());
  EXPECT_EQ((*child.subject)[0].value, "People");
  EXPECT_EQ(parent.EffectiveMaxDepth(), 3);  // the parent is not touched
}

TEST(PolicyInheritTest, ExplicitOffIsNotOverriddenByParent) {
  Policy parent;
  ASSERT_TRUE(parent.Set("deny_signature", {"sha1"}).ok());
  ASSERT_TRUE(parent.Set("fetch_proxy", {"http://proxy:3128"}).ok());
  ASSERT_TRUE(parent.Set("require_key_usage", {"keyAgreement"}).ok());
  Policy child;
  ASSERT_TRUE(child.Set("deny_signature", {"off"}).ok());
  ASSERT_TRUE(child.Set("fetch_proxy", {"off"}).ok());
  ASSERT_TRUE(child.Set("require_key_usage", {"off"}).ok());
  child.InheritFrom(parent);
  EXPECT_TRUE(child.EffectiveDenySignature().empty());
  EXPECT_EQ(child.fetch_proxy, "");
  EXPECT_EQ(child.EffectiveKeyUsage(), 0u);
}

// Every key set on the parent reaches an empty child: no field is forgotten.
TEST(PolicyInheritTest, EveryKeyIsInherited) {
  TempDir dir;
  std::string issuers = dir.Write("issuers.pem", MakeSelfSignedPem("Root"));
  const std::vector<std::pair<std::string, std::vector<std::string>>> settings = {
      {"certgate", {"optional"}},
      {"trusted_issuers", {issuers}},
      {"require_eku", {"any"}},
      {"require_key_usage", {"keyAgreement"}},
      {"subject", {"CN=a"}},
      {"san", {"dns:a"}},
      {"pin", {std::string("sha256:") + kHex64}},
      {"deny", {std::string("spki:") + kHex64}},
      {"min_key", {"rsa=4096"}},
      {"deny_signature", {"sha224"}},
      {"max_depth", {"2"}},
      {"clock_skew", {"1s"}},
      {"strict", {"off"}},
      {"expiry_warning", {"1d"}},
      {"revocation", {"hard_fail"}},
      {"revocation_scope", {"leaf"}},
      {"revocation_sources", {"ocsp"}},
      {"crl", {dir.path()}},
      {"revocation_wait", {"1s"}},
      {"max_stale", {"2h"}},
      {"fetch_timeout", {"3s"}},
      {"fetch_max_size", {"1m"}},
      {"fetch_proxy", {"http://p:1"}},
      {"fetch_allow", {"pki.example"}},
      {"cache", {"/var/cache/cg"}},
      {"reject_status", {"401"}},
      {"reject_body", {"json"}},
      {"reject_detail", {"on"}},
      {"reject_header", {"on"}},
      {"reject_at", {"handshake"}},
      {"log", {"json", "accepts"}},
      {"status", {"on"}},
      {"trusted_proxies", {"192.0.2.0/24"}},
      {"shared_cache", {"redis://127.0.0.1:6390/1"}},
  };
  ASSERT_EQ(settings.size(), PolicyKeys().size());
  Policy parent;
  for (const auto &[key, args] : settings) {
    Status status = parent.Set(key, args);
    ASSERT_TRUE(status.ok()) << status.message();
  }
  Policy child;
  child.InheritFrom(parent);
  EXPECT_EQ(child.EffectiveMode(), Mode::kOptional);
  EXPECT_EQ(child.trusted_issuers->certs.size(), 1u);
  EXPECT_EQ(child.trusted_proxies, std::vector<std::string>{"192.0.2.0/24"});
  EXPECT_EQ(child.shared_cache->Display(), "redis://127.0.0.1:6390/1");
  EXPECT_EQ(child.EffectiveEku(), EkuRequirement::kAny);
  EXPECT_EQ(child.EffectiveKeyUsage(), KeyUsageMask{KU_KEY_AGREEMENT});
  EXPECT_EQ(child.subject->size(), 1u);
  EXPECT_EQ(child.san->size(), 1u);
  EXPECT_EQ(child.pin->size(), 1u);
  EXPECT_EQ(child.deny->size(), 1u);
  EXPECT_EQ(child.EffectiveMinKey().rsa_bits, 4096);
  EXPECT_EQ(child.EffectiveDenySignature(), std::vector<std::string>{"sha224"});
  EXPECT_EQ(child.EffectiveMaxDepth(), 2);
  EXPECT_EQ(child.EffectiveClockSkew(), std::chrono::seconds(1));
  EXPECT_FALSE(child.EffectiveStrict());
  EXPECT_EQ(child.EffectiveExpiryWarning(), std::chrono::seconds(86400));
  EXPECT_EQ(child.EffectiveRevocation(), RevocationMode::kHardFail);
  EXPECT_EQ(child.revocation_scope, RevocationScope::kLeaf);
  EXPECT_EQ(child.revocation_sources->size(), 1u);
  EXPECT_EQ(child.crl->size(), 1u);
  EXPECT_EQ(child.revocation_wait, std::chrono::milliseconds(1000));
  EXPECT_EQ(child.max_stale, std::chrono::seconds(7200));
  EXPECT_EQ(child.fetch_timeout, std::chrono::milliseconds(3000));
  EXPECT_EQ(child.fetch_max_size, uint64_t{1} << 20);
  EXPECT_EQ(child.fetch_proxy, "http://p:1");
  EXPECT_EQ(child.fetch_allow->size(), 1u);
  EXPECT_EQ(child.cache, "/var/cache/cg");
  EXPECT_EQ(child.EffectiveRejectStatus(), 401);
  EXPECT_EQ(child.EffectiveRejectBody(), RejectBody::kJson);
  EXPECT_TRUE(child.EffectiveRejectDetail());
  EXPECT_TRUE(child.EffectiveRejectHeader());
  EXPECT_EQ(child.EffectiveRejectAt(), RejectAt::kHandshake);
  EXPECT_EQ(child.EffectiveLogFormat(), LogFormat::kJson);
  EXPECT_TRUE(child.EffectiveLogAccepts());
  EXPECT_EQ(child.status, true);
}

// ---- policy files ----

TEST(PolicyFileTest, LoadsStatementsInAnySpelling) {
  TempDir dir;
  std::string file = dir.Write("policy.conf",
                               "# api policy\n"
                               "certgate require;\n"
                               "CertGateMaxDepth 3;   # trailing comment\n"
                               "certgate_subject OU=People\n"
                               "                 O=Example;\n"
                               "reject_body json;log json accepts;\n");
  Policy policy;
  Status status = policy.LoadFile(file);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(policy.EffectiveMode(), Mode::kRequire);
  EXPECT_EQ(policy.EffectiveMaxDepth(), 3);
  ASSERT_EQ(policy.subject->size(), 2u);
  EXPECT_EQ((*policy.subject)[1].attribute, "O");
  EXPECT_EQ(policy.EffectiveRejectBody(), RejectBody::kJson);
  EXPECT_TRUE(policy.EffectiveLogAccepts());
}

TEST(PolicyFileTest, QuotedTokensKeepSpacesAndRegexEscapes) {
  TempDir dir;
  std::string file = dir.Write("policy.conf",
                               "subject \"~^CN=Alice Smith,O=Ex\\.ample$\" 'OU=Two Words'"
                               " \"CN=say \\\"hi\\\"\";\n");
  Policy policy;
  Status status = policy.LoadFile(file);
  ASSERT_TRUE(status.ok()) << status.message();
  ASSERT_EQ(policy.subject->size(), 3u);
  EXPECT_EQ((*policy.subject)[0].pattern, "^CN=Alice Smith,O=Ex\\.ample$");
  EXPECT_TRUE(RE2::PartialMatch("CN=Alice Smith,O=Ex.ample", *(*policy.subject)[0].regex));
  EXPECT_FALSE(RE2::PartialMatch("CN=Alice Smith,O=Exxample", *(*policy.subject)[0].regex));
  EXPECT_EQ((*policy.subject)[1].value, "Two Words");
  EXPECT_EQ((*policy.subject)[2].value, "say \"hi\"");
}

TEST(PolicyFileTest, HashInsideTokenIsNotAComment) {
  TempDir dir;
  std::string file = dir.Write("policy.conf", "subject CN=a#b; # comment\n");
  Policy policy;
  ASSERT_TRUE(policy.LoadFile(file).ok());
  EXPECT_EQ((*policy.subject)[0].value, "a#b");
}

TEST(PolicyFileTest, SetErrorNamesFileAndLine) {
  TempDir dir;
  std::string file = dir.Write("policy.conf",
                               "certgate require;\n"
                               "\n"
                               "min_key rsa=abc;\n");
  Policy policy;
  EXPECT_EQ(policy.LoadFile(file).message(),
            file + ":3: certgate_min_key: \"rsa=abc\" is not a number");
}

TEST(PolicyFileTest, ErrorInMultiLineStatementNamesItsFirstLine) {
  TempDir dir;
  std::string file = dir.Write("policy.conf",
                               "certgate require;\n"
                               "san dns:a.example\n"
                               "    bogus:x;\n");
  Policy policy;
  EXPECT_THAT(policy.LoadFile(file).message(),
              StartsWith(file + ":2: certgate_san: \"bogus:x\" is not"));
}

TEST(PolicyFileTest, UnknownKey) {
  TempDir dir;
  std::string file = dir.Write("policy.conf", "certgate on_off;\nfrobnicate yes;\n");
  Policy policy;
  // The first bad statement is the one reported.
  EXPECT_EQ(policy.LoadFile(file).message(),
            file + ":1: certgate: \"on_off\" is not one of off, optional, require");
  std::string unknown = dir.Write("unknown.conf", "\nfrobnicate yes;\n");
  EXPECT_EQ(policy.LoadFile(unknown).message(), unknown + ":2: unknown key \"frobnicate\"");
}

TEST(PolicyFileTest, MissingSemicolonAtEndOfFile) {
  TempDir dir;
  std::string file = dir.Write("policy.conf",
                               "certgate require;\n"
                               "max_depth 3;\n"
                               "# next\n"
                               "\n"
                               "reject_status 401\n");
  Policy policy;
  EXPECT_EQ(policy.LoadFile(file).message(), file + ":5: missing \";\" at end of file");
}

TEST(PolicyFileTest, UnterminatedQuoteAndStraySemicolon) {
  TempDir dir;
  std::string quote = dir.Write("quote.conf", "certgate require;\nsubject \"CN=a;\n\n");
  Policy policy;
  EXPECT_EQ(policy.LoadFile(quote).message(), quote + ":2: unterminated quoted string");
  std::string semi = dir.Write("semi.conf", "certgate require;\n;\n");
  EXPECT_EQ(policy.LoadFile(semi).message(), semi + ":2: unexpected \";\"");
}

TEST(PolicyFileTest, UnreadableFile) {
  Policy policy;
  Status status = policy.LoadFile("/nonexistent/policy.conf");
  EXPECT_EQ(status.message(),
            "cannot read \"/nonexistent/policy.conf\": No such file or directory");
}

TEST(PolicyFileTest, EmptyFileIsAnEmptyPolicy) {
  TempDir dir;
  std::string file = dir.Write("policy.conf", "# nothing here\n\n");
  Policy policy;
  EXPECT_TRUE(policy.LoadFile(file).ok());
  EXPECT_FALSE(policy.mode.has_value());
}

TEST(PolicyFileTest, ErrorLeavesPolicyUnchanged) {
  TempDir dir;
  std::string file = dir.Write("policy.conf", "max_depth 2;\nmax_depth 99;\n");
  Policy policy;
  ASSERT_TRUE(policy.Set("max_depth", {"7"}).ok());
  EXPECT_FALSE(policy.LoadFile(file).ok());
  EXPECT_EQ(policy.EffectiveMaxDepth(), 7);
}

TEST(PolicyFileTest, RelativePathsAreFoundNextToTheFile) {
  TempDir dir;
  dir.Write("issuers.pem", MakeSelfSignedPem("Root"));
  dir.Write("ca.crl", "x");
  std::string file = dir.Write("policy.conf", "trusted_issuers issuers.pem;\ncrl ca.crl;\n");
  Policy policy;
  Status status = policy.LoadFile(file);
  ASSERT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(policy.trusted_issuers->path, dir.path() + "/issuers.pem");
  EXPECT_EQ(*policy.crl, std::vector<std::string>{dir.path() + "/ca.crl"});
}

}  // namespace
}  // namespace certgate
