/* reqsign: the verifier, embeddable in any HTTP server.
 *
 * Verification is two-phase. reqsign_verifier_verify_headers() does, in this
 * order (spec/PROTOCOL.md section 9, "Verification order"): parse
 * Signature-Input and Signature -> select the signature -> required components
 * and parameters -> time window -> key lookup -> signature base -> Ed25519
 * signature -> nonce check-and-insert. A server calls it
 * before it reads the body, then streams the body through
 * reqsign_verification_body() and ends with reqsign_verification_finish(),
 * which checks the Content-Digest and asks the key lookup for the key's state
 * again (a key revoked while the body was arriving is refused).
 * reqsign_verifier_verify() does both in one call.
 *
 * Thread safety: reqsign_verifier_new() is thread-safe; a verifier is
 * immutable after creation and the verify functions are safe to call
 * concurrently on one shared verifier (the key lookup and nonce store must be
 * thread-safe too; the built-in ones are). A struct reqsign_verification is
 * used by one thread at a time.
 *
 * Allocation and stack. After a thread's first verify, a verify (phase one,
 * reqsign_verification_body(), reqsign_verification_finish(),
 * reqsign_verifier_verify()) allocates nothing of its own: the combined
 * fields, their parse tables and the signature base (up to REQSIGN_BASE_BUF)
 * are in one scratch block per thread (about 100 KiB), made by the thread's
 * first verify and freed when the thread exits; the SHA-2 state is inline in
 * struct reqsign_verification; prepared keys are cached in the verifier. What
 * else may allocate is outside the verifier:
 *  - the key lookup: reqsign_keycache_lookup() allocates nothing on a hit
 *    (an entry on a miss, positive or negative);
 *  - the nonce store: the memory store's insert allocates only when its table
 *    grows or shrinks (amortised; no allocation per entry); Redis allocates
 *    per command;
 *  - the OpenSSL Ed25519 backend: OpenSSL 3's EVP_DigestVerify makes
 *    REQSIGN_VERIFY_OPENSSL_ALLOCS allocations of its own per verify (the
 *    EVP_MD_CTX is reused per thread and key); libsodium makes none;
 *  - a -Ddigest_api=evp build: an EVP_MD_CTX per digest algorithm when
 *    Content-Digest is checked;
 *  - a verifier whose 256 prepared-key slots are full: the raw-key verify,
 *    which on the OpenSSL backend makes a key object per verify.
 * A verify uses at most REQSIGN_VERIFY_STACK_MAX bytes of the calling thread's
 * stack, the key lookup and nonce store included for the built-in memory
 * ones (measured by the verify_alloc suite; an ASan build uses more).
 */
#ifndef REQSIGN_VERIFIER_H
#define REQSIGN_VERIFIER_H

#include <reqsign/defs.h>
#include <reqsign/digest.h>
#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/keylookup.h>
#include <reqsign/limits.h>
#include <reqsign/nonce.h>
#include <reqsign/request.h>
#include <reqsign/sf.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The stack bound of one verify (see "Allocation and stack" above). */
#define REQSIGN_VERIFY_STACK_MAX 32768
/* OpenSSL 3's own allocations inside one Ed25519 verify (OpenSSL backend). */
#define REQSIGN_VERIFY_OPENSSL_ALLOCS 3

enum reqsign_profile {
    /* reqsign profile: @method @authority @path covered; @query when the
     * target has a query; content-digest when the request has content;
     * created, nonce, keyid present; alg, if present, "ed25519". */
    REQSIGN_PROFILE_REQSIGN = 0,
    /* Only what RFC 9421 itself requires: the signature over whatever is
     * covered, alg agreement, the window only when created/expires are
     * present, the nonce checked only when present. */
    REQSIGN_PROFILE_RFC9421 = 1,
};

#define REQSIGN_DEFAULT_MAX_AGE 300
#define REQSIGN_DEFAULT_SKEW 30

struct reqsign_verifier_opts {
    enum reqsign_profile profile;
    int64_t max_age;   /* seconds; 0: REQSIGN_DEFAULT_MAX_AGE */
    int64_t skew;      /* seconds; 0: REQSIGN_DEFAULT_SKEW; < 0: none */
    const char *label; /* NULL: the only signature, else "sig1" */
    /* The authorities (host[:port], as clients sign them) this verifier
     * accepts: public_authority, then authorities[0..n_authorities-1]. At
     * least one is required unless any_authority is set (spec/PROTOCOL.md
     * section 5.2.3): a verifier that takes @authority from each request's
     * Host accepts a request signed for another service that trusts the
     * same keys. With one authority, it is @authority whatever the Host
     * says (behind a proxy); with several, the request's Host (normalised)
     * must be one of them (else REQSIGN_E_URL naming them). */
    const char *public_authority;           /* NULL: none; the single-value form */
    const char *public_scheme;              /* NULL: the request's own */
    const char *required_tag;               /* NULL: any or none */
    const char *const *required_components; /* extra component names that must be covered */
    size_t n_required_components;
    reqsign_verifier_clock_fn clock; /* NULL: time(NULL) */
    void *clock_ctx;
    reqsign_key_lookup_fn lookup; /* required */
    void *lookup_ctx;
    struct reqsign_nonce_store *nonces; /* borrowed; required by the reqsign profile */
    const char *const *authorities;     /* more accepted authorities (see public_authority) */
    size_t n_authorities;               /* at most REQSIGN_VERIFIER_AUTHORITIES_IN_MAX in all */
    bool any_authority; /* true: no configured authority, @authority is each request's Host
                          (the explicit opt-out; not with public_authority/authorities) */
};

struct reqsign_verifier;

/**
 * reqsign_verifier_new() - check and copy the options.
 * Return: the verifier, or NULL with @err set (E_INVALID_ARG, among others
 * when no authority is configured and any_authority is not set; E_URL or
 * E_LIMIT for a malformed authority; E_NOMEM).
 * Thread safety: thread-safe.
 */
REQSIGN_API struct reqsign_verifier *reqsign_verifier_new(const struct reqsign_verifier_opts *opts,
                                                          struct reqsign_error *err);
/** reqsign_verifier_free() - release; NULL is a no-op. Does not free the nonce store. */
REQSIGN_API void reqsign_verifier_free(struct reqsign_verifier *v);

/* Per-request state, caller-owned. Zero it (or reqsign_verification_init())
 * before use and call reqsign_verification_cleanup() when done. */
struct reqsign_verification {
    /* Debug: set base_buf/base_cap before the call to receive the signature
     * base the verifier computed (also on a signature mismatch). */
    char *base_buf;
    size_t base_cap, base_len;

    /* Results, valid after reqsign_verifier_verify_headers() returned OK. */
    char label[REQSIGN_SF_KEY_IN_MAX + 1];
    char keyid[REQSIGN_KEYID_IN_MAX + 1];
    char scopes[REQSIGN_SCOPE_LIST_BUF];
    char account[REQSIGN_ACCOUNT_ID_IN_MAX + 1]; /* the key's account; "" if the lookup has none */
    char nonce[REQSIGN_NONCE_IN_MAX + 1];        /* "" if absent (for audit logs) */
    int64_t created;                             /* -1 if absent (rfc9421 profile) */
    int64_t expires;                             /* -1 if absent */
    bool digest_covered;
    bool has_content;

    /* internal */
    int state;           /* VS_* in verifier.c */
    int digest_optional; /* rfc9421 profile: content without a covered content-digest is allowed */
    int digest_named;    /* "content-digest" covered in any form (with parameters too) */
    int digest_parsed;   /* Content-Digest present and parsed into expect: the content is hashed */
    enum reqsign_status digest_defer; /* an unusable uncovered Content-Digest: fails on content */
    const struct reqsign_verifier *verifier;        /* for the key re-check in phase two */
    uint8_t public_key[REQSIGN_ED25519_PUBLIC_LEN]; /* the key phase one verified with */
    struct reqsign_digest_expect expect;
    struct reqsign_digest body;
};

REQSIGN_API void reqsign_verification_init(struct reqsign_verification *vs);
REQSIGN_API void reqsign_verification_cleanup(struct reqsign_verification *vs);

/**
 * reqsign_verifier_verify_headers() - phase one: everything but the content.
 * @req: the request as received (method, target from the request line, Host
 *       as authority, all fields). @authority in the base is chosen from the
 *       configured authorities (see struct reqsign_verifier_opts).
 * Return: REQSIGN_OK or the specific REQSIGN_E_* code, with @err's message
 * naming the component, parameter or field at fault.
 * Thread safety: safe concurrently on one @v with distinct @vs.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_verifier_verify_headers(const struct reqsign_verifier *v, const struct reqsign_request *req,
                                struct reqsign_verification *vs, struct reqsign_error *err);

/**
 * reqsign_verification_body() - phase two: feed content bytes (any chunking).
 * Return: REQSIGN_OK, REQSIGN_E_DIGEST_REQUIRED (reqsign profile: content on a
 * request whose signature does not cover content-digest), the
 * Content-Digest's parse error (content on a request whose uncovered
 * Content-Digest cannot be checked), REQSIGN_E_INVALID_ARG (phase one did not
 * succeed).
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_verification_body(struct reqsign_verification *vs, const void *data, size_t len,
                          struct reqsign_error *err);

/**
 * reqsign_verification_finish() - end of content: check the content against
 * Content-Digest when it is covered or the request has content (spec section
 * 9, step 9), then look the key up again through the verifier's key lookup
 * (step 10): a key revoked, expired, removed or replaced since phase one is
 * refused, so the application never acts for a key revoked while the body
 * was arriving (with a caching lookup, within the cache's TTL). @vs->scopes
 * and @vs->account are refreshed from that lookup. The verifier that ran phase one must still
 * be alive. No allocation beyond the key lookup's own.
 * Return: REQSIGN_OK, REQSIGN_E_DIGEST_MISMATCH, REQSIGN_E_KEY_REVOKED,
 * REQSIGN_E_KEY_EXPIRED, REQSIGN_E_KEY_UNKNOWN, REQSIGN_E_KEYSTORE_UNAVAILABLE,
 * REQSIGN_E_CRYPTO, REQSIGN_E_INVALID_ARG (phase one did not succeed).
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_verification_finish(struct reqsign_verification *vs, struct reqsign_error *err);

/**
 * reqsign_verifier_verify() - both phases with the whole body in memory. The
 * key is looked up once (no time passes between the phases).
 * Thread safety: safe concurrently on one @v with distinct @vs.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_verifier_verify(const struct reqsign_verifier *v, const struct reqsign_request *req,
                        const void *body, size_t body_len, struct reqsign_verification *vs,
                        struct reqsign_error *err);

/**
 * reqsign_static_key_lookup() - a lookup for one fixed public key: pass a
 * struct reqsign_static_key as the lookup ctx. If keyid is NULL, any keyid
 * maps to that key (as `reqsign verify --pub` does).
 */
struct reqsign_static_key {
    const char *keyid; /* NULL: any */
    uint8_t public_key[REQSIGN_ED25519_PUBLIC_LEN];
    const char *scopes;
};
REQSIGN_API enum reqsign_status reqsign_static_key_lookup(void *ctx, const char *keyid,
                                                          size_t keyid_len,
                                                          struct reqsign_key_info *out,
                                                          struct reqsign_error *err);

#ifdef __cplusplus
}
#endif
#endif
