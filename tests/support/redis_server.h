// TestRedisServer: a real redis-server (Debian's redis-server package) for the
// tests of the shared revocation tier (certgate_shared_cache): started on
// 127.0.0.1 with a throwaway directory, no persistence, and stopped (SIGKILL)
// by the destructor. Header-only, so any test target can use it (add
// tests/support to its include directories and link hiredis, as
// certgate::core_internal does). A system redis-server (apt starts one on
// 6379) is never touched: the default port is a free ephemeral one.
//
//   certgate::testing::TestRedisServer redis;          // or TestRedisServer(6390)
//   policy.Set("shared_cache", {redis.Url()});          // redis://127.0.0.1:<port>/0
//   redis.Kill(); ... redis.Start();                     // Redis down, then back (same port)
//   redis.Command({"SET", "k", "v"}); redis.Keys("certgate:*");
// Used by the unit tests (revocation_shared_test.cc) and the fleet
// (tests/integration/fleet, on its fixed port 18610).
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace certgate::testing {

class TestRedisServer {
 public:
  // A reply, flattened: type is hiredis's REDIS_REPLY_*.
  struct Reply {
    int type = REDIS_REPLY_NIL;
    std::string str;  // string, status, error
    long long integer = 0;
    std::vector<std::string> elements;  // array of strings (nil as "")
    bool ok() const { return type != REDIS_REPLY_ERROR && type != -1; }
  };

  // `port` 0: a free ephemeral port.
  explicit TestRedisServer(int port = 0) : port_(port != 0 ? port : FreePort()) {
    char tmpl[] = "/tmp/certgate-redis-XXXXXX";
    if (mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
    dir_ = tmpl;
    Start();
  }

  ~TestRedisServer() {
    Kill();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }

  TestRedisServer(const TestRedisServer &) = delete;
  TestRedisServer &operator=(const TestRedisServer &) = delete;

  int port() const { return port_; }
  const std::string &dir() const { return dir_; }
  std::string Url(int db = 0) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }
  bool running() const { return pid_ > 0; }

  // Starts redis-server (again, on the same port) and waits until it answers PING.
  void Start() {
    if (pid_ > 0) return;
    const std::string port = std::to_string(port_);
    const std::string log = dir_ + "/redis.log";
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      // Dies with the test (a crashed test must not leave Redis behind), and
      // holds none of its output: ctest waits for every holder of that pipe.
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      const int null = open("/dev/null", O_RDWR);
      if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
      }
      execlp("redis-server", "redis-server", "--port", port.c_str(), "--bind", "127.0.0.1", "--dir",
             dir_.c_str(), "--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile",
             log.c_str(), static_cast<char *>(nullptr));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Command({"PING"}).str == "PONG") return;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("redis-server exited at start; see " + log);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    Kill();
    throw std::runtime_error("redis-server did not answer on port " + port);
  }

  // SIGKILL: Redis gone at once, as a crash.
  void Kill() {
    if (pid_ <= 0) return;
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
    pid_ = -1;
  }

  // SIGSTOP/SIGCONT: Redis that accepts connections but never answers.
  void Pause() {
    if (pid_ > 0) kill(pid_, SIGSTOP);
  }
  void Resume() {
    if (pid_ > 0) kill(pid_, SIGCONT);
  }

  // requirepass: from now on clients must AUTH (Command does).
  void SetPassword(const std::string &password) {
    Command({"CONFIG", "SET", "requirepass", password});
    password_ = password;
  }

  // One command on a fresh connection (binary-safe arguments), after AUTH when
  // a password is set. type -1: no connection or no reply.
  Reply Command(const std::vector<std::string> &args) const {
    Reply out;
    out.type = -1;
    timeval tv{2, 0};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port_, tv);
    if (c == nullptr || c->err != 0) {
      if (c != nullptr) redisFree(c);
      return out;
    }
    redisSetTimeout(c, tv);
    if (!password_.empty()) {
      auto *auth =
          static_cast<redisReply *>(redisCommand(c, "AUTH %b", password_.data(), password_.size()));
      if (auth != nullptr) freeReplyObject(auth);
    }
    std::vector<const char *> argv;
    std::vector<size_t> lengths;
    for (const std::string &arg : args) {
      argv.push_back(arg.data());
      lengths.push_back(arg.size());
    }
    auto *reply = static_cast<redisReply *>(
        redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lengths.data()));
    if (reply != nullptr) {
      out.type = reply->type;
      if (reply->str != nullptr) out.str.assign(reply->str, reply->len);
      out.integer = reply->integer;
      for (size_t i = 0; i < reply->elements; ++i) {
        const redisReply *e = reply->element[i];
        out.elements.push_back(e->str != nullptr ? std::string(e->str, e->len) : std::string());
      }
      freeReplyObject(reply);
    }
    redisFree(c);
    return out;
  }

  std::vector<std::string> Keys(const std::string &pattern) const {
    return Command({"KEYS", pattern}).elements;
  }
  // GET key: the value's bytes; "" when missing (or Redis is down).
  std::string Get(const std::string &key) const { return Command({"GET", key}).str; }
  // SET key value, with PX ttl_ms when > 0. True on OK.
  bool Set(const std::string &key, const std::string &value, int ttl_ms = 0) const {
    std::vector<std::string> args = {"SET", key, value};
    if (ttl_ms > 0) args.insert(args.end(), {"PX", std::to_string(ttl_ms)});
    return Command(args).str == "OK";
  }
  // PTTL key in ms: -2 missing (or Redis is down), -1 no expiry.
  long long PttlMs(const std::string &key) const {
    const Reply r = Command({"PTTL", key});
    return r.type == REDIS_REPLY_INTEGER ? r.integer : -2;
  }
  std::string HGet(const std::string &key, const std::string &field) const {
    return Command({"HGET", key, field}).str;
  }
  // True when Redis took it (0 or 1 new fields).
  bool HSet(const std::string &key, const std::string &field, const std::string &value) const {
    return Command({"HSET", key, field, value}).type == REDIS_REPLY_INTEGER;
  }

 private:
  static int FreePort() {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
    close(fd);
    return ntohs(addr.sin_port);
  }

  int port_;
  std::string dir_;
  std::string password_;
  pid_t pid_ = -1;
};

}  // namespace certgate::testing
