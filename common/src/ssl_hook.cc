#include "ssl_hook.h"

#include <certgate/cert_facts.h>
#include <certgate/chain_evidence.h>
#include <certgate/evaluator.h>
#include <certgate/log_format.h>
#include <openssl/err.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <memory>
#include <mutex>
#include <optional>
#include <vector>

#include "c_handles.h"
#include "ex_data_index.h"
#include "handshake_failure.h"
#include "intermediate_cache.h"
#include "revocation/registry.h"
#include "revocation/verdict.h"
#include "session_chain.h"

namespace certgate {
namespace {

std::atomic<const Clock *> g_clock{&SystemClock::Instance()};

// What certgate knows about one TLS connection. HTTP/2 streams of one
// connection may be served by several threads (mod_http2), hence the mutex.
struct ConnectionState {
  std::mutex mutex;
  bool examined = false;
  std::optional<ChainEvidence> evidence;  // empty: no certificate presented
  int64_t earliest_not_after = INT64_MAX;
  struct Judged {
    const Policy *policy;
    bool fetched;         // judged the chain completed with fetched issuers
    int64_t valid_until;  // the moment a certificate of the chain expires under this policy
    std::unique_ptr<cg_decision> decision;
  };
  // Decisions are never replaced, only added, so a pointer handed to one request
  // (or HTTP/2 stream) stays valid for the connection's life.
  std::vector<Judged> decisions;
  struct RevocationJudged {
    const Policy *policy;
    std::string outcome;  // OutcomeKey of the answers it was made from
    std::unique_ptr<cg_decision> decision;
  };
  std::vector<RevocationJudged> revocation_decisions;
  // certgate_fetch_issuers: the chain built again with CA certificates fetched
  // from AIA URLs (the furthest it got), and the refusals while it is not
  // complete, one per distinct outcome (pointers handed out stay valid).
  std::optional<ChainEvidence> fetched;
  std::vector<RevocationJudged> issuer_decisions;
  // When this connection began waiting for a revocation fetch (hard_fail).
  std::chrono::steady_clock::time_point waiting_since;
};

void FreeConnectionState(void *, void *ptr, CRYPTO_EX_DATA *, int, long, void *) {
  delete static_cast<ConnectionState *>(ptr);
}

int StateIndex() {
  static const ExDataIndex index(CRYPTO_EX_INDEX_SSL, FreeConnectionState);
  return index.get();
}

using InfoCallback = void (*)(const SSL *ssl, int where, int ret);

struct Attachment {
  const Policy *policy;
  cg_ssl_log_fn log;
  void *log_data;
  InfoCallback previous_info;  // the server's own (nginx: renegotiation), called first
};

void FreeAttachment(void *, void *ptr, CRYPTO_EX_DATA *, int, long, void *) {
  delete static_cast<Attachment *>(ptr);
}

int AttachmentIndex() {
  static const ExDataIndex index(CRYPTO_EX_INDEX_SSL_CTX, FreeAttachment);
  return index.get();
}

ConnectionState *StateOf(SSL *ssl, bool create) {
  auto *state = static_cast<ConnectionState *>(SSL_get_ex_data(ssl, StateIndex()));
  if (state != nullptr || !create) return state;
  static std::mutex creation;  // two streams of a resumed connection may arrive together
  std::lock_guard<std::mutex> lock(creation);
  state = static_cast<ConnectionState *>(SSL_get_ex_data(ssl, StateIndex()));
  if (state == nullptr) {
    state = new ConnectionState();
    if (!SSL_set_ex_data(ssl, StateIndex(), state)) {
      delete state;
      return nullptr;
    }
  }
  return state;
}

int64_t EarliestExpiry(const ChainEvidence &evidence) {
  int64_t earliest = INT64_MAX;
  for (const CertSummary &cert : evidence.summaries) earliest = std::min(earliest, cert.not_after);
  return earliest;
}

// The X509_V_ERR_* whose TLS alert fits the reason (OpenSSL maps it to the alert).
int AlertErrorFor(Reason reason) {
  switch (reason) {
    case CG_REASON_EXPIRED:
      return X509_V_ERR_CERT_HAS_EXPIRED;
    case CG_REASON_NOT_YET_VALID:
      return X509_V_ERR_CERT_NOT_YET_VALID;
    case CG_REASON_REVOKED:
      return X509_V_ERR_CERT_REVOKED;
    case CG_REASON_UNTRUSTED_ISSUER:
    case CG_REASON_CHAIN_INCOMPLETE:
    case CG_REASON_ISSUER_NOT_ALLOWED:
      return X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY;  // unknown_ca
    case CG_REASON_BAD_SIGNATURE:
      return X509_V_ERR_CERT_SIGNATURE_FAILURE;  // decrypt_error
    case CG_REASON_WRONG_PURPOSE:
    case CG_REASON_KEY_USAGE:
      return X509_V_ERR_INVALID_PURPOSE;  // unsupported_certificate
    default:
      return X509_V_ERR_CERT_REJECTED;  // bad_certificate
  }
}

// SSL_CTX_set_cert_verify_callback: runs instead of OpenSSL's own verification.
int VerifyClientChain(X509_STORE_CTX *ctx, void *arg) {
  const auto *attachment = static_cast<const Attachment *>(arg);
  SSL *ssl =
      static_cast<SSL *>(X509_STORE_CTX_get_ex_data(ctx, SSL_get_ex_data_X509_STORE_CTX_idx()));
  ConnectionState *state = ssl != nullptr ? StateOf(ssl, true) : nullptr;
  if (state == nullptr) {
    X509_STORE_CTX_set_error(ctx, X509_V_ERR_OUT_OF_MEM);
    return 0;  // cannot record a decision: never let the connection in unjudged
  }
  state->evidence =
      BuildChainEvidence(X509_STORE_CTX_get0_cert(ctx), X509_STORE_CTX_get0_untrusted(ctx),
                         X509_STORE_CTX_get0_store(ctx), g_clock.load()->Now());
  state->examined = true;
  state->earliest_not_after = EarliestExpiry(*state->evidence);
  IntermediateCache::Process().Learn(*state->evidence);
  // Best effort: a session without its chain is judged from the intermediate cache.
  (void)RememberChainInSession(SSL_get_session(ssl), *state->evidence);

  const Policy &policy = *attachment->policy;
  if (policy.EffectiveRejectAt() == RejectAt::kHandshake) {
    Decision decision = Evaluate(policy, &*state->evidence, *g_clock.load());
    // The handshake cannot wait: only issuers already fetched complete the
    // chain; a missing one is fetched for the client's next attempt.
    if (policy.EffectiveFetchIssuers() && MissesIssuer(*state->evidence)) {
      std::string error;
      X509_STORE *trust = X509_STORE_CTX_get0_store(ctx);
      RevocationChecker *checker = RevocationFor(policy, trust, ConnectionClock(), &error);
      IssuerCompletion completion;
      if (checker != nullptr) {
        completion = checker->CompleteChain(*state->evidence, trust, policy, g_clock.load()->Now());
      }
      if (completion.rebuilt && completion.rebuilt->anchored) {
        decision = Evaluate(policy, &*completion.rebuilt, *g_clock.load());
      } else {
        if (completion.pending) {
          completion.pending = false;
          completion.detail += ", for a later connection (the handshake does not wait)";
        }
        NoteIssuerFetch(completion, /*pending=*/false, &decision);
      }
    }
    if (decision.verdict() == CG_VERDICT_DENY) {
      if (attachment->log != nullptr) {
        const std::string line = FormatLogLine(decision, policy.EffectiveLogFormat());
        attachment->log(ssl, decision.reason(), line.data(), line.size(), attachment->log_data);
      }
      MarkRefusedByCertgate(ssl);
      X509_STORE_CTX_set_error(ctx, AlertErrorFor(decision.reason()));
      // certgate's line explains the refusal. Servers log the first error of the
      // queue: "callback failed" is one nginx and httpd file as a client's
      // handshake failure (info), where OpenSSL's "certificate verify failed",
      // pushed after this returns, is crit in nginx.
      ERR_clear_error();
      ERR_raise(ERR_LIB_SSL, SSL_R_CALLBACK_FAILED);
      return 0;
    }
  }
  // The server's own verdict must not pre-empt certgate's explained refusal.
  X509_STORE_CTX_set_error(ctx, X509_V_OK);
  return 1;
}

const Attachment *AttachmentOf(const SSL *ssl) {
  const SSL_CTX *ctx = SSL_get_SSL_CTX(ssl);
  return ctx != nullptr
             ? static_cast<const Attachment *>(SSL_CTX_get_ex_data(ctx, AttachmentIndex()))
             : nullptr;
}

// SSL_CTX_set_info_callback: notes a few bits per connection; formats and logs
// only when the handshake has failed.
void WatchHandshake(const SSL *ssl, int where, int ret) {
  const Attachment *attachment = AttachmentOf(ssl);
  if (attachment == nullptr) return;
  if (attachment->previous_info != nullptr) attachment->previous_info(ssl, where, ret);
  // The ClientHello is behind: no message callback on the connection's data path.
  if (where & SSL_CB_HANDSHAKE_DONE) SSL_set_msg_callback(const_cast<SSL *>(ssl), nullptr);
  if (!NoteHandshakeEvent(ssl, where, ret) || attachment->log == nullptr) return;

  SSL *mutable_ssl = const_cast<SSL *>(ssl);
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now().time_since_epoch())
                          .count();
  const std::optional<uint64_t> suppressed =
      HandshakeLogLimiter::Process().Admit(ClientAddressKey(ssl), now);
  if (!suppressed) {
    attachment->log(mutable_ssl, CG_REASON_TLS_HANDSHAKE, "", 0, attachment->log_data);
    return;
  }
  HandshakeFailure failure = DescribeHandshakeFailure(ssl);
  if (*suppressed > 0) failure.extras.emplace_back("suppressed", std::to_string(*suppressed));
  const std::string line =
      FormatLogLine(failure.decision, attachment->policy->EffectiveLogFormat(), failure.extras);
  attachment->log(mutable_ssl, CG_REASON_TLS_HANDSHAKE, line.data(), line.size(),
                  attachment->log_data);
}

// Reads the connection clock at every call, so tests can move it.
class ForwardingClock final : public Clock {
 public:
  int64_t Now() const override { return g_clock.load()->Now(); }
};

// The chain rules' decision for `policy`. It holds until a certificate of the
// chain expires; after that the connection is judged once more, so at most two
// exist per policy.
// no_cert says what the server asked for: the CA names its CertificateRequest
// carried (the client may have had no certificate from any of them).
void NameTheCasAskedFor(const SSL *ssl, Decision *decision) {
  if (decision->reason() != CG_REASON_NO_CERT || decision->findings().empty()) return;
  const STACK_OF(X509_NAME) *names = SSL_get_client_CA_list(ssl);
  if (names == nullptr || sk_X509_NAME_num(names) == 0) names = SSL_get0_CA_list(ssl);
  const int count = names != nullptr ? sk_X509_NAME_num(names) : 0;
  if (count == 0) return;
  Finding finding = decision->findings().front();
  finding.detail = "the client sent no certificate although asked for one issued by one of " +
                   std::to_string(count) + (count == 1 ? " CA" : " CAs") +
                   " (first: " + NameToString(sk_X509_NAME_value(names, 0)) +
                   "); certgate require is set here";
  decision->SetFindings({std::move(finding)});
}

const cg_decision *ChainDecision(const SSL *ssl, ConnectionState *state, const Policy &policy,
                                 const ChainEvidence *evidence, bool fetched) {
  const int64_t now = g_clock.load()->Now();
  for (auto it = state->decisions.rbegin(); it != state->decisions.rend(); ++it) {
    if (it->policy == &policy && it->fetched == fetched) {
      if (now < it->valid_until) return it->decision.get();
      break;
    }
  }
  const int64_t skew = policy.EffectiveClockSkew().count();
  const int64_t earliest = fetched ? EarliestExpiry(*evidence) : state->earliest_not_after;
  const bool expires = earliest != INT64_MAX && now <= earliest + skew;
  FixedClock at(now);
  auto decision = std::make_unique<cg_decision>(cg_decision{Evaluate(policy, evidence, at)});
  if (evidence == nullptr) NameTheCasAskedFor(ssl, &decision->decision);
  state->decisions.push_back(
      {&policy, fetched, expires ? earliest + skew + 1 : INT64_MAX, std::move(decision)});
  ERR_clear_error();
  return state->decisions.back().decision.get();
}

// Revocation is looked up in the shared cache on every request (a cert revoked
// after the handshake does not live on in the connection or resumed sessions);
// a decision is kept per distinct outcome, so pointers handed out stay valid.
const cg_decision *WithRevocation(SSL *ssl, ConnectionState *state, const Policy &policy,
                                  const cg_decision &chain, const ChainEvidence &evidence) {
  std::string error;
  RevocationChecker *checker = RevocationFor(policy, SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)),
                                             ConnectionClock(), &error);
  const std::vector<RevocationAnswer> answers =
      checker != nullptr ? checker->Check(evidence, policy) : UnavailableAnswers(error);

  const bool preloading = PreloadInProgress();
  const bool in_flight = std::any_of(answers.begin(), answers.end(), [&](const auto &answer) {
    return answer.status != RevocationStatus::kGood &&
           answer.status != RevocationStatus::kRevoked && (answer.fetch_pending || preloading);
  });
  bool pending = false;
  if (!in_flight) state->waiting_since = {};
  // hard_fail waits for its fetch; cache_only only for local work (a preloaded
  // CRL of an intermediate CA, ingested once a chain brings that CA).
  const RevocationMode mode = policy.EffectiveRevocation();
  if (in_flight && (mode == RevocationMode::kHardFail || mode == RevocationMode::kCacheOnly)) {
    const auto now = std::chrono::steady_clock::now();
    if (state->waiting_since == std::chrono::steady_clock::time_point()) {
      state->waiting_since = now;
    }
    pending = now - state->waiting_since < policy.EffectiveRevocationWait();
  }

  const std::string key = OutcomeKey(answers) + (pending ? "pending" : "");
  for (const auto &judged : state->revocation_decisions) {
    if (judged.policy == &policy && judged.outcome == key) return judged.decision.get();
  }
  auto decision = std::make_unique<cg_decision>(chain);
  ApplyRevocation(policy, answers, &decision->decision);
  decision->decision.SetPending(pending);
  state->revocation_decisions.push_back({&policy, key, std::move(decision)});
  return state->revocation_decisions.back().decision.get();
}

// certgate_fetch_issuers, for a chain that misses an issuer: the chain
// completed with CA certificates fetched from AIA caIssuers URLs, judged as
// any other (*judged points to it then); until then, the client's chain
// refused as chain_incomplete with what fetching did, pending while a fetch is
// in flight within certgate_revocation_wait (the wait revocation fetches use).
const cg_decision *IssuerFetchDecision(SSL *ssl, ConnectionState *state, const Policy &policy,
                                       const ChainEvidence **judged) {
  if (!state->fetched || !state->fetched->anchored) {
    X509_STORE *trust = SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl));
    const int64_t now = g_clock.load()->Now();
    std::string error;
    RevocationChecker *checker = RevocationFor(policy, trust, ConnectionClock(), &error);
    IssuerCompletion completion;
    if (checker != nullptr) {
      completion = checker->CompleteChain(*state->evidence, trust, policy, now);
    } else {
      completion.detail = "certgate_fetch_issuers: " + error;
    }
    if (completion.rebuilt) state->fetched = std::move(completion.rebuilt);
    if (!state->fetched || !state->fetched->anchored) {
      bool waiting = false;
      if (completion.pending) {
        const auto started = std::chrono::steady_clock::now();
        if (state->waiting_since == std::chrono::steady_clock::time_point()) {
          state->waiting_since = started;
        }
        waiting = started - state->waiting_since < policy.EffectiveRevocationWait();
      } else {
        state->waiting_since = {};
      }
      const ChainEvidence &partial = state->fetched ? *state->fetched : *state->evidence;
      const std::string key =
          completion.detail + (waiting ? "|waiting" : "|") + std::to_string(partial.chain.size());
      for (const auto &judged_before : state->issuer_decisions) {
        if (judged_before.policy == &policy && judged_before.outcome == key) {
          return judged_before.decision.get();
        }
      }
      auto decision =
          std::make_unique<cg_decision>(cg_decision{Evaluate(policy, &partial, FixedClock(now))});
      NoteIssuerFetch(completion, waiting, &decision->decision);
      ERR_clear_error();
      state->issuer_decisions.push_back({&policy, key, std::move(decision)});
      return state->issuer_decisions.back().decision.get();
    }
  }
  *judged = &*state->fetched;
  return ChainDecision(ssl, state, policy, &*state->fetched, /*fetched=*/true);
}

}  // namespace

const Clock &ConnectionClock() {
  static const ForwardingClock clock;
  return clock;
}

void SetConnectionClock(const Clock *clock) {
  g_clock.store(clock != nullptr ? clock : &SystemClock::Instance());
}

Status AttachToSslCtx(SSL_CTX *ctx, const Policy *policy, cg_ssl_log_fn log, void *log_data) {
  if (ctx == nullptr || policy == nullptr)
    return Status::Error("no SSL_CTX or policy to attach to");
  if (StateIndex() < 0 || AttachmentIndex() < 0) {
    return Status::Error("cannot allocate OpenSSL ex_data indexes");
  }
  // Owned by the SSL_CTX (freed with it), so reloads do not accumulate them.
  auto *previous = static_cast<Attachment *>(SSL_CTX_get_ex_data(ctx, AttachmentIndex()));
  InfoCallback previous_info = SSL_CTX_get_info_callback(ctx);
  if (previous_info == WatchHandshake) previous_info = previous ? previous->previous_info : nullptr;
  auto attachment = std::make_unique<Attachment>(Attachment{policy, log, log_data, previous_info});
  delete previous;  // re-attach
  if (!SSL_CTX_set_ex_data(ctx, AttachmentIndex(), attachment.get())) {
    return Status::Error("cannot attach to the SSL_CTX");
  }
  SSL_CTX_set_cert_verify_callback(ctx, VerifyClientChain, attachment.release());
  SSL_CTX_set_info_callback(ctx, WatchHandshake);
  SSL_CTX_set_msg_callback(ctx, NoteHandshakeMessage);
  // Ask for a certificate but never fail the handshake for a missing one: the
  // request is refused as no_cert with an explanation instead.
  SSL_CTX_set_verify(ctx, SSL_CTX_get_verify_mode(ctx) | SSL_VERIFY_PEER,
                     SSL_CTX_get_verify_callback(ctx));
  return Status::Ok();
}

const cg_decision *DecideForConnection(SSL *ssl, const Policy &policy) {
  if (policy.EffectiveMode() == Mode::kOff) return nullptr;
  ConnectionState *state = StateOf(ssl, true);
  static const cg_decision kCannotDecide{Decision::InternalError("cannot keep connection state")};
  if (state == nullptr) return &kCannotDecide;
  std::lock_guard<std::mutex> lock(state->mutex);

  if (!state->examined) {
    // A resumed session: no chain was sent and no callback ran. Rebuild the
    // evidence from the leaf, the intermediates the session carries or this
    // process saw before, and the trust store.
    X509 *leaf = SSL_get0_peer_certificate(ssl);
    if (leaf != nullptr) {
      auto candidates =
          IntermediateCache::Process().CandidatesFor(leaf, SSL_get_peer_cert_chain(ssl));
      AddChainFromSession(SSL_get_session(ssl), candidates.get());
      state->evidence =
          BuildChainEvidence(leaf, candidates.get(), SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)),
                             g_clock.load()->Now());
      state->earliest_not_after = EarliestExpiry(*state->evidence);
    }
    state->examined = true;
  }

  const ChainEvidence *evidence = state->evidence ? &*state->evidence : nullptr;
  const cg_decision *chain =
      evidence != nullptr && policy.EffectiveFetchIssuers() && MissesIssuer(*evidence)
          ? IssuerFetchDecision(ssl, state, policy, &evidence)
          : ChainDecision(ssl, state, policy, evidence, /*fetched=*/false);
  if (policy.EffectiveRevocation() == RevocationMode::kOff || evidence == nullptr ||
      chain->decision.verdict() != CG_VERDICT_ALLOW) {
    return chain;
  }
  return WithRevocation(ssl, state, policy, *chain, *evidence);
}

void WaitForRevocation(SSL *ssl, const Policy &policy, std::chrono::milliseconds wait) {
  ConnectionState *state = StateOf(ssl, false);
  if (state == nullptr) return;
  std::optional<ChainEvidence> evidence;
  {
    std::lock_guard<std::mutex> lock(state->mutex);
    // With fetched issuers: the chain as far as they took it (its top's fetch).
    evidence = policy.EffectiveFetchIssuers() && state->fetched ? state->fetched : state->evidence;
  }
  if (!evidence) return;
  std::string error;
  RevocationChecker *checker = RevocationFor(policy, SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)),
                                             ConnectionClock(), &error);
  const auto start = std::chrono::steady_clock::now();
  WaitForPreloads(wait);
  const auto left = wait - std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::steady_clock::now() - start);
  if (checker != nullptr && left.count() > 0) checker->WaitForFetches(*evidence, left);
}

const cg_decision *DecisionWithoutTls(const Policy &policy, bool internal_error) {
  // Built once; decisions are immutable, so threads share them read-only.
  auto make = [](Decision decision) { return new cg_decision{std::move(decision)}; };
  static const cg_decision *const kInternal =
      make(Decision::InternalError("certgate could not judge this connection"));
  static const cg_decision *const kAllow = make(Decision::Allow(nullptr));
  static const cg_decision *const kNoCert =
      make(Decision::Deny({CG_REASON_NO_CERT,
                           -1,
                           "the request did not come over TLS, so no certificate was presented",
                           {}},
                          nullptr));
  if (internal_error) return kInternal;
  return policy.EffectiveMode() == Mode::kRequire ? kNoCert : kAllow;
}

}  // namespace certgate
