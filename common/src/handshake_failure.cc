#include "handshake_failure.h"

#include <netinet/in.h>
#include <openssl/err.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstring>
#include <functional>
#include <string_view>

#include "ex_data_index.h"

namespace certgate {
namespace {

// The connection's facts live in the ex_data pointer itself: bits, never memory.
enum : uintptr_t {
  kAskedForCert = 1u << 0,
  kCertReceived = 1u << 1,
  kAlertReceived = 1u << 2,
  kAlertSent = 1u << 3,
  kRefusedByCertgate = 1u << 4,
  kReported = 1u << 5,
  kHandshakeDone = 1u << 6,
  kReceivedShift = 8,         // bits 8-15: the alert the client sent
  kSentShift = 16,            // bits 16-23: the alert the server sent
  kClientVersionsShift = 24,  // bits 24-31: the ClientHello's supported_versions (kOffer*)
  kAlpnShift = 32,            // bits 32-39: its ALPN protocols (kAlpn*)
};
static_assert(sizeof(uintptr_t) >= 8, "the ClientHello's facts need 40 bits");

// One byte each for what the ClientHello offered. kOffered: the extension was there.
enum : uintptr_t {
  kOfferTls10 = 1u << 0,
  kOfferTls11 = 1u << 1,
  kOfferTls12 = 1u << 2,
  kOfferTls13 = 1u << 3,
  kOfferOther = 1u << 4,
  kAlpnH2 = 1u << 0,
  kAlpnHttp11 = 1u << 1,
  kAlpnHttp10 = 1u << 2,
  kAlpnOther = 1u << 3,
  kOffered = 1u << 7,
};

int FactsIndex() {
  static const ExDataIndex index(CRYPTO_EX_INDEX_SSL, nullptr);
  return index.get();
}

int AddressIndex() {
  static const ExDataIndex index(CRYPTO_EX_INDEX_SSL, nullptr);
  return index.get();
}

uintptr_t FactsOf(const SSL *ssl) {
  const int index = FactsIndex();
  return index < 0 ? 0 : reinterpret_cast<uintptr_t>(SSL_get_ex_data(ssl, index));
}

void SetFacts(const SSL *ssl, uintptr_t facts) {
  const int index = FactsIndex();
  if (index >= 0) SSL_set_ex_data(const_cast<SSL *>(ssl), index, reinterpret_cast<void *>(facts));
}

std::string VersionName(int version) {
  char buf[48];
  const char *name = version == TLS1_3_VERSION   ? "TLS 1.3"
                     : version == TLS1_2_VERSION ? "TLS 1.2"
                     : version == TLS1_1_VERSION ? "TLS 1.1"
                     : version == TLS1_VERSION   ? "TLS 1.0"
                     : version == SSL3_VERSION   ? "SSL 3.0"
                                                 : "an unknown version";
  std::snprintf(buf, sizeof buf, "%s (0x%04x)", name, static_cast<unsigned>(version));
  return buf;
}

// The versions this connection's settings accept: "TLS 1.2-1.3", say.
std::string AcceptedVersions(const SSL *ssl) {
  SSL *mutable_ssl = const_cast<SSL *>(ssl);
  const long min = SSL_get_min_proto_version(mutable_ssl);
  const long max = SSL_get_max_proto_version(mutable_ssl);
  const uint64_t options = SSL_get_options(ssl);
  struct {
    int version;
    uint64_t off;
    const char *minor;
  } const kVersions[] = {{TLS1_VERSION, SSL_OP_NO_TLSv1, "0"},
                         {TLS1_1_VERSION, SSL_OP_NO_TLSv1_1, "1"},
                         {TLS1_2_VERSION, SSL_OP_NO_TLSv1_2, "2"},
                         {TLS1_3_VERSION, SSL_OP_NO_TLSv1_3, "3"}};
  std::string first, last;
  for (const auto &v : kVersions) {
    const bool accepted =
        (min == 0 || v.version >= min) && (max == 0 || v.version <= max) && !(options & v.off);
    if (!accepted) continue;
    if (first.empty()) first = v.minor;
    last = v.minor;
  }
  if (first.empty()) return "no TLS version";
  return first == last ? "TLS 1." + first : "TLS 1." + first + "-1." + last;
}

std::string AlertName(int desc) {
  switch (desc) {
    case SSL_AD_CLOSE_NOTIFY:
      return "close_notify";
    case SSL_AD_UNEXPECTED_MESSAGE:
      return "unexpected_message";
    case SSL_AD_BAD_RECORD_MAC:
      return "bad_record_mac";
    case SSL_AD_HANDSHAKE_FAILURE:
      return "handshake_failure";
    case SSL_AD_BAD_CERTIFICATE:
      return "bad_certificate";
    case SSL_AD_UNSUPPORTED_CERTIFICATE:
      return "unsupported_certificate";
    case SSL_AD_CERTIFICATE_REVOKED:
      return "certificate_revoked";
    case SSL_AD_CERTIFICATE_EXPIRED:
      return "certificate_expired";
    case SSL_AD_CERTIFICATE_UNKNOWN:
      return "certificate_unknown";
    case SSL_AD_ILLEGAL_PARAMETER:
      return "illegal_parameter";
    case SSL_AD_UNKNOWN_CA:
      return "unknown_ca";
    case SSL_AD_ACCESS_DENIED:
      return "access_denied";
    case SSL_AD_DECODE_ERROR:
      return "decode_error";
    case SSL_AD_DECRYPT_ERROR:
      return "decrypt_error";
    case SSL_AD_PROTOCOL_VERSION:
      return "protocol_version";
    case SSL_AD_INSUFFICIENT_SECURITY:
      return "insufficient_security";
    case SSL_AD_INTERNAL_ERROR:
      return "internal_error";
    case SSL_AD_INAPPROPRIATE_FALLBACK:
      return "inappropriate_fallback";
    case SSL_AD_USER_CANCELLED:
      return "user_canceled";
    case SSL_AD_MISSING_EXTENSION:
      return "missing_extension";
    case SSL_AD_UNRECOGNIZED_NAME:
      return "unrecognized_name";
    case SSL_AD_NO_APPLICATION_PROTOCOL:
      return "no_application_protocol";
    case SSL_AD_CERTIFICATE_REQUIRED:
      return "certificate_required";
    default:
      return "alert_" + std::to_string(desc);
  }
}

bool IsCertificateAlert(int desc) {
  return desc == SSL_AD_UNKNOWN_CA || desc == SSL_AD_BAD_CERTIFICATE ||
         desc == SSL_AD_CERTIFICATE_UNKNOWN || desc == SSL_AD_UNSUPPORTED_CERTIFICATE ||
         desc == SSL_AD_CERTIFICATE_EXPIRED || desc == SSL_AD_CERTIFICATE_REVOKED ||
         desc == SSL_AD_DECRYPT_ERROR || desc == SSL_AD_ACCESS_DENIED;
}

// Reads a ClientHello without copying: bounds-checked, big-endian.
struct Reader {
  const unsigned char *at;
  size_t left;
  bool Take(size_t n, const unsigned char **out) {
    if (n > left) return false;
    *out = at;
    at += n;
    left -= n;
    return true;
  }
  bool Number(size_t bytes, size_t *out) {
    const unsigned char *p;
    if (!Take(bytes, &p)) return false;
    *out = 0;
    for (size_t i = 0; i < bytes; ++i) *out = (*out << 8) | p[i];
    return true;
  }
  // A vector with a `bytes`-long length prefix.
  bool Vector(size_t bytes, Reader *out) {
    size_t n;
    const unsigned char *p;
    if (!Number(bytes, &n) || !Take(n, &p)) return false;
    *out = Reader{p, n};
    return true;
  }
};

bool IsGrease(size_t value) { return (value & 0x0f0f) == 0x0a0a && (value >> 8) == (value & 0xff); }

uintptr_t VersionBits(Reader list) {
  uintptr_t bits = kOffered;
  size_t version;
  while (list.Number(2, &version)) {
    bits |= version == TLS1_VERSION     ? kOfferTls10
            : version == TLS1_1_VERSION ? kOfferTls11
            : version == TLS1_2_VERSION ? kOfferTls12
            : version == TLS1_3_VERSION ? kOfferTls13
            : IsGrease(version)         ? uintptr_t{0}
                                        : kOfferOther;
  }
  return bits;
}

uintptr_t AlpnBits(Reader list) {
  uintptr_t bits = kOffered;
  Reader name{nullptr, 0};
  while (list.Vector(1, &name)) {
    const std::string_view protocol(reinterpret_cast<const char *>(name.at), name.left);
    bits |= protocol == "h2"         ? kAlpnH2
            : protocol == "http/1.1" ? kAlpnHttp11
            : protocol == "http/1.0" ? kAlpnHttp10
                                     : kAlpnOther;
  }
  return bits;
}

// The facts of a ClientHello's body: its supported_versions and ALPN, or 0.
uintptr_t ClientHelloFacts(Reader hello) {
  const unsigned char *skip;
  Reader vector{nullptr, 0}, extensions{nullptr, 0};
  if (!hello.Take(2 + 32, &skip) || !hello.Vector(1, &vector) || !hello.Vector(2, &vector) ||
      !hello.Vector(1, &vector) || !hello.Vector(2, &extensions)) {
    return 0;  // no extensions (or not a ClientHello certgate can read)
  }
  uintptr_t facts = 0;
  size_t type;
  Reader body{nullptr, 0}, list{nullptr, 0};
  while (extensions.Number(2, &type) && extensions.Vector(2, &body)) {
    if (type == TLSEXT_TYPE_supported_versions && body.Vector(1, &list)) {
      facts |= VersionBits(list) << kClientVersionsShift;
    } else if (type == TLSEXT_TYPE_application_layer_protocol_negotiation &&
               body.Vector(2, &list)) {
      facts |= AlpnBits(list) << kAlpnShift;
    }
  }
  return facts;
}

// "TLS 1.3,TLS 1.2" from the supported_versions bits; "" when not offered.
std::string OfferedVersions(uintptr_t bits) {
  if (!(bits & kOffered)) return "";
  std::string out;
  const std::pair<uintptr_t, const char *> kNames[] = {{kOfferTls13, "TLS1.3"},
                                                       {kOfferTls12, "TLS1.2"},
                                                       {kOfferTls11, "TLS1.1"},
                                                       {kOfferTls10, "TLS1.0"},
                                                       {kOfferOther, "other"}};
  for (const auto &[bit, name] : kNames) {
    if (bits & bit) out += (out.empty() ? "" : ",") + std::string(name);
  }
  return out.empty() ? "none" : out;
}

std::string OfferedAlpn(uintptr_t bits) {
  if (!(bits & kOffered)) return "";
  std::string out;
  const std::pair<uintptr_t, const char *> kNames[] = {
      {kAlpnH2, "h2"}, {kAlpnHttp11, "http/1.1"}, {kAlpnHttp10, "http/1.0"}, {kAlpnOther, "other"}};
  for (const auto &[bit, name] : kNames) {
    if (bits & bit) out += (out.empty() ? "" : ",") + std::string(name);
  }
  return out.empty() ? "none" : out;
}

uint64_t HashBytes(const void *data, size_t len) {
  uint64_t hash = 1469598103934665603ull;  // FNV-1a
  const auto *bytes = static_cast<const unsigned char *>(data);
  for (size_t i = 0; i < len; ++i) hash = (hash ^ bytes[i]) * 1099511628211ull;
  return hash;
}

}  // namespace

bool NoteHandshakeEvent(const SSL *ssl, int where, int ret) {
  if (!SSL_is_server(ssl)) return false;
  if (where & SSL_CB_LOOP) {
    const OSSL_HANDSHAKE_STATE state = SSL_get_state(ssl);
    if (state == TLS_ST_SW_CERT_REQ) SetFacts(ssl, FactsOf(ssl) | kAskedForCert);
    if (state == TLS_ST_SR_CERT) SetFacts(ssl, FactsOf(ssl) | kCertReceived);
    return false;
  }
  if (where & SSL_CB_ALERT) {
    if ((ret >> 8) != SSL3_AL_FATAL) return false;
    const uintptr_t desc = static_cast<uintptr_t>(ret & 0xff);
    uintptr_t facts = FactsOf(ssl);
    if ((where & SSL_CB_READ) && !(facts & kAlertReceived)) {
      facts |= kAlertReceived | (desc << kReceivedShift);
    } else if ((where & SSL_CB_WRITE) && !(facts & kAlertSent)) {
      facts |= kAlertSent | (desc << kSentShift);
    }
    SetFacts(ssl, facts);
    return false;
  }
  if (where & SSL_CB_HANDSHAKE_DONE) {
    SetFacts(ssl, FactsOf(ssl) | kHandshakeDone);
    return false;
  }
  if (!(where & SSL_CB_EXIT) || ret > 0) return false;
  // A connection that never sent a ClientHello is not a TLS client (a port
  // scan, plain HTTP): no line.
  if (SSL_is_init_finished(ssl) || SSL_client_version(ssl) == 0) return false;
  const uintptr_t facts = FactsOf(ssl);
  if (facts & (kReported | kRefusedByCertgate | kHandshakeDone)) return false;
  // Waiting for the network is not a failure: a fatal alert, an SSL error
  // (also an unexpected EOF) or nothing left to wait for is.
  const bool failed = (facts & (kAlertReceived | kAlertSent)) ||
                      ERR_GET_LIB(ERR_peek_error()) == ERR_LIB_SSL || SSL_want(ssl) == SSL_NOTHING;
  if (!failed) return false;
  SetFacts(ssl, facts | kReported);
  return true;
}

void NoteHandshakeMessage(int write_p, int, int content_type, const void *buf, size_t len, SSL *ssl,
                          void *) {
  if (write_p || content_type != SSL3_RT_HANDSHAKE || len < 4 || !SSL_is_server(ssl)) return;
  const auto *message = static_cast<const unsigned char *>(buf);
  if (message[0] != SSL3_MT_CLIENT_HELLO) return;
  const uintptr_t facts = ClientHelloFacts(Reader{message + 4, len - 4});
  if (facts != 0) SetFacts(ssl, FactsOf(ssl) | facts);
}

void MarkRefusedByCertgate(SSL *ssl) { SetFacts(ssl, FactsOf(ssl) | kRefusedByCertgate); }

void NoteClientAddress(SSL *ssl, const char *address) {
  const int index = AddressIndex();
  if (index < 0 || address == nullptr) return;
  SSL_set_ex_data(ssl, index,
                  reinterpret_cast<void *>(static_cast<uintptr_t>(
                      HashBytes(address, std::strlen(address)) | 1)));  // never 0
}

uint64_t ClientAddressKey(const SSL *ssl) {
  const int fd = SSL_get_fd(ssl);
  sockaddr_storage peer{};
  socklen_t len = sizeof peer;
  if (fd >= 0 && getpeername(fd, reinterpret_cast<sockaddr *>(&peer), &len) == 0) {
    if (peer.ss_family == AF_INET) {
      const auto &in = reinterpret_cast<const sockaddr_in &>(peer);
      return HashBytes(&in.sin_addr, sizeof in.sin_addr);
    }
    if (peer.ss_family == AF_INET6) {
      const auto &in6 = reinterpret_cast<const sockaddr_in6 &>(peer);
      return HashBytes(&in6.sin6_addr, sizeof in6.sin6_addr);
    }
    return 0;  // a UNIX socket: one local client
  }
  const int index = AddressIndex();
  return index < 0 ? 0 : reinterpret_cast<uintptr_t>(SSL_get_ex_data(ssl, index));
}

HandshakeFailure DescribeHandshakeFailure(const SSL *ssl) {
  const uintptr_t facts = FactsOf(ssl);
  const int client_version = SSL_client_version(ssl);
  const unsigned long error = ERR_peek_error();
  const int error_reason = ERR_GET_LIB(error) == ERR_LIB_SSL ? ERR_GET_REASON(error) : 0;
  const int sent = (facts & kAlertSent) ? static_cast<int>((facts >> kSentShift) & 0xff) : -1;
  const int received =
      (facts & kAlertReceived) ? static_cast<int>((facts >> kReceivedShift) & 0xff) : -1;
  const bool asked = facts & kAskedForCert;
  STACK_OF(SSL_CIPHER) *ciphers = SSL_get_client_ciphers(ssl);
  // OpenSSL answers a hang-up with a decode_error alert of its own: not the news.
  const bool closed = error_reason == SSL_R_UNEXPECTED_EOF_WHILE_READING;

  std::string stage, detail, hint, alert;
  if (error_reason == SSL_R_UNSUPPORTED_PROTOCOL || error_reason == SSL_R_VERSION_TOO_LOW ||
      sent == SSL_AD_PROTOCOL_VERSION) {
    stage = "client_hello";
    detail = "the client offered " + VersionName(client_version) +
             " at most; this server accepts " + AcceptedVersions(ssl);
    hint =
        "enable a newer TLS version in the client; widen the server's versions (ssl_protocols, "
        "SSLProtocol) only if that client cannot be changed";
  } else if (error_reason == SSL_R_NO_SHARED_CIPHER) {
    stage = "client_hello";
    detail = "none of the " + std::to_string(ciphers ? sk_SSL_CIPHER_num(ciphers) : 0) +
             " cipher suites the client offered is enabled on this server";
    hint =
        "enable a cipher suite the client offers (ssl_ciphers, SSLCipherSuite), or update the "
        "client";
  } else if (error_reason == SSL_R_NO_SHARED_SIGNATURE_ALGORITHMS ||
             error_reason == SSL_R_NO_SUITABLE_SIGNATURE_ALGORITHM ||
             error_reason == SSL_R_NO_SHARED_GROUPS ||
             error_reason == SSL_R_NO_SUITABLE_KEY_SHARE) {
    stage = "client_hello";
    detail = std::string("the client and this server share no ") +
             (error_reason == SSL_R_NO_SHARED_GROUPS || error_reason == SSL_R_NO_SUITABLE_KEY_SHARE
                  ? "key exchange group"
                  : "signature algorithm usable with the server's key");
    hint = "compare the client's signature algorithms and groups with the server's key type";
  } else if (received >= 0) {
    alert = AlertName(received);
    stage = asked ? "certificate_request" : "server_hello";
    detail = "the client aborted the handshake with alert " + alert + " (" +
             std::to_string(received) + ")" +
             (asked ? " after the server asked for its certificate" : "");
    if (IsCertificateAlert(received)) {
      hint =
          "the client did not accept the server's certificate chain (an issuer it does not "
          "trust, a missing intermediate, a name mismatch) or the CA names the server sent; "
          "check both with certgate probe";
    }
  } else if (asked && !(facts & kCertReceived) && (sent < 0 || closed)) {
    stage = "certificate_request";
    detail =
        "the client closed the connection after the server asked for a certificate, without "
        "sending one";
    hint =
        "the client has no certificate issued by one of the CA names the server sends, or it "
        "cannot use its key; check the CA names with certgate probe";
  } else if (closed) {
    stage = asked ? "certificate_request" : "handshake";
    detail = "the client closed the connection during the handshake";
  } else {
    stage = asked ? "certificate_request" : "handshake";
    if (sent >= 0) {
      alert = AlertName(sent);
      detail = "the server aborted the handshake with alert " + alert;
    } else {
      detail = "the handshake failed";
    }
    const char *why = error != 0 ? ERR_reason_error_string(error) : nullptr;
    if (why != nullptr) detail += std::string(": ") + why;
    if (error == 0 && sent < 0) detail = "the client closed the connection during the handshake";
  }

  HandshakeFailure failure{
      Decision::Deny({CG_REASON_TLS_HANDSHAKE, -1, std::move(detail), std::move(hint)}, nullptr),
      {}};
  const char *sni = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  failure.extras = {{"stage", stage},
                    {"alert", alert},
                    {"sni", sni != nullptr ? sni : ""},
                    {"client_version", VersionName(client_version)},
                    {"client_versions", OfferedVersions(facts >> kClientVersionsShift & 0xff)},
                    {"client_ciphers", ciphers ? std::to_string(sk_SSL_CIPHER_num(ciphers)) : ""},
                    {"alpn", OfferedAlpn(facts >> kAlpnShift & 0xff)}};
  return failure;
}

std::optional<uint64_t> HandshakeLogLimiter::Admit(uint64_t address, int64_t now_seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  Slot *slot = nullptr;
  Slot *oldest = &slots_[0];
  for (Slot &candidate : slots_) {
    if (candidate.used && candidate.address == address) {
      slot = &candidate;
      break;
    }
    if (!candidate.used) {
      if (oldest->used) oldest = &candidate;
    } else if (oldest->used && candidate.window_start < oldest->window_start) {
      oldest = &candidate;
    }
  }
  if (slot == nullptr) {
    slot = oldest;
    *slot = Slot{address, true, now_seconds, 0, 0};
  }
  if (now_seconds - slot->window_start >= kWindowSeconds) {
    slot->window_start = now_seconds;
    slot->logged = 0;
  }
  if (slot->logged >= kBurst) {
    ++slot->suppressed;
    return std::nullopt;
  }
  ++slot->logged;
  const uint64_t suppressed = slot->suppressed;
  slot->suppressed = 0;
  return suppressed;
}

HandshakeLogLimiter &HandshakeLogLimiter::Process() {
  static HandshakeLogLimiter limiter;
  return limiter;
}

}  // namespace certgate
