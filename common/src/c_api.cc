// The C boundary: every export catches everything and leaves the OpenSSL error
// queue as it found it.
#include <certgate/certgate.h>
#include <certgate/chain_evidence.h>
#include <certgate/evaluator.h>
#include <certgate/log_format.h>
#include <certgate/reason.h>
#include <openssl/err.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "c_handles.h"
#include "cache_dir.h"
#include "directive_names.h"
#include "handshake_failure.h"
#include "policy_parse.h"
#include "revocation/registry.h"
#include "ssl_hook.h"
#include "status_gauges.h"

using certgate::Info;

namespace {

constexpr const char *kFieldNames[CG_FIELD_COUNT] = {
    "verdict", "reason",      "substatus",  "detail",    "hint",       "subject", "issuer",
    "serial",  "fingerprint", "not_before", "not_after", "revocation", "depth",
};

// Restores the OpenSSL error queue on scope exit: errors raised inside the core
// must not surface in the server's next SSL_get_error().
class ErrorQueueGuard {
 public:
  ErrorQueueGuard() { ERR_set_mark(); }
  ~ErrorQueueGuard() { ERR_pop_to_mark(); }
};

void SetError(cg_error *error, const std::string &message) {
  if (error == nullptr) return;
  std::snprintf(error->message, sizeof error->message, "%s", message.c_str());
}

int FromStatus(const certgate::Status &status, cg_error *error) {
  if (status.ok()) return CG_OK;
  SetError(error, status.message());
  return CG_ERR_INVALID;
}

template <typename F>
int Guarded(cg_error *error, F &&body) {
  ErrorQueueGuard guard;
  try {
    return body();
  } catch (const std::exception &e) {
    SetError(error, std::string("internal error: ") + e.what());
  } catch (...) {
    SetError(error, "internal error");
  }
  return CG_ERR_INTERNAL;
}

// Like snprintf: copies what fits (NUL terminated) and returns the whole length.
size_t CopyOut(const std::string &text, char *buf, size_t size) {
  if (buf != nullptr && size > 0) {
    const size_t len = std::min(text.size(), size - 1);
    std::memcpy(buf, text.data(), len);
    buf[len] = '\0';
  }
  return text.size();
}

// A NULL policy answers with every default.
const certgate::Policy &PolicyOrUnset(const cg_policy *policy) {
  static const certgate::Policy kUnset;
  return policy != nullptr ? policy->policy : kUnset;
}

// Sizes with `format`, then writes the whole text into one block from `alloc`.
template <typename Format>
cg_str AllocOut(cg_alloc_fn alloc, void *pool, Format &&format) {
  const size_t len = format(nullptr, 0);
  char *text = alloc != nullptr ? static_cast<char *>(alloc(pool, len + 1)) : nullptr;
  if (text == nullptr) return {nullptr, 0};
  return {text, std::min(format(text, len + 1), len)};
}
}  // namespace

extern "C" {

void cg_set_directive_style(cg_directive_style style) {
  certgate::SetDirectiveStyle(style == CG_DIRECTIVES_HTTPD ? certgate::DirectiveStyle::kHttpd
                                                           : certgate::DirectiveStyle::kNginx);
}

const char *cg_reason_code(cg_reason reason) { return Info(reason).code.data(); }
const char *cg_reason_substatus(cg_reason reason) { return Info(reason).substatus.data(); }
int cg_reason_http_status(cg_reason reason) { return Info(reason).http_status; }
const char *cg_reason_meaning(cg_reason reason) { return Info(reason).meaning.data(); }
const char *cg_reason_hint(cg_reason reason) { return Info(reason).hint.data(); }

cg_policy *cg_policy_new(void) { return new (std::nothrow) cg_policy(); }

void cg_policy_free(cg_policy *policy) { delete policy; }

const cg_policy *cg_policy_unset(void) {
  // Never destroyed: SSL_CTXs keep it until the process ends, exit() included.
  static const cg_policy *const unset = new cg_policy();
  return unset;
}

int cg_policy_set(cg_policy *policy, const char *key, const cg_str *argv, size_t argc,
                  cg_error *error) {
  return Guarded(error, [&] {
    if (policy == nullptr || key == nullptr || (argc > 0 && argv == nullptr)) {
      SetError(error, "cg_policy_set: missing argument");
      return static_cast<int>(CG_ERR_INVALID);
    }
    std::vector<std::string> args;
    args.reserve(argc);
    for (size_t i = 0; i < argc; ++i) args.emplace_back(argv[i].data, argv[i].len);
    // Errors name the key as the operator wrote it (CertGateMaxStale in httpd).
    const certgate::Status set = policy->policy.Set(key, args);
    if (set.ok()) return static_cast<int>(CG_OK);
    SetError(error, certgate::SpellDirectives(set.message(), certgate::CurrentDirectiveStyle()));
    return static_cast<int>(CG_ERR_INVALID);
  });
}

cg_policy *const *cg_policy_merged(const cg_policy *base, const cg_policy *add) {
  if (base == nullptr || add == nullptr) return nullptr;
  auto *owner = const_cast<cg_policy *>(add);  // the cache, not the policy, changes
  auto find = [&]() -> cg_merge * {
    for (cg_merge *m = owner->merges.load(std::memory_order_acquire); m != nullptr; m = m->next) {
      if (m->base == base) return m;
    }
    return nullptr;
  };
  if (cg_merge *found = find()) return &found->cell;
  ErrorQueueGuard guard;
  try {
    std::lock_guard<std::mutex> lock(owner->merging);
    if (cg_merge *found = find()) return &found->cell;
    auto merge = std::make_unique<cg_merge>();
    merge->base = base;
    merge->merged = std::make_unique<cg_policy>();
    merge->merged->policy.InheritFrom(add->policy);
    merge->merged->policy.InheritFrom(base->policy);
    merge->cell = merge->merged.get();
    merge->next = owner->merges.load(std::memory_order_relaxed);
    cg_merge *published = merge.release();
    owner->merges.store(published, std::memory_order_release);
    return &published->cell;
  } catch (...) {
    return nullptr;
  }
}

int cg_policy_inherit(cg_policy *child, const cg_policy *parent, cg_error *error) {
  return Guarded(error, [&] {
    if (child == nullptr) return static_cast<int>(CG_ERR_INVALID);
    if (parent != nullptr) child->policy.InheritFrom(parent->policy);
    const certgate::Status combined = child->policy.CheckCombination();
    if (combined.ok()) return static_cast<int>(CG_OK);
    SetError(error,
             certgate::SpellDirectives(combined.message(), certgate::CurrentDirectiveStyle()));
    return static_cast<int>(CG_ERR_INVALID);
  });
}

int cg_policy_enabled(const cg_policy *policy) {
  return policy != nullptr && policy->policy.EffectiveMode() != certgate::Mode::kOff;
}

int cg_policy_load_file(cg_policy *policy, const char *path, cg_error *error) {
  return Guarded(error, [&] {
    if (policy == nullptr || path == nullptr) return static_cast<int>(CG_ERR_INVALID);
    return FromStatus(policy->policy.LoadFile(path), error);
  });
}

cg_outcome cg_outcome_of(const cg_policy *policy, const cg_decision *decision, int subrequest,
                         int judged_before) {
  const bool repeat = subrequest || judged_before;
  cg_outcome outcome{};
  outcome.decision = decision;
  outcome.verdict = cg_decision_verdict(decision);  // NULL: deny, internal_error
  outcome.reason = cg_decision_reason(decision);
  outcome.counted = !repeat && !cg_decision_pending(decision);
  if (outcome.verdict == CG_VERDICT_ALLOW && !cg_decision_pending(decision)) {
    outcome.status = 0;
    outcome.log = repeat                          ? CG_LOG_DEBUG
                  : cg_decision_warning(decision) ? CG_LOG_WARN
                  : cg_policy_log_accepts(policy) ? CG_LOG_NOTICE
                                                  : CG_LOG_NONE;
    return outcome;
  }
  // Never an allow it could not establish: a pending decision here is refused.
  outcome.verdict = CG_VERDICT_DENY;
  if (outcome.reason == CG_REASON_NONE) outcome.reason = CG_REASON_REVOCATION_UNAVAILABLE;
  outcome.status = cg_policy_reject_status(policy, outcome.reason);
  outcome.log = decision == nullptr ? CG_LOG_NONE : repeat ? CG_LOG_DEBUG : CG_LOG_REFUSAL;
  return outcome;
}

int cg_policy_reject_status(const cg_policy *policy, cg_reason reason) {
  if (reason == CG_REASON_INTERNAL_ERROR) return certgate::Policy::kInternalErrorStatus;
  return PolicyOrUnset(policy).EffectiveRejectStatus();
}

int cg_policy_reject_at_handshake(const cg_policy *policy) {
  return policy != nullptr && policy->policy.EffectiveRejectAt() == certgate::RejectAt::kHandshake;
}

int cg_policy_status_page(const cg_policy *policy) {
  return PolicyOrUnset(policy).EffectiveStatusPage();
}

int cg_policy_log_accepts(const cg_policy *policy) {
  return policy != nullptr && policy->policy.EffectiveLogAccepts();
}

cg_log_format cg_policy_log_format(const cg_policy *policy) {
  return policy != nullptr && policy->policy.EffectiveLogFormat() == certgate::LogFormat::kJson
             ? CG_LOG_JSON
             : CG_LOG_KV;
}

int cg_policy_revocation_enabled(const cg_policy *policy) {
  const bool enabled =
      policy != nullptr && policy->policy.EffectiveRevocation() != certgate::RevocationMode::kOff;
  // Asked of each policy while the configuration is read: the status page
  // reports this cache, and when its answers stop (certgate_max_stale).
  if (enabled) {
    certgate::NoteStatusCache(policy->policy.EffectiveCacheDir(),
                              policy->policy.EffectiveMaxStale());
  }
  // Fetched issuers are kept in the same cache, so its directory is prepared too.
  return enabled || (policy != nullptr && policy->policy.EffectiveFetchIssuers());
}

int cg_policy_revocation_enabled_under(const cg_policy *base, const cg_policy *section) {
  if (base == nullptr) return cg_policy_revocation_enabled(section);
  cg_policy *const *merged = cg_policy_merged(base, section);
  return merged == nullptr || cg_policy_revocation_enabled(*merged);
}

int cg_key_path(cg_key key) {
#define CG_KEY_PATH_ROW(id, key, nginx, httpd, field, contexts, min_args, max_args, path, help) \
  path,
  static const int kPaths[] = {CERTGATE_KEYS(CG_KEY_PATH_ROW)};
#undef CG_KEY_PATH_ROW
  return key >= 0 && key < CG_KEY_COUNT ? kPaths[key] : CG_KEY_PATH_NONE;
}

unsigned cg_key_contexts(cg_key key) {
#define CG_KEY_CONTEXTS_ROW(id, key, nginx, httpd, field, contexts, min_args, max_args, path, \
                            help)                                                             \
  contexts,
  static const unsigned kContexts[] = {CERTGATE_KEYS(CG_KEY_CONTEXTS_ROW)};
#undef CG_KEY_CONTEXTS_ROW
  return key >= 0 && key < CG_KEY_COUNT ? kContexts[key] : 0u;
}

int cg_log_level_syslog(cg_log_level level) {
  switch (level) {
    case CG_LOG_DEBUG:
      return 7;  // LOG_DEBUG
    case CG_LOG_NOTICE:
      return 5;  // LOG_NOTICE
    case CG_LOG_WARN:
      return 4;  // LOG_WARNING
    case CG_LOG_REFUSAL:
      return 3;  // LOG_ERR
    case CG_LOG_NONE:
      break;
  }
  return -1;
}

cg_str cg_decision_reject_header(const cg_decision *decision, const cg_policy *policy) {
  if (policy == nullptr || !policy->policy.EffectiveRejectHeader() ||
      cg_decision_verdict(decision) == CG_VERDICT_ALLOW) {
    return {nullptr, 0};
  }
  const std::string_view code = Info(cg_decision_reason(decision)).code;
  return {code.data(), code.size()};
}

const char *cg_refusal_status_phrase(int status) {
  return status == 495   ? "SSL Certificate Error"
         : status == 496 ? "SSL Certificate Required"
                         : "Client Certificate Refused";
}

const char *cg_policy_cache_dir(const cg_policy *policy) {
  return PolicyOrUnset(policy).EffectiveCacheDir();
}

int cg_policy_revocation_wait_ms(const cg_policy *policy) {
  return static_cast<int>(PolicyOrUnset(policy).EffectiveRevocationWait().count());
}

int cg_cache_dir_prepare(const char *dir, long worker_uid, long worker_gid, cg_error *error) {
  return Guarded(error, [&] {
    std::optional<certgate::Owner> owner;
    if (geteuid() == 0 && worker_uid != -1) {
      owner = certgate::Owner{static_cast<uid_t>(worker_uid), static_cast<gid_t>(worker_gid)};
    }
    if (dir != nullptr) certgate::NoteStatusCache(dir, std::chrono::seconds(0));
    return FromStatus(certgate::PrepareCacheDir(dir != nullptr ? dir : "", owner), error);
  });
}

const char *cg_field_env_name(cg_field field) {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> upper;
    for (const char *name : kFieldNames) {
      std::string var = std::string("CERTGATE_") + name;
      for (char &c : var) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      upper.push_back(std::move(var));
    }
    return upper;
  }();
  return field >= 0 && field < CG_FIELD_COUNT ? names[field].c_str() : "";
}

const char *cg_field_name(cg_field field) {
  return field >= 0 && field < CG_FIELD_COUNT ? kFieldNames[field] : "";
}

int cg_field_from_name(const char *name, size_t len) {
  for (int i = 0; i < CG_FIELD_COUNT; ++i) {
    if (std::strlen(kFieldNames[i]) == len && std::strncmp(kFieldNames[i], name, len) == 0) {
      return i;
    }
  }
  return -1;
}

cg_decision *cg_evaluate(const cg_policy *policy, X509 *leaf, STACK_OF(X509) * untrusted,
                         X509_STORE *trust, int64_t now) {
  if (policy == nullptr) return nullptr;
  ErrorQueueGuard guard;
  try {
    const certgate::FixedClock clock(now != 0 ? now : certgate::SystemClock::Instance().Now());
    if (leaf == nullptr) {
      return new cg_decision{certgate::Evaluate(policy->policy, nullptr, clock)};
    }
    const certgate::ChainEvidence evidence =
        certgate::BuildChainEvidence(leaf, untrusted, trust, clock.Now());
    return new cg_decision{certgate::Evaluate(policy->policy, &evidence, clock)};
  } catch (...) {
    return new (std::nothrow) cg_decision{certgate::Decision::InternalError("evaluation failed")};
  }
}

void cg_decision_free(cg_decision *decision) { delete decision; }

cg_verdict cg_decision_verdict(const cg_decision *decision) {
  return decision != nullptr ? decision->decision.verdict() : CG_VERDICT_DENY;
}

cg_reason cg_decision_reason(const cg_decision *decision) {
  return decision != nullptr ? decision->decision.reason() : CG_REASON_INTERNAL_ERROR;
}

int cg_decision_warning(const cg_decision *decision) {
  return decision != nullptr && !decision->decision.warning().empty();
}

int cg_decision_pending(const cg_decision *decision) {
  return decision != nullptr && decision->decision.pending();
}

cg_str cg_decision_field(const cg_decision *decision, cg_field field) {
  if (decision == nullptr) return {"", 0};
  // No ErrorQueueGuard: reading a field is a string lookup, once rendered. The
  // leaf's fields are rendered under their own guard (Decision::Field); the
  // mark and pop per field were most of the cost of the 13 Apache exports.
  try {
    const std::string &value = decision->decision.Field(field);
    return {value.c_str(), value.size()};
  } catch (...) {
    return {"", 0};
  }
}

void cg_decision_export(const cg_decision *decision, cg_env_fn set, void *ctx) {
  if (set == nullptr) return;
  for (int field = 0; field < CG_FIELD_COUNT; ++field) {
    set(ctx, cg_field_env_name(static_cast<cg_field>(field)),
        cg_decision_field(decision, static_cast<cg_field>(field)));
  }
}

size_t cg_decision_format_log(const cg_decision *decision, cg_log_format format, char *buf,
                              size_t size) {
  if (decision == nullptr) return CopyOut("", buf, size);
  ErrorQueueGuard guard;
  try {
    const auto log_format =
        format == CG_LOG_JSON ? certgate::LogFormat::kJson : certgate::LogFormat::kKv;
    return CopyOut(certgate::FormatLogLine(decision->decision, log_format, decision->log_extras),
                   buf, size);
  } catch (...) {
    return CopyOut("certgate: verdict=deny reason=internal_error", buf, size);
  }
}

size_t cg_decision_format_body(const cg_decision *decision, const cg_policy *policy,
                               const char **content_type, char *buf, size_t size) {
  static const char *const kTypes[] = {"text/plain", "application/json", "text/html"};
  if (content_type != nullptr) *content_type = kTypes[0];
  if (decision == nullptr || policy == nullptr) return CopyOut("", buf, size);
  ErrorQueueGuard guard;
  try {
    std::string type;
    const std::string body =
        certgate::FormatRejectBody(decision->decision, policy->policy.EffectiveRejectBody(),
                                   policy->policy.EffectiveRejectDetail(), &type);
    if (content_type != nullptr) {
      *content_type = type == "application/json" ? kTypes[1]
                      : type == "text/html"      ? kTypes[2]
                                                 : kTypes[0];
    }
    return CopyOut(body, buf, size);
  } catch (...) {
    return CopyOut("", buf, size);
  }
}

cg_str cg_decision_log_alloc(const cg_decision *decision, const cg_policy *policy,
                             cg_alloc_fn alloc, void *pool) {
  const cg_log_format format = cg_policy_log_format(policy);
  return AllocOut(alloc, pool, [&](char *buf, size_t size) {
    return cg_decision_format_log(decision, format, buf, size);
  });
}

cg_str cg_decision_body_alloc(const cg_decision *decision, const cg_policy *policy,
                              const char **content_type, cg_alloc_fn alloc, void *pool) {
  return AllocOut(alloc, pool, [&](char *buf, size_t size) {
    return cg_decision_format_body(decision, policy, content_type, buf, size);
  });
}

cg_str cg_counters_page_alloc(const cg_counters *shared, cg_alloc_fn alloc, void *pool) {
  std::string page;
  try {
    cg_counters snapshot;
    cg_counters_snapshot(shared, &snapshot);
    page.resize(cg_counters_format(&snapshot, nullptr, 0));
    page.resize(cg_counters_format(&snapshot, page.data(), page.size() + 1));
    // One read transaction per cache: never a wait on its writer.
    certgate::AppendRevocationGauges(&page, certgate::ReadStatusCaches(),
                                     certgate::SystemClock::Instance().Now());
  } catch (...) {
    return {nullptr, 0};
  }
  return AllocOut(alloc, pool, [&](char *buf, size_t size) {
    if (size > 0) {
      const size_t n = std::min(size - 1, page.size());
      std::memcpy(buf, page.data(), n);
      buf[n] = '\0';
    }
    return page.size();
  });
}

int cg_ssl_ctx_attach(SSL_CTX *ctx, const cg_policy *policy, cg_ssl_log_fn log, void *log_data,
                      cg_error *error) {
  return Guarded(error, [&] {
    return FromStatus(
        certgate::AttachToSslCtx(ctx, policy ? &policy->policy : nullptr, log, log_data), error);
  });
}

int cg_policy_trusted_proxy(const cg_policy *policy, const char *client_ip, size_t len) {
  if (policy == nullptr || client_ip == nullptr || !policy->policy.trusted_proxies) return 0;
  try {
    const std::string_view ip(client_ip, len);
    for (const std::string &text : *policy->policy.trusted_proxies) {
      const auto block = certgate::policy_parse::ParseAddressBlock(text);
      if (block && certgate::policy_parse::InAddressBlock(*block, ip)) return 1;
    }
  } catch (...) {
  }
  return 0;
}

const cg_decision *cg_decision_via_proxy(const cg_decision *decision) {
  if (decision == nullptr || decision->decision.reason() != CG_REASON_NO_CERT ||
      decision->decision.findings().empty()) {
    return decision;
  }
  try {
    std::call_once(decision->via_proxy.once, [decision] {
      certgate::Finding finding = decision->decision.findings().front();
      finding.hint =
          "the request came through a proxy (X-Forwarded-For, Forwarded or a trusted proxy's "
          "address): a TLS-terminating proxy or load balancer in front of this server does not "
          "pass client certificates on; let clients reach this server directly (TLS "
          "passthrough), or have the proxy forward the client certificate in a header "
          "(certgate_forwarded_cert, from an address in certgate_trusted_proxies)";
      auto variant = std::make_unique<cg_decision>(cg_decision{decision->decision});
      variant->decision.SetFindings({std::move(finding)});
      variant->log_extras = decision->log_extras;
      decision->via_proxy.value = std::move(variant);
    });
  } catch (...) {
    return decision;  // the plain no_cert refusal is still right
  }
  return decision->via_proxy.value ? decision->via_proxy.value.get() : decision;
}

void cg_ssl_note_client_address(SSL *ssl, const char *address) {
  if (ssl != nullptr) certgate::NoteClientAddress(ssl, address);
}

const cg_decision *cg_ssl_decide(SSL *ssl, const cg_policy *policy) {
  if (!cg_policy_enabled(policy)) return nullptr;
  ErrorQueueGuard guard;
  try {
    if (ssl == nullptr) return certgate::DecisionWithoutTls(policy->policy);
    return certgate::DecideForConnection(ssl, policy->policy);
  } catch (...) {
    return certgate::DecisionWithoutTls(policy->policy, /*internal_error=*/true);
  }
}

void cg_ssl_wait(SSL *ssl, const cg_policy *policy, int max_ms) {
  if (ssl == nullptr || policy == nullptr || max_ms <= 0) return;
  ErrorQueueGuard guard;
  try {
    certgate::WaitForRevocation(ssl, policy->policy, std::chrono::milliseconds(max_ms));
  } catch (...) {
  }
}

const cg_decision *cg_ssl_decide_final(SSL *ssl, const cg_policy *policy) {
  using Clock = std::chrono::steady_clock;
  constexpr auto kStep = std::chrono::milliseconds(100);
  const cg_decision *decision = cg_ssl_decide(ssl, policy);
  if (decision == nullptr || ssl == nullptr) return decision;
  const auto deadline =
      Clock::now() + std::chrono::milliseconds(2 * cg_policy_revocation_wait_ms(policy) + 1000);
  while (cg_decision_pending(decision)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return cg_decision_verdict(decision) == CG_VERDICT_ALLOW ? nullptr : decision;
    }
    cg_ssl_wait(ssl, policy,
                static_cast<int>(std::min(left + std::chrono::milliseconds(1), kStep).count()));
    decision = cg_ssl_decide(ssl, policy);
  }
  return decision;
}

}  // extern "C"
