// certgate probe URL: seed 002's "the client sends no certificate" workflow in
// one command (sections in probe.h; printed by probe_report.cc).
#include <arpa/inet.h>
#include <certgate/cert_facts.h>
#include <certgate/cert_file.h>
#include <signal.h>

#include <algorithm>
#include <iostream>

#include "commands.h"
#include "key_check.h"
#include "probe.h"

namespace certgate::cli {
namespace {

constexpr size_t kSchannelCaNamesLimit = 16 * 1024;
constexpr const char *kWrongName = "certgate-probe.invalid";

struct ProbeOptions {
  std::string url, cert_file, key_file, chain_file, ca_file, servername;
  bool servername_given = false;
  int version = 0;
  bool json = false;
};

Status ParseArgs(const std::vector<std::string> &args, ProbeOptions *options) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &arg = args[i];
    auto value = [&](std::string *out) -> Status {
      if (i + 1 >= args.size()) return Status::Error(arg + " needs a value");
      *out = args[++i];
      return Status::Ok();
    };
    Status status = Status::Ok();
    if (arg == "--cert") {
      status = value(&options->cert_file);
    } else if (arg == "--key") {
      status = value(&options->key_file);
    } else if (arg == "--chain") {
      status = value(&options->chain_file);
    } else if (arg == "--ca") {
      status = value(&options->ca_file);
    } else if (arg == "--servername") {
      status = value(&options->servername);
      options->servername_given = true;
    } else if (arg == "--tls1.2" || arg == "--tls1.3") {
      if (options->version != 0) return Status::Error("give one of --tls1.2 and --tls1.3");
      options->version = arg == "--tls1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
    } else if (arg == "--json") {
      options->json = true;
    } else if (!arg.empty() && arg[0] == '-') {
      return Status::Error("unknown option \"" + arg + "\"");
    } else if (options->url.empty()) {
      options->url = arg;
    } else {
      return Status::Error("more than one URL given (\"" + arg + "\")");
    }
    if (!status.ok()) return status;
  }
  if (options->url.empty()) return Status::Error("no URL to probe");
  if (options->cert_file.empty() != options->key_file.empty()) {
    return Status::Error("--cert and --key go together");
  }
  if (!options->chain_file.empty() && options->cert_file.empty()) {
    return Status::Error("--chain needs --cert and --key");
  }
  return Status::Ok();
}

// https://host[:port][/path]; [v6]:port too.
Status ParseUrl(const std::string &url, ProbeReport *report) {
  const std::string scheme = "https://";
  if (url.compare(0, scheme.size(), scheme) != 0) {
    return Status::Error("the URL must start with https:// (got \"" + url + "\")");
  }
  const std::string rest = url.substr(scheme.size());
  const size_t slash = rest.find('/');
  std::string authority = rest.substr(0, slash);
  report->path = slash == std::string::npos ? "/" : rest.substr(slash);
  std::string port;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) return Status::Error("bad IPv6 address in \"" + url + "\"");
    report->host = authority.substr(1, close - 1);
    if (close + 1 < authority.size() && authority[close + 1] == ':')
      port = authority.substr(close + 2);
  } else {
    const size_t colon = authority.rfind(':');
    report->host = authority.substr(0, colon);
    if (colon != std::string::npos) port = authority.substr(colon + 1);
  }
  if (report->host.empty()) return Status::Error("no host in \"" + url + "\"");
  if (!port.empty()) {
    char *end = nullptr;
    const long number = std::strtol(port.c_str(), &end, 10);
    if (*end != '\0' || number < 1 || number > 65535) {
      return Status::Error("bad port \"" + port + "\" in \"" + url + "\"");
    }
    report->port = static_cast<int>(number);
  }
  return Status::Ok();
}

bool IsIpAddress(const std::string &host) {
  unsigned char buf[16];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

Status LoadClient(const ProbeOptions &options, ClientIdentity *client, ProbeReport *report) {
  auto certs = ReadCertificates(options.cert_file);
  if (!certs.ok()) return Status::Error("--cert: " + certs.status().message());
  client->leaf = ossl::UpRef(certs.value().front().get());
  for (size_t i = 1; i < certs.value().size(); ++i) {
    client->chain.push_back(ossl::UpRef(certs.value()[i].get()));
  }
  if (!options.chain_file.empty()) {
    auto chain = ReadCertificates(options.chain_file);
    if (!chain.ok()) return Status::Error("--chain: " + chain.status().message());
    for (const auto &cert : chain.value()) client->chain.push_back(ossl::UpRef(cert.get()));
  }
  auto key = ReadPrivateKey(options.key_file);
  if (!key.ok()) return Status::Error("--key: " + key.status().message());
  const KeyMatch match = MatchKey(client->leaf.get(), key.value().get());
  report->have_client = true;
  report->key_checked = true;
  report->key_matches = match.matches;
  report->key_text = match.message;
  report->client_subject = NameToString(X509_get_subject_name(client->leaf.get()));
  report->client_issuer = NameToString(X509_get_issuer_name(client->leaf.get()));
  report->client_auth_problems = ClientAuthProblems(client->leaf.get());
  // A key that is not the certificate's cannot sign for it: nothing is sent.
  if (match.matches) client->key = std::move(key.value());
  return Status::Ok();
}

// Whether a certificate of the client's chain was issued by one of the names,
// which is what OpenSSL, browsers and Schannel select a certificate by.
ChainMatch MatchChain(const ClientIdentity &client, const CertRequest &request) {
  ChainMatch match;
  if (request.ca_names.empty()) {
    match.matches = true;
    match.text = "the server names no CAs: a client may offer any certificate";
    return match;
  }
  std::vector<X509 *> chain = {client.leaf.get()};
  for (const auto &cert : client.chain) chain.push_back(cert.get());
  for (size_t depth = 0; depth < chain.size() && !match.matches; ++depth) {
    const std::string issuer = NameDer(X509_get_issuer_name(chain[depth]));
    for (size_t i = 0; i < request.ca_names_der.size(); ++i) {
      if (request.ca_names_der[i] != issuer) continue;
      match.matches = true;
      match.name_index = static_cast<int>(i);
      match.depth = static_cast<int>(depth);
      match.text = "the client's chain matches CA name [" + std::to_string(i + 1) + "] \"" +
                   request.ca_names[i] + "\" (the issuer of the certificate at depth " +
                   std::to_string(depth) + ")";
      break;
    }
  }
  if (!match.matches) {
    match.text = "no certificate of the client's chain was issued by one of the " +
                 std::to_string(request.ca_names.size()) + " CA names (the leaf's issuer is \"" +
                 NameToString(X509_get_issuer_name(client.leaf.get())) +
                 "\"): browsers, Windows (Schannel) and many libraries then send no "
                 "certificate; add the issuing CA to the server's CA names "
                 "(nginx ssl_client_certificate, httpd SSLCACertificateFile or "
                 "SSLCADNRequestFile), or send its intermediate with --chain";
  }
  return match;
}

void ProbeVersions(HandshakeSettings settings, ProbeReport *report) {
  for (int version : {TLS1_VERSION, TLS1_1_VERSION, TLS1_2_VERSION, TLS1_3_VERSION}) {
    settings.version = version;
    settings.legacy_ok = version < TLS1_2_VERSION;
    const Handshake hs = Connect(settings);
    VersionTry entry{VersionName(version), hs.ok, hs.library_cannot_offer, ""};
    if (hs.ok) {
      entry.detail = hs.cipher;
    } else {
      entry.detail = hs.error;
    }
    report->versions.push_back(entry);
  }
}

std::string NamesKey(const Handshake &hs) {
  std::string key;
  for (const auto &name : hs.request.ca_names_der) key += name;
  return key;
}

void ProbeSni(HandshakeSettings settings, const std::string &name, ProbeReport *report) {
  if (name.empty()) {
    report->sni.push_back({"without SNI", "", report->server});
  } else {
    report->sni.push_back({"with the name", name, report->server});
    settings.servername = "";
    report->sni.push_back({"without SNI", "", Connect(settings)});
  }
  settings.servername = kWrongName;
  report->sni.push_back({"with a wrong name", kWrongName, Connect(settings)});
  std::vector<std::string> differs;
  const SniTry &first = report->sni.front();
  auto leaf = [](const Handshake &hs) {
    return hs.server_chain.empty() ? std::string() : hs.server_chain.front().fingerprint;
  };
  for (size_t i = 1; i < report->sni.size(); ++i) {
    const SniTry &other = report->sni[i];
    if (other.handshake.ok != first.handshake.ok) {
      differs.push_back("the handshake " + std::string(other.handshake.ok ? "succeeds" : "fails") +
                        " " + other.label);
    } else if (leaf(other.handshake) != leaf(first.handshake)) {
      differs.push_back("the server certificate differs " + other.label);
    }
    if (other.handshake.ok && first.handshake.ok &&
        (other.handshake.request.asked != first.handshake.request.asked ||
         NamesKey(other.handshake) != NamesKey(first.handshake))) {
      differs.push_back("the certificate request (CA names) differs " + other.label);
    }
  }
  if (name.empty()) {
    report->sni_note = "no name to send (the URL's host is an IP address; give --servername)";
    if (!differs.empty()) report->sni_note += "; ";
  }
  for (size_t i = 0; i < differs.size(); ++i) {
    report->sni_note += (i ? "; " : "") + differs[i];
  }
  const bool any_ok = std::any_of(report->sni.begin(), report->sni.end(),
                                  [](const SniTry &t) { return t.handshake.ok; });
  if (!any_ok) {
    report->sni_note += std::string(name.empty() ? "; " : "") + "no handshake succeeded";
  } else if (differs.empty()) {
    report->sni_note += std::string(name.empty() ? "; " : "") +
                        "the certificate and the CA names are the same with any name";
  }
}

}  // namespace

int RunProbe(const std::vector<std::string> &args) {
  // A server that refuses at the handshake may close while we write: an error
  // to report, not a signal to die of.
  signal(SIGPIPE, SIG_IGN);
  ProbeOptions options;
  ProbeReport report;
  if (Status status = ParseArgs(args, &options); !status.ok()) {
    std::cerr << "certgate probe: " << status.message() << "\n";
    return kExitUsage;
  }
  if (Status status = ParseUrl(options.url, &report); !status.ok()) {
    std::cerr << "certgate probe: " << status.message() << "\n";
    return kExitUsage;
  }
  report.url = options.url;
  ClientIdentity client;
  if (!options.cert_file.empty()) {
    if (Status status = LoadClient(options, &client, &report); !status.ok()) {
      std::cerr << "certgate probe: " << status.message() << "\n";
      return kExitUsage;
    }
  }
  report.servername = options.servername_given   ? options.servername
                      : IsIpAddress(report.host) ? ""
                                                 : report.host;
  HandshakeSettings settings;
  settings.host = report.host;
  settings.port = report.port;
  settings.servername = report.servername;
  settings.version = options.version;
  settings.ca_file = options.ca_file;
  settings.client = report.have_client ? &client : nullptr;

  // The server, as a browser sees it (offering h2 too).
  HandshakeSettings first = settings;
  first.alpn = {"h2", "http/1.1"};
  report.offered_alpn = first.alpn;
  report.server = Connect(first);
  if (!report.server.connected) {
    std::cerr << "certgate probe: " << report.server.error << "\n";
    return kExitHandshakeFailed;
  }
  const CertRequest &request = report.server.request;
  if (request.ca_names_bytes > kSchannelCaNamesLimit) {
    report.warnings.push_back(
        "the CA names total " + std::to_string(request.ca_names_bytes) + " bytes (" +
        std::to_string(request.ca_names.size()) +
        " names), above 16 KiB: Windows (Schannel) cuts such a list and its clients may then "
        "send no certificate; name only the CAs that issue client certificates "
        "(nginx ssl_client_certificate with ssl_trusted_certificate for the rest, httpd "
        "SSLCADNRequestFile)");
  }
  if (report.have_client && request.asked) report.match = MatchChain(client, request);
  ProbeVersions(settings, &report);
  ProbeSni(settings, report.servername, &report);

  if (report.server.ok) {
    TlsConnection connection;
    report.requested = true;
    report.request_handshake = Connect(settings, &connection);
    if (report.request_handshake.ok) {
      // The name the client asks for, as `curl --connect-to` would send it: with
      // SNI and Host apart, httpd answers 421 and nginx picks another server block.
      const bool default_port = report.port == 443;
      const std::string name = options.servername_given ? options.servername : report.host;
      const std::string host = name.find(':') != std::string::npos ? "[" + name + "]" : name;
      report.answer = HttpGet(
          &connection, default_port ? host : host + ":" + std::to_string(report.port), report.path);
    }
  }

  if (report.have_client && !report.key_matches) {
    report.result = "key_mismatch";
    report.exit_code = kExitKeyMismatch;
  } else if (!report.server.ok || !report.requested || !report.request_handshake.ok ||
             !report.answer.answered) {
    report.result = "handshake_failed";
    report.exit_code = kExitHandshakeFailed;
  } else if (report.answer.status >= 400) {
    report.result = "refused";
    report.exit_code = kExitDeny;
  } else {
    report.result = "allowed";
    report.exit_code = kExitAllow;
  }
  if (options.json) {
    PrintProbeJson(std::cout, report);
  } else {
    PrintProbeText(std::cout, report);
  }
  return report.exit_code;
}

}  // namespace certgate::cli
