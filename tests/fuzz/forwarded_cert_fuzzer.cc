// The header a trusted proxy forwards the client certificate in
// (certgate_forwarded_cert): nginx's $ssl_client_escaped_cert style and
// Envoy's x-forwarded-client-cert. Input byte 0 picks the format (even:
// escaped PEM, odd: XFCC); the rest is the header value. Whatever it holds,
// the parser answers a chain within its bounds or an error, never a crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "forwarded_cert.h"
#include "fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using certgate::ForwardedCert;
  if (size == 0) return 0;
  const auto format =
      data[0] % 2 == 0 ? ForwardedCert::Format::kEscapedPem : ForwardedCert::Format::kXfcc;
  const std::string_view value(reinterpret_cast<const char *>(data + 1), size - 1);
  auto parsed = certgate::ParseForwardedCert(format, value);
  if (parsed.ok()) {
    if (parsed->leaf == nullptr || parsed->chain == nullptr ||
        static_cast<size_t>(sk_X509_num(parsed->chain.get())) >= certgate::kMaxForwardedCerts) {
      abort();  // a chain outside the parser's own bounds
    }
  } else if (parsed.status().message().empty()) {
    abort();  // every refusal says why
  }
  (void)certgate::XfccField(value, "Cert");
  return 0;
}
