#include "admin.h"

#include <openssl/x509v3.h>

#include <algorithm>
#include <memory>

#include "cert_fields.h"
#include "revocation/crl.h"
#include "revocation/issuer_keys.h"
#include "revocation/ocsp.h"
#include "text.h"

namespace certgate {

namespace {

std::string Ago(int64_t then, int64_t now) {
  if (then == 0) return "never";
  return FormatTime(then) + " (" + std::to_string(now - then) + " s ago)";
}

}  // namespace

std::vector<std::string> FetchNow(FetchScheduler &scheduler, const Clock &clock,
                                  const ChainEvidence &evidence, const Policy &policy) {
  std::vector<std::string> lines;
  if (!evidence.anchored) {
    lines.push_back("the chain does not reach a trust anchor: nothing is fetched");
    return lines;
  }
  const FetchLimits limits = FetchLimitsFrom(policy);
  for (size_t d = 0; d + 1 < evidence.chain.size(); ++d) {
    auto job = std::make_shared<FetchScheduler::Job>();
    job->cert = evidence.chain[d];
    job->issuer = evidence.chain[d + 1];
    job->limits = limits;
    job->created = clock.Now();
    const std::string prefix = "depth " + std::to_string(d) + " ";
    auto run = [&](const std::vector<std::string> &urls, bool ocsp, const std::string &kind) {
      if (urls.empty()) {
        lines.push_back(prefix + kind + ": no URL in the certificate");
      }
      for (const std::string &url : urls) {
        std::string line = prefix + kind + " " + url + ": ";
        std::string refusal = UrlRefusal(url, limits.allow);
        if (!refusal.empty()) {
          lines.push_back(line + "skipped, " + refusal);
          continue;
        }
        scheduler.TakeLease(url, limits, clock.Now(), /*ignore_backoff=*/true);
        HttpRequest request = scheduler.BuildRequest(*job, url, ocsp);
        request.if_none_match.clear();
        request.if_modified_since.clear();
        HttpResponse response = HttpFetch(request);
        bool ok = false;
        std::string result = scheduler.Process(*job, url, ocsp, response, &ok);
        scheduler.RecordUrl(url, ok, result, response);
        std::string how = response.completed ? "HTTP " + std::to_string(response.status) + ", " +
                                                   std::to_string(response.body.size()) + " bytes, "
                                             : std::string();
        lines.push_back(line + how + std::to_string(response.duration_ms) +
                        " ms: " + (ok ? "" : "failed: ") + result);
      }
    };
    run(CrlUrls(job->cert.get()), false, "crl");
    // Its delta CRLs, after the base they apply to: named by the base CRL
    // now cached and by the certificate.
    std::vector<std::string> delta_urls = FreshestCrlUrls(job->cert.get());
    if (Result<RevocationStore::ReadTxn> txn = scheduler.store().Read(); txn.ok()) {
      if (std::optional<CrlMeta> base = txn->GetCrl(IssuerId(job->issuer.get()))) {
        for (const std::string &url : base->delta_urls) {
          if (std::find(delta_urls.begin(), delta_urls.end(), url) == delta_urls.end())
            delta_urls.push_back(url);
        }
      }
    }
    if (!delta_urls.empty()) run(delta_urls, false, "delta crl");
    Result<std::string> request = OcspRequestDer(job->cert.get(), job->issuer.get());
    if (request.ok()) {
      job->request = request.value();
      job->cert_id = OcspCertIdKey(job->cert.get(), job->issuer.get());
      run(AiaUrls(job->cert.get(), NID_ad_OCSP), true, "ocsp");
    }
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
    std::string deltas;
    for (const std::string &url : m.delta_urls) deltas += (deltas.empty() ? "" : ",") + url;
    lines.push_back(
        std::string(is_delta ? "delta" : "crl") + " issuer=\"" + m.issuer +
        "\" id=" + LowerHex(id.substr(0, 20)) + " crl_number=" + CrlNumberText(m.crl_number_dec) +
        (is_delta ? " base=" + m.delta_base_dec : "") +
        (deltas.empty() ? "" : " freshest=" + deltas) + " entries=" + std::to_string(m.count) +
        strict + " thisUpdate=" + FormatTime(m.this_update) + " nextUpdate=" +
        (m.next_update != 0 ? FormatTime(m.next_update) : "none") + " source=" + m.source +
        " stored=" + Ago(m.ingested_at, now) + " checked=" + Ago(m.checked_at, now));
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
