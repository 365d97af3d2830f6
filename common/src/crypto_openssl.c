/* reqsign internal: the OpenSSL 3 implementation of crypto.h, except Ed25519.
 *
 * Utilities (wipe, constant-time compare, CSPRNG), key containers (PKCS#8 /
 * SPKI, PEM or DER) and SHA-2 always come from OpenSSL 3, whatever the
 * crypto_backend option. The Ed25519 primitives (keygen, public-from-seed,
 * sign, verify and their handles) are backend-specific:
 * crypto_ed25519_openssl.c or crypto_ed25519_sodium.c, chosen by
 * common/meson.build. A streaming hash lives in the caller's storage
 * (struct reqsign_digest, never shared between threads): OpenSSL's low-level
 * SHA-2 context inline by default, an EVP_MD_CTX with -Ddigest_api=evp (see
 * "SHA-2" below).
 *
 * Every failure clears the thread's OpenSSL error queue so that a failed
 * parse or a bad signature leaves nothing behind for the application.
 */
#include "crypto.h"
#include "crypto_openssl_util.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/opensslv.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#define SRC "key"

/* One readable byte so that a NULL, zero-length message is never passed on. */
static const uint8_t empty_msg[1] = {0};

/* ---- utilities ---- */

/* see crypto.h */
void reqsign__wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

/* see crypto.h */
int reqsign__memeq_ct(const void *a, const void *b, size_t len)
{
    if (len == 0)
        return 1;
    return CRYPTO_memcmp(a, b, len) == 0;
}

/* see crypto.h */
int reqsign__random(uint8_t *out, size_t len)
{
    while (len > 0) {
        int n = len > (size_t)INT_MAX ? INT_MAX : (int)len;
        if (RAND_bytes(out, n) != 1) {
            ERR_clear_error();
            return -1;
        }
        out += n;
        len -= (size_t)n;
    }
    return 0;
}

/* ---- helpers for the key containers ---- */

/* ---- key containers ---- */

/* Fill @out from an EVP_PKEY known to be Ed25519. */
static enum reqsign_status from_pkey(EVP_PKEY *k, int want_private,
                                     struct reqsign__decoded_key *out, struct reqsign_error *err)
{
    if (want_private) {
        if (pkey_seed(k, out->seed) != 0)
            return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                     "PKCS#8 Ed25519 key has no usable private key");
        out->has_private = 1;
    }
    if (pkey_public(k, out->pk) != 0)
        return reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                 "Ed25519 key has no usable public key");
    return REQSIGN_OK;
}

static enum reqsign_status wrong_type(int nid, const char *what, struct reqsign_error *err)
{
    const char *name;

    switch (nid) {
    case NID_rsaEncryption:
    case NID_rsassaPss:
        name = "RSA";
        break;
    case NID_X9_62_id_ecPublicKey:
        name = "EC";
        break;
    case NID_dsa:
        name = "DSA";
        break;
    default:
        name = nid != NID_undef ? OBJ_nid2sn(nid) : NULL;
        break;
    }
    return reqsign_error_set(err, REQSIGN_E_KEY_TYPE, SRC, REQSIGN_NO_OFFSET,
                             "%s has key type %s, not Ed25519", what,
                             name != NULL ? name : "unknown-type");
}

/* PKCS#8 PrivateKeyInfo, DER. *@matched = 1 if the bytes are a complete
 * PrivateKeyInfo structure (then the result is final). */
static enum reqsign_status decode_pkcs8(const uint8_t *der, size_t len, int *matched,
                                        struct reqsign__decoded_key *out, struct reqsign_error *err)
{
    const unsigned char *p = der;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    const ASN1_OBJECT *obj = NULL;
    EVP_PKEY *k = NULL;
    enum reqsign_status st;
    int nid;

    *matched = 0;
    if (len > (size_t)LONG_MAX)
        return REQSIGN_E_KEY_FORMAT;
    p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)len);
    if (p8 == NULL)
        return REQSIGN_E_KEY_FORMAT;
    /* PKCS8_PRIV_KEY_INFO_free() cleanses the private key octets. */
    if (p != der + len) {
        PKCS8_PRIV_KEY_INFO_free(p8);
        return REQSIGN_E_KEY_FORMAT;
    }
    *matched = 1;
    if (PKCS8_pkey_get0(&obj, NULL, NULL, NULL, p8) != 1) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "malformed PKCS#8 private key");
        goto done;
    }
    nid = OBJ_obj2nid(obj);
    if (nid != NID_ED25519) {
        st = wrong_type(nid, "PKCS#8 private key", err);
        goto done;
    }
    k = EVP_PKCS82PKEY(p8);
    if (k == NULL) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "malformed PKCS#8 Ed25519 private key");
        goto done;
    }
    st = from_pkey(k, 1, out, err);
done:
    EVP_PKEY_free(k);
    PKCS8_PRIV_KEY_INFO_free(p8);
    return st;
}

/* SubjectPublicKeyInfo, DER. */
static enum reqsign_status decode_spki(const uint8_t *der, size_t len, int *matched,
                                       struct reqsign__decoded_key *out, struct reqsign_error *err)
{
    const unsigned char *p = der;
    X509_PUBKEY *xpk = NULL;
    ASN1_OBJECT *obj = NULL;
    EVP_PKEY *k = NULL;
    enum reqsign_status st;
    int nid;

    *matched = 0;
    if (len > (size_t)LONG_MAX)
        return REQSIGN_E_KEY_FORMAT;
    xpk = d2i_X509_PUBKEY(NULL, &p, (long)len);
    if (xpk == NULL)
        return REQSIGN_E_KEY_FORMAT;
    if (p != der + len) {
        X509_PUBKEY_free(xpk);
        return REQSIGN_E_KEY_FORMAT;
    }
    *matched = 1;
    if (X509_PUBKEY_get0_param(&obj, NULL, NULL, NULL, xpk) != 1) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "malformed SubjectPublicKeyInfo");
        goto done;
    }
    nid = OBJ_obj2nid(obj);
    if (nid != NID_ED25519) {
        st = wrong_type(nid, "public key", err);
        goto done;
    }
    k = X509_PUBKEY_get(xpk);
    if (k == NULL) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "malformed Ed25519 SubjectPublicKeyInfo");
        goto done;
    }
    st = from_pkey(k, 0, out, err);
done:
    EVP_PKEY_free(k);
    X509_PUBKEY_free(xpk);
    return st;
}

/* see crypto.h */
enum reqsign_status reqsign__key_decode_der(const uint8_t *data, size_t len,
                                            struct reqsign__decoded_key *out,
                                            struct reqsign_error *err)
{
    enum reqsign_status st;
    int matched = 0;

    memset(out, 0, sizeof(*out));
    st = decode_pkcs8(data, len, &matched, out, err);
    if (!matched)
        st = decode_spki(data, len, &matched, out, err);
    if (!matched)
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "not a PEM, DER (PKCS#8 or SubjectPublicKeyInfo), JWK or raw "
                               "32-byte Ed25519 key");
    if (st != REQSIGN_OK)
        OPENSSL_cleanse(out, sizeof(*out));
    ERR_clear_error();
    return st;
}

/* PEM labels of other key types: a key, but not ours. */
static const char *const other_type_labels[] = {
    "RSA PRIVATE KEY", "RSA PUBLIC KEY", "EC PRIVATE KEY", "DSA PRIVATE KEY", "EC PARAMETERS",
};

/* see crypto.h */
enum reqsign_status reqsign__key_decode_pem(const uint8_t *data, size_t len,
                                            struct reqsign__decoded_key *out,
                                            struct reqsign_error *err)
{
    BIO *bio = NULL;
    char *name = NULL, *header = NULL;
    unsigned char *der = NULL; /* secret if name is PRIVATE KEY */
    long der_len = 0;
    enum reqsign_status st;
    int matched = 0;

    memset(out, 0, sizeof(*out));
    if (len > (size_t)INT_MAX)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET, "key too large");
    bio = BIO_new_mem_buf(data, (int)len);
    if (bio == NULL) {
        st = reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET, NULL);
        goto done;
    }
    /* PEM_FLAG_SECURE: the base64 text and the DER are kept in buffers that are
     * cleansed when freed (secure heap if the application set one up). */
    if (PEM_read_bio_ex(bio, &name, &header, &der, &der_len,
                        PEM_FLAG_SECURE | PEM_FLAG_EAY_COMPATIBLE) != 1) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "malformed PEM (truncated block or bad base64)");
        goto done;
    }
    if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0) {
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "encrypted private keys are not supported; decrypt with "
                               "`openssl pkey -in KEY -out KEY.plain`");
        goto done;
    }
    for (size_t i = 0; i < sizeof(other_type_labels) / sizeof(other_type_labels[0]); i++) {
        if (strcmp(name, other_type_labels[i]) == 0) {
            st = reqsign_error_set(err, REQSIGN_E_KEY_TYPE, SRC, REQSIGN_NO_OFFSET,
                                   "PEM block \"%s\" is not an Ed25519 key", other_type_labels[i]);
            goto done;
        }
    }
    if (header != NULL && header[0] != '\0') {
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "PEM block has headers (legacy encryption is not supported)");
        goto done;
    }
    if (der_len <= 0) {
        st =
            reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET, "empty PEM block");
        goto done;
    }
    if (strcmp(name, "PRIVATE KEY") == 0) {
        st = decode_pkcs8(der, (size_t)der_len, &matched, out, err);
        if (!matched)
            st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                   "PEM \"PRIVATE KEY\" does not hold a PKCS#8 structure");
    } else if (strcmp(name, "PUBLIC KEY") == 0) {
        st = decode_spki(der, (size_t)der_len, &matched, out, err);
        if (!matched)
            st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                                   "PEM \"PUBLIC KEY\" does not hold a SubjectPublicKeyInfo");
    } else {
        /* The label comes from the input; it is not secret. */
        st = reqsign_error_set(err, REQSIGN_E_KEY_FORMAT, SRC, REQSIGN_NO_OFFSET,
                               "unsupported PEM block \"%.64s\" (want PRIVATE KEY or PUBLIC KEY)",
                               name);
    }
done:
    if (der != NULL)
        OPENSSL_secure_clear_free(der, der_len > 0 ? (size_t)der_len : 0);
    OPENSSL_secure_free(name);
    OPENSSL_secure_free(header);
    BIO_free(bio);
    if (st != REQSIGN_OK)
        OPENSSL_cleanse(out, sizeof(*out));
    ERR_clear_error();
    return st;
}

/* ---- SHA-2 ---- */

/* Two implementations of the hashing below, the same SHA-2 code underneath
 * (OpenSSL's assembly: SHA-NI, AVX2, ...):
 *
 * - OpenSSL's low-level SHA256_Init/Update/Final and SHA512_*: the default.
 *   EVP's per-digest work (context and provider-context allocation, dispatch,
 *   parameter handling) measured ~100 ns per digest on the bench machine,
 *   against ~1.3 us for a 2 KiB body, on every signed and every verified
 *   request. These functions are deprecated in OpenSSL 3.0 but present in
 *   every 3.x release; the deprecation warnings are silenced for them alone.
 * - EVP with digests fetched once: used when the low-level functions are not
 *   there (OPENSSL_NO_DEPRECATED_3_0, OpenSSL >= 4) or when the build asks for
 *   it (meson -Ddigest_api=evp, which defines REQSIGN_HASH_EVP; the fuzz build
 *   uses it, so that path is exercised too). Choose it where digests must go
 *   through OpenSSL's providers (e.g. a FIPS provider configuration).
 *
 * Hash state is not secret (bodies, public keys), so it is not wiped. */
#if !defined(REQSIGN_HASH_EVP) && OPENSSL_VERSION_MAJOR == 3 && !defined(OPENSSL_NO_DEPRECATED_3_0)
#define HASH_LOWLEVEL 1
#else
#define HASH_LOWLEVEL 0
#endif

#if HASH_LOWLEVEL

struct reqsign__hash {
    enum reqsign__hash_alg alg;
    union {
        SHA256_CTX s256;
        SHA512_CTX s512;
    } u;
};

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"

static int ll_init(struct reqsign__hash *h, enum reqsign__hash_alg alg)
{
    h->alg = alg;
    switch (alg) {
    case REQSIGN__SHA256:
        return SHA256_Init(&h->u.s256) == 1 ? 0 : -1;
    case REQSIGN__SHA512:
        return SHA512_Init(&h->u.s512) == 1 ? 0 : -1;
    }
    return -1;
}

static int ll_update(struct reqsign__hash *h, const void *data, size_t len)
{
    int ok = h->alg == REQSIGN__SHA256 ? SHA256_Update(&h->u.s256, data, len)
                                       : SHA512_Update(&h->u.s512, data, len);
    return ok == 1 ? 0 : -1;
}

static int ll_final(struct reqsign__hash *h, uint8_t *out)
{
    int ok =
        h->alg == REQSIGN__SHA256 ? SHA256_Final(out, &h->u.s256) : SHA512_Final(out, &h->u.s512);
    return ok == 1 ? 0 : -1;
}

#pragma GCC diagnostic pop

static int oneshot(enum reqsign__hash_alg alg, const void *msg, size_t len, uint8_t *out)
{
    struct reqsign__hash h;
    if (msg == NULL)
        msg = empty_msg; /* len is 0 */
    int ret = 0;
    if (ll_init(&h, alg) != 0 || ll_update(&h, msg, len) != 0 || ll_final(&h, out) != 0)
        ret = -1;
    OPENSSL_cleanse(&h, sizeof(h));
    return ret;
}

_Static_assert(sizeof(struct reqsign__hash) <= REQSIGN__HASH_STATE_SIZE,
               "REQSIGN__HASH_STATE_SIZE too small for the low-level SHA-2 state");

/* see crypto.h */
int reqsign__hash_start(void *state, void **evp, enum reqsign__hash_alg alg)
{
    *evp = NULL;
    return ll_init(state, alg);
}

/* see crypto.h */
int reqsign__hash_update(void *state, void *evp, const void *data, size_t len)
{
    (void)evp;
    if (len == 0)
        return 0;
    return ll_update(state, data, len);
}

/* see crypto.h */
int reqsign__hash_final(void *state, void *evp, uint8_t *out)
{
    (void)evp;
    return ll_final(state, out);
}

/* see crypto.h */
void reqsign__hash_release(void **evp)
{
    *evp = NULL; /* nothing was allocated */
}

/* see reqsign/key.h */
const char *reqsign__hash_api(void)
{
    return "openssl-lowlevel";
}

#else /* EVP */

/* OpenSSL 3 looks a legacy EVP_sha256() up in its provider store on every
 * EVP_DigestInit (a lock and a hash lookup per request); fetching each digest
 * once and reusing it avoids that. The fetched objects live as long as the
 * process. */
static EVP_MD *fetched_sha256, *fetched_sha512;
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_digests(void)
{
    fetched_sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    fetched_sha512 = EVP_MD_fetch(NULL, "SHA2-512", NULL);
    ERR_clear_error();
}

static const EVP_MD *hash_md(enum reqsign__hash_alg alg)
{
    pthread_once(&fetch_once, fetch_digests);
    switch (alg) {
    case REQSIGN__SHA256:
        return fetched_sha256 != NULL ? fetched_sha256 : EVP_sha256();
    case REQSIGN__SHA512:
        return fetched_sha512 != NULL ? fetched_sha512 : EVP_sha512();
    }
    return NULL;
}

static int oneshot(enum reqsign__hash_alg alg, const void *msg, size_t len, uint8_t *out)
{
    if (msg == NULL)
        msg = empty_msg; /* len is 0 */
    if (EVP_Digest(msg, len, out, NULL, hash_md(alg), NULL) != 1) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* see crypto.h */
int reqsign__hash_start(void *state, void **evp, enum reqsign__hash_alg alg)
{
    const EVP_MD *md = hash_md(alg);
    EVP_MD_CTX *ctx;

    (void)state;
    *evp = NULL;
    if (md == NULL)
        return -1;
    ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return -1;
    if (EVP_DigestInit_ex(ctx, md, NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        ERR_clear_error();
        return -1;
    }
    *evp = ctx;
    return 0;
}

/* see crypto.h */
int reqsign__hash_update(void *state, void *evp, const void *data, size_t len)
{
    (void)state;
    if (evp == NULL)
        return -1;
    if (len == 0)
        return 0;
    if (EVP_DigestUpdate((EVP_MD_CTX *)evp, data, len) != 1) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* see crypto.h */
int reqsign__hash_final(void *state, void *evp, uint8_t *out)
{
    (void)state;
    if (evp == NULL || EVP_DigestFinal_ex((EVP_MD_CTX *)evp, out, NULL) != 1) {
        ERR_clear_error();
        return -1;
    }
    return 0;
}

/* see crypto.h */
void reqsign__hash_release(void **evp)
{
    EVP_MD_CTX_free((EVP_MD_CTX *)*evp);
    *evp = NULL;
}

/* see crypto.h */
const char *reqsign__hash_api(void)
{
    return "openssl-evp";
}

#endif /* HASH_LOWLEVEL */

/* see crypto.h */
int reqsign__sha256(const void *msg, size_t len, uint8_t out[REQSIGN__SHA256_LEN])
{
    return oneshot(REQSIGN__SHA256, msg, len, out);
}

/* see crypto.h */
int reqsign__sha512(const void *msg, size_t len, uint8_t out[REQSIGN__SHA512_LEN])
{
    return oneshot(REQSIGN__SHA512, msg, len, out);
}
