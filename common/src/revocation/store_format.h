// The revocation store's on-disk record format (store.h): limits,
// the record codec (version byte, fields, FNV-1a checksum) and the serial
// entry value. Private to certgate_core (store.cc, store_files.cc).
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>

#include "revocation/store.h"

namespace certgate::store_detail {

constexpr uint8_t kRecordVersion = 2;
// meta["format"]: a store without it, or with another, was written by another
// version of certgate (or is not ours) and is rebuilt. 3: CRL records keyed by
// (issuer, distribution point) (CrlKey): a format-2 store holds a partition's
// CRL under the bare issuer id, where a full CRL now lives, so it is never read.
constexpr std::string_view kStoreFormat = "certgate-revocation-cache 3";
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

// A record checksum (store_format.cc).
uint64_t Fnv1a(std::string_view s);

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

std::string Encode(const CrlMeta &m);
std::optional<CrlMeta> DecodeCrl(std::string_view in);
std::string Encode(const OcspRecord &o);
std::optional<OcspRecord> DecodeOcsp(std::string_view in);
std::string Encode(const UrlState &u);
std::optional<UrlState> DecodeUrl(std::string_view in);
std::string Encode(const FileState &f);
std::optional<FileState> DecodeFile(std::string_view in);
std::string Encode(const FetchStats &f);
std::optional<FetchStats> DecodeFetchStats(std::string_view in);
// meta key prefix of a URL's FetchStats.
constexpr std::string_view kFetchStatsPrefix = "fetch:";
std::string Encode(const FetchedIssuers &f);
std::optional<FetchedIssuers> DecodeFetchedIssuers(std::string_view in);
// meta key prefix of an AIA caIssuers URL's FetchedIssuers.
constexpr std::string_view kFetchedIssuersPrefix = "issuer:";
// Revoked entry value: 8 bytes date (LE) + 1 byte reason (0xff = none).
std::string EncodeEntry(const RevokedEntry &e);

// A number in decimal, for messages.
inline std::string Hex(uint64_t v) {
  char buf[24];
  snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace certgate::store_detail
