#include <certgate/chain_evidence.h>
#include <openssl/err.h>
#include <openssl/x509_vfy.h>

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
  ERR_clear_error();
  return evidence;
}

}  // namespace certgate
