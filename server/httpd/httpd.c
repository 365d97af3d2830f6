/* reqsign-httpd: see httpd.h. */
#define _GNU_SOURCE /* accept4, pipe2 */
#include "httpd.h"
#include <reqsign/token.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>

#include <reqsign/key.h>
#include <reqsign/verifier.h>

/* After a response was decided mid-body, at most this many further body
 * bytes are read and discarded (so the client gets the answer); beyond it
 * the connection is dropped. */
#define DISCARD_MAX ((uint64_t)1 << 20)
/* Per-connection memory: request line and headers must fit (Signature-Input
 * and Signature may be 8 KiB each). Larger headers get libmicrohttpd's 431. */
#define CONN_MEMORY_LIMIT ((size_t)64 * 1024)
#define CONN_LIMIT 1024u

/* One event-loop thread: a libmicrohttpd daemon with no listening socket of
 * its own, fed connections by the acceptor. */
struct worker {
    struct reqsign_httpd *h;
    struct MHD_Daemon *daemon;
    atomic_int conns; /* connections handed to it and not yet closed */
};

#define MAX_WORKERS 256

/* TLS 1.2 and 1.3 only, GnuTLS's default ("NORMAL") ciphers otherwise. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
#define TLS_CHAIN_MAX 16

/* One loaded certificate chain and key. Each reload makes a new one; the
 * old ones stay (a handshake may be using them) until the server is freed. */
struct tls_creds {
    gnutls_pcert_st pcerts[TLS_CHAIN_MAX];
    unsigned n;
    gnutls_privkey_t key;
    struct tls_creds *older;
};

struct reqsign_httpd {
    /* Connections are accepted on one thread and each is handed to the worker
     * with the fewest open connections: libmicrohttpd's own thread pool lets
     * the workers race for accept(), and two busy connections often landed
     * on one worker while another core idled. */
    struct worker *workers;
    unsigned n_workers;
    int listen_fd;
    int stop_pipe[2]; /* written to stop the acceptor */
    pthread_t acceptor;
    int acceptor_running;
    struct reqsign_httpd_handlers handlers;
    void *ctx;
    char scheme[16];
    size_t max_body;
    const char *name;
    atomic_long inflight; /* requests whose headers are in, not yet completed */
    /* deadline watchdog (slow clients): every open connection, guarded by wd_lock */
    pthread_mutex_t wd_lock;
    pthread_cond_t wd_cond;
    pthread_t wd_thread;
    int wd_running, wd_stop;
    struct tracked *tracked;
    /* request log: lines gather here and a logger thread writes them out at
     * most LOG_FLUSH_MS later (or at once when the buffer is half full), so a
     * request costs a memcpy under a short lock rather than a write(2) */
    pthread_mutex_t log_lock;
    pthread_cond_t log_cond;
    pthread_t log_thread;
    int log_running, log_stop;
    size_t log_len;
    int log_json;
    char log_buf[64 * 1024];
    /* TLS: the files, and the credentials handshakes use (tls_current) */
    char *tls_cert, *tls_key;
};

/* The current TLS credentials. GnuTLS's certificate callback has no user
 * pointer, so this is per process (one server per process). */
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_creds *tls_current;

#define LOG_FLUSH_MS 200

/* One open connection, for the deadline watchdog. libmicrohttpd's own
 * timeout only counts silence, so a client trickling one byte a second would
 * hold a connection forever; the watchdog shuts down any connection whose
 * request line and headers are not complete REQSIGN_HTTPD_HEADER_SECONDS after
 * it opened (or after its previous request ended), or whose request is not
 * complete REQSIGN_HTTPD_REQUEST_SECONDS after its headers arrived. */
struct tracked {
    struct tracked *next, *prev;
    MHD_socket fd;
    struct timespec deadline;
    int shut;
};

/* Most bytes of a connection's first request line looked at before
 * libmicrohttpd reads it (see not_http()). */
#define SNIFF_BYTES 2048
/* Most empty lines accepted before the first request line (RFC 9112
 * section 2.2 asks to ignore "at least one"). */
#define SNIFF_MAX_EMPTY_LINES 8
/* TCP_DEFER_ACCEPT on the listening socket: a connection is handed over once
 * its first bytes are in (or after about this many seconds), so that
 * on_connection() can look at them before libmicrohttpd reads them. */
#define DEFER_ACCEPT_SECONDS 1

enum stage { STAGE_NEW = 0, STAGE_BODY, STAGE_QUEUED };

struct reqsign_httpd_conn {
    struct reqsign_httpd *h;
    struct reqsign_httpd_req req;
    char *target; /* raw request-target, NUL-terminated copy */
    size_t target_len;
    struct reqsign_header *headers;
    size_t n_headers, cap_headers;
    const char *uri_raw;     /* libmicrohttpd's request-target, in its read buffer */
    struct timespec started; /* request line seen (CLOCK_MONOTONIC), for the log */
    const char *framing;     /* why the framing is refused (a 400 that closes), or NULL */
    enum stage stage;
    int has_body;       /* Content-Length > 0 or Transfer-Encoding present */
    uint64_t discarded; /* body bytes dropped after a response was decided */
    int counted;        /* counted in h->inflight */
};

/* ---- small helpers ---- */

static struct reqsign_span span_of(const char *p, size_t n)
{
    struct reqsign_span s = {p, n};
    return s;
}

/* see httpd.h */
int reqsign_httpd_parse_seconds(const char *s, int64_t *out)
{
    if (s == NULL || *s == '\0')
        return -1;
    int64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > (INT64_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

/* see httpd.h */
int reqsign_httpd_parse_listen(const char *s, char *host, size_t host_cap, uint16_t *port)
{
    const char *colon;
    const char *h;
    size_t hl;
    if (s == NULL)
        return -1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL || close[1] != ':')
            return -1;
        h = s + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
            return -1; /* no port, or an unbracketed IPv6 literal */
        h = s;
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= host_cap)
        return -1;
    int64_t p;
    if (reqsign_httpd_parse_seconds(colon + 1, &p) != 0 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

/* see httpd.h */
int reqsign_httpd_no_core_dumps(void)
{
    int rc = 0;
    struct rlimit rl = {0, 0};
    if (setrlimit(RLIMIT_CORE, &rl) != 0)
        rc = -1;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        rc = -1;
    return rc;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the log is lost, never the request */
        p += w;
        n -= (size_t)w;
    }
}

/* Queue @n bytes of log for the logger thread (written directly when there is none). */
static void log_append(struct reqsign_httpd *h, const char *line, size_t n)
{
    if (!h->log_running) {
        write_all(STDERR_FILENO, line, n);
        return;
    }
    pthread_mutex_lock(&h->log_lock);
    if (n > sizeof(h->log_buf) - h->log_len) { /* full: write it out here */
        write_all(STDERR_FILENO, h->log_buf, h->log_len);
        h->log_len = 0;
    }
    memcpy(h->log_buf + h->log_len, line, n);
    h->log_len += n;
    if (h->log_len > sizeof(h->log_buf) / 2)
        pthread_cond_signal(&h->log_cond);
    pthread_mutex_unlock(&h->log_lock);
}

static void *logger(void *arg)
{
    struct reqsign_httpd *h = arg;
    char *out = malloc(sizeof(h->log_buf));
    pthread_mutex_lock(&h->log_lock);
    for (;;) {
        int stop = h->log_stop;
        if (h->log_len > 0) {
            size_t n = h->log_len;
            if (out == NULL) { /* no memory for a copy: write under the lock */
                write_all(STDERR_FILENO, h->log_buf, n);
                h->log_len = 0;
                continue;
            }
            memcpy(out, h->log_buf, n);
            h->log_len = 0;
            pthread_mutex_unlock(&h->log_lock);
            write_all(STDERR_FILENO, out, n);
            pthread_mutex_lock(&h->log_lock);
            continue;
        }
        if (stop)
            break;
        struct timespec wake;
        clock_gettime(CLOCK_REALTIME, &wake);
        wake.tv_nsec += LOG_FLUSH_MS * 1000000L;
        if (wake.tv_nsec >= 1000000000L) {
            wake.tv_sec++;
            wake.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->log_cond, &h->log_lock, &wake);
    }
    pthread_mutex_unlock(&h->log_lock);
    free(out);
    return NULL;
}

/* jansson's free for reqsign_httpd_wipe_json(): the whole block, as malloc
 * sized it, is wiped first. */
static void wiping_free(void *p)
{
    if (p != NULL) {
        reqsign_memzero(p, malloc_usable_size(p));
        free(p);
    }
}

/* see httpd.h */
void reqsign_httpd_wipe_json(void)
{
    json_set_alloc_funcs(malloc, wiping_free);
}

/* Copy at most @max bytes of @p (@n long) into @out, printable ASCII only
 * (others, space included, become '?'; for JSON '"' and '\\' too, so no
 * escaping is needed). "-" if empty. Return: bytes written. */
static size_t log_clean(char *out, const char *p, size_t n, size_t max, int json)
{
    size_t k = 0;
    if (p == NULL || n == 0) {
        out[0] = '-';
        return 1;
    }
    if (n > max)
        n = max;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)p[i];
        int ok = ch > 0x20 && ch < 0x7f && !(json && (ch == '"' || ch == '\\'));
        out[k++] = ok ? (char)ch : '?';
    }
    return k;
}

/* see httpd.h */
size_t reqsign_httpd_format_log(char *buf, size_t cap, int json, int64_t unix_ms,
                                const char *client, const char *method, struct reqsign_span path,
                                unsigned status, double ms, const char *keyid,
                                const char *target_keyid)
{
    char ts[40], cl[80], me[48], pa[264], ki[REQSIGN_KEYID_IN_MAX + 2],
        tk[REQSIGN_KEYID_IN_MAX + 2];
    time_t secs = (time_t)(unix_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + tl, sizeof(ts) - tl, ".%03dZ", (int)(unix_ms % 1000));
    cl[log_clean(cl, client, client != NULL ? strlen(client) : 0, sizeof(cl) - 1, json)] = '\0';
    me[log_clean(me, method, method != NULL ? strlen(method) : 0, 40, json)] = '\0';
    pa[log_clean(pa, path.ptr, path.len, 256, json)] = '\0';
    ki[log_clean(ki, keyid, keyid != NULL ? strlen(keyid) : 0, REQSIGN_KEYID_IN_MAX, json)] = '\0';
    tk[log_clean(tk, target_keyid, target_keyid != NULL ? strlen(target_keyid) : 0,
                 REQSIGN_KEYID_IN_MAX, json)] = '\0';
    int n;
    if (json)
        n = snprintf(buf, cap,
                     "{\"ts\":\"%s\",\"client\":\"%s\",\"method\":\"%s\",\"path\":\"%s\","
                     "\"status\":%u,\"ms\":%.3f,\"keyid\":%s%s%s,\"target_keyid\":%s%s%s}\n",
                     ts, cl, me, pa, status, ms, ki[0] == '-' && !ki[1] ? "" : "\"",
                     ki[0] == '-' && !ki[1] ? "null" : ki, ki[0] == '-' && !ki[1] ? "" : "\"",
                     tk[0] == '-' && !tk[1] ? "" : "\"", tk[0] == '-' && !tk[1] ? "null" : tk,
                     tk[0] == '-' && !tk[1] ? "" : "\"");
    else
        n = snprintf(buf, cap,
                     "ts=%s client=%s method=%s path=%s status=%u ms=%.3f keyid=%s "
                     "target_keyid=%s\n",
                     ts, cl, me, pa, status, ms, ki, tk);
    if (n < 0)
        n = 0;
    if ((size_t)n >= cap) { /* cut: still one line */
        n = (int)cap - 1;
        buf[n - 1] = '\n';
    }
    return (size_t)n;
}

/* see httpd.h */
int reqsign_httpd_parse_log_format(const char *s, int *json)
{
    if (s != NULL && strcmp(s, "text") == 0)
        *json = 0;
    else if (s != NULL && strcmp(s, "json") == 0)
        *json = 1;
    else
        return -1;
    return 0;
}

/* see httpd.h */
int reqsign_httpd_option(struct reqsign_httpd_opts *o, const char *prog, int id, const char *val)
{
    switch (id) {
    case REQSIGN_HTTPD_O_INSECURE_HTTP:
        o->insecure_http = 1;
        return 1;
    case REQSIGN_HTTPD_O_TLS_CERT:
        o->tls_cert = val;
        return 1;
    case REQSIGN_HTTPD_O_TLS_KEY:
        o->tls_key = val;
        return 1;
    case REQSIGN_HTTPD_O_PUBLIC_SCHEME:
        if (strcmp(val, "http") != 0 && strcmp(val, "https") != 0) {
            fprintf(stderr, "%s: --public-scheme wants http or https, got '%s'\n", prog, val);
            return -1;
        }
        o->scheme = val;
        return 1;
    case REQSIGN_HTTPD_O_LOG_FORMAT:
        if (reqsign_httpd_parse_log_format(val, &o->log_json) != 0) {
            fprintf(stderr, "%s: --log-format wants " REQSIGN_HTTPD_LOG_FORMATS ", got '%s'\n",
                    prog, val);
            return -1;
        }
        return 1;
    default:
        return 0;
    }
}

/* The client's address as "IP:PORT" / "[IPV6]:PORT", or "-". */
static void client_address(struct MHD_Connection *con, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci =
        con != NULL ? MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS) : NULL;
    snprintf(out, cap, "-");
    if (ci == NULL || ci->client_addr == NULL)
        return;
    char ip[INET6_ADDRSTRLEN];
    const struct sockaddr *sa = ci->client_addr;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
        if (inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip)) != NULL)
            snprintf(out, cap, "%s:%u", ip, (unsigned)ntohs(a->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
        if (inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip)) != NULL)
            snprintf(out, cap, "[%s]:%u", ip, (unsigned)ntohs(a->sin6_port));
    }
}

/* One log line per request (reqsign_httpd_format_log()), built in one buffer
 * and queued whole, so lines from threads do not mix. Never a header, a
 * query, a body or a key. */
static void log_request(struct reqsign_httpd_conn *c, struct MHD_Connection *con)
{
    char line[1024], client[80];
    const struct reqsign_httpd_req *r = &c->req;
    struct timespec now, wall;
    clock_gettime(CLOCK_MONOTONIC, &now);
    clock_gettime(CLOCK_REALTIME, &wall);
    double ms = c->started.tv_sec == 0 && c->started.tv_nsec == 0
                    ? 0.0
                    : (double)(now.tv_sec - c->started.tv_sec) * 1e3 +
                          (double)(now.tv_nsec - c->started.tv_nsec) / 1e6;
    client_address(con, client, sizeof(client));
    size_t n = reqsign_httpd_format_log(line, sizeof(line), c->h->log_json,
                                        (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000,
                                        client, r->method != NULL ? r->method : "-", r->path,
                                        r->resp.status, ms, r->keyid, r->target_keyid);
    log_append(c->h, line, n);
}

/* ---- responses ---- */

/* see httpd.h */
void reqsign_httpd_response_clear(struct reqsign_httpd_response *resp)
{
    if (resp == NULL)
        return;
    if (resp->body != NULL && resp->secret)
        reqsign_memzero(resp->body, resp->len);
    free(resp->body);
    for (size_t i = 0; i < resp->n_headers; i++) {
        free(resp->headers[i].name);
        free(resp->headers[i].value);
    }
    memset(resp, 0, sizeof(*resp));
}

/* see httpd.h */
const char *reqsign_httpd_response_header(const struct reqsign_httpd_response *resp,
                                          const char *name)
{
    for (size_t i = 0; i < resp->n_headers; i++)
        if (strcasecmp(resp->headers[i].name, name) == 0)
            return resp->headers[i].value;
    return NULL;
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

/* Append a header (dropped when out of room or memory, as libmicrohttpd would). */
static void push_header(struct reqsign_httpd_response *rs, const char *name, const char *value)
{
    if (rs->n_headers == REQSIGN_HTTPD_RESPONSE_HEADERS_MAX)
        return;
    char *n = dup_str(name), *v = dup_str(value);
    if (n == NULL || v == NULL) {
        free(n);
        free(v);
        return;
    }
    rs->headers[rs->n_headers].name = n;
    rs->headers[rs->n_headers].value = v;
    rs->n_headers++;
}

/* Make @body (malloc'd, owned from here on) the response of @r. 0, or -1 if
 * @r already has one (@body is then wiped if @secret, and freed). */
static int set_response(struct reqsign_httpd_req *r, unsigned status, const char *ctype,
                        const char *cc, char *body, size_t len, int secret)
{
    struct reqsign_httpd_response *rs = &r->resp;
    if (rs->status != 0) {
        if (secret)
            reqsign_memzero(body, len);
        free(body);
        return -1;
    }
    rs->status = status;
    rs->body = body;
    rs->len = len;
    rs->secret = secret;
    if (ctype != NULL)
        push_header(rs, "Content-Type", ctype);
    push_header(rs, "Cache-Control", cc != NULL ? cc : "no-store");
    return 0;
}

static void respond_cc(struct reqsign_httpd_req *r, unsigned status, const char *ctype,
                       const char *body, size_t len, const char *cc)
{
    if (r->resp.status != 0)
        return;
    char *copy = malloc(len > 0 ? len : 1);
    if (copy == NULL)
        return;
    if (len > 0)
        memcpy(copy, body, len);
    (void)set_response(r, status, ctype, cc, copy, len, 0);
}

/* see httpd.h */
void reqsign_httpd_respond(struct reqsign_httpd_req *r, unsigned status, const char *ctype,
                           const char *body, size_t len)
{
    respond_cc(r, status, ctype, body, len, NULL);
}

/* see httpd.h */
void reqsign_httpd_respond_cache(struct reqsign_httpd_req *r, unsigned status, const char *ctype,
                                 const char *body, size_t len, const char *cache_control)
{
    respond_cc(r, status, ctype, body, len, cache_control);
}

/* see httpd.h */
void reqsign_httpd_respond_secret(struct reqsign_httpd_req *r, unsigned status, char *body,
                                  size_t len)
{
    /* on failure (a response exists already) the secret is wiped and freed */
    (void)set_response(r, status, "application/json", NULL, body, len, 1);
}

/* see httpd.h */
void reqsign_httpd_respond_json_cache(struct reqsign_httpd_req *r, unsigned status, const json_t *v,
                                      const char *cache_control)
{
    char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s == NULL) {
        reqsign_httpd_fail(r, REQSIGN_E_NOMEM, "cannot serialize the response");
        return;
    }
    respond_cc(r, status, "application/json", s, strlen(s), cache_control);
    free(s);
}

/* see httpd.h */
void reqsign_httpd_respond_json(struct reqsign_httpd_req *r, unsigned status, const json_t *v)
{
    reqsign_httpd_respond_json_cache(r, status, v, NULL);
}

/* The detail of a 5xx answer, which its body leaves out (reqsign_error_json()),
 * as one log line: "NAME: METHOD PATH STATUS CODE: DETAIL". Non-printable
 * bytes are shown as '?'. */
static void log_error_detail(const struct reqsign_httpd_req *r, unsigned status,
                             const struct reqsign_error *e)
{
    char line[1024];
    const char *name = r->conn != NULL ? r->conn->h->name : "httpd";
    int k =
        snprintf(line, sizeof(line), "%.40s: %.40s %.*s %u %s: %s%s%s\n", name,
                 r->method != NULL ? r->method : "-", (int)(r->path.len > 200 ? 200 : r->path.len),
                 r->path.ptr != NULL ? r->path.ptr : "", status, reqsign_errname(e->code),
                 e->source[0] ? e->source : "", e->source[0] ? ": " : "",
                 e->message[0] ? e->message : reqsign_strerror(e->code));
    if (k <= 0)
        return;
    size_t n = (size_t)k < sizeof(line) ? (size_t)k : sizeof(line) - 1;
    line[n - 1] = '\n';
    for (size_t i = 0; i + 1 < n; i++)
        if ((unsigned char)line[i] < 0x20 || (unsigned char)line[i] >= 0x7f)
            line[i] = '?';
    ssize_t w = write(STDERR_FILENO, line, n);
    (void)w;
}

/* see httpd.h */
void reqsign_httpd_respond_error(struct reqsign_httpd_req *r, const struct reqsign_error *err)
{
    char buf[2048];
    size_t n = 0;
    struct reqsign_error e = *err;
    if (e.code == REQSIGN_OK)
        e.code = REQSIGN_E_INTERNAL;
    if (reqsign_http_status(e.code) >= 500)
        log_error_detail(r, (unsigned)reqsign_http_status(e.code), &e);
    if (reqsign_error_json(&e, (int64_t)time(NULL), buf, sizeof(buf), &n) != REQSIGN_OK) {
        e.message[0] = '\0';
        if (reqsign_error_json(&e, (int64_t)time(NULL), buf, sizeof(buf), &n) != REQSIGN_OK)
            return;
    }
    unsigned status = (unsigned)reqsign_http_status(e.code);
    reqsign_httpd_respond(r, status, "application/json", buf, n);
    if (status == 401)
        reqsign_httpd_add_header(r, "Accept-Signature", REQSIGN_HTTPD_ACCEPT_SIGNATURE);
    if (status == 429 || status == 503)
        reqsign_httpd_add_header(r, "Retry-After", "1");
}

/* see httpd.h */
void reqsign_httpd_fail(struct reqsign_httpd_req *r, enum reqsign_status code, const char *fmt, ...)
{
    struct reqsign_error e;
    reqsign_error_clear(&e);
    e.code = code;
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(e.message, sizeof(e.message), fmt, ap);
        va_end(ap);
    }
    reqsign_httpd_respond_error(r, &e);
}

/* see httpd.h */
void reqsign_httpd_add_header(struct reqsign_httpd_req *r, const char *name, const char *value)
{
    if (r->resp.status != 0)
        push_header(&r->resp, name, value);
}

/* see httpd.h */
int reqsign_httpd_responded(const struct reqsign_httpd_req *r)
{
    return r->resp.status != 0;
}

/* ---- request helpers ---- */

/* see httpd.h */
const char *reqsign_httpd_header(const struct reqsign_httpd_req *r, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i < r->view.n_headers; i++) {
        const struct reqsign_header *hd = &r->view.headers[i];
        if (hd->name.len == nl && strncasecmp(hd->name.ptr, name, nl) == 0)
            return hd->value.ptr; /* libmicrohttpd's values are NUL-terminated */
    }
    return NULL;
}

/* see httpd.h */
int reqsign_httpd_path_is(const struct reqsign_httpd_req *r, const char *s)
{
    size_t n = strlen(s);
    return r->path.len == n && memcmp(r->path.ptr, s, n) == 0;
}

/* ---- libmicrohttpd callbacks ---- */

/* ---- deadline watchdog ---- */

static void deadline_in(struct timespec *t, int seconds)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += seconds;
}

/* Set the deadline of @con's connection (called from libmicrohttpd's threads). */
static void track_deadline(struct reqsign_httpd *h, struct MHD_Connection *con, int seconds)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    struct tracked *t = ci != NULL ? ci->socket_context : NULL;
    if (t == NULL)
        return;
    pthread_mutex_lock(&h->wd_lock);
    deadline_in(&t->deadline, seconds);
    pthread_mutex_unlock(&h->wd_lock);
}

/* 1 if the request line in @b[@i..@n) (after the method's SP) is complete
 * and not "target SP HTTP/...": libmicrohttpd 0.9.75 closes such a line
 * (`GET /x y HTTP/1.1`) without an answer. 0 if fine or not complete yet. */
static int bad_request_line(const unsigned char *b, ssize_t i, ssize_t n)
{
    ssize_t lf = i;
    while (lf < n && b[lf] != '\n')
        lf++;
    if (lf == n)
        return 0; /* not all here: libmicrohttpd judges it */
    ssize_t end = lf > i && b[lf - 1] == '\r' ? lf - 1 : lf, sp = -1;
    for (ssize_t k = i; k < end; k++) {
        if (b[k] == ' ') {
            if (sp >= 0)
                return 1; /* a second SP: a blank inside the target */
            sp = k;
        }
    }
    return sp <= i || end - (sp + 1) < 5 || memcmp(b + sp + 1, "HTTP/", 5) != 0;
}

/* 1 if the first bytes waiting on @fd cannot begin an HTTP/1.1 request: after
 * optional empty lines (RFC 9112 section 2.2; more than
 * SNIFF_MAX_EMPTY_LINES, or a window full of them, are refused) a method,
 * token characters up to the first SP, and, if the line is all here,
 * "target SP HTTP/". A TLS ClientHello (0x16 0x03 ...) sent to the plain
 * port is not. 0 when they can, or nothing has arrived yet. The bytes are
 * only peeked at: libmicrohttpd reads them as usual. Only the first request
 * of a connection is looked at. */
static int not_http(MHD_socket fd)
{
    unsigned char b[SNIFF_BYTES];
    ssize_t n = recv(fd, b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
    ssize_t i = 0;
    int empty = 0;
    while (i < n && (b[i] == '\r' || b[i] == '\n'))
        empty += b[i++] == '\n';
    if (empty > SNIFF_MAX_EMPTY_LINES || (n == (ssize_t)sizeof(b) && i == n))
        return 1;
    ssize_t start = i;
    for (; i < n; i++) {
        if (b[i] == ' ')
            return i == start || bad_request_line(b, i + 1, n); /* an empty method */
        if (!reqsign_is_tchar(b[i]))                            /* a method is a token */
            return 1;
    }
    return 0;
}

/* Answer a connection whose first bytes are not HTTP with a 400 and close it
 * at once (libmicrohttpd would wait for a request line until the deadline).
 * Called before libmicrohttpd has read from @fd: the bytes waiting are read
 * and dropped first, so that the close does not turn into a reset that could
 * discard the answer on the client's side. libmicrohttpd then finds the
 * socket shut and closes the connection as any closed one. */
static void refuse_not_http(struct reqsign_httpd *h, MHD_socket fd)
{
    char sink[4096];
    for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++) {
    }
    struct reqsign_error e;
    reqsign_error_clear(&e);
    e.code = REQSIGN_E_INVALID_REQUEST;
    snprintf(e.message, sizeof(e.message), "the bytes received are not an HTTP request");
    char body[512], msg[1024];
    size_t bl = 0;
    if (reqsign_error_json(&e, (int64_t)time(NULL), body, sizeof(body), &bl) != REQSIGN_OK)
        bl = 0;
    int n = snprintf(msg, sizeof(msg),
                     "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n"
                     "%.*s",
                     bl, (int)bl, body);
    if (n > 0 && (size_t)n < sizeof(msg)) {
        ssize_t w = send(fd, msg, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)w;
    }
    shutdown(fd, SHUT_RDWR);
    /* a request log line like the others: no method, no path */
    char line[512], client[80] = "-", ip[INET6_ADDRSTRLEN];
    struct sockaddr_storage sa;
    socklen_t sl = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    if (getpeername(fd, (struct sockaddr *)&sa, &sl) != 0)
        sa.ss_family = AF_UNSPEC;
    if (sa.ss_family == AF_INET &&
        inet_ntop(AF_INET, &((struct sockaddr_in *)&sa)->sin_addr, ip, sizeof(ip)) != NULL)
        snprintf(client, sizeof(client), "%s:%u", ip,
                 (unsigned)ntohs(((struct sockaddr_in *)&sa)->sin_port));
    else if (sa.ss_family == AF_INET6 &&
             inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&sa)->sin6_addr, ip, sizeof(ip)) != NULL)
        snprintf(client, sizeof(client), "[%s]:%u", ip,
                 (unsigned)ntohs(((struct sockaddr_in6 *)&sa)->sin6_port));
    struct timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    struct reqsign_span none = {NULL, 0};
    size_t ln = reqsign_httpd_format_log(line, sizeof(line), h->log_json,
                                         (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000,
                                         client, NULL, none, 400, 0.0, NULL, NULL);
    log_append(h, line, ln);
}

/* MHD_OPTION_EXTERNAL_LOGGER: libmicrohttpd's (and GnuTLS's, through it)
 * error messages, e.g. "Error: received handshake message out of context."
 * for a failed TLS handshake, go to the program's log like its other lines:
 * "NAME: http: MESSAGE" in text, one JSON object {"ts", "program", "error"}
 * under --log-format json, so that a log shipper never meets a bare line.
 * One line whatever the message holds: bytes outside printable ASCII become
 * '?' (and '"' and '\\' are escaped in JSON). */
static void on_mhd_error(void *cls, const char *fmt, va_list ap)
{
    struct reqsign_httpd *h = cls;
    char msg[512], clean[1100], line[1400];
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    size_t n = m < 0 ? 0 : (size_t)m >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)m;
    while (n > 0 && (msg[n - 1] == '\n' || msg[n - 1] == '\r' || msg[n - 1] == ' '))
        n--;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 2 < sizeof(clean); i++) {
        unsigned char ch = (unsigned char)msg[i];
        if (h->log_json && (ch == '"' || ch == '\\'))
            clean[k++] = '\\';
        clean[k++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    clean[k] = '\0';
    int len;
    if (h->log_json) {
        struct timespec wall;
        clock_gettime(CLOCK_REALTIME, &wall);
        char ts[40];
        struct tm tm;
        gmtime_r(&wall.tv_sec, &tm);
        size_t tl = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(ts + tl, sizeof(ts) - tl, ".%03dZ", (int)(wall.tv_nsec / 1000000));
        len = snprintf(line, sizeof(line), "{\"ts\":\"%s\",\"program\":\"%s\",\"error\":\"%s\"}\n",
                       ts, h->name, clean);
    } else {
        len = snprintf(line, sizeof(line), "%s: http: %s\n", h->name, clean);
    }
    if (len > 0)
        log_append(h, line, (size_t)len < sizeof(line) ? (size_t)len : sizeof(line) - 1);
}

/* MHD_OPTION_NOTIFY_CONNECTION: keep the list of open connections. The
 * CLOSED notification comes before libmicrohttpd closes the socket, and the
 * watchdog only calls shutdown() under the same lock, so it never touches a
 * descriptor that was closed and reused. */
static void on_connection(void *cls, struct MHD_Connection *con, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct worker *w = cls;
    struct reqsign_httpd *h = w->h;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_sub(&w->conns, 1);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct tracked *t = calloc(1, sizeof(*t));
        if (t == NULL || ci == NULL) {
            free(t);
            return;
        }
        t->fd = ci->connect_fd;
        deadline_in(&t->deadline, REQSIGN_HTTPD_HEADER_SECONDS);
        /* libmicrohttpd has not read from the socket yet, and with
         * TCP_DEFER_ACCEPT the first bytes are usually there already */
        if (h->tls_cert == NULL && not_http(t->fd)) { /* TLS: a ClientHello is expected */
            refuse_not_http(h, t->fd);
            t->shut = 1;
        }
        pthread_mutex_lock(&h->wd_lock);
        t->next = h->tracked;
        if (h->tracked != NULL)
            h->tracked->prev = t;
        h->tracked = t;
        pthread_mutex_unlock(&h->wd_lock);
        *socket_context = t;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        struct tracked *t = *socket_context;
        if (t == NULL)
            return;
        pthread_mutex_lock(&h->wd_lock);
        if (t->prev != NULL)
            t->prev->next = t->next;
        else
            h->tracked = t->next;
        if (t->next != NULL)
            t->next->prev = t->prev;
        pthread_mutex_unlock(&h->wd_lock);
        free(t);
        *socket_context = NULL;
    }
}

/* The acceptor: every new connection goes to the worker with the fewest open
 * connections (ties to the lowest index). */
static void *acceptor(void *arg)
{
    struct reqsign_httpd *h = arg;
    struct pollfd pf[2] = {{.fd = h->listen_fd, .events = POLLIN},
                           {.fd = h->stop_pipe[0], .events = POLLIN}};
    for (;;) {
        if (poll(pf, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "%s: poll: %s\n", h->name, strerror(errno));
            return NULL;
        }
        if (pf[1].revents)
            return NULL;
        struct sockaddr_storage sa;
        socklen_t sl = sizeof(sa);
        int fd = accept4(h->listen_fd, (struct sockaddr *)&sa, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                struct timespec ts = {0, 10 * 1000000L}; /* out of descriptors: back off */
                nanosleep(&ts, NULL);
            }
            continue;
        }
        struct worker *best = &h->workers[0];
        for (unsigned i = 1; i < h->n_workers; i++)
            if (atomic_load(&h->workers[i].conns) < atomic_load(&best->conns))
                best = &h->workers[i];
        atomic_fetch_add(&best->conns, 1);
        /* libmicrohttpd owns @fd from here, and closes it on failure */
        if (MHD_add_connection(best->daemon, fd, (struct sockaddr *)&sa, sl) != MHD_YES)
            atomic_fetch_sub(&best->conns, 1);
    }
}

static void *watchdog(void *arg)
{
    struct reqsign_httpd *h = arg;
    pthread_mutex_lock(&h->wd_lock);
    while (!h->wd_stop) {
        struct timespec now, wake;
        clock_gettime(CLOCK_MONOTONIC, &now);
        for (struct tracked *t = h->tracked; t != NULL; t = t->next) {
            if (t->shut || now.tv_sec < t->deadline.tv_sec ||
                (now.tv_sec == t->deadline.tv_sec && now.tv_nsec < t->deadline.tv_nsec))
                continue;
            /* too slow: end the connection; libmicrohttpd sees the socket
             * fail and cleans up as for any closed connection */
            shutdown(t->fd, SHUT_RDWR);
            t->shut = 1;
        }
        clock_gettime(CLOCK_REALTIME, &wake);
        wake.tv_nsec += 250 * 1000000L;
        if (wake.tv_nsec >= 1000000000L) {
            wake.tv_sec++;
            wake.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->wd_cond, &h->wd_lock, &wake);
    }
    pthread_mutex_unlock(&h->wd_lock);
    return NULL;
}

static struct reqsign_httpd_conn *conn_new(struct reqsign_httpd *h, const char *uri)
{
    struct reqsign_httpd_conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->target_len = strlen(uri);
    c->target = malloc(c->target_len + 1);
    if (c->target == NULL) {
        free(c);
        return NULL;
    }
    memcpy(c->target, uri, c->target_len + 1);
    c->h = h;
    c->req.conn = c;
    clock_gettime(CLOCK_MONOTONIC, &c->started);
    return c;
}

/* MHD_OPTION_URI_LOG_CALLBACK: called with the request-target exactly as on
 * the request line, before libmicrohttpd unescapes it and splits the query. */
static void *on_uri(void *cls, const char *uri, struct MHD_Connection *con)
{
    (void)con;
    struct reqsign_httpd_conn *c = conn_new(cls, uri != NULL ? uri : "");
    if (c != NULL && uri != NULL) {
        c->uri_raw = uri;
        /* libmicrohttpd 0.9.75 ends the target with strlen(): where it
         * stops, the SP before the HTTP version was (now a NUL); a NUL byte
         * inside the target stops it earlier */
        if (strncmp(uri + c->target_len + 1, "HTTP/", 5) != 0)
            c->framing = "the request line holds a NUL byte or no HTTP version";
    }
    return c;
}

/*
 * Header values from libmicrohttpd 0.9.75 are measured with strlen(): a NUL
 * byte inside a value cuts it short without a trace in value_size (the
 * verifier saw "Host: a" for "Host: a\0evil"). The header line itself is
 * still in the connection's read buffer, laid out as
 *     NAME \0(was ':') [SP/HT...] VALUE \0(was CR) \0(was LF)
 * so a value that ends anywhere but at a CR LF line end - an embedded NUL, a
 * bare LF line end (which RFC 9112 section 2.2 lets a recipient refuse), a
 * line folded into the previous one (obs-fold, section 5.2: 400 allowed) -
 * is seen here. Only reads inside the header line and its line end.
 */
static int header_line_clean(const char *key, size_t key_size, const char *value, size_t value_size)
{
    uintptr_t after_colon = (uintptr_t)key + key_size + 1, v = (uintptr_t)value;
    if (v < after_colon || v - after_colon > CONN_MEMORY_LIMIT)
        return 0; /* the name grew (obs-fold appends to it) or moved */
    for (const char *p = key + key_size + 1; p < value; p++)
        if (*p != ' ' && *p != '\t')
            return 0;
    return key[key_size] == '\0' && value[value_size] == '\0' && value[value_size + 1] == '\0';
}

static int name_is(const char *key, size_t key_size, const char *name)
{
    return strlen(name) == key_size && strncasecmp(key, name, key_size) == 0;
}

static enum MHD_Result collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                      size_t key_size, const char *value, size_t value_size)
{
    struct reqsign_httpd_conn *c = cls;
    (void)kind;
    if (c->n_headers == c->cap_headers)
        return MHD_NO;
    if (value != NULL && c->framing == NULL && !header_line_clean(key, key_size, value, value_size))
        c->framing = "a header line holds a NUL byte, a bare LF or a folded line";
    struct reqsign_header *hd = &c->headers[c->n_headers++];
    hd->name = span_of(key, key_size);
    hd->value = span_of(value != NULL ? value : "", value != NULL ? value_size : 0);
    return MHD_YES;
}

/* Fill the request view of @r: the part shared by the server and the
 * in-process driver. @method and every header value are NUL-terminated.
 * Return: 1 if the request announces a body (Content-Length > 0 or a
 * Transfer-Encoding), else 0. */
static int fill_view(struct reqsign_httpd_req *r, const char *scheme, const char *method,
                     const char *target, size_t target_len, const struct reqsign_header *headers,
                     size_t n_headers)
{
    int has_body = 0;
    r->method = method;
    r->view.method = span_of(method, strlen(method));
    r->view.scheme = span_of(scheme, strlen(scheme));
    r->view.target = span_of(target, target_len);
    r->view.headers = headers;
    r->view.n_headers = n_headers;
    const char *host = reqsign_httpd_header(r, "Host");
    r->view.authority = span_of(host != NULL ? host : "", host != NULL ? strlen(host) : 0);

    const char *q = memchr(target, '?', target_len);
    size_t plen = q != NULL ? (size_t)(q - target) : target_len;
    r->path = span_of(target, plen);
    r->query = q != NULL ? span_of(q + 1, target_len - plen - 1) : span_of("", 0);

    const char *cl = reqsign_httpd_header(r, "Content-Length");
    if (cl != NULL) {
        char *end = NULL;
        errno = 0;
        unsigned long long v = strtoull(cl, &end, 10);
        r->has_content_length = 1;
        r->content_length = (errno != 0 || end == cl) ? UINT64_MAX : (uint64_t)v;
        if (r->content_length > 0)
            has_body = 1;
    }
    if (reqsign_httpd_header(r, "Transfer-Encoding") != NULL)
        has_body = 1;
    return has_body;
}

/* ---- the three phases, shared by the server and the in-process driver ---- */

/* All headers are in: 413 from Content-Length, else the server's headers(). */
static void phase_headers(const struct reqsign_httpd_handlers *hd, void *ctx, size_t max_body,
                          struct reqsign_httpd_req *r)
{
    if (r->has_content_length && r->content_length > max_body)
        reqsign_httpd_fail(r, REQSIGN_E_BODY_TOO_LARGE, "request body larger than %zu bytes",
                           max_body);
    else
        hd->headers(ctx, r);
}

/* Body bytes while no response is made: 413 beyond @max_body, else body(). */
static void phase_body(const struct reqsign_httpd_handlers *hd, void *ctx, size_t max_body,
                       struct reqsign_httpd_req *r, const char *data, size_t n)
{
    if (n > max_body - r->body_received) {
        reqsign_httpd_fail(r, REQSIGN_E_BODY_TOO_LARGE, "request body larger than %zu bytes",
                           max_body);
        return;
    }
    r->body_received += n;
    if (hd->body != NULL)
        hd->body(ctx, r, data, n);
}

/* The whole request is in: end() unless answered; 500 if still unanswered. */
static void phase_end(const struct reqsign_httpd_handlers *hd, void *ctx,
                      struct reqsign_httpd_req *r)
{
    if (r->resp.status == 0)
        hd->end(ctx, r);
    if (r->resp.status == 0)
        reqsign_httpd_fail(r, REQSIGN_E_INTERNAL, "no response");
}

/* ---- libmicrohttpd: the request view, sending the response ---- */

/* 1 if the field name is a token (RFC 9110 section 5.1): libmicrohttpd
 * 0.9.75 keeps blanks before the colon ("Content-Length : 5") and at the
 * start of a line right after the request line ("\tHost: x") in the name,
 * which RFC 9112 section 5.1 says to answer 400 (a proxy may read them as
 * the header and frame the request differently). */
static int field_name_ok(struct reqsign_span name)
{
    return reqsign_is_token(name.ptr, name.len);
}

/* 1 if the field value holds no control byte (%x00-1F but HTAB, %x7F;
 * RFC 9110 section 5.5): a bare CR in particular, which a proxy may take
 * for a line end. */
static int field_value_ok(struct reqsign_span value)
{
    for (size_t i = 0; i < value.len; i++) {
        unsigned char ch = (unsigned char)value.ptr[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return 0;
    }
    return 1;
}

/* The header part of check_framing(), shared with the in-process driver:
 * the reason the framing of @r is refused, or NULL. */
static const char *framing_problem(const struct reqsign_httpd_req *r)
{
    size_t n_host = 0, n_cl = 0, n_te = 0;
    for (size_t i = 0; i < r->view.n_headers; i++) {
        const struct reqsign_header *hd = &r->view.headers[i];
        if (!field_name_ok(hd->name))
            return "a header name holds a blank or a byte outside a token "
                   "(whitespace before the colon, a line starting with a blank)";
        if (!field_value_ok(hd->value))
            return "a header value holds a control byte (a bare CR, %x00-1F, %x7F)";
        if (name_is(hd->name.ptr, hd->name.len, "Host"))
            n_host++;
        else if (name_is(hd->name.ptr, hd->name.len, "Content-Length"))
            n_cl++;
        else if (name_is(hd->name.ptr, hd->name.len, "Transfer-Encoding"))
            n_te++;
    }
    if (n_host > 1)
        return "more than one Host header";
    if (n_cl > 1)
        return "more than one Content-Length header";
    if (n_te > 0 && n_cl > 0)
        return "both Transfer-Encoding and Content-Length";
    if (n_te > 1)
        return "more than one Transfer-Encoding header";
    if (n_te == 1 && strcasecmp(reqsign_httpd_header(r, "Transfer-Encoding"), "chunked") != 0)
        return "Transfer-Encoding must be chunked";
    return NULL;
}

/* Answer @r 400 for malformed framing (@why); the connection is closed. */
static void refuse_framing(struct reqsign_httpd_req *r, const char *why)
{
    reqsign_httpd_fail(r, REQSIGN_E_INVALID_REQUEST, "malformed HTTP framing: %s", why);
    reqsign_httpd_add_header(r, "Connection", "close");
}

/*
 * RFC 9112 framing that libmicrohttpd 0.9.75 lets through, where a proxy in
 * front of the server could read the request differently (request
 * smuggling): sets c->framing to the reason, and the request is answered 400
 * and the connection closed without reading on. Refused: two Host lines
 * (section 3.2), two Content-Length lines (libmicrohttpd takes the first and
 * reads the rest as the next request), Transfer-Encoding with Content-Length
 * (section 6.3), a Transfer-Encoding other than one "chunked" (the final
 * coding of a request must be chunked; no other coding is supported), and
 * NUL bytes (see header_line_clean(), on_uri()).
 */
static void check_framing(struct reqsign_httpd_conn *c, const char *method)
{
    const struct reqsign_httpd_req *r = &c->req;
    /* the method ends where libmicrohttpd put a NUL for the SP before the target */
    if (c->framing == NULL && c->uri_raw != NULL) {
        const char *p = method + strlen(method);
        if ((uintptr_t)p >= (uintptr_t)c->uri_raw || *p++ != '\0')
            c->framing = "the method holds a NUL byte";
        for (; c->framing == NULL && (uintptr_t)p < (uintptr_t)c->uri_raw; p++)
            if (*p != ' ')
                c->framing = "the method holds a NUL byte";
    }
    if (c->framing == NULL)
        c->framing = framing_problem(r);
}

/*
 * The whole header section, checked against libmicrohttpd 0.9.75's read
 * buffer: it runs from the method to method + REQUEST_HEADER_SIZE, with every
 * CR LF replaced by two NULs and each header's colon by one. Walking it from
 * the end of the HTTP version, every header (in arrival order) must start
 * exactly where the previous line ended, and the blank line must end the
 * section. A NUL byte anywhere in a header line - also one right before the
 * CR LF, which header_line_clean() cannot tell from a line end - a bare LF or
 * a folded line breaks the chain. 1 if clean. Reads stay inside the section.
 */
static int header_section_clean(const struct reqsign_httpd_conn *c, struct MHD_Connection *con,
                                const char *method, const char *version)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (ci == NULL || method == NULL || version == NULL)
        return 0;
    uintptr_t start = (uintptr_t)method, end = start + ci->header_size;
    const char *pos = version + strlen(version);
    if ((uintptr_t)version <= start || (uintptr_t)pos + 2 > end || pos[0] != '\0' || pos[1] != '\0')
        return 0;
    pos += 2;
    for (size_t i = 0; i < c->n_headers; i++) {
        const struct reqsign_header *hd = &c->headers[i];
        const char *p = hd->name.ptr + hd->name.len;
        if (hd->name.ptr != pos || (uintptr_t)p >= end || *p != '\0')
            return 0;
        for (p++; (uintptr_t)p < end && (*p == ' ' || *p == '\t'); p++) {
        }
        if (p != hd->value.ptr) /* the value starts after the colon and blanks */
            return 0;
        p += hd->value.len;
        if ((uintptr_t)p + 2 > end || p[0] != '\0' || p[1] != '\0')
            return 0;
        pos = p + 2;
    }
    return (uintptr_t)pos + 2 == end && pos[0] == '\0' && pos[1] == '\0';
}

/* Fill the request view once the headers are in. 0 or -1 (out of memory). */
static int build_view(struct reqsign_httpd_conn *c, struct MHD_Connection *con, const char *method,
                      const char *version)
{
    int n = MHD_get_connection_values_n(con, MHD_HEADER_KIND, NULL, NULL);
    c->cap_headers = n > 0 ? (size_t)n : 0;
    if (c->cap_headers > 0) {
        c->headers = calloc(c->cap_headers, sizeof(*c->headers));
        if (c->headers == NULL)
            return -1;
        MHD_get_connection_values_n(con, MHD_HEADER_KIND, collect_header, c);
    }
    c->has_body = fill_view(&c->req, c->h->scheme, method, c->target, c->target_len, c->headers,
                            c->n_headers);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    c->req.peer[0] = '\0';
    if (ci != NULL && ci->client_addr != NULL) {
        socklen_t sl = ci->client_addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                              : sizeof(struct sockaddr_in);
        if (getnameinfo(ci->client_addr, sl, c->req.peer, sizeof(c->req.peer), NULL, 0,
                        NI_NUMERICHOST) != 0)
            c->req.peer[0] = '\0';
    }
    check_framing(c, method);
    if (c->framing == NULL && !header_section_clean(c, con, method, version))
        c->framing = "a header line holds a NUL byte, a bare LF or a folded line";
    return 0;
}

struct secret_buf {
    char *p;
    size_t len;
};

/* The response is done with a secret body: wipe it, then free it. */
static void free_secret(void *cls)
{
    struct secret_buf *s = cls;
    reqsign_memzero(s->p, s->len);
    free(s->p);
    free(s);
}

/* A libmicrohttpd response from @rs; its body moves into it (a secret one is
 * wiped once sent or abandoned). NULL when out of memory (@rs unchanged). */
static struct MHD_Response *to_mhd(struct reqsign_httpd_response *rs)
{
    struct MHD_Response *resp;
    if (rs->secret) {
        struct secret_buf *s = malloc(sizeof(*s));
        if (s == NULL)
            return NULL;
        s->p = rs->body;
        s->len = rs->len;
        resp = MHD_create_response_from_buffer_with_free_callback_cls(rs->len, rs->body,
                                                                      free_secret, s);
        if (resp == NULL)
            free(s);
    } else {
        resp = MHD_create_response_from_buffer(rs->len, rs->body, MHD_RESPMEM_MUST_FREE);
    }
    if (resp == NULL)
        return NULL;
    rs->body = NULL;
    rs->len = 0;
    for (size_t i = 0; i < rs->n_headers; i++)
        MHD_add_response_header(resp, rs->headers[i].name, rs->headers[i].value);
    return resp;
}

static enum MHD_Result queue(struct reqsign_httpd_conn *c, struct MHD_Connection *con)
{
    struct reqsign_httpd_response *rs = &c->req.resp;
    struct MHD_Response *resp = to_mhd(rs);
    if (resp == NULL) { /* out of memory: a plain 500, else drop the connection */
        reqsign_httpd_response_clear(rs);
        reqsign_httpd_fail(&c->req, REQSIGN_E_NOMEM, "cannot build the response");
        if (rs->status == 0 || (resp = to_mhd(rs)) == NULL)
            return MHD_NO;
    }
    c->stage = STAGE_QUEUED;
    log_request(c, con);
    enum MHD_Result ret = MHD_queue_response(con, rs->status, resp);
    MHD_destroy_response(resp);
    reqsign_httpd_response_clear(rs); /* the headers; the body went with the response */
    return ret;
}

/* Body bytes may be a secret sent by mistake (a private key in POST
 * /v1/keys). They sit in libmicrohttpd's per-connection read buffer, which
 * lives on while the connection is kept alive; once handed over (marked
 * consumed) libmicrohttpd does not read them again, so they are wiped there. */
static void wipe_upload(const char *upload_data, size_t n)
{
    reqsign_memzero((void *)(uintptr_t)upload_data, n);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *con, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct reqsign_httpd *h = cls;
    struct reqsign_httpd_conn *c = *con_cls;
    if (c == NULL) { /* no URI callback ran (should not happen): use the URL we have */
        c = conn_new(h, url != NULL ? url : "");
        if (c == NULL)
            return MHD_NO;
        *con_cls = c;
    }
    struct reqsign_httpd_req *r = &c->req;

    if (c->stage == STAGE_NEW) {
        c->stage = STAGE_BODY;
        c->counted = 1; /* headers complete: in flight until completed */
        atomic_fetch_add(&h->inflight, 1);
        track_deadline(h, con, REQSIGN_HTTPD_REQUEST_SECONDS);
        if (build_view(c, con, method, version) != 0)
            return MHD_NO;
        if (c->framing != NULL) { /* answered at once; nothing more is read */
            refuse_framing(r, c->framing);
            return queue(c, con);
        }
        phase_headers(&h->handlers, h->ctx, h->max_body, r);
        /* Answer at once, before reading the body. Without a body, wait for
         * the next call so the connection can stay open (an early response
         * makes libmicrohttpd close it). */
        if (r->resp.status != 0 && c->has_body)
            return queue(c, con);
        return MHD_YES;
    }
    if (c->stage == STAGE_QUEUED)
        return MHD_YES;

    if (*upload_data_size > 0) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (r->resp.status != 0) { /* answer decided: read and drop the rest, up to a bound */
            c->discarded += n;
            wipe_upload(upload_data, n);
            return c->discarded > DISCARD_MAX ? MHD_NO : MHD_YES;
        }
        phase_body(&h->handlers, h->ctx, h->max_body, r, upload_data, n);
        wipe_upload(upload_data, n);
        return MHD_YES;
    }

    /* the whole request is in */
    phase_end(&h->handlers, h->ctx, r);
    if (r->resp.status == 0)
        return MHD_NO;
    return queue(c, con);
}

static void on_completed(void *cls, struct MHD_Connection *con, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct reqsign_httpd *h = cls;
    struct reqsign_httpd_conn *c = *con_cls;
    (void)toe;
    if (con != NULL) /* a kept-alive connection: the next request line is due */
        track_deadline(h, con, REQSIGN_HTTPD_HEADER_SECONDS);
    if (c == NULL)
        return;
    *con_cls = NULL;
    if (h->handlers.done != NULL)
        h->handlers.done(h->ctx, &c->req);
    reqsign_httpd_response_clear(&c->req.resp); /* a response never sent: wiped if secret */
    free(c->headers);
    free(c->target);
    if (c->counted)
        atomic_fetch_sub(&h->inflight, 1);
    free(c);
}

/* ---- in-process requests ---- */

struct reqsign_httpd_local {
    struct reqsign_httpd_req req;
    struct reqsign_httpd_handlers hd;
    void *ctx;
    size_t max_body;
    char scheme[16];
    char *method, *target;
    struct reqsign_header *headers;
    char *strings; /* the header names and values, each NUL-terminated */
};

/* 1 if @p (@n bytes) holds none of the bytes in @bad or a NUL. */
static int clean_bytes(const char *p, size_t n, const char *bad)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] == '\0' || strchr(bad, p[i]) != NULL)
            return 0;
    return 1;
}

static char *dup_mem(const char *p, size_t n)
{
    char *d = malloc(n + 1);
    if (d != NULL) {
        if (n > 0)
            memcpy(d, p, n);
        d[n] = '\0';
    }
    return d;
}

static void local_free(struct reqsign_httpd_local *l)
{
    reqsign_httpd_response_clear(&l->req.resp);
    free(l->method);
    free(l->target);
    free(l->headers);
    free(l->strings);
    free(l);
}

/* see httpd.h */
struct reqsign_httpd_local *reqsign_httpd_local_begin(const struct reqsign_httpd_opts *o,
                                                      const char *method, const char *target,
                                                      size_t target_len,
                                                      const struct reqsign_header *headers,
                                                      size_t n_headers)
{
    if (o == NULL || o->handlers == NULL || o->handlers->headers == NULL ||
        o->handlers->end == NULL || method == NULL || target == NULL || *method == '\0' ||
        target_len == 0 || !clean_bytes(method, strlen(method), "\r\n ") ||
        !clean_bytes(target, target_len, "\r\n "))
        return NULL;
    size_t total = 0;
    for (size_t i = 0; i < n_headers; i++) {
        const struct reqsign_header *hd = &headers[i];
        if (hd->name.len == 0 || !clean_bytes(hd->name.ptr, hd->name.len, "\r\n:") ||
            !clean_bytes(hd->value.ptr, hd->value.len, "\r\n"))
            return NULL;
        total += hd->name.len + hd->value.len + 2;
    }
    struct reqsign_httpd_local *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->hd = *o->handlers;
    l->ctx = o->ctx;
    l->max_body = o->max_body ? o->max_body : REQSIGN_HTTPD_DEFAULT_MAX_BODY;
    snprintf(l->scheme, sizeof(l->scheme), "%s", o->scheme != NULL ? o->scheme : "http");
    l->method = dup_mem(method, strlen(method));
    l->target = dup_mem(target, target_len);
    l->headers = calloc(n_headers > 0 ? n_headers : 1, sizeof(*l->headers));
    l->strings = malloc(total > 0 ? total : 1);
    if (l->method == NULL || l->target == NULL || l->headers == NULL || l->strings == NULL) {
        local_free(l);
        return NULL;
    }
    char *p = l->strings;
    for (size_t i = 0; i < n_headers; i++) {
        const struct reqsign_header *hd = &headers[i];
        memcpy(p, hd->name.ptr, hd->name.len);
        p[hd->name.len] = '\0';
        l->headers[i].name = span_of(p, hd->name.len);
        p += hd->name.len + 1;
        if (hd->value.len > 0)
            memcpy(p, hd->value.ptr, hd->value.len);
        p[hd->value.len] = '\0';
        l->headers[i].value = span_of(p, hd->value.len);
        p += hd->value.len + 1;
    }
    (void)fill_view(&l->req, l->scheme, l->method, l->target, target_len, l->headers, n_headers);
    const char *why = framing_problem(&l->req);
    if (why != NULL)
        refuse_framing(&l->req, why);
    else
        phase_headers(&l->hd, l->ctx, l->max_body, &l->req);
    return l;
}

/* see httpd.h */
int reqsign_httpd_local_body(struct reqsign_httpd_local *l, const char *data, size_t len)
{
    if (l->req.resp.status == 0 && len > 0)
        phase_body(&l->hd, l->ctx, l->max_body, &l->req, data, len);
    return l->req.resp.status != 0;
}

/* see httpd.h */
void reqsign_httpd_local_finish(struct reqsign_httpd_local *l, struct reqsign_httpd_response *out)
{
    phase_end(&l->hd, l->ctx, &l->req);
    if (l->hd.done != NULL)
        l->hd.done(l->ctx, &l->req);
    *out = l->req.resp;
    memset(&l->req.resp, 0, sizeof(l->req.resp));
    local_free(l);
}

/* ---- start, run, stop ---- */

/* see httpd.h */
unsigned reqsign_httpd_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1u : n > MAX_WORKERS ? MAX_WORKERS : (unsigned)n;
}

/* ---- TLS ---- */

/* The whole of @path, malloc'd, in *@out / *@len; the caller wipes a key's
 * bytes. Return: 0, or -1 with errno. */
static int read_file(const char *path, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (b == NULL || n > 1024 * 1024) { /* no certificate or key is this large */
            if (b != NULL) {
                reqsign_memzero(b, n);
                free(b);
            }
            close(fd);
            errno = b == NULL ? ENOMEM : EFBIG;
            return -1;
        }
        if (n == cap) {
            char *nb = malloc(cap * 2); /* not realloc: the old bytes are wiped */
            if (nb != NULL)
                memcpy(nb, b, n);
            reqsign_memzero(b, n);
            free(b);
            b = nb;
            cap *= 2;
            continue;
        }
        ssize_t r = read(fd, b + n, cap - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            int e = errno;
            reqsign_memzero(b, n);
            free(b);
            close(fd);
            errno = e;
            return -1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    *out = b;
    *len = n;
    return 0;
}

static void tls_creds_free(struct tls_creds *c)
{
    while (c != NULL) {
        struct tls_creds *next = c->older;
        for (unsigned i = 0; i < c->n; i++)
            gnutls_pcert_deinit(&c->pcerts[i]);
        if (c->key != NULL)
            gnutls_privkey_deinit(c->key);
        free(c);
        c = next;
    }
}

/* Load the chain in @cert_path and the key in @key_path (PEM). The key
 * file's bytes are wiped once parsed. Return: the credentials, or NULL with
 * the reason in @why. */
static struct tls_creds *tls_load(const char *cert_path, const char *key_path, char *why,
                                  size_t why_cap)
{
    char *cert = NULL, *key = NULL;
    size_t cert_len = 0, key_len = 0;
    struct tls_creds *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(why, why_cap, "out of memory");
        return NULL;
    }
    if (read_file(cert_path, &cert, &cert_len) != 0) {
        snprintf(why, why_cap, "%s: %s", cert_path, strerror(errno));
        goto fail;
    }
    if (read_file(key_path, &key, &key_len) != 0) {
        snprintf(why, why_cap, "%s: %s", key_path, strerror(errno));
        goto fail;
    }
    gnutls_datum_t d = {(unsigned char *)cert, (unsigned)cert_len};
    c->n = TLS_CHAIN_MAX;
    int rc = gnutls_pcert_list_import_x509_raw(c->pcerts, &c->n, &d, GNUTLS_X509_FMT_PEM, 0);
    if (rc < 0 || c->n == 0) {
        c->n = 0;
        snprintf(why, why_cap, "%s: not a PEM certificate chain: %s", cert_path,
                 gnutls_strerror(rc));
        goto fail;
    }
    gnutls_datum_t k = {(unsigned char *)key, (unsigned)key_len};
    if ((rc = gnutls_privkey_init(&c->key)) < 0 ||
        (rc = gnutls_privkey_import_x509_raw(c->key, &k, GNUTLS_X509_FMT_PEM, NULL, 0)) < 0) {
        snprintf(why, why_cap, "%s: not an unencrypted PEM private key: %s", key_path,
                 gnutls_strerror(rc));
        goto fail;
    }
    /* the key must be the certificate's: compare the public keys */
    gnutls_pubkey_t from_key = NULL;
    gnutls_datum_t a = {NULL, 0}, b = {NULL, 0};
    int same = gnutls_pubkey_init(&from_key) == 0 &&
               gnutls_pubkey_import_privkey(from_key, c->key, 0, 0) == 0 &&
               gnutls_pubkey_export2(from_key, GNUTLS_X509_FMT_DER, &a) == 0 &&
               gnutls_pubkey_export2(c->pcerts[0].pubkey, GNUTLS_X509_FMT_DER, &b) == 0 &&
               a.size == b.size && memcmp(a.data, b.data, a.size) == 0;
    gnutls_free(a.data);
    gnutls_free(b.data);
    if (from_key != NULL)
        gnutls_pubkey_deinit(from_key);
    if (!same) {
        snprintf(why, why_cap, "%s is not the private key of the certificate in %s", key_path,
                 cert_path);
        goto fail;
    }
    free(cert);
    reqsign_memzero(key, key_len);
    free(key);
    return c;
fail:
    free(cert);
    if (key != NULL) {
        reqsign_memzero(key, key_len);
        free(key);
    }
    tls_creds_free(c);
    return NULL;
}

/* MHD_OPTION_HTTPS_CERT_CALLBACK (gnutls_certificate_retrieve_function2):
 * the current chain and key. GnuTLS does not free what is returned. */
static int tls_retrieve(gnutls_session_t s, const gnutls_datum_t *req_ca_dn, int nreqs,
                        const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                        gnutls_pcert_st **pcert, unsigned int *pcert_length, gnutls_privkey_t *pkey)
{
    (void)s;
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    pthread_mutex_lock(&tls_lock);
    struct tls_creds *c = tls_current;
    pthread_mutex_unlock(&tls_lock);
    if (c == NULL)
        return -1;
    *pcert = c->pcerts;
    *pcert_length = c->n;
    *pkey = c->key;
    return 0;
}

/* Read the certificate and key again (SIGHUP). The old credentials stay
 * allocated for handshakes that hold them. Return: 0, or -1 (logged). */
static int tls_reload(struct reqsign_httpd *h)
{
    char why[512];
    struct tls_creds *c = tls_load(h->tls_cert, h->tls_key, why, sizeof(why));
    if (c == NULL) {
        fprintf(stderr, "%s: SIGHUP: TLS reload failed, keeping the current certificate: %s\n",
                h->name, why);
        return -1;
    }
    pthread_mutex_lock(&tls_lock);
    c->older = tls_current;
    tls_current = c;
    pthread_mutex_unlock(&tls_lock);
    fprintf(stderr, "%s: SIGHUP: TLS certificate reloaded from %s\n", h->name, h->tls_cert);
    return 0;
}

static int is_loopback_host(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return strcmp(host, "localhost") == 0;
}

/* see httpd.h */
int reqsign_httpd_check_authority(const char *prog, size_t n_authorities, int any_authority)
{
    if (n_authorities == 0 && !any_authority) {
        fprintf(stderr,
                "%s: --authority HOST[:PORT] is required: the authority clients sign "
                "for this service (repeatable), or --any-authority to accept "
                "whatever Host a request names\n",
                prog);
        return -1;
    }
    if (n_authorities > 0 && any_authority) {
        fprintf(stderr,
                "%s: --authority and --any-authority exclude each other\n(see '%s "
                "--help')\n",
                prog, prog);
        return -1;
    }
    if (any_authority)
        fprintf(stderr,
                "%s: warning: --any-authority: @authority is taken from each request's "
                "Host, so a request signed for another service that trusts the same "
                "keys is accepted here; use --authority\n",
                prog);
    return 0;
}

/* see httpd.h */
int reqsign_httpd_check_opts(const struct reqsign_httpd_opts *o)
{
    const char *name = o->name != NULL ? o->name : "httpd";
    char host[256];
    uint16_t port;
    if (reqsign_httpd_parse_listen(o->listen, host, sizeof(host), &port) != 0) {
        fprintf(stderr, "%s: --listen wants HOST:PORT or [IPV6]:PORT, got '%s'\n", name,
                o->listen != NULL ? o->listen : "");
        return -1;
    }
    if ((o->tls_cert == NULL) != (o->tls_key == NULL)) {
        fprintf(stderr, "%s: --tls-cert and --tls-key go together\n", name);
        return -1;
    }
    const char *files[2] = {o->tls_cert, o->tls_key};
    for (int i = 0; i < 2; i++)
        if (files[i] != NULL && access(files[i], R_OK) != 0) {
            fprintf(stderr, "%s: %s: %s\n", name, files[i], strerror(errno));
            return -1;
        }
    if (o->tls_cert == NULL && !o->insecure_http && !is_loopback_host(host)) {
        fprintf(stderr,
                "%s: refusing plain HTTP on %s, which is not a loopback address: give "
                "--tls-cert FILE --tls-key FILE, or --insecure-http if a TLS-terminating proxy "
                "is in front (see --public-scheme)\n",
                name, o->listen);
        return -1;
    }
    return 0;
}

/* Stop the acceptor and close the listening socket: new connections are
 * refused, open ones go on. */
static void stop_accepting(struct reqsign_httpd *h)
{
    if (h->acceptor_running) {
        ssize_t wr;
        do
            wr = write(h->stop_pipe[1], "x", 1);
        while (wr < 0 && errno == EINTR);
        pthread_join(h->acceptor, NULL);
        h->acceptor_running = 0;
    }
    if (h->listen_fd >= 0)
        close(h->listen_fd);
    h->listen_fd = -1;
}

/* Release what reqsign_httpd_start() made (workers still running are stopped). */
static void httpd_free(struct reqsign_httpd *h)
{
    stop_accepting(h);
    for (unsigned i = 0; i < h->n_workers; i++)
        MHD_stop_daemon(h->workers[i].daemon);
    if (h->wd_running) {
        pthread_mutex_lock(&h->wd_lock);
        h->wd_stop = 1;
        pthread_cond_signal(&h->wd_cond);
        pthread_mutex_unlock(&h->wd_lock);
        pthread_join(h->wd_thread, NULL);
        h->wd_running = 0;
    }
    if (h->log_running) { /* after the workers: their last lines are written too */
        pthread_mutex_lock(&h->log_lock);
        h->log_stop = 1;
        pthread_cond_signal(&h->log_cond);
        pthread_mutex_unlock(&h->log_lock);
        pthread_join(h->log_thread, NULL);
        h->log_running = 0;
    }
    pthread_mutex_destroy(&h->log_lock);
    pthread_cond_destroy(&h->log_cond);
    if (h->tls_cert != NULL) { /* the workers are stopped: no handshake holds them */
        pthread_mutex_lock(&tls_lock);
        tls_creds_free(tls_current);
        tls_current = NULL;
        pthread_mutex_unlock(&tls_lock);
    }
    free(h->tls_cert);
    free(h->tls_key);
    while (h->tracked != NULL) { /* normally empty: every connection reported CLOSED */
        struct tracked *t = h->tracked;
        h->tracked = t->next;
        free(t);
    }
    for (int i = 0; i < 2; i++)
        if (h->stop_pipe[i] >= 0)
            close(h->stop_pipe[i]);
    free(h->workers);
    pthread_mutex_destroy(&h->wd_lock);
    pthread_cond_destroy(&h->wd_cond);
    free(h);
}

/* see httpd.h */
struct reqsign_httpd *reqsign_httpd_start(const struct reqsign_httpd_opts *o)
{
    const char *name = o->name != NULL ? o->name : "httpd";
    char host[256];
    uint16_t port;
    if (o->handlers == NULL || o->handlers->headers == NULL || o->handlers->end == NULL) {
        fprintf(stderr, "%s: internal error: handlers missing\n", name);
        return NULL;
    }
    if (reqsign_httpd_check_opts(o) != 0 ||
        reqsign_httpd_parse_listen(o->listen, host, sizeof(host), &port) != 0)
        return NULL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0 || ai == NULL) {
        fprintf(stderr, "%s: cannot resolve '%s': %s\n", name, host, gai_strerror(gai));
        return NULL;
    }

    /* Signals: SIGTERM/SIGINT are taken by sigwait() in reqsign_httpd_run();
     * block them before any thread starts so every thread inherits the mask. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct reqsign_httpd *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        freeaddrinfo(ai);
        return NULL;
    }
    h->handlers = *o->handlers;
    h->ctx = o->ctx;
    h->name = name;
    h->max_body = o->max_body ? o->max_body : REQSIGN_HTTPD_DEFAULT_MAX_BODY;
    snprintf(h->scheme, sizeof(h->scheme), "%s",
             o->scheme != NULL     ? o->scheme
             : o->tls_cert != NULL ? "https"
                                   : "http");
    h->log_json = o->log_json;
    if (o->tls_cert != NULL) {
        char why[512];
        struct tls_creds *c = tls_load(o->tls_cert, o->tls_key, why, sizeof(why));
        h->tls_cert = strdup(o->tls_cert);
        h->tls_key = strdup(o->tls_key);
        if (c == NULL || h->tls_cert == NULL || h->tls_key == NULL) {
            fprintf(stderr, "%s: TLS: %s\n", name, c == NULL ? why : "out of memory");
            tls_creds_free(c);
            free(h->tls_cert);
            free(h->tls_key);
            free(h);
            freeaddrinfo(ai);
            return NULL;
        }
        pthread_mutex_lock(&tls_lock);
        tls_creds_free(tls_current);
        tls_current = c;
        pthread_mutex_unlock(&tls_lock);
    }
    atomic_init(&h->inflight, 0);
    pthread_mutex_init(&h->wd_lock, NULL);
    pthread_mutex_init(&h->log_lock, NULL);
    pthread_cond_init(&h->log_cond, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_cond_init(&h->wd_cond, &ca);
    pthread_condattr_destroy(&ca);

    unsigned threads = o->threads ? o->threads : reqsign_httpd_default_threads();
    unsigned timeout = o->timeout ? o->timeout : REQSIGN_HTTPD_DEFAULT_TIMEOUT;
    if (threads > MAX_WORKERS)
        threads = MAX_WORKERS;
    h->stop_pipe[0] = h->stop_pipe[1] = -1;
    h->listen_fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (h->listen_fd < 0 ||
        setsockopt(h->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (ai->ai_family == AF_INET6 &&
         setsockopt(h->listen_fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) != 0) ||
        bind(h->listen_fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(h->listen_fd, 511) != 0 ||
        pipe2(h->stop_pipe, O_CLOEXEC) != 0) {
        fprintf(stderr, "%s: cannot listen on %s: %s\n", name, o->listen, strerror(errno));
        freeaddrinfo(ai);
        httpd_free(h);
        return NULL;
    }
    freeaddrinfo(ai);
    /* connections are handed over once their first bytes are in, so that
     * on_connection() can look at them before libmicrohttpd reads them */
    int defer = DEFER_ACCEPT_SECONDS;
    if (setsockopt(h->listen_fd, IPPROTO_TCP, TCP_DEFER_ACCEPT, &defer, sizeof(defer)) != 0)
        fprintf(stderr,
                "%s: warning: no TCP_DEFER_ACCEPT: non-HTTP bytes may wait for the "
                "header deadline\n",
                name);
    h->workers = calloc(threads, sizeof(*h->workers));
    if (h->workers == NULL) {
        httpd_free(h);
        return NULL;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_USE_ITC |
                     MHD_USE_ERROR_LOG | MHD_USE_NO_LISTEN_SOCKET;
    /* TLS: every worker does the handshake of the connections
     * MHD_add_connection() hands it, with the certificate tls_retrieve()
     * gives at that moment (so a reload reaches new connections) */
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_CERT_CALLBACK, 0, (void *)(uintptr_t)tls_retrieve},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)(uintptr_t)TLS_PRIORITIES},
        {MHD_OPTION_END, 0, NULL}};
    if (h->tls_cert != NULL)
        flags |= MHD_USE_TLS;
    else
        tls_opts[0].option = MHD_OPTION_END;
    for (unsigned i = 0; i < threads; i++) {
        struct worker *w = &h->workers[i];
        w->h = h;
        atomic_init(&w->conns, 0);
        /* the logger first: libmicrohttpd takes it for what follows */
        w->daemon = MHD_start_daemon(
            flags, 0, NULL, NULL, on_access, h, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_error, h,
            MHD_OPTION_CONNECTION_TIMEOUT, timeout, MHD_OPTION_CONNECTION_MEMORY_LIMIT,
            CONN_MEMORY_LIMIT, MHD_OPTION_CONNECTION_LIMIT, CONN_LIMIT / threads + 1,
            MHD_OPTION_URI_LOG_CALLBACK, on_uri, h, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h,
            MHD_OPTION_NOTIFY_CONNECTION, on_connection, w, MHD_OPTION_STRICT_FOR_CLIENT, 1,
            MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
        if (w->daemon == NULL) {
            fprintf(stderr, "%s: cannot start an HTTP worker\n", name);
            httpd_free(h);
            return NULL;
        }
        h->n_workers = i + 1;
    }
    if (pthread_create(&h->wd_thread, NULL, watchdog, h) == 0)
        h->wd_running = 1;
    else
        fprintf(stderr, "%s: warning: no deadline watchdog: slow clients are not cut off\n", name);
    if (pthread_create(&h->log_thread, NULL, logger, h) == 0)
        h->log_running = 1;
    if (pthread_create(&h->acceptor, NULL, acceptor, h) != 0) {
        fprintf(stderr, "%s: cannot start the acceptor thread\n", name);
        httpd_free(h);
        return NULL;
    }
    h->acceptor_running = 1;
    struct sockaddr_storage bound;
    socklen_t bl = sizeof(bound);
    unsigned actual = port;
    if (getsockname(h->listen_fd, (struct sockaddr *)&bound, &bl) == 0)
        actual = ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port
                                                   : ((struct sockaddr_in *)&bound)->sin_port);
    int v6 = strchr(host, ':') != NULL;
    printf("listening on %s://%s%s%s:%u\n", h->tls_cert != NULL ? "https" : "http", v6 ? "[" : "",
           host, v6 ? "]" : "", actual);
    fflush(stdout);
    return h;
}

/* see httpd.h */
int reqsign_httpd_run(struct reqsign_httpd *h)
{
    sigset_t set;
    int sig = 0;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    for (;;) {
        if (sigwait(&set, &sig) != 0)
            continue;
        if (sig != SIGHUP)
            break;
        if (h->tls_cert != NULL)
            tls_reload(h);
        else
            fprintf(stderr, "%s: SIGHUP: nothing to reload (no TLS)\n", h->name);
    }
    fprintf(stderr, "%s: signal %d: stopping\n", h->name, sig);

    /* Stop accepting; let requests already begun finish. Idle keep-alive
     * connections are not waited for: stopping the workers closes them. */
    stop_accepting(h);
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        if (atomic_load(&h->inflight) <= 0)
            break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (now.tv_sec - start.tv_sec >= REQSIGN_HTTPD_DRAIN_SECONDS) {
            fprintf(stderr, "%s: %ld request(s) still in flight; closing them\n", h->name,
                    (long)atomic_load(&h->inflight));
            break;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    httpd_free(h);
    return 0;
}
