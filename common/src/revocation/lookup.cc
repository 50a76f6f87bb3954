#include "lookup.h"

#include <openssl/ocsp.h>

#include <algorithm>

#include "cert_fields.h"
#include "revocation/crl.h"
#include "revocation/issuer_keys.h"
#include "text.h"

namespace certgate {

namespace {

constexpr int64_t kOcspDefaultValidity = 3600;  // answers without nextUpdate
// A CDP that keeps serving the same CRL past its nextUpdate (a CA late to
// publish) answers "unchanged" every time; without a pause every request
// would ask it again. (OCSP answers are per certificate: never paused here.)
constexpr int64_t kUnchangedPauseSeconds = 2;

bool IsCa(X509 *cert) { return X509_check_ca(cert) != 0; }

// One source's view of one certificate.
struct View {
  enum Kind { kMissing, kGood, kGoodPastNext, kRevoked, kStale, kUnknownAnswer } kind = kMissing;
  std::string source;
  std::string note;
  int64_t revoked_at = 0;
  int reason = -1;
  bool due = true;                              // missing or due for refresh
  std::string crl_defects, crl_defects_detail;  // RevocationAnswer's
  std::vector<std::string> delta_urls;          // CRL: where the base's deltas are
  bool delta_due = false;                       // CRL: its delta is missing or due
  bool delta_missing = false;                   // CRL: no delta applies to the base
};

// `settings.strict`: a CRL that breaks RFC 5280 §5.2.3 then vouches for no
// certificate (its revocations still count).
View CrlView(const RevocationStore::ReadTxn &txn, X509 *cert, const std::string &issuer_id,
             const std::string &serial, bool negative, int64_t now,
             const RevocationSettings &settings) {
  View view;
  // The issuer's CRL whose scope covers this certificate (RFC 5280 §6.3.3
  // b.2): a partitioned CRL says nothing of certificates in another partition.
  const std::vector<std::pair<std::string, CrlMeta>> records = txn.GetIssuerCrls(issuer_id);
  const bool is_ca = IsCa(cert);
  const auto *covering = CoveringCrl(records, CrlUrls(cert), is_ca);
  if (covering == nullptr) {
    view.note = "no CRL cached for this issuer";
    for (const auto &record : records) {
      const CrlMeta &other = record.second;
      if (!other.delta_base_dec.empty()) continue;
      view.note = !other.scope.empty()
                      ? "the cached CRL covers only the distribution point " + other.scope.front() +
                            ", which this certificate does not name"
                      : "the cached CRL does not cover this kind of certificate";
      if (!other.scope.empty()) break;
    }
    return view;
  }
  const std::string &base_key = covering->first;
  const CrlMeta *meta = &covering->second;
  const bool from_url = meta->source.rfind("file:", 0) != 0;
  // Its delta CRL (RFC 5280 §5.2.4), when one is kept that applies to it.
  const CrlMeta *delta = nullptr;
  const std::string delta_key = DeltaKey(base_key);
  for (const auto &[key, record] : records) {
    if (key == delta_key) delta = &record;
  }
  if (delta != nullptr && !DeltaApplies(*meta, *delta)) delta = nullptr;
  // Where deltas are published: the base's freshestCRL, and the certificate's.
  view.delta_urls = meta->delta_urls;
  for (std::string &url : FreshestCrlUrls(cert)) {
    if (std::find(view.delta_urls.begin(), view.delta_urls.end(), url) == view.delta_urls.end())
      view.delta_urls.push_back(std::move(url));
  }
  const std::string numbers =
      (meta->crl_number_dec.empty() ? "" : " crl_number=" + meta->crl_number_dec) +
      (delta ? " delta=" + delta->crl_number_dec : "");
  view.source = "crl " + (from_url ? meta->source : meta->source.substr(5)) + numbers;
  // Damage is never "not revoked": the first use of a CRL in this process
  // checks its serials against their digest, and every lookup its neighbours.
  SerialLookup found = txn.VerifySerials(*meta).ok() ? txn.FindRevoked(meta->gen, serial, negative)
                                                     : SerialLookup{SerialLookup::kDamaged, {}};
  if (delta && found.kind != SerialLookup::kDamaged) {
    const SerialLookup in_delta = txn.VerifySerials(*delta).ok()
                                      ? txn.FindRevoked(delta->gen, serial, negative)
                                      : SerialLookup{SerialLookup::kDamaged, {}};
    constexpr int kCertificateHold = 6, kRemoveFromCrl = 8;
    if (in_delta.kind == SerialLookup::kDamaged) {
      found = in_delta;
    } else if (in_delta.kind == SerialLookup::kRevoked && in_delta.entry.reason != kRemoveFromCrl) {
      // Revoked since the base (or its hold made final): the delta says so.
      found = in_delta;
      const bool delta_from_url = delta->source.rfind("file:", 0) != 0;
      view.source = "crl " + (delta_from_url ? delta->source : delta->source.substr(5)) + numbers;
    } else if (in_delta.kind == SerialLookup::kRevoked && found.kind == SerialLookup::kRevoked &&
               found.entry.reason == kCertificateHold) {
      found = SerialLookup{};  // removeFromCRL: the hold was lifted
    }
  }
  // The freshest data's nextUpdate bounds how long the answer holds.
  int64_t next = meta->next_update;
  if (delta && delta->next_update != 0 && (next == 0 || delta->next_update < next))
    next = delta->next_update;
  if (found.kind == SerialLookup::kDamaged) {
    view.note = "the revocation cache is damaged";
    view.due = false;
    return view;
  }
  const bool strict = settings.strict;
  const int64_t max_stale = settings.max_stale;
  const std::vector<std::string_view> defects = CrlStrictDefects(*meta);
  // A record from before certgate_strict: whether its crlNumber is critical
  // is unknown until it is ingested again (forced below). Meanwhile it is
  // judged as the certgate that stored it judged it: after a module upgrade
  // with the CDP down, hard_fail must not lock every client out for a flag
  // that almost no CA sets (a missing crlNumber is known, and refused).
  const bool unrecorded = strict && defects.empty() && (meta->flags & kCrlDefectsRecorded) == 0;
  if (found.kind == SerialLookup::kRevoked) {
    // Still refreshed when due: the CRL serves every cert of this issuer, and a
    // certificateHold may be lifted.
    view.kind = View::kRevoked;
    view.revoked_at = found.entry.revoked_at;
    view.reason = found.entry.reason;
  } else if (!delta && !view.delta_urls.empty()) {
    // AD CS requires its delta once published: without it the base is old news.
    view.kind = View::kUnknownAnswer;
    view.note =
        "the base CRL (" + view.source + ") names a delta CRL, and no valid delta CRL is cached";
  } else if (strict && !defects.empty()) {
    view.kind = View::kUnknownAnswer;
    view.crl_defects = JoinNames(defects);
    view.note = DescribeCrlStrictDefects(*meta) +
                ", so it is no proof of \"good\" under certgate_strict on";
  } else if (next == 0 || now <= next) {
    view.kind = View::kGood;
  } else if (now <= next + max_stale) {
    view.kind = View::kGoodPastNext;
    view.note =
        "the CRL's nextUpdate " + FormatTime(next) + " has passed; used within certgate_max_stale";
  } else {
    view.kind = View::kStale;
    view.note = "the cached CRL (" + view.source + ") expired: nextUpdate " + FormatTime(next) +
                " + certgate_max_stale " + std::to_string(max_stale) + " s < now";
  }
  if ((view.kind == View::kGood || view.kind == View::kGoodPastNext) && !defects.empty()) {
    view.crl_defects = JoinNames(defects);  // accepted: certgate_strict is off
    view.crl_defects_detail = DescribeCrlStrictDefects(*meta);
  }
  // Refresh ahead of nextUpdate, and periodically for fetched CRLs.
  const int64_t base_next = meta->next_update;
  const int64_t base_ahead =
      base_next != 0 ? std::min<int64_t>((base_next - meta->this_update) / 10, 3600) : 0;
  view.due = unrecorded || (meta->flags & kCrlBaseRefreshWanted) != 0 ||
             (base_next != 0 && now >= base_next - base_ahead) ||
             (from_url &&
              now - std::max(meta->checked_at, meta->ingested_at) >= settings.refresh_interval);
  if (!view.delta_urls.empty()) {
    const int64_t delta_ahead =
        delta && delta->next_update != 0
            ? std::min<int64_t>((delta->next_update - delta->this_update) / 10, 3600)
            : 0;
    view.delta_missing = !delta;
    view.delta_due =
        !delta || (delta->next_update != 0 && now >= delta->next_update - delta_ahead) ||
        (delta->source.rfind("file:", 0) != 0 &&
         now - std::max(delta->checked_at, delta->ingested_at) >= settings.refresh_interval);
  }
  return view;
}

View OcspView(const RevocationStore::ReadTxn &txn, const std::string &cert_id, int64_t now,
              const RevocationSettings &settings) {
  View view;
  std::optional<OcspRecord> record = txn.GetOcsp(cert_id);
  if (!record) {
    view.note = "no OCSP answer cached";
    return view;
  }
  view.source = "ocsp " + record->source;
  const int64_t next =
      record->next_update != 0 ? record->next_update : record->this_update + kOcspDefaultValidity;
  int64_t ahead = std::min<int64_t>((next - record->this_update) / 10, 3600);
  view.due = now >= next - ahead || now - record->fetched_at >= settings.refresh_interval;
  if (record->status == V_OCSP_CERTSTATUS_REVOKED) {
    view.kind = View::kRevoked;
    view.revoked_at = record->revoked_at;
    view.reason = record->reason;
    view.due = false;
  } else if (record->status == V_OCSP_CERTSTATUS_UNKNOWN) {
    view.kind = View::kUnknownAnswer;
    view.note = "the OCSP responder " + record->source + " does not know this certificate";
  } else if (now <= next) {
    view.kind = View::kGood;
  } else if (now <= next + settings.max_stale) {
    view.kind = View::kGoodPastNext;
    view.note = "the OCSP answer's nextUpdate " + FormatTime(next) +
                " has passed; used within certgate_max_stale";
  } else {
    view.kind = View::kStale;
    view.note = "the cached OCSP answer expired: nextUpdate " + FormatTime(next) +
                " + certgate_max_stale " + std::to_string(settings.max_stale) + " s < now";
  }
  return view;
}

// Describes the URLs of a source for an unknown/stale detail.
std::string DescribeUrls(const RevocationStore::ReadTxn &txn, const char *kind,
                         const std::vector<std::string> &urls, const FetchLimits &limits,
                         int64_t now) {
  if (urls.empty()) return std::string(kind) + ": the certificate names no URL";
  std::string out;
  for (const std::string &url : urls) {
    if (!out.empty()) out += "; ";
    out += std::string(kind) + " " + url + ": ";
    std::string refusal = UrlRefusal(url, limits);
    if (!refusal.empty()) {
      out += "skipped, " + refusal;
      continue;
    }
    std::optional<UrlState> state = txn.GetUrl(url);
    if (!state || state->last_attempt == 0) {
      out += "not fetched yet";
      continue;
    }
    out += (state->last_ok ? "ok " : "failed: ") + state->last_result + " (" +
           std::to_string(state->duration_ms) + " ms, at " + FormatTime(state->last_attempt) + ")";
    if (state->backoff_until > now) {
      out += ", next attempt after " + FormatTime(state->backoff_until) + " (backoff)";
    }
  }
  return out;
}

bool RecentlyUnchanged(const UrlState &state, int64_t now) {
  const bool unchanged = state.last_result.rfind("unchanged", 0) == 0 ||
                         state.last_result.rfind("not modified", 0) == 0;
  return state.last_ok && unchanged && now - state.last_attempt < kUnchangedPauseSeconds;
}

std::vector<std::string> FetchableUrls(const RevocationStore::ReadTxn &txn,
                                       const std::vector<std::string> &urls,
                                       const FetchLimits &limits, int64_t now) {
  std::vector<std::string> out;
  for (const std::string &url : urls) {
    if (!UrlRefusal(url, limits).empty()) continue;
    std::optional<UrlState> state = txn.GetUrl(url);
    if (state && state->backoff_until > now) continue;
    if (state && RecentlyUnchanged(*state, now)) continue;
    out.push_back(url);
  }
  return out;
}

}  // namespace

const char *RevocationModeName(RevocationMode mode) {
  switch (mode) {
    case RevocationMode::kCacheOnly:
      return "cache_only";
    case RevocationMode::kSoftFail:
      return "soft_fail";
    case RevocationMode::kHardFail:
      return "hard_fail";
    case RevocationMode::kOff:
      break;
  }
  return "off";
}

const char *RevocationStatusName(RevocationStatus status) {
  switch (status) {
    case RevocationStatus::kGood:
      return "good";
    case RevocationStatus::kRevoked:
      return "revoked";
    case RevocationStatus::kUnknown:
      return "unknown";
    case RevocationStatus::kStale:
      return "stale";
  }
  return "?";
}

RevocationSettings RevocationSettings::From(const Policy &policy, int64_t refresh_interval) {
  RevocationSettings settings;
  settings.mode = policy.EffectiveRevocation();
  settings.chain_scope = policy.EffectiveRevocationScope() == RevocationScope::kChain;
  settings.sources = policy.EffectiveRevocationSources();
  settings.max_stale = policy.EffectiveMaxStale().count();
  settings.strict = policy.EffectiveStrict();
  settings.limits = FetchLimitsFrom(policy);
  settings.refresh_interval = refresh_interval;
  return settings;
}

std::vector<CertLookup> LookUpChain(const Result<RevocationStore::ReadTxn> &txn,
                                    const ChainEvidence &evidence,
                                    const RevocationSettings &settings, int64_t now) {
  std::vector<CertLookup> lookups;
  const RevocationMode mode = settings.mode;
  if (mode == RevocationMode::kOff || evidence.chain.empty()) return lookups;
  const size_t n = evidence.chain.size();
  const size_t checkable = evidence.anchored ? n - 1 : n;  // the anchor is never checked
  const size_t count = settings.chain_scope ? checkable : std::min<size_t>(checkable, 1);
  const bool may_fetch =
      evidence.anchored && (mode == RevocationMode::kSoftFail || mode == RevocationMode::kHardFail);
  for (size_t depth = 0; depth < count; ++depth) {
    X509 *cert = evidence.chain[depth].get();
    X509 *issuer = depth + 1 < n ? evidence.chain[depth + 1].get() : nullptr;
    CertLookup lookup;
    if (!txn.ok()) {
      lookup.answer.detail =
          std::string("mode=") + RevocationModeName(mode) + "; " + txn.status().message();
    } else if (issuer == nullptr) {
      lookup.answer.detail = std::string("mode=") + RevocationModeName(mode) + "; the issuer of " +
                             NameToString(X509_get_subject_name(cert)) + " is not in the chain";
    } else {
      lookup = LookUpCert(txn.value(), cert, issuer, settings, may_fetch, now);
    }
    lookup.answer.depth = static_cast<int>(depth);
    if (depth > 0) {
      lookup.answer.subject = NameToString(X509_get_subject_name(cert));
      lookup.answer.serial = SerialHex(cert);
    }
    lookup.cert = cert;
    lookup.issuer = issuer;
    lookups.push_back(std::move(lookup));
  }
  return lookups;
}

CertLookup LookUpCert(const RevocationStore::ReadTxn &txn, X509 *cert, X509 *issuer,
                      const RevocationSettings &settings, bool may_fetch, int64_t now) {
  CertLookup lookup;
  lookup.cert = cert;
  lookup.issuer = issuer;
  RevocationAnswer *answer = &lookup.answer;
  const std::vector<RevocationSource> &sources = settings.sources;
  const FetchLimits &limits = settings.limits;
  const std::string issuer_id = IssuerId(issuer);
  bool negative = false;
  const std::string serial = SerialMagnitude(cert, &negative);
  std::string cert_id;
  std::vector<View> views;
  for (RevocationSource source : sources) {
    if (source == RevocationSource::kCrl) {
      views.push_back(CrlView(txn, cert, issuer_id, serial, negative, now, settings));
    } else {
      cert_id = OcspCertIdKey(cert, issuer);
      views.push_back(OcspView(txn, cert_id, now, settings));
    }
  }
  // Revoked anywhere wins; then the first fresh good; then good past nextUpdate.
  const View *chosen = nullptr;
  for (const View &v : views) {
    if (v.kind == View::kRevoked) {
      chosen = &v;
      break;
    }
  }
  for (View::Kind kind : {View::kGood, View::kGoodPastNext}) {
    for (const View &v : views) {
      if (chosen == nullptr && v.kind == kind) chosen = &v;
    }
  }
  bool any_stale =
      std::any_of(views.begin(), views.end(), [](const View &v) { return v.kind == View::kStale; });

  // Ask for what is missing or due (not when a fresh source already answers,
  // except to refresh that very source).
  const std::vector<std::string> cdp_urls = CrlUrls(cert);
  lookup.crl_key = CrlPendingKey(issuer_id, cdp_urls);
  lookup.ocsp_key = cert_id.empty() ? std::string() : "ocsp:" + LowerHex(cert_id);
  for (size_t i = 0; i < sources.size(); ++i) {
    const View &v = views[i];
    const bool answered_elsewhere = chosen != nullptr && chosen != &v &&
                                    (chosen->kind == View::kGood || chosen->kind == View::kRevoked);
    if ((!v.due && !v.delta_due) || answered_elsewhere) continue;
    if (sources[i] == RevocationSource::kCrl && v.due) {
      if (v.kind == View::kMissing) {
        lookup.wanted.push_back({WantedWork::Kind::kIngestWaitingFile, lookup.crl_key, {}, {}});
      }
      std::vector<std::string> urls =
          may_fetch ? FetchableUrls(txn, CrlUrls(cert), limits, now) : std::vector<std::string>{};
      if (!urls.empty()) {
        lookup.wanted.push_back({WantedWork::Kind::kFetchCrl, lookup.crl_key, {}, std::move(urls)});
      }
    }
    if (sources[i] == RevocationSource::kCrl && v.delta_due) {
      // After the base (a delta is checked against the cached base).
      lookup.delta_key = DeltaPendingKey(issuer_id, cdp_urls);
      if (v.delta_missing) {
        lookup.wanted.push_back({WantedWork::Kind::kIngestWaitingFile, lookup.delta_key, {}, {}});
      }
      if (!may_fetch) continue;
      std::vector<std::string> urls = FetchableUrls(txn, v.delta_urls, limits, now);
      if (!urls.empty()) {
        lookup.wanted.push_back(
            {WantedWork::Kind::kFetchCrl, lookup.delta_key, {}, std::move(urls)});
      }
    } else if (sources[i] == RevocationSource::kOcsp && may_fetch) {
      std::vector<std::string> urls = FetchableUrls(txn, AiaUrls(cert, NID_ad_OCSP), limits, now);
      if (!urls.empty()) {
        lookup.wanted.push_back(
            {WantedWork::Kind::kFetchOcsp, lookup.ocsp_key, cert_id, std::move(urls)});
      }
    }
  }

  if (chosen != nullptr) {
    answer->source = chosen->source;
    if (chosen->kind == View::kRevoked) {
      answer->status = RevocationStatus::kRevoked;
      answer->revoked_at = chosen->revoked_at;
      answer->reason = CrlReasonName(chosen->reason);
      return lookup;
    }
    answer->status = RevocationStatus::kGood;
    answer->crl_defects = chosen->crl_defects;
    answer->crl_defects_detail = chosen->crl_defects_detail;
    if (chosen->kind == View::kGoodPastNext) {
      // Past nextUpdate: say how the refresh fares.
      const bool crl =
          sources[static_cast<size_t>(chosen - views.data())] == RevocationSource::kCrl;
      answer->detail = chosen->note + "; " +
                       (crl ? DescribeUrls(txn, "crl", CrlUrls(cert), limits, now)
                            : DescribeUrls(txn, "ocsp", AiaUrls(cert, NID_ad_OCSP), limits, now));
    }
    return lookup;
  }
  answer->status = any_stale ? RevocationStatus::kStale : RevocationStatus::kUnknown;
  for (const View &v : views) {
    // A stale answer still says which data it is (crl URL crl_number=N).
    if (any_stale && v.kind == View::kStale && answer->source.empty()) answer->source = v.source;
    if (!v.crl_defects.empty()) answer->crl_defects = v.crl_defects;
  }
  std::string detail = std::string("mode=") + RevocationModeName(settings.mode);
  for (size_t i = 0; i < sources.size(); ++i) {
    const View &v = views[i];
    detail += "; " + v.note;
    if (sources[i] == RevocationSource::kCrl) {
      detail += "; " + DescribeUrls(txn, "crl", CrlUrls(cert), limits, now);
      if (v.kind == View::kUnknownAnswer && !v.delta_urls.empty()) {
        detail += "; " + DescribeUrls(txn, "delta crl", v.delta_urls, limits, now);
      }
    } else {
      detail += "; " + DescribeUrls(txn, "ocsp", AiaUrls(cert, NID_ad_OCSP), limits, now);
    }
  }
  if (!may_fetch) {
    detail += settings.mode == RevocationMode::kCacheOnly
                  ? "; cache_only: nothing is fetched (certgate_revocation soft_fail/hard_fail "
                    "fetch)"
                  : "; the chain is not anchored: nothing is fetched";
  }
  answer->detail = std::move(detail);
  lookup.notes_in_flight = true;
  return lookup;
}

}  // namespace certgate
