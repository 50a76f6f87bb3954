// Issue 5: "kill -9 of a worker in the middle of a large ingest leaves the store
// usable", in Debian's nginx with ngx_http_certgate_module on 127.0.0.1:18470.
//
// nginx runs one worker. Each location preloads (certgate_crl) a CRL of the
// demo PKI's Example Issuing CA with a million entries plus the demo `revoked`
// certificate, cache_only, into its own certgate_cache. The first request there
// makes the worker ingest it in a background thread (~1 s) while the request
// waits (certgate_revocation_wait 30s). The test kills the worker with SIGKILL
// inside the ingest's LMDB write transaction (KillInTheIngest says how that is
// known), the master starts a new worker, and that one must answer correctly
// from the same store: `revoked` refused as revoked by the CRL, `good`
// allowed, `certgate cache list` showing the CRL stored once, nothing in the
// logs that suggests damage.
//
// The ways a dead writer is met by the next one:
//   - nobody else has the store open: the new worker's open re-initialises
//     LMDB's lock file;
//   - another process keeps it open across the kill (as the other workers of a
//     multi-worker nginx would): the new worker must take over the dead
//     writer's lock (a robust mutex) instead;
//   - killed in the commit: data.mdb has grown by pages not in use yet.
// The CRL, the store probes and the kill are the harness's (ingest_crash.h).
// CERTGATE_KEEP_TMP=1 keeps the directory.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "ingest_crash.h"
#include "nginx_test_fixture.h"

namespace certgate::nginx_test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kPort = 18470;
const std::string kRevokedBody = "403.13 client certificate refused: revoked\n";

int MsSince(Clock::time_point start) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count());
}

// ---- the server ----

class Server : public Nginx {
 public:
  std::string Start() {
    std::string error = Prepare("certgate-nginx-crash");
    if (!error.empty()) return error;
    for (const char *sub : {"/cache", "/crl"}) h::MakeDirs(dir() + sub);
    const auto start = Clock::now();
    error = h::WriteLargeCrl(pki(), crl());
    if (!error.empty()) return error;
    std::cerr << "[ info ] " << h::kLargeCrlEntries + 1 << "-entry CRL (" << h::FileSize(crl())
              << " bytes) made in " << MsSince(start) << " ms\n";
    h::MakeWorldReadable(dir() + "/crl");
    // Another server there would answer in place of this one.
    if (h::PortOpen(kPort)) return "port " + std::to_string(kPort) + " is in use";
    return Launch(Config(), {kPort});
  }

  void Stop() { StopNginx(SIGQUIT); }

  std::string Config() const {
    const std::string p = pki();
    auto location = [&](const std::string &name) {
      return "    location = /" + name + " {\n      certgate_cache " + cache(name) +
             ";\n      certgate_crl " + crl() + ";\n      return 200 \"ok\\n\";\n    }\n";
    };
    return ConfigHead(1) +
           "  log_format cg '$request_uri status=$status reason=$certgate_reason "
           "revocation=\"$certgate_revocation\"';\n"
           "  access_log " +
           access_log() +
           " cg;\n"
           "  server {\n"
           "    listen 127.0.0.1:" +
           std::to_string(kPort) +
           " ssl;\n"
           "    server_name localhost;\n"
           "    ssl_certificate " +
           p + "/server/server-chain.pem;\n    ssl_certificate_key " + p +
           "/server/server.key;\n"
           // The Issuing CA is a trust anchor here, so the preload ingests its
           // CRL at once (with only the root trusted, it would parse the file,
           // wait for a chain bringing the CA, and parse it again).
           "    ssl_trusted_certificate " +
           p +
           "/ca/trust-with-intermediate.pem;\n"
           "    certgate require;\n"
           "    certgate_revocation cache_only;\n"
           "    certgate_revocation_scope leaf;\n"
           "    certgate_revocation_wait 30s;\n"
           // Never the system's default cache: a test stays in its prefix.
           "    certgate_cache " +
           cache("server") + ";\n" + location("sole") + location("shared") + location("commit") +
           "  }\n"
           "}\n";
  }

  h::CurlAnswer Curl(const std::string &path, const std::string &client) const {
    return h::CurlAsClient("https://127.0.0.1:" + std::to_string(kPort) + path, pki(), client);
  }

  pid_t master() { return process().pid(); }
  std::string crl() const { return dir() + "/crl/large.crl"; }
  std::string cache(const std::string &name) const { return dir() + "/cache/" + name; }
};

class NginxCrash : public SharedServerTest<Server> {
 protected:
  Server &s() { return server(); }

  // Asks `location` with `revoked` (the first request there, so the worker
  // starts ingesting the large CRL into the location's cache while the request
  // waits) and kill -9s the worker at `point` of the ingest (KillInTheIngest).
  // The request must get no answer. Sets *killed to the worker's pid.
  void KillWorkerInTheIngest(const std::string &location, h::KillPoint point,
                             h::StoreHolder *holder, pid_t *killed) {
    const h::IngestKill kill = h::KillInTheIngest(
        s().master(), [&] { return s().Curl("/" + location + "?case=killed", "revoked"); },
        s().cache(location), point, holder);
    ASSERT_TRUE(kill.error.empty()) << kill.error;
    std::cerr << "[ info ] " << kill.report << "\n";
    *killed = kill.killed;
    EXPECT_EQ(kill.answer.status, 0) << "the killed worker answered: " << kill.answer.body;
    EXPECT_NE(kill.answer.curl_exit, 0) << kill.answer.err;
  }

  // The new worker answers from the store: `revoked` refused as revoked by the
  // large CRL (which it ingests again, the killed ingest having left nothing),
  // `good` allowed by it.
  void ExpectCorrectVerdicts(const std::string &location, const std::string &tag) {
    const std::string revoked_path = "/" + location + "?case=" + tag + "-revoked";
    const h::CurlAnswer revoked = s().Curl(revoked_path, "revoked");
    EXPECT_EQ(revoked.curl_exit, 0) << revoked.err;
    EXPECT_EQ(revoked.status, 403) << revoked.body;
    EXPECT_EQ(revoked.body, kRevokedBody);
    const std::string line = h::WaitForLine(s().error_log(), {"GET " + revoked_path + " "});
    EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
    EXPECT_NE(line.find("crl " + s().crl() + " crl_number=1"), std::string::npos) << line;
    std::cerr << "[ info ] " << revoked_path << " answered in " << revoked.ms << " ms\n";

    const std::string good_path = "/" + location + "?case=" + tag + "-good";
    const h::CurlAnswer good = s().Curl(good_path, "good");
    EXPECT_EQ(good.curl_exit, 0) << good.err;
    EXPECT_EQ(good.status, 200) << good.body;
    const std::string access = h::WaitForLine(s().access_log(), {good_path + " "});
    EXPECT_NE(access.find("revocation=\"good crl " + s().crl()), std::string::npos) << access;
  }

  // Right after the kill (the StoreHolder keeping the lock file as it was),
  // the store holds no CRL: the killed ingest committed nothing.
  void ExpectNothingCommitted(const std::string &location) {
    h::StoreProbe probe;
    ASSERT_TRUE(probe.Open(s().cache(location)));
    EXPECT_EQ(probe.Probe(/*try_writer=*/false), h::StoreState::kNoCrl)
        << "the killed ingest committed something";
  }

  // `certgate cache list` reads the store and shows the CRL once: one CRL
  // record with every entry, and no more serials than that.
  void ExpectCrlStoredOnce(const std::string &location) {
    for (const std::string &problem : h::CrlStoredOnceProblems(s().cache(location), s().crl())) {
      ADD_FAILURE() << problem;
    }
  }

  // Nothing in the logs written since `errors`/`notices` were marked suggests
  // a damaged store; the only alert is the kill.
  void ExpectNoSignOfDamage(h::LogTail &errors, h::LogTail &notices, pid_t killed) {
    const std::string error_text = errors.ReadNew();
    const std::string notice_text = notices.ReadNew();
    for (const char *sign :
         {"MDB_", "corrupt", "revocation cache", "revocation_unavailable", "[emerg]", "[crit]"}) {
      EXPECT_TRUE(h::GrepLines(notice_text, {sign}).empty()) << sign << " in:\n" << notice_text;
    }
    for (const std::string &line : h::GrepLines(error_text, {"certgate"})) {
      EXPECT_NE(line.find("reason=revoked"), std::string::npos) << line;
    }
    const std::vector<std::string> alerts = h::GrepLines(notice_text, {"[alert]"});
    ASSERT_EQ(alerts.size(), 1u) << notice_text;
    EXPECT_NE(alerts[0].find("worker process " + std::to_string(killed) + " exited on signal 9"),
              std::string::npos)
        << alerts[0];
  }
};

// The worker is the store's only user: after the kill, the new worker's open
// finds LMDB's lock file with a dead writer and nobody else, and resets it.
TEST_F(NginxCrash, WorkerKilledInTheIngestLeavesTheStoreUsable) {
  h::LogTail errors(s().error_log());
  h::LogTail notices(s().notice_log());
  pid_t killed = -1;
  ASSERT_NO_FATAL_FAILURE(
      KillWorkerInTheIngest("sole", h::KillPoint::kInTheTransaction, nullptr, &killed));
  const auto start = Clock::now();
  const pid_t next = h::WaitForSoleChild(s().master(), killed, 10000);
  ASSERT_GT(next, 0) << "the master started no new worker";
  std::cerr << "[ info ] new worker " << next << " after " << MsSince(start) << " ms\n";
  ExpectCorrectVerdicts("sole", "after-kill");
  ExpectCrlStoredOnce("sole");
  ExpectNoSignOfDamage(errors, notices, killed);
}

// Another process has the store open across the kill (as the other workers of
// a multi-worker nginx would): the lock file is not reset, and the new worker
// must take over the writer lock of the dead one. A read right after the kill
// shows the killed ingest left nothing committed.
TEST_F(NginxCrash, WorkerKilledInTheIngestLeavesTheStoreUsableForTheOtherUsers) {
  h::LogTail errors(s().error_log());
  h::LogTail notices(s().notice_log());
  h::StoreHolder holder;
  pid_t killed = -1;
  ASSERT_NO_FATAL_FAILURE(
      KillWorkerInTheIngest("shared", h::KillPoint::kInTheTransaction, &holder, &killed));
  ASSERT_TRUE(holder.holding());
  ExpectNothingCommitted("shared");
  ASSERT_GT(h::WaitForSoleChild(s().master(), killed, 10000), 0) << "no new worker";
  ExpectCorrectVerdicts("shared", "after-kill");
  holder.Release();
  ExpectCrlStoredOnce("shared");
  // The first test's store, which the killed worker had open too, still
  // answers.
  ExpectCorrectVerdicts("sole", "after-second-kill");
  ExpectCrlStoredOnce("sole");
  ExpectNoSignOfDamage(errors, notices, killed);
}

// Killed while the commit writes the CRL's pages into data.mdb: the file has
// grown by pages the store does not use yet. They must stay unused (nothing
// committed) and the next ingest must write over them safely.
TEST_F(NginxCrash, WorkerKilledInTheCommitLeavesTheStoreUsable) {
  h::LogTail errors(s().error_log());
  h::LogTail notices(s().notice_log());
  h::StoreHolder holder;
  pid_t killed = -1;
  ASSERT_NO_FATAL_FAILURE(
      KillWorkerInTheIngest("commit", h::KillPoint::kInTheCommit, &holder, &killed));
  ExpectNothingCommitted("commit");
  ASSERT_GT(h::WaitForSoleChild(s().master(), killed, 10000), 0) << "no new worker";
  ExpectCorrectVerdicts("commit", "after-kill");
  holder.Release();
  ExpectCrlStoredOnce("commit");
  ExpectNoSignOfDamage(errors, notices, killed);
}

}  // namespace
}  // namespace certgate::nginx_test
