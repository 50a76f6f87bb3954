// certgate probe: one TLS handshake as a client, with what the server's
// CertificateRequest said (CA names, signature algorithms).
#include <certgate/cert_facts.h>
#include <netdb.h>
#include <openssl/err.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "probe.h"

namespace certgate::cli {
namespace {

// RFC 8446 §4.2.3 and RFC 5246 §7.4.1.4.1 code points, as operators read them.
std::string SigalgName(int hash_byte, int sign_byte) {
  static const struct {
    int code;
    const char *name;
  } kNames[] = {
      {0x0201, "rsa_pkcs1_sha1"},
      {0x0203, "ecdsa_sha1"},
      {0x0301, "rsa_pkcs1_sha224"},
      {0x0303, "ecdsa_sha224"},
      {0x0401, "rsa_pkcs1_sha256"},
      {0x0403, "ecdsa_secp256r1_sha256"},
      {0x0501, "rsa_pkcs1_sha384"},
      {0x0503, "ecdsa_secp384r1_sha384"},
      {0x0601, "rsa_pkcs1_sha512"},
      {0x0603, "ecdsa_secp521r1_sha512"},
      {0x0804, "rsa_pss_rsae_sha256"},
      {0x0805, "rsa_pss_rsae_sha384"},
      {0x0806, "rsa_pss_rsae_sha512"},
      {0x0807, "ed25519"},
      {0x0808, "ed448"},
      {0x0809, "rsa_pss_pss_sha256"},
      {0x080a, "rsa_pss_pss_sha384"},
      {0x080b, "rsa_pss_pss_sha512"},
      {0x081a, "ecdsa_brainpoolP256r1tls13_sha256"},
      {0x081b, "ecdsa_brainpoolP384r1tls13_sha384"},
      {0x081c, "ecdsa_brainpoolP512r1tls13_sha512"},
  };
  const int code = (hash_byte << 8) | sign_byte;
  for (const auto &entry : kNames) {
    if (entry.code == code) return entry.name;
  }
  char hex[8];
  snprintf(hex, sizeof(hex), "0x%04x", code);
  return hex;
}

// Called on a client only when the server sent a CertificateRequest, before
// OpenSSL picks the certificate to send.
int RecordCertificateRequest(SSL *ssl, void *arg) {
  CertRequest &request = static_cast<HandshakeCapture *>(arg)->request;
  request = CertRequest{};
  request.asked = true;
  const STACK_OF(X509_NAME) *names = SSL_get_client_CA_list(ssl);
  for (int i = 0; i < sk_X509_NAME_num(names); ++i) {
    const X509_NAME *name = sk_X509_NAME_value(names, i);
    const std::string der = NameDer(name);
    request.ca_names.push_back(NameToString(name));
    request.ca_names_der.push_back(der);
    request.ca_names_bytes += 2 + der.size();  // each DistinguishedName has a 2-byte length
  }
  const int count = SSL_get_sigalgs(ssl, -1, nullptr, nullptr, nullptr, nullptr, nullptr);
  for (int i = 0; i < count; ++i) {
    unsigned char sign = 0, hash = 0;
    SSL_get_sigalgs(ssl, i, nullptr, nullptr, nullptr, &sign, &hash);
    request.sigalgs.push_back(SigalgName(hash, sign));
  }
  return 1;
}

// Sees every record: the alerts the server sends, and whether our Certificate
// message carried a certificate (an empty one is 3 bytes in TLS 1.2, 4 in 1.3).
void WatchMessages(int write_p, int, int content_type, const void *buf, size_t len, SSL *,
                   void *arg) {
  auto *capture = static_cast<HandshakeCapture *>(arg);
  const auto *bytes = static_cast<const unsigned char *>(buf);
  if (content_type == SSL3_RT_ALERT && !write_p && len >= 2) {
    capture->alert = SSL_alert_desc_string_long(bytes[1]);
  }
  if (content_type == SSL3_RT_HANDSHAKE && write_p && len >= 4 && bytes[0] == SSL3_MT_CERTIFICATE) {
    const size_t body = (size_t{bytes[1]} << 16) | (size_t{bytes[2]} << 8) | bytes[3];
    capture->sent_certificate = body > 4;
  }
}

int ConnectTcp(const std::string &host, int port, int timeout_ms, std::string *error) {
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo *found = nullptr;
  const int rc = getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found);
  if (rc != 0) {
    *error = "cannot resolve \"" + host + "\": " + gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo *a = found; a != nullptr && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      *error = "cannot connect to " + host + ":" + std::to_string(port) + ": " + strerror(errno);
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(found);
  return fd;
}

std::string OpenSslError() {
  const unsigned long code = ERR_peek_last_error();
  std::string text;
  if (code != 0) {
    const char *reason = ERR_reason_error_string(code);
    text = reason != nullptr ? reason : "error " + std::to_string(ERR_GET_REASON(code));
  }
  ERR_clear_error();
  return text;
}

bool LoadClient(SSL_CTX *ctx, const ClientIdentity &client) {
  // A certificate without its key cannot be sent: OpenSSL then sends none.
  if (!client.leaf || !client.key) return true;
  if (SSL_CTX_use_certificate(ctx, client.leaf.get()) != 1) return false;
  for (const auto &cert : client.chain) {
    if (SSL_CTX_add1_chain_cert(ctx, cert.get()) != 1) return false;
  }
  return SSL_CTX_use_PrivateKey(ctx, client.key.get()) == 1;
}

CertLine Line(X509 *cert) {
  CertFacts facts = ExtractFacts(cert);
  return {std::move(facts.subject), std::move(facts.issuer), FormatTime(facts.not_after),
          std::move(facts.fingerprint)};
}

}  // namespace

std::string NameDer(const X509_NAME *name) {
  unsigned char *der = nullptr;
  const int len = i2d_X509_NAME(name, &der);
  if (len <= 0) return {};
  std::string out(reinterpret_cast<const char *>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string VersionName(int version) {
  switch (version) {
    case TLS1_VERSION:
      return "TLSv1";
    case TLS1_1_VERSION:
      return "TLSv1.1";
    case TLS1_2_VERSION:
      return "TLSv1.2";
    case TLS1_3_VERSION:
      return "TLSv1.3";
    default:
      return "TLS 1.2-1.3";
  }
}

TlsConnection::TlsConnection() : capture_(std::make_unique<HandshakeCapture>()) {}

TlsConnection::~TlsConnection() {
  if (ssl_ != nullptr && SSL_is_init_finished(ssl_)) SSL_shutdown(ssl_);  // close_notify, no wait
  if (ssl_ != nullptr) SSL_free(ssl_);
  if (ctx_ != nullptr) SSL_CTX_free(ctx_);
  if (fd_ >= 0) close(fd_);
}

Handshake Connect(const HandshakeSettings &settings, TlsConnection *connection) {
  TlsConnection local;
  TlsConnection &c = connection != nullptr ? *connection : local;
  Handshake result;
  c.ctx_ = SSL_CTX_new(TLS_client_method());
  if (c.ctx_ == nullptr) {
    result.error = "cannot create a TLS context: " + OpenSslError();
    return result;
  }
  if (settings.legacy_ok) {
    // Debian's OpenSSL offers TLS 1.0/1.1 (and their SHA-1 signatures) only at level 0.
    SSL_CTX_set_security_level(c.ctx_, 0);
    SSL_CTX_set_cipher_list(c.ctx_, "DEFAULT:@SECLEVEL=0");
  }
  const int min = settings.version != 0 ? settings.version : TLS1_2_VERSION;
  const int max = settings.version != 0 ? settings.version : TLS1_3_VERSION;
  if (SSL_CTX_set_min_proto_version(c.ctx_, min) != 1 ||
      SSL_CTX_set_max_proto_version(c.ctx_, max) != 1) {
    result.library_cannot_offer = true;
    result.error = "the client library cannot offer " + VersionName(settings.version);
    return result;
  }
  SSL_CTX_set_verify(c.ctx_, SSL_VERIFY_NONE, nullptr);  // judged and reported, never fatal
  if (!settings.ca_file.empty() &&
      SSL_CTX_load_verify_locations(c.ctx_, settings.ca_file.c_str(), nullptr) != 1) {
    result.error = "cannot load --ca " + settings.ca_file + ": " + OpenSslError();
    return result;
  }
  if (settings.client != nullptr && !LoadClient(c.ctx_, *settings.client)) {
    result.error = "cannot use the client certificate and key: " + OpenSslError();
    return result;
  }
  SSL_CTX_set_cert_cb(c.ctx_, RecordCertificateRequest, c.capture_.get());
  SSL_CTX_set_msg_callback(c.ctx_, WatchMessages);
  SSL_CTX_set_msg_callback_arg(c.ctx_, c.capture_.get());
  std::string alpn_wire;
  for (const std::string &protocol : settings.alpn) {
    alpn_wire += static_cast<char>(protocol.size()) + protocol;
  }
  if (!alpn_wire.empty()) {
    SSL_CTX_set_alpn_protos(c.ctx_, reinterpret_cast<const unsigned char *>(alpn_wire.data()),
                            static_cast<unsigned>(alpn_wire.size()));
  }

  c.fd_ = ConnectTcp(settings.host, settings.port, settings.timeout_ms, &result.error);
  if (c.fd_ < 0) return result;
  result.connected = true;
  c.ssl_ = SSL_new(c.ctx_);
  SSL_set_fd(c.ssl_, c.fd_);
  if (!settings.servername.empty()) SSL_set_tlsext_host_name(c.ssl_, settings.servername.c_str());
  ERR_clear_error();
  const int rc = SSL_connect(c.ssl_);
  const HandshakeCapture &capture = *c.capture_;
  result.request = capture.request;
  if (rc != 1) {
    const unsigned long code = ERR_peek_last_error();
    const int reason = ERR_GET_REASON(code);
    result.library_cannot_offer =
        reason == SSL_R_NO_PROTOCOLS_AVAILABLE || reason == SSL_R_NO_CIPHERS_AVAILABLE;
    std::string why = OpenSslError();
    if (why.empty()) why = errno != 0 ? strerror(errno) : "the server closed the connection";
    if (!capture.alert.empty()) why += " (alert from the server: " + capture.alert + ")";
    result.error = result.library_cannot_offer ? "the client library cannot offer " +
                                                     VersionName(settings.version) + ": " + why
                                               : why;
    return result;
  }
  result.ok = true;
  result.version = SSL_get_version(c.ssl_);
  result.cipher = SSL_get_cipher_name(c.ssl_);
  const unsigned char *alpn = nullptr;
  unsigned alpn_len = 0;
  SSL_get0_alpn_selected(c.ssl_, &alpn, &alpn_len);
  result.alpn.assign(reinterpret_cast<const char *>(alpn), alpn_len);
  STACK_OF(X509) *chain = SSL_get_peer_cert_chain(c.ssl_);
  for (int i = 0; i < sk_X509_num(chain); ++i) {
    result.server_chain.push_back(Line(sk_X509_value(chain, i)));
  }
  if (result.server_chain.empty() && SSL_get0_peer_certificate(c.ssl_) != nullptr) {
    result.server_chain.push_back(Line(SSL_get0_peer_certificate(c.ssl_)));
  }
  if (!settings.ca_file.empty()) {
    const long verify = SSL_get_verify_result(c.ssl_);
    result.server_verify = verify == X509_V_OK ? "ok" : X509_verify_cert_error_string(verify);
  }
  result.sent_certificate = capture.sent_certificate;
  return result;
}

}  // namespace certgate::cli
