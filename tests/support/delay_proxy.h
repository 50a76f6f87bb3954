// DelayProxy: a TCP proxy on 127.0.0.1 that holds every chunk of the
// upstream's replies back by a set delay: "Redis slow" for the shared-cache
// tests (point certgate_shared_cache at proxy.port() instead of Redis's).
// Header-only; one thread per direction per connection; the destructor stops
// everything. The delay may be changed while it runs.
//
//   certgate::testing::DelayProxy slow(redis.port(), std::chrono::milliseconds(400));
//   policy.Set("shared_cache", {slow.Url()});
// When the upstream refuses, the proxy drops the client's connection. Used by
// the unit tests and the fleet (tests/integration/fleet, fixed port 18611).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace certgate::testing {

class DelayProxy {
 public:
  // `listen_port` 0: a free ephemeral port.
  DelayProxy(int upstream_port, std::chrono::milliseconds delay, int listen_port = 0)
      : upstream_port_(upstream_port), delay_ms_(delay.count()) {
    // CLOEXEC: servers a test starts later (nginx, apache2) must not hold its sockets.
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr = Loopback(listen_port);
    if (bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0 || listen(fd_, 64) != 0) {
      close(fd_);
      throw std::runtime_error("delay proxy: cannot listen on 127.0.0.1:" +
                               std::to_string(listen_port));
    }
    socklen_t len = sizeof addr;
    getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~DelayProxy() {
    stop_ = true;
    accept_thread_.join();
    close(fd_);
    std::vector<std::thread> threads;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      threads.swap(threads_);
    }
    for (std::thread &t : threads) t.join();
  }

  DelayProxy(const DelayProxy &) = delete;
  DelayProxy &operator=(const DelayProxy &) = delete;

  int port() const { return port_; }
  std::string Url(int db = 0) const {
    return "redis://127.0.0.1:" + std::to_string(port_) + "/" + std::to_string(db);
  }
  // Takes effect at once, for replies already held too.
  void set_delay(std::chrono::milliseconds delay) { delay_ms_ = delay.count(); }

 private:
  static sockaddr_in Loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    return addr;
  }

  void AcceptLoop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int client = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) continue;
      const int upstream = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in addr = Loopback(upstream_port_);
      if (connect(upstream, reinterpret_cast<sockaddr *>(&addr), sizeof addr) != 0) {
        close(upstream);
        close(client);
        continue;
      }
      std::lock_guard<std::mutex> lock(mutex_);
      // Each direction closes its reader's peer for writing when its source ends;
      // the reply direction owns both descriptors.
      threads_.emplace_back([this, client, upstream] { Pump(client, upstream, false); });
      threads_.emplace_back([this, client, upstream] {
        Pump(upstream, client, true);
        close(client);
        close(upstream);
      });
    }
  }

  void Pump(int from, int to, bool delayed) {
    char buf[65536];
    while (!stop_) {
      pollfd p{from, POLLIN, 0};
      const int r = poll(&p, 1, 50);
      if (r == 0) continue;
      if (r < 0) break;
      const ssize_t n = read(from, buf, sizeof buf);
      if (n <= 0) break;
      if (delayed) {
        for (int64_t waited = 0; waited < delay_ms_ && !stop_; waited += 10) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
      ssize_t off = 0;
      while (off < n) {
        const ssize_t w = send(to, buf + off, static_cast<size_t>(n - off), MSG_NOSIGNAL);
        if (w <= 0) return;
        off += w;
      }
    }
    shutdown(to, SHUT_WR);
  }

  int upstream_port_;
  std::atomic<int64_t> delay_ms_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  std::mutex mutex_;
  std::vector<std::thread> threads_;
};

}  // namespace certgate::testing
