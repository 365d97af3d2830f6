/* reqsign bench: the in-memory nonce store.
 *
 *   bench-nonce [--quick]
 *
 * 1. Bytes per live entry at 1 M and 10 M entries (1 M only with --quick):
 *    the RSS delta (/proc/self/statm) and the store's own count of heap bytes,
 *    each divided by the live entries; then every inserted pair is checked
 *    again (all must be replays: exact, nothing evicted).
 * 2. Check-and-insert operations per second with 1 and 2 threads on one
 *    shared store (distinct nonces, pre-generated; median of 3 rounds).
 * 3. Full: a store of 100,000 entries offered 150,000 distinct pairs; the
 *    refusal rate of the excess and whether any accepted pair was evicted.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <reqsign/nonce.h>

#include "bench_util.h"

#define NOW 1700000000
#define UNTIL (NOW + 361)
#define NKEYIDS 64
#define NONCE_LEN 22

static char keyids[NKEYIDS][44];

static void make_keyids(void)
{
    for (int i = 0; i < NKEYIDS; i++)
        snprintf(keyids[i], sizeof(keyids[i]), "k%02d-0123456789abcdefghijklmnopqrstuvwxyzABC", i);
}

/* nonce @i as 22 base64url-ish characters, written into @out (NONCE_LEN + 1) */
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

static enum reqsign_status put(struct reqsign_nonce_store *s, uint64_t i)
{
    char n[NONCE_LEN + 1];
    nonce_of(i, n);
    const char *k = keyids[i % NKEYIDS];
    return reqsign_nonce_store_check_insert(s, k, strlen(k), n, NONCE_LEN, NOW, UNTIL, NULL);
}

static void bytes_per_entry(size_t n)
{
    size_t rss0 = bench_rss_bytes();
    struct reqsign_nonce_memory_opts o = {.max_entries = n + n / 4, .per_key_max = n};
    struct reqsign_nonce_store *s = reqsign_nonce_store_memory_new(&o, NULL);
    if (s == NULL)
        bench_die("nonce store");
    uint64_t t0 = bench_now_ns();
    for (uint64_t i = 0; i < n; i++)
        if (put(s, i) != REQSIGN_OK)
            bench_die("insert %llu refused", (unsigned long long)i);
    double secs = (double)(bench_now_ns() - t0) / 1e9;
    size_t rss1 = bench_rss_bytes();
    struct reqsign_nonce_memory_stats st;
    reqsign_nonce_store_memory_stats(s, NOW, &st);
    /* exact, no eviction: every pair is a replay now */
    size_t not_replay = 0;
    for (uint64_t i = 0; i < n; i++)
        if (put(s, i) != REQSIGN_E_REPLAY)
            not_replay++;
    double rss_pe = (double)(rss1 - rss0) / (double)st.live;
    double stats_pe = (double)st.bytes / (double)st.live;
    bench_emit(json_pack("{s:s, s:f, s:I, s:f, s:f, s:I, s:I, s:b, s:f}", "name",
                         "nonce_store_bytes_per_entry", "value",
                         rss_pe > stats_pe ? rss_pe : stats_pe, "entries", (json_int_t)st.live,
                         "rss_bytes_per_entry", rss_pe, "stats_bytes_per_entry", stats_pe, "slots",
                         (json_int_t)st.slots, "keyids", (json_int_t)NKEYIDS, "exact",
                         not_replay == 0, "fill_per_sec", (double)n / secs));
    fprintf(stderr, "  %zu entries: %.1f B/entry (RSS), %.1f B/entry (stats), %zu not replays\n", n,
            rss_pe, stats_pe, not_replay);
    reqsign_nonce_store_free(s);
}

struct worker {
    struct reqsign_nonce_store *s;
    const char *nonces; /* n * (NONCE_LEN + 1) */
    size_t from, to;
    size_t fails;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (size_t i = w->from; i < w->to; i++) {
        const char *k = keyids[i % NKEYIDS];
        if (reqsign_nonce_store_check_insert(w->s, k, strlen(k), w->nonces + i * (NONCE_LEN + 1),
                                             NONCE_LEN, NOW, UNTIL, NULL) != REQSIGN_OK)
            w->fails++;
    }
    return NULL;
}

static double ops_rate(const char *nonces, size_t n, int threads)
{
    struct reqsign_nonce_memory_opts o = {.max_entries = n + n / 4, .per_key_max = n};
    struct reqsign_nonce_store *s = reqsign_nonce_store_memory_new(&o, NULL);
    struct worker w[2];
    pthread_t t[2];
    if (s == NULL)
        bench_die("nonce store");
    uint64_t t0 = bench_now_ns();
    for (int i = 0; i < threads; i++) {
        w[i] = (struct worker){s, nonces, n * (size_t)i / (size_t)threads,
                               n * (size_t)(i + 1) / (size_t)threads, 0};
        if (pthread_create(&t[i], NULL, work, &w[i]) != 0)
            bench_die("pthread_create");
    }
    size_t fails = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        fails += w[i].fails;
    }
    double rate = (double)n / ((double)(bench_now_ns() - t0) / 1e9);
    if (fails)
        bench_die("%zu check-and-inserts refused", fails);
    reqsign_nonce_store_free(s);
    return rate;
}

int main(int argc, char **argv)
{
    int quick = bench_quick(argc, argv);
    make_keyids();
    fprintf(stderr, "bench-nonce: bytes per entry\n");
    bytes_per_entry(1000000);
    if (!quick)
        bytes_per_entry(10000000);

    size_t n = quick ? 500000 : 4000000;
    char *nonces = malloc(n * (NONCE_LEN + 1));
    if (nonces == NULL)
        bench_die("out of memory");
    for (size_t i = 0; i < n; i++)
        nonce_of(i, nonces + i * (NONCE_LEN + 1));
    double one[8], two[8];
    const size_t R = 3;
    for (size_t r = 0; r < R; r++) {
        one[r] = ops_rate(nonces, n, 1);
        two[r] = ops_rate(nonces, n, 2);
        fprintf(stderr, "  ops round %zu: 1 thread %.0f/s, 2 threads %.0f/s\n", r + 1, one[r],
                two[r]);
    }
    free(nonces);

    /* full: no eviction, refusals only */
    const size_t cap = 100000, offered = 150000;
    struct reqsign_nonce_memory_opts o = {.max_entries = cap, .per_key_max = cap};
    struct reqsign_nonce_store *s = reqsign_nonce_store_memory_new(&o, NULL);
    size_t accepted = 0, refused = 0, other = 0, lost = 0;
    for (uint64_t i = 0; i < offered; i++) {
        enum reqsign_status st = put(s, i);
        accepted += st == REQSIGN_OK;
        refused += st == REQSIGN_E_NONCE_STORE_FULL;
        other += st != REQSIGN_OK && st != REQSIGN_E_NONCE_STORE_FULL;
    }
    for (uint64_t i = 0; i < offered; i++) /* every accepted pair must still be a replay */
        if (put(s, i) == REQSIGN_OK)
            lost++;
    reqsign_nonce_store_free(s);

    bench_emit(json_pack(
        "{s:s, s:f, s:f, s:f, s:I, s:I, s:{s:I, s:I, s:I, s:I, s:f, s:I, s:I}}", "name",
        "nonce_store_ops", "per_sec", bench_median(one, R), "per_sec_2_threads",
        bench_median(two, R), "scaling_2_threads", bench_median(two, R) / bench_median(one, R),
        "operations", (json_int_t)n, "rounds", (json_int_t)R, "full", "max_entries",
        (json_int_t)cap, "offered", (json_int_t)offered, "accepted", (json_int_t)accepted,
        "refused", (json_int_t)refused, "refusal_rate", (double)refused / (double)(offered - cap),
        "other_errors", (json_int_t)other, "evicted", (json_int_t)lost));
    return 0;
}
