#include "name_constraints_chain.h"

#include <arpa/inet.h>

#include <algorithm>

#include "cert_fields.h"
#include "chain_wording.h"

namespace certgate::name_constraints {

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

ossl::UniquePtr<GENERAL_NAMES> AltNames(X509 *cert) {
  return ossl::UniquePtr<GENERAL_NAMES>(
      static_cast<GENERAL_NAMES *>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr)));
}

ChainConstraints::ChainConstraints(const std::vector<std::shared_ptr<X509>> &chain)
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

size_t ChainConstraints::NearestWith(size_t depth, int type) const {
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

}  // namespace certgate::name_constraints
