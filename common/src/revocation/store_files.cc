#include "store_files.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <set>

#include "store_format.h"

namespace certgate::store_detail {

// Who may have written the cache: this user or root; root (the CLI) also
// trusts the directory's owner, the worker user the servers give it to.
bool TrustedOwner(uid_t owner, uid_t dir_owner) {
  const uid_t me = geteuid();
  return owner == me || owner == 0 || (me == 0 && owner == dir_owner);
}

std::string Mode(mode_t mode) {
  char buf[8];
  snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode & 07777));
  return buf;
}

Status CheckDirectory(const std::string &dir, uid_t *owner) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0)
    return Status::Error("revocation cache " + dir + ": " + strerror(errno));
  *owner = st.st_uid;
  if (geteuid() != 0 && st.st_uid != geteuid() && st.st_uid != 0) {
    return Status::Error("revocation cache " + dir + " belongs to uid " + Hex(st.st_uid) +
                         ", neither this user (uid " + Hex(geteuid()) +
                         ") nor root: refused (it could have been written by anyone)");
  }
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    return Status::Error("revocation cache " + dir + " is writable by group or others (mode " +
                         Mode(st.st_mode) + "): refused; chmod go-w it");
  }
  return Status::Ok();
}

Precheck Refused(std::string why) { return Precheck{Precheck::kRefused, std::move(why)}; }

// A cache file must be a regular file of a trusted owner that nobody else may
// write: LMDB maps it, and a map another user controls could be truncated or
// filled with anything.
Precheck CheckFile(const std::string &path, uid_t dir_owner, int *fd_out) {
  const int fd = open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return Precheck{};
    if (errno == ELOOP) return Refused(path + " is a symbolic link: refused");
    return Refused("cannot open " + path + ": " + strerror(errno));
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int error = errno;
    close(fd);
    return Refused("cannot examine " + path + ": " + strerror(error));
  }
  Precheck out;
  out.exists = true;
  out.dev = st.st_dev;
  out.ino = st.st_ino;
  if (!S_ISREG(st.st_mode)) {
    out = Refused(path + " is not a regular file: refused");
  } else if (!TrustedOwner(st.st_uid, dir_owner)) {
    out = Refused(path + " belongs to uid " + Hex(st.st_uid) +
                  ", neither this user nor root: refused (remove it)");
  } else if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
    out = Refused(path + " is writable by group or others (mode " + Mode(st.st_mode) +
                  "): refused; chmod go-w it");
  }
  if (out.kind != Precheck::kOk || fd_out == nullptr) {
    close(fd);
  } else {
    *fd_out = fd;
  }
  return out;
}

// LMDB 0.9 meta page (64-bit): page header (16 bytes), then MDB_meta: magic,
// version, address, mapsize, the free and main MDB_db (48 bytes each: pad =
// page size for the free one, flags, depth, 3 page counts, entries, root),
// last page, txnid.
constexpr uint32_t kLmdbMagic = 0xBEEFC0DE;
constexpr uint32_t kLmdbDataVersion = 1;
constexpr uint16_t kLmdbPageMeta = 0x08;
constexpr uint64_t kLmdbNoPage = ~uint64_t{0};

template <typename T>
T Load(const unsigned char *p) {
  T v;
  memcpy(&v, p, sizeof v);
  return v;
}

std::string CheckMeta(const unsigned char *page, uint64_t index, uint32_t psize, off_t size) {
  const std::string which = "meta page " + Hex(index);
  if (Load<uint64_t>(page) != index || (Load<uint16_t>(page + 10) & kLmdbPageMeta) == 0)
    return which + " is not a meta page";
  if (Load<uint32_t>(page + 16) != kLmdbMagic) return which + " has a wrong magic";
  if (Load<uint32_t>(page + 20) != kLmdbDataVersion)
    return which + " has an unknown LMDB format version";
  if (Load<uint32_t>(page + 40) != psize) return which + " names another page size";
  const uint64_t last = Load<uint64_t>(page + 136);
  const uint64_t pages = static_cast<uint64_t>(size) / psize;
  if (last < 1 || last >= pages) {
    return which + " says the data ends at page " + Hex(last) + ", but the file has " + Hex(pages) +
           " pages (truncated?)";
  }
  for (size_t db : {size_t{40}, size_t{88}}) {
    const uint64_t root = Load<uint64_t>(page + db + 40);
    if (root != kLmdbNoPage && (root < 2 || root > last))
      return which + " names a root page past the data";
    if (Load<uint16_t>(page + db + 6) > 16) return which + " names an impossible tree depth";
  }
  return std::string();
}

// Walks every page the current meta reaches, reading the file (never the
// map): LMDB trusts its pages, and a damaged node (a flag that means "sub
// database", a length past the page, a child page past the end) makes it
// dereference NULL or read past the file. Nodes are checked for what LMDB
// will read of them; the serials' order and content are the digest's job.
class TreeCheck {
 public:
  TreeCheck(int fd, uint32_t psize, uint64_t last) : fd_(fd), psize_(psize), last_(last) {}

  std::string Run(const unsigned char *meta_page) {
    for (size_t db : {size_t{40}, size_t{88}}) {
      const uint64_t root = Load<uint64_t>(meta_page + db + 40);
      const bool main = db == 88;
      if (root == kLmdbNoPage) continue;
      if (std::string why = Tree(root, main ? kMain : kFree); !why.empty()) return why;
    }
    return std::string();
  }

 private:
  enum Kind { kFree, kMain, kTable };
  static constexpr uint16_t kBranch = 0x01, kLeaf = 0x02, kOverflow = 0x04;
  static constexpr uint16_t kBigData = 0x01, kSubData = 0x02;

  bool ReadPage(uint64_t pgno, std::vector<unsigned char> *page) {
    page->resize(psize_);
    return pread(fd_, page->data(), psize_, static_cast<off_t>(pgno) * psize_) ==
           static_cast<ssize_t>(psize_);
  }

  std::string Tree(uint64_t root, Kind kind) { return Page(root, kind, 0); }

  std::string Page(uint64_t pgno, Kind kind, int depth) {
    const std::string where = "page " + Hex(pgno);
    if (pgno < 2 || pgno > last_) return "a link to page " + Hex(pgno) + ", past the data";
    if (depth > 30) return where + ": a tree too deep";
    if (!seen_.insert(pgno).second) return where + " is reached twice";
    if (++pages_ > 100000000) return "too many pages";
    std::vector<unsigned char> page;
    if (!ReadPage(pgno, &page)) return where + ": cannot be read";
    const unsigned char *p = page.data();
    const uint16_t flags = Load<uint16_t>(p + 10);
    const uint16_t lower = Load<uint16_t>(p + 12), upper = Load<uint16_t>(p + 14);
    if (Load<uint64_t>(p) != pgno) return where + " names another page number";
    const bool branch = (flags & 0x7f) == kBranch, leaf = (flags & 0x7f) == kLeaf;
    if (!branch && !leaf) return where + " is neither a branch nor a leaf page";
    if (lower < 16 || lower > upper || upper > psize_ || (lower & 1) != 0)
      return where + " has impossible bounds";
    const size_t keys = (lower - 16u) / 2;
    if (branch && keys < 1) return where + " is an empty branch";
    for (size_t i = 0; i < keys; ++i) {
      const size_t at = Load<uint16_t>(p + 16 + 2 * i);
      if (at < upper || at + 8 > psize_) return where + ": a node outside the page";
      const unsigned char *node = p + at;
      const uint16_t lo = Load<uint16_t>(node), hi = Load<uint16_t>(node + 2);
      const uint16_t nflags = Load<uint16_t>(node + 4), ksize = Load<uint16_t>(node + 6);
      if (at + 8 + ksize > psize_) return where + ": a key past the page";
      if (kind == kTable && ksize > kSerialKeyMax + 8) return where + ": a key too long";
      if (branch) {
        const uint64_t child = lo | (uint64_t{hi} << 16) | (uint64_t{nflags} << 32);
        if (std::string why = Page(child, kind, depth + 1); !why.empty()) return why;
        continue;
      }
      const uint64_t dsize = lo | (uint64_t{hi} << 16);
      const unsigned char *data = node + 8 + ksize;
      const uint16_t allowed = kind == kMain ? (kBigData | kSubData) : kBigData;
      if ((nflags & ~allowed) != 0) return where + ": a node with flags it cannot have";
      if (nflags & kSubData) {
        // A named table of the main one: its MDB_db, then its tree.
        if (dsize != 48 || at + 8 + ksize + 48 > psize_) return where + ": a bad table record";
        if (Load<uint16_t>(data + 4) != 0) return where + ": a table with unexpected flags";
        const uint64_t root = Load<uint64_t>(data + 40);
        if (root == kLmdbNoPage) continue;
        if (std::string why = Page(root, kTable, 0); !why.empty()) return why;
        continue;
      }
      if (dsize > kMaxRecord) return where + ": a record too long";
      if (nflags & kBigData) {
        if (at + 8 + ksize + 8 > psize_) return where + ": a bad overflow link";
        const uint64_t first = Load<uint64_t>(data);
        std::vector<unsigned char> over;
        if (first < 2 || first > last_ || !ReadPage(first, &over))
          return where + ": an overflow link past the data";
        const uint32_t count = Load<uint32_t>(over.data() + 12);
        if ((Load<uint16_t>(over.data() + 10) & kOverflow) == 0 ||
            Load<uint64_t>(over.data()) != first || count == 0 || first + count - 1 > last_ ||
            uint64_t{count} * psize_ - 16 < dsize) {
          return where + ": a bad overflow page";
        }
        continue;
      }
      if (at + 8 + ksize + dsize > psize_) return where + ": a record past the page";
      if (kind == kFree) {
        // A list of free page numbers: its count, then that many.
        if (dsize < 8 || dsize % 8 != 0 || Load<uint64_t>(data) != dsize / 8 - 1)
          return where + ": a bad free-page list";
        for (uint64_t j = 1; j < dsize / 8; ++j) {
          if (Load<uint64_t>(data + 8 * j) > last_) return where + ": a free page past the data";
        }
      }
    }
    return std::string();
  }

  int fd_;
  uint32_t psize_;
  uint64_t last_;
  std::set<uint64_t> seen_;
  uint64_t pages_ = 0;
};

Precheck CheckDataFile(const std::string &dir, uid_t dir_owner) {
  if (Precheck lock = CheckFile(dir + "/lock.mdb", dir_owner, nullptr);
      lock.kind != Precheck::kOk) {
    return lock;
  }
  const std::string path = dir + "/data.mdb";
  int fd = -1;
  Precheck out = CheckFile(path, dir_owner, &fd);
  if (out.kind != Precheck::kOk || !out.exists) return out;
  struct stat st {};
  unsigned char page0[4096], page1[4096];
  std::string damage;
  if (fstat(fd, &st) != 0) {
    damage = strerror(errno);
  } else if (st.st_size == 0) {
    // A new environment not initialized yet (LMDB writes its meta pages on open).
  } else if (pread(fd, page0, sizeof page0, 0) != static_cast<ssize_t>(sizeof page0)) {
    damage = "truncated to " + Hex(static_cast<uint64_t>(st.st_size)) + " bytes";
  } else {
    const uint32_t psize = Load<uint32_t>(page0 + 40);
    if (psize < 4096 || psize > 65536 || (psize & (psize - 1)) != 0) {
      damage = "meta page 0 names an impossible page size";
    } else if (st.st_size < static_cast<off_t>(2) * psize ||
               pread(fd, page1, sizeof page1, psize) != static_cast<ssize_t>(sizeof page1)) {
      damage = "truncated to " + Hex(static_cast<uint64_t>(st.st_size)) + " bytes";
    } else {
      damage = CheckMeta(page0, 0, psize, st.st_size);
      if (damage.empty()) damage = CheckMeta(page1, 1, psize, st.st_size);
      if (damage.empty()) {
        // The trees of the meta LMDB will use: the one of the later transaction.
        const unsigned char *meta =
            Load<uint64_t>(page1 + 144) > Load<uint64_t>(page0 + 144) ? page1 : page0;
        damage = TreeCheck(fd, psize, Load<uint64_t>(meta + 136)).Run(meta);
      }
    }
  }
  close(fd);
  if (!damage.empty()) {
    out.kind = Precheck::kDamaged;
    out.why = "data.mdb: " + damage;
  }
  return out;
}

std::string UtcStamp() {
  const time_t now = time(nullptr);
  struct tm tm {};
  gmtime_r(&now, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y%m%dT%H%M%SZ", &tm);
  return buf;
}

// Renames data.mdb aside and removes lock.mdb (its reader table and txnid
// belong to the old file; processes that still have them open keep their
// copies); one line on stderr, which nginx and httpd send to their error log.
Status MoveAside(const std::string &dir, const std::string &reason) {
  std::string aside = dir + "/data.mdb.corrupt-" + UtcStamp();
  struct stat st {};
  if (lstat(aside.c_str(), &st) == 0) aside += "-" + Hex(static_cast<uint64_t>(getpid()));
  if (rename((dir + "/data.mdb").c_str(), aside.c_str()) != 0 && errno != ENOENT) {
    const std::string error = strerror(errno);
    fprintf(stderr, "certgate: revocation cache %s is damaged (%s) and cannot be moved aside: %s\n",
            dir.c_str(), reason.c_str(), error.c_str());
    return Status::Error("revocation cache " + dir + " is damaged (" + reason +
                         ") and cannot be moved aside: " + error);
  }
  unlink((dir + "/lock.mdb").c_str());
  const std::string line = "certgate: revocation cache " + dir + " is damaged (" + reason +
                           "): moved it aside to " + aside +
                           " and started a new one; the certgate_crl files are ingested again "
                           "and fetched CRLs fetched again, revocation is unavailable meanwhile\n";
  (void)!write(STDERR_FILENO, line.data(), line.size());
  return Status::Ok();
}

}  // namespace certgate::store_detail
