// mod_certgate in apache2 (see apache_test_fixture.h). ApacheReasons: every reason that arises
// without revocation, per MPM.
#include <gtest/gtest.h>
#include <harness.h>
#include <unistd.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apache_test_fixture.h"

namespace certgate_apache_test {
namespace {

// ---- ApacheReasons: every reason that arises without revocation ----

struct ReasonCase {
  const char *cert;  // client name in the demo PKI; "" = no certificate
  const char *path;
  const char *reason;
  const char *substatus;
  Client client;
};

std::ostream &operator<<(std::ostream &os, const ReasonCase &c) {
  return os << (*c.cert ? c.cert : "none") << "@" << c.path;
}

const ReasonCase kReasonCases[] = {
    {"", "/", "no_cert", "403.7", Client::kCurl},
    {"self_signed", "/", "untrusted_issuer", "403.16", Client::kCurl},
    {"untrusted", "/", "untrusted_issuer", "403.16", Client::kCurl},
    {"chain_incomplete", "/", "chain_incomplete", "403.16", Client::kCurl},
    {"other_issuer", "/issuers/", "issuer_not_allowed", "403.16", Client::kCurl},
    {"expired", "/", "expired", "403.17", Client::kCurl},
    {"not_yet_valid", "/", "not_yet_valid", "403.17", Client::kCurl},
    {"bad_signature", "/", "bad_signature", "403.16", Client::kCurl},
    // curl refuses to load a certificate with an invalid extension.
    {"malformed", "/", "malformed", "403.16", Client::kSClient},
    {"unknown_critical", "/", "malformed", "403.16", Client::kCurl},
    {"invalid_ca", "/", "invalid_ca", "403.16", Client::kCurl},
    {"wrong_eku", "/", "wrong_purpose", "403.16", Client::kCurl},
    {"no_eku", "/", "wrong_purpose", "403.16", Client::kCurl},
    {"key_usage", "/", "key_usage", "403.16", Client::kCurl},
    {"weak_key", "/", "weak_key", "403.16", Client::kCurlWeak},
    {"weak_signature", "/", "weak_signature", "403.16", Client::kCurlWeak},
    {"chain_too_long", "/", "chain_too_long", "403.16", Client::kCurl},
    {"ou_missing", "/identity/", "identity_mismatch", "403.12", Client::kCurl},
    {"good", "/pinned/", "pin_mismatch", "403.12", Client::kCurl},
};

class ApacheReasons : public ::testing::TestWithParam<std::tuple<std::string, ReasonCase>> {
 protected:
  static std::map<std::string, std::unique_ptr<Apache>> &Servers() {
    static std::map<std::string, std::unique_ptr<Apache>> servers;
    return servers;
  }
  static void TearDownTestSuite() { Servers().clear(); }

  static std::string Vhosts(int port) {
    const Pki &pki = SharedPki();
    auto it = pki.sha256.find("rsa_good");
    const std::string pin = it != pki.sha256.end() ? it->second : "sha256:00";
    return VirtualHost(port, "optional_no_ca",
                       "  CertGate require\n"
                       "  <Location /issuers>\n    CertGateTrustedIssuers " +
                           pki.path +
                           "/ca/intermediate.pem\n  </Location>\n"
                           "  <Location /identity>\n    CertGateSubject OU=People\n  </Location>\n"
                           "  <Location /pinned>\n    CertGatePin " +
                           pin + "\n  </Location>\n");
  }

  // The server for this MPM, started on first use.
  Apache *Server(const std::string &mpm, int port) {
    auto &slot = Servers()[mpm];
    if (!slot) {
      slot = std::make_unique<Apache>(mpm);
      start_error_[mpm] = slot->Start(Vhosts(port), port);
    }
    return start_error_[mpm].empty() ? slot.get() : nullptr;
  }
  static inline std::map<std::string, std::string> start_error_;
};

TEST_P(ApacheReasons, RefusedWithStatusBodyVariableAndLogLine) {
  const std::string mpm = std::get<0>(GetParam());
  const ReasonCase &c = std::get<1>(GetParam());
  const int port = BasePort(mpm, 18500, 18520);
  Apache *server = Server(mpm, port);
  ASSERT_NE(server, nullptr) << start_error_[mpm];

  h::LogTail errors(server->error_log());
  h::LogTail access(server->access_log());
  const std::string tag = std::string("case=") + (*c.cert ? c.cert : "none");
  const Reply reply = Get(port, std::string(c.path) + "?" + tag, c.cert, c.client);

  EXPECT_EQ(reply.status, 403) << reply.raw;
  EXPECT_EQ(reply.body, TextBody(c.reason, c.substatus));
  EXPECT_EQ(reply.content_type.rfind("text/plain", 0), 0u) << reply.content_type;

  bool found = false;
  const std::string needle = " \"GET " + std::string(c.path) + "?" + tag +
                             " HTTP/1.1\" 403 reason=" + c.reason + " substatus=" + c.substatus +
                             " verdict=deny";
  const std::string logged = access.WaitFor(needle, 5000, &found);
  EXPECT_TRUE(found) << "access log lacks [" << needle << "]:\n" << logged;

  const std::string line =
      std::string("certgate: verdict=deny reason=") + c.reason + " substatus=" + c.substatus;
  const std::string error_text = errors.WaitFor(line, 5000, &found);
  EXPECT_TRUE(found) << "error log lacks [" << line << "]:\n" << error_text;
  EXPECT_EQ(h::GrepLines(error_text, {"[certgate:error]", line}).size(), 1u) << error_text;
}

INSTANTIATE_TEST_SUITE_P(
    Mpm, ApacheReasons,
    ::testing::Combine(::testing::Values("event", "prefork"), ::testing::ValuesIn(kReasonCases)),
    [](const auto &info) {
      std::string name = std::get<0>(info.param) + "_" +
                         (*std::get<1>(info.param).cert ? std::get<1>(info.param).cert : "none") +
                         "_" + std::get<1>(info.param).reason;
      return name;
    });

}  // namespace
}  // namespace certgate_apache_test
