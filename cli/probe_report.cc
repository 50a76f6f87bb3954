// certgate probe: the report, as text for people and as JSON for scripts.
#include <cstdio>
#include <sstream>

#include "json.h"
#include "probe.h"

namespace certgate::cli {
namespace {

std::string Join(const std::vector<std::string> &items, const char *separator = ", ") {
  std::string out;
  for (const auto &item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

std::string ChainJson(const std::vector<CertLine> &chain) {
  std::vector<std::string> out;
  for (const CertLine &cert : chain) {
    out.push_back(JsonObject()
                      .Str("subject", cert.subject)
                      .Str("issuer", cert.issuer)
                      .Str("not_after", cert.not_after)
                      .Str("fingerprint", cert.fingerprint)
                      .str());
  }
  return JsonArray(out);
}

std::string HandshakeJson(const Handshake &hs) {
  JsonObject object;
  object.Bool("ok", hs.ok);
  if (!hs.ok) return object.Str("error", hs.error).str();
  return object.Str("version", hs.version)
      .Str("cipher", hs.cipher)
      .Str("alpn", hs.alpn)
      .Raw("chain", ChainJson(hs.server_chain))
      .Bool("certificate_requested", hs.request.asked)
      .Int("ca_names", static_cast<long long>(hs.request.ca_names.size()))
      .Int("ca_names_bytes", static_cast<long long>(hs.request.ca_names_bytes))
      .str();
}

void PrintChainLines(std::ostream &out, const std::vector<CertLine> &chain) {
  for (size_t i = 0; i < chain.size(); ++i) {
    out << "    [" << i << "] " << chain[i].subject << "\n        issuer: " << chain[i].issuer
        << "\n        expires: " << chain[i].not_after << "\n";
  }
}

}  // namespace

void PrintProbeText(std::ostream &out, const ProbeReport &r) {
  const Handshake &server = r.server;
  out << "Server " << r.host << ":" << r.port
      << (r.servername.empty() ? " (no SNI)" : " (SNI \"" + r.servername + "\")") << "\n";
  if (!server.ok) {
    out << "  handshake FAILED: " << server.error << "\n";
  } else {
    out << "  TLS:     " << server.version << ", " << server.cipher << "\n"
        << "  ALPN:    " << (server.alpn.empty() ? "none selected" : server.alpn) << " (offered "
        << Join(r.offered_alpn) << ")\n"
        << "  chain (" << server.server_chain.size() << "):\n";
    PrintChainLines(out, server.server_chain);
    if (!server.server_verify.empty())
      out << "  verified against --ca: " << server.server_verify << "\n";
  }

  out << "\nCertificate request\n";
  const CertRequest &request = server.request;
  if (!server.ok && !request.asked) {
    out << "  unknown: the handshake failed before it\n";
  } else if (!request.asked) {
    out << "  the server does NOT ask for a client certificate (nginx: certgate or "
           "ssl_verify_client off here; httpd: no SSLVerifyClient / CertGate)\n";
  } else {
    out << "  the server asks for a client certificate\n"
        << "  acceptable CA names: " << request.ca_names.size() << " (" << request.ca_names_bytes
        << " bytes)\n";
    for (size_t i = 0; i < request.ca_names.size(); ++i) {
      out << "    [" << i + 1 << "] " << request.ca_names[i] << "\n";
    }
    out << "  signature algorithms: "
        << (request.sigalgs.empty() ? "(none)" : Join(request.sigalgs)) << "\n";
    if (r.have_client)
      out << "  client chain: " << (r.match.matches ? "" : "NO MATCH: ") << r.match.text << "\n";
  }
  for (const auto &warning : r.warnings) out << "  WARNING: " << warning << "\n";

  out << "\nVersions (each tried alone)\n";
  for (const VersionTry &v : r.versions) {
    out << "  " << v.name << ":" << std::string(9 - std::min<size_t>(8, v.name.size()), ' ')
        << (v.accepted               ? "accepted"
            : v.library_cannot_offer ? "client library cannot offer"
                                     : "refused")
        << " (" << v.detail << ")\n";
  }

  out << "\nSNI\n";
  for (const SniTry &s : r.sni) {
    out << "  " << s.label << (s.servername.empty() ? "" : " \"" + s.servername + "\"") << ": ";
    if (!s.handshake.ok) {
      out << "handshake failed: " << s.handshake.error << "\n";
      continue;
    }
    out << (s.handshake.server_chain.empty() ? "(no certificate)"
                                             : s.handshake.server_chain[0].subject)
        << "; "
        << (s.handshake.request.asked
                ? std::to_string(s.handshake.request.ca_names.size()) + " CA names"
                : "no certificate request")
        << "\n";
  }
  out << "  => " << r.sni_note << "\n";

  if (r.key_checked) {
    out << "\nKey and certificate\n"
        << "  key: " << (r.key_matches ? "" : "MISMATCH: ") << r.key_text << "\n"
        << "  client authentication: "
        << (r.client_auth_problems.empty() ? "the leaf's extendedKeyUsage and keyUsage allow it"
                                           : Join(r.client_auth_problems, "; "))
        << "\n";
  }

  out << "\nRequest GET " << r.path
      << (r.have_client ? " with the client certificate" : " without a certificate") << "\n";
  if (!r.requested) {
    out << "  not made: the handshake failed\n";
  } else if (!r.request_handshake.ok) {
    out << "  handshake FAILED: " << r.request_handshake.error << "\n";
  } else {
    if (r.request_handshake.request.asked) {
      out << "  client certificate sent: " << (r.request_handshake.sent_certificate ? "yes" : "no")
          << "\n";
    }
    if (!r.answer.answered) {
      out << "  no answer: " << r.answer.error
          << (r.request_handshake.version == "TLSv1.3"
                  ? " (in TLS 1.3 a server refuses the client's certificate after the handshake, "
                    "e.g. certgate_reject_at handshake or mod_ssl SSLVerifyClient require)"
                  : "")
          << "\n";
    } else {
      out << "  status: " << r.answer.status_line << "\n";
      if (!r.answer.reason.empty()) {
        out << "  certgate reason: " << r.answer.reason
            << (r.answer.reason_header.empty() ? " (from the body)"
                                               : " (from the X-Certgate-Reason header)")
            << "\n";
        if (!r.answer.detail.empty()) out << "  detail: " << r.answer.detail << "\n";
        if (!r.answer.hint.empty()) out << "  hint:   " << r.answer.hint << "\n";
      } else if (r.answer.status >= 400) {
        out << "  no certgate reason in the answer (turn on certgate_reject_header or "
               "certgate_reject_detail, or the refusal is not certgate's)\n";
      }
    }
  }
  out << "\nResult: " << r.result << " (exit " << r.exit_code << ")\n";
}

void PrintProbeJson(std::ostream &out, const ProbeReport &r) {
  JsonObject request;
  request.Bool("asked", r.server.request.asked)
      .Strings("ca_names", r.server.request.ca_names)
      .Int("ca_names_count", static_cast<long long>(r.server.request.ca_names.size()))
      .Int("ca_names_bytes", static_cast<long long>(r.server.request.ca_names_bytes))
      .Strings("signature_algorithms", r.server.request.sigalgs);
  if (r.have_client && r.server.request.asked) {
    request.Raw("client_chain", JsonObject()
                                    .Bool("matches", r.match.matches)
                                    .Int("name_index", r.match.name_index)
                                    .Int("depth", r.match.depth)
                                    .Str("text", r.match.text)
                                    .str());
  }
  std::vector<std::string> versions;
  for (const VersionTry &v : r.versions) {
    versions.push_back(JsonObject()
                           .Str("version", v.name)
                           .Bool("accepted", v.accepted)
                           .Bool("client_library_cannot_offer", v.library_cannot_offer)
                           .Str("detail", v.detail)
                           .str());
  }
  std::vector<std::string> sni;
  for (const SniTry &s : r.sni) {
    sni.push_back(JsonObject()
                      .Str("label", s.label)
                      .Str("servername", s.servername)
                      .Raw("handshake", HandshakeJson(s.handshake))
                      .str());
  }
  JsonObject key;
  key.Bool("checked", r.key_checked);
  if (r.key_checked) {
    key.Bool("matches", r.key_matches)
        .Str("text", r.key_text)
        .Strings("client_auth_problems", r.client_auth_problems);
  }
  JsonObject answer;
  answer.Bool("made", r.requested);
  if (r.requested) {
    answer.Raw("handshake", HandshakeJson(r.request_handshake))
        .Bool("certificate_sent", r.request_handshake.sent_certificate)
        .Bool("answered", r.answer.answered)
        .Str("error", r.answer.error)
        .Int("status", r.answer.status)
        .Str("reason", r.answer.reason)
        .Str("reason_header", r.answer.reason_header)
        .Str("detail", r.answer.detail)
        .Str("hint", r.answer.hint);
  }
  out << JsonObject()
             .Str("url", r.url)
             .Str("host", r.host)
             .Int("port", r.port)
             .Str("servername", r.servername)
             .Raw("server", HandshakeJson(r.server))
             .Strings("alpn_offered", r.offered_alpn)
             .Raw("certificate_request", request.str())
             .Raw("versions", JsonArray(versions))
             .Raw("sni", JsonObject().Raw("tries", JsonArray(sni)).Str("summary", r.sni_note).str())
             .Raw("key", key.str())
             .Raw("request", answer.str())
             .Strings("warnings", r.warnings)
             .Str("result", r.result)
             .Int("exit", r.exit_code)
             .str()
      << "\n";
}

}  // namespace certgate::cli
