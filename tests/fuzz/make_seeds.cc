// Writes the seed corpus of every fuzz target: certgate-fuzz-seeds <dir>
// (tests/fuzz/make_corpus.sh). Everything is made here from the fixed test CA
// and leaf of fuzz_support, nothing is fetched.
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pkcs7.h>

#include <cctype>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "pki_builder.h"

namespace certgate::fuzz {
namespace {

std::string out_dir;

void Seed(const std::string &target, const std::string &name, const std::string &data) {
  const std::string dir = out_dir + "/" + target;
  if (!pki::WriteFile(dir + "/" + name, data)) Fail("cannot write " + dir + "/" + name);
}

pki::Issued Shared(const KeyedCert &keyed) {
  X509_up_ref(keyed.cert.get());
  EVP_PKEY_up_ref(keyed.key.get());
  return pki::Issued{std::shared_ptr<X509>(keyed.cert.get(), X509_free),
                     std::shared_ptr<EVP_PKEY>(keyed.key.get(), EVP_PKEY_free)};
}

std::string Byte(uint8_t b) { return std::string(1, static_cast<char>(b)); }
std::string U32(uint32_t v) {
  return Byte(v >> 24) + Byte((v >> 16) & 0xff) + Byte((v >> 8) & 0xff) + Byte(v & 0xff);
}

// crl_ingest structured mode: one entry.
std::string Entry(const std::string &serial, bool negative, int reason, int32_t offset) {
  return Byte(static_cast<uint8_t>((negative ? 0x80 : 0) | serial.size())) + serial +
         Byte(reason < 0 ? 0xff : static_cast<uint8_t>(reason)) +
         U32(static_cast<uint32_t>(offset));
}

void CrlSeeds(pki::PkiBuilder &builder, const pki::Issued &ca) {
  Seed("crl_ingest", "structured-empty", Byte(0) + Byte(0) + Byte(1) + Byte(0));
  Seed("crl_ingest", "structured-three",
       Byte(0) + Byte(0) + Byte(1) + Byte(24) + Entry("\x10\x01", false, 1, -86400) +
           Entry("\x0f\xff", false, -1, -3600) + Entry(std::string(20, '\x7f'), false, 4, -60));
  Seed("crl_ingest", "structured-negative-zero-sorted",
       Byte(0) + Byte(2) + Byte(0) + Byte(0) + Entry("\x05", true, 0, -10) +
           Entry(std::string(1, '\0'), false, 9, -20) + Entry("\x80\x00", false, 10, -30));
  Seed("crl_ingest", "structured-duplicates-remove",
       Byte(0) + Byte(1) + Byte(3) + Entry("\x42", false, 1, -100) + Entry("\x42", false, 3, -50) +
           Entry("\x43", false, 8, -40) + Entry("\x44", false, 1, -40) +
           Entry("\x44", false, 8, -30));
  Seed("crl_ingest", "raw-der", Byte(1) + FixedCrlDer({0x1001, 0x1002, 0xffffffffffull}, 3));
  Seed("crl_ingest", "raw-der-empty", Byte(1) + FixedCrlDer({}, 1));
  auto scoped = builder.Crl(ca, {{0x1001, kNow - 600, 1}, {0x77, kNow - 60, -1}}, 9, kNow - 3600,
                            kNow + 86400, "sha256", {"http://pki.example/root.crl"});
  if (!scoped) Fail(builder.last_error());
  Seed("crl_ingest", "raw-der-idp", Byte(1) + pki::ToDer(scoped.get()));
  auto plain = builder.Crl(ca, {{0x1001, kNow - 600, 5}}, 2, kNow - 3600, 0);
  if (!plain) Fail(builder.last_error());
  Seed("crl_ingest", "raw-pem-bundle",
       Byte(1) + pki::ToPem(plain.get()) + pki::ToPem(scoped.get()));
}

void OcspSeeds(pki::PkiBuilder &builder, const pki::Issued &ca, const pki::Issued &leaf) {
  auto responder_spec = pki::PkiBuilder::LeafSpec("CN=Fuzz OCSP responder");
  responder_spec.eku = {"OCSPSigning"};
  pki::Issued responder = builder.Issue(ca, responder_spec);
  struct Case {
    const char *name;
    const pki::Issued &signer;
    int status;
    int64_t next_update;
    int reason;
  } cases[] = {
      {"good", ca, V_OCSP_CERTSTATUS_GOOD, kNow + 86400, -1},
      {"revoked", ca, V_OCSP_CERTSTATUS_REVOKED, kNow + 86400, 1},
      {"unknown-no-next", ca, V_OCSP_CERTSTATUS_UNKNOWN, 0, -1},
      {"delegated-good", responder, V_OCSP_CERTSTATUS_GOOD, kNow + 3600, -1},
  };
  for (const Case &c : cases) {
    auto response = builder.Ocsp(leaf, ca, c.signer, c.status, kNow - 600, c.next_update,
                                 kNow - 7200, c.reason);
    if (!response) Fail(builder.last_error());
    Seed("ocsp", std::string("asis-") + c.name, Byte(0) + pki::ToDer(response.get()));
    Seed("ocsp", std::string("resign-") + c.name, Byte(1) + pki::ToDer(response.get()));
  }
  OCSP_RESPONSE *refused = OCSP_response_create(OCSP_RESPONSE_STATUS_UNAUTHORIZED, nullptr);
  Seed("ocsp", "unauthorized", Byte(0) + pki::ToDer(refused));
  OCSP_RESPONSE_free(refused);
}

void EvaluateSeeds(pki::PkiBuilder &builder, const pki::Issued &ca, const pki::Issued &leaf) {
  Seed("evaluate", "leaf", Byte(0) + leaf.Der());
  Seed("evaluate", "leaf-resigned", Byte(1) + leaf.Der());
  Seed("evaluate", "leaf-and-root", Byte(0) + leaf.Der() + ca.Der());
  Seed("evaluate", "no-cert", Byte(2));
  pki::Issued inter =
      builder.Issue(ca, pki::PkiBuilder::CaSpec("CN=Fuzz Issuing CA,O=certgate fuzz"));
  auto bob_spec = pki::PkiBuilder::LeafSpec("CN=bob,OU=People,O=Other");
  bob_spec.san = {"DNS:bob.example", "IP:127.0.0.1", "URI:spiffe://prod/bob"};
  pki::Issued bob = builder.Issue(inter, bob_spec);
  Seed("evaluate", "chain-via-intermediate", Byte(0) + bob.Der() + inter.Der());
  Seed("evaluate", "chain-missing-intermediate", Byte(0) + bob.Der());
  // A made-up CA with the intermediate's name and key identifier sent first:
  // the path search past OpenSSL's first pick (issue 15).
  auto imposter_spec = pki::PkiBuilder::CaSpec("CN=Fuzz Issuing CA,O=certgate fuzz");
  imposter_spec.skid_akid = false;
  {
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(inter.cert.get());
    std::string hex;
    for (int i = 0; skid != nullptr && i < ASN1_STRING_length(skid); ++i) {
      char byte[4];
      std::snprintf(byte, sizeof(byte), i == 0 ? "%02X" : ":%02X", ASN1_STRING_get0_data(skid)[i]);
      hex += byte;
    }
    imposter_spec.extra_extensions = {{"subjectKeyIdentifier", hex}};
  }
  Seed("evaluate", "same-name-imposter",
       Byte(0) + bob.Der() + builder.SelfSigned(imposter_spec).Der() + inter.Der());
  auto rsa_spec = pki::PkiBuilder::LeafSpec("CN=carol\\, jr,OU=People,O=Example");
  rsa_spec.key = {pki::KeySpec::Type::kRsa, 1024};
  rsa_spec.digest = "sha1";
  rsa_spec.eku = {"serverAuth"};
  rsa_spec.key_usage = 0;
  Seed("evaluate", "weak-rsa-sha1", Byte(1) + builder.Issue(ca, rsa_spec).Der());
  auto long_spec =
      pki::PkiBuilder::LeafSpec("CN=" + std::string(2000, 'x') + ",OU=People,O=Example");
  Seed("evaluate", "long-cn", Byte(1) + builder.Issue(ca, long_spec).Der());
  auto self_spec = pki::PkiBuilder::LeafSpec("CN=mallory,OU=People,O=Example");
  Seed("evaluate", "self-signed", Byte(0) + builder.SelfSigned(self_spec).Der());
  auto expired_spec = pki::PkiBuilder::LeafSpec("CN=dave,OU=People,O=Example");
  expired_spec.not_before = kNow - 400 * 86400;
  expired_spec.not_after = kNow - 86400;
  Seed("evaluate", "expired", Byte(1) + builder.Issue(ca, expired_spec).Der());
  // Name constraints (issue 15): a constrained intermediate and a leaf with a
  // wildcard, a malformed email and DNS name, and a permitted violation.
  auto nc_spec = pki::PkiBuilder::CaSpec("CN=Fuzz Constrained CA,O=certgate fuzz");
  nc_spec.extra_extensions = {
      {"nameConstraints",
       "critical,permitted;email:example.com,permitted;DNS:example.com,permitted;IP:10.0.0.0/"
       "255.0.0.0,permitted;URI:.example.com,excluded;DNS:foo.example.com"}};
  pki::Issued nc_inter = builder.Issue(ca, nc_spec);
  auto nc_leaf_spec = pki::PkiBuilder::LeafSpec("CN=erin,OU=People,O=Example");
  nc_leaf_spec.san = {"DNS:*.example.com",  "email:@example.com",
                      "DNS:a..example.com", "email:erin@evil.example",
                      "IP:10.1.2.3",        "URI:https://www.example.com/"};
  Seed("evaluate", "name-constraints",
       Byte(0) + builder.Issue(nc_inter, nc_leaf_spec).Der() + nc_inter.Der());
  auto empty_nc_spec = pki::PkiBuilder::CaSpec("CN=Fuzz Empty NC CA,O=certgate fuzz");
  empty_nc_spec.extra_extensions = {{"nameConstraints", "critical,DER:30:04:a0:00:a1:00"}};
  pki::Issued empty_nc = builder.Issue(ca, empty_nc_spec);
  Seed("evaluate", "name-constraints-empty",
       Byte(0) + builder.Issue(empty_nc, pki::PkiBuilder::LeafSpec("CN=frank,O=Example")).Der() +
           empty_nc.Der());
}

void PolicySeeds() {
  Seed("policy", "file-everything",
       Byte(0) +
           "# every key once\n"
           "certgate require;\n"
           "trusted_issuers ca.pem;\n"
           "require_eku clientAuth;\n"
           "require_key_usage digitalSignature keyEncipherment;\n"
           "subject O=Example \"OU=People\";\n"
           "san dns:*.example email:*@example.com uri:spiffe://prod/* ip:127.0.0.1;\n"
           "pin sha256:" +
           std::string(64, 'a') + " spki:" + std::string(64, 'B') +
           ";\n"
           "deny sha256:" +
           std::string(64, '0') +
           ";\n"
           "min_key rsa=3072 ec=384;\n"
           "deny_signature md5 sha1;\n"
           "max_depth 3;\n"
           "clock_skew 2m;\n"
           "expiry_warning 30d;\n"
           "revocation soft_fail;\n"
           "revocation_scope chain;\n"
           "revocation_sources ocsp crl;\n"
           "crl crls;\n"
           "revocation_wait 500ms;\n"
           "max_stale 1h;\n"
           "fetch_timeout 2s;\n"
           "fetch_max_size 10m;\n"
           "fetch_proxy http://proxy.example:3128;\n"
           "fetch_allow pki.example *.example.net;\n"
           "ldap_server dc1.corp.example 192.0.2.5:389;\n"
           "cache /var/cache/certgate;\n"
           "reject_status 495;\n"
           "reject_body json;\n"
           "reject_detail on;\n"
           "reject_at handshake;\n"
           "log json accepts;\n"
           "status off;\n");
  Seed("policy", "file-regex",
       Byte(0) + "certgate optional;\nsubject \"~^CN=[^,]+,OU=(People|Robots)\";\n");
  Seed("policy", "file-bad-line", Byte(0) + "certgate require;\nmax_depth many;\n");
  Seed("policy", "directives-child",
       Byte(1) +
           "certgate_subject\x1f~^CN=a.*\nCertGate\x1frequire\nCertGateSan\x1f"
           "dns:*.x\x1furi:spiffe://*\nrevocation_wait\x1f"
           "3s\nreject_status\x1f"
           "403");
  Seed("policy", "directives-parent",
       Byte(3) +
           "certgate\x1foptional\ncertgate_cache\x1f/tmp/certgate-cache\n"
           "certgate_revocation\x1f"
           "cache_only\ncertgate_status\x1fon");
}

void StoreSeeds() {
  Seed("store", "undamaged", Byte(0));
  // Flips in the serial pages, past LMDB's two meta pages (4096 bytes each).
  Seed("store", "flip-data-page", Byte(0) + U32(3 * 4096 + 100) + Byte(0x01));
  Seed("store", "flip-late", Byte(0) + U32(5 * 4096 + 2000) + Byte(0x80));
}

// nginx's $ssl_client_escaped_cert and Envoy's XFCC, good and broken.
void ForwardedCertSeeds(const pki::Issued &ca, const pki::Issued &leaf) {
  auto escape = [](const std::string &text) {
    static const char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
      if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += {'%', kHex[c >> 4], kHex[c & 15]};
      }
    }
    return out;
  };
  const std::string leaf_pem = leaf.Pem(), chain_pem = leaf.Pem() + ca.Pem();
  Seed("forwarded_cert", "escaped-leaf", Byte(0) + escape(leaf_pem));
  Seed("forwarded_cert", "escaped-chain", Byte(0) + escape(chain_pem));
  Seed("forwarded_cert", "escaped-cut", Byte(0) + escape(leaf_pem.substr(0, 200)));
  Seed("forwarded_cert", "xfcc-cert",
       Byte(1) + "By=spiffe://proxy;Hash=00;Cert=\"" + escape(leaf_pem) + "\";URI=spiffe://a");
  Seed("forwarded_cert", "xfcc-chain",
       Byte(1) + "Subject=\"CN=a,O=\\\"b\\\"\";Chain=\"" + escape(chain_pem) + "\"");
  Seed("forwarded_cert", "xfcc-two", Byte(1) + "Cert=a;By=b,Cert=\"c\";DNS=d");
}

// ldap_url: URL \0 certgate_ldap_server \0 attribute \0 curl's reply. The URLs
// are the AD CS shapes of tests/pki (adcs/ldap/urls.txt of certgate-mkpki) and
// tests/unit/ldap_url_test.cc; the replies are libcurl's LDIF-like output.
void LdapUrlSeeds() {
  const std::string pks =
      "CN=Public%20Key%20Services%2CCN=Services%2CCN=Configuration%2CDC=corp%2CDC=example%2CDC="
      "com";
  auto seed = [](const std::string &name, const std::string &url, const std::string &server,
                 const std::string &attribute, const std::string &reply) {
    Seed("ldap_url", name,
         url + std::string(1, '\0') + server + std::string(1, '\0') + attribute +
             std::string(1, '\0') + reply);
  };
  const std::string crl_reply =
      "DN: cn=Corp Enterprise CA 2(4),cn=CDP,dc=corp\n"
      "\tcn: Corp Enterprise CA 2(4)\n"
      "\tcertificateRevocationList;binary:: MIIBAgMEBQ==\n"
      "\tdeltaRevocationList;binary:: AAEC\n\n";
  const std::string ca_reply = "DN: CN=Corp Directory CA 3,CN=AIA," + pks +
                               "\n\tobjectClass: certificationAuthority\n"
                               "\tcACertificate;binary:: " +
                               std::string("MIIBhTCCASugAwIBAgIBATAKBggqhkjOPQQDAjAA") + "\n\n";
  seed("adcs-cdp",
       "ldap:///CN=Corp%20Enterprise%20CA%202(4),CN=CRL,CN=CDP,CN=Public%20Key%20Services,"
       "CN=Services,CN=Configuration,DC=corp,DC=example,DC=com?certificateRevocationList?base?"
       "objectClass=cRLDistributionPoint",
       "dc1.corp.example", "certificateRevocationList;binary", crl_reply);
  seed("mkpki-crl",
       "ldap:///CN=Corp%20Directory%20CA%203(1)%2CCN=CRL%2CCN=CDP%2C" + pks +
           "?certificateRevocationList?base?objectClass=cRLDistributionPoint",
       "127.0.0.1:3389", "certificateRevocationList", crl_reply);
  seed("mkpki-delta",
       "ldap:///CN=Corp%20Directory%20CA%203(1)%2CCN=CRL%2CCN=CDP%2C" + pks +
           "?deltaRevocationList?base?objectClass=cRLDistributionPoint",
       "[2001:db8::5]:389", "deltaRevocationList;binary", crl_reply);
  seed("mkpki-aia",
       "ldap:///CN=Corp%20Directory%20CA%203%2CCN=AIA%2C" + pks +
           "?cACertificate?base?objectClass=certificationAuthority",
       "dc1", "cACertificate;binary", ca_reply);
  seed("mkpki-missing",
       "ldap:///CN=Corp%20Directory%20CA%203(9)%2CCN=CRL%2CCN=CDP%2C" + pks +
           "?certificateRevocationList?base?objectClass=cRLDistributionPoint",
       "192.0.2.5:636", "certificateRevocationList", "");
  seed("host-port-scope-filter",
       "LDAPS://DC1.Corp.Example:3269/CN=CA%2CCN=AIA%2CDC=corp?cACertificate;binary,"
       "crossCertificatePair?SUB?(%26(objectClass=*)(cn=a%2Bb))?x-ignored",
       "", "crossCertificatePair", ca_reply);
  seed("v6-no-attribute", "ldap://[2001:db8::5]:389/DC=corp", "[2001:DB8::5]", "cn",
       "DN: dc=corp\n\tcn: corp\n");
  seed("root-dse", "ldaps://pki.example", "", "cn", "DN: \n");
  seed("critical-extension", "ldap:///CN=a?cn?base?(cn=*)?!x-secret", "dc1", "cn",
       "DN: x\n\tcACertificate;binary:: AAE\n");
  seed("bad-escape-scope", "ldap:///CN=a%2?cn?tree", "dc1:x", "cACertificate",
       "DN: x\n\tcACertificate;binary:: ====\n\tcn:: Y24=\n");
}

// A PKCS#7 certs-only bundle (.p7c) of `certs`, DER.
std::string CertsOnlyP7(const std::vector<const pki::Issued *> &certs) {
  std::unique_ptr<PKCS7, decltype(&PKCS7_free)> p7(PKCS7_new(), PKCS7_free);
  if (!p7 || PKCS7_set_type(p7.get(), NID_pkcs7_signed) != 1 ||
      PKCS7_content_new(p7.get(), NID_pkcs7_data) != 1) {
    Fail("cannot make a PKCS#7");
  }
  for (const pki::Issued *issued : certs) {
    if (PKCS7_add_certificate(p7.get(), issued->cert.get()) != 1) Fail("PKCS7_add_certificate");
  }
  unsigned char *der = nullptr;
  const int len = i2d_PKCS7(p7.get(), &der);
  if (len <= 0) Fail("i2d_PKCS7");
  std::string out(reinterpret_cast<char *>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string Pem(const char *label, const std::string &der) {
  std::string b64(4 * ((der.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(b64.data()),
                                reinterpret_cast<const unsigned char *>(der.data()),
                                static_cast<int>(der.size()));
  b64.resize(static_cast<size_t>(n));
  std::string out = std::string("-----BEGIN ") + label + "-----\n";
  for (size_t i = 0; i < b64.size(); i += 64) out += b64.substr(i, 64) + "\n";
  return out + "-----END " + label + "-----\n";
}

// issuer_response: what a caIssuers URL answers.
void IssuerResponseSeeds(pki::PkiBuilder &builder, const pki::Issued &ca, const pki::Issued &leaf) {
  pki::Issued issuing =
      builder.Issue(ca, pki::PkiBuilder::CaSpec("CN=Fuzz AIA Issuing CA,O=certgate fuzz"));
  Seed("issuer_response", "der-ca", ca.Der());
  Seed("issuer_response", "der-leaf-not-ca", leaf.Der());
  Seed("issuer_response", "pem-ca", ca.Pem());
  Seed("issuer_response", "pem-leaf-then-cas", leaf.Pem() + issuing.Pem() + ca.Pem());
  Seed("issuer_response", "pem-trusted-ca", Pem("TRUSTED CERTIFICATE", ca.Der()));
  const std::string p7c = CertsOnlyP7({&issuing, &ca});
  Seed("issuer_response", "p7c-der", p7c);
  Seed("issuer_response", "p7c-der-with-leaf", CertsOnlyP7({&leaf, &issuing}));
  Seed("issuer_response", "p7c-pem", Pem("PKCS7", p7c));
  Seed("issuer_response", "p7c-empty", CertsOnlyP7({}));
  Seed("issuer_response", "der-cut", ca.Der().substr(0, 100));
}

}  // namespace
}  // namespace certgate::fuzz

int main(int argc, char **argv) {
  using namespace certgate::fuzz;
  if (argc != 2) {
    fprintf(stderr, "usage: certgate-fuzz-seeds <corpus dir>\n");
    return 2;
  }
  out_dir = argv[1];
  certgate::pki::PkiBuilder builder(kNow);
  const certgate::pki::Issued ca = Shared(FixedCa());
  const certgate::pki::Issued leaf = Shared(FixedLeaf());
  CrlSeeds(builder, ca);
  OcspSeeds(builder, ca, leaf);
  EvaluateSeeds(builder, ca, leaf);
  PolicySeeds();
  StoreSeeds();
  ForwardedCertSeeds(ca, leaf);
  LdapUrlSeeds();
  IssuerResponseSeeds(builder, ca, leaf);
  return 0;
}
