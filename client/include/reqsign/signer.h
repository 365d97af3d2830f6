/* reqsign: the signer (client SDK).
 *
 * Signs a request's method, authority, path, query and content digest with
 * Ed25519 under the reqsign profile of RFC 9421 (spec/PROTOCOL.md):
 *
 *   Signature-Input: sig1=("@method" "@authority" "@path" "@query" "content-digest");
 *                    created=N;nonce="...";keyid="...";alg="ed25519"[;expires=N][;tag="..."]
 *
 * and returns the three header fields to add: Content-Digest,
 * Signature-Input, Signature. URLs are split as libcurl splits them, so the
 * path and query signed are the ones libcurl puts on the wire: plain http(s)
 * URLs by a one-pass parser held to libcurl's answers by the tests, all
 * others by libcurl's URL API itself.
 *
 * Thread safety: reqsign_signer_new() is thread-safe; a signer is immutable
 * after creation and reqsign_signer_sign() may be called concurrently on the
 * same signer. reqsign_signer_free() must not race with other calls.
 */
#ifndef REQSIGN_SIGNER_H
#define REQSIGN_SIGNER_H

#include <reqsign/defs.h>
#include <reqsign/digest.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/limits.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int64_t (*reqsign_clock_fn)(void *ctx); /* unix seconds */

struct reqsign_signer_opts {
    /* The private key: exactly one of these three. */
    const char *key_file; /* PEM, DER, JWK or raw seed file */
    const void *key_data; /* same formats in memory */
    size_t key_len;
    const struct reqsign_key *key; /* copied; the caller keeps its own */
    unsigned key_flags;            /* REQSIGN_KEY_* loader flags */

    const char *keyid;      /* NULL: the key's RFC 7638 thumbprint */
    const char *label;      /* NULL: "sig1" */
    const char *tag;        /* NULL: no tag parameter */
    int64_t expires_in;     /* > 0: add expires = created + expires_in */
    unsigned digest_algs;   /* 0: REQSIGN_DIGEST_SHA256 */
    bool path_as_is;        /* true: keep dot segments, like CURLOPT_PATH_AS_IS */
    reqsign_clock_fn clock; /* NULL: time(NULL) */
    void *clock_ctx;
};

struct reqsign_signer;

/**
 * reqsign_signer_new() - load the key and settle the options.
 * Return: the signer, or NULL with @err set (E_IO, E_KEY_*, E_INVALID_ARG, E_NOMEM).
 * Thread safety: thread-safe.
 */
REQSIGN_API struct reqsign_signer *reqsign_signer_new(const struct reqsign_signer_opts *opts,
                                                      struct reqsign_error *err);

/** reqsign_signer_free() - wipe the private key and release; NULL is a no-op. */
REQSIGN_API void reqsign_signer_free(struct reqsign_signer *s);

/** reqsign_signer_keyid() - the keyid this signer puts in signatures (NUL-terminated). */
REQSIGN_API const char *reqsign_signer_keyid(const struct reqsign_signer *s);

/** reqsign_signer_path_as_is() - true if the signer keeps dot segments (opts.path_as_is):
 * a transfer must then set CURLOPT_PATH_AS_IS so libcurl sends the path signed. Thread-safe. */
REQSIGN_API bool reqsign_signer_path_as_is(const struct reqsign_signer *s);

/** reqsign_signer_digest_algs() - the REQSIGN_DIGEST_* set the signer uses for
 * Content-Digest (never 0). Thread-safe. */
REQSIGN_API unsigned reqsign_signer_digest_algs(const struct reqsign_signer *s);

/* What to sign. */
struct reqsign_sign_input {
    const char *method; /* NUL-terminated, sent as is ("GET", "POST", ...) */
    const char *url;    /* absolute http(s) URL, NUL-terminated */
    /* The body: either bytes in memory ... */
    const void *body;
    size_t body_len;
    /* ... or a Content-Digest value the caller computed while streaming
     * (reqsign_digest_* or reqsign_content_digest_file()); overrides body. */
    const char *content_digest;
    int64_t created;   /* 0: the signer's clock */
    const char *nonce; /* NULL: 16 random bytes, base64url */
};

/* The result: three header fields to add, NUL-terminated values. */
struct reqsign_signed {
    char content_digest[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    char signature_input[REQSIGN_SIGNATURE_INPUT_OUT_BUF];
    char signature[REQSIGN_SIGNATURE_OUT_BUF];
    struct reqsign_header headers[3];     /* views of the three fields above */
    size_t n_headers;                     /* 3 */
    char nonce[REQSIGN_NONCE_IN_MAX + 1]; /* the nonce used */
    int64_t created;
    /* Debug: if base_buf is set by the caller (base_cap bytes), the
     * signature base is copied there and base_len set. */
    char *base_buf;
    size_t base_cap, base_len;
};

/**
 * reqsign_signer_sign() - sign @in and fill @out.
 * Return: REQSIGN_OK, REQSIGN_E_URL (err->offset into the URL), REQSIGN_E_INVALID_ARG,
 * REQSIGN_E_RANDOM, REQSIGN_E_CRYPTO, REQSIGN_E_LIMIT.
 * Thread safety: safe to call concurrently on the same @s with distinct @out.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_signer_sign(const struct reqsign_signer *s, const struct reqsign_sign_input *in,
                    struct reqsign_signed *out, struct reqsign_error *err);

#ifdef __cplusplus
}
#endif
#endif
