// The helpers of apache_test_fixture.h.
#include "apache_test_fixture.h"

#include <gtest/gtest.h>
#include <harness.h>
#include <strings.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace certgate_apache_test {

Pki &SharedPki() {
  static Pki pki = [] {
    Pki p;
    p.dir = std::make_unique<h::TempDir>("certgate-apache-pki");
    if (!p.dir->ok()) {
      p.error = "cannot create a temporary directory";
      return p;
    }
    p.path = p.dir->path() + "/pki";
    p.error = h::GeneratePki(p.path);
    p.weak_openssl_conf = h::WriteWeakClientOpensslConf(p.dir->path());
    h::MakeWorldReadable(p.dir->path());
    std::istringstream lines(h::ReadFile(p.path + "/clients/fingerprints.txt"));
    std::string line;
    while (std::getline(lines, line)) {
      std::istringstream words(line);
      std::string name, word;
      words >> name;
      while (words >> word) {
        if (word.rfind("sha256:", 0) == 0) p.sha256[name] = word;
      }
    }
    return p;
  }();
  return pki;
}

// Splits "HTTP/1.1 403 Forbidden\r\nHeaders...\r\n\r\nbody" found anywhere in `out`.
void ParseHttp(const std::string &out, Reply *reply) {
  const size_t start = out.find("HTTP/1.");
  if (start == std::string::npos) return;
  reply->status = std::atoi(out.c_str() + start + 9);
  const size_t end = out.find("\r\n\r\n", start);
  const std::string head =
      out.substr(start, end == std::string::npos ? std::string::npos : end - start);
  if (end != std::string::npos) reply->body = out.substr(end + 4);
  std::istringstream lines(head);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.size() > 13 && strncasecmp(line.c_str(), "Content-Type:", 13) == 0) {
      reply->content_type = line.substr(line.find_first_not_of(' ', 13));
    }
  }
}

// GET https://127.0.0.1:port/path with client certificate `cert` ("" = none).
Reply Get(int port, const std::string &path, const std::string &cert, Client client) {
  const Pki &pki = SharedPki();
  const std::string url = "https://127.0.0.1:" + std::to_string(port) + path;
  Reply reply;
  h::RunResult run;
  if (client == Client::kSClient) {
    // openssl s_client loads certificates curl refuses (invalid extensions) and
    // sends the chain named by -cert_chain.
    std::vector<std::string> argv = {
        "openssl",           "s_client",  "-connect", "127.0.0.1:" + std::to_string(port),
        "-servername",       "localhost", "-quiet",   "-cipher",
        "DEFAULT@SECLEVEL=0"};
    if (!cert.empty()) {
      const std::string base = pki.path + "/clients/" + cert;
      argv.insert(argv.end(), {"-cert", base + ".crt", "-cert_chain", base + ".chain.pem", "-key",
                               base + ".key"});
    }
    run =
        h::Run(argv, {},
               "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 20000);
  } else {
    std::vector<std::string> argv = {"curl", "-sk", "--http1.1", "--max-time",
                                     "15",   "-D",  "-",         url};
    if (!cert.empty()) {
      const std::string base = pki.path + "/clients/" + cert;
      argv.insert(argv.end() - 1, {"--cert", base + ".chain.pem", "--key", base + ".key"});
    }
    std::vector<std::string> env;
    // RSA-1024 and SHA-1 certificates are refused by the client's own OpenSSL
    // at the default security level 2 before anything is sent.
    if (client == Client::kCurlWeak) env.push_back("OPENSSL_CONF=" + pki.weak_openssl_conf);
    run = h::Run(argv, env, {}, 20000);
  }
  reply.exit_code = run.exit_code;
  reply.raw = run.out + run.err;
  ParseHttp(run.out, &reply);
  return reply;
}

// `method` (POST, HEAD, ...) on https://127.0.0.1:port/path, without a client
// certificate.
Reply Request(int port, const std::string &path, const std::string &method) {
  std::vector<std::string> argv = {"curl", "-sk", "--http1.1", "--max-time", "15"};
  if (method == "HEAD") {
    argv.push_back("-I");  // the head on stdout, once
  } else {
    argv.insert(argv.end(), {"-D", "-", "-X", method, "--data", "x=1"});
  }
  argv.push_back("https://127.0.0.1:" + std::to_string(port) + path);
  const h::RunResult run = h::Run(argv, {}, {}, 20000);
  Reply reply;
  reply.exit_code = run.exit_code;
  reply.raw = run.out + run.err;
  ParseHttp(run.out, &reply);
  return reply;
}

// The CertGateStatus page's counters: "name{labels}" -> value. Empty when the
// page does not parse (a line that is neither a comment nor "sample value").
std::map<std::string, uint64_t> Counters(const std::string &page) {
  std::map<std::string, uint64_t> out;
  std::istringstream lines(page);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.rfind("# ", 0) == 0) continue;
    // The counters only: the gauges after them (issue 13 §3) come and go
    // with the certificates accepted and the caches configured.
    if (line.rfind("certgate_decisions_total", 0) != 0 &&
        line.rfind("certgate_handshake_refusals_total", 0) != 0) {
      continue;
    }
    const size_t space = line.rfind(' ');
    if (space == std::string::npos || space + 1 == line.size() ||
        line.find_first_not_of("0123456789", space + 1) != std::string::npos) {
      return {};
    }
    out[line.substr(0, space)] = std::stoull(line.substr(space + 1));
  }
  return out;
}

std::string Decisions(const std::string &verdict, const std::string &reason) {
  return "certgate_decisions_total{verdict=\"" + verdict + "\",reason=\"" + reason + "\"}";
}

std::string TextBody(const std::string &reason, const std::string &substatus) {
  return substatus + " client certificate refused: " + reason + "\n";
}

std::string MpmBlock(const std::string &mpm) {
  if (mpm == "prefork") {
    return "StartServers 2\nMinSpareServers 1\nMaxSpareServers 4\nServerLimit 8\n"
           "MaxRequestWorkers 8\n";
  }
  return "StartServers 1\nServerLimit 2\nThreadsPerChild 8\nMaxRequestWorkers 16\n"
         "MinSpareThreads 1\nMaxSpareThreads 16\n";
}

// `SSLVerifyClient` is left out when verify_client is empty.
std::string VirtualHost(int port, const std::string &verify_client, const std::string &body) {
  const std::string pki = SharedPki().path;
  std::string out = "Listen 127.0.0.1:" + std::to_string(port) +
                    "\n<VirtualHost 127.0.0.1:" + std::to_string(port) +
                    ">\n"
                    "  SSLEngine on\n"
                    "  SSLCertificateFile " +
                    pki +
                    "/server/server-chain.pem\n"
                    "  SSLCertificateKeyFile " +
                    pki +
                    "/server/server.key\n"
                    "  SSLCACertificateFile " +
                    pki + "/ca/trust.pem\n";
  if (!verify_client.empty()) out += "  SSLVerifyClient " + verify_client + "\n";
  out += "  SSLVerifyDepth 10\n" + body + "</VirtualHost>\n";
  return out;
}

}  // namespace certgate_apache_test
