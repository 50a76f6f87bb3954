// ParsePrometheus (harness.h): the page through prometheus_client's parser.
#include <gtest/gtest.h>
#include <time.h>

#include <cmath>
#include <cstdlib>
#include <sstream>

#include "harness.h"

namespace certgate::harness {

std::vector<PromSample> ParsePrometheus(const std::string &page, std::string *error) {
  std::vector<PromSample> samples;
  // Debian's python3, where python3-prometheus-client installs.
  const RunResult run = Run({"/usr/bin/python3", CERTGATE_PROM_SAMPLES_SCRIPT}, {}, page, 30000);
  if (run.exit_code != 0) {
    *error = "prometheus_client refuses the page: " + run.err;
    return samples;
  }
  std::istringstream lines(run.out);
  std::string line;
  while (std::getline(lines, line)) {
    std::vector<std::string> fields;
    std::istringstream in(line);
    std::string field;
    while (std::getline(in, field, '\t')) fields.push_back(field);
    if (fields.size() < 3) continue;
    PromSample sample;
    sample.name = fields[0];
    sample.value = std::strtod(fields[1].c_str(), nullptr);
    sample.type = fields[2];
    for (size_t i = 3; i < fields.size(); ++i) {
      const size_t eq = fields[i].find('=');
      sample.labels[fields[i].substr(0, eq)] = fields[i].substr(eq + 1);
    }
    samples.push_back(std::move(sample));
  }
  error->clear();
  return samples;
}

std::vector<PromSample> FindSamples(const std::vector<PromSample> &samples, const std::string &name,
                                    const std::map<std::string, std::string> &labels) {
  std::vector<PromSample> found;
  for (const PromSample &sample : samples) {
    if (sample.name != name) continue;
    bool match = true;
    for (const auto &[label, value] : labels) {
      auto it = sample.labels.find(label);
      if (it == sample.labels.end() || it->second != value) match = false;
    }
    if (match) found.push_back(sample);
  }
  return found;
}

}  // namespace certgate::harness

namespace certgate::harness {

std::map<std::string, std::string> OpensslFields(const std::vector<std::string> &argv) {
  std::map<std::string, std::string> fields;
  const RunResult run = Run(argv);
  std::istringstream lines(run.out);
  std::string line;
  while (std::getline(lines, line)) {
    const size_t eq = line.find('=');
    if (eq != std::string::npos) fields[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return fields;
}

int64_t OpensslTime(const std::string &text) {
  struct tm tm {};
  // "Jan  1 00:00:00 2027 GMT", as openssl prints notAfter and nextUpdate.
  if (strptime(text.c_str(), "%b %d %H:%M:%S %Y GMT", &tm) == nullptr) return -1;
  return static_cast<int64_t>(timegm(&tm));
}

}  // namespace certgate::harness

namespace certgate::harness {

namespace {

// crlNumber, lastUpdate, nextUpdate and the number of entries of a CRL file.
struct CrlFacts {
  double number = -1;
  int64_t this_update = -1, next_update = -1;
  int entries = 0;
};

CrlFacts ReadCrlFacts(const std::string &path) {
  CrlFacts facts;
  for (const char *form : {"PEM", "DER"}) {
    std::map<std::string, std::string> f =
        OpensslFields({"openssl", "crl", "-inform", form, "-in", path, "-noout", "-crlnumber",
                       "-lastupdate", "-nextupdate"});
    if (f.count("crlNumber") == 0) continue;
    facts.number = static_cast<double>(std::strtoull(f["crlNumber"].c_str(), nullptr, 16));
    facts.this_update = OpensslTime(f["lastUpdate"]);
    facts.next_update = OpensslTime(f["nextUpdate"]);
    const RunResult text = Run({"openssl", "crl", "-inform", form, "-in", path, "-noout", "-text"});
    for (size_t at = text.out.find("Serial Number:"); at != std::string::npos;
         at = text.out.find("Serial Number:", at + 1)) {
      ++facts.entries;
    }
    break;
  }
  return facts;
}

// The one sample of `name` with `labels`; NaN (and a failure) when not exactly one.
double One(const std::vector<PromSample> &samples, const std::string &name,
           const std::map<std::string, std::string> &labels) {
  const std::vector<PromSample> found = FindSamples(samples, name, labels);
  std::string wanted = name;
  for (const auto &[label, value] : labels) wanted += " " + label + "=" + value;
  EXPECT_EQ(found.size(), 1u) << wanted;
  return found.size() == 1 ? found[0].value : std::nan("");
}

}  // namespace

void ExpectRevocationGauges(const std::string &page, const std::string &pki,
                            const GaugeCaches &caches, int64_t max_stale) {
  std::string error;
  const std::vector<PromSample> samples = ParsePrometheus(page, &error);
  ASSERT_EQ(error, "") << page;
  ASSERT_FALSE(samples.empty()) << page;
  for (const PromSample &sample : samples) {
    for (const auto &[label, value] : sample.labels) {
      EXPECT_LE(value.size(), 160u) << sample.name << " " << label;
    }
    if (sample.name.size() > 6 && sample.name.rfind("_total") == sample.name.size() - 6) {
      EXPECT_EQ(sample.type, "counter") << sample.name;
    } else {
      EXPECT_EQ(sample.type, "gauge") << sample.name;
    }
  }
  for (const std::string &cache : {caches.fetched, caches.preloaded, caches.ocsp, caches.failing}) {
    EXPECT_EQ(One(samples, "certgate_revocation_cache_up", {{"cache", cache}}), 1) << cache;
  }
  for (const char *kind : {"cache", "crl", "url", "file", "responder"}) {
    EXPECT_EQ(One(samples, "certgate_revocation_series_omitted", {{"kind", kind}}), 0) << kind;
  }

  // The issuing CA's CRL fetched from the CDP: the numbers of the file it serves.
  const std::string cdp_url = "http://127.0.0.1:18080/intermediate.crl";
  const CrlFacts served = ReadCrlFacts(pki + "/crl/intermediate.crl");
  ASSERT_GE(served.number, 0) << "cannot read " << pki << "/crl/intermediate.crl";
  const std::map<std::string, std::string> fetched = {
      {"cache", caches.fetched}, {"source", cdp_url}, {"source_kind", "url"}, {"crl", "base"}};
  EXPECT_EQ(One(samples, "certgate_crl_number", fetched), served.number);
  EXPECT_EQ(One(samples, "certgate_crl_this_update_seconds", fetched), served.this_update);
  EXPECT_EQ(One(samples, "certgate_crl_next_update_seconds", fetched), served.next_update);
  EXPECT_EQ(One(samples, "certgate_crl_entries", fetched), served.entries);
  EXPECT_EQ(One(samples, "certgate_crl_stale_until_seconds", fetched),
            served.next_update + max_stale);
  EXPECT_EQ(One(samples, "certgate_stale_serving", fetched), 0);
  const std::vector<PromSample> issuer = FindSamples(samples, "certgate_crl_number", fetched);
  if (!issuer.empty()) {
    EXPECT_NE(issuer[0].labels.at("issuer").find("Issuing CA"), std::string::npos);
    EXPECT_EQ(issuer[0].labels.at("issuer_id").size(), 16u);
  }
  const std::map<std::string, std::string> cdp = {{"cache", caches.fetched}, {"url", cdp_url}};
  const double success = One(samples, "certgate_fetch_last_success_seconds", cdp);
  EXPECT_GT(success, time(nullptr) - 600);
  EXPECT_LE(success, time(nullptr));
  EXPECT_EQ(One(samples, "certgate_fetch_consecutive_failures", cdp), 0);
  EXPECT_EQ(One(samples, "certgate_fetch_failing_since_seconds", cdp), 0);

  // The same CRL preloaded from its file.
  const std::string file = pki + "/crl/intermediate.crl";
  const std::map<std::string, std::string> preloaded = {
      {"cache", caches.preloaded}, {"source", file}, {"source_kind", "file"}};
  EXPECT_EQ(One(samples, "certgate_crl_number", preloaded), served.number);
  EXPECT_EQ(One(samples, "certgate_crl_next_update_seconds", preloaded), served.next_update);
  EXPECT_EQ(One(samples, "certgate_preload_file_ok", {{"cache", caches.preloaded}, {"file", file}}),
            1);

  // The OCSP responder of the client certificates (AIA).
  const std::vector<PromSample> responders =
      FindSamples(samples, "certgate_ocsp_responses", {{"cache", caches.ocsp}});
  ASSERT_EQ(responders.size(), 1u) << page;
  EXPECT_NE(responders[0].labels.at("responder").find("127.0.0.1:18081"), std::string::npos);
  EXPECT_GE(responders[0].value, 1);
  EXPECT_GT(One(samples, "certgate_fetch_last_success_seconds",
                {{"cache", caches.ocsp}, {"url", responders[0].labels.at("responder")}}),
            0);

  // The CDP refusing connections.
  const std::map<std::string, std::string> down = {{"cache", caches.failing}, {"url", cdp_url}};
  EXPECT_GE(One(samples, "certgate_fetch_errors_total",
                {{"cache", caches.failing}, {"url", cdp_url}, {"error", "connection"}}),
            1);
  EXPECT_GT(One(samples, "certgate_fetch_last_error_seconds", down), time(nullptr) - 3600);
  EXPECT_GT(One(samples, "certgate_fetch_failing_since_seconds", down), 0);
  EXPECT_GE(One(samples, "certgate_fetch_consecutive_failures", down), 1);

  // The accepted client certificate's notAfter, by its serial.
  std::map<std::string, std::string> good = OpensslFields(
      {"openssl", "x509", "-in", pki + "/clients/good.crt", "-noout", "-enddate", "-serial"});
  ASSERT_EQ(good.count("serial"), 1u);
  EXPECT_EQ(One(samples, "certgate_client_cert_expiry_seconds", {{"serial", good["serial"]}}),
            OpensslTime(good["notAfter"]));
  EXPECT_LE(FindSamples(samples, "certgate_client_cert_expiry_seconds").size(), 10u);
}

}  // namespace certgate::harness

namespace certgate::harness {

std::string CheckConfExamples(const std::string &page) {
  const RunResult run =
      Run({"/usr/bin/python3", CERTGATE_CONF_EXAMPLES_CHECK, "--page", "-"}, {}, page, 60000);
  return run.exit_code == 0 ? "" : run.out + run.err;
}

}  // namespace certgate::harness
