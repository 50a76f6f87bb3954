// The policy vocabulary: policy files (cg_policy_load_file) and directives as
// a server hands them over (cg_policy_set key + arguments), then inheritance
// and every accessor the adapters call.
//
// Input byte 0 picks the mode: even, the rest is a policy file (its directory
// holds ca.pem and crls/, so relative paths can resolve); odd, the rest is
// directives, one per line, arguments separated by 0x1f (so any byte but the
// separators can be inside an argument).
#include <certgate/certgate.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_support.h"

namespace certgate::fuzz {
namespace {

// ProcessTempDir() with ca.pem and crls/ in it, for relative paths to resolve.
const std::string &Dir() {
  static const std::string *dir = [] {
    const std::string &path = ProcessTempDir();
    ossl::UniquePtr<BIO> bio(BIO_new_file((path + "/ca.pem").c_str(), "w"));
    if (!bio || PEM_write_bio_X509(bio.get(), FixedCa().cert.get()) != 1) Fail("ca.pem");
    mkdir((path + "/crls").c_str(), 0700);
    return &path;
  }();
  return *dir;
}

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  for (;;) {
    size_t at = text.find(separator);
    parts.push_back(text.substr(0, at));
    if (at == std::string_view::npos) return parts;
    text.remove_prefix(at + 1);
  }
}

void Query(const cg_policy *policy) {
  (void)cg_policy_enabled(policy);
  for (int reason = 0; reason < CG_REASON_COUNT; ++reason) {
    int status = cg_policy_reject_status(policy, static_cast<cg_reason>(reason));
    if (status != 0 && (status < 100 || status > 599)) Fail("a reject status out of range");
  }
  (void)cg_policy_reject_at_handshake(policy);
  (void)cg_policy_log_accepts(policy);
  (void)cg_policy_log_format(policy);
  (void)cg_policy_revocation_enabled(policy);
  const char *cache = cg_policy_cache_dir(policy);
  if (cache == nullptr || cache[0] != '/') Fail("a cache directory that is not absolute");
  (void)cg_policy_status_page(policy);
}

}  // namespace
}  // namespace certgate::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace certgate::fuzz;
  Input in(data, size);
  const uint8_t mode = in.Byte();
  const std::string text = in.Rest();
  cg_error error;
  cg_policy *parent = cg_policy_new();
  cg_policy *child = cg_policy_new();
  if (mode % 2 == 0) {
    const std::string path = Dir() + "/policy.conf";
    if (!WriteFile(path, text)) Fail("cannot write the policy file");
    if (cg_policy_load_file(child, path.c_str(), &error) != CG_OK) {
      if (error.message[0] == '\0') Fail("a refused policy file without an error message");
      static const bool verbose = getenv("CERTGATE_FUZZ_VERBOSE") != nullptr;
      if (verbose) fprintf(stderr, "refused: %s\n", error.message);
    }
  } else {
    for (std::string_view line : Split(text, '\n')) {
      std::vector<std::string_view> words = Split(line, '\x1f');
      const std::string key(words[0]);
      std::vector<cg_str> argv;
      for (size_t i = 1; i < words.size(); ++i)
        argv.push_back(cg_str{words[i].data(), words[i].size()});
      cg_policy *target = (mode & 2) ? parent : child;
      if (cg_policy_set(target, key.c_str(), argv.data(), argv.size(), &error) != CG_OK &&
          error.message[0] == '\0') {
        Fail("a refused directive without an error message");
      }
    }
  }
  if (cg_policy_inherit(child, parent, &error) != CG_OK && error.message[0] == '\0') {
    Fail("a refused inheritance without an error message");
  }
  Query(parent);
  Query(child);
  cg_policy_free(child);
  cg_policy_free(parent);
  return 0;
}
