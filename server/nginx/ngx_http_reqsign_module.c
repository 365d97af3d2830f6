/* ngx_http_reqsign_module: verify reqsign (RFC 9421, Ed25519) signed
 * requests in nginx before anything reaches the upstream. docs/NGINX.md is
 * the user's guide; this is how it works.
 *
 * Access phase, headers in, body not read:
 *   reqsign_verifier_verify_headers() (signature, time window, key state
 *   through a per-worker key cache over the key store, nonce in the shared
 *   window), then reqsign_require_scope. A refusal is answered at once with
 *   the spec's JSON error; its body is never read into a buffer (nginx
 *   discards it, as it does for its own early errors).
 * Then the body: ngx_http_read_client_request_body() reads all of it (in
 *   memory or spooled to a temp file, chunked or with a length); a request
 *   body filter streams every byte through reqsign_verification_body() as
 *   nginx reads it, and reqsign_verification_finish() checks Content-Digest
 *   when the body is complete. Only then do the phases continue (proxy_pass
 *   and friends), so the upstream never sees a byte of a request that fails.
 *   Because the body is read here, in the access phase, a content handler
 *   that asks for it unbuffered (proxy_request_buffering off,
 *   fastcgi_request_buffering off, ...) gets the already verified, buffered
 *   body: the guarantee holds whatever those directives say.
 *
 * Variables $reqsign_keyid, $reqsign_scopes and $reqsign_account are set
 * only when the whole verification (body and scopes included) succeeded;
 * $reqsign_result is "ok" or the error's wire name.
 *
 * The verifier, key store and key cache are per worker process (made in
 * init_process); the nonce window is shared by all workers
 * (ngx_http_reqsign_shm.c).
 */
#include "ngx_http_reqsign.h"

#include <time.h>

#include <reqsign/error.h>
#include <reqsign/keycache.h>
#include <reqsign/keydir.h>
#include <reqsign/keystore_sqlite.h>
/* The fleet stores are libraries of their own, linked only where they were
 * built (meson option fleet): REQSIGN_NGX_PG / REQSIGN_NGX_REDIS, set by
 * build-module.sh / config. Without one, its URLs are configuration errors. */
#ifdef REQSIGN_NGX_PG
#include <reqsign/keystore_pg.h>
#endif
#ifdef REQSIGN_NGX_REDIS
#include <reqsign/nonce_redis.h>
#endif
#include <reqsign/request.h>
#include <reqsign/verifier.h>

#define NGX_HTTP_REQSIGN_OFF 0
#define NGX_HTTP_REQSIGN_ON 1
#define NGX_HTTP_REQSIGN_OBSERVE 2

/* What 401 responses carry (RFC 9421 section 5): the signature we ask for
 * (the same as server/httpd/httpd.h's). */
#define NGX_HTTP_REQSIGN_ACCEPT_SIGNATURE                                                          \
    "sig1=(\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\")"                    \
    ";created;nonce;keyid;alg=\"ed25519\""

#define NGX_HTTP_REQSIGN_DEFAULT_MAX_BODY (1024 * 1024)

typedef struct {
    ngx_str_t key_store; /* "sqlite:PATH" or a PostgreSQL URI */
    ngx_flag_t key_store_pg;
    ngx_str_t key_directory; /* a JWKS URL instead of a key store */
    ngx_str_t nonce_store;   /* as configured, for messages */
    ngx_http_reqsign_shm_ctx_t *shm;
    ngx_str_t redis; /* redis://... or unix:/path: the nonce store of a fleet */
#if (NGX_THREADS)
    ngx_thread_pool_t *thread_pool; /* where phase one runs (Redis: network I/O) */
#endif
    time_t max_age;
    time_t skew;
    time_t cache_ttl;
    ngx_flag_t used; /* some location has reqsign on or observe */
    /* per worker process */
    struct reqsign_keystore *ks;
    struct reqsign_keycache *cache;
    struct reqsign_keydir *keydir;
    struct reqsign_keystore_pg_listener *listener; /* PostgreSQL: NOTIFY -> cache */
    struct reqsign_nonce_store *nonces;
} ngx_http_reqsign_main_conf_t;

typedef struct {
    ngx_str_t public_authority;
    struct reqsign_verifier *verifier; /* per worker process */
} ngx_http_reqsign_srv_conf_t;

typedef struct {
    ngx_uint_t mode;
    size_t max_body;
    ngx_array_t *scopes; /* of ngx_str_t: every one is required */
} ngx_http_reqsign_loc_conf_t;

enum {
    NGX_HTTP_REQSIGN_NEW = 0,
    NGX_HTTP_REQSIGN_VERIFYING,    /* phase one in the thread pool */
    NGX_HTTP_REQSIGN_HEADERS_DONE, /* phase one over, back on the event loop */
    NGX_HTTP_REQSIGN_READING,      /* reading the body through the filter */
    NGX_HTTP_REQSIGN_DONE
};

typedef struct {
    ngx_uint_t state;
    unsigned observe : 1;
    unsigned ok : 1;      /* everything verified: the variables carry the identity */
    unsigned refuse : 1;  /* answer with err once the body is in */
    unsigned json413 : 1; /* nginx's own 413 for this request becomes the JSON error */
    ngx_buf_t *json_body; /* that JSON, sent in place of nginx's page */
    off_t received;
    size_t max_body;
    struct reqsign_verification vs;
    struct reqsign_error err; /* code REQSIGN_OK until something fails */
} ngx_http_reqsign_ctx_t;

static ngx_int_t ngx_http_reqsign_preconfiguration(ngx_conf_t *cf);
static ngx_int_t ngx_http_reqsign_postconfiguration(ngx_conf_t *cf);
static void *ngx_http_reqsign_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_reqsign_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_reqsign_create_srv_conf(ngx_conf_t *cf);
static char *ngx_http_reqsign_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child);
static void *ngx_http_reqsign_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_reqsign_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child);
static char *ngx_http_reqsign_key_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_reqsign_nonce_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_reqsign_key_directory(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_reqsign_redis(ngx_conf_t *cf, ngx_http_reqsign_main_conf_t *mcf,
                                    ngx_str_t *value);
static char *ngx_http_reqsign_public_authority(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static char *ngx_http_reqsign_require_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
static ngx_int_t ngx_http_reqsign_init_process(ngx_cycle_t *cycle);
static void ngx_http_reqsign_exit_process(ngx_cycle_t *cycle);

static ngx_http_request_body_filter_pt ngx_http_next_request_body_filter;
static ngx_http_output_header_filter_pt ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt ngx_http_next_body_filter;

static ngx_conf_enum_t ngx_http_reqsign_modes[] = {
    {ngx_string("off"), NGX_HTTP_REQSIGN_OFF},
    {ngx_string("on"), NGX_HTTP_REQSIGN_ON},
    {ngx_string("observe"), NGX_HTTP_REQSIGN_OBSERVE},
    {ngx_null_string, 0},
};

static ngx_command_t ngx_http_reqsign_commands[] = {
    {ngx_string("reqsign"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_enum_slot, NGX_HTTP_LOC_CONF_OFFSET, offsetof(ngx_http_reqsign_loc_conf_t, mode),
     &ngx_http_reqsign_modes},
    {ngx_string("reqsign_key_store"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
     ngx_http_reqsign_key_store, NGX_HTTP_MAIN_CONF_OFFSET, 0, NULL},
    {ngx_string("reqsign_key_directory"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1,
     ngx_http_reqsign_key_directory, NGX_HTTP_MAIN_CONF_OFFSET, 0, NULL},
    {ngx_string("reqsign_nonce_store"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE12,
     ngx_http_reqsign_nonce_store, NGX_HTTP_MAIN_CONF_OFFSET, 0, NULL},
    {ngx_string("reqsign_public_authority"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_CONF_TAKE1, ngx_http_reqsign_public_authority,
     NGX_HTTP_SRV_CONF_OFFSET, offsetof(ngx_http_reqsign_srv_conf_t, public_authority), NULL},
    {ngx_string("reqsign_max_age"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_sec_slot,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_reqsign_main_conf_t, max_age), NULL},
    {ngx_string("reqsign_skew"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_sec_slot,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_reqsign_main_conf_t, skew), NULL},
    {ngx_string("reqsign_cache_ttl"), NGX_HTTP_MAIN_CONF | NGX_CONF_TAKE1, ngx_conf_set_sec_slot,
     NGX_HTTP_MAIN_CONF_OFFSET, offsetof(ngx_http_reqsign_main_conf_t, cache_ttl), NULL},
    {ngx_string("reqsign_max_body"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_TAKE1,
     ngx_conf_set_size_slot, NGX_HTTP_LOC_CONF_OFFSET,
     offsetof(ngx_http_reqsign_loc_conf_t, max_body), NULL},
    {ngx_string("reqsign_require_scope"),
     NGX_HTTP_MAIN_CONF | NGX_HTTP_SRV_CONF | NGX_HTTP_LOC_CONF | NGX_CONF_1MORE,
     ngx_http_reqsign_require_scope, NGX_HTTP_LOC_CONF_OFFSET, 0, NULL},
    ngx_null_command,
};

static ngx_http_module_t ngx_http_reqsign_module_ctx = {
    ngx_http_reqsign_preconfiguration, ngx_http_reqsign_postconfiguration,
    ngx_http_reqsign_create_main_conf, ngx_http_reqsign_init_main_conf,
    ngx_http_reqsign_create_srv_conf,  ngx_http_reqsign_merge_srv_conf,
    ngx_http_reqsign_create_loc_conf,  ngx_http_reqsign_merge_loc_conf,
};

ngx_module_t ngx_http_reqsign_module = {NGX_MODULE_V1,
                                        &ngx_http_reqsign_module_ctx,
                                        ngx_http_reqsign_commands,
                                        NGX_HTTP_MODULE,
                                        NULL,                          /* init master */
                                        NULL,                          /* init module */
                                        ngx_http_reqsign_init_process, /* init process */
                                        NULL,                          /* init thread */
                                        NULL,                          /* exit thread */
                                        ngx_http_reqsign_exit_process, /* exit process */
                                        NULL,                          /* exit master */
                                        NGX_MODULE_V1_PADDING};

/* ---- per-request state ---- */

static void ngx_http_reqsign_cleanup(void *data)
{
    ngx_http_reqsign_ctx_t *ctx = data;
    reqsign_verification_cleanup(&ctx->vs);
}

/* The request's state. Found through the pool cleanup after an internal
 * redirect (which clears module contexts), so a request is verified once:
 * a second verification would see its own nonce as a replay. */
static ngx_http_reqsign_ctx_t *ngx_http_reqsign_get_ctx(ngx_http_request_t *r)
{
    ngx_http_reqsign_ctx_t *ctx = ngx_http_get_module_ctx(r, ngx_http_reqsign_module);
    ngx_pool_cleanup_t *cln;

    if (ctx != NULL) {
        return ctx;
    }
    for (cln = r->pool->cleanup; cln != NULL; cln = cln->next) {
        if (cln->handler == ngx_http_reqsign_cleanup) {
            ctx = cln->data;
            ngx_http_set_ctx(r, ctx, ngx_http_reqsign_module);
            return ctx;
        }
    }
    return NULL;
}

/* Log a failure: client errors at info (as nginx logs bad requests), local
 * and store failures at error. Control bytes in the detail are replaced. */
static void ngx_http_reqsign_log(ngx_http_request_t *r, ngx_http_reqsign_ctx_t *ctx)
{
    u_char msg[sizeof(ctx->err.message)];
    size_t i;
    ngx_uint_t level = reqsign_http_status(ctx->err.code) >= 500 ? NGX_LOG_ERR : NGX_LOG_INFO;

    for (i = 0; i + 1 < sizeof(msg) && ctx->err.message[i] != '\0'; i++) {
        u_char c = (u_char)ctx->err.message[i];
        msg[i] = c < 0x20 || c == 0x7f ? '?' : c;
    }
    msg[i] = '\0';
    ngx_log_error(level, r->connection->log, 0, "reqsign: %s: %s: %s",
                  ctx->observe ? "observed" : "refused", reqsign_errname(ctx->err.code), msg);
}

static ngx_int_t ngx_http_reqsign_add_header(ngx_http_request_t *r, const char *name,
                                             const char *value)
{
    ngx_table_elt_t *h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }
    h->hash = 1;
    h->key.data = (u_char *)name;
    h->key.len = ngx_strlen(name);
    h->value.data = (u_char *)value;
    h->value.len = ngx_strlen(value);
    return NGX_OK;
}

/* The spec's JSON error for ctx->err in the response's head (status from
 * reqsign_http_status, Content-Type, Content-Length, Cache-Control,
 * Accept-Signature on 401, Retry-After on 429/503), and its body in *@body
 * (last_buf set). 5xx answers carry the generic message; the detail is in
 * the error log. */
static ngx_int_t ngx_http_reqsign_error_head(ngx_http_request_t *r, ngx_http_reqsign_ctx_t *ctx,
                                             ngx_buf_t **body)
{
    struct reqsign_error e = ctx->err;
    char json[1024];
    size_t n = 0;
    ngx_buf_t *b;
    int status;

    if (e.code == REQSIGN_OK) {
        e.code = REQSIGN_E_INTERNAL;
    }
    status = reqsign_http_status(e.code);
    if (status >= 500) {
        ngx_cpystrn((u_char *)e.message, (u_char *)reqsign_strerror(e.code), sizeof(e.message));
    }
    if (reqsign_error_json(&e, (int64_t)time(NULL), json, sizeof(json), &n) != REQSIGN_OK) {
        e.message[0] = '\0';
        if (reqsign_error_json(&e, (int64_t)time(NULL), json, sizeof(json), &n) != REQSIGN_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }
    b = ngx_create_temp_buf(r->pool, n);
    if (b == NULL) {
        return NGX_ERROR;
    }
    b->last = ngx_cpymem(b->last, json, n);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;
    *body = b;

    r->headers_out.status = status;
    r->headers_out.status_line.len = 0;
    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.charset.len = 0;
    ngx_http_clear_content_length(r);
    r->headers_out.content_length_n = (off_t)n;
    if (ngx_http_reqsign_add_header(r, "Cache-Control", "no-store") != NGX_OK ||
        (status == 401 &&
         ngx_http_reqsign_add_header(r, "Accept-Signature", NGX_HTTP_REQSIGN_ACCEPT_SIGNATURE) !=
             NGX_OK) ||
        ((status == 429 || status == 503) &&
         ngx_http_reqsign_add_header(r, "Retry-After", "1") != NGX_OK)) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    return NGX_OK;
}

/* Answer with the spec's JSON error for ctx->err (ngx_http_reqsign_error_head). */
static ngx_int_t ngx_http_reqsign_send_error(ngx_http_request_t *r, ngx_http_reqsign_ctx_t *ctx)
{
    ngx_buf_t *b = NULL;
    ngx_chain_t out;
    ngx_int_t rc;

    /* as nginx does for its own early errors: no 100-continue, and the body
     * (never read into a buffer) is discarded, or the connection closed */
    r->expect_tested = 1;
    if (ngx_http_discard_request_body(r) != NGX_OK) {
        r->keepalive = 0;
    }
    rc = ngx_http_reqsign_error_head(r, ctx, &b);
    if (rc != NGX_OK) {
        return rc;
    }
    rc = ngx_http_send_header(r);
    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }
    out.buf = b;
    out.next = NULL;
    return ngx_http_output_filter(r, &out);
}

/* Refuse now: answer, finalize, and stop the phases. */
static ngx_int_t ngx_http_reqsign_refuse(ngx_http_request_t *r, ngx_http_reqsign_ctx_t *ctx)
{
    ctx->refuse = 0;
    ngx_http_finalize_request(r, ngx_http_reqsign_send_error(r, ctx));
    return NGX_DONE;
}

/* 1 if @want is one of the space-separated tokens of @scopes. */
static int ngx_http_reqsign_has_scope(const char *scopes, const ngx_str_t *want)
{
    const char *p = scopes;

    while (*p != '\0') {
        const char *e = p;
        while (*e != '\0' && *e != ' ') {
            e++;
        }
        if ((size_t)(e - p) == want->len && ngx_strncmp(p, want->data, want->len) == 0) {
            return 1;
        }
        p = *e == ' ' ? e + 1 : e;
    }
    return 0;
}

/* The request as received, for the verifier: method and request-target as
 * on the request line (HTTP/2: :method, :path), the Host field (:authority)
 * as authority (the verifier substitutes reqsign_public_authority), every
 * field line in arrival order. */
static enum reqsign_status ngx_http_reqsign_view(ngx_http_request_t *r, struct reqsign_request *req,
                                                 struct reqsign_error *err)
{
    ngx_list_part_t *part;
    ngx_table_elt_t *h;
    ngx_uint_t i, n = 0;
    struct reqsign_header *hdrs;

    for (part = &r->headers_in.headers.part; part != NULL; part = part->next) {
        n += part->nelts;
    }
    hdrs = ngx_palloc(r->pool, (n ? n : 1) * sizeof(*hdrs));
    if (hdrs == NULL) {
        return reqsign_error_set(err, REQSIGN_E_NOMEM, "nginx", REQSIGN_NO_OFFSET, "out of memory");
    }
    n = 0;
    for (part = &r->headers_in.headers.part; part != NULL; part = part->next) {
        h = part->elts;
        for (i = 0; i < part->nelts; i++) {
            if (h[i].hash == 0) {
                continue; /* removed by nginx */
            }
            hdrs[n].name.ptr = (const char *)h[i].key.data;
            hdrs[n].name.len = h[i].key.len;
            hdrs[n].value.ptr = (const char *)h[i].value.data;
            hdrs[n].value.len = h[i].value.len;
            n++;
        }
    }
    ngx_memzero(req, sizeof(*req));
    req->method.ptr = (const char *)r->method_name.data;
    req->method.len = r->method_name.len;
#if (NGX_HTTP_SSL)
    if (r->connection->ssl != NULL) {
        req->scheme.ptr = "https";
        req->scheme.len = 5;
    } else
#endif
    {
        req->scheme.ptr = "http";
        req->scheme.len = 4;
    }
    if (r->headers_in.host != NULL) {
        req->authority.ptr = (const char *)r->headers_in.host->value.data;
        req->authority.len = r->headers_in.host->value.len;
    } else if (r->headers_in.server.len > 0) {
        req->authority.ptr = (const char *)r->headers_in.server.data;
        req->authority.len = r->headers_in.server.len;
    }
    req->target.ptr = (const char *)r->unparsed_uri.data;
    req->target.len = r->unparsed_uri.len;
    req->headers = hdrs;
    req->n_headers = n;
    return REQSIGN_OK;
}

/* The body is complete (or there was none): check Content-Digest, then let
 * the phases go on (back into the access handler, which now answers). */
static void ngx_http_reqsign_body_done(ngx_http_request_t *r)
{
    ngx_http_reqsign_ctx_t *ctx = ngx_http_reqsign_get_ctx(r);

    if (ctx != NULL && ctx->state == NGX_HTTP_REQSIGN_READING) {
        ctx->state = NGX_HTTP_REQSIGN_DONE;
        if (ctx->err.code == REQSIGN_OK) {
            if (reqsign_verification_finish(&ctx->vs, &ctx->err) != REQSIGN_OK &&
                ctx->err.code == REQSIGN_OK) {
                ctx->err.code = REQSIGN_E_INTERNAL; /* a failure always names its code */
            }
        }
        if (ctx->err.code != REQSIGN_OK) {
            ngx_http_reqsign_log(r, ctx);
            ctx->refuse = !ctx->observe;
        } else {
            ctx->ok = 1;
        }
    }
    r->write_event_handler = ngx_http_core_run_phases;
    ngx_http_core_run_phases(r);
}

#if (NGX_THREADS)

/* Phase one off the event loop: the nonce store (Redis) and the key store
 * may wait on the network. */
typedef struct {
    const struct reqsign_verifier *verifier;
    struct reqsign_request req; /* views of the request's own memory */
    ngx_http_reqsign_ctx_t *ctx;
} ngx_http_reqsign_job_t;

static void ngx_http_reqsign_thread(void *data, ngx_log_t *log)
{
    ngx_http_reqsign_job_t *job = data;
    ngx_http_reqsign_ctx_t *ctx = job->ctx;

    if (reqsign_verifier_verify_headers(job->verifier, &job->req, &ctx->vs, &ctx->err) !=
            REQSIGN_OK &&
        ctx->err.code == REQSIGN_OK) {
        ctx->err.code = REQSIGN_E_INTERNAL; /* a failure always names its code */
    }
}

/* Back on the event loop: go on with the phases (into the access handler). */
static void ngx_http_reqsign_thread_done(ngx_event_t *ev)
{
    ngx_http_request_t *r = ev->data;
    ngx_connection_t *c = r->connection;
    ngx_http_reqsign_ctx_t *ctx = ngx_http_reqsign_get_ctx(r);

    ngx_http_set_log_request(c->log, r);
    r->main->blocked--;
    r->aio = 0;
    if (ctx != NULL && ctx->state == NGX_HTTP_REQSIGN_VERIFYING) {
        ctx->state = NGX_HTTP_REQSIGN_HEADERS_DONE;
    }
    r->write_event_handler(r);
    ngx_http_run_posted_requests(c);
}

/* Post phase one to the thread pool. NGX_OK: posted; else an error is set. */
static ngx_int_t ngx_http_reqsign_post(ngx_http_request_t *r, ngx_thread_pool_t *tp,
                                       const struct reqsign_verifier *v,
                                       const struct reqsign_request *req,
                                       ngx_http_reqsign_ctx_t *ctx)
{
    ngx_thread_task_t *task = ngx_thread_task_alloc(r->pool, sizeof(ngx_http_reqsign_job_t));
    ngx_http_reqsign_job_t *job;

    if (task == NULL) {
        reqsign_error_set(&ctx->err, REQSIGN_E_NOMEM, "nginx", REQSIGN_NO_OFFSET, "out of memory");
        return NGX_ERROR;
    }
    job = task->ctx;
    job->verifier = v;
    job->req = *req;
    job->ctx = ctx;
    task->handler = ngx_http_reqsign_thread;
    task->event.data = r;
    task->event.handler = ngx_http_reqsign_thread_done;
    ctx->state = NGX_HTTP_REQSIGN_VERIFYING;
    if (ngx_thread_task_post(tp, task) != NGX_OK) {
        ctx->state = NGX_HTTP_REQSIGN_NEW;
        reqsign_error_set(&ctx->err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, "nginx", REQSIGN_NO_OFFSET,
                          "the thread pool's queue is full");
        return NGX_ERROR;
    }
    r->main->blocked++;
    r->aio = 1;
    return NGX_OK;
}

#endif

/* 1 if this worker opened its key store. */
static int ngx_http_reqsign_has_key_store(ngx_http_request_t *r)
{
    ngx_http_reqsign_main_conf_t *mcf = ngx_http_get_module_main_conf(r, ngx_http_reqsign_module);
    return mcf->ks != NULL || mcf->keydir != NULL;
}

static ngx_int_t ngx_http_reqsign_handler(ngx_http_request_t *r)
{
    ngx_http_reqsign_loc_conf_t *lcf;
    ngx_http_reqsign_srv_conf_t *scf;
    ngx_http_reqsign_ctx_t *ctx;
    ngx_pool_cleanup_t *cln;
    struct reqsign_request req;
    ngx_uint_t i;
    ngx_int_t rc;

    ctx = ngx_http_reqsign_get_ctx(r);
    if (ctx != NULL) {
        if (ctx->state == NGX_HTTP_REQSIGN_READING || ctx->state == NGX_HTTP_REQSIGN_VERIFYING) {
            return NGX_DONE; /* still verifying in a thread, or reading the body */
        }
        if (ctx->state == NGX_HTTP_REQSIGN_HEADERS_DONE) {
            lcf = ngx_http_get_module_loc_conf(r, ngx_http_reqsign_module);
            goto headers_done;
        }
        if (ctx->refuse) {
            return ngx_http_reqsign_refuse(r, ctx);
        }
        /* verified (or observed) once; an internal redirect does not verify again */
        return ctx->ok ? NGX_OK : NGX_DECLINED;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_reqsign_module);
    if (lcf->mode == NGX_HTTP_REQSIGN_OFF || r != r->main) {
        return NGX_DECLINED;
    }
    scf = ngx_http_get_module_srv_conf(r, ngx_http_reqsign_module);

    ctx = ngx_pcalloc(r->pool, sizeof(*ctx));
    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (ctx == NULL || cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }
    reqsign_verification_init(&ctx->vs);
    reqsign_error_clear(&ctx->err);
    cln->handler = ngx_http_reqsign_cleanup;
    cln->data = ctx;
    ngx_http_set_ctx(r, ctx, ngx_http_reqsign_module);
    ctx->observe = lcf->mode == NGX_HTTP_REQSIGN_OBSERVE;
    ctx->max_body = lcf->max_body;

    /* Phase one: everything but the content. */
    if (scf->verifier == NULL) {
        reqsign_error_set(&ctx->err,
                          ngx_http_reqsign_has_key_store(r) ? REQSIGN_E_INTERNAL
                                                            : REQSIGN_E_KEYSTORE_UNAVAILABLE,
                          "nginx", REQSIGN_NO_OFFSET,
                          "no verifier in this worker (see the error log at its start)");
    } else if (lcf->max_body > 0 && r->headers_in.content_length_n > (off_t)lcf->max_body) {
        reqsign_error_set(&ctx->err, REQSIGN_E_BODY_TOO_LARGE, "nginx", REQSIGN_NO_OFFSET,
                          "body of %lld bytes; at most %lu",
                          (long long)r->headers_in.content_length_n, (unsigned long)lcf->max_body);
    } else if (ngx_http_reqsign_view(r, &req, &ctx->err) == REQSIGN_OK) {
#if (NGX_THREADS)
        ngx_http_reqsign_main_conf_t *mcf =
            ngx_http_get_module_main_conf(r, ngx_http_reqsign_module);
        if (mcf->thread_pool != NULL) {
            if (ngx_http_reqsign_post(r, mcf->thread_pool, scf->verifier, &req, ctx) == NGX_OK) {
                return NGX_DONE;
            }
            goto headers_done;
        }
#endif
        if (reqsign_verifier_verify_headers(scf->verifier, &req, &ctx->vs, &ctx->err) !=
                REQSIGN_OK &&
            ctx->err.code == REQSIGN_OK) {
            ctx->err.code = REQSIGN_E_INTERNAL;
        }
    }

headers_done:
    if (ctx->err.code == REQSIGN_OK && lcf->scopes != NULL) {
        ngx_str_t *want = lcf->scopes->elts;
        for (i = 0; i < lcf->scopes->nelts; i++) {
            if (!ngx_http_reqsign_has_scope(ctx->vs.scopes, &want[i])) {
                reqsign_error_set(&ctx->err, REQSIGN_E_SCOPE, "nginx", REQSIGN_NO_OFFSET,
                                  "the key lacks the scope \"%.*s\"", (int)want[i].len,
                                  want[i].data);
                break;
            }
        }
    }
    if (ctx->err.code != REQSIGN_OK) {
        ctx->state = NGX_HTTP_REQSIGN_DONE;
        ngx_http_reqsign_log(r, ctx);
        if (ctx->observe) {
            return NGX_DECLINED;
        }
        return ngx_http_reqsign_refuse(r, ctx);
    }

    /* Phase two: read the whole body through the filter, then finish. */
    ctx->state = NGX_HTTP_REQSIGN_READING;
    rc = ngx_http_read_client_request_body(r, ngx_http_reqsign_body_done);
    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }
    ngx_http_finalize_request(r, NGX_DONE);
    return NGX_DONE;
}

/* Every body byte nginx reads, in order, before it is buffered or spooled. */
static ngx_int_t ngx_http_reqsign_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_http_reqsign_ctx_t *ctx = ngx_http_get_module_ctx(r, ngx_http_reqsign_module);
    ngx_chain_t *cl;

    if (ctx == NULL || ctx->state != NGX_HTTP_REQSIGN_READING || ctx->err.code != REQSIGN_OK) {
        return ngx_http_next_request_body_filter(r, in);
    }
    for (cl = in; cl != NULL; cl = cl->next) {
        ngx_buf_t *b = cl->buf;
        size_t size;
        if (!ngx_buf_in_memory(b)) {
            if (ngx_buf_size(b) == 0) {
                continue; /* last_buf, flush */
            }
            reqsign_error_set(&ctx->err, REQSIGN_E_INTERNAL, "nginx", REQSIGN_NO_OFFSET,
                              "request body buffer not in memory");
            break;
        }
        size = (size_t)(b->last - b->pos);
        ctx->received += (off_t)size;
        if (ctx->max_body > 0 && ctx->received > (off_t)ctx->max_body) {
            reqsign_error_set(&ctx->err, REQSIGN_E_BODY_TOO_LARGE, "nginx", REQSIGN_NO_OFFSET,
                              "body over %lu bytes", (unsigned long)ctx->max_body);
            if (!ctx->observe) {
                ngx_http_reqsign_log(r, ctx);
                /* nginx finalizes the request with its 413 (and closes the
                 * connection after it, as for its own limit); the output
                 * filters below turn its HTML page into the JSON error */
                ctx->json413 = 1;
                return NGX_HTTP_REQUEST_ENTITY_TOO_LARGE;
            }
            break;
        }
        if (size > 0 &&
            reqsign_verification_body(&ctx->vs, b->pos, size, &ctx->err) != REQSIGN_OK) {
            break;
        }
    }
    return ngx_http_next_request_body_filter(r, in);
}

/* ---- nginx's 413 page for a body cut off by reqsign_max_body ---- */

/* The response nginx makes for the 413 the request body filter returned:
 * its head becomes the JSON error's (the same as for a Content-Length over
 * the limit). Other responses pass untouched. */
static ngx_int_t ngx_http_reqsign_header_filter(ngx_http_request_t *r)
{
    ngx_http_reqsign_ctx_t *ctx;
    ngx_int_t rc;

    if (r != r->main || r->headers_out.status != NGX_HTTP_REQUEST_ENTITY_TOO_LARGE) {
        return ngx_http_next_header_filter(r);
    }
    ctx = ngx_http_get_module_ctx(r, ngx_http_reqsign_module);
    if (ctx == NULL || !ctx->json413) {
        return ngx_http_next_header_filter(r);
    }
    ctx->json413 = 0;
    rc = ngx_http_reqsign_error_head(r, ctx, &ctx->json_body);
    if (rc != NGX_OK) {
        return NGX_ERROR;
    }
    return ngx_http_next_header_filter(r);
}

/* ... and its body the JSON: nginx's page is consumed and dropped, the JSON
 * goes out with the page's last buffer. */
static ngx_int_t ngx_http_reqsign_output_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_http_reqsign_ctx_t *ctx = ngx_http_get_module_ctx(r, ngx_http_reqsign_module);
    ngx_chain_t *cl, out;
    int last = 0;

    if (ctx == NULL || ctx->json_body == NULL) {
        return ngx_http_next_body_filter(r, in);
    }
    for (cl = in; cl != NULL; cl = cl->next) {
        ngx_buf_t *b = cl->buf;
        last |= b->last_buf || b->last_in_chain;
        b->pos = b->last;
        if (b->in_file) {
            b->file_pos = b->file_last;
        }
    }
    if (!last) {
        return NGX_OK;
    }
    out.buf = ctx->json_body;
    out.next = NULL;
    ctx->json_body = NULL;
    return ngx_http_next_body_filter(r, &out);
}

/* ---- variables ---- */

enum {
    NGX_HTTP_REQSIGN_VAR_KEYID,
    NGX_HTTP_REQSIGN_VAR_SCOPES,
    NGX_HTTP_REQSIGN_VAR_ACCOUNT,
    NGX_HTTP_REQSIGN_VAR_RESULT
};

static ngx_int_t ngx_http_reqsign_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
                                           uintptr_t data)
{
    ngx_http_reqsign_ctx_t *ctx = ngx_http_reqsign_get_ctx(r->main);
    const char *s = NULL;

    if (ctx != NULL) {
        switch (data) {
        case NGX_HTTP_REQSIGN_VAR_KEYID:
            s = ctx->ok ? ctx->vs.keyid : NULL;
            break;
        case NGX_HTTP_REQSIGN_VAR_SCOPES:
            s = ctx->ok ? ctx->vs.scopes : NULL;
            break;
        case NGX_HTTP_REQSIGN_VAR_ACCOUNT:
            s = ctx->ok ? ctx->vs.account : NULL;
            break;
        default:
            if (ctx->err.code != REQSIGN_OK || ctx->state == NGX_HTTP_REQSIGN_DONE) {
                s = reqsign_errname(ctx->err.code);
            }
        }
    }
    if (s == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }
    v->data = (u_char *)s;
    v->len = ngx_strlen(s);
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    return NGX_OK;
}

static ngx_http_variable_t ngx_http_reqsign_vars[] = {
    {ngx_string("reqsign_keyid"), NULL, ngx_http_reqsign_variable, NGX_HTTP_REQSIGN_VAR_KEYID,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("reqsign_scopes"), NULL, ngx_http_reqsign_variable, NGX_HTTP_REQSIGN_VAR_SCOPES,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("reqsign_account"), NULL, ngx_http_reqsign_variable, NGX_HTTP_REQSIGN_VAR_ACCOUNT,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    {ngx_string("reqsign_result"), NULL, ngx_http_reqsign_variable, NGX_HTTP_REQSIGN_VAR_RESULT,
     NGX_HTTP_VAR_NOCACHEABLE, 0},
    ngx_http_null_variable,
};

static ngx_int_t ngx_http_reqsign_preconfiguration(ngx_conf_t *cf)
{
    ngx_http_variable_t *v, *var;

    for (v = ngx_http_reqsign_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }
        var->get_handler = v->get_handler;
        var->data = v->data;
    }
    return NGX_OK;
}

static ngx_int_t ngx_http_reqsign_postconfiguration(ngx_conf_t *cf)
{
    ngx_http_core_main_conf_t *cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    ngx_http_handler_pt *h = ngx_array_push(&cmcf->phases[NGX_HTTP_ACCESS_PHASE].handlers);

    if (h == NULL) {
        return NGX_ERROR;
    }
    *h = ngx_http_reqsign_handler;
    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_reqsign_body_filter;
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_reqsign_header_filter;
    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_reqsign_output_body_filter;
    return NGX_OK;
}

/* ---- configuration ---- */

static void *ngx_http_reqsign_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_reqsign_main_conf_t *conf = ngx_pcalloc(cf->pool, sizeof(*conf));
    if (conf == NULL) {
        return NULL;
    }
    conf->max_age = NGX_CONF_UNSET;
    conf->skew = NGX_CONF_UNSET;
    conf->cache_ttl = NGX_CONF_UNSET;
    return conf;
}

static char *ngx_http_reqsign_init_main_conf(ngx_conf_t *cf, void *c)
{
    ngx_http_reqsign_main_conf_t *conf = c;
    ngx_conf_init_value(conf->max_age, REQSIGN_DEFAULT_MAX_AGE);
    ngx_conf_init_value(conf->skew, REQSIGN_DEFAULT_SKEW);
    ngx_conf_init_value(conf->cache_ttl, REQSIGN_KEYCACHE_DEFAULT_TTL);
    if (conf->max_age < 1 || conf->cache_ttl < 1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "reqsign_max_age and reqsign_cache_ttl must be at least 1s");
        return NGX_CONF_ERROR;
    }
    return NGX_CONF_OK;
}

static void *ngx_http_reqsign_create_srv_conf(ngx_conf_t *cf)
{
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_reqsign_srv_conf_t));
}

static char *ngx_http_reqsign_merge_srv_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_reqsign_srv_conf_t *prev = parent, *conf = child;
    ngx_conf_merge_str_value(conf->public_authority, prev->public_authority, "");
    return NGX_CONF_OK;
}

static void *ngx_http_reqsign_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_reqsign_loc_conf_t *conf = ngx_pcalloc(cf->pool, sizeof(*conf));
    if (conf == NULL) {
        return NULL;
    }
    conf->mode = NGX_CONF_UNSET_UINT;
    conf->max_body = NGX_CONF_UNSET_SIZE;
    conf->scopes = NGX_CONF_UNSET_PTR;
    return conf;
}

static char *ngx_http_reqsign_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_reqsign_loc_conf_t *prev = parent, *conf = child;
    ngx_http_reqsign_main_conf_t *mcf;
    ngx_http_reqsign_srv_conf_t *scf;

    ngx_conf_merge_uint_value(conf->mode, prev->mode, NGX_HTTP_REQSIGN_OFF);
    ngx_conf_merge_size_value(conf->max_body, prev->max_body, NGX_HTTP_REQSIGN_DEFAULT_MAX_BODY);
    ngx_conf_merge_ptr_value(conf->scopes, prev->scopes, NULL);
    if (conf->mode == NGX_HTTP_REQSIGN_OFF) {
        return NGX_CONF_OK;
    }
    /* reqsign on/observe needs all of these: refuse the configuration rather
     * than run a verifier that accepts any authority or forgets nonces */
    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_reqsign_module);
    scf = ngx_http_conf_get_module_srv_conf(cf, ngx_http_reqsign_module);
    if (mcf->key_store.len == 0 && mcf->key_directory.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"reqsign\" is on but no reqsign_key_store or reqsign_key_directory "
                           "is set");
        return NGX_CONF_ERROR;
    }
    if (mcf->shm == NULL && mcf->redis.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"reqsign\" is on but no reqsign_nonce_store is set");
        return NGX_CONF_ERROR;
    }
    if (scf->public_authority.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"reqsign\" is on but this server has no reqsign_public_authority "
                           "(the host[:port] clients sign)");
        return NGX_CONF_ERROR;
    }
    mcf->used = 1;
    return NGX_CONF_OK;
}

static int ngx_http_reqsign_is_pg(const ngx_str_t *v)
{
    return (v->len > 13 && ngx_strncmp(v->data, "postgresql://", 13) == 0) ||
           (v->len > 11 && ngx_strncmp(v->data, "postgres://", 11) == 0);
}

/* Open the key store read-only (configuration time and each worker). */
static struct reqsign_keystore *ngx_http_reqsign_open_keys(ngx_str_t *spec, int pg,
                                                           struct reqsign_error *err)
{
    if (pg) {
#ifdef REQSIGN_NGX_PG
        return reqsign_keystore_pg_open((const char *)spec->data, REQSIGN_KEYSTORE_READONLY, err);
#else
        (void)reqsign_error_set(err, REQSIGN_E_INVALID_ARG, "key store", REQSIGN_NO_OFFSET,
                                "this module was built without the PostgreSQL key store "
                                "(reqsign-keystore-pg)");
        return NULL;
#endif
    }
    return reqsign_keystore_sqlite_open((const char *)spec->data + 7, REQSIGN_KEYSTORE_READONLY,
                                        err);
}

static char *ngx_http_reqsign_key_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_reqsign_main_conf_t *mcf = conf;
    ngx_str_t *value = cf->args->elts;
    struct reqsign_keystore *ks;
    struct reqsign_error err;
    int pg = ngx_http_reqsign_is_pg(&value[1]);

    if (mcf->key_store.len || mcf->key_directory.len) {
        return "is duplicate (or reqsign_key_directory is set)";
    }
    if (!pg && (value[1].len <= 7 || ngx_strncmp(value[1].data, "sqlite:", 7) != 0)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "reqsign_key_store \"%V\": want sqlite:PATH or postgresql://...",
                           &value[1]);
        return NGX_CONF_ERROR;
    }
    /* open it once now, so that a wrong path or URI is a configuration error */
    reqsign_error_clear(&err);
    ks = ngx_http_reqsign_open_keys(&value[1], pg, &err);
    if (ks == NULL) {
        /* the message never holds a password (keystore_pg.c) */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "reqsign_key_store: %s", err.message);
        return NGX_CONF_ERROR;
    }
    reqsign_keystore_free(ks);
    if (pg) {
#if (NGX_THREADS)
        /* lookups wait on the network: phase one runs in the thread pool */
        mcf->thread_pool = ngx_thread_pool_add(cf, NULL);
        if (mcf->thread_pool == NULL) {
            return NGX_CONF_ERROR;
        }
#else
        return "postgresql:// needs nginx built with threads (--with-threads)";
#endif
    }
    mcf->key_store = value[1];
    mcf->key_store_pg = pg;
    return NGX_CONF_OK;
}

/* reqsign_key_directory URL; a JWKS / HTTP message signatures directory
 * (another service's published keys). Fetches wait on the network: phase one
 * runs in the thread pool. */
static char *ngx_http_reqsign_key_directory(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_reqsign_main_conf_t *mcf = conf;
    ngx_str_t *value = cf->args->elts;
    struct reqsign_keydir_opts ko;
    struct reqsign_keydir *kd;
    struct reqsign_error err;

    if (mcf->key_store.len || mcf->key_directory.len) {
        return "is duplicate (or reqsign_key_store is set)";
    }
    ngx_memzero(&ko, sizeof(ko));
    ko.url = (const char *)value[1].data;
    reqsign_error_clear(&err);
    kd = reqsign_keydir_new(&ko, &err); /* checks the URL; does not fetch */
    if (kd == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "reqsign_key_directory \"%V\": %s", &value[1],
                           err.message);
        return NGX_CONF_ERROR;
    }
    reqsign_keydir_free(kd);
#if (NGX_THREADS)
    mcf->thread_pool = ngx_thread_pool_add(cf, NULL);
    if (mcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }
#else
    return "needs nginx built with threads (--with-threads)";
#endif
    mcf->key_directory = value[1];
    return NGX_CONF_OK;
}

#ifdef REQSIGN_NGX_REDIS
/* The Redis store's options: one connection per thread of the pool. */
static void ngx_http_reqsign_redis_opts(ngx_http_reqsign_main_conf_t *mcf,
                                        struct reqsign_nonce_redis_opts *ro)
{
    ngx_memzero(ro, sizeof(*ro));
    ro->url = (const char *)mcf->redis.data;
    ro->pool_size = 32;
}
#endif

/* reqsign_nonce_store redis://... | unix:/path; a fleet's window. A URL that
 * does not parse is a configuration error. The server is PINGed now, but a
 * Redis that does not answer is only a warning: its availability is a
 * run-time condition, not configuration, and refusing the configuration for
 * it would make a reload during an outage keep the old configuration (an
 * unrelated change, a renewed certificate, silently not applied) and a
 * start during one take the whole edge down, unsigned locations too. The
 * workers then start with the store unavailable: every request that needs
 * it is answered 503 nonce_store_unavailable (fail-closed, never an accept)
 * until Redis answers again, without a reload (the store reconnects).
 * Only `nginx -t` still fails on an unreachable Redis: it is the check run
 * before deploying, and says so. A reload (nginx -s reload, SIGHUP) and a
 * start do not run it. */
static char *ngx_http_reqsign_redis(ngx_conf_t *cf, ngx_http_reqsign_main_conf_t *mcf,
                                    ngx_str_t *value)
{
#ifndef REQSIGN_NGX_REDIS
    return "Redis: this module was built without the Redis nonce store (reqsign-nonce-redis)";
#elif (NGX_THREADS)
    struct reqsign_nonce_redis_opts ro;
    struct reqsign_nonce_store *st;
    struct reqsign_error err;

    if (cf->args->nelts != 2) {
        return "takes no parameters after a Redis URL";
    }
    mcf->redis = value[1];
    ngx_http_reqsign_redis_opts(mcf, &ro);
    reqsign_error_clear(&err);
    st = reqsign_nonce_store_redis_new(&ro, &err);
    if (st == NULL) { /* a malformed URL or option */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "reqsign_nonce_store: Redis: %s", err.message);
        return NGX_CONF_ERROR;
    }
    if (reqsign_nonce_store_redis_ping(st, &err) != REQSIGN_OK) {
        /* An outage is not a configuration error, under nginx -t too:
         * Debian's unit runs nginx -t before a start, and an edge that
         * cannot start during a Redis outage would take its unsigned
         * locations down with it. The warning names the outage. */
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "reqsign_nonce_store: Redis: %s; starting anyway: signed requests "
                           "are answered 503 nonce_store_unavailable until it answers",
                           err.message);
    }
    reqsign_nonce_store_free(st);
    /* phase one runs in nginx's "default" thread pool (thread_pool default ...) */
    mcf->thread_pool = ngx_thread_pool_add(cf, NULL);
    if (mcf->thread_pool == NULL) {
        return NGX_CONF_ERROR;
    }
    mcf->nonce_store = value[1];
    return NGX_CONF_OK;
#else
    return "needs nginx built with threads (--with-threads)";
#endif
}

/* reqsign_nonce_store shared:NAME:SIZE [per_key=N]; */
static char *ngx_http_reqsign_nonce_store(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_reqsign_main_conf_t *mcf = conf;
    ngx_str_t *value = cf->args->elts, name, s;
    ngx_uint_t per_key = REQSIGN_NONCE_DEFAULT_PER_KEY_MAX;
    u_char *colon;
    ssize_t size;
    ngx_int_t n;

    if (mcf->shm != NULL) {
        return "is duplicate";
    }
    if (mcf->redis.len) {
        return "is duplicate";
    }
    if ((value[1].len > 8 && ngx_strncmp(value[1].data, "redis://", 8) == 0) ||
        (value[1].len > 5 && ngx_strncmp(value[1].data, "unix:", 5) == 0)) {
        return ngx_http_reqsign_redis(cf, mcf, value);
    }
    if (value[1].len <= 7 || ngx_strncmp(value[1].data, "shared:", 7) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "reqsign_nonce_store \"%V\": want shared:NAME:SIZE, "
                           "redis://HOST[:PORT][/DB] or unix:/path",
                           &value[1]);
        return NGX_CONF_ERROR;
    }
    name.data = value[1].data + 7;
    colon = (u_char *)ngx_strlchr(name.data, value[1].data + value[1].len, ':');
    if (colon == NULL || colon == name.data) {
        return "needs shared:NAME:SIZE";
    }
    name.len = (size_t)(colon - name.data);
    s.data = colon + 1;
    s.len = (size_t)(value[1].data + value[1].len - s.data);
    size = ngx_parse_size(&s);
    if (size == NGX_ERROR) {
        return "has an invalid SIZE";
    }
    if (size < (ssize_t)(8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "reqsign_nonce_store \"%V\" is too small (at least %uz)", &value[1],
                           8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }
    if (cf->args->nelts == 3) {
        if (value[2].len <= 8 || ngx_strncmp(value[2].data, "per_key=", 8) != 0) {
            return "takes per_key=N as its second parameter";
        }
        n = ngx_atoi(value[2].data + 8, value[2].len - 8);
        if (n == NGX_ERROR || n < 1) {
            return "has an invalid per_key";
        }
        per_key = (ngx_uint_t)n;
    }
    mcf->shm = ngx_http_reqsign_shm_add(cf, &name, (size_t)size, per_key);
    if (mcf->shm == NULL) {
        return NGX_CONF_ERROR;
    }
    mcf->nonce_store = value[1];
    return NGX_CONF_OK;
}

static char *ngx_http_reqsign_public_authority(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t *value = cf->args->elts;
    struct reqsign_span sch = {"https", 5}, auth;
    struct reqsign_error err;
    char out[REQSIGN_AUTHORITY_IN_MAX + 1];
    size_t n;

    auth.ptr = (const char *)value[1].data;
    auth.len = value[1].len;
    reqsign_error_clear(&err);
    if (reqsign_authority_normalize(sch, auth, out, sizeof(out), &n, &err) != REQSIGN_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "reqsign_public_authority \"%V\": %s", &value[1],
                           err.message);
        return NGX_CONF_ERROR;
    }
    return ngx_conf_set_str_slot(cf, cmd, conf);
}

static char *ngx_http_reqsign_require_scope(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_reqsign_loc_conf_t *lcf = conf;
    ngx_str_t *value = cf->args->elts, *s;
    ngx_uint_t i;

    if (lcf->scopes == NGX_CONF_UNSET_PTR) {
        lcf->scopes = ngx_array_create(cf->pool, cf->args->nelts, sizeof(ngx_str_t));
        if (lcf->scopes == NULL) {
            return NGX_CONF_ERROR;
        }
    }
    for (i = 1; i < cf->args->nelts; i++) {
        if (value[i].len == 0 || ngx_strlchr(value[i].data, value[i].data + value[i].len, ' ')) {
            return "takes scope tokens";
        }
        s = ngx_array_push(lcf->scopes);
        if (s == NULL) {
            return NGX_CONF_ERROR;
        }
        *s = value[i];
    }
    return NGX_CONF_OK;
}

/* ---- worker processes ---- */

static ngx_int_t ngx_http_reqsign_init_process(ngx_cycle_t *cycle)
{
    ngx_http_reqsign_main_conf_t *mcf;
    ngx_http_core_main_conf_t *cmcf;
    ngx_http_core_srv_conf_t **cscfp;
    struct reqsign_error err;
    ngx_uint_t s;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_reqsign_module);
    if (mcf == NULL || !mcf->used) {
        return NGX_OK;
    }
    reqsign_error_clear(&err);
    if (mcf->key_directory.len > 0) {
        struct reqsign_keydir_opts ko;
        ngx_memzero(&ko, sizeof(ko));
        ko.url = (const char *)mcf->key_directory.data;
        mcf->keydir = reqsign_keydir_new(&ko, &err);
        if (mcf->keydir == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "reqsign: key directory: %s", err.message);
            return NGX_ERROR;
        }
        goto stores;
    }
    mcf->ks = ngx_http_reqsign_open_keys(&mcf->key_store, mcf->key_store_pg, &err);
    if (mcf->ks == NULL) {
        /* e.g. PostgreSQL down while this worker starts: stay up and answer
         * 503 keystore_unavailable (fail-closed) rather than exit */
        ngx_log_error(NGX_LOG_ERR, cycle->log, 0, "reqsign: key store: %s", err.message);
        return NGX_OK;
    }
    struct reqsign_keycache_opts co = {.store = mcf->ks,
                                       .positive_ttl = (int64_t)mcf->cache_ttl,
                                       .negative_ttl = (int64_t)mcf->cache_ttl};
    mcf->cache = reqsign_keycache_new(&co, &err);
    if (mcf->cache == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "reqsign: key cache: %s",
                      err.message[0] ? err.message : "out of memory");
        return NGX_ERROR;
    }
#ifdef REQSIGN_NGX_PG
    if (mcf->key_store_pg) {
        /* a revocation committed by the key service drops the key from this
         * worker's cache at once (NOTIFY); the TTL stays the bound if a
         * notification is lost */
        mcf->listener =
            reqsign_keystore_pg_listen((const char *)mcf->key_store.data, mcf->cache, &err);
        if (mcf->listener == NULL) {
            ngx_log_error(NGX_LOG_ERR, cycle->log, 0,
                          "reqsign: key store notifications: %s (revocations take up to "
                          "reqsign_cache_ttl)",
                          err.message);
        }
    }
#endif

stores:
#ifdef REQSIGN_NGX_REDIS
    if (mcf->redis.len > 0) {
        struct reqsign_nonce_redis_opts ro;
        ngx_http_reqsign_redis_opts(mcf, &ro);
        mcf->nonces = reqsign_nonce_store_redis_new(&ro, &err); /* connects on demand */
    } else
#endif
    {
        mcf->nonces = ngx_http_reqsign_shm_store(mcf->shm);
    }
    if (mcf->nonces == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "reqsign: key cache or nonce store: %s",
                      err.message[0] ? err.message : "out of memory");
        return NGX_ERROR;
    }

    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module);
    cscfp = cmcf->servers.elts;
    for (s = 0; s < cmcf->servers.nelts; s++) {
        ngx_http_reqsign_srv_conf_t *scf =
            cscfp[s]->ctx->srv_conf[ngx_http_reqsign_module.ctx_index];
        if (scf->public_authority.len == 0 || scf->verifier != NULL) {
            continue;
        }
        struct reqsign_verifier_opts vo = {
            .profile = REQSIGN_PROFILE_REQSIGN,
            .max_age = (int64_t)mcf->max_age,
            .skew = mcf->skew == 0 ? -1 : (int64_t)mcf->skew, /* 0 means none, not the default */
            .public_authority = (const char *)scf->public_authority.data,
            .lookup = mcf->keydir != NULL ? reqsign_keydir_lookup : reqsign_keycache_lookup,
            .lookup_ctx = mcf->keydir != NULL ? (void *)mcf->keydir : (void *)mcf->cache,
            .nonces = mcf->nonces,
        };
        scf->verifier = reqsign_verifier_new(&vo, &err);
        if (scf->verifier == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cycle->log, 0, "reqsign: verifier: %s", err.message);
            return NGX_ERROR;
        }
    }
    return NGX_OK;
}

static void ngx_http_reqsign_exit_process(ngx_cycle_t *cycle)
{
    ngx_http_reqsign_main_conf_t *mcf;
    ngx_http_core_main_conf_t *cmcf;
    ngx_http_core_srv_conf_t **cscfp;
    ngx_uint_t s;

    mcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_reqsign_module);
    if (mcf == NULL || !mcf->used) {
        return;
    }
    cmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_core_module);
    cscfp = cmcf->servers.elts;
    for (s = 0; s < cmcf->servers.nelts; s++) {
        ngx_http_reqsign_srv_conf_t *scf =
            cscfp[s]->ctx->srv_conf[ngx_http_reqsign_module.ctx_index];
        reqsign_verifier_free(scf->verifier);
        scf->verifier = NULL;
    }
    reqsign_nonce_store_free(mcf->nonces);
#ifdef REQSIGN_NGX_PG
    reqsign_keystore_pg_listener_stop(mcf->listener); /* before the cache it writes to */
#endif
    mcf->listener = NULL;
    reqsign_keycache_free(mcf->cache);
    reqsign_keystore_free(mcf->ks);
    reqsign_keydir_free(mcf->keydir);
    mcf->keydir = NULL;
    mcf->nonces = NULL;
    mcf->cache = NULL;
    mcf->ks = NULL;
}
