/* mod_certgate: client-certificate (mTLS) policy for Apache httpd 2.4, a thin adapter over the
 * certgate core (certgate.h), where every rule lives. It forwards the CertGate<Key> directives,
 * hands the core each SSL vhost's SSL_CTX and each connection's SSL* (mod_ssl's hooks), and turns
 * the core's outcome into a status, a body, CERTGATE_* variables, a log line and a count. Laid out
 * like modules/aaa/mod_authz_core.c. */

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
#include "apr_optional_hooks.h"
#include "apr_strings.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <openssl/ssl.h>

#include <certgate/certgate.h>

/* mod_ssl's OpenSSL-level hooks (2.4.20+), found by name at run time: Debian's apache2-dev lacks
 * mod_ssl_openssl.h, so the prototypes are declared here. */
#ifndef SSL_DECLARE
#define SSL_DECLARE(type) type
#endif
APR_DECLARE_EXTERNAL_HOOK(ssl, SSL, int, init_server,
                          (server_rec * s, apr_pool_t *p, int is_proxy, SSL_CTX *ctx))
APR_DECLARE_EXTERNAL_HOOK(ssl, SSL, int, pre_handshake, (conn_rec * c, SSL *ssl, int is_proxy))

/* The one non-static symbol, and so the one exported (CMakeLists.txt). */
extern module AP_MODULE_DECLARE_DATA certgate_module;

APLOG_USE_MODULE(certgate);

/* Notes on the request: a refusal by certgate (for the ErrorDocument redirect
 * that follows) and the Content-Type of certgate's own body. */
#define CG_NOTE_DENIED "certgate-denied"
#define CG_NOTE_CONTENT_TYPE "certgate-content-type"
#define CG_ERROR_FILTER "CERTGATE_ERROR_TYPE"

/* A stable tag on every log line, as httpd's APLOGNO(); listed in docs/apache-log-tags.md. */
#define CGLOGNO(n) "CG" #n ": "

typedef struct {
    cg_policy *policy; /* what was set here, or the merge result; NULL: nothing */
} certgate_dir_conf;

typedef struct {
    int enables; /* a CertGate optional|require directive appears in this server */
} certgate_srv_conf;

/* CertGateStatus's counters, in shared memory the parent maps: children
 * inherit it and the core adds atomically (certgate_post_config). */
static cg_counters *counters;

/* Set on the first request of an internal-redirect chain once it is judged. */
#define CG_NOTE_JUDGED "certgate-judged"

/* Every <Directory>/<Location>/<Files> section that sets a CertGate key, with the server it appears
 * in (cg_sections): check_config looks for revocation there to know which cache directories the
 * children will open. */
static cg_sections *sections;

static apr_status_t sections_free(void *unused)
{
    cg_sections_free(sections);
    sections = NULL;
    return APR_SUCCESS;
}

static apr_status_t policy_cleanup(void *policy)
{
    cg_policy_free(policy);
    return APR_SUCCESS;
}

/* The core writes its texts whole into memory from the request's pool. */
static void *pool_alloc(void *pool, size_t size)
{
    return apr_palloc(pool, size);
}

static void *create_dir_config(apr_pool_t *p, char *dir)
{
    return apr_pcalloc(p, sizeof(certgate_dir_conf));
}

/* httpd merges per request; cg_ssl_decide() keeps decisions by policy address,
 * so the core makes each merge once and keeps it in the section's policy. Its
 * cell is a certgate_dir_conf: a struct of one cg_policy pointer. */
static void *merge_dir_config(apr_pool_t *p, void *basev, void *addv)
{
    const certgate_dir_conf *base = basev, *add = addv;
    cg_policy *const *merged;
    if (add->policy == NULL || base->policy == NULL) {
        return add->policy == NULL ? basev : addv;
    }
    merged = cg_policy_merged(base->policy, add->policy);
    /* Out of memory: the section's own rules are the safer answer. */
    return merged != NULL ? (void *)merged : addv;
}

/* Not merged: a virtual host's flag is its own (init_server also looks at the
 * main server's). */
static void *create_server_config(apr_pool_t *p, server_rec *s)
{
    return apr_pcalloc(p, sizeof(certgate_srv_conf));
}

/* cmd->info is the key's cg_key. The values are split here, not by httpd's TAKE_ARGV: that stops at
 * 64 words and drops the rest of the line, which would lose a long list of denied pins without a
 * word. */
static const char *set_key(cmd_parms *cmd, void *mconfig, const char *raw)
{
    certgate_dir_conf *conf = mconfig;
    const char *key = cmd->cmd->name;
    cg_key id = (cg_key)(uintptr_t)cmd->info;
    apr_array_header_t *words = apr_array_make(cmd->temp_pool, 4, sizeof(cg_str));
    const char *line = raw;
    cg_error error;
    const char *err = (cg_key_contexts(id) & CG_KEY_CTX_HTTPD_DIR)
                          ? NULL
                          : ap_check_cmd_context(cmd, NOT_IN_DIR_CONTEXT); /* server level only */
    if (err != NULL) {
        return err;
    }

    /* Quoting as everywhere in httpd configuration ("..." and '...'). */
    while (*line != '\0') {
        char *word = ap_getword_conf(cmd->temp_pool, &line);
        cg_str *arg;
        if (*word == '\0' && *line == '\0') {
            break;
        }
        /* Files named by a key are relative to ServerRoot, as in every module. */
        if (cg_key_path(id) != CG_KEY_PATH_NONE && *word != '\0') {
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
        if (cmd->path != NULL && cg_sections_add(sections, cmd->server, conf->policy) != CG_OK) {
            return "certgate: out of memory";
        }
    }
    if (cg_policy_set(conf->policy, key, (const cg_str *)words->elts, (size_t)words->nelts,
                      &error) != CG_OK) {
        /* httpd prefixes the file and line ("Syntax error on line N of F:");
         * the core already names the key as httpd spells it. */
        return apr_pstrdup(cmd->pool, error.message);
    }

    /* Remember which servers need certgate's verification on their SSL_CTX. */
    if (id == CG_KEY_MODE && cg_policy_enabled(conf->policy)) {
        certgate_srv_conf *srv = ap_get_module_config(cmd->server->module_config, &certgate_module);
        srv->enables = 1;
    }
    return NULL;
}

/* One directive per row of CERTGATE_KEYS, through set_key (which refuses a
 * server-level key in a section); a page's in sections only.
 * clang-format 14 reads "(contexts) & X" in a macro as a cast of &X. */
/* clang-format off */
#define CG_KEY_ROW(id, key, nginx, httpd, field, contexts, min_args, max_args, path, help)      \
    AP_INIT_RAW_ARGS(httpd,                                                                    \
                     set_key,                                                                  \
                     (void *)(uintptr_t)CG_KEY_##id,                                           \
                     (((contexts) & CG_KEY_CTX_HTTPD_SERVER) ? RSRC_CONF : 0) |                \
                         (((contexts) & CG_KEY_CTX_HTTPD_DIR) ? ACCESS_CONF : 0),              \
                     help),
/* clang-format on */

static const command_rec certgate_cmds[] = {CERTGATE_KEYS(CG_KEY_ROW){NULL}};
#undef CG_KEY_ROW

/* Refusals at handshake time (CertGateRejectAt handshake), failed handshakes. */
static void handshake_log(SSL *ssl, cg_reason reason, const char *line, size_t len, void *data)
{
    conn_rec *c = ssl != NULL ? SSL_get_app_data(ssl) : NULL;
    cg_counters_add_handshake(counters, reason);
    if (len > 0 && c != NULL) { /* len 0: suppressed by the rate limit, counted only */
        ap_log_cerror(APLOG_MARK, APLOG_ERR, 0, c, CGLOGNO(00002) "%.*s", (int)len, line);
    } else if (len > 0) {
        ap_log_error(APLOG_MARK, APLOG_ERR, 0, (server_rec *)data, CGLOGNO(00003) "%.*s", (int)len,
                     line);
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
    /* The virtual host's policy: its server-level directives merged over the
     * main server's (ap_fixup_virtual_hosts ran before post_config). */
    const certgate_dir_conf *conf = ap_get_module_config(s->lookup_defaults, &certgate_module);
    cg_error error;
    if (is_proxy || ctx == NULL || !server_uses_certgate(s)) {
        return DECLINED;
    }
    if (cg_ssl_ctx_attach(ctx,
                          conf != NULL && conf->policy != NULL ? conf->policy : cg_policy_unset(),
                          handshake_log, s, &error) != CG_OK) {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     CGLOGNO(00004) "certgate: cannot attach to the SSL context of %s:%u: %s",
                     s->server_hostname ? s->server_hostname : "?", (unsigned)s->port,
                     error.message);
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    ap_log_error(APLOG_MARK, APLOG_DEBUG, 0, s,
                 CGLOGNO(00005) "certgate: verification attached to the SSL context of %s:%u",
                 s->server_hostname ? s->server_hostname : "?", (unsigned)s->port);
    return DECLINED;
}

static int certgate_pre_handshake(conn_rec *c, SSL *ssl, int is_proxy)
{
    if (!is_proxy) {
        ap_set_module_config(c->conn_config, &certgate_module, ssl);
        cg_ssl_note_client_address(ssl, c->client_ip);
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

/* One CERTGATE_* variable (cg_decision_export). */
static void export_field(void *rv, const char *name, cg_str value)
{
    request_rec *r = rv;
    apr_table_setn(r->subprocess_env, name, apr_pstrmemdup(r->pool, value.data, value.len));
}

/* A request header; httpd has merged repeated ones into one value (", "). */
static size_t request_header(void *rv, const char *name, cg_str *value)
{
    value->len = (value->data = apr_table_get(((request_rec *)rv)->headers_in, name)) != NULL
                     ? strlen(value->data)
                     : 0;
    return value->data != NULL;
}

/* The core's level is a syslog one, as httpd's; NOTICE is written whatever the
 * LogLevel, as CertGateLog ... accepts asks. */
static void log_decision(request_rec *r, const certgate_dir_conf *conf, const cg_decision *decision,
                         cg_log_level cg_level)
{
    const int level = cg_log_level_syslog(cg_level);
    cg_str line;
    if (cg_level == CG_LOG_NONE || (!APLOG_R_IS_LEVEL(r, level) && level != APLOG_NOTICE)) {
        return;
    }
    line = cg_decision_log_alloc(decision, conf->policy, pool_alloc, r->pool);
    ap_log_rerror(APLOG_MARK, level, 0, r, CGLOGNO(00001) "%.*s", (int)line.len, line.data);
}

/* Makes certgate's body the answer of refused `r` (no ErrorDocument, or one refused in turn).
 * ap_custom_response() takes text that looks like a URL or a path for a redirect; certgate's bodies
 * start with a digit, '{' or '<'. */
static void set_refusal_body(request_rec *r, int status, const certgate_dir_conf *conf,
                             const cg_decision *decision)
{
    const char *content_type = "text/plain";
    const char *text =
        cg_decision_body_alloc(decision, conf->policy, &content_type, pool_alloc, r->pool).data;
    if (ap_is_url(text) || *text == '/') {
        text = apr_pstrcat(r->pool, " ", text, NULL);
    }
    ap_custom_response(r, status, text);
    apr_table_setn(r->notes, CG_NOTE_CONTENT_TYPE, content_type);
}

/* Where certgate enforces: post_perdir_config. It runs for every request, subrequest and internal
 * redirect right after the per-dir config is merged, before Satisfy/Require/authentication, and
 * nothing configurable skips it (under "Satisfy Any" an access_checker refusal is only a vote); a
 * non-OK return ends the request through ap_die(), so ErrorDocument applies. */
static int certgate_check(request_rec *r)
{
    certgate_dir_conf *conf = ap_get_module_config(r->per_dir_config, &certgate_module);
    /* The request certgate refused whose ErrorDocument `r` is, or NULL. */
    request_rec *refused =
        r->prev != NULL && apr_table_get(r->prev->notes, CG_NOTE_DENIED) != NULL ? r->prev : NULL;
    const cg_decision *decision;
    request_rec *first;
    cg_request req = {.header = request_header, .request = r, .threaded = 1};
    cg_request_decision rd;
    cg_outcome outcome;
    cg_str reason;
    int status;

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

    /* Every request is judged under its own policy, an ErrorDocument too (as
     * mod_authz_core does). A pending decision blocks this thread, bounded. */
    req.ssl = connection_ssl(r->connection);
    req.client_ip_len = strlen(req.client_ip = r->connection->client_ip);
    rd = cg_request_decide(conf->policy, &req);
    decision = rd.decision;
    if (rd.owned != NULL) { /* a forwarded certificate's decision: this request's alone */
        apr_pool_cleanup_register(r->pool, rd.owned, cg_decision_release, apr_pool_cleanup_null);
    }
    if (rd.notice.len > 0) {
        ap_log_rerror(APLOG_MARK, APLOG_WARNING, 0, r, CGLOGNO(00010) "%.*s", (int)rd.notice.len,
                      rd.notice.data);
    }
    for (first = r; first->prev != NULL; first = first->prev) {
        /* the request the internal-redirect / ErrorDocument chain started from */
    }
    outcome = cg_outcome_of(conf->policy, decision, r->main != NULL,
                            apr_table_get(first->notes, CG_NOTE_JUDGED) != NULL);
    cg_counters_add(counters, &outcome);
    if (r->main == NULL) {
        apr_table_setn(first->notes, CG_NOTE_JUDGED, "1");
    }
    if (decision == NULL) {
        /* A wait that never settled: never an allow. */
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    cg_decision_export(decision, export_field, r);
    log_decision(r, conf, decision, outcome.log);
    if (outcome.status == 0) {
        return DECLINED;
    }

    /* Refused: the configured status and body (and the reason header, when on). */
    status = outcome.status;
    apr_table_setn(r->notes, CG_NOTE_DENIED, "1");
    if ((reason = cg_decision_reject_header(decision, conf->policy)).data != NULL) {
        apr_table_setn(r->err_headers_out, CG_REJECT_HEADER_NAME, reason.data);
    }
    if (strtol(ap_get_status_line(status), NULL, 10) != status) {
        /* A status httpd has no reason phrase for (nginx's 495/496, ...):
         * without a status line of its own httpd would answer 500. */
        r->status_line = apr_psprintf(r->pool, "%d %s", status, cg_refusal_status_phrase(status));
    }
    if (refused != NULL) {
        /* A refused ErrorDocument: httpd answers the first refused request (ap_die's recursive
         * error) with its custom response, which is then certgate's body, never the ErrorDocument's
         * handler. */
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

/* CertGateStatus on: the counters page (the core writes it, as for nginx), the location's content
 * ahead of any other handler. The page is judged like any URL: CertGate off in its <Location> makes
 * it readable without a certificate. */
static int certgate_status_handler(request_rec *r)
{
    certgate_dir_conf *conf = ap_get_module_config(r->per_dir_config, &certgate_module);
    cg_str page;
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

    page = cg_counters_page_alloc(counters, pool_alloc, r->pool);
    ap_set_content_type(r, CG_COUNTERS_CONTENT_TYPE);
    ap_set_content_length(r, (apr_off_t)page.len);
    if (!r->header_only) {
        ap_rwrite(page.data, (int)page.len, r);
    }
    return OK;
}

/* The directives of a section as name/args pairs (inside <If...> too, whatever its condition), from
 * which the core reads mod_ssl's CA files: there is no SSL_CTX at `apache2 -t`. Returns the
 * <VirtualHost> section of `v`. */
static const ap_directive_t *directives(const ap_directive_t *d, const server_rec *v,
                                        apr_array_header_t *out)
{
    const ap_directive_t *vhost = NULL, *inner;
    for (; d != NULL; d = d->next) {
        *(const char **)apr_array_push(out) = d->directive;
        *(const char **)apr_array_push(out) = d->args;
        inner = strncasecmp(d->directive, "<If", 3) ? NULL : directives(d->first_child, v, out);
        vhost = inner != NULL ? inner : vhost;
        if (v != NULL && v->defn_name != NULL && !strcasecmp(d->directive, "<VirtualHost") &&
            (int)d->line_num == (int)v->defn_line_number && !strcmp(d->filename, v->defn_name)) {
            vhost = d;
        }
    }
    return vhost;
}

/* The core's self-checks of a server with certgate, each finding logged CG00009. */
static int self_check(server_rec *v, apr_pool_t *ptemp, const cg_policy *policy)
{
    apr_array_header_t *pairs = apr_array_make(ptemp, 64, sizeof(const char *));
    const ap_directive_t *vhost = directives(ap_conftree, v, pairs);
    cg_selfcheck_server server = {.server_root = ap_server_root,
                                  .worker_uid = (long)ap_unixd_config.user_id,
                                  .worker_gid = (long)ap_unixd_config.group_id};
    cg_findings *found;
    size_t i;
    int rc = OK;
    if (vhost != NULL) {
        directives(vhost->first_child, NULL, pairs);
    }
    server.httpd_directives = (const char *const *)pairs->elts;
    server.httpd_directive_count = (size_t)pairs->nelts / 2;
    if ((found = cg_selfcheck(policy, &server)) == NULL) {
        return HTTP_INTERNAL_SERVER_ERROR;
    }
    for (i = 0; i < cg_findings_count(found); ++i) {
        int fatal = cg_finding_fatal(found, i);
        ap_log_error(APLOG_MARK, fatal ? APLOG_EMERG : APLOG_WARNING, 0, v,
                     CGLOGNO(00009) "%s in the server at %s:%d", cg_finding_message(found, i),
                     v->defn_name ? v->defn_name : ap_conftree->filename, v->defn_line_number);
        rc = fatal ? HTTP_INTERNAL_SERVER_ERROR : rc;
    }
    cg_findings_free(found);
    return rc;
}

static int certgate_pre_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp)
{
    sections = cg_sections_new();
    apr_pool_cleanup_register(pconf, NULL, sections_free, apr_pool_cleanup_null);
    return OK;
}

/* The self-checks, and the revocation cache directories, in check_config (every start, and `apache2
 * -t`): the parent, as root, makes every directory a revocation checking policy uses ready for the
 * child user; each child opens the cache itself (an LMDB environment must not cross fork()). */
static int certgate_check_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                 server_rec *s)
{
    cg_cache_dirs *dirs = cg_cache_dirs_new();
    server_rec *v;
    cg_error error = {{0}};
    int rc = dirs != NULL ? OK : HTTP_INTERNAL_SERVER_ERROR;

    for (v = s; v != NULL && rc == OK; v = v->next) {
        const certgate_dir_conf *conf = ap_get_module_config(v->lookup_defaults, &certgate_module);
        const cg_policy *base = conf != NULL ? conf->policy : NULL;
        /* Once per start (the first of its two passes only at -t). */
        if (server_uses_certgate(v) &&
            (ap_state_query(AP_SQ_RUN_MODE) == AP_SQ_RM_CONFIG_TEST ||
             ap_state_query(AP_SQ_MAIN_STATE) != AP_SQ_MS_CREATE_PRE_CONFIG) &&
            self_check(v, ptemp, base != NULL ? base : cg_policy_unset()) != OK) {
            rc = HTTP_INTERNAL_SERVER_ERROR;
        } else if (cg_sections_revocation_enabled(sections, v, s, base) &&
                   cg_cache_dirs_add(dirs, cg_policy_cache_dir(base),
                                     v->defn_name ? v->defn_name : ap_conftree->filename,
                                     (unsigned long)v->defn_line_number, &error) != CG_OK) {
            rc = HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    if (rc == OK && cg_cache_dirs_prepare(dirs, (long)ap_unixd_config.user_id,
                                          (long)ap_unixd_config.group_id, &error) != CG_OK) {
        rc = HTTP_INTERNAL_SERVER_ERROR;
    }
    if (error.message[0] != '\0') {
        ap_log_error(APLOG_MARK, APLOG_EMERG, 0, s,
                     CGLOGNO(00006) "certgate: cannot prepare the revocation cache for the "
                                    "child processes: %s",
                     error.message);
    }
    cg_cache_dirs_free(dirs);
    return rc;
}

/* The shared counters: created once and kept in the process pool, so they go on across graceful
 * restarts; a module built with another layout of them (another name) gets its own. */
static int certgate_post_config(apr_pool_t *pconf, apr_pool_t *plog, apr_pool_t *ptemp,
                                server_rec *s)
{
    apr_pool_t *pool = s->process->pool;

    /* The first of the two configuration passes at startup forks no child. */
    if (ap_state_query(AP_SQ_MAIN_STATE) == AP_SQ_MS_CREATE_PRE_CONFIG) {
        return OK;
    }
    apr_pool_userdata_get((void **)&counters, cg_counters_zone_name(), pool);
    if (counters == NULL) {
        if ((counters = cg_counters_map_shared()) == NULL) {
            ap_log_error(APLOG_MARK, APLOG_EMERG, errno, s,
                         CGLOGNO(00008) "certgate: cannot map the shared memory of the counters");
            return HTTP_INTERNAL_SERVER_ERROR;
        }
        apr_pool_userdata_set(counters, cg_counters_zone_name(), apr_pool_cleanup_null, pool);
    }
    return OK;
}

static void register_hooks(apr_pool_t *p)
{
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
module AP_MODULE_DECLARE_DATA certgate_module = {
    STANDARD20_MODULE_STUFF,
    create_dir_config,    /* per-directory config */
    merge_dir_config,     /* merge per-directory */
    create_server_config, /* per-server config */
    NULL,                 /* merge per-server */
    certgate_cmds,        /* directives */
    register_hooks,       /* hooks */
    AP_MODULE_FLAG_NONE   /* flags */
};
