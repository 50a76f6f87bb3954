// The counters page (certgate_status / CertGateStatus), written the same way for
// every server: the adapters only keep the numbers, in shared memory.
#include <certgate/certgate.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdio>

namespace {

// Appends to buf like snprintf, and counts what did not fit.
class Writer {
 public:
  Writer(char *buf, size_t size) : buf_(buf), size_(size) {
    if (buf_ != nullptr && size_ > 0) buf_[0] = '\0';
  }

  __attribute__((format(printf, 2, 3))) void Add(const char *format, ...) {
    char *at = nullptr;
    size_t room = 0;
    if (buf_ != nullptr && len_ < size_) {
      at = buf_ + len_;
      room = size_ - len_;
    }
    va_list args;
    va_start(args, format);
    const int n = std::vsnprintf(at, room, format, args);
    va_end(args);
    if (n > 0) len_ += static_cast<size_t>(n);
  }

  size_t length() const { return len_; }

 private:
  char *buf_;
  size_t size_;
  size_t len_ = 0;
};

}  // namespace

extern "C" size_t cg_counters_format(const cg_counters *counters, char *buf, size_t size) {
  Writer out(buf, size);
  out.Add(
      "# HELP certgate_decisions_total Request decisions by verdict and reason.\n"
      "# TYPE certgate_decisions_total counter\n");
  for (int verdict = CG_VERDICT_ALLOW; verdict <= CG_VERDICT_DENY; ++verdict) {
    for (int reason = 0; reason < CG_REASON_COUNT; ++reason) {
      // An allow has no reason; a refusal always has one.
      if ((verdict == CG_VERDICT_ALLOW) != (reason == CG_REASON_NONE)) continue;
      out.Add("certgate_decisions_total{verdict=\"%s\",reason=\"%s\"} %" PRIu64 "\n",
              verdict == CG_VERDICT_ALLOW ? "allow" : "deny",
              cg_reason_code(static_cast<cg_reason>(reason)),
              counters != nullptr ? counters->decisions[verdict][reason] : 0);
    }
  }
  out.Add(
      "# HELP certgate_handshake_refusals_total Handshakes aborted (certgate_reject_at "
      "handshake).\n"
      "# TYPE certgate_handshake_refusals_total counter\n"
      "certgate_handshake_refusals_total %" PRIu64 "\n",
      counters != nullptr ? counters->handshake_refusals : 0);
  return out.length();
}

extern "C" int cg_counters_add_decision(cg_counters *shared, const cg_decision *decision,
                                        int subrequest, int judged_before) {
  if (shared == nullptr || subrequest || judged_before || cg_decision_pending(decision)) return 0;
  const cg_verdict verdict = cg_decision_verdict(decision);  // NULL: deny
  const cg_reason reason = cg_decision_reason(decision);     // NULL: internal_error
  if (static_cast<unsigned>(reason) >= static_cast<unsigned>(CG_REASON_COUNT)) return 0;
  __atomic_fetch_add(&shared->decisions[verdict == CG_VERDICT_DENY ? 1 : 0][reason], 1,
                     __ATOMIC_RELAXED);
  return 1;
}

extern "C" void cg_counters_add(cg_counters *shared, const cg_outcome *outcome) {
  if (shared == nullptr || outcome == nullptr || !outcome->counted) return;
  if (static_cast<unsigned>(outcome->reason) >= static_cast<unsigned>(CG_REASON_COUNT)) return;
  __atomic_fetch_add(
      &shared->decisions[outcome->verdict == CG_VERDICT_DENY ? 1 : 0][outcome->reason], 1,
      __ATOMIC_RELAXED);
}

extern "C" void cg_counters_add_handshake_refusal(cg_counters *shared) {
  if (shared != nullptr) __atomic_fetch_add(&shared->handshake_refusals, 1, __ATOMIC_RELAXED);
}

extern "C" void cg_counters_add_handshake(cg_counters *shared, cg_reason reason) {
  if (shared == nullptr) return;
  if (reason == CG_REASON_TLS_HANDSHAKE) {
    __atomic_fetch_add(&shared->decisions[CG_VERDICT_DENY][reason], 1, __ATOMIC_RELAXED);
  } else {
    __atomic_fetch_add(&shared->handshake_refusals, 1, __ATOMIC_RELAXED);
  }
}

extern "C" void cg_counters_snapshot(const cg_counters *shared, cg_counters *snapshot) {
  if (snapshot == nullptr) return;
  for (int verdict = 0; verdict < 2; ++verdict) {
    for (int reason = 0; reason < CG_REASON_COUNT; ++reason) {
      snapshot->decisions[verdict][reason] =
          shared != nullptr ? __atomic_load_n(&shared->decisions[verdict][reason], __ATOMIC_RELAXED)
                            : 0;
    }
  }
  snapshot->handshake_refusals =
      shared != nullptr ? __atomic_load_n(&shared->handshake_refusals, __ATOMIC_RELAXED) : 0;
}
