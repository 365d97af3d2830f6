/* ngx_http_reqsign_module (private): what the module's two files share. */
#ifndef NGX_HTTP_REQSIGN_H_INCLUDED_
#define NGX_HTTP_REQSIGN_H_INCLUDED_

#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <reqsign/nonce.h>

extern ngx_module_t ngx_http_reqsign_module;

/* A `shared:NAME:SIZE` nonce window: one zone of nginx shared memory, exact
 * across every worker process, kept across `nginx -s reload` (same NAME and
 * SIZE). Lives in the configuration's pool. */
typedef struct ngx_http_reqsign_shm_ctx_s ngx_http_reqsign_shm_ctx_t;

/* Declare the zone (configuration time). Returns NULL with a message logged
 * (ngx_conf_log_error) on failure. */
ngx_http_reqsign_shm_ctx_t *ngx_http_reqsign_shm_add(ngx_conf_t *cf, ngx_str_t *name, size_t size,
                                                     ngx_uint_t per_key_max);

/* A reqsign nonce store over the zone, for one worker process (the store
 * holds no memory of its own besides the wrapper; free it at process exit). */
struct reqsign_nonce_store *ngx_http_reqsign_shm_store(ngx_http_reqsign_shm_ctx_t *ctx);

#endif
