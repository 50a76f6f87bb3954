#include <certgate/cert_file.h>
#include <certgate/ossl_ptr.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace certgate {
namespace {

std::string Quote(const std::string &value) { return "\"" + value + "\""; }

// The text of the newest OpenSSL error.
std::string LastOpenSslError() {
  char text[256] = "unknown error";
  if (const unsigned long code = ERR_peek_last_error()) ERR_error_string_n(code, text, sizeof text);
  return text;
}

Result<CertificateList> ParsePem(const std::string &path, const std::string &pem) {
  ossl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Status::Error("out of memory reading " + Quote(path));
  CertificateList certs;
  // Our parse errors must never leak to a caller's SSL_get_error (certgate.h rule).
  ERR_set_mark();
  while (X509 *cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(ossl::UniquePtr<X509>(cert));
  }
  const unsigned long last = ERR_peek_last_error();
  const bool at_end = last == 0 || (ERR_GET_LIB(last) == ERR_LIB_PEM &&
                                    ERR_GET_REASON(last) == PEM_R_NO_START_LINE);
  const std::string detail = at_end ? "" : LastOpenSslError();
  ERR_pop_to_mark();
  if (!at_end) return Status::Error(Quote(path) + " holds a bad PEM certificate: " + detail);
  if (certs.empty()) return Status::Error(Quote(path) + " holds no PEM certificate");
  return certs;
}

}  // namespace

Status ReadWholeFile(const std::string &path, std::string *out) {
  errno = 0;
  FILE *file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return Status::Error("cannot read " + Quote(path) + ": " + std::strerror(errno));
  }
  std::string data;
  char buf[8192];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof(buf), file)) > 0) data.append(buf, n);
  const int read_errno =
      std::ferror(file) ? errno : 0;  // fopen works on a directory; fread: EISDIR
  std::fclose(file);
  if (read_errno != 0) {
    return Status::Error("cannot read " + Quote(path) + ": " + std::strerror(read_errno));
  }
  *out = std::move(data);
  return Status::Ok();
}

Result<CertificateList> ReadPemCertificates(const std::string &path) {
  std::string pem;
  if (Status read = ReadWholeFile(path, &pem); !read.ok()) return read;
  return ParsePem(path, pem);
}

Result<CertificateList> ReadCertificates(const std::string &path) {
  std::string data;
  if (Status read = ReadWholeFile(path, &data); !read.ok()) return read;
  if (data.find("-----BEGIN") != std::string::npos) return ParsePem(path, data);
  ERR_set_mark();
  const auto *der = reinterpret_cast<const unsigned char *>(data.data());
  X509 *cert = d2i_X509(nullptr, &der, static_cast<long>(data.size()));
  const std::string detail = cert == nullptr ? LastOpenSslError() : "";
  ERR_pop_to_mark();
  if (cert == nullptr) {
    return Status::Error(Quote(path) + " is neither PEM nor a DER certificate: " + detail);
  }
  return CertificateList{std::shared_ptr<X509>(ossl::UniquePtr<X509>(cert))};
}

}  // namespace certgate
