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
// thisUpdate must not be in the future, a delta / indirect / reason-partitioned
// CRL is refused, and a crlNumber lower than the cached one (or, without
// crlNumbers, an older thisUpdate) is refused with the cached CRL kept. Nothing
// is written unless the whole CRL parsed and verified.
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
};

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
// garbage, delta/indirect CRLs and unknown critical extensions, naming the defect.
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
// replaces the issuer's CRL: the entries are written under a new generation in
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
