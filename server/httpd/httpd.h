/* reqsign-httpd: internal HTTP glue shared by reqsignd and the example
 * api-backend, on libmicrohttpd. Not installed, not a public API.
 *
 * What it does for a server:
 *   - parses `--listen HOST:PORT` (IPv4 or [IPv6]; port 0 picks one), starts
 *     a libmicrohttpd daemon there (internal thread pool, connection timeout,
 *     per-connection memory limit) and prints `listening on http://HOST:PORT`;
 *   - builds a struct reqsign_request view of each request with the RAW
 *     request-target as it appeared on the request line (libmicrohttpd
 *     unescapes the URL it hands to the access handler and splits off the
 *     query; the verifier must see the bytes the client signed), the Host
 *     header as authority and every header line in arrival order;
 *   - calls the server in three steps, so a verifier can reject a request
 *     before reading its body and stream the body afterwards:
 *     headers() -> body() per chunk -> end();
 *   - caps the body (413 body_too_large from Content-Length before reading,
 *     or as soon as the bytes exceed it);
 *   - JSON responses (Cache-Control: no-store) and JSON error bodies with the
 *     status of spec/PROTOCOL.md section 10, `Accept-Signature` on 401;
 *   - logs one line per request to stderr (buffered, written by a logger
 *     thread): UTC time, client, method, path, status, duration, keyid,
 *     target keyid; text or JSON (reqsign_httpd_format_log());
 *   - optional TLS (GnuTLS via libmicrohttpd), reloaded on SIGHUP;
 *   - on SIGTERM / SIGINT: stops accepting, lets in-flight requests finish
 *     (at most 10 s), stops.
 *
 * Thread safety: the handlers run on libmicrohttpd's pool threads, several
 * at once; one struct reqsign_httpd_req is used by one thread at a time.
 */
#ifndef REQSIGN_HTTPD_H
#define REQSIGN_HTTPD_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include <reqsign/error.h>
#include <reqsign/limits.h>
#include <reqsign/request.h>

#include "opt.h"

#define REQSIGN_HTTPD_DEFAULT_MAX_BODY (64u * 1024u)
#define REQSIGN_HTTPD_DEFAULT_TIMEOUT 10 /* seconds of inactivity before a connection is closed */
#define REQSIGN_HTTPD_DRAIN_SECONDS 10   /* longest wait for in-flight requests at shutdown */
/* Slow clients: the request line and headers must be complete this long after
 * a connection opens (or its previous request ended), and the whole request
 * this long after its headers; otherwise the connection is shut down. */
#define REQSIGN_HTTPD_HEADER_SECONDS 10
#define REQSIGN_HTTPD_REQUEST_SECONDS 60

/* What 401 responses carry (RFC 9421 section 5): the signature we ask for. */
#define REQSIGN_HTTPD_ACCEPT_SIGNATURE                                                             \
    "sig1=(\"@method\" \"@authority\" \"@path\" \"@query\" \"content-digest\")"                    \
    ";created;nonce;keyid;alg=\"ed25519\""

struct reqsign_httpd;
struct reqsign_httpd_conn; /* internal per-request state */

/* Most headers a response carries besides the ones libmicrohttpd adds
 * (Content-Type and Cache-Control included); further ones are dropped. */
#define REQSIGN_HTTPD_RESPONSE_HEADERS_MAX 8

struct reqsign_httpd_response_header {
    char *name, *value; /* malloc'd, NUL-terminated */
};

/* A response as data. The respond functions below fill the one in struct
 * reqsign_httpd_req; the server turns it into a libmicrohttpd response once
 * the handler returns, the in-process driver hands it to its caller. */
struct reqsign_httpd_response {
    unsigned status; /* 0: no response made yet */
    char *body;      /* malloc'd, @len bytes (not NUL-terminated); NULL only if @status is 0 */
    size_t len;
    int secret; /* the body holds a secret: wiped (reqsign_memzero) before it is freed */
    struct reqsign_httpd_response_header headers[REQSIGN_HTTPD_RESPONSE_HEADERS_MAX];
    size_t n_headers; /* in order: Content-Type, Cache-Control, then the added ones */
};

/* One request, as the handlers see it. Everything here is valid from
 * headers() until done(). */
struct reqsign_httpd_req {
    struct reqsign_request view; /* for the verifier: method, scheme, authority, raw target,
                                    headers in arrival order (duplicates kept) */
    const char *method;          /* NUL-terminated */
    struct reqsign_span path;    /* raw path part of the target (before '?') */
    struct reqsign_span query;   /* raw query without the '?'; empty if none */
    int has_content_length;
    uint64_t content_length;
    uint64_t body_received;                      /* bytes handed to body() so far */
    void *app;                                   /* the server's own per-request state */
    char keyid[REQSIGN_KEYID_IN_MAX + 1];        /* set by the server for the log line */
    char target_keyid[REQSIGN_KEYID_IN_MAX + 1]; /* management calls: the key acted on (log) */
    char peer[64];                               /* the client's address; "" in-process */
    struct reqsign_httpd_response resp;          /* what the respond functions made */
    struct reqsign_httpd_conn *conn;             /* internal; NULL in-process */
};

struct reqsign_httpd_handlers {
    /* All headers are in, no body byte has been read. Respond now to reject
     * the request without reading its body (the connection is then closed),
     * or return without responding to go on with the body. */
    void (*headers)(void *ctx, struct reqsign_httpd_req *r);
    /* Body bytes, in order, any chunking. May respond: the rest of the body
     * is then discarded (up to a bound, then the connection is dropped).
     * NULL: the body is discarded. */
    void (*body)(void *ctx, struct reqsign_httpd_req *r, const char *data, size_t len);
    /* The whole body was read: respond (a 500 is sent if it does not). */
    void (*end)(void *ctx, struct reqsign_httpd_req *r);
    /* The request is over (answered, or the connection went away): release
     * r->app. May be NULL. Also called when headers() was never reached. */
    void (*done)(void *ctx, struct reqsign_httpd_req *r);
};

struct reqsign_httpd_opts {
    const char *listen; /* "HOST:PORT", "[V6]:PORT"; required */
    const char *scheme; /* the scheme put in the request view; NULL: "http" */
    size_t max_body;    /* 0: REQSIGN_HTTPD_DEFAULT_MAX_BODY */
    unsigned threads;   /* event-loop threads; 0: reqsign_httpd_default_threads() */
    unsigned timeout;   /* seconds; 0: REQSIGN_HTTPD_DEFAULT_TIMEOUT */
    const char *name;   /* program name for messages */
    const struct reqsign_httpd_handlers *handlers;
    void *ctx;
    /* TLS (GnuTLS through libmicrohttpd, TLS 1.2 and 1.3 only): PEM files of
     * the certificate chain and of its private key, both or neither. The key
     * file's bytes are wiped once parsed. SIGHUP reads both again; a new
     * connection then gets the new certificate (a failed reload keeps the
     * old one and logs why). */
    const char *tls_cert, *tls_key;
    /* Plain HTTP on an address other than loopback is refused unless this is
     * set (a TLS-terminating proxy in front): see reqsign_httpd_check_opts(). */
    int insecure_http;
    int log_json; /* request log lines as JSON objects instead of key=value text */
};

/* Request log formats (--log-format). */
#define REQSIGN_HTTPD_LOG_FORMATS "text|json"

/**
 * reqsign_httpd_check_opts() - the checks on @o that are usage errors (exit
 * 2), made before anything is opened: --tls-cert and --tls-key come together
 * (and their files are readable), and a non-loopback --listen without TLS
 * needs @o->insecure_http. Return: 0, or -1 with a message on stderr.
 */
int reqsign_httpd_check_opts(const struct reqsign_httpd_opts *o);

/**
 * reqsign_httpd_check_authority() - the --authority / --any-authority usage
 * rules of both servers: one or the other is required and they exclude each
 * other (usage errors, messages on stderr naming @prog); with
 * --any-authority, the start-up warning. Return: 0, or -1 (exit 2).
 */
int reqsign_httpd_check_authority(const char *prog, size_t n_authorities, int any_authority);

/* The serving options every server takes, for usage texts. */
#define REQSIGN_HTTPD_OPTIONS_USAGE                                                                \
    "  --tls-cert FILE --tls-key FILE: serve HTTPS (TLS 1.2+; SIGHUP reloads both files)\n"        \
    "  --insecure-http: allow plain HTTP on a non-loopback address (TLS proxy in front)\n"         \
    "  --public-scheme http|https: the scheme clients use (behind a TLS-terminating proxy)\n"      \
    "  --log-format text|json: request log lines on stderr (default text)\n"

/* The serving options above, as rows of a server's option table
 * (common/opt/opt.h), and their ids (above every server's own). */
enum {
    REQSIGN_HTTPD_O_TLS_CERT = 2000,
    REQSIGN_HTTPD_O_TLS_KEY,
    REQSIGN_HTTPD_O_INSECURE_HTTP,
    REQSIGN_HTTPD_O_PUBLIC_SCHEME,
    REQSIGN_HTTPD_O_LOG_FORMAT,
};
#define REQSIGN_HTTPD_OPTS                                                                         \
    {"tls-cert", 0, REQSIGN_OPT_VALUE, REQSIGN_HTTPD_O_TLS_CERT},                                  \
        {"tls-key", 0, REQSIGN_OPT_VALUE, REQSIGN_HTTPD_O_TLS_KEY},                                \
        {"insecure-http", 0, REQSIGN_OPT_FLAG, REQSIGN_HTTPD_O_INSECURE_HTTP},                     \
        {"public-scheme", 0, REQSIGN_OPT_VALUE, REQSIGN_HTTPD_O_PUBLIC_SCHEME},                    \
    {                                                                                              \
        "log-format", 0, REQSIGN_OPT_VALUE, REQSIGN_HTTPD_O_LOG_FORMAT                             \
    }

/**
 * reqsign_httpd_option() - take option @id (one of REQSIGN_HTTPD_OPTS, with
 * its value @val as reqsign_opt_next() found it) into @o. --public-scheme
 * sets @o->scheme. @prog names the program in messages.
 * Return: 1 taken, 0 not one of these, -1 a bad value (message on stderr: a
 * usage error).
 */
int reqsign_httpd_option(struct reqsign_httpd_opts *o, const char *prog, int id, const char *val);

/**
 * reqsign_httpd_parse_log_format() - "text" (0) or "json" (1) into *@json.
 * Return: 0, or -1 for anything else.
 */
int reqsign_httpd_parse_log_format(const char *s, int *json);

/**
 * reqsign_httpd_format_log() - one request log line (with its newline) into
 * @buf: UTC timestamp (RFC 3339, milliseconds), client address, method,
 * path (without the query), status, duration in milliseconds, signing keyid,
 * target keyid; "-" for what is missing. Text is `key=value` pairs separated
 * by single spaces, values without spaces; JSON one object. Bytes outside
 * printable ASCII (and space) become '?'. Never headers, a query, a body.
 * Exposed for the unit tests. Return: the length written (< @cap).
 */
size_t reqsign_httpd_format_log(char *buf, size_t cap, int json, int64_t unix_ms,
                                const char *client, const char *method, struct reqsign_span path,
                                unsigned status, double ms, const char *keyid,
                                const char *target_keyid);

/**
 * reqsign_httpd_start() - block SIGTERM/SIGINT (so every thread inherits the
 * mask), ignore SIGPIPE, bind and start the daemon, print the listening line.
 * Return: the server, or NULL with a message on stderr.
 */
struct reqsign_httpd *reqsign_httpd_start(const struct reqsign_httpd_opts *o);

/* The number of event-loop threads when the options say 0: the online CPUs. */
unsigned reqsign_httpd_default_threads(void);

/**
 * reqsign_httpd_run() - wait for SIGTERM or SIGINT (SIGHUP: reload the TLS
 * certificate and key, if any), stop accepting, wait for in-flight requests (at most
 * REQSIGN_HTTPD_DRAIN_SECONDS), stop and free. Return: 0.
 */
int reqsign_httpd_run(struct reqsign_httpd *h);

/**
 * reqsign_httpd_wipe_json() - make jansson wipe every block it frees
 * (json_set_alloc_funcs() with a free that zeroes malloc_usable_size()
 * bytes first), so that parsed JSON that held key material (a private JWK or
 * PEM sent by mistake, the lexer's buffers) does not stay in freed memory.
 * Call once at program start, before any jansson call and any thread.
 */
void reqsign_httpd_wipe_json(void);

/* ---- responses: call at most once per request (later calls are ignored) ---- */

/** reqsign_httpd_respond() - @body (copied) with Content-Type @ctype and Cache-Control: no-store.
 */
void reqsign_httpd_respond(struct reqsign_httpd_req *r, unsigned status, const char *ctype,
                           const char *body, size_t len);

/**
 * reqsign_httpd_respond_secret() - respond with @body, which holds a secret:
 * ownership of @body (malloc'd, @len bytes) passes to the response, which
 * wipes it (reqsign_memzero) and frees it once sent or abandoned. Never
 * logged. On failure @body is wiped and freed at once and a 500 is sent.
 */
void reqsign_httpd_respond_secret(struct reqsign_httpd_req *r, unsigned status, char *body,
                                  size_t len);

/** reqsign_httpd_respond_cache() - the same with Cache-Control @cache_control (static files). */
void reqsign_httpd_respond_cache(struct reqsign_httpd_req *r, unsigned status, const char *ctype,
                                 const char *body, size_t len, const char *cache_control);

/** reqsign_httpd_respond_json() - serialize @v (not consumed) with Cache-Control: no-store. */
void reqsign_httpd_respond_json(struct reqsign_httpd_req *r, unsigned status, const json_t *v);
/** reqsign_httpd_respond_json_cache() - the same with Cache-Control @cache_control. */
void reqsign_httpd_respond_json_cache(struct reqsign_httpd_req *r, unsigned status, const json_t *v,
                                      const char *cache_control);
/** reqsign_httpd_respond_cache() - reqsign_httpd_respond() with Cache-Control @cache_control. */
void reqsign_httpd_respond_cache(struct reqsign_httpd_req *r, unsigned status, const char *ctype,
                                 const char *body, size_t len, const char *cache_control);

/**
 * reqsign_httpd_respond_error() - the spec's JSON error body for @err
 * (wire name, message, server_time for clock errors) with the status
 * reqsign_http_status(err->code); 401 carries Accept-Signature. A 5xx body
 * carries only the generic reqsign_strerror() text; @err's detail (a store's
 * address, its reply, ...) is logged to stderr instead.
 */
void reqsign_httpd_respond_error(struct reqsign_httpd_req *r, const struct reqsign_error *err);

/** reqsign_httpd_fail() - the same from a code and a printf-style message. */
void reqsign_httpd_fail(struct reqsign_httpd_req *r, enum reqsign_status code, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/**
 * reqsign_httpd_add_header() - add a header to the response already made by
 * one of the functions above (e.g. Allow, Content-Disposition). Ignored if
 * there is none.
 */
void reqsign_httpd_add_header(struct reqsign_httpd_req *r, const char *name, const char *value);

/** reqsign_httpd_responded() - 1 if a response was made for @r. */
int reqsign_httpd_responded(const struct reqsign_httpd_req *r);

/**
 * reqsign_httpd_response_clear() - release what @resp holds (a secret body is
 * wiped first) and zero it. A zeroed struct is fine; NULL is a no-op.
 */
void reqsign_httpd_response_clear(struct reqsign_httpd_response *resp);

/** reqsign_httpd_response_header() - the value of header @name (case-insensitive) or NULL. */
const char *reqsign_httpd_response_header(const struct reqsign_httpd_response *resp,
                                          const char *name);

/* ---- in-process requests (tests, fuzzing): the same three phases, no network ---- */

struct reqsign_httpd_local;

/**
 * reqsign_httpd_local_begin() - run one request through @o->handlers with
 * @o->ctx, as the server would: the request view is built the same way (Host
 * as authority, @target raw, headers in the given order), a Content-Length
 * above @o->max_body is answered 413 before headers() runs, else headers()
 * runs at once. @o->listen, threads, timeout and name are not used.
 * @method and every header name and value are copied (NUL-terminated, as
 * libmicrohttpd gives them) and must not hold NUL, CR or LF, nor @method and
 * @target a space; the header names not ':' either.
 * Return: the request, or NULL (such bytes, empty method or target, out of memory).
 */
struct reqsign_httpd_local *reqsign_httpd_local_begin(const struct reqsign_httpd_opts *o,
                                                      const char *method, const char *target,
                                                      size_t target_len,
                                                      const struct reqsign_header *headers,
                                                      size_t n_headers);

/**
 * reqsign_httpd_local_body() - the next @len body bytes, any chunking. Once a
 * response is made the rest is dropped (the server reads and discards it).
 * Return: 1 if a response was made (the body can stop), else 0.
 */
int reqsign_httpd_local_body(struct reqsign_httpd_local *l, const char *data, size_t len);

/**
 * reqsign_httpd_local_finish() - the body is complete: end() runs unless a
 * response was made, then done(); the response moves to @out (the caller
 * clears it with reqsign_httpd_response_clear()), @l is freed. Nothing is
 * logged. @out->status is 0 only if no response could be made (out of memory).
 */
void reqsign_httpd_local_finish(struct reqsign_httpd_local *l, struct reqsign_httpd_response *out);

/* ---- request helpers ---- */

/** reqsign_httpd_header() - the first line of header @name (case-insensitive), or NULL. */
const char *reqsign_httpd_header(const struct reqsign_httpd_req *r, const char *name);

/** reqsign_httpd_path_is() - 1 if the raw path equals @s. */
int reqsign_httpd_path_is(const struct reqsign_httpd_req *r, const char *s);

/** reqsign_httpd_parse_listen() - split "HOST:PORT" / "[V6]:PORT"; 0 or -1. */
int reqsign_httpd_parse_listen(const char *s, char *host, size_t host_cap, uint16_t *port);

/** reqsign_httpd_parse_seconds() - a non-negative decimal integer option; 0 or -1. */
int reqsign_httpd_parse_seconds(const char *s, int64_t *out);

/** reqsign_httpd_no_core_dumps() - prctl(PR_SET_DUMPABLE, 0) and RLIMIT_CORE 0; 0 or -1. */
int reqsign_httpd_no_core_dumps(void);

#endif
