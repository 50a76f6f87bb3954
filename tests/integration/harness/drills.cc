// certgate integration-test harness (harness.h): the CDP fault drill (issue 5) and the
// damaged-cache drill (issue 9 §4).

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>

#include "harness.h"
#include "harness_internal.h"

namespace certgate::harness {

namespace fs = std::filesystem;

// ---- the CDP fault drill ----

namespace {

constexpr int kDrillValidSeconds = 6;     // nextUpdate of the cached CRL, ahead of signing
constexpr int kDrillMaxStaleSeconds = 2;  // max_stale of the "stale" place
constexpr int kDrillMaxSize = 1024;       // fetch_max_size of the "oversized" place
constexpr char kDrillCrlName[] = "intermediate.crl";  // at the root of the CDP

// The CRLs of the drill, all naming the demo PKI's Example Issuing CA.
struct DrillCrls {
  std::string cached;       // crlNumber 20, the demo entries, nextUpdate in 6 s
  std::string truncated;    // the first half of a valid crlNumber 21
  std::string oversized;    // a valid crlNumber 21 larger than fetch_max_size
  std::string forged;       // crlNumber 21 signed with another CA's key
  std::string rolled_back;  // validly signed, crlNumber 19 < 20, without `revoked`
};

std::string SignDrillCrls(const std::string &pki, const std::string &work, DrillCrls *crls) {
  const std::string ca_cert = pki + "/ca/intermediate.pem";
  const std::string ca_key = pki + "/ca/intermediate.key";
  const std::string demo_index = ReadFile(pki + "/ocsp/index.txt");
  if (demo_index.empty()) return "no " + pki + "/ocsp/index.txt";
  const std::string good_serial = DemoSerial(pki, "good");
  if (good_serial.empty()) return "no demo client good";
  if (!MakeDirs(work)) return "cannot create " + work;

  // Every crlNumber 21 also revokes `good`: were one taken, good would be refused.
  const std::string revoking_good = work + "/index-revoking-good.txt";
  if (!WriteFile(revoking_good, demo_index) ||
      !RevokeInIndex(revoking_good, good_serial, IndexTime(-60))) {
    return "cannot revoke good in " + revoking_good;
  }
  const std::string newer_index = ReadFile(revoking_good);
  std::string newer;
  std::string error = SignCrl(work + "/newer", newer_index, ca_cert, ca_key, 21, 3600, &newer);
  if (!error.empty()) return error;
  crls->truncated = newer.substr(0, newer.size() / 2);

  // Padded with 60 more entries, past fetch_max_size; the cached CRL is well under it.
  std::string padded_index = newer_index;
  for (int i = 0; i < 60; ++i) {
    char serial[16];
    snprintf(serial, sizeof(serial), "%04X", 0x7000 + i);
    padded_index += "R\t491231235959Z\t" + IndexTime(-120) + ",keyCompromise\t" + serial +
                    "\tunknown\t/O=Example/CN=pad-" + std::to_string(i) + "\n";
  }
  error = SignCrl(work + "/oversized", padded_index, ca_cert, ca_key, 21, 3600, &crls->oversized);
  if (!error.empty()) return error;
  if (crls->oversized.size() <= static_cast<size_t>(kDrillMaxSize)) return "oversized is too small";

  // The Issuing CA's name and key identifier (its certificate re-signed with the
  // Other Issuing CA's key, so that `openssl ca` accepts that key), signed with
  // a key that is not the Issuing CA's.
  const std::string other_key = pki + "/ca/other-intermediate.key";
  const std::string fake_ca = work + "/fake-intermediate.pem";
  RunResult fake = Run(
      {"openssl", "x509", "-in", ca_cert, "-signkey", other_key, "-days", "1", "-out", fake_ca});
  if (fake.exit_code != 0) return "openssl x509 -signkey failed: " + fake.err;
  error = SignCrl(work + "/forged", newer_index, fake_ca, other_key, 21, 3600, &crls->forged);
  if (!error.empty()) return error;

  error = SignCrl(work + "/rolled-back", UnrevokeAll(demo_index), ca_cert, ca_key, 19, 3600,
                  &crls->rolled_back);
  if (!error.empty()) return error;

  // Last, so that its short validity starts as late as possible.
  error =
      SignCrl(work + "/cached", demo_index, ca_cert, ca_key, 20, kDrillValidSeconds, &crls->cached);
  if (!error.empty()) return error;
  if (crls->cached.size() >= static_cast<size_t>(kDrillMaxSize)) return "cached is too large";
  return "";
}

// One fault: put on the CDP in the drill's order (each from the state the one
// before left), what `certgate cache list` says of the failed refresh, and the
// status the CDP logs for it ("" when it logs none).
struct DrillFault {
  std::string place;
  std::function<void()> inject;
  std::string error;
  std::string cdp_status;
};

}  // namespace

const std::vector<CdpFaultPlace> &CdpFaultPlaces() {
  static const std::vector<CdpFaultPlace> places = {
      {"500", "", ""},
      {"html", "", ""},
      {"truncated", "", ""},
      {"oversized", "fetch_max_size", std::to_string(kDrillMaxSize / 1024) + "k"},
      {"forged", "", ""},
      {"rollback", "", ""},
      {"timeout", "fetch_timeout", "1s"},
      {"refused", "", ""},
      {"stale", "max_stale", std::to_string(kDrillMaxStaleSeconds) + "s"},
  };
  return places;
}

void RunCdpFaultDrill(CrlServer &cdp, const std::string &pki, const std::string &work,
                      const CdpFaultServer &server) {
  const std::string path = std::string("/") + kDrillCrlName;
  const std::string url = cdp.url(path);
  const std::string revoked_body = "403.13 client certificate refused: revoked\n";
  int problems = 0;
  auto fail = [&](const std::string &place, const std::string &problem) {
    ++problems;
    server.fail("[" + place + "] " + problem);
  };
  const std::string cli = CertgateCliPath();
  if (cli.empty()) {
    fail("setup", "certgate CLI not found next to " + MkpkiPath() +
                      " (build the certgate target): a failed refresh is seen through it");
    return;
  }
  DrillCrls crls;
  const std::string sign_error = SignDrillCrls(pki, work, &crls);
  if (!sign_error.empty()) {
    fail("setup", sign_error);
    return;
  }
  if (!cdp.Publish(kDrillCrlName, crls.cached)) {
    fail("setup", "cannot publish at the CDP");
    return;
  }
  const auto published = Clock::now();

  int seq = 0;
  auto tag = [&](const std::string &place, const std::string &what) {
    return place + "-" + what + "-" + std::to_string(seq++);
  };
  // good: 200 with crlNumber 20 in the revocation variable; revoked: refused by
  // crlNumber 20.
  auto expect_cached_verdicts = [&](const std::string &place, const std::string &when) {
    // (nextUpdate is whole seconds after signing, which came before `published`;
    // the server compares whole seconds.)
    const bool past_next_update =
        Clock::now() > published + std::chrono::seconds(kDrillValidSeconds + 1);
    const std::string g = tag(place, when + "-good");
    CdpFaultServer::Answer good = server.get(place, "good", g);
    if (good.status != 200) {
      fail(place, g + ": good got " + std::to_string(good.status) + ": " + good.body);
    }
    const std::string access = server.access_line(g);
    if (access.find("revocation=\"good crl " + url + " crl_number=20") == std::string::npos) {
      fail(place, g + ": not good by crlNumber 20 in the access log: " + access);
    }
    if (when == "after" && past_next_update) {
      // Past nextUpdate with the refresh failing: allowed, and the operator
      // hears of it. (A refresh is tried a little ahead of nextUpdate, so the
      // first fault may fail before it.)
      const std::string warning = server.refusal_line(g);
      if (warning.find("warning=revocation_past_next_update") == std::string::npos ||
          warning.find(url + ": failed: ") == std::string::npos) {
        fail(place, g + ": no warning naming the failing refresh: " + warning);
      }
    }
    const std::string r = tag(place, when + "-revoked");
    CdpFaultServer::Answer revoked = server.get(place, "revoked", r);
    if (revoked.status != 403 || revoked.body != revoked_body) {
      fail(place, r + ": revoked got " + std::to_string(revoked.status) + ": " + revoked.body);
    }
    const std::string line = server.refusal_line(r);
    if (line.find("reason=revoked") == std::string::npos ||
        line.find("crl_number=20") == std::string::npos) {
      fail(place, r + ": not revoked by crlNumber 20 in the error log: " + line);
    }
  };

  const std::vector<CdpFaultPlace> &places = CdpFaultPlaces();
  for (const CdpFaultPlace &place : places) {
    expect_cached_verdicts(place.name, "cold");
    const std::string state = CachedUrlState(cli, server.cache_dir(place.name), url);
    if (state.find(" ok: stored crl_number=20") == std::string::npos) {
      fail(place.name, "crlNumber 20 not stored: " + state);
    }
  }
  if (problems > 0) {
    fail("setup", "no good data to start from");
    return;
  }
  // (Should this run past nextUpdate on a slow machine, the refreshes it
  // triggers only confirm crlNumber 20, still at the CDP.)

  using Fault = CrlServer::Fault;
  const std::vector<DrillFault> faults = {
      {"500", [&] { cdp.SetFault(Fault::k500, path); }, "failed: HTTP 500", "500"},
      {"html", [&] { cdp.SetFault(Fault::kHtml, path); }, "not a CRL: the body is text", "200"},
      {"truncated",
       [&] {
         cdp.SetFault(Fault::kNone, path);
         cdp.Publish(kDrillCrlName, crls.truncated);
       },
       "truncated CRL", "200"},
      {"oversized", [&] { cdp.Publish(kDrillCrlName, crls.oversized); },
       "larger than certgate_fetch_max_size (" + std::to_string(kDrillMaxSize) + " bytes)", ""},
      {"forged", [&] { cdp.Publish(kDrillCrlName, crls.forged); }, "signature does not verify",
       "200"},
      {"rollback", [&] { cdp.Publish(kDrillCrlName, crls.rolled_back); },
       "rolled back: crlNumber 19 < cached 20", "200"},
      // The CDP accepts and never answers; fetch_timeout 1s. (It logs a hung
      // request only when it ends, so no status.)
      {"timeout",
       [&] {
         cdp.Publish(kDrillCrlName, crls.cached);
         cdp.SetFault(Fault::kHang, path);
       },
       "timed out", ""},
      {"refused",
       [&] {
         cdp.SetFault(Fault::kNone, path);
         cdp.Stop();
       },
       "onnect", ""},
  };

  // Puts the fault on the CDP, asks good at its place until the refresh (due
  // once nextUpdate has passed) has failed, then checks the verdicts are those
  // of the cached CRL.
  for (const DrillFault &fault : faults) {
    const std::string &place = fault.place;
    const size_t before = cdp.Requests(path).size();
    fault.inject();
    const auto start = Clock::now();
    bool failed = false;
    bool wrong_answer = false;
    std::string state;
    while (!failed && ElapsedMs(start) < (kDrillValidSeconds + 8) * 1000) {
      const std::string g = tag(place, "poll");
      CdpFaultServer::Answer good = server.get(place, "good", g);
      state = CachedUrlState(cli, server.cache_dir(place), url);
      if (good.status != 200) {
        fail(place, g + ": good got " + std::to_string(good.status) + ": " + good.body +
                        "; cache: " + state);
        wrong_answer = true;
        break;
      }
      failed = state.find(" failed: ") != std::string::npos;
      if (!failed) SleepMs(100);
    }
    if (wrong_answer) continue;
    if (!failed) {
      fail(place, "no failed refresh seen: " + state);
      continue;
    }
    if (state.find(fault.error) == std::string::npos) {
      fail(place, "the error is not \"" + fault.error + "\": " + state);
    }
    if (state.find(" failures=1 ") == std::string::npos ||
        state.find(" backoff_until=") == std::string::npos) {
      fail(place, "not one failure with a backoff: " + state);
    }
    if (!fault.cdp_status.empty()) {
      // 499 (the client gave up) is logged when a hung request ends, which may
      // be one a test before the drill left hanging: not this refresh.
      std::vector<std::string> after = cdp.Requests(path);
      after.erase(after.begin(), after.begin() + static_cast<std::ptrdiff_t>(before));
      after.erase(std::remove_if(
                      after.begin(), after.end(),
                      [&](const std::string &line) { return line.rfind(path + " 499 ", 0) == 0; }),
                  after.end());
      if (after.empty()) {
        fail(place, "the CDP logged no request");
      } else if (after.front().rfind(path + " " + fault.cdp_status + " ", 0) != 0) {
        fail(place, "the CDP did not answer " + fault.cdp_status + ": " + after.front());
      }
    }
    expect_cached_verdicts(place, "after");
  }

  // Past nextUpdate + max_stale, with the CDP still down: good is allowed
  // until then, revocation_stale after.
  if (cdp.Running()) {
    fail("stale", "the CDP is still up");
    return;
  }
  const std::string stale_body = "403.13 client certificate refused: revocation_stale\n";
  std::string stale_tag;
  int first_stale_ms = -1;
  while (ElapsedMs(published) < (kDrillValidSeconds + kDrillMaxStaleSeconds + 6) * 1000) {
    const std::string g = tag("stale", "poll");
    CdpFaultServer::Answer good = server.get("stale", "good", g);
    if (good.status == 403) {
      if (good.body != stale_body) fail("stale", g + ": " + good.body);
      first_stale_ms = ElapsedMs(published);
      stale_tag = g;
      break;
    }
    if (good.status != 200) {
      fail("stale", g + ": good got " + std::to_string(good.status) + ": " + good.body);
    }
    SleepMs(100);
  }
  if (first_stale_ms < 0) {
    fail("stale", "never revocation_stale");
    return;
  }
  // nextUpdate is whole seconds after signing, which came before `published`.
  if (first_stale_ms < (kDrillValidSeconds + kDrillMaxStaleSeconds - 1) * 1000) {
    fail("stale", "stale " + std::to_string(first_stale_ms) +
                      " ms after publishing: before nextUpdate + max_stale");
  }
  const std::string line = server.refusal_line(stale_tag);
  for (const std::string &expected :
       {std::string("reason=revocation_stale"),
        server.max_stale_name + " " + std::to_string(kDrillMaxStaleSeconds) + " s",
        std::string("crl_number=20"), url + ": failed: "}) {
    if (line.find(expected) == std::string::npos) {
      fail("stale", "no \"" + expected + "\" in the refusal: " + line);
    }
  }
  // (The revocation variable is "stale (hard_fail)": the core names no source
  // for a stale answer; the refusal above names the expired CRL.)
  const std::string access = server.access_line(stale_tag);
  if (access.find("revocation=\"stale") == std::string::npos) {
    fail("stale", "not stale in the access log: " + access);
  }
  // A serial in the expired CRL is still refused (revoked wins).
  const std::string r = tag("stale", "revoked");
  CdpFaultServer::Answer revoked = server.get("stale", "revoked", r);
  if (revoked.status != 403) {
    fail("stale", r + ": revoked got " + std::to_string(revoked.status) + ": " + revoked.body);
  }
}

void RunDamagedCacheDrill(const DamagedCacheServer &server) {
  const std::string revoked_body = "403.13 client certificate refused: revoked\n";
  DamagedCacheServer::Answer before = server.get("revoked", "dmg-before");
  if (before.status != 403 || before.body != revoked_body) {
    server.fail("before: revoked got " + std::to_string(before.status) + ": " + before.body);
    return;
  }
  server.stop();
  const std::string data = server.cache_dir + "/data.mdb";
  {
    std::fstream file(data, std::ios::in | std::ios::out | std::ios::binary);
    char byte = 0;
    file.seekg(4138);
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x40);
    file.seekp(4138);
    file.write(&byte, 1);
    if (!file.good()) {
      server.fail("cannot change a byte of " + data);
      return;
    }
  }
  const std::string error = server.start();
  if (!error.empty()) {
    server.fail("cannot start again: " + error);
    return;
  }
  bool revoked_again = false;
  const auto start = Clock::now();
  for (int i = 0; !revoked_again && Clock::now() - start < std::chrono::seconds(5); ++i) {
    DamagedCacheServer::Answer r = server.get("revoked", "dmg-" + std::to_string(i));
    if (r.status != 403) {
      server.fail("after: the revoked client got " + std::to_string(r.status) + ": " + r.body);
      return;
    }
    revoked_again = r.body == revoked_body;
    if (!revoked_again) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!revoked_again) server.fail("the rebuilt cache does not revoke the revoked client");
  DamagedCacheServer::Answer good = server.get("good", "dmg-good");
  if (good.status != 200) server.fail("good got " + std::to_string(good.status) + ": " + good.body);
  const std::string logs = server.logs();
  const size_t lines =
      GrepLines(logs, {"revocation cache " + server.cache_dir + " is damaged"}).size();
  if (lines != 1) server.fail(std::to_string(lines) + " lines name the damage, not 1:\n" + logs);
  for (const char *death : {"exited on signal", "exit signal"}) {
    if (!GrepLines(logs, {death}).empty()) server.fail(std::string("a process died: ") + death);
  }
  int aside = 0;
  std::error_code ec;
  for (const auto &entry : fs::directory_iterator(server.cache_dir, ec)) {
    aside += entry.path().filename().string().rfind("data.mdb.corrupt-", 0) == 0;
  }
  if (aside != 1) server.fail(std::to_string(aside) + " stores moved aside, not 1");
}

}  // namespace certgate::harness
