// The strict-check vectors: one chain per certgate_strict check (strict_checks.h)
// that OpenSSL 3.0's X509_verify_cert accepts and RFC 5280 forbids. Shared by
// the unit test (strict_test.cc) and certgate-mkpki, which writes them for the
// CLI test, so both judge the same chains.
#pragma once

#include <functional>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "pki_builder.h"

namespace certgate::pki {

struct StrictChain {
  Issued leaf;
  std::vector<Issued> sent;
  std::vector<Issued> anchors;
};

struct StrictVector {
  const char *check;  // the StrictChecks() row the chain breaks
  std::function<StrictChain(PkiBuilder &)> build;
  // Keys that make the chain acceptable apart from the strict check (a v1 leaf
  // has no extendedKeyUsage to require, a DSA key needs min_key dsa=N).
  std::vector<std::pair<std::string, std::vector<std::string>>> lenient_keys = {};
};

const std::vector<StrictVector> &StrictVectors();

// gtest prints a parameter with this (not as bytes) in test listings.
inline void PrintTo(const StrictVector &vector, std::ostream *out) { *out << vector.check; }

}  // namespace certgate::pki
