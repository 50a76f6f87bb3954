#include "cache_dir.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace certgate {
namespace {

std::string Errno(const std::string &what, const std::string &path) {
  return "cannot " + what + " " + path + ": " + std::strerror(errno);
}

std::string Mode(mode_t mode) {
  char buf[8];
  snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

bool Searchable(const struct stat &st, const Owner &owner) {
  if (st.st_uid == owner.uid) return (st.st_mode & S_IXUSR) != 0;
  if (st.st_gid == owner.gid) return (st.st_mode & S_IXGRP) != 0;
  return (st.st_mode & S_IXOTH) != 0;
}

// Only the worker user and root may have written the cache: a directory or
// file anyone else owns, or that group or others may write, is refused (the
// revocation cache decides who is let in).
Status CheckTrusted(const std::string &path, const struct stat &st, uid_t worker) {
  if (st.st_uid != 0 && st.st_uid != worker) {
    return Status::Error(path + " belongs to uid " + std::to_string(st.st_uid) +
                         ", neither the worker user (uid " + std::to_string(worker) +
                         ") nor root: refused, as anyone could have written the revocation cache "
                         "(remove it, or give it to the worker user)");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status::Error(path + " is writable by group or others (mode " + Mode(st.st_mode) +
                         "): refused, as anyone could write the revocation cache (chmod go-w it)");
  }
  return Status::Ok();
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  Fd(const Fd &) = delete;
  Fd &operator=(const Fd &) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace

Status MakeCacheDirs(const std::string &dir, const Owner *searchable_by, struct stat *made) {
  struct stat st = {};
  if (dir.empty()) return Status::Error("no directory given");
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
    if (searchable_by != nullptr && !last && !Searchable(st, *searchable_by)) {
      return Status::Error(path + " is not searchable by the worker user, so " + dir +
                           " would be out of its reach");
    }
    if (last) break;
  }
  if (made != nullptr) *made = st;
  return Status::Ok();
}

Status PrepareCacheDir(const std::string &dir, std::optional<Owner> owner) {
  if (dir.empty() || dir[0] != '/') return Status::Error(dir + " is not an absolute path");
  struct stat st = {};
  if (Status made = MakeCacheDirs(dir, owner ? &*owner : nullptr, &st); !made.ok()) return made;
  if (!owner) {
    if (access(dir.c_str(), R_OK | W_OK | X_OK) != 0) {
      return Status::Error(Errno("write into", dir));
    }
    return CheckTrusted(dir, st, geteuid());
  }
  // As root, and the path may be swapped for a symlink between a check and a
  // chown: everything from here on goes through this descriptor of the
  // directory itself (O_NOFOLLOW), never through its name again.
  std::string trimmed = dir;
  while (trimmed.size() > 1 && trimmed.back() == '/') trimmed.pop_back();
  const Fd fd(open(trimmed.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (fd.get() < 0) {
    if (errno == ELOOP || errno == ENOTDIR)
      return Status::Error(dir + " is a symbolic link or not a directory: refused");
    return Status::Error(Errno("open", dir));
  }
  if (fstat(fd.get(), &st) != 0) return Status::Error(Errno("examine", dir));
  if (Status trusted = CheckTrusted(dir, st, owner->uid); !trusted.ok()) return trusted;
  if ((st.st_uid != owner->uid || st.st_gid != owner->gid) &&
      fchown(fd.get(), owner->uid, owner->gid) != 0) {
    return Status::Error(Errno("give to the worker user (chown)", dir));
  }
  if (!(st.st_mode & S_IRWXU)) return Status::Error(dir + " gives its owner no access");
  // data.mdb and lock.mdb left by a run as another user (the CLI as root).
  const int listed = dup(fd.get());
  DIR *entries = listed >= 0 ? fdopendir(listed) : nullptr;
  if (entries == nullptr) {
    if (listed >= 0) close(listed);
    return Status::Error(Errno("read", dir));
  }
  Status result = Status::Ok();
  while (struct dirent *entry = readdir(entries)) {
    if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
    const std::string file = dir + "/" + entry->d_name;
    struct stat file_st = {};
    if (fstatat(fd.get(), entry->d_name, &file_st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISLNK(file_st.st_mode)) {
      result = Status::Error(file + " is a symbolic link: refused (the cache files are mapped)");
      break;
    }
    if (!S_ISREG(file_st.st_mode)) continue;
    result = CheckTrusted(file, file_st, owner->uid);
    if (!result.ok()) break;
    if ((file_st.st_uid != owner->uid || file_st.st_gid != owner->gid) &&
        fchownat(fd.get(), entry->d_name, owner->uid, owner->gid, AT_SYMLINK_NOFOLLOW) != 0) {
      result = Status::Error(Errno("give to the worker user (chown)", file));
      break;
    }
  }
  closedir(entries);
  return result;
}

}  // namespace certgate
