// What the restart tests of every server share (issue 9: a server's master and
// workers must survive graceful restarts, reloads and module upgrades under
// traffic).
//
//   h::Traffic traffic("https://127.0.0.1:18590/", pki);   // requests on a thread
//   ... restarts, each with h::ReplaceFileAsAPackageDoes(module_so, loaded_path) ...
//   traffic.Stop();
//   EXPECT_TRUE(traffic.failures().empty());
#ifndef CERTGATE_TESTS_INTEGRATION_HARNESS_RESTART_DRILL_H
#define CERTGATE_TESTS_INTEGRATION_HARNESS_RESTART_DRILL_H

#include <atomic>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace certgate::harness {

// GETs `url` as the demo PKI's client "good" over and over, one request after
// another on its own thread, until Stop() (or destruction). Every answer that is
// not a 200 is a failure; a refusal or a dropped connection during a restart
// is one too, since a graceful restart or reload must not lose requests.
class Traffic {
 public:
  Traffic(std::string url, std::string pki);
  ~Traffic();
  Traffic(const Traffic &) = delete;
  Traffic &operator=(const Traffic &) = delete;

  void Stop();
  int answered() const { return answered_.load(); }  // 200s so far
  std::vector<std::string> failures() const;         // "curl exit N, HTTP S: ..."

 private:
  void Run();

  const std::string url_, pki_;
  std::atomic<bool> stop_{false};
  std::atomic<int> answered_{0};
  mutable std::mutex mutex_;
  std::vector<std::string> failures_;
  std::thread thread_;
};

// Replaces the file at `path` with a copy of `source` the way dpkg and
// install(1) do: a new file is written beside it and renamed over it, so the
// processes that mapped the old one keep their copy. Returns false on error.
bool ReplaceFileAsAPackageDoes(const std::string &source, const std::string &path);

}  // namespace certgate::harness

#endif  // CERTGATE_TESTS_INTEGRATION_HARNESS_RESTART_DRILL_H
