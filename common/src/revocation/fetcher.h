// RevocationFetcher: libcurl in one background thread per process (DESIGN §5).
//
// Transfers run concurrently on one curl multi handle, so a hanging CDP does not
// delay another issuer's fetch. Limits: fetch_timeout (whole transfer, per hop),
// fetch_max_size (Content-Length and streamed bytes), fetch_proxy; only http and
// https; redirects are followed by hand (at most 5) and only to http/https URLs
// whose host is in fetch_allow. The thread starts on the first Submit/Post, so a
// process that never fetches never has it; it must not exist across fork.
#pragma once

#include <certgate/policy.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace certgate {

struct HttpTransfer;  // one transfer's curl state (revocation/fetcher.cc)

struct FetchLimits {
  std::chrono::milliseconds timeout{5000};
  uint64_t max_size = uint64_t{32} << 20;
  std::string proxy;               // "" = none (environment proxies ignored too)
  std::vector<std::string> allow;  // host patterns; empty = any host
  // The fleet's Redis tier (shared_cache.h), and how long past nextUpdate a
  // blob published there stays useful (certgate_max_stale: its TTL).
  SharedCacheSettings shared_cache;
  int64_t max_stale = 3600;
};

// The policy's fetch_* settings with DESIGN §2 defaults.
FetchLimits FetchLimitsFrom(const Policy &policy);

// Lowercase scheme ("http") and host ("pki.example", "127.0.0.1", "::1") of a URL;
// "" when the URL has none.
std::string UrlScheme(const std::string &url);
std::string UrlHost(const std::string &url);

// "" when `url` may be fetched (http/https, host allowed), else why not.
std::string UrlRefusal(const std::string &url, const std::vector<std::string> &allow);

struct HttpRequest {
  std::string url;
  std::string post_body;  // non-empty: POST with `content_type`
  std::string content_type;
  std::string if_none_match, if_modified_since;  // conditional GET
  FetchLimits limits;
};

struct HttpResponse {
  bool completed = false;  // an HTTP response arrived (any status)
  int status = 0;
  std::string body;
  std::string etag, last_modified;
  std::string error;  // when !completed: "connection refused", "timed out after 5000 ms", ...
  int64_t duration_ms = 0;
  std::string url;  // after redirects
};

// One transfer on the calling thread (CLI, tests).
HttpResponse HttpFetch(const HttpRequest &request);

class RevocationFetcher {
 public:
  RevocationFetcher();
  ~RevocationFetcher();  // cancels transfers, joins the thread
  RevocationFetcher(const RevocationFetcher &) = delete;
  RevocationFetcher &operator=(const RevocationFetcher &) = delete;

  // Stops and joins the thread; later Submit/Post calls are dropped. Transfers in
  // flight are abandoned (their `done` never runs).
  void Stop();

  // Starts a transfer; `done` runs on the fetcher thread.
  void Submit(HttpRequest request, std::function<void(HttpResponse)> done);
  // Runs `task` on the fetcher thread after `delay`.
  void Post(std::function<void()> task,
            std::chrono::milliseconds delay = std::chrono::milliseconds(0));

  bool OnThread() const { return std::this_thread::get_id() == thread_id_; }

 private:
  using Transfer = HttpTransfer;
  struct Task {
    std::chrono::steady_clock::time_point due;
    std::function<void()> fn;
  };
  void EnsureThread();  // mutex_ held
  void Loop();
  void Start(std::unique_ptr<Transfer> transfer);
  void Finish(Transfer *transfer, int curl_code);

  void *multi_ = nullptr;  // CURLM
  std::mutex mutex_;
  bool stop_ = false;
  std::thread thread_;
  std::thread::id thread_id_;
  std::vector<std::unique_ptr<Transfer>> incoming_;
  std::vector<Task> tasks_;
  std::map<void *, std::unique_ptr<Transfer>> active_;  // by CURL easy handle (fetcher thread only)
};

}  // namespace certgate
