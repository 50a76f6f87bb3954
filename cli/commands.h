// The certgate command-line tool: one function per subcommand.
#pragma once

#include <certgate/chain_evidence.h>
#include <certgate/decision.h>

#include <ostream>
#include <string>
#include <vector>

namespace certgate::cli {

// Exit codes shared by every subcommand.
constexpr int kExitAllow = 0;
constexpr int kExitUsage = 1;
constexpr int kExitDeny = 2;
constexpr int kExitHandshakeFailed = 3;  // certgate probe: no TLS connection or no answer
constexpr int kExitKeyMismatch = 4;      // the private key is not the certificate's

int RunCheck(const std::vector<std::string> &args);
int RunReasons(const std::vector<std::string> &args);
int RunCache(const std::vector<std::string> &args);
int RunDirectives(const std::vector<std::string> &args);
int RunProbe(const std::vector<std::string> &args);
// Exit 0: no fatal finding (warnings may be printed), 2: a fatal one, 1: usage.
int RunSelfCheck(const std::vector<std::string> &args);

// The certutil -verify view: every certificate of the chain with its facts.
void PrintChain(std::ostream &out, const ChainEvidence &evidence);
// Verdict, reason, detail, hint and every other finding.
void PrintVerdict(std::ostream &out, const Decision &decision);

}  // namespace certgate::cli
