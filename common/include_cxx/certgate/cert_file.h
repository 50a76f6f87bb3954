// Reading files of certificates (policy keys, the CLI): one place for the
// error wording and for keeping OpenSSL's error queue clean.
#pragma once

#include <certgate/result.h>
#include <openssl/x509.h>

#include <memory>
#include <string>
#include <vector>

namespace certgate {

using CertificateList = std::vector<std::shared_ptr<X509>>;

// The whole file; the error says `cannot read "<path>": <strerror>`.
Status ReadWholeFile(const std::string &path, std::string *out);

// Every certificate of a PEM file; at least one.
Result<CertificateList> ReadPemCertificates(const std::string &path);

// Every certificate of a PEM file, or the one certificate of a DER file.
Result<CertificateList> ReadCertificates(const std::string &path);

}  // namespace certgate
