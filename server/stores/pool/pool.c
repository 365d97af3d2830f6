/* reqsign: the connection pool every store uses (see pool.h for the contract).
 *
 * A mutex guards a stack of idle connections, the count of open ones and the
 * generation; a condition variable on CLOCK_MONOTONIC wakes a waiter when a
 * slot or an idle connection comes free. A caller reserves a slot (n_open++)
 * under the lock and makes the connection after unlocking; if that fails the
 * slot is given back. Connections to close are unlinked under the lock and
 * closed after it.
 */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct reqsign_pool {
    struct reqsign_pool_config cfg;
    struct reqsign_pool_ops ops;
    void *ctx;
    char name[96];

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* a slot or an idle connection came free */
    struct reqsign_pool_link *idle;
    size_t n_idle, n_open; /* n_open: in use, idle, or being made */
    uint64_t gen;
};

struct reqsign_pool *reqsign_pool_new(const struct reqsign_pool_config *cfg,
                                      const struct reqsign_pool_ops *ops, void *ctx,
                                      struct reqsign_error *err)
{
    const char *src = cfg != NULL && cfg->src != NULL ? cfg->src : "pool";
    if (cfg == NULL || ops == NULL || ops->open == NULL || ops->close == NULL ||
        cfg->max_open == 0 || cfg->max_idle > cfg->max_open) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, src, REQSIGN_NO_OFFSET,
                          "connection pool: bad limits or callbacks");
        return NULL;
    }
    struct reqsign_pool *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        reqsign_error_set(err, REQSIGN_E_NOMEM, src, REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    p->cfg = *cfg;
    p->cfg.src = src;
    p->ops = *ops;
    p->ctx = ctx;
    snprintf(p->name, sizeof(p->name), "%s", cfg->name != NULL ? cfg->name : "pool");
    pthread_condattr_t ca;
    bool ok = pthread_condattr_init(&ca) == 0;
    if (ok) {
        ok = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) == 0 &&
             pthread_cond_init(&p->cv, &ca) == 0;
        pthread_condattr_destroy(&ca);
    }
    if (ok && pthread_mutex_init(&p->mu, NULL) != 0) {
        pthread_cond_destroy(&p->cv);
        ok = false;
    }
    if (!ok) {
        free(p);
        reqsign_error_set(err, REQSIGN_E_NOMEM, src, REQSIGN_NO_OFFSET,
                          "connection pool: mutex or condition variable");
        return NULL;
    }
    return p;
}

/* Close a chain of connections unlinked from the pool (no lock held). */
static void close_chain(struct reqsign_pool *p, struct reqsign_pool_link *c)
{
    while (c != NULL) {
        struct reqsign_pool_link *next = c->next;
        c->next = NULL;
        p->ops.close(p->ctx, c);
        c = next;
    }
}

void reqsign_pool_free(struct reqsign_pool *p)
{
    if (p == NULL)
        return;
    close_chain(p, p->idle);
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

static void deadline_in(struct timespec *ts, unsigned ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Called with p->mu held: the slot of a connection that is gone. */
static void slot_free_locked(struct reqsign_pool *p)
{
    p->n_open--;
    pthread_cond_signal(&p->cv);
}

enum reqsign_status reqsign_pool_get(struct reqsign_pool *p, bool fresh, void *arg,
                                     struct reqsign_pool_link **out, bool *reused,
                                     struct reqsign_error *err)
{
    *out = NULL;
    if (reused != NULL)
        *reused = false;
    struct timespec deadline;
    deadline_in(&deadline, p->cfg.wait_ms);
    struct reqsign_pool_link *c = NULL;
    uint64_t gen;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (!fresh && p->idle != NULL) {
            c = p->idle;
            p->idle = c->next;
            p->n_idle--;
            break;
        }
        if (p->n_open < p->cfg.max_open) {
            p->n_open++; /* reserve a slot for a new connection */
            break;
        }
        if (fresh && p->idle != NULL) { /* make room: close an idle one */
            struct reqsign_pool_link *old = p->idle;
            p->idle = old->next;
            p->n_idle--;
            p->n_open--;
            pthread_mutex_unlock(&p->mu);
            old->next = NULL;
            p->ops.close(p->ctx, old);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        /* a spurious wakeup past the deadline gets ETIMEDOUT on the next wait */
        if (p->cfg.wait_ms == 0 || pthread_cond_timedwait(&p->cv, &p->mu, &deadline) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->mu);
            return reqsign_error_set(err, p->cfg.busy, p->cfg.src, REQSIGN_NO_OFFSET,
                                     "%s: all %zu connections busy for %u ms", p->name,
                                     p->cfg.max_open, p->cfg.wait_ms);
        }
    }
    gen = p->gen;
    pthread_mutex_unlock(&p->mu);

    if (c != NULL) {
        c->next = NULL;
        if (p->ops.alive == NULL || p->ops.alive(p->ctx, c)) {
            *out = c;
            if (reused != NULL)
                *reused = true;
            return REQSIGN_OK;
        }
        p->ops.close(p->ctx, c); /* its slot is the new connection's */
    }
    c = NULL;
    enum reqsign_status st = p->ops.open(p->ctx, arg, &c, err);
    if (st != REQSIGN_OK || c == NULL) {
        pthread_mutex_lock(&p->mu);
        slot_free_locked(p);
        pthread_mutex_unlock(&p->mu);
        if (st == REQSIGN_OK) /* an open callback that broke its contract */
            st = reqsign_error_set(err, REQSIGN_E_INTERNAL, p->cfg.src, REQSIGN_NO_OFFSET,
                                   "%s: no connection", p->name);
        return st;
    }
    c->next = NULL;
    c->gen = gen;
    *out = c;
    return REQSIGN_OK;
}

/* Called with p->mu held: a new generation; returns the idle chain to close. */
static struct reqsign_pool_link *retire_locked(struct reqsign_pool *p)
{
    struct reqsign_pool_link *chain = p->idle;
    p->gen++;
    p->n_open -= p->n_idle;
    p->n_idle = 0;
    p->idle = NULL;
    pthread_cond_broadcast(&p->cv);
    return chain;
}

bool reqsign_pool_put(struct reqsign_pool *p, struct reqsign_pool_link *c,
                      enum reqsign_pool_put how)
{
    if (c == NULL)
        return false;
    struct reqsign_pool_link *chain = NULL;
    bool retired = false;
    pthread_mutex_lock(&p->mu);
    if (how == REQSIGN_POOL_KEEP && c->gen == p->gen && p->n_idle < p->cfg.max_idle) {
        c->next = p->idle;
        p->idle = c;
        p->n_idle++;
        c = NULL;
        pthread_cond_signal(&p->cv);
    } else {
        if (how == REQSIGN_POOL_FAILED && c->gen == p->gen) {
            chain = retire_locked(p);
            retired = true;
        }
        slot_free_locked(p);
    }
    pthread_mutex_unlock(&p->mu);
    if (c != NULL) {
        c->next = NULL;
        p->ops.close(p->ctx, c);
    }
    close_chain(p, chain);
    return retired;
}

void reqsign_pool_add(struct reqsign_pool *p, struct reqsign_pool_link *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&p->mu);
    p->n_open++;
    c->gen = p->gen;
    pthread_mutex_unlock(&p->mu);
    reqsign_pool_put(p, c, REQSIGN_POOL_KEEP);
}

void reqsign_pool_retire(struct reqsign_pool *p)
{
    pthread_mutex_lock(&p->mu);
    struct reqsign_pool_link *chain = retire_locked(p);
    pthread_mutex_unlock(&p->mu);
    close_chain(p, chain);
}

void reqsign_pool_counts(struct reqsign_pool *p, size_t *open, size_t *idle)
{
    pthread_mutex_lock(&p->mu);
    if (open != NULL)
        *open = p->n_open;
    if (idle != NULL)
        *idle = p->n_idle;
    pthread_mutex_unlock(&p->mu);
}
