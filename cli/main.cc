#include <certgate/policy.h>

#include <iostream>
#include <string>
#include <vector>

#include "commands.h"

namespace {

const std::string kUsage =
    "usage: certgate check [--policy FILE] [--set KEY=VALUE]... --ca FILE [--chain FILE]\n"
    "                      [--now UNIX_SECONDS] [--cache DIR] [--fetch] CERT\n"
    "       certgate cache list|show TEXT|fetch --ca FILE CERT|purge [--cache DIR]\n"
    "       certgate reasons [--markdown|--man]\n"
    "       certgate directives [--markdown|--man]\n"
    "\n"
    "  check   judge a client certificate exactly as the nginx and Apache modules do,\n"
    "          print the chain, the verdict and the log line the server would write.\n"
    "          Exit 0: allowed, 2: refused, 1: usage or input error. With\n"
    "          certgate_revocation set, revocation is judged from the shared cache\n"
    "          (certgate_cache, " +
    std::string(certgate::kDefaultCacheDir) +
    ", or --cache); --fetch first fetches\n"
    "          every CRL and OCSP URL of the chain and prints each with its result.\n"
    "  cache   list or show what the revocation cache holds, fetch a chain's URLs into it, purge "
    "it.\n"
    "  reasons [--markdown|--man]\n"
    "          list every reason code with its sub-status, meaning and hint.\n"
    "  directives [--markdown|--man]\n"
    "          list every directive in its nginx and httpd spelling, with what it sets\n"
    "          (--man: the certgate(5) page). See certgate(1).\n";

}  // namespace

int main(int argc, char **argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::cout << kUsage;
    return args.empty() ? certgate::cli::kExitUsage : certgate::cli::kExitAllow;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "check") return certgate::cli::RunCheck(args);
  if (command == "reasons") return certgate::cli::RunReasons(args);
  if (command == "cache") return certgate::cli::RunCache(args);
  if (command == "directives") return certgate::cli::RunDirectives(args);
  std::cerr << "certgate: unknown command \"" << command << "\"\n" << kUsage;
  return certgate::cli::kExitUsage;
}
