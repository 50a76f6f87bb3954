// certgate selfcheck: the servers' startup self-checks (self_checks.h), offline.
#include <certgate/policy.h>
#include <certgate/self_checks.h>
#include <pwd.h>

#include <iostream>
#include <string>
#include <vector>

#include "commands.h"

namespace certgate::cli {

int RunSelfCheck(const std::vector<std::string> &args) {
  std::string policy_file, ca_file, ca_path, names_file, names_path, user;
  bool verify_client_on = false;
  if (args.size() == 1 && args[0] == "--markdown") {
    // The table of docs/self-checks.md (tests/cli checks it is current).
    std::cout << "| check | fatal | found when |\n|---|---|---|\n";
    for (const SelfCheck &c : SelfChecks()) {
      std::cout << "| `" << c.name << "` | " << (c.fatal ? "yes" : "no") << " | " << c.when
                << " |\n";
    }
    return kExitAllow;
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &a = args[i];
    auto value = [&](std::string *out) {
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    bool ok = true;
    if (a == "--policy")
      ok = value(&policy_file);
    else if (a == "--ca")
      ok = value(&ca_file);
    else if (a == "--ca-path")
      ok = value(&ca_path);
    else if (a == "--ca-names")
      ok = value(&names_file);
    else if (a == "--ca-names-path")
      ok = value(&names_path);
    else if (a == "--user")
      ok = value(&user);
    else if (a == "--verify-client-on")
      verify_client_on = true;
    else
      ok = false;
    if (!ok) {
      std::cerr << "certgate selfcheck: bad argument \"" << a << "\"\n"
                << "usage: certgate selfcheck --policy FILE --ca FILE [--ca-path DIR]\n"
                << "                          [--ca-names FILE] [--ca-names-path DIR]\n"
                << "                          [--user NAME] [--verify-client-on]\n";
      return kExitUsage;
    }
  }
  if (policy_file.empty() || (ca_file.empty() && ca_path.empty())) {
    std::cerr << "certgate selfcheck: --policy and --ca (or --ca-path) are required\n";
    return kExitUsage;
  }
  Policy policy;
  if (Status loaded = policy.LoadFile(policy_file); !loaded.ok()) {
    std::cerr << "certgate selfcheck: " << loaded.message() << "\n";
    return kExitUsage;
  }
  ServerTrust trust = TrustFromFiles(ca_file, ca_path, names_file, names_path);
  if (trust.anchors.empty()) {
    std::cerr << "certgate selfcheck: no certificate in --ca/--ca-path\n";
    return kExitUsage;
  }
  if (!user.empty()) {
    struct passwd *pw = getpwnam(user.c_str());
    if (pw == nullptr) {
      std::cerr << "certgate selfcheck: no user \"" << user << "\"\n";
      return kExitUsage;
    }
    trust.worker_uid = static_cast<long>(pw->pw_uid);
    trust.worker_gid = static_cast<long>(pw->pw_gid);
  }
  trust.verify_client_on = verify_client_on;
  bool fatal = false;
  const std::vector<SelfCheckFinding> findings = RunSelfChecks(policy, trust);
  for (const SelfCheckFinding &f : findings) {
    std::cout << (f.fatal ? "fatal: " : "warning: ") << f.message << "\n";
    fatal = fatal || f.fatal;
  }
  std::cout << findings.size() << " finding" << (findings.size() == 1 ? "" : "s") << " ("
            << trust.anchors.size() << " trust anchors, " << trust.ca_names_der.size()
            << " CA names)\n";
  return fatal ? kExitDeny : kExitAllow;
}

}  // namespace certgate::cli
