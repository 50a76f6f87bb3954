// cg_selfcheck: the C face of self_checks.h, one call per server.
#include <certgate/certgate.h>
#include <certgate/self_checks.h>
#include <openssl/err.h>
#include <strings.h>

#include <new>
#include <string>
#include <vector>

#include "c_handles.h"

struct cg_findings {
  std::vector<certgate::SelfCheckFinding> findings;
};

namespace {

std::string Str(const char *s) { return s != nullptr ? s : ""; }

// The first word of a directive's arguments, unquoted as httpd reads it.
std::string FirstWord(const char *args) {
  std::string s = Str(args);
  size_t start = s.find_first_not_of(" \t");
  if (start == std::string::npos) return "";
  const char quote = s[start];
  if (quote == '"' || quote == '\'') {
    size_t end = s.find(quote, start + 1);
    return s.substr(start + 1, end == std::string::npos ? std::string::npos : end - start - 1);
  }
  return s.substr(start, s.find_first_of(" \t", start) - start);
}

// mod_ssl's CA files of an httpd server from its directives (the last of each
// wins, the virtual host's coming after the main server's); false when its
// SSLEngine is not on.
bool HttpdCaFiles(const cg_selfcheck_server &server, std::string files[4]) {
  static const char *const kNames[4] = {"SSLCACertificateFile", "SSLCACertificatePath",
                                        "SSLCADNRequestFile", "SSLCADNRequestPath"};
  bool engine_on = false;
  const std::string root = Str(server.server_root);
  for (size_t i = 0; i < server.httpd_directive_count; ++i) {
    const char *name = server.httpd_directives[2 * i];
    const char *args = server.httpd_directives[2 * i + 1];
    if (name == nullptr) continue;
    if (strcasecmp(name, "SSLEngine") == 0)
      engine_on = strcasecmp(FirstWord(args).c_str(), "on") == 0;
    for (int k = 0; k < 4; ++k) {
      if (strcasecmp(name, kNames[k]) != 0) continue;
      files[k] = FirstWord(args);
      if (!files[k].empty() && files[k][0] != '/' && !root.empty())
        files[k] = root + "/" + files[k];
    }
  }
  return engine_on;
}

}  // namespace

extern "C" {

cg_findings *cg_selfcheck(const cg_policy *policy, const cg_selfcheck_server *server) {
  if (policy == nullptr || server == nullptr) return nullptr;
  ERR_set_mark();
  cg_findings *result = nullptr;
  try {
    std::string files[4] = {Str(server->ca_file), Str(server->ca_path), Str(server->ca_names_file),
                            Str(server->ca_names_path)};
    if (server->httpd_directives != nullptr && !HttpdCaFiles(*server, files)) {
      result = new cg_findings{};  // no TLS here: nothing to check
    } else {
      certgate::ServerTrust trust =
          server->ctx != nullptr ? certgate::TrustFromSslCtx(server->ctx)
                                 : certgate::TrustFromFiles(files[0], files[1], files[2], files[3]);
      trust.worker_uid = server->worker_uid;
      trust.worker_gid = server->worker_gid;
      trust.verify_client_on = (server->flags & CG_SELFCHECK_VERIFY_CLIENT_ON) != 0;
      result = new cg_findings{certgate::RunSelfChecks(policy->policy, trust)};
    }
  } catch (...) {
    result = nullptr;
  }
  ERR_pop_to_mark();
  return result;
}

void cg_findings_free(cg_findings *findings) { delete findings; }

size_t cg_findings_count(const cg_findings *findings) {
  return findings != nullptr ? findings->findings.size() : 0;
}

const char *cg_finding_name(const cg_findings *findings, size_t i) {
  return i < cg_findings_count(findings) ? findings->findings[i].name.c_str() : "";
}

int cg_finding_fatal(const cg_findings *findings, size_t i) {
  return i < cg_findings_count(findings) && findings->findings[i].fatal ? 1 : 0;
}

const char *cg_finding_message(const cg_findings *findings, size_t i) {
  return i < cg_findings_count(findings) ? findings->findings[i].message.c_str() : "";
}

}  // extern "C"
