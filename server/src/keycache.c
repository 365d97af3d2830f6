/* reqsign: the key cache in front of a key store.
 *
 * Layout. An entry is keyed by the keyid bytes, hashed with SipHash-2-4-64
 * under a random per-cache key (keyids come from requests, so an attacker
 * cannot aim many keyids at one chain). The top bits of the hash pick one of
 * KC_NSHARDS shards; each shard has its own rwlock, a chained hash table
 * (power-of-two buckets, doubled when it holds more entries than buckets) and
 * a list of its entries from oldest to newest fetch. An entry holds a copy of
 * what the verifier needs from the record (public key, scopes, expires_at,
 * revoked_at), the time it was fetched, and whether it is negative (the store
 * said the keyid is unknown).
 *
 * Freshness. An entry fetched at F is fresh while |now - F| < ttl (positive_ttl,
 * or negative_ttl for a negative entry), so a clock stepped back cannot keep
 * an entry alive either. F is the clock reading taken *before* the store was
 * asked, so a change committed to the store at time R is seen by every lookup
 * at now >= R + positive_ttl: the revocation bound is exactly positive_ttl.
 * Expiry is checked against the clock at every lookup, cached or not.
 *
 * Lookup. A fresh entry answers under the shard's read lock, without touching
 * the store. Otherwise the store is asked with no lock held; concurrent
 * lookups of one missing or stale keyid may all ask the store (no
 * single-flight: the answers are identical and the store copes), and the
 * entry with the latest fetch time wins. A store failure is never answered
 * from a stale entry: the lookup looks once more for an entry another thread
 * refreshed meanwhile, and otherwise fails with REQSIGN_E_KEYSTORE_UNAVAILABLE.
 *
 * Invalidation bumps the shard's generation; a lookup that read the store
 * before an invalidation of its shard does not cache what it read (it still
 * answers with it), so an invalidation right after a store write is never
 * undone by an in-flight lookup holding older data.
 *
 * Size. `reserved` counts entries present plus slots being filled and never
 * exceeds max_entries: a lookup reserves a slot before inserting, evicting
 * the entry inserted (or refreshed) longest ago when the cache is full, and
 * simply does not cache if it cannot get one.
 *
 * Locks: one shard lock at a time, never nested; no lock is held while the
 * store is asked or memory is freed.
 */
#include <reqsign/keycache.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "siphash.h"

#define KC_SHARD_BITS 6
#define KC_NSHARDS (1u << KC_SHARD_BITS)
#define KC_MIN_BUCKETS 16u
#define KC_RESERVE_TRIES 8

static const char kc_src[] = "key cache";

struct kc_entry {
    struct kc_entry *hnext;         /* bucket chain */
    struct kc_entry *older, *newer; /* the shard's age list */
    uint64_t hash;
    uint64_t seq; /* insertion order, cache-wide */
    int64_t fetched_at;
    int64_t expires_at, revoked_at;
    bool disabled, account_disabled;
    /* last use: set by record_use (under the read lock), read and written by
     * the flusher; carried over when the entry is refreshed */
    _Atomic int64_t used_at, flushed_at, flush_time;
    uint8_t public_key[REQSIGN_ED25519_PUBLIC_LEN];
    bool negative;
    uint16_t keyid_len;
    uint16_t scopes_len;
    uint8_t account_len;
    char data[]; /* keyid (keyid_len bytes), then scopes and a NUL, then account and a NUL */
};

struct kc_shard {
    _Alignas(64) pthread_rwlock_t lock;
    struct kc_entry **buckets; /* nbuckets chains, nbuckets a power of two */
    size_t nbuckets;
    size_t count;
    struct kc_entry *oldest, *newest;
    uint64_t gen; /* bumped by every invalidation touching the shard */
};

struct reqsign_keycache {
    struct kc_shard shards[KC_NSHARDS];
    struct reqsign_keystore *store;
    int64_t pos_ttl, neg_ttl; /* neg_ttl 0: no negative caching */
    size_t max;
    reqsign_verifier_clock_fn clock;
    void *clock_ctx;
    uint8_t sipkey[REQSIGN__SIPHASH_KEY_LEN];
    atomic_size_t reserved;
    _Atomic uint64_t seq;
    _Atomic uint64_t hits, misses, store_errors;
    /* the last-use flusher */
    bool flusher_on;
    pthread_t flusher;
    pthread_mutex_t fl_mu;
    pthread_cond_t fl_cv;
    bool fl_stop;
    struct reqsign_keystore *fl_store;
    char fl_name[REQSIGN_VERIFIER_NAME_IN_MAX + 1];
    int64_t fl_interval;
    _Atomic uint64_t use_writes, use_errors;
};

_Static_assert(REQSIGN_ACCOUNT_ID_IN_MAX <= UINT8_MAX, "kc_entry.account_len is a uint8_t");

/* What a lookup copies out of an entry under the read lock. */
struct kc_snap {
    bool found, negative;
    int64_t fetched_at, expires_at, revoked_at;
    bool disabled, account_disabled;
    uint8_t public_key[REQSIGN_ED25519_PUBLIC_LEN];
    char scopes[REQSIGN_SCOPE_LIST_BUF];
    char account[REQSIGN_ACCOUNT_ID_IN_MAX + 1];
};

/* ---- shards ---- */

static uint64_t kc_hash(const struct reqsign_keycache *c, const char *keyid, size_t len)
{
    uint64_t out[2];
    reqsign__siphash24(c->sipkey, (const uint8_t *)keyid, len, 0, out);
    return out[0];
}

static struct kc_shard *kc_shard_of(struct reqsign_keycache *c, uint64_t h)
{
    return &c->shards[h >> (64 - KC_SHARD_BITS)];
}

static struct kc_entry **kc_bucket(struct kc_shard *sh, uint64_t h)
{
    return &sh->buckets[h & (sh->nbuckets - 1)];
}

static struct kc_entry *kc_find(struct kc_shard *sh, uint64_t h, const char *keyid, size_t len)
{
    for (struct kc_entry *e = *kc_bucket(sh, h); e != NULL; e = e->hnext)
        if (e->hash == h && e->keyid_len == len && memcmp(e->data, keyid, len) == 0)
            return e;
    return NULL;
}

/* Take @e out of its chain and the age list (shard write-locked). */
static void kc_unlink(struct kc_shard *sh, struct kc_entry *e)
{
    struct kc_entry **pp = kc_bucket(sh, e->hash);
    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->older != NULL)
        e->older->newer = e->newer;
    else
        sh->oldest = e->newer;
    if (e->newer != NULL)
        e->newer->older = e->older;
    else
        sh->newest = e->older;
    e->hnext = e->older = e->newer = NULL;
}

/* Put @e in its chain and at the new end of the age list (shard write-locked). */
static void kc_link(struct kc_shard *sh, struct kc_entry *e)
{
    struct kc_entry **b = kc_bucket(sh, e->hash);
    e->hnext = *b;
    *b = e;
    e->newer = NULL;
    e->older = sh->newest;
    if (sh->newest != NULL)
        sh->newest->newer = e;
    else
        sh->oldest = e;
    sh->newest = e;
}

/* Double the bucket array when the shard holds more entries than buckets; on
 * allocation failure the chains just get longer. */
static void kc_maybe_grow(struct kc_shard *sh)
{
    if (sh->count <= sh->nbuckets || sh->nbuckets > SIZE_MAX / 2 / sizeof(*sh->buckets))
        return;
    size_t nb = sh->nbuckets * 2;
    struct kc_entry **b = calloc(nb, sizeof(*b));
    if (b == NULL)
        return;
    for (struct kc_entry *e = sh->oldest; e != NULL; e = e->newer) {
        struct kc_entry **slot = &b[e->hash & (nb - 1)];
        e->hnext = *slot;
        *slot = e;
    }
    free(sh->buckets);
    sh->buckets = b;
    sh->nbuckets = nb;
}

static void kc_free_list(struct kc_entry *e)
{
    while (e != NULL) {
        struct kc_entry *next = e->newer;
        free(e);
        e = next;
    }
}

/* ---- size bound ---- */

/* Drop the oldest entry in the cache: each shard's age list is in insertion
 * order, so the oldest is the shard head with the smallest sequence number.
 * This looks at every shard (read locks, one at a time), which is cheap next
 * to the store query that precedes every insert. */
static bool kc_evict_one(struct reqsign_keycache *c)
{
    struct kc_shard *best = NULL;
    uint64_t best_seq = UINT64_MAX;
    for (unsigned i = 0; i < KC_NSHARDS; i++) {
        struct kc_shard *sh = &c->shards[i];
        pthread_rwlock_rdlock(&sh->lock);
        if (sh->oldest != NULL && sh->oldest->seq < best_seq) {
            best_seq = sh->oldest->seq;
            best = sh;
        }
        pthread_rwlock_unlock(&sh->lock);
    }
    if (best == NULL)
        return false;
    pthread_rwlock_wrlock(&best->lock);
    struct kc_entry *v = best->oldest; /* may have changed meanwhile: still an old one */
    if (v != NULL) {
        kc_unlink(best, v);
        best->count--;
    }
    pthread_rwlock_unlock(&best->lock);
    if (v == NULL)
        return true; /* someone else made room; try again */
    free(v);
    atomic_fetch_sub(&c->reserved, 1);
    return true;
}

/* Reserve room for one more entry, evicting if full. No lock may be held. */
static bool kc_reserve(struct reqsign_keycache *c)
{
    for (int tries = 0; tries < KC_RESERVE_TRIES; tries++) {
        size_t n = atomic_load(&c->reserved);
        while (n < c->max)
            if (atomic_compare_exchange_weak(&c->reserved, &n, n + 1))
                return true;
        if (!kc_evict_one(c))
            return false;
    }
    return false;
}

/* Cache @e (fetched after the shard had generation @gen), or drop it. */
static void kc_store(struct reqsign_keycache *c, struct kc_shard *sh, uint64_t gen,
                     struct kc_entry *e)
{
    bool reserved = kc_reserve(c);
    struct kc_entry *victim = e;

    pthread_rwlock_wrlock(&sh->lock);
    if (sh->gen == gen) {
        struct kc_entry *old = kc_find(sh, e->hash, e->data, e->keyid_len);
        if (old != NULL) {
            if (old->fetched_at <= e->fetched_at) { /* the latest fetch wins */
                e->seq = atomic_fetch_add(&c->seq, 1);
                atomic_store(&e->used_at, atomic_load(&old->used_at));
                atomic_store(&e->flushed_at, atomic_load(&old->flushed_at));
                atomic_store(&e->flush_time, atomic_load(&old->flush_time));
                kc_unlink(sh, old);
                kc_link(sh, e);
                victim = old;
            }
        } else if (reserved) {
            e->seq = atomic_fetch_add(&c->seq, 1);
            kc_link(sh, e);
            sh->count++;
            kc_maybe_grow(sh);
            reserved = false;
            victim = NULL;
        }
    }
    pthread_rwlock_unlock(&sh->lock);

    free(victim);
    if (reserved)
        atomic_fetch_sub(&c->reserved, 1);
}

static struct kc_entry *kc_entry_new(uint64_t h, const char *keyid, size_t keyid_len, int64_t now,
                                     const struct reqsign_key_record *rec)
{
    size_t scopes_len = rec != NULL ? strnlen(rec->scopes, sizeof(rec->scopes) - 1) : 0;
    size_t account_len = rec != NULL ? strnlen(rec->account, sizeof(rec->account) - 1) : 0;
    struct kc_entry *e = malloc(sizeof(*e) + keyid_len + scopes_len + 1 + account_len + 1);
    if (e == NULL)
        return NULL;
    memset(e, 0, sizeof(*e));
    atomic_init(&e->used_at, 0);
    atomic_init(&e->flushed_at, 0);
    atomic_init(&e->flush_time, 0);
    e->hash = h;
    e->fetched_at = now;
    e->keyid_len = (uint16_t)keyid_len;
    e->scopes_len = (uint16_t)scopes_len;
    e->account_len = (uint8_t)account_len;
    memcpy(e->data, keyid, keyid_len);
    if (rec != NULL) {
        memcpy(e->public_key, rec->public_key, sizeof(e->public_key));
        e->expires_at = rec->expires_at;
        e->revoked_at = rec->revoked_at;
        e->disabled = rec->disabled_at != 0;
        e->account_disabled = rec->account_disabled_at != 0;
        memcpy(e->data + keyid_len, rec->scopes, scopes_len);
        memcpy(e->data + keyid_len + scopes_len + 1, rec->account, account_len);
    } else {
        e->negative = true;
    }
    e->data[keyid_len + scopes_len] = '\0';
    e->data[keyid_len + scopes_len + 1 + account_len] = '\0';
    return e;
}

/* ---- answers ---- */

static bool kc_fresh(int64_t now, int64_t fetched_at, int64_t ttl)
{
    uint64_t d = now >= fetched_at ? (uint64_t)now - (uint64_t)fetched_at
                                   : (uint64_t)fetched_at - (uint64_t)now;
    return d < (uint64_t)ttl;
}

static int64_t kc_ttl(const struct reqsign_keycache *c, bool negative)
{
    return negative ? c->neg_ttl : c->pos_ttl;
}

static void kc_snap_of(const struct kc_entry *e, struct kc_snap *s)
{
    s->found = true;
    s->negative = e->negative;
    s->fetched_at = e->fetched_at;
    s->expires_at = e->expires_at;
    s->revoked_at = e->revoked_at;
    s->disabled = e->disabled;
    s->account_disabled = e->account_disabled;
    memcpy(s->public_key, e->public_key, sizeof(s->public_key));
    memcpy(s->scopes, e->data + e->keyid_len, (size_t)e->scopes_len + 1);
    memcpy(s->account, e->data + e->keyid_len + e->scopes_len + 1, (size_t)e->account_len + 1);
}

static enum reqsign_status kc_unknown(struct reqsign_error *err)
{
    return reqsign_error_set(err, REQSIGN_E_KEY_UNKNOWN, kc_src, REQSIGN_NO_OFFSET,
                             "no key with this keyid");
}

static enum reqsign_status kc_answer(const uint8_t pk[REQSIGN_ED25519_PUBLIC_LEN],
                                     int64_t expires_at, int64_t revoked_at, bool disabled,
                                     bool account_disabled, const char *scopes, const char *account,
                                     int64_t now, struct reqsign_key_info *out)
{
    memcpy(out->public_key, pk, REQSIGN_ED25519_PUBLIC_LEN);
    if (revoked_at != 0)
        out->state = REQSIGN_KEY_REVOKED;
    else if (expires_at != 0 && now >= expires_at)
        out->state = REQSIGN_KEY_EXPIRED;
    else if (disabled)
        out->state = REQSIGN_KEY_DISABLED;
    else if (account_disabled)
        out->state = REQSIGN_KEY_ACCOUNT_DISABLED;
    else
        out->state = REQSIGN_KEY_ACTIVE;
    size_t n = strnlen(scopes, sizeof(out->scopes) - 1);
    memcpy(out->scopes, scopes, n);
    out->scopes[n] = '\0';
    n = strnlen(account, sizeof(out->account) - 1);
    memcpy(out->account, account, n);
    out->account[n] = '\0';
    return REQSIGN_OK;
}

static enum reqsign_status kc_answer_snap(const struct kc_snap *s, int64_t now,
                                          struct reqsign_key_info *out, struct reqsign_error *err)
{
    if (s->negative)
        return kc_unknown(err);
    return kc_answer(s->public_key, s->expires_at, s->revoked_at, s->disabled, s->account_disabled,
                     s->scopes, s->account, now, out);
}

/* Look @keyid up in @sh under the read lock; *@gen gets the shard's generation. */
static void kc_peek(struct kc_shard *sh, uint64_t h, const char *keyid, size_t len,
                    struct kc_snap *s, uint64_t *gen)
{
    s->found = false;
    pthread_rwlock_rdlock(&sh->lock);
    struct kc_entry *e = kc_find(sh, h, keyid, len);
    if (e != NULL)
        kc_snap_of(e, s);
    if (gen != NULL)
        *gen = sh->gen;
    pthread_rwlock_unlock(&sh->lock);
}

/* see reqsign/keycache.h */
enum reqsign_status reqsign_keycache_lookup(void *ctx, const char *keyid, size_t keyid_len,
                                            struct reqsign_key_info *out, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct reqsign_keycache *c = ctx;
    if (out != NULL)
        memset(out, 0, sizeof(*out));
    if (c == NULL || out == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, kc_src, REQSIGN_NO_OFFSET,
                                 "cache and output are required");
    if (keyid == NULL || keyid_len == 0 || keyid_len > REQSIGN_KEYID_IN_MAX)
        return kc_unknown(err); /* no such key can exist in a store */

    const int64_t now = c->clock != NULL ? c->clock(c->clock_ctx) : (int64_t)time(NULL);
    const uint64_t h = kc_hash(c, keyid, keyid_len);
    struct kc_shard *sh = kc_shard_of(c, h);
    struct kc_snap snap;
    uint64_t gen;

    kc_peek(sh, h, keyid, keyid_len, &snap, &gen);
    if (snap.found && kc_fresh(now, snap.fetched_at, kc_ttl(c, snap.negative))) {
        atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
        return kc_answer_snap(&snap, now, out, err);
    }
    atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);

    struct reqsign_key_record rec;
    struct reqsign_error serr;
    reqsign_error_clear(&serr);
    enum reqsign_status st = reqsign_keystore_get(c->store, keyid, keyid_len, &rec, &serr);
    if (st == REQSIGN_OK) {
        struct kc_entry *e = kc_entry_new(h, keyid, keyid_len, now, &rec);
        if (e != NULL) /* out of memory: answer without caching */
            kc_store(c, sh, gen, e);
        return kc_answer(rec.public_key, rec.expires_at, rec.revoked_at, rec.disabled_at != 0,
                         rec.account_disabled_at != 0, rec.scopes, rec.account, now, out);
    }
    if (st == REQSIGN_E_KEY_UNKNOWN) {
        if (c->neg_ttl > 0) {
            struct kc_entry *e = kc_entry_new(h, keyid, keyid_len, now, NULL);
            if (e != NULL)
                kc_store(c, sh, gen, e);
        }
        return kc_unknown(err);
    }

    /* The store failed. Serve only an entry that is fresh (another thread may
     * have refreshed it while we asked); a stale one is never served. */
    atomic_fetch_add_explicit(&c->store_errors, 1, memory_order_relaxed);
    kc_peek(sh, h, keyid, keyid_len, &snap, NULL);
    if (snap.found && kc_fresh(now, snap.fetched_at, kc_ttl(c, snap.negative)))
        return kc_answer_snap(&snap, now, out, err);
    return reqsign_error_set(err, REQSIGN_E_KEYSTORE_UNAVAILABLE, kc_src, REQSIGN_NO_OFFSET,
                             "key store unavailable (%s): %s", reqsign_errname(st), serr.message);
}

/* see reqsign/keycache.h */
void reqsign_keycache_invalidate(struct reqsign_keycache *c, const char *keyid, size_t keyid_len)
{
    if (c == NULL)
        return;
    if (keyid == NULL) {
        for (unsigned i = 0; i < KC_NSHARDS; i++) {
            struct kc_shard *sh = &c->shards[i];
            pthread_rwlock_wrlock(&sh->lock);
            struct kc_entry *all = sh->oldest;
            size_t n = sh->count;
            memset(sh->buckets, 0, sh->nbuckets * sizeof(*sh->buckets));
            sh->oldest = sh->newest = NULL;
            sh->count = 0;
            sh->gen++;
            pthread_rwlock_unlock(&sh->lock);
            kc_free_list(all);
            atomic_fetch_sub(&c->reserved, n);
        }
        return;
    }
    if (keyid_len == 0 || keyid_len > REQSIGN_KEYID_IN_MAX)
        return;
    const uint64_t h = kc_hash(c, keyid, keyid_len);
    struct kc_shard *sh = kc_shard_of(c, h);
    pthread_rwlock_wrlock(&sh->lock);
    struct kc_entry *e = kc_find(sh, h, keyid, keyid_len);
    if (e != NULL) {
        kc_unlink(sh, e);
        sh->count--;
    }
    sh->gen++;
    pthread_rwlock_unlock(&sh->lock);
    if (e != NULL) {
        free(e);
        atomic_fetch_sub(&c->reserved, 1);
    }
}

/* see reqsign/keycache.h */
void reqsign_keycache_stats(struct reqsign_keycache *c, struct reqsign_keycache_stats *out)
{
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (c == NULL)
        return;
    out->hits = atomic_load(&c->hits);
    out->misses = atomic_load(&c->misses);
    out->store_errors = atomic_load(&c->store_errors);
    for (unsigned i = 0; i < KC_NSHARDS; i++) {
        pthread_rwlock_rdlock(&c->shards[i].lock);
        out->entries += c->shards[i].count;
        pthread_rwlock_unlock(&c->shards[i].lock);
    }
}

/* see reqsign/keycache.h */
void reqsign_keycache_free(struct reqsign_keycache *c)
{
    if (c == NULL)
        return;
    if (c->flusher_on) {
        pthread_mutex_lock(&c->fl_mu);
        c->fl_stop = true;
        pthread_cond_signal(&c->fl_cv);
        pthread_mutex_unlock(&c->fl_mu);
        pthread_join(c->flusher, NULL);
        pthread_cond_destroy(&c->fl_cv);
        pthread_mutex_destroy(&c->fl_mu);
    }
    for (unsigned i = 0; i < KC_NSHARDS; i++) {
        kc_free_list(c->shards[i].oldest);
        free(c->shards[i].buckets);
        pthread_rwlock_destroy(&c->shards[i].lock);
    }
    reqsign_memzero(c->sipkey, sizeof(c->sipkey));
    free(c);
}

/* see reqsign/keycache.h */
struct reqsign_keycache *reqsign_keycache_new(const struct reqsign_keycache_opts *o,
                                              struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (o == NULL || o->store == NULL) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, kc_src, REQSIGN_NO_OFFSET,
                          "a key store is required");
        return NULL;
    }
    if (o->positive_ttl < 0) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, kc_src, REQSIGN_NO_OFFSET,
                          "positive_ttl must not be negative");
        return NULL;
    }
    struct reqsign_keycache *c =
        aligned_alloc(_Alignof(struct reqsign_keycache), sizeof(struct reqsign_keycache));
    if (c == NULL) {
        reqsign_error_set(err, REQSIGN_E_NOMEM, kc_src, REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    memset(c, 0, sizeof(*c));
    c->store = o->store;
    c->pos_ttl = o->positive_ttl != 0 ? o->positive_ttl : REQSIGN_KEYCACHE_DEFAULT_TTL;
    c->neg_ttl = o->negative_ttl == 0  ? REQSIGN_KEYCACHE_DEFAULT_NEGATIVE_TTL
                 : o->negative_ttl < 0 ? 0
                                       : o->negative_ttl;
    c->max = o->max_entries != 0 ? o->max_entries : REQSIGN_KEYCACHE_DEFAULT_MAX;
    c->clock = o->clock;
    c->clock_ctx = o->clock_ctx;
    atomic_init(&c->reserved, 0);
    atomic_init(&c->seq, 0);
    atomic_init(&c->hits, 0);
    atomic_init(&c->misses, 0);
    atomic_init(&c->store_errors, 0);
    if (reqsign_random_bytes(c->sipkey, sizeof(c->sipkey), NULL) != REQSIGN_OK) {
        free(c);
        reqsign_error_set(err, REQSIGN_E_RANDOM, kc_src, REQSIGN_NO_OFFSET,
                          "cannot seed the cache's hash key");
        return NULL;
    }
    unsigned done = 0;
    for (; done < KC_NSHARDS; done++) {
        struct kc_shard *sh = &c->shards[done];
        sh->nbuckets = KC_MIN_BUCKETS;
        sh->buckets = calloc(sh->nbuckets, sizeof(*sh->buckets));
        if (sh->buckets == NULL)
            break;
        if (pthread_rwlock_init(&sh->lock, NULL) != 0) {
            free(sh->buckets);
            break;
        }
    }
    if (done < KC_NSHARDS) {
        for (unsigned i = 0; i < done; i++) {
            free(c->shards[i].buckets);
            pthread_rwlock_destroy(&c->shards[i].lock);
        }
        free(c);
        reqsign_error_set(err, REQSIGN_E_NOMEM, kc_src, REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    return c;
}

/* ---- last use (issue 13) ---- */

static int64_t kc_now(const struct reqsign_keycache *c)
{
    return c->clock != NULL ? c->clock(c->clock_ctx) : (int64_t)time(NULL);
}

/* see reqsign/keycache.h */
void reqsign_keycache_record_use(struct reqsign_keycache *c, const char *keyid, size_t keyid_len)
{
    if (c == NULL || keyid == NULL || keyid_len == 0 || keyid_len > REQSIGN_KEYID_IN_MAX)
        return;
    const int64_t now = kc_now(c);
    const uint64_t h = kc_hash(c, keyid, keyid_len);
    struct kc_shard *sh = kc_shard_of(c, h);
    pthread_rwlock_rdlock(&sh->lock);
    struct kc_entry *e = kc_find(sh, h, keyid, keyid_len);
    if (e != NULL && !e->negative && atomic_load(&e->used_at) < now)
        atomic_store(&e->used_at, now);
    pthread_rwlock_unlock(&sh->lock);
}

struct kc_use {
    char keyid[REQSIGN_KEYID_IN_MAX + 1];
    int64_t at;
};

/* One pass: every entry used since its last write, and not written within the
 * interval, is written (outside the locks). Store failures are counted and
 * never reach a request; the use is written again after the next one. */
static void kc_flush(struct reqsign_keycache *c, bool all)
{
    const int64_t now = kc_now(c);
    size_t n = 0, cap = 0;
    struct kc_use *uses = NULL;
    for (unsigned i = 0; i < KC_NSHARDS; i++) {
        struct kc_shard *sh = &c->shards[i];
        pthread_rwlock_rdlock(&sh->lock);
        for (struct kc_entry *e = sh->oldest; e != NULL; e = e->newer) {
            int64_t used = atomic_load(&e->used_at);
            int64_t ft = atomic_load(&e->flush_time);
            if (used == 0 || used <= atomic_load(&e->flushed_at) ||
                (!all && ft != 0 && now - ft < c->fl_interval))
                continue;
            if (n == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                struct kc_use *nu = realloc(uses, ncap * sizeof(*nu));
                if (nu == NULL)
                    break;
                uses = nu;
                cap = ncap;
            }
            memcpy(uses[n].keyid, e->data, e->keyid_len);
            uses[n].keyid[e->keyid_len] = '\0';
            uses[n].at = used;
            n++;
            atomic_store(&e->flushed_at, used);
            atomic_store(&e->flush_time, now);
        }
        pthread_rwlock_unlock(&sh->lock);
    }
    for (size_t i = 0; i < n; i++) {
        struct reqsign_error err;
        reqsign_error_clear(&err);
        if (reqsign_keystore_touch(c->fl_store, uses[i].keyid, uses[i].at, c->fl_name, &err) ==
            REQSIGN_OK)
            atomic_fetch_add(&c->use_writes, 1);
        else
            atomic_fetch_add(&c->use_errors, 1);
    }
    free(uses);
}

static void *kc_flusher(void *arg)
{
    struct reqsign_keycache *c = arg;
    pthread_mutex_lock(&c->fl_mu);
    while (!c->fl_stop) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += 1; /* a pass a second; each key at most once per interval */
        pthread_cond_timedwait(&c->fl_cv, &c->fl_mu, &ts);
        if (c->fl_stop)
            break;
        pthread_mutex_unlock(&c->fl_mu);
        kc_flush(c, false);
        pthread_mutex_lock(&c->fl_mu);
    }
    pthread_mutex_unlock(&c->fl_mu);
    kc_flush(c, true); /* what is pending when the verifier stops */
    return NULL;
}

/* see reqsign/keycache.h */
enum reqsign_status reqsign_keycache_start_flusher(struct reqsign_keycache *c,
                                                   struct reqsign_keystore *writer,
                                                   const char *name, int64_t interval,
                                                   struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (c == NULL || writer == NULL || name == NULL ||
        strlen(name) > REQSIGN_VERIFIER_NAME_IN_MAX || interval < 1 || c->flusher_on)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, kc_src, REQSIGN_NO_OFFSET,
                                 "a writable store, a name of at most %d bytes and an interval "
                                 ">= 1 are required (once)",
                                 REQSIGN_VERIFIER_NAME_IN_MAX);
    c->fl_store = writer;
    snprintf(c->fl_name, sizeof(c->fl_name), "%s", name);
    c->fl_interval = interval;
    c->fl_stop = false;
    if (pthread_mutex_init(&c->fl_mu, NULL) != 0)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, kc_src, REQSIGN_NO_OFFSET, "mutex");
    if (pthread_cond_init(&c->fl_cv, NULL) != 0) {
        pthread_mutex_destroy(&c->fl_mu);
        return reqsign_error_set(err, REQSIGN_E_NOMEM, kc_src, REQSIGN_NO_OFFSET, "condvar");
    }
    /* The thread takes no signal: a server's signal handling (sigwait in
     * one thread) must not lose SIGTERM to it. It inherits this mask. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&c->flusher, NULL, kc_flusher, c);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&c->fl_cv);
        pthread_mutex_destroy(&c->fl_mu);
        return reqsign_error_set(err, REQSIGN_E_NOMEM, kc_src, REQSIGN_NO_OFFSET,
                                 "cannot start the last-use thread");
    }
    c->flusher_on = true;
    return REQSIGN_OK;
}

/* see reqsign/keycache.h */
void reqsign_keycache_use_stats(struct reqsign_keycache *c, uint64_t *writes, uint64_t *errors)
{
    *writes = c != NULL ? atomic_load(&c->use_writes) : 0;
    *errors = c != NULL ? atomic_load(&c->use_errors) : 0;
}
