/* reqsign: the connection pool every store uses (internal: not installed, not
 * public API; a static library linked into each store library with hidden
 * visibility, so none of these symbols is exported).
 *
 * One behaviour for all:
 *  - at most max_open connections exist at once (in use, idle, or being
 *    made), and at most max_idle of them are kept idle;
 *  - a caller that finds max_open in use waits up to wait_ms, measured on
 *    CLOCK_MONOTONIC (a wall-clock step neither shortens nor stretches it),
 *    for one to come back, then fails with the configured code and a message
 *    naming the limit ("NAME: all N connections busy for W ms");
 *  - an idle connection is checked when taken (ops->alive, if set); a dead
 *    one is closed and a new one made in its slot; a connection given back
 *    broken (REQSIGN_POOL_DROP) is closed;
 *  - generations: reqsign_pool_retire() (or giving back a connection with
 *    REQSIGN_POOL_FAILED) starts a new generation and closes every idle
 *    connection: after a failure they most likely point at the same dead
 *    server. Connections of an older generation still in use are closed when
 *    given back;
 *  - connections are made (ops->open) and closed (ops->close) outside the
 *    pool's lock; the pool never calls back with its lock held.
 *
 * A connection is the store's own struct with a struct reqsign_pool_link
 * inside (REQSIGN_POOL_OF gets the struct back); the pool allocates nothing
 * per connection.
 *
 * Errors: these functions are internal; they do not reset @err (the store's
 * public function did, and an earlier error of the same call stays first).
 *
 * Thread safety: every function but reqsign_pool_new and reqsign_pool_free
 * is thread-safe on one pool. reqsign_pool_free wants every connection given
 * back.
 */
#ifndef REQSIGN_STORES_POOL_H
#define REQSIGN_STORES_POOL_H

#include <reqsign/error.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The pool's part of a connection; the store does not touch it. */
struct reqsign_pool_link {
    struct reqsign_pool_link *next; /* idle list */
    uint64_t gen;                   /* the generation it was made in */
};

/* The struct of type @type whose member @member is the link @l. */
#define REQSIGN_POOL_OF(l, type, member) ((type *)(void *)((char *)(l)-offsetof(type, member)))

struct reqsign_pool_ops {
    /* Make a connection: *@out and REQSIGN_OK, or a status with @err set.
     * @arg: what the caller of reqsign_pool_get passed. Called without the
     * pool's lock. Required. */
    enum reqsign_status (*open)(void *ctx, void *arg, struct reqsign_pool_link **out,
                                struct reqsign_error *err);
    /* Is the idle connection @c still usable? NULL: always. */
    bool (*alive)(void *ctx, struct reqsign_pool_link *c);
    /* Close and free @c. Required. */
    void (*close)(void *ctx, struct reqsign_pool_link *c);
};

struct reqsign_pool_config {
    size_t max_open;          /* >= 1 */
    size_t max_idle;          /* <= max_open */
    unsigned wait_ms;         /* how long a caller waits for a slot; 0: not at all */
    enum reqsign_status busy; /* the code when no slot came within wait_ms */
    const char *src;          /* the error source ("key store", "nonce store") */
    const char *name;         /* names the pool in the busy message; copied */
};

struct reqsign_pool;

/* A pool calling @ops with @ctx, or NULL with @err set (REQSIGN_E_INVALID_ARG,
 * REQSIGN_E_NOMEM). Opens nothing. */
struct reqsign_pool *reqsign_pool_new(const struct reqsign_pool_config *cfg,
                                      const struct reqsign_pool_ops *ops, void *ctx,
                                      struct reqsign_error *err);

/* Close every idle connection and free @p (NULL: nothing). */
void reqsign_pool_free(struct reqsign_pool *p);

/* Take a connection: an idle one (*@reused true, if @reused is not NULL), or
 * a new one made with ops->open(ctx, @arg), waiting up to wait_ms for a slot.
 * @fresh: never an idle one (a retry after a reused connection died); when the
 * pool is full, an idle connection is closed to make room. Returns REQSIGN_OK,
 * cfg->busy (no slot within wait_ms) or what ops->open returned. */
enum reqsign_status reqsign_pool_get(struct reqsign_pool *p, bool fresh, void *arg,
                                     struct reqsign_pool_link **out, bool *reused,
                                     struct reqsign_error *err);

enum reqsign_pool_put {
    REQSIGN_POOL_KEEP,   /* healthy: idle if room and of this generation, else closed */
    REQSIGN_POOL_DROP,   /* broken: closed */
    REQSIGN_POOL_FAILED, /* closed; if of this generation, reqsign_pool_retire() too */
};

/* Give @c back (NULL: nothing). Returns true if this call retired the
 * generation (REQSIGN_POOL_FAILED on a connection of the current one): the
 * first report of a failure, as opposed to an echo of one already handled. */
bool reqsign_pool_put(struct reqsign_pool *p, struct reqsign_pool_link *c,
                      enum reqsign_pool_put how);

/* Hand the pool a connection made outside it (e.g. at store open, where the
 * first connection reports errors differently): counted open and kept idle
 * as REQSIGN_POOL_KEEP would. */
void reqsign_pool_add(struct reqsign_pool *p, struct reqsign_pool_link *c);

/* Start a new generation: close every idle connection now and every one in
 * use when it is given back. */
void reqsign_pool_retire(struct reqsign_pool *p);

/* Connections open (in use, idle or being made) and idle, now. */
void reqsign_pool_counts(struct reqsign_pool *p, size_t *open, size_t *idle);

#endif
