/* reqsign bench: shared helpers. See bench_util.h. */
#include "bench_util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#if BENCH_SODIUM
#include <sodium.h>
#endif

#include <reqsign/base.h>
#include <reqsign/base64.h>

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

double bench_percentile(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_double);
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

double bench_min(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

double bench_median(const double *v, size_t n)
{
    double tmp[64];
    if (n == 0 || n > 64)
        return 0;
    memcpy(tmp, v, n * sizeof(*v));
    qsort(tmp, n, sizeof(*tmp), cmp_double);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

void bench_emit(json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(6));
    if (s == NULL)
        bench_die("cannot encode a result");
    printf("%s\n", s);
    fflush(stdout);
    free(s);
    json_decref(o);
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

size_t bench_rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (f == NULL)
        return 0;
    if (fscanf(f, "%lu %lu", &size, &rss) != 2)
        rss = 0;
    fclose(f);
    return (size_t)rss * (size_t)sysconf(_SC_PAGESIZE);
}

const char *bench_tmpdir(void)
{
    static char dir[256];
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/reqsign-bench-XXXXXX", t != NULL && *t ? t : "/tmp");
    if (mkdtemp(dir) == NULL)
        bench_die("mkdtemp failed");
    return dir;
}

void bench_rmdir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return;
    struct dirent *e;
    char p[512];
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
        unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

int bench_quick(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--quick") == 0)
            return 1;
    return 0;
}

const char *bench_arg(int argc, char **argv, const char *name)
{
    for (int i = 1; i + 1 < argc; i++)
        if (strcmp(argv[i], name) == 0)
            return argv[i + 1];
    return NULL;
}

/* ---- keys and requests ---- */

static int64_t fixed_clock(void *ctx)
{
    return *(const int64_t *)ctx;
}

/* xorshift64*: deterministic inputs, run to run */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1du;
}

void bench_keys_init(struct bench_set *s, int64_t created)
{
    struct reqsign_error err;
    memset(s, 0, sizeof(*s));
    s->created = created;
    for (int i = 0; i < BENCH_NKEYS; i++) {
        struct bench_key *k = &s->keys[i];
        for (size_t j = 0; j < sizeof(k->seed); j++)
            k->seed[j] = (uint8_t)rnd();
        reqsign_error_clear(&err);
        if ((k->key = reqsign_key_from_seed(k->seed, &err)) == NULL)
            bench_die("key: %s", err.message);
        reqsign_key_public_raw(k->key, k->pk);
        if (reqsign_key_thumbprint(k->key, k->keyid) != REQSIGN_OK)
            bench_die("thumbprint");
        struct reqsign_signer_opts so = {
            .key = k->key, .clock = fixed_clock, .clock_ctx = &s->created};
        k->signer = reqsign_signer_new(&so, &err);
        if (k->signer == NULL)
            bench_die("signer: %s", err.message);
    }
}

static void sig_of(struct bench_req *r)
{
    /* Signature: sig1=:BASE64: */
    const char *f = r->sd.signature;
    const char *a = strchr(f, ':');
    const char *b = a != NULL ? strchr(a + 1, ':') : NULL;
    size_t n = 0;
    if (b == NULL ||
        reqsign_base64_decode(a + 1, (size_t)(b - a - 1), r->sig, sizeof(r->sig), &n, NULL) !=
            REQSIGN_OK ||
        n != sizeof(r->sig))
        bench_die("cannot decode the signature '%s'", f);
}

static char *put(char **p, const char *src, size_t n)
{
    char *d = *p;
    memcpy(d, src, n);
    d[n] = '\0';
    *p += n + 1;
    return d;
}

/* see bench_util.h (bench_reqs_make) */
static void compact(struct bench_set *s)
{
    size_t need_req = 0, need_raw = 0;
    for (size_t i = 0; i < s->n; i++) {
        const struct bench_req *r = &s->reqs[i];
        need_req += r->req.target.len + 1 + strlen(r->url) + 1 + strlen(r->sd.nonce) + 1;
        for (size_t j = 0; j < r->n_hdr; j++)
            need_req += r->hdr[j].value.len + 1;
        need_raw += r->base_len + 1 + sizeof(r->sig);
    }
    s->req_arena = malloc(need_req);
    s->raw_arena = malloc(need_raw);
    s->raw = calloc(s->n, sizeof(*s->raw));
    if (s->req_arena == NULL || s->raw_arena == NULL || s->raw == NULL)
        bench_die("out of memory");
    char *pq = s->req_arena, *pr = s->raw_arena;
    for (size_t i = 0; i < s->n; i++) {
        struct bench_req *r = &s->reqs[i];
        r->req.target.ptr = put(&pq, r->req.target.ptr, r->req.target.len);
        for (size_t j = 0; j < r->n_hdr; j++)
            r->hdr[j].value.ptr = put(&pq, r->hdr[j].value.ptr, r->hdr[j].value.len);
        /* the signer's three fields are the last three header lines */
        r->cd_p = r->hdr[r->n_hdr - 3].value.ptr;
        r->si_p = r->hdr[r->n_hdr - 2].value.ptr;
        r->sg_p = r->hdr[r->n_hdr - 1].value.ptr;
        r->url_p = put(&pq, r->url, strlen(r->url));
        r->nonce_p = put(&pq, r->sd.nonce, strlen(r->sd.nonce));
        char *b = put(&pr, r->base, r->base_len);
        free(r->base);
        r->base = b;
        r->sd.base_buf = NULL;
        memcpy(pr, r->sig, sizeof(r->sig));
        s->raw[i] =
            (struct bench_raw_req){(const uint8_t *)b, r->base_len, (const uint8_t *)pr, r->key};
        pr += sizeof(r->sig);
    }
}

void bench_reqs_make(struct bench_set *s, size_t n, const char *authority)
{
    bench_reqs_make_kind(s, n, authority, BENCH_REQS_API);
}

void bench_reqs_make_kind(struct bench_set *s, size_t n, const char *authority,
                          enum bench_reqs_kind kind)
{
    static const char *const paths[] = {"orders", "items", "users", "payments", "reports"};
    struct reqsign_error err;
    snprintf(s->authority, sizeof(s->authority), "%s", authority);
    s->bodies = malloc(n + BENCH_BODY_MAX);
    s->reqs = calloc(n, sizeof(*s->reqs));
    if (s->bodies == NULL || s->reqs == NULL)
        bench_die("out of memory");
    for (size_t i = 0; i < n + BENCH_BODY_MAX; i++)
        s->bodies[i] = (uint8_t)rnd();
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        struct bench_req *r = &s->reqs[i];
        uint64_t x = rnd();
        r->key = (int)(i % BENCH_NKEYS);
        if (kind == BENCH_REQS_KEYSERVICE) { /* a key reading its own record */
            r->body_len = 0;
            r->body = NULL;
            r->method = "GET";
            snprintf(r->target, sizeof(r->target), "/v1/keys/%s", s->keys[r->key].keyid);
        } else {
            r->body_len = i % 8 == 0 ? 0 : (size_t)(x % (BENCH_BODY_MAX + 1));
            r->body = r->body_len ? s->bodies + i : NULL;
            r->method = r->body_len ? (i % 3 == 0 ? "PUT" : "POST") : "GET";
            snprintf(r->target, sizeof(r->target),
                     "/v1/%s/%zu/detail?page=%llu&sort=created&id=%zx", paths[i % 5], i,
                     (unsigned long long)(x >> 40), i * 7919);
        }
        snprintf(r->url, sizeof(r->url), "http://%s%s", authority, r->target);
        r->base = malloc(REQSIGN_BASE_BUF);
        if (r->base == NULL)
            bench_die("out of memory");
        r->sd.base_buf = r->base;
        r->sd.base_cap = REQSIGN_BASE_BUF;
        struct reqsign_sign_input in = {.method = r->method,
                                        .url = r->url,
                                        .body = r->body,
                                        .body_len = r->body_len,
                                        .created = s->created};
        reqsign_error_clear(&err);
        if (reqsign_signer_sign(s->keys[r->key].signer, &in, &r->sd, &err) != REQSIGN_OK)
            bench_die("sign: %s", err.message);
        r->base_len = r->sd.base_len;
        sig_of(r);
        /* the request as received */
        size_t h = 0;
        if (r->body_len) {
            snprintf(r->clen, sizeof(r->clen), "%zu", r->body_len);
            r->hdr[h].name = (struct reqsign_span){"Content-Length", 14};
            r->hdr[h++].value = (struct reqsign_span){r->clen, strlen(r->clen)};
            r->hdr[h].name = (struct reqsign_span){"Content-Type", 12};
            r->hdr[h++].value = (struct reqsign_span){"application/json", 16};
        }
        for (size_t j = 0; j < r->sd.n_headers; j++)
            r->hdr[h++] = r->sd.headers[j];
        r->n_hdr = h;
        r->req.method = (struct reqsign_span){r->method, strlen(r->method)};
        r->req.scheme = (struct reqsign_span){"http", 4};
        r->req.authority = (struct reqsign_span){s->authority, strlen(s->authority)};
        r->req.target = (struct reqsign_span){r->target, strlen(r->target)};
        r->req.headers = r->hdr;
        r->req.n_headers = h;
    }
    compact(s);
}

void bench_keystore_fill(struct bench_set *s, const char *path)
{
    bench_keystore_fill_scopes(s, path, "orders:read orders:write");
}

void bench_keystore_fill_scopes(struct bench_set *s, const char *path, const char *scopes)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, &err);
    if (ks == NULL)
        bench_die("keystore %s: %s", path, err.message);
    for (int i = 0; i < BENCH_NKEYS; i++) {
        struct reqsign_key_record rec;
        memset(&rec, 0, sizeof(rec));
        snprintf(rec.keyid, sizeof(rec.keyid), "%s", s->keys[i].keyid);
        memcpy(rec.public_key, s->keys[i].pk, sizeof(rec.public_key));
        snprintf(rec.label, sizeof(rec.label), "bench key %d", i);
        snprintf(rec.scopes, sizeof(rec.scopes), "%s", scopes);
        rec.created_at = s->created - 3600;
        if (reqsign_keystore_insert(ks, &rec, &err) != REQSIGN_OK)
            bench_die("keystore insert: %s", err.message);
    }
    reqsign_keystore_free(ks);
}

void bench_set_free(struct bench_set *s)
{
    free(s->req_arena);
    free(s->raw_arena);
    free(s->raw);
    free(s->reqs);
    free(s->bodies);
    for (int i = 0; i < BENCH_NKEYS; i++) {
        reqsign_signer_free(s->keys[i].signer);
        reqsign_key_free(s->keys[i].key);
    }
}

/* ---- raw backend calls ---- */

struct bench_raw {
    int sodium;
    EVP_PKEY *pub[BENCH_NKEYS], *priv[BENCH_NKEYS];
    EVP_MD_CTX *ctx;
    uint8_t pk[BENCH_NKEYS][32];
    uint8_t sk[BENCH_NKEYS][64];
};

int bench_have_sodium(void)
{
    return BENCH_SODIUM;
}

const char *bench_backend(void)
{
    return BENCH_BACKEND;
}

struct bench_raw *bench_raw_new(const struct bench_set *s, int sodium)
{
    struct bench_raw *r = calloc(1, sizeof(*r));
    if (r == NULL)
        bench_die("out of memory");
    r->sodium = sodium;
    r->ctx = EVP_MD_CTX_new();
    for (int i = 0; i < BENCH_NKEYS; i++) {
        memcpy(r->pk[i], s->keys[i].pk, 32);
        r->pub[i] = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, s->keys[i].pk, 32);
        r->priv[i] = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, s->keys[i].seed, 32);
        if (r->pub[i] == NULL || r->priv[i] == NULL)
            bench_die("EVP_PKEY");
#if BENCH_SODIUM
        uint8_t pk[32];
        if (sodium_init() < 0 || crypto_sign_ed25519_seed_keypair(pk, r->sk[i], s->keys[i].seed))
            bench_die("libsodium");
#else
        if (sodium)
            bench_die("this bench was built without libsodium");
#endif
    }
    return r;
}

int bench_raw_verify(struct bench_raw *r, int key, const uint8_t sig[64], const uint8_t *msg,
                     size_t len)
{
#if BENCH_SODIUM
    if (r->sodium)
        return crypto_sign_ed25519_verify_detached(sig, msg, len, r->pk[key]);
#endif
    /* one EVP_MD_CTX for the whole run, reset between one-shot calls */
    EVP_MD_CTX_reset(r->ctx);
    if (EVP_DigestVerifyInit(r->ctx, NULL, NULL, NULL, r->pub[key]) != 1 ||
        EVP_DigestVerify(r->ctx, sig, 64, msg, len) != 1)
        return -1;
    return 0;
}

int bench_raw_sign(struct bench_raw *r, int key, const uint8_t *msg, size_t len, uint8_t sig[64])
{
#if BENCH_SODIUM
    if (r->sodium)
        return crypto_sign_ed25519_detached(sig, NULL, msg, len, r->sk[key]);
#endif
    size_t n = 64;
    EVP_MD_CTX_reset(r->ctx);
    if (EVP_DigestSignInit(r->ctx, NULL, NULL, NULL, r->priv[key]) != 1 ||
        EVP_DigestSign(r->ctx, sig, &n, msg, len) != 1)
        return -1;
    return 0;
}

void bench_raw_free(struct bench_raw *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < BENCH_NKEYS; i++) {
        EVP_PKEY_free(r->pub[i]);
        EVP_PKEY_free(r->priv[i]);
    }
    EVP_MD_CTX_free(r->ctx);
    memset(r->sk, 0, sizeof(r->sk));
    free(r);
}

/* ---- requests on the wire ---- */

static void wire_put(struct bench_wire *w, size_t *cap, const void *p, size_t n)
{
    if (w->len + n > *cap) {
        *cap = (w->len + n) * 2;
        w->buf = realloc(w->buf, *cap);
        if (w->buf == NULL)
            bench_die("out of memory");
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void wire_puts(struct bench_wire *w, size_t *cap, const char *s)
{
    wire_put(w, cap, s, strlen(s));
}

struct bench_wire bench_wire_of(const struct bench_req *r, const char *authority, int sign)
{
    struct bench_wire w = {NULL, 0};
    size_t cap = 0;
    wire_puts(&w, &cap, r->method);
    wire_puts(&w, &cap, sign ? " " : " /unsigned");
    wire_puts(&w, &cap, r->target);
    wire_puts(&w, &cap, " HTTP/1.1\r\nHost: ");
    wire_puts(&w, &cap, authority);
    wire_puts(&w, &cap, "\r\n");
    for (size_t i = 0; i < r->n_hdr; i++) {
        const struct reqsign_header *h = &r->hdr[i];
        int sig = h->name.len >= 9 && strncasecmp(h->name.ptr, "signature", 9) == 0;
        int cd = h->name.len == 14 && strncasecmp(h->name.ptr, "content-digest", 14) == 0;
        if (!sign && (sig || cd))
            continue;
        wire_put(&w, &cap, h->name.ptr, h->name.len);
        wire_puts(&w, &cap, ": ");
        wire_put(&w, &cap, h->value.ptr, h->value.len);
        wire_puts(&w, &cap, "\r\n");
    }
    wire_puts(&w, &cap, "\r\n");
    if (r->body_len)
        wire_put(&w, &cap, r->body, r->body_len);
    return w;
}

int bench_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0)
        bench_die("connect: %s", strerror(errno));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

struct bench_wire bench_wire_get(const char *path, const char *authority)
{
    struct bench_wire w = {NULL, 0};
    size_t cap = 0;
    wire_puts(&w, &cap, "GET ");
    wire_puts(&w, &cap, path);
    wire_puts(&w, &cap, " HTTP/1.1\r\nHost: ");
    wire_puts(&w, &cap, authority);
    wire_puts(&w, &cap, "\r\n\r\n");
    return w;
}
