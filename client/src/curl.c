/* reqsign: sign a libcurl transfer (see reqsign/curl.h).
 *
 * Nothing here is secret: the key stays inside the signer. The body file is
 * read twice through one open descriptor (digest pass, then rewind and send),
 * so the bytes signed and sent come from the same file even if the path is
 * replaced in between.
 */
#include <reqsign/curl.h>
#include <reqsign/digest.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

static const char SRC[] = "curl";

struct reqsign_curl_upload {
    FILE *f;
    int64_t size;
    int64_t sent;
};

/* see reqsign/curl.h */
void reqsign_curl_upload_free(struct reqsign_curl_upload *u)
{
    if (u == NULL)
        return;
    if (u->f != NULL)
        fclose(u->f);
    free(u);
}

/* see reqsign/curl.h */
int64_t reqsign_curl_upload_size(const struct reqsign_curl_upload *u)
{
    return u != NULL ? u->size : 0;
}

static size_t upload_read(char *buf, size_t size, size_t nitems, void *ud)
{
    struct reqsign_curl_upload *u = ud;
    size_t want = size * nitems;
    size_t n;

    if ((int64_t)want > u->size - u->sent)
        want = (size_t)(u->size - u->sent);
    if (want == 0)
        return 0;
    n = fread(buf, 1, want, u->f);
    if (n == 0 && ferror(u->f))
        return CURL_READFUNC_ABORT;
    u->sent += (int64_t)n;
    return n;
}

/* Open @path, check it is a regular file, and compute its Content-Digest. */
static enum reqsign_status upload_open(const char *path, unsigned algs,
                                       struct reqsign_curl_upload **out, char *digest,
                                       size_t digest_cap, struct reqsign_error *err)
{
    struct reqsign_curl_upload *u;
    struct reqsign_digest d;
    struct stat sb;
    char buf[65536];
    size_t len;
    enum reqsign_status st;

    *out = NULL;
    u = calloc(1, sizeof(*u));
    if (u == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET, NULL);
    u->f = fopen(path, "rbe");
    if (u->f == NULL) {
        st = reqsign_error_set(err, REQSIGN_E_IO, "body", REQSIGN_NO_OFFSET, "%s: %s", path,
                               strerror(errno));
        goto fail;
    }
    if (fstat(fileno(u->f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = reqsign_error_set(err, REQSIGN_E_IO, "body", REQSIGN_NO_OFFSET,
                               "%s: not a regular file", path);
        goto fail;
    }
    st = reqsign_digest_init(&d, algs, NULL);
    if (st != REQSIGN_OK) {
        st = reqsign_error_set(err, st, "body", REQSIGN_NO_OFFSET, NULL);
        goto fail;
    }
    for (;;) {
        size_t n = fread(buf, 1, sizeof(buf), u->f);
        if (n == 0) {
            if (ferror(u->f)) {
                reqsign_digest_cleanup(&d);
                st = reqsign_error_set(err, REQSIGN_E_IO, "body", REQSIGN_NO_OFFSET,
                                       "%s: read error", path);
                goto fail;
            }
            break;
        }
        st = reqsign_digest_update(&d, buf, n, NULL);
        if (st != REQSIGN_OK) {
            reqsign_digest_cleanup(&d);
            st = reqsign_error_set(err, st, "body", REQSIGN_NO_OFFSET, NULL);
            goto fail;
        }
    }
    u->size = (int64_t)d.total;
    st = reqsign_digest_final(&d, digest, digest_cap, &len, NULL, NULL, NULL);
    if (st != REQSIGN_OK) {
        st = reqsign_error_set(err, st, "body", REQSIGN_NO_OFFSET, NULL);
        goto fail;
    }
    if (fseeko(u->f, 0, SEEK_SET) != 0) {
        st = reqsign_error_set(err, REQSIGN_E_IO, "body", REQSIGN_NO_OFFSET, "%s: %s", path,
                               strerror(errno));
        goto fail;
    }
    *out = u;
    return REQSIGN_OK;
fail:
    reqsign_curl_upload_free(u);
    return st;
}

/* The field name of a curl_slist entry ("Name: value", "Name;", "Name:")
 * equals @name, ASCII case-insensitively. */
static int entry_is(const char *entry, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < n; i++) {
        unsigned char a = (unsigned char)entry[i], b = (unsigned char)name[i];
        if (a >= 'A' && a <= 'Z')
            a = (unsigned char)(a + 32);
        if (b >= 'A' && b <= 'Z')
            b = (unsigned char)(b + 32);
        if (a == '\0' || a != b)
            return 0;
    }
    while (entry[n] == ' ' || entry[n] == '\t')
        n++;
    return entry[n] == ':' || entry[n] == ';';
}

#define SETOPT(h, opt, val)                                                                        \
    do {                                                                                           \
        CURLcode rc_ = curl_easy_setopt((h), (opt), (val));                                        \
        if (rc_ != CURLE_OK) {                                                                     \
            st = reqsign_error_set(err, REQSIGN_E_HTTP, SRC, REQSIGN_NO_OFFSET, "%s: %s", #opt,    \
                                   curl_easy_strerror(rc_));                                       \
            goto fail;                                                                             \
        }                                                                                          \
    } while (0)

/* The arguments, and the caller's header list: no signature field in it yet;
 * *@has_expect if it sets Expect, *@orig_last its last entry. */
static enum reqsign_status check_request(const struct reqsign_signer *s, CURL *h,
                                         const struct reqsign_curl_request *r,
                                         struct curl_slist *const *headers,
                                         struct reqsign_curl_upload **upload, int *has_expect,
                                         struct curl_slist **orig_last, struct reqsign_error *err)
{
    if (s == NULL || h == NULL || r == NULL || r->url == NULL || headers == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET,
                                 "signer, handle, request, url and headers are required");
    if ((r->body != NULL) + (r->body_file != NULL) + (r->content_digest != NULL) > 1)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET,
                                 "give at most one of body, body_file, content_digest");
    if (r->body == NULL && r->body_len != 0)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET,
                                 "body_len without body");
    if (r->body_file != NULL && upload == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET,
                                 "a body_file needs the upload out-parameter");
    if (r->body_file != NULL && (r->flags & REQSIGN_CURL_CALLER_BODY))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET,
                                 "body_file is sent by reqsign: drop REQSIGN_CURL_CALLER_BODY");
    *has_expect = 0;
    *orig_last = NULL;
    for (struct curl_slist *list = *headers; list != NULL; list = list->next) {
        if (entry_is(list->data, "Content-Digest") || entry_is(list->data, "Signature-Input") ||
            entry_is(list->data, "Signature"))
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC, REQSIGN_NO_OFFSET,
                                     "the header list already has a signature field: '%.40s'",
                                     list->data);
        if (entry_is(list->data, "Expect"))
            *has_expect = 1;
        *orig_last = list;
    }
    return REQSIGN_OK;
}

/* Sign @r as @method into @sig; @digest: the body file's Content-Digest. */
static enum reqsign_status sign_request(const struct reqsign_signer *s,
                                        const struct reqsign_curl_request *r, const char *method,
                                        const char *digest, struct reqsign_signed *sig,
                                        struct reqsign_error *err)
{
    struct reqsign_sign_input in;
    memset(&in, 0, sizeof(in));
    in.method = method;
    in.url = r->url;
    in.body = r->body;
    in.body_len = r->body_len;
    in.content_digest = r->body_file != NULL ? digest : r->content_digest;
    in.created = r->created;
    in.nonce = r->nonce;
    return reqsign_signer_sign(s, &in, sig, err);
}

/* The transfer's URL, method and body options. */
static enum reqsign_status set_transfer(const struct reqsign_signer *s, CURL *h,
                                        const struct reqsign_curl_request *r, const char *method,
                                        const struct reqsign_curl_upload *u,
                                        struct reqsign_error *err)
{
    enum reqsign_status st = REQSIGN_OK;
    int caller_body = r->content_digest != NULL || (r->flags & REQSIGN_CURL_CALLER_BODY);

    SETOPT(h, CURLOPT_URL, r->url);
    SETOPT(h, CURLOPT_PATH_AS_IS, reqsign_signer_path_as_is(s) ? 1L : 0L);
    if (strcmp(method, "HEAD") == 0) {
        SETOPT(h, CURLOPT_CUSTOMREQUEST, (char *)NULL);
        SETOPT(h, CURLOPT_NOBODY, 1L);
    } else if (caller_body) {
        SETOPT(h, CURLOPT_NOBODY, 0L);
        SETOPT(h, CURLOPT_CUSTOMREQUEST, method);
    } else {
        int is_post = strcmp(method, "POST") == 0;
        SETOPT(h, CURLOPT_NOBODY, 0L);
        SETOPT(h, CURLOPT_UPLOAD, 0L);
        if (r->body != NULL || (is_post && r->body_file == NULL)) {
            /* in memory; a POST without a body sends Content-Length: 0 */
            SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
            SETOPT(h, CURLOPT_POSTFIELDS, r->body != NULL ? (const char *)r->body : "");
            SETOPT(h, CURLOPT_CUSTOMREQUEST, is_post ? NULL : method);
        } else if (r->body_file != NULL && strcmp(method, "PUT") == 0) {
            SETOPT(h, CURLOPT_UPLOAD, 1L);
            SETOPT(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)u->size);
            SETOPT(h, CURLOPT_READFUNCTION, upload_read);
            SETOPT(h, CURLOPT_READDATA, (void *)u);
            SETOPT(h, CURLOPT_CUSTOMREQUEST, (char *)NULL);
        } else if (r->body_file != NULL) {
            SETOPT(h, CURLOPT_POSTFIELDS, (char *)NULL);
            SETOPT(h, CURLOPT_POST, 1L);
            SETOPT(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)u->size);
            SETOPT(h, CURLOPT_READFUNCTION, upload_read);
            SETOPT(h, CURLOPT_READDATA, (void *)u);
            SETOPT(h, CURLOPT_CUSTOMREQUEST, is_post ? NULL : method);
        } else {
            SETOPT(h, CURLOPT_HTTPGET, 1L);
            SETOPT(h, CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") == 0 ? NULL : method);
        }
    }
fail:
    return st;
}

/* The signature's header fields (and an empty Expect unless the caller set
 * one), appended to the caller's list; *@appended once the list grew. */
static enum reqsign_status append_fields(const struct reqsign_signed *sig, int has_expect,
                                         struct curl_slist **headers, int *appended,
                                         struct reqsign_error *err)
{
    char line[REQSIGN_SIGNATURE_INPUT_OUT_BUF + 32];
    for (size_t i = 0; i < sig->n_headers + 1; i++) {
        int n;
        if (i < sig->n_headers)
            n = snprintf(line, sizeof(line), "%.*s: %.*s", (int)sig->headers[i].name.len,
                         sig->headers[i].name.ptr, (int)sig->headers[i].value.len,
                         sig->headers[i].value.ptr);
        else if (!has_expect)
            n = snprintf(line, sizeof(line), "Expect:");
        else
            break;
        if (n < 0 || (size_t)n >= sizeof(line))
            return reqsign_error_set(err, REQSIGN_E_LIMIT, SRC, REQSIGN_NO_OFFSET,
                                     "header field too long");
        /* *headers is NULL iff the caller's list was empty */
        struct curl_slist *list = curl_slist_append(*headers, line);
        if (list == NULL)
            return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC, REQSIGN_NO_OFFSET, NULL);
        *headers = list;
        *appended = 1;
    }
    return REQSIGN_OK;
}

/* see reqsign/curl.h */
enum reqsign_status reqsign_curl_prepare(const struct reqsign_signer *s, CURL *h,
                                         const struct reqsign_curl_request *r,
                                         struct curl_slist **headers,
                                         struct reqsign_curl_upload **upload,
                                         struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct reqsign_signed local;
    struct reqsign_signed *sig;
    struct reqsign_curl_upload *u = NULL;
    struct curl_slist *orig_last = NULL;
    char digest[REQSIGN_CONTENT_DIGEST_OUT_BUF];
    int has_expect = 0, appended = 0;
    enum reqsign_status st;

    if (upload != NULL)
        *upload = NULL;
    st = check_request(s, h, r, headers, upload, &has_expect, &orig_last, err);
    if (st != REQSIGN_OK)
        return st;
    int has_body = r->body != NULL || r->body_file != NULL || r->content_digest != NULL;
    const char *method = r->method != NULL ? r->method : has_body ? "POST" : "GET";

    /* the body file: digest pass */
    if (r->body_file != NULL) {
        st = upload_open(r->body_file, reqsign_signer_digest_algs(s), &u, digest, sizeof(digest),
                         err);
        if (st != REQSIGN_OK)
            return st;
    }
    sig = r->out != NULL ? r->out : &local;
    if (sig == &local) {
        local.base_buf = NULL;
        local.base_cap = 0;
    }
    if ((st = sign_request(s, r, method, digest, sig, err)) != REQSIGN_OK ||
        (st = set_transfer(s, h, r, method, u, err)) != REQSIGN_OK ||
        (st = append_fields(sig, has_expect, headers, &appended, err)) != REQSIGN_OK)
        goto fail;
    SETOPT(h, CURLOPT_HTTPHEADER, *headers);
    if (upload != NULL)
        *upload = u;
    return REQSIGN_OK;
fail:
    if (appended) {
        if (orig_last != NULL) {
            curl_slist_free_all(orig_last->next);
            orig_last->next = NULL;
        } else {
            curl_slist_free_all(*headers);
            *headers = NULL;
        }
    }
    reqsign_curl_upload_free(u);
    return st;
}
