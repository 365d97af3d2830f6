/* reqsign internal: the one crypto backend interface.
 *
 * Everything the library needs from a crypto library goes through this
 * header. OpenSSL 3 (crypto_openssl.c) implements everything except the
 * "Ed25519" section, which has two backends chosen at build time by the meson
 * option crypto_backend: crypto_ed25519_openssl.c or crypto_ed25519_sodium.c
 * (REQSIGN_CRYPTO_SODIUM). Both verify with the same rules (libsodium 1.0.18's:
 * see tests/vectors/wycheproof/README.md). Hidden symbols, reqsign__ prefix.
 *
 * Conventions: functions return 0 on success and -1 on failure unless they
 * return an enum reqsign_status (those that have several distinct failures).
 * Handles are opaque; a handle never changes after it was made, so one
 * handle may be used by several threads at once (free must not race).
 * Secrets (seeds) are wiped by the backend from every buffer it owns;
 * callers wipe their own copies with reqsign__wipe().
 */
#ifndef REQSIGN_CRYPTO_H
#define REQSIGN_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

#include <reqsign/error.h>

#define REQSIGN__ED25519_PK_LEN 32
#define REQSIGN__ED25519_SEED_LEN 32
#define REQSIGN__ED25519_SIG_LEN 64
#define REQSIGN__SHA256_LEN 32
#define REQSIGN__SHA512_LEN 64

/* ---- utilities ---- */

/* Wipe @len bytes at @p; not optimised away. NULL / 0 are no-ops. */
void reqsign__wipe(void *p, size_t len);
/* Constant-time equality of @len bytes: 1 equal, 0 different. */
int reqsign__memeq_ct(const void *a, const void *b, size_t len);
/* @len bytes from the CSPRNG (any size). 0 / -1. */
int reqsign__random(uint8_t *out, size_t len);

/* ---- Ed25519 ---- */

/* Initialise the backend (reqsign_global_init()). 0 / -1. Thread-safe, idempotent. */
int reqsign__ed25519_init(void);

/* A private key (backend handle: an EVP_PKEY, or libsodium's seed || pk). */
struct reqsign__ed25519_priv;
/* A parsed public key, cached for repeated verification. */
struct reqsign__ed25519_pub;

/* Make a private key from a 32-byte seed and write its public key to @pk.
 * NULL on failure (allocation or backend). */
struct reqsign__ed25519_priv *
reqsign__ed25519_priv_new(const uint8_t seed[REQSIGN__ED25519_SEED_LEN],
                          uint8_t pk[REQSIGN__ED25519_PK_LEN]);
/* A fresh private key from the CSPRNG; its public key to @pk. NULL on failure. */
struct reqsign__ed25519_priv *reqsign__ed25519_keygen(uint8_t pk[REQSIGN__ED25519_PK_LEN]);
/* Copy the 32-byte seed of @k into @seed (the caller wipes it). 0 / -1. */
int reqsign__ed25519_priv_seed(const struct reqsign__ed25519_priv *k,
                               uint8_t seed[REQSIGN__ED25519_SEED_LEN]);
/* Wipe and release; NULL is a no-op. */
void reqsign__ed25519_priv_free(struct reqsign__ed25519_priv *k);
/* Derive the public key of @seed (no handle kept). 0 / -1. */
int reqsign__ed25519_public_from_seed(const uint8_t seed[REQSIGN__ED25519_SEED_LEN],
                                      uint8_t pk[REQSIGN__ED25519_PK_LEN]);

/* Pure Ed25519 (RFC 8032 5.1.6) signature of @msg (@msg may be NULL if @len is 0). 0 / -1;
 * on failure @sig is zeroed. */
int reqsign__ed25519_sign(const struct reqsign__ed25519_priv *k, const uint8_t *msg, size_t len,
                          uint8_t sig[REQSIGN__ED25519_SIG_LEN]);

/* Parse a public key once for repeated verification. NULL on failure. */
struct reqsign__ed25519_pub *reqsign__ed25519_pub_new(const uint8_t pk[REQSIGN__ED25519_PK_LEN]);
void reqsign__ed25519_pub_free(struct reqsign__ed25519_pub *p);
/* Verify with a parsed key: 0 valid, -1 invalid or failure. */
int reqsign__ed25519_verify_pub(const struct reqsign__ed25519_pub *p,
                                const uint8_t sig[REQSIGN__ED25519_SIG_LEN], const uint8_t *msg,
                                size_t len);
/* Verify with a raw public key: 0 valid, -1 invalid or failure. */
int reqsign__ed25519_verify(const uint8_t pk[REQSIGN__ED25519_PK_LEN],
                            const uint8_t sig[REQSIGN__ED25519_SIG_LEN], const uint8_t *msg,
                            size_t len);

/* ---- key containers (PKCS#8 / SPKI, PEM or DER) ---- */

/* The result of decoding a key container. */
struct reqsign__decoded_key {
    int has_private;                         /* 1: seed is set (secret: wipe it) */
    uint8_t seed[REQSIGN__ED25519_SEED_LEN]; /* secret */
    uint8_t pk[REQSIGN__ED25519_PK_LEN];     /* public */
};

/**
 * reqsign__key_decode_pem() / reqsign__key_decode_der() - decode the first PEM
 * block ("PRIVATE KEY" PKCS#8 or "PUBLIC KEY" SPKI) or a whole DER blob
 * (PKCS#8 or SPKI) holding an Ed25519 key. On failure @out is wiped.
 * Return: REQSIGN_OK, REQSIGN_E_KEY_FORMAT, REQSIGN_E_KEY_TYPE (a valid key of
 * another type: RSA, EC, X25519, ...), REQSIGN_E_NOMEM; @err gets the detail
 * with source "key" (never key bytes).
 */
enum reqsign_status reqsign__key_decode_pem(const uint8_t *data, size_t len,
                                            struct reqsign__decoded_key *out,
                                            struct reqsign_error *err);
enum reqsign_status reqsign__key_decode_der(const uint8_t *data, size_t len,
                                            struct reqsign__decoded_key *out,
                                            struct reqsign_error *err);

/* ---- SHA-2 ---- */

enum reqsign__hash_alg {
    REQSIGN__SHA256 = 1,
    REQSIGN__SHA512 = 2,
};

/* One-shot digests (@msg may be NULL if @len is 0). 0 / -1. */
int reqsign__sha256(const void *msg, size_t len, uint8_t out[REQSIGN__SHA256_LEN]);
int reqsign__sha512(const void *msg, size_t len, uint8_t out[REQSIGN__SHA512_LEN]);

/* Streaming, in caller storage (struct reqsign_digest's state[]): @state is
 * REQSIGN__HASH_STATE_SIZE bytes, 8-aligned. The low-level path (the default)
 * keeps the whole hash state there and allocates nothing; the EVP path
 * (-Ddigest_api=evp) makes an EVP_MD_CTX per start and keeps it in *@evp.
 * start / update / final return 0 / -1; final writes the digest (32 or 64
 * bytes) and leaves the state unusable except for release. release frees
 * what start made (nothing on the low-level path) and sets *@evp to NULL. */
#define REQSIGN__HASH_STATE_SIZE 240
int reqsign__hash_start(void *state, void **evp, enum reqsign__hash_alg alg);
int reqsign__hash_update(void *state, void *evp, const void *data, size_t len);
int reqsign__hash_final(void *state, void *evp, uint8_t *out);
void reqsign__hash_release(void **evp);
/* "openssl-lowlevel" or "openssl-evp": how SHA-2 is computed (crypto_openssl.c). */
const char *reqsign__hash_api(void);

#endif
