/* reqsign internal: per-thread buffered nonce randomness (nonce_source.h). */
#include "nonce_source.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <reqsign/key.h>

#define BUF_LEN 1024 /* 64 nonces per RAND_bytes() call */

_Static_assert(BUF_LEN % REQSIGN__NONCE_RAW_LEN == 0, "whole nonces per buffer");

static _Atomic unsigned fork_generation = 1;
static pthread_once_t atfork_once = PTHREAD_ONCE_INIT;
static int atfork_ok;

static void on_fork_child(void)
{
    atomic_fetch_add_explicit(&fork_generation, 1, memory_order_relaxed);
}

static void register_atfork(void)
{
    atfork_ok = pthread_atfork(NULL, NULL, on_fork_child) == 0;
}

static _Thread_local struct {
    unsigned generation; /* 0: never filled */
    size_t avail;        /* unused bytes at the end of buf */
    uint8_t buf[BUF_LEN];
} tl;

/* see nonce_source.h */
int reqsign__nonce_bytes(uint8_t out[REQSIGN__NONCE_RAW_LEN])
{
    if (pthread_once(&atfork_once, register_atfork) != 0 || !atfork_ok) {
        /* no fork protection for a buffer: one CSPRNG call per nonce */
        return reqsign_random_bytes(out, REQSIGN__NONCE_RAW_LEN, NULL) == REQSIGN_OK ? 0 : -1;
    }
    unsigned gen = atomic_load_explicit(&fork_generation, memory_order_relaxed);
    if (tl.generation != gen || tl.avail < REQSIGN__NONCE_RAW_LEN) {
        tl.avail = 0;
        tl.generation = 0;
        if (reqsign_random_bytes(tl.buf, sizeof(tl.buf), NULL) != REQSIGN_OK) {
            reqsign_memzero(tl.buf, sizeof(tl.buf));
            return -1;
        }
        tl.avail = sizeof(tl.buf);
        tl.generation = gen;
    }
    uint8_t *p = tl.buf + (sizeof(tl.buf) - tl.avail);
    memcpy(out, p, REQSIGN__NONCE_RAW_LEN);
    reqsign_memzero(p, REQSIGN__NONCE_RAW_LEN); /* handed out once */
    tl.avail -= REQSIGN__NONCE_RAW_LEN;
    return 0;
}
