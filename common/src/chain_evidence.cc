#include <certgate/cert_facts.h>
#include <certgate/chain_evidence.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <cctype>

namespace certgate {
namespace {

// The longest chain OpenSSL is asked to build; certgate_max_depth is applied by
// the evaluator on what was built, whatever the server's verify depth says.
constexpr int kBuildDepth = 32;

int RecordEveryError(int ok, X509_STORE_CTX *ctx) {
  if (!ok) {
    auto *errors =
        static_cast<std::vector<ChainError> *>(X509_STORE_CTX_get_ex_data(ctx, 0 /* app data */));
    if (errors != nullptr) {
      errors->push_back({X509_STORE_CTX_get_error_depth(ctx), X509_STORE_CTX_get_error(ctx)});
    }
  }
  return 1;  // keep going: we want every error, not just the first
}

bool IsTrustError(int code) {
  switch (code) {
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
      return true;
    default:
      return false;
  }
}

std::shared_ptr<X509> Share(X509 *cert) {
  X509_up_ref(cert);
  return std::shared_ptr<X509>(cert, X509_free);
}

}  // namespace

ChainEvidence BuildChainEvidence(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *trust) {
  ChainEvidence evidence;
  ossl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  ossl::UniquePtr<X509_STORE> empty_store;
  if (trust == nullptr) {
    empty_store.reset(X509_STORE_new());
    trust = empty_store.get();
  }
  if (!ctx || trust == nullptr || !X509_STORE_CTX_init(ctx.get(), trust, leaf, untrusted)) {
    evidence.internal_error = "cannot set up chain verification";
    evidence.chain.push_back(Share(leaf));
    return evidence;
  }
  X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_NO_CHECK_TIME);
  X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  X509_VERIFY_PARAM_set_depth(param, kBuildDepth);
  X509_STORE_CTX_set_verify_cb(ctx.get(), RecordEveryError);
  X509_STORE_CTX_set_ex_data(ctx.get(), 0, &evidence.errors);

  const int verified = X509_verify_cert(ctx.get());
  if (verified < 0 && evidence.errors.empty()) {
    evidence.internal_error = "X509_verify_cert failed before examining the chain";
  }

  STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(ctx.get());
  for (int i = 0; built != nullptr && i < sk_X509_num(built); ++i) {
    evidence.chain.push_back(Share(sk_X509_value(built, i)));
  }
  if (evidence.chain.empty()) evidence.chain.push_back(Share(leaf));

  // Anchored: the top of the built chain is a trust anchor. OpenSSL says so by
  // reporting no trust error; other defects (signatures, CA flags) may remain.
  bool trust_error = false;
  for (const ChainError &error : evidence.errors) trust_error |= IsTrustError(error.code);
  evidence.anchored = !trust_error && (verified == 1 || !evidence.errors.empty());
  evidence.Summarize();
  ERR_clear_error();
  return evidence;
}

CertSummary SummarizeCert(X509 *cert) {
  CertSummary summary;
  summary.not_before = Asn1TimeToUnix(X509_get0_notBefore(cert));
  summary.not_after = Asn1TimeToUnix(X509_get0_notAfter(cert));
  summary.extended_key_usage = X509_get_extended_key_usage(cert);
  summary.key_usage = X509_get_key_usage(cert);
  summary.invalid_encoding = (X509_get_extension_flags(cert) & EXFLAG_INVALID) != 0;
  if (EVP_PKEY *key = X509_get0_pubkey(cert)) {
    summary.key_bits = EVP_PKEY_get_bits(key);
    if (EVP_PKEY_is_a(key, "RSA") || EVP_PKEY_is_a(key, "RSA-PSS")) {
      summary.key_kind = CertSummary::KeyKind::kRsa;
    } else if (EVP_PKEY_is_a(key, "EC")) {
      summary.key_kind = CertSummary::KeyKind::kEc;
    } else if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448")) {
      summary.key_kind = CertSummary::KeyKind::kEdwards;
    } else if (EVP_PKEY_is_a(key, "DSA")) {
      summary.key_kind = CertSummary::KeyKind::kDsa;
    }
  }
  int digest_nid = NID_undef;
  int key_nid = NID_undef;
  if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &digest_nid, &key_nid) &&
      digest_nid != NID_undef) {
    for (const char *c = OBJ_nid2sn(digest_nid); *c != '\0'; ++c) {
      summary.signature_digest.push_back(
          static_cast<char>(std::tolower(static_cast<unsigned char>(*c))));
    }
  }
  return summary;
}

LeafSummary SummarizeLeaf(X509 *leaf) {
  LeafSummary summary;
  X509_NAME *name = X509_get_subject_name(leaf);
  summary.subject = NameToString(name);
  for (int i = 0; i < X509_NAME_entry_count(name); ++i) {
    const X509_NAME_ENTRY *entry = X509_NAME_get_entry(name, i);
    unsigned char *utf8 = nullptr;
    const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
    if (len < 0) continue;
    summary.subject_entries.emplace_back(OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry)),
                                         std::string(reinterpret_cast<char *>(utf8), len));
    OPENSSL_free(utf8);
  }
  summary.subject_alt_names = SubjectAltNames(leaf);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(leaf, EVP_sha256(), md, &len)) summary.cert_sha256.assign(md, md + len);
  summary.spki_sha256 = SpkiSha256(leaf);
  return summary;
}

void ChainEvidence::Summarize() {
  summaries.clear();
  for (const auto &cert : chain) summaries.push_back(SummarizeCert(cert.get()));
  strict_defects = FindStrictDefects(chain, anchored);
  name_constraint_findings = FindNameConstraintViolations(chain);
  leaf_summary_.reset();
}

const LeafSummary &ChainEvidence::leaf_summary() const {
  if (!leaf_summary_) {
    leaf_summary_ = std::make_shared<const LeafSummary>(
        chain.empty() ? LeafSummary{} : SummarizeLeaf(chain.front().get()));
  }
  return *leaf_summary_;
}

}  // namespace certgate
