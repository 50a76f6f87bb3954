#include <certgate/log_format.h>

#include <cstdio>
#include <string_view>

namespace certgate {
namespace {

bool IsBare(std::string_view value) {
  if (value.empty()) return false;
  for (unsigned char c : value) {
    if (!(std::isalnum(c) || c == '.' || c == '_' || c == ':' || c == '/' || c == '+' ||
          c == '-')) {
      return false;
    }
  }
  return true;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 if it is not one.
size_t Utf8SequenceLength(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t len = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  for (size_t k = 1; k < len; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
  }
  return len;
}

void AppendHexEscape(std::string &out, unsigned char c, const char *format) {
  char escape[8];
  std::snprintf(escape, sizeof escape, format, c);
  out += escape;
}

// Quoted kv value: \" and \\ escaped, control bytes as \xHH, cut at kMaxLogValue.
std::string KvValue(std::string_view value) {
  if (IsBare(value) && value.size() <= kMaxLogValue) return std::string(value);
  std::string out = "\"";
  for (size_t i = 0; i < value.size() && i < kMaxLogValue; ++i) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      AppendHexEscape(out, c, "\\x%02X");
    } else {
      out += static_cast<char>(c);
    }
  }
  if (value.size() > kMaxLogValue) out += "...";
  return out + "\"";
}

std::string JsonValue(std::string_view value) {
  std::string out = "\"";
  for (size_t i = 0; i < value.size() && i < kMaxLogValue;) {
    const unsigned char c = static_cast<unsigned char>(value[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      AppendHexEscape(out, c, "\\u%04x");
    } else if (c >= 0x80) {
      const size_t len = Utf8SequenceLength(value, i);
      if (len == 0) {
        out += "\\ufffd";
      } else {
        out.append(value.substr(i, len));
        i += len;
        continue;
      }
    } else {
      out += static_cast<char>(c);
    }
    ++i;
  }
  if (value.size() > kMaxLogValue) out += "...";
  return out + "\"";
}

// The fields of a log line, in order; empty values are left out.
constexpr cg_field kLogFields[] = {
    CG_FIELD_VERDICT,   CG_FIELD_REASON,     CG_FIELD_SUBSTATUS, CG_FIELD_DEPTH,
    CG_FIELD_SUBJECT,   CG_FIELD_ISSUER,     CG_FIELD_SERIAL,    CG_FIELD_FINGERPRINT,
    CG_FIELD_NOT_AFTER, CG_FIELD_REVOCATION, CG_FIELD_DETAIL,    CG_FIELD_HINT,
};

}  // namespace

std::string FormatLogLine(const Decision &decision, LogFormat format, size_t max_len) {
  return FormatLogLine(decision, format, LogExtras{}, max_len);
}

std::string FormatLogLine(const Decision &decision, LogFormat format, const LogExtras &extras,
                          size_t max_len) {
  const bool json = format == LogFormat::kJson;
  std::string line = json ? "certgate: {" : "certgate:";
  const std::string close = json ? "}" : "";
  const std::string truncated = json ? ",\"truncated\":true" : " truncated=yes";
  bool first = true;
  auto append = [&](std::string_view name, std::string_view value) {
    std::string field =
        json ? std::string(first ? "" : ",") + "\"" + std::string(name) + "\":" + JsonValue(value)
             : " " + std::string(name) + "=" + KvValue(value);
    if (line.size() + field.size() + truncated.size() + close.size() > max_len) return false;
    line += field;
    first = false;
    return true;
  };
  bool complete = true;
  for (cg_field field : kLogFields) {
    const std::string &value = decision.Field(field);
    if (value.empty()) continue;
    if (!append(cg_field_name(field), value)) {
      complete = false;
      break;
    }
    // Which CA a depth > 0 revocation refusal is about (the subject is the leaf's).
    if (field == CG_FIELD_DEPTH && !decision.ca_subject().empty() &&
        decision.verdict() == CG_VERDICT_DENY && !append("ca_subject", decision.ca_subject())) {
      complete = false;
      break;
    }
  }
  for (const auto &[name, value] : extras) {
    if (!complete) break;
    if (!value.empty()) complete = append(name, value);
  }
  if (complete && !decision.warning().empty() && decision.verdict() == CG_VERDICT_ALLOW) {
    complete = append("warning", decision.warning());
  }
  if (!complete && line.size() + truncated.size() + close.size() <= max_len) line += truncated;
  line += close;
  if (line.size() > max_len) line.resize(max_len);  // only when max_len is absurdly small
  return line;
}

std::string FormatRejectBody(const Decision &decision, RejectBody body, bool with_detail,
                             std::string *content_type) {
  const ReasonInfo &info = Info(decision.reason());
  const std::string status = std::to_string(info.http_status);
  switch (body) {
    case RejectBody::kOff:
      *content_type = "text/plain";
      return {};
    case RejectBody::kJson: {
      *content_type = "application/json";
      std::string out = "{\"verdict\":\"deny\",\"reason\":" + JsonValue(info.code) +
                        ",\"substatus\":" + JsonValue(info.substatus);
      if (with_detail) {
        out += ",\"detail\":" + JsonValue(decision.detail()) +
               ",\"hint\":" + JsonValue(decision.hint());
      }
      return out + "}\n";
    }
    case RejectBody::kHtml: {
      *content_type = "text/html";
      auto escape = [](std::string_view text) {
        std::string out;
        for (char c : text) {
          switch (c) {
            case '<':
              out += "&lt;";
              break;
            case '>':
              out += "&gt;";
              break;
            case '&':
              out += "&amp;";
              break;
            case '"':
              out += "&quot;";
              break;
            default:
              out += c;
          }
        }
        return out;
      };
      std::string out = "<!DOCTYPE html>\n<html><head><title>" + std::string(info.substatus) +
                        " Client certificate refused</title></head><body>\n<h1>" +
                        std::string(info.substatus) +
                        " Client certificate refused</h1>\n<p>reason: <code>" +
                        std::string(info.code) + "</code></p>\n";
      if (with_detail) {
        out += "<p>" + escape(decision.detail()) + "</p>\n<p>" + escape(decision.hint()) + "</p>\n";
      }
      return out + "</body></html>\n";
    }
    case RejectBody::kText:
    default: {
      *content_type = "text/plain";
      std::string out = std::string(info.substatus) +
                        " client certificate refused: " + std::string(info.code) + "\n";
      if (with_detail) out += "detail: " + decision.detail() + "\nhint: " + decision.hint() + "\n";
      return out;
    }
  }
}

}  // namespace certgate
