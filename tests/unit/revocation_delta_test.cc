// Delta CRLs (RFC 5280 §5.2.4, §6.3.3; issue 11 §1): the lookup of a base
// with its delta (table-tested), every refusal of a delta at ingest, the
// store record format, and the fetch of a base and its delta from a real
// HTTP server, AD CS style ("...(4)+.crl").
#include <gmock/gmock.h>

#include <string>
#include <vector>

#include "revocation/lookup.h"
#include "revocation/store_format.h"
#include "revocation_test_pki.h"
#include "revocation_test_server.h"

namespace certgate {
namespace {

using ::testing::HasSubstr;
using testing::kRevDay;
using testing::kRevNow;
using testing::TestHttpServer;
using Kind = WantedWork::Kind;
using Revoked = pki::PkiBuilder::Revoked;

constexpr const char *kBaseUrl = "http://pki.corp.example/crl/Corp%20CA(4).crl";
constexpr const char *kDeltaUrl = "http://pki.corp.example/crl/Corp%20CA(4)+.crl";
constexpr int kKeyCompromise = 1, kHold = 6, kRemove = 8;

// What the base and the delta say of the leaf; -1: nothing. (Scope leaf,
// CRLs only, hard_fail, may fetch.)
struct DeltaVector {
  const char *name;
  int base_reason;           // the leaf's entry in the base
  bool base_names_delta;     // freshestCRL in the base
  bool cert_names_delta;     // freshestCRL in the leaf
  bool delta_cached;         // a delta 4097 for base 4096
  int delta_reason;          // the leaf's entry in the delta
  bool newer_base;           // then base 4097 (the delta no longer applies)
  int64_t now;               // lookup time
  RevocationStatus status;   // expected
  const char *reason;        // expected CRLReason name
  const char *source_has;    // in the answer's source
  const char *detail_has;    // in the detail
  std::vector<Kind> wanted;  // expected work
  bool wants_delta = false;  // one of it is the delta fetch
};

constexpr RevocationStatus kGood = RevocationStatus::kGood;
constexpr RevocationStatus kRevokedStatus = RevocationStatus::kRevoked;
constexpr RevocationStatus kUnknown = RevocationStatus::kUnknown;
constexpr RevocationStatus kStale = RevocationStatus::kStale;

const DeltaVector kDeltaVectors[] = {
    {"BaseAndDeltaGood",
     -1,
     true,
     false,
     true,
     -1,
     false,
     kRevNow,
     kGood,
     "",
     "crl_number=4096 delta=4097",
     "",
     {}},
    {"RevokedOnlyInDelta",
     -1,
     true,
     false,
     true,
     kKeyCompromise,
     false,
     kRevNow,
     kRevokedStatus,
     "keyCompromise",
     "(4)+.crl crl_number=4096 delta=4097",
     "",
     {}},
    {"HoldInBaseRemovedByDelta",
     kHold,
     true,
     false,
     true,
     kRemove,
     false,
     kRevNow,
     kGood,
     "",
     "delta=4097",
     "",
     {}},
    {"HoldInBaseStandsWithoutRemoval",
     kHold,
     true,
     false,
     true,
     -1,
     false,
     kRevNow,
     kRevokedStatus,
     "certificateHold",
     "crl_number=4096 delta=4097",
     "",
     {}},
    {"RemoveFromCrlLiftsOnlyHolds",
     kKeyCompromise,
     true,
     false,
     true,
     kRemove,
     false,
     kRevNow,
     kRevokedStatus,
     "keyCompromise",
     "crl_number=4096",
     "",
     {}},
    {"HoldMadeFinalInDelta",
     kHold,
     true,
     false,
     true,
     kKeyCompromise,
     false,
     kRevNow,
     kRevokedStatus,
     "keyCompromise",
     "(4)+.crl",
     "",
     {}},
    {"BaseNamesDeltaNoneCachedIsUnknown",
     -1,
     true,
     false,
     false,
     -1,
     false,
     kRevNow,
     kUnknown,
     "",
     "",
     "names a delta CRL, and no valid delta CRL is cached",
     {Kind::kIngestWaitingFile, Kind::kFetchCrl},
     true},
    {"CertNamesDeltaNoneCachedIsUnknown",
     -1,
     false,
     true,
     false,
     -1,
     false,
     kRevNow,
     kUnknown,
     "",
     "",
     "delta crl http://pki.corp.example/crl/Corp%20CA(4)+.crl",
     {Kind::kIngestWaitingFile, Kind::kFetchCrl},
     true},
    {"BaseRevocationStandsWithoutDelta",
     kKeyCompromise,
     true,
     false,
     false,
     -1,
     false,
     kRevNow,
     kRevokedStatus,
     "keyCompromise",
     "crl_number=4096",
     "",
     {Kind::kIngestWaitingFile, Kind::kFetchCrl},
     true},
    {"DeltaOfAnOlderBaseIsIgnored",
     -1,
     true,
     false,
     true,
     kKeyCompromise,
     true,
     kRevNow,
     kUnknown,
     "",
     "",
     "no valid delta CRL is cached",
     {Kind::kIngestWaitingFile, Kind::kFetchCrl},
     true},
    {"NoDeltaNamedNoneNeeded",
     -1,
     false,
     false,
     false,
     -1,
     false,
     kRevNow,
     kGood,
     "",
     "crl_number=4096",
     "",
     {}},
    // The delta's nextUpdate (a day) bounds the answer, not the base's week.
    {"ExpiredDeltaIsStale",
     -1,
     true,
     false,
     true,
     -1,
     false,
     kRevNow + 2 * kRevDay,
     kStale,
     "",
     "delta=4097",
     "",
     {Kind::kFetchCrl},
     true},
};

void PrintTo(const DeltaVector &v, std::ostream *os) { *os << v.name; }

class RevocationDeltaTest : public testing::RevocationFixture {
 protected:
  // A base (a week) or delta (a day) CRL of the issuing CA.
  std::shared_ptr<X509_CRL> BaseCrl(std::vector<Revoked> revoked, int64_t number,
                                    bool names_delta = true) {
    auto crl = pki_->Crl(issuing_, revoked, number, kRevNow - 3600, kRevNow + 7 * kRevDay);
    EXPECT_TRUE(crl) << pki_->last_error();
    if (names_delta) EXPECT_TRUE(pki_->AddDeltaExtensions(crl.get(), issuing_, -1, {kDeltaUrl}));
    return crl;
  }
  std::shared_ptr<X509_CRL> DeltaCrl(std::vector<Revoked> revoked, int64_t number, int64_t base,
                                     const pki::Issued *signer = nullptr) {
    const pki::Issued &by = signer != nullptr ? *signer : issuing_;
    auto crl = pki_->Crl(by, revoked, number, kRevNow - 600, kRevNow + kRevDay);
    EXPECT_TRUE(crl) << pki_->last_error();
    EXPECT_TRUE(pki_->AddDeltaExtensions(crl.get(), by, base, {})) << pki_->last_error();
    return crl;
  }
  pki::Issued DeltaLeaf(const std::string &cn, bool names_delta) {
    pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=" + cn + ",O=Example");
    spec.crl_urls = {kBaseUrl};
    if (names_delta)
      spec.extra_extensions.push_back({"freshestCRL", std::string("URI:") + kDeltaUrl});
    return pki_->Issue(issuing_, spec);
  }
  void ExpectIngested(X509_CRL *crl, const std::string &source) {
    Result<IngestResult> ingested = Ingest(crl, issuing_.cert.get(), source);
    ASSERT_TRUE(ingested.ok()) << ingested.status().message();
  }
  std::string Refusal(X509_CRL *crl) {
    Result<ParsedCrl> parsed = ParseCrl(pki::ToDer(crl));
    if (!parsed.ok()) return "parse: " + parsed.status().message();
    Result<IngestResult> ingested =
        IngestCrl(checker_->store(), parsed.value(), issuing_.cert.get(), kDeltaUrl, kRevNow);
    return ingested.ok() ? std::string("accepted") : ingested.status().message();
  }
  std::optional<CrlMeta> Stored(bool delta) {
    Result<RevocationStore::ReadTxn> txn = checker_->store().Read();
    EXPECT_TRUE(txn.ok());
    const std::string id = IssuerId(issuing_.cert.get());
    return txn.ok() ? txn->GetCrl(delta ? DeltaKey(id) : id) : std::nullopt;
  }
};

class RevocationDeltaLookupTest : public RevocationDeltaTest,
                                  public ::testing::WithParamInterface<DeltaVector> {};

TEST_P(RevocationDeltaLookupTest, AnswersAndAsks) {
  const DeltaVector &v = GetParam();
  const pki::Issued leaf = DeltaLeaf("delta-lookup", v.cert_names_delta);
  ASSERT_TRUE(leaf) << pki_->last_error();
  std::vector<Revoked> base_entries, delta_entries;
  if (v.base_reason >= 0)
    base_entries.push_back({Serial(leaf), kRevNow - 2 * kRevDay, v.base_reason});
  if (v.delta_reason >= 0) delta_entries.push_back({Serial(leaf), kRevNow - 3600, v.delta_reason});
  ExpectIngested(BaseCrl(base_entries, 4096, v.base_names_delta).get(), kBaseUrl);
  if (v.delta_cached) ExpectIngested(DeltaCrl(delta_entries, 4097, 4096).get(), kDeltaUrl);
  if (v.newer_base) ExpectIngested(BaseCrl(base_entries, 4097, v.base_names_delta).get(), kBaseUrl);

  RevocationSettings settings;
  settings.mode = RevocationMode::kHardFail;
  settings.chain_scope = false;
  settings.sources = {RevocationSource::kCrl};
  settings.max_stale = 3600;
  settings.refresh_interval = 1000000;  // not due by age
  Result<RevocationStore::ReadTxn> txn = checker_->store().Read();
  ASSERT_TRUE(txn.ok()) << txn.status().message();
  const std::vector<CertLookup> lookups = LookUpChain(txn, Evidence(leaf), settings, v.now);
  ASSERT_EQ(lookups.size(), 1u);
  const CertLookup &lookup = lookups[0];
  const RevocationAnswer &answer = lookup.answer;
  EXPECT_EQ(RevocationStatusName(answer.status), std::string(RevocationStatusName(v.status)))
      << answer.source << " / " << answer.detail;
  EXPECT_EQ(answer.reason, v.reason);
  EXPECT_THAT(answer.source, HasSubstr(v.source_has));
  EXPECT_THAT(answer.detail, HasSubstr(v.detail_has));
  std::vector<Kind> kinds;
  bool delta_wanted = false;
  for (const WantedWork &work : lookup.wanted) {
    kinds.push_back(work.kind);
    if (work.key == lookup.delta_key && !work.key.empty()) {
      delta_wanted = true;
      EXPECT_EQ(work.key.rfind("delta:", 0), 0u);
      // A preloaded delta waiting for its issuer, then the fetch.
      if (work.kind == Kind::kFetchCrl) EXPECT_EQ(work.urls, std::vector<std::string>{kDeltaUrl});
    }
  }
  EXPECT_EQ(kinds, v.wanted);
  EXPECT_EQ(delta_wanted, v.wants_delta);
}

INSTANTIATE_TEST_SUITE_P(Vectors, RevocationDeltaLookupTest, ::testing::ValuesIn(kDeltaVectors),
                         [](const ::testing::TestParamInfo<DeltaVector> &info) {
                           return std::string(info.param.name);
                         });

// ---- every refusal of a delta, each keeping what the store held ----

TEST_F(RevocationDeltaTest, DeltaWithoutBaseIsRefused) {
  EXPECT_THAT(Refusal(DeltaCrl({}, 4097, 4096).get()),
              HasSubstr("delta CRL crl_number=4097 (for base 4096) refused: no base CRL of"));
  EXPECT_FALSE(Stored(true));
}

TEST_F(RevocationDeltaTest, NonCriticalIndicatorIsRefusedAtParse) {
  auto crl = pki_->Crl(issuing_, {}, 4097, kRevNow - 600, kRevNow + kRevDay);
  ASSERT_TRUE(pki_->AddDeltaExtensions(crl.get(), issuing_, 4096, {}, /*critical=*/false));
  EXPECT_EQ(Refusal(crl.get()), "parse: a delta CRL whose deltaCRLIndicator is not critical");
}

TEST_F(RevocationDeltaTest, DeltaWithoutCrlNumberIsRefusedAtParse) {
  auto crl = pki_->Crl(issuing_, {}, 0, kRevNow - 600, kRevNow + kRevDay, "sha256", {},
                       pki::PkiBuilder::CrlNumberExtension::kOmitted);
  ASSERT_TRUE(pki_->AddDeltaExtensions(crl.get(), issuing_, 4096, {}));
  EXPECT_THAT(Refusal(crl.get()), HasSubstr("a delta CRL without a crlNumber"));
}

TEST_F(RevocationDeltaTest, DeltaForANewerBaseIsRefusedAndTheBaseMadeDue) {
  ExpectIngested(BaseCrl({}, 4096).get(), kBaseUrl);
  EXPECT_THAT(Refusal(DeltaCrl({}, 4098, 4097).get()),
              HasSubstr("the cached base CRL is number 4096; it waits for a newer base CRL"));
  std::optional<CrlMeta> base = Stored(false);
  ASSERT_TRUE(base);
  EXPECT_NE(base->flags & kCrlBaseRefreshWanted, 0u);
  EXPECT_FALSE(Stored(true));
  // The lookup asks for the base again, though it is fresh.
  const pki::Issued leaf = DeltaLeaf("due", false);
  RevocationSettings settings;
  settings.mode = RevocationMode::kHardFail;
  settings.chain_scope = false;
  settings.sources = {RevocationSource::kCrl};
  settings.refresh_interval = 1000000;
  Result<RevocationStore::ReadTxn> txn = checker_->store().Read();
  ASSERT_TRUE(txn.ok());
  CertLookup lookup = LookUpCert(txn.value(), leaf.cert.get(), issuing_.cert.get(), settings,
                                 /*may_fetch=*/true, kRevNow);
  bool base_wanted = false;
  for (const WantedWork &work : lookup.wanted) base_wanted |= work.key == lookup.crl_key;
  EXPECT_TRUE(base_wanted);
  // The next base clears it.
  ExpectIngested(BaseCrl({}, 4097).get(), kBaseUrl);
  EXPECT_EQ(Stored(false)->flags & kCrlBaseRefreshWanted, 0u);
  EXPECT_EQ(Refusal(DeltaCrl({}, 4098, 4097).get()), "accepted");
}

TEST_F(RevocationDeltaTest, DeltaNotNewerThanItsBaseIsRefused) {
  ExpectIngested(BaseCrl({}, 4096).get(), kBaseUrl);
  EXPECT_THAT(Refusal(DeltaCrl({}, 4096, 4095).get()),
              HasSubstr("its crlNumber is not greater than the cached base CRL's (4096)"));
}

TEST_F(RevocationDeltaTest, DeltaOfAnotherScopeIsRefused) {
  ExpectIngested(BaseCrl({}, 4096).get(), kBaseUrl);
  auto crl = pki_->Crl(issuing_, {}, 4097, kRevNow - 600, kRevNow + kRevDay, "sha256",
                       {"http://pki.corp.example/part2.crl"});
  ASSERT_TRUE(pki_->AddDeltaExtensions(crl.get(), issuing_, 4096, {}));
  // Partitions are kept apart (issue 11 §5): its base would be that
  // partition's CRL, and none is cached.
  EXPECT_THAT(Refusal(crl.get()),
              HasSubstr("no base CRL of CN=Rev Issuing CA,O=Example for the distribution point "
                        "http://pki.corp.example/part2.crl is cached"));
}

TEST_F(RevocationDeltaTest, DeltaSignedByAnotherKeyIsRefused) {
  ExpectIngested(BaseCrl({}, 4096).get(), kBaseUrl);
  // Same name, another key: not the base's issuer.
  pki::Issued impostor = pki_->Issue(root_, pki::PkiBuilder::CaSpec("CN=Rev Issuing CA,O=Example"));
  ASSERT_TRUE(impostor);
  EXPECT_THAT(Refusal(DeltaCrl({}, 4097, 4096, &impostor).get()),
              HasSubstr("signature does not verify"));
  EXPECT_FALSE(Stored(true));
}

TEST_F(RevocationDeltaTest, DeltaOfAnotherIssuerIsRefused) {
  ExpectIngested(BaseCrl({}, 4096).get(), kBaseUrl);
  EXPECT_THAT(Refusal(DeltaCrl({}, 4097, 4096, &root_).get()), HasSubstr("is issued by"));
}

TEST_F(RevocationDeltaTest, OlderDeltaIsRefusedAndTheNewerKept) {
  const pki::Issued leaf = DeltaLeaf("kept", false);
  ExpectIngested(BaseCrl({}, 4096).get(), kBaseUrl);
  ExpectIngested(DeltaCrl({{Serial(leaf), kRevNow - 60, kKeyCompromise}}, 4098, 4096).get(),
                 kDeltaUrl);
  EXPECT_THAT(Refusal(DeltaCrl({}, 4097, 4096).get()),
              HasSubstr("rolled back: crlNumber 4097 < cached 4098"));
  std::optional<CrlMeta> delta = Stored(true);
  ASSERT_TRUE(delta);
  EXPECT_EQ(delta->crl_number_dec, "4098");
  EXPECT_EQ(delta->delta_base_dec, "4096");
  EXPECT_EQ(CheckLeaf(leaf).status, RevocationStatus::kRevoked);
}

TEST_F(RevocationDeltaTest, BaseRecordsKeepTheOldFormatAndDeltaRecordsRoundTrip) {
  CrlMeta base;
  base.gen = 7;
  base.crl_number = "\x10";
  base.crl_number_dec = "16";
  base.source = kBaseUrl;
  // A record without delta fields is byte for byte what older versions
  // wrote (and read): the version byte is unchanged.
  const std::string old_format = store_detail::Encode(base);
  EXPECT_EQ(static_cast<uint8_t>(old_format[0]), store_detail::kRecordVersion);
  std::optional<CrlMeta> decoded = store_detail::DecodeCrl(old_format);
  ASSERT_TRUE(decoded);
  EXPECT_TRUE(decoded->delta_urls.empty());
  EXPECT_TRUE(decoded->delta_base_dec.empty());
  base.delta_urls = {kDeltaUrl, "http://b/x+.crl"};
  decoded = store_detail::DecodeCrl(store_detail::Encode(base));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->delta_urls, base.delta_urls);
  CrlMeta delta = base;
  delta.delta_urls.clear();
  delta.delta_base = "\x10";
  delta.delta_base_dec = "16";
  decoded = store_detail::DecodeCrl(store_detail::Encode(delta));
  ASSERT_TRUE(decoded);
  EXPECT_EQ(decoded->delta_base_dec, "16");
  EXPECT_EQ(decoded->delta_base, "\x10");
  // A damaged extension is damage, not a record.
  std::string bad = store_detail::Encode(delta);
  bad[bad.size() - 12] ^= 1;
  EXPECT_FALSE(store_detail::DecodeCrl(bad));
}

TEST_F(RevocationDeltaTest, PreloadedDirectoryWithBaseAndDelta) {
  const pki::Issued leaf = DeltaLeaf("preloaded", false);
  // AD CS names: "CA(4)+.crl" sorts before "CA(4).crl".
  WriteCrl("Corp CA(4).crl", BaseCrl({}, 4096).get());
  WriteCrl("Corp CA(4)+.crl",
           DeltaCrl({{Serial(leaf), kRevNow - 60, kKeyCompromise}}, 4097, 4096).get());
  Status preloaded = checker_->Preload({dir_ + "/crls"}, Trust(true).get());
  ASSERT_TRUE(preloaded.ok()) << preloaded.message();
  RevocationAnswer answer = CheckLeaf(leaf);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_THAT(answer.source, HasSubstr("Corp CA(4)+.crl crl_number=4096 delta=4097"));
  bool listed = false;
  for (const std::string &line : checker_->List())
    listed |= line.rfind("delta issuer=", 0) == 0 && line.find("base=4096") != std::string::npos;
  EXPECT_TRUE(listed);
}

// ---- the fetch path, against a real HTTP server ----

TEST_F(RevocationDeltaTest, BaseThenItsDeltaFetchedFromFreshestCrl) {
  TestHttpServer server;
  SetPolicy("revocation", {"hard_fail"});
  const std::string base_url = server.Url("/crl/Corp%20CA(4).crl");
  const std::string delta_url = server.Url("/crl/Corp%20CA(4)+.crl");
  pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=fetched,O=Example");
  spec.crl_urls = {base_url};
  const pki::Issued leaf = pki_->Issue(issuing_, spec);
  ASSERT_TRUE(leaf);
  auto base = pki_->Crl(issuing_, {}, 4096, kRevNow - 3600, kRevNow + 7 * kRevDay);
  ASSERT_TRUE(pki_->AddDeltaExtensions(base.get(), issuing_, -1, {delta_url}));
  server.Set("/crl/Corp%20CA(4).crl", TestHttpServer::Reply{200, pki::ToDer(base.get())});
  server.Set("/crl/Corp%20CA(4)+.crl", TestHttpServer::Reply{503, "down"});

  // The delta is down: the base names it, so the answer is unknown, naming it.
  EXPECT_EQ(CheckLeaf(leaf).status, RevocationStatus::kUnknown);
  ASSERT_TRUE(checker_->WaitForFetches(Evidence(leaf), std::chrono::seconds(10)));
  EXPECT_EQ(server.Hits("/crl/Corp%20CA(4)+.crl"), 1);  // '+' sent as it is
  RevocationAnswer answer = CheckLeaf(leaf);
  EXPECT_EQ(answer.status, RevocationStatus::kUnknown);
  EXPECT_THAT(answer.detail, HasSubstr("delta crl " + delta_url + ": failed: HTTP 503"));

  // Once published, the delta revokes.
  server.Set(
      "/crl/Corp%20CA(4)+.crl",
      TestHttpServer::Reply{
          200,
          pki::ToDer(DeltaCrl({{Serial(leaf), kRevNow - 60, kKeyCompromise}}, 4097, 4096).get())});
  clock_.Advance(3600);  // past the backoff
  EXPECT_EQ(CheckLeaf(leaf).status, RevocationStatus::kUnknown);
  ASSERT_TRUE(checker_->WaitForFetches(Evidence(leaf), std::chrono::seconds(10)));
  answer = CheckLeaf(leaf);
  EXPECT_EQ(answer.status, RevocationStatus::kRevoked);
  EXPECT_EQ(answer.source, "crl " + delta_url + " crl_number=4096 delta=4097");
  // FetchNow (certgate check --fetch) names the delta too.
  bool delta_line = false;
  for (const std::string &line : checker_->FetchNow(Evidence(leaf), policy_))
    delta_line |= line.find("freshestCRL " + delta_url + ": Verified") != std::string::npos;
  EXPECT_TRUE(delta_line);
}

}  // namespace
}  // namespace certgate
