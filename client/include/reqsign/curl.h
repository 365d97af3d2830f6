/* reqsign: sign a libcurl transfer.
 *
 * reqsign_curl_prepare() signs a request and sets the options of an easy
 * handle the caller owns so that libcurl sends exactly what was signed:
 * CURLOPT_URL (the very string signed), the method, CURLOPT_PATH_AS_IS when
 * the signer keeps dot segments, the body (unless the caller sets it) and
 * CURLOPT_HTTPHEADER with Content-Digest, Signature-Input and Signature
 * appended to the caller's own header list. It only sets options: the handle
 * may then be run with curl_easy_perform() or added to a multi handle.
 *
 *   struct curl_slist *hdrs = NULL;
 *   struct reqsign_curl_request r = {.method = "POST", .url = url,
 *                                    .body = json, .body_len = len};
 *   hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
 *   if (reqsign_curl_prepare(signer, h, &r, &hdrs, NULL, &err) == REQSIGN_OK)
 *       curl_easy_perform(h);
 *   curl_slist_free_all(hdrs);
 *
 * A signature carries a nonce: a signed handle is for one transfer. Call
 * reqsign_curl_prepare() again (a fresh signature) before each retry or reuse.
 *
 * What the caller keeps alive until the transfer is done: the URL string, the
 * in-memory body (CURLOPT_POSTFIELDS does not copy), the header list, and the
 * upload object for a file body.
 *
 * Thread safety: every function here is safe on distinct handles (curl's
 * rule): one signer may be shared by threads preparing different handles.
 */
#ifndef REQSIGN_CURL_H
#define REQSIGN_CURL_H

#include <reqsign/defs.h>
#include <reqsign/error.h>
#include <reqsign/signer.h>

#include <curl/curl.h>

#ifdef __cplusplus
extern "C" {
#endif

/* reqsign_curl_request.flags */
/* The caller sets the body options itself (CURLOPT_POSTFIELDS, or
 * CURLOPT_READFUNCTION with CURLOPT_POST/CURLOPT_UPLOAD and the size):
 * prepare only signs @body (or uses @content_digest) and sets the method with
 * CURLOPT_CUSTOMREQUEST. Implied by @content_digest. */
#define REQSIGN_CURL_CALLER_BODY 0x1u

/* One request to sign. Give at most one of: @body/@body_len, @body_file,
 * @content_digest. None of them: an empty body. */
struct reqsign_curl_request {
    const char *method; /* NULL: "GET", or "POST" when there is a body */
    const char *url;    /* absolute http(s) URL; set as CURLOPT_URL unchanged */
    /* a body in memory: sent with CURLOPT_POSTFIELDS + CURLOPT_POSTFIELDSIZE_LARGE
     * (borrowed: keep it alive until the transfer is done) */
    const void *body;
    size_t body_len;
    /* a body streamed from a file: read once for the digest, then opened and
     * sent with a read callback (needs the @upload out-parameter) */
    const char *body_file;
    /* a Content-Digest value the caller computed (reqsign_digest_*,
     * reqsign_content_digest_file()); the caller streams the body itself */
    const char *content_digest;
    unsigned flags;    /* REQSIGN_CURL_* */
    int64_t created;   /* 0: the signer's clock */
    const char *nonce; /* NULL: random */
    /* optional: receives the fields and, if out->base_buf is set, the
     * signature base (for debugging: `reqsign send -v`) */
    struct reqsign_signed *out;
};

/* The open body file of a streamed upload; free it after the transfer. */
struct reqsign_curl_upload;

/**
 * reqsign_curl_prepare() - sign @r and set @h up to send it.
 * @s:       the signer; not modified.
 * @h:       the caller's easy handle; options set: CURLOPT_URL, CURLOPT_HTTPHEADER,
 *           CURLOPT_PATH_AS_IS (1 if the signer's path_as_is, else 0), and for the
 *           method and body: CURLOPT_NOBODY (HEAD), CURLOPT_HTTPGET, CURLOPT_POST,
 *           CURLOPT_POSTFIELDS, CURLOPT_POSTFIELDSIZE_LARGE, CURLOPT_UPLOAD,
 *           CURLOPT_INFILESIZE_LARGE, CURLOPT_READFUNCTION, CURLOPT_READDATA,
 *           CURLOPT_CUSTOMREQUEST (the method when libcurl's own is not it; else NULL).
 *           A file body is sent with CURLOPT_UPLOAD for PUT, CURLOPT_POST otherwise.
 *           Like curl -d, a POST-style body gets libcurl's default
 *           "Content-Type: application/x-www-form-urlencoded" unless the caller sets one.
 * @r:       the request.
 * @headers: in: the caller's list (may point to NULL); out: the same list with
 *           the three signature fields appended, and "Expect:" (which stops
 *           libcurl's "Expect: 100-continue") unless the caller set Expect. The
 *           caller frees it with curl_slist_free_all() after the transfer. If the
 *           caller's list already has Content-Digest, Signature-Input or Signature,
 *           nothing is set and REQSIGN_E_INVALID_ARG is returned.
 * @upload:  for @r->body_file: receives the open file (free with
 *           reqsign_curl_upload_free() after the transfer); else may be NULL.
 * @err:     on failure, code and message; may be NULL.
 * Return: REQSIGN_OK; REQSIGN_E_INVALID_ARG; REQSIGN_E_URL; REQSIGN_E_IO (body file);
 * REQSIGN_E_NOMEM; REQSIGN_E_HTTP (libcurl refused an option); the signer's codes.
 * On failure, *@headers is as it was and *@upload is NULL; options may have been set.
 * Thread safety: safe on distinct @h (and distinct @headers); @s may be shared.
 */
REQSIGN_API REQSIGN_NODISCARD enum reqsign_status
reqsign_curl_prepare(const struct reqsign_signer *s, CURL *h, const struct reqsign_curl_request *r,
                     struct curl_slist **headers, struct reqsign_curl_upload **upload,
                     struct reqsign_error *err);

/**
 * reqsign_curl_upload_free() - close the body file; NULL is a no-op. Call it
 * after the transfer that reads it has finished (or been removed from its multi).
 * Thread safety: safe on distinct uploads.
 */
REQSIGN_API void reqsign_curl_upload_free(struct reqsign_curl_upload *u);

/**
 * reqsign_curl_upload_size() - the number of bytes the upload sends.
 * Thread safety: safe on distinct uploads.
 */
REQSIGN_API int64_t reqsign_curl_upload_size(const struct reqsign_curl_upload *u);

#ifdef __cplusplus
}
#endif
#endif
