#include "demo_pki.h"

#include <certgate/ossl_ptr.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <ctime>
#include <vector>

#include "pki_builder.h"
#include "strict_vectors.h"

namespace certgate::pki {
namespace {

constexpr int64_t kHour = 3600;
constexpr int64_t kDay = 86400;
constexpr char kHttpBase[] = "http://127.0.0.1:18080/";
constexpr char kOcspUrl[] = "http://127.0.0.1:18081/";

std::string Hex(const unsigned char *data, size_t len, bool upper) {
  static const char kLower[] = "0123456789abcdef";
  static const char kUpper[] = "0123456789ABCDEF";
  const char *digits = upper ? kUpper : kLower;
  std::string out;
  for (size_t i = 0; i < len; ++i) {
    out += digits[data[i] >> 4];
    out += digits[data[i] & 0x0f];
  }
  return out;
}

// The serial as `openssl ca` writes it into index.txt (BN_bn2hex: uppercase, whole bytes).
std::string SerialHex(const X509 *cert) {
  uint64_t serial = 0;
  ASN1_INTEGER_get_uint64(&serial, X509_get0_serialNumber(cert));
  unsigned char bytes[8];
  size_t len = 0;
  for (int shift = 56; shift >= 0; shift -= 8) {
    unsigned char byte = static_cast<unsigned char>(serial >> shift);
    if (len == 0 && byte == 0) continue;
    bytes[len++] = byte;
  }
  return len == 0 ? "00" : Hex(bytes, len, true);
}

std::string UtcTime(int64_t when) {
  time_t t = static_cast<time_t>(when);
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[32];
  strftime(buf, sizeof(buf), "%y%m%d%H%M%SZ", &tm);
  return buf;
}

std::string AsnTimeText(const ASN1_TIME *time) {
  return std::string(reinterpret_cast<const char *>(ASN1_STRING_get0_data(time)),
                     static_cast<size_t>(ASN1_STRING_length(time)));
}

std::string CertSha256(X509 *cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return std::string();
  return Hex(md, len, false);
}

// sha256 over the DER of the whole SubjectPublicKeyInfo.
std::string SpkiSha256(X509 *cert) {
  int len = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), nullptr);
  if (len <= 0) return std::string();
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char *p = reinterpret_cast<unsigned char *>(&der[0]);
  i2d_X509_PUBKEY(X509_get_X509_PUBKEY(cert), &p);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (EVP_Digest(der.data(), der.size(), md, &md_len, EVP_sha256(), nullptr) != 1) {
    return std::string();
  }
  return Hex(md, md_len, false);
}

class DemoPki {
 public:
  DemoPki(std::string dir, int64_t now) : dir_(std::move(dir)), now_(now), b_(now) {
    if (!dir_.empty() && dir_.back() != '/') dir_ += '/';
  }

  bool Run();
  const std::string &error() const { return error_; }

 private:
  bool Fail(const std::string &message) {
    if (error_.empty()) error_ = message;
    return false;
  }
  bool Ok(const Issued &issued, const std::string &what) {
    return issued ? true : Fail(what + ": " + b_.last_error());
  }
  bool Put(const std::string &rel, const std::string &data) {
    if (data.empty()) return Fail(rel + ": nothing to write");
    return WriteFile(dir_ + rel, data) ? true : Fail(rel + ": cannot write " + dir_ + rel);
  }
  // Writes <base>.pem and <base>.key.
  bool PutCertAndKey(const std::string &base, const Issued &issued) {
    return Put(base + ".pem", issued.Pem()) && Put(base + ".key", issued.KeyPem());
  }
  // clients/<name>.crt, .chain.pem (leaf + `chain`), .key, and a fingerprints line.
  bool PutClient(const std::string &name, const Issued &leaf, const std::vector<Issued> &chain);
  // strict/<NN>_<check>/: chain.pem (leaf first), anchor.pem, and set.txt (the
  // `--set KEY=VALUE` lines that make it acceptable apart from the check).
  bool PutStrictVectors();
  // adcs/: the Active Directory Certificate Services shape of issue 11 (a base
  // CRL naming its delta "...(4)+.crl" in freshestCRL).
  bool PutAdcs();
  // adcs/ldap/: a CA publishing only through ldap:/// URLs, and the LDIF of its
  // directory (issue 11 §2).
  bool PutAdcsLdap(const Issued &root);
  // deep/: a 4-level hierarchy (issue 11 §4): Deep Root CA -> Sub CA1 -> Sub
  // CA2 -> three "Sub CA3"s -> clients.
  bool PutDeep();
  // Issued by the Example Issuing CA: listed in ocsp/index.txt.
  void Index(const Issued &issued, bool revoked = false) { index_.push_back({issued, revoked}); }
  std::string IndexText() const;

  static CertSpec Client(const std::string &cn, bool with_ou = true);
  static void WithRevocationUrls(CertSpec *spec);

  struct IndexEntry {
    Issued cert;
    bool revoked;
  };

  std::string dir_;
  int64_t now_;
  PkiBuilder b_;
  std::string error_;
  std::vector<IndexEntry> index_;
  std::string fingerprints_;
  int64_t revoked_at_ = 0;
};

CertSpec DemoPki::Client(const std::string &cn, bool with_ou) {
  CertSpec spec = PkiBuilder::LeafSpec("CN=" + cn + (with_ou ? ",OU=People" : "") + ",O=Example");
  spec.san = {"email:" + cn + "@example.com", "URI:spiffe://prod/" + cn};
  return spec;
}

void DemoPki::WithRevocationUrls(CertSpec *spec) {
  spec->crl_urls = {std::string(kHttpBase) + "intermediate.crl"};
  spec->ocsp_urls = {kOcspUrl};
  spec->ca_issuer_urls = {std::string(kHttpBase) + "intermediate.crt"};
}

bool DemoPki::PutClient(const std::string &name, const Issued &leaf,
                        const std::vector<Issued> &chain) {
  if (!Ok(leaf, "clients/" + name)) return false;
  std::string chain_pem = leaf.Pem();
  for (const Issued &ca : chain) chain_pem += ca.Pem();
  fingerprints_ += name + " serial=" + SerialHex(leaf.cert.get()) +
                   " sha256:" + CertSha256(leaf.cert.get()) +
                   " spki:" + SpkiSha256(leaf.cert.get()) + "\n";
  return Put("clients/" + name + ".crt", leaf.Pem()) &&
         Put("clients/" + name + ".chain.pem", chain_pem) &&
         Put("clients/" + name + ".key", leaf.KeyPem());
}

bool DemoPki::PutStrictVectors() {
  int index = 0;
  for (const StrictVector &vector : StrictVectors()) {
    char prefix[8];
    std::snprintf(prefix, sizeof prefix, "%02d_", index++);
    const std::string dir = "strict/" + std::string(prefix) + vector.check + "/";
    const StrictChain chain = vector.build(b_);
    if (!Ok(chain.leaf, dir)) return false;
    std::string chain_pem = chain.leaf.Pem();
    for (const Issued &cert : chain.sent) chain_pem += cert.Pem();
    std::string anchors;
    for (const Issued &cert : chain.anchors) anchors += cert.Pem();
    std::string settings = "strict=on\n";  // never empty, so Put writes it
    for (const auto &[key, args] : vector.lenient_keys) {
      std::string line = key + "=";
      for (const std::string &arg : args) line += arg + (&arg == &args.back() ? "" : " ");
      settings += line + "\n";
    }
    if (!Put(dir + "chain.pem", chain_pem) || !Put(dir + "anchor.pem", anchors) ||
        !Put(dir + "set.txt", settings)) {
      return false;
    }
  }
  return true;
}

std::string DemoPki::IndexText() const {
  std::string out;
  for (const IndexEntry &entry : index_) {
    X509 *cert = entry.cert.cert.get();
    char dn[512];
    X509_NAME_oneline(X509_get_subject_name(cert), dn, sizeof(dn));
    out += entry.revoked ? "R\t" : "V\t";
    out += AsnTimeText(X509_get0_notAfter(cert)) + "\t";
    if (entry.revoked) out += UtcTime(revoked_at_) + ",keyCompromise";
    out += "\t" + SerialHex(cert) + "\tunknown\t" + dn + "\n";
  }
  return out;
}

bool DemoPki::PutAdcs() {
  const std::string http = std::string(kHttpBase) + "adcs/";
  const std::string base_name = "Corp Enterprise CA 2(4).crl";
  const std::string delta_name = "Corp Enterprise CA 2(4)+.crl";
  // AD CS escapes the spaces in its URLs; '+' stays literal.
  const std::string base_url = http + "Corp%20Enterprise%20CA%202(4).crl";
  const std::string delta_url = http + "Corp%20Enterprise%20CA%202(4)+.crl";
  CertSpec spec = PkiBuilder::CaSpec("CN=Corp Root CA,O=Corp");
  spec.not_after = now_ + 20 * 365 * kDay;
  Issued root = b_.SelfSigned(spec);
  if (!Ok(root, "adcs root")) return false;
  spec = PkiBuilder::CaSpec("CN=Corp Enterprise CA 2,O=Corp");
  spec.not_after = now_ + 10 * 365 * kDay;
  spec.crl_urls = {http + "root.crl"};
  Issued issuing = b_.Issue(root, spec);
  if (!Ok(issuing, "adcs issuing CA")) return false;
  if (!PutCertAndKey("adcs/root", root) || !PutCertAndKey("adcs/issuing", issuing)) return false;

  // The AD CS default CDP: the LDAP URL first (skipped), then HTTP.
  auto client = [&](const std::string &name) {
    CertSpec leaf = Client("adcs-" + name);
    // (The DN's commas as %2C: OpenSSL's extension syntax splits on them.)
    leaf.crl_urls = {
        "ldap:///CN=Corp%20Enterprise%20CA%202(4)%2CCN=CRL%2CCN=CDP%2CCN=Public%20Key%"
        "20Services%2CCN=Services%2CCN=Configuration%2CDC=corp%2CDC=example%2CDC=com?"
        "certificateRevocationList?base?objectClass=cRLDistributionPoint",
        base_url};
    Issued issued = b_.Issue(issuing, leaf);
    return issued;
  };
  Issued good = client("good"), base_revoked = client("base-revoked"),
         delta_revoked = client("delta-revoked"), unheld = client("unheld"), held = client("held");
  for (const auto &[name, issued] :
       std::vector<std::pair<std::string, Issued>>{{"good", good},
                                                   {"base-revoked", base_revoked},
                                                   {"delta-revoked", delta_revoked},
                                                   {"unheld", unheld},
                                                   {"held", held}}) {
    if (!Ok(issued, "adcs client " + name)) return false;
    if (!Put("adcs/clients/" + name + ".crt", issued.Pem()) ||
        !Put("adcs/clients/" + name + ".key", issued.KeyPem()) ||
        !Put("adcs/clients/" + name + ".chain.pem", issued.Pem() + issuing.Pem())) {
      return false;
    }
  }
  auto serial = [](const Issued &issued) {
    uint64_t value = 0;
    ASN1_INTEGER_get_uint64(&value, X509_get0_serialNumber(issued.cert.get()));
    return value;
  };
  const int64_t this_update = now_ - kHour;
  // Base weekly, delta daily, as AD CS publishes them by default.
  auto base = b_.Crl(issuing,
                     {{serial(base_revoked), now_ - 2 * kDay, CRL_REASON_KEY_COMPROMISE},
                      {serial(unheld), now_ - 2 * kDay, CRL_REASON_CERTIFICATE_HOLD},
                      {serial(held), now_ - 2 * kDay, CRL_REASON_CERTIFICATE_HOLD}},
                     4096, this_update, now_ + 7 * kDay);
  auto delta = b_.Crl(issuing,
                      {{serial(delta_revoked), now_ - 2 * kHour, CRL_REASON_KEY_COMPROMISE},
                       {serial(unheld), now_ - 2 * kHour, CRL_REASON_REMOVE_FROM_CRL}},
                      4097, this_update, now_ + kDay);
  auto root_crl = b_.Crl(root, {}, 1, this_update, now_ + 7 * kDay);
  if (!base || !delta || !root_crl ||
      !b_.AddDeltaExtensions(base.get(), issuing, -1, {delta_url}) ||
      !b_.AddDeltaExtensions(delta.get(), issuing, 4096, {})) {
    return Fail("adcs CRL: " + b_.last_error());
  }
  return Put("adcs/crl/" + base_name, ToDer(base.get())) &&
         Put("adcs/crl/" + delta_name, ToDer(delta.get())) &&
         Put("adcs/crl/root.crl", ToDer(root_crl.get())) &&
         Put("www/adcs/" + base_name, ToDer(base.get())) &&
         Put("www/adcs/" + delta_name, ToDer(delta.get())) &&
         Put("www/adcs/root.crl", ToDer(root_crl.get())) && PutAdcsLdap(root);
}

namespace {

constexpr char kAdcsPks[] =
    "CN=Public Key Services,CN=Services,CN=Configuration,DC=corp,DC=example,DC=com";

// An AD CS ldap:/// URL of `dn`: spaces as %20 (as AD CS writes them), commas
// as %2C (OpenSSL's extension syntax splits on them).
std::string AdcsLdapUrl(const std::string &dn, const std::string &attribute,
                        const std::string &object_class) {
  std::string escaped;
  for (char c : dn) escaped += c == ' ' ? "%20" : c == ',' ? "%2C" : std::string(1, c);
  return "ldap:///" + escaped + "?" + attribute + "?base?objectClass=" + object_class;
}

std::string Base64(const std::string &der) {
  std::string out(4 * ((der.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char *>(&out[0]),
                                reinterpret_cast<const unsigned char *>(der.data()),
                                static_cast<int>(der.size()));
  out.resize(n < 0 ? 0 : static_cast<size_t>(n));
  return out;
}

}  // namespace

bool DemoPki::PutAdcsLdap(const Issued &root) {
  const std::string pks = kAdcsPks;
  const std::string cdp_dn = "CN=Corp Directory CA 3(1),CN=CRL,CN=CDP," + pks;
  const std::string root_dn = "CN=Corp Root CA,CN=CRL,CN=CDP," + pks;
  const std::string aia_dn = "CN=Corp Directory CA 3,CN=AIA," + pks;
  const std::string missing_dn = "CN=Corp Directory CA 3(9),CN=CRL,CN=CDP," + pks;
  CertSpec spec = PkiBuilder::CaSpec("CN=Corp Directory CA 3,O=Corp");
  spec.not_after = now_ + 10 * 365 * kDay;
  spec.crl_urls = {AdcsLdapUrl(root_dn, "certificateRevocationList", "cRLDistributionPoint")};
  Issued issuing = b_.Issue(root, spec);
  if (!Ok(issuing, "adcs/ldap issuing CA")) return false;
  if (!PutCertAndKey("adcs/ldap/issuing", issuing)) return false;
  auto client = [&](const std::string &name, const std::string &dn) {
    CertSpec leaf = Client("adcs-ldap-" + name);
    leaf.crl_urls = {AdcsLdapUrl(dn, "certificateRevocationList", "cRLDistributionPoint")};
    leaf.ca_issuer_urls = {AdcsLdapUrl(aia_dn, "cACertificate", "certificationAuthority")};
    return b_.Issue(issuing, leaf);
  };
  Issued good = client("good", cdp_dn), base_revoked = client("base-revoked", cdp_dn),
         delta_revoked = client("delta-revoked", cdp_dn), missing = client("missing", missing_dn);
  for (const auto &[name, issued] :
       std::vector<std::pair<std::string, Issued>>{{"good", good},
                                                   {"base-revoked", base_revoked},
                                                   {"delta-revoked", delta_revoked},
                                                   {"missing", missing}}) {
    if (!Ok(issued, "adcs/ldap client " + name)) return false;
    if (!Put("adcs/ldap/clients/" + name + ".crt", issued.Pem()) ||
        !Put("adcs/ldap/clients/" + name + ".key", issued.KeyPem()) ||
        !Put("adcs/ldap/clients/" + name + ".chain.pem", issued.Pem() + issuing.Pem())) {
      return false;
    }
  }
  auto serial = [](const Issued &issued) {
    uint64_t value = 0;
    ASN1_INTEGER_get_uint64(&value, X509_get0_serialNumber(issued.cert.get()));
    return value;
  };
  const int64_t this_update = now_ - kHour;
  auto base = b_.Crl(issuing, {{serial(base_revoked), now_ - 2 * kDay, CRL_REASON_KEY_COMPROMISE}},
                     8192, this_update, now_ + 7 * kDay);
  auto delta =
      b_.Crl(issuing, {{serial(delta_revoked), now_ - 2 * kHour, CRL_REASON_KEY_COMPROMISE}}, 8193,
             this_update, now_ + kDay);
  auto root_crl = b_.Crl(root, {}, 2, this_update, now_ + 7 * kDay);
  const std::string delta_url = AdcsLdapUrl(cdp_dn, "deltaRevocationList", "cRLDistributionPoint");
  if (!base || !delta || !root_crl ||
      !b_.AddDeltaExtensions(base.get(), issuing, -1, {delta_url}) ||
      !b_.AddDeltaExtensions(delta.get(), issuing, 8192, {})) {
    return Fail("adcs/ldap CRL: " + b_.last_error());
  }
  const std::string base_der = ToDer(base.get()), delta_der = ToDer(delta.get()),
                    root_der = ToDer(root_crl.get()), ca_der = ToDer(issuing.cert.get());
  // The directory as AD CS fills it: containers, the CDP entries (base and
  // delta in one entry), the AIA entry. For slapadd with core.schema.
  auto container = [](const std::string &dn) {
    const std::string cn = dn.substr(3, dn.find(',') - 3);
    return "dn: " + dn + "\nobjectClass: applicationProcess\ncn: " + cn + "\n\n";
  };
  std::string ldif =
      "dn: DC=corp,DC=example,DC=com\nobjectClass: organization\nobjectClass: dcObject\n"
      "o: corp\ndc: corp\n\n";
  const std::string config = "CN=Configuration,DC=corp,DC=example,DC=com";
  for (const std::string &dn :
       std::vector<std::string>{config, "CN=Services," + config, pks, "CN=CDP," + pks,
                                "CN=CRL,CN=CDP," + pks, "CN=AIA," + pks}) {
    ldif += container(dn);
  }
  ldif += "dn: " + cdp_dn +
          "\nobjectClass: cRLDistributionPoint\ncn: Corp Directory CA 3(1)\n"
          "certificateRevocationList;binary:: " +
          Base64(base_der) + "\ndeltaRevocationList;binary:: " + Base64(delta_der) + "\n\n";
  ldif += "dn: " + root_dn +
          "\nobjectClass: cRLDistributionPoint\ncn: Corp Root CA\n"
          "certificateRevocationList;binary:: " +
          Base64(root_der) + "\nauthorityRevocationList;binary:: " + Base64(root_der) + "\n\n";
  ldif += "dn: " + aia_dn +
          "\nobjectClass: applicationProcess\nobjectClass: certificationAuthority\n"
          "cn: Corp Directory CA 3\ncACertificate;binary:: " +
          Base64(ca_der) + "\ncertificateRevocationList;binary:: " + Base64(base_der) +
          "\nauthorityRevocationList;binary:: " + Base64(root_der) + "\n\n";
  return Put("adcs/ldap/crl/base.crl", base_der) && Put("adcs/ldap/crl/delta.crl", delta_der) &&
         Put("adcs/ldap/crl/root.crl", root_der) && Put("adcs/ldap/directory.ldif", ldif) &&
         Put("adcs/ldap/urls.txt",
             "crl " + AdcsLdapUrl(cdp_dn, "certificateRevocationList", "cRLDistributionPoint") +
                 "\ndelta " + delta_url + "\nroot " +
                 AdcsLdapUrl(root_dn, "certificateRevocationList", "cRLDistributionPoint") +
                 "\naia " + AdcsLdapUrl(aia_dn, "cACertificate", "certificationAuthority") +
                 "\nmissing " +
                 AdcsLdapUrl(missing_dn, "certificateRevocationList", "cRLDistributionPoint") +
                 "\n");
}

bool DemoPki::PutDeep() {
  const std::string http = std::string(kHttpBase) + "deep/";
  // Nothing listens on 18089: the CRL covering this Sub CA3 is unreachable.
  const std::string dead = "http://127.0.0.1:18089/deep/subca2.crl";
  auto ca = [&](const Issued &parent, const std::string &subject, const std::string &crl_url) {
    CertSpec spec = PkiBuilder::CaSpec(subject);
    spec.not_after = now_ + 10 * 365 * kDay;
    if (!crl_url.empty()) spec.crl_urls = {crl_url};
    return b_.Issue(parent, spec);
  };
  CertSpec root_spec = PkiBuilder::CaSpec("CN=Deep Root CA,O=Example");
  root_spec.not_after = now_ + 20 * 365 * kDay;
  const Issued root = b_.SelfSigned(root_spec);
  if (!Ok(root, "deep root")) return false;
  const Issued sub1 = ca(root, "CN=Sub CA1,O=Example", http + "root.crl");
  const Issued sub2 = ca(sub1, "CN=Sub CA2,O=Example", http + "subca1.crl");
  // Its issuer's CRL unreachable; revoked in Sub CA2's CRL; good.
  const Issued sub3 = ca(sub2, "CN=Sub CA3,O=Example", dead);
  const Issued sub3_revoked = ca(sub2, "CN=Sub CA3,OU=Revoked,O=Example", http + "subca2.crl");
  const Issued sub3_good = ca(sub2, "CN=Sub CA3,OU=Good,O=Example", http + "subca2.crl");
  if (!Ok(sub1, "Sub CA1") || !Ok(sub2, "Sub CA2") || !Ok(sub3, "Sub CA3") ||
      !Ok(sub3_revoked, "Sub CA3 revoked") || !Ok(sub3_good, "Sub CA3 good") ||
      !PutCertAndKey("deep/root", root)) {
    return false;
  }
  auto client = [&](const std::string &name, const Issued &issuer, const std::string &crl) {
    CertSpec leaf = Client("deep-" + name);
    leaf.crl_urls = {http + crl};
    const Issued issued = b_.Issue(issuer, leaf);
    if (!Ok(issued, "deep client " + name)) return issued;
    const std::string chain = issued.Pem() + issuer.Pem() + sub2.Pem() + sub1.Pem();
    if (!Put("deep/clients/" + name + ".crt", issued.Pem()) ||
        !Put("deep/clients/" + name + ".key", issued.KeyPem()) ||
        !Put("deep/clients/" + name + ".chain.pem", chain)) {
      return Issued{};
    }
    return issued;
  };
  const Issued unreachable = client("ca-crl-unreachable", sub3, "subca3.crl");
  const Issued ca_revoked = client("ca-revoked", sub3_revoked, "subca3-revoked.crl");
  const Issued good = client("good", sub3_good, "subca3-good.crl");
  const Issued revoked = client("revoked", sub3_good, "subca3-good.crl");
  if (!unreachable || !ca_revoked || !good || !revoked) return Fail("deep clients: " + error_);
  auto serial = [](const Issued &issued) {
    uint64_t value = 0;
    ASN1_INTEGER_get_uint64(&value, X509_get0_serialNumber(issued.cert.get()));
    return value;
  };
  const int64_t this_update = now_ - kHour, next_update = now_ + 7 * kDay;
  const std::vector<std::pair<std::string, std::shared_ptr<X509_CRL>>> crls = [&] {
    std::vector<std::pair<std::string, std::shared_ptr<X509_CRL>>> out;
    out.emplace_back("root.crl", b_.Crl(root, {}, 1, this_update, next_update));
    out.emplace_back("subca1.crl", b_.Crl(sub1, {}, 1, this_update, next_update));
    out.emplace_back(
        "subca2.crl",
        b_.Crl(sub2, {{serial(sub3_revoked), now_ - 2 * kDay, CRL_REASON_CA_COMPROMISE}}, 1,
               this_update, next_update));
    out.emplace_back("subca3.crl", b_.Crl(sub3, {}, 1, this_update, next_update));
    out.emplace_back("subca3-revoked.crl", b_.Crl(sub3_revoked, {}, 1, this_update, next_update));
    out.emplace_back(
        "subca3-good.crl",
        b_.Crl(sub3_good, {{serial(revoked), now_ - 2 * kDay, CRL_REASON_KEY_COMPROMISE}}, 1,
               this_update, next_update));
    return out;
  }();
  for (const auto &[name, crl] : crls) {
    if (!crl) return Fail("deep CRL " + name + ": " + b_.last_error());
    if (!Put("deep/crl/" + name, ToDer(crl.get())) || !Put("www/deep/" + name, ToDer(crl.get())))
      return false;
  }
  return true;
}

bool DemoPki::Run() {
  const std::string http(kHttpBase);
  const std::vector<std::string> root_crl = {http + "root.crl"};

  // ---- CAs ----
  CertSpec spec = PkiBuilder::CaSpec("CN=Example Root CA,O=Example");
  spec.not_after = now_ + 20 * 365 * kDay;
  Issued root = b_.SelfSigned(spec);
  if (!Ok(root, "root")) return false;

  spec = PkiBuilder::CaSpec("CN=Example Issuing CA,O=Example");
  spec.not_after = now_ + 10 * 365 * kDay;
  spec.crl_urls = root_crl;
  Issued inter = b_.Issue(root, spec);
  if (!Ok(inter, "intermediate")) return false;

  spec = PkiBuilder::CaSpec("CN=Example RSA Issuing CA,O=Example");
  spec.not_after = now_ + 10 * 365 * kDay;
  spec.key = {KeySpec::Type::kRsa, 2048};
  spec.crl_urls = root_crl;
  Issued rsa_inter = b_.Issue(root, spec);
  if (!Ok(rsa_inter, "rsa-intermediate")) return false;

  spec = PkiBuilder::CaSpec("CN=Example Hidden CA,O=Example");
  spec.not_after = now_ + 10 * 365 * kDay;
  spec.crl_urls = root_crl;
  Issued hidden = b_.Issue(root, spec);
  if (!Ok(hidden, "hidden")) return false;

  spec = PkiBuilder::CaSpec("CN=Other Root CA,O=Other");
  spec.not_after = now_ + 20 * 365 * kDay;
  Issued other_root = b_.SelfSigned(spec);
  if (!Ok(other_root, "other-root")) return false;

  spec = PkiBuilder::CaSpec("CN=Other Issuing CA,O=Other");
  spec.not_after = now_ + 10 * 365 * kDay;
  Issued other_inter = b_.Issue(other_root, spec);
  if (!Ok(other_inter, "other-intermediate")) return false;

  spec = PkiBuilder::CaSpec("CN=Untrusted Root CA,O=Untrusted");
  spec.not_after = now_ + 20 * 365 * kDay;
  Issued untrusted_root = b_.SelfSigned(spec);
  if (!Ok(untrusted_root, "untrusted-root")) return false;

  if (!PutCertAndKey("ca/root", root) || !PutCertAndKey("ca/intermediate", inter) ||
      !PutCertAndKey("ca/rsa-intermediate", rsa_inter) || !PutCertAndKey("ca/hidden", hidden) ||
      !PutCertAndKey("ca/other-root", other_root) ||
      !PutCertAndKey("ca/other-intermediate", other_inter) ||
      !PutCertAndKey("ca/untrusted-root", untrusted_root) ||
      !Put("ca/trust.pem", root.Pem() + other_root.Pem()) ||
      !Put("ca/trust-with-intermediate.pem", root.Pem() + inter.Pem())) {
    return false;
  }

  // ---- server ----
  spec = PkiBuilder::LeafSpec("CN=localhost,O=Example");
  spec.eku = {"serverAuth"};
  spec.san = {"DNS:localhost", "IP:127.0.0.1"};
  Issued server = b_.Issue(inter, spec);
  if (!Ok(server, "server")) return false;
  Index(server);
  if (!Put("server/server.pem", server.Pem()) || !Put("server/server.key", server.KeyPem()) ||
      !Put("server/server-chain.pem", server.Pem() + inter.Pem())) {
    return false;
  }

  // ---- OCSP responder (delegated) ----
  spec = PkiBuilder::LeafSpec("CN=Example OCSP Responder,O=Example");
  spec.eku = {"OCSPSigning"};
  spec.extra_extensions = {{"noCheck", "ignored"}};
  Issued signer = b_.Issue(inter, spec);
  if (!Ok(signer, "ocsp signer") || !PutCertAndKey("ocsp/signer", signer)) return false;
  Index(signer);

  // ---- clients ----
  const std::vector<Issued> via_inter = {inter};
  auto issue_client = [&](const std::string &name, CertSpec s, Issued *out = nullptr) {
    WithRevocationUrls(&s);
    Issued leaf = b_.Issue(inter, std::move(s));
    if (leaf) Index(leaf);
    if (out != nullptr) *out = leaf;
    return PutClient(name, leaf, via_inter);
  };

  Issued good;
  if (!issue_client("good", Client("alice"), &good)) return false;

  spec = Client("expired");
  spec.not_before = now_ - 30 * kDay;
  spec.not_after = now_ - kDay;
  if (!issue_client("expired", spec)) return false;

  spec = Client("not_yet_valid");
  spec.not_before = now_ + kDay;
  if (!issue_client("not_yet_valid", spec)) return false;

  spec = Client("wrong_eku");
  spec.eku = {"serverAuth"};
  if (!issue_client("wrong_eku", spec)) return false;

  spec = Client("no_eku");
  spec.eku.clear();
  if (!issue_client("no_eku", spec)) return false;

  spec = Client("key_usage");
  spec.key_usage = KU_KEY_ENCIPHERMENT;
  if (!issue_client("key_usage", spec)) return false;

  spec = Client("weak_key");
  spec.key = {KeySpec::Type::kRsa, 1024};
  if (!issue_client("weak_key", spec)) return false;

  if (!issue_client("ou_missing", Client("bob", /*with_ou=*/false))) return false;

  spec = Client("bad_signature");
  spec.corrupt_signature = true;
  if (!issue_client("bad_signature", spec)) return false;

  spec = Client("malformed");
  spec.invalid_extension = true;
  if (!issue_client("malformed", spec)) return false;

  // Extra malformed variant: an unknown critical extension
  // (X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION).
  spec = Client("unknown_critical");
  spec.extra_extensions = {{"1.3.6.1.4.1.55555.1.1", "critical,ASN1:UTF8String:certgate test"}};
  if (!issue_client("unknown_critical", spec)) return false;

  // certgate_strict: a v1 certificate (no extensions at all) and a CA
  // certificate (CA:TRUE) presented as a client certificate.
  spec = Client("v1");
  spec.version = 1;
  if (!issue_client("v1", spec)) return false;
  spec = Client("ca_as_leaf");
  spec.is_ca = true;
  spec.key_usage = KU_DIGITAL_SIGNATURE | KU_KEY_CERT_SIGN;
  if (!issue_client("ca_as_leaf", spec)) return false;

  spec = Client("expiring_soon");
  spec.not_after = now_ + 3 * kDay;
  if (!issue_client("expiring_soon", spec)) return false;

  spec = Client("mallory");
  WithRevocationUrls(&spec);
  Issued revoked = b_.Issue(inter, spec);
  if (!PutClient("revoked", revoked, via_inter)) return false;
  Index(revoked, /*revoked=*/true);
  revoked_at_ = now_ - 2 * kHour;

  // RSA hierarchy: rsa_good, and weak_signature (sha1WithRSAEncryption).
  const std::vector<std::string> rsa_crl = {http + "rsa-intermediate.crl"};
  spec = Client("rsa_good");
  spec.key = {KeySpec::Type::kRsa, 2048};
  spec.crl_urls = rsa_crl;
  if (!PutClient("rsa_good", b_.Issue(rsa_inter, spec), {rsa_inter})) return false;

  spec = Client("weak_signature");
  spec.key = {KeySpec::Type::kRsa, 2048};
  spec.digest = "sha1";
  spec.crl_urls = rsa_crl;
  if (!PutClient("weak_signature", b_.Issue(rsa_inter, spec), {rsa_inter})) return false;

  // Self-signed leaf; untrusted root (sent with the leaf); missing intermediate.
  if (!PutClient("self_signed", b_.SelfSigned(Client("self_signed")), {})) return false;
  if (!PutClient("untrusted", b_.Issue(untrusted_root, Client("untrusted")), {untrusted_root})) {
    return false;
  }
  // Hostile names: a 60,000-character CN (a 60 KB certificate, under OpenSSL's
  // 100 KB certificate-list limit), O=Example, OU=People, no SAN; from the
  // untrusted root (sent with it) and from the Example Issuing CA.
  const std::string long_subject = "CN=" + std::string(60000, 'a') + ",OU=People,O=Example";
  if (!PutClient("long_cn_untrusted", b_.Issue(untrusted_root, PkiBuilder::LeafSpec(long_subject)),
                 {untrusted_root}) ||
      !PutClient("long_cn", b_.Issue(inter, PkiBuilder::LeafSpec(long_subject)), via_inter)) {
    return false;
  }
  spec = Client("chain_incomplete");
  spec.ca_issuer_urls = {http + "hidden.crt"};
  if (!PutClient("chain_incomplete", b_.Issue(hidden, spec), {})) return false;

  if (!PutClient("other_issuer", b_.Issue(other_inter, Client("other_issuer")), {other_inter})) {
    return false;
  }

  // invalid_ca: issued by a CA:FALSE cert (no keyUsage, so only basicConstraints
  // disqualifies it as an issuer).
  spec = PkiBuilder::LeafSpec("CN=not a ca,O=Example");
  spec.key_usage.reset();
  Issued not_a_ca = b_.Issue(inter, spec);
  if (!Ok(not_a_ca, "not-a-ca") || !Put("ca/not-a-ca.pem", not_a_ca.Pem())) return false;
  Index(not_a_ca);
  if (!PutClient("invalid_ca", b_.Issue(not_a_ca, Client("invalid_ca")), {not_a_ca, inter})) {
    return false;
  }

  // chain_too_long: root -> intermediate -> 5 sub-CAs -> leaf (the root at depth 7).
  std::vector<Issued> subs;
  Issued parent = inter;
  for (int i = 1; i <= 5; ++i) {
    Issued sub = b_.Issue(
        parent, PkiBuilder::CaSpec("CN=Example Sub CA " + std::to_string(i) + ",O=Example"));
    if (!Ok(sub, "sub CA " + std::to_string(i))) return false;
    if (i == 1) Index(sub);
    subs.insert(subs.begin(), sub);
    parent = sub;
  }
  std::vector<Issued> long_chain = subs;
  long_chain.push_back(inter);
  if (!PutClient("chain_too_long", b_.Issue(parent, Client("chain_too_long")), long_chain)) {
    return false;
  }
  // Name constraints (issue 15): a CA constrained to example.com names, one
  // whose nameConstraints has no subtree, and one with 1100 subtrees.
  auto constrained_ca = [&](const std::string &subject, const std::string &constraints,
                            Issued *out) {
    CertSpec s = PkiBuilder::CaSpec(subject);
    s.not_after = now_ + 10 * 365 * kDay;
    s.extra_extensions = {{"nameConstraints", constraints}};
    *out = b_.Issue(root, s);
    return Ok(*out, subject);
  };
  auto nc_client = [&](const std::string &name, const Issued &ca, std::vector<std::string> san) {
    CertSpec s = PkiBuilder::LeafSpec("CN=" + name + ",O=Example");
    s.san = std::move(san);
    return PutClient(name, b_.Issue(ca, s), {ca});
  };
  Issued nc_inter, nc_empty, nc_complex;
  std::string many_subtrees = "critical,permitted;DNS:example.com";
  for (int i = 0; i < 1099; ++i) {
    many_subtrees += ",excluded;DNS:x" + std::to_string(i) + ".example.com";
  }
  std::vector<std::string> many_names;
  for (int i = 0; i < 1024; ++i) many_names.push_back("DNS:n" + std::to_string(i) + ".example.com");
  if (!constrained_ca("CN=Example Constrained CA,O=Example",
                      "critical,permitted;email:example.com,permitted;DNS:example.com,"
                      "excluded;DNS:secret.example.com",
                      &nc_inter) ||
      !constrained_ca("CN=Example Empty Constraints CA,O=Example", "critical,DER:30:00",
                      &nc_empty) ||
      !constrained_ca("CN=Example Complex CA,O=Example", many_subtrees, &nc_complex) ||
      !PutCertAndKey("ca/nc-intermediate", nc_inter) ||
      !nc_client("nc_good", nc_inter, {"email:alice@example.com", "DNS:alice.example.com"}) ||
      !nc_client("nc_invalid_email", nc_inter, {"email:@example.com"}) ||
      !nc_client("nc_invalid_dns", nc_inter, {"DNS:exa mple.example.com"}) ||
      !nc_client("nc_wildcard_excluded", nc_inter, {"DNS:*.example.com"}) ||
      !nc_client("nc_permitted_violation", nc_inter, {"email:bob@evil.example"}) ||
      !nc_client("nc_empty", nc_empty, {"DNS:alice.example.com"}) ||
      !nc_client("nc_too_complex", nc_complex, many_names)) {
    return false;
  }
  // same_name_issuer: the client sends, before the intermediate, a self-signed
  // CA it made up with the intermediate's name and subjectKeyIdentifier.
  // OpenSSL picks that one first; certgate must go on to the genuine one.
  spec = PkiBuilder::CaSpec("CN=Example Issuing CA,O=Example");
  spec.skid_akid = false;
  {
    const ASN1_OCTET_STRING *skid = X509_get0_subject_key_id(inter.cert.get());
    std::string hex;
    for (int i = 0; skid != nullptr && i < ASN1_STRING_length(skid); ++i) {
      const unsigned char byte = ASN1_STRING_get0_data(skid)[i];
      hex += (i == 0 ? "" : ":") + Hex(&byte, 1, true);
    }
    spec.extra_extensions = {{"subjectKeyIdentifier", hex}};
  }
  Issued forged_inter = b_.SelfSigned(spec);
  if (!Ok(forged_inter, "forged intermediate")) return false;
  spec = Client("same_name_issuer");
  WithRevocationUrls(&spec);
  Issued same_name = b_.Issue(inter, spec);
  Index(same_name);
  if (!PutClient("same_name_issuer", same_name, {forged_inter, inter})) return false;

  // rollover: root -> Example Rollover CA (old key) -> Example Rollover CA (new
  // key, self-issued: subject == issuer) -> leaf; the root at depth 3, but the
  // self-issued certificate does not count toward max_depth (RFC 5280 6.1.4 (l)).
  Issued rollover_old = b_.Issue(root, PkiBuilder::CaSpec("CN=Example Rollover CA,O=Example"));
  if (!Ok(rollover_old, "rollover CA (old key)")) return false;
  Issued rollover_new =
      b_.Issue(rollover_old, PkiBuilder::CaSpec("CN=Example Rollover CA,O=Example"));
  if (!Ok(rollover_new, "rollover CA (new key)")) return false;
  if (!PutClient("rollover", b_.Issue(rollover_new, Client("rollover")),
                 {rollover_new, rollover_old})) {
    return false;
  }
  if (!Put("clients/fingerprints.txt", fingerprints_)) return false;
  if (!PutStrictVectors()) return false;

  // ---- CRLs ----
  const int64_t this_update = now_ - kHour;
  const int64_t next_update = now_ + 7 * kDay;
  uint64_t revoked_serial = 0;
  ASN1_INTEGER_get_uint64(&revoked_serial, X509_get0_serialNumber(revoked.cert.get()));
  auto inter_crl = b_.Crl(inter, {{revoked_serial, revoked_at_, CRL_REASON_KEY_COMPROMISE}}, 1,
                          this_update, next_update);
  auto root_crl_obj = b_.Crl(root, {}, 1, this_update, next_update);
  auto rsa_crl_obj = b_.Crl(rsa_inter, {}, 1, this_update, next_update);
  if (!inter_crl || !root_crl_obj || !rsa_crl_obj) return Fail("CRL: " + b_.last_error());
  if (!Put("crl/intermediate.crl", ToDer(inter_crl.get())) ||
      !Put("crl/intermediate.crl.pem", ToPem(inter_crl.get())) ||
      !Put("crl/root.crl", ToDer(root_crl_obj.get())) ||
      !Put("crl/root.crl.pem", ToPem(root_crl_obj.get())) ||
      !Put("crl/rsa-intermediate.crl", ToDer(rsa_crl_obj.get())) ||
      !Put("crl/rsa-intermediate.crl.pem", ToPem(rsa_crl_obj.get()))) {
    return false;
  }

  // ---- CRLs that break RFC 5280 §5.2.3 (certgate_strict), apart from crl/,
  //      which tests preload as a directory ----
  using CrlNumberExtension = PkiBuilder::CrlNumberExtension;
  auto inter_entries =
      std::vector<PkiBuilder::Revoked>{{revoked_serial, revoked_at_, CRL_REASON_KEY_COMPROMISE}};
  auto no_number = b_.Crl(inter, inter_entries, 0, this_update, next_update, "sha256", {},
                          CrlNumberExtension::kOmitted);
  auto critical_number = b_.Crl(inter, inter_entries, 1, this_update, next_update, "sha256", {},
                                CrlNumberExtension::kCritical);
  if (!no_number || !critical_number) return Fail("CRL: " + b_.last_error());
  if (!Put("crl-strict/intermediate-no-crl-number.crl", ToDer(no_number.get())) ||
      !Put("crl-strict/intermediate-critical-crl-number.crl", ToDer(critical_number.get()))) {
    return false;
  }

  // ---- what the CRL/AIA web server (127.0.0.1:18080) serves ----
  if (!Put("www/intermediate.crl", ToDer(inter_crl.get())) ||
      !Put("www/root.crl", ToDer(root_crl_obj.get())) ||
      !Put("www/rsa-intermediate.crl", ToDer(rsa_crl_obj.get())) ||
      !Put("www/intermediate.crt", inter.Der()) || !Put("www/hidden.crt", hidden.Der()) ||
      !Put("www/root.crt", root.Der())) {
    return false;
  }

  if (!PutAdcs() || !PutDeep()) return false;

  // ---- OCSP: index for `openssl ocsp -index`, and pre-signed responses ----
  if (!Put("ocsp/index.txt", IndexText()) || !Put("ocsp/index.txt.attr", "unique_subject = no\n")) {
    return false;
  }
  auto good_resp = b_.Ocsp(good, inter, signer, V_OCSP_CERTSTATUS_GOOD, this_update, next_update);
  auto revoked_resp = b_.Ocsp(revoked, inter, signer, V_OCSP_CERTSTATUS_REVOKED, this_update,
                              next_update, revoked_at_, OCSP_REVOKED_STATUS_KEYCOMPROMISE);
  if (!good_resp || !revoked_resp) return Fail("OCSP: " + b_.last_error());
  return Put("ocsp/good.der", ToDer(good_resp.get())) &&
         Put("ocsp/revoked.der", ToDer(revoked_resp.get()));
}

}  // namespace

bool WriteDemoPki(const std::string &dir, int64_t now, std::string *error) {
  DemoPki demo(dir, now);
  if (demo.Run()) return true;
  if (error != nullptr) *error = demo.error();
  return false;
}

}  // namespace certgate::pki
