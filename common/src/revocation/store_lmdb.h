// What the store's pieces (store.cc: open, repair, read/write; store_txn.cc:
// the transactions) share about LMDB: value helpers, damage codes and the
// environment. Private to certgate_core.
#pragma once

#include <lmdb.h>
#include <sys/types.h>

#include <array>
#include <atomic>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "revocation/store.h"
#include "store_format.h"

namespace certgate {
namespace store_detail {

inline MDB_val Val(std::string_view s) {
  MDB_val v;
  v.mv_size = s.size();
  v.mv_data = const_cast<char *>(s.data());
  return v;
}
inline std::string_view View(const MDB_val &v) {
  return std::string_view(static_cast<const char *>(v.mv_data), v.mv_size);
}

inline Status LmdbError(const std::string &what, int rc) {
  return Status::Error("revocation cache: " + what + ": " + mdb_strerror(rc));
}

// LMDB's answers that mean the file is not what it wrote.
inline bool IsDamage(int rc) {
  // (Not MDB_BAD_TXN: a transaction a full map or disk failed answers that.)
  return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND || rc == MDB_INVALID ||
         rc == MDB_VERSION_MISMATCH || rc == MDB_INCOMPATIBLE || rc == MDB_CURSOR_FULL;
}

inline std::string GenPrefix(uint64_t gen) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((gen >> (8 * (7 - i))) & 0xff);
  return out;
}

inline uint64_t GenOf(std::string_view key) {
  uint64_t gen = 0;
  for (size_t i = 0; i < 8 && i < key.size(); ++i) gen = (gen << 8) | static_cast<uint8_t>(key[i]);
  return gen;
}

inline std::optional<std::string_view> RawGet(MDB_txn *txn, MDB_dbi dbi, std::string_view key,
                                              int *rc) {
  MDB_val k = Val(key), v;
  *rc = mdb_get(txn, dbi, &k, &v);
  if (*rc != 0) return std::nullopt;
  return View(v);
}

}  // namespace store_detail

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

}  // namespace certgate
