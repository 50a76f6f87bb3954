// certgate_forwarded_cert: the header parsers (nginx's $ssl_client_escaped_cert,
// Envoy's x-forwarded-client-cert) and cg_request_decide, which judges a
// forwarded certificate per request, only from a trusted proxy.
#include "forwarded_cert.h"

#include <certgate/certgate.h>
#include <certgate/ossl_ptr.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <pki_builder.h>

#include <cctype>
#include <ctime>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "percent_decode.h"

namespace certgate {
namespace {

using pki::PkiBuilder;

// As nginx's $ssl_client_escaped_cert: everything but unreserved characters %-escaped.
std::string Escape(const std::string &text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string Sha256Hex(X509 *cert) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  X509_digest(cert, EVP_sha256(), md, &len);
  std::string hex;
  static const char kHex[] = "0123456789abcdef";
  for (unsigned int i = 0; i < len; ++i) {
    hex += kHex[md[i] >> 4];
    hex += kHex[md[i] & 15];
  }
  return hex;
}

struct Pki {
  PkiBuilder builder{time(nullptr)};
  pki::Issued root = builder.SelfSigned(PkiBuilder::CaSpec("CN=Fwd Root"));
  pki::Issued inter = builder.Issue(root, PkiBuilder::CaSpec("CN=Fwd Issuing"));
  pki::Issued alice = builder.Issue(inter, PkiBuilder::LeafSpec("CN=alice"));
  pki::Issued bob = builder.Issue(root, PkiBuilder::LeafSpec("CN=bob"));
};

const Pki &P() {
  static const Pki *pki = new Pki();
  return *pki;
}

TEST(ForwardedCertParse, PercentDecodeKeepsPlusAndRefusesBadEscapes) {
  EXPECT_EQ(PercentDecode("a%20b+c%2Bd%0A"), std::optional<std::string>("a b+c+d\n"));
  EXPECT_EQ(PercentDecode("%2"), std::nullopt);
  EXPECT_EQ(PercentDecode("%zz"), std::nullopt);
  EXPECT_EQ(PercentDecode("abc%"), std::nullopt);
}

TEST(ForwardedCertParse, EscapedPemLeafAndChain) {
  auto leaf = ParseForwardedCert(ForwardedCert::Format::kEscapedPem, Escape(P().alice.Pem()));
  ASSERT_TRUE(leaf.ok()) << leaf.status().message();
  EXPECT_EQ(X509_cmp(leaf->leaf.get(), P().alice.cert.get()), 0);
  EXPECT_EQ(sk_X509_num(leaf->chain.get()), 0);

  auto chain = ParseForwardedCert(ForwardedCert::Format::kEscapedPem,
                                  Escape(P().alice.Pem() + P().inter.Pem()));
  ASSERT_TRUE(chain.ok()) << chain.status().message();
  ASSERT_EQ(sk_X509_num(chain->chain.get()), 1);
  EXPECT_EQ(X509_cmp(sk_X509_value(chain->chain.get(), 0), P().inter.cert.get()), 0);
}

TEST(ForwardedCertParse, EscapedPemRefusesWhatIsNotOneCleanPemList) {
  const auto error = [](const std::string &value) {
    auto parsed = ParseForwardedCert(ForwardedCert::Format::kEscapedPem, value);
    EXPECT_FALSE(parsed.ok()) << value.substr(0, 60);
    return parsed.status().message();
  };
  EXPECT_EQ(error(""), "it is empty");
  EXPECT_NE(error("garbage").find("does not start with -----BEGIN CERTIFICATE-----"),
            std::string::npos);
  EXPECT_NE(error("%ZZ").find("bad %-escape"), std::string::npos);
  std::string pem = P().alice.Pem();
  pem[pem.size() / 2] = '!';  // base64 broken inside the block
  EXPECT_NE(error(Escape(pem)).find("certificate 1 is not a valid PEM certificate"),
            std::string::npos);
  EXPECT_NE(error(Escape(P().alice.Pem() + "trailing")).find("there is text after certificate 1"),
            std::string::npos);
  std::string eleven;
  for (int i = 0; i < 11; ++i) eleven += P().alice.Pem();
  EXPECT_NE(error(Escape(eleven)).find("more than 10 certificates"), std::string::npos);
  EXPECT_NE(error(std::string(kMaxForwardedHeader + 1, 'A')).find("longer than 65536 bytes"),
            std::string::npos);
  // Repeated headers merged by a server (httpd joins them with ", ").
  EXPECT_NE(error(Escape(P().alice.Pem()) + ", " + Escape(P().bob.Pem()))
                .find("there is text after certificate 1"),
            std::string::npos);
}

TEST(ForwardedCertParse, XfccCertChainAndHash) {
  const std::string cert = "Cert=\"" + Escape(P().alice.Pem()) + "\"";
  const std::string chain = "Chain=\"" + Escape(P().alice.Pem() + P().inter.Pem()) + "\"";
  const std::string hash = "Hash=" + Sha256Hex(P().alice.cert.get());
  const std::string by = "By=spiffe://cluster.local/ns/default/sa/backend";
  for (const std::string &value : {by + ";" + hash + ";" + cert, cert + ";" + chain, chain,
                                   by + ";" + hash + ";" + chain +
                                       ";Subject=\"CN=alice\";"
                                       "URI=;DNS=a.example"}) {
    auto parsed = ParseForwardedCert(ForwardedCert::Format::kXfcc, value);
    ASSERT_TRUE(parsed.ok()) << parsed.status().message() << "\n" << value.substr(0, 80);
    EXPECT_EQ(X509_cmp(parsed->leaf.get(), P().alice.cert.get()), 0);
  }
  auto with_chain = ParseForwardedCert(ForwardedCert::Format::kXfcc, chain);
  EXPECT_EQ(sk_X509_num(with_chain->chain.get()), 1);
  // Field names are case-insensitive; a quoted value may hold ; , and \".
  auto field = XfccField("by=a;subject=\"CN=x\\\",O=y;z\";cert=c", "Subject");
  ASSERT_TRUE(field.ok());
  EXPECT_EQ(field.value(), std::optional<std::string>("CN=x\",O=y;z"));
}

TEST(ForwardedCertParse, XfccRefusals) {
  const auto error = [](const std::string &value) {
    auto parsed = ParseForwardedCert(ForwardedCert::Format::kXfcc, value);
    EXPECT_FALSE(parsed.ok()) << value.substr(0, 60);
    return parsed.status().message();
  };
  const std::string cert = "Cert=\"" + Escape(P().alice.Pem()) + "\"";
  EXPECT_NE(error("By=x;Hash=abc").find("no Cert= or Chain="), std::string::npos);
  EXPECT_NE(error(cert + ",By=y;" + cert).find("more than one element"), std::string::npos);
  EXPECT_NE(error("Cert=\"abc").find("not closed"), std::string::npos);
  EXPECT_NE(error("Cert").find("no '='"), std::string::npos);
  EXPECT_NE(error(cert + ";Hash=00").find("Hash= is not the SHA-256"), std::string::npos);
  EXPECT_NE(error(cert + ";" + cert).find("given twice"), std::string::npos);
  EXPECT_NE(error(cert + ";Chain=\"" + Escape(P().bob.Pem()) + "\"")
                .find("Cert= is not the first certificate of Chain="),
            std::string::npos);
  EXPECT_NE(error("Cert=\"x\"y").find("followed by text"), std::string::npos);
}

// ---- cg_request_decide ----

struct Headers {
  std::multimap<std::string, std::string> values;  // lower-case names
};

size_t LookUp(void *request, const char *name, cg_str *value) {
  auto *headers = static_cast<Headers *>(request);
  std::string lower(name);
  for (char &c : lower) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  const auto range = headers->values.equal_range(lower);
  size_t count = 0;
  for (auto it = range.first; it != range.second; ++it) {
    if (count++ == 0) *value = {it->second.data(), it->second.size()};
  }
  return count;
}

class RequestDecide : public ::testing::Test {
 protected:
  void SetUp() override {
    ctx_.reset(SSL_CTX_new(TLS_server_method()));
    X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx_.get()), P().root.cert.get());
    ssl_.reset(SSL_new(ctx_.get()));
    policy_ = cg_policy_new();
    Set("certgate", {"require"});
    Set("certgate_trusted_proxies", {"127.0.0.0/8"});
    Set("certgate_forwarded_cert", {"header=X-SSL-Client-Cert"});
  }
  void TearDown() override { cg_policy_free(policy_); }

  void Set(const char *key, const std::vector<std::string> &values) {
    std::vector<cg_str> args;
    for (const std::string &value : values) args.push_back({value.data(), value.size()});
    cg_error error;
    ASSERT_EQ(cg_policy_set(policy_, key, args.data(), args.size(), &error), CG_OK)
        << error.message;
  }

  // Decides with `headers` from `peer`; the line is the decision's log line.
  cg_request_decision Decide(Headers *headers, const std::string &peer, SSL *ssl) {
    const cg_request request{ssl, peer.data(), peer.size(), LookUp, headers, 0};
    cg_request_decision made = cg_request_decide(policy_, &request);
    owned_.emplace_back(made.owned, [](cg_decision *d) { cg_decision_release(d); });
    return made;
  }
  static std::string Line(const cg_decision *decision) {
    std::string line(cg_decision_format_log(decision, CG_LOG_KV, nullptr, 0), '\0');
    cg_decision_format_log(decision, CG_LOG_KV, line.data(), line.size() + 1);
    return line;
  }

  struct SslFree {
    void operator()(SSL_CTX *ctx) const { SSL_CTX_free(ctx); }
    void operator()(SSL *ssl) const { SSL_free(ssl); }
  };
  std::unique_ptr<SSL_CTX, SslFree> ctx_;
  std::unique_ptr<SSL, SslFree> ssl_;
  cg_policy *policy_ = nullptr;
  std::vector<std::unique_ptr<cg_decision, void (*)(cg_decision *)>> owned_;
};

TEST_F(RequestDecide, ATrustedProxysCertificateIsJudgedPerRequest) {
  Headers alice{{{"x-ssl-client-cert", Escape(P().alice.Pem() + P().inter.Pem())}}};
  const cg_request_decision allowed = Decide(&alice, "127.0.0.1", ssl_.get());
  ASSERT_NE(allowed.owned, nullptr);
  EXPECT_EQ(cg_decision_verdict(allowed.decision), CG_VERDICT_ALLOW) << Line(allowed.decision);
  EXPECT_NE(
      Line(allowed.decision).find("source=forwarded proxy=127.0.0.1 header=X-SSL-Client-Cert"),
      std::string::npos)
      << Line(allowed.decision);

  // The next request on the same connection carries another client: judged on its own.
  Set("certgate_subject", {"CN=alice"});
  Headers bob{{{"x-ssl-client-cert", Escape(P().bob.Pem())}}};
  const cg_request_decision refused = Decide(&bob, "127.0.0.1", ssl_.get());
  EXPECT_EQ(cg_decision_reason(refused.decision), CG_REASON_IDENTITY_MISMATCH)
      << Line(refused.decision);
  const cg_request_decision again = Decide(&alice, "127.0.0.1", ssl_.get());
  EXPECT_EQ(cg_decision_verdict(again.decision), CG_VERDICT_ALLOW) << Line(again.decision);
}

TEST_F(RequestDecide, AnIntermediateOnlyTheClientKnowsIsChainIncomplete) {
  Headers leaf_only{{{"x-ssl-client-cert", Escape(P().alice.Pem())}}};
  // (The process may have learnt the intermediate from an earlier test: a fresh
  // leaf from an unseen intermediate.)
  PkiBuilder builder(time(nullptr));
  const auto other = builder.Issue(P().root, PkiBuilder::CaSpec("CN=Unseen Issuing"));
  const auto carol = builder.Issue(other, PkiBuilder::LeafSpec("CN=carol"));
  Headers carol_only{{{"x-ssl-client-cert", Escape(carol.Pem())}}};
  const cg_request_decision made = Decide(&carol_only, "127.0.0.1", ssl_.get());
  EXPECT_EQ(cg_decision_reason(made.decision), CG_REASON_CHAIN_INCOMPLETE) << Line(made.decision);
}

TEST_F(RequestDecide, AnUntrustedAddressIsIgnoredAndSaysSo) {
  Headers forged{{{"x-ssl-client-cert", Escape(P().alice.Pem() + P().inter.Pem())}}};
  const cg_request_decision made = Decide(&forged, "192.0.2.7", ssl_.get());
  EXPECT_EQ(made.owned, nullptr);
  EXPECT_EQ(cg_decision_reason(made.decision), CG_REASON_NO_CERT) << Line(made.decision);
  const std::string notice(made.notice.data, made.notice.len);
  EXPECT_NE(notice.find("certgate: forwarded_cert=ignored header=X-SSL-Client-Cert "
                        "client=192.0.2.7"),
            std::string::npos)
      << notice;
  // Rate-limited per address: 5 per minute, then the next says how many were left out.
  for (int i = 1; i < 5; ++i) EXPECT_GT(Decide(&forged, "192.0.2.7", ssl_.get()).notice.len, 0u);
  EXPECT_EQ(Decide(&forged, "192.0.2.7", ssl_.get()).notice.len, 0u);
  EXPECT_GT(Decide(&forged, "192.0.2.8", ssl_.get()).notice.len, 0u);
}

TEST_F(RequestDecide, NoHeaderFromATrustedProxyIsNoCertWithTheProxyHint) {
  Headers none;
  const cg_request_decision made = Decide(&none, "127.0.0.1", ssl_.get());
  EXPECT_EQ(cg_decision_reason(made.decision), CG_REASON_NO_CERT);
  const std::string line = Line(made.decision);
  EXPECT_NE(line.find("the trusted proxy 127.0.0.1 forwarded no client certificate (no "
                      "X-SSL-Client-Cert header)"),
            std::string::npos)
      << line;
  EXPECT_NE(line.find("certgate_forwarded_cert"), std::string::npos) << line;
}

TEST_F(RequestDecide, AMalformedOrRepeatedHeaderIsRefusedAsMalformed) {
  Headers bad{{{"x-ssl-client-cert", "-----BEGIN%20CERTIFICATE-----%0Anot base64"}}};
  cg_request_decision made = Decide(&bad, "127.0.0.1", ssl_.get());
  EXPECT_EQ(cg_decision_reason(made.decision), CG_REASON_MALFORMED);
  EXPECT_NE(Line(made.decision)
                .find("the X-SSL-Client-Cert header forwarded by the trusted proxy 127.0.0.1 "
                      "does not decode: certificate 1 is not a valid PEM certificate"),
            std::string::npos)
      << Line(made.decision);
  Headers twice{{{"x-ssl-client-cert", Escape(P().alice.Pem() + P().inter.Pem())},
                 {"x-ssl-client-cert", Escape(P().bob.Pem())}}};
  made = Decide(&twice, "127.0.0.1", ssl_.get());
  EXPECT_EQ(cg_decision_reason(made.decision), CG_REASON_MALFORMED);
  EXPECT_NE(Line(made.decision).find("it appears 2 times"), std::string::npos);
}

TEST_F(RequestDecide, XfccFromATrustedProxy) {
  Set("certgate_forwarded_cert", {"xfcc"});
  Headers xfcc{
      {{"x-forwarded-client-cert", "Hash=" + Sha256Hex(P().alice.cert.get()) + ";Chain=\"" +
                                       Escape(P().alice.Pem() + P().inter.Pem()) + "\""}}};
  const cg_request_decision made = Decide(&xfcc, "127.0.0.1", ssl_.get());
  EXPECT_EQ(cg_decision_verdict(made.decision), CG_VERDICT_ALLOW) << Line(made.decision);
  EXPECT_NE(Line(made.decision).find("header=X-Forwarded-Client-Cert"), std::string::npos);
}

TEST_F(RequestDecide, WithoutTlsThereAreNoTrustAnchors) {
  Headers alice{{{"x-ssl-client-cert", Escape(P().alice.Pem() + P().inter.Pem())}}};
  const cg_request_decision made = Decide(&alice, "127.0.0.1", nullptr);
  EXPECT_EQ(cg_decision_reason(made.decision), CG_REASON_INTERNAL_ERROR);
  EXPECT_NE(Line(made.decision).find("needs the proxy's connection to this server to be TLS"),
            std::string::npos);
}

TEST_F(RequestDecide, OffOrUnsetJudgesTheConnection) {
  Set("certgate_forwarded_cert", {"off"});
  Headers alice{{{"x-ssl-client-cert", Escape(P().alice.Pem() + P().inter.Pem())}}};
  const cg_request_decision made = Decide(&alice, "127.0.0.1", ssl_.get());
  EXPECT_EQ(made.owned, nullptr);
  EXPECT_EQ(made.notice.len, 0u);
  EXPECT_EQ(cg_decision_reason(made.decision), CG_REASON_NO_CERT);
}

TEST(ForwardedCertPolicy, DirectiveValues) {
  cg_policy *policy = cg_policy_new();
  cg_error error;
  auto set = [&](std::vector<std::string> values) {
    std::vector<cg_str> args;
    for (const std::string &value : values) args.push_back({value.data(), value.size()});
    return cg_policy_set(policy, "certgate_forwarded_cert", args.data(), args.size(), &error);
  };
  EXPECT_EQ(set({"escaped"}), CG_OK);
  EXPECT_EQ(set({"xfcc", "header=X-Client-XFCC"}), CG_OK);
  EXPECT_EQ(set({"header=X-SSL-Client-Cert"}), CG_OK);
  EXPECT_EQ(set({"off"}), CG_OK);
  EXPECT_EQ(set({"pem"}), CG_ERR_INVALID);
  EXPECT_NE(std::string(error.message).find("one of off, escaped, xfcc, header=NAME"),
            std::string::npos)
      << error.message;
  EXPECT_EQ(set({"escaped", "xfcc"}), CG_ERR_INVALID);
  EXPECT_EQ(set({"header=X Y"}), CG_ERR_INVALID);
  EXPECT_EQ(set({"off", "header=X"}), CG_ERR_INVALID);
  cg_policy_free(policy);
}

}  // namespace
}  // namespace certgate
