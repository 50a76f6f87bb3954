// The fleet harness itself (issue 14), and the fleet without the shared tier:
//   FleetHarness.*   redis-server, the delay proxy and SignalTree do what the
//                    shared-tier tests rely on;
//   FleetAlone.*     3 nginx + 1 Apache, each fetching for itself: the CDP sees
//                    one fetch per server per CRL version (what issue 14 is
//                    about), and every server judges each version right.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "fleet_fixture.h"

namespace certgate::fleet_test {
namespace {

using Clock = std::chrono::steady_clock;

int MsSince(Clock::time_point start) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

TEST(FleetHarness, RedisKeepsBinaryBlobsAndDiesOnKill) {
  certgate::testing::TestRedisServer redis(kRedisPort);  // throws when it cannot start
  std::string blob;
  for (int i = 0; i < 70000; ++i) blob += static_cast<char>(i * 7 % 256);  // NULs, newlines
  ASSERT_TRUE(redis.Set("certgate:test", blob, 60000));
  EXPECT_EQ(redis.Get("certgate:test"), blob);
  EXPECT_EQ(redis.Keys("certgate:*"), std::vector<std::string>{"certgate:test"});
  const long long ttl = redis.PttlMs("certgate:test");
  EXPECT_GT(ttl, 50000);
  EXPECT_LE(ttl, 60000);
  redis.Kill();
  EXPECT_FALSE(redis.running());
  EXPECT_FALSE(h::PortOpen(kRedisPort));
  // Started again: empty (no persistence).
  redis.Start();
  EXPECT_EQ(redis.Get("certgate:test"), "");
}

TEST(FleetHarness, DelayProxyHoldsRepliesOnlyWhileTold) {
  certgate::testing::TestRedisServer redis(kRedisPort);
  certgate::testing::DelayProxy proxy(kRedisPort, std::chrono::milliseconds(0), kProxyPort);
  auto ping = [&] {
    const auto start = Clock::now();
    const h::RunResult r = h::Run({"redis-cli", "-p", std::to_string(kProxyPort), "PING"});
    EXPECT_EQ(r.out, "PONG\n") << r.err;
    return MsSince(start);
  };
  EXPECT_LT(ping(), 1000);
  proxy.set_delay(std::chrono::milliseconds(2000));
  EXPECT_GE(ping(), 2000);
  proxy.set_delay(std::chrono::milliseconds(0));
  EXPECT_LT(ping(), 1000);
  // Redis gone: the proxy drops the connection instead of answering.
  redis.Kill();
  const h::RunResult r = h::Run({"redis-cli", "-p", std::to_string(kProxyPort), "PING"});
  EXPECT_EQ(r.out.find("PONG"), std::string::npos);
}

TEST(FleetHarness, SignalTreeReachesGrandchildren) {
  h::Process parent;
  ASSERT_TRUE(parent.Start({"/bin/sh", "-c", "sleep 300 & sh -c 'sleep 300' & wait"}));
  std::vector<pid_t> tree;
  for (int i = 0; i < 100 && tree.size() < 3; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    tree = h::Descendants(parent.pid());
  }
  ASSERT_EQ(tree.size(), 3u);  // sleep, sh, its sleep
  h::SignalTree(parent.pid(), SIGKILL);
  EXPECT_EQ(parent.Wait(5000), 128 + SIGKILL);
  for (pid_t pid : tree) {
    bool gone = false;
    for (int i = 0; i < 100 && !gone; ++i) {
      const std::string stat = h::ReadFile("/proc/" + std::to_string(pid) + "/stat");
      gone = stat.empty() || stat.find(") Z") != std::string::npos;
      if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    EXPECT_TRUE(gone) << pid;
  }
}

// Without the shared tier: every server fetches every version itself.
TEST(FleetAlone, EveryServerFetchesEveryVersion) {
  Fleet fleet;
  ASSERT_EQ(fleet.Start(/*shared=*/false), "");
  std::string error;
  // crlNumber 101: "revoked" (in the demo index) only; due again 9 s after
  // its thisUpdate.
  ASSERT_NE(fleet.PublishCrl(101, {}, 10, &error), "") << error;
  const auto v1 = Clock::now();
  for (int s = 0; s < kServers; ++s) {
    EXPECT_EQ(fleet.WaitForStatus(s, "good", 200, 10000).status, 200) << "server " << s;
    EXPECT_EQ(fleet.Get(s, "revoked").status, 403) << "server " << s;
    EXPECT_EQ(fleet.Get(s, FleetClient(1)).status, 200) << "server " << s;
  }
  EXPECT_EQ(fleet.CdpFetches().size(), 4u) << testing::PrintToString(fleet.CdpFetches());
  // 102 revokes fleet1; each server picks it up once its 101 is due.
  ASSERT_NE(fleet.PublishCrl(102, {1}, 3600, &error), "") << error;
  for (int s = 0; s < kServers; ++s) {
    const h::CurlAnswer a = fleet.WaitForStatus(s, FleetClient(1), 403, 30000);
    EXPECT_EQ(a.status, 403) << "server " << s << ": " << a.body;
    EXPECT_EQ(fleet.Get(s, "good").status, 200) << "server " << s;
  }
  EXPECT_GE(MsSince(v1), 8000);  // not before 101 was due
  const auto fetches = fleet.CdpFetches();
  EXPECT_EQ(fetches.size(), 8u) << testing::PrintToString(fetches);
  for (const std::string &line : fetches) {
    EXPECT_NE(line.find(" 200 "), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace certgate::fleet_test
