/* Compiled as C: guards that certgate.h stays a C header, and drives the C API
 * the way the adapters do. Each function returns 0 on success or the number of
 * the failed check. */
#include <certgate/certgate.h>
#include <openssl/err.h>
#include <string.h>

#define CHECK(n, cond)       \
  do {                       \
    if (!(cond)) return (n); \
  } while (0)

static cg_str str(const char *s) {
  cg_str out;
  out.data = s;
  out.len = strlen(s);
  return out;
}

int cg_c_test_policy(char *message, size_t size) {
  cg_error error;
  cg_policy *parent = cg_policy_new();
  cg_policy *child = cg_policy_new();
  cg_str args[2];
  int failed = 0;

  args[0] = str("Require");
  if (cg_policy_set(parent, "certgate", args, 1, &error) != CG_OK) failed = 1;
  args[0] = str("rsa=abc");
  if (!failed && cg_policy_set(child, "CertGateMinKey", args, 1, &error) != CG_ERR_INVALID) {
    failed = 2;
  }
  if (!failed) strncpy(message, error.message, size - 1);
  if (!failed && cg_policy_enabled(child)) failed = 3;
  if (!failed && cg_policy_inherit(child, parent, &error) != CG_OK) failed = 4;
  if (!failed && !cg_policy_enabled(child)) failed = 5;
  if (!failed && cg_policy_reject_status(child, CG_REASON_EXPIRED) != 403) failed = 6;
  if (!failed && cg_policy_reject_status(child, CG_REASON_INTERNAL_ERROR) != 500) failed = 7;
  args[0] = str("handshake");
  if (!failed && (cg_policy_set(child, "certgate_reject_at", args, 1, &error) != CG_OK ||
                  !cg_policy_reject_at_handshake(child))) {
    failed = 8;
  }
  if (!failed && ERR_peek_error() != 0) failed = 9; /* error queue left clean */
  cg_policy_free(child);
  cg_policy_free(parent);
  return failed;
}

int cg_c_test_reasons(void) {
  CHECK(1, strcmp(cg_reason_code(CG_REASON_NO_CERT), "no_cert") == 0);
  CHECK(2, strcmp(cg_reason_substatus(CG_REASON_REVOKED), "403.13") == 0);
  CHECK(3, cg_reason_http_status(CG_REASON_EXPIRED) == 403);
  CHECK(4, strlen(cg_reason_hint(CG_REASON_CHAIN_INCOMPLETE)) > 10);
  CHECK(5, strcmp(cg_field_name(CG_FIELD_FINGERPRINT), "fingerprint") == 0);
  CHECK(6, cg_field_from_name("reason", 6) == CG_FIELD_REASON);
  CHECK(7, cg_field_from_name("nope", 4) == -1);
  return 0;
}

/* The counters page from C: a cg_counters snapshot in, Prometheus text out. */
int cg_c_test_counters(void) {
  cg_counters counters;
  char page[4096];
  size_t len;
  memset(&counters, 0, sizeof counters);
  counters.decisions[CG_VERDICT_DENY][CG_REASON_REVOKED] = 12;
  counters.handshake_refusals = 2;
  len = cg_counters_format(&counters, page, sizeof page);
  CHECK(1, len > 0 && len < sizeof page && len == strlen(page));
  CHECK(2, len == cg_counters_format(&counters, NULL, 0));
  CHECK(3, strstr(page, "certgate_decisions_total{verdict=\"deny\",reason=\"revoked\"} 12\n"));
  CHECK(4, strstr(page, "\ncertgate_handshake_refusals_total 2\n"));
  CHECK(5, cg_counters_format(NULL, page, sizeof page) == len - 1);
  return 0;
}

/* No certificate under `require`: no_cert, and the log line and body say so. */
int cg_c_test_no_cert(void) {
  cg_error error;
  cg_policy *policy = cg_policy_new();
  cg_str arg = str("require");
  cg_decision *decision;
  char line[512];
  char body[256];
  const char *type = NULL;
  int failed = 0;

  cg_policy_set(policy, "certgate", &arg, 1, &error);
  decision = cg_evaluate(policy, NULL, NULL, NULL, 0);
  if (cg_decision_verdict(decision) != CG_VERDICT_DENY) failed = 1;
  if (!failed && cg_decision_reason(decision) != CG_REASON_NO_CERT) failed = 2;
  if (!failed && cg_decision_format_log(decision, CG_LOG_KV, line, sizeof line) == 0) failed = 3;
  if (!failed && strncmp(line, "certgate: verdict=deny reason=no_cert substatus=403.7", 52) != 0) {
    failed = 4;
  }
  if (!failed && cg_decision_format_body(decision, policy, &type, body, sizeof body) == 0) {
    failed = 5;
  }
  if (!failed && (strcmp(type, "text/plain") != 0 || strstr(body, "no_cert") == NULL)) failed = 6;
  if (!failed && cg_decision_field(decision, CG_FIELD_SUBJECT).len != 0) failed = 7;
  /* snprintf-like: the whole length, what fits written and terminated */
  if (!failed && cg_decision_format_log(decision, CG_LOG_KV, line, 10) !=
                     cg_decision_format_log(decision, CG_LOG_KV, NULL, 0)) {
    failed = 8;
  }
  if (!failed &&
      (strlen(line) != 9 || cg_decision_format_log(decision, CG_LOG_KV, NULL, 0) <= 10)) {
    failed = 9;
  }
  cg_decision_free(decision);
  cg_policy_free(policy);
  return failed;
}

int cg_c_test_evaluate(X509 *leaf, STACK_OF(X509) * untrusted, X509_STORE *trust, int64_t now) {
  cg_error error;
  cg_policy *policy = cg_policy_new();
  cg_str args[1];
  cg_decision *decision;
  cg_str subject;
  int failed = 0;

  args[0] = str("require");
  cg_policy_set(policy, "certgate", args, 1, &error);
  decision = cg_evaluate(policy, leaf, untrusted, trust, now);
  if (cg_decision_verdict(decision) != CG_VERDICT_ALLOW) failed = 1;
  subject = cg_decision_field(decision, CG_FIELD_SUBJECT);
  if (!failed && (subject.len == 0 || strstr(subject.data, "CN=alice") == NULL)) failed = 2;
  if (!failed && ERR_peek_error() != 0) failed = 3;
  cg_decision_free(decision);

  args[0] = str("OU=Nobody");
  cg_policy_set(policy, "certgate_subject", args, 1, &error);
  decision = cg_evaluate(policy, leaf, untrusted, trust, now);
  if (!failed && cg_decision_reason(decision) != CG_REASON_IDENTITY_MISMATCH) failed = 4;
  cg_decision_free(decision);
  cg_policy_free(policy);
  return failed;
}
