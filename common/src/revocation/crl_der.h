// Reading a CRL's DER by hand (crl.h): OpenSSL's d2i would build
// an object per revoked entry, which for a 1,000,000-entry CRL costs seconds
// and hundreds of MB. Private to certgate_core (crl.cc, crl_ingest.cc).
#pragma once

#include <certgate/result.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace certgate::crl_der {

// One DER TLV (low tag numbers, definite lengths).
struct Tlv {
  uint8_t tag = 0;
  std::string_view all;
  std::string_view content;
};

enum class TlvError { kNone, kTruncated, kBad };

// Reads the next TLV of `in` and advances it.
TlvError Next(std::string_view &in, Tlv *out);
// A UTCTime or GeneralizedTime, in seconds since the epoch.
bool ParseTime(const Tlv &tlv, int64_t *out);
// Magnitude bytes (no leading zeros) of a DER INTEGER's content.
std::string Magnitude(std::string_view content, bool *negative);

const std::string_view kOidReason("\x55\x1d\x15", 3);
const std::string_view kOidCertIssuer("\x55\x1d\x1d", 3);

// Calls fn(magnitude, negative, revoked_at, reason) for each revokedCertificates
// entry; stops at the first malformed one or fn error.
template <typename Fn>
Status ForEachEntry(std::string_view entries, Fn fn) {
  uint64_t index = 0;
  while (!entries.empty()) {
    Tlv entry, serial, date;
    auto bad = [&](const std::string &what) {
      return Status::Error("revoked entry #" + std::to_string(index) + ": " + what);
    };
    if (Next(entries, &entry) != TlvError::kNone || entry.tag != 0x30) return bad("not DER");
    std::string_view body = entry.content;
    if (Next(body, &serial) != TlvError::kNone || serial.tag != 0x02 || serial.content.empty()) {
      return bad("bad serial number");
    }
    int64_t when = 0;
    if (Next(body, &date) != TlvError::kNone || !ParseTime(date, &when)) {
      return bad("bad revocation date");
    }
    int reason = -1;
    if (!body.empty()) {
      Tlv exts;
      if (Next(body, &exts) != TlvError::kNone || exts.tag != 0x30 || !body.empty()) {
        return bad("bad entry extensions");
      }
      std::string_view list = exts.content;
      while (!list.empty()) {
        Tlv ext, oid, field;
        if (Next(list, &ext) != TlvError::kNone || ext.tag != 0x30) return bad("bad extension");
        std::string_view e = ext.content;
        if (Next(e, &oid) != TlvError::kNone || oid.tag != 0x06) return bad("bad extension");
        bool critical = false;
        if (Next(e, &field) != TlvError::kNone) return bad("bad extension");
        if (field.tag == 0x01) {
          critical = field.content.size() == 1 && field.content[0] != 0;
          if (Next(e, &field) != TlvError::kNone) return bad("bad extension");
        }
        if (field.tag != 0x04 || !e.empty()) return bad("bad extension");
        if (oid.content == kOidReason) {
          std::string_view v = field.content;
          Tlv code;
          if (Next(v, &code) != TlvError::kNone || code.tag != 0x0a || code.content.size() != 1) {
            return bad("bad CRLReason");
          }
          reason = static_cast<uint8_t>(code.content[0]);
        } else if (oid.content == kOidCertIssuer) {
          return bad("certificateIssuer (indirect CRL) is not supported");
        } else if (critical) {
          return bad("unknown critical extension");
        }
      }
    }
    bool negative = false;
    std::string magnitude = Magnitude(serial.content, &negative);
    ++index;
    if (reason == 8) continue;  // removeFromCRL: only meaningful in delta CRLs
    Status status = fn(magnitude, negative, when, reason);
    if (!status.ok()) return status;
  }
  return Status::Ok();
}

}  // namespace certgate::crl_der
