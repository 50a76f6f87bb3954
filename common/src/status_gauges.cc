// The revocation gauges of the status page (status_gauges.h, docs/status.md).
#include "status_gauges.h"

#include <certgate/clock.h>
#include <certgate/policy.h>
#include <certgate/revocation.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <utility>

#include "revocation/registry.h"

namespace certgate {

std::string PromLabelValue(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string TruncateUtf8(std::string_view text, size_t max_bytes) {
  if (text.size() <= max_bytes) return std::string(text);
  size_t cut = max_bytes;
  // Back to the start of the sequence the cut falls in.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return std::string(text.substr(0, cut));
}

namespace {

using LabelList = std::vector<std::pair<const char *, std::string>>;

class Page {
 public:
  Page(std::string *out, size_t label_bytes) : out_(out), label_bytes_(label_bytes) {}

  void Family(const char *name, const char *type, const char *help) {
    *out_ += "# HELP ";
    *out_ += name;
    *out_ += ' ';
    *out_ += help;
    *out_ += "\n# TYPE ";
    *out_ += name;
    *out_ += ' ';
    *out_ += type;
    *out_ += '\n';
  }

  void Sample(const char *name, const LabelList &labels, double value) {
    *out_ += name;
    if (!labels.empty()) {
      *out_ += '{';
      bool first = true;
      for (const auto &[label, text] : labels) {
        if (!first) *out_ += ',';
        first = false;
        *out_ += label;
        *out_ += "=\"";
        *out_ += PromLabelValue(TruncateUtf8(text, label_bytes_));
        *out_ += '"';
      }
      *out_ += '}';
    }
    char number[40];
    // Integers (epoch seconds, counts) exactly; a huge crlNumber as a float.
    if (value >= -9007199254740992.0 && value <= 9007199254740992.0 &&
        value == static_cast<double>(static_cast<int64_t>(value))) {
      snprintf(number, sizeof number, " %" PRId64 "\n", static_cast<int64_t>(value));
    } else {
      snprintf(number, sizeof number, " %.17g\n", value);
    }
    *out_ += number;
  }

 private:
  std::string *out_;
  size_t label_bytes_;
};

std::string HexPrefix(std::string_view bytes, size_t max_bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < bytes.size() && i < max_bytes; ++i) {
    out += kHex[static_cast<unsigned char>(bytes[i]) >> 4];
    out += kHex[static_cast<unsigned char>(bytes[i]) & 15];
  }
  return out;
}

// What one cache shows, already cut to the limits.
struct Shown {
  const CacheGauges *cache;
  std::vector<const std::pair<std::string, CrlMeta> *> crls;
  std::vector<const std::pair<std::string, UrlState> *> urls;
  std::vector<const std::pair<std::string, FileState> *> files;
  struct Responder {
    std::string url;
    int64_t answers = 0;
    int64_t earliest_next_update = 0;  // 0: none has one
  };
  std::vector<Responder> responders;
  std::map<std::string, const FetchStats *> stats;
};

template <typename T, typename Less>
std::vector<const T *> Keep(const std::vector<T> &all, size_t limit, Less less, uint64_t *omitted) {
  std::vector<const T *> kept;
  kept.reserve(all.size());
  for (const T &item : all) kept.push_back(&item);
  std::stable_sort(kept.begin(), kept.end(), [&](const T *a, const T *b) { return less(*a, *b); });
  if (kept.size() > limit) {
    *omitted += kept.size() - limit;
    kept.resize(limit);
  }
  return kept;
}

LabelList CrlLabels(const Shown &shown, const std::pair<std::string, CrlMeta> &crl) {
  const CrlMeta &m = crl.second;
  const bool file = m.source.rfind("file:", 0) == 0;
  // Delta CRLs are kept beside their base under the issuer id and "+".
  const bool delta = !crl.first.empty() && crl.first.back() == '+';
  return {{"cache", shown.cache->dir},
          {"issuer", m.issuer},
          {"issuer_id", HexPrefix(crl.first, 8)},
          {"crl", delta ? "delta" : "base"},
          {"source", file ? m.source.substr(5) : m.source},
          {"source_kind", file ? "file" : "url"}};
}

}  // namespace

void AppendRevocationGauges(std::string *page, const std::vector<CacheGauges> &caches, int64_t now,
                            const GaugeLimits &limits) {
  if (caches.empty()) return;
  uint64_t omitted_caches = 0, omitted_crls = 0, omitted_urls = 0, omitted_files = 0,
           omitted_responders = 0;
  std::vector<Shown> shown;
  for (const CacheGauges &cache : caches) {
    if (shown.size() >= limits.caches) {
      ++omitted_caches;
      continue;
    }
    Shown s;
    s.cache = &cache;
    const RevocationStore::Listing &l = cache.listing;
    // The most urgent first: the CRL that runs out next, the URL failing longest.
    s.crls = Keep(
        l.crls, limits.crls,
        [](const auto &a, const auto &b) {
          const int64_t na = a.second.next_update != 0 ? a.second.next_update : INT64_MAX;
          const int64_t nb = b.second.next_update != 0 ? b.second.next_update : INT64_MAX;
          return na != nb ? na < nb : a.first < b.first;
        },
        &omitted_crls);
    s.urls = Keep(
        l.urls, limits.urls,
        [](const auto &a, const auto &b) {
          return a.second.failures != b.second.failures ? a.second.failures > b.second.failures
                                                        : a.first < b.first;
        },
        &omitted_urls);
    s.files = Keep(
        l.files, limits.files, [](const auto &a, const auto &b) { return a.first < b.first; },
        &omitted_files);
    std::map<std::string, Shown::Responder> responders;
    for (const auto &[id, answer] : l.ocsp) {
      Shown::Responder &r = responders[answer.source];
      r.url = answer.source;
      r.answers += 1;
      if (answer.next_update != 0 &&
          (r.earliest_next_update == 0 || answer.next_update < r.earliest_next_update)) {
        r.earliest_next_update = answer.next_update;
      }
    }
    for (auto &[url, responder] : responders) {
      if (s.responders.size() >= limits.responders) {
        ++omitted_responders;
        continue;
      }
      s.responders.push_back(std::move(responder));
    }
    for (const auto &[url, stats] : l.fetch_stats) s.stats[url] = &stats;
    shown.push_back(std::move(s));
  }

  Page out(page, limits.label_bytes);
  out.Family("certgate_revocation_cache_up", "gauge",
             "1 when the revocation cache could be read and is sound.");
  for (const Shown &s : shown) {
    out.Sample("certgate_revocation_cache_up", {{"cache", s.cache->dir}},
               s.cache->readable && !s.cache->damaged ? 1 : 0);
  }

  out.Family("certgate_crl_this_update_seconds", "gauge", "thisUpdate of the cached CRL.");
  for (const Shown &s : shown) {
    for (const auto *crl : s.crls) {
      out.Sample("certgate_crl_this_update_seconds", CrlLabels(s, *crl),
                 static_cast<double>(crl->second.this_update));
    }
  }
  out.Family("certgate_crl_next_update_seconds", "gauge",
             "nextUpdate of the cached CRL (absent when it has none).");
  for (const Shown &s : shown) {
    for (const auto *crl : s.crls) {
      if (crl->second.next_update == 0) continue;
      out.Sample("certgate_crl_next_update_seconds", CrlLabels(s, *crl),
                 static_cast<double>(crl->second.next_update));
    }
  }
  out.Family("certgate_crl_number", "gauge",
             "crlNumber of the cached CRL (absent when it has none).");
  for (const Shown &s : shown) {
    for (const auto *crl : s.crls) {
      if (crl->second.crl_number_dec.empty()) continue;
      out.Sample("certgate_crl_number", CrlLabels(s, *crl),
                 std::strtod(crl->second.crl_number_dec.c_str(), nullptr));
    }
  }
  out.Family("certgate_crl_entries", "gauge", "Revoked certificates the cached CRL lists.");
  for (const Shown &s : shown) {
    for (const auto *crl : s.crls) {
      out.Sample("certgate_crl_entries", CrlLabels(s, *crl),
                 static_cast<double>(crl->second.count));
    }
  }
  out.Family("certgate_crl_stale_until_seconds", "gauge",
             "nextUpdate plus certgate_max_stale: when answers from this CRL stop.");
  for (const Shown &s : shown) {
    for (const auto *crl : s.crls) {
      if (crl->second.next_update == 0) continue;
      out.Sample("certgate_crl_stale_until_seconds", CrlLabels(s, *crl),
                 static_cast<double>(crl->second.next_update + s.cache->max_stale.count()));
    }
  }
  out.Family("certgate_stale_serving", "gauge",
             "1 while answers come from this CRL past its nextUpdate, within certgate_max_stale.");
  for (const Shown &s : shown) {
    for (const auto *crl : s.crls) {
      const int64_t next = crl->second.next_update;
      const bool stale = next != 0 && now > next && now <= next + s.cache->max_stale.count();
      out.Sample("certgate_stale_serving", CrlLabels(s, *crl), stale ? 1 : 0);
    }
  }

  out.Family("certgate_preload_file_ok", "gauge",
             "1 when the certgate_crl file's CRLs are in the cache, 0 when it failed.");
  for (const Shown &s : shown) {
    for (const auto *file : s.files) {
      const bool ok = !file->second.issuer_id.empty() || !file->second.stored.empty();
      out.Sample("certgate_preload_file_ok", {{"cache", s.cache->dir}, {"file", file->first}},
                 ok ? 1 : 0);
    }
  }

  auto url_labels = [](const Shown &s, const std::string &url) -> LabelList {
    return {{"cache", s.cache->dir}, {"url", url}};
  };
  out.Family("certgate_fetch_last_success_seconds", "gauge",
             "When a fetch from this URL (CRL or OCSP) last succeeded; 0: never.");
  for (const Shown &s : shown) {
    for (const auto *url : s.urls) {
      out.Sample("certgate_fetch_last_success_seconds", url_labels(s, url->first),
                 static_cast<double>(url->second.last_success));
    }
  }
  out.Family("certgate_fetch_last_error_seconds", "gauge",
             "When a fetch from this URL last failed; 0: never.");
  for (const Shown &s : shown) {
    for (const auto *url : s.urls) {
      auto stats = s.stats.find(url->first);
      int64_t last = stats != s.stats.end() ? stats->second->last_error : 0;
      if (!url->second.last_ok && url->second.last_attempt > last) last = url->second.last_attempt;
      out.Sample("certgate_fetch_last_error_seconds", url_labels(s, url->first),
                 static_cast<double>(last));
    }
  }
  out.Family("certgate_fetch_failing_since_seconds", "gauge",
             "When the current run of failed fetches from this URL began; 0: its last fetch "
             "succeeded.");
  for (const Shown &s : shown) {
    for (const auto *url : s.urls) {
      auto stats = s.stats.find(url->first);
      const int64_t since =
          url->second.failures > 0 && stats != s.stats.end() ? stats->second->failing_since : 0;
      out.Sample("certgate_fetch_failing_since_seconds", url_labels(s, url->first),
                 static_cast<double>(since));
    }
  }
  out.Family("certgate_fetch_consecutive_failures", "gauge",
             "Failed fetches from this URL since its last success.");
  for (const Shown &s : shown) {
    for (const auto *url : s.urls) {
      out.Sample("certgate_fetch_consecutive_failures", url_labels(s, url->first),
                 static_cast<double>(url->second.failures));
    }
  }
  out.Family("certgate_fetch_errors_total", "counter",
             "Failed fetches from this URL by class of error.");
  for (const Shown &s : shown) {
    for (const auto *url : s.urls) {
      auto stats = s.stats.find(url->first);
      if (stats == s.stats.end()) continue;
      for (const auto &[error_class, count] : stats->second->errors) {
        LabelList labels = url_labels(s, url->first);
        labels.emplace_back("error", error_class);
        out.Sample("certgate_fetch_errors_total", labels, static_cast<double>(count));
      }
    }
  }

  out.Family("certgate_shared_cache_events_total", "counter",
             "The shared cache (certgate_shared_cache) as this host's fetches used it, by "
             "event: hit, published, redis_error, refused, lease_wait, lease_timeout.");
  for (const Shown &s : shown) {
    for (const auto &[name, stats] : s.stats) {
      if (name.rfind("redis://", 0) != 0) continue;
      for (const auto &[event, count] : stats->errors) {
        out.Sample("certgate_shared_cache_events_total",
                   {{"cache", s.cache->dir}, {"shared_cache", name}, {"event", event}},
                   static_cast<double>(count));
      }
    }
  }

  out.Family("certgate_ocsp_responses", "gauge", "OCSP answers cached from this responder.");
  for (const Shown &s : shown) {
    for (const Shown::Responder &r : s.responders) {
      out.Sample("certgate_ocsp_responses", {{"cache", s.cache->dir}, {"responder", r.url}},
                 static_cast<double>(r.answers));
    }
  }
  out.Family("certgate_ocsp_next_update_seconds", "gauge",
             "The earliest nextUpdate among the answers cached from this responder.");
  for (const Shown &s : shown) {
    for (const Shown::Responder &r : s.responders) {
      if (r.earliest_next_update == 0) continue;
      out.Sample("certgate_ocsp_next_update_seconds",
                 {{"cache", s.cache->dir}, {"responder", r.url}},
                 static_cast<double>(r.earliest_next_update));
    }
  }

  out.Family("certgate_revocation_series_omitted", "gauge",
             "Caches, CRLs, URLs, files and responders left off the page (its limits).");
  const std::pair<const char *, uint64_t> omitted[] = {{"cache", omitted_caches},
                                                       {"crl", omitted_crls},
                                                       {"url", omitted_urls},
                                                       {"file", omitted_files},
                                                       {"responder", omitted_responders}};
  for (const auto &[kind, count] : omitted) {
    out.Sample("certgate_revocation_series_omitted", {{"kind", kind}}, static_cast<double>(count));
  }
}

namespace {

struct NotedCaches {
  std::mutex mutex;
  std::vector<std::pair<std::string, std::chrono::seconds>> dirs;  // in the order noted
};

NotedCaches &Noted() {
  static NotedCaches *noted = new NotedCaches();  // never destroyed: read until exit
  return *noted;
}

constexpr size_t kMaxNotedCaches = 64;

}  // namespace

void NoteStatusCache(std::string_view dir, std::chrono::seconds max_stale) {
  if (dir.empty() || dir[0] != '/') return;
  NotedCaches &noted = Noted();
  std::lock_guard<std::mutex> lock(noted.mutex);
  for (auto &[known, stale] : noted.dirs) {
    if (known == dir) {
      stale = std::max(stale, max_stale);
      return;
    }
  }
  if (noted.dirs.size() < kMaxNotedCaches) noted.dirs.emplace_back(std::string(dir), max_stale);
}

std::vector<CacheGauges> ReadStatusCaches(const GaugeLimits &limits) {
  std::vector<std::pair<std::string, std::chrono::seconds>> dirs;
  {
    NotedCaches &noted = Noted();
    std::lock_guard<std::mutex> lock(noted.mutex);
    dirs = noted.dirs;
  }
  std::vector<CacheGauges> caches;
  for (const auto &[dir, max_stale] : dirs) {
    CacheGauges cache;
    cache.dir = dir;
    cache.max_stale = max_stale.count() > 0 ? max_stale : Policy().EffectiveMaxStale();
    if (caches.size() < limits.caches) {
      Policy policy;
      policy.cache = dir;
      std::string error;
      RevocationChecker *checker = RevocationFor(policy, nullptr, SystemClock::Instance(), &error);
      if (checker != nullptr) {
        Result<RevocationStore::Listing> listing = checker->store().List();
        if (listing.ok()) {
          cache.readable = true;
          cache.listing = std::move(listing).value();
        }
        cache.damaged = checker->store().damaged();
      }
    }
    caches.push_back(std::move(cache));
  }
  return caches;
}

}  // namespace certgate
