// Private to the policy parser (policy.cc, policy_keys.cc, policy_parse.cc):
// the pieces every key's setter is built from.
#pragma once

#include <certgate/certgate.h>
#include <certgate/policy.h>
#include <certgate/result.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace certgate::policy_parse {

using Args = std::vector<std::string>;

std::string Lower(std::string_view s);
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix);
// Long values (a hostile pattern, a pasted certificate) are cut in the
// middle, so the message still fits a server's log line with its file:line.
std::string Shorten(std::string_view text);
std::string Quote(std::string_view value);

// Builds "certgate_<key>: <text>" errors; `certgate` itself has no suffix.
class Errors {
 public:
  explicit Errors(const std::string &key)
      : directive_(key == "certgate" ? key : "certgate_" + key) {}

  Status Error(const std::string &text) const { return Status::Error(directive_ + ": " + text); }
  Status IsNot(std::string_view value, const std::string &what) const {
    return Error(Quote(value) + " is not " + what);
  }

 private:
  std::string directive_;
};

// A keyword table: case-insensitive lookup, and the "one of a, b, c" message.
template <typename T>
struct Keywords {
  std::vector<std::pair<const char *, T>> entries;

  std::optional<T> Find(std::string_view word) const {
    for (const auto &[name, value] : entries) {
      if (EqualsIgnoreCase(word, name)) return value;
    }
    return std::nullopt;
  }
  std::string OneOf() const {
    std::string out = "one of ";
    for (size_t i = 0; i < entries.size(); ++i) {
      if (i > 0) out += ", ";
      out += entries[i].first;
    }
    return out;
  }
};

template <typename T>
Status ParseKeyword(const Errors &err, const Keywords<T> &words, const std::string &arg,
                    std::optional<T> *out) {
  std::optional<T> value = words.Find(arg);
  if (!value) return err.IsNot(arg, words.OneOf());
  *out = *value;
  return Status::Ok();
}

// Non-negative decimal integer without sign or spaces; false on overflow.
bool ParseUnsigned(std::string_view text, uint64_t max, uint64_t *out);
Status ParseIntInRange(const Errors &err, const std::string &arg, int low, int high,
                       std::optional<int> *out);
// nginx time syntax: "90", "60s", "5m", "1h30m", "500ms"; units in descending order.
bool ParseDurationMs(std::string_view text, uint64_t *out_ms);

// The values a time key accepts, in milliseconds, and how its message says so.
// Every time key is bounded: the adapters turn them into int milliseconds and
// timers (Apache doubled revocation_wait in an int, which overflowed above
// ~12 days), and no sane setting comes near the limits.
struct TimeRange {
  uint64_t min_ms;
  uint64_t max_ms;
  const char *text;  // "between 0s and 1d"
};

constexpr uint64_t kSecondMs = 1000;
constexpr uint64_t kDayMs = 86400 * kSecondMs;
constexpr TimeRange kClockSkewRange{0, kDayMs, "between 0s and 1d"};
constexpr TimeRange kExpiryWarningRange{0, 365 * kDayMs, "between 0s and 365d"};
constexpr TimeRange kMaxStaleRange{0, 30 * kDayMs, "between 0s and 30d"};
constexpr TimeRange kRevocationWaitRange{0, 60 * kSecondMs, "between 0s and 60s"};
// 0 would be no timeout at all for libcurl.
constexpr TimeRange kFetchTimeoutRange{100, 300 * kSecondMs, "between 100ms and 5m"};

Status ParseSeconds(const Errors &err, const std::string &arg, const TimeRange &range,
                    std::optional<std::chrono::seconds> *out);
Status ParseMillis(const Errors &err, const std::string &arg, const TimeRange &range,
                   std::optional<std::chrono::milliseconds> *out);
// "32m", "512k", "1g", "1048576" (bytes); case-insensitive suffix.
bool ParseSize(std::string_view text, uint64_t *out);

// DN attribute names are case-insensitive (RFC 4514) but OBJ_txt2nid is not.
int DnAttributeNid(const std::string &name);
// A `{...}` repeat too long for RE2 to parse as a number (see the definition).
std::optional<std::string_view> UnparsableRepeat(std::string_view pattern);
bool IsIpLiteral(const std::string &text);

// An address or CIDR block ("192.0.2.0/24", "2001:db8::1"): the address bytes
// (4 or 16) and the prefix length; nullopt when it is neither.
struct AddressBlock {
  std::vector<uint8_t> address;
  int prefix;
};
std::optional<AddressBlock> ParseAddressBlock(std::string_view text);
// Whether `ip` (an address as text) is inside `block`.
bool InAddressBlock(const AddressBlock &block, std::string_view ip);
// 64 hex digits, optionally "AB:CD:..." with colons only between bytes.
bool ParseDigestHex(std::string_view text, std::vector<uint8_t> *out);

// One setter per key, specialised in policy_keys.cc for every row of
// CERTGATE_KEYS (a missing one fails to link).
template <cg_key K>
Status Set(Policy &p, const Errors &err, const Args &args);

}  // namespace certgate::policy_parse
