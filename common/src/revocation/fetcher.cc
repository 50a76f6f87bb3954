#include "revocation/fetcher.h"

#include <certgate/evaluator.h>
#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "revocation/ldap_url.h"

namespace certgate {
namespace {

using SteadyClock = std::chrono::steady_clock;

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string s) {
  for (char &c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

bool StartsWithNoCase(const std::string &s, const char *prefix) {
  size_t n = strlen(prefix);
  return s.size() >= n && Lower(s.substr(0, n)) == prefix;
}

// curl 7.88's OpenLDAP backend hands multi no socket while its bind is in
// flight (PROTOCONNECTING), so curl_multi_poll wakes only at curl's next timer
// (the 200 ms happy-eyeballs one): every LDAP fetch took 200 ms. While an LDAP
// transfer runs, poll at most this long, so the bind reply is read promptly.
constexpr int kLdapPollMs = 2;

// curl_easy_perform for an LDAP transfer, on a private multi polled every
// kLdapPollMs (curl_easy_perform would sit out the 200 ms, see above).
CURLcode PerformLdap(CURL *easy) {
  CURLM *multi = curl_multi_init();
  if (multi == nullptr) return CURLE_OUT_OF_MEMORY;
  CURLcode result = CURLE_FAILED_INIT;
  if (curl_multi_add_handle(multi, easy) == CURLM_OK) {
    int running = 1;
    while (running > 0 && curl_multi_perform(multi, &running) == CURLM_OK) {
      if (running > 0) curl_multi_poll(multi, nullptr, 0, kLdapPollMs, nullptr);
    }
    int left = 0;
    while (CURLMsg *msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg == CURLMSG_DONE) result = msg->data.result;
    }
    curl_multi_remove_handle(multi, easy);
  }
  curl_multi_cleanup(multi);
  return result;
}

std::string Trim(std::string s) {
  while (!s.empty() && isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
  size_t start = 0;
  while (start < s.size() && isspace(static_cast<unsigned char>(s[start]))) ++start;
  return s.substr(start);
}

}  // namespace

FetchLimits FetchLimitsFrom(const Policy &policy) {
  FetchLimits limits;
  if (policy.fetch_timeout) limits.timeout = *policy.fetch_timeout;
  if (policy.fetch_max_size) limits.max_size = *policy.fetch_max_size;
  if (policy.fetch_proxy) limits.proxy = *policy.fetch_proxy;
  if (policy.fetch_allow) limits.allow = *policy.fetch_allow;
  if (policy.ldap_server) limits.ldap_servers = *policy.ldap_server;
  if (policy.shared_cache) limits.shared_cache = *policy.shared_cache;
  limits.max_stale = policy.EffectiveMaxStale().count();
  return limits;
}

std::string UrlScheme(const std::string &url) {
  size_t colon = url.find("://");
  if (colon == std::string::npos) return "";
  return Lower(url.substr(0, colon));
}

std::string UrlHost(const std::string &url) {
  size_t start = url.find("://");
  if (start == std::string::npos) return "";
  start += 3;
  size_t end = url.find_first_of("/?#", start);
  std::string authority =
      url.substr(start, end == std::string::npos ? std::string::npos : end - start);
  size_t at = authority.rfind('@');
  if (at != std::string::npos) authority = authority.substr(at + 1);
  if (!authority.empty() && authority[0] == '[') {
    size_t close = authority.find(']');
    return close == std::string::npos ? "" : Lower(authority.substr(1, close - 1));
  }
  size_t colon = authority.find(':');
  return Lower(authority.substr(0, colon));
}

namespace {

bool HostAllowed(const std::string &host, const std::vector<std::string> &allow) {
  if (allow.empty()) return true;
  for (const std::string &pattern : allow) {
    if (GlobMatch(pattern, host, true)) return true;
  }
  return false;
}

// The servers (certgate_ldap_server spellings; "" = the URL's own host) an
// LDAP URL is asked at, in order: those fetch_allow lets through.
std::vector<std::string> LdapServersFor(const LdapUrl &url, const FetchLimits &limits) {
  if (!url.host.empty()) {
    return HostAllowed(url.host, limits.allow) ? std::vector<std::string>{""}
                                               : std::vector<std::string>{};
  }
  std::vector<std::string> servers;
  for (const std::string &server : limits.ldap_servers) {
    if (HostAllowed(LdapServerHost(server), limits.allow)) servers.push_back(server);
  }
  return servers;
}

std::string LdapRefusal(const std::string &url, const FetchLimits &limits) {
  Result<LdapUrl> parsed = ParseLdapUrl(url);
  if (!parsed.ok()) return "not a usable LDAP URL: " + parsed.status().message();
  if (parsed->host.empty() && limits.ldap_servers.empty()) {
    // AD CS's ldap:/// means "the client's domain controller": certgate has none.
    return "no LDAP server configured for an ldap:/// URL (certgate_ldap_server)";
  }
  if (!LdapServersFor(parsed.value(), limits).empty()) return "";
  if (!parsed->host.empty()) return "host " + parsed->host + " is not in certgate_fetch_allow";
  return "no certgate_ldap_server host is in certgate_fetch_allow";
}

}  // namespace

std::string UrlRefusal(const std::string &url, const FetchLimits &limits) {
  const std::string scheme = UrlScheme(url);
  if (scheme == "ldap" || scheme == "ldaps") return LdapRefusal(url, limits);
  if (scheme != "http" && scheme != "https") {
    return scheme.empty() ? "not a URL"
                          : scheme + " is not fetched (only http, https, ldap and ldaps)";
  }
  const std::string host = UrlHost(url);
  if (host.empty()) return "no host in the URL";
  if (HostAllowed(host, limits.allow)) return "";
  return "host " + host + " is not in certgate_fetch_allow";
}

std::string UrlRefusal(const std::string &url, const std::vector<std::string> &allow) {
  FetchLimits limits;
  limits.allow = allow;
  return UrlRefusal(url, limits);
}

// ---- one transfer's curl state, shared by the blocking and the async paths

struct HttpTransfer {
  CURL *easy = nullptr;
  curl_slist *headers = nullptr;
  HttpRequest request;
  HttpResponse response;
  std::function<void(HttpResponse)> done;
  std::string current_url;
  int redirects = 0;
  bool too_big = false;
  uint64_t body_limit = 0;  // bytes written by curl (LDAP: base64 text)
  // An LDAP URL: one search URL per server, asked in order.
  bool ldap = false;
  std::string ldap_attribute;
  std::vector<std::string> ldap_targets, ldap_names;
  size_t ldap_index = 0;
  std::string ldap_errors;
  char error[CURL_ERROR_SIZE] = {0};
  SteadyClock::time_point start;

  ~HttpTransfer() {
    if (headers != nullptr) curl_slist_free_all(headers);
    if (easy != nullptr) curl_easy_cleanup(easy);
  }

  static size_t OnBody(char *data, size_t size, size_t n, void *user) {
    HttpTransfer *t = static_cast<HttpTransfer *>(user);
    size_t bytes = size * n;
    if (t->response.body.size() + bytes > t->body_limit) {
      t->too_big = true;
      return 0;  // aborts with CURLE_WRITE_ERROR
    }
    t->response.body.append(data, bytes);
    return bytes;
  }

  static size_t OnHeader(char *data, size_t size, size_t n, void *user) {
    HttpTransfer *t = static_cast<HttpTransfer *>(user);
    std::string line(data, size * n);
    if (StartsWithNoCase(line, "http/")) {  // a new response (after 100-continue)
      t->response.etag.clear();
      t->response.last_modified.clear();
    } else if (StartsWithNoCase(line, "etag:")) {
      t->response.etag = Trim(line.substr(5));
    } else if (StartsWithNoCase(line, "last-modified:")) {
      t->response.last_modified = Trim(line.substr(14));
    }
    return size * n;
  }

  // Before the first Setup: "" or why `request.url` is not fetched.
  std::string Begin() {
    current_url = request.url;
    start = SteadyClock::now();
    body_limit = request.limits.max_size;
    std::string refusal = UrlRefusal(request.url, request.limits);
    if (!refusal.empty() || !IsLdapUrl(request.url)) return refusal;
    Result<LdapUrl> url = ParseLdapUrl(request.url);  // parses: no refusal
    ldap = true;
    ldap_attribute = !url->attributes.empty()          ? url->attributes[0]
                     : !request.ldap_attribute.empty() ? request.ldap_attribute
                                                       : std::string(kLdapCrlAttribute);
    for (const std::string &server : LdapServersFor(url.value(), request.limits)) {
      ldap_targets.push_back(LdapRequestUrl(url.value(), server, ldap_attribute));
      ldap_names.push_back(LdapServerName(url.value(), server));
    }
    if (ldap_targets.empty()) return "no LDAP server to ask";  // (UrlRefusal said so)
    current_url = ldap_targets[0];
    // curl writes the value as base64 (4 bytes per 3) in a line of LDIF.
    body_limit = request.limits.max_size / 3 * 4 + 4096;
    return "";
  }

  bool SetupLdap() {
    const FetchLimits &limits = request.limits;
    curl_easy_setopt(easy, CURLOPT_URL, current_url.c_str());
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "ldap,ldaps");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(limits.timeout.count()));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(limits.timeout.count()));
    curl_easy_setopt(easy, CURLOPT_PROXY, "");  // fetch_proxy is an HTTP proxy
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &HttpTransfer::OnBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, this);
    return true;
  }

  // (Re)configures the easy handle for current_url.
  bool Setup() {
    if (easy == nullptr) easy = curl_easy_init();
    if (easy == nullptr) return false;
    curl_easy_reset(easy);
    response.body.clear();
    response.etag.clear();
    response.last_modified.clear();
    too_big = false;
    error[0] = '\0';
    if (ldap) return SetupLdap();
    const FetchLimits &limits = request.limits;
    curl_easy_setopt(easy, CURLOPT_URL, current_url.c_str());
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(limits.timeout.count()));
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(limits.timeout.count()));
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(limits.max_size));
    curl_easy_setopt(easy, CURLOPT_PROXY, limits.proxy.c_str());  // "" = no proxy at all
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "certgate");
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &HttpTransfer::OnBody);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, this);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &HttpTransfer::OnHeader);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, this);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, this);
    if (headers != nullptr) {
      curl_slist_free_all(headers);
      headers = nullptr;
    }
    if (!request.post_body.empty()) {
      curl_easy_setopt(easy, CURLOPT_POST, 1L);
      curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.post_body.data());
      curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(request.post_body.size()));
      headers = curl_slist_append(headers, ("Content-Type: " + request.content_type).c_str());
    }
    if (redirects == 0 && !request.if_none_match.empty()) {
      headers = curl_slist_append(headers, ("If-None-Match: " + request.if_none_match).c_str());
    }
    if (redirects == 0 && !request.if_modified_since.empty()) {
      headers =
          curl_slist_append(headers, ("If-Modified-Since: " + request.if_modified_since).c_str());
    }
    if (headers != nullptr) curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    return true;
  }

  std::string TransferError(CURLcode code) const {
    if (too_big || code == CURLE_FILESIZE_EXCEEDED) {
      return "larger than certgate_fetch_max_size (" + std::to_string(request.limits.max_size) +
             " bytes)";
    }
    if (code == CURLE_OPERATION_TIMEDOUT) {
      return "timed out after " + std::to_string(request.limits.timeout.count()) +
             " ms (certgate_fetch_timeout)";
    }
    return error[0] != '\0' ? std::string(error) : curl_easy_strerror(code);
  }

  // An LDAP search ended: true when the next server is to be asked
  // (current_url updated); otherwise fills response.
  bool CompleteLdap(CURLcode code) {
    std::string failure;
    if (code == CURLE_OK) {
      Result<std::string> value = LdapValueFromReply(response.body, ldap_attribute);
      if (value.ok() && value->size() <= request.limits.max_size) {
        response.body = std::move(value).value();
        response.completed = true;
        response.status = 200;
        return false;
      }
      failure = value.ok() ? "larger than certgate_fetch_max_size (" +
                                 std::to_string(request.limits.max_size) + " bytes)"
                           : value.status().message();
    } else {
      failure = TransferError(code);
      // curl: "LDAP remote: search failed No such object" (ldap_err2string).
      const size_t at = failure.find("search failed");
      if (at != std::string::npos) {
        std::string said = failure.substr(at + 13);
        while (!said.empty() && (said[0] == ' ' || said[0] == ':')) said.erase(0, 1);
        while (!said.empty() && isspace(static_cast<unsigned char>(said.back()))) said.pop_back();
        failure = "the LDAP search failed: \"" + said + "\"";
      }
    }
    response.body.clear();
    ldap_errors += (ldap_errors.empty() ? "" : "; ") + failure + " (LDAP server " +
                   ldap_names[ldap_index] + ")";
    if (++ldap_index < ldap_targets.size()) {
      current_url = ldap_targets[ldap_index];
      return true;
    }
    response.completed = false;
    response.error = ldap_errors;
    return false;
  }

  // After a transfer ended: true when it was a redirect that should be followed
  // (current_url updated); otherwise fills response.
  bool Complete(CURLcode code) {
    response.duration_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start).count();
    response.url = ldap ? request.url : current_url;
    if (ldap) return CompleteLdap(code);
    if (code != CURLE_OK) {
      response.completed = false;
      response.error = TransferError(code);
      response.body.clear();
      return false;
    }
    long status = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    response.status = static_cast<int>(status);
    if (status == 301 || status == 302 || status == 303 || status == 307 || status == 308) {
      char *location = nullptr;
      curl_easy_getinfo(easy, CURLINFO_REDIRECT_URL, &location);
      if (location == nullptr) {
        response.completed = false;
        response.error = "HTTP " + std::to_string(status) + " without a Location";
        return false;
      }
      std::string target = location;
      const std::string scheme = UrlScheme(target);
      std::string refusal = scheme == "http" || scheme == "https"
                                ? UrlRefusal(target, request.limits.allow)
                                : "only http and https redirects are followed";
      if (!refusal.empty() || redirects >= 5) {
        response.completed = false;
        response.error = "redirect to " + target + " refused: " +
                         (refusal.empty() ? std::string("too many redirects") : refusal);
        response.body.clear();
        return false;
      }
      ++redirects;
      current_url = target;
      return true;
    }
    response.completed = true;
    return false;
  }
};

HttpResponse HttpFetch(const HttpRequest &request) {
  GlobalInit();
  HttpTransfer transfer;
  transfer.request = request;
  std::string refusal = transfer.Begin();
  if (!refusal.empty()) {
    transfer.response.error = refusal;
    transfer.response.url = request.url;
    return transfer.response;
  }
  while (true) {
    if (!transfer.Setup()) {
      transfer.response.error = "cannot start a transfer";
      return transfer.response;
    }
    CURLcode code = transfer.ldap ? PerformLdap(transfer.easy) : curl_easy_perform(transfer.easy);
    if (!transfer.Complete(code)) break;
  }
  return transfer.response;
}

// ---- the background thread

RevocationFetcher::RevocationFetcher() {
  GlobalInit();
  multi_ = curl_multi_init();
}

void RevocationFetcher::Stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  if (multi_ != nullptr) curl_multi_wakeup(static_cast<CURLM *>(multi_));
  if (thread_.joinable() && !OnThread()) thread_.join();
}

RevocationFetcher::~RevocationFetcher() {
  Stop();
  for (auto &entry : active_) {
    curl_multi_remove_handle(static_cast<CURLM *>(multi_), entry.second->easy);
  }
  active_.clear();
  incoming_.clear();
  if (multi_ != nullptr) curl_multi_cleanup(static_cast<CURLM *>(multi_));
}

void RevocationFetcher::EnsureThread() {
  if (!thread_.joinable() && !stop_) {
    thread_ = std::thread([this] { Loop(); });
    thread_id_ = thread_.get_id();
  }
}

void RevocationFetcher::Submit(HttpRequest request, std::function<void(HttpResponse)> done) {
  auto transfer = std::make_unique<Transfer>();
  transfer->request = std::move(request);
  transfer->done = std::move(done);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    incoming_.push_back(std::move(transfer));
    EnsureThread();
  }
  curl_multi_wakeup(static_cast<CURLM *>(multi_));
}

void RevocationFetcher::Post(std::function<void()> task, std::chrono::milliseconds delay) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    tasks_.push_back(Task{SteadyClock::now() + delay, std::move(task)});
    EnsureThread();
  }
  curl_multi_wakeup(static_cast<CURLM *>(multi_));
}

void RevocationFetcher::Start(std::unique_ptr<Transfer> transfer) {
  std::string refusal = transfer->Begin();
  if (!refusal.empty() || !transfer->Setup()) {
    transfer->response.error = refusal.empty() ? "cannot start a transfer" : refusal;
    transfer->response.url = transfer->request.url;
    transfer->done(std::move(transfer->response));
    return;
  }
  CURL *easy = transfer->easy;
  curl_multi_add_handle(static_cast<CURLM *>(multi_), easy);
  active_[easy] = std::move(transfer);
}

void RevocationFetcher::Finish(Transfer *transfer, int curl_code) {
  CURLM *multi = static_cast<CURLM *>(multi_);
  curl_multi_remove_handle(multi, transfer->easy);
  if (transfer->Complete(static_cast<CURLcode>(curl_code))) {
    if (transfer->Setup()) {
      curl_multi_add_handle(multi, transfer->easy);
      return;
    }
    transfer->response.completed = false;
    transfer->response.error =
        transfer->ldap ? "cannot ask the next LDAP server" : "cannot follow the redirect";
  }
  auto it = active_.find(transfer->easy);
  std::unique_ptr<Transfer> owned = std::move(it->second);
  active_.erase(it);
  owned->done(std::move(owned->response));
}

void RevocationFetcher::Loop() {
  CURLM *multi = static_cast<CURLM *>(multi_);
  while (true) {
    std::vector<std::unique_ptr<Transfer>> starting;
    std::vector<std::function<void()>> due;
    auto next_due = SteadyClock::now() + std::chrono::seconds(1);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stop_) return;
      starting.swap(incoming_);
      const auto now = SteadyClock::now();
      for (size_t i = 0; i < tasks_.size();) {
        if (tasks_[i].due <= now) {
          due.push_back(std::move(tasks_[i].fn));
          tasks_.erase(tasks_.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          next_due = std::min(next_due, tasks_[i].due);
          ++i;
        }
      }
    }
    for (auto &transfer : starting) Start(std::move(transfer));
    for (auto &task : due) task();
    int running = 0;
    curl_multi_perform(multi, &running);
    int left = 0;
    while (CURLMsg *msg = curl_multi_info_read(multi, &left)) {
      if (msg->msg != CURLMSG_DONE) continue;
      auto it = active_.find(msg->easy_handle);
      if (it != active_.end()) Finish(it->second.get(), msg->data.result);
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!incoming_.empty() || stop_) continue;
      for (const Task &task : tasks_) next_due = std::min(next_due, task.due);
    }
    auto wait =
        std::chrono::duration_cast<std::chrono::milliseconds>(next_due - SteadyClock::now());
    int timeout = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(wait.count(), 1000)));
    const bool ldap_running = std::any_of(active_.begin(), active_.end(),
                                          [](const auto &entry) { return entry.second->ldap; });
    if (ldap_running) timeout = std::min(timeout, kLdapPollMs);
    if (timeout > 0) curl_multi_poll(multi, nullptr, 0, timeout, nullptr);
  }
}

}  // namespace certgate
