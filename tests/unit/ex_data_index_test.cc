#include "ex_data_index.h"

#include <gtest/gtest.h>
#include <openssl/ssl.h>

namespace certgate {
namespace {

int g_freed = 0;

void CountFree(void *, void *ptr, CRYPTO_EX_DATA *, int, long, void *) {
  if (ptr != nullptr) ++g_freed;
}

// What a graceful restart needs: an index given back (its copy of the module
// unloaded) no longer calls into that copy when OpenSSL frees an object.
TEST(ExDataIndex, AGivenBackIndexCallsNothing) {
  g_freed = 0;
  SSL_CTX *kept = SSL_CTX_new(TLS_method());
  SSL_CTX *freed_first = SSL_CTX_new(TLS_method());
  ASSERT_NE(kept, nullptr);
  ASSERT_NE(freed_first, nullptr);
  int data = 0;
  {
    ExDataIndex index(CRYPTO_EX_INDEX_SSL_CTX, CountFree);
    ASSERT_GE(index.get(), 0);
    ASSERT_EQ(SSL_CTX_set_ex_data(kept, index.get(), &data), 1);
    ASSERT_EQ(SSL_CTX_set_ex_data(freed_first, index.get(), &data), 1);
    SSL_CTX_free(freed_first);  // while the index is registered: its callback runs
    EXPECT_EQ(g_freed, 1);
  }
  SSL_CTX_free(kept);  // after: nothing is called
  EXPECT_EQ(g_freed, 1);
}

}  // namespace
}  // namespace certgate
