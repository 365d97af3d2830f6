/* e2e-keydir: the key directory consumer (reqsign/keydir.h) against a real
 * reqsignd's /.well-known/http-message-signatures-directory, and against a
 * tiny raw-socket HTTP server in this file that serves a fixed JWKS with
 * ETag and Cache-Control and counts requests (304, clamping, failures). The
 * keydir runs on a fake clock, so no test sleeps. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/base64.h>
#include <reqsign/key.h>
#include <reqsign/keydir.h>
#include <reqsign/nonce.h>
#include <reqsign/signer.h>
#include <reqsign/verifier.h>

#include "e2eutil.h"
#include "testutil.h"

#define DIR_PATH "/.well-known/http-message-signatures-directory"

/* ---- fake clock ---- */

static _Atomic int64_t fake_now = 1800000000;

static int64_t fake_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&fake_now);
}

static void set_now(int64_t t)
{
    atomic_store(&fake_now, t);
}

/* ---- a tiny HTTP server: one response at a time, Connection: close ---- */

enum fake_mode { FAKE_SERVE, FAKE_DROP /* close without answering */ };

struct fake {
    int lfd, port;
    char url[128];
    pthread_t th;
    atomic_int stop;
    pthread_mutex_t mu;
    /* what to answer (under mu) */
    enum fake_mode mode;
    int status;
    char *body;
    size_t body_len;
    char etag[64];           /* "": no ETag; else 304 when If-None-Match equals it */
    char cache_control[128]; /* "": none */
    int no_length;           /* 1: no Content-Length, body ends at close */
    /* counters (under mu) */
    int requests, conditional, n304;
    char accept[256]; /* the last request's Accept */
};

static void fake_serve_one(struct fake *f, int fd)
{
    struct timeval tv = {2, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    char req[8192];
    size_t n = 0;
    while (n < sizeof(req) - 1) {
        ssize_t r = recv(fd, req + n, sizeof(req) - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n") != NULL)
            break;
    }
    req[n] = '\0';
    char inm[128] = "", accept[256] = "";
    for (char *p = req; (p = strstr(p, "\r\n")) != NULL;) {
        p += 2;
        if (strncasecmp(p, "Accept:", 7) == 0)
            snprintf(accept, sizeof(accept), "%.*s", (int)strcspn(p + 7, "\r\n"), p + 7);
        if (strncasecmp(p, "If-None-Match:", 14) == 0) {
            const char *v = p + 14;
            while (*v == ' ')
                v++;
            size_t l = strcspn(v, "\r\n");
            snprintf(inm, sizeof(inm), "%.*s", (int)(l < sizeof(inm) - 1 ? l : sizeof(inm) - 1), v);
        }
    }

    pthread_mutex_lock(&f->mu);
    f->requests++;
    snprintf(f->accept, sizeof(f->accept), "%s", accept);
    if (inm[0] != '\0')
        f->conditional++;
    if (f->mode == FAKE_DROP) {
        pthread_mutex_unlock(&f->mu);
        return;
    }
    int not_mod = f->etag[0] != '\0' && strcmp(inm, f->etag) == 0;
    if (not_mod)
        f->n304++;
    size_t cap = f->body_len + 1024;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    int h = snprintf(out, cap, "HTTP/1.1 %d %s\r\nConnection: close\r\n", not_mod ? 304 : f->status,
                     not_mod            ? "Not Modified"
                     : f->status == 200 ? "OK"
                                        : "Error");
    if (f->etag[0] != '\0')
        h += snprintf(out + h, cap - (size_t)h, "ETag: %s\r\n", f->etag);
    if (f->cache_control[0] != '\0')
        h += snprintf(out + h, cap - (size_t)h, "Cache-Control: %s\r\n", f->cache_control);
    size_t blen = not_mod ? 0 : f->body_len;
    if (!not_mod)
        h += snprintf(out + h, cap - (size_t)h, "Content-Type: application/json\r\n");
    if (!f->no_length || not_mod)
        h += snprintf(out + h, cap - (size_t)h, "Content-Length: %zu\r\n", blen);
    h += snprintf(out + h, cap - (size_t)h, "\r\n");
    if (blen > 0)
        memcpy(out + h, f->body, blen);
    pthread_mutex_unlock(&f->mu);
    tu_send(fd, out, (size_t)h + blen);
    free(out);
}

static void *fake_loop(void *ud)
{
    struct fake *f = ud;
    while (!atomic_load(&f->stop)) {
        struct pollfd p = {f->lfd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        fake_serve_one(f, fd);
        shutdown(fd, SHUT_RDWR);
        close(fd);
    }
    return NULL;
}

static void fake_start(struct fake *f)
{
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->status = 200;
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(f->lfd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(f->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(f->lfd, 64), 0);
    socklen_t al = sizeof(a);
    cr_assert_eq(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%d" DIR_PATH, f->port);
    cr_assert_eq(pthread_create(&f->th, NULL, fake_loop, f), 0);
}

static void fake_stop(struct fake *f)
{
    atomic_store(&f->stop, 1);
    pthread_join(f->th, NULL);
    close(f->lfd);
    free(f->body);
    pthread_mutex_destroy(&f->mu);
}

/* Set the answer; NULL leaves a field as it is. */
static void fake_set(struct fake *f, int status, const char *body, size_t body_len,
                     const char *etag, const char *cc)
{
    pthread_mutex_lock(&f->mu);
    f->status = status;
    if (body != NULL) {
        free(f->body);
        f->body = malloc(body_len + 1);
        memcpy(f->body, body, body_len);
        f->body_len = body_len;
    }
    if (etag != NULL)
        snprintf(f->etag, sizeof(f->etag), "%s", etag);
    if (cc != NULL)
        snprintf(f->cache_control, sizeof(f->cache_control), "%s", cc);
    pthread_mutex_unlock(&f->mu);
}

static void fake_mode(struct fake *f, enum fake_mode m)
{
    pthread_mutex_lock(&f->mu);
    f->mode = m;
    pthread_mutex_unlock(&f->mu);
}

static int fake_requests(struct fake *f)
{
    pthread_mutex_lock(&f->mu);
    int n = f->requests;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ---- keys and JWKS ---- */

struct tkey {
    struct reqsign_key *key;
    char kid[REQSIGN_THUMBPRINT_BUF];
    char x[64];
};

static void tkey_new(struct tkey *k)
{
    cr_assert_not_null(k->key = reqsign_key_generate(NULL));
    cr_assert_eq(reqsign_key_thumbprint(k->key, k->kid), REQSIGN_OK);
    uint8_t pk[32];
    reqsign_key_public_raw(k->key, pk);
    size_t l;
    cr_assert_eq(reqsign_base64url_encode(pk, 32, k->x, sizeof(k->x), &l), REQSIGN_OK);
}

/* A JWK entry for @k named @kid ("" : no kid member). Static rotation of buffers. */
static const char *jwk(const struct tkey *k, const char *kid)
{
    static char b[16][512];
    static int i;
    i = (i + 1) % 16;
    if (kid[0] == '\0')
        snprintf(b[i], sizeof(b[i]), "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\"}", k->x);
    else
        snprintf(b[i], sizeof(b[i]),
                 "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"%s\","
                 "\"alg\":\"ed25519\",\"use\":\"sig\"}",
                 k->x, kid);
    return b[i];
}

static void lookup_is(struct reqsign_keydir *kd, const char *kid, enum reqsign_status want)
{
    struct reqsign_key_info info;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st = reqsign_keydir_lookup(kd, kid, strlen(kid), &info, &err);
    cr_assert_eq(st, want, "lookup %s: %s (%s), want %s", kid, reqsign_errname(st), err.message,
                 reqsign_errname(want));
    if (st == REQSIGN_OK) {
        cr_assert_eq(info.state, REQSIGN_KEY_ACTIVE);
        cr_assert_str_empty(info.scopes);
    }
}

static struct reqsign_keydir *kd_new(const char *url, int64_t min, int64_t max, size_t max_body,
                                     size_t max_keys)
{
    struct reqsign_keydir_opts o;
    memset(&o, 0, sizeof(o));
    o.url = url;
    o.min_refresh = min;
    o.max_refresh = max;
    o.max_body = max_body;
    o.max_keys = max_keys;
    o.timeout_ms = 2000;
    o.clock = fake_clock;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keydir *kd = reqsign_keydir_new(&o, &err);
    cr_assert_not_null(kd, "keydir: %s", err.message);
    return kd;
}

static struct reqsign_keydir_stats kd_stats(struct reqsign_keydir *kd)
{
    struct reqsign_keydir_stats s;
    reqsign_keydir_stats(kd, &s);
    return s;
}

/* ---- verifier over a keydir ---- */

struct vfy {
    struct reqsign_nonce_store *nonces;
    struct reqsign_verifier *v;
};

static void vfy_new(struct vfy *vf, struct reqsign_keydir *kd)
{
    vf->nonces = reqsign_nonce_store_memory_new(NULL, NULL);
    cr_assert_not_null(vf->nonces);
    struct reqsign_verifier_opts o;
    memset(&o, 0, sizeof(o));
    o.lookup = reqsign_keydir_lookup;
    o.lookup_ctx = kd;
    o.nonces = vf->nonces;
    o.any_authority = 1; /* these tests are about the key directory, not the authority */
    struct reqsign_error err;
    vf->v = reqsign_verifier_new(&o, &err);
    cr_assert_not_null(vf->v, "verifier: %s", err.message);
}

static void vfy_free(struct vfy *vf)
{
    reqsign_verifier_free(vf->v);
    reqsign_nonce_store_free(vf->nonces);
}

#define SPAN(s)                                                                                    \
    {                                                                                              \
        (s), strlen(s)                                                                             \
    }

/* Sign a POST with @s and verify it; returns the status. */
static enum reqsign_status sign_verify(const struct vfy *vf, const struct reqsign_signer *s)
{
    static const char body[] = "{\"amount\":42}";
    struct reqsign_sign_input in;
    memset(&in, 0, sizeof(in));
    in.method = "POST";
    in.url = "https://api.example/v1/pay?x=1";
    in.body = body;
    in.body_len = sizeof(body) - 1;
    struct reqsign_signed sg;
    memset(&sg, 0, sizeof(sg));
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_signer_sign(s, &in, &sg, &err), REQSIGN_OK, "sign: %s", err.message);
    struct reqsign_request req = {SPAN("POST"),        SPAN("https"), SPAN("api.example"),
                                  SPAN("/v1/pay?x=1"), sg.headers,    sg.n_headers};
    struct reqsign_verification vs;
    reqsign_verification_init(&vs);
    reqsign_error_clear(&err);
    enum reqsign_status st =
        reqsign_verifier_verify(vf->v, &req, body, sizeof(body) - 1, &vs, &err);
    if (st == REQSIGN_OK)
        cr_assert_str_empty(vs.scopes);
    reqsign_verification_cleanup(&vs);
    return st;
}

static struct reqsign_signer *signer_of_key(const struct tkey *k)
{
    struct reqsign_signer_opts o;
    memset(&o, 0, sizeof(o));
    o.key = k->key;
    struct reqsign_error err;
    struct reqsign_signer *s = reqsign_signer_new(&o, &err);
    cr_assert_not_null(s, "signer: %s", err.message);
    return s;
}

/* ---- reqsignd helpers (e2eutil.c) ---- */

/* Create a key in reqsignd; returns its signer, *keyid (REQSIGN_THUMBPRINT_BUF). */
static struct reqsign_signer *kd_create_key(const struct env *e, char *keyid)
{
    json_t *j = create_key(e, e->admin_signer,
                           "{\"label\":\"kd\",\"scopes\":[\"pay:write\"],\"publish\":true}");
    snprintf(keyid, REQSIGN_THUMBPRINT_BUF, "%s", json_string_value(json_object_get(j, "keyid")));
    struct reqsign_signer *s = signer_of(j);
    json_decref(j);
    return s;
}

static void revoke_key(const struct env *e, const char *keyid)
{
    char path[256];
    snprintf(path, sizeof(path), "/v1/keys/%s", keyid);
    struct resp r = call(e->admin_signer, "DELETE", url_of(e, path), NULL);
    cr_assert_eq(r.status, 200, "DELETE %s: %ld", path, r.status);
    resp_free(&r);
}

/* reqsignd on a fresh key database, and its admin signer. */
static void env_start(struct env *e)
{
    setup_env(e);
    load_admin(e);
}

static void env_stop_daemon(struct env *e)
{
    if (e->d.pid > 0)
        cr_assert_eq(tu_proc_stop(&e->d, SIGTERM, 15000), 0, "reqsignd did not exit 0");
}

static void env_finish(struct env *e)
{
    env_stop_daemon(e);
    remove_env(e);
}

/* ---- against reqsignd ---- */

Test(keydir, reqsignd_keys_verify)
{
    set_now(1800000000);
    struct env e;
    env_start(&e);
    char k1[REQSIGN_THUMBPRINT_BUF], k2[REQSIGN_THUMBPRINT_BUF];
    struct reqsign_signer *s1 = kd_create_key(&e, k1), *s2 = kd_create_key(&e, k2);

    struct reqsign_keydir *kd = kd_new(url_of(&e, DIR_PATH), 10, 300, 0, 0);
    struct vfy vf;
    vfy_new(&vf, kd);
    cr_assert_eq(sign_verify(&vf, s1), REQSIGN_OK);
    cr_assert_eq(sign_verify(&vf, s2), REQSIGN_OK);
    /* the admin key is never published */
    cr_assert_eq(sign_verify(&vf, e.admin_signer), REQSIGN_E_KEY_UNKNOWN);

    struct reqsign_keydir_stats st = kd_stats(kd);
    cr_assert_eq(st.fetches, 1);
    cr_assert_eq(st.updates, 1);
    cr_assert_eq(st.keys, 2); /* the two published ones */
    cr_assert_eq(st.skipped, 0);
    /* reqsignd says max-age=5 (its key cache TTL), raised to min_refresh */
    cr_assert_eq(st.lifetime, 10, "lifetime %lld", (long long)st.lifetime);
    cr_assert_eq(st.hits, 2);

    /* A key that does not exist: unknown, and no fetch (snapshot younger than min_refresh). */
    struct tkey other;
    tkey_new(&other);
    struct reqsign_signer *so = signer_of_key(&other);
    cr_assert_eq(sign_verify(&vf, so), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(kd_stats(kd).fetches, 1);

    reqsign_signer_free(so);
    reqsign_key_free(other.key);
    vfy_free(&vf);
    reqsign_keydir_free(kd);
    reqsign_signer_free(s1);
    reqsign_signer_free(s2);
    env_finish(&e);
}

Test(keydir, reqsignd_revoke)
{
    set_now(1800000000);
    struct env e;
    env_start(&e);
    char k1[REQSIGN_THUMBPRINT_BUF], k2[REQSIGN_THUMBPRINT_BUF];
    struct reqsign_signer *s1 = kd_create_key(&e, k1), *s2 = kd_create_key(&e, k2);
    struct reqsign_keydir *kd = kd_new(url_of(&e, DIR_PATH), 10, 300, 0, 0);
    struct vfy vf;
    vfy_new(&vf, kd);
    cr_assert_eq(sign_verify(&vf, s1), REQSIGN_OK);
    cr_assert_eq(sign_verify(&vf, s2), REQSIGN_OK);

    /* Revoked in reqsignd: the fresh snapshot still has it (that is the bound)... */
    revoke_key(&e, k1);
    cr_assert_eq(sign_verify(&vf, s1), REQSIGN_OK);
    /* ...until a forced refresh. */
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keydir_refresh(kd, &err), REQSIGN_OK, "%s", err.message);
    cr_assert_eq(sign_verify(&vf, s1), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(sign_verify(&vf, s2), REQSIGN_OK);

    /* Without a forced refresh: once the lifetime (max-age=5, at least
     * min_refresh = 10) has run out. */
    revoke_key(&e, k2);
    set_now(1800000000 + 9);
    cr_assert_eq(sign_verify(&vf, s2), REQSIGN_OK);
    set_now(1800000000 + 10);
    cr_assert_eq(sign_verify(&vf, s2), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(kd_stats(kd).fetches, 3);

    vfy_free(&vf);
    reqsign_keydir_free(kd);
    reqsign_signer_free(s1);
    reqsign_signer_free(s2);
    env_finish(&e);
}

Test(keydir, reqsignd_new_key_refetch)
{
    const int64_t t0 = 1800000000;
    set_now(t0);
    struct env e;
    env_start(&e);
    struct reqsign_keydir *kd = kd_new(url_of(&e, DIR_PATH), 10, 300, 0, 0);
    struct vfy vf;
    vfy_new(&vf, kd);
    cr_assert_eq(sign_verify(&vf, e.admin_signer), REQSIGN_E_KEY_UNKNOWN); /* never published */

    char k1[REQSIGN_THUMBPRINT_BUF];
    struct reqsign_signer *s1 = kd_create_key(&e, k1);
    /* Unknown keyid, snapshot younger than min_refresh: no fetch. */
    set_now(t0 + 9);
    cr_assert_eq(sign_verify(&vf, s1), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(kd_stats(kd).fetches, 1);
    /* min_refresh old: the unknown keyid triggers one refetch, which finds it. */
    set_now(t0 + 10);
    cr_assert_eq(sign_verify(&vf, s1), REQSIGN_OK);
    cr_assert_eq(kd_stats(kd).fetches, 2);

    vfy_free(&vf);
    reqsign_keydir_free(kd);
    reqsign_signer_free(s1);
    env_finish(&e);
}

Test(keydir, reqsignd_down_then_503)
{
    const int64_t t0 = 1800000000;
    set_now(t0);
    struct env e;
    env_start(&e);
    char k1[REQSIGN_THUMBPRINT_BUF];
    struct reqsign_signer *s1 = kd_create_key(&e, k1);
    struct reqsign_keydir *kd = kd_new(url_of(&e, DIR_PATH), 10, 300, 0, 0);
    struct vfy vf;
    vfy_new(&vf, kd);
    cr_assert_eq(sign_verify(&vf, s1), REQSIGN_OK);

    env_stop_daemon(&e); /* the directory is gone: connection refused */
    set_now(t0 + 61);    /* stale: a refetch is tried, fails, the snapshot serves */
    cr_assert_eq(sign_verify(&vf, s1), REQSIGN_OK);
    struct reqsign_keydir_stats st = kd_stats(kd);
    cr_assert_eq(st.fetches, 2);
    cr_assert_eq(st.fetch_errors, 1);
    set_now(t0 + 299);
    cr_assert_eq(sign_verify(&vf, s1), REQSIGN_OK);
    set_now(t0 + 300); /* max_refresh past the fetch: 503 */
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_key_info info;
    enum reqsign_status s = reqsign_keydir_lookup(kd, k1, strlen(k1), &info, &err);
    cr_assert_eq(s, REQSIGN_E_KEYSTORE_UNAVAILABLE, "%s", reqsign_errname(s));
    cr_assert_eq(reqsign_http_status(s), 503);
    set_now(t0 + 320);
    cr_assert_eq(sign_verify(&vf, s1), REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cr_assert_geq(kd_stats(kd).unavailable, 2);

    vfy_free(&vf);
    reqsign_keydir_free(kd);
    reqsign_signer_free(s1);
    env_finish(&e);
}

/* ---- against the fake directory ---- */

Test(keydir, etag_304)
{
    const int64_t t0 = 1800000000;
    set_now(t0);
    struct tkey a, b;
    tkey_new(&a);
    tkey_new(&b);
    char body[2048];
    snprintf(body, sizeof(body), "{\"keys\":[%s]}", jwk(&a, a.kid));
    struct fake f;
    fake_start(&f);
    fake_set(&f, 200, body, strlen(body), "\"v1\"", "public, max-age=30");

    struct reqsign_keydir *kd = kd_new(f.url, 10, 300, 0, 0);
    lookup_is(kd, a.kid, REQSIGN_OK);
    cr_assert_eq(kd_stats(kd).lifetime, 30);
    /* it asks for the IETF directory type first, a plain JWKS after it */
    cr_assert_not_null(strstr(f.accept, " application/http-message-signatures-directory+json,"),
                       "Accept:%s", f.accept);
    cr_assert_not_null(strstr(f.accept, "application/json"), "Accept:%s", f.accept);
    set_now(t0 + 29);
    lookup_is(kd, a.kid, REQSIGN_OK);
    cr_assert_eq(fake_requests(&f), 1);
    set_now(t0 + 30); /* stale: conditional request, 304 */
    lookup_is(kd, a.kid, REQSIGN_OK);
    struct reqsign_keydir_stats st = kd_stats(kd);
    cr_assert_eq(st.fetches, 2);
    cr_assert_eq(st.not_modified, 1);
    cr_assert_eq(st.updates, 1);
    cr_assert_eq(st.fetched_at, t0 + 30);
    cr_assert_eq(f.conditional, 1);
    cr_assert_eq(f.n304, 1);
    /* The 304 restarted the lifetime: fresh until t0 + 60. */
    set_now(t0 + 59);
    lookup_is(kd, a.kid, REQSIGN_OK);
    cr_assert_eq(fake_requests(&f), 2);

    /* The directory changes (a out, b in) with a new ETag: 200 replaces the snapshot. */
    snprintf(body, sizeof(body), "{\"keys\":[%s]}", jwk(&b, b.kid));
    fake_set(&f, 200, body, strlen(body), "\"v2\"", NULL);
    set_now(t0 + 60);
    lookup_is(kd, a.kid, REQSIGN_E_KEY_UNKNOWN);
    lookup_is(kd, b.kid, REQSIGN_OK);
    st = kd_stats(kd);
    cr_assert_eq(st.fetches, 3);
    cr_assert_eq(st.updates, 2);
    cr_assert_eq(f.conditional, 2); /* sent "v1", got a 200 */
    cr_assert_eq(f.n304, 1);
    /* A forced refresh now sends "v2" and gets a 304. */
    struct reqsign_error err;
    cr_assert_eq(reqsign_keydir_refresh(kd, &err), REQSIGN_OK);
    cr_assert_eq(f.n304, 2);
    cr_assert_eq(kd_stats(kd).not_modified, 2);

    reqsign_keydir_free(kd);
    fake_stop(&f);
    reqsign_key_free(a.key);
    reqsign_key_free(b.key);
}

struct clamp_case {
    const char *cache_control;
    int64_t lifetime;
};

Test(keydir, max_age_clamped)
{
    static const struct clamp_case cases[] = {
        {"max-age=1", 10},
        {"max-age=100000", 300},
        {"", 10},
        {"no-cache", 10},
        {"max-age=60, no-store", 10},
        {"public, max-age=45", 45},
        {"s-maxage=100", 10},
        {"max-age=\"20\"", 20},
        {"MAX-AGE=25", 25},
        {"max-age=99999999999999999999999", 300},
        {"max-age=abc", 10},
        {"private,max-age=120,must-revalidate", 120},
    };
    struct tkey a;
    tkey_new(&a);
    char body[1024];
    snprintf(body, sizeof(body), "{\"keys\":[%s]}", jwk(&a, a.kid));
    struct fake f;
    fake_start(&f);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const int64_t t0 = 1800000000 + (int64_t)i * 10000;
        set_now(t0);
        fake_set(&f, 200, body, strlen(body), "", cases[i].cache_control);
        struct reqsign_keydir *kd = kd_new(f.url, 10, 300, 0, 0);
        lookup_is(kd, a.kid, REQSIGN_OK);
        cr_assert_eq(kd_stats(kd).lifetime, cases[i].lifetime, "%s: %lld", cases[i].cache_control,
                     (long long)kd_stats(kd).lifetime);
        set_now(t0 + cases[i].lifetime - 1);
        lookup_is(kd, a.kid, REQSIGN_OK);
        cr_assert_eq(kd_stats(kd).fetches, 1, "%s", cases[i].cache_control);
        set_now(t0 + cases[i].lifetime);
        lookup_is(kd, a.kid, REQSIGN_OK);
        cr_assert_eq(kd_stats(kd).fetches, 2, "%s", cases[i].cache_control);
        reqsign_keydir_free(kd);
    }
    fake_stop(&f);
    reqsign_key_free(a.key);
}

Test(keydir, down_serves_until_max_refresh)
{
    const int64_t t0 = 1800000000;
    set_now(t0);
    struct tkey a;
    tkey_new(&a);
    char body[1024];
    snprintf(body, sizeof(body), "{\"keys\":[%s]}", jwk(&a, a.kid));
    struct fake f;
    fake_start(&f);
    fake_set(&f, 200, body, strlen(body), "", "max-age=10");
    struct reqsign_keydir *kd = kd_new(f.url, 10, 100, 0, 0);
    lookup_is(kd, a.kid, REQSIGN_OK);

    fake_set(&f, 500, NULL, 0, NULL, NULL);
    set_now(t0 + 10); /* stale; refetch fails (500); the snapshot serves */
    lookup_is(kd, a.kid, REQSIGN_OK);
    cr_assert_eq(fake_requests(&f), 2);
    set_now(t0 + 15); /* rate limit: no request within min_refresh of the last attempt */
    lookup_is(kd, a.kid, REQSIGN_OK);
    lookup_is(kd, "no-such-key", REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(fake_requests(&f), 2);
    fake_mode(&f, FAKE_DROP); /* now the connection drops without an answer */
    set_now(t0 + 99);
    lookup_is(kd, a.kid, REQSIGN_OK);
    cr_assert_eq(fake_requests(&f), 3);
    struct reqsign_keydir_stats st = kd_stats(kd);
    cr_assert_eq(st.fetch_errors, 2);
    cr_assert_geq(st.rate_limited, 1);
    set_now(t0 + 100); /* max_refresh past the last good fetch */
    lookup_is(kd, a.kid, REQSIGN_E_KEYSTORE_UNAVAILABLE);
    lookup_is(kd, "no-such-key", REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cr_assert_eq(fake_requests(&f), 3, "rate limit holds while unavailable");

    /* It comes back: the next allowed attempt restores service. */
    fake_mode(&f, FAKE_SERVE);
    fake_set(&f, 200, NULL, 0, NULL, NULL);
    set_now(t0 + 109);
    lookup_is(kd, a.kid, REQSIGN_OK);
    cr_assert_eq(fake_requests(&f), 4);

    reqsign_keydir_free(kd);
    fake_stop(&f);
    reqsign_key_free(a.key);
}

Test(keydir, no_snapshot_yet_is_503)
{
    set_now(1800000000);
    struct fake f;
    fake_start(&f);
    fake_set(&f, 404, "nope", 4, "", "");
    struct reqsign_keydir *kd = kd_new(f.url, 10, 300, 0, 0);
    for (int i = 0; i < 1000; i++) {
        char kid[32];
        snprintf(kid, sizeof(kid), "k%d", i);
        lookup_is(kd, kid, REQSIGN_E_KEYSTORE_UNAVAILABLE);
    }
    cr_assert_eq(fake_requests(&f), 1);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keydir_refresh(kd, &err), REQSIGN_E_HTTP);
    cr_assert(strstr(err.message, "404") != NULL, "%s", err.message);
    reqsign_keydir_free(kd);
    fake_stop(&f);
}

struct bad_case {
    const char *name;
    const char *body; /* NULL: built in the test */
    enum reqsign_status want;
    int no_length;
};

Test(keydir, bad_documents_keep_snapshot)
{
    const int64_t t0 = 1800000000;
    set_now(t0);
    struct tkey a;
    tkey_new(&a);
    char good[1024];
    snprintf(good, sizeof(good), "{\"keys\":[%s]}", jwk(&a, a.kid));
    /* bodies built here */
    static char deep[4096], big[8192], many[8192];
    size_t n = 0;
    n += (size_t)snprintf(deep + n, sizeof(deep) - n, "{\"keys\":[],\"x\":");
    for (int i = 0; i < 100; i++)
        deep[n++] = '[';
    for (int i = 0; i < 100; i++)
        deep[n++] = ']';
    snprintf(deep + n, sizeof(deep) - n, "}");
    n = (size_t)snprintf(big, sizeof(big), "{\"keys\":[%s],\"pad\":\"", jwk(&a, a.kid));
    while (n < 5000)
        big[n++] = 'p';
    snprintf(big + n, sizeof(big) - n, "\"}");
    n = (size_t)snprintf(many, sizeof(many), "{\"keys\":[");
    for (int i = 0; i < 5; i++)
        n += (size_t)snprintf(many + n, sizeof(many) - n, "%s%s", i ? "," : "", jwk(&a, a.kid));
    snprintf(many + n, sizeof(many) - n, "]}");

    const struct bad_case cases[] = {
        {"not json", "not json", REQSIGN_E_JSON, 0},
        {"truncated", "{\"keys\":[", REQSIGN_E_JSON, 0},
        {"empty body", "", REQSIGN_E_JSON, 0},
        {"top-level array", "[]", REQSIGN_E_JSON, 0},
        {"no keys", "{}", REQSIGN_E_JSON, 0},
        {"keys object", "{\"keys\":{}}", REQSIGN_E_JSON, 0},
        {"keys string", "{\"keys\":\"x\"}", REQSIGN_E_JSON, 0},
        {"keys null", "{\"keys\":null}", REQSIGN_E_JSON, 0},
        {"duplicate member", "{\"keys\":[],\"keys\":[]}", REQSIGN_E_JSON, 0},
        {"trailing garbage", "{\"keys\":[]} x", REQSIGN_E_JSON, 0},
        {"NUL in string", NULL, REQSIGN_E_JSON, 0},
        {"too deep", deep, REQSIGN_E_LIMIT, 0},
        {"too many keys", many, REQSIGN_E_LIMIT, 0},
        {"oversized, Content-Length", big, REQSIGN_E_BODY_TOO_LARGE, 0},
        {"oversized, no Content-Length", big, REQSIGN_E_BODY_TOO_LARGE, 1},
    };
    struct fake f;
    fake_start(&f);
    fake_set(&f, 200, good, strlen(good), "", "max-age=60");
    struct reqsign_keydir *kd = kd_new(f.url, 10, 300, 4096, 4);
    lookup_is(kd, a.kid, REQSIGN_OK);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        static const char nul_body[] = "{\"keys\":[],\"a\":\"x\\u0000y\"}";
        const char *b = cases[i].body != NULL ? cases[i].body : nul_body;
        fake_set(&f, 200, b, strlen(b), NULL, NULL);
        pthread_mutex_lock(&f.mu);
        f.no_length = cases[i].no_length;
        pthread_mutex_unlock(&f.mu);
        struct reqsign_error err;
        reqsign_error_clear(&err);
        enum reqsign_status st = reqsign_keydir_refresh(kd, &err);
        cr_assert_eq(st, cases[i].want, "%s: %s (%s)", cases[i].name, reqsign_errname(st),
                     err.message);
        struct reqsign_keydir_stats s = kd_stats(kd);
        cr_assert_eq(s.parse_errors, i + 1, "%s", cases[i].name);
        cr_assert_eq(s.keys, 1, "%s: snapshot kept", cases[i].name);
        cr_assert_eq(s.fetched_at, t0, "%s: freshness not extended", cases[i].name);
        lookup_is(kd, a.kid, REQSIGN_OK);
    }
    cr_assert_eq(kd_stats(kd).updates, 1);
    /* The snapshot still runs out on schedule: refused documents do not extend it. */
    set_now(t0 + 300);
    lookup_is(kd, a.kid, REQSIGN_E_KEYSTORE_UNAVAILABLE);
    reqsign_keydir_free(kd);
    fake_stop(&f);
    reqsign_key_free(a.key);
}

Test(keydir, entries_skipped)
{
    set_now(1800000000);
    struct tkey good1, good2, nokid, dup, bad;
    tkey_new(&good1);
    tkey_new(&good2);
    tkey_new(&nokid);
    tkey_new(&dup);
    tkey_new(&bad);
    char longkid[300];
    memset(longkid, 'k', 257);
    longkid[257] = '\0';
    char xnoncanon[64];
    snprintf(xnoncanon, sizeof(xnoncanon), "%s", bad.x);
    /* the 43rd character carries 2 unused bits: make one of them 1 */
    xnoncanon[42] = xnoncanon[42] == 'A' ? 'B' : xnoncanon[42] == 'Q' ? 'R' : 'B';
    static char body[16384];
    size_t n = (size_t)snprintf(body, sizeof(body), "{\"keys\":[%s,%s,%s,%s,%s", jwk(&good1, "g1"),
                                jwk(&good2, "g2"), jwk(&nokid, ""), jwk(&good1, "dupe"),
                                jwk(&dup, "dupe"));
    const char *bad_entries[] = {
        "1",
        "\"str\"",
        "null",
        "[]",
        "{\"kty\":\"RSA\",\"n\":\"AQAB\",\"e\":\"AQAB\",\"kid\":\"rsa\"}",
        "{\"kty\":\"OKP\",\"crv\":\"X25519\",\"x\":\"%s\",\"kid\":\"b1\"}",
        "{\"kty\":\"EC\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"b2\"}",
        "{\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"b3\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"kid\":\"b4\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":42,\"kid\":\"b5\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"AAAA\",\"kid\":\"b6\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s=\",\"kid\":\"b7\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":7}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"b10\",\"alg\":\"RS256\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"b11\",\"use\":\"enc\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"b12\",\"d\":\"%s\"}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"b13\",\"alg\":5}",
        "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s!\",\"kid\":\"b14\"}",
    };
    size_t nbad = sizeof(bad_entries) / sizeof(bad_entries[0]);
    for (size_t i = 0; i < nbad; i++) {
        n += (size_t)snprintf(body + n, sizeof(body) - n, ",");
        n += (size_t)snprintf(body + n, sizeof(body) - n, bad_entries[i], bad.x, bad.x);
    }
    n += (size_t)snprintf(body + n, sizeof(body) - n,
                          ",{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"%s\"}",
                          bad.x, longkid);
    n += (size_t)snprintf(body + n, sizeof(body) - n,
                          ",{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"nc\"}",
                          xnoncanon);
    n += (size_t)snprintf(body + n, sizeof(body) - n,
                          ",{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\",\"kid\":\"eddsa\","
                          "\"alg\":\"EdDSA\",\"key_ops\":[\"verify\"],\"ext\":{\"a\":[1]}}]}",
                          bad.x);
    struct fake f;
    fake_start(&f);
    fake_set(&f, 200, body, n, "", "max-age=60");
    struct reqsign_keydir *kd = kd_new(f.url, 10, 300, 0, 0);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keydir_refresh(kd, &err), REQSIGN_OK, "%s", err.message);
    struct reqsign_keydir_stats st = kd_stats(kd);
    cr_assert_eq(st.keys, 5, "keys %zu", st.keys); /* g1 g2 thumbprint dupe eddsa */
    cr_assert_eq(st.skipped, nbad + 2 + 1, "skipped %llu", (unsigned long long)st.skipped);

    lookup_is(kd, "g1", REQSIGN_OK);
    lookup_is(kd, "g2", REQSIGN_OK);
    lookup_is(kd, nokid.kid, REQSIGN_OK); /* no kid: its RFC 7638 thumbprint */
    lookup_is(kd, "eddsa", REQSIGN_OK);
    lookup_is(kd, good1.kid, REQSIGN_E_KEY_UNKNOWN); /* it has a kid: not by thumbprint */
    for (int i = 1; i <= 14; i++) {
        char kid[8];
        snprintf(kid, sizeof(kid), "b%d", i);
        lookup_is(kd, kid, REQSIGN_E_KEY_UNKNOWN);
    }
    lookup_is(kd, "nc", REQSIGN_E_KEY_UNKNOWN);
    lookup_is(kd, "rsa", REQSIGN_E_KEY_UNKNOWN);
    /* dupe: the first entry (good1's key) wins */
    struct reqsign_key_info info;
    cr_assert_eq(reqsign_keydir_lookup(kd, "dupe", 4, &info, NULL), REQSIGN_OK);
    uint8_t pk[32];
    reqsign_key_public_raw(good1.key, pk);
    cr_assert_eq(memcmp(info.public_key, pk, 32), 0);
    /* bad lookups */
    cr_assert_eq(reqsign_keydir_lookup(kd, NULL, 0, &info, NULL), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(reqsign_keydir_lookup(kd, longkid, 257, &info, NULL), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(reqsign_keydir_lookup(NULL, "g1", 2, &info, NULL), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(reqsign_keydir_lookup(kd, "g1", 2, NULL, NULL), REQSIGN_E_INVALID_ARG);
    /* keyid given by length, not NUL */
    cr_assert_eq(reqsign_keydir_lookup(kd, "g1xyz", 2, &info, NULL), REQSIGN_OK);

    /* a verifier: the kid-less key signs with its thumbprint keyid */
    struct vfy vf;
    vfy_new(&vf, kd);
    struct reqsign_signer *s = signer_of_key(&nokid);
    cr_assert_eq(sign_verify(&vf, s), REQSIGN_OK);
    reqsign_signer_free(s);
    vfy_free(&vf);

    reqsign_keydir_free(kd);
    fake_stop(&f);
    reqsign_key_free(good1.key);
    reqsign_key_free(good2.key);
    reqsign_key_free(nokid.key);
    reqsign_key_free(dup.key);
    reqsign_key_free(bad.key);
}

struct flood_arg {
    struct reqsign_keydir *kd;
    int id;
};

static void *flood_thread(void *ud)
{
    struct flood_arg *a = ud;
    for (int i = 0; i < 500; i++) {
        char kid[48];
        snprintf(kid, sizeof(kid), "flood-%d-%d", a->id, i);
        struct reqsign_key_info info;
        enum reqsign_status st = reqsign_keydir_lookup(a->kd, kid, strlen(kid), &info, NULL);
        if (st != REQSIGN_E_KEY_UNKNOWN)
            return (void *)1;
    }
    return NULL;
}

Test(keydir, unknown_kid_flood_rate_limited)
{
    const int64_t t0 = 1800000000;
    set_now(t0);
    struct tkey a;
    tkey_new(&a);
    char body[1024];
    snprintf(body, sizeof(body), "{\"keys\":[%s]}", jwk(&a, a.kid));
    struct fake f;
    fake_start(&f);
    fake_set(&f, 200, body, strlen(body), "\"e\"", "max-age=300");
    struct reqsign_keydir *kd = kd_new(f.url, 10, 300, 0, 0);
    lookup_is(kd, a.kid, REQSIGN_OK);
    for (int round = 0; round < 3; round++) {
        set_now(t0 + 10 * round + 5 * (round > 0)); /* t0, t0+15, t0+25 */
        for (int i = 0; i < 1000; i++) {
            char kid[32];
            snprintf(kid, sizeof(kid), "unknown-%d", i);
            lookup_is(kd, kid, REQSIGN_E_KEY_UNKNOWN);
        }
        cr_assert_eq(fake_requests(&f), 1 + round, "round %d: %d requests", round,
                     fake_requests(&f));
    }
    /* Concurrent flood: 8 threads x 500 unknown keyids, one more fetch at most. */
    set_now(t0 + 40);
    pthread_t th[8];
    struct flood_arg args[8];
    for (int i = 0; i < 8; i++) {
        args[i].kd = kd;
        args[i].id = i;
        cr_assert_eq(pthread_create(&th[i], NULL, flood_thread, &args[i]), 0);
    }
    for (int i = 0; i < 8; i++) {
        void *rv;
        pthread_join(th[i], &rv);
        cr_assert_null(rv, "a flood lookup did not answer key_unknown");
    }
    cr_assert_eq(fake_requests(&f), 4);
    struct reqsign_keydir_stats st = kd_stats(kd);
    cr_assert_eq(st.fetches, 4);
    cr_assert_eq(st.not_modified, 3);
    cr_assert_geq(st.misses, 7000);
    lookup_is(kd, a.kid, REQSIGN_OK);
    reqsign_keydir_free(kd);
    fake_stop(&f);
    reqsign_key_free(a.key);
}

Test(keydir, stale_known_key_refetched_once)
{
    const int64_t t0 = 1800000000;
    set_now(t0);
    struct tkey a;
    tkey_new(&a);
    char body[1024];
    snprintf(body, sizeof(body), "{\"keys\":[%s]}", jwk(&a, a.kid));
    struct fake f;
    fake_start(&f);
    fake_set(&f, 200, body, strlen(body), "", "max-age=10");
    struct reqsign_keydir *kd = kd_new(f.url, 10, 300, 0, 0);
    lookup_is(kd, a.kid, REQSIGN_OK);
    set_now(t0 + 50);
    struct vfy vf;
    vfy_new(&vf, kd);
    struct reqsign_signer *s = signer_of_key(&a);
    for (int i = 0; i < 50; i++)
        cr_assert_eq(sign_verify(&vf, s), REQSIGN_OK);
    cr_assert_eq(fake_requests(&f), 2);
    reqsign_signer_free(s);
    vfy_free(&vf);
    reqsign_keydir_free(kd);
    fake_stop(&f);
    reqsign_key_free(a.key);
}

Test(keydir, new_rejects_bad_options)
{
    struct reqsign_keydir_opts o;
    struct reqsign_error err;
    const char *bad_urls[] = {NULL,      "",           "ftp://x/y",   "file:///etc/passwd",
                              "http://", "https://",   "http://a b/", "gopher://x",
                              "//x/y",   "http://x/\n"};
    for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
        memset(&o, 0, sizeof(o));
        o.url = bad_urls[i];
        reqsign_error_clear(&err);
        cr_assert_null(reqsign_keydir_new(&o, &err), "url %s", bad_urls[i] ? bad_urls[i] : "NULL");
        cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG);
    }
    cr_assert_null(reqsign_keydir_new(NULL, NULL));
    char longurl[REQSIGN_KEYDIR_URL_IN_MAX + 16];
    memset(longurl, 'a', sizeof(longurl) - 1);
    memcpy(longurl, "http://", 7);
    longurl[sizeof(longurl) - 1] = '\0';
    memset(&o, 0, sizeof(o));
    o.url = longurl;
    cr_assert_null(reqsign_keydir_new(&o, NULL));

    memset(&o, 0, sizeof(o));
    o.url = "http://127.0.0.1:1/d";
    o.min_refresh = -1;
    cr_assert_null(reqsign_keydir_new(&o, NULL));
    o.min_refresh = 0;
    o.timeout_ms = -5;
    cr_assert_null(reqsign_keydir_new(&o, NULL));
    o.timeout_ms = 0;
    o.min_refresh = 100;
    o.max_refresh = 50;
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keydir_new(&o, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG);
    o.min_refresh = 0;
    o.max_refresh = 5; /* below the default min_refresh */
    cr_assert_null(reqsign_keydir_new(&o, NULL));

    /* defaults */
    memset(&o, 0, sizeof(o));
    o.url = "HTTPS://example.invalid/.well-known/x";
    struct reqsign_keydir *kd = reqsign_keydir_new(&o, &err);
    cr_assert_not_null(kd);
    struct reqsign_keydir_stats st = kd_stats(kd);
    cr_assert_eq(st.fetches, 0, "new does not fetch");
    reqsign_keydir_free(kd);
    reqsign_keydir_free(NULL);
    reqsign_keydir_stats(NULL, &st);
    cr_assert_eq(st.fetches, 0);
    reqsign_keydir_stats(NULL, NULL);
    cr_assert_eq(reqsign_keydir_refresh(NULL, NULL), REQSIGN_E_INVALID_ARG);
}

Test(keydir, timeout_bounded)
{
    /* A server that accepts and never answers: the fetch gives up after timeout_ms. */
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert_eq(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(listen(lfd, 4), 0);
    socklen_t al = sizeof(a);
    cr_assert_eq(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/d", ntohs(a.sin_port));
    struct reqsign_keydir_opts o;
    memset(&o, 0, sizeof(o));
    o.url = url;
    o.timeout_ms = 300;
    struct reqsign_keydir *kd = reqsign_keydir_new(&o, NULL);
    cr_assert_not_null(kd);
    struct timespec t1, t2;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keydir_refresh(kd, &err), REQSIGN_E_HTTP);
    clock_gettime(CLOCK_MONOTONIC, &t2);
    double el = (double)(t2.tv_sec - t1.tv_sec) + (double)(t2.tv_nsec - t1.tv_nsec) / 1e9;
    cr_assert_lt(el, 2.0, "fetch took %.2f s", el);
    cr_assert_eq(kd_stats(kd).fetch_errors, 1);
    reqsign_keydir_free(kd);
    close(lfd);
}
