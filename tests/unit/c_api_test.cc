#include <certgate/certgate.h>
#include <certgate/ossl_ptr.h>
#include <gtest/gtest.h>
#include <pki_builder.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

extern "C" {
int cg_c_test_policy(char *message, size_t size);
int cg_c_test_reasons(void);
int cg_c_test_counters(void);
int cg_c_test_no_cert(void);
int cg_c_test_evaluate(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *trust, int64_t now);
}

namespace {

constexpr int64_t kNow = 1800000000;

TEST(CApiTest, PolicyFromC) {
  char message[512] = {};
  EXPECT_EQ(cg_c_test_policy(message, sizeof message), 0);
  EXPECT_STREQ(message, "certgate_min_key: \"rsa=abc\" is not a number");
}

TEST(CApiTest, ReasonsFromC) { EXPECT_EQ(cg_c_test_reasons(), 0); }

TEST(CApiTest, CountersFromC) { EXPECT_EQ(cg_c_test_counters(), 0); }

TEST(CApiTest, NoCertFromC) { EXPECT_EQ(cg_c_test_no_cert(), 0); }

TEST(CApiTest, EvaluateFromC) {
  certgate::pki::PkiBuilder pki(kNow);
  const auto root = pki.SelfSigned(certgate::pki::PkiBuilder::CaSpec("CN=Root"));
  const auto leaf = pki.Issue(root, certgate::pki::PkiBuilder::LeafSpec("CN=alice,OU=People"));
  certgate::ossl::UniquePtr<X509_STORE> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root.cert.get());
  EXPECT_EQ(cg_c_test_evaluate(leaf.cert.get(), nullptr, store.get(), kNow), 0);
}

// A policy with one value per key; null (and a test failure) if a key refuses it.
cg_policy *PolicyWith(const std::vector<std::pair<const char *, std::string>> &settings) {
  cg_policy *policy = cg_policy_new();
  for (const auto &[key, value] : settings) {
    const cg_str arg{value.data(), value.size()};
    if (cg_policy_set(policy, key, &arg, 1, nullptr) != CG_OK) {
      ADD_FAILURE() << key << " " << value;
      cg_policy_free(policy);
      return nullptr;
    }
  }
  return policy;
}

// Issue 9 §5: cg_decision_format_* are snprintf-like, so a caller can tell a
// cut body (a JSON one would not parse) and allocate what it needs.
TEST(CApiTest, FormatReturnsTheNeededLengthLikeSnprintf) {
  certgate::pki::PkiBuilder pki(kNow);
  const auto root = pki.SelfSigned(certgate::pki::PkiBuilder::CaSpec("CN=Root"));
  std::string dn = "CN=alice";
  for (int i = 0; i < 100; ++i) dn += ",OU=" + std::string(60, static_cast<char>('a' + i % 26));
  const auto leaf = pki.Issue(root, certgate::pki::PkiBuilder::LeafSpec(dn));
  ASSERT_TRUE(leaf.cert);
  certgate::ossl::UniquePtr<X509_STORE> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root.cert.get());
  cg_policy *policy = PolicyWith({{"certgate", "require"},
                                  {"certgate_subject", "OU=People"},
                                  {"certgate_reject_body", "json"},
                                  {"certgate_reject_detail", "on"}});
  ASSERT_NE(policy, nullptr);
  cg_decision *decision = cg_evaluate(policy, leaf.cert.get(), nullptr, store.get(), kNow);
  ASSERT_EQ(cg_decision_reason(decision), CG_REASON_IDENTITY_MISMATCH);

  const char *type = nullptr;
  const size_t need = cg_decision_format_body(decision, policy, &type, nullptr, 0);
  EXPECT_STREQ(type, "application/json");
  EXPECT_GT(need, 1000u) << "the detail names the subject";
  std::vector<char> full(need + 1, 'x');
  EXPECT_EQ(cg_decision_format_body(decision, policy, &type, full.data(), full.size()), need);
  EXPECT_EQ(full[need], '\0');
  const std::string body(full.data(), need);
  EXPECT_EQ(body.rfind("{\"verdict\":\"deny\",\"reason\":\"identity_mismatch\"", 0), 0u) << body;
  EXPECT_EQ(body.substr(body.size() - 2), "}\n");
  EXPECT_NE(body.find("...\",\"hint\":"), std::string::npos) << "a JSON value is capped";
  // Too small: cut, terminated, and the result says so (>= size).
  char small[100];
  EXPECT_EQ(cg_decision_format_body(decision, policy, &type, small, sizeof small), need);
  EXPECT_EQ(std::strlen(small), sizeof small - 1);
  EXPECT_EQ(body.compare(0, sizeof small - 1, small), 0);

  // An HTML body names the whole subject: far longer than any fixed buffer.
  const cg_str html{"html", 4};
  ASSERT_EQ(cg_policy_set(policy, "certgate_reject_body", &html, 1, nullptr), CG_OK);
  const size_t html_need = cg_decision_format_body(decision, policy, &type, nullptr, 0);
  EXPECT_STREQ(type, "text/html");
  EXPECT_GT(html_need, 6000u);
  std::vector<char> page(html_need + 1, 'x');
  EXPECT_EQ(cg_decision_format_body(decision, policy, &type, page.data(), page.size()), html_need);
  const std::string page_text(page.data(), html_need);
  EXPECT_EQ(page_text.substr(page_text.size() - 15), "</body></html>\n");
  EXPECT_NE(page_text.find("OU=" + std::string(60, 'a' + 99 % 26) + ",OU="), std::string::npos);

  // The log line is bounded by the core (well formed, "truncated"), and its
  // length is reported the same way.
  for (cg_log_format format : {CG_LOG_KV, CG_LOG_JSON}) {
    const size_t line_need = cg_decision_format_log(decision, format, nullptr, 0);
    EXPECT_GT(line_need, 100u);
    EXPECT_LE(line_need, 4096u);
    std::vector<char> line(line_need + 1, 'x');
    EXPECT_EQ(cg_decision_format_log(decision, format, line.data(), line.size()), line_need);
    EXPECT_EQ(std::strlen(line.data()), line_need);
    char tiny[10];
    EXPECT_EQ(cg_decision_format_log(decision, format, tiny, sizeof tiny), line_need);
    EXPECT_EQ(std::string(tiny), std::string(line.data(), 9));
  }
  EXPECT_EQ(cg_decision_format_log(nullptr, CG_LOG_KV, nullptr, 0), 0u);
  cg_decision_free(decision);
  cg_policy_free(policy);
}

// Issue 10 §4: what the adapters no longer decide or size themselves.
// Issue 12: certgate_reject_header names the reason of a refusal, only when on
// (it tells the client why), never for an allow.
TEST(CApiTest, RejectHeaderOnlyWhenOnAndOnlyForRefusals) {
  certgate::pki::PkiBuilder pki(kNow);
  const auto root = pki.SelfSigned(certgate::pki::PkiBuilder::CaSpec("CN=Root"));
  const auto leaf = pki.Issue(root, certgate::pki::PkiBuilder::LeafSpec("CN=alice,OU=Staff"));
  certgate::ossl::UniquePtr<X509_STORE> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root.cert.get());
  cg_policy *off = PolicyWith({{"certgate", "require"}, {"certgate_subject", "OU=People"}});
  cg_policy *on = PolicyWith(
      {{"certgate", "require"}, {"certgate_subject", "OU=People"}, {"CertGateRejectHeader", "on"}});
  cg_policy *allows = PolicyWith({{"certgate", "require"}, {"certgate_reject_header", "on"}});
  ASSERT_TRUE(off && on && allows);
  cg_decision *refused = cg_evaluate(on, leaf.cert.get(), nullptr, store.get(), kNow);
  cg_decision *allowed = cg_evaluate(allows, leaf.cert.get(), nullptr, store.get(), kNow);
  ASSERT_EQ(cg_decision_verdict(allowed), CG_VERDICT_ALLOW);
  const cg_str value = cg_decision_reject_header(refused, on);
  EXPECT_EQ(std::string(value.data, value.len), "identity_mismatch");
  EXPECT_EQ(cg_decision_reject_header(refused, off).data, nullptr);
  EXPECT_EQ(cg_decision_reject_header(allowed, allows).data, nullptr);
  const cg_str undecided = cg_decision_reject_header(nullptr, on);
  EXPECT_EQ(std::string(undecided.data, undecided.len), "internal_error");
  EXPECT_STREQ(CG_REJECT_HEADER_NAME, "X-Certgate-Reason");
  cg_decision_free(refused);
  cg_decision_free(allowed);
  cg_policy_free(off);
  cg_policy_free(on);
  cg_policy_free(allows);
}

void *VectorAlloc(void *pool, size_t size) {
  auto *blocks = static_cast<std::vector<std::unique_ptr<char[]>> *>(pool);
  blocks->push_back(std::make_unique<char[]>(size));
  return blocks->back().get();
}

void *FailingAlloc(void *, size_t) { return nullptr; }

TEST(CApiTest, AdapterHelpersWriteWholeTextsAndDecideForTheServer) {
  certgate::pki::PkiBuilder pki(kNow);
  const auto root = pki.SelfSigned(certgate::pki::PkiBuilder::CaSpec("CN=Root"));
  const auto leaf = pki.Issue(root, certgate::pki::PkiBuilder::LeafSpec("CN=alice"));
  certgate::ossl::UniquePtr<X509_STORE> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), root.cert.get());
  cg_policy *policy = PolicyWith({{"certgate", "require"},
                                  {"certgate_subject", "OU=People"},
                                  {"certgate_reject_body", "json"},
                                  {"certgate_log", "json"}});
  ASSERT_NE(policy, nullptr);
  cg_decision *decision = cg_evaluate(policy, leaf.cert.get(), nullptr, store.get(), kNow);
  ASSERT_EQ(cg_decision_reason(decision), CG_REASON_IDENTITY_MISMATCH);
  std::vector<std::unique_ptr<char[]>> pool;

  // The same bytes as the snprintf-like calls, whole and NUL terminated.
  const char *type = nullptr;
  const cg_str body = cg_decision_body_alloc(decision, policy, &type, VectorAlloc, &pool);
  const size_t body_need = cg_decision_format_body(decision, policy, nullptr, nullptr, 0);
  ASSERT_NE(body.data, nullptr);
  EXPECT_EQ(body.len, body_need);
  EXPECT_EQ(body.data[body.len], '\0');
  EXPECT_STREQ(type, "application/json");
  EXPECT_EQ(std::string(body.data, body.len).rfind("{\"verdict\":\"deny\"", 0), 0u);
  const cg_str line = cg_decision_log_alloc(decision, policy, VectorAlloc, &pool);
  ASSERT_NE(line.data, nullptr);
  EXPECT_EQ(line.len, cg_decision_format_log(decision, CG_LOG_JSON, nullptr, 0));
  std::vector<char> json(line.len + 1);
  cg_decision_format_log(decision, CG_LOG_JSON, json.data(), json.size());
  EXPECT_STREQ(line.data, json.data()) << "in the policy's log format";
  EXPECT_NE(std::string(line.data).find("{\""), std::string::npos);
  cg_counters counters{};
  counters.handshake_refusals = 7;
  const cg_str page = cg_counters_page_alloc(&counters, VectorAlloc, &pool);
  ASSERT_NE(page.data, nullptr);
  EXPECT_NE(std::string(page.data, page.len).find("certgate_handshake_refusals_total 7"),
            std::string::npos);
  EXPECT_EQ(cg_decision_body_alloc(decision, policy, &type, FailingAlloc, nullptr).data, nullptr);

  // Every field under its environment name, in cg_field order.
  std::vector<std::pair<std::string, std::string>> env;
  cg_decision_export(
      decision,
      [](void *ctx, const char *name, cg_str value) {
        static_cast<decltype(env) *>(ctx)->emplace_back(name, std::string(value.data, value.len));
      },
      &env);
  ASSERT_EQ(env.size(), static_cast<size_t>(CG_FIELD_COUNT));
  EXPECT_EQ(env[CG_FIELD_VERDICT],
            std::make_pair(std::string("CERTGATE_VERDICT"), std::string("deny")));

  EXPECT_EQ(cg_log_level_syslog(CG_LOG_NONE), -1);
  EXPECT_EQ(cg_log_level_syslog(CG_LOG_DEBUG), 7);
  EXPECT_EQ(cg_log_level_syslog(CG_LOG_NOTICE), 5);
  EXPECT_EQ(cg_log_level_syslog(CG_LOG_WARN), 4);
  EXPECT_EQ(cg_log_level_syslog(CG_LOG_REFUSAL), 3);
  EXPECT_STREQ(cg_refusal_status_phrase(495), "SSL Certificate Error");
  EXPECT_STREQ(cg_refusal_status_phrase(496), "SSL Certificate Required");
  EXPECT_STREQ(cg_refusal_status_phrase(499), "Client Certificate Refused");
  EXPECT_EQ(cg_key_path(CG_KEY_MODE), CG_KEY_PATH_NONE);
  EXPECT_NE(cg_key_path(CG_KEY_TRUSTED_ISSUERS), CG_KEY_PATH_NONE);

  // Revocation under a base: the merge decides; the unset policy is all defaults.
  EXPECT_FALSE(cg_policy_enabled(cg_policy_unset()));
  EXPECT_FALSE(cg_policy_revocation_enabled_under(nullptr, policy));
  cg_policy *base = cg_policy_new();
  const cg_str soft{"soft_fail", 9};
  ASSERT_EQ(cg_policy_set(base, "certgate_revocation", &soft, 1, nullptr), CG_OK);
  EXPECT_TRUE(cg_policy_revocation_enabled_under(base, policy));
  cg_policy *section_off = cg_policy_new();  // a merge is cached: a new section
  const cg_str off{"off", 3};
  ASSERT_EQ(cg_policy_set(section_off, "certgate_revocation", &off, 1, nullptr), CG_OK);
  EXPECT_FALSE(cg_policy_revocation_enabled_under(base, section_off))
      << "the section's own value wins";
  cg_policy_free(section_off);
  cg_policy_free(base);
  cg_decision_free(decision);
  cg_policy_free(policy);
}

}  // namespace

// Issue 12 §5: certgate_trusted_proxies, addresses and CIDR blocks.
TEST(CApiTrustedProxies, AddressesAndBlocksMatchAndNothingElse) {
  cg_policy *policy = cg_policy_new();
  cg_error error;
  const cg_str args[] = {{"10.0.0.0/8", 10}, {"192.0.2.7", 9}, {"2001:db8::/32", 13}};
  ASSERT_EQ(cg_policy_set(policy, "certgate_trusted_proxies", args, 3, &error), CG_OK)
      << error.message;
  auto trusted = [&](const char *ip) { return cg_policy_trusted_proxy(policy, ip, strlen(ip)); };
  EXPECT_TRUE(trusted("10.1.2.3"));
  EXPECT_TRUE(trusted("192.0.2.7"));
  EXPECT_TRUE(trusted("2001:db8::5"));
  EXPECT_FALSE(trusted("11.0.0.1"));
  EXPECT_FALSE(trusted("192.0.2.8"));
  EXPECT_FALSE(trusted("2001:db9::5"));
  EXPECT_FALSE(trusted("not an address"));
  const cg_str bad[] = {{"10.0.0.0/33", 11}};
  EXPECT_EQ(cg_policy_set(policy, "certgate_trusted_proxies", bad, 1, &error), CG_ERR_INVALID);
  cg_policy_free(policy);
  cg_policy *none = cg_policy_new();
  EXPECT_FALSE(cg_policy_trusted_proxy(none, "10.1.2.3", 8));
  cg_policy_free(none);
}
