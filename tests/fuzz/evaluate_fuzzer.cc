// Certificate evidence and evaluation under every rule kind.
//
// Input byte 0: bit 0 re-signs the leaf with the fixed CA (after setting its
// issuer name), so a mutated certificate is also judged as a trusted chain,
// where identity rules (subject, ~regex, SAN, pins) run; bit 1 evaluates with
// no certificate. The rest is DER certificates back to back: the leaf, then
// the untrusted chain as a client would send it. Each is judged under a fixed
// set of policies through the C API, and every field and format is read.
#include <certgate/certgate.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <string>
#include <vector>

#include "fuzz_support.h"

namespace certgate::fuzz {
namespace {

using ossl::UniquePtr;

std::string Hex(const unsigned char *data, size_t n) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[data[i] >> 4]);
    out.push_back(kDigits[data[i] & 15]);
  }
  return out;
}

void Set(cg_policy *policy, const char *key, std::vector<std::string> args) {
  std::vector<cg_str> argv;
  for (const std::string &arg : args) argv.push_back(cg_str{arg.data(), arg.size()});
  cg_error error;
  if (cg_policy_set(policy, key, argv.data(), argv.size(), &error) != CG_OK) {
    Fail(std::string("fixture policy: ") + error.message);
  }
}

struct Policies {
  std::vector<cg_policy *> list;
};

const Policies &FixedPolicies() {
  static Policies *policies = [] {
    auto *p = new Policies;
    X509 *leaf = FixedLeaf().cert.get();
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    X509_digest(leaf, EVP_sha256(), md, &n);
    const std::string cert_pin = "sha256:" + Hex(md, n);
    X509_pubkey_digest(leaf, EVP_sha256(), md, &n);
    const std::string spki_pin = "spki:" + Hex(md, n);
    const std::string ca_file = ProcessTempDir() + "/ca.pem";
    {
      UniquePtr<BIO> bio(BIO_new_file(ca_file.c_str(), "w"));
      if (!bio || PEM_write_bio_X509(bio.get(), FixedCa().cert.get()) != 1) Fail("ca.pem");
    }
    auto add = [&](auto fill) {
      cg_policy *policy = cg_policy_new();
      Set(policy, "certgate", {"require"});
      fill(policy);
      p->list.push_back(policy);
    };
    add([&](cg_policy *x) { Set(x, "certgate_subject", {"O=Example", "OU=People"}); });
    add([&](cg_policy *x) { Set(x, "certgate_subject", {"~^CN=[^,]+,OU=People"}); });
    add([&](cg_policy *x) {
      Set(x, "certgate_subject", {"~(?:^|,)O=(Example|Other)$"});
      Set(x, "certgate_reject_body", {"json"});
      Set(x, "certgate_reject_detail", {"on"});
    });
    add([&](cg_policy *x) {
      Set(x, "certgate_san",
          {"dns:*.example", "email:*@example.com", "uri:spiffe://prod/*", "ip:127.0.0.1"});
      Set(x, "certgate_reject_body", {"html"});
    });
    add([&](cg_policy *x) {
      Set(x, "certgate_pin", {cert_pin, spki_pin});
      Set(x, "certgate_log", {"json", "accepts"});
    });
    add([&](cg_policy *x) {
      Set(x, "certgate_deny", {cert_pin});
      Set(x, "certgate_min_key", {"rsa=3072", "ec=384"});
      Set(x, "certgate_deny_signature", {"sha1", "md5", "sha256"});
    });
    add([&](cg_policy *x) {
      Set(x, "certgate_require_eku", {"any"});
      Set(x, "certgate_require_key_usage", {"keyEncipherment"});
      Set(x, "certgate_max_depth", {"1"});
      Set(x, "certgate_trusted_issuers", {ca_file});
      Set(x, "certgate_expiry_warning", {"365d"});
    });
    add([&](cg_policy *x) {
      Set(x, "certgate", {"optional"});
      Set(x, "certgate_require_key_usage", {"off"});
      Set(x, "certgate_clock_skew", {"0"});
    });
    return p;
  }();
  return *policies;
}

void Judge(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *trust) {
  static char buf[8192];
  for (cg_policy *policy : FixedPolicies().list) {
    cg_decision *decision = cg_evaluate(policy, leaf, untrusted, trust, kNow);
    if (decision == nullptr) Fail("cg_evaluate returned NULL");
    const cg_verdict verdict = cg_decision_verdict(decision);
    const cg_reason reason = cg_decision_reason(decision);
    // Require policies never allow a missing certificate; an allow has no reason.
    if (leaf == nullptr && verdict == CG_VERDICT_ALLOW && policy != FixedPolicies().list.back()) {
      Fail("no certificate was allowed under certgate require");
    }
    if (verdict == CG_VERDICT_ALLOW && reason != CG_REASON_NONE) Fail("an allow with a reason");
    (void)cg_decision_warning(decision);
    (void)cg_decision_pending(decision);
    for (int field = 0; field < CG_FIELD_COUNT; ++field) {
      cg_str value = cg_decision_field(decision, static_cast<cg_field>(field));
      if (value.len != 0 && value.data == nullptr) Fail("a field with a length and no data");
    }
    for (cg_log_format format : {CG_LOG_KV, CG_LOG_JSON}) {
      size_t len = cg_decision_format_log(decision, format, buf, sizeof(buf));
      if (len >= sizeof(buf) || buf[len] != '\0') Fail("a log line past its buffer");
    }
    const char *content_type = nullptr;
    size_t len = cg_decision_format_body(decision, policy, &content_type, buf, sizeof(buf));
    if (len >= sizeof(buf)) Fail("a body past its buffer");
    cg_decision_free(decision);
  }
}

}  // namespace
}  // namespace certgate::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace certgate::fuzz;
  using certgate::ossl::UniquePtr;
  Input in(data, size);
  const uint8_t flags = in.Byte();
  const std::string rest = in.Rest();
  static X509_STORE *trust = FixedTrust().release();

  if (flags & 2) {
    Judge(nullptr, nullptr, trust);
    return 0;
  }
  std::vector<UniquePtr<X509>> certs;
  const unsigned char *p = reinterpret_cast<const unsigned char *>(rest.data());
  const unsigned char *end = p + rest.size();
  while (p < end && certs.size() < 8) {
    X509 *cert = d2i_X509(nullptr, &p, static_cast<long>(end - p));
    if (cert == nullptr) break;
    certs.emplace_back(cert);
  }
  if (certs.empty()) return 0;
  if (flags & 1) {
    X509_set_issuer_name(certs[0].get(), X509_get_subject_name(FixedCa().cert.get()));
    if (X509_sign(certs[0].get(), FixedCa().key.get(), EVP_sha256()) == 0) return 0;
  }
  UniquePtr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  for (size_t i = 1; i < certs.size(); ++i) {
    X509_up_ref(certs[i].get());
    sk_X509_push(untrusted.get(), certs[i].get());
  }
  Judge(certs[0].get(), untrusted.get(), trust);
  return 0;
}
