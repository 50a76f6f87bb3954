// The revocation store's files before LMDB maps them (store.h):
// the directory is created and must belong to this user or root and not be
// writable by others; data.mdb and lock.mdb must be regular files of a trusted
// owner, and data.mdb's meta pages and B-tree must be sane; a damaged data.mdb
// is moved aside. Private to certgate_core (store.cc).
#pragma once

#include <certgate/result.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/types.h>
#include <unistd.h>

#include <cstring>
#include <string>

namespace certgate::store_detail {

// The outcome of looking at data.mdb before LMDB maps it.
struct Precheck {
  enum Kind { kOk, kRefused, kDamaged } kind = kOk;
  std::string why;
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
};

// The cache directory's owner and mode; *owner is set when it exists.
Status CheckDirectory(const std::string &dir, uid_t *owner);
// data.mdb and lock.mdb in `dir` before LMDB maps them.
Precheck CheckDataFile(const std::string &dir, uid_t dir_owner);
// Renames a damaged data.mdb aside (says so on stderr).
Status MoveAside(const std::string &dir, const std::string &reason);

// Serializes moving a damaged store aside against opening it: openers hold it
// shared, the one that moves it aside exclusively.
class RepairLock {
 public:
  explicit RepairLock(const std::string &dir) {
    // Read-only and 0644: flock needs no more, and a root-run CLI that made
    // it must not lock the workers out of it.
    fd_ = open((dir + "/repair.lock").c_str(), O_RDONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd_ < 0) error_ = "cannot open " + dir + "/repair.lock: " + strerror(errno);
  }
  ~RepairLock() {
    if (fd_ >= 0) close(fd_);
  }
  const std::string &error() const { return error_; }
  void Lock(int op) {
    if (fd_ < 0) return;
    while (flock(fd_, op) != 0 && errno == EINTR) {
    }
  }

 private:
  int fd_ = -1;
  std::string error_;
};

}  // namespace certgate::store_detail
