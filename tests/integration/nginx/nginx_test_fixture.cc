// The harness of nginx_test_fixture.h and the main server's configuration.
#include "nginx_test_fixture.h"

#include <signal.h>

#include <regex>

namespace certgate::nginx_test {

std::string Nginx::Prepare(const std::string &tag) {
  nginx_ = h::FindProgram(CERTGATE_NGINX_BINARY);
  if (nginx_.empty()) {
    return std::string(CERTGATE_NGINX_BINARY) +
           " is missing: install Debian's nginx (apt-get install nginx-core nginx-dev), "
           "as the test setup script does";
  }
  if (h::FileSize(CERTGATE_NGINX_MODULE_PATH) <= 0) {
    return std::string("module not built: ") + CERTGATE_NGINX_MODULE_PATH;
  }
  dir_ = std::make_unique<h::TempDir>(tag);
  if (!dir_->ok()) return "cannot create a temp dir";
  for (const char *sub : {"/logs", "/tmp"}) h::MakeDirs(dir() + sub);
  weak_conf_ = h::WriteWeakClientOpensslConf(dir());
  return h::GeneratePki(pki());
}

std::string Nginx::Launch(const std::string &config, const std::vector<int> &ports) {
  if (!h::WriteFile(conf(), config)) return "cannot write nginx.conf";
  h::RunResult test = h::Run({nginx_, "-t", "-p", dir(), "-c", conf()});
  if (test.exit_code != 0) return "nginx -t failed:\n" + test.err;
  if (!process_.Start({nginx_, "-p", dir(), "-c", conf()}, dir() + "/logs/stdout.log",
                      dir() + "/logs/stderr.log")) {
    return "cannot start nginx: " + process_.error();
  }
  for (int port : ports) {
    if (!h::WaitForPort(port, 10000)) {
      return "nginx does not listen on " + std::to_string(port) + ":\n" +
             h::ReadFile(dir() + "/logs/stderr.log") + h::ReadFile(error_log());
    }
  }
  return "";
}

std::string Nginx::Relaunch(int sig, const std::vector<int> &ports) {
  StopNginx(sig);
  return Launch(h::ReadFile(conf()), ports);
}

void Nginx::StopNginx(int sig) {
  if (process_.pid() > 0) process_.Stop(sig, 10000);
}

std::string Nginx::ConfigHead(int workers) const {
  return "load_module " CERTGATE_NGINX_MODULE_PATH ";\n" +
         h::NginxConfigHead(dir(), workers, {error_log(), notice_log() + " notice"});
}

h::RunResult Nginx::TestLocationConfig(const std::string &name, const std::string &directives,
                                       const std::string &top) const {
  const std::string path = dir() + "/" + name;
  h::WriteFile(path, "load_module " CERTGATE_NGINX_MODULE_PATH ";\n" + top + "pid " + dir() +
                         "/t.pid;\nerror_log " + dir() +
                         "/logs/t.log;\n"
                         "events {}\n"
                         "http {\n"
                         "  server {\n"
                         "    listen 127.0.0.1:18490;\n"
                         "    location / {\n" +
                         directives +
                         "    }\n"
                         "  }\n"
                         "}\n");
  return h::Run({nginx_, "-t", "-p", dir(), "-c", path});
}

Response Nginx::Curl(int port, const std::string &path, const std::string &client,
                     const std::vector<std::string> &extra, const std::string &host) const {
  std::vector<std::string> argv = {
      "curl", "-sSk", "--max-time", "10",
      "-o",   "-",    "-w",         "\n%{http_code} %{http_version} %{content_type}"};
  std::string authority = "127.0.0.1";
  if (!host.empty()) {
    argv.push_back("--resolve");
    argv.push_back(host + ":" + std::to_string(port) + ":127.0.0.1");
    authority = host;
  }
  if (!client.empty()) {
    argv.push_back("--cert");
    argv.push_back(pki() + "/clients/" + client + ".chain.pem");
    argv.push_back("--key");
    argv.push_back(pki() + "/clients/" + client + ".key");
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back("https://" + authority + ":" + std::to_string(port) + path);
  // Deliberately weak certificates (RSA-1024, SHA-1) need the client's
  // OpenSSL security level 0 to be loaded at all; it does not change what
  // the server sees.
  h::RunResult r = h::Run(argv, {"OPENSSL_CONF=" + weak_conf_});
  Response out;
  out.curl_exit = r.exit_code;
  out.err = r.err;
  const size_t nl = r.out.rfind('\n');
  const std::string tail = nl == std::string::npos ? r.out : r.out.substr(nl + 1);
  out.body = nl == std::string::npos ? "" : r.out.substr(0, nl);
  std::smatch m;
  if (std::regex_match(tail, m, std::regex("(\\d+) (\\S+) ?(.*)"))) {
    out.status = std::stoi(m[1]);
    out.http_version = m[2];
    out.content_type = m[3];
  }
  return out;
}

h::RunResult Nginx::SClient(int port, const std::string &client, const std::string &path,
                            const std::vector<std::string> &extra) const {
  std::vector<std::string> argv = {
      "openssl",     "s_client",  "-connect", "127.0.0.1:" + std::to_string(port),
      "-servername", "localhost", "-ign_eof"};
  if (!client.empty()) {
    argv.insert(argv.end(), {"-cert", pki() + "/clients/" + client + ".crt", "-key",
                             pki() + "/clients/" + client + ".key", "-cert_chain",
                             pki() + "/ca/intermediate.pem"});
  }
  argv.insert(argv.end(), extra.begin(), extra.end());
  return h::Run(argv, {"OPENSSL_CONF=" + weak_conf_},
                "GET " + path + " HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", 15000);
}

Response Nginx::SClientRequest(int port, const std::string &client, const std::string &path) const {
  h::RunResult r = SClient(port, client, path, {"-quiet"});
  Response out;
  out.err = r.err;
  const size_t start = r.out.find("HTTP/1.1 ");
  const size_t end = r.out.find("\r\n\r\n", start == std::string::npos ? 0 : start);
  if (start == std::string::npos || end == std::string::npos) {
    out.err += "\nno HTTP response in: " + r.out;
    return out;
  }
  out.curl_exit = 0;
  out.http_version = "1.1";
  out.status = std::stoi(r.out.substr(start + 9, 3));
  const std::string headers = r.out.substr(start, end - start);
  std::smatch m;
  if (std::regex_search(headers, m, std::regex("\r\nContent-Type: ([^\r]*)"))) {
    out.content_type = m[1];
  }
  out.body = r.out.substr(end + 4);
  return out;
}

// ---- the main server ----

std::string MainServer::Start() {
  std::string error = Prepare("certgate-nginx");
  if (!error.empty()) return error;
  const std::string d = dir();
  h::MakeDirs(d + "/html/static");
  h::WriteFile(d + "/html/static/index.html", "static index\n");
  h::WriteFile(d + "/html/denied.html", "custom denied page\n");
  // An SSI page in a location without certgate, including the application.
  h::MakeDirs(d + "/html/ssi");
  h::WriteFile(d + "/html/ssi/page.html",
               "before <!--# include virtual=\"/app/app.txt?tag=ssi-include\" --> after\n");
  // An SSI page under certgate require, including a location under it too.
  h::MakeDirs(d + "/html/ssi-req");
  h::WriteFile(d + "/html/ssi-req/page.html",
               "before <!--# include virtual=\"/req?tag=ssi-count\" --> after\n");
  h::MakeDirs(d + "/backend-www");
  h::WriteFile(d + "/backend-www/app.txt", "application answer\n");
  h::MakeWorldReadable(d);
  // The pin of certgate_pin: the `good` client's certificate fingerprint.
  std::smatch m;
  const std::string fps = h::ReadFile(pki() + "/clients/fingerprints.txt");
  if (!std::regex_search(fps, m, std::regex("(^|\\n)good [^\\n]*(sha256:[0-9A-Fa-f]+)"))) {
    return "no fingerprint of good in fingerprints.txt";
  }
  good_pin_ = m[2];
  error = backend_.Start(d + "/backend", d + "/backend-www", kAppBackendPort);
  if (!error.empty()) return "cannot start the application backend: " + error;
  return Launch(Config(403), {kMainPort, kServerReturnPort, kSniPort, kHandshakePort, kBackendPort,
                              kVerifyOptionalPort, kServerVariablePort, kServerSetPort});
}

void MainServer::Stop() {
  StopNginx(SIGQUIT);
  backend_.Stop();
}

std::string MainServer::Config(int reload_status) const {
  const std::string d = dir();
  const std::string p = pki();
  const std::string tls = "    ssl_certificate " + p + "/server/server-chain.pem;\n" +
                          "    ssl_certificate_key " + p + "/server/server.key;\n" +
                          "    ssl_trusted_certificate " + p + "/ca/trust.pem;\n";
  // error_log at the default level (error): refusals must be visible there.
  return ConfigHead(2) +
         "  log_format cg '$request_uri status=$status verdict=$certgate_verdict "
         "reason=$certgate_reason substatus=$certgate_substatus subject=\"$certgate_subject\"';\n"
         "  access_log " +
         access_log() +
         " cg;\n"
         "  ssl_protocols TLSv1.2 TLSv1.3;\n"
         "  ssl_session_cache shared:SSL:1m;\n"
         "  ssl_session_tickets on;\n"
         "  map $certgate_verdict $certgate_tag { allow yes; default no; }\n"
         "  server {\n"
         "    listen 127.0.0.1:" +
         std::to_string(kMainPort) +
         " ssl http2;\n"
         "    server_name localhost;\n" +
         tls + "    root " + d +
         "/html;\n"
         "    certgate require;\n"
         "    location = /req { return 200 \"ok\\n\"; }\n"
         "    location = /issuers { certgate_trusted_issuers " +
         p +
         "/ca/intermediate.pem; return 200 \"ok\\n\"; }\n"
         "    location = /people { certgate_subject OU=People; return 200 \"ok\\n\"; }\n"
         "    location = /people-regex { certgate_subject \"~^CN=[^,]+,OU=People\";"
         " return 200 \"ok\\n\"; }\n"
         "    location = /staff-regex { certgate_subject \"~^CN=[^,]+,OU=Staff\";"
         " return 200 \"ok\\n\"; }\n"
         "    location = /pinned { certgate_pin " +
         good_pin_ +
         "; return 200 \"ok\\n\"; }\n"
         "    location = /detail { certgate_reject_detail on; return 200 \"ok\\n\"; }\n"
         "    location = /json { certgate_reject_body json; return 200 \"ok\\n\"; }\n"
         "    location = /html { certgate_reject_body html; return 200 \"ok\\n\"; }\n"
         "    location = /status451 { certgate_reject_status 451; return 200 \"ok\\n\"; }\n"
         "    location = /nobody { certgate_reject_body off; error_page 403 /denied.html;"
         " return 200 \"ok\\n\"; }\n"
         "    location = /denied.html { certgate off; internal; }\n"
         "    location = /optional { certgate optional;"
         " return 200 \"optional verdict=$certgate_verdict\\n\"; }\n"
         "    location /static/ { satisfy any; allow all; }\n"
         "    location = /accepts { certgate_log kv accepts; return 200 \"ok\\n\"; }\n"
         "    location = /v3-rules { certgate_require_eku any; certgate_require_key_usage off;"
         " return 200 \"ok\\n\"; }\n"
         "    location = /lenient { certgate_strict off; certgate_require_eku any;"
         " certgate_require_key_usage off; return 200 \"ok\\n\"; }\n"
         "    location = /proxy { proxy_set_header X-Certgate-Subject $certgate_subject;"
         " proxy_pass http://127.0.0.1:" +
         std::to_string(kBackendPort) +
         "/echo; }\n"
         "    location = /map { certgate optional; return 200 \"tag=$certgate_tag\\n\"; }\n"
         "    location = /metrics { certgate off; certgate_status on; }\n"
         "    location = /reload { certgate_reject_status " +
         std::to_string(reload_status) +
         "; return 200 \"ok\\n\"; }\n"
         // Issue 9 §3: the application behind a reverse proxy, and every way
         // a request can reach it or a variable can be read.
         "    location = /var { return 200 \"verdict=$certgate_verdict\\n\"; }\n"
         "    location /app/ { proxy_pass http://127.0.0.1:" +
         std::to_string(kAppBackendPort) +
         "/; }\n"
         "    location = /front { certgate_reject_body off; error_page 403 =200 /app/app.txt;"
         " return 200 \"front\\n\"; }\n"
         "    location = /named { certgate_reject_body off; error_page 403 = @app;"
         " return 200 \"named\\n\"; }\n"
         "    location @app { proxy_pass http://127.0.0.1:" +
         std::to_string(kAppBackendPort) +
         "; }\n"
         "    location = /rewrite { rewrite ^ /app/app.txt last; }\n"
         "    location /ssi/ { certgate off; ssi on; ssi_types text/plain; }\n"
         "    location /ssi-req/ { ssi on; ssi_types text/plain; }\n"
         // Issue 9 §5: bodies longer than any fixed buffer.
         "    location = /longjson { certgate_subject OU=People; certgate_reject_body json;"
         " certgate_reject_detail on; return 200 \"ok\\n\"; }\n"
         "    location = /longhtml { certgate_subject OU=People; certgate_reject_body html;"
         " certgate_reject_detail on; return 200 \"ok\\n\"; }\n"
         "  }\n"
         "  server {\n"
         "    listen 127.0.0.1:" +
         std::to_string(kServerVariablePort) + " ssl;\n" + tls +
         "    certgate require;\n"
         "    return 200 \"verdict=$certgate_verdict\\n\";\n"
         "  }\n"
         "  server {\n"
         "    listen 127.0.0.1:" +
         std::to_string(kServerSetPort) + " ssl;\n" + tls +
         "    certgate require;\n"
         "    set $x $certgate_subject;\n"
         // nginx's page for the refusal, so the error_page below applies.
         "    certgate_reject_body off;\n"
         "    rewrite ^/moved$ /elsewhere redirect;\n"
         "    error_page 403 =200 /app/app.txt;\n"
         "    if ($uri = /app/app.txt) { return 200 \"server-level answer to the error "
         "page\\n\"; }\n"
         "    return 200 \"subject=$x\\n\";\n"
         "  }\n"
         "  server {\n"
         "    listen 127.0.0.1:" +
         std::to_string(kServerReturnPort) + " ssl;\n" + tls +
         "    certgate require;\n"
         "    return 200 \"server-level return\\n\";\n"
         "  }\n"
         "  server {\n"
         "    listen 127.0.0.1:" +
         std::to_string(kSniPort) +
         " ssl;\n"
         "    server_name a.test;\n" +
         tls +
         "    certgate require;\n"
         "    certgate_trusted_issuers " +
         p +
         "/ca/intermediate.pem;\n"
         "    location / { return 200 \"a\\n\"; }\n"
         "  }\n"
         "  server {\n"
         "    listen 127.0.0.1:" +
         std::to_string(kSniPort) +
         " ssl;\n"
         "    server_name b.test;\n" +
         tls +
         "    certgate require;\n"
         "    certgate_trusted_issuers " +
         p +
         "/ca/other-intermediate.pem;\n"
         "    location / { return 200 \"b\\n\"; }\n"
         "  }\n"
         "  server {\n"
         "    listen 127.0.0.1:" +
         std::to_string(kHandshakePort) + " ssl;\n" + tls +
         "    certgate require;\n"
         "    certgate_reject_at handshake;\n"
         "    location / { return 200 \"handshake ok\\n\"; }\n"
         "  }\n"
         "  server {\n"
         "    listen 127.0.0.1:" +
         std::to_string(kBackendPort) +
         ";\n"
         "    location = /echo { return 200 \"subject=$http_x_certgate_subject\\n\"; }\n"
         "    location = /plain { certgate require; return 200 \"plain\\n\"; }\n"
         // Issue 12 §5: a TLS-terminating proxy in front of a certgate server.
         "    location = /via-proxy {\n"
         "      proxy_pass https://127.0.0.1:" +
         std::to_string(kVerifyOptionalPort) +
         "/?case=via-proxy;\n"
         "      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;\n"
         "    }\n"
         "    location = /via-trusted-proxy {\n"
         "      proxy_pass https://127.0.0.1:" +
         std::to_string(kVerifyOptionalPort) +
         "/behind-proxy?case=via-trusted-proxy;\n"
         "    }\n"
         "  }\n"
         "  server {\n"
         "    listen 127.0.0.1:" +
         std::to_string(kVerifyOptionalPort) + " ssl;\n" + tls +
         "    ssl_verify_client optional;\n"
         "    ssl_client_certificate " +
         p +
         "/ca/trust.pem;\n"
         "    certgate require;\n"
         "    location / { return 200 \"ok\\n\"; }\n"
         "    location /behind-proxy {\n"
         "      certgate_trusted_proxies 127.0.0.0/8 ::1;\n"
         "      return 200 \"ok\\n\";\n"
         "    }\n"
         "  }\n"
         "}\n";
}

namespace {
MainServer *g_nginx = nullptr;
std::string g_start_error;
}  // namespace

void NginxTest::SetUpTestSuite() {
  if (g_nginx != nullptr) return;
  g_nginx = new MainServer();
  g_start_error = g_nginx->Start();
}

void NginxTest::TearDownTestSuite() {
  if (g_nginx == nullptr) return;
  g_nginx->Stop();
  delete g_nginx;
  g_nginx = nullptr;
}

void NginxTest::SetUp() {
  // A missing nginx is a failure, never a skip: the test setup installs it.
  ASSERT_TRUE(g_start_error.empty()) << g_start_error;
}

MainServer &NginxTest::nginx() { return *g_nginx; }

std::string AccessLine(const std::string &uri) {
  return h::WaitForLine(g_nginx->access_log(), {uri + " "});
}

}  // namespace certgate::nginx_test
