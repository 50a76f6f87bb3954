// NginxConfig: `nginx -t` of small configurations next to the main server
// (nginx_test_fixture.h): the core's messages with file:line, relative paths.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "nginx_test_fixture.h"
#include "probe_support.h"

namespace certgate::nginx_test {
namespace {

class NginxConfig : public NginxTest {
 protected:
  h::RunResult TestConfig(const std::string &name, const std::string &directives) {
    return nginx().TestLocationConfig(name, directives);
  }
  // Self-checks (issue 12 §3) at `nginx -t`: a server with TLS and certgate.
  h::RunResult TestSslServer(const std::string &name, const std::string &directives) {
    const std::string path = nginx().dir() + "/" + name;
    const std::string pki = nginx().pki();
    h::WriteFile(path, "load_module " CERTGATE_NGINX_MODULE_PATH ";\npid " + nginx().dir() +
                           "/t.pid;\nerror_log " + nginx().dir() +
                           "/logs/t.log;\nevents {}\nhttp {\n  server {\n"
                           "    listen 127.0.0.1:18491 ssl;\n    ssl_certificate " +
                           pki + "/server/server-chain.pem;\n    ssl_certificate_key " + pki +
                           "/server/server.key;\n" + directives +
                           "    location / { return 204; }\n  }\n}\n");
    return h::Run({nginx().nginx(), "-t", "-p", nginx().dir(), "-c", path});
  }
};

TEST_F(NginxConfig, BadValueFailsWithTheCoresMessageAndFileLine) {
  h::RunResult r = TestConfig("bad-depth.conf", "      certgate_max_depth banana;\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("[emerg] "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(": certgate_max_depth: \"banana\" is not a number in "), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(" in " + nginx().dir() + "/bad-depth.conf:9"), std::string::npos) << r.err;

  r = TestConfig("bad-body.conf", "      certgate require;\n      certgate_reject_body xml;\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("certgate_reject_body: \"xml\""), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad-body.conf:10"), std::string::npos) << r.err;

  r = TestConfig("bad-file.conf", "      certgate_trusted_issuers /nonexistent/ca.pem;\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("certgate_trusted_issuers"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bad-file.conf:9"), std::string::npos) << r.err;

  r = TestConfig("bad-args.conf", "      certgate require optional;\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("bad-args.conf:9"), std::string::npos) << r.err;
}

TEST_F(NginxConfig, BadSubjectRegexFailsWithFileLine) {
  h::RunResult r =
      TestConfig("bad-regex.conf", "      certgate_subject \"~a{77777777777777777777}\";\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("[emerg] "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("certgate_subject: \"~a{77777777777777777777}\" is not a valid regular "
                       "expression: invalid repetition size: {77777777777777777777} in " +
                       nginx().dir() + "/bad-regex.conf:9"),
            std::string::npos)
      << r.err;
  // std::regex took backreferences; RE2 refuses them.
  r = TestConfig("backref-regex.conf", "      certgate_subject \"~(a)\\1\";\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("is not a valid regular expression: invalid escape sequence: \\1 in " +
                       nginx().dir() + "/backref-regex.conf:9"),
            std::string::npos)
      << r.err;
}

TEST_F(NginxConfig, DuplicateDirective) {
  h::RunResult r = TestConfig("dup.conf", "      certgate require;\n      certgate optional;\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("\"certgate\" directive is duplicate in " + nginx().dir() + "/dup.conf:10"),
            std::string::npos)
      << r.err;
}

// Relative paths are nginx's: files certgate reads are found from the
// configuration directory (as ssl_crl), its cache from the prefix (as
// proxy_cache_path); never from the working directory.
TEST_F(NginxConfig, RelativePathsAreResolvedAsNginxDoes) {
  const std::string conf_dir = nginx().dir() + "/relative";
  ASSERT_TRUE(h::MakeDirs(conf_dir + "/ca"));
  ASSERT_TRUE(h::MakeDirs(conf_dir + "/crl"));  // an empty directory of CRLs
  h::WriteFile(conf_dir + "/ca/issuers.pem", h::ReadFile(nginx().pki() + "/ca/intermediate.pem"));
  h::RunResult r = TestConfig("relative/good.conf",
                              "      certgate require;\n"
                              "      certgate_trusted_issuers ca/issuers.pem;\n"
                              "      certgate_crl crl;\n"
                              "      certgate_revocation soft_fail;\n"
                              "      certgate_cache relative-cache;\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  struct stat st {};
  EXPECT_EQ(stat((nginx().dir() + "/relative-cache").c_str(), &st), 0)
      << "the cache is not under the prefix";
  EXPECT_NE(stat((conf_dir + "/relative-cache").c_str(), &st), 0);

  r = TestConfig("relative/missing.conf", "      certgate_trusted_issuers ca/missing.pem;\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(conf_dir + "/ca/missing.pem"), std::string::npos) << r.err;
}

TEST_F(NginxConfig, GoodConfigPasses) {
  h::RunResult r = TestConfig("good.conf",
                              "      certgate optional;\n"
                              "      certgate_subject OU=People;\n"
                              "      certgate_log json accepts;\n"
                              "      certgate_log_level warn;\n"
                              "      certgate_min_key rsa=3072 ec=384;\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

// Issue 11 §3: the AIA URL comes from a certificate not yet verified, so
// fetching issuers needs the hosts named.
TEST_F(NginxConfig, FetchIssuersWithoutFetchAllowFailsTheTest) {
  h::RunResult r = TestConfig("fetch-issuers.conf",
                              "      certgate require;\n      certgate_fetch_issuers on;\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("[emerg] "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("certgate_fetch_issuers on needs certgate_fetch_allow"), std::string::npos)
      << r.err;
  r = TestConfig("fetch-issuers-allowed.conf",
                 "      certgate require;\n      certgate_fetch_issuers on;\n"
                 "      certgate_fetch_allow pki.example;\n      certgate_cache " +
                     nginx().dir() + "/cache/fetch-issuers;\n");  // not the system's
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST_F(NginxConfig, SelfCheckThreeHundredAndTwoCaNamesWarnWithTheirSize) {
  const std::string many = nginx().dir() + "/many-cas.pem";
  ASSERT_EQ(h::WriteManyCas(many, 302), "");
  h::RunResult r = TestSslServer("many.conf",
                                 "    ssl_verify_client optional_no_ca;\n"
                                 "    ssl_client_certificate " +
                                     many + ";\n    certgate require;\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[warn] "), std::string::npos) << r.err;
  const size_t at = r.err.find("certgate: check=ca_names_size the server sends 302 CA names, ");
  ASSERT_NE(at, std::string::npos) << r.err;
  const long bytes = std::stol(r.err.substr(r.err.find("names, ", at) + 7));
  EXPECT_GT(bytes, 50000) << r.err;  // about 185 DER bytes each
  EXPECT_NE(r.err.find(" bytes, in its certificate request"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("ssl_trusted_certificate"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("in server at " + nginx().dir() + "/many.conf:"), std::string::npos)
      << r.err;
  // The names are sent only when nginx asks for a certificate with them.
  r = TestSslServer("few.conf",
                    "    ssl_verify_client optional_no_ca;\n"
                    "    ssl_client_certificate " +
                        nginx().pki() + "/ca/trust.pem;\n    certgate require;\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("check="), std::string::npos) << r.err;
}

TEST_F(NginxConfig, SelfCheckTrustedIssuerNoAnchorReachesFailsTheTest) {
  const std::string issuers = nginx().pki() + "/ca/untrusted-root.pem";
  h::RunResult r = TestSslServer("stranger.conf",
                                 "    ssl_verify_client optional_no_ca;\n"
                                 "    ssl_client_certificate " +
                                     nginx().pki() +
                                     "/ca/trust.pem;\n    certgate require;\n"
                                     "    certgate_trusted_issuers " +
                                     issuers + ";\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("[emerg] "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("check=issuer_not_trusted the CA 'CN=Untrusted Root CA,O=Untrusted' in "
                       "certgate_trusted_issuers \"" +
                       issuers + "\""),
            std::string::npos)
      << r.err;
}

TEST_F(NginxConfig, SelfCheckVerifyClientOnWarns) {
  h::RunResult r = TestSslServer("on.conf",
                                 "    ssl_verify_client on;\n"
                                 "    ssl_client_certificate " +
                                     nginx().pki() + "/ca/trust.pem;\n    certgate require;\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("[warn] "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("check=verify_client_on"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("optional_no_ca"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace certgate::nginx_test
