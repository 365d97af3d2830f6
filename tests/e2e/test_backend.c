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

#include "e2eutil.h"

static void sha256_hex(const char *data, size_t len, char out[65])
{
    struct reqsign_digest d;
    uint8_t sum[32];
    char cd[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    cr_assert_eq(reqsign_digest_init(&d, REQSIGN_DIGEST_SHA256, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_update(&d, data, len, NULL), REQSIGN_OK);
    size_t cdl;
    cr_assert_eq(reqsign_digest_final(&d, cd, sizeof(cd), &cdl, sum, NULL, NULL), REQSIGN_OK);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", sum[i]);
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
    struct reqsign_signer *admin = load_admin(&e);
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
    /* the key's account (issue 13): the admin made it in the operator's */
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "account")),
                     json_string_value(json_object_get(c, "account")));
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "account")), "acct_operator");
    resp_free(&r);

    /* GET without a body; empty-body hash */
    r = call(s, "GET", burl(&e, "/things"), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    sha256_hex("", 0, hex);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "body_sha256")), hex);
    resp_free(&r);

    /* unsigned: 401 with Accept-Signature (/unsigned/: test unsigned_route_*) */
    r = send_req("GET", burl(&e, "/things"), NULL, 0, NULL, NULL);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "sig_missing");
    cr_assert_not_null(resp_header(&r, "Accept-Signature"));
    resp_free(&r);

    reqsign_signer_free(s);
    json_decref(c);
    finish(&e);
}

Test(backend, tamper_and_replay)
{
    struct env e;
    setup_env(&e);
    start_backend(&e, NULL);
    struct reqsign_signer *admin = load_admin(&e);

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
    cr_assert_not_null(k = reqsign_key_generate(NULL));
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

    finish(&e);
}

Test(backend, revoked_key_refused_within_ttl)
{
    struct env e;
    setup_env(&e);
    start_backend(&e, NULL); /* --cache-ttl 1 */
    struct reqsign_signer *admin = load_admin(&e);
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
    finish(&e);
}

/* Send a signed POST's headers on a fresh connection, hold the body, run
 * @between() (the key's fate while the body is pending), then send the body
 * and return the raw response (malloc'd). */
static char *held_body_request(const struct env *e, const struct reqsign_signer *s,
                               const char *body, void (*between)(const struct env *, void *),
                               void *arg)
{
    struct reqsign_signed sig;
    size_t blen = strlen(body);
    sign(s, "POST", burl(e, "/pay"), body, blen, &sig);
    char hdr[4096];
    int n = snprintf(hdr, sizeof(hdr),
                     "POST /pay HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n"
                     "Connection: close\r\n\r\n",
                     e->b.host, e->b.port, blen, "Content-Digest", sig.content_digest,
                     "Signature-Input", sig.signature_input, "Signature", sig.signature);
    cr_assert(n > 0 && (size_t)n < sizeof(hdr));
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert(fd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)e->b.port);
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(send(fd, hdr, (size_t)n, MSG_NOSIGNAL), n);
    /* phase one runs now; nothing must come back while the body is due */
    struct pollfd pf = {fd, POLLIN, 0};
    cr_assert_eq(poll(&pf, 1, 300), 0, "the server answered before the body was sent");
    between(e, arg);
    cr_assert_eq(send(fd, body, blen, MSG_NOSIGNAL), (ssize_t)blen);
    size_t cap = 8192, len = 0;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    for (;;) {
        pf.revents = 0;
        if (poll(&pf, 1, 5000) <= 0)
            break;
        ssize_t r = recv(fd, out + len, cap - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
        if (len + 1 >= cap)
            break;
    }
    out[len] = '\0';
    close(fd);
    return out;
}

static void wait_cache_bound(const struct env *e, void *arg)
{
    (void)e;
    (void)arg;
    usleep(2200 * 1000); /* api-backend --cache-ttl 1, plus margin */
}

static void revoke_then_wait_cache_bound(const struct env *e, void *arg)
{
    const struct reqsign_signer *admin = ((const struct reqsign_signer **)arg)[0];
    const char *keyid = ((const char **)arg)[1];
    char path[128];
    snprintf(path, sizeof(path), "/v1/keys/%s", keyid);
    struct resp r = call(admin, "DELETE", url_of(e, path), NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    wait_cache_bound(e, NULL);
}

/* Issue 12 item 3: a key revoked (through reqsignd) after its request's
 * headers passed and while its body is held does not get the request
 * through: the end of the body looks the key up again (401 key_revoked once
 * the api-backend's cache bound has passed). */
Test(backend, revoked_while_body_held)
{
    struct env e;
    setup_env(&e);
    start_backend(&e, NULL); /* --cache-ttl 1 */
    struct reqsign_signer *admin = load_admin(&e);
    json_t *c = create_key(&e, admin, "{\"scopes\":[\"pay\"]}");
    struct reqsign_signer *s = signer_of(c);

    /* control: the same slow request with nothing revoked is served */
    char *out = held_body_request(&e, s, "{\"amount\":1}", wait_cache_bound, NULL);
    cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "%s", out);
    free(out);

    const void *arg[2] = {admin, json_string_value(json_object_get(c, "keyid"))};
    out = held_body_request(&e, s, "{\"amount\":2}", revoke_then_wait_cache_bound, arg);
    cr_assert(strncmp(out, "HTTP/1.1 401", 12) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"key_revoked\""), "%s", out);
    free(out);
    assert_healthy(&e);

    reqsign_signer_free(s);
    json_decref(c);
    finish(&e);
}

Test(backend, public_authority_behind_proxy)
{
    struct env e;
    setup_env(&e);
    start_backend(&e, "api.example.com");
    struct reqsign_signer *admin = load_admin(&e);
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
    finish(&e);
}

Test(backend, malformed_requests_keep_it_up)
{
    struct env e;
    setup_env(&e);
    start_backend(&e, NULL);
    struct reqsign_signer *admin = load_admin(&e);
    char req[4096];
    struct reqsign_signed sig;

    /* Content-Length larger than the body, then close: nothing to answer, no crash */
    sign(admin, "POST", burl(&e, "/t"), "0123456789", 10, &sig);
    int n = snprintf(req, sizeof(req),
                     "POST /t HTTP/1.1\r\nHost: %s:%d\r\n%s: %s\r\n%s: %s\r\n%s: %s\r\n"
                     "Content-Length: 100\r\n\r\n0123456789",
                     e.b.host, e.b.port, "Content-Digest", sig.content_digest, "Signature-Input",
                     sig.signature_input, "Signature", sig.signature);
    free(tu_raw(&e.b, req, (size_t)n, 1, 2000));
    assert_healthy(&e);

    /* garbage */
    static const char garbage[] = "\x01\x02 GARBAGE \xff\xfe\r\n\r\n";
    char *out = tu_raw(&e.b, garbage, sizeof(garbage) - 1, 1, 2000);
    cr_assert(out[0] == '\0' || strncmp(out, "HTTP/1.1 400", 12) == 0, "%s", out);
    free(out);
    assert_healthy(&e);

    /* Content-Length and Transfer-Encoding together */
    static const char both[] = "POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n";
    out = tu_raw(&e.b, both, sizeof(both) - 1, 1, 2000);
    cr_assert(out[0] == '\0' || strncmp(out, "HTTP/1.1 4", 10) == 0, "%s", out);
    free(out);
    assert_healthy(&e);

    /* oversized body by Content-Length: 413 before reading it */
    static const char big[] = "POST /t HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000\r\n\r\nabc";
    out = tu_raw(&e.b, big, sizeof(big) - 1, 0, 2000);
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
    out = tu_raw(&e.b, creq, off, 0, 3000);
    cr_assert(strncmp(out, "HTTP/1.1 413", 12) == 0, "%s", out);
    free(out);
    free(creq);

    /* malformed Signature-Input: its own error, 400 */
    n = snprintf(req, sizeof(req),
                 "GET /t HTTP/1.1\r\nHost: x\r\nSignature-Input: sig1=(\"@method\r\n"
                 "Signature: sig1=:AAAA:\r\nConnection: close\r\n\r\n");
    out = tu_raw(&e.b, req, (size_t)n, 0, 2000);
    cr_assert(strncmp(out, "HTTP/1.1 400", 12) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"sig_input_malformed\""), "%s", out);
    free(out);

    /* headers too large: libmicrohttpd refuses (431), we stay up */
    char *hreq = malloc(200000);
    n = snprintf(hreq, 200000, "GET /t HTTP/1.1\r\nHost: x\r\nX-Big: ");
    memset(hreq + n, 'b', 150000);
    memcpy(hreq + n + 150000, "\r\n\r\n", 5);
    out = tu_raw(&e.b, hreq, (size_t)n + 150004, 0, 2000);
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
    finish(&e);
}

/* Send "@method @target" raw (no client-side path normalisation), unsigned,
 * with a 3-byte body; return the answer (malloc'd). */
static char *raw_unsigned(const struct env *e, const char *method, const char *target)
{
    char req[1024];
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Length: 3\r\n"
                     "Connection: close\r\n\r\nabc",
                     method, target, e->b.host, e->b.port);
    return tu_raw(&e->b, req, (size_t)n, 0, 3000);
}

/* Issue 12 item 11: /unsigned/ skips verification only with
 * --bench-unsigned-route, and never for a path with dot segments. */
Test(backend, unsigned_route_only_with_the_flag)
{
    struct env e;
    setup_env(&e);
    start_backend(&e, NULL); /* no --bench-unsigned-route */
    static const char *const tricks[] = {"/unsigned/../pay", "/unsigned/./pay",
                                         "/unsigned/%2e%2e/pay", "/unsigned/x/../../pay",
                                         "/unsigned/.."};

    struct resp r = send_req("PUT", burl(&e, "/unsigned/bench"), "abc", 3, NULL, NULL);
    cr_assert_eq(r.status, 401, "%s", r.body);
    cr_assert_str_eq(err_name(&r), "sig_missing");
    resp_free(&r);
    for (size_t i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
        char *out = raw_unsigned(&e, "POST", tricks[i]);
        cr_assert(strncmp(out, "HTTP/1.1 401", 12) == 0, "%s: %s", tricks[i], out);
        cr_assert_not_null(strstr(out, "\"sig_missing\""), "%s: %s", tricks[i], out);
        cr_assert_null(strstr(out, "body_sha256"), "%s echoed unverified: %s", tricks[i], out);
        free(out);
    }
    cr_assert_eq(tu_proc_stop(&e.b, SIGTERM, 15000), 0);

    /* with the flag (the benchmark): the echo, unverified, for plain paths only */
    static const char *const flag[] = {"--bench-unsigned-route", NULL};
    start_backend_extra(&e, NULL, flag);
    r = send_req("PUT", burl(&e, "/unsigned/bench"), "abc", 3, NULL, NULL);
    cr_assert_eq(r.status, 200, "%s", r.body);
    char hex[65];
    sha256_hex("abc", 3, hex);
    cr_assert_str_eq(json_string_value(json_object_get(r.json, "body_sha256")), hex);
    cr_assert(json_is_null(json_object_get(r.json, "keyid")));
    resp_free(&r);
    for (size_t i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
        char *out = raw_unsigned(&e, "POST", tricks[i]);
        cr_assert(strncmp(out, "HTTP/1.1 401", 12) == 0, "%s: %s", tricks[i], out);
        cr_assert_null(strstr(out, "body_sha256"), "%s echoed unverified: %s", tricks[i], out);
        free(out);
    }
    char *log = slurp(e.blog);
    cr_assert_not_null(strstr(log, "--bench-unsigned-route"), "no warning in the log: %s", log);
    free(log);
    finish(&e);
}

/* Issue 12 item 1: a request signed for service A, replayed byte for byte
 * (Host included) to service B that trusts the same keys but has its own
 * nonce store, is refused by B; A accepts it. */
Test(backend, replay_to_another_service_refused)
{
    struct env a;
    setup_env(&a);
    start_backend(&a, NULL); /* --authority 127.0.0.1:PORT_A */
    struct env b = a;        /* same key database, same reqsignd */
    memset(&b.b, 0, sizeof(b.b));
    snprintf(b.blog, sizeof(b.blog), "%s/backend-b.log", a.dir);
    start_backend(&b, NULL); /* --authority 127.0.0.1:PORT_B */
    char *cred = slurp(a.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);

    char host_a[128];
    snprintf(host_a, sizeof(host_a), "Host: %s:%d", a.b.host, a.b.port);
    const char *const as_a[] = {host_a, "Content-Type: application/json", NULL};
    const char *body = "{\"amount\":100}";
    struct reqsign_signed sig;
    sign(admin, "POST", burl(&a, "/pay"), body, strlen(body), &sig);

    /* the same bytes, Host: A, delivered to B */
    struct resp r = send_req("POST", burl(&b, "/pay"), body, strlen(body), &sig, as_a);
    cr_assert_eq(r.status, 401, "B accepted a request signed for A: %s", r.body);
    cr_assert_str_eq(err_name(&r), "sig_invalid");
    resp_free(&r);
    /* and with B's own Host */
    r = send_req("POST", burl(&b, "/pay"), body, strlen(body), &sig, as_a + 1);
    cr_assert_eq(r.status, 401, "%s", r.body);
    cr_assert_str_eq(err_name(&r), "sig_invalid");
    resp_free(&r);
    /* A, the service it was signed for, accepts it */
    r = send_req("POST", burl(&a, "/pay"), body, strlen(body), &sig, as_a + 1);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);

    reqsign_signer_free(admin);
    free(cred);
    cr_assert_eq(tu_proc_stop(&b.b, SIGTERM, 15000), 0, "api-backend B did not exit 0");
    finish(&a);
}

/* Issue 12 item 1: several accepted authorities; @authority is the one the
 * request's Host names, and a Host outside the list is refused (url). */
Test(backend, several_authorities)
{
    struct env e;
    setup_env(&e);
    static const char *const more[] = {"--authority", "api.example.com", "--authority",
                                       "api.example.net:8443", NULL};
    start_backend_extra(&e, NULL, more); /* and 127.0.0.1:PORT */
    struct reqsign_signer *admin = load_admin(&e);
    struct reqsign_signed sig;
    static const char *const h_com[] = {"Host: API.example.com:443", NULL};
    static const char *const h_net[] = {"Host: api.example.net:8443", NULL};
    static const char *const h_org[] = {"Host: api.example.org", NULL};

    struct resp r = call(admin, "GET", burl(&e, "/own"), NULL); /* its own address */
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    /* the scheme is http here: :443 is not the default port, so not api.example.com */
    sign(admin, "GET", "https://api.example.com/x", NULL, 0, &sig);
    r = send_req("GET", burl(&e, "/x"), NULL, 0, &sig, h_com);
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert_str_eq(err_name(&r), "url");
    resp_free(&r);
    /* case and the default port are normalised before the comparison */
    static const char *const h_com80[] = {"Host: API.example.com:80", NULL};
    sign(admin, "GET", "http://api.example.com/x", NULL, 0, &sig);
    r = send_req("GET", burl(&e, "/x"), NULL, 0, &sig, h_com80);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    sign(admin, "GET", "http://api.example.net:8443/x", NULL, 0, &sig);
    r = send_req("GET", burl(&e, "/x"), NULL, 0, &sig, h_net);
    cr_assert_eq(r.status, 200, "%s", r.body);
    resp_free(&r);
    /* signed for a name B does not serve, sent with that Host: refused; the
     * accepted names are not told to the client (review N5; this asserted
     * the list before) */
    sign(admin, "GET", "http://api.example.org/x", NULL, 0, &sig);
    r = send_req("GET", burl(&e, "/x"), NULL, 0, &sig, h_org);
    cr_assert_eq(r.status, 400, "%s", r.body);
    cr_assert_str_eq(err_name(&r), "url");
    const char *msg = json_string_value(json_object_get(r.json, "message"));
    cr_assert(msg != NULL && strstr(msg, "not an authority") != NULL &&
                  strstr(msg, "api.example.net") == NULL && strstr(msg, "api.example.com") == NULL,
              "%s", r.body);
    resp_free(&r);
    /* signed for one accepted name, sent with the Host of another: refused */
    sign(admin, "GET", "http://api.example.com/x", NULL, 0, &sig);
    r = send_req("GET", burl(&e, "/x"), NULL, 0, &sig, h_net);
    cr_assert_eq(r.status, 401, "%s", r.body);
    cr_assert_str_eq(err_name(&r), "sig_invalid");
    resp_free(&r);

    finish(&e);
}

/* Issue 12 item 1: no authority, no start (exit 2, naming the option);
 * --any-authority starts with a warning; both together are refused. */
Test(backend, startup_needs_an_authority)
{
    struct env e;
    setup_env(&e);
    const char *progs[] = {tu_prog("API_BACKEND"), tu_prog("REQSIGND")};
    for (int i = 0; i < 2; i++) {
        char cmd[2048];
        int st;
        /* (timeout: a server that starts after all is a failure, not a hang) */
        snprintf(cmd, sizeof(cmd), "timeout 20 '%s' --db '%s' --listen 127.0.0.1:0 2>&1", progs[i],
                 e.db);
        char *out = tu_run(cmd, &st);
        cr_assert_eq(st, 2, "%s: exit %d: %s", progs[i], st, out);
        cr_assert_not_null(strstr(out, "--authority"), "%s", out);
        cr_assert_not_null(strstr(out, "--any-authority"), "%s", out);
        free(out);
        snprintf(cmd, sizeof(cmd),
                 "timeout 20 '%s' --db '%s' --listen 127.0.0.1:0 --authority a.example "
                 "--any-authority 2>&1",
                 progs[i], e.db);
        out = tu_run(cmd, &st);
        cr_assert_eq(st, 2, "%s: exit %d: %s", progs[i], st, out);
        free(out);
        snprintf(cmd, sizeof(cmd),
                 "timeout 20 '%s' --db '%s' --listen 127.0.0.1:0 --authority 'bad host' 2>&1",
                 progs[i], e.db);
        out = tu_run(cmd, &st);
        cr_assert_eq(st, 1, "%s: exit %d: %s", progs[i], st, out);
        cr_assert_not_null(strstr(out, "host"), "%s", out);
        free(out);

        char log[600];
        snprintf(log, sizeof(log), "%s/any-%d.log", e.dir, i);
        char *argv[] = {(char *)progs[i],  "--db", e.db, "--listen", "127.0.0.1:0",
                        "--any-authority", NULL};
        struct tu_proc p;
        cr_assert_eq(tu_proc_start(&p, argv, log, 10000), 0, "%s --any-authority", progs[i]);
        cr_assert_eq(tu_proc_stop(&p, SIGTERM, 15000), 0);
        char *l = slurp(log);
        cr_assert_not_null(strstr(l, "warning: --any-authority"), "%s", l);
        free(l);
    }
    finish(&e);
}

/* Copy api-backend and the two libraries it loads ($ORIGIN/../server,
 * $ORIGIN/../common) under @dir/bin, readable by everyone: the build tree may
 * be out of reach of another user (a home directory). Returns the binary. */
static char *reachable_backend(const char *dir)
{
    const char *prog = tu_prog("API_BACKEND");
    char cmd[4096], *out;
    int st;
    snprintf(cmd, sizeof(cmd),
             "set -e; b=$(dirname '%s'); mkdir -p '%s/bin/examples'; "
             "cp -L '%s' '%s/bin/examples/api-backend'; "
             /* every reqsign library at its place relative to the binary's rpath */
             "(cd \"$b\"/.. && find server common -name 'libreqsign-*.so.0' "
             "-exec cp -L --parents {} '%s/bin/' ';'); "
             "chmod -R a+rX '%s/bin'",
             prog, dir, prog, dir, dir, dir);
    out = tu_run(cmd, &st);
    cr_assert_eq(st, 0, "copying api-backend: %s", out);
    free(out);
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    cr_assert_not_null(path);
    snprintf(path, n, "%s/bin/examples/api-backend", dir);
    return path;
}

/* api-backend as @uid (-1: this user) on e->db, with @extra options. */
static void start_backend_as(struct env *e, const char *prog, long uid, const char *extra)
{
    const char *more[] = {"--last-used-interval", "1", extra, NULL};
    tu_proc_run_as(uid, uid);
    int rc = srv_try_start(
        &e->b,
        &(struct srv_opts){.prog = prog, .db = e->db, .log = e->blog, .ttl = "1", .extra = more});
    tu_proc_run_as(-1, -1);
    char *log = slurp(e->blog);
    cr_assert_eq(rc, 0, "api-backend as uid %ld did not start: %s", uid, log);
    free(log);
}

static long wait_for(const struct reqsign_signer *s, const struct env *e, long want, int ms)
{
    long got = 0;
    for (int i = 0; i <= ms / 100; i++) {
        struct resp r = call(s, "GET", burl(e, "/v1/ro"), NULL);
        got = r.status;
        resp_free(&r);
        if (got == want)
            break;
        usleep(100 * 1000);
    }
    return got;
}

/* Least privilege (issue 16): api-backend as a user that can only read the
 * database, its -wal and -shm (root's, mode 0644, in a directory it cannot
 * write), verifies, sees keys reqsignd adds and revokes, keeps working when
 * reqsignd is stopped, and says once that the last use is not recorded.
 * Without root: the same user on files mode 0444 in a directory mode 0555. */
Test(backend, read_only_user_verifies)
{
    struct env e;
    setup_env(&e); /* reqsignd runs (as this user) */
    int root = geteuid() == 0;
    long uid = root ? 65534 : -1; /* nobody */
    char cmd[2048], *out;
    int st;
    snprintf(cmd, sizeof(cmd), "chmod 0755 '%s'", e.dir);
    free(tu_run(cmd, &st));
    char *prog = root ? reachable_backend(e.dir) : strdup(tu_prog("API_BACKEND"));
    char *cred = slurp(e.admin);
    struct reqsign_signer *admin = signer_from_cred(cred);
    json_t *k1 = create_key(&e, admin, "{\"label\":\"ro1\",\"scopes\":[\"x\"]}");
    struct reqsign_signer *s1 = signer_of(k1);
    char wal[600], shm[600];
    snprintf(wal, sizeof(wal), "%s-wal", e.db);
    snprintf(shm, sizeof(shm), "%s-shm", e.db);

    if (root) {
        snprintf(cmd, sizeof(cmd), "chmod 0644 '%s' '%s' '%s'", e.db, wal, shm);
        free(tu_run(cmd, &st));
        cr_assert_eq(st, 0);
        start_backend_as(&e, prog, uid, NULL);
        cr_assert_eq(wait_for(s1, &e, 200, 3000), 200);
        /* a key reqsignd makes now, and a revocation, reach the backend */
        json_t *k2 = create_key(&e, admin, "{\"label\":\"ro2\",\"scopes\":[\"x\"]}");
        struct reqsign_signer *s2 = signer_of(k2);
        cr_assert_eq(wait_for(s2, &e, 200, 3000), 200, "a new key");
        char path[200];
        snprintf(path, sizeof(path), "/v1/keys/%s",
                 json_string_value(json_object_get(k1, "keyid")));
        struct resp r = call(admin, "DELETE", url_of(&e, path), NULL);
        cr_assert_eq(r.status, 200);
        resp_free(&r);
        cr_assert_eq(wait_for(s1, &e, 401, 3000), 401, "a revoked key");
        cr_assert_eq(tu_proc_stop(&e.b, SIGTERM, 15000), 0);
        e.b.pid = 0;
        json_decref(k1);
        reqsign_signer_free(s1);
        k1 = k2;
        s1 = s2;
    }
    /* reqsignd stopped: the -wal and -shm files stay, and a reader needs no more */
    cr_assert_eq(tu_proc_stop(&e.d, SIGTERM, 15000), 0);
    struct stat sb;
    cr_assert_eq(stat(wal, &sb), 0, "%s was removed", wal);
    cr_assert_eq(stat(shm, &sb), 0, "%s was removed", shm);
    if (!root) {
        snprintf(cmd, sizeof(cmd), "chmod 0444 '%s' '%s' '%s' && chmod 0555 '%s'", e.db, wal, shm,
                 e.dir);
        free(tu_run(cmd, &st));
        cr_assert_eq(st, 0);
    }
    for (int pass = 0; pass < 2; pass++) {
        start_backend_as(&e, prog, uid, pass == 0 ? NULL : "--read-only");
        cr_assert_eq(wait_for(s1, &e, 200, 3000), 200, "pass %d", pass);
        usleep(1500 * 1000); /* a last-use flush would run by now */
        cr_assert_eq(tu_proc_stop(&e.b, SIGTERM, 15000), 0, "api-backend exit status");
        e.b.pid = 0;
        out = slurp(e.blog);
        cr_assert_not_null(strstr(out, pass == 0 ? "used read-only (this user cannot write"
                                                 : "used read-only (--read-only)"),
                           "%s", out);
        free(out);
        snprintf(cmd, sizeof(cmd), ": > '%s'", e.blog);
        free(tu_run(cmd, &st));
    }
    /* nothing was written: the files are as they were */
    cr_assert_eq(stat(e.db, &sb), 0);
    cr_assert_eq(sb.st_uid, geteuid());
    cr_assert_eq(sb.st_mode & 0777, root ? 0644 : 0444);
    if (root) { /* without the -wal / -shm files the reader cannot open it, and says why */
        snprintf(cmd, sizeof(cmd), "rm -f '%s' '%s'", wal, shm);
        free(tu_run(cmd, &st));
        char *argv[] = {prog,          "--db", e.db, "--listen", "127.0.0.1:@PORT@",
                        "--authority", "a",    NULL};
        tu_proc_run_as(uid, uid);
        int rc = tu_proc_start_port(&e.b, argv, e.blog, 5000);
        tu_proc_run_as(-1, -1);
        e.b.pid = 0;
        out = slurp(e.blog);
        cr_assert_eq(rc, -1, "%s", out);
        cr_assert_not_null(strstr(out, "-wal does not exist"), "%s", out);
        free(out);
    }
    snprintf(cmd, sizeof(cmd), "chmod 0755 '%s'", e.dir);
    free(tu_run(cmd, &st));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e.dir);
    free(tu_run(cmd, &st));
    free(e.dir);
    json_decref(k1);
    reqsign_signer_free(s1);
    reqsign_signer_free(admin);
    free(cred);
    free(prog);
}
