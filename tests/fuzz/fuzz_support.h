// Shared fixtures of the fuzz targets: a fixed test CA and leaf (keys compiled
// in, so a seed signed once stays valid), a fixed clock, temp directories, and
// a byte reader that turns fuzzer input into structured choices.
#pragma once

#include <certgate/ossl_ptr.h>
#include <openssl/x509.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "revocation/store.h"

namespace certgate::fuzz {

// 2026-06-01T00:00:00Z: every fixture and seed is valid then.
constexpr int64_t kNow = 1780272000;

struct KeyedCert {
  ossl::UniquePtr<X509> cert;
  ossl::UniquePtr<EVP_PKEY> key;
};

// "CN=Fuzz Root CA,O=certgate fuzz", self-signed, CA:TRUE, keyCertSign|cRLSign.
const KeyedCert &FixedCa();
// "CN=alice,OU=People,O=Example", issued by FixedCa(), clientAuth, SAN
// dns:alice.example + email + uri:spiffe://prod/alice, a CRL DP and an OCSP URL.
const KeyedCert &FixedLeaf();
// A store holding only FixedCa() (the caller owns it).
ossl::UniquePtr<X509_STORE> FixedTrust();

// A CRL of FixedCa() (DER): crlNumber, thisUpdate kNow - 1h, nextUpdate kNow +
// 7 days, revoking `serials` at kNow - 1 day with reason keyCompromise.
std::string FixedCrlDer(const std::vector<uint64_t> &serials, uint64_t crl_number);

// This process's scratch directory under $TMPDIR, removed at exit.
const std::string &ProcessTempDir();

// This process's revocation store, in ProcessTempDir()/cache.
RevocationStore &ProcessStore();

// A fresh directory under $TMPDIR (or /tmp), removed with its files by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }

 private:
  std::string path_;
};

void RemoveTree(const std::string &path);
bool WriteFile(const std::string &path, std::string_view data);
bool ReadFile(const std::string &path, std::string *data);

// Consumes fuzzer input front to back; past the end every read is zero/empty.
class Input {
 public:
  Input(const uint8_t *data, size_t size) : data_(data), size_(size) {}
  bool empty() const { return pos_ >= size_; }
  size_t remaining() const { return size_ - pos_; }
  uint8_t Byte();
  uint32_t U32();
  uint64_t U64();
  std::string Bytes(size_t n);
  std::string Rest();

 private:
  const uint8_t *data_;
  size_t size_;
  size_t pos_ = 0;
};

// Aborts with `what` (a harness invariant that the code under test broke).
[[noreturn]] void Fail(const std::string &what);

}  // namespace certgate::fuzz
