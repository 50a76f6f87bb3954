// certgate integration-test harness: processes, ports, TLS clients, files.
//
// Shared by tests/integration/nginx and tests/integration/apache. Everything is
// synchronous and POSIX; nothing here knows about a particular server.
//
//   certgate::harness::TempDir dir("nginx");            // mkdtemp, removed at exit
//   std::string pki = certgate::harness::GeneratePki(dir.path() + "/pki");
//   certgate::harness::Process server;
//   server.Start({"/usr/sbin/nginx", "-p", dir.path(), "-c", conf},
//                dir.path() + "/stdout.log", dir.path() + "/stderr.log");
//   ASSERT_TRUE(certgate::harness::WaitForPort(18401, 10000));
//   auto r = certgate::harness::Run({"curl", "-sk", "https://127.0.0.1:18401/"});
//   EXPECT_EQ(r.exit_code, 0) << r.err;
//   certgate::harness::LogTail log(dir.path() + "/error.log");   // from the end
//   ... log.WaitFor("reason=expired", 2000) ...
//   server.Stop(SIGQUIT, 10000);                         // SIGKILL fallback
//
// Paths of build products come from compile definitions set by CMake (see
// CMakeLists.txt): CERTGATE_MKPKI_PATH (certgate-mkpki); a server's test adds
// its own module path.
#ifndef CERTGATE_TESTS_INTEGRATION_HARNESS_H
#define CERTGATE_TESTS_INTEGRATION_HARNESS_H

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace certgate::harness {

// ---- processes ----

// The outcome of a finished command. exit_code is the exit status, 128 + N when
// killed by signal N, -1 when it could not be started (`err` says why), and
// -2 when it ran past its timeout (it is killed).
struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs argv[0] (searched in PATH) with `env` ("NAME=value") added to this
// process's environment, `input` written to its stdin, and collects stdout and
// stderr. Never throws.
RunResult Run(const std::vector<std::string> &argv, const std::vector<std::string> &env = {},
              std::string_view input = {}, int timeout_ms = 30000);

// A child process (a server under test). Not copyable; the destructor kills
// (SIGKILL) and reaps a child that is still running.
class Process {
 public:
  Process() = default;
  ~Process();
  Process(const Process &) = delete;
  Process &operator=(const Process &) = delete;

  // Starts argv with stdout/stderr appended to the given files ("" = /dev/null).
  // Returns false (and sets error()) when fork/exec fails.
  bool Start(const std::vector<std::string> &argv, const std::string &stdout_path = "",
             const std::string &stderr_path = "", const std::vector<std::string> &env = {});
  pid_t pid() const { return pid_; }
  bool Running();              // reaps it if it has exited
  bool Signal(int sig) const;  // kill(pid, sig)
  // Waits up to timeout_ms for the child to exit; returns its exit code as in
  // RunResult, or -2 on timeout (the child is left running).
  int Wait(int timeout_ms);
  // Sends `sig`, waits up to timeout_ms, then SIGKILL. Returns the exit code.
  int Stop(int sig, int timeout_ms);
  const std::string &error() const { return error_; }

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string error_;
};

// ---- network ----

// Polls until something accepts TCP connections on 127.0.0.1:port.
bool WaitForPort(int port, int timeout_ms);
// Whether a TCP connect to 127.0.0.1:port succeeds now.
bool PortOpen(int port);

// ---- files ----

std::string ReadFile(const std::string &path);  // "" when it cannot be read
bool WriteFile(const std::string &path, std::string_view content);
bool MakeDirs(const std::string &path, mode_t mode = 0755);
// chmod -R a+rX: servers drop privileges (nobody) and must read certs, docroots.
bool MakeWorldReadable(const std::string &path);
int64_t FileSize(const std::string &path);  // -1 when missing

// Reads what was appended to a file (an error or access log) since a mark.
class LogTail {
 public:
  // Starts at the current end of the file (0 if it does not exist yet).
  explicit LogTail(std::string path);
  // Moves the mark to the current end.
  void Skip();
  // Everything appended since the mark; moves the mark.
  std::string ReadNew();
  // Polls (every 20 ms) until the text appended since the mark contains `needle`
  // (does not move the mark). Returns the new text seen so far either way;
  // *found says whether it appeared.
  std::string WaitFor(std::string_view needle, int timeout_ms, bool *found = nullptr);

 private:
  std::string path_;
  int64_t offset_ = 0;
};

// Lines of `text` that contain every one of `needles`.
std::vector<std::string> GrepLines(const std::string &text,
                                   const std::vector<std::string> &needles);

// A fresh directory under $TMPDIR (or /tmp), mode 0755. Removed (rm -rf) by the
// destructor unless CERTGATE_KEEP_TMP is set in the environment.
class TempDir {
 public:
  explicit TempDir(const std::string &prefix = "certgate");
  ~TempDir();
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }
  bool ok() const { return !path_.empty(); }

 private:
  std::string path_;
};

// ---- build products and tools ----

// certgate-mkpki from this build (compile definition CERTGATE_MKPKI_PATH).
std::string MkpkiPath();
// Runs `certgate-mkpki --out dir [--now now]` and makes the result world
// readable. Returns "" on success, else the tool's error output.
std::string GeneratePki(const std::string &dir, int64_t now = 0);
// Full path of an executable found in PATH, /usr/sbin or /sbin; "" if none.
std::string FindProgram(const std::string &name);

// Writes an OpenSSL config that lowers the client's security level to 0, so
// curl/openssl can load and send deliberately weak certificates (RSA-1024,
// SHA-1). Use it as OPENSSL_CONF=<path> in Run()'s env. Returns the path.
std::string WriteWeakClientOpensslConf(const std::string &dir);

}  // namespace certgate::harness

#endif  // CERTGATE_TESTS_INTEGRATION_HARNESS_H
