// LDAP URLs of CDPs and AIA caIssuers (RFC 4516), as AD CS writes them:
// ldap:///CN=Corp%20Enterprise%20CA%202(4),CN=CDP,...?certificateRevocationList?base?objectClass=cRLDistributionPoint
//
// They are fetched through libcurl (revocation/fetcher.cc), not libldap
// directly: curl's OpenLDAP backend runs non-blocking in the fetcher's one
// multi handle, so an LDAP server that hangs delays no other fetch, and the
// timeout, size limit, TLS (ldaps) and error paths are the HTTP ones. The
// price is curl's LDIF-like output, decoded here (LdapValueFromReply). The URL
// is parsed here rather than by curl so that an empty host can be filled in
// (certgate_ldap_server) and each server named in errors. Private to
// certgate_core.
#pragma once

#include <certgate/result.h>

#include <string>
#include <vector>

namespace certgate {

// The attributes a CA publishes in its directory entries.
inline constexpr const char *kLdapCrlAttribute = "certificateRevocationList;binary";
inline constexpr const char *kLdapDeltaCrlAttribute = "deltaRevocationList;binary";
inline constexpr const char *kLdapCaCertAttribute = "cACertificate;binary";
inline constexpr const char *kLdapArlAttribute = "authorityRevocationList;binary";

struct LdapUrl {
  bool tls = false;  // ldaps://
  std::string host;  // "" = the client's directory (certgate_ldap_server)
  int port = 0;      // 0 = none in the URL (389, ldaps 636)
  std::string dn;    // percent-decoded
  std::vector<std::string> attributes;
  std::string scope = "base";  // base | one | sub
  std::string filter;          // percent-decoded; "" = (objectClass=*)
};

// Whether `url` is an ldap:// or ldaps:// URL (any case).
bool IsLdapUrl(const std::string &url);

// Parses an ldap:// or ldaps:// URL. Errors say what is wrong ("a bad
// percent escape in the DN", "an unknown scope \"tree\"", ...).
Result<LdapUrl> ParseLdapUrl(const std::string &url);

// The URL for libcurl that asks `server` ("host[:port]", "[v6]:port"; "" =
// the URL's own host) for `url`'s entry: DN and filter percent-encoded again
// (spaces, parentheses, '+' ... as %XX, which OpenLDAP decodes), the URL's
// first attribute or else `default_attribute`.
std::string LdapRequestUrl(const LdapUrl &url, const std::string &server,
                           const std::string &default_attribute);

// "host:port" of where LdapRequestUrl asks (for messages).
std::string LdapServerName(const LdapUrl &url, const std::string &server);

// The host of a "host[:port]" / "[v6][:port]" server spelling, lowercase.
std::string LdapServerHost(const std::string &server);

// Whether `server` is a valid certgate_ldap_server value: host[:port] with a
// host name or IP literal ([v6] with a port) and a port of 1..65535.
bool IsLdapServerSpec(const std::string &server);

// The first value of `attribute` (options such as ";binary" ignored on both
// sides) in what libcurl writes for an LDAP search: "DN: <dn>\n" per entry,
// then "\t<attr>: <text>\n" or "\t<attr>:: <base64>\n" per value. Errors: no
// entry, no such attribute, bad base64.
Result<std::string> LdapValueFromReply(const std::string &reply, const std::string &attribute);

}  // namespace certgate
