#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char **environ;

namespace certgate::harness {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

void SleepMs(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

int ElapsedMs(Clock::time_point since) {
  return static_cast<int>(
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since).count());
}

// Only async-signal-safe calls after fork: the argv/env arrays are built before.
struct ExecArgs {
  std::vector<std::string> storage;
  std::vector<char *> argv;
  std::vector<char *> envp;

  ExecArgs(const std::vector<std::string> &args, const std::vector<std::string> &env) {
    storage.reserve(args.size() + env.size());
    for (const auto &a : args) storage.push_back(a);
    for (const auto &e : env) storage.push_back(e);
    for (size_t i = 0; i < args.size(); ++i) argv.push_back(storage[i].data());
    argv.push_back(nullptr);
    // The extra variables override inherited ones of the same name.
    for (char **e = environ; *e != nullptr; ++e) {
      std::string_view entry(*e);
      std::string_view name = entry.substr(0, entry.find('='));
      bool overridden = false;
      for (const auto &x : env) {
        if (x.compare(0, name.size() + 1, std::string(name) + "=") == 0) overridden = true;
      }
      if (!overridden) envp.push_back(*e);
    }
    for (size_t i = args.size(); i < storage.size(); ++i) envp.push_back(storage[i].data());
    envp.push_back(nullptr);
  }
};

[[noreturn]] void ExecChild(const ExecArgs &args) {
  execvpe(args.argv[0], args.argv.data(), args.envp.data());
  const char msg[] = "harness: exec failed\n";
  ssize_t ignored = write(2, msg, sizeof(msg) - 1);
  (void)ignored;
  _exit(127);
}

}  // namespace

// ---- processes ----

RunResult Run(const std::vector<std::string> &argv, const std::vector<std::string> &env,
              std::string_view input, int timeout_ms) {
  RunResult result;
  if (argv.empty()) {
    result.err = "harness: empty command";
    return result;
  }
  ExecArgs args(argv, env);
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) {
    result.err = std::string("harness: pipe: ") + strerror(errno);
    return result;
  }
  pid_t pid = fork();
  if (pid < 0) {
    result.err = std::string("harness: fork: ") + strerror(errno);
    return result;
  }
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    ExecChild(args);
  }
  close(in[0]);
  close(out[1]);
  close(err[1]);
  signal(SIGPIPE, SIG_IGN);

  size_t written = 0;
  int in_fd = in[1];
  if (input.empty()) {
    close(in_fd);
    in_fd = -1;
  }
  int fds[2] = {out[0], err[0]};
  std::string *sinks[2] = {&result.out, &result.err};
  const auto start = Clock::now();
  bool timed_out = false;
  while (fds[0] >= 0 || fds[1] >= 0) {
    const int left = timeout_ms - ElapsedMs(start);
    if (left <= 0) {
      timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p[3];
    int n = 0;
    for (int fd : fds) {
      if (fd >= 0) p[n++] = {fd, POLLIN, 0};
    }
    if (in_fd >= 0) p[n++] = {in_fd, POLLOUT, 0};
    if (poll(p, n, left) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (p[i].revents == 0) continue;
      if (p[i].fd == in_fd) {
        ssize_t w = write(in_fd, input.data() + written, input.size() - written);
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 || written == input.size()) {
          close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      for (int k = 0; k < 2; ++k) {
        if (p[i].fd != fds[k]) continue;
        char buf[8192];
        ssize_t r = read(fds[k], buf, sizeof(buf));
        if (r > 0) {
          sinks[k]->append(buf, static_cast<size_t>(r));
        } else if (r == 0 || errno != EINTR) {
          close(fds[k]);
          fds[k] = -1;
        }
      }
    }
  }
  for (int fd : fds) {
    if (fd >= 0) close(fd);
  }
  if (in_fd >= 0) close(in_fd);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_code = timed_out ? -2 : ExitCodeOf(status);
  return result;
}

Process::~Process() {
  if (pid_ > 0 && Running()) {
    kill(pid_, SIGKILL);
    Wait(5000);
  }
}

bool Process::Start(const std::vector<std::string> &argv, const std::string &stdout_path,
                    const std::string &stderr_path, const std::vector<std::string> &env) {
  if (argv.empty()) {
    error_ = "empty command";
    return false;
  }
  ExecArgs args(argv, env);
  const std::string out = stdout_path.empty() ? "/dev/null" : stdout_path;
  const std::string err = stderr_path.empty() ? "/dev/null" : stderr_path;
  pid_t pid = fork();
  if (pid < 0) {
    error_ = std::string("fork: ") + strerror(errno);
    return false;
  }
  if (pid == 0) {
    int null_fd = open("/dev/null", O_RDONLY);
    int out_fd = open(out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    int err_fd = open(err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (null_fd >= 0) dup2(null_fd, 0);
    if (out_fd >= 0) dup2(out_fd, 1);
    if (err_fd >= 0) dup2(err_fd, 2);
    setpgid(0, 0);  // its own group: a test runner's ^C does not reach it twice
    ExecChild(args);
  }
  pid_ = pid;
  status_ = -1;
  // An exec failure shows up as a quick exit 127.
  SleepMs(20);
  if (!Running() && status_ == 127) {
    error_ = "cannot execute " + argv[0];
    return false;
  }
  return true;
}

bool Process::Running() {
  if (pid_ <= 0) return false;
  if (status_ != -1) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = ExitCodeOf(status);
    return false;
  }
  return r == 0;
}

bool Process::Signal(int sig) const { return pid_ > 0 && kill(pid_, sig) == 0; }

int Process::Wait(int timeout_ms) {
  const auto start = Clock::now();
  while (Running()) {
    if (ElapsedMs(start) >= timeout_ms) return -2;
    SleepMs(20);
  }
  return status_;
}

int Process::Stop(int sig, int timeout_ms) {
  if (!Running()) return status_;
  Signal(sig);
  int code = Wait(timeout_ms);
  if (code == -2) {
    Signal(SIGKILL);
    code = Wait(5000);
  }
  return code;
}

// ---- network ----

bool PortOpen(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) == 0;
  close(fd);
  return ok;
}

bool WaitForPort(int port, int timeout_ms) {
  const auto start = Clock::now();
  while (!PortOpen(port)) {
    if (ElapsedMs(start) >= timeout_ms) return false;
    SleepMs(25);
  }
  return true;
}

// ---- files ----

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

// ---- build products and tools ----

std::string MkpkiPath() {
#ifdef CERTGATE_MKPKI_PATH
  return CERTGATE_MKPKI_PATH;
#else
  return FindProgram("certgate-mkpki");
#endif
}

std::string GeneratePki(const std::string &dir, int64_t now) {
  std::vector<std::string> argv = {MkpkiPath(), "--out", dir};
  if (now != 0) {
    argv.push_back("--now");
    argv.push_back(std::to_string(now));
  }
  RunResult r = Run(argv);
  if (r.exit_code != 0)
    return "certgate-mkpki failed (" + std::to_string(r.exit_code) + "): " + r.err;
  if (!MakeWorldReadable(dir)) return "cannot chmod " + dir;
  return "";
}

std::string FindProgram(const std::string &name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  std::string path = getenv("PATH") ? getenv("PATH") : "";
  path += ":/usr/sbin:/sbin:/usr/bin:/bin";
  std::istringstream dirs(path);
  std::string dir;
  while (std::getline(dirs, dir, ':')) {
    if (dir.empty()) continue;
    std::string candidate = dir + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

std::string WriteWeakClientOpensslConf(const std::string &dir) {
  const std::string path = dir + "/openssl-seclevel0.cnf";
  WriteFile(path,
            "openssl_conf = openssl_init\n"
            "[openssl_init]\nssl_conf = ssl_sect\n"
            "[ssl_sect]\nsystem_default = system_default_sect\n"
            "[system_default_sect]\nCipherString = DEFAULT@SECLEVEL=0\n");
  return path;
}

}  // namespace certgate::harness
