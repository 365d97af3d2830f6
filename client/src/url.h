/* reqsign internal: a URL split into what libcurl will send (scheme, the
 * Host authority, the origin-form request-target). Used by the signer.
 *
 * Two parsers give the same answer: reqsign__url_fast() handles the common,
 * plain URLs (no normalisation by any libcurl version can apply to them) in
 * a single pass with no allocation; everything else goes to
 * reqsign__url_curl(), libcurl's own URL API, so that what is signed is
 * exactly what libcurl puts on the wire. tests/unit/test_signer.c checks the
 * two against each other on generated URLs, and fuzz/fuzz_url.c on fuzzed ones.
 *
 * All functions are thread-safe. The only shared state is url.c's byte-class
 * table, filled once through pthread_once() and read-only afterwards.
 */
#ifndef REQSIGN_CLIENT_URL_H
#define REQSIGN_CLIENT_URL_H

#include <stddef.h>

#include <reqsign/error.h>
#include <reqsign/request.h>

struct reqsign__url_parts {
    char scheme[8];                            /* "http" or "https" */
    char authority[REQSIGN_AUTHORITY_OUT_BUF]; /* host[:port] as libcurl has it */
    char target[REQSIGN_TARGET_IN_MAX + 1];    /* path[?query], origin-form */
    size_t scheme_len, authority_len, target_len;
    size_t path_len; /* target[0..path_len) is the path; a query follows if < target_len */
};

/* 1 if @url (@n bytes, any bytes) is a plain http(s) URL that this parser
 * handles, with @u filled; 0 if it must go to reqsign__url_curl() (@u then
 * undefined). It takes RFC 3986 characters only, so never a space, control or
 * non-ASCII byte. Never fails otherwise. */
int reqsign__url_fast(const char *url, size_t n, struct reqsign__url_parts *u);

/* libcurl's parse of @url (CURLU_PATH_AS_IS if @path_as_is). */
enum reqsign_status reqsign__url_curl(const char *url, int path_as_is, struct reqsign__url_parts *u,
                                      struct reqsign_error *err);

/* The fast parser, else: check the bytes of @url, then libcurl's parser. */
enum reqsign_status reqsign__url_parse(const char *url, int path_as_is,
                                       struct reqsign__url_parts *u, struct reqsign_error *err);

#endif
