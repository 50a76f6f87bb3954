// One setter per key of CERTGATE_KEYS: Set<CG_KEY_...> parses and validates
// the key's values into its Policy field (the table itself is in policy.cc).
#include <certgate/cert_file.h>
#include <openssl/x509v3.h>
#include <re2/re2.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "policy_parse.h"

namespace certgate::policy_parse {
namespace {

const Keywords<bool> kOnOff{{{"on", true}, {"off", false}}};

}  // namespace

// ---- one parser per key: Set<CG_KEY_...>, named in CERTGATE_KEYS ----

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

namespace {

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

}  // namespace

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

namespace {

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

}  // namespace

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
Status Set<CG_KEY_TRUSTED_PROXIES>(Policy &p, const Errors &err, const Args &args) {
  std::vector<std::string> blocks;
  for (const std::string &arg : args) {
    if (!ParseAddressBlock(arg)) {
      return err.IsNot(arg,
                       "an address or CIDR block (like 192.0.2.10, 10.0.0.0/8, 2001:db8::/32)");
    }
    blocks.push_back(Lower(arg));
  }
  p.trusted_proxies = std::move(blocks);
  return Status::Ok();
}

namespace {

// %XX in the user or password of a redis:// URL; false on a bad escape.
bool PercentDecode(std::string_view in, std::string *out) {
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      *out += in[i];
      continue;
    }
    if (i + 2 >= in.size()) return false;  // "%" or "%A" at the end
    const int high = hex(in[i + 1]), low = hex(in[i + 2]);
    if (high < 0 || low < 0) return false;
    *out += static_cast<char>(high * 16 + low);
    i += 2;
  }
  return true;
}

// redis://[user:password@]host[:port][/db]. The error never repeats the
// password: it names the URL as redis://host... only.
Status ParseRedisUrl(const Errors &err, const std::string &url, SharedCacheSettings *out) {
  if (StartsWithIgnoreCase(url, "rediss://")) {
    return err.Error(
        "rediss:// (Redis over TLS) is not supported: Debian 12's hiredis (0.14) has no TLS; "
        "reach Redis over a private network or a local TLS tunnel (stunnel, spiped) with "
        "redis://");
  }
  if (!StartsWithIgnoreCase(url, "redis://")) {
    return err.Error("the shared cache is not a redis://[user:password@]host:port/db URL, or off");
  }
  std::string_view rest = std::string_view(url).substr(8);
  const size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  std::string_view path = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  SharedCacheSettings settings;
  const size_t at = authority.rfind('@');
  if (at != std::string_view::npos) {
    std::string_view userinfo = authority.substr(0, at);
    authority = authority.substr(at + 1);
    const size_t colon = userinfo.find(':');
    if (colon == std::string_view::npos ||
        !PercentDecode(userinfo.substr(0, colon), &settings.user) ||
        !PercentDecode(userinfo.substr(colon + 1), &settings.password) ||
        settings.password.empty()) {
      return err.Error("the credentials of the redis:// URL are not user:password (or :password)");
    }
  }
  std::string_view port;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return err.Error("the redis:// host is not closed by ]");
    settings.host = std::string(authority.substr(1, close - 1));
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') return err.Error("junk after the redis:// host");
    if (!after.empty()) port = after.substr(1);
  } else {
    const size_t colon = authority.find(':');
    settings.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  for (char c : settings.host) {
    const bool ok =
        isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' || c == ':';
    if (!ok) settings.host.clear();
  }
  if (settings.host.empty()) return err.Error("the redis:// URL names no valid host");
  uint64_t number = 0;
  if (!port.empty()) {
    if (!ParseUnsigned(port, 65535, &number) || number == 0) {
      return err.Error("the port of " + settings.Display() + " is not 1-65535");
    }
    settings.port = static_cast<int>(number);
  }
  if (!path.empty()) {
    if (!ParseUnsigned(path, 100000, &number)) {
      return err.Error("the database of the redis:// URL is not a number (redis://host:port/0)");
    }
    settings.db = static_cast<int>(number);
  }
  *out = std::move(settings);
  return Status::Ok();
}

}  // namespace

// `redis://... [prefix=P]` or `off` (set, so a parent's is not inherited).
template <>
Status Set<CG_KEY_SHARED_CACHE>(Policy &p, const Errors &err, const Args &args) {
  if (EqualsIgnoreCase(args[0], "off")) {
    if (args.size() > 1) return err.Error("off takes no prefix");
    p.shared_cache = SharedCacheSettings{};
    return Status::Ok();
  }
  SharedCacheSettings settings;
  if (Status parsed = ParseRedisUrl(err, args[0], &settings); !parsed.ok()) return parsed;
  if (args.size() == 2) {
    const std::string &arg = args[1];
    if (!StartsWithIgnoreCase(arg, "prefix=")) return err.IsNot(arg, "prefix=<key prefix>");
    std::string prefix = arg.substr(7);
    const bool printable = std::all_of(prefix.begin(), prefix.end(), [](char c) {
      return c > ' ' && c < 127 && c != '"' && c != '\\';
    });
    if (prefix.empty() || prefix.size() > 64 || !printable) {
      return err.IsNot(arg, "prefix= and 1-64 printable characters without spaces");
    }
    settings.prefix = std::move(prefix);
  }
  p.shared_cache = std::move(settings);
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
Status Set<CG_KEY_REJECT_HEADER>(Policy &p, const Errors &err, const Args &args) {
  return ParseKeyword(err, kOnOff, args[0], &p.reject_header);
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

}  // namespace certgate::policy_parse
