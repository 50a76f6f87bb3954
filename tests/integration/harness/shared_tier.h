// certgate integration-test harness: the shared revocation tier's surroundings
// (issue 14) — a real redis-server, a proxy that makes it slow, and the kill of
// a whole server (master and workers) as a crash would.
//
//   namespace h = certgate::harness;
//   h::RedisInstance redis;                          // Debian's redis-server
//   ASSERT_EQ(redis.Start(dir + "/redis", 18610), "");
//   redis.Set("certgate:x", blob);                   // binary-safe (redis-cli -x)
//   redis.Kill();                                    // SIGKILL, as a crash
//
//   h::DelayProxy slow;                              // python3, delay_proxy.py
//   ASSERT_EQ(slow.Start(dir + "/proxy", 18611, 18610), "");
//   slow.SetDelayMs(20000);                          // every reply held 20 s
#ifndef CERTGATE_TESTS_INTEGRATION_SHARED_TIER_H
#define CERTGATE_TESTS_INTEGRATION_SHARED_TIER_H

#include <sys/types.h>

#include <string>
#include <vector>

#include "harness.h"

namespace certgate::harness {

// One redis-server on 127.0.0.1:port, its data directory `workdir` (no
// persistence: `save ""`, no AOF), its log there. The destructor kills it.
class RedisInstance {
 public:
  RedisInstance() = default;
  ~RedisInstance() { Kill(); }
  RedisInstance(const RedisInstance &) = delete;
  RedisInstance &operator=(const RedisInstance &) = delete;

  // Starts it and waits until it answers PING. "" or what went wrong.
  std::string Start(const std::string &workdir, int port);
  // SIGKILL, as a crash: clients see the connection drop, then refused.
  void Kill();
  bool Running() { return process_.Running(); }

  // redis-cli -p PORT args... (stdin: `input`), --no-raw off: raw replies.
  RunResult Cli(const std::vector<std::string> &args, const std::string &input = "") const;
  // GET key: the value's bytes; "" when missing (or Redis is down).
  std::string Get(const std::string &key) const;
  // SET key value (binary-safe), with PX ttl_ms when > 0. True on OK.
  bool Set(const std::string &key, const std::string &value, int ttl_ms = 0) const;
  // HSET key field value (binary-safe). True when Redis said so.
  bool HashSet(const std::string &key, const std::string &field, const std::string &value) const;
  // HGET key field; "" when missing.
  std::string HashGet(const std::string &key, const std::string &field) const;
  // KEYS pattern, sorted.
  std::vector<std::string> Keys(const std::string &pattern) const;
  // PTTL key in ms: -2 missing, -1 no expiry.
  long long PttlMs(const std::string &key) const;

  int port() const { return port_; }
  // The URL of certgate_shared_cache for this server, db 0.
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }
  std::string log() const { return workdir_ + "/redis.log"; }

 private:
  Process process_;
  std::string workdir_;
  int port_ = 0;
};

// A TCP proxy (delay_proxy.py) from 127.0.0.1:listen_port to
// 127.0.0.1:target_port that holds every reply for a settable delay.
class DelayProxy {
 public:
  DelayProxy() = default;
  ~DelayProxy() { Stop(); }
  DelayProxy(const DelayProxy &) = delete;
  DelayProxy &operator=(const DelayProxy &) = delete;

  std::string Start(const std::string &workdir, int listen_port, int target_port);
  void Stop();
  // Takes effect at the next chunk of every connection, open ones included.
  bool SetDelayMs(int ms);
  int port() const { return port_; }
  std::string url() const { return "redis://127.0.0.1:" + std::to_string(port_) + "/0"; }

 private:
  Process process_;
  std::string delay_file_;
  int port_ = 0;
};

// The pids of `pid`'s descendants (children, their children, ...), from /proc.
std::vector<pid_t> Descendants(pid_t pid);
// Sends `sig` to `pid` and every descendant it has now, e.g. SIGKILL to
// an nginx master and its workers, as if the host had died mid-fetch.
void SignalTree(pid_t pid, int sig);

}  // namespace certgate::harness

#endif  // CERTGATE_TESTS_INTEGRATION_SHARED_TIER_H
