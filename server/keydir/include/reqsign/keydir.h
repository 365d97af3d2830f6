/* reqsign: a key directory consumer, for verifiers that trust another
 * service's published keys.
 *
 * A key directory is a JWKS served at a service's
 * /.well-known/http-message-signatures-directory (reqsignd serves one, see
 * docs/KEYSERVICE.md): {"keys":[{"kty":"OKP","crv":"Ed25519","x":...,
 * "kid":...,"alg":"ed25519"}, ...]}. reqsign_keydir_lookup() has the
 * reqsign_key_lookup_fn signature: pass it with the keydir as ctx in struct
 * reqsign_verifier_opts.
 *
 * Snapshot. Each successful fetch (200) replaces an immutable snapshot of the
 * directory: a table of keyid -> public key. Lookups read it under a read
 * lock and never touch the network while it is fresh. No fetch happens in
 * reqsign_keydir_new(); the first lookup (or reqsign_keydir_refresh()) fetches.
 *
 * Entries. An entry is used only when it is an object with "kty":"OKP",
 * "crv":"Ed25519" and an "x" that is the canonical base64url of exactly 32
 * bytes; "alg", if present, must be "ed25519" or "EdDSA"; "use", if present,
 * "sig"; an entry carrying a private part ("d") is refused. "kid", if present,
 * must be a string of 1..REQSIGN_KEYID_IN_MAX bytes; when "kid" is absent
 * the key's RFC 7638 thumbprint (reqsign_thumbprint_raw(), what reqsign uses
 * as keyid) is its keyid. Any other entry is skipped (and counted); if two
 * entries name the same keyid, the first one wins. The document itself must
 * be a JSON object whose "keys" is an array of at most max_keys entries, at
 * most max_body bytes, nested at most REQSIGN_KEYDIR_DEPTH_IN_MAX deep, without
 * duplicate object members; otherwise it is refused as a whole, the previous
 * snapshot is kept and the error counted (stats.parse_errors).
 *
 * State. A directory lists active keys only, so every key found is
 * REQSIGN_KEY_ACTIVE, with empty scopes (a directory carries no scopes;
 * authorise by keyid). A key that disappears from the directory (revoked,
 * expired, deleted) is REQSIGN_E_KEY_UNKNOWN after the next refresh: the
 * revocation bound is the snapshot's freshness lifetime, i.e. Cache-Control
 * max-age clamped to [min_refresh, max_refresh] (60 s against reqsignd, whose
 * directory says max-age=60), or at once after reqsign_keydir_refresh().
 *
 * Freshness. A snapshot fetched at F (the clock read before the request was
 * sent) with lifetime L is fresh while |now - F| < L, where L is the
 * response's Cache-Control max-age clamped to [min_refresh, max_refresh]
 * (min_refresh when there is no max-age, or with no-cache / no-store). A
 * response's ETag is remembered and sent as If-None-Match; a 304 keeps the
 * snapshot and restarts its lifetime (F = now, L from the 304's max-age).
 * Redirects are not followed; only http and https are used.
 *
 * Refetch and rate limit. A lookup fetches when the snapshot is not fresh,
 * or when the keyid is not in it and the snapshot is at least min_refresh
 * old (a key created since the last fetch is found without waiting for the
 * lifetime to run out). Fetches are serialised and rate-limited: at most one
 * attempt (successful or not) per min_refresh seconds, whatever the lookups
 * ask for, so a flood of unknown keyids, or a directory that is down, costs
 * the directory at most one request per min_refresh. reqsign_keydir_refresh()
 * alone bypasses the rate limit. A fetch runs in the thread of the lookup that
 * needed it (bounded by timeout_ms); meanwhile, lookups whose keyid is in a
 * snapshot younger than max_refresh answer from it without waiting, the
 * others wait for the fetch and then read its result.
 *
 * Failure. When fetches fail (transport error, timeout, status other than 200
 * or 304, a refused document), the last good snapshot keeps answering until
 * max_refresh seconds after its fetch time (the last 200 or 304); after that,
 * and before any snapshot was fetched, lookups fail with
 * REQSIGN_E_KEYSTORE_UNAVAILABLE (HTTP 503).
 *
 * Thread safety: reqsign_keydir_new() is thread-safe; lookup, refresh and
 * stats are thread-safe on one shared keydir. Call reqsign_global_init()
 * (reqsign/util.h) at program start, before threads: it sets libcurl up.
 * reqsign_keydir_new() calls it as well (idempotent) and fails with its error.
 */
#ifndef REQSIGN_KEYDIR_H
#define REQSIGN_KEYDIR_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/keylookup.h>
#include <reqsign/limits.h>

#ifdef __cplusplus
extern "C" {
#endif

#define REQSIGN_KEYDIR_DEFAULT_MIN_REFRESH 10      /* seconds */
#define REQSIGN_KEYDIR_DEFAULT_MAX_REFRESH 300     /* seconds */
#define REQSIGN_KEYDIR_DEFAULT_TIMEOUT_MS 2000     /* whole transfer */
#define REQSIGN_KEYDIR_DEFAULT_MAX_BODY (1u << 20) /* 1 MiB */
#define REQSIGN_KEYDIR_DEFAULT_MAX_KEYS 10000

struct reqsign_keydir_opts {
    const char *url;     /* http:// or https:// directory URL, NUL-terminated; required */
    int64_t min_refresh; /* seconds; 0: default; the rate limit and the shortest lifetime */
    int64_t max_refresh; /* seconds; 0: default; longest lifetime and longest stale service */
    long timeout_ms;     /* whole fetch; 0: default */
    size_t max_body;     /* bytes; 0: default */
    size_t max_keys;     /* entries in "keys"; 0: default */
    reqsign_verifier_clock_fn clock; /* NULL: time(NULL) */
    void *clock_ctx;
};

struct reqsign_keydir;

/**
 * reqsign_keydir_new() - check and copy the options; does not fetch.
 * @o:   options; the URL is copied.
 * @err: on failure, the reason; may be NULL.
 * Return: the keydir, or NULL with @err set (E_INVALID_ARG: no or non-http(s)
 * URL, negative values, min_refresh > max_refresh; E_NOMEM; E_HTTP or
 * E_CRYPTO: reqsign_global_init() failed).
 * Thread safety: thread-safe.
 */
REQSIGN_API struct reqsign_keydir *reqsign_keydir_new(const struct reqsign_keydir_opts *o,
                                                      struct reqsign_error *err);

/** reqsign_keydir_free() - release; NULL is a no-op. No lookup may be running. */
REQSIGN_API void reqsign_keydir_free(struct reqsign_keydir *kd);

/**
 * reqsign_keydir_lookup() - a reqsign_key_lookup_fn; @ctx is the keydir.
 * May fetch the directory (see "Refetch and rate limit" above).
 * Return: REQSIGN_OK (@out: public key, REQSIGN_KEY_ACTIVE, empty scopes),
 * REQSIGN_E_KEY_UNKNOWN, REQSIGN_E_KEYSTORE_UNAVAILABLE (no snapshot younger
 * than max_refresh), REQSIGN_E_INVALID_ARG.
 * Thread safety: thread-safe. Allocates: nothing unless it fetches.
 */
REQSIGN_API enum reqsign_status reqsign_keydir_lookup(void *ctx, const char *keyid,
                                                      size_t keyid_len,
                                                      struct reqsign_key_info *out,
                                                      struct reqsign_error *err);

/**
 * reqsign_keydir_refresh() - fetch the directory now, ignoring the rate limit
 * (ETag still sent). Use it to warm up at start, or to apply a revocation at once.
 * Return: REQSIGN_OK (200 with a valid document, or 304), REQSIGN_E_HTTP
 * (transport failure or unexpected status), REQSIGN_E_BODY_TOO_LARGE,
 * REQSIGN_E_JSON (malformed JSON, wrong types), REQSIGN_E_LIMIT (too many
 * keys, too deep), REQSIGN_E_NOMEM. On failure the snapshot is unchanged.
 * Thread safety: thread-safe (fetches are serialised).
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status reqsign_keydir_refresh(struct reqsign_keydir *kd,
                                                                         struct reqsign_error *err);

/** Counters for tests and metrics. */
struct reqsign_keydir_stats {
    uint64_t hits;         /* lookups answered with a key */
    uint64_t misses;       /* lookups answered REQSIGN_E_KEY_UNKNOWN */
    uint64_t unavailable;  /* lookups answered REQSIGN_E_KEYSTORE_UNAVAILABLE */
    uint64_t fetches;      /* HTTP requests sent */
    uint64_t updates;      /* 200 responses that replaced the snapshot */
    uint64_t not_modified; /* 304 responses */
    uint64_t fetch_errors; /* transport failures, timeouts, unexpected statuses */
    uint64_t parse_errors; /* refused documents: size, JSON, types, limits */
    uint64_t rate_limited; /* fetches a lookup wanted but the rate limit refused */
    uint64_t skipped;      /* entries skipped in the current snapshot */
    size_t keys;           /* keys in the current snapshot */
    int64_t fetched_at;    /* the snapshot's fetch time (last 200 or 304); 0: none */
    int64_t lifetime;      /* its freshness lifetime, seconds */
};

/** reqsign_keydir_stats() - a consistent copy of the counters. Thread-safe. */
REQSIGN_API void reqsign_keydir_stats(struct reqsign_keydir *kd, struct reqsign_keydir_stats *out);

#ifdef __cplusplus
}
#endif
#endif
