// Failed TLS handshakes: what the info callback notes per connection (a few
// bits, no allocation), and the one line certgate writes when a handshake fails.
#pragma once

#include <certgate/decision.h>
#include <certgate/log_format.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>

namespace certgate {

// Notes one info-callback event. Returns true exactly once per connection: when
// its handshake has just failed after a ClientHello, and certgate itself did
// not refuse it (that refusal has its own line).
bool NoteHandshakeEvent(const SSL *ssl, int where, int ret);

// SSL_CTX_set_msg_callback: notes what the client's ClientHello offered in its
// supported_versions and ALPN extensions (two bytes in the connection's facts,
// no allocation); every other message returns at once. nginx 1.22 and httpd
// 2.4's mod_ssl set no message callback of their own.
void NoteHandshakeMessage(int write_p, int version, int content_type, const void *buf, size_t len,
                          SSL *ssl, void *arg);

// certgate aborted this handshake (reject_at handshake): no tls_handshake line.
void MarkRefusedByCertgate(SSL *ssl);

// The client's address as a number, for servers whose SSL has no socket (httpd).
void NoteClientAddress(SSL *ssl, const char *address);
// The client's address as a number: the socket's peer, or what NoteClientAddress noted.
uint64_t ClientAddressKey(const SSL *ssl);

struct HandshakeFailure {
  Decision decision;  // deny, reason tls_handshake
  LogExtras extras;   // stage, sni, client_version, client_ciphers, alert
};

// Describes the failed handshake of `ssl` (call when NoteHandshakeEvent said so,
// before the error queue is cleared).
HandshakeFailure DescribeHandshakeFailure(const SSL *ssl);

// At most kBurst lines per client address per window; the next line logged for
// an address says how many were left out. A small fixed table: a scanner
// cycling through many addresses evicts the oldest, never grows memory.
class HandshakeLogLimiter {
 public:
  static constexpr int kBurst = 5;
  static constexpr int64_t kWindowSeconds = 60;
  static constexpr size_t kSlots = 64;

  // nullopt: suppress this line; else log it, reporting this many suppressed before.
  std::optional<uint64_t> Admit(uint64_t address, int64_t now_seconds);

  static HandshakeLogLimiter &Process();

 private:
  struct Slot {
    uint64_t address = 0;
    bool used = false;
    int64_t window_start = 0;
    int logged = 0;
    uint64_t suppressed = 0;
  };
  std::mutex mutex_;
  Slot slots_[kSlots];
};

}  // namespace certgate
