#include <certgate/revocation_store.h>
#include <errno.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/stat.h>

#include <cstring>
#include <set>

namespace certgate {
namespace {

constexpr size_t kMapSize = size_t{4} << 30;
constexpr uint8_t kRecordVersion = 1;

// Records: a version byte, then fields in order (little-endian int64, u32-length
// strings). Unknown versions read as absent.
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
  const std::string &data() const { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {
    ok_ = !in_.empty() && static_cast<uint8_t>(in_[0]) == kRecordVersion;
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
    if (pos_ + n > in_.size()) return ok_ = false, std::string();
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  bool ok() const { return ok_; }
  bool AtEnd() const { return pos_ >= in_.size(); }

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
  w.Str(scope);
  return w.data();
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
  // (Records written before scopes existed end here.)
  const std::string scope = r.AtEnd() ? std::string() : r.Str();
  for (size_t start = 0, end; (end = scope.find('\n', start)) != std::string::npos;
       start = end + 1) {
    m.scope.push_back(scope.substr(start, end - start));
  }
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
  return w.data();
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
  return w.data();
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
  return w.data();
}
std::optional<FileState> DecodeFile(std::string_view in) {
  Reader r(in);
  FileState f;
  f.mtime_ns = r.Int();
  f.size = r.Int();
  f.issuer_id = r.Str();
  f.result = r.Str();
  if (!r.ok()) return std::nullopt;
  return f;
}

// Revoked entry value: 8 bytes date (LE) + 1 byte reason (0xff = none).
std::string EncodeEntry(const RevokedEntry &e) {
  std::string out(9, '\0');
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

std::optional<std::string_view> Get(MDB_txn *txn, MDB_dbi dbi, std::string_view key) {
  MDB_val k = Val(key), v;
  if (mdb_get(txn, dbi, &k, &v) != 0) return std::nullopt;
  return View(v);
}

Status LmdbError(const std::string &what, int rc) {
  return Status::Error("revocation cache: " + what + ": " + mdb_strerror(rc));
}

std::string GenPrefix(uint64_t gen) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((gen >> (8 * (7 - i))) & 0xff);
  return out;
}

template <typename T, typename Decode>
std::optional<T> GetDecoded(MDB_txn *txn, MDB_dbi dbi, std::string_view key, Decode decode) {
  std::optional<std::string_view> v = Get(txn, dbi, key);
  if (!v) return std::nullopt;
  return decode(*v);
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

Result<std::unique_ptr<RevocationStore>> RevocationStore::Open(const std::string &dir) {
  if (dir.empty()) return Status::Error("revocation cache: no directory given");
  Status made = MakeDirs(dir);
  if (!made.ok()) return made;
  std::unique_ptr<RevocationStore> store(new RevocationStore());
  store->dir_ = dir;
  int rc = mdb_env_create(&store->env_);
  if (rc != 0) return LmdbError("cannot create an environment", rc);
  mdb_env_set_maxdbs(store->env_, 8);
  mdb_env_set_mapsize(store->env_, kMapSize);
  mdb_env_set_maxreaders(store->env_, 1024);
  rc = mdb_env_open(store->env_, dir.c_str(), MDB_NOTLS, 0600);
  if (rc != 0) {
    mdb_env_close(store->env_);
    store->env_ = nullptr;
    const bool permissions = rc == EACCES || rc == EPERM || rc == EROFS;
    return Status::Error("revocation cache " + dir + ": cannot open: " + mdb_strerror(rc) +
                         (permissions ? " (the directory must be writable by the worker user)"
                          : rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH
                              ? " (not a certgate cache, or damaged: remove data.mdb and "
                                "lock.mdb to start it afresh)"
                              : ""));
  }
  int dead = 0;
  mdb_reader_check(store->env_, &dead);
  MDB_txn *txn = nullptr;
  rc = mdb_txn_begin(store->env_, nullptr, 0, &txn);
  if (rc != 0) return Status::Error("revocation cache " + dir + ": " + mdb_strerror(rc));
  struct Db {
    const char *name;
    MDB_dbi *dbi;
  } dbs[] = {{"crl", &store->crl_}, {"serial", &store->serial_}, {"ocsp", &store->ocsp_},
             {"url", &store->url_}, {"file", &store->file_},     {"meta", &store->meta_}};
  for (const Db &db : dbs) {
    rc = mdb_dbi_open(txn, db.name, MDB_CREATE, db.dbi);
    if (rc != 0) {
      mdb_txn_abort(txn);
      return Status::Error("revocation cache " + dir + ": cannot open table " + db.name + ": " +
                           mdb_strerror(rc));
    }
  }
  rc = mdb_txn_commit(txn);
  if (rc != 0) return Status::Error("revocation cache " + dir + ": " + mdb_strerror(rc));
  return store;
}

RevocationStore::~RevocationStore() {
  for (MDB_txn *txn : idle_readers_) mdb_txn_abort(txn);
  if (env_ != nullptr) mdb_env_close(env_);
}

void RevocationStore::CheckStaleReaders() {
  int dead = 0;
  mdb_reader_check(env_, &dead);
}

MDB_txn *RevocationStore::TakeReader() {
  MDB_txn *txn = nullptr;
  {
    std::lock_guard<std::mutex> lock(readers_mutex_);
    if (!idle_readers_.empty()) {
      txn = idle_readers_.back();
      idle_readers_.pop_back();
    }
  }
  if (txn != nullptr) {
    if (mdb_txn_renew(txn) == 0) return txn;
    mdb_txn_abort(txn);
    txn = nullptr;
  }
  if (mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn) != 0) return nullptr;
  return txn;
}

void RevocationStore::ReturnReader(MDB_txn *txn) {
  mdb_txn_reset(txn);
  std::lock_guard<std::mutex> lock(readers_mutex_);
  if (idle_readers_.size() < 64) {
    idle_readers_.push_back(txn);
  } else {
    mdb_txn_abort(txn);
  }
}

Result<RevocationStore::ReadTxn> RevocationStore::Read() {
  MDB_txn *txn = TakeReader();
  if (txn == nullptr) return Status::Error("revocation cache " + dir_ + ": cannot begin a read");
  return ReadTxn(this, txn);
}

Result<RevocationStore::WriteTxn> RevocationStore::Write() {
  MDB_txn *txn = nullptr;
  int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) return LmdbError("cannot begin a write in " + dir_, rc);
  return WriteTxn(this, txn);
}

// ---- ReadTxn

RevocationStore::ReadTxn::ReadTxn(ReadTxn &&other) noexcept
    : store_(other.store_), txn_(other.txn_) {
  other.txn_ = nullptr;
}
RevocationStore::ReadTxn::~ReadTxn() {
  if (txn_ != nullptr) store_->ReturnReader(txn_);
}
std::optional<CrlMeta> RevocationStore::ReadTxn::GetCrl(std::string_view issuer_id) const {
  return GetDecoded<CrlMeta>(txn_, store_->crl_, issuer_id, DecodeCrl);
}
std::optional<CrlHead> RevocationStore::ReadTxn::GetCrlHead(std::string_view issuer_id) const {
  std::optional<std::string_view> v = Get(txn_, store_->crl_, issuer_id);
  if (!v) return std::nullopt;
  Reader r(*v);
  CrlHead head;
  head.gen = static_cast<uint64_t>(r.Int());
  head.this_update = r.Int();
  head.next_update = r.Int();
  if (!r.ok()) return std::nullopt;
  return head;
}

std::optional<RevokedEntry> RevocationStore::ReadTxn::GetRevoked(uint64_t gen,
                                                                 std::string_view magnitude,
                                                                 bool negative) const {
  // The key of SerialKey(), on the stack: no allocation on the lookup path.
  while (!magnitude.empty() && magnitude.front() == '\0') magnitude.remove_prefix(1);
  if (magnitude.size() > 255) return std::nullopt;
  char key[8 + 2 + 255];
  for (int i = 0; i < 8; ++i) key[i] = static_cast<char>((gen >> (8 * (7 - i))) & 0xff);
  key[8] = static_cast<char>(negative ? 0 : 1);
  key[9] = static_cast<char>(magnitude.size());
  memcpy(key + 10, magnitude.data(), magnitude.size());
  std::optional<std::string_view> v =
      Get(txn_, store_->serial_, std::string_view(key, 10 + magnitude.size()));
  if (!v || v->size() < 9) return std::nullopt;
  RevokedEntry e;
  uint64_t when = 0;
  for (int i = 0; i < 8; ++i)
    when |= static_cast<uint64_t>(static_cast<uint8_t>((*v)[i])) << (8 * i);
  e.revoked_at = static_cast<int64_t>(when);
  uint8_t reason = static_cast<uint8_t>((*v)[8]);
  e.reason = reason == 0xff ? -1 : reason;
  return e;
}
std::optional<OcspRecord> RevocationStore::ReadTxn::GetOcsp(std::string_view cert_id) const {
  return GetDecoded<OcspRecord>(txn_, store_->ocsp_, cert_id, DecodeOcsp);
}
std::optional<UrlState> RevocationStore::ReadTxn::GetUrl(std::string_view url) const {
  return GetDecoded<UrlState>(txn_, store_->url_, url, DecodeUrl);
}
std::optional<FileState> RevocationStore::ReadTxn::GetFile(std::string_view path) const {
  return GetDecoded<FileState>(txn_, store_->file_, path, DecodeFile);
}

// ---- WriteTxn

RevocationStore::WriteTxn::WriteTxn(WriteTxn &&other) noexcept
    : store_(other.store_), txn_(other.txn_), last_serial_key_(std::move(other.last_serial_key_)) {
  other.txn_ = nullptr;
}
RevocationStore::WriteTxn::~WriteTxn() {
  if (txn_ != nullptr) mdb_txn_abort(txn_);
}
std::optional<CrlMeta> RevocationStore::WriteTxn::GetCrl(std::string_view issuer_id) const {
  return GetDecoded<CrlMeta>(txn_, store_->crl_, issuer_id, DecodeCrl);
}
std::optional<UrlState> RevocationStore::WriteTxn::GetUrl(std::string_view url) const {
  return GetDecoded<UrlState>(txn_, store_->url_, url, DecodeUrl);
}
std::optional<OcspRecord> RevocationStore::WriteTxn::GetOcsp(std::string_view cert_id) const {
  return GetDecoded<OcspRecord>(txn_, store_->ocsp_, cert_id, DecodeOcsp);
}
std::optional<FileState> RevocationStore::WriteTxn::GetFile(std::string_view path) const {
  return GetDecoded<FileState>(txn_, store_->file_, path, DecodeFile);
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
  return Put(txn_, store_->crl_, issuer_id, Encode(meta), "a CRL record");
}
Status RevocationStore::WriteTxn::PutOcsp(std::string_view cert_id, const OcspRecord &record) {
  return Put(txn_, store_->ocsp_, cert_id, Encode(record), "an OCSP answer");
}
Status RevocationStore::WriteTxn::PutUrl(std::string_view url, const UrlState &state) {
  return Put(txn_, store_->url_, url, Encode(state), "a URL state");
}
Status RevocationStore::WriteTxn::PutFile(std::string_view path, const FileState &state) {
  return Put(txn_, store_->file_, path, Encode(state), "a file record");
}

Status RevocationStore::WriteTxn::DeleteGeneration(uint64_t gen, size_t max_entries, bool *done) {
  *done = false;
  MDB_cursor *cursor = nullptr;
  int rc = mdb_cursor_open(txn_, store_->serial_, &cursor);
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
  return Put(txn_, store_->meta_, std::string(kStagingPrefix) + GenPrefix(gen),
             std::string_view(reinterpret_cast<const char *>(&pid), sizeof pid), "a staging mark");
}

Status RevocationStore::WriteTxn::ClearStaging(uint64_t gen) {
  const std::string key = std::string(kStagingPrefix) + GenPrefix(gen);
  MDB_val k = Val(key);
  const int rc = mdb_del(txn_, store_->meta_, &k, nullptr);
  if (rc != 0 && rc != MDB_NOTFOUND) return LmdbError("cannot clear a staging mark", rc);
  return Status::Ok();
}

std::vector<uint64_t> RevocationStore::WriteTxn::AbandonedGenerations() const {
  std::set<uint64_t> in_use;
  MDB_cursor *cursor = nullptr;
  MDB_val k, v;
  if (mdb_cursor_open(txn_, store_->crl_, &cursor) == 0) {
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
      if (std::optional<CrlMeta> meta = DecodeCrl(View(v))) in_use.insert(meta->gen);
    }
    mdb_cursor_close(cursor);
  }
  if (mdb_cursor_open(txn_, store_->meta_, &cursor) == 0) {
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
      uint64_t gen = 0;
      for (size_t i = kStagingPrefix.size(); i < key.size(); ++i)
        gen = (gen << 8) | static_cast<uint8_t>(key[i]);
      in_use.insert(gen);
    }
    mdb_cursor_close(cursor);
  }
  std::vector<uint64_t> abandoned;
  if (mdb_cursor_open(txn_, store_->serial_, &cursor) != 0) return abandoned;
  std::string seek = GenPrefix(0);
  k = Val(seek);
  for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE); rc == 0 && k.mv_size >= 8;) {
    uint64_t gen = 0;
    for (int i = 0; i < 8; ++i) gen = (gen << 8) | static_cast<const uint8_t *>(k.mv_data)[i];
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
  if (std::optional<std::string_view> v = Get(txn_, store_->meta_, "next_gen");
      v && v->size() == 8) {
    memcpy(&next, v->data(), 8);
  }
  uint64_t after = next + 1;
  Status put = Put(txn_, store_->meta_, "next_gen",
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
  int rc = mdb_put(txn_, store_->serial_, &k, &v, flags);
  if (rc == MDB_KEYEXIST && flags == MDB_APPEND) rc = mdb_put(txn_, store_->serial_, &k, &v, 0);
  if (rc != 0) return LmdbError("cannot store a revoked serial", rc);
  if (flags == MDB_APPEND) last_serial_key_ = std::move(key);
  return Status::Ok();
}

Status RevocationStore::WriteTxn::Commit() {
  int rc = mdb_txn_commit(txn_);
  txn_ = nullptr;
  if (rc != 0) return LmdbError("cannot commit", rc);
  return Status::Ok();
}

// ---- maintenance

Result<RevocationStore::Listing> RevocationStore::List() {
  Result<ReadTxn> read = Read();
  if (!read.ok()) return read.status();
  MDB_txn *txn = read->txn_;
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
  };
  each(crl_, [&](std::string_view k, std::string_view v) {
    if (auto m = DecodeCrl(v)) out.crls.emplace_back(std::string(k), *m);
  });
  each(ocsp_, [&](std::string_view k, std::string_view v) {
    if (auto m = DecodeOcsp(v)) out.ocsp.emplace_back(std::string(k), *m);
  });
  each(url_, [&](std::string_view k, std::string_view v) {
    if (auto m = DecodeUrl(v)) out.urls.emplace_back(std::string(k), *m);
  });
  each(file_, [&](std::string_view k, std::string_view v) {
    if (auto m = DecodeFile(v)) out.files.emplace_back(std::string(k), *m);
  });
  MDB_stat stat{};
  if (mdb_stat(txn, serial_, &stat) == 0) out.serials = stat.ms_entries;
  return out;
}

Status RevocationStore::Purge() {
  Result<WriteTxn> write = Write();
  if (!write.ok()) return write.status();
  for (MDB_dbi dbi : {crl_, serial_, ocsp_, url_, file_}) {
    int rc = mdb_drop(write->txn_, dbi, 0);
    if (rc != 0) return LmdbError("cannot purge", rc);
  }
  return write->Commit();
}

}  // namespace certgate
