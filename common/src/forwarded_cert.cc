#include "forwarded_cert.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cctype>
#include <vector>

#include "percent_decode.h"

namespace certgate {
namespace {

bool EqualsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (tolower(static_cast<unsigned char>(a[i])) != tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) text.remove_suffix(1);
  return text;
}

// Every PEM certificate of `pem`, in order; an error when there is none, one
// does not decode, or there are too many. Text outside the PEM blocks is refused
// too: a header is one thing, not a place for anything else.
Result<std::vector<ossl::UniquePtr<X509>>> ReadPemCerts(std::string_view pem) {
  static constexpr std::string_view kBegin = "-----BEGIN CERTIFICATE-----";
  std::vector<ossl::UniquePtr<X509>> certs;
  ossl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  if (!bio) return Status::Error("out of memory");
  for (;;) {
    const std::string_view rest = Trim(
        std::string_view(pem).substr(pem.size() - static_cast<size_t>(BIO_pending(bio.get()))));
    const size_t blank = rest.find_first_not_of("\r\n");
    if (blank == std::string_view::npos) break;
    if (rest.substr(blank, kBegin.size()) != kBegin) {
      ERR_clear_error();
      return Status::Error(certs.empty()
                               ? "it does not start with -----BEGIN CERTIFICATE-----"
                               : "there is text after certificate " + std::to_string(certs.size()));
    }
    if (certs.size() == kMaxForwardedCerts) {
      return Status::Error("it holds more than " + std::to_string(kMaxForwardedCerts) +
                           " certificates");
    }
    ossl::UniquePtr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!cert) {
      ERR_clear_error();
      return Status::Error("certificate " + std::to_string(certs.size() + 1) +
                           " is not a valid PEM certificate");
    }
    certs.push_back(std::move(cert));
  }
  if (certs.empty()) return Status::Error("it holds no certificate");
  return certs;
}

Result<ForwardedChain> ChainOf(std::vector<ossl::UniquePtr<X509>> certs) {
  ForwardedChain out;
  out.chain.reset(sk_X509_new_null());
  if (!out.chain) return Status::Error("out of memory");
  out.leaf = std::move(certs.front());
  for (size_t i = 1; i < certs.size(); ++i) {
    if (!sk_X509_push(out.chain.get(), certs[i].get())) return Status::Error("out of memory");
    certs[i].release();
  }
  return out;
}

Result<std::vector<ossl::UniquePtr<X509>>> DecodeEscapedPem(std::string_view escaped,
                                                            const std::string &what) {
  std::optional<std::string> pem = PercentDecode(escaped);
  if (!pem) return Status::Error((what.empty() ? "it" : what) + " has a bad %-escape");
  auto certs = ReadPemCerts(*pem);
  if (!certs.ok()) {
    return Status::Error((what.empty() ? "" : what + ": ") + certs.status().message());
  }
  return certs;
}

std::string Sha256Hex(X509 *cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &len) != 1) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

Result<ForwardedChain> ParseXfcc(std::string_view value) {
  auto cert = XfccField(value, "Cert");
  if (!cert.ok()) return cert.status();
  auto chain = XfccField(value, "Chain");
  if (!chain.ok()) return chain.status();
  auto hash = XfccField(value, "Hash");
  if (!hash.ok()) return hash.status();
  if (!cert.value() && !chain.value()) {
    return Status::Error(
        "it has no Cert= or Chain= field (the proxy must forward the "
        "certificate, Envoy: forward_client_cert_details with cert: true)");
  }
  std::vector<ossl::UniquePtr<X509>> certs;
  if (chain.value()) {  // Envoy: the whole chain, the leaf first
    auto decoded = DecodeEscapedPem(*chain.value(), "Chain=");
    if (!decoded.ok()) return decoded.status();
    certs = std::move(decoded).value();
  }
  if (cert.value()) {
    auto decoded = DecodeEscapedPem(*cert.value(), "Cert=");
    if (!decoded.ok()) return decoded.status();
    if (decoded->size() != 1) return Status::Error("Cert= holds more than one certificate");
    if (!certs.empty() && X509_cmp(certs.front().get(), decoded->front().get()) != 0) {
      return Status::Error("Cert= is not the first certificate of Chain=");
    }
    if (certs.empty()) certs = std::move(decoded).value();
  }
  if (hash.value() && !EqualsNoCase(*hash.value(), Sha256Hex(certs.front().get()))) {
    return Status::Error("Hash= is not the SHA-256 of the certificate");
  }
  return ChainOf(std::move(certs));
}

}  // namespace

Result<std::optional<std::string>> XfccField(std::string_view value, std::string_view key) {
  std::optional<std::string> found;
  size_t i = 0;
  while (i < value.size()) {
    // key=value or key="quoted value", separated by ';'; ',' starts another element
    const size_t equals = value.find('=', i);
    if (equals == std::string_view::npos) return Status::Error("a field has no '='");
    const std::string_view name = Trim(value.substr(i, equals - i));
    if (name.find_first_of(",;\"") != std::string_view::npos) {
      return Status::Error(name.find(',') != std::string_view::npos
                               ? "it has more than one element (a chain of proxies); certgate "
                                 "judges one client: have the proxy replace the header "
                                 "(Envoy: SANITIZE_SET)"
                               : "a field name is not a token");
    }
    std::string field;
    size_t next = equals + 1;
    if (next < value.size() && value[next] == '"') {
      for (++next;; ++next) {
        if (next >= value.size()) return Status::Error("a quoted value is not closed");
        if (value[next] == '\\' && next + 1 < value.size()) {
          field += value[++next];
        } else if (value[next] == '"') {
          ++next;
          break;
        } else {
          field += value[next];
        }
      }
      while (next < value.size() && (value[next] == ' ' || value[next] == '\t')) ++next;
    } else {
      const size_t end = std::min(value.find(';', next), value.find(',', next));
      const size_t stop = end == std::string_view::npos ? value.size() : end;
      field = std::string(Trim(value.substr(next, stop - next)));
      next = stop;
    }
    if (next < value.size() && value[next] == ',') {
      return Status::Error(
          "it has more than one element (a chain of proxies); certgate judges one client: have "
          "the proxy replace the header (Envoy: SANITIZE_SET)");
    }
    if (next < value.size() && value[next] != ';') {
      return Status::Error("a quoted value is followed by text");
    }
    if (EqualsNoCase(name, key)) {
      if (found) return Status::Error("the field " + std::string(key) + "= is given twice");
      found = std::move(field);
    }
    i = next + 1;
  }
  return found;
}

Result<ForwardedChain> ParseForwardedCert(ForwardedCert::Format format, std::string_view value) {
  if (value.size() > kMaxForwardedHeader) {
    return Status::Error("it is longer than " + std::to_string(kMaxForwardedHeader) + " bytes");
  }
  value = Trim(value);
  if (value.empty()) return Status::Error("it is empty");
  if (format == ForwardedCert::Format::kXfcc) return ParseXfcc(value);
  auto certs = DecodeEscapedPem(value, "");
  if (!certs.ok()) return certs.status();
  return ChainOf(std::move(certs).value());
}

}  // namespace certgate
