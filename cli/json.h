// JSON for the CLI's --json output (probe, check): strings quoted and escaped,
// objects built field by field in order.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace certgate::cli {

inline std::string JsonQuote(const std::string &text) {
  std::string out = "\"";
  for (const unsigned char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
  return out + "\"";
}

// A JSON object built field by field, in order.
class JsonObject {
 public:
  JsonObject &Raw(const std::string &key, const std::string &json) {
    text_ += (text_.empty() ? "" : ",") + JsonQuote(key) + ":" + json;
    return *this;
  }
  JsonObject &Str(const std::string &key, const std::string &value) {
    return Raw(key, JsonQuote(value));
  }
  JsonObject &Int(const std::string &key, long long value) {
    return Raw(key, std::to_string(value));
  }
  JsonObject &Bool(const std::string &key, bool value) {
    return Raw(key, value ? "true" : "false");
  }
  JsonObject &Strings(const std::string &key, const std::vector<std::string> &values) {
    std::string array;
    for (const auto &value : values) array += (array.empty() ? "" : ",") + JsonQuote(value);
    return Raw(key, "[" + array + "]");
  }
  std::string str() const { return "{" + text_ + "}"; }

 private:
  std::string text_;
};

// Objects (already JSON) as an array.
inline std::string JsonArray(const std::vector<std::string> &objects) {
  std::string out;
  for (const auto &object : objects) out += (out.empty() ? "" : ",") + object;
  return "[" + out + "]";
}

}  // namespace certgate::cli
