/* reqsign: the Redis nonce store (see reqsign/nonce_redis.h for the contract).
 *
 * Pool. A mutex guards a stack of idle connections and the count of open ones
 * (idle, in use, or being made). A caller pops an idle connection, or makes
 * one if fewer than pool_size are open, or waits on a condition variable (at
 * most connect + command timeout) for one to come back. Connecting happens
 * outside the lock.
 *
 * Failure. An I/O failure (timeout, refused, closed) on any connection bumps
 * the pool's generation, frees every idle connection (they most likely point
 * at the same dead server) and starts a backoff: no connection attempt before
 * retry_at. Connections of an older generation are freed when given back.
 * During the backoff callers fail at once; after it, one caller at a time
 * (the probe) connects; its success clears the backoff, its failure doubles
 * it. An error reply (OOM, READONLY, ...) drops only that connection.
 *
 * Each connection remembers, from its handshake, whether the server has PXAT
 * (INFO server: redis_version >= 6.2) and the server clock's offset from ours
 * (TIME), used to never send a PXAT that is already past for the server.
 */
#include <reqsign/nonce_redis.h>

#include <stdlib.h>
#include <string.h>

#include "nonce_internal.h"

static const char rd_src[] = "nonce store";

#if !defined(REQSIGN_HAVE_HIREDIS)

/* see reqsign/nonce_redis.h */
struct reqsign_nonce_store *reqsign_nonce_store_redis_new(const struct reqsign_nonce_redis_opts *o,
                                                          struct reqsign_error *err)
{
    (void)o;
    (void)reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                            "built without Redis support");
    return NULL;
}

/* see reqsign/nonce_redis.h */
enum reqsign_status reqsign_nonce_store_redis_ping(struct reqsign_nonce_store *s,
                                                   struct reqsign_error *err)
{
    return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                             "built without Redis support");
}

/* see reqsign/nonce_redis.h */
enum reqsign_status reqsign_nonce_store_redis_check_insert_batch(
    struct reqsign_nonce_store *s, const struct reqsign_nonce_item *items, size_t n,
    enum reqsign_status *results, int64_t now, struct reqsign_error *err)
{
    for (size_t i = 0; results != NULL && i < n; i++)
        results[i] = REQSIGN_E_INVALID_ARG;
    return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                             "built without Redis support");
}

/* see reqsign/nonce_redis.h */
void reqsign_nonce_store_redis_stats(struct reqsign_nonce_store *s,
                                     struct reqsign_nonce_redis_stats *out)
{
    if (out != NULL)
        memset(out, 0, sizeof(*out));
}

#else /* REQSIGN_HAVE_HIREDIS */

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

#define RD_KEY_MAX (REQSIGN_NONCE_REDIS_PREFIX_MAX + REQSIGN_NONCE_REDIS_KEY_HASH_LEN)
#define RD_DB_MAX 65535
#define RD_CAUSE_LEN 112

struct rd_conn {
    redisContext *c;
    uint64_t gen;      /* the pool generation it was made in */
    int64_t offset_ms; /* server clock minus ours, at connect */
    bool pxat;         /* the server has SET ... PXAT and relative_ttl is off */
};

struct rd {
    /* configuration; read-only after rd_new */
    char *host;     /* TCP: host name or address; NULL for a Unix socket */
    char *path;     /* Unix socket path; NULL for TCP */
    char *user;     /* AUTH user, or NULL */
    char *password; /* AUTH password, or NULL; wiped on free */
    int port, db;
    char where[80]; /* "HOST:PORT" or the socket path, for messages */
    char prefix[REQSIGN_NONCE_REDIS_PREFIX_MAX];
    size_t prefix_len, pool_size;
    unsigned connect_ms, command_ms, backoff_min_ms, backoff_max_ms;
    bool relative_ttl;
    EVP_MD *sha256;

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* a connection came back or the pool failed */
    struct rd_conn **idle;
    size_t nidle, open;
    uint64_t gen;
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

/* Connect and run the handshake (AUTH, SELECT, INFO server, TIME). Returns
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
    /* A server (or proxy) that refuses INFO or TIME gets PX: the safe choice. */
    rep = rd_handshake_cmd(r, k->c, "INFO", cause, "INFO server");
    if (rep == NULL)
        goto fail;
    *version = rep->type == REDIS_REPLY_STRING ? rd_parse_version(rep->str) : 0;
    freeReplyObject(rep);
    k->pxat = !r->relative_ttl && *version >= 60200;
    if (k->pxat) {
        int64_t t0 = rd_clock_ms(CLOCK_REALTIME);
        rep = rd_handshake_cmd(r, k->c, "TIME", cause, "TIME");
        if (rep == NULL)
            goto fail;
        int64_t t1 = rd_clock_ms(CLOCK_REALTIME);
        if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2 &&
            rep->element[0]->type == REDIS_REPLY_STRING &&
            rep->element[1]->type == REDIS_REPLY_STRING) {
            int64_t server = strtoll(rep->element[0]->str, NULL, 10) * 1000 +
                             strtoll(rep->element[1]->str, NULL, 10) / 1000;
            k->offset_ms = server - (t0 + t1) / 2;
        } else {
            k->pxat = false;
        }
        freeReplyObject(rep);
    }
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

/* A failure: start or lengthen the backoff, retire every connection open now.
 * Called with r->mu held. */
static void rd_fail_locked(struct rd *r, const char *cause)
{
    r->n_failures++;
    if (r->fails < 32)
        r->fails++;
    uint64_t delay = (uint64_t)r->backoff_min_ms << (r->fails - 1);
    if (delay > r->backoff_max_ms)
        delay = r->backoff_max_ms;
    r->retry_at = rd_clock_ms(CLOCK_MONOTONIC) + (int64_t)delay;
    r->gen++;
    for (size_t i = 0; i < r->nidle; i++)
        rd_conn_free(r->idle[i]);
    r->open -= r->nidle;
    r->nidle = 0;
    snprintf(r->cause, sizeof(r->cause), "%s", cause);
    pthread_cond_broadcast(&r->cv);
}

/* Make a connection for a caller that already counted it in r->open. */
static enum reqsign_status rd_open(struct rd *r, uint64_t gen, bool probe, struct rd_conn **out,
                                   struct reqsign_error *err)
{
    char cause[RD_CAUSE_LEN];
    unsigned version = 0;
    struct rd_conn *k = rd_connect(r, &version, cause);

    pthread_mutex_lock(&r->mu);
    if (probe)
        r->probing = false;
    if (k == NULL) {
        r->open--;
        rd_fail_locked(r, cause);
        pthread_mutex_unlock(&r->mu);
        return reqsign_error_set(err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, rd_src, REQSIGN_NO_OFFSET,
                                 "redis %s: %s", r->where, cause);
    }
    k->gen = gen;
    r->n_connects++;
    r->version = version;
    r->last_pxat = k->pxat;
    if (probe)
        r->fails = 0;
    pthread_mutex_unlock(&r->mu);
    *out = k;
    return REQSIGN_OK;
}

/* Take a connection: an idle one, a new one, or wait for one. Fails at once
 * during a backoff. */
static enum reqsign_status rd_acquire(struct rd *r, struct rd_conn **out, struct reqsign_error *err)
{
    int64_t wait_until = rd_clock_ms(CLOCK_MONOTONIC) + r->connect_ms + r->command_ms;

    pthread_mutex_lock(&r->mu);
    for (;;) {
        if (r->fails > 0) {
            int64_t left = r->retry_at - rd_clock_ms(CLOCK_MONOTONIC);
            if (left > 0 || r->probing) {
                char cause[RD_CAUSE_LEN];
                memcpy(cause, r->cause, sizeof(cause));
                r->n_fast++;
                pthread_mutex_unlock(&r->mu);
                if (left > 0)
                    return reqsign_error_set(err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, rd_src,
                                             REQSIGN_NO_OFFSET,
                                             "redis %s: %s; next reconnect in %lld ms", r->where,
                                             cause, (long long)left);
                return reqsign_error_set(err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, rd_src,
                                         REQSIGN_NO_OFFSET, "redis %s: %s; reconnecting", r->where,
                                         cause);
            }
            r->probing = true;
            r->open++;
            uint64_t gen = r->gen;
            pthread_mutex_unlock(&r->mu);
            return rd_open(r, gen, true, out, err);
        }
        if (r->nidle > 0) {
            *out = r->idle[--r->nidle];
            pthread_mutex_unlock(&r->mu);
            return REQSIGN_OK;
        }
        if (r->open < r->pool_size) {
            r->open++;
            uint64_t gen = r->gen;
            pthread_mutex_unlock(&r->mu);
            return rd_open(r, gen, false, out, err);
        }
        int64_t left = wait_until - rd_clock_ms(CLOCK_MONOTONIC);
        if (left <= 0) {
            pthread_mutex_unlock(&r->mu);
            return reqsign_error_set(err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, rd_src,
                                     REQSIGN_NO_OFFSET, "redis %s: all %zu connections busy",
                                     r->where, r->pool_size);
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += (time_t)(left / 1000);
        ts.tv_nsec += (long)(left % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        (void)pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
}

/* Give @k back. @how: 0 healthy, 1 drop it (error reply), 2 I/O failure with
 * @cause (drop everything and back off). */
static void rd_release(struct rd *r, struct rd_conn *k, int how, const char *cause)
{
    pthread_mutex_lock(&r->mu);
    if (how == 0 && k->gen == r->gen && r->nidle < r->pool_size) {
        r->idle[r->nidle++] = k;
        k = NULL;
    } else {
        r->open--;
    }
    if (how == 2 && k != NULL && k->gen != r->gen)
        r->n_failures++; /* the outage that retired it was already counted */
    else if (how == 2)
        rd_fail_locked(r, cause);
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    rd_conn_free(k);
}

/* ---- the command ---- */

/* <prefix> || first 16 bytes of SHA-256(len(keyid) as 2 bytes BE || keyid || nonce).
 * Unkeyed, so that every verifier of the fleet derives the same key (see the header). */
static bool rd_key(const struct rd *r, const char *keyid, size_t keyid_len, const char *nonce,
                   size_t nonce_len, char out[RD_KEY_MAX], size_t *out_len)
{
    uint8_t buf[2 + REQSIGN_KEYID_MAX_LEN + REQSIGN_NONCE_MAX_LEN];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned md_len = 0;

    buf[0] = (uint8_t)(keyid_len >> 8);
    buf[1] = (uint8_t)keyid_len;
    memcpy(buf + 2, keyid, keyid_len);
    memcpy(buf + 2 + keyid_len, nonce, nonce_len);
    if (EVP_Digest(buf, 2 + keyid_len + nonce_len, md, &md_len, r->sha256, NULL) != 1 ||
        md_len < REQSIGN_NONCE_REDIS_KEY_HASH_LEN)
        return false;
    memcpy(out, r->prefix, r->prefix_len);
    memcpy(out + r->prefix_len, md, REQSIGN_NONCE_REDIS_KEY_HASH_LEN);
    *out_len = r->prefix_len + REQSIGN_NONCE_REDIS_KEY_HASH_LEN;
    return true;
}

static bool rd_now_ok(int64_t now)
{
    return now >= 0 && now < (int64_t)UINT32_MAX;
}

/* Queue the SET for one pair on @k (not sent until a reply is read). */
static bool rd_append_set(const struct rd_conn *k, const char *key, size_t key_len, int64_t now,
                          int64_t until)
{
    if (until <= now)
        until = now + 1; /* kept at least a second, as the in-memory store does */
    if (until - now > (int64_t)UINT32_MAX)
        until = now + (int64_t)UINT32_MAX;
    if (k->pxat) {
        long long at = (long long)until * 1000;
        if (at > rd_clock_ms(CLOCK_REALTIME) + k->offset_ms)
            return redisAppendCommand(k->c, "SET %b 1 NX PXAT %lld", key, key_len, at) == REDIS_OK;
        /* already past for the server: PXAT would expire the key on arrival */
    }
    return redisAppendCommand(k->c, "SET %b 1 NX PX %lld", key, key_len,
                              (long long)(until - now) * 1000) == REDIS_OK;
}

/* Read one SET reply. Returns OK, REPLAY or UNAVAILABLE; sets *how (see
 * rd_release) and @cause on failure. */
static enum reqsign_status rd_read_set(const struct rd *r, struct rd_conn *k, int *how, char *cause)
{
    void *p = NULL;
    if (redisGetReply(k->c, &p) != REDIS_OK || p == NULL) {
        rd_io_cause(r, k->c, errno, cause);
        *how = 2;
        return REQSIGN_E_NONCE_STORE_UNAVAILABLE;
    }
    redisReply *rep = p;
    enum reqsign_status st = REQSIGN_E_NONCE_STORE_UNAVAILABLE;
    if (rd_reply_ok(rep)) {
        st = REQSIGN_OK;
    } else if (rep->type == REDIS_REPLY_NIL) {
        st = REQSIGN_E_REPLAY;
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

static enum reqsign_status rd_check_insert(void *impl, const char *keyid, size_t keyid_len,
                                           const char *nonce, size_t nonce_len, int64_t now,
                                           int64_t until, struct reqsign_error *err)
{
    struct rd *r = impl;
    char key[RD_KEY_MAX], cause[RD_CAUSE_LEN] = "";
    size_t key_len;
    struct rd_conn *k;
    struct rd_sigpipe sp;
    int how = 0;
    enum reqsign_status st;

    /* keyid and nonce lengths: checked by reqsign_nonce_store_check_insert() */
    if (!rd_now_ok(now))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                                 "now %lld out of range", (long long)now);
    if (!rd_key(r, keyid, keyid_len, nonce, nonce_len, key, &key_len))
        return reqsign_error_set(err, REQSIGN_E_CRYPTO, rd_src, REQSIGN_NO_OFFSET,
                                 "SHA-256 failed");
    st = rd_acquire(r, &k, err);
    if (st != REQSIGN_OK)
        return st;
    rd_sigpipe_block(&sp);
    if (rd_append_set(k, key, key_len, now, until)) {
        st = rd_read_set(r, k, &how, cause);
    } else {
        snprintf(cause, sizeof(cause), "out of memory");
        st = REQSIGN_E_NONCE_STORE_UNAVAILABLE;
        how = 1;
    }
    rd_sigpipe_restore(&sp, how == 2);
    rd_release(r, k, how, cause);
    switch (st) {
    case REQSIGN_OK:
        return REQSIGN_OK;
    case REQSIGN_E_REPLAY:
        return reqsign_error_set(err, st, rd_src, REQSIGN_NO_OFFSET,
                                 "nonce already used with this keyid");
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
    for (size_t i = 0; i < r->nidle; i++)
        rd_conn_free(r->idle[i]);
    free(r->idle);
    pthread_cond_destroy(&r->cv);
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

/* Fill r->host/port/db/user/password or r->path from @url. Returns NULL or
 * what is wrong (never quoting the URL: it may hold a password). */
static const char *rd_parse_url(struct rd *r, const char *url)
{
    if (strncmp(url, "unix:", 5) == 0) {
        const char *path = url + 5;
        size_t n = strlen(path);
        if (n == 0 || path[0] != '/')
            return "unix: needs an absolute socket path";
        if (n >= 108) /* sizeof(sun_path) */
            return "socket path too long";
        r->path = rd_strndup(path, n);
        if (r->path == NULL)
            return "out of memory";
        snprintf(r->where, sizeof(r->where), "%s", path);
        return NULL;
    }
    if (strncmp(url, "redis://", 8) != 0)
        return "scheme must be redis:// or unix:";
    const char *p = url + 8, *end = p + strlen(p);
    const char *slash = memchr(p, '/', (size_t)(end - p));
    const char *auth_end = slash != NULL ? slash : end;
    const char *at = NULL;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at != NULL) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (colon == NULL)
            return "user info must be USER:PASSWORD or :PASSWORD";
        if (colon > p && (r->user = rd_strndup(p, (size_t)(colon - p))) == NULL)
            return "out of memory";
        if ((r->password = rd_strndup(colon + 1, (size_t)(at - colon - 1))) == NULL)
            return "out of memory";
        p = at + 1;
    }
    const char *host = p, *host_end, *port = NULL;
    if (*p == '[') {
        host = p + 1;
        host_end = memchr(host, ']', (size_t)(auth_end - host));
        if (host_end == NULL)
            return "unterminated [IPv6 address]";
        p = host_end + 1;
    } else {
        host_end = p;
        while (host_end < auth_end && *host_end != ':')
            host_end++;
        p = host_end;
    }
    if (host_end == host)
        return "no host";
    if (p < auth_end) {
        if (*p != ':')
            return "junk after the host";
        port = p + 1;
    }
    r->port = 6379;
    if (port != NULL && !rd_parse_uint(port, auth_end, 1, 65535, &r->port))
        return "port must be 1..65535";
    r->db = 0;
    if (slash != NULL && slash + 1 < end && !rd_parse_uint(slash + 1, end, 0, RD_DB_MAX, &r->db))
        return "database must be a number 0..65535";
    r->host = rd_strndup(host, (size_t)(host_end - host));
    if (r->host == NULL)
        return "out of memory";
    snprintf(r->where, sizeof(r->where),
             *host == ':' || strchr(r->host, ':') ? "[%.60s]:%d" : "%.60s:%d", r->host, r->port);
    return NULL;
}

/* see reqsign/nonce_redis.h */
struct reqsign_nonce_store *reqsign_nonce_store_redis_new(const struct reqsign_nonce_redis_opts *o,
                                                          struct reqsign_error *err)
{
    if (o == NULL || o->url == NULL) {
        (void)reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                                "no Redis URL");
        return NULL;
    }
    const char *prefix = o->key_prefix != NULL ? o->key_prefix : REQSIGN_NONCE_REDIS_DEFAULT_PREFIX;
    size_t prefix_len = strlen(prefix);
    if (prefix_len > REQSIGN_NONCE_REDIS_PREFIX_MAX) {
        (void)reqsign_error_set(err, REQSIGN_E_INVALID_ARG, rd_src, REQSIGN_NO_OFFSET,
                                "key prefix longer than %d bytes", REQSIGN_NONCE_REDIS_PREFIX_MAX);
        return NULL;
    }
    struct rd *r = calloc(1, sizeof(*r));
    if (r == NULL) {
        (void)reqsign_error_set(err, REQSIGN_E_NOMEM, rd_src, REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    pthread_mutex_init(&r->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
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

    const char *bad = NULL;
    enum reqsign_status code = REQSIGN_E_INVALID_ARG;
    if (r->pool_size > 1024)
        bad = "pool size above 1024";
    else if ((bad = rd_parse_url(r, o->url)) != NULL)
        code = strcmp(bad, "out of memory") == 0 ? REQSIGN_E_NOMEM : REQSIGN_E_INVALID_ARG;
    else if ((r->idle = calloc(r->pool_size, sizeof(*r->idle))) == NULL)
        bad = "out of memory", code = REQSIGN_E_NOMEM;
    else if ((r->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
        bad = "SHA-256 unavailable", code = REQSIGN_E_CRYPTO;
    struct reqsign_nonce_store *s = bad == NULL ? reqsign_nonce_store_new(&rd_ops, r) : NULL;
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
    return reqsign__nonce_store_impl(s, rd_check_insert);
}

/* see reqsign/nonce_redis.h */
enum reqsign_status reqsign_nonce_store_redis_ping(struct reqsign_nonce_store *s,
                                                   struct reqsign_error *err)
{
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
                  it->keyid.len <= REQSIGN_KEYID_MAX_LEN && it->nonce.ptr != NULL &&
                  it->nonce.len >= 1 && it->nonce.len <= REQSIGN_NONCE_MAX_LEN;
        results[i] = ok ? REQSIGN_E_NONCE_STORE_UNAVAILABLE : REQSIGN_E_INVALID_ARG;
        pending += ok;
    }
    if (pending > 0) {
        struct rd_conn *k;
        if (rd_acquire(r, &k, &conn_err) == REQSIGN_OK) {
            struct rd_sigpipe sp;
            size_t sent = 0;
            rd_sigpipe_block(&sp);
            for (size_t i = 0; i < n; i++) {
                char key[RD_KEY_MAX];
                size_t key_len;
                if (results[i] != REQSIGN_E_NONCE_STORE_UNAVAILABLE)
                    continue;
                if (!rd_key(r, items[i].keyid.ptr, items[i].keyid.len, items[i].nonce.ptr,
                            items[i].nonce.len, key, &key_len) ||
                    !rd_append_set(k, key, key_len, now, items[i].until)) {
                    snprintf(cause, sizeof(cause), "cannot queue the command");
                    how = 1;
                    break;
                }
                sent++;
            }
            /* the replies come in the order the commands were queued */
            for (size_t i = 0; i < n && sent > 0 && how != 2; i++) {
                if (results[i] != REQSIGN_E_NONCE_STORE_UNAVAILABLE)
                    continue;
                results[i] = rd_read_set(r, k, &how, cause);
                sent--;
            }
            rd_sigpipe_restore(&sp, how == 2);
            rd_release(r, k, how, cause);
            if (how != 0)
                (void)reqsign_error_set(&conn_err, REQSIGN_E_NONCE_STORE_UNAVAILABLE, rd_src,
                                        REQSIGN_NO_OFFSET, "redis %s: %s", r->where, cause);
        }
    }
    for (size_t i = 0; i < n; i++) {
        switch (results[i]) {
        case REQSIGN_OK:
            continue;
        case REQSIGN_E_REPLAY:
            return reqsign_error_set(err, results[i], rd_src, REQSIGN_NO_OFFSET,
                                     "item %zu: nonce already used with this keyid", i);
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
    out->open = r->open;
    if (r->fails > 0) {
        int64_t left = r->retry_at - rd_clock_ms(CLOCK_MONOTONIC);
        out->backoff_ms = left > 0 ? (unsigned)left : 0;
    }
    out->server_version = r->version;
    out->pxat = r->last_pxat;
    pthread_mutex_unlock(&r->mu);
}

#endif /* REQSIGN_HAVE_HIREDIS */
