// Injectable time: every decision takes "now" from a Clock, so tests are exact.
#pragma once

#include <atomic>
#include <cstdint>
#include <ctime>

namespace certgate {

class Clock {
 public:
  virtual ~Clock() = default;
  // Seconds since the Unix epoch.
  virtual int64_t Now() const = 0;
};

class SystemClock final : public Clock {
 public:
  int64_t Now() const override { return static_cast<int64_t>(std::time(nullptr)); }
  static const SystemClock &Instance() {
    static const SystemClock clock;
    return clock;
  }
};

class FixedClock final : public Clock {
 public:
  explicit FixedClock(int64_t now) : now_(now) {}
  int64_t Now() const override { return now_.load(std::memory_order_relaxed); }
  void Set(int64_t now) { now_.store(now, std::memory_order_relaxed); }
  void Advance(int64_t seconds) { now_.fetch_add(seconds, std::memory_order_relaxed); }

 private:
  // Atomic: tests move the time while the fetch thread reads it.
  std::atomic<int64_t> now_;
};

}  // namespace certgate
