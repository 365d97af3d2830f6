/* reqsign: the signer. */
#include <reqsign/base.h>
#include <reqsign/base64.h>
#include <reqsign/request.h>
#include <reqsign/sf.h>
#include <reqsign/signer.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

static const char SRC_URL[] = "URL";
static const char SRC_SIGNER[] = "signer";

struct reqsign_signer {
    struct reqsign_key *key;
    char keyid[REQSIGN_KEYID_MAX_LEN + 1];
    char label[REQSIGN_SF_MAX_KEY_LEN + 1];
    char tag[REQSIGN_KEYID_MAX_LEN + 1];
    int has_tag;
    int64_t expires_in;
    unsigned digest_algs;
    int path_as_is;
    reqsign_clock_fn clock;
    void *clock_ctx;
};

/* An sf-string we emit must be printable ASCII (RFC 8941 3.3.3). */
static int printable(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return 0;
    return 1;
}

static int valid_label(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > REQSIGN_SF_MAX_KEY_LEN)
        return 0;
    if (!((s[0] >= 'a' && s[0] <= 'z') || s[0] == '*'))
        return 0;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.' || c == '*'))
            return 0;
    }
    return 1;
}

static int valid_method(const char *m)
{
    size_t n = strlen(m);
    if (n == 0 || n > REQSIGN_METHOD_MAX)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)m[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL)))
            return 0;
    }
    return 1;
}

/* see reqsign/signer.h */
struct reqsign_signer *reqsign_signer_new(const struct reqsign_signer_opts *opts,
                                          struct reqsign_error *err)
{
    struct reqsign_signer *s;
    enum reqsign_status st;
    int sources;

    if (opts == NULL) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                          "no options");
        return NULL;
    }
    sources = (opts->key_file != NULL) + (opts->key_data != NULL) + (opts->key != NULL);
    if (sources != 1) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                          "give exactly one of key_file, key_data, key");
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    if (s == NULL) {
        reqsign_error_set(err, REQSIGN_E_NOMEM, SRC_SIGNER, REQSIGN_NO_OFFSET, NULL);
        return NULL;
    }
    unsigned flags = opts->key_flags | REQSIGN_KEY_REQUIRE_PRIVATE;
    if (opts->key_file != NULL) {
        st = reqsign_key_load_file(opts->key_file, flags, &s->key, err);
    } else if (opts->key_data != NULL) {
        st = reqsign_key_load_mem(opts->key_data, opts->key_len, flags, &s->key, err);
    } else {
        s->key = reqsign_key_dup(opts->key);
        st = s->key == NULL ? reqsign_error_set(err, REQSIGN_E_NOMEM, SRC_SIGNER,
                                                REQSIGN_NO_OFFSET, NULL)
                            : REQSIGN_OK;
        if (st == REQSIGN_OK && !reqsign_key_has_private(s->key))
            st = reqsign_error_set(err, REQSIGN_E_KEY_NOT_PRIVATE, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                   "the signer needs a private key");
    }
    if (st != REQSIGN_OK)
        goto fail;

    if (opts->keyid != NULL) {
        size_t n = strlen(opts->keyid);
        if (n == 0 || n > REQSIGN_KEYID_MAX_LEN || !printable(opts->keyid, n)) {
            reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                              "keyid must be 1..%d printable ASCII characters",
                              REQSIGN_KEYID_MAX_LEN);
            goto fail;
        }
        memcpy(s->keyid, opts->keyid, n + 1);
    } else {
        char tp[REQSIGN_KEYID_BUF];
        if (reqsign_key_thumbprint(s->key, tp) != REQSIGN_OK) {
            reqsign_error_set(err, REQSIGN_E_CRYPTO, SRC_SIGNER, REQSIGN_NO_OFFSET,
                              "cannot compute the key thumbprint");
            goto fail;
        }
        memcpy(s->keyid, tp, sizeof(tp));
    }
    const char *label = opts->label != NULL ? opts->label : "sig1";
    if (!valid_label(label)) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                          "label must be an RFC 8941 key (lowercase, 1..64 characters)");
        goto fail;
    }
    memcpy(s->label, label, strlen(label) + 1);
    if (opts->tag != NULL) {
        size_t n = strlen(opts->tag);
        if (n > REQSIGN_KEYID_MAX_LEN || !printable(opts->tag, n)) {
            reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                              "tag must be at most %d printable ASCII characters",
                              REQSIGN_KEYID_MAX_LEN);
            goto fail;
        }
        memcpy(s->tag, opts->tag, n + 1);
        s->has_tag = 1;
    }
    if (opts->expires_in < 0) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                          "expires_in must not be negative");
        goto fail;
    }
    s->expires_in = opts->expires_in;
    s->digest_algs = opts->digest_algs != 0 ? opts->digest_algs : REQSIGN_DIGEST_SHA256;
    if (s->digest_algs & ~(unsigned)(REQSIGN_DIGEST_SHA256 | REQSIGN_DIGEST_SHA512)) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                          "unknown digest algorithm");
        goto fail;
    }
    s->path_as_is = opts->path_as_is;
    s->clock = opts->clock;
    s->clock_ctx = opts->clock_ctx;
    return s;
fail:
    reqsign_signer_free(s);
    return NULL;
}

/* see reqsign/signer.h */
void reqsign_signer_free(struct reqsign_signer *s)
{
    if (s == NULL)
        return;
    reqsign_key_free(s->key);
    reqsign_memzero(s, sizeof(*s));
    free(s);
}

/* see reqsign/signer.h */
const char *reqsign_signer_keyid(const struct reqsign_signer *s)
{
    return s->keyid;
}

/* see reqsign/signer.h */
int reqsign_signer_path_as_is(const struct reqsign_signer *s)
{
    return s->path_as_is;
}

/* see reqsign/signer.h */
unsigned reqsign_signer_digest_algs(const struct reqsign_signer *s)
{
    return s->digest_algs;
}

/* The pieces of a URL as libcurl will send them. */
struct url_parts {
    char scheme[8];
    char authority[REQSIGN_AUTHORITY_MAX + 8];
    char target[REQSIGN_TARGET_MAX + 1];
    size_t target_len;
};

static enum reqsign_status parse_url(const char *url, int path_as_is, struct url_parts *u,
                                     struct reqsign_error *err)
{
    CURLU *h;
    CURLUcode rc;
    char *scheme = NULL, *host = NULL, *port = NULL, *path = NULL, *query = NULL;
    enum reqsign_status st = REQSIGN_OK;
    size_t n = strlen(url);

    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)url[i];
        if (c <= 0x20 || c >= 0x7f)
            return reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, i,
                                     "byte 0x%02x at %zu: percent-encode spaces, controls and "
                                     "non-ASCII bytes before signing",
                                     c, i);
    }
    h = curl_url();
    if (h == NULL)
        return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC_URL, REQSIGN_NO_OFFSET, NULL);
    rc = curl_url_set(h, CURLUPART_URL, url, path_as_is ? CURLU_PATH_AS_IS : 0);
    if (rc != CURLUE_OK) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, REQSIGN_NO_OFFSET, "%s",
                               curl_url_strerror(rc));
        goto out;
    }
    if (curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, 0,
                               "only http and https URLs can be signed");
        goto out;
    }
    if (curl_url_get(h, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, REQSIGN_NO_OFFSET, "URL has no host");
        goto out;
    }
    rc = curl_url_get(h, CURLUPART_PORT, &port, 0);
    if (rc != CURLUE_OK && rc != CURLUE_NO_PORT) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, REQSIGN_NO_OFFSET, "%s",
                               curl_url_strerror(rc));
        goto out;
    }
    if (curl_url_get(h, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, REQSIGN_NO_OFFSET, "URL has no path");
        goto out;
    }
    rc = curl_url_get(h, CURLUPART_QUERY, &query, 0);
    if (rc != CURLUE_OK && rc != CURLUE_NO_QUERY) {
        st = reqsign_error_set(err, REQSIGN_E_URL, SRC_URL, REQSIGN_NO_OFFSET, "%s",
                               curl_url_strerror(rc));
        goto out;
    }

    snprintf(u->scheme, sizeof(u->scheme), "%s", scheme);
    int an = snprintf(u->authority, sizeof(u->authority), "%s%s%s", host, port ? ":" : "",
                      port ? port : "");
    if (an < 0 || (size_t)an >= sizeof(u->authority)) {
        st = reqsign_error_set(err, REQSIGN_E_LIMIT, SRC_URL, REQSIGN_NO_OFFSET,
                               "host longer than %d bytes", REQSIGN_AUTHORITY_MAX);
        goto out;
    }
    /* libcurl sends "/" for an empty path, and the query after '?' when present */
    int tn = snprintf(u->target, sizeof(u->target), "%s%s%s%s", path[0] == '/' ? "" : "/", path,
                      query ? "?" : "", query ? query : "");
    if (tn < 0 || (size_t)tn >= sizeof(u->target)) {
        st = reqsign_error_set(err, REQSIGN_E_LIMIT, SRC_URL, REQSIGN_NO_OFFSET,
                               "path and query longer than %d bytes", REQSIGN_TARGET_MAX);
        goto out;
    }
    u->target_len = (size_t)tn;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(path);
    curl_free(query);
    curl_url_cleanup(h);
    return st;
}

static void set_str(struct reqsign_sf_bare *b, const char *s)
{
    memset(b, 0, sizeof(*b));
    b->type = REQSIGN_SF_STRING;
    b->str.ptr = s;
    b->str.len = strlen(s);
}

static void set_int(struct reqsign_sf_bare *b, int64_t v)
{
    memset(b, 0, sizeof(*b));
    b->type = REQSIGN_SF_INTEGER;
    b->num = v;
}

/* The reqsign profile's signature base (RFC 9421 2.5), written directly. Its
 * five covered components are fixed, so the generic builder's work (serialising
 * each identifier, serialising the signature parameters a second time) is not
 * needed on the signing hot path; @params is the Signature-Input member value
 * already serialised for the header. The verifier rebuilds the same bytes with
 * the generic builder (reqsign_base_build()); spec/vectors/positive.json pins
 * that both agree byte for byte. */
static enum reqsign_status profile_base(const struct reqsign_request *req, const char *digest,
                                        struct reqsign_span params, char *out, size_t cap,
                                        size_t *out_len, struct reqsign_error *err)
{
    char auth[REQSIGN_AUTHORITY_MAX + 8];
    size_t alen;
    struct reqsign_span path, query;
    enum reqsign_status st;

    *out_len = 0;
    st = reqsign_authority_normalize(req->scheme, req->authority, auth, sizeof(auth), &alen, err);
    if (st == REQSIGN_OK)
        st = reqsign_target_split(req->target, &path, &query, NULL, err);
    if (st != REQSIGN_OK)
        return st;
    struct reqsign__buf b = {out, cap, 0, 0};
    reqsign__buf_puts(&b, "\"@method\": ");
    reqsign__buf_put(&b, req->method.ptr, req->method.len);
    reqsign__buf_puts(&b, "\n\"@authority\": ");
    reqsign__buf_put(&b, auth, alen);
    reqsign__buf_puts(&b, "\n\"@path\": ");
    reqsign__buf_put(&b, path.ptr, path.len);
    reqsign__buf_puts(&b, "\n\"@query\": ");
    reqsign__buf_put(&b, query.ptr, query.len);
    reqsign__buf_puts(&b, "\n\"content-digest\": ");
    reqsign__buf_puts(&b, digest);
    reqsign__buf_puts(&b, "\n\"@signature-params\": ");
    reqsign__buf_put(&b, params.ptr, params.len);
    if (b.overflow)
        return REQSIGN_E_BUFFER_TOO_SMALL;
    *out_len = b.len;
    return REQSIGN_OK;
}

/* see reqsign/signer.h */
enum reqsign_status reqsign_signer_sign(const struct reqsign_signer *s,
                                        const struct reqsign_sign_input *in,
                                        struct reqsign_signed *out, struct reqsign_error *err)
{
    static const char *const covered[] = {"@method", "@authority", "@path", "@query",
                                          "content-digest"};
    struct url_parts u;
    enum reqsign_status st;
    size_t len;

    if (s == NULL || in == NULL || out == NULL || in->method == NULL || in->url == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                 "signer, input, output, method and url are required");
    if (!valid_method(in->method))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                 "method must be an HTTP token of at most %d characters",
                                 REQSIGN_METHOD_MAX);
    out->base_len = 0;
    st = parse_url(in->url, s->path_as_is, &u, err);
    if (st != REQSIGN_OK)
        return st;

    /* Content-Digest */
    if (in->content_digest != NULL) {
        size_t n = strlen(in->content_digest);
        if (n == 0 || n >= sizeof(out->content_digest) || !printable(in->content_digest, n) ||
            in->content_digest[0] == ' ' || in->content_digest[n - 1] == ' ')
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                     "content_digest must be a Content-Digest field value");
        memcpy(out->content_digest, in->content_digest, n + 1);
    } else {
        st = reqsign_content_digest(s->digest_algs, in->body, in->body_len, out->content_digest,
                                    sizeof(out->content_digest), &len);
        if (st != REQSIGN_OK)
            return reqsign_error_set(err, st, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                     "cannot compute Content-Digest");
    }

    /* nonce */
    if (in->nonce != NULL) {
        size_t n = strlen(in->nonce);
        if (n < REQSIGN_NONCE_MIN_LEN || n > REQSIGN_NONCE_MAX_LEN || !printable(in->nonce, n))
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                     "nonce must be %d..%d printable ASCII characters",
                                     REQSIGN_NONCE_MIN_LEN, REQSIGN_NONCE_MAX_LEN);
        memcpy(out->nonce, in->nonce, n + 1);
    } else {
        uint8_t rnd[16];
        if (reqsign_random_bytes(rnd, sizeof(rnd)) != REQSIGN_OK)
            return reqsign_error_set(err, REQSIGN_E_RANDOM, SRC_SIGNER, REQSIGN_NO_OFFSET, NULL);
        st = reqsign_base64url_encode(rnd, sizeof(rnd), out->nonce, sizeof(out->nonce), &len);
        if (st != REQSIGN_OK)
            return reqsign_error_set(err, REQSIGN_E_INTERNAL, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                     "nonce encoding");
    }

    /* created */
    out->created = in->created != 0 ? in->created
                   : s->clock != NULL ? s->clock(s->clock_ctx)
                                      : (int64_t)time(NULL);
    if (out->created < 0)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                 "created must not be negative");

    /* the Signature-Input member: inner list + parameters */
    struct reqsign_sf_item items[5];
    struct reqsign_sf_param params[6];
    struct reqsign_sf_member member;
    size_t np = 0;
    for (size_t i = 0; i < 5; i++) {
        set_str(&items[i].value, covered[i]);
        items[i].params_off = 0;
        items[i].params_len = 0;
    }
    params[np].key = reqsign__span_cstr("created");
    set_int(&params[np++].value, out->created);
    params[np].key = reqsign__span_cstr("nonce");
    set_str(&params[np++].value, out->nonce);
    params[np].key = reqsign__span_cstr("keyid");
    set_str(&params[np++].value, s->keyid);
    params[np].key = reqsign__span_cstr("alg");
    set_str(&params[np++].value, "ed25519");
    if (s->expires_in > 0) {
        params[np].key = reqsign__span_cstr("expires");
        set_int(&params[np++].value, out->created + s->expires_in);
    }
    if (s->has_tag) {
        params[np].key = reqsign__span_cstr("tag");
        set_str(&params[np++].value, s->tag);
    }
    memset(&member, 0, sizeof(member));
    member.key = reqsign__span_cstr(s->label);
    member.is_inner_list = 1;
    member.items_off = 0;
    member.items_len = 5;
    member.params_off = 0;
    member.params_len = (uint32_t)np;
    struct reqsign_sf_parsed si = {&member, 1, 1, items, 5, 5, params, np, np};

    /* Signature-Input: label=value */
    size_t pos = 0;
    size_t ln = strlen(s->label);
    if (ln + 1 >= sizeof(out->signature_input))
        return REQSIGN_E_INTERNAL;
    memcpy(out->signature_input, s->label, ln);
    out->signature_input[ln] = '=';
    pos = ln + 1;
    st = reqsign_sf_write_member_value(&si, &member, out->signature_input,
                                       sizeof(out->signature_input) - 1, &pos);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st == REQSIGN_E_BUFFER_TOO_SMALL ? REQSIGN_E_LIMIT : st,
                                 "Signature-Input", REQSIGN_NO_OFFSET,
                                 "cannot serialise Signature-Input");
    out->signature_input[pos] = '\0';

    /* the request as it will be sent */
    struct reqsign_request req;
    req.method = reqsign__span_cstr(in->method);
    req.scheme = reqsign__span_cstr(u.scheme);
    req.authority = reqsign__span_cstr(u.authority);
    req.target.ptr = u.target;
    req.target.len = u.target_len;
    req.headers = NULL;
    req.n_headers = 0;
    struct reqsign_span si_value = {out->signature_input + ln + 1, pos - ln - 1};

    char stackbuf[4096];
    char *base = stackbuf;
    size_t base_len = 0;
    st = profile_base(&req, out->content_digest, si_value, base, sizeof(stackbuf), &base_len, err);
    if (st == REQSIGN_E_BUFFER_TOO_SMALL) {
        base = malloc(REQSIGN_BASE_MAX);
        if (base == NULL)
            return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC_SIGNER, REQSIGN_NO_OFFSET, NULL);
        st = profile_base(&req, out->content_digest, si_value, base, REQSIGN_BASE_MAX, &base_len,
                          err);
        if (st == REQSIGN_E_BUFFER_TOO_SMALL)
            st = reqsign_error_set(err, REQSIGN_E_LIMIT, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                   "signature base longer than %d bytes", REQSIGN_BASE_MAX);
    }
    if (st == REQSIGN_OK && out->base_buf != NULL && out->base_cap > 0) {
        size_t n = base_len < out->base_cap ? base_len : out->base_cap;
        memcpy(out->base_buf, base, n);
        out->base_len = n;
    }

    uint8_t sig[REQSIGN_ED25519_SIG_LEN];
    if (st == REQSIGN_OK)
        st = reqsign_key_sign(s->key, (const uint8_t *)base, base_len, sig);
    if (base != stackbuf)
        free(base);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st, SRC_SIGNER, REQSIGN_NO_OFFSET, "signing failed");

    /* Signature: label=:base64: */
    memcpy(out->signature, s->label, ln);
    out->signature[ln] = '=';
    out->signature[ln + 1] = ':';
    st = reqsign_base64_encode(sig, sizeof(sig), out->signature + ln + 2,
                               sizeof(out->signature) - ln - 3, &len);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, REQSIGN_E_INTERNAL, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                 "signature encoding");
    out->signature[ln + 2 + len] = ':';
    out->signature[ln + 3 + len] = '\0';

    out->headers[0].name = reqsign__span_cstr("Content-Digest");
    out->headers[0].value = reqsign__span_cstr(out->content_digest);
    out->headers[1].name = reqsign__span_cstr("Signature-Input");
    out->headers[1].value = reqsign__span_cstr(out->signature_input);
    out->headers[2].name = reqsign__span_cstr("Signature");
    out->headers[2].value = reqsign__span_cstr(out->signature);
    out->n_headers = 3;
    return REQSIGN_OK;
}

/* see reqsign/signer.h */
enum reqsign_status reqsign_content_digest_file(const char *path, unsigned algs, char *out,
                                                size_t cap, size_t *out_len,
                                                struct reqsign_error *err)
{
    struct reqsign_digest d;
    enum reqsign_status st;
    char buf[65536];
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0)
        return reqsign_error_set(err, REQSIGN_E_IO, "body", REQSIGN_NO_OFFSET, "%s: %s", path,
                                 strerror(errno));
    st = reqsign_digest_init(&d, algs != 0 ? algs : REQSIGN_DIGEST_SHA256);
    if (st != REQSIGN_OK) {
        close(fd);
        return reqsign_error_set(err, st, "body", REQSIGN_NO_OFFSET, NULL);
    }
    for (;;) {
        ssize_t r = read(fd, buf, sizeof(buf));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            st = reqsign_error_set(err, REQSIGN_E_IO, "body", REQSIGN_NO_OFFSET, "%s: %s", path,
                                   strerror(errno));
            break;
        }
        if (r == 0)
            break;
        st = reqsign_digest_update(&d, buf, (size_t)r);
        if (st != REQSIGN_OK)
            break;
    }
    close(fd);
    if (st != REQSIGN_OK) {
        reqsign_digest_cleanup(&d);
        return st;
    }
    return reqsign_digest_final(&d, out, cap, out_len, NULL, NULL);
}
