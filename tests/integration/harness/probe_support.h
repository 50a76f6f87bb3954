// What the `certgate probe` integration tests of every server share (issue 12):
// the CLI run, its JSON read back, and the PKI pieces the servers need beyond
// the demo PKI (a 302-CA list, a second server certificate for SNI).
#ifndef CERTGATE_TESTS_INTEGRATION_PROBE_SUPPORT_H
#define CERTGATE_TESTS_INTEGRATION_PROBE_SUPPORT_H

#include <string>
#include <vector>

#include "harness.h"

namespace certgate::harness {

// Runs this build's `certgate probe URL args...` (exit code, stdout, stderr).
RunResult RunProbe(const std::string &url, const std::vector<std::string> &args = {});

// The demo client NAME of `pki` as --cert (its chain) and --key arguments;
// `key_of` names another client whose key is given instead.
std::vector<std::string> ProbeClient(const std::string &pki, const std::string &name,
                                     const std::string &key_of = "");

// `args` followed by `more`.
std::vector<std::string> With(std::vector<std::string> args, const std::vector<std::string> &more);

// How the probe reports the refusal of the demo client "expired" (gtest
// expectations): exit 2 and the reason from the X-Certgate-Reason header at
// `header_url`; from the body, with its detail, at `detail_url`
// (reject_detail on); from the header again at `no_body_url` (reject_body off,
// the server's own page).
void ExpectProbeNamesRefusal(const std::string &pki, const std::string &servername,
                             const std::string &header_url, const std::string &detail_url,
                             const std::string &no_body_url);

// Evaluates a Python expression over the JSON document `json` (bound to `d`,
// e.g. "d['result']"), printed with print(); "JSON ERROR: ..." when `json` does
// not parse. So a test asserts both that --json is JSON and what it says.
std::string JsonQuery(const std::string &json, const std::string &expression);

// Writes `count` self-signed CA certificates, each with a distinct DN of
// about 185 DER bytes (302 of them: the 58 KB CertificateRequest), to
// the PEM file `path`. (Past 64 KiB in all, a TLS 1.3 server cannot encode the
// list and fails the handshake with internal_error.) Returns "" or what went
// wrong.
std::string WriteManyCas(const std::string &path, int count);

// Writes a self-signed server certificate and key for `cn` to
// `base`.pem and `base`.key (world readable). Returns "" or what went wrong.
std::string WriteServerCert(const std::string &base, const std::string &cn);

}  // namespace certgate::harness

#endif  // CERTGATE_TESTS_INTEGRATION_PROBE_SUPPORT_H
