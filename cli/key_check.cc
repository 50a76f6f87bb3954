#include "key_check.h"

#include <certgate/cert_facts.h>
#include <certgate/cert_file.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include <algorithm>

namespace certgate::cli {
namespace {

std::string KeyName(EVP_PKEY *key) {
  const char *type = EVP_PKEY_get0_type_name(key);
  std::string name = type != nullptr ? type : "unknown";
  char group[80] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_group_name(key, group, sizeof(group), &len) == 1) {
    name += std::string(" ") + group;
  } else if (EVP_PKEY_get_bits(key) > 0 && name == "RSA") {
    name += " " + std::to_string(EVP_PKEY_get_bits(key));
  }
  return name;
}

bool Contains(const std::vector<std::string> &items, const std::string &item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

}  // namespace

Result<ossl::UniquePtr<EVP_PKEY>> ReadPrivateKey(const std::string &path) {
  std::string bytes;
  if (Status read = ReadWholeFile(path, &bytes); !read.ok()) return read;
  ossl::UniquePtr<BIO> bio(BIO_new_mem_buf(bytes.data(), static_cast<int>(bytes.size())));
  ossl::UniquePtr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    ERR_clear_error();
    const unsigned char *der = reinterpret_cast<const unsigned char *>(bytes.data());
    key.reset(d2i_AutoPrivateKey(nullptr, &der, static_cast<long>(bytes.size())));
  }
  ERR_clear_error();
  if (!key) {
    return Status::Error("\"" + path + "\" holds no private key (PEM or DER, unencrypted)");
  }
  return key;
}

KeyMatch MatchKey(X509 *cert, EVP_PKEY *key) {
  KeyMatch match;
  match.key = KeyName(key);
  EVP_PKEY *public_key = X509_get0_pubkey(cert);
  const std::string cert_key = public_key != nullptr ? KeyName(public_key) : "no readable key";
  match.matches = public_key != nullptr && EVP_PKEY_eq(public_key, key) == 1;
  ERR_clear_error();
  const std::string subject = NameToString(X509_get_subject_name(cert));
  if (match.matches) {
    match.message = "the " + match.key + " key matches the certificate \"" + subject + "\"";
  } else if (cert_key != match.key) {
    match.message = "the key is " + match.key + " but the certificate \"" + subject +
                    "\" holds a key of type " + cert_key +
                    ": this is the key of another certificate";
  } else {
    match.message = "the " + match.key + " key does not match the certificate \"" + subject +
                    "\" (same type, another key pair): find the key generated with this "
                    "certificate's request, or have the certificate reissued for this key";
  }
  return match;
}

std::vector<std::string> ClientAuthProblems(X509 *leaf) {
  std::vector<std::string> problems;
  const CertFacts facts = ExtractFacts(leaf);
  if (facts.has_eku && !Contains(facts.extended_key_usage, "clientAuth")) {
    problems.push_back(
        Contains(facts.extended_key_usage, "anyExtendedKeyUsage")
            ? "extendedKeyUsage has anyExtendedKeyUsage but not clientAuth (refused under "
              "certgate_require_eku clientAuth strict)"
            : "extendedKeyUsage does not include clientAuth (it has " +
                  [&] {
                    std::string list;
                    for (const auto &eku : facts.extended_key_usage) {
                      list += (list.empty() ? "" : ", ") + eku;
                    }
                    return list.empty() ? std::string("none") : list;
                  }() +
                  "): certgate refuses it as wrong_purpose");
  }
  if (facts.has_key_usage && !Contains(facts.key_usage, "digitalSignature")) {
    problems.push_back(
        "keyUsage lacks digitalSignature, which a TLS client key signs with: certgate refuses "
        "it as key_usage");
  }
  if (facts.is_ca) problems.push_back("the certificate is a CA certificate, not a client's");
  return problems;
}

}  // namespace certgate::cli
