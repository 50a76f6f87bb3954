#include "store_format.h"

namespace certgate::store_detail {

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
  if (!m.delta_urls.empty() || !m.delta_base_dec.empty()) {
    std::string urls;
    for (const std::string &url : m.delta_urls) urls += url + '\n';
    w.Str(urls).Str(m.delta_base).Str(m.delta_base_dec);
  }
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
  if (r.good() && !r.ok()) {  // the delta fields (records of delta-aware versions)
    const std::string urls = r.Str();
    for (size_t start = 0, end; (end = urls.find('\n', start)) != std::string::npos;
         start = end + 1) {
      m.delta_urls.push_back(urls.substr(start, end - start));
    }
    m.delta_base = r.Str();
    m.delta_base_dec = r.Str();
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

std::string Encode(const FetchStats &f) {
  Writer w;
  w.Int(f.last_error).Int(f.failing_since).Int(static_cast<int64_t>(f.errors.size()));
  for (const auto &[error_class, count] : f.errors) w.Str(error_class).Int(count);
  return w.Finish();
}
std::optional<FetchStats> DecodeFetchStats(std::string_view in) {
  Reader r(in);
  FetchStats f;
  f.last_error = r.Int();
  f.failing_since = r.Int();
  const int64_t classes = r.Int();
  for (int64_t i = 0; r.good() && i < classes && i < 64; ++i) {
    std::string error_class = r.Str();
    const int64_t count = r.Int();
    f.errors.emplace_back(std::move(error_class), count);
  }
  if (!r.ok()) return std::nullopt;
  return f;
}

std::string Encode(const FetchedIssuers &f) {
  Writer w;
  w.Int(f.fetched_at).Int(static_cast<int64_t>(f.certs_der.size()));
  for (const std::string &der : f.certs_der) w.Str(der);
  return w.Finish();
}
std::optional<FetchedIssuers> DecodeFetchedIssuers(std::string_view in) {
  Reader r(in);
  FetchedIssuers f;
  f.fetched_at = r.Int();
  const int64_t count = r.Int();
  for (int64_t i = 0; r.good() && i < count && i < 64; ++i) f.certs_der.push_back(r.Str());
  if (!r.ok()) return std::nullopt;
  return f;
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

std::string EncodeEntry(const RevokedEntry &e) {
  std::string out(kSerialValueSize, '\0');
  for (int i = 0; i < 8; ++i)
    out[i] = static_cast<char>((static_cast<uint64_t>(e.revoked_at) >> (8 * i)) & 0xff);
  out[8] = static_cast<char>(e.reason < 0 ? 0xff : e.reason);
  return out;
}

}  // namespace certgate::store_detail
