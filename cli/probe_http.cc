// certgate probe: one HTTP/1.1 GET over the probe's TLS connection, and
// certgate's reason in the answer (its X-Certgate-Reason header, or its body in
// any certgate_reject_body format).
#include <openssl/err.h>

#include <algorithm>
#include <cctype>
#include <sstream>

#include "probe.h"

namespace certgate::cli {
namespace {

constexpr size_t kMaxAnswer = 1 << 20;  // enough for any refusal page

std::string Lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return text;
}

std::string Trim(const std::string &text) {
  const size_t begin = text.find_first_not_of(" \t\r\n");
  const size_t end = text.find_last_not_of(" \t\r\n");
  return begin == std::string::npos ? "" : text.substr(begin, end - begin + 1);
}

// The text between `open` and `close` after the first `open`, "" if absent.
std::string Between(const std::string &text, const std::string &open, const std::string &close) {
  const size_t start = text.find(open);
  if (start == std::string::npos) return "";
  const size_t from = start + open.size();
  const size_t end = text.find(close, from);
  return end == std::string::npos ? "" : text.substr(from, end - from);
}

std::string Dechunk(const std::string &body) {
  std::string out;
  size_t at = 0;
  while (at < body.size()) {
    const size_t line_end = body.find("\r\n", at);
    if (line_end == std::string::npos) break;
    const size_t size = std::strtoul(body.substr(at, line_end - at).c_str(), nullptr, 16);
    if (size == 0) break;
    out += body.substr(line_end + 2, size);
    at = line_end + 2 + size + 2;
  }
  return out;
}

std::string JsonString(const std::string &body, const std::string &key) {
  const std::string raw = Between(body, "\"" + key + "\":\"", "\"");
  std::string out;
  for (size_t i = 0; i < raw.size(); ++i)
    out += raw[i] == '\\' && i + 1 < raw.size() ? raw[++i] : raw[i];
  return out;
}

// certgate's refusal bodies (log_format.cc FormatRejectBody): text, json, html.
void ReadRefusalBody(HttpAnswer *answer) {
  const std::string &body = answer->body;
  if (body.rfind("{\"verdict\":\"deny\"", 0) == 0) {
    answer->reason = JsonString(body, "reason");
    answer->detail = JsonString(body, "detail");
    answer->hint = JsonString(body, "hint");
  } else if (body.find("Client certificate refused</h1>") != std::string::npos) {
    answer->reason = Between(body, "<p>reason: <code>", "</code>");
    const std::string rest = body.substr(body.find("</code></p>\n") + 12);
    answer->detail = Between(rest, "<p>", "</p>");
    answer->hint =
        Between(rest.substr(std::min(rest.size(), rest.find("</p>") + 4)), "<p>", "</p>");
  } else if (body.find(" client certificate refused: ") != std::string::npos) {
    answer->reason = Trim(Between(body, " client certificate refused: ", "\n"));
    answer->detail = Between(body, "\ndetail: ", "\n");
    answer->hint = Between(body, "\nhint: ", "\n");
  }
}

}  // namespace

HttpAnswer HttpGet(TlsConnection *connection, const std::string &host_header,
                   const std::string &path) {
  HttpAnswer answer;
  SSL *ssl = connection->ssl();
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + host_header +
                              "\r\nUser-Agent: certgate-probe\r\nAccept: */*\r\n"
                              "Connection: close\r\n\r\n";
  ERR_clear_error();
  if (SSL_write(ssl, request.data(), static_cast<int>(request.size())) <= 0) {
    answer.error = "cannot send the request";
  }
  std::string raw;
  char buf[16384];
  while (answer.error.empty() && raw.size() < kMaxAnswer) {
    const int n = SSL_read(ssl, buf, sizeof(buf));
    if (n > 0) {
      raw.append(buf, static_cast<size_t>(n));
      continue;
    }
    const int error = SSL_get_error(ssl, n);
    if (error != SSL_ERROR_ZERO_RETURN && raw.empty()) {
      answer.error = "the connection ended without an answer";
    }
    break;
  }
  ERR_clear_error();
  if (!connection->capture().alert.empty() && raw.empty()) {
    answer.error =
        "the server sent the alert \"" + connection->capture().alert + "\" instead of an answer";
  }
  const size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/", 0) != 0 || head_end == std::string::npos) {
    if (answer.error.empty()) answer.error = "the answer is not HTTP";
    return answer;
  }
  answer.answered = true;
  answer.error.clear();
  std::istringstream head(raw.substr(0, head_end));
  std::getline(head, answer.status_line);
  answer.status_line = Trim(answer.status_line);
  const size_t space = answer.status_line.find(' ');
  answer.status =
      space == std::string::npos ? 0 : std::atoi(answer.status_line.c_str() + space + 1);
  bool chunked = false;
  for (std::string line; std::getline(head, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string name = Lower(Trim(line.substr(0, colon)));
    const std::string value = Trim(line.substr(colon + 1));
    if (name == "x-certgate-reason") answer.reason_header = value;
    if (name == "transfer-encoding" && Lower(value).find("chunked") != std::string::npos) {
      chunked = true;
    }
  }
  answer.body = raw.substr(head_end + 4);
  if (chunked) answer.body = Dechunk(answer.body);
  ReadRefusalBody(&answer);
  if (answer.reason.empty()) answer.reason = answer.reason_header;
  return answer;
}

}  // namespace certgate::cli
