// certgate integration-test harness (harness.h): ports and the curl client.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>

#include "harness.h"
#include "harness_internal.h"

namespace certgate::harness {

// ---- network ----

bool PortOpen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

bool WaitForPort(int port, int timeout_ms) {
  const auto start = Clock::now();
  while (!PortOpen(port)) {
    if (ElapsedMs(start) >= timeout_ms) return false;
    SleepMs(25);
  }
  return true;
}

CurlAnswer CurlAsClient(const std::string &url, const std::string &pki, const std::string &client,
                        double max_time_s, const std::vector<std::string> &curl_args) {
  std::vector<std::string> argv = {"curl", "-sSk"};
  argv.insert(argv.end(), curl_args.begin(), curl_args.end());
  // The status on a line of its own after the body, which may lack a newline.
  argv.insert(argv.end(),
              {"--max-time", std::to_string(max_time_s), "-o", "-", "-w", "\n%{http_code}"});
  if (!client.empty()) {
    argv.insert(argv.end(), {"--cert", pki + "/clients/" + client + ".chain.pem", "--key",
                             pki + "/clients/" + client + ".key"});
  }
  argv.push_back(url);
  const auto start = Clock::now();
  const RunResult r = Run(argv, {}, {}, static_cast<int>((max_time_s + 5) * 1000));
  CurlAnswer out;
  out.ms = ElapsedMs(start);
  out.curl_exit = r.exit_code;
  out.err = r.err;
  const size_t nl = r.out.rfind('\n');
  if (nl != std::string::npos) {
    out.body = r.out.substr(0, nl);
    out.status = std::atoi(r.out.c_str() + nl + 1);
  }
  return out;
}

std::string JsonRefusalProblem(const std::string &body, const std::string &reason) {
  const RunResult parsed =
      Run({"python3", "-c",
           "import json,sys; d=json.load(sys.stdin); assert d['reason']==sys.argv[1], d", reason},
          {}, body);
  return parsed.exit_code == 0 ? "" : parsed.err + "\n" + body;
}

}  // namespace certgate::harness
