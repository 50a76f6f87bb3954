// Wording shared by the evaluator's findings: how a certificate of the chain is
// named in a detail.
#pragma once

#include <openssl/x509.h>

#include <string>

#include "cert_fields.h"

namespace certgate {

// Single quotes: the detail lands inside a double-quoted log value, and httpd's
// error log would double every backslash of an escaped quote.
inline std::string Quoted(const std::string &text) { return "'" + text + "'"; }

inline std::string SubjectOf(X509 *cert) {
  return Quoted(NameToString(X509_get_subject_name(cert)));
}

inline std::string Describe(int depth) {
  return depth == 0 ? std::string("the client certificate")
                    : "the CA certificate at depth " + std::to_string(depth);
}

}  // namespace certgate
