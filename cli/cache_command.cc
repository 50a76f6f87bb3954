// certgate cache list|purge: what the shared revocation cache holds.
#include <certgate/revocation.h>
#include <certgate/revocation_registry.h>

#include <iostream>

#include "commands.h"

namespace certgate::cli {

int RunCache(const std::vector<std::string> &args) {
  std::string action;
  std::string dir = kDefaultCacheDir;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--cache" && i + 1 < args.size()) {
      dir = args[++i];
    } else if (action.empty() && (args[i] == "list" || args[i] == "purge")) {
      action = args[i];
    } else {
      std::cerr << "certgate cache: unexpected \"" << args[i] << "\"; usage: certgate cache "
                << "list|purge [--cache DIR]\n";
      return kExitUsage;
    }
  }
  if (action.empty()) {
    std::cerr << "certgate cache: say list or purge\n";
    return kExitUsage;
  }
  auto checker = RevocationChecker::Open(dir, SystemClock::Instance());
  if (!checker.ok()) {
    std::cerr << "certgate cache: " << checker.status().message() << "\n";
    return kExitUsage;
  }
  if (action == "purge") {
    if (Status purged = checker.value()->Purge(); !purged.ok()) {
      std::cerr << "certgate cache: " << purged.message() << "\n";
      return kExitUsage;
    }
    std::cout << "purged " << dir << "\n";
    return kExitAllow;
  }
  const std::vector<std::string> lines = checker.value()->List();
  if (lines.empty()) std::cout << dir << ": empty\n";
  for (const std::string &line : lines) std::cout << line << "\n";
  return kExitAllow;
}

}  // namespace certgate::cli
