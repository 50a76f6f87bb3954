// The fleet of fleet_fixture.h: three nginx, one Apache, a CDP, Redis.
#include "fleet_fixture.h"

#include <signal.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <stdexcept>
#include <thread>

#include "../apache/apache_test_fixture.h"

namespace certgate::fleet_test {

namespace {

using Clock = std::chrono::steady_clock;

int MsSince(Clock::time_point start) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

// What every server of the fleet enforces, in nginx spelling (without the
// certgate_ prefix) and in the order Apache gets it too.
const char *const kCommonPolicy[][2] = {
    {"revocation", "hard_fail"},
    {"revocation_sources", "crl"},
    {"revocation_scope", "leaf"},
    {"fetch_timeout", "3s"},
};

// certgate_shared_cache_prefix -> CertGateSharedCachePrefix.
std::string ApacheName(const std::string &key) {
  std::string out = "CertGate";
  bool upper = true;
  for (char c : key) {
    if (c == '_') {
      upper = true;
      continue;
    }
    out += upper ? static_cast<char>(toupper(c)) : c;
    upper = false;
  }
  return out;
}

}  // namespace

std::string FleetClient(int n) { return "fleet" + std::to_string(n); }

namespace {

constexpr int kFleetClients = 8;
uint64_t FleetSerial(int n) { return 0xF1EE00u + static_cast<uint64_t>(n); }

// fleet1..fleet8 under <pki>/clients, as the demo clients are (the CDP the
// demo certificates name, so every server fetches the Issuing CA's CRL).
std::string IssueFleetClients(const std::string &pki) {
  const pki::Issued ca = h::LoadDemoIssuingCa(pki);
  if (!ca) return "cannot load the demo Issuing CA";
  pki::PkiBuilder builder(static_cast<int64_t>(std::time(nullptr)));
  for (int n = 1; n <= kFleetClients; ++n) {
    pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=" + FleetClient(n) + ",OU=People,O=Example");
    spec.serial = FleetSerial(n);
    spec.crl_urls = {"http://127.0.0.1:" + std::to_string(kCdpPort) + kCrlPath};
    const pki::Issued leaf = builder.Issue(ca, spec);
    const std::string base = pki + "/clients/" + FleetClient(n);
    if (!leaf || !h::WriteFile(base + ".crt", leaf.Pem()) ||
        !h::WriteFile(base + ".key", leaf.KeyPem()) ||
        !h::WriteFile(base + ".chain.pem", leaf.Pem() + pki::ToPem(ca.cert.get()))) {
      return "cannot issue " + base;
    }
  }
  h::MakeWorldReadable(pki + "/clients");
  return "";
}

}  // namespace

// ---- one nginx ----

std::string FleetNginx::Start(const std::string &dir, const std::string &pki,
                              const std::string &shared_cache_url) {
  dir_ = dir;
  conf_ = dir + "/nginx.conf";
  for (const char *sub : {"/logs", "/tmp", "/cache"}) h::MakeDirs(dir + sub);
  std::string policy;
  for (const auto &kv : kCommonPolicy) {
    policy += std::string("    certgate_") + kv[0] + " " + kv[1] + ";\n";
  }
  if (!shared_cache_url.empty()) policy += "    certgate_shared_cache " + shared_cache_url + ";\n";
  // Two workers: the host's own lease (LMDB) and the fleet's (Redis) both play.
  const std::string conf =
      "load_module " CERTGATE_NGINX_MODULE_PATH ";\n" +
      h::NginxConfigHead(dir, 2, {error_log() + " info"}) +
      "  log_format cg '$request_uri status=$status reason=$certgate_reason "
      "revocation=\"$certgate_revocation\"';\n"
      "  access_log " +
      dir + "/logs/access.log cg;\n" + "  ssl_protocols TLSv1.2 TLSv1.3;\n" +
      "  server {\n    listen 127.0.0.1:" + std::to_string(port_) + " ssl;\n" +
      "    server_name fleet-" + std::to_string(index_) + ";\n" + "    ssl_certificate " + pki +
      "/server/server-chain.pem;\n    ssl_certificate_key " + pki +
      "/server/server.key;\n    ssl_trusted_certificate " + pki + "/ca/trust.pem;\n" +
      "    certgate require;\n    certgate_cache " + cache() + ";\n" + policy +
      "    location / { return 200 \"ok\\n\"; }\n"
      "    location = /status { certgate off; certgate_status on; }\n"
      "  }\n}\n";
  if (!h::WriteFile(conf_, conf)) return "cannot write " + conf_;
  h::MakeWorldReadable(dir);
  return Restart();
}

std::string FleetNginx::Restart() {
  const std::string nginx = h::FindProgram(CERTGATE_NGINX_BINARY);
  if (nginx.empty()) return std::string(CERTGATE_NGINX_BINARY) + " is missing";
  const h::RunResult test = h::Run({nginx, "-t", "-p", dir_, "-c", conf_});
  if (test.exit_code != 0) return "nginx -t failed:\n" + test.err;
  if (!process_.Start({nginx, "-p", dir_, "-c", conf_}, dir_ + "/logs/stdout.log",
                      dir_ + "/logs/stderr.log")) {
    return "cannot start nginx: " + process_.error();
  }
  if (!h::WaitForPort(port_, 10000)) {
    return "nginx does not listen on " + std::to_string(port_) + ":\n" +
           h::ReadFile(dir_ + "/logs/stderr.log") + h::ReadFile(error_log());
  }
  return "";
}

void FleetNginx::Kill() {
  if (process_.pid() <= 0 || !process_.Running()) return;
  h::SignalTree(process_.pid(), SIGKILL);
  process_.Wait(10000);
  // Orphaned workers (already re-parented) have no master to answer to: wait
  // for the port to close so a restart can bind it.
  for (int i = 0; i < 200 && h::PortOpen(port_); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
}

// ---- the fleet ----

struct Fleet::ApacheBox {
  certgate_apache_test::Apache apache{"event"};
};

Fleet::Fleet() = default;
Fleet::~Fleet() { Stop(); }

std::string Fleet::pki() const { return certgate_apache_test::SharedPki().path; }

std::string Fleet::Start(bool shared) {
  const auto &shared_pki = certgate_apache_test::SharedPki();
  if (!shared_pki.error.empty()) return "PKI: " + shared_pki.error;
  dir_ = std::make_unique<h::TempDir>("certgate-fleet");
  if (!dir_->ok()) return "cannot create a temporary directory";
  if (h::FileSize(pki() + "/clients/" + FleetClient(1) + ".chain.pem") <= 0) {
    std::string issued = IssueFleetClients(pki());
    if (!issued.empty()) return issued;
  }
  std::string error = cdp_.Start(work() + "/cdp", work() + "/www", kCdpPort);
  if (!error.empty()) return "CDP: " + error;
  std::string direct, proxied;
  if (shared) {
    // The fixtures throw when they cannot start: what went wrong, as an error.
    try {
      redis_ = std::make_unique<certgate::testing::TestRedisServer>(kRedisPort);
    } catch (const std::exception &e) {
      return std::string("Redis: ") + e.what();
    }
    try {
      proxy_ = std::make_unique<certgate::testing::DelayProxy>(
          kRedisPort, std::chrono::milliseconds(0), kProxyPort);
    } catch (const std::exception &e) {
      return std::string("proxy: ") + e.what();
    }
    direct = redis_->Url();
    proxied = proxy_->Url();
  }
  for (int i = 0; i < 3; ++i) {
    nginx_.push_back(std::make_unique<FleetNginx>(i, kNginxPorts[i]));
    error =
        nginx_[i]->Start(work() + "/nginx-" + std::to_string(i), pki(), i == 2 ? proxied : direct);
    if (!error.empty()) return "nginx-" + std::to_string(i) + ": " + error;
  }
  apache_ = std::make_unique<ApacheBox>();
  const std::string root = apache_->apache.root();
  std::string body = "  CertGate require\n  CertGateCache " + root + "/cache\n";
  for (const auto &kv : kCommonPolicy) body += "  " + ApacheName(kv[0]) + " " + kv[1] + "\n";
  if (shared) body += "  CertGateSharedCache " + direct + "\n";
  body += "  <Location /status>\n    CertGate off\n    CertGateStatus on\n  </Location>\n";
  error =
      apache_->apache.Start(certgate_apache_test::VirtualHost(kApachePort, "", body), kApachePort);
  if (!error.empty()) return "apache2: " + error;
  return "";
}

void Fleet::Stop() {
  for (auto &n : nginx_) n->Kill();
  if (apache_) apache_->apache.Stop();
  proxy_.reset();
  redis_.reset();
  cdp_.Stop();
}

std::string Fleet::url(int server) const {
  return "https://127.0.0.1:" + std::to_string(server < 3 ? kNginxPorts[server] : kApachePort) +
         "/";
}

std::string Fleet::logs(int server) const {
  if (server < 3) {
    return h::ReadFile(nginx_[server]->error_log()) +
           h::ReadFile(nginx_[server]->dir() + "/logs/stderr.log");
  }
  return h::ReadFile(apache_->apache.error_log());
}

std::string Fleet::SignCrl(int number, const std::vector<int> &revoked_fleet, int valid_s,
                           std::string *error) {
  std::string index = h::ReadFile(pki() + "/ocsp/index.txt");
  for (int n : revoked_fleet) {
    char serial[32];
    snprintf(serial, sizeof(serial), "%llX", static_cast<unsigned long long>(FleetSerial(n)));
    index += "R\t" + h::IndexTime(365 * 86400) + "\t" + h::IndexTime(-60) + ",keyCompromise\t" +
             serial + "\tunknown\t/O=Example/OU=People/CN=" + FleetClient(n) + "\n";
  }
  std::string der;
  *error =
      h::SignCrl(work() + "/crl-" + std::to_string(number), index, pki() + "/ca/intermediate.pem",
                 pki() + "/ca/intermediate.key", number, valid_s, &der);
  return error->empty() ? der : "";
}

std::string Fleet::PublishCrl(int number, const std::vector<int> &revoked_fleet, int valid_s,
                              std::string *error) {
  const std::string der = SignCrl(number, revoked_fleet, valid_s, error);
  if (der.empty()) return "";
  if (!cdp_.Publish(kCrlPath + 1, der)) {
    *error = "cannot publish at the CDP";
    return "";
  }
  return der;
}

std::string Fleet::ForgeCrl(int number, int valid_s, std::string *error) {
  // A CA with the Issuing CA's subject and a key of its own.
  const pki::Issued real = h::LoadDemoIssuingCa(pki());
  if (!real) {
    *error = "cannot load the Issuing CA";
    return "";
  }
  const h::RunResult subject = h::Run({"openssl", "x509", "-in", pki() + "/ca/intermediate.pem",
                                       "-noout", "-subject", "-nameopt", "RFC2253"});
  std::string dn = subject.out;
  if (dn.rfind("subject=", 0) == 0) dn = dn.substr(8);
  while (!dn.empty() && (dn.back() == '\n' || dn.back() == ' ')) dn.pop_back();
  pki::PkiBuilder builder(static_cast<int64_t>(std::time(nullptr)));
  const pki::Issued fake = builder.SelfSigned(pki::PkiBuilder::CaSpec(dn));
  const std::string dir = work() + "/forged-" + std::to_string(number);
  h::MakeDirs(dir);
  if (!fake || !h::WriteFile(dir + "/ca.pem", fake.Pem()) ||
      !h::WriteFile(dir + "/ca.key", fake.KeyPem())) {
    *error = "cannot make the forger's CA";
    return "";
  }
  // Nobody revoked: accepted, it would let "revoked" in.
  std::string der;
  *error = h::SignCrl(dir, h::UnrevokeAll(h::ReadFile(pki() + "/ocsp/index.txt")), dir + "/ca.pem",
                      dir + "/ca.key", number, valid_s, &der);
  return error->empty() ? der : "";
}

h::CurlAnswer Fleet::Get(int server, const std::string &client, double max_time_s) const {
  return h::CurlAsClient(url(server), pki(), client, max_time_s);
}

std::string Fleet::Status(int server) const {
  return h::CurlAsClient(url(server) + "status", pki(), "", 10).body;
}

h::CurlAnswer Fleet::WaitForStatus(int server, const std::string &client, int status,
                                   int timeout_ms) const {
  const auto start = Clock::now();
  h::CurlAnswer last;
  do {
    last = Get(server, client);
    if (last.status == status) return last;
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  } while (MsSince(start) < timeout_ms);
  return last;
}

double Sample(const std::string &page, const std::string &name,
              const std::map<std::string, std::string> &labels) {
  std::string error;
  const auto samples = h::ParsePrometheus(page, &error);
  if (!error.empty()) return -1;
  const auto found = h::FindSamples(samples, name, labels);
  if (found.empty()) return -1;
  double sum = 0;
  for (const auto &s : found) sum += s.value;
  return sum;
}

}  // namespace certgate::fleet_test
