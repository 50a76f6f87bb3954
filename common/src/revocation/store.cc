#include <certgate/revocation_store.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <set>
#include <tuple>
#include <vector>

namespace certgate {
namespace {

constexpr uint8_t kRecordVersion = 2;
// meta["format"]: a store without it, or with another, was written by another
// version of certgate (or is not ours) and is rebuilt.
constexpr std::string_view kStoreFormat = "certgate-revocation-cache 2";
// A record (CRL, OCSP, URL, file) this long is damage, not data; no read goes
// past it (nor past the file: see kTailPad).
constexpr size_t kMaxRecord = size_t{1} << 20;
// data.mdb is kept this much longer than its last page (a sparse tail): a
// damaged node length makes LMDB read up to ~128 KiB past a page, which past
// the end of the file would be SIGBUS. Topped up when under kTailPadLow before
// a write (a write transaction adds at most ~3 MB: kEntriesPerTxn serials).
constexpr off_t kTailPad = off_t{16} << 20;
constexpr off_t kTailPadLow = off_t{8} << 20;
constexpr size_t kSerialKeyMax = 8 + 2 + 255;
constexpr size_t kSerialValueSize = 9;

// A record checksum: FNV-1a over 64-bit words (and the length). Every step is
// a bijection of the state, so a change within one word always changes it; a
// word at a time keeps it cheap on the lookup path (a CRL record per lookup).
uint64_t Fnv1a(std::string_view s) {
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  uint64_t h = 0xcbf29ce484222325ULL ^ s.size();
  size_t i = 0;
  for (; i + 8 <= s.size(); i += 8) {
    uint64_t w;
    memcpy(&w, s.data() + i, 8);
    h = (h ^ w) * kPrime;
  }
  uint64_t tail = 0;
  memcpy(&tail, s.data() + i, s.size() - i);
  h = (h ^ tail) * kPrime;
  return h ^ (h >> 29);
}

// Records: a version byte, then fields in order (little-endian int64, u32-length
// strings), then the FNV-1a of all that. A record that does not check is damage.
class Writer {
 public:
  Writer() { out_.push_back(static_cast<char>(kRecordVersion)); }
  Writer &Int(int64_t v) {
    for (int i = 0; i < 8; ++i)
      out_.push_back(static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
    return *this;
  }
  Writer &Str(std::string_view s) {
    uint32_t n = static_cast<uint32_t>(s.size());
    for (int i = 0; i < 4; ++i) out_.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
    out_.append(s.data(), s.size());
    return *this;
  }
  std::string Finish() {
    const uint64_t sum = Fnv1a(out_);
    for (int i = 0; i < 8; ++i) out_.push_back(static_cast<char>((sum >> (8 * i)) & 0xff));
    return std::move(out_);
  }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) {
    if (in.size() < 9 || in.size() > kMaxRecord || static_cast<uint8_t>(in[0]) != kRecordVersion)
      return;
    uint64_t sum = 0;
    for (int i = 0; i < 8; ++i)
      sum |= static_cast<uint64_t>(static_cast<uint8_t>(in[in.size() - 8 + i])) << (8 * i);
    in.remove_suffix(8);
    if (Fnv1a(in) != sum) return;
    in_ = in;
    ok_ = true;
    pos_ = 1;
  }
  int64_t Int() {
    if (!ok_ || pos_ + 8 > in_.size()) return ok_ = false, 0;
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
      v |= static_cast<uint64_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += 8;
    return static_cast<int64_t>(v);
  }
  std::string Str() {
    if (!ok_ || pos_ + 4 > in_.size()) return ok_ = false, std::string();
    uint32_t n = 0;
    for (int i = 0; i < 4; ++i)
      n |= static_cast<uint32_t>(static_cast<uint8_t>(in_[pos_ + i])) << (8 * i);
    pos_ += 4;
    if (n > in_.size() - pos_) return ok_ = false, std::string();
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  bool good() const { return ok_; }
  // Every field read, nothing left over.
  bool ok() const { return ok_ && pos_ == in_.size(); }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = false;
};

std::string Encode(const CrlMeta &m) {
  Writer w;
  w.Int(static_cast<int64_t>(m.gen))
      .Int(m.this_update)
      .Int(m.next_update)
      .Str(m.crl_number)
      .Str(m.crl_number_dec)
      .Str(m.source)
      .Int(m.ingested_at)
      .Int(m.checked_at)
      .Int(static_cast<int64_t>(m.count))
      .Int(m.flags)
      .Str(m.issuer);
  std::string scope;
  for (const std::string &url : m.scope) scope += url + '\n';
  w.Str(scope).Int(static_cast<int64_t>(m.stored)).Str(m.serial_digest);
  return w.Finish();
}
std::optional<CrlMeta> DecodeCrl(std::string_view in) {
  Reader r(in);
  CrlMeta m;
  m.gen = static_cast<uint64_t>(r.Int());
  m.this_update = r.Int();
  m.next_update = r.Int();
  m.crl_number = r.Str();
  m.crl_number_dec = r.Str();
  m.source = r.Str();
  m.ingested_at = r.Int();
  m.checked_at = r.Int();
  m.count = static_cast<uint64_t>(r.Int());
  m.flags = static_cast<uint32_t>(r.Int());
  m.issuer = r.Str();
  const std::string scope = r.Str();
  for (size_t start = 0, end; (end = scope.find('\n', start)) != std::string::npos;
       start = end + 1) {
    m.scope.push_back(scope.substr(start, end - start));
  }
  m.stored = static_cast<uint64_t>(r.Int());
  m.serial_digest = r.Str();
  if (!r.ok()) return std::nullopt;
  return m;
}

std::string Encode(const OcspRecord &o) {
  Writer w;
  w.Int(o.status)
      .Int(o.this_update)
      .Int(o.next_update)
      .Int(o.revoked_at)
      .Int(o.reason)
      .Str(o.source)
      .Int(o.fetched_at)
      .Str(o.subject);
  return w.Finish();
}
std::optional<OcspRecord> DecodeOcsp(std::string_view in) {
  Reader r(in);
  OcspRecord o;
  o.status = static_cast<int>(r.Int());
  o.this_update = r.Int();
  o.next_update = r.Int();
  o.revoked_at = r.Int();
  o.reason = static_cast<int>(r.Int());
  o.source = r.Str();
  o.fetched_at = r.Int();
  o.subject = r.Str();
  if (!r.ok()) return std::nullopt;
  return o;
}

std::string Encode(const UrlState &u) {
  Writer w;
  w.Str(u.etag)
      .Str(u.last_modified)
      .Int(u.last_ok ? 1 : 0)
      .Str(u.last_result)
      .Int(u.last_attempt)
      .Int(u.last_success)
      .Int(u.duration_ms)
      .Int(u.failures)
      .Int(u.backoff_until)
      .Int(u.lease_pid)
      .Int(u.lease_expiry);
  return w.Finish();
}
std::optional<UrlState> DecodeUrl(std::string_view in) {
  Reader r(in);
  UrlState u;
  u.etag = r.Str();
  u.last_modified = r.Str();
  u.last_ok = r.Int() != 0;
  u.last_result = r.Str();
  u.last_attempt = r.Int();
  u.last_success = r.Int();
  u.duration_ms = r.Int();
  u.failures = r.Int();
  u.backoff_until = r.Int();
  u.lease_pid = r.Int();
  u.lease_expiry = r.Int();
  if (!r.ok()) return std::nullopt;
  return u;
}

std::string Encode(const FileState &f) {
  Writer w;
  w.Int(f.mtime_ns).Int(f.size).Str(f.issuer_id).Str(f.result);
  w.Int(static_cast<int64_t>(f.stored.size()));
  for (const FileState::Stored &crl : f.stored)
    w.Str(crl.issuer_id).Str(crl.crl_number).Int(crl.this_update);
  return w.Finish();
}
std::optional<FileState> DecodeFile(std::string_view in) {
  Reader r(in);
  FileState f;
  f.mtime_ns = r.Int();
  f.size = r.Int();
  f.issuer_id = r.Str();
  f.result = r.Str();
  const int64_t stored = r.Int();
  for (int64_t i = 0; r.good() && i < stored && i < 1024; ++i) {
    FileState::Stored crl;
    crl.issuer_id = r.Str();
    crl.crl_number = r.Str();
    crl.this_update = r.Int();
    f.stored.push_back(std::move(crl));
  }
  if (!r.ok()) return std::nullopt;
  return f;
}

// Revoked entry value: 8 bytes date (LE) + 1 byte reason (0xff = none).
std::string EncodeEntry(const RevokedEntry &e) {
  std::string out(kSerialValueSize, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((static_cast<uint64_t>(e.revoked_at) >> (8 * i)) & 0xff);
  out[8] = static_cast<char>(e.reason < 0 ? 0xff : e.reason);
  return out;
}

MDB_val Val(std::string_view s) {
  MDB_val v;
  v.mv_size = s.size();
  v.mv_data = const_cast<char *>(s.data());
  return v;
}
std::string_view View(const MDB_val &v) {
  return std::string_view(static_cast<const char *>(v.mv_data), v.mv_size);
}

Status LmdbError(const std::string &what, int rc) {
  return Status::Error("revocation cache: " + what + ": " + mdb_strerror(rc));
}

// LMDB's answers that mean the file is not what it wrote.
bool IsDamage(int rc) {
  // (Not MDB_BAD_TXN: a transaction a full map or disk failed answers that.)
  return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID ||
         rc == MDB_VERSION_MISMATCH || rc == MDB_INCOMPATIBLE || rc == MDB_CURSOR_FULL;
}

std::string GenPrefix(uint64_t gen) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((gen >> (8 * (7 - i))) & 0xff);
  return out;
}

uint64_t GenOf(std::string_view key) {
  uint64_t gen = 0;
  for (size_t i = 0; i < 8 && i < key.size(); ++i) gen = (gen << 8) | static_cast<uint8_t>(key[i]);
  return gen;
}

std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
  return buf;
}

Status MakeDirs(const std::string &dir) {
  std::string path;
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = dir.find('/', pos + 1);
    path = dir.substr(0, pos);
    if (path.empty()) continue;
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode))
        return Status::Error("revocation cache " + dir + ": " + path + " is not a directory");
      continue;
    }
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return Status::Error("revocation cache: cannot create " + path + ": " + strerror(errno));
    }
  }
  return Status::Ok();
}

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

// The outcome of looking at data.mdb before LMDB maps it.
struct Precheck {
  enum Kind { kOk, kRefused, kDamaged } kind = kOk;
  std::string why;
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
};

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

std::optional<std::string_view> RawGet(MDB_txn *txn, MDB_dbi dbi, std::string_view key, int *rc) {
  MDB_val k = Val(key), v;
  *rc = mdb_get(txn, dbi, &k, &v);
  if (*rc != 0) return std::nullopt;
  return View(v);
}

// Walks generation `gen`'s serials in key order: count and SHA-256 over each
// key suffix (without the generation) and value. Sizes are checked before
// anything is read; keys must strictly ascend.
Status WalkGeneration(MDB_txn *txn, MDB_dbi dbi, uint64_t gen, uint64_t *count,
                      std::string *digest) {
  *count = 0;
  MDB_cursor *cursor = nullptr;
  int rc = mdb_cursor_open(txn, dbi, &cursor);
  if (rc != 0) return LmdbError("cannot open a cursor", rc);
  EVP_MD_CTX *ctx = EVP_MD_CTX_new();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(ctx);
    mdb_cursor_close(cursor);
    return Status::Error("revocation cache: cannot start a SHA-256");
  }
  const std::string prefix = GenPrefix(gen);
  std::string buffer, last;
  buffer.reserve(1 << 16);
  std::string problem;
  MDB_val k = Val(prefix), v;
  for (rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE); rc == 0;
       rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
    if (k.mv_size < 8 || memcmp(k.mv_data, prefix.data(), 8) != 0) break;
    if (k.mv_size > kSerialKeyMax || v.mv_size != kSerialValueSize) {
      problem = "a serial entry of an impossible size";
      break;
    }
    const std::string_view key = View(k);
    if (!last.empty() && key <= last) {
      problem = "serial keys out of order";
      break;
    }
    last.assign(key.data(), key.size());
    buffer.push_back(static_cast<char>(key.size() - 8));
    buffer.append(key.data() + 8, key.size() - 8);
    buffer.append(static_cast<const char *>(v.mv_data), v.mv_size);
    if (buffer.size() > (1 << 16) - 512) {
      EVP_DigestUpdate(ctx, buffer.data(), buffer.size());
      buffer.clear();
    }
    ++*count;
  }
  mdb_cursor_close(cursor);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  EVP_DigestUpdate(ctx, buffer.data(), buffer.size());
  EVP_DigestFinal_ex(ctx, md, &md_len);
  EVP_MD_CTX_free(ctx);
  if (!problem.empty()) return Status::Error(problem);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cannot read the serials", rc);
  digest->assign(reinterpret_cast<char *>(md), md_len);
  return Status::Ok();
}

}  // namespace

struct RevocationStore::Env {
  MDB_env *env = nullptr;
  MDB_dbi crl = 0, serial = 0, ocsp = 0, url = 0, file = 0, meta = 0;
  dev_t dev = 0;
  ino_t ino = 0;
  uint64_t epoch = 0;
  std::mutex mutex;  // idle, verified
  // Reset read txns (with their serial cursor, or null), renewed on use.
  std::vector<std::pair<MDB_txn *, MDB_cursor *>> idle;
  std::set<uint64_t> verified;  // generations whose serials matched their digest
  // Recently verified generations, one slot per gen % size: a lookup of the
  // chain's CRLs (leaf and intermediates) takes no lock once they are verified.
  std::array<std::atomic<uint64_t>, 8> verified_hints{};
  bool Hinted(uint64_t gen) const {
    return gen != 0 &&
           verified_hints[gen % verified_hints.size()].load(std::memory_order_acquire) == gen;
  }
  void Hint(uint64_t gen) {
    verified_hints[gen % verified_hints.size()].store(gen, std::memory_order_release);
  }
  std::mutex verify_mutex;  // one walk at a time (a second waiter finds it verified)

  ~Env() {
    for (auto &[txn, cursor] : idle) {
      if (cursor != nullptr) mdb_cursor_close(cursor);
      mdb_txn_abort(txn);
    }
    if (env != nullptr) mdb_env_close(env);
  }
};

namespace {

struct Opened {
  std::shared_ptr<RevocationStore::Env> env;  // set: opened
  std::string damage;                         // set: damaged, move aside
};

}  // namespace

std::string SerialKey(uint64_t gen, std::string_view magnitude, bool negative) {
  while (!magnitude.empty() && magnitude.front() == '\0') magnitude.remove_prefix(1);
  std::string key = GenPrefix(gen);
  // Negative serials (invalid but seen) sort before every positive one.
  key.push_back(static_cast<char>(negative ? 0 : 1));
  key.push_back(static_cast<char>(magnitude.size() & 0xff));
  key.append(magnitude.data(), magnitude.size());
  return key;
}

namespace {

// Opens data.mdb once it passed the checks; damage is an outcome, not an error.
Result<Opened> TryOpen(const std::string &dir, size_t map_size, uid_t dir_owner) {
  Precheck pre = CheckDataFile(dir, dir_owner);
  if (pre.kind == Precheck::kRefused)
    return Status::Error("revocation cache " + dir + ": " + pre.why);
  Opened out;
  if (pre.kind == Precheck::kDamaged) {
    out.damage = pre.why;
    return out;
  }
  auto env = std::make_shared<RevocationStore::Env>();
  int rc = mdb_env_create(&env->env);
  if (rc != 0) {
    env->env = nullptr;
    return LmdbError("cannot create an environment", rc);
  }
  if ((rc = mdb_env_set_maxdbs(env->env, 8)) != 0 ||
      (rc = mdb_env_set_mapsize(env->env, map_size)) != 0 ||
      (rc = mdb_env_set_maxreaders(env->env, 1024)) != 0) {
    return LmdbError("cannot configure the environment of " + dir, rc);
  }
  rc = mdb_env_open(env->env, dir.c_str(), MDB_NOTLS, 0600);
  if (rc != 0) {
    if (IsDamage(rc)) {
      out.damage = std::string("data.mdb: ") + mdb_strerror(rc);
      return out;
    }
    const bool permissions = rc == EACCES || rc == EPERM || rc == EROFS;
    return Status::Error(
        "revocation cache " + dir + ": cannot open: " + mdb_strerror(rc) +
        (permissions ? " (the directory must be writable by the worker user)" : ""));
  }
  int fd = -1;
  struct stat st {};
  if (mdb_env_get_fd(env->env, &fd) == 0 && fstat(fd, &st) == 0) {
    env->dev = st.st_dev;
    env->ino = st.st_ino;
  }
  int dead = 0;
  mdb_reader_check(env->env, &dead);
  MDB_txn *txn = nullptr;
  rc = mdb_txn_begin(env->env, nullptr, 0, &txn);
  auto fail = [&](const std::string &what, int code) -> Result<Opened> {
    if (txn != nullptr) mdb_txn_abort(txn);
    if (IsDamage(code)) {
      out.damage = what + ": " + mdb_strerror(code);
      return out;
    }
    return Status::Error("revocation cache " + dir + ": " + what + ": " + mdb_strerror(code));
  };
  if (rc != 0) {
    txn = nullptr;
    return fail("cannot begin a write", rc);
  }
  MDB_dbi main = 0;
  MDB_stat main_stat{};
  if ((rc = mdb_dbi_open(txn, nullptr, 0, &main)) != 0 ||
      (rc = mdb_stat(txn, main, &main_stat)) != 0) {
    return fail("cannot read the main table", rc);
  }
  const bool fresh = main_stat.ms_entries == 0;
  struct Db {
    const char *name;
    MDB_dbi *dbi;
  } dbs[] = {{"crl", &env->crl}, {"serial", &env->serial}, {"ocsp", &env->ocsp},
             {"url", &env->url}, {"file", &env->file},     {"meta", &env->meta}};
  for (const Db &db : dbs) {
    rc = mdb_dbi_open(txn, db.name, MDB_CREATE, db.dbi);
    if (rc != 0) return fail(std::string("cannot open table ") + db.name, rc);
  }
  std::optional<std::string_view> format = RawGet(txn, env->meta, "format", &rc);
  if (rc != 0 && rc != MDB_NOTFOUND) return fail("cannot read the format record", rc);
  if (fresh) {
    MDB_val k = Val("format"), v = Val(kStoreFormat);
    if ((rc = mdb_put(txn, env->meta, &k, &v, 0)) != 0) return fail("cannot write its format", rc);
  } else if (!format || *format != kStoreFormat) {
    mdb_txn_abort(txn);
    out.damage = !format ? "written by another version of certgate, or not a certgate cache: it "
                           "has no format record"
                         : "written by another version of certgate (format \"" +
                               std::string(format->substr(0, 64)) + "\")";
    return out;
  }
  rc = mdb_txn_commit(txn);
  txn = nullptr;
  if (rc != 0) return fail("cannot commit", rc);
  out.env = std::move(env);
  return out;
}

// Opens the store, moving a damaged one aside first (exactly one process does:
// the others find a new data.mdb when they get the lock).
Result<std::shared_ptr<RevocationStore::Env>> OpenWithRepair(const std::string &dir,
                                                             size_t map_size, int *moved) {
  uid_t dir_owner = 0;
  if (Status checked = CheckDirectory(dir, &dir_owner); !checked.ok()) return checked;
  RepairLock lock(dir);
  if (!lock.error().empty()) {
    return Status::Error("revocation cache " + dir + ": " + lock.error() +
                         (errno == EACCES || errno == EROFS
                              ? " (the directory must be writable by the worker user)"
                              : ""));
  }
  for (int attempt = 0; attempt < 3; ++attempt) {
    lock.Lock(LOCK_SH);
    Result<Opened> opened = TryOpen(dir, map_size, dir_owner);
    lock.Lock(LOCK_UN);
    if (!opened.ok()) return opened.status();
    if (opened->env) return opened->env;
    // Exclusively, look again: another process may have moved it aside already
    // (or was still creating it), then move it aside.
    lock.Lock(LOCK_EX);
    opened = TryOpen(dir, map_size, dir_owner);
    if (!opened.ok() || opened->env) {
      lock.Lock(LOCK_UN);
      if (!opened.ok()) return opened.status();
      return opened->env;
    }
    Status aside = MoveAside(dir, opened->damage);
    lock.Lock(LOCK_UN);
    if (!aside.ok()) return aside;
    ++*moved;
  }
  return Status::Error("revocation cache " + dir + ": still damaged after moving it aside");
}

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// See kTailPad. Called with the writer lock held, so sizes only grow.
void KeepTailPad(MDB_env *env) {
  MDB_envinfo info{};
  MDB_stat stat{};
  int fd = -1;
  struct stat st {};
  if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &stat) != 0 ||
      mdb_env_get_fd(env, &fd) != 0 || fstat(fd, &st) != 0) {
    return;
  }
  const off_t used = static_cast<off_t>(info.me_last_pgno + 1) * stat.ms_psize;
  if (st.st_size < used + kTailPadLow) (void)!ftruncate(fd, used + kTailPad);
}

}  // namespace

Result<std::unique_ptr<RevocationStore>> RevocationStore::Open(const std::string &dir,
                                                               size_t map_size) {
  if (dir.empty()) return Status::Error("revocation cache: no directory given");
  Status made = MakeDirs(dir);
  if (!made.ok()) return made;
  std::unique_ptr<RevocationStore> store(new RevocationStore());
  store->dir_ = dir;
  store->map_size_ = map_size;
  Status opened = store->Reopen();
  if (!opened.ok()) return opened;
  return store;
}

RevocationStore::~RevocationStore() = default;

Status RevocationStore::Reopen() {
  int moved = 0;
  Result<std::shared_ptr<Env>> opened = OpenWithRepair(dir_, map_size_, &moved);
  moved_aside_ += moved;
  if (!opened.ok()) return opened.status();
  static std::atomic<uint64_t> epochs{0};
  opened.value()->epoch = ++epochs;
  std::lock_guard<std::mutex> lock(mutex_);
  env_ = std::move(opened).value();
  damage_.clear();
  damaged_.store(false, std::memory_order_release);
  next_identity_check_.store(SteadyMs() + 1000);
  return Status::Ok();
}

void RevocationStore::ReportDamage(const std::string &reason, uint64_t epoch) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (epoch != 0 && env_ && env_->epoch != epoch) return;
  if (damage_.empty()) damage_ = reason;
  damaged_.store(true, std::memory_order_release);
}

std::string RevocationStore::damage() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return damage_;
}

Status RevocationStore::Repair() {
  const std::shared_ptr<Env> env = CurrentEnv();
  std::string reason = damage();
  if (reason.empty()) reason = "reported damaged";
  {
    RepairLock lock(dir_);
    if (!lock.error().empty())
      return Status::Error("revocation cache " + dir_ + ": " + lock.error());
    lock.Lock(LOCK_EX);
    struct stat st {};
    if (stat((dir_ + "/data.mdb").c_str(), &st) == 0 && st.st_dev == env->dev &&
        st.st_ino == env->ino) {
      Status aside = MoveAside(dir_, reason);
      if (!aside.ok()) return aside;
      ++moved_aside_;
    }
  }
  return Reopen();
}

std::shared_ptr<RevocationStore::Env> RevocationStore::CurrentEnv() {
  std::lock_guard<std::mutex> lock(mutex_);
  return env_;
}

// Another process moved the store aside: open the new one (checked once a second).
void RevocationStore::FollowReplacement() {
  const int64_t now = SteadyMs();
  int64_t due = next_identity_check_.load();
  if (now < due || !next_identity_check_.compare_exchange_strong(due, now + 1000)) return;
  const std::shared_ptr<Env> env = CurrentEnv();
  struct stat st {};
  if (stat((dir_ + "/data.mdb").c_str(), &st) == 0 && st.st_dev == env->dev &&
      st.st_ino == env->ino) {
    return;
  }
  if (Status reopened = Reopen(); !reopened.ok()) {
    ReportDamage("replaced by another process, and the new one cannot be opened: " +
                 reopened.message());
  }
}

void RevocationStore::CheckStaleReaders() {
  int dead = 0;
  mdb_reader_check(CurrentEnv()->env, &dead);
}

void RevocationStore::ReturnReader(Env &env, MDB_txn *txn, MDB_cursor *cursor) {
  mdb_txn_reset(txn);
  std::lock_guard<std::mutex> lock(env.mutex);
  if (env.idle.size() < 64) {
    env.idle.emplace_back(txn, cursor);
  } else {
    if (cursor != nullptr) mdb_cursor_close(cursor);
    mdb_txn_abort(txn);
  }
}

Result<RevocationStore::ReadTxn> RevocationStore::Read() {
  FollowReplacement();
  std::shared_ptr<Env> env = CurrentEnv();
  MDB_txn *txn = nullptr;
  MDB_cursor *cursor = nullptr;
  {
    std::lock_guard<std::mutex> lock(env->mutex);
    if (!env->idle.empty()) {
      std::tie(txn, cursor) = env->idle.back();
      env->idle.pop_back();
    }
  }
  if (txn != nullptr) {
    if (mdb_txn_renew(txn) == 0) {
      if (cursor != nullptr && mdb_cursor_renew(txn, cursor) != 0) {
        mdb_cursor_close(cursor);
        cursor = nullptr;
      }
      ReadTxn read(this, std::move(env), txn);
      read.cursor_ = cursor;
      return read;
    }
    if (cursor != nullptr) mdb_cursor_close(cursor);
    mdb_txn_abort(txn);
    txn = nullptr;
  }
  const int rc = mdb_txn_begin(env->env, nullptr, MDB_RDONLY, &txn);
  if (rc != 0) {
    if (IsDamage(rc)) ReportDamage(std::string("cannot begin a read: ") + mdb_strerror(rc));
    return Status::Error("revocation cache " + dir_ + ": cannot begin a read: " + mdb_strerror(rc));
  }
  return ReadTxn(this, std::move(env), txn);
}

Result<RevocationStore::WriteTxn> RevocationStore::Write() {
  FollowReplacement();
  std::shared_ptr<Env> env = CurrentEnv();
  MDB_txn *txn = nullptr;
  const int rc = mdb_txn_begin(env->env, nullptr, 0, &txn);
  if (rc != 0) {
    if (IsDamage(rc)) ReportDamage(std::string("cannot begin a write: ") + mdb_strerror(rc));
    return LmdbError("cannot begin a write in " + dir_, rc);
  }
  KeepTailPad(env->env);
  return WriteTxn(this, std::move(env), txn);
}

namespace {

// A record, or nullopt when absent; a record that does not decode, or an LMDB
// answer that means damage, is reported.
template <typename T, typename Decode>
std::optional<T> GetDecoded(RevocationStore *store, uint64_t epoch, MDB_txn *txn, MDB_dbi dbi,
                            std::string_view key, Decode decode, const char *what) {
  int rc = 0;
  std::optional<std::string_view> v = RawGet(txn, dbi, key, &rc);
  if (!v) {
    if (IsDamage(rc))
      store->ReportDamage(std::string("reading a ") + what + ": " + mdb_strerror(rc), epoch);
    return std::nullopt;
  }
  std::optional<T> decoded = decode(*v);
  if (!decoded) store->ReportDamage(std::string("a ") + what + " fails its checksum", epoch);
  return decoded;
}

}  // namespace

// ---- ReadTxn

RevocationStore::ReadTxn::ReadTxn(ReadTxn &&other) noexcept
    : store_(other.store_), env_(std::move(other.env_)), txn_(other.txn_), cursor_(other.cursor_) {
  other.txn_ = nullptr;
  other.cursor_ = nullptr;
}
RevocationStore::ReadTxn::~ReadTxn() {
  if (txn_ != nullptr) {
    ReturnReader(*env_, txn_, cursor_);
  } else if (cursor_ != nullptr) {
    mdb_cursor_close(cursor_);
  }
}
std::optional<CrlMeta> RevocationStore::ReadTxn::GetCrl(std::string_view issuer_id) const {
  return GetDecoded<CrlMeta>(store_, env_->epoch, txn_, env_->crl, issuer_id, DecodeCrl,
                             "CRL record");
}
std::optional<CrlHead> RevocationStore::ReadTxn::GetCrlHead(std::string_view issuer_id) const {
  int rc = 0;
  std::optional<std::string_view> v = RawGet(txn_, env_->crl, issuer_id, &rc);
  if (!v) {
    if (IsDamage(rc))
      store_->ReportDamage(std::string("reading a CRL record: ") + mdb_strerror(rc), env_->epoch);
    return std::nullopt;
  }
  Reader r(*v);
  CrlHead head;
  head.gen = static_cast<uint64_t>(r.Int());
  head.this_update = r.Int();
  head.next_update = r.Int();
  if (!r.good()) {
    store_->ReportDamage("a CRL record fails its checksum", env_->epoch);
    return std::nullopt;
  }
  return head;
}

SerialLookup RevocationStore::ReadTxn::FindRevoked(uint64_t gen, std::string_view magnitude,
                                                   bool negative) const {
  SerialLookup out;
  // The key of SerialKey(), on the stack: no allocation on the lookup path.
  while (!magnitude.empty() && magnitude.front() == '\0') magnitude.remove_prefix(1);
  if (magnitude.size() > 255) return out;
  char buf[kSerialKeyMax];
  for (int i = 0; i < 8; ++i) buf[i] = static_cast<char>((gen >> (8 * (7 - i))) & 0xff);
  buf[8] = static_cast<char>(negative ? 0 : 1);
  buf[9] = static_cast<char>(magnitude.size());
  memcpy(buf + 10, magnitude.data(), magnitude.size());
  const std::string_view key(buf, 10 + magnitude.size());
  auto damaged = [&](const std::string &why) {
    store_->ReportDamage("the serial table: " + why, env_->epoch);
    out.kind = SerialLookup::kDamaged;
    return out;
  };
  int rc = cursor_ != nullptr ? 0 : mdb_cursor_open(txn_, env_->serial, &cursor_);
  if (rc != 0) return damaged(mdb_strerror(rc));
  MDB_val k = Val(key), v;
  rc = mdb_cursor_get(cursor_, &k, &v, MDB_SET_RANGE);
  if (rc != 0 && rc != MDB_NOTFOUND) return damaged(mdb_strerror(rc));
  if (rc == 0 && View(k) == key) {
    if (v.mv_size != kSerialValueSize) return damaged("an entry of an impossible size");
    const unsigned char *value = static_cast<const unsigned char *>(v.mv_data);
    uint64_t when = 0;
    for (int i = 0; i < 8; ++i) when |= static_cast<uint64_t>(value[i]) << (8 * i);
    out.kind = SerialLookup::kRevoked;
    out.entry.revoked_at = static_cast<int64_t>(when);
    out.entry.reason = value[8] == 0xff ? -1 : value[8];
    return out;
  }
  // Absent only if its neighbours bracket it: a damaged branch page sends a
  // lookup to the wrong leaf, where it would "miss".
  if (rc == 0 && View(k) < key) return damaged("a lookup landed before its key");
  rc = mdb_cursor_get(cursor_, &k, &v, rc == MDB_NOTFOUND ? MDB_LAST : MDB_PREV);
  if (rc != 0 && rc != MDB_NOTFOUND) return damaged(mdb_strerror(rc));
  if (rc == 0 && !(View(k) < key)) return damaged("a lookup landed past its key");
  return out;
}

std::optional<RevokedEntry> RevocationStore::ReadTxn::GetRevoked(uint64_t gen,
                                                                 std::string_view magnitude,
                                                                 bool negative) const {
  SerialLookup found = FindRevoked(gen, magnitude, negative);
  if (found.kind != SerialLookup::kRevoked) return std::nullopt;
  return found.entry;
}

Status RevocationStore::ReadTxn::VerifySerials(const CrlMeta &meta) const {
  if (env_->Hinted(meta.gen)) return Status::Ok();
  auto verified = [&] {
    std::lock_guard<std::mutex> lock(env_->mutex);
    return env_->verified.count(meta.gen) != 0;
  };
  if (verified()) {
    env_->Hint(meta.gen);
    return Status::Ok();
  }
  std::lock_guard<std::mutex> walking(env_->verify_mutex);
  if (verified()) return Status::Ok();
  uint64_t count = 0;
  std::string digest;
  Status walked = WalkGeneration(txn_, env_->serial, meta.gen, &count, &digest);
  std::string problem;
  if (!walked.ok()) {
    problem = walked.message();
  } else if (count != meta.stored) {
    problem = Hex(count) + " serials where its record says " + Hex(meta.stored);
  } else if (digest != meta.serial_digest) {
    problem = "its serials do not match their digest";
  }
  if (!problem.empty()) {
    const std::string why = "the CRL of " + meta.issuer + ": " + problem;
    store_->ReportDamage(why, env_->epoch);
    return Status::Error("revocation cache " + store_->dir() + " is damaged: " + why);
  }
  std::lock_guard<std::mutex> lock(env_->mutex);
  env_->verified.insert(meta.gen);
  env_->Hint(meta.gen);
  return Status::Ok();
}

Status RevocationStore::ReadTxn::DigestSerials(uint64_t gen, uint64_t *count,
                                               std::string *digest) const {
  Status walked = WalkGeneration(txn_, env_->serial, gen, count, digest);
  if (walked.ok()) {
    std::lock_guard<std::mutex> lock(env_->mutex);
    env_->verified.insert(gen);
  }
  return walked;
}

uint64_t RevocationStore::ReadTxn::epoch() const { return env_->epoch; }
uint64_t RevocationStore::WriteTxn::epoch() const { return env_->epoch; }

std::optional<OcspRecord> RevocationStore::ReadTxn::GetOcsp(std::string_view cert_id) const {
  return GetDecoded<OcspRecord>(store_, env_->epoch, txn_, env_->ocsp, cert_id, DecodeOcsp,
                                "OCSP record");
}
std::optional<UrlState> RevocationStore::ReadTxn::GetUrl(std::string_view url) const {
  return GetDecoded<UrlState>(store_, env_->epoch, txn_, env_->url, url, DecodeUrl, "URL record");
}
std::optional<FileState> RevocationStore::ReadTxn::GetFile(std::string_view path) const {
  return GetDecoded<FileState>(store_, env_->epoch, txn_, env_->file, path, DecodeFile,
                               "file record");
}

// ---- WriteTxn

RevocationStore::WriteTxn::WriteTxn(WriteTxn &&other) noexcept
    : store_(other.store_),
      env_(std::move(other.env_)),
      txn_(other.txn_),
      last_serial_key_(std::move(other.last_serial_key_)) {
  other.txn_ = nullptr;
}
RevocationStore::WriteTxn::~WriteTxn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}
std::optional<CrlMeta> RevocationStore::WriteTxn::GetCrl(std::string_view issuer_id) const {
  return GetDecoded<CrlMeta>(store_, env_->epoch, txn_, env_->crl, issuer_id, DecodeCrl,
                             "CRL record");
}
std::optional<UrlState> RevocationStore::WriteTxn::GetUrl(std::string_view url) const {
  return GetDecoded<UrlState>(store_, env_->epoch, txn_, env_->url, url, DecodeUrl, "URL record");
}
std::optional<OcspRecord> RevocationStore::WriteTxn::GetOcsp(std::string_view cert_id) const {
  return GetDecoded<OcspRecord>(store_, env_->epoch, txn_, env_->ocsp, cert_id, DecodeOcsp,
                                "OCSP record");
}
std::optional<FileState> RevocationStore::WriteTxn::GetFile(std::string_view path) const {
  return GetDecoded<FileState>(store_, env_->epoch, txn_, env_->file, path, DecodeFile,
                               "file record");
}

namespace {
Status Put(MDB_txn *txn, MDB_dbi dbi, std::string_view key, std::string_view value,
           const char *what, unsigned flags = 0) {
  MDB_val k = Val(key), v = Val(value);
  int rc = mdb_put(txn, dbi, &k, &v, flags);
  if (rc != 0) return LmdbError(std::string("cannot store ") + what, rc);
  return Status::Ok();
}
}  // namespace

Status RevocationStore::WriteTxn::PutCrl(std::string_view issuer_id, const CrlMeta &meta) {
  return Put(txn_, env_->crl, issuer_id, Encode(meta), "a CRL record");
}
Status RevocationStore::WriteTxn::PutOcsp(std::string_view cert_id, const OcspRecord &record) {
  return Put(txn_, env_->ocsp, cert_id, Encode(record), "an OCSP answer");
}
Status RevocationStore::WriteTxn::PutUrl(std::string_view url, const UrlState &state) {
  return Put(txn_, env_->url, url, Encode(state), "a URL state");
}
Status RevocationStore::WriteTxn::PutFile(std::string_view path, const FileState &state) {
  return Put(txn_, env_->file, path, Encode(state), "a file record");
}

Status RevocationStore::WriteTxn::DeleteGeneration(uint64_t gen, size_t max_entries, bool *done) {
  *done = false;
  MDB_cursor *cursor = nullptr;
  int rc = mdb_cursor_open(txn_, env_->serial, &cursor);
  if (rc != 0) return LmdbError("cannot open a cursor", rc);
  const std::string prefix = GenPrefix(gen);
  MDB_val k = Val(prefix), v;
  rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  for (size_t deleted = 0; rc == 0 && deleted < max_entries; ++deleted) {
    if (k.mv_size < prefix.size() || memcmp(k.mv_data, prefix.data(), prefix.size()) != 0) break;
    rc = mdb_cursor_del(cursor, 0);
    if (rc != 0) break;
    // The cursor now rests on the next key, or nowhere past the last one.
    rc = mdb_cursor_get(cursor, &k, &v, MDB_GET_CURRENT);
    if (rc == EINVAL || rc == MDB_NOTFOUND) {
      k = Val(prefix);
      rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
    }
  }
  mdb_cursor_close(cursor);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cannot delete an old CRL", rc);
  *done = rc == MDB_NOTFOUND || k.mv_size < prefix.size() ||
          memcmp(k.mv_data, prefix.data(), prefix.size()) != 0;
  return Status::Ok();
}

namespace {
constexpr std::string_view kStagingPrefix = "staging:";
}  // namespace

Status RevocationStore::WriteTxn::MarkStaging(uint64_t gen, int64_t pid) {
  return Put(txn_, env_->meta, std::string(kStagingPrefix) + GenPrefix(gen),
             std::string_view(reinterpret_cast<const char *>(&pid), sizeof pid), "a staging mark");
}

Status RevocationStore::WriteTxn::ClearStaging(uint64_t gen) {
  const std::string key = std::string(kStagingPrefix) + GenPrefix(gen);
  MDB_val k = Val(key);
  const int rc = mdb_del(txn_, env_->meta, &k, nullptr);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cannot clear a staging mark", rc);
  return Status::Ok();
}

std::vector<uint64_t> RevocationStore::WriteTxn::AbandonedGenerations() const {
  std::set<uint64_t> in_use;
  MDB_cursor *cursor = nullptr;
  MDB_val k, v;
  if (mdb_cursor_open(txn_, env_->crl, &cursor) == 0) {
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
      if (std::optional<CrlMeta> meta = DecodeCrl(View(v))) in_use.insert(meta->gen);
    }
    mdb_cursor_close(cursor);
  }
  if (mdb_cursor_open(txn_, env_->meta, &cursor) == 0) {
    k = Val(kStagingPrefix);
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
      const std::string_view key = View(k);
      if (key.substr(0, kStagingPrefix.size()) != kStagingPrefix) break;
      int64_t pid = 0;
      if (key.size() != kStagingPrefix.size() + 8 || v.mv_size != sizeof pid) continue;
      memcpy(&pid, v.mv_data, sizeof pid);
      // Alive (EPERM: alive, another user's); a pid that was reused only
      // delays the cleanup.
      const bool alive = pid > 0 && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM);
      if (!alive) continue;
      in_use.insert(GenOf(key.substr(kStagingPrefix.size())));
    }
    mdb_cursor_close(cursor);
  }
  std::vector<uint64_t> abandoned;
  if (mdb_cursor_open(txn_, env_->serial, &cursor) != 0) return abandoned;
  std::string seek = GenPrefix(0);
  k = Val(seek);
  for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE); rc == 0 && k.mv_size >= 8;) {
    const uint64_t gen = GenOf(View(k));
    if (in_use.count(gen) == 0) abandoned.push_back(gen);
    if (gen == UINT64_MAX) break;
    seek = GenPrefix(gen + 1);  // one seek per generation, not a walk of its serials
    k = Val(seek);
    rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
  }
  mdb_cursor_close(cursor);
  return abandoned;
}

Result<uint64_t> RevocationStore::WriteTxn::NewGeneration() {
  uint64_t next = 1;
  int rc = 0;
  if (std::optional<std::string_view> v = RawGet(txn_, env_->meta, "next_gen", &rc);
      v && v->size() == 8) {
    memcpy(&next, v->data(), 8);
  }
  // Never one in use, whatever the counter says: a new CRL's serials written
  // into a live generation would be deleted with it.
  MDB_cursor *cursor = nullptr;
  MDB_val k, val;
  if (mdb_cursor_open(txn_, env_->serial, &cursor) == 0) {
    if (mdb_cursor_get(cursor, &k, &val, MDB_LAST) == 0 && k.mv_size >= 8)
      next = std::max(next, GenOf(View(k)) + 1);
    mdb_cursor_close(cursor);
  }
  if (mdb_cursor_open(txn_, env_->crl, &cursor) == 0) {
    for (rc = mdb_cursor_get(cursor, &k, &val, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &val, MDB_NEXT)) {
      if (std::optional<CrlMeta> meta = DecodeCrl(View(val))) next = std::max(next, meta->gen + 1);
    }
    mdb_cursor_close(cursor);
  }
  if (mdb_cursor_open(txn_, env_->meta, &cursor) == 0) {
    k = Val(kStagingPrefix);
    for (rc = mdb_cursor_get(cursor, &k, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &val, MDB_NEXT)) {
      const std::string_view key = View(k);
      if (key.substr(0, kStagingPrefix.size()) != kStagingPrefix) break;
      next = std::max(next, GenOf(key.substr(kStagingPrefix.size())) + 1);
    }
    mdb_cursor_close(cursor);
  }
  uint64_t after = next + 1;
  Status put = Put(txn_, env_->meta, "next_gen",
                   std::string_view(reinterpret_cast<const char *>(&after), 8), "the generation");
  if (!put.ok()) return put;
  return next;
}

Status RevocationStore::WriteTxn::PutRevoked(uint64_t gen, std::string_view magnitude,
                                             bool negative, const RevokedEntry &entry) {
  std::string key = SerialKey(gen, magnitude, negative);
  std::string value = EncodeEntry(entry);
  MDB_val k = Val(key), v = Val(value);
  // Generations only grow, so a sorted CRL's keys are all past every stored key.
  unsigned flags = (last_serial_key_.empty() || key > last_serial_key_) ? MDB_APPEND : 0;
  int rc = mdb_put(txn_, env_->serial, &k, &v, flags);
  if (rc == MDB_KEYEXIST && flags == MDB_APPEND) rc = mdb_put(txn_, env_->serial, &k, &v, 0);
  if (rc != 0) return LmdbError("cannot store a revoked serial", rc);
  if (flags == MDB_APPEND) last_serial_key_ = std::move(key);
  return Status::Ok();
}

Status RevocationStore::WriteTxn::Commit() {
  int rc = mdb_txn_commit(txn_);
  txn_ = nullptr;
  if (rc != 0) {
    if (IsDamage(rc))
      store_->ReportDamage(std::string("a commit: ") + mdb_strerror(rc), env_->epoch);
    // LMDB turns a short write (a full disk) into EIO: say how full it is.
    struct statvfs fs {};
    if ((rc == EIO || rc == ENOSPC) && statvfs(store_->dir().c_str(), &fs) == 0) {
      const unsigned long long free_kib =
          static_cast<unsigned long long>(fs.f_bavail) * fs.f_frsize / 1024;
      return Status::Error("revocation cache " + store_->dir() + ": cannot commit: " +
                           mdb_strerror(rc) + " (" + std::to_string(free_kib) +
                           " KiB free on its file system; nothing of this write was kept)");
    }
    return LmdbError("cannot commit", rc);
  }
  return Status::Ok();
}

// ---- maintenance

Result<RevocationStore::Listing> RevocationStore::List() {
  Result<ReadTxn> read = Read();
  if (!read.ok()) return read.status();
  MDB_txn *txn = read->txn_;
  const std::shared_ptr<Env> &env = read->env_;
  Listing out;
  auto each = [&](MDB_dbi dbi, auto fn) {
    MDB_cursor *cursor = nullptr;
    if (mdb_cursor_open(txn, dbi, &cursor) != 0) return;
    MDB_val k, v;
    int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
    while (rc == 0) {
      fn(View(k), View(v));
      rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
    }
    mdb_cursor_close(cursor);
    if (IsDamage(rc)) ReportDamage(std::string("listing: ") + mdb_strerror(rc));
  };
  auto add = [&](auto &to, std::string_view k, auto decoded, const char *what) {
    if (decoded) {
      to.emplace_back(std::string(k), *decoded);
    } else {
      ReportDamage(std::string("a ") + what + " fails its checksum");
    }
  };
  each(env->crl, [&](std::string_view k, std::string_view v) {
    add(out.crls, k, DecodeCrl(v), "CRL record");
  });
  each(env->ocsp, [&](std::string_view k, std::string_view v) {
    add(out.ocsp, k, DecodeOcsp(v), "OCSP record");
  });
  each(env->url, [&](std::string_view k, std::string_view v) {
    add(out.urls, k, DecodeUrl(v), "URL record");
  });
  each(env->file, [&](std::string_view k, std::string_view v) {
    add(out.files, k, DecodeFile(v), "file record");
  });
  MDB_stat stat{};
  if (mdb_stat(txn, env->serial, &stat) == 0) out.serials = stat.ms_entries;
  return out;
}

Status RevocationStore::Purge() {
  Result<WriteTxn> write = Write();
  if (!write.ok()) return write.status();
  for (MDB_dbi dbi : {write->env_->crl, write->env_->serial, write->env_->ocsp, write->env_->url,
                      write->env_->file}) {
    int rc = mdb_drop(write->txn_, dbi, 0);
    if (rc != 0) return LmdbError("cannot purge", rc);
  }
  return write->Commit();
}

}  // namespace certgate
