// Ingest of a parsed CRL into the store (crl.h): checks against
// the cached CRL of the same issuer, a new generation of serials written in
// bounded transactions, then the switch to it.
#include <certgate/cert_facts.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "crl_der.h"
#include "revocation/crl.h"

namespace certgate {

using namespace crl_der;

namespace {

// Serials written per write transaction. LMDB keeps the pages a transaction
// dirtied on its free list until the environment closes, so one transaction
// for a million entries left ~47 MB in every process that ingested; it also
// held the single writer lock (every other process's writes) for a second.
constexpr size_t kEntriesPerTxn = 50000;

// Ends the refusal of a delta that waits for a newer base (the preloader
// tries such a file again after the others).
constexpr const char *kDeltaWaitsForBase = "; it waits for a newer base CRL";

// <0 older than the cached CRL, 0 the same, >0 newer: by crlNumber when both
// have one, else by thisUpdate.
int CompareToCached(const ParsedCrl &crl, const CrlMeta &cached) {
  if (!crl.crl_number.empty() && !cached.crl_number.empty())
    return CompareMagnitudes(crl.crl_number, cached.crl_number);
  return crl.this_update < cached.this_update ? -1 : crl.this_update > cached.this_update ? 1 : 0;
}

Status RolledBack(const ParsedCrl &crl, const CrlMeta &cached) {
  std::string what = (!crl.crl_number.empty() && !cached.crl_number.empty())
                         ? "crlNumber " + crl.crl_number_dec + " < cached " + cached.crl_number_dec
                         : "thisUpdate " + FormatTime(crl.this_update) + " < cached " +
                               FormatTime(cached.this_update);
  return Status::Error("rolled back: " + what + " (kept the cached CRL from " + cached.source +
                       ")");
}

bool IsUnchanged(const ParsedCrl &crl, const CrlMeta &cached) {
  return CompareToCached(crl, cached) == 0 && crl.this_update <= cached.this_update;
}

// Deletes generation `gen` a transaction at a time, from the store of `epoch`
// only: a replacement store's generation of that number is someone else's.
Status DropGeneration(RevocationStore &store, uint64_t gen, uint64_t epoch) {
  for (bool done = false; !done;) {
    Result<RevocationStore::WriteTxn> txn = store.Write();
    if (!txn.ok()) return txn.status();
    if (txn->epoch() != epoch) return Status::Ok();
    Status deleted = txn->DeleteGeneration(gen, kEntriesPerTxn, &done);
    if (deleted.ok() && done) deleted = txn->ClearStaging(gen);
    if (!deleted.ok()) return deleted;
    Status commit = txn->Commit();
    if (!commit.ok()) return commit;
  }
  return Status::Ok();
}

void DropAbandonedGenerations(RevocationStore &store) {
  std::vector<uint64_t> abandoned;
  uint64_t epoch = 0;
  {
    Result<RevocationStore::WriteTxn> txn = store.Write();
    if (!txn.ok()) return;
    abandoned = txn->AbandonedGenerations();
    epoch = txn->epoch();
  }
  for (uint64_t gen : abandoned) (void)DropGeneration(store, gen, epoch);
}

// Writes the CRL's entries under a new generation, in transactions of
// kEntriesPerTxn; readers see none of them until the generation is referenced.
// A damaged store replaced by a new one (Repair) in the middle of an ingest:
// what was staged is in the old one, so the ingest must not go on in the new.
Status SameStore(uint64_t epoch, uint64_t now) {
  if (epoch == now) return Status::Ok();
  return Status::Error("the revocation cache was replaced during the ingest (it was damaged)");
}

Status StageEntries(RevocationStore &store, const ParsedCrl &crl, uint64_t gen, uint64_t epoch,
                    uint64_t *count) {
  Result<RevocationStore::WriteTxn> first = store.Write();
  if (!first.ok()) return first.status();
  if (Status same = SameStore(epoch, first->epoch()); !same.ok()) return same;
  std::optional<RevocationStore::WriteTxn> txn(std::move(first).value());
  size_t in_txn = 0;
  Status entries = ForEachEntry(
      crl.entries,
      [&](const std::string &mag, bool negative, int64_t when, int reason) {
        if (in_txn == kEntriesPerTxn) {
          Status commit = txn->Commit();
          if (!commit.ok()) return commit;
          txn.reset();
          Result<RevocationStore::WriteTxn> next = store.Write();
          if (!next.ok()) return next.status();
          if (Status same = SameStore(epoch, next->epoch()); !same.ok()) return same;
          txn.emplace(std::move(next).value());
          in_txn = 0;
        }
        ++in_txn;
        ++*count;
        return txn->PutRevoked(gen, mag, negative, RevokedEntry{when, reason});
      },
      /*keep_remove_from_crl=*/crl.is_delta);
  if (!entries.ok()) return entries;
  return txn->Commit();
}

// Whether delta CRL `delta` may be kept beside the cached `base` (RFC 5280
// §5.2.4, §6.3.3): same issuer and key (one IssuerId), same scope, a base no
// newer than the cached one and a crlNumber greater than its. *needs_base:
// it was issued for a newer base than the cached one.
Status DeltaFitsBase(const ParsedCrl &delta, const std::optional<CrlMeta> &base, bool *needs_base) {
  *needs_base = false;
  const std::string what = "delta CRL crl_number=" + delta.crl_number_dec + " (for base " +
                           delta.delta_base_dec + ") refused: ";
  if (!base) {
    *needs_base = true;
    return Status::Error(what + "no base CRL of " + delta.issuer +
                         (delta.scope_urls.empty()
                              ? std::string()
                              : " for the distribution point " + delta.scope_urls.front()) +
                         " is cached" + kDeltaWaitsForBase);
  }
  if (base->crl_number_dec.empty()) {
    return Status::Error(what + "the cached base CRL from " + base->source + " has no crlNumber");
  }
  if (CompareMagnitudes(delta.delta_base, base->crl_number) > 0) {
    *needs_base = true;
    return Status::Error(what + "the cached base CRL is number " + base->crl_number_dec +
                         kDeltaWaitsForBase);
  }
  if (CompareMagnitudes(delta.crl_number, base->crl_number) <= 0) {
    return Status::Error(what + "its crlNumber is not greater than the cached base CRL's (" +
                         base->crl_number_dec + ")");
  }
  constexpr uint32_t kKinds = kCrlOnlyUserCerts | kCrlOnlyCaCerts;
  if (delta.scope_urls != base->scope || (delta.flags & kKinds) != (base->flags & kKinds)) {
    return Status::Error(what + "its scope (issuingDistributionPoint) differs from its base's");
  }
  return Status::Ok();
}

// Cheap, so checked before the signature is.
Status CheckCrlTimes(const ParsedCrl &crl, int64_t now, int64_t skew) {
  if (crl.this_update > now + skew) {
    return Status::Error("the CRL's thisUpdate " + FormatTime(crl.this_update) +
                         " is in the future");
  }
  if (crl.next_update != 0 && crl.next_update < crl.this_update) {
    return Status::Error("the CRL's nextUpdate is before its thisUpdate");
  }
  return Status::Ok();
}

}  // namespace

Result<IngestResult> IngestCrl(RevocationStore &store, const ParsedCrl &crl, X509 *issuer,
                               const std::string &source, int64_t now, int64_t skew) {
  Status checked = CheckCrlTimes(crl, now, skew);
  if (checked.ok()) checked = VerifyCrl(crl, issuer);
  if (!checked.ok()) return checked;
  return IngestVerifiedCrl(store, crl, issuer, source, now, skew);
}

Result<IngestResult> IngestVerifiedCrl(RevocationStore &store, const ParsedCrl &crl, X509 *issuer,
                                       const std::string &source, int64_t now, int64_t skew) {
  const Status times = CheckCrlTimes(crl, now, skew);
  if (!times.ok()) return times;
  const std::string id = IssuerId(issuer);
  if (id.empty()) return Status::Error("cannot hash the issuer");
  // One record per (issuer, scope): a full CRL under the issuer id, each
  // partition under its own key (CrlKey); a delta beside its base.
  const std::string base_key = CrlKey(id, crl.scope_urls, crl.flags);
  const std::string key = crl.is_delta ? DeltaKey(base_key) : base_key;
  DropAbandonedGenerations(store);

  // 1. Against the cached CRL: refuse a rollback, confirm an unchanged one, or
  //    reserve a generation for the new entries.
  CrlMeta meta;
  uint64_t epoch = 0;
  {
    Result<RevocationStore::WriteTxn> txn = store.Write();
    if (!txn.ok()) return txn.status();
    if (crl.is_delta) {
      std::optional<CrlMeta> base = txn->GetCrl(base_key);
      bool needs_base = false;
      Status fits = DeltaFitsBase(crl, base, &needs_base);
      if (!fits.ok()) {
        // The base is refreshed before the delta is tried again.
        if (needs_base && base && (base->flags & kCrlBaseRefreshWanted) == 0) {
          base->flags |= kCrlBaseRefreshWanted;
          if (txn->PutCrl(base_key, *base).ok()) (void)txn->Commit();
        }
        return fits;
      }
    }
    std::optional<CrlMeta> old = txn->GetCrl(key);
    // Rollback: crlNumbers are compared within one record, i.e. per (issuer,
    // scope). RFC 5280 §5.2.3 makes crlNumber monotonic "for a given CRL scope
    // and CRL issuer": every full CRL of the issuer shares one sequence (the
    // record under the bare issuer id), while each partition (its signed
    // issuingDistributionPoint) has its own, and CAs number partitions
    // independently, so comparing across partitions would refuse valid CRLs.
    // An old CRL cannot be replayed under another partition's URL: its record
    // is chosen by its own signed IDP, not by the URL it came from (where it
    // meets its own partition's newer number and is refused), and a fetched
    // CRL whose IDP does not name its URL is refused before ingest.
    if (old) {
      if (CompareToCached(crl, *old) < 0) return RolledBack(crl, *old);
      if (old->scope == crl.scope_urls && IsUnchanged(crl, *old)) {
        old->checked_at = now;
        // A record from before certgate_strict learns its crlNumber's criticality.
        if ((old->flags & kCrlDefectsRecorded) == 0)
          old->flags |= crl.flags & (kCrlNumberCritical | kCrlDefectsRecorded);
        // Confirmed as the newest: a delta that wanted a newer base waits.
        old->flags &= ~kCrlBaseRefreshWanted;
        old->delta_urls = crl.freshest_urls;  // stored by a version unaware of deltas
        Status put = txn->PutCrl(key, *old);
        if (put.ok()) put = txn->Commit();
        if (!put.ok()) return put;
        IngestResult result;
        result.outcome = IngestResult::Outcome::kUnchanged;
        result.meta = *old;
        return result;
      }
    }
    Result<uint64_t> gen = txn->NewGeneration();
    if (!gen.ok()) return gen.status();
    meta.gen = gen.value();
    epoch = txn->epoch();
    Status marked = txn->MarkStaging(meta.gen, getpid());
    if (marked.ok()) marked = txn->Commit();
    if (!marked.ok()) return marked;
  }
  meta.this_update = crl.this_update;
  meta.next_update = crl.next_update;
  meta.crl_number = crl.crl_number;
  meta.crl_number_dec = crl.crl_number_dec;
  meta.source = source;
  meta.ingested_at = now;
  meta.checked_at = now;
  meta.flags = crl.flags;
  meta.issuer = crl.issuer;
  meta.scope = crl.scope_urls;
  meta.delta_urls = crl.freshest_urls;
  if (crl.is_delta) {
    meta.delta_base = crl.delta_base;
    meta.delta_base_dec = crl.delta_base_dec;
  }

  // 2. The entries, out of readers' sight.
  Status staged = StageEntries(store, crl, meta.gen, epoch, &meta.count);
  if (!staged.ok()) {
    (void)DropGeneration(store, meta.gen, epoch);
    return staged;
  }

  // What was stored, as a count and digest the readers check it against.
  {
    Result<RevocationStore::ReadTxn> read = store.Read();
    Status digested = !read.ok() ? read.status() : SameStore(epoch, read->epoch());
    if (digested.ok()) digested = read->DigestSerials(meta.gen, &meta.stored, &meta.serial_digest);
    if (!digested.ok()) {
      (void)DropGeneration(store, meta.gen, epoch);
      return digested;
    }
  }

  // 3. The switch, in one transaction: readers see the old CRL or the new one.
  //    Another process may have stored a CRL meanwhile: compare again.
  std::optional<CrlMeta> replaced;
  Status switched = Status::Ok();
  IngestResult result;
  {
    Result<RevocationStore::WriteTxn> txn = store.Write();
    if (!txn.ok()) {
      switched = txn.status();
    } else if (Status same = SameStore(epoch, txn->epoch()); !same.ok()) {
      switched = same;
    } else {
      bool needs_base = false;
      if (crl.is_delta) switched = DeltaFitsBase(crl, txn->GetCrl(base_key), &needs_base);
      replaced = txn->GetCrl(key);
      const bool same_scope = replaced && replaced->scope == crl.scope_urls;
      if (!switched.ok()) {
        replaced.reset();  // the base changed meanwhile
      } else if (replaced && CompareToCached(crl, *replaced) < 0) {
        switched = RolledBack(crl, *replaced);
      } else if (same_scope && IsUnchanged(crl, *replaced)) {
        result.outcome = IngestResult::Outcome::kUnchanged;
        result.meta = *replaced;
        replaced.reset();
      } else {
        switched = txn->PutCrl(key, meta);
        if (switched.ok()) switched = txn->ClearStaging(meta.gen);
        if (switched.ok()) switched = txn->Commit();
        if (switched.ok()) result.meta = meta;
      }
    }
  }
  if (!switched.ok() || result.outcome == IngestResult::Outcome::kUnchanged) {
    (void)DropGeneration(store, meta.gen, epoch);
    if (!switched.ok()) return switched;
    return result;
  }
  // 4. The replaced CRL's entries (left to the next ingest's sweep if this fails).
  if (replaced) (void)DropGeneration(store, replaced->gen, epoch);
  return result;
}

}  // namespace certgate
