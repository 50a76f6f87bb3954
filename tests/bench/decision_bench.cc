// Decision cost for a typical 3-certificate chain (leaf + intermediate sent,
// root trusted), split into OpenSSL's own X509_verify_cert (the anchor) and the
// work certgate adds on top. Run: build/tests/bench/certgate_bench_decision
#include <benchmark/benchmark.h>
#include <certgate/evaluator.h>
#include <certgate/log_format.h>
#include <openssl/ssl.h>
#include <pki_builder.h>
#include <stdlib.h>

#include <vector>

#include "handshake_failure.h"
#include "revocation/registry.h"
#include "strict_defects.h"

namespace certgate {
namespace {

constexpr int64_t kNow = 1800000000;

struct Chain {
  Chain() : pki(kNow) {
    root = pki.SelfSigned(pki::PkiBuilder::CaSpec("CN=Bench Root,O=Example"));
    issuing = pki.Issue(root, pki::PkiBuilder::CaSpec("CN=Bench Issuing CA,O=Example"));
    pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=alice,OU=People,O=Example");
    spec.san = {"email:alice@example.com", "URI:spiffe://prod/alice"};
    leaf = pki.Issue(issuing, spec);
    store.reset(X509_STORE_new());
    X509_STORE_add_cert(store.get(), root.cert.get());
    untrusted.reset(sk_X509_new_null());
    X509_up_ref(issuing.cert.get());
    sk_X509_push(untrusted.get(), issuing.cert.get());
  }
  pki::PkiBuilder pki;
  pki::Issued root, issuing, leaf;
  ossl::UniquePtr<X509_STORE> store;
  ossl::UniquePtr<STACK_OF(X509)> untrusted;
};

Chain &TheChain() {
  static Chain chain;
  return chain;
}

// Every rule of DESIGN §2 that applies to an accepted certificate switched on.
Policy AllRules() {
  Chain &chain = TheChain();
  Policy policy;
  (void)policy.Set("certgate", {"require"});
  (void)policy.Set("subject", {"OU=People", "O=Example"});
  (void)policy.Set("san", {"uri:spiffe://prod/*"});
  (void)policy.Set("min_key", {"rsa=2048", "ec=256"});
  (void)policy.Set("deny_signature", {"md5", "sha1"});
  (void)policy.Set("deny", {"sha256:" + std::string(64, '0')});
  policy.trusted_issuers = CertList{"bench", {chain.issuing.cert}};
  return policy;
}

// The anchor: OpenSSL's own chain verification, as a server does per handshake.
void BM_X509VerifyCert(benchmark::State &state) {
  Chain &chain = TheChain();
  for (auto _ : state) {
    ossl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
    X509_STORE_CTX_init(ctx.get(), chain.store.get(), chain.leaf.cert.get(), chain.untrusted.get());
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx.get()), kNow);
    benchmark::DoNotOptimize(X509_verify_cert(ctx.get()));
  }
}
BENCHMARK(BM_X509VerifyCert);

// certgate's chain evidence: X509_verify_cert with every error recorded.
void BM_BuildChainEvidence(benchmark::State &state) {
  Chain &chain = TheChain();
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        BuildChainEvidence(chain.leaf.cert.get(), chain.untrusted.get(), chain.store.get(), kNow));
  }
}
BENCHMARK(BM_BuildChainEvidence);

// The certgate_strict checks alone (run once per chain inside
// BuildChainEvidence): the issue 15 budget is 1 µs per handshake.
void BM_StrictChecks(benchmark::State &state) {
  Chain &chain = TheChain();
  const ChainEvidence evidence =
      BuildChainEvidence(chain.leaf.cert.get(), chain.untrusted.get(), chain.store.get(), kNow);
  if (!evidence.strict_defects.empty()) state.SkipWithError("the bench chain has a strict defect");
  for (auto _ : state) {
    benchmark::DoNotOptimize(FindStrictDefects(evidence.chain, evidence.anchored));
  }
}
BENCHMARK(BM_StrictChecks);

// The per-handshake decoding (issue 10 §1): what every chain pays (dates, keys,
// usages, signature digests, strict and name-constraint checks) and what the
// leaf's identity rules read (digests, subject, SANs), each once per connection.
void BM_SummarizeChain(benchmark::State &state) {
  Chain &chain = TheChain();
  ChainEvidence evidence =
      BuildChainEvidence(chain.leaf.cert.get(), chain.untrusted.get(), chain.store.get(), kNow);
  for (auto _ : state) {
    evidence.Summarize();
    benchmark::DoNotOptimize(evidence.summaries.data());
  }
}
BENCHMARK(BM_SummarizeChain);

void BM_SummarizeLeaf(benchmark::State &state) {
  Chain &chain = TheChain();
  const bool all = state.range(0) != 0;
  // Parsed from DER, as a server receives it (OpenSSL keeps the encoding).
  unsigned char *der = nullptr;
  const int len = i2d_X509(chain.leaf.cert.get(), &der);
  const unsigned char *next = der;
  const std::shared_ptr<X509> parsed(d2i_X509(nullptr, &next, len), X509_free);
  OPENSSL_free(der);
  for (auto _ : state) {
    // What the policies of these benchmarks read: subject attributes, SANs and
    // the certificate digest; `all` adds the RFC 2253 text and the SPKI digest.
    const LeafSummary leaf(parsed);
    benchmark::DoNotOptimize(leaf.subject_entries().data());
    benchmark::DoNotOptimize(leaf.subject_alt_names().data());
    benchmark::DoNotOptimize(leaf.cert_sha256().data());
    if (all) {
      benchmark::DoNotOptimize(leaf.subject().data());
      benchmark::DoNotOptimize(leaf.spki_sha256().data());
    }
  }
}
BENCHMARK(BM_SummarizeLeaf)->ArgName("all_parts")->Arg(0)->Arg(1);

// certgate's added work for a cached chain: every policy rule on the evidence.
void BM_EvaluateCachedChain(benchmark::State &state) {
  Chain &chain = TheChain();
  const Policy policy = AllRules();
  const ChainEvidence evidence =
      BuildChainEvidence(chain.leaf.cert.get(), chain.untrusted.get(), chain.store.get(), kNow);
  const FixedClock clock(kNow);
  for (auto _ : state) {
    Decision decision = Evaluate(policy, &evidence, clock);
    if (decision.verdict() != CG_VERDICT_ALLOW) state.SkipWithError(decision.detail().c_str());
    benchmark::DoNotOptimize(decision);
  }
}
BENCHMARK(BM_EvaluateCachedChain);

// The whole decision a full handshake pays: evidence + every rule.
void BM_FullDecision(benchmark::State &state) {
  Chain &chain = TheChain();
  const Policy policy = AllRules();
  const FixedClock clock(kNow);
  for (auto _ : state) {
    const ChainEvidence evidence =
        BuildChainEvidence(chain.leaf.cert.get(), chain.untrusted.get(), chain.store.get(), kNow);
    benchmark::DoNotOptimize(Evaluate(policy, &evidence, clock));
  }
}
BENCHMARK(BM_FullDecision);

// Only paid on refusals (or with `log accepts`).
void BM_FormatLogLine(benchmark::State &state) {
  Chain &chain = TheChain();
  for (auto _ : state) {
    const Decision decision =
        Decision::Deny({CG_REASON_EXPIRED, 0, "expired", {}}, chain.leaf.cert);
    benchmark::DoNotOptimize(FormatLogLine(decision, LogFormat::kKv));
  }
}
BENCHMARK(BM_FormatLogLine);

// What every request with revocation on pays before the lookup (issue 10 §1):
// the process's checker for the policy's cache, with its certgate_crl already
// preloaded, then whether a preload still runs (ssl_hook's WithRevocation).
// Threads(2) shows what the requests of a threaded server pay when they meet.
void BM_RevocationForAndPreloadInProgress(benchmark::State &state) {
  static const Policy *policy = [] {
    char dir[] = "/tmp/certgate_bench_registry.XXXXXX";
    if (mkdtemp(dir) == nullptr) abort();
    auto *made = new Policy();
    (void)made->Set("revocation", {"cache_only"});
    (void)made->Set("cache", {dir});
    std::vector<std::string> crls;
    for (const char *name : {"/ca.crl", "/sub.crl"}) {
      crls.push_back(dir + std::string(name));
      if (FILE *file = fopen(crls.back().c_str(), "w")) fclose(file);  // no CRL: preloads fail fast
    }
    if (!made->Set("crl", crls).ok()) abort();
    return made;
  }();
  static const FixedClock clock(kNow);
  std::string error;
  if (RevocationFor(*policy, nullptr, clock, &error) == nullptr) {
    state.SkipWithError(error.c_str());
    return;
  }
  WaitForPreloads(std::chrono::seconds(5));
  for (auto _ : state) {
    benchmark::DoNotOptimize(RevocationFor(*policy, nullptr, clock, &error));
    benchmark::DoNotOptimize(PreloadInProgress());
  }
}
BENCHMARK(BM_RevocationForAndPreloadInProgress)->Threads(1)->Threads(2);

// Issue 12 §4: what the failed-handshake watch adds to every handshake that
// succeeds: one info callback per state change (about a dozen in a TLS 1.3
// handshake with a CertificateRequest), of which two set a bit; nothing is
// formatted. Compare with a full handshake (about 1 ms of CPU).
void BM_HandshakeWatchPerSuccessfulHandshake(benchmark::State &state) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  for (auto _ : state) {
    SSL *ssl = SSL_new(ctx);
    SSL_set_accept_state(ssl);
    for (int i = 0; i < 12; ++i) {
      benchmark::DoNotOptimize(NoteHandshakeEvent(ssl, SSL_CB_ACCEPT_LOOP, 1));
    }
    benchmark::DoNotOptimize(NoteHandshakeEvent(ssl, SSL_CB_HANDSHAKE_DONE, 1));
    benchmark::DoNotOptimize(NoteHandshakeEvent(ssl, SSL_CB_ACCEPT_EXIT, 1));
    SSL_free(ssl);
  }
  SSL_CTX_free(ctx);
}
BENCHMARK(BM_HandshakeWatchPerSuccessfulHandshake);

// The same with the message callback's share (issue 12 §4: supported_versions
// and ALPN): the ClientHello parsed once, the handshake's other messages and
// record headers (about a dozen) each turned away by their type.
void BM_HandshakeWatchWithClientHello(benchmark::State &state) {
  std::vector<unsigned char> hello;
  {
    SSL_CTX *client_ctx = SSL_CTX_new(TLS_client_method());
    static const unsigned char kAlpn[] = "\x02h2\x08http/1.1";
    SSL_CTX_set_alpn_protos(client_ctx, kAlpn, sizeof kAlpn - 1);
    SSL_CTX_set_msg_callback(
        client_ctx, [](int write_p, int, int type, const void *buf, size_t len, SSL *, void *arg) {
          const auto *bytes = static_cast<const unsigned char *>(buf);
          if (write_p && type == SSL3_RT_HANDSHAKE && len > 0 && bytes[0] == SSL3_MT_CLIENT_HELLO) {
            static_cast<std::vector<unsigned char> *>(arg)->assign(bytes, bytes + len);
          }
        });
    SSL_CTX_set_msg_callback_arg(client_ctx, &hello);
    SSL *client = SSL_new(client_ctx);
    SSL_set_bio(client, BIO_new(BIO_s_mem()), BIO_new(BIO_s_mem()));
    SSL_set_connect_state(client);
    SSL_do_handshake(client);
    SSL_free(client);
    SSL_CTX_free(client_ctx);
  }
  const unsigned char header[5] = {SSL3_RT_HANDSHAKE, 3, 3, 0, 64};
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  for (auto _ : state) {
    SSL *ssl = SSL_new(ctx);
    SSL_set_accept_state(ssl);
    NoteHandshakeMessage(0, TLS1_2_VERSION, SSL3_RT_HANDSHAKE, hello.data(), hello.size(), ssl,
                         nullptr);
    for (int i = 0; i < 12; ++i) {
      NoteHandshakeMessage(i % 2, TLS1_3_VERSION, SSL3_RT_HEADER, header, sizeof header, ssl,
                           nullptr);
      benchmark::DoNotOptimize(NoteHandshakeEvent(ssl, SSL_CB_ACCEPT_LOOP, 1));
    }
    benchmark::DoNotOptimize(NoteHandshakeEvent(ssl, SSL_CB_HANDSHAKE_DONE, 1));
    benchmark::DoNotOptimize(NoteHandshakeEvent(ssl, SSL_CB_ACCEPT_EXIT, 1));
    SSL_free(ssl);
  }
  SSL_CTX_free(ctx);
}
BENCHMARK(BM_HandshakeWatchWithClientHello);

// The baseline of the above: the same SSL_new/SSL_free without the calls.
void BM_SslNewFree(benchmark::State &state) {
  SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
  for (auto _ : state) {
    SSL *ssl = SSL_new(ctx);
    SSL_set_accept_state(ssl);
    benchmark::DoNotOptimize(ssl);
    SSL_free(ssl);
  }
  SSL_CTX_free(ctx);
}
BENCHMARK(BM_SslNewFree);

}  // namespace
}  // namespace certgate
