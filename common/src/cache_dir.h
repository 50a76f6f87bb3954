// The revocation cache's directory, made ready by a server's root process for
// the user its workers run as (they open the cache after fork).
#pragma once

#include <certgate/result.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <optional>
#include <string>

namespace certgate {

struct Owner {
  uid_t uid;
  gid_t gid;
};

// mkdir -p: missing parents 0755, the directory itself 0700. With
// `searchable_by`, every parent must be searchable by that user. The directory's
// stat goes to `made` (may be null). The one mkdir -p of the revocation cache.
Status MakeCacheDirs(const std::string &dir, const Owner *searchable_by = nullptr,
                     struct stat *made = nullptr);

// mkdir -p (missing parents 0755, the directory 0700). With an `owner` (the
// caller is root): the directory and the cache files already in it are given to
// it, and every parent must be searchable by it. Without: the directory must be
// writable by the calling user. Errors name the path and what is wrong.
Status PrepareCacheDir(const std::string &dir, std::optional<Owner> owner);

}  // namespace certgate
