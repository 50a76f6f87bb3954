// The OCSP response check (VerifyOcspResponse) and the store of its answer.
//
// Input byte 0 picks the mode: even, the rest is an OCSPResponse checked as
// the responder sent it; odd, the response is decoded and its basic response
// re-signed by the fixed CA, so mutated statuses, times and CertIDs get past
// the signature into the checks behind it. An accepted answer is stored and
// must read back as it was accepted.
#include <openssl/ocsp.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "fuzz_support.h"
#include "revocation/issuer_keys.h"
#include "revocation/ocsp.h"
#include "revocation/store.h"

namespace certgate::fuzz {
namespace {

using ossl::UniquePtr;

// The response with its basic response re-signed by the CA; "" when it does not decode.
std::string Resigned(const std::string &der) {
  const unsigned char *p = reinterpret_cast<const unsigned char *>(der.data());
  UniquePtr<OCSP_RESPONSE> response(d2i_OCSP_RESPONSE(nullptr, &p, static_cast<long>(der.size())));
  if (!response) return "";
  UniquePtr<OCSP_BASICRESP> basic(OCSP_response_get1_basic(response.get()));
  if (!basic) return "";
  if (OCSP_basic_sign(basic.get(), FixedCa().cert.get(), FixedCa().key.get(), EVP_sha256(), nullptr,
                      OCSP_NOCERTS) != 1) {
    return "";
  }
  UniquePtr<OCSP_RESPONSE> signed_response(
      OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, basic.get()));
  if (!signed_response) return "";
  unsigned char *out = nullptr;
  const int len = i2d_OCSP_RESPONSE(signed_response.get(), &out);
  if (len <= 0) return "";
  std::string text(reinterpret_cast<char *>(out), static_cast<size_t>(len));
  OPENSSL_free(out);
  return text;
}

}  // namespace
}  // namespace certgate::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace certgate;
  using namespace certgate::fuzz;
  Input in(data, size);
  const uint8_t mode = in.Byte();
  std::string der = in.Rest();
  if (mode % 2 == 1) der = Resigned(der);
  X509 *leaf = FixedLeaf().cert.get();
  X509 *ca = FixedCa().cert.get();
  Result<OcspRecord> record = VerifyOcspResponse(der, leaf, ca, "http://ocsp.example/", kNow);
  if (!record.ok()) {
    static const bool verbose = getenv("CERTGATE_FUZZ_VERBOSE") != nullptr;
    if (verbose) fprintf(stderr, "refused: %s\n", record.status().message().c_str());
    return 0;
  }
  if (record->status < 0 || record->status > 2) Fail("an accepted answer has no valid status");
  if (record->next_update != 0 && record->next_update < record->this_update) {
    Fail("an accepted answer's nextUpdate is before its thisUpdate");
  }
  if (!ProcessStore().Purge().ok()) Fail("cannot purge the store");
  const std::string cert_id = OcspCertIdKey(leaf, ca);
  Status stored = StoreOcsp(ProcessStore(), cert_id, record.value());
  if (!stored.ok()) Fail("an accepted answer is not stored: " + stored.message());
  Result<RevocationStore::ReadTxn> txn = ProcessStore().Read();
  if (!txn.ok()) Fail("cannot read the store");
  std::optional<OcspRecord> back = txn->GetOcsp(cert_id);
  if (!back || back->status != record->status || back->this_update != record->this_update ||
      back->next_update != record->next_update || back->revoked_at != record->revoked_at ||
      back->reason != record->reason) {
    Fail("a stored answer reads back differently");
  }
  return 0;
}
