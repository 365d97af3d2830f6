/* reqsign: an in-process cache in front of a key store, for the verifier.
 *
 * reqsign_keycache_lookup() has the reqsign_key_lookup_fn signature: pass it
 * with the cache as ctx in struct reqsign_verifier_opts. A hit costs a hash
 * lookup and no database access. Positive entries live positive_ttl seconds,
 * negative ones (unknown keyid) negative_ttl seconds; a revocation in the
 * store therefore takes effect in every verifier within positive_ttl seconds
 * (REQSIGN_KEYCACHE_DEFAULT_TTL = 5 s by default). A key's expiry is checked
 * against the clock at every lookup, so it takes effect at once. When the
 * store fails (REQSIGN_E_KEYSTORE_UNAVAILABLE / REQSIGN_E_STORE), cached
 * entries keep serving until their TTL; nothing else is accepted.
 *
 * Thread safety: lookup and invalidate are thread-safe on one shared cache.
 */
#ifndef REQSIGN_KEYCACHE_H
#define REQSIGN_KEYCACHE_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/keylookup.h>
#include <reqsign/keystore.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REQSIGN_KEYCACHE_DEFAULT_TTL 5
#define REQSIGN_KEYCACHE_DEFAULT_NEGATIVE_TTL 5
#define REQSIGN_KEYCACHE_DEFAULT_MAX 100000

struct reqsign_keycache_opts {
    struct reqsign_keystore *store;  /* borrowed; required */
    int64_t positive_ttl;            /* seconds; 0: default */
    int64_t negative_ttl;            /* seconds; 0: default; < 0: no negative caching */
    size_t max_entries;              /* 0: default; beyond it, the oldest entries go */
    reqsign_verifier_clock_fn clock; /* NULL: time(NULL) */
    void *clock_ctx;
};

struct reqsign_keycache;

REQSIGN_API struct reqsign_keycache *reqsign_keycache_new(const struct reqsign_keycache_opts *o,
                                                          struct reqsign_error *err);
REQSIGN_API void reqsign_keycache_free(struct reqsign_keycache *c);

/**
 * reqsign_keycache_lookup() - a reqsign_key_lookup_fn; @ctx is the cache.
 * Fills @out (public key, state: revoked if revoked_at != 0, expired if
 * expires_at != 0 and now >= expires_at, scopes).
 */
REQSIGN_API enum reqsign_status reqsign_keycache_lookup(void *ctx, const char *keyid,
                                                        size_t keyid_len,
                                                        struct reqsign_key_info *out,
                                                        struct reqsign_error *err);

/** reqsign_keycache_invalidate() - drop @keyid (NULL: everything) at once. */
REQSIGN_API void reqsign_keycache_invalidate(struct reqsign_keycache *c, const char *keyid,
                                             size_t keyid_len);

/* ---- last use (issue 13) ----
 * A server calls reqsign_keycache_record_use() after a request verified
 * (both phases): the time is kept in the key's cache entry, in memory. A
 * background thread (reqsign_keycache_start_flusher()) writes it to the key
 * store (last_used_at, last_used_by = @name) at most once per key per
 * @interval seconds, never in the verify call and never failing a request:
 * a store that is down only loses the write until the next use. Stopped
 * (with a last pass) by reqsign_keycache_free(). */
#define REQSIGN_LAST_USED_DEFAULT_INTERVAL 60

REQSIGN_API void reqsign_keycache_record_use(struct reqsign_keycache *c, const char *keyid,
                                             size_t keyid_len);
/* @writer: a store opened read-write (may be the cache's own store); borrowed,
 * it must outlive the cache. */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_keycache_start_flusher(struct reqsign_keycache *c, struct reqsign_keystore *writer,
                               const char *name, int64_t interval, struct reqsign_error *err);
/* Writes done and failed, for tests and metrics. */
REQSIGN_API void reqsign_keycache_use_stats(struct reqsign_keycache *c, uint64_t *writes,
                                            uint64_t *errors);

/** Counters for tests and metrics. */
struct reqsign_keycache_stats {
    uint64_t hits, misses, store_errors;
    size_t entries;
};
REQSIGN_API void reqsign_keycache_stats(struct reqsign_keycache *c,
                                        struct reqsign_keycache_stats *out);

#ifdef __cplusplus
}
#endif
#endif
