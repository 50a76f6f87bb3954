// cg_sections: an httpd configuration's sections that set certgate keys, with
// their server, so that the adapter asks one question per server at
// check_config (which cache directories revocation will use).
#include <certgate/certgate.h>

#include <new>
#include <utility>
#include <vector>

struct cg_sections {
  std::vector<std::pair<const void *, const cg_policy *>> sections;  // (server, section)
};

extern "C" {

cg_sections *cg_sections_new(void) { return new (std::nothrow) cg_sections(); }

void cg_sections_free(cg_sections *sections) { delete sections; }

int cg_sections_add(cg_sections *sections, const void *server, const cg_policy *section) {
  if (sections == nullptr) return CG_ERR_INTERNAL;
  try {
    sections->sections.emplace_back(server, section);
  } catch (...) {
    return CG_ERR_INTERNAL;
  }
  return CG_OK;
}

int cg_sections_revocation_enabled(const cg_sections *sections, const void *server,
                                   const void *main_server, const cg_policy *base) {
  if (base != nullptr && cg_policy_revocation_enabled(base)) return 1;
  if (sections == nullptr) return 0;
  for (const auto &[owner, section] : sections->sections) {
    if ((owner == server || owner == main_server) &&
        cg_policy_revocation_enabled_under(base, section)) {
      return 1;
    }
  }
  return 0;
}

}  // extern "C"
