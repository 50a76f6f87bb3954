// The shared revocation tier in a fleet (issue 14): 3 nginx + 1 Apache with
// certgate_shared_cache on one real redis-server (nginx-2 through a proxy
// that can delay Redis's replies), one CDP that logs requests.
//
// One fleet for the whole program; the tests run in order, each moving the
// fleet to the next crlNumber (each CRL valid 16 s, so it falls due for refresh
// 14.4 s after it was signed; the next is signed 8 s after it):
//   OneCdpFetchPerVersionFleetWide   101, 102, 103: one CDP fetch each, and
//                                    every server judges every version right
//   ForgedBlobIsRefusedAndCounted    a blob signed by another key in Redis
//   RolledBackBlobIsRefusedAndCounted a replayed older genuine CRL in Redis
//   SlowRedisDelaysNoRequest         Redis's replies held 30 s for nginx-2
//   LeaseHolderKilledMidFetch        the CDP hangs for the lease holder, which
//                                    is SIGKILLed; another host takes over
//                                    once the lease has expired
//   RedisKilledServersFetchDirectly  redis-server SIGKILLed mid-run (last: a
//                                    process whose connection went stale
//                                    while Redis restarted fetches directly
//                                    once, without a lease)
// What the core keeps in Redis (common/src/revocation/shared_cache.h):
// <prefix>crl:<sha256(url) hex> a hash (der, this_update, checked_at, etag,
// last_modified, url, host, format), <prefix>lease:<sha256(url) hex> the
// fetching host; its events are counted on the status page as
// certgate_shared_cache_events_total{shared_cache="redis://...",event=...}.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>

#include <chrono>
#include <ctime>
#include <thread>

#include "fleet_fixture.h"

namespace certgate::fleet_test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kValidS = 16;  // each version's nextUpdate - thisUpdate
// Long enough for any refresh the test waits for (due at 0.9 * kValidS, a
// fetch timeout of 3 s, a lease of fetch_timeout + 10 s).
constexpr int kSettleMs = 45000;
const char *const kPrefix = "certgate:";

int MsSince(Clock::time_point start) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

std::string Sha256Hex(const std::string &text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(text.data(), text.size(), digest, &len, EVP_sha256(), nullptr);
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[digest[i] >> 4];
    out += kHex[digest[i] & 15];
  }
  return out;
}

std::string BlobKey(const std::string &url) {
  return kPrefix + std::string("crl:") + Sha256Hex(url);
}
std::string LeaseKey(const std::string &url) {
  return kPrefix + std::string("lease:") + Sha256Hex(url);
}

Fleet *g_fleet = nullptr;
std::string g_start_error;
int g_number = 100;                // the crlNumber in force fleet-wide
std::vector<int> g_revoked;        // the fleet clients it revokes
Clock::time_point g_signed;        // when it was signed
Clock::time_point g_next_signed;   // when the one published next was
std::map<int, std::string> g_der;  // crlNumber -> DER

class FleetShared : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_fleet = new Fleet;
    g_start_error = g_fleet->Start(/*shared=*/true);
  }
  static void TearDownTestSuite() {
    delete g_fleet;
    g_fleet = nullptr;
  }
  void SetUp() override { ASSERT_EQ(g_start_error, "") << "the fleet did not start"; }

  Fleet &fleet() { return *g_fleet; }

  // Signs the next crlNumber revoking the fleet clients so far plus `newly`
  // and publishes it at the CDP, no sooner than half a validity after the one
  // in force: else the new version would itself fall due while the fleet
  // rolls over to it, and its refresh (a 304) would count as a second fetch.
  void PublishNext(int newly, int valid_s = kValidS) {
    const int wait_ms = kValidS * 500 - MsSince(g_signed);
    if (wait_ms > 0) SleepMs(wait_ms);
    std::vector<int> revoked = g_revoked;
    revoked.push_back(newly);
    std::string error;
    const std::string der = fleet().PublishCrl(g_number + 1, revoked, valid_s, &error);
    ASSERT_NE(der, "") << error;
    g_der[g_number + 1] = der;
    g_next_signed = Clock::now();
  }
  // After PublishNext: the version before falls due; asks every server (round
  // robin, as a fleet under traffic would) until each refuses `newly`. Every
  // answer meanwhile must say what one of the two versions says: `good`
  // allowed, "revoked" and the earlier fleet clients refused, each within a
  // few seconds.
  void AwaitRevoked(int newly, const std::vector<int> &servers) {
    std::vector<bool> done(kServers, false);
    const auto start = Clock::now();
    size_t left = servers.size();
    while (left > 0 && MsSince(start) < kSettleMs) {
      for (int s : servers) {
        if (done[s]) continue;
        const h::CurlAnswer a = fleet().Get(s, FleetClient(newly));
        ASSERT_TRUE(a.status == 200 || a.status == 403)
            << "server " << s << ": " << a.status << " " << a.body << a.err;
        EXPECT_LT(a.ms, 3000) << "server " << s;
        if (a.status == 403) {
          EXPECT_NE(a.body.find("revoked"), std::string::npos) << a.body;
          done[s] = true;
          --left;
        }
        ExpectOldVerdicts(s);
      }
      SleepMs(300);
    }
    for (int s : servers) {
      EXPECT_TRUE(done[s]) << "server " << s << " never took the new CRL";
      ExpectOldVerdicts(s, /*all=*/true);
    }
  }
  // The version published last is now in force fleet-wide.
  void Commit(int newly) {
    g_number += 1;
    g_revoked.push_back(newly);
    g_signed = g_next_signed;
  }
  // AwaitRevoked at every server, then Commit.
  void RollForward(int newly) {
    AwaitRevoked(newly, {0, 1, 2, 3});
    Commit(newly);
  }
  // What every version says: "good" allowed, "revoked" and the clients
  // revoked so far refused (`all`; else only the latest of them).
  void ExpectOldVerdicts(int s, bool all = false) {
    const h::CurlAnswer good = fleet().Get(s, "good");
    EXPECT_EQ(good.status, 200) << "server " << s << ": " << good.body;
    EXPECT_LT(good.ms, 3000) << "server " << s;
    EXPECT_EQ(fleet().Get(s, "revoked").status, 403) << "server " << s;
    for (size_t i = all ? 0 : std::max<size_t>(g_revoked.size(), 1) - 1; i < g_revoked.size();
         ++i) {
      EXPECT_EQ(fleet().Get(s, FleetClient(g_revoked[i])).status, 403)
          << "server " << s << " fleet" << g_revoked[i];
    }
  }
  // Shared-tier events counted by server s (certgate_shared_cache_events_total
  // of its redis:// URL); -1 when absent.
  double Event(int s, const std::string &event) {
    const std::string url = s == 2 ? fleet().proxy().Url() : fleet().redis().Url();
    return Sample(fleet().Status(s), "certgate_shared_cache_events_total",
                  {{"shared_cache", url}, {"event", event}});
  }
  double EventSum(const std::string &event) {
    double sum = 0;
    for (int s = 0; s < kServers; ++s) sum += std::max(0.0, Event(s, event));
    return sum;
  }
  size_t Cdp200s() {
    size_t n = 0;
    for (const std::string &line : fleet().CdpFetches()) {
      if (line.find(" 200 ") != std::string::npos) ++n;
    }
    return n;
  }
};

TEST_F(FleetShared, OneCdpFetchPerVersionFleetWide) {
  std::string error;
  // 101: cold caches everywhere. Server 0 fetches; the others find it in Redis.
  g_der[101] = fleet().PublishCrl(101, {}, kValidS, &error);
  ASSERT_NE(g_der[101], "") << error;
  g_number = 101;
  g_signed = g_next_signed = Clock::now();
  for (int s = 0; s < kServers; ++s) {
    EXPECT_EQ(fleet().WaitForStatus(s, "good", 200, 15000).status, 200) << "server " << s;
    ExpectOldVerdicts(s);
    EXPECT_EQ(fleet().Get(s, FleetClient(1)).status, 200) << "server " << s;
  }
  EXPECT_EQ(fleet().CdpFetches().size(), 1u) << testing::PrintToString(fleet().CdpFetches());
  EXPECT_EQ(fleet().redis().HGet(BlobKey(fleet().crl_url()), "der"), g_der[101]);
  // 102 revokes fleet1, 103 fleet2: one fetch each, whoever does it.
  PublishNext(1);
  RollForward(1);
  EXPECT_EQ(fleet().CdpFetches().size(), 2u) << testing::PrintToString(fleet().CdpFetches());
  PublishNext(2);
  RollForward(2);
  const auto fetches = fleet().CdpFetches();
  EXPECT_EQ(fetches.size(), 3u) << testing::PrintToString(fetches);
  for (const std::string &line : fetches) EXPECT_NE(line.find(" 200 "), std::string::npos) << line;
  EXPECT_EQ(fleet().redis().HGet(BlobKey(fleet().crl_url()), "der"), g_der[103]);
  // For each version, the three servers that did not fetch took it from Redis
  // (a host's second process may take it again: counted per process).
  EXPECT_GE(EventSum("hit"), 3 * 3);
}

// Writes `der` into Redis as the blob of the CRL URL, claiming to be newer
// than anything the fleet holds.
void PlantBlob(Fleet &fleet, const std::string &der) {
  const std::string key = BlobKey(fleet.crl_url());
  const std::string now = std::to_string(std::time(nullptr) + 1);
  for (const auto &[field, value] :
       std::vector<std::pair<std::string, std::string>>{{"der", der},
                                                        {"this_update", now},
                                                        {"checked_at", now},
                                                        {"etag", ""},
                                                        {"last_modified", ""},
                                                        {"url", fleet.crl_url()},
                                                        {"host", "mallory:1:1"},
                                                        {"format", "1"}}) {
    ASSERT_TRUE(fleet.redis().HSet(key, field, value)) << field;
  }
  ASSERT_TRUE(fleet.redis().Command({"PEXPIRE", key, "600000"}).ok());
}

TEST_F(FleetShared, ForgedBlobIsRefusedAndCounted) {
  std::string error;
  // Revokes nobody: taken, "revoked" and every fleet client would be let in.
  const std::string forged = fleet().ForgeCrl(g_number + 50, 3600, &error);
  ASSERT_NE(forged, "") << error;
  const double refused_before = EventSum("refused");
  const size_t fetches_before = fleet().CdpFetches().size();
  PlantBlob(fleet(), forged);
  PublishNext(3);
  RollForward(3);  // every answer meanwhile by the old data, then the CDP's
  EXPECT_GE(EventSum("refused") - refused_before, 1);
  EXPECT_GE(fleet().CdpFetches().size(), fetches_before + 1);
  // The genuine CRL, fetched by a host that refused the forgery, replaced it.
  EXPECT_EQ(fleet().redis().HGet(BlobKey(fleet().crl_url()), "der"), g_der[g_number]);
  bool logged = false;
  for (int s = 0; s < kServers; ++s) {
    logged = logged || fleet().logs(s).find("refused its blob") != std::string::npos;
  }
  EXPECT_TRUE(logged);
}

TEST_F(FleetShared, RolledBackBlobIsRefusedAndCounted) {
  // A genuine CRL the CA signed earlier (102: fleet2 and fleet3 not revoked),
  // replayed as if newer.
  ASSERT_NE(g_der[102], "");
  const double refused_before = EventSum("refused");
  PlantBlob(fleet(), g_der[102]);
  PublishNext(4);
  RollForward(4);  // fleet2, fleet3 refused all along
  EXPECT_GE(EventSum("refused") - refused_before, 1);
  EXPECT_EQ(fleet().redis().HGet(BlobKey(fleet().crl_url()), "der"), g_der[g_number]);
}

TEST_F(FleetShared, SlowRedisDelaysNoRequest) {
  // nginx-2 reaches Redis through the proxy: every reply now takes 30 s.
  fleet().proxy().set_delay(std::chrono::seconds(30));
  const double errors_before = std::max(0.0, Event(2, "redis_error"));
  PublishNext(5);
  AwaitRevoked(5, {2});  // each answer within 3 s; nginx-2 fetched directly
  EXPECT_GE(Event(2, "redis_error") - errors_before, 1);
  fleet().proxy().set_delay(std::chrono::milliseconds(0));
  AwaitRevoked(5, {0, 1, 3});
  Commit(5);
}

TEST_F(FleetShared, LeaseHolderKilledMidFetch) {
  // The next version's fetch hangs at the CDP, for whoever asks first.
  ASSERT_TRUE(fleet().cdp().SetFault(h::CrlServer::Fault::kHang, kCrlPath));
  PublishNext(7);
  // Until the version in force is due (0.9 of its validity after signing).
  const int due_ms = kValidS * 900 + 500 - MsSince(g_signed);
  if (due_ms > 0) SleepMs(due_ms);
  const size_t ok_before = Cdp200s();
  // nginx-0 answers from its cache and starts the refresh: it takes the lease.
  const std::string lease = LeaseKey(fleet().crl_url());
  const auto asked = Clock::now();
  while (fleet().redis().PttlMs(lease) < 0 && MsSince(asked) < 8000) {
    EXPECT_EQ(fleet().Get(0, "good").status, 200);
    for (int i = 0; i < 10 && fleet().redis().PttlMs(lease) < 0; ++i) SleepMs(20);
  }
  ASSERT_GT(fleet().redis().PttlMs(lease), 0)
      << "nginx-0 took no lease: "
      << h::CachedUrlState(h::CertgateCliPath(), fleet().nginx(0).cache(), fleet().crl_url())
      << "\n"
      << fleet().logs(0).substr(fleet().logs(0).size() > 3000 ? fleet().logs(0).size() - 3000 : 0);
  // ... and dies with it, mid-fetch.
  fleet().nginx(0).Kill();
  ASSERT_TRUE(fleet().cdp().SetFault(h::CrlServer::Fault::kNone, kCrlPath));
  EXPECT_GT(fleet().redis().PttlMs(lease), 0) << "the lease outlives its holder";
  const auto killed = Clock::now();
  while (fleet().redis().PttlMs(lease) > 0 && MsSince(killed) < 20000) SleepMs(100);
  ASSERT_LE(fleet().redis().PttlMs(lease), 0) << "the lease never expired";
  // nginx-1 takes over; the others find its publication.
  AwaitRevoked(7, {1});
  AwaitRevoked(7, {2, 3});
  EXPECT_EQ(Cdp200s(), ok_before + 1) << testing::PrintToString(fleet().CdpFetches());
  // nginx-0 back: it finds the new version in Redis, no CDP fetch.
  ASSERT_EQ(fleet().nginx(0).Restart(), "");
  AwaitRevoked(7, {0});
  Commit(7);
  EXPECT_EQ(Cdp200s(), ok_before + 1) << testing::PrintToString(fleet().CdpFetches());
}

TEST_F(FleetShared, RedisKilledServersFetchDirectly) {
  fleet().redis().Kill();
  const size_t fetches_before = fleet().CdpFetches().size();
  PublishNext(6);
  RollForward(6);  // every answer within 3 s, from the old data, then the new
  // Nobody to share with: each server fetched the new version itself.
  EXPECT_EQ(fleet().CdpFetches().size(), fetches_before + kServers)
      << testing::PrintToString(fleet().CdpFetches());
  for (int s = 0; s < kServers; ++s) {
    EXPECT_GE(Event(s, "redis_error"), 1) << "server " << s;
  }
}

}  // namespace
}  // namespace certgate::fleet_test
