/* reqsign bench: the Redis nonce store against the in-memory one.
 *
 *   bench-redis [--quick]
 *
 * Starts its own redis-server (Unix socket in a temporary directory, no
 * persistence, maxmemory-policy noeviction; killed when this program exits)
 * and measures, on distinct pre-generated pairs:
 *  1. latency of one check-and-insert on one thread: mean, p50 and p99 for
 *     Redis (one round trip each) and the mean for the in-memory store;
 *  2. throughput: Redis with 1 and 4 threads (one pooled connection each,
 *     one round trip per check), and pipelined batches of 64 checks per
 *     round trip (reqsign_nonce_store_redis_check_insert_batch) on 1 thread.
 * One JSON line, name "nonce_store_redis". Without redis-server on PATH, or
 * in a build without hiredis, it prints why on stderr and emits the line
 * with "skipped": true and the reason (exit status 0).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/nonce.h>
#include <reqsign/nonce_redis.h>

#include "bench_util.h"

#define NONCE_LEN 22
#define NKEYIDS 16
#define BATCH 64
#define THREADS 4

static char keyids[NKEYIDS][44];

static void nonce_of(uint64_t i, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    uint64_t x = i * 0x9e3779b97f4a7c15u + 0x632be59bd9b4e019u;
    for (int j = 0; j < NONCE_LEN; j++) {
        out[j] = a[(x >> ((j % 10) * 6)) & 63];
        if (j % 10 == 9)
            x = x * 0xd6e8feb86659fd93u + i;
    }
    out[NONCE_LEN] = '\0';
}

static void skip(const char *why)
{
    fprintf(stderr, "bench-redis: skipped: %s\n", why);
    bench_emit(
        json_pack("{s:s, s:b, s:s}", "name", "nonce_store_redis", "skipped", 1, "reason", why));
    exit(0);
}

static int have_redis_server(void)
{
    return system("command -v redis-server >/dev/null 2>&1") == 0;
}

static pid_t start_redis(const char *dir, const char *sock)
{
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork");
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the bench */
        if (getppid() != parent)
            _exit(127);
        if (freopen("/dev/null", "w", stdout) == NULL || freopen("/dev/null", "w", stderr) == NULL)
            _exit(127);
        execlp("redis-server", "redis-server", "--port", "0", "--unixsocket", sock,
               "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", dir,
               "--maxmemory-policy", "noeviction", "--daemonize", "no", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int64_t wall_now(void)
{
    return (int64_t)time(NULL);
}

struct pairs {
    char *nonces; /* n * (NONCE_LEN + 1) */
    size_t n;
};

static void pairs_make(struct pairs *p, size_t n, uint64_t base)
{
    p->n = n;
    p->nonces = malloc(n * (NONCE_LEN + 1));
    if (p->nonces == NULL)
        bench_die("out of memory");
    for (size_t i = 0; i < n; i++)
        nonce_of(base + i, p->nonces + i * (NONCE_LEN + 1));
}

static enum reqsign_status check(struct reqsign_nonce_store *s, const struct pairs *p, size_t i,
                                 int64_t now)
{
    const char *k = keyids[i % NKEYIDS];
    return reqsign_nonce_store_check_insert(s, k, strlen(k), p->nonces + i * (NONCE_LEN + 1),
                                            NONCE_LEN, now, now + 60, NULL);
}

struct worker {
    struct reqsign_nonce_store *s;
    const struct pairs *p;
    size_t from, to, fails;
    int64_t now;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (size_t i = w->from; i < w->to; i++)
        if (check(w->s, w->p, i, w->now) != REQSIGN_OK)
            w->fails++;
    return NULL;
}

static double threaded_rate(struct reqsign_nonce_store *s, const struct pairs *p, int threads)
{
    struct worker w[THREADS];
    pthread_t t[THREADS];
    int64_t now = wall_now();
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){
            s, p,  p->n * (size_t)i / (size_t)threads, p->n * (size_t)(i + 1) / (size_t)threads,
            0, now};
        if (pthread_create(&t[i], NULL, work, &w[i]) != 0)
            bench_die("pthread_create");
    }
    size_t fails = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        fails += w[i].fails;
    }
    double rate = (double)p->n / ((double)(bench_now_ns() - t0) / 1e9);
    if (fails)
        bench_die("%zu Redis check-and-inserts not OK", fails);
    return rate;
}

int main(int argc, char **argv)
{
    int quick = bench_quick(argc, argv);
    size_t n = quick ? 20000 : 200000;
    for (int i = 0; i < NKEYIDS; i++)
        snprintf(keyids[i], sizeof(keyids[i]), "k%02d-0123456789abcdefghijklmnopqrstuvwxyzABC", i);
    if (!have_redis_server())
        skip("redis-server is not installed (not on PATH)");

    const char *dir = bench_tmpdir();
    char sock[512], url[540];
    snprintf(sock, sizeof(sock), "%s/redis.sock", dir);
    snprintf(url, sizeof(url), "unix:%s", sock);
    struct reqsign_nonce_redis_opts ro;
    memset(&ro, 0, sizeof(ro));
    ro.url = url;
    ro.pool_size = THREADS;
    ro.command_timeout_ms = 2000;
    ro.backoff_min_ms = 1;
    ro.backoff_max_ms = 20;
    struct reqsign_error err;
    struct reqsign_nonce_store *rs = reqsign_nonce_store_redis_new(&ro, &err);
    if (rs == NULL) {
        bench_rmdir(dir);
        skip(err.message); /* e.g. built without Redis support */
    }
    pid_t pid = start_redis(dir, sock);
    int up = 0;
    for (int i = 0; i < 500 && !up; i++) {
        up = reqsign_nonce_store_redis_ping(rs, NULL) == REQSIGN_OK;
        if (!up) {
            struct timespec ts = {0, 10 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (!up) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        bench_rmdir(dir);
        bench_die("redis-server did not answer within 5 s");
    }
    fprintf(stderr, "bench-redis: redis-server on %s, %zu pairs per measurement\n", sock, n);

    /* 1. latency, one thread, one round trip per check */
    struct pairs p;
    pairs_make(&p, n, 0);
    double *lat = malloc(n * sizeof(double));
    if (lat == NULL)
        bench_die("out of memory");
    int64_t now = wall_now();
    uint64_t t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++) {
        uint64_t a = bench_now_ns();
        if (check(rs, &p, i, now) != REQSIGN_OK)
            bench_die("Redis check %zu not OK", i);
        lat[i] = (double)(bench_now_ns() - a) / 1e3;
    }
    double redis_mean_us = (double)(bench_now_ns() - t0) / 1e3 / (double)n;
    double p50 = bench_percentile(lat, n, 50), p99 = bench_percentile(lat, n, 99);
    /* every pair is a replay now, across the same store */
    size_t not_replay = 0;
    for (size_t i = 0; i < n; i += 97)
        not_replay += check(rs, &p, i, now) != REQSIGN_E_REPLAY;

    struct reqsign_nonce_store *ms = reqsign_nonce_store_memory_new(NULL, NULL);
    if (ms == NULL)
        bench_die("memory store");
    t0 = bench_now_ns();
    for (size_t i = 0; i < n; i++)
        if (check(ms, &p, i, now) != REQSIGN_OK)
            bench_die("memory check %zu not OK", i);
    double mem_mean_us = (double)(bench_now_ns() - t0) / 1e3 / (double)n;
    reqsign_nonce_store_free(ms);
    free(p.nonces);

    /* 2. throughput: threads, then pipelined batches */
    struct pairs p1, p4, pb;
    pairs_make(&p1, n, 10000000);
    pairs_make(&p4, n, 20000000);
    pairs_make(&pb, n, 30000000);
    double rate1 = threaded_rate(rs, &p1, 1);
    double rate4 = threaded_rate(rs, &p4, THREADS);
    struct reqsign_nonce_item items[BATCH];
    enum reqsign_status res[BATCH];
    now = wall_now();
    t0 = bench_now_ns();
    for (size_t i = 0; i < n; i += BATCH) {
        size_t m = n - i < BATCH ? n - i : BATCH;
        for (size_t j = 0; j < m; j++) {
            const char *k = keyids[(i + j) % NKEYIDS];
            items[j].keyid = (struct reqsign_span){k, strlen(k)};
            items[j].nonce =
                (struct reqsign_span){pb.nonces + (i + j) * (NONCE_LEN + 1), NONCE_LEN};
            items[j].until = now + 60;
        }
        if (reqsign_nonce_store_redis_check_insert_batch(rs, items, m, res, now, NULL) !=
            REQSIGN_OK)
            bench_die("Redis batch at %zu not OK", i);
    }
    double rate_pipe = (double)n / ((double)(bench_now_ns() - t0) / 1e9);
    free(p1.nonces);
    free(p4.nonces);
    free(pb.nonces);
    free(lat);

    fprintf(stderr,
            "  latency: Redis %.1f us mean (p50 %.1f, p99 %.1f), memory %.3f us; throughput: "
            "Redis %.0f/s (1 thread), %.0f/s (%d threads), %.0f/s (pipelined, %d per round "
            "trip)\n",
            redis_mean_us, p50, p99, mem_mean_us, rate1, rate4, THREADS, rate_pipe, BATCH);
    bench_emit(json_pack("{s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:f, s:I, s:f, s:b}",
                         "name", "nonce_store_redis", "transport", "unix socket", "operations",
                         (json_int_t)n, "redis_us", redis_mean_us, "p50_us", p50, "p99_us", p99,
                         "memory_us", mem_mean_us, "per_sec", rate1, "per_sec_threads", rate4,
                         "threads", (json_int_t)THREADS, "per_sec_pipelined", rate_pipe, "batch",
                         (json_int_t)BATCH, "ratio_vs_memory", redis_mean_us / mem_mean_us, "exact",
                         not_replay == 0));

    reqsign_nonce_store_free(rs);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    bench_rmdir(dir);
    return 0;
}
