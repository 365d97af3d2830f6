/* Key cache tests: an injected clock, and a counting wrapper store that
 * forwards to SQLite, counts the calls and can be told to fail with
 * REQSIGN_E_KEYSTORE_UNAVAILABLE.
 *
 * Revocation bound, as implemented: an entry fetched when the clock read F
 * serves until the clock reads F + positive_ttl, exclusive. A revocation
 * committed at R (>= F) is therefore answered REVOKED by every lookup at
 * now >= F + ttl, i.e. at most exactly positive_ttl after R, and not before
 * that unless the entry is invalidated (reqsign_keycache_invalidate), which
 * takes effect at the next lookup.
 */
#include <criterion/criterion.h>

#include <reqsign/keycache.h>
#include <reqsign/keystore_sqlite.h>
#include <reqsign/signer.h>
#include <reqsign/verifier.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

/* ---- the counting store ---- */

struct counting {
    struct reqsign_keystore *inner;
    atomic_int gets, inserts, lists, revokes;
    atomic_int fail; /* nonzero: every call fails with E_KEYSTORE_UNAVAILABLE */
};

static enum reqsign_status down(struct reqsign_error *err)
{
    return reqsign_error_set(err, REQSIGN_E_KEYSTORE_UNAVAILABLE, "test store", REQSIGN_NO_OFFSET,
                             "the test store is down");
}

static enum reqsign_status cnt_get(void *impl, const char *keyid, size_t keyid_len,
                                   struct reqsign_key_record *out, struct reqsign_error *err)
{
    struct counting *c = impl;
    atomic_fetch_add(&c->gets, 1);
    if (atomic_load(&c->fail))
        return down(err);
    return reqsign_keystore_get(c->inner, keyid, keyid_len, out, err);
}

static enum reqsign_status cnt_insert(void *impl, const struct reqsign_key_record *rec,
                                      struct reqsign_error *err)
{
    struct counting *c = impl;
    atomic_fetch_add(&c->inserts, 1);
    if (atomic_load(&c->fail))
        return down(err);
    return reqsign_keystore_insert(c->inner, rec, err);
}

static enum reqsign_status cnt_list(void *impl, const char *after, size_t limit,
                                    struct reqsign_key_record *out, size_t *n,
                                    struct reqsign_error *err)
{
    struct counting *c = impl;
    atomic_fetch_add(&c->lists, 1);
    if (atomic_load(&c->fail))
        return down(err);
    return reqsign_keystore_list(c->inner, after, limit, out, n, err);
}

static enum reqsign_status cnt_revoke(void *impl, const char *keyid, size_t keyid_len, int64_t now,
                                      struct reqsign_error *err)
{
    struct counting *c = impl;
    atomic_fetch_add(&c->revokes, 1);
    if (atomic_load(&c->fail))
        return down(err);
    return reqsign_keystore_revoke(c->inner, keyid, keyid_len, now, err);
}

static void cnt_free(void *impl)
{
    struct counting *c = impl;
    reqsign_keystore_free(c->inner);
    free(c);
}

static const struct reqsign_keystore_ops counting_ops = {
    .get = cnt_get,
    .insert = cnt_insert,
    .list = cnt_list,
    .revoke = cnt_revoke,
    .free = cnt_free,
};

/* ---- the clock ---- */

static _Atomic int64_t clock_now;

static int64_t test_clock(void *ctx)
{
    (void)ctx;
    return atomic_load(&clock_now);
}

/* ---- fixture ---- */

static struct counting *cnt;           /* owned by store */
static struct reqsign_keystore *store; /* the counting wrapper */
static struct reqsign_keycache *cache;

static void open_store(void)
{
    char *dir = tu_tmpdir();
    char path[512];
    snprintf(path, sizeof(path), "%s/keys.db", dir);
    free(dir);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cnt = calloc(1, sizeof(*cnt));
    cr_assert_not_null(cnt);
    cnt->inner = reqsign_keystore_sqlite_open(path, REQSIGN_KEYSTORE_CREATE, &err);
    cr_assert_not_null(cnt->inner, "%s", err.message);
    store = reqsign_keystore_new(&counting_ops, cnt, NULL);
    cr_assert_not_null(store);
    atomic_store(&clock_now, 1000);
}

static void new_cache(int64_t ttl, int64_t neg_ttl, size_t max)
{
    struct reqsign_keycache_opts o = {
        .store = store,
        .positive_ttl = ttl,
        .negative_ttl = neg_ttl,
        .max_entries = max,
        .clock = test_clock,
    };
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cache = reqsign_keycache_new(&o, &err);
    cr_assert_not_null(cache, "%s", err.message);
}

static void setup(void)
{
    open_store();
    new_cache(5, 5, 0);
}

static void teardown(void)
{
    reqsign_keycache_free(cache);
    reqsign_keystore_free(store);
    cache = NULL;
    store = NULL;
}

static void make_record(int i, struct reqsign_key_record *r)
{
    memset(r, 0, sizeof(*r));
    snprintf(r->keyid, sizeof(r->keyid), "k%03d", i);
    for (int j = 0; j < REQSIGN_ED25519_PUBLIC_LEN; j++)
        r->public_key[j] = (uint8_t)(i * 31 + j);
    r->public_key[31] = (uint8_t)i;
    snprintf(r->label, sizeof(r->label), "key %d", i);
    snprintf(r->scopes, sizeof(r->scopes), "read scope-%d", i);
    r->created_at = 900;
}

static void add_key(int i, int64_t expires_at)
{
    struct reqsign_key_record r;
    struct reqsign_error err;
    make_record(i, &r);
    r.expires_at = expires_at;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_insert(store, &r, &err), REQSIGN_OK, "%s", err.message);
}

static enum reqsign_status look(int i, struct reqsign_key_info *info)
{
    char id[16];
    int n = snprintf(id, sizeof(id), "k%03d", i);
    struct reqsign_error err;
    reqsign_error_clear(&err);
    enum reqsign_status st = reqsign_keycache_lookup(cache, id, (size_t)n, info, &err);
    if (st != REQSIGN_OK)
        cr_assert_eq(err.code, st, "err.code %d vs %d", err.code, st);
    return st;
}

static void expect_key(int i, enum reqsign_key_state state)
{
    struct reqsign_key_info info;
    struct reqsign_key_record r;
    make_record(i, &r);
    enum reqsign_status st = look(i, &info);
    cr_assert_eq(st, REQSIGN_OK, "k%03d at %lld: %s", i, (long long)atomic_load(&clock_now),
                 reqsign_errname(st));
    cr_assert(memcmp(info.public_key, r.public_key, sizeof(r.public_key)) == 0);
    cr_assert_str_eq(info.scopes, r.scopes);
    cr_assert_eq(info.state, state, "k%03d at %lld: state %d, want %d", i,
                 (long long)atomic_load(&clock_now), info.state, state);
}

static void revoke_key(int i, int64_t when)
{
    char id[16];
    int n = snprintf(id, sizeof(id), "k%03d", i);
    cr_assert_eq(reqsign_keystore_revoke(store, id, (size_t)n, when, NULL), REQSIGN_OK);
}

/* The cache is a reqsign_key_lookup_fn. */
static const reqsign_key_lookup_fn lookup_fn_type_check = reqsign_keycache_lookup;

TestSuite(keycache, .init = setup, .fini = teardown);

Test(keycache, hit_does_not_touch_store)
{
    cr_assert_not_null(lookup_fn_type_check);
    add_key(1, 0);
    expect_key(1, REQSIGN_KEY_ACTIVE);
    cr_assert_eq(atomic_load(&cnt->gets), 1);
    for (int i = 0; i < 10; i++)
        expect_key(1, REQSIGN_KEY_ACTIVE);
    cr_assert_eq(atomic_load(&cnt->gets), 1);
    struct reqsign_keycache_stats s;
    reqsign_keycache_stats(cache, &s);
    cr_assert_eq(s.hits, 10);
    cr_assert_eq(s.misses, 1);
    cr_assert_eq(s.store_errors, 0);
    cr_assert_eq(s.entries, 1);
}

/* The key's account (issue 13) comes out of the lookup, on a miss and on a
 * hit: the verifier reports it ($reqsign_account in nginx). */
Test(keycache, account_reported)
{
    struct reqsign_account a;
    struct reqsign_error err;
    memset(&a, 0, sizeof(a));
    snprintf(a.id, sizeof(a.id), "acct_customerCustomer0001");
    snprintf(a.name, sizeof(a.name), "customer");
    a.key_limit = 10;
    a.created_at = 900;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keystore_account_insert(cnt->inner, &a, &err), REQSIGN_OK, "%s",
                 err.message);
    struct reqsign_key_record r;
    make_record(2, &r);
    snprintf(r.account, sizeof(r.account), "%s", a.id);
    cr_assert_eq(reqsign_keystore_insert(store, &r, &err), REQSIGN_OK, "%s", err.message);
    add_key(1, 0); /* no account given: the operator's */

    struct reqsign_key_info info;
    for (int i = 0; i < 2; i++) { /* a miss, then a hit */
        memset(&info, 'x', sizeof(info));
        cr_assert_eq(look(2, &info), REQSIGN_OK);
        cr_assert_str_eq(info.account, a.id);
        cr_assert_str_eq(info.scopes, r.scopes);
        memset(&info, 'x', sizeof(info));
        cr_assert_eq(look(1, &info), REQSIGN_OK);
        cr_assert_str_eq(info.account, REQSIGN_ACCOUNT_OPERATOR);
    }
    cr_assert_eq(atomic_load(&cnt->gets), 2);
}

Test(keycache, positive_ttl_expiry_refetches)
{
    add_key(1, 0);
    expect_key(1, REQSIGN_KEY_ACTIVE); /* fetched at 1000 */
    atomic_store(&clock_now, 1004);
    expect_key(1, REQSIGN_KEY_ACTIVE);
    cr_assert_eq(atomic_load(&cnt->gets), 1);
    atomic_store(&clock_now, 1005);
    expect_key(1, REQSIGN_KEY_ACTIVE);
    cr_assert_eq(atomic_load(&cnt->gets), 2);
    atomic_store(&clock_now, 1009);
    expect_key(1, REQSIGN_KEY_ACTIVE);
    cr_assert_eq(atomic_load(&cnt->gets), 2);
    /* A clock stepped far back does not keep an entry alive. */
    atomic_store(&clock_now, 900);
    expect_key(1, REQSIGN_KEY_ACTIVE);
    cr_assert_eq(atomic_load(&cnt->gets), 3);
}

Test(keycache, revoke_visible_exactly_after_ttl)
{
    add_key(1, 0);
    add_key(2, 0);
    expect_key(1, REQSIGN_KEY_ACTIVE); /* cached at 1000 */
    expect_key(2, REQSIGN_KEY_ACTIVE);
    revoke_key(1, 1000);
    /* The bound is exactly the TTL: still served as active until 1004... */
    for (int64_t t = 1000; t < 1005; t++) {
        atomic_store(&clock_now, t);
        expect_key(1, REQSIGN_KEY_ACTIVE);
    }
    /* ...and revoked from 1005 = 1000 + positive_ttl on. */
    atomic_store(&clock_now, 1005);
    expect_key(1, REQSIGN_KEY_REVOKED);
    atomic_store(&clock_now, 1006);
    expect_key(1, REQSIGN_KEY_REVOKED);

    /* invalidate makes it visible at once. */
    expect_key(2, REQSIGN_KEY_ACTIVE); /* refetched at 1006 */
    revoke_key(2, 1006);
    expect_key(2, REQSIGN_KEY_ACTIVE);
    reqsign_keycache_invalidate(cache, "k002", 4);
    expect_key(2, REQSIGN_KEY_REVOKED);

    /* invalidate(NULL) drops everything. */
    struct reqsign_keycache_stats s;
    reqsign_keycache_stats(cache, &s);
    cr_assert_gt(s.entries, 0);
    reqsign_keycache_invalidate(cache, NULL, 0);
    reqsign_keycache_stats(cache, &s);
    cr_assert_eq(s.entries, 0);
    int before = atomic_load(&cnt->gets);
    expect_key(1, REQSIGN_KEY_REVOKED);
    cr_assert_eq(atomic_load(&cnt->gets), before + 1);
    /* Invalidating an absent or bad keyid is harmless. */
    reqsign_keycache_invalidate(cache, "nope", 4);
    reqsign_keycache_invalidate(cache, "", 0);
    reqsign_keycache_invalidate(NULL, NULL, 0);
}

Test(keycache, negative_entries_cached_for_negative_ttl)
{
    struct reqsign_key_info info;
    cr_assert_eq(look(7, &info), REQSIGN_E_KEY_UNKNOWN); /* at 1000 */
    cr_assert_eq(atomic_load(&cnt->gets), 1);
    atomic_store(&clock_now, 1001);
    cr_assert_eq(look(7, &info), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(atomic_load(&cnt->gets), 1);
    add_key(7, 0); /* inserted at 1001 */
    atomic_store(&clock_now, 1004);
    cr_assert_eq(look(7, &info), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(atomic_load(&cnt->gets), 1);
    atomic_store(&clock_now, 1005);
    expect_key(7, REQSIGN_KEY_ACTIVE);
    cr_assert_eq(atomic_load(&cnt->gets), 2);

    /* Keyids that cannot exist never reach the store. */
    char longid[REQSIGN_KEYID_IN_MAX + 1];
    memset(longid, 'x', sizeof(longid));
    cr_assert_eq(reqsign_keycache_lookup(cache, longid, sizeof(longid), &info, NULL),
                 REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(reqsign_keycache_lookup(cache, "", 0, &info, NULL), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(atomic_load(&cnt->gets), 2);
}

Test(keycache, no_negative_caching_when_disabled)
{
    reqsign_keycache_free(cache);
    new_cache(5, -1, 0);
    struct reqsign_key_info info;
    for (int i = 0; i < 3; i++)
        cr_assert_eq(look(9, &info), REQSIGN_E_KEY_UNKNOWN);
    cr_assert_eq(atomic_load(&cnt->gets), 3);
    add_key(9, 0);
    expect_key(9, REQSIGN_KEY_ACTIVE);
}

Test(keycache, expired_exactly_at_expires_at)
{
    reqsign_keycache_free(cache);
    new_cache(60, 5, 0);
    add_key(3, 2000);
    atomic_store(&clock_now, 1998);
    expect_key(3, REQSIGN_KEY_ACTIVE);
    atomic_store(&clock_now, 1999);
    expect_key(3, REQSIGN_KEY_ACTIVE);
    atomic_store(&clock_now, 2000);
    expect_key(3, REQSIGN_KEY_EXPIRED);
    atomic_store(&clock_now, 2001);
    expect_key(3, REQSIGN_KEY_EXPIRED);
    cr_assert_eq(atomic_load(&cnt->gets), 1, "expiry is checked on cached entries");
    /* Revoked wins over expired. */
    revoke_key(3, 2001);
    reqsign_keycache_invalidate(cache, "k003", 4);
    expect_key(3, REQSIGN_KEY_REVOKED);
}

Test(keycache, store_down)
{
    struct reqsign_key_info info;
    struct reqsign_error err;
    add_key(1, 0);
    add_key(2, 0);
    expect_key(1, REQSIGN_KEY_ACTIVE);                   /* cached at 1000 */
    cr_assert_eq(look(5, &info), REQSIGN_E_KEY_UNKNOWN); /* negative, at 1000 */
    atomic_store(&cnt->fail, 1);

    atomic_store(&clock_now, 1004);
    expect_key(1, REQSIGN_KEY_ACTIVE);                   /* fresh: served */
    cr_assert_eq(look(5, &info), REQSIGN_E_KEY_UNKNOWN); /* fresh negative: served */
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_keycache_lookup(cache, "k002", 4, &info, &err),
                 REQSIGN_E_KEYSTORE_UNAVAILABLE); /* never cached */
    cr_assert_eq(err.code, REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cr_assert_eq(reqsign_http_status(err.code), 503);
    cr_assert_eq(info.state, 0);
    cr_assert_eq(info.public_key[31], 0, "output cleared");

    /* Stale entries are not served. */
    atomic_store(&clock_now, 1005);
    cr_assert_eq(look(1, &info), REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cr_assert_eq(look(5, &info), REQSIGN_E_KEYSTORE_UNAVAILABLE);
    struct reqsign_keycache_stats s;
    reqsign_keycache_stats(cache, &s);
    cr_assert_eq(s.store_errors, 3);

    /* The store comes back. */
    atomic_store(&cnt->fail, 0);
    expect_key(1, REQSIGN_KEY_ACTIVE);
    expect_key(2, REQSIGN_KEY_ACTIVE);
    cr_assert_eq(look(5, &info), REQSIGN_E_KEY_UNKNOWN);
}

Test(keycache, store_error_is_unavailable)
{
    /* A store that reports a plain storage failure: still 503 to the verifier. */
    add_key(1, 0);
    struct reqsign_keystore *inner = cnt->inner;
    cnt->inner = NULL; /* the wrapper then answers E_INVALID_ARG: any failure */
    struct reqsign_key_info info;
    cr_assert_eq(look(1, &info), REQSIGN_E_KEYSTORE_UNAVAILABLE);
    cnt->inner = inner;
    expect_key(1, REQSIGN_KEY_ACTIVE);
}

Test(keycache, max_entries_respected)
{
    reqsign_keycache_free(cache);
    new_cache(60, 60, 10);
    for (int i = 0; i < 50; i++)
        add_key(i, 0);
    struct reqsign_keycache_stats s;
    struct reqsign_key_info info;
    for (int i = 0; i < 50; i++) {
        expect_key(i, REQSIGN_KEY_ACTIVE);
        reqsign_keycache_stats(cache, &s);
        cr_assert_leq(s.entries, 10, "%zu entries", s.entries);
        cr_assert_eq(look(100 + i, &info), REQSIGN_E_KEY_UNKNOWN); /* negative entries too */
        reqsign_keycache_stats(cache, &s);
        cr_assert_leq(s.entries, 10, "%zu entries", s.entries);
    }
    cr_assert_eq(s.entries, 10);
    /* The newest entries are the ones kept. */
    int before = atomic_load(&cnt->gets);
    cr_assert_eq(look(149, &info), REQSIGN_E_KEY_UNKNOWN);
    expect_key(49, REQSIGN_KEY_ACTIVE);
    cr_assert_eq(atomic_load(&cnt->gets), before);
    /* A lookup still answers right after eviction. */
    expect_key(0, REQSIGN_KEY_ACTIVE);
    cr_assert_eq(atomic_load(&cnt->gets), before + 1);
}

Test(keycache, new_checks_options)
{
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_null(reqsign_keycache_new(NULL, &err));
    cr_assert_eq(err.code, REQSIGN_E_INVALID_ARG);
    struct reqsign_keycache_opts o = {.store = NULL};
    cr_assert_null(reqsign_keycache_new(&o, NULL));
    o.store = store;
    o.positive_ttl = -1;
    cr_assert_null(reqsign_keycache_new(&o, NULL));
    /* Defaults, and the real clock. */
    o.positive_ttl = 0;
    struct reqsign_keycache *c = reqsign_keycache_new(&o, NULL);
    cr_assert_not_null(c);
    add_key(1, 0);
    struct reqsign_key_info info;
    cr_assert_eq(reqsign_keycache_lookup(c, "k001", 4, &info, NULL), REQSIGN_OK);
    cr_assert_eq(reqsign_keycache_lookup(c, "k001", 4, &info, NULL), REQSIGN_OK);
    cr_assert_eq(atomic_load(&cnt->gets), 1);
    reqsign_keycache_free(c);
    reqsign_keycache_free(NULL);
    cr_assert_eq(reqsign_keycache_lookup(NULL, "k001", 4, &info, NULL), REQSIGN_E_INVALID_ARG);
}

/* ---- concurrency ---- */

#define CC_KEYS 100
#define CC_THREADS 8
#define CC_LOOKUPS 10000

static atomic_int cc_running;
static atomic_int cc_wrong;

static void *cc_worker(void *p)
{
    unsigned seed = (unsigned)(uintptr_t)p * 2654435761u + 1;
    for (int n = 0; n < CC_LOOKUPS; n++) {
        seed = seed * 1103515245u + 12345u;
        int i = (int)((seed >> 8) % (CC_KEYS + 10)); /* 100..109 do not exist */
        char id[16];
        int len = snprintf(id, sizeof(id), "k%03d", i);
        struct reqsign_key_info info;
        enum reqsign_status st = reqsign_keycache_lookup(cache, id, (size_t)len, &info, NULL);
        bool ok;
        if (i >= CC_KEYS) {
            ok = st == REQSIGN_E_KEY_UNKNOWN;
        } else {
            struct reqsign_key_record r;
            make_record(i, &r);
            ok = st == REQSIGN_OK &&
                 memcmp(info.public_key, r.public_key, sizeof(r.public_key)) == 0 &&
                 strcmp(info.scopes, r.scopes) == 0 &&
                 info.state == (i % 10 == 0 ? REQSIGN_KEY_REVOKED : REQSIGN_KEY_ACTIVE);
        }
        if (!ok)
            atomic_fetch_add(&cc_wrong, 1);
        if (n % 500 == 0)
            atomic_fetch_add(&clock_now, 1); /* entries go stale now and then */
    }
    return NULL;
}

static void *cc_invalidator(void *p)
{
    (void)p;
    unsigned n = 0;
    while (atomic_load(&cc_running)) {
        char id[16];
        int len = snprintf(id, sizeof(id), "k%03u", n % (CC_KEYS + 10));
        if (n % 97 == 0)
            reqsign_keycache_invalidate(cache, NULL, 0);
        else
            reqsign_keycache_invalidate(cache, id, (size_t)len);
        n++;
    }
    return NULL;
}

Test(keycache, concurrent_lookups_and_invalidations)
{
    reqsign_keycache_free(cache);
    new_cache(5, 5, 64); /* small enough to evict under load */
    for (int i = 0; i < CC_KEYS; i++) {
        add_key(i, 0);
        if (i % 10 == 0)
            revoke_key(i, 999);
    }
    atomic_store(&cc_wrong, 0);
    atomic_store(&cc_running, 1);
    pthread_t inv, t[CC_THREADS];
    cr_assert_eq(pthread_create(&inv, NULL, cc_invalidator, NULL), 0);
    for (uintptr_t i = 0; i < CC_THREADS; i++)
        cr_assert_eq(pthread_create(&t[i], NULL, cc_worker, (void *)(i + 1)), 0);
    for (int i = 0; i < CC_THREADS; i++)
        pthread_join(t[i], NULL);
    atomic_store(&cc_running, 0);
    pthread_join(inv, NULL);
    cr_assert_eq(atomic_load(&cc_wrong), 0, "%d wrong answers", atomic_load(&cc_wrong));
    struct reqsign_keycache_stats s;
    reqsign_keycache_stats(cache, &s);
    cr_assert_leq(s.entries, 64);
    cr_assert_eq(s.hits + s.misses, (uint64_t)CC_THREADS * CC_LOOKUPS);
    cr_assert_eq(s.store_errors, 0);
    cr_assert_gt(s.hits, 0);
}

/* ---- the verifier's phase two asks the cache again (issue 12, item 3) ----
 *
 * A request whose headers passed while its key was active, and whose key is
 * revoked in the store while the body is still arriving, must be refused by
 * reqsign_verification_finish() once the cache can see the revocation: after
 * positive_ttl, or at once after an invalidation. */

struct held {
    struct reqsign_key *key;
    struct reqsign_signer *signer;
    struct reqsign_nonce_store *nonces;
    struct reqsign_verifier *v;
    struct reqsign_header h[5];
    struct reqsign_request req;
    struct reqsign_signed sig;
    char len[16];
};

static const char held_body[] = "{\"amount\":42}";

static void held_setup(struct held *t, int i)
{
    memset(t, 0, sizeof(*t));
    cr_assert_not_null(t->key = reqsign_key_generate(NULL));
    struct reqsign_key_record r;
    make_record(i, &r);
    reqsign_key_public_raw(t->key, r.public_key);
    cr_assert_eq(reqsign_keystore_insert(store, &r, NULL), REQSIGN_OK);
    struct reqsign_signer_opts so = {.key = t->key, .keyid = r.keyid, .clock = test_clock};
    t->signer = reqsign_signer_new(&so, NULL);
    cr_assert_not_null(t->signer);
    t->nonces = reqsign_nonce_store_memory_new(NULL, NULL);
    cr_assert_not_null(t->nonces);
    struct reqsign_verifier_opts vo = {.lookup = reqsign_keycache_lookup,
                                       .lookup_ctx = cache,
                                       .nonces = t->nonces,
                                       .clock = test_clock,
                                       .public_authority = "api.example.com"};
    t->v = reqsign_verifier_new(&vo, NULL);
    cr_assert_not_null(t->v);
}

static void held_sign(struct held *t)
{
    struct reqsign_sign_input in = {.method = "POST",
                                    .url = "https://api.example.com/pay",
                                    .body = held_body,
                                    .body_len = sizeof(held_body) - 1};
    struct reqsign_error err;
    reqsign_error_clear(&err);
    cr_assert_eq(reqsign_signer_sign(t->signer, &in, &t->sig, &err), REQSIGN_OK, "%s", err.message);
    snprintf(t->len, sizeof(t->len), "%zu", sizeof(held_body) - 1);
    size_t n = 0;
    t->h[n++] = (struct reqsign_header){{"Host", 4}, {"api.example.com", 15}};
    t->h[n++] = (struct reqsign_header){{"Content-Length", 14}, {t->len, strlen(t->len)}};
    for (size_t k = 0; k < t->sig.n_headers; k++)
        t->h[n++] = t->sig.headers[k];
    t->req = (struct reqsign_request){{"POST", 4}, {"https", 5}, {"api.example.com", 15},
                                      {"/pay", 4}, t->h,         n};
}

static void held_free(struct held *t)
{
    reqsign_verifier_free(t->v);
    reqsign_nonce_store_free(t->nonces);
    reqsign_signer_free(t->signer);
    reqsign_key_free(t->key);
}

/* Phase one now; then @between() (revoke, wait, ...); then the body and
 * finish. Returns finish's status. */
static enum reqsign_status held_request(struct held *t, void (*between)(void),
                                        struct reqsign_error *err)
{
    struct reqsign_verification vs;
    reqsign_verification_init(&vs);
    reqsign_error_clear(err);
    held_sign(t);
    cr_assert_eq(reqsign_verifier_verify_headers(t->v, &t->req, &vs, err), REQSIGN_OK, "%s",
                 err->message);
    between();
    cr_assert_eq(reqsign_verification_body(&vs, held_body, 5, err), REQSIGN_OK, "%s", err->message);
    cr_assert_eq(reqsign_verification_body(&vs, held_body + 5, sizeof(held_body) - 1 - 5, err),
                 REQSIGN_OK, "%s", err->message);
    enum reqsign_status st = reqsign_verification_finish(&vs, err);
    reqsign_verification_cleanup(&vs);
    return st;
}

static void wait_ttl(void)
{
    atomic_fetch_add(&clock_now, 5); /* positive_ttl */
}

static void revoke_then_wait_ttl(void)
{
    revoke_key(900, atomic_load(&clock_now));
    wait_ttl();
}

static void revoke_then_wait_less(void)
{
    revoke_key(900, atomic_load(&clock_now));
    atomic_fetch_add(&clock_now, 4);
}

static void revoke_then_invalidate(void)
{
    revoke_key(900, atomic_load(&clock_now));
    reqsign_keycache_invalidate(cache, "k900", 4);
}

static void store_down_after_ttl(void)
{
    atomic_store(&cnt->fail, 1);
    wait_ttl();
}

Test(keycache, finish_sees_revocation_during_body_after_ttl)
{
    struct held t;
    struct reqsign_error err;
    held_setup(&t, 900);
    /* control: nothing happens during the body: accepted, even after the TTL */
    cr_assert_eq(held_request(&t, wait_ttl, &err), REQSIGN_OK, "%s", err.message);
    /* revoked while the body arrives, TTL passed before the end: refused */
    cr_assert_eq(held_request(&t, revoke_then_wait_ttl, &err), REQSIGN_E_KEY_REVOKED, "%s: %s",
                 reqsign_errname(err.code), err.message);
    cr_assert_eq(err.code, REQSIGN_E_KEY_REVOKED);
    cr_assert_str_eq(err.source, "key");
    cr_assert_not_null(strstr(err.message, "k900"), "%s", err.message);
    held_free(&t);
}

Test(keycache, finish_within_ttl_still_served_from_cache)
{
    /* the bound is the cache's: a revocation 4 s before the end of a body,
     * with a 5 s TTL, is not yet visible (as for any new request) */
    struct held t;
    struct reqsign_error err;
    held_setup(&t, 900);
    cr_assert_eq(held_request(&t, revoke_then_wait_less, &err), REQSIGN_OK, "%s", err.message);
    held_free(&t);
}

Test(keycache, finish_sees_revocation_during_body_after_invalidate)
{
    struct held t;
    struct reqsign_error err;
    held_setup(&t, 900);
    cr_assert_eq(held_request(&t, revoke_then_invalidate, &err), REQSIGN_E_KEY_REVOKED, "%s: %s",
                 reqsign_errname(err.code), err.message);
    held_free(&t);
}

Test(keycache, finish_fails_closed_when_store_down_after_ttl)
{
    struct held t;
    struct reqsign_error err;
    held_setup(&t, 900);
    cr_assert_eq(held_request(&t, store_down_after_ttl, &err), REQSIGN_E_KEYSTORE_UNAVAILABLE,
                 "%s: %s", reqsign_errname(err.code), err.message);
    held_free(&t);
}
