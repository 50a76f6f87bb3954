#include "crl_der.h"

#include <string>

namespace certgate::crl_der {

TlvError Next(std::string_view &in, Tlv *out) {
  if (in.empty()) return TlvError::kTruncated;
  if (in.size() < 2) return TlvError::kTruncated;
  const uint8_t tag = static_cast<uint8_t>(in[0]);
  if ((tag & 0x1f) == 0x1f) return TlvError::kBad;
  const uint8_t first = static_cast<uint8_t>(in[1]);
  size_t header = 2, length = first;
  if (first & 0x80) {
    const size_t n = first & 0x7f;
    if (n == 0 || n > 4) return TlvError::kBad;  // indefinite or absurd
    if (in.size() < 2 + n) return TlvError::kTruncated;
    length = 0;
    for (size_t i = 0; i < n; ++i) length = (length << 8) | static_cast<uint8_t>(in[2 + i]);
    header = 2 + n;
  }
  if (in.size() - header < length) return TlvError::kTruncated;
  out->tag = tag;
  out->all = in.substr(0, header + length);
  out->content = in.substr(header, length);
  in.remove_prefix(header + length);
  return TlvError::kNone;
}

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// UTCTime "YYMMDDHHMMSSZ" / GeneralizedTime "YYYYMMDDHHMMSSZ" (DER forms).
bool ParseTime(const Tlv &tlv, int64_t *out) {
  std::string_view s = tlv.content;
  size_t year_digits = tlv.tag == 0x17 ? 2 : tlv.tag == 0x18 ? 4 : 0;
  if (year_digits == 0 || s.size() != year_digits + 11 || s.back() != 'Z') return false;
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (!isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  auto num = [&](size_t pos, size_t len) {
    int v = 0;
    for (size_t i = 0; i < len; ++i) v = v * 10 + (s[pos + i] - '0');
    return v;
  };
  int year = num(0, year_digits);
  if (year_digits == 2) year += year >= 50 ? 1900 : 2000;
  size_t p = year_digits;
  int mon = num(p, 2), day = num(p + 2, 2), hour = num(p + 4, 2), min = num(p + 6, 2),
      sec = num(p + 8, 2);
  if (mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 || min > 59 || sec > 60) return false;
  *out = DaysFromCivil(year, mon, day) * 86400 + hour * 3600 + min * 60 + sec;
  return true;
}

// Magnitude bytes (no leading zeros) of a DER INTEGER's content.
std::string Magnitude(std::string_view content, bool *negative) {
  *negative = !content.empty() && (static_cast<uint8_t>(content[0]) & 0x80);
  std::string out(content);
  if (*negative) {  // two's complement -> magnitude
    bool carry = true;
    for (size_t i = out.size(); i-- > 0;) {
      uint8_t b = static_cast<uint8_t>(~static_cast<uint8_t>(out[i]));
      if (carry) {
        b = static_cast<uint8_t>(b + 1);
        carry = b == 0;
      }
      out[i] = static_cast<char>(b);
    }
  }
  size_t skip = 0;
  while (skip < out.size() && out[skip] == '\0') ++skip;
  return out.substr(skip);
}

}  // namespace certgate::crl_der
