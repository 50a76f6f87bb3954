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
      crl.entries, [&](const std::string &mag, bool negative, int64_t when, int reason) {
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
      });
  if (!entries.ok()) return entries;
  return txn->Commit();
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
  DropAbandonedGenerations(store);

  // 1. Against the cached CRL: refuse a rollback, confirm an unchanged one, or
  //    reserve a generation for the new entries.
  CrlMeta meta;
  uint64_t epoch = 0;
  {
    Result<RevocationStore::WriteTxn> txn = store.Write();
    if (!txn.ok()) return txn.status();
    std::optional<CrlMeta> old = txn->GetCrl(id);
    // The store holds one CRL per issuer, so numbers are compared per issuer,
    // across scopes: an older CRL of another partition must not replace a
    // newer one (its certificates would lose the newer revocations). One of
    // the same number but another scope does take the issuer's place.
    if (old) {
      if (CompareToCached(crl, *old) < 0) return RolledBack(crl, *old);
      if (old->scope == crl.scope_urls && IsUnchanged(crl, *old)) {
        old->checked_at = now;
        // A record from before certgate_strict learns its crlNumber's criticality.
        if ((old->flags & kCrlDefectsRecorded) == 0)
          old->flags |= crl.flags & (kCrlNumberCritical | kCrlDefectsRecorded);
        Status put = txn->PutCrl(id, *old);
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
      replaced = txn->GetCrl(id);
      const bool same_scope = replaced && replaced->scope == crl.scope_urls;
      if (replaced && CompareToCached(crl, *replaced) < 0) {
        switched = RolledBack(crl, *replaced);
      } else if (same_scope && IsUnchanged(crl, *replaced)) {
        result.outcome = IngestResult::Outcome::kUnchanged;
        result.meta = *replaced;
        replaced.reset();
      } else {
        switched = txn->PutCrl(id, meta);
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
