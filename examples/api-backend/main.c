/* api-backend: an example API server that accepts only reqsign-signed requests.
 *
 *   api-backend --listen HOST:PORT (--db PATH | --key-store STORE) [--nonce-store STORE]
 *               [--public-authority HOST[:PORT]] [--max-age N] [--skew N] [--cache-ttl N]
 *               [--max-body N]
 *
 *   --key-store sqlite:PATH | PATH | postgresql://...   (--db PATH: sqlite:PATH)
 *   --nonce-store memory (default) | redis://HOST[:PORT][/DB] | unix:/path/redis.sock
 *
 * It reads the key service's key store read-only (SQLite file, or the
 * PostgreSQL database a fleet shares) and answers every request with an echo
 * of who signed it and what was signed:
 *
 *   {"keyid", "scopes": [...], "method", "path", "body_sha256"}
 *
 * or with the spec's JSON error (spec/PROTOCOL.md section 10). /healthz and
 * /unsigned/... are not verified (health checks, benchmarks).
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

/* Per-request state. */
struct call {
    int verify;                     /* 0 for /unsigned/... */
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

/* Step 1, headers in, body not read: check the signature. A request that
 * fails here is answered at once; its body is never read. */
static void on_headers(void *ctx, struct reqsign_httpd_req *r)
{
    const struct reqsign_verifier *verifier = ctx;
    static const char ok[] = "{\"status\":\"ok\"}";
    if (reqsign_httpd_path_is(r, "/healthz")) {
        reqsign_httpd_respond(r, 200, "application/json", ok, sizeof(ok) - 1);
        return;
    }
    struct call *c = calloc(1, sizeof(*c));
    if (c == NULL || reqsign_digest_init(&c->sha256, REQSIGN_DIGEST_SHA256) != REQSIGN_OK) {
        free(c);
        reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "out of memory");
        return;
    }
    r->app = c;
    reqsign_verification_init(&c->vs);
    c->verify = !(r->path.len >= 10 && memcmp(r->path.ptr, "/unsigned/", 10) == 0);
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
    /* Authorisation goes here: c->vs.scopes holds the key's scopes, e.g.
     * refuse with REQSIGN_E_SCOPE (403) if "payments:write" is missing. */
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
    if (reqsign_digest_update(&c->sha256, data, len) != REQSIGN_OK)
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
    char cd[REQSIGN_CONTENT_DIGEST_MAX], hex[2 * REQSIGN_SHA256_LEN + 1];
    size_t cd_len;
    if (reqsign_digest_final(&c->sha256, cd, sizeof(cd), &cd_len, sum, NULL) != REQSIGN_OK) {
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
     * {"keyid":...,"scopes":[...],"method":...,"path":...,"body_sha256":...} */
    char small[4096];
    size_t need = 128 + 6 * (strlen(c->vs.keyid) + strlen(c->vs.scopes) + strlen(r->method) +
                             r->path.len + sizeof(hex));
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
    out_lit(&o, "],\"method\":");
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

static int usage(void)
{
    fprintf(stderr,
            "usage: " PROG " --listen HOST:PORT (--db PATH | --key-store STORE)\n"
            "       [--nonce-store STORE] [--public-authority HOST[:PORT]]\n"
            "       [--max-age N] [--skew N] [--cache-ttl N] [--max-body N]\n"
            "       [--last-used-interval SECONDS]\n"
            "  %s\n",
            reqsign_stores_usage());
    return 2;
}

int main(int argc, char **argv)
{
    const char *listen = NULL, *pub = NULL;
    struct reqsign_stores_opts so = {0};
    int64_t max_age = REQSIGN_DEFAULT_MAX_AGE, skew = REQSIGN_DEFAULT_SKEW;
    int64_t ttl = REQSIGN_KEYCACHE_DEFAULT_TTL, max_body = DEFAULT_MAX_BODY;
    int64_t last_used = REQSIGN_LAST_USED_DEFAULT_INTERVAL;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *a = argv[i], *v = argv[i + 1];
        int bad = 0, st = reqsign_stores_option(&so, PROG, a, v);
        if (st < 0)
            return 2;
        if (st > 0)
            continue;
        if (strcmp(a, "--listen") == 0)
            listen = v;
        else if (strcmp(a, "--public-authority") == 0)
            pub = v;
        else if (strcmp(a, "--max-age") == 0)
            bad = reqsign_httpd_parse_seconds(v, &max_age) != 0 || max_age < 1;
        else if (strcmp(a, "--skew") == 0)
            bad = reqsign_httpd_parse_seconds(v, &skew) != 0;
        else if (strcmp(a, "--cache-ttl") == 0)
            bad = reqsign_httpd_parse_seconds(v, &ttl) != 0 || ttl < 1;
        else if (strcmp(a, "--last-used-interval") == 0)
            bad = reqsign_httpd_parse_seconds(v, &last_used) != 0;
        else if (strcmp(a, "--max-body") == 0)
            bad = reqsign_httpd_parse_seconds(v, &max_body) != 0 || max_body < 1;
        else
            bad = 1;
        if (bad)
            return usage();
    }
    if (so.key_store == NULL || listen == NULL || argc % 2 == 0)
        return usage();
    /* no secrets here, but request bodies are customers' data: no core dumps */
    if (reqsign_httpd_no_core_dumps() != 0)
        fprintf(stderr, "api-backend: warning: cannot disable core dumps\n");

    /* 1. The key store, read-only: the key service writes it, we only read.
     * SQLite (one host) or PostgreSQL (a fleet); stores.c does the opening. */
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *store =
        reqsign_stores_open_keys(PROG, so.key_store, REQSIGN_KEYSTORE_READONLY);
    if (store == NULL)
        return 1; /* the message is out; unreachable at start-up is an exit too */
    /* 2. A cache in front of it: a revoked key stops working within ttl seconds. */
    struct reqsign_keycache_opts co = {.store = store, .positive_ttl = ttl, .negative_ttl = ttl};
    struct reqsign_keycache *cache = reqsign_keycache_new(&co, &err);
    /* 2b. PostgreSQL: drop a key from the cache as soon as its change commits
     * (NOTIFY), in every instance; the TTL stays the bound if one is lost. */
    struct reqsign_keystore_pg_listener *listener = NULL;
    if (cache == NULL)
        fprintf(stderr, PROG ": key cache: %s\n", err.message[0] ? err.message : "out of memory");
    if (cache == NULL || reqsign_stores_listen(PROG, so.key_store, cache, &listener) != 0) {
        reqsign_keycache_free(cache);
        reqsign_keystore_free(store);
        return 1;
    }
    /* 2c. "Last used": a second, writable handle on the store for the
     * background writes (the verifying one stays read-only). Without write
     * access to the store there is no last use, and a warning. */
    g_cache = cache;
    struct reqsign_keystore *writer = NULL;
    if (last_used > 0) {
        writer = reqsign_stores_open_keys(PROG, so.key_store, 0);
        struct reqsign_error ferr;
        reqsign_error_clear(&ferr);
        if (writer == NULL ||
            reqsign_keycache_start_flusher(cache, writer, PROG, last_used, &ferr) != REQSIGN_OK)
            fprintf(stderr, PROG ": warning: last use of keys is not recorded%s%s\n",
                    ferr.message[0] ? ": " : "", ferr.message);
    }
    /* 3. A nonce store: a replayed request fails. In memory for one process;
     * Redis for a fleet (shared by every instance; fail-closed: 503 when down). */
    struct reqsign_nonce_store *nonces = reqsign_stores_open_nonces(PROG, so.nonce_store);
    if (nonces == NULL) {
        reqsign_stores_unlisten(listener);
        reqsign_keycache_free(cache);
        reqsign_keystore_free(writer); /* after the cache: its last pass writes */
        reqsign_keystore_free(store);
        return 1;
    }
    fprintf(stderr, PROG ": key store %s, ", reqsign_stores_describe(so.key_store));
    fprintf(stderr, "nonce store %s\n",
            reqsign_stores_describe(so.nonce_store != NULL ? so.nonce_store : "memory"));
    /* 4. The verifier, reqsign profile. Behind a proxy, public_authority is
     * the host[:port] clients sign (they do not sign our internal name). */
    struct reqsign_verifier_opts vo = {
        .profile = REQSIGN_PROFILE_REQSIGN,
        .max_age = max_age,
        .skew = skew == 0 ? -1 : skew, /* the verifier reads 0 as default, < 0 as none */
        .public_authority = pub,
        .lookup = reqsign_keycache_lookup,
        .lookup_ctx = cache,
        .nonces = nonces,
    };
    struct reqsign_verifier *verifier = reqsign_verifier_new(&vo, &err);

    int rc = 1;
    if (verifier == NULL) {
        fprintf(stderr, PROG ": %s\n", err.message[0] ? err.message : "cannot start");
    } else {
        static const struct reqsign_httpd_handlers handlers = {on_headers, on_body, on_end,
                                                               on_done};
        struct reqsign_httpd_opts ho = {.listen = listen,
                                        .max_body = (size_t)max_body,
                                        .name = PROG,
                                        .handlers = &handlers,
                                        .ctx = verifier};
        struct reqsign_httpd *h = reqsign_httpd_start(&ho);
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
