#include <certgate/cert_facts.h>
#include <certgate/reason.h>
#include <openssl/x509_vfy.h>

#include "commands.h"

namespace certgate::cli {
namespace {

std::string Join(const std::vector<std::string> &items, const char *none) {
  if (items.empty()) return none;
  std::string out;
  for (const std::string &item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

}  // namespace

void PrintChain(std::ostream &out, const ChainEvidence &evidence) {
  out << "Chain (" << evidence.chain.size()
      << (evidence.chain.size() == 1 ? " certificate" : " certificates")
      << (evidence.anchored ? ", ends at a trust anchor" : ", no trust anchor reached") << "):\n";
  for (size_t depth = 0; depth < evidence.chain.size(); ++depth) {
    const CertFacts facts = ExtractFacts(evidence.chain[depth].get());
    out << "  [" << depth << "] " << facts.subject << "\n"
        << "      issuer:     " << facts.issuer << "\n"
        << "      serial:     " << facts.serial << "\n"
        << "      sha256:     " << facts.fingerprint.substr(7) << "\n"
        << "      valid:      " << FormatTime(facts.not_before) << " .. "
        << FormatTime(facts.not_after) << "\n"
        << "      key:        " << facts.key << ", signed with " << facts.signature << "\n"
        << "      CA:         " << (facts.is_ca ? "yes" : "no")
        << (facts.self_signed ? " (self-signed)" : "") << "\n"
        << "      EKU:        "
        << (facts.has_eku ? Join(facts.extended_key_usage, "(empty)") : "(no extension)") << "\n"
        << "      key usage:  "
        << (facts.has_key_usage ? Join(facts.key_usage, "(empty)") : "(no extension)") << "\n";
    if (!facts.sans.empty()) out << "      SAN:        " << Join(facts.sans, "") << "\n";
    out << "      CRL:        " << Join(facts.crl_urls, "(none)") << "\n"
        << "      OCSP:       " << Join(facts.ocsp_urls, "(none)") << "\n";
    if (!facts.ca_issuer_urls.empty()) {
      out << "      caIssuers:  " << Join(facts.ca_issuer_urls, "") << "\n";
    }
    for (const ChainError &error : evidence.errors) {
      if (error.depth == static_cast<int>(depth)) {
        out << "      OpenSSL:    error " << error.code << ": "
            << X509_verify_cert_error_string(error.code) << "\n";
      }
    }
  }
}

void PrintVerdict(std::ostream &out, const Decision &decision) {
  const ReasonInfo &info = Info(decision.reason());
  if (decision.verdict() == CG_VERDICT_ALLOW) {
    out << "Verdict: ALLOW\n";
    if (decision.expiry_warning()) out << "  warning: " << decision.detail() << "\n";
    if (decision.revocation() != "unchecked")
      out << "  revocation: " << decision.revocation() << "\n";
    return;
  }
  out << "Verdict: DENY " << info.code << " (" << info.substatus << ")";
  if (decision.depth() >= 0) out << " at depth " << decision.depth();
  out << "\n  meaning: " << info.meaning << "\n  detail:  " << decision.detail()
      << "\n  hint:    " << decision.hint() << "\n";
  if (decision.findings().size() > 1) {
    out << "Also found:\n";
    for (size_t i = 1; i < decision.findings().size(); ++i) {
      const Finding &finding = decision.findings()[i];
      out << "  - " << Info(finding.reason).code << ": " << finding.detail << "\n";
    }
  }
}

}  // namespace certgate::cli
