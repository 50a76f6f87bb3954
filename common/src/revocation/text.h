// Small helpers the revocation pieces share: message fragments and memory trim.
// Private to certgate_core.
#pragma once

#include <malloc.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace certgate {

// A crlNumber for messages: "none" for a CRL without one.
inline std::string CrlNumberText(const std::string &decimal) {
  return decimal.empty() ? "none" : decimal;
}

// "a,b,c".
inline std::string JoinNames(const std::vector<std::string_view> &names) {
  std::string out;
  for (std::string_view name : names) out += (out.empty() ? "" : ",") + std::string(name);
  return out;
}

// A large CRL's text and DER are freed after its ingest, but glibc keeps freed
// memory of a thread's arena for reuse: ~50 MB per worker that preloaded a
// 1,000,000-entry CRL. Returned to the system instead (no-op elsewhere).
constexpr size_t kTrimAfterBytes = 1 << 20;

inline void ReturnFreedMemory() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

}  // namespace certgate
