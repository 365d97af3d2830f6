/* reqsign: the Redis nonce store (see reqsign/nonce_redis.h for the contract).
 *
 * Pool. The stores' one pool (server/stores/pool/pool.h): at most pool_size
 * connections open (default REQSIGN_NONCE_REDIS_DEFAULT_POOL, 8), all of them
 * may stay idle. A caller takes an idle connection, or makes one (outside
 * the pool's lock) if fewer than pool_size are open, or waits (at most
 * connect + command timeout, on the monotonic clock) for one to come back,
 * then fails with REQSIGN_E_NONCE_STORE_UNAVAILABLE naming the limit.
 *
 * Failure. An I/O failure (timeout, refused, closed) on any connection starts
 * a new pool generation, which closes every idle connection (they most likely
 * point at the same dead server) and every older one when it is given back,
 * and starts a backoff: no connection attempt before retry_at. During the
 * backoff callers fail at once; after it, one caller at a time (the probe)
 * connects; its success clears the backoff, its failure doubles it. An error
 * reply (OOM, READONLY, ...) drops only that connection. r->mu guards the
 * backoff and the counters; it is taken before the pool's lock, never after.
 *
 * Each connection runs, in its handshake, the maxmemory-policy check, reads
 * the server's version (absolute expiries need >= 6.2 for the semantics the
 * header documents) and loads the check script, whose SHA-1 it keeps.
 */
#include <reqsign/nonce_redis.h>

#include <stdlib.h>
#include <string.h>

static const char rd_src[] = "nonce store";

#include <curl/curl.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/time.h>
#include <time.h>

#include "pool.h"

#define RD_KEY_MAX (REQSIGN_NONCE_REDIS_PREFIX_IN_MAX + REQSIGN_NONCE_REDIS_KEY_HASH_LEN)
#define RD_DB_MAX 65535
#define RD_CAUSE_LEN 112
#define RD_KKEY_TAG "k:" /* per-keyid set: <prefix>k:<16 bytes>, two longer than a pair key */

/* One check, atomic in Redis (scripts run alone), with the server's clock.
 * KEYS[1] the pair's key, KEYS[2] the keyid's sorted set (member: the pair's
 * 16 hash bytes, score: its expiry in ms). ARGV: absolute expiry in ms (0:
 * none), relative expiry in ms (used if the absolute one is not in the future
 * for the server), per_key_max, max_entries, the member.
 * Returns 1 recorded, 0 replay, -1 key at per_key_max, -2 store at
 * max_entries (DBSIZE: every key of the database, reclaimed or not yet).
 * The checks only read; the first write is the SET, a deny-oom command, so
 * that a Redis over maxmemory refuses the script (OOM) before it has written
 * anything (after a first write Redis lets a script go on past maxmemory).
 * Expired members are dropped last. */
#define RD_SCRIPT                                                                                  \
    "if redis.replicate_commands then redis.replicate_commands() end "                             \
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end "                                     \
    "local t = redis.call('TIME') "                                                                \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "                       \
    "local exp = tonumber(ARGV[1]) "                                                               \
    "if exp <= now then exp = now + tonumber(ARGV[2]) end "                                        \
    "local nows = string.format('%.0f', now) "                                                     \
    "if redis.call('ZCOUNT', KEYS[2], nows, '+inf') >= tonumber(ARGV[3]) then return -1 end "      \
    "if redis.call('DBSIZE') >= tonumber(ARGV[4]) then return -2 end "                             \
    "local ttl = string.format('%.0f', exp - now) "                                                \
    "redis.call('SET', KEYS[1], '1', 'PX', ttl) "                                                  \
    "redis.call('ZADD', KEYS[2], string.format('%.0f', exp), ARGV[5]) "                            \
    "if redis.call('PTTL', KEYS[2]) < exp - now then redis.call('PEXPIRE', KEYS[2], ttl) end "     \
    "redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', '(' .. nows) "                                \
    "return 1"

struct rd_conn {
    struct reqsign_pool_link link; /* the pool's; holds the generation it was made in */
    redisContext *c;
    bool pxat;    /* absolute expiries: the server is >= 6.2 and relative_ttl is off */
    char sha[41]; /* SHA-1 of RD_SCRIPT, as SCRIPT LOAD answered */
};

struct rd {
    /* configuration; read-only after rd_new */
    char *host;     /* TCP: host name or address; NULL for a Unix socket */
    char *path;     /* Unix socket path; NULL for TCP */
    char *user;     /* AUTH user, or NULL */
    char *password; /* AUTH password, or NULL; wiped on free */
    int port, db;
    char where[80]; /* "HOST:PORT" or the socket path, for messages */
    char prefix[REQSIGN_NONCE_REDIS_PREFIX_IN_MAX];
    size_t prefix_len, pool_size;
    size_t per_key_max, max_entries;
    unsigned connect_ms, command_ms, backoff_min_ms, backoff_max_ms;
    bool relative_ttl, assume_noeviction;
    EVP_MD *sha256;

    struct reqsign_pool *pool;

    pthread_mutex_t mu;       /* guards everything below; taken before the pool's lock */
    unsigned fails;           /* failures in a row; 0: not in backoff */
    int64_t retry_at;         /* monotonic ms; no connection attempt before */
    bool probing;             /* a caller is reconnecting after a backoff */
    char cause[RD_CAUSE_LEN]; /* the last failure, for fast-fail messages */
    uint64_t n_connects, n_failures, n_fast;
    unsigned version;
    bool last_pxat;
};

/* ---- time ---- */

static int64_t rd_clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval rd_tv(unsigned ms)
{
    struct timeval tv = {.tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* ---- SIGPIPE: hiredis uses write(2), which raises it on a closed socket ---- */

struct rd_sigpipe {
    sigset_t old;
    bool blocked; /* by us: it was not blocked on entry */
};

static void rd_sigpipe_block(struct rd_sigpipe *sp)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    sp->blocked =
        pthread_sigmask(SIG_BLOCK, &set, &sp->old) == 0 && sigismember(&sp->old, SIGPIPE) == 0;
}

/* Restore the mask; after an I/O failure, first discard the SIGPIPE that our
 * write left pending on this thread (it was unblocked on entry, so any pending
 * one is ours). */
static void rd_sigpipe_restore(struct rd_sigpipe *sp, bool io_failed)
{
    if (!sp->blocked)
        return;
    if (io_failed) {
        sigset_t set, pending;
        sigemptyset(&set);
        sigaddset(&set, SIGPIPE);
        if (sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
            struct timespec zero = {0, 0};
            (void)sigtimedwait(&set, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &sp->old, NULL);
}

/* ---- connections ---- */

/* Why the last call on @c failed, without secrets. */
static void rd_io_cause(const struct rd *r, const redisContext *c, int saved_errno, char *cause)
{
    if (c == NULL)
        snprintf(cause, RD_CAUSE_LEN, "out of memory");
    else if (c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK))
        snprintf(cause, RD_CAUSE_LEN, "command timed out (%u ms)", r->command_ms);
    else if (c->err == REDIS_ERR_EOF)
        snprintf(cause, RD_CAUSE_LEN, "connection closed by server");
    else
        snprintf(cause, RD_CAUSE_LEN, "%.80s", c->errstr[0] != '\0' ? c->errstr : "I/O error");
}

/* One handshake command; its reply or NULL with @cause set. */
static redisReply *rd_handshake_cmd(const struct rd *r, redisContext *c, const char *what,
                                    char *cause, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *rep = redisvCommand(c, fmt, ap);
    int e = errno;
    va_end(ap);
    if (rep == NULL) {
        char io[RD_CAUSE_LEN];
        rd_io_cause(r, c, e, io);
        if (snprintf(cause, RD_CAUSE_LEN, "%s: %.90s", what, io) >= RD_CAUSE_LEN)
            cause[RD_CAUSE_LEN - 1] = '\0'; /* truncated on purpose */
    }
    return rep;
}

static bool rd_reply_ok(const redisReply *rep)
{
    return rep->type == REDIS_REPLY_STATUS && strcmp(rep->str, "OK") == 0;
}

/* "redis_version:7.0.15" in INFO server, as 70015; 0 if not found. */
static unsigned rd_parse_version(const char *info)
{
    const char *p = strstr(info, "redis_version:");
    if (p == NULL)
        return 0;
    p += strlen("redis_version:");
    unsigned part[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++) {
        char *end;
        unsigned long v = strtoul(p, &end, 10);
        if (end == p)
            break;
        part[i] = v > 99 ? 99 : (unsigned)v;
        if (*end != '.')
            break;
        p = end + 1;
    }
    return part[0] * 10000 + part[1] * 100 + part[2];
}

/* Connect and run the handshake (AUTH, SELECT, CONFIG GET, INFO server,
 * SCRIPT LOAD). Returns
 * the connection or NULL with @cause set. */
static struct rd_conn *rd_connect(const struct rd *r, unsigned *version, char *cause)
{
    struct rd_conn *k = calloc(1, sizeof(*k));
    redisReply *rep = NULL;
    struct timeval ctv = rd_tv(r->connect_ms);
    if (k == NULL) {
        snprintf(cause, RD_CAUSE_LEN, "out of memory");
        return NULL;
    }
    k->c = r->path != NULL ? redisConnectUnixWithTimeout(r->path, ctv)
                           : redisConnectWithTimeout(r->host, r->port, ctv);
    if (k->c == NULL || k->c->err != 0) {
        char io[RD_CAUSE_LEN];
        rd_io_cause(r, k->c, errno, io);
        if (k->c != NULL && k->c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EINPROGRESS))
            snprintf(io, sizeof(io), "timed out (%u ms)", r->connect_ms);
        if (snprintf(cause, RD_CAUSE_LEN, "connect: %.90s", io) >= RD_CAUSE_LEN)
            cause[RD_CAUSE_LEN - 1] = '\0'; /* truncated on purpose */
        goto fail;
    }
    if (redisSetTimeout(k->c, rd_tv(r->command_ms)) != REDIS_OK) {
        snprintf(cause, RD_CAUSE_LEN, "cannot set the command timeout");
        goto fail;
    }
    if (r->password != NULL) {
        rep = r->user != NULL
                  ? rd_handshake_cmd(r, k->c, "AUTH", cause, "AUTH %s %s", r->user, r->password)
                  : rd_handshake_cmd(r, k->c, "AUTH", cause, "AUTH %s", r->password);
        if (rep == NULL)
            goto fail;
        if (!rd_reply_ok(rep)) {
            snprintf(cause, RD_CAUSE_LEN, "AUTH refused: %.60s",
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
            goto fail;
        }
        freeReplyObject(rep);
    }
    if (r->db != 0) {
        rep = rd_handshake_cmd(r, k->c, "SELECT", cause, "SELECT %d", r->db);
        if (rep == NULL)
            goto fail;
        if (!rd_reply_ok(rep)) {
            snprintf(cause, RD_CAUSE_LEN, "SELECT %d refused: %.60s", r->db,
                     rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
            goto fail;
        }
        freeReplyObject(rep);
    }
    /* An evicting Redis would drop live nonces: refuse it (nonce_redis.h). */
    if (!r->assume_noeviction) {
        rep = rd_handshake_cmd(r, k->c, "CONFIG GET", cause, "CONFIG GET maxmemory-policy");
        if (rep == NULL)
            goto fail;
        if (rep->type == REDIS_REPLY_ERROR) {
            snprintf(cause, RD_CAUSE_LEN,
                     "CONFIG GET maxmemory-policy refused (%.40s): cannot check noeviction",
                     rep->str);
            goto fail;
        }
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[1]->type != REDIS_REPLY_STRING) {
            snprintf(cause, RD_CAUSE_LEN, "CONFIG GET maxmemory-policy: unexpected reply");
            goto fail;
        }
        if (strcmp(rep->element[1]->str, "noeviction") != 0) {
            snprintf(cause, RD_CAUSE_LEN,
                     "maxmemory-policy is %.32s, must be noeviction (evictions forget nonces)",
                     rep->element[1]->str);
            goto fail;
        }
        freeReplyObject(rep);
    }
    /* A server (or proxy) that refuses INFO gets relative expiries: the safe choice. */
    rep = rd_handshake_cmd(r, k->c, "INFO", cause, "INFO server");
    if (rep == NULL)
        goto fail;
    *version = rep->type == REDIS_REPLY_STRING ? rd_parse_version(rep->str) : 0;
    freeReplyObject(rep);
    k->pxat = !r->relative_ttl && *version >= 60200;
    rep = rd_handshake_cmd(r, k->c, "SCRIPT LOAD", cause, "SCRIPT LOAD %s", RD_SCRIPT);
    if (rep == NULL)
        goto fail;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        snprintf(cause, RD_CAUSE_LEN, "SCRIPT LOAD refused: %.60s",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        goto fail;
    }
    memcpy(k->sha, rep->str, 40);
    k->sha[40] = '\0';
    freeReplyObject(rep);
    return k;
fail:
    if (rep != NULL)
        freeReplyObject(rep);
    if (k->c != NULL)
        redisFree(k->c);
    free(k);
    return NULL;
}

static void rd_conn_free(struct rd_conn *k)
{
    if (k == NULL)
        return;
    redisFree(k->c);
    free(k);
}

/* A failure: start or lengthen the backoff. The caller retires the pool's
 * generation (every connection open now). Called with r->mu held. */
static void rd_fail_locked(struct rd *r, const char *cause)
{
    r->n_failures++;
    if (r->fails < 32)
        r->fails++;
    uint64_t delay = (uint64_t)r->backoff_min_ms << (r->fails - 1);
    if (delay > r->backoff_max_ms)
        delay = r->backoff_max_ms;
    r->retry_at = rd_clock_ms(CLOCK_MONOTONIC) + (int64_t)delay;
    snprintf(r->cause, sizeof(r->cause), "%s", cause);
}

/* During a backoff (r->fails > 0), the failure a caller that is not the probe
 * gets at once. Called with r->mu held; unlocks it. */
static enum reqsign_status rd_fast_fail_unlock(struct rd *r, struct reqsign_error *err)
{
    int64_t left = r->retry_at - rd_clock_ms(CLOCK_MONOTONIC);
    char cause[RD_CAUSE_LEN];
    memcpy(cause, r->cause, sizeof(cause));
    r->n_fast++;
    pthread_mutex_unlock(&r->mu);
    if (left > 0)
        return reqsign_error_set(err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, rd_src, REQSIGN_NO_OFFSET,
                                 "redis %s: %s; next reconnect in %lld ms", r->where, cause,
                                 (long long)left);
    return reqsign_error_set(err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, rd_src, REQSIGN_NO_OFFSET,
                             "redis %s: %s; reconnecting", r->where, cause);
}

/* What rd_acquire tells the pool's open callback: whether this caller is
 * the probe after a backoff; the callback says it ran (it ends the probe). */
struct rd_take {
    bool probe, tried;
};

/* The pool's open callback: make a connection for rd_acquire (@arg, a
 * struct rd_take). */
static enum reqsign_status rd_pool_open(void *ctx, void *arg, struct reqsign_pool_link **out,
                                        struct reqsign_error *err)
{
    struct rd *r = ctx;
    struct rd_take *take = arg;
    const bool probe = take->probe;
    take->tried = true;
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    if (!probe && r->fails > 0) /* a backoff began while this caller waited for a slot */
        return rd_fast_fail_unlock(r, err);
    pthread_mutex_unlock(&r->mu);

    char cause[RD_CAUSE_LEN];
    unsigned version = 0;
    struct rd_conn *k = rd_connect(r, &version, cause);

    pthread_mutex_lock(&r->mu);
    if (probe)
        r->probing = false;
    if (k == NULL) {
        rd_fail_locked(r, cause);
        reqsign_pool_retire(r->pool);
        pthread_mutex_unlock(&r->mu);
        return reqsign_error_set(err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, rd_src, REQSIGN_NO_OFFSET,
                                 "redis %s: %s", r->where, cause);
    }
    r->n_connects++;
    r->version = version;
    r->last_pxat = k->pxat;
    if (probe)
        r->fails = 0;
    pthread_mutex_unlock(&r->mu);
    *out = &k->link;
    return REQSIGN_OK;
}

static void rd_pool_close(void *ctx, struct reqsign_pool_link *l)
{
    (void)ctx;
    rd_conn_free(REQSIGN_POOL_OF(l, struct rd_conn, link));
}

static const struct reqsign_pool_ops rd_pool_ops = {.open = rd_pool_open, .close = rd_pool_close};

/* Take a connection: an idle one, a new one, or wait for one. Fails at once
 * during a backoff. */
static enum reqsign_status rd_acquire(struct rd *r, struct rd_conn **out, struct reqsign_error *err)
{
    struct rd_take take = {.probe = false, .tried = false};
    *out = NULL;
    pthread_mutex_lock(&r->mu);
    if (r->fails > 0) {
        if (r->probing || r->retry_at - rd_clock_ms(CLOCK_MONOTONIC) > 0)
            return rd_fast_fail_unlock(r, err);
        r->probing = true;
        take.probe = true;
    }
    pthread_mutex_unlock(&r->mu);
    struct reqsign_pool_link *l;
    enum reqsign_status st = reqsign_pool_get(r->pool, take.probe, &take, &l, NULL, err);
    if (st != REQSIGN_OK) {
        if (take.probe && !take.tried) { /* no slot came for the probe: the next caller probes */
            pthread_mutex_lock(&r->mu);
            r->probing = false;
            pthread_mutex_unlock(&r->mu);
        }
        return st;
    }
    *out = REQSIGN_POOL_OF(l, struct rd_conn, link);
    return REQSIGN_OK;
}

/* Give @k back. @how: 0 healthy, 1 drop it (error reply), 2 I/O failure with
 * @cause (drop everything and back off). */
static void rd_release(struct rd *r, struct rd_conn *k, int how, const char *cause)
{
    if (how != 2) {
        reqsign_pool_put(r->pool, &k->link, how == 0 ? REQSIGN_POOL_KEEP : REQSIGN_POOL_DROP);
        return;
    }
    pthread_mutex_lock(&r->mu);
    if (reqsign_pool_put(r->pool, &k->link, REQSIGN_POOL_FAILED))
        rd_fail_locked(r, cause);
    else
        r->n_failures++; /* the outage that retired it was already counted */
    pthread_mutex_unlock(&r->mu);
}

/* The pool of @r, whose configuration is read: at most pool_size connections,
 * all of them may stay idle, a caller waits up to connect + command timeout. */
static struct reqsign_pool *rd_pool_new(struct rd *r)
{
    char name[sizeof(r->where) + 8];
    snprintf(name, sizeof(name), "redis %s", r->where);
    const struct reqsign_pool_config pc = {
        .max_open = r->pool_size,
        .max_idle = r->pool_size,
        .wait_ms = r->connect_ms + r->command_ms,
        .busy = REQSIGN_E_NONCE_STORE_UNAVAILABLE,
        .src = rd_src,
        .name = name,
    };
    return reqsign_pool_new(&pc, &rd_pool_ops, r, NULL);
}

/* ---- the command ---- */

/* What one check sends: the pair's key, the keyid's set and the member. */
struct rd_keys {
    char pair[RD_KEY_MAX], kset[RD_KEY_MAX + 2];
    size_t pair_len, kset_len;
    const char *member; /* the pair's 16 hash bytes, inside pair */
};

static bool rd_hash16(const struct rd *r, const uint8_t *p, size_t n, char out[16])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;
    if (EVP_Digest(p, n, md, &md_len, r->sha256, NULL) != 1 ||
        md_len < REQSIGN_NONCE_REDIS_KEY_HASH_LEN)
        return false;
    memcpy(out, md, REQSIGN_NONCE_REDIS_KEY_HASH_LEN);
    return true;
}

/* pair: <prefix> || first 16 bytes of SHA-256(len(keyid) as 2 bytes BE || keyid || nonce);
 * kset: <prefix> || "k:" || first 16 bytes of SHA-256(len(keyid) as 2 bytes BE || keyid).
 * Unkeyed, so that every verifier of the fleet derives the same keys (see the
 * header); the two have different lengths, so they never collide. */
static bool rd_keys(const struct rd *r, const char *keyid, size_t keyid_len, const char *nonce,
                    size_t nonce_len, struct rd_keys *out)
{
    uint8_t buf[2 + REQSIGN_KEYID_IN_MAX + REQSIGN_NONCE_IN_MAX];

    buf[0] = (uint8_t)(keyid_len >> 8);
    buf[1] = (uint8_t)keyid_len;
    memcpy(buf + 2, keyid, keyid_len);
    memcpy(buf + 2 + keyid_len, nonce, nonce_len);
    memcpy(out->pair, r->prefix, r->prefix_len);
    memcpy(out->kset, r->prefix, r->prefix_len);
    memcpy(out->kset + r->prefix_len, RD_KKEY_TAG, 2);
    out->pair_len = r->prefix_len + REQSIGN_NONCE_REDIS_KEY_HASH_LEN;
    out->kset_len = r->prefix_len + 2 + REQSIGN_NONCE_REDIS_KEY_HASH_LEN;
    out->member = out->pair + r->prefix_len;
    return rd_hash16(r, buf, 2 + keyid_len + nonce_len, out->pair + r->prefix_len) &&
           rd_hash16(r, buf, 2 + keyid_len, out->kset + r->prefix_len + 2);
}

static bool rd_now_ok(int64_t now)
{
    return now >= 0 && now < (int64_t)UINT32_MAX;
}

/* Queue the check of one pair on @k (not sent until a reply is read):
 * EVALSHA, or the whole script with EVAL when @eval (after NOSCRIPT). The
 * pair is live while now <= until, so it expires at the start of second
 * until + 1: (until + 1) * 1000 ms, absolute on the server's clock unless
 * relative expiries are in use or that time is already past for the server;
 * then (until + 1 - now) * 1000 ms from when the script runs. */
static bool rd_append_check(const struct rd *r, const struct rd_conn *k, const struct rd_keys *ks,
                            int64_t now, int64_t until, bool eval)
{
    if (until <= now)
        until = now + 1; /* remembered through the next second, as the in-memory store does */
    if (until - now > (int64_t)UINT32_MAX)
        until = now + (int64_t)UINT32_MAX;
    long long at = k->pxat ? (long long)(until + 1) * 1000 : 0;
    long long rel = (long long)(until + 1 - now) * 1000;
    /* hiredis knows no %zu */
    return redisAppendCommand(
               k->c, "%s %s 2 %b %b %lld %lld %llu %llu %b", eval ? "EVAL" : "EVALSHA",
               eval ? RD_SCRIPT : k->sha, ks->pair, ks->pair_len, ks->kset, ks->kset_len, at, rel,
               (unsigned long long)r->per_key_max, (unsigned long long)r->max_entries, ks->member,
               (size_t)REQSIGN_NONCE_REDIS_KEY_HASH_LEN) == REDIS_OK;
}

/* Read one check's reply. Returns OK, REPLAY, NONCE_KEY_LIMIT,
 * NONCE_STORE_FULL or UNAVAILABLE; sets *how (see rd_release) and @cause on
 * failure, and *noscript (leaving *how alone) if the server lacks the script. */
static enum reqsign_status rd_read_check(const struct rd *r, struct rd_conn *k, int *how,
                                         char *cause, bool *noscript)
{
    void *p = NULL;
    *noscript = false;
    if (redisGetReply(k->c, &p) != REDIS_OK || p == NULL) {
        rd_io_cause(r, k->c, errno, cause);
        *how = 2;
        return REQSIGN_E_NONCE_STORE_UNAVAILABLE;
    }
    redisReply *rep = p;
    enum reqsign_status st = REQSIGN_E_NONCE_STORE_UNAVAILABLE;
    if (rep->type == REDIS_REPLY_INTEGER && rep->integer >= -2 && rep->integer <= 1) {
        static const enum reqsign_status by[] = {
            REQSIGN_E_NONCE_STORE_FULL, REQSIGN_E_NONCE_KEY_LIMIT, REQSIGN_E_REPLAY, REQSIGN_OK};
        st = by[rep->integer + 2];
    } else if (rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
        *noscript = true;
    } else {
        if (rep->type == REDIS_REPLY_ERROR)
            snprintf(cause, RD_CAUSE_LEN, "error reply: %.80s", rep->str);
        else
            snprintf(cause, RD_CAUSE_LEN, "unexpected reply type %d", rep->type);
        if (*how == 0)
            *how = 1;
    }
    freeReplyObject(rep);
    return st;
}

/* The detail of a refusal by the script. */
static enum reqsign_status rd_refusal(const struct rd *r, enum reqsign_status st,
                                      struct reqsign_error *err, const char *item)
{
    switch (st) {
    case REQSIGN_E_REPLAY:
        return reqsign_error_set(err, st, rd_src, REQSIGN_NO_OFFSET,
                                 "%snonce already used with this keyid", item);
    case REQSIGN_E_NONCE_KEY_LIMIT:
        return reqsign_error_set(err, st, rd_src, REQSIGN_NO_OFFSET,
                                 "%skeyid holds its maximum of %zu live nonces", item,
                                 r->per_key_max);
    default:
        return reqsign_error_set(err, st, rd_src, REQSIGN_NO_OFFSET,
                                 "%sstore holds its maximum of %zu keys", item, r->max_entries);
    }
}

static enum reqsign_status rd_check_insert(void *impl, const char *keyid, size_t keyid_len,
                                           const char *nonce, size_t nonce_len, int64_t now,
                                           int64_t until, struct reqsign_error *err)
{
    struct rd *r = impl;
    char cause[RD_CAUSE_LEN] = "";
    struct rd_keys ks;
    struct rd_conn *k;
    struct rd_sigpipe sp;
    int how = 0;
    bool noscript = false;
    enum reqsign_status st = REQSIGN_E_NONCE_STORE_UNAVAILABLE;

    /* keyid and nonce lengths: checked by reqsign_nonce_store_check_insert() */
    if (!rd_now_ok(now))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                                 "now %lld out of range", (long long)now);
    if (!rd_keys(r, keyid, keyid_len, nonce, nonce_len, &ks))
        return reqsign_error_set(err, REQSIGN_E_CRYPTO, rd_src, REQSIGN_NO_OFFSET,
                                 "SHA-256 failed");
    st = rd_acquire(r, &k, err);
    if (st != REQSIGN_OK)
        return st;
    rd_sigpipe_block(&sp);
    /* EVALSHA; the whole script only if the server lost it (SCRIPT FLUSH, failover) */
    for (int eval = 0; eval < 2 && how == 0; eval++) {
        if (!rd_append_check(r, k, &ks, now, until, eval != 0)) {
            snprintf(cause, sizeof(cause), "out of memory");
            how = 1;
            break;
        }
        st = rd_read_check(r, k, &how, cause, &noscript);
        if (!noscript)
            break;
    }
    if (noscript && how == 0) {
        snprintf(cause, sizeof(cause), "NOSCRIPT after EVAL");
        how = 1;
    }
    rd_sigpipe_restore(&sp, how == 2);
    rd_release(r, k, how, cause);
    switch (st) {
    case REQSIGN_OK:
        return REQSIGN_OK;
    case REQSIGN_E_REPLAY:
    case REQSIGN_E_NONCE_KEY_LIMIT:
    case REQSIGN_E_NONCE_STORE_FULL:
        return rd_refusal(r, st, err, "");
    default:
        return reqsign_error_set(err, st, rd_src, REQSIGN_NO_OFFSET, "redis %s: %s", r->where,
                                 cause);
    }
}

/* ---- lifecycle ---- */

static void rd_free(void *impl)
{
    struct rd *r = impl;
    if (r == NULL)
        return;
    reqsign_pool_free(r->pool);
    pthread_mutex_destroy(&r->mu);
    if (r->password != NULL) {
        OPENSSL_cleanse(r->password, strlen(r->password));
        free(r->password);
    }
    free(r->user);
    free(r->host);
    free(r->path);
    EVP_MD_free(r->sha256);
    free(r);
}

static const struct reqsign_nonce_store_ops rd_ops = {
    .check_insert = rd_check_insert,
    .free = rd_free,
};

static char *rd_strndup(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}

/* Parse a decimal in [lo, hi] spanning exactly [p, end). */
static bool rd_parse_uint(const char *p, const char *end, long lo, long hi, int *out)
{
    long v = 0;
    if (p == end || end - p > 6)
        return false;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (*p - '0');
    }
    if (v < lo || v > hi)
        return false;
    *out = (int)v;
    return true;
}

/* A curl_url_get() part, URL-decoded, or NULL (absent or no memory). */
static char *rd_part(CURLU *u, CURLUPart what)
{
    char *v = NULL;
    if (curl_url_get(u, what, &v, CURLU_URLDECODE) != CURLUE_OK)
        return NULL;
    char *copy = strdup(v);
    if (what == CURLUPART_PASSWORD)
        OPENSSL_cleanse(v, strlen(v));
    curl_free(v);
    return copy;
}

/* The URL's query: per_key_max=N, max_entries=N (N >= 1, decimal),
 * assume_noeviction=0|1; they override the options. */
static const char *rd_parse_query(struct rd *r, const char *q)
{
    while (*q != '\0') {
        const char *end = strchr(q, '&'), *eq;
        if (end == NULL)
            end = q + strlen(q);
        eq = memchr(q, '=', (size_t)(end - q));
        if (eq == NULL)
            return "query parameters are NAME=VALUE";
        size_t nl = (size_t)(eq - q);
        unsigned long long val = 0;
        const char *p = eq + 1;
        if (p == end || end - p > 18)
            return "a query parameter's value must be a number";
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return "a query parameter's value must be a number";
            val = val * 10 + (unsigned long long)(*p - '0');
        }
        if (nl == 11 && memcmp(q, "per_key_max", nl) == 0 && val >= 1 && val <= SIZE_MAX)
            r->per_key_max = (size_t)val;
        else if (nl == 11 && memcmp(q, "max_entries", nl) == 0 && val >= 1 && val <= SIZE_MAX)
            r->max_entries = (size_t)val;
        else if (nl == 17 && memcmp(q, "assume_noeviction", nl) == 0 && val <= 1)
            r->assume_noeviction = val == 1;
        else
            return "query parameters: per_key_max=N, max_entries=N (N >= 1), "
                   "assume_noeviction=0|1";
        q = *end == '&' ? end + 1 : end;
    }
    return NULL;
}

/* The redis:// case of rd_parse_url(), on a fresh @u. */
static const char *rd_parse_curl(struct rd *r, CURLU *u, const char *url)
{
    char *v = NULL;
    CURLUcode rc = curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME);
    if (rc == CURLUE_OUT_OF_MEMORY)
        return "out of memory";
    if (rc != CURLUE_OK)
        return "malformed URL (percent-encode an '@', ':' or '/' in the password)";
    r->user = rd_part(u, CURLUPART_USER);
    r->password = rd_part(u, CURLUPART_PASSWORD);
    if (r->user != NULL && r->user[0] == '\0') {
        free(r->user);
        r->user = NULL;
    }
    if (r->password == NULL && (r->user != NULL || strchr(url, '@') != NULL))
        return "user info must be USER:PASSWORD or :PASSWORD";
    if (curl_url_get(u, CURLUPART_FRAGMENT, &v, 0) == CURLUE_OK) {
        curl_free(v);
        return "no fragment allowed";
    }
    if (curl_url_get(u, CURLUPART_QUERY, &v, 0) == CURLUE_OK) {
        const char *bad_q = rd_parse_query(r, v);
        curl_free(v);
        if (bad_q != NULL)
            return bad_q;
    }
    r->port = 6379;
    if (curl_url_get(u, CURLUPART_PORT, &v, 0) == CURLUE_OK) {
        bool ok = rd_parse_uint(v, v + strlen(v), 1, 65535, &r->port);
        curl_free(v);
        if (!ok)
            return "port must be 1..65535";
    }
    r->db = 0;
    if (curl_url_get(u, CURLUPART_PATH, &v, 0) != CURLUE_OK)
        return "out of memory";
    bool db_ok =
        v[0] != '/' || v[1] == '\0' || rd_parse_uint(v + 1, v + strlen(v), 0, RD_DB_MAX, &r->db);
    curl_free(v);
    if (!db_ok)
        return "database must be a number 0..65535";
    if (curl_url_get(u, CURLUPART_HOST, &v, 0) != CURLUE_OK)
        return "no host";
    size_t n = strlen(v);
    const char *h = v;
    if (n >= 2 && v[0] == '[' && v[n - 1] == ']') { /* [IPv6] */
        h++;
        n -= 2;
    }
    r->host = n > 0 ? rd_strndup(h, n) : NULL;
    curl_free(v);
    if (r->host == NULL)
        return n > 0 ? "out of memory" : "no host";
    snprintf(r->where, sizeof(r->where), strchr(r->host, ':') ? "[%.60s]:%d" : "%.60s:%d", r->host,
             r->port);
    return NULL;
}

/* Fill r->host/port/db/user/password or r->path from @url. Returns NULL or
 * what is wrong (never quoting the URL: it may hold a password). */
static const char *rd_parse_url(struct rd *r, const char *url)
{
    if (strncmp(url, "unix:", 5) == 0) {
        const char *path = url + 5, *q = strchr(path, '?');
        size_t n = q != NULL ? (size_t)(q - path) : strlen(path);
        const char *bad_q = q != NULL ? rd_parse_query(r, q + 1) : NULL;
        if (bad_q != NULL)
            return bad_q;
        if (n == 0 || path[0] != '/')
            return "unix: needs an absolute socket path";
        if (n >= 108) /* sizeof(sun_path) */
            return "socket path too long";
        r->path = rd_strndup(path, n);
        if (r->path == NULL)
            return "out of memory";
        snprintf(r->where, sizeof(r->where), "%.*s", (int)n, path);
        return NULL;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return "scheme must be redis:// or unix:";
    /* libcurl's URL parser: the userinfo ends where a URL parser says, so the
     * password is the one reqsign_stores_describe() and others hide */
    CURLU *u = curl_url();
    if (u == NULL)
        return "out of memory";
    const char *bad = rd_parse_curl(r, u, url);
    curl_url_cleanup(u);
    return bad;
}

/* see reqsign/nonce_redis.h */
struct reqsign_nonce_store *reqsign_nonce_store_redis_new(const struct reqsign_nonce_redis_opts *o,
                                                          struct reqsign_error *err)
{
    reqsign_error_clear(err);
    if (o == NULL || o->url == NULL) {
        (void)reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                                "no Redis URL");
        return NULL;
    }
    const char *prefix = o->key_prefix != NULL ? o->key_prefix : REQSIGN_NONCE_REDIS_DEFAULT_PREFIX;
    size_t prefix_len = strlen(prefix);
    if (prefix_len > REQSIGN_NONCE_REDIS_PREFIX_IN_MAX) {
        (void)reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                                "key prefix longer than %d bytes",
                                REQSIGN_NONCE_REDIS_PREFIX_IN_MAX);
        return NULL;
    }
    struct rd *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        (void)reqsign_error_set(err, REQSIGN_E_NOMEM, rd_src, REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    memcpy(r->prefix, prefix, prefix_len);
    r->prefix_len = prefix_len;
    r->pool_size = o->pool_size != 0 ? o->pool_size : REQSIGN_NONCE_REDIS_DEFAULT_POOL;
    r->connect_ms = o->connect_timeout_ms != 0 ? o->connect_timeout_ms
                                               : REQSIGN_NONCE_REDIS_DEFAULT_CONNECT_TIMEOUT_MS;
    r->command_ms = o->command_timeout_ms != 0 ? o->command_timeout_ms
                                               : REQSIGN_NONCE_REDIS_DEFAULT_COMMAND_TIMEOUT_MS;
    r->backoff_min_ms =
        o->backoff_min_ms != 0 ? o->backoff_min_ms : REQSIGN_NONCE_REDIS_DEFAULT_BACKOFF_MIN_MS;
    r->backoff_max_ms =
        o->backoff_max_ms != 0 ? o->backoff_max_ms : REQSIGN_NONCE_REDIS_DEFAULT_BACKOFF_MAX_MS;
    if (r->backoff_max_ms < r->backoff_min_ms)
        r->backoff_max_ms = r->backoff_min_ms;
    r->relative_ttl = o->relative_ttl;
    r->assume_noeviction = o->assume_noeviction;
    r->per_key_max = o->per_key_max != 0 ? o->per_key_max : REQSIGN_NONCE_DEFAULT_PER_KEY_MAX;
    r->max_entries = o->max_entries != 0 ? o->max_entries : REQSIGN_NONCE_DEFAULT_MAX_ENTRIES;

    const char *bad = NULL;
    enum reqsign_status code = REQSIGN_E_INVALID_ARG;
    if (r->pool_size > 1024)
        bad = "pool size above 1024";
    else if ((bad = rd_parse_url(r, o->url)) != NULL)
        code = strcmp(bad, "out of memory") == 0 ? REQSIGN_E_NOMEM : REQSIGN_E_INVALID_ARG;
    else if ((r->pool = rd_pool_new(r)) == NULL)
        bad = "out of memory", code = REQSIGN_E_NOMEM;
    else if ((r->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
        bad = "SHA-256 unavailable", code = REQSIGN_E_CRYPTO;
    struct reqsign_nonce_store *s = bad == NULL ? reqsign_nonce_store_new(&rd_ops, r, NULL) : NULL;
    if (s == NULL) {
        if (bad == NULL)
            bad = "out of memory", code = REQSIGN_E_NOMEM;
        (void)reqsign_error_set(err, code, rd_src, REQSIGN_NO_OFFSET, "Redis store: %s", bad);
        rd_free(r);
    }
    return s;
}

static struct rd *rd_of(struct reqsign_nonce_store *s)
{
    return reqsign_nonce_store_impl(s, rd_check_insert);
}

/* see reqsign/nonce_redis.h */
enum reqsign_status reqsign_nonce_store_redis_ping(struct reqsign_nonce_store *s,
                                                   struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct rd *r = rd_of(s);
    struct rd_conn *k;
    struct rd_sigpipe sp;
    char cause[RD_CAUSE_LEN] = "";
    int how = 0;

    if (r == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                                 "not a Redis nonce store");
    enum reqsign_status st = rd_acquire(r, &k, err);
    if (st != REQSIGN_OK)
        return st;
    rd_sigpipe_block(&sp);
    redisReply *rep = redisCommand(k->c, "PING");
    if (rep == NULL) {
        rd_io_cause(r, k->c, errno, cause);
        how = 2;
    } else if (rep->type != REDIS_REPLY_STATUS || strcmp(rep->str, "PONG") != 0) {
        snprintf(cause, sizeof(cause), "PING: %.80s",
                 rep->type == REDIS_REPLY_ERROR ? rep->str : "unexpected reply");
        how = 1;
    }
    if (rep != NULL)
        freeReplyObject(rep);
    rd_sigpipe_restore(&sp, how == 2);
    rd_release(r, k, how, cause);
    if (how != 0)
        return reqsign_error_set(err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, rd_src, REQSIGN_NO_OFFSET,
                                 "redis %s: %s", r->where, cause);
    return REQSIGN_OK;
}

/* see reqsign/nonce_redis.h */
enum reqsign_status reqsign_nonce_store_redis_check_insert_batch(
    struct reqsign_nonce_store *s, const struct reqsign_nonce_item *items, size_t n,
    enum reqsign_status *results, int64_t now, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct rd *r = rd_of(s);
    struct reqsign_error conn_err;
    char cause[RD_CAUSE_LEN] = "";
    size_t pending = 0;
    int how = 0;

    if (results == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                                 "no results array");
    if (r == NULL || (items == NULL && n > 0) || !rd_now_ok(now)) {
        for (size_t i = 0; i < n; i++)
            results[i] = REQSIGN_E_INVALID_ARG;
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                                 r == NULL         ? "not a Redis nonce store"
                                 : !rd_now_ok(now) ? "now out of range"
                                                   : "no items");
    }
    reqsign_error_clear(&conn_err);
    /* UNAVAILABLE marks an item to send until its reply says otherwise */
    for (size_t i = 0; i < n; i++) {
        const struct reqsign_nonce_item *it = &items[i];
        bool ok = it->keyid.ptr != NULL && it->keyid.len >= 1 &&
                  it->keyid.len <= REQSIGN_KEYID_IN_MAX && it->nonce.ptr != NULL &&
                  it->nonce.len >= 1 && it->nonce.len <= REQSIGN_NONCE_IN_MAX;
        results[i] = ok ? REQSIGN_E_NONCE_STORE_UNAVAILABLE : REQSIGN_E_INVALID_ARG;
        pending += ok;
    }
    if (pending > 0) {
        struct rd_conn *k;
        bool *noscript = calloc(n, sizeof(*noscript));
        if (noscript == NULL)
            (void)reqsign_error_set(&conn_err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, rd_src,
                                    REQSIGN_NO_OFFSET, "out of memory");
        else if (rd_acquire(r, &k, &conn_err) == REQSIGN_OK) {
            struct rd_sigpipe sp;
            rd_sigpipe_block(&sp);
            /* EVALSHA for every item; then, in order, EVAL for those the
             * server answered NOSCRIPT (it lost the script meanwhile) */
            for (int eval = 0; eval < 2 && how == 0; eval++) {
                size_t sent = 0;
                for (size_t i = 0; i < n; i++) {
                    struct rd_keys ks;
                    if (results[i] != REQSIGN_E_NONCE_STORE_UNAVAILABLE || (eval && !noscript[i]))
                        continue;
                    if (!rd_keys(r, items[i].keyid.ptr, items[i].keyid.len, items[i].nonce.ptr,
                                 items[i].nonce.len, &ks) ||
                        !rd_append_check(r, k, &ks, now, items[i].until, eval != 0)) {
                        snprintf(cause, sizeof(cause), "cannot queue the command");
                        how = 1;
                        break;
                    }
                    sent++;
                }
                /* the replies come in the order the commands were queued */
                size_t lost = 0;
                for (size_t i = 0; i < n && sent > 0 && how != 2; i++) {
                    bool ns;
                    if (results[i] != REQSIGN_E_NONCE_STORE_UNAVAILABLE || (eval && !noscript[i]))
                        continue;
                    results[i] = rd_read_check(r, k, &how, cause, &ns);
                    noscript[i] = ns;
                    lost += ns;
                    sent--;
                }
                if (lost == 0)
                    break;
                if (eval) {
                    snprintf(cause, sizeof(cause), "NOSCRIPT after EVAL");
                    if (how == 0)
                        how = 1;
                }
            }
            rd_sigpipe_restore(&sp, how == 2);
            rd_release(r, k, how, cause);
            if (how != 0)
                (void)reqsign_error_set(&conn_err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, rd_src,
                                        REQSIGN_NO_OFFSET, "redis %s: %s", r->where, cause);
        }
        free(noscript);
    }
    for (size_t i = 0; i < n; i++) {
        switch (results[i]) {
        case REQSIGN_OK:
            continue;
        case REQSIGN_E_REPLAY:
        case REQSIGN_E_NONCE_KEY_LIMIT:
        case REQSIGN_E_NONCE_STORE_FULL: {
            char item[32];
            snprintf(item, sizeof(item), "item %zu: ", i);
            return rd_refusal(r, results[i], err, item);
        }
        case REQSIGN_E_INVALID_ARG:
            return reqsign_error_set(err, results[i], rd_src, REQSIGN_NO_OFFSET,
                                     "item %zu: keyid or nonce length out of range", i);
        default:
            return reqsign_error_set(err, results[i], rd_src, REQSIGN_NO_OFFSET, "item %zu: %s", i,
                                     conn_err.message[0] != '\0' ? conn_err.message
                                                                 : "not answered");
        }
    }
    return REQSIGN_OK;
}

/* see reqsign/nonce_redis.h */
void reqsign_nonce_store_redis_stats(struct reqsign_nonce_store *s,
                                     struct reqsign_nonce_redis_stats *out)
{
    struct rd *r = rd_of(s);
    if (out == NULL)
        return;
    memset(out, 0, sizeof(*out));
    if (r == NULL)
        return;
    pthread_mutex_lock(&r->mu);
    out->connects = r->n_connects;
    out->failures = r->n_failures;
    out->fast_fails = r->n_fast;
    reqsign_pool_counts(r->pool, &out->open, NULL);
    if (r->fails > 0) {
        int64_t left = r->retry_at - rd_clock_ms(CLOCK_MONOTONIC);
        out->backoff_ms = left > 0 ? (unsigned)left : 0;
    }
    out->server_version = r->version;
    out->pxat = r->last_pxat;
    pthread_mutex_unlock(&r->mu);
}
