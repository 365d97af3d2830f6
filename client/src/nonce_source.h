/* reqsign internal: random bytes for signature nonces, cheaply.
 *
 * OpenSSL 3's RAND_bytes() costs about 0.9 us per call whatever the size up
 * to a few KiB (DRBG generate with its derivation function and locking), which
 * was half the signer's own cost per request. Nonces are public and need only
 * be unique and unpredictable, so each thread draws them from its own buffer
 * of RAND_bytes() output, refilled 1 KiB at a time (64 nonces per call).
 *
 * Each 16-byte draw is wiped from the buffer as it is handed out. A forked
 * child never reuses its parent's buffered bytes: a pthread_atfork() child
 * handler bumps a generation number, and a buffer from an older generation is
 * thrown away before use. (A process made with a raw clone() that skips the
 * atfork handlers is not covered; neither is OpenSSL's own DRBG state then.)
 *
 * Thread-safe: the buffers are thread-local.
 */
#ifndef REQSIGN_CLIENT_NONCE_SOURCE_H
#define REQSIGN_CLIENT_NONCE_SOURCE_H

#include <stdint.h>

#define REQSIGN__NONCE_RAW_LEN 16

/* 0, or -1 if the CSPRNG failed (nothing usable in @out then). */
int reqsign__nonce_bytes(uint8_t out[REQSIGN__NONCE_RAW_LEN]);

#endif
