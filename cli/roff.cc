#include "roff.h"

namespace certgate::cli {

std::string RoffText(std::string_view text) {
  std::string out;
  bool line_start = true;
  for (const char c : text) {
    if (line_start && (c == '.' || c == '\'')) out += "\\&";
    switch (c) {
      case '\\':
        out += "\\e";
        break;
      case '-':
        out += "\\-";
        break;
      default:
        out += c;
    }
    line_start = c == '\n';
  }
  return out;
}

}  // namespace certgate::cli
