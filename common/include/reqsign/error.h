/* reqsign: status codes and error details.
 *
 * Every fallible function returns an enum reqsign_status. REQSIGN_OK is 0;
 * codes are appended to the table below and never renumbered. The enum,
 * reqsign_errname(), reqsign_strerror() and reqsign_http_status() are all
 * generated from the one table, so they cannot drift.
 *
 * Thread safety: every function in this header is thread-safe.
 */
#ifndef REQSIGN_ERROR_H
#define REQSIGN_ERROR_H

#include <stddef.h>
#include <stdint.h>

#include <reqsign/defs.h>

#ifdef __cplusplus
extern "C" {
#endif

/* X(NAME, number, HTTP status a server answers with, "wire name", "static message") */
#define REQSIGN_ERRORS(X)                                                                          \
    X(OK, 0, 200, "ok", "success")                                                                 \
    /* generic */                                                                                  \
    X(E_INVALID_ARG, 1, 500, "invalid_arg", "invalid argument")                                    \
    X(E_NOMEM, 2, 500, "nomem", "out of memory")                                                   \
    X(E_BUFFER_TOO_SMALL, 3, 500, "buffer_too_small", "output buffer too small")                   \
    X(E_INTERNAL, 4, 500, "internal", "internal error")                                            \
    X(E_IO, 5, 500, "io", "I/O error")                                                             \
    X(E_CRYPTO, 6, 500, "crypto", "cryptographic library failure")                                 \
    X(E_RANDOM, 7, 500, "random", "random number generator failure")                               \
    X(E_USAGE, 8, 400, "usage", "usage error")                                                     \
    /* encodings */                                                                                \
    X(E_SF_PARSE, 9, 400, "sf_parse", "malformed structured field")                                \
    X(E_SF_SERIALIZE, 10, 500, "sf_serialize", "value cannot be serialized as a structured field") \
    X(E_BASE64, 11, 400, "base64", "malformed base64")                                             \
    X(E_LIMIT, 12, 400, "limit", "size limit exceeded")                                            \
    X(E_URL, 13, 400, "url", "malformed URL or request target")                                    \
    /* keys */                                                                                     \
    X(E_KEY_FORMAT, 14, 500, "key_format", "malformed or unsupported key")                         \
    X(E_KEY_TYPE, 15, 500, "key_type", "key is not an Ed25519 key")                                \
    X(E_KEY_PERMISSIONS, 16, 500, "key_permissions",                                               \
      "private key file is readable by group or others")                                           \
    X(E_KEY_NOT_PRIVATE, 17, 500, "key_not_private", "key has no private part")                    \
    /* signature fields */                                                                         \
    X(E_SIG_MISSING, 18, 401, "sig_missing", "request is not signed")                              \
    X(E_SIG_INPUT_MALFORMED, 19, 400, "sig_input_malformed", "malformed Signature-Input field")    \
    X(E_SIG_MALFORMED, 20, 400, "sig_malformed", "malformed Signature field")                      \
    X(E_SIG_LABEL, 21, 400, "sig_label",                                                           \
      "signature label not present in both Signature and Signature-Input")                         \
    X(E_SIG_AMBIGUOUS, 22, 400, "sig_ambiguous", "several signatures and none selected by policy") \
    /* covered components */                                                                       \
    X(E_COMPONENT_DUPLICATE, 23, 400, "component_duplicate", "component covered twice")            \
    X(E_COMPONENT_UNKNOWN, 24, 400, "component_unknown",                                           \
      "unknown component or component parameter")                                                  \
    X(E_COMPONENT_ABSENT, 25, 400, "component_absent",                                             \
      "covered component is absent from the request")                                              \
    X(E_COMPONENT_INVALID, 26, 400, "component_invalid",                                           \
      "covered component value cannot be put in a signature base")                                 \
    X(E_COMPONENT_REQUIRED, 27, 401, "component_required",                                         \
      "a required component is not covered by the signature")                                      \
    /* signature parameters */                                                                     \
    X(E_PARAM_MISSING, 28, 401, "param_missing", "a required signature parameter is missing")      \
    X(E_PARAM_INVALID, 29, 400, "param_invalid", "signature parameter has the wrong type or size") \
    X(E_ALG_MISMATCH, 30, 401, "alg_mismatch", "alg parameter does not match the key's algorithm") \
    X(E_TAG_MISMATCH, 31, 401, "tag_mismatch", "tag parameter does not match the required tag")    \
    /* time window */                                                                              \
    X(E_SIG_TOO_OLD, 32, 401, "sig_too_old", "signature created too long ago")                     \
    X(E_SIG_FUTURE, 33, 401, "sig_future", "signature created in the future")                      \
    X(E_SIG_EXPIRED, 34, 401, "sig_expired", "signature expired")                                  \
    /* keys, from the verifier's lookup */                                                         \
    X(E_KEY_UNKNOWN, 35, 401, "key_unknown", "unknown key")                                        \
    X(E_KEY_REVOKED, 36, 401, "key_revoked", "key revoked")                                        \
    X(E_KEY_EXPIRED, 37, 401, "key_expired", "key expired")                                        \
    X(E_KEYSTORE_UNAVAILABLE, 38, 503, "keystore_unavailable", "key store unavailable")            \
    /* the signature itself */                                                                     \
    X(E_SIG_INVALID, 39, 401, "sig_invalid", "signature does not verify")                          \
    /* replay */                                                                                   \
    X(E_REPLAY, 40, 401, "replay", "nonce already used: replayed request")                         \
    X(E_NONCE_STORE_FULL, 41, 503, "nonce_store_full", "nonce store full")                         \
    X(E_NONCE_KEY_LIMIT, 42, 429, "nonce_key_limit", "too many live nonces for this key")          \
    X(E_NONCE_STORE_UNAVAILABLE, 43, 503, "nonce_store_unavailable", "nonce store unavailable")    \
    /* body */                                                                                     \
    X(E_DIGEST_REQUIRED, 44, 401, "digest_required",                                               \
      "request has content but content-digest is not covered")                                     \
    X(E_DIGEST_MALFORMED, 45, 400, "digest_malformed", "malformed Content-Digest field")           \
    X(E_DIGEST_NO_KNOWN_ALG, 46, 400, "digest_no_known_alg",                                       \
      "Content-Digest has no supported algorithm")                                                 \
    X(E_DIGEST_MISMATCH, 47, 401, "digest_mismatch", "content does not match Content-Digest")      \
    /* authorisation, decided by the application */                                                \
    X(E_SCOPE, 48, 403, "scope", "key lacks the required scope")                                   \
    /* key service and HTTP layer */                                                               \
    X(E_NOT_FOUND, 49, 404, "not_found", "no such resource")                                       \
    X(E_METHOD_NOT_ALLOWED, 50, 405, "method_not_allowed", "method not allowed on this resource")  \
    X(E_CONFLICT, 51, 409, "conflict", "resource already exists")                                  \
    X(E_BODY_TOO_LARGE, 52, 413, "body_too_large", "request body too large")                       \
    X(E_JSON, 53, 400, "json", "malformed JSON")                                                   \
    X(E_INVALID_REQUEST, 54, 400, "invalid_request", "invalid request")                            \
    X(E_STORE, 55, 500, "store", "storage failure")                                                \
    X(E_UNSUPPORTED_MEDIA_TYPE, 56, 415, "unsupported_media_type", "unsupported media type")       \
    X(E_HTTP, 57, 502, "http", "HTTP transfer failed")                                             \
    /* signature fields, continued */                                                              \
    X(E_SIG_INCOMPLETE, 58, 400, "sig_incomplete",                                                 \
      "Signature and Signature-Input must both be present")                                        \
    /* accounts and self-service keys */                                                           \
    X(E_KEY_DISABLED, 59, 401, "key_disabled", "key disabled")                                     \
    X(E_ACCOUNT_DISABLED, 60, 401, "account_disabled", "the key's account is disabled")            \
    X(E_ENROLLMENT_INVALID, 61, 401, "enrollment_invalid", "enrollment token invalid")             \
    X(E_KEY_LIMIT, 62, 409, "key_limit", "the account has its maximum of active keys")             \
    X(E_LAST_ADMIN, 63, 409, "last_admin",                                                         \
      "the last active keys:admin key cannot be revoked or disabled")

enum reqsign_status {
#define REQSIGN_X_ENUM(name, num, http, wire, msg) REQSIGN_##name = num,
    REQSIGN_ERRORS(REQSIGN_X_ENUM)
#undef REQSIGN_X_ENUM
        REQSIGN_STATUS_LAST /* never use! */
};

/* Detail of one failure. Caller-owned, fixed size, nothing allocated.
 *
 * Every public function that takes a `struct reqsign_error *` (NULL is always
 * accepted) resets it on entry, as reqsign_error_clear() does, and fills it
 * only on failure: after a call, err->code is REQSIGN_OK on success and the
 * returned code on failure, and the message is about that call. An
 * uninitialised or reused struct therefore never carries garbage or an
 * earlier call's message. Within one call the first error wins (a later
 * reqsign_error_set() does not overwrite it). Never holds a key, a seed or a
 * whole signature. */
struct reqsign_error {
    enum reqsign_status code;
    size_t offset;     /* byte offset into the parsed value; SIZE_MAX if not a parse error */
    char source[32];   /* what was being read: "Signature-Input", "Content-Digest", ... */
    char message[256]; /* human text */
};

#define REQSIGN_NO_OFFSET SIZE_MAX

/**
 * reqsign_errname() - the code's wire name, e.g. REQSIGN_E_REPLAY -> "replay".
 * Return: a static lowercase snake_case string ("ok", "sig_too_old", ...), the
 * stable wire name used in JSON error bodies; "unknown" for an unknown code.
 * Thread safety: thread-safe.
 */
REQSIGN_API const char *reqsign_errname(enum reqsign_status code);

/**
 * reqsign_strerror() - static human text for a code. Never NULL.
 * Thread safety: thread-safe.
 */
REQSIGN_API const char *reqsign_strerror(enum reqsign_status code);

/**
 * reqsign_http_status() - the HTTP status a server answers with for @code
 * (400 malformed, 401 not authenticated, 403 scope, 429 per-key limit,
 * 503 a store is unavailable, 500 local failure).
 * Thread safety: thread-safe.
 */
REQSIGN_API int reqsign_http_status(enum reqsign_status code);

/**
 * reqsign_error_clear() - reset @err to "no error" (code OK, offset
 * REQSIGN_NO_OFFSET, empty strings). @err may be NULL.
 * Thread safety: safe on distinct @err.
 */
REQSIGN_API void reqsign_error_clear(struct reqsign_error *err);

/**
 * reqsign_error_set() - record a failure in @err (if not NULL and not already
 * set since it was last reset) and return @code, so callers can write
 * `return reqsign_error_set(...)`. For implementations of the callbacks
 * (key lookups, stores), which get an @err their caller has reset.
 * @source: may be NULL. @offset: REQSIGN_NO_OFFSET if not a parse error.
 * @fmt: printf-style message, truncated to fit; NULL uses reqsign_strerror().
 * Thread safety: safe on distinct @err.
 */
REQSIGN_API enum reqsign_status reqsign_error_set(struct reqsign_error *err,
                                                  enum reqsign_status code, const char *source,
                                                  size_t offset, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 5, 6)))
#endif
    ;

/**
 * reqsign_error_json() - the JSON error body a server answers with:
 * {"error":"<wire name>","message":"...","server_time":N} (server_time only
 * for clock errors: sig_too_old, sig_future, sig_expired). NUL-terminated.
 * The message is @err's, except for codes answered with a 5xx status (local
 * failures: store outages, internal errors), whose body carries only
 * reqsign_strerror(): their detail is for the server's log, not the client.
 * Return: REQSIGN_OK or REQSIGN_E_BUFFER_TOO_SMALL.
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_error_json(const struct reqsign_error *err, int64_t server_time, char *out, size_t cap,
                   size_t *out_len);

#ifdef __cplusplus
}
#endif
#endif
