// Issue 9 §1: nginx's master and workers survive reloads and a binary upgrade
// under traffic, with the module replaced on disk before each reload (Debian's
// nginx on 127.0.0.1:18490).
//
// A reload whose configuration loads the module from the same path keeps the
// copy that is loaded (dlopen finds it by name). So every other reload loads
// it from a second path: the new cycle gets a new copy and the old cycle's
// copy is unloaded with it, which is when anything it left registered in a
// library that stays loaded (OpenSSL ex_data free callbacks) would be called
// from unmapped code by the next SSL_free / SSL_CTX_free. Both paths are
// replaced as a package upgrade does before each reload.
//
// Then a binary upgrade (USR2, then QUIT to the old master) hands the
// listeners to a new master with the same traffic running. Expected: the
// master lives, no worker exits on a signal, every request is answered 200,
// and certgate still refuses a client without a certificate.
// CERTGATE_KEEP_TMP=1 keeps the directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "harness.h"
#include "restart_drill.h"

namespace certgate {
namespace {

namespace h = harness;

constexpr int kPort = 18490;
constexpr int kReloads = 30;

class NginxRestart : public ::testing::Test {
 protected:
  void SetUp() override {
    nginx_ = h::FindProgram(CERTGATE_NGINX_BINARY);
    ASSERT_FALSE(nginx_.empty()) << CERTGATE_NGINX_BINARY " is missing";
    ASSERT_FALSE(h::PortOpen(kPort)) << "port " << kPort << " is in use";
    dir_ = std::make_unique<h::TempDir>("certgate-nginx-restart");
    ASSERT_TRUE(dir_->ok());
    for (const char *sub : {"/logs", "/tmp", "/modules/a", "/modules/b"}) h::MakeDirs(path(sub));
    ASSERT_EQ(h::GeneratePki(pki()), "");
    for (const char *copy : {"a", "b"}) {
      ASSERT_TRUE(h::ReplaceFileAsAPackageDoes(CERTGATE_NGINX_MODULE_PATH, module(copy)));
    }
    ASSERT_TRUE(h::WriteFile(conf(), Config("a")));
    h::MakeWorldReadable(dir_->path());
  }

  void TearDown() override {
    for (const char *pid_file : {"/nginx.pid", "/nginx.pid.oldbin"}) {
      const int master = atoi(h::ReadFile(path(pid_file)).c_str());
      if (master > 0) kill(master, SIGQUIT);
    }
  }

  std::string path(const std::string &sub) const { return dir_->path() + sub; }
  std::string pki() const { return path("/pki"); }
  std::string conf() const { return path("/nginx.conf"); }
  std::string module(const std::string &copy) const {
    return path("/modules/" + copy + "/ngx_http_certgate_module.so");
  }
  std::string error_log() const { return path("/logs/error.log"); }

  std::string Config(const std::string &copy) const {
    const std::string p = pki();
    // A daemon, as in production: only a master whose parent is gone (init)
    // takes the binary-upgrade signal.
    std::string head = h::NginxConfigHead(dir_->path(), 2, {error_log() + " notice"});
    head.replace(head.find("daemon off;"), 11, "daemon on;");
    // env: the binary upgrade's new master gets only these from the old one
    // (a sanitizer run preloads its runtime into nginx).
    return "load_module " + module(copy) + ";\nenv LD_PRELOAD;\nenv ASAN_OPTIONS;\n" +
           "env UBSAN_OPTIONS;\n" + head +
           "  access_log off;\n  ssl_protocols TLSv1.2 TLSv1.3;\n"
           "  server {\n    listen 127.0.0.1:" +
           std::to_string(kPort) + " ssl;\n    ssl_certificate " + p +
           "/server/server-chain.pem;\n    ssl_certificate_key " + p +
           "/server/server.key;\n    ssl_trusted_certificate " + p +
           "/ca/trust.pem;\n"
           // Revocation too: the workers run the cache's threads.
           "    certgate require;\n    certgate_revocation cache_only;\n    certgate_crl " +
           p + "/crl;\n    certgate_cache " + path("/cache") +
           ";\n    location / { return 200 \"hello $certgate_subject\\n\"; }\n  }\n}\n";
  }

  int Master() const { return atoi(h::ReadFile(path("/nginx.pid")).c_str()); }
  static bool Alive(int pid) { return pid > 0 && kill(pid, 0) == 0; }

  std::string nginx_;
  std::unique_ptr<h::TempDir> dir_;
};

TEST_F(NginxRestart, MasterAndWorkersSurviveReloadsAndABinaryUpgrade) {
  const h::RunResult started = h::Run({nginx_, "-p", dir_->path(), "-c", conf()});
  ASSERT_EQ(started.exit_code, 0) << started.err;
  ASSERT_TRUE(h::WaitForPort(kPort, 10000)) << h::ReadFile(error_log());
  const int master = Master();
  ASSERT_TRUE(Alive(master));
  const std::string url = "https://127.0.0.1:" + std::to_string(kPort) + "/";
  h::Traffic traffic(url, pki());
  h::LogTail log(error_log());

  int survived = 0;
  for (int reload = 1; reload <= kReloads; ++reload) {
    for (const char *copy : {"a", "b"}) {
      ASSERT_TRUE(h::ReplaceFileAsAPackageDoes(CERTGATE_NGINX_MODULE_PATH, module(copy)));
    }
    ASSERT_TRUE(h::WriteFile(conf(), Config(reload % 2 == 1 ? "b" : "a")));
    log.Skip();
    ASSERT_EQ(kill(master, SIGHUP), 0);
    bool reloaded = false;
    // The master logs this once the new workers run and the old ones were told to go.
    log.WaitFor("start worker process", 10000, &reloaded);
    if (!Alive(master)) break;
    EXPECT_TRUE(reloaded) << "reload " << reload << ": " << log.ReadNew();
    ++survived;
    usleep(300 * 1000);  // let requests reach the new workers
  }
  EXPECT_EQ(survived, kReloads) << "the master died at reload " << survived + 1 << ":\n"
                                << h::ReadFile(error_log());

  // Binary upgrade: a new master from the binary on disk (with the module on
  // disk), then the old one leaves.
  ASSERT_EQ(kill(master, SIGUSR2), 0);
  for (int waited = 0; waited < 100 && h::FileSize(path("/nginx.pid.oldbin")) <= 0; ++waited) {
    usleep(100 * 1000);
  }
  ASSERT_GT(h::FileSize(path("/nginx.pid.oldbin")), 0) << h::ReadFile(error_log());
  // The old master renames its pid file; the new one writes its own a moment later.
  int new_master = 0;
  for (int waited = 0; waited < 100 && (new_master <= 0 || new_master == master); ++waited) {
    usleep(100 * 1000);
    new_master = Master();
  }
  ASSERT_GT(new_master, 0) << h::ReadFile(error_log());
  ASSERT_NE(new_master, master);
  usleep(500 * 1000);
  ASSERT_EQ(kill(master, SIGQUIT), 0);
  for (int waited = 0; waited < 150 && Alive(master); ++waited) usleep(100 * 1000);
  EXPECT_FALSE(Alive(master)) << "the old master did not leave";
  usleep(500 * 1000);
  traffic.Stop();

  EXPECT_TRUE(Alive(new_master)) << "the upgraded master is gone";
  const std::string errors = h::ReadFile(error_log());
  EXPECT_TRUE(h::GrepLines(errors, {"exited on signal"}).empty()) << errors;
  EXPECT_TRUE(traffic.failures().empty())
      << traffic.failures().size() << " requests failed, the first: " << traffic.failures()[0];
  EXPECT_GT(traffic.answered(), kReloads) << "too few requests to show anything";

  EXPECT_EQ(h::CurlAsClient(url, pki(), "good", 20).status, 200);
  EXPECT_EQ(h::CurlAsClient(url, pki(), "", 20).status, 403);
  EXPECT_EQ(h::CurlAsClient(url, pki(), "expired", 20).status, 403);
  std::cerr << "[ info ] " << survived << " reloads and a binary upgrade, " << traffic.answered()
            << " requests answered, " << traffic.failures().size() << " failed\n";
}

}  // namespace
}  // namespace certgate
