// A fleet of real servers for the shared revocation tier (issue 14): three
// Debian nginx with ngx_http_certgate_module and one Debian apache2 (mpm_event)
// with mod_certgate, each with its own revocation cache directory, one demo PKI,
// one CDP that logs every request (h::CrlServer: Debian's nginx on 18080, as
// the demo certificates name it) and, with the shared tier, one real
// redis-server (18610) that nginx-3 reaches through a delaying proxy (18611)
// and the others directly.
//
//   Fleet fleet;
//   ASSERT_EQ(fleet.Start(/*shared=*/true), "");
//   fleet.PublishCrl(1, {}, 12);                  // crlNumber 101 at the CDP
//   fleet.Get(0, "good").status == 200 ...        // server 0..3 (3 = Apache)
//   fleet.CdpFetches()                            // CDP requests for the CRL
//
// Every server: certgate require; hard_fail; CRLs only; leaf only; fetch
// timeout 3 s; /status with certgate_status. Ports: nginx 18600-18602, Apache
// 18603, Redis 18610, the proxy 18611.
#ifndef CERTGATE_TESTS_INTEGRATION_FLEET_FIXTURE_H
#define CERTGATE_TESTS_INTEGRATION_FLEET_FIXTURE_H

#include <delay_proxy.h>
#include <gtest/gtest.h>
#include <harness.h>
#include <redis_server.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace certgate::fleet_test {

namespace h = certgate::harness;
// gtest's `testing`, which tests/support's certgate::testing would hide here.
namespace testing = ::testing;

constexpr int kNginxPorts[] = {18600, 18601, 18602};
constexpr int kApachePort = 18603;
constexpr int kRedisPort = 18610;
constexpr int kProxyPort = 18611;  // nginx-3's way to Redis
constexpr int kCdpPort = 18080;    // fixed in the demo certificates
constexpr int kServers = 4;        // 0..2 nginx, 3 Apache
constexpr int kFetchTimeoutS = 3;  // certgate_fetch_timeout of every server
inline const char *const kCrlPath = "/intermediate.crl";

// One nginx with the module, its own prefix and cache.
class FleetNginx {
 public:
  FleetNginx(int index, int port) : index_(index), port_(port) {}
  ~FleetNginx() { Kill(); }
  // Writes the config (shared_cache_url "" = no shared tier), nginx -t, starts
  // it, waits for the port. "" or what went wrong.
  std::string Start(const std::string &dir, const std::string &pki,
                    const std::string &shared_cache_url);
  // Starts again with the same config (the cache dir kept).
  std::string Restart();
  void Kill();  // SIGKILL to the master and every worker
  h::Process &process() { return process_; }
  int port() const { return port_; }
  std::string dir() const { return dir_; }
  std::string error_log() const { return dir_ + "/logs/error.log"; }
  std::string cache() const { return dir_ + "/cache"; }

 private:
  int index_;
  int port_;
  std::string dir_, conf_;
  h::Process process_;
};

class Fleet {
 public:
  Fleet();
  ~Fleet();
  // shared: every server has certgate_shared_cache (Redis and the proxy are
  // started); else each fetches alone, as before issue 14.
  std::string Start(bool shared);
  void Stop();

  // Signs a CRL of the Issuing CA with crlNumber `number`: the demo index's
  // revocations ("revoked") plus the fleet clients `revoked_fleet` (fleet1 ..
  // fleet8, see FleetClient), valid for valid_s seconds from now. "" on failure
  // (*error says why).
  std::string SignCrl(int number, const std::vector<int> &revoked_fleet, int valid_s,
                      std::string *error);
  // SignCrl and publish it at the CDP (atomically). Returns the DER.
  std::string PublishCrl(int number, const std::vector<int> &revoked_fleet, int valid_s,
                         std::string *error);
  // A CRL that revokes nobody, crlNumber `number`, signed by a key that is not
  // the Issuing CA's (a self-signed CA with the Issuing CA's name): a forgery
  // that, taken, would let "revoked" in.
  std::string ForgeCrl(int number, int valid_s, std::string *error);

  // GET / at server i as demo client `client`.
  h::CurlAnswer Get(int server, const std::string &client, double max_time_s = 10) const;
  // The status page of server i.
  std::string Status(int server) const;
  // Asks server i as `client` until it answers `status` (or timeout_ms passes);
  // returns the last answer.
  h::CurlAnswer WaitForStatus(int server, const std::string &client, int status,
                              int timeout_ms) const;
  // CDP requests for the CRL so far ("<uri> <status> ims=... inm=...").
  std::vector<std::string> CdpFetches() const { return cdp_.Requests(kCrlPath); }

  std::string url(int server) const;
  std::string pki() const;
  std::string crl_url() const { return cdp_.url(kCrlPath); }
  std::string work() const { return dir_->path(); }
  std::string logs(int server) const;  // everything server i logged

  FleetNginx &nginx(int i) { return *nginx_[i]; }
  h::CrlServer &cdp() { return cdp_; }
  // With the shared tier only (Start(true)).
  certgate::testing::TestRedisServer &redis() { return *redis_; }
  certgate::testing::DelayProxy &proxy() { return *proxy_; }

 private:
  std::unique_ptr<h::TempDir> dir_;
  h::CrlServer cdp_;
  std::unique_ptr<certgate::testing::TestRedisServer> redis_;
  std::unique_ptr<certgate::testing::DelayProxy> proxy_;
  std::vector<std::unique_ptr<FleetNginx>> nginx_;
  struct ApacheBox;
  std::unique_ptr<ApacheBox> apache_;
};

// The demo client "fleetN" (1..8): issued by the demo Issuing CA at Start with
// the demo CDP, serial 0xF1EE0N, allowed until a CRL revokes it.
std::string FleetClient(int n);

// The sum of the status page samples named `name` (a counter's with _total)
// with these labels; -1 when the page does not parse or has no such sample.
double Sample(const std::string &page, const std::string &name,
              const std::map<std::string, std::string> &labels = {});

}  // namespace certgate::fleet_test

#endif  // CERTGATE_TESTS_INTEGRATION_FLEET_FIXTURE_H
