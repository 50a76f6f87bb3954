#include "revocation/ocsp.h"

#include <certgate/ossl_ptr.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>

#include <ctime>

#include "revocation/crl.h"

namespace certgate {
namespace {

using ossl::UniquePtr;

bool ToUnix(const ASN1_GENERALIZEDTIME *t, int64_t *out) {
  if (t == nullptr) return false;
  struct tm tm {};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return false;
  *out = static_cast<int64_t>(timegm(&tm));
  return true;
}

std::string OpensslError() {
  unsigned long code = ERR_peek_last_error();
  char buf[256] = "unknown error";
  if (code != 0) ERR_error_string_n(code, buf, sizeof(buf));
  ERR_clear_error();
  return buf;
}

std::string SubjectAndSerial(X509 *cert) {
  std::string out;
  UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (bio && X509_NAME_print_ex(bio.get(), X509_get_subject_name(cert), 0, XN_FLAG_RFC2253) >= 0) {
    char *data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    out.assign(data, static_cast<size_t>(len));
  }
  UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  char *hex = bn ? BN_bn2hex(bn.get()) : nullptr;
  out += std::string(" serial=") + (hex != nullptr ? hex : "?");
  OPENSSL_free(hex);
  return out;
}

}  // namespace

Result<std::string> OcspRequestDer(X509 *cert, X509 *issuer) {
  UniquePtr<OCSP_REQUEST> request(OCSP_REQUEST_new());
  UniquePtr<OCSP_CERTID> id(OCSP_cert_to_id(EVP_sha1(), cert, issuer));
  if (!request || !id || OCSP_request_add0_id(request.get(), id.get()) == nullptr) {
    return Status::Error("cannot build an OCSP request: " + OpensslError());
  }
  (void)id.release();  // the request owns it now
  unsigned char *der = nullptr;
  int len = i2d_OCSP_REQUEST(request.get(), &der);
  if (len <= 0) return Status::Error("cannot encode an OCSP request");
  std::string out(reinterpret_cast<char *>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string OcspGetUrl(const std::string &responder, const std::string &request_der) {
  std::string b64(4 * ((request_der.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(&b64[0]),
                          reinterpret_cast<const unsigned char *>(request_der.data()),
                          static_cast<int>(request_der.size()));
  b64.resize(static_cast<size_t>(n));
  std::string encoded;
  for (char c : b64) {
    if (c == '+') {
      encoded += "%2B";
    } else if (c == '/') {
      encoded += "%2F";
    } else if (c == '=') {
      encoded += "%3D";
    } else {
      encoded.push_back(c);
    }
  }
  if (encoded.size() >= 255) return "";
  std::string url = responder;
  if (url.empty() || url.back() != '/') url.push_back('/');
  return url + encoded;
}

Result<OcspRecord> VerifyOcspResponse(std::string_view der, X509 *cert, X509 *issuer,
                                      const std::string &responder, int64_t now, int64_t skew) {
  ERR_clear_error();
  const unsigned char *p = reinterpret_cast<const unsigned char *>(der.data());
  UniquePtr<OCSP_RESPONSE> response(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
  if (!response) {
    ERR_clear_error();
    return Status::Error("not an OCSP response (" + std::to_string(der.size()) + " bytes)");
  }
  int status = OCSP_response_status(response.get());
  if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
    return Status::Error(std::string("the responder answered ") + OCSP_response_status_str(status));
  }
  UniquePtr<OCSP_BASICRESP> basic(OCSP_response_get1_basic(response.get()));
  if (!basic) return Status::Error("not a basic OCSP response");

  // Trust only the issuer: the signer must be the issuer or a cert it issued
  // with id-kp-OCSPSigning (checked by OCSP_basic_verify's issuer check).
  UniquePtr<X509_STORE> store(X509_STORE_new());
  UniquePtr<STACK_OF(X509)> certs(sk_X509_new_null());
  if (!store || !certs || X509_STORE_add_cert(store.get(), issuer) != 1) {
    return Status::Error("out of memory");
  }
  X509_up_ref(issuer);
  sk_X509_push(certs.get(), issuer);
  X509_STORE_set_flags(store.get(), X509_V_FLAG_PARTIAL_CHAIN);
  X509_VERIFY_PARAM_set_time(X509_STORE_get0_param(store.get()), static_cast<time_t>(now));
  if (OCSP_basic_verify(basic.get(), certs.get(), store.get(), 0) != 1) {
    return Status::Error(
        "the OCSP response is not signed by the issuer or its delegated "
        "OCSP signer: " +
        OpensslError());
  }
  UniquePtr<OCSP_CERTID> id(OCSP_cert_to_id(EVP_sha1(), cert, issuer));
  int cert_status = -1, reason = -1;
  ASN1_GENERALIZEDTIME *revoked = nullptr, *this_update = nullptr, *next_update = nullptr;
  if (!id || OCSP_resp_find_status(basic.get(), id.get(), &cert_status, &reason, &revoked,
                                   &this_update, &next_update) != 1) {
    ERR_clear_error();
    return Status::Error("the OCSP response has no answer for this certificate");
  }
  OcspRecord record;
  record.status = cert_status;
  record.reason = cert_status == V_OCSP_CERTSTATUS_REVOKED ? reason : -1;
  record.source = responder;
  record.fetched_at = now;
  record.subject = SubjectAndSerial(cert);
  if (!ToUnix(this_update, &record.this_update)) return Status::Error("bad thisUpdate in OCSP");
  if (next_update != nullptr && !ToUnix(next_update, &record.next_update)) {
    return Status::Error("bad nextUpdate in OCSP");
  }
  if (revoked != nullptr && !ToUnix(revoked, &record.revoked_at)) {
    return Status::Error("bad revocationTime in OCSP");
  }
  if (record.this_update > now + skew) {
    return Status::Error("the OCSP thisUpdate " + FormatTime(record.this_update) +
                         " is in the future");
  }
  if (record.next_update != 0 && record.next_update < record.this_update) {
    return Status::Error("the OCSP nextUpdate is before its thisUpdate");
  }
  ERR_clear_error();
  return record;
}

Status StoreOcsp(RevocationStore &store, const std::string &cert_id, const OcspRecord &record) {
  Result<RevocationStore::WriteTxn> txn = store.Write();
  if (!txn.ok()) return txn.status();
  std::optional<OcspRecord> old = txn->GetOcsp(cert_id);
  if (old && old->this_update > record.this_update) {
    return Status::Error("older than the cached answer (thisUpdate " +
                         FormatTime(record.this_update) + " < " + FormatTime(old->this_update) +
                         "), kept the cached one");
  }
  Status put = txn->PutOcsp(cert_id, record);
  if (!put.ok()) return put;
  return txn->Commit();
}

}  // namespace certgate
