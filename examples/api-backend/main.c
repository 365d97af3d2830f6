/* api-backend: an example API server that accepts only reqsign-signed requests.
 *
 *   api-backend --listen HOST:PORT (--db PATH | --key-store STORE) [--nonce-store STORE]
 *               (--authority HOST[:PORT] ... | --any-authority) [--max-age N] [--skew N]
 *               [--cache-ttl N] [--max-body N] [--threads N] [--bench-unsigned-route]
 *               [--require-scope [/PATH-PREFIX=]SCOPE ...] [--read-only]
 *               [--tls-cert FILE --tls-key FILE | --insecure-http] [--public-scheme S]
 *               [--log-format text|json]
 *   api-backend --help | --version
 *
 *   --authority HOST[:PORT]: the authority clients sign for this service (its
 *       public name, behind a proxy too); repeatable when the service has
 *       several names; --public-authority is the same option. Required: a
 *       verifier that takes @authority from each request's Host accepts a
 *       request signed for another service that trusts the same keys.
 *   --any-authority: do that anyway (logs a warning). Not for production.
 *   --require-scope SCOPE: every signed request needs a key with SCOPE;
 *       --require-scope /v1/orders=orders:write: requests whose path is
 *       /v1/orders or below it need orders:write (repeatable: every rule that
 *       matches must hold). Otherwise 403 "scope". This is the authorisation
 *       step to copy: see require_scopes() below.
 *   --read-only: never write to the key store: the last use of keys is not
 *       recorded (one log line says so). Without it, a SQLite store this
 *       user cannot write is read all the same, with the same log line.
 *   TLS (--tls-cert, --tls-key), --insecure-http, --public-scheme and
 *       --log-format are the HTTP glue's (server/httpd/httpd.h, api-backend(8)).
 *
 * Exit status: 0 stopped by a signal, 1 a failure, 2 a usage error.
 *
 *   --key-store sqlite:PATH | PATH | postgresql://...   (--db PATH: sqlite:PATH)
 *   --nonce-store memory (default) | redis://HOST[:PORT][/DB] | unix:/path/redis.sock
 *
 * It reads the key service's key store read-only (SQLite file, or the
 * PostgreSQL database a fleet shares) and answers every request with an echo
 * of who signed it and what was signed. Least privilege: it may run as a user
 * that can only read the SQLite database and its -wal and -shm files (which
 * reqsignd keeps), in a directory it cannot write; it then sees every change
 * reqsignd commits, and only the last use of keys (the one thing it writes)
 * is not recorded (examples/api-backend/README.md):
 *
 *   {"keyid", "scopes": [...], "account", "method", "path", "body_sha256"}
 *
 * or with the spec's JSON error (spec/PROTOCOL.md section 10). /healthz is
 * not verified (health checks). With --bench-unsigned-route, and only then,
 * /unsigned/... is not verified either: it exists for bench/bench_e2e.c to
 * time the same echo without the signature. DO NOT COPY IT: a route that
 * skips verification is a hole in a real service.
 *
 * Fleet mode (README.md, "Fleet deployment"): every instance behind the load
 * balancer uses the same --nonce-store redis://... and --key-store
 * postgresql://...; a request is then accepted by at most one of them. With
 * PostgreSQL, revocations reach the key cache by LISTEN/NOTIFY at once
 * (--cache-ttl stays the bound if notifications are lost). A store that is
 * down answers 503 (fail-closed); one that cannot be reached at start-up
 * makes the program exit with status 1.
 *
 * This is the part a provider copies: the verifier set-up in main() and the
 * three steps on_headers() -> on_body() -> on_end(). The HTTP plumbing
 * (server/httpd/) is ours; any server that can call a function when the
 * headers are in and again for each body chunk can do the same.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include <reqsign/digest.h>
#include <reqsign/keycache.h>
#include <reqsign/keystore.h>
#include <reqsign/nonce.h>
#include <reqsign/verifier.h>

#include "httpd.h"
#include "stores.h"

#define PROG "api-backend"
#define DEFAULT_MAX_BODY (1024u * 1024u)
#ifndef REQSIGN_VERSION
#define REQSIGN_VERSION "0.1.0"
#endif
#define MAX_SCOPE_RULES 32

/* --require-scope [PREFIX=]SCOPE: requests under @prefix (all if empty) need @scope. */
struct scope_rule {
    const char *prefix; /* "" or "/..." */
    size_t prefix_len;
    const char *scope;
};

/* What every request needs: the handlers' ctx. */
struct app {
    const struct reqsign_verifier *verifier;
    int bench_unsigned; /* --bench-unsigned-route: serve /unsigned/... unverified */
    const struct scope_rule *rules;
    size_t n_rules;
};

/* 1 if the space-separated @scopes hold @want exactly. */
static int has_scope(const char *scopes, const char *want)
{
    size_t wl = strlen(want);
    for (const char *p = scopes; *p;) {
        const char *e = strchr(p, ' ');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        if (n == wl && memcmp(p, want, n) == 0)
            return 1;
        p += n + (e != NULL);
    }
    return 0;
}

/* 1 if the raw @path is @prefix or below it ("/v1/orders" matches
 * "/v1/orders", "/v1/orders/7", "/v1/orders?x", not "/v1/ordersX"). */
static int under_prefix(struct reqsign_span path, const char *prefix, size_t pl)
{
    if (pl == 0)
        return 1;
    if (path.len < pl || memcmp(path.ptr, prefix, pl) != 0)
        return 0;
    return path.len == pl || prefix[pl - 1] == '/' || path.ptr[pl] == '/';
}

/* Authorisation, after the signature is verified: every --require-scope
 * rule that covers the path must be among the key's scopes. Copy this. */
static int require_scopes(const struct app *app, struct reqsign_httpd_req *r,
                          const struct reqsign_verification *vs)
{
    for (size_t i = 0; i < app->n_rules; i++) {
        const struct scope_rule *ru = &app->rules[i];
        if (under_prefix(r->path, ru->prefix, ru->prefix_len) &&
            !has_scope(vs->scopes, ru->scope)) {
            reqsign_httpd_fail(r, REQSIGN_E_SCOPE, "this key lacks the scope '%s'", ru->scope);
            return -1;
        }
    }
    return 0;
}

/* Per-request state. */
struct call {
    int verify;                     /* 0 for /unsigned/... with --bench-unsigned-route */
    struct reqsign_verification vs; /* the verifier's state between the two phases */
    struct reqsign_digest sha256;   /* our own hash of the body, for the echo */
};

/* A JSON text built in a caller's buffer; overflow is sticky. */
struct out {
    char *buf;
    size_t cap, len;
    int overflow;
};

static void out_put(struct out *o, const char *p, size_t n)
{
    if (o->overflow || n > o->cap - o->len) {
        o->overflow = 1;
        return;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

static void out_lit(struct out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

/* @p[0..n) as a JSON string: quotes, backslashes and bytes outside printable
 * ASCII escaped (\u00XX for each byte, so any byte string is valid JSON). */
static void out_str(struct out *o, const char *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    out_put(o, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch == '"' || ch == '\\') {
            char esc[2] = {'\\', (char)ch};
            out_put(o, esc, 2);
        } else if (ch < 0x20 || ch >= 0x7f) {
            char esc[6] = {'\\', 'u', '0', '0', digits[ch >> 4], digits[ch & 15]};
            out_put(o, esc, 6);
        } else {
            out_put(o, (const char *)&ch, 1);
        }
    }
    out_put(o, "\"", 1);
}

/* 1 if this process may write the SQLite database @path and the -wal and
 * -shm files beside it (those that exist; a missing one needs the directory). */
static int sqlite_writable(const char *path)
{
    static const char *const ext[3] = {"", "-wal", "-shm"};
    char p[4200];
    if (path == NULL)
        return 0;
    for (int i = 0; i < 3; i++) {
        snprintf(p, sizeof(p), "%s%s", path, ext[i]);
        if (access(p, W_OK) == 0)
            continue;
        if (errno != ENOENT || i == 0)
            return 0;
        char *slash = strrchr(p, '/');
        if (slash == NULL ? access(".", W_OK | X_OK) != 0
                          : (*slash = '\0', access(slash == p ? "/" : p, W_OK | X_OK) != 0))
            return 0;
    }
    return 1;
}

/* Step 1, headers in, body not read: check the signature. A request that
 * fails here is answered at once; its body is never read. */
/* BENCHMARK ONLY, DO NOT COPY. Is @r for the benchmark's unverified route:
 * a raw path "/unsigned/" followed only by letters, digits, '-', '_', '~'
 * and '/'? No '.' and no '%', so no dot segment (/unsigned/../pay) can route
 * elsewhere once a server or proxy normalises the path. */
static int bench_unsigned_path(const struct reqsign_httpd_req *r)
{
    static const char prefix[] = "/unsigned/";
    const char *p = r->path.ptr;
    size_t n = r->path.len, k = sizeof(prefix) - 1;
    if (n < k || memcmp(p, prefix, k) != 0)
        return 0;
    for (size_t i = k; i < n; i++) {
        char c = p[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '~' || c == '/'))
            return 0;
    }
    return 1;
}

static void on_headers(void *ctx, struct reqsign_httpd_req *r)
{
    const struct app *app = ctx;
    const struct reqsign_verifier *verifier = app->verifier;
    static const char ok[] = "{\"status\":\"ok\"}";
    if (reqsign_httpd_path_is(r, "/healthz")) {
        reqsign_httpd_respond(r, 200, "application/json", ok, sizeof(ok) - 1);
        return;
    }
    struct call *c = calloc(1, sizeof(*c));
    if (c == NULL || reqsign_digest_init(&c->sha256, REQSIGN_DIGEST_SHA256, NULL) != REQSIGN_OK) {
        free(c);
        reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
        return;
    }
    r->app = c;
    reqsign_verification_init(&c->vs);
    c->verify = !(app->bench_unsigned && bench_unsigned_path(r)); /* benchmark only */
    if (!c->verify)
        return;

    struct reqsign_error err;
    reqsign_error_clear(&err);
    /* Parse, required components, time window, key (via the cache), Ed25519,
     * nonce: everything but the content. */
    if (reqsign_verifier_verify_headers(verifier, &r->view, &c->vs, &err) != REQSIGN_OK) {
        reqsign_httpd_respond_error(r, &err); /* 401/400/... with the spec's JSON body */
        return;
    }
    snprintf(r->keyid, sizeof(r->keyid), "%s", c->vs.keyid); /* for the log line */
    /* Authorisation: c->vs.scopes holds the key's scopes; refuse with
     * REQSIGN_E_SCOPE (403) when a --require-scope rule is not met, before
     * any body byte is read. */
    require_scopes(app, r, &c->vs);
}

/* Step 2, each body chunk: stream it into the Content-Digest check (and our
 * own SHA-256 for the echo). Nothing is buffered. */
static void on_body(void *ctx, struct reqsign_httpd_req *r, const char *data, size_t len)
{
    struct call *c = r->app;
    struct reqsign_error err;
    (void)ctx;
    reqsign_error_clear(&err);
    if (c->verify && reqsign_verification_body(&c->vs, data, len, &err) != REQSIGN_OK) {
        reqsign_httpd_respond_error(r, &err);
        return;
    }
    if (reqsign_digest_update(&c->sha256, data, len, NULL) != REQSIGN_OK)
        reqsign_httpd_fail(r, REQSIGN_E_CRYPTO, "hash failure");
}

/* Step 3, end of body: the digest must match, and the key (asked again
 * through the cache) must still be active: a key revoked while the body was
 * arriving is refused here. Only now may the application act on the request
 * (spec section 9: never before phase two succeeded). */
static struct reqsign_keycache *g_cache; /* for the last use */

static void on_end(void *ctx, struct reqsign_httpd_req *r)
{
    struct call *c = r->app;
    struct reqsign_error err;
    (void)ctx;
    reqsign_error_clear(&err);
    if (c->verify && reqsign_verification_finish(&c->vs, &err) != REQSIGN_OK) {
        reqsign_httpd_respond_error(r, &err); /* digest_mismatch, key_revoked, ... */
        return;
    }
    if (c->verify) /* "last used": in memory; a background thread writes it */
        reqsign_keycache_record_use(g_cache, c->vs.keyid, strlen(c->vs.keyid));

    /* The application's work; here, an echo. */
    uint8_t sum[REQSIGN_SHA256_LEN];
    char cd[REQSIGN_CONTENT_DIGEST_OUT_BUF], hex[2 * REQSIGN_SHA256_LEN + 1];
    size_t cd_len;
    if (reqsign_digest_final(&c->sha256, cd, sizeof(cd), &cd_len, sum, NULL, NULL) != REQSIGN_OK) {
        reqsign_httpd_fail(r, REQSIGN_E_CRYPTO, "hash failure");
        return;
    }
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < sizeof(sum); i++) {
        hex[2 * i] = digits[sum[i] >> 4];
        hex[2 * i + 1] = digits[sum[i] & 15];
    }
    hex[sizeof(hex) - 1] = '\0';
    /* The echo, written straight into one buffer (no JSON tree per request):
     * {"keyid":...,"scopes":[...],"account":...,"method":...,"path":...,"body_sha256":...} */
    char small[4096];
    size_t need = 160 + 6 * (strlen(c->vs.keyid) + strlen(c->vs.scopes) + strlen(c->vs.account) +
                             strlen(r->method) + r->path.len + sizeof(hex));
    char *out = need <= sizeof(small) ? small : malloc(need);
    if (out == NULL) {
        reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
        return;
    }
    struct out o = {out, need, 0, 0};
    out_lit(&o, "{\"keyid\":");
    if (c->verify)
        out_str(&o, c->vs.keyid, strlen(c->vs.keyid));
    else
        out_lit(&o, "null");
    out_lit(&o, ",\"scopes\":[");
    int first = 1;
    for (const char *p = c->vs.scopes; *p;) {
        const char *e = strchr(p, ' ');
        size_t n = e != NULL ? (size_t)(e - p) : strlen(p);
        if (n > 0) {
            out_lit(&o, first ? "" : ",");
            out_str(&o, p, n);
            first = 0;
        }
        p += n + (e != NULL);
    }
    out_lit(&o, "],\"account\":");
    if (c->verify && c->vs.account[0] != '\0')
        out_str(&o, c->vs.account, strlen(c->vs.account));
    else
        out_lit(&o, "null");
    out_lit(&o, ",\"method\":");
    out_str(&o, r->method, strlen(r->method));
    out_lit(&o, ",\"path\":");
    out_str(&o, r->path.ptr, r->path.len);
    out_lit(&o, ",\"body_sha256\":");
    out_str(&o, hex, sizeof(hex) - 1);
    out_lit(&o, "}");
    if (o.overflow)
        reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "cannot encode the answer");
    else
        reqsign_httpd_respond(r, 200, "application/json", out, o.len);
    if (out != small)
        free(out);
}

/* The request is over (answered or abandoned): release its state. */
static void on_done(void *ctx, struct reqsign_httpd_req *r)
{
    struct call *c = r->app;
    (void)ctx;
    if (c == NULL)
        return;
    reqsign_verification_cleanup(&c->vs);
    reqsign_digest_cleanup(&c->sha256);
    free(c);
}

static void help(FILE *f)
{
    fprintf(f,
            "usage: " PROG " --listen HOST:PORT (--db PATH | --key-store STORE)\n"
            "       (--authority HOST[:PORT] ... | --any-authority) [--nonce-store STORE]\n"
            "       [--max-age N] [--skew N] [--cache-ttl N] [--max-body N] [--threads N]\n"
            "       [--last-used-interval SECONDS]\n"
            "       [--require-scope [/PATH-PREFIX=]SCOPE ...] [--bench-unsigned-route]\n"
            "       [--read-only]\n"
            "       [--tls-cert FILE --tls-key FILE] [--insecure-http]\n"
            "       [--public-scheme http|https] [--log-format text|json]\n"
            "       " PROG " --help | --version\n"
            "  --authority: the host[:port] clients sign for this service (repeatable;\n"
            "  alias --public-authority)\n"
            "  --require-scope: the key must hold SCOPE (for paths under PREFIX), else "
            "403\n"
            "  --read-only: never write the key store (the last use of keys is not "
            "recorded)\n" REQSIGN_HTTPD_OPTIONS_USAGE "  %s\n"
            "exit status: 0 ok, 1 failure, 2 usage error\n",
            reqsign_stores_usage());
}

/* A usage error: what is wrong in one line, a pointer to --help, exit 2. */
static int usage_error(const char *what, const char *opt)
{
    reqsign_opt_usage_error(PROG, NULL, "%s%s%s%s", what, opt ? " '" : "", opt ? opt : "",
                            opt ? "'" : "");
    return 2;
}

/* What the command line says. */
struct config {
    const char *listen;
    const char *authorities[REQSIGN_VERIFIER_AUTHORITIES_IN_MAX];
    size_t n_authorities;
    int any_authority, bench_unsigned, read_only;
    struct reqsign_stores_opts so; /* --key-store, --db, --nonce-store */
    struct reqsign_httpd_opts ho;  /* TLS, log format, ... */
    struct scope_rule rules[MAX_SCOPE_RULES];
    size_t n_rules;
    int64_t max_age, skew, ttl, max_body, threads, last_used;
};

/* The options: ours, then the HTTP glue's and the stores' (server/httpd/). */
enum {
    O_LISTEN = 1,
    O_AUTHORITY,
    O_ANY_AUTHORITY,
    O_BENCH_UNSIGNED,
    O_READ_ONLY,
    O_REQUIRE_SCOPE,
    O_MAX_AGE,
    O_SKEW,
    O_CACHE_TTL,
    O_LAST_USED,
    O_MAX_BODY,
    O_THREADS,
};
static const struct reqsign_opt_def options[] = {
    {"listen", 0, REQSIGN_OPT_VALUE, O_LISTEN},
    {"authority", 0, REQSIGN_OPT_VALUE, O_AUTHORITY},
    {"public-authority", 0, REQSIGN_OPT_VALUE, O_AUTHORITY},
    {"any-authority", 0, REQSIGN_OPT_FLAG, O_ANY_AUTHORITY},
    {"bench-unsigned-route", 0, REQSIGN_OPT_FLAG, O_BENCH_UNSIGNED},
    {"read-only", 0, REQSIGN_OPT_FLAG, O_READ_ONLY},
    {"require-scope", 0, REQSIGN_OPT_VALUE, O_REQUIRE_SCOPE},
    {"max-age", 0, REQSIGN_OPT_VALUE, O_MAX_AGE},
    {"skew", 0, REQSIGN_OPT_VALUE, O_SKEW},
    {"cache-ttl", 0, REQSIGN_OPT_VALUE, O_CACHE_TTL},
    {"last-used-interval", 0, REQSIGN_OPT_VALUE, O_LAST_USED},
    {"max-body", 0, REQSIGN_OPT_VALUE, O_MAX_BODY},
    {"threads", 0, REQSIGN_OPT_VALUE, O_THREADS},
    REQSIGN_HTTPD_OPTS,
    REQSIGN_STORES_OPTS,
    {0},
};

/* --require-scope @v: SCOPE or /PATH-PREFIX=SCOPE. 0 or 2 (said). */
static int add_scope_rule(struct config *c, const char *v)
{
    const char *eq = v[0] == '/' ? strchr(v, '=') : NULL;
    struct scope_rule ru = {"", 0, v};
    if (eq != NULL)
        ru = (struct scope_rule){v, (size_t)(eq - v), eq + 1};
    if (c->n_rules == MAX_SCOPE_RULES)
        return usage_error("too many rules:", "--require-scope");
    if ((v[0] == '/' && eq == NULL) || ru.scope[0] == '\0' || strchr(ru.scope, ' ') != NULL)
        return usage_error("--require-scope wants SCOPE or /PATH-PREFIX=SCOPE, got", v);
    c->rules[c->n_rules++] = ru;
    return 0;
}

/* A number of seconds (or bytes, or threads) >= @min (and <= @max if > 0)
 * for option @name into *@out: 0, or 2 (said). */
static int number(const char *name, const char *v, int64_t min, int64_t max, int64_t *out)
{
    if (reqsign_httpd_parse_seconds(v, out) != 0 || *out < min || (max > 0 && *out > max))
        return usage_error("bad value for", name);
    return 0;
}

/* One of our own options, @id with value @v, into @c: 0, or 2 (said). */
static int take_option(struct config *c, int id, const char *v)
{
    switch (id) {
    case O_LISTEN:
        c->listen = v;
        return 0;
    case O_AUTHORITY:
        if (c->n_authorities == REQSIGN_VERIFIER_AUTHORITIES_IN_MAX) {
            fprintf(stderr, PROG ": more than %d --authority options\n",
                    REQSIGN_VERIFIER_AUTHORITIES_IN_MAX);
            return 2;
        }
        c->authorities[c->n_authorities++] = v;
        return 0;
    case O_ANY_AUTHORITY:
        c->any_authority = 1;
        return 0;
    case O_BENCH_UNSIGNED:
        c->bench_unsigned = 1;
        return 0;
    case O_READ_ONLY:
        c->read_only = 1;
        return 0;
    case O_REQUIRE_SCOPE:
        return add_scope_rule(c, v);
    case O_MAX_AGE:
        return number("--max-age", v, 1, 0, &c->max_age);
    case O_SKEW:
        return number("--skew", v, 0, 0, &c->skew);
    case O_CACHE_TTL:
        return number("--cache-ttl", v, 1, 0, &c->ttl);
    case O_LAST_USED:
        return number("--last-used-interval", v, 0, 0, &c->last_used);
    case O_MAX_BODY:
        return number("--max-body", v, 1, 0, &c->max_body);
    case O_THREADS:
        return number("--threads", v, 1, 256, &c->threads);
    default:
        return 0;
    }
}

/* The command line into @c, then the environment and the checks made before
 * anything is opened: 0, or 2 (a usage error, said). */
static int parse_options(int argc, char **argv, struct config *c)
{
    memset(c, 0, sizeof(*c));
    c->max_age = REQSIGN_DEFAULT_MAX_AGE;
    c->skew = REQSIGN_DEFAULT_SKEW;
    c->ttl = REQSIGN_KEYCACHE_DEFAULT_TTL;
    c->max_body = DEFAULT_MAX_BODY;
    c->last_used = REQSIGN_LAST_USED_DEFAULT_INTERVAL;
    struct reqsign_opt_parser p = {.prog = PROG, .argc = argc, .argv = argv, .i = 1};
    const char *v;
    int id = 0, r;
    while ((r = reqsign_opt_next(&p, options, &id, &v)) != REQSIGN_OPT_END) {
        if (r == REQSIGN_OPT_ERROR)
            return 2;
        if (r == REQSIGN_OPT_OPERAND)
            return usage_error("unexpected argument", v);
        int st = reqsign_httpd_option(&c->ho, PROG, id, v);
        if (st == 0)
            st = reqsign_stores_option(&c->so, PROG, id, v);
        if (st < 0)
            return 2;
        if (st == 0 && take_option(c, id, v) != 0)
            return 2;
    }
    if (reqsign_stores_from_env(&c->so, PROG, 1) != 0)
        return 2;
    if (c->so.key_store == NULL)
        return usage_error("--db PATH, --key-store STORE or REQSIGN_KEY_STORE is required", NULL);
    if (c->listen == NULL)
        return usage_error("--listen HOST:PORT is required", NULL);
    if (reqsign_httpd_check_authority(PROG, c->n_authorities, c->any_authority) != 0)
        return 2;
    c->ho.listen = c->listen;
    c->ho.name = PROG;
    if (reqsign_httpd_check_opts(&c->ho) != 0) /* TLS files, plain HTTP off loopback */
        return 2;
    return 0;
}

int main(int argc, char **argv)
{
    switch (reqsign_opt_help_or_version(argc, argv, 1)) { /* anywhere on the line */
    case REQSIGN_OPT_HELP:
        help(stdout);
        return 0;
    case REQSIGN_OPT_VERSION:
        printf(PROG " " REQSIGN_VERSION "\n");
        return 0;
    }
    if (argc < 2) {
        help(stderr);
        return 2;
    }
    struct config c;
    if (parse_options(argc, argv, &c) != 0)
        return 2;
    if (c.bench_unsigned)
        fprintf(stderr, PROG ": warning: --bench-unsigned-route: /unsigned/... is served "
                             "without verification (benchmarks only)\n");
    /* no secrets here, but request bodies are customers' data: no core dumps */
    if (reqsign_httpd_no_core_dumps() != 0)
        fprintf(stderr, "api-backend: warning: cannot disable core dumps\n");

    /* 1. The key store, read-only: the key service writes it, we only read.
     * SQLite (one host) or PostgreSQL (a fleet); stores.c does the opening. */
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *store =
        reqsign_stores_open_keys(PROG, c.so.key_store, REQSIGN_KEYSTORE_READONLY);
    if (store == NULL) { /* the message is out; unreachable at start-up is an exit too */
        char why[1024];
        if (!reqsign_stores_key_store_is_pg(c.so.key_store) &&
            reqsign_stores_sqlite_problem(reqsign_stores_key_store_path(c.so.key_store), 0, why,
                                          sizeof(why)) != 0)
            fprintf(stderr, PROG ": %s\n", why); /* the real cause */
        return 1;
    }
    /* 2. A cache in front of it: a revoked key stops working within ttl seconds. */
    struct reqsign_keycache_opts co = {
        .store = store, .positive_ttl = c.ttl, .negative_ttl = c.ttl};
    struct reqsign_keycache *cache = reqsign_keycache_new(&co, &err);
    /* 2b. PostgreSQL: drop a key from the cache as soon as its change commits
     * (NOTIFY), in every instance; the TTL stays the bound if one is lost. */
    struct reqsign_keystore_pg_listener *listener = NULL;
    if (cache == NULL)
        fprintf(stderr, PROG ": key cache: %s\n", err.message[0] ? err.message : "out of memory");
    if (cache == NULL || reqsign_stores_listen(PROG, c.so.key_store, cache, &listener) != 0) {
        reqsign_keycache_free(cache);
        reqsign_keystore_free(store);
        return 1;
    }
    /* 2c. "Last used": a second, writable handle on the store for the
     * background writes (the verifying one stays read-only). With
     * --read-only, or a SQLite store this user cannot write (least
     * privilege: README.md), there is no last use, and one line says so. */
    g_cache = cache;
    struct reqsign_keystore *writer = NULL;
    const char *ro_why = c.read_only ? "--read-only" : NULL;
    if (ro_why == NULL && c.last_used > 0 && !reqsign_stores_key_store_is_pg(c.so.key_store) &&
        !sqlite_writable(reqsign_stores_key_store_path(c.so.key_store)))
        ro_why = "this user cannot write the database or its -wal / -shm files";
    if (ro_why != NULL && c.last_used > 0)
        fprintf(stderr,
                PROG ": the key store is used read-only (%s): the last use of keys is not "
                     "recorded\n",
                ro_why);
    else if (c.last_used > 0) {
        writer = reqsign_stores_open_keys(PROG, c.so.key_store, 0);
        struct reqsign_error ferr;
        reqsign_error_clear(&ferr);
        if (writer == NULL ||
            reqsign_keycache_start_flusher(cache, writer, PROG, c.last_used, &ferr) != REQSIGN_OK)
            fprintf(stderr, PROG ": warning: last use of keys is not recorded%s%s\n",
                    ferr.message[0] ? ": " : "", ferr.message);
    }
    /* 3. A nonce store: a replayed request fails. In memory for one process;
     * Redis for a fleet (shared by every instance; fail-closed: 503 when down). */
    struct reqsign_nonce_store *nonces = reqsign_stores_open_nonces(PROG, c.so.nonce_store);
    if (nonces == NULL) {
        reqsign_stores_unlisten(listener);
        reqsign_keycache_free(cache);
        reqsign_keystore_free(writer); /* after the cache: its last pass writes */
        reqsign_keystore_free(store);
        return 1;
    }
    fprintf(stderr, PROG ": key store %s, ", reqsign_stores_describe(c.so.key_store));
    fprintf(stderr, "nonce store %s\n",
            reqsign_stores_describe(c.so.nonce_store != NULL ? c.so.nonce_store : "memory"));
    /* 4. The verifier, reqsign profile. The authorities are the host[:port]
     * clients sign for this service (behind a proxy, not our internal name):
     * a request signed for another service is refused. */
    struct reqsign_verifier_opts vo = {
        .profile = REQSIGN_PROFILE_REQSIGN,
        .max_age = c.max_age,
        .skew = c.skew == 0 ? -1 : c.skew, /* the verifier reads 0 as default, < 0 as none */
        .authorities = c.authorities,
        .n_authorities = c.n_authorities,
        .any_authority = c.any_authority,
        .lookup = reqsign_keycache_lookup,
        .lookup_ctx = cache,
        .nonces = nonces,
        .public_scheme = c.ho.scheme, /* --public-scheme behind a proxy; NULL: the request's */
    };
    struct reqsign_verifier *verifier = reqsign_verifier_new(&vo, &err);

    int rc = 1;
    if (verifier == NULL) {
        fprintf(stderr, PROG ": %s\n", err.message[0] ? err.message : "cannot start");
    } else {
        static const struct reqsign_httpd_handlers handlers = {on_headers, on_body, on_end,
                                                               on_done};
        struct app app = {verifier, c.bench_unsigned, c.rules, c.n_rules};
        c.ho.max_body = (size_t)c.max_body;
        c.ho.threads = (unsigned)c.threads; /* 0: one per CPU */
        c.ho.handlers = &handlers;
        c.ho.ctx = &app;
        struct reqsign_httpd *h = reqsign_httpd_start(&c.ho);
        if (h != NULL)
            rc = reqsign_httpd_run(h); /* until SIGTERM / SIGINT */
    }
    reqsign_verifier_free(verifier);
    reqsign_nonce_store_free(nonces);
    reqsign_stores_unlisten(listener); /* before the cache it writes to */
    reqsign_keycache_free(cache);
    reqsign_keystore_free(writer); /* after the cache: its last pass writes */
    reqsign_keystore_free(store);
    return rc;
}
