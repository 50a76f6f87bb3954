// LDAP CDP / AIA URLs (revocation/ldap_url.h) and curl's LDIF-like reply to
// them. The input is split at NUL bytes into up to four parts:
//   URL \0 certgate_ldap_server value \0 attribute asked for \0 reply
// The URL comes from a certificate and the reply from the network, so neither
// may crash the parser; a URL that parses is rebuilt for curl with the server
// substituted, and that request URL must parse back to the same entry.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_support.h"
#include "revocation/ldap_url.h"

namespace {

std::vector<std::string> SplitParts(const uint8_t *data, size_t size, size_t max_parts) {
  std::vector<std::string> parts(1);
  for (size_t i = 0; i < size; ++i) {
    if (data[i] == '\0' && parts.size() < max_parts) {
      parts.emplace_back();
    } else {
      parts.back().push_back(static_cast<char>(data[i]));
    }
  }
  parts.resize(max_parts);
  return parts;
}

void CheckRequestUrl(const certgate::LdapUrl &url, const std::string &server) {
  using certgate::fuzz::Fail;
  // Only a valid server spelling is ever substituted (the directive is checked).
  const std::string used_server = certgate::IsLdapServerSpec(server) ? server : "";
  const std::string request =
      certgate::LdapRequestUrl(url, used_server, certgate::kLdapCrlAttribute);
  (void)certgate::LdapServerName(url, used_server);
  certgate::Result<certgate::LdapUrl> again = certgate::ParseLdapUrl(request);
  if (!again.ok()) Fail("request URL " + request + " does not parse: " + again.status().message());
  if (again->dn != url.dn) Fail("request URL changed the DN: " + request);
  if (again->scope != url.scope) Fail("request URL changed the scope: " + request);
  if (again->filter != (url.filter.empty() ? "(objectClass=*)" : url.filter)) {
    Fail("request URL changed the filter: " + request);
  }
  const std::string attribute =
      url.attributes.empty() ? certgate::kLdapCrlAttribute : url.attributes[0];
  if (again->attributes.size() != 1 || again->attributes[0] != attribute) {
    Fail("request URL changed the attribute: " + request);
  }
  if (again->tls != url.tls) Fail("request URL changed the scheme: " + request);
  const std::string host = used_server.empty() ? url.host : certgate::LdapServerHost(used_server);
  if (again->host != host) Fail("request URL asks another host: " + request);
  if (again->port < 1 || again->port > 65535) Fail("request URL without a port: " + request);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  using certgate::fuzz::Fail;
  const std::vector<std::string> parts = SplitParts(data, size, 4);
  const std::string &url_text = parts[0], &server = parts[1], &attribute = parts[2],
                    &reply = parts[3];

  (void)certgate::IsLdapUrl(url_text);
  certgate::Result<certgate::LdapUrl> url = certgate::ParseLdapUrl(url_text);
  if (url.ok()) {
    if (!certgate::IsLdapUrl(url_text)) Fail("parsed a URL IsLdapUrl refuses");
    if (url->port < 0 || url->port > 65535) Fail("a port out of range");
    CheckRequestUrl(url.value(), server);
  } else if (url.status().message().empty()) {
    Fail("a URL refused without saying why");
  }
  (void)certgate::LdapServerHost(server);

  for (const std::string &wanted : {attribute, std::string(certgate::kLdapCrlAttribute),
                                    std::string(certgate::kLdapCaCertAttribute)}) {
    certgate::Result<std::string> value = certgate::LdapValueFromReply(reply, wanted);
    if (value.ok()) {
      if (value->size() > reply.size()) Fail("a value longer than the reply");
    } else if (value.status().message().empty()) {
      Fail("a reply refused without saying why");
    }
  }
  return 0;
}
