/* reqsign bench: end to end, the api-backend example over loopback.
 *
 *   bench-e2e --server PATH/api-backend [--quick]
 *
 * Starts the api-backend on 127.0.0.1 with a fresh SQLite key store, pre-signs
 * N distinct requests (20,000; 3,000 with --quick; bodies 0..4096 bytes) and
 * sends them over one keep-alive connection, closed loop (one request in
 * flight), raw sockets: the signed requests to their path, and the same
 * requests unsigned to /unsigned/<path> (the same echo, no verification; the
 * backend serves that route only with --bench-unsigned-route, passed here).
 * Rounds alternate signed and unsigned chunks; the raw verify of the same
 * signature bases is timed in this process between them. Time per request is
 * the median over rounds of (wall time of the chunk / requests in it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "bench_util.h"
#include "testutil.h"

static char rbuf[1 << 16];

/* Send @w and read one response; returns the status code. */
static int roundtrip(int fd, const struct bench_wire *w)
{
    size_t off = 0;
    while (off < w->len) {
        ssize_t n = write(fd, w->buf + off, w->len - off);
        if (n <= 0)
            bench_die("write: %s", strerror(errno));
        off += (size_t)n;
    }
    size_t got = 0;
    char *end = NULL;
    while (end == NULL) {
        ssize_t n = read(fd, rbuf + got, sizeof(rbuf) - 1 - got);
        if (n <= 0)
            bench_die("read: connection closed");
        got += (size_t)n;
        rbuf[got] = '\0';
        end = strstr(rbuf, "\r\n\r\n");
    }
    size_t head = (size_t)(end + 4 - rbuf), clen = 0;
    for (char *p = rbuf; p < end; p++)
        if ((*p == '\n') && strncasecmp(p + 1, "content-length:", 15) == 0)
            clen = strtoul(p + 16, NULL, 10);
    while (got < head + clen) {
        ssize_t n = read(fd, rbuf + got, sizeof(rbuf) - 1 - got);
        if (n <= 0)
            bench_die("read: connection closed");
        got += (size_t)n;
    }
    if (got != head + clen)
        bench_die("unexpected bytes after a response");
    return (int)strtol(rbuf + 9, NULL, 10);
}

int main(int argc, char **argv)
{
    int quick = bench_quick(argc, argv);
    const char *server = bench_arg(argc, argv, "--server");
    size_t n = quick ? 2000 : 20000, R = quick ? 4 : 10;
    if (server == NULL)
        bench_die("usage: bench-e2e --server PATH/api-backend [--quick]");
    signal(SIGPIPE, SIG_IGN);

    struct bench_set set;
    int64_t created = (int64_t)time(NULL);
    bench_keys_init(&set, created);
    const char *tmp = bench_tmpdir();
    char dir[256], db[512];
    snprintf(dir, sizeof(dir), "%s", tmp);
    snprintf(db, sizeof(db), "%s/keys.db", dir);
    bench_keystore_fill(&set, db);

    struct tu_proc p;
    /* --bench-unsigned-route: the unverified /unsigned/... echo this measures against */
    char *const args[] = {(char *)server,
                          "--db",
                          db,
                          "--listen",
                          "127.0.0.1:@PORT@",
                          "--authority",
                          "127.0.0.1:@PORT@",
                          "--bench-unsigned-route",
                          NULL};
    if (tu_proc_start_port(&p, args, NULL, 10000) != 0)
        bench_die("cannot start %s", server);
    char authority[64];
    snprintf(authority, sizeof(authority), "127.0.0.1:%d", p.port);
    fprintf(stderr, "bench-e2e (%s backend): %s on %s, pre-signing %zu requests\n", bench_backend(),
            server, authority, n);
    bench_reqs_make(&set, n, authority);
    struct bench_wire *sw = calloc(n, sizeof(*sw)), *uw = calloc(n, sizeof(*uw));
    double *lat_s = calloc(n, sizeof(double)), *lat_u = calloc(n, sizeof(double));
    if (sw == NULL || uw == NULL || lat_s == NULL || lat_u == NULL)
        bench_die("out of memory");
    for (size_t i = 0; i < n; i++) {
        sw[i] = bench_wire_of(&set.reqs[i], authority, 1);
        uw[i] = bench_wire_of(&set.reqs[i], authority, 0);
    }
    struct bench_raw *raw = bench_raw_new(&set, strcmp(bench_backend(), "libsodium") == 0);

    int fd = bench_connect(p.port);
    /* warm-up: the key cache, the connection, the server's threads */
    for (size_t i = 0; i < 50 && i < n; i++)
        (void)roundtrip(fd, &uw[n - 1 - i]);
    double ts[64], tu[64], tr[64];
    size_t chunk = n / R, bad = 0;
    for (size_t r = 0; r < R; r++) {
        size_t from = r * chunk, to = from + chunk;
        for (int pass = 0; pass < 2; pass++) {
            int sign = (pass == 0) == (r % 2 == 0); /* alternate which goes first */
            struct bench_wire *w = sign ? sw : uw;
            double *lat = sign ? lat_s : lat_u;
            uint64_t t0 = bench_now_ns();
            for (size_t i = from; i < to; i++) {
                uint64_t a = bench_now_ns();
                int code = roundtrip(fd, &w[i]);
                lat[i] = (double)(bench_now_ns() - a);
                if (code != 200 && bad++ < 3)
                    fprintf(stderr, "  request %zu (%s): HTTP %d: %.200s\n", i,
                            sign ? "signed" : "unsigned", code, strstr(rbuf, "\r\n\r\n") + 4);
            }
            (sign ? ts : tu)[r] = (double)(bench_now_ns() - t0) / (double)chunk;
        }
        uint64_t t0 = bench_now_ns();
        for (size_t i = from; i < to; i++) {
            const struct bench_raw_req *q = &set.raw[i];
            if (bench_raw_verify(raw, q->key, q->sig, q->base, q->base_len))
                bench_die("raw verify");
        }
        tr[r] = (double)(bench_now_ns() - t0) / (double)chunk;
        fprintf(stderr,
                "  e2e round %zu/%zu: signed %.1f us, unsigned %.1f us, raw verify %.1f us\n",
                r + 1, R, ts[r] / 1e3, tu[r] / 1e3, tr[r] / 1e3);
    }
    close(fd);
    int rc = tu_proc_stop(&p, SIGTERM, 5000);
    bench_rmdir(dir);
    if (bad)
        bench_die("%zu requests were not answered 200", bad);

    double s = bench_median(ts, R), u = bench_median(tu, R), v = bench_median(tr, R);
    /* the target ratio is the median of per-round ratios (each round times
     * signed, unsigned and raw verify back to back), robust to noise spanning rounds */
    double tgt[64];
    for (size_t r = 0; r < R; r++)
        tgt[r] = ts[r] / (tu[r] + tr[r]);
    double target = bench_median(tgt, R);
    size_t m = chunk * R;
    double s50 = bench_percentile(lat_s, m, 50), s99 = bench_percentile(lat_s, m, 99);
    double u50 = bench_percentile(lat_u, m, 50), u99 = bench_percentile(lat_u, m, 99);
    bench_emit(json_pack("{s:s, s:s, s:f, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
                         "s:f, s:I, s:I, s:I, s:i}",
                         "name", "e2e_signed", "backend", bench_backend(), "per_sec", 1e9 / s,
                         "baseline", "e2e_unsigned", "baseline_per_sec", 1e9 / u, "ratio", u / s,
                         "signed_us", s / 1e3, "unsigned_us", u / 1e3, "raw_verify_us", v / 1e3,
                         "target_ratio", target, "p50_signed_us", s50 / 1e3, "p99_signed_us",
                         s99 / 1e3, "p50_unsigned_us", u50 / 1e3, "p99_unsigned_us", u99 / 1e3,
                         "extra_us", (s - u - v) / 1e3, "requests", (json_int_t)m, "rounds",
                         (json_int_t)R, "connections", (json_int_t)1, "server_exit", rc));
    for (size_t i = 0; i < n; i++) {
        free(sw[i].buf);
        free(uw[i].buf);
    }
    free(sw);
    free(uw);
    free(lat_s);
    free(lat_u);
    bench_raw_free(raw);
    bench_set_free(&set);
    return 0;
}
