#include <certgate/cert_facts.h>
#include <certgate/cert_file.h>
#include <certgate/self_checks.h>
#include <dirent.h>
#include <grp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <set>

#include "cert_fields.h"
#include "directive_names.h"
#include "revocation/crl.h"
#include "revocation/fetcher.h"

namespace certgate {
namespace {

const std::vector<SelfCheck> kSelfChecks = {
    {"ca_names_size", false,
     "the CA names the server sends in its CertificateRequest (nginx: the subjects of "
     "ssl_client_certificate, sent unless ssl_verify_client is off; httpd: SSLCADNRequestFile/"
     "Path, else SSLCACertificateFile/Path) total more than 16384 bytes, counting each DER name "
     "and its 2-byte length"},
    {"ca_expiring", false,
     "a trust anchor or a certgate_trusted_issuers CA is past notAfter, or its notAfter is "
     "within certgate_expiry_warning"},
    {"issuer_not_trusted", true,
     "a certgate_trusted_issuers CA from which no chain (times not checked) reaches a trust "
     "anchor of the server: it can never match"},
    {"ca_no_client_auth", false,
     "a trust anchor or certgate_trusted_issuers CA has extendedKeyUsage without clientAuth "
     "or anyExtendedKeyUsage"},
    {"verify_client_on", false, "nginx `ssl_verify_client on` in a server where certgate is on"},
    {"revocation_no_source", false,
     "certgate_revocation hard_fail, and an issuing CA (each certgate_trusted_issuers CA, else "
     "each trust anchor) has no CRL of its own among the certgate_crl files, and no certificate "
     "of its chain up to a trust anchor names a CRL distribution point or an OCSP responder"},
    {"fetch_allow", false,
     "certgate_revocation is not off and a CRL distribution point or OCSP URL (http/https) of "
     "a trust anchor or certgate_trusted_issuers CA names a host certgate_fetch_allow excludes"},
    {"fetch_issuers_allow", true,
     "certgate_fetch_issuers is on but certgate_fetch_allow names no host: the AIA URL it "
     "fetches comes from a client certificate not yet verified"},
    {"cache_dir", false,
     "certgate_revocation is not off and the cache directory exists but the worker user "
     "cannot write and search it, or it does not exist, the server is not started as root "
     "(which creates it), and its nearest existing parent is not writable by the current user"},
};

std::string Spell(const std::string &text) {
  return SpellDirectives(text, CurrentDirectiveStyle());
}

SelfCheckFinding Finding(std::string_view name, const std::string &text) {
  SelfCheckFinding f;
  f.name = std::string(name);
  for (const SelfCheck &check : kSelfChecks) {
    if (check.name == name) f.fatal = check.fatal;
  }
  f.message = "certgate: check=" + f.name + " " + Spell(text);
  return f;
}

std::string Subject(X509 *cert) { return "'" + NameToString(X509_get_subject_name(cert)) + "'"; }

void AddCerts(const std::string &path, std::vector<std::shared_ptr<X509>> *out) {
  auto certs = ReadCertificates(path);
  if (certs.ok()) out->insert(out->end(), certs.value().begin(), certs.value().end());
}

std::vector<std::string> RegularFiles(const std::string &path) {
  std::vector<std::string> files;
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return files;
  if (!S_ISDIR(st.st_mode)) return {path};
  DIR *dir = opendir(path.c_str());
  if (dir == nullptr) return files;
  while (struct dirent *entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    std::string full = path + (path.back() == '/' ? "" : "/") + entry->d_name;
    if (stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode)) files.push_back(full);
  }
  closedir(dir);
  std::sort(files.begin(), files.end());
  return files;
}

void AddCertsFrom(const std::string &file, const std::string &dir,
                  std::vector<std::shared_ptr<X509>> *out) {
  if (!file.empty()) AddCerts(file, out);
  if (!dir.empty()) {
    for (const std::string &f : RegularFiles(dir)) AddCerts(f, out);
  }
}

void AddName(const X509_NAME *name, ServerTrust *trust) {
  trust->ca_names_der.push_back(NameDer(name));
  trust->ca_names_text.push_back(NameToString(name));
}

// The anchors and the trusted_issuers CAs, each once.
std::vector<X509 *> ConfiguredCas(const Policy &policy, const ServerTrust &trust) {
  std::vector<X509 *> cas;
  for (const auto &c : trust.anchors) cas.push_back(c.get());
  if (policy.trusted_issuers) {
    for (const auto &c : policy.trusted_issuers->certs) {
      bool seen =
          std::any_of(cas.begin(), cas.end(), [&](X509 *a) { return !X509_cmp(a, c.get()); });
      if (!seen) cas.push_back(c.get());
    }
  }
  return cas;
}

// Errors that mean "no path to an anchor"; every other one (time, purpose,
// policy) is another check's business.
int ReachCallback(int ok, X509_STORE_CTX *ctx) {
  if (ok) return 1;
  switch (X509_STORE_CTX_get_error(ctx)) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
      return 0;
    default:
      return 1;
  }
}

// The chain from `cert` to a trust anchor (leaf first), or empty when none.
std::vector<X509 *> ChainToAnchor(X509 *cert, const Policy &policy, const ServerTrust &trust,
                                  ossl::UniquePtr<STACK_OF(X509)> *hold) {
  if (trust.store == nullptr) return {};
  ossl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  ossl::UniquePtr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  if (ctx == nullptr || untrusted == nullptr) return {};
  if (policy.trusted_issuers) {
    for (const auto &c : policy.trusted_issuers->certs) {
      if (X509_up_ref(c.get()) && !sk_X509_push(untrusted.get(), c.get())) X509_free(c.get());
    }
  }
  if (!X509_STORE_CTX_init(ctx.get(), trust.store.get(), cert, untrusted.get())) return {};
  X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_NO_CHECK_TIME);
  X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  X509_STORE_CTX_set_verify_cb(ctx.get(), ReachCallback);
  std::vector<X509 *> chain;
  if (X509_verify_cert(ctx.get()) == 1) {
    hold->reset(X509_STORE_CTX_get1_chain(ctx.get()));
    for (int i = 0; *hold != nullptr && i < sk_X509_num(hold->get()); ++i) {
      chain.push_back(sk_X509_value(hold->get(), i));
    }
  }
  ERR_clear_error();
  return chain;
}

void CheckCaNamesSize(const ServerTrust &trust, std::vector<SelfCheckFinding> *out) {
  size_t total = 0;
  std::vector<std::pair<size_t, size_t>> sizes;  // (bytes, index)
  for (size_t i = 0; i < trust.ca_names_der.size(); ++i) {
    size_t bytes = 2 + trust.ca_names_der[i].size();
    total += bytes;
    sizes.emplace_back(bytes, i);
  }
  if (total <= kCaNamesWarnBytes) return;
  std::stable_sort(sizes.begin(), sizes.end(),
                   [](const auto &a, const auto &b) { return a.first > b.first; });
  std::string largest;
  for (size_t k = 0; k < sizes.size() && k < 3; ++k) {
    if (k > 0) largest += ", ";
    largest += "'" + trust.ca_names_text[sizes[k].second] + "' (" + std::to_string(sizes[k].first) +
               " bytes)";
  }
  std::string suggestion =
      CurrentDirectiveStyle() == DirectiveStyle::kHttpd
          ? "list only the CAs that issue client certificates in SSLCADNRequestFile"
          : "keep only the CAs that issue client certificates in ssl_client_certificate and "
            "move the others to ssl_trusted_certificate";
  out->push_back(Finding(
      "ca_names_size",
      "the server sends " + std::to_string(trust.ca_names_der.size()) + " CA names, " +
          std::to_string(total) + " bytes, in its certificate request (more than " +
          std::to_string(kCaNamesWarnBytes) +
          "): Schannel (Windows) truncates the list at 16 KiB and some clients then send no "
          "certificate; TLS 1.3 cannot send more than about 64 KiB at all (the handshake then "
          "fails with internal_error); largest: " +
          largest + "; " + suggestion));
}

void CheckExpiry(const Policy &policy, const std::vector<X509 *> &cas, int64_t now,
                 std::vector<SelfCheckFinding> *out) {
  const int64_t warn = policy.EffectiveExpiryWarning().count();
  for (X509 *ca : cas) {
    int64_t not_after = Asn1TimeToUnix(X509_get0_notAfter(ca));
    if (not_after < now) {
      out->push_back(Finding("ca_expiring", "the CA " + Subject(ca) + " expired on " +
                                                FormatTime(not_after) +
                                                ": every chain through it is refused (expired)"));
    } else if (not_after < now + warn) {
      out->push_back(Finding("ca_expiring",
                             "the CA " + Subject(ca) + " expires on " + FormatTime(not_after) +
                                 ", within certgate_expiry_warning: renew it and deploy the new "
                                 "certificate before then"));
    }
  }
}

void CheckIssuersTrusted(const Policy &policy, const ServerTrust &trust,
                         std::vector<SelfCheckFinding> *out) {
  if (!policy.trusted_issuers) return;
  for (const auto &ca : policy.trusted_issuers->certs) {
    ossl::UniquePtr<STACK_OF(X509)> hold;
    if (!ChainToAnchor(ca.get(), policy, trust, &hold).empty()) continue;
    out->push_back(Finding(
        "issuer_not_trusted",
        "the CA " + Subject(ca.get()) + " in certgate_trusted_issuers \"" +
            policy.trusted_issuers->path +
            "\" reaches no trust anchor of this server: no client certificate can ever match "
            "it; add its root to the server's trusted client CAs or fix the file"));
  }
}

void CheckClientAuth(const std::vector<X509 *> &cas, std::vector<SelfCheckFinding> *out) {
  for (X509 *ca : cas) {
    if ((X509_get_extension_flags(ca) & EXFLAG_XKUSAGE) == 0) continue;
    if (X509_get_extended_key_usage(ca) & (XKU_SSL_CLIENT | XKU_ANYEKU)) continue;
    out->push_back(Finding("ca_no_client_auth",
                           "the CA " + Subject(ca) +
                               " has an extendedKeyUsage without clientAuth: every client "
                               "certificate under it is refused (wrong_purpose)"));
  }
}

void CheckVerifyClient(const ServerTrust &trust, std::vector<SelfCheckFinding> *out) {
  if (!trust.verify_client_on) return;
  out->push_back(Finding(
      "verify_client_on",
      "ssl_verify_client on: nginx answers a missing or failed client certificate with its own "
      "400 before certgate can say why; use ssl_verify_client optional_no_ca (or off, with "
      "ssl_trusted_certificate) and let certgate refuse, with its reason"));
}

// The issuer DERs of every preloaded CRL.
std::set<std::string> PreloadedCrlIssuers(const Policy &policy) {
  std::set<std::string> issuers;
  if (!policy.crl) return issuers;
  for (const std::string &path : *policy.crl) {
    for (const std::string &file : RegularFiles(path)) {
      std::string data;
      if (!ReadWholeFile(file, &data).ok()) continue;
      auto crls = ParseCrlFile(std::move(data));
      if (!crls.ok()) continue;
      for (const ParsedCrl &crl : crls.value()) issuers.insert(std::string(crl.issuer_der));
    }
  }
  return issuers;
}

bool NamesRevocationSource(X509 *cert) {
  return !CrlUrls(cert).empty() || !AiaUrls(cert, NID_ad_OCSP).empty();
}

void CheckRevocationSources(const Policy &policy, const ServerTrust &trust,
                            std::vector<SelfCheckFinding> *out) {
  if (policy.EffectiveRevocation() != RevocationMode::kHardFail) return;
  std::vector<X509 *> issuing;
  if (policy.trusted_issuers) {
    for (const auto &c : policy.trusted_issuers->certs) issuing.push_back(c.get());
  } else {
    for (const auto &c : trust.anchors) issuing.push_back(c.get());
  }
  const std::set<std::string> crl_issuers = PreloadedCrlIssuers(policy);
  for (X509 *ca : issuing) {
    if (crl_issuers.count(NameDer(X509_get_subject_name(ca))) != 0) continue;
    ossl::UniquePtr<STACK_OF(X509)> hold;
    std::vector<X509 *> chain = ChainToAnchor(ca, policy, trust, &hold);
    if (chain.empty()) chain.push_back(ca);
    if (std::any_of(chain.begin(), chain.end(), NamesRevocationSource)) continue;
    out->push_back(Finding(
        "revocation_no_source",
        "certgate_revocation hard_fail, but no certgate_crl has a CRL of the CA " + Subject(ca) +
            " and no certificate of its chain names a CRL distribution point or an OCSP "
            "responder: unless its client certificates name one, every request is refused "
            "(revocation_unavailable); preload its CRL with certgate_crl"));
  }
}

void CheckFetchAllow(const Policy &policy, const std::vector<X509 *> &cas,
                     std::vector<SelfCheckFinding> *out) {
  if (policy.EffectiveRevocation() == RevocationMode::kOff || !policy.fetch_allow) return;
  std::set<std::string> reported;
  for (X509 *ca : cas) {
    std::vector<std::string> urls = CrlUrls(ca);
    for (const std::string &u : AiaUrls(ca, NID_ad_OCSP)) urls.push_back(u);
    for (const std::string &url : urls) {
      const std::string scheme = UrlScheme(url);
      if (scheme != "http" && scheme != "https") continue;
      if (UrlRefusal(url, *policy.fetch_allow).empty()) continue;
      if (!reported.insert(url).second) continue;
      out->push_back(Finding("fetch_allow", "the CA " + Subject(ca) + " names " + url +
                                                ", but certgate_fetch_allow excludes its host " +
                                                UrlHost(url) + ": it is never fetched"));
    }
  }
}

void CheckFetchIssuers(const Policy &policy, std::vector<SelfCheckFinding> *out) {
  const Status combined = policy.CheckCombination();
  if (!combined.ok()) out->push_back(Finding("fetch_issuers_allow", combined.message()));
}

bool InGroup(long uid, long gid, gid_t file_gid) {
  if (gid >= 0 && static_cast<gid_t>(gid) == file_gid) return true;
  struct passwd *pw = getpwuid(static_cast<uid_t>(uid));
  if (pw == nullptr) return false;
  int n = 64;
  std::vector<gid_t> groups(n);
  if (getgrouplist(pw->pw_name, pw->pw_gid, groups.data(), &n) < 0) return false;
  return std::find(groups.begin(), groups.begin() + n, file_gid) != groups.begin() + n;
}

bool WritableBy(const struct stat &st, long uid, long gid) {
  if (uid == 0) return true;
  if (static_cast<uid_t>(uid) == st.st_uid) return (st.st_mode & 0300) == 0300;
  if (InGroup(uid, gid, st.st_gid)) return (st.st_mode & 0030) == 0030;
  return (st.st_mode & 0003) == 0003;
}

void CheckCacheDir(const Policy &policy, const ServerTrust &trust,
                   std::vector<SelfCheckFinding> *out) {
  if (policy.EffectiveRevocation() == RevocationMode::kOff) return;
  const std::string dir = policy.EffectiveCacheDir();
  long uid = trust.worker_uid >= 0 ? trust.worker_uid : static_cast<long>(geteuid());
  long gid = trust.worker_uid >= 0 ? trust.worker_gid : static_cast<long>(getegid());
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode) && WritableBy(st, uid, gid)) return;
    out->push_back(Finding("cache_dir", "the revocation cache directory " + dir +
                                            " (certgate_cache) is not writable by the worker "
                                            "user (uid " +
                                            std::to_string(uid) +
                                            "): revocation data cannot be kept"));
    return;
  }
  if (geteuid() == 0) return;  // a root server creates it and gives it to the workers
  std::string parent = dir;
  while (parent.size() > 1) {
    size_t slash = parent.find_last_of('/');
    parent = slash == 0 ? "/" : parent.substr(0, slash);
    if (stat(parent.c_str(), &st) == 0) break;
  }
  if (access(parent.c_str(), W_OK | X_OK) == 0) return;
  out->push_back(Finding("cache_dir", "the revocation cache directory " + dir +
                                          " (certgate_cache) does not exist and cannot be "
                                          "created: " +
                                          parent + " is not writable by uid " +
                                          std::to_string(geteuid())));
}

}  // namespace

const std::vector<SelfCheck> &SelfChecks() { return kSelfChecks; }

ServerTrust TrustFromSslCtx(SSL_CTX *ctx) {
  ServerTrust trust;
  X509_STORE *store = SSL_CTX_get_cert_store(ctx);
  if (store != nullptr && X509_STORE_up_ref(store)) {
    trust.store.reset(store);
    STACK_OF(X509) *certs = X509_STORE_get1_all_certs(store);
    for (int i = 0; certs != nullptr && i < sk_X509_num(certs); ++i) {
      trust.anchors.push_back(ossl::Share(sk_X509_value(certs, i)));
    }
    sk_X509_pop_free(certs, X509_free);
  }
  const STACK_OF(X509_NAME) *names = SSL_CTX_get_client_CA_list(ctx);
  for (int i = 0; names != nullptr && i < sk_X509_NAME_num(names); ++i) {
    AddName(sk_X509_NAME_value(names, i), &trust);
  }
  return trust;
}

ServerTrust TrustFromFiles(const std::string &ca_file, const std::string &ca_path,
                           const std::string &names_file, const std::string &names_path) {
  ServerTrust trust;
  AddCertsFrom(ca_file, ca_path, &trust.anchors);
  trust.store.reset(X509_STORE_new());
  for (const auto &c : trust.anchors) {
    if (trust.store != nullptr) X509_STORE_add_cert(trust.store.get(), c.get());
  }
  ERR_clear_error();  // a certificate listed twice
  std::vector<std::shared_ptr<X509>> named;
  AddCertsFrom(names_file, names_path, &named);
  for (const auto &c : (names_file.empty() && names_path.empty()) ? trust.anchors : named) {
    AddName(X509_get_subject_name(c.get()), &trust);
  }
  return trust;
}

std::vector<SelfCheckFinding> RunSelfChecks(const Policy &policy, const ServerTrust &trust) {
  std::vector<SelfCheckFinding> out;
  const int64_t now = trust.now != 0 ? trust.now : static_cast<int64_t>(std::time(nullptr));
  const std::vector<X509 *> cas = ConfiguredCas(policy, trust);
  CheckCaNamesSize(trust, &out);
  CheckExpiry(policy, cas, now, &out);
  CheckIssuersTrusted(policy, trust, &out);
  CheckClientAuth(cas, &out);
  CheckVerifyClient(trust, &out);
  CheckRevocationSources(policy, trust, &out);
  CheckFetchAllow(policy, cas, &out);
  CheckFetchIssuers(policy, &out);
  CheckCacheDir(policy, trust, &out);
  return out;
}

}  // namespace certgate
