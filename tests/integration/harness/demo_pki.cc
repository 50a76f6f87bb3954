// certgate integration-test harness (harness.h): the demo PKI's index, clients
// and CRLs, and the CLI's view of a revocation cache.
#include <openssl/pem.h>
#include <strings.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <sstream>

#include "harness.h"
#include "harness_internal.h"

namespace certgate::harness {

bool RevokeInIndex(const std::string &index_path, const std::string &serial_hex,
                   const std::string &when, const std::string &reason) {
  std::istringstream in(ReadFile(index_path));
  std::string line, out;
  bool found = false;
  while (std::getline(in, line)) {
    // status \t expiry \t revocation \t serial \t file \t subject
    std::vector<std::string> cols;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
      cols.push_back(line.substr(start, tab - start));
    }
    cols.push_back(line.substr(start));
    if (cols.size() >= 6 && strcasecmp(cols[3].c_str(), serial_hex.c_str()) == 0) {
      cols[0] = "R";
      cols[2] = when + "," + reason;
      found = true;
      line.clear();
      for (size_t i = 0; i < cols.size(); ++i) line += (i ? "\t" : "") + cols[i];
    }
    out += line + "\n";
  }
  return found && WriteFileAtomically(index_path, out, 0644);
}

pki::Issued LoadDemoIssuingCa(const std::string &pki_dir) {
  pki::Issued ca;
  const std::string cert_pem = ReadFile(pki_dir + "/ca/intermediate.pem");
  const std::string key_pem = ReadFile(pki_dir + "/ca/intermediate.key");
  BIO *bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  ca.cert.reset(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr), X509_free);
  BIO_free(bio);
  bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  ca.key.reset(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr), EVP_PKEY_free);
  BIO_free(bio);
  return ca;
}

std::string IssueDemoClient(const std::string &pki_dir, const std::string &name,
                            const std::string &dn) {
  const pki::Issued ca = LoadDemoIssuingCa(pki_dir);
  if (!ca.cert || !ca.key) return "cannot load the demo Issuing CA from " + pki_dir;
  pki::PkiBuilder builder(static_cast<int64_t>(std::time(nullptr)));
  const pki::Issued leaf = builder.Issue(ca, pki::PkiBuilder::LeafSpec(dn));
  if (!leaf.cert) return "cannot issue a certificate for " + dn;
  const std::string base = pki_dir + "/clients/" + name;
  if (!WriteFile(base + ".crt", leaf.Pem()) || !WriteFile(base + ".key", leaf.KeyPem()) ||
      !WriteFile(base + ".chain.pem", leaf.Pem() + pki::ToPem(ca.cert.get()))) {
    return "cannot write " + base + ".*";
  }
  MakeWorldReadable(pki_dir + "/clients");
  return "";
}

std::string LongSubjectDn() {
  std::string dn = "CN=long subject";
  for (int i = 0; i < 100; ++i) dn += ",OU=" + std::string(60, '"');
  return dn + ",OU=lastmarker";
}

std::string IssueLongSubjectClient(const std::string &pki_dir) {
  if (FileSize(pki_dir + "/clients/long_subject.chain.pem") > 0) return "";
  return IssueDemoClient(pki_dir, "long_subject", LongSubjectDn());
}

std::string DemoSerial(const std::string &pki, const std::string &name) {
  std::istringstream in(ReadFile(pki + "/clients/fingerprints.txt"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, name.size() + 1, name + " ") != 0) continue;
    const size_t at = line.find(" serial=");
    if (at == std::string::npos) return "";
    const size_t end = line.find(' ', at + 8);
    return line.substr(at + 8, end == std::string::npos ? std::string::npos : end - at - 8);
  }
  return "";
}

std::string SignDemoCrl(const std::string &pki, const std::string &workdir,
                        const std::vector<std::string> &also_revoke, int crl_number,
                        int valid_seconds, std::string *der) {
  if (!MakeDirs(workdir, 0755)) return "cannot create " + workdir;
  const std::string index = workdir + "/demo-index.txt";
  if (!WriteFile(index, ReadFile(pki + "/ocsp/index.txt"))) {
    return "cannot copy " + pki + "/ocsp/index.txt";
  }
  const std::string now = IndexTime(0);
  for (const std::string &name : also_revoke) {
    const std::string serial = DemoSerial(pki, name);
    if (serial.empty() || !RevokeInIndex(index, serial, now)) {
      return "no demo client " + name + " in the index";
    }
  }
  return SignCrl(workdir, ReadFile(index), pki + "/ca/intermediate.pem",
                 pki + "/ca/intermediate.key", crl_number, valid_seconds, der);
}

std::string IndexTime(int64_t offset_seconds) {
  const time_t when = time(nullptr) + offset_seconds;
  struct tm tm;
  gmtime_r(&when, &tm);
  char text[32];
  strftime(text, sizeof(text), "%y%m%d%H%M%SZ", &tm);
  return text;
}

std::string SignCrl(const std::string &workdir, const std::string &index_text,
                    const std::string &ca_cert, const std::string &ca_key, int crl_number,
                    int valid_seconds, std::string *der) {
  if (!MakeDirs(workdir, 0755)) return "cannot create " + workdir;
  const std::string index = workdir + "/index.txt";
  // `openssl ca` wants an even number of hex digits in the crlnumber file.
  char hex[32];
  snprintf(hex, sizeof(hex), "%X", crl_number);
  const std::string number = std::string(strlen(hex) % 2 ? "0" : "") + hex + "\n";
  const std::string cnf = workdir + "/ca.cnf";
  if (!WriteFile(index, index_text) || !WriteFile(index + ".attr", "unique_subject = no\n") ||
      !WriteFile(workdir + "/crlnumber", number) ||
      !WriteFile(cnf, "[ca]\ndefault_ca = cg\n[cg]\ndatabase = " + index +
                          "\ncrlnumber = " + workdir +
                          "/crlnumber\ndefault_md = sha256\ncrl_extensions = crl_ext\n"
                          "[crl_ext]\nauthorityKeyIdentifier = keyid:always\n")) {
    return "cannot write under " + workdir;
  }
  const std::string pem = workdir + "/crl.pem";
  RunResult r = Run({"openssl", "ca", "-batch", "-gencrl", "-config", cnf, "-keyfile", ca_key,
                     "-cert", ca_cert, "-crlsec", std::to_string(valid_seconds), "-out", pem});
  if (r.exit_code != 0) return "openssl ca -gencrl failed: " + r.err;
  r = Run({"openssl", "crl", "-in", pem, "-outform", "DER", "-out", workdir + "/crl.der"});
  if (r.exit_code != 0) return "openssl crl failed: " + r.err;
  *der = ReadFile(workdir + "/crl.der");
  return der->empty() ? "empty CRL" : "";
}

std::string UnrevokeAll(const std::string &index_text) {
  std::istringstream in(index_text);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("R\t", 0) == 0) {
      // R \t expiry \t revocation \t serial ... -> V \t expiry \t \t serial ...
      const size_t expiry_end = line.find('\t', 2);
      const size_t revocation_end = line.find('\t', expiry_end + 1);
      line = "V" + line.substr(1, expiry_end) + line.substr(revocation_end);
    }
    out += line + "\n";
  }
  return out;
}

std::string CertgateCliPath() {
  // No compile definition names the CLI; it is built in the same tree.
  const std::string mkpki = MkpkiPath();
  const std::string tail = "/tests/pki/certgate-mkpki";
  if (mkpki.size() <= tail.size() ||
      mkpki.compare(mkpki.size() - tail.size(), tail.size(), tail) != 0) {
    return "";
  }
  const std::string cli = mkpki.substr(0, mkpki.size() - tail.size()) + "/cli/certgate";
  return access(cli.c_str(), X_OK) == 0 ? cli : "";
}

std::string CachedUrlState(const std::string &cli, const std::string &cache_dir,
                           const std::string &url) {
  RunResult r = Run({cli, "cache", "list", "--cache", cache_dir}, {}, {}, 5000);
  std::vector<std::string> lines = GrepLines(r.out, {"url " + url + " "});
  return lines.empty() ? "" : lines.front();
}

}  // namespace certgate::harness
