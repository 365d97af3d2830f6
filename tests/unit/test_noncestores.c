/* Criterion suite `noncestores`: one contract, run against every nonce store.
 *
 * Each contract case runs once per row of `impls` (memory; redis with
 * absolute expiries; redis forced to relative ones), as tests named CASE__ROW. The Redis rows start
 * their own redis-server on a Unix socket in a temporary directory (redisutil.h) and are skipped
 * when reqsign was built without the Redis nonce store (reqsign-nonce-redis, meson option fleet:
 * REQSIGN_TEST_REDIS) or redis-server is not installed. Time: the memory row uses an injected
 * clock; the Redis rows use the real clock and real one-second windows (Redis expires keys itself).
 * Then Redis-only cases: the pipelined batch, fleet key sharing, the key
 * format, failing closed while the server hangs (SIGSTOP) or is gone
 * (SIGKILL) and resuming without a new store, rough timings, the per-key cap
 * (also exact under threads), the total bound, refusing an evicting Redis or
 * one whose CONFIG is disabled, and the EVAL fallback after SCRIPT FLUSH.
 */
#include <criterion/criterion.h>
#include <criterion/logging.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <reqsign/nonce.h>
#ifdef REQSIGN_TEST_REDIS
#include <reqsign/nonce_redis.h>
#endif
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "redisutil.h"
#include "testutil.h"

#define T0 INT64_C(1700000000)

/* ---- clocks ---- */

static int64_t real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the implementations ---- */

struct fx;
struct impl {
    const char *name;
    bool (*make)(struct fx *f); /* false: skip (message in f->skip) */
    void (*teardown)(struct fx *f);
    bool real_clock;
};

struct fx {
    const struct impl *impl;
    struct reqsign_nonce_store *s;
    struct ru_server srv;
    int64_t fake; /* seconds added to T0 by the injected clock */
    char skip[160];
};

static int64_t fx_now(const struct fx *f)
{
    return f->impl->real_clock ? (int64_t)time(NULL) : T0 + f->fake;
}

/* Let a pair inserted at @now until @until expire: it is live while
 * now <= until, so dead from second until + 1. @after_ms: real ms right
 * after the insert returned (a relative expiry starts when Redis ran it). */
static void fx_wait_expired(struct fx *f, int64_t now, int64_t until, int64_t after_ms)
{
    if (!f->impl->real_clock) {
        f->fake = until + 1 - T0;
        return;
    }
    int64_t at = (until + 1) * 1000, px = after_ms + (until + 1 - now) * 1000;
    int64_t target = (at > px ? at : px) + 50;
    tu_sleep_ms(target - real_ms());
    while ((int64_t)time(NULL) <= until) /* the next check's now is past until */
        tu_sleep_ms(10);
}

static bool make_memory(struct fx *f)
{
    f->s = reqsign_nonce_store_memory_new(NULL, NULL);
    return f->s != NULL;
}

static void teardown_memory(struct fx *f)
{
    reqsign_nonce_store_free(f->s);
}

/* The contract rows use a generous command timeout (a loaded CI machine must
 * not turn into UNAVAILABLE); the fault tests make their own store with FAST_MS. */
#define CONTRACT_MS 3000
#define FAST_MS 100

#ifdef REQSIGN_TEST_REDIS
static struct reqsign_nonce_store *redis_store(struct fx *f, const char *prefix, bool px,
                                               size_t pool, unsigned command_ms,
                                               struct reqsign_error *e)
{
    struct reqsign_nonce_redis_opts o = {
        .url = f->srv.url,
        .key_prefix = prefix,
        .pool_size = pool,
        .command_timeout_ms = command_ms,
        .connect_timeout_ms = 200,
        .backoff_min_ms = 50,
        .backoff_max_ms = 400,
        .relative_ttl = px,
    };
    return reqsign_nonce_store_redis_new(&o, e);
}

static bool make_redis_mode(struct fx *f, bool px)
{
    struct reqsign_error e;
    reqsign_error_clear(&e);
    /* a store made before the server exists: also proves _new does not connect */
    struct ru_server none = {.url = "unix:/nonexistent/redis.sock"};
    struct fx probe = {.srv = none};
    struct reqsign_nonce_store *s = redis_store(&probe, NULL, px, 0, FAST_MS, &e);
    if (s == NULL) {
        snprintf(f->skip, sizeof(f->skip), "%.150s", e.message);
        return false;
    }
    reqsign_nonce_store_free(s);
    if (!ru_available()) {
        snprintf(f->skip, sizeof(f->skip), "redis-server not installed");
        return false;
    }
    cr_assert_eq(ru_start(&f->srv), 0, "cannot start redis-server");
    f->s = redis_store(f, NULL, px, 0, CONTRACT_MS, &e);
    cr_assert_not_null(f->s, "%s", e.message);
    cr_assert_eq(reqsign_nonce_store_redis_ping(f->s, &e), REQSIGN_OK, "%s", e.message);
    struct reqsign_nonce_redis_stats st;
    reqsign_nonce_store_redis_stats(f->s, &st);
    cr_assert_eq(st.pxat, !px && st.server_version >= 60200, "version %u", st.server_version);
    return true;
}
#else
static bool make_redis_mode(struct fx *f, bool px)
{
    (void)px;
    snprintf(f->skip, sizeof(f->skip), "built without the Redis nonce store (meson option fleet)");
    return false;
}
#endif

static bool make_redis(struct fx *f)
{
    return make_redis_mode(f, false);
}

static bool make_redis_px(struct fx *f)
{
    return make_redis_mode(f, true);
}

static void teardown_redis(struct fx *f)
{
    reqsign_nonce_store_free(f->s);
    ru_stop(&f->srv);
}

static const struct impl impls[] = {
    {"memory", make_memory, teardown_memory, false},
    {"redis", make_redis, teardown_redis, true},
    {"redis_px", make_redis_px, teardown_redis, true},
};

static void fx_setup(struct fx *f, const struct impl *impl)
{
    memset(f, 0, sizeof(*f));
    f->impl = impl;
    if (!impl->make(f))
        cr_skip_test("%s: %s", impl->name, f->skip);
}

#define CONTRACT(name)                                                                             \
    static void name(struct fx *f);                                                                \
    Test(noncestores, name##__memory)                                                              \
    {                                                                                              \
        struct fx f;                                                                               \
        fx_setup(&f, &impls[0]);                                                                   \
        name(&f);                                                                                  \
        impls[0].teardown(&f);                                                                     \
    }                                                                                              \
    Test(noncestores, name##__redis)                                                               \
    {                                                                                              \
        struct fx f;                                                                               \
        fx_setup(&f, &impls[1]);                                                                   \
        name(&f);                                                                                  \
        impls[1].teardown(&f);                                                                     \
    }                                                                                              \
    Test(noncestores, name##__redis_px)                                                            \
    {                                                                                              \
        struct fx f;                                                                               \
        fx_setup(&f, &impls[2]);                                                                   \
        name(&f);                                                                                  \
        impls[2].teardown(&f);                                                                     \
    }                                                                                              \
    static void name(struct fx *f)

static enum reqsign_status ci(struct reqsign_nonce_store *s, const char *keyid, const char *nonce,
                              int64_t now, int64_t until)
{
    return reqsign_nonce_store_check_insert(s, keyid, strlen(keyid), nonce, strlen(nonce), now,
                                            until, NULL);
}

/* A distinct nonce per (run, tag, i): Redis rows share nothing between tests,
 * but the suffix keeps reruns against one server apart too. */
static const char *nonce_of(char buf[48], unsigned tag, unsigned i)
{
    snprintf(buf, 48, "n-%08x-%u-%u", (unsigned)getpid(), tag, i);
    return buf;
}

/* ---- the contract ---- */

CONTRACT(same_pair_twice_is_replay)
{
    struct reqsign_error e;
    int64_t now = fx_now(f);
    cr_assert_eq(ci(f->s, "alice", "nonce-0001", now, now + 300), REQSIGN_OK);
    reqsign_error_clear(&e);
    cr_assert_eq(
        reqsign_nonce_store_check_insert(f->s, "alice", 5, "nonce-0001", 10, now, now + 300, &e),
        REQSIGN_E_REPLAY);
    cr_assert_eq(e.code, REQSIGN_E_REPLAY);
    cr_assert_neq(e.message[0], '\0');
    /* still a replay: a refused check does not renew or forget the pair */
    cr_assert_eq(ci(f->s, "alice", "nonce-0001", now, now + 300), REQSIGN_E_REPLAY);
}

CONTRACT(distinct_keyids_are_distinct_pairs)
{
    int64_t now = fx_now(f);
    cr_assert_eq(ci(f->s, "alice", "nonce-0001", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(f->s, "bob", "nonce-0001", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(f->s, "alice", "nonce-0002", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(f->s, "bob", "nonce-0001", now, now + 300), REQSIGN_E_REPLAY);
    cr_assert_eq(ci(f->s, "alice", "nonce-0001", now, now + 300), REQSIGN_E_REPLAY);
    /* the keyid's length is part of the pair: no ambiguity at the boundary */
    cr_assert_eq(ci(f->s, "ab", "cdefghij", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(f->s, "abc", "defghij", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(f->s, "abcdefgh", "ij", now, now + 300), REQSIGN_OK);
}

CONTRACT(accepted_again_after_expiry)
{
    int64_t now = fx_now(f), until = now + 1;
    cr_assert_eq(ci(f->s, "alice", "expiring-1", now, until), REQSIGN_OK);
    int64_t after = real_ms();
    cr_assert_eq(ci(f->s, "alice", "expiring-1", now, until), REQSIGN_E_REPLAY);
    /* until <= now: still remembered (for a second) */
    cr_assert_eq(ci(f->s, "alice", "expiring-2", now, now), REQSIGN_OK);
    cr_assert_eq(ci(f->s, "alice", "expiring-2", now, now), REQSIGN_E_REPLAY);
    /* a long window next to it must survive */
    cr_assert_eq(ci(f->s, "alice", "lasting-1", now, now + 300), REQSIGN_OK);
    fx_wait_expired(f, now, until, after);
    int64_t later = fx_now(f);
    cr_assert_gt(later, until);
    cr_assert_eq(ci(f->s, "alice", "expiring-1", later, later + 300), REQSIGN_OK);
    cr_assert_eq(ci(f->s, "alice", "expiring-1", later, later + 300), REQSIGN_E_REPLAY);
    cr_assert_eq(ci(f->s, "alice", "lasting-1", later, later + 300), REQSIGN_E_REPLAY);
}

CONTRACT(invalid_arguments)
{
    int64_t now = fx_now(f);
    char big[REQSIGN_NONCE_IN_MAX + 2];
    memset(big, 'n', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    cr_assert_eq(ci(f->s, "", "nonce-0001", now, now + 300), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(ci(f->s, "alice", "", now, now + 300), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(ci(f->s, "alice", big, now, now + 300), REQSIGN_E_INVALID_ARG);
    cr_assert_eq(ci(f->s, "alice", "nonce-0001", -1, 300), REQSIGN_E_INVALID_ARG);
    /* binary-safe: NUL and 0xff bytes in keyid and nonce */
    struct reqsign_error e;
    cr_assert_eq(reqsign_nonce_store_check_insert(f->s, "k\0\xff", 3, "n\0\xff-nonce", 10, now,
                                                  now + 300, &e),
                 REQSIGN_OK);
    cr_assert_eq(reqsign_nonce_store_check_insert(f->s, "k\0\xfe", 3, "n\0\xff-nonce", 10, now,
                                                  now + 300, &e),
                 REQSIGN_OK);
    cr_assert_eq(reqsign_nonce_store_check_insert(f->s, "k\0\xff", 3, "n\0\xff-nonce", 10, now,
                                                  now + 300, &e),
                 REQSIGN_E_REPLAY);
}

/* The window edge (spec section 6), for every store: a pair is live while
 * now <= until, through the last millisecond of second until. Memory: the
 * injected clock at until, then until + 1. Redis (which expires keys by its own
 * clock): real time, a replay whose check reads now = until and runs in the
 * last milliseconds of second until is refused; from second until + 1 on the
 * pair is accepted again. */
CONTRACT(live_through_the_last_ms_of_second_until)
{
    if (f->impl->real_clock)
        while (real_ms() % 1000 >
               100) /* early in a second: a relative expiry cannot hide the edge */
            tu_sleep_ms(5);
    int64_t now = fx_now(f), until = now + 1;
    cr_assert_eq(ci(f->s, "edge", "edge-1", now, until), REQSIGN_OK);
    int64_t after = real_ms();
    if (!f->impl->real_clock) {
        f->fake = until - T0;
        cr_assert_eq(ci(f->s, "edge", "edge-1", until, until + 300), REQSIGN_E_REPLAY);
    } else {
        int64_t edge = (until + 1) * 1000; /* the first ms of second until + 1 */
        tu_sleep_ms(edge - 40 - real_ms());
        enum reqsign_status st = ci(f->s, "edge", "edge-1", until, until + 300);
        int64_t done = real_ms();
        cr_log_info("%s: replay at %lld ms before second until + 1: %s", f->impl->name,
                    (long long)(edge - done), reqsign_errname(st));
        cr_assert_lt(done, edge, "the check ended %lld ms late: the machine is too busy",
                     (long long)(done - edge));
        cr_assert_eq(st, REQSIGN_E_REPLAY, "replay accepted in the last ms of second until");
    }
    fx_wait_expired(f, now, until, after);
    int64_t later = fx_now(f);
    cr_assert_gt(later, until);
    cr_assert_eq(ci(f->s, "edge", "edge-1", later, later + 300), REQSIGN_OK);
}

#define RACE_THREADS 8
#define RACE_NONCES 200

struct race {
    struct reqsign_nonce_store *s;
    int64_t now;
    pthread_barrier_t barrier;
    atomic_int ok[RACE_NONCES], replay[RACE_NONCES], other;
};

static void *race_thread(void *arg)
{
    struct race *r = arg;
    char b[48];
    for (unsigned i = 0; i < RACE_NONCES; i++) {
        pthread_barrier_wait(&r->barrier);
        enum reqsign_status st = ci(r->s, "racer", nonce_of(b, 7, i), r->now, r->now + 300);
        if (st == REQSIGN_OK)
            atomic_fetch_add(&r->ok[i], 1);
        else if (st == REQSIGN_E_REPLAY)
            atomic_fetch_add(&r->replay[i], 1);
        else
            atomic_fetch_add(&r->other, 1);
    }
    return NULL;
}

CONTRACT(eight_threads_race_one_nonce_exactly_one_wins)
{
    static struct race r;
    pthread_t t[RACE_THREADS];
    memset(&r, 0, sizeof(r));
    r.s = f->s;
    r.now = fx_now(f);
    cr_assert_eq(pthread_barrier_init(&r.barrier, NULL, RACE_THREADS), 0);
    for (int i = 0; i < RACE_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, race_thread, &r), 0);
    for (int i = 0; i < RACE_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&r.barrier);
    cr_assert_eq(atomic_load(&r.other), 0);
    for (unsigned i = 0; i < RACE_NONCES; i++) {
        cr_assert_eq(atomic_load(&r.ok[i]), 1, "nonce %u accepted %d times", i,
                     atomic_load(&r.ok[i]));
        cr_assert_eq(atomic_load(&r.replay[i]), RACE_THREADS - 1);
    }
}

#define BULK_PER_THREAD 20000

struct bulk {
    struct reqsign_nonce_store *s;
    unsigned tag;
    int64_t now;
    enum reqsign_status want;
    unsigned wrong;
};

static void *bulk_thread(void *arg)
{
    struct bulk *b = arg;
    char n[48], k[16];
    for (unsigned i = 0; i < BULK_PER_THREAD; i++) {
        snprintf(k, sizeof(k), "key%u", i % 4);
        if (ci(b->s, k, nonce_of(n, b->tag, i), b->now, b->now + 300) != b->want)
            b->wrong++;
    }
    return NULL;
}

static void bulk_run(struct reqsign_nonce_store *s, int64_t now, enum reqsign_status want)
{
    pthread_t t[2];
    struct bulk b[2];
    for (int i = 0; i < 2; i++) {
        b[i] = (struct bulk){.s = s, .tag = 100 + (unsigned)i, .now = now, .want = want};
        cr_assert_eq(pthread_create(&t[i], NULL, bulk_thread, &b[i]), 0);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        cr_assert_eq(b[i].wrong, 0, "thread %d: %u of %d not %s", i, b[i].wrong, BULK_PER_THREAD,
                     reqsign_errname(want));
    }
}

CONTRACT(two_threads_distinct_all_ok_then_all_replays)
{
    int64_t now = fx_now(f);
    bulk_run(f->s, now, REQSIGN_OK);
    bulk_run(f->s, now, REQSIGN_E_REPLAY);
}

/* ---- Redis only (the library reqsign-nonce-redis) ---- */
#ifdef REQSIGN_TEST_REDIS

static void redis_setup(struct fx *f)
{
    fx_setup(f, &impls[1]);
}

static struct reqsign_nonce_item item(const char *keyid, const char *nonce, int64_t until)
{
    struct reqsign_nonce_item it = {{keyid, strlen(keyid)}, {nonce, strlen(nonce)}, until};
    return it;
}

Test(noncestores, redis_batch_equals_single_path)
{
    struct fx f;
    struct reqsign_error e;
    redis_setup(&f);
    struct reqsign_nonce_store *a = redis_store(&f, "a:", false, 2, CONTRACT_MS, &e);
    struct reqsign_nonce_store *b = redis_store(&f, "b:", false, 2, CONTRACT_MS, &e);
    cr_assert_not_null(a);
    cr_assert_not_null(b);
    int64_t now = (int64_t)time(NULL);
    static char nonces[64][48];
    struct reqsign_nonce_item items[64];
    enum reqsign_status got[64], want[64];
    for (unsigned i = 0; i < 64; i++)
        nonce_of(nonces[i], 9, i % 48); /* items 48..63 repeat items 0..15 */
    for (unsigned i = 0; i < 64; i++)
        items[i] = item(i % 3 == 0 ? "kb" : "ka", nonces[i], now + 300);
    items[5].nonce.len = 0;              /* invalid: not sent; so its repeat 53 is new */
    items[7].until = now - 10;           /* until <= now: kept a second; 55 is a replay */
    for (unsigned i = 40; i < 45; i++) { /* seen before the batch */
        cr_assert_eq(reqsign_nonce_store_check_insert(a, items[i].keyid.ptr, items[i].keyid.len,
                                                      items[i].nonce.ptr, items[i].nonce.len, now,
                                                      now + 300, &e),
                     REQSIGN_OK);
        cr_assert_eq(reqsign_nonce_store_check_insert(b, items[i].keyid.ptr, items[i].keyid.len,
                                                      items[i].nonce.ptr, items[i].nonce.len, now,
                                                      now + 300, &e),
                     REQSIGN_OK);
    }
    reqsign_error_clear(&e);
    enum reqsign_status st =
        reqsign_nonce_store_redis_check_insert_batch(a, items, 64, got, now, &e);
    size_t first = 64, oks = 0, replays = 0;
    for (unsigned i = 0; i < 64; i++) {
        want[i] = reqsign_nonce_store_check_insert(b, items[i].keyid.ptr, items[i].keyid.len,
                                                   items[i].nonce.ptr, items[i].nonce.len, now,
                                                   items[i].until, NULL);
        cr_assert_eq(got[i], want[i], "item %u: batch %s, single %s", i, reqsign_errname(got[i]),
                     reqsign_errname(want[i]));
        if (want[i] != REQSIGN_OK && first == 64)
            first = i;
        oks += want[i] == REQSIGN_OK;
        replays += want[i] == REQSIGN_E_REPLAY;
    }
    cr_assert_eq(replays, 5 + 16 - 1);
    cr_assert_eq(oks, 64 - 1 - replays);
    cr_assert_eq(st, want[first]);
    cr_assert_eq(e.code, want[first]);
    /* all OK: OK; and the batch's pairs are now replays on the single path */
    for (unsigned i = 0; i < 64; i++)
        items[i] = item("kc", nonces[i], now + 300);
    enum reqsign_status res[64];
    cr_assert_eq(reqsign_nonce_store_redis_check_insert_batch(a, items, 48, res, now, NULL),
                 REQSIGN_OK);
    cr_assert_eq(reqsign_nonce_store_check_insert(a, "kc", 2, nonces[3], strlen(nonces[3]), now,
                                                  now + 300, NULL),
                 REQSIGN_E_REPLAY);
    /* empty batch; not a Redis store */
    cr_assert_eq(reqsign_nonce_store_redis_check_insert_batch(a, NULL, 0, res, now, NULL),
                 REQSIGN_OK);
    struct reqsign_nonce_store *m = reqsign_nonce_store_memory_new(NULL, NULL);
    cr_assert_eq(reqsign_nonce_store_redis_check_insert_batch(m, items, 2, res, now, NULL),
                 REQSIGN_E_INVALID_ARG);
    cr_assert_eq(res[1], REQSIGN_E_INVALID_ARG);
    reqsign_nonce_store_free(m);
    reqsign_nonce_store_free(a);
    reqsign_nonce_store_free(b);
    teardown_redis(&f);
}

Test(noncestores, redis_fleet_shares_keys_and_key_format)
{
    struct fx f;
    struct reqsign_error e;
    redis_setup(&f);
    /* a second verifier of the fleet: its own store object, the same keys */
    struct reqsign_nonce_store *other = redis_store(&f, NULL, false, 1, CONTRACT_MS, &e);
    int64_t now = (int64_t)time(NULL);
    cr_assert_eq(ci(f.s, "fleet-key", "fleet-nonce-1", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(other, "fleet-key", "fleet-nonce-1", now, now + 300), REQSIGN_E_REPLAY);
    cr_assert_eq(ci(other, "fleet-key", "fleet-nonce-2", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(f.s, "fleet-key", "fleet-nonce-2", now, now + 300), REQSIGN_E_REPLAY);
    reqsign_nonce_store_free(other);

    /* the key: prefix || SHA-256(len16be(keyid) || keyid || nonce)[0..16] */
    unsigned char in[64], md[32];
    unsigned mdlen;
    size_t kl = strlen("fleet-key"), nl = strlen("fleet-nonce-1");
    in[0] = 0;
    in[1] = (unsigned char)kl;
    memcpy(in + 2, "fleet-key", kl);
    memcpy(in + 2 + kl, "fleet-nonce-1", nl);
    cr_assert_eq(EVP_Digest(in, 2 + kl + nl, md, &mdlen, EVP_sha256(), NULL), 1);
    char key[64];
    size_t pl = strlen(REQSIGN_NONCE_REDIS_DEFAULT_PREFIX);
    memcpy(key, REQSIGN_NONCE_REDIS_DEFAULT_PREFIX, pl);
    memcpy(key + pl, md, 16);
    char out[64];
    const char *argv[] = {"PTTL", key};
    size_t lens[] = {4, pl + 16};
    cr_assert_eq(ru_command(&f.srv, 2, argv, lens, out, sizeof(out)), 0);
    cr_assert_eq(out[0], ':', "PTTL: %s", out);
    long long pttl = strtoll(out + 1, NULL, 10);
    /* live through second now + 300: expires at (now + 301) * 1000 ms */
    cr_assert(pttl > 299000 && pttl <= 302000, "PTTL %lld", pttl);
    const char *dbsize[] = {"DBSIZE"};
    size_t dblen[] = {6};
    cr_assert_eq(ru_command(&f.srv, 1, dbsize, dblen, out, sizeof(out)), 0);
    cr_assert_str_eq(out, ":3"); /* two pairs and the keyid's set */
    teardown_redis(&f);
}

Test(noncestores, redis_bad_options_and_unreachable)
{
    struct reqsign_error e;
    static const char *const bad[] = {
        "http://127.0.0.1:6379",
        "redis://",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:12x",
        "redis://h/db",
        "redis://h/70000",
        "redis://[::1",
        "unix:",
        "unix:relative.sock",
        "redis://secretonly@h",
        "redis://:secretonly@ret-part@h", /* a raw '@' in the password: percent-encode it */
        "redis://h/0?secretonly=1",
        "redis://h/0?per_key_max=0",
        "redis://h/0?max_entries=x",
        "unix:/tmp/x.sock?assume_noeviction=2",
        "redis://h/0#frag",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct reqsign_nonce_redis_opts o = {.url = bad[i]};
        reqsign_error_clear(&e);
        struct reqsign_nonce_store *s = reqsign_nonce_store_redis_new(&o, &e);
        if (s == NULL && strstr(e.message, "built without Redis support") != NULL)
            cr_skip_test("built without Redis support");
        cr_assert_null(s, "%s accepted", bad[i]);
        cr_assert_eq(e.code, REQSIGN_E_INVALID_ARG, "%s", bad[i]);
        cr_assert_null(strstr(e.message, "secretonly"), "%s", e.message);
    }
    struct reqsign_nonce_redis_opts o = {.key_prefix = "x"};
    cr_assert_null(reqsign_nonce_store_redis_new(&o, NULL));
    cr_assert_null(reqsign_nonce_store_redis_new(NULL, NULL));
    char longp[REQSIGN_NONCE_REDIS_PREFIX_IN_MAX + 2];
    memset(longp, 'p', sizeof(longp) - 1);
    longp[sizeof(longp) - 1] = '\0';
    o = (struct reqsign_nonce_redis_opts){.url = "redis://h", .key_prefix = longp};
    cr_assert_null(reqsign_nonce_store_redis_new(&o, NULL));

    /* good URLs; nothing listens on TCP port 1: refused, fail-closed, no password shown */
    static const char *const good[] = {"redis://127.0.0.1", "redis://[::1]:1/3",
                                       "redis://u:pw@h:7000/0", "redis://:p%40ss@h/",
                                       "unix:/tmp/x.sock"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        o = (struct reqsign_nonce_redis_opts){.url = good[i]};
        struct reqsign_nonce_store *s = reqsign_nonce_store_redis_new(&o, &e);
        cr_assert_not_null(s, "%s: %s", good[i], e.message);
        reqsign_nonce_store_free(s);
    }
    o = (struct reqsign_nonce_redis_opts){.url = "redis://:s3cr3t-pw@127.0.0.1:1/2"};
    struct reqsign_nonce_store *s = reqsign_nonce_store_redis_new(&o, &e);
    cr_assert_not_null(s);
    int64_t now = (int64_t)time(NULL);
    reqsign_error_clear(&e);
    cr_assert_eq(reqsign_nonce_store_check_insert(s, "k", 1, "nonce-0001", 10, now, now + 60, &e),
                 REQSIGN_E_NONCE_STORE_UNAVAILABLE);
    cr_log_info("unreachable: %s", e.message);
    cr_assert_not_null(strstr(e.message, "127.0.0.1:1"), "%s", e.message);
    cr_assert_null(strstr(e.message, "s3cr3t"), "%s", e.message);
    /* within the backoff: at once, and says so */
    reqsign_error_clear(&e);
    int64_t t0 = tu_now_ms();
    cr_assert_eq(reqsign_nonce_store_check_insert(s, "k", 1, "nonce-0001", 10, now, now + 60, &e),
                 REQSIGN_E_NONCE_STORE_UNAVAILABLE);
    cr_assert_lt(tu_now_ms() - t0, 5);
    cr_assert_not_null(strstr(e.message, "next reconnect"), "%s", e.message);
    enum reqsign_status res[1];
    struct reqsign_nonce_item it = item("k", "nonce-0001", now + 60);
    cr_assert_eq(reqsign_nonce_store_redis_check_insert_batch(s, &it, 1, res, now, NULL),
                 REQSIGN_E_NONCE_STORE_UNAVAILABLE);
    cr_assert_eq(res[0], REQSIGN_E_NONCE_STORE_UNAVAILABLE);
    struct reqsign_nonce_redis_stats st;
    reqsign_nonce_store_redis_stats(s, &st);
    cr_assert_eq(st.connects, 0);
    cr_assert_geq(st.failures, 1);
    cr_assert_geq(st.fast_fails, 2);
    cr_assert_gt(st.backoff_ms, 0);
    reqsign_nonce_store_free(s);
}

/* Checks with fresh nonces for @ms; none may be accepted. Returns how many
 * ran; *slowest the longest call in ms. */
static unsigned none_accepted_for(struct reqsign_nonce_store *s, unsigned tag, int64_t ms,
                                  int64_t *slowest)
{
    char n[48];
    unsigned calls = 0;
    int64_t end = tu_now_ms() + ms;
    *slowest = 0;
    while (tu_now_ms() < end) {
        int64_t now = (int64_t)time(NULL), t0 = tu_now_ms();
        enum reqsign_status st = ci(s, "down", nonce_of(n, tag, calls), now, now + 60);
        int64_t dt = tu_now_ms() - t0;
        cr_assert_eq(st, REQSIGN_E_NONCE_STORE_UNAVAILABLE, "call %u: %s", calls,
                     reqsign_errname(st));
        if (dt > *slowest)
            *slowest = dt;
        calls++;
        tu_sleep_ms(5);
    }
    return calls;
}

/* Poll with fresh nonces until one is accepted; returns ms taken. */
static int64_t until_resumed(struct reqsign_nonce_store *s, unsigned tag, int64_t limit_ms)
{
    char n[48];
    int64_t t0 = tu_now_ms();
    for (unsigned i = 0;; i++) {
        int64_t now = (int64_t)time(NULL);
        enum reqsign_status st = ci(s, "back", nonce_of(n, tag, i), now, now + 60);
        if (st == REQSIGN_OK)
            return tu_now_ms() - t0;
        cr_assert_eq(st, REQSIGN_E_NONCE_STORE_UNAVAILABLE);
        cr_assert_lt(tu_now_ms() - t0, limit_ms, "not resumed after %lld ms", (long long)limit_ms);
        tu_sleep_ms(10);
    }
}

Test(noncestores, redis_hang_fails_closed_then_resumes)
{
    struct fx f;
    struct reqsign_error e;
    redis_setup(&f);
    struct reqsign_nonce_store *s = redis_store(&f, NULL, false, 0, FAST_MS, &e);
    cr_assert_not_null(s);
    int64_t now = (int64_t)time(NULL);
    cr_assert_eq(ci(s, "k", "before-stop", now, now + 300), REQSIGN_OK);

    ru_signal(&f.srv, SIGSTOP); /* a hang: connections stay open, nothing answers */
    reqsign_error_clear(&e);
    int64_t t0 = tu_now_ms();
    cr_assert_eq(reqsign_nonce_store_check_insert(s, "k", 1, "during-stop", 11, now, now + 300, &e),
                 REQSIGN_E_NONCE_STORE_UNAVAILABLE);
    int64_t first = tu_now_ms() - t0;
    cr_log_info("SIGSTOP: first call UNAVAILABLE after %lld ms: %s", (long long)first, e.message);
    cr_assert_lt(first, 2 * FAST_MS + 100, "took %lld ms", (long long)first);
    cr_assert_not_null(strstr(e.message, "timed out"), "%s", e.message);
    int64_t slowest;
    unsigned calls = none_accepted_for(s, 1, 800, &slowest);
    struct reqsign_nonce_redis_stats st;
    reqsign_nonce_store_redis_stats(s, &st);
    cr_log_info("SIGSTOP: %u calls in 800 ms, all UNAVAILABLE, slowest %lld ms, %llu fast", calls,
                (long long)slowest, (unsigned long long)st.fast_fails);
    cr_assert_lt(slowest, 2 * FAST_MS + 100);
    cr_assert_gt(st.fast_fails, 0);

    ru_signal(&f.srv, SIGCONT);
    int64_t resumed = until_resumed(s, 2, 2000);
    cr_log_info("SIGCONT: resumed after %lld ms (same store object)", (long long)resumed);
    now = (int64_t)time(NULL);
    cr_assert_eq(ci(s, "k", "before-stop", now, now + 300), REQSIGN_E_REPLAY);
    /* sent while stopped, refused to the caller, but run when it woke: recorded */
    cr_assert_eq(ci(s, "k", "during-stop", now, now + 300), REQSIGN_E_REPLAY);
    reqsign_nonce_store_free(s);
    teardown_redis(&f);
}

Test(noncestores, redis_death_fails_closed_then_resumes)
{
    struct fx f;
    struct reqsign_error e;
    redis_setup(&f);
    struct reqsign_nonce_store *s = redis_store(&f, NULL, false, 0, FAST_MS, &e);
    cr_assert_not_null(s);
    int64_t now = (int64_t)time(NULL);
    cr_assert_eq(ci(s, "k", "before-kill", now, now + 300), REQSIGN_OK);

    ru_signal(&f.srv, SIGKILL); /* gone: the socket file stays, connects are refused */
    reqsign_error_clear(&e);
    int64_t t0 = tu_now_ms();
    cr_assert_eq(reqsign_nonce_store_check_insert(s, "k", 1, "during-kill", 11, now, now + 300, &e),
                 REQSIGN_E_NONCE_STORE_UNAVAILABLE);
    int64_t first = tu_now_ms() - t0;
    cr_log_info("SIGKILL: first call UNAVAILABLE after %lld ms: %s", (long long)first, e.message);
    cr_assert_lt(first, 100);
    int64_t slowest;
    unsigned calls = none_accepted_for(s, 3, 600, &slowest);
    cr_log_info("SIGKILL: %u calls in 600 ms, all UNAVAILABLE, slowest %lld ms", calls,
                (long long)slowest);
    cr_assert_lt(slowest, 100);

    cr_assert_eq(ru_restart(&f.srv), 0);
    int64_t resumed = until_resumed(s, 4, 2000);
    cr_log_info("restart: resumed after %lld ms (same store object)", (long long)resumed);
    struct reqsign_nonce_redis_stats st;
    reqsign_nonce_store_redis_stats(s, &st);
    cr_assert_geq(st.connects, 2);
    now = (int64_t)time(NULL);
    /* no persistence in this test server: what it held is gone (see nonce_redis.h) */
    cr_assert_eq(ci(s, "k", "after-restart", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "after-restart", now, now + 300), REQSIGN_E_REPLAY);
    reqsign_nonce_store_free(s);
    teardown_redis(&f);
}

/* Not a benchmark: orders of magnitude for the lead, printed with the results. */
Test(noncestores, redis_rough_numbers)
{
    struct fx f;
    struct reqsign_error e;
    char n[48];
    redis_setup(&f);
    struct reqsign_nonce_store *one = redis_store(&f, "perf:", false, 1, CONTRACT_MS, &e);
    int64_t now = (int64_t)time(NULL);
    enum { SINGLE = 5000, BATCHES = 200, BATCH = 64 };
    cr_assert_eq(reqsign_nonce_store_redis_ping(one, &e), REQSIGN_OK);
    int64_t t0 = tu_now_ms();
    for (unsigned i = 0; i < SINGLE; i++)
        cr_assert_eq(ci(one, "perf", nonce_of(n, 20, i), now, now + 300), REQSIGN_OK);
    int64_t single = tu_now_ms() - t0;
    static char nonces[BATCH][48];
    struct reqsign_nonce_item items[BATCH];
    enum reqsign_status res[BATCH];
    t0 = tu_now_ms();
    for (unsigned b = 0; b < BATCHES; b++) {
        for (unsigned i = 0; i < BATCH; i++)
            items[i] = item("perf", nonce_of(nonces[i], 21 + b, i), now + 300);
        cr_assert_eq(reqsign_nonce_store_redis_check_insert_batch(one, items, BATCH, res, now, &e),
                     REQSIGN_OK, "%s", e.message);
    }
    int64_t batched = tu_now_ms() - t0;
    cr_log_info("rough numbers (unix socket, one connection): check_insert %.1f us/op; "
                "batch of %d: %.1f us/batch, %.0f pairs/s",
                1000.0 * (double)single / SINGLE, BATCH, 1000.0 * (double)batched / BATCHES,
                batched > 0 ? 1000.0 * BATCHES * BATCH / (double)batched : 0.0);
    reqsign_nonce_store_free(one);
    teardown_redis(&f);
}

/* ---- Redis: the per-key cap, the total bound, the eviction policy ---- */

static struct reqsign_nonce_store *capped_store(struct fx *f, const char *prefix, size_t per_key,
                                                size_t max_entries, size_t pool)
{
    struct reqsign_error e;
    struct reqsign_nonce_redis_opts o = {
        .url = f->srv.url,
        .key_prefix = prefix,
        .pool_size = pool,
        .command_timeout_ms = CONTRACT_MS,
        .per_key_max = per_key,
        .max_entries = max_entries,
    };
    reqsign_error_clear(&e);
    struct reqsign_nonce_store *s = reqsign_nonce_store_redis_new(&o, &e);
    cr_assert_not_null(s, "%s", e.message);
    return s;
}

Test(noncestores, redis_per_key_cap_does_not_lock_out_other_keys)
{
    struct fx f;
    struct reqsign_error e;
    char n[48];
    redis_setup(&f);
    struct reqsign_nonce_store *s = capped_store(&f, "cap:", 5, 0, 2);
    int64_t now = (int64_t)time(NULL);
    for (unsigned i = 0; i < 5; i++)
        cr_assert_eq(ci(s, "busy", nonce_of(n, 30, i), now, now + 300), REQSIGN_OK, "%u", i);
    reqsign_error_clear(&e);
    cr_assert_eq(reqsign_nonce_store_check_insert(s, "busy", 4, "sixth", 5, now, now + 300, &e),
                 REQSIGN_E_NONCE_KEY_LIMIT);
    cr_assert_eq(e.code, REQSIGN_E_NONCE_KEY_LIMIT);
    cr_assert_eq(reqsign_http_status(e.code), 429);
    cr_assert_not_null(strstr(e.message, "maximum of 5"), "%s", e.message);
    /* a replay at the cap is still a replay; another key still gets OK */
    cr_assert_eq(ci(s, "busy", nonce_of(n, 30, 2), now, now + 300), REQSIGN_E_REPLAY);
    cr_assert_eq(ci(s, "quiet", "first", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(s, "busy", "sixth", now, now + 300), REQSIGN_E_NONCE_KEY_LIMIT);

    /* the batch: the same semantics, counting the batch's earlier items */
    static char nonces[8][48];
    struct reqsign_nonce_item items[8];
    enum reqsign_status res[8];
    for (unsigned i = 0; i < 8; i++)
        items[i] = item(i == 3 ? "other" : "batch-key", nonce_of(nonces[i], 31, i), now + 300);
    reqsign_error_clear(&e);
    cr_assert_eq(reqsign_nonce_store_redis_check_insert_batch(s, items, 8, res, now, &e),
                 REQSIGN_E_NONCE_KEY_LIMIT);
    cr_assert_not_null(strstr(e.message, "item 6"), "%s", e.message);
    for (unsigned i = 0; i < 8; i++)
        cr_assert_eq(res[i], i < 6 ? REQSIGN_OK : REQSIGN_E_NONCE_KEY_LIMIT, "item %u: %s", i,
                     reqsign_errname(res[i]));
    reqsign_nonce_store_free(s);

    /* entries that expired no longer count: a key at its cap gets room again */
    s = capped_store(&f, "cap2:", 2, 0, 1);
    now = (int64_t)time(NULL);
    cr_assert_eq(ci(s, "k", "a", now, now + 1), REQSIGN_OK);
    int64_t after = real_ms();
    cr_assert_eq(ci(s, "k", "b", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "c", now, now + 300), REQSIGN_E_NONCE_KEY_LIMIT);
    struct fx rf = {.impl = &impls[1]};
    fx_wait_expired(&rf, now, now + 1, after);
    int64_t later = (int64_t)time(NULL);
    cr_assert_eq(ci(s, "k", "c", later, later + 300), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "d", later, later + 300), REQSIGN_E_NONCE_KEY_LIMIT);
    reqsign_nonce_store_free(s);
    teardown_redis(&f);
}

#define CAP_THREADS 8
#define CAP_EACH 20
#define CAP_MAX 50

struct cap_race {
    struct reqsign_nonce_store *s;
    int64_t now;
    pthread_barrier_t barrier;
    atomic_int ok, limit, other, cold_ok;
    unsigned next;
};

static void *cap_thread(void *arg)
{
    struct cap_race *c = arg;
    char n[48];
    unsigned me = __atomic_fetch_add(&c->next, 1, __ATOMIC_SEQ_CST);
    pthread_barrier_wait(&c->barrier);
    for (unsigned i = 0; i < CAP_EACH; i++) {
        enum reqsign_status st = ci(c->s, "hot", nonce_of(n, 40 + me, i), c->now, c->now + 300);
        if (st == REQSIGN_OK)
            atomic_fetch_add(&c->ok, 1);
        else if (st == REQSIGN_E_NONCE_KEY_LIMIT)
            atomic_fetch_add(&c->limit, 1);
        else
            atomic_fetch_add(&c->other, 1);
    }
    if (ci(c->s, "cold", nonce_of(n, 60 + me, 0), c->now, c->now + 300) == REQSIGN_OK)
        atomic_fetch_add(&c->cold_ok, 1);
    return NULL;
}

Test(noncestores, redis_per_key_cap_exact_under_threads)
{
    struct fx f;
    static struct cap_race c;
    pthread_t t[CAP_THREADS];
    redis_setup(&f);
    memset(&c, 0, sizeof(c));
    c.s = capped_store(&f, "race:", CAP_MAX, 0, CAP_THREADS);
    c.now = (int64_t)time(NULL);
    cr_assert_eq(pthread_barrier_init(&c.barrier, NULL, CAP_THREADS), 0);
    for (int i = 0; i < CAP_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, cap_thread, &c), 0);
    for (int i = 0; i < CAP_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&c.barrier);
    cr_assert_eq(atomic_load(&c.other), 0);
    cr_assert_eq(atomic_load(&c.ok), CAP_MAX, "%d accepted", atomic_load(&c.ok));
    cr_assert_eq(atomic_load(&c.limit), CAP_THREADS * CAP_EACH - CAP_MAX);
    cr_assert_eq(atomic_load(&c.cold_ok), CAP_THREADS);
    /* and what Redis holds agrees: ZCARD of the hot keyid's set */
    unsigned char in[2 + 3], md[32];
    unsigned mdlen;
    in[0] = 0;
    in[1] = 3;
    memcpy(in + 2, "hot", 3);
    cr_assert_eq(EVP_Digest(in, sizeof(in), md, &mdlen, EVP_sha256(), NULL), 1);
    char key[32], out[64];
    memcpy(key, "race:k:", 7);
    memcpy(key + 7, md, 16);
    const char *argv[] = {"ZCARD", key};
    size_t lens[] = {5, 7 + 16};
    cr_assert_eq(ru_command(&f.srv, 2, argv, lens, out, sizeof(out)), 0);
    cr_assert_str_eq(out, ":50");
    reqsign_nonce_store_free(c.s);
    teardown_redis(&f);
}

Test(noncestores, redis_total_bound_refuses_as_full)
{
    struct fx f;
    struct reqsign_error e;
    char n[48];
    redis_setup(&f);
    /* DBSIZE <= 10: one keyid's set and nine pairs */
    struct reqsign_nonce_store *s = capped_store(&f, "full:", 0, 10, 1);
    int64_t now = (int64_t)time(NULL);
    for (unsigned i = 0; i < 9; i++)
        cr_assert_eq(ci(s, "k", nonce_of(n, 50, i), now, now + 300), REQSIGN_OK, "%u", i);
    reqsign_error_clear(&e);
    cr_assert_eq(reqsign_nonce_store_check_insert(s, "k", 1, "tenth", 5, now, now + 300, &e),
                 REQSIGN_E_NONCE_STORE_FULL);
    cr_assert_eq(reqsign_http_status(e.code), 503);
    cr_assert_not_null(strstr(e.message, "maximum of 10"), "%s", e.message);
    /* nothing evicted: the pairs are still replays */
    for (unsigned i = 0; i < 9; i++)
        cr_assert_eq(ci(s, "k", nonce_of(n, 50, i), now, now + 300), REQSIGN_E_REPLAY);
    struct reqsign_nonce_item it = item("other", "x", now + 300);
    enum reqsign_status res[1];
    cr_assert_eq(reqsign_nonce_store_redis_check_insert_batch(s, &it, 1, res, now, NULL),
                 REQSIGN_E_NONCE_STORE_FULL);
    cr_assert_eq(res[0], REQSIGN_E_NONCE_STORE_FULL);
    reqsign_nonce_store_free(s);
    teardown_redis(&f);
}

/* An evicting Redis would forget live nonces: every connection checks
 * maxmemory-policy, so the start-up PING fails and no check is accepted. */
Test(noncestores, redis_evicting_policy_is_refused)
{
    struct fx f;
    struct reqsign_error e;
    char out[128];
    redis_setup(&f);
    const char *set[] = {"CONFIG", "SET", "maxmemory-policy", "allkeys-lru"};
    size_t setl[] = {6, 3, 16, 11};
    cr_assert_eq(ru_command(&f.srv, 4, set, setl, out, sizeof(out)), 0);
    cr_assert_str_eq(out, "+OK");
    struct reqsign_nonce_store *s = redis_store(&f, NULL, false, 1, CONTRACT_MS, &e);
    cr_assert_not_null(s, "%s", e.message);
    reqsign_error_clear(&e);
    cr_assert_eq(reqsign_nonce_store_redis_ping(s, &e), REQSIGN_E_NONCE_STORE_UNAVAILABLE);
    cr_log_info("allkeys-lru: %s", e.message);
    cr_assert_not_null(strstr(e.message, "maxmemory-policy is allkeys-lru, must be noeviction"),
                       "%s", e.message);
    int64_t now = (int64_t)time(NULL);
    tu_sleep_ms(500); /* past the backoff: a real connection attempt, refused again */
    cr_assert_eq(ci(s, "k", "n-evict", now, now + 300), REQSIGN_E_NONCE_STORE_UNAVAILABLE);
    /* back to noeviction: the same store resumes by itself */
    set[3] = "noeviction";
    setl[3] = 10;
    cr_assert_eq(ru_command(&f.srv, 4, set, setl, out, sizeof(out)), 0);
    until_resumed(s, 70, 3000);
    reqsign_nonce_store_free(s);
    teardown_redis(&f);
}

/* CONFIG renamed away (as managed services do): the policy cannot be checked,
 * so connections are refused, unless the operator vouches for it. */
Test(noncestores, redis_config_disabled_is_refused_unless_assumed)
{
    struct ru_server srv;
    struct reqsign_error e;
    static const char *const extra[] = {"--rename-command", "CONFIG", "", NULL};
    if (!ru_available())
        cr_skip_test("redis-server not installed");
    cr_assert_eq(ru_start_with(&srv, extra), 0);
    struct reqsign_nonce_redis_opts o = {.url = srv.url, .command_timeout_ms = CONTRACT_MS};
    struct reqsign_nonce_store *s = reqsign_nonce_store_redis_new(&o, &e);
    if (s == NULL && strstr(e.message, "built without Redis support") != NULL) {
        ru_stop(&srv);
        cr_skip_test("built without Redis support");
    }
    cr_assert_not_null(s, "%s", e.message);
    reqsign_error_clear(&e);
    cr_assert_eq(reqsign_nonce_store_redis_ping(s, &e), REQSIGN_E_NONCE_STORE_UNAVAILABLE);
    cr_log_info("CONFIG renamed: %s", e.message);
    cr_assert_not_null(strstr(e.message, "cannot check noeviction"), "%s", e.message);
    reqsign_nonce_store_free(s);
    o.assume_noeviction = true;
    s = reqsign_nonce_store_redis_new(&o, &e);
    cr_assert_not_null(s, "%s", e.message);
    cr_assert_eq(reqsign_nonce_store_redis_ping(s, &e), REQSIGN_OK, "%s", e.message);
    int64_t now = (int64_t)time(NULL);
    cr_assert_eq(ci(s, "k", "n", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(s, "k", "n", now, now + 300), REQSIGN_E_REPLAY);
    reqsign_nonce_store_free(s);
    /* the same from the URL alone, as the servers take it; with the bounds too */
    char url[300];
    snprintf(url, sizeof(url), "%s?assume_noeviction=1&per_key_max=2&max_entries=100", srv.url);
    o = (struct reqsign_nonce_redis_opts){.url = url, .command_timeout_ms = CONTRACT_MS};
    s = reqsign_nonce_store_redis_new(&o, &e);
    cr_assert_not_null(s, "%s", e.message);
    cr_assert_eq(reqsign_nonce_store_redis_ping(s, &e), REQSIGN_OK, "%s", e.message);
    cr_assert_eq(ci(s, "url", "n1", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(s, "url", "n2", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(s, "url", "n3", now, now + 300), REQSIGN_E_NONCE_KEY_LIMIT);
    reqsign_nonce_store_free(s);
    ru_stop(&srv);
}

/* A server that lost the script (SCRIPT FLUSH, a failover to a fresh
 * replica) answers EVALSHA with NOSCRIPT: both paths fall back to EVAL. */
Test(noncestores, redis_script_flushed_falls_back_to_eval)
{
    struct fx f;
    char out[64];
    redis_setup(&f);
    const char *flush[] = {"SCRIPT", "FLUSH"};
    size_t flushl[] = {6, 5};
    int64_t now = (int64_t)time(NULL);
    cr_assert_eq(ci(f.s, "k", "before", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ru_command(&f.srv, 2, flush, flushl, out, sizeof(out)), 0);
    cr_assert_eq(ci(f.s, "k", "after", now, now + 300), REQSIGN_OK);
    cr_assert_eq(ci(f.s, "k", "after", now, now + 300), REQSIGN_E_REPLAY);
    cr_assert_eq(ru_command(&f.srv, 2, flush, flushl, out, sizeof(out)), 0);
    struct reqsign_nonce_item items[3] = {
        item("k", "b1", now + 300), item("k", "before", now + 300), item("k", "b1", now + 300)};
    enum reqsign_status res[3];
    cr_assert_eq(reqsign_nonce_store_redis_check_insert_batch(f.s, items, 3, res, now, NULL),
                 REQSIGN_E_REPLAY);
    cr_assert_eq(res[0], REQSIGN_OK);
    cr_assert_eq(res[1], REQSIGN_E_REPLAY);
    cr_assert_eq(res[2], REQSIGN_E_REPLAY);
    struct reqsign_nonce_redis_stats st;
    reqsign_nonce_store_redis_stats(f.s, &st);
    cr_assert_eq(st.failures, 0);
    teardown_redis(&f);
}
#endif /* REQSIGN_TEST_REDIS */
