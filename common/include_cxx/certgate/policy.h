// Policy: the directive vocabulary of DESIGN §2, parsed, validated and merged.
#pragma once

#include <certgate/ossl_ptr.h>
#include <certgate/result.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace re2 {
class RE2;
}

namespace certgate {

enum class Mode { kOff, kOptional, kRequire };
// kClientAuth accepts anyExtendedKeyUsage in place of clientAuth (RFC 5280
// §4.2.1.12); kClientAuthListed (`require_eku clientAuth strict`) does not.
enum class EkuRequirement { kClientAuth, kClientAuthListed, kAny };
enum class RevocationMode { kOff, kCacheOnly, kSoftFail, kHardFail };
enum class RevocationScope { kLeaf, kChain };
enum class RevocationSource { kCrl, kOcsp };
enum class RejectBody { kText, kJson, kHtml, kOff };
enum class RejectAt { kRequest, kHandshake };
enum class LogFormat { kKv, kJson };

// `log kv|json [accepts]`.
struct LogSettings {
  LogFormat format = LogFormat::kKv;
  bool accepts = false;
};

// keyUsage bits as in X509_get_key_usage() (KU_DIGITAL_SIGNATURE, ...).
using KeyUsageMask = uint32_t;

// `ATTR=value` (all must be present) or `~regex` over the RFC 2253 subject.
// A regex is RE2 syntax, searched for anywhere in the subject (anchor it with
// ^ and $), case-sensitive, UTF-8; it is compiled when the key is set.
struct SubjectRule {
  std::string attribute;  // short name as OpenSSL prints it: CN, OU, O, ...
  int nid = 0;            // the attribute's OpenSSL NID
  std::string value;
  bool is_regex = false;
  std::string pattern;  // the regex source, for messages
  std::shared_ptr<const re2::RE2> regex;
};

// Memory one compiled `~regex` may use (RE2's max_mem): a pattern that needs
// more fails when it is set.
constexpr int64_t kSubjectRegexMaxMem = int64_t{1} << 20;

enum class SanType { kDns, kEmail, kUri, kIp };
// `dns:*.example.com`, `uri:spiffe://prod/*`: `*` matches any run of characters.
struct SanRule {
  SanType type;
  std::string pattern;
};

// `sha256:<hex>` certificate fingerprint or `spki:<hex>` (sha256 of the SPKI).
struct Pin {
  enum class Kind { kCertSha256, kSpkiSha256 } kind;
  std::vector<uint8_t> digest;  // 32 bytes
};

// Ed25519 and Ed448 keys have one fixed strength and are always accepted; DSA
// keys only when named (dsa=N), and any other key type never.
struct MinKey {
  int rsa_bits = 2048;
  int ec_bits = 256;
  int dsa_bits = 0;  // 0: DSA keys are refused
};

// Certificates loaded from a PEM file (trusted_issuers), kept with their path.
struct CertList {
  std::string path;
  std::vector<std::shared_ptr<X509>> certs;
};

// `forwarded_cert escaped|xfcc [header=NAME]`: where a trusted proxy puts the
// client certificate. kEscapedPem: URL-encoded PEM, as nginx's
// $ssl_client_escaped_cert (the chain may follow the leaf); kXfcc: Envoy's
// x-forwarded-client-cert element with Cert= (and Chain=).
struct ForwardedCert {
  enum class Format { kOff, kEscapedPem, kXfcc } format = Format::kOff;
  std::string header;  // as configured; compared case-insensitively
};

// certgate_shared_cache: a Redis shared by a fleet of servers, so that each
// CRL version and OCSP answer is fetched once fleet-wide (the fetch thread
// only; every blob read from it is verified as a fetched one). Off when
// `host` is empty (`off`, or not set).
struct SharedCacheSettings {
  std::string host;
  int port = 6379;
  int db = 0;
  std::string user, password;  // AUTH [user] password when password is set
  std::string prefix = "certgate:";

  bool enabled() const { return !host.empty(); }
  // redis://host:port/db without the credentials: for logs and the status page.
  std::string Display() const {
    const bool ipv6 = host.find(':') != std::string::npos;
    return "redis://" + (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + "/" +
           std::to_string(db);
  }
};

// Where the shared revocation cache lives when certgate_cache is not set.
constexpr const char *kDefaultCacheDir = "/var/cache/certgate";

// Every field is unset (nullopt) until its key is set or inherited; the accessors
// below give the effective value with the documented default.
struct Policy {
  std::optional<Mode> mode;
  std::optional<CertList> trusted_issuers;
  std::optional<EkuRequirement> require_eku;
  std::optional<KeyUsageMask> require_key_usage;  // 0 = off
  std::optional<std::vector<SubjectRule>> subject;
  std::optional<std::vector<SanRule>> san;
  std::optional<std::vector<Pin>> pin;
  std::optional<std::vector<Pin>> deny;
  std::optional<MinKey> min_key;
  std::optional<std::vector<std::string>> deny_signature;  // digest names: sha1, md5
  std::optional<int> max_depth;
  std::optional<std::chrono::seconds> clock_skew;
  // RFC 5280 structure, key and CRL checks OpenSSL 3.0 leaves out (strict_checks.h).
  std::optional<bool> strict;
  std::optional<std::chrono::seconds> expiry_warning;
  std::optional<RevocationMode> revocation;
  std::optional<RevocationScope> revocation_scope;
  std::optional<std::vector<RevocationSource>> revocation_sources;
  std::optional<std::vector<std::string>> crl;  // files or directories
  std::optional<std::chrono::milliseconds> revocation_wait;
  std::optional<std::chrono::seconds> max_stale;
  std::optional<std::chrono::milliseconds> fetch_timeout;
  std::optional<uint64_t> fetch_max_size;
  std::optional<std::string> fetch_proxy;  // "" = off (set, so not inherited)
  std::optional<std::vector<std::string>> fetch_allow;
  // Issue 11 §3: a missing intermediate fetched from the AIA caIssuers URL of a
  // certificate the client sent. Only with fetch_allow (CheckCombination).
  std::optional<bool> fetch_issuers;
  std::optional<std::vector<std::string>> ldap_server;      // "host[:port]", in order
  std::optional<std::vector<std::string>> trusted_proxies;  // addresses, CIDR blocks
  std::optional<ForwardedCert> forwarded_cert;
  std::optional<SharedCacheSettings> shared_cache;
  std::optional<std::string> cache;
  std::optional<int> reject_status;
  std::optional<RejectBody> reject_body;
  std::optional<bool> reject_detail;
  std::optional<bool> reject_header;
  std::optional<RejectAt> reject_at;
  std::optional<LogSettings> log;  // both parts set together (`log json`: no accepts)
  std::optional<bool> status;

  // Parses and validates one key (any spelling, see certgate.h) and its
  // arguments. The error names the key and the bad value.
  Status Set(std::string_view key, const std::vector<std::string> &args);

  // Fills every unset field from `parent`.
  void InheritFrom(const Policy &parent);

  // Rules across keys, checked once a policy is complete (after inheritance,
  // a policy file, the CLI's --set): fetch_issuers on needs fetch_allow, as the
  // URL comes from a certificate not yet verified. The error names both keys.
  Status CheckCombination() const;

  // Reads `key value...;` lines (# comments); errors name file:line.
  // Relative trusted_issuers/crl paths are taken from the file's directory. On
  // error the policy is left unchanged.
  Status LoadFile(const std::string &path);

  // Effective values: the one place each default is written.
  Mode EffectiveMode() const { return mode.value_or(Mode::kOff); }
  EkuRequirement EffectiveEku() const { return require_eku.value_or(EkuRequirement::kClientAuth); }
  KeyUsageMask EffectiveKeyUsage() const;
  MinKey EffectiveMinKey() const { return min_key.value_or(MinKey{}); }
  const std::vector<std::string> &EffectiveDenySignature() const;
  int EffectiveMaxDepth() const { return max_depth.value_or(5); }
  std::chrono::seconds EffectiveClockSkew() const {
    return clock_skew.value_or(std::chrono::seconds(60));
  }
  bool EffectiveStrict() const { return strict.value_or(true); }
  std::chrono::seconds EffectiveExpiryWarning() const {
    return expiry_warning.value_or(std::chrono::seconds(14 * 86400));
  }
  RevocationMode EffectiveRevocation() const { return revocation.value_or(RevocationMode::kOff); }
  RevocationScope EffectiveRevocationScope() const {
    return revocation_scope.value_or(RevocationScope::kChain);
  }
  const std::vector<RevocationSource> &EffectiveRevocationSources() const;
  std::chrono::milliseconds EffectiveRevocationWait() const {
    return revocation_wait.value_or(std::chrono::milliseconds(2000));
  }
  std::chrono::seconds EffectiveMaxStale() const {
    return max_stale.value_or(std::chrono::seconds(3600));
  }
  bool EffectiveFetchIssuers() const { return fetch_issuers.value_or(false); }
  const char *EffectiveCacheDir() const { return cache ? cache->c_str() : kDefaultCacheDir; }
  // A refusal's status; an internal error is always kInternalErrorStatus.
  int EffectiveRejectStatus() const { return reject_status.value_or(403); }
  static constexpr int kInternalErrorStatus = 500;
  bool EffectiveStatusPage() const { return status.value_or(false); }
  RejectBody EffectiveRejectBody() const { return reject_body.value_or(RejectBody::kText); }
  bool EffectiveRejectDetail() const { return reject_detail.value_or(false); }
  // Off by default: the header tells any client why it was refused.
  bool EffectiveRejectHeader() const { return reject_header.value_or(false); }
  RejectAt EffectiveRejectAt() const { return reject_at.value_or(RejectAt::kRequest); }
  LogFormat EffectiveLogFormat() const { return log.value_or(LogSettings{}).format; }
  bool EffectiveLogAccepts() const { return log.value_or(LogSettings{}).accepts; }
};

// The canonical (bare, lowercase) key for any spelling: "certgate_subject",
// "CertGateSubject", "subject" -> "subject"; "certgate"/"CertGate" -> "certgate".
// Returns "" for a key that is not in PolicyKeys().
std::string CanonicalKey(std::string_view key);

// How a server resolves a relative value of a canonical key: CG_KEY_PATH_*
// (CERTGATE_KEYS in certgate.h); CG_KEY_PATH_NONE for an unknown key.
int KeyPathKind(std::string_view canonical);

// Every canonical key, in DESIGN §2 order (for adapters and docs).
const std::vector<std::string_view> &PolicyKeys();

}  // namespace certgate
