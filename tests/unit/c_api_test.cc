#include <certgate/certgate.h>
#include <certgate/ossl_ptr.h>
#include <gtest/gtest.h>
#include <pki_builder.h>

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

}  // namespace
