/*
 * certgate.h: the C API of the certgate core, and the only header the nginx and
 * Apache adapters include.
 *
 * Rules of the boundary: opaque handles, plain enums, strings as pointer plus
 * length; no C++ exception crosses it; every call leaves the OpenSSL error queue
 * as it found it.
 */
#ifndef CERTGATE_CERTGATE_H
#define CERTGATE_CERTGATE_H

#include <openssl/types.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* File scope, so C sees one type in every prototype below. */
struct stack_st_X509;

#if defined(__GNUC__)
#define CG_API __attribute__((visibility("default")))
#else
#define CG_API
#endif

/*
 * The reason taxonomy: the product's public API. Rows are in precedence order:
 * when one chain has several defects, the earliest row wins (then the lowest
 * depth), so the same chain always gets the same reason.
 *
 * X(ID, code, http_status, substatus, meaning, hint)
 */
#define CERTGATE_REASONS(X)                                                                    \
  X(NONE, "none", 200, "", "certificate accepted", "")                                         \
  X(INTERNAL_ERROR, "internal_error", 500, "500", "certgate could not decide",                 \
    "see the preceding error-log lines; certgate never allows when it cannot decide")          \
  X(NO_CERT, "no_cert", 403, "403.7", "no client certificate was presented",                   \
    "install a client certificate in the client and make sure it is sent for this site")       \
  X(MALFORMED, "malformed", 403, "403.16",                                                     \
    "a certificate cannot be parsed or has invalid encoding or extensions",                    \
    "re-issue the certificate; the client sent a certificate that does not decode")            \
  X(CHAIN_TOO_LONG, "chain_too_long", 403, "403.16",                                           \
    "the chain is deeper than max_depth (self-issued CA certificates, as in a key rollover, "  \
    "do not count)",                                                                           \
    "raise certgate_max_depth or issue the client certificate from a shorter chain")           \
  X(UNTRUSTED_ISSUER, "untrusted_issuer", 403, "403.16",                                       \
    "the chain ends in a self-signed certificate that is not trusted",                         \
    "add the issuing root CA to the server's trusted client CAs, or issue the client "         \
    "certificate from a CA the server trusts")                                                 \
  X(CHAIN_INCOMPLETE, "chain_incomplete", 403, "403.16",                                       \
    "no certificate that could have issued the top of the chain was sent or is known here",    \
    "have the client send its intermediate CA certificate, or add the intermediate to the "    \
    "server's trusted client CAs")                                                             \
  X(BAD_SIGNATURE, "bad_signature", 403, "403.16", "a signature in the chain does not verify", \
    "the certificate was altered or was not issued by the CA it names; re-issue it")           \
  X(INVALID_CA, "invalid_ca", 403, "403.16",                                                   \
    "an issuing certificate is not a valid CA (basicConstraints, pathLen, name constraints)",  \
    "issue the client certificate from a certificate marked CA:TRUE with a fitting pathLen")   \
  X(ISSUER_NOT_ALLOWED, "issuer_not_allowed", 403, "403.16",                                   \
    "the chain is trusted, but its issuer is not in this location's trusted_issuers",          \
    "use a certificate from one of the CAs in certgate_trusted_issuers, or add this issuer")   \
  X(EXPIRED, "expired", 403, "403.17", "a certificate in the chain is past notAfter",          \
    "renew the certificate named by depth")                                                    \
  X(NOT_YET_VALID, "not_yet_valid", 403, "403.17",                                             \
    "a certificate in the chain is before notBefore",                                          \
    "check the client's and the server's clocks, or wait until the certificate is valid")      \
  X(REVOKED, "revoked", 403, "403.13", "a CRL or OCSP answer says the certificate is revoked", \
    "the issuing CA revoked this certificate; issue a new one")                                \
  X(REVOCATION_UNAVAILABLE, "revocation_unavailable", 403, "403.13",                           \
    "the revocation status could not be determined",                                           \
    "make the CRL/OCSP URLs reachable, preload a CRL with certgate_crl, or choose "            \
    "certgate_revocation soft_fail")                                                           \
  X(REVOCATION_STALE, "revocation_stale", 403, "403.13",                                       \
    "only revocation data older than nextUpdate + max_stale is available",                     \
    "make the CRL distribution point reachable or raise certgate_max_stale")                   \
  X(WRONG_PURPOSE, "wrong_purpose", 403, "403.16",                                             \
    "the leaf is not for client authentication: its extendedKeyUsage lacks clientAuth, a CA "  \
    "restricts it, or it is a CA certificate",                                                 \
    "issue the certificate with extendedKeyUsage clientAuth (and no CA restricting it)")       \
  X(KEY_USAGE, "key_usage", 403, "403.16", "keyUsage lacks what the policy requires",          \
    "issue the certificate with the keyUsage bits named in certgate_require_key_usage")        \
  X(WEAK_KEY, "weak_key", 403, "403.16", "a key is smaller than certgate_min_key",             \
    "issue the certificate with a larger key (RSA >= 2048 bits, EC >= 256 bits)")              \
  X(WEAK_SIGNATURE, "weak_signature", 403, "403.16",                                           \
    "a signature algorithm is in certgate_deny_signature",                                     \
    "re-issue the certificate with a SHA-256 (or stronger) signature")                         \
  X(PIN_MISMATCH, "pin_mismatch", 403, "403.12",                                               \
    "the certificate is not pinned here, or it is denied",                                     \
    "use a pinned certificate, or update certgate_pin / certgate_deny")                        \
  X(IDENTITY_MISMATCH, "identity_mismatch", 403, "403.12",                                     \
    "the subject or subjectAltName rules of this location are not met",                        \
    "use a certificate whose subject/SAN matches certgate_subject / certgate_san")             \
  X(CHAIN_TOO_COMPLEX, "chain_too_complex", 403, "403.16",                                     \
    "checking the chain's name constraints takes more comparisons (names x subtrees) than "    \
    "certgate makes",                                                                          \
    "issue the client certificate with fewer names, from CAs with fewer name constraints")     \
  X(TLS_HANDSHAKE, "tls_handshake", 403, "403.16",                                             \
    "the TLS handshake failed before a request could be made (no shared version or cipher, "   \
    "or the client aborted or closed it)",                                                     \
    "compare the client's TLS versions and ciphers with the server's; an alert such as "       \
    "unknown_ca from the client means it did not accept the server's certificate chain or "    \
    "its list of acceptable client CAs")

typedef enum {
#define CG_REASON_ENUM(id, code, status, substatus, meaning, hint) CG_REASON_##id,
  CERTGATE_REASONS(CG_REASON_ENUM)
#undef CG_REASON_ENUM
      CG_REASON_COUNT
} cg_reason;

typedef enum { CG_VERDICT_ALLOW = 0, CG_VERDICT_DENY = 1 } cg_verdict;

typedef enum { CG_OK = 0, CG_ERR_INVALID = -1, CG_ERR_INTERNAL = -2 } cg_status;

typedef enum { CG_LOG_KV = 0, CG_LOG_JSON = 1 } cg_log_format;

/* How details and hints name directives: certgate_max_stale (nginx, the
 * default) or CertGateMaxStale (httpd). Set once, when the module loads. */
typedef enum { CG_DIRECTIVES_NGINX = 0, CG_DIRECTIVES_HTTPD = 1 } cg_directive_style;
CG_API void cg_set_directive_style(cg_directive_style style);

/*
 * The directive vocabulary: one row per key. The core's key table and its
 * inheritance, both adapters' directive tables and docs/directives.md are
 * generated from it (certgate_log_level, nginx only, is the adapter's own).
 *
 * X(ID, key, nginx, httpd, field, contexts, min_args, max_args, path, help)
 *   key       the bare key, as in policy files and `certgate check --set`
 *   nginx     the nginx directive; httpd: the Apache directive
 *   field     the certgate::Policy member the key sets (C++ only)
 *   contexts  CG_KEY_CTX_* bits: where each server accepts the directive
 *   min_args, max_args  how many values (CG_KEY_MANY: no upper bound)
 *   path      CG_KEY_PATH_*: how a relative value is resolved by a server
 */
#define CG_KEY_CTX_NGX_MAIN 0x01u     /* nginx http{} */
#define CG_KEY_CTX_NGX_SRV 0x02u      /* nginx server{} */
#define CG_KEY_CTX_NGX_LOC 0x04u      /* nginx location{} */
#define CG_KEY_CTX_HTTPD_SERVER 0x10u /* httpd server config, <VirtualHost> */
#define CG_KEY_CTX_HTTPD_DIR 0x20u    /* httpd <Directory>, <Location>, <Files> */
#define CG_KEY_CTX_NGX_ANY (CG_KEY_CTX_NGX_MAIN | CG_KEY_CTX_NGX_SRV | CG_KEY_CTX_NGX_LOC)
#define CG_KEY_CTX_ANY (CG_KEY_CTX_NGX_ANY | CG_KEY_CTX_HTTPD_SERVER | CG_KEY_CTX_HTTPD_DIR)
/* httpd: server level only (the handshake knows the virtual host, not yet the
 * <Location>, and the cache is per server); nginx: any level, as it always was */
#define CG_KEY_CTX_SERVER (CG_KEY_CTX_NGX_ANY | CG_KEY_CTX_HTTPD_SERVER)
/* a page: nginx location, httpd <Location>/<Directory>/<Files> */
#define CG_KEY_CTX_PAGE (CG_KEY_CTX_NGX_LOC | CG_KEY_CTX_HTTPD_DIR)

#define CG_KEY_MANY ((size_t)-1)

/* A value that is not a path; a file the server reads (nginx: relative to the
 * configuration directory, like ssl_crl); a directory the server writes
 * (nginx: relative to the prefix, like proxy_cache_path). httpd resolves both
 * against ServerRoot. */
#define CG_KEY_PATH_NONE 0
#define CG_KEY_PATH_CONF 1
#define CG_KEY_PATH_PREFIX 2

#define CERTGATE_KEYS(X)                                                                          \
  X(MODE, "certgate", "certgate", "CertGate", mode, CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE,       \
    "off | optional | require")                                                                   \
  X(TRUSTED_ISSUERS, "trusted_issuers", "certgate_trusted_issuers", "CertGateTrustedIssuers",     \
    trusted_issuers, CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_CONF,                                      \
    "PEM file of the CAs allowed to issue client certs here")                                     \
  X(REQUIRE_EKU, "require_eku", "certgate_require_eku", "CertGateRequireEku", require_eku,        \
    CG_KEY_CTX_ANY, 1, 2, CG_KEY_PATH_NONE, "clientAuth [strict] | any")                          \
  X(REQUIRE_KEY_USAGE, "require_key_usage", "certgate_require_key_usage",                         \
    "CertGateRequireKeyUsage", require_key_usage, CG_KEY_CTX_ANY, 1, CG_KEY_MANY,                 \
    CG_KEY_PATH_NONE, "keyUsage bits required (digitalSignature ...) | off")                      \
  X(SUBJECT, "subject", "certgate_subject", "CertGateSubject", subject, CG_KEY_CTX_ANY, 1,        \
    CG_KEY_MANY, CG_KEY_PATH_NONE, "ATTR=value ... that must all be present, or ~regex")          \
  X(SAN, "san", "certgate_san", "CertGateSan", san, CG_KEY_CTX_ANY, 1, CG_KEY_MANY,               \
    CG_KEY_PATH_NONE, "dns: email: uri: ip: patterns, any one must match")                        \
  X(PIN, "pin", "certgate_pin", "CertGatePin", pin, CG_KEY_CTX_ANY, 1, CG_KEY_MANY,               \
    CG_KEY_PATH_NONE, "sha256:<hex> or spki:<hex> pins")                                          \
  X(DENY, "deny", "certgate_deny", "CertGateDeny", deny, CG_KEY_CTX_ANY, 1, CG_KEY_MANY,          \
    CG_KEY_PATH_NONE, "sha256:<hex> or spki:<hex> denied certificates")                           \
  X(MIN_KEY, "min_key", "certgate_min_key", "CertGateMinKey", min_key, CG_KEY_CTX_ANY, 1, 3,      \
    CG_KEY_PATH_NONE, "rsa=2048 ec=256 [dsa=N]")                                                  \
  X(DENY_SIGNATURE, "deny_signature", "certgate_deny_signature", "CertGateDenySignature",         \
    deny_signature, CG_KEY_CTX_ANY, 1, CG_KEY_MANY, CG_KEY_PATH_NONE,                             \
    "signature digests refused (sha1 md5)")                                                       \
  X(MAX_DEPTH, "max_depth", "certgate_max_depth", "CertGateMaxDepth", max_depth, CG_KEY_CTX_ANY,  \
    1, 1, CG_KEY_PATH_NONE, "maximum chain depth")                                                \
  X(CLOCK_SKEW, "clock_skew", "certgate_clock_skew", "CertGateClockSkew", clock_skew,             \
    CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE, "tolerated clock skew (time)")                        \
  X(STRICT, "strict", "certgate_strict", "CertGateStrict", strict, CG_KEY_CTX_ANY, 1, 1,          \
    CG_KEY_PATH_NONE, "on | off: refuse chains that break RFC 5280 (default on)")                 \
  X(EXPIRY_WARNING, "expiry_warning", "certgate_expiry_warning", "CertGateExpiryWarning",         \
    expiry_warning, CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE,                                       \
    "warn when an accepted certificate expires sooner (time)")                                    \
  X(REVOCATION, "revocation", "certgate_revocation", "CertGateRevocation", revocation,            \
    CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE, "off | cache_only | soft_fail | hard_fail")           \
  X(REVOCATION_SCOPE, "revocation_scope", "certgate_revocation_scope", "CertGateRevocationScope", \
    revocation_scope, CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE, "leaf | chain")                     \
  X(REVOCATION_SOURCES, "revocation_sources", "certgate_revocation_sources",                      \
    "CertGateRevocationSources", revocation_sources, CG_KEY_CTX_ANY, 1, 2, CG_KEY_PATH_NONE,      \
    "ordered subset of crl ocsp")                                                                 \
  X(CRL, "crl", "certgate_crl", "CertGateCrl", crl, CG_KEY_CTX_ANY, 1, CG_KEY_MANY,               \
    CG_KEY_PATH_CONF, "file or directory of CRLs to preload")                                     \
  X(REVOCATION_WAIT, "revocation_wait", "certgate_revocation_wait", "CertGateRevocationWait",     \
    revocation_wait, CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE,                                      \
    "time a request may wait for a fetch")                                                        \
  X(MAX_STALE, "max_stale", "certgate_max_stale", "CertGateMaxStale", max_stale, CG_KEY_CTX_ANY,  \
    1, 1, CG_KEY_PATH_NONE, "how long stale revocation data is still used")                       \
  X(FETCH_TIMEOUT, "fetch_timeout", "certgate_fetch_timeout", "CertGateFetchTimeout",             \
    fetch_timeout, CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE, "CRL/OCSP fetch timeout")              \
  X(FETCH_MAX_SIZE, "fetch_max_size", "certgate_fetch_max_size", "CertGateFetchMaxSize",          \
    fetch_max_size, CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE, "CRL/OCSP fetch size limit")          \
  X(FETCH_PROXY, "fetch_proxy", "certgate_fetch_proxy", "CertGateFetchProxy", fetch_proxy,        \
    CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE, "proxy URL for CRL/OCSP fetches | off")               \
  X(FETCH_ALLOW, "fetch_allow", "certgate_fetch_allow", "CertGateFetchAllow", fetch_allow,        \
    CG_KEY_CTX_ANY, 1, CG_KEY_MANY, CG_KEY_PATH_NONE, "host patterns CDP/AIA URLs may point to")  \
  X(CACHE, "cache", "certgate_cache", "CertGateCache", cache, CG_KEY_CTX_SERVER, 1, 1,            \
    CG_KEY_PATH_PREFIX, "directory of the shared revocation cache")                               \
  X(REJECT_STATUS, "reject_status", "certgate_reject_status", "CertGateRejectStatus",             \
    reject_status, CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE, "HTTP status of a refusal")            \
  X(REJECT_BODY, "reject_body", "certgate_reject_body", "CertGateRejectBody", reject_body,        \
    CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE, "text | json | html | off")                           \
  X(REJECT_DETAIL, "reject_detail", "certgate_reject_detail", "CertGateRejectDetail",             \
    reject_detail, CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE,                                        \
    "on | off: show the hint to the client")                                                      \
  X(REJECT_HEADER, "reject_header", "certgate_reject_header", "CertGateRejectHeader",             \
    reject_header, CG_KEY_CTX_ANY, 1, 1, CG_KEY_PATH_NONE,                                        \
    "on | off: name the reason in an X-Certgate-Reason header")                                   \
  X(REJECT_AT, "reject_at", "certgate_reject_at", "CertGateRejectAt", reject_at,                  \
    CG_KEY_CTX_SERVER, 1, 1, CG_KEY_PATH_NONE, "request | handshake (server or virtual host)")    \
  X(LOG, "log", "certgate_log", "CertGateLog", log, CG_KEY_CTX_ANY, 1, 2, CG_KEY_PATH_NONE,       \
    "kv | json [accepts]")                                                                        \
  X(STATUS, "status", "certgate_status", "CertGateStatus", status, CG_KEY_CTX_PAGE, 1, 1,         \
    CG_KEY_PATH_NONE, "on | off: this location serves certgate's counters")                       \
  X(TRUSTED_PROXIES, "trusted_proxies", "certgate_trusted_proxies", "CertGateTrustedProxies",     \
    trusted_proxies, CG_KEY_CTX_ANY, 1, CG_KEY_MANY, CG_KEY_PATH_NONE,                            \
    "addresses or CIDR blocks of the proxies in front of this server")                           \
  X(SHARED_CACHE, "shared_cache", "certgate_shared_cache", "CertGateSharedCache", shared_cache,   \
    CG_KEY_CTX_SERVER, 1, 2, CG_KEY_PATH_NONE,                                                    \
    "redis://[user:password@]host:port/db [prefix=certgate:] | off: the fleet's revocation tier")

typedef enum {
#define CG_KEY_ENUM(id, key, nginx, httpd, field, contexts, min_args, max_args, path, help) \
  CG_KEY_##id,
  CERTGATE_KEYS(CG_KEY_ENUM)
#undef CG_KEY_ENUM
      CG_KEY_COUNT
} cg_key;

typedef struct {
  const char *data;
  size_t len;
} cg_str;

/* How a relative value of `key` is resolved by a server (CG_KEY_PATH_*). */
CG_API int cg_key_path(cg_key key);
/* Where `key` is accepted: its CG_KEY_CTX_* bits (0 for an unknown key). */
CG_API unsigned cg_key_contexts(cg_key key);

/* Memory the caller owns (a request pool, say): `size` bytes, or NULL. The
 * *_alloc calls below write their text whole (never cut) into one such block,
 * NUL terminated, so an adapter needs no sizing pass of its own. */
typedef void *(*cg_alloc_fn)(void *pool, size_t size);

/* Error text of a failed call: names the key and the offending value. */
typedef struct {
  char message[512];
} cg_error;

/* ---- reasons ---- */
CG_API const char *cg_reason_code(cg_reason reason);
CG_API const char *cg_reason_substatus(cg_reason reason);
CG_API int cg_reason_http_status(cg_reason reason);
CG_API const char *cg_reason_meaning(cg_reason reason);
CG_API const char *cg_reason_hint(cg_reason reason);

/* ---- policy: the directive vocabulary ---- */
typedef struct cg_policy cg_policy;

CG_API cg_policy *cg_policy_new(void);
CG_API void cg_policy_free(cg_policy *policy);
/* A policy with every key unset (every default), for a server with nothing
 * set at its own level; it lives as long as the process and is never freed. */
CG_API const cg_policy *cg_policy_unset(void);

/*
 * Sets one key. `key` is the nginx spelling ("certgate", "certgate_subject"), the
 * bare key ("subject") or the Apache spelling ("CertGateSubject"); keys and
 * keyword values are case-insensitive. Files named by a key are read now, so a
 * bad file fails configuration testing. On failure returns CG_ERR_INVALID with
 * `error` naming the key and the bad value.
 */
CG_API int cg_policy_set(cg_policy *policy, const char *key, const cg_str *argv, size_t argc,
                         cg_error *error);

/* Fills every key unset in `child` from `parent` (http -> server -> location). */
CG_API int cg_policy_inherit(cg_policy *child, const cg_policy *parent, cg_error *error);

/* Whether certgate is `optional` or `require` here (not `off`). */
CG_API int cg_policy_enabled(const cg_policy *policy);

/* Parses a policy file of `key value...;` lines into `policy`. */
CG_API int cg_policy_load_file(cg_policy *policy, const char *path, cg_error *error);

/* How refusals are answered, for the adapters. */
CG_API int cg_policy_reject_status(const cg_policy *policy, cg_reason reason);
CG_API int cg_policy_reject_at_handshake(const cg_policy *policy);
CG_API int cg_policy_log_accepts(const cg_policy *policy);
CG_API cg_log_format cg_policy_log_format(const cg_policy *policy);
/* Whether this policy checks revocation (certgate_revocation not off). */
CG_API int cg_policy_revocation_enabled(const cg_policy *policy);
/* Whether `section` checks revocation under `base` (their cached merge; the
 * section alone when `base` is NULL). Out of memory answers 1: a cache
 * directory prepared for nothing is the safer mistake. */
CG_API int cg_policy_revocation_enabled_under(const cg_policy *base, const cg_policy *section);
/* The revocation cache directory this policy uses: certgate_cache, or the
 * default. Servers create it (owned by the worker user) before forking; the
 * cache itself is opened in each worker on first use. */
CG_API const char *cg_policy_cache_dir(const cg_policy *policy);
/* certgate_revocation_wait in milliseconds: how long a request may wait for a
 * revocation fetch in flight. */
CG_API int cg_policy_revocation_wait_ms(const cg_policy *policy);

/*
 * `add` (a section's own keys) over `base` (the policy it sits in): every key
 * unset in `add` is taken from `base`. The result is made once per `base` and
 * kept in `add`, so it lives as long as `add` and is the same object on every
 * call: safe to hand to cg_ssl_decide, which keeps decisions by policy
 * address. Lock-free once made (httpd merges per request). Returns the address
 * of the cell holding the merged policy (a struct whose only member is a
 * cg_policy pointer may point there), or NULL when out of memory.
 */
CG_API cg_policy *const *cg_policy_merged(const cg_policy *base, const cg_policy *add);

/* Whether this location serves the counters page (certgate_status on). */
CG_API int cg_policy_status_page(const cg_policy *policy);

/* Makes a cache directory ready before the server forks its workers: mkdir -p,
 * mode 0700; when the caller is root and `worker_uid` is not -1, the directory
 * and the cache files in it are given to the worker user and every parent must
 * be searchable by it; otherwise it must be writable by the caller. */
CG_API int cg_cache_dir_prepare(const char *dir, long worker_uid, long worker_gid, cg_error *error);

/*
 * The revocation cache directories of one server configuration, collected
 * while it is read and prepared (cg_cache_dir_prepare) once the worker user is
 * known, before the server forks. Adapters keep no list of their own.
 */
typedef struct cg_cache_dirs cg_cache_dirs;

CG_API cg_cache_dirs *cg_cache_dirs_new(void);
CG_API void cg_cache_dirs_free(cg_cache_dirs *dirs);

/* Adds `dir`, configured in `file` at `line`; a directory already in the set
 * is kept once, with where it was first configured. A relative `dir` is
 * refused (CG_ERR_INVALID, `error` naming it). */
CG_API int cg_cache_dirs_add(cg_cache_dirs *dirs, const char *dir, const char *file,
                             unsigned long line, cg_error *error);

/* Prepares every directory in the order added (see cg_cache_dir_prepare); on
 * the first failure `error` says what is wrong, then names the directory and
 * where it was configured: `... (certgate_cache "/dir" in file:line)`. */
CG_API int cg_cache_dirs_prepare(const cg_cache_dirs *dirs, long worker_uid, long worker_gid,
                                 cg_error *error);

/* ---- self-checks: `nginx -t`, `apache2 -t`, start, `certgate selfcheck` ---- */

/* What one server is configured with besides its policy. With `ctx` (nginx:
 * its SSL_CTX once ssl_client_certificate is loaded) the trust anchors and
 * the CA names sent are read from it. Without, from files: anchors from
 * ca_file/ca_path, names from ca_names_file/path, else from the anchors (as
 * mod_ssl does); or, for httpd at -t (mod_ssl has no SSL_CTX yet), from
 * `httpd_directives`: the main configuration's directives, then the virtual
 * host's, as name/args pairs (2 * httpd_directive_count strings), from which
 * the core takes SSLEngine and the last SSLCACertificateFile/Path and
 * SSLCADNRequestFile/Path, relative to `server_root`. A server whose
 * SSLEngine is not on has no findings. Any pointer may be NULL. */
#define CG_SELFCHECK_VERIFY_CLIENT_ON 0x1u /* nginx `ssl_verify_client on` */
typedef struct {
  SSL_CTX *ctx;
  const char *ca_file, *ca_path, *ca_names_file, *ca_names_path;
  const char *const *httpd_directives;
  size_t httpd_directive_count;
  const char *server_root;
  long worker_uid, worker_gid; /* -1: the current user */
  unsigned flags;              /* CG_SELFCHECK_* */
} cg_selfcheck_server;

typedef struct cg_findings cg_findings;

/* Runs every self-check (docs/self-checks.md) for a server's `policy` (its
 * server-level policy); NULL only when out of memory. */
CG_API cg_findings *cg_selfcheck(const cg_policy *policy, const cg_selfcheck_server *server);
CG_API void cg_findings_free(cg_findings *findings);
CG_API size_t cg_findings_count(const cg_findings *findings);
/* The check's name ("ca_names_size"); whether it refuses the configuration;
 * the whole log line ("certgate: check=ca_names_size ..."). */
CG_API const char *cg_finding_name(const cg_findings *findings, size_t i);
CG_API int cg_finding_fatal(const cg_findings *findings, size_t i);
CG_API const char *cg_finding_message(const cg_findings *findings, size_t i);

/*
 * The sections (httpd <Directory>, <Location>, <Files>) of one configuration
 * that set a certgate key, each with the server it appears in (an opaque
 * key): which revocation cache directories the children will open depends on
 * them, merged under each server's policy once the configuration is read.
 */
typedef struct cg_sections cg_sections;

CG_API cg_sections *cg_sections_new(void);
CG_API void cg_sections_free(cg_sections *sections);
/* Records `section` (its own keys, live as long as the configuration) of
 * `server`; CG_ERR_INTERNAL when out of memory or `sections` is NULL. */
CG_API int cg_sections_add(cg_sections *sections, const void *server, const cg_policy *section);
/* Whether `base` (a server's policy; NULL: nothing set) checks revocation, or
 * any section of `server` or of `main_server` (whose sections apply to every
 * server) does under it (cg_policy_revocation_enabled_under). */
CG_API int cg_sections_revocation_enabled(const cg_sections *sections, const void *server,
                                          const void *main_server, const cg_policy *base);

/* ---- decisions ---- */
typedef struct cg_decision cg_decision;

typedef enum {
  CG_FIELD_VERDICT,
  CG_FIELD_REASON,
  CG_FIELD_SUBSTATUS,
  CG_FIELD_DETAIL,
  CG_FIELD_HINT,
  CG_FIELD_SUBJECT,
  CG_FIELD_ISSUER,
  CG_FIELD_SERIAL,
  CG_FIELD_FINGERPRINT,
  CG_FIELD_NOT_BEFORE,
  CG_FIELD_NOT_AFTER,
  CG_FIELD_REVOCATION,
  CG_FIELD_DEPTH,
  CG_FIELD_COUNT
} cg_field;

/* Names of the fields as variables: "verdict", "reason", ... */
CG_API const char *cg_field_name(cg_field field);
CG_API int cg_field_from_name(const char *name, size_t len);
/* The field's environment variable: "CERTGATE_VERDICT", ... (httpd's CGI
 * environment). */
CG_API const char *cg_field_env_name(cg_field field);

/*
 * Judges a chain outside any server (the CLI, tests): `leaf` may be NULL (no
 * certificate); `untrusted` the rest of the chain as sent; `trust` the trust
 * anchors; `now` the time to judge at (0: the current time). The caller frees the
 * result with cg_decision_free. Never returns NULL for a non-NULL policy: an
 * internal failure is a decision with reason internal_error.
 */
CG_API cg_decision *cg_evaluate(const cg_policy *policy, X509 *leaf, STACK_OF(X509) * untrusted,
                                X509_STORE *trust, int64_t now);
CG_API void cg_decision_free(cg_decision *decision);

CG_API cg_verdict cg_decision_verdict(const cg_decision *decision);
CG_API cg_reason cg_decision_reason(const cg_decision *decision);
/* An allowed certificate that deserves a warning line: it expires within
 * expiry_warning, or its revocation status is unknown under soft_fail. */
CG_API int cg_decision_warning(const cg_decision *decision);
/* Not final: a revocation fetch is in flight and the policy waits up to
 * revocation_wait for it (hard_fail; cache_only for a preloaded CRL being
 * ingested). Ask again later (nginx: from a timer), or call
 * cg_ssl_wait first (threaded servers). */
CG_API int cg_decision_pending(const cg_decision *decision);
/* A field's value; valid as long as the decision. Empty when not known. */
CG_API cg_str cg_decision_field(const cg_decision *decision, cg_field field);
/* Hands `set` every field under its environment name (cg_field_env_name),
 * in cg_field order; the value is valid as long as the decision. */
typedef void (*cg_env_fn)(void *ctx, const char *name, cg_str value);
CG_API void cg_decision_export(const cg_decision *decision, cg_env_fn set, void *ctx);

/*
 * Writes the one-line log entry ("certgate: verdict=deny reason=..."). The
 * line itself is well formed and bounded (a value too long for it is cut with
 * "truncated=yes"). Like snprintf: NUL terminated, never longer than `size` - 1
 * bytes, and returns the length of the whole line, so a result >= `size` means
 * the buffer was too small (`buf` may be NULL when `size` is 0, to learn the
 * length; the line is then written into a buffer of result + 1 bytes).
 */
CG_API size_t cg_decision_format_log(const cg_decision *decision, cg_log_format format, char *buf,
                                     size_t size);

/*
 * Writes the client-facing body for a refusal in the policy's reject_body
 * format; sets *content_type. Like snprintf: NUL terminated, never longer than
 * `size` - 1 bytes, and returns the length of the whole body (0 for `off`), so
 * a result >= `size` means it was cut short (`buf` may be NULL when `size` is
 * 0, to learn the length). Servers allocate result + 1 bytes: a cut body (a
 * JSON one, say) is never sent.
 */
CG_API size_t cg_decision_format_body(const cg_decision *decision, const cg_policy *policy,
                                      const char **content_type, char *buf, size_t size);

/* cg_decision_format_log and _body, whole, in memory from `alloc` ({NULL, 0}
 * when it fails). */
CG_API cg_str cg_decision_log_alloc(const cg_decision *decision, const cg_policy *policy,
                                    cg_alloc_fn alloc, void *pool);
CG_API cg_str cg_decision_body_alloc(const cg_decision *decision, const cg_policy *policy,
                                     const char **content_type, cg_alloc_fn alloc, void *pool);

/* The response header a refusal carries under certgate_reject_header on. */
#define CG_REJECT_HEADER_NAME "X-Certgate-Reason"

/* The value of CG_REJECT_HEADER_NAME for a refusal (the reason code, e.g.
 * "untrusted_issuer"), or {NULL, 0} when the policy does not ask for the
 * header (off by default: it tells the client why) or `decision` allows.
 * Static text: valid for the life of the process. */
CG_API cg_str cg_decision_reject_header(const cg_decision *decision, const cg_policy *policy);

/* The reason phrase of a refusal status a server may not know (nginx's 495
 * "SSL Certificate Error", 496 "SSL Certificate Required"; any other: "Client
 * Certificate Refused"), for the status line. */
CG_API const char *cg_refusal_status_phrase(int status);

/* ---- outcome: what a server does with a decision ---- */

/* How loud a judgement is logged; each server maps these to its own levels. */
typedef enum {
  CG_LOG_NONE = 0, /* no line */
  CG_LOG_DEBUG,    /* a judgement the client's request was already answered by */
  CG_LOG_NOTICE,   /* an accept, asked for with certgate_log ... accepts */
  CG_LOG_WARN,     /* an accept that deserves a warning (cg_decision_warning) */
  CG_LOG_REFUSAL   /* a refusal of the client's request: the server's error level */
} cg_log_level;

typedef struct {
  int status;       /* 0: allowed, go on; else answer with this HTTP status */
  cg_log_level log; /* whether and how loud to log the decision's line */
  int counted;      /* whether cg_counters_add counts it */
  cg_verdict verdict;
  cg_reason reason;
  const cg_decision *decision; /* for cg_counters_add's expiring certificates */
} cg_outcome;

/*
 * The one rule for every server. `decision` is final (not pending), or NULL
 * when certgate could not decide (then a 500, reason internal_error). A
 * `subrequest` (an SSI include, auth_request, httpd's DirectoryIndex probe)
 * or a request `judged_before` (the client's request again, after an internal
 * redirect, an error page / ErrorDocument, a named location) is judged and
 * refused like any request, but neither counted nor logged above
 * CG_LOG_DEBUG: only what the client asked for is.
 */
CG_API cg_outcome cg_outcome_of(const cg_policy *policy, const cg_decision *decision,
                                int subrequest, int judged_before);

/* The syslog(3) priority of a log level (LOG_DEBUG, LOG_NOTICE, LOG_WARNING,
 * LOG_ERR; httpd's APLOG_* are the same numbers); -1 for CG_LOG_NONE. */
CG_API int cg_log_level_syslog(cg_log_level level);

/* ---- counters: the certgate_status page ---- */

/* How many of the earliest-expiring accepted client certificates the page
 * lists (certgate_client_cert_expiry_seconds). */
#define CG_EXPIRING_CERTS 10

/* One of them: labels truncated to fit (NUL terminated). Written by the core. */
typedef struct {
  int64_t not_after; /* epoch seconds; 0: an empty slot */
  uint64_t key;      /* of issuer and serial: one slot per certificate */
  char subject[64];  /* subject CN (else the subject), truncated */
  char serial[48];   /* hex, truncated */
  char issuer[64];   /* issuer CN (else the issuer), truncated */
} cg_expiring_cert;

/* What a server counts, summed over all its workers; the adapter keeps them in
 * shared memory (zeroed) and hands the core a snapshot. */
typedef struct {
  uint64_t decisions[2][CG_REASON_COUNT]; /* [cg_verdict][cg_reason], one per request */
  uint64_t handshake_refusals;            /* handshakes aborted (reject_at handshake) */
  /* The core's: the earliest-expiring accepted client certificates, under a
   * spinlock a request only tries (it skips, never waits). */
  int32_t expiring_lock;
  int64_t expiring_admit_below; /* latest not_after of a full set; 0: not full */
  int64_t expiring_earliest;    /* earliest not_after in the set */
  cg_expiring_cert expiring[CG_EXPIRING_CERTS];
} cg_counters;

/*
 * Counts one judgement of a request into `shared`, the server's counters in
 * shared memory (added to atomically, so every worker or child may count into
 * the same cg_counters). The rule, the same for every server: one decision per
 * client request, the first final one made for the request itself. So it is
 * not counted when
 *   - `subrequest`: it judges a subrequest (an SSI include, auth_request,
 *     httpd's DirectoryIndex probe), a part of a request counted on its own;
 *   - `judged_before`: the client's request was judged before (this is the
 *     same request again after an internal redirect, an error page /
 *     ErrorDocument, a named location);
 *   - the decision is still pending (a revocation fetch in flight).
 * A NULL decision (certgate could not decide) counts as internal_error.
 * Returns 1 when it counted, 0 otherwise; the caller records that the request
 * was judged whenever the decision is not pending.
 */
CG_API int cg_counters_add_decision(cg_counters *shared, const cg_decision *decision,
                                    int subrequest, int judged_before);

/* Counts `outcome` into `shared` (atomically) when it is counted; an allowed
 * one's certificate joins the earliest-expiring ones if it expires before
 * them (one comparison when it does not). */
CG_API void cg_counters_add(cg_counters *shared, const cg_outcome *outcome);

/* Counts one handshake aborted under reject_at handshake into `shared`. */
CG_API void cg_counters_add_handshake_refusal(cg_counters *shared);
/* Counts what cg_ssl_log_fn reported: a failed handshake (tls_handshake) as a
 * deny decision of that reason, any other reason as a handshake refusal. */
CG_API void cg_counters_add_handshake(cg_counters *shared, cg_reason reason);

/* Reads `shared` (atomically, field by field) into `snapshot`; NULL `shared`
 * gives zeros. */
CG_API void cg_counters_snapshot(const cg_counters *shared, cg_counters *snapshot);

/* "certgate_counters_<size>", a name for the server's shared counters: a module
 * built with more reasons never reuses, across a reload, a zone laid out for
 * fewer. Static text. */
CG_API const char *cg_counters_zone_name(void);

/* Zeroed counters in shared memory that children forked after this call
 * share (an anonymous shared mapping), for a server without a shared-memory
 * facility of its own in reach; NULL when the system refuses. Never unmapped:
 * the server keeps it for its life, across graceful restarts. */
CG_API cg_counters *cg_counters_map_shared(void);

/* The Content-Type of the page cg_counters_format writes. */
#define CG_COUNTERS_CONTENT_TYPE "text/plain; version=0.0.4"

/*
 * Writes the counters page in the Prometheus text format (the same bytes in
 * every server): certgate_decisions_total{verdict,reason} for allow/none and
 * deny/<every other reason>, certgate_handshake_refusals_total, then
 * certgate_client_cert_expiry_seconds of the expiring certificates. Like
 * snprintf: NUL terminated, never longer than `size` - 1 bytes, and returns the
 * length of the whole page, so a result >= `size` means it was cut short
 * (`buf` may be NULL when `size` is 0, to learn the length). NULL `counters`
 * writes a page of zeros.
 */
CG_API size_t cg_counters_format(const cg_counters *counters, char *buf, size_t size);

/* A snapshot of `shared` formatted as by cg_counters_format, followed by the
 * revocation gauges of every revocation cache of the configuration (read from
 * the cache, docs/status.md), whole, in memory from `alloc` ({NULL, 0} when it
 * fails). */
CG_API cg_str cg_counters_page_alloc(const cg_counters *shared, cg_alloc_fn alloc, void *pool);

/* ---- inside a TLS server ---- */

/*
 * How the core hands a log line to the server: a refusal at handshake time
 * (reject_at handshake, `reason` the chain's) or a failed handshake (`reason`
 * CG_REASON_TLS_HANDSHAKE). `len` 0: a line suppressed by the per-client rate
 * limit, to be counted but not logged. Count it with cg_counters_add_handshake.
 */
typedef void (*cg_ssl_log_fn)(SSL *ssl, cg_reason reason, const char *line, size_t len, void *data);

/*
 * Installs certgate's certificate verification on an SSL_CTX (one per server /
 * virtual host) and makes the server ask for a client certificate. The
 * handshake then records the chain's evidence on the connection and finishes,
 * so a refusal is explained at request time (or, with reject_at handshake, the
 * handshake is aborted with the fitting alert after `log` is called; a missing
 * certificate is still refused at request time, where it can be explained).
 * `policy` is the server-level policy; it and `log_data` must outlive the
 * SSL_CTX.
 */
CG_API int cg_ssl_ctx_attach(SSL_CTX *ctx, const cg_policy *policy, cg_ssl_log_fn log,
                             void *log_data, cg_error *error);

/* The decision to use for a request that came through a proxy (it carries
 * X-Forwarded-For or Forwarded, or comes from certgate_trusted_proxies): a no_cert refusal whose
 * hint names the network cause, a TLS-terminating proxy in front that does not pass client
 * certificates on. Any other decision is returned as is. Lives as long as
 * `decision`. */
CG_API const cg_decision *cg_decision_via_proxy(const cg_decision *decision);

/* Whether `client_ip` (the TCP peer, as text) is in the policy's
 * certgate_trusted_proxies. */
CG_API int cg_policy_trusted_proxy(const cg_policy *policy, const char *client_ip, size_t len);

/* The client's address, for a server whose SSL has no socket of its own
 * (httpd): failed-handshake lines are rate-limited per address. Cheap: keeps a
 * hash in the SSL, allocates nothing. */
CG_API void cg_ssl_note_client_address(SSL *ssl, const char *address);

/*
 * The decision for this connection under `policy` (a location's). The chain is
 * verified once per connection, also for resumed sessions (rebuilt from the
 * leaf and the trust store); each policy's decision is kept on the connection
 * and is valid until the connection closes. Decisions are kept by the policy's
 * address, so `policy` must live as long as the configuration (not be a
 * per-request merge: use cg_policy_merged). Returns NULL only when `policy` is off. Never returns
 * an allow it could not establish.
 */
CG_API const cg_decision *cg_ssl_decide(SSL *ssl, const cg_policy *policy);

/* Blocks the calling thread up to `max_ms` while a revocation fetch for this
 * connection's chain is in flight (Apache; never from an event loop). */
CG_API void cg_ssl_wait(SSL *ssl, const cg_policy *policy, int max_ms);

/*
 * cg_ssl_decide for a threaded server (Apache; never from an event loop): a
 * pending decision blocks the calling thread, in cg_ssl_wait steps, until it
 * is final; the core makes it final once the policy's revocation_wait has run
 * out. Should it not, a guard (twice revocation_wait plus a second) ends the
 * wait: then a pending deny is returned as is, a pending allow as NULL (never
 * an allow it could not establish).
 */
CG_API const cg_decision *cg_ssl_decide_final(SSL *ssl, const cg_policy *policy);

#ifdef __cplusplus
}
#endif

#endif /* CERTGATE_CERTGATE_H */
