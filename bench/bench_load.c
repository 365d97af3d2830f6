/* reqsign bench: multi-connection load against the api-backend example or
 * the key service.
 *
 *   bench-load (--server PATH/api-backend | --reqsignd PATH/reqsignd) [--quick]
 *              [--conns 1,2,4,16] [--rounds R] [--requests N]
 *   bench-load --nginx PATH/ngx_http_reqsign_module.so [--quick] [--conns C]
 *              [--rounds R] [--requests N]
 *
 * With --nginx, Debian's /usr/sbin/nginx with the module, twice side by side:
 * 1 worker and 2 workers (worker_processes), each with a generated
 * configuration on loopback ports picked here: a signed location (reqsign on,
 * the SQLite key store, the shared nonce zone) and an unsigned one
 * (/unsigned/, reqsign off), both proxying over keep-alive connections to a
 * trivial upstream: `return 200` in a second server block of the same nginx
 * (so that the upstream's cost is the same on both sides and no other
 * process competes for the two cores). See nginx_main(). Skips (a JSON line
 * with "skipped") when nginx or the module is missing.
 *
 * With --reqsignd the signed requests are GET /v1/keys/<the signing key's
 * keyid> (keys with keys:admin) and the unsigned ones GET /healthz.
 *
 * Starts the api-backend on 127.0.0.1 with a fresh SQLite key store and
 * pre-signs distinct requests (bodies 0..4096 bytes). For each connection
 * count C and each round it takes a fresh block of N requests (a signed
 * request can be sent only once) and runs, back to back:
 *   - signed: C keep-alive connections, one request in flight on each
 *     (closed loop, epoll), every request sent once, every status must be 200;
 *     then a few of them sent again, which must be refused with 401 (replay);
 *   - unsigned: the same requests to /unsigned/<path> (the same echo without
 *     verification; the server runs with --bench-unsigned-route);
 *   - the whole verifier in this process over the same requests' bases and
 *     bodies (two-phase, key cache over the same SQLite store, a memory nonce
 *     store), on 1 thread and on 2 threads.
 * Which of signed and unsigned goes first alternates by round. Each run
 * reports requests/s, p50 and p99 latency, the server's CPU per request (the
 * sum over its threads of /proc/PID/task/TID/schedstat, in nanoseconds), how
 * many of its threads were busy (on a CPU for at least a tenth of the run:
 * two connections on one worker leave one busy) and the load generator's own
 * CPU per request (getrusage). The result is the median over rounds; the
 * per-round signed rates and busy threads are kept (the spread). Output: one
 * JSON line per connection count.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/keycache.h>
#include <reqsign/keystore_sqlite.h>
#include <reqsign/nonce.h>
#include <reqsign/verifier.h>

#include "bench_util.h"
#include "testutil.h"

#define MAX_CONNS 64
#define MAX_ROUNDS 32
#define REPLAYS 4

/* ---- one load run ---- */

struct conn {
    int fd;
    size_t req;      /* index of the request in flight; SIZE_MAX when idle */
    size_t woff;     /* bytes of it written */
    uint64_t t0;     /* when its first byte was written */
    char rbuf[8192]; /* the response being read */
    size_t rlen;
};

struct run {
    double per_sec, p50_us, p99_us, server_cpu_us, client_cpu_us;
    double server_cores; /* the server's CPU over the run's wall time, in cores */
    int busy_threads;    /* server threads on a CPU >= 10% of the run */
    double top_thread;   /* the busiest server thread's share of one core */
};

/* The server's processes: one (api-backend, reqsignd) or nginx's master
 * and its workers. */
#define MAX_PROCS 8
struct procs {
    size_t n;
    pid_t pid[MAX_PROCS];
};

/* CPU time of every thread of @server's processes, from
 * /proc/PID/task/TID/schedstat (its first field: nanoseconds on a CPU; finer
 * than utime + stime, whose ticks are 10 ms). Up to MAX_THREADS threads, in
 * @tid/@ns; returns how many. */
#define MAX_THREADS 64
static size_t proc_thread_cpu(const struct procs *server, long tid[MAX_THREADS],
                              uint64_t ns[MAX_THREADS])
{
    size_t n = 0;
    for (size_t k = 0; k < server->n; k++) {
        pid_t pid = server->pid[k];
        char path[64];
        snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
        DIR *d = opendir(path);
        if (d == NULL)
            bench_die("%s: %s", path, strerror(errno));
        struct dirent *e;
        while ((e = readdir(d)) != NULL && n < MAX_THREADS) {
            if (e->d_name[0] < '0' || e->d_name[0] > '9')
                continue;
            char sp[384];
            snprintf(sp, sizeof(sp), "/proc/%d/task/%s/schedstat", (int)pid, e->d_name);
            FILE *f = fopen(sp, "r");
            if (f == NULL)
                continue; /* the thread ended */
            unsigned long long v = 0;
            if (fscanf(f, "%llu", &v) == 1) {
                tid[n] = strtol(e->d_name, NULL, 10);
                ns[n++] = v;
            }
            fclose(f);
        }
        closedir(d);
    }
    return n;
}

struct cpu_snap {
    size_t n;
    long tid[MAX_THREADS];
    uint64_t ns[MAX_THREADS];
};

/* Between @a and @b: the server's CPU (ns) in *@total, the threads that were
 * on a CPU for at least a tenth of @wall_ns in *@busy, and the busiest
 * thread's share of one core in *@top. */
static void cpu_between(const struct cpu_snap *a, const struct cpu_snap *b, uint64_t wall_ns,
                        uint64_t *total, int *busy, double *top)
{
    *total = 0;
    *busy = 0;
    *top = 0;
    for (size_t i = 0; i < b->n; i++) {
        uint64_t before = 0;
        for (size_t j = 0; j < a->n; j++)
            if (a->tid[j] == b->tid[i])
                before = a->ns[j];
        uint64_t d = b->ns[i] - before;
        *total += d;
        if (d * 10 >= wall_ns)
            (*busy)++;
        if ((double)d / (double)wall_ns > *top)
            *top = (double)d / (double)wall_ns;
    }
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0)
        bench_die("fcntl: %s", strerror(errno));
}

/* Write what is left of @c's request; 1 when all of it is out. */
static int conn_write(struct conn *c, const struct bench_wire *w)
{
    while (c->woff < w->len) {
        ssize_t n = send(c->fd, w->buf + c->woff, w->len - c->woff, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        if (n <= 0)
            bench_die("send: %s", strerror(errno));
        c->woff += (size_t)n;
    }
    return 1;
}

/* The status of a complete response in @c->rbuf, 0 while incomplete. */
static int response_done(struct conn *c)
{
    c->rbuf[c->rlen] = '\0';
    char *end = strstr(c->rbuf, "\r\n\r\n");
    if (end == NULL)
        return 0;
    size_t head = (size_t)(end + 4 - c->rbuf), clen = 0;
    for (char *p = c->rbuf; p < end; p++)
        if (*p == '\n' && strncasecmp(p + 1, "content-length:", 15) == 0)
            clen = strtoul(p + 16, NULL, 10);
    if (c->rlen < head + clen)
        return 0;
    if (c->rlen > head + clen)
        bench_die("unexpected bytes after a response");
    if (strncmp(c->rbuf, "HTTP/1.1 ", 9) != 0)
        bench_die("not an HTTP/1.1 response: %.40s", c->rbuf);
    return (int)strtol(c->rbuf + 9, NULL, 10);
}

/* Put request @req on idle connection @c (number @i) and write what fits. */
static void conn_start(int ep, struct conn *c, int i, size_t req, const struct bench_wire *w)
{
    c->req = req;
    c->woff = 0;
    c->rlen = 0;
    c->t0 = bench_now_ns();
    if (!conn_write(c, w)) { /* the rest when the socket is writable */
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

/* Send requests @idx[0..n) over @nconn connections, one in flight on each;
 * every answer must be @expect. Latencies (ns) go to @lat[0..n). */
static void load(int port, const struct procs *server, const struct bench_wire *w,
                 const size_t *idx, size_t n, int nconn, int expect, double *lat, struct run *out)
{
    struct conn *cs = calloc((size_t)nconn, sizeof(*cs));
    int ep = epoll_create1(0);
    if (cs == NULL || ep < 0)
        bench_die("out of memory / epoll");
    for (int i = 0; i < nconn; i++) {
        cs[i].fd = bench_connect(port);
        set_nonblock(cs[i].fd);
        cs[i].req = SIZE_MAX;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev) != 0)
            bench_die("epoll_ctl: %s", strerror(errno));
    }
    size_t next = 0, done = 0;
    struct cpu_snap s0, s1;
    s0.n = proc_thread_cpu(server, s0.tid, s0.ns);
    double cli0 = self_cpu_s();
    uint64_t t0 = bench_now_ns();
    /* start one request on every connection */
    for (int i = 0; i < nconn && next < n; i++, next++)
        conn_start(ep, &cs[i], i, next, &w[idx[next]]);
    struct epoll_event evs[MAX_CONNS];
    while (done < n) {
        int k = epoll_wait(ep, evs, MAX_CONNS, 10000);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            bench_die("no answer from the server for 10 s (%zu of %zu done)", done, n);
        for (int e = 0; e < k; e++) {
            int i = (int)evs[e].data.u32;
            struct conn *c = &cs[i];
            if (c->req == SIZE_MAX)
                bench_die("bytes on an idle connection");
            if (evs[e].events & EPOLLOUT) {
                if (conn_write(c, &w[idx[c->req]])) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (!(evs[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            ssize_t r = recv(c->fd, c->rbuf + c->rlen, sizeof(c->rbuf) - 1 - c->rlen, 0);
            if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                continue;
            if (r <= 0)
                bench_die("connection %d closed by the server (request %zu)", i, idx[c->req]);
            c->rlen += (size_t)r;
            int code = response_done(c);
            if (code == 0) {
                if (c->rlen >= sizeof(c->rbuf) - 1)
                    bench_die("response too large");
                continue;
            }
            if (code != expect) {
                char *body = strstr(c->rbuf, "\r\n\r\n");
                bench_die("request %zu: HTTP %d, expected %d: %.200s", idx[c->req], code, expect,
                          body ? body + 4 : "");
            }
            lat[done++] = (double)(bench_now_ns() - c->t0);
            c->req = SIZE_MAX;
            if (next < n) {
                conn_start(ep, c, i, next, &w[idx[next]]);
                next++;
            }
        }
    }
    uint64_t wall = bench_now_ns() - t0;
    double secs = (double)wall / 1e9;
    double cli = self_cpu_s() - cli0;
    s1.n = proc_thread_cpu(server, s1.tid, s1.ns);
    uint64_t srv;
    cpu_between(&s0, &s1, wall, &srv, &out->busy_threads, &out->top_thread);
    for (int i = 0; i < nconn; i++)
        close(cs[i].fd);
    close(ep);
    free(cs);
    out->per_sec = (double)n / secs;
    out->server_cpu_us = (double)srv / 1e3 / (double)n;
    out->server_cores = (double)srv / (double)wall;
    out->client_cpu_us = cli * 1e6 / (double)n;
    out->p50_us = bench_percentile(lat, n, 50) / 1e3;
    out->p99_us = bench_percentile(lat, n, 99) / 1e3;
}

/* ---- the in-process verifier over the same requests ---- */

struct vjob {
    const struct bench_set *set;
    const struct reqsign_verifier *v;
    const size_t *idx;
    size_t from, to;
};

static void *verify_range(void *arg)
{
    struct vjob *j = arg;
    struct reqsign_verification vs;
    struct reqsign_error err;
    for (size_t i = j->from; i < j->to; i++) {
        const struct bench_req *r = &j->set->reqs[j->idx[i]];
        reqsign_verification_init(&vs);
        reqsign_error_clear(&err);
        enum reqsign_status st = reqsign_verifier_verify_headers(j->v, &r->req, &vs, &err);
        if (st == REQSIGN_OK)
            st = reqsign_verification_body(&vs, r->body, r->body_len, &err);
        if (st == REQSIGN_OK)
            st = reqsign_verification_finish(&vs, &err);
        reqsign_verification_cleanup(&vs);
        if (st != REQSIGN_OK)
            bench_die("in-process verify of request %zu: %s", j->idx[i], err.message);
    }
    return NULL;
}

/* Requests/s of the whole verifier on @threads threads over @idx[0..n). */
static double verifier_rate(const struct bench_set *set, struct reqsign_keycache *cache,
                            const char *authority, const size_t *idx, size_t n, int threads)
{
    struct reqsign_nonce_memory_opts no = {.max_entries = 2 * n + 1024, .per_key_max = 2 * n};
    struct reqsign_nonce_store *ns = reqsign_nonce_store_memory_new(&no, NULL);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_verifier_opts vo = {.profile = REQSIGN_PROFILE_REQSIGN,
                                       .public_authority = authority,
                                       .lookup = reqsign_keycache_lookup,
                                       .lookup_ctx = cache,
                                       .nonces = ns};
    struct reqsign_verifier *v = ns ? reqsign_verifier_new(&vo, &err) : NULL;
    if (v == NULL)
        bench_die("verifier: %s", err.message);
    struct vjob jobs[2];
    pthread_t th[2];
    uint64_t t0 = bench_now_ns();
    for (int t = 0; t < threads; t++) {
        jobs[t] = (struct vjob){set, v, idx, n * (size_t)t / (size_t)threads,
                                n * (size_t)(t + 1) / (size_t)threads};
        if (pthread_create(&th[t], NULL, verify_range, &jobs[t]) != 0)
            bench_die("pthread_create");
    }
    for (int t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    reqsign_verifier_free(v);
    reqsign_nonce_store_free(ns);
    return (double)n / secs;
}

/* ---- nginx with ngx_http_reqsign_module (--nginx PATH/module.so) ---- */

#define NGINX_BIN "/usr/sbin/nginx"
#define NGX_WARM 64

static double median_of(const struct run *r, size_t n, size_t off);

struct ngx {
    pid_t master;
    int port, up_port, workers;
    char dir[600], log[700];
    struct procs procs; /* the master and its workers */
};

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        bench_die("free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

/* The processes whose parent is @parent (nginx's workers), up to @max. */
static size_t children_of(pid_t parent, pid_t *out, size_t max)
{
    DIR *d = opendir("/proc");
    size_t n = 0;
    struct dirent *e;
    if (d == NULL)
        bench_die("/proc: %s", strerror(errno));
    while ((e = readdir(d)) != NULL && n < max) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], line[512];
        snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        size_t got = fread(line, 1, sizeof(line) - 1, f);
        fclose(f);
        line[got] = '\0';
        char *close_paren = strrchr(line, ')'); /* the command may hold spaces */
        char state;
        int ppid;
        if (close_paren != NULL && sscanf(close_paren + 1, " %c %d", &state, &ppid) == 2 &&
            ppid == (int)parent)
            out[n++] = (pid_t)strtol(e->d_name, NULL, 10);
    }
    closedir(d);
    return n;
}

/* Occurrences of @needle in the file @path. */
static size_t count_in(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    char line[4096];
    size_t c = 0;
    if (f == NULL)
        return 0;
    while (fgets(line, sizeof(line), f) != NULL)
        if (strstr(line, needle) != NULL)
            c++;
    fclose(f);
    return c;
}

/* Start nginx with @workers workers in @base/wN: the module loaded, a signed
 * location (reqsign on: SQLite key store @db, the shared nonce zone) and an
 * unsigned one (/unsigned/, reqsign off), both proxying with keep-alive to a
 * trivial upstream, a second server block of the same nginx that answers
 * `return 200`. */
static void ngx_up(struct ngx *g, const char *module, const char *base, const char *db, int workers,
                   const char *authority)
{
    char conf[700];
    g->workers = workers;
    if (g->port == 0)
        g->port = free_port();
    g->up_port = free_port();
    snprintf(g->dir, sizeof(g->dir), "%s/w%d", base, workers);
    snprintf(g->log, sizeof(g->log), "%s/error.log", g->dir);
    snprintf(conf, sizeof(conf), "%s/nginx.conf", g->dir);
    if (mkdir(g->dir, 0700) != 0)
        bench_die("mkdir %s: %s", g->dir, strerror(errno));
    FILE *f = fopen(conf, "w");
    if (f == NULL)
        bench_die("%s: %s", conf, strerror(errno));
    fprintf(f,
            "load_module %s;\n"
            "worker_processes %d;\n"
            "daemon off;\n"
            "master_process on;\n"
            "%s"
            "pid %s/nginx.pid;\n"
            "error_log %s warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "  access_log off;\n"
            "  keepalive_requests 10000000;\n"
            "  keepalive_timeout 300s;\n"
            "  client_body_temp_path %s/body;\n"
            "  proxy_temp_path %s/proxy;\n"
            "  fastcgi_temp_path %s/fastcgi;\n"
            "  uwsgi_temp_path %s/uwsgi;\n"
            "  scgi_temp_path %s/scgi;\n"
            "  reqsign_key_store sqlite:%s;\n"
            "  reqsign_nonce_store shared:reqsign_bench:128m;\n"
            "  reqsign_cache_ttl 600s;\n"
            "  reqsign_max_age 900s;\n" /* a slow machine's whole run stays in the window */
            "  upstream up { server 127.0.0.1:%d; keepalive 64; keepalive_requests 10000000; }\n"
            "  server {\n"
            "    listen 127.0.0.1:%d reuseport;\n"
            "    reqsign_public_authority %s;\n"
            "    proxy_http_version 1.1;\n"
            "    proxy_set_header Connection \"\";\n"
            "    proxy_set_header Reqsign-Keyid $reqsign_keyid;\n"
            "    location / { reqsign on; proxy_pass http://up; }\n"
            "    location /unsigned/ { reqsign off; proxy_pass http://up; }\n"
            "  }\n"
            "  server {\n"
            "    listen 127.0.0.1:%d;\n"
            "    location / { return 200 \"ok\\n\"; }\n"
            "  }\n"
            "}\n",
            module, workers, geteuid() == 0 ? "user root root;\n" : "", g->dir, g->log, g->dir,
            g->dir, g->dir, g->dir, g->dir, db, g->up_port, g->port, authority, g->up_port);
    fclose(f);
    fflush(NULL);
    g->master = fork();
    if (g->master < 0)
        bench_die("fork: %s", strerror(errno));
    if (g->master == 0) {
        char out[700];
        snprintf(out, sizeof(out), "%s/nginx.stderr", g->dir);
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execl(NGINX_BIN, "nginx", "-p", g->dir, "-c", conf, (char *)NULL);
        _exit(127);
    }
    /* up when the port answers and the workers run */
    for (int i = 0; i < 200; i++) {
        int st;
        if (waitpid(g->master, &st, WNOHANG) == g->master)
            bench_die("nginx exited at start: see %s and %s/nginx.stderr", g->log, g->dir);
        pid_t kids[MAX_PROCS];
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g->port)};
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int up = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
        if (fd >= 0)
            close(fd);
        size_t nk = children_of(g->master, kids, MAX_PROCS - 1);
        if (up && nk == (size_t)workers) {
            g->procs.n = 0;
            g->procs.pid[g->procs.n++] = g->master;
            for (size_t k = 0; k < nk; k++)
                g->procs.pid[g->procs.n++] = kids[k];
            return;
        }
        usleep(50 * 1000);
    }
    bench_die("nginx (%d workers) did not come up: see %s", workers, g->log);
}

/* Stop nginx gracefully; a worker killed by a signal or an alert fails the run. */
static void ngx_down(struct ngx *g)
{
    int st;
    kill(g->master, SIGQUIT);
    for (int i = 0; i < 100; i++) {
        if (waitpid(g->master, &st, WNOHANG) == g->master) {
            g->master = 0;
            break;
        }
        usleep(50 * 1000);
    }
    if (g->master != 0) {
        kill(g->master, SIGKILL);
        waitpid(g->master, &st, 0);
        g->master = 0;
    }
    if (count_in(g->log, "exited on signal") > 0 || count_in(g->log, "[alert]") > 0)
        bench_die("nginx (%d workers): a worker died or alerted: see %s", g->workers, g->log);
}

static void ngx_skip(const char *why)
{
    bench_emit(json_pack("{s:s, s:b, s:s}", "name", "nginx_signed", "skipped", 1, "reason", why));
}

static double rate_median(const struct run *r, size_t n)
{
    return median_of(r, n, offsetof(struct run, per_sec));
}

static json_t *per_round(const double *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_real(v[i]));
    return a;
}

/* bench-load --nginx MODULE: nginx + the module with 1 worker and with 2
 * workers, both running side by side (their own nonce zones), each round
 * taking them in turns over the same pre-signed requests. Per instance and
 * round: one keep-alive connection (time per request, signed and the same
 * requests unsigned), C connections (throughput), a few replays (401); the
 * raw verify of the same signature bases in this process. */
static int nginx_main(int argc, char **argv, const char *module, int quick)
{
    if (access(NGINX_BIN, X_OK) != 0) {
        ngx_skip(NGINX_BIN " is not installed");
        return 0;
    }
    if (access(module, R_OK) != 0) {
        ngx_skip("the module was not built (nginx-dev missing)");
        return 0;
    }
    int C = 16;
    if (bench_arg(argc, argv, "--conns"))
        C = (int)strtol(bench_arg(argc, argv, "--conns"), NULL, 10);
    size_t R = quick ? 2 : 10, N = quick ? 600 : 4000;
    if (bench_arg(argc, argv, "--rounds"))
        R = strtoul(bench_arg(argc, argv, "--rounds"), NULL, 10);
    if (bench_arg(argc, argv, "--requests"))
        N = strtoul(bench_arg(argc, argv, "--requests"), NULL, 10);
    if (R < 1 || R > MAX_ROUNDS || N < REPLAYS || C < 1 || C > MAX_CONNS)
        bench_die("bad --rounds, --requests or --conns");
    signal(SIGPIPE, SIG_IGN);

    struct bench_set set;
    bench_keys_init(&set, (int64_t)time(NULL));
    const char *tmp = bench_tmpdir();
    char dir[300], db[512];
    snprintf(dir, sizeof(dir), "%s", tmp);
    snprintf(db, sizeof(db), "%s/keys.db", dir);
    bench_keystore_fill(&set, db);

    /* both instances verify the same authority, so that the same signed
     * requests go to each (their nonce windows are their own) */
    struct ngx g[2];
    memset(g, 0, sizeof(g));
    char authority[64], rmcmd[400];
    g[0].port = free_port();
    snprintf(authority, sizeof(authority), "127.0.0.1:%d", g[0].port);
    ngx_up(&g[0], module, dir, db, 1, authority);
    ngx_up(&g[1], module, dir, db, 2, authority);

    size_t total = 2 * R * N + NGX_WARM;
    fprintf(stderr,
            "bench-load --nginx (%s backend): nginx 1 worker on %d, 2 workers on %d, "
            "upstream: return 200 in a second server block; pre-signing %zu requests\n",
            bench_backend(), g[0].port, g[1].port, total);
    bench_reqs_make(&set, total, authority);
    struct bench_wire *sw = calloc(total, sizeof(*sw)), *uw = calloc(total, sizeof(*uw));
    size_t *idx = calloc(total, sizeof(*idx));
    double *lat = calloc(N + NGX_WARM, sizeof(double));
    if (sw == NULL || uw == NULL || idx == NULL || lat == NULL)
        bench_die("out of memory");
    for (size_t i = 0; i < total; i++) {
        sw[i] = bench_wire_of(&set.reqs[i], authority, 1);
        uw[i] = bench_wire_of(&set.reqs[i], authority, 0);
        idx[i] = i;
    }
    struct bench_raw *raw = bench_raw_new(&set, strcmp(bench_backend(), "libsodium") == 0);

    /* warm-up: every worker's key cache and upstream connections */
    for (int k = 0; k < 2; k++) {
        struct run warm;
        load(g[k].port, &g[k].procs, sw, idx + total - NGX_WARM, NGX_WARM, C, 200, lat, &warm);
        load(g[k].port, &g[k].procs, uw, idx + total - NGX_WARM, NGX_WARM, C, 200, lat, &warm);
    }

    /* [instance][round] */
    struct run s1[2][MAX_ROUNDS], u1[2][MAX_ROUNDS], sc[2][MAX_ROUNDS], uc[2][MAX_ROUNDS];
    double tr[MAX_ROUNDS], tgt[2][MAX_ROUNDS], scaling[MAX_ROUNDS];
    for (size_t r = 0; r < R; r++) {
        const size_t *b1 = idx + 2 * r * N, *bc = idx + (2 * r + 1) * N;
        for (int turn = 0; turn < 2; turn++) {
            int k = (turn == 0) == (r % 2 == 0) ? 0 : 1; /* which instance goes first */
            for (int pass = 0; pass < 2; pass++) {
                int sign = (pass == 0) == (r % 2 == 0); /* and signed or unsigned */
                load(g[k].port, &g[k].procs, sign ? sw : uw, b1, N, 1, 200, lat,
                     sign ? &s1[k][r] : &u1[k][r]);
            }
            for (int pass = 0; pass < 2; pass++) {
                int sign = (pass == 0) == (r % 2 == 0);
                load(g[k].port, &g[k].procs, sign ? sw : uw, bc, N, C, 200, lat,
                     sign ? &sc[k][r] : &uc[k][r]);
            }
            struct run rep;
            for (size_t q = 0; q < REPLAYS; q++) /* each a replay: 401 */
                load(g[k].port, &g[k].procs, sw, b1 + q, 1, 1, 401, lat, &rep);
        }
        uint64_t t0 = bench_now_ns();
        for (size_t i = 0; i < N; i++) {
            const struct bench_raw_req *q = &set.raw[b1[i]];
            if (bench_raw_verify(raw, q->key, q->sig, q->base, q->base_len))
                bench_die("raw verify");
        }
        tr[r] = (double)(bench_now_ns() - t0) / (double)N / 1e3;
        for (int k = 0; k < 2; k++)
            tgt[k][r] = (1e6 / s1[k][r].per_sec) / (1e6 / u1[k][r].per_sec + tr[r]);
        scaling[r] = sc[1][r].per_sec / sc[0][r].per_sec;
        fprintf(stderr,
                "  nginx round %zu/%zu: 1 connection: signed %.1f us, unsigned %.1f us, raw "
                "verify %.1f us (ratio %.3f; 2 workers %.3f); %d connections: signed 1 worker "
                "%.0f/s, 2 workers %.0f/s (x %.3f), unsigned %.0f/s, %.0f/s\n",
                r + 1, R, 1e6 / s1[0][r].per_sec, 1e6 / u1[0][r].per_sec, tr[r], tgt[0][r],
                tgt[1][r], C, sc[0][r].per_sec, sc[1][r].per_sec, scaling[r], uc[0][r].per_sec,
                uc[1][r].per_sec);
    }
    ngx_down(&g[0]);
    ngx_down(&g[1]);

    double trm = bench_median(tr, R);
    for (int k = 0; k < 2; k++) {
        double su[MAX_ROUNDS], uu[MAX_ROUNDS];
        for (size_t r = 0; r < R; r++) {
            su[r] = 1e6 / s1[k][r].per_sec;
            uu[r] = 1e6 / u1[k][r].per_sec;
        }
        double sm = bench_median(su, R), um = bench_median(uu, R);
        json_t *row = json_pack(
            "{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
            "s:f, s:f, s:f, s:I, s:I, s:s}",
            "name", "nginx_signed", "backend", bench_backend(), "workers", (json_int_t)(k + 1),
            "connections", (json_int_t)1, "per_sec", rate_median(s1[k], R), "baseline_per_sec",
            rate_median(u1[k], R), "signed_us", sm, "unsigned_us", um, "raw_verify_us", trm,
            "target_ratio", bench_median(tgt[k], R), "p50_signed_us",
            median_of(s1[k], R, offsetof(struct run, p50_us)), "p99_signed_us",
            median_of(s1[k], R, offsetof(struct run, p99_us)), "p50_unsigned_us",
            median_of(u1[k], R, offsetof(struct run, p50_us)), "p99_unsigned_us",
            median_of(u1[k], R, offsetof(struct run, p99_us)), "server_cpu_us",
            median_of(s1[k], R, offsetof(struct run, server_cpu_us)), "unsigned_server_cpu_us",
            median_of(u1[k], R, offsetof(struct run, server_cpu_us)), "extra_us", sm - um - trm,
            "client_cpu_us", median_of(s1[k], R, offsetof(struct run, client_cpu_us)), "requests",
            (json_int_t)N, "rounds", (json_int_t)R, "upstream",
            "return 200 in a second server block of the same nginx");
        if (row == NULL)
            bench_die("json_pack");
        double mx = tgt[k][0];
        for (size_t r = 1; r < R; r++)
            mx = tgt[k][r] > mx ? tgt[k][r] : mx;
        json_object_set_new(row, "target_ratio_max", json_real(mx));
        json_object_set_new(row, "target_ratio_min", json_real(bench_min(tgt[k], R)));
        json_object_set_new(row, "target_ratio_rounds", per_round(tgt[k], R));
        bench_emit(row);
    }
    double r1[MAX_ROUNDS], r2[MAX_ROUNDS], cores1[MAX_ROUNDS], cores2[MAX_ROUNDS];
    json_t *busy = json_array();
    for (size_t r = 0; r < R; r++) {
        r1[r] = sc[0][r].per_sec;
        r2[r] = sc[1][r].per_sec;
        cores1[r] = sc[0][r].server_cores;
        cores2[r] = sc[1][r].server_cores;
        json_array_append_new(busy, json_integer(sc[1][r].busy_threads));
    }
    double mx = scaling[0];
    for (size_t r = 1; r < R; r++)
        mx = scaling[r] > mx ? scaling[r] : mx;
    json_t *row = json_pack(
        "{s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I}",
        "name", "nginx_workers", "backend", bench_backend(), "connections", (json_int_t)C,
        "per_sec_1_worker", rate_median(sc[0], R), "per_sec_2_workers", rate_median(sc[1], R),
        "unsigned_per_sec_1_worker", rate_median(uc[0], R), "unsigned_per_sec_2_workers",
        rate_median(uc[1], R), "scaling", bench_median(scaling, R), "scaling_min",
        bench_min(scaling, R), "scaling_max", mx, "server_cpu_us_1_worker",
        median_of(sc[0], R, offsetof(struct run, server_cpu_us)), "server_cpu_us_2_workers",
        median_of(sc[1], R, offsetof(struct run, server_cpu_us)), "client_cpu_us_2_workers",
        median_of(sc[1], R, offsetof(struct run, client_cpu_us)), "server_cores_1_worker",
        bench_median(cores1, R), "server_cores_2_workers", bench_median(cores2, R), "requests",
        (json_int_t)N, "rounds", (json_int_t)R);
    if (row == NULL)
        bench_die("json_pack");
    json_object_set_new(row, "scaling_rounds", per_round(scaling, R));
    json_object_set_new(row, "per_sec_1_worker_rounds", per_round(r1, R));
    json_object_set_new(row, "per_sec_2_workers_rounds", per_round(r2, R));
    json_object_set_new(row, "busy_processes_2_workers_rounds", busy);
    /* how evenly reuseport spread the connections: the busier process's
     * share of one core against nginx's total, per round */
    json_t *top = json_array();
    for (size_t r = 0; r < R; r++)
        json_array_append_new(
            top,
            json_real(sc[1][r].server_cores > 0 ? sc[1][r].top_thread / sc[1][r].server_cores : 0));
    json_object_set_new(row, "busiest_process_share_2_workers_rounds", top);
    bench_emit(row);

    snprintf(rmcmd, sizeof(rmcmd), "rm -rf '%s'", dir);
    if (system(rmcmd) != 0)
        bench_die("%s failed", rmcmd);
    for (size_t i = 0; i < total; i++) {
        free(sw[i].buf);
        free(uw[i].buf);
    }
    free(sw);
    free(uw);
    free(idx);
    free(lat);
    bench_raw_free(raw);
    bench_set_free(&set);
    return 0;
}

/* ---- main ---- */

static size_t parse_conns(const char *s, int *out)
{
    size_t k = 0;
    while (s != NULL && *s && k < 8) {
        char *end;
        long c = strtol(s, &end, 10);
        if (end == s || c < 1 || c > MAX_CONNS)
            bench_die("--conns: a comma-separated list of 1..%d", MAX_CONNS);
        out[k++] = (int)c;
        s = *end == ',' ? end + 1 : end;
    }
    return k;
}

static double median_of(const struct run *r, size_t n, size_t off)
{
    double v[MAX_ROUNDS];
    for (size_t i = 0; i < n; i++)
        v[i] = *(const double *)((const char *)&r[i] + off);
    return bench_median(v, n);
}

int main(int argc, char **argv)
{
    int quick = bench_quick(argc, argv);
    if (bench_arg(argc, argv, "--nginx") != NULL)
        return nginx_main(argc, argv, bench_arg(argc, argv, "--nginx"), quick);
    const char *server = bench_arg(argc, argv, "--server");
    const char *reqsignd = bench_arg(argc, argv, "--reqsignd");
    if ((server == NULL) == (reqsignd == NULL))
        bench_die("usage: bench-load (--server PATH/api-backend | --reqsignd PATH/reqsignd) "
                  "[--quick] [--conns 1,2,4,16] [--rounds R] [--requests N]");
    int keyservice = reqsignd != NULL;
    const char *prog = keyservice ? reqsignd : server;
    const char *what = keyservice ? "reqsignd" : "api-backend";
    int conns[8];
    size_t nc = parse_conns(
        bench_arg(argc, argv, "--conns") ? bench_arg(argc, argv, "--conns") : "1,2,4,16", conns);
    size_t R = quick ? 2 : 10, N = quick ? 600 : 4000;
    if (bench_arg(argc, argv, "--rounds"))
        R = strtoul(bench_arg(argc, argv, "--rounds"), NULL, 10);
    if (bench_arg(argc, argv, "--requests"))
        N = strtoul(bench_arg(argc, argv, "--requests"), NULL, 10);
    if (R < 1 || R > MAX_ROUNDS || N < REPLAYS)
        bench_die("bad --rounds or --requests");
    signal(SIGPIPE, SIG_IGN);

    struct bench_set set;
    bench_keys_init(&set, (int64_t)time(NULL));
    const char *dir = bench_tmpdir();
    char db[512];
    snprintf(db, sizeof(db), "%s/keys.db", dir);
    bench_keystore_fill_scopes(&set, db, keyservice ? "keys:admin" : "orders:read orders:write");

    struct tu_proc p;
    char *const args[] = {(char *)prog,
                          "--db",
                          db,
                          "--listen",
                          "127.0.0.1:0",
                          "--any-authority",
                          keyservice ? NULL : "--bench-unsigned-route",
                          NULL};
    if (tu_proc_start(&p, args, NULL, 10000) != 0)
        bench_die("cannot start %s", prog);
    struct procs sp = {1, {p.pid}};
    char authority[64];
    snprintf(authority, sizeof(authority), "127.0.0.1:%d", p.port);
    size_t total = nc * R * N + REPLAYS;
    fprintf(stderr, "bench-load (%s backend): %s on %s, pre-signing %zu requests\n",
            bench_backend(), prog, authority, total);
    bench_reqs_make_kind(&set, total, authority,
                         keyservice ? BENCH_REQS_KEYSERVICE : BENCH_REQS_API);
    struct bench_wire *sw = calloc(total, sizeof(*sw)), *uw = calloc(total, sizeof(*uw));
    size_t *idx = calloc(total, sizeof(*idx));
    double *lat = calloc(N, sizeof(double));
    if (sw == NULL || uw == NULL || idx == NULL || lat == NULL)
        bench_die("out of memory");
    for (size_t i = 0; i < total; i++) {
        sw[i] = bench_wire_of(&set.reqs[i], authority, 1);
        uw[i] = keyservice ? bench_wire_get("/healthz", authority)
                           : bench_wire_of(&set.reqs[i], authority, 0);
        idx[i] = i;
    }

    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *store =
        reqsign_keystore_sqlite_open(db, REQSIGN_KEYSTORE_READONLY, &err);
    if (store == NULL)
        bench_die("keystore: %s", err.message);
    struct reqsign_keycache_opts co = {
        .store = store, .positive_ttl = 1000000, .negative_ttl = 1000000};
    struct reqsign_keycache *cache = reqsign_keycache_new(&co, &err);
    if (cache == NULL)
        bench_die("keycache: %s", err.message);

    /* warm-up: the server's key cache and threads, our verifier's cache */
    struct run warm;
    load(p.port, &sp, uw, idx + total - REPLAYS, REPLAYS, 1, 200, lat, &warm);
    (void)verifier_rate(&set, cache, authority, idx + total - REPLAYS, REPLAYS, 1);

    size_t block = 0;
    for (size_t c = 0; c < nc; c++) {
        struct run sr[MAX_ROUNDS], ur[MAX_ROUNDS];
        double v1[MAX_ROUNDS], v2[MAX_ROUNDS], ratio[MAX_ROUNDS];
        json_t *spread = json_array(), *busy = json_array(), *cores = json_array();
        for (size_t r = 0; r < R; r++, block++) {
            const size_t *b = idx + block * N;
            for (int pass = 0; pass < 2; pass++) {
                int sign = (pass == 0) == (r % 2 == 0);
                load(p.port, &sp, sign ? sw : uw, b, N, conns[c], 200, lat, sign ? &sr[r] : &ur[r]);
            }
            /* a few of the block's signed requests again: each must be a replay */
            struct run rep;
            for (size_t k = 0; k < REPLAYS; k++) /* a refusal closes the connection */
                load(p.port, &sp, sw, b + k, 1, 1, 401, lat, &rep);
            v2[r] = verifier_rate(&set, cache, authority, b, N, 2);
            v1[r] = verifier_rate(&set, cache, authority, b, N, 1);
            ratio[r] = sr[r].per_sec / v2[r];
            json_array_append_new(spread, json_real(sr[r].per_sec));
            json_array_append_new(busy, json_integer(sr[r].busy_threads));
            json_array_append_new(cores, json_real(sr[r].server_cores));
            fprintf(stderr,
                    "  %d conn round %zu/%zu: signed %.0f/s (p50 %.0f us, p99 %.0f us, server "
                    "%.1f us CPU/req, %.2f cores, %d threads busy), unsigned %.0f/s, verifier 1 "
                    "thread %.0f/s, 2 threads %.0f/s\n",
                    conns[c], r + 1, R, sr[r].per_sec, sr[r].p50_us, sr[r].p99_us,
                    sr[r].server_cpu_us, sr[r].server_cores, sr[r].busy_threads, ur[r].per_sec,
                    v1[r], v2[r]);
        }
        double v1m = bench_median(v1, R), v2m = bench_median(v2, R);
        json_t *row = json_pack(
            "{s:s, s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:s, s:f, "
            "s:f, s:f, s:f, s:o, s:I, s:I}",
            "name", "e2e_connections", "server", what, "backend", bench_backend(), "connections",
            (json_int_t)conns[c], "per_sec", median_of(sr, R, offsetof(struct run, per_sec)),
            "p50_us", median_of(sr, R, offsetof(struct run, p50_us)), "p99_us",
            median_of(sr, R, offsetof(struct run, p99_us)), "server_cpu_us",
            median_of(sr, R, offsetof(struct run, server_cpu_us)), "client_cpu_us",
            median_of(sr, R, offsetof(struct run, client_cpu_us)), "unsigned_per_sec",
            median_of(ur, R, offsetof(struct run, per_sec)), "unsigned_p50_us",
            median_of(ur, R, offsetof(struct run, p50_us)), "unsigned_p99_us",
            median_of(ur, R, offsetof(struct run, p99_us)), "unsigned_server_cpu_us",
            median_of(ur, R, offsetof(struct run, server_cpu_us)), "verifier_1_thread_per_sec", v1m,
            "baseline", "verifier_2_threads", "baseline_per_sec", v2m, "verifier_cpu_us", 1e6 / v1m,
            "ratio", bench_median(ratio, R), "ratio_min", bench_min(ratio, R),
            "signed_per_sec_rounds", spread, "requests", (json_int_t)N, "rounds", (json_int_t)R);
        if (row == NULL)
            bench_die("json_pack");
        /* how the server used the cores: per round, the threads that were
         * busy (>= 10% of the run) and the server's CPU in cores */
        json_object_set_new(row, "busy_threads_rounds", busy);
        json_object_set_new(row, "server_cores_rounds", cores);
        json_object_set_new(row, "server_cores",
                            json_real(median_of(sr, R, offsetof(struct run, server_cores))));
        json_object_set_new(row, "top_thread_share",
                            json_real(median_of(sr, R, offsetof(struct run, top_thread))));
        bench_emit(row);
    }

    int rc = tu_proc_stop(&p, SIGTERM, 5000);
    if (rc != 0)
        bench_die("%s exited with %d", what, rc);
    reqsign_keycache_free(cache);
    reqsign_keystore_free(store);
    bench_rmdir(dir);
    for (size_t i = 0; i < total; i++) {
        free(sw[i].buf);
        free(uw[i].buf);
    }
    free(sw);
    free(uw);
    free(idx);
    free(lat);
    bench_set_free(&set);
    return 0;
}
