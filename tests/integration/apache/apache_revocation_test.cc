// mod_certgate in apache2 (see apache_test_fixture.h). ApacheRevocation: CRLs, OCSP, the shared
// cache, the CDP fault drill.
#include <gtest/gtest.h>
#include <harness.h>
#include <openssl/x509.h>
#include <pki_builder.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <ctime>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "apache_test_fixture.h"

namespace certgate_apache_test {
namespace {

// ---- ApacheRevocation: CRLs, OCSP, the shared cache ----
//
// One mpm_event apache2 with a virtual host per scenario, each with its own
// CertGateCache (created by mod_certgate in the parent and given to the child
// user), so one scenario's cached data never answers another's. The CDP is a
// real HTTP server (Debian's nginx via h::CrlServer) serving a copy of the demo
// PKI's www/; the OCSP responder is `openssl ocsp` (h::OcspResponder). Tests
// run in definition order; the CRL refresh test comes last because it publishes
// a CRL that revokes `good`.

enum : int {
  kRevCrl = 0,       // hard_fail, CRLs, scope chain; /norev without revocation
  kRevDown,          // hard_fail (wait 1500ms), CRLs; /soft soft_fail
  kRevHang,          // no revocation at /, hard_fail (wait 2s) at /slow
  kRevCacheOnly,     // cache_only with CertGateCrl crl/intermediate.crl
  kRevOcsp,          // hard_fail, OCSP only
  kRevUpdate,        // hard_fail, CRLs: refresh and resumption
  kRevAdcs,          // hard_fail, CRLs, trusting the AD CS-shaped PKI (pki/adcs/): deltas
  kRevAia,           // CertGateFetchIssuers on (issue 11 §3), no revocation
  kRevAiaDead,       // the same, its own cache: the AIA URL answers 404
  kRevAiaNonCa,      // the same, its own cache: the AIA URL serves a leaf
  kRevDeep,          // hard_fail, CRLs, scope chain, trusting the 4-level PKI (pki/deep/)
  kRevPrefork = 11,  // 18541, past the event server's virtual hosts
};
constexpr int kRevBase = 18530;
// EveryCdpFaultKeepsTheCachedCrl: one virtual host per place of the drill, in
// the order of h::CdpFaultPlaces().
constexpr int kRevFaultBase = 18570;
constexpr int kCdpPort = 18080;
constexpr int kOcspPort = 18081;

// The Example Issuing CA of the demo PKI, to sign newer CRLs.
// A DER CRL of the Example Issuing CA revoking the named demo clients
// (keyCompromise, an hour ago). "" on failure.
std::string IntermediateCrl(const std::string &pki, const std::vector<std::string> &names,
                            int64_t number, int64_t this_update, int64_t next_update) {
  const int64_t now = time(nullptr);
  certgate::pki::Issued ca = h::LoadDemoIssuingCa(pki);
  if (!ca) return "";
  std::vector<certgate::pki::PkiBuilder::Revoked> revoked;
  for (const std::string &name : names) {
    const std::string serial = h::DemoSerial(pki, name);
    if (serial.empty()) return "";
    revoked.push_back({std::stoull(serial, nullptr, 16), now - 3600, CRL_REASON_KEY_COMPROMISE});
  }
  certgate::pki::PkiBuilder builder(now);
  std::shared_ptr<X509_CRL> crl = builder.Crl(ca, revoked, number, this_update, next_update);
  if (!crl) return "";
  unsigned char *der = nullptr;
  const int len = i2d_X509_CRL(crl.get(), &der);
  if (len <= 0) return "";
  std::string out(reinterpret_cast<char *>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

int64_t MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

class ApacheRevocation : public ::testing::Test {
 protected:
  struct Shared {
    std::unique_ptr<h::TempDir> dir;  // CDP workdir, its docroot, the OCSP log
    std::unique_ptr<h::CrlServer> cdp;
    std::unique_ptr<Apache> server;
    std::string error;
  };
  static Shared &S() {
    static Shared shared;
    return shared;
  }

  static std::string Vhosts(const std::string &root) {
    const std::string pki = SharedPki().path;
    auto cache = [&root](const char *name) {
      return "  CertGateCache " + root + "/cache-" + name + "\n";
    };
    const std::string crl =
        "  CertGate require\n  CertGateRevocation hard_fail\n"
        "  CertGateRevocationSources crl\n";
    const std::string aia =
        "  CertGate require\n  CertGateFetchIssuers on\n  CertGateFetchAllow 127.0.0.1\n"
        "  CertGateRevocationWait 1s\n";
    return VirtualHost(kRevBase + kRevCrl, "optional_no_ca",
                       crl + cache("crl") +
                           "  <Location /norev>\n    CertGateRevocation off\n  </Location>\n"
                           "  <Location /certgate-status>\n    CertGate off\n"
                           "    CertGateStatus on\n  </Location>\n") +
           VirtualHost(
               kRevBase + kRevDown, "optional_no_ca",
               crl + cache("down") +
                   "  CertGateRevocationScope leaf\n  CertGateRevocationWait 1500ms\n"
                   "  CertGateFetchTimeout 1s\n"
                   "  <Location /soft>\n    CertGateRevocation soft_fail\n  </Location>\n") +
           VirtualHost(kRevBase + kRevHang, "optional_no_ca",
                       "  CertGate require\n" + cache("hang") +
                           "  <Location /slow>\n    CertGateRevocation hard_fail\n"
                           "    CertGateRevocationSources crl\n    CertGateRevocationScope leaf\n"
                           "    CertGateRevocationWait 2s\n    CertGateFetchTimeout 8s\n"
                           "  </Location>\n") +
           VirtualHost(kRevBase + kRevCacheOnly, "optional_no_ca",
                       "  CertGate require\n  CertGateRevocation cache_only\n"
                       "  CertGateRevocationScope leaf\n  CertGateCrl " +
                           pki + "/crl/intermediate.crl\n" + cache("cacheonly")) +
           VirtualHost(kRevBase + kRevOcsp, "optional_no_ca",
                       "  CertGate require\n  CertGateRevocation hard_fail\n"
                       "  CertGateRevocationSources ocsp\n  CertGateRevocationScope leaf\n"
                       "  CertGateRevocationWait 3s\n" +
                           cache("ocsp")) +
           VirtualHost(kRevBase + kRevUpdate, "optional_no_ca",
                       crl + "  CertGateRevocationScope leaf\n" + cache("update")) +
           AdcsVhost(VirtualHost(kRevBase + kRevAdcs, "optional_no_ca", crl + cache("adcs"))) +
           VirtualHost(kRevBase + kRevAia, "optional_no_ca", aia + cache("aia")) +
           VirtualHost(kRevBase + kRevAiaDead, "optional_no_ca", aia + cache("aia-dead")) +
           VirtualHost(kRevBase + kRevAiaNonCa, "optional_no_ca", aia + cache("aia-nonca")) +
           AdcsVhost(VirtualHost(kRevBase + kRevDeep, "optional_no_ca",
                                 crl + cache("deep") +
                                     "  CertGateRevocationScope chain\n"
                                     "  CertGateRevocationWait 3s\n  CertGateFetchTimeout 2s\n"),
                     "/deep/root.pem") +
           FaultVhosts(root);
  }
  // The virtual host trusting another root (the AD CS-shaped one by default)
  // instead of the demo's.
  static std::string AdcsVhost(std::string vhost, const std::string &root = "/adcs/root.pem") {
    const std::string trust = "/ca/trust.pem";
    vhost.replace(vhost.find(trust), trust.size(), root);
    return vhost;
  }

  // A virtual host per place of the CDP fault drill, each with its own cache
  // (a URL's backoff lives in the cache): hard_fail, CRLs only, leaf only.
  static std::string FaultVhosts(const std::string &root) {
    std::string out;
    for (const h::CdpFaultPlace &place : h::CdpFaultPlaces()) {
      const std::string extra =
          place.key.empty() ? "" : "  " + ApacheDirective(place.key) + " " + place.value + "\n";
      out += VirtualHost(FaultPort(place.name), "optional_no_ca",
                         "  CertGate require\n  CertGateRevocation hard_fail\n"
                         "  CertGateRevocationSources crl\n  CertGateRevocationScope leaf\n" +
                             extra + "  CertGateCache " + FaultCache(root, place.name) + "\n");
    }
    return out;
  }
  static int FaultPort(const std::string &place) {
    const std::vector<h::CdpFaultPlace> &places = h::CdpFaultPlaces();
    for (size_t i = 0; i < places.size(); ++i) {
      if (places[i].name == place) return kRevFaultBase + static_cast<int>(i);
    }
    return 0;
  }
  static std::string FaultCache(const std::string &root, const std::string &place) {
    return root + "/cache-fault-" + place;
  }
  // "fetch_max_size" -> "CertGateFetchMaxSize".
  static std::string ApacheDirective(const std::string &key) {
    std::string out = "CertGate";
    bool word_start = true;
    for (char c : key) {
      if (c == '_') {
        word_start = true;
        continue;
      }
      out += word_start ? static_cast<char>(toupper(static_cast<unsigned char>(c))) : c;
      word_start = false;
    }
    return out;
  }

  static void SetUpTestSuite() {
    Shared &s = S();
    if (!SharedPki().error.empty()) {
      s.error = "PKI generation failed: " + SharedPki().error;
      return;
    }
    // The CDP and OCSP ports are fixed by the certificates: another suite (the
    // nginx revocation tests) must not be using them.
    if (h::PortOpen(kCdpPort) || h::PortOpen(kOcspPort)) {
      s.error = "ports 18080/18081 are in use (another revocation suite running?)";
      return;
    }
    s.dir = std::make_unique<h::TempDir>("certgate-apache-rev");
    const std::string www = s.dir->path() + "/www";
    h::MakeDirs(www);
    for (const char *file :
         {"intermediate.crl", "root.crl", "intermediate.crt", "root.crt", "hidden.crt"}) {
      h::WriteFile(www + "/" + file, h::ReadFile(SharedPki().path + "/www/" + file));
    }
    h::MakeDirs(www + "/adcs");
    for (const char *file : {"adcs/Corp Enterprise CA 2(4).crl",
                             "adcs/Corp Enterprise CA 2(4)+.crl", "adcs/root.crl"}) {
      h::WriteFile(www + "/" + file, h::ReadFile(SharedPki().path + "/www/" + file));
    }
    h::MakeDirs(www + "/deep");
    for (const char *file : {"root.crl", "subca1.crl", "subca2.crl", "subca3.crl",
                             "subca3-revoked.crl", "subca3-good.crl"}) {
      h::WriteFile(www + "/deep/" + file,
                   h::ReadFile(SharedPki().path + "/www/deep/" + std::string(file)));
    }
    s.cdp = std::make_unique<h::CrlServer>();
    s.error = s.cdp->Start(s.dir->path() + "/cdp", www, kCdpPort);
    if (!s.error.empty()) return;
    s.server = std::make_unique<Apache>("event");
    s.error = s.server->Start(Vhosts(s.server->root()), kRevBase + kRevUpdate);
  }
  static void TearDownTestSuite() {
    S().server.reset();
    S().cdp.reset();
    S().dir.reset();
  }

  void SetUp() override {
    ASSERT_TRUE(S().error.empty()) << S().error;
    server_ = S().server.get();
    cdp_ = S().cdp.get();
  }

  static int Port(int which) { return kRevBase + which; }

  // The access-log line of the request tagged `tag` (as "?tag" in its path).
  static std::string AccessLine(h::LogTail &access, const std::string &tag) {
    const std::string needle = "?" + tag + " ";
    bool found = false;
    const std::string text = access.WaitFor(needle, 5000, &found);
    auto lines = h::GrepLines(text, {needle});
    return lines.empty() ? "(no line with " + needle + " in:\n" + text + ")" : lines.back();
  }
  // The certgate error-log line that contains every needle.
  static std::string ErrorLine(h::LogTail &errors, const std::vector<std::string> &needles) {
    bool found = false;
    const std::string text = errors.WaitFor(needles.front(), 5000, &found);
    auto lines = h::GrepLines(text, needles);
    return lines.empty() ? "" : lines.back();
  }

  Apache *server_ = nullptr;
  h::CrlServer *cdp_ = nullptr;
};

const char *const kCdpUrl = "http://127.0.0.1:18080/intermediate.crl";

TEST_F(ApacheRevocation, CacheDirectoryCreatedForTheChildUser) {
  // The first request of a virtual host opens its cache in the child.
  EXPECT_EQ(Get(Port(kRevCrl), "/norev/", "good").status, 200);
  for (const char *name : {"crl", "down", "hang", "cacheonly", "ocsp", "update"}) {
    SCOPED_TRACE(name);
    const std::string dir = server_->root() + "/cache-" + name;
    struct stat st {};
    ASSERT_EQ(stat(dir.c_str(), &st), 0) << dir;
    EXPECT_TRUE(S_ISDIR(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    if (geteuid() == 0) {
      EXPECT_NE(st.st_uid, 0u) << "the cache must belong to the child user (nobody)";
    }
  }
}

TEST_F(ApacheRevocation, RevokedByCdpCrlIsRefusedNamingTheCrl) {
  h::LogTail errors(server_->error_log());
  h::LogTail access(server_->access_log());
  const Reply reply = Get(Port(kRevCrl), "/?crl-revoked", "revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  const std::string line = ErrorLine(errors, {"reason=revoked"});
  EXPECT_NE(line.find("[certgate:error]"), std::string::npos) << line;
  EXPECT_NE(line.find(kCdpUrl), std::string::npos) << line;
  EXPECT_NE(line.find("crl_number=1"), std::string::npos) << line;
  EXPECT_NE(line.find("keyCompromise"), std::string::npos) << line;
  EXPECT_NE(line.find("revoked 20"), std::string::npos) << "revocation date: " << line;
  EXPECT_NE(AccessLine(access, "crl-revoked").find("403 reason=revoked substatus=403.13"),
            std::string::npos)
      << AccessLine(access, "crl-revoked");
}

// Issue 11 §1: a certificate revoked only in the delta CRL that the base CRL
// names in freshestCRL ("...(4)+.crl", AD CS style) is refused, naming the
// delta; the base's hold lifted by the delta (removeFromCRL) is allowed.
TEST_F(ApacheRevocation, DeltaOnlyRevocationIsRefusedNamingTheDelta) {
  h::LogTail errors(server_->error_log());
  const Reply reply = Get(Port(kRevAdcs), "/?adcs-delta-revoked", "../adcs/clients/delta-revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  const std::string line = ErrorLine(errors, {"reason=revoked", "adcs-delta-revoked"});
  EXPECT_NE(line.find("http://127.0.0.1:18080/adcs/Corp%20Enterprise%20CA%202(4)+.crl"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("crl_number=4096 delta=4097"), std::string::npos) << line;
  EXPECT_EQ(cdp_->Requests("/adcs/Corp%20Enterprise%20CA%202(4)+.crl").size(), 1u);
  EXPECT_EQ(Get(Port(kRevAdcs), "/?adcs-unheld", "../adcs/clients/unheld").status, 200);
  EXPECT_EQ(Get(Port(kRevAdcs), "/?adcs-held", "../adcs/clients/held").status, 403);
}

// Issue 11 §3: CertGateFetchIssuers on. The chain_incomplete client sends its
// leaf alone; its AIA caIssuers URL (http://127.0.0.1:18080/hidden.crt) serves
// the Example Hidden CA, issued by the root the server trusts.
TEST_F(ApacheRevocation, FetchIssuersCompletesALeafSentAlone) {
  const size_t before = cdp_->Requests("/hidden.crt").size();
  EXPECT_EQ(Get(Port(kRevAia), "/?aia-first", "chain_incomplete").status, 200);
  EXPECT_EQ(Get(Port(kRevAia), "/?aia-second", "chain_incomplete").status, 200);
  EXPECT_EQ(cdp_->Requests("/hidden.crt").size(), before + 1) << "fetched once, then cached";
  // Without the key, as before.
  h::LogTail errors(server_->error_log());
  const Reply reply = Get(Port(kRevCrl), "/norev?aia-off", "chain_incomplete");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("chain_incomplete", "403.16"));
  EXPECT_EQ(cdp_->Requests("/hidden.crt").size(), before + 1);
}

TEST_F(ApacheRevocation, FetchIssuersDeadUrlIsChainIncompleteNamingTheError) {
  cdp_->SetFault(h::CrlServer::Fault::k404, "/hidden.crt");
  h::LogTail errors(server_->error_log());
  const auto start = std::chrono::steady_clock::now();
  const Reply reply = Get(Port(kRevAiaDead), "/?aia-dead", "chain_incomplete");
  const int64_t elapsed = MillisSince(start);
  cdp_->SetFault(h::CrlServer::Fault::kNone);
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("chain_incomplete", "403.16"));
  EXPECT_LT(elapsed, 1000 + 1500) << "CertGateRevocationWait 1s + slack";
  const std::string line = ErrorLine(errors, {"reason=chain_incomplete", "failed: HTTP 404"});
  EXPECT_NE(line.find("fetching http://127.0.0.1:18080/hidden.crt failed: HTTP 404"),
            std::string::npos)
      << line;
}

TEST_F(ApacheRevocation, FetchIssuersRefusesANonCa) {
  ASSERT_TRUE(cdp_->PublishFile("hidden.crt", SharedPki().path + "/clients/good.crt"));
  h::LogTail errors(server_->error_log());
  const Reply reply = Get(Port(kRevAiaNonCa), "/?aia-nonca", "chain_incomplete");
  cdp_->PublishFile("hidden.crt", SharedPki().path + "/www/hidden.crt");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  const std::string line =
      ErrorLine(errors, {"reason=chain_incomplete", "is not a CA certificate"});
  EXPECT_NE(line.find("fetching http://127.0.0.1:18080/hidden.crt failed: the certificate "
                      "'CN=alice,OU=People,O=Example' it serves is not a CA certificate"),
            std::string::npos)
      << line;
}

// Issue 11 §4: in a 4-level chain, the CA whose status is unknown (the CRL
// covering Sub CA3, issued by Sub CA2, is unreachable) or revoked is named
// (ca_subject, and in the detail) with the URL, not only its depth.
TEST_F(ApacheRevocation, DeepChainNamesSubCa3WhenItsCrlIsUnreachableOrItIsRevoked) {
  h::LogTail errors(server_->error_log());
  Reply reply =
      Get(Port(kRevDeep), "/?deep-ca-crl-unreachable", "../deep/clients/ca-crl-unreachable");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revocation_unavailable", "403.13"));
  std::string line =
      ErrorLine(errors, {"reason=revocation_unavailable", "deep-ca-crl-unreachable"});
  EXPECT_NE(line.find(" depth=1 ca_subject=\"CN=Sub CA3,O=Example\""), std::string::npos) << line;
  const size_t detail = line.find(" detail=\"");
  ASSERT_NE(detail, std::string::npos) << line;
  EXPECT_NE(line.find("CN=Sub CA3,O=Example", detail), std::string::npos) << line;
  EXPECT_NE(line.find("http://127.0.0.1:18089/deep/subca2.crl", detail), std::string::npos) << line;

  reply = Get(Port(kRevDeep), "/?deep-ca-revoked", "../deep/clients/ca-revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  line = ErrorLine(errors, {"reason=revoked", "deep-ca-revoked"});
  EXPECT_NE(line.find(" depth=1 ca_subject=\"CN=Sub CA3,OU=Revoked,O=Example\""), std::string::npos)
      << line;
  EXPECT_NE(line.find("CN=Sub CA3,OU=Revoked,O=Example", line.find(" detail=\"")),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("http://127.0.0.1:18080/deep/subca2.crl"), std::string::npos) << line;
  EXPECT_NE(line.find("cACompromise"), std::string::npos) << line;

  EXPECT_EQ(Get(Port(kRevDeep), "/?deep-good", "../deep/clients/good").status, 200);
}

TEST_F(ApacheRevocation, GoodByCdpCrlIsAllowedWithRevocationVariable) {
  h::LogTail access(server_->access_log());
  const Reply reply = Get(Port(kRevCrl), "/?crl-good", "good");
  EXPECT_EQ(reply.status, 200) << reply.raw;
  const std::string line = AccessLine(access, "crl-good");
  EXPECT_NE(
      line.find("verdict=allow revocation=\"good crl " + std::string(kCdpUrl) + " crl_number=1"),
      std::string::npos)
      << line;
  // Scope chain: the intermediate was checked against root.crl as well.
  EXPECT_FALSE(cdp_->Requests("/root.crl").empty());
}

TEST_F(ApacheRevocation, CdpDownHardFailIsUnavailableWithinTheWait) {
  cdp_->Stop();  // connection refused
  h::LogTail errors(server_->error_log());
  const auto start = std::chrono::steady_clock::now();
  const Reply reply = Get(Port(kRevDown), "/?down-hard", "good");
  const int64_t elapsed = MillisSince(start);
  const std::string restart = cdp_->Start(S().dir->path() + "/cdp", cdp_->docroot(), kCdpPort);
  EXPECT_EQ(restart, "");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revocation_unavailable", "403.13"));
  EXPECT_LT(elapsed, 1500 + 1500) << "CertGateRevocationWait 1500ms + slack";
  const std::string line = ErrorLine(errors, {"reason=revocation_unavailable"});
  EXPECT_NE(line.find("[certgate:error]"), std::string::npos) << line;
  EXPECT_NE(line.find(kCdpUrl), std::string::npos) << line;
  EXPECT_NE(line.find("hard_fail"), std::string::npos) << line;
  EXPECT_TRUE(line.find("refused") != std::string::npos ||
              line.find("connect") != std::string::npos)
      << "the error of the URL: " << line;
  std::cerr << "[ info ] hard_fail with the CDP down answered in " << elapsed << " ms\n";
}

TEST_F(ApacheRevocation, CdpDownSoftFailIsAllowedWithWarning) {
  cdp_->SetFault(h::CrlServer::Fault::k500, "/intermediate.crl");
  h::LogTail errors(server_->error_log());
  h::LogTail access(server_->access_log());
  const Reply reply = Get(Port(kRevDown), "/soft/?down-soft", "good");
  cdp_->SetFault(h::CrlServer::Fault::kNone);
  EXPECT_EQ(reply.status, 200) << reply.raw;
  const std::string line = ErrorLine(errors, {"[certgate:warn]", "verdict=allow"});
  EXPECT_NE(line.find("soft_fail"), std::string::npos) << line;
  EXPECT_NE(AccessLine(access, "down-soft").find("verdict=allow revocation=\"unknown"),
            std::string::npos)
      << AccessLine(access, "down-soft");
}

TEST_F(ApacheRevocation, HangingCdpDelaysOnlyTheWaitingRequest) {
  cdp_->SetFault(h::CrlServer::Fault::kHang, "/intermediate.crl");
  h::LogTail errors(server_->error_log());
  const auto start = std::chrono::steady_clock::now();
  auto slow = std::async(std::launch::async, [] {
    const auto begin = std::chrono::steady_clock::now();
    Reply reply = Get(Port(kRevHang), "/slow/?hang-slow", "good");
    return std::make_pair(reply, MillisSince(begin));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  int64_t worst = 0;
  int answered = 0;
  while (MillisSince(start) < 1800) {
    const auto begin = std::chrono::steady_clock::now();
    if (Get(Port(kRevHang), "/?hang-fast", "good").status == 200) ++answered;
    worst = std::max(worst, MillisSince(begin));
  }
  const auto [reply, elapsed] = slow.get();
  cdp_->SetFault(h::CrlServer::Fault::kNone);
  EXPECT_GE(answered, 3);
  EXPECT_LT(worst, 500) << "a request without revocation waited for the hung CDP";
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revocation_unavailable", "403.13"));
  EXPECT_GE(elapsed, 1900);
  EXPECT_LT(elapsed, 2000 + 1500) << "CertGateRevocationWait 2s + slack";
  const std::string line = ErrorLine(errors, {"reason=revocation_unavailable"});
  EXPECT_NE(line.find(kCdpUrl), std::string::npos) << line;
  std::cerr << "[ info ] hung CDP: " << answered << " other requests, slowest " << worst
            << " ms; the waiting request answered in " << elapsed << " ms\n";
}

TEST_F(ApacheRevocation, CacheOnlyWithPreloadedCrlNeverFetches) {
  const size_t before = cdp_->Requests().size();
  h::LogTail errors(server_->error_log());
  h::LogTail access(server_->access_log());
  Reply reply = Get(Port(kRevCacheOnly), "/?cacheonly-revoked", "revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  const std::string line = ErrorLine(errors, {"reason=revoked"});
  EXPECT_NE(line.find("crl/intermediate.crl"), std::string::npos) << line;
  reply = Get(Port(kRevCacheOnly), "/?cacheonly-good", "good");
  EXPECT_EQ(reply.status, 200) << reply.raw;
  EXPECT_NE(AccessLine(access, "cacheonly-good").find("revocation=\"good crl "), std::string::npos)
      << AccessLine(access, "cacheonly-good");
  EXPECT_EQ(cdp_->Requests().size(), before) << "cache_only must not fetch";
}

TEST_F(ApacheRevocation, OcspResponderRevokedAndGood) {
  h::OcspResponder ocsp;
  ASSERT_EQ(ocsp.Start(SharedPki().path, kOcspPort, S().dir->path() + "/ocsp.log"), "");
  // (No WaitForPort: a connection without a request stalls openssl ocsp.)
  h::LogTail errors(server_->error_log());
  h::LogTail access(server_->access_log());
  Reply reply = Get(Port(kRevOcsp), "/?ocsp-revoked", "revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw << h::ReadFile(S().dir->path() + "/ocsp.log");
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  const std::string line = ErrorLine(errors, {"reason=revoked"});
  EXPECT_NE(line.find("ocsp http://127.0.0.1:18081"), std::string::npos) << line;
  reply = Get(Port(kRevOcsp), "/?ocsp-good", "good");
  EXPECT_EQ(reply.status, 200) << reply.raw;
  EXPECT_NE(AccessLine(access, "ocsp-good").find("revocation=\"good ocsp http://127.0.0.1:18081"),
            std::string::npos)
      << AccessLine(access, "ocsp-good");
}

TEST_F(ApacheRevocation, PreforkRevokedByCdpCrl) {
  Apache prefork("prefork");
  const int port = kRevBase + kRevPrefork;
  ASSERT_EQ(prefork.Start(VirtualHost(port, "optional_no_ca",
                                      "  CertGate require\n  CertGateRevocation hard_fail\n"
                                      "  CertGateRevocationSources crl\n  CertGateCache " +
                                          prefork.root() + "/cache\n"),
                          port),
            "");
  h::LogTail errors(prefork.error_log());
  const Reply reply = Get(port, "/", "revoked");
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  EXPECT_NE(ErrorLine(errors, {"reason=revoked"}).find(kCdpUrl), std::string::npos);
  EXPECT_EQ(Get(port, "/", "good").status, 200);
}

TEST_F(ApacheRevocation, UnusableCacheDirectoryFailsConfigTest) {
  Apache apache("event");
  ASSERT_EQ(apache.Write(VirtualHost(18549, "optional_no_ca",
                                     "  CertGate require\n  CertGateCache /proc/certgate-cache\n"
                                     "  <Location /x>\n    CertGateRevocation hard_fail\n"
                                     "  </Location>\n")),
            "");
  h::RunResult r = h::Run(
      {"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/bin", kApache, "-t", "-f", apache.conf()});
  EXPECT_NE(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("/proc/certgate-cache"), std::string::npos) << r.err;
  // Without revocation the directory is not needed, so not checked.
  ASSERT_EQ(apache.Write(VirtualHost(18549, "optional_no_ca",
                                     "  CertGate require\n  CertGateCache /proc/certgate-cache\n")),
            "");
  r = h::Run(
      {"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/bin", kApache, "-t", "-f", apache.conf()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

// h::RunCdpFaultDrill at the virtual hosts 18570..: every fault of the CDP
// (HTTP 500, HTML, truncated, oversized, forged, rolled back, timeout,
// connection refused) leaves the cached CRL in force, and past nextUpdate +
// CertGateMaxStale it is revocation_stale. mpm_event with up to two children:
// the fetch state the drill polls is in each virtual host's shared store.
TEST_F(ApacheRevocation, EveryCdpFaultKeepsTheCachedCrl) {
  const std::string root = server_->root();
  h::LogTail access(server_->access_log());
  // httpd's error-log lines do not name the request: a refusal's (or a
  // warning's) line is the first certgate decision logged after its request
  // began (they run one at a time, and the line is written before the answer).
  std::map<std::string, h::LogTail> errors_since;
  h::CdpFaultServer drill;
  drill.get = [&](const std::string &place, const std::string &client, const std::string &tag) {
    errors_since.emplace(tag, h::LogTail(server_->error_log()));
    const Reply reply = Get(FaultPort(place), "/?" + tag, client);
    return h::CdpFaultServer::Answer{reply.status, reply.body};
  };
  drill.cache_dir = [&](const std::string &place) { return FaultCache(root, place); };
  drill.access_line = [&](const std::string &tag) { return AccessLine(access, tag); };
  drill.refusal_line = [&](const std::string &tag) -> std::string {
    auto it = errors_since.find(tag);
    if (it == errors_since.end()) return "";
    const std::vector<std::string> lines =
        h::GrepLines(it->second.WaitFor("verdict=", 3000), {"[certgate:", "verdict="});
    return lines.empty() ? "" : lines.front();
  };
  drill.max_stale_name = "CertGateMaxStale";
  drill.fail = [](const std::string &problem) { ADD_FAILURE() << problem; };
  h::RunCdpFaultDrill(*cdp_, SharedPki().path, S().dir->path() + "/faults", drill);

  // The drill leaves the CDP down with its own CRL: back to the demo CRL.
  cdp_->SetFault(h::CrlServer::Fault::kNone);
  if (!cdp_->Running()) {
    EXPECT_EQ(cdp_->Start(S().dir->path() + "/cdp", cdp_->docroot(), kCdpPort), "");
  }
  EXPECT_TRUE(cdp_->PublishFile("intermediate.crl", SharedPki().path + "/www/intermediate.crl"));
}

// Last: publishes CRLs revoking `good` at the CDP.
// Issue 13 §3: the status page's revocation gauges, read by prometheus_client's
// parser: a CRL fetched from the CDP, a preloaded one, an OCSP responder, a
// URL that fails, and the accepted client certificate's expiry. Whichever
// child serves the page reads every cache.
TEST_F(ApacheRevocation, StatusPageGaugesParseAndTellTheCachedFacts) {
  ASSERT_EQ(Get(Port(kRevCrl), "/?gauges-crl", "good").status, 200);
  ASSERT_EQ(Get(Port(kRevCacheOnly), "/?gauges-preloaded", "good").status, 200);
  {
    h::OcspResponder ocsp;
    ASSERT_EQ(ocsp.Start(SharedPki().path, kOcspPort, S().dir->path() + "/ocsp-gauges.log"), "");
    ASSERT_EQ(Get(Port(kRevOcsp), "/?gauges-ocsp", "good").status, 200);
  }
  cdp_->Stop();  // connection refused
  const Reply down = Get(Port(kRevDown), "/?gauges-down", "good");
  ASSERT_EQ(cdp_->Start(S().dir->path() + "/cdp", cdp_->docroot(), kCdpPort), "");
  EXPECT_EQ(down.status, 403) << down.raw;

  const std::string root = server_->root();
  for (int read = 0; read < 3; ++read) {
    SCOPED_TRACE(read);
    const Reply page = Get(Port(kRevCrl), "/certgate-status", "");
    ASSERT_EQ(page.status, 200) << page.raw;
    h::ExpectRevocationGauges(page.body, SharedPki().path,
                              {root + "/cache-crl", root + "/cache-cacheonly", root + "/cache-ocsp",
                               root + "/cache-down"},
                              3600);
  }
}

TEST_F(ApacheRevocation, ZZNewerCrlAtCdpRevokesWithoutRestartAlsoForResumedSessions) {
  const std::string pki = SharedPki().path;
  const int64_t now = time(nullptr);
  // crlNumber 2, nextUpdate in 5 minutes: inside the refresh-ahead window
  // (10% of the validity before nextUpdate), so every lookup schedules a
  // background conditional GET of the CDP.
  const std::string second = IntermediateCrl(pki, {"revoked"}, 2, now - 3600, now + 300);
  ASSERT_FALSE(second.empty());
  ASSERT_TRUE(cdp_->Publish("intermediate.crl", second));

  // Sessions of `good` made while it is still good.
  const std::string base = pki + "/clients/good";
  const std::string connect = "127.0.0.1:" + std::to_string(Port(kRevUpdate));
  const std::string request = "GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
  for (const char *version : {"-tls1_2", "-tls1_3"}) {
    SCOPED_TRACE(version);
    h::RunResult first =
        h::Run({"openssl", "s_client", version, "-connect", connect, "-servername", "localhost",
                "-cert", base + ".crt", "-cert_chain", base + ".chain.pem", "-key", base + ".key",
                "-sess_out", server_->root() + "/session" + version + ".pem", "-ign_eof"},
               {}, request, 20000);
    Reply reply;
    ParseHttp(first.out, &reply);
    EXPECT_EQ(reply.status, 200) << first.out << first.err;
  }
  h::LogTail access(server_->access_log());
  EXPECT_EQ(Get(Port(kRevUpdate), "/?update-before", "good").status, 200);
  EXPECT_NE(AccessLine(access, "update-before").find("crl_number=2"), std::string::npos)
      << AccessLine(access, "update-before");

  // crlNumber 3 revokes `good`; apache2 is not touched.
  const std::string third = IntermediateCrl(pki, {"revoked", "good"}, 3, now - 60, now + 7 * 86400);
  ASSERT_FALSE(third.empty());
  ASSERT_TRUE(cdp_->Publish("intermediate.crl", third));
  const auto start = std::chrono::steady_clock::now();
  Reply reply;
  int tries = 0;
  while (MillisSince(start) < 10000) {
    ++tries;
    reply = Get(Port(kRevUpdate), "/?update-after", "good");
    if (reply.status == 403) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody("revoked", "403.13"));
  std::cerr << "[ info ] the newer CRL revoked `good` after " << MillisSince(start) << " ms, "
            << tries << " requests\n";
  h::LogTail errors(server_->error_log());
  // A resumed session of `good` (handshake made before the revocation).
  for (const char *version : {"-tls1_2", "-tls1_3"}) {
    SCOPED_TRACE(version);
    h::RunResult second_run =
        h::Run({"openssl", "s_client", version, "-connect", connect, "-servername", "localhost",
                "-sess_in", server_->root() + "/session" + version + ".pem", "-ign_eof"},
               {}, request, 20000);
    EXPECT_NE(second_run.out.find("\nReused, "), std::string::npos)
        << second_run.out << second_run.err;
    Reply resumed;
    ParseHttp(second_run.out, &resumed);
    EXPECT_EQ(resumed.status, 403) << second_run.out;
    // s_client prints its session details after the body.
    EXPECT_EQ(resumed.body.rfind(TextBody("revoked", "403.13"), 0), 0u) << resumed.body;
  }
  const std::string line = ErrorLine(errors, {"reason=revoked", "CN=alice"});
  EXPECT_NE(line.find("crl_number=3"), std::string::npos) << line;
}

// Last (it restarts httpd). Issue 9 §4, h::RunDamagedCacheDrill at the
// cache_only virtual host: several children find the damaged store at once;
// one moves it aside, the others open the new one.
TEST_F(ApacheRevocation, ZZZDamagedCacheIsMovedAsideOnceAndTheRevokedStaysRefused) {
  h::DamagedCacheServer server;
  server.get = [&](const std::string &client, const std::string &tag) {
    Reply r = Get(Port(kRevCacheOnly), "/?" + tag, client);
    return h::DamagedCacheServer::Answer{r.status, r.body};
  };
  server.cache_dir = server_->root() + "/cache-cacheonly";
  server.stop = [&] { server_->Stop(); };
  server.start = [&] { return server_->Start(Vhosts(server_->root()), kRevBase + kRevUpdate); };
  server.logs = [&] {
    return h::ReadFile(server_->error_log()) + h::ReadFile(server_->root() + "/stderr.log");
  };
  server.fail = [](const std::string &problem) { ADD_FAILURE() << problem; };
  h::RunDamagedCacheDrill(server);
}

}  // namespace
}  // namespace certgate_apache_test
