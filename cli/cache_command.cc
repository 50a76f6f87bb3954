// certgate cache list|show|fetch|purge: what the shared revocation cache holds.
#include <certgate/cert_file.h>
#include <certgate/chain_evidence.h>
#include <certgate/revocation.h>

#include <iostream>

#include "commands.h"

namespace certgate::cli {
namespace {

constexpr const char *kUsage =
    "usage: certgate cache list [--cache DIR]\n"
    "       certgate cache show TEXT [--cache DIR]      entries whose line contains TEXT\n"
    "       certgate cache fetch --ca FILE CERT [--cache DIR]\n"
    "                                                   fetch every CRL/OCSP URL of CERT's chain\n"
    "       certgate cache purge [--cache DIR]\n";

int Usage(const std::string &problem) {
  std::cerr << "certgate cache: " << problem << "\n" << kUsage;
  return kExitUsage;
}

// Fetches every CDP/AIA URL of the chain of `cert_path` into the cache now.
int Fetch(RevocationChecker &checker, const std::string &ca_path, const std::string &cert_path) {
  auto anchors = ReadCertificates(ca_path);
  auto certs = ReadCertificates(cert_path);
  if (!anchors.ok() || !certs.ok()) {
    return Usage(!anchors.ok() ? anchors.status().message() : certs.status().message());
  }
  ossl::UniquePtr<X509_STORE> trust(X509_STORE_new());
  for (const auto &cert : anchors.value()) X509_STORE_add_cert(trust.get(), cert.get());
  ossl::UniquePtr<STACK_OF(X509)> sent(sk_X509_new_null());
  for (size_t i = 1; i < certs.value().size(); ++i) {
    X509_up_ref(certs.value()[i].get());
    sk_X509_push(sent.get(), certs.value()[i].get());
  }
  const ChainEvidence evidence = BuildChainEvidence(certs.value().front().get(), sent.get(),
                                                    trust.get(), SystemClock::Instance().Now());
  if (!evidence.anchored) {
    std::cerr << "certgate cache: the chain of " << cert_path
              << " does not reach a trust anchor in " << ca_path
              << "; certgate fetches nothing for such chains\n";
    return kExitDeny;
  }
  Policy policy;
  (void)policy.Set("revocation", {"hard_fail"});
  for (const std::string &line : checker.FetchNow(evidence, policy)) std::cout << line << "\n";
  return kExitAllow;
}

}  // namespace

int RunCache(const std::vector<std::string> &args) {
  std::string action, dir = kDefaultCacheDir, ca;
  std::vector<std::string> operands;
  for (size_t i = 0; i < args.size(); ++i) {
    if ((args[i] == "--cache" || args[i] == "--ca") && i + 1 < args.size()) {
      (args[i] == "--cache" ? dir : ca) = args[i + 1];
      ++i;
    } else if (action.empty()) {
      action = args[i];
    } else {
      operands.push_back(args[i]);
    }
  }
  const bool known = action == "list" || action == "purge" || action == "show" || action == "fetch";
  if (!known) return Usage(action.empty() ? "say what to do" : "unknown action \"" + action + "\"");
  if (action == "show" && operands.size() != 1) return Usage("show takes one TEXT");
  if ((action == "list" || action == "purge") && !operands.empty()) {
    return Usage("unexpected \"" + operands[0] + "\"");
  }
  if (action == "fetch" && (ca.empty() || operands.size() != 1)) {
    return Usage("fetch takes --ca FILE and one CERT");
  }
  auto checker = RevocationChecker::Open(dir, SystemClock::Instance());
  if (!checker.ok()) {
    std::cerr << "certgate cache: " << checker.status().message() << "\n";
    return kExitUsage;
  }
  if (action == "fetch") return Fetch(*checker.value(), ca, operands[0]);
  if (action == "purge") {
    if (Status purged = checker.value()->Purge(); !purged.ok()) {
      std::cerr << "certgate cache: " << purged.message() << "\n";
      return kExitUsage;
    }
    std::cout << "purged " << dir << "\n";
    return kExitAllow;
  }
  size_t shown = 0;
  for (const std::string &line : checker.value()->List()) {
    if (action == "show" && line.find(operands[0]) == std::string::npos) continue;
    std::cout << line << "\n";
    ++shown;
  }
  if (shown == 0) std::cout << dir << (action == "show" ? ": nothing matches\n" : ": empty\n");
  return kExitAllow;
}

}  // namespace certgate::cli
