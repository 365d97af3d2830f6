/* reqsign: a read-only view of an HTTP request, as the signer will send it
 * or as the verifier received it, and the RFC 9421 derived components.
 *
 * Thread safety: all functions are thread-safe (no state).
 */
#ifndef REQSIGN_REQUEST_H
#define REQSIGN_REQUEST_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/limits.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Request view. All spans are borrowed for the duration of a call. */
struct reqsign_request {
    struct reqsign_span method;    /* "POST", case-sensitive, never changed */
    struct reqsign_span scheme;    /* "https" / "http"; may be empty (then @scheme,
                                      @target-uri fail and the default port is kept) */
    struct reqsign_span authority; /* host[:port] as sent (Host / :authority) */
    struct reqsign_span target;    /* request-target exactly as on the request line,
                                      origin-form: "/path?query" */
    const struct reqsign_header *headers;
    size_t n_headers;
};

/**
 * reqsign_authority_normalize() - RFC 9110 4.2.3 / RFC 9421 2.2.3: host
 * lowercased, the scheme's default port (80 http, 443 https) removed, IPv6
 * literal kept in brackets. Rejects empty hosts, userinfo, bad ports, bytes
 * outside the RFC 3986 reg-name grammar, and an IP-literal that is not an
 * RFC 3986 IPv6address (IPvFuture and zone identifiers are refused too) with
 * REQSIGN_E_URL (err->offset set), and an authority longer than
 * REQSIGN_AUTHORITY_IN_MAX with REQSIGN_E_LIMIT. The signer checks URLs with it
 * as well. Writes a NUL-terminated result into @out
 * (REQSIGN_E_BUFFER_TOO_SMALL if @cap is too small).
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_authority_normalize(struct reqsign_span scheme, struct reqsign_span authority, char *out,
                            size_t cap, size_t *out_len, struct reqsign_error *err);

/**
 * reqsign_target_split() - split an origin-form request-target into the
 * @path value ("/" for an empty path) and the @query value (with its "?",
 * "?" when there is none). No decoding, no dot-segment removal. *@has_query
 * (may be NULL) is true when the target contains a '?', even with an empty query.
 * Return: REQSIGN_OK, REQSIGN_E_URL for a target that is not origin-form
 * (does not start with "/") or holds bytes outside %x21-7E, REQSIGN_E_LIMIT
 * for one longer than REQSIGN_TARGET_IN_MAX.
 * Thread safety: thread-safe.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_target_split(struct reqsign_span target, struct reqsign_span *path,
                     struct reqsign_span *query, bool *has_query, struct reqsign_error *err);

/**
 * reqsign_request_header_count() - number of field lines named @name
 * (case-insensitive) in @req.
 */
REQSIGN_API size_t reqsign_request_header_count(const struct reqsign_request *req, const char *name,
                                                size_t name_len);

#ifdef __cplusplus
}
#endif
#endif
