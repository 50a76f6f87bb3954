// Several threads on one connection, as HTTP/2 streams in Apache's worker
// threads are: each asks cg_ssl_decide for its location's decision and reads
// every field and format. Meant for the ThreadSanitizer run of
// scripts/sanitize.sh (suite name Threads*); without TSan it checks that every
// thread sees the same decision.
#include <certgate/certgate.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pki_builder.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "ssl_hook.h"

namespace certgate {
namespace {

using pki::Issued;
using pki::PkiBuilder;

constexpr int64_t kNow = 1800000000;

struct Free {
  void operator()(SSL *ssl) const { SSL_free(ssl); }
  void operator()(SSL_CTX *ctx) const { SSL_CTX_free(ctx); }
  void operator()(cg_policy *policy) const { cg_policy_free(policy); }
};
template <typename T>
using Owned = std::unique_ptr<T, Free>;

Owned<cg_policy> Policy(const std::vector<std::pair<const char *, const char *>> &settings) {
  Owned<cg_policy> policy(cg_policy_new());
  for (const auto &[key, value] : settings) {
    cg_error error;
    const cg_str arg = {value, std::strlen(value)};
    EXPECT_EQ(cg_policy_set(policy.get(), key, &arg, 1, &error), CG_OK) << error.message;
  }
  return policy;
}

TEST(ThreadsTest, StreamsOfOneConnectionDecideConcurrently) {
  PkiBuilder pki(kNow);
  const Issued root = pki.SelfSigned(PkiBuilder::CaSpec("CN=Threads Root"));
  auto server_spec = PkiBuilder::LeafSpec("CN=localhost");
  server_spec.eku = {"serverAuth"};
  const Issued server = pki.Issue(root, server_spec);
  const Issued alice = pki.Issue(root, PkiBuilder::LeafSpec("CN=alice,OU=People"));
  FixedClock clock(kNow);
  SetConnectionClock(&clock);

  Owned<cg_policy> server_policy = Policy({{"certgate", "require"}});
  std::vector<Owned<cg_policy>> locations;
  locations.push_back(Policy({{"certgate", "require"}, {"certgate_subject", "OU=People"}}));
  locations.push_back(Policy({{"certgate", "require"}, {"certgate_subject", "OU=Admins"}}));
  locations.push_back(Policy({{"certgate", "optional"}, {"certgate_reject_body", "json"}}));

  Owned<SSL_CTX> server_ctx(SSL_CTX_new(TLS_server_method()));
  SSL_CTX_use_certificate(server_ctx.get(), server.cert.get());
  SSL_CTX_use_PrivateKey(server_ctx.get(), server.key.get());
  X509_STORE_add_cert(SSL_CTX_get_cert_store(server_ctx.get()), root.cert.get());
  cg_error error;
  ASSERT_EQ(cg_ssl_ctx_attach(server_ctx.get(), server_policy.get(), nullptr, nullptr, &error),
            CG_OK)
      << error.message;
  Owned<SSL_CTX> client_ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_use_certificate(client_ctx.get(), alice.cert.get());
  SSL_CTX_use_PrivateKey(client_ctx.get(), alice.key.get());

  Owned<SSL> server_ssl(SSL_new(server_ctx.get()));
  Owned<SSL> client_ssl(SSL_new(client_ctx.get()));
  BIO *server_bio = nullptr, *client_bio = nullptr;
  BIO_new_bio_pair(&server_bio, 0, &client_bio, 0);
  SSL_set_bio(server_ssl.get(), server_bio, server_bio);
  SSL_set_bio(client_ssl.get(), client_bio, client_bio);
  SSL_set_accept_state(server_ssl.get());
  SSL_set_connect_state(client_ssl.get());
  bool done = false;
  for (int round = 0; round < 20 && !done; ++round) {
    const int c = SSL_do_handshake(client_ssl.get());
    const int s = SSL_do_handshake(server_ssl.get());
    done = c == 1 && s == 1;
  }
  ERR_clear_error();
  ASSERT_TRUE(done);

  // The first request decides; then the streams, released together, read the
  // same published decisions (no certgate lock orders them) and ask again.
  std::vector<const cg_decision *> first;
  for (const auto &location : locations) {
    first.push_back(cg_ssl_decide(server_ssl.get(), location.get()));
  }
  constexpr int kThreads = 8;
  std::atomic<bool> go{false};
  std::vector<std::vector<const cg_decision *>> seen(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (!go.load()) std::this_thread::yield();
      char buf[2048];
      for (size_t i = 0; i < first.size(); ++i) {
        const cg_decision *decision = first[i];
        for (int field = 0; field < CG_FIELD_COUNT; ++field) {
          (void)cg_decision_field(decision, static_cast<cg_field>(field));
        }
        cg_decision_format_log(decision, CG_LOG_JSON, buf, sizeof buf);
        const char *type = nullptr;
        cg_decision_format_body(decision, locations[i].get(), &type, buf, sizeof buf);
      }
      for (const auto &location : locations) {
        seen[t].push_back(cg_ssl_decide(server_ssl.get(), location.get()));
      }
    });
  }
  go = true;
  for (std::thread &thread : threads) thread.join();
  EXPECT_EQ(seen[0], first);
  for (int t = 1; t < kThreads; ++t) EXPECT_EQ(seen[t], seen[0]);
  ASSERT_EQ(seen[0].size(), locations.size());
  EXPECT_EQ(cg_decision_verdict(seen[0][0]), CG_VERDICT_ALLOW);
  EXPECT_EQ(cg_decision_reason(seen[0][1]), CG_REASON_IDENTITY_MISMATCH);
  server_ssl.reset();  // before the clock goes
  SetConnectionClock(nullptr);
}

}  // namespace
}  // namespace certgate
