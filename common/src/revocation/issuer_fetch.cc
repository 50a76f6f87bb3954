#include "revocation/issuer_fetch.h"

#include <certgate/cert_facts.h>
#include <certgate/ossl_ptr.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "cert_fields.h"
#include "revocation/ldap_url.h"

namespace certgate {
namespace {

using SteadyClock = std::chrono::steady_clock;

constexpr auto kLeasePoll = std::chrono::milliseconds(200);
constexpr size_t kMaxCertsPerResponse = 16;
// caIssuers URLs tried per certificate: they come from a certificate not yet
// verified, so a client naming thousands must not start thousands of fetches.
constexpr size_t kMaxIssuerUrlsPerCert = 4;
// Well under the store's record limit (a longer record reads as damage).
constexpr size_t kMaxStoredBytes = size_t{256} << 10;

struct Pkcs7Free {
  void operator()(PKCS7 *p7) const { PKCS7_free(p7); }
};
using Pkcs7Ptr = std::unique_ptr<PKCS7, Pkcs7Free>;

std::string Subject(X509 *cert) { return "'" + NameToString(X509_get_subject_name(cert)) + "'"; }

void TakeCertsOf(PKCS7 *p7, std::vector<std::shared_ptr<X509>> *out) {
  if (p7 == nullptr || !PKCS7_type_is_signed(p7) || p7->d.sign == nullptr) return;
  STACK_OF(X509) *certs = p7->d.sign->cert;
  for (int i = 0; certs != nullptr && i < sk_X509_num(certs); ++i) {
    out->push_back(ossl::Share(sk_X509_value(certs, i)));
  }
}

// Every certificate of `body`, in whichever form a CA publishes it.
std::vector<std::shared_ptr<X509>> DecodeCertificates(std::string_view body) {
  std::vector<std::shared_ptr<X509>> certs;
  const auto *der = reinterpret_cast<const unsigned char *>(body.data());
  const long size = static_cast<long>(body.size());
  {
    const unsigned char *p = der;
    if (X509 *cert = d2i_X509(nullptr, &p, size); cert != nullptr) {
      certs.emplace_back(cert, X509_free);
      return certs;
    }
  }
  {
    const unsigned char *p = der;
    Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, size));
    if (p7) {
      TakeCertsOf(p7.get(), &certs);
      return certs;
    }
  }
  ossl::UniquePtr<BIO> bio(BIO_new_mem_buf(body.data(), static_cast<int>(body.size())));
  if (!bio) return certs;
  // PEM: certificates and PKCS#7 blocks, in any order.
  for (;;) {
    char *name = nullptr, *header = nullptr;
    unsigned char *data = nullptr;
    long len = 0;
    if (PEM_read_bio(bio.get(), &name, &header, &data, &len) != 1) break;
    const std::string kind = name != nullptr ? name : "";
    const unsigned char *p = data;
    if (kind == PEM_STRING_X509 || kind == PEM_STRING_X509_OLD || kind == PEM_STRING_X509_TRUSTED) {
      X509 *cert = kind == PEM_STRING_X509_TRUSTED ? d2i_X509_AUX(nullptr, &p, len)
                                                   : d2i_X509(nullptr, &p, len);
      if (cert != nullptr) certs.emplace_back(cert, X509_free);
    } else if (kind == PEM_STRING_PKCS7) {
      Pkcs7Ptr p7(d2i_PKCS7(nullptr, &p, len));
      TakeCertsOf(p7.get(), &certs);
    }
    OPENSSL_free(name);
    OPENSSL_free(header);
    OPENSSL_free(data);
    if (certs.size() > kMaxCertsPerResponse) break;
  }
  return certs;
}

bool IsCa(X509 *cert) {
  // basicConstraints CA:TRUE, not OpenSSL's looser X509_check_ca (v1, keyUsage).
  return (X509_get_extension_flags(cert) & EXFLAG_CA) != 0 &&
         (X509_get_extension_flags(cert) & EXFLAG_INVALID) == 0;
}

// Interprets a caIssuers response and stores its CA certificates under `url`.
std::string ProcessResponse(RevocationStore &store, const std::string &url,
                            const HttpResponse &response, int64_t now, bool *ok) {
  *ok = false;
  if (!response.completed) return response.error;
  if (response.status != 200) return "HTTP " + std::to_string(response.status);
  Result<std::vector<std::shared_ptr<X509>>> certs = ParseIssuerResponse(response.body);
  if (!certs.ok()) return certs.status().message();
  FetchedIssuers record;
  record.fetched_at = now;
  std::string names;
  size_t stored_bytes = 0;
  for (const auto &cert : certs.value()) {
    unsigned char *der = nullptr;
    const int len = i2d_X509(cert.get(), &der);
    if (len <= 0) continue;
    stored_bytes += static_cast<size_t>(len);
    if (stored_bytes > kMaxStoredBytes) {
      OPENSSL_free(der);
      break;
    }
    record.certs_der.emplace_back(reinterpret_cast<char *>(der), static_cast<size_t>(len));
    OPENSSL_free(der);
    names += (names.empty() ? "" : ", ") + Subject(cert.get());
  }
  if (record.certs_der.empty()) return "its CA certificates are larger than certgate keeps";
  Result<RevocationStore::WriteTxn> txn = store.Write();
  if (!txn.ok()) return txn.status().message();
  Status stored = txn->PutFetchedIssuers(url, record);
  if (stored.ok()) stored = txn->Commit();
  if (!stored.ok()) return stored.message();
  *ok = true;
  return "stored CA " + names;
}

bool StoreHolds(RevocationStore &store, const std::string &url) {
  Result<RevocationStore::ReadTxn> txn = store.Read();
  return txn.ok() && txn->GetFetchedIssuers(url).has_value();
}

struct IssuerJob {
  std::string url, key;
  FetchLimits limits;
  SteadyClock::time_point lease_wait_until;
};

void RunIssuerFetch(FetchScheduler &scheduler, std::shared_ptr<IssuerJob> job) {
  RevocationStore &store = scheduler.store();
  // Another process may have fetched it while this one waited for its lease.
  if (StoreHolds(store, job->url)) {
    scheduler.Done(job->key);
    return;
  }
  switch (scheduler.TakeLease(job->url, job->limits, scheduler.clock().Now(), false)) {
    case FetchScheduler::Lease::kBackoff:
      scheduler.Done(job->key);
      return;
    case FetchScheduler::Lease::kHeld:
      if (job->lease_wait_until == SteadyClock::time_point()) {
        job->lease_wait_until = SteadyClock::now() + job->limits.timeout + std::chrono::seconds(5);
      }
      if (SteadyClock::now() < job->lease_wait_until) {
        scheduler.Post([&scheduler, job] { RunIssuerFetch(scheduler, job); }, kLeasePoll);
      } else {
        scheduler.Done(job->key);
      }
      return;
    case FetchScheduler::Lease::kTaken:
      break;
  }
  HttpRequest request;
  request.url = job->url;
  request.limits = job->limits;
  request.ldap_attribute = kLdapCaCertAttribute;  // for an ldap:// URL naming no attribute
  // The generic request path: whatever schemes the fetcher speaks (LDAP too).
  scheduler.Submit(std::move(request), [&scheduler, job](HttpResponse response) {
    bool ok = false;
    const std::string result =
        ProcessResponse(scheduler.store(), job->url, response, scheduler.clock().Now(), &ok);
    scheduler.RecordUrl(job->url, ok, result, response);
    scheduler.Done(job->key);
  });
}

std::shared_ptr<X509> FromDer(const std::string &der) {
  const auto *p = reinterpret_cast<const unsigned char *>(der.data());
  X509 *cert = d2i_X509(nullptr, &p, static_cast<long>(der.size()));
  return cert != nullptr ? std::shared_ptr<X509>(cert, X509_free) : nullptr;
}

bool Holds(const std::vector<std::shared_ptr<X509>> &certs, X509 *cert) {
  return std::any_of(certs.begin(), certs.end(),
                     [&](const auto &held) { return X509_cmp(held.get(), cert) == 0; });
}

std::string Join(const std::vector<std::string> &parts) {
  std::string out;
  for (const std::string &part : parts) out += (out.empty() ? "" : "; ") + part;
  return out;
}

}  // namespace

Result<std::vector<std::shared_ptr<X509>>> ParseIssuerResponse(std::string_view body) {
  std::vector<std::shared_ptr<X509>> all = DecodeCertificates(body);
  ERR_clear_error();
  if (all.empty()) {
    return Status::Error(
        "the response is no certificate (DER, PEM or PKCS#7 certs-only were tried)");
  }
  std::vector<std::shared_ptr<X509>> cas;
  std::string not_ca;
  for (auto &cert : all) {
    if (cas.size() >= kMaxCertsPerResponse) break;
    if (IsCa(cert.get())) {
      cas.push_back(std::move(cert));
    } else if (not_ca.empty()) {
      not_ca = Subject(cert.get());
    }
  }
  if (cas.empty()) {
    return Status::Error("the certificate " + not_ca +
                         " it serves is not a CA certificate (no basicConstraints CA:TRUE)");
  }
  return cas;
}

std::string IssuerFetchKey(const std::string &url) { return "issuer:" + url; }

bool ScheduleIssuerFetch(FetchScheduler &scheduler, const std::string &url,
                         const FetchLimits &limits) {
  auto job = std::make_shared<IssuerJob>();
  job->url = url;
  job->key = IssuerFetchKey(url);
  job->limits = limits;
  if (!scheduler.MarkPending(job->key)) return true;
  scheduler.Post([&scheduler, job] { RunIssuerFetch(scheduler, job); });
  return true;
}

bool MissesIssuer(const ChainEvidence &evidence) {
  if (!evidence.internal_error.empty() || evidence.anchored || evidence.chain.empty()) return false;
  return std::any_of(evidence.errors.begin(), evidence.errors.end(), [](const ChainError &error) {
    return ReasonForVerifyError(error.code) == CG_REASON_CHAIN_INCOMPLETE;
  });
}

IssuerCompletion CompleteChainFromAia(FetchScheduler &scheduler, const ChainEvidence &evidence,
                                      X509_STORE *trust, const Policy &policy, int64_t now) {
  IssuerCompletion out;
  if (!policy.EffectiveFetchIssuers() || !MissesIssuer(evidence)) return out;
  const FetchLimits limits = FetchLimitsFrom(policy);
  std::vector<std::shared_ptr<X509>> fetched;  // every fetched CA used so far
  ChainEvidence current = evidence;
  for (int level = 0; MissesIssuer(current); ++level) {
    if (level >= kMaxFetchedIssuerLevels) {
      out.detail = "certgate_fetch_issuers stops after " + std::to_string(kMaxFetchedIssuerLevels) +
                   " fetched CA certificates";
      break;
    }
    X509 *top = current.chain.back().get();
    std::vector<std::string> urls = AiaUrls(top, NID_ad_ca_issuers);
    if (urls.size() > kMaxIssuerUrlsPerCert) urls.resize(kMaxIssuerUrlsPerCert);
    if (urls.empty()) {
      out.detail = "certgate_fetch_issuers: " + Subject(top) + " names no caIssuers URL";
      break;
    }
    std::vector<std::shared_ptr<X509>> candidates;
    std::vector<std::string> problems, to_fetch;
    std::string candidates_url;
    bool pending = false;
    {
      Result<RevocationStore::ReadTxn> txn = scheduler.store().Read();
      if (!txn.ok()) {
        out.detail = "certgate_fetch_issuers: " + txn.status().message();
        break;
      }
      for (const std::string &url : urls) {
        if (std::string refusal = UrlRefusal(url, limits); !refusal.empty()) {
          problems.push_back(url + " is not fetched: " + refusal);
        } else if (std::optional<FetchedIssuers> record = txn->GetFetchedIssuers(url)) {
          for (const std::string &der : record->certs_der) {
            std::shared_ptr<X509> cert = FromDer(der);
            if (cert && IsCa(cert.get()) && !Holds(fetched, cert.get())) {
              candidates.push_back(std::move(cert));
              if (candidates_url.empty()) candidates_url = url;
            }
          }
        } else if (scheduler.IsPending(IssuerFetchKey(url))) {
          pending = true;
        } else if (std::optional<UrlState> state = txn->GetUrl(url);
                   state && !state->last_ok && state->backoff_until > now) {
          problems.push_back("fetching " + url + " failed: " + state->last_result);
        } else {
          to_fetch.push_back(url);
        }
      }
    }
    for (const std::string &url : to_fetch) pending |= ScheduleIssuerFetch(scheduler, url, limits);
    if (candidates.empty()) {
      out.pending = pending;
      out.detail = pending ? "certgate_fetch_issuers: its issuer is being fetched from " +
                                 (to_fetch.empty() ? urls.front() : to_fetch.front())
                           : Join(problems);
      break;
    }
    ossl::UniquePtr<STACK_OF(X509)> untrusted(sk_X509_new_null());
    auto add = [&](const std::shared_ptr<X509> &cert) {
      if (untrusted && sk_X509_push(untrusted.get(), cert.get()) > 0) X509_up_ref(cert.get());
    };
    for (size_t i = 1; i < current.chain.size(); ++i) add(current.chain[i]);
    for (const auto &cert : fetched) add(cert);
    for (const auto &cert : candidates) add(cert);
    ChainEvidence next = BuildChainEvidence(evidence.leaf(), untrusted.get(), trust, now);
    if (!next.anchored && next.chain.size() <= current.chain.size()) {
      std::string names;
      for (const auto &cert : candidates)
        names += (names.empty() ? "" : ", ") + Subject(cert.get());
      out.detail = "certgate_fetch_issuers: the CA certificate " + names + " fetched from " +
                   candidates_url + " cannot have issued " + Subject(top);
      break;
    }
    fetched.insert(fetched.end(), candidates.begin(), candidates.end());
    current = std::move(next);
    out.rebuilt = current;
  }
  return out;
}

void NoteIssuerFetch(const IssuerCompletion &completion, bool pending, Decision *decision) {
  std::string note = completion.detail;
  if (completion.pending && !pending)
    note += ", which did not finish within certgate_revocation_wait";
  if (!note.empty()) {
    std::vector<Finding> findings = decision->findings();
    for (Finding &finding : findings) {
      if (finding.reason == CG_REASON_CHAIN_INCOMPLETE) finding.detail += "; " + note;
    }
    decision->SetFindings(std::move(findings));
  }
  decision->SetPending(pending);
}

}  // namespace certgate
