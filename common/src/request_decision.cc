// cg_request_decide: the decision for one request, from the connection's TLS
// certificate or from the one a trusted proxy forwarded in a header.
//
// A forwarded certificate is judged per request, never kept on the connection:
// a proxy's keep-alive connection carries the requests of many clients, each
// with its own certificate. The decision belongs to the request (the adapter
// frees it with the request); nothing of it outlives the request but the
// revocation cache's answers and, while a fetch is awaited, when the wait for
// this certificate began.
#include <certgate/certgate.h>
#include <certgate/chain_evidence.h>
#include <certgate/clock.h>
#include <certgate/evaluator.h>
#include <certgate/revocation.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "c_handles.h"
#include "forwarded_cert.h"
#include "handshake_failure.h"
#include "intermediate_cache.h"
#include "revocation/registry.h"
#include "revocation/verdict.h"
#include "ssl_hook.h"

namespace certgate {
namespace {

using SteadyClock = std::chrono::steady_clock;

// When the wait for each forwarded certificate's revocation fetch began, by a
// digest of the header value: a request asks again (nginx's timer) with a new
// decision each time, and revocation_wait counts from the first ask.
class ForwardedWaits {
 public:
  SteadyClock::time_point Since(const std::string &key, SteadyClock::time_point now) {
    std::lock_guard<std::mutex> lock(mutex_);
    if (since_.size() >= kMax) since_.clear();  // bounded: a flood only restarts waits
    return since_.emplace(key, now).first->second;
  }
  void Forget(const std::string &key) {
    std::lock_guard<std::mutex> lock(mutex_);
    since_.erase(key);
  }
  static ForwardedWaits &Process() {
    static ForwardedWaits waits;
    return waits;
  }

 private:
  static constexpr size_t kMax = 4096;
  std::mutex mutex_;
  std::map<std::string, SteadyClock::time_point> since_;
};

std::string DigestOf(std::string_view value) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(value.data(), value.size(), md, &len, EVP_sha256(), nullptr) != 1) {
    return std::string(value);
  }
  return std::string(reinterpret_cast<char *>(md), len);
}

std::unique_ptr<cg_decision> Made(Decision decision, const std::string &proxy,
                                  const std::string &header) {
  auto made = std::make_unique<cg_decision>(std::move(decision));
  made->log_extras = {{"source", "forwarded"}, {"proxy", proxy}, {"header", header}};
  return made;
}

// The revocation part, as for a TLS chain (ssl_hook.cc's WithRevocation);
// `threaded` waits here, bounded, until the decision is final.
void ApplyForwardedRevocation(const Policy &policy, X509_STORE *trust,
                              const ChainEvidence &evidence, const std::string &key, bool threaded,
                              Decision *decision) {
  const Decision chain = *decision;
  std::string error;
  RevocationChecker *checker = RevocationFor(policy, trust, ConnectionClock(), &error);
  const auto guard =
      SteadyClock::now() + 2 * policy.EffectiveRevocationWait() + std::chrono::seconds(1);
  for (;;) {
    const std::vector<RevocationAnswer> answers =
        checker != nullptr ? checker->Check(evidence, policy) : UnavailableAnswers(error);
    const bool preloading = PreloadInProgress();
    const bool in_flight = std::any_of(answers.begin(), answers.end(), [&](const auto &answer) {
      return answer.status != RevocationStatus::kGood &&
             answer.status != RevocationStatus::kRevoked && (answer.fetch_pending || preloading);
    });
    const RevocationMode mode = policy.EffectiveRevocation();
    bool pending = false;
    if (in_flight && (mode == RevocationMode::kHardFail || mode == RevocationMode::kCacheOnly)) {
      const auto now = SteadyClock::now();
      pending = now - ForwardedWaits::Process().Since(key, now) < policy.EffectiveRevocationWait();
    }
    if (!pending) ForwardedWaits::Process().Forget(key);
    *decision = chain;
    ApplyRevocation(policy, answers, decision);
    decision->SetPending(pending);
    if (!pending || !threaded || checker == nullptr) return;
    const auto now = SteadyClock::now();
    if (now >= guard) return;  // still pending: the caller never allows on it
    const auto step = std::min(std::chrono::duration_cast<std::chrono::milliseconds>(guard - now),
                               std::chrono::milliseconds(100));
    WaitForPreloads(step);
    checker->WaitForFetches(evidence, step);
  }
}

// The forwarded certificate of a request from trusted proxy `proxy`.
std::unique_ptr<cg_decision> JudgeForwarded(SSL *ssl, const Policy &policy,
                                            const ForwardedCert &forwarded, size_t count,
                                            std::string_view value, const std::string &proxy,
                                            bool threaded) {
  const std::string header = forwarded.header;
  if (count == 0) {
    Decision decision = Evaluate(policy, nullptr, ConnectionClock());
    if (decision.reason() == CG_REASON_NO_CERT && !decision.findings().empty()) {
      Finding finding = decision.findings().front();
      finding.detail = "the trusted proxy " + proxy + " forwarded no client certificate (no " +
                       header +
                       " header): the client sent none to the proxy, or the proxy "
                       "does not set the header";
      decision.SetFindings({std::move(finding)});
    }
    return Made(std::move(decision), proxy, header);
  }
  auto refuse = [&](const std::string &why) {
    return Made(Decision::Deny({CG_REASON_MALFORMED, 0,
                                "the " + header + " header forwarded by the trusted proxy " +
                                    proxy + " does not decode: " + why,
                                "have the proxy put the client certificate in " + header +
                                    (forwarded.format == ForwardedCert::Format::kXfcc
                                         ? " as Envoy's x-forwarded-client-cert (Cert= or "
                                           "Chain=, one element)"
                                         : " URL-encoded, as nginx's $ssl_client_escaped_cert")},
                               nullptr),
                proxy, header);
  };
  if (count > 1) {
    return refuse("it appears " + std::to_string(count) + " times (one client, one header)");
  }
  Result<ForwardedChain> chain = ParseForwardedCert(forwarded.format, value);
  if (!chain.ok()) return refuse(chain.status().message());
  if (ssl == nullptr) {
    return Made(Decision::InternalError(
                    "certgate_forwarded_cert needs the proxy's connection to this server to be "
                    "TLS: its client CAs are the trust anchors a forwarded certificate is "
                    "judged by"),
                proxy, header);
  }
  // As a handshake would: the chain as sent, the intermediates this process
  // saw before (untrusted candidates only), the server's trust anchors.
  X509_STORE *trust = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
  auto candidates =
      IntermediateCache::Process().CandidatesFor(chain->leaf.get(), chain->chain.get());
  const int64_t now = ConnectionClock().Now();
  const ChainEvidence evidence =
      BuildChainEvidence(chain->leaf.get(), candidates.get(), trust, now);
  IntermediateCache::Process().Learn(evidence);
  FixedClock at(now);
  Decision decision = Evaluate(policy, &evidence, at);
  if (policy.EffectiveRevocation() != RevocationMode::kOff &&
      decision.verdict() == CG_VERDICT_ALLOW) {
    ApplyForwardedRevocation(policy, trust, evidence, DigestOf(value), threaded, &decision);
  }
  return Made(std::move(decision), proxy, header);
}

// "certgate: forwarded_cert=ignored ..." for a header from an untrusted
// address, at most HandshakeLogLimiter's burst per address and window.
std::string IgnoredNotice(const std::string &header, const std::string &peer) {
  static HandshakeLogLimiter limiter;
  const int64_t now =
      std::chrono::duration_cast<std::chrono::seconds>(SteadyClock::now().time_since_epoch())
          .count();
  const std::optional<uint64_t> suppressed = limiter.Admit(std::hash<std::string>()(peer), now);
  if (!suppressed) return "";
  std::string line = "certgate: forwarded_cert=ignored header=" + header + " client=" + peer +
                     " detail=\"the request carries " + header + " but comes from " + peer +
                     ", which is not in certgate_trusted_proxies: the header is ignored and the "
                     "connection's own certificate is judged\"";
  if (*suppressed > 0) line += " suppressed=" + std::to_string(*suppressed);
  return line;
}

}  // namespace
}  // namespace certgate

extern "C" {

int cg_decision_release(void *decision) {
  cg_decision_free(static_cast<cg_decision *>(decision));
  return 0;
}

cg_request_decision cg_request_decide(const cg_policy *policy, const cg_request *request) {
  cg_request_decision out{nullptr, nullptr, {nullptr, 0}};
  if (!cg_policy_enabled(policy) || request == nullptr) return out;
  ERR_set_mark();
  try {
    const certgate::Policy &p = policy->policy;
    const std::string_view peer(request->client_ip != nullptr ? request->client_ip : "",
                                request->client_ip != nullptr ? request->client_ip_len : 0);
    // Asked only when forwarding or refusing no_cert: the common request (no
    // forwarded_cert, a certificate sent) matches no address blocks.
    auto trusted_peer = [&] {
      return cg_policy_trusted_proxy(policy, peer.data(), peer.size()) != 0;
    };
    auto header = [&](const char *name, cg_str *value) -> size_t {
      *value = {nullptr, 0};
      return request->header != nullptr ? request->header(request->request, name, value) : 0;
    };
    const bool forwarding =
        p.forwarded_cert && p.forwarded_cert->format != certgate::ForwardedCert::Format::kOff;
    cg_str value{nullptr, 0};
    const size_t count = forwarding ? header(p.forwarded_cert->header.c_str(), &value) : 0;
    if (forwarding && trusted_peer()) {
      auto made =
          certgate::JudgeForwarded(request->ssl, p, *p.forwarded_cert, count,
                                   std::string_view(value.data ? value.data : "", value.len),
                                   std::string(peer), request->threaded != 0);
      out.owned = made.release();
      out.decision = out.owned;
      if (request->threaded && cg_decision_pending(out.decision) &&
          cg_decision_verdict(out.decision) == CG_VERDICT_ALLOW) {
        out.decision = nullptr;  // a wait that never settled: never an allow
      }
    } else {
      if (count > 0) {
        static thread_local std::string notice;
        notice = certgate::IgnoredNotice(p.forwarded_cert->header, std::string(peer));
        out.notice = {notice.c_str(), notice.size()};
      }
      out.decision = request->threaded ? cg_ssl_decide_final(request->ssl, policy)
                                       : cg_ssl_decide(request->ssl, policy);
    }
    cg_str ignored;
    if (cg_decision_reason(out.decision) == CG_REASON_NO_CERT &&
        (trusted_peer() || header("X-Forwarded-For", &ignored) > 0 ||
         header("Forwarded", &ignored) > 0)) {
      out.decision = cg_decision_via_proxy(out.decision);  // the hint names the proxy
    }
  } catch (...) {
    cg_decision_free(out.owned);
    out = {certgate::DecisionWithoutTls(policy->policy, /*internal_error=*/true),
           nullptr,
           {nullptr, 0}};
  }
  ERR_pop_to_mark();
  return out;
}

}  // extern "C"
