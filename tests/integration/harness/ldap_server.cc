// certgate integration-test harness (harness.h): a throwaway slapd holding the
// AD CS-shaped directory of the demo PKI (adcs/ldap/directory.ldif).
#include <signal.h>

#include "harness.h"

namespace certgate::harness {

std::string Slapd::Start(const std::string &workdir, const std::string &ldif, int port) {
  const std::string slapd = FindProgram("slapd"), slapadd = FindProgram("slapadd");
  if (slapd.empty() || slapadd.empty()) return "slapd is missing (apt-get install slapd)";
  port_ = port;
  if (!MakeDirs(workdir + "/db", 0700)) return "cannot create " + workdir + "/db";
  const std::string conf = workdir + "/slapd.conf";
  // slapd.conf (-f) rather than cn=config: one file, nothing in /etc touched.
  const std::string text =
      "include /etc/ldap/schema/core.schema\n"
      "pidfile " +
      workdir +
      "/slapd.pid\n"
      "argsfile " +
      workdir +
      "/slapd.args\n"
      "modulepath /usr/lib/ldap\n"
      "moduleload back_mdb\n"
      "database mdb\n"
      "maxsize 10485760\n"
      "suffix \"DC=corp,DC=example,DC=com\"\n"
      "rootdn \"CN=admin,DC=corp,DC=example,DC=com\"\n"
      "directory " +
      workdir +
      "/db\n"
      "access to * by * read\n";
  if (!WriteFile(conf, text)) return "cannot write " + conf;
  RunResult added = Run({slapadd, "-f", conf, "-l", ldif});
  if (added.exit_code != 0) return "slapadd failed:\n" + added.out + added.err;
  // -d 0: in the foreground (a child this harness owns), no debug output.
  if (!process_.Start(
          {slapd, "-f", conf, "-h", "ldap://127.0.0.1:" + std::to_string(port) + "/", "-d", "0"},
          workdir + "/slapd.log", workdir + "/slapd.log")) {
    return "cannot start slapd: " + process_.error();
  }
  if (!WaitForPort(port, 10000)) {
    return "slapd does not listen on " + std::to_string(port) + ":\n" +
           ReadFile(workdir + "/slapd.log");
  }
  return "";
}

void Slapd::Stop() {
  if (process_.pid() > 0 && process_.Running()) process_.Stop(SIGTERM, 5000);
}

}  // namespace certgate::harness
