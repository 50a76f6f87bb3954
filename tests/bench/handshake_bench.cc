// Server CPU of a full mTLS handshake and of one keep-alive request, certgate
// (attached as the adapters attach it, with a full policy) against OpenSSL's own
// client-cert check (SSL_VERIFY_PEER), as issue 10 §1 asks. The handshakes run in
// memory (a BIO pair), one thread, P-256 everywhere, TLS 1.3, no session cache or
// tickets; only the server's calls are timed (thread CPU clock), so the client's
// work and the network do not dilute the ratio. Run both members of each pair
// interleaved and read the ratio of the medians:
//   build/tests/bench/certgate_bench_handshake --benchmark_repetitions=15 \
//     --benchmark_enable_random_interleaving=true --benchmark_report_aggregates_only=true
#include <benchmark/benchmark.h>
#include <certgate/certgate.h>
#include <certgate/ossl_ptr.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pki_builder.h>
#include <time.h>

#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace certgate {
namespace {

using pki::Issued;
using pki::PkiBuilder;

constexpr int64_t kNow = 1800000000;  // matches the certificates' validity (see PkiBuilder)

double ThreadCpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct SslFree {
  void operator()(SSL *ssl) const { SSL_free(ssl); }
  void operator()(SSL_CTX *ctx) const { SSL_CTX_free(ctx); }
  void operator()(cg_policy *policy) const { cg_policy_free(policy); }
};
template <typename T>
using Owned = std::unique_ptr<T, SslFree>;

// Root -> issuing CA (sent by the client) -> client leaf with SANs; the server
// trusts the root and has its own certificate from it.
struct Setup {
  Setup() : pki(time(nullptr)) {
    root = pki.SelfSigned(PkiBuilder::CaSpec("CN=Bench Root,O=Example"));
    issuing = pki.Issue(root, PkiBuilder::CaSpec("CN=Bench Issuing CA,O=Example"));
    other_issuing = pki.Issue(root, PkiBuilder::CaSpec("CN=Bench Other CA,O=Example"));
    pki::CertSpec spec = PkiBuilder::LeafSpec("CN=alice,OU=People,O=Example");
    spec.san = {"email:alice@example.com", "URI:spiffe://prod/alice"};
    spec.eku = {"clientAuth"};
    spec.key_usage = KU_DIGITAL_SIGNATURE;
    leaf = pki.Issue(issuing, spec);
    pki::CertSpec server_spec = PkiBuilder::LeafSpec("CN=localhost");
    server_spec.eku = {"serverAuth"};
    server = pki.Issue(root, server_spec);
    denied = pki.Issue(issuing, PkiBuilder::LeafSpec("CN=mallory,OU=People,O=Example"));

    char dir[] = "/tmp/certgate_bench_handshake.XXXXXX";
    if (mkdtemp(dir) == nullptr) abort();
    issuers_file = std::string(dir) + "/issuers.pem";
    FILE *file = fopen(issuers_file.c_str(), "w");
    if (file == nullptr) abort();
    PEM_write_X509(file, issuing.cert.get());
    PEM_write_X509(file, other_issuing.cert.get());
    fclose(file);

    client_ctx.reset(SSL_CTX_new(TLS_client_method()));
    SSL_CTX_set_min_proto_version(client_ctx.get(), TLS1_3_VERSION);
    SSL_CTX_use_certificate(client_ctx.get(), leaf.cert.get());
    SSL_CTX_use_PrivateKey(client_ctx.get(), leaf.key.get());
    SSL_CTX_add1_chain_cert(client_ctx.get(), issuing.cert.get());

    native_ctx = ServerCtx();
    SSL_CTX_set_verify(native_ctx.get(), SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT,
                       nullptr);
    SSL_CTX_set_verify_depth(native_ctx.get(), 3);

    // The policy of tests/bench/server_bench.sh.
    policy.reset(cg_policy_new());
    Set("certgate", {"require"});
    Set("subject", {"OU=People"});
    Set("san", {"uri:spiffe://prod/*"});
    Set("trusted_issuers", {issuers_file});
    Set("require_eku", {"clientAuth"});
    Set("require_key_usage", {"digitalSignature"});
    Set("min_key", {"rsa=2048", "ec=256"});
    Set("deny_signature", {"md5", "sha1"});
    Set("max_depth", {"5"});
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    X509_digest(denied.cert.get(), EVP_sha256(), md, &len);
    std::string hex = "sha256:";
    for (unsigned int i = 0; i < len; ++i)
      hex += "0123456789abcdef"[md[i] >> 4], hex += "0123456789abcdef"[md[i] & 15];
    Set("deny", {hex});
    certgate_ctx = Attached(policy.get());
    // `certgate require` alone: what the chain costs whatever the rules.
    minimal_policy.reset(cg_policy_new());
    const cg_str require = {"require", 7};
    cg_error error;
    if (cg_policy_set(minimal_policy.get(), "certgate", &require, 1, &error) != CG_OK) abort();
    minimal_ctx = Attached(minimal_policy.get());
  }

  void Set(const char *key, std::vector<std::string> values) {
    std::vector<cg_str> args;
    for (const std::string &v : values) args.push_back({v.data(), v.size()});
    cg_error error;
    if (cg_policy_set(policy.get(), key, args.data(), args.size(), &error) != CG_OK) {
      fprintf(stderr, "%s: %s\n", key, error.message);
      abort();
    }
  }

  Owned<SSL_CTX> Attached(const cg_policy *with) {
    Owned<SSL_CTX> ctx = ServerCtx();
    cg_error error;
    if (cg_ssl_ctx_attach(ctx.get(), with, nullptr, nullptr, &error) != CG_OK) {
      fprintf(stderr, "attach: %s\n", error.message);
      abort();
    }
    return ctx;
  }

  Owned<SSL_CTX> ServerCtx() {
    Owned<SSL_CTX> ctx(SSL_CTX_new(TLS_server_method()));
    SSL_CTX_use_certificate(ctx.get(), server.cert.get());
    SSL_CTX_use_PrivateKey(ctx.get(), server.key.get());
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx.get()), root.cert.get());
    SSL_CTX_set_min_proto_version(ctx.get(), TLS1_3_VERSION);
    SSL_CTX_set_session_cache_mode(ctx.get(), SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx.get(), SSL_OP_NO_TICKET);
    SSL_CTX_set_num_tickets(ctx.get(), 0);
    return ctx;
  }

  PkiBuilder pki;
  Issued root, issuing, other_issuing, leaf, server, denied;
  std::string issuers_file;
  Owned<SSL_CTX> client_ctx, native_ctx, certgate_ctx, minimal_ctx;
  Owned<cg_policy> policy, minimal_policy;
};

Setup &TheSetup() {
  static Setup setup;
  return setup;
}

// The server's own calls, kept out of line so that an instruction count
// (valgrind --tool=callgrind) can add them up per handshake, load-independent:
// see docs/benchmarks.md.
__attribute__((noinline)) SSL *ServerSslNew(SSL_CTX *ctx) { return SSL_new(ctx); }
__attribute__((noinline)) int ServerHandshakeStep(SSL *server) { return SSL_do_handshake(server); }
__attribute__((noinline)) void ServerSslFree(Owned<SSL> *server) { server->reset(); }

// A server SSL after a full handshake; `server_cpu` is what the server's calls cost.
Owned<SSL> Handshake(SSL_CTX *server_ctx, double *server_cpu, Owned<SSL> *client_out) {
  Setup &setup = TheSetup();
  Owned<SSL> client(SSL_new(setup.client_ctx.get()));
  double before = ThreadCpuSeconds();
  Owned<SSL> server(ServerSslNew(server_ctx));
  *server_cpu += ThreadCpuSeconds() - before;
  BIO *server_bio = nullptr;
  BIO *client_bio = nullptr;
  BIO_new_bio_pair(&server_bio, 0, &client_bio, 0);
  SSL_set_bio(server.get(), server_bio, server_bio);
  SSL_set_bio(client.get(), client_bio, client_bio);
  SSL_set_accept_state(server.get());
  SSL_set_connect_state(client.get());
  bool client_done = false;
  bool server_done = false;
  for (int round = 0; round < 20 && !(client_done && server_done); ++round) {
    if (!client_done) client_done = SSL_do_handshake(client.get()) == 1;
    before = ThreadCpuSeconds();
    if (!server_done) server_done = ServerHandshakeStep(server.get()) == 1;
    *server_cpu += ThreadCpuSeconds() - before;
  }
  if (!client_done || !server_done) {
    ERR_print_errors_fp(stderr);
    abort();
  }
  if (client_out != nullptr) *client_out = std::move(client);
  return server;
}

// What nginx reads per request in the native config: the verify result (and
// $ssl_client_verify in the log).
__attribute__((noinline)) bool NativeRequest(SSL *ssl) {
  return SSL_get_verify_result(ssl) == X509_V_OK && SSL_get0_peer_certificate(ssl) != nullptr;
}

// What the nginx adapter does per request: the decision (kept on the connection),
// then the two access-log variables of server_bench.sh.
__attribute__((noinline)) bool CertgateRequestNginx(SSL *ssl, const cg_policy *policy) {
  const cg_decision *decision = cg_ssl_decide_final(ssl, policy);
  const cg_outcome outcome = cg_outcome_of(policy, decision, 0, 0);
  benchmark::DoNotOptimize(cg_decision_field(decision, CG_FIELD_VERDICT));
  benchmark::DoNotOptimize(cg_decision_field(decision, CG_FIELD_REASON));
  return outcome.verdict == CG_VERDICT_ALLOW;
}

void CountField(void *count, const char *, cg_str value) {
  *static_cast<size_t *>(count) += value.len;
}

// The Apache adapter also exports every CERTGATE_* field to the environment.
__attribute__((noinline)) bool CertgateRequestApache(SSL *ssl, const cg_policy *policy) {
  const cg_decision *decision = cg_ssl_decide_final(ssl, policy);
  const cg_outcome outcome = cg_outcome_of(policy, decision, 0, 0);
  size_t bytes = 0;
  cg_decision_export(decision, CountField, &bytes);
  benchmark::DoNotOptimize(bytes);
  return outcome.verdict == CG_VERDICT_ALLOW;
}

enum Config { kNative, kCertgate, kCertgateRequireOnly };

// One full handshake + the first request + the connection's end, server side.
void BM_ServerHandshake(benchmark::State &state) {
  Setup &setup = TheSetup();
  const Config config = static_cast<Config>(state.range(0));
  SSL_CTX *ctx = config == kNative     ? setup.native_ctx.get()
                 : config == kCertgate ? setup.certgate_ctx.get()
                                       : setup.minimal_ctx.get();
  const cg_policy *policy = config == kCertgate ? setup.policy.get() : setup.minimal_policy.get();
  for (auto _ : state) {
    double server_cpu = 0;
    Owned<SSL> server = Handshake(ctx, &server_cpu, nullptr);
    const double before = ThreadCpuSeconds();
    const bool allowed = config == kNative ? NativeRequest(server.get())
                                           : CertgateRequestNginx(server.get(), policy);
    ServerSslFree(&server);
    server_cpu += ThreadCpuSeconds() - before;
    if (!allowed) state.SkipWithError("the client was refused");
    state.SetIterationTime(server_cpu);
  }
}
// 0 native, 1 certgate with the full policy, 2 certgate with `certgate require` alone.
BENCHMARK(BM_ServerHandshake)
    ->ArgName("certgate")
    ->Arg(kNative)
    ->Arg(kCertgate)
    ->Arg(kCertgateRequireOnly)
    ->UseManualTime();

// One keep-alive request on an established connection: 0 native, 1 certgate as
// nginx reads it, 2 certgate as Apache reads it.
void BM_ServerRequest(benchmark::State &state) {
  Setup &setup = TheSetup();
  const int config = static_cast<int>(state.range(0));
  double ignored = 0;
  Owned<SSL> server =
      Handshake(config == 0 ? setup.native_ctx.get() : setup.certgate_ctx.get(), &ignored, nullptr);
  for (auto _ : state) {
    bool allowed = false;
    switch (config) {
      case 0:
        allowed = NativeRequest(server.get());
        break;
      case 1:
        allowed = CertgateRequestNginx(server.get(), setup.policy.get());
        break;
      default:
        allowed = CertgateRequestApache(server.get(), setup.policy.get());
        break;
    }
    if (!allowed) state.SkipWithError("the client was refused");
  }
}
BENCHMARK(BM_ServerRequest)->ArgName("config")->Arg(0)->Arg(1)->Arg(2);

}  // namespace
}  // namespace certgate
