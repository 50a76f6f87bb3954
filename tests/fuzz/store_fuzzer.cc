// The revocation cache read back from a damaged store file.
//
// A small valid store is written once: a preloaded CRL of the fixed CA that
// revokes the fixed leaf (among other serials). Each input damages a copy of
// its data.mdb (byte 0 & 7 == 7: truncate to the next 4 bytes' offset; then up to
// 64 pairs of a 4-byte offset and a byte XORed in there), and a checker opens
// the copy, preloads the same CRL file (as a restarted server does) and judges
// the leaf under cache_only. Whatever the damage: no crash, and the revoked
// leaf is never answered "good" (DESIGN §5, issue 9 §4: corruption fails closed).
#include <certgate/chain_evidence.h>
#include <certgate/clock.h>
#include <certgate/policy.h>
#include <certgate/revocation.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

#include "fuzz_support.h"

namespace certgate::fuzz {
namespace {

struct Fixture {
  std::string crl_path;
  std::string template_mdb;
  X509_STORE *trust = nullptr;
  Policy policy;
  ChainEvidence evidence;
};

const FixedClock &FuzzClock() {
  static const FixedClock clock(kNow);
  return clock;
}

Fixture &Fixed() {
  static Fixture *fixture = [] {
    auto *f = new Fixture;
    f->crl_path = ProcessTempDir() + "/root.crl";
    std::vector<uint64_t> serials;
    for (uint64_t s = 0x0f00; s < 0x0f40; ++s) serials.push_back(s);
    serials.push_back(0x1001);  // the leaf
    for (uint64_t s = 0x2000; s < 0x2020; ++s) serials.push_back(s);
    if (!WriteFile(f->crl_path, FixedCrlDer(serials, 7))) Fail("cannot write the CRL");
    f->trust = FixedTrust().release();
    std::vector<std::string> cache_only{"cache_only"}, chain{"leaf"};
    if (!f->policy.Set("revocation", cache_only).ok()) Fail("policy");
    if (!f->policy.Set("revocation_scope", chain).ok()) Fail("policy");
    f->evidence = BuildChainEvidence(FixedLeaf().cert.get(), nullptr, f->trust, kNow);
    {
      const std::string cache = ProcessTempDir() + "/template";
      auto checker = RevocationChecker::Open(cache, FuzzClock());
      if (!checker.ok()) Fail("cannot create the template store");
      Status preloaded = checker.value()->Preload({f->crl_path}, f->trust);
      if (!preloaded.ok()) Fail("cannot preload: " + preloaded.message());
      auto answers = checker.value()->Check(f->evidence, f->policy);
      if (answers.empty() || answers[0].status != RevocationStatus::kRevoked) {
        Fail("the template store does not revoke the leaf");
      }
    }
    if (!ReadFile(ProcessTempDir() + "/template/data.mdb", &f->template_mdb)) Fail("data.mdb");
    return f;
  }();
  return *fixture;
}

}  // namespace
}  // namespace certgate::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace certgate;
  using namespace certgate::fuzz;
  Fixture &fixture = Fixed();
  Input in(data, size);
  std::string mdb = fixture.template_mdb;
  const uint8_t flags = in.Byte();
  // Truncation for one input in eight: a cut map fails at once, and more often
  // would leave the fuzzer little time for the byte flips.
  if ((flags & 7) == 7) mdb.resize(in.U32() % (mdb.size() + 1));
  for (int i = 0; i < 64 && in.remaining() >= 5 && !mdb.empty(); ++i) {
    const size_t offset = in.U32() % mdb.size();
    mdb[offset] = static_cast<char>(mdb[offset] ^ in.Byte());
  }
  TempDir dir;
  const std::string cache = dir.path() + "/cache";
  if (mkdir(cache.c_str(), 0700) != 0 || !WriteFile(cache + "/data.mdb", mdb)) {
    Fail("cannot write the damaged store");
  }
  auto checker = RevocationChecker::Open(cache, FuzzClock());
  if (!checker.ok()) return 0;  // refused at open: fails closed
  (void)checker.value()->Preload({fixture.crl_path}, fixture.trust);
  std::vector<RevocationAnswer> answers = checker.value()->Check(fixture.evidence, fixture.policy);
  for (const RevocationAnswer &answer : answers) {
    if (answer.depth == 0 && answer.status == RevocationStatus::kGood) {
      Fail("a damaged store answers a revoked certificate as good");
    }
  }
  (void)checker.value()->List();
  return 0;
}
