#include <certgate/cache_dir.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace certgate {
namespace {

std::string Errno(const std::string &what, const std::string &path) {
  return "cannot " + what + " " + path + ": " + std::strerror(errno);
}

bool Searchable(const struct stat &st, const Owner &owner) {
  if (st.st_uid == owner.uid) return (st.st_mode & S_IXUSR) != 0;
  if (st.st_gid == owner.gid) return (st.st_mode & S_IXGRP) != 0;
  return (st.st_mode & S_IXOTH) != 0;
}

// Gives `path` to `owner` unless it already belongs to it.
Status Chown(const std::string &path, const struct stat &st, const Owner &owner) {
  if ((st.st_uid == owner.uid && st.st_gid == owner.gid) ||
      chown(path.c_str(), owner.uid, owner.gid) == 0) {
    return Status::Ok();
  }
  return Status::Error(Errno("give to the worker user (chown)", path));
}

}  // namespace

Status PrepareCacheDir(const std::string &dir, std::optional<Owner> owner) {
  if (dir.empty() || dir[0] != '/') return Status::Error(dir + " is not an absolute path");
  struct stat st = {};
  for (size_t slash = dir.find('/', 1);; slash = dir.find('/', slash + 1)) {
    const bool last = slash == std::string::npos || slash + 1 == dir.size();
    const std::string path = last ? dir : dir.substr(0, slash);
    if (stat(path.c_str(), &st) != 0) {
      if (errno != ENOENT || (mkdir(path.c_str(), last ? 0700 : 0755) != 0 && errno != EEXIST) ||
          stat(path.c_str(), &st) != 0) {
        return Status::Error(Errno("create", path));
      }
    }
    if (!S_ISDIR(st.st_mode)) return Status::Error(path + " is not a directory");
    if (owner && !last && !Searchable(st, *owner)) {
      return Status::Error(path + " is not searchable by the worker user, so " + dir +
                           " would be out of its reach");
    }
    if (last) break;
  }
  if (!owner) {
    if (access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
      return Status::Error(Errno("write into", dir));
    }
    return Status::Ok();
  }
  if (Status given = Chown(dir, st, *owner); !given.ok()) return given;
  if (!(st.st_mode & S_IRWXU)) return Status::Error(dir + " gives its owner no access");
  // data.mdb and lock.mdb left by a run as another user (the CLI as root).
  DIR *entries = opendir(dir.c_str());
  if (entries == nullptr) return Status::Error(Errno("read", dir));
  Status result = Status::Ok();
  while (struct dirent *entry = readdir(entries)) {
    const std::string file = dir + "/" + entry->d_name;
    struct stat file_st = {};
    if (lstat(file.c_str(), &file_st) == 0 && S_ISREG(file_st.st_mode)) {
      result = Chown(file, file_st, *owner);
      if (!result.ok()) break;
    }
  }
  closedir(entries);
  return result;
}

}  // namespace certgate
