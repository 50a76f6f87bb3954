// CRL ingest: parse, verify and store a CRL without materializing its entries.
//
// The DER is walked in place (an X509_CRL of a million entries would take
// hundreds of MB): the header fields are decoded with OpenSSL, the signature is
// checked over the tbsCertList bytes with the issuer's key, and the revoked
// entries are streamed straight into one LMDB write transaction. The only copy of
// the CRL is its DER (35 MB for a million entries).
//
// Trust (DESIGN §5): the CRL's issuer name must equal the issuer cert's subject,
// its signature must verify with the issuer's key (and the issuer may sign CRLs),
// thisUpdate must not be in the future, an indirect / reason-partitioned CRL
// is refused, a delta CRL (RFC 5280 §5.2.4) is kept beside its base (below), and a crlNumber lower
// than the cached one (or, without crlNumbers, an older thisUpdate) is refused with the cached CRL
// kept. Nothing is written unless the whole CRL parsed and verified.
#pragma once

#include <certgate/cert_facts.h>  // FormatTime
#include <certgate/result.h>
#include <openssl/x509.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "revocation/issuer_keys.h"  // IssuerId
#include "revocation/store.h"

namespace certgate {

// A cert's serial as magnitude bytes (no leading zeros) and sign.
std::string SerialMagnitude(X509 *cert, bool *negative);

// -1 / 0 / 1 for two magnitude byte strings (serials, crlNumbers).
int CompareMagnitudes(const std::string &a, const std::string &b);

// CRLReason name ("keyCompromise"), "" for -1, "reason<N>" for unknown codes.
std::string CrlReasonName(int code);

struct ParsedCrl {
  std::string der;                 // the whole CRL (owned; spans below point into it)
  std::string_view tbs;            // tbsCertList TLV
  std::string_view sig_alg;        // outer signatureAlgorithm TLV
  std::string_view inner_sig_alg;  // tbsCertList.signature TLV
  std::string_view signature;   // signature bytes (BIT STRING content after the unused-bits byte)
  std::string_view issuer_der;  // issuer Name TLV
  std::string issuer;           // RFC 2253, for messages
  int64_t this_update = 0;
  int64_t next_update = 0;  // 0: none
  std::string crl_number;   // magnitude bytes; empty: none
  std::string crl_number_dec;
  uint32_t flags = 0;        // kCrlOnly*, kCrlNumberCritical, kCrlDefectsRecorded
  std::string_view entries;  // revokedCertificates content (may be empty)
  // The URIs of its issuingDistributionPoint, sorted: a CRL that covers only
  // the certificates naming one of them in their CRL distribution points (a
  // partitioned, "sharded" CRL). Empty: every certificate of the issuer.
  std::vector<std::string> scope_urls;
  // A delta CRL: its (critical) deltaCRLIndicator names the base crlNumber it
  // is to be applied to (magnitude, may be empty for 0); decimal for messages.
  bool is_delta = false;
  std::string delta_base, delta_base_dec;
  // A base CRL's freshestCRL URIs: where its delta CRLs are published.
  std::vector<std::string> freshest_urls;
};

// The store key of a base CRL (issue 11 §5: partitioned CRLs): the issuer id
// for a full CRL (no issuingDistributionPoint scope); for a partition, the
// issuer id, '#' and a SHA-256 prefix over its kinds (onlyContainsUserCerts /
// CACerts) and its distribution point URLs, so that every partition of one CA
// has its own record and certificates of different partitions stop evicting
// each other's CRL.
std::string CrlKey(std::string_view issuer_id, const std::vector<std::string> &scope,
                   uint32_t flags);
// The store key of the delta CRL kept beside the base CRL stored under `base_key`.
std::string DeltaKey(std::string_view base_key);
// The key of a CRL's record: its base key, or that key's DeltaKey for a delta
// (whose scope is its base's, RFC 5280 §5.2.4).
std::string RecordKey(std::string_view issuer_id, const ParsedCrl &crl);

// Among the CRL records of one issuer (GetIssuerCrls), the base CRL that
// covers a certificate with these CRL distribution point URLs (RFC 5280
// §6.3.3 b.2: the IDP's distributionPoint names one of the certificate's CDP
// URLs; a CRL without one covers all) and of this kind (CA or not): the
// certificate's own partition first, then a full CRL. Null when none does.
const std::pair<std::string, CrlMeta> *CoveringCrl(
    const std::vector<std::pair<std::string, CrlMeta>> &records,
    const std::vector<std::string> &cert_crl_urls, bool is_ca);

// The scheduler's pending keys for a certificate's base CRL and its delta:
// per issuer and per the certificate's CDP URLs (its partition), so that
// fetches for two partitions of one CA do not wait for each other.
std::string CrlPendingKey(std::string_view issuer_id,
                          const std::vector<std::string> &cert_crl_urls);
std::string DeltaPendingKey(std::string_view issuer_id,
                            const std::vector<std::string> &cert_crl_urls);
// Whether the stored `delta` applies to the stored `base` (RFC 5280 §5.2.4):
// delta's base number <= base's crlNumber < delta's crlNumber.
bool DeltaApplies(const CrlMeta &base, const CrlMeta &delta);

// Whether `crl_scope` (a CRL's scope_urls) covers a certificate with these
// CRL distribution point URLs.
bool CrlScopeCovers(const std::vector<std::string> &crl_scope,
                    const std::vector<std::string> &cert_crl_urls);

// The strict checks (StrictChecks() names) a stored CRL fails, in table order:
// "crl_without_crl_number", "crl_number_critical" (RFC 5280 §5.2.3). Such a CRL
// is no source of "good" under certgate_strict on; a revocation in it stands.
std::vector<std::string_view> CrlStrictDefects(const CrlMeta &meta);

// "the CRL from http://pki/ca.crl has no crlNumber (RFC 5280 §5.2.3)"; empty
// when CrlStrictDefects is.
std::string DescribeCrlStrictDefects(const CrlMeta &meta);

// Parses a DER or PEM ("X509 CRL") CRL; refuses HTML, truncated DER, trailing
// garbage, indirect CRLs, a non-critical deltaCRLIndicator, a delta without a
// crlNumber and unknown critical extensions, naming the defect.
Result<ParsedCrl> ParseCrl(std::string data);

// Every CRL of a preloaded file: one DER CRL, or a PEM bundle of "X509 CRL"
// blocks (as nginx's ssl_crl takes them, e.g. the root's and the intermediate's).
// Any defect refuses the whole file, naming the CRL.
Result<std::vector<ParsedCrl>> ParseCrlFile(std::string data);

// Signature and issuer checks (not time, not rollback).
Status VerifyCrl(const ParsedCrl &crl, X509 *issuer);

struct IngestResult {
  enum class Outcome { kStored, kUnchanged } outcome = Outcome::kStored;
  CrlMeta meta;
};

// Verifies `crl` against `issuer` and, unless it is older than the cached one,
// replaces the issuer's CRL (a delta CRL: the delta kept beside the cached
// base, which must be the base it applies to: same scope, an older crlNumber,
// one no older than the delta's base number; a delta that needs a newer base
// marks the base due for refresh and is refused): the entries are written under a new generation in
// transactions of bounded size, then one transaction makes readers switch from
// the old CRL to the new one, then the old entries are deleted. A process killed
// on the way leaves an unreferenced generation, which the next ingest deletes.
// `source` is the URL or "file:<path>". `now`/`skew` bound thisUpdate. On refusal
// the cached CRL stays in force and the error says why (e.g. "rolled back:
// crlNumber 3 < cached 5").
Result<IngestResult> IngestCrl(RevocationStore &store, const ParsedCrl &crl, X509 *issuer,
                               const std::string &source, int64_t now, int64_t skew = 60);

// IngestCrl for a CRL whose signature the caller has just verified with
// VerifyCrl(crl, issuer) (a large CRL's signature is a hash of all of it).
Result<IngestResult> IngestVerifiedCrl(RevocationStore &store, const ParsedCrl &crl, X509 *issuer,
                                       const std::string &source, int64_t now, int64_t skew = 60);

}  // namespace certgate
