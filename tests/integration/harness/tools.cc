// certgate integration-test harness (harness.h): build products and tools
// (certgate-mkpki, programs in PATH, client and nginx configs).
#include <unistd.h>

#include <cstdlib>
#include <sstream>

#include "harness.h"

namespace certgate::harness {

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

}  // namespace certgate::harness
