/* reqsign: the in-memory nonce store.
 *
 * Layout. A pair (keyid, nonce) is identified by h = SipHash-2-4-128 under a
 * random per-store key of  len(keyid) as 2 bytes big-endian || keyid || nonce
 * (unambiguous: the keyid's length is fixed before the nonce starts). The top
 * 6 bits of h pick one of 64 shards; each shard is an open-addressing table
 * with linear probing, its own mutex, and entries of 24 bytes:
 *
 *     h (16 bytes) | until (uint32 unix seconds, 0 = empty slot) | key ref (uint32)
 *
 * Home slots come from h's low word by multiply-shift, so a table can have
 * any size: a rehash sizes it to load 0.6, it grows when an insert would pass
 * 0.8 and shrinks when it falls under 0.2. Deletion is by backward shift, so
 * there are no tombstones. A check costs about one cache miss (the home
 * slot, prefetched before the lock); tables of 2 MiB and more are advised
 * huge pages so that the miss is not also a TLB miss.
 *
 * Per-key caps. The key ref names a counter slot in one of 64 key shards
 * (ref = key shard << 26 | slot), found through a 64-bit SipHash of the same
 * length-prefixed keyid under a second random key. The counter counts the
 * entries present for that keyid; two keyids whose 64-bit hashes collide share
 * a counter, which can only refuse early (conservative), never accept more.
 * A counter slot is freed when its count drops to zero, so refs in entries are
 * always valid. The store-wide count of present entries is one atomic.
 *
 * Expiry. Each entry keeps the first second it is dead: the caller's until
 * + 1, since a pair is live while now <= until (nonce.h). In what follows,
 * `until` is that stored value. An entry with until <= now is dead: a check on it accepts and
 * revives it. Dead entries are reclaimed (key counter decremented, slot
 * emptied) GRACE seconds after they die, so that a caller whose clock reading
 * lags another caller's by up to GRACE still sees them (see nonce.h); until
 * then they still count against the caps, which can only refuse early.
 * Reclaiming happens (a) on every probe that walks over a reclaimable entry,
 * (b) 64 slots at a sweep cursor every 16th call to a shard (4 a call, read
 * in sequence), also in a second shard picked by the hash on one call in 16,
 * so that shards no traffic reaches still empty, (c) wholesale when a shard holds nothing but
 * reclaimable entries, (d) in every rehash, and (e) store-wide when a check
 * is refused as full or over the key cap while something may be reclaimable
 * (at most once per second of the callers' clock in practice; see
 * sweep_may_help), and on reqsign_nonce_store_memory_sweep().
 *
 * Locks: sweep_mu -> shard -> key shard, never the other way; a shard visited
 * for housekeeping is only try-locked, after the caller's shard is released.
 */
#include <reqsign/key.h>
#include <reqsign/nonce.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "siphash.h"

#define MEM_SHARD_BITS 6
#define MEM_NSHARDS (1u << MEM_SHARD_BITS)
#define MEM_KSHARD_BITS 6
#define MEM_NKSHARDS (1u << MEM_KSHARD_BITS)
#define MEM_KSLOT_BITS (32 - MEM_KSHARD_BITS)
#define MEM_KSLOT_MAX ((uint32_t)1 << MEM_KSLOT_BITS)
#define MEM_MIN_CAP 16u            /* slots per shard table, at least */
#define MEM_KINDEX_MIN 16u         /* key index slots per key shard, at least */
#define MEM_SWEEP_EVERY 16         /* calls to a shard between two sweep bursts */
#define MEM_SWEEP_SLOTS 64         /* slots examined per burst: 4 per call, a few cache lines */
#define MEM_VISIT_EVERY 16         /* one call in this many also looks after a second shard */
#define MEM_HUGE ((size_t)2 << 20) /* tables this big are mmap'd and advised huge pages */
#define MEM_GRACE 1                /* seconds between an entry's death and its reclaiming */
#define MEM_RELEASE_CACHE 16       /* batched counter decrements while reclaiming */
#define MEM_NONE UINT32_MAX

static const char mem_src[] = "nonce store";

struct mem_entry {
    uint64_t h0, h1; /* SipHash-2-4-128 of the pair */
    uint32_t until;  /* first dead second: the caller's until + 1; 0: empty slot */
    uint32_t key;    /* key shard << MEM_KSLOT_BITS | counter slot */
};
_Static_assert(sizeof(struct mem_entry) == 24, "entries must stay 24 bytes");

struct mem_shard {
    _Alignas(64) pthread_mutex_t mu;
    struct mem_entry *tab;
    uint32_t cap;    /* slots */
    uint32_t used;   /* entries present: live, or dead and not yet reclaimed */
    uint32_t cursor; /* incremental sweep position */
    uint32_t calls;  /* calls since the last sweep burst */
    /* tab and cap again, readable without the lock, for a prefetch only */
    _Atomic(struct mem_entry *) hint_tab;
    _Atomic(uint32_t) hint_cap;
    uint32_t min_until; /* <= every present entry's until; UINT32_MAX if none */
    uint32_t max_until; /* >= every present entry's until; 0 if none */
};

struct mem_kslot {
    uint64_t hash;      /* SipHash-2-4-64 of the length-prefixed keyid */
    uint32_t count;     /* entries present that refer to this slot */
    uint32_t next_free; /* free list link while unused */
};

struct mem_kshard {
    _Alignas(64) pthread_mutex_t mu;
    struct mem_kslot *slots; /* stable: entries refer to slots by index */
    uint32_t *index;         /* slot + 1, 0 empty; linear probing, power-of-two size */
    uint32_t index_cap, nkeys, nslots, slots_cap, free_head;
};

struct mem {
    uint8_t pair_key[REQSIGN__SIPHASH_KEY_LEN];
    uint8_t keyid_key[REQSIGN__SIPHASH_KEY_LEN];
    size_t max_entries, per_key_max;
    pthread_mutex_t sweep_mu;
    _Alignas(64) atomic_size_t total;         /* entries present, all shards */
    _Alignas(64) _Atomic(uint32_t) min_until; /* <= every present entry's until */
    atomic_uint sweep_seq;                    /* odd while a store-wide sweep runs */
    struct mem_shard shards[MEM_NSHARDS];
    struct mem_kshard kshards[MEM_NKSHARDS];
};

/* ---- key counters ---- */

static bool mem_total_reserve(struct mem *m)
{
    size_t t = atomic_load_explicit(&m->total, memory_order_relaxed);
    do {
        if (t >= m->max_entries)
            return false;
    } while (!atomic_compare_exchange_weak(&m->total, &t, t + 1));
    return true;
}

/* Is @k in the cyclic range (i, j]? */
static inline bool mem_cyclic_in(uint32_t i, uint32_t k, uint32_t j)
{
    return i <= j ? (i < k && k <= j) : (i < k || k <= j);
}

static uint32_t mem_kindex_find(const struct mem_kshard *ks, uint64_t hash, bool *found)
{
    uint32_t mask = ks->index_cap - 1, i = (uint32_t)hash & mask;
    for (;;) {
        uint32_t v = ks->index[i];
        if (v == 0 || ks->slots[v - 1].hash == hash) {
            *found = v != 0;
            return i;
        }
        i = (i + 1) & mask;
    }
}

static bool mem_kindex_resize(struct mem_kshard *ks, uint32_t cap)
{
    uint32_t *ni = calloc(cap, sizeof(*ni));
    if (ni == NULL)
        return false;
    for (uint32_t i = 0; i < ks->index_cap; i++) {
        uint32_t v = ks->index[i];
        if (v == 0)
            continue;
        uint32_t j = (uint32_t)ks->slots[v - 1].hash & (cap - 1);
        while (ni[j] != 0)
            j = (j + 1) & (cap - 1);
        ni[j] = v;
    }
    free(ks->index);
    ks->index = ni;
    ks->index_cap = cap;
    return true;
}

static void mem_kindex_remove(struct mem_kshard *ks, uint64_t hash)
{
    bool found;
    uint32_t mask = ks->index_cap - 1, i = mem_kindex_find(ks, hash, &found), j = i;
    for (;;) {
        j = (j + 1) & mask;
        uint32_t v = ks->index[j];
        if (v == 0)
            break;
        if (!mem_cyclic_in(i, (uint32_t)ks->slots[v - 1].hash & mask, j)) {
            ks->index[i] = v;
            i = j;
        }
    }
    ks->index[i] = 0;
}

/* Count one more entry for the keyid hashing to @kh, within both caps. */
static enum reqsign_status mem_key_acquire(struct mem *m, uint64_t kh, uint32_t *ref)
{
    uint32_t ksi = (uint32_t)(kh >> (64 - MEM_KSHARD_BITS)), slot = 0;
    struct mem_kshard *ks = &m->kshards[ksi];
    enum reqsign_status st = REQSIGN_OK;
    bool found;

    pthread_mutex_lock(&ks->mu);
    uint32_t pos = mem_kindex_find(ks, kh, &found);
    if (found) {
        slot = ks->index[pos] - 1;
        if (ks->slots[slot].count >= m->per_key_max)
            st = REQSIGN_E_NONCE_KEY_LIMIT;
        else if (!mem_total_reserve(m))
            st = REQSIGN_E_NONCE_STORE_FULL;
        else
            ks->slots[slot].count++;
        goto out;
    }
    /* A new keyid: make room first, so that nothing is rolled back. */
    if ((uint64_t)(ks->nkeys + 1) * 2 > ks->index_cap) {
        if (!mem_kindex_resize(ks, ks->index_cap * 2)) {
            st = REQSIGN_E_NOMEM;
            goto out;
        }
        pos = mem_kindex_find(ks, kh, &found);
    }
    if (ks->free_head == MEM_NONE && ks->nslots == ks->slots_cap) {
        if (ks->slots_cap == MEM_KSLOT_MAX) {
            st = REQSIGN_E_NONCE_STORE_FULL;
            goto out;
        }
        uint32_t cap = ks->slots_cap == 0 ? 16 : ks->slots_cap * 2;
        if (cap > MEM_KSLOT_MAX)
            cap = MEM_KSLOT_MAX;
        struct mem_kslot *ns = realloc(ks->slots, (size_t)cap * sizeof(*ns));
        if (ns == NULL) {
            st = REQSIGN_E_NOMEM;
            goto out;
        }
        ks->slots = ns;
        ks->slots_cap = cap;
    }
    if (!mem_total_reserve(m)) {
        st = REQSIGN_E_NONCE_STORE_FULL;
        goto out;
    }
    if (ks->free_head != MEM_NONE) {
        slot = ks->free_head;
        ks->free_head = ks->slots[slot].next_free;
    } else {
        slot = ks->nslots++;
    }
    ks->slots[slot] = (struct mem_kslot){.hash = kh, .count = 1, .next_free = MEM_NONE};
    ks->index[pos] = slot + 1;
    ks->nkeys++;
out:
    pthread_mutex_unlock(&ks->mu);
    *ref = ksi << MEM_KSLOT_BITS | slot;
    return st;
}

/* Count @n fewer entries for the counter @ref (and in the store). */
static void mem_key_release(struct mem *m, uint32_t ref, uint32_t n)
{
    struct mem_kshard *ks = &m->kshards[ref >> MEM_KSLOT_BITS];
    uint32_t slot = ref & (MEM_KSLOT_MAX - 1);

    pthread_mutex_lock(&ks->mu);
    struct mem_kslot *k = &ks->slots[slot];
    k->count -= n;
    if (k->count == 0) {
        mem_kindex_remove(ks, k->hash);
        k->next_free = ks->free_head;
        ks->free_head = slot;
        ks->nkeys--;
        if (ks->index_cap > MEM_KINDEX_MIN && (uint64_t)ks->nkeys * 8 < ks->index_cap)
            (void)mem_kindex_resize(ks, ks->index_cap / 2); /* failure: stay bigger */
    }
    pthread_mutex_unlock(&ks->mu);
    atomic_fetch_sub(&m->total, (size_t)n);
}

/* Reclaiming many entries: merge decrements of the same counter, so a shard
 * of a few busy keys costs a few key-shard locks, not one per entry. */
struct mem_release {
    uint32_t ref[MEM_RELEASE_CACHE];
    uint32_t n[MEM_RELEASE_CACHE];
};

static void mem_release_add(struct mem *m, struct mem_release *rc, uint32_t ref)
{
    uint32_t i = (ref * UINT32_C(0x9E3779B1)) >> 28;
    if (rc->n[i] != 0 && rc->ref[i] != ref) {
        mem_key_release(m, rc->ref[i], rc->n[i]);
        rc->n[i] = 0;
    }
    rc->ref[i] = ref;
    rc->n[i]++;
}

static void mem_release_flush(struct mem *m, struct mem_release *rc)
{
    for (uint32_t i = 0; i < MEM_RELEASE_CACHE; i++) {
        if (rc->n[i] != 0) {
            mem_key_release(m, rc->ref[i], rc->n[i]);
            rc->n[i] = 0;
        }
    }
}

/* ---- shard tables ---- */

static inline uint32_t mem_home(uint64_t h0, uint32_t cap)
{
    return (uint32_t)(((h0 >> 32) * (uint64_t)cap) >> 32);
}

static inline uint32_t mem_next(uint32_t i, uint32_t cap)
{
    return i + 1 == cap ? 0 : i + 1;
}

/* A table of @n entries at load 0.6; 0 if it would not fit a uint32. */
static uint32_t mem_cap_for(uint64_t n)
{
    uint64_t cap = (n * 5 + 2) / 3;
    if (cap < MEM_MIN_CAP)
        cap = MEM_MIN_CAP;
    return cap > UINT32_MAX ? 0 : (uint32_t)cap;
}

/* Tables are zeroed (until 0: empty). A big one gets its own mapping, aligned
 * to and advised for huge pages: a probe is one random access into hundreds
 * of megabytes, and without huge pages it costs a TLB miss on top. */
static size_t mem_tab_bytes(uint32_t cap)
{
    size_t bytes = (size_t)cap * sizeof(struct mem_entry);
    return bytes < MEM_HUGE ? bytes : (bytes + 4095) & ~(size_t)4095;
}

static struct mem_entry *mem_tab_alloc(uint32_t cap)
{
    size_t bytes = mem_tab_bytes(cap);
    if (bytes < MEM_HUGE)
        return calloc(cap, sizeof(struct mem_entry));
    uint8_t *p =
        mmap(NULL, bytes + MEM_HUGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    size_t head = (MEM_HUGE - ((uintptr_t)p & (MEM_HUGE - 1))) & (MEM_HUGE - 1);
    if (head != 0)
        munmap(p, head);
    munmap(p + head + bytes, MEM_HUGE - head);
#ifdef MADV_HUGEPAGE
    (void)madvise(p + head, bytes, MADV_HUGEPAGE); /* advice only */
#endif
    return (struct mem_entry *)(void *)(p + head);
}

static void mem_tab_free(struct mem_entry *tab, uint32_t cap)
{
    if (tab == NULL)
        return;
    size_t bytes = mem_tab_bytes(cap);
    if (bytes < MEM_HUGE)
        free(tab);
    else
        munmap(tab, bytes);
}

static void mem_note_until(struct mem *m, struct mem_shard *sh, uint32_t until)
{
    if (until < sh->min_until)
        sh->min_until = until;
    if (until > sh->max_until)
        sh->max_until = until;
    uint32_t g = atomic_load_explicit(&m->min_until, memory_order_relaxed);
    while (until < g && !atomic_compare_exchange_weak(&m->min_until, &g, until)) {
    }
}

/* Empty slot @i by backward shift; the caller has released its counter. */
static void mem_tab_delete(struct mem_shard *sh, uint32_t i)
{
    uint32_t j = i;
    for (;;) {
        j = mem_next(j, sh->cap);
        struct mem_entry *e = &sh->tab[j];
        if (e->until == 0)
            break;
        if (!mem_cyclic_in(i, mem_home(e->h0, sh->cap), j)) {
            sh->tab[i] = *e;
            i = j;
        }
    }
    sh->tab[i].until = 0;
    if (--sh->used == 0) {
        sh->min_until = UINT32_MAX;
        sh->max_until = 0;
    }
}

static inline bool mem_reclaimable(const struct mem_entry *e, uint32_t hz)
{
    return e->until != 0 && e->until <= hz;
}

/* Rebuild @sh into @cap slots, dropping what is reclaimable at @hz. */
static bool mem_rehash(struct mem *m, struct mem_shard *sh, uint32_t cap, uint32_t hz,
                       struct mem_release *rc)
{
    struct mem_entry *nt = cap == 0 ? NULL : mem_tab_alloc(cap);
    if (nt == NULL)
        return false;
    uint32_t used = 0, lo = UINT32_MAX, hi = 0;
    for (uint32_t i = 0; i < sh->cap; i++) {
        const struct mem_entry *e = &sh->tab[i];
        if (e->until == 0)
            continue;
        if (e->until <= hz) {
            mem_release_add(m, rc, e->key);
            continue;
        }
        uint32_t j = mem_home(e->h0, cap);
        while (nt[j].until != 0)
            j = mem_next(j, cap);
        nt[j] = *e;
        used++;
        lo = e->until < lo ? e->until : lo;
        hi = e->until > hi ? e->until : hi;
    }
    mem_tab_free(sh->tab, sh->cap);
    sh->tab = nt;
    sh->cap = cap;
    atomic_store_explicit(&sh->hint_tab, nt, memory_order_relaxed);
    atomic_store_explicit(&sh->hint_cap, cap, memory_order_relaxed);
    sh->used = used;
    sh->cursor = 0;
    sh->min_until = lo;
    sh->max_until = hi;
    return true;
}

/* Reclaim everything reclaimable in @sh and tighten its bounds; shrink the
 * table if it ends up under load 0.2. Return: entries reclaimed. */
static uint32_t mem_reclaim_all(struct mem *m, struct mem_shard *sh, uint32_t hz,
                                struct mem_release *rc)
{
    uint32_t kept = 0, lo = UINT32_MAX, hi = 0, before = sh->used;
    for (uint32_t i = 0; i < sh->cap; i++) {
        uint32_t u = sh->tab[i].until;
        if (u > hz) {
            kept++;
            lo = u < lo ? u : lo;
            hi = u > hi ? u : hi;
        }
    }
    if (kept == before) {
        sh->min_until = lo;
        sh->max_until = hi;
        return 0;
    }
    if (sh->cap > MEM_MIN_CAP && (uint64_t)kept * 5 < sh->cap &&
        mem_rehash(m, sh, mem_cap_for(kept), hz, rc))
        return before - kept;
    /* In place: start just after an empty slot, so no cluster wraps past the
     * start and a backward shift never moves an entry over it. */
    uint32_t s = 0;
    while (sh->tab[s].until != 0)
        s++;
    for (uint32_t i = mem_next(s, sh->cap), n = 1; n < sh->cap;) {
        struct mem_entry *e = &sh->tab[i];
        if (mem_reclaimable(e, hz)) {
            mem_release_add(m, rc, e->key);
            mem_tab_delete(sh, i); /* look at slot i again */
            continue;
        }
        i = mem_next(i, sh->cap);
        n++;
    }
    sh->min_until = lo;
    sh->max_until = hi;
    return before - kept;
}

/* Cheap per-call housekeeping of @sh (locked): now and then a burst of
 * MEM_SWEEP_SLOTS slots at the cursor, a few cache lines read in sequence. */
static void mem_housekeep(struct mem *m, struct mem_shard *sh, uint32_t hz, struct mem_release *rc)
{
    if (sh->used == 0 || hz < sh->min_until)
        return; /* nothing reclaimable */
    if (hz >= sh->max_until) {
        (void)mem_reclaim_all(m, sh, hz, rc); /* everything is: one pass, table shrinks */
        return;
    }
    if (++sh->calls < MEM_SWEEP_EVERY)
        return;
    sh->calls = 0;
    if (sh->cursor >= sh->cap)
        sh->cursor = 0;
    for (int k = 0; k < MEM_SWEEP_SLOTS; k++) {
        struct mem_entry *e = &sh->tab[sh->cursor];
        if (mem_reclaimable(e, hz)) {
            mem_release_add(m, rc, e->key);
            mem_tab_delete(sh, sh->cursor);
        } else {
            sh->cursor = mem_next(sh->cursor, sh->cap);
        }
    }
}

static void mem_maybe_shrink(struct mem *m, struct mem_shard *sh, uint32_t hz,
                             struct mem_release *rc)
{
    if (sh->cap > MEM_MIN_CAP && (uint64_t)sh->used * 5 < sh->cap)
        (void)mem_reclaim_all(m, sh, hz, rc);
}

/* Find the pair @h in @sh, reclaiming what the probe walks over. Return true
 * with its slot in *pos, or false with the empty slot ending the probe. */
static bool mem_find(struct mem *m, struct mem_shard *sh, const uint64_t h[2], uint32_t hz,
                     struct mem_release *rc, uint32_t *pos)
{
    uint32_t i = mem_home(h[0], sh->cap);
    for (;;) {
        struct mem_entry *e = &sh->tab[i];
        if (e->until == 0) {
            *pos = i;
            return false;
        }
        if (e->h0 == h[0] && e->h1 == h[1]) {
            *pos = i;
            return true;
        }
        if (e->until <= hz) {
            mem_release_add(m, rc, e->key);
            mem_tab_delete(sh, i); /* look at slot i again */
            continue;
        }
        i = mem_next(i, sh->cap);
    }
}

static enum reqsign_status mem_shard_check_insert(struct mem *m, struct mem_shard *sh,
                                                  const uint64_t h[2], uint64_t kh, uint32_t now,
                                                  uint32_t hz, uint32_t until)
{
    struct mem_release rc = {{0}, {0}};
    enum reqsign_status st;
    uint32_t pos, ref;

    pthread_mutex_lock(&sh->mu);
    mem_housekeep(m, sh, hz, &rc);
    if (mem_find(m, sh, h, hz, &rc, &pos)) {
        struct mem_entry *e = &sh->tab[pos];
        if (e->until > now) {
            st = REQSIGN_E_REPLAY;
        } else { /* dead: revive it; it is still counted for its key */
            e->until = until;
            mem_note_until(m, sh, until);
            st = REQSIGN_OK;
        }
        goto out;
    }
    mem_release_flush(m, &rc); /* counters exact before the caps are checked */
    st = mem_key_acquire(m, kh, &ref);
    if (st != REQSIGN_OK)
        goto out;
    if ((uint64_t)(sh->used + 1) * 5 > (uint64_t)sh->cap * 4) {
        if (hz >= sh->min_until) /* the dead first: growing may not be needed */
            (void)mem_reclaim_all(m, sh, hz, &rc);
        if ((uint64_t)(sh->used + 1) * 5 > (uint64_t)sh->cap * 4 &&
            !mem_rehash(m, sh, mem_cap_for((uint64_t)sh->used + 1), hz, &rc) &&
            sh->used + 2 > sh->cap) { /* keep one slot empty: probes end */
            mem_key_release(m, ref, 1);
            st = REQSIGN_E_NOMEM;
            goto out;
        }
        (void)mem_find(m, sh, h, hz, &rc, &pos); /* not there: its empty slot */
    }
    sh->tab[pos] = (struct mem_entry){.h0 = h[0], .h1 = h[1], .until = until, .key = ref};
    sh->used++;
    mem_note_until(m, sh, until);
out:
    mem_maybe_shrink(m, sh, hz, &rc);
    mem_release_flush(m, &rc);
    pthread_mutex_unlock(&sh->mu);
    return st;
}

/* ---- store-wide sweep ---- */

/* May a store-wide sweep at @hz reclaim anything? Lock-free; errs towards yes. */
static bool mem_sweep_may_help(struct mem *m, uint32_t hz)
{
    unsigned s1 = atomic_load(&m->sweep_seq);
    uint32_t lo = atomic_load(&m->min_until);
    unsigned s2 = atomic_load(&m->sweep_seq);
    if (s1 != s2 || (s1 & 1u) != 0)
        return true; /* one is running: wait for it, then look again */
    return hz >= lo;
}

/* Reclaim everything reclaimable at @hz in every shard. Unless @force, skip
 * when nothing can be (typically: another caller just swept). */
static size_t mem_sweep(struct mem *m, uint32_t hz, bool force)
{
    size_t reclaimed = 0;

    pthread_mutex_lock(&m->sweep_mu);
    if (!force && hz < atomic_load(&m->min_until)) {
        pthread_mutex_unlock(&m->sweep_mu);
        return 0;
    }
    atomic_fetch_add(&m->sweep_seq, 1u);
    /* Recomputed below; inserts meanwhile lower it under their shard's lock,
     * and every shard is visited after this store. */
    atomic_store(&m->min_until, UINT32_MAX);
    for (uint32_t i = 0; i < MEM_NSHARDS; i++) {
        struct mem_shard *sh = &m->shards[i];
        struct mem_release rc = {{0}, {0}};
        pthread_mutex_lock(&sh->mu);
        if (sh->used != 0 && hz >= sh->min_until)
            reclaimed += mem_reclaim_all(m, sh, hz, &rc);
        uint32_t g = atomic_load(&m->min_until);
        while (sh->min_until < g &&
               !atomic_compare_exchange_weak(&m->min_until, &g, sh->min_until)) {
        }
        mem_release_flush(m, &rc);
        pthread_mutex_unlock(&sh->mu);
    }
    atomic_fetch_add(&m->sweep_seq, 1u);
    pthread_mutex_unlock(&m->sweep_mu);
    return reclaimed;
}

/* Housekeeping of a second shard, so shards the traffic no longer reaches
 * still return their memory. Never waits for the lock. */
static void mem_visit(struct mem *m, struct mem_shard *sh, uint32_t hz)
{
    struct mem_release rc = {{0}, {0}};
    if (pthread_mutex_trylock(&sh->mu) != 0)
        return;
    mem_housekeep(m, sh, hz, &rc);
    mem_maybe_shrink(m, sh, hz, &rc);
    mem_release_flush(m, &rc);
    pthread_mutex_unlock(&sh->mu);
}

/* ---- the ops ---- */

static enum reqsign_status mem_check_insert(void *impl, const char *keyid, size_t keyid_len,
                                            const char *nonce, size_t nonce_len, int64_t now,
                                            int64_t until, struct reqsign_error *err)
{
    struct mem *m = impl;
    /* 1..REQSIGN_*_MAX_LEN, checked by reqsign_nonce_store_check_insert() */
    uint8_t buf[2 + REQSIGN_KEYID_IN_MAX + REQSIGN_NONCE_IN_MAX];
    uint64_t h[2], kh[2];
    enum reqsign_status st;

    if (now < 0 || now >= (int64_t)UINT32_MAX)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, mem_src, REQSIGN_NO_OFFSET,
                                 "now %lld out of range", (long long)now);
    uint32_t now32 = (uint32_t)now, hz = now32 > MEM_GRACE ? now32 - MEM_GRACE : 0;
    /* Live while now <= until (nonce.h): kept is the first second it is dead,
     * until + 1. An until <= now is taken as now + 1 (remembered through the
     * next second at least). */
    int64_t live_to = until <= now ? now + 1 : until;
    uint32_t until32 = live_to >= (int64_t)UINT32_MAX - 1 ? UINT32_MAX : (uint32_t)live_to + 1;

    buf[0] = (uint8_t)(keyid_len >> 8);
    buf[1] = (uint8_t)keyid_len;
    memcpy(buf + 2, keyid, keyid_len);
    memcpy(buf + 2 + keyid_len, nonce, nonce_len);
    reqsign__siphash24(m->pair_key, buf, 2 + keyid_len + nonce_len, 1, h);
    struct mem_shard *sh = &m->shards[h[1] >> (64 - MEM_SHARD_BITS)];
#if defined(__GNUC__)
    /* Start the one cache miss of the call now, to overlap the keyid's hash
     * and the lock. A stale hint is harmless: prefetches do not fault. */
    __builtin_prefetch(atomic_load_explicit(&sh->hint_tab, memory_order_relaxed) +
                       mem_home(h[0], atomic_load_explicit(&sh->hint_cap, memory_order_relaxed)));
#endif
    reqsign__siphash24(m->keyid_key, buf, 2 + keyid_len, 0, kh);
    for (int attempt = 0;; attempt++) {
        st = mem_shard_check_insert(m, sh, h, kh[0], now32, hz, until32);
        if ((st != REQSIGN_E_NONCE_STORE_FULL && st != REQSIGN_E_NONCE_KEY_LIMIT) || attempt > 0 ||
            !mem_sweep_may_help(m, hz))
            break;
        (void)mem_sweep(m, hz, false);
    }
    if ((h[1] >> 32) % MEM_VISIT_EVERY == 0)
        mem_visit(m, &m->shards[(h[1] >> 40) & (MEM_NSHARDS - 1)], hz);

    switch (st) {
    case REQSIGN_OK:
        return REQSIGN_OK;
    case REQSIGN_E_REPLAY:
        return reqsign_error_set(err, st, mem_src, REQSIGN_NO_OFFSET,
                                 "nonce already used with this keyid");
    case REQSIGN_E_NONCE_STORE_FULL:
        return reqsign_error_set(err, st, mem_src, REQSIGN_NO_OFFSET,
                                 "store holds its maximum of %zu live nonces", m->max_entries);
    case REQSIGN_E_NONCE_KEY_LIMIT:
        return reqsign_error_set(err, st, mem_src, REQSIGN_NO_OFFSET,
                                 "keyid holds its maximum of %zu live nonces", m->per_key_max);
    default:
        return reqsign_error_set(err, st, mem_src, REQSIGN_NO_OFFSET,
                                 "out of memory growing the table");
    }
}

static void mem_free(void *impl)
{
    struct mem *m = impl;
    if (m == NULL)
        return;
    for (uint32_t i = 0; i < MEM_NSHARDS; i++) {
        pthread_mutex_destroy(&m->shards[i].mu);
        mem_tab_free(m->shards[i].tab, m->shards[i].cap);
    }
    for (uint32_t i = 0; i < MEM_NKSHARDS; i++) {
        pthread_mutex_destroy(&m->kshards[i].mu);
        free(m->kshards[i].slots);
        free(m->kshards[i].index);
    }
    pthread_mutex_destroy(&m->sweep_mu);
    reqsign_memzero(m->pair_key, sizeof(m->pair_key));
    reqsign_memzero(m->keyid_key, sizeof(m->keyid_key));
    free(m);
}

static const struct reqsign_nonce_store_ops mem_ops = {
    .check_insert = mem_check_insert,
    .free = mem_free,
};

/* see reqsign/nonce.h */
struct reqsign_nonce_store *
reqsign_nonce_store_memory_new(const struct reqsign_nonce_memory_opts *opts,
                               struct reqsign_error *err)
{
    reqsign_error_clear(err);
    /* mutexes are default-initialised: pthread_mutex_init cannot fail on the
     * platforms we build for, and mem_free destroys all of them */
    struct mem *m = aligned_alloc(_Alignof(struct mem), sizeof(struct mem));
    if (m == NULL) {
        reqsign_error_set(err, REQSIGN_E_NOMEM, "nonce store", REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    memset(m, 0, sizeof(*m));
    m->max_entries = opts != NULL && opts->max_entries != 0 ? opts->max_entries
                                                            : REQSIGN_NONCE_DEFAULT_MAX_ENTRIES;
    if (m->max_entries > UINT32_MAX)
        m->max_entries = UINT32_MAX;
    m->per_key_max = opts != NULL && opts->per_key_max != 0 ? opts->per_key_max
                                                            : REQSIGN_NONCE_DEFAULT_PER_KEY_MAX;
    pthread_mutex_init(&m->sweep_mu, NULL);
    atomic_init(&m->total, 0);
    atomic_init(&m->min_until, UINT32_MAX);
    atomic_init(&m->sweep_seq, 0u);
    bool keyed = reqsign_random_bytes(m->pair_key, sizeof(m->pair_key), NULL) == REQSIGN_OK &&
                 reqsign_random_bytes(m->keyid_key, sizeof(m->keyid_key), NULL) == REQSIGN_OK;
    bool ok = keyed;
    for (uint32_t i = 0; i < MEM_NSHARDS; i++) {
        struct mem_shard *sh = &m->shards[i];
        pthread_mutex_init(&sh->mu, NULL);
        sh->tab = mem_tab_alloc(MEM_MIN_CAP);
        sh->cap = MEM_MIN_CAP;
        atomic_init(&sh->hint_tab, sh->tab);
        atomic_init(&sh->hint_cap, sh->cap);
        sh->min_until = UINT32_MAX;
        ok = ok && sh->tab != NULL;
    }
    for (uint32_t i = 0; i < MEM_NKSHARDS; i++) {
        struct mem_kshard *ks = &m->kshards[i];
        pthread_mutex_init(&ks->mu, NULL);
        ks->index = calloc(MEM_KINDEX_MIN, sizeof(*ks->index));
        ks->index_cap = MEM_KINDEX_MIN;
        ks->free_head = MEM_NONE;
        ok = ok && ks->index != NULL;
    }
    struct reqsign_nonce_store *s = ok ? reqsign_nonce_store_new(&mem_ops, m, err) : NULL;
    if (s == NULL) {
        if (!ok)
            reqsign_error_set(err, keyed ? REQSIGN_E_NOMEM : REQSIGN_E_RANDOM, "nonce store",
                              REQSIGN_NO_OFFSET, NULL);
        mem_free(m); /* the wrapper leaves @impl to its caller on failure */
    }
    return s;
}

/* The in-memory store behind @s, or NULL. */
static struct mem *mem_of(struct reqsign_nonce_store *s)
{
    return reqsign_nonce_store_impl(s, mem_check_insert);
}

static uint32_t mem_clamp_now(int64_t now)
{
    return now < 0 ? 0 : now >= (int64_t)UINT32_MAX ? UINT32_MAX : (uint32_t)now;
}

/* see reqsign/nonce.h */
void reqsign_nonce_store_memory_stats(struct reqsign_nonce_store *s, int64_t now,
                                      struct reqsign_nonce_memory_stats *out)
{
    struct mem *m = mem_of(s);
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (m == NULL)
        return;
    uint32_t now32 = mem_clamp_now(now);
    out->bytes = sizeof(*m);
    for (uint32_t i = 0; i < MEM_NSHARDS; i++) {
        struct mem_shard *sh = &m->shards[i];
        pthread_mutex_lock(&sh->mu);
        for (uint32_t j = 0; j < sh->cap; j++)
            out->live += sh->tab[j].until > now32;
        out->present += sh->used;
        out->slots += sh->cap;
        out->bytes += mem_tab_bytes(sh->cap);
        pthread_mutex_unlock(&sh->mu);
    }
    for (uint32_t i = 0; i < MEM_NKSHARDS; i++) {
        struct mem_kshard *ks = &m->kshards[i];
        pthread_mutex_lock(&ks->mu);
        out->keys += ks->nkeys;
        out->bytes += (size_t)ks->slots_cap * sizeof(struct mem_kslot) +
                      (size_t)ks->index_cap * sizeof(uint32_t);
        pthread_mutex_unlock(&ks->mu);
    }
}

/* see reqsign/nonce.h */
size_t reqsign_nonce_store_memory_count(struct reqsign_nonce_store *s, int64_t now)
{
    struct reqsign_nonce_memory_stats st;
    reqsign_nonce_store_memory_stats(s, now, &st);
    return st.live;
}

/* see reqsign/nonce.h */
size_t reqsign_nonce_store_memory_sweep(struct reqsign_nonce_store *s, int64_t now)
{
    struct mem *m = mem_of(s);
    if (m == NULL)
        return 0;
    uint32_t now32 = mem_clamp_now(now);
    return mem_sweep(m, now32 > MEM_GRACE ? now32 - MEM_GRACE : 0, true);
}
