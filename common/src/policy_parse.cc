// The value parsers the per-key setters share (policy_keys.cc): keywords,
// numbers, times, sizes, DN attributes, digests.
#include "policy_parse.h"

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <strings.h>

#include <cstring>
#include <limits>
#include <utility>

#include "percent_decode.h"

namespace certgate::policy_parse {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char &c : out) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

bool StartsWithIgnoreCase(std::string_view s, std::string_view prefix) {
  return s.size() >= prefix.size() && EqualsIgnoreCase(s.substr(0, prefix.size()), prefix);
}

// Long values (a hostile pattern, a pasted certificate) are cut in the
// middle, so the message still fits a server's log line with its file:line.
std::string Shorten(std::string_view text) {
  constexpr size_t kKeep = 60;
  if (text.size() <= 3 * kKeep) return std::string(text);
  return std::string(text.substr(0, kKeep)) + "...(" + std::to_string(text.size()) +
         " characters)..." + std::string(text.substr(text.size() - kKeep));
}

std::string Quote(std::string_view value) { return "\"" + Shorten(value) + "\""; }

// Non-negative decimal integer without sign or spaces; false on overflow.
bool ParseUnsigned(std::string_view text, uint64_t max, uint64_t *out) {
  if (text.empty()) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (max - digit) / 10) return false;
    value = value * 10 + digit;
  }
  *out = value;
  return true;
}

Status ParseIntInRange(const Errors &err, const std::string &arg, int low, int high,
                       std::optional<int> *out) {
  uint64_t value = 0;
  if (!ParseUnsigned(arg, std::numeric_limits<int>::max(), &value)) {
    return err.IsNot(arg, "a number");
  }
  if (value < static_cast<uint64_t>(low) || value > static_cast<uint64_t>(high)) {
    return err.IsNot(arg, "between " + std::to_string(low) + " and " + std::to_string(high));
  }
  *out = static_cast<int>(value);
  return Status::Ok();
}

// nginx time syntax: "90", "60s", "5m", "1h30m", "500ms"; units in descending order.
bool ParseDurationMs(std::string_view text, uint64_t *out_ms) {
  struct Unit {
    const char *name;
    uint64_t ms;
  };
  // Longer names first so "ms" wins over "m"; nginx's M (month) and y (year) too.
  static const Unit kUnits[] = {
      {"ms", 1},       {"s", 1000},      {"m", 60000},         {"h", 3600000},
      {"d", 86400000}, {"w", 604800000}, {"M", 2592000000ULL}, {"y", 31536000000ULL}};
  constexpr uint64_t kMax = uint64_t{1} << 53;  // far beyond any sane setting
  if (text.empty()) return false;
  uint64_t total = 0;
  uint64_t last_unit = std::numeric_limits<uint64_t>::max();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t digits_end = pos;
    while (digits_end < text.size() && text[digits_end] >= '0' && text[digits_end] <= '9') {
      ++digits_end;
    }
    uint64_t number = 0;
    if (!ParseUnsigned(text.substr(pos, digits_end - pos), kMax, &number)) return false;
    pos = digits_end;
    uint64_t unit_ms = 1000;  // a bare trailing number means seconds
    if (pos == text.size()) {
      if (last_unit != std::numeric_limits<uint64_t>::max()) return false;  // "1h30"
    } else {
      const Unit *found = nullptr;
      for (const Unit &unit : kUnits) {
        std::string_view name(unit.name);
        if (text.substr(pos, name.size()) == name) {
          found = &unit;
          break;
        }
      }
      if (found == nullptr) return false;
      pos += strlen(found->name);
      unit_ms = found->ms;
    }
    if (unit_ms >= last_unit) return false;  // "5s1h", "1h1h"
    last_unit = unit_ms;
    if (number > (kMax - total) / unit_ms) return false;
    total += number * unit_ms;
  }
  *out_ms = total;
  return true;
}

Status ParseSeconds(const Errors &err, const std::string &arg, const TimeRange &range,
                    std::optional<std::chrono::seconds> *out) {
  uint64_t ms = 0;
  if (!ParseDurationMs(arg, &ms)) return err.IsNot(arg, "a time (like 60s, 5m, 2h, 14d)");
  if (ms % 1000 != 0) return err.IsNot(arg, "a whole number of seconds");
  if (ms < range.min_ms || ms > range.max_ms) return err.IsNot(arg, range.text);
  *out = std::chrono::seconds(static_cast<int64_t>(ms / 1000));
  return Status::Ok();
}

Status ParseMillis(const Errors &err, const std::string &arg, const TimeRange &range,
                   std::optional<std::chrono::milliseconds> *out) {
  uint64_t ms = 0;
  if (!ParseDurationMs(arg, &ms)) return err.IsNot(arg, "a time (like 500ms, 2s, 1m)");
  if (ms < range.min_ms || ms > range.max_ms) return err.IsNot(arg, range.text);
  *out = std::chrono::milliseconds(static_cast<int64_t>(ms));
  return Status::Ok();
}

// "32m", "512k", "1g", "1048576" (bytes); case-insensitive suffix.
bool ParseSize(std::string_view text, uint64_t *out) {
  if (text.empty()) return false;
  uint64_t multiplier = 1;
  switch (tolower(static_cast<unsigned char>(text.back()))) {
    case 'k':
      multiplier = uint64_t{1} << 10;
      break;
    case 'm':
      multiplier = uint64_t{1} << 20;
      break;
    case 'g':
      multiplier = uint64_t{1} << 30;
      break;
    default:
      break;
  }
  if (multiplier != 1) text.remove_suffix(1);
  uint64_t number = 0;
  if (!ParseUnsigned(text, std::numeric_limits<uint64_t>::max() / multiplier, &number)) {
    return false;
  }
  *out = number * multiplier;
  return true;
}

// DN attribute names are case-insensitive (RFC 4514) but OBJ_txt2nid is not.
int DnAttributeNid(const std::string &name) {
  ERR_set_mark();  // an unknown name queues an error; callers get our message instead
  int nid = OBJ_txt2nid(name.c_str());
  ERR_pop_to_mark();
  if (nid != NID_undef) return nid;
  static const int kCommon[] = {NID_commonName,
                                NID_organizationalUnitName,
                                NID_organizationName,
                                NID_localityName,
                                NID_stateOrProvinceName,
                                NID_countryName,
                                NID_pkcs9_emailAddress,
                                NID_userId,
                                NID_domainComponent,
                                NID_serialNumber,
                                NID_streetAddress,
                                NID_title,
                                NID_givenName,
                                NID_surname,
                                NID_initials,
                                NID_pseudonym,
                                NID_generationQualifier,
                                NID_dnQualifier,
                                NID_name,
                                NID_businessCategory,
                                NID_postalCode,
                                NID_organizationIdentifier};
  for (int candidate : kCommon) {
    if (EqualsIgnoreCase(name, OBJ_nid2sn(candidate)) ||
        EqualsIgnoreCase(name, OBJ_nid2ln(candidate))) {
      return candidate;
    }
  }
  return NID_undef;
}

// RE2 refuses a repeat count above 1000 ("invalid repetition size"), but one
// too long to parse as a number (`a{77777777777777777777}`) it silently reads
// as literal text. The operator meant a repeat: returns such a `{...}`, to be
// refused the same way.
std::optional<std::string_view> UnparsableRepeat(std::string_view pattern) {
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\') {
      ++i;  // an escaped character, never an operator
    } else if (in_class) {
      in_class = c != ']';
    } else if (c == '[') {
      in_class = true;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') ++i;
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') ++i;  // "[]a]": a literal ]
    } else if (c == '{') {
      const size_t end = pattern.find('}', i);
      if (end == std::string_view::npos) break;
      const std::string_view body = pattern.substr(i + 1, end - i - 1);
      const size_t comma = body.find(',');
      const std::string_view low = body.substr(0, comma);
      const std::string_view high =
          comma == std::string_view::npos ? std::string_view() : body.substr(comma + 1);
      auto digits = [](std::string_view text) {
        return text.find_first_not_of("0123456789") == std::string_view::npos;
      };
      if (!low.empty() && digits(low) && digits(high) && (low.size() > 4 || high.size() > 4)) {
        return pattern.substr(i, end - i + 1);
      }
    }
  }
  return std::nullopt;
}

bool IsIpLiteral(const std::string &text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

// 64 hex digits, optionally "AB:CD:..." with colons only between bytes.
bool ParseDigestHex(std::string_view text, std::vector<uint8_t> *out) {
  std::vector<uint8_t> bytes;
  size_t i = 0;
  while (i < text.size()) {
    if (i + 1 >= text.size()) return false;
    int high = HexDigitValue(text[i]);
    int low = HexDigitValue(text[i + 1]);
    if (high < 0 || low < 0) return false;
    bytes.push_back(static_cast<uint8_t>(high * 16 + low));
    i += 2;
    if (i < text.size() && text[i] == ':') {
      if (i + 1 == text.size()) return false;  // trailing colon
      ++i;
    }
  }
  if (bytes.size() != 32) return false;
  *out = std::move(bytes);
  return true;
}

std::optional<AddressBlock> ParseAddressBlock(std::string_view text) {
  const size_t slash = text.find('/');
  const std::string address(text.substr(0, slash));
  AddressBlock block;
  unsigned char bytes[16];
  if (inet_pton(AF_INET, address.c_str(), bytes) == 1) {
    block.address.assign(bytes, bytes + 4);
  } else if (inet_pton(AF_INET6, address.c_str(), bytes) == 1) {
    block.address.assign(bytes, bytes + 16);
  } else {
    return std::nullopt;
  }
  const uint64_t bits = block.address.size() * 8;
  uint64_t prefix = bits;
  if (slash != std::string_view::npos && !ParseUnsigned(text.substr(slash + 1), bits, &prefix)) {
    return std::nullopt;
  }
  block.prefix = static_cast<int>(prefix);
  return block;
}

bool InAddressBlock(const AddressBlock &block, std::string_view ip) {
  const std::optional<AddressBlock> peer = ParseAddressBlock(ip.substr(0, ip.find('/')));
  if (!peer || peer->address.size() != block.address.size()) return false;
  for (int bit = 0; bit < block.prefix; ++bit) {
    const uint8_t mask = static_cast<uint8_t>(0x80u >> (bit % 8));
    if ((peer->address[bit / 8] & mask) != (block.address[bit / 8] & mask)) return false;
  }
  return true;
}

}  // namespace certgate::policy_parse
