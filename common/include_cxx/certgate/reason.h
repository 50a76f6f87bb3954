// The reason taxonomy (the table itself is CERTGATE_REASONS in certgate.h).
#pragma once

#include <certgate/certgate.h>

#include <string_view>

namespace certgate {

using Reason = cg_reason;

struct ReasonInfo {
  Reason reason;
  std::string_view code;
  int http_status;
  std::string_view substatus;
  std::string_view meaning;
  std::string_view hint;
};

const ReasonInfo &Info(Reason reason);

// Earlier in the table wins when one chain has several defects.
inline bool TakesPrecedence(Reason a, Reason b) {
  return static_cast<int>(a) < static_cast<int>(b);
}

// An X509_V_ERR_* of OpenSSL's name-constraint check (all invalid_ca).
bool IsNameConstraintError(int x509_error);

// Maps an OpenSSL X509_V_ERR_* code to the reason it stands for.
Reason ReasonForVerifyError(int x509_error);

}  // namespace certgate
