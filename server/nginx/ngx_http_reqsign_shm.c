/* ngx_http_reqsign_module: the `shared:NAME:SIZE` nonce store.
 *
 * One zone of nginx shared memory (a slab pool) holds, under the pool's
 * mutex, so that every worker process sees one window:
 *   - a red-black tree of entries keyed by a 128-bit SipHash-2-4 of
 *     (keyid, nonce) under a random key made when the zone is created (the
 *     node key is the first 64 bits, ties broken by the second 64): exact,
 *     two pairs are confused with probability 2^-128, and that refuses;
 *   - a queue of the entries in insertion order, from whose head dead
 *     entries are reclaimed;
 *   - a tree of per-keyid counters (64-bit keyed hash of the keyid) for the
 *     per-key cap.
 *
 * Expiry (spec/PROTOCOL.md section 6): an entry is live while now <= until.
 * A dead entry is reclaimed one second after it died (until + 1 < now), so a
 * worker that read the clock just before another still finds what the other
 * already calls dead; until then it counts towards the bounds, which can only
 * refuse early. A check that finds its pair dead but not yet reclaimed takes
 * the entry over.
 *
 * Bounded and fail-closed: when the slab pool has no room left (after
 * reclaiming every dead entry) the answer is nonce_store_full (503); a live
 * entry is never evicted. Per-key cap: nonce_key_limit (429).
 *
 * Reload: nginx hands an unchanged zone (same NAME, same SIZE) to the new
 * configuration; init_zone then keeps the tree, the queue and the hash keys,
 * so a reload forgets nothing.
 */
#include "ngx_http_reqsign.h"

#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/limits.h>

#include "siphash.h"

typedef struct ngx_http_reqsign_kc_s ngx_http_reqsign_kc_t;

typedef struct {
    ngx_rbtree_node_t node; /* first: key = the pair hash's first 64 bits */
    ngx_queue_t queue;
    uint64_t h1; /* the pair hash's second 64 bits */
    ngx_http_reqsign_kc_t *kc;
    int64_t until;
} ngx_http_reqsign_entry_t;

struct ngx_http_reqsign_kc_s {
    ngx_rbtree_node_t node; /* first: key = 64-bit hash of the keyid */
    ngx_uint_t count;       /* entries held for this keyid (live or not yet reclaimed) */
};

typedef struct {
    ngx_rbtree_t entries;
    ngx_rbtree_node_t entries_sentinel;
    ngx_rbtree_t keys;
    ngx_rbtree_node_t keys_sentinel;
    ngx_queue_t queue;
    ngx_uint_t count;
    uint8_t pair_key[REQSIGN__SIPHASH_KEY_LEN];
    uint8_t keyid_key[REQSIGN__SIPHASH_KEY_LEN];
} ngx_http_reqsign_shm_t;

struct ngx_http_reqsign_shm_ctx_s {
    ngx_http_reqsign_shm_t *sh;
    ngx_slab_pool_t *shpool;
    ngx_uint_t per_key_max;
    ngx_shm_zone_t *zone;
};

static void ngx_http_reqsign_entry_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
                                          ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t **p;

    for (;;) {
        if (node->key != temp->key) {
            p = node->key < temp->key ? &temp->left : &temp->right;
        } else {
            p = ((ngx_http_reqsign_entry_t *)node)->h1 < ((ngx_http_reqsign_entry_t *)temp)->h1
                    ? &temp->left
                    : &temp->right;
        }
        if (*p == sentinel) {
            break;
        }
        temp = *p;
    }
    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}

static ngx_http_reqsign_entry_t *ngx_http_reqsign_entry_find(ngx_http_reqsign_shm_t *sh,
                                                             const uint64_t h[2])
{
    ngx_rbtree_node_t *node = sh->entries.root, *sentinel = sh->entries.sentinel;

    while (node != sentinel) {
        if (h[0] != node->key) {
            node = h[0] < node->key ? node->left : node->right;
            continue;
        }
        ngx_http_reqsign_entry_t *e = (ngx_http_reqsign_entry_t *)node;
        if (h[1] == e->h1) {
            return e;
        }
        node = h[1] < e->h1 ? node->left : node->right;
    }
    return NULL;
}

static ngx_http_reqsign_kc_t *ngx_http_reqsign_kc_find(ngx_http_reqsign_shm_t *sh, uint64_t kh)
{
    ngx_rbtree_node_t *node = sh->keys.root, *sentinel = sh->keys.sentinel;

    while (node != sentinel) {
        if (kh == node->key) {
            return (ngx_http_reqsign_kc_t *)node;
        }
        node = kh < node->key ? node->left : node->right;
    }
    return NULL;
}

static void ngx_http_reqsign_reclaim(ngx_http_reqsign_shm_ctx_t *ctx, ngx_http_reqsign_entry_t *e)
{
    ngx_http_reqsign_shm_t *sh = ctx->sh;
    ngx_http_reqsign_kc_t *kc = e->kc;

    ngx_rbtree_delete(&sh->entries, &e->node);
    ngx_queue_remove(&e->queue);
    if (--kc->count == 0) {
        ngx_rbtree_delete(&sh->keys, &kc->node);
        ngx_slab_free_locked(ctx->shpool, kc);
    }
    ngx_slab_free_locked(ctx->shpool, e);
    sh->count--;
}

/* Reclaim the dead entries at the head of the queue (@all: in the whole queue). */
static void ngx_http_reqsign_expire(ngx_http_reqsign_shm_ctx_t *ctx, int64_t now, int all)
{
    ngx_queue_t *q, *next;

    for (q = ngx_queue_head(&ctx->sh->queue); q != ngx_queue_sentinel(&ctx->sh->queue); q = next) {
        next = ngx_queue_next(q);
        ngx_http_reqsign_entry_t *e = ngx_queue_data(q, ngx_http_reqsign_entry_t, queue);
        if (e->until + 1 < now) {
            ngx_http_reqsign_reclaim(ctx, e);
        } else if (!all) {
            break;
        }
    }
}

static enum reqsign_status ngx_http_reqsign_shm_check_locked(ngx_http_reqsign_shm_ctx_t *ctx,
                                                             const uint64_t h[2], uint64_t kh,
                                                             int64_t now, int64_t until,
                                                             struct reqsign_error *err)
{
    static const char src[] = "nonce store";
    ngx_http_reqsign_shm_t *sh = ctx->sh;
    ngx_http_reqsign_entry_t *e;
    ngx_http_reqsign_kc_t *kc;

    ngx_http_reqsign_expire(ctx, now, 0);

    e = ngx_http_reqsign_entry_find(sh, h);
    if (e != NULL) {
        if (now <= e->until) {
            return reqsign_error_set(err, REQSIGN_E_REPLAY, src, REQSIGN_NO_OFFSET,
                                     "nonce already used with this keyid");
        }
        /* dead, not yet reclaimed: take it over (it is still counted for its key) */
        e->until = until;
        ngx_queue_remove(&e->queue);
        ngx_queue_insert_tail(&sh->queue, &e->queue);
        return REQSIGN_OK;
    }

    kc = ngx_http_reqsign_kc_find(sh, kh);
    if (kc != NULL && kc->count >= ctx->per_key_max) {
        ngx_http_reqsign_expire(ctx, now, 1);
        kc = ngx_http_reqsign_kc_find(sh, kh);
        if (kc != NULL && kc->count >= ctx->per_key_max) {
            return reqsign_error_set(err, REQSIGN_E_NONCE_KEY_LIMIT, src, REQSIGN_NO_OFFSET,
                                     "%lu live nonces for this keyid (the cap)",
                                     (unsigned long)ctx->per_key_max);
        }
    }

    e = ngx_slab_alloc_locked(ctx->shpool, sizeof(*e));
    if (e == NULL) {
        ngx_http_reqsign_expire(ctx, now, 1); /* the queue may hold dead entries out of order */
        kc = ngx_http_reqsign_kc_find(sh, kh);
        e = ngx_slab_alloc_locked(ctx->shpool, sizeof(*e));
    }
    if (e != NULL && kc == NULL) {
        kc = ngx_slab_alloc_locked(ctx->shpool, sizeof(*kc));
        if (kc == NULL) {
            ngx_slab_free_locked(ctx->shpool, e);
            e = NULL;
        } else {
            kc->node.key = kh;
            kc->count = 0;
            ngx_rbtree_insert(&sh->keys, &kc->node);
        }
    }
    if (e == NULL) {
        return reqsign_error_set(err, REQSIGN_E_NONCE_STORE_FULL, src, REQSIGN_NO_OFFSET,
                                 "shared zone \"%.*s\" full (%lu entries)",
                                 (int)ctx->zone->shm.name.len, ctx->zone->shm.name.data,
                                 (unsigned long)sh->count);
    }
    e->node.key = h[0];
    e->h1 = h[1];
    e->kc = kc;
    e->until = until;
    ngx_rbtree_insert(&sh->entries, &e->node);
    ngx_queue_insert_tail(&sh->queue, &e->queue);
    kc->count++;
    sh->count++;
    return REQSIGN_OK;
}

static enum reqsign_status ngx_http_reqsign_shm_check_insert(void *impl, const char *keyid,
                                                             size_t keyid_len, const char *nonce,
                                                             size_t nonce_len, int64_t now,
                                                             int64_t until,
                                                             struct reqsign_error *err)
{
    ngx_http_reqsign_shm_ctx_t *ctx = impl;
    uint8_t buf[2 + REQSIGN_KEYID_IN_MAX + REQSIGN_NONCE_IN_MAX];
    uint64_t h[2], kh[2];
    enum reqsign_status st;

    /* nonce.c checked the lengths; the keyid's length first keeps the
     * encoding of (keyid, nonce) one-to-one */
    if (keyid_len > REQSIGN_KEYID_IN_MAX || nonce_len > REQSIGN_NONCE_IN_MAX || now < 0) {
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, "nonce store", REQSIGN_NO_OFFSET,
                                 "keyid, nonce or time out of range");
    }
    if (until <= now) {
        until = now + 1;
    }
    buf[0] = (uint8_t)(keyid_len & 0xff);
    buf[1] = (uint8_t)(keyid_len >> 8);
    ngx_memcpy(buf + 2, keyid, keyid_len);
    ngx_memcpy(buf + 2 + keyid_len, nonce, nonce_len);

    /* the hash keys are in the zone and never change once made */
    reqsign__siphash24(ctx->sh->pair_key, buf, 2 + keyid_len + nonce_len, 1, h);
    reqsign__siphash24(ctx->sh->keyid_key, buf, 2 + keyid_len, 0, kh);

    ngx_shmtx_lock(&ctx->shpool->mutex);
    st = ngx_http_reqsign_shm_check_locked(ctx, h, kh[0], now, until, err);
    ngx_shmtx_unlock(&ctx->shpool->mutex);
    return st;
}

static ngx_int_t ngx_http_reqsign_shm_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_reqsign_shm_ctx_t *octx = data, *ctx = shm_zone->data;
    ngx_http_reqsign_shm_t *sh;

    if (octx != NULL) {
        /* a reload with the zone unchanged: keep everything */
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }
    ctx->shpool = (ngx_slab_pool_t *)shm_zone->shm.addr;
    if (shm_zone->shm.exists) {
        ctx->sh = ctx->shpool->data;
        return NGX_OK;
    }
    sh = ngx_slab_alloc(ctx->shpool, sizeof(*sh));
    if (sh == NULL) {
        return NGX_ERROR;
    }
    ngx_rbtree_init(&sh->entries, &sh->entries_sentinel, ngx_http_reqsign_entry_insert);
    ngx_rbtree_init(&sh->keys, &sh->keys_sentinel, ngx_rbtree_insert_value);
    ngx_queue_init(&sh->queue);
    sh->count = 0;
    if (reqsign_random_bytes(sh->pair_key, sizeof(sh->pair_key), NULL) != REQSIGN_OK ||
        reqsign_random_bytes(sh->keyid_key, sizeof(sh->keyid_key), NULL) != REQSIGN_OK) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "reqsign: no random bytes for the nonce zone's hash keys");
        return NGX_ERROR;
    }
    ctx->sh = sh;
    ctx->shpool->data = sh;
    /* a full zone is an answer (503 nonce_store_full), not a log line per request */
    ctx->shpool->log_nomem = 0;
    return NGX_OK;
}

ngx_http_reqsign_shm_ctx_t *ngx_http_reqsign_shm_add(ngx_conf_t *cf, ngx_str_t *name, size_t size,
                                                     ngx_uint_t per_key_max)
{
    ngx_http_reqsign_shm_ctx_t *ctx;
    ngx_shm_zone_t *zone;

    ctx = ngx_pcalloc(cf->pool, sizeof(*ctx));
    if (ctx == NULL) {
        return NULL;
    }
    zone = ngx_shared_memory_add(cf, name, size, &ngx_http_reqsign_module);
    if (zone == NULL) {
        return NULL;
    }
    if (zone->data != NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "reqsign: shared zone \"%V\" is already used",
                           name);
        return NULL;
    }
    ctx->per_key_max = per_key_max;
    ctx->zone = zone;
    zone->init = ngx_http_reqsign_shm_init_zone;
    zone->data = ctx;
    return ctx;
}

struct reqsign_nonce_store *ngx_http_reqsign_shm_store(ngx_http_reqsign_shm_ctx_t *ctx)
{
    static const struct reqsign_nonce_store_ops ops = {ngx_http_reqsign_shm_check_insert, NULL};
    return reqsign_nonce_store_new(&ops, ctx, NULL);
}
