// The walk over a chain's name constraints: what OpenSSL lets pass (strict
// defects, wildcard violations, the comparison bound). Explaining OpenSSL's own
// refusals is name_constraints_explain.cc.
#include "name_constraints.h"

#include <certgate/ossl_ptr.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>

#include "cert_fields.h"
#include "name_constraints_chain.h"

namespace certgate {
namespace {

using name_constraints::AltNames;
using name_constraints::BaseText;
using name_constraints::ChainConstraints;
using name_constraints::Constrained;
using name_constraints::Count;
using name_constraints::Shown;
using name_constraints::TheCa;
using name_constraints::View;

// Most chains have no nameConstraints: they cost one extension lookup per CA.
bool AnyNameConstraints(const std::vector<std::shared_ptr<X509>> &chain) {
  for (size_t depth = 1; depth < chain.size(); ++depth) {
    if (X509_get_ext_by_NID(chain[depth].get(), NID_name_constraints, -1) >= 0) return true;
  }
  return false;
}

int NameCount(X509 *cert, const GENERAL_NAMES *alt_names) {
  return X509_NAME_entry_count(X509_get_subject_name(cert)) +
         std::max(sk_GENERAL_NAME_num(alt_names), 0);
}

// DER: the length at `*at` (short or long form, up to 4 octets); false if cut.
bool ReadLength(const unsigned char *der, size_t size, size_t *at, size_t *length) {
  if (*at >= size) return false;
  const unsigned char first = der[(*at)++];
  if (first < 0x80) {
    *length = first;
  } else {
    const int octets = first & 0x7f;
    if (octets == 0 || octets > 4 || size - *at < static_cast<size_t>(octets)) return false;
    *length = 0;
    for (int i = 0; i < octets; ++i) *length = (*length << 8) | der[(*at)++];
  }
  return *length <= size - *at;
}

// What the DER of a nameConstraints holds: OpenSSL's decoder cannot say whether
// a GeneralSubtrees was absent or an empty SEQUENCE, so the octets are read.
struct SubtreeFields {
  int present = 0;  // [0] permittedSubtrees and [1] excludedSubtrees found
  int empty = 0;    // of those, empty sequences
  bool parsed = false;
};

SubtreeFields ReadSubtreeFields(const ASN1_OCTET_STRING *value) {
  SubtreeFields fields;
  const unsigned char *der = ASN1_STRING_get0_data(value);
  const size_t size = static_cast<size_t>(std::max(ASN1_STRING_length(value), 0));
  size_t at = 0, length = 0;
  if (size == 0 || der[at++] != 0x30 || !ReadLength(der, size, &at, &length)) return fields;
  const size_t end = at + length;
  while (at < end) {
    const unsigned char tag = der[at++];
    if (!ReadLength(der, end, &at, &length)) return fields;
    if (tag == 0xa0 || tag == 0xa1) {
      ++fields.present;
      if (length == 0) ++fields.empty;
    }
    at += length;
  }
  fields.parsed = true;
  return fields;
}

// Whether a one-label wildcard pattern ("*", "w*") matches `label`, ignoring case.
bool WildcardLabelMatches(std::string_view pattern, std::string_view label) {
  const size_t star = pattern.find('*');
  const std::string_view head = pattern.substr(0, star);
  const std::string_view tail = pattern.substr(star + 1);
  auto equal = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) ==
                    std::tolower(static_cast<unsigned char>(y));
           });
  };
  if (tail.find('*') != std::string_view::npos) return false;  // one star only
  return label.size() >= head.size() + tail.size() && !label.empty() &&
         equal(label.substr(0, head.size()), head) &&
         equal(label.substr(label.size() - tail.size()), tail);
}

// Whether the wildcard DNS name `name` ("*.example.com") stands for a name in
// the subtree `base` that OpenSSL's text comparison misses: a base one label
// longer than the wildcard's domain ("foo.example.com"). Bases that cover the
// whole domain ("example.com", ".example.com") OpenSSL matches itself.
bool WildcardCovers(std::string_view name, std::string_view base) {
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || base.empty() || base.front() == '.') return false;
  const std::string_view pattern = name.substr(0, dot);
  const std::string_view domain = name.substr(dot);  // ".example.com"
  if (pattern.find('*') == std::string_view::npos || base.size() <= domain.size()) return false;
  const std::string_view label = base.substr(0, base.size() - domain.size());
  const std::string_view base_domain = base.substr(label.size());
  if (label.find('.') != std::string_view::npos) return false;
  return std::equal(domain.begin(), domain.end(), base_domain.begin(),
                    [](char x, char y) {
                      return std::tolower(static_cast<unsigned char>(x)) ==
                             std::tolower(static_cast<unsigned char>(y));
                    }) &&
         WildcardLabelMatches(pattern, label);
}

}  // namespace

void FindNameConstraintDefects(const std::vector<std::shared_ptr<X509>> &chain,
                               std::vector<StrictDefect> *out) {
  for (size_t depth = 0; depth < chain.size(); ++depth) {
    X509 *cert = chain[depth].get();
    const int index = X509_get_ext_by_NID(cert, NID_name_constraints, -1);
    if (index < 0) continue;
    const SubtreeFields fields =
        ReadSubtreeFields(X509_EXTENSION_get_data(X509_get_ext(cert, index)));
    if (!fields.parsed || (fields.present > 0 && fields.empty == 0)) continue;
    out->push_back({static_cast<int>(depth), &StrictCheckNamed("nc_empty"),
                    fields.present == 0
                        ? "has a nameConstraints with neither permittedSubtrees nor "
                          "excludedSubtrees; RFC 5280 section 4.2.1.10 requires one of them"
                        : "has a nameConstraints with an empty list of subtrees; RFC 5280 "
                          "section 4.2.1.10 requires at least one subtree in each list present",
                    "have the CA certificate re-issued with the subtrees it is meant to be "
                    "constrained to, or without nameConstraints"});
  }

  if (!AnyNameConstraints(chain)) return;
  const ChainConstraints constraints(chain);
  if (!constraints.any) return;
  for (size_t depth = 0; depth + 1 < chain.size(); ++depth) {
    X509 *cert = chain[depth].get();
    const bool email = constraints.Constrains(depth, GEN_EMAIL);
    const bool dns = constraints.Constrains(depth, GEN_DNS);
    if ((!email && !dns) || !Constrained(cert, depth)) continue;

    std::string first_email, first_dns;
    int bad_emails = 0, bad_dns = 0;
    const ossl::UniquePtr<GENERAL_NAMES> names = AltNames(cert);
    for (int i = 0; i < std::max(sk_GENERAL_NAME_num(names.get()), 0); ++i) {
      const GENERAL_NAME *name = sk_GENERAL_NAME_value(names.get(), i);
      if (email && name->type == GEN_EMAIL && !IsMailbox(View(name->d.rfc822Name))) {
        if (bad_emails++ == 0) first_email = Shown(GeneralNameToString(name));
      } else if (dns && name->type == GEN_DNS && !IsHostname(View(name->d.dNSName), true)) {
        if (bad_dns++ == 0) first_dns = Shown(GeneralNameToString(name));
      }
    }
    if (email) {
      // OpenSSL compares the subject's emailAddress with email subtrees too.
      X509_NAME *subject = X509_get_subject_name(cert);
      for (int i = -1; (i = X509_NAME_get_index_by_NID(subject, NID_pkcs9_emailAddress, i)) >= 0;) {
        const ASN1_STRING *value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, i));
        if (!IsMailbox(View(value)) && bad_emails++ == 0) {
          first_email = "emailAddress=" + Shown(std::string(View(value))) + " in its subject";
        }
      }
    }
    auto more = [](int count) {
      return count > 1 ? " (and " + std::to_string(count - 1) + " more such names)" : "";
    };
    if (bad_emails > 0) {
      out->push_back({static_cast<int>(depth), &StrictCheckNamed("nc_invalid_email_san"),
                      "has " + first_email +
                          ", which is not a mailbox (local-part@domain, RFC 5280 section 4.2.1.6), "
                          "under the email name constraints of " +
                          TheCa(chain, constraints.NearestWith(depth, GEN_EMAIL)) +
                          more(bad_emails),
                      "have the CA re-issue the certificate with email addresses of the form "
                      "local-part@domain"});
    }
    if (bad_dns > 0) {
      out->push_back(
          {static_cast<int>(depth), &StrictCheckNamed("nc_invalid_dns_san"),
           "has " + first_dns +
               ", which is not a hostname (dot-separated labels of letters, digits and "
               "hyphens, a wildcard only as the whole leftmost label; RFC 5280 section 4.2.1.6), "
               "under the DNS name constraints of " +
               TheCa(chain, constraints.NearestWith(depth, GEN_DNS)) + more(bad_dns),
           "have the CA re-issue the certificate with well-formed DNS names"});
    }
  }
}

std::vector<NameConstraintFinding> FindNameConstraintViolations(
    const std::vector<std::shared_ptr<X509>> &chain) {
  std::vector<NameConstraintFinding> findings;
  if (!AnyNameConstraints(chain)) return findings;
  const ChainConstraints constraints(chain);
  if (!constraints.any) return findings;
  uint64_t comparisons = 0;  // certgate's own, over the whole chain
  auto too_complex = [&](size_t depth, std::string fact) {
    findings.push_back({CG_REASON_CHAIN_TOO_COMPLEX, static_cast<int>(depth), std::move(fact),
                        "issue client certificates with fewer names, and CAs with fewer name "
                        "constraints"});
    return findings;
  };
  const std::string limit = std::to_string(kNameConstraintBudget);
  for (size_t depth = 0; depth + 1 < chain.size(); ++depth) {
    X509 *cert = chain[depth].get();
    if (!Constrained(cert, depth)) continue;
    const ossl::UniquePtr<GENERAL_NAMES> names = AltNames(cert);
    const uint64_t name_count = static_cast<uint64_t>(NameCount(cert, names.get()));
    // OpenSSL's own bound, applied as it applies it: every pair of this
    // certificate and a constraining CA above it.
    for (size_t above = depth + 1; above < chain.size(); ++above) {
      const NAME_CONSTRAINTS *nc = constraints.by_depth[above].get();
      if (nc == nullptr) continue;
      const uint64_t subtrees =
          static_cast<uint64_t>(Count(nc->permittedSubtrees) + Count(nc->excludedSubtrees));
      if (name_count > 0 && subtrees > kNameConstraintBudget / name_count) {
        return too_complex(
            depth, "has " + std::to_string(name_count) + " names and " + TheCa(chain, above) +
                       " has " + std::to_string(subtrees) + " name constraints: " +
                       std::to_string(name_count * subtrees) + " comparisons, more than the " +
                       limit + " certgate (like OpenSSL) makes for one certificate");
      }
    }
    if (!constraints.Constrains(depth, GEN_DNS)) continue;
    bool found = false;
    for (int i = 0; i < std::max(sk_GENERAL_NAME_num(names.get()), 0) && !found; ++i) {
      const GENERAL_NAME *name = sk_GENERAL_NAME_value(names.get(), i);
      if (name->type != GEN_DNS) continue;
      const std::string_view dns = View(name->d.dNSName);
      const size_t dot = dns.find('.');
      if (dns.substr(0, dot).find('*') == std::string_view::npos) continue;
      for (size_t above = depth + 1; above < chain.size() && !found; ++above) {
        const NAME_CONSTRAINTS *nc = constraints.by_depth[above].get();
        if (nc == nullptr) continue;
        for (int k = 0; k < Count(nc->excludedSubtrees) && !found; ++k) {
          if (++comparisons > kNameConstraintBudget) {
            return too_complex(depth,
                               "has more wildcard DNS names than certgate compares with "
                               "the excluded subtrees above it (" +
                                   limit + " comparisons for the chain)");
          }
          const GENERAL_NAME *base = sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, k)->base;
          if (base->type != GEN_DNS || !WildcardCovers(dns, View(base->d.dNSName))) continue;
          findings.push_back(
              {CG_REASON_INVALID_CA, static_cast<int>(depth),
               "has " + Shown(GeneralNameToString(name)) + ", a wildcard that stands for " +
                   Shown(std::string(View(base->d.dNSName))) +
                   ", inside the excluded DNS subtree " + BaseText(base) + " of " +
                   TheCa(chain, above),
               "have the CA re-issue the certificate without the wildcard, or with names "
               "outside the excluded subtrees of its CA"});
          found = true;
        }
      }
    }
  }
  return findings;
}

}  // namespace certgate
