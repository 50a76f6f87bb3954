// The demo / integration-test PKI: a fixed set of files with stable names (see
// tests/pki/README.md), generated relative to `now` so nothing can expire.
#pragma once

#include <cstdint>
#include <string>

namespace certgate::pki {

// Writes the demo PKI under `dir` (created if needed; existing files are
// overwritten). On failure returns false and sets *error (when non-null).
bool WriteDemoPki(const std::string &dir, int64_t now, std::string *error);

}  // namespace certgate::pki
