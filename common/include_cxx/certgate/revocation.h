// RevocationChecker: the revocation seam of DESIGN §4.3 and §5.
//
// Lookups read only the shared LMDB cache (common/src/revocation/store.h) and never block on
// the network; misses and due refreshes are handed to a background thread per
// process (revocation/fetcher.h) that fetches CRLs from CDPs and OCSP answers
// from AIA responders, verifies them (revocation/crl.h, revocation/ocsp.h) and
// writes them to the cache, where every process sees them.
//
// Processes and threads:
//  - Open() in every process that uses the cache, *after* fork (nginx: in
//    init_process of each worker; Apache: child_init). An LMDB environment must
//    not be used across fork, so a master that opens one (to validate the path
//    for `-t`, or to Preload) must destroy its checker before forking.
//  - One checker per process is shared by all its threads: Check(),
//    WaitForFetches() and List() are thread-safe (the environment is opened with
//    MDB_NOTLS, read transactions are not tied to threads).
//  - The background fetch thread starts lazily on the first scheduled fetch, so a
//    checker that only preloads (master, CLI) never starts a thread.
#pragma once

#include <certgate/chain_evidence.h>
#include <certgate/clock.h>
#include <certgate/decision.h>
#include <certgate/policy.h>
#include <certgate/result.h>
#include <openssl/x509.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace certgate {

enum class RevocationStatus { kGood, kRevoked, kUnknown, kStale };

// "good", "revoked", "unknown", "stale".
const char *RevocationStatusName(RevocationStatus status);

// "off", "cache_only", "soft_fail", "hard_fail": certgate_revocation's words.
const char *RevocationModeName(RevocationMode mode);

struct RevocationAnswer {
  RevocationStatus status = RevocationStatus::kUnknown;
  int depth = 0;  // which cert of the chain
  // That certificate's subject (RFC 2253) and serial (hex): a CA's is named
  // in the detail and as ca_subject in the log (issue 11 §4).
  std::string subject, serial;
  std::string source;  // "crl http://pki/ca.crl crl_number=821" or "ocsp http://ocsp/"
  int64_t revoked_at = 0;
  std::string reason;  // CRLReason name, e.g. keyCompromise ("" when none was given)
  // For unknown/stale: every URL tried, its error and duration, the mode. For a
  // good answer served from data past nextUpdate (within max_stale): says so.
  std::string detail;
  bool fetch_pending = false;  // a fetch for this cert is scheduled/in flight
  // The strict checks (StrictChecks() names, comma-separated) the issuer's CRL
  // fails (RFC 5280 §5.2.3), where they decide: under certgate_strict on, why
  // that CRL gave no "good" (the status is then unknown, the detail says so);
  // under off, a good answer it gave, for warning=strict_off:<names> with
  // crl_defects_detail. Empty otherwise (a revocation it lists stands either way).
  std::string crl_defects;
  std::string crl_defects_detail;
};

// What fetching missing issuers from AIA caIssuers URLs (certgate_fetch_issuers,
// issue 11 §3) did for a chain that stops short of a trust anchor.
struct IssuerCompletion {
  // The chain built again with the fetched CA certificates as untrusted
  // intermediates (never anchors), when any of them was used; judged like a
  // chain the client sent. It may still stop short of an anchor.
  std::optional<ChainEvidence> rebuilt;
  bool pending = false;  // a fetch for the chain's top certificate is in flight
  // Why the chain is not complete, for the chain_incomplete detail: the URL
  // and its fetch error, a fetched CA that cannot have issued it, ...
  std::string detail;
};

// One URL of a chain fetched by RevocationChecker::FetchUrls (`certgate check
// --fetch`, the certutil -verify -urlfetch view).
struct UrlFetch {
  enum class Kind { kCrl, kDeltaCrl, kCaIssuers, kOcsp };
  enum class Outcome {
    kVerified,     // fetched, and it verified (a CRL or OCSP answer stored, the issuer found)
    kUnavailable,  // no answer, or not a 200 (timed out, connection refused, HTTP 404)
    kFailed,       // an answer that did not verify or parse
    kNotFetched,   // refused by the policy (a host not in certgate_fetch_allow)
    kSkipped,      // a URL certgate does not fetch (ldap, no host)
    kNoUrl,        // the certificate names no URL of this kind
  };
  int depth = 0;
  std::string subject;  // the certificate that names the URL (RFC 2253)
  Kind kind = Kind::kCrl;
  std::string url;  // empty for kNoUrl
  Outcome outcome = Outcome::kNoUrl;
  std::string why;          // the error or refusal; for kVerified what was stored
  int64_t elapsed_ms = -1;  // -1: not fetched
  int http_status = 0;      // 0: no HTTP answer
  // A CRL that verified: its numbers (decimal) and dates.
  std::string crl_number, delta_base;
  int64_t this_update = 0, next_update = 0;
  std::string ocsp_status;     // an OCSP answer that verified: good, revoked, unknown
  std::string fetched_issuer;  // caIssuers: the subject of the certificate fetched
};

// "CDP", "freshestCRL", "AIA caIssuers", "OCSP" (certutil's words).
const char *UrlFetchKindName(UrlFetch::Kind kind);
// "Verified", "Unavailable", "Failed", "Not fetched", "Skipped", "No URL".
const char *UrlFetchOutcomeName(UrlFetch::Outcome outcome);
// "Verified (12 ms): crl_number=5 thisUpdate=... nextUpdate=..." or
// "Unavailable: timed out after 5000 ms (5001 ms)": the result, for one line.
std::string UrlFetchResultText(const UrlFetch &fetch);

class RevocationStore;
class RevocationFetcher;

class RevocationChecker {
 public:
  // Opens (creating if needed, mode 0700) the LMDB environment at dir; a clear
  // error naming the path when it cannot. `clock` must outlive the checker.
  static Result<std::unique_ptr<RevocationChecker>> Open(const std::string &dir,
                                                         const Clock &clock);
  ~RevocationChecker();
  RevocationChecker(const RevocationChecker &) = delete;
  RevocationChecker &operator=(const RevocationChecker &) = delete;

  // Loads CRL files / directories (PEM or DER) named by certgate_crl into the
  // store, each verified against its issuer found in `trust` (signature, issuer
  // name, crlNumber not lower than cached, thisUpdate not in the future). A file
  // whose mtime/size are those recorded in the store is not parsed again (warm
  // reload). A CRL whose issuer is not in `trust` (an intermediate CA's CRL) is
  // remembered and ingested in the background the first time a chain brings
  // that issuer. Files are re-examined periodically (RescanInterval) and
  // re-ingested when they change. `trust` may be null. Errors name the file.
  Status Preload(const std::vector<std::string> &paths, X509_STORE *trust);

  // Cache-only lookup for every cert of the chain (scope leaf|chain per policy;
  // chain = all but the trust anchor; a cert whose issuer is not in the chain is
  // kUnknown); never blocks on the network. When the policy's mode allows
  // fetching (soft_fail, hard_fail) and data is missing or due for refresh,
  // schedules background fetches of the cert's CDP / AIA OCSP URLs (only when
  // evidence.anchored; only to fetch_allow hosts; http/https/ldap/ldaps, an
  // ldap:/// URL only with certgate_ldap_server, else noted). Returns one
  // answer per checked cert, depth order; empty when the policy's revocation is
  // off or the chain has nothing to check.
  std::vector<RevocationAnswer> Check(const ChainEvidence &evidence, const Policy &policy);

  // Blocks up to `wait` for the pending fetches of this chain to finish (Apache
  // thread / CLI); returns true if none is pending any more.
  bool WaitForFetches(const ChainEvidence &evidence, std::chrono::milliseconds wait);

  // True when a fetch (or a background ingest) for a cert of this chain is
  // scheduled or in flight in this process (for an nginx timer to poll).
  bool FetchPending(const ChainEvidence &evidence);

  // CLI: fetch every CDP/AIA URL of the chain now (ignoring backoff; still only
  // http/https/ldap/ldaps and fetch_allow hosts), ingesting what verifies, and return one
  // line per URL with its result and timing (certutil -urlfetch experience).
  std::vector<std::string> FetchNow(const ChainEvidence &evidence, const Policy &policy);
  // The same fetches, one UrlFetch per URL of every certificate of the chain
  // (leaf first, then each CA: CDP, freshestCRL, AIA caIssuers, OCSP). A
  // caIssuers URL is fetched to see whether it serves this certificate's
  // issuer; nothing of it is stored. The trust anchor's URLs are listed, not
  // fetched (it is not checked for revocation).
  std::vector<UrlFetch> FetchUrls(const ChainEvidence &evidence, const Policy &policy);

  // For a chain that stops short of a trust anchor because an issuer is
  // missing, under certgate_fetch_issuers on: the CA certificates fetched from
  // the caIssuers URLs of the certificates at its top (sent by the client, then
  // fetched, at most kMaxFetchedIssuerLevels of them), kept in the shared
  // store, and the chain built again with them against `trust`. A URL not yet
  // in the store is fetched in the background (http/https, fetch_allow); wait
  // with WaitForFetches on `rebuilt` (or `evidence`). Never blocks.
  IssuerCompletion CompleteChain(const ChainEvidence &evidence, X509_STORE *trust,
                                 const Policy &policy, int64_t now);

  // CLI `certgate cache list|show|purge`: one line per CRL, OCSP answer, URL
  // state and preloaded file in the store.
  std::vector<std::string> List();
  // Empties the store (every CRL, serial, OCSP answer, URL state and file record).
  Status Purge();

  // Tuning (defaults in brackets). Data fetched from a URL is refreshed when it
  // is this old even before nextUpdate [1h]; the refresh before nextUpdate
  // starts at min(10% of the validity, 1h) before it.
  void SetRefreshInterval(std::chrono::seconds interval);
  // How often preloaded files are stat()ed for changes [10s].
  void SetRescanInterval(std::chrono::seconds interval);

  const std::string &dir() const;
  RevocationStore &store();

  class Impl;

 private:
  explicit RevocationChecker(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// How many fetched CA certificates one chain may take (a loop limit).
constexpr int kMaxFetchedIssuerLevels = 4;

// Whether `evidence` stops short of an anchor for want of an issuer: what
// certgate_fetch_issuers may complete.
bool MissesIssuer(const ChainEvidence &evidence);

// Adds what fetching did (`completion.detail`) to the chain_incomplete
// refusal of `decision`, and marks it pending while `pending`.
void NoteIssuerFetch(const IssuerCompletion &completion, bool pending, Decision *decision);

// Folds the answers for an otherwise accepted chain into `decision`:
//  - revoked (any source, any depth)           -> revoked
//  - stale / unknown under hard_fail, cache_only -> revocation_stale / _unavailable
//  - stale / unknown under soft_fail           -> allowed, with a warning
//  - all good                                  -> allowed, revocation "good <source>"
// The decision's revocation field says what was found and where.
void ApplyRevocation(const Policy &policy, const std::vector<RevocationAnswer> &answers,
                     Decision *decision);

}  // namespace certgate
