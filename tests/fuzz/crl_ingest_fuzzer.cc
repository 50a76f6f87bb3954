// CRL parser and ingest, through the LMDB write path, with validly signed CRLs.
//
// Input byte 0 picks the mode:
//  - even: a structured entry list (serial bytes and sign, reason, date) that
//    the harness turns into a CRL signed by the fixed CA with OpenSSL's own
//    encoder, ingests into a temp store, then checks every lookup against the
//    list (the last entry of a serial wins, removeFromCRL entries are skipped);
//  - odd: the rest is a CRL file (DER or PEM). Each CRL that parses has its
//    tbsCertList re-signed with the CA key (so mutations inside it reach the
//    entry walker and the store), is ingested, and each serial that OpenSSL
//    itself decodes from the same bytes must then be found in the store.
#include <openssl/bn.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_support.h"
#include "revocation/crl.h"
#include "revocation/issuer_keys.h"
#include "revocation/store.h"

namespace certgate::fuzz {
namespace {

using ossl::UniquePtr;

struct Expected {
  int64_t revoked_at;
  int reason;
};
// (negative, magnitude) -> what the store must return.
using Model = std::map<std::pair<bool, std::string>, std::optional<Expected>>;

std::string DerLength(size_t n) {
  if (n < 0x80) return std::string(1, static_cast<char>(n));
  std::string bytes;
  for (; n > 0; n >>= 8) bytes.insert(bytes.begin(), static_cast<char>(n & 0xff));
  return std::string(1, static_cast<char>(0x80 | bytes.size())) + bytes;
}

std::string Tlv(uint8_t tag, std::string_view content) {
  return std::string(1, static_cast<char>(tag)) + DerLength(content.size()) + std::string(content);
}

// The CRL `tbs` signed by the fixed CA (ECDSA with SHA-256), as DER.
std::string SignTbs(std::string_view tbs, std::string_view sig_alg) {
  UniquePtr<EVP_MD_CTX> ctx(EVP_MD_CTX_new());
  size_t len = 0;
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, FixedCa().key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, reinterpret_cast<const unsigned char *>(tbs.data()),
                     tbs.size()) != 1) {
    Fail("cannot sign a tbsCertList");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char *>(sig.data()), &len,
                     reinterpret_cast<const unsigned char *>(tbs.data()), tbs.size()) != 1) {
    Fail("cannot sign a tbsCertList");
  }
  sig.resize(len);
  return Tlv(0x30, std::string(tbs) + std::string(sig_alg) + Tlv(0x03, std::string(1, '\0') + sig));
}

// `crl`: the one ingested (its record key is its issuer's and scope's).
void CheckLookups(const Model &model, const ParsedCrl &crl) {
  Result<RevocationStore::ReadTxn> txn = ProcessStore().Read();
  if (!txn.ok()) Fail("cannot read the store: " + txn.status().message());
  std::optional<CrlHead> head = txn->GetCrlHead(RecordKey(IssuerId(FixedCa().cert.get()), crl));
  if (!head) Fail("an ingested CRL is not in the store");
  for (const auto &[serial, expected] : model) {
    std::optional<RevokedEntry> found = txn->GetRevoked(head->gen, serial.second, serial.first);
    if (!expected) {
      if (found) Fail("a serial listed only as removeFromCRL is revoked");
      continue;
    }
    if (!found) Fail("a revoked serial of the CRL is not in the store");
    if (found->revoked_at != expected->revoked_at || found->reason != expected->reason) {
      Fail("a revoked serial is stored with another date or reason");
    }
  }
  // The leaf's serial (0x1001) is revoked only when listed.
  const std::pair<bool, std::string> leaf{false, std::string("\x10\x01", 2)};
  if (model.count(leaf) == 0 && txn->GetRevoked(head->gen, leaf.second, leaf.first)) {
    Fail("a serial the CRL does not list is revoked");
  }
}

UniquePtr<ASN1_INTEGER> Integer(const std::string &magnitude, bool negative) {
  UniquePtr<BIGNUM> bn(BN_bin2bn(reinterpret_cast<const unsigned char *>(magnitude.data()),
                                 static_cast<int>(magnitude.size()), nullptr));
  BN_set_negative(bn.get(), negative ? 1 : 0);
  return UniquePtr<ASN1_INTEGER>(BN_to_ASN1_INTEGER(bn.get(), nullptr));
}

void Structured(Input &in) {
  const uint8_t flags = in.Byte();
  const int64_t this_update = kNow - in.Byte() * 3600;
  const int64_t next_update = (flags & 1) ? 0 : this_update + 86400 + in.Byte() * 3600;
  static uint64_t crl_number = 0;
  ++crl_number;  // the store is purged per input, but a number keeps the CRL "new"

  UniquePtr<X509_CRL> crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(FixedCa().cert.get()));
  UniquePtr<ASN1_TIME> t(ASN1_TIME_new());
  ASN1_TIME_set(t.get(), this_update);
  X509_CRL_set1_lastUpdate(crl.get(), t.get());
  if (next_update != 0) {
    ASN1_TIME_set(t.get(), next_update);
    X509_CRL_set1_nextUpdate(crl.get(), t.get());
  }
  UniquePtr<ASN1_INTEGER> number(ASN1_INTEGER_new());
  ASN1_INTEGER_set_uint64(number.get(), crl_number);
  X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0);

  Model model;
  uint64_t listed = 0;
  for (int i = 0; i < 4096 && !in.empty(); ++i) {
    const uint8_t head = in.Byte();  // bit 7: negative; bits 0-4: length
    std::string bytes = in.Bytes(head & 0x1f);
    if (bytes.empty()) bytes.assign(1, '\0');
    const uint8_t reason_byte = in.Byte();
    const int reason = reason_byte >= 0xf0 ? -1 : reason_byte % 11;
    const int64_t when = kNow + static_cast<int32_t>(in.U32());

    UniquePtr<ASN1_INTEGER> serial = Integer(bytes, head & 0x80);
    UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(serial.get(), nullptr));
    std::string magnitude(static_cast<size_t>(BN_num_bytes(bn.get())), '\0');
    BN_bn2bin(bn.get(), reinterpret_cast<unsigned char *>(magnitude.data()));
    const bool negative = BN_is_negative(bn.get());

    X509_REVOKED *revoked = X509_REVOKED_new();
    X509_REVOKED_set_serialNumber(revoked, serial.get());
    ASN1_TIME_set(t.get(), when);
    X509_REVOKED_set_revocationDate(revoked, t.get());
    if (reason >= 0) {
      UniquePtr<ASN1_ENUMERATED> code(ASN1_ENUMERATED_new());
      ASN1_ENUMERATED_set(code.get(), reason);
      X509_REVOKED_add1_ext_i2d(revoked, NID_crl_reason, code.get(), 0, 0);
    }
    X509_CRL_add0_revoked(crl.get(), revoked);
    ++listed;
    auto &slot = model[{negative, magnitude}];
    if (reason != 8) {
      slot = Expected{when, reason};
    }
  }
  if (flags & 2) X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), FixedCa().key.get(), EVP_sha256()) == 0) Fail("cannot sign");

  unsigned char *der = nullptr;
  const int len = i2d_X509_CRL(crl.get(), &der);
  if (len <= 0) Fail("cannot encode the CRL");
  std::string der_text(reinterpret_cast<char *>(der), static_cast<size_t>(len));
  OPENSSL_free(der);

  Result<ParsedCrl> parsed = ParseCrl(der_text);
  if (!parsed.ok()) Fail("a well-formed signed CRL does not parse: " + parsed.status().message());
  Result<IngestResult> ingested =
      IngestCrl(ProcessStore(), parsed.value(), FixedCa().cert.get(), "fuzz", kNow);
  if (!ingested.ok()) Fail("a well-formed signed CRL is refused: " + ingested.status().message());
  if (ingested->meta.count > listed) Fail("more entries stored than listed");
  CheckLookups(model, parsed.value());
}

// What OpenSSL itself decodes from the CRL: the serials that must be revoked
// (a serial ever marked removeFromCRL is left out: certgate skips those entries).
std::optional<Model> OpenSslView(const std::string &der) {
  const unsigned char *p = reinterpret_cast<const unsigned char *>(der.data());
  UniquePtr<X509_CRL> crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(der.size())));
  if (!crl) return std::nullopt;
  Model model;
  std::map<std::pair<bool, std::string>, bool> removed;
  STACK_OF(X509_REVOKED) *entries = X509_CRL_get_REVOKED(crl.get());
  for (int i = 0; i < sk_X509_REVOKED_num(entries); ++i) {
    X509_REVOKED *entry = sk_X509_REVOKED_value(entries, i);
    UniquePtr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(entry), nullptr));
    if (!bn) return std::nullopt;
    std::string magnitude(static_cast<size_t>(BN_num_bytes(bn.get())), '\0');
    BN_bn2bin(bn.get(), reinterpret_cast<unsigned char *>(magnitude.data()));
    std::pair<bool, std::string> key{BN_is_negative(bn.get()) != 0, magnitude};
    int crit = 0;
    UniquePtr<ASN1_ENUMERATED> code(static_cast<ASN1_ENUMERATED *>(
        X509_REVOKED_get_ext_d2i(entry, NID_crl_reason, &crit, nullptr)));
    if (code && ASN1_ENUMERATED_get(code.get()) == 8) removed[key] = true;
    model[key] = std::nullopt;  // presence only: dates and reasons are the structured mode's
  }
  for (const auto &[key, gone] : removed) model.erase(key);
  return model;
}

void Raw(Input &in) {
  Result<std::vector<ParsedCrl>> file = ParseCrlFile(in.Rest());
  if (!file.ok()) return;
  for (const ParsedCrl &crl : file.value()) {
    (void)VerifyCrl(crl, FixedCa().cert.get());
    (void)CrlScopeCovers(crl.scope_urls, {"http://pki.example/root.crl"});
    const std::string resigned = SignTbs(crl.tbs, crl.inner_sig_alg);
    Result<ParsedCrl> parsed = ParseCrl(resigned);
    if (!parsed.ok()) continue;
    if (ProcessStore().Purge().ok() == false) Fail("cannot purge the store");
    Result<IngestResult> ingested =
        IngestCrl(ProcessStore(), parsed.value(), FixedCa().cert.get(), "fuzz", kNow);
    if (!ingested.ok()) {
      static const bool verbose = getenv("CERTGATE_FUZZ_VERBOSE") != nullptr;
      if (verbose) fprintf(stderr, "refused: %s\n", ingested.status().message().c_str());
      continue;
    }
    std::optional<Model> expected = OpenSslView(resigned);
    if (!expected) continue;
    Result<RevocationStore::ReadTxn> txn = ProcessStore().Read();
    if (!txn.ok()) Fail("cannot read the store");
    std::optional<CrlHead> head =
        txn->GetCrlHead(RecordKey(IssuerId(FixedCa().cert.get()), parsed.value()));
    if (!head) Fail("an ingested CRL is not in the store");
    for (const auto &[serial, unused] : *expected) {
      if (!txn->GetRevoked(head->gen, serial.second, serial.first)) {
        Fail("a serial OpenSSL reads from the CRL is not revoked in the store");
      }
    }
  }
}

}  // namespace
}  // namespace certgate::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using namespace certgate::fuzz;
  Input in(data, size);
  const uint8_t mode = in.Byte();
  if (!ProcessStore().Purge().ok()) Fail("cannot purge the store");
  if (mode % 2 == 0) {
    Structured(in);
  } else {
    Raw(in);
  }
  return 0;
}
