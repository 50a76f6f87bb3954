
/*
 * What the two modules of ngx_http_certgate_module.so share: the location
 * configuration (ngx_http_certgate_module.c) and the decision for a request
 * (ngx_http_certgate_filter_module.c).
 */


#ifndef _NGX_HTTP_CERTGATE_MODULE_H_INCLUDED_
#define _NGX_HTTP_CERTGATE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <certgate/certgate.h>


typedef struct {
    cg_policy                 *policy;
    uint64_t                   set;          /* keys given in this block */
    ngx_uint_t                 log_level;
} ngx_http_certgate_loc_conf_t;


/* the decision for this request's connection under the location's policy */
const cg_decision *ngx_http_certgate_decide(ngx_http_request_t *r,
    ngx_http_certgate_loc_conf_t *clcf);
/* a cg_alloc_fn: the core writes its texts whole into one block of `pool` */
void *ngx_http_certgate_alloc(void *pool, size_t size);


extern ngx_module_t  ngx_http_certgate_module;
/* in the shared zone; the core counts into it atomically */
extern cg_counters  *ngx_http_certgate_counters;


#endif /* _NGX_HTTP_CERTGATE_MODULE_H_INCLUDED_ */
