#include "harness.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <poll.h>
#include <signal.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
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

CurlAnswer CurlAsClient(const std::string &url, const std::string &pki, const std::string &client,
                        double max_time_s, const std::vector<std::string> &curl_args) {
  std::vector<std::string> argv = {"curl", "-sSk"};
  argv.insert(argv.end(), curl_args.begin(), curl_args.end());
  // The status on a line of its own after the body, which may lack a newline.
  argv.insert(argv.end(),
              {"--max-time", std::to_string(max_time_s), "-o", "-", "-w", "\n%{http_code}"});
  if (!client.empty()) {
    argv.insert(argv.end(), {"--cert", pki + "/clients/" + client + ".chain.pem", "--key",
                             pki + "/clients/" + client + ".key"});
  }
  argv.push_back(url);
  const auto start = Clock::now();
  const RunResult r = Run(argv, {}, {}, static_cast<int>((max_time_s + 5) * 1000));
  CurlAnswer out;
  out.ms = ElapsedMs(start);
  out.curl_exit = r.exit_code;
  out.err = r.err;
  const size_t nl = r.out.rfind('\n');
  if (nl != std::string::npos) {
    out.body = r.out.substr(0, nl);
    out.status = std::atoi(r.out.c_str() + nl + 1);
  }
  return out;
}

std::string JsonRefusalProblem(const std::string &body, const std::string &reason) {
  const RunResult parsed =
      Run({"python3", "-c",
           "import json,sys; d=json.load(sys.stdin); assert d['reason']==sys.argv[1], d", reason},
          {}, body);
  return parsed.exit_code == 0 ? "" : parsed.err + "\n" + body;
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

std::string NginxConfigHead(const std::string &dir, int workers,
                            const std::vector<std::string> &error_logs, int worker_connections) {
  std::string conf = "daemon off;\nmaster_process on;\nworker_processes " +
                     std::to_string(workers) + ";\npid " + dir + "/nginx.pid;\n";
  for (const std::string &log : error_logs) conf += "error_log " + log + ";\n";
  conf += "events { worker_connections " + std::to_string(worker_connections) + "; }\nhttp {\n";
  for (const char *temp : {"client_body", "proxy", "fastcgi", "uwsgi", "scgi"}) {
    conf += std::string("  ") + temp + "_temp_path " + dir + "/tmp/" +
            (std::string(temp) == "client_body" ? "body" : temp) + ";\n";
  }
  return conf;
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

// ---- revocation servers (CDP / OCSP) ----

namespace {

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

const char *FaultName(CrlServer::Fault fault) {
  switch (fault) {
    case CrlServer::Fault::k500:
      return "500";
    case CrlServer::Fault::kHtml:
      return "html";
    case CrlServer::Fault::kHang:
      return "hang";
    case CrlServer::Fault::k404:
      return "404";
    case CrlServer::Fault::kNone:
      break;
  }
  return "";
}

// A listening socket on 127.0.0.1:port that is never accepted from.
int ListenNeverAccept(int port, int *bound_port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof(addr)) != 0 || listen(fd, 1024) != 0) {
    close(fd);
    return -1;
  }
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr *>(&addr), &len);
  if (bound_port) *bound_port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace

CrlServer::~CrlServer() { Stop(); }

std::string CrlServer::Start(const std::string &workdir, const std::string &docroot, int port) {
  const std::string nginx = FindProgram("/usr/sbin/nginx");
  if (nginx.empty()) return "/usr/sbin/nginx is missing (apt-get install nginx-core)";
  workdir_ = workdir;
  docroot_ = docroot;
  port_ = port;
  if (!MakeDirs(workdir_ + "/faults", 0755) || !MakeDirs(workdir_ + "/tmp", 0755)) {
    return "cannot create " + workdir_;
  }
  if (!MakeDirs(docroot_, 0755) || !MakeWorldReadable(docroot_)) {
    return "cannot make " + docroot_ + " readable";
  }
  if (hang_fd_ < 0) hang_fd_ = ListenNeverAccept(0, &hang_port_);
  if (hang_fd_ < 0) return std::string("cannot listen for the hang fault: ") + strerror(errno);
  const std::string f = workdir_ + "/faults";
  // Flags are checked most specific first; `if` + return/rewrite is the safe use.
  std::string checks;
  for (const char *fault : {"hang", "500", "html", "404"}) {
    const std::string action = std::string(fault) == "hang"   ? "rewrite ^ /.certgate-hang last;"
                               : std::string(fault) == "html" ? "rewrite ^ /.certgate-html last;"
                               : std::string(fault) == "500"  ? "return 500;"
                                                              : "return 404;";
    checks += "      if (-f " + f + "$uri." + fault + ") { " + action + " }\n";
  }
  for (const char *fault : {"hang", "500", "html", "404"}) {
    const std::string action = std::string(fault) == "hang"   ? "rewrite ^ /.certgate-hang last;"
                               : std::string(fault) == "html" ? "rewrite ^ /.certgate-html last;"
                               : std::string(fault) == "500"  ? "return 500;"
                                                              : "return 404;";
    checks += "      if (-f " + f + "/all." + fault + ") { " + action + " }\n";
  }
  const std::string w = workdir_;
  const std::string conf = NginxConfigHead(w, 1, {w + "/error.log info"}, 512) +
                           "  log_format cdp '$request_uri $status ims=$http_if_modified_since "
                           "inm=$http_if_none_match';\n"
                           "  access_log " +
                           w +
                           "/access.log cdp;\n"
                           "  types { application/pkix-crl crl; application/pkix-cert crt; }\n"
                           "  default_type application/octet-stream;\n"
                           "  server {\n"
                           "    listen 127.0.0.1:" +
                           std::to_string(port_) +
                           ";\n"
                           "    root " +
                           docroot_ +
                           ";\n"
                           "    location / {\n" +
                           checks +
                           "    }\n"
                           "    location = /.certgate-hang {\n"
                           "      internal;\n"
                           "      proxy_pass http://127.0.0.1:" +
                           std::to_string(hang_port_) +
                           ";\n"
                           "      proxy_connect_timeout 3600s;\n"
                           "      proxy_read_timeout 3600s;\n"
                           "      proxy_send_timeout 3600s;\n"
                           "    }\n"
                           "    location = /.certgate-html {\n"
                           "      internal;\n"
                           "      default_type text/html;\n"
                           "      return 200 \"<html><head><title>Maintenance</title></head>"
                           "<body>We are down for maintenance.</body></html>\\n\";\n"
                           "    }\n"
                           "  }\n"
                           "}\n";
  const std::string conf_path = w + "/nginx.conf";
  if (!WriteFile(conf_path, conf)) return "cannot write " + conf_path;
  RunResult test = Run({nginx, "-t", "-p", w, "-c", conf_path});
  if (test.exit_code != 0) return "CDP nginx -t failed:\n" + test.err;
  if (!process_.Start({nginx, "-p", w, "-c", conf_path}, w + "/stdout.log", w + "/stderr.log")) {
    return "cannot start the CDP nginx: " + process_.error();
  }
  if (!WaitForPort(port_, 10000)) {
    return "the CDP nginx does not listen on " + std::to_string(port_) + ":\n" +
           ReadFile(w + "/stderr.log") + ReadFile(error_log());
  }
  return "";
}

void CrlServer::Stop() {
  // SIGTERM: a fast shutdown, which also ends requests hung on the blackhole.
  if (process_.pid() > 0 && process_.Running()) process_.Stop(SIGTERM, 5000);
  // The port must really be free when Stop returns (connection refused).
  for (int i = 0; i < 100 && port_ > 0 && PortOpen(port_); ++i) SleepMs(20);
  if (hang_fd_ >= 0) {
    close(hang_fd_);
    hang_fd_ = -1;
  }
}

bool CrlServer::Running() { return process_.Running(); }

bool CrlServer::Publish(const std::string &name, std::string_view content) {
  return WriteFileAtomically(docroot_ + "/" + name, content, 0644);
}

bool CrlServer::PublishFile(const std::string &name, const std::string &source) {
  std::ifstream in(source, std::ios::binary);
  if (!in) return false;
  return Publish(name, ReadFile(source));
}

bool CrlServer::Remove(const std::string &name) {
  return unlink((docroot_ + "/" + name).c_str()) == 0;
}

bool CrlServer::SetFault(Fault fault, const std::string &path) {
  const std::string dir = workdir_ + "/faults";
  const std::string base = path.empty() ? dir + "/all" : dir + path;
  if (!path.empty()) MakeDirs(fs::path(base).parent_path().string(), 0755);
  bool ok = true;
  for (Fault f : {Fault::k500, Fault::kHtml, Fault::kHang, Fault::k404}) {
    const std::string flag = base + "." + FaultName(f);
    if (f == fault) {
      ok = WriteFile(flag, "") && ok;
    } else {
      unlink(flag.c_str());
    }
  }
  if (fault == Fault::kNone && path.empty()) {
    // Clears the per-path flags too.
    std::error_code ec;
    fs::remove_all(dir, ec);
    ok = MakeDirs(dir, 0755);
  }
  return ok;
}

std::vector<std::string> CrlServer::Requests(const std::string &path) const {
  std::vector<std::string> out;
  std::istringstream in(ReadFile(access_log()));
  std::string line;
  while (std::getline(in, line)) {
    if (path.empty() || line.compare(0, path.size() + 1, path + " ") == 0) out.push_back(line);
  }
  return out;
}

std::string CrlServer::url(const std::string &path) const {
  return "http://127.0.0.1:" + std::to_string(port_) + path;
}

bool Blackhole::Listen(int port) {
  Close();
  fd_ = ListenNeverAccept(port, &port_);
  return fd_ >= 0;
}

void Blackhole::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
}

std::string OcspResponder::Start(const std::string &pki, int port, const std::string &log_path,
                                 const std::vector<std::string> &extra) {
  const std::string openssl = FindProgram("openssl");
  if (openssl.empty()) return "openssl is missing";
  port_ = port;
  pki_ = pki;
  log_path_ = log_path;
  extra_ = extra;
  std::vector<std::string> argv = {openssl,      "ocsp",
                                   "-index",     pki + "/ocsp/index.txt",
                                   "-port",      std::to_string(port),
                                   "-rsigner",   pki + "/ocsp/signer.pem",
                                   "-rkey",      pki + "/ocsp/signer.key",
                                   "-CA",        pki + "/ca/intermediate.pem",
                                   "-nmin",      "60",
                                   "-ignore_err"};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const size_t mark = static_cast<size_t>(std::max<int64_t>(FileSize(log_path), 0));
  if (!process_.Start(argv, log_path, log_path)) return "cannot start openssl ocsp";
  // Not WaitForPort: OpenSSL 3.0's responder waits forever on a connection
  // that closes without a request. It says when it listens.
  const auto start = Clock::now();
  while (ReadFile(log_path).find("waiting for OCSP client connections", mark) ==
         std::string::npos) {
    if (!process_.Running() || ElapsedMs(start) > 10000) {
      return "openssl ocsp does not listen on " + std::to_string(port) + ":\n" + ReadFile(log_path);
    }
    SleepMs(20);
  }
  return "";
}

void OcspResponder::Stop() {
  if (process_.pid() > 0 && process_.Running()) process_.Stop(SIGTERM, 5000);
}

std::string OcspResponder::Restart() {
  Stop();
  return Start(pki_, port_, log_path_, extra_);
}

bool RevokeInIndex(const std::string &index_path, const std::string &serial_hex,
                   const std::string &when, const std::string &reason) {
  std::istringstream in(ReadFile(index_path));
  std::string line, out;
  bool found = false;
  while (std::getline(in, line)) {
    // status \t expiry \t revocation \t serial \t file \t subject
    std::vector<std::string> cols;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
      cols.push_back(line.substr(start, tab - start));
    }
    cols.push_back(line.substr(start));
    if (cols.size() >= 6 && strcasecmp(cols[3].c_str(), serial_hex.c_str()) == 0) {
      cols[0] = "R";
      cols[2] = when + "," + reason;
      found = true;
      line.clear();
      for (size_t i = 0; i < cols.size(); ++i) line += (i ? "\t" : "") + cols[i];
    }
    out += line + "\n";
  }
  return found && WriteFileAtomically(index_path, out, 0644);
}

pki::Issued LoadDemoIssuingCa(const std::string &pki_dir) {
  pki::Issued ca;
  const std::string cert_pem = ReadFile(pki_dir + "/ca/intermediate.pem");
  const std::string key_pem = ReadFile(pki_dir + "/ca/intermediate.key");
  BIO *bio = BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size()));
  ca.cert.reset(PEM_read_bio_X509(bio, nullptr, nullptr, nullptr), X509_free);
  BIO_free(bio);
  bio = BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size()));
  ca.key.reset(PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr), EVP_PKEY_free);
  BIO_free(bio);
  return ca;
}

std::string IssueDemoClient(const std::string &pki_dir, const std::string &name,
                            const std::string &dn) {
  const pki::Issued ca = LoadDemoIssuingCa(pki_dir);
  if (!ca.cert || !ca.key) return "cannot load the demo Issuing CA from " + pki_dir;
  pki::PkiBuilder builder(static_cast<int64_t>(std::time(nullptr)));
  const pki::Issued leaf = builder.Issue(ca, pki::PkiBuilder::LeafSpec(dn));
  if (!leaf.cert) return "cannot issue a certificate for " + dn;
  const std::string base = pki_dir + "/clients/" + name;
  if (!WriteFile(base + ".crt", leaf.Pem()) || !WriteFile(base + ".key", leaf.KeyPem()) ||
      !WriteFile(base + ".chain.pem", leaf.Pem() + pki::ToPem(ca.cert.get()))) {
    return "cannot write " + base + ".*";
  }
  MakeWorldReadable(pki_dir + "/clients");
  return "";
}

std::string LongSubjectDn() {
  std::string dn = "CN=long subject";
  for (int i = 0; i < 100; ++i) dn += ",OU=" + std::string(60, '"');
  return dn + ",OU=lastmarker";
}

std::string IssueLongSubjectClient(const std::string &pki_dir) {
  if (FileSize(pki_dir + "/clients/long_subject.chain.pem") > 0) return "";
  return IssueDemoClient(pki_dir, "long_subject", LongSubjectDn());
}

std::string DemoSerial(const std::string &pki, const std::string &name) {
  std::istringstream in(ReadFile(pki + "/clients/fingerprints.txt"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, name.size() + 1, name + " ") != 0) continue;
    const size_t at = line.find(" serial=");
    if (at == std::string::npos) return "";
    const size_t end = line.find(' ', at + 8);
    return line.substr(at + 8, end == std::string::npos ? std::string::npos : end - at - 8);
  }
  return "";
}

std::string SignDemoCrl(const std::string &pki, const std::string &workdir,
                        const std::vector<std::string> &also_revoke, int crl_number,
                        int valid_seconds, std::string *der) {
  if (!MakeDirs(workdir, 0755)) return "cannot create " + workdir;
  const std::string index = workdir + "/demo-index.txt";
  if (!WriteFile(index, ReadFile(pki + "/ocsp/index.txt"))) {
    return "cannot copy " + pki + "/ocsp/index.txt";
  }
  const std::string now = IndexTime(0);
  for (const std::string &name : also_revoke) {
    const std::string serial = DemoSerial(pki, name);
    if (serial.empty() || !RevokeInIndex(index, serial, now)) {
      return "no demo client " + name + " in the index";
    }
  }
  return SignCrl(workdir, ReadFile(index), pki + "/ca/intermediate.pem",
                 pki + "/ca/intermediate.key", crl_number, valid_seconds, der);
}

std::string IndexTime(int64_t offset_seconds) {
  const time_t when = time(nullptr) + offset_seconds;
  struct tm tm;
  gmtime_r(&when, &tm);
  char text[32];
  strftime(text, sizeof(text), "%y%m%d%H%M%SZ", &tm);
  return text;
}

std::string SignCrl(const std::string &workdir, const std::string &index_text,
                    const std::string &ca_cert, const std::string &ca_key, int crl_number,
                    int valid_seconds, std::string *der) {
  if (!MakeDirs(workdir, 0755)) return "cannot create " + workdir;
  const std::string index = workdir + "/index.txt";
  // `openssl ca` wants an even number of hex digits in the crlnumber file.
  char hex[32];
  snprintf(hex, sizeof(hex), "%X", crl_number);
  const std::string number = std::string(strlen(hex) % 2 ? "0" : "") + hex + "\n";
  const std::string cnf = workdir + "/ca.cnf";
  if (!WriteFile(index, index_text) || !WriteFile(index + ".attr", "unique_subject = no\n") ||
      !WriteFile(workdir + "/crlnumber", number) ||
      !WriteFile(cnf, "[ca]\ndefault_ca = cg\n[cg]\ndatabase = " + index +
                          "\ncrlnumber = " + workdir +
                          "/crlnumber\ndefault_md = sha256\ncrl_extensions = crl_ext\n"
                          "[crl_ext]\nauthorityKeyIdentifier = keyid:always\n")) {
    return "cannot write under " + workdir;
  }
  const std::string pem = workdir + "/crl.pem";
  RunResult r = Run({"openssl", "ca", "-batch", "-gencrl", "-config", cnf, "-keyfile", ca_key,
                     "-cert", ca_cert, "-crlsec", std::to_string(valid_seconds), "-out", pem});
  if (r.exit_code != 0) return "openssl ca -gencrl failed: " + r.err;
  r = Run({"openssl", "crl", "-in", pem, "-outform", "DER", "-out", workdir + "/crl.der"});
  if (r.exit_code != 0) return "openssl crl failed: " + r.err;
  *der = ReadFile(workdir + "/crl.der");
  return der->empty() ? "empty CRL" : "";
}

std::string UnrevokeAll(const std::string &index_text) {
  std::istringstream in(index_text);
  std::string line, out;
  while (std::getline(in, line)) {
    if (line.rfind("R\t", 0) == 0) {
      // R \t expiry \t revocation \t serial ... -> V \t expiry \t \t serial ...
      const size_t expiry_end = line.find('\t', 2);
      const size_t revocation_end = line.find('\t', expiry_end + 1);
      line = "V" + line.substr(1, expiry_end) + line.substr(revocation_end);
    }
    out += line + "\n";
  }
  return out;
}

std::string CertgateCliPath() {
  // No compile definition names the CLI; it is built in the same tree.
  const std::string mkpki = MkpkiPath();
  const std::string tail = "/tests/pki/certgate-mkpki";
  if (mkpki.size() <= tail.size() ||
      mkpki.compare(mkpki.size() - tail.size(), tail.size(), tail) != 0) {
    return "";
  }
  const std::string cli = mkpki.substr(0, mkpki.size() - tail.size()) + "/cli/certgate";
  return access(cli.c_str(), X_OK) == 0 ? cli : "";
}

std::string CachedUrlState(const std::string &cli, const std::string &cache_dir,
                           const std::string &url) {
  RunResult r = Run({cli, "cache", "list", "--cache", cache_dir}, {}, {}, 5000);
  std::vector<std::string> lines = GrepLines(r.out, {"url " + url + " "});
  return lines.empty() ? "" : lines.front();
}

// ---- the CDP fault drill ----

namespace {

constexpr int kDrillValidSeconds = 6;     // nextUpdate of the cached CRL, ahead of signing
constexpr int kDrillMaxStaleSeconds = 2;  // max_stale of the "stale" place
constexpr int kDrillMaxSize = 1024;       // fetch_max_size of the "oversized" place
constexpr char kDrillCrlName[] = "intermediate.crl";  // at the root of the CDP

// The CRLs of the drill, all naming the demo PKI's Example Issuing CA.
struct DrillCrls {
  std::string cached;       // crlNumber 20, the demo entries, nextUpdate in 6 s
  std::string truncated;    // the first half of a valid crlNumber 21
  std::string oversized;    // a valid crlNumber 21 larger than fetch_max_size
  std::string forged;       // crlNumber 21 signed with another CA's key
  std::string rolled_back;  // validly signed, crlNumber 19 < 20, without `revoked`
};

std::string SignDrillCrls(const std::string &pki, const std::string &work, DrillCrls *crls) {
  const std::string ca_cert = pki + "/ca/intermediate.pem";
  const std::string ca_key = pki + "/ca/intermediate.key";
  const std::string demo_index = ReadFile(pki + "/ocsp/index.txt");
  if (demo_index.empty()) return "no " + pki + "/ocsp/index.txt";
  const std::string good_serial = DemoSerial(pki, "good");
  if (good_serial.empty()) return "no demo client good";
  if (!MakeDirs(work)) return "cannot create " + work;

  // Every crlNumber 21 also revokes `good`: were one taken, good would be refused.
  const std::string revoking_good = work + "/index-revoking-good.txt";
  if (!WriteFile(revoking_good, demo_index) ||
      !RevokeInIndex(revoking_good, good_serial, IndexTime(-60))) {
    return "cannot revoke good in " + revoking_good;
  }
  const std::string newer_index = ReadFile(revoking_good);
  std::string newer;
  std::string error = SignCrl(work + "/newer", newer_index, ca_cert, ca_key, 21, 3600, &newer);
  if (!error.empty()) return error;
  crls->truncated = newer.substr(0, newer.size() / 2);

  // Padded with 60 more entries, past fetch_max_size; the cached CRL is well under it.
  std::string padded_index = newer_index;
  for (int i = 0; i < 60; ++i) {
    char serial[16];
    snprintf(serial, sizeof(serial), "%04X", 0x7000 + i);
    padded_index += "R\t491231235959Z\t" + IndexTime(-120) + ",keyCompromise\t" + serial +
                    "\tunknown\t/O=Example/CN=pad-" + std::to_string(i) + "\n";
  }
  error = SignCrl(work + "/oversized", padded_index, ca_cert, ca_key, 21, 3600, &crls->oversized);
  if (!error.empty()) return error;
  if (crls->oversized.size() <= static_cast<size_t>(kDrillMaxSize)) return "oversized is too small";

  // The Issuing CA's name and key identifier (its certificate re-signed with the
  // Other Issuing CA's key, so that `openssl ca` accepts that key), signed with
  // a key that is not the Issuing CA's.
  const std::string other_key = pki + "/ca/other-intermediate.key";
  const std::string fake_ca = work + "/fake-intermediate.pem";
  RunResult fake = Run(
      {"openssl", "x509", "-in", ca_cert, "-signkey", other_key, "-days", "1", "-out", fake_ca});
  if (fake.exit_code != 0) return "openssl x509 -signkey failed: " + fake.err;
  error = SignCrl(work + "/forged", newer_index, fake_ca, other_key, 21, 3600, &crls->forged);
  if (!error.empty()) return error;

  error = SignCrl(work + "/rolled-back", UnrevokeAll(demo_index), ca_cert, ca_key, 19, 3600,
                  &crls->rolled_back);
  if (!error.empty()) return error;

  // Last, so that its short validity starts as late as possible.
  error =
      SignCrl(work + "/cached", demo_index, ca_cert, ca_key, 20, kDrillValidSeconds, &crls->cached);
  if (!error.empty()) return error;
  if (crls->cached.size() >= static_cast<size_t>(kDrillMaxSize)) return "cached is too large";
  return "";
}

// One fault: put on the CDP in the drill's order (each from the state the one
// before left), what `certgate cache list` says of the failed refresh, and the
// status the CDP logs for it ("" when it logs none).
struct DrillFault {
  std::string place;
  std::function<void()> inject;
  std::string error;
  std::string cdp_status;
};

}  // namespace

const std::vector<CdpFaultPlace> &CdpFaultPlaces() {
  static const std::vector<CdpFaultPlace> places = {
      {"500", "", ""},
      {"html", "", ""},
      {"truncated", "", ""},
      {"oversized", "fetch_max_size", std::to_string(kDrillMaxSize / 1024) + "k"},
      {"forged", "", ""},
      {"rollback", "", ""},
      {"timeout", "fetch_timeout", "1s"},
      {"refused", "", ""},
      {"stale", "max_stale", std::to_string(kDrillMaxStaleSeconds) + "s"},
  };
  return places;
}

void RunCdpFaultDrill(CrlServer &cdp, const std::string &pki, const std::string &work,
                      const CdpFaultServer &server) {
  const std::string path = std::string("/") + kDrillCrlName;
  const std::string url = cdp.url(path);
  const std::string revoked_body = "403.13 client certificate refused: revoked\n";
  int problems = 0;
  auto fail = [&](const std::string &place, const std::string &problem) {
    ++problems;
    server.fail("[" + place + "] " + problem);
  };
  const std::string cli = CertgateCliPath();
  if (cli.empty()) {
    fail("setup", "certgate CLI not found next to " + MkpkiPath() +
                      " (build the certgate target): a failed refresh is seen through it");
    return;
  }
  DrillCrls crls;
  const std::string sign_error = SignDrillCrls(pki, work, &crls);
  if (!sign_error.empty()) {
    fail("setup", sign_error);
    return;
  }
  if (!cdp.Publish(kDrillCrlName, crls.cached)) {
    fail("setup", "cannot publish at the CDP");
    return;
  }
  const auto published = Clock::now();

  int seq = 0;
  auto tag = [&](const std::string &place, const std::string &what) {
    return place + "-" + what + "-" + std::to_string(seq++);
  };
  // good: 200 with crlNumber 20 in the revocation variable; revoked: refused by
  // crlNumber 20.
  auto expect_cached_verdicts = [&](const std::string &place, const std::string &when) {
    // (nextUpdate is whole seconds after signing, which came before `published`;
    // the server compares whole seconds.)
    const bool past_next_update =
        Clock::now() > published + std::chrono::seconds(kDrillValidSeconds + 1);
    const std::string g = tag(place, when + "-good");
    CdpFaultServer::Answer good = server.get(place, "good", g);
    if (good.status != 200) {
      fail(place, g + ": good got " + std::to_string(good.status) + ": " + good.body);
    }
    const std::string access = server.access_line(g);
    if (access.find("revocation=\"good crl " + url + " crl_number=20") == std::string::npos) {
      fail(place, g + ": not good by crlNumber 20 in the access log: " + access);
    }
    if (when == "after" && past_next_update) {
      // Past nextUpdate with the refresh failing: allowed, and the operator
      // hears of it. (A refresh is tried a little ahead of nextUpdate, so the
      // first fault may fail before it.)
      const std::string warning = server.refusal_line(g);
      if (warning.find("warning=revocation_past_next_update") == std::string::npos ||
          warning.find(url + ": failed: ") == std::string::npos) {
        fail(place, g + ": no warning naming the failing refresh: " + warning);
      }
    }
    const std::string r = tag(place, when + "-revoked");
    CdpFaultServer::Answer revoked = server.get(place, "revoked", r);
    if (revoked.status != 403 || revoked.body != revoked_body) {
      fail(place, r + ": revoked got " + std::to_string(revoked.status) + ": " + revoked.body);
    }
    const std::string line = server.refusal_line(r);
    if (line.find("reason=revoked") == std::string::npos ||
        line.find("crl_number=20") == std::string::npos) {
      fail(place, r + ": not revoked by crlNumber 20 in the error log: " + line);
    }
  };

  const std::vector<CdpFaultPlace> &places = CdpFaultPlaces();
  for (const CdpFaultPlace &place : places) {
    expect_cached_verdicts(place.name, "cold");
    const std::string state = CachedUrlState(cli, server.cache_dir(place.name), url);
    if (state.find(" ok: stored crl_number=20") == std::string::npos) {
      fail(place.name, "crlNumber 20 not stored: " + state);
    }
  }
  if (problems > 0) {
    fail("setup", "no good data to start from");
    return;
  }
  // (Should this run past nextUpdate on a slow machine, the refreshes it
  // triggers only confirm crlNumber 20, still at the CDP.)

  using Fault = CrlServer::Fault;
  const std::vector<DrillFault> faults = {
      {"500", [&] { cdp.SetFault(Fault::k500, path); }, "failed: HTTP 500", "500"},
      {"html", [&] { cdp.SetFault(Fault::kHtml, path); }, "not a CRL: the body is text", "200"},
      {"truncated",
       [&] {
         cdp.SetFault(Fault::kNone, path);
         cdp.Publish(kDrillCrlName, crls.truncated);
       },
       "truncated CRL", "200"},
      {"oversized", [&] { cdp.Publish(kDrillCrlName, crls.oversized); },
       "larger than certgate_fetch_max_size (" + std::to_string(kDrillMaxSize) + " bytes)", ""},
      {"forged", [&] { cdp.Publish(kDrillCrlName, crls.forged); }, "signature does not verify",
       "200"},
      {"rollback", [&] { cdp.Publish(kDrillCrlName, crls.rolled_back); },
       "rolled back: crlNumber 19 < cached 20", "200"},
      // The CDP accepts and never answers; fetch_timeout 1s. (It logs a hung
      // request only when it ends, so no status.)
      {"timeout",
       [&] {
         cdp.Publish(kDrillCrlName, crls.cached);
         cdp.SetFault(Fault::kHang, path);
       },
       "timed out", ""},
      {"refused",
       [&] {
         cdp.SetFault(Fault::kNone, path);
         cdp.Stop();
       },
       "onnect", ""},
  };

  // Puts the fault on the CDP, asks good at its place until the refresh (due
  // once nextUpdate has passed) has failed, then checks the verdicts are those
  // of the cached CRL.
  for (const DrillFault &fault : faults) {
    const std::string &place = fault.place;
    const size_t before = cdp.Requests(path).size();
    fault.inject();
    const auto start = Clock::now();
    bool failed = false;
    bool wrong_answer = false;
    std::string state;
    while (!failed && ElapsedMs(start) < (kDrillValidSeconds + 8) * 1000) {
      const std::string g = tag(place, "poll");
      CdpFaultServer::Answer good = server.get(place, "good", g);
      state = CachedUrlState(cli, server.cache_dir(place), url);
      if (good.status != 200) {
        fail(place, g + ": good got " + std::to_string(good.status) + ": " + good.body +
                        "; cache: " + state);
        wrong_answer = true;
        break;
      }
      failed = state.find(" failed: ") != std::string::npos;
      if (!failed) SleepMs(100);
    }
    if (wrong_answer) continue;
    if (!failed) {
      fail(place, "no failed refresh seen: " + state);
      continue;
    }
    if (state.find(fault.error) == std::string::npos) {
      fail(place, "the error is not \"" + fault.error + "\": " + state);
    }
    if (state.find(" failures=1 ") == std::string::npos ||
        state.find(" backoff_until=") == std::string::npos) {
      fail(place, "not one failure with a backoff: " + state);
    }
    if (!fault.cdp_status.empty()) {
      // 499 (the client gave up) is logged when a hung request ends, which may
      // be one a test before the drill left hanging: not this refresh.
      std::vector<std::string> after = cdp.Requests(path);
      after.erase(after.begin(), after.begin() + static_cast<std::ptrdiff_t>(before));
      after.erase(std::remove_if(
                      after.begin(), after.end(),
                      [&](const std::string &line) { return line.rfind(path + " 499 ", 0) == 0; }),
                  after.end());
      if (after.empty()) {
        fail(place, "the CDP logged no request");
      } else if (after.front().rfind(path + " " + fault.cdp_status + " ", 0) != 0) {
        fail(place, "the CDP did not answer " + fault.cdp_status + ": " + after.front());
      }
    }
    expect_cached_verdicts(place, "after");
  }

  // Past nextUpdate + max_stale, with the CDP still down: good is allowed
  // until then, revocation_stale after.
  if (cdp.Running()) {
    fail("stale", "the CDP is still up");
    return;
  }
  const std::string stale_body = "403.13 client certificate refused: revocation_stale\n";
  std::string stale_tag;
  int first_stale_ms = -1;
  while (ElapsedMs(published) < (kDrillValidSeconds + kDrillMaxStaleSeconds + 6) * 1000) {
    const std::string g = tag("stale", "poll");
    CdpFaultServer::Answer good = server.get("stale", "good", g);
    if (good.status == 403) {
      if (good.body != stale_body) fail("stale", g + ": " + good.body);
      first_stale_ms = ElapsedMs(published);
      stale_tag = g;
      break;
    }
    if (good.status != 200) {
      fail("stale", g + ": good got " + std::to_string(good.status) + ": " + good.body);
    }
    SleepMs(100);
  }
  if (first_stale_ms < 0) {
    fail("stale", "never revocation_stale");
    return;
  }
  // nextUpdate is whole seconds after signing, which came before `published`.
  if (first_stale_ms < (kDrillValidSeconds + kDrillMaxStaleSeconds - 1) * 1000) {
    fail("stale", "stale " + std::to_string(first_stale_ms) +
                      " ms after publishing: before nextUpdate + max_stale");
  }
  const std::string line = server.refusal_line(stale_tag);
  for (const std::string &expected :
       {std::string("reason=revocation_stale"),
        server.max_stale_name + " " + std::to_string(kDrillMaxStaleSeconds) + " s",
        std::string("crl_number=20"), url + ": failed: "}) {
    if (line.find(expected) == std::string::npos) {
      fail("stale", "no \"" + expected + "\" in the refusal: " + line);
    }
  }
  // (The revocation variable is "stale (hard_fail)": the core names no source
  // for a stale answer; the refusal above names the expired CRL.)
  const std::string access = server.access_line(stale_tag);
  if (access.find("revocation=\"stale") == std::string::npos) {
    fail("stale", "not stale in the access log: " + access);
  }
  // A serial in the expired CRL is still refused (revoked wins).
  const std::string r = tag("stale", "revoked");
  CdpFaultServer::Answer revoked = server.get("stale", "revoked", r);
  if (revoked.status != 403) {
    fail("stale", r + ": revoked got " + std::to_string(revoked.status) + ": " + revoked.body);
  }
}

void RunDamagedCacheDrill(const DamagedCacheServer &server) {
  const std::string revoked_body = "403.13 client certificate refused: revoked\n";
  DamagedCacheServer::Answer before = server.get("revoked", "dmg-before");
  if (before.status != 403 || before.body != revoked_body) {
    server.fail("before: revoked got " + std::to_string(before.status) + ": " + before.body);
    return;
  }
  server.stop();
  const std::string data = server.cache_dir + "/data.mdb";
  {
    std::fstream file(data, std::ios::in | std::ios::out | std::ios::binary);
    char byte = 0;
    file.seekg(4138);
    file.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x40);
    file.seekp(4138);
    file.write(&byte, 1);
    if (!file.good()) {
      server.fail("cannot change a byte of " + data);
      return;
    }
  }
  const std::string error = server.start();
  if (!error.empty()) {
    server.fail("cannot start again: " + error);
    return;
  }
  bool revoked_again = false;
  const auto start = Clock::now();
  for (int i = 0; !revoked_again && Clock::now() - start < std::chrono::seconds(5); ++i) {
    DamagedCacheServer::Answer r = server.get("revoked", "dmg-" + std::to_string(i));
    if (r.status != 403) {
      server.fail("after: the revoked client got " + std::to_string(r.status) + ": " + r.body);
      return;
    }
    revoked_again = r.body == revoked_body;
    if (!revoked_again) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!revoked_again) server.fail("the rebuilt cache does not revoke the revoked client");
  DamagedCacheServer::Answer good = server.get("good", "dmg-good");
  if (good.status != 200) server.fail("good got " + std::to_string(good.status) + ": " + good.body);
  const std::string logs = server.logs();
  const size_t lines =
      GrepLines(logs, {"revocation cache " + server.cache_dir + " is damaged"}).size();
  if (lines != 1) server.fail(std::to_string(lines) + " lines name the damage, not 1:\n" + logs);
  for (const char *death : {"exited on signal", "exit signal"}) {
    if (!GrepLines(logs, {death}).empty()) server.fail(std::string("a process died: ") + death);
  }
  int aside = 0;
  std::error_code ec;
  for (const auto &entry : fs::directory_iterator(server.cache_dir, ec)) {
    aside += entry.path().filename().string().rfind("data.mdb.corrupt-", 0) == 0;
  }
  if (aside != 1) server.fail(std::to_string(aside) + " stores moved aside, not 1");
}

}  // namespace certgate::harness
