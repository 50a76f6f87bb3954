#include "revocation/store.h"

#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <ctime>
#include <set>
#include <vector>

#include "cache_dir.h"
#include "store_files.h"
#include "store_format.h"
#include "store_lmdb.h"

namespace certgate {

using namespace store_detail;

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
  Status made = MakeCacheDirs(dir);
  if (!made.ok()) return Status::Error("revocation cache: " + made.message());
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
  {
    MDB_cursor *cursor = nullptr;
    if (mdb_cursor_open(txn, env->meta, &cursor) == 0) {
      MDB_val k = Val(kFetchStatsPrefix), v;
      for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE); rc == 0;
           rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT)) {
        const std::string_view key = View(k);
        if (key.substr(0, kFetchStatsPrefix.size()) != kFetchStatsPrefix) break;
        add(out.fetch_stats, key.substr(kFetchStatsPrefix.size()), DecodeFetchStats(View(v)),
            "fetch statistics record");
      }
      MDB_val issuers = Val(kFetchedIssuersPrefix);
      for (int rc = mdb_cursor_get(cursor, &issuers, &v, MDB_SET_RANGE); rc == 0;
           rc = mdb_cursor_get(cursor, &issuers, &v, MDB_NEXT)) {
        const std::string_view key = View(issuers);
        if (key.substr(0, kFetchedIssuersPrefix.size()) != kFetchedIssuersPrefix) break;
        add(out.fetched_issuers, key.substr(kFetchedIssuersPrefix.size()),
            DecodeFetchedIssuers(View(v)), "fetched issuers record");
      }
      mdb_cursor_close(cursor);
    }
  }
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
  for (std::string_view prefix : {kFetchStatsPrefix, kFetchedIssuersPrefix}) {
    MDB_cursor *cursor = nullptr;
    if (mdb_cursor_open(write->txn_, write->env_->meta, &cursor) != 0) continue;
    MDB_val k = Val(prefix), v;
    int rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
    while (rc == 0 && View(k).substr(0, prefix.size()) == prefix) {
      rc = mdb_cursor_del(cursor, 0);
      if (rc != 0) break;
      rc = mdb_cursor_get(cursor, &k, &v, MDB_GET_CURRENT);
      if (rc == EINVAL || rc == MDB_NOTFOUND) {  // past the last key: seek again
        k = Val(prefix);
        rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
      }
    }
    mdb_cursor_close(cursor);
  }
  return write->Commit();
}

}  // namespace certgate
