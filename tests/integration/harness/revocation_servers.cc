// certgate integration-test harness (harness.h): the revocation servers, a CDP
// (CrlServer), a Blackhole and the OCSP responder.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness.h"
#include "harness_internal.h"

namespace certgate::harness {

namespace fs = std::filesystem;

// ---- revocation servers (CDP / OCSP) ----

namespace {

const char *FaultName(CrlServer::Fault fault) {
  switch (fault) {
    case CrlServer::Fault::k500:
      return "500";
    case CrlServer::Fault::kHtml:
      return "html";
    case CrlServer::Fault::kHang:
      return "hang";
    case CrlServer::Fault::k404:
      return "404";
    case CrlServer::Fault::kNone:
      break;
  }
  return "";
}

// A listening socket on 127.0.0.1:port that is never accepted from.
int ListenNeverAccept(int port, int *bound_port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 || listen(fd, 1024) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  if (bound_port) *bound_port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

CrlServer::~CrlServer() { Stop(); }

std::string CrlServer::Start(const std::string &workdir, const std::string &docroot, int port) {
  const std::string nginx = FindProgram("/usr/sbin/nginx");
  if (nginx.empty()) return "/usr/sbin/nginx is missing (apt-get install nginx-core)";
  workdir_ = workdir;
  docroot_ = docroot;
  port_ = port;
  if (!MakeDirs(workdir_ + "/faults", 0755) || !MakeDirs(workdir_ + "/tmp", 0755)) {
    return "cannot create " + workdir_;
  }
  if (!MakeDirs(docroot_, 0755) || !MakeWorldReadable(docroot_)) {
    return "cannot make " + docroot_ + " readable";
  }
  if (hang_fd_ < 0) hang_fd_ = ListenNeverAccept(0, &hang_port_);
  if (hang_fd_ < 0) return std::string("cannot listen for the hang fault: ") + strerror(errno);
  const std::string f = workdir_ + "/faults";
  // Flags are checked most specific first; `if` + return/rewrite is the safe use.
  std::string checks;
  for (const char *fault : {"hang", "500", "html", "404"}) {
    const std::string action = std::string(fault) == "hang"   ? "rewrite ^ /.certgate-hang last;"
                               : std::string(fault) == "html" ? "rewrite ^ /.certgate-html last;"
                               : std::string(fault) == "500"  ? "return 500;"
                                                              : "return 404;";
    checks += "      if (-f " + f + "$uri." + fault + ") { " + action + " }\n";
  }
  for (const char *fault : {"hang", "500", "html", "404"}) {
    const std::string action = std::string(fault) == "hang"   ? "rewrite ^ /.certgate-hang last;"
                               : std::string(fault) == "html" ? "rewrite ^ /.certgate-html last;"
                               : std::string(fault) == "500"  ? "return 500;"
                                                              : "return 404;";
    checks += "      if (-f " + f + "/all." + fault + ") { " + action + " }\n";
  }
  const std::string w = workdir_;
  const std::string conf = NginxConfigHead(w, 1, {w + "/error.log info"}, 512) +
                           "  log_format cdp '$request_uri $status ims=$http_if_modified_since "
                           "inm=$http_if_none_match';\n"
                           "  access_log " +
                           w +
                           "/access.log cdp;\n"
                           "  types { application/pkix-crl crl; application/pkix-cert crt; }\n"
                           "  default_type application/octet-stream;\n"
                           "  server {\n"
                           "    listen 127.0.0.1:" +
                           std::to_string(port_) +
                           ";\n"
                           "    root " +
                           docroot_ +
                           ";\n"
                           "    location / {\n" +
                           checks +
                           "    }\n"
                           "    location = /.certgate-hang {\n"
                           "      internal;\n"
                           "      proxy_pass http://127.0.0.1:" +
                           std::to_string(hang_port_) +
                           ";\n"
                           "      proxy_connect_timeout 3600s;\n"
                           "      proxy_read_timeout 3600s;\n"
                           "      proxy_send_timeout 3600s;\n"
                           "    }\n"
                           "    location = /.certgate-html {\n"
                           "      internal;\n"
                           "      default_type text/html;\n"
                           "      return 200 \"<html><head><title>Maintenance</title></head>"
                           "<body>We are down for maintenance.</body></html>\\n\";\n"
                           "    }\n"
                           "  }\n"
                           "}\n";
  const std::string conf_path = w + "/nginx.conf";
  if (!WriteFile(conf_path, conf)) return "cannot write " + conf_path;
  RunResult test = Run({nginx, "-t", "-p", w, "-c", conf_path});
  if (test.exit_code != 0) return "CDP nginx -t failed:\n" + test.err;
  if (!process_.Start({nginx, "-p", w, "-c", conf_path}, w + "/stdout.log", w + "/stderr.log")) {
    return "cannot start the CDP nginx: " + process_.error();
  }
  if (!WaitForPort(port_, 10000)) {
    return "the CDP nginx does not listen on " + std::to_string(port_) + ":\n" +
           ReadFile(w + "/stderr.log") + ReadFile(error_log());
  }
  return "";
}

void CrlServer::Stop() {
  // SIGTERM: a fast shutdown, which also ends requests hung on the blackhole.
  if (process_.pid() > 0 && process_.Running()) process_.Stop(SIGTERM, 5000);
  // The port must really be free when Stop returns (connection refused).
  for (int i = 0; i < 100 && port_ > 0 && PortOpen(port_); ++i) SleepMs(20);
  if (hang_fd_ >= 0) {
    close(hang_fd_);
    hang_fd_ = -1;
  }
}

bool CrlServer::Running() { return process_.Running(); }

bool CrlServer::Publish(const std::string &name, std::string_view content) {
  return WriteFileAtomically(docroot_ + "/" + name, content, 0644);
}

bool CrlServer::PublishFile(const std::string &name, const std::string &source) {
  std::ifstream in(source, std::ios::binary);
  if (!in) return false;
  return Publish(name, ReadFile(source));
}

bool CrlServer::Remove(const std::string &name) {
  return unlink((docroot_ + "/" + name).c_str()) == 0;
}

bool CrlServer::SetFault(Fault fault, const std::string &path) {
  const std::string dir = workdir_ + "/faults";
  const std::string base = path.empty() ? dir + "/all" : dir + path;
  if (!path.empty()) MakeDirs(fs::path(base).parent_path().string(), 0755);
  bool ok = true;
  for (Fault f : {Fault::k500, Fault::kHtml, Fault::kHang, Fault::k404}) {
    const std::string flag = base + "." + FaultName(f);
    if (f == fault) {
      ok = WriteFile(flag, "") && ok;
    } else {
      unlink(flag.c_str());
    }
  }
  if (fault == Fault::kNone && path.empty()) {
    // Clears the per-path flags too.
    std::error_code ec;
    fs::remove_all(dir, ec);
    ok = MakeDirs(dir, 0755);
  }
  return ok;
}

std::vector<std::string> CrlServer::Requests(const std::string &path) const {
  std::vector<std::string> out;
  std::istringstream in(ReadFile(access_log()));
  std::string line;
  while (std::getline(in, line)) {
    if (path.empty() || line.compare(0, path.size() + 1, path + " ") == 0) out.push_back(line);
  }
  return out;
}

std::string CrlServer::url(const std::string &path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

bool Blackhole::Listen(int port) {
  Close();
  fd_ = ListenNeverAccept(port, &port_);
  return fd_ >= 0;
}

void Blackhole::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

std::string OcspResponder::Start(const std::string &pki, int port, const std::string &log_path,
                                 const std::vector<std::string> &extra) {
  const std::string openssl = FindProgram("openssl");
  if (openssl.empty()) return "openssl is missing";
  port_ = port;
  pki_ = pki;
  log_path_ = log_path;
  extra_ = extra;
  std::vector<std::string> argv = {openssl,      "ocsp",
                                   "-index",     pki + "/ocsp/index.txt",
                                   "-port",      std::to_string(port),
                                   "-rsigner",   pki + "/ocsp/signer.pem",
                                   "-rkey",      pki + "/ocsp/signer.key",
                                   "-CA",        pki + "/ca/intermediate.pem",
                                   "-nmin",      "60",
                                   "-ignore_err"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const size_t mark = static_cast<size_t>(std::max<int64_t>(FileSize(log_path), 0));
  if (!process_.Start(argv, log_path, log_path)) return "cannot start openssl ocsp";
  // Not WaitForPort: OpenSSL 3.0's responder waits forever on a connection
  // that closes without a request. It says when it listens.
  const auto start = Clock::now();
  while (ReadFile(log_path).find("waiting for OCSP client connections", mark) ==
         std::string::npos) {
    if (!process_.Running() || ElapsedMs(start) > 10000) {
      return "openssl ocsp does not listen on " + std::to_string(port) + ":\n" + ReadFile(log_path);
    }
    SleepMs(20);
  }
  return "";
}

void OcspResponder::Stop() {
  if (process_.pid() > 0 && process_.Running()) process_.Stop(SIGTERM, 5000);
}

std::string OcspResponder::Restart() {
  Stop();
  return Start(pki_, port_, log_path_, extra_);
}

}  // namespace certgate::harness
