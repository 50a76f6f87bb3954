// RFC 3986 percent-decoding, one implementation for every URL-shaped value
// certgate reads: redis:// credentials, LDAP URL parts, forwarded certificates.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace certgate {

// 0-15 for a hex digit (either case), -1 otherwise.
int HexDigitValue(char c);

// %XX-decodes `text` ('+' stays '+': it is not a space outside forms, and a
// base64 character in a PEM); nullopt for a truncated or non-hex escape.
std::optional<std::string> PercentDecode(std::string_view text);

}  // namespace certgate
