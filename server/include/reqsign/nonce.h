/* reqsign: the nonce store, which makes replays fail.
 *
 * A nonce store remembers (keyid, nonce) pairs until a given time and
 * answers one atomic question: "was this pair seen and still remembered? if
 * not, remember it until @until". The verifier asks it only after a
 * signature has verified, so forged requests cannot fill it.
 *
 * Implementations plug in through struct reqsign_nonce_store_ops; the
 * in-memory store below is built in.
 *
 * Thread safety: reqsign_nonce_store_check_insert() is thread-safe on one
 * shared store for every implementation. _free must not race with other calls.
 */
#ifndef REQSIGN_NONCE_H
#define REQSIGN_NONCE_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/limits.h>

#ifdef __cplusplus
extern "C" {
#endif

struct reqsign_nonce_store;

struct reqsign_nonce_store_ops {
    /* Atomically: if (keyid, nonce) is remembered and live, return
     * REQSIGN_E_REPLAY; otherwise remember it until @until (unix seconds) and
     * return REQSIGN_OK. The window rule of every store (spec section 6): a
     * pair is live while now <= until, that is through the whole second
     * @until, and dead from second until + 1 on. May return REQSIGN_E_NONCE_STORE_FULL,
     * REQSIGN_E_NONCE_KEY_LIMIT, REQSIGN_E_NONCE_STORE_UNAVAILABLE; never OK
     * without having recorded the pair (fail-closed). */
    enum reqsign_status (*check_insert)(void *impl, const char *keyid, size_t keyid_len,
                                        const char *nonce, size_t nonce_len, int64_t now,
                                        int64_t until, struct reqsign_error *err);
    void (*free)(void *impl);
};

/**
 * reqsign_nonce_store_new() - wrap a custom implementation. @ops is copied;
 * @impl is owned by the store from success on (released with ops->free by
 * reqsign_nonce_store_free()). On failure @impl stays the caller's.
 * Return: the store, or NULL with @err set (E_INVALID_ARG: no check_insert;
 * E_NOMEM).
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD struct reqsign_nonce_store *
reqsign_nonce_store_new(const struct reqsign_nonce_store_ops *ops, void *impl,
                        struct reqsign_error *err);

/** reqsign_nonce_store_free() - release; NULL is a no-op. */
REQSIGN_API void reqsign_nonce_store_free(struct reqsign_nonce_store *s);

/** reqsign_nonce_store_check_insert() - see ops->check_insert. Thread-safe. */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_nonce_store_check_insert(struct reqsign_nonce_store *s, const char *keyid, size_t keyid_len,
                                 const char *nonce, size_t nonce_len, int64_t now, int64_t until,
                                 struct reqsign_error *err);

/* The type of ops->check_insert. */
typedef enum reqsign_status (*reqsign_nonce_check_insert_fn)(void *impl, const char *keyid,
                                                             size_t keyid_len, const char *nonce,
                                                             size_t nonce_len, int64_t now,
                                                             int64_t until,
                                                             struct reqsign_error *err);

/**
 * reqsign_nonce_store_impl() - the impl of @s if @s was made with
 * @check_insert as its ops->check_insert, else NULL: how a store's own
 * functions (reqsign_nonce_store_memory_count(), the Redis store's ping, ...)
 * tell their stores from others. For store implementations, in this library
 * or another.
 */
REQSIGN_API void *reqsign_nonce_store_impl(const struct reqsign_nonce_store *s,
                                           reqsign_nonce_check_insert_fn check_insert);

/* ---- the in-memory store ----
 * Exact: a pair is identified by a 128-bit keyed hash (SipHash-2-4-128 with a
 * random per-store key) of (keyid, nonce); two distinct pairs can only be
 * confused with probability 2^-128, and that would refuse, never accept.
 * Bounded: at most max_entries live entries; when full it refuses with
 * REQSIGN_E_NONCE_STORE_FULL and never evicts a live entry. Per-key cap: at
 * most per_key_max live entries for one keyid (REQSIGN_E_NONCE_KEY_LIMIT),
 * so one key cannot lock the others out. Self-expiring: entries past their
 * `until` are dropped and their memory returned as the store shrinks.
 *
 * Time is the caller's (@now, unix seconds; the store never reads a clock) and
 * kept to the second, up to 2106-02-07 (UINT32_MAX): @now must be in
 * [0, UINT32_MAX) (else REQSIGN_E_INVALID_ARG); an @until <= @now is taken as
 * @now + 1 (remembered through the next second) and a later one than
 * UINT32_MAX - 1 as UINT32_MAX - 1. An entry is live while now <= until; one
 * with until < now is dead: a check of its pair accepts and remembers it again. A dead entry is
 * reclaimed one second after it died (not at once), so that a thread that read the clock just
 * before another still finds what the other would already call dead; until then it still counts
 * towards max_entries and per_key_max, which can only refuse early, never accept a replay.
 *
 * Per-key counts are kept per 64-bit keyed hash of the keyid: two keyids with
 * the same hash share one count, which again can only refuse early.
 * Memory: 24 bytes per table slot at load 0.2 to 0.8 (0.6 after each resize;
 * about 40 bytes per live entry in steady state) plus 16 to 24 bytes per
 * distinct live keyid. */
struct reqsign_nonce_memory_opts {
    size_t max_entries; /* 0: REQSIGN_NONCE_DEFAULT_MAX_ENTRIES */
    size_t per_key_max; /* 0: REQSIGN_NONCE_DEFAULT_PER_KEY_MAX */
};
#define REQSIGN_NONCE_DEFAULT_MAX_ENTRIES ((size_t)1 << 24) /* 16,777,216 */
#define REQSIGN_NONCE_DEFAULT_PER_KEY_MAX ((size_t)1 << 20) /* 1,048,576 */

/**
 * reqsign_nonce_store_memory_new() - the built-in store. @opts may be NULL.
 * Return: the store, or NULL with @err set (E_NOMEM, E_RANDOM).
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD struct reqsign_nonce_store *
reqsign_nonce_store_memory_new(const struct reqsign_nonce_memory_opts *opts,
                               struct reqsign_error *err);

/** reqsign_nonce_store_memory_count() - live entries (for tests and metrics);
 * 0 for a store that is not the in-memory one. Thread-safe. */
REQSIGN_API size_t reqsign_nonce_store_memory_count(struct reqsign_nonce_store *s, int64_t now);

/* What reqsign_nonce_store_memory_stats() reports. */
struct reqsign_nonce_memory_stats {
    size_t live;    /* entries with now <= until */
    size_t present; /* entries held: live, or dead and not yet reclaimed */
    size_t keys;    /* distinct keyid counters held */
    size_t slots;   /* table slots, all shards */
    size_t bytes;   /* heap bytes held: tables, key counters, the store itself */
};

/**
 * reqsign_nonce_store_memory_stats() - counts and memory of the in-memory
 * store at @now, for tests and metrics; all zero for another kind of store.
 * Reads every slot (O(entries)); changes nothing.
 * Thread safety: thread-safe.
 */
REQSIGN_API void reqsign_nonce_store_memory_stats(struct reqsign_nonce_store *s, int64_t now,
                                                  struct reqsign_nonce_memory_stats *out);

/**
 * reqsign_nonce_store_memory_sweep() - reclaim every entry of the in-memory
 * store that is reclaimable at @now and shrink its tables. Never needed for
 * correctness (checks reclaim as they go, and sweep the whole store when that
 * decides between refusing and accepting); a server whose traffic fell can
 * call it from a timer to return memory sooner. O(entries).
 * Return: entries reclaimed; 0 for another kind of store.
 * Thread safety: thread-safe.
 */
REQSIGN_API size_t reqsign_nonce_store_memory_sweep(struct reqsign_nonce_store *s, int64_t now);

#ifdef __cplusplus
}
#endif
#endif
