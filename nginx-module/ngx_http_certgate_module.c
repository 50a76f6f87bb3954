
/*
 * ngx_http_certgate_module: the nginx adapter of certgate.
 *
 * It forwards the certgate_* directives to the core, attaches the core's
 * certificate verification to the SSL_CTX of every server where certgate is
 * on, enforces the location's decision in the rewrite phase (before
 * ngx_http_rewrite_module's handlers, so a `return` cannot skip it), and turns
 * decisions into a status, a body, $certgate_* variables, error-log lines and
 * counters.  All policy logic lives in the core (certgate.h).
 *
 * Revocation: the core looks the chain up in its shared cache and never blocks;
 * while a fetch is in flight it answers "pending" (up to
 * certgate_revocation_wait), and the request is suspended on a per-request
 * timer that asks again, so the event loop never waits.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <certgate/certgate.h>


/* how often a request waiting for a revocation fetch asks the core again */
#define NGX_HTTP_CERTGATE_WAIT_TICK  50


typedef struct {
    cg_policy                 *policy;
    uint64_t                   set;          /* keys given in this block */
    ngx_uint_t                 log_level;
} ngx_http_certgate_loc_conf_t;


typedef struct {
    ngx_flag_t                 enabled;      /* here or in any location */
} ngx_http_certgate_srv_conf_t;


/* a revocation cache directory, and where it was first configured */
typedef struct {
    ngx_str_t                  name;
    u_char                    *conf_file;
    ngx_uint_t                 line;
} ngx_http_certgate_cache_dir_t;


typedef struct {
    ngx_array_t                cache_dirs;   /* ngx_http_certgate_cache_dir_t */
} ngx_http_certgate_main_conf_t;


/*
 * One per request (main or subrequest), kept in a pool cleanup so that it
 * survives what clears r->ctx (internal redirects, named locations, another
 * module's ngx_http_filter_finalize_request), as ngx_http_realip_module does.
 * A ctx found through the cleanup and not in r->ctx means that the request was
 * restarted since: what the previous pass established (allowed, refusing) is
 * forgotten, and the new pass is judged afresh.
 */
typedef struct {
    ngx_http_request_t        *request;      /* subrequests share the pool */
    const cg_policy           *policy;
    const cg_decision         *decision;
    /* this pass: the policy under which the client was judged and allowed */
    const cg_policy           *allowed;
    /* this pass: certgate refused; what follows is the refusal */
    unsigned                   refusing:1;
    /* the request was judged (kept across internal redirects) */
    unsigned                   judged:1;
    /* this pass: the backstop sent the refusal instead; drop the body */
    unsigned                   discard:1;
    ngx_event_t                wait;         /* revocation fetch in flight */
} ngx_http_certgate_ctx_t;


static ngx_int_t ngx_http_certgate_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_certgate_wait(ngx_http_request_t *r);
static void ngx_http_certgate_wait_handler(ngx_event_t *ev);
static void ngx_http_certgate_ctx_cleanup(void *data);
static ngx_http_certgate_ctx_t *ngx_http_certgate_get_ctx(
    ngx_http_request_t *r, ngx_uint_t create);
static ngx_int_t ngx_http_certgate_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_certgate_refuse_response(ngx_http_request_t *r,
    ngx_http_certgate_ctx_t *ctx, ngx_http_certgate_loc_conf_t *clcf,
    const cg_decision *d, ngx_int_t status);
static ngx_int_t ngx_http_certgate_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static cg_outcome ngx_http_certgate_judge(ngx_http_request_t *r,
    ngx_http_certgate_ctx_t *ctx, ngx_http_certgate_loc_conf_t *clcf,
    const cg_decision *d);
static ngx_int_t ngx_http_certgate_deny(ngx_http_request_t *r,
    ngx_http_certgate_loc_conf_t *clcf, const cg_decision *d,
    ngx_int_t status);
static ngx_int_t ngx_http_certgate_body(ngx_http_request_t *r,
    ngx_http_certgate_loc_conf_t *clcf, const cg_decision *d, ngx_str_t *body,
    const char **type);
static const cg_decision *ngx_http_certgate_decide(ngx_http_request_t *r,
    ngx_http_certgate_loc_conf_t *clcf);
static void ngx_http_certgate_log(ngx_http_request_t *r, ngx_uint_t level,
    ngx_http_certgate_loc_conf_t *clcf, const cg_decision *d);
static void ngx_http_certgate_ssl_log(SSL *ssl, const char *line, size_t len,
    void *data);
static ngx_int_t ngx_http_certgate_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_certgate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static char *ngx_http_certgate_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_certgate_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_certgate_cleanup_policy(void *data);
static char *ngx_http_certgate_cache_path(ngx_conf_t *cf,
    const cg_policy *policy);
static ngx_int_t ngx_http_certgate_add_variables(ngx_conf_t *cf);
static void *ngx_http_certgate_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_certgate_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_certgate_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_certgate_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_certgate_init_module(ngx_cycle_t *cycle);
static void *ngx_http_certgate_create_main_conf(ngx_conf_t *cf);


static ngx_conf_enum_t  ngx_http_certgate_log_levels[] = {
    { ngx_string("crit"), NGX_LOG_CRIT },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_null_string, 0 }
};


#define NGX_HTTP_CERTGATE_CONF                                                \
    (NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE)

/* where a key is accepted: its CG_KEY_CTX_NGX_* bits */
#define ngx_http_certgate_contexts(contexts)                                  \
    ((((contexts) & CG_KEY_CTX_NGX_MAIN) ? NGX_HTTP_MAIN_CONF : 0)            \
     | (((contexts) & CG_KEY_CTX_NGX_SRV) ? NGX_HTTP_SRV_CONF : 0)            \
     | (((contexts) & CG_KEY_CTX_NGX_LOC) ? NGX_HTTP_LOC_CONF : 0))

/*
 * One directive per row of CERTGATE_KEYS.  cmd->offset is the key's cg_key,
 * also its bit for the "is duplicate" check; the core counts the values.
 */
#define ngx_http_certgate_key(id, key, nginx, httpd, field, contexts,         \
                              min_args, max_args, path, help)                 \
    { ngx_string(nginx),                                                      \
      ngx_http_certgate_contexts(contexts)|NGX_CONF_1MORE,                    \
      ngx_http_certgate_set,                                                  \
      NGX_HTTP_LOC_CONF_OFFSET,                                               \
      CG_KEY_##id,                                                            \
      NULL },

/* clcf->set has a bit for every key */
typedef char  ngx_http_certgate_keys_fit[(CG_KEY_COUNT <= 64) ? 1 : -1];

static ngx_command_t  ngx_http_certgate_commands[] = {

    CERTGATE_KEYS(ngx_http_certgate_key)

    /* nginx only: the error-log level of refusals (default: error) */
    { ngx_string("certgate_log_level"),
      NGX_HTTP_CERTGATE_CONF,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_certgate_loc_conf_t, log_level),
      &ngx_http_certgate_log_levels },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_certgate_module_ctx = {
    ngx_http_certgate_add_variables,       /* preconfiguration */
    ngx_http_certgate_init,                /* postconfiguration */

    ngx_http_certgate_create_main_conf,    /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_certgate_create_srv_conf,     /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_certgate_create_loc_conf,     /* create location configuration */
    ngx_http_certgate_merge_loc_conf       /* merge location configuration */
};


ngx_module_t  ngx_http_certgate_module = {
    NGX_MODULE_V1,
    &ngx_http_certgate_module_ctx,         /* module context */
    ngx_http_certgate_commands,            /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_certgate_init_module,         /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;
/* the core's log levels (cg_log_level); a refusal's is certgate_log_level */
static ngx_uint_t  ngx_http_certgate_log_map[] = {
    0, NGX_LOG_INFO, NGX_LOG_NOTICE, NGX_LOG_WARN, NGX_LOG_ERR
};
/* in the shared zone; the core counts into it atomically */
static cg_counters                      *ngx_http_certgate_counters;
/*
 * "certgate_counters_<size>": a module built with more reasons never reuses,
 * across a reload, a zone laid out for fewer (the size is set at init).
 */
static u_char     ngx_http_certgate_zone_name_buf[64];
static ngx_str_t  ngx_http_certgate_zone_name;


static ngx_int_t
ngx_http_certgate_handler(ngx_http_request_t *r)
{
    cg_outcome                     out;
    const cg_decision             *d;
    ngx_http_certgate_ctx_t       *ctx;
    ngx_http_certgate_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_certgate_module);

    if (!cg_policy_enabled(clcf->policy)) {
        return NGX_DECLINED;
    }

    d = ngx_http_certgate_decide(r, clcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_certgate_module);

    if (d == NULL || ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cg_decision_pending(d)) {
        return ngx_http_certgate_wait(r);
    }

    out = ngx_http_certgate_judge(r, ctx, clcf, d);

    if (out.status == 0) {
        ctx->allowed = clcf->policy;
        return NGX_DECLINED;
    }

    /* everything this pass sends from now on is the refusal */
    ctx->allowed = NULL;
    ctx->refusing = 1;

    return ngx_http_certgate_deny(r, clcf, d, out.status);
}


/*
 * Suspends the request until the next tick: NGX_DONE stops the phase engine
 * with the phase handler unchanged, so the timer resumes it here.  No
 * r->main->blocked: a client that goes away may close the request at once,
 * and the request's pool cleanup then removes the timer.
 *
 * The timer is deliberately not cancelable: it is the waiting request's only
 * timer, and a worker that exits with only cancelable timers left abandons
 * the connection ("open socket left", "aborting").  A graceful shutdown thus
 * waits for the answer, at most certgate_revocation_wait, like limit_req's
 * delay.
 */

static ngx_int_t
ngx_http_certgate_wait(ngx_http_request_t *r)
{
    ngx_http_certgate_ctx_t  *ctx;

    ctx = ngx_http_certgate_get_ctx(r, 1);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->wait.handler == NULL) {
        ctx->wait.handler = ngx_http_certgate_wait_handler;
        ctx->wait.log = r->connection->log;
    }

    ctx->wait.data = r;

    ngx_add_timer(&ctx->wait, NGX_HTTP_CERTGATE_WAIT_TICK);

    /* notice a client that closes meanwhile */
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    return NGX_DONE;
}


static void
ngx_http_certgate_wait_handler(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ev->data;
    c = r->connection;

    ngx_http_set_log_request(c->log, r);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, c->log, 0,
                   "certgate revocation wait: \"%V?%V\"", &r->uri, &r->args);

    r->read_event_handler = ngx_http_block_reading;

    r->write_event_handler(r);

    ngx_http_run_posted_requests(c);
}


static void
ngx_http_certgate_ctx_cleanup(void *data)
{
    ngx_http_certgate_ctx_t *ctx = data;

    if (ctx->wait.timer_set) {
        ngx_del_timer(&ctx->wait);
    }
}


static ngx_http_certgate_ctx_t *
ngx_http_certgate_get_ctx(ngx_http_request_t *r, ngx_uint_t create)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_certgate_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_certgate_module);

    if (ctx) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        if (cln->handler != ngx_http_certgate_ctx_cleanup) {
            continue;
        }

        ctx = cln->data;

        if (ctx->request == r) {
            /* restarted: a new pass, judged afresh */
            ctx->allowed = NULL;
            ctx->refusing = 0;
            ctx->discard = 0;

            ngx_http_set_ctx(r, ctx, ngx_http_certgate_module);
            return ctx;
        }
    }

    if (!create) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(r->pool, sizeof(ngx_http_certgate_ctx_t));
    if (cln == NULL) {
        return NULL;
    }

    ctx = cln->data;
    ngx_memzero(ctx, sizeof(ngx_http_certgate_ctx_t));
    ctx->request = r;

    cln->handler = ngx_http_certgate_ctx_cleanup;

    ngx_http_set_ctx(r, ctx, ngx_http_certgate_module);

    return ctx;
}


static ngx_int_t
ngx_http_certgate_deny(ngx_http_request_t *r,
    ngx_http_certgate_loc_conf_t *clcf, const cg_decision *d, ngx_int_t status)
{
    ngx_str_t                  ct, body;
    const char                *type;
    ngx_http_complex_value_t   cv;

    if (r != r->main) {
        return status;
    }

    if (ngx_http_certgate_body(r, clcf, d, &body, &type) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (body.len == 0) {
        /* certgate_reject_body off: nginx's page, so error_page applies */
        return status;
    }

    ct.data = (u_char *) type;
    ct.len = ngx_strlen(type);

    ngx_memzero(&cv, sizeof(ngx_http_complex_value_t));
    cv.value = body;

    return ngx_http_send_response(r, status, &ct, &cv);
}


/*
 * The refusal body of certgate_reject_body, allocated at the length the core
 * asks for, so it is never cut; an empty one for "off" (nginx's own page).
 */

static ngx_int_t
ngx_http_certgate_body(ngx_http_request_t *r,
    ngx_http_certgate_loc_conf_t *clcf, const cg_decision *d, ngx_str_t *body,
    const char **type)
{
    size_t  len;

    *type = NULL;
    ngx_str_null(body);

    len = cg_decision_format_body(d, clcf->policy, type, NULL, 0);

    if (len == 0 || *type == NULL) {
        return NGX_OK;
    }

    body->data = ngx_pnalloc(r->pool, len + 1);
    if (body->data == NULL) {
        return NGX_ERROR;
    }

    if (cg_decision_format_body(d, clcf->policy, type, (char *) body->data,
                                len + 1)
        != len)
    {
        return NGX_ERROR;
    }

    body->len = len;

    return NGX_OK;
}


static const cg_decision *
ngx_http_certgate_decide(ngx_http_request_t *r,
    ngx_http_certgate_loc_conf_t *clcf)
{
    SSL                      *ssl;
    ngx_http_certgate_ctx_t  *ctx;

    ctx = ngx_http_certgate_get_ctx(r, 1);
    if (ctx == NULL) {
        return NULL;
    }

    if (ctx->policy == clcf->policy && !cg_decision_pending(ctx->decision)) {
        return ctx->decision;
    }

    ssl = r->connection->ssl ? r->connection->ssl->connection : NULL;

    /* never NULL for an enabled policy; a failure is internal_error */
    ctx->decision = cg_ssl_decide(ssl, clcf->policy);
    ctx->policy = clcf->policy;

    return ctx->decision;
}


/*
 * The backstop: every response, of the main request and of subrequests, goes
 * out only if certgate judged it in this pass under the policy in effect now
 * (the location's, the server's for a server-level "return" or "rewrite ...
 * redirect", an "if" block's) and allowed it, or if it is certgate's refusal
 * itself.  Anything else is judged here: a response for which the rewrite-phase
 * handler never ran (server-level "return", the find-config phase's
 * trailing-slash redirect, an error_page, an internal redirect or a named
 * location answered before the rewrite phase) is refused if the policy denies
 * the client.  The $certgate_* variables create the ctx too, so only the
 * flags below count, never the ctx's existence.
 */

static ngx_int_t
ngx_http_certgate_header_filter(ngx_http_request_t *r)
{
    cg_outcome                     out;
    const cg_decision             *d;
    ngx_http_certgate_ctx_t       *ctx;
    ngx_http_certgate_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_certgate_module);

    if (!cg_policy_enabled(clcf->policy)) {
        return ngx_http_next_header_filter(r);
    }

    ctx = ngx_http_certgate_get_ctx(r, 0);

    if (ctx && (ctx->refusing || ctx->allowed == clcf->policy)) {
        return ngx_http_next_header_filter(r);
    }

    d = ngx_http_certgate_decide(r, clcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_certgate_module);

    if (ctx == NULL) {
        /* cannot mark the refusal: nothing may go out */
        return NGX_ERROR;
    }

    /* a pending decision is a refusal here: a filter cannot wait */

    out = ngx_http_certgate_judge(r, ctx, clcf, d);

    if (out.status == 0) {
        ctx->allowed = clcf->policy;
        return ngx_http_next_header_filter(r);
    }

    ctx->allowed = NULL;
    ctx->refusing = 1;

    return ngx_http_certgate_refuse_response(r, ctx, clcf, d, out.status);
}


/*
 * The backstop's answer, the same as the phase handler's: certgate's body
 * with the reject status, sent in place of the response (whose own body the
 * body filter then drops); with certgate_reject_body off, or for a
 * subrequest, nginx's page for the status, so error_page applies.
 */

static ngx_int_t
ngx_http_certgate_refuse_response(ngx_http_request_t *r,
    ngx_http_certgate_ctx_t *ctx, ngx_http_certgate_loc_conf_t *clcf,
    const cg_decision *d, ngx_int_t status)
{
    ngx_int_t     rc;
    ngx_str_t     body;
    ngx_buf_t    *b;
    const char   *type;
    ngx_chain_t   out;

    ngx_str_null(&body);

    if (d && r == r->main
        && ngx_http_certgate_body(r, clcf, d, &body, &type) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (body.len == 0) {
        return ngx_http_filter_finalize_request(r, &ngx_http_certgate_module,
                                                status);
    }

    ngx_http_clean_header(r);

    r->headers_out.status = status;
    r->headers_out.content_type.data = (u_char *) type;
    r->headers_out.content_type.len = ngx_strlen(type);
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_length_n = body.len;

    ctx->discard = 1;

    rc = ngx_http_next_header_filter(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body.data;
    b->last = body.data + body.len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_next_body_filter(r, &out);

    return rc == NGX_ERROR ? NGX_ERROR : NGX_OK;
}


static ngx_int_t
ngx_http_certgate_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t              *cl;
    ngx_http_certgate_ctx_t  *ctx;

    /* r->ctx only: after a restart (internal redirect) nothing is dropped */

    ctx = ngx_http_get_module_ctx(r, ngx_http_certgate_module);

    if (ctx == NULL || !ctx->discard) {
        return ngx_http_next_body_filter(r, in);
    }

    /* the body of a response the backstop replaced by the refusal */

    for (cl = in; cl; cl = cl->next) {
        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    return NGX_OK;
}


/*
 * The core's outcome of a final decision: counted and logged by its rule
 * (only the client's own request, once), and "judged" kept in the main
 * request's ctx across internal redirects, error pages and named locations.
 */

static cg_outcome
ngx_http_certgate_judge(ngx_http_request_t *r, ngx_http_certgate_ctx_t *ctx,
    ngx_http_certgate_loc_conf_t *clcf, const cg_decision *d)
{
    cg_outcome  out;

    out = cg_outcome_of(clcf->policy, d, r != r->main, ctx->judged);

    cg_counters_add(ngx_http_certgate_counters, &out);

    if (!cg_decision_pending(d)) {
        ctx->judged = 1;
    }

    if (out.log != CG_LOG_NONE) {
        ngx_http_certgate_log(r, out.log == CG_LOG_REFUSAL
                                 ? clcf->log_level
                                 : ngx_http_certgate_log_map[out.log],
                              clcf, d);
    }

    return out;
}


static void
ngx_http_certgate_log(ngx_http_request_t *r, ngx_uint_t level,
    ngx_http_certgate_loc_conf_t *clcf, const cg_decision *d)
{
    size_t            len;
    u_char           *line;
    ngx_log_t        *log;
    cg_log_format     format;

    log = r->connection->log;

    if (log->log_level < level) {
        return;
    }

    /* the core bounds the line itself; it is never cut here */

    format = cg_policy_log_format(clcf->policy);
    len = cg_decision_format_log(d, format, NULL, 0);

    line = ngx_pnalloc(r->pool, len + 1);
    if (line == NULL) {
        return;
    }

    len = cg_decision_format_log(d, format, (char *) line, len + 1);

    ngx_log_error(level, log, 0, "%*s", len, line);
}


static void
ngx_http_certgate_ssl_log(SSL *ssl, const char *line, size_t len, void *data)
{
    ngx_connection_t              *c;
    ngx_http_certgate_loc_conf_t  *clcf = data;

    c = ngx_ssl_get_connection(ssl);

    cg_counters_add_handshake_refusal(ngx_http_certgate_counters);

    ngx_log_error(clcf->log_level, c ? c->log : ngx_cycle->log, 0,
                  "%*s", len, line);
}


static void *
ngx_http_certgate_page_alloc(void *pool, size_t size)
{
    return ngx_pnalloc(pool, size);
}


static ngx_int_t
ngx_http_certgate_status_handler(ngx_http_request_t *r)
{
    cg_str        page;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t   out;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    /* the core writes the page: the shared counters and revocation gauges */

    page = cg_counters_page_alloc(ngx_http_certgate_counters,
                                  ngx_http_certgate_page_alloc, r->pool);
    if (page.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->pos = (u_char *) page.data;
    b->last = b->pos + page.len;
    b->memory = 1;

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type, CG_COUNTERS_CONTENT_TYPE);
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static ngx_int_t
ngx_http_certgate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    cg_str                         s;
    const cg_decision             *d;
    ngx_http_certgate_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_certgate_module);

    d = cg_policy_enabled(clcf->policy) ? ngx_http_certgate_decide(r, clcf)
                                        : NULL;
    if (d == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = cg_decision_field(d, (cg_field) data);

    /* the decision lives as long as the connection */
    v->data = (u_char *) s.data;
    v->len = s.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static char *
ngx_http_certgate_set(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_certgate_loc_conf_t *clcf = conf;

    cg_str                    *argv;
    cg_error                   error;
    ngx_str_t                 *value, name;
    ngx_uint_t                 i, argc, path;
    ngx_http_core_loc_conf_t  *hclcf;

    if (clcf->set & ((uint64_t) 1 << cmd->offset)) {
        return "is duplicate";
    }

    clcf->set |= (uint64_t) 1 << cmd->offset;

    value = cf->args->elts;
    argc = cf->args->nelts - 1;

    argv = ngx_palloc(cf->temp_pool, argc * sizeof(cg_str));
    if (argv == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < argc; i++) {
        name = value[i + 1];

        /*
         * Files the server reads are found relative to the configuration
         * directory (as ssl_crl is), directories it writes relative to the
         * prefix (as proxy_cache_path is).
         */
        path = cg_key_path((cg_key) cmd->offset);

        if (path != CG_KEY_PATH_NONE && name.len > 0) {
            if (ngx_conf_full_name(cf->cycle, &name, path == CG_KEY_PATH_CONF)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
        }

        argv[i].data = (const char *) name.data;
        argv[i].len = name.len;
    }

    if (cg_policy_set(clcf->policy, (const char *) cmd->name.data, argv, argc,
                      &error)
        != CG_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", error.message);
        return NGX_CONF_ERROR;
    }

    if (cmd->offset == CG_KEY_STATUS && cg_policy_status_page(clcf->policy)) {
        hclcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
        hclcf->handler = ngx_http_certgate_status_handler;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_certgate_zone_init(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_slab_pool_t  *shpool;

    if (data) {
        shm_zone->data = data;
        ngx_http_certgate_counters = data;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        shm_zone->data = shpool->data;
        ngx_http_certgate_counters = shpool->data;
        return NGX_OK;
    }

    ngx_http_certgate_counters = ngx_slab_calloc(shpool, sizeof(cg_counters));
    if (ngx_http_certgate_counters == NULL) {
        return NGX_ERROR;
    }

    shpool->data = ngx_http_certgate_counters;
    shm_zone->data = ngx_http_certgate_counters;

    return NGX_OK;
}


static void
ngx_http_certgate_cleanup_policy(void *data)
{
    cg_policy_free(data);
}


static ngx_int_t
ngx_http_certgate_add_variables(ngx_conf_t *cf)
{
    u_char               *p;
    ngx_str_t             name;
    ngx_uint_t            i;
    const char           *field;
    ngx_http_variable_t  *var;

    for (i = 0; i < CG_FIELD_COUNT; i++) {
        field = cg_field_name((cg_field) i);

        name.len = sizeof("certgate_") - 1 + ngx_strlen(field);
        name.data = ngx_pnalloc(cf->pool, name.len);
        if (name.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(name.data, "certgate_", sizeof("certgate_") - 1);
        ngx_memcpy(p, field, ngx_strlen(field));

        var = ngx_http_add_variable(cf, &name, NGX_HTTP_VAR_NOCACHEABLE);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = ngx_http_certgate_variable;
        var->data = i;
    }

    return NGX_OK;
}


static void *
ngx_http_certgate_create_srv_conf(ngx_conf_t *cf)
{
    /* set by ngx_pcalloc(): enabled = 0 */

    return ngx_pcalloc(cf->pool, sizeof(ngx_http_certgate_srv_conf_t));
}


static void *
ngx_http_certgate_create_loc_conf(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t            *cln;
    ngx_http_certgate_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_certgate_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->set = 0;
     */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    conf->policy = cg_policy_new();
    if (conf->policy == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_certgate_cleanup_policy;
    cln->data = conf->policy;

    conf->log_level = NGX_CONF_UNSET_UINT;

    return conf;
}


static char *
ngx_http_certgate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_certgate_loc_conf_t *prev = parent;
    ngx_http_certgate_loc_conf_t *conf = child;

    cg_error                       error;
    ngx_http_certgate_srv_conf_t  *cscf;

    ngx_conf_merge_uint_value(conf->log_level, prev->log_level, NGX_LOG_ERR);

    if (cg_policy_inherit(conf->policy, prev->policy, &error) != CG_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", error.message);
        return NGX_CONF_ERROR;
    }

    if (cg_policy_enabled(conf->policy)) {
        /* cf->ctx->srv_conf is the server being merged */
        cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_certgate_module);
        cscf->enabled = 1;

        if (cg_policy_revocation_enabled(conf->policy)) {
            return ngx_http_certgate_cache_path(cf, conf->policy);
        }
    }

    return NGX_CONF_OK;
}


/*
 * The revocation cache directories (certgate_cache or the core's default) are
 * collected here and prepared by the core in ngx_http_certgate_init_module(),
 * in the master (as root), once the worker user is known: created, given to
 * that user with the cache files in it, and refused if others may write them.
 * Not through ngx_add_path(): ngx_create_paths() would stat and chown the
 * directory by name first, following a symlink swapped in between.  The cache
 * itself (LMDB) is opened by each worker on first use, never in the master.
 */

static char *
ngx_http_certgate_cache_path(ngx_conf_t *cf, const cg_policy *policy)
{
    size_t                           len;
    ngx_uint_t                       i;
    const char                      *dir;
    ngx_http_certgate_cache_dir_t   *cache;
    ngx_http_certgate_main_conf_t   *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_certgate_module);

    dir = cg_policy_cache_dir(policy);
    len = ngx_strlen(dir);

    if (dir[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "certgate: the revocation cache \"%s\" "
                           "(certgate_cache) must be an absolute path", dir);
        return NGX_CONF_ERROR;
    }

    /* the same directory for many locations is prepared once */

    cache = cmcf->cache_dirs.elts;

    for (i = 0; i < cmcf->cache_dirs.nelts; i++) {
        if (cache[i].name.len == len
            && ngx_strncmp(cache[i].name.data, dir, len) == 0)
        {
            return NGX_CONF_OK;
        }
    }

    cache = ngx_array_push(&cmcf->cache_dirs);
    if (cache == NULL) {
        return NGX_CONF_ERROR;
    }

    /* NUL-terminated: the core takes it as a C string */
    cache->name.data = ngx_pnalloc(cf->pool, len + 1);
    if (cache->name.data == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memcpy(cache->name.data, dir, len + 1);
    cache->name.len = len;
    cache->conf_file = cf->conf_file->file.name.data;
    cache->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_certgate_init_module(ngx_cycle_t *cycle)
{
    long                             uid, gid;
    cg_error                         error;
    ngx_uint_t                       i;
    ngx_core_conf_t                 *ccf;
    ngx_http_certgate_cache_dir_t   *cache;
    ngx_http_certgate_main_conf_t   *cmcf;

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_certgate_module);
    if (cmcf == NULL) {
        return NGX_OK;
    }

    ccf = (ngx_core_conf_t *) ngx_get_conf(cycle->conf_ctx, ngx_core_module);

    uid = -1;
    gid = -1;

    if (ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        uid = (long) ccf->user;
        gid = (long) ccf->group;
    }

    cache = cmcf->cache_dirs.elts;

    for (i = 0; i < cmcf->cache_dirs.nelts; i++) {
        if (cg_cache_dir_prepare((const char *) cache[i].name.data, uid, gid,
                                 &error)
            != CG_OK)
        {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0,
                          "certgate: %s (certgate_cache \"%V\" in %s:%ui)",
                          error.message, &cache[i].name, cache[i].conf_file,
                          cache[i].line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static void *
ngx_http_certgate_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_certgate_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_certgate_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&cmcf->cache_dirs, cf->pool, 1,
                       sizeof(ngx_http_certgate_cache_dir_t))
        != NGX_OK)
    {
        return NULL;
    }

    return cmcf;
}


static ngx_int_t
ngx_http_certgate_init(ngx_conf_t *cf)
{
    cg_error                       error;
    ngx_uint_t                     s;
    ngx_shm_zone_t                *shm_zone;
    ngx_http_handler_pt           *h;
    ngx_http_ssl_srv_conf_t       *sscf;
    ngx_http_core_srv_conf_t     **cscfp;
    ngx_http_core_main_conf_t     *cmcf;
    ngx_http_certgate_srv_conf_t  *cgscf;
    ngx_http_certgate_loc_conf_t  *clcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    cscfp = cmcf->servers.elts;

    for (s = 0; s < cmcf->servers.nelts; s++) {

        cgscf = cscfp[s]->ctx->srv_conf[ngx_http_certgate_module.ctx_index];
        clcf = cscfp[s]->ctx->loc_conf[ngx_http_certgate_module.ctx_index];
        sscf = cscfp[s]->ctx->srv_conf[ngx_http_ssl_module.ctx_index];

        if (!cgscf->enabled || sscf == NULL || sscf->ssl.ctx == NULL) {
            continue;
        }

        if (cg_ssl_ctx_attach(sscf->ssl.ctx, clcf->policy,
                              ngx_http_certgate_ssl_log, clcf, &error)
            != CG_OK)
        {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "certgate: %s in server at %s:%ui", error.message,
                          cscfp[s]->file_name, cscfp[s]->line);
            return NGX_ERROR;
        }
    }

    ngx_http_certgate_zone_name.data = ngx_http_certgate_zone_name_buf;
    ngx_http_certgate_zone_name.len =
        ngx_snprintf(ngx_http_certgate_zone_name_buf,
                     sizeof(ngx_http_certgate_zone_name_buf),
                     "certgate_counters_%uz", sizeof(cg_counters))
        - ngx_http_certgate_zone_name_buf;

    shm_zone = ngx_shared_memory_add(cf, &ngx_http_certgate_zone_name,
                                     8 * ngx_pagesize,
                                     &ngx_http_certgate_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_certgate_zone_init;

    /*
     * The rewrite phase: handlers of a phase run in reverse order of
     * registration, and a dynamic module registers after
     * ngx_http_rewrite_module, so this runs before a location's "return".
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_REWRITE_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_certgate_handler;

    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_certgate_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_certgate_body_filter;

    return NGX_OK;
}
