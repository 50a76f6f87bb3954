// The fetcher's LDAP side against a real slapd (issue 11 §2), for every user of
// RevocationFetcher: CRLs and, through the same path, the CA certificates the
// AIA issuer fetch asks for (cACertificate;binary) and ARLs. One test: the
// directory is started once, on a fixed port (18393), from the demo PKI's
// adcs/ldap/directory.ldif, in a throwaway directory.
#include <certgate/cert_facts.h>
#include <certgate/ossl_ptr.h>
#include <gmock/gmock.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <future>
#include <sstream>
#include <thread>

#include "demo_pki.h"
#include "revocation/fetcher.h"
#include "revocation/ldap_url.h"

extern char **environ;

namespace certgate {
namespace {

using ::testing::HasSubstr;

constexpr int kPort = 18393;

std::string ReadAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream out;
  out << in.rdbuf();
  return out.str();
}

int Spawn(const std::vector<std::string> &argv, pid_t *pid) {
  std::vector<char *> args;
  for (const std::string &arg : argv) args.push_back(const_cast<char *>(arg.c_str()));
  args.push_back(nullptr);
  return posix_spawn(pid, args[0], nullptr, nullptr, args.data(), environ);
}

int RunToEnd(const std::vector<std::string> &argv) {
  pid_t pid = 0;
  if (Spawn(argv, &pid) != 0) return -1;
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The value of `name` in adcs/ldap/urls.txt ("crl ldap:///...").
std::string UrlNamed(const std::string &urls, const std::string &name) {
  std::istringstream in(urls);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + " ", 0) == 0) return line.substr(name.size() + 1);
  }
  return "";
}

TEST(LdapFetchTest, AttributesFromSlapd) {
  char tmpl[] = "/tmp/certgate-ldap-unit-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::string error;
  ASSERT_TRUE(pki::WriteDemoPki(dir + "/pki", time(nullptr), &error)) << error;
  ASSERT_EQ(RunToEnd({"/bin/mkdir", "-p", dir + "/db"}), 0);
  {
    std::ofstream conf(dir + "/slapd.conf");
    conf << "include /etc/ldap/schema/core.schema\nmodulepath /usr/lib/ldap\n"
            "moduleload back_mdb\ndatabase mdb\nsuffix \"DC=corp,DC=example,DC=com\"\n"
            "directory "
         << dir << "/db\naccess to * by * read\n";
  }
  ASSERT_EQ(RunToEnd({"/usr/sbin/slapadd", "-q", "-f", dir + "/slapd.conf", "-l",
                      dir + "/pki/adcs/ldap/directory.ldif"}),
            0);
  pid_t slapd = 0;
  ASSERT_EQ(Spawn({"/usr/sbin/slapd", "-f", dir + "/slapd.conf", "-h",
                   "ldap://127.0.0.1:" + std::to_string(kPort) + "/", "-d", "0"},
                  &slapd),
            0);
  const std::string urls = ReadAll(dir + "/pki/adcs/ldap/urls.txt");
  FetchLimits limits;
  limits.timeout = std::chrono::milliseconds(3000);
  limits.ldap_servers = {"127.0.0.1:" + std::to_string(kPort)};
  auto fetch = [&](const std::string &url, const std::string &attribute) {
    HttpRequest request;
    request.url = url;
    request.limits = limits;
    request.ldap_attribute = attribute;
    return HttpFetch(request);
  };

  // The AIA entry: its cACertificate (the URL names the attribute).
  HttpResponse response;
  for (int i = 0; i < 100; ++i) {  // until slapd listens
    response = fetch(UrlNamed(urls, "aia"), "");
    if (response.completed) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_TRUE(response.completed) << response.error;
  EXPECT_EQ(response.status, 200);
  const std::string ca_pem = ReadAll(dir + "/pki/adcs/ldap/issuing.pem");
  const unsigned char *der = reinterpret_cast<const unsigned char *>(response.body.data());
  ossl::UniquePtr<X509> ca(d2i_X509(nullptr, &der, static_cast<long>(response.body.size())));
  ASSERT_TRUE(ca) << "not a DER certificate";
  EXPECT_EQ(NameToString(X509_get_subject_name(ca.get())), "CN=Corp Directory CA 3,O=Corp");

  // A URL naming no attribute: the caller's (an ARL here, a CA certificate for
  // AIA), equal to the file the PKI wrote.
  const std::string root_crl = ReadAll(dir + "/pki/adcs/ldap/crl/root.crl");
  std::string bare = UrlNamed(urls, "root");
  bare = bare.substr(0, bare.find('?'));
  response = fetch(bare, kLdapArlAttribute);
  ASSERT_TRUE(response.completed) << response.error;
  EXPECT_EQ(response.body, root_crl);
  response = fetch(bare, "");  // default: certificateRevocationList;binary
  ASSERT_TRUE(response.completed) << response.error;
  EXPECT_EQ(response.body, root_crl);
  response = fetch(bare, kLdapCaCertAttribute);  // the CDP entry has none
  EXPECT_FALSE(response.completed);
  EXPECT_THAT(response.error, HasSubstr("the entry has no cACertificate;binary value"));

  // Base and delta from one entry, by attribute.
  response = fetch(UrlNamed(urls, "delta"), "");
  ASSERT_TRUE(response.completed) << response.error;
  EXPECT_EQ(response.body, ReadAll(dir + "/pki/adcs/ldap/crl/delta.crl"));

  // The servers' path: the same search through RevocationFetcher's multi loop.
  auto fetch_async = [&](RevocationFetcher &fetcher, const std::string &url) {
    HttpRequest request;
    request.url = url;
    request.limits = limits;
    std::promise<HttpResponse> reply;
    std::future<HttpResponse> replied = reply.get_future();
    fetcher.Submit(request, [&reply](HttpResponse r) { reply.set_value(std::move(r)); });
    return replied.get();
  };
  RevocationFetcher fetcher;
  response = fetch_async(fetcher, UrlNamed(urls, "delta"));
  ASSERT_TRUE(response.completed) << response.error;
  EXPECT_EQ(response.body, ReadAll(dir + "/pki/adcs/ldap/crl/delta.crl"));

  // (How long an LDAP fetch takes is measured, not asserted: docs/benchmarks.md,
  // "LDAP fetches".)

  // fetch_max_size counts the value's bytes.
  limits.max_size = 64;
  response = fetch(UrlNamed(urls, "crl"), "");
  EXPECT_FALSE(response.completed);
  EXPECT_THAT(response.error, HasSubstr("larger than certgate_fetch_max_size (64 bytes)"));
  limits.max_size = uint64_t{32} << 20;

  // ldaps:// to a plain LDAP port: TLS is attempted, and fails.
  response = fetch("ldaps://127.0.0.1:" + std::to_string(kPort) + "/DC=corp,DC=example,DC=com", "");
  EXPECT_FALSE(response.completed);
  EXPECT_THAT(response.error, HasSubstr("(LDAP server 127.0.0.1:" + std::to_string(kPort)));
  EXPECT_THAT(response.error, HasSubstr("SSL"));

  // Without certgate_ldap_server nothing is asked.
  limits.ldap_servers.clear();
  response = fetch(UrlNamed(urls, "aia"), "");
  EXPECT_FALSE(response.completed);
  EXPECT_THAT(response.error, HasSubstr("no LDAP server configured"));

  kill(slapd, SIGTERM);
  waitpid(slapd, nullptr, 0);
  RunToEnd({"/bin/rm", "-rf", dir});
}

}  // namespace
}  // namespace certgate
