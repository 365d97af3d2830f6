/* reqsign: global setup, and the memory and randomness helpers.
 *
 * reqsign_global_init() is the library's only global setup. Call it once at
 * program start, before any thread is made and before any other reqsign
 * function; reqsign_global_cleanup() undoes it at exit. What it sets up: the
 * Ed25519 backend (libsodium's sodium_init(), or OpenSSL), and libcurl
 * (curl_global_init(CURL_GLOBAL_DEFAULT)) when the program links libcurl, as
 * every program that uses reqsign-client or the key directory
 * (reqsign/keydir.h) does. reqsign_keydir_new() calls it too (it is
 * idempotent), but a threaded program should not rely on that: libcurl's
 * global setup is not thread-safe in older versions. A program that
 * initialises libcurl itself may still call it (libcurl counts its
 * initialisations).
 *
 * Thread safety: reqsign_global_init() is thread-safe and idempotent
 * (pthread_once); reqsign_global_cleanup() is not: call it once, when no
 * other thread uses reqsign. The helpers are thread-safe.
 */
#ifndef REQSIGN_UTIL_H
#define REQSIGN_UTIL_H

#include <reqsign/defs.h>
#include <reqsign/error.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * reqsign_global_init() - set up the libraries reqsign uses (see above).
 * Return: REQSIGN_OK (also when already done), REQSIGN_E_CRYPTO (the crypto
 * backend failed to initialise) or REQSIGN_E_HTTP (libcurl did); a failure is
 * kept: later calls return it again.
 * Thread safety: thread-safe. Allocates: what libsodium and libcurl allocate
 * for their own global state.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status reqsign_global_init(void);

/**
 * reqsign_global_cleanup() - release what reqsign_global_init() set up
 * (curl_global_cleanup() when it initialised libcurl). Nothing may use reqsign
 * or libcurl afterwards. Without a successful reqsign_global_init(), a no-op.
 * Thread safety: not thread-safe.
 */
REQSIGN_API void reqsign_global_cleanup(void);

/**
 * reqsign_random_bytes() - @len bytes from the OS CSPRNG.
 * @err: reset on entry; on failure, the reason; may be NULL.
 * Return: REQSIGN_OK, REQSIGN_E_INVALID_ARG, REQSIGN_E_RANDOM.
 * Thread safety: thread-safe. Allocates: nothing.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status reqsign_random_bytes(uint8_t *out, size_t len,
                                                                       struct reqsign_error *err);

/**
 * reqsign_memzero() - wipe @len bytes at @p; never optimised away.
 * Thread safety: safe on distinct @p. Allocates: nothing.
 */
REQSIGN_API void reqsign_memzero(void *p, size_t len);

/**
 * reqsign_memcmp_ct() - compare @len bytes in time that depends on @len only.
 * Return: 0 if equal, -1 if not (as sodium_memcmp() and CRYPTO_memcmp() = 0).
 * Not a lexicographic order, and not a yes/no answer: test it with == 0.
 * Thread safety: thread-safe. Allocates: nothing.
 */
REQSIGN_API REQSIGN_NODISCARD int reqsign_memcmp_ct(const void *a, const void *b, size_t len);

#ifdef __cplusplus
}
#endif
#endif
