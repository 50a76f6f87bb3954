// The syntax of the names name constraints are checked on: a hostname (RFC 1034
// preferred name syntax, as RFC 5280 section 4.2.1.6 asks of dNSName) and a
// mailbox (RFC 5321 section 4.1.2, as it asks of rfc822Name).
#include <algorithm>
#include <cctype>
#include <cstring>

#include "name_constraints.h"

namespace certgate {
namespace {

bool IsLdh(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
}

// RFC 5321 §4.1.2 atext.
bool IsAtext(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 ||
         (c != '\0' && std::strchr("!#$%&'*+-/=?^_`{|}~", c) != nullptr);
}

}  // namespace

bool IsHostname(std::string_view name, bool allow_wildcard) {
  if (name.empty() || name.size() > 253) return false;
  size_t start = 0;
  bool first = true;
  while (true) {
    const size_t dot = name.find('.', start);
    const std::string_view label =
        name.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start);
    if (label.empty() || label.size() > 63) return false;  // "a..b", ".a", "a.", too long
    const bool wildcard = first && allow_wildcard && label == "*";
    if (!wildcard) {
      if (label.front() == '-' || label.back() == '-') return false;
      if (!std::all_of(label.begin(), label.end(), IsLdh)) return false;
    } else if (dot == std::string_view::npos) {
      return false;  // a wildcard alone stands for every name
    }
    if (dot == std::string_view::npos) return true;
    start = dot + 1;
    first = false;
  }
}

bool IsMailbox(std::string_view name) {
  size_t at = 0;
  if (!name.empty() && name.front() == '"') {
    // Quoted-string: qtext and quoted pairs up to the closing quote.
    for (at = 1; at < name.size() && name[at] != '"'; ++at) {
      const unsigned char c = static_cast<unsigned char>(name[at]);
      if (c == '\\') {
        if (++at == name.size()) return false;
        const unsigned char escaped = static_cast<unsigned char>(name[at]);
        if (escaped < 32 || escaped > 126) return false;
      } else if (c < 32 || c > 126) {
        return false;
      }
    }
    if (at == name.size() || at == 1) return false;  // unterminated, or ""
    ++at;
  } else {
    // Dot-string: atoms of atext joined by single dots.
    bool atom_started = false;
    for (; at < name.size() && name[at] != '@'; ++at) {
      if (name[at] == '.') {
        if (!atom_started) return false;
        atom_started = false;
      } else if (IsAtext(name[at])) {
        atom_started = true;
      } else {
        return false;
      }
    }
    if (!atom_started) return false;  // empty local part, or ending in a dot
  }
  if (at > 64 || at >= name.size() || name[at] != '@') return false;
  return IsHostname(name.substr(at + 1), /*allow_wildcard=*/false);
}

}  // namespace certgate
