// certgate probe: what `openssl s_client` shows of a TLS server that asks for
// client certificates, and what an operator has to work out from it.
//
// probe_tls.cc   one TLS handshake with the facts of the server's CertificateRequest
// probe_http.cc  one HTTP/1.1 GET over it, and certgate's reason in the answer
// probe_command.cc  the arguments, the sections, the exit status
// probe_report.cc   the sections as text and as JSON
#pragma once

#include <certgate/ossl_ptr.h>
#include <openssl/ssl.h>

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "commands.h"

namespace certgate::cli {

// The client's identity, loaded once.
struct ClientIdentity {
  ossl::UniquePtr<X509> leaf;
  std::vector<ossl::UniquePtr<X509>> chain;  // what the client sends after the leaf
  ossl::UniquePtr<EVP_PKEY> key;             // null when none or not the leaf's
};

struct HandshakeSettings {
  std::string host;  // to connect to
  int port = 443;
  std::string servername;  // SNI; "" sends none
  int version = 0;         // TLS1_VERSION ... TLS1_3_VERSION pinned; 0: 1.2 and 1.3
  bool legacy_ok = false;  // SECLEVEL 0, so that 1.0/1.1 can be offered at all
  std::vector<std::string> alpn = {"http/1.1"};
  const ClientIdentity *client = nullptr;  // null: no certificate to send
  std::string ca_file;                     // verify the server against it ("" = don't)
  int timeout_ms = 10000;
};

struct CertLine {
  std::string subject, issuer, not_after, fingerprint;
};

// What the server's CertificateRequest said.
struct CertRequest {
  bool asked = false;
  std::vector<std::string> ca_names;  // RFC 2253, in the order sent
  std::vector<std::string> ca_names_der;
  size_t ca_names_bytes = 0;  // as on the wire: each DN with its 2-byte length
  std::vector<std::string> sigalgs;
};

struct Handshake {
  bool connected = false;  // TCP
  bool ok = false;         // handshake (and, for TLS 1.3, the server's verdict on our cert)
  bool library_cannot_offer = false;
  std::string error;  // why not ok: OpenSSL's reason, the alert received
  std::string version, cipher, alpn;
  std::vector<CertLine> server_chain;
  std::string server_verify;  // with a CA file: "ok" or OpenSSL's verify error
  CertRequest request;
  bool sent_certificate = false;
};

// What the callbacks see during a handshake (and the alert a later read gets).
struct HandshakeCapture {
  CertRequest request;
  std::string alert;  // the last alert received, "" if none
  bool sent_certificate = false;
};

// An open TLS connection: the socket and the SSL over it.
class TlsConnection {
 public:
  TlsConnection();
  ~TlsConnection();
  TlsConnection(const TlsConnection &) = delete;
  TlsConnection &operator=(const TlsConnection &) = delete;
  SSL *ssl() const { return ssl_; }
  const HandshakeCapture &capture() const { return *capture_; }

 private:
  friend Handshake Connect(const HandshakeSettings &settings, TlsConnection *connection);
  SSL_CTX *ctx_ = nullptr;
  SSL *ssl_ = nullptr;
  int fd_ = -1;
  std::unique_ptr<HandshakeCapture> capture_;
};

// Connects and handshakes; `connection` (may be null) keeps it open for a request.
Handshake Connect(const HandshakeSettings &settings, TlsConnection *connection = nullptr);

struct HttpAnswer {
  bool answered = false;
  std::string error;  // why there is no answer
  int status = 0;
  std::string status_line;
  std::string reason_header;  // X-Certgate-Reason
  std::string body;
  // certgate's refusal as its body states it (any reject_body format)
  std::string reason, detail, hint;
};

HttpAnswer HttpGet(TlsConnection *connection, const std::string &host_header,
                   const std::string &path);

// "TLSv1.2" etc. for a TLS1_*_VERSION.
std::string VersionName(int version);

// The DER of a distinguished name: how it travels in a CertificateRequest,
// and what a certificate's issuer must equal byte for byte to match it.
std::string NameDer(const X509_NAME *name);

}  // namespace certgate::cli

namespace certgate::cli {

// What the probe found, section by section (probe_command.cc fills it,
// probe_report.cc prints it).
struct ChainMatch {
  bool matches = false;
  int name_index = -1;  // into CertRequest::ca_names
  int depth = -1;       // the client certificate whose issuer it is
  std::string text;
};

struct VersionTry {
  std::string name;
  bool accepted = false;
  bool library_cannot_offer = false;
  std::string detail;  // cipher when accepted, else why not
};

struct SniTry {
  std::string label;       // "with the name", "without SNI", "with a wrong name"
  std::string servername;  // "" for none
  Handshake handshake;
};

struct ProbeReport {
  std::string url, host, path, servername;
  int port = 443;
  Handshake server;  // offering h2 and http/1.1
  std::vector<std::string> offered_alpn;
  bool have_client = false;
  std::string client_subject, client_issuer;
  ChainMatch match;
  std::vector<VersionTry> versions;
  std::vector<SniTry> sni;
  std::string sni_note;  // what differs, or why nothing was compared
  bool key_checked = false;
  bool key_matches = false;
  std::string key_text;
  std::vector<std::string> client_auth_problems;
  bool requested = false;
  Handshake request_handshake;
  HttpAnswer answer;
  std::vector<std::string> warnings;
  std::string result;  // allowed, refused, handshake_failed, key_mismatch
  int exit_code = 0;
};

void PrintProbeText(std::ostream &out, const ProbeReport &report);
void PrintProbeJson(std::ostream &out, const ProbeReport &report);

}  // namespace certgate::cli
