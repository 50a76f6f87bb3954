// The client certificate a TLS-terminating proxy forwards in a request header
// (certgate_forwarded_cert): decoding only, no judgement. Every input is
// hostile until decoded: bounded in size and count, never trusted in part.
#pragma once

#include <certgate/ossl_ptr.h>
#include <certgate/policy.h>
#include <certgate/result.h>

#include <optional>
#include <string>
#include <string_view>

namespace certgate {

// A longer header value is refused before it is decoded.
constexpr size_t kMaxForwardedHeader = 64 * 1024;
// Certificates in one forwarded chain, the leaf included.
constexpr size_t kMaxForwardedCerts = 10;

struct ForwardedChain {
  ossl::UniquePtr<X509> leaf;
  ossl::UniquePtr<STACK_OF(X509)> chain;  // what came after the leaf, as sent (never null)
};

// One XFCC element's field (`Cert`, `Chain`, `Hash`; the key case-insensitive),
// unquoted; nullopt when absent. The error names what does not parse: more than
// one element (a chain of proxies), an unterminated quote.
Result<std::optional<std::string>> XfccField(std::string_view value, std::string_view key);

// Decodes a forwarded header value of `format`; the error says what is wrong
// with it, for the detail of a malformed refusal.
Result<ForwardedChain> ParseForwardedCert(ForwardedCert::Format format, std::string_view value);

}  // namespace certgate
