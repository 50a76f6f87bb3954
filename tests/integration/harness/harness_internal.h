// Helpers shared by the harness's own sources (process.cc, files.cc, ...); not
// for tests, which include harness.h.
#ifndef CERTGATE_TESTS_INTEGRATION_HARNESS_INTERNAL_H
#define CERTGATE_TESTS_INTEGRATION_HARNESS_INTERNAL_H

#include <sys/types.h>

#include <chrono>
#include <string>
#include <string_view>
#include <thread>

namespace certgate::harness {

using Clock = std::chrono::steady_clock;

inline void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

inline int ElapsedMs(Clock::time_point since) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count());
}

// Writes `content` to path via a temp file in the same directory + rename
// (files.cc).
bool WriteFileAtomically(const std::string &path, std::string_view content, mode_t mode);

}  // namespace certgate::harness

#endif  // CERTGATE_TESTS_INTEGRATION_HARNESS_INTERNAL_H
