
/*
 * ngx_http_certgate_module: the nginx adapter of certgate, its configuration.
 *
 * It forwards the certgate_* directives to the core, attaches the core's
 * certificate verification to the SSL_CTX of every server where certgate is
 * on, has the core prepare the revocation cache directories, and serves the
 * counters page and the $certgate_* variables.  Requests are judged by the
 * second module of this .so, ngx_http_certgate_filter_module.  All policy
 * logic lives in the core (certgate.h).
 */


#include "ngx_http_certgate_module.h"


typedef struct {
    ngx_flag_t                 enabled;      /* here or in any location */
} ngx_http_certgate_srv_conf_t;


typedef struct {
    cg_cache_dirs             *cache_dirs;
} ngx_http_certgate_main_conf_t;


static void ngx_http_certgate_ssl_log(SSL *ssl, cg_reason reason,
    const char *line, size_t len, void *data);
static ngx_int_t ngx_http_certgate_status_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_certgate_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static char *ngx_http_certgate_set(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_certgate_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_certgate_cleanup_policy(void *data);
static void ngx_http_certgate_cleanup_cache_dirs(void *data);
static ngx_int_t ngx_http_certgate_add_variables(ngx_conf_t *cf);
static void *ngx_http_certgate_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_certgate_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_certgate_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_certgate_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static ngx_int_t ngx_http_certgate_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_certgate_init_module(ngx_cycle_t *cycle);


static ngx_conf_enum_t  ngx_http_certgate_log_levels[] = {
    { ngx_string("crit"), NGX_LOG_CRIT },
    { ngx_string("error"), NGX_LOG_ERR },
    { ngx_string("warn"), NGX_LOG_WARN },
    { ngx_string("notice"), NGX_LOG_NOTICE },
    { ngx_string("info"), NGX_LOG_INFO },
    { ngx_null_string, 0 }
};


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
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
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


cg_counters       *ngx_http_certgate_counters;


void *
ngx_http_certgate_alloc(void *pool, size_t size)
{
    return ngx_pnalloc(pool, size);
}


static void
ngx_http_certgate_ssl_log(SSL *ssl, cg_reason reason, const char *line,
    size_t len, void *data)
{
    ngx_connection_t              *c;
    ngx_http_certgate_loc_conf_t  *clcf = data;

    c = ngx_ssl_get_connection(ssl);

    cg_counters_add_handshake(ngx_http_certgate_counters, reason);

    if (len == 0) {
        return;
    }

    ngx_log_error(clcf->log_level, c ? c->log : ngx_cycle->log, 0,
                  "%*s", len, line);
}


static ngx_int_t
ngx_http_certgate_status_handler(ngx_http_request_t *r)
{
    cg_str                    page;
    ngx_str_t                 type = ngx_string(CG_COUNTERS_CONTENT_TYPE);
    ngx_http_complex_value_t  cv;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    page = cg_counters_page_alloc(ngx_http_certgate_counters,
                                  ngx_http_certgate_alloc, r->pool);
    if (page.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_memzero(&cv, sizeof(ngx_http_complex_value_t));
    cv.value.data = (u_char *) page.data;
    cv.value.len = page.len;

    return ngx_http_send_response(r, NGX_HTTP_OK, &type, &cv);
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

    int                        path;
    cg_str                    *argv;
    cg_error                   error;
    ngx_str_t                 *value;
    ngx_uint_t                 i, argc;
    ngx_http_core_loc_conf_t  *hclcf;

    if (clcf->set & ((uint64_t) 1 << cmd->offset)) {
        return "is duplicate";
    }

    clcf->set |= (uint64_t) 1 << cmd->offset;

    value = cf->args->elts;
    argc = cf->args->nelts - 1;
    path = cg_key_path((cg_key) cmd->offset);

    argv = ngx_palloc(cf->temp_pool, argc * sizeof(cg_str));
    if (argv == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 0; i < argc; i++) {

        /*
         * Files the server reads are found relative to the configuration
         * directory (as ssl_crl is), directories it writes relative to the
         * prefix (as proxy_cache_path is).
         */
        if (path != CG_KEY_PATH_NONE && value[i + 1].len > 0) {
            if (ngx_conf_full_name(cf->cycle, &value[i + 1],
                                   path == CG_KEY_PATH_CONF)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }
        }

        argv[i].data = (const char *) value[i + 1].data;
        argv[i].len = value[i + 1].len;
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

    if (data == NULL) {
        shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

        if (!shm_zone->shm.exists) {
            shpool->data = ngx_slab_calloc(shpool, sizeof(cg_counters));
            if (shpool->data == NULL) {
                return NGX_ERROR;
            }
        }

        data = shpool->data;
    }

    /* a reload keeps the counts: the old cycle's zone is taken over */

    shm_zone->data = data;
    ngx_http_certgate_counters = data;

    return NGX_OK;
}


static void
ngx_http_certgate_cleanup_policy(void *data)
{
    cg_policy_free(data);
}


static void
ngx_http_certgate_cleanup_cache_dirs(void *data)
{
    cg_cache_dirs_free(data);
}


static ngx_int_t
ngx_http_certgate_add_variables(ngx_conf_t *cf)
{
    u_char                buf[64];
    ngx_str_t             name;
    ngx_uint_t            i;
    ngx_http_variable_t  *var;

    for (i = 0; i < CG_FIELD_COUNT; i++) {

        /* ngx_http_add_variable() copies the name */
        name.data = buf;
        name.len = ngx_snprintf(buf, sizeof(buf), "certgate_%s",
                                cg_field_name((cg_field) i))
                   - buf;

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
ngx_http_certgate_create_main_conf(ngx_conf_t *cf)
{
    ngx_pool_cleanup_t             *cln;
    ngx_http_certgate_main_conf_t  *cmcf;

    cmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_certgate_main_conf_t));
    if (cmcf == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cmcf->cache_dirs = cg_cache_dirs_new();
    if (cmcf->cache_dirs == NULL) {
        return NULL;
    }

    cln->handler = ngx_http_certgate_cleanup_cache_dirs;
    cln->data = cmcf->cache_dirs;

    return cmcf;
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

    /* set by ngx_pcalloc(): set = 0 */

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_certgate_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

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
ngx_http_certgate_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_certgate_loc_conf_t *prev = parent;
    ngx_http_certgate_loc_conf_t *conf = child;

    cg_error                        error;
    ngx_http_certgate_srv_conf_t   *cscf;
    ngx_http_certgate_main_conf_t  *cmcf;

    ngx_conf_merge_uint_value(conf->log_level, prev->log_level, NGX_LOG_ERR);

    if (cg_policy_inherit(conf->policy, prev->policy, &error) != CG_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "%s", error.message);
        return NGX_CONF_ERROR;
    }

    if (!cg_policy_enabled(conf->policy)) {
        return NGX_CONF_OK;
    }

    /* cf->ctx->srv_conf is the server being merged */
    cscf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_certgate_module);
    cscf->enabled = 1;

    if (!cg_policy_revocation_enabled(conf->policy)) {
        return NGX_CONF_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_certgate_module);

    if (cg_cache_dirs_add(cmcf->cache_dirs, cg_policy_cache_dir(conf->policy),
                          (const char *) cf->conf_file->file.name.data,
                          cf->conf_file->line, &error)
        != CG_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "certgate: %s",
                           error.message);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_certgate_init_module(ngx_cycle_t *cycle)
{
    long                            uid, gid;
    cg_error                        error;
    ngx_core_conf_t                *ccf;
    ngx_http_certgate_main_conf_t  *cmcf;

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

    if (cg_cache_dirs_prepare(cmcf->cache_dirs, uid, gid, &error) != CG_OK) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "certgate: %s",
                      error.message);
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* the core's self-checks (check=<name>), once per server, at -t and start */

static ngx_int_t
ngx_http_certgate_self_check(ngx_conf_t *cf, ngx_http_core_srv_conf_t *cscf,
    ngx_http_ssl_srv_conf_t *sscf, const cg_policy *policy)
{
    size_t                i;
    ngx_int_t             rc;
    ngx_uint_t            level;
    cg_findings          *found;
    ngx_core_conf_t      *ccf;
    cg_selfcheck_server   server = { sscf->ssl.ctx, NULL, NULL, NULL, NULL,
                                     NULL, 0, NULL, -1, -1, 0 };

    ccf = (ngx_core_conf_t *) ngx_get_conf(cf->cycle->conf_ctx,
                                           ngx_core_module);

    if (ccf->user != (ngx_uid_t) NGX_CONF_UNSET_UINT) {
        server.worker_uid = (long) ccf->user;
        server.worker_gid = (long) ccf->group;
    }

    server.flags = sscf->verify == 1 ? CG_SELFCHECK_VERIFY_CLIENT_ON : 0;

    found = cg_selfcheck(policy, &server);
    rc = found != NULL ? NGX_OK : NGX_ERROR;

    for (i = 0; i < cg_findings_count(found); i++) {
        level = cg_finding_fatal(found, i) ? NGX_LOG_EMERG : NGX_LOG_WARN;
        rc = (level == NGX_LOG_EMERG) ? NGX_ERROR : rc;
        ngx_log_error(level, cf->log, 0,
                      "%s in server at %s:%ui", cg_finding_message(found, i),
                      cscf->file_name, cscf->line);
    }

    cg_findings_free(found);

    return rc;
}


static ngx_int_t
ngx_http_certgate_init(ngx_conf_t *cf)
{
    ngx_str_t                      zone;
    cg_error                       error;
    ngx_uint_t                     s;
    ngx_shm_zone_t                *shm_zone;
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

        if (ngx_http_certgate_self_check(cf, cscfp[s], sscf, clcf->policy)
            != NGX_OK)
        {
            return NGX_ERROR;
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

    /* named after the zone's layout: a reload never reuses an older one */
    zone.data = (u_char *) cg_counters_zone_name();
    zone.len = ngx_strlen(zone.data);

    shm_zone = ngx_shared_memory_add(cf, &zone,
                                     8 * ngx_pagesize,
                                     &ngx_http_certgate_module);
    if (shm_zone == NULL) {
        return NGX_ERROR;
    }

    shm_zone->init = ngx_http_certgate_zone_init;

    return NGX_OK;
}
