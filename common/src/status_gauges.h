// The revocation gauges of the status page (docs/status.md): what the shared
// revocation cache knows of each CRL, URL, preloaded file and OCSP responder,
// in the Prometheus text format, every series bounded in number. Private to
// certgate_core (c_api.cc, counters.cc, tests).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "revocation/store.h"

namespace certgate {

// A label value escaped per the text exposition format (\, " and newline).
std::string PromLabelValue(std::string_view value);

// At most `max_bytes` of `text`, never cutting a UTF-8 sequence.
std::string TruncateUtf8(std::string_view text, size_t max_bytes);

// How many series of each kind a page shows; past these, the most urgent are
// kept (CRLs by nextUpdate, URLs failing first) and the rest are counted in
// certgate_revocation_series_omitted{kind}.
struct GaugeLimits {
  size_t caches = 32;
  size_t crls = 64;        // per cache
  size_t urls = 64;        // per cache
  size_t files = 32;       // per cache
  size_t responders = 16;  // per cache
  size_t label_bytes = 160;
};

// One revocation cache as the page reports it.
struct CacheGauges {
  std::string dir;
  std::chrono::seconds max_stale{3600};  // the largest configured for this cache
  bool readable = false;                 // false: the listing is empty
  bool damaged = false;
  RevocationStore::Listing listing;
};

// Appends the revocation gauges of `caches` (one HELP/TYPE per metric).
void AppendRevocationGauges(std::string *page, const std::vector<CacheGauges> &caches, int64_t now,
                            const GaugeLimits &limits = GaugeLimits());

// Remembers a revocation cache of the configuration and the certgate_max_stale
// a policy using it sets (0: not known here). Called while the configuration is
// read, before the server forks, so every worker knows every cache.
void NoteStatusCache(std::string_view dir, std::chrono::seconds max_stale);

// The caches noted, read now (each opened in this process on first use; one
// read transaction each): what cg_counters_page_alloc appends.
std::vector<CacheGauges> ReadStatusCaches(const GaugeLimits &limits = GaugeLimits());

}  // namespace certgate
