// certgate integration-test harness: the `certgate probe` tests' shared pieces
// (probe_support.h).
#include "probe_support.h"

#include <gtest/gtest.h>
#include <pki_builder.h>

#include <ctime>

namespace certgate::harness {

RunResult RunProbe(const std::string &url, const std::vector<std::string> &args) {
  const std::string cli = CertgateCliPath();
  if (cli.empty()) return {-1, "", "the certgate CLI is not built next to certgate-mkpki"};
  std::vector<std::string> argv = {cli, "probe", url};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, {}, {}, 60000);
}

std::vector<std::string> ProbeClient(const std::string &pki, const std::string &name,
                                     const std::string &key_of) {
  return {"--cert", pki + "/clients/" + name + ".chain.pem", "--key",
          pki + "/clients/" + (key_of.empty() ? name : key_of) + ".key"};
}

std::string JsonQuery(const std::string &json, const std::string &expression) {
  const std::string program =
      "import json, sys\n"
      "try:\n    d = json.loads(sys.stdin.read())\n"
      "except Exception as e:\n    print('JSON ERROR: %s' % e)\n    sys.exit(0)\n"
      "print(" +
      expression + ")\n";
  RunResult r = Run({"python3", "-c", program}, {}, json, 10000);
  std::string out = r.exit_code == 0 ? r.out : "PYTHON ERROR: " + r.err;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string WriteManyCas(const std::string &path, int count) {
  pki::PkiBuilder builder(static_cast<int64_t>(std::time(nullptr)));
  std::string pem;
  for (int i = 1; i <= count; ++i) {
    const std::string n = std::to_string(i);
    const pki::Issued ca = builder.SelfSigned(
        pki::PkiBuilder::CaSpec("CN=Probe Test Certification Authority " + n +
                                ",OU=Department of Client Certificates and Trust Services " + n +
                                ",O=Example Enterprise Holding International,C=US"));
    if (!ca.cert) return "cannot make CA " + n + ": " + builder.last_error();
    pem += ca.Pem();
  }
  return WriteFile(path, pem) ? "" : "cannot write " + path;
}

std::string WriteServerCert(const std::string &base, const std::string &cn) {
  pki::PkiBuilder builder(static_cast<int64_t>(std::time(nullptr)));
  pki::CertSpec spec = pki::PkiBuilder::CaSpec("CN=" + cn + ",O=Probe");
  spec.is_ca = false;
  spec.key_usage = KU_DIGITAL_SIGNATURE;
  spec.eku = {"serverAuth"};
  spec.san = {"DNS:" + cn};
  const pki::Issued cert = builder.SelfSigned(spec);
  if (!cert) return "cannot make a certificate for " + cn + ": " + builder.last_error();
  if (!WriteFile(base + ".pem", cert.Pem()) || !WriteFile(base + ".key", cert.KeyPem())) {
    return "cannot write " + base + ".*";
  }
  MakeWorldReadable(base + ".pem");
  MakeWorldReadable(base + ".key");
  return "";
}

std::vector<std::string> With(std::vector<std::string> args, const std::vector<std::string> &more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

void ExpectProbeNamesRefusal(const std::string &pki, const std::string &servername,
                             const std::string &header_url, const std::string &detail_url,
                             const std::string &no_body_url) {
  const std::vector<std::string> expired =
      With(ProbeClient(pki, "expired"), {"--servername", servername});
  for (const std::string &url : {header_url, no_body_url}) {
    const RunResult r = RunProbe(url, expired);
    EXPECT_EQ(r.exit_code, 2) << url << r.out << r.err;
    EXPECT_NE(r.out.find("certgate reason: expired (from the X-Certgate-Reason header)"),
              std::string::npos)
        << url << r.out;
  }
  const RunResult r = RunProbe(detail_url, expired);
  EXPECT_EQ(r.exit_code, 2) << r.out << r.err;
  EXPECT_NE(r.out.find("certgate reason: expired (from the body)"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("  detail: the client certificate 'CN=expired"), std::string::npos) << r.out;
}

}  // namespace certgate::harness
