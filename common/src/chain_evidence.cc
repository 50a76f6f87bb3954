#include <certgate/chain_evidence.h>
#include <certgate/ossl_ptr.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <optional>

#include "cert_fields.h"
#include "name_constraints.h"
#include "strict_defects.h"

namespace certgate {
namespace {

// The longest chain OpenSSL is asked to build; certgate_max_depth is applied by
// the evaluator on what was built, whatever the server's verify depth says.
constexpr int kBuildDepth = 32;

int RecordEveryError(int ok, X509_STORE_CTX *ctx) {
  if (!ok) {
    auto *errors =
        static_cast<std::vector<ChainError> *>(X509_STORE_CTX_get_ex_data(ctx, 0 /* app data */));
    if (errors != nullptr) {
      errors->push_back({X509_STORE_CTX_get_error_depth(ctx), X509_STORE_CTX_get_error(ctx)});
    }
  }
  return 1;  // keep going: we want every error, not just the first
}

bool IsTrustError(int code) {
  switch (code) {
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_CERT_REJECTED:
      return true;
    default:
      return false;
  }
}

bool HasTrustError(const ChainEvidence &evidence) {
  return std::any_of(evidence.errors.begin(), evidence.errors.end(),
                     [](const ChainError &error) { return IsTrustError(error.code); });
}

// The chain stops short of any self-signed trust anchor. An explicit verdict
// of the trust settings (a rejected or untrusted anchor) is not that: it must
// never be undone by anchoring lower.
bool FoundNoAnchor(const ChainEvidence &evidence) {
  bool none = false;
  for (const ChainError &error : evidence.errors) {
    switch (error.code) {
      case X509_V_ERR_CERT_REJECTED:
      case X509_V_ERR_CERT_UNTRUSTED:
        return false;
      case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
      case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
      case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
      case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
        none = true;
        break;
      default:
        break;
    }
  }
  return none;
}

std::shared_ptr<X509> Share(X509 *cert) { return ossl::Share(cert); }

bool ValidAt(const CertSummary &cert, int64_t now) {
  return cert.not_before <= now && now <= cert.not_after;
}

// Nothing a different choice of issuers could improve: anchored, no error, no
// CA breaking RFC 5280 (certgate_strict) or name constraints, and every CA
// valid now (the leaf's dates and structure do not depend on the path).
bool Clean(const ChainEvidence &evidence, int64_t now) {
  if (!evidence.internal_error.empty() || !evidence.anchored || !evidence.errors.empty()) {
    return false;
  }
  for (const StrictDefect &defect : evidence.strict_defects) {
    if (defect.depth > 0) return false;
  }
  if (!evidence.name_constraint_findings.empty()) return false;
  for (size_t depth = 1; depth < evidence.summaries.size(); ++depth) {
    if (!ValidAt(evidence.summaries[depth], now)) return false;
  }
  return true;
}

struct VerifyRequest {
  X509 *leaf;
  STACK_OF(X509) * untrusted;
  X509_STORE *trust;
  // When set, the only trust anchors (X509_STORE_CTX_set0_trusted_stack).
  STACK_OF(X509) *trusted_only = nullptr;
  bool partial_chain = false;
};

// One X509_verify_cert, every error recorded.
ChainEvidence Verify(const VerifyRequest &request) {
  ChainEvidence evidence;
  ossl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!ctx || !X509_STORE_CTX_init(ctx.get(), request.trust, request.leaf, request.untrusted)) {
    evidence.internal_error = "cannot set up chain verification";
    evidence.chain.push_back(Share(request.leaf));
    return evidence;
  }
  if (request.trusted_only != nullptr) {
    X509_STORE_CTX_set0_trusted_stack(ctx.get(), request.trusted_only);
  }
  X509_VERIFY_PARAM *param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_NO_CHECK_TIME);
  X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  if (request.partial_chain) {
    X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  } else {
    X509_VERIFY_PARAM_clear_flags(param, X509_V_FLAG_PARTIAL_CHAIN);
  }
  X509_VERIFY_PARAM_set_depth(param, kBuildDepth);
  X509_STORE_CTX_set_verify_cb(ctx.get(), RecordEveryError);
  X509_STORE_CTX_set_ex_data(ctx.get(), 0, &evidence.errors);

  const int verified = X509_verify_cert(ctx.get());
  if (verified < 0 && evidence.errors.empty()) {
    evidence.internal_error = "X509_verify_cert failed before examining the chain";
  }

  STACK_OF(X509) *built = X509_STORE_CTX_get0_chain(ctx.get());
  for (int i = 0; built != nullptr && i < sk_X509_num(built); ++i) {
    evidence.chain.push_back(Share(sk_X509_value(built, i)));
  }
  if (evidence.chain.empty()) evidence.chain.push_back(Share(request.leaf));

  // Anchored: the top of the built chain is a trust anchor. OpenSSL says so by
  // reporting no trust error; other defects (signatures, CA flags) may remain.
  evidence.anchored = !HasTrustError(evidence) && (verified == 1 || !evidence.errors.empty());
  evidence.Summarize();
  return evidence;
}

bool SameChain(const std::vector<std::shared_ptr<X509>> &a,
               const std::vector<std::shared_ptr<X509>> &b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](auto &x, auto &y) {
           return X509_cmp(x.get(), y.get()) == 0;
         });
}

// A depth-first search over the certificates that carry an issuer's name, as
// Go's buildChains and BoringSSL's path builder do: each step checks the
// name/AKID match, the validity at `now` and the signature; a path that ends
// at a trust anchor is handed to OpenSSL alone, which judges it in full.
// Bounded by kMaxIssuerSignatureChecks and kMaxAlternativePaths.
class PathSearch {
 public:
  PathSearch(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *trust, int64_t now,
             bool allow_partial_chain)
      : leaf_(leaf),
        untrusted_(untrusted),
        trust_(trust),
        now_(now),
        allow_partial_chain_(allow_partial_chain),
        lookup_(X509_STORE_CTX_new()) {
    if (lookup_ && !X509_STORE_CTX_init(lookup_.get(), trust_, leaf_, nullptr)) lookup_.reset();
  }

  // A clean chain other than those in `verified`, if one is found in bounds.
  std::optional<ChainEvidence> Find(std::vector<const ChainEvidence *> verified) {
    verified_ = std::move(verified);
    std::vector<Candidate> path{{Share(leaf_), false}};
    Search(path);
    return std::move(found_);
  }

  bool stopped() const { return stopped_; }

  // What else carried the issuer names of `chain`.
  std::vector<UnusedIssuers> Unused(const ChainEvidence &evidence) {
    std::vector<UnusedIssuers> unused;
    const auto &chain = evidence.chain;
    for (size_t depth = 0; depth < chain.size(); ++depth) {
      X509 *cert = chain[depth].get();
      const bool top = depth + 1 == chain.size();
      if (top && (evidence.anchored || X509_self_signed(cert, 0) == 1)) break;
      UnusedIssuers entry;
      entry.depth = static_cast<int>(depth);
      for (const Candidate &candidate : CandidatesFor(cert)) {
        if (X509_cmp(candidate.cert.get(), cert) == 0) continue;
        if (!top && X509_cmp(candidate.cert.get(), chain[depth + 1].get()) == 0) continue;
        ++(candidate.trusted ? entry.trusted : entry.sent);
        const int issued = X509_check_issued(candidate.cert.get(), cert);
        if (issued == X509_V_OK) {
          ++entry.usable;
        } else if (entry.cannot_issue == X509_V_OK) {
          entry.cannot_issue = issued;
        }
      }
      if (entry.usable > 0) entry.cannot_issue = X509_V_OK;
      if (entry.sent + entry.trusted > 0) unused.push_back(entry);
    }
    return unused;
  }

 private:
  struct Candidate {
    std::shared_ptr<X509> cert;
    bool trusted;
  };

  // Certificates named as the issuer of `cert`: the trust store's first, then
  // those the client sent (a sent copy of a trusted one counts as trusted), in
  // their order.
  std::vector<Candidate> CandidatesFor(X509 *cert) {
    std::vector<Candidate> candidates;
    X509_NAME *issuer = X509_get_issuer_name(cert);
    if (lookup_) {
      ossl::UniquePtr<STACK_OF(X509)> trusted(X509_STORE_CTX_get1_certs(lookup_.get(), issuer));
      for (int i = 0; trusted && i < sk_X509_num(trusted.get()); ++i) {
        X509 *known = sk_X509_value(trusted.get(), i);
        candidates.push_back({Share(known), true});
      }
    }
    const auto trusted_end = static_cast<std::ptrdiff_t>(candidates.size());
    for (int i = 0; untrusted_ != nullptr && i < sk_X509_num(untrusted_); ++i) {
      X509 *sent = sk_X509_value(untrusted_, i);
      if (X509_NAME_cmp(X509_get_subject_name(sent), issuer) != 0) continue;
      const bool trusted =
          std::any_of(candidates.begin(), candidates.begin() + trusted_end,
                      [&](const Candidate &c) { return X509_cmp(c.cert.get(), sent) == 0; });
      if (!trusted) candidates.push_back({Share(sent), false});
    }
    return candidates;
  }

  bool ValidNow(X509 *cert) const {
    return Asn1TimeToUnix(X509_get0_notBefore(cert)) <= now_ &&
           now_ <= Asn1TimeToUnix(X509_get0_notAfter(cert));
  }

  // Subject and key already on the path: a loop (cross-certificates), or the
  // same CA twice. Keys compare as their encoded bits (cheap, unlike
  // EVP_PKEY_eq, and this runs for every same-named candidate).
  static bool OnPath(const std::vector<Candidate> &path, X509 *cert) {
    const ASN1_BIT_STRING *key = X509_get0_pubkey_bitstr(cert);
    return std::any_of(path.begin(), path.end(), [&](const Candidate &on) {
      X509 *other = on.cert.get();
      return X509_cmp(other, cert) == 0 ||
             (X509_NAME_cmp(X509_get_subject_name(other), X509_get_subject_name(cert)) == 0 &&
              key != nullptr && ASN1_STRING_cmp(X509_get0_pubkey_bitstr(other), key) == 0);
    });
  }

  // True when found_ is set (stop), false to go on with the next candidate.
  bool Search(std::vector<Candidate> &path) {
    X509 *top = path.back().cert.get();
    if (path.back().trusted && X509_self_signed(top, 0) == 1) return Submit(path, false);
    bool trusted_issuer = false;  // the store has a certificate that may have issued `top`
    if (path.size() <= static_cast<size_t>(kBuildDepth)) {
      for (const Candidate &candidate : CandidatesFor(top)) {
        if (stopped_) return false;
        X509 *issuer = candidate.cert.get();
        if (OnPath(path, issuer) || X509_check_issued(issuer, top) != X509_V_OK) continue;
        trusted_issuer |= candidate.trusted;
        if (!ValidNow(issuer)) continue;  // no path through it could be clean
        if (++signature_checks_ > kMaxIssuerSignatureChecks) {
          stopped_ = true;
          return false;
        }
        EVP_PKEY *key = X509_get0_pubkey(issuer);
        if (key == nullptr || X509_verify(top, key) != 1) continue;
        path.push_back(candidate);
        const bool found = Search(path);
        path.pop_back();
        if (found) return true;
      }
    }
    // No trust anchor above a trusted certificate: it may end the chain when
    // the first build found no anchor at all (as PARTIAL_CHAIN does). With
    // one above, that one's verdict stands.
    if (allow_partial_chain_ && path.back().trusted && !trusted_issuer && !stopped_) {
      return Submit(path, true);
    }
    return false;
  }

  bool Submit(const std::vector<Candidate> &path, bool partial_chain) {
    std::vector<std::shared_ptr<X509>> certs;
    for (const Candidate &c : path) certs.push_back(c.cert);
    for (const ChainEvidence *seen : verified_) {
      if (SameChain(seen->chain, certs)) return false;
    }
    if (++verifications_ > kMaxAlternativePaths) {
      stopped_ = true;
      return false;
    }
    ossl::UniquePtr<STACK_OF(X509)> untrusted(sk_X509_new_null());
    ossl::UniquePtr<STACK_OF(X509)> trusted(sk_X509_new_null());
    if (!untrusted || !trusted) return false;
    for (size_t i = 1; i < path.size(); ++i) {
      STACK_OF(X509) *into = path[i].trusted ? trusted.get() : untrusted.get();
      X509_up_ref(path[i].cert.get());
      if (!sk_X509_push(into, path[i].cert.get())) X509_free(path[i].cert.get());
    }
    ChainEvidence evidence = Verify({leaf_, untrusted.get(), trust_, trusted.get(), partial_chain});
    if (!Clean(evidence, now_)) return false;
    found_ = std::move(evidence);
    return true;
  }

  X509 *leaf_;
  STACK_OF(X509) * untrusted_;
  X509_STORE *trust_;
  const int64_t now_;
  const bool allow_partial_chain_;
  ossl::UniquePtr<X509_STORE_CTX> lookup_;
  std::vector<const ChainEvidence *> verified_;
  std::optional<ChainEvidence> found_;
  int signature_checks_ = 0;
  int verifications_ = 0;
  bool stopped_ = false;
};

ChainEvidence Choose(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *trust, int64_t now) {
  ChainEvidence first = Verify({leaf, untrusted, trust});
  if (!first.internal_error.empty() || Clean(first, now)) return first;

  // OpenSSL ends a chain only at a self-signed anchor; a trusted intermediate
  // whose root is not configured is an anchor too (RFC 5280 6.1: any trust
  // anchor). Only as a fallback: with the root configured the chain must reach
  // it (the intermediate's revocation and certgate_trusted_issuers see it).
  const bool no_anchor = FoundNoAnchor(first);
  std::optional<ChainEvidence> partial;
  if (no_anchor) {
    partial = Verify({leaf, untrusted, trust, nullptr, /*partial_chain=*/true});
    if (!partial->anchored || !partial->internal_error.empty()) {
      partial.reset();
    } else if (Clean(*partial, now)) {
      return std::move(*partial);
    }
  }

  PathSearch search(leaf, untrusted, trust, now, no_anchor);
  std::vector<const ChainEvidence *> verified{&first};
  if (partial) verified.push_back(&*partial);
  if (std::optional<ChainEvidence> found = search.Find(verified)) return std::move(*found);

  ChainEvidence kept = partial ? std::move(*partial) : std::move(first);
  kept.unused_issuers = search.Unused(kept);
  kept.path_search_stopped = search.stopped();
  return kept;
}

}  // namespace

ChainEvidence BuildChainEvidence(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *trust,
                                 int64_t now) {
  ossl::UniquePtr<X509_STORE> empty_store;
  if (trust == nullptr) {
    empty_store.reset(X509_STORE_new());
    trust = empty_store.get();
  }
  if (trust == nullptr) {
    ChainEvidence evidence;
    evidence.internal_error = "cannot set up chain verification";
    evidence.chain.push_back(Share(leaf));
    return evidence;
  }
  ChainEvidence evidence = Choose(leaf, untrusted, trust, now);
  ERR_clear_error();
  return evidence;
}

CertSummary SummarizeCert(X509 *cert) {
  CertSummary summary;
  summary.not_before = Asn1TimeToUnix(X509_get0_notBefore(cert));
  summary.not_after = Asn1TimeToUnix(X509_get0_notAfter(cert));
  summary.extended_key_usage = X509_get_extended_key_usage(cert);
  summary.key_usage = X509_get_key_usage(cert);
  summary.invalid_encoding = (X509_get_extension_flags(cert) & EXFLAG_INVALID) != 0;
  summary.self_issued = X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) == 0;
  if (EVP_PKEY *key = X509_get0_pubkey(cert)) {
    summary.key_bits = EVP_PKEY_get_bits(key);
    // By id, not EVP_PKEY_is_a: each is_a is a name lookup in the provider
    // store, up to six per certificate.
    switch (EVP_PKEY_get_base_id(key)) {
      case EVP_PKEY_RSA:
      case EVP_PKEY_RSA_PSS:
        summary.key_kind = CertSummary::KeyKind::kRsa;
        break;
      case EVP_PKEY_EC:
        summary.key_kind = CertSummary::KeyKind::kEc;
        break;
      case EVP_PKEY_ED25519:
      case EVP_PKEY_ED448:
        summary.key_kind = CertSummary::KeyKind::kEdwards;
        break;
      case EVP_PKEY_DSA:
        summary.key_kind = CertSummary::KeyKind::kDsa;
        break;
      default:
        break;
    }
  }
  int digest_nid = NID_undef;
  int key_nid = NID_undef;
  if (OBJ_find_sigid_algs(X509_get_signature_nid(cert), &digest_nid, &key_nid) &&
      digest_nid != NID_undef) {
    for (const char *c = OBJ_nid2sn(digest_nid); *c != '\0'; ++c) {
      summary.signature_digest.push_back(
          static_cast<char>(std::tolower(static_cast<unsigned char>(*c))));
    }
  }
  return summary;
}

namespace {

template <typename Lazy, typename Decode>
const auto &Once(const Lazy &lazy, Decode decode) {
  std::call_once(lazy.once, [&] { lazy.value = decode(); });
  return lazy.value;
}

}  // namespace

const std::string &LeafSummary::subject() const {
  return Once(subject_, [this] {
    return leaf_ ? NameToString(X509_get_subject_name(leaf_.get())) : std::string();
  });
}

const std::vector<std::pair<int, std::string>> &LeafSummary::subject_entries() const {
  return Once(subject_entries_, [this] {
    std::vector<std::pair<int, std::string>> entries;
    X509_NAME *name = leaf_ ? X509_get_subject_name(leaf_.get()) : nullptr;
    for (int i = 0; name != nullptr && i < X509_NAME_entry_count(name); ++i) {
      const X509_NAME_ENTRY *entry = X509_NAME_get_entry(name, i);
      unsigned char *utf8 = nullptr;
      const int len = ASN1_STRING_to_UTF8(&utf8, X509_NAME_ENTRY_get_data(entry));
      if (len < 0) continue;
      entries.emplace_back(OBJ_obj2nid(X509_NAME_ENTRY_get_object(entry)),
                           std::string(reinterpret_cast<char *>(utf8), len));
      OPENSSL_free(utf8);
    }
    return entries;
  });
}

const std::vector<std::string> &LeafSummary::subject_alt_names() const {
  return Once(subject_alt_names_,
              [this] { return leaf_ ? SubjectAltNames(leaf_.get()) : std::vector<std::string>(); });
}

const std::vector<uint8_t> &LeafSummary::cert_sha256() const {
  return Once(cert_sha256_,
              [this] { return leaf_ ? CertSha256(leaf_.get()) : std::vector<uint8_t>(); });
}

const std::vector<uint8_t> &LeafSummary::spki_sha256() const {
  return Once(spki_sha256_,
              [this] { return leaf_ ? SpkiSha256(leaf_.get()) : std::vector<uint8_t>(); });
}

void ChainEvidence::Summarize() {
  summaries.clear();
  for (const auto &cert : chain) summaries.push_back(SummarizeCert(cert.get()));
  strict_defects = FindStrictDefects(chain, anchored);
  name_constraint_findings = FindNameConstraintViolations(chain);
  leaf_summary_.reset();
}

const LeafSummary &ChainEvidence::leaf_summary() const {
  if (!leaf_summary_) {
    leaf_summary_ = std::make_shared<const LeafSummary>(chain.empty() ? std::shared_ptr<X509>()
                                                                      : chain.front());
  }
  return *leaf_summary_;
}

}  // namespace certgate
