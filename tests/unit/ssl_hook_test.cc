// Real TLS handshakes (in memory) through cg_ssl_ctx_attach and cg_ssl_decide:
// the handshake finishes so the refusal can be explained, the decision is kept
// per connection, and a resumed session is judged again.
#include "ssl_hook.h"

#include <certgate/certgate.h>
#include <certgate/ossl_ptr.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pki_builder.h>

#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "cert_fields.h"
#include "handshake_failure.h"
#include "intermediate_cache.h"
#include "revocation/registry.h"
#include "session_chain.h"

namespace certgate {
namespace {

using pki::CertSpec;
using pki::Issued;
using pki::PkiBuilder;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr int64_t kNow = 1800000000;

struct SslDeleter {
  void operator()(SSL *ssl) const { SSL_free(ssl); }
  void operator()(SSL_CTX *ctx) const { SSL_CTX_free(ctx); }
  void operator()(SSL_SESSION *session) const { SSL_SESSION_free(session); }
  void operator()(STACK_OF(X509) * certs) const { sk_X509_pop_free(certs, X509_free); }
};
template <typename T>
using Owned = std::unique_ptr<T, SslDeleter>;

struct CgPolicyDeleter {
  void operator()(cg_policy *policy) const { cg_policy_free(policy); }
};

// Test Config: "Hook Root" (trusted by the server) -> "Hook Issuing CA" (sent by
// clients, not known to the server) -> client leaves; the server has its own
// certificate from the root.
class SslHookTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_ = new PkiBuilder(kNow);
    root_ = new Issued(pki_->SelfSigned(PkiBuilder::CaSpec("CN=Hook Root")));
    issuing_ = new Issued(pki_->Issue(*root_, PkiBuilder::CaSpec("CN=Hook Issuing CA")));
    CertSpec server = PkiBuilder::LeafSpec("CN=localhost");
    server.eku = {"serverAuth"};
    server_ = new Issued(pki_->Issue(*root_, server));
  }

  // Freed so that LeakSanitizer (scripts/sanitize.sh) reports only real leaks.
  static void TearDownTestSuite() {
    delete server_;
    delete issuing_;
    delete root_;
    delete pki_;
  }

  void SetUp() override {
    clock_ = std::make_unique<FixedClock>(kNow);
    SetConnectionClock(clock_.get());
    server_policy_.reset(cg_policy_new());
    Set(server_policy_.get(), "certgate", "require");
    server_ctx_.reset(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_use_certificate(server_ctx_.get(), server_->cert.get());
    SSL_CTX_use_PrivateKey(server_ctx_.get(), server_->key.get());
    X509_STORE_add_cert(SSL_CTX_get_cert_store(server_ctx_.get()), root_->cert.get());
    const unsigned char sid_ctx[] = "certgate-test";
    SSL_CTX_set_session_id_context(server_ctx_.get(), sid_ctx, sizeof sid_ctx - 1);
    SSL_CTX_set_session_cache_mode(server_ctx_.get(), SSL_SESS_CACHE_SERVER);
  }

  void TearDown() override { SetConnectionClock(nullptr); }

  static void Set(cg_policy *policy, const char *key, const char *value) {
    cg_error error;
    const cg_str arg = {value, std::strlen(value)};
    ASSERT_EQ(cg_policy_set(policy, key, &arg, 1, &error), CG_OK) << error.message;
  }

  void Attach() {
    cg_error error;
    ASSERT_EQ(
        cg_ssl_ctx_attach(server_ctx_.get(), server_policy_.get(), &SslHookTest::Log, this, &error),
        CG_OK)
        << error.message;
  }

  static void Log(SSL *, cg_reason reason, const char *line, size_t len, void *data) {
    auto *test = static_cast<SslHookTest *>(data);
    test->reasons_.push_back(reason);
    if (len > 0) test->logged_.emplace_back(line, len);
  }

  struct Connection {
    Owned<SSL> server;
    Owned<SSL> client;
    bool handshake_ok = false;
  };

  // Runs a handshake between a fresh server SSL and a client presenting `leaf`
  // (nothing when empty) with `sent` intermediates, resuming `session` if given.
  Connection Handshake(const Issued *leaf, std::vector<Issued> sent = {},
                       SSL_SESSION *session = nullptr, int tls_version = TLS1_3_VERSION) {
    Connection conn;
    Owned<SSL_CTX> client_ctx(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_set_min_proto_version(client_ctx.get(), tls_version);
    SSL_CTX_set_max_proto_version(client_ctx.get(), tls_version);
    if (leaf != nullptr) {
      SSL_CTX_use_certificate(client_ctx.get(), leaf->cert.get());
      SSL_CTX_use_PrivateKey(client_ctx.get(), leaf->key.get());
      for (const Issued &cert : sent) SSL_CTX_add1_chain_cert(client_ctx.get(), cert.cert.get());
    }
    if (configure_client_) configure_client_(client_ctx.get());
    conn.server.reset(SSL_new(server_ctx_.get()));
    conn.client.reset(SSL_new(client_ctx.get()));
    // Failed-handshake lines are rate-limited per client: each test its own.
    static int connections = 0;
    cg_ssl_note_client_address(conn.server.get(),
                               client_address_.empty()
                                   ? ("client-" + std::to_string(++connections)).c_str()
                                   : client_address_.c_str());
    if (session != nullptr) SSL_set_session(conn.client.get(), session);
    BIO *server_bio = nullptr;
    BIO *client_bio = nullptr;
    BIO_new_bio_pair(&server_bio, 0, &client_bio, 0);
    SSL_set_bio(conn.server.get(), server_bio, server_bio);
    SSL_set_bio(conn.client.get(), client_bio, client_bio);
    SSL_set_accept_state(conn.server.get());
    SSL_set_connect_state(conn.client.get());
    for (int round = 0; round < 20; ++round) {
      const int c = SSL_do_handshake(conn.client.get());
      const int s = SSL_do_handshake(conn.server.get());
      if (c == 1 && s == 1) {
        // TLS 1.3 tickets arrive after the handshake: let the client read them.
        char byte;
        SSL_write(conn.server.get(), "x", 1);
        SSL_read(conn.client.get(), &byte, 1);
        conn.handshake_ok = true;
        break;
      }
      if ((c <= 0 && SSL_get_error(conn.client.get(), c) == SSL_ERROR_SSL) ||
          (s <= 0 && SSL_get_error(conn.server.get(), s) == SSL_ERROR_SSL)) {
        break;
      }
    }
    ERR_clear_error();
    return conn;
  }

  static std::string SerialHexOf(const Issued &cert) { return SerialHex(cert.cert.get()); }

  static std::string Field(const cg_decision *decision, cg_field field) {
    const cg_str value = cg_decision_field(decision, field);
    return std::string(value.data, value.len);
  }

  static PkiBuilder *pki_;
  static Issued *root_, *issuing_, *server_;
  std::unique_ptr<FixedClock> clock_;
  std::unique_ptr<cg_policy, CgPolicyDeleter> server_policy_;
  Owned<SSL_CTX> server_ctx_;
  std::vector<std::string> logged_;
  std::vector<cg_reason> reasons_;  // every call, logged or suppressed
  std::function<void(SSL_CTX *)> configure_client_;
  std::string client_address_;  // empty: a new one per connection
};

PkiBuilder *SslHookTest::pki_;
Issued *SslHookTest::root_;
Issued *SslHookTest::issuing_;
Issued *SslHookTest::server_;

TEST_F(SslHookTest, GoodChainIsAllowed) {
  Attach();
  const Issued leaf = pki_->Issue(*issuing_, PkiBuilder::LeafSpec("CN=alice"));
  Connection conn = Handshake(&leaf, {*issuing_});
  ASSERT_TRUE(conn.handshake_ok);
  const cg_decision *decision = cg_ssl_decide(conn.server.get(), server_policy_.get());
  ASSERT_NE(decision, nullptr);
  EXPECT_EQ(cg_decision_verdict(decision), CG_VERDICT_ALLOW) << Field(decision, CG_FIELD_DETAIL);
  EXPECT_EQ(Field(decision, CG_FIELD_SUBJECT), "CN=alice");
}

TEST_F(SslHookTest, BadChainFinishesTheHandshakeAndIsExplainedLater) {
  Attach();
  CertSpec spec = PkiBuilder::LeafSpec("CN=old");
  spec.not_after = kNow - 86400;
  const Issued leaf = pki_->Issue(*issuing_, spec);
  Connection conn = Handshake(&leaf, {*issuing_});
  ASSERT_TRUE(conn.handshake_ok);
  EXPECT_EQ(SSL_get_verify_result(conn.server.get()), X509_V_OK);  // the server's check stays quiet
  const cg_decision *decision = cg_ssl_decide(conn.server.get(), server_policy_.get());
  EXPECT_EQ(cg_decision_reason(decision), CG_REASON_EXPIRED);
  EXPECT_TRUE(logged_.empty());
}

TEST_F(SslHookTest, UntrustedSelfSignedClientFinishesTheHandshake) {
  Attach();
  const Issued leaf = pki_->SelfSigned(PkiBuilder::LeafSpec("CN=mallory"));
  Connection conn = Handshake(&leaf);
  ASSERT_TRUE(conn.handshake_ok);
  EXPECT_EQ(cg_decision_reason(cg_ssl_decide(conn.server.get(), server_policy_.get())),
            CG_REASON_UNTRUSTED_ISSUER);
}

// Issue 15 through a real handshake: a trusted intermediate whose root is not
// configured ends the chain.
TEST_F(SslHookTest, TrustedIntermediateWithoutItsRootIsAnAnchor) {
  X509_STORE *intermediate_only = X509_STORE_new();
  X509_STORE_add_cert(intermediate_only, issuing_->cert.get());
  SSL_CTX_set_cert_store(server_ctx_.get(), intermediate_only);
  Attach();
  const Issued leaf = pki_->Issue(*issuing_, PkiBuilder::LeafSpec("CN=erin"));
  Connection conn = Handshake(&leaf, {*issuing_});
  ASSERT_TRUE(conn.handshake_ok);
  const cg_decision *decision = cg_ssl_decide(conn.server.get(), server_policy_.get());
  EXPECT_EQ(cg_decision_verdict(decision), CG_VERDICT_ALLOW) << Field(decision, CG_FIELD_DETAIL);
}

// An expired copy of the intermediate sent before the current one: the
// connection's clock (kNow here, not the wall clock) picks the current one.
TEST_F(SslHookTest, ExpiredCopyOfTheIntermediateSentFirstIsPassedOver) {
  Attach();
  X509 *expired = X509_dup(issuing_->cert.get());
  ASN1_TIME_set(X509_getm_notBefore(expired), static_cast<time_t>(kNow - 400 * 86400));
  ASN1_TIME_set(X509_getm_notAfter(expired), static_cast<time_t>(kNow - 86400));
  ASSERT_GT(X509_sign(expired, root_->key.get(), EVP_sha256()), 0);
  const Issued expired_copy{std::shared_ptr<X509>(expired, X509_free), issuing_->key};
  const Issued leaf = pki_->Issue(*issuing_, PkiBuilder::LeafSpec("CN=frank"));
  Connection conn = Handshake(&leaf, {expired_copy, *issuing_});
  ASSERT_TRUE(conn.handshake_ok);
  const cg_decision *decision = cg_ssl_decide(conn.server.get(), server_policy_.get());
  EXPECT_EQ(cg_decision_verdict(decision), CG_VERDICT_ALLOW) << Field(decision, CG_FIELD_DETAIL);
}

TEST_F(SslHookTest, AttachAsksForACertificate) {
  Attach();
  EXPECT_TRUE(SSL_CTX_get_verify_mode(server_ctx_.get()) & SSL_VERIFY_PEER);
  Connection conn = Handshake(nullptr);
  ASSERT_TRUE(conn.handshake_ok);
  EXPECT_EQ(cg_decision_reason(cg_ssl_decide(conn.server.get(), server_policy_.get())),
            CG_REASON_NO_CERT);
}

TEST_F(SslHookTest, OffPolicyGivesNoDecision) {
  Attach();
  std::unique_ptr<cg_policy, CgPolicyDeleter> off(cg_policy_new());
  Connection conn = Handshake(nullptr);
  EXPECT_EQ(cg_ssl_decide(conn.server.get(), off.get()), nullptr);
}

TEST_F(SslHookTest, PlainHttpUnderRequireIsNoCert) {
  const cg_decision *decision = cg_ssl_decide(nullptr, server_policy_.get());
  ASSERT_NE(decision, nullptr);
  EXPECT_EQ(cg_decision_reason(decision), CG_REASON_NO_CERT);
  Set(server_policy_.get(), "certgate", "optional");
  EXPECT_EQ(cg_decision_verdict(cg_ssl_decide(nullptr, server_policy_.get())), CG_VERDICT_ALLOW);
}

TEST_F(SslHookTest, DecisionIsKeptPerConnectionAndPolicy) {
  Attach();
  const Issued leaf = pki_->Issue(*issuing_, PkiBuilder::LeafSpec("CN=alice,OU=People"));
  Connection conn = Handshake(&leaf, {*issuing_});
  const cg_decision *first = cg_ssl_decide(conn.server.get(), server_policy_.get());
  EXPECT_EQ(cg_ssl_decide(conn.server.get(), server_policy_.get()), first);

  // A location with its own rules gets its own decision on the same connection.
  std::unique_ptr<cg_policy, CgPolicyDeleter> location(cg_policy_new());
  Set(location.get(), "certgate_subject", "OU=Admins");
  cg_error error;
  cg_policy_inherit(location.get(), server_policy_.get(), &error);
  const cg_decision *admin = cg_ssl_decide(conn.server.get(), location.get());
  EXPECT_NE(admin, first);
  EXPECT_EQ(cg_decision_reason(admin), CG_REASON_IDENTITY_MISMATCH);
  EXPECT_EQ(cg_decision_verdict(first), CG_VERDICT_ALLOW);  // still valid, unchanged
}

TEST_F(SslHookTest, ConnectionOutlivingTheCertificateIsJudgedAgain) {
  Attach();
  CertSpec spec = PkiBuilder::LeafSpec("CN=short");
  spec.not_after = kNow + 3600;
  const Issued leaf = pki_->Issue(*issuing_, spec);
  Connection conn = Handshake(&leaf, {*issuing_});
  EXPECT_EQ(cg_decision_verdict(cg_ssl_decide(conn.server.get(), server_policy_.get())),
            CG_VERDICT_ALLOW);
  clock_->Advance(7200);
  EXPECT_EQ(cg_decision_reason(cg_ssl_decide(conn.server.get(), server_policy_.get())),
            CG_REASON_EXPIRED);
}

TEST_F(SslHookTest, RejectAtHandshakeAbortsAndLogs) {
  Set(server_policy_.get(), "certgate_reject_at", "handshake");
  Attach();
  CertSpec spec = PkiBuilder::LeafSpec("CN=old");
  spec.not_after = kNow - 86400;
  const Issued leaf = pki_->Issue(*issuing_, spec);
  Connection conn = Handshake(&leaf, {*issuing_}, nullptr, TLS1_2_VERSION);
  EXPECT_FALSE(conn.handshake_ok);
  ASSERT_EQ(logged_.size(), 1u);
  EXPECT_THAT(logged_[0], HasSubstr("certgate: verdict=deny reason=expired"));
}

// Issue 12 §5: no_cert names the CAs the server asked for, when it sent some.
TEST_F(SslHookTest, NoCertSaysWhichCasTheServerAskedFor) {
  Attach();
  Connection plain = Handshake(nullptr);
  ASSERT_TRUE(plain.handshake_ok);
  EXPECT_EQ(Field(cg_ssl_decide(plain.server.get(), server_policy_.get()), CG_FIELD_DETAIL),
            "the client presented no certificate; certgate require is set here");

  STACK_OF(X509_NAME) *names = sk_X509_NAME_new_null();
  sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(issuing_->cert.get())));
  sk_X509_NAME_push(names, X509_NAME_dup(X509_get_subject_name(root_->cert.get())));
  SSL_CTX_set_client_CA_list(server_ctx_.get(), names);
  Connection asked = Handshake(nullptr);
  ASSERT_TRUE(asked.handshake_ok);
  const cg_decision *decision = cg_ssl_decide(asked.server.get(), server_policy_.get());
  EXPECT_EQ(cg_decision_reason(decision), CG_REASON_NO_CERT);
  EXPECT_EQ(Field(decision, CG_FIELD_DETAIL),
            "the client sent no certificate although asked for one issued by one of 2 CAs "
            "(first: CN=Hook Issuing CA); certgate require is set here");
}

TEST_F(SslHookTest, RejectAtHandshakeLeavesOnlyCertgatesLine) {
  Set(server_policy_.get(), "certgate_reject_at", "handshake");
  Attach();
  CertSpec spec = PkiBuilder::LeafSpec("CN=old");
  spec.not_after = kNow - 86400;
  const Issued leaf = pki_->Issue(*issuing_, spec);
  Connection conn = Handshake(&leaf, {*issuing_}, nullptr, TLS1_2_VERSION);
  ASSERT_FALSE(conn.handshake_ok);
  ASSERT_EQ(reasons_, std::vector<cg_reason>{CG_REASON_EXPIRED});  // no tls_handshake line too
}

TEST_F(SslHookTest, AClientOfferingAnOlderVersionGetsOneLine) {
  SSL_CTX_set_min_proto_version(server_ctx_.get(), TLS1_3_VERSION);
  Attach();
  Connection conn = Handshake(nullptr, {}, nullptr, TLS1_2_VERSION);
  ASSERT_FALSE(conn.handshake_ok);
  ASSERT_EQ(logged_.size(), 1u);
  EXPECT_THAT(logged_[0],
              HasSubstr("certgate: verdict=deny reason=tls_handshake substatus=403.16"));
  EXPECT_THAT(logged_[0], HasSubstr("the client offered TLS 1.2 (0x0303) at most; this server "
                                    "accepts TLS 1.3"));
  EXPECT_THAT(logged_[0], HasSubstr("stage=client_hello"));
}

TEST_F(SslHookTest, NoSharedCipherIsNamed) {
  SSL_CTX_set_cipher_list(server_ctx_.get(), "AES128-SHA");
  configure_client_ = [](SSL_CTX *ctx) { SSL_CTX_set_cipher_list(ctx, "AES256-SHA"); };
  Attach();
  Connection conn = Handshake(nullptr, {}, nullptr, TLS1_2_VERSION);
  ASSERT_FALSE(conn.handshake_ok);
  ASSERT_EQ(logged_.size(), 1u);
  EXPECT_THAT(logged_[0], HasSubstr("cipher suites the client offered is enabled"));
  EXPECT_THAT(logged_[0], HasSubstr("stage=client_hello"));
}

// Issue 12 §4: the line names what the ClientHello offered (its supported_versions
// and ALPN extensions), read by a message callback.
TEST_F(SslHookTest, TheLineNamesTheOfferedVersionsAndAlpn) {
  configure_client_ = [](SSL_CTX *ctx) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    static const unsigned char kAlpn[] =
        "\x02h2\x08http/1.1\x0a"
        "acme-tls/1";
    SSL_CTX_set_alpn_protos(ctx, kAlpn, sizeof kAlpn - 1);
  };
  Attach();
  const Issued leaf = pki_->Issue(*issuing_, PkiBuilder::LeafSpec("CN=alice"));
  Connection conn = Handshake(&leaf, {*issuing_}, nullptr, TLS1_3_VERSION);
  ASSERT_FALSE(conn.handshake_ok);
  ASSERT_EQ(logged_.size(), 1u);
  EXPECT_THAT(logged_[0], HasSubstr("client_versions=\"TLS1.3,TLS1.2\""));
  EXPECT_THAT(logged_[0], HasSubstr("alpn=\"h2,http/1.1,other\""));
}

// A client without the extensions (TLS 1.2 at most, no ALPN): neither field.
TEST_F(SslHookTest, NoExtensionsNoFields) {
  SSL_CTX_set_min_proto_version(server_ctx_.get(), TLS1_3_VERSION);
  Attach();
  Connection conn = Handshake(nullptr, {}, nullptr, TLS1_2_VERSION);
  ASSERT_FALSE(conn.handshake_ok);
  ASSERT_EQ(logged_.size(), 1u);
  EXPECT_THAT(logged_[0], Not(HasSubstr("client_versions=")));
  EXPECT_THAT(logged_[0], Not(HasSubstr("alpn=")));
}

// Whatever bytes a ClientHello holds, the parser reads within them: every
// truncation of a real one, and bytes that lie about their lengths.
TEST_F(SslHookTest, TheClientHelloParserStaysInItsBytes) {
  std::vector<unsigned char> hello;
  Owned<SSL_CTX> client_ctx(SSL_CTX_new(TLS_client_method()));
  static const unsigned char kAlpn[] = "\x02h2";
  SSL_CTX_set_alpn_protos(client_ctx.get(), kAlpn, sizeof kAlpn - 1);
  SSL_CTX_set_msg_callback(client_ctx.get(), [](int write_p, int, int type, const void *buf,
                                                size_t len, SSL *, void *arg) {
    auto *out = static_cast<std::vector<unsigned char> *>(arg);
    const auto *bytes = static_cast<const unsigned char *>(buf);
    if (write_p && type == SSL3_RT_HANDSHAKE && len > 0 && bytes[0] == SSL3_MT_CLIENT_HELLO) {
      out->assign(bytes, bytes + len);
    }
  });
  SSL_CTX_set_msg_callback_arg(client_ctx.get(), &hello);
  Owned<SSL> client(SSL_new(client_ctx.get()));
  SSL_set_bio(client.get(), BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
  SSL_set_connect_state(client.get());
  SSL_do_handshake(client.get());
  ERR_clear_error();
  ASSERT_GT(hello.size(), 100u);
  for (size_t len = 0; len <= hello.size(); ++len) {
    Owned<SSL> server(SSL_new(server_ctx_.get()));
    SSL_set_accept_state(server.get());
    std::vector<unsigned char> cut(hello.begin(), hello.begin() + len);  // its own allocation
    NoteHandshakeMessage(0, 0, SSL3_RT_HANDSHAKE, cut.data(), cut.size(), server.get(), nullptr);
    const std::string alpn = [&] {
      for (const auto &[name, value] : DescribeHandshakeFailure(server.get()).extras) {
        if (name == "alpn") return value;
      }
      return std::string();
    }();
    if (len == hello.size()) EXPECT_EQ(alpn, "h2");
  }
  // Lengths that point past the end.
  std::vector<unsigned char> liar = hello;
  for (size_t at = 4; at + 1 < liar.size(); at += 7) {
    liar[at] = 0xff;
    Owned<SSL> server(SSL_new(server_ctx_.get()));
    SSL_set_accept_state(server.get());
    NoteHandshakeMessage(0, 0, SSL3_RT_HANDSHAKE, liar.data(), liar.size(), server.get(), nullptr);
  }
}

class SslHookAlertTest : public SslHookTest,
                         public ::testing::WithParamInterface<int /* TLS version */> {};

TEST_P(SslHookAlertTest, AClientRejectingTheServerChainIsNamedWithItsAlert) {
  configure_client_ = [](SSL_CTX *ctx) { SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr); };
  Attach();
  const Issued leaf = pki_->Issue(*issuing_, PkiBuilder::LeafSpec("CN=alice"));
  Connection conn = Handshake(&leaf, {*issuing_}, nullptr, GetParam());
  ASSERT_FALSE(conn.handshake_ok);
  ASSERT_EQ(logged_.size(), 1u);
  EXPECT_THAT(logged_[0], HasSubstr("reason=tls_handshake"));
  EXPECT_THAT(logged_[0], HasSubstr("alert unknown_ca (48) after the server asked for its "
                                    "certificate"));
  EXPECT_THAT(logged_[0], HasSubstr("stage=certificate_request alert=unknown_ca"));
}

INSTANTIATE_TEST_SUITE_P(Tls, SslHookAlertTest, ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION),
                         [](const ::testing::TestParamInfo<int> &info) {
                           return info.param == TLS1_2_VERSION ? "TLS12" : "TLS13";
                         });

TEST_F(SslHookTest, AClientClosingAfterTheCertificateRequestIsNamed) {
  Attach();
  Owned<SSL_CTX> client_ctx(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_max_proto_version(client_ctx.get(), TLS1_2_VERSION);
  Owned<SSL> server(SSL_new(server_ctx_.get()));
  Owned<SSL> client(SSL_new(client_ctx.get()));
  cg_ssl_note_client_address(server.get(), "192.0.2.90");
  BIO *server_bio = nullptr;
  BIO *client_bio = nullptr;
  BIO_new_bio_pair(&server_bio, 0, &client_bio, 0);
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_accept_state(server.get());
  SSL_set_connect_state(client.get());
  SSL_do_handshake(client.get());  // ClientHello
  SSL_do_handshake(server.get());  // ServerHello ... CertificateRequest, ServerHelloDone
  BIO_shutdown_wr(client_bio);     // the client hangs up without answering
  EXPECT_LE(SSL_do_handshake(server.get()), 0);
  ERR_clear_error();
  ASSERT_EQ(logged_.size(), 1u);
  EXPECT_THAT(logged_[0], HasSubstr("the client closed the connection after the server asked for "
                                    "a certificate, without sending one"));
  EXPECT_THAT(logged_[0], HasSubstr("stage=certificate_request"));
}

TEST_F(SslHookTest, FailedHandshakeLinesAreRateLimitedPerClient) {
  SSL_CTX_set_min_proto_version(server_ctx_.get(), TLS1_3_VERSION);
  Attach();
  client_address_ = "192.0.2.77";
  const int attempts = HandshakeLogLimiter::kBurst + 3;
  for (int i = 0; i < attempts; ++i) Handshake(nullptr, {}, nullptr, TLS1_2_VERSION);
  EXPECT_EQ(reasons_.size(), static_cast<size_t>(attempts));  // all counted
  EXPECT_EQ(logged_.size(), static_cast<size_t>(HandshakeLogLimiter::kBurst));
  client_address_ = "192.0.2.78";  // another client is not held back
  Handshake(nullptr, {}, nullptr, TLS1_2_VERSION);
  EXPECT_EQ(logged_.size(), static_cast<size_t>(HandshakeLogLimiter::kBurst + 1));
}

TEST(HandshakeLogLimiterTest, TheNextLineSaysHowManyWereSuppressed) {
  HandshakeLogLimiter limiter;
  for (int i = 0; i < HandshakeLogLimiter::kBurst; ++i) EXPECT_EQ(limiter.Admit(7, 100), 0u);
  EXPECT_EQ(limiter.Admit(7, 100), std::nullopt);
  EXPECT_EQ(limiter.Admit(7, 130), std::nullopt);
  EXPECT_EQ(limiter.Admit(8, 130), 0u);
  EXPECT_EQ(limiter.Admit(7, 100 + HandshakeLogLimiter::kWindowSeconds), 2u);
  // A scanner cycling through addresses only evicts, the table never grows.
  for (uint64_t a = 1000; a < 1000 + 4 * HandshakeLogLimiter::kSlots; ++a) limiter.Admit(a, 200);
  EXPECT_EQ(limiter.Admit(7, 200), 0u);
}

TEST_F(SslHookTest, RejectAtHandshakeStillExplainsAMissingCertificateAtRequestTime) {
  Set(server_policy_.get(), "certgate_reject_at", "handshake");
  Attach();
  Attach();  // attaching again (a server re-reading its configuration) replaces the first
  Connection conn = Handshake(nullptr);
  ASSERT_TRUE(conn.handshake_ok);
  EXPECT_EQ(cg_decision_reason(cg_ssl_decide(conn.server.get(), server_policy_.get())),
            CG_REASON_NO_CERT);
}

// Test Config: revocation cache_only, the issuing CA's CRL preloaded from a file.
TEST_F(SslHookTest, RevocationIsCheckedOnEveryRequestAgainstTheSharedCache) {
  char dir_template[] = "/tmp/certgate-hook-XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  const Issued leaf = pki_->Issue(*issuing_, PkiBuilder::LeafSpec("CN=carol"));
  const uint64_t serial = std::stoull(SerialHexOf(leaf), nullptr, 16);
  const std::string crl_path = dir + "/issuing.crl";
  ASSERT_TRUE(pki::WriteFile(
      crl_path, pki::ToDer(pki_->Crl(*issuing_, {}, 1, kNow - 3600, kNow + 86400).get())));

  Set(server_policy_.get(), "certgate_revocation", "cache_only");
  Set(server_policy_.get(), "certgate_revocation_scope", "leaf");
  Set(server_policy_.get(), "certgate_cache", (dir + "/cache").c_str());
  Set(server_policy_.get(), "certgate_crl", crl_path.c_str());
  Attach();
  Connection conn = Handshake(&leaf, {*issuing_});
  ASSERT_TRUE(conn.handshake_ok);
  // The CRL's issuer is an intermediate the server does not trust directly: it
  // is verified and ingested once this chain brings it, and the request waits.
  // The preload runs in the background; requests wait (as the adapters do).
  const cg_decision *before = cg_ssl_decide(conn.server.get(), server_policy_.get());
  for (int i = 0; i < 50 && cg_decision_pending(before); ++i) {
    cg_ssl_wait(conn.server.get(), server_policy_.get(), 100);
    before = cg_ssl_decide(conn.server.get(), server_policy_.get());
  }
  EXPECT_EQ(cg_decision_verdict(before), CG_VERDICT_ALLOW)
      << Field(before, CG_FIELD_DETAIL) << " / " << Field(before, CG_FIELD_REVOCATION);
  EXPECT_THAT(Field(before, CG_FIELD_REVOCATION), HasSubstr("good crl"));

  // The CA revokes the certificate; the new CRL reaches the cache (here by a
  // preload, as the fetcher or another worker would write it).
  ASSERT_TRUE(pki::WriteFile(
      crl_path,
      pki::ToDer(
          pki_->Crl(*issuing_, {{serial, kNow - 60, 1}}, 2, kNow - 60, kNow + 86400).get())));
  std::string error;
  Policy policy;
  ASSERT_TRUE(policy.Set("cache", {dir + "/cache"}).ok());
  RevocationChecker *checker = RevocationFor(policy, nullptr, ConnectionClock(), &error);
  ASSERT_NE(checker, nullptr) << error;
  X509_STORE *trust = X509_STORE_new();
  X509_STORE_add_cert(trust, issuing_->cert.get());
  ASSERT_TRUE(checker->Preload({crl_path}, trust).ok());
  X509_STORE_free(trust);

  const cg_decision *after = cg_ssl_decide(conn.server.get(), server_policy_.get());
  EXPECT_EQ(cg_decision_reason(after), CG_REASON_REVOKED);
  EXPECT_THAT(Field(after, CG_FIELD_REVOCATION), HasSubstr("keyCompromise"));
  EXPECT_EQ(cg_decision_verdict(before), CG_VERDICT_ALLOW);  // the earlier pointer stays valid
}

class SslHookResumptionTest : public SslHookTest,
                              public ::testing::WithParamInterface<int /* TLS version */> {};

TEST_P(SslHookResumptionTest, ResumedSessionIsJudgedAgainFromTheLeaf) {
  Attach();
  const Issued leaf = pki_->Issue(*issuing_, PkiBuilder::LeafSpec("CN=alice"));
  Connection first = Handshake(&leaf, {*issuing_}, nullptr, GetParam());
  ASSERT_TRUE(first.handshake_ok);
  EXPECT_EQ(cg_decision_verdict(cg_ssl_decide(first.server.get(), server_policy_.get())),
            CG_VERDICT_ALLOW);
  Owned<SSL_SESSION> session(SSL_get1_session(first.client.get()));
  ASSERT_NE(session, nullptr);

  // The intermediate is not in the server's store; the resumed session has only
  // the leaf, and the chain is rebuilt with the intermediate seen before.
  Connection resumed = Handshake(&leaf, {*issuing_}, session.get(), GetParam());
  ASSERT_TRUE(resumed.handshake_ok);
  ASSERT_TRUE(SSL_session_reused(resumed.server.get()));
  const cg_decision *decision = cg_ssl_decide(resumed.server.get(), server_policy_.get());
  EXPECT_EQ(cg_decision_verdict(decision), CG_VERDICT_ALLOW) << Field(decision, CG_FIELD_DETAIL);

  // A policy that refuses this certificate refuses the resumed session too.
  std::unique_ptr<cg_policy, CgPolicyDeleter> strict(cg_policy_new());
  Set(strict.get(), "certgate_subject", "OU=Admins");
  cg_error error;
  cg_policy_inherit(strict.get(), server_policy_.get(), &error);
  EXPECT_EQ(cg_decision_reason(cg_ssl_decide(resumed.server.get(), strict.get())),
            CG_REASON_IDENTITY_MISMATCH);
}

// A ticket resumes in any worker: one that never saw the client's intermediate
// (an empty intermediate cache) rebuilds the chain from what the session carries.
TEST_P(SslHookResumptionTest, ResumedSessionIsJudgedInAWorkerThatNeverSawTheChain) {
  Attach();
  const Issued leaf = pki_->Issue(*issuing_, PkiBuilder::LeafSpec("CN=carol"));
  Connection first = Handshake(&leaf, {*issuing_}, nullptr, GetParam());
  ASSERT_TRUE(first.handshake_ok);
  Owned<SSL_SESSION> session(SSL_get1_session(first.client.get()));
  ASSERT_NE(session, nullptr);
  IntermediateCache::Process().Clear();
  ASSERT_EQ(IntermediateCache::Process().size(), 0u);

  // nginx's shared session cache keeps sessions serialized: the chain survives that.
  unsigned char *der = nullptr;
  const int der_len = i2d_SSL_SESSION(SSL_get_session(first.server.get()), &der);
  ASSERT_GT(der_len, 0);
  const unsigned char *p = der;
  Owned<SSL_SESSION> stored(d2i_SSL_SESSION(nullptr, &p, der_len));
  OPENSSL_free(der);
  ASSERT_NE(stored, nullptr);
  Owned<STACK_OF(X509)> carried(sk_X509_new_null());
  AddChainFromSession(stored.get(), carried.get());
  ASSERT_EQ(sk_X509_num(carried.get()), 1);
  EXPECT_EQ(X509_cmp(sk_X509_value(carried.get(), 0), issuing_->cert.get()), 0);

  Connection resumed = Handshake(&leaf, {*issuing_}, session.get(), GetParam());
  ASSERT_TRUE(resumed.handshake_ok);
  ASSERT_TRUE(SSL_session_reused(resumed.server.get()));
  const cg_decision *decision = cg_ssl_decide(resumed.server.get(), server_policy_.get());
  EXPECT_EQ(cg_decision_verdict(decision), CG_VERDICT_ALLOW) << Field(decision, CG_FIELD_DETAIL);
}

TEST_P(SslHookResumptionTest, ResumedSessionOfABadCertificateIsStillRefused) {
  Attach();
  CertSpec spec = PkiBuilder::LeafSpec("CN=bob");
  spec.eku = {"serverAuth"};
  const Issued leaf = pki_->Issue(*issuing_, spec);
  Connection first = Handshake(&leaf, {*issuing_}, nullptr, GetParam());
  Owned<SSL_SESSION> session(SSL_get1_session(first.client.get()));
  Connection resumed = Handshake(&leaf, {*issuing_}, session.get(), GetParam());
  ASSERT_TRUE(SSL_session_reused(resumed.server.get()));
  EXPECT_EQ(cg_decision_reason(cg_ssl_decide(resumed.server.get(), server_policy_.get())),
            CG_REASON_WRONG_PURPOSE);
}

INSTANTIATE_TEST_SUITE_P(Tls, SslHookResumptionTest,
                         ::testing::Values(TLS1_2_VERSION, TLS1_3_VERSION), [](const auto &info) {
                           return info.param == TLS1_2_VERSION ? "TLS12" : "TLS13";
                         });

TEST(IntermediateCacheTest, OffersOnlyIssuersOfTheLeaf) {
  PkiBuilder pki(kNow);
  const Issued root = pki.SelfSigned(PkiBuilder::CaSpec("CN=R"));
  const Issued a = pki.Issue(root, PkiBuilder::CaSpec("CN=A"));
  const Issued b = pki.Issue(root, PkiBuilder::CaSpec("CN=B"));
  const Issued leaf = pki.Issue(a, PkiBuilder::LeafSpec("CN=leaf"));
  IntermediateCache cache(8);
  ChainEvidence evidence;
  evidence.anchored = true;
  evidence.chain = {leaf.cert, a.cert, root.cert};
  cache.Learn(evidence);
  evidence.chain = {pki.Issue(b, PkiBuilder::LeafSpec("CN=x")).cert, b.cert, root.cert};
  cache.Learn(evidence);
  EXPECT_EQ(cache.size(), 2u);
  auto candidates = cache.CandidatesFor(leaf.cert.get(), nullptr);
  ASSERT_EQ(sk_X509_num(candidates.get()), 1);
  EXPECT_EQ(X509_cmp(sk_X509_value(candidates.get(), 0), a.cert.get()), 0);

  // Chains with defects or without an anchor teach nothing.
  IntermediateCache strict(8);
  evidence.anchored = false;
  strict.Learn(evidence);
  EXPECT_EQ(strict.size(), 0u);
}

}  // namespace
}  // namespace certgate
