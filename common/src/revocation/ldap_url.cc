#include "revocation/ldap_url.h"

#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "percent_decode.h"

namespace certgate {

namespace {

std::string Lower(std::string s) {
  for (char &c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}

// Everything but unreserved characters and the DN/filter punctuation '=' and
// ',' as %XX: curl passes the URL on as is and OpenLDAP decodes it.
std::string PercentEncode(const std::string &in) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : in) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~' || c == '=' || c == ',') {
      out.push_back(c);
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

std::vector<std::string> Split(const std::string &s, char sep) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t at = s.find(sep, start);
    parts.push_back(s.substr(start, at == std::string::npos ? std::string::npos : at - start));
    if (at == std::string::npos) return parts;
    start = at + 1;
  }
}

bool IsHostName(const std::string &host) {
  if (host.empty()) return false;
  for (char c : host) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (!isalnum(u) && c != '-' && c != '.' && c != '_') return false;
  }
  return true;
}

bool IsV6(const std::string &host) {
  if (host.empty()) return false;
  for (char c : host) {
    if (!isxdigit(static_cast<unsigned char>(c)) && c != ':' && c != '.') return false;
  }
  return host.find(':') != std::string::npos;
}

// Splits "host[:port]" / "[v6][:port]"; false when malformed.
bool SplitHostPort(const std::string &authority, std::string *host, int *port) {
  *port = 0;
  std::string rest;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string::npos) return false;
    *host = authority.substr(1, close - 1);
    if (!IsV6(*host)) return false;
    rest = authority.substr(close + 1);
  } else {
    const size_t colon = authority.find(':');
    *host = authority.substr(0, colon);
    if (colon != std::string::npos) rest = authority.substr(colon);
    if (!host->empty() && !IsHostName(*host)) return false;
  }
  if (rest.empty()) return true;
  if (rest[0] != ':' || rest.size() < 2 || rest.size() > 6) return false;
  for (size_t i = 1; i < rest.size(); ++i) {
    if (!isdigit(static_cast<unsigned char>(rest[i]))) return false;
  }
  *port = atoi(rest.c_str() + 1);
  return *port >= 1 && *port <= 65535;
}

std::string BaseName(const std::string &attribute) {
  return Lower(attribute.substr(0, attribute.find(';')));
}

}  // namespace

bool IsLdapUrl(const std::string &url) {
  const std::string head = Lower(url.substr(0, 8));
  return head.rfind("ldap://", 0) == 0 || head.rfind("ldaps://", 0) == 0;
}

Result<LdapUrl> ParseLdapUrl(const std::string &url) {
  LdapUrl out;
  const std::string head = Lower(url.substr(0, 8));
  size_t at = 0;
  if (head.rfind("ldaps://", 0) == 0) {
    out.tls = true;
    at = 8;
  } else if (head.rfind("ldap://", 0) == 0) {
    at = 7;
  } else {
    return Status::Error("not an ldap:// or ldaps:// URL");
  }
  if (url.find_first_of(" \t\r\n#") != std::string::npos) {
    return Status::Error("a space or '#' in the URL (they must be percent-encoded)");
  }
  const size_t slash = url.find('/', at);
  const size_t query = url.find('?', at);
  const size_t host_end = std::min(slash, query);
  const std::string authority =
      url.substr(at, host_end == std::string::npos ? std::string::npos : host_end - at);
  if (authority.find('@') != std::string::npos) return Status::Error("credentials in the URL");
  if (!SplitHostPort(authority, &out.host, &out.port)) {
    return Status::Error("a bad host or port \"" + authority + "\"");
  }
  out.host = Lower(out.host);
  if (slash == std::string::npos || (query != std::string::npos && query < slash)) {
    if (query != std::string::npos) return Status::Error("no '/' before the query");
    return out;  // no DN: the root DSE
  }
  // dn ? attributes ? scope ? filter ? extensions
  std::vector<std::string> parts = Split(url.substr(slash + 1), '?');
  if (parts.size() > 5) return Status::Error("more than four '?' in the URL");
  parts.resize(5);
  std::optional<std::string> dn = PercentDecode(parts[0]);
  if (!dn) return Status::Error("a bad percent escape in the DN");
  out.dn = std::move(*dn);
  if (!parts[1].empty()) {
    for (const std::string &encoded : Split(parts[1], ',')) {
      const std::string attribute = PercentDecode(encoded).value_or("");
      if (attribute.empty()) return Status::Error("a bad attribute list \"" + parts[1] + "\"");
      for (char c : attribute) {
        const unsigned char u = static_cast<unsigned char>(c);
        if (!isalnum(u) && c != '-' && c != ';' && c != '.') {
          return Status::Error("a bad attribute \"" + attribute + "\"");
        }
      }
      out.attributes.push_back(attribute);
    }
  }
  if (!parts[2].empty()) {
    const std::string scope = Lower(parts[2]);
    if (scope != "base" && scope != "one" && scope != "sub") {
      return Status::Error("an unknown scope \"" + parts[2] + "\" (base, one or sub)");
    }
    out.scope = scope;
  }
  std::optional<std::string> filter = PercentDecode(parts[3]);
  if (!filter) return Status::Error("a bad percent escape in the filter");
  out.filter = std::move(*filter);
  // Extensions: a critical one ('!') that is not understood must refuse the
  // URL (RFC 4516 section 2.1); none is understood here.
  for (const std::string &extension : Split(parts[4], ',')) {
    if (!extension.empty() && extension[0] == '!') {
      return Status::Error("an unsupported critical extension \"" + extension + "\"");
    }
  }
  return out;
}

std::string LdapServerHost(const std::string &server) {
  std::string host;
  int port = 0;
  return SplitHostPort(server, &host, &port) ? Lower(host) : std::string();
}

bool IsLdapServerSpec(const std::string &server) {
  std::string host;
  int port = 0;
  return SplitHostPort(server, &host, &port) && !host.empty();
}

std::string LdapServerName(const LdapUrl &url, const std::string &server) {
  std::string host = url.host;
  int port = url.port;
  if (!server.empty()) SplitHostPort(server, &host, &port);
  if (port == 0) port = url.tls ? 636 : 389;
  const bool v6 = host.find(':') != std::string::npos;
  return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string LdapRequestUrl(const LdapUrl &url, const std::string &server,
                           const std::string &default_attribute) {
  const std::string attribute = url.attributes.empty() ? default_attribute : url.attributes[0];
  return std::string(url.tls ? "ldaps://" : "ldap://") + LdapServerName(url, server) + "/" +
         PercentEncode(url.dn) + "?" + PercentEncode(attribute) + "?" + url.scope + "?" +
         PercentEncode(url.filter.empty() ? "(objectClass=*)" : url.filter);
}

Result<std::string> LdapValueFromReply(const std::string &reply, const std::string &attribute) {
  const std::string wanted = BaseName(attribute);
  bool any_entry = false;
  for (const std::string &line : Split(reply, '\n')) {
    if (line.rfind("DN: ", 0) == 0) {
      any_entry = true;
      continue;
    }
    if (line.empty() || line[0] != '\t') continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos || BaseName(line.substr(1, colon - 1)) != wanted) continue;
    if (line.compare(colon, 3, ":: ") == 0) {
      std::string b64 = line.substr(colon + 3);
      // Trailing blanks would hide the '=' padding counted below.
      while (!b64.empty() && isspace(static_cast<unsigned char>(b64.back()))) b64.pop_back();
      if (b64.size() % 4 != 0) return Status::Error("bad base64 in the LDAP reply");
      std::string der(b64.size() / 4 * 3, '\0');
      const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char *>(der.data()),
                                    reinterpret_cast<const unsigned char *>(b64.data()),
                                    static_cast<int>(b64.size()));
      if (n < 0) return Status::Error("bad base64 in the LDAP reply");
      size_t pad = 0;  // EVP_DecodeBlock counts the padding as zero bytes
      for (size_t i = b64.size(); i > 0 && b64[i - 1] == '='; --i) ++pad;
      der.resize(static_cast<size_t>(n) - std::min<size_t>(pad, static_cast<size_t>(n)));
      return der;
    }
    if (line.compare(colon, 2, ": ") == 0) return line.substr(colon + 2);
  }
  if (!any_entry) return Status::Error("the LDAP search found no entry");
  return Status::Error("the entry has no " + attribute + " value");
}

}  // namespace certgate
