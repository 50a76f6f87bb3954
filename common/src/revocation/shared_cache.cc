#include "revocation/shared_cache.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

namespace certgate {

namespace {

using SteadyClock = std::chrono::steady_clock;

std::string Hex(std::string_view bytes) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  return out;
}

std::string Sha256Hex(std::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char *>(text.data()), text.size(), digest);
  return Hex(std::string_view(reinterpret_cast<const char *>(digest), sizeof digest));
}

timeval ToTimeval(std::chrono::milliseconds ms) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(ms.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((ms.count() % 1000) * 1000);
  return tv;
}

std::string MakeHostId() {
  char name[256] = {0};
  if (gethostname(name, sizeof name - 1) != 0) name[0] = '\0';
  unsigned char nonce[6] = {0};
  (void)RAND_bytes(nonce, sizeof nonce);
  return std::string(name[0] != '\0' ? name : "host") + ":" + std::to_string(getpid()) + ":" +
         Hex(std::string_view(reinterpret_cast<const char *>(nonce), sizeof nonce));
}

int64_t ToInt(const std::string &text) {
  if (text.empty() || text.size() > 19) return 0;
  char *end = nullptr;
  const long long value = std::strtoll(text.c_str(), &end, 10);
  return end != nullptr && *end == '\0' ? static_cast<int64_t>(value) : 0;
}

// The publication: only over an older blob (by this_update) unless forced;
// one step, so that two hosts publishing at once cannot leave an older one.
// KEYS[1] blob; ARGV: this_update checked_at der etag last_modified url host ttl_ms force
constexpr const char *kPublishScript = R"(
local current = tonumber(redis.call('HGET', KEYS[1], 'this_update'))
if ARGV[9] ~= '1' and current and current > tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'format', '1', 'this_update', ARGV[1], 'checked_at', ARGV[2],
           'der', ARGV[3], 'etag', ARGV[4], 'last_modified', ARGV[5], 'url', ARGV[6],
           'host', ARGV[7])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
return 1
)";

// KEYS[1] blob; ARGV: this_update checked_at
constexpr const char *kConfirmScript = R"(
if redis.call('HGET', KEYS[1], 'this_update') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'checked_at', ARGV[2])
return 1
)";

// KEYS[1] lease; ARGV[1] our host id
constexpr const char *kReleaseScript = R"(
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
)";

// hiredis writes with write(): a Redis that went away would raise SIGPIPE,
// which kills a process that has not ignored it (the CLI, a test). Blocked
// in this thread while a command runs; one raised meanwhile is taken back.
class SigpipeBlocked {
 public:
  SigpipeBlocked() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~SigpipeBlocked() {
    sigset_t pending;
    sigemptyset(&pending);
    if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1 &&
        sigismember(&old_, SIGPIPE) == 0) {
      const timespec zero{0, 0};
      (void)sigtimedwait(&pipe_, nullptr, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  SigpipeBlocked(const SigpipeBlocked &) = delete;
  SigpipeBlocked &operator=(const SigpipeBlocked &) = delete;

 private:
  sigset_t pipe_, old_;
};

}  // namespace

std::chrono::milliseconds SharedCacheTimeout(std::chrono::milliseconds fetch_timeout) {
  return std::clamp(fetch_timeout / 4, std::chrono::milliseconds(100),
                    std::chrono::milliseconds(1000));
}

void SharedCache::ReplyDeleter::operator()(redisReply *reply) const {
  if (reply != nullptr) freeReplyObject(reply);
}

SharedCache::SharedCache(SharedCacheSettings settings, std::chrono::milliseconds timeout)
    : settings_(std::move(settings)), timeout_(timeout), host_id_(MakeHostId()) {}

SharedCache::~SharedCache() {
  // A context inherited from another process is only closed, never spoken on.
  if (context_ != nullptr) redisFree(context_);
}

std::string SharedCache::CrlKey(const std::string &url) const {
  return settings_.prefix + "crl:" + Sha256Hex(url);
}
std::string SharedCache::OcspKey(const std::string &cert_id) const {
  return settings_.prefix + "ocsp:" + Sha256Hex(cert_id);
}
std::string SharedCache::LeaseKey(const std::string &what) const {
  return settings_.prefix + "lease:" + Sha256Hex(what);
}

bool SharedCache::MayTry() const { return SteadyClock::now() >= retry_at_; }

bool SharedCache::TakeLogTurn() {
  const auto now = SteadyClock::now();
  if (logged_at_ && now - *logged_at_ < kLogInterval) return false;
  logged_at_ = now;
  return true;
}

Status SharedCache::Fail(const std::string &what) {
  last_error_ = what;
  if (context_ != nullptr) {
    redisFree(context_);
    context_ = nullptr;
  }
  retry_at_ = SteadyClock::now() + kRetryAfter;
  return Status::Error(last_error_);
}

Status SharedCache::Connect() {
  if (context_ != nullptr && pid_ == getpid()) return Status::Ok();
  if (context_ != nullptr) {  // made before a fork: the parent's socket
    redisFree(context_);
    context_ = nullptr;
  }
  context_ = redisConnectWithTimeout(settings_.host.c_str(), settings_.port, ToTimeval(timeout_));
  if (context_ == nullptr) return Fail("cannot allocate a connection");
  if (context_->err != 0) return Fail(std::string("connect: ") + context_->errstr);
  pid_ = getpid();
  (void)fcntl(context_->fd, F_SETFD, FD_CLOEXEC);
  if (redisSetTimeout(context_, ToTimeval(timeout_)) != REDIS_OK) return Fail("cannot set timeout");
  std::vector<std::vector<std::string>> hello;
  if (!settings_.password.empty()) {
    if (settings_.user.empty()) {
      hello.push_back({"AUTH", settings_.password});
    } else {
      hello.push_back({"AUTH", settings_.user, settings_.password});
    }
  }
  if (settings_.db != 0) hello.push_back({"SELECT", std::to_string(settings_.db)});
  if (hello.empty()) return Status::Ok();
  Result<std::vector<Reply>> replies = Run(hello);
  if (!replies.ok()) return replies.status();
  for (size_t i = 0; i < hello.size(); ++i) {
    const redisReply *reply = replies.value()[i].get();
    if (reply->type == REDIS_REPLY_ERROR) {
      // (Never the password: the command's name and the server's own words.)
      return Fail(hello[i][0] + ": " + std::string(reply->str, reply->len));
    }
  }
  return Status::Ok();
}

Result<std::vector<SharedCache::Reply>> SharedCache::Run(
    const std::vector<std::vector<std::string>> &commands, bool bulk) {
  if (context_ == nullptr || pid_ != getpid()) {
    if (!MayTry()) return Status::Error(last_error_);
    if (Status connected = Connect(); !connected.ok()) return connected;
  }
  const SigpipeBlocked no_sigpipe;
  const auto start = SteadyClock::now();
  for (const std::vector<std::string> &command : commands) {
    std::vector<const char *> argv;
    std::vector<size_t> lengths;
    for (const std::string &arg : command) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    if (redisAppendCommandArgv(context_, static_cast<int>(argv.size()), argv.data(),
                               lengths.data()) != REDIS_OK) {
      return Fail(std::string("cannot send: ") + context_->errstr);
    }
  }
  std::vector<Reply> replies;
  for (size_t i = 0; i < commands.size(); ++i) {
    void *raw = nullptr;
    if (redisGetReply(context_, &raw) != REDIS_OK || raw == nullptr) {
      const std::string why = context_->errstr[0] != '\0' ? context_->errstr : "no reply";
      // hiredis words a receive timeout as "Resource temporarily unavailable".
      return Fail(why.find("temporarily unavailable") != std::string::npos
                      ? "timed out after " + std::to_string(timeout_.count()) + " ms"
                      : why);
    }
    replies.emplace_back(static_cast<redisReply *>(raw));
  }
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start);
  if (!bulk && took > timeout_ / 2) {
    return Fail("slow: " + commands.front().front() + " answered in " +
                std::to_string(took.count()) + " ms (more than half of " +
                std::to_string(timeout_.count()) + " ms)");
  }
  return replies;
}

Result<std::optional<SharedBlob>> SharedCache::ReadMeta(const std::string &key) {
  Result<std::vector<Reply>> replies = Run({{"HMGET", key, "format", "this_update", "checked_at",
                                             "etag", "last_modified", "url", "host"},
                                            {"HSTRLEN", key, "der"}});
  if (!replies.ok()) return replies.status();
  const redisReply *fields = replies.value()[0].get();
  const redisReply *size = replies.value()[1].get();
  if (fields->type != REDIS_REPLY_ARRAY || fields->elements != 7 ||
      size->type != REDIS_REPLY_INTEGER) {
    const redisReply *error = fields->type == REDIS_REPLY_ERROR ? fields : size;
    return Fail(error->type == REDIS_REPLY_ERROR ? std::string(error->str, error->len)
                                                 : "unexpected reply to HMGET");
  }
  auto field = [&](size_t i) {
    const redisReply *r = fields->element[i];
    return r->type == REDIS_REPLY_STRING ? std::string(r->str, r->len) : std::string();
  };
  if (field(0).empty() && size->integer == 0) return std::optional<SharedBlob>();
  SharedBlob blob;
  blob.this_update = ToInt(field(1));
  blob.checked_at = ToInt(field(2));
  blob.etag = field(3);
  blob.last_modified = field(4);
  blob.url = field(5);
  blob.host = field(6);
  blob.der_size = size->integer > 0 ? static_cast<uint64_t>(size->integer) : 0;
  return std::optional<SharedBlob>(std::move(blob));
}

Result<std::string> SharedCache::ReadDer(const std::string &key, uint64_t max_size) {
  Result<std::vector<Reply>> size = Run({{"HSTRLEN", key, "der"}});
  if (!size.ok()) return size.status();
  const redisReply *n = size.value()[0].get();
  if (n->type != REDIS_REPLY_INTEGER) return Fail("unexpected reply to HSTRLEN");
  if (n->integer <= 0) return Status::Error("the shared blob has no DER");
  if (static_cast<uint64_t>(n->integer) > max_size) {
    return Status::Error("the shared blob is larger than certgate_fetch_max_size (" +
                         std::to_string(n->integer) + " > " + std::to_string(max_size) + " bytes)");
  }
  Result<std::vector<Reply>> der = Run({{"HGET", key, "der"}}, /*bulk=*/true);
  if (!der.ok()) return der.status();
  const redisReply *r = der.value()[0].get();
  if (r->type != REDIS_REPLY_STRING) return Status::Error("the shared blob is gone");
  if (r->len > max_size) return Status::Error("the shared blob grew past certgate_fetch_max_size");
  return std::string(r->str, r->len);
}

Result<bool> SharedCache::Publish(const std::string &key, const SharedBlob &blob, int64_t ttl_ms,
                                  bool force) {
  Result<std::vector<Reply>> replies =
      Run({{"EVAL", kPublishScript, "1", key, std::to_string(blob.this_update),
            std::to_string(blob.checked_at), blob.der, blob.etag, blob.last_modified, blob.url,
            host_id_, std::to_string(std::max<int64_t>(ttl_ms, 1)), force ? "1" : "0"}},
          /*bulk=*/true);
  if (!replies.ok()) return replies.status();
  const redisReply *r = replies.value()[0].get();
  if (r->type != REDIS_REPLY_INTEGER) {
    return Fail(r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len)
                                             : "unexpected reply to the publication");
  }
  return r->integer == 1;
}

Result<bool> SharedCache::Confirm(const std::string &key, int64_t this_update, int64_t checked_at) {
  Result<std::vector<Reply>> replies =
      Run({{"EVAL", kConfirmScript, "1", key, std::to_string(this_update),
            std::to_string(checked_at)}});
  if (!replies.ok()) return replies.status();
  const redisReply *r = replies.value()[0].get();
  if (r->type != REDIS_REPLY_INTEGER) {
    return Fail(r->type == REDIS_REPLY_ERROR ? std::string(r->str, r->len)
                                             : "unexpected reply to the confirmation");
  }
  return r->integer == 1;
}

Result<bool> SharedCache::TakeLease(const std::string &key, int64_t ttl_ms) {
  Result<std::vector<Reply>> replies =
      Run({{"SET", key, host_id_, "NX", "PX", std::to_string(std::max<int64_t>(ttl_ms, 1))}});
  if (!replies.ok()) return replies.status();
  const redisReply *r = replies.value()[0].get();
  if (r->type == REDIS_REPLY_ERROR) return Fail(std::string(r->str, r->len));
  return r->type == REDIS_REPLY_STATUS;  // OK; nil when held
}

Status SharedCache::ReleaseLease(const std::string &key) {
  Result<std::vector<Reply>> replies = Run({{"EVAL", kReleaseScript, "1", key, host_id_}});
  if (!replies.ok()) return replies.status();
  const redisReply *r = replies.value()[0].get();
  if (r->type == REDIS_REPLY_ERROR) return Fail(std::string(r->str, r->len));
  return Status::Ok();
}

}  // namespace certgate
