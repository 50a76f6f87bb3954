// certgate integration-test harness (harness.h): processes (Run, Process) and
// the sanitizer runtime for the servers under test.
#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <sstream>

#include "harness.h"
#include "harness_internal.h"

extern char **environ;

namespace certgate::harness {

namespace {

namespace fs = std::filesystem;

int ExitCodeOf(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
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

std::string EnvOr(const char *name, const std::string &fallback) {
  const char *value = getenv(name);
  return value != nullptr && *value != '\0' ? value : fallback;
}

bool IsServerProgram(const std::string &path) {
  const std::string name = path.substr(path.rfind('/') + 1);
  return name == "nginx" || name == "apache2" || name == "httpd";
}

// Fails the test program when a preloaded server wrote a sanitizer report
// (log_path files "<dir>/server.<pid>") since the program started.
class SanitizerReportCheck : public ::testing::Environment {
 public:
  void SetUp() override { start_ = fs::file_time_type::clock::now(); }
  void TearDown() override {
    const std::string dir = EnvOr("CERTGATE_TEST_SANITIZER_LOG_DIR", "");
    if (getenv("CERTGATE_TEST_SERVER_PRELOAD") == nullptr || dir.empty()) return;
    std::error_code ec;
    for (const auto &entry : fs::directory_iterator(dir, ec)) {
      if (entry.path().filename().string().rfind("server.", 0) != 0) continue;
      if (entry.last_write_time(ec) < start_) continue;
      ADD_FAILURE() << "sanitizer report from a server, " << entry.path().string() << ":\n"
                    << ReadFile(entry.path().string());
    }
  }

 private:
  fs::file_time_type start_;
};

[[maybe_unused]] ::testing::Environment *const kSanitizerReportCheck =
    ::testing::AddGlobalTestEnvironment(new SanitizerReportCheck);

}  // namespace

std::vector<std::string> WithServerSanitizer(const std::vector<std::string> &argv) {
  const char *preload = getenv("CERTGATE_TEST_SERVER_PRELOAD");
  if (preload == nullptr || *preload == '\0') return argv;
  // The program: the first word that is not `env`, an option or NAME=value.
  size_t program = 0;
  const bool via_env = !argv.empty() && (argv[0] == "env" || argv[0] == "/usr/bin/env");
  if (via_env) {
    program = 1;
    while (program < argv.size() &&
           (argv[program][0] == '-' || argv[program].find('=') != std::string::npos)) {
      ++program;
    }
  }
  if (program >= argv.size() || !IsServerProgram(argv[program])) return argv;
  const std::string logs = EnvOr("CERTGATE_TEST_SANITIZER_LOG_DIR", "/tmp");
  // LeakSanitizer off: nginx and httpd leave their pools to exit() by design.
  // allow_user_segv_handler=0: httpd installs its own SIGSEGV handler, which
  // would take a crash in the module away from ASan (no report, only AH00052).
  const std::vector<std::string> vars = {
      std::string("LD_PRELOAD=") + preload,
      "ASAN_OPTIONS=" +
          EnvOr("CERTGATE_TEST_SERVER_ASAN_OPTIONS",
                "detect_leaks=0:abort_on_error=1:allow_user_segv_handler=0:log_path=" + logs +
                    "/server"),
      "UBSAN_OPTIONS=" + EnvOr("CERTGATE_TEST_SERVER_UBSAN_OPTIONS",
                               "print_stacktrace=1:halt_on_error=1:log_path=" + logs + "/server")};
  std::vector<std::string> out;
  if (via_env) {
    out.assign(argv.begin(), argv.begin() + static_cast<std::ptrdiff_t>(program));
  } else {
    out.push_back("/usr/bin/env");
  }
  out.insert(out.end(), vars.begin(), vars.end());
  out.insert(out.end(), argv.begin() + static_cast<std::ptrdiff_t>(program), argv.end());
  return out;
}

// ---- processes ----

RunResult Run(const std::vector<std::string> &argv, const std::vector<std::string> &env,
              std::string_view input, int timeout_ms) {
  RunResult result;
  if (argv.empty()) {
    result.err = "harness: empty command";
    return result;
  }
  ExecArgs args(WithServerSanitizer(argv), env);
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
  ExecArgs args(WithServerSanitizer(argv), env);
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

std::vector<pid_t> Descendants(pid_t pid) {
  // ppid of every process, from /proc/N/stat ("N (comm) S PPID ...").
  std::vector<std::pair<pid_t, pid_t>> parent_of;
  if (DIR *proc = opendir("/proc")) {
    while (dirent *entry = readdir(proc)) {
      const pid_t child = static_cast<pid_t>(std::atoi(entry->d_name));
      if (child <= 0) continue;
      const std::string stat = ReadFile("/proc/" + std::to_string(child) + "/stat");
      const size_t paren = stat.rfind(')');
      if (paren == std::string::npos) continue;
      std::istringstream rest(stat.substr(paren + 2));
      std::string state;
      pid_t ppid = 0;
      rest >> state >> ppid;
      parent_of.emplace_back(child, ppid);
    }
    closedir(proc);
  }
  std::vector<pid_t> out;
  std::vector<pid_t> frontier = {pid};
  while (!frontier.empty()) {
    const pid_t parent = frontier.back();
    frontier.pop_back();
    for (const auto &[child, ppid] : parent_of) {
      if (ppid == parent) {
        out.push_back(child);
        frontier.push_back(child);
      }
    }
  }
  return out;
}

void SignalTree(pid_t pid, int sig) {
  if (pid <= 0) return;
  // The tree is listed before any signal: once the master is gone its workers
  // are re-parented and no longer found under it.
  const std::vector<pid_t> tree = Descendants(pid);
  kill(pid, sig);
  for (pid_t child : tree) kill(child, sig);
}

}  // namespace certgate::harness
