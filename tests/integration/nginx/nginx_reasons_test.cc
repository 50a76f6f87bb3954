// NginxReasons: every reason that can arise without revocation, through the
// main server (nginx_test_fixture.h): status, body, $certgate_reason in the
// access log, the error-log line.
#include <gtest/gtest.h>

#include <ostream>
#include <string>

#include "nginx_test_fixture.h"

namespace certgate::nginx_test {
namespace {

class NginxReasons : public NginxTest, public ::testing::WithParamInterface<ReasonCase> {};

TEST_P(NginxReasons, StatusBodyAccessLogAndErrorLog) {
  const ReasonCase &c = GetParam();
  const std::string uri = std::string(c.location) + "?case=" + c.name;
  Response r = c.s_client ? nginx().SClientRequest(kMainPort, c.client, uri)
                          : nginx().Curl(kMainPort, uri, c.client);
  ASSERT_EQ(r.curl_exit, 0) << r.err;
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(r.body, std::string(c.substatus) + " client certificate refused: " + c.reason + "\n");
  EXPECT_EQ(r.body.find("hint"), std::string::npos) << "no detail by default";
  EXPECT_EQ(r.content_type.rfind("text/plain", 0), 0u) << r.content_type;

  const std::string access = AccessLine(uri);
  EXPECT_NE(access.find(std::string("status=403 verdict=deny reason=") + c.reason +
                        " substatus=" + c.substatus),
            std::string::npos)
      << access;

  const std::string line =
      h::WaitForLine(nginx().error_log(), {std::string("request: \"GET ") + uri + " HTTP/"});
  EXPECT_NE(line.find(std::string("[error]")), std::string::npos) << line;
  EXPECT_NE(line.find(std::string("certgate: verdict=deny reason=") + c.reason +
                      " substatus=" + c.substatus),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("hint=\""), std::string::npos) << line;
}

INSTANTIATE_TEST_SUITE_P(Every, NginxReasons, ::testing::ValuesIn(kReasonCases),
                         [](const ::testing::TestParamInfo<ReasonCase> &info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace certgate::nginx_test
