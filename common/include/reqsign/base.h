/* reqsign: the RFC 9421 signature base (section 2.5).
 *
 * One builder serves the signer and the verifier: it takes the request view
 * and one parsed Signature-Input member (the covered components as an inner
 * list of strings with their parameters, plus the signature parameters) and
 * writes the exact bytes that are signed.
 *
 * Supported derived components: @method @target-uri @authority @scheme
 * @request-target @path @query @query-param;name. Field components with the
 * sf, key and bs parameters. `req` and `tr`, and @status, fail (a request
 * signature; trailers are not signed by this profile).
 *
 * Thread safety: thread-safe (no state).
 */
#ifndef REQSIGN_BASE_H
#define REQSIGN_BASE_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/limits.h>
#include <reqsign/request.h>
#include <reqsign/sf.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * reqsign_base_build() - write the signature base for member @m of the
 * parsed Signature-Input @si, for request @req, into @out (@cap bytes,
 * not NUL-terminated); *@out_len = bytes written.
 * Return: REQSIGN_OK, REQSIGN_E_COMPONENT_DUPLICATE, REQSIGN_E_COMPONENT_UNKNOWN,
 * REQSIGN_E_COMPONENT_ABSENT, REQSIGN_E_COMPONENT_INVALID,
 * REQSIGN_E_SIG_INPUT_MALFORMED (member is not an inner list of strings),
 * REQSIGN_E_URL, REQSIGN_E_LIMIT, REQSIGN_E_BUFFER_TOO_SMALL (@cap too small;
 * @err says so like any other failure).
 * @err: reset on entry; on failure, code, offset and message; may be NULL.
 * Thread safety: thread-safe. Allocates: nothing.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_base_build(const struct reqsign_request *req, const struct reqsign_sf_parsed *si,
                   const struct reqsign_sf_member *m, char *out, size_t cap, size_t *out_len,
                   struct reqsign_error *err);

#ifdef __cplusplus
}
#endif
#endif
