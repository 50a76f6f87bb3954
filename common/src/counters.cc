// The counters page (certgate_status / CertGateStatus), written the same way for
// every server: the adapters only keep the numbers, in shared memory.
#include <certgate/certgate.h>
#include <openssl/asn1.h>
#include <openssl/x509.h>
#include <sched.h>
#include <sys/mman.h>

#include <cinttypes>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>

#include "c_handles.h"
#include "status_gauges.h"

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
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  bool listed = false;  // the family appears with its first certificate
  for (int i = 0; counters != nullptr && i < CG_EXPIRING_CERTS; ++i) {
    const cg_expiring_cert &cert = counters->expiring[i];
    // An expired one is no longer accepted: it only waits for its slot to be taken.
    if (cert.not_after == 0 || cert.not_after < now) continue;
    if (!listed) {
      out.Add(
          "# HELP certgate_client_cert_expiry_seconds notAfter of the earliest-expiring client "
          "certificates accepted (at most %d).\n"
          "# TYPE certgate_client_cert_expiry_seconds gauge\n",
          CG_EXPIRING_CERTS);
      listed = true;
    }
    const std::string labels = "subject=\"" + certgate::PromLabelValue(cert.subject) +
                               "\",serial=\"" + certgate::PromLabelValue(cert.serial) +
                               "\",issuer=\"" + certgate::PromLabelValue(cert.issuer) + "\"";
    out.Add("certgate_client_cert_expiry_seconds{%s} %" PRId64 "\n", labels.c_str(),
            cert.not_after);
  }
  return out.length();
}

namespace {

// The expiring set's spinlock: a request tries it once and skips when it is
// held (the next request of that certificate tries again); the page spins,
// boundedly: a worker killed inside the few stores it guards (SIGKILL, a
// crash) must not hang every later status page, so past the bound the page
// takes the lock over.
bool TryLock(cg_counters *shared) {
  return __atomic_exchange_n(&shared->expiring_lock, 1, __ATOMIC_ACQUIRE) == 0;
}
void Lock(cg_counters *shared) {
  for (int tries = 0; tries < 100000 && !TryLock(shared); ++tries) {
    if (tries > 64) sched_yield();
  }
}
void Unlock(cg_counters *shared) { __atomic_store_n(&shared->expiring_lock, 0, __ATOMIC_RELEASE); }

int64_t NotAfter(X509 *cert) {
  struct tm tm {};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

uint64_t CertKey(X509 *cert) {
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  auto mix = [&](const unsigned char *p, size_t n) {
    for (size_t i = 0; i < n; ++i) hash = (hash ^ p[i]) * 1099511628211ull;
  };
  const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
  mix(ASN1_STRING_get0_data(serial), static_cast<size_t>(ASN1_STRING_length(serial)));
  const unsigned char *der = nullptr;
  size_t der_len = 0;
  if (X509_NAME_get0_der(X509_get_issuer_name(cert), &der, &der_len) == 1) mix(der, der_len);
  return hash == 0 ? 1 : hash;
}

// The CN of `name`, else the whole name (RFC 2253), cut to fit `to`.
void NameLabel(X509_NAME *name, char *to, size_t size) {
  std::string text;
  const int at = X509_NAME_get_index_by_NID(name, NID_commonName, -1);
  if (at >= 0) {
    const ASN1_STRING *cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, at));
    unsigned char *utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, cn);
    if (len > 0) text.assign(reinterpret_cast<char *>(utf8), static_cast<size_t>(len));
    OPENSSL_free(utf8);
  }
  if (text.empty()) {
    char *line = X509_NAME_oneline(name, nullptr, 0);
    if (line != nullptr) text = line;
    OPENSSL_free(line);
  }
  text = certgate::TruncateUtf8(text, size - 1);
  std::memcpy(to, text.data(), text.size());
  to[text.size()] = '\0';
}

void SerialLabel(X509 *cert, char *to, size_t size) {
  static const char kHex[] = "0123456789ABCDEF";
  const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
  const unsigned char *p = ASN1_STRING_get0_data(serial);
  size_t out = 0;
  for (int i = 0; i < ASN1_STRING_length(serial) && out + 2 < size; ++i) {
    to[out++] = kHex[p[i] >> 4];
    to[out++] = kHex[p[i] & 15];
  }
  to[out] = '\0';
}

// Keeps the CG_EXPIRING_CERTS earliest-expiring accepted certificates. The
// common case (a certificate expiring after all of them) costs one load.
void NoteExpiry(cg_counters *shared, const cg_decision *decision) {
  X509 *leaf = decision != nullptr ? decision->decision.leaf() : nullptr;
  if (leaf == nullptr) return;
  const certgate::LazyLeafExpiry &facts = decision->leaf_expiry;
  std::call_once(facts.once, [&] {
    facts.not_after = NotAfter(leaf);
    facts.key = CertKey(leaf);
  });
  const int64_t not_after = facts.not_after;
  if (not_after <= 0) return;
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  const int64_t admit_below = __atomic_load_n(&shared->expiring_admit_below, __ATOMIC_RELAXED);
  const int64_t earliest = __atomic_load_n(&shared->expiring_earliest, __ATOMIC_RELAXED);
  // Full, later than all of them, and none of them has expired to free a slot.
  if (admit_below != 0 && not_after >= admit_below && earliest >= now) return;
  const uint64_t key = facts.key;
  for (const cg_expiring_cert &cert : shared->expiring) {
    if (__atomic_load_n(&cert.key, __ATOMIC_RELAXED) == key) return;  // already in
  }
  if (!TryLock(shared)) return;
  // The slot to take: an empty one, else an expired one, else the latest one
  // if this certificate expires before it.
  int empty = -1, expired = -1, latest = -1;
  for (int i = 0; i < CG_EXPIRING_CERTS; ++i) {
    const cg_expiring_cert &cert = shared->expiring[i];
    if (cert.key == key) {
      Unlock(shared);
      return;
    }
    if (cert.not_after == 0) {
      if (empty < 0) empty = i;
    } else if (cert.not_after < now) {
      expired = i;
    } else if (latest < 0 || cert.not_after > shared->expiring[latest].not_after) {
      latest = i;
    }
  }
  const int take = empty >= 0                                                        ? empty
                   : expired >= 0                                                    ? expired
                   : (latest >= 0 && shared->expiring[latest].not_after > not_after) ? latest
                                                                                     : -1;
  if (take >= 0) {
    cg_expiring_cert &slot = shared->expiring[take];
    __atomic_store_n(&slot.key, uint64_t{0}, __ATOMIC_RELAXED);
    NameLabel(X509_get_subject_name(leaf), slot.subject, sizeof slot.subject);
    SerialLabel(leaf, slot.serial, sizeof slot.serial);
    NameLabel(X509_get_issuer_name(leaf), slot.issuer, sizeof slot.issuer);
    slot.not_after = not_after;
    __atomic_store_n(&slot.key, key, __ATOMIC_RELAXED);
    int64_t latest = 0, first = INT64_MAX;
    bool full = true;
    for (const cg_expiring_cert &cert : shared->expiring) {
      if (cert.not_after == 0) full = false;
      latest = cert.not_after > latest ? cert.not_after : latest;
      first = cert.not_after < first ? cert.not_after : first;
    }
    __atomic_store_n(&shared->expiring_admit_below, full ? latest : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&shared->expiring_earliest, first, __ATOMIC_RELAXED);
  }
  Unlock(shared);
}

}  // namespace

extern "C" int cg_counters_add_decision(cg_counters *shared, const cg_decision *decision,
                                        int subrequest, int judged_before) {
  if (shared == nullptr || subrequest || judged_before || cg_decision_pending(decision)) return 0;
  const cg_verdict verdict = cg_decision_verdict(decision);  // NULL: deny
  const cg_reason reason = cg_decision_reason(decision);     // NULL: internal_error
  if (static_cast<unsigned>(reason) >= static_cast<unsigned>(CG_REASON_COUNT)) return 0;
  __atomic_fetch_add(&shared->decisions[verdict == CG_VERDICT_DENY ? 1 : 0][reason], 1,
                     __ATOMIC_RELAXED);
  if (verdict == CG_VERDICT_ALLOW) NoteExpiry(shared, decision);
  return 1;
}

extern "C" void cg_counters_add(cg_counters *shared, const cg_outcome *outcome) {
  if (shared == nullptr || outcome == nullptr || !outcome->counted) return;
  if (static_cast<unsigned>(outcome->reason) >= static_cast<unsigned>(CG_REASON_COUNT)) return;
  __atomic_fetch_add(
      &shared->decisions[outcome->verdict == CG_VERDICT_DENY ? 1 : 0][outcome->reason], 1,
      __ATOMIC_RELAXED);
  if (outcome->verdict == CG_VERDICT_ALLOW) NoteExpiry(shared, outcome->decision);
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
  snapshot->expiring_lock = 0;
  snapshot->expiring_admit_below = 0;
  snapshot->expiring_earliest = 0;
  if (shared == nullptr) {
    std::memset(snapshot->expiring, 0, sizeof snapshot->expiring);
    return;
  }
  // The adapter hands a const pointer to memory every worker writes.
  cg_counters *locked = const_cast<cg_counters *>(shared);
  Lock(locked);
  std::memcpy(snapshot->expiring, shared->expiring, sizeof snapshot->expiring);
  Unlock(locked);
}

extern "C" cg_counters *cg_counters_map_shared(void) {
  void *shared =
      mmap(nullptr, sizeof(cg_counters), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  return shared == MAP_FAILED ? nullptr : static_cast<cg_counters *>(shared);  // zeroed
}

extern "C" const char *cg_counters_zone_name(void) {
  static const std::string name = "certgate_counters_" + std::to_string(sizeof(cg_counters));
  return name.c_str();
}
