#include "admin.h"

#include <certgate/cert_facts.h>
#include <certgate/ossl_ptr.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>

#include "cert_fields.h"
#include "revocation/crl.h"
#include "revocation/issuer_fetch.h"
#include "revocation/issuer_keys.h"
#include "revocation/ldap_url.h"
#include "revocation/ocsp.h"
#include "text.h"

namespace certgate {

namespace {

std::string Ago(int64_t then, int64_t now) {
  if (then == 0) return "never";
  return FormatTime(then) + " (" + std::to_string(now - then) + " s ago)";
}

// Fetches a caIssuers URL and says whether it serves `cert`'s issuer. Nothing
// is stored: this reports what a client would find there.
void FetchCaIssuers(X509 *cert, const FetchLimits &limits, UrlFetch *fetch) {
  HttpRequest request;
  request.url = fetch->url;
  request.limits = limits;
  request.ldap_attribute = kLdapCaCertAttribute;
  const HttpResponse response = HttpFetch(request);
  fetch->elapsed_ms = response.duration_ms;
  fetch->http_status = response.completed ? response.status : 0;
  if (!response.completed || response.status != 200) {
    fetch->outcome = UrlFetch::Outcome::kUnavailable;
    fetch->why = response.completed ? "HTTP " + std::to_string(response.status) : response.error;
    return;
  }
  Result<std::vector<std::shared_ptr<X509>>> cas = ParseIssuerResponse(response.body);
  if (!cas.ok()) {
    fetch->outcome = UrlFetch::Outcome::kFailed;
    fetch->why = cas.status().message();
    return;
  }
  // A .p7c may hold several CAs: the one that signed `cert` is the answer.
  for (const std::shared_ptr<X509> &issuer : cas.value()) {
    fetch->fetched_issuer = NameToString(X509_get_subject_name(issuer.get()));
    ossl::UniquePtr<EVP_PKEY> key(X509_get_pubkey(issuer.get()));
    if (X509_check_issued(issuer.get(), cert) == X509_V_OK && key &&
        X509_verify(cert, key.get()) == 1) {
      fetch->outcome = UrlFetch::Outcome::kVerified;
      fetch->why = "the issuer \"" + fetch->fetched_issuer + "\"";
      return;
    }
  }
  fetch->outcome = UrlFetch::Outcome::kFailed;
  fetch->why = "it serves \"" + fetch->fetched_issuer + "\", which did not issue this certificate";
}

// A URL refused before any fetch: by scheme (skipped) or by the policy.
bool Refused(const std::string &url, const FetchLimits &limits, UrlFetch *fetch) {
  const std::string refusal = UrlRefusal(url, limits);
  if (refusal.empty()) return false;
  fetch->why = refusal;
  fetch->outcome = refusal.find("certgate_fetch_allow") != std::string::npos
                       ? UrlFetch::Outcome::kNotFetched
                       : UrlFetch::Outcome::kSkipped;
  return true;
}

}  // namespace

const char *UrlFetchKindName(UrlFetch::Kind kind) {
  switch (kind) {
    case UrlFetch::Kind::kCrl:
      return "CDP";
    case UrlFetch::Kind::kDeltaCrl:
      return "freshestCRL";
    case UrlFetch::Kind::kCaIssuers:
      return "AIA caIssuers";
    case UrlFetch::Kind::kOcsp:
      return "OCSP";
  }
  return "?";
}

const char *UrlFetchOutcomeName(UrlFetch::Outcome outcome) {
  switch (outcome) {
    case UrlFetch::Outcome::kVerified:
      return "Verified";
    case UrlFetch::Outcome::kUnavailable:
      return "Unavailable";
    case UrlFetch::Outcome::kFailed:
      return "Failed";
    case UrlFetch::Outcome::kNotFetched:
      return "Not fetched";
    case UrlFetch::Outcome::kSkipped:
      return "Skipped";
    case UrlFetch::Outcome::kNoUrl:
      return "No URL";
  }
  return "?";
}

std::string UrlFetchResultText(const UrlFetch &fetch) {
  std::string out = UrlFetchOutcomeName(fetch.outcome);
  if (fetch.outcome != UrlFetch::Outcome::kVerified && !fetch.why.empty()) out += ": " + fetch.why;
  if (fetch.elapsed_ms >= 0) out += " (" + std::to_string(fetch.elapsed_ms) + " ms)";
  if (fetch.outcome != UrlFetch::Outcome::kVerified) return out;
  if (fetch.kind == UrlFetch::Kind::kCaIssuers) return out + ": " + fetch.why;
  out += ":";
  if (!fetch.ocsp_status.empty()) out += " status=" + fetch.ocsp_status;
  if (!fetch.crl_number.empty()) out += " crl_number=" + fetch.crl_number;
  if (!fetch.delta_base.empty()) out += " base=" + fetch.delta_base;
  if (fetch.this_update != 0) out += " thisUpdate=" + FormatTime(fetch.this_update);
  out += " nextUpdate=" + (fetch.next_update != 0 ? FormatTime(fetch.next_update) : "none");
  if (fetch.why.rfind("unchanged", 0) == 0) out += " (unchanged)";
  return out;
}

std::vector<UrlFetch> FetchUrls(FetchScheduler &scheduler, const Clock &clock,
                                const ChainEvidence &evidence, const Policy &policy) {
  std::vector<UrlFetch> fetches;
  const FetchLimits limits = FetchLimitsFrom(policy);
  for (size_t d = 0; d < evidence.chain.size(); ++d) {
    X509 *cert = evidence.chain[d].get();
    // The anchor is not checked; a chain that reaches none fetches nothing.
    const bool is_anchor = evidence.anchored && d + 1 == evidence.chain.size();
    const bool fetch = evidence.anchored && !is_anchor;
    auto job = std::make_shared<FetchScheduler::Job>();
    job->cert = evidence.chain[d];
    if (d + 1 < evidence.chain.size()) job->issuer = evidence.chain[d + 1];
    job->limits = limits;
    job->created = clock.Now();
    UrlFetch base;
    base.depth = static_cast<int>(d);
    base.subject = NameToString(X509_get_subject_name(cert));
    auto run = [&](const std::vector<std::string> &urls, UrlFetch::Kind kind) {
      if (urls.empty() && (kind == UrlFetch::Kind::kCrl || kind == UrlFetch::Kind::kOcsp)) {
        UrlFetch none = base;
        none.kind = kind;
        fetches.push_back(std::move(none));
      }
      for (const std::string &url : urls) {
        UrlFetch out = base;
        out.kind = kind;
        out.url = url;
        if (!fetch) {
          out.outcome = UrlFetch::Outcome::kNotFetched;
          out.why = is_anchor ? "the trust anchor is not checked for revocation"
                              : "the chain does not reach a trust anchor";
        } else if (Refused(url, limits, &out)) {
          // Listed with why: certutil's "Skipped" / "Not fetched".
        } else if (kind == UrlFetch::Kind::kCaIssuers) {
          FetchCaIssuers(cert, limits, &out);
        } else {
          const bool ocsp = kind == UrlFetch::Kind::kOcsp;
          scheduler.TakeLease(url, limits, clock.Now(), /*ignore_backoff=*/true);
          HttpRequest request = scheduler.BuildRequest(*job, url, ocsp);
          if (kind == UrlFetch::Kind::kDeltaCrl) request.ldap_attribute = kLdapDeltaCrlAttribute;
          request.if_none_match.clear();
          request.if_modified_since.clear();
          HttpResponse response = HttpFetch(request);
          bool ok = false;
          out.why = scheduler.Process(*job, url, ocsp, response, &ok, &out);
          scheduler.RecordUrl(url, ok, out.why, response);
          out.elapsed_ms = response.duration_ms;
          out.http_status = response.completed ? response.status : 0;
          out.outcome = ok ? UrlFetch::Outcome::kVerified
                        : (!response.completed || response.status != 200)
                            ? UrlFetch::Outcome::kUnavailable
                            : UrlFetch::Outcome::kFailed;
        }
        fetches.push_back(std::move(out));
      }
    };
    run(CrlUrls(cert), UrlFetch::Kind::kCrl);
    // Its delta CRLs, after the base they apply to: named by the certificate
    // and by the base CRL now cached.
    std::vector<std::string> delta_urls = FreshestCrlUrls(cert);
    if (Result<RevocationStore::ReadTxn> txn = scheduler.store().Read(); txn.ok() && job->issuer) {
      const std::vector<std::pair<std::string, CrlMeta>> records =
          txn->GetIssuerCrls(IssuerId(job->issuer.get()));
      if (const auto *base_crl = CoveringCrl(records, CrlUrls(cert), X509_check_ca(cert) != 0)) {
        for (const std::string &url : base_crl->second.delta_urls) {
          if (std::find(delta_urls.begin(), delta_urls.end(), url) == delta_urls.end())
            delta_urls.push_back(url);
        }
      }
    }
    run(delta_urls, UrlFetch::Kind::kDeltaCrl);
    run(AiaUrls(cert, NID_ad_ca_issuers), UrlFetch::Kind::kCaIssuers);
    if (job->issuer) {
      if (Result<std::string> request = OcspRequestDer(cert, job->issuer.get()); request.ok()) {
        job->request = request.value();
        job->cert_id = OcspCertIdKey(cert, job->issuer.get());
      }
    }
    const std::vector<std::string> ocsp_urls = AiaUrls(cert, NID_ad_OCSP);
    if (fetch && job->request.empty()) {
      for (const std::string &url : ocsp_urls) {
        UrlFetch failed = base;
        failed.kind = UrlFetch::Kind::kOcsp;
        failed.url = url;
        failed.outcome = UrlFetch::Outcome::kFailed;
        failed.why = "no OCSP request can be made for this certificate";
        fetches.push_back(std::move(failed));
      }
    } else {
      run(ocsp_urls, UrlFetch::Kind::kOcsp);
    }
  }
  return fetches;
}

std::vector<std::string> FetchNow(FetchScheduler &scheduler, const Clock &clock,
                                  const ChainEvidence &evidence, const Policy &policy) {
  std::vector<std::string> lines;
  if (!evidence.anchored) {
    lines.push_back("the chain does not reach a trust anchor: nothing is fetched");
    return lines;
  }
  for (const UrlFetch &fetch : FetchUrls(scheduler, clock, evidence, policy)) {
    lines.push_back("depth " + std::to_string(fetch.depth) + " " + UrlFetchKindName(fetch.kind) +
                    (fetch.url.empty() ? "" : " " + fetch.url) + ": " + UrlFetchResultText(fetch));
  }
  return lines;
}

std::vector<std::string> ListStore(RevocationStore &store, const Clock &clock) {
  std::vector<std::string> lines;
  Result<RevocationStore::Listing> listing = store.List();
  if (!listing.ok()) {
    lines.push_back("error: " + listing.status().message());
    return lines;
  }
  const int64_t now = clock.Now();
  for (const auto &[id, m] : listing->crls) {
    const std::vector<std::string_view> defects = CrlStrictDefects(m);
    const std::string strict = !defects.empty() ? " strict_defects=" + JoinNames(defects)
                               : (m.flags & kCrlDefectsRecorded) == 0 ? " strict_defects=unrecorded"
                                                                      : "";
    const bool is_delta = !m.delta_base_dec.empty();
    std::string deltas, dp;
    for (const std::string &url : m.delta_urls) deltas += (deltas.empty() ? "" : ",") + url;
    // The distribution point (issuingDistributionPoint) the CRL covers: its
    // record's scope; "all" for a full CRL.
    for (const std::string &url : m.scope) dp += (dp.empty() ? "" : ",") + url;
    if (dp.empty()) dp = "all";
    if (m.flags & kCrlOnlyUserCerts) dp += " only=user_certs";
    if (m.flags & kCrlOnlyCaCerts) dp += " only=ca_certs";
    lines.push_back(std::string(is_delta ? "delta" : "crl") + " issuer=\"" + m.issuer +
                    "\" id=" + LowerHex(id.substr(0, 20)) + " dp=" + dp +
                    " crl_number=" + CrlNumberText(m.crl_number_dec) +
                    (is_delta ? " base=" + m.delta_base_dec : "") +
                    (deltas.empty() ? "" : " freshest=" + deltas) + " entries=" +
                    std::to_string(m.count) + strict + " thisUpdate=" + FormatTime(m.this_update) +
                    " nextUpdate=" + (m.next_update != 0 ? FormatTime(m.next_update) : "none") +
                    " source=" + m.source + " stored=" + Ago(m.ingested_at, now) +
                    " checked=" + Ago(m.checked_at, now));
  }
  static const char *kStatus[] = {"good", "revoked", "unknown"};
  for (const auto &[id, o] : listing->ocsp) {
    lines.push_back(
        "ocsp cert=\"" + o.subject + "\" status=" + kStatus[std::clamp(o.status, 0, 2)] +
        " thisUpdate=" + FormatTime(o.this_update) +
        " nextUpdate=" + (o.next_update != 0 ? FormatTime(o.next_update) : "none") +
        (o.status == 1
             ? " revoked_at=" + FormatTime(o.revoked_at) + " reason=" + CrlReasonName(o.reason)
             : "") +
        " source=" + o.source);
  }
  for (const auto &[url, u] : listing->urls) {
    lines.push_back("url " + url + " " +
                    (u.last_attempt == 0 ? "never fetched"
                                         : (u.last_ok ? "ok: " : "failed: ") + u.last_result) +
                    " last_attempt=" + Ago(u.last_attempt, now) + " duration_ms=" +
                    std::to_string(u.duration_ms) + " failures=" + std::to_string(u.failures) +
                    (u.backoff_until > now ? " backoff_until=" + FormatTime(u.backoff_until) : "") +
                    (u.etag.empty() ? "" : " etag=" + u.etag));
  }
  for (const auto &[url, issuers] : listing->fetched_issuers) {
    std::string names;
    for (const std::string &der : issuers.certs_der) {
      const auto *p = reinterpret_cast<const unsigned char *>(der.data());
      ossl::UniquePtr<X509> cert(d2i_X509(nullptr, &p, static_cast<long>(der.size())));
      if (cert)
        names +=
            (names.empty() ? "\"" : ",\"") + NameToString(X509_get_subject_name(cert.get())) + "\"";
    }
    lines.push_back("issuer " + url + " ca=" + names + " fetched=" + Ago(issuers.fetched_at, now));
  }
  // The shared cache's counters (fetch_shared.cc), kept beside the URLs' statistics.
  for (const auto &[name, stats] : listing->fetch_stats) {
    if (name.rfind("redis://", 0) != 0) continue;
    std::string counts;
    for (const auto &[event, count] : stats.errors) {
      counts += " " + event + "=" + std::to_string(count);
    }
    lines.push_back("shared_cache " + name + counts +
                    (stats.last_error != 0 ? " last_error=" + Ago(stats.last_error, now) : ""));
  }
  for (const auto &[path, f] : listing->files) {
    lines.push_back("file " + path + " size=" + std::to_string(f.size) + " " + f.result);
  }
  lines.push_back("serials " + std::to_string(listing->serials) + " in " + store.dir());
  return lines;
}

}  // namespace certgate
