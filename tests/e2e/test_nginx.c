/* e2e-nginx: Debian's nginx (/usr/sbin/nginx) with ngx_http_reqsign_module.so,
 * worker_processes 2, a generated configuration in a temporary directory, in
 * front of an upstream in this process that records every request it gets.
 * What reaches the upstream is what the module let through: never a replay,
 * never a tampered body, never an unsigned request where signing is on.
 *
 * Keys are made here and written to the SQLite key store nginx reads; the
 * requests are signed by the client library (raw sockets or libcurl) and by
 * the CLI (`reqsign send`). Every test ends by stopping nginx (-s quit, then
 * SIGKILL) and checking the error log for a worker killed by a signal.
 */
#include <criterion/criterion.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/key.h>
#include <reqsign/keystore_sqlite.h>
#ifdef REQSIGN_TEST_PG
#include <reqsign/keystore_pg.h>
#endif
#include <reqsign/signer.h>

#include <curl/curl.h>

#include "badinput_table.h"
#include "e2eutil.h"
#include "pgutil.h"
#include "redisutil.h"

#define NGINX_BIN "/usr/sbin/nginx"
#define MAX_RECORDS 1024

/* ---- the upstream: records every request ---- */

struct record {
    char *head; /* request line and header fields, NUL-terminated */
    char *body;
    size_t body_len;
};

static struct {
    int fd, port;
    pthread_t thread;
    volatile int stop;
    pthread_mutex_t mu;
    struct record rec[MAX_RECORDS];
    size_t n;
} up = {.fd = -1, .mu = PTHREAD_MUTEX_INITIALIZER};

static const char *find_crlf2(const char *b, size_t n)
{
    for (size_t i = 0; i + 3 < n; i++)
        if (memcmp(b + i, "\r\n\r\n", 4) == 0)
            return b + i;
    return NULL;
}

/* The value of header @name in @head (static buffer), or NULL. */
static const char *head_header(const char *head, const char *name)
{
    static char v[1024];
    size_t nl = strlen(name);
    for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p, "\r\n")) {
        p += 2;
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *s = p + nl + 1, *e = strstr(s, "\r\n");
            while (*s == ' ')
                s++;
            size_t l = e != NULL ? (size_t)(e - s) : strlen(s);
            if (l >= sizeof(v))
                l = sizeof(v) - 1;
            memcpy(v, s, l);
            v[l] = '\0';
            return v;
        }
    }
    return NULL;
}

/* Read one request from @fd (Content-Length or chunked), record it, answer 200. */
static void up_serve(int fd)
{
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t hl = 0; /* header length with the blank line; 0: not yet complete */
    for (;;) {
        if (n + 4096 > cap)
            b = realloc(b, cap *= 2);
        ssize_t r = recv(fd, b + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        b[n] = '\0';
        if (hl == 0) {
            const char *end = find_crlf2(b, n);
            if (end == NULL)
                continue;
            hl = (size_t)(end - b) + 4;
        }
        char *head = strndup(b, hl - 4);
        const char *cl = head_header(head, "Content-Length");
        const char *te = head_header(head, "Transfer-Encoding");
        char *body = NULL;
        size_t blen = 0;
        int complete = 0;
        if (te != NULL && strcasecmp(te, "chunked") == 0) {
            /* decode; complete at the last chunk */
            size_t p = hl;
            body = malloc(n + 1);
            for (;;) {
                const char *le = strstr(b + p, "\r\n");
                if (le == NULL)
                    break;
                size_t cs = strtoul(b + p, NULL, 16);
                size_t ds = (size_t)(le - b) + 2;
                if (cs == 0) {
                    complete = 1;
                    break;
                }
                if (ds + cs + 2 > n)
                    break;
                memcpy(body + blen, b + ds, cs);
                blen += cs;
                p = ds + cs + 2;
            }
        } else {
            size_t want = cl != NULL ? strtoul(cl, NULL, 10) : 0;
            if (n - hl >= want) {
                complete = 1;
                body = malloc(want + 1);
                memcpy(body, b + hl, want);
                blen = want;
            }
        }
        if (!complete) {
            free(head);
            free(body);
            continue;
        }
        body[blen] = '\0';
        pthread_mutex_lock(&up.mu);
        if (up.n < MAX_RECORDS) {
            up.rec[up.n].head = head;
            up.rec[up.n].body = body;
            up.rec[up.n].body_len = blen;
            up.n++;
            head = NULL;
            body = NULL;
        }
        pthread_mutex_unlock(&up.mu);
        free(head);
        free(body);
        static const char ok[] =
            "HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\nupstream\n";
        ssize_t w = send(fd, ok, sizeof(ok) - 1, MSG_NOSIGNAL);
        (void)w;
        break;
    }
    free(b);
    close(fd);
}

static void *up_main(void *arg)
{
    (void)arg;
    while (!up.stop) {
        struct pollfd p = {.fd = up.fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(up.fd, NULL, NULL);
        if (c >= 0) {
            struct timeval tv = {5, 0};
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            up_serve(c);
        }
    }
    return NULL;
}

static int listen_any(int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof(a);
    cr_assert_geq(fd, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &al), 0);
    *port = ntohs(a.sin_port);
    return fd;
}

static void up_start(void)
{
    up.fd = listen_any(&up.port);
    cr_assert_eq(listen(up.fd, 128), 0);
    up.stop = 0;
    cr_assert_eq(pthread_create(&up.thread, NULL, up_main, NULL), 0);
}

static void up_stop(void)
{
    up.stop = 1;
    pthread_join(up.thread, NULL);
    close(up.fd);
    for (size_t i = 0; i < up.n; i++) {
        free(up.rec[i].head);
        free(up.rec[i].body);
    }
    up.n = 0;
}

static size_t up_count(void)
{
    pthread_mutex_lock(&up.mu);
    size_t n = up.n;
    pthread_mutex_unlock(&up.mu);
    return n;
}

/* ---- keys in the SQLite key store nginx reads ---- */

struct tkey {
    struct reqsign_signer *signer;
    char keyid[REQSIGN_THUMBPRINT_BUF];
    char pem_path[600];
};

static char *dir;
static char db_path[600];
static int64_t next_expires_at;  /* for the next make_key: 0 never */
static const char *next_account; /* for the next make_key: NULL the operator's */

/* A new key with @scopes in @ks (NULL: the SQLite store at db_path). */
static void make_key_in(struct tkey *k, const char *scopes, struct reqsign_keystore *in)
{
    struct reqsign_error err;
    struct reqsign_key *key = NULL;
    struct reqsign_key_record rec;
    memset(&rec, 0, sizeof(rec));
    cr_assert_not_null(key = reqsign_key_generate(&err));
    cr_assert_eq(reqsign_key_thumbprint(key, k->keyid), REQSIGN_OK);
    reqsign_key_public_raw(key, rec.public_key);
    snprintf(rec.keyid, sizeof(rec.keyid), "%s", k->keyid);
    snprintf(rec.label, sizeof(rec.label), "nginx test");
    rec.publish = 1; /* listed in reqsignd's public directory (key_directory) */
    snprintf(rec.scopes, sizeof(rec.scopes), "%s", scopes);
    rec.created_at = (int64_t)time(NULL) - 10;
    rec.expires_at = next_expires_at;
    next_expires_at = 0;
    snprintf(rec.account, sizeof(rec.account), "%s", next_account != NULL ? next_account : "");
    next_account = NULL;
    struct reqsign_keystore *ks =
        in != NULL ? in : reqsign_keystore_sqlite_open(db_path, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "key store: %s", err.message);
    cr_assert_eq(reqsign_keystore_insert(ks, &rec, &err), REQSIGN_OK, "%s", err.message);
    if (in == NULL)
        reqsign_keystore_free(ks);

    char pem[1024];
    size_t n = 0;
    cr_assert_eq(reqsign_key_private_pem(key, pem, sizeof(pem), &n), REQSIGN_OK);
    snprintf(k->pem_path, sizeof(k->pem_path), "%s/%s.pem", dir, k->keyid);
    int fd = open(k->pem_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, pem, n), (ssize_t)n);
    close(fd);

    struct reqsign_signer_opts o;
    memset(&o, 0, sizeof(o));
    o.key = key;
    k->signer = reqsign_signer_new(&o, &err);
    cr_assert_not_null(k->signer, "%s", err.message);
    reqsign_memzero(pem, sizeof(pem));
    reqsign_key_free(key);
}

static void make_key(struct tkey *k, const char *scopes)
{
    make_key_in(k, scopes, NULL);
}

static void revoke_key(const struct tkey *k)
{
    struct reqsign_error err;
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(db_path, 0, &err);
    cr_assert_not_null(ks, "%s", err.message);
    cr_assert_eq(reqsign_keystore_revoke(ks, k->keyid, strlen(k->keyid), (int64_t)time(NULL), &err),
                 REQSIGN_OK, "%s", err.message);
    reqsign_keystore_free(ks);
}

/* Disable (@on) or enable again the key @k in the SQLite key store. */
static void set_key_disabled(const struct tkey *k, int on)
{
    struct reqsign_error err;
    struct reqsign_key_record rec;
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(db_path, 0, &err);
    cr_assert_not_null(ks, "%s", err.message);
    cr_assert_eq(reqsign_keystore_get(ks, k->keyid, strlen(k->keyid), &rec, &err), REQSIGN_OK, "%s",
                 err.message);
    rec.disabled_at = on ? (int64_t)time(NULL) : 0;
    cr_assert_eq(reqsign_keystore_update(ks, &rec, &err), REQSIGN_OK, "%s", err.message);
    reqsign_keystore_free(ks);
}

/* ---- nginx ---- */

static pid_t ngx_pid;
static int port;
static char conf_path[600], err_log[600], acc_log[600];

/* Extra lines in the http block / the zone. */
struct ngx_opts {
    const char *zone;          /* "SIZE [per_key=N]"; NULL: "1m" */
    const char *nonce_store;   /* instead of the shared zone, e.g. a Redis URL */
    const char *authority;     /* reqsign_public_authority; NULL: 127.0.0.1:PORT */
    const char *key_store;     /* NULL: sqlite:db_path */
    const char *key_directory; /* reqsign_key_directory URL instead of a key store */
    const char *cache_ttl;     /* NULL: 1s */
    int h2;                    /* also a TLS + HTTP/2 server on h2_port (cert made by the test) */
    const char *extra;         /* more lines in the first server block */
};

static int h2_port;

static void write_conf(const struct ngx_opts *o)
{
    char path[700], auth[300];
    FILE *f = fopen(conf_path, "w");
    cr_assert_not_null(f);
    if (o != NULL && o->authority != NULL)
        snprintf(auth, sizeof(auth), "%s", o->authority);
    else
        snprintf(auth, sizeof(auth), "127.0.0.1:%d", port);
    fprintf(
        f,
        "load_module %s;\n"
        "worker_processes 2;\n"
        "daemon off;\n"
        "master_process on;\n"
        "%s"
        "pid %s/nginx.pid;\n"
        "error_log %s info;\n"
        "events { worker_connections 512; }\n"
        "http {\n"
        "  log_format rs '$pid $status $reqsign_result $reqsign_keyid acct=$reqsign_account';\n"
        "  access_log %s/access.log rs;\n"
        "  client_body_temp_path %s/body;\n"
        "  proxy_temp_path %s/proxy;\n"
        "  fastcgi_temp_path %s/fastcgi;\n"
        "  uwsgi_temp_path %s/uwsgi;\n"
        "  scgi_temp_path %s/scgi;\n"
        "  client_body_buffer_size 1k;\n"
        "  client_max_body_size 10m;\n"
        "  large_client_header_buffers 4 32k;\n"
        "  %s \"%s%s\";\n"
        "  reqsign_nonce_store %s%s;\n"
        "  reqsign_cache_ttl %s;\n"
        "  reqsign_max_body 1m;\n"
        "  server {\n"
        "    listen 127.0.0.1:%d reuseport;\n"
        "    reqsign_public_authority %s;\n"
        "    reqsign on;\n"
        "    proxy_set_header Reqsign-Keyid $reqsign_keyid;\n"
        "    proxy_set_header Reqsign-Scopes $reqsign_scopes;\n"
        "    proxy_set_header Reqsign-Result $reqsign_result;\n"
        "    proxy_set_header Reqsign-Account $reqsign_account;\n"
        "    location / { proxy_pass http://127.0.0.1:%d; }\n"
        "    location = /health { reqsign off; return 200 \"alive\\n\"; }\n"
        "    location /twice/ { root %s; try_files /nonexistent @fallback; }\n"
        "    location @fallback { proxy_pass http://127.0.0.1:%d; }\n"
        "    location /admin/ { reqsign_require_scope admin; proxy_pass http://127.0.0.1:%d; }\n"
        "    location /obs/ { reqsign observe; proxy_pass http://127.0.0.1:%d; }\n"
        "    location /stream/ { proxy_request_buffering off; proxy_http_version 1.1;\n"
        "                        proxy_pass http://127.0.0.1:%d; }\n"
        "%s"
        "  }\n",
        tu_prog("NGINX_MODULE"), geteuid() == 0 ? "user root root;\n" : "", dir, err_log, dir, dir,
        dir, dir, dir, dir,
        o != NULL && o->key_directory != NULL ? "reqsign_key_directory" : "reqsign_key_store",
        o != NULL && (o->key_store != NULL || o->key_directory != NULL) ? "" : "sqlite:",
        o != NULL && o->key_directory != NULL ? o->key_directory
        : o != NULL && o->key_store != NULL   ? o->key_store
                                              : db_path,
        o != NULL && o->nonce_store != NULL ? o->nonce_store : "shared:reqsign_test:",
        o != NULL && o->nonce_store != NULL ? ""
        : o != NULL && o->zone != NULL      ? o->zone
                                            : "1m",
        o != NULL && o->cache_ttl != NULL ? o->cache_ttl : "1s", port, auth, up.port, dir, up.port,
        up.port, up.port, up.port, o != NULL && o->extra != NULL ? o->extra : "");
    if (o != NULL && o->h2)
        fprintf(f,
                "  server {\n"
                "    listen 127.0.0.1:%d ssl http2;\n"
                "    ssl_certificate %s/cert.pem;\n"
                "    ssl_certificate_key %s/cert.key;\n"
                "    reqsign_public_authority 127.0.0.1:%d;\n"
                "    reqsign on;\n"
                "    proxy_set_header Reqsign-Keyid $reqsign_keyid;\n"
                "    location / { proxy_pass http://127.0.0.1:%d; }\n"
                "  }\n",
                h2_port, dir, dir, h2_port, up.port);
    fprintf(f, "}\n");
    fclose(f);
    snprintf(path, sizeof(path), "%s/body", dir);
    mkdir(path, 0700);
}

static size_t count_in_file(const char *path, const char *needle)
{
    char *s = NULL;
    size_t n = 0, cap = 0, c = 0;
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    while (!feof(f)) {
        if (n + 4096 + 1 > cap)
            s = realloc(s, cap = cap * 2 + 8192);
        n += fread(s + n, 1, 4096, f);
    }
    fclose(f);
    if (s == NULL)
        return 0;
    s[n] = '\0';
    for (const char *p = strstr(s, needle); p != NULL; p = strstr(p + 1, needle))
        c++;
    free(s);
    return c;
}

/* The number of @needle in @path once it reached @count (nginx writes its
 * logs after the answer), or after 5 s. */
static size_t wait_count(const char *path, const char *needle, size_t count)
{
    size_t c = 0;
    for (int i = 0; i < 100; i++) {
        if ((c = count_in_file(path, needle)) >= count)
            return c;
        usleep(50000);
    }
    return c;
}

static void wait_log(const char *needle, size_t count)
{
    size_t c = wait_count(err_log, needle, count);
    cr_assert_geq(c, count, "error log: fewer than %zu \"%s\"", count, needle);
}

static void ngx_start(const struct ngx_opts *o)
{
    char out[700];
    int lfd = listen_any(&port); /* a free port (closed again: nginx binds it) */
    int lfd2 = listen_any(&h2_port);
    close(lfd);
    close(lfd2);
    if (o != NULL && o->h2) {
        char cmd[1600];
        int st;
        snprintf(cmd, sizeof(cmd),
                 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
                 "-keyout '%s/cert.key' -out '%s/cert.pem' -days 1 -subj /CN=127.0.0.1 2>&1",
                 dir, dir);
        char *o_out = tu_run(cmd, &st);
        cr_assert_eq(st, 0, "openssl: %s", o_out);
        free(o_out);
    }
    write_conf(o);
    snprintf(out, sizeof(out), "%s/nginx.stderr", dir);
    ngx_pid = fork();
    cr_assert_geq(ngx_pid, 0);
    if (ngx_pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 2);
            dup2(fd, 1);
        }
        execl(NGINX_BIN, "nginx", "-p", dir, "-c", conf_path, (char *)NULL);
        _exit(127);
    }
    wait_log("start worker process", 2);
    for (int i = 0; i < 100; i++) {
        int fd = tu_connect_port(port);
        if (fd >= 0) {
            close(fd);
            return;
        }
        usleep(50000);
    }
    cr_assert_fail("nginx did not listen on %d", port);
}

static void ngx_reload(void)
{
    size_t before = count_in_file(err_log, "start worker process");
    cr_assert_eq(kill(ngx_pid, SIGHUP), 0);
    wait_log("start worker process", before + 2);
    /* the old workers stop accepting before they exit */
    wait_log("gracefully shutting down", 2);
}

static void ngx_stop(void)
{
    int st = 0;
    if (ngx_pid <= 0)
        return;
    kill(ngx_pid, SIGQUIT);
    for (int i = 0; i < 100; i++) {
        if (waitpid(ngx_pid, &st, WNOHANG) == ngx_pid) {
            ngx_pid = 0;
            return;
        }
        usleep(50000);
    }
    kill(ngx_pid, SIGKILL);
    waitpid(ngx_pid, &st, 0);
    ngx_pid = 0;
}

/* A second nginx (its own prefix directory dir/b): swap_instance() makes it
 * the one the functions above act on, and back. */
static struct {
    pid_t pid;
    int port, h2_port;
    char *dir;
    char conf[600], err[600], acc[600];
} alt;

static void swap_instance(void)
{
    char tmp[600];
    pid_t p = ngx_pid;
    ngx_pid = alt.pid;
    alt.pid = p;
    int t = port;
    port = alt.port;
    alt.port = t;
    t = h2_port;
    h2_port = alt.h2_port;
    alt.h2_port = t;
    char *d = dir;
    dir = alt.dir;
    alt.dir = d;
    memcpy(tmp, conf_path, sizeof(tmp));
    memcpy(conf_path, alt.conf, sizeof(tmp));
    memcpy(alt.conf, tmp, sizeof(tmp));
    memcpy(tmp, err_log, sizeof(tmp));
    memcpy(err_log, alt.err, sizeof(tmp));
    memcpy(alt.err, tmp, sizeof(tmp));
    memcpy(tmp, acc_log, sizeof(tmp));
    memcpy(acc_log, alt.acc, sizeof(tmp));
    memcpy(alt.acc, tmp, sizeof(tmp));
}

#ifdef REQSIGN_TEST_REDIS /* only two_instances_share_redis runs two nginx */
static void alt_init(void)
{
    char path[700];
    snprintf(path, sizeof(path), "%s/b", dir);
    cr_assert_eq(mkdir(path, 0700), 0);
    alt.dir = strdup(path);
    snprintf(alt.conf, sizeof(alt.conf), "%s/nginx.conf", alt.dir);
    snprintf(alt.err, sizeof(alt.err), "%s/error.log", alt.dir);
    snprintf(alt.acc, sizeof(alt.acc), "%s/access.log", alt.dir);
}
#endif

static void setup(void)
{
    dir = tu_tmpdir();
    snprintf(db_path, sizeof(db_path), "%s/keys.db", dir);
    snprintf(conf_path, sizeof(conf_path), "%s/nginx.conf", dir);
    snprintf(err_log, sizeof(err_log), "%s/error.log", dir);
    snprintf(acc_log, sizeof(acc_log), "%s/access.log", dir);
    up_start();
    /* the key store must exist before nginx reads its configuration */
    struct reqsign_error err;
    struct reqsign_keystore *ks =
        reqsign_keystore_sqlite_open(db_path, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "%s", err.message);
    reqsign_keystore_free(ks);
}

static void teardown(void)
{
    char cmd[700];
    int st;
    size_t crashes = 0, alerts = 0;
    if (alt.dir != NULL) {
        swap_instance();
        ngx_stop();
        crashes += count_in_file(err_log, "exited on signal");
        alerts += count_in_file(err_log, "[alert]");
        swap_instance();
        free(alt.dir);
        alt.dir = NULL;
    }
    ngx_stop();
    up_stop();
    /* no worker died: the master logs "exited on signal N" */
    crashes += count_in_file(err_log, "exited on signal");
    alerts += count_in_file(err_log, "[alert]");
    if (crashes == 0 && alerts == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        free(tu_run(cmd, &st));
    }
    cr_expect_eq(crashes, 0, "a worker died: see %s", err_log);
    cr_expect_eq(alerts, 0, "alerts in %s", err_log);
    free(dir);
}

/* The end of every test body: stop nginx (both instances) and fail the test
 * if a worker died or nginx logged an alert. teardown() checks the same, but
 * a failure in .fini is printed, not counted. */
static void end_checked(void)
{
    size_t crashes = 0, alerts = 0;
    if (alt.dir != NULL) {
        swap_instance();
        ngx_stop();
        crashes += count_in_file(err_log, "exited on signal");
        alerts += count_in_file(err_log, "[alert]");
        swap_instance();
    }
    ngx_stop();
    crashes += count_in_file(err_log, "exited on signal");
    alerts += count_in_file(err_log, "[alert]");
    cr_assert_eq(crashes, 0, "a worker died: see %s", err_log);
    cr_assert_eq(alerts, 0, "alerts in %s", err_log);
}

/* ---- requests ---- */

static char *url(const char *path)
{
    static char u[4][1024];
    static int i;
    i = (i + 1) % 4;
    snprintf(u[i], sizeof(u[i]), "http://127.0.0.1:%d%s", port, path);
    return u[i];
}

/* A raw HTTP/1.1 request: @sig's fields, @body sent (with Content-Length,
 * or chunked in pieces of @chunk bytes when @chunk > 0), @extra lines. */
static char *build_req(const char *method, const char *path, const struct reqsign_signed *sig,
                       const char *body, size_t len, size_t chunk, const char *extra, size_t *out)
{
    size_t cap = 8192 + len * 2, n = 0;
    char *b = malloc(cap);
    n += (size_t)snprintf(b + n, cap - n, "%s %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n", method, path,
                          port);
    for (size_t i = 0; sig != NULL && i < sig->n_headers; i++)
        n += (size_t)snprintf(b + n, cap - n, "%.*s: %.*s\r\n", (int)sig->headers[i].name.len,
                              sig->headers[i].name.ptr, (int)sig->headers[i].value.len,
                              sig->headers[i].value.ptr);
    if (extra != NULL)
        n += (size_t)snprintf(b + n, cap - n, "%s\r\n", extra);
    if (body != NULL && chunk > 0) {
        n += (size_t)snprintf(b + n, cap - n,
                              "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n");
        for (size_t off = 0; off < len; off += chunk) {
            size_t c = len - off < chunk ? len - off : chunk;
            n += (size_t)snprintf(b + n, cap - n, "%zx\r\n", c);
            memcpy(b + n, body + off, c);
            n += c;
            memcpy(b + n, "\r\n", 2);
            n += 2;
        }
        n += (size_t)snprintf(b + n, cap - n, "0\r\n\r\n");
    } else {
        n += (size_t)snprintf(b + n, cap - n, "Content-Length: %zu\r\nConnection: close\r\n\r\n",
                              body != NULL ? len : 0);
        if (body != NULL) {
            memcpy(b + n, body, len);
            n += len;
        }
    }
    *out = n;
    return b;
}

/* Send @req on a new connection, read the answer until close; return the
 * status (-1 on a transport failure) and the whole answer in *@resp. No
 * assertion inside: used from several threads. */
static int half_close; /* shut the write side after sending (the client sends no more) */

static int send_raw(const char *req, size_t len, char **resp)
{
    int fd = tu_connect_port(port);
    if (resp != NULL)
        *resp = NULL;
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    for (size_t off = 0; off < len;) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* refused early: the answer may still be there */
        off += (size_t)w;
    }
    if (half_close)
        shutdown(fd, SHUT_WR);
    size_t cap = 8192, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (n + 1024 > cap)
            b = realloc(b, cap *= 2);
        ssize_t r = recv(fd, b + n, cap - n - 1, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    b[n] = '\0';
    close(fd);
    int status = -1;
    if (sscanf(b, "HTTP/1.1 %d", &status) != 1)
        status = -1;
    if (resp != NULL)
        *resp = b;
    else
        free(b);
    return status;
}

/* The error name in an answer's JSON body (static buffer), or "". */
static const char *resp_error(const char *resp)
{
    static char e[64];
    const char *p = resp != NULL ? strstr(resp, "{\"error\":\"") : NULL;
    e[0] = '\0';
    if (p != NULL)
        sscanf(p + 10, "%63[^\"]", e);
    return e;
}

/* Sign (@sbody, the body signed) and send @body (NULL: the signed one). */
static int signed_send(const struct tkey *k, const char *method, const char *path,
                       const char *sbody, size_t slen, const char *body, size_t len, size_t chunk,
                       const char *extra, char **resp)
{
    struct reqsign_signed sig;
    size_t n;
    sign(k->signer, method, url(path), sbody, slen, &sig);
    char *req = build_req(method, path, &sig, body != NULL ? body : sbody,
                          body != NULL ? len : slen, chunk, extra, &n);
    int st = send_raw(req, n, resp);
    free(req);
    return st;
}

static char *big_body(size_t n, unsigned seed)
{
    char *b = malloc(n + 1);
    for (size_t i = 0; i < n; i++)
        b[i] = (char)('a' + (i * 7 + seed) % 26);
    b[n] = '\0';
    return b;
}

TestSuite(nginx, .init = setup, .fini = teardown, .timeout = 60);

/* The CLI and the libcurl client: 200, and the upstream got the keyid from
 * the module, not the Reqsign-Keyid the client sent. Unsigned: 401, the
 * spec's JSON, Accept-Signature, nothing upstream. */
Test(nginx, valid_requests_reach_upstream_with_module_keyid)
{
    struct tkey k;
    make_key(&k, "read write");
    ngx_start(NULL);

    char cmd[2048];
    int st;
    snprintf(cmd, sizeof(cmd),
             "'%s' send --key '%s' -H 'Reqsign-Keyid: forged' -d 'hello from the cli' '%s' 2>&1",
             tu_cli(), k.pem_path, url("/cli?x=1"));
    char *out = tu_run(cmd, &st);
    cr_assert_eq(st, 0, "reqsign send: %s", out);
    cr_assert(strstr(out, "upstream") != NULL, "%s", out);
    free(out);
    cr_assert_eq(up_count(), 1);
    cr_assert_str_eq(up.rec[0].body, "hello from the cli");
    cr_assert_str_eq(head_header(up.rec[0].head, "Reqsign-Keyid"), k.keyid);
    cr_assert_str_eq(head_header(up.rec[0].head, "Reqsign-Result"), "ok");
    cr_assert_str_eq(head_header(up.rec[0].head, "Reqsign-Scopes"), "read write");
    cr_assert_str_eq(head_header(up.rec[0].head, "Reqsign-Account"), REQSIGN_ACCOUNT_OPERATOR);

    /* libcurl, with a forged Reqsign-Keyid */
    struct reqsign_signed sig;
    static const char body[] = "{\"amount\":1}";
    sign(k.signer, "POST", url("/pay"), body, strlen(body), &sig);
    const char *extra[] = {"Reqsign-Keyid: forged", "Content-Type: application/json", NULL};
    struct resp r = send_req("POST", url("/pay"), body, strlen(body), &sig, extra);
    cr_assert_eq(r.status, 200, "%ld %s", r.status, r.body);
    resp_free(&r);
    cr_assert_eq(up_count(), 2);
    cr_assert_str_eq(head_header(up.rec[1].head, "Reqsign-Keyid"), k.keyid);

    /* unsigned, with a forged keyid: refused, nothing upstream */
    const char *forged[] = {"Reqsign-Keyid: forged", NULL};
    r = send_req("POST", url("/pay"), body, strlen(body), NULL, forged);
    cr_assert_eq(r.status, 401);
    cr_assert_str_eq(err_name(&r), "sig_missing");
    cr_assert_not_null(resp_header(&r, "Accept-Signature"));
    cr_assert_str_eq(resp_header(&r, "Content-Type"), "application/json");
    resp_free(&r);
    cr_assert_eq(up_count(), 2);
    end_checked();
}

/* $reqsign_account (issue 13): a customer account's key -> the upstream and
 * the access log get its account id; a forged Reqsign-Account is replaced;
 * a failed request (observe mode) has none. */
Test(nginx, account_reaches_upstream)
{
    static const char acct[] = "acct_nginxTestCustomer00001";
    struct reqsign_error err;
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(db_path, 0, &err);
    cr_assert_not_null(ks, "%s", err.message);
    struct reqsign_account a;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "%s", acct);
    snprintf(a.name, sizeof(a.name), "a customer");
    a.key_limit = 10;
    a.created_at = (int64_t)time(NULL) - 10;
    cr_assert_eq(reqsign_keystore_account_insert(ks, &a, &err), REQSIGN_OK, "%s", err.message);
    reqsign_keystore_free(ks);
    struct tkey k;
    next_account = acct;
    make_key(&k, "read");
    ngx_start(NULL);

    char *resp;
    cr_assert_eq(signed_send(&k, "POST", "/acct", "a=1", 3, NULL, 0, 0,
                             "Reqsign-Account: acct_forged", &resp),
                 200, "%s", resp);
    free(resp);
    cr_assert_eq(up_count(), 1);
    cr_assert_str_eq(head_header(up.rec[0].head, "Reqsign-Account"), acct);
    cr_assert_str_eq(head_header(up.rec[0].head, "Reqsign-Keyid"), k.keyid);
    char needle[100];
    snprintf(needle, sizeof(needle), "200 ok %s acct=%s", k.keyid, acct);
    cr_assert_eq(wait_count(acc_log, needle, 1), 1, "access log: no \"%s\"", needle);

    /* observe mode, a tampered body: passes, but with no account */
    cr_assert_eq(signed_send(&k, "POST", "/obs/acct", "a=1", 3, "a=2", 3, 0,
                             "Reqsign-Account: acct_forged", NULL),
                 200);
    cr_assert_eq(up_count(), 2);
    cr_assert_str_eq(head_header(up.rec[1].head, "Reqsign-Result"), "digest_mismatch");
    cr_assert_null(head_header(up.rec[1].head, "Reqsign-Account"));
    end_checked();
}

struct race {
    const char *req;
    size_t len;
    pthread_barrier_t *bar;
    int status;
};

static void *race_one(void *arg)
{
    struct race *r = arg;
    pthread_barrier_wait(r->bar);
    r->status = send_raw(r->req, r->len, NULL);
    return NULL;
}

/* The same signed request on 24 connections at once, spread over both
 * workers (reuseport): exactly one reaches the upstream. */
Test(nginx, concurrent_replays_exactly_one_reaches_upstream)
{
    enum { N = 24 };
    struct tkey k;
    make_key(&k, "");
    ngx_start(NULL);
    struct reqsign_signed sig;
    static const char body[] = "transfer=100";
    size_t n;
    sign(k.signer, "POST", url("/race"), body, strlen(body), &sig);
    char *req = build_req("POST", "/race", &sig, body, strlen(body), 0, NULL, &n);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, N);
    struct race rc[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        rc[i] = (struct race){req, n, &bar, 0};
        cr_assert_eq(pthread_create(&th[i], NULL, race_one, &rc[i]), 0);
    }
    int ok = 0, replay = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        ok += rc[i].status == 200;
        replay += rc[i].status == 401;
    }
    pthread_barrier_destroy(&bar);
    free(req);
    cr_assert_eq(ok, 1, "%d answers 200", ok);
    cr_assert_eq(replay, N - 1);
    cr_assert_eq(up_count(), 1);
    cr_assert_eq(wait_count(acc_log, " 401 replay ", N - 1), N - 1);

    /* both workers answered: two distinct pids in the access log */
    char cmd[800];
    int st;
    snprintf(cmd, sizeof(cmd), "cut -d' ' -f1 '%s' | sort -u | wc -l", acc_log);
    char *out = tu_run(cmd, &st);
    cr_expect_eq(atoi(out), 2, "requests served by %s worker(s)", out);
    free(out);
    end_checked();
}

/* A reload between the first use and the replay: the window survives. */
Test(nginx, replay_after_reload_is_refused)
{
    struct tkey k;
    make_key(&k, "");
    ngx_start(NULL);
    struct reqsign_signed sig;
    size_t n;
    char *resp;
    sign(k.signer, "POST", url("/once"), "x=1", 3, &sig);
    char *req = build_req("POST", "/once", &sig, "x=1", 3, 0, NULL, &n);
    cr_assert_eq(send_raw(req, n, NULL), 200);
    ngx_reload();
    for (int i = 0; i < 4; i++) { /* whichever new worker takes it */
        cr_assert_eq(send_raw(req, n, &resp), 401, "%s", resp);
        cr_assert_str_eq(resp_error(resp), "replay");
        free(resp);
    }
    free(req);
    cr_assert_eq(up_count(), 1);
    /* and fresh requests still pass after the reload */
    cr_assert_eq(signed_send(&k, "GET", "/after", NULL, 0, NULL, 0, 0, NULL, NULL), 200);
    cr_assert_eq(up_count(), 2);
    end_checked();
}

/* Bodies that do not match their Content-Digest never reach the upstream:
 * in memory, spooled to a temp file (> client_body_buffer_size 1k), chunked,
 * and with proxy_request_buffering off. */
Test(nginx, tampered_bodies_never_reach_upstream)
{
    struct tkey k;
    make_key(&k, "");
    ngx_start(NULL);
    char *resp;
    static const char good[] = "amount=1", bad[] = "amount=9";
    const size_t big = 64 * 1024;
    char *b1 = big_body(big, 1), *b2 = big_body(big, 1);
    b2[big / 2] ^= 1; /* one bit in the middle of the spooled part */

    struct {
        const char *path;
        size_t chunk;
    } cases[] = {{"/mem", 0}, {"/chunked", 5}, {"/stream/x", 0}, {"/stream/c", 4000}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        /* small body, tampered */
        cr_assert_eq(
            signed_send(&k, "POST", cases[c].path, good, 8, bad, 8, cases[c].chunk, NULL, &resp),
            401, "%s: %s", cases[c].path, resp);
        cr_assert_str_eq(resp_error(resp), "digest_mismatch", "%s", resp);
        cr_assert_not_null(strstr(resp, "Accept-Signature:"));
        free(resp);
        /* spooled body, tampered */
        cr_assert_eq(
            signed_send(&k, "POST", cases[c].path, b1, big, b2, big, cases[c].chunk, NULL, &resp),
            401, "%s: %s", cases[c].path, resp);
        cr_assert_str_eq(resp_error(resp), "digest_mismatch");
        free(resp);
        cr_assert_eq(up_count(), 2 * c, "%s: a tampered body reached the upstream", cases[c].path);
        /* the same, untampered: through */
        cr_assert_eq(
            signed_send(&k, "POST", cases[c].path, good, 8, NULL, 0, cases[c].chunk, NULL, &resp),
            200, "%s: %s", cases[c].path, resp);
        free(resp);
        cr_assert_eq(
            signed_send(&k, "POST", cases[c].path, b1, big, NULL, 0, cases[c].chunk, NULL, &resp),
            200, "%s: %s", cases[c].path, resp);
        free(resp);
        cr_assert_eq(up_count(), 2 * c + 2);
    }
    cr_assert_geq(count_in_file(err_log, "buffered to a temporary file"), 1);
    for (size_t i = 0; i < up.n; i++) {
        if (up.rec[i].body_len == big)
            cr_assert(memcmp(up.rec[i].body, b1, big) == 0, "record %zu", i);
        else
            cr_assert_str_eq(up.rec[i].body, good);
    }
    /* a Content-Digest (signed) that is not the body's: digest_mismatch */
    struct reqsign_signed sig;
    struct reqsign_sign_input in;
    struct reqsign_error err;
    size_t n;
    memset(&in, 0, sizeof(in));
    in.method = "POST";
    in.url = url("/wrong");
    in.content_digest = "sha-256=:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=:"; /* of "" */
    cr_assert_eq(reqsign_signer_sign(k.signer, &in, &sig, &err), REQSIGN_OK, "%s", err.message);
    char *req = build_req("POST", "/wrong", &sig, good, 8, 0, NULL, &n);
    cr_assert_eq(send_raw(req, n, &resp), 401, "%s", resp);
    cr_assert_str_eq(resp_error(resp), "digest_mismatch");
    free(resp);
    free(req);
    free(b1);
    free(b2);
    cr_assert_eq(up_count(), 8);
    end_checked();
}

/* reqsign_require_scope: 403 scope without it, 200 with it. */
Test(nginx, require_scope)
{
    struct tkey reader, admin;
    make_key(&reader, "read");
    make_key(&admin, "read admin");
    ngx_start(NULL);
    char *resp;
    cr_assert_eq(signed_send(&reader, "GET", "/admin/x", NULL, 0, NULL, 0, 0, NULL, &resp), 403,
                 "%s", resp);
    cr_assert_str_eq(resp_error(resp), "scope");
    free(resp);
    cr_assert_eq(up_count(), 0);
    cr_assert_eq(signed_send(&admin, "GET", "/admin/x", NULL, 0, NULL, 0, 0, NULL, NULL), 200);
    cr_assert_eq(signed_send(&reader, "GET", "/x", NULL, 0, NULL, 0, 0, NULL, NULL), 200);
    cr_assert_eq(up_count(), 2);
    end_checked();
}

/* observe: everything passes, $reqsign_result says what verification found,
 * and the identity is forwarded only for a request that verified. */
Test(nginx, observe_passes_and_sets_result)
{
    struct tkey k;
    make_key(&k, "read");
    ngx_start(NULL);
    const char *forged = "Reqsign-Keyid: forged";
    cr_assert_eq(send_raw("GET /obs/a HTTP/1.1\r\nHost: x\r\nReqsign-Keyid: forged\r\n"
                          "Connection: close\r\n\r\n",
                          strlen("GET /obs/a HTTP/1.1\r\nHost: x\r\nReqsign-Keyid: forged\r\n"
                                 "Connection: close\r\n\r\n"),
                          NULL),
                 200);
    cr_assert_eq(signed_send(&k, "POST", "/obs/b", "a=1", 3, "a=2", 3, 0, forged, NULL), 200);
    cr_assert_eq(signed_send(&k, "POST", "/obs/c", "a=1", 3, NULL, 0, 0, forged, NULL), 200);
    cr_assert_eq(up_count(), 3);
    cr_assert_str_eq(head_header(up.rec[0].head, "Reqsign-Result"), "sig_missing");
    cr_assert_null(head_header(up.rec[0].head, "Reqsign-Keyid"));
    cr_assert_str_eq(head_header(up.rec[1].head, "Reqsign-Result"), "digest_mismatch");
    cr_assert_null(head_header(up.rec[1].head, "Reqsign-Keyid"));
    cr_assert_str_eq(head_header(up.rec[2].head, "Reqsign-Result"), "ok");
    cr_assert_str_eq(head_header(up.rec[2].head, "Reqsign-Keyid"), k.keyid);
    cr_assert_eq(wait_count(acc_log, " 200 digest_mismatch -", 1), 1);
    cr_assert_eq(wait_count(err_log, "reqsign: observed: digest_mismatch:", 1), 1);
    end_checked();
}

/* A revoked key is refused within the cache bound (reqsign_cache_ttl 1s). */
Test(nginx, revoked_key_refused_within_cache_ttl)
{
    struct tkey k;
    make_key(&k, "");
    ngx_start(NULL);
    for (int i = 0; i < 4; i++) /* cached as active in both workers */
        cr_assert_eq(signed_send(&k, "GET", "/r", NULL, 0, NULL, 0, 0, NULL, NULL), 200);
    revoke_key(&k);
    usleep(2100 * 1000); /* ttl + 1 s */
    char *resp;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(signed_send(&k, "GET", "/r", NULL, 0, NULL, 0, 0, NULL, &resp), 401, "%s",
                     resp);
        cr_assert_str_eq(resp_error(resp), "key_revoked");
        free(resp);
    }
    cr_assert_eq(up_count(), 4);

    /* a key past its expiry: refused at once (checked at every lookup) */
    struct tkey old;
    next_expires_at = (int64_t)time(NULL) - 1;
    make_key(&old, "");
    cr_assert_eq(signed_send(&old, "GET", "/r", NULL, 0, NULL, 0, 0, NULL, &resp), 401, "%s", resp);
    cr_assert_str_eq(resp_error(resp), "key_expired");
    free(resp);
    cr_assert_eq(up_count(), 4);
    end_checked();
}

/* A disabled key is refused (401 key_disabled) within the cache bound
 * (reqsign_cache_ttl 1s) in both workers, and accepted again within it once
 * enabled (disabling is reversible, unlike a revocation). */
Test(nginx, disabled_key_refused_within_cache_ttl)
{
    struct tkey k;
    make_key(&k, "");
    ngx_start(NULL);
    for (int i = 0; i < 4; i++) /* cached as active in both workers */
        cr_assert_eq(signed_send(&k, "GET", "/d", NULL, 0, NULL, 0, 0, NULL, NULL), 200);
    set_key_disabled(&k, 1);
    usleep(2100 * 1000); /* ttl + 1 s */
    char *resp;
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(signed_send(&k, "GET", "/d", NULL, 0, NULL, 0, 0, NULL, &resp), 401, "%s",
                     resp);
        cr_assert_str_eq(resp_error(resp), "key_disabled");
        cr_assert_not_null(strstr(resp, "Accept-Signature:"));
        free(resp);
    }
    cr_assert_eq(up_count(), 4);
    cr_assert_eq(wait_count(acc_log, " 401 key_disabled ", 4), 4);

    set_key_disabled(&k, 0);
    usleep(2100 * 1000); /* the cached refusal ends within the same bound */
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(signed_send(&k, "GET", "/d", NULL, 0, NULL, 0, 0, NULL, &resp), 200, "%s",
                     resp);
        free(resp);
    }
    cr_assert_eq(up_count(), 8);
    cr_assert_str_eq(head_header(up.rec[7].head, "Reqsign-Keyid"), k.keyid);
    end_checked();
}

/* reqsign_max_body: a larger Content-Length is answered 413 body_too_large
 * (JSON) before the body is read or the signature looked at. */
Test(nginx, max_body_refused_before_reading)
{
    ngx_start(NULL);
    static const char req[] = "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n"
                              "Connection: close\r\n\r\n0123456789";
    char *resp;
    half_close = 1; /* else nginx waits lingering_timeout for the body never sent */
    cr_assert_eq(send_raw(req, sizeof(req) - 1, &resp), 413, "%s", resp);
    half_close = 0;
    cr_assert_str_eq(resp_error(resp), "body_too_large");
    cr_assert_not_null(strstr(resp, "Content-Type: application/json"));
    free(resp);
    cr_assert_eq(up_count(), 0);
    end_checked();
}

/* A chunked body that grows past reqsign_max_body gets the same answer as a
 * Content-Length over it: 413 body_too_large in the spec's JSON, not nginx's
 * HTML page, and nothing upstream. */
Test(nginx, max_body_chunked_same_json_413)
{
    struct tkey k;
    make_key(&k, "");
    ngx_start(NULL);
    const size_t len = 1100 * 1024; /* reqsign_max_body 1m */
    char *body = big_body(len, 3), *resp;
    int st = signed_send(&k, "POST", "/bigchunked", body, len, NULL, 0, 16 * 1024, NULL, &resp);
    cr_assert_eq(st, 413, "%s", resp != NULL ? resp : "(no answer)");
    cr_assert_str_eq(resp_error(resp), "body_too_large", "%s", resp);
    cr_assert_not_null(strstr(resp, "Content-Type: application/json"), "%s", resp);
    cr_assert_not_null(strstr(resp, "Cache-Control: no-store"), "%s", resp);
    cr_assert_null(strstr(resp, "<html>"), "%s", resp);
    const char *jb = strstr(resp, "\r\n\r\n");
    cr_assert_not_null(jb);
    char clen[64];
    snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", strlen(jb + 4));
    cr_assert_not_null(strstr(resp, clen), "the length is the JSON's: %s", resp);
    free(resp);

    /* the same body with a Content-Length: the same status, code and type */
    st = signed_send(&k, "POST", "/bigcl", body, len, NULL, 0, 0, NULL, &resp);
    cr_assert_eq(st, 413, "%s", resp != NULL ? resp : "(no answer)");
    cr_assert_str_eq(resp_error(resp), "body_too_large", "%s", resp);
    cr_assert_not_null(strstr(resp, "Content-Type: application/json"), "%s", resp);
    free(resp);
    cr_assert_eq(up_count(), 0);

    /* a chunked body under the limit still passes */
    cr_assert_eq(signed_send(&k, "POST", "/smallchunked", body, 4000, NULL, 0, 1000, NULL, NULL),
                 200);
    cr_assert_eq(up_count(), 1);
    cr_assert_eq(up.rec[0].body_len, 4000);
    free(body);
    end_checked();
}

/* The shared window is bounded: per-key cap (429 nonce_key_limit) and a full
 * zone (503 nonce_store_full, Retry-After), never evicting: the first nonce
 * is still refused as a replay when the zone is full. */
Test(nginx, nonce_zone_bounded_and_refusing)
{
    struct tkey a, b;
    make_key(&a, "");
    make_key(&b, "");
    struct ngx_opts o = {.zone = "32k per_key=3"};
    ngx_start(&o);
    char *resp;
    struct reqsign_signed first;
    size_t n;
    sign(a.signer, "GET", url("/p"), NULL, 0, &first);
    char *req1 = build_req("GET", "/p", &first, NULL, 0, 0, NULL, &n);
    cr_assert_eq(send_raw(req1, n, NULL), 200);
    cr_assert_eq(signed_send(&a, "GET", "/p", NULL, 0, NULL, 0, 0, NULL, NULL), 200);
    cr_assert_eq(signed_send(&a, "GET", "/p", NULL, 0, NULL, 0, 0, NULL, NULL), 200);
    cr_assert_eq(signed_send(&a, "GET", "/p", NULL, 0, NULL, 0, 0, NULL, &resp), 429, "%s", resp);
    cr_assert_str_eq(resp_error(resp), "nonce_key_limit");
    cr_assert_not_null(strstr(resp, "Retry-After: 1"));
    free(resp);
    cr_assert_eq(up_count(), 3);
    free(req1);

    /* fill the zone with fresh keys' nonces until it refuses */
    int full = 0;
    struct tkey ks[3];
    for (int i = 0; i < 3; i++)
        make_key(&ks[i], "");
    ngx_stop();
    o.zone = "32k";
    ngx_start(&o); /* new zone size: a fresh window, no per-key cap */
    sign(b.signer, "GET", url("/p"), NULL, 0, &first);
    req1 = build_req("GET", "/p", &first, NULL, 0, 0, NULL, &n);
    cr_assert_eq(send_raw(req1, n, NULL), 200);
    size_t before = up_count();
    for (int i = 0; i < 2000 && !full; i++) {
        int st = signed_send(&ks[i % 3], "GET", "/p", NULL, 0, NULL, 0, 0, NULL, &resp);
        if (st == 503) {
            cr_assert_str_eq(resp_error(resp), "nonce_store_full", "%s", resp);
            cr_assert_not_null(strstr(resp, "Retry-After: 1"));
            full = 1;
        } else {
            cr_assert_eq(st, 200, "%s", resp);
        }
        free(resp);
    }
    cr_assert(full, "a 32k zone never filled");
    cr_assert_gt(up_count() - before, 50);
    cr_assert_eq(send_raw(req1, n, &resp), 401, "%s", resp);
    cr_assert_str_eq(resp_error(resp), "replay");
    free(resp);
    free(req1);
    end_checked();
}

/* Configurations the module refuses (nginx -t fails with a message). */
Test(nginx, config_errors)
{
    char cmd[1200];
    int st;
    FILE *f;
    static const char *bad[] = {
        "reqsign_key_store sqlite:%s; reqsign_nonce_store shared:z:1m;"
        " server { listen 127.0.0.1:1; location / { reqsign on; } }",
        "reqsign_key_store sqlite:%s;"
        " server { listen 127.0.0.1:1; reqsign_public_authority a.example; location / { reqsign "
        "on; } }",
        "reqsign_key_store sqlite:%s; reqsign_nonce_store memcached://127.0.0.1;",
        "reqsign_key_store sqlite:%s; reqsign_nonce_store redis://[::1;",
        "reqsign_key_store sqlite:%s.missing;",
    };
    static const char *why[] = {"reqsign_public_authority", "reqsign_nonce_store",
                                "shared:NAME:SIZE", "Redis", "reqsign_key_store"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        f = fopen(conf_path, "w");
        cr_assert_not_null(f);
        fprintf(f, "load_module %s;\nerror_log %s;\npid %s/nginx.pid;\nevents {}\nhttp {\n",
                tu_prog("NGINX_MODULE"), err_log, dir);
        fprintf(f, bad[i], db_path);
        fprintf(f, "\n}\n");
        fclose(f);
        snprintf(cmd, sizeof(cmd), "'%s' -t -p '%s' -c '%s' 2>&1", NGINX_BIN, dir, conf_path);
        char *out = tu_run(cmd, &st);
        cr_assert_neq(st, 0, "accepted: %s", bad[i]);
        cr_assert(strstr(out, why[i]) != NULL, "%s", out);
        free(out);
    }
    /* A Redis that does not answer is an outage, not a mistake in the file:
     * nginx -t passes with a warning naming it (a start runs nginx -t first) */
    f = fopen(conf_path, "w");
    cr_assert_not_null(f);
    fprintf(f, "load_module %s;\nerror_log %s;\npid %s/nginx.pid;\nevents {}\nhttp {\n",
            tu_prog("NGINX_MODULE"), err_log, dir);
    fprintf(f, "reqsign_key_store sqlite:%s; reqsign_nonce_store redis://127.0.0.1:1;", db_path);
    fprintf(f, "\n}\n");
    fclose(f);
    snprintf(cmd, sizeof(cmd), "'%s' -t -p '%s' -c '%s' 2>&1", NGINX_BIN, dir, conf_path);
    char *out = tu_run(cmd, &st);
    cr_assert_eq(st, 0, "an unreachable Redis failed nginx -t: %s", out);
    cr_assert(strstr(out, "[warn]") != NULL && strstr(out, "Redis") != NULL &&
                  strstr(out, "starting anyway") != NULL,
              "%s", out);
    free(out);
    end_checked();
}

/* Send over TLS with HTTP/2 (libcurl, certificate not checked: the test made
 * it); *@version: the HTTP version used. */
static long h2_send(const char *u, const struct reqsign_signed *sig, const char *body, size_t len,
                    long *version, char **resp)
{
    struct sbuf bb = {NULL, 0};
    struct curl_slist *h = NULL;
    char line[2048];
    long status = 0;
    CURL *c = curl_easy_init();
    cr_assert_not_null(c);
    for (size_t i = 0; i < sig->n_headers; i++) {
        snprintf(line, sizeof(line), "%.*s: %.*s", (int)sig->headers[i].name.len,
                 sig->headers[i].name.ptr, (int)sig->headers[i].value.len,
                 sig->headers[i].value.ptr);
        h = curl_slist_append(h, line);
    }
    h = curl_slist_append(h, "Reqsign-Keyid: forged");
    curl_easy_setopt(c, CURLOPT_URL, u);
    curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &bb);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    CURLcode cc = curl_easy_perform(c);
    cr_assert_eq(cc, CURLE_OK, "%s: %s", u, curl_easy_strerror(cc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, version);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    *resp = bb.b != NULL ? bb.b : strdup("");
    return status;
}

/* HTTP/2 over TLS: :method, :authority and :path are what is verified; a
 * valid request passes with the module's keyid, a tampered body and a
 * replay do not reach the upstream. */
Test(nginx, http2_over_tls)
{
    struct tkey k;
    make_key(&k, "");
    struct ngx_opts o = {.h2 = 1};
    ngx_start(&o);
    char u[256], *resp;
    long version = 0;
    struct reqsign_signed sig;
    static const char body[] = "{\"amount\":1}", bad[] = "{\"amount\":9}";
    snprintf(u, sizeof(u), "https://127.0.0.1:%d/h2/pay?x=1", h2_port);

    sign(k.signer, "POST", u, body, strlen(body), &sig);
    cr_assert_eq(h2_send(u, &sig, body, strlen(body), &version, &resp), 200, "%s", resp);
    cr_assert_eq(version, CURL_HTTP_VERSION_2_0, "HTTP version %ld", version);
    free(resp);
    cr_assert_eq(up_count(), 1);
    cr_assert_str_eq(head_header(up.rec[0].head, "Reqsign-Keyid"), k.keyid);
    cr_assert_str_eq(up.rec[0].body, body);
    /* the same request again: replay */
    cr_assert_eq(h2_send(u, &sig, body, strlen(body), &version, &resp), 401, "%s", resp);
    cr_assert_not_null(strstr(resp, "\"replay\""), "%s", resp);
    free(resp);
    /* a tampered body, small and spooled */
    sign(k.signer, "POST", u, body, strlen(body), &sig);
    cr_assert_eq(h2_send(u, &sig, bad, strlen(bad), &version, &resp), 401, "%s", resp);
    cr_assert_not_null(strstr(resp, "\"digest_mismatch\""), "%s", resp);
    free(resp);
    const size_t big = 64 * 1024;
    char *b1 = big_body(big, 3), *b2 = big_body(big, 3);
    b2[big - 10] ^= 1;
    sign(k.signer, "POST", u, b1, big, &sig);
    cr_assert_eq(h2_send(u, &sig, b2, big, &version, &resp), 401, "%s", resp);
    free(resp);
    cr_assert_eq(up_count(), 1);
    sign(k.signer, "POST", u, b1, big, &sig);
    cr_assert_eq(h2_send(u, &sig, b1, big, &version, &resp), 200, "%s", resp);
    free(resp);
    cr_assert_eq(up_count(), 2);
    cr_assert_eq(up.rec[1].body_len, big);
    cr_assert(memcmp(up.rec[1].body, b1, big) == 0);
    free(b1);
    free(b2);
    end_checked();
}

#ifdef REQSIGN_TEST_REDIS
/* Two nginx instances sharing one Redis window and the key store: a request
 * accepted by one is a replay at the other. Redis down: 503 (fail-closed),
 * nothing upstream; Redis back: service resumes without touching nginx. */
Test(nginx, two_instances_share_redis)
{
    struct ru_server rs;
    memset(&rs, 0, sizeof(rs));
    cr_assert(ru_available(), "redis-server is not installed");
    cr_assert_eq(ru_start(&rs), 0);
    struct tkey k;
    make_key(&k, "");
    struct ngx_opts o = {.nonce_store = rs.url, .authority = "api.test"};
    ngx_start(&o);
    alt_init();
    swap_instance();
    ngx_start(&o);
    swap_instance();

    struct reqsign_signed sig;
    size_t n;
    char *resp;
    for (int first = 0; first < 2; first++) {
        sign(k.signer, "POST", "http://api.test/fleet", "a=1", 3, &sig);
        char *req = build_req("POST", "/fleet", &sig, "a=1", 3, 0, NULL, &n);
        if (first == 1)
            swap_instance();
        cr_assert_eq(send_raw(req, n, &resp), 200, "%s", resp);
        free(resp);
        swap_instance();
        cr_assert_eq(send_raw(req, n, &resp), 401, "%s", resp);
        cr_assert_str_eq(resp_error(resp), "replay");
        free(resp);
        if (first == 0)
            swap_instance();
        free(req);
    }
    cr_assert_eq(up_count(), 2);

    ru_signal(&rs, SIGKILL);
    sign(k.signer, "GET", "http://api.test/down", NULL, 0, &sig);
    char *req = build_req("GET", "/down", &sig, NULL, 0, 0, NULL, &n);
    cr_assert_eq(send_raw(req, n, &resp), 503, "%s", resp);
    cr_assert_str_eq(resp_error(resp), "nonce_store_unavailable");
    cr_assert_not_null(strstr(resp, "Retry-After: 1"));
    free(resp);
    free(req);
    cr_assert_eq(up_count(), 2);

    cr_assert_eq(ru_restart(&rs), 0);
    for (int inst = 0; inst < 2; inst++) {
        int st = 0;
        for (int i = 0; i < 100 && st != 200; i++) { /* the store's reconnect backoff */
            sign(k.signer, "GET", "http://api.test/up", NULL, 0, &sig);
            req = build_req("GET", "/up", &sig, NULL, 0, 0, NULL, &n);
            st = send_raw(req, n, NULL);
            free(req);
            if (st != 200) {
                cr_assert_eq(st, 503);
                usleep(100 * 1000);
            }
        }
        cr_assert_eq(st, 200, "instance %d did not resume", inst);
        swap_instance();
    }
    cr_assert_eq(up_count(), 4);
    ru_stop(&rs);
    end_checked();
}
#endif /* REQSIGN_TEST_REDIS */

#ifdef REQSIGN_TEST_REDIS
/* `nginx -s reload` while Redis is down applies the new configuration (a
 * Redis outage is not a configuration error: docs/NGINX.md) and the new
 * workers start with the store unavailable: 503 nonce_store_unavailable,
 * never an unverified 200, nothing upstream, no worker dies. Redis back
 * (AOF, as the docs require for a window that survives a restart): service
 * resumes without touching nginx, and a request accepted before the outage
 * is still a replay. */
Test(nginx, reload_while_redis_down)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    struct ru_server rs;
    memset(&rs, 0, sizeof(rs));
    cr_assert(ru_available(), "redis-server is not installed");
    cr_assert_eq(ru_start_with(&rs, aof), 0);
    struct tkey k;
    make_key(&k, "");
    struct ngx_opts o = {.nonce_store = rs.url};
    ngx_start(&o);

    struct reqsign_signed sig;
    size_t n;
    char *resp;
    sign(k.signer, "POST", url("/before"), "a=1", 3, &sig);
    char *first = build_req("POST", "/before", &sig, "a=1", 3, 0, NULL, &n);
    size_t first_len = n;
    cr_assert_eq(send_raw(first, first_len, &resp), 200, "%s", resp);
    free(resp);
    cr_assert_eq(up_count(), 1);
    static const char marker[] = "GET /reloaded HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert_eq(send_raw(marker, sizeof(marker) - 1, NULL), 401); /* signed location for now */

    ru_signal(&rs, SIGKILL);
    /* the new configuration: one more location, to see that it was applied */
    o.extra = "    location = /reloaded { reqsign off; return 200 \"new configuration\\n\"; }\n";
    write_conf(&o);
    size_t before = count_in_file(err_log, "start worker process");
    char cmd[2000];
    int st;
    snprintf(cmd, sizeof(cmd), "'%s' -p '%s' -c '%s' -s reload 2>&1", NGINX_BIN, dir, conf_path);
    char *out = tu_run(cmd, &st);
    cr_assert_eq(st, 0, "nginx -s reload with Redis down: %s", out);
    cr_assert_not_null(strstr(out, "starting anyway"), "%s", out);
    free(out);
    wait_log("start worker process", before + 2);
    wait_log("gracefully shutting down", 2);
    cr_assert_eq(send_raw(marker, sizeof(marker) - 1, &resp), 200, "%s", resp);
    cr_assert_not_null(strstr(resp, "new configuration"));
    free(resp);

    for (int i = 0; i < 4; i++) { /* reuseport: both new workers */
        sign(k.signer, "GET", url("/down"), NULL, 0, &sig);
        char *req = build_req("GET", "/down", &sig, NULL, 0, 0, NULL, &n);
        cr_assert_eq(send_raw(req, n, &resp), 503, "%s", resp);
        cr_assert_str_eq(resp_error(resp), "nonce_store_unavailable");
        cr_assert_not_null(strstr(resp, "Retry-After: 1"));
        free(resp);
        free(req);
    }
    cr_assert_eq(send_raw(first, first_len, &resp), 503, "%s", resp); /* the replay too */
    free(resp);
    cr_assert_eq(up_count(), 1);
    cr_assert_eq(kill(ngx_pid, 0), 0, "the master exited");
    cr_assert_eq(count_in_file(err_log, "exited on signal"), 0);

    cr_assert_eq(ru_restart(&rs), 0);
    st = 0;
    for (int i = 0; i < 100 && st != 200; i++) { /* the store's reconnect backoff */
        sign(k.signer, "GET", url("/up"), NULL, 0, &sig);
        char *req = build_req("GET", "/up", &sig, NULL, 0, 0, NULL, &n);
        st = send_raw(req, n, NULL);
        free(req);
        if (st != 200) {
            cr_assert_eq(st, 503);
            usleep(100 * 1000);
        }
    }
    cr_assert_eq(st, 200, "no service after Redis came back");
    cr_assert_eq(up_count(), 2);
    for (int i = 0; i < 2; i++) { /* accepted before the outage: a replay in every worker */
        cr_assert_eq(send_raw(first, first_len, &resp), 401, "%s", resp);
        cr_assert_str_eq(resp_error(resp), "replay");
        free(resp);
    }
    cr_assert_eq(up_count(), 2);
    free(first);
    ru_stop(&rs);
    end_checked();
}
#endif /* REQSIGN_TEST_REDIS */

#ifdef REQSIGN_TEST_PG
/* reqsign_key_store postgresql://...: lookups in the thread pool; a revoked
 * key refused at once through LISTEN/NOTIFY although reqsign_cache_ttl is
 * 60s; PostgreSQL down: 503
 * keystore_unavailable for a key not cached, nothing upstream; back: it
 * resumes without touching nginx. */
Test(nginx, postgresql_key_store, .timeout = 90)
{
    struct tu_pg pg;
    struct reqsign_error err;
    memset(&pg, 0, sizeof(pg));
    cr_assert(tu_pg_enabled(), "built without libpq");
    cr_assert_eq(tu_pg_start(&pg), 0, "PostgreSQL did not start");
    char *ci = tu_pg_new_db_on(&pg);
    cr_assert_not_null(ci);
    struct reqsign_keystore *ks = reqsign_keystore_pg_open(ci, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "%s", err.message);
    struct tkey k, k2;
    make_key_in(&k, "read", ks);
    make_key_in(&k2, "read", ks);
    struct ngx_opts o = {.key_store = ci, .cache_ttl = "60s"};
    ngx_start(&o);

    char *resp;
    cr_assert_eq(signed_send(&k, "POST", "/pg", "a=1", 3, NULL, 0, 0, NULL, &resp), 200, "%s",
                 resp);
    free(resp);
    cr_assert_eq(up_count(), 1);
    cr_assert_str_eq(head_header(up.rec[0].head, "Reqsign-Keyid"), k.keyid);
    for (int i = 0; i < 4; i++) /* cached as active in both workers (reuseport) */
        cr_assert_eq(signed_send(&k, "GET", "/pg", NULL, 0, NULL, 0, 0, NULL, NULL), 200);
    cr_assert_eq(up_count(), 5);

    cr_assert_eq(reqsign_keystore_revoke(ks, k.keyid, strlen(k.keyid), (int64_t)time(NULL), &err),
                 REQSIGN_OK, "%s", err.message);
    usleep(1000 * 1000); /* the notification's way to both workers */
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(signed_send(&k, "GET", "/pg", NULL, 0, NULL, 0, 0, NULL, &resp), 401, "%s",
                     resp);
        cr_assert_str_eq(resp_error(resp), "key_revoked");
        free(resp);
    }

    cr_assert_eq(tu_pg_stop(&pg), 0);
    cr_assert_eq(signed_send(&k2, "GET", "/pg", NULL, 0, NULL, 0, 0, NULL, &resp), 503, "%s", resp);
    cr_assert_str_eq(resp_error(resp), "keystore_unavailable");
    cr_assert_not_null(strstr(resp, "Retry-After: 1"));
    free(resp);
    cr_assert_eq(up_count(), 5);

    cr_assert_eq(tu_pg_restart(&pg), 0);
    int st = 0;
    for (int i = 0; i < 75 && st != 200; i++) {
        st = signed_send(&k2, "GET", "/pg", NULL, 0, NULL, 0, 0, NULL, NULL);
        if (st != 200)
            usleep(200 * 1000);
    }
    cr_assert_eq(st, 200);
    cr_assert_eq(up_count(), 6);
    reqsign_keystore_free(ks);
    free(ci);
    tu_pg_stop(&pg);
    end_checked();
}
#endif /* REQSIGN_TEST_PG */

#ifdef REQSIGN_TEST_REDIS
struct slow {
    const char *req;
    size_t len;
    int status;
};

static void *slow_one(void *arg)
{
    struct slow *sl = arg;
    sl->status = send_raw(sl->req, sl->len, NULL);
    return NULL;
}

struct health {
    int status;
    int64_t ms;
};

static void *health_one(void *arg)
{
    static const char health[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct health *h = arg;
    int64_t t = tu_now_ms();
    h->status = send_raw(health, sizeof(health) - 1, NULL);
    h->ms = tu_now_ms() - t;
    return NULL;
}

static int health_cmp(const void *a, const void *b)
{
    const struct health *x = a, *y = b;
    return (x->ms > y->ms) - (x->ms < y->ms);
}

/* With Redis, the nonce check runs in nginx's thread pool, never on a
 * worker's event loop: while Redis hangs (SIGSTOP) and signed requests wait
 * on it, an unsigned location of the same workers still answers at once. */
Test(nginx, redis_wait_is_off_the_event_loop)
{
    enum { N = 16 };
    struct ru_server rs;
    memset(&rs, 0, sizeof(rs));
    cr_assert_eq(ru_start(&rs), 0);
    struct tkey k;
    make_key(&k, "");
    struct ngx_opts o = {.nonce_store = rs.url};
    ngx_start(&o);
    cr_assert_eq(signed_send(&k, "GET", "/warm", NULL, 0, NULL, 0, 0, NULL, NULL), 200);

    ru_signal(&rs, SIGSTOP);
    struct slow sl[N];
    pthread_t th[N];
    char *reqs[N];
    for (int i = 0; i < N; i++) {
        struct reqsign_signed sig;
        size_t n;
        sign(k.signer, "GET", url("/hang"), NULL, 0, &sig);
        reqs[i] = build_req("GET", "/hang", &sig, NULL, 0, 0, NULL, &n);
        sl[i] = (struct slow){reqs[i], n, 0};
    }
    int64_t t0 = tu_now_ms();
    for (int i = 0; i < N; i++)
        cr_assert_eq(pthread_create(&th[i], NULL, slow_one, &sl[i]), 0);
    usleep(5 * 1000);
    /* 8 health checks at once (reuseport: both workers), each timed */
    enum { H = 8 };
    struct health hc[H];
    pthread_t hth[H];
    for (int i = 0; i < H; i++)
        cr_assert_eq(pthread_create(&hth[i], NULL, health_one, &hc[i]), 0);
    for (int i = 0; i < H; i++) {
        pthread_join(hth[i], NULL);
        cr_assert_eq(hc[i].status, 200);
    }
    qsort(hc, H, sizeof(hc[0]), health_cmp);
    int64_t median = hc[H / 2].ms, worst = hc[H - 1].ms;
    for (int i = 0; i < N; i++) {
        pthread_join(th[i], NULL);
        free(reqs[i]);
        cr_assert_eq(sl[i].status, 503, "a signed request answered %d while Redis hung",
                     sl[i].status);
    }
    int64_t total = tu_now_ms() - t0;
    ru_signal(&rs, SIGCONT);
    /* a signed request waits for the store's command timeout (100 ms): on
     * the event loop, the health checks would wait behind it (measured: all
     * of them 90-100 ms); the median keeps one slow scheduling from failing */
    cr_assert_lt(median, 50,
                 "health checks took %lld ms (median), %lld ms (worst); signed: %lld ms",
                 (long long)median, (long long)worst, (long long)total);
    ru_stop(&rs);
    end_checked();
}
#endif /* REQSIGN_TEST_REDIS */

/* An internal redirect after the access phase (try_files to a named
 * location runs the access phase again): the request is not verified twice
 * (its own nonce would be a replay), its body is not read twice, and the
 * variables keep their values. */
Test(nginx, internal_redirect_verifies_once)
{
    struct tkey k;
    make_key(&k, "read");
    ngx_start(NULL);
    char *resp;
    cr_assert_eq(signed_send(&k, "POST", "/twice/x", "a=1", 3, NULL, 0, 0, NULL, &resp), 200, "%s",
                 resp);
    free(resp);
    cr_assert_eq(up_count(), 1);
    cr_assert_str_eq(head_header(up.rec[0].head, "Reqsign-Keyid"), k.keyid);
    cr_assert_str_eq(up.rec[0].body, "a=1");
    /* and a tampered one is still refused before the redirect */
    cr_assert_eq(signed_send(&k, "POST", "/twice/x", "a=1", 3, "a=2", 3, 0, NULL, &resp), 401, "%s",
                 resp);
    free(resp);
    cr_assert_eq(up_count(), 1);
    end_checked();
}

/* Malformed and hostile requests through nginx: never a 2xx, never a 5xx
 * (no store is down), nothing upstream, no worker crash (teardown). */
Test(nginx, bad_input_never_passes)
{
    struct tkey k;
    make_key(&k, "");
    ngx_start(NULL);
    struct reqsign_signed sig;
    sign(k.signer, "POST", url("/bad"), "a=1", 3, &sig);
    char big[9000];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    char line[10000];
    const char *si = sig.signature_input, *sg = sig.signature, *cd = sig.content_digest;
    struct {
        const char *name;
        char head[10200];
    } cases[16];
    size_t n = 0;
#define CASE(nm, ...)                                                                              \
    (snprintf(cases[n].head, sizeof(cases[n].head), __VA_ARGS__), cases[n++].name = nm)
    CASE("no signature", "Content-Digest: %s\r\n", cd);
    CASE("signature only", "Signature: %s\r\n", sg);
    CASE("garbage input", "Signature-Input: sig1=(((\r\nSignature: %s\r\nContent-Digest: %s\r\n",
         sg, cd);
    CASE("garbage signature",
         "Signature-Input: %s\r\nSignature: sig1=:!!!:\r\nContent-Digest: %s\r\n", si, cd);
    CASE("short signature",
         "Signature-Input: %s\r\nSignature: sig1=:AAAA:\r\nContent-Digest: %s\r\n", si, cd);
    CASE("no digest", "Signature-Input: %s\r\nSignature: %s\r\n", si, sg);
    CASE("bad digest", "Signature-Input: %s\r\nSignature: %s\r\nContent-Digest: sha-256=:x:\r\n",
         si, sg);
    CASE("two digests",
         "Signature-Input: %s\r\nSignature: %s\r\nContent-Digest: %s\r\nContent-Digest: %s\r\n", si,
         sg, cd, cd);
    /* a second line redefining sig1 (the last member wins, RFC 8941) */
    CASE("redefined input",
         "Signature-Input: %s\r\nSignature-Input: "
         "sig1=(\"@method\");created=1;nonce=\"abcdefgh\";keyid=\"%s\"\r\nSignature: "
         "%s\r\nContent-Digest: %s\r\n",
         si, k.keyid, sg, cd);
    snprintf(line, sizeof(line), "sig1=(\"@method\");keyid=\"%s\"", big);
    CASE("huge keyid", "Signature-Input: %.4000s\r\nSignature: %s\r\nContent-Digest: %s\r\n", line,
         sg, cd);
    CASE("nul-ish bytes", "Signature-Input: %s\x01\x7f\r\nSignature: %s\r\nContent-Digest: %s\r\n",
         si, sg, cd);
    CASE("absolute-form target", "%s", "");
    for (size_t i = 0; i < n; i++) {
        size_t cap = strlen(cases[i].head) + 256;
        char *req = malloc(cap), *resp;
        int len = snprintf(
            req, cap,
            "POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%sContent-Length: 3\r\n"
            "Connection: close\r\n\r\na=1",
            strcmp(cases[i].name, "absolute-form target") == 0 ? "http://127.0.0.1/bad" : "/bad",
            port, cases[i].head);
        int st = send_raw(req, (size_t)len, &resp);
        cr_assert(st >= 400 && st < 500, "%s: %d %s", cases[i].name, st, resp);
        free(resp);
        free(req);
    }
#undef CASE
    cr_assert_eq(up_count(), 0);
    /* the valid request still passes afterwards */
    cr_assert_eq(signed_send(&k, "POST", "/bad", "a=1", 3, NULL, 0, 0, NULL, NULL), 200);
    end_checked();
}

/* ---- the verifier's bad-input table through nginx ---- */

/* A case nginx cannot reproduce: it configures the verifier (the module's
 * options come from nginx.conf) or signs for another scheme or authority. */
static int bi_skipped(const json_t *c)
{
    static const char *const own[] = {"now",     "max_age", "skew",     "label", "public_authority",
                                      "profile", "scheme",  "authority"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (json_object_get(c, own[i]) != NULL)
            return 1;
    const json_t *sg = json_object_get(c, "sign");
    return sg != NULL &&
           (json_object_get(sg, "authority") != NULL || json_object_get(sg, "scheme") != NULL);
}

/* Rewrite a string of the table for the real clock and a fresh nonce:
 * created=N / expires=N move by @shift (same number of digits), the
 * template's nonce becomes @nonce (same length). */
static json_t *bi_rewrite_str(const char *in, size_t len, long long shift, const char *nonce)
{
    static const char tn[] = "badinput-nonce-0001";
    char *out = malloc(len * 2 + 64);
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        if (len - i >= sizeof(tn) - 1 && memcmp(in + i, tn, sizeof(tn) - 1) == 0) {
            memcpy(out + n, nonce, sizeof(tn) - 1);
            n += sizeof(tn) - 1;
            i += sizeof(tn) - 1;
            continue;
        }
        if (len - i > 8 &&
            (memcmp(in + i, "created=", 8) == 0 || memcmp(in + i, "expires=", 8) == 0)) {
            size_t d = i + 8, e = d;
            while (e < len && e - d < 18 && in[e] >= '0' && in[e] <= '9')
                e++;
            memcpy(out + n, in + i, 8);
            n += 8;
            long long v = e > d ? strtoll(in + d, NULL, 10) : 0;
            if (v > 1600000000LL && v < 1800000000LL) { /* a unix time of the table's era */
                n += (size_t)snprintf(out + n, 24, "%0*lld", (int)(e - d), v + shift);
                i = e;
            } else {
                i += 8;
            }
            continue;
        }
        out[n++] = in[i++];
    }
    json_t *j = json_stringn_nocheck(out, n);
    free(out);
    return j;
}

static json_t *bi_rewrite(const json_t *j, long long shift, const char *nonce)
{
    if (json_is_string(j))
        return bi_rewrite_str(json_string_value(j), json_string_length(j), shift, nonce);
    if (json_is_array(j)) {
        json_t *a = json_array();
        size_t i;
        const json_t *v;
        json_array_foreach(j, i, v) json_array_append_new(a, bi_rewrite(v, shift, nonce));
        return a;
    }
    if (json_is_object(j)) {
        json_t *o = json_object();
        const char *k;
        const json_t *v;
        json_object_foreach((json_t *)j, k, v)
            json_object_set_new(o, k, bi_rewrite(v, shift, nonce));
        return o;
    }
    return json_deep_copy(j);
}

/* The raw HTTP/1.1 request of a built case (Connection: close added). */
static char *bi_http(const struct bi_built *b, const struct bi_bstr *body, size_t *len)
{
    size_t cap = body->n + 4096;
    for (size_t i = 0; i < b->n; i++)
        cap += b->names[i].n + b->values[i].n + 4;
    char *r = malloc(cap + b->method.n + b->target.n);
    size_t n = 0;
    memcpy(r + n, b->method.p, b->method.n), n += b->method.n;
    r[n++] = ' ';
    memcpy(r + n, b->target.p, b->target.n), n += b->target.n;
    n += (size_t)snprintf(r + n, 16, " HTTP/1.1\r\n");
    for (size_t i = 0; i < b->n; i++) {
        memcpy(r + n, b->names[i].p, b->names[i].n), n += b->names[i].n;
        r[n++] = ':';
        r[n++] = ' ';
        memcpy(r + n, b->values[i].p, b->values[i].n), n += b->values[i].n;
        r[n++] = '\r';
        r[n++] = '\n';
    }
    n += (size_t)snprintf(r + n, 32, "Connection: close\r\n\r\n");
    if (body->n > 0)
        memcpy(r + n, body->p, body->n), n += body->n;
    *len = n;
    return r;
}

/* The documented differences from api-backend (docs/NGINX.md, "Bad input"):
 * requests nginx's own parser refuses with its 400 page before any module
 * runs (bytes nginx does not take in a method or target, obs-fold) ... */
static const char *const bi_nginx_own[] = {
    "target_control_byte", "target_nul_byte",     "target_space",
    "method_non_ascii",    "method_control_byte", "covered_field_obs_fold",
    "si_obs_fold",         "sig_obs_fold",        NULL};
/* ... and cases signed under a keyid the key store does not hold (the
 * table's verifier takes any keyid): 401 key_unknown. */
static const char *const bi_other_keyid[] = {"keyid_256_chars_ok", "keyid_escape_256_received_ok",
                                             NULL};

/* Every case of tests/vectors/badinput/verifier.json that nginx can carry
 * (its own clock and authority, a fresh nonce each) gets the status and
 * wire code the verifier gives it (api-backend answers the same); "ok"
 * cases reach the upstream, no failing case does; no 5xx, no closed
 * connection without an answer, no worker crash (teardown). */
Test(nginx, badinput_table_through_nginx, .timeout = 120)
{
    uint8_t pk[32];
    struct reqsign_key *key = bi_load_key(pk);
    struct reqsign_error err;
    struct reqsign_key_record rec;
    memset(&rec, 0, sizeof(rec));
    snprintf(rec.keyid, sizeof(rec.keyid), "test-key-ed25519");
    memcpy(rec.public_key, pk, sizeof(pk));
    snprintf(rec.label, sizeof(rec.label), "badinput");
    rec.created_at = (int64_t)time(NULL) - 10;
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(db_path, 0, &err);
    cr_assert_not_null(ks, "%s", err.message);
    cr_assert_eq(reqsign_keystore_insert(ks, &rec, &err), REQSIGN_OK, "%s", err.message);
    reqsign_keystore_free(ks);
    ngx_start(NULL);

    json_t *root = bi_load_table();
    const json_t *t0 = json_object_get(root, "template");
    const json_t *cases = json_object_get(root, "cases");
    long long shift = (long long)time(NULL) - json_integer_value(json_object_get(t0, "now"));
    char auth[64];
    snprintf(auth, sizeof(auth), "127.0.0.1:%d", port);
    size_t i, ran = 0, own = 0;
    const json_t *c0;
    int bad = 0;
    json_array_foreach(cases, i, c0)
    {
        const char *name = json_string_value(json_object_get(c0, "name"));
        const char *expect = json_string_value(json_object_get(c0, "expect"));
        if (bi_skipped(c0))
            continue;
        char nonce[48];
        snprintf(nonce, sizeof(nonce), "badinput-nonce-%04zu", i);
        json_t *t = bi_rewrite(t0, shift, nonce), *c = bi_rewrite(c0, shift, nonce);
        json_object_set_new(t, "authority", json_string(auth));
        json_object_set_new(t, "now", json_integer((json_int_t)time(NULL)));
        json_object_set_new(t, "scheme", json_string("http"));
        json_t *host = json_array_get(json_object_get(t, "headers"), 0);
        cr_assert_str_eq(json_string_value(json_array_get(host, 0)), "Host");
        json_array_set_new(host, 1, json_string(auth));

        struct bi_built b;
        struct bi_bstr body = {0};
        struct bi_vconf vc;
        struct reqsign_error serr;
        bi_prepare(c, t, key, pk, &b, &body, &vc, &serr);
        size_t len;
        char *req = bi_http(&b, &body, &len), *resp;
        size_t up_before = up_count();
        int st = send_raw(req, len, &resp);
        const char *got = resp_error(resp);
        int nginx_own = 0;
        for (const char *const *o = bi_nginx_own; *o != NULL; o++)
            nginx_own |= strcmp(*o, name) == 0;
        for (const char *const *o = bi_other_keyid; *o != NULL; o++)
            if (strcmp(*o, name) == 0)
                expect = "key_unknown";
        int ok;
        if (st < 0 || st >= 500) {
            ok = 0; /* a worker crash shows as a closed connection */
        } else if (nginx_own) {
            ok = st == 400 && got[0] == '\0' && up_count() == up_before;
            own++;
        } else if (strcmp(expect, "ok") == 0) {
            ok = st == 200 && up_count() == up_before + 1;
        } else {
            enum reqsign_status code = REQSIGN_OK;
            for (int k = 0; k < REQSIGN_STATUS_LAST; k++)
                if (strcmp(reqsign_errname((enum reqsign_status)k), expect) == 0)
                    code = (enum reqsign_status)k;
            ok = st == reqsign_http_status(code) && strcmp(got, expect) == 0 &&
                 up_count() == up_before;
        }
        if (!ok) {
            cr_log_error("%s: want %s, got %d %s (upstream %zu -> %zu): %.300s", name, expect, st,
                         got, up_before, up_count(), resp != NULL ? resp : "");
            bad++;
        }
        ran++;
        free(resp);
        free(req);
        free(body.p);
        bi_built_free(&b);
        json_decref(c);
        json_decref(t);
    }
    cr_log_info("badinput through nginx: %zu cases run, %zu answered by nginx itself", ran, own);
    cr_assert_geq(ran, 100, "only %zu cases of the table ran", ran);
    cr_expect_eq(bad, 0, "%d case(s) answered differently through nginx (see the log)", bad);
    json_decref(root);
    reqsign_key_free(key);
    /* nginx is still up */
    static const char health[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    cr_assert_eq(send_raw(health, sizeof(health) - 1, NULL), 200);
    end_checked();
}

/* reqsign_key_directory: keys from another service's published directory
 * (reqsignd's /.well-known/http-message-signatures-directory), fetched in the
 * thread pool: a key it lists passes (no scopes), one it does not list is
 * key_unknown. */
Test(nginx, key_directory)
{
    struct tkey k, other;
    make_key(&k, "read");
    char rlog[700];
    snprintf(rlog, sizeof(rlog), "%s/reqsignd.log", dir);
    struct tu_proc d;
    memset(&d, 0, sizeof(d));
    srv_start(&d, &(struct srv_opts){.prog = tu_prog("REQSIGND"), .db = db_path, .log = rlog});
    char dirurl[300];
    snprintf(dirurl, sizeof(dirurl), "%s/.well-known/http-message-signatures-directory", d.url);
    struct ngx_opts o = {.key_directory = dirurl};
    ngx_start(&o);

    char *resp;
    cr_assert_eq(signed_send(&k, "POST", "/dir", "a=1", 3, NULL, 0, 0, NULL, &resp), 200, "%s",
                 resp);
    free(resp);
    cr_assert_eq(up_count(), 1);
    cr_assert_str_eq(head_header(up.rec[0].head, "Reqsign-Keyid"), k.keyid);
    cr_assert_null(head_header(up.rec[0].head, "Reqsign-Scopes"));  /* a directory has none */
    cr_assert_null(head_header(up.rec[0].head, "Reqsign-Account")); /* nor accounts */

    /* a key the directory does not list (made after reqsignd served it is
     * fine too, but this one is in another store altogether) */
    struct reqsign_error err;
    struct reqsign_key *key = NULL;
    cr_assert_not_null(key = reqsign_key_generate(&err));
    struct reqsign_signer_opts so;
    memset(&so, 0, sizeof(so));
    so.key = key;
    other.signer = reqsign_signer_new(&so, &err);
    cr_assert_not_null(other.signer);
    reqsign_key_free(key);
    cr_assert_eq(signed_send(&other, "GET", "/dir", NULL, 0, NULL, 0, 0, NULL, &resp), 401, "%s",
                 resp);
    cr_assert_str_eq(resp_error(resp), "key_unknown");
    free(resp);
    cr_assert_eq(up_count(), 1);
    cr_assert_eq(tu_proc_stop(&d, SIGTERM, 15000), 0);
    end_checked();
}
