/* Suite e2e-client: the libcurl SDK (reqsign/curl.h) and the `reqsign send` /
 * `reqsign keys` commands.
 *
 * The proof that what is signed is what libcurl sends: a raw-socket echo
 * server inside the test answers every request with the exact bytes it
 * received (request line, header fields, body). Each echo is parsed as a
 * server would parse it and verified with the library's verifier; the
 * signature base the verifier rebuilds from the wire must equal, byte for
 * byte, the base the signer signed.
 *
 * Then the story against real reqsignd and api-backend processes.
 */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <jansson.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/credential.h>
#include <reqsign/curl.h>
#include <reqsign/digest.h>
#include <reqsign/key.h>
#include <reqsign/keystore_sqlite.h>
#include <reqsign/nonce.h>
#include <reqsign/signer.h>
#include <reqsign/verifier.h>

#include "e2eutil.h"
#include "testutil.h"

#define KEY_PEM "tests/vectors/keys/rfc9421-ed25519.pem"
#define BASE_CAP 8192

/* ------------------------------------------------------------ echo server */

struct echo {
    int fd;
    int port;
    int family;
    pthread_t thread;
    volatile int stop;
    pthread_mutex_t mu;
    char *last; /* the last request received, raw */
    size_t last_len;
    int count;
};

static int read_request(int c, char **out, size_t *out_len)
{
    size_t cap = 65536, n = 0, head = 0, need = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (head != 0 && n >= head + need)
            break;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = read(c, buf + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(buf);
            return -1;
        }
        n += (size_t)r;
        if (head == 0) {
            for (size_t i = 3; i < n; i++)
                if (memcmp(buf + i - 3, "\r\n\r\n", 4) == 0) {
                    head = i + 1;
                    break;
                }
            if (head != 0) {
                /* Content-Length (we never send chunked bodies here) */
                for (size_t i = 0; i + 16 < head; i++)
                    if ((i == 0 || buf[i - 1] == '\n') &&
                        strncasecmp(buf + i, "content-length:", 15) == 0)
                        need = (size_t)strtoull(buf + i + 15, NULL, 10);
            }
        }
    }
    *out = buf;
    *out_len = n;
    return 0;
}

static void write_all(int c, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(c, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void *echo_main(void *arg)
{
    struct echo *e = arg;
    while (!e->stop) {
        struct pollfd pfd = {e->fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int c = accept(e->fd, NULL, NULL);
        if (c < 0)
            continue;
        char *req = NULL;
        size_t len = 0;
        if (read_request(c, &req, &len) == 0) {
            char head[128];
            int hn = snprintf(head, sizeof(head),
                              "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                              "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                              len);
            /* record first: a HEAD client returns as soon as the answer's head is in */
            pthread_mutex_lock(&e->mu);
            free(e->last);
            e->last = malloc(len);
            memcpy(e->last, req, len);
            e->last_len = len;
            e->count++;
            pthread_mutex_unlock(&e->mu);
            write_all(c, head, (size_t)hn);
            write_all(c, req, len);
            free(req);
        }
        shutdown(c, SHUT_WR);
        close(c);
    }
    return NULL;
}

/* Start on 127.0.0.1 (AF_INET) or ::1 (AF_INET6), port 0 for any. -1 if it cannot bind. */
static int echo_start(struct echo *e, int family, int port)
{
    memset(e, 0, sizeof(*e));
    pthread_mutex_init(&e->mu, NULL);
    e->family = family;
    e->fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (e->fd < 0)
        return -1;
    int one = 1;
    setsockopt(e->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_storage ss;
    socklen_t sl;
    memset(&ss, 0, sizeof(ss));
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof(*a);
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        a->sin6_addr = in6addr_loopback;
        sl = sizeof(*a);
    }
    if (bind(e->fd, (struct sockaddr *)&ss, sl) != 0 || listen(e->fd, 16) != 0) {
        close(e->fd);
        return -1;
    }
    sl = sizeof(ss);
    getsockname(e->fd, (struct sockaddr *)&ss, &sl);
    e->port = ntohs(family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
                                      : ((struct sockaddr_in6 *)&ss)->sin6_port);
    cr_assert_eq(pthread_create(&e->thread, NULL, echo_main, e), 0);
    return 0;
}

static void echo_stop(struct echo *e)
{
    e->stop = 1;
    pthread_join(e->thread, NULL);
    close(e->fd);
    free(e->last);
    pthread_mutex_destroy(&e->mu);
}

/* ------------------------------------------------------ the wire check */

struct wire {
    char method[32];
    char target[4096];
    char host[300];
    struct reqsign_header h[64];
    size_t n;
    const char *body;
    size_t body_len;
};

/* Parse a raw HTTP/1.1 request (spans point into @raw). */
static void parse_wire(const char *raw, size_t len, struct wire *w)
{
    memset(w, 0, sizeof(*w));
    const char *end = raw + len;
    const char *eol = memchr(raw, '\n', len);
    cr_assert_not_null(eol);
    const char *sp1 = memchr(raw, ' ', (size_t)(eol - raw));
    cr_assert_not_null(sp1);
    const char *sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
    cr_assert_not_null(sp2);
    snprintf(w->method, sizeof(w->method), "%.*s", (int)(sp1 - raw), raw);
    snprintf(w->target, sizeof(w->target), "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
    const char *p = eol + 1;
    while (p < end && !(p[0] == '\r' && p + 1 < end && p[1] == '\n')) {
        const char *e2 = memchr(p, '\n', (size_t)(end - p));
        cr_assert_not_null(e2);
        const char *colon = memchr(p, ':', (size_t)(e2 - p));
        cr_assert_not_null(colon);
        cr_assert_lt(w->n, 64);
        size_t vl = (size_t)(e2 - colon - 1);
        if (vl > 0 && colon[vl] == '\r')
            vl--;
        w->h[w->n].name.ptr = p;
        w->h[w->n].name.len = (size_t)(colon - p);
        w->h[w->n].value.ptr = colon + 1;
        w->h[w->n].value.len = vl;
        struct reqsign_span v = w->h[w->n].value;
        while (v.len > 0 && v.ptr[0] == ' ') {
            v.ptr++;
            v.len--;
        }
        if (w->h[w->n].name.len == 4 && strncasecmp(p, "host", 4) == 0)
            snprintf(w->host, sizeof(w->host), "%.*s", (int)v.len, v.ptr);
        w->n++;
        p = e2 + 1;
    }
    cr_assert(p + 1 < end, "no end of header");
    w->body = p + 2;
    w->body_len = (size_t)(end - (p + 2));
}

/* Verify the request in @raw as a server would, and require that the base
 * the verifier rebuilt from the wire is the base the signer signed. */
static void check_wire(const char *raw, size_t len, const struct reqsign_signed *sig,
                       struct wire *w)
{
    static uint8_t pk[32];
    struct reqsign_key *k = NULL;
    char *path = tu_path(KEY_PEM);
    cr_assert_not_null(k = reqsign_key_load_file(path, REQSIGN_KEY_ALLOW_PERMISSIVE, NULL));
    free(path);
    reqsign_key_public_raw(k, pk);
    reqsign_key_free(k);

    parse_wire(raw, len, w);
    struct reqsign_static_key sk = {NULL, {0}, ""};
    memcpy(sk.public_key, pk, 32);
    struct reqsign_nonce_store *ns = reqsign_nonce_store_memory_new(NULL, NULL);
    struct reqsign_verifier_opts vo;
    memset(&vo, 0, sizeof(vo));
    vo.lookup = reqsign_static_key_lookup;
    vo.lookup_ctx = &sk;
    vo.nonces = ns;
    vo.any_authority = 1; /* the Host the client sent: this checks what went on the wire */
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_verifier *v = reqsign_verifier_new(&vo, &err);
    cr_assert_not_null(v, "%s", err.message);
    struct reqsign_request req;
    req.method = (struct reqsign_span){w->method, strlen(w->method)};
    req.scheme = (struct reqsign_span){"http", 4};
    req.authority = (struct reqsign_span){w->host, strlen(w->host)};
    req.target = (struct reqsign_span){w->target, strlen(w->target)};
    req.headers = w->h;
    req.n_headers = w->n;
    struct reqsign_verification vs;
    char base[BASE_CAP];
    reqsign_verification_init(&vs);
    vs.base_buf = base;
    vs.base_cap = sizeof(base);
    enum reqsign_status st = reqsign_verifier_verify(v, &req, w->body, w->body_len, &vs, &err);
    cr_assert_eq(vs.base_len, sig->base_len,
                 "signature base differs:\n--- signed ---\n%.*s\n--- from the wire (%s %s) "
                 "---\n%.*s",
                 (int)sig->base_len, sig->base_buf, w->method, w->target, (int)vs.base_len, base);
    cr_assert(memcmp(base, sig->base_buf, sig->base_len) == 0,
              "signature base differs:\n--- signed ---\n%.*s\n--- from the wire ---\n%.*s",
              (int)sig->base_len, sig->base_buf, (int)vs.base_len, base);
    cr_assert_eq(st, REQSIGN_OK, "%s %s: %s: %s", w->method, w->target, reqsign_errname(st),
                 err.message);
    reqsign_verification_cleanup(&vs);
    reqsign_verifier_free(v);
    reqsign_nonce_store_free(ns);
}

/* ------------------------------------------------------------- helpers */

static struct reqsign_signer *test_signer(int path_as_is)
{
    struct reqsign_signer_opts o;
    struct reqsign_error err;
    char *path = tu_path(KEY_PEM);
    memset(&o, 0, sizeof(o));
    o.key_file = path;
    o.key_flags = REQSIGN_KEY_ALLOW_PERMISSIVE;
    o.path_as_is = path_as_is;
    reqsign_error_clear(&err);
    struct reqsign_signer *s = reqsign_signer_new(&o, &err);
    cr_assert_not_null(s, "%s", err.message);
    free(path);
    return s;
}

/* One transfer of @r through the echo server; checks the wire. @w keeps the
 * method, target and Host sent (its header and body spans are cleared).
 * @connect_to (may be NULL) is a CURLOPT_CONNECT_TO list: the URL keeps its
 * host and port, the connection goes to the echo server. */
static void roundtrip(const struct reqsign_signer *s, struct reqsign_curl_request *r,
                      struct wire *w, struct curl_slist *connect_to)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "X-Test: 1");
    struct reqsign_curl_upload *up = NULL;
    struct reqsign_signed sig;
    struct reqsign_error err;
    struct sbuf b = {NULL, 0};
    char base[BASE_CAP];

    memset(&sig, 0, sizeof(sig));
    sig.base_buf = base;
    sig.base_cap = sizeof(base);
    r->out = &sig;
    reqsign_error_clear(&err);
    enum reqsign_status st = reqsign_curl_prepare(s, h, r, &hdrs, &up, &err);
    cr_assert_eq(st, REQSIGN_OK, "%s: %s: %s", r->url, reqsign_errname(st), err.message);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
    if (connect_to != NULL)
        curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_to);
    CURLcode cc = curl_easy_perform(h);
    cr_assert_eq(cc, CURLE_OK, "%s: %s", r->url, curl_easy_strerror(cc));
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    cr_assert_eq(code, 200);
    cr_assert_not_null(b.b, "%s: empty echo", r->url);
    check_wire(b.b, b.n, &sig, w);
    /* the caller's own field was kept, and Expect was suppressed */
    int saw_test = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (w->h[i].name.len == 6 && strncasecmp(w->h[i].name.ptr, "X-Test", 6) == 0)
            saw_test = 1;
        cr_assert(!(w->h[i].name.len == 6 && strncasecmp(w->h[i].name.ptr, "Expect", 6) == 0),
                  "Expect sent");
    }
    cr_assert(saw_test, "the caller's header field was dropped");
    reqsign_curl_upload_free(up);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(b.b);
    w->body = NULL;
    w->n = 0;
}

static void init_curl(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void fini_curl(void)
{
    curl_global_cleanup();
}

TestSuite(client, .init = init_curl, .fini = fini_curl, .timeout = 120);

/* ---------------------------------------------------------- URL proof */

struct url_case {
    const char *path; /* appended to http://HOST:PORT */
    const char *method;
    int path_as_is;
    const char *want_target; /* what must appear on the request line; NULL: no check */
};

/* Each case through the echo server; @want_authority (NULL: no check) is the
 * Host that must be sent; @connect_to as in roundtrip(). */
static void run_cases(const char *hostport, const struct url_case *cases, size_t n,
                      const char *want_authority, struct curl_slist *connect_to)
{
    struct reqsign_signer *s0 = test_signer(0), *s1 = test_signer(1);
    for (size_t i = 0; i < n; i++) {
        char url[512];
        struct reqsign_curl_request r;
        struct wire w;
        snprintf(url, sizeof(url), "http://%s%s", hostport, cases[i].path);
        memset(&r, 0, sizeof(r));
        r.method = cases[i].method;
        r.url = url;
        if (cases[i].method != NULL && strcmp(cases[i].method, "POST") == 0) {
            r.body = "{\"hello\": \"world\"}";
            r.body_len = strlen(r.body);
        }
        roundtrip(cases[i].path_as_is ? s1 : s0, &r, &w, connect_to);
        /* roundtrip() checked that the verifier's base (its @authority from
         * this Host) is the signed one */
        if (want_authority != NULL)
            cr_assert_str_eq(w.host, want_authority, "%s: Host sent", url);
        if (cases[i].want_target != NULL)
            cr_assert_str_eq(w.target, cases[i].want_target, "%s", url);
        cr_log_info("%-40s -> %s %s (Host: %s)", url, w.method, w.target, w.host);
    }
    reqsign_signer_free(s0);
    reqsign_signer_free(s1);
}

static const struct url_case CASES[] = {
    {"/plain", NULL, 0, "/plain"},
    {"", NULL, 0, "/"},
    {"/a/b/../c/./d", NULL, 0, "/a/c/d"},
    {"/a/b/../c/./d", NULL, 1, "/a/b/../c/./d"},
    {"/a/%2e%2E/b", NULL, 0, NULL},
    {"/a/%2e%2E/b", NULL, 1, NULL},
    {"/x/%41%2f%7e%20y", NULL, 0, "/x/%41%2f%7e%20y"},
    {"/q?b=2&a=1&c=%2F&d", NULL, 0, "/q?b=2&a=1&c=%2F&d"},
    {"/q?", NULL, 0, NULL},
    {"/q?#frag", NULL, 0, NULL},
    {"/frag#only", NULL, 0, "/frag"},
    {"/../../up", NULL, 0, NULL},
    {"/..", NULL, 1, "/.."},
    {"//double//slash/", NULL, 0, "//double//slash/"},
    {"/post?x=1", "POST", 0, "/post?x=1"},
    {"/put", "PUT", 0, "/put"},
    {"/del/1", "DELETE", 0, "/del/1"},
    {"/patch", "PATCH", 0, "/patch"},
    {"/opt", "OPTIONS", 0, "/opt"},
};

Test(client, url_proof_ipv4)
{
    struct echo e;
    cr_assert_eq(echo_start(&e, AF_INET, 0), 0);
    char hp[64];
    snprintf(hp, sizeof(hp), "127.0.0.1:%d", e.port);
    run_cases(hp, CASES, sizeof(CASES) / sizeof(CASES[0]), NULL, NULL);
    /* userinfo is not part of @authority; upper-case host names are lowered */
    snprintf(hp, sizeof(hp), "user:pw@127.0.0.1:%d", e.port);
    static const struct url_case more[] = {{"/ui", NULL, 0, "/ui"}};
    run_cases(hp, more, 1, NULL, NULL);
    snprintf(hp, sizeof(hp), "LOCALHOST:%d", e.port);
    run_cases(hp, more, 1, NULL, NULL);
    echo_stop(&e);
}

Test(client, url_proof_ipv6)
{
    struct echo e;
    /* no skip: a host without an IPv6 loopback fails here, visibly */
    cr_assert_eq(echo_start(&e, AF_INET6, 0), 0,
                 "cannot listen on [::1] (%s): this test needs an IPv6 loopback", strerror(errno));
    char hp[64];
    snprintf(hp, sizeof(hp), "[::1]:%d", e.port);
    run_cases(hp, CASES, 8, NULL, NULL);
    /* the IPv6 literal keeps its brackets and its port in Host and @authority */
    static const struct url_case c[] = {{"/v6?x=1", "POST", 0, "/v6?x=1"}};
    run_cases(hp, c, 1, hp, NULL);
    echo_stop(&e);
}

Test(client, url_proof_default_port)
{
    /* The URLs name port 80 (explicitly and by default); libcurl connects to
     * the echo server's ephemeral port instead (CURLOPT_CONNECT_TO), so this
     * needs neither root nor a free port 80. Host and @authority drop :80. */
    struct echo e;
    cr_assert_eq(echo_start(&e, AF_INET, 0), 0);
    char to[64];
    snprintf(to, sizeof(to), "127.0.0.1:80:127.0.0.1:%d", e.port);
    struct curl_slist *connect_to = curl_slist_append(NULL, to);
    cr_assert_not_null(connect_to);
    static const struct url_case c[] = {{"/dp?x=1", NULL, 0, "/dp?x=1"}, {"/dp", "POST", 0, "/dp"}};
    run_cases("127.0.0.1:80", c, 2, "127.0.0.1", connect_to);
    run_cases("127.0.0.1", c, 2, "127.0.0.1", connect_to);
    curl_slist_free_all(connect_to);
    echo_stop(&e);
}

Test(client, head_request)
{
    struct echo e;
    cr_assert_eq(echo_start(&e, AF_INET, 0), 0);
    struct reqsign_signer *s = test_signer(0);
    char url[128], base[BASE_CAP];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/head?x", e.port);
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct reqsign_signed sig;
    struct reqsign_curl_request r;
    memset(&sig, 0, sizeof(sig));
    memset(&r, 0, sizeof(r));
    sig.base_buf = base;
    sig.base_cap = sizeof(base);
    r.method = "HEAD";
    r.url = url;
    r.out = &sig;
    cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, NULL), REQSIGN_OK);
    cr_assert_eq(curl_easy_perform(h), CURLE_OK);
    pthread_mutex_lock(&e.mu);
    struct wire w;
    check_wire(e.last, e.last_len, &sig, &w);
    cr_assert_str_eq(w.method, "HEAD");
    pthread_mutex_unlock(&e.mu);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    reqsign_signer_free(s);
    echo_stop(&e);
}

/* -------------------------------------------------------- multi handle */

Test(client, multi_three_requests)
{
    struct echo e;
    cr_assert_eq(echo_start(&e, AF_INET, 0), 0);
    struct reqsign_signer *s = test_signer(0);
    static const char *const methods[3] = {"GET", "POST", "DELETE"};
    static const char *const paths[3] = {"/m/1?a=b", "/m/./2/../two", "/m/3?"};
    static const char body[] = "{\"n\":2}";
    CURL *h[3];
    struct curl_slist *hdrs[3] = {NULL, NULL, NULL};
    struct reqsign_signed sig[3];
    char base[3][BASE_CAP], url[3][128];
    struct sbuf b[3];
    CURLM *m = curl_multi_init();

    for (int i = 0; i < 3; i++) {
        struct reqsign_curl_request r;
        h[i] = curl_easy_init();
        memset(&r, 0, sizeof(r));
        memset(&sig[i], 0, sizeof(sig[i]));
        b[i].b = NULL;
        b[i].n = 0;
        sig[i].base_buf = base[i];
        sig[i].base_cap = sizeof(base[i]);
        snprintf(url[i], sizeof(url[i]), "http://127.0.0.1:%d%s", e.port, paths[i]);
        r.method = methods[i];
        r.url = url[i];
        if (i == 1) {
            r.body = body;
            r.body_len = sizeof(body) - 1;
        }
        r.out = &sig[i];
        cr_assert_eq(reqsign_curl_prepare(s, h[i], &r, &hdrs[i], NULL, NULL), REQSIGN_OK);
        curl_easy_setopt(h[i], CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h[i], CURLOPT_WRITEDATA, &b[i]);
        curl_multi_add_handle(m, h[i]);
    }
    int running = 1;
    while (running) {
        cr_assert_eq(curl_multi_perform(m, &running), CURLM_OK);
        if (running)
            curl_multi_poll(m, NULL, 0, 200, NULL);
    }
    int msgs, done = 0;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(m, &msgs)) != NULL) {
        cr_assert_eq(msg->data.result, CURLE_OK, "%s", curl_easy_strerror(msg->data.result));
        done++;
    }
    cr_assert_eq(done, 3);
    for (int i = 0; i < 3; i++) {
        struct wire w;
        cr_assert_not_null(b[i].b);
        check_wire(b[i].b, b[i].n, &sig[i], &w);
        cr_assert_str_eq(w.method, methods[i]);
        curl_multi_remove_handle(m, h[i]);
        curl_easy_cleanup(h[i]);
        curl_slist_free_all(hdrs[i]);
        free(b[i].b);
    }
    curl_multi_cleanup(m);
    cr_assert_eq(e.count, 3);
    reqsign_signer_free(s);
    echo_stop(&e);
}

/* ------------------------------------- caller's read callback + digest */

struct src {
    const char *p;
    size_t len, pos;
};

static size_t src_read(char *d, size_t size, size_t n, void *ud)
{
    struct src *s = ud;
    size_t k = size * n;
    if (k > s->len - s->pos)
        k = s->len - s->pos;
    if (k > 7)
        k = 7; /* small reads on purpose */
    memcpy(d, s->p + s->pos, k);
    s->pos += k;
    return k;
}

Test(client, read_callback_with_precomputed_digest)
{
    struct echo e;
    cr_assert_eq(echo_start(&e, AF_INET, 0), 0);
    struct reqsign_signer *s = test_signer(0);
    static const char body[] = "{\"streamed\": \"by the caller, in pieces\"}";
    char digest[REQSIGN_CONTENT_DIGEST_OUT_BUF], base[BASE_CAP], url[128];
    size_t dl;
    struct reqsign_digest d;
    cr_assert_eq(reqsign_digest_init(&d, REQSIGN_DIGEST_SHA256, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_update(&d, body, 10, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_update(&d, body + 10, sizeof(body) - 11, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_digest_final(&d, digest, sizeof(digest), &dl, NULL, NULL, NULL),
                 REQSIGN_OK);

    static const char *const methods[] = {"PATCH", "POST", "PUT"};
    for (size_t i = 0; i < 3; i++) {
        CURL *h = curl_easy_init();
        struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
        struct src src = {body, sizeof(body) - 1, 0};
        struct sbuf b = {NULL, 0};
        struct reqsign_signed sig;
        struct reqsign_curl_request r;
        memset(&sig, 0, sizeof(sig));
        memset(&r, 0, sizeof(r));
        sig.base_buf = base;
        sig.base_cap = sizeof(base);
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/stream/%zu", e.port, i);
        /* the caller sets its body first ... */
        if (strcmp(methods[i], "PUT") == 0) {
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)src.len);
        } else {
            curl_easy_setopt(h, CURLOPT_POST, 1L);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)src.len);
        }
        curl_easy_setopt(h, CURLOPT_READFUNCTION, src_read);
        curl_easy_setopt(h, CURLOPT_READDATA, &src);
        /* ... and signs with the digest it computed */
        r.method = methods[i];
        r.url = url;
        r.content_digest = digest;
        r.out = &sig;
        cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, NULL), REQSIGN_OK);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        cr_assert_eq(curl_easy_perform(h), CURLE_OK);
        struct wire w;
        check_wire(b.b, b.n, &sig, &w);
        cr_assert_str_eq(w.method, methods[i]);
        free(b.b);
        curl_slist_free_all(hdrs);
        curl_easy_cleanup(h);
    }
    reqsign_signer_free(s);
    echo_stop(&e);
}

/* ------------------------------------------------------ file streaming */

static char *big_file(const char *dir, size_t size)
{
    size_t n = strlen(dir) + 16;
    char *p = malloc(n);
    snprintf(p, n, "%s/body.bin", dir);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    uint32_t x = 12345;
    for (size_t i = 0; i < size; i++) {
        x = x * 1103515245u + 12345u;
        fputc((int)(x >> 24), f);
    }
    fclose(f);
    return p;
}

Test(client, file_streaming)
{
    struct echo e;
    cr_assert_eq(echo_start(&e, AF_INET, 0), 0);
    struct reqsign_signer *s = test_signer(0);
    char *dir = tu_tmpdir();
    char *path = big_file(dir, (size_t)3 * 1024 * 1024 + 17);
    static const char *const methods[] = {"POST", "PUT", "PATCH"};
    for (size_t i = 0; i < 3; i++) {
        char url[128];
        struct reqsign_curl_request r;
        struct wire w;
        snprintf(url, sizeof(url), "http://127.0.0.1:%d/upload", e.port);
        memset(&r, 0, sizeof(r));
        r.method = methods[i];
        r.url = url;
        r.body_file = path;
        roundtrip(s, &r, &w, NULL);
        cr_assert_str_eq(w.method, methods[i]);
    }
    /* a file body needs the upload out-parameter; a missing file is E_IO */
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = NULL;
    struct reqsign_curl_upload *up = (struct reqsign_curl_upload *)1;
    struct reqsign_curl_request r;
    struct reqsign_error err;
    memset(&r, 0, sizeof(r));
    r.url = "http://127.0.0.1:1/x";
    r.body_file = path;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, &err), REQSIGN_E_INVALID_ARG);
    r.body_file = "/nonexistent/body";
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, &up, &err), REQSIGN_E_IO);
    cr_assert_null(up);
    cr_assert_null(hdrs);
    curl_easy_cleanup(h);
    unlink(path);
    rmdir(dir);
    free(path);
    free(dir);
    reqsign_signer_free(s);
    echo_stop(&e);
}

/* ------------------------------------------------------ argument checks */

Test(client, prepare_argument_checks)
{
    struct reqsign_signer *s = test_signer(0);
    CURL *h = curl_easy_init();
    struct reqsign_curl_request r;
    struct reqsign_error err;
    static const char *const taken[] = {"Signature: x", "content-digest: y", "Signature-Input;"};
    memset(&r, 0, sizeof(r));
    r.url = "http://example.com/";
    for (size_t i = 0; i < 3; i++) {
        struct curl_slist *hdrs = curl_slist_append(NULL, "Accept: */*");
        hdrs = curl_slist_append(hdrs, taken[i]);
        reqsign_error_clear(&err);
        cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, &err), REQSIGN_E_INVALID_ARG);
        cr_assert_null(hdrs->next->next, "the caller's list must be left as it was");
        curl_slist_free_all(hdrs);
    }
    /* the caller's Expect is kept and ours not added */
    struct curl_slist *hdrs = curl_slist_append(NULL, "Expect: 100-continue");
    cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, NULL), REQSIGN_OK);
    int n = 0, expect = 0;
    for (struct curl_slist *l = hdrs; l != NULL; l = l->next, n++)
        expect += strncasecmp(l->data, "Expect", 6) == 0;
    cr_assert_eq(n, 4);
    cr_assert_eq(expect, 1);
    curl_slist_free_all(hdrs);
    /* without it: ours is "Expect:" */
    hdrs = NULL;
    cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, NULL), REQSIGN_OK);
    n = 0;
    for (struct curl_slist *l = hdrs; l != NULL; l = l->next, n++)
        if (l->next == NULL)
            cr_assert_str_eq(l->data, "Expect:");
    cr_assert_eq(n, 4);
    curl_slist_free_all(hdrs);
    /* two bodies, body_len without body, a bad URL, a bad method */
    hdrs = NULL;
    r.body = "a";
    r.body_len = 1;
    r.content_digest = "sha-256=:x:";
    cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, NULL), REQSIGN_E_INVALID_ARG);
    r.content_digest = NULL;
    r.body = NULL;
    cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, NULL), REQSIGN_E_INVALID_ARG);
    r.body_len = 0;
    r.url = "http://exa mple.com/";
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, &err), REQSIGN_E_URL);
    r.url = "ftp://example.com/";
    cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, NULL), REQSIGN_E_URL);
    r.url = "http://example.com/";
    r.method = "GE T";
    cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, NULL), REQSIGN_E_INVALID_ARG);
    cr_assert_null(hdrs);
    cr_assert_eq(reqsign_curl_prepare(NULL, h, &r, &hdrs, NULL, NULL), REQSIGN_E_INVALID_ARG);
    curl_easy_cleanup(h);
    reqsign_signer_free(s);
    reqsign_curl_upload_free(NULL);
}

/* --------------------------------------------- reqsign send (echo server) */

static char *run(int *status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *run(int *status, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    int n = snprintf(cmd, sizeof(cmd), "R='%s'; ", tu_cli());
    va_start(ap, fmt);
    int m = vsnprintf(cmd + n, sizeof(cmd) - (size_t)n, fmt, ap);
    va_end(ap);
    cr_assert(m > 0 && (size_t)m < sizeof(cmd) - (size_t)n, "command too long");
    return tu_run(cmd, status);
}

Test(client, cli_send_against_echo)
{
    struct echo e;
    cr_assert_eq(echo_start(&e, AF_INET, 0), 0);
    char *dir = tu_tmpdir();
    char *key = tu_path(KEY_PEM);
    int st;
    /* copy the key with mode 0600 */
    char *out = run(&st, "cp '%s' '%s/k.pem' && chmod 600 '%s/k.pem'", key, dir, dir);
    cr_assert_eq(st, 0);
    free(out);

    out = run(&st, "$R send --key '%s/k.pem' -H 'X-Test: 1' 'http://127.0.0.1:%d/a/../b?q=1'", dir,
              e.port);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strncmp(out, "GET /b?q=1 HTTP/1.1\r\n", 21) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\r\nX-Test: 1\r\n"), "the -H field is sent: %s", out);
    free(out);

    /* -v prints the signature base to stderr; the wire matches it */
    out = run(&st,
              "REQSIGN_CREDENTIAL='%s/k.pem' $R send -v -d '{\"a\":1}' "
              "'http://127.0.0.1:%d/v?z' 2>'%s/err' >'%s/out'; echo $?",
              dir, e.port, dir, dir);
    cr_assert_str_eq(out, "0\n");
    free(out);
    out = run(&st, "cat '%s/err'", dir);
    cr_assert_not_null(strstr(out, "\"@path\": /v\n"), "%s", out);
    cr_assert_not_null(strstr(out, "\"@method\": POST\n"), "%s", out);
    cr_assert_not_null(strstr(out, "> Signature-Input: sig1="), "%s", out);
    free(out);

    /* --data @FILE streams the file */
    out = run(&st,
              "printf 'file body' > '%s/body' && $R send --key '%s/k.pem' -X PUT "
              "--data @'%s/body' 'http://127.0.0.1:%d/f' | tail -c 9",
              dir, dir, dir, e.port);
    cr_assert_eq(st, 0);
    cr_assert_str_eq(out, "file body");
    free(out);

    /* -i: status line and headers first */
    out = run(&st, "$R send -i --key '%s/k.pem' 'http://127.0.0.1:%d/i'", dir, e.port);
    cr_assert_eq(st, 0);
    cr_assert(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\r\n\r\nGET /i HTTP/1.1\r\n"), "%s", out);
    free(out);

    /* permissions, usage and transport errors */
    out = run(&st, "chmod 644 '%s/k.pem'; $R send --key '%s/k.pem' http://127.0.0.1:%d/ 2>&1", dir,
              dir, e.port);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "chmod 600"), "%s", out);
    free(out);
    out = run(&st, "$R send --insecure-key-permissions --key '%s/k.pem' http://127.0.0.1:%d/ok",
              dir, e.port);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    out = run(&st, "unset REQSIGN_CREDENTIAL; $R send http://127.0.0.1:%d/ 2>&1", e.port);
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    out = run(&st, "$R send --key '%s/k.pem' 2>&1", dir);
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    out = run(&st, "$R send --key '%s/k.pem' -H 'Signature: x' http://127.0.0.1:1/ 2>&1", dir);
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    out = run(&st, "$R send --bogus 2>&1");
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    /* a transport failure exits with curl's code: 7, could not connect */
    out = run(&st, "$R send --insecure-key-permissions --key '%s/k.pem' http://127.0.0.1:1/ 2>&1",
              dir);
    cr_assert_eq(st, 7, "%s", out);
    cr_assert_not_null(strstr(out, "error: http"), "%s", out);
    free(out);
    out = run(&st, "$R help send && $R keys --help");
    cr_assert_eq(st, 0);
    cr_assert_not_null(strstr(out, "usage: reqsign send"));
    cr_assert_not_null(strstr(out, "usage: reqsign keys"));
    free(out);

    out = run(&st, "rm -rf '%s'", dir);
    free(out);
    free(key);
    free(dir);
    echo_stop(&e);
}

/* ----------------------- reqsign send as curl (issue 16, items 10, 11, 13) */

/* A verifying server: each request is verified as api-backend would (its
 * authorities, a nonce store shared by all requests, a clock that may be set
 * off by @clock_offset). A request that fails gets the verifier's 401/400 and
 * JSON error (with server_time for clock errors); the n-th verified request
 * gets answers[min(n, n_answers - 1)], a raw response. A log line per
 * request: "<status> <method> <target> <error or ->". */
struct vsrv {
    int fd, port;
    pthread_t thread;
    volatile int stop;
    pthread_mutex_t mu;
    int64_t clock_offset;
    char auth[2][64];
    const char *answers[8];
    int n_answers, verified;
    char log[4096];
    struct reqsign_nonce_store *ns;
    struct reqsign_verifier *v;
    uint8_t pk[32];
};

static int64_t vsrv_clock(void *ctx)
{
    const struct vsrv *s = ctx;
    return (int64_t)time(NULL) + s->clock_offset;
}

static void *vsrv_main(void *arg)
{
    struct vsrv *s = arg;
    while (!s->stop) {
        struct pollfd pfd = {s->fd, POLLIN, 0};
        if (poll(&pfd, 1, 50) <= 0)
            continue;
        int c = accept(s->fd, NULL, NULL);
        if (c < 0)
            continue;
        char *raw = NULL;
        size_t len = 0;
        if (read_request(c, &raw, &len) == 0) {
            struct wire w;
            parse_wire(raw, len, &w);
            struct reqsign_request req;
            req.method = (struct reqsign_span){w.method, strlen(w.method)};
            req.scheme = (struct reqsign_span){"http", 4};
            req.authority = (struct reqsign_span){w.host, strlen(w.host)};
            req.target = (struct reqsign_span){w.target, strlen(w.target)};
            req.headers = w.h;
            req.n_headers = w.n;
            struct reqsign_verification vs;
            struct reqsign_error err;
            reqsign_error_clear(&err);
            reqsign_verification_init(&vs);
            enum reqsign_status st =
                reqsign_verifier_verify(s->v, &req, w.body, w.body_len, &vs, &err);
            reqsign_verification_cleanup(&vs);
            char resp[2048];
            const char *answer = resp;
            pthread_mutex_lock(&s->mu);
            if (st != REQSIGN_OK) {
                char json[512];
                if (reqsign_error_json(&err, vsrv_clock(s), json, sizeof(json), NULL) != REQSIGN_OK)
                    snprintf(json, sizeof(json), "{}");
                snprintf(resp, sizeof(resp),
                         "HTTP/1.1 %d Error\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         reqsign_http_status(st), strlen(json), json);
            } else {
                answer = s->answers[s->verified < s->n_answers ? s->verified : s->n_answers - 1];
                s->verified++;
            }
            size_t ll = strlen(s->log);
            snprintf(s->log + ll, sizeof(s->log) - ll, "%s %s %s %s\n",
                     st != REQSIGN_OK ? "reject" : "ok", w.method, w.target,
                     st != REQSIGN_OK ? reqsign_errname(st) : "-");
            pthread_mutex_unlock(&s->mu);
            write_all(c, answer, strlen(answer));
            free(raw);
        }
        shutdown(c, SHUT_WR);
        close(c);
    }
    return NULL;
}

/* Answers: a NULL-terminated list. Authorities: 127.0.0.1:PORT and
 * @other_host:PORT (for the public-name tests). */
static void vsrv_start(struct vsrv *s, const char *other_host, int64_t clock_offset,
                       const char *const *answers)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->clock_offset = clock_offset;
    for (s->n_answers = 0; answers[s->n_answers] != NULL; s->n_answers++)
        s->answers[s->n_answers] = answers[s->n_answers];
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    cr_assert_geq(s->fd, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(a);
    cr_assert_eq(bind(s->fd, (struct sockaddr *)&a, sl), 0);
    cr_assert_eq(listen(s->fd, 16), 0);
    getsockname(s->fd, (struct sockaddr *)&a, &sl);
    s->port = ntohs(a.sin_port);

    struct reqsign_key *k = NULL;
    char *path = tu_path(KEY_PEM);
    cr_assert_not_null(k = reqsign_key_load_file(path, REQSIGN_KEY_ALLOW_PERMISSIVE, NULL));
    free(path);
    reqsign_key_public_raw(k, s->pk);
    reqsign_key_free(k);
    static struct reqsign_static_key sk;
    memset(&sk, 0, sizeof(sk));
    memcpy(sk.public_key, s->pk, 32);
    snprintf(s->auth[0], sizeof(s->auth[0]), "127.0.0.1:%d", s->port);
    snprintf(s->auth[1], sizeof(s->auth[1]), "%s:%d", other_host, s->port);
    static const char *auths[2];
    auths[0] = s->auth[0];
    auths[1] = s->auth[1];
    s->ns = reqsign_nonce_store_memory_new(NULL, NULL);
    struct reqsign_verifier_opts vo;
    memset(&vo, 0, sizeof(vo));
    vo.lookup = reqsign_static_key_lookup;
    vo.lookup_ctx = &sk;
    vo.nonces = s->ns;
    vo.authorities = auths;
    vo.n_authorities = 2;
    vo.clock = vsrv_clock;
    vo.clock_ctx = s;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    s->v = reqsign_verifier_new(&vo, &err);
    cr_assert_not_null(s->v, "%s", err.message);
    cr_assert_eq(pthread_create(&s->thread, NULL, vsrv_main, s), 0);
}

static char *vsrv_log(struct vsrv *s)
{
    pthread_mutex_lock(&s->mu);
    char *l = strdup(s->log);
    pthread_mutex_unlock(&s->mu);
    return l;
}

static void vsrv_stop(struct vsrv *s)
{
    s->stop = 1;
    pthread_join(s->thread, NULL);
    close(s->fd);
    reqsign_verifier_free(s->v);
    reqsign_nonce_store_free(s->ns);
    pthread_mutex_destroy(&s->mu);
}

#define OK_BODY(b)                                                                                 \
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " #b "\r\n"                    \
    "Connection: close\r\n\r\n"

/* a 0600 copy of the test key in a fresh directory */
static char *key_dir(void)
{
    char *dir = tu_tmpdir();
    char *key = tu_path(KEY_PEM);
    int st;
    char *out = run(&st, "cp '%s' '%s/k.pem' && chmod 600 '%s/k.pem'", key, dir, dir);
    cr_assert_eq(st, 0);
    free(out);
    free(key);
    return dir;
}

static void rm_dir(char *dir)
{
    char *out = run(NULL, "rm -rf '%s'", dir);
    free(out);
    free(dir);
}

/* --max-time: a server that accepts and never answers; exit 28 within the bound */
Test(client, send_max_time_never_answers)
{
    char *dir = key_dir();
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof(a);
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sl), 0);
    cr_assert_eq(listen(fd, 4), 0); /* the kernel completes the handshake; nobody reads */
    getsockname(fd, (struct sockaddr *)&a, &sl);
    int st;
    time_t t0 = time(NULL);
    char *out =
        run(&st, "timeout 20 $R send --max-time 1.5 --key '%s/k.pem' http://127.0.0.1:%d/ 2>&1",
            dir, ntohs(a.sin_port));
    time_t t1 = time(NULL);
    cr_assert_eq(st, 28, "exit %d: %s", st, out);
    cr_assert_leq(t1 - t0, 5, "took %ld s", (long)(t1 - t0));
    cr_assert_not_null(strstr(out, "error: http"), "%s", out);
    free(out);
    /* -s: no message, the status still says it */
    out = run(&st, "timeout 20 $R send -s -m 0.5 --key '%s/k.pem' http://127.0.0.1:%d/ 2>&1", dir,
              ntohs(a.sin_port));
    cr_assert_eq(st, 28, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "");
    free(out);
    /* -sS: the error message all the same */
    out = run(&st, "timeout 20 $R send -sS -m 0.5 --key '%s/k.pem' http://127.0.0.1:%d/ 2>&1", dir,
              ntohs(a.sin_port));
    cr_assert_eq(st, 28, "exit %d: %s", st, out);
    cr_assert_not_null(strstr(out, "error: http"), "%s", out);
    free(out);
    /* --connect-timeout: a listener whose accept queue is full drops the SYN */
    int full = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in fa;
    memset(&fa, 0, sizeof(fa));
    fa.sin_family = AF_INET;
    fa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t fl = sizeof(fa);
    cr_assert_eq(bind(full, (struct sockaddr *)&fa, fl), 0);
    cr_assert_eq(listen(full, 0), 0);
    getsockname(full, (struct sockaddr *)&fa, &fl);
    int fillers[3];
    for (int k = 0; k < 3; k++) {
        fillers[k] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        (void)connect(fillers[k], (struct sockaddr *)&fa, fl);
    }
    usleep(300 * 1000);
    t0 = time(NULL);
    out = run(&st,
              "timeout 20 $R send --connect-timeout 1 --key '%s/k.pem' http://127.0.0.1:%d/ 2>&1",
              dir, ntohs(fa.sin_port));
    t1 = time(NULL);
    cr_assert_eq(st, 28, "exit %d: %s", st, out);
    cr_assert_leq(t1 - t0, 5, "took %ld s", (long)(t1 - t0));
    free(out);
    for (int k = 0; k < 3; k++)
        close(fillers[k]);
    close(full);
    /* connection refused: 7, as curl */
    out = run(&st, "$R send --key '%s/k.pem' http://127.0.0.1:1/ 2>&1", dir);
    cr_assert_eq(st, 7, "exit %d: %s", st, out);
    free(out);
    close(fd);
    rm_dir(dir);
}

/* -f, -w, -o, -I, -iv, -i with an error status all on stdout */
Test(client, send_curl_output_options)
{
    static const char *const answers[] = {OK_BODY(5) "hello", NULL};
    struct vsrv s;
    vsrv_start(&s, "localhost", 0, answers);
    char *dir = key_dir();
    int st;
    char *out;

    /* -w '%{http_code}' after the body */
    out = run(&st,
              "$R send --key '%s/k.pem' -w '|%%{http_code}|%%{num_redirects}\\n' "
              "http://127.0.0.1:%d/w",
              dir, s.port);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_str_eq(out, "hello|200|0\n");
    free(out);

    /* -o FILE: the body there, nothing on stdout */
    out = run(&st, "$R send --key '%s/k.pem' -o '%s/o.txt' http://127.0.0.1:%d/o && cat '%s/o.txt'",
              dir, dir, s.port, dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_str_eq(out, "hello");
    free(out);

    /* -I: HEAD, the head printed */
    out = run(&st, "$R send -I --key '%s/k.pem' http://127.0.0.1:%d/h", dir, s.port);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", out);
    cr_assert_null(strstr(out, "hello"), "%s", out);
    free(out);

    /* -iv combined: the head on stdout, the signature base on stderr */
    out = run(&st, "$R send -iv --key '%s/k.pem' http://127.0.0.1:%d/iv 2>'%s/err'", dir, s.port,
              dir);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(strncmp(out, "HTTP/1.1 200 OK\r\n", 17) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\r\n\r\nhello"), "%s", out);
    free(out);
    out = run(&st, "cat '%s/err'", dir);
    cr_assert_not_null(strstr(out, "\"@path\": /iv\n"), "%s", out);
    free(out);
    /* -sXPUT: a value flag at the end of a group */
    out = run(&st, "$R send -sXPUT --key '%s/k.pem' http://127.0.0.1:%d/put", dir, s.port);
    cr_assert_eq(st, 0, "%s", out);
    free(out);

    /* an error status: -f exits 22 and prints no body; -i puts it all on stdout */
    out = run(&st,
              "$R send -f --key '%s/k.pem' -H 'X-A: 1' http://127.0.0.1:%d/a/../b?x 2>/dev/null; "
              "echo \" exit=$?\"",
              dir, s.port);
    cr_assert_str_eq(out, "hello exit=0\n");
    free(out);
    /* other.test is not an authority of the server: a 4xx error */
    out = run(&st,
              "$R send -f -w '%%{http_code}' --key '%s/k.pem' --resolve other.test:%d:127.0.0.1 "
              "http://other.test:%d/ 2>/dev/null",
              dir, s.port, s.port);
    cr_assert_eq(st, 22, "exit %d: %s", st, out);
    cr_assert(strcmp(out, "401") == 0 || strcmp(out, "400") == 0, "%s", out);
    free(out);
    out = run(&st,
              "$R send -i --key '%s/k.pem' --resolve other.test:%d:127.0.0.1 "
              "http://other.test:%d/ 2>/dev/null",
              dir, s.port, s.port);
    cr_assert_eq(st, 1, "exit %d: %s", st, out);
    cr_assert(strncmp(out, "HTTP/1.1 4", 10) == 0, "%s", out);
    cr_assert_not_null(strstr(out, "\r\n\r\n{\"error\":"), "%s", out);
    free(out);

    char *log = vsrv_log(&s);
    cr_assert_not_null(strstr(log, "ok HEAD /h -\n"), "%s", log);
    cr_assert_not_null(strstr(log, "ok PUT /put -\n"), "%s", log);
    free(log);
    rm_dir(dir);
    vsrv_stop(&s);
}

/* -H 'Host:' is refused, naming --resolve; --resolve and --connect-to sign
 * for the public name and connect to 127.0.0.1 */
Test(client, send_resolve_connect_to_and_host_header)
{
    static const char *const answers[] = {OK_BODY(2) "ok", NULL};
    struct vsrv s;
    vsrv_start(&s, "api.example.test", 0, answers);
    char *dir = key_dir();
    int st;
    char *out = run(&st,
                    "$R send --key '%s/k.pem' -H 'Host: api.example.test:%d' "
                    "http://127.0.0.1:%d/ 2>&1",
                    dir, s.port, s.port);
    cr_assert_eq(st, 2, "exit %d: %s", st, out);
    cr_assert_not_null(strstr(out, "--resolve"), "%s", out);
    free(out);

    out = run(&st,
              "$R send --key '%s/k.pem' --resolve api.example.test:%d:127.0.0.1 "
              "http://api.example.test:%d/r 2>&1",
              dir, s.port, s.port);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "ok");
    free(out);
    out = run(&st,
              "$R send --key '%s/k.pem' --connect-to api.example.test:%d:127.0.0.1:%d "
              "http://api.example.test:%d/c 2>&1",
              dir, s.port, s.port, s.port);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "ok");
    free(out);
    /* without them the name does not resolve: 6, as curl */
    out = run(&st, "$R send --key '%s/k.pem' http://api.example.test:%d/ 2>&1", dir, s.port);
    cr_assert_eq(st, 6, "exit %d: %s", st, out);
    free(out);
    char *log = vsrv_log(&s);
    cr_assert_not_null(strstr(log, "ok GET /r -\nok GET /c -\n"), "%s", log);
    free(log);
    rm_dir(dir);
    vsrv_stop(&s);
}

/* -L: each hop signed again for its own URL (another host here); --max-redirs */
Test(client, send_location_resigns_each_hop)
{
    char loc[256];
    struct vsrv s;
    static const char *answers[3];
    answers[0] = loc;
    answers[1] = OK_BODY(6) "second";
    answers[2] = NULL;
    vsrv_start(&s, "api.example.test", 0, answers);
    snprintf(loc, sizeof(loc),
             "HTTP/1.1 302 Found\r\nLocation: http://api.example.test:%d/second\r\n"
             "Content-Length: 5\r\nConnection: close\r\n\r\nmoved",
             s.port);
    char *dir = key_dir();
    int st;
    /* -L alone does not sign for another origin: the 302 is the answer */
    char *out = run(&st,
                    "$R send -L --key '%s/k.pem' --resolve api.example.test:%d:127.0.0.1 "
                    "-w '%%{http_code}' http://127.0.0.1:%d/first 2>'%s/err'",
                    dir, s.port, s.port, dir);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "moved302");
    free(out);
    out = run(&st, "cat '%s/err'", dir);
    cr_assert_not_null(strstr(out, "--location-trusted"), "%s", out);
    free(out);
    s.verified = 0;
    out = run(&st,
              "$R send -L --location-trusted --key '%s/k.pem' "
              "--resolve api.example.test:%d:127.0.0.1 -w ' %%{num_redirects} %%{url_effective}' "
              "-d 'x=1' "
              "http://127.0.0.1:%d/first 2>&1",
              dir, s.port, s.port);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    char want[256];
    snprintf(want, sizeof(want), "second 1 http://api.example.test:%d/second", s.port);
    cr_assert_str_eq(out, want);
    free(out);
    char *log = vsrv_log(&s);
    /* both verified: the second hop's signature names its own authority and path,
     * with a fresh nonce (the store would say replay); a 302 turns POST into GET */
    cr_assert_str_eq(log, "ok GET /first -\nok POST /first -\nok GET /second -\n");
    free(log);

    /* the same origin: -L is enough; 307 keeps the method and the body */
    snprintf(loc, sizeof(loc),
             "HTTP/1.1 307 Temporary Redirect\r\nLocation: /third\r\n"
             "Content-Length: 0\r\nConnection: close\r\n\r\n");
    s.verified = 0;
    out = run(&st, "$R send -sL --key '%s/k.pem' -d 'y=2' http://127.0.0.1:%d/first", dir, s.port);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "second");
    free(out);
    log = vsrv_log(&s);
    cr_assert_not_null(strstr(log, "ok POST /first -\nok POST /third -\n"), "%s", log);
    free(log);
    snprintf(loc, sizeof(loc),
             "HTTP/1.1 302 Found\r\nLocation: http://api.example.test:%d/second\r\n"
             "Content-Length: 5\r\nConnection: close\r\n\r\nmoved",
             s.port);

    /* without -L: the 302 itself; --max-redirs 0: 47 */
    s.verified = 0;
    out = run(&st, "$R send --key '%s/k.pem' -w '%%{http_code}' http://127.0.0.1:%d/first", dir,
              s.port);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "moved302");
    free(out);
    s.verified = 0;
    out = run(&st,
              "$R send -L --location-trusted --max-redirs 0 --key '%s/k.pem' "
              "http://127.0.0.1:%d/first 2>&1",
              dir, s.port);
    cr_assert_eq(st, 47, "exit %d: %s", st, out);
    free(out);
    rm_dir(dir);
    vsrv_stop(&s);
}

/* --retry after a 503: signed again with a fresh nonce, not a replay */
Test(client, send_retry_fresh_nonce)
{
    static const char *const answers[] = {
        "HTTP/1.1 503 Busy\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
        OK_BODY(4) "done", NULL};
    struct vsrv s;
    vsrv_start(&s, "localhost", 0, answers);
    char *dir = key_dir();
    int st;
    char *out = run(&st,
                    "printf 'payload' | $R send --retry 2 --retry-delay 0.1 "
                    "--key '%s/k.pem' --data @- http://127.0.0.1:%d/job 2>/dev/null",
                    dir, s.port);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_str_eq(out, "done");
    free(out);
    char *log = vsrv_log(&s);
    cr_assert_str_eq(log, "ok POST /job -\nok POST /job -\n");
    free(log);
    /* no --retry: the 503 is the answer */
    s.verified = 0;
    out = run(&st, "$R send -f --key '%s/k.pem' http://127.0.0.1:%d/job 2>/dev/null", dir, s.port);
    cr_assert_eq(st, 22, "exit %d: %s", st, out);
    free(out);
    rm_dir(dir);
    vsrv_stop(&s);
}

/* --data @FILE where FILE is a pipe (not seekable: read once into memory) */
Test(client, send_data_from_pipe)
{
    struct echo e;
    cr_assert_eq(echo_start(&e, AF_INET, 0), 0);
    char *dir = key_dir();
    int st;
    char *out =
        run(&st,
            "mkfifo '%s/fifo' && (timeout 20 sh -c \"printf 'from a pipe' > '%s/fifo'\" &) && "
            "$R send --key '%s/k.pem' --data @'%s/fifo' http://127.0.0.1:%d/p",
            dir, dir, dir, dir, e.port);
    cr_assert_eq(st, 0, "exit %d: %s", st, out);
    cr_assert_not_null(strstr(out, "\r\n\r\nfrom a pipe"), "%s", out);
    free(out);
    pthread_mutex_lock(&e.mu);
    struct wire w;
    char *raw = malloc(e.last_len);
    memcpy(raw, e.last, e.last_len);
    size_t rl = e.last_len;
    pthread_mutex_unlock(&e.mu);
    parse_wire(raw, rl, &w);
    cr_assert_str_eq(w.method, "POST");
    cr_assert_eq(w.body_len, 11);
    free(raw);
    rm_dir(dir);
    echo_stop(&e);
}

/* A server whose clock is an hour behind (or ahead) answers sig_future
 * (sig_too_old) with server_time: send corrects the offset and retries once */
Test(client, send_corrects_clock_offset)
{
    static const char *const answers[] = {OK_BODY(2) "ok", NULL};
    char *dir = key_dir();
    for (int i = 0; i < 2; i++) {
        struct vsrv s;
        int64_t off = i == 0 ? -3600 : 3600;
        vsrv_start(&s, "localhost", off, answers);
        int st;
        char *out = run(&st, "$R send -v --key '%s/k.pem' http://127.0.0.1:%d/t 2>'%s/err'", dir,
                        s.port, dir);
        cr_assert_eq(st, 0, "exit %d: %s", st, out);
        cr_assert_str_eq(out, "ok");
        free(out);
        char *log = vsrv_log(&s);
        char want[128];
        snprintf(want, sizeof(want), "reject GET /t %s\nok GET /t -\n",
                 i == 0 ? "sig_future" : "sig_too_old");
        cr_assert_str_eq(log, want);
        free(log);
        out = run(&st, "cat '%s/err'", dir);
        cr_assert_not_null(strstr(out, i == 0 ? "is 3600 s behind" : "is 3600 s ahead of"), "%s",
                           out);
        free(out);
        vsrv_stop(&s);
    }
    rm_dir(dir);
}

/* --cacert / -k against an HTTPS server with a certificate the test makes */
Test(client, send_and_keys_tls_cacert_insecure)
{
    char *dir = key_dir();
    int st;
    char *out = run(&st,
                    "cd '%s' && openssl req -x509 -newkey ed25519 -keyout tls.key -out tls.crt "
                    "-days 1 -nodes -subj /CN=localhost "
                    "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 2>&1",
                    dir);
    cr_assert_eq(st, 0, "openssl req: %s", out);
    free(out);
    int port = tu_free_port();
    cr_assert_gt(port, 0);
    /* the server lives for at most 60 s, whatever happens to this test */
    out =
        run(&st,
            "cd '%s' && (timeout 60 openssl s_server -quiet -www -accept 127.0.0.1:%d "
            "-cert tls.crt -key tls.key >/dev/null 2>&1 & echo $! > s.pid) && "
            "for i in $(seq 50); do bash -c 'exec 3<>/dev/tcp/127.0.0.1/%d' 2>/dev/null && exit 0; "
            "sleep 0.1; done; exit 1",
            dir, port, port);
    cr_assert_eq(st, 0, "openssl s_server did not start: %s", out);
    free(out);

    /* verified by default: a certificate nobody trusts is refused, 60 as curl */
    out = run(&st, "$R send --key '%s/k.pem' https://localhost:%d/ 2>&1", dir, port);
    cr_assert_eq(st, 60, "exit %d: %s", st, out);
    free(out);
    out = run(&st,
              "$R send -s --cacert '%s/tls.crt' --key '%s/k.pem' https://localhost:%d/ "
              "-w '%%{http_code}' | tail -c 3",
              dir, dir, port);
    cr_assert_str_eq(out, "200", "%s", out);
    free(out);
    out = run(&st,
              "$R send -sk --key '%s/k.pem' https://127.0.0.1:%d/ -w '%%{http_code}' "
              "| tail -c 3",
              dir, port);
    cr_assert_str_eq(out, "200", "%s", out);
    free(out);
    out = run(&st, "$R send --cacert '%s/nonexistent' --key '%s/k.pem' https://localhost:%d/ 2>&1",
              dir, dir, port);
    cr_assert_eq(st, 2, "exit %d: %s", st, out);
    free(out);

    /* keys: the same options; the HTML answer is not JSON, but TLS got through */
    out = run(&st, "$R keys list --service https://localhost:%d --key '%s/k.pem' 2>&1", port, dir);
    cr_assert_neq(st, 0);
    cr_assert_not_null(strstr(out, "certificate"), "%s", out);
    free(out);
    out = run(&st,
              "$R keys list --cacert '%s/tls.crt' --service https://localhost:%d "
              "--key '%s/k.pem' 2>&1",
              dir, port, dir);
    cr_assert_null(strstr(out, "certificate"), "%s", out);
    cr_assert_null(strstr(out, "error: http"), "%s", out);
    free(out);
    out =
        run(&st, "$R keys list -k --service https://localhost:%d --key '%s/k.pem' 2>&1", port, dir);
    cr_assert_null(strstr(out, "error: http"), "%s", out);
    free(out);

    out = run(&st, "kill $(cat '%s/s.pid')", dir);
    free(out);
    rm_dir(dir);
}

/* ---------------------------------------------- the story: real servers */

struct servers {
    struct tu_proc d, b;
    char *dir, *db, *admin, *log;
};

static void need_prog(const char *env)
{
    const char *p = tu_prog(env);
    cr_assert(p[0] != '\0' && access(p, X_OK) == 0,
              "%s is not set or not executable ('%s'): the story needs it", env, p);
}

static void servers_start(struct servers *s)
{
    need_prog("REQSIGND");
    need_prog("API_BACKEND");
    memset(s, 0, sizeof(*s));
    s->dir = tu_tmpdir();
    size_t n = strlen(s->dir) + 32;
    s->db = malloc(n);
    s->admin = malloc(n);
    s->log = malloc(n);
    snprintf(s->db, n, "%s/keys.db", s->dir);
    snprintf(s->admin, n, "%s/admin.json", s->dir);
    snprintf(s->log, n, "%s/servers.log", s->dir);
    int st;
    char *out = run(&st, "'%s' init --db '%s' -o '%s' --service http://127.0.0.1 2>&1",
                    tu_prog("REQSIGND"), s->db, s->admin);
    cr_assert_eq(st, 0, "reqsignd init: exit %d: %s", st, out);
    free(out);
    srv_start(&s->d, &(struct srv_opts){.prog = tu_prog("REQSIGND"), .db = s->db, .log = s->log});
    srv_start(&s->b,
              &(struct srv_opts){.prog = tu_prog("API_BACKEND"), .db = s->db, .log = s->log});
}

static void servers_stop(struct servers *s)
{
    cr_assert_eq(tu_proc_stop(&s->b, SIGTERM, 15000), 0);
    cr_assert_eq(tu_proc_stop(&s->d, SIGTERM, 15000), 0);
    char *out = run(NULL, "rm -rf '%s'", s->dir);
    free(out);
    free(s->dir);
    free(s->db);
    free(s->admin);
    free(s->log);
}

/* Sign one request and send it twice on one handle: the answers' status codes
 * and the second answer's "error". */
static void send_twice(const struct reqsign_signer *s, const char *method, const char *url,
                       const char *body, long codes[2], char err_name[64])
{
    CURL *h = curl_easy_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    struct reqsign_curl_request r;
    struct reqsign_error err;
    struct sbuf bodies[2] = {{NULL, 0}, {NULL, 0}};
    memset(&r, 0, sizeof(r));
    r.method = method;
    r.url = url;
    r.body = body;
    r.body_len = body != NULL ? strlen(body) : 0;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_curl_prepare(s, h, &r, &hdrs, NULL, &err), REQSIGN_OK, "%s", err.message);
    for (int i = 0; i < 2; i++) {
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &bodies[i]);
        cr_assert_eq(curl_easy_perform(h), CURLE_OK);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &codes[i]);
    }
    json_t *ej = bodies[1].b != NULL ? json_loads(bodies[1].b, 0, NULL) : NULL;
    const char *name = json_string_value(json_object_get(ej, "error"));
    snprintf(err_name, 64, "%s", name != NULL ? name : "");
    cr_log_info("%s %s twice: %ld then %ld %s", method, url, codes[0], codes[1],
                bodies[1].b != NULL ? bodies[1].b : "");
    json_decref(ej);
    free(bodies[0].b);
    free(bodies[1].b);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
}

/* keys create -o FILE; returns the keyid (static buffer). */
static const char *issue_key(const struct servers *sv, const char *name, const char *scopes)
{
    static char keyid[64];
    int st;
    char *out = run(&st,
                    "$R keys create --service '%s' --key '%s' --label '%s client' %s "
                    "-o '%s/%s.json' 2>&1",
                    sv->d.url, sv->admin, name, scopes, sv->dir, name);
    cr_assert_eq(st, 0, "keys create: %s", out);
    cr_assert_eq(sscanf(out, "%63s", keyid), 1);
    cr_assert_eq(strlen(keyid), 43, "%s", out);
    free(out);
    return keyid;
}

/* The key service alone: keys create / get / list / revoke, replay, scope. */
Test(client, story_keys)
{
    struct servers sv;
    servers_start(&sv);
    int st;
    char *out;
    char keyid[64];

    /* keys create: the credential file is 0600 and never overwritten */
    snprintf(keyid, sizeof(keyid), "%s",
             issue_key(&sv, "client", "--scope orders:write --scope orders:read"));
    char cpath[512];
    snprintf(cpath, sizeof(cpath), "%s/client.json", sv.dir);
    struct stat sb;
    cr_assert_eq(stat(cpath, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    out = run(&st, "$R keys create --service '%s' --key '%s' -o '%s' 2>&1", sv.d.url, sv.admin,
              cpath);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "refusing to overwrite"), "%s", out);
    free(out);
    out = run(&st, "$R keys create --service '%s' --key '%s' 2>&1", sv.d.url, sv.admin);
    cr_assert_eq(st, 2, "-o is required: %s", out);
    free(out);

    /* the credential loads and names its key */
    struct reqsign_credential *cred = NULL, *admin = NULL;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_not_null(cred = reqsign_credential_load(cpath, NULL, 0, &err), "%s", err.message);
    cr_assert_str_eq(reqsign_credential_keyid(cred), keyid);
    cr_assert_eq(reqsign_credential_scope_count(cred), 2);
    cr_assert_not_null(admin = reqsign_credential_load(sv.admin, NULL, 0, &err), "%s", err.message);
    cr_log_info("admin.json service: '%s'; client credential service: '%s'",
                reqsign_credential_service(admin), reqsign_credential_service(cred));
    /* --service defaults to the credential's "service" */
    {
        json_t *aj = json_load_file(sv.admin, 0, NULL);
        cr_assert_not_null(aj);
        json_object_set_new(aj, "service", json_string(sv.d.url));
        char a2[512];
        snprintf(a2, sizeof(a2), "%s/admin2.json", sv.dir);
        cr_assert_eq(json_dump_file(aj, a2, 0), 0);
        cr_assert_eq(chmod(a2, 0600), 0);
        json_decref(aj);
        out = run(&st, "$R keys list --key '%s'", a2);
        cr_assert_eq(st, 0, "%s", out);
        cr_assert_not_null(strstr(out, keyid), "%s", out);
        free(out);
        out = run(&st, "$R keys list --key '%s' 2>&1", sv.admin);
        if (reqsign_credential_service(admin)[0] == '\0')
            cr_assert_eq(st, 2, "no service anywhere is a usage error: %s", out);
        free(out);
    }

    /* sign once, send twice: the second is a replay */
    struct reqsign_signer *as = reqsign_credential_signer(admin, NULL, &err);
    cr_assert_not_null(as, "%s", err.message);
    char url[256], ename[64];
    long codes[2];
    snprintf(url, sizeof(url), "%s/v1/keys?limit=1", sv.d.url);
    send_twice(as, "GET", url, NULL, codes, ename);
    cr_assert_eq(codes[0], 200);
    cr_assert_eq(codes[1], 401);
    cr_assert_str_eq(ename, "replay");
    reqsign_signer_free(as);

    /* a >= 400 answer: exit 1, the server's JSON error on stderr */
    out = run(&st, "$R send --key '%s' '%s/v1/keys' 2>&1 >/dev/null", cpath, sv.d.url);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "\"scope\""), "%s", out);
    free(out);

    /* list, get, revoke */
    out = run(&st, "$R keys list --service '%s' --key '%s'", sv.d.url, sv.admin);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, keyid), "%s", out);
    cr_assert_not_null(strstr(out, "orders:write,orders:read"), "%s", out);
    cr_assert_not_null(strstr(out, "client client"), "%s", out);
    free(out);
    out = run(&st, "REQSIGN_CREDENTIAL='%s' $R keys list --all --json --limit 1 --service '%s'",
              sv.admin, sv.d.url);
    cr_assert_eq(st, 0, "%s", out);
    json_t *lj = json_loads(out, 0, NULL);
    cr_assert_eq(json_array_size(json_object_get(lj, "keys")), 2, "%s", out);
    json_decref(lj);
    free(out);
    out = run(&st, "$R keys get --service '%s' --key '%s' %s", sv.d.url, sv.admin, keyid);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, "\"active\""), "%s", out);
    cr_assert_null(strstr(out, "private_key"), "%s", out);
    free(out);
    out = run(&st, "$R keys revoke --service '%s' --key '%s' %s", sv.d.url, sv.admin, keyid);
    cr_assert_eq(st, 0, "%s", out);
    char want[128];
    snprintf(want, sizeof(want), "revoked %s\n", keyid);
    cr_assert_str_eq(out, want);
    free(out);
    out = run(&st, "$R keys list --service '%s' --key '%s'", sv.d.url, sv.admin);
    cr_assert_not_null(strstr(out, "revoked"), "%s", out);
    free(out);
    out = run(&st, "$R keys get --service '%s' --key '%s' nosuchkey 2>&1", sv.d.url, sv.admin);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "not_found"), "%s", out);
    free(out);

    /* --public-key registers a key: the record, no private key */
    out = run(&st,
              "cd '%s' && $R keygen -o mine.pem >/dev/null && $R keys create --service '%s' "
              "--key '%s' --public-key mine.pem -o mine.json && cat mine.json",
              sv.dir, sv.d.url, sv.admin);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_null(strstr(out, "private_key"), "%s", out);
    free(out);

    reqsign_credential_free(cred);
    reqsign_credential_free(admin);
    servers_stop(&sv);
}

/* The API backend: send, replay, revocation. */
Test(client, story_backend)
{
    struct servers sv;
    servers_start(&sv);
    int st;
    char *out;
    char keyid[64], cpath[512];
    snprintf(keyid, sizeof(keyid), "%s", issue_key(&sv, "orders", "--scope orders:write"));
    snprintf(cpath, sizeof(cpath), "%s/orders.json", sv.dir);

    /* send POST to the backend: 200 and the echo */
    out = run(&st,
              "$R send --key '%s' -H 'Content-Type: application/json' -d '{\"n\":1}' "
              "'%s/orders/./1?x=y' 2>&1",
              cpath, sv.b.url);
    cr_assert_eq(st, 0, "send: %s", out);
    json_t *echo = json_loads(out, 0, NULL);
    cr_assert_not_null(echo, "%s", out);
    cr_assert_str_eq(json_string_value(json_object_get(echo, "keyid")), keyid);
    cr_assert_str_eq(json_string_value(json_object_get(echo, "method")), "POST");
    cr_assert_str_eq(json_string_value(json_object_get(echo, "path")), "/orders/1");
    cr_assert_str_eq(json_string_value(json_array_get(json_object_get(echo, "scopes"), 0)),
                     "orders:write");
    json_decref(echo);
    free(out);

    /* sign once, send twice: the second is a replay */
    struct reqsign_credential *cred = NULL;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_not_null(cred = reqsign_credential_load(cpath, NULL, 0, &err), "%s", err.message);
    struct reqsign_signer *s = reqsign_credential_signer(cred, NULL, &err);
    cr_assert_not_null(s, "%s", err.message);
    char url[256], ename[64];
    long codes[2];
    snprintf(url, sizeof(url), "%s/orders", sv.b.url);
    send_twice(s, "POST", url, "{\"once\":true}", codes, ename);
    cr_assert_eq(codes[0], 200);
    cr_assert_eq(codes[1], 401);
    cr_assert_str_eq(ename, "replay");

    /* revoke: the key stops working on the backend within the cache TTL (5 s) */
    out = run(&st, "$R keys revoke --service '%s' --key '%s' %s", sv.d.url, sv.admin, keyid);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    int revoked = 0;
    for (int i = 0; i < 80 && !revoked; i++) {
        out = run(&st, "$R send --key '%s' '%s/orders' 2>&1", cpath, sv.b.url);
        revoked = st == 1 && strstr(out, "key_revoked") != NULL;
        free(out);
        if (!revoked)
            usleep(100 * 1000);
    }
    cr_assert(revoked, "the revoked key still works on the backend after 8 s");

    reqsign_signer_free(s);
    reqsign_credential_free(cred);
    servers_stop(&sv);
}

/* 1 if @s holds a byte a terminal acts on: C0 other than LF, DEL, or a C1
 * control in UTF-8 (C2 80..C2 9F). */
static int has_raw_control(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if ((*p < 0x20 && *p != '\n') || *p == 0x7f ||
            (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
            return 1;
    return 0;
}

/* Issue 12 item 12: a label with terminal escapes, put into the store
 * directly (the API refuses it now; an older database may hold one), is
 * printed escaped by `keys list`, `keys list --json` and `keys get`. */
Test(client, keys_list_escapes_control_characters)
{
    struct servers sv;
    servers_start(&sv);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(sv.db, 0, &err);
    cr_assert_not_null(ks, "%s", err.message);
    struct reqsign_key *k = NULL;
    cr_assert_not_null(k = reqsign_key_generate(&err));
    struct reqsign_key_record rec;
    memset(&rec, 0, sizeof(rec));
    cr_assert_eq(reqsign_key_thumbprint(k, rec.keyid), REQSIGN_OK);
    reqsign_key_public_raw(k, rec.public_key);
    reqsign_key_free(k);
    snprintf(rec.label, sizeof(rec.label), "%s",
             "\x1b]0;owned\x07\x1b[2J\x1b[31mred\ttab\x7f"
             "del\xc2\x9b"
             "1mcsi\\");
    snprintf(rec.scopes, sizeof(rec.scopes), "orders:read");
    rec.created_at = (int64_t)time(NULL);
    cr_assert_eq(reqsign_keystore_insert(ks, &rec, &err), REQSIGN_OK, "%s", err.message);
    reqsign_keystore_free(ks);

    int st;
    char *out = run(&st, "$R keys list --service '%s' --key '%s'", sv.d.url, sv.admin);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, rec.keyid), "%s", out);
    /* the tab separates columns: the only raw ones are the 4 per line (issue 13 added
     * the last use column) */
    char *line = strstr(out, rec.keyid);
    char *eol = strchr(line, '\n');
    cr_assert_not_null(eol);
    *eol = '\0';
    int tabs = 0;
    for (char *p = line; *p; p++)
        if (*p == '\t') {
            tabs++;
            *p = ' ';
        }
    cr_assert_eq(tabs, 4, "%s", line);
    cr_assert(!has_raw_control(line), "raw control characters in: %s", line);
    cr_assert_not_null(strstr(line, "\\x1b]0;owned\\x07\\x1b[2J\\x1b[31mred\\x09tab\\x7fdel"
                                    "\\u009b1mcsi\\\\"),
                       "%s", line);
    free(out);

    out = run(&st, "$R keys list --json --service '%s' --key '%s'", sv.d.url, sv.admin);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(!has_raw_control(out), "raw control characters in: %s", out);
    json_t *j = json_loads(out, 0, NULL);
    cr_assert_not_null(j, "not JSON: %s", out);
    int found = 0;
    json_t *keys = json_object_get(j, "keys"), *it;
    size_t i;
    json_array_foreach(keys, i, it)
    {
        if (strcmp(json_string_value(json_object_get(it, "keyid")), rec.keyid) == 0) {
            found = 1;
            cr_assert_str_eq(json_string_value(json_object_get(it, "label")), rec.label,
                             "the JSON still decodes to the label");
        }
    }
    cr_assert(found, "%s", out);
    json_decref(j);
    free(out);

    out = run(&st, "$R keys list --all --json --service '%s' --key '%s'", sv.d.url, sv.admin);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(!has_raw_control(out), "raw control characters in: %s", out);
    free(out);

    /* "--": a thumbprint may start with '-' (1 in 64) */
    out = run(&st, "$R keys get --service '%s' --key '%s' -- %s", sv.d.url, sv.admin, rec.keyid);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert(!has_raw_control(out), "raw control characters in: %s", out);
    free(out);
    servers_stop(&sv);
}

/* Review 12 item 12: a label stored before labels were checked (a legacy row)
 * with bidi controls / line separators is printed escaped (\u202e, not a raw
 * right-to-left override that reverses the rest of the line), in the table
 * and in --json; a label that is not UTF-8 is listed (the invalid bytes as
 * U+FFFD) instead of failing the whole answer as "nomem: out of memory". */
Test(client, keys_list_escapes_bidi_and_non_utf8_labels)
{
    struct servers sv;
    servers_start(&sv);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(sv.db, 0, &err);
    cr_assert_not_null(ks, "%s", err.message);
    static const char *const labels[] = {
        "admin\xe2\x80\xae"
        "exe.txt \xe2\x80\xa8ls \xe2\x80\xa9ps \xe2\x81\xa6lri \xe2\x80\x8flrm",
        "bad\xff\xfe utf8 \xc3"};
    char keyids[2][300];
    for (size_t i = 0; i < 2; i++) {
        struct reqsign_key *k = NULL;
        cr_assert_not_null(k = reqsign_key_generate(&err));
        struct reqsign_key_record rec;
        memset(&rec, 0, sizeof(rec));
        cr_assert_eq(reqsign_key_thumbprint(k, rec.keyid), REQSIGN_OK);
        reqsign_key_public_raw(k, rec.public_key);
        reqsign_key_free(k);
        snprintf(rec.label, sizeof(rec.label), "%s", labels[i]);
        snprintf(rec.scopes, sizeof(rec.scopes), "orders:read");
        rec.created_at = (int64_t)time(NULL);
        cr_assert_eq(reqsign_keystore_insert(ks, &rec, &err), REQSIGN_OK, "%s", err.message);
        snprintf(keyids[i], sizeof(keyids[i]), "%s", rec.keyid);
    }
    reqsign_keystore_free(ks);

    static const char *const raw[] = {"\xe2\x80\xae", "\xe2\x80\xa8", "\xe2\x80\xa9",
                                      "\xe2\x81\xa6", "\xe2\x80\x8f", "\xff",
                                      "\xfe"};
    int st;
    for (int json = 0; json < 2; json++) {
        char *out = run(&st, "$R keys list %s --service '%s' --key '%s' 2>&1", json ? "--json" : "",
                        sv.d.url, sv.admin);
        cr_assert_eq(st, 0, "%s", out);
        cr_assert_null(strstr(out, "nomem"), "%s", out);
        cr_assert_not_null(strstr(out, keyids[0]), "%s", out);
        cr_assert_not_null(strstr(out, keyids[1]), "%s", out);
        for (size_t i = 0; i < sizeof(raw) / sizeof(raw[0]); i++)
            cr_assert_null(strstr(out, raw[i]), "raw byte(s) %zu in: %s", i, out);
        cr_assert_not_null(strstr(out, "admin\\u202eexe.txt \\u2028ls \\u2029ps \\u2066lri "
                                       "\\u200flrm"),
                           "%s", out);
        cr_assert_not_null(strstr(out, "bad\xef\xbf\xbd\xef\xbf\xbd utf8 \xef\xbf\xbd"), "%s", out);
        if (json) {
            json_t *j = json_loads(out, 0, NULL);
            cr_assert_not_null(j, "not JSON: %s", out);
            json_decref(j);
        }
        free(out);
    }
    servers_stop(&sv);
}

/* Profiles (issue 16 item 12): keys create --to-profile writes
 * $XDG_CONFIG_HOME/reqsign/credentials/NAME.json (0600, directories 0700,
 * never overwritten); keys and send sign with --profile, REQSIGN_PROFILE or
 * the profile "default", with the path named when it is missing. */
Test(client, keys_and_send_with_profiles)
{
    struct servers sv;
    servers_start(&sv);
    int st;
    char *out, env[1024], path[700];
    snprintf(env, sizeof(env),
             "env -u REQSIGN_CREDENTIAL -u REQSIGN_PROFILE XDG_CONFIG_HOME='%s/xdg'", sv.dir);

    out = run(&st,
              "%s $R keys create --service '%s' --key '%s' --scope orders:read --to-profile alice "
              "2>&1",
              env, sv.d.url, sv.admin);
    cr_assert_eq(st, 0, "%s", out);
    char kid[64] = "";
    cr_assert_eq(sscanf(out, "%63s", kid), 1);
    free(out);
    struct stat sb;
    snprintf(path, sizeof(path), "%s/xdg/reqsign/credentials/alice.json", sv.dir);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600);
    snprintf(path, sizeof(path), "%s/xdg/reqsign/credentials", sv.dir);
    cr_assert_eq(stat(path, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0700);
    /* never overwritten */
    out = run(&st, "%s $R keys create --service '%s' --key '%s' --to-profile alice 2>&1", env,
              sv.d.url, sv.admin);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "refusing to overwrite"), "%s", out);
    free(out);
    out = run(&st, "%s $R keys create --service '%s' --key '%s' --to-profile alice -o x.json 2>&1",
              env, sv.d.url, sv.admin);
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    out = run(&st,
              "%s $R keys create --service '%s' --key '%s' --public-key '%s' --to-profile pk 2>&1",
              env, sv.d.url, sv.admin, sv.admin);
    cr_assert_eq(st, 2, "a record is no credential: %s", out);
    free(out);

    /* the admin credential as profile "admin", then as "default" */
    out = run(&st,
              "cp '%s' '%s/xdg/reqsign/credentials/admin.json' && chmod 600 "
              "'%s/xdg/reqsign/credentials/admin.json'",
              sv.admin, sv.dir, sv.dir);
    cr_assert_eq(st, 0);
    free(out);
    out = run(&st, "%s $R keys list --service '%s' --profile admin 2>&1", env, sv.d.url);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, kid), "%s", out);
    free(out);
    out =
        run(&st, "%s REQSIGN_PROFILE=admin $R keys get --service '%s' %s 2>&1", env, sv.d.url, kid);
    cr_assert_eq(st, 0, "%s", out);
    free(out);
    out = run(&st, "%s $R keys list --service '%s' 2>&1", env, sv.d.url);
    cr_assert_eq(st, 2, "no default profile yet: %s", out);
    cr_assert_not_null(strstr(out, "credentials/default.json"), "%s", out);
    free(out);
    out = run(&st,
              "cp -p '%s/xdg/reqsign/credentials/admin.json' "
              "'%s/xdg/reqsign/credentials/default.json'",
              sv.dir, sv.dir);
    free(out);
    out = run(&st, "%s $R keys list --service '%s' 2>&1", env, sv.d.url);
    cr_assert_eq(st, 0, "%s", out);
    cr_assert_not_null(strstr(out, kid), "%s", out);
    free(out);

    /* send with alice's profile: the key service knows the key (its answer
     * is about the scope, not the signature) */
    out = run(&st, "%s $R send --profile alice '%s/v1/keys' 2>&1 >/dev/null", env, sv.d.url);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "\"scope\""), "%s", out);
    free(out);
    out = run(&st, "%s $R send --profile nosuch '%s/v1/keys' 2>&1", env, sv.d.url);
    cr_assert_eq(st, 1, "%s", out);
    cr_assert_not_null(strstr(out, "xdg/reqsign/credentials/nosuch.json"), "%s", out);
    free(out);

    /* a relative expiry (issue 16 item 14): --expires-at +30d */
    time_t t0 = time(NULL);
    out = run(&st, "%s $R keys create --service '%s' --expires-at +30d --to-profile bob 2>&1", env,
              sv.d.url);
    cr_assert_eq(st, 0, "%s", out);
    char bkid[64] = "";
    cr_assert_eq(sscanf(out, "%63s", bkid), 1);
    free(out);
    out = run(&st, "%s $R keys get --service '%s' %s", env, sv.d.url, bkid);
    cr_assert_eq(st, 0, "%s", out);
    json_t *bj = json_loads(out, 0, NULL);
    const char *exp = json_string_value(json_object_get(bj, "expires_at"));
    cr_assert_not_null(exp, "%s", out);
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    cr_assert_eq(sscanf(exp, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                        &tm.tm_min, &tm.tm_sec),
                 6, "%s", exp);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    long long got = (long long)timegm(&tm), want = (long long)t0 + 30LL * 86400;
    cr_assert(got >= want - 5 && got <= want + 120, "expires_at %s: %lld, want about %lld", exp,
              got, want);
    json_decref(bj);
    free(out);
    out = run(&st, "%s $R keys create --service '%s' --expires-at +30y --to-profile c 2>&1", env,
              sv.d.url);
    cr_assert_eq(st, 2, "%s", out);
    free(out);
    servers_stop(&sv);
}
