// What an AIA caIssuers URL answers (ParseIssuerResponse): one DER
// certificate, PEM certificates, or a PKCS#7 certs-only bundle, DER or PEM.
// The body comes from the network: whatever it holds, the parser answers only
// CA certificates (basicConstraints CA:TRUE), at most its own limit of them,
// or an error that says why, never a crash.
#include <openssl/x509v3.h>

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_support.h"
#include "revocation/issuer_fetch.h"

namespace {
// issuer_fetch.cc's kMaxCertsPerResponse.
constexpr size_t kMaxCerts = 16;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using certgate::fuzz::Fail;
  const std::string_view body(reinterpret_cast<const char *>(data), size);
  auto certs = certgate::ParseIssuerResponse(body);
  if (!certs.ok()) {
    if (certs.status().message().empty()) Fail("a response refused without saying why");
    return 0;
  }
  if (certs->empty()) Fail("ok without a certificate");
  if (certs->size() > kMaxCerts) Fail("more certificates than the parser's limit");
  for (const auto &cert : certs.value()) {
    if (cert == nullptr) Fail("a null certificate");
    const uint32_t flags = X509_get_extension_flags(cert.get());
    if ((flags & EXFLAG_CA) == 0 || (flags & EXFLAG_INVALID) != 0) Fail("a non-CA certificate");
    unsigned char *der = nullptr;
    const int len = i2d_X509(cert.get(), &der);
    if (len <= 0) Fail("a certificate that does not re-encode");
    OPENSSL_free(der);
  }
  return 0;
}
