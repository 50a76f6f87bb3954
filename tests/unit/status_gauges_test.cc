// Issue 13 §3: the status page's revocation gauges (status_gauges.h), the
// fetch statistics they read from the store, and the earliest-expiring client
// certificates kept in the shared counters.
#include "status_gauges.h"

#include <certgate/certgate.h>
#include <certgate/decision.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <ctime>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "c_handles.h"
#include "pki_builder.h"
#include "revocation/store.h"

namespace certgate {
namespace {

size_t Count(const std::string &page, const std::string &needle) {
  size_t n = 0;
  for (size_t at = page.find(needle); at != std::string::npos; at = page.find(needle, at + 1)) ++n;
  return n;
}

TEST(StatusGaugesTest, LabelValuesAreEscapedAndCutWhole) {
  EXPECT_EQ(PromLabelValue("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(TruncateUtf8("abc", 10), "abc");
  // "é" is two bytes: a cut in its middle drops it whole.
  EXPECT_EQ(TruncateUtf8("ab\xc3\xa9", 3), "ab");
  EXPECT_EQ(TruncateUtf8("ab\xc3\xa9", 4), "ab\xc3\xa9");
}

CacheGauges SampleCache(int64_t now, int crls) {
  CacheGauges cache;
  cache.dir = "/var/cache/certgate";
  cache.max_stale = std::chrono::seconds(3600);
  cache.readable = true;
  for (int i = 0; i < crls; ++i) {
    CrlMeta meta;
    meta.this_update = now - 86400;
    meta.next_update = now + 1000 * (crls - i);  // the last one runs out first
    meta.crl_number_dec = std::to_string(100 + i);
    meta.count = static_cast<uint64_t>(i);
    meta.issuer = "CN=CA \"" + std::to_string(i) + "\",O=Example";
    meta.source = "http://pki.example/" + std::to_string(i) + ".crl";
    cache.listing.crls.emplace_back(std::string(20, static_cast<char>(i)), meta);
  }
  return cache;
}

TEST(StatusGaugesTest, CrlGaugesAreBoundedKeepingThoseThatRunOutFirst) {
  const int64_t now = 1800000000;
  std::string page;
  GaugeLimits limits;
  limits.crls = 3;
  AppendRevocationGauges(&page, {SampleCache(now, 5)}, now, limits);
  EXPECT_EQ(Count(page, "\ncertgate_crl_number{"), 3u) << page;
  EXPECT_NE(page.find("certgate_revocation_series_omitted{kind=\"crl\"} 2\n"), std::string::npos);
  // The two that run out last are left off: CRLs 0 and 1.
  EXPECT_EQ(page.find("source=\"http://pki.example/0.crl\""), std::string::npos);
  EXPECT_EQ(page.find("source=\"http://pki.example/1.crl\""), std::string::npos);
  EXPECT_NE(page.find("issuer=\"CN=CA \\\"4\\\",O=Example\""), std::string::npos) << page;
  EXPECT_NE(page.find("source=\"http://pki.example/4.crl\",source_kind=\"url\"} 104\n"),
            std::string::npos)
      << page;
  // One HELP and TYPE per family.
  EXPECT_EQ(Count(page, "# TYPE certgate_crl_number gauge\n"), 1u);
}

TEST(StatusGaugesTest, StaleServingWhilePastNextUpdateWithinMaxStale) {
  const int64_t now = 1800000000;
  CacheGauges cache = SampleCache(now, 1);
  auto &meta = cache.listing.crls[0].second;
  auto stale_line = [&](int64_t next_update) {
    meta.next_update = next_update;
    std::string page;
    AppendRevocationGauges(&page, {cache}, now);
    const size_t at = page.find("\ncertgate_stale_serving{");
    return page.substr(page.find("} ", at) + 2, 1);
  };
  EXPECT_EQ(stale_line(now + 10), "0");
  EXPECT_EQ(stale_line(now - 10), "1");
  EXPECT_EQ(stale_line(now - 3600), "1");
  EXPECT_EQ(stale_line(now - 3601), "0") << "max_stale ran out: no answers from it any more";
  std::string page;
  AppendRevocationGauges(&page, {cache}, now);
  EXPECT_NE(page.find("certgate_crl_stale_until_seconds{"), std::string::npos);
  EXPECT_NE(page.find("} " + std::to_string(now - 3601 + 3600) + "\n"), std::string::npos);
}

TEST(StatusGaugesTest, NoCachesNoGauges) {
  std::string page;
  AppendRevocationGauges(&page, {}, 1800000000);
  EXPECT_EQ(page, "");
}

class FetchStatsStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/certgate-gauges-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(FetchStatsStoreTest, KeptBesideTheUrlsListedAndPurged) {
  auto store = RevocationStore::Open(dir_ + "/cache", size_t{16} << 20);
  ASSERT_TRUE(store.ok()) << store.status().message();
  {
    auto txn = store.value()->Write();
    ASSERT_TRUE(txn.ok());
    FetchStats stats;
    stats.last_error = 1800000000;
    stats.failing_since = 1799990000;
    stats.errors = {{"connection", 3}, {"http_5xx", 1}};
    ASSERT_TRUE(txn->PutFetchStats("http://pki.example/ca.crl", stats).ok());
    ASSERT_TRUE(txn->PutUrl("http://pki.example/ca.crl", UrlState{}).ok());
    ASSERT_TRUE(txn->Commit().ok());
  }
  auto listing = store.value()->List();
  ASSERT_TRUE(listing.ok());
  ASSERT_EQ(listing->fetch_stats.size(), 1u);
  EXPECT_EQ(listing->fetch_stats[0].first, "http://pki.example/ca.crl");
  EXPECT_EQ(listing->fetch_stats[0].second.failing_since, 1799990000);
  ASSERT_EQ(listing->fetch_stats[0].second.errors.size(), 2u);
  EXPECT_EQ(listing->fetch_stats[0].second.errors[0].second, 3);
  EXPECT_EQ(listing->urls.size(), 1u) << "the URL records are not mixed with them";
  EXPECT_TRUE(store.value()->damage().empty());

  std::string page;
  CacheGauges cache;
  cache.dir = dir_;
  cache.readable = true;
  cache.listing = listing.value();
  AppendRevocationGauges(&page, {cache}, 1800000100);
  EXPECT_NE(page.find("certgate_fetch_errors_total{cache=\"" + dir_ +
                      "\",url=\"http://pki.example/ca.crl\",error=\"connection\"} 3\n"),
            std::string::npos)
      << page;

  ASSERT_TRUE(store.value()->Purge().ok());
  auto purged = store.value()->List();
  ASSERT_TRUE(purged.ok());
  EXPECT_TRUE(purged->fetch_stats.empty());
}

// The earliest-expiring accepted certificates: at most CG_EXPIRING_CERTS, the
// earliest kept, one slot per certificate, refusals never listed.
TEST(ExpiringCertsTest, KeepsTheEarliestOncePerCertificate) {
  const int64_t now = static_cast<int64_t>(std::time(nullptr));
  pki::PkiBuilder builder(now);
  pki::CertSpec ca_spec;
  ca_spec.subject = "CN=Gauge CA";
  ca_spec.is_ca = true;
  const pki::Issued ca = builder.SelfSigned(ca_spec);
  cg_counters shared{};
  std::vector<pki::Issued> leaves;
  for (int i = 0; i < CG_EXPIRING_CERTS + 5; ++i) {
    pki::CertSpec spec;
    spec.subject = "CN=user" + std::to_string(i);
    spec.not_after = now + 86400 * (30 + i);
    leaves.push_back(builder.Issue(ca, spec));
  }
  // Latest first, so each earlier one must displace one; twice, to see no duplicates.
  for (int round = 0; round < 2; ++round) {
    for (int i = static_cast<int>(leaves.size()) - 1; i >= 0; --i) {
      cg_decision decision{Decision::Allow(leaves[static_cast<size_t>(i)].cert)};
      cg_outcome outcome{};
      outcome.counted = 1;
      outcome.verdict = CG_VERDICT_ALLOW;
      outcome.reason = CG_REASON_NONE;
      outcome.decision = &decision;
      cg_counters_add(&shared, &outcome);
    }
  }
  // A refused one expiring first is not listed.
  pki::CertSpec early;
  early.subject = "CN=refused";
  early.not_after = now + 86400;
  cg_decision refused{
      Decision::Deny({CG_REASON_ISSUER_NOT_ALLOWED, 0, "", ""}, builder.Issue(ca, early).cert)};
  cg_outcome deny{};
  deny.counted = 1;
  deny.verdict = CG_VERDICT_DENY;
  deny.reason = CG_REASON_ISSUER_NOT_ALLOWED;
  deny.decision = &refused;
  cg_counters_add(&shared, &deny);

  cg_counters snapshot;
  cg_counters_snapshot(&shared, &snapshot);
  const size_t len = cg_counters_format(&snapshot, nullptr, 0);
  std::string page(len, '\0');
  cg_counters_format(&snapshot, page.data(), len + 1);
  EXPECT_EQ(Count(page, "\ncertgate_client_cert_expiry_seconds{"),
            static_cast<size_t>(CG_EXPIRING_CERTS))
      << page;
  for (int i = 0; i < static_cast<int>(leaves.size()); ++i) {
    const std::string line = "{subject=\"user" + std::to_string(i) + "\",";
    EXPECT_EQ(Count(page, line), i < CG_EXPIRING_CERTS ? 1u : 0u) << line << page;
  }
  EXPECT_EQ(page.find("refused"), std::string::npos);
  EXPECT_NE(page.find("issuer=\"Gauge CA\"} " + std::to_string(now + 86400 * 30) + "\n"),
            std::string::npos)
      << page;
  // Full of earlier ones: a later certificate changes nothing.
  const int64_t admit_below = shared.expiring_admit_below;
  EXPECT_EQ(admit_below, now + 86400 * (30 + CG_EXPIRING_CERTS - 1));
}

}  // namespace
}  // namespace certgate
