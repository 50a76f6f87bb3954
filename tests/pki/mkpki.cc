// certgate-mkpki: writes the demo / integration-test PKI (tests/pki/README.md).
//
//   certgate-mkpki --out DIR [--now UNIX_SECONDS]

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

#include "demo_pki.h"

namespace {

constexpr char kUsage[] =
    "usage: certgate-mkpki --out DIR [--now UNIX_SECONDS]\n"
    "  Writes the certgate demo/test PKI (CAs, server, clients with every defect,\n"
    "  CRLs, OCSP index) under DIR. Validity is relative to --now (default: the\n"
    "  current time).\n";

int UsageError(const std::string &message) {
  std::fprintf(stderr, "certgate-mkpki: %s\n%s", message.c_str(), kUsage);
  return 1;
}

bool ParseInt64(const char *text, int64_t *out) {
  if (*text == '\0') return false;
  errno = 0;
  char *end = nullptr;
  long long value = std::strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0') return false;
  *out = static_cast<int64_t>(value);
  return true;
}

}  // namespace

int main(int argc, char **argv) {
  std::string out;
  int64_t now = static_cast<int64_t>(std::time(nullptr));
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      return 0;
    }
    std::string value;
    bool has_value = false;
    size_t eq = arg.find('=');
    if (eq != std::string::npos && arg.rfind("--", 0) == 0) {
      value = arg.substr(eq + 1);
      arg.resize(eq);
      has_value = true;
    }
    if (arg != "--out" && arg != "--now") return UsageError("unknown argument " + arg);
    if (!has_value) {
      if (i + 1 >= argc) return UsageError(arg + " needs a value");
      value = argv[++i];
    }
    if (arg == "--out") {
      if (value.empty()) return UsageError("--out needs a directory");
      out = value;
    } else if (!ParseInt64(value.c_str(), &now) || now <= 0) {
      return UsageError("--now wants Unix seconds, not \"" + value + "\"");
    }
  }
  if (out.empty()) return UsageError("--out DIR is required");

  std::string error;
  if (!certgate::pki::WriteDemoPki(out, now, &error)) {
    std::fprintf(stderr, "certgate-mkpki: %s\n", error.c_str());
    return 2;
  }
  std::printf("%s\n", out.c_str());
  return 0;
}
