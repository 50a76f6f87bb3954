#include <certgate/reason.h>
#include <openssl/x509_vfy.h>

#include <array>

namespace certgate {
namespace {

constexpr std::array<ReasonInfo, CG_REASON_COUNT> kReasons = {{
#define CG_REASON_ROW(id, code, status, substatus, meaning, hint) \
  {CG_REASON_##id, code, status, substatus, meaning, hint},
    CERTGATE_REASONS(CG_REASON_ROW)
#undef CG_REASON_ROW
}};

}  // namespace

const ReasonInfo &Info(Reason reason) {
  const auto index = static_cast<size_t>(reason);
  return kReasons[index < kReasons.size() ? index : static_cast<size_t>(CG_REASON_INTERNAL_ERROR)];
}

bool IsNameConstraintError(int x509_error) {
  switch (x509_error) {
    case X509_V_ERR_PERMITTED_VIOLATION:
    case X509_V_ERR_EXCLUDED_VIOLATION:
    case X509_V_ERR_SUBTREE_MINMAX:
    case X509_V_ERR_UNSUPPORTED_CONSTRAINT_TYPE:
    case X509_V_ERR_UNSUPPORTED_CONSTRAINT_SYNTAX:
    case X509_V_ERR_UNSUPPORTED_NAME_SYNTAX:
      return true;
    default:
      return false;
  }
}

Reason ReasonForVerifyError(int x509_error) {
  if (IsNameConstraintError(x509_error)) return CG_REASON_INVALID_CA;
  switch (x509_error) {
    case X509_V_OK:
      return CG_REASON_NONE;
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
      return CG_REASON_UNTRUSTED_ISSUER;
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
      return CG_REASON_CHAIN_INCOMPLETE;
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
    case X509_V_ERR_SIGNATURE_ALGORITHM_MISMATCH:
      return CG_REASON_BAD_SIGNATURE;
    case X509_V_ERR_INVALID_CA:
    case X509_V_ERR_PATH_LENGTH_EXCEEDED:
    case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
    case X509_V_ERR_PROXY_PATH_LENGTH_EXCEEDED:
    case X509_V_ERR_PROXY_CERTIFICATES_NOT_ALLOWED:
    case X509_V_ERR_INVALID_POLICY_EXTENSION:
    case X509_V_ERR_NO_EXPLICIT_POLICY:
      return CG_REASON_INVALID_CA;
    case X509_V_ERR_INVALID_PURPOSE:
      return CG_REASON_WRONG_PURPOSE;
    case X509_V_ERR_CERT_CHAIN_TOO_LONG:
      return CG_REASON_CHAIN_TOO_LONG;
    case X509_V_ERR_CERT_HAS_EXPIRED:
      return CG_REASON_EXPIRED;
    case X509_V_ERR_CERT_NOT_YET_VALID:
      return CG_REASON_NOT_YET_VALID;
    case X509_V_ERR_CERT_REVOKED:
      return CG_REASON_REVOKED;
    case X509_V_ERR_EE_KEY_TOO_SMALL:
    case X509_V_ERR_CA_KEY_TOO_SMALL:
      return CG_REASON_WEAK_KEY;
    case X509_V_ERR_CA_MD_TOO_WEAK:
      return CG_REASON_WEAK_SIGNATURE;
    case X509_V_ERR_OUT_OF_MEM:
    case X509_V_ERR_UNSPECIFIED:
    case X509_V_ERR_STORE_LOOKUP:
      return CG_REASON_INTERNAL_ERROR;
    default:
      // Bad time fields, invalid or unhandled critical extensions, explicit EC
      // parameters, and anything newer than this table: the certificate itself is
      // not acceptable as encoded.
      return CG_REASON_MALFORMED;
  }
}

}  // namespace certgate
