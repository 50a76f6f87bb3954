// mod_certgate in apache2 (see apache_test_fixture.h). ApacheConfig: `apache2 -t` errors.
#include <gtest/gtest.h>
#include <harness.h>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "apache_test_fixture.h"
#include "probe_support.h"

namespace certgate_apache_test {
namespace {

// ---- ApacheConfig: apache2 -t ----

class ApacheConfig : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(access(kApache, X_OK), 0)
        << kApache << " is missing: install Debian's apache2 (apt-get install apache2 apache2-dev)";
    ASSERT_TRUE(SharedPki().error.empty()) << SharedPki().error;
  }
  // `apache2 -t` on a config whose main vhost holds `body`; *line is the line
  // number of body's first line in the file.
  h::RunResult ConfigTest(const std::string &body, int *line = nullptr) {
    Apache apache("event");
    EXPECT_EQ(apache.Write(VirtualHost(18590, "optional_no_ca", body)), "");
    const std::string text = h::ReadFile(apache.conf());
    if (line != nullptr) {
      const size_t at = text.find(body.substr(0, body.find('\n')));
      *line = 1 + static_cast<int>(std::count(text.begin(), text.begin() + at, '\n'));
    }
    conf_ = apache.conf();
    return h::Run(
        {"/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/bin", kApache, "-t", "-f", apache.conf()});
  }
  std::string conf_;
};

TEST_F(ApacheConfig, GoodConfigPassesAndValuesAreCaseInsensitive) {
  h::RunResult r = ConfigTest(
      "  CertGate REQUIRE\n  certgaterejectbody JSON\n  CertGateMinKey rsa=3072 ec=384\n"
      "  CertGateSubject \"O=Example\" OU=People\n  CertGateLog json accepts\n"
      "  CertGateMaxDepth 3\n  CertGateClockSkew 5m\n"
      "  <Location /x>\n    CertGate optional\n    CertGateSan uri:spiffe://prod/*\n  "
      "</Location>\n");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE((r.out + r.err).find("Syntax OK"), std::string::npos) << r.out << r.err;
}

// Issue 11 §3: the AIA URL comes from a certificate not yet verified, so
// fetching issuers needs the hosts named; and it is a server-level key.
TEST_F(ApacheConfig, FetchIssuersWithoutFetchAllowFailsTheTest) {
  h::RunResult r = ConfigTest("  CertGate require\n  CertGateFetchIssuers on\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("CertGateFetchIssuers on needs CertGateFetchAllow"), std::string::npos)
      << r.err;
  // (Its own cache, under ServerRoot: never the system's /var/cache/certgate.)
  r = ConfigTest(
      "  CertGate require\n  CertGateFetchIssuers on\n  CertGateFetchAllow 127.0.0.1\n"
      "  CertGateCache fetch-issuers-cache\n");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = ConfigTest("  <Location /x>\n    CertGateFetchIssuers on\n  </Location>\n");
  EXPECT_NE(r.exit_code, 0);
}

TEST_F(ApacheConfig, BadValueNamesFileAndLine) {
  int line = 0;
  h::RunResult r = ConfigTest("  CertGateMaxDepth banana\n", &line);
  EXPECT_NE(r.exit_code, 0);
  const std::string where = "line " + std::to_string(line) + " of " + conf_;
  EXPECT_NE(r.err.find(where), std::string::npos) << "want [" << where << "] in:\n" << r.err;
  EXPECT_NE(r.err.find("banana"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CertGateMaxDepth: \"banana\""), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, BadKeywordInLocationNamesFileAndLine) {
  int line = 0;
  h::RunResult r = ConfigTest("  <Location /x>\n    CertGate sometimes\n  </Location>\n", &line);
  EXPECT_NE(r.exit_code, 0);
  const std::string where = "line " + std::to_string(line + 1) + " of " + conf_;
  EXPECT_NE(r.err.find(where), std::string::npos) << "want [" << where << "] in:\n" << r.err;
  EXPECT_NE(r.err.find("sometimes"), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, MissingFileNamesTheFile) {
  h::RunResult r = ConfigTest("  CertGateTrustedIssuers /nonexistent/issuers.pem\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent/issuers.pem"), std::string::npos) << r.err;
}

// Relative paths are httpd's: every value of a path key is taken from
// ServerRoot (quoted or not), never from the working directory.
TEST_F(ApacheConfig, RelativePathsAreUnderServerRoot) {
  // logs/ and run/ exist under ServerRoot only; a relative cache would be refused.
  h::RunResult r = ConfigTest("  CertGateCrl \"logs\" 'run'\n  CertGateCache relative-cache\n");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = ConfigTest("  CertGateTrustedIssuers \"ca/missing issuers.pem\"\n");
  EXPECT_NE(r.exit_code, 0);
  const std::string root = conf_.substr(0, conf_.rfind('/'));
  EXPECT_NE(r.err.find(root + "/ca/missing issuers.pem"), std::string::npos) << r.err;
}

// Every value is read, however many: httpd's own TAKE_ARGV splitting stops
// at 64 and drops the rest of the line, which would lose deny pins silently.
TEST_F(ApacheConfig, EveryValueOfALongLineIsRead) {
  std::string hosts;
  for (int i = 0; i < 70; ++i) hosts += " host" + std::to_string(i) + ".example";
  h::RunResult r = ConfigTest("  CertGateFetchAllow" + hosts + "\n");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  r = ConfigTest("  CertGateFetchAllow" + hosts + " bad/host\n");
  EXPECT_NE(r.exit_code, 0) << "the 71st value was not read";
  EXPECT_NE(r.err.find("bad/host"), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, ServerOnlyKeyRefusedInLocation) {
  h::RunResult r = ConfigTest("  <Location /x>\n    CertGateCache /tmp/cg\n  </Location>\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("CertGateCache"), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, RejectAtIsPerVirtualHost) {
  h::RunResult r = ConfigTest("  <Location /x>\n    CertGateRejectAt handshake\n  </Location>\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("CertGateRejectAt"), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, StatusOnAndOffPass) {
  h::RunResult r = ConfigTest(
      "  <Location /certgate-status>\n    CertGateStatus ON\n  </Location>\n"
      "  <Location /other>\n    CertGateStatus off\n  </Location>\n");
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
}

TEST_F(ApacheConfig, StatusBadValueNamesDirectiveAndValue) {
  int line = 0;
  h::RunResult r =
      ConfigTest("  <Location /certgate-status>\n    CertGateStatus maybe\n  </Location>\n", &line);
  EXPECT_NE(r.exit_code, 0);
  const std::string where = "line " + std::to_string(line + 1) + " of " + conf_;
  EXPECT_NE(r.err.find(where), std::string::npos) << "want [" << where << "] in:\n" << r.err;
  EXPECT_NE(r.err.find("CertGateStatus: \"maybe\""), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, StatusIsPerLocation) {
  h::RunResult r = ConfigTest("  CertGateStatus on\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("CertGateStatus"), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, BadSubjectRegexNamesFileAndLine) {
  int line = 0;
  h::RunResult r = ConfigTest("  CertGateSubject \"~a{77777777777777777777}\"\n", &line);
  EXPECT_NE(r.exit_code, 0);
  const std::string where = "line " + std::to_string(line) + " of " + conf_;
  EXPECT_NE(r.err.find(where), std::string::npos) << "want [" << where << "] in:\n" << r.err;
  EXPECT_NE(r.err.find("CertGateSubject: \"~a{77777777777777777777}\" is not a valid regular "
                       "expression: invalid repetition size: {77777777777777777777}"),
            std::string::npos)
      << r.err;
  r = ConfigTest("  <Location /x>\n    CertGateSubject \"~(a)\\1\"\n  </Location>\n", &line);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("line " + std::to_string(line + 1) + " of " + conf_), std::string::npos)
      << r.err;
  // (httpd's log doubles the backslash)
  EXPECT_NE(r.err.find("is not a valid regular expression: invalid escape sequence: \\"),
            std::string::npos)
      << r.err;
}

TEST_F(ApacheConfig, WrongArgumentCount) {
  h::RunResult r = ConfigTest("  CertGate\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("Syntax error"), std::string::npos) << r.err;
}

// Self-checks (issue 12 §3) at `apache2 -t`, read from the SSL directives.
TEST_F(ApacheConfig, SelfCheckThreeHundredAndTwoCaNamesWarnWithTheirSize) {
  h::TempDir files("certgate-selfcheck");
  const std::string many = files.path() + "/many-cas.pem";
  ASSERT_EQ(h::WriteManyCas(many, 302), "");
  h::RunResult r = ConfigTest("  SSLCACertificateFile " + many + "\n  CertGate require\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find(":warn] "), std::string::npos) << r.err;
  const size_t at = r.err.find(
      "CG00009: certgate: check=ca_names_size the server sends 302 CA "
      "names, ");
  ASSERT_NE(at, std::string::npos) << r.err;
  const long bytes = std::stol(r.err.substr(r.err.find("names, ", at) + 7));
  EXPECT_GT(bytes, 50000) << r.err;  // about 185 DER bytes each
  EXPECT_NE(r.err.find("SSLCADNRequestFile"), std::string::npos) << r.err;
  // SSLCADNRequestFile decides what is sent.
  r = ConfigTest("  SSLCACertificateFile " + many + "\n  SSLCADNRequestFile " + SharedPki().path +
                 "/ca/trust.pem\n  CertGate require\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("check=ca_names_size"), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, SelfCheckTrustedIssuerNoAnchorReachesFailsTheTest) {
  const std::string issuers = SharedPki().path + "/ca/untrusted-root.pem";
  h::RunResult r = ConfigTest("  CertGate require\n  CertGateTrustedIssuers " + issuers + "\n");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find(":emerg] "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("CG00009: certgate: check=issuer_not_trusted the CA 'CN=Untrusted Root "
                       "CA,O=Untrusted' in CertGateTrustedIssuers \"" +
                       issuers + "\""),
            std::string::npos)
      << r.err;
  // The issuing CA under a trusted root passes.
  r = ConfigTest("  CertGate require\n  CertGateTrustedIssuers " + SharedPki().path +
                 "/ca/intermediate.pem\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err.find("check="), std::string::npos) << r.err;
}

TEST_F(ApacheConfig, SelfCheckHardFailWithoutRevocationSourceWarns) {
  h::TempDir files("certgate-selfcheck");
  h::RunResult r = ConfigTest(
      "  CertGate require\n  CertGateRevocation hard_fail\n"
      "  CertGateCache " +
      files.path() + "/cache\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.err.find("CG00009: certgate: check=revocation_no_source "
                       "CertGateRevocation hard_fail, but no CertGateCrl has a CRL of the CA "
                       "'CN=Example Root CA,O=Example'"),
            std::string::npos)
      << r.err;
}

}  // namespace
}  // namespace certgate_apache_test
