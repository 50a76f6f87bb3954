
/*
 * ngx_http_certgate_filter_module: enforces the location's certgate decision
 * (ngx_http_certgate_module.c reads the configuration).
 *
 * It judges each request in the rewrite phase (before
 * ngx_http_rewrite_module's handlers, so a `return` cannot skip it) and, as a
 * backstop, every response that phase did not allow in a header filter; the
 * core's outcome becomes a status, a body, an error-log line and a count.
 *
 * Revocation: the core never blocks; while a fetch is in flight it answers
 * "pending" (up to certgate_revocation_wait), and the request is suspended on
 * a per-request timer that asks again, so the event loop never waits.
 */


#include "ngx_http_certgate_module.h"


/* how often a request waiting for a revocation fetch asks the core again */
#define NGX_HTTP_CERTGATE_WAIT_TICK  50


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
    cg_decision               *owned;        /* freed with the request */
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
static ngx_int_t ngx_http_certgate_wait(ngx_http_request_t *r,
    ngx_http_certgate_ctx_t *ctx);
static void ngx_http_certgate_wait_handler(ngx_event_t *ev);
static void ngx_http_certgate_ctx_cleanup(void *data);
static ngx_http_certgate_ctx_t *ngx_http_certgate_get_ctx(
    ngx_http_request_t *r, ngx_uint_t create);
static ngx_int_t ngx_http_certgate_judge(ngx_http_request_t *r,
    ngx_http_certgate_ctx_t *ctx, ngx_http_certgate_loc_conf_t *clcf,
    const cg_decision *d);
static ngx_int_t ngx_http_certgate_body(ngx_http_request_t *r,
    ngx_http_certgate_loc_conf_t *clcf, const cg_decision *d, ngx_str_t *body,
    ngx_str_t *type);
static ngx_int_t ngx_http_certgate_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_certgate_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_certgate_filter_init(ngx_conf_t *cf);


static ngx_http_module_t  ngx_http_certgate_filter_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_certgate_filter_init,         /* postconfiguration */

    NULL,                                  /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    NULL,                                  /* create location configuration */
    NULL                                   /* merge location configuration */
};


ngx_module_t  ngx_http_certgate_filter_module = {
    NGX_MODULE_V1,
    &ngx_http_certgate_filter_module_ctx,  /* module context */
    NULL,                                  /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
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


static ngx_int_t
ngx_http_certgate_handler(ngx_http_request_t *r)
{
    ngx_int_t                      status;
    ngx_str_t                      body, type;
    const cg_decision             *d;
    ngx_http_certgate_ctx_t       *ctx;
    ngx_http_certgate_loc_conf_t  *clcf;
    ngx_http_complex_value_t       cv;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_certgate_module);

    if (!cg_policy_enabled(clcf->policy)) {
        return NGX_DECLINED;
    }

    d = ngx_http_certgate_decide(r, clcf);
    ctx = ngx_http_get_module_ctx(r, ngx_http_certgate_filter_module);

    if (d == NULL || ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (cg_decision_pending(d)) {
        return ngx_http_certgate_wait(r, ctx);
    }

    status = ngx_http_certgate_judge(r, ctx, clcf, d);

    if (status == 0) {
        return NGX_DECLINED;
    }

    if (ngx_http_certgate_body(r, clcf, d, &body, &type) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (body.len == 0) {
        /* nginx's page for the status, so error_page applies */
        return status;
    }

    ngx_memzero(&cv, sizeof(ngx_http_complex_value_t));
    cv.value = body;

    return ngx_http_send_response(r, status, &type, &cv);
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
ngx_http_certgate_wait(ngx_http_request_t *r, ngx_http_certgate_ctx_t *ctx)
{
    ctx->wait.handler = ngx_http_certgate_wait_handler;
    ctx->wait.log = r->connection->log;
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

    cg_decision_release(ctx->owned);

    if (ctx->wait.timer_set) {
        ngx_del_timer(&ctx->wait);
    }
}


static ngx_http_certgate_ctx_t *
ngx_http_certgate_get_ctx(ngx_http_request_t *r, ngx_uint_t create)
{
    ngx_pool_cleanup_t       *cln;
    ngx_http_certgate_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_certgate_filter_module);

    if (ctx) {
        return ctx;
    }

    for (cln = r->pool->cleanup; cln; cln = cln->next) {
        ctx = cln->data;

        if (cln->handler == ngx_http_certgate_ctx_cleanup
            && ctx->request == r)
        {
            /* restarted: a new pass, judged afresh */
            ctx->allowed = NULL;
            ctx->refusing = 0;
            ctx->discard = 0;

            ngx_http_set_ctx(r, ctx, ngx_http_certgate_filter_module);
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

    ngx_http_set_ctx(r, ctx, ngx_http_certgate_filter_module);

    return ctx;
}


/* the request's first header called `name`, and how many there are */

static size_t
ngx_http_certgate_header(void *data, const char *name, cg_str *value)
{
    size_t               n = 0, len = ngx_strlen(name);
    ngx_uint_t           i;
    ngx_list_part_t     *part;
    ngx_table_elt_t     *h;
    ngx_http_request_t  *r = data;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        h = part->elts;

        for (i = 0; i < part->nelts; i++) {
            if (h[i].key.len == len
                && ngx_strncasecmp(h[i].key.data, (u_char *) name, len) == 0
                && n++ == 0)
            {
                value->data = (const char *) h[i].value.data;
                value->len = h[i].value.len;
            }
        }
    }

    return n;
}


const cg_decision *
ngx_http_certgate_decide(ngx_http_request_t *r,
    ngx_http_certgate_loc_conf_t *clcf)
{
    cg_request                req;
    cg_request_decision       rd;
    ngx_http_certgate_ctx_t  *ctx;

    ctx = ngx_http_certgate_get_ctx(r, 1);
    if (ctx == NULL) {
        return NULL;
    }

    if (ctx->policy == clcf->policy && !cg_decision_pending(ctx->decision)) {
        return ctx->decision;
    }

    ngx_memzero(&req, sizeof(cg_request));
    req.ssl = r->connection->ssl ? r->connection->ssl->connection : NULL;
    req.client_ip = (const char *) r->connection->addr_text.data;
    req.client_ip_len = r->connection->addr_text.len;
    req.header = ngx_http_certgate_header;
    req.request = r;

    /* never NULL for an enabled policy; a failure is internal_error */
    rd = cg_request_decide(clcf->policy, &req);

    /* a forwarded certificate's decision is this request's alone */
    cg_decision_release(ctx->owned);
    ctx->owned = rd.owned;

    if (rd.notice.len) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0, "%*s",
                      rd.notice.len, rd.notice.data);
    }

    ctx->decision = rd.decision;
    ctx->policy = clcf->policy;

    return ctx->decision;
}


/*
 * Judges this pass under the location's policy: the core's outcome is
 * counted and logged by its rule (only the client's own request, once), and
 * "judged" is kept in the ctx across internal redirects, error pages and named
 * locations.  Returns 0 when the pass is allowed, else the refusal's status;
 * what this pass sends from then on is the refusal.
 */

static ngx_int_t
ngx_http_certgate_judge(ngx_http_request_t *r, ngx_http_certgate_ctx_t *ctx,
    ngx_http_certgate_loc_conf_t *clcf, const cg_decision *d)
{
    cg_str       line;
    ngx_log_t   *log;
    ngx_uint_t   level;
    cg_outcome   out;

    out = cg_outcome_of(clcf->policy, d, r != r->main, ctx->judged);

    cg_counters_add(ngx_http_certgate_counters, &out);

    if (!cg_decision_pending(d)) {
        ctx->judged = 1;
    }

    log = r->connection->log;
    level = (out.log == CG_LOG_REFUSAL) ? clcf->log_level
                                        : ngx_http_certgate_log_map[out.log];

    if (out.log != CG_LOG_NONE && log->log_level >= level) {
        /* the core bounds the line itself; it is never cut here */
        line = cg_decision_log_alloc(d, clcf->policy, ngx_http_certgate_alloc,
                                     r->pool);
        if (line.data) {
            ngx_log_error(level, log, 0, "%*s", line.len, line.data);
        }
    }

    if (out.status == 0) {
        ctx->allowed = clcf->policy;
        return 0;
    }

    ctx->allowed = NULL;
    ctx->refusing = 1;

    return out.status;
}


/*
 * The refusal's body in certgate_reject_body's format, whole; an empty one
 * for "off" and for a subrequest: nginx's page for the status, so error_page
 * applies.  With certgate_reject_header on, the X-Certgate-Reason header too.
 */

static ngx_int_t
ngx_http_certgate_body(ngx_http_request_t *r,
    ngx_http_certgate_loc_conf_t *clcf, const cg_decision *d, ngx_str_t *body,
    ngx_str_t *type)
{
    cg_str            s;
    const char       *ct;
    ngx_table_elt_t  *h;

    ngx_str_null(body);
    ngx_str_null(type);

    if (r != r->main) {
        return NGX_OK;
    }

    s = cg_decision_reject_header(d, clcf->policy);

    if (s.data) {
        h = ngx_list_push(&r->headers_out.headers);
        if (h == NULL) {
            return NGX_ERROR;
        }

        h->hash = 1;
        ngx_str_set(&h->key, CG_REJECT_HEADER_NAME);
        h->value.data = (u_char *) s.data;
        h->value.len = s.len;
    }

    s = cg_decision_body_alloc(d, clcf->policy, &ct, ngx_http_certgate_alloc,
                               r->pool);
    if (s.data == NULL) {
        return NGX_ERROR;
    }

    body->data = (u_char *) s.data;
    body->len = s.len;
    type->data = (u_char *) ct;
    type->len = ngx_strlen(ct);

    return NGX_OK;
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
 *
 * The refusal is the phase handler's: certgate's body with the reject status
 * in place of the response (whose own body the body filter then drops), or
 * nginx's page for the status.
 */

static ngx_int_t
ngx_http_certgate_header_filter(ngx_http_request_t *r)
{
    ngx_int_t                      rc, status;
    ngx_str_t                      body, type;
    ngx_buf_t                     *b;
    ngx_chain_t                    out;
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
    ctx = ngx_http_get_module_ctx(r, ngx_http_certgate_filter_module);

    if (ctx == NULL) {
        /* cannot mark the refusal: nothing may go out */
        return NGX_ERROR;
    }

    /* a pending decision is a refusal here: a filter cannot wait */

    status = ngx_http_certgate_judge(r, ctx, clcf, d);

    if (status == 0) {
        return ngx_http_next_header_filter(r);
    }

    ngx_http_clean_header(r);

    if (ngx_http_certgate_body(r, clcf, d, &body, &type) != NGX_OK) {
        return NGX_ERROR;
    }

    if (body.len == 0) {
        return ngx_http_filter_finalize_request(r,
                                            &ngx_http_certgate_filter_module,
                                            status);
    }

    r->headers_out.status = status;
    r->headers_out.content_type = type;
    r->headers_out.content_type_len = type.len;
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

    ctx = ngx_http_get_module_ctx(r, ngx_http_certgate_filter_module);

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


static ngx_int_t
ngx_http_certgate_filter_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

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
