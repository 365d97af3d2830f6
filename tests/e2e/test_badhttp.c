/* e2e-badhttp: malformed HTTP against real reqsignd and api-backend processes,
 * over raw TCP sockets (so that requests no HTTP client would send can be
 * sent). Every case names what it expects:
 *   EXP_4XX          the server answers with a 4xx status;
 *   EXP_4XX_OR_CLOSE a framing error: a 4xx, or the connection is closed
 *                    without a response.
 * Never a 2xx, never a 5xx, and /healthz answers 200 after every case (the
 * server stays up). At the end both servers stop on SIGTERM with exit 0
 * (an ASan/UBSan build of the servers would report in the exit status). */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/signer.h>

#include "e2eutil.h"
#include "testutil.h"

/* Send @len bytes (stop early if the server closes), optionally half-close,
 * then read until the server closes or @ms pass without data. Returns the
 * bytes received (malloc'd, NUL-terminated, at most 64 KiB kept). */
static char *raw(const struct tu_proc *p, const char *req, size_t len, int close_write, int ms)
{
    int fd = connect_to(p);
    tu_send(fd, req, len);
    if (close_write)
        shutdown(fd, SHUT_WR);
    char *out = calloc(1, 65536);
    cr_assert_not_null(out);
    size_t n = 0;
    char sink[4096];
    for (;;) {
        /* up to @ms for the first byte, then 300 ms of silence ends the read
         * (a kept-alive connection after a complete answer) */
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll(&pfd, 1, n == 0 ? ms : 300) <= 0)
            break;
        ssize_t r = n < 65535 ? recv(fd, out + n, 65535 - n, 0) : recv(fd, sink, sizeof(sink), 0);
        if (r <= 0)
            break;
        if (n < 65535)
            n += (size_t)r;
    }
    close(fd);
    return out;
}

/* reqsignd and api-backend (1 s key caches) on a fresh key database, and the admin signer. */
static void bh_setup(struct env *e)
{
    init_env(e);
    start(e, "1");
    start_api_backend(e, "1", NULL);
    load_admin(e);
}

/* Stop both (expecting exit 0); the directory is kept, with its logs, when one did not. */
static void bh_finish(struct env *e)
{
    int sd = tu_proc_stop(&e->d, SIGTERM, 15000);
    int sb = tu_proc_stop(&e->b, SIGTERM, 15000);
    cr_expect_eq(sd, 0, "reqsignd did not exit 0 on SIGTERM (%d); log %s", sd, e->log);
    cr_expect_eq(sb, 0, "api-backend did not exit 0 on SIGTERM (%d); log %s", sb, e->blog);
    if (sd == 0 && sb == 0) {
        remove_env(e);
    } else {
        reqsign_signer_free(e->admin_signer);
        free(e->dir);
    }
}

/* /healthz answers 200 on @p. */
static void assert_healthy(const struct tu_proc *p, const char *after)
{
    static const char h[] = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    char *out = raw(p, h, sizeof(h) - 1, 0, 5000);
    cr_assert(strncmp(out, "HTTP/1.1 200", 12) == 0, "/healthz after '%s': '%.60s'", after, out);
    free(out);
}

/* EXP_505_OR_4XX: an unsupported HTTP version; RFC 9110 section 15.6.6 names
 * 505 for it (libmicrohttpd's answer), the one documented 5xx here. */
enum expect { EXP_4XX, EXP_4XX_OR_CLOSE, EXP_505_OR_4XX };

/* The status of the first response in @out, 0 if none. */
static int status_of(const char *out)
{
    if (strncmp(out, "HTTP/1.", 7) != 0 || strlen(out) < 12)
        return 0;
    return atoi(out + 9);
}

/* Check @out against @exp: returns 1 if good; logs otherwise. Also: no 2xx
 * anywhere in the stream (a smuggled request answered). */
static int judge(const char *name, const char *server, const char *out, enum expect exp)
{
    int st = status_of(out);
    int ok;
    if (exp == EXP_4XX)
        ok = st >= 400 && st < 500;
    else if (exp == EXP_505_OR_4XX)
        ok = (st >= 400 && st < 500) || st == 505 || out[0] == '\0';
    else
        ok = (st >= 400 && st < 500) || out[0] == '\0';
    for (const char *p = strstr(out, "HTTP/1."); p != NULL; p = strstr(p + 1, "HTTP/1."))
        if (p[8] == ' ' && (p[9] == '2' || (p[9] == '5' && exp != EXP_505_OR_4XX)))
            ok = 0;
    if (out[0] != '\0' && st == 0)
        ok = 0; /* an HTTP/0.9-style answer: bytes without a status line */
    if (!ok)
        cr_log_error("%s [%s]: expected %s, got '%.200s'", name, server,
                     exp == EXP_4XX          ? "a 4xx"
                     : exp == EXP_505_OR_4XX ? "a 4xx or 505"
                                             : "a 4xx or a close",
                     out);
    else
        cr_log_info("%s [%s]: %s", name, server, st ? "4xx" : "closed");
    return ok;
}

struct rcase {
    const char *name;
    const char *req; /* "%H" is replaced by 127.0.0.1:PORT, "%S" by signature lines for
                        POST /v1/keys with body "{}" */
    size_t len;      /* 0: strlen */
    int close_write;
    enum expect exp;
};

/* Build the request of @c for server @p. */
static char *make_req(const struct rcase *c, const struct tu_proc *p,
                      const struct reqsign_signer *s, size_t *len)
{
    size_t in_len = c->len ? c->len : strlen(c->req);
    size_t cap = in_len + 4096;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    size_t n = 0;
    for (size_t i = 0; i < in_len; i++) {
        if (c->req[i] == '%' && i + 1 < in_len && (c->req[i + 1] == 'H' || c->req[i + 1] == 'S')) {
            char tmp[2048];
            if (c->req[i + 1] == 'H')
                snprintf(tmp, sizeof(tmp), "127.0.0.1:%d", p->port);
            else
                sig_lines(s, p, "POST", "/v1/keys", "{}", 2, tmp, sizeof(tmp));
            size_t tl = strlen(tmp);
            memcpy(out + n, tmp, tl);
            n += tl;
            i++;
            continue;
        }
        out[n++] = c->req[i];
    }
    out[n] = '\0';
    *len = n;
    return out;
}

#define NUL_REQ "GET /v1/keys HTTP/1.1\r\nHost: %H\r\nX-A: a\0b\r\n\r\n"
#define SMUGGLED "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"

static const struct rcase framing[] = {
    {"chunked_ends_early",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nContent-Type: application/json\r\n%S"
     "Transfer-Encoding: chunked\r\n\r\n10\r\n{\"lab",
     0, 1, EXP_4XX_OR_CLOSE},
    {"chunked_ends_before_first_chunk",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 1,
     EXP_4XX_OR_CLOSE},
    {"content_length_larger_then_close",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nContent-Type: application/json\r\n%S"
     "Content-Length: 100\r\n\r\n{}",
     0, 1, EXP_4XX_OR_CLOSE},
    {"content_length_and_transfer_encoding",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
     "\r\n0\r\n\r\n",
     0, 0, EXP_4XX_OR_CLOSE},
    {"two_different_content_lengths",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x", 0,
     0, EXP_4XX_OR_CLOSE},
    {"content_length_list", "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nContent-Length: 2, 3\r\n\r\n{}x",
     0, 0, EXP_4XX_OR_CLOSE},
    {"content_length_negative", "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nContent-Length: -1\r\n\r\n",
     0, 0, EXP_4XX_OR_CLOSE},
    {"content_length_not_a_number",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nContent-Length: 1x\r\n\r\n{", 0, 0, EXP_4XX_OR_CLOSE},
    {"content_length_overflow",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nContent-Length: 99999999999999999999999\r\n\r\n", 0, 0,
     EXP_4XX_OR_CLOSE},
    {"smuggle_cl_te",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n"
     "\r\n0\r\n\r\n" SMUGGLED,
     0, 0, EXP_4XX_OR_CLOSE},
    {"smuggle_te_cl",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n"
     "\r\n22\r\n" SMUGGLED "\r\n0\r\n\r\n",
     0, 0, EXP_4XX_OR_CLOSE},
    {"smuggle_te_obs_fold",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nContent-Length: 5\r\nTransfer-Encoding:\r\n chunked\r\n"
     "\r\n0\r\n\r\n" SMUGGLED,
     0, 0, EXP_4XX_OR_CLOSE},
    {"te_chunked_identity",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
     0, 0, EXP_4XX_OR_CLOSE},
    {"te_identity_chunked_smuggle",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nTransfer-Encoding: identity, chunked\r\n"
     "Content-Length: 5\r\n\r\n0\r\n\r\n" SMUGGLED,
     0, 0, EXP_4XX_OR_CLOSE},
    {"te_gzip_only", "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nTransfer-Encoding: gzip\r\n\r\nabc", 0,
     1, EXP_4XX_OR_CLOSE},
    {"chunk_size_not_hex",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nTransfer-Encoding: "
     "chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
     0, 0, EXP_4XX_OR_CLOSE},
    {"chunk_size_overflow",
     "POST /v1/keys HTTP/1.1\r\nHost: %H\r\nTransfer-Encoding: chunked\r\n\r\n"
     "ffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
     0, 0, EXP_4XX_OR_CLOSE},
    {"header_nul_byte", NUL_REQ, sizeof(NUL_REQ) - 1, 0, EXP_4XX_OR_CLOSE},
    {"header_name_with_space", "GET /v1/keys HTTP/1.1\r\nHost: %H\r\nX A: b\r\n\r\n", 0, 0,
     EXP_4XX_OR_CLOSE},
    {"header_without_colon", "GET /v1/keys HTTP/1.1\r\nHost: %H\r\nNoColonHere\r\n\r\n", 0, 0,
     EXP_4XX_OR_CLOSE},
    {"absolute_form_target", "GET http://%H/v1/keys HTTP/1.1\r\nHost: %H\r\n\r\n", 0, 0, EXP_4XX},
    {"authority_form_target", "CONNECT %H HTTP/1.1\r\nHost: %H\r\n\r\n", 0, 0, EXP_4XX_OR_CLOSE},
    {"options_asterisk", "OPTIONS * HTTP/1.1\r\nHost: %H\r\n\r\n", 0, 0, EXP_4XX},
    {"http10_without_host", "GET /v1/keys HTTP/1.0\r\n\r\n", 0, 0, EXP_4XX},
    {"http11_without_host", "GET /v1/keys HTTP/1.1\r\n\r\n", 0, 0, EXP_4XX_OR_CLOSE},
    {"two_host_headers", "GET /v1/keys HTTP/1.1\r\nHost: %H\r\nHost: evil.example\r\n\r\n", 0, 0,
     EXP_4XX_OR_CLOSE},
    {"http09_request_line", "GET /v1/keys\r\n\r\n", 0, 1, EXP_4XX_OR_CLOSE},
    {"http_version_2_on_h1", "GET /v1/keys HTTP/2.0\r\nHost: %H\r\n\r\n", 0, 0, EXP_505_OR_4XX},
    {"garbage_request_line", "\x01\x02\x03 \xff\xfe\r\n\r\n", 0, 0, EXP_4XX_OR_CLOSE},
    {"target_with_space", "GET /v1/ keys HTTP/1.1\r\nHost: %H\r\n\r\n", 0, 0, EXP_4XX_OR_CLOSE},
    {"target_non_ascii", "GET /v1/k\xc3\xa9ys HTTP/1.1\r\nHost: %H\r\n\r\n", 0, 0,
     EXP_4XX_OR_CLOSE},
    {"signed_absolute_form",
     "POST http://%H/v1/keys HTTP/1.1\r\nHost: %H\r\nContent-Type: application/json\r\n%S"
     "Content-Length: 2\r\n\r\n{}",
     0, 0, EXP_4XX},
};

static int run_table(const struct env *e, const struct rcase *cases, size_t n)
{
    int bad = 0;
    const struct tu_proc *servers[] = {&e->d, &e->b};
    const char *names[] = {"reqsignd", "api-backend"};
    for (size_t i = 0; i < n; i++) {
        for (int k = 0; k < 2; k++) {
            size_t len;
            char *req = make_req(&cases[i], servers[k], e->admin_signer, &len);
            long t0 = tu_now_ms();
            char *out = raw(servers[k], req, len, cases[i].close_write, 1500);
            cr_log_info("%s [%s]: %ld ms", cases[i].name, names[k], tu_now_ms() - t0);
            bad += !judge(cases[i].name, names[k], out, cases[i].exp);
            free(out);
            free(req);
            assert_healthy(servers[k], cases[i].name);
        }
    }
    return bad;
}

Test(badhttp, framing_and_request_line)
{
    struct env e;
    bh_setup(&e);
    int bad = run_table(&e, framing, sizeof(framing) / sizeof(framing[0]));
    bh_finish(&e);
    cr_expect_eq(bad, 0, "%d case(s) answered wrongly (see the log)", bad);
}

/* Header sections far beyond the servers' limits. */
Test(badhttp, huge_header_sections)
{
    struct env e;
    bh_setup(&e);
    const struct tu_proc *servers[] = {&e.d, &e.b};
    int bad = 0;
    for (int k = 0; k < 2; k++) {
        /* one header line of 100 KB */
        size_t cap = 200000;
        char *req = malloc(cap);
        int n = snprintf(req, cap, "GET /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ");
        memset(req + n, 'b', 100 * 1024);
        size_t len = (size_t)n + 100 * 1024;
        memcpy(req + len, "\r\n\r\n", 4);
        len += 4;
        char *out = raw(servers[k], req, len, 0, 3000);
        bad += !judge("header_line_100kb", k ? "api-backend" : "reqsignd", out, EXP_4XX_OR_CLOSE);
        free(out);
        assert_healthy(servers[k], "header_line_100kb");

        /* 10,000 header lines */
        size_t cap2 = 10000 * 16 + 256;
        char *req2 = malloc(cap2);
        size_t off = (size_t)snprintf(req2, cap2, "GET /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (int i = 0; i < 10000; i++)
            off += (size_t)snprintf(req2 + off, cap2 - off, "X-%d: v\r\n", i);
        off += (size_t)snprintf(req2 + off, cap2 - off, "\r\n");
        out = raw(servers[k], req2, off, 0, 3000);
        bad += !judge("headers_10000", k ? "api-backend" : "reqsignd", out, EXP_4XX_OR_CLOSE);
        free(out);
        assert_healthy(servers[k], "headers_10000");
        free(req);
        free(req2);
    }
    bh_finish(&e);
    cr_expect_eq(bad, 0, "%d case(s) answered wrongly (see the log)", bad);
}

/* Send a signed request with @body to reqsignd: raw, Content-Length framing. */
static char *signed_raw(const struct env *e, const struct tu_proc *p,
                        const struct reqsign_signer *s, const char *method, const char *sign_path,
                        const char *send_path, const char *body, size_t len)
{
    char sl[2048];
    sig_lines(s, p, method, sign_path, body, len, sl, sizeof(sl));
    size_t cap = len + 4096;
    char *req = malloc(cap);
    int n = snprintf(req, cap,
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     method, send_path, p->port, sl, len);
    memcpy(req + n, body, len);
    char *out = raw(p, req, (size_t)n + len, 0, 5000);
    free(req);
    (void)e;
    return out;
}

static int expect_error(const char *name, const char *out, int status, const char *code)
{
    int st = status_of(out);
    int ok = st == status && (code == NULL || strstr(out, code) != NULL);
    if (!ok)
        cr_log_error("%s: expected %d %s, got '%.300s'", name, status, code ? code : "", out);
    else
        cr_log_info("%s: %d %s", name, st, code ? code : "");
    return ok;
}

Test(badhttp, bodies_keys_and_paths)
{
    struct env e;
    bh_setup(&e);
    int bad = 0;
    char *out;

    /* non-UTF-8 JSON */
    static const char nonutf8[] = "{\"label\":\"\xff\xfe\xc3\x28\",\"scopes\":[\"a\"]}";
    out = signed_raw(&e, &e.d, e.admin_signer, "POST", "/v1/keys", "/v1/keys", nonutf8,
                     sizeof(nonutf8) - 1);
    bad += !expect_error("json_not_utf8", out, 400, "\"json\"");
    free(out);
    assert_healthy(&e.d, "json_not_utf8");

    /* JSON nested 10,000 deep (20,000 bytes, under the body limit) */
    size_t depth = 10000;
    char *deep = malloc(2 * depth + 1);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    out = signed_raw(&e, &e.d, e.admin_signer, "POST", "/v1/keys", "/v1/keys", deep, 2 * depth);
    bad += !expect_error("json_nested_10000", out, 400, NULL);
    free(out);
    free(deep);
    assert_healthy(&e.d, "json_nested_10000");

    /* a JSON body over 64 KiB */
    size_t big = 64 * 1024 + 1;
    char *jb = malloc(big + 1);
    memset(jb, ' ', big);
    memcpy(jb, "{\"label\":\"", 10);
    memset(jb + 10, 'x', big - 12);
    memcpy(jb + big - 2, "\"}", 2);
    jb[big] = '\0';
    out = signed_raw(&e, &e.d, e.admin_signer, "POST", "/v1/keys", "/v1/keys", jb, big);
    bad += !expect_error("json_over_64kib", out, 413, "\"body_too_large\"");
    free(out);
    free(jb);
    assert_healthy(&e.d, "json_over_64kib");

    /* path tricks, signed for /v1/keys: 401 sig_invalid on reqsignd (the
     * signature covers @path exactly as received), never the key list */
    static const char *const tricks[] = {"//v1/keys", "/v1/./keys", "/v1/keys%2F..",
                                         "/v1/keys/", "/v1//keys",  "/v1/%6beys"};
    for (size_t i = 0; i < sizeof(tricks) / sizeof(tricks[0]); i++) {
        out = signed_raw(&e, &e.d, e.admin_signer, "GET", "/v1/keys", tricks[i], "", 0);
        char nm[64];
        snprintf(nm, sizeof(nm), "path_trick %s [reqsignd]", tricks[i]);
        /* reqsignd routes on the raw path: no route is 404 not_found (the
         * key list is never served); a routed path fails the signature */
        if (status_of(out) == 404)
            bad += !expect_error(nm, out, 404, "\"not_found\"");
        else
            bad += !expect_error(nm, out, 401, "\"sig_invalid\"");
        free(out);
        snprintf(nm, sizeof(nm), "path_trick %s [api-backend]", tricks[i]);
        out = signed_raw(&e, &e.b, e.admin_signer, "GET", "/v1/keys", tricks[i], "", 0);
        bad += !expect_error(nm, out, 401, "\"sig_invalid\"");
        free(out);
    }
    assert_healthy(&e.d, "path tricks");
    assert_healthy(&e.b, "path tricks");

    /* a valid signature under a revoked key */
    static const char vbody[] = "{\"label\":\"victim\",\"scopes\":[\"keys:admin\"]}";
    char *created = signed_raw(&e, &e.d, e.admin_signer, "POST", "/v1/keys", "/v1/keys", vbody,
                               sizeof(vbody) - 1);
    cr_assert_eq(status_of(created), 201, "%s", created);
    const char *js = strstr(created, "\r\n\r\n");
    cr_assert_not_null(js);
    json_t *cred = json_loads(js + 4, 0, NULL);
    cr_assert_not_null(cred, "%s", js + 4);
    const char *pem = json_string_value(json_object_get(cred, "private_key"));
    const char *kid = json_string_value(json_object_get(cred, "keyid"));
    cr_assert(pem != NULL && kid != NULL);
    struct reqsign_signer_opts so;
    memset(&so, 0, sizeof(so));
    so.key_data = pem;
    so.key_len = strlen(pem);
    struct reqsign_signer *victim = reqsign_signer_new(&so, NULL);
    cr_assert_not_null(victim);
    out = signed_raw(&e, &e.d, victim, "GET", "/v1/keys", "/v1/keys", "", 0);
    cr_assert_eq(status_of(out), 200, "victim key before revocation: %s", out);
    free(out);
    char path[128];
    snprintf(path, sizeof(path), "/v1/keys/%s", kid);
    out = signed_raw(&e, &e.d, e.admin_signer, "DELETE", path, path, "", 0);
    cr_assert_eq(status_of(out), 200, "revoke: %s", out);
    free(out);
    /* reqsignd drops its own cache entry at once; the backend within its TTL (1 s) */
    struct timespec ts = {1, 600 * 1000000L};
    nanosleep(&ts, NULL);
    out = signed_raw(&e, &e.d, victim, "GET", "/v1/keys", "/v1/keys", "", 0);
    bad += !expect_error("revoked_key reqsignd", out, 401, "\"key_revoked\"");
    free(out);
    out = signed_raw(&e, &e.b, victim, "GET", "/echo", "/echo", "", 0);
    bad += !expect_error("revoked_key api-backend", out, 401, "\"key_revoked\"");
    free(out);
    reqsign_signer_free(victim);
    json_decref(cred);
    free(created);
    assert_healthy(&e.d, "revoked");
    assert_healthy(&e.b, "revoked");

    bh_finish(&e);
    cr_expect_eq(bad, 0, "%d case(s) answered wrongly (see the log)", bad);
}

/* Slowloris: the header section one byte per second. The server must close
 * the connection within its documented timeout (REQSIGN_HTTPD_DEFAULT_TIMEOUT,
 * 10 s); we allow 15 s and give up (fail) after 20 s. Both servers at once. */
Test(badhttp, slowloris_is_cut_off)
{
    struct env e;
    bh_setup(&e);
    static const char req[] = "GET /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
                              "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int fds[2] = {connect_to(&e.d), connect_to(&e.b)};
    long closed_at[2] = {-1, -1};
    long t0 = tu_now_ms();
    size_t sent = 0;
    while ((closed_at[0] < 0 || closed_at[1] < 0) && tu_now_ms() - t0 < 20000) {
        for (int k = 0; k < 2; k++) {
            if (closed_at[k] >= 0)
                continue;
            struct pollfd pfd = {fds[k], POLLIN, 0};
            if (poll(&pfd, 1, 0) > 0) {
                char buf[512];
                ssize_t r = recv(fds[k], buf, sizeof(buf), 0);
                if (r <= 0 || pfd.revents & (POLLHUP | POLLERR))
                    closed_at[k] = tu_now_ms() - t0;
                else if (r > 0) /* an answer (408/400); then it must close */
                    cr_log_info("slowloris: server %d answered %.12s", k, buf);
                continue;
            }
            if (send(fds[k], req + (sent % (sizeof(req) - 1)), 1, MSG_NOSIGNAL) != 1)
                closed_at[k] = tu_now_ms() - t0;
        }
        sent++;
        /* health stays fine meanwhile */
        if (sent == 3) {
            assert_healthy(&e.d, "slowloris in progress");
            assert_healthy(&e.b, "slowloris in progress");
        }
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
    close(fds[0]);
    close(fds[1]);
    cr_log_info("slowloris: reqsignd closed after %ld ms, api-backend after %ld ms", closed_at[0],
                closed_at[1]);
    cr_expect(closed_at[0] >= 0 && closed_at[0] <= 15000,
              "reqsignd kept a 1-byte/s header section open %ld ms (want <= 15000; -1 = still "
              "open after 20 s)",
              closed_at[0]);
    cr_expect(closed_at[1] >= 0 && closed_at[1] <= 15000,
              "api-backend kept a 1-byte/s header section open %ld ms (want <= 15000; -1 = "
              "still open after 20 s)",
              closed_at[1]);
    assert_healthy(&e.d, "slowloris");
    assert_healthy(&e.b, "slowloris");
    bh_finish(&e);
}

/* ---- framing that must be refused: 400 and a closed connection ---- */

struct exchange {
    char *out;  /* what came back, NUL-terminated (NULs inside are kept as they are) */
    int closed; /* the server closed the connection (recv returned 0 or an error) */
    long ms;    /* from the send to the close (or to giving up) */
};

/* Send @len bytes, do not half-close, read until the server closes or @ms
 * pass: a server that answers and keeps the connection open is seen. */
static struct exchange exchange(const struct tu_proc *p, const char *req, size_t len, int ms)
{
    struct exchange x = {calloc(1, 65536), 0, 0};
    cr_assert_not_null(x.out);
    int fd = connect_to(p);
    long t0 = tu_now_ms();
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    size_t n = 0;
    for (;;) {
        long left = ms - (tu_now_ms() - t0);
        struct pollfd pfd = {fd, POLLIN, 0};
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            break;
        ssize_t r = recv(fd, x.out + n, 65535 - n, 0);
        if (r <= 0) {
            x.closed = 1;
            break;
        }
        n += (size_t)r;
        if (n >= 65535)
            break;
    }
    x.ms = tu_now_ms() - t0;
    close(fd);
    return x;
}

/* 400 invalid_request (any 400 body if @any_body), one response only, and
 * the connection closed. */
static int refused(const char *name, const char *server, const struct exchange *x, int any_body)
{
    int responses = 0;
    for (const char *p = strstr(x->out, "HTTP/1."); p != NULL; p = strstr(p + 1, "HTTP/1."))
        responses++;
    int ok = status_of(x->out) == 400 &&
             (any_body || strstr(x->out, "\"invalid_request\"") != NULL) && responses == 1 &&
             x->closed && x->ms <= 1000;
    if (!ok)
        cr_log_error("%s [%s]: want one 400 invalid_request and a close; got %d response(s), "
                     "%s after %ld ms: '%.300s'",
                     name, server, responses, x->closed ? "closed" : "still open", x->ms, x->out);
    else
        cr_log_info("%s [%s]: 400, closed after %ld ms", name, server, x->ms);
    return ok;
}

/* Requests that libmicrohttpd 0.9.75 accepted and answered (a smuggled second
 * request among them): each must get 400 and a close, at once (within 2 s,
 * not at the 10 s header deadline). "%H" is 127.0.0.1:PORT, "%G" the
 * signature lines of GET /v1/keys (no body) with a NUL byte and junk after
 * the Signature-Input value, "%T" with a NUL byte only, "%N" the same lines
 * unchanged. */
#define RCASE(name, req)                                                                           \
    {                                                                                              \
        name, req, sizeof(req) - 1, 0                                                              \
    }
/* refused by libmicrohttpd itself: 400 and a close, its own (HTML) body */
#define RCASE_MHD(name, req)                                                                       \
    {                                                                                              \
        name, req, sizeof(req) - 1, 1                                                              \
    }
#define SMUGGLE_HEALTH "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
static const struct {
    const char *name;
    const char *req;
    size_t len;
    int mhd_body;
} refused_cases[] = {
    RCASE("two_content_lengths_smuggle", "GET /healthz HTTP/1.1\r\nHost: %H\r\nContent-Length: "
                                         "0\r\nContent-Length: 34\r\n\r\n" SMUGGLE_HEALTH),
    RCASE(
        "content_length_and_chunked",
        "POST /healthz HTTP/1.1\r\nHost: %H\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"
        "\r\n0\r\n\r\n"),
    RCASE(
        "chunked_and_content_length_smuggle",
        "POST /healthz HTTP/1.1\r\nHost: %H\r\nTransfer-Encoding: chunked\r\nContent-Length: 39\r\n"
        "\r\n0\r\n\r\n" SMUGGLE_HEALTH),
    RCASE("two_transfer_encodings",
          "POST /healthz HTTP/1.1\r\nHost: %H\r\nTransfer-Encoding: chunked\r\n"
          "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    RCASE("two_hosts", "GET /healthz HTTP/1.1\r\nHost: %H\r\nHost: evil.example\r\n\r\n"),
    RCASE("host_with_nul", "GET /healthz HTTP/1.1\r\nHost: %H\0evil\r\n\r\n"),
    RCASE("other_header_with_nul", "GET /healthz HTTP/1.1\r\nHost: %H\r\nX-A: a\0b\r\n\r\n"),
    RCASE("signature_input_with_nul", "GET /v1/keys HTTP/1.1\r\nHost: %H\r\n%G\r\n"),
    RCASE("signature_input_trailing_nul", "GET /v1/keys HTTP/1.1\r\nHost: %H\r\n%T\r\n"),
    RCASE("last_header_trailing_nul", "GET /healthz HTTP/1.1\r\nHost: %H\0\r\n\r\n"),
    RCASE_MHD("header_name_with_nul", "GET /healthz HTTP/1.1\r\nHost: %H\r\nX-A\0: b\r\n\r\n"),
    RCASE_MHD("version_with_nul", "GET /healthz HTTP/1.1\0\r\nHost: %H\r\n\r\n"),
    RCASE("target_with_nul", "GET /healthz\0/x HTTP/1.1\r\nHost: %H\r\n\r\n"),
    /* whitespace between a field name and the colon (RFC 9112 section 5.1) */
    RCASE("space_before_colon_content_length_smuggle",
          "GET /healthz HTTP/1.1\r\nHost: %H\r\nContent-Length : 34\r\n\r\n" SMUGGLE_HEALTH),
    RCASE(
        "space_before_colon_chunked",
        "POST /healthz HTTP/1.1\r\nHost: %H\r\nTransfer-Encoding : chunked\r\nContent-Length: 5\r\n"
        "\r\n0\r\n\r\n"),
    RCASE("space_before_colon_other", "GET /healthz HTTP/1.1\r\nHost: %H\r\nX-Foo : a\r\n\r\n"),
    RCASE("tab_before_colon", "GET /healthz HTTP/1.1\r\nHost: %H\r\nX-Foo\t: a\r\n\r\n"),
    /* a line starting with a blank right after the request line (no field to fold into) */
    RCASE("tab_first_line_host", "GET /healthz HTTP/1.1\r\n\tHost: evil\r\nHost: %H\r\n\r\n"),
    RCASE("space_first_line_content_length",
          "GET /healthz HTTP/1.1\r\n Content-Length: 34\r\nHost: %H\r\n\r\n" SMUGGLE_HEALTH),
    RCASE(
        "space_first_line_chunked",
        "POST /healthz HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: %H\r\nContent-Length: 5\r\n"
        "\r\n0\r\n\r\n"),
    /* control bytes in a field value (RFC 9110 section 5.5) */
    RCASE("bare_cr_in_value", "GET /healthz HTTP/1.1\r\nHost: %H\r\nX-Foo: a\rHost: evil\r\n\r\n"),
    RCASE("ctl_0x01_in_value", "GET /healthz HTTP/1.1\r\nHost: %H\r\nX-Foo: a\x01b\r\n\r\n"),
    RCASE("ctl_0x1b_in_value", "GET /healthz HTTP/1.1\r\nHost: %H\r\nX-Foo: a\x1b"
                               "b\r\n\r\n"),
    RCASE("del_in_value", "GET /healthz HTTP/1.1\r\nHost: %H\r\nX-Foo: a\x7f"
                          "b\r\n\r\n"),
    RCASE("ctl_in_host", "GET /healthz HTTP/1.1\r\nHost: %H\x01\r\n\r\n"),
    /* the start of a TLS 1.2/1.3 ClientHello: record header, handshake header,
     * version, random; no CR or LF, so libmicrohttpd waits for a request line */
    RCASE("tls_client_hello", "\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03"
                              "\x8a\x1f\x33\x5c\x90\x4e\x12\x7b\xe0\x01\x99\x42\x6d\x3c\x21\x58"
                              "\x77\x6a\x05\xf1\x2b\x9e\x44\xc7\x38\x50\xab\x16\x03\x61\xd2\x0f"
                              "\x00\x00\x02\x13\x01\x01\x00"),
    RCASE("not_a_method", "\x01\x02\x03 \xff\xfe"),
    /* review N3: a blank inside the target (libmicrohttpd closed without an
     * answer); more than 8 empty lines before the request line */
    RCASE("blank_in_target", "GET /x y HTTP/1.1\r\nHost: %H\r\n\r\n"),
    RCASE("ten_empty_lines_first",
          "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET /healthz HTTP/1.1\r\nHost: %H\r\n\r\n"),
};

/* The signature lines of GET /v1/keys for @p; if @nul, "\0junk" after the
 * Signature-Input value. Returns the bytes written to @out. */
static size_t sig_lines_nul(const struct reqsign_signer *s, const struct tu_proc *p, char nul,
                            char *out, size_t cap)
{
    char url[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/v1/keys", p->port);
    struct reqsign_signed sg;
    sign(s, "GET", url, NULL, 0, &sg);
    int n = snprintf(out, cap, "Content-Digest: %s\r\nSignature-Input: %s", sg.content_digest,
                     sg.signature_input);
    cr_assert(n > 0 && (size_t)n + 600 < cap);
    if (nul == 'G') {
        memcpy(out + n, "\0junk", 5);
        n += 5;
    } else if (nul == 'T') {
        out[n++] = '\0';
    }
    n += snprintf(out + n, cap - (size_t)n, "\r\nSignature: %s\r\n", sg.signature);
    return (size_t)n;
}

/* Expand %H and %G/%N of @req (@len bytes, NULs allowed) for @p. */
static char *expand(const char *req, size_t len, const struct tu_proc *p,
                    const struct reqsign_signer *s, size_t *out_len)
{
    size_t cap = len + 8192, n = 0;
    char *out = malloc(cap);
    cr_assert_not_null(out);
    for (size_t i = 0; i < len; i++) {
        if (req[i] == '%' && i + 1 < len && req[i + 1] != '\0' &&
            strchr("HGTN", req[i + 1]) != NULL) {
            if (req[i + 1] == 'H')
                n += (size_t)snprintf(out + n, cap - n, "127.0.0.1:%d", p->port);
            else
                n += sig_lines_nul(s, p, req[i + 1], out + n, cap - n);
            i++;
            continue;
        }
        out[n++] = req[i];
    }
    *out_len = n;
    return out;
}

Test(badhttp, framing_refused_with_400_and_close)
{
    struct env e;
    bh_setup(&e);
    const struct tu_proc *servers[] = {&e.d, &e.b};
    const char *names[] = {"reqsignd", "api-backend"};
    int bad = 0;
    for (int k = 0; k < 2; k++) {
        /* the signed control: without the NUL byte the same request is served */
        size_t len;
        static const char control[] = "GET /v1/keys HTTP/1.1\r\nHost: %H\r\n%N\r\n";
        char *req = expand(control, sizeof(control) - 1, servers[k], e.admin_signer, &len);
        struct exchange x = exchange(servers[k], req, len, 1500);
        if (k == 0)
            cr_assert_eq(status_of(x.out), 200, "signed control: %.300s", x.out);
        free(x.out);
        free(req);
        for (size_t i = 0; i < sizeof(refused_cases) / sizeof(refused_cases[0]); i++) {
            const char *rq = refused_cases[i].req;
            size_t rl = refused_cases[i].len; /* NULs included */
            req = expand(rq, rl, servers[k], e.admin_signer, &len);
            x = exchange(servers[k], req, len, 2000);
            bad += !refused(refused_cases[i].name, names[k], &x, refused_cases[i].mhd_body);
            free(x.out);
            free(req);
            assert_healthy(servers[k], refused_cases[i].name);
        }
        /* review N3: 3000 empty lines, then a TLS ClientHello (it hung: the
         * sniff window was all CR LF) */
        size_t blank = 3000 * 2;
        char *many = malloc(blank + 64);
        cr_assert_not_null(many);
        for (size_t j = 0; j < blank; j += 2)
            memcpy(many + j, "\r\n", 2);
        memcpy(many + blank, "\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03", 11);
        x = exchange(servers[k], many, blank + 11, 2000);
        bad += !refused("3000_empty_lines_then_client_hello", names[k], &x, 0);
        free(x.out);
        free(many);
        assert_healthy(servers[k], "3000_empty_lines_then_client_hello");
    }
    bh_finish(&e);
    cr_expect_eq(bad, 0, "%d case(s) answered wrongly (see the log)", bad);
}

/* Review item 14: with one --authority the Host field is still checked: an
 * invalid uri-host[:port] is 400 `url` on both servers (it was 200). */
Test(badhttp, invalid_host_is_400_url)
{
    struct env e;
    bh_setup(&e);
    const struct tu_proc *servers[] = {&e.d, &e.b};
    const char *names[] = {"reqsignd", "api-backend"};
    static const char *const hosts[] = {"[hello]", "[fe80::1%25eth0]", "user@a", "a:80:80", "::1",
                                        ""};
    int bad = 0;
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++) {
            char tmpl[256];
            int tl = snprintf(tmpl, sizeof(tmpl), "GET /v1/keys HTTP/1.1\r\nHost: %s\r\n%%N\r\n",
                              hosts[i]);
            size_t len;
            char *req = expand(tmpl, (size_t)tl, servers[k], e.admin_signer, &len);
            struct exchange x = exchange(servers[k], req, len, 1500);
            if (status_of(x.out) != 400 || strstr(x.out, "\"url\"") == NULL) {
                cr_log_error("Host '%s' [%s]: want 400 url, got '%.300s'", hosts[i], names[k],
                             x.out);
                bad++;
            }
            free(x.out);
            free(req);
            assert_healthy(servers[k], hosts[i]);
        }
    }
    bh_finish(&e);
    cr_expect_eq(bad, 0, "%d case(s) answered wrongly (see the log)", bad);
}
