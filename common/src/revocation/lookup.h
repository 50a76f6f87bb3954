// The pure part of revocation checking (DESIGN §5): given a read transaction
// of the store, the chain and the time, what each certificate's status is and
// which fetches or ingests would bring missing or due data. No threads, no
// locks, no I/O beyond the transaction: the checker (checker.cc) schedules
// what this asks for. Private to certgate_core.
#pragma once

#include <certgate/chain_evidence.h>
#include <certgate/policy.h>
#include <certgate/result.h>
#include <certgate/revocation.h>
#include <openssl/x509.h>

#include <cstdint>
#include <string>
#include <vector>

#include "revocation/fetcher.h"
#include "revocation/store.h"

namespace certgate {

// A policy's revocation settings with their defaults, built once per policy
// (or per check) instead of being re-derived for every certificate.
struct RevocationSettings {
  RevocationMode mode = RevocationMode::kOff;
  // Defaults are Policy's (RevocationSettings::From); these are a test's.
  bool chain_scope = true;  // certgate_revocation_scope chain (else leaf)
  std::vector<RevocationSource> sources{RevocationSource::kCrl, RevocationSource::kOcsp};
  int64_t max_stale = 3600;  // seconds a good answer is used past nextUpdate
  bool strict = false;       // certgate_strict: a defective CRL proves no "good"
  FetchLimits limits;
  // Data fetched from a URL is due for refresh when it is this old (seconds).
  int64_t refresh_interval = 3600;

  static RevocationSettings From(const Policy &policy, int64_t refresh_interval);
};

// Work a lookup asks for, in the order it is to be tried.
struct WantedWork {
  enum class Kind {
    kIngestWaitingFile,  // a preloaded CRL file waits for this issuer
    kFetchCrl,
    kFetchOcsp,
  };
  Kind kind = Kind::kFetchCrl;
  // The pending key: CrlPendingKey, DeltaPendingKey (crl.h: per issuer and
  // the certificate's CDP URLs) or "ocsp:<cert id hex>".
  std::string key;
  std::string cert_id;            // kFetchOcsp: the OCSP CertID key
  std::vector<std::string> urls;  // kFetch*: what may be fetched now, in order
};

// One certificate's lookup.
struct CertLookup {
  RevocationAnswer answer;        // fetch_pending is the scheduler's to set
  X509 *cert = nullptr;           // borrowed from the evidence
  X509 *issuer = nullptr;         // null when not in the chain
  std::string crl_key, ocsp_key;  // pending keys ("" when not looked at)
  std::string delta_key;          // DeltaPendingKey when its delta CRL is wanted
  std::vector<WantedWork> wanted;
  // The detail lists every source: it ends with "; a fetch is in flight" when
  // one of its keys turns out to be pending.
  bool notes_in_flight = false;
};

// Looks up every certificate the settings check (scope; the anchor never):
// one CertLookup per certificate, depth order. `txn` may carry the error that
// kept the store from being read. Empty when revocation is off or the chain is.
std::vector<CertLookup> LookUpChain(const Result<RevocationStore::ReadTxn> &txn,
                                    const ChainEvidence &evidence,
                                    const RevocationSettings &settings, int64_t now);

// One certificate `cert` issued by `issuer`. `may_fetch`: whether fetches may be
// asked for (the mode fetches and the chain is anchored).
CertLookup LookUpCert(const RevocationStore::ReadTxn &txn, X509 *cert, X509 *issuer,
                      const RevocationSettings &settings, bool may_fetch, int64_t now);

}  // namespace certgate
