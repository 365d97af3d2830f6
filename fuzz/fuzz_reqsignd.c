/* fuzz_reqsignd: reqsignd's request handling in-process (server/reqsignd/service.c
 * through reqsignd_begin(), the same handlers libmicrohttpd runs).
 *
 * Once (and again every RESET_EVERY inputs, so the database, the nonce store
 * and the key cache stay small, and after an input revoked the admin key, so
 * signed requests keep getting past the verifier): a fresh SQLite key store in a tmpfs file,
 * initialised by reqsignd_init_admin() (what `reqsignd init` runs), whose
 * admin key the harness holds, and a service over it. The store needs a
 * file: it opens one connection per thread from a pool, so ":memory:" would
 * give each connection its own empty database.
 *
 * Input:
 *   byte 0: bit 0 sign the request with the admin key, bits 1-3 the method,
 *           bits 4-7 the route the path starts with
 *   byte 1: bit 0 Content-Type: application/json, bit 1 Content-Length,
 *           bit 2 feed the body in chunks of (byte 2 % 64) + 1 bytes
 *   byte 2: chunk size
 *   then:   PATH-SUFFIX LF (Name: value LF){0,16} LF BODY
 * Host: reqsignd.test comes first; NUL and CR in the path and the header
 * lines are dropped (libmicrohttpd never hands them over), spaces in the
 * path too. When signing, the signer signs http://reqsignd.test + target and
 * the body (its Content-Digest, Signature-Input and Signature are appended),
 * so the fuzzer reaches the scope check, the media type check, the JSON
 * validation of POST /v1/keys and the store behind the verifier.
 *
 * Oracle: the status is one the service documents (200, 201, 400, 401, 403,
 * 404, 405, 409, 413, 415, 429, 503; so no other 5xx); every body is JSON
 * (an object), with a string "error" for every non-2xx; Content-Type is
 * application/json and Cache-Control is set; 401 carries Accept-Signature,
 * 405 Allow; a body with "private_key" is a 201 to POST, marked secret (wiped
 * when cleared), with Content-Disposition, and nothing else is secret; a
 * signed request to /healthz is 200 only for GET and HEAD. */
#include "fuzz_common.h"

#include <jansson.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

#include <reqsign/keycache.h>
#include <reqsign/keystore_sqlite.h>
#include <reqsign/signer.h>
#include <reqsign/verifier.h>

#include "httpd.h"
#include "service.h"

#define RESET_EVERY 20000
#define MAX_HEADERS 24
#define HOST "reqsignd.test"

static char dir[64];
static char db[128];
static struct reqsign_keystore *store;
static struct reqsignd_service *svc;
static struct reqsign_signer *signer;
static char admin_keyid[REQSIGN_KEYID_IN_MAX + 1];
static unsigned long runs;
static int admin_revoked; /* the last input revoked the harness's key: start afresh */
/* FUZZ_REQSIGND_STATS=1: print how many answers of each status (unsigned / signed)
 * every 100,000 inputs and at exit, to see that signed requests get past the verifier. */
static int stats;
static unsigned long stat_count[600][2], stat_n;

static void print_stats(void)
{
    fprintf(stderr, "fuzz_reqsignd: %lu inputs:", stat_n);
    for (unsigned i = 0; i < 600; i++)
        if (stat_count[i][0] + stat_count[i][1] > 0)
            fprintf(stderr, " %u=%lu/%lu", i, stat_count[i][0], stat_count[i][1]);
    fputc('\n', stderr);
}

static void unlink_db(void)
{
    static const char *const sfx[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s%s", db, sfx[i]);
        unlink(p);
    }
}

static void teardown(void)
{
    reqsignd_service_free(svc);
    reqsign_keystore_free(store);
    reqsign_signer_free(signer);
    svc = NULL;
    store = NULL;
    signer = NULL;
    unlink_db();
}

static void cleanup(void)
{
    if (stats)
        print_stats();
    teardown();
    rmdir(dir);
}

static void setup(void)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    unlink_db();
    store = reqsign_keystore_sqlite_open(db, REQSIGN_KEYSTORE_CREATE, &err);
    FUZZ_CHECK(store != NULL, "store %s: %s", db, err.message);
    char *cred = NULL;
    size_t cred_len = 0;
    struct reqsign_key *key = NULL;
    int rc = reqsignd_init_admin(store, NULL, &cred, &cred_len, admin_keyid, &key, &err);
    FUZZ_CHECK(rc == 0, "init: %d %s", rc, err.message);
    reqsign_memzero(cred, cred_len);
    free(cred);

    struct reqsign_signer_opts so;
    memset(&so, 0, sizeof(so));
    so.key = key;
    so.keyid = admin_keyid;
    so.path_as_is = 1;
    signer = reqsign_signer_new(&so, &err);
    reqsign_key_free(key);
    FUZZ_CHECK(signer != NULL, "signer: %s", err.message);

    struct reqsignd_service_opts o;
    memset(&o, 0, sizeof(o));
    o.max_age = REQSIGN_DEFAULT_MAX_AGE;
    o.skew = REQSIGN_DEFAULT_SKEW;
    o.cache_ttl = REQSIGN_KEYCACHE_DEFAULT_TTL;
    static const char *const authorities[] = {HOST};
    o.authorities = authorities;
    o.n_authorities = 1;
    svc = reqsignd_service_new(store, &o, &err);
    FUZZ_CHECK(svc != NULL, "service: %s", err.message);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    snprintf(dir, sizeof(dir), "%s",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm/fuzz_reqsignd.XXXXXX"
                                           : "/tmp/fuzz_reqsignd.XXXXXX");
    FUZZ_CHECK(mkdtemp(dir) != NULL, "mkdtemp %s", dir);
    snprintf(db, sizeof(db), "%s/keys.db", dir);
    stats = getenv("FUZZ_REQSIGND_STATS") != NULL;
    setup();
    atexit(cleanup);
    return 0;
}

/* A growing text buffer for the request's bytes (no reallocation: fixed cap). */
struct text {
    char b[1 << 16];
    size_t n;
};

static const char *push(struct text *t, const char *p, size_t n)
{
    if (n > sizeof(t->b) - t->n)
        n = sizeof(t->b) - t->n;
    char *at = t->b + t->n;
    if (n > 0)
        memcpy(at, p, n);
    t->n += n;
    return at;
}

/* Copy @n bytes of @p, dropping NUL, CR (and spaces if @no_space). */
static size_t clean(const uint8_t *p, size_t n, int no_space, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0 && p[i] != '\r' && !(no_space && p[i] == ' '))
            out[o++] = (char)p[i];
    return o;
}

/* The next line of @d (without its LF); advances. */
static const uint8_t *line(const uint8_t **d, size_t *n, size_t *len)
{
    const uint8_t *s = *d;
    const uint8_t *lf = *n > 0 ? memchr(s, '\n', *n) : NULL;
    *len = lf != NULL ? (size_t)(lf - s) : *n;
    *d += *len + (lf != NULL);
    *n -= *len + (lf != NULL);
    return s;
}

static bool status_documented(unsigned st)
{
    static const unsigned ok[] = {200, 201, 400, 401, 403, 404, 405, 409, 413, 415, 429, 503};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (ok[i] == st)
            return true;
    return false;
}

static void check(const char *method, const char *path, size_t path_len, int is_signed,
                  const struct reqsign_httpd_response *r)
{
    FUZZ_CHECK(r->body != NULL || r->status == 308, "no body (status %u)", r->status);
    const char *q = memchr(path, '?', path_len);
    size_t plen = q != NULL ? (size_t)(q - path) : path_len; /* the path without its query */
    if (plen >= 8 && memcmp(path, "/console", 8) == 0 && (plen == 8 || path[8] == '/')) {
        /* the web console: HTML, JS, CSS (or its 308/404/405), always under its policy */
        FUZZ_CHECK(r->status == 200 || r->status == 308 || r->status == 404 || r->status == 405,
                   "console status %u", r->status);
        FUZZ_CHECK(reqsign_httpd_response_header(r, "Content-Security-Policy") != NULL,
                   "console response without Content-Security-Policy");
        return;
    }
    FUZZ_CHECK(status_documented(r->status), "status %u for %s %.*s", r->status, method,
               (int)path_len, path);
    json_error_t jerr;
    json_t *doc = json_loadb(r->body, r->len, 0, &jerr);
    FUZZ_CHECK(json_is_object(doc), "status %u: body is not a JSON object: %s: %.*s", r->status,
               jerr.text, (int)(r->len > 300 ? 300 : r->len), r->body);
    const char *ct = reqsign_httpd_response_header(r, "Content-Type");
    /* JSON everywhere; the public directory also as its own media type (issue 16) */
    FUZZ_CHECK(ct != NULL &&
                   (strcmp(ct, "application/json") == 0 ||
                    (r->status == 200 &&
                     (strcmp(ct, "application/http-message-signatures-directory+json") == 0 ||
                      strcmp(ct, "application/jwk-set+json") == 0))),
               "Content-Type %s", ct != NULL ? ct : "(none)");
    FUZZ_CHECK(reqsign_httpd_response_header(r, "Cache-Control") != NULL, "no Cache-Control");
    if (r->status >= 300)
        FUZZ_CHECK(json_is_string(json_object_get(doc, "error")), "status %u without \"error\"",
                   r->status);
    if (r->status == 401)
        FUZZ_CHECK(reqsign_httpd_response_header(r, "Accept-Signature") != NULL,
                   "401 without Accept-Signature");
    if (r->status == 405)
        FUZZ_CHECK(reqsign_httpd_response_header(r, "Allow") != NULL, "405 without Allow");
    int has_private = json_object_get(doc, "private_key") != NULL;
    FUZZ_CHECK(has_private == r->secret, "private_key %d, secret %d", has_private, r->secret);
    if (has_private) {
        FUZZ_CHECK(r->status == 201 && strcmp(method, "POST") == 0, "private key in %u to %s",
                   r->status, method);
        FUZZ_CHECK(reqsign_httpd_response_header(r, "Content-Disposition") != NULL,
                   "secret without Content-Disposition");
    }
    if (r->status == 200 || r->status == 201)
        FUZZ_CHECK(is_signed || (path_len >= 8 && memcmp(path, "/healthz", 8) == 0) ||
                       (path_len >= 12 && memcmp(path, "/.well-known", 12) == 0),
                   "unsigned request answered %u: %s %.*s", r->status, method, (int)path_len, path);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "POST",  "DELETE",  "HEAD",
                                          "PUT", "PATCH", "OPTIONS", "get"};
    if (size < 3)
        return 0;
    if (++runs % RESET_EVERY == 0 || admin_revoked) {
        admin_revoked = 0;
        teardown();
        setup();
    }
    uint8_t f0 = data[0], f1 = data[1], chunk = (uint8_t)(data[2] % 64 + 1);
    data += 3;
    size -= 3;
    int want_sign = f0 & 1;
    const char *method = methods[(f0 >> 1) & 7];

    static struct text t; /* static: 64 KiB */
    t.n = 0;
    char route[160];
    const char *routes[16] = {"/healthz",
                              "/.well-known/http-message-signatures-directory",
                              "/v1/keys",
                              "/v1/keys",
                              "/v1/keys",
                              "/v1/keys?limit=",
                              "/v1/keys?after=",
                              "/v1/keys/",
                              "/v1/keys/",
                              route,
                              route,
                              "/",
                              "/v1/",
                              "/v1/keys?limit=1&after=",
                              "/v1/keys/%",
                              ""};
    snprintf(route, sizeof(route), "/v1/keys/%s", admin_keyid);
    const char *r0 = routes[f0 >> 4];

    /* target */
    size_t ll;
    const uint8_t *l = line(&data, &size, &ll);
    char tmp[1 << 13];
    if (ll > sizeof(tmp))
        ll = sizeof(tmp);
    const char *target = push(&t, r0, strlen(r0));
    push(&t, tmp, clean(l, ll, 1, tmp));
    size_t target_len = (size_t)(t.b + t.n - target);
    if (target_len == 0)
        return 0;

    /* headers */
    struct reqsign_header h[MAX_HEADERS];
    size_t nh = 0;
    h[nh].name = (struct reqsign_span){"Host", 4};
    h[nh].value = (struct reqsign_span){HOST, strlen(HOST)};
    nh++;
    while (size > 0) {
        l = line(&data, &size, &ll);
        if (ll == 0)
            break;
        if (nh >= 17)
            continue;
        if (ll > sizeof(tmp))
            ll = sizeof(tmp);
        size_t cl = clean(l, ll, 0, tmp);
        const char *colon = memchr(tmp, ':', cl);
        if (colon == NULL || colon == tmp)
            continue;
        size_t nl = (size_t)(colon - tmp), vo = nl + 1;
        while (vo < cl && (tmp[vo] == ' ' || tmp[vo] == '\t'))
            vo++;
        const char *hn = push(&t, tmp, nl);
        const char *hv = push(&t, tmp + vo, cl - vo);
        h[nh].name = (struct reqsign_span){hn, nl};
        h[nh].value = (struct reqsign_span){hv, cl - vo};
        nh++;
    }
    const char *body = (const char *)data;
    size_t body_len = size;
    char clen[32];
    if (f1 & 1) {
        h[nh].name = (struct reqsign_span){"Content-Type", 12};
        h[nh].value = (struct reqsign_span){"application/json", 16};
        nh++;
    }
    if (f1 & 2) {
        snprintf(clen, sizeof(clen), "%zu", body_len);
        h[nh].name = (struct reqsign_span){"Content-Length", 14};
        h[nh].value = (struct reqsign_span){clen, strlen(clen)};
        nh++;
    }

    /* the signature */
    int is_signed = 0;
    struct reqsign_signed sig;
    memset(&sig, 0, sizeof(sig));
    if (want_sign) {
        char url[sizeof(HOST) + 8 + sizeof(tmp) + 160];
        snprintf(url, sizeof(url), "http://" HOST "%.*s", (int)target_len, target);
        struct reqsign_sign_input in;
        struct reqsign_error err;
        memset(&in, 0, sizeof(in));
        reqsign_error_clear(&err);
        in.method = method;
        in.url = url;
        in.body = body;
        in.body_len = body_len;
        if (memchr(target, 0, target_len) == NULL &&
            reqsign_signer_sign(signer, &in, &sig, &err) == REQSIGN_OK) {
            for (size_t i = 0; i < sig.n_headers; i++)
                h[nh++] = sig.headers[i];
            is_signed = 1;
        }
    }

    struct reqsignd_request req;
    req.method = method;
    req.target = target;
    req.target_len = target_len;
    req.headers = h;
    req.n_headers = nh;
    struct reqsign_httpd_local *lr = reqsignd_begin(svc, &req);
    FUZZ_CHECK(lr != NULL, "reqsignd_begin refused a clean request");
    if (f1 & 4) {
        for (size_t off = 0; off < body_len; off += chunk) {
            size_t n = body_len - off < chunk ? body_len - off : chunk;
            if (reqsign_httpd_local_body(lr, body + off, n))
                break;
        }
    } else if (body_len > 0) {
        (void)reqsign_httpd_local_body(lr, body, body_len);
    }
    struct reqsign_httpd_response resp;
    reqsign_httpd_local_finish(lr, &resp);
    FUZZ_CHECK(resp.status != 0, "no response");
    check(method, target, target_len, is_signed, &resp);
    if (resp.status == 200 && strcmp(method, "DELETE") == 0 && resp.len > 0) {
        json_t *doc = json_loadb(resp.body, resp.len, 0, NULL);
        const char *k = json_string_value(json_object_get(doc, "keyid"));
        admin_revoked = k != NULL && strcmp(k, admin_keyid) == 0;
        json_decref(doc);
    }
    if (stats) {
        stat_count[resp.status % 600][is_signed]++;
        if (++stat_n % 100000 == 0)
            print_stats();
    }
    reqsign_httpd_response_clear(&resp);
    return 0;
}
