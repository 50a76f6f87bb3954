#include "name_constraints.h"

#include <arpa/inet.h>
#include <certgate/ossl_ptr.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include "cert_fields.h"
#include "chain_wording.h"

namespace certgate {
namespace {

// A name quoted in a detail is cut here: the detail names it, the log keeps it short.
constexpr size_t kMaxShownName = 80;
// Subtrees listed in a detail before "and N more".
constexpr int kMaxListedSubtrees = 4;
// Names tried one by one to find the one OpenSSL refused; past this the detail
// says only that one of them is outside the subtrees.
constexpr int kMaxExplainedNames = 1024;

std::string Shown(std::string text) {
  if (text.size() > kMaxShownName) text = text.substr(0, kMaxShownName) + "...";
  return text;
}

std::string_view View(const ASN1_STRING *value) {
  return {reinterpret_cast<const char *>(ASN1_STRING_get0_data(value)),
          static_cast<size_t>(std::max(ASN1_STRING_length(value), 0))};
}

std::string TheCa(const std::vector<std::shared_ptr<X509>> &chain, size_t depth) {
  return "the CA " + Quoted(NameToString(X509_get_subject_name(chain[depth].get()))) +
         " at depth " + std::to_string(depth);
}

const char *TypeName(int type) {
  switch (type) {
    case GEN_EMAIL:
      return "email";
    case GEN_DNS:
      return "DNS";
    case GEN_URI:
      return "URI";
    case GEN_IPADD:
      return "IP";
    case GEN_DIRNAME:
      return "directory name";
    default:
      return "otherName";
  }
}

// A subtree's base as the CA wrote it: "example.com", "10.0.0.0/255.0.0.0".
std::string BaseText(const GENERAL_NAME *base) {
  switch (base->type) {
    case GEN_EMAIL:
    case GEN_DNS:
    case GEN_URI:
      return Shown(std::string(View(base->d.ia5)));
    case GEN_IPADD: {
      const ASN1_OCTET_STRING *ip = base->d.iPAddress;
      const int half = ip->length / 2;
      const int family = half == 4 ? AF_INET : half == 16 ? AF_INET6 : -1;
      char address[INET6_ADDRSTRLEN] = {};
      char mask[INET6_ADDRSTRLEN] = {};
      if (family < 0 || inet_ntop(family, ip->data, address, sizeof address) == nullptr ||
          inet_ntop(family, ip->data + half, mask, sizeof mask) == nullptr) {
        return "(an IP subtree of " + std::to_string(ip->length) + " octets)";
      }
      return std::string(address) + "/" + mask;
    }
    case GEN_DIRNAME:
      return Quoted(Shown(NameToString(base->d.directoryName)));
    default:
      return "(an otherName subtree)";
  }
}

// The type a name is compared as: an SmtpUTF8Mailbox otherName is an email name
// to OpenSSL (RFC 8398).
int EffectiveType(const GENERAL_NAME *name) {
  if (name->type == GEN_OTHERNAME &&
      OBJ_obj2nid(name->d.otherName->type_id) == NID_id_on_SmtpUTF8Mailbox) {
    return GEN_EMAIL;
  }
  return name->type;
}

int Count(const STACK_OF(GENERAL_SUBTREE) * subtrees) {
  return std::max(sk_GENERAL_SUBTREE_num(subtrees), 0);
}

// Every certificate's nameConstraints, decoded once (null where none).
struct ChainConstraints {
  explicit ChainConstraints(const std::vector<std::shared_ptr<X509>> &chain)
      : by_depth(chain.size()), types_above(chain.size(), 0) {
    // Only a CA's constraints apply, to the certificates below it.
    for (size_t depth = chain.size(); depth-- > 1;) {
      X509 *cert = chain[depth].get();
      if (X509_get_ext_by_NID(cert, NID_name_constraints, -1) >= 0) {
        by_depth[depth].reset(static_cast<NAME_CONSTRAINTS *>(
            X509_get_ext_d2i(cert, NID_name_constraints, nullptr, nullptr)));
      }
      uint32_t types = 0;
      if (const NAME_CONSTRAINTS *nc = by_depth[depth].get()) {
        any = true;
        for (const STACK_OF(GENERAL_SUBTREE) * subtrees :
             {nc->permittedSubtrees, nc->excludedSubtrees}) {
          for (int i = 0; i < Count(subtrees); ++i) {
            types |= 1u << (sk_GENERAL_SUBTREE_value(subtrees, i)->base->type & 31);
          }
        }
      }
      types_above[depth - 1] = types_above[depth] | types;
    }
  }

  // Whether the constraints above `depth` have a subtree of `type`.
  bool Constrains(size_t depth, int type) const { return (types_above[depth] >> type) & 1u; }

  // The nearest CA above `depth` with a subtree of `type`.
  size_t NearestWith(size_t depth, int type) const {
    for (size_t above = depth + 1; above < by_depth.size(); ++above) {
      const NAME_CONSTRAINTS *nc = by_depth[above].get();
      if (nc == nullptr) continue;
      for (const STACK_OF(GENERAL_SUBTREE) * subtrees :
           {nc->permittedSubtrees, nc->excludedSubtrees}) {
        for (int i = 0; i < Count(subtrees); ++i) {
          if (sk_GENERAL_SUBTREE_value(subtrees, i)->base->type == type) return above;
        }
      }
    }
    return depth + 1;
  }

  std::vector<ossl::UniquePtr<NAME_CONSTRAINTS>> by_depth;
  std::vector<uint32_t> types_above;  // bit GEN_* set: some CA above has such a subtree
  bool any = false;
};

// Most chains have no nameConstraints: they cost one extension lookup per CA.
bool AnyNameConstraints(const std::vector<std::shared_ptr<X509>> &chain) {
  for (size_t depth = 1; depth < chain.size(); ++depth) {
    if (X509_get_ext_by_NID(chain[depth].get(), NID_name_constraints, -1) >= 0) return true;
  }
  return false;
}

// Whether OpenSSL holds `cert` to the constraints of the CAs above it: the leaf
// always, a CA certificate unless it is self-issued (RFC 5280 §6.1.4 (b)).
bool Constrained(X509 *cert, size_t depth) {
  return depth == 0 || (X509_get_extension_flags(cert) & EXFLAG_SI) == 0;
}

ossl::UniquePtr<GENERAL_NAMES> AltNames(X509 *cert) {
  return ossl::UniquePtr<GENERAL_NAMES>(
      static_cast<GENERAL_NAMES *>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
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

// A scratch certificate holding one name, to ask OpenSSL's own matcher about
// that name alone: the subject when `name` is null, else only `name`.
ossl::UniquePtr<X509> Scratch(X509 *cert, const GENERAL_NAME *name) {
  ossl::UniquePtr<X509> scratch(X509_new());
  if (!scratch) return nullptr;
  if (name == nullptr) {
    if (X509_set_subject_name(scratch.get(), X509_get_subject_name(cert)) != 1) return nullptr;
  } else {
    ossl::UniquePtr<GENERAL_NAMES> names(sk_GENERAL_NAME_new_null());
    GENERAL_NAME *copy = GENERAL_NAME_dup(name);
    if (!names || copy == nullptr || sk_GENERAL_NAME_push(names.get(), copy) <= 0) {
      GENERAL_NAME_free(copy);
      return nullptr;
    }
    if (X509_add1_ext_i2d(scratch.get(), NID_subject_alt_name, names.get(), 0,
                          X509V3_ADD_DEFAULT) != 1) {
      return nullptr;
    }
  }
  X509_get_extension_flags(scratch.get());  // decodes the SAN for NAME_CONSTRAINTS_check
  return scratch;
}

// A NAME_CONSTRAINTS that borrows some of another's subtrees, to ask which of
// them a name breaks. Frees only its own stacks.
class SubtreeProbe {
 public:
  SubtreeProbe() {
    nc_.permittedSubtrees = sk_GENERAL_SUBTREE_new_null();
    nc_.excludedSubtrees = sk_GENERAL_SUBTREE_new_null();
  }
  ~SubtreeProbe() {
    sk_GENERAL_SUBTREE_free(nc_.permittedSubtrees);
    sk_GENERAL_SUBTREE_free(nc_.excludedSubtrees);
  }
  SubtreeProbe(const SubtreeProbe &) = delete;
  SubtreeProbe &operator=(const SubtreeProbe &) = delete;

  bool ok() const { return nc_.permittedSubtrees != nullptr && nc_.excludedSubtrees != nullptr; }
  // Only the subtrees of `type` from `from`'s permitted (or excluded) list.
  void Borrow(const STACK_OF(GENERAL_SUBTREE) * from, bool excluded, int type) {
    for (int i = 0; i < Count(from); ++i) {
      GENERAL_SUBTREE *subtree = sk_GENERAL_SUBTREE_value(from, i);
      if (subtree->base->type == type) Add(subtree, excluded);
    }
  }
  void Add(GENERAL_SUBTREE *subtree, bool excluded) {
    sk_GENERAL_SUBTREE_push(excluded ? nc_.excludedSubtrees : nc_.permittedSubtrees, subtree);
  }
  NAME_CONSTRAINTS *get() { return &nc_; }

 private:
  NAME_CONSTRAINTS nc_{};
};

// OpenSSL's check of `cert` (at `depth`) against one CA's constraints, as
// X509_verify_cert makes it: the leaf's CN counts as a DNS name when the leaf
// has no DNS subjectAltName.
int OpenSslCheck(X509 *cert, size_t depth, NAME_CONSTRAINTS *nc, bool has_dns_san) {
  int result = NAME_CONSTRAINTS_check(cert, nc);
  if (result == X509_V_OK && depth == 0 && !has_dns_san) {
    result = NAME_CONSTRAINTS_check_CN(cert, nc);
  }
  return result;
}

bool HasDnsName(const GENERAL_NAMES *names) {
  for (int i = 0; i < std::max(sk_GENERAL_NAME_num(names), 0); ++i) {
    if (sk_GENERAL_NAME_value(names, i)->type == GEN_DNS) return true;
  }
  return false;
}

// The subtrees of `type` listed for a detail: "(example.com, .example.org)".
std::string ListSubtrees(const STACK_OF(GENERAL_SUBTREE) * subtrees, int type) {
  std::string list;
  int listed = 0, more = 0;
  for (int i = 0; i < Count(subtrees); ++i) {
    const GENERAL_NAME *base = sk_GENERAL_SUBTREE_value(subtrees, i)->base;
    if (base->type != type) continue;
    if (listed == kMaxListedSubtrees) {
      ++more;
      continue;
    }
    list += (listed++ == 0 ? "" : ", ") + BaseText(base);
  }
  if (more > 0) list += " and " + std::to_string(more) + " more";
  return "(" + list + ")";
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

NameConstraintExplanation ExplainNameConstraintViolation(
    const std::vector<std::shared_ptr<X509>> &chain, int depth_in, int x509_error) {
  NameConstraintExplanation none;
  const bool excluded = x509_error == X509_V_ERR_EXCLUDED_VIOLATION;
  if ((!excluded && x509_error != X509_V_ERR_PERMITTED_VIOLATION) || depth_in < 0 ||
      static_cast<size_t>(depth_in) + 1 >= chain.size()) {
    return none;
  }
  const size_t depth = static_cast<size_t>(depth_in);
  X509 *cert = chain[depth].get();
  const ChainConstraints constraints(chain);
  const ossl::UniquePtr<GENERAL_NAMES> names = AltNames(cert);
  const bool has_dns_san = HasDnsName(names.get());
  const int name_count = std::max(sk_GENERAL_NAME_num(names.get()), 0);

  // The CA: OpenSSL checks from the top of the chain down.
  size_t ca = 0;
  for (size_t above = chain.size() - 1; above > depth && ca == 0; --above) {
    NAME_CONSTRAINTS *nc = constraints.by_depth[above].get();
    if (nc != nullptr && OpenSslCheck(cert, depth, nc, has_dns_san) == x509_error) ca = above;
  }
  if (ca == 0) return none;
  NAME_CONSTRAINTS *nc = constraints.by_depth[ca].get();

  // The name: each alone, as OpenSSL saw it; then the subject; then the CN.
  std::string shown;
  int type = -1;
  ossl::UniquePtr<X509> culprit;
  bool by_cn = false;
  for (int i = 0; i < std::min(name_count, kMaxExplainedNames) && type < 0; ++i) {
    const GENERAL_NAME *name = sk_GENERAL_NAME_value(names.get(), i);
    ossl::UniquePtr<X509> scratch = Scratch(cert, name);
    if (scratch && NAME_CONSTRAINTS_check(scratch.get(), nc) == x509_error) {
      shown = Shown(GeneralNameToString(name));
      type = EffectiveType(name);
      culprit = std::move(scratch);
    }
  }
  if (type < 0) {
    ossl::UniquePtr<X509> scratch = Scratch(cert, nullptr);
    if (scratch && NAME_CONSTRAINTS_check(scratch.get(), nc) == x509_error) {
      // A directory name subtree, or an email one against the subject's emailAddress.
      SubtreeProbe dirname;
      dirname.Borrow(nc->permittedSubtrees, false, GEN_DIRNAME);
      dirname.Borrow(nc->excludedSubtrees, true, GEN_DIRNAME);
      const bool by_dirname =
          dirname.ok() && NAME_CONSTRAINTS_check(scratch.get(), dirname.get()) == x509_error;
      type = by_dirname ? GEN_DIRNAME : GEN_EMAIL;
      shown = by_dirname ? "its subject" : "an emailAddress in its subject";
      culprit = std::move(scratch);
    }
  }
  if (type < 0 && depth == 0 && !has_dns_san && NAME_CONSTRAINTS_check_CN(cert, nc) == x509_error) {
    type = GEN_DNS;
    shown = "a commonName that reads as a DNS name (it has no DNS subjectAltName)";
    by_cn = true;
  }
  if (type < 0) return none;

  auto breaks = [&](NAME_CONSTRAINTS *probe) {
    return by_cn ? NAME_CONSTRAINTS_check_CN(cert, probe) == x509_error
                 : NAME_CONSTRAINTS_check(culprit.get(), probe) == x509_error;
  };
  NameConstraintExplanation explanation;
  const std::string ca_text = TheCa(chain, ca);
  if (!excluded) {
    const int listed = [&] {
      int count = 0;
      for (int i = 0; i < Count(nc->permittedSubtrees); ++i) {
        count += sk_GENERAL_SUBTREE_value(nc->permittedSubtrees, i)->base->type == type;
      }
      return count;
    }();
    explanation.fact = "has " + shown + ", outside the permitted " + TypeName(type) +
                       (listed == 1 ? " subtree " : " subtrees ") +
                       ListSubtrees(nc->permittedSubtrees, type) + " of " + ca_text;
    explanation.hint = "issue the certificate only with names inside the permitted subtrees of " +
                       ca_text + ", or from a CA whose name constraints allow this name";
    return explanation;
  }
  std::string subtree;
  for (int i = 0; i < Count(nc->excludedSubtrees) && subtree.empty(); ++i) {
    GENERAL_SUBTREE *candidate = sk_GENERAL_SUBTREE_value(nc->excludedSubtrees, i);
    if (candidate->base->type != type) continue;
    SubtreeProbe probe;
    probe.Add(candidate, true);
    if (probe.ok() && breaks(probe.get())) subtree = BaseText(candidate->base);
  }
  explanation.fact =
      "has " + shown + ", inside the excluded " + TypeName(type) + " subtree" +
      (subtree.empty() ? "s " + ListSubtrees(nc->excludedSubtrees, type) : " " + subtree) + " of " +
      ca_text;
  explanation.hint = "issue the certificate without names in the excluded subtrees of " + ca_text;
  return explanation;
}

}  // namespace certgate
