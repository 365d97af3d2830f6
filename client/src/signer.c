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

#include "nonce_source.h"
#include "url.h"
#include "util.h"
#include <reqsign/token.h>

static const char SRC_SIGNER[] = "signer";

struct reqsign_signer {
    struct reqsign_key *key;
    char keyid[REQSIGN_KEYID_IN_MAX + 1];
    char label[REQSIGN_SF_KEY_IN_MAX + 1];
    char tag[REQSIGN_TAG_IN_MAX + 1];
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
    if (n == 0 || n > REQSIGN_SF_KEY_IN_MAX)
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
    if (n == 0 || n > REQSIGN_METHOD_IN_MAX)
        return 0;
    return reqsign_is_token(m, n);
}

/* see reqsign/signer.h */
struct reqsign_signer *reqsign_signer_new(const struct reqsign_signer_opts *opts,
                                          struct reqsign_error *err)
{
    struct reqsign_error local; /* the key loaders' codes are read from err->code */
    if (err == NULL)
        err = &local;
    reqsign_error_clear(err);
    struct reqsign_signer *s;
    enum reqsign_status st;
    int sources;

    if (opts == NULL) {
        reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET, "no options");
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
        st = ((s->key = reqsign_key_load_file(opts->key_file, flags, err)) != NULL ? REQSIGN_OK
                                                                                   : err->code);
    } else if (opts->key_data != NULL) {
        st = ((s->key = reqsign_key_load_mem(opts->key_data, opts->key_len, flags, err)) != NULL
                  ? REQSIGN_OK
                  : err->code);
    } else {
        s->key = reqsign_key_dup(opts->key, NULL);
        st = s->key == NULL
                 ? reqsign_error_set(err, REQSIGN_E_NOMEM, SRC_SIGNER, REQSIGN_NO_OFFSET, NULL)
                 : REQSIGN_OK;
        if (st == REQSIGN_OK && !reqsign_key_has_private(s->key))
            st = reqsign_error_set(err, REQSIGN_E_KEY_NOT_PRIVATE, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                   "the signer needs a private key");
    }
    if (st != REQSIGN_OK)
        goto fail;

    if (opts->keyid != NULL) {
        size_t n = strlen(opts->keyid);
        if (n == 0 || n > REQSIGN_KEYID_IN_MAX || !printable(opts->keyid, n)) {
            reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                              "keyid must be 1..%d printable ASCII characters",
                              REQSIGN_KEYID_IN_MAX);
            goto fail;
        }
        memcpy(s->keyid, opts->keyid, n + 1);
    } else {
        char tp[REQSIGN_THUMBPRINT_BUF];
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
        if (n > REQSIGN_TAG_IN_MAX || !printable(opts->tag, n)) {
            reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                              "tag must be at most %d printable ASCII characters",
                              REQSIGN_TAG_IN_MAX);
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
bool reqsign_signer_path_as_is(const struct reqsign_signer *s)
{
    return s->path_as_is;
}

/* see reqsign/signer.h */
unsigned reqsign_signer_digest_algs(const struct reqsign_signer *s)
{
    return s->digest_algs;
}

/* Append the sf-string (RFC 8941 4.1.6) holding @str, or the sf-integer @num
 * when @str is NULL, through the project's serialiser; a failure (nothing to
 * fear for the signer's validated inputs) marks @b as overflowed. */
static void put_sf(struct reqsign__buf *b, const char *str, int64_t num)
{
    struct reqsign_sf_bare v;
    memset(&v, 0, sizeof(v));
    if (str != NULL) {
        v.type = REQSIGN_SF_STRING;
        v.str = reqsign__span_cstr(str);
    } else {
        v.type = REQSIGN_SF_INTEGER;
        v.num = num;
    }
    size_t pos = b->len;
    if (b->overflow || reqsign_sf_write_bare(&v, b->p, b->cap, &pos) != REQSIGN_OK) {
        b->overflow = 1;
        return;
    }
    b->len = pos;
}

#define SF_INT_MAX 999999999999999LL /* RFC 8941 3.3.1 */

/* The reqsign profile's signature base (RFC 9421 2.5), written directly. Its
 * five covered components are fixed, so the generic builder's work (serialising
 * each identifier, serialising the signature parameters a second time) is not
 * needed on the signing hot path; @params is the Signature-Input member value
 * already serialised for the header. The verifier rebuilds the same bytes with
 * the generic builder (reqsign_base_build()).
 * Why a second writer: measured over 100,000 bases (release build), this one
 * takes 0.14-0.6 us, parsing the Signature-Input and reqsign_base_build()
 * 1.1-3.6 us. The 1-3 us more per sign would take the signer's ratio to the
 * raw Ed25519 sign (BENCHMARKS.md, libsodium: 0.915 with 1.9 us of overhead on
 * a 20.5 us sign) below its >= 0.90 target. What keeps the two equal:
 * spec/vectors/positive.json and test_signer.c's signer_base_equals_base_build
 * (3,000 generated requests: the bytes signed must be reqsign_base_build()'s
 * for the request as the server receives it). */
static enum reqsign_status profile_base(const struct reqsign_request *req,
                                        const struct reqsign__url_parts *u, const char *digest,
                                        struct reqsign_span params, char *out, size_t cap,
                                        size_t *out_len, struct reqsign_error *err)
{
    char auth[REQSIGN_AUTHORITY_OUT_BUF];
    size_t alen;
    enum reqsign_status st;

    *out_len = 0;
    st = reqsign_authority_normalize(req->scheme, req->authority, auth, sizeof(auth), &alen, err);
    if (st != REQSIGN_OK)
        return st;
    /* @path and @query (RFC 9421 2.2.6, 2.2.7) from the parser's split */
    struct reqsign_span path = {u->target, u->path_len};
    struct reqsign_span query = {"?", 1};
    if (u->path_len < u->target_len) {
        query.ptr = u->target + u->path_len;
        query.len = u->target_len - u->path_len;
    }
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

/* Content-Digest: the caller's value, checked, or computed from the body. */
static enum reqsign_status sign_content_digest(const struct reqsign_signer *s,
                                               const struct reqsign_sign_input *in,
                                               struct reqsign_signed *out,
                                               struct reqsign_error *err)
{
    size_t len;
    if (in->content_digest != NULL) {
        size_t n = strlen(in->content_digest);
        if (n == 0 || n >= sizeof(out->content_digest) || !printable(in->content_digest, n) ||
            in->content_digest[0] == ' ' || in->content_digest[n - 1] == ' ')
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                     "content_digest must be a Content-Digest field value");
        memcpy(out->content_digest, in->content_digest, n + 1);
        return REQSIGN_OK;
    }
    enum reqsign_status st =
        reqsign_content_digest(s->digest_algs, in->body, in->body_len, out->content_digest,
                               sizeof(out->content_digest), &len, NULL);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                 "cannot compute Content-Digest");
    return REQSIGN_OK;
}

/* The nonce: the caller's, checked, or 16 random bytes in base64url. */
static enum reqsign_status sign_nonce(const struct reqsign_sign_input *in,
                                      struct reqsign_signed *out, struct reqsign_error *err)
{
    size_t len;
    if (in->nonce != NULL) {
        size_t n = strlen(in->nonce);
        if (n < REQSIGN_NONCE_IN_MIN || n > REQSIGN_NONCE_IN_MAX || !printable(in->nonce, n))
            return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                     "nonce must be %d..%d printable ASCII characters",
                                     REQSIGN_NONCE_IN_MIN, REQSIGN_NONCE_IN_MAX);
        memcpy(out->nonce, in->nonce, n + 1);
        return REQSIGN_OK;
    }
    uint8_t rnd[REQSIGN__NONCE_RAW_LEN];
    if (reqsign__nonce_bytes(rnd) != 0)
        return reqsign_error_set(err, REQSIGN_E_RANDOM, SRC_SIGNER, REQSIGN_NO_OFFSET, NULL);
    if (reqsign_base64url_encode(rnd, sizeof(rnd), out->nonce, sizeof(out->nonce), &len) !=
        REQSIGN_OK)
        return reqsign_error_set(err, REQSIGN_E_INTERNAL, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                 "nonce encoding");
    return REQSIGN_OK;
}

/* created: the caller's, else the signer's clock. */
static enum reqsign_status sign_created(const struct reqsign_signer *s,
                                        const struct reqsign_sign_input *in,
                                        struct reqsign_signed *out, struct reqsign_error *err)
{
    out->created = in->created != 0   ? in->created
                   : s->clock != NULL ? s->clock(s->clock_ctx)
                                      : (int64_t)time(NULL);
    if (out->created < 0)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                 "created must not be negative");
    return REQSIGN_OK;
}

/* Signature-Input: label=("@method" ... "content-digest");created=..., written
 * directly; it is what reqsign_sf_write_member_value() gives for the same
 * member (tests/unit/test_signer.c checks both agree). */
static enum reqsign_status sign_signature_input(const struct reqsign_signer *s,
                                                struct reqsign_signed *out,
                                                struct reqsign_error *err)
{
    if (out->created > SF_INT_MAX || s->expires_in > SF_INT_MAX - out->created)
        return reqsign_error_set(err, REQSIGN_E_SF_SERIALIZE, "Signature-Input", REQSIGN_NO_OFFSET,
                                 "created or expires beyond %lld", (long long)SF_INT_MAX);
    int64_t expires = out->created + s->expires_in;
    struct reqsign__buf sib = {out->signature_input, sizeof(out->signature_input) - 1, 0, 0};
    reqsign__buf_puts(&sib, s->label);
    reqsign__buf_puts(&sib, "=(\"@method\" \"@authority\" \"@path\" \"@query\" "
                            "\"content-digest\");created=");
    put_sf(&sib, NULL, out->created);
    reqsign__buf_puts(&sib, ";nonce=");
    put_sf(&sib, out->nonce, 0);
    reqsign__buf_puts(&sib, ";keyid=");
    put_sf(&sib, s->keyid, 0);
    reqsign__buf_puts(&sib, ";alg=\"ed25519\"");
    if (s->expires_in > 0) {
        reqsign__buf_puts(&sib, ";expires=");
        put_sf(&sib, NULL, expires);
    }
    if (s->has_tag) {
        reqsign__buf_puts(&sib, ";tag=");
        put_sf(&sib, s->tag, 0);
    }
    if (sib.overflow)
        return reqsign_error_set(err, REQSIGN_E_LIMIT, "Signature-Input", REQSIGN_NO_OFFSET,
                                 "cannot serialise Signature-Input");
    out->signature_input[sib.len] = '\0';
    return REQSIGN_OK;
}

/* The base of the request as it will be sent, signed into @sig; a copy for
 * the caller's debug buffer if it set one. */
static enum reqsign_status sign_base(const struct reqsign_signer *s,
                                     const struct reqsign_sign_input *in,
                                     const struct reqsign__url_parts *u, struct reqsign_signed *out,
                                     uint8_t sig[REQSIGN_ED25519_SIG_LEN],
                                     struct reqsign_error *err)
{
    size_t ln = strlen(s->label);
    struct reqsign_request req;
    req.method = reqsign__span_cstr(in->method);
    req.scheme.ptr = u->scheme;
    req.scheme.len = u->scheme_len;
    req.authority.ptr = u->authority;
    req.authority.len = u->authority_len;
    req.target.ptr = u->target;
    req.target.len = u->target_len;
    req.headers = NULL;
    req.n_headers = 0;
    struct reqsign_span si_value = {out->signature_input + ln + 1,
                                    strlen(out->signature_input) - ln - 1};

    char stackbuf[4096];
    char *base = stackbuf;
    size_t base_len = 0;
    enum reqsign_status st = profile_base(&req, u, out->content_digest, si_value, base,
                                          sizeof(stackbuf), &base_len, err);
    if (st == REQSIGN_E_BUFFER_TOO_SMALL) {
        base = malloc(REQSIGN_BASE_BUF);
        if (base == NULL)
            return reqsign_error_set(err, REQSIGN_E_NOMEM, SRC_SIGNER, REQSIGN_NO_OFFSET, NULL);
        st = profile_base(&req, u, out->content_digest, si_value, base, REQSIGN_BASE_BUF, &base_len,
                          err);
        if (st == REQSIGN_E_BUFFER_TOO_SMALL)
            st = reqsign_error_set(err, REQSIGN_E_LIMIT, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                   "signature base longer than %d bytes", REQSIGN_BASE_BUF);
    }
    if (st == REQSIGN_OK && out->base_buf != NULL && out->base_cap > 0) {
        size_t n = base_len < out->base_cap ? base_len : out->base_cap;
        memcpy(out->base_buf, base, n);
        out->base_len = n;
    }
    if (st == REQSIGN_OK)
        st = reqsign_key_sign(s->key, (const uint8_t *)base, base_len, sig, NULL);
    if (base != stackbuf)
        free(base);
    if (st != REQSIGN_OK)
        return reqsign_error_set(err, st, SRC_SIGNER, REQSIGN_NO_OFFSET, "signing failed");
    return REQSIGN_OK;
}

/* Signature: label=:base64:, and the three header views. */
static enum reqsign_status sign_signature(const struct reqsign_signer *s,
                                          const uint8_t sig[REQSIGN_ED25519_SIG_LEN],
                                          struct reqsign_signed *out, struct reqsign_error *err)
{
    size_t ln = strlen(s->label), len;
    memcpy(out->signature, s->label, ln);
    out->signature[ln] = '=';
    out->signature[ln + 1] = ':';
    if (reqsign_base64_encode(sig, REQSIGN_ED25519_SIG_LEN, out->signature + ln + 2,
                              sizeof(out->signature) - ln - 3, &len) != REQSIGN_OK)
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
enum reqsign_status reqsign_signer_sign(const struct reqsign_signer *s,
                                        const struct reqsign_sign_input *in,
                                        struct reqsign_signed *out, struct reqsign_error *err)
{
    reqsign_error_clear(err);
    struct reqsign__url_parts u;
    uint8_t sig[REQSIGN_ED25519_SIG_LEN];
    enum reqsign_status st;

    if (s == NULL || in == NULL || out == NULL || in->method == NULL || in->url == NULL)
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                 "signer, input, output, method and url are required");
    if (!valid_method(in->method))
        return reqsign_error_set(err, REQSIGN_E_INVALID_ARG, SRC_SIGNER, REQSIGN_NO_OFFSET,
                                 "method must be an HTTP token of at most %d characters",
                                 REQSIGN_METHOD_IN_MAX);
    out->base_len = 0;
    if ((st = reqsign__url_parse(in->url, s->path_as_is, &u, err)) != REQSIGN_OK ||
        (st = sign_content_digest(s, in, out, err)) != REQSIGN_OK ||
        (st = sign_nonce(in, out, err)) != REQSIGN_OK ||
        (st = sign_created(s, in, out, err)) != REQSIGN_OK ||
        (st = sign_signature_input(s, out, err)) != REQSIGN_OK ||
        (st = sign_base(s, in, &u, out, sig, err)) != REQSIGN_OK)
        return st;
    return sign_signature(s, sig, out, err);
}
