// certgate integration-test harness (harness.h): files, logs, temporary directories.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "harness.h"
#include "harness_internal.h"

namespace certgate::harness {

namespace fs = std::filesystem;

// ---- files ----

// Writes `content` to path via a temp file in the same directory + rename.
bool WriteFileAtomically(const std::string &path, std::string_view content, mode_t mode) {
  const std::string tmp = path + ".tmp-" + std::to_string(getpid());
  if (!WriteFile(tmp, content)) return false;
  if (chmod(tmp.c_str(), mode) != 0 || rename(tmp.c_str(), path.c_str()) != 0) {
    unlink(tmp.c_str());
    return false;
  }
  return true;
}

std::string ReadFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool WriteFile(const std::string &path, std::string_view content) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return false;
  out.write(content.data(), static_cast<std::streamsize>(content.size()));
  return static_cast<bool>(out);
}

bool MakeDirs(const std::string &path, mode_t mode) {
  std::error_code ec;
  fs::create_directories(path, ec);
  if (ec) return false;
  return chmod(path.c_str(), mode) == 0;
}

bool MakeWorldReadable(const std::string &path) {
  std::error_code ec;
  auto fix = [](const fs::path &p) {
    struct stat st;
    if (stat(p.c_str(), &st) != 0) return false;
    mode_t add = S_IRUSR | S_IRGRP | S_IROTH;
    if (S_ISDIR(st.st_mode)) add |= S_IXUSR | S_IXGRP | S_IXOTH;
    return chmod(p.c_str(), st.st_mode | add) == 0;
  };
  if (!fix(path)) return false;
  if (!fs::is_directory(path, ec)) return true;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (!fix(it->path())) return false;
  }
  return !ec;
}

int64_t FileSize(const std::string &path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_size);
}

LogTail::LogTail(std::string path) : path_(std::move(path)) { Skip(); }

void LogTail::Skip() { offset_ = std::max<int64_t>(FileSize(path_), 0); }

std::string LogTail::ReadNew() {
  std::ifstream in(path_, std::ios::binary);
  if (!in) return "";
  in.seekg(offset_);
  std::ostringstream s;
  s << in.rdbuf();
  std::string text = s.str();
  offset_ += static_cast<int64_t>(text.size());
  return text;
}

std::string LogTail::WaitFor(std::string_view needle, int timeout_ms, bool *found) {
  const auto start = Clock::now();
  const int64_t mark = offset_;
  std::string text;
  for (;;) {
    offset_ = mark;
    text = ReadNew();
    offset_ = mark;
    if (text.find(needle) != std::string::npos) {
      if (found) *found = true;
      return text;
    }
    if (ElapsedMs(start) >= timeout_ms) break;
    SleepMs(20);
  }
  if (found) *found = false;
  return text;
}

std::vector<std::string> GrepLines(const std::string &text,
                                   const std::vector<std::string> &needles) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    bool all = true;
    for (const auto &n : needles) all = all && line.find(n) != std::string::npos;
    if (all) lines.push_back(line);
  }
  return lines;
}

std::string WaitForLine(const std::string &path, const std::vector<std::string> &needles,
                        int timeout_ms) {
  const auto start = Clock::now();
  do {
    std::vector<std::string> lines = GrepLines(ReadFile(path), needles);
    if (!lines.empty()) return lines.back();
    SleepMs(20);
  } while (ElapsedMs(start) < timeout_ms);
  return "";
}

TempDir::TempDir(const std::string &prefix) {
  const char *base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/" + prefix + "-XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) != nullptr) {
    path_ = buf.data();
    chmod(path_.c_str(), 0755);
  }
}

TempDir::~TempDir() {
  if (path_.empty() || getenv("CERTGATE_KEEP_TMP") != nullptr) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

}  // namespace certgate::harness
