/* The stores' connection pool (server/stores/pool/pool.h) by itself: limits,
 * waiting and timing out on the monotonic clock, a waiter woken by a put,
 * dead and broken connections dropped, generations, connections made outside
 * the lock, and many threads at once. The connections are small structs that
 * count their opens and closes: the pool is generic, nothing here stands in
 * for a server. Last, the SQLite store on it (real files, real SQLite). */
#include <criterion/criterion.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <reqsign/keystore_sqlite.h>
#include <sqlite3.h>

#include "pool.h"
#include "testutil.h"

struct tconn {
    struct reqsign_pool_link link;
    int id;
    atomic_bool dead; /* alive() says no */
};

struct tctx {
    atomic_int opened, closed, in_use, max_in_use;
    atomic_bool fail_open;
    atomic_int open_delay_ms;
};

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static enum reqsign_status t_open(void *ctx, void *arg, struct reqsign_pool_link **out,
                                  struct reqsign_error *err)
{
    struct tctx *t = ctx;
    if (arg != NULL)
        (*(atomic_int *)arg)++; /* the caller's argument reaches the callback */
    int delay = atomic_load(&t->open_delay_ms);
    if (delay > 0)
        sleep_ms(delay);
    if (atomic_load(&t->fail_open))
        return reqsign_error_set(err, REQSIGN_E_KEYSTORE_UNAVAILABLE, "test", REQSIGN_NO_OFFSET,
                                 "cannot connect");
    struct tconn *c = calloc(1, sizeof(*c));
    cr_assert_not_null(c);
    c->id = ++t->opened;
    *out = &c->link;
    return REQSIGN_OK;
}

static bool t_alive(void *ctx, struct reqsign_pool_link *l)
{
    (void)ctx;
    return !atomic_load(&REQSIGN_POOL_OF(l, struct tconn, link)->dead);
}

static void t_close(void *ctx, struct reqsign_pool_link *l)
{
    struct tctx *t = ctx;
    t->closed++;
    free(REQSIGN_POOL_OF(l, struct tconn, link));
}

static const struct reqsign_pool_ops ops = {.open = t_open, .alive = t_alive, .close = t_close};

static struct reqsign_pool *mk(struct tctx *t, size_t max_open, size_t max_idle, unsigned wait_ms)
{
    const struct reqsign_pool_config cfg = {.max_open = max_open,
                                            .max_idle = max_idle,
                                            .wait_ms = wait_ms,
                                            .busy = REQSIGN_E_KEYSTORE_UNAVAILABLE,
                                            .src = "key store",
                                            .name = "Test"};
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_pool *p = reqsign_pool_new(&cfg, &ops, t, &err);
    cr_assert_not_null(p, "%s", err.message);
    return p;
}

static struct tconn *take(struct reqsign_pool *p, bool fresh, bool *reused)
{
    struct reqsign_pool_link *l = NULL;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st = reqsign_pool_get(p, fresh, NULL, &l, reused, &err);
    cr_assert_eq(st, REQSIGN_OK, "%s", err.message);
    cr_assert_not_null(l);
    return REQSIGN_POOL_OF(l, struct tconn, link);
}

static void counts(struct reqsign_pool *p, size_t open, size_t idle)
{
    size_t o = 99, i = 99;
    reqsign_pool_counts(p, &o, &i);
    cr_assert_eq(o, open, "open %zu, want %zu", o, open);
    cr_assert_eq(i, idle, "idle %zu, want %zu", i, idle);
}

Test(pool, bad_config_refused)
{
    struct tctx t = {0};
    struct reqsign_error err;
    reqsign_error_clear(&err);
    const struct reqsign_pool_config zero = {.max_open = 0, .src = "key store"};
    cr_assert_null(reqsign_pool_new(&zero, &ops, &t, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG);
    reqsign_error_clear(&err);
    const struct reqsign_pool_config idle_over = {.max_open = 2, .max_idle = 3};
    cr_assert_null(reqsign_pool_new(&idle_over, &ops, &t, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG);
}

Test(pool, max_open_and_max_idle)
{
    struct tctx t = {0};
    struct reqsign_pool *p = mk(&t, 3, 2, 0);
    counts(p, 0, 0);
    bool reused = true;
    struct tconn *c[3];
    for (int i = 0; i < 3; i++) {
        c[i] = take(p, false, &reused);
        cr_assert(!reused);
    }
    cr_assert_eq(t.opened, 3);
    counts(p, 3, 0);

    /* the fourth finds the pool full and, with wait_ms 0, fails at once naming the limit */
    struct reqsign_pool_link *l = (void *)1;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    int64_t t0 = mono_ms();
    cr_assert_eq(reqsign_pool_get(p, false, NULL, &l, NULL, &err), REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cr_assert_lt(mono_ms() - t0, 500);
    cr_assert_null(l);
    cr_assert_eq(err.code, REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cr_assert_str_eq(err.message, "Test: all 3 connections busy for 0 ms");
    cr_assert_eq(t.opened, 3, "no connection made past the limit");

    /* two stay idle, the third is closed */
    for (int i = 0; i < 3; i++)
        cr_assert(!reqsign_pool_put(p, &c[i]->link, REQSIGN_POOL_KEEP));
    counts(p, 2, 2);
    cr_assert_eq(t.closed, 1);

    /* idle ones are reused, last in first out, before anything is opened */
    struct tconn *a = take(p, false, &reused);
    cr_assert(reused);
    cr_assert_eq(a->id, 2);
    struct tconn *b = take(p, false, &reused);
    cr_assert(reused);
    cr_assert_eq(b->id, 1);
    cr_assert_eq(t.opened, 3);
    counts(p, 2, 0);
    reqsign_pool_put(p, &a->link, REQSIGN_POOL_KEEP);
    reqsign_pool_put(p, &b->link, REQSIGN_POOL_KEEP);
    reqsign_pool_free(p);
    cr_assert_eq(t.closed, t.opened, "free closes every idle connection");
}

Test(pool, full_pool_waits_wait_ms_on_the_monotonic_clock)
{
    struct tctx t = {0};
    struct reqsign_pool *p = mk(&t, 1, 1, 400);
    struct tconn *c = take(p, false, NULL);
    struct reqsign_pool_link *l;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    /* the deadline and the condition variable both on CLOCK_MONOTONIC: a
     * deadline taken on one clock and waited for on another would end the
     * wait at once (or, the other way round, decades late) */
    int64_t t0 = mono_ms();
    enum reqsign_status st = reqsign_pool_get(p, false, NULL, &l, NULL, &err);
    int64_t waited = mono_ms() - t0;
    cr_assert_eq(st, REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cr_assert_str_eq(err.message, "Test: all 1 connections busy for 400 ms");
    cr_assert_geq(waited, 400, "gave up after %lld ms", (long long)waited);
    cr_assert_lt(waited, 2400, "waited %lld ms for a 400 ms limit", (long long)waited);
    reqsign_pool_put(p, &c->link, REQSIGN_POOL_KEEP);
    reqsign_pool_free(p);
}

struct waiter {
    struct reqsign_pool *p;
    enum reqsign_status st;
    bool reused;
    int64_t done_at;
    struct reqsign_pool_link *got;
    char msg[256];
};

static void *wait_thread(void *arg)
{
    struct waiter *w = arg;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    w->st = reqsign_pool_get(w->p, false, NULL, &w->got, &w->reused, &err);
    w->done_at = mono_ms();
    snprintf(w->msg, sizeof(w->msg), "%s", err.message);
    return NULL;
}

/* One connection, in use; a thread waits for it (10 s at most); 300 ms
 * later it is given back with @how. Returns the waiter, which got a
 * connection well before its 10 s; the caller gives it back. */
static struct waiter woken_by(struct tctx *t, struct reqsign_pool *p, enum reqsign_pool_put how)
{
    struct tconn *c = take(p, false, NULL);
    struct waiter w = {.p = p};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, wait_thread, &w), 0);
    sleep_ms(300);
    int64_t put_at = mono_ms();
    reqsign_pool_put(p, &c->link, how);
    pthread_join(th, NULL);
    cr_assert_eq(w.st, REQSIGN_OK, "%s", w.msg);
    cr_assert_lt(w.done_at - put_at, 2000, "woken %lld ms after the put",
                 (long long)(w.done_at - put_at));
    cr_assert_eq(w.reused, how == REQSIGN_POOL_KEEP, "the connection given back, or a new one");
    cr_assert_eq(w.got == &c->link, how == REQSIGN_POOL_KEEP);
    cr_assert_eq(t->opened, how == REQSIGN_POOL_KEEP ? 1 : 2);
    return w;
}

Test(pool, waiter_woken_by_a_put)
{
    struct tctx t = {0};
    struct reqsign_pool *p = mk(&t, 1, 1, 10000);
    struct waiter w = woken_by(&t, p, REQSIGN_POOL_KEEP);
    reqsign_pool_put(p, w.got, REQSIGN_POOL_KEEP);
    reqsign_pool_free(p);
}

Test(pool, waiter_woken_by_a_drop_makes_a_new_connection)
{
    struct tctx t = {0};
    struct reqsign_pool *p = mk(&t, 1, 1, 10000);
    struct waiter w = woken_by(&t, p, REQSIGN_POOL_DROP);
    cr_assert_eq(t.closed, 1);
    reqsign_pool_put(p, w.got, REQSIGN_POOL_KEEP);
    reqsign_pool_free(p);
}

Test(pool, dead_idle_and_broken_connections_dropped)
{
    struct tctx t = {0};
    struct reqsign_pool *p = mk(&t, 2, 2, 0);
    struct tconn *a = take(p, false, NULL);
    reqsign_pool_put(p, &a->link, REQSIGN_POOL_KEEP);
    counts(p, 1, 1);
    /* dead while idle (the server hung up): closed when taken, a new one made in its slot */
    atomic_store(&a->dead, true);
    bool reused = true;
    struct tconn *b = take(p, false, &reused);
    cr_assert(!reused);
    cr_assert_eq(b->id, 2);
    cr_assert_eq(t.closed, 1);
    counts(p, 1, 0);
    /* broken in use: given back DROP, closed, its slot free */
    reqsign_pool_put(p, &b->link, REQSIGN_POOL_DROP);
    cr_assert_eq(t.closed, 2);
    counts(p, 0, 0);
    reqsign_pool_free(p);
    cr_assert_eq(t.closed, t.opened);
}

Test(pool, failed_open_gives_the_slot_back)
{
    struct tctx t = {0};
    struct reqsign_pool *p = mk(&t, 1, 1, 0);
    atomic_store(&t.fail_open, true);
    struct reqsign_pool_link *l;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_pool_get(p, false, NULL, &l, NULL, &err), REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cr_assert_str_eq(err.message, "cannot connect", "the open callback's error, not 'busy'");
    counts(p, 0, 0);
    atomic_store(&t.fail_open, false);
    struct tconn *c = take(p, false, NULL); /* the only slot is free again */
    reqsign_pool_put(p, &c->link, REQSIGN_POOL_KEEP);
    reqsign_pool_free(p);
}

Test(pool, fresh_skips_idle_and_makes_room)
{
    struct tctx t = {0};
    struct reqsign_pool *p = mk(&t, 1, 1, 0);
    struct tconn *a = take(p, false, NULL);
    reqsign_pool_put(p, &a->link, REQSIGN_POOL_KEEP);
    bool reused = true;
    struct tconn *b = take(p, true, &reused); /* full: the idle one is closed for it */
    cr_assert(!reused);
    cr_assert_eq(b->id, 2);
    cr_assert_eq(t.closed, 1);
    counts(p, 1, 0);
    reqsign_pool_put(p, &b->link, REQSIGN_POOL_KEEP);
    reqsign_pool_free(p);
}

Test(pool, generation_drops_connections_made_before_a_failure)
{
    struct tctx t = {0};
    struct reqsign_pool *p = mk(&t, 4, 4, 0);
    struct tconn *a = take(p, false, NULL);
    struct tconn *b = take(p, false, NULL);
    struct tconn *c = take(p, false, NULL);
    reqsign_pool_put(p, &a->link, REQSIGN_POOL_KEEP);
    counts(p, 3, 1);
    /* b fails: the first report retires the generation, closing idle a at once */
    cr_assert(reqsign_pool_put(p, &b->link, REQSIGN_POOL_FAILED));
    cr_assert_eq(t.closed, 2);
    counts(p, 1, 0);
    /* c, made before the failure, is closed when given back even though healthy */
    reqsign_pool_put(p, &c->link, REQSIGN_POOL_KEEP);
    cr_assert_eq(t.closed, 3);
    counts(p, 0, 0);
    /* a connection of the new generation stays idle */
    struct tconn *d = take(p, false, NULL);
    struct tconn *e = take(p, false, NULL);
    reqsign_pool_put(p, &d->link, REQSIGN_POOL_KEEP);
    counts(p, 2, 1);
    /* an explicit retire (a failed connect, say) does the same */
    reqsign_pool_retire(p);
    counts(p, 1, 0);
    cr_assert_eq(t.closed, 4);
    /* e's failure is an echo of one already handled: not a new retirement */
    cr_assert(!reqsign_pool_put(p, &e->link, REQSIGN_POOL_FAILED));
    counts(p, 0, 0);
    reqsign_pool_free(p);
    cr_assert_eq(t.closed, t.opened);
}

Test(pool, add_counts_a_connection_made_outside)
{
    struct tctx t = {0};
    struct reqsign_pool *p = mk(&t, 1, 1, 0);
    struct tconn *c = calloc(1, sizeof(*c));
    c->id = 100;
    reqsign_pool_add(p, &c->link);
    counts(p, 1, 1);
    bool reused = false;
    struct tconn *d = take(p, false, &reused);
    cr_assert(reused);
    cr_assert_eq(d->id, 100);
    cr_assert_eq(t.opened, 0);
    reqsign_pool_put(p, &d->link, REQSIGN_POOL_KEEP);
    reqsign_pool_free(p);
    cr_assert_eq(t.closed, 1);
}

struct slow_open {
    struct reqsign_pool *p;
    atomic_int calls;
    struct reqsign_pool_link *got;
};

static void *slow_open_thread(void *arg)
{
    struct slow_open *s = arg;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_pool_get(s->p, true, &s->calls, &s->got, NULL, &err), REQSIGN_OK);
    return NULL;
}

Test(pool, connections_are_made_outside_the_lock)
{
    struct tctx t = {0};
    struct reqsign_pool *p = mk(&t, 2, 2, 5000);
    struct tconn *a = take(p, false, NULL);
    reqsign_pool_put(p, &a->link, REQSIGN_POOL_KEEP);
    /* a thread makes a new connection that takes 1.5 s (fresh: the idle one stays) */
    atomic_store(&t.open_delay_ms, 1500);
    struct slow_open s = {.p = p};
    pthread_t th;
    cr_assert_eq(pthread_create(&th, NULL, slow_open_thread, &s), 0);
    sleep_ms(200);
    /* meanwhile the idle connection is there for the taking */
    int64_t t0 = mono_ms();
    bool reused = false;
    struct tconn *b = take(p, false, &reused);
    int64_t took = mono_ms() - t0;
    cr_assert(reused);
    cr_assert_eq(b->id, 1);
    cr_assert_lt(took, 1000, "took %lld ms: the open held the lock", (long long)took);
    pthread_join(th, NULL);
    cr_assert_eq(atomic_load(&s.calls), 1, "get's argument reached the open callback");
    reqsign_pool_put(p, &b->link, REQSIGN_POOL_KEEP);
    reqsign_pool_put(p, s.got, REQSIGN_POOL_KEEP);
    reqsign_pool_free(p);
}

#define N_THREADS 8
#define N_ROUNDS 3000
#define MAX_OPEN 3

struct worker {
    struct reqsign_pool *p;
    struct tctx *t;
    int fails;
    unsigned seed;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < N_ROUNDS; i++) {
        struct reqsign_pool_link *l;
        struct reqsign_error err;
        reqsign_error_clear(&err);
        if (reqsign_pool_get(w->p, (rand_r(&w->seed) % 50) == 0, NULL, &l, NULL, &err) !=
            REQSIGN_OK) {
            w->fails++;
            continue;
        }
        int now = ++w->t->in_use;
        int seen = atomic_load(&w->t->max_in_use);
        while (now > seen && !atomic_compare_exchange_weak(&w->t->max_in_use, &seen, now))
            ;
        if (rand_r(&w->seed) % 4 == 0)
            sched_yield();
        w->t->in_use--;
        unsigned r = rand_r(&w->seed) % 100;
        enum reqsign_pool_put how = r < 3   ? REQSIGN_POOL_FAILED
                                    : r < 8 ? REQSIGN_POOL_DROP
                                            : REQSIGN_POOL_KEEP;
        if (r == 99)
            atomic_store(&REQSIGN_POOL_OF(l, struct tconn, link)->dead, true);
        reqsign_pool_put(w->p, l, how);
    }
    return NULL;
}

Test(pool, concurrent_use_from_threads)
{
    struct tctx t = {0};
    struct reqsign_pool *p = mk(&t, MAX_OPEN, 2, 30000);
    struct worker w[N_THREADS];
    pthread_t th[N_THREADS];
    for (int i = 0; i < N_THREADS; i++) {
        w[i] = (struct worker){.p = p, .t = &t, .seed = (unsigned)i + 1};
        cr_assert_eq(pthread_create(&th[i], NULL, worker_main, &w[i]), 0);
    }
    for (int i = 0; i < N_THREADS; i++) {
        pthread_join(th[i], NULL);
        cr_assert_eq(w[i].fails, 0, "thread %d: %d gets failed", i, w[i].fails);
    }
    cr_assert_leq(atomic_load(&t.max_in_use), MAX_OPEN, "%d in use at once",
                  atomic_load(&t.max_in_use));
    cr_assert_geq(atomic_load(&t.max_in_use), 2, "the threads never overlapped");
    size_t open, idle;
    reqsign_pool_counts(p, &open, &idle);
    cr_assert_eq(open, idle, "nothing in use after the threads ended");
    cr_assert_leq(idle, 2);
    cr_assert_eq((size_t)(t.opened - t.closed), open, "opened %d closed %d open %zu",
                 atomic_load(&t.opened), atomic_load(&t.closed), open);
    reqsign_pool_free(p);
    cr_assert_eq(t.closed, t.opened, "every connection closed once");
}

/* ---- a store on the pool: SQLite's 64 ---- */

struct sq_writer {
    struct reqsign_keystore *ks;
    int i;
    enum reqsign_status st;
    int64_t took_ms;
    char msg[256];
};

static void *sq_write(void *arg)
{
    struct sq_writer *w = arg;
    struct reqsign_key_record r;
    memset(&r, 0, sizeof(r));
    snprintf(r.keyid, sizeof(r.keyid), "key-%05d", w->i);
    for (int j = 0; j < REQSIGN_ED25519_PUBLIC_LEN; j++)
        r.public_key[j] = (uint8_t)(w->i * 131 + j * 7);
    r.public_key[30] = (uint8_t)(w->i & 0xff);
    r.public_key[31] = (uint8_t)(w->i >> 8);
    r.created_at = 1700000000;
    struct reqsign_error err;
    reqsign_error_clear(&err);
    int64_t t0 = mono_ms();
    w->st = reqsign_keystore_insert(w->ks, &r, &err);
    w->took_ms = mono_ms() - t0;
    snprintf(w->msg, sizeof(w->msg), "%s", err.message);
    return NULL;
}

/* The SQLite store used to open a connection for every call running at once,
 * without limit. Now 64 writers stuck behind another process's write lock
 * (each in its REQSIGN_SQLITE_BUSY_MS busy wait) hold all 64 connections, and
 * one more call waits REQSIGN_SQLITE_POOL_WAIT_MS and is told the limit. */
Test(pool, sqlite_store_stops_at_its_limit, .timeout = 60)
{
    char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof(path), "%s/keys.db", dir);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    struct reqsign_keystore *ks = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(ks, "%s", err.message);
    sqlite3 *db = NULL;
    cr_assert_eq(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    enum { N = REQSIGN_SQLITE_POOL_MAX + 1 };
    static struct sq_writer w[N];
    pthread_t th[N];
    for (int i = 0; i < N; i++) {
        w[i] = (struct sq_writer){.ks = ks, .i = i + 1};
        cr_assert_eq(pthread_create(&th[i], NULL, sq_write, &w[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(db);

    int limited = 0;
    for (int i = 0; i < N; i++) {
        cr_assert_eq(w[i].st, REQSIGN_E_KEYSTORE_UNAVAILABLE, "writer %d: %s", i, w[i].msg);
        if (strstr(w[i].msg, "all 64 connections busy") == NULL)
            continue;
        limited++;
        cr_assert_str_eq(w[i].msg, "SQLite: all 64 connections busy for 2000 ms");
        cr_assert_geq(w[i].took_ms, REQSIGN_SQLITE_POOL_WAIT_MS);
        cr_assert_lt(w[i].took_ms, REQSIGN_SQLITE_BUSY_MS, "it waited for the pool, not the lock");
    }
    cr_assert_eq(limited, 1, "%d of %d calls met the pool's limit", limited, N);
    /* and with the lock gone, the store works on its pooled connections */
    struct sq_writer after = {.ks = ks, .i = 1000};
    sq_write(&after);
    cr_assert_eq(after.st, REQSIGN_OK, "%s", after.msg);
    reqsign_keystore_free(ks);
    free(dir);
}
