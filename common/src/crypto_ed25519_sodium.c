/* reqsign internal: the libsodium Ed25519 backend (crypto.h, "Ed25519" part).
 *
 * Built when the crypto_backend option is `libsodium`, or `auto` and
 * libsodium was found (common/meson.build defines REQSIGN_CRYPTO_SODIUM);
 * crypto_ed25519_openssl.c is the other choice. Only keygen, public-from-seed,
 * sign and verify live here; randomness, key containers and SHA-2 stay on
 * OpenSSL (crypto_openssl.c) for both backends.
 *
 * Handles own plain byte arrays, never modified after they are made, so one
 * handle serves several threads:
 *   struct reqsign__ed25519_priv: libsodium's 64-byte secret key, seed || pk
 *     (secret); wiped with sodium_memzero() on free and on every error path;
 *   struct reqsign__ed25519_pub: the 32 public key bytes (libsodium 1.0.18 has
 *     no prepared public key; the point is decoded on every verify).
 *
 * sodium_init() runs once, lazily, through pthread_once on the first call
 * that needs libsodium (no constructor). If it fails, every Ed25519 call
 * fails (NULL / -1).
 *
 * Verification rules: crypto_sign_ed25519_verify_detached() rejects S >= L, a
 * non-canonical R, a public key with y >= p, and small-order A and R. These
 * rules are the reference: the OpenSSL backend adds explicit checks to match
 * them (crypto_ed25519_openssl.c, tests/vectors/wycheproof/README.md).
 */
#include "crypto.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include <reqsign/key.h>

#if !defined(REQSIGN_CRYPTO_SODIUM)
#error "crypto_ed25519_sodium.c needs REQSIGN_CRYPTO_SODIUM (set by common/meson.build)"
#endif

#define SK_LEN crypto_sign_ed25519_SECRETKEYBYTES /* seed || pk */

struct reqsign__ed25519_priv {
    unsigned char sk[SK_LEN]; /* secret */
};

struct reqsign__ed25519_pub {
    unsigned char pk[crypto_sign_ed25519_PUBLICKEYBYTES]; /* public */
};

/* The sizes of crypto.h are libsodium's. */
_Static_assert(crypto_sign_ed25519_SEEDBYTES == REQSIGN__ED25519_SEED_LEN, "seed size");
_Static_assert(crypto_sign_ed25519_PUBLICKEYBYTES == REQSIGN__ED25519_PK_LEN, "pk size");
_Static_assert(crypto_sign_ed25519_BYTES == REQSIGN__ED25519_SIG_LEN, "signature size");
_Static_assert(SK_LEN == REQSIGN__ED25519_SEED_LEN + REQSIGN__ED25519_PK_LEN, "sk layout");

/* One readable byte so that a NULL, zero-length message is never passed on. */
static const unsigned char empty_msg[1] = {0};

static pthread_once_t sodium_once = PTHREAD_ONCE_INIT;
static int sodium_ready; /* written once, inside sodium_once */

static void sodium_setup(void)
{
    /* 0: initialised now, 1: already initialised (by the application), -1: failure. */
    sodium_ready = sodium_init() >= 0;
}

/* 1 when libsodium may be used. Thread-safe. */
static int ready(void)
{
    if (pthread_once(&sodium_once, sodium_setup) != 0)
        return 0;
    return sodium_ready;
}

int reqsign__ed25519_init(void)
{
    return ready() ? 0 : -1;
}

/* see reqsign/key.h */
const char *reqsign_crypto_backend(void)
{
    return "libsodium";
}

/* ---- Ed25519 ---- */

/* see crypto.h */
struct reqsign__ed25519_priv *
reqsign__ed25519_priv_new(const uint8_t seed[REQSIGN__ED25519_SEED_LEN],
                          uint8_t pk[REQSIGN__ED25519_PK_LEN])
{
    struct reqsign__ed25519_priv *k;

    if (!ready())
        return NULL;
    k = malloc(sizeof(*k));
    if (k == NULL)
        return NULL;
    /* Writes seed || pk to k->sk and pk to @pk; cannot fail. */
    if (crypto_sign_ed25519_seed_keypair(pk, k->sk, seed) != 0) {
        reqsign__ed25519_priv_free(k);
        return NULL;
    }
    return k;
}

/* see crypto.h */
struct reqsign__ed25519_priv *reqsign__ed25519_keygen(uint8_t pk[REQSIGN__ED25519_PK_LEN])
{
    uint8_t seed[REQSIGN__ED25519_SEED_LEN]; /* secret */
    struct reqsign__ed25519_priv *k = NULL;

    /* Randomness comes from OpenSSL for both backends (one CSPRNG to audit). */
    if (RAND_priv_bytes(seed, (int)sizeof(seed)) != 1) {
        ERR_clear_error();
        sodium_memzero(seed, sizeof(seed));
        return NULL;
    }
    k = reqsign__ed25519_priv_new(seed, pk);
    sodium_memzero(seed, sizeof(seed));
    return k;
}

/* see crypto.h */
int reqsign__ed25519_priv_seed(const struct reqsign__ed25519_priv *k,
                               uint8_t seed[REQSIGN__ED25519_SEED_LEN])
{
    if (k == NULL)
        return -1;
    /* crypto_sign_ed25519_sk_to_seed(): the first 32 bytes of sk. */
    if (crypto_sign_ed25519_sk_to_seed(seed, k->sk) != 0) {
        sodium_memzero(seed, REQSIGN__ED25519_SEED_LEN);
        return -1;
    }
    return 0;
}

/* see crypto.h */
void reqsign__ed25519_priv_free(struct reqsign__ed25519_priv *k)
{
    if (k == NULL)
        return;
    sodium_memzero(k, sizeof(*k));
    free(k);
}

/* see crypto.h */
int reqsign__ed25519_public_from_seed(const uint8_t seed[REQSIGN__ED25519_SEED_LEN],
                                      uint8_t pk[REQSIGN__ED25519_PK_LEN])
{
    unsigned char sk[SK_LEN]; /* secret */
    int rc;

    if (!ready())
        return -1;
    rc = crypto_sign_ed25519_seed_keypair(pk, sk, seed) == 0 ? 0 : -1;
    sodium_memzero(sk, sizeof(sk));
    return rc;
}

/* see crypto.h */
int reqsign__ed25519_sign(const struct reqsign__ed25519_priv *k, const uint8_t *msg, size_t len,
                          uint8_t sig[REQSIGN__ED25519_SIG_LEN])
{
    unsigned long long siglen = 0;

    if (msg == NULL)
        msg = empty_msg; /* len is 0 */
    /* crypto_sign_ed25519_detached() wipes its own expanded key and nonce. */
    if (k == NULL || !ready() ||
        crypto_sign_ed25519_detached(sig, &siglen, msg, (unsigned long long)len, k->sk) != 0 ||
        siglen != REQSIGN__ED25519_SIG_LEN) {
        memset(sig, 0, REQSIGN__ED25519_SIG_LEN);
        return -1;
    }
    return 0;
}

/* see crypto.h */
struct reqsign__ed25519_pub *reqsign__ed25519_pub_new(const uint8_t pk[REQSIGN__ED25519_PK_LEN])
{
    /* Like EVP_PKEY_new_raw_public_key(): any 32 bytes make a handle; a key
     * that is not a valid point fails at verification. */
    struct reqsign__ed25519_pub *p = malloc(sizeof(*p));
    if (p == NULL)
        return NULL;
    memcpy(p->pk, pk, sizeof(p->pk));
    return p;
}

/* see crypto.h */
void reqsign__ed25519_pub_free(struct reqsign__ed25519_pub *p)
{
    free(p);
}

/* see crypto.h */
int reqsign__ed25519_verify(const uint8_t pk[REQSIGN__ED25519_PK_LEN],
                            const uint8_t sig[REQSIGN__ED25519_SIG_LEN], const uint8_t *msg,
                            size_t len)
{
    if (!ready())
        return -1;
    if (msg == NULL)
        msg = empty_msg; /* len is 0 */
    /* 0 / -1; rejects S >= L, non-canonical R and A, small-order R and A. */
    return crypto_sign_ed25519_verify_detached(sig, msg, (unsigned long long)len, pk) == 0 ? 0 : -1;
}

/* see crypto.h */
int reqsign__ed25519_verify_pub(const struct reqsign__ed25519_pub *p,
                                const uint8_t sig[REQSIGN__ED25519_SIG_LEN], const uint8_t *msg,
                                size_t len)
{
    if (p == NULL)
        return -1;
    return reqsign__ed25519_verify(p->pk, sig, msg, len);
}
