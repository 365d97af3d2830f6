/* reqsign internal: the OpenSSL 3 Ed25519 backend (crypto.h, "Ed25519" part).
 *
 * Built when the crypto_backend option is `openssl` (or `auto` without
 * libsodium); crypto_ed25519_sodium.c is the other choice. Everything else of
 * crypto.h (utilities, key containers, SHA-2) is in crypto_openssl.c and is
 * the same for both backends.
 *
 * Ed25519 goes through one-shot EVP_DigestSign / EVP_DigestVerify with a NULL
 * digest (pure Ed25519). struct reqsign__ed25519_priv is an EVP_PKEY behind an
 * opaque pointer; struct reqsign__ed25519_pub holds an EVP_PKEY and a verdict
 * on the key bytes (see "verification" below: verify is made exactly as strict
 * as libsodium's). Handles are not modified by signing or verifying, so one
 * handle serves several threads. An EVP_MD_CTX is not thread-safe to share:
 * signing makes one per call; verifying with a prepared key reuses one per
 * thread and key (a few per thread, see verify_ctx()), re-initialised for
 * each verify, which saves 7 of the 10 allocations of a fresh context (OpenSSL
 * 3.0's EVP_DigestVerify still makes 3 of its own per call). Every failure
 * clears the thread's OpenSSL error queue.
 */
#include "crypto.h"
#include "crypto_openssl_util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <reqsign/key.h>

#if defined(REQSIGN_CRYPTO_SODIUM)
#error "crypto_ed25519_openssl.c is the OpenSSL backend; REQSIGN_CRYPTO_SODIUM is set"
#endif

/* One readable byte so that a NULL, zero-length message is never passed on. */
static const uint8_t empty_msg[1] = {0};

static EVP_PKEY *priv_pkey(const struct reqsign__ed25519_priv *k)
{
    return (EVP_PKEY *)(uintptr_t)k;
}

/* see reqsign/key.h */
const char *reqsign_crypto_backend(void)
{
    return "openssl";
}

/* ---- Ed25519 ---- */

/* see crypto.h */
struct reqsign__ed25519_priv *
reqsign__ed25519_priv_new(const uint8_t seed[REQSIGN__ED25519_SEED_LEN],
                          uint8_t pk[REQSIGN__ED25519_PK_LEN])
{
    EVP_PKEY *k =
        EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, REQSIGN__ED25519_SEED_LEN);
    if (k == NULL) {
        ERR_clear_error();
        return NULL;
    }
    if (pkey_public(k, pk) != 0) {
        EVP_PKEY_free(k);
        ERR_clear_error();
        return NULL;
    }
    return (struct reqsign__ed25519_priv *)k;
}

/* see crypto.h */
struct reqsign__ed25519_priv *reqsign__ed25519_keygen(uint8_t pk[REQSIGN__ED25519_PK_LEN])
{
    uint8_t seed[REQSIGN__ED25519_SEED_LEN]; /* secret */
    struct reqsign__ed25519_priv *k = NULL;

    if (RAND_priv_bytes(seed, (int)sizeof(seed)) != 1) {
        ERR_clear_error();
        OPENSSL_cleanse(seed, sizeof(seed));
        return NULL;
    }
    k = reqsign__ed25519_priv_new(seed, pk);
    OPENSSL_cleanse(seed, sizeof(seed));
    return k;
}

/* see crypto.h */
int reqsign__ed25519_priv_seed(const struct reqsign__ed25519_priv *k,
                               uint8_t seed[REQSIGN__ED25519_SEED_LEN])
{
    if (k == NULL || pkey_seed(priv_pkey(k), seed) != 0) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* see crypto.h */
void reqsign__ed25519_priv_free(struct reqsign__ed25519_priv *k)
{
    /* EVP_PKEY_free of an ECX key clears the private key (secure_clear_free). */
    EVP_PKEY_free(priv_pkey(k));
}

/* see crypto.h */
int reqsign__ed25519_public_from_seed(const uint8_t seed[REQSIGN__ED25519_SEED_LEN],
                                      uint8_t pk[REQSIGN__ED25519_PK_LEN])
{
    struct reqsign__ed25519_priv *k = reqsign__ed25519_priv_new(seed, pk);
    if (k == NULL)
        return -1;
    reqsign__ed25519_priv_free(k);
    return 0;
}

/* see crypto.h */
int reqsign__ed25519_sign(const struct reqsign__ed25519_priv *k, const uint8_t *msg, size_t len,
                          uint8_t sig[REQSIGN__ED25519_SIG_LEN])
{
    EVP_MD_CTX *ctx = NULL;
    size_t siglen = REQSIGN__ED25519_SIG_LEN;
    int ok = 0;

    if (k == NULL)
        goto done;
    if (msg == NULL)
        msg = empty_msg; /* len is 0 */
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        goto done;
    if (EVP_DigestSignInit(ctx, NULL, NULL, NULL, priv_pkey(k)) != 1)
        goto done;
    if (EVP_DigestSign(ctx, sig, &siglen, msg, len) != 1 || siglen != REQSIGN__ED25519_SIG_LEN)
        goto done;
    ok = 1;
done:
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        memset(sig, 0, REQSIGN__ED25519_SIG_LEN);
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* ---- verification: the same strictness as libsodium 1.0.18 ----
 *
 * libsodium's crypto_sign_ed25519_verify_detached() (the other backend) rejects,
 * before the group equation: S >= L, a small-order R, a public key A whose y is
 * not canonical (y >= p) and a small-order A. OpenSSL 3 (ossl_ed25519_verify)
 * checks S >= L and compares R by its encoding (so a non-canonical R fails), but
 * accepts small-order A and R and the encoding of A = (0, -1) with the sign bit
 * set, which RFC 8032 5.1.3 says must fail to decode. Without the checks below
 * the two backends disagree on 4 of the 15 ed25519-speccheck cases and on
 * crafted small-order signatures (no Wycheproof vector is affected). An honest
 * signer never produces any of these: A = [a]B and R = [r]B lie in the
 * prime-order subgroup and are never the identity for a non-zero scalar.
 * See tests/vectors/wycheproof/README.md. All inputs here are public. */

/* Encodings (y, sign bit cleared) of the 8 points of order 1, 2, 4 and 8, and
 * the non-canonical encodings p and p + 1 of y = 0 and y = 1. The sign bit is
 * ignored in the comparison, so both x and -x are covered. */
static const uint8_t small_order[][32] = {
    /* y = 0: (±sqrt(-1), 0), order 4 */
    {0},
    /* y = 1: the identity, order 1 */
    {0x01},
    /* order 8 */
    {0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4,
     0x89, 0xf2, 0xef, 0x98, 0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6,
     0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53, 0xfc, 0x05},
    /* order 8 */
    {0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b,
     0x76, 0x0d, 0x10, 0x67, 0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39,
     0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac, 0x03, 0x7a},
    /* y = p - 1 = -1: (0, -1), order 2 */
    {0xec, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    /* y = p (non-canonical 0) */
    {0xed, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
    /* y = p + 1 (non-canonical 1) */
    {0xee, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
     0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
};

/* 1 if the point encoding @e is one of small_order[] (sign bit ignored). */
static int has_small_order(const uint8_t e[32])
{
    for (size_t i = 0; i < sizeof(small_order) / sizeof(small_order[0]); i++) {
        if (memcmp(e, small_order[i], 31) == 0 && (e[31] & 0x7f) == small_order[i][31])
            return 1;
    }
    return 0;
}

/* 1 if y (the encoding @e without its sign bit) is below p = 2^255 - 19. */
static int y_is_canonical(const uint8_t e[32])
{
    if ((e[31] & 0x7f) != 0x7f || e[0] < 0xed)
        return 1;
    for (size_t i = 1; i < 31; i++) {
        if (e[i] != 0xff)
            return 1;
    }
    return 0;
}

/* 1 if the public key @pk can never verify under the libsodium rules. */
static int weak_public_key(const uint8_t pk[REQSIGN__ED25519_PK_LEN])
{
    return !y_is_canonical(pk) || has_small_order(pk);
}

/* A parsed public key and the verdict of weak_public_key() on its bytes. */
struct reqsign__ed25519_pub {
    EVP_PKEY *pkey;
    int weak; /* 1: every verification fails */
};

/* see crypto.h */
struct reqsign__ed25519_pub *reqsign__ed25519_pub_new(const uint8_t pk[REQSIGN__ED25519_PK_LEN])
{
    struct reqsign__ed25519_pub *p = malloc(sizeof(*p));

    if (p == NULL)
        return NULL;
    /* Any 32 bytes make a key here (OpenSSL does not decode the point);
     * a weak key is kept and fails at verification, as with libsodium. */
    p->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, REQSIGN__ED25519_PK_LEN);
    if (p->pkey == NULL) {
        ERR_clear_error();
        free(p);
        return NULL;
    }
    p->weak = weak_public_key(pk);
    return p;
}

/* see crypto.h */
void reqsign__ed25519_pub_free(struct reqsign__ed25519_pub *p)
{
    if (p == NULL)
        return;
    EVP_PKEY_free(p->pkey);
    free(p);
}

/* Per-thread verify contexts, each initialised for one prepared key: a
 * context holds a reference to its key, so a key's address is not reused
 * while it is cached. Freed at thread exit (pthread key destructor). */
#define VCTX_SLOTS 4
struct vctx_slot {
    EVP_PKEY *pkey;
    EVP_MD_CTX *ctx;
};
static _Thread_local struct vctx_slot vctx[VCTX_SLOTS];
static _Thread_local unsigned vctx_next, vctx_registered;
static pthread_key_t vctx_key;
static pthread_once_t vctx_once = PTHREAD_ONCE_INIT;

static void vctx_free(void *p) /* at thread exit, on that thread */
{
    struct vctx_slot *s = p;
    vctx_registered = 0;
    for (size_t i = 0; i < VCTX_SLOTS; i++) {
        EVP_MD_CTX_free(s[i].ctx);
        s[i].ctx = NULL;
        s[i].pkey = NULL;
    }
}

static void vctx_key_init(void)
{
    if (pthread_key_create(&vctx_key, vctx_free) != 0)
        vctx_key = (pthread_key_t)-1;
}

/* A context of this thread ready to verify with @k, or NULL. */
static EVP_MD_CTX *verify_ctx(EVP_PKEY *k)
{
    for (size_t i = 0; i < VCTX_SLOTS; i++)
        if (vctx[i].pkey == k && vctx[i].ctx != NULL) {
            if (EVP_DigestVerifyInit(vctx[i].ctx, NULL, NULL, NULL, NULL) == 1)
                return vctx[i].ctx; /* re-initialised with the same key */
            EVP_MD_CTX_free(vctx[i].ctx);
            vctx[i].ctx = NULL;
            vctx[i].pkey = NULL;
            return NULL;
        }
    if (!vctx_registered) {
        pthread_once(&vctx_once, vctx_key_init);
        if (vctx_key == (pthread_key_t)-1 || pthread_setspecific(vctx_key, vctx) != 0)
            return NULL; /* no destructor: do not cache */
        vctx_registered = 1;
    }
    struct vctx_slot *s = &vctx[vctx_next++ % VCTX_SLOTS];
    EVP_MD_CTX_free(s->ctx);
    s->pkey = NULL;
    s->ctx = EVP_MD_CTX_new();
    if (s->ctx == NULL)
        return NULL;
    if (EVP_DigestVerifyInit(s->ctx, NULL, NULL, NULL, k) != 1) {
        EVP_MD_CTX_free(s->ctx);
        s->ctx = NULL;
        return NULL;
    }
    s->pkey = k;
    return s->ctx;
}

/* Verify with @k; @cached: through this thread's context for @k (a prepared
 * key that outlives the call), else a context made for this call. */
static int verify_pkey(EVP_PKEY *k, const uint8_t sig[REQSIGN__ED25519_SIG_LEN], const uint8_t *msg,
                       size_t len, int cached)
{
    EVP_MD_CTX *ctx = NULL, *own = NULL;
    int rc = -1;

    /* R = sig[0..31]; S >= L is rejected by OpenSSL itself. */
    if (has_small_order(sig))
        return -1;
    if (msg == NULL)
        msg = empty_msg; /* len is 0 */
    if (cached)
        ctx = verify_ctx(k);
    if (ctx == NULL) {
        ctx = own = EVP_MD_CTX_new();
        if (ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) != 1)
            ctx = NULL;
    }
    if (ctx != NULL && EVP_DigestVerify(ctx, sig, REQSIGN__ED25519_SIG_LEN, msg, len) == 1)
        rc = 0;
    EVP_MD_CTX_free(own);
    if (rc != 0)
        ERR_clear_error();
    return rc;
}

/* see crypto.h */
int reqsign__ed25519_verify_pub(const struct reqsign__ed25519_pub *p,
                                const uint8_t sig[REQSIGN__ED25519_SIG_LEN], const uint8_t *msg,
                                size_t len)
{
    if (p == NULL || p->weak)
        return -1;
    return verify_pkey(p->pkey, sig, msg, len, 1);
}

/* see crypto.h */
int reqsign__ed25519_verify(const uint8_t pk[REQSIGN__ED25519_PK_LEN],
                            const uint8_t sig[REQSIGN__ED25519_SIG_LEN], const uint8_t *msg,
                            size_t len)
{
    EVP_PKEY *k;
    int rc;

    if (weak_public_key(pk))
        return -1;
    k = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, pk, REQSIGN__ED25519_PK_LEN);
    if (k == NULL) {
        ERR_clear_error();
        return -1;
    }
    rc = verify_pkey(k, sig, msg, len, 0);
    EVP_PKEY_free(k);
    return rc;
}

int reqsign__ed25519_init(void)
{
    return OPENSSL_init_crypto(0, NULL) == 1 ? 0 : -1;
}
