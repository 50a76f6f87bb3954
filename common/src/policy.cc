// Policy::Set and friends: one parser for every key of DESIGN §2, shared by the
// nginx, Apache and CLI front ends so they accept and reject exactly the same text.
#include <arpa/inet.h>
#include <certgate/cert_file.h>
#include <certgate/certgate.h>
#include <certgate/policy.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <re2/re2.h>
#include <strings.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

namespace certgate {
namespace {

using Args = std::vector<std::string>;

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

const Keywords<bool> kOnOff{{{"on", true}, {"off", false}}};

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

// ---- one parser per key: Set<CG_KEY_...>, named in CERTGATE_KEYS ----

template <cg_key K>
Status Set(Policy &p, const Errors &err, const Args &args);

template <>
Status Set<CG_KEY_MODE>(Policy &p, const Errors &err, const Args &args) {
  static const Keywords<Mode> kWords{
      {{"off", Mode::kOff}, {"optional", Mode::kOptional}, {"require", Mode::kRequire}}};
  return ParseKeyword(err, kWords, args[0], &p.mode);
}

template <>
Status Set<CG_KEY_TRUSTED_ISSUERS>(Policy &p, const Errors &err, const Args &args) {
  auto certs = ReadPemCertificates(args[0]);
  if (!certs.ok()) return err.Error(certs.status().message());
  p.trusted_issuers = CertList{args[0], std::move(certs).value()};
  return Status::Ok();
}

template <>
Status Set<CG_KEY_REQUIRE_EKU>(Policy &p, const Errors &err, const Args &args) {
  static const Keywords<EkuRequirement> kWords{
      {{"clientAuth", EkuRequirement::kClientAuth}, {"any", EkuRequirement::kAny}}};
  std::optional<EkuRequirement> eku;
  if (Status status = ParseKeyword(err, kWords, args[0], &eku); !status.ok()) return status;
  if (args.size() == 2) {
    if (*eku != EkuRequirement::kClientAuth || !EqualsIgnoreCase(args[1], "strict")) {
      return err.IsNot(args[0] + " " + args[1], "clientAuth strict");
    }
    eku = EkuRequirement::kClientAuthListed;
  }
  p.require_eku = eku;
  return Status::Ok();
}

template <>
Status Set<CG_KEY_REQUIRE_KEY_USAGE>(Policy &p, const Errors &err, const Args &args) {
  static const Keywords<KeyUsageMask> kWords{{{"digitalSignature", KU_DIGITAL_SIGNATURE},
                                              {"nonRepudiation", KU_NON_REPUDIATION},
                                              {"contentCommitment", KU_NON_REPUDIATION},
                                              {"keyEncipherment", KU_KEY_ENCIPHERMENT},
                                              {"dataEncipherment", KU_DATA_ENCIPHERMENT},
                                              {"keyAgreement", KU_KEY_AGREEMENT},
                                              {"keyCertSign", KU_KEY_CERT_SIGN},
                                              {"cRLSign", KU_CRL_SIGN},
                                              {"encipherOnly", KU_ENCIPHER_ONLY},
                                              {"decipherOnly", KU_DECIPHER_ONLY},
                                              {"off", 0}}};
  KeyUsageMask mask = 0;
  for (const std::string &arg : args) {
    std::optional<KeyUsageMask> bit = kWords.Find(arg);
    if (!bit) return err.IsNot(arg, kWords.OneOf());
    if (*bit == 0 && args.size() > 1) {
      return err.Error(Quote(arg) + " cannot be combined with other values");
    }
    mask |= *bit;
  }
  p.require_key_usage = mask;
  return Status::Ok();
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

template <>
Status Set<CG_KEY_SUBJECT>(Policy &p, const Errors &err, const Args &args) {
  std::vector<SubjectRule> rules;
  for (const std::string &arg : args) {
    SubjectRule rule;
    if (!arg.empty() && arg[0] == '~') {
      rule.is_regex = true;
      rule.pattern = arg.substr(1);
      if (rule.pattern.empty()) return err.IsNot(arg, "ATTR=value or ~regex");
      // RE2 matches in time linear in the subject without recursion, so a
      // client's 60 KB subject cannot exhaust a worker's stack, and its
      // compiler refuses what std::regex would not survive (nesting, huge
      // repeats) here, at configuration time.
      if (const auto repeat = UnparsableRepeat(rule.pattern)) {
        return err.IsNot(
            arg, "a valid regular expression: invalid repetition size: " + Shorten(*repeat));
      }
      RE2::Options options;
      options.set_log_errors(false);  // the error goes into our message instead
      options.set_max_mem(kSubjectRegexMaxMem);
      auto regex = std::make_shared<const RE2>(rule.pattern, options);
      if (!regex->ok()) {
        return err.IsNot(arg, "a valid regular expression: " + Shorten(regex->error()));
      }
      rule.regex = std::move(regex);
    } else {
      size_t eq = arg.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == arg.size()) {
        return err.IsNot(arg, "ATTR=value or ~regex");
      }
      int nid = DnAttributeNid(arg.substr(0, eq));
      if (nid == NID_undef) return err.IsNot(arg, "a known DN attribute (CN, OU, O, ...)");
      rule.attribute = OBJ_nid2sn(nid);
      rule.nid = nid;
      rule.value = arg.substr(eq + 1);
    }
    rules.push_back(std::move(rule));
  }
  p.subject = std::move(rules);
  return Status::Ok();
}

bool IsIpLiteral(const std::string &text) {
  unsigned char buf[16];
  return inet_pton(AF_INET, text.c_str(), buf) == 1 || inet_pton(AF_INET6, text.c_str(), buf) == 1;
}

template <>
Status Set<CG_KEY_SAN>(Policy &p, const Errors &err, const Args &args) {
  static const std::pair<const char *, SanType> kPrefixes[] = {{"dns:", SanType::kDns},
                                                               {"email:", SanType::kEmail},
                                                               {"uri:", SanType::kUri},
                                                               {"ip:", SanType::kIp}};
  std::vector<SanRule> rules;
  for (const std::string &arg : args) {
    std::optional<SanRule> rule;
    for (const auto &[prefix, type] : kPrefixes) {
      if (StartsWithIgnoreCase(arg, prefix)) {
        rule = SanRule{type, arg.substr(strlen(prefix))};
        break;
      }
    }
    if (!rule || rule->pattern.empty()) {
      return err.IsNot(arg, "dns:, email:, uri: or ip: followed by a pattern");
    }
    if (rule->type == SanType::kIp && rule->pattern != "*" && !IsIpLiteral(rule->pattern)) {
      return err.IsNot(arg, "ip: followed by an IPv4 or IPv6 address or *");
    }
    rules.push_back(std::move(*rule));
  }
  p.san = std::move(rules);
  return Status::Ok();
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// 64 hex digits, optionally "AB:CD:..." with colons only between bytes.
bool ParseDigestHex(std::string_view text, std::vector<uint8_t> *out) {
  std::vector<uint8_t> bytes;
  size_t i = 0;
  while (i < text.size()) {
    if (i + 1 >= text.size()) return false;
    int high = HexValue(text[i]);
    int low = HexValue(text[i + 1]);
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

Status ParsePins(const Errors &err, const Args &args, std::optional<std::vector<Pin>> *out) {
  std::vector<Pin> pins;
  for (const std::string &arg : args) {
    Pin pin;
    std::string_view hex;
    if (StartsWithIgnoreCase(arg, "sha256:")) {
      pin.kind = Pin::Kind::kCertSha256;
      hex = std::string_view(arg).substr(7);
    } else if (StartsWithIgnoreCase(arg, "spki:")) {
      pin.kind = Pin::Kind::kSpkiSha256;
      hex = std::string_view(arg).substr(5);
    } else {
      return err.IsNot(arg, "sha256:<64 hex digits> or spki:<64 hex digits>");
    }
    if (!ParseDigestHex(hex, &pin.digest)) {
      return err.IsNot(arg, "sha256:<64 hex digits> or spki:<64 hex digits>");
    }
    pins.push_back(std::move(pin));
  }
  *out = std::move(pins);
  return Status::Ok();
}

template <>
Status Set<CG_KEY_PIN>(Policy &p, const Errors &err, const Args &args) {
  return ParsePins(err, args, &p.pin);
}
template <>
Status Set<CG_KEY_DENY>(Policy &p, const Errors &err, const Args &args) {
  return ParsePins(err, args, &p.deny);
}

template <>
Status Set<CG_KEY_MIN_KEY>(Policy &p, const Errors &err, const Args &args) {
  MinKey min_key;
  bool seen_rsa = false;
  bool seen_ec = false;
  bool seen_dsa = false;
  for (const std::string &arg : args) {
    size_t eq = arg.find('=');
    std::string name = Lower(arg.substr(0, eq));
    bool *seen = name == "rsa"   ? &seen_rsa
                 : name == "ec"  ? &seen_ec
                 : name == "dsa" ? &seen_dsa
                                 : nullptr;
    if (eq == std::string::npos || seen == nullptr) return err.IsNot(arg, "rsa=N, ec=N or dsa=N");
    if (*seen) return err.Error(Quote(arg) + " repeats " + name);
    *seen = true;
    uint64_t bits = 0;
    if (!ParseUnsigned(std::string_view(arg).substr(eq + 1), 65536, &bits)) {
      return err.IsNot(arg, "a number");
    }
    if (bits == 0) return err.IsNot(arg, "a positive number");
    (name == "rsa"  ? min_key.rsa_bits
     : name == "ec" ? min_key.ec_bits
                    : min_key.dsa_bits) = static_cast<int>(bits);
  }
  p.min_key = min_key;
  return Status::Ok();
}

template <>
Status Set<CG_KEY_DENY_SIGNATURE>(Policy &p, const Errors &err, const Args &args) {
  static const Keywords<const char *> kWords{{{"md5", "md5"},
                                              {"sha1", "sha1"},
                                              {"sha224", "sha224"},
                                              {"sha256", "sha256"},
                                              {"sha384", "sha384"},
                                              {"sha512", "sha512"}}};
  std::vector<std::string> digests;
  if (args.size() == 1 && EqualsIgnoreCase(args[0], "off")) {
    p.deny_signature = std::move(digests);
    return Status::Ok();
  }
  for (const std::string &arg : args) {
    std::optional<const char *> digest = kWords.Find(arg);
    if (!digest) return err.IsNot(arg, kWords.OneOf() + " (or off alone)");
    if (std::find(digests.begin(), digests.end(), *digest) == digests.end()) {
      digests.emplace_back(*digest);
    }
  }
  p.deny_signature = std::move(digests);
  return Status::Ok();
}

template <>
Status Set<CG_KEY_MAX_DEPTH>(Policy &p, const Errors &err, const Args &args) {
  return ParseIntInRange(err, args[0], 1, 32, &p.max_depth);
}

template <>
Status Set<CG_KEY_CLOCK_SKEW>(Policy &p, const Errors &err, const Args &args) {
  return ParseSeconds(err, args[0], kClockSkewRange, &p.clock_skew);
}
template <>
Status Set<CG_KEY_EXPIRY_WARNING>(Policy &p, const Errors &err, const Args &args) {
  return ParseSeconds(err, args[0], kExpiryWarningRange, &p.expiry_warning);
}
template <>
Status Set<CG_KEY_MAX_STALE>(Policy &p, const Errors &err, const Args &args) {
  return ParseSeconds(err, args[0], kMaxStaleRange, &p.max_stale);
}
template <>
Status Set<CG_KEY_REVOCATION_WAIT>(Policy &p, const Errors &err, const Args &args) {
  return ParseMillis(err, args[0], kRevocationWaitRange, &p.revocation_wait);
}
template <>
Status Set<CG_KEY_FETCH_TIMEOUT>(Policy &p, const Errors &err, const Args &args) {
  return ParseMillis(err, args[0], kFetchTimeoutRange, &p.fetch_timeout);
}

template <>
Status Set<CG_KEY_REVOCATION>(Policy &p, const Errors &err, const Args &args) {
  static const Keywords<RevocationMode> kWords{{{"off", RevocationMode::kOff},
                                                {"cache_only", RevocationMode::kCacheOnly},
                                                {"soft_fail", RevocationMode::kSoftFail},
                                                {"hard_fail", RevocationMode::kHardFail}}};
  return ParseKeyword(err, kWords, args[0], &p.revocation);
}

template <>
Status Set<CG_KEY_REVOCATION_SCOPE>(Policy &p, const Errors &err, const Args &args) {
  static const Keywords<RevocationScope> kWords{
      {{"leaf", RevocationScope::kLeaf}, {"chain", RevocationScope::kChain}}};
  return ParseKeyword(err, kWords, args[0], &p.revocation_scope);
}

template <>
Status Set<CG_KEY_REVOCATION_SOURCES>(Policy &p, const Errors &err, const Args &args) {
  static const Keywords<RevocationSource> kWords{
      {{"crl", RevocationSource::kCrl}, {"ocsp", RevocationSource::kOcsp}}};
  std::vector<RevocationSource> sources;
  for (const std::string &arg : args) {
    std::optional<RevocationSource> source = kWords.Find(arg);
    if (!source) return err.IsNot(arg, kWords.OneOf());
    if (std::find(sources.begin(), sources.end(), *source) != sources.end()) {
      return err.Error(Quote(arg) + " is given twice");
    }
    sources.push_back(*source);
  }
  p.revocation_sources = std::move(sources);
  return Status::Ok();
}

template <>
Status Set<CG_KEY_CRL>(Policy &p, const Errors &err, const Args &args) {
  std::vector<std::string> paths;
  for (const std::string &arg : args) {
    struct stat st {};
    if (stat(arg.c_str(), &st) != 0) {
      return err.Error("cannot read " + Quote(arg) + ": " + strerror(errno));
    }
    if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
      return err.IsNot(arg, "a file or directory");
    }
    paths.push_back(arg);
  }
  p.crl = std::move(paths);
  return Status::Ok();
}

template <>
Status Set<CG_KEY_FETCH_MAX_SIZE>(Policy &p, const Errors &err, const Args &args) {
  uint64_t size = 0;
  if (!ParseSize(args[0], &size)) return err.IsNot(args[0], "a size (like 512k, 32m, 1g)");
  if (size == 0) return err.IsNot(args[0], "a positive size");
  p.fetch_max_size = size;
  return Status::Ok();
}

// An empty fetch_proxy means "off": set, so a parent's proxy is not inherited.
template <>
Status Set<CG_KEY_FETCH_PROXY>(Policy &p, const Errors &err, const Args &args) {
  const std::string &arg = args[0];
  if (EqualsIgnoreCase(arg, "off")) {
    p.fetch_proxy = std::string();
    return Status::Ok();
  }
  size_t host_start = 0;
  if (StartsWithIgnoreCase(arg, "http://")) {
    host_start = 7;
  } else if (StartsWithIgnoreCase(arg, "https://")) {
    host_start = 8;
  }
  bool has_host = host_start != 0 && host_start < arg.size() && arg[host_start] != '/' &&
                  arg[host_start] != ':';
  bool has_space = arg.find_first_of(" \t\r\n") != std::string::npos;
  if (!has_host || has_space) return err.IsNot(arg, "an http:// or https:// URL, or off");
  p.fetch_proxy = arg;
  return Status::Ok();
}

bool IsHostPattern(const std::string &pattern) {
  if (pattern.empty()) return false;
  if (pattern.find(':') != std::string::npos) return IsIpLiteral(pattern);  // IPv6 only
  for (char c : pattern) {
    bool ok =
        isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '*' || c == '_';
    if (!ok) return false;
  }
  return true;
}

template <>
Status Set<CG_KEY_FETCH_ALLOW>(Policy &p, const Errors &err, const Args &args) {
  std::vector<std::string> hosts;
  for (const std::string &arg : args) {
    if (!IsHostPattern(arg)) {
      return err.IsNot(arg, "a host pattern (like *.example.com, pki.example, 192.0.2.1)");
    }
    hosts.push_back(Lower(arg));  // host names compare case-insensitively
  }
  p.fetch_allow = std::move(hosts);
  return Status::Ok();
}

template <>
Status Set<CG_KEY_CACHE>(Policy &p, const Errors &err, const Args &args) {
  if (args[0].empty() || args[0][0] != '/') return err.IsNot(args[0], "an absolute path");
  p.cache = args[0];
  return Status::Ok();
}

template <>
Status Set<CG_KEY_REJECT_STATUS>(Policy &p, const Errors &err, const Args &args) {
  return ParseIntInRange(err, args[0], 400, 599, &p.reject_status);
}

template <>
Status Set<CG_KEY_REJECT_BODY>(Policy &p, const Errors &err, const Args &args) {
  static const Keywords<RejectBody> kWords{{{"text", RejectBody::kText},
                                            {"json", RejectBody::kJson},
                                            {"html", RejectBody::kHtml},
                                            {"off", RejectBody::kOff}}};
  return ParseKeyword(err, kWords, args[0], &p.reject_body);
}

template <>
Status Set<CG_KEY_STRICT>(Policy &p, const Errors &err, const Args &args) {
  return ParseKeyword(err, kOnOff, args[0], &p.strict);
}

template <>
Status Set<CG_KEY_REJECT_DETAIL>(Policy &p, const Errors &err, const Args &args) {
  return ParseKeyword(err, kOnOff, args[0], &p.reject_detail);
}

template <>
Status Set<CG_KEY_REJECT_AT>(Policy &p, const Errors &err, const Args &args) {
  static const Keywords<RejectAt> kWords{
      {{"request", RejectAt::kRequest}, {"handshake", RejectAt::kHandshake}}};
  return ParseKeyword(err, kWords, args[0], &p.reject_at);
}

// Sets both fields, so `log json` in a child does not inherit a parent's `accepts`.
template <>
Status Set<CG_KEY_LOG>(Policy &p, const Errors &err, const Args &args) {
  static const Keywords<LogFormat> kFormats{{{"kv", LogFormat::kKv}, {"json", LogFormat::kJson}}};
  std::optional<LogFormat> format;
  bool accepts = false;
  for (const std::string &arg : args) {
    if (EqualsIgnoreCase(arg, "accepts")) {
      if (accepts) return err.Error(Quote(arg) + " is given twice");
      accepts = true;
      continue;
    }
    std::optional<LogFormat> value = kFormats.Find(arg);
    if (!value) return err.IsNot(arg, "one of kv, json, accepts");
    if (format) return err.Error(Quote(arg) + ": only one of kv, json may be given");
    format = value;
  }
  p.log = LogSettings{format.value_or(LogFormat::kKv), accepts};
  return Status::Ok();
}

template <>
Status Set<CG_KEY_STATUS>(Policy &p, const Errors &err, const Args &args) {
  return ParseKeyword(err, kOnOff, args[0], &p.status);
}

using Setter = Status (*)(Policy &, const Errors &, const Args &);

struct KeySpec {
  const char *name;
  size_t min_args;
  size_t max_args;
  int path;  // CG_KEY_PATH_*
  Setter set;
};

constexpr size_t kMany = CG_KEY_MANY;

// Generated from CERTGATE_KEYS (DESIGN §2 order); PolicyKeys() and
// CanonicalKey() are derived from it.
const KeySpec kKeys[] = {
#define CG_KEY_SPEC(id, key, nginx, httpd, field, contexts, min_args, max_args, path, help) \
  {key, min_args, max_args, path, Set<CG_KEY_##id>},
    CERTGATE_KEYS(CG_KEY_SPEC)
#undef CG_KEY_SPEC
};
static_assert(sizeof(kKeys) / sizeof(kKeys[0]) == CG_KEY_COUNT, "one row per cg_key");

const KeySpec *FindKey(const std::string &canonical) {
  for (const KeySpec &spec : kKeys) {
    if (canonical == spec.name) return &spec;
  }
  return nullptr;
}

// Lowercase without underscores: the form every spelling of a key reduces to.
std::string Squash(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '_') out += static_cast<char>(tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string CountValues(size_t n) {
  return n == 1 ? "one value" : n == 2 ? "two values" : std::to_string(n) + " values";
}

}  // namespace

std::string CanonicalKey(std::string_view key) {
  std::string squashed = Squash(key);
  if (squashed == "certgate") return "certgate";
  // "certgate_subject", "CertGateSubject", "CERTGATE_SUBJECT" all squash to
  // "certgatesubject"; the bare "subject" has no prefix to strip.
  std::string_view rest = squashed;
  if (rest.substr(0, 8) == "certgate") rest.remove_prefix(8);
  for (const KeySpec &spec : kKeys) {
    if (spec.name != std::string_view("certgate") && Squash(spec.name) == rest) return spec.name;
  }
  return std::string();
}

int KeyPathKind(std::string_view canonical) {
  const KeySpec *spec = FindKey(std::string(canonical));
  return spec != nullptr ? spec->path : CG_KEY_PATH_NONE;
}

const std::vector<std::string_view> &PolicyKeys() {
  static const std::vector<std::string_view> kNames = [] {
    std::vector<std::string_view> names;
    for (const KeySpec &spec : kKeys) names.emplace_back(spec.name);
    return names;
  }();
  return kNames;
}

Status Policy::Set(std::string_view key, const std::vector<std::string> &args) {
  std::string canonical = CanonicalKey(key);
  const KeySpec *spec = FindKey(canonical);
  if (spec == nullptr) return Status::Error("unknown key " + Quote(key));
  Errors err(canonical);
  if (args.size() < spec->min_args || args.size() > spec->max_args) {
    std::string want =
        spec->max_args == kMany            ? "at least " + CountValues(spec->min_args)
        : spec->min_args == spec->max_args ? CountValues(spec->min_args)
        : spec->min_args + 1 == spec->max_args
            ? CountValues(spec->min_args) + " or " + CountValues(spec->max_args)
            : std::to_string(spec->min_args) + " to " + std::to_string(spec->max_args) + " values";
    return err.Error("takes " + want + ", got " + std::to_string(args.size()));
  }
  return spec->set(*this, err, args);
}

void Policy::InheritFrom(const Policy &parent) {
  auto inherit = [](auto &field, const auto &from) {
    if (!field.has_value()) field = from;
  };
#define CG_KEY_INHERIT(id, key, nginx, httpd, field, contexts, min_args, max_args, path, help) \
  inherit(field, parent.field);
  CERTGATE_KEYS(CG_KEY_INHERIT)
#undef CG_KEY_INHERIT
}

KeyUsageMask Policy::EffectiveKeyUsage() const {
  return require_key_usage.value_or(KU_DIGITAL_SIGNATURE);
}

const std::vector<RevocationSource> &Policy::EffectiveRevocationSources() const {
  static const std::vector<RevocationSource> kDefault = {RevocationSource::kCrl,
                                                         RevocationSource::kOcsp};
  return revocation_sources ? *revocation_sources : kDefault;
}

const std::vector<std::string> &Policy::EffectiveDenySignature() const {
  static const std::vector<std::string> kDefault = {"md5", "sha1"};
  return deny_signature ? *deny_signature : kDefault;
}

}  // namespace certgate
