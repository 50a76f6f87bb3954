#include <certgate/policy.h>

#include <iostream>
#include <string>
#include <vector>

#include "commands.h"

namespace {

const std::string kUsage =
    "usage: certgate check [--policy FILE] [--set KEY=VALUE]... --ca FILE [--chain FILE]\n"
    "                      [--now UNIX_SECONDS] [--cache DIR] [--fetch] [--fetch-issuers]\n"
    "                      [--json] [--key KEY] CERT\n"
    "       certgate check --key KEY CERT\n"
    "       certgate probe URL [--cert C --key K [--chain F]] [--servername N]\n"
    "                      [--tls1.2|--tls1.3] [--ca F] [--json]\n"
    "       certgate cache list|show TEXT|fetch --ca FILE CERT|purge [--cache DIR]\n"
    "       certgate selfcheck --policy F --ca F [--ca-names F] [--user NAME]\n"
    "                      [--verify-client-on]\n"
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
    "          every CDP, freshestCRL, AIA and OCSP URL of each certificate and prints\n"
    "          each with its result and time (certutil -urlfetch); --json for scripts.\n"
    "          Under certgate_fetch_issuers on (or --fetch-issuers, which needs\n"
    "          certgate_fetch_allow too) a missing intermediate is fetched from its AIA\n"
    "          caIssuers URL into the cache, as the servers do.\n"
    "          --key KEY: also say whether KEY is the certificate's private key (RSA, EC,\n"
    "          Ed25519); exit 4 when it is not. Without --ca only the key is checked.\n"
    "  probe   connect to an HTTPS server as a client: its chain, TLS version, cipher and\n"
    "          ALPN; whether it asks for a client certificate, its CA names (count, bytes,\n"
    "          each DN; a warning above 16 KiB), signature algorithms and whether --cert's\n"
    "          chain matches a name; TLS 1.0-1.3 each tried alone; the certificate and CA\n"
    "          names with, without and with a wrong SNI name; the key against --cert; then\n"
    "          GET URL with the certificate: status and certgate's reason (from the\n"
    "          X-Certgate-Reason header of certgate_reject_header on, or the body).\n"
    "          Exit 0: allowed (status < 400), 2: refused, 3: handshake failed or no\n"
    "          answer, 4: --key is not --cert's key, 1: usage error. --json for scripts.\n"
    "  cache   list or show what the revocation cache holds, fetch a chain's URLs into it, purge "
    "it.\n"
    "  selfcheck\n"
    "          the self-checks nginx -t, apache2 -t and their start run (check=<name>\n"
    "          lines: CA names over 16 KiB, expiring CAs, trusted_issuers no anchor\n"
    "          reaches, ...). Exit 0: no fatal finding, 2: a fatal one, 1: usage error.\n"
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
  if (command == "probe") return certgate::cli::RunProbe(args);
  if (command == "selfcheck") return certgate::cli::RunSelfCheck(args);
  std::cerr << "certgate: unknown command \"" << command << "\"\n" << kUsage;
  return certgate::cli::kExitUsage;
}
