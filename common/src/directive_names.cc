#include "directive_names.h"

#include <atomic>
#include <cctype>

namespace certgate {
namespace {

std::atomic<DirectiveStyle> g_style{DirectiveStyle::kNginx};

constexpr std::string_view kPrefix = "certgate";

// Directive names stand as words in prose; inside a URL, a path or a host name
// the same letters are left alone.
bool IsLeftBoundary(std::string_view text, size_t i) {
  return i == 0 || isspace(static_cast<unsigned char>(text[i - 1])) ||
         std::string_view("(\"'`;,").find(text[i - 1]) != std::string_view::npos;
}

bool IsRightBoundary(std::string_view rest) {
  if (rest.empty() || isspace(static_cast<unsigned char>(rest[0]))) return true;
  if (rest[0] == '.') return rest.size() == 1 || isspace(static_cast<unsigned char>(rest[1]));
  return std::string_view(")\"'`;,:").find(rest[0]) != std::string_view::npos;
}

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

}  // namespace

void SetDirectiveStyle(DirectiveStyle style) { g_style.store(style); }

DirectiveStyle CurrentDirectiveStyle() { return g_style.load(); }

std::string SpellDirectives(std::string_view text, DirectiveStyle style) {
  if (style == DirectiveStyle::kNginx) return std::string(text);
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    std::string_view rest = text.substr(i);
    if (!IsLeftBoundary(text, i) || !StartsWith(rest, kPrefix)) {
      out.push_back(text[i++]);
      continue;
    }
    size_t end = kPrefix.size();
    while (end < rest.size() &&
           (islower(static_cast<unsigned char>(rest[end])) || rest[end] == '_'))
      ++end;
    const std::string_view word = rest.substr(0, end);
    const bool directive = IsRightBoundary(rest.substr(end));
    const std::string_view after = rest.substr(end);
    const bool bare_with_mode =
        word == kPrefix && (StartsWith(after, " require") || StartsWith(after, " optional") ||
                            StartsWith(after, " off"));
    if (!directive || (word == kPrefix && !bare_with_mode) ||
        (word != kPrefix && word[kPrefix.size()] != '_')) {
      out.append(word);
      i += word.size();
      continue;
    }
    out += "CertGate";
    bool upper = false;
    for (char c : word.substr(kPrefix.size())) {
      if (c == '_') {
        upper = true;
      } else {
        out.push_back(upper ? static_cast<char>(toupper(static_cast<unsigned char>(c))) : c);
        upper = false;
      }
    }
    i += word.size();
  }
  return out;
}

}  // namespace certgate
