// The pure revocation lookup (common/src/revocation/lookup.h), table-tested:
// each named vector puts data in a store, looks one leaf up at a given time
// with given settings, and says the answer and the work the lookup asks for.
#include <openssl/ocsp.h>

#include <string>
#include <vector>

#include "revocation/lookup.h"
#include "revocation/ocsp.h"
#include "revocation_test_pki.h"

namespace certgate {
namespace {

using testing::kRevDay;
using testing::kRevNow;
using Kind = WantedWork::Kind;
using CrlNumberExtension = pki::PkiBuilder::CrlNumberExtension;

constexpr const char *kCdp = "http://pki.example/ca.crl";
constexpr const char *kResponder = "http://ocsp.example/";
constexpr int64_t kNextUpdate = kRevNow + kRevDay;  // of every CRL and OCSP answer here

enum class CrlData {
  kNone,
  kGood,
  kRevokesLeaf,
  kOtherPartition,
  kCriticalNumber,
  kCriticalNumberRevokesLeaf
};
enum class OcspData { kNone, kGood, kRevoked, kUnknown };

struct LookupVector {
  const char *name;
  CrlData crl;
  OcspData ocsp;
  std::vector<RevocationSource> sources;
  RevocationMode mode;
  int64_t now;
  bool strict = false;
  bool leaf_names_urls = true;  // a CDP and an AIA OCSP responder
  // Expected.
  RevocationStatus status = RevocationStatus::kGood;
  std::vector<const char *> detail_has = {};  // substrings of the detail
  const char *source_has = "";
  const char *crl_defects = "";
  const char *reason = "";
  std::vector<Kind> wanted = {};
};

const std::vector<RevocationSource> kCrlOnly{RevocationSource::kCrl};
const std::vector<RevocationSource> kOcspOnly{RevocationSource::kOcsp};
const std::vector<RevocationSource> kBoth{RevocationSource::kCrl, RevocationSource::kOcsp};
constexpr RevocationMode kCacheOnly = RevocationMode::kCacheOnly;
constexpr RevocationMode kSoftFail = RevocationMode::kSoftFail;
constexpr RevocationStatus kGood = RevocationStatus::kGood;
constexpr RevocationStatus kRevoked = RevocationStatus::kRevoked;
constexpr RevocationStatus kUnknown = RevocationStatus::kUnknown;
constexpr RevocationStatus kStale = RevocationStatus::kStale;

const LookupVector kVectors[] = {
    {"CrlGood",
     CrlData::kGood,
     OcspData::kNone,
     kCrlOnly,
     kCacheOnly,
     kRevNow,
     false,
     true,
     kGood,
     {},
     "crl_number=5"},
    {"CrlRevoked",
     CrlData::kRevokesLeaf,
     OcspData::kNone,
     kCrlOnly,
     kCacheOnly,
     kRevNow,
     false,
     true,
     kRevoked,
     {},
     "crl_number=5",
     "",
     "keyCompromise"},
    {"CrlPastNextUpdateWithinMaxStaleIsGoodAndRefreshed",
     CrlData::kGood,
     OcspData::kNone,
     kCrlOnly,
     kSoftFail,
     kNextUpdate + 600,
     false,
     true,
     kGood,
     {"has passed; used within certgate_max_stale", "crl http://pki.example/ca.crl: not fetched"},
     "crl_number=5",
     "",
     "",
     {Kind::kFetchCrl}},
    {"CrlOverMaxStaleIsStale",
     CrlData::kGood,
     OcspData::kNone,
     kCrlOnly,
     kCacheOnly,
     kNextUpdate + 7200,
     false,
     true,
     kStale,
     {"expired: nextUpdate", "+ certgate_max_stale 3600 s < now", "cache_only: nothing is fetched"},
     "crl_number=5"},
    {"NoCrlCachedIsUnknown",
     CrlData::kNone,
     OcspData::kNone,
     kCrlOnly,
     kCacheOnly,
     kRevNow,
     false,
     true,
     kUnknown,
     {"mode=cache_only", "no CRL cached for this issuer"},
     "",
     "",
     "",
     {Kind::kIngestWaitingFile}},
    {"NothingCachedAsksForEveryFetch",
     CrlData::kNone,
     OcspData::kNone,
     kBoth,
     kSoftFail,
     kRevNow,
     false,
     true,
     kUnknown,
     {"mode=soft_fail", "crl http://pki.example/ca.crl: not fetched yet", "no OCSP answer cached",
      "ocsp http://ocsp.example/: not fetched yet"},
     "",
     "",
     "",
     {Kind::kIngestWaitingFile, Kind::kFetchCrl, Kind::kFetchOcsp}},
    {"NoUrlNothingToFetch",
     CrlData::kNone,
     OcspData::kNone,
     kBoth,
     kSoftFail,
     kRevNow,
     false,
     false,
     kUnknown,
     {"crl: the certificate names no URL", "ocsp: the certificate names no URL"},
     "",
     "",
     "",
     {Kind::kIngestWaitingFile}},
    {"PartitionedCrlNotCoveringTheLeaf",
     CrlData::kOtherPartition,
     OcspData::kNone,
     kCrlOnly,
     kCacheOnly,
     kRevNow,
     false,
     true,
     kUnknown,
     {"covers only the distribution point http://pki.example/part2.crl"},
     "",
     "",
     "",
     {Kind::kIngestWaitingFile}},  // as when no CRL is cached: a waiting file may cover it
    {"OcspGood",
     CrlData::kNone,
     OcspData::kGood,
     kOcspOnly,
     kCacheOnly,
     kRevNow,
     false,
     true,
     kGood,
     {},
     "ocsp http://ocsp.example/"},
    {"OcspRevoked",
     CrlData::kNone,
     OcspData::kRevoked,
     kOcspOnly,
     kCacheOnly,
     kRevNow,
     false,
     true,
     kRevoked,
     {},
     "ocsp http://ocsp.example/",
     "",
     "keyCompromise"},
    {"OcspUnknown",
     CrlData::kNone,
     OcspData::kUnknown,
     kOcspOnly,
     kCacheOnly,
     kRevNow,
     false,
     true,
     kUnknown,
     {"the OCSP responder http://ocsp.example/ does not know this certificate"}},
    {"CrlRevocationWinsOverOcspGood",
     CrlData::kRevokesLeaf,
     OcspData::kGood,
     kBoth,
     kSoftFail,
     kRevNow,
     false,
     true,
     kRevoked,
     {},
     "crl ",
     "",
     "keyCompromise"},
    {"OcspGoodAnswersForAMissingCrl",
     CrlData::kNone,
     OcspData::kGood,
     kBoth,
     kSoftFail,
     kRevNow,
     false,
     true,
     kGood,
     {},
     "ocsp http://ocsp.example/"},
    {"StrictOnDefectiveCrlProvesNoGood",
     CrlData::kCriticalNumber,
     OcspData::kNone,
     kCrlOnly,
     kCacheOnly,
     kRevNow,
     true,
     true,
     kUnknown,
     {"marks its crlNumber critical", "no proof of \"good\" under certgate_strict on"},
     "",
     "crl_number_critical"},
    {"StrictOffDefectiveCrlIsGoodWithItsDefects",
     CrlData::kCriticalNumber,
     OcspData::kNone,
     kCrlOnly,
     kCacheOnly,
     kRevNow,
     false,
     true,
     kGood,
     {},
     "crl_number=5",
     "crl_number_critical"},
    {"StrictOnRevocationInDefectiveCrlStands",
     CrlData::kCriticalNumberRevokesLeaf,
     OcspData::kNone,
     kCrlOnly,
     kCacheOnly,
     kRevNow,
     true,
     true,
     kRevoked,
     {},
     "crl_number=5",
     "",
     "keyCompromise"},
};

// Test names, not bytes, in failure messages.
void PrintTo(const LookupVector &v, std::ostream *os) { *os << v.name; }

std::string KindsText(const std::vector<Kind> &kinds) {
  std::string out;
  for (Kind kind : kinds) {
    out += kind == Kind::kIngestWaitingFile ? "ingest "
           : kind == Kind::kFetchCrl        ? "crl "
                                            : "ocsp ";
  }
  return out;
}

class RevocationLookupTest : public testing::RevocationFixture,
                             public ::testing::WithParamInterface<LookupVector> {
 protected:
  void Store(const LookupVector &v, const pki::Issued &leaf) {
    std::vector<pki::PkiBuilder::Revoked> revoked;
    if (v.crl == CrlData::kRevokesLeaf || v.crl == CrlData::kCriticalNumberRevokesLeaf) {
      revoked.push_back({Serial(leaf), kRevNow - 60, 1});
    }
    std::vector<std::string> scope;
    if (v.crl == CrlData::kOtherPartition) scope.push_back("http://pki.example/part2.crl");
    const bool critical =
        v.crl == CrlData::kCriticalNumber || v.crl == CrlData::kCriticalNumberRevokesLeaf;
    if (v.crl != CrlData::kNone) {
      auto crl =
          pki_->Crl(issuing_, revoked, 5, kRevNow - 3600, kNextUpdate, "sha256", scope,
                    critical ? CrlNumberExtension::kCritical : CrlNumberExtension::kNonCritical);
      ASSERT_TRUE(crl) << pki_->last_error();
      Result<IngestResult> ingested =
          Ingest(crl.get(), issuing_.cert.get(), "file:" + dir_ + "/ca.crl");
      ASSERT_TRUE(ingested.ok()) << ingested.status().message();
    }
    if (v.ocsp != OcspData::kNone) {
      OcspRecord record;
      record.status = v.ocsp == OcspData::kGood      ? V_OCSP_CERTSTATUS_GOOD
                      : v.ocsp == OcspData::kRevoked ? V_OCSP_CERTSTATUS_REVOKED
                                                     : V_OCSP_CERTSTATUS_UNKNOWN;
      record.this_update = kRevNow - 600;
      record.next_update = kNextUpdate;
      record.fetched_at = kRevNow;
      record.source = kResponder;
      if (v.ocsp == OcspData::kRevoked) {
        record.revoked_at = kRevNow - 60;
        record.reason = 1;
      }
      Status stored =
          StoreOcsp(checker_->store(), OcspCertIdKey(leaf.cert.get(), issuing_.cert.get()), record);
      ASSERT_TRUE(stored.ok()) << stored.message();
    }
  }
};

TEST_P(RevocationLookupTest, AnswersAndAsks) {
  const LookupVector &v = GetParam();
  const pki::Issued leaf =
      v.leaf_names_urls ? Leaf("lookup", {kCdp}, {kResponder}) : Leaf("lookup");
  ASSERT_NO_FATAL_FAILURE(Store(v, leaf));

  RevocationSettings settings;
  settings.mode = v.mode;
  settings.chain_scope = false;
  settings.sources = v.sources;
  settings.strict = v.strict;
  settings.max_stale = 3600;
  Result<RevocationStore::ReadTxn> txn = checker_->store().Read();
  ASSERT_TRUE(txn.ok()) << txn.status().message();
  const ChainEvidence evidence = Evidence(leaf);
  const std::vector<CertLookup> lookups = LookUpChain(txn, evidence, settings, v.now);

  ASSERT_EQ(lookups.size(), 1u);  // scope leaf
  const CertLookup &lookup = lookups[0];
  const RevocationAnswer &answer = lookup.answer;
  EXPECT_EQ(answer.depth, 0);
  EXPECT_EQ(lookup.cert, leaf.cert.get());
  EXPECT_EQ(RevocationStatusName(answer.status), std::string(RevocationStatusName(v.status)))
      << answer.detail;
  for (const char *words : v.detail_has) {
    EXPECT_NE(answer.detail.find(words), std::string::npos)
        << "detail: " << answer.detail << "\nlacks: " << words;
  }
  EXPECT_NE(answer.source.find(v.source_has), std::string::npos) << answer.source;
  EXPECT_EQ(answer.crl_defects, v.crl_defects);
  EXPECT_EQ(answer.reason, v.reason);
  EXPECT_FALSE(answer.fetch_pending);  // the scheduler's to say
  // Only unknown and stale answers list every source, and say whether a fetch flies.
  EXPECT_EQ(lookup.notes_in_flight, v.status == kUnknown || v.status == kStale);

  std::vector<Kind> kinds;
  for (const WantedWork &work : lookup.wanted) {
    kinds.push_back(work.kind);
    const bool fetch = work.kind != Kind::kIngestWaitingFile;
    EXPECT_EQ(work.urls.empty(), !fetch);
    EXPECT_EQ(work.key, work.kind == Kind::kFetchOcsp ? lookup.ocsp_key : lookup.crl_key);
    if (work.kind == Kind::kFetchCrl) EXPECT_EQ(work.urls, std::vector<std::string>{kCdp});
    if (work.kind == Kind::kFetchOcsp) {
      EXPECT_EQ(work.urls, std::vector<std::string>{kResponder});
      EXPECT_EQ(work.cert_id, OcspCertIdKey(leaf.cert.get(), issuing_.cert.get()));
    }
  }
  EXPECT_EQ(KindsText(kinds), KindsText(v.wanted));
}

INSTANTIATE_TEST_SUITE_P(Vectors, RevocationLookupTest, ::testing::ValuesIn(kVectors),
                         [](const ::testing::TestParamInfo<LookupVector> &info) {
                           return std::string(info.param.name);
                         });

class RevocationLookupEdgeTest : public testing::RevocationFixture {};

// The lookup is a function of the store and the time: the same question asked
// twice gets the same answer and asks for the same work, and asks nothing of
// a process (no fetch is pending afterwards).
TEST_F(RevocationLookupEdgeTest, LookupIsRepeatableAndSchedulesNothing) {
  const pki::Issued leaf = Leaf("twice", {kCdp}, {kResponder});
  RevocationSettings settings;
  settings.mode = kSoftFail;
  Result<RevocationStore::ReadTxn> txn = checker_->store().Read();
  ASSERT_TRUE(txn.ok());
  const ChainEvidence evidence = Evidence(leaf);
  const std::vector<CertLookup> first = LookUpChain(txn, evidence, settings, kRevNow);
  const std::vector<CertLookup> second = LookUpChain(txn, evidence, settings, kRevNow);
  ASSERT_EQ(first.size(), 2u);  // scope chain: the leaf and the issuing CA
  ASSERT_EQ(second.size(), 2u);
  for (size_t i = 0; i < first.size(); ++i) {
    EXPECT_EQ(first[i].answer.detail, second[i].answer.detail);
    EXPECT_EQ(first[i].wanted.size(), second[i].wanted.size());
  }
  EXPECT_FALSE(checker_->FetchPending(evidence));
}

// A store that cannot be read, and a chain whose issuer is missing, are
// unknown answers that say why; they ask for nothing.
TEST_F(RevocationLookupEdgeTest, LookupWithoutStoreOrIssuerSaysWhy) {
  const pki::Issued leaf = Leaf("alone", {kCdp});
  RevocationSettings settings;
  settings.mode = kSoftFail;
  const ChainEvidence evidence = Evidence(leaf);
  const std::vector<CertLookup> unreadable = LookUpChain(
      Result<RevocationStore::ReadTxn>(Status::Error("cannot read")), evidence, settings, kRevNow);
  ASSERT_EQ(unreadable.size(), 2u);
  EXPECT_EQ(unreadable[0].answer.status, kUnknown);
  EXPECT_EQ(unreadable[0].answer.detail, "mode=soft_fail; cannot read");
  EXPECT_TRUE(unreadable[0].wanted.empty());

  ossl::UniquePtr<X509_STORE> empty(X509_STORE_new());
  const ChainEvidence unanchored =
      BuildChainEvidence(leaf.cert.get(), nullptr, empty.get(), kRevNow);
  Result<RevocationStore::ReadTxn> txn = checker_->store().Read();
  ASSERT_TRUE(txn.ok());
  const std::vector<CertLookup> lone = LookUpChain(txn, unanchored, settings, kRevNow);
  ASSERT_EQ(lone.size(), 1u);
  EXPECT_EQ(lone[0].issuer, nullptr);
  EXPECT_NE(lone[0].answer.detail.find("is not in the chain"), std::string::npos)
      << lone[0].answer.detail;
  EXPECT_TRUE(lone[0].wanted.empty());
}

}  // namespace
}  // namespace certgate
