/* reqsign: RFC 9530 Content-Digest, sha-256 and sha-512.
 *
 * Thread safety: functions on a struct reqsign_digest are safe on distinct
 * contexts; the others are thread-safe.
 */
#ifndef REQSIGN_DIGEST_H
#define REQSIGN_DIGEST_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/limits.h>

#ifdef __cplusplus
extern "C" {
#endif

enum reqsign_digest_alg {
    REQSIGN_DIGEST_SHA256 = 1,
    REQSIGN_DIGEST_SHA512 = 2,
};

#define REQSIGN_SHA256_LEN 32
#define REQSIGN_SHA512_LEN 64

/* Streaming computation of one or both digests. Caller-owned; the hash
 * states are inline (state[]), so init allocates nothing, except with a
 * -Ddigest_api=evp build, where each algorithm gets an EVP_MD_CTX (ctx[]).
 * reqsign_digest_init() must be followed by reqsign_digest_final() or
 * reqsign_digest_cleanup(). Do not copy a started struct reqsign_digest. */
struct reqsign_digest {
    unsigned algs;         /* bit set of enum reqsign_digest_alg values */
    void *ctx[2];          /* internal: EVP contexts (-Ddigest_api=evp only), else NULL */
    uint64_t total;        /* bytes hashed so far */
    uint64_t state[2][30]; /* internal: sha-256 and sha-512 state */
};

/**
 * reqsign_digest_init() - start hashing with the algorithms in @algs
 * (REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512).
 * Allocates nothing (an EVP_MD_CTX per algorithm with -Ddigest_api=evp).
 * Return: REQSIGN_OK, REQSIGN_E_INVALID_ARG, REQSIGN_E_NOMEM, REQSIGN_E_CRYPTO.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_digest_init(struct reqsign_digest *d, unsigned algs, struct reqsign_error *err);
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status reqsign_digest_update(struct reqsign_digest *d,
                                                                        const void *data,
                                                                        size_t len,
                                                                        struct reqsign_error *err);
/**
 * reqsign_digest_final() - write the Content-Digest field value, e.g.
 * `sha-256=:...:` (sha-512 first when both, as `sha-512=:...:, sha-256=:...:`)
 * NUL-terminated into @out (cap >= REQSIGN_CONTENT_DIGEST_OUT_BUF suffices).
 * Optional @sha256/@sha512 receive the raw digests (may be NULL). @out_len may
 * be NULL. With @out NULL and @cap 0 only the raw digests are produced. Releases @d.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_digest_final(struct reqsign_digest *d, char *out, size_t cap, size_t *out_len,
                     uint8_t sha256[REQSIGN_SHA256_LEN], uint8_t sha512[REQSIGN_SHA512_LEN],
                     struct reqsign_error *err);
/* Release @d without a result. Safe on a zeroed or finalised @d. */
REQSIGN_API void reqsign_digest_cleanup(struct reqsign_digest *d);

/**
 * reqsign_content_digest() - one-shot: the Content-Digest value of @body.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_content_digest(unsigned algs, const void *body, size_t len, char *out, size_t cap,
                       size_t *out_len, struct reqsign_error *err);

/* A parsed Content-Digest field: the known algorithms it carries. */
struct reqsign_digest_expect {
    unsigned algs; /* which of the two are present */
    uint8_t sha256[REQSIGN_SHA256_LEN];
    uint8_t sha512[REQSIGN_SHA512_LEN];
};

/**
 * reqsign_content_digest_parse() - parse a Content-Digest field value.
 * Unknown algorithms are ignored; at least one of sha-256 / sha-512 must be
 * present, with a byte sequence of the right length.
 * Return: REQSIGN_OK, REQSIGN_E_DIGEST_MALFORMED (err->offset set),
 * REQSIGN_E_DIGEST_NO_KNOWN_ALG, REQSIGN_E_LIMIT.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_content_digest_parse(const char *value, size_t len, struct reqsign_digest_expect *out,
                             struct reqsign_error *err);

/**
 * reqsign_content_digest_check() - compare the digests of the received
 * content, computed with @d (initialised with exactly @exp->algs), to @exp.
 * Every known algorithm present must match (constant-time compare). Releases @d.
 * Return: REQSIGN_OK, REQSIGN_E_DIGEST_MISMATCH, REQSIGN_E_CRYPTO.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_content_digest_check(struct reqsign_digest *d, const struct reqsign_digest_expect *exp,
                             struct reqsign_error *err);

/**
 * reqsign_content_digest_file() - stream a file through the digest and write
 * its Content-Digest value (cap >= REQSIGN_CONTENT_DIGEST_OUT_BUF).
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_content_digest_file(const char *path, unsigned algs, char *out, size_t cap, size_t *out_len,
                            struct reqsign_error *err);

#ifdef __cplusplus
}
#endif
#endif
