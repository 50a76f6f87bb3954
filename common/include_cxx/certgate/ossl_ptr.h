// RAII ownership for OpenSSL handles: one pattern for every type.
#pragma once

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>

namespace certgate::ossl {

inline void FreeCertStack(STACK_OF(X509) * stack) { sk_X509_pop_free(stack, X509_free); }

template <typename T>
struct Deleter;

#define CERTGATE_OSSL_DELETER(type, free_fn)       \
  template <>                                      \
  struct Deleter<type> {                           \
    void operator()(type *p) const { free_fn(p); } \
  }

CERTGATE_OSSL_DELETER(X509, X509_free);
CERTGATE_OSSL_DELETER(X509_CRL, X509_CRL_free);
CERTGATE_OSSL_DELETER(X509_STORE, X509_STORE_free);
CERTGATE_OSSL_DELETER(X509_STORE_CTX, X509_STORE_CTX_free);
CERTGATE_OSSL_DELETER(X509_NAME, X509_NAME_free);
CERTGATE_OSSL_DELETER(X509_EXTENSION, X509_EXTENSION_free);
CERTGATE_OSSL_DELETER(X509_REVOKED, X509_REVOKED_free);
CERTGATE_OSSL_DELETER(X509_ALGOR, X509_ALGOR_free);
CERTGATE_OSSL_DELETER(EVP_PKEY, EVP_PKEY_free);
CERTGATE_OSSL_DELETER(EVP_PKEY_CTX, EVP_PKEY_CTX_free);
CERTGATE_OSSL_DELETER(EVP_MD_CTX, EVP_MD_CTX_free);
CERTGATE_OSSL_DELETER(BIO, BIO_free_all);
CERTGATE_OSSL_DELETER(BIGNUM, BN_free);
CERTGATE_OSSL_DELETER(ASN1_OBJECT, ASN1_OBJECT_free);
CERTGATE_OSSL_DELETER(BASIC_CONSTRAINTS, BASIC_CONSTRAINTS_free);
CERTGATE_OSSL_DELETER(EXTENDED_KEY_USAGE, EXTENDED_KEY_USAGE_free);
CERTGATE_OSSL_DELETER(ASN1_STRING, ASN1_STRING_free);  // also ASN1_INTEGER, ASN1_TIME, ...
CERTGATE_OSSL_DELETER(GENERAL_NAMES, GENERAL_NAMES_free);
CERTGATE_OSSL_DELETER(NAME_CONSTRAINTS, NAME_CONSTRAINTS_free);
CERTGATE_OSSL_DELETER(AUTHORITY_INFO_ACCESS, AUTHORITY_INFO_ACCESS_free);
CERTGATE_OSSL_DELETER(CRL_DIST_POINTS, CRL_DIST_POINTS_free);
CERTGATE_OSSL_DELETER(ISSUING_DIST_POINT, ISSUING_DIST_POINT_free);
CERTGATE_OSSL_DELETER(OCSP_REQUEST, OCSP_REQUEST_free);
CERTGATE_OSSL_DELETER(OCSP_RESPONSE, OCSP_RESPONSE_free);
CERTGATE_OSSL_DELETER(OCSP_BASICRESP, OCSP_BASICRESP_free);
CERTGATE_OSSL_DELETER(OCSP_CERTID, OCSP_CERTID_free);
CERTGATE_OSSL_DELETER(STACK_OF(X509), FreeCertStack);

#undef CERTGATE_OSSL_DELETER

template <typename T>
using UniquePtr = std::unique_ptr<T, Deleter<T>>;

// Takes a new reference on an X509 the caller does not own.
inline UniquePtr<X509> UpRef(X509 *cert) {
  if (cert != nullptr) X509_up_ref(cert);
  return UniquePtr<X509>(cert);
}

// One reference shared by several owners (a chain kept by a decision and a
// pending fetch), released through the same deleter as UniquePtr.
inline std::shared_ptr<X509> Share(X509 *cert) { return UpRef(cert); }

}  // namespace certgate::ossl
