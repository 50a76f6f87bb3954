// Self-checks: what a server configuration with certgate gets wrong before any
// client connects (issue 12 §3). Run once per server at `nginx -t`,
// `apache2 -t` and start, and offline by `certgate selfcheck`; each finding is
// one `certgate: check=<name> ...` line. Only issuer_not_trusted is fatal.
#pragma once

#include <certgate/ossl_ptr.h>
#include <certgate/policy.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace certgate {

// One row of the table docs/self-checks.md lists.
struct SelfCheck {
  std::string_view name;  // check=<name>
  bool fatal;             // refuses the configuration (nginx -t, apache2 -t, start)
  std::string_view when;  // the exact condition, for the docs
};

// Every self-check, in the order they run.
const std::vector<SelfCheck> &SelfChecks();

// Above this many bytes of CA names (DER plus the 2-byte length of each, as in
// the CertificateRequest) Schannel truncates the list.
constexpr size_t kCaNamesWarnBytes = 16 * 1024;

struct SelfCheckFinding {
  std::string name;
  bool fatal = false;
  std::string message;  // the whole line: "certgate: check=<name> ..."
};

// What one server is configured with, besides its certgate policy.
struct ServerTrust {
  std::vector<std::shared_ptr<X509>> anchors;  // the trust store's certificates
  std::vector<std::string> ca_names_der;       // the CA names the server sends (DER)
  std::vector<std::string> ca_names_text;      // the same, RFC 2253
  ossl::UniquePtr<X509_STORE> store;           // the anchors as a store
  long worker_uid = -1;                        // -1: the current user
  long worker_gid = -1;
  bool verify_client_on = false;  // nginx `ssl_verify_client on`
  int64_t now = 0;                // 0: the current time
};

// The server's trust from its SSL_CTX (the store's certificates and the
// client CA list it sends).
ServerTrust TrustFromSslCtx(SSL_CTX *ctx);

// From files, as mod_ssl reads them: the anchors from `ca_file` / `ca_path`
// (either may be empty), the names sent from `names_file` / `names_path`, or
// from the anchors when both are empty. Unreadable files are skipped (the
// server reports them itself).
ServerTrust TrustFromFiles(const std::string &ca_file, const std::string &ca_path,
                           const std::string &names_file, const std::string &names_path);

std::vector<SelfCheckFinding> RunSelfChecks(const Policy &policy, const ServerTrust &trust);

}  // namespace certgate
