// The one-line log entry for a decision: a pure formatter.
#pragma once

#include <certgate/decision.h>
#include <certgate/policy.h>

#include <string>
#include <utility>
#include <vector>

namespace certgate {

// A line is never longer than this unless the caller asks for less.
constexpr size_t kMaxLogLine = 4096;
// A single value (a hostile DN, say) is cut here so the other fields survive.
constexpr size_t kMaxLogValue = 1024;

// "certgate: verdict=deny reason=... hint=\"...\"" (kv) or "certgate: {...}"
// (json). Control characters are escaped, so no value can start a new line or
// forge a field; the result is at most `max_len` bytes and always well formed.
std::string FormatLogLine(const Decision &decision, LogFormat format, size_t max_len = kMaxLogLine);

// Fields a decision does not carry (a failed handshake's stage, SNI, ...),
// written after the decision's own, escaped the same way.
using LogExtras = std::vector<std::pair<std::string, std::string>>;
std::string FormatLogLine(const Decision &decision, LogFormat format, const LogExtras &extras,
                          size_t max_len = kMaxLogLine);

// The client-facing body of a refusal: reason and sub-status, plus detail and
// hint only when `with_detail`. Sets `content_type`.
std::string FormatRejectBody(const Decision &decision, RejectBody body, bool with_detail,
                             std::string *content_type);

}  // namespace certgate
