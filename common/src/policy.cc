// Policy::Set and friends: one parser for every key of DESIGN §2, shared by the
// nginx, Apache and CLI front ends so they accept and reject exactly the same text.
#include <certgate/certgate.h>
#include <certgate/policy.h>
#include <openssl/x509v3.h>

#include <string>

#include "policy_parse.h"

namespace certgate {
namespace {

using policy_parse::Args;
using policy_parse::Errors;
using policy_parse::Quote;
using policy_parse::Set;

using Setter = Status (*)(Policy &, const Errors &, const Args &);

struct KeySpec {
  const char *name;
  size_t min_args;
  size_t max_args;
  int path;  // CG_KEY_PATH_*
  Setter set;
};

constexpr size_t kMany = CG_KEY_MANY;

// Generated from CERTGATE_KEYS (DESIGN §2 order); PolicyKeys() and
// CanonicalKey() are derived from it.
const KeySpec kKeys[] = {
#define CG_KEY_SPEC(id, key, nginx, httpd, field, contexts, min_args, max_args, path, help) \
  {key, min_args, max_args, path, Set<CG_KEY_##id>},
    CERTGATE_KEYS(CG_KEY_SPEC)
#undef CG_KEY_SPEC
};
static_assert(sizeof(kKeys) / sizeof(kKeys[0]) == CG_KEY_COUNT, "one row per cg_key");

const KeySpec *FindKey(const std::string &canonical) {
  for (const KeySpec &spec : kKeys) {
    if (canonical == spec.name) return &spec;
  }
  return nullptr;
}

// Lowercase without underscores: the form every spelling of a key reduces to.
std::string Squash(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c != '_') out += static_cast<char>(tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string CountValues(size_t n) {
  return n == 1 ? "one value" : n == 2 ? "two values" : std::to_string(n) + " values";
}

}  // namespace

std::string CanonicalKey(std::string_view key) {
  std::string squashed = Squash(key);
  if (squashed == "certgate") return "certgate";
  // "certgate_subject", "CertGateSubject", "CERTGATE_SUBJECT" all squash to
  // "certgatesubject"; the bare "subject" has no prefix to strip.
  std::string_view rest = squashed;
  if (rest.substr(0, 8) == "certgate") rest.remove_prefix(8);
  for (const KeySpec &spec : kKeys) {
    if (spec.name != std::string_view("certgate") && Squash(spec.name) == rest) return spec.name;
  }
  return std::string();
}

int KeyPathKind(std::string_view canonical) {
  const KeySpec *spec = FindKey(std::string(canonical));
  return spec != nullptr ? spec->path : CG_KEY_PATH_NONE;
}

const std::vector<std::string_view> &PolicyKeys() {
  static const std::vector<std::string_view> kNames = [] {
    std::vector<std::string_view> names;
    for (const KeySpec &spec : kKeys) names.emplace_back(spec.name);
    return names;
  }();
  return kNames;
}

Status Policy::Set(std::string_view key, const std::vector<std::string> &args) {
  std::string canonical = CanonicalKey(key);
  const KeySpec *spec = FindKey(canonical);
  if (spec == nullptr) return Status::Error("unknown key " + Quote(key));
  Errors err(canonical);
  if (args.size() < spec->min_args || args.size() > spec->max_args) {
    std::string want =
        spec->max_args == kMany            ? "at least " + CountValues(spec->min_args)
        : spec->min_args == spec->max_args ? CountValues(spec->min_args)
        : spec->min_args + 1 == spec->max_args
            ? CountValues(spec->min_args) + " or " + CountValues(spec->max_args)
            : std::to_string(spec->min_args) + " to " + std::to_string(spec->max_args) + " values";
    return err.Error("takes " + want + ", got " + std::to_string(args.size()));
  }
  return spec->set(*this, err, args);
}

void Policy::InheritFrom(const Policy &parent) {
  auto inherit = [](auto &field, const auto &from) {
    if (!field.has_value()) field = from;
  };
#define CG_KEY_INHERIT(id, key, nginx, httpd, field, contexts, min_args, max_args, path, help) \
  inherit(field, parent.field);
  CERTGATE_KEYS(CG_KEY_INHERIT)
#undef CG_KEY_INHERIT
}

Status Policy::CheckCombination() const {
  if (EffectiveFetchIssuers() && (!fetch_allow || fetch_allow->empty())) {
    return Status::Error(
        "certgate_fetch_issuers on needs certgate_fetch_allow naming the hosts its AIA URLs may "
        "name: the URL comes from a client certificate that is not yet verified");
  }
  return Status::Ok();
}

KeyUsageMask Policy::EffectiveKeyUsage() const {
  return require_key_usage.value_or(KU_DIGITAL_SIGNATURE);
}

const std::vector<RevocationSource> &Policy::EffectiveRevocationSources() const {
  static const std::vector<RevocationSource> kDefault = {RevocationSource::kCrl,
                                                         RevocationSource::kOcsp};
  return revocation_sources ? *revocation_sources : kDefault;
}

const std::vector<std::string> &Policy::EffectiveDenySignature() const {
  static const std::vector<std::string> kDefault = {"md5", "sha1"};
  return deny_signature ? *deny_signature : kDefault;
}

}  // namespace certgate
