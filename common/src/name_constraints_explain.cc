// Which name of a certificate breaks which CA's subtree, for a refusal
// OpenSSL made (X509_V_ERR_PERMITTED_VIOLATION, X509_V_ERR_EXCLUDED_VIOLATION):
// each name is put alone in a scratch certificate and checked by OpenSSL's own
// matcher, so the explanation never disagrees with the refusal.
#include <certgate/ossl_ptr.h>
#include <openssl/x509v3.h>

#include <algorithm>

#include "cert_fields.h"
#include "name_constraints.h"
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

// Subtrees listed in a detail before "and N more".
constexpr int kMaxListedSubtrees = 4;
// Names tried one by one to find the one OpenSSL refused; past this the detail
// says only that one of them is outside the subtrees.
constexpr int kMaxExplainedNames = 1024;

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

// The type a name is compared as: an SmtpUTF8Mailbox otherName is an email name
// to OpenSSL (RFC 8398).
int EffectiveType(const GENERAL_NAME *name) {
  if (name->type == GEN_OTHERNAME &&
      OBJ_obj2nid(name->d.otherName->type_id) == NID_id_on_SmtpUTF8Mailbox) {
    return GEN_EMAIL;
  }
  return name->type;
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

}  // namespace

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
