/* reqsign: a nonce store shared by a fleet of verifiers, in Redis.
 *
 * All verifiers that accept the same authority and keys must share one nonce
 * store (spec/PROTOCOL.md section 7); this one keeps the pairs in Redis. Each
 * check is one atomic Lua script (EVALSHA; loaded with SCRIPT LOAD on every
 * new connection, and sent whole with EVAL if the server answers NOSCRIPT)
 * on one pooled connection, one round trip. The script, alone in Redis while
 * it runs:
 *
 *   1. EXISTS <prefix><p>: present is REQSIGN_E_REPLAY;
 *   2. counts the live members of the keyid's sorted set <prefix>k:<q>
 *      (member <p>, score its expiry in ms) and answers
 *      REQSIGN_E_NONCE_KEY_LIMIT (429) if there are per_key_max;
 *   3. answers REQSIGN_E_NONCE_STORE_FULL (503) if DBSIZE >= max_entries;
 *   4. SET <prefix><p> 1 PX ... (the first write: a Redis over maxmemory
 *      refuses it with OOM before anything is written), ZADD the member,
 *      extends the set's TTL to its latest member, drops its expired
 *      members: REQSIGN_OK.
 *
 * <p> is 16 raw bytes, the first half of SHA-256(len(keyid) as 2 bytes
 * big-endian || keyid || nonce); <q> the first half of SHA-256(len(keyid) as
 * 2 bytes big-endian || keyid). The hashes are unkeyed on purpose: every
 * verifier of the fleet must map a pair to the same Redis key, so a
 * per-process random key (as the in-memory store uses) would let a request be
 * replayed to another instance. Nonces and keyids are not secret; a 128-bit
 * truncation only makes two pairs collide with probability about 2^-128 per
 * pair, and a collision refuses (replay), never accepts. Being a script, the
 * cap is exact under any concurrency, from any number of verifiers.
 *
 * Bounds. per_key_max (default 2^20) live pairs per keyid, as the in-memory
 * store. max_entries (default 2^24) bounds DBSIZE, every key of the store's
 * database: the pairs plus one sorted set per keyid with live pairs (and
 * anything else kept there: give the store a database of its own). Keys that
 * expired but that Redis has not reclaimed yet still count, which can only
 * refuse early. Memory: about 200 bytes per live pair (its key and its member
 * in the keyid's set); size maxmemory above max_entries times that, so that
 * the store answers nonce_store_full before Redis answers OOM (which is
 * nonce_store_unavailable).
 *
 * Expiry. A pair is live while now <= until (nonce.h): it expires at
 * (until + 1) * 1000 ms, the start of second until + 1, on the server's clock,
 * so every verifier agrees on it, and a caller's clock reading taken a few ms
 * before its check reaches Redis cannot let a replay through at the end of
 * second until. With relative_ttl, on servers older than 6.2 (the server's
 * version is read on every new connection), or if that time is already past
 * for the server (a caller clock that lags Redis), the pair expires
 * (until + 1 - now) * 1000 ms after the script runs instead. An @until <=
 * @now is taken as @now + 1, as in the in-memory store.
 *
 * Fail-closed. Anything but one of those four answers (an error reply such
 * as OOM or READONLY, a timeout, a refused or closed connection) is
 * REQSIGN_E_NONCE_STORE_UNAVAILABLE with a short message naming the cause, and
 * the pair is not accepted (it may still have been recorded). A connection
 * that failed is dropped with every idle one; reconnection waits for a backoff
 * that doubles from backoff_min_ms to backoff_max_ms with each failure in a
 * row, and a check during the backoff fails at once instead of waiting. One
 * caller at a time then probes the server; the first success ends the backoff.
 * Nothing has to be recreated after Redis comes back.
 *
 * Operating Redis for this store:
 *  - maxmemory-policy must be noeviction: every key has a TTL, so a volatile-*
 *    or allkeys-* policy would evict live nonces and let replays through.
 *    Checked: every new connection sends CONFIG GET maxmemory-policy and is
 *    refused (UNAVAILABLE, "maxmemory-policy is ..., must be noeviction") if
 *    it is anything else; reqsign_nonce_store_redis_ping() at start-up thus
 *    fails, and the servers exit 1 naming it. If CONFIG is disabled or
 *    renamed (managed Redis services), the error reply also refuses the
 *    connection ("cannot check noeviction"): set assume_noeviction after
 *    making sure of the policy some other way. With noeviction a full Redis
 *    answers OOM, which is UNAVAILABLE.
 *  - a Redis that restarts without persistence forgets the live nonces: a
 *    request seen before can be replayed until its window ends. Use AOF
 *    (appendfsync everysec loses at most about a second) or accept that.
 *  - replicas: write to the primary; after a failover, writes acknowledged by
 *    the old primary but not replicated are lost in the same way.
 *  - not Redis Cluster: a check's two keys may live in different slots.
 *
 * Signals. hiredis writes with write(2); a write to a closed connection would
 * raise SIGPIPE. The store blocks SIGPIPE in the calling thread for the
 * duration of its I/O and discards one it caused, so callers need not ignore it.
 *
 * Thread safety: reqsign_nonce_store_check_insert() and the functions below
 * are thread-safe on one shared store; each call takes one pooled connection.
 */
#ifndef REQSIGN_NONCE_REDIS_H
#define REQSIGN_NONCE_REDIS_H

#include <stdbool.h>

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/limits.h>
#include <reqsign/nonce.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REQSIGN_NONCE_REDIS_DEFAULT_PREFIX "reqsign:n:"
#define REQSIGN_NONCE_REDIS_KEY_HASH_LEN 16 /* raw bytes after the prefix */
#define REQSIGN_NONCE_REDIS_DEFAULT_POOL 8
#define REQSIGN_NONCE_REDIS_DEFAULT_CONNECT_TIMEOUT_MS 200
#define REQSIGN_NONCE_REDIS_DEFAULT_COMMAND_TIMEOUT_MS 100
#define REQSIGN_NONCE_REDIS_DEFAULT_BACKOFF_MIN_MS 50
#define REQSIGN_NONCE_REDIS_DEFAULT_BACKOFF_MAX_MS 5000

struct reqsign_nonce_redis_opts {
    /* "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB][?PARAMS]" (HOST may be "[v6
     * address]"; PORT defaults to 6379, DB to 0) or "unix:/path/redis.sock[?PARAMS]".
     * Copied. PARAMS (what servers that take only a URL can set; they
     * override the fields below): per_key_max=N, max_entries=N,
     * assume_noeviction=0|1, joined with '&'.
     * Parsed with libcurl's URL API: USER and PASSWORD are percent-decoded, and
     * an '@', ':' or '/' in them must be percent-encoded (a raw '@' in the
     * password is refused as a malformed URL rather than split somewhere).
     * The password is sent with AUTH and never appears in an error message. */
    const char *url;
    const char *key_prefix; /* NULL: REQSIGN_NONCE_REDIS_DEFAULT_PREFIX; copied */
    /* Connections at most (the stores' one pool: all of them may stay idle;
     * a check that finds all in use waits up to connect_timeout_ms +
     * command_timeout_ms on the monotonic clock, then fails with
     * REQSIGN_E_NONCE_STORE_UNAVAILABLE, "all N connections busy"; an I/O
     * failure closes every connection made before it); 0: 8; at most 1024. */
    size_t pool_size;
    unsigned connect_timeout_ms; /* per connection attempt; 0: 200 */
    unsigned command_timeout_ms; /* per read or write of a reply; 0: 100 */
    unsigned backoff_min_ms;     /* first reconnect delay after a failure; 0: 50 */
    unsigned backoff_max_ms;     /* the delay doubles up to this; 0: 5000 */
    bool relative_ttl;           /* true: always relative expiries, even on servers >= 6.2 */
    size_t per_key_max;     /* live pairs per keyid at most; 0: REQSIGN_NONCE_DEFAULT_PER_KEY_MAX */
    size_t max_entries;     /* keys in the database at most; 0: REQSIGN_NONCE_DEFAULT_MAX_ENTRIES */
    bool assume_noeviction; /* true: skip the maxmemory-policy check (CONFIG disabled) */
};

/**
 * reqsign_nonce_store_redis_new() - a nonce store in the Redis server at
 * @o->url. Does not connect: the first check does (see
 * reqsign_nonce_store_redis_ping() to check the server at startup).
 * @o:   options; strings are copied.
 * @err: on failure, the reason; may be NULL.
 * Return: the store (free with reqsign_nonce_store_free()), or NULL with
 * REQSIGN_E_INVALID_ARG (bad URL or option; also "built without Redis
 * support" when reqsign was built without hiredis) or REQSIGN_E_NOMEM.
 * Thread safety: thread-safe.
 */
REQSIGN_API struct reqsign_nonce_store *
reqsign_nonce_store_redis_new(const struct reqsign_nonce_redis_opts *o, struct reqsign_error *err);

/**
 * reqsign_nonce_store_redis_ping() - take a connection (making one if needed,
 * unless in backoff) and send PING.
 * Return: REQSIGN_OK, REQSIGN_E_NONCE_STORE_UNAVAILABLE, or
 * REQSIGN_E_INVALID_ARG if @s is not a Redis store.
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_nonce_store_redis_ping(struct reqsign_nonce_store *s, struct reqsign_error *err);

/* One pair of a batch: spans borrowed for the call only. */
struct reqsign_nonce_item {
    struct reqsign_span keyid; /* 1..REQSIGN_KEYID_IN_MAX bytes */
    struct reqsign_span nonce; /* 1..REQSIGN_NONCE_IN_MAX bytes */
    int64_t until;             /* unix seconds, as for check_insert */
};

/**
 * reqsign_nonce_store_redis_check_insert_batch() - check_insert for @n pairs
 * in one round trip (pipelined scripts on one connection), in order, with the
 * same semantics as one check_insert per item: a pair that appears twice is
 * OK the first time and a replay the second; the caps count the earlier items.
 * @s:       a Redis store.
 * @items:   @n pairs.
 * @results: @n statuses, always all written: REQSIGN_OK, REQSIGN_E_REPLAY,
 *           REQSIGN_E_NONCE_KEY_LIMIT, REQSIGN_E_NONCE_STORE_FULL,
 *           REQSIGN_E_INVALID_ARG (that item's lengths; it is not sent) or
 *           REQSIGN_E_NONCE_STORE_UNAVAILABLE (every item not answered when
 *           the connection failed, or all of them during a backoff).
 * @now:     unix seconds, the callers' clock, as for check_insert.
 * @err:     detail of the first item that is not OK; may be NULL.
 * Return: REQSIGN_OK if every result is REQSIGN_OK, else the result of the
 * first item that is not; REQSIGN_E_INVALID_ARG (and every result too) if @s
 * is not a Redis store or an array is NULL.
 * Thread safety: thread-safe.
 */
REQSIGN_API enum reqsign_status reqsign_nonce_store_redis_check_insert_batch(
    struct reqsign_nonce_store *s, const struct reqsign_nonce_item *items, size_t n,
    enum reqsign_status *results, int64_t now, struct reqsign_error *err);

/* What reqsign_nonce_store_redis_stats() reports; counters since _new. */
struct reqsign_nonce_redis_stats {
    uint64_t connects;       /* connections made (handshake completed) */
    uint64_t failures;       /* connection attempts or commands that failed */
    uint64_t fast_fails;     /* calls refused at once during a backoff */
    size_t open;             /* connections open now, idle or in use */
    unsigned backoff_ms;     /* left of the current backoff; 0 if none */
    unsigned server_version; /* major * 10000 + minor * 100 + patch, last connect; 0 unknown */
    bool pxat;               /* last connection made uses absolute expiries */
};

/**
 * reqsign_nonce_store_redis_stats() - counters, for tests and metrics; all
 * zero if @s is not a Redis store. Thread safety: thread-safe.
 */
REQSIGN_API void reqsign_nonce_store_redis_stats(struct reqsign_nonce_store *s,
                                                 struct reqsign_nonce_redis_stats *out);

#ifdef __cplusplus
}
#endif
#endif
