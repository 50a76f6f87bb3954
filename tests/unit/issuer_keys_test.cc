// The memoised revocation keys must be byte for byte what OpenSSL derives: a
// different CertID or issuer id would look up (or store) the wrong answer.
#include "revocation/issuer_keys.h"

#include <certgate/ossl_ptr.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <pki_builder.h>

#include <string>

namespace certgate {
namespace {

using ossl::UniquePtr;

constexpr int64_t kNow = 1800000000;

std::string LibraryCertId(X509 *cert, X509 *issuer) {
  UniquePtr<OCSP_CERTID> id(OCSP_cert_to_id(EVP_sha1(), cert, issuer));
  unsigned char *der = nullptr;
  const int len = i2d_OCSP_CERTID(id.get(), &der);
  std::string out(reinterpret_cast<char *>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string DirectIssuerId(X509 *issuer) {
  unsigned char *name = nullptr, *spki = nullptr;
  const int name_len = i2d_X509_NAME(X509_get_subject_name(issuer), &name);
  const int spki_len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(issuer), &spki);
  std::string input(reinterpret_cast<char *>(name), static_cast<size_t>(name_len));
  input.append(reinterpret_cast<char *>(spki), static_cast<size_t>(spki_len));
  OPENSSL_free(name);
  OPENSSL_free(spki);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char *>(digest), 20);
}

// Gives `cert` the serial whose two's-complement content octets are `content`
// (the signature no longer matches; only the CertID is of interest here).
void SetSerialOctets(X509 *cert, const std::string &content, bool negative) {
  UniquePtr<ASN1_INTEGER> serial(ASN1_INTEGER_new());
  ASN1_STRING_set(serial.get(), content.data(), static_cast<int>(content.size()));
  if (negative) serial->type = V_ASN1_NEG_INTEGER;
  ASSERT_EQ(X509_set_serialNumber(cert, serial.get()), 1);
}

class IssuerKeysTest : public ::testing::Test {
 protected:
  void SetUp() override {
    pki_ = std::make_unique<pki::PkiBuilder>(kNow);
    root_ = pki_->SelfSigned(pki::PkiBuilder::CaSpec("CN=Keys Root,O=Example"));
    issuing_ = pki_->Issue(root_, pki::PkiBuilder::CaSpec("CN=Keys Issuing CA,O=Example"));
    ASSERT_TRUE(root_ && issuing_) << pki_->last_error();
  }

  pki::Issued Leaf(uint64_t serial = 0) {
    pki::CertSpec spec = pki::PkiBuilder::LeafSpec("CN=leaf,O=Example");
    spec.serial = serial;
    pki::Issued leaf = pki_->Issue(issuing_, spec);
    EXPECT_TRUE(leaf) << pki_->last_error();
    return leaf;
  }

  std::unique_ptr<pki::PkiBuilder> pki_;
  pki::Issued root_, issuing_;
};

TEST_F(IssuerKeysTest, CertIdMatchesOpensslForEverySerialShape) {
  pki::Issued leaf = Leaf(0x1234);
  X509 *cert = leaf.cert.get();
  X509 *issuer = issuing_.cert.get();
  EXPECT_EQ(OcspCertIdKey(cert, issuer), LibraryCertId(cert, issuer));
  struct Shape {
    std::string octets;
    bool negative;
  } shapes[] = {
      {std::string("\x01", 1), false},
      {std::string("\x00\x80", 2), false},  // high bit set: leading zero
      {std::string(20, '\x7f'), false},     // RFC 5280's 20 octets
      {std::string(40, '\x5a'), false},     // oversized, still hashed
      {std::string("\x05\x39", 2), true},   // negative (invalid, seen)
      {std::string(130, '\x11'), false},    // long-form DER length
  };
  for (const Shape &shape : shapes) {
    SetSerialOctets(cert, shape.octets, shape.negative);
    EXPECT_EQ(OcspCertIdKey(cert, issuer), LibraryCertId(cert, issuer))
        << shape.octets.size() << " octets, negative=" << shape.negative;
  }
}

TEST_F(IssuerKeysTest, IssuerNameEncodedDifferentlyIsHashedAsTheCertNamesIt) {
  pki::Issued leaf = Leaf();
  X509 *issuer = issuing_.cert.get();
  OcspCertIdKey(leaf.cert.get(), issuer);  // remember the issuer first
  // The same name with PrintableString values: equal as names, other bytes.
  UniquePtr<X509_NAME> printable(X509_NAME_new());
  X509_NAME_add_entry_by_txt(printable.get(), "O", V_ASN1_PRINTABLESTRING,
                             reinterpret_cast<const unsigned char *>("Example"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(printable.get(), "CN", V_ASN1_PRINTABLESTRING,
                             reinterpret_cast<const unsigned char *>("Keys Issuing CA"), -1, -1, 0);
  ASSERT_EQ(X509_NAME_cmp(printable.get(), X509_get_subject_name(issuer)), 0);
  const unsigned char *ours = nullptr, *theirs = nullptr;
  size_t ours_len = 0, theirs_len = 0;
  X509_NAME_get0_der(printable.get(), &ours, &ours_len);
  X509_NAME_get0_der(X509_get_subject_name(issuer), &theirs, &theirs_len);
  ASSERT_NE(std::string(reinterpret_cast<const char *>(ours), ours_len),
            std::string(reinterpret_cast<const char *>(theirs), theirs_len));
  ASSERT_EQ(X509_set_issuer_name(leaf.cert.get(), printable.get()), 1);
  const std::string key = OcspCertIdKey(leaf.cert.get(), issuer);
  EXPECT_EQ(key, LibraryCertId(leaf.cert.get(), issuer));
  EXPECT_NE(key, LibraryCertId(Leaf().cert.get(), issuer));
}

TEST_F(IssuerKeysTest, IssuerIdIsTheDigestOfNameAndKeyAndTellsRekeyedCasApart) {
  X509 *issuer = issuing_.cert.get();
  EXPECT_EQ(IssuerId(issuer), DirectIssuerId(issuer));
  EXPECT_EQ(IssuerId(issuer), DirectIssuerId(issuer));  // remembered: the same
  // Same name, new key: a different CA as far as CRLs and CertIDs go.
  pki::Issued rekeyed = pki_->Issue(root_, pki::PkiBuilder::CaSpec("CN=Keys Issuing CA,O=Example"));
  ASSERT_TRUE(rekeyed) << pki_->last_error();
  EXPECT_EQ(IssuerId(rekeyed.cert.get()), DirectIssuerId(rekeyed.cert.get()));
  EXPECT_NE(IssuerId(rekeyed.cert.get()), IssuerId(issuer));
  pki::Issued leaf = Leaf(7);
  EXPECT_EQ(OcspCertIdKey(leaf.cert.get(), rekeyed.cert.get()),
            LibraryCertId(leaf.cert.get(), rekeyed.cert.get()));
  EXPECT_NE(OcspCertIdKey(leaf.cert.get(), rekeyed.cert.get()),
            OcspCertIdKey(leaf.cert.get(), issuer));
}

TEST_F(IssuerKeysTest, ManyIssuersStayCorrectPastTheMemoBound) {
  pki::Issued leaf = Leaf(99);
  for (int i = 0; i < 80; ++i) {
    pki::Issued ca =
        pki_->Issue(root_, pki::PkiBuilder::CaSpec("CN=CA " + std::to_string(i) + ",O=Example"));
    ASSERT_TRUE(ca) << pki_->last_error();
    ASSERT_EQ(IssuerId(ca.cert.get()), DirectIssuerId(ca.cert.get())) << i;
  }
  EXPECT_EQ(OcspCertIdKey(leaf.cert.get(), issuing_.cert.get()),
            LibraryCertId(leaf.cert.get(), issuing_.cert.get()));
}

}  // namespace
}  // namespace certgate
