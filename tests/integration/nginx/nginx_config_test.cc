// NginxConfig: `nginx -t` of small configurations next to the main server
// (nginx_test_fixture.h): the core's messages with file:line, relative paths.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <string>

#include "nginx_test_fixture.h"

namespace certgate::nginx_test {
namespace {

class NginxConfig : public NginxTest {
 protected:
  h::RunResult TestConfig(const std::string &name, const std::string &directives) {
    return nginx().TestLocationConfig(name, directives);
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

}  // namespace
}  // namespace certgate::nginx_test
