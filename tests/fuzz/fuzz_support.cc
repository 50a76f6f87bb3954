#include "fuzz_support.h"

#include <dirent.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <utility>

namespace certgate::fuzz {
namespace {

using ossl::UniquePtr;

// Generated once (openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256);
// test-only keys that protect nothing.
constexpr const char *kCaKeyPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYm/l+9yQV9mnG4CP\n"
    "6FFUVunCLSGMxEejp4Zi3AZlNO2hRANCAAS+qPIMFDDApGvx+xUTiEqausyOaE9D\n"
    "ZMm6Slfdkw+2g7nmmrVb7F9qb3WE2xF2tDcdRseZ2xZ3CQA5Czqx+C5K\n"
    "-----END PRIVATE KEY-----\n";
constexpr const char *kLeafKeyPem =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPrlyS8rkaOBnwMDY\n"
    "LvTIsMFxfNelZTVg5+JbXFxKzsyhRANCAASgv7wPLp2Zq32HztRoRx9rPaBGOaN4\n"
    "aCqdnZDVDPp1qaexxHNzJdQRStOmByyy4/hI1GxEeMSygmfYCRt2OAfR\n"
    "-----END PRIVATE KEY-----\n";

constexpr int64_t kNotBefore = 1577836800;  // 2020-01-01
constexpr int64_t kNotAfter = 2524608000;   // 2050-01-01

UniquePtr<EVP_PKEY> LoadKey(const char *pem) {
  UniquePtr<BIO> bio(BIO_new_mem_buf(pem, -1));
  UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) Fail("cannot load a fixture key");
  return key;
}

UniquePtr<X509_NAME> Name(const std::vector<std::pair<const char *, const char *>> &rdns) {
  UniquePtr<X509_NAME> name(X509_NAME_new());
  for (const auto &[field, value] : rdns) {
    X509_NAME_add_entry_by_txt(name.get(), field, MBSTRING_UTF8,
                               reinterpret_cast<const unsigned char *>(value), -1, -1, 0);
  }
  return name;
}

void AddExt(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  UniquePtr<X509_EXTENSION> ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) Fail("cannot add a fixture extension");
}

KeyedCert Build(X509_NAME *subject, const KeyedCert *issuer, UniquePtr<EVP_PKEY> key, long serial,
                const std::vector<std::pair<int, const char *>> &exts) {
  KeyedCert out;
  out.key = std::move(key);
  out.cert.reset(X509_new());
  X509 *cert = out.cert.get();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_set_subject_name(cert, subject);
  X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer->cert.get()) : subject);
  ASN1_TIME_set(X509_getm_notBefore(cert), kNotBefore);
  ASN1_TIME_set(X509_getm_notAfter(cert), kNotAfter);
  X509_set_pubkey(cert, out.key.get());
  X509 *issuer_cert = issuer ? issuer->cert.get() : cert;
  for (const auto &[nid, value] : exts) AddExt(cert, issuer_cert, nid, value);
  EVP_PKEY *signer = issuer ? issuer->key.get() : out.key.get();
  if (X509_sign(cert, signer, EVP_sha256()) == 0) Fail("cannot sign a fixture");
  return out;
}

}  // namespace

const KeyedCert &FixedCa() {
  static const KeyedCert ca = [] {
    auto name = Name({{"O", "certgate fuzz"}, {"CN", "Fuzz Root CA"}});
    return Build(name.get(), nullptr, LoadKey(kCaKeyPem), 1,
                 {{NID_basic_constraints, "critical,CA:TRUE"},
                  {NID_key_usage, "critical,keyCertSign,cRLSign"},
                  {NID_subject_key_identifier, "hash"}});
  }();
  return ca;
}

const KeyedCert &FixedLeaf() {
  static const KeyedCert leaf = [] {
    auto name = Name({{"O", "Example"}, {"OU", "People"}, {"CN", "alice"}});
    return Build(name.get(), &FixedCa(), LoadKey(kLeafKeyPem), 0x1001,
                 {{NID_basic_constraints, "critical,CA:FALSE"},
                  {NID_key_usage, "critical,digitalSignature"},
                  {NID_ext_key_usage, "clientAuth"},
                  {NID_subject_alt_name,
                   "DNS:alice.example,email:alice@example.com,URI:spiffe://prod/alice"},
                  {NID_crl_distribution_points, "URI:http://pki.example/root.crl"},
                  {NID_info_access, "OCSP;URI:http://ocsp.example/"},
                  {NID_authority_key_identifier, "keyid:always"}});
  }();
  return leaf;
}

ossl::UniquePtr<X509_STORE> FixedTrust() {
  UniquePtr<X509_STORE> store(X509_STORE_new());
  X509_STORE_add_cert(store.get(), FixedCa().cert.get());
  return store;
}

std::string FixedCrlDer(const std::vector<uint64_t> &serials, uint64_t crl_number) {
  UniquePtr<X509_CRL> crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(FixedCa().cert.get()));
  UniquePtr<ASN1_TIME> t(ASN1_TIME_new());
  ASN1_TIME_set(t.get(), kNow - 3600);
  X509_CRL_set1_lastUpdate(crl.get(), t.get());
  ASN1_TIME_set(t.get(), kNow + 7 * 86400);
  X509_CRL_set1_nextUpdate(crl.get(), t.get());
  UniquePtr<ASN1_INTEGER> number(ASN1_INTEGER_new());
  ASN1_INTEGER_set_uint64(number.get(), crl_number);
  X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0);
  for (uint64_t serial : serials) {
    X509_REVOKED *revoked = X509_REVOKED_new();
    UniquePtr<ASN1_INTEGER> value(ASN1_INTEGER_new());
    ASN1_INTEGER_set_uint64(value.get(), serial);
    X509_REVOKED_set_serialNumber(revoked, value.get());
    ASN1_TIME_set(t.get(), kNow - 86400);
    X509_REVOKED_set_revocationDate(revoked, t.get());
    UniquePtr<ASN1_ENUMERATED> code(ASN1_ENUMERATED_new());
    ASN1_ENUMERATED_set(code.get(), CRL_REASON_KEY_COMPROMISE);
    X509_REVOKED_add1_ext_i2d(revoked, NID_crl_reason, code.get(), 0, 0);
    X509_CRL_add0_revoked(crl.get(), revoked);
  }
  X509_CRL_sort(crl.get());
  if (X509_CRL_sign(crl.get(), FixedCa().key.get(), EVP_sha256()) == 0) Fail("cannot sign a CRL");
  unsigned char *der = nullptr;
  const int len = i2d_X509_CRL(crl.get(), &der);
  if (len <= 0) Fail("cannot encode a CRL");
  std::string out(reinterpret_cast<char *>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

const std::string &ProcessTempDir() {
  static const std::string *path = [] {
    auto *dir = new TempDir();
    std::atexit([] { RemoveTree(ProcessTempDir()); });
    return &dir->path();
  }();
  return *path;
}

RevocationStore &ProcessStore() {
  static std::unique_ptr<RevocationStore> store = [] {
    Result<std::unique_ptr<RevocationStore>> opened =
        RevocationStore::Open(ProcessTempDir() + "/cache");
    if (!opened.ok()) Fail("cannot open the store: " + opened.status().message());
    return std::move(opened).value();
  }();
  return *store;
}

TempDir::TempDir() {
  const char *base = getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/certgate-fuzz-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) Fail("mkdtemp " + templ);
  path_ = templ;
}

TempDir::~TempDir() { RemoveTree(path_); }

void RemoveTree(const std::string &path) {
  if (DIR *dir = opendir(path.c_str())) {
    while (dirent *entry = readdir(dir)) {
      std::string name = entry->d_name;
      if (name == "." || name == "..") continue;
      std::string child = path + "/" + name;
      struct stat st {};
      if (lstat(child.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
        RemoveTree(child);
      } else {
        unlink(child.c_str());
      }
    }
    closedir(dir);
  }
  rmdir(path.c_str());
}

bool WriteFile(const std::string &path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  return static_cast<bool>(out);
}

bool ReadFile(const std::string &path, std::string *data) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return false;
  std::ostringstream text;
  text << in.rdbuf();
  *data = text.str();
  return true;
}

uint8_t Input::Byte() { return pos_ < size_ ? data_[pos_++] : 0; }

uint32_t Input::U32() {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | Byte();
  return v;
}

uint64_t Input::U64() { return (static_cast<uint64_t>(U32()) << 32) | U32(); }

std::string Input::Bytes(size_t n) {
  n = std::min(n, remaining());
  std::string out(reinterpret_cast<const char *>(data_ + pos_), n);
  pos_ += n;
  return out;
}

std::string Input::Rest() { return Bytes(remaining()); }

void Fail(const std::string &what) {
  fprintf(stderr, "certgate fuzz: %s\n", what.c_str());
  abort();
}

}  // namespace certgate::fuzz
