// A tiny HTTP/1.0 server for the revocation tests: 127.0.0.1, an ephemeral port,
// canned replies per path prefix (status, body, headers, delay, hang-up), and a
// record of every request. One thread per connection; the destructor stops all.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace certgate::testing {

class TestHttpServer {
 public:
  struct Request {
    std::string method, path, headers, body;
    std::string Header(const std::string &name) const {
      std::string lower_headers = Lower(headers), key = Lower(name) + ":";
      size_t pos = lower_headers.find("\r\n" + key);
      if (pos == std::string::npos) return "";
      pos += 2 + key.size();
      size_t end = headers.find("\r\n", pos);
      std::string value = headers.substr(pos, end - pos);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      return value;
    }
  };
  struct Reply {
    int status = 200;
    std::string body;
    std::vector<std::string> headers;  // "ETag: \"1\""
    int delay_ms = 0;
    bool hang_up = false;  // close without answering
  };
  using Handler = std::function<Reply(const Request &)>;

  TestHttpServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    bind(fd_, reinterpret_cast<sockaddr *>(&addr), sizeof(addr));
    listen(fd_, 64);
    socklen_t len = sizeof(addr);
    getsockname(fd_, reinterpret_cast<sockaddr *>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }

  ~TestHttpServer() {
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

  int port() const { return port_; }
  std::string Url(const std::string &path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }

  void Set(const std::string &prefix, Reply reply) {
    Handle(prefix, [reply](const Request &) { return reply; });
  }
  void Handle(const std::string &prefix, Handler handler) {
    std::lock_guard<std::mutex> lock(mutex_);
    routes_[prefix] = std::move(handler);
  }

  int Hits(const std::string &prefix) {
    std::lock_guard<std::mutex> lock(mutex_);
    int n = 0;
    for (const Request &r : requests_) n += r.path.rfind(prefix, 0) == 0 ? 1 : 0;
    return n;
  }
  std::vector<Request> Requests() {
    std::lock_guard<std::mutex> lock(mutex_);
    return requests_;
  }

 private:
  static std::string Lower(std::string s) {
    for (char &c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    return s;
  }

  void AcceptLoop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      int client = accept(fd_, nullptr, nullptr);
      if (client < 0) continue;
      std::lock_guard<std::mutex> lock(mutex_);
      threads_.emplace_back([this, client] { Serve(client); });
    }
  }

  bool ReadSome(int fd, std::string *in) {
    while (!stop_) {
      pollfd p{fd, POLLIN, 0};
      int r = poll(&p, 1, 50);
      if (r == 0) continue;
      if (r < 0) return false;
      char buf[65536];
      ssize_t n = read(fd, buf, sizeof(buf));
      if (n <= 0) return false;
      in->append(buf, static_cast<size_t>(n));
      return true;
    }
    return false;
  }

  void Serve(int fd) {
    std::string in;
    size_t end;
    while ((end = in.find("\r\n\r\n")) == std::string::npos) {
      if (!ReadSome(fd, &in)) return (void)close(fd);
    }
    Request request;
    size_t line_end = in.find("\r\n");
    std::string line = in.substr(0, line_end);
    size_t sp1 = line.find(' '), sp2 = line.find(' ', sp1 + 1);
    request.method = line.substr(0, sp1);
    request.path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    request.headers = in.substr(line_end, end - line_end + 2);
    std::string length = request.Header("Content-Length");
    size_t want = length.empty() ? 0 : std::stoul(length);
    request.body = in.substr(end + 4);
    while (request.body.size() < want) {
      if (!ReadSome(fd, &request.body)) return (void)close(fd);
    }
    Handler handler;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      requests_.push_back(request);
      size_t best = 0;
      for (const auto &[prefix, h] : routes_) {
        if (request.path.rfind(prefix, 0) == 0 && prefix.size() >= best) {
          best = prefix.size();
          handler = h;
        }
      }
    }
    Reply reply = handler ? handler(request) : Reply{404, "not found", {}, 0, false};
    for (int waited = 0; waited < reply.delay_ms && !stop_; waited += 10) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!reply.hang_up && !stop_) {
      std::string out = "HTTP/1.0 " + std::to_string(reply.status) +
                        " X\r\nContent-Length: " + std::to_string(reply.body.size()) + "\r\n";
      for (const std::string &h : reply.headers) out += h + "\r\n";
      out += "\r\n" + reply.body;
      size_t off = 0;
      while (off < out.size()) {
        ssize_t n = write(fd, out.data() + off, out.size() - off);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
    }
    close(fd);
  }

  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread accept_thread_;
  std::mutex mutex_;
  std::vector<std::thread> threads_;
  std::map<std::string, Handler> routes_;
  std::vector<Request> requests_;
};

}  // namespace certgate::testing
