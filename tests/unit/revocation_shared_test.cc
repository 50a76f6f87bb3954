// The shared revocation tier (certgate_shared_cache) against a real
// redis-server (tests/support/redis_server.h) and the in-test CDP: two
// "hosts" (two checkers on two cache directories, as two servers of a fleet)
// fetch each CRL once; whatever Redis holds is verified as a fetched CRL.
#include <delay_proxy.h>
#include <gmock/gmock.h>
#include <redis_server.h>

#include "revocation/shared_cache.h"
#include "revocation_test_pki.h"
#include "revocation_test_server.h"
#include "status_gauges.h"

namespace certgate {
namespace {

using testing::DelayProxy;
using ::testing::HasSubstr;
using testing::kRevDay;
using testing::kRevNow;
using ::testing::Not;
using testing::TestHttpServer;
using testing::TestRedisServer;
using Reply = TestHttpServer::Reply;

constexpr auto kWait = std::chrono::seconds(15);  // only bounds a failure

std::string Joined(const std::vector<std::string> &lines) {
  std::string out;
  for (const std::string &line : lines) out += line + "\n";
  return out;
}

// ---- the key

TEST(SharedCacheKey, ParsesRedisUrls) {
  Policy policy;
  ASSERT_TRUE(policy.Set("shared_cache", {"redis://10.0.0.5:6380/2"}).ok());
  ASSERT_TRUE(policy.shared_cache);
  EXPECT_EQ(policy.shared_cache->host, "10.0.0.5");
  EXPECT_EQ(policy.shared_cache->port, 6380);
  EXPECT_EQ(policy.shared_cache->db, 2);
  EXPECT_EQ(policy.shared_cache->prefix, "certgate:");
  EXPECT_EQ(policy.shared_cache->Display(), "redis://10.0.0.5:6380/2");

  ASSERT_TRUE(
      policy.Set("CertGateSharedCache", {"redis://fleet:s%40cret@redis.example", "prefix=web-eu:"})
          .ok());
  EXPECT_EQ(policy.shared_cache->user, "fleet");
  EXPECT_EQ(policy.shared_cache->password, "s@cret");
  EXPECT_EQ(policy.shared_cache->port, 6379);
  EXPECT_EQ(policy.shared_cache->db, 0);
  EXPECT_EQ(policy.shared_cache->prefix, "web-eu:");
  EXPECT_EQ(policy.shared_cache->Display(), "redis://redis.example:6379/0");

  ASSERT_TRUE(policy.Set("certgate_shared_cache", {"redis://:only-password@[::1]:7000/1"}).ok());
  EXPECT_EQ(policy.shared_cache->host, "::1");
  EXPECT_EQ(policy.shared_cache->password, "only-password");
  EXPECT_EQ(policy.shared_cache->Display(), "redis://[::1]:7000/1");

  ASSERT_TRUE(policy.Set("shared_cache", {"off"}).ok());
  ASSERT_TRUE(policy.shared_cache);
  EXPECT_FALSE(policy.shared_cache->enabled());
}

TEST(SharedCacheKey, RefusesWhatItCannotUseWithoutEchoingThePassword) {
  Policy policy;
  Status tls = policy.Set("shared_cache", {"rediss://u:topsecret@redis.example:6380/0"});
  ASSERT_FALSE(tls.ok());
  EXPECT_THAT(tls.message(), HasSubstr("rediss:// (Redis over TLS) is not supported"));
  EXPECT_THAT(tls.message(), HasSubstr("hiredis (0.14) has no TLS"));
  EXPECT_THAT(tls.message(), Not(HasSubstr("topsecret")));
  for (const std::vector<std::string> &bad :
       std::vector<std::vector<std::string>>{{"http://redis.example"},
                                             {"redis://"},
                                             {"redis://u:topsecret@redis.example:99999/0"},
                                             {"redis://u:topsecret@redis.example:6379/zero"},
                                             {"redis://userwithoutcolon@redis.example"},
                                             {"redis://u:%zz@redis.example"},
                                             {"redis://redis.example", "pre fix"},
                                             {"redis://redis.example", "prefix="},
                                             {"off", "prefix=x:"}}) {
    Status status = policy.Set("shared_cache", bad);
    EXPECT_FALSE(status.ok()) << bad[0];
    EXPECT_THAT(status.message(), HasSubstr("certgate_shared_cache: "));
    EXPECT_THAT(status.message(), Not(HasSubstr("topsecret")));
  }
  EXPECT_FALSE(policy.shared_cache);
}

// ---- the client

class SharedCacheClientTest : public ::testing::Test {
 protected:
  SharedCacheSettings Settings() {
    Policy policy;
    EXPECT_TRUE(policy.Set("shared_cache", {redis_.Url()}).ok());
    return *policy.shared_cache;
  }
  TestRedisServer redis_;
};

TEST_F(SharedCacheClientTest, BlobRoundTripNewestWinsLeaseIsOurs) {
  SharedCache a(Settings(), std::chrono::milliseconds(500));
  SharedCache b(Settings(), std::chrono::milliseconds(500));
  const std::string key = a.CrlKey("http://pki.example/ca.crl");
  EXPECT_EQ(key.rfind("certgate:crl:", 0), 0u);
  EXPECT_EQ(key.size(), std::string("certgate:crl:").size() + 64);

  Result<std::optional<SharedBlob>> absent = a.ReadMeta(key);
  ASSERT_TRUE(absent.ok()) << absent.status().message();
  EXPECT_FALSE(absent.value());

  SharedBlob blob;
  static const char kDer[] = "\x30\x82\x00\x00binary\0der";  // a NUL inside, kept
  blob.der = std::string(kDer, sizeof kDer - 1);
  blob.this_update = 1000;
  blob.checked_at = 1100;
  blob.etag = "\"v1\"";
  blob.url = "http://pki.example/ca.crl";
  Result<bool> published = a.Publish(key, blob, 60000, false);
  ASSERT_TRUE(published.ok()) << published.status().message();
  EXPECT_TRUE(published.value());
  const long long ttl = redis_.Command({"PTTL", key}).integer;
  EXPECT_GT(ttl, 50000);
  EXPECT_LE(ttl, 60000);

  Result<std::optional<SharedBlob>> meta = b.ReadMeta(key);
  ASSERT_TRUE(meta.ok() && meta.value());
  EXPECT_EQ(meta.value()->this_update, 1000);
  EXPECT_EQ(meta.value()->checked_at, 1100);
  EXPECT_EQ(meta.value()->etag, "\"v1\"");
  EXPECT_EQ(meta.value()->host, a.host_id());
  EXPECT_EQ(meta.value()->der_size, blob.der.size());
  Result<std::string> der = b.ReadDer(key, 1024);
  ASSERT_TRUE(der.ok());
  EXPECT_EQ(der.value(), blob.der);
  Result<std::string> too_big = b.ReadDer(key, 8);
  ASSERT_FALSE(too_big.ok());
  EXPECT_THAT(too_big.status().message(), HasSubstr("larger than certgate_fetch_max_size"));

  // An older publication never replaces a newer one, unless forced.
  SharedBlob older = blob;
  older.this_update = 900;
  older.der = "older";
  EXPECT_FALSE(b.Publish(key, older, 60000, false).value());
  EXPECT_EQ(redis_.HGet(key, "der"), blob.der);
  EXPECT_TRUE(b.Publish(key, older, 60000, true).value());
  EXPECT_EQ(redis_.HGet(key, "der"), "older");

  // A 304 marks the version checked; another version is left alone.
  EXPECT_TRUE(b.Confirm(key, 900, 2000).value());
  EXPECT_EQ(redis_.HGet(key, "checked_at"), "2000");
  EXPECT_FALSE(b.Confirm(key, 901, 3000).value());
  EXPECT_EQ(redis_.HGet(key, "checked_at"), "2000");

  const std::string lease = a.LeaseKey("http://pki.example/ca.crl");
  EXPECT_TRUE(a.TakeLease(lease, 60000).value());
  EXPECT_FALSE(b.TakeLease(lease, 60000).value());
  EXPECT_TRUE(b.ReleaseLease(lease).ok());  // not b's: kept
  EXPECT_EQ(redis_.Command({"GET", lease}).str, a.host_id());
  EXPECT_TRUE(a.ReleaseLease(lease).ok());
  EXPECT_EQ(redis_.Command({"EXISTS", lease}).integer, 0);
}

TEST_F(SharedCacheClientTest, RedisDownIsAnErrorWithinTheTimeoutThenHeldBack) {
  SharedCache client(Settings(), std::chrono::milliseconds(200));
  redis_.Kill();
  const auto start = std::chrono::steady_clock::now();
  Result<std::optional<SharedBlob>> meta = client.ReadMeta(client.CrlKey("http://x/ca.crl"));
  EXPECT_FALSE(meta.ok());
  EXPECT_THAT(meta.status().message(), HasSubstr("connect: Connection refused"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_FALSE(client.MayTry());  // not again for SharedCache::kRetryAfter
}

TEST_F(SharedCacheClientTest, AStoppedRedisTimesOut) {
  SharedCache client(Settings(), std::chrono::milliseconds(200));
  ASSERT_TRUE(client.ReadMeta(client.CrlKey("http://x/ca.crl")).ok());  // connected
  redis_.Pause();
  const auto start = std::chrono::steady_clock::now();
  Result<std::optional<SharedBlob>> meta = client.ReadMeta(client.CrlKey("http://x/ca.crl"));
  const auto took = std::chrono::steady_clock::now() - start;
  redis_.Resume();
  ASSERT_FALSE(meta.ok());
  EXPECT_THAT(meta.status().message(), HasSubstr("timed out after 200 ms"));
  EXPECT_LT(took, std::chrono::seconds(1));
}

TEST_F(SharedCacheClientTest, WrongPasswordIsReportedWithoutIt) {
  redis_.SetPassword("right-one");
  Policy policy;
  ASSERT_TRUE(policy
                  .Set("shared_cache",
                       {"redis://:wrong-one@127.0.0.1:" + std::to_string(redis_.port()) + "/0"})
                  .ok());
  SharedCache client(*policy.shared_cache, std::chrono::milliseconds(500));
  Result<std::optional<SharedBlob>> meta = client.ReadMeta(client.CrlKey("http://x/ca.crl"));
  ASSERT_FALSE(meta.ok());
  EXPECT_THAT(meta.status().message(), HasSubstr("AUTH: "));
  EXPECT_THAT(meta.status().message(), Not(HasSubstr("wrong-one")));

  ASSERT_TRUE(policy
                  .Set("shared_cache",
                       {"redis://:right-one@127.0.0.1:" + std::to_string(redis_.port()) + "/3"})
                  .ok());
  SharedCache right(*policy.shared_cache, std::chrono::milliseconds(500));
  SharedBlob blob;
  blob.der = "x";
  blob.this_update = 1;
  ASSERT_TRUE(right.Publish(right.CrlKey("u"), blob, 10000, false).ok());
  EXPECT_EQ(redis_.Keys("certgate:*").size(), 0u);  // not in db 0: in db 3
  EXPECT_THAT(redis_.Command({"INFO", "keyspace"}).str, HasSubstr("db3:keys=1"));
}

// ---- two hosts, one Redis, one CDP

class SharedTierTest : public testing::RevocationFixture {
 protected:
  void SetUp() override {
    RevocationFixture::SetUp();
    SetPolicy("revocation", {"soft_fail"});
    SetPolicy("shared_cache", {redis_.Url()});
    SetPolicy("fetch_timeout", {"3s"});
    auto opened = RevocationChecker::Open(dir_ + "/cache-b", clock_);
    ASSERT_TRUE(opened.ok()) << opened.status().message();
    host_b_ = std::move(opened).value();
  }

  void TearDown() override {
    host_b_.reset();
    RevocationFixture::TearDown();
  }

  std::string CrlDer(std::vector<pki::PkiBuilder::Revoked> revoked, int64_t number,
                     int64_t this_update = kRevNow - 3600) {
    auto crl = pki_->Crl(issuing_, revoked, number, this_update, kRevNow + kRevDay);
    EXPECT_TRUE(crl) << pki_->last_error();
    return pki::ToDer(crl.get());
  }

  // Check on `host`, wait for what it scheduled, check again.
  RevocationAnswer CheckAfterFetch(RevocationChecker &host, const pki::Issued &leaf) {
    (void)host.Check(Evidence(leaf), policy_);
    EXPECT_TRUE(host.WaitForFetches(Evidence(leaf), kWait));
    std::vector<RevocationAnswer> answers = host.Check(Evidence(leaf), policy_);
    EXPECT_FALSE(answers.empty());
    return answers.empty() ? RevocationAnswer{} : answers[0];
  }

  std::string CrlKey() { return settings().prefix + "crl:" + KeyHash(crl_url_); }
  std::string KeyHash(const std::string &url) {
    SharedCache client(settings(), std::chrono::milliseconds(500));
    const std::string key = client.CrlKey(url);
    return key.substr(key.rfind(':') + 1);
  }
  SharedCacheSettings settings() { return *policy_.shared_cache; }

  TestRedisServer redis_;
  TestHttpServer cdp_;
  std::string crl_url_ = cdp_.Url("/issuing.crl");
  std::unique_ptr<RevocationChecker> host_b_;
};

TEST_F(SharedTierTest, TheSecondHostIngestsFromRedisWithoutAskingTheCdp) {
  pki::Issued alice = Leaf("alice", {crl_url_});
  cdp_.Set("/issuing.crl",
           Reply{200, CrlDer({{Serial(alice), kRevNow - 60, 1}}, 7), {"ETag: \"v7\""}});
  RevocationAnswer on_a = CheckAfterFetch(*checker_, alice);
  EXPECT_EQ(on_a.status, RevocationStatus::kRevoked);
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 1);
  // Host A published it, with its validators and a TTL of nextUpdate + max_stale.
  EXPECT_EQ(redis_.HGet(CrlKey(), "etag"), "\"v7\"");
  EXPECT_EQ(redis_.HGet(CrlKey(), "url"), crl_url_);
  EXPECT_EQ(redis_.HGet(CrlKey(), "this_update"), std::to_string(kRevNow - 3600));
  const long long ttl = redis_.Command({"TTL", CrlKey()}).integer;
  EXPECT_GT(ttl, kRevDay + 3600 - 60);
  EXPECT_LE(ttl, kRevDay + 3600);
  EXPECT_TRUE(redis_.Keys("certgate:lease:*").empty());  // released

  RevocationAnswer on_b = CheckAfterFetch(*host_b_, alice);
  EXPECT_EQ(on_b.status, RevocationStatus::kRevoked);
  EXPECT_EQ(on_b.source, "crl " + crl_url_ + " crl_number=7");
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 1);  // one fetch for the fleet
  const std::string listing = Joined(host_b_->List());
  EXPECT_THAT(listing, HasSubstr("ok: from the shared cache " + redis_.Url() + " (published by "));
  EXPECT_THAT(listing, HasSubstr("etag=\"v7\""));  // B may ask the CDP conditionally later
  EXPECT_THAT(listing, HasSubstr("shared_cache " + redis_.Url() + " hit=1"));
  EXPECT_THAT(Joined(checker_->List()), HasSubstr("shared_cache " + redis_.Url() + " published=1"));
  // The status page's counters, from the same records.
  CacheGauges gauges;
  gauges.dir = host_b_->dir();
  gauges.readable = true;
  gauges.listing = host_b_->store().List().value();
  std::string page;
  AppendRevocationGauges(&page, {gauges}, kRevNow);
  EXPECT_THAT(page, HasSubstr("certgate_shared_cache_events_total{cache=\"" + host_b_->dir() +
                              "\",shared_cache=\"" + redis_.Url() + "\",event=\"hit\"} 1\n"));

  // A new version: whoever is due first fetches it, the other takes it from Redis.
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({}, 8, kRevNow), {"ETag: \"v8\""}});
  clock_.Set(kRevNow + 4000);  // past the refresh interval
  EXPECT_EQ(CheckAfterFetch(*host_b_, alice).status, RevocationStatus::kGood);
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 2);
  RevocationAnswer a_again = CheckAfterFetch(*checker_, alice);
  EXPECT_EQ(a_again.status, RevocationStatus::kGood);
  EXPECT_EQ(a_again.source, "crl " + crl_url_ + " crl_number=8");
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 2);
}

TEST_F(SharedTierTest, AForgedCrlInRedisIsRefusedCountedAndTheHostFetchesDirectly) {
  pki::Issued alice = Leaf("alice", {crl_url_});
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({{Serial(alice), kRevNow - 60, 1}}, 5)});
  ASSERT_EQ(CheckAfterFetch(*checker_, alice).status, RevocationStatus::kRevoked);
  ASSERT_EQ(CheckAfterFetch(*host_b_, alice).status, RevocationStatus::kRevoked);
  ASSERT_EQ(cdp_.Hits("/issuing.crl"), 1);

  // Someone with write access to Redis: an empty CRL of the same name, signed by another key,
  // claiming to be newer.
  pki::Issued other_root = pki_->SelfSigned(pki::PkiBuilder::CaSpec("CN=Other Root,O=Example"));
  pki::Issued impostor =
      pki_->Issue(other_root, pki::PkiBuilder::CaSpec("CN=Rev Issuing CA,O=Example"));
  const std::string forged =
      pki::ToDer(pki_->Crl(impostor, {}, 99, kRevNow - 60, kRevNow + kRevDay).get());
  redis_.HSet(CrlKey(), "der", forged);
  redis_.HSet(CrlKey(), "this_update", std::to_string(kRevNow - 60));

  clock_.Set(kRevNow + 4000);
  RevocationAnswer answer = CheckAfterFetch(*host_b_, alice);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);  // the old data kept
  EXPECT_THAT(answer.source, HasSubstr("crl_number=5"));
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 2);  // then fetched directly
  const std::string listing = Joined(host_b_->List());
  EXPECT_THAT(listing, HasSubstr("refused=1"));
  EXPECT_THAT(listing, Not(HasSubstr("crl_number=99")));
  // What the CDP gave replaced the forgery.
  EXPECT_NE(redis_.HGet(CrlKey(), "der"), forged);
  EXPECT_EQ(redis_.HGet(CrlKey(), "this_update"), std::to_string(kRevNow - 3600));
}

TEST_F(SharedTierTest, ARolledBackCrlInRedisIsRefused) {
  pki::Issued alice = Leaf("alice", {crl_url_});
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({{Serial(alice), kRevNow - 60, 1}}, 5)});
  ASSERT_EQ(CheckAfterFetch(*host_b_, alice).status, RevocationStatus::kRevoked);
  ASSERT_EQ(cdp_.Hits("/issuing.crl"), 1);
  // Genuinely signed, later thisUpdate, but an older crlNumber without alice's revocation.
  const std::string rolled_back = CrlDer({}, 4, kRevNow - 60);
  redis_.HSet(CrlKey(), "der", rolled_back);
  redis_.HSet(CrlKey(), "this_update", std::to_string(kRevNow - 60));

  clock_.Set(kRevNow + 4000);
  RevocationAnswer answer = CheckAfterFetch(*host_b_, alice);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_THAT(answer.source, HasSubstr("crl_number=5"));
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 2);
  EXPECT_THAT(Joined(host_b_->List()), HasSubstr("refused=1"));
}

TEST_F(SharedTierTest, RedisKilledTheHostsFetchDirectly) {
  pki::Issued alice = Leaf("alice", {crl_url_});
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({{Serial(alice), kRevNow - 60, 1}}, 3)});
  redis_.Kill();
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(CheckAfterFetch(*checker_, alice).status, RevocationStatus::kRevoked);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(3));
  EXPECT_EQ(CheckAfterFetch(*host_b_, alice).status, RevocationStatus::kRevoked);
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 2);
  EXPECT_THAT(Joined(checker_->List()), HasSubstr("redis_error=1"));
  EXPECT_THAT(Joined(host_b_->List()), HasSubstr("redis_error=1"));
}

TEST_F(SharedTierTest, RedisKilledMidRunThenBack) {
  pki::Issued alice = Leaf("alice", {crl_url_});
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({{Serial(alice), kRevNow - 60, 1}}, 3)});
  ASSERT_EQ(CheckAfterFetch(*checker_, alice).status, RevocationStatus::kRevoked);  // connected
  redis_.Kill();
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({}, 4, kRevNow)});
  clock_.Set(kRevNow + 4000);
  RevocationAnswer answer = CheckAfterFetch(*checker_, alice);  // (no SIGPIPE either)
  EXPECT_EQ(answer.status, RevocationStatus::kGood);
  EXPECT_THAT(answer.source, HasSubstr("crl_number=4"));
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 2);
  EXPECT_THAT(Joined(checker_->List()), HasSubstr("redis_error=1"));

  // Back (empty): used again once SharedCache::kRetryAfter has passed.
  redis_.Start();
  std::this_thread::sleep_for(SharedCache::kRetryAfter + std::chrono::milliseconds(200));
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({}, 5, kRevNow + 60)});
  clock_.Set(kRevNow + 8000);
  EXPECT_THAT(CheckAfterFetch(*checker_, alice).source, HasSubstr("crl_number=5"));
  EXPECT_EQ(redis_.HGet(CrlKey(), "this_update"), std::to_string(kRevNow + 60));
  EXPECT_EQ(CheckAfterFetch(*host_b_, alice).source, "crl " + crl_url_ + " crl_number=5");
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 3);
}

TEST_F(SharedTierTest, ASlowRedisDelaysNoRequestAndTheHostFetchesDirectly) {
  DelayProxy slow(redis_.port(), std::chrono::milliseconds(600));
  // fetch_timeout 3s: Redis gets 750 ms a command, and a reply after 375 ms is slow.
  SetPolicy("shared_cache", {"redis://127.0.0.1:" + std::to_string(slow.port()) + "/0"});
  pki::Issued alice = Leaf("alice", {crl_url_});
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({{Serial(alice), kRevNow - 60, 1}}, 3)});
  const auto start = std::chrono::steady_clock::now();
  RevocationAnswer first = CheckLeaf(alice);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(100));
  EXPECT_TRUE(first.fetch_pending);
  ASSERT_TRUE(checker_->WaitForFetches(Evidence(alice), kWait));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2000));
  EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 1);
  EXPECT_THAT(Joined(checker_->List()), HasSubstr("redis_error=1"));
  // Served from the cache meanwhile: a request never waits for Redis.
  for (int i = 0; i < 20; ++i) {
    const auto t = std::chrono::steady_clock::now();
    EXPECT_EQ(CheckLeaf(alice).status, RevocationStatus::kRevoked);
    EXPECT_LT(std::chrono::steady_clock::now() - t, std::chrono::milliseconds(50));
  }
}

TEST_F(SharedTierTest, ALeaseHeldElsewhereIsWaitedForThenTakenWhenItExpires) {
  pki::Issued alice = Leaf("alice", {crl_url_});
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({}, 1)});
  const std::string lease = settings().prefix + "lease:" + KeyHash(crl_url_);
  ASSERT_EQ(redis_.Command({"SET", lease, "other-host:1:00", "NX", "PX", "1500"}).str, "OK");
  const auto start = std::chrono::steady_clock::now();
  (void)host_b_->Check(Evidence(alice), policy_);
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 0);  // waiting for the other host
  ASSERT_TRUE(host_b_->WaitForFetches(Evidence(alice), kWait));
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
  EXPECT_EQ(host_b_->Check(Evidence(alice), policy_)[0].status, RevocationStatus::kGood);
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 1);
  const std::string listing = Joined(host_b_->List());
  EXPECT_THAT(listing, HasSubstr("lease_wait=1"));
  EXPECT_THAT(listing, HasSubstr("published=1"));
}

TEST_F(SharedTierTest, AWaitingHostTakesTheLeaseHoldersPublication) {
  pki::Issued alice = Leaf("alice", {crl_url_});
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({{Serial(alice), kRevNow - 60, 1}}, 2)});
  const std::string lease = settings().prefix + "lease:" + KeyHash(crl_url_);
  ASSERT_EQ(redis_.Command({"SET", lease, "other-host:1:00", "NX", "PX", "60000"}).str, "OK");
  (void)host_b_->Check(Evidence(alice), policy_);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  // The "other host" publishes what it fetched.
  SharedCache other(settings(), std::chrono::milliseconds(500));
  SharedBlob blob;
  blob.der = CrlDer({{Serial(alice), kRevNow - 60, 1}}, 2);
  blob.this_update = kRevNow - 3600;
  blob.checked_at = kRevNow;
  blob.url = crl_url_;
  ASSERT_TRUE(other.Publish(CrlKey(), blob, 60000, false).value());
  ASSERT_TRUE(host_b_->WaitForFetches(Evidence(alice), kWait));
  EXPECT_EQ(host_b_->Check(Evidence(alice), policy_)[0].status, RevocationStatus::kRevoked);
  EXPECT_EQ(cdp_.Hits("/issuing.crl"), 0);
  const std::string listing = Joined(host_b_->List());
  EXPECT_THAT(listing, HasSubstr("hit=1"));
  EXPECT_THAT(listing, HasSubstr("lease_wait=1"));
}

TEST_F(SharedTierTest, WhatRedisLacksIsFetchedWholeToBePublished) {
  pki::Issued alice = Leaf("alice", {crl_url_});
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({}, 6), {"ETag: \"v6\""}});
  SetPolicy("shared_cache", {"off"});  // joined the fleet later
  ASSERT_EQ(CheckAfterFetch(*checker_, alice).status, RevocationStatus::kGood);
  SetPolicy("shared_cache", {redis_.Url()});
  clock_.Set(kRevNow + 4000);
  ASSERT_EQ(CheckAfterFetch(*checker_, alice).status, RevocationStatus::kGood);
  std::vector<TestHttpServer::Request> requests = cdp_.Requests();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].Header("If-None-Match"), "");  // not a 304: the body is wanted
  EXPECT_EQ(redis_.HGet(CrlKey(), "etag"), "\"v6\"");
  // Redis has it now: the next refresh may be conditional (a 304 marks the blob checked).
  clock_.Set(kRevNow + 8000);
  ASSERT_EQ(CheckAfterFetch(*checker_, alice).status, RevocationStatus::kGood);
  requests = cdp_.Requests();
  ASSERT_EQ(requests.size(), 3u);
  EXPECT_EQ(requests[2].Header("If-None-Match"), "\"v6\"");
}

TEST_F(SharedTierTest, OcspAnswersAreSharedByCertId) {
  SetPolicy("revocation_sources", {"ocsp"});
  pki::Issued alice = Leaf("alice", {}, {cdp_.Url("/ocsp")});
  auto response = pki_->Ocsp(alice, issuing_, issuing_, V_OCSP_CERTSTATUS_REVOKED, kRevNow - 600,
                             kRevNow + 3 * 3600, kRevNow - 5000, OCSP_REVOKED_STATUS_KEYCOMPROMISE);
  ASSERT_TRUE(response) << pki_->last_error();
  cdp_.Set("/ocsp", Reply{200, pki::ToDer(response.get())});
  EXPECT_EQ(CheckAfterFetch(*checker_, alice).status, RevocationStatus::kRevoked);
  EXPECT_EQ(redis_.Keys("certgate:ocsp:*").size(), 1u);
  RevocationAnswer on_b = CheckAfterFetch(*host_b_, alice);
  EXPECT_EQ(on_b.status, RevocationStatus::kRevoked);
  EXPECT_EQ(on_b.reason, "keyCompromise");
  EXPECT_EQ(cdp_.Hits("/ocsp"), 1);
  EXPECT_THAT(Joined(host_b_->List()), HasSubstr("hit=1"));
}

TEST_F(SharedTierTest, TheKeyPrefixIsConfigurable) {
  SetPolicy("shared_cache", {redis_.Url(), "prefix=fleet-a:"});
  pki::Issued alice = Leaf("alice", {crl_url_});
  cdp_.Set("/issuing.crl", Reply{200, CrlDer({}, 1)});
  EXPECT_EQ(CheckAfterFetch(*checker_, alice).status, RevocationStatus::kGood);
  EXPECT_EQ(redis_.Keys("fleet-a:crl:*").size(), 1u);
  EXPECT_TRUE(redis_.Keys("certgate:*").empty());
}

}  // namespace
}  // namespace certgate
