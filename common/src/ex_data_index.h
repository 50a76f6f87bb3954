// An OpenSSL ex_data index whose free callback lives in this copy of certgate.
#pragma once

#include <openssl/crypto.h>

namespace certgate {

// libcrypto pins itself in memory, but a server module does not stay: httpd
// unloads and reloads every module at startup and at each graceful restart
// (logrotate does one nightly), and nginx drops a module its new configuration
// no longer loads. An index registered with a callback into an unloaded copy
// makes every later SSL_free / SSL_CTX_free jump into unmapped code, so the
// index is given back (CRYPTO_free_ex_index turns its callbacks into no-ops)
// when the copy that registered it goes away. Use it with static storage: C++
// runs the destructor at dlclose() of the module as well as at exit().
class ExDataIndex {
 public:
  ExDataIndex(int class_index, CRYPTO_EX_free *free_data)
      : class_index_(class_index),
        index_(CRYPTO_get_ex_new_index(class_index, 0, nullptr, nullptr, nullptr, free_data)) {}
  ~ExDataIndex() {
    if (index_ >= 0) CRYPTO_free_ex_index(class_index_, index_);
  }
  ExDataIndex(const ExDataIndex &) = delete;
  ExDataIndex &operator=(const ExDataIndex &) = delete;

  int get() const { return index_; }  // negative when OpenSSL had none to give

 private:
  const int class_index_;
  const int index_;
};

}  // namespace certgate
