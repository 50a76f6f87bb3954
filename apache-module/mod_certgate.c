/*
 * mod_certgate: client-certificate (mTLS) policy for Apache httpd 2.4.
 *
 * A thin adapter over the certgate core (certgate.h). It does these things only:
 *   - forwards the CertGate<Key> directives to the core (cg_policy_set) and lets
 *     the core merge them (server -> virtual host -> <Directory>/<Location>);
 *   - hands the core the TLS objects it needs: every SSL vhost's SSL_CTX (mod_ssl's
 *     init_server hook) and every connection's SSL* (mod_ssl's pre_handshake hook);
 *   - turns the core's decision into httpd's outputs: status, body, CERTGATE_*
 *     environment variables, one error-log line per refusal; a decision still
 *     waiting for a revocation fetch blocks the request thread, bounded;
 *   - prepares the revocation cache directories for the child user (the core
 *     opens the cache itself, in each child);
 *   - counts decisions in shared memory and serves them where CertGateStatus is
 *     on (the core writes the page);
 *   - nothing else: every rule lives in the core.
 *
 * Layout follows modules/aaa/mod_authz_core.c: per-directory and per-server
 * config records, "new if set, else base" merging, a command table, hooks
 * registered in register_hooks, and the module record at the end.
 */

#include "httpd.h"
#include "http_config.h"
#include "http_core.h"
#include "http_log.h"
#include "http_main.h"
#include "http_protocol.h"
#include "http_request.h"
#include "mod_core.h"
#include "unixd.h"
#include "util_filter.h"

#include "apr_atomic.h"
#include "apr_hash.h"
#include "apr_lib.h"
#include "apr_optional_hooks.h"
#include "apr_shm.h"
#include "apr_strings.h"
#include "apr_thread_mutex.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <certgate/certgate.h>

/*
 * mod_ssl's OpenSSL-level optional hooks. Their header (mod_ssl_openssl.h) is not
 * shipped by Debian's apache2-dev; the hooks are found by name at run time, so
 * declaring the same prototypes here is enough (mod_ssl 2.4.20 and later).
 */
#ifndef SSL_DECLARE
#define SSL_DECLARE(type) type
#endif
APR_DECLARE_EXTERNAL_HOOK(ssl, SSL, int, init_server,
                          (server_rec * s, apr_pool_t *p, int is_proxy, SSL_CTX *ctx))
APR_DECLARE_EXTERNAL_HOOK(ssl, SSL, int, pre_handshake, (conn_rec * c, SSL *ssl, int is_proxy))

/* The one exported symbol: AP_MODULE_DECLARE_DATA is empty on Unix, and the
 * module is built with -fvisibility=hidden. */
#if defined(__GNUC__)
#define CG_MODULE_EXPORT __attribute__((visibility("default")))
#else
#define CG_MODULE_EXPORT
#endif
extern module AP_MODULE_DECLARE_DATA certgate_module CG_MODULE_EXPORT;

#ifdef APLOG_USE_MODULE
APLOG_USE_MODULE(certgate);
#endif

/* Notes on the request: a refusal by certgate (for the ErrorDocument redirect
 * that follows) and the Content-Type of certgate's own body. */
#define CG_NOTE_DENIED "certgate-denied"
#define CG_NOTE_CONTENT_TYPE "certgate-content-type"
#define CG_ERROR_FILTER "CERTGATE_ERROR_TYPE"

typedef struct {
    cg_policy *policy; /* what was set here, or the merge result; NULL: nothing */
} certgate_dir_conf;

typedef struct {
    int enables; /* a CertGate optional|require directive appears in this server */
} certgate_srv_conf;

/* ---- counters ----------------------------------------------------------------
 *
 * What CertGateStatus shows, summed over every child: one decision per client
 * request by verdict and reason (the core's rule: not the subrequests, not the
 * judgements after an internal redirect or ErrorDocument), and the handshakes
 * aborted under CertGateRejectAt handshake. They live in an anonymous shared
 * memory segment the parent creates in post_config; children inherit it at
 * fork and the core adds with atomics, so no lock is needed.
 *
 * The segment is kept in the process pool, not pconf, and found again by its
 * userdata key on a graceful restart (the module itself is unloaded and loaded
 * again then, which resets every static): the counters go on across restarts,
 * like nginx's shared zone across reloads, and the old generation's children
 * still finishing their requests keep counting into the same memory.
 */
#define CG_COUNTERS_KEY "certgate-counters"
#define CG_COUNTERS_FILE "certgate-counters"

static cg_counters *counters;

/* Set on the first request of an internal-redirect chain once it is judged. */
#define CG_NOTE_JUDGED "certgate-judged"

/* Counts the decision of `r` by the core's rule: told whether `r` is a
 * subrequest and whether the client's request was judged before (in the
 * request an internal redirect or ErrorDocument started from). */
static void count_decision(request_rec *r, const cg_decision *decision)
{
    request_rec *first = r;
    while (first->prev != NULL) {
        first = first->prev;
    }
    if (decision != NULL && cg_decision_pending(decision)) {
        return;
    }
    cg_counters_add_decision(counters, decision, r->main != NULL,
                             apr_table_get(first->notes, CG_NOTE_JUDGED) != NULL);
    if (r->main == NULL) {
        apr_table_setn(first->notes, CG_NOTE_JUDGED, "1");
    }
}

/* ---- merging ---------------------------------------------------------------
 *
 * httpd merges <Directory>/<Location> configs per request, in the request pool.
 * cg_ssl_decide() keeps one decision per (connection, policy object), so policy
 * objects must live as long as the configuration: a per-request merge result
 * would make a keep-alive connection collect one decision per request, and a
 * freed policy's address could be reused by another location's policy. So every
 * merge result is memoized for the configuration's life, keyed by its two inputs
 * (which are themselves configuration-lifetime: parsed records or memoized
 * merges). The table only ever holds the distinct section combinations the
 * configuration can produce.
 */
typedef struct {
    const certgate_dir_conf *base;
    const certgate_dir_conf *add;
} merge_key;

static apr_pool_t *memo_pool;
static apr_hash_t *memo;
#if APR_HAS_THREADS
static apr_thread_mutex_t *memo_lock;
#endif

/* Every <Directory>/<Location>/<Files> section that sets a CertGate key, with
 * the server it appears in: check_config looks for revocation there to know
 * which cache directories the children will open. Lives in pconf. */
typedef struct {
    server_rec *server;
    const certgate_dir_conf *conf;
} section_rec;

static apr_array_header_t *sections;

static apr_status_t memo_reset(void *unused)
{
    (void)unused;
    if (memo_pool != NULL) {
        apr_pool_destroy(memo_pool);
    }
    memo_pool = NULL;
    memo = NULL;
    sections = NULL;
#if APR_HAS_THREADS
    memo_lock = NULL;
#endif
    return APR_SUCCESS;
}

static apr_status_t policy_cleanup(void *policy)
{
    cg_policy_free(policy);
    return APR_SUCCESS;
}

static void *create_dir_config(apr_pool_t *p, char *dir)
{
    certgate_dir_conf *conf = apr_pcalloc(p, sizeof *conf);
    (void)dir;
    conf->policy = NULL;
    return conf;
}

static int dir_conf_is_empty(const certgate_dir_conf *conf)
{
    return conf->policy == NULL;
}

static certgate_dir_conf *merge_now(apr_pool_t *p, const certgate_dir_conf *base,
                                    const certgate_dir_conf *add)
{
    certgate_dir_conf *conf = apr_pcalloc(p, sizeof *conf);
    cg_error error;
    conf->policy = cg_policy_new();
    if (conf->policy == NULL) {
        return NULL;
    }
    apr_pool_cleanup_register(p, conf->policy, policy_cleanup, apr_pool_cleanup_null);
    if (cg_policy_inherit(conf->policy, add->policy, &error) != CG_OK ||
        cg_policy_inherit(conf->policy, base->policy, &error) != CG_OK) {
        return NULL;
    }
    return conf;
}

static void *merge_dir_config(apr_pool_t *p, void *basev, void *addv)
{
    const certgate_dir_conf *base = basev;
    const certgate_dir_conf *add = addv;
    certgate_dir_conf *conf;
    merge_key key;

    /* Nothing to combine: hand back the configuration-lifetime record itself. */
    if (dir_conf_is_empty(add)) {
        return (void *)base;
    }
    if (dir_conf_is_empty(base)) {
        return (void *)add;
    }
    if (memo == NULL) {
        /* No table (cannot happen after pre_config): merge in the caller's pool.
         * Still correct per request, only not cached. */
        conf = merge_now(p, base, add);
        return conf != NULL ? conf : (void *)add;
    }

    key.base = base;
    key.add = add;
#if APR_HAS_THREADS
    apr_thread_mutex_lock(memo_lock);
#endif
    conf = apr_hash_get(memo, &key, sizeof key);
    if (conf == NULL) {
        merge_key *stored = apr_pmemdup(memo_pool, &key, sizeof key);
        conf = merge_now(memo_pool, base, add);
        if (conf != NULL) {
            apr_hash_set(memo, stored, sizeof *stored, conf);
        }
    }
#if APR_HAS_THREADS
    apr_thread_mutex_unlock(memo_lock);
#endif
    /* Out of memory: the more specific record is the safer answer (it still
     * holds every rule set in that section). */
    return conf != NULL ? conf : (void *)add;
}

static void *create_server_config(apr_pool_t *p, server_rec *s)
{
    certgate_srv_conf *conf = apr_pcalloc(p, sizeof *conf);
    (void)s;
    conf->enables = 0;
    return conf;
}

static void *merge_server_config(apr_pool_t *p, void *basev, void *addv)
{
    const certgate_srv_conf *add = addv;
    certgate_srv_conf *conf = apr_pmemdup(p, add, sizeof *conf);
    (void)basev; /* the main server's own flag is consulted in init_server */
    return conf;
}

/* ---- directives ------------------------------------------------------------ */

/* How a relative value of each key is resolved (CG_KEY_PATH_*), by cg_key. */
#define CG_KEY_PATH_ROW(id, key, nginx, httpd, field, contexts, min_args, max_args, path, help) \
    path,
static const int key_paths[] = {CERTGATE_KEYS(CG_KEY_PATH_ROW)};
#undef CG_KEY_PATH_ROW

/* cmd->info is the key's cg_key. The values are split here, not by httpd's
 * TAKE_ARGV: that stops at 64 words and drops the rest of the line, which
 * would lose a long list of denied pins without a word. */
static const char *set_key(cmd_parms *cmd, void *mconfig, const char *raw)
{
    certgate_dir_conf *conf = mconfig;
    const char *key = cmd->cmd->name;
    cg_key id = (cg_key)(uintptr_t)cmd->info;
    apr_array_header_t *words = apr_array_make(cmd->temp_pool, 4, sizeof(cg_str));
    const char *line = raw;
    cg_error error;

    /* Quoting as everywhere in httpd configuration ("..." and '...'). */
    while (*line != '\0') {
        char *word = ap_getword_conf(cmd->temp_pool, &line);
        cg_str *arg;
        if (*word == '\0' && *line == '\0') {
            break;
        }
        /* Files named by a key are relative to ServerRoot, as in every module. */
        if (key_paths[id] != CG_KEY_PATH_NONE && *word != '\0') {
            char *resolved = ap_server_root_relative(cmd->temp_pool, word);
            if (resolved != NULL) {
                word = resolved;
            }
        }
        arg = apr_array_push(words);
        arg->data = word;
        arg->len = strlen(word);
    }

    if (conf->policy == NULL) {
        conf->policy = cg_policy_new();
        if (conf->policy == NULL) {
            return "certgate: out of memory";
        }
        apr_pool_cleanup_register(cmd->pool, conf->policy, policy_cleanup, apr_pool_cleanup_null);
        if (cmd->path != NULL && sections != NULL) {
            section_rec *section = apr_array_push(sections);
            section->server = cmd->server;
            section->conf = conf;
        }
    }
    if (cg_policy_set(conf->policy, key, (const cg_str *)words->elts, (size_t)words->nelts,
                      &error) != CG_OK) {
        /* httpd prefixes the file and line ("Syntax error on line N of F:"); the
         * core names the key in nginx spelling, so say it as it was written. */
        const char *rest = strchr(error.message, ':');
        if (strncmp(error.message, "certgate", 8) == 0 && rest != NULL) {
            return apr_pstrcat(cmd->pool, key, rest, NULL);
        }
        return apr_pstrdup(cmd->pool, error.message);
    }

    /* Remember which servers need certgate's verification on their SSL_CTX. */
    if (id == CG_KEY_MODE && cg_policy_enabled(conf->policy)) {
        certgate_srv_conf *srv = ap_get_module_config(cmd->server->module_config, &certgate_module);
        srv->enables = 1;
    }
    return NULL;
}

/* Keys that are not accepted in <Directory>, <Location> or <Files>. */
static const char *set_server_key(cmd_parms *cmd, void *mconfig, const char *raw)
{
    const char *err = ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT);
    if (err != NULL) {
        return err;
    }
    return set_key(cmd, mconfig, raw);
}

/* One directive per row of CERTGATE_KEYS: server and section keys through
 * set_key, server-level keys through set_server_key, a page's in sections only. */
#define CG_KEY_ROW(id, key, nginx, httpd, field, contexts, min_args, max_args, path, help)      \
    AP_INIT_RAW_ARGS(httpd,                                                                    \
                     ((contexts) & CG_KEY_CTX_HTTPD_DIR) ? set_key : set_server_key,           \
                     (void *)(uintptr_t)CG_KEY_##id,                                           \
                     (((contexts) & CG_KEY_CTX_HTTPD_SERVER) ? RSRC_CONF : 0) |                \
                         (((contexts) & CG_KEY_CTX_HTTPD_DIR) ? ACCESS_CONF : 0),              \
                     help),

static const command_rec certgate_cmds[] = {CERTGATE_KEYS(CG_KEY_ROW){NULL}};
#undef CG_KEY_ROW

/* ---- TLS side ----------------------------------------------------------------- */

/* Refusals at handshake time (CertGateRejectAt handshake). */
static void handshake_log(SSL *ssl, const char *line, size_t len, void *data)
{
    conn_rec *c = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    cg_counters_add_handshake_refusal(counters);
    if (c != NULL) {
        ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c, "%.*s", (int)len, line);
    } else {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, (server_rec *)data, "%.*s", (int)len, line);
    }
}

static int server_uses_certgate(server_rec *s)
{
    certgate_srv_conf *own = ap_get_module_config(s->module_config, &certgate_module);
    certgate_srv_conf *main_conf =
        ap_get_module_config(ap_server_conf->module_config, &certgate_module);
    /* Sections of the main server apply to every virtual host. */
    return (own != NULL && own->enables) || (main_conf != NULL && main_conf->enables);
}

static int certgate_init_server(server_rec *s, apr_pool_t *p, int is_proxy, SSL_CTX *ctx)
{
    certgate_dir_conf *conf;
    cg_error error;
    (void)p;
    if (is_proxy || ctx == NULL || !server_uses_certgate(s)) {
        return DECLINED;
    }
    /* The virtual host's policy: its server-level directives merged over the
     * main server's (ap_fixup_virtual_hosts ran before post_config). */
    conf = ap_get_module_config(s->lookup_defaults, &certgate_module);
    if (conf == NULL || conf->policy == NULL) {
        conf = create_dir_config(s->process->pconf, NULL);
        conf->policy = cg_policy_new();
        if (conf->policy == NULL) {
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        apr_pool_cleanup_register(s->process->pconf, conf->policy, policy_cleanup,
                                  apr_pool_cleanup_null);
    }
    if (cg_ssl_ctx_attach(ctx, conf->policy, handshake_log, s, &error) != CG_OK) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     "certgate: cannot attach to the SSL context of %s:%u: %s",
                     s->server_hostname ? s->server_hostname : "?", (unsigned)s->port,
                     error.message);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 "certgate: verification attached to the SSL context of %s:%u",
                 s->server_hostname ? s->server_hostname : "?", (unsigned)s->port);
    return DECLINED;
}

static int certgate_pre_handshake(conn_rec *c, SSL *ssl, int is_proxy)
{
    if (!is_proxy) {
        ap_set_module_config(c->conn_config, &certgate_module, ssl);
    }
    return DECLINED;
}

static SSL *connection_ssl(conn_rec *c)
{
    /* HTTP/2 streams run on secondary connections; the TLS is the primary's. */
    while (c->master != NULL) {
        c = c->master;
    }
    return ap_get_module_config(c->conn_config, &certgate_module);
}

/* ---- requests ---------------------------------------------------------------- */

static void export_fields(request_rec *r, const cg_decision *decision)
{
    int field;
    for (field = 0; field < CG_FIELD_COUNT; ++field) {
        const char *name = cg_field_name((cg_field)field);
        cg_str value = cg_decision_field(decision, (cg_field)field);
        char *var = apr_pstrcat(r->pool, "CERTGATE_", name, NULL);
        char *v;
        for (v = var; *v != '\0'; ++v) {
            *v = apr_toupper(*v);
        }
        apr_table_setn(r->subprocess_env, var, apr_pstrmemdup(r->pool, value.data, value.len));
    }
}

static void log_decision(request_rec *r, const certgate_dir_conf *conf, const cg_decision *decision,
                         int level)
{
    /* The core bounds the line itself; it is never cut here. */
    const cg_log_format format = cg_policy_log_format(conf->policy);
    size_t len = cg_decision_format_log(decision, format, NULL, 0);
    char *line = apr_palloc(r->pool, len + 1);
    len = cg_decision_format_log(decision, format, line, len + 1);
    ap_log_rerror(APLOG_MARK, level, 0, r, "%.*s", (int)len, line);
}

/*
 * The final decision for this request. A decision that is still pending (a
 * revocation fetch for the chain is in flight and the policy waits up to
 * CertGateRevocationWait for it) blocks this request thread: cg_ssl_wait()
 * returns as soon as the fetch is done or after one step, and the core itself
 * makes the decision final once the policy's wait has run out (hard_fail: then
 * revocation_unavailable). Only this request's thread waits; others go on.
 * The vhost's Timeout bounds the whole wait in case the core never settles; a
 * decision still pending then is a refusal (revocation_unavailable), never an
 * allow.
 */
#define CG_WAIT_STEP_MS 100

static const cg_decision *decide(request_rec *r, const cg_policy *policy)
{
    SSL *ssl = connection_ssl(r->connection);
    const cg_decision *decision = cg_ssl_decide(ssl, policy);
    /* The core turns a pending decision final after certgate_revocation_wait;
     * the deadline here only guards against a core that would not. */
    apr_time_t deadline =
        apr_time_now() + apr_time_from_msec(2 * cg_policy_revocation_wait_ms(policy) + 1000);

    while (decision != NULL && ssl != NULL && cg_decision_pending(decision)) {
        apr_time_t left = deadline - apr_time_now();
        if (left <= 0) {
            /* A pending decision is a refusal; never let one allow. */
            return cg_decision_verdict(decision) == CG_VERDICT_ALLOW ? NULL : decision;
        }
        cg_ssl_wait(ssl, policy,
                    (int)(apr_time_as_msec(left) < CG_WAIT_STEP_MS ? apr_time_as_msec(left) + 1
                                                                   : CG_WAIT_STEP_MS));
        decision = cg_ssl_decide(ssl, policy);
    }
    return decision;
}

/*
 * Where certgate enforces: post_perdir_config.
 *
 * ap_process_request_internal() (server/request.c, 2.4.x) runs, per request and
 * subrequest: the location/directory walks, post_perdir_config, header_parser
 * (main requests only), then the authn/authz block, type_checker, fixups.
 *   - check_access (access_checker) is inside the authn/authz block. Under
 *     "Satisfy Any" a refusal there is only a vote: if access_checker_ex
 *     (mod_authz_core's "Require all granted" and friends) or authentication
 *     succeeds, the request goes on. The whole block is also skipped for an
 *     internal redirect whose per-dir config equals the previous request's.
 *   - check_access_ex is the "authorized without authentication" vote itself.
 *   - fixups cannot be skipped either, but run after authentication, so a client
 *     without a certificate would first be asked for a password.
 *   - post_perdir_config runs right after the merged per-dir config is known,
 *     for every request, subrequest and internal redirect, before any of
 *     Satisfy/Require/auth, and a non-OK return ends the request through
 *     ap_die() (so ErrorDocument applies). Nothing configurable skips it.
 * mod_ssl's own check_access (per-directory SSLVerifyClient renegotiation /
 * post-handshake auth) comes later, but certgate asks for the certificate in
 * the initial handshake on every SSL_CTX it is attached to, so the certificate
 * is already there. (Only mod_cache's CacheQuickHandler, which serves before
 * ap_process_request_internal, skips every access hook, as for httpd's own.)
 */
/* The request certgate refused whose ErrorDocument `r` is (an internal redirect
 * from it), or NULL. */
static request_rec *refused_by_certgate(request_rec *r)
{
    if (r->prev != NULL && apr_table_get(r->prev->notes, CG_NOTE_DENIED) != NULL) {
        return r->prev;
    }
    return NULL;
}

/* Makes certgate's body the answer of `r` (a refused request, status `status`):
 * used when no ErrorDocument is configured, and by an ErrorDocument that is
 * refused in turn, for httpd's fallback then answers the original request.
 * ap_custom_response() takes a string that looks like a URL or a path for a
 * redirect; certgate's bodies start with a digit, '{' or '<'. */
static void set_refusal_body(request_rec *r, int status, const certgate_dir_conf *conf,
                             const cg_decision *decision)
{
    /* The core says how long the body is: it is never cut. */
    const char *content_type = "text/plain";
    size_t len = cg_decision_format_body(decision, conf->policy, &content_type, NULL, 0);
    char *text = apr_palloc(r->pool, len + 1);
    cg_decision_format_body(decision, conf->policy, &content_type, text, len + 1);
    if (ap_is_url(text) || *text == '/') {
        text = apr_pstrcat(r->pool, " ", text, NULL);
    }
    ap_custom_response(r, status, text);
    apr_table_setn(r->notes, CG_NOTE_CONTENT_TYPE, content_type);
}

static int certgate_check(request_rec *r)
{
    certgate_dir_conf *conf = ap_get_module_config(r->per_dir_config, &certgate_module);
    request_rec *refused = refused_by_certgate(r);
    const cg_decision *decision;
    int status;
    int repeated;

    /* The ErrorDocument of a certgate refusal keeps the refusal's variables
     * (for its own use and the access log), also where certgate is off. */
    if (refused != NULL) {
        const apr_array_header_t *env = apr_table_elts(refused->subprocess_env);
        const apr_table_entry_t *e = (const apr_table_entry_t *)env->elts;
        int i;
        for (i = 0; i < env->nelts; ++i) {
            if (e[i].key != NULL && !strncmp(e[i].key, "CERTGATE_", 9)) {
                apr_table_setn(r->subprocess_env, e[i].key, e[i].val);
            }
        }
    }

    if (conf == NULL || !cg_policy_enabled(conf->policy)) {
        return DECLINED;
    }

    /*
     * Every request is judged under its own policy, the ErrorDocument of a
     * refusal too (as mod_authz_core checks it): a local ErrorDocument such as
     * a front controller (/index.php), a CGI or a ProxyPass path runs only
     * where the client is allowed anyway (a <Location> with CertGate off, or
     * one whose policy the client meets). Refused again, httpd falls back to
     * answering the original request with its status and certgate's body.
     */
    decision = decide(r, conf->policy);
    if (decision == NULL) {
        /* A policy that is off (excluded above), or a wait that never settled. */
        count_decision(r, NULL);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    export_fields(r, decision);
    count_decision(r, decision);

    /* Subrequests (mod_dir's DirectoryIndex probe, mod_include, ...) and the
     * ErrorDocument of a refusal are judged and refused like any request, but
     * only what the client asked for is logged: their verdict is at most a
     * debug line. */
    repeated = r->main != NULL || refused != NULL;
    if (cg_decision_verdict(decision) == CG_VERDICT_ALLOW) {
        if (repeated) {
            log_decision(r, conf, decision, APLOG_DEBUG);
        } else if (cg_decision_warning(decision)) {
            log_decision(r, conf, decision, APLOG_WARNING);
        } else if (cg_policy_log_accepts(conf->policy)) {
            /* Asked for with CertGateLog ... accepts: NOTICE, which httpd
             * writes whatever the LogLevel. */
            log_decision(r, conf, decision, APLOG_NOTICE);
        }
        return DECLINED;
    }

    /* Refused: one error-log line, the configured status and body. */
    log_decision(r, conf, decision, repeated ? APLOG_DEBUG : APLOG_ERR);
    status = cg_policy_reject_status(conf->policy, cg_decision_reason(decision));
    apr_table_setn(r->notes, CG_NOTE_DENIED, "1");
    if (strtol(ap_get_status_line(status), NULL, 10) != status) {
        /* A status httpd has no reason phrase for (nginx's 495/496, ...):
         * without a status line of its own httpd would answer 500. */
        r->status_line = apr_psprintf(r->pool, "%d %s", status,
                                      status == 495   ? "SSL Certificate Error"
                                      : status == 496 ? "SSL Certificate Required"
                                                      : "Client Certificate Refused");
    }
    if (refused != NULL) {
        /* A refused ErrorDocument: httpd answers the first refused request
         * (ap_die's recursive error) with its custom response, which is then
         * certgate's body, never the ErrorDocument's handler. */
        request_rec *first = refused;
        while (first->prev != NULL && first->prev->status != HTTP_OK) {
            first = first->prev;
        }
        set_refusal_body(first, first->status, conf, decision);
    } else if (ap_response_code_string(r, ap_index_of_response(status)) == NULL) {
        /* No ErrorDocument for this status: certgate's own body. */
        set_refusal_body(r, status, conf, decision);
    }
    return status;
}

/* ap_send_error_response() labels every text ErrorDocument text/html; this filter,
 * added for certgate's own bodies only, restores the body's real type. */
static apr_status_t error_type_filter(ap_filter_t *f, apr_bucket_brigade *bb)
{
    const char *type = apr_table_get(f->r->notes, CG_NOTE_CONTENT_TYPE);
    if (type != NULL) {
        ap_set_content_type(f->r, type);
    }
    ap_remove_output_filter(f);
    return ap_pass_brigade(f->next, bb);
}

static void certgate_insert_error_filter(request_rec *r)
{
    if (apr_table_get(r->notes, CG_NOTE_CONTENT_TYPE) != NULL) {
        ap_add_output_filter(CG_ERROR_FILTER, NULL, r, r->connection);
    }
}

/* CertGateStatus on: the counters, in the same format as nginx's certgate_status
 * (the core writes both). The location's content handler, ahead of any other;
 * like every handler it comes after the fixups, so a URL that is a directory
 * first gets mod_dir's trailing-slash redirect (as with SetHandler
 * server-status). The page itself is judged like any URL: put CertGate off in
 * its <Location> to read it without a client certificate. */
static int certgate_status_handler(request_rec *r)
{
    certgate_dir_conf *conf = ap_get_module_config(r->per_dir_config, &certgate_module);
    cg_counters snapshot;
    size_t len;
    char *page;
    int status;

    if (conf == NULL || !cg_policy_status_page(conf->policy)) {
        return DECLINED;
    }
    r->allowed |= (AP_METHOD_BIT << M_GET);
    if (r->method_number != M_GET) { /* HEAD is M_GET with header_only */
        return HTTP_METHOD_NOT_ALLOWED;
    }
    status = ap_discard_request_body(r);
    if (status != OK) {
        return status;
    }

    cg_counters_snapshot(counters, &snapshot);
    len = cg_counters_format(&snapshot, NULL, 0);
    page = apr_palloc(r->pool, len + 1);
    len = cg_counters_format(&snapshot, page, len + 1);

    ap_set_content_type(r, CG_COUNTERS_CONTENT_TYPE);
    ap_set_content_length(r, (apr_off_t)len);
    if (!r->header_only) {
        ap_rwrite(page, (int)len, r);
    }
    return OK;
}

/* ---- lifecycle ------------------------------------------------------------------ */

static int certgate_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    apr_allocator_t *allocator = NULL;
    (void)plog;
    (void)ptemp;
    /* The memo table gets its own pool and allocator: it is only touched under
     * memo_lock, while request threads allocate elsewhere. It is destroyed by a
     * pconf cleanup registered here, before any directive runs, so it goes
     * last: after mod_ssl's SSL_CTXs, which point at its merged policies. */
    if (apr_allocator_create(&allocator) != APR_SUCCESS ||
        apr_pool_create_unmanaged_ex(&memo_pool, NULL, allocator) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    apr_allocator_owner_set(allocator, memo_pool);
    apr_pool_tag(memo_pool, "certgate_merge_memo");
    memo = apr_hash_make(memo_pool);
#if APR_HAS_THREADS
    if (apr_thread_mutex_create(&memo_lock, APR_THREAD_MUTEX_DEFAULT, pconf) != APR_SUCCESS) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
#endif
    sections = apr_array_make(pconf, 8, sizeof(section_rec));
    apr_pool_cleanup_register(pconf, NULL, memo_reset, apr_pool_cleanup_null);
    return OK;
}

/*
 * The revocation cache directories.
 *
 * The core opens its LMDB cache lazily, in each child, on the first request
 * that needs it (an LMDB environment must not cross fork(), so the parent never
 * opens it). The children run as User/Group, the parent as root: so the parent
 * creates every directory a revocation-checking policy will use (mode 0700, the
 * missing parents 0755) and gives it, and the LMDB files already in it, to the
 * child user. This runs in check_config, i.e. on every (re)start and for
 * `apache2 -t` too (as nginx -t creates its paths); a directory that cannot be
 * prepared fails there, naming it.
 */
static const char *prepare_cache_dir(apr_pool_t *p, const char *dir)
{
    cg_error error;
    if (cg_cache_dir_prepare(dir, (long)ap_unixd_config.user_id, (long)ap_unixd_config.group_id,
                             &error) != CG_OK) {
        return apr_pstrdup(p, error.message);
    }
    return NULL;
}

/* Whether a policy of server `s` (its own, or one of its sections merged over
 * it) checks revocation. */
static int server_checks_revocation(server_rec *s, server_rec *main_server, const cg_policy *base)
{
    int i;
    if (base != NULL && cg_policy_revocation_enabled(base)) {
        return 1;
    }
    for (i = 0; sections != NULL && i < sections->nelts; ++i) {
        const section_rec *section = &APR_ARRAY_IDX(sections, i, section_rec);
        cg_policy *merged;
        cg_error error;
        int enabled = 0;
        if (section->server != s && section->server != main_server) {
            continue;
        }
        merged = cg_policy_new();
        if (merged == NULL) {
            return 1; /* be safe: prepare the directory */
        }
        if (cg_policy_inherit(merged, section->conf->policy, &error) == CG_OK &&
            (base == NULL || cg_policy_inherit(merged, base, &error) == CG_OK)) {
            enabled = cg_policy_revocation_enabled(merged);
        }
        cg_policy_free(merged);
        if (enabled) {
            return 1;
        }
    }
    return 0;
}

static int certgate_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                 server_rec *s)
{
    apr_hash_t *dirs = apr_hash_make(ptemp);
    apr_hash_index_t *hi;
    server_rec *v;
    (void)pconf;
    (void)plog;

    for (v = s; v != NULL; v = v->next) {
        const certgate_dir_conf *conf = ap_get_module_config(v->lookup_defaults, &certgate_module);
        const cg_policy *base = conf != NULL ? conf->policy : NULL;
        if (server_checks_revocation(v, s, base)) {
            const char *dir = apr_pstrdup(ptemp, cg_policy_cache_dir(base));
            if (apr_hash_get(dirs, dir, APR_HASH_KEY_STRING) == NULL) {
                apr_hash_set(dirs, dir, APR_HASH_KEY_STRING, v);
            }
        }
    }
    for (hi = apr_hash_first(ptemp, dirs); hi != NULL; hi = apr_hash_next(hi)) {
        const void *key;
        void *val;
        const char *why;
        apr_hash_this(hi, &key, NULL, &val);
        why = prepare_cache_dir(ptemp, key);
        if (why != NULL) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, 0, val,
                         "certgate: cannot prepare the revocation cache directory %s "
                         "(CertGateCache) for the child processes: %s",
                         (const char *)key, why);
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, val,
                     "certgate: revocation cache directory %s ready", (const char *)key);
    }
    return OK;
}

/* The shared counters: created once, in the process pool; see "counters" above. */
static int certgate_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                server_rec *s)
{
    apr_pool_t *pool = s->process->pool;
    apr_shm_t *shm = NULL;
    void *data = NULL;
    apr_status_t rv;
    (void)pconf;
    (void)plog;

    /* The first of the two configuration passes at startup forks no child. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    apr_pool_userdata_get(&data, CG_COUNTERS_KEY, pool);
    shm = data;
    if (shm == NULL || apr_shm_size_get(shm) != sizeof(cg_counters)) {
        /* Anonymous where APR has it (Linux), else a file in DefaultRuntimeDir. */
        rv = apr_shm_create(&shm, sizeof(cg_counters), NULL, pool);
        if (rv == APR_ENOTIMPL) {
            const char *file = ap_runtime_dir_relative(ptemp, CG_COUNTERS_FILE);
            apr_shm_remove(file, ptemp);
            rv = apr_shm_create(&shm, sizeof(cg_counters), file, pool);
        }
        if (rv != APR_SUCCESS) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, rv, s,
                         "certgate: cannot create the shared memory of the counters");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        memset(apr_shm_baseaddr_get(shm), 0, sizeof(cg_counters));
        apr_pool_userdata_set(shm, CG_COUNTERS_KEY, apr_pool_cleanup_null, pool);
    }
    counters = apr_shm_baseaddr_get(shm);
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
    (void)p;
    /* Details and hints name directives as httpd operators write them. */
    cg_set_directive_style(CG_DIRECTIVES_HTTPD);
    ap_hook_pre_config(certgate_pre_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_check_config(certgate_check_config, NULL, NULL, APR_HOOK_MIDDLE);
    ap_hook_post_config(certgate_post_config, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ssl, init_server, certgate_init_server, NULL, NULL, APR_HOOK_MIDDLE);
    APR_OPTIONAL_HOOK(ssl, pre_handshake, certgate_pre_handshake, NULL, NULL, APR_HOOK_MIDDLE);
    /* First among post_perdir_config hooks, so no other module's refusal or
     * redirect comes before certgate's answer. */
    ap_hook_post_perdir_config(certgate_check, NULL, NULL, APR_HOOK_REALLY_FIRST);
    ap_hook_insert_error_filter(certgate_insert_error_filter, NULL, NULL, APR_HOOK_MIDDLE);
    ap_register_output_filter(CG_ERROR_FILTER, error_type_filter, NULL, AP_FTYPE_CONTENT_SET);
    /* First: CertGateStatus makes the page the location's content. */
    ap_hook_handler(certgate_status_handler, NULL, NULL, APR_HOOK_FIRST);
}

/* AP_DECLARE_MODULE(certgate) spelled out: APLOG_USE_MODULE is needed at the top. */
CG_MODULE_EXPORT module AP_MODULE_DECLARE_DATA certgate_module = {
    STANDARD20_MODULE_STUFF, create_dir_config, /* per-directory config */
    merge_dir_config,                           /* merge per-directory */
    create_server_config,                       /* per-server config */
    merge_server_config,                        /* merge per-server */
    certgate_cmds,                              /* directives */
    register_hooks,                             /* hooks */
    AP_MODULE_FLAG_NONE                         /* flags */
};
