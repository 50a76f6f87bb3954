// A CRL with a million entries, made in a few seconds: the generator of the
// revocation benchmark (revocation_bench.cc), shared with the integration tests
// that need an ingest lasting seconds (the crash tests, through the harness's
// ingest_crash). Compiled into the benchmark and into the harness, so the tests
// do not depend on the benchmarks being enabled (CERTGATE_BUILD_BENCH).
#pragma once

#include <pki_builder.h>

#include <cstdint>
#include <string>
#include <vector>

namespace certgate::bench {

// Serial `i` of a large CRL: 16 bytes (big-endian, positive, first byte 0x10..0x7f),
// spread by a multiplicative hash like real CAs' random serials.
std::string LargeCrlSerial(uint64_t i);

struct LargeCrlSpec {
  size_t entries = 1000000;  // LargeCrlSerial(first + k) for k < entries
  uint64_t first = 0;
  // More serials, hex as in the demo PKI's fingerprints.txt (a real cert's, so a
  // verdict can show the CRL is in force).
  std::vector<std::string> extra_serials_hex;
  int64_t number = 1;  // crlNumber
  // >= 0: a delta CRL for this base crlNumber (a critical deltaCRLIndicator).
  int64_t delta_base = -1;
  // Absolute Unix seconds; thisUpdate is also every entry's revocationDate.
  int64_t this_update = 0;
  int64_t next_update = 0;
};

// The DER of a v2 CRL of `ca` (issuer name, sha256 signature with its key),
// entries sorted, no entry extensions. "" when OpenSSL fails.
std::string MakeLargeCrl(const pki::Issued &ca, const LargeCrlSpec &spec);

}  // namespace certgate::bench
