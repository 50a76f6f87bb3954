#include "session_chain.h"

#include <openssl/err.h>

#include <string>
#include <string_view>

namespace certgate {
namespace {

// Marks the session's application data as ours, format 1: then DER certificates.
constexpr std::string_view kMagic = "certgate-chain-1:";

}  // namespace

bool RememberChainInSession(SSL_SESSION *session, const ChainEvidence &evidence) {
  if (session == nullptr || !evidence.anchored || evidence.chain.size() < 3) return false;
  std::string data(kMagic);
  for (size_t i = 1; i + 1 < evidence.chain.size(); ++i) {  // not the leaf, not the anchor
    unsigned char *der = nullptr;
    const int len = i2d_X509(evidence.chain[i].get(), &der);
    if (len <= 0) {
      ERR_clear_error();
      return false;
    }
    data.append(reinterpret_cast<char *>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
  }
  // On failure the session resumes without the chain (the process's
  // intermediate cache may still know it); the error must not stay queued
  // for the server's next SSL_get_error.
  if (SSL_SESSION_set1_ticket_appdata(session, data.data(), data.size()) != 1) {
    ERR_clear_error();
    return false;
  }
  return true;
}

void AddChainFromSession(const SSL_SESSION *session, STACK_OF(X509) * candidates) {
  void *data = nullptr;
  size_t len = 0;
  if (session == nullptr || candidates == nullptr ||
      SSL_SESSION_get0_ticket_appdata(const_cast<SSL_SESSION *>(session), &data, &len) != 1 ||
      len <= kMagic.size() ||
      std::string_view(static_cast<char *>(data), kMagic.size()) != kMagic) {
    return;
  }
  const unsigned char *next = static_cast<const unsigned char *>(data) + kMagic.size();
  const unsigned char *end = static_cast<const unsigned char *>(data) + len;
  while (next < end) {
    X509 *cert = d2i_X509(nullptr, &next, end - next);
    if (cert == nullptr) break;
    if (!sk_X509_push(candidates, cert)) X509_free(cert);
  }
}

}  // namespace certgate
