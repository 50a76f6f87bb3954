// cg_selfcheck: the C face of self_checks.h, one call per server.
#include <certgate/certgate.h>
#include <certgate/self_checks.h>
#include <openssl/err.h>

#include <new>
#include <string>
#include <vector>

#include "c_handles.h"

struct cg_findings {
  std::vector<certgate::SelfCheckFinding> findings;
};

namespace {

std::string Str(const char *s) { return s != nullptr ? s : ""; }

}  // namespace

extern "C" {

cg_findings *cg_selfcheck(const cg_policy *policy, const cg_selfcheck_server *server) {
  if (policy == nullptr || server == nullptr) return nullptr;
  ERR_set_mark();
  cg_findings *result = nullptr;
  try {
    certgate::ServerTrust trust =
        server->ctx != nullptr
            ? certgate::TrustFromSslCtx(server->ctx)
            : certgate::TrustFromFiles(Str(server->ca_file), Str(server->ca_path),
                                       Str(server->ca_names_file), Str(server->ca_names_path));
    trust.worker_uid = server->worker_uid;
    trust.worker_gid = server->worker_gid;
    trust.verify_client_on = (server->flags & CG_SELFCHECK_VERIFY_CLIENT_ON) != 0;
    result = new cg_findings{certgate::RunSelfChecks(policy->policy, trust)};
  } catch (...) {
    delete result;
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
