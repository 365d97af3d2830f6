/* reqsignd's request handling, apart from the CLI and the network
 * (docs/KEYSERVICE.md). Internal to reqsignd and its fuzz target.
 *
 * One struct reqsignd_service holds what every request needs: the key store
 * (borrowed), the key cache, the in-memory nonce store and the verifier. Its
 * handlers (reqsignd_service_handlers()) run under libmicrohttpd through
 * reqsign_httpd_start(), or in-process through reqsignd_handle() and
 * reqsignd_begin(): the same code, the same three phases (the signature is
 * verified from the headers before any body byte is read, the body is
 * streamed into the digest check, nothing is acted on before it matched).
 *
 * Thread safety: a service may be used by several threads at once (the
 * store, cache, nonce store and verifier are thread-safe).
 */
#ifndef REQSIGND_SERVICE_H
#define REQSIGND_SERVICE_H

#include <stddef.h>
#include <stdint.h>

#include <reqsign/error.h>
#include <reqsign/key.h>
#include <reqsign/keycache.h>
#include <reqsign/keystore.h>
#include <reqsign/nonce.h>

#include "httpd.h"

#define REQSIGND_ADMIN_SCOPE "keys:admin"
#define REQSIGND_MAX_SCOPES 16
#define REQSIGND_ENROLLMENT_TTL 86400 /* --enrollment-ttl default */

struct reqsignd_service_opts {
    /* --authority HOST[:PORT] (repeatable; alias --public-authority): the
     * authorities the verifier accepts. None requires any_authority
     * (--any-authority: @authority from each request's Host). With exactly
     * one, it also makes the "service" URL of credentials (http://AUTHORITY). */
    const char *const *authorities;
    size_t n_authorities;
    int any_authority;
    int64_t max_age;                    /* seconds, >= 1 */
    int64_t skew;                       /* seconds, >= 0 (0: no skew allowance) */
    int64_t cache_ttl;                  /* seconds, >= 1: key cache, positive and negative */
    size_t max_body;                    /* in-process requests; 0: REQSIGN_HTTPD_DEFAULT_MAX_BODY */
    struct reqsign_nonce_store *nonces; /* borrowed (--nonce-store); NULL: in-memory, own */
    const char *public_scheme; /* scheme of the "service" URL of credentials; NULL: "http" */
    const char
        *verify_scheme;     /* --public-scheme: the verifier's public_scheme; NULL: the request's */
    const char *api_url;    /* --api-url: "api" of the credentials issued; NULL: none */
    int64_t enrollment_ttl; /* seconds; 0: REQSIGND_ENROLLMENT_TTL */
    int64_t last_used_interval; /* seconds; 0: last use not recorded */
    const char *verifier_name;  /* last_used_by; NULL: "reqsignd" */
};

struct reqsignd_service;

/**
 * reqsignd_service_new() - the key cache over @store (borrowed: it must
 * outlive the service), an in-memory nonce store and the verifier.
 * Return: the service, or NULL with @err set (its message may be empty when
 * out of memory).
 */
struct reqsignd_service *reqsignd_service_new(struct reqsign_keystore *store,
                                              const struct reqsignd_service_opts *o,
                                              struct reqsign_error *err);

/** reqsignd_service_free() - release all but the store; NULL is a no-op. */
void reqsignd_service_free(struct reqsignd_service *s);

/** reqsignd_service_keycache() - the service's key cache (for LISTEN/NOTIFY invalidation). */
struct reqsign_keycache *reqsignd_service_keycache(struct reqsignd_service *s);

/** reqsignd_service_handlers() - the handlers, for reqsign_httpd_opts (ctx: the service). */
const struct reqsign_httpd_handlers *reqsignd_service_handlers(void);

/* One request for the in-process entry points. */
struct reqsignd_request {
    const char *method; /* NUL-terminated: "GET", "POST", ... */
    const char *target; /* the raw request-target as on the request line, @target_len bytes */
    size_t target_len;
    const struct reqsign_header *headers; /* field lines in arrival order, Host among them */
    size_t n_headers;
};

/**
 * reqsignd_handle() - one whole request in memory, as if it came over the
 * network (scheme "http"): status, headers and a malloc'd body land in @out,
 * which the caller releases with reqsign_httpd_response_clear() (it wipes a
 * body holding a generated private key). Never touches the network; logs
 * nothing. For a body fed in chunks use reqsignd_begin().
 * Return: 0, or -1 if @req cannot be a request (see reqsign_httpd_local_begin())
 * or memory ran out (@out is then zeroed).
 */
int reqsignd_handle(struct reqsignd_service *s, const struct reqsignd_request *req,
                    const char *body, size_t body_len, struct reqsign_httpd_response *out);

/**
 * reqsignd_begin() - the same, body in chunks: phase one has run when this
 * returns; feed the body with reqsign_httpd_local_body(), then call
 * reqsign_httpd_local_finish(). Return: NULL as reqsign_httpd_local_begin().
 */
struct reqsign_httpd_local *reqsignd_begin(struct reqsignd_service *s,
                                           const struct reqsignd_request *req);

/* The validated body of POST /v1/keys. */
struct reqsignd_create_req {
    char label[REQSIGN_KEY_LABEL_IN_MAX + 1];
    char scopes[REQSIGN_SCOPE_LIST_BUF];         /* space-separated */
    int64_t expires_at;                          /* 0: never */
    struct reqsign_key *public_key;              /* the key to register; NULL: generate one */
    char account[REQSIGN_ACCOUNT_ID_IN_MAX + 1]; /* "account" (keys:admin); "" none */
    int publish;                                 /* "publish": list it in the public directory */
    long json_position; /* on REQSIGN_E_JSON: byte offset of the syntax error */
};

/**
 * reqsignd_parse_create() - validate the JSON body of POST /v1/keys (label,
 * scopes, expires_at after @now, public_key) without touching the store.
 * On success the caller frees @out->public_key (reqsign_key_free()).
 * Return: REQSIGN_OK; REQSIGN_E_JSON (malformed JSON: @err->message is
 * jansson's text, @out->json_position its offset); REQSIGN_E_INVALID_REQUEST
 * with the message the service answers. Pure: no I/O, no global state.
 */
enum reqsign_status reqsignd_parse_create(const char *body, size_t len, int64_t now,
                                          struct reqsignd_create_req *out,
                                          struct reqsign_error *err);

/**
 * reqsignd_init_admin() - what `reqsignd init` does to the store: generate
 * the first key, with scope keys:admin and label "admin", insert it into @ks
 * and build its credential JSON (with the private key, "service" @service or
 * null) in *@cred, malloc'd, *@cred_len bytes, which the caller wipes
 * (reqsign_memzero) and frees. *@key (may be NULL) receives the private key
 * (free with reqsign_key_free()).
 * Return: 0; 1 the key could not be made; 2 the store refused it (@err);
 * 3 the credential could not be built.
 */
int reqsignd_init_admin(struct reqsign_keystore *ks, const char *service, char **cred,
                        size_t *cred_len, char keyid[REQSIGN_KEYID_IN_MAX + 1],
                        struct reqsign_key **key, struct reqsign_error *err);

#endif
