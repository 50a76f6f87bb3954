// certgate integration-test harness (shared_tier.h): redis-server, the delay
// proxy, and signals to a whole process tree.
#include "shared_tier.h"

#include <dirent.h>
#include <signal.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "harness_internal.h"

namespace certgate::harness {

std::string RedisInstance::Start(const std::string &workdir, int port) {
  const std::string server = FindProgram("redis-server");
  if (server.empty()) return "redis-server is missing (apt-get install redis-server)";
  if (FindProgram("redis-cli").empty()) return "redis-cli is missing (apt-get install redis-tools)";
  if (!MakeDirs(workdir, 0755)) return "cannot create " + workdir;
  workdir_ = workdir;
  port_ = port;
  // No config file: every setting on the command line, nothing of /etc/redis.
  if (!process_.Start({server, "--port", std::to_string(port), "--bind", "127.0.0.1", "--dir",
                       workdir, "--save", "", "--appendonly", "no", "--daemonize", "no",
                       "--protected-mode", "no", "--logfile", log()},
                      workdir + "/stdout.log", workdir + "/stderr.log")) {
    return "cannot start redis-server: " + process_.error();
  }
  const auto start = Clock::now();
  while (ElapsedMs(start) < 10000) {
    if (!process_.Running()) break;
    if (Cli({"PING"}).out.rfind("PONG", 0) == 0) return "";
    SleepMs(50);
  }
  return "redis-server does not answer on " + std::to_string(port) + ":\n" + ReadFile(log()) +
         ReadFile(workdir + "/stderr.log");
}

void RedisInstance::Kill() {
  if (process_.pid() > 0 && process_.Running()) process_.Stop(SIGKILL, 5000);
}

RunResult RedisInstance::Cli(const std::vector<std::string> &args, const std::string &input) const {
  std::vector<std::string> argv = {"redis-cli", "-h", "127.0.0.1", "-p", std::to_string(port_)};
  argv.insert(argv.end(), args.begin(), args.end());
  return Run(argv, {}, input, 30000);
}

std::string RedisInstance::Get(const std::string &key) const {
  RunResult r = Cli({"--raw", "GET", key});
  if (r.exit_code != 0) return "";
  // redis-cli ends the raw value with one newline of its own.
  if (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r.out;
}

bool RedisInstance::Set(const std::string &key, const std::string &value, int ttl_ms) const {
  // -x: stdin is the last argument, byte for byte.
  RunResult r = Cli({"-x", "SET", key}, value);
  if (r.exit_code != 0 || r.out.rfind("OK", 0) != 0) return false;
  if (ttl_ms > 0) {
    r = Cli({"PEXPIRE", key, std::to_string(ttl_ms)});
    return r.exit_code == 0 && r.out.rfind("1", 0) == 0;
  }
  return true;
}

bool RedisInstance::HashSet(const std::string &key, const std::string &field,
                            const std::string &value) const {
  const RunResult r = Cli({"-x", "HSET", key, field}, value);
  return r.exit_code == 0 && (r.out.rfind("0", 0) == 0 || r.out.rfind("1", 0) == 0);
}

std::string RedisInstance::HashGet(const std::string &key, const std::string &field) const {
  RunResult r = Cli({"--raw", "HGET", key, field});
  if (r.exit_code != 0) return "";
  if (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
  return r.out;
}

std::vector<std::string> RedisInstance::Keys(const std::string &pattern) const {
  std::vector<std::string> keys;
  std::istringstream in(Cli({"--raw", "KEYS", pattern}).out);
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) keys.push_back(line);
  }
  std::sort(keys.begin(), keys.end());
  return keys;
}

long long RedisInstance::PttlMs(const std::string &key) const {
  const RunResult r = Cli({"--raw", "PTTL", key});
  return r.exit_code == 0 ? std::atoll(r.out.c_str()) : -2;
}

std::string DelayProxy::Start(const std::string &workdir, int listen_port, int target_port) {
  if (!MakeDirs(workdir, 0755)) return "cannot create " + workdir;
  delay_file_ = workdir + "/delay_ms";
  port_ = listen_port;
  if (!SetDelayMs(0)) return "cannot write " + delay_file_;
  const std::string log = workdir + "/proxy.log";
  if (!process_.Start({"/usr/bin/python3", "-u", CERTGATE_DELAY_PROXY_SCRIPT,
                       std::to_string(listen_port), std::to_string(target_port), delay_file_},
                      log, log)) {
    return "cannot start the delay proxy: " + process_.error();
  }
  if (!WaitForPort(listen_port, 10000)) {
    return "the delay proxy does not listen on " + std::to_string(listen_port) + ":\n" +
           ReadFile(log);
  }
  return "";
}

void DelayProxy::Stop() {
  if (process_.pid() > 0 && process_.Running()) process_.Stop(SIGKILL, 5000);
}

bool DelayProxy::SetDelayMs(int ms) { return WriteFile(delay_file_, std::to_string(ms) + "\n"); }

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
