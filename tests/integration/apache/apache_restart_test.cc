// Issue 9 §1: httpd's parent and children survive graceful restarts under
// traffic, with mod_certgate replaced on disk between restarts, in mpm_event
// and mpm_prefork (Debian's apache2 on 127.0.0.1:18590).
//
// httpd unloads every module and loads it again at each graceful restart
// (Debian's logrotate does one nightly). Whatever the module registered in a
// library that stays loaded (OpenSSL ex_data free callbacks) must go with the
// copy that registered it, or the next SSL_free / SSL_CTX_free jumps into
// unmapped code. Where the new copy lands decides whether that crashes, so
// every other restart loads two more modules ahead of certgate (as enabling a
// module and reloading does), which moves it.
//
// Each restart: the module is replaced as a package upgrade does, the
// configuration alternates, `apache2 -k graceful`, and the test waits for the
// parent's "resuming normal operations". Meanwhile a client requests without
// pause. Expected: the parent lives, no child dies of a signal (AH00052), every
// request is answered 200, and afterwards certgate still refuses a client
// without a certificate. CERTGATE_KEEP_TMP=1 keeps the directory.
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <memory>
#include <string>

#include "harness.h"
#include "restart_drill.h"

namespace certgate {
namespace {

namespace h = harness;

constexpr int kPort = 18590;
constexpr int kRestarts = 30;

class ApacheRestart : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(CERTGATE_APACHE_BINARY, X_OK), 0) << CERTGATE_APACHE_BINARY " is missing";
    ASSERT_FALSE(h::PortOpen(kPort)) << "port " << kPort << " is in use";
    dir_ = std::make_unique<h::TempDir>("certgate-apache-restart");
    ASSERT_TRUE(dir_->ok());
    for (const char *sub : {"/run", "/logs", "/htdocs", "/modules"}) h::MakeDirs(path(sub));
    h::WriteFile(path("/htdocs/index.html"), "hello\n");
    ASSERT_EQ(h::GeneratePki(pki()), "");
    ASSERT_TRUE(h::ReplaceFileAsAPackageDoes(CERTGATE_APACHE_MODULE_PATH, module()));
    ASSERT_TRUE(h::WriteFile(conf(), Config(false)));
    h::MakeWorldReadable(dir_->path());
  }

  void TearDown() override {
    if (process_.pid() > 0 && process_.Running()) process_.Stop(SIGTERM, 15000);
    if (process_.pid() > 0) kill(-process_.pid(), SIGKILL);  // children a dead parent left
  }

  std::string path(const std::string &sub) const { return dir_->path() + sub; }
  std::string pki() const { return path("/pki"); }
  std::string conf() const { return path("/httpd.conf"); }
  std::string module() const { return path("/modules/mod_certgate.so"); }
  std::string error_log() const { return path("/logs/error.log"); }

  // `moved`: load mod_headers and mod_rewrite ahead of certgate.
  std::string Config(bool moved) const {
    const std::string m = CERTGATE_APACHE_MODULES_DIR;
    const std::string &mpm = GetParam();
    const std::string processes =
        mpm == "event" ? "StartServers 2\nServerLimit 4\nThreadsPerChild 4\nMaxRequestWorkers 16\n"
                         "MinSpareThreads 1\nMaxSpareThreads 16\n"
                       : "StartServers 2\nMinSpareServers 1\nMaxSpareServers 4\n"
                         "MaxRequestWorkers 8\n";
    std::string conf = "ServerRoot \"" + dir_->path() + "\"\nServerName localhost\n" +
                       "DefaultRuntimeDir \"" + path("/run") + "\"\nPidFile \"" +
                       path("/run/httpd.pid") + "\"\nErrorLog \"" + error_log() +
                       "\"\nLogLevel notice\nMutex file:" + path("/run") + " default\n" +
                       "LoadModule mpm_" + mpm + "_module " + m + "/mod_mpm_" + mpm + ".so\n";
    for (const char *name : {"authz_core", "mime", "dir", "socache_shmcb", "ssl"}) {
      conf += std::string("LoadModule ") + name + "_module " + m + "/mod_" + name + ".so\n";
    }
    if (moved) {
      conf += "LoadModule headers_module " + m + "/mod_headers.so\n";
      conf += "LoadModule rewrite_module " + m + "/mod_rewrite.so\n";
    }
    conf += "LoadModule certgate_module " + module() + "\n";
    if (geteuid() == 0) conf += "User nobody\nGroup nogroup\n";
    conf += processes + "TypesConfig /etc/mime.types\nDocumentRoot \"" + path("/htdocs") +
            "\"\nDirectoryIndex index.html\n<Directory />\n  Require all granted\n</Directory>\n"
            "SSLSessionCache \"shmcb:" +
            path("/run/ssl_scache(512000)") + "\"\nSSLProtocol -all +TLSv1.2 +TLSv1.3\n" +
            "Listen 127.0.0.1:" + std::to_string(kPort) +
            "\n<VirtualHost 127.0.0.1:" + std::to_string(kPort) +
            ">\n  SSLEngine on\n  SSLCertificateFile " + pki() +
            "/server/server-chain.pem\n  SSLCertificateKeyFile " + pki() +
            "/server/server.key\n  SSLCACertificateFile " + pki() +
            "/ca/trust.pem\n  SSLVerifyClient optional_no_ca\n  SSLVerifyDepth 10\n"
            // Revocation too: the children run the cache's threads.
            "  CertGate require\n  CertGateRevocation cache_only\n  CertGateCrl " +
            pki() + "/crl\n  CertGateCache " + path("/cache") + "\n</VirtualHost>\n";
    return conf;
  }

  h::RunResult Apache(const std::vector<std::string> &args) const {
    std::vector<std::string> argv = {"/usr/bin/env",         "-i", "PATH=/usr/sbin:/usr/bin:/bin",
                                     CERTGATE_APACHE_BINARY, "-f", conf()};
    argv.insert(argv.end(), args.begin(), args.end());
    return h::Run(argv);
  }

  std::unique_ptr<h::TempDir> dir_;
  h::Process process_;
};

TEST_P(ApacheRestart, ParentAndChildrenSurviveGracefulRestartsWithTheModuleReplaced) {
  h::LogTail log(error_log());
  // The harness gives the parent its own process group, which prefork signals.
  ASSERT_TRUE(process_.Start({"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/bin",
                              CERTGATE_APACHE_BINARY, "-DFOREGROUND", "-f", conf()},
                             path("/logs/stdout.log"), path("/logs/stderr.log")));
  bool up = false;
  log.WaitFor("resuming normal operations", 15000, &up);
  ASSERT_TRUE(up && h::WaitForPort(kPort, 10000))
      << h::ReadFile(path("/logs/stderr.log")) << h::ReadFile(error_log());

  h::Traffic traffic("https://127.0.0.1:" + std::to_string(kPort) + "/", pki());
  int survived = 0;
  for (int restart = 1; restart <= kRestarts; ++restart) {
    ASSERT_TRUE(h::ReplaceFileAsAPackageDoes(CERTGATE_APACHE_MODULE_PATH, module()));
    ASSERT_TRUE(h::WriteFile(conf(), Config(restart % 2 == 1)));
    log.Skip();
    const h::RunResult graceful = Apache({"-k", "graceful"});
    ASSERT_EQ(graceful.exit_code, 0) << graceful.err;
    bool resumed = false;
    log.WaitFor("resuming normal operations", 15000, &resumed);
    if (!process_.Running()) break;
    EXPECT_TRUE(resumed) << "restart " << restart << ": " << log.ReadNew();
    ++survived;
    usleep(300 * 1000);  // let requests reach the new children
  }
  traffic.Stop();

  EXPECT_EQ(survived, kRestarts) << "the parent died at restart " << survived + 1 << ":\n"
                                 << h::ReadFile(error_log());
  const std::string errors = h::ReadFile(error_log());
  EXPECT_TRUE(h::GrepLines(errors, {"exit signal"}).empty()) << errors;
  EXPECT_TRUE(traffic.failures().empty())
      << traffic.failures().size() << " requests failed, the first: " << traffic.failures()[0];
  EXPECT_GT(traffic.answered(), kRestarts) << "too few requests to show anything";

  // The module that runs now still decides.
  const std::string url = "https://127.0.0.1:" + std::to_string(kPort) + "/";
  EXPECT_EQ(h::CurlAsClient(url, pki(), "good", 20).status, 200);
  EXPECT_EQ(h::CurlAsClient(url, pki(), "", 20).status, 403);
  EXPECT_EQ(h::CurlAsClient(url, pki(), "expired", 20).status, 403);
  std::cerr << "[ info ] mpm_" << GetParam() << ": " << survived << " graceful restarts, "
            << traffic.answered() << " requests answered, " << traffic.failures().size()
            << " failed\n";

  // A graceful stop (what `apache2ctl graceful-stop` and a package's prerm
  // do) lets every child exit through the module's teardown as well.
  log.Skip();
  ASSERT_TRUE(process_.Signal(SIGWINCH));
  EXPECT_EQ(process_.Wait(20000), 0);
  EXPECT_TRUE(h::GrepLines(log.ReadNew(), {"exit signal"}).empty());
}

INSTANTIATE_TEST_SUITE_P(Mpm, ApacheRestart, ::testing::Values("event", "prefork"),
                         [](const auto &info) { return info.param; });

}  // namespace
}  // namespace certgate
