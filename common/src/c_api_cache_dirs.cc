// cg_cache_dirs: the revocation cache directories one server configuration
// uses, so that an adapter collects them in a directive or merge and prepares
// them with one call, errors naming where each was configured.
#include <certgate/certgate.h>

#include <cstdio>
#include <new>
#include <string>
#include <vector>

#include "directive_names.h"

struct cg_cache_dirs {
  struct Dir {
    std::string path;
    std::string file;
    unsigned long line;
  };
  std::vector<Dir> dirs;
};

namespace {

void SetError(cg_error *error, const std::string &message) {
  if (error != nullptr) std::snprintf(error->message, sizeof error->message, "%s", message.c_str());
}

// As the running server spells it (CertGateCache in httpd); only the name is
// respelled, never a path that happens to contain it.
std::string CacheDirective() {
  return certgate::SpellDirectives("certgate_cache", certgate::CurrentDirectiveStyle());
}

}  // namespace

extern "C" {

cg_cache_dirs *cg_cache_dirs_new(void) { return new (std::nothrow) cg_cache_dirs(); }

void cg_cache_dirs_free(cg_cache_dirs *dirs) { delete dirs; }

int cg_cache_dirs_add(cg_cache_dirs *dirs, const char *dir, const char *file, unsigned long line,
                      cg_error *error) {
  if (dirs == nullptr || dir == nullptr) {
    SetError(error, "cg_cache_dirs_add: missing argument");
    return CG_ERR_INVALID;
  }
  try {
    // Prepared in the server's root process: never relative to wherever it runs.
    if (dir[0] != '/') {
      SetError(error, std::string("the revocation cache \"") + dir + "\" (" + CacheDirective() +
                          ") must be an absolute path");
      return CG_ERR_INVALID;
    }
    for (const cg_cache_dirs::Dir &known : dirs->dirs) {
      if (known.path == dir) return CG_OK;
    }
    dirs->dirs.push_back({dir, file != nullptr ? file : "", line});
    return CG_OK;
  } catch (...) {
    SetError(error, "internal error");
    return CG_ERR_INTERNAL;
  }
}

int cg_cache_dirs_prepare(const cg_cache_dirs *dirs, long worker_uid, long worker_gid,
                          cg_error *error) {
  if (dirs == nullptr) return CG_OK;
  try {
    for (const cg_cache_dirs::Dir &dir : dirs->dirs) {
      cg_error failed;
      const int rc = cg_cache_dir_prepare(dir.path.c_str(), worker_uid, worker_gid, &failed);
      if (rc != CG_OK) {
        SetError(error, std::string(failed.message) + " (" + CacheDirective() + " \"" + dir.path +
                            "\" in " + dir.file + ":" + std::to_string(dir.line) + ")");
        return rc;
      }
    }
    return CG_OK;
  } catch (...) {
    SetError(error, "internal error");
    return CG_ERR_INTERNAL;
  }
}

}  // extern "C"
