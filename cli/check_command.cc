// certgate check: the server's verdict, offline.
#include <certgate/cert_facts.h>
#include <certgate/cert_file.h>
#include <certgate/evaluator.h>
#include <certgate/log_format.h>
#include <certgate/policy.h>
#include <certgate/reason.h>
#include <certgate/revocation.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>

#include "commands.h"
#include "json.h"
#include "key_check.h"

namespace certgate::cli {
namespace {

struct CheckOptions {
  Policy policy;
  std::string ca_file;
  std::string chain_file;
  std::string cert_file;
  std::string key_file;  // --key: does this private key belong to the certificate?
  int64_t now = 0;
  bool fetch = false;  // --fetch: fetch every CDP/AIA URL now, certutil -urlfetch style
  bool json = false;   // --json: one JSON object (chain, fetches, verdict) for scripts
};

Status ParseArgs(const std::vector<std::string> &args, CheckOptions *options) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &arg = args[i];
    auto value = [&]() -> Result<std::string> {
      if (i + 1 >= args.size()) return Status::Error(arg + " needs a value");
      return args[++i];
    };
    if (arg == "--policy") {
      auto path = value();
      if (!path.ok()) return path.status();
      Status status = options->policy.LoadFile(path.value());
      if (!status.ok()) return status;
    } else if (arg == "--set") {
      auto setting = value();
      if (!setting.ok()) return setting.status();
      const std::string &text = setting.value();
      const size_t eq = text.find('=');
      if (eq == std::string::npos)
        return Status::Error("--set wants KEY=VALUE, got \"" + text + "\"");
      std::vector<std::string> values;
      std::istringstream words(text.substr(eq + 1));
      for (std::string word; words >> word;) values.push_back(word);
      Status status = options->policy.Set(text.substr(0, eq), values);
      if (!status.ok()) return status;
    } else if (arg == "--fetch") {
      options->fetch = true;
    } else if (arg == "--fetch-issuers") {
      // As certgate_fetch_issuers on: a missing intermediate is fetched from its AIA URL.
      if (Status status = options->policy.Set("fetch_issuers", {"on"}); !status.ok()) return status;
    } else if (arg == "--json") {
      options->json = true;
    } else if (arg == "--cache") {
      auto dir = value();
      if (!dir.ok()) return dir.status();
      Status status = options->policy.Set("cache", {dir.value()});
      if (!status.ok()) return status;
    } else if (arg == "--key") {
      auto path = value();
      if (!path.ok()) return path.status();
      options->key_file = path.value();
    } else if (arg == "--ca" || arg == "--chain" || arg == "--now") {
      auto v = value();
      if (!v.ok()) return v.status();
      if (arg == "--ca") options->ca_file = v.value();
      if (arg == "--chain") options->chain_file = v.value();
      if (arg == "--now") {
        char *end = nullptr;
        options->now = std::strtoll(v.value().c_str(), &end, 10);
        if (end == v.value().c_str() || *end != '\0') {
          return Status::Error("--now wants Unix seconds, got \"" + v.value() + "\"");
        }
      }
    } else if (!arg.empty() && arg[0] == '-') {
      return Status::Error("unknown option \"" + arg + "\"");
    } else if (options->cert_file.empty()) {
      options->cert_file = arg;
    } else {
      return Status::Error("more than one certificate given (\"" + arg + "\")");
    }
  }
  if (options->cert_file.empty()) return Status::Error("no certificate to check");
  // --key alone checks the key only; a verdict needs the trust anchors.
  if (options->ca_file.empty() && options->key_file.empty()) {
    return Status::Error("--ca FILE (the trusted CAs) is required");
  }
  if (options->fetch && !options->policy.revocation) {
    // Fetching is for judging revocation: without a mode, judge as a server would
    // that insists on knowing.
    if (Status status = options->policy.Set("revocation", {"hard_fail"}); !status.ok()) {
      return status;
    }
  }
  if (Status combined = options->policy.CheckCombination(); !combined.ok()) return combined;
  if (!options->policy.mode) return options->policy.Set("certgate", {"require"});
  return Status::Ok();
}

// --fetch, as certutil -verify -urlfetch prints it: per certificate, every
// URL with its result and time.
void PrintUrlFetches(std::ostream &out, const std::vector<UrlFetch> &fetches) {
  out << "URL fetch (every CDP, freshestCRL, AIA caIssuers and OCSP URL of the chain):\n";
  int depth = -1;
  for (const UrlFetch &fetch : fetches) {
    if (fetch.depth != depth) {
      depth = fetch.depth;
      out << "  [" << depth << "] " << fetch.subject << "\n";
    }
    std::string kind = UrlFetchKindName(fetch.kind);
    kind.resize(std::max<size_t>(kind.size(), 14), ' ');
    if (fetch.outcome == UrlFetch::Outcome::kNoUrl) {
      out << "      " << kind << " (none)\n";
      continue;
    }
    out << "      " << kind << " " << fetch.url << "\n"
        << "      " << std::string(14, ' ') << " " << UrlFetchResultText(fetch) << "\n";
  }
  out << "\n";
}

std::string UrlFetchesJson(const std::vector<UrlFetch> &fetches) {
  std::vector<std::string> objects;
  for (const UrlFetch &fetch : fetches) {
    JsonObject object;
    object.Int("depth", fetch.depth)
        .Str("subject", fetch.subject)
        .Str("kind", UrlFetchKindName(fetch.kind))
        .Str("url", fetch.url)
        .Str("result", UrlFetchOutcomeName(fetch.outcome))
        .Str("detail", fetch.why);
    if (fetch.elapsed_ms >= 0) object.Int("elapsed_ms", fetch.elapsed_ms);
    if (fetch.http_status != 0) object.Int("http_status", fetch.http_status);
    if (!fetch.crl_number.empty()) object.Str("crl_number", fetch.crl_number);
    if (!fetch.delta_base.empty()) object.Str("delta_base", fetch.delta_base);
    if (fetch.this_update != 0) object.Str("this_update", FormatTime(fetch.this_update));
    if (fetch.next_update != 0) object.Str("next_update", FormatTime(fetch.next_update));
    if (!fetch.ocsp_status.empty()) object.Str("ocsp_status", fetch.ocsp_status);
    if (!fetch.fetched_issuer.empty()) object.Str("fetched_issuer", fetch.fetched_issuer);
    objects.push_back(object.str());
  }
  return JsonArray(objects);
}

// The server's revocation lookup against the shared cache (or --cache), after
// fetching every URL of the chain with --fetch (printed to `out`, kept in
// *fetches). False on a cache that cannot be opened (a usage error here: the
// CLI names the path to use instead).
bool CheckRevocation(const CheckOptions &options, const ChainEvidence &evidence, X509_STORE *trust,
                     const Clock &clock, std::ostream &out, std::vector<UrlFetch> *fetches,
                     Decision *decision) {
  auto checker = RevocationChecker::Open(options.policy.EffectiveCacheDir(), clock);
  if (!checker.ok()) {
    std::cerr << "certgate check: " << checker.status().message()
              << " (choose another with --cache DIR)\n";
    return false;
  }
  if (options.policy.crl) {
    if (Status loaded = checker.value()->Preload(*options.policy.crl, trust); !loaded.ok()) {
      std::cerr << "certgate check: " << loaded.message() << "\n";
      return false;
    }
  }
  if (options.fetch) {
    *fetches = checker.value()->FetchUrls(evidence, options.policy);
    PrintUrlFetches(out, *fetches);
  }
  auto answers = checker.value()->Check(evidence, options.policy);
  if (std::any_of(answers.begin(), answers.end(), [](const auto &a) { return a.fetch_pending; })) {
    checker.value()->WaitForFetches(evidence, options.policy.EffectiveRevocationWait());
    answers = checker.value()->Check(evidence, options.policy);
  }
  ApplyRevocation(options.policy, answers, decision);
  return true;
}

// certgate_fetch_issuers (or --fetch-issuers), as the servers do it: the
// chain completed with CA certificates fetched from AIA caIssuers URLs, each
// fetch waited for up to certgate_revocation_wait. Returns the chain to judge
// (the client's when nothing was fetched); `completion` says what happened.
std::optional<ChainEvidence> CompleteChain(const CheckOptions &options,
                                           const ChainEvidence &evidence, X509_STORE *trust,
                                           const Clock &clock, std::ostream &out,
                                           IssuerCompletion *completion) {
  auto checker = RevocationChecker::Open(options.policy.EffectiveCacheDir(), clock);
  if (!checker.ok()) {
    completion->detail = "certgate_fetch_issuers: " + checker.status().message();
    return std::nullopt;
  }
  for (int round = 0; round <= kMaxFetchedIssuerLevels; ++round) {
    *completion = checker.value()->CompleteChain(evidence, trust, options.policy, clock.Now());
    if (!completion->pending) break;
    const ChainEvidence &waiting = completion->rebuilt ? *completion->rebuilt : evidence;
    checker.value()->WaitForFetches(waiting, options.policy.EffectiveRevocationWait());
  }
  if (completion->rebuilt) {
    out << "Fetched issuers (certgate_fetch_issuers):\n";
    for (size_t depth = evidence.chain.size(); depth < completion->rebuilt->chain.size(); ++depth) {
      out << "  depth " << depth << ": "
          << NameToString(X509_get_subject_name(completion->rebuilt->chain[depth].get())) << "\n";
    }
    out << "\n";
  }
  return completion->rebuilt;
}

// Prints whether --key is the private key of the certificate (the leaf of
// CERT); kExitKeyMismatch when it is not.
int CheckKey(const CheckOptions &options, std::ostream &out) {
  auto certs = ReadCertificates(options.cert_file);
  if (!certs.ok()) {
    std::cerr << "certgate check: " << certs.status().message() << "\n";
    return kExitUsage;
  }
  auto key = ReadPrivateKey(options.key_file);
  if (!key.ok()) {
    std::cerr << "certgate check: --key: " << key.status().message() << "\n";
    return kExitUsage;
  }
  const KeyMatch match = MatchKey(certs.value().front().get(), key.value().get());
  if (match.matches) {
    out << "Key: matches: " << match.message << "\n";
    return kExitAllow;
  }
  out << "Key: MISMATCH: " << match.message << "\n";
  return kExitKeyMismatch;
}

}  // namespace

int RunCheck(const std::vector<std::string> &args) {
  CheckOptions options;
  if (Status status = ParseArgs(args, &options); !status.ok()) {
    std::cerr << "certgate check: " << status.message() << "\n";
    return kExitUsage;
  }

  // --json: the text report is not printed, its parts go into one object.
  std::ostringstream unused;
  std::ostream &out = options.json ? unused : std::cout;
  int key_exit = kExitAllow;
  if (!options.key_file.empty()) {
    key_exit = CheckKey(options, options.json && options.ca_file.empty() ? std::cout : out);
    if (key_exit == kExitUsage || options.ca_file.empty()) return key_exit;
    out << "\n";
  }

  ossl::UniquePtr<X509_STORE> trust(X509_STORE_new());
  auto anchors = ReadCertificates(options.ca_file);
  if (!anchors.ok()) {
    std::cerr << "certgate check: --ca: " << anchors.status().message() << "\n";
    return kExitUsage;
  }
  for (const auto &cert : anchors.value()) X509_STORE_add_cert(trust.get(), cert.get());

  ossl::UniquePtr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  auto add_untrusted = [&](const std::shared_ptr<X509> &cert) {
    X509_up_ref(cert.get());
    sk_X509_push(untrusted.get(), cert.get());
  };
  if (!options.chain_file.empty()) {
    auto chain = ReadCertificates(options.chain_file);
    if (!chain.ok()) {
      std::cerr << "certgate check: --chain: " << chain.status().message() << "\n";
      return kExitUsage;
    }
    for (const auto &cert : chain.value()) add_untrusted(cert);
  }

  const FixedClock clock(options.now != 0 ? options.now : SystemClock::Instance().Now());
  const LogFormat log_format = options.policy.EffectiveLogFormat();
  if (!std::ifstream(options.cert_file)) {
    std::cerr << "certgate check: cannot read \"" << options.cert_file
              << "\": " << std::strerror(errno) << "\n";
    return kExitUsage;
  }
  auto certs = ReadCertificates(options.cert_file);
  if (!certs.ok()) {
    // The client would have sent bytes that do not decode: that is a verdict.
    const Decision decision =
        Decision::Deny({CG_REASON_MALFORMED, 0, certs.status().message(), {}}, nullptr);
    PrintVerdict(std::cout, decision);
    std::cout << "\nLog line:\n" << FormatLogLine(decision, log_format) << "\n";
    return kExitDeny;
  }
  // A PEM bundle given as CERT: the leaf first, then what the client would send.
  for (size_t i = 1; i < certs.value().size(); ++i) add_untrusted(certs.value()[i]);

  ChainEvidence evidence =
      BuildChainEvidence(certs.value().front().get(), untrusted.get(), trust.get(), clock.Now());
  IssuerCompletion completion;
  if (options.policy.EffectiveFetchIssuers() && MissesIssuer(evidence)) {
    if (std::optional<ChainEvidence> rebuilt =
            CompleteChain(options, evidence, trust.get(), clock, out, &completion)) {
      evidence = std::move(*rebuilt);
    }
  }
  Decision decision = Evaluate(options.policy, &evidence, clock);
  if (options.policy.EffectiveFetchIssuers() && MissesIssuer(evidence))
    NoteIssuerFetch(completion, /*pending=*/false, &decision);
  PrintChain(out, evidence);
  out << "\n";
  std::vector<UrlFetch> fetches;
  if (options.policy.EffectiveRevocation() != RevocationMode::kOff &&
      decision.verdict() == CG_VERDICT_ALLOW) {
    if (!CheckRevocation(options, evidence, trust.get(), clock, out, &fetches, &decision))
      return kExitUsage;
  }
  if (options.json) {
    std::vector<std::string> chain;
    for (size_t depth = 0; depth < evidence.chain.size(); ++depth) {
      const CertFacts facts = ExtractFacts(evidence.chain[depth].get());
      chain.push_back(JsonObject()
                          .Int("depth", static_cast<long long>(depth))
                          .Str("subject", facts.subject)
                          .Str("issuer", facts.issuer)
                          .Str("serial", facts.serial)
                          .str());
    }
    JsonObject object;
    object.Raw("chain", JsonArray(chain))
        .Bool("anchored", evidence.anchored)
        .Str("verdict", decision.verdict() == CG_VERDICT_ALLOW ? "allow" : "deny")
        .Str("reason", std::string(Info(decision.reason()).code))
        .Str("detail", decision.detail())
        .Str("revocation", decision.revocation());
    if (options.fetch) object.Raw("fetch", UrlFetchesJson(fetches));
    if (!options.key_file.empty()) object.Bool("key_matches", key_exit == kExitAllow);
    object.Str("log_line", FormatLogLine(decision, log_format));
    std::cout << object.str() << "\n";
  } else {
    PrintVerdict(std::cout, decision);
    std::cout << "\nLog line:\n" << FormatLogLine(decision, log_format) << "\n";
  }
  // A key that is not the certificate's is the first thing to fix.
  if (key_exit != kExitAllow) return key_exit;
  return decision.verdict() == CG_VERDICT_ALLOW ? kExitAllow : kExitDeny;
}

}  // namespace certgate::cli
