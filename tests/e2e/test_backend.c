/* e2e-backend: the example api-backend and reqsignd on one SQLite database,
 * on 127.0.0.1; keys are made through reqsignd, requests signed by the client
 * signer and sent with libcurl; raw sockets for malformed requests. */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/digest.h>
#include <reqsign/key.h>
#include <reqsign/signer.h>

#include "testutil.h"

/* ---- helpers (the same shape as in test_reqsignd.c) ---- */

struct env {
    char *dir;
    char db[512], admin[512], log[512], blog[512];
    struct tu_proc d; /* reqsignd */
    struct tu_proc b; /* api-backend */
};

struct resp {
    long status;
    char *body;
    size_t len;
    char *hdrs; /* all response header lines */
    size_t hlen;
    json_t *json;
};

struct sbuf {
    char *b;
    size_t n;
};

static size_t on_data(char *p, size_t sz, size_t n, void *ud)
{
    struct sbuf *buf = ud;
    char *nb = realloc(buf->b, buf->n + sz * n + 1);
    cr_assert_not_null(nb);
    memcpy(nb + buf->n, p, sz * n);
    buf->n += sz * n;
    nb[buf->n] = '\0';
    buf->b = nb;
    return sz * n;
}

static void resp_free(struct resp *r)
{
    free(r->body);
    free(r->hdrs);
    json_decref(r->json);
    memset(r, 0, sizeof(*r));
}

/* The value of response header @name (static buffer), or NULL. */
static const char *resp_header(const struct resp *r, const char *name)
{
    static char v[512];
    size_t nl = strlen(name);
    for (const char *p = r->hdrs; p != NULL && *p;) {
        const char *e = strstr(p, "\r\n");
        size_t ll = e ? (size_t)(e - p) : strlen(p);
        if (ll > nl && strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *s = p + nl + 1;
            while (*s == ' ')
                s++;
            size_t vl = ll - (size_t)(s - p);
            if (vl >= sizeof(v))
                vl = sizeof(v) - 1;
            memcpy(v, s, vl);
            v[vl] = '\0';
            return v;
        }
        p = e ? e + 2 : p + ll;
    }
    return NULL;
}

static const char *err_name(const struct resp *r)
{
    return json_string_value(json_object_get(r->json, "error"));
}

/* Send one request. @sig: the three signature headers (NULL: unsigned). */
static struct resp send_req(const char *method, const char *url, const char *body, size_t len,
                            const struct reqsign_signed *sig, const char *const *extra)
{
    struct resp r;
    memset(&r, 0, sizeof(r));
    struct sbuf bb = {NULL, 0}, hb = {NULL, 0};
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    struct curl_slist *h = NULL;
    char line[2048];
    h = curl_slist_append(h, "Expect:");
    if (sig != NULL)
        for (size_t i = 0; i < sig->n_headers; i++) {
            snprintf(line, sizeof(line), "%.*s: %.*s", (int)sig->headers[i].name.len,
                     sig->headers[i].name.ptr, (int)sig->headers[i].value.len,
                     sig->headers[i].value.ptr);
            h = curl_slist_append(h, line);
        }
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++)
        h = curl_slist_append(h, extra[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bb);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &hb);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    CURLcode cc = curl_easy_perform(c);
    cr_assert_eq(cc, CURLE_OK, "%s %s: %s", method, url, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    r.body = bb.b;
    r.len = bb.n;
    r.hdrs = hb.b;
    r.hlen = hb.n;
    if (r.body != NULL)
        r.json = json_loadb(r.body, r.len, 0, NULL);
    return r;
}

static struct reqsign_signer *signer_from_cred(const char *cred_json)
{
    json_t *j = json_loads(cred_json, 0, NULL);
    cr_assert_not_null(j, "credential is not JSON");
    const char *pem = json_string_value(json_object_get(j, "private_key"));
    cr_assert_not_null(pem, "credential without private_key");
    struct reqsign_signer_opts o;
    memset(&o, 0, sizeof(o));
    o.key_data = pem;
    o.key_len = strlen(pem);
    struct reqsign_error err;
    struct reqsign_signer *s = reqsign_signer_new(&o, &err);
    cr_assert_not_null(s, "signer: %s", err.message);
    json_decref(j);
    return s;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    char *b = calloc(1, 65536);
    size_t n = fread(b, 1, 65535, f);
    b[n] = '\0';
    fclose(f);
    return b;
}

static void sign(const struct reqsign_signer *s, const char *method, const char *url,
                 const char *body, size_t len, struct reqsign_signed *out)
{
    struct reqsign_sign_input in;
    struct reqsign_error err;
    memset(&in, 0, sizeof(in));
    memset(out, 0, sizeof(*out));
    in.method = method;
    in.url = url;
    in.body = body;
    in.body_len = len;
    cr_assert_eq(reqsign_signer_sign(s, &in, out, &err), REQSIGN_OK, "sign: %s", err.message);
}

/* Sign and send. */
static struct resp call(const struct reqsign_signer *s, const char *method, const char *url,
                        const char *body)
{
    struct reqsign_signed sig;
    size_t len = body != NULL ? strlen(body) : 0;
    sign(s, method, url, body, len, &sig);
    static const char *const json_ct[] = {"Content-Type: application/json", NULL};
    return send_req(method, url, body, len, &sig, body != NULL ? json_ct : NULL);
}

static void run_init(struct env *e)
{
    char cmd[2048];
    int st;
    snprintf(cmd, sizeof(cmd), "'%s' init --db '%s' -o '%s' --service http://127.0.0.1 2>>'%s'",
             tu_prog("REQSIGND"), e->db, e->admin, e->log);
    free(tu_run(cmd, &st));
    cr_assert_eq(st, 0, "reqsignd init failed");
}

static void start(struct env *e, const char *ttl)
{
    char *argv[] = {
        (char *)tu_prog("REQSIGND"),       "--db", e->db, "--listen", "127.0.0.1:0", "--cache-ttl",
        (char *)(ttl != NULL ? ttl : "5"), NULL};
    cr_assert_eq(tu_proc_start(&e->d, argv, e->log, 10000), 0, "reqsignd did not start");
}

static void start_backend(struct env *e, const char *pub)
{
    char *argv[] = {(char *)tu_prog("API_BACKEND"),
                    "--db",
                    e->db,
                    "--listen",
                    "127.0.0.1:0",
                    "--cache-ttl",
                    "1",
                    "--max-body",
                    "100000",
                    pub != NULL ? "--public-authority" : NULL,
                    (char *)pub,
                    NULL};
    cr_assert_eq(tu_proc_start(&e->b, argv, e->blog, 10000), 0, "api-backend did not start");
}

static void stop(struct env *e)
{
    cr_assert_eq(tu_proc_stop(&e->b, SIGTERM, 15000), 0, "api-backend did not exit 0 on SIGTERM");
    cr_assert_eq(tu_proc_stop(&e->d, SIGTERM, 15000), 0, "reqsignd did not exit 0 on SIGTERM");
}

/* Stop the servers (asserting exit 0), remove the temporary directory. */
static void finish(struct env *e)
{
    char cmd[600];
    int st;
    stop(e);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e->dir);
    free(tu_run(cmd, &st));
    free(e->dir);
    e->dir = NULL;
}

static void setup_env(struct env *e)
{
    memset(e, 0, sizeof(*e));
    e->dir = tu_tmpdir();
    snprintf(e->db, sizeof(e->db), "%s/keys.db", e->dir);
    snprintf(e->admin, sizeof(e->admin), "%s/admin.json", e->dir);
    snprintf(e->log, sizeof(e->log), "%s/reqsignd.log", e->dir);
    snprintf(e->blog, sizeof(e->blog), "%s/backend.log", e->dir);
    run_init(e);
    start(e, NULL);
}

static char *url_at(const struct tu_proc *p, const char *path)
{
    static char u[8][1024];
    static int i;
    i = (i + 1) % 8;
    snprintf(u[i], sizeof(u[i]), "%s%s", p->url, path);
    return u[i];
}

static char *url_of(const struct env *e, const char *path)
{
    return url_at(&e->d, path);
}

static char *burl(const struct env *e, const char *path)
{
    return url_at(&e->b, path);
}

/* POST /v1/keys with @body; returns the credential object (new reference). */
static json_t *create_key(const struct env *e, const struct reqsign_signer *admin, const char *body)
{
    struct resp r = call(admin, "POST", url_of(e, "/v1/keys"), body);
    cr_assert_eq(r.status, 201, "POST /v1/keys: %ld %s", r.status, r.body);
    json_t *j = json_incref(r.json);
    resp_free(&r);
    return j;
}

static struct reqsign_signer *signer_of(json_t *cred)
{
    char *s = json_dumps(cred, 0);
    struct reqsign_signer *sg = signer_from_cred(s);
    free(s);
    return sg;
}

static void sha256_hex(const char *data, size_t len, char out[65])
{
    struct reqsign_digest d;
    uint8_t sum[32];
    char cd[REQSIGN_CONTENT_DIGEST_MAX];
    cr_assert_eq(reqsign_digest_init(&d, REQSIGN_DIGEST_SHA256), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_update(&d, data, len), REQSIGN_OK);
    size_t cdl;
    cr_assert_eq(reqsign_digest_final(&d, cd, sizeof(cd), &cdl, sum, NULL), REQSIGN_OK);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", sum[i]);
}

/* Send @req raw on a fresh connection; read until close or @ms; return what came back. */
static char *raw(const struct tu_proc *p, const char *req, size_t len, int close_write, int ms)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)p->port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    if (close_write)
        shutdown(fd, SHUT_WR);
    char *out = calloc(1, 65536);
    size_t n = 0;
    for (;;) {
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, ms) <= 0)
            break;
        ssize_t r = recv(fd, out + n, 65535 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n >= 65535)
            break;
    }
    close(fd);
    return out;
}

static void assert_healthy(const struct env *e)
{
    struct resp r = send_req("GET", burl(e, "/healthz"), NULL, 0, NULL, NULL);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
}

/* ---- tests ---- */

TestSuite(backend, .timeout = 120);

Test(backend, accepts_key_from_reqsignd_and_echoes)
{
    struct env e;
    setup_env(&e);
    start_backend(&e, NULL);
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    json_t *c =
        create_key(&e, admin, "{\"label\":\"api\",\"scopes\":[\"payments:write\",\"a.b\"]}");
    struct reqsign_signer *s = signer_of(c);

    const char *body = "{\"amount\":42}";
    struct resp r = call(s, "POST", burl(&e, "/payments/v1/x%2Fy?a=1&b=%20"), body);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char hex[65];
    sha256_hex(body, strlen(body), hex);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "keyid")),
                     json_string_value(json_object_get(c, "keyid")));
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "method")), "POST");
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "path")), "/payments/v1/x%2Fy");
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "body_sha256")), hex);
    json_t *sc = json_object_get(r.json, "scopes");
    cr_assert_eq(json_array_size(sc), 2);
    cr_assert_str_eq(json_string_value(json_array_get(sc, 0)), "payments:write");
    resp_free(&r);

    /* GET without a body; empty-body hash */
    r = call(s, "GET", burl(&e, "/things"), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    sha256_hex("", 0, hex);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "body_sha256")), hex);
    resp_free(&r);

    /* unsigned: 401 with Accept-Signature; /unsigned/ echoes without checks */
    r = send_req("GET", burl(&e, "/things"), NULL, 0, NULL, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "sig_missing");
    cr_assert_not_null(resp_header(&r, "Accept-Signature"));
    resp_free(&r);
    r = send_req("PUT", burl(&e, "/unsigned/bench"), "abc", 3, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    sha256_hex("abc", 3, hex);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "body_sha256")), hex);
    cr_assert(json_is_null(json_object_get(r.json, "keyid")));
    resp_free(&r);

    reqsign_signer_free(s);
    json_decref(c);
    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}

Test(backend, tamper_and_replay)
{
    struct env e;
    setup_env(&e);
    start_backend(&e, NULL);
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);

    struct reqsign_signed sig;
    sign(admin, "POST", burl(&e, "/pay"), "amount=10", 9, &sig);
    struct resp r = send_req("POST", burl(&e, "/pay"), "amount=99", 9, &sig, NULL);
    cr_assert_eq(r.status, 401, "%s", r.body);
    cr_assert_str_eq(err_name(&r), "digest_mismatch");
    resp_free(&r);

    sign(admin, "POST", burl(&e, "/pay"), "amount=10", 9, &sig);
    r = send_req("POST", burl(&e, "/pay"), "amount=10", 9, &sig, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    r = send_req("POST", burl(&e, "/pay"), "amount=10", 9, &sig, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "replay");
    resp_free(&r);

    /* another path with the same signature: sig_invalid (or replay first) */
    sign(admin, "GET", burl(&e, "/a"), NULL, 0, &sig);
    r = send_req("GET", burl(&e, "/b"), NULL, 0, &sig, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "sig_invalid");
    resp_free(&r);

    /* unknown key */
    struct reqsign_key *k = NULL;
    cr_assert_eq(reqsign_key_generate(&k, NULL), REQSIGN_OK);
    struct reqsign_signer_opts o;
    memset(&o, 0, sizeof(o));
    o.key = k;
    struct reqsign_signer *stranger = reqsign_signer_new(&o, NULL);
    r = call(stranger, "GET", burl(&e, "/a"), NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "key_unknown");
    resp_free(&r);
    reqsign_signer_free(stranger);
    reqsign_key_free(k);

    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}

Test(backend, revoked_key_refused_within_ttl)
{
    struct env e;
    setup_env(&e);
    start_backend(&e, NULL); /* --cache-ttl 1 */
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    json_t *c = create_key(&e, admin, "{\"scopes\":[\"x\"]}");
    struct reqsign_signer *s = signer_of(c);
    struct resp r = call(s, "GET", burl(&e, "/r"), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);

    char path[128];
    snprintf(path, sizeof(path), "/v1/keys/%s", json_string_value(json_object_get(c, "keyid")));
    r = call(admin, "DELETE", url_of(&e, path), NULL);
    cr_assert_eq(r.status, 200);
    resp_free(&r);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int refused = 0;
    for (;;) {
        r = call(s, "GET", burl(&e, "/r"), NULL);
        if (r.status == 401) {
            cr_assert_str_eq(err_name(&r), "key_revoked");
            refused = 1;
        }
        resp_free(&r);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (refused || t1.tv_sec - t0.tv_sec > 1 + 2)
            break;
        usleep(100 * 1000);
    }
    cr_assert(refused, "revoked key still accepted after TTL + 2 s");
    reqsign_signer_free(s);
    json_decref(c);
    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}

Test(backend, public_authority_behind_proxy)
{
    struct env e;
    setup_env(&e);
    start_backend(&e, "api.example.com");
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    static const char *const host[] = {"Host: internal:8080", NULL};

    /* the client signs the public name; the proxy forwards with its own Host */
    struct reqsign_signed sig;
    sign(admin, "GET", "http://api.example.com/orders?id=7", NULL, 0, &sig);
    struct resp r = send_req("GET", burl(&e, "/orders?id=7"), NULL, 0, &sig, host);
    cr_assert_eq(r.status, 200, "%s", r.body);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "path")), "/orders");
    resp_free(&r);

    /* signing the internal name does not verify */
    sign(admin, "GET", "http://internal:8080/orders?id=7", NULL, 0, &sig);
    r = send_req("GET", burl(&e, "/orders?id=7"), NULL, 0, &sig, host);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "sig_invalid");
    resp_free(&r);
    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}

Test(backend, malformed_requests_keep_it_up)
{
    struct env e;
    setup_env(&e);
    start_backend(&e, NULL);
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    char req[4096];
    struct reqsign_signed sig;

    /* Content-Length larger than the body, then close: nothing to answer, no crash */
    sign(admin, "POST", burl(&e, "/t"), "0123456789", 10, &sig);
    int n = snprintf(req, sizeof(req),
                     "POST /t HTTP/1.1\r\nHost: %s:%d\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n"
                     "Content-Length: 100\r\n\r\n0123456789",
                     e.b.host, e.b.port, "Content-Digest", sig.content_digest, "Signature-Input",
                     sig.signature_input, "Signature", sig.signature);
    free(raw(&e.b, req, (size_t)n, 1, 2000));
    assert_healthy(&e);

    /* garbage */
    static const char garbage[] = "\x01\x02 GARBAGE \xff\xfe\r\n\r\n";
    char *out = raw(&e.b, garbage, sizeof(garbage) - 1, 1, 2000);
    cr_assert(out[0] == '\0' || strncmp(out, "HTTP/1.1 400", 12) == 0, "%s", out);
    free(out);
    assert_healthy(&e);

    /* Content-Length and Transfer-Encoding together */
    static const char both[] = "POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    out = raw(&e.b, both, sizeof(both) - 1, 1, 2000);
    cr_assert(out[0] == '\0' || strncmp(out, "HTTP/1.1 4", 10) == 0, "%s", out);
    free(out);
    assert_healthy(&e);

    /* oversized body by Content-Length: 413 before reading it */
    static const char big[] = "POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\nabc";
    out = raw(&e.b, big, sizeof(big) - 1, 0, 2000);
    cr_assert(strncmp(out, "HTTP/1.1 413", 12) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"body_too_large\""));
    free(out);

    /* oversized chunked body: 413 once the bytes exceed the limit */
    sign(admin, "POST", burl(&e, "/t"), "x", 1, &sig);
    n = snprintf(req, sizeof(req),
                 "POST /t HTTP/1.1\r\nHost: %s:%d\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n"
                 "Transfer-Encoding: chunked\r\n\r\n",
                 e.b.host, e.b.port, "Content-Digest", sig.content_digest, "Signature-Input",
                 sig.signature_input, "Signature", sig.signature);
    size_t chunk = 30000;
    size_t total = (size_t)n + 4 * (chunk + 16) + 16;
    char *creq = malloc(total);
    memcpy(creq, req, (size_t)n);
    size_t off = (size_t)n;
    for (int i = 0; i < 4; i++) {
        off += (size_t)snprintf(creq + off, total - off, "%zx\r\n", chunk);
        memset(creq + off, 'a', chunk);
        off += chunk;
        memcpy(creq + off, "\r\n", 2);
        off += 2;
    }
    memcpy(creq + off, "0\r\n\r\n", 5);
    off += 5;
    out = raw(&e.b, creq, off, 0, 3000);
    cr_assert(strncmp(out, "HTTP/1.1 413", 12) == 0, "%s", out);
    free(out);
    free(creq);

    /* malformed Signature-Input: its own error, 400 */
    n = snprintf(req, sizeof(req),
                 "GET /t HTTP/1.1\r\nHost: x\r\nSignature-Input: sig1=(\"@method\r\n"
                 "Signature: sig1=:AAAA:\r\nConnection: close\r\n\r\n");
    out = raw(&e.b, req, (size_t)n, 0, 2000);
    cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"sig_input_malformed\""), "%s", out);
    free(out);

    /* headers too large: libmicrohttpd refuses (431), we stay up */
    char *hreq = malloc(200000);
    n = snprintf(hreq, 200000, "GET /t HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(hreq + n, 'b', 150000);
    memcpy(hreq + n + 150000, "\r\n\r\n", 5);
    out = raw(&e.b, hreq, (size_t)n + 150004, 0, 2000);
    cr_assert(out[0] == '\0' || strncmp(out, "HTTP/1.1 4", 10) == 0, "%s", out);
    free(out);
    free(hreq);

    /* a client that sends half a request line and stalls: the others are served */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)e.b.port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert(send(fd, "GET /slow HT", 12, MSG_NOSIGNAL) == 12);
    assert_healthy(&e);
    close(fd);

    assert_healthy(&e);
    reqsign_signer_free(admin);
    free(cred);
    finish(&e);
}
