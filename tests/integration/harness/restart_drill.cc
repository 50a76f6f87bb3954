#include "restart_drill.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <utility>

#include "harness.h"

namespace certgate::harness {

Traffic::Traffic(std::string url, std::string pki)
    : url_(std::move(url)), pki_(std::move(pki)), thread_([this] { Run(); }) {}

Traffic::~Traffic() { Stop(); }

void Traffic::Stop() {
  stop_ = true;
  if (thread_.joinable()) thread_.join();
}

std::vector<std::string> Traffic::failures() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return failures_;
}

void Traffic::Run() {
  while (!stop_) {
    const CurlAnswer answer = CurlAsClient(url_, pki_, "good", 20, {"--http1.1"});
    if (answer.curl_exit == 0 && answer.status == 200) {
      ++answered_;
      continue;
    }
    std::lock_guard<std::mutex> lock(mutex_);
    failures_.push_back("curl exit " + std::to_string(answer.curl_exit) + ", HTTP " +
                        std::to_string(answer.status) + ": " + answer.body + answer.err);
  }
}

bool ReplaceFileAsAPackageDoes(const std::string &source, const std::string &path) {
  const std::string content = ReadFile(source);
  const std::string staged = path + ".dpkg-new";
  return !content.empty() && WriteFile(staged, content) && chmod(staged.c_str(), 0644) == 0 &&
         rename(staged.c_str(), path.c_str()) == 0;
}

}  // namespace certgate::harness
